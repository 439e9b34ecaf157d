//! Patching (ColumnsPatched, spec §7.4): integer, slice and multi-index patches.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use plotwire_protocol::value::{ArrayData, ArrayValue, DType, Slice, Value};

use super::rules::{bin_value, build_fresh, check_array, describe, encode, merge_kind, Items};
use super::{Column, ColumnError, ColumnKind};

/// A resolved slice: `count` positions `start, start + step, ...`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sel {
    pub(super) start: usize,
    pub(super) count: usize,
    pub(super) step: usize,
}

impl Sel {
    pub(super) fn positions(self) -> impl Iterator<Item = usize> {
        (0..self.count).map(move |j| self.start + j * self.step)
    }
}

/// Resolves a slice against a length `len`, with Bokeh's rules: no negative bounds,
/// `start <= stop`, `step >= 1`; `stop` is clamped to `len`.
pub(super) fn resolve_slice(s: &Slice, len: usize) -> Result<Sel, ColumnError> {
    let bad = |reason| ColumnError::BadSlice {
        start: s.start,
        stop: s.stop,
        step: s.step,
        reason,
    };
    let step = s.step.unwrap_or(1);
    if step < 1 {
        return Err(bad("step must be at least 1"));
    }
    let start = s.start.unwrap_or(0);
    let stop = s.stop.unwrap_or(i64::try_from(len).unwrap_or(i64::MAX));
    if start < 0 || stop < 0 {
        return Err(bad("start and stop must not be negative"));
    }
    if start > stop {
        return Err(bad("start must not be greater than stop"));
    }
    let clamp = |x: i64| usize::try_from(x).unwrap_or(usize::MAX).min(len);
    let (start, stop) = (clamp(start), clamp(stop));
    let step = usize::try_from(step).unwrap_or(usize::MAX);
    let count = if stop > start {
        (stop - start - 1) / step + 1
    } else {
        0
    };
    Ok(Sel { start, count, step })
}

/// The elements of a patch value, flattened row-major (nested lists and arrays).
pub(super) fn flatten<'a>(v: &'a Value, out: &mut Vec<Cow<'a, Value>>) {
    match v {
        Value::List(items) => items.iter().for_each(|x| flatten(x, out)),
        Value::Array(a) => match &a.data {
            ArrayData::List(items) => items.iter().for_each(|x| flatten(x, out)),
            ArrayData::Binary(bytes) => {
                let size = a.dtype.size();
                if size > 0 {
                    out.extend(
                        bytes
                            .chunks_exact(size)
                            .filter_map(|e| bin_value(a.dtype, e))
                            .map(Cow::Owned),
                    );
                }
            }
        },
        scalar => out.push(Cow::Borrowed(scalar)),
    }
}

