//! Arrow IPC bodies (`application/vnd.apache.arrow.stream` and `.file`), as pyarrow,
//! polars and pandas write them: one record batch or several, concatenated.
//!
//! Numbers keep their dtype (64-bit integers are narrowed as for every format); nulls in
//! numeric columns become NaN (and make the column float64); booleans and strings may
//! not be null. Timestamps and dates become float64 milliseconds since the epoch, as
//! Bokeh converts `datetime64`. `utf8`, `large_utf8`, `utf8_view` and dictionary-encoded
//! strings are accepted.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, PrimitiveArray, RecordBatch};
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_schema::{ArrowError, DataType, TimeUnit};
use bytes::Bytes;
use plotwire_protocol::value::DType;

use super::columns::{f64_bytes, le_bytes, Budget, Data, Table};
use super::BodyError;

/// Milliseconds per day, for `date32`.
const MS_PER_DAY: f64 = 86_400_000.0;

/// Decodes an Arrow IPC stream. The batches' arrays are slices of `body` itself (copied
/// only where a buffer is not aligned for its type).
pub(super) fn decode_stream(body: &Bytes, budget: &mut Budget) -> Result<Table, BodyError> {
    guarded(|| {
        let mut rest = Buffer::from(body.clone());
        let mut decoder = StreamDecoder::new();
        // `decode` answers None once it has used up `rest`: then the stream must be
        // complete (`finish`).
        let reader = std::iter::from_fn(|| match decoder.decode(&mut rest) {
            Ok(None) => decoder.finish().err().map(Err),
            other => other.transpose(),
        });
        batches(reader, budget)
    })
}

/// Decodes an Arrow IPC file.
pub(super) fn decode_file(body: &[u8], budget: &mut Budget) -> Result<Table, BodyError> {
    guarded(|| {
        let reader =
            arrow_ipc::reader::FileReader::try_new(Cursor::new(body), None).map_err(arrow_error)?;
        batches(reader, budget)
    })
}

/// Runs the reader so that a panic inside the Arrow crates on hostile input is an error,
/// not the end of the request's task.
fn guarded(f: impl FnOnce() -> Result<Table, BodyError>) -> Result<Table, BodyError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(BodyError::Arrow("the Arrow reader failed".into())))
}

fn arrow_error(e: ArrowError) -> BodyError {
    BodyError::Arrow(e.to_string())
}

/// Appends every batch's columns, in schema order.
fn batches(
    reader: impl Iterator<Item = Result<RecordBatch, ArrowError>>,
    budget: &mut Budget,
) -> Result<Table, BodyError> {
    let mut table = Table::default();
    let mut rows = 0usize;
    for batch in reader {
        let batch = batch.map_err(arrow_error)?;
        rows = rows.saturating_add(batch.num_rows());
        budget.rows(rows)?;
        let schema = batch.schema();
        if table.cols.is_empty() {
            budget.columns(schema.fields().len())?;
            for field in schema.fields() {
                table.add(field.name().clone(), Data::Unknown { nulls: 0 }, budget)?;
            }
        }
        for (i, (field, array)) in schema.fields().iter().zip(batch.columns()).enumerate() {
            let piece = convert(field.name(), array.as_ref(), budget)?;
            if let Some((name, data)) = table.cols.get_mut(i) {
                data.append(name, piece)?;
            }
        }
    }
    Ok(table)
}

