//! The raw columns body, `application/x-plotwire-columns`: the fastest way to send
//! numbers to plotwire, because the server copies them as they are.
//!
//! ```text
//! "PWC1"            4 bytes, the magic
//! header length H   u32 little-endian
//! header            H bytes of JSON: {"columns":[{"name":"x","dtype":"float64","length":N}, ...]}
//! column data       each column's N little-endian elements, in header order, each
//!                   starting at an offset (from the start of the body) that is a
//!                   multiple of 8
//! ```
//!
//! [`encode`] writes such a body and [`parse`] finds the columns in one without copying
//! them.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// The `Content-Type` of a raw columns body.
pub const CONTENT_TYPE: &str = "application/x-plotwire-columns";

/// The four bytes a raw body starts with.
pub const MAGIC: &[u8; 4] = b"PWC1";

/// The element types of a raw column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE 754 double.
    Float64,
    /// IEEE 754 single.
    Float32,
    /// Signed 64-bit (the server narrows it: to int32 when every value fits, else to
    /// float64 when every value is exact there).
    Int64,
    /// Signed 32-bit.
    Int32,
    /// Signed 16-bit.
    Int16,
    /// Signed 8-bit.
    Int8,
    /// Unsigned 64-bit (narrowed as `Int64`).
    UInt64,
    /// Unsigned 32-bit.
    UInt32,
    /// Unsigned 16-bit.
    UInt16,
    /// Unsigned 8-bit.
    UInt8,
    /// One byte, 0 or 1.
    Bool,
}

impl Dtype {
    /// Every dtype.
    pub const ALL: [Dtype; 11] = [
        Dtype::Float64,
        Dtype::Float32,
        Dtype::Int64,
        Dtype::Int32,
        Dtype::Int16,
        Dtype::Int8,
        Dtype::UInt64,
        Dtype::UInt32,
        Dtype::UInt16,
        Dtype::UInt8,
        Dtype::Bool,
    ];

    /// Its name in the header, as numpy spells it: `"float64"`, `"uint8"`, `"bool"`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Float64 => "float64",
            Dtype::Float32 => "float32",
            Dtype::Int64 => "int64",
            Dtype::Int32 => "int32",
            Dtype::Int16 => "int16",
            Dtype::Int8 => "int8",
            Dtype::UInt64 => "uint64",
            Dtype::UInt32 => "uint32",
            Dtype::UInt16 => "uint16",
            Dtype::UInt8 => "uint8",
            Dtype::Bool => "bool",
        }
    }

    /// The dtype of a header name.
    pub fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Float64 | Dtype::Int64 | Dtype::UInt64 => 8,
            Dtype::Float32 | Dtype::Int32 | Dtype::UInt32 => 4,
            Dtype::Int16 | Dtype::UInt16 => 2,
            Dtype::Int8 | Dtype::UInt8 | Dtype::Bool => 1,
        }
    }
}

/// The JSON header of a raw body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The columns, in the order their data follows.
    pub columns: Vec<ColumnHeader>,
}

/// One column in the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnHeader {
    /// The column name.
    pub name: String,
    /// Its [`Dtype::name`].
    pub dtype: String,
    /// Its number of elements.
    pub length: usize,
}

/// A column found in a raw body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnLayout {
    /// The column name.
    pub name: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Its number of elements.
    pub length: usize,
    /// Where its elements are in the body.
    pub bytes: Range<usize>,
}

/// Why a raw body does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    /// It does not start with [`MAGIC`].
    #[error("a raw columns body starts with \"PWC1\"")]
    BadMagic,
    /// It ends before its header does.
    #[error("the raw header is cut short: {0}")]
    TruncatedHeader(String),
    /// The header is not the JSON described above.
    #[error("the raw header is not valid: {0}")]
    BadHeader(String),
    /// A column names a dtype that does not exist.
    #[error("column {column:?}: unknown dtype {dtype:?} (use float64 float32 int64 int32 int16 int8 uint64 uint32 uint16 uint8 bool)")]
    UnknownDtype {
        /// The column.
        column: String,
        /// The dtype it gave.
        dtype: String,
    },
    /// A column's data runs past the end of the body.
    #[error("column {column:?} needs bytes {start}..{end} but the body has {len}")]
    ShortData {
        /// The column.
        column: String,
        /// Where its data starts.
        start: usize,
        /// Where it would end.
        end: usize,
        /// The body's length.
        len: usize,
    },
    /// Bytes follow the last column (beyond its padding to 8).
    #[error("{0} bytes follow the last column")]
    TrailingData(usize),
}

