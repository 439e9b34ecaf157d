//! Values, dtypes and the type rules: which items a column of each kind accepts, and
//! converting them to its storage type.

use std::borrow::{Borrow, Cow};

use bytes::Bytes;
use plotwire_protocol::value::{ArrayData, ArrayForm, ArrayValue, DType, Value};

use super::storage::Fresh;
use super::{ColumnError, ColumnKind};

// ---------------------------------------------------------------------------------------
// Values, dtypes and the type rules
// ---------------------------------------------------------------------------------------

/// Describes a value for error messages.
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the bool {b}"),
        Value::Int(i) => format!("the int {i}"),
        Value::Float(x) => format!("the float {x}"),
        Value::Str(_) => "a string".into(),
        Value::List(_) => "a list".into(),
        Value::Dict(_) => "a dict".into(),
        Value::Map(_) => "a map".into(),
        Value::Set(_) => "a set".into(),
        Value::Bytes(_) => "bytes".into(),
        Value::Array(a) => match a.form {
            ArrayForm::Typed => "a typed_array".into(),
            ArrayForm::Nd => "an ndarray".into(),
        },
        Value::Slice(_) => "a slice".into(),
        Value::Ref(_) => "a model reference".into(),
        Value::Model(_) => "a model".into(),
        Value::Tagged { tag, .. } => format!("a {tag:?} object"),
    }
}

pub(super) fn mismatch(v: &Value, kind: ColumnKind) -> ColumnError {
    ColumnError::TypeMismatch {
        value: describe(v),
        target: format!("{} column", kind.name()),
    }
}

/// One binary element as a value: `Bool`, `Int` for integer dtypes, `Float` for floats.
pub(super) fn bin_value(dtype: DType, elem: &[u8]) -> Option<Value> {
    let x = dtype.read_f64(elem, 0)?;
    Some(match dtype {
        DType::Bool => Value::Bool(x != 0.0),
        DType::F32 | DType::F64 => Value::Float(x),
        // Every integer dtype Bokeh sends fits in an f64 exactly.
        _ => Value::Int(x as i64),
    })
}

/// The value as an integer, if it is an `Int` or an integral, finite `Float`.
pub(super) fn as_integer(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.2e18 => Some(*x as i64),
        _ => None,
    }
}

/// Appends `v` encoded as one little-endian `dtype` element; false when `v` is not
/// representable (floats go into float dtypes always, into integer dtypes only when
/// integral and in range; only booleans go into `bool`).
pub(super) fn encode(dtype: DType, v: &Value, out: &mut Vec<u8>) -> bool {
    pub(super) fn int<T: TryFrom<i64>>(v: &Value) -> Option<T> {
        as_integer(v).and_then(|i| T::try_from(i).ok())
    }
    match dtype {
        DType::Bool => match v {
            Value::Bool(b) => out.push(u8::from(*b)),
            _ => return false,
        },
        DType::F64 => match v {
            Value::Int(i) => out.extend_from_slice(&(*i as f64).to_le_bytes()),
            Value::Float(x) => out.extend_from_slice(&x.to_le_bytes()),
            _ => return false,
        },
        DType::F32 => match v {
            Value::Int(i) => out.extend_from_slice(&(*i as f32).to_le_bytes()),
            Value::Float(x) => out.extend_from_slice(&(*x as f32).to_le_bytes()),
            _ => return false,
        },
        DType::U8 => match int::<u8>(v) {
            Some(x) => out.extend_from_slice(&x.to_le_bytes()),
            None => return false,
        },
        DType::I8 => match int::<i8>(v) {
            Some(x) => out.extend_from_slice(&x.to_le_bytes()),
            None => return false,
        },
        DType::U16 => match int::<u16>(v) {
            Some(x) => out.extend_from_slice(&x.to_le_bytes()),
            None => return false,
        },
        DType::I16 => match int::<i16>(v) {
            Some(x) => out.extend_from_slice(&x.to_le_bytes()),
            None => return false,
        },
        DType::U32 => match int::<u32>(v) {
            Some(x) => out.extend_from_slice(&x.to_le_bytes()),
            None => return false,
        },
        DType::I32 => match int::<i32>(v) {
            Some(x) => out.extend_from_slice(&x.to_le_bytes()),
            None => return false,
        },
        DType::Object => return false,
    }
    true
}