/// One batch's column as column data.
fn convert(name: &str, a: &dyn Array, budget: &mut Budget) -> Result<Data, BodyError> {
    let unsupported = || BodyError::UnsupportedArrowType {
        column: name.to_owned(),
        data_type: a.data_type().to_string(),
    };
    Ok(match a.data_type() {
        DataType::Int8 => {
            bin::<Int8Type, 1>(a, DType::I8, i8::to_le_bytes).ok_or_else(unsupported)?
        }
        DataType::Int16 => {
            bin::<Int16Type, 2>(a, DType::I16, i16::to_le_bytes).ok_or_else(unsupported)?
        }
        DataType::Int32 => {
            bin::<Int32Type, 4>(a, DType::I32, i32::to_le_bytes).ok_or_else(unsupported)?
        }
        DataType::UInt8 => {
            bin::<UInt8Type, 1>(a, DType::U8, u8::to_le_bytes).ok_or_else(unsupported)?
        }
        DataType::UInt16 => {
            bin::<UInt16Type, 2>(a, DType::U16, u16::to_le_bytes).ok_or_else(unsupported)?
        }
        DataType::UInt32 => {
            bin::<UInt32Type, 4>(a, DType::U32, u32::to_le_bytes).ok_or_else(unsupported)?
        }
        DataType::Float32 => {
            bin::<Float32Type, 4>(a, DType::F32, f32::to_le_bytes).ok_or_else(unsupported)?
        }
        DataType::Float64 => {
            let p = a
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(unsupported)?;
            if p.null_count() == 0 {
                Data::Bin {
                    dtype: DType::F64,
                    bytes: f64_bytes(p.values()),
                }
            } else {
                floats(p, |x| x)
            }
        }
        DataType::Float16 => floats(
            a.as_primitive_opt::<Float16Type>()
                .ok_or_else(unsupported)?,
            f64::from,
        ),
        DataType::Int64 => {
            let p = a.as_primitive_opt::<Int64Type>().ok_or_else(unsupported)?;
            if p.null_count() == 0 {
                Data::I64(p.values().to_vec())
            } else {
                exact_floats(name, p, i128::from)?
            }
        }
        DataType::UInt64 => {
            let p = a.as_primitive_opt::<UInt64Type>().ok_or_else(unsupported)?;
            if p.null_count() == 0 {
                Data::U64(p.values().to_vec())
            } else {
                exact_floats(name, p, i128::from)?
            }
        }
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => floats(
                a.as_primitive_opt::<TimestampSecondType>()
                    .ok_or_else(unsupported)?,
                |s| s as f64 * 1000.0,
            ),
            TimeUnit::Millisecond => floats(
                a.as_primitive_opt::<TimestampMillisecondType>()
                    .ok_or_else(unsupported)?,
                |ms| ms as f64,
            ),
            TimeUnit::Microsecond => floats(
                a.as_primitive_opt::<TimestampMicrosecondType>()
                    .ok_or_else(unsupported)?,
                |us| us as f64 / 1000.0,
            ),
            // As numpy: to whole microseconds (floor), then to milliseconds.
            TimeUnit::Nanosecond => floats(
                a.as_primitive_opt::<TimestampNanosecondType>()
                    .ok_or_else(unsupported)?,
                |ns| ns.div_euclid(1000) as f64 / 1000.0,
            ),
        },
        DataType::Date32 => floats(
            a.as_primitive_opt::<Date32Type>().ok_or_else(unsupported)?,
            |d| f64::from(d) * MS_PER_DAY,
        ),
        DataType::Date64 => floats(
            a.as_primitive_opt::<Date64Type>().ok_or_else(unsupported)?,
            |ms| ms as f64,
        ),
        DataType::Boolean => {
            let b = a.as_boolean_opt().ok_or_else(unsupported)?;
            no_nulls(name, a, "booleans")?;
            Data::Bin {
                dtype: DType::Bool,
                bytes: b.values().iter().map(u8::from).collect(),
            }
        }
        DataType::Utf8 => {
            no_nulls(name, a, "strings")?;
            let s = a.as_string_opt::<i32>().ok_or_else(unsupported)?;
            strings(s.iter().map(Option::unwrap_or_default), budget)?
        }
        DataType::LargeUtf8 => {
            no_nulls(name, a, "strings")?;
            let s = a.as_string_opt::<i64>().ok_or_else(unsupported)?;
            strings(s.iter().map(Option::unwrap_or_default), budget)?
        }
        DataType::Utf8View => {
            no_nulls(name, a, "strings")?;
            let s = a.as_string_view_opt().ok_or_else(unsupported)?;
            strings(s.iter().map(Option::unwrap_or_default), budget)?
        }
        DataType::Dictionary(_, _) => {
            no_nulls(name, a, "strings")?;
            let dict = a.as_any_dictionary_opt().ok_or_else(unsupported)?;
            let values = dict.values();
            let words: Vec<&str> = match values.data_type() {
                DataType::Utf8 => values
                    .as_string_opt::<i32>()
                    .map(|s| s.iter().map(Option::unwrap_or_default).collect()),
                DataType::LargeUtf8 => values
                    .as_string_opt::<i64>()
                    .map(|s| s.iter().map(Option::unwrap_or_default).collect()),
                _ => None,
            }
            .ok_or_else(unsupported)?;
            if words.is_empty() {
                if a.is_empty() {
                    return Ok(Data::Str(Vec::new()));
                }
                return Err(BodyError::Arrow(format!(
                    "column {name:?}: dictionary keys into an empty dictionary"
                )));
            }
            let picked = dict
                .normalized_keys()
                .into_iter()
                .map(|k| words.get(k).copied().unwrap_or_default());
            strings(picked, budget)?
        }
        _ => return Err(unsupported()),
    })
}

/// A column of a Bokeh dtype: its elements as they are, or float64 with NaN for nulls.
fn bin<T, const N: usize>(
    a: &dyn Array,
    dtype: DType,
    put: fn(T::Native) -> [u8; N],
) -> Option<Data>
where
    T: ArrowPrimitiveType,
    T::Native: Into<f64>,
{
    let p = a.as_primitive_opt::<T>()?;
    if p.null_count() > 0 {
        return Some(floats(p, Into::into));
    }
    Some(Data::Bin {
        dtype,
        bytes: le_bytes(p.values(), put),
    })
}

/// A float64 column: each element mapped by `f`, nulls as NaN.
fn floats<T: ArrowPrimitiveType>(p: &PrimitiveArray<T>, f: impl Fn(T::Native) -> f64) -> Data {
    Data::F64(p.iter().map(|x| x.map(&f).unwrap_or(f64::NAN)).collect())
}

/// A 64-bit integer column with nulls, as float64 (every value must be exact there).
fn exact_floats<T: ArrowPrimitiveType>(
    name: &str,
    p: &PrimitiveArray<T>,
    wide: impl Fn(T::Native) -> i128,
) -> Result<Data, BodyError> {
    let mut out = Vec::with_capacity(p.len());
    for x in p.iter() {
        out.push(match x.map(&wide) {
            None => f64::NAN,
            Some(v) if v.abs() <= 1 << 53 => v as f64,
            Some(v) => {
                return Err(BodyError::IntegerRange {
                    column: name.to_owned(),
                    value: v,
                })
            }
        });
    }
    Ok(Data::F64(out))
}

fn no_nulls(name: &str, a: &dyn Array, what: &str) -> Result<(), BodyError> {
    if a.null_count() > 0 {
        return Err(BodyError::bad_column(
            name,
            format!("nulls in a column of {what}"),
        ));
    }
    Ok(())
}

/// A string column, charged to the budget item by item.
fn strings<'a>(
    items: impl Iterator<Item = &'a str>,
    budget: &mut Budget,
) -> Result<Data, BodyError> {
    let mut out = Vec::new();
    for s in items {
        budget.strings(s.len())?;
        out.push(s.to_owned());
    }
    Ok(Data::Str(out))
}