/// The next multiple of 8 at or after `x`.
fn align8(x: usize) -> Option<usize> {
    x.checked_add(7).map(|x| x & !7)
}

/// Finds the columns of a raw body. Nothing is copied; every offset and length is
/// checked against the body, and the header alone is parsed (it cannot be longer than
/// the body).
pub fn parse(body: &[u8]) -> Result<Vec<ColumnLayout>, RawError> {
    let magic = body
        .get(..4)
        .ok_or_else(|| RawError::TruncatedHeader("no magic".into()))?;
    if magic != MAGIC {
        return Err(RawError::BadMagic);
    }
    let len_bytes: [u8; 4] = body
        .get(4..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| RawError::TruncatedHeader("no header length".into()))?;
    let h = usize::try_from(u32::from_le_bytes(len_bytes)).unwrap_or(usize::MAX);
    let header_end = h
        .checked_add(8)
        .filter(|&e| e <= body.len())
        .ok_or_else(|| {
            RawError::TruncatedHeader(format!(
                "the header needs {h} bytes but the body has {}",
                body.len().saturating_sub(8)
            ))
        })?;
    let header: Header = serde_json::from_slice(body.get(8..header_end).unwrap_or_default())
        .map_err(|e| RawError::BadHeader(e.to_string()))?;
    let mut out = Vec::with_capacity(header.columns.len());
    let mut offset = header_end;
    for col in header.columns {
        let Some(dtype) = Dtype::from_name(&col.dtype) else {
            return Err(RawError::UnknownDtype {
                column: col.name,
                dtype: col.dtype,
            });
        };
        let start = align8(offset).unwrap_or(usize::MAX);
        let end = col
            .length
            .checked_mul(dtype.size())
            .and_then(|n| start.checked_add(n));
        match end {
            Some(end) if end <= body.len() => {
                offset = end;
                out.push(ColumnLayout {
                    name: col.name,
                    dtype,
                    length: col.length,
                    bytes: start..end,
                });
            }
            _ => {
                return Err(RawError::ShortData {
                    column: col.name,
                    start,
                    end: end.unwrap_or(usize::MAX),
                    len: body.len(),
                })
            }
        }
    }
    let padded = align8(offset).unwrap_or(usize::MAX).min(body.len());
    if padded < body.len() {
        return Err(RawError::TrailingData(body.len() - offset));
    }
    Ok(out)
}

