//! Columns while a body is decoded: typed buffers, the limits' budget, and the final
//! conversion to wire values (64-bit integer narrowing, equal lengths).

use std::collections::HashMap;

use bytes::Bytes;
use plotwire_protocol::value::{ArrayData, ArrayForm, ArrayValue, DType, Value};

use super::{BodyError, BodyLimits, Columns};

/// The largest integer magnitude up to which every integer is exact in a float64.
const MAX_EXACT_F64: i128 = 1 << 53;

/// What one body may still use of the limits.
pub(super) struct Budget {
    limits: BodyLimits,
    string_bytes: usize,
}

impl Budget {
    pub(super) fn new(limits: &BodyLimits) -> Budget {
        Budget {
            limits: *limits,
            string_bytes: 0,
        }
    }

    /// Checks a column count.
    pub(super) fn columns(&self, n: usize) -> Result<(), BodyError> {
        if n > self.limits.max_columns {
            return Err(BodyError::limit("max_columns", self.limits.max_columns));
        }
        Ok(())
    }

    /// Checks a row count.
    pub(super) fn rows(&self, n: usize) -> Result<(), BodyError> {
        if n > self.limits.max_rows {
            return Err(BodyError::limit("max_rows", self.limits.max_rows));
        }
        Ok(())
    }

    /// Charges `n` bytes of string items.
    pub(super) fn strings(&mut self, n: usize) -> Result<(), BodyError> {
        self.string_bytes = self.string_bytes.saturating_add(n);
        if self.string_bytes > self.limits.max_string_bytes {
            return Err(BodyError::limit(
                "max_string_bytes",
                self.limits.max_string_bytes,
            ));
        }
        Ok(())
    }
}

/// One column's items while decoding.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Data {
    /// Only nulls so far (JSON): `nulls` NaNs if numbers follow.
    Unknown {
        /// How many nulls.
        nulls: usize,
    },
    /// float64 items.
    F64(Vec<f64>),
    /// 64-bit signed integers, narrowed when finished.
    I64(Vec<i64>),
    /// 64-bit unsigned integers, narrowed when finished.
    U64(Vec<u64>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Strings.
    Str(Vec<String>),
    /// Little-endian elements already of a Bokeh dtype.
    Bin {
        /// Their dtype.
        dtype: DType,
        /// Whole elements.
        bytes: Vec<u8>,
    },
}

impl Data {
    /// Number of items.
    pub(super) fn len(&self) -> usize {
        match self {
            Data::Unknown { nulls } => *nulls,
            Data::F64(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::U64(v) => v.len(),
            Data::Bool(v) => v.len(),
            Data::Str(v) => v.len(),
            Data::Bin { dtype, bytes } => bytes.len() / dtype.size().max(1),
        }
    }

    /// What the column holds, for messages.
    fn what(&self) -> &'static str {
        match self {
            Data::Unknown { .. } => "nulls",
            Data::F64(_) | Data::I64(_) | Data::U64(_) | Data::Bin { .. } => "numbers",
            Data::Bool(_) => "booleans",
            Data::Str(_) => "strings",
        }
    }

    /// The items as floats, nulls as NaN; `None` for booleans and strings.
    fn floats(&mut self) -> Option<&mut Vec<f64>> {
        let converted = match self {
            Data::F64(v) => return Some(v),
            Data::Unknown { nulls } => vec![f64::NAN; *nulls],
            Data::I64(v) => v.iter().map(|x| *x as f64).collect(),
            _ => return None,
        };
        *self = Data::F64(converted);
        match self {
            Data::F64(v) => Some(v),
            _ => None,
        }
    }

    /// Appends a JSON integer.
    pub(super) fn push_int(&mut self, x: i64) -> Result<(), String> {
        match self {
            Data::I64(v) => v.push(x),
            Data::Unknown { nulls: 0 } => *self = Data::I64(vec![x]),
            _ => self.push_float(x as f64)?,
        }
        Ok(())
    }

