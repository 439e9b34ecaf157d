//! Typed value encoding (spec §6.3, §6.4): content JSON plus binary buffers to [`Value`]
//! and back.
//!
//! Decoding resolves `{"type":"bytes","data":{"id"}}` against the message's buffers and
//! normalises every binary array to little-endian. Encoding writes JSON text directly and
//! collects buffers, writing each model in full at its first occurrence in the message
//! when the caller's [`ModelLookup`] says it must.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::Read;

use base64::Engine;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value as Json;

use crate::value::{ArrayData, ArrayForm, ArrayValue, DType, Id, ModelRep, Slice, Value};

/// Why a value could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The content was not valid JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A `bytes` value referred to a buffer the message does not carry.
    #[error("unknown buffer id {0:?}")]
    UnknownBuffer(String),
    /// A tagged value lacked a field or had one of the wrong type.
    #[error("malformed {tag} value: {problem}")]
    Malformed {
        /// The `type` tag of the value.
        tag: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A dtype name that Bokeh does not define.
    #[error("unknown dtype {0:?}")]
    UnknownDType(String),
    /// A binary array whose byte length does not match its shape and dtype.
    #[error("array of shape {shape:?} and dtype {dtype} needs {expected} bytes, got {actual}")]
    ArrayLength {
        /// The declared shape.
        shape: Vec<usize>,
        /// The declared dtype name.
        dtype: &'static str,
        /// The byte length the shape implies.
        expected: usize,
        /// The byte length received.
        actual: usize,
    },
    /// A base64 `bytes` value that could not be decoded or gunzipped.
    #[error("invalid inline bytes: {0}")]
    InlineBytes(String),
}

fn malformed(tag: &'static str, problem: impl Into<String>) -> CodecError {
    CodecError::Malformed {
        tag,
        problem: problem.into(),
    }
}

/// The binary buffers of one message, keyed by buffer id.
pub type Buffers = HashMap<String, Bytes>;

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
        Some(Json::String(b64)) => inline_bytes(b64),
        _ => Err(malformed(
            "bytes",
            "data must be a buffer reference or a string",
        )),
    }
}

/// Decodes the inline form of `bytes`: standard base64, gzip-compressed by both Bokeh
/// encoders. Data that is not gzip is taken as it is.
fn inline_bytes(b64: &str) -> Result<Bytes, CodecError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| CodecError::InlineBytes(e.to_string()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| CodecError::InlineBytes(e.to_string()))?;
        Ok(Bytes::from(out))
    } else {
        Ok(Bytes::from(raw))
    }
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

/// A model as the encoder writes it in full: its type name and attributes.
pub struct EncodableModel<'a> {
    /// The qualified type name.
    pub name: &'a str,
    /// The attributes to write, in order.
    pub attributes: Vec<(&'a str, Cow<'a, Value>)>,
}

/// Tells the encoder which referenced models it must write in full.
pub trait ModelLookup {
    /// The model to write in full at the first occurrence of `id` in a message, or `None`
    /// to write a bare reference.
    fn full_model(&self, id: &str) -> Option<EncodableModel<'_>>;
}

/// A lookup that never expands: every reference stays a reference.
pub struct NoExpansion;

impl ModelLookup for NoExpansion {
    fn full_model(&self, _id: &str) -> Option<EncodableModel<'_>> {
        None
    }
}

/// Writes values as Bokeh content JSON, collecting binary data into buffers.
///
/// One encoder builds one message: buffer ids and the "already written in full" set are
/// per message (spec §6.2, §6.4).
pub struct Encoder<'l> {
    out: Vec<u8>,
    buffers: Vec<(String, Bytes)>,
    written: HashSet<Id>,
    lookup: &'l dyn ModelLookup,
}

impl<'l> Encoder<'l> {
    /// A new encoder that expands references through `lookup`.
    pub fn new(lookup: &'l dyn ModelLookup) -> Self {
        Encoder {
            out: Vec::with_capacity(256),
            buffers: Vec::new(),
            written: HashSet::new(),
            lookup,
        }
    }

    /// Appends raw JSON text (the caller guarantees it is valid in context).
    pub fn raw(&mut self, json: &str) {
        self.out.extend_from_slice(json.as_bytes());
    }

    /// Appends a JSON string literal.
    pub fn string(&mut self, s: &str) {
        // Writing a &str to a Vec cannot fail.
        let _ = s.serialize(&mut serde_json::Serializer::new(&mut self.out));
    }

    /// Appends a JSON object key followed by `:`.
    pub fn key(&mut self, k: &str) {
        self.string(k);
        self.out.push(b':');
    }

    /// Appends an integer.
    pub fn int(&mut self, i: i64) {
        let _ = i.serialize(&mut serde_json::Serializer::new(&mut self.out));
    }

