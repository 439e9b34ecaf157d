//! `application/x-plotwire-columns` bodies: `"PWC1"`, a u32 LE header length H, H bytes
//! of JSON header `{"columns":[{"name","dtype","length"}, ...]}`, then each column's
//! little-endian elements in header order, each starting at an 8-aligned offset.

use plotwire_protocol::value::DType;
use serde::Deserialize;

use super::columns::{Budget, Data, Table};
use super::BodyError;

/// The magic that starts a raw body.
const MAGIC: &[u8; 4] = b"PWC1";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    columns: Vec<ColumnHeader>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnHeader {
    name: String,
    dtype: String,
    length: usize,
}

/// The element types of the raw format.
#[derive(Clone, Copy)]
enum RawType {
    /// A Bokeh dtype, taken as it is (bool checked to be 0 or 1).
    Bokeh(DType),
    /// `int64`, narrowed.
    I64,
    /// `uint64`, narrowed.
    U64,
}

impl RawType {
    fn of(name: &str) -> Option<RawType> {
        Some(match name {
            "int64" => RawType::I64,
            "uint64" => RawType::U64,
            "object" => return None,
            other => RawType::Bokeh(DType::from_name(other)?),
        })
    }

    fn size(self) -> usize {
        match self {
            RawType::Bokeh(d) => d.size(),
            RawType::I64 | RawType::U64 => 8,
        }
    }
}

fn align8(x: usize) -> Option<usize> {
    x.checked_add(7).map(|x| x & !7)
}

/// Decodes a raw body.
pub(super) fn decode(body: &[u8], budget: &mut Budget) -> Result<Table, BodyError> {
    let truncated = |problem: &str| BodyError::TruncatedHeader {
        problem: problem.to_owned(),
    };
    let magic = body.get(..4).ok_or_else(|| truncated("no magic"))?;
    if magic != MAGIC {
        return Err(BodyError::BadMagic);
    }
    let len_bytes: [u8; 4] = body
        .get(4..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| truncated("no header length"))?;
    let h = usize::try_from(u32::from_le_bytes(len_bytes)).unwrap_or(usize::MAX);
    let header_end = h
        .checked_add(8)
        .filter(|&e| e <= body.len())
        .ok_or_else(|| {
            truncated(&format!(
                "the header needs {h} bytes but the body has {}",
                body.len().saturating_sub(8)
            ))
        })?;
    let header: Header = serde_json::from_slice(body.get(8..header_end).unwrap_or_default())
        .map_err(|e| BodyError::BadHeader {
            problem: e.to_string(),
        })?;
    budget.columns(header.columns.len())?;
    let mut table = Table::default();
    let mut offset = header_end;
    for col in header.columns {
        let ty = RawType::of(&col.dtype).ok_or_else(|| BodyError::UnknownDType {
            column: col.name.clone(),
            dtype: col.dtype.clone(),
        })?;
        budget.rows(col.length)?;
        let start = align8(offset).unwrap_or(usize::MAX);
        let end = col
            .length
            .checked_mul(ty.size())
            .and_then(|n| start.checked_add(n));
        let bytes = match end.and_then(|e| body.get(start..e)) {
            Some(b) => b,
            None => {
                return Err(BodyError::ShortData {
                    column: col.name,
                    start,
                    end: end.unwrap_or(usize::MAX),
                    len: body.len(),
                })
            }
        };
        offset = start + bytes.len();
        let data = read(&col.name, ty, bytes)?;
        table.add(col.name, data, budget)?;
    }
    let padded = align8(offset).unwrap_or(usize::MAX).min(body.len());
    if padded < body.len() {
        return Err(BodyError::TrailingData {
            extra: body.len() - offset,
        });
    }
    Ok(table)
}

/// One column's elements.
fn read(name: &str, ty: RawType, bytes: &[u8]) -> Result<Data, BodyError> {
    Ok(match ty {
        RawType::Bokeh(DType::Bool) => {
            if bytes.iter().any(|&b| b > 1) {
                return Err(BodyError::bad_column(
                    name,
                    "a bool element is neither 0 nor 1",
                ));
            }
            Data::Bin {
                dtype: DType::Bool,
                bytes: bytes.to_vec(),
            }
        }
        RawType::Bokeh(dtype) => Data::Bin {
            dtype,
            bytes: bytes.to_vec(),
        },
        RawType::I64 => Data::I64(
            bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(le8(c)))
                .collect(),
        ),
        RawType::U64 => Data::U64(
            bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(le8(c)))
                .collect(),
        ),
    })
}

fn le8(c: &[u8]) -> [u8; 8] {
    c.try_into().unwrap_or_default()
}
