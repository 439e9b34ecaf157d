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
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(items) => Value::List(decode_list(items, buffers)?),
        Json::Object(obj) => match obj.get("type") {
            Some(Json::String(tag)) => decode_tagged(tag, obj, buffers)?,
            _ => match (obj.get("id"), obj.len()) {
                (Some(Json::String(id)), 1) => Value::Ref(id.clone()),
                _ => Value::Dict(
                    obj.iter()
                        .map(|(k, v)| Ok((k.clone(), decode_value(v, buffers)?)))
                        .collect::<Result<_, CodecError>>()?,
                ),
            },
        },
    })
}

fn decode_list(items: &[Json], buffers: &Buffers) -> Result<Vec<Value>, CodecError> {
    items.iter().map(|v| decode_value(v, buffers)).collect()
}

fn entries<'a>(
    tag: &'static str,
    obj: &'a serde_json::Map<String, Json>,
) -> Result<&'a [Json], CodecError> {
    match obj.get("entries") {
        None => Ok(&[]),
        Some(Json::Array(e)) => Ok(e),
        Some(_) => Err(malformed(tag, "entries must be a list")),
    }
}

fn decode_tagged(
    tag: &str,
    obj: &serde_json::Map<String, Json>,
    buffers: &Buffers,
) -> Result<Value, CodecError> {
    Ok(match tag {
        "number" => Value::Float(match obj.get("value") {
            Some(Json::String(s)) => match s.as_str() {
                "nan" => f64::NAN,
                "+inf" | "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                other => return Err(malformed("number", format!("unknown value {other:?}"))),
            },
            Some(Json::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            _ => return Err(malformed("number", "missing value")),
        }),
        "map" => {
            let mut out = Vec::new();
            for pair in entries("map", obj)? {
                match pair {
                    Json::Array(kv) if kv.len() == 2 => out.push((
                        decode_value(&kv[0], buffers)?,
                        decode_value(&kv[1], buffers)?,
                    )),
                    _ => return Err(malformed("map", "each entry must be a [key, value] pair")),
                }
            }
            Value::Map(out)
        }
        "set" => Value::Set(decode_list(entries("set", obj)?, buffers)?),
        "array" => Value::List(decode_list(entries("array", obj)?, buffers)?),
        "bytes" => Value::Bytes(decode_bytes(obj, buffers)?),
        "slice" => Value::Slice(Slice {
            start: slice_part(obj, "start")?,
            stop: slice_part(obj, "stop")?,
            step: slice_part(obj, "step")?,
        }),
        "typed_array" => decode_array(ArrayForm::Typed, obj, buffers)?,
        "ndarray" => decode_array(ArrayForm::Nd, obj, buffers)?,
        "object" if obj.contains_key("id") => {
            let id = match obj.get("id") {
                Some(Json::String(id)) => id.clone(),
                _ => return Err(malformed("object", "id must be a string")),
            };
            let name = match obj.get("name") {
                Some(Json::String(n)) => n.clone(),
                _ => return Err(malformed("object", format!("model {id} has no name"))),
            };
            let attributes = match obj.get("attributes") {
                None => Vec::new(),
                Some(Json::Object(attrs)) => attrs
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), decode_value(v, buffers)?)))
                    .collect::<Result<_, CodecError>>()?,
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
            fields: obj
                .iter()
                .filter(|(k, _)| k.as_str() != "type")
                .map(|(k, v)| Ok((k.clone(), decode_value(v, buffers)?)))
                .collect::<Result<_, CodecError>>()?,
        },
    })
}

fn slice_part(obj: &serde_json::Map<String, Json>, key: &str) -> Result<Option<i64>, CodecError> {
    match obj.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| malformed("slice", format!("{key} must be an integer"))),
        Some(_) => Err(malformed(
            "slice",
            format!("{key} must be an integer or null"),
        )),
    }
}

fn decode_bytes(
    obj: &serde_json::Map<String, Json>,
    buffers: &Buffers,
) -> Result<Bytes, CodecError> {
    match obj.get("data") {
        Some(Json::Object(r)) => match r.get("id") {
            Some(Json::String(id)) => buffers
                .get(id)
                .cloned()
                .ok_or_else(|| CodecError::UnknownBuffer(id.clone())),
            _ => Err(malformed("bytes", "buffer reference without a string id")),
        },
        Some(Json::String(b64)) => inline_bytes(b64, buffers),
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
    obj: &serde_json::Map<String, Json>,
    buffers: &Buffers,
) -> Result<Value, CodecError> {
    let tag = match form {
        ArrayForm::Typed => "typed_array",
        ArrayForm::Nd => "ndarray",
    };
    let dtype = match obj.get("dtype") {
        Some(Json::String(d)) => {
            DType::from_name(d).ok_or_else(|| CodecError::UnknownDType(d.clone()))?
        }
        _ => return Err(malformed(tag, "missing dtype")),
    };
    let big_endian = match obj.get("order") {
        None => false,
        Some(Json::String(o)) if o == "little" => false,
        Some(Json::String(o)) if o == "big" => true,
        Some(_) => return Err(malformed(tag, "order must be \"little\" or \"big\"")),
    };
    let shape: Option<Vec<usize>> = match obj.get("shape") {
        None => None,
        Some(Json::Array(dims)) => Some(
            dims.iter()
                .map(|d| {
                    d.as_u64()
                        .and_then(|d| usize::try_from(d).ok())
                        .ok_or_else(|| malformed(tag, "shape must list non-negative integers"))
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(malformed(tag, "shape must be a list")),
    };
    let data = match obj.get("array") {
        Some(Json::Array(items)) => ArrayData::List(decode_list(items, buffers)?),
        Some(Json::Object(b)) if b.get("type") == Some(&Json::String("bytes".into())) => {
            if dtype == DType::Object {
                return Err(malformed(tag, "dtype object needs a list body"));
            }
            let raw = decode_bytes(b, buffers)?;
            ArrayData::Binary(if big_endian {
                swap_bytes(&raw, dtype.size())
            } else {
                raw
            })
        }
        _ => return Err(malformed(tag, "array must be bytes or a list")),
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
