//! Decoding: content JSON plus binary buffers to [`Value`] (spec §6.3, §6.4).
//!
//! `{"type":"bytes","data":{"id"}}` is resolved against the message's buffers, inline
//! base64 (gzip) is inflated within the message's budget, and every binary array is
//! normalised to little-endian.
//!
//! The walk recurses once per JSON nesting level. That depth is bounded: serde_json
//! refuses input nested deeper than 128 levels, so no message can make it overflow.

use std::io::Read;

use base64::Engine;
use bytes::Bytes;
use serde_json::Value as Json;

use super::raw::{get, take, Raw};
use super::{Buffers, CodecError};
use crate::value::{ArrayData, ArrayForm, ArrayValue, DType, ModelRep, Slice, Value};

fn malformed(tag: &'static str, problem: impl Into<String>) -> CodecError {
    CodecError::Malformed {
        tag,
        problem: problem.into(),
    }
}

/// Decodes one JSON value of message content into a [`Value`].
pub fn decode_value(json: &Json, buffers: &Buffers) -> Result<Value, CodecError> {
    decode_raw(Raw::from(json), buffers)
}

/// Decodes one parsed value of message content into a [`Value`], taking it apart.
pub(crate) fn decode_raw(raw: Raw, buffers: &Buffers) -> Result<Value, CodecError> {
    Ok(match raw {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Int(i),
        Raw::UInt(u) => Value::Float(u as f64),
        Raw::Float(x) => Value::Float(x),
        Raw::Str(s) => Value::Str(s),
        Raw::List(items) => Value::List(decode_list(items, buffers)?),
        Raw::Floats(v) => Value::List(v.into_iter().map(Value::Float).collect()),
        Raw::Ints(v) => Value::List(v.into_iter().map(Value::Int).collect()),
        Raw::Object(mut obj) => {
            let tag = obj
                .iter()
                .position(|(k, v)| k == "type" && matches!(v, Raw::Str(_)))
                .map(|i| obj.remove(i).1);
            match tag {
                Some(Raw::Str(tag)) => decode_tagged(&tag, obj, buffers)?,
                _ => match obj.as_slice() {
                    [(k, Raw::Str(_))] if k == "id" => match obj.pop() {
                        Some((_, Raw::Str(id))) => Value::Ref(id),
                        _ => Value::Null,
                    },
                    _ => Value::Dict(decode_fields(obj, buffers)?),
                },
            }
        }
    })
}

/// Decodes the items of a list of any form; `None` when `raw` is not a list.
pub(crate) fn decode_items(raw: Raw, buffers: &Buffers) -> Result<Option<Vec<Value>>, CodecError> {
    Ok(match raw {
        Raw::List(items) => Some(decode_list(items, buffers)?),
        Raw::Floats(v) => Some(v.into_iter().map(Value::Float).collect()),
        Raw::Ints(v) => Some(v.into_iter().map(Value::Int).collect()),
        _ => None,
    })
}

fn decode_list(items: Vec<Raw>, buffers: &Buffers) -> Result<Vec<Value>, CodecError> {
    items.into_iter().map(|v| decode_raw(v, buffers)).collect()
}

/// Decodes the values of object fields, keeping their keys and order.
fn decode_fields(
    fields: Vec<(String, Raw)>,
    buffers: &Buffers,
) -> Result<Vec<(String, Value)>, CodecError> {
    fields
        .into_iter()
        .map(|(k, v)| Ok((k, decode_raw(v, buffers)?)))
        .collect()
}

/// The `entries` of a map or set: absent is empty, anything but a list is refused.
fn entries(tag: &'static str, obj: &mut [(String, Raw)]) -> Result<Raw, CodecError> {
    match take(obj, "entries") {
        None => Ok(Raw::List(Vec::new())),
        Some(e @ (Raw::List(_) | Raw::Floats(_) | Raw::Ints(_))) => Ok(e),
        Some(_) => Err(malformed(tag, "entries must be a list")),
    }
}