/// Writes `value` into `item[subs]` (a multi-index patch), returning the new item.
/// The item's bytes are copied; the original item is untouched.
pub(super) fn patch_item(
    a: &ArrayValue,
    index: usize,
    subs: &[Value],
    value: &Value,
) -> Result<ArrayValue, ColumnError> {
    let ndim = a.shape.len();
    if subs.len() != ndim {
        return Err(ColumnError::DimensionMismatch {
            index,
            given: subs.len(),
            ndim,
        });
    }
    check_array(a)?;
    let mut sels = Vec::with_capacity(ndim);
    for (dim, (sub, &len)) in subs.iter().zip(&a.shape).enumerate() {
        sels.push(match sub {
            Value::Int(j) => match usize::try_from(*j) {
                Ok(u) if u < len => Sel {
                    start: u,
                    count: 1,
                    step: 1,
                },
                _ => {
                    return Err(ColumnError::SubIndexOutOfRange {
                        index: *j,
                        dim,
                        len,
                    })
                }
            },
            Value::Slice(s) => resolve_slice(s, len)?,
            other => {
                return Err(ColumnError::BadIndex {
                    problem: format!(
                        "sub-index {dim} must be an integer or a slice, not {}",
                        describe(other)
                    ),
                })
            }
        });
    }
    // Row-major flat offsets of the selection.
    let mut strides = vec![1usize; ndim];
    for d in (0..ndim.saturating_sub(1)).rev() {
        let next = strides.get(d + 1).copied().unwrap_or(1);
        let len = a.shape.get(d + 1).copied().unwrap_or(1);
        if let Some(s) = strides.get_mut(d) {
            *s = next.saturating_mul(len);
        }
    }
    let total: usize = sels.iter().map(|s| s.count).product();
    let mut offsets = Vec::with_capacity(total);
    if total > 0 {
        let mut counter = vec![0usize; ndim];
        'outer: loop {
            let off: usize = sels
                .iter()
                .zip(&counter)
                .zip(&strides)
                .map(|((s, &c), &st)| (s.start + c * s.step) * st)
                .sum();
            offsets.push(off);
            // Advance the row-major counter; stop after the last combination.
            let mut d = ndim;
            loop {
                if d == 0 {
                    break 'outer;
                }
                d -= 1;
                let (Some(c), Some(s)) = (counter.get_mut(d), sels.get(d)) else {
                    break 'outer;
                };
                *c += 1;
                if *c < s.count {
                    break;
                }
                *c = 0;
            }
        }
    }
    let scalar = !matches!(value, Value::List(_) | Value::Array(_));
    let mut leaves = Vec::new();
    flatten(value, &mut leaves);
    if !scalar && leaves.len() != total {
        return Err(ColumnError::LengthMismatch {
            expected: total,
            actual: leaves.len(),
        });
    }
    let leaf = |j: usize| -> Option<&Value> {
        if scalar {
            Some(value)
        } else {
            leaves.get(j).map(|c| c.as_ref())
        }
    };
    let target = || format!("{} ndarray item {index}", a.dtype.name());
    let mut out = a.clone();
    match &mut out.data {
        ArrayData::Binary(bytes) => {
            let size = a.dtype.size();
            let mut buf = bytes.to_vec();
            let mut scratch = Vec::with_capacity(8);
            for (j, &off) in offsets.iter().enumerate() {
                let Some(v) = leaf(j) else { continue };
                scratch.clear();
                if !encode(a.dtype, v, &mut scratch) {
                    return Err(ColumnError::TypeMismatch {
                        value: describe(v),
                        target: target(),
                    });
                }
                if let Some(dst) = buf.get_mut(off * size..(off + 1) * size) {
                    dst.copy_from_slice(&scratch);
                }
            }
            *bytes = Bytes::from(buf);
        }
        ArrayData::List(items) => {
            let mut scratch = Vec::with_capacity(8);
            for (j, &off) in offsets.iter().enumerate() {
                let Some(v) = leaf(j) else { continue };
                let stored = if a.dtype == DType::Object {
                    v.clone()
                } else {
                    scratch.clear();
                    let ok = encode(a.dtype, v, &mut scratch);
                    match bin_value(a.dtype, &scratch) {
                        Some(n) if ok => n,
                        _ => {
                            return Err(ColumnError::TypeMismatch {
                                value: describe(v),
                                target: target(),
                            })
                        }
                    }
                };
                if let Some(slot) = items.get_mut(off) {
                    *slot = stored;
                }
            }
        }
    }
    Ok(out)
}