/// The kind a list of values gets on its own (spec of [`Column::from_value`]).
pub(super) fn infer<I>(values: I) -> ColumnKind
where
    I: IntoIterator,
    I::Item: Borrow<Value>,
{
    let (mut n, mut all_int, mut all_num, mut all_bool, mut all_str) = (0, true, true, true, true);
    for v in values {
        n += 1;
        let v = v.borrow();
        all_int &= matches!(v, Value::Int(_));
        all_num &= matches!(v, Value::Int(_) | Value::Float(_));
        all_bool &= matches!(v, Value::Bool(_));
        all_str &= matches!(v, Value::Str(_));
        if !(all_num || all_bool || all_str) {
            return ColumnKind::Any;
        }
    }
    match () {
        _ if n == 0 => ColumnKind::Empty,
        _ if all_int => ColumnKind::Int,
        _ if all_num => ColumnKind::Float,
        _ if all_bool => ColumnKind::Bool,
        _ if all_str => ColumnKind::Str,
        _ => ColumnKind::Any,
    }
}

/// The kind a column of kind `kind` must become to accept all of `values`.
///
/// `Empty` takes the inferred kind; list kinds accept their own family plus nulls (which
/// make the column `Any`), and an int column that receives a float becomes a float column.
/// Binary columns never change kind; their values are checked when encoded.
pub(super) fn merge_kind<I>(kind: ColumnKind, values: I) -> Result<ColumnKind, ColumnError>
where
    I: IntoIterator,
    I::Item: Borrow<Value>,
{
    match kind {
        ColumnKind::Any | ColumnKind::Binary { .. } => Ok(kind),
        ColumnKind::Empty => Ok(infer(values)),
        ColumnKind::Float | ColumnKind::Int | ColumnKind::Bool | ColumnKind::Str => {
            let (mut has_null, mut has_float) = (false, false);
            for v in values {
                let v = v.borrow();
                match (kind, v) {
                    (_, Value::Null) => has_null = true,
                    (ColumnKind::Float | ColumnKind::Int, Value::Int(_)) => {}
                    (ColumnKind::Float | ColumnKind::Int, Value::Float(_)) => has_float = true,
                    (ColumnKind::Bool, Value::Bool(_)) | (ColumnKind::Str, Value::Str(_)) => {}
                    _ => return Err(mismatch(v, kind)),
                }
            }
            Ok(if has_null {
                ColumnKind::Any
            } else if kind == ColumnKind::Int && has_float {
                ColumnKind::Float
            } else {
                kind
            })
        }
    }
}

/// Items to append or write, borrowed from a list or a 1-D array.
pub(super) enum Items<'a> {
    Values(&'a [Value]),
    Binary {
        form: ArrayForm,
        dtype: DType,
        bytes: &'a Bytes,
    },
}

