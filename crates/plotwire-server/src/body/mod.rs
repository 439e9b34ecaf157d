//! REST request bodies (docs/rest-api.md, "Body formats" and "Reading back").
//!
//! [`decode`] turns a body of any accepted `Content-Type` into [`Columns`], ready to go
//! into a `ColumnsStreamed` or `ColumnDataChanged` event; [`conform`] checks them against
//! the kinds of a source's existing columns; [`encode_columns_json`] writes a row range of
//! a source's columns back as JSON.
//!
//! Numeric columns become 1-D binary ndarrays; Bokeh 3.9 has no 64-bit integer dtype, so
//! 64-bit integers are narrowed to `int32` when every value fits, else to `float64` when
//! every value is exact there (|v| ≤ 2^53), else refused. Strings become a list of
//! strings, booleans a `bool` ndarray. Nothing recurses over the body: columns are flat.

mod arrow;
mod columns;
mod conform;
mod encode;
mod error;
mod json;
mod ndjson;
mod raw;

use bytes::Bytes;
use plotwire_protocol::value::{DType, Value};

pub use conform::conform;
pub use encode::encode_columns_json;
pub use error::BodyError;

/// Decoded columns, in body order: a name and a wire value each, all of equal length.
pub type Columns = Vec<(String, Value)>;

/// `application/json`: an object of column name to list.
pub const JSON: &str = "application/json";
/// `application/x-ndjson`: one JSON object per line, one row each.
pub const NDJSON: &str = "application/x-ndjson";
/// `application/x-plotwire-columns`: the raw typed-array format.
pub const RAW: &str = "application/x-plotwire-columns";
/// `application/vnd.apache.arrow.stream`: Arrow IPC streaming format.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";
/// `application/vnd.apache.arrow.file`: Arrow IPC file format.
pub const ARROW_FILE: &str = "application/vnd.apache.arrow.file";

/// Every accepted `Content-Type`, for the 415 answer.
pub const ACCEPTED: [&str; 5] = [JSON, NDJSON, RAW, ARROW_STREAM, ARROW_FILE];

/// Limits on one body. Each violation is a [`BodyError::Limit`] naming the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Bytes in the body. Default 256 MiB.
    pub max_body_bytes: usize,
    /// Columns in the body. Default 1,024.
    pub max_columns: usize,
    /// Rows (items per column). Default 16,777,216 (2^24).
    pub max_rows: usize,
    /// UTF-8 bytes of all string items together, once decoded (a dictionary-encoded
    /// Arrow column counts each item). Default 64 MiB.
    pub max_string_bytes: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            max_body_bytes: 256 << 20,
            max_columns: 1024,
            max_rows: 1 << 24,
            max_string_bytes: 64 << 20,
        }
    }
}

/// Decodes a request body by its `Content-Type` (parameters such as `; charset=utf-8`
/// are ignored) into equal-length columns.
pub fn decode(content_type: &str, body: &Bytes, limits: &BodyLimits) -> Result<Columns, BodyError> {
    if body.len() > limits.max_body_bytes {
        return Err(BodyError::limit("max_body_bytes", limits.max_body_bytes));
    }
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let mut budget = columns::Budget::new(limits);
    let decoded = match mime.as_str() {
        JSON => json::decode(body, &mut budget)?,
        NDJSON => ndjson::decode(body, &mut budget)?,
        RAW => raw::decode(body, &mut budget)?,
        ARROW_STREAM => arrow::decode_stream(body, &mut budget)?,
        ARROW_FILE => arrow::decode_file(body, &mut budget)?,
        _ => return Err(BodyError::UnsupportedType { found: mime }),
    };
    columns::finish(decoded)
}

/// A column of numbers, as a body's numbers decode: a float64 ndarray. What an in-process
/// write ([`crate::Plotwire::stream`]) passes for a numeric column.
pub fn float64_column(values: &[f64]) -> Value {
    columns::ndarray(DType::F64, columns::f64_bytes(values))
}

/// A column of integers, narrowed as a body's are: `int32` when every value fits, else
/// `float64` when every value is exact there; refused past ±2^53.
pub fn int_column(name: &str, values: &[i64]) -> Result<Value, BodyError> {
    columns::narrow(name, values)
}

/// A column of booleans: a `bool` ndarray.
pub fn bool_column(values: &[bool]) -> Value {
    columns::ndarray(DType::Bool, values.iter().map(|&b| u8::from(b)).collect())
}

/// A column of strings: a list of strings.
pub fn string_column<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Value {
    Value::List(values.into_iter().map(|s| Value::Str(s.into())).collect())
}