fn decode_tagged(
    tag: &str,
    mut obj: Vec<(String, Raw)>,
    buffers: &Buffers,
) -> Result<Value, CodecError> {
    Ok(match tag {
        "number" => Value::Float(match take(&mut obj, "value") {
            Some(Raw::Str(s)) => match s.as_str() {
                "nan" => f64::NAN,
                "+inf" | "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                other => return Err(malformed("number", format!("unknown value {other:?}"))),
            },
            Some(Raw::Int(i)) => i as f64,
            Some(Raw::UInt(u)) => u as f64,
            Some(Raw::Float(x)) => x,
            _ => return Err(malformed("number", "missing value")),
        }),
        "map" => {
            let pairs = entries("map", &mut obj)?.into_list().unwrap_or_default();
            let mut out = Vec::with_capacity(pairs.len());
            for pair in pairs {
                match pair.into_list() {
                    Ok(kv) if kv.len() == 2 => {
                        let mut kv = kv.into_iter();
                        let k = decode_raw(kv.next().unwrap_or(Raw::Null), buffers)?;
                        let v = decode_raw(kv.next().unwrap_or(Raw::Null), buffers)?;
                        out.push((k, v));
                    }
                    _ => return Err(malformed("map", "each entry must be a [key, value] pair")),
                }
            }
            Value::Map(out)
        }
        "set" => Value::Set(decode_items(entries("set", &mut obj)?, buffers)?.unwrap_or_default()),
        "array" => {
            Value::List(decode_items(entries("array", &mut obj)?, buffers)?.unwrap_or_default())
        }
        "bytes" => Value::Bytes(decode_bytes(&mut obj, buffers)?),
        "slice" => Value::Slice(Slice {
            start: slice_part(&obj, "start")?,
            stop: slice_part(&obj, "stop")?,
            step: slice_part(&obj, "step")?,
        }),
        "typed_array" => decode_array(ArrayForm::Typed, obj, buffers)?,
        "ndarray" => decode_array(ArrayForm::Nd, obj, buffers)?,
        "object" if get(&obj, "id").is_some() => {
            let id = match take(&mut obj, "id") {
                Some(Raw::Str(id)) => id,
                _ => return Err(malformed("object", "id must be a string")),
            };
            let name = match take(&mut obj, "name") {
                Some(Raw::Str(n)) => n,
                _ => return Err(malformed("object", format!("model {id} has no name"))),
            };
            let attributes = match take(&mut obj, "attributes") {
                None => Vec::new(),
                Some(Raw::Object(attrs)) => decode_fields(attrs, buffers)?,
                Some(_) => return Err(malformed("object", "attributes must be an object")),
            };
            Value::Model(Box::new(ModelRep {
                name,
                id,
                attributes,
            }))
        }
        other => Value::Tagged {
            tag: other.to_owned(),
            fields: decode_fields(obj, buffers)?,
        },
    })
}

fn slice_part(obj: &[(String, Raw)], key: &str) -> Result<Option<i64>, CodecError> {
    match get(obj, key) {
        None | Some(Raw::Null) => Ok(None),
        Some(Raw::Int(i)) => Ok(Some(*i)),
        Some(Raw::Float(_) | Raw::UInt(_)) => {
            Err(malformed("slice", format!("{key} must be an integer")))
        }
        Some(_) => Err(malformed(
            "slice",
            format!("{key} must be an integer or null"),
        )),
    }
}

fn decode_bytes(obj: &mut [(String, Raw)], buffers: &Buffers) -> Result<Bytes, CodecError> {
    match take(obj, "data") {
        Some(Raw::Object(r)) => match get(&r, "id") {
            Some(Raw::Str(id)) => buffers
                .get(id)
                .cloned()
                .ok_or_else(|| CodecError::UnknownBuffer(id.clone())),
            _ => Err(malformed("bytes", "buffer reference without a string id")),
        },
        Some(Raw::Str(b64)) => inline_bytes(&b64, buffers),
        _ => Err(malformed(
            "bytes",
            "data must be a buffer reference or a string",
        )),
    }
}