    /// Appends a JSON float (or `1e999`).
    pub(super) fn push_float(&mut self, x: f64) -> Result<(), String> {
        match self.floats() {
            Some(v) => v.push(x),
            None => return Err(self.mixed("a number")),
        }
        Ok(())
    }

    /// Appends a JSON null: NaN in a numeric column.
    pub(super) fn push_null(&mut self) -> Result<(), String> {
        match self {
            Data::Unknown { nulls } => *nulls += 1,
            Data::Bool(_) | Data::Str(_) => {
                return Err(format!("null in a column of {}", self.what()))
            }
            _ => self.push_float(f64::NAN)?,
        }
        Ok(())
    }

    /// Appends a JSON boolean.
    pub(super) fn push_bool(&mut self, b: bool) -> Result<(), String> {
        match self {
            Data::Bool(v) => v.push(b),
            Data::Unknown { nulls: 0 } => *self = Data::Bool(vec![b]),
            _ => return Err(self.mixed("a boolean")),
        }
        Ok(())
    }

    /// Appends a JSON string.
    pub(super) fn push_str(&mut self, s: String) -> Result<(), String> {
        match self {
            Data::Str(v) => v.push(s),
            Data::Unknown { nulls: 0 } => *self = Data::Str(vec![s]),
            _ => return Err(self.mixed("a string")),
        }
        Ok(())
    }

    /// Appends the items of `next` (another batch of the same column); numbers of
    /// different types meet as float64.
    pub(super) fn append(&mut self, name: &str, next: Data) -> Result<(), BodyError> {
        match (&mut *self, next) {
            (Data::Unknown { nulls: 0 }, next) => *self = next,
            (Data::F64(a), Data::F64(b)) => a.extend(b),
            (Data::I64(a), Data::I64(b)) => a.extend(b),
            (Data::U64(a), Data::U64(b)) => a.extend(b),
            (Data::Bool(a), Data::Bool(b)) => a.extend(b),
            (Data::Str(a), Data::Str(b)) => a.extend(b),
            (Data::Bin { dtype: d, bytes: a }, Data::Bin { dtype, bytes: b }) if *d == dtype => {
                a.extend(b)
            }
            (_, next) => {
                let mut b = next;
                match (self.exact_floats(name)?, b.exact_floats(name)?) {
                    (Some(a), Some(b)) => a.append(b),
                    _ => return Err(BodyError::bad_column(name, "batches of different types")),
                }
            }
        }
        Ok(())
    }

    /// Converts numeric items to float64 in place (64-bit integers must be exact there);
    /// `None` for booleans and strings.
    fn exact_floats(&mut self, name: &str) -> Result<Option<&mut Vec<f64>>, BodyError> {
        let converted: Vec<f64> = match self {
            Data::I64(v) => exact(name, v)?,
            Data::U64(v) => exact(name, v)?,
            Data::Bin { dtype, bytes } if *dtype != DType::Bool => (0..bytes.len()
                / dtype.size().max(1))
                .filter_map(|i| dtype.read_f64(bytes, i))
                .collect(),
            _ => return Ok(self.floats()),
        };
        *self = Data::F64(converted);
        Ok(self.floats())
    }

    fn mixed(&self, found: &str) -> String {
        match self {
            Data::Unknown { .. } => format!("{found} after a null (only numbers may be null)"),
            _ => format!("{found} in a column of {}", self.what()),
        }
    }
}

/// The columns of one body, with an index by name.
#[derive(Default)]
pub(super) struct Table {
    /// The columns in body order.
    pub(super) cols: Vec<(String, Data)>,
    index: HashMap<String, usize>,
}

impl Table {
    /// Adds a column; refuses a duplicate name or one column too many.
    pub(super) fn add(
        &mut self,
        name: String,
        data: Data,
        budget: &Budget,
    ) -> Result<usize, BodyError> {
        if self.index.contains_key(&name) {
            return Err(BodyError::DuplicateColumn { column: name });
        }
        budget.columns(self.cols.len() + 1)?;
        let at = self.cols.len();
        self.index.insert(name.clone(), at);
        self.cols.push((name, data));
        Ok(at)
    }