impl Column {
    /// Applies one column's `[index, value]` pairs from a ColumnsPatched event (spec
    /// §7.4), in order and atomically (on `Err` the column is unchanged).
    ///
    /// Index forms:
    /// - an integer `0 <= i < len` (Bokeh's off-by-one `i == len` is refused here);
    /// - a slice (no negative bounds, `start <= stop`, `step >= 1`; defaults 0, `len`, 1;
    ///   `stop` clamped to `len`) with a list or array value of exactly as many elements;
    /// - a multi-index `[i, sub, ...]` where item `i` is an ndarray with one dimension per
    ///   sub-index (each an integer or a slice). The value is a scalar (written to every
    ///   selected element), or a list/array with as many elements as the selection
    ///   (row-major). The item's elements are converted to its dtype as for a stream.
    ///
    /// Values follow the type rules of [`Column::stream`]. Only the chunks written into
    /// are copied, and only when shared.
    pub fn patch(&mut self, patches: &[(Value, Value)]) -> Result<(), ColumnError> {
        let len = self.len();
        // Final value per patched index; values of integer/slice patches for the kind check.
        let mut overlay: BTreeMap<usize, Value> = BTreeMap::new();
        let mut written: Vec<Cow<'_, Value>> = Vec::new();
        for (index, value) in patches {
            match index {
                Value::Int(i) => {
                    let at = checked_index(*i, len)?;
                    written.push(Cow::Borrowed(value));
                    overlay.insert(at, value.clone());
                }
                Value::Slice(s) => {
                    let sel = resolve_slice(s, len)?;
                    let mut leaves = Vec::new();
                    match value {
                        Value::List(items) => leaves.extend(items.iter().map(Cow::Borrowed)),
                        Value::Array(a) => {
                            check_array(a)?;
                            match &a.data {
                                // The body's items as they are (they may be ndarrays).
                                ArrayData::List(items) => {
                                    leaves.extend(items.iter().map(Cow::Borrowed))
                                }
                                ArrayData::Binary(_) => flatten(value, &mut leaves),
                            }
                        }
                        other => {
                            return Err(ColumnError::BadValue {
                                problem: format!(
                                    "a slice patch needs a list or an array, not {}",
                                    describe(other)
                                ),
                            })
                        }
                    }
                    if leaves.len() != sel.count {
                        return Err(ColumnError::LengthMismatch {
                            expected: sel.count,
                            actual: leaves.len(),
                        });
                    }
                    for (at, v) in sel.positions().zip(leaves) {
                        overlay.insert(at, v.clone().into_owned());
                        written.push(v);
                    }
                }
                Value::List(parts) => {
                    let (first, subs) = match parts.split_first() {
                        Some((first, subs)) if !subs.is_empty() => (first, subs),
                        _ => {
                            return Err(ColumnError::BadIndex {
                                problem: "a multi-index needs at least 2 parts".into(),
                            })
                        }
                    };
                    let Value::Int(i) = first else {
                        return Err(ColumnError::BadIndex {
                            problem: format!(
                                "a multi-index must start with an integer, not {}",
                                describe(first)
                            ),
                        });
                    };
                    let at = checked_index(*i, len)?;
                    let current = match overlay.get(&at) {
                        Some(v) => Some(v.clone()),
                        None => self.storage.get(at),
                    };
                    let Some(Value::Array(item)) = current else {
                        return Err(ColumnError::NotAnArray {
                            index: at,
                            found: match current {
                                Some(v) => describe(&v),
                                None => "missing".into(),
                            },
                        });
                    };
                    let patched = patch_item(&item, at, subs, value)?;
                    overlay.insert(at, Value::Array(Box::new(patched)));
                }
                other => {
                    return Err(ColumnError::BadIndex {
                        problem: format!(
                            "expected an integer, a slice or a multi-index, not {}",
                            describe(other)
                        ),
                    })
                }
            }
        }
        if overlay.is_empty() {
            return Ok(());
        }
        let mut target = merge_kind(self.kind(), written.iter().map(|c| c.as_ref()))?;
        if target == ColumnKind::Empty {
            target = ColumnKind::Any;
        }
        let (indices, values): (Vec<usize>, Vec<Value>) = overlay.into_iter().unzip();
        let fresh = build_fresh(target, &Items::Values(&values))?;
        // Validated: nothing below can fail.
        self.storage.convert_to(target);
        self.storage.write(indices, fresh);
        Ok(())
    }
}

/// An integer patch index checked against `0 <= i < len`.
fn checked_index(i: i64, len: usize) -> Result<usize, ColumnError> {
    match usize::try_from(i) {
        Ok(u) if u < len => Ok(u),
        _ => Err(ColumnError::IndexOutOfRange { index: i, len }),
    }
}
