//! Checking a decoded batch against the kinds of a source's existing columns (the type
//! rules of docs/rest-api.md): an integer batch goes into a float column (converted), a
//! float batch into an integer column is refused, strings and numbers do not mix.

use bytes::Bytes;
use plotwire_document::column::ColumnKind;
use plotwire_protocol::value::{ArrayData, ArrayValue, DType, Value};

use super::{BodyError, Columns};

/// Converts each decoded column to fit the kind of the source's column of that name
/// (`existing` answers `None` for a column the source does not have yet, which takes
/// the batch as it is, as do `Empty` and `Any` columns).
///
/// - Binary columns take numbers converted to their dtype (integers into any numeric
///   dtype when in range, floats only into float dtypes), booleans only into `bool`, with
///   the column's form.
/// - `Float` list columns take numbers, `Int` list columns integers (and float64 batches
///   of whole numbers within ±2^53), `Bool` booleans, each converted to a list of that
///   kind; `Str` columns take strings.
/// - A column with no rows fits any kind.
///
/// Every refusal names the column.
pub fn conform(
    columns: Columns,
    existing: &dyn Fn(&str) -> Option<ColumnKind>,
) -> Result<Columns, BodyError> {
    columns
        .into_iter()
        .map(|(name, value)| {
            let value = match existing(&name) {
                None | Some(ColumnKind::Empty | ColumnKind::Any) => value,
                Some(kind) => fit(&name, value, kind)?,
            };
            Ok((name, value))
        })
        .collect()
}

fn is_int(d: DType) -> bool {
    matches!(
        d,
        DType::U8 | DType::I8 | DType::U16 | DType::I16 | DType::U32 | DType::I32
    )
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64)
}

/// The smallest and largest value of an integer dtype.
fn int_range(d: DType) -> (f64, f64) {
    match d {
        DType::U8 => (0.0, f64::from(u8::MAX)),
        DType::I8 => (f64::from(i8::MIN), f64::from(i8::MAX)),
        DType::U16 => (0.0, f64::from(u16::MAX)),
        DType::I16 => (f64::from(i16::MIN), f64::from(i16::MAX)),
        DType::U32 => (0.0, f64::from(u32::MAX)),
        _ => (f64::from(i32::MIN), f64::from(i32::MAX)),
    }
}

/// Whether `x` is a whole number within ±2^53, where every integer is exact.
fn exact_integer(x: f64) -> bool {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    x.fract() == 0.0 && x.abs() <= EXACT
}

/// Appends `x` as one little-endian element of a numeric `dtype` (range checked before).
fn put(dtype: DType, x: f64, out: &mut Vec<u8>) {
    match dtype {
        DType::F64 => out.extend_from_slice(&x.to_le_bytes()),
        DType::F32 => out.extend_from_slice(&(x as f32).to_le_bytes()),
        DType::U8 => out.extend_from_slice(&(x as u8).to_le_bytes()),
        DType::I8 => out.extend_from_slice(&(x as i8).to_le_bytes()),
        DType::U16 => out.extend_from_slice(&(x as u16).to_le_bytes()),
        DType::I16 => out.extend_from_slice(&(x as i16).to_le_bytes()),
        DType::U32 => out.extend_from_slice(&(x as u32).to_le_bytes()),
        DType::I32 => out.extend_from_slice(&(x as i32).to_le_bytes()),
        DType::Bool | DType::Object => out.push(u8::from(x != 0.0)),
    }
}

fn fit(name: &str, value: Value, kind: ColumnKind) -> Result<Value, BodyError> {
    let mismatch = |found: &str| BodyError::Mismatch {
        column: name.to_owned(),
        found: found.to_owned(),
        expected: kind.name(),
    };
    let (dtype, bytes) = match &value {
        Value::List(items) if items.is_empty() => return Ok(value),
        Value::List(_) if kind == ColumnKind::Str => return Ok(value),
        Value::List(_) => return Err(mismatch("strings")),
        Value::Array(a) => match &a.data {
            ArrayData::Binary(b) => (a.dtype, b.clone()),
            ArrayData::List(_) => return Ok(value),
        },
        _ => return Ok(value),
    };
    let found = format!("a {} batch", dtype.name());
    let n = bytes.len() / dtype.size().max(1);
    let items = (0..n).filter_map(|i| dtype.read_f64(&bytes, i));
    Ok(match kind {
        ColumnKind::Float if dtype != DType::Bool => Value::List(items.map(Value::Float).collect()),
        ColumnKind::Int if is_int(dtype) => {
            Value::List(items.map(|x| Value::Int(x as i64)).collect())
        }
        // Integers past int32 arrive as float64 (every format narrows them so); whole
        // numbers that a double holds exactly, as BokehJS holds them, are integers.
        ColumnKind::Int if dtype == DType::F64 && items.clone().all(exact_integer) => {
            Value::List(items.map(|x| Value::Int(x as i64)).collect())
        }
        ColumnKind::Bool if dtype == DType::Bool => {
            Value::List(items.map(|x| Value::Bool(x != 0.0)).collect())
        }
        ColumnKind::Binary {
            form,
            dtype: target,
        } => {
            let bytes = if dtype == target {
                bytes
            } else if (is_float(target) && dtype != DType::Bool)
                || (is_int(target) && is_int(dtype))
            {
                let (lo, hi) = int_range(target);
                let mut out = Vec::with_capacity(n * target.size());
                for x in items {
                    if is_int(target) && !(lo..=hi).contains(&x) {
                        return Err(BodyError::bad_column(
                            name,
                            format!(
                                "the value {x} does not fit the source's {} column",
                                target.name()
                            ),
                        ));
                    }
                    put(target, x, &mut out);
                }
                Bytes::from(out)
            } else {
                return Err(mismatch(&found));
            };
            Value::Array(Box::new(ArrayValue {
                form,
                dtype: target,
                shape: vec![n],
                data: ArrayData::Binary(bytes),
            }))
        }
        _ => return Err(mismatch(&found)),
    })
}