/// A column to encode: a name and its elements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColumnData<'a> {
    /// float64 elements.
    Float64(&'a [f64]),
    /// float32 elements.
    Float32(&'a [f32]),
    /// int64 elements.
    Int64(&'a [i64]),
    /// int32 elements.
    Int32(&'a [i32]),
    /// int16 elements.
    Int16(&'a [i16]),
    /// int8 elements.
    Int8(&'a [i8]),
    /// uint64 elements.
    UInt64(&'a [u64]),
    /// uint32 elements.
    UInt32(&'a [u32]),
    /// uint16 elements.
    UInt16(&'a [u16]),
    /// uint8 elements.
    UInt8(&'a [u8]),
    /// bool elements.
    Bool(&'a [bool]),
}

impl ColumnData<'_> {
    /// Its element type.
    pub fn dtype(&self) -> Dtype {
        match self {
            ColumnData::Float64(_) => Dtype::Float64,
            ColumnData::Float32(_) => Dtype::Float32,
            ColumnData::Int64(_) => Dtype::Int64,
            ColumnData::Int32(_) => Dtype::Int32,
            ColumnData::Int16(_) => Dtype::Int16,
            ColumnData::Int8(_) => Dtype::Int8,
            ColumnData::UInt64(_) => Dtype::UInt64,
            ColumnData::UInt32(_) => Dtype::UInt32,
            ColumnData::UInt16(_) => Dtype::UInt16,
            ColumnData::UInt8(_) => Dtype::UInt8,
            ColumnData::Bool(_) => Dtype::Bool,
        }
    }

    /// Its number of elements.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Float64(v) => v.len(),
            ColumnData::Float32(v) => v.len(),
            ColumnData::Int64(v) => v.len(),
            ColumnData::Int32(v) => v.len(),
            ColumnData::Int16(v) => v.len(),
            ColumnData::Int8(v) => v.len(),
            ColumnData::UInt64(v) => v.len(),
            ColumnData::UInt32(v) => v.len(),
            ColumnData::UInt16(v) => v.len(),
            ColumnData::UInt8(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
        }
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends its elements, little-endian.
    fn write_to(&self, out: &mut Vec<u8>) {
        fn all<T: Copy, const N: usize>(out: &mut Vec<u8>, v: &[T], le: fn(T) -> [u8; N]) {
            for x in v {
                out.extend_from_slice(&le(*x));
            }
        }
        match self {
            ColumnData::Float64(v) => all(out, v, f64::to_le_bytes),
            ColumnData::Float32(v) => all(out, v, f32::to_le_bytes),
            ColumnData::Int64(v) => all(out, v, i64::to_le_bytes),
            ColumnData::Int32(v) => all(out, v, i32::to_le_bytes),
            ColumnData::Int16(v) => all(out, v, i16::to_le_bytes),
            ColumnData::Int8(v) => all(out, v, i8::to_le_bytes),
            ColumnData::UInt64(v) => all(out, v, u64::to_le_bytes),
            ColumnData::UInt32(v) => all(out, v, u32::to_le_bytes),
            ColumnData::UInt16(v) => all(out, v, u16::to_le_bytes),
            ColumnData::UInt8(v) => out.extend_from_slice(v),
            ColumnData::Bool(v) => out.extend(v.iter().map(|b| u8::from(*b))),
        }
    }
}

/// Writes a raw body of `columns`, in order.
pub fn encode(columns: &[(&str, ColumnData<'_>)]) -> Vec<u8> {
    let header = Header {
        columns: columns
            .iter()
            .map(|(name, data)| ColumnHeader {
                name: (*name).to_owned(),
                dtype: data.dtype().name().to_owned(),
                length: data.len(),
            })
            .collect(),
    };
    // A header of strings and numbers always serializes.
    let mut json = serde_json::to_vec(&header).unwrap_or_default();
    // Pad the header with spaces (JSON whitespace) so the first column is 8-aligned.
    json.resize(json.len() + (8 - json.len() % 8) % 8, b' ');
    let data: usize = columns
        .iter()
        .map(|(_, d)| align8(d.len() * d.dtype().size()).unwrap_or(0))
        .sum();
    let mut out = Vec::with_capacity(8 + json.len() + data);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&json);
    for (i, (_, d)) in columns.iter().enumerate() {
        d.write_to(&mut out);
        if i + 1 < columns.len() {
            out.resize(align8(out.len()).unwrap_or(out.len()), 0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_finds_every_column_in_place() {
        let x = [1.5f64, -0.0, f64::NAN];
        let flags = [true, false, true];
        let small = [7i16, -8, 9];
        let body = encode(&[
            ("flags", ColumnData::Bool(&flags)),
            ("x", ColumnData::Float64(&x)),
            ("small", ColumnData::Int16(&small)),
        ]);
        let cols = parse(&body).unwrap();
        assert_eq!(cols.len(), 3);
        assert_eq!(cols[0].dtype, Dtype::Bool);
        assert_eq!(&body[cols[0].bytes.clone()], &[1, 0, 1]);
        assert_eq!(cols[1].bytes.start % 8, 0);
        let back: Vec<u64> = body[cols[1].bytes.clone()]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(back, x.map(f64::to_bits));
        assert_eq!((cols[2].name.as_str(), cols[2].length), ("small", 3));
        assert_eq!(
            cols[2].bytes.end,
            body.len(),
            "no padding after the last column"
        );
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        assert_eq!(
            parse(b"PWC"),
            Err(RawError::TruncatedHeader("no magic".into()))
        );
        assert_eq!(parse(b"XXXX\0\0\0\0"), Err(RawError::BadMagic));
        assert!(matches!(
            parse(b"PWC1\xff\0\0\0{}"),
            Err(RawError::TruncatedHeader(_))
        ));
        let body = encode(&[("x", ColumnData::Float64(&[1.0, 2.0]))]);
        assert!(matches!(
            parse(&body[..body.len() - 1]),
            Err(RawError::ShortData { .. })
        ));
        let mut long = body.clone();
        long.extend_from_slice(&[0; 16]);
        assert_eq!(parse(&long), Err(RawError::TrailingData(16)));
        let text = br#"{"columns":[{"name":"x","dtype":"complex","length":0}]}"#;
        let mut odd = MAGIC.to_vec();
        odd.extend_from_slice(&u32::try_from(text.len()).unwrap().to_le_bytes());
        odd.extend_from_slice(text);
        assert!(matches!(parse(&odd), Err(RawError::UnknownDtype { .. })));
    }

    #[test]
    fn every_dtype_name_round_trips() {
        for d in Dtype::ALL {
            assert_eq!(Dtype::from_name(d.name()), Some(d));
        }
        assert_eq!(Dtype::from_name("object"), None);
    }
}