    /// Appends a float, tagged when it is NaN or infinite.
    pub fn float(&mut self, f: f64) {
        if f.is_finite() {
            let _ = f.serialize(&mut serde_json::Serializer::new(&mut self.out));
        } else {
            let v = if f.is_nan() {
                "nan"
            } else if f > 0.0 {
                "+inf"
            } else {
                "-inf"
            };
            self.raw("{\"type\":\"number\",\"value\":\"");
            self.raw(v);
            self.raw("\"}");
        }
    }

    /// Appends a binary buffer reference and queues the buffer.
    pub fn bytes(&mut self, data: Bytes) {
        let id = self.buffers.len().to_string();
        self.raw("{\"type\":\"bytes\",\"data\":{\"id\":");
        self.string(&id);
        self.raw("}}");
        self.buffers.push((id, data));
    }

    /// Appends a reference to `id`, writing the model in full if the lookup asks for it
    /// and this message has not written it yet.
    pub fn reference(&mut self, id: &str) {
        if !self.written.contains(id) {
            if let Some(model) = self.lookup.full_model(id) {
                self.written.insert(id.to_owned());
                self.model(model.name, id, &model.attributes);
                return;
            }
        }
        self.raw("{\"id\":");
        self.string(id);
        self.raw("}");
    }

    fn model(&mut self, name: &str, id: &str, attributes: &[(&str, Cow<'_, Value>)]) {
        self.raw("{\"type\":\"object\",\"name\":");
        self.string(name);
        self.raw(",\"id\":");
        self.string(id);
        if !attributes.is_empty() {
            self.raw(",\"attributes\":{");
            for (i, (k, v)) in attributes.iter().enumerate() {
                if i > 0 {
                    self.raw(",");
                }
                self.key(k);
                self.value(v);
            }
            self.raw("}");
        }
        self.raw("}");
    }

    /// Appends any value.
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.raw("null"),
            Value::Bool(true) => self.raw("true"),
            Value::Bool(false) => self.raw("false"),
            Value::Int(i) => self.int(*i),
            Value::Float(f) => self.float(*f),
            Value::Str(s) => self.string(s),
            Value::List(items) => self.list(items),
            Value::Dict(fields) => {
                self.raw("{");
                self.fields(fields);
                self.raw("}");
            }
            Value::Map(entries) => {
                self.raw("{\"type\":\"map\"");
                if !entries.is_empty() {
                    self.raw(",\"entries\":[");
                    for (i, (k, v)) in entries.iter().enumerate() {
                        if i > 0 {
                            self.raw(",");
                        }
                        self.raw("[");
                        self.value(k);
                        self.raw(",");
                        self.value(v);
                        self.raw("]");
                    }
                    self.raw("]");
                }
                self.raw("}");
            }
            Value::Set(items) => {
                self.raw("{\"type\":\"set\"");
                if !items.is_empty() {
                    self.raw(",\"entries\":");
                    self.list(items);
                }
                self.raw("}");
            }
            Value::Bytes(b) => self.bytes(b.clone()),
            Value::Array(a) => self.array(a),
            Value::Slice(s) => {
                self.raw("{\"type\":\"slice\",\"start\":");
                self.opt_int(s.start);
                self.raw(",\"stop\":");
                self.opt_int(s.stop);
                self.raw(",\"step\":");
                self.opt_int(s.step);
                self.raw("}");
            }
            Value::Ref(id) => self.reference(id),
            Value::Model(rep) => {
                if self.written.insert(rep.id.clone()) {
                    let attrs: Vec<(&str, Cow<'_, Value>)> = rep
                        .attributes
                        .iter()
                        .map(|(k, v)| (k.as_str(), Cow::Borrowed(v)))
                        .collect();
                    self.model(&rep.name, &rep.id, &attrs);
                } else {
                    self.reference(&rep.id);
                }
            }
            Value::Tagged { tag, fields } => {
                self.raw("{\"type\":");
                self.string(tag);
                if !fields.is_empty() {
                    self.raw(",");
                    self.fields(fields);
                }
                self.raw("}");
            }
        }
    }

    fn opt_int(&mut self, i: Option<i64>) {
        match i {
            Some(i) => self.int(i),
            None => self.raw("null"),
        }
    }

    fn list(&mut self, items: &[Value]) {
        self.raw("[");
        for (i, v) in items.iter().enumerate() {
            if i > 0 {
                self.raw(",");
            }
            self.value(v);
        }
        self.raw("]");
    }

    fn fields(&mut self, fields: &[(String, Value)]) {
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                self.raw(",");
            }
            self.key(k);
            self.value(v);
        }
    }

    /// Appends a typed array or ndarray.
    pub fn array(&mut self, a: &ArrayValue) {
        match a.form {
            ArrayForm::Typed => self.raw("{\"type\":\"typed_array\",\"array\":"),
            ArrayForm::Nd => self.raw("{\"type\":\"ndarray\",\"array\":"),
        }
        match &a.data {
            ArrayData::Binary(b) => self.bytes(b.clone()),
            ArrayData::List(items) => self.list(items),
        }
        if a.form == ArrayForm::Nd {
            self.raw(",\"shape\":[");
            for (i, d) in a.shape.iter().enumerate() {
                if i > 0 {
                    self.raw(",");
                }
                self.int(i64::try_from(*d).unwrap_or(i64::MAX));
            }
            self.raw("]");
        }
        self.raw(",\"dtype\":");
        self.string(a.dtype.name());
        self.raw(",\"order\":\"little\"}");
    }

    /// Finishes the message: the content JSON and its buffers, in reference order.
    pub fn finish(self) -> (Bytes, Vec<(String, Bytes)>) {
        (Bytes::from(self.out), self.buffers)
    }
}