    /// The position of column `name`.
    pub(super) fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

/// Checks that all columns have one length and converts them to wire values.
pub(super) fn finish(table: Table) -> Result<Columns, BodyError> {
    let mut first: Option<(&str, usize)> = None;
    for (name, data) in &table.cols {
        match first {
            None => first = Some((name, data.len())),
            Some((f, n)) if n != data.len() => {
                return Err(BodyError::UnequalLengths {
                    column: name.clone(),
                    found: data.len(),
                    first: f.to_owned(),
                    expected: n,
                })
            }
            Some(_) => {}
        }
    }
    table
        .cols
        .into_iter()
        .map(|(name, data)| {
            let value = to_value(&name, data)?;
            Ok((name, value))
        })
        .collect()
}

/// A 1-D ndarray of `dtype` over little-endian `bytes`.
pub(super) fn ndarray(dtype: DType, bytes: Vec<u8>) -> Value {
    let n = bytes.len() / dtype.size().max(1);
    Value::Array(Box::new(ArrayValue {
        form: ArrayForm::Nd,
        dtype,
        shape: vec![n],
        data: ArrayData::Binary(Bytes::from(bytes)),
    }))
}

/// Little-endian bytes of `n`-byte elements, written by `put`. Not zero-filled first: a
/// zeroed allocation of a reused block makes jemalloc give its pages back and fault in
/// fresh ones, which cost more than the copy itself.
pub(super) fn le_bytes<T: Copy, const N: usize>(v: &[T], put: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * N);
    for x in v {
        out.extend_from_slice(&put(*x));
    }
    out
}

fn to_value(name: &str, data: Data) -> Result<Value, BodyError> {
    Ok(match data {
        Data::Unknown { nulls: 0 } => Value::List(Vec::new()),
        Data::Unknown { nulls } => ndarray(
            DType::F64,
            le_bytes(&vec![f64::NAN; nulls], f64::to_le_bytes),
        ),
        Data::F64(v) => ndarray(DType::F64, le_bytes(&v, f64::to_le_bytes)),
        Data::I64(v) => narrow(name, &v)?,
        Data::U64(v) => narrow(name, &v)?,
        Data::Bool(v) => ndarray(DType::Bool, v.into_iter().map(u8::from).collect()),
        Data::Str(v) => Value::List(v.into_iter().map(Value::Str).collect()),
        Data::Bin { dtype, bytes } => ndarray(dtype, bytes),
    })
}

/// 64-bit integers as `int32` when all fit, else as `float64` when all are exact there.
pub(super) fn narrow<T: Copy + Into<i128>>(name: &str, v: &[T]) -> Result<Value, BodyError> {
    let wide = |x: T| -> i128 { x.into() };
    if v.iter().all(|x| i32::try_from(wide(*x)).is_ok()) {
        return Ok(ndarray(
            DType::I32,
            le_bytes(v, |x| (wide(x) as i32).to_le_bytes()),
        ));
    }
    if let Some(bad) = v.iter().map(|x| wide(*x)).find(|x| x.abs() > MAX_EXACT_F64) {
        return Err(BodyError::IntegerRange {
            column: name.to_owned(),
            value: bad,
        });
    }
    Ok(ndarray(
        DType::F64,
        le_bytes(v, |x| (wide(x) as f64).to_le_bytes()),
    ))
}

/// 64-bit integers as float64, each exact there.
fn exact<T: Copy + Into<i128>>(name: &str, v: &[T]) -> Result<Vec<f64>, BodyError> {
    v.iter()
        .map(|x| {
            let x: i128 = (*x).into();
            if x.abs() > MAX_EXACT_F64 {
                return Err(BodyError::IntegerRange {
                    column: name.to_owned(),
                    value: x,
                });
            }
            Ok(x as f64)
        })
        .collect()
}

/// Little-endian bytes of `f64` items (for the Arrow and raw readers).
pub(super) fn f64_bytes(v: &[f64]) -> Vec<u8> {
    le_bytes(v, f64::to_le_bytes)
}
