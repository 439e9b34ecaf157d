//! Typed value encoding (spec §6.3, §6.4): content JSON plus binary buffers to [`Value`]
//! ([`decode_value`]) and back ([`Encoder`]).
//!
//! Neither direction can be made to overflow the stack by untrusted input. Decoding
//! recurses only over JSON nesting, which serde_json caps at 128 levels. Encoding follows
//! references from model to model, to any depth the document's graph has, so it keeps
//! its work on an explicit stack instead of recursing.

mod decode;
mod encode;
mod raw;

use std::cell::Cell;
use std::collections::HashMap;

use bytes::Bytes;

pub use decode::decode_value;
pub(crate) use decode::{decode_items, decode_raw};
pub use encode::{EncodableModel, Encoder, ModelLookup, NoExpansion};
pub(crate) use raw::{take, Raw};

/// Bytes that inline gzip values of one message may inflate to, unless set otherwise
/// ([`Buffers::with_inflate_limit`]).
pub const DEFAULT_MAX_INFLATED_BYTES: usize = 256 * 1024 * 1024;

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
    /// Inline gzip `bytes` that inflate past the message's budget.
    #[error("inline bytes inflate to more than {limit} bytes, the limit per message (--max-decoded-bytes)")]
    InflateLimit {
        /// The budget in bytes.
        limit: usize,
    },
}

/// The binary buffers of one message, keyed by buffer id, and the budget for the bytes
/// its inline gzip values may inflate to.
#[derive(Debug)]
pub struct Buffers {
    map: HashMap<String, Bytes>,
    inflate_limit: usize,
    inflated: Cell<usize>,
}

impl Default for Buffers {
    fn default() -> Self {
        Buffers::new()
    }
}

impl Buffers {
    /// No buffers, and the default inflation budget.
    pub fn new() -> Buffers {
        Buffers {
            map: HashMap::new(),
            inflate_limit: DEFAULT_MAX_INFLATED_BYTES,
            inflated: Cell::new(0),
        }
    }

    /// Sets the budget: inline gzip values of the message may inflate to at most `limit`
    /// bytes in all.
    pub fn with_inflate_limit(mut self, limit: usize) -> Buffers {
        self.inflate_limit = limit;
        self
    }

    /// Adds a buffer.
    pub fn insert(&mut self, id: String, data: Bytes) {
        self.map.insert(id, data);
    }

    /// The buffer `id`.
    pub fn get(&self, id: &str) -> Option<&Bytes> {
        self.map.get(id)
    }

    /// Number of buffers.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when the message has no buffers.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The inflation budget of the message.
    pub fn inflate_limit(&self) -> usize {
        self.inflate_limit
    }

    fn inflate_left(&self) -> usize {
        self.inflate_limit.saturating_sub(self.inflated.get())
    }

    fn charge_inflated(&self, n: usize) {
        self.inflated.set(self.inflated.get().saturating_add(n));
    }
}

/// Builds the buffer map of a message from its `(id, bytes)` pairs.
pub fn buffer_map(buffers: Vec<(String, Bytes)>) -> Buffers {
    let mut out = Buffers::new();
    for (id, data) in buffers {
        out.insert(id, data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{ArrayData, ArrayForm, ArrayValue, DType, Value};
    use base64::Engine;
    use serde_json::Value as Json;

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
        assert_eq!(&buffers[0].1, bufs.get("p9").unwrap());
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .contains(r#""data":{"id":"0"}"#));
    }

    #[test]
    fn each_buffer_comes_with_its_element_size() {
        let array = |dtype: DType, form: ArrayForm| {
            Value::Array(Box::new(ArrayValue {
                form,
                dtype,
                shape: vec![2],
                data: ArrayData::Binary(Bytes::from(vec![0u8; 2 * dtype.size()])),
            }))
        };
        let mut e = Encoder::new(&NoExpansion);
        e.value(&Value::List(vec![
            array(DType::F64, ArrayForm::Nd),
            Value::Bytes(Bytes::from_static(b"abc")),
            array(DType::I32, ArrayForm::Typed),
            array(DType::U16, ArrayForm::Nd),
        ]));
        assert_eq!(e.element_sizes(), [8, 0, 4, 2]);
        assert_eq!(e.finish().1.len(), 4);
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

    fn gzip_b64(data: &[u8]) -> String {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, data).unwrap();
        base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
    }

    #[test]
    fn inline_gzip_past_the_budget_is_refused_without_inflating_it_all() {
        // 64 MiB of zeros compress to about 64 KiB.
        let b64 = gzip_b64(&vec![0u8; 64 << 20]);
        let j = serde_json::json!({"type": "bytes", "data": b64});
        let small = Buffers::new().with_inflate_limit(1 << 20);
        assert!(matches!(
            decode_value(&j, &small),
            Err(CodecError::InflateLimit { limit }) if limit == 1 << 20
        ));
        // The budget is for the whole message: two values of 600 KiB overrun 1 MiB.
        let part = gzip_b64(&vec![1u8; 600 << 10]);
        let two =
            serde_json::json!([{"type": "bytes", "data": part}, {"type": "bytes", "data": part}]);
        let budget = Buffers::new().with_inflate_limit(1 << 20);
        assert!(matches!(
            decode_value(&two, &budget),
            Err(CodecError::InflateLimit { .. })
        ));
        let one = serde_json::json!({"type": "bytes", "data": part});
        assert!(decode_value(&one, &Buffers::new().with_inflate_limit(1 << 20)).is_ok());
    }

    #[test]
    fn json_nested_past_serde_jsons_limit_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(serde_json::from_str::<Json>(&deep).is_err());
    }
}