/// Builds the buffer map of a message from its `(id, bytes)` pairs.
pub fn buffer_map(buffers: Vec<(String, Bytes)>) -> Buffers {
    buffers.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(json: &str) -> String {
        let j: Json = serde_json::from_str(json).unwrap();
        let v = decode_value(&j, &Buffers::new()).unwrap();
        let mut e = Encoder::new(&NoExpansion);
        e.value(&v);
        let (out, _) = e.finish();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn plain_values_roundtrip() {
        for s in [
            r#"{"a":1,"b":[true,null,"x"],"c":2.5}"#,
            r#"{"type":"map","entries":[[1,"int key"],["k",{"type":"set","entries":[1,2]}]]}"#,
            r#"{"type":"map"}"#,
            r#"{"type":"number","value":"nan"}"#,
            r#"{"type":"slice","start":1,"stop":3,"step":null}"#,
            r#"{"type":"value","value":8}"#,
            r#"{"id":"p1008"}"#,
            r#"{"type":"object","name":"Title","id":"p1","attributes":{"text":"hi"}}"#,
        ] {
            assert_eq!(roundtrip(s), s);
        }
    }

    #[test]
    fn buffers_resolve_and_reencode() {
        let mut bufs = Buffers::new();
        bufs.insert(
            "p9".into(),
            Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0xf0, 0x3f]),
        );
        let j: Json = serde_json::from_str(
            r#"{"type":"ndarray","array":{"type":"bytes","data":{"id":"p9"}},"shape":[1],"dtype":"float64","order":"little"}"#,
        )
        .unwrap();
        let v = decode_value(&j, &bufs).unwrap();
        let Value::Array(a) = &v else {
            panic!("not an array")
        };
        assert_eq!(
            a.dtype.read_f64(
                match &a.data {
                    ArrayData::Binary(b) => b,
                    ArrayData::List(_) => panic!("list body"),
                },
                0
            ),
            Some(1.0)
        );
        let mut e = Encoder::new(&NoExpansion);
        e.value(&v);
        let (out, buffers) = e.finish();
        assert_eq!(buffers.len(), 1);
        assert_eq!(buffers[0].1, bufs["p9"]);
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .contains(r#""data":{"id":"0"}"#));
    }

    #[test]
    fn big_endian_is_swapped_and_lengths_checked() {
        let mut bufs = Buffers::new();
        bufs.insert("b".into(), Bytes::from_static(&[0, 1]));
        let j: Json = serde_json::from_str(
            r#"{"type":"typed_array","array":{"type":"bytes","data":{"id":"b"}},"order":"big","dtype":"uint16"}"#,
        )
        .unwrap();
        let Value::Array(a) = decode_value(&j, &bufs).unwrap() else {
            panic!()
        };
        assert_eq!(a.data, ArrayData::Binary(Bytes::from_static(&[1, 0])));
        let bad: Json = serde_json::from_str(
            r#"{"type":"ndarray","array":{"type":"bytes","data":{"id":"b"}},"shape":[3],"dtype":"uint16"}"#,
        )
        .unwrap();
        assert!(matches!(
            decode_value(&bad, &bufs),
            Err(CodecError::ArrayLength { .. })
        ));
        let missing: Json =
            serde_json::from_str(r#"{"type":"bytes","data":{"id":"nope"}}"#).unwrap();
        assert!(matches!(
            decode_value(&missing, &bufs),
            Err(CodecError::UnknownBuffer(_))
        ));
    }

    #[test]
    fn inline_gzip_bytes_decode() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &[0, 1, 2]).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        let j = serde_json::json!({"type": "bytes", "data": b64});
        assert_eq!(
            decode_value(&j, &Buffers::new()).unwrap(),
            Value::Bytes(Bytes::from_static(&[0, 1, 2]))
        );
    }
}