impl<'a> Items<'a> {
    /// The items of a list or of a 1-D array; anything else is refused.
    pub(super) fn of(v: &'a Value) -> Result<Items<'a>, ColumnError> {
        match v {
            Value::List(items) => Ok(Items::Values(items)),
            Value::Array(a) => {
                if a.shape.len() != 1 {
                    return Err(ColumnError::NotOneDimensional {
                        shape: a.shape.clone(),
                    });
                }
                check_array(a)?;
                Ok(match &a.data {
                    ArrayData::List(items) => Items::Values(items),
                    ArrayData::Binary(bytes) => Items::Binary {
                        form: a.form,
                        dtype: a.dtype,
                        bytes,
                    },
                })
            }
            other => Err(ColumnError::NotAColumn {
                found: describe(other),
            }),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Items::Values(v) => v.len(),
            Items::Binary { dtype, bytes, .. } => bytes.len() / dtype.size().max(1),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = Cow<'a, Value>> + 'a {
        let (values, bin): (&'a [Value], Option<(DType, &'a [u8])>) = match self {
            Items::Values(v) => (v, None),
            Items::Binary { dtype, bytes, .. } => (&[], Some((*dtype, &bytes[..]))),
        };
        let bin_iter = bin.into_iter().flat_map(|(d, b)| {
            b.chunks_exact(d.size().max(1))
                .filter_map(move |e| bin_value(d, e))
                .map(Cow::Owned)
        });
        values.iter().map(Cow::Borrowed).chain(bin_iter)
    }
}

/// Checks that an array's header matches its body.
pub(super) fn check_array(a: &ArrayValue) -> Result<(), ColumnError> {
    let numel = a
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| ColumnError::MalformedArray {
            problem: format!("shape {:?} is too large", a.shape),
        })?;
    match &a.data {
        ArrayData::Binary(bytes) => {
            let size = a.dtype.size();
            if size == 0 {
                return Err(ColumnError::MalformedArray {
                    problem: "an object array must have a list body, not bytes".into(),
                });
            }
            if bytes.len() % size != 0 {
                return Err(ColumnError::MalformedArray {
                    problem: format!(
                        "{} bytes are not a whole number of {} elements",
                        bytes.len(),
                        a.dtype.name()
                    ),
                });
            }
            if bytes.len() / size != numel {
                return Err(ColumnError::MalformedArray {
                    problem: format!(
                        "shape {:?} needs {numel} elements but the body has {}",
                        a.shape,
                        bytes.len() / size
                    ),
                });
            }
        }
        ArrayData::List(items) => {
            if items.len() != numel {
                return Err(ColumnError::MalformedArray {
                    problem: format!(
                        "shape {:?} needs {numel} elements but the body has {}",
                        a.shape,
                        items.len()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Converts items to the storage type of `target`, failing on anything it cannot hold.
pub(super) fn build_fresh(target: ColumnKind, items: &Items<'_>) -> Result<Fresh, ColumnError> {
    pub(super) fn collect<T>(
        items: &Items<'_>,
        target: ColumnKind,
        f: impl Fn(&Value) -> Option<T>,
    ) -> Result<Vec<T>, ColumnError> {
        let mut out = Vec::with_capacity(items.len());
        for v in items.iter() {
            out.push(f(&v).ok_or_else(|| mismatch(&v, target))?);
        }
        Ok(out)
    }
    Ok(match target {
        ColumnKind::Binary { dtype, .. } => {
            if let Items::Binary {
                dtype: from, bytes, ..
            } = items
            {
                if *from == dtype {
                    // Same dtype: keep the received buffer, no copy.
                    return Ok(Fresh::Bin((*bytes).clone(), dtype));
                }
            }
            let mut out = Vec::with_capacity(items.len().saturating_mul(dtype.size()));
            for v in items.iter() {
                if !encode(dtype, &v, &mut out) {
                    return Err(mismatch(&v, target));
                }
            }
            Fresh::Bin(Bytes::from(out), dtype)
        }
        ColumnKind::Float => Fresh::F(collect(items, target, |v| match v {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            _ => None,
        })?),
        ColumnKind::Int => Fresh::I(collect(items, target, |v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        })?),
        ColumnKind::Bool => Fresh::B(collect(items, target, |v| match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        })?),
        ColumnKind::Str => Fresh::S(collect(items, target, |v| match v {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        })?),
        ColumnKind::Any | ColumnKind::Empty => {
            Fresh::A(items.iter().map(Cow::into_owned).collect())
        }
    })
}
