//! `application/x-plotwire-columns` bodies: `"PWC1"`, a u32 LE header length H, H bytes
//! of JSON header `{"columns":[{"name","dtype","length"}, ...]}`, then each column's
//! little-endian elements in header order, each starting at an 8-aligned offset.

use plotwire_api::raw::{self, Dtype, RawError};
use plotwire_protocol::value::DType;

use super::columns::{Budget, Data, Table};
use super::BodyError;

/// The element types of the raw format, as the decoder keeps them.
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
    fn of(d: Dtype) -> RawType {
        RawType::Bokeh(match d {
            Dtype::Int64 => return RawType::I64,
            Dtype::UInt64 => return RawType::U64,
            Dtype::Float64 => DType::F64,
            Dtype::Float32 => DType::F32,
            Dtype::Int32 => DType::I32,
            Dtype::Int16 => DType::I16,
            Dtype::Int8 => DType::I8,
            Dtype::UInt32 => DType::U32,
            Dtype::UInt16 => DType::U16,
            Dtype::UInt8 => DType::U8,
            Dtype::Bool => DType::Bool,
        })
    }
}

fn raw_error(e: RawError) -> BodyError {
    match e {
        RawError::BadMagic => BodyError::BadMagic,
        RawError::TruncatedHeader(problem) => BodyError::TruncatedHeader { problem },
        RawError::BadHeader(problem) => BodyError::BadHeader { problem },
        RawError::UnknownDtype { column, dtype } => BodyError::UnknownDType { column, dtype },
        RawError::ShortData {
            column,
            start,
            end,
            len,
        } => BodyError::ShortData {
            column,
            start,
            end,
            len,
        },
        RawError::TrailingData(extra) => BodyError::TrailingData { extra },
    }
}

/// Decodes a raw body (the layout is found by [`plotwire_api::raw::parse`], the format's
/// one definition).
pub(super) fn decode(body: &[u8], budget: &mut Budget) -> Result<Table, BodyError> {
    let layout = raw::parse(body).map_err(raw_error)?;
    budget.columns(layout.len())?;
    let mut table = Table::default();
    for col in layout {
        budget.rows(col.length)?;
        let bytes = body.get(col.bytes).unwrap_or_default();
        let data = read(&col.name, RawType::of(col.dtype), bytes)?;
        table.add(col.name, data, budget)?;
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