/// Decodes the inline form of `bytes`: standard base64, gzip-compressed by both Bokeh
/// encoders. Data that is not gzip is taken as it is. Inflated bytes are charged to the
/// message's budget ([`Buffers::with_inflate_limit`]), so a small message cannot expand
/// into gigabytes.
fn inline_bytes(b64: &str, buffers: &Buffers) -> Result<Bytes, CodecError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| CodecError::InlineBytes(e.to_string()))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(Bytes::from(raw));
    }
    let budget = buffers.inflate_left();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw.as_slice())
        .take(u64::try_from(budget).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| CodecError::InlineBytes(e.to_string()))?;
    if out.len() > budget {
        return Err(CodecError::InflateLimit {
            limit: buffers.inflate_limit(),
        });
    }
    buffers.charge_inflated(out.len());
    Ok(Bytes::from(out))
}

fn decode_array(
    form: ArrayForm,
    mut obj: Vec<(String, Raw)>,
    buffers: &Buffers,
) -> Result<Value, CodecError> {
    let tag = match form {
        ArrayForm::Typed => "typed_array",
        ArrayForm::Nd => "ndarray",
    };
    let dtype = match get(&obj, "dtype") {
        Some(Raw::Str(d)) => {
            DType::from_name(d).ok_or_else(|| CodecError::UnknownDType(d.clone()))?
        }
        _ => return Err(malformed(tag, "missing dtype")),
    };
    let big_endian = match get(&obj, "order") {
        None => false,
        Some(Raw::Str(o)) if o == "little" => false,
        Some(Raw::Str(o)) if o == "big" => true,
        Some(_) => return Err(malformed(tag, "order must be \"little\" or \"big\"")),
    };
    let shape: Option<Vec<usize>> = match take(&mut obj, "shape") {
        None => None,
        Some(dims) => Some(
            dims.into_list()
                .map_err(|_| malformed(tag, "shape must be a list"))?
                .into_iter()
                .map(|d| match d {
                    Raw::Int(d) => usize::try_from(d).ok(),
                    Raw::UInt(d) => usize::try_from(d).ok(),
                    _ => None,
                })
                .collect::<Option<_>>()
                .ok_or_else(|| malformed(tag, "shape must list non-negative integers"))?,
        ),
    };
    let data = match take(&mut obj, "array") {
        Some(Raw::Object(mut b)) if get(&b, "type").and_then(Raw::as_str) == Some("bytes") => {
            if dtype == DType::Object {
                return Err(malformed(tag, "dtype object needs a list body"));
            }
            let raw = decode_bytes(&mut b, buffers)?;
            ArrayData::Binary(if big_endian {
                swap_bytes(&raw, dtype.size())
            } else {
                raw
            })
        }
        Some(items) => match decode_items(items, buffers)? {
            Some(items) => ArrayData::List(items),
            None => return Err(malformed(tag, "array must be bytes or a list")),
        },
        None => return Err(malformed(tag, "array must be bytes or a list")),
    };
    let len = match &data {
        ArrayData::List(v) => v.len(),
        ArrayData::Binary(b) => b.len() / dtype.size().max(1),
    };
    let shape = shape.unwrap_or_else(|| vec![len]);
    if let ArrayData::List(items) = &data {
        let expected = shape
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(*d))
            .ok_or_else(|| malformed(tag, "shape too large"))?;
        // A list body is flat or nested by its first dimension.
        if expected != items.len() && shape.first() != Some(&items.len()) {
            return Err(malformed(
                tag,
                format!(
                    "shape {shape:?} does not match the {} items of the list",
                    items.len()
                ),
            ));
        }
    }
    if let ArrayData::Binary(b) = &data {
        let expected = shape
            .iter()
            .try_fold(dtype.size(), |acc, d| acc.checked_mul(*d))
            .ok_or_else(|| malformed(tag, "shape too large"))?;
        if expected != b.len() {
            return Err(CodecError::ArrayLength {
                shape,
                dtype: dtype.name(),
                expected,
                actual: b.len(),
            });
        }
    }
    Ok(Value::Array(Box::new(ArrayValue {
        form,
        dtype,
        shape,
        data,
    })))
}

fn swap_bytes(raw: &[u8], size: usize) -> Bytes {
    let mut out = raw.to_vec();
    if size > 1 {
        for chunk in out.chunks_exact_mut(size) {
            chunk.reverse();
        }
    }
    Bytes::from(out)
}
