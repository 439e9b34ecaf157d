//! The document's columns as the rows a pyramid reads ([`plotwire_lod::Raw`]).

use std::ops::Range;

use plotwire_document::column::{Column, ColumnSlice};
use plotwire_lod::Agg;
use plotwire_protocol::value::DType;

/// A source's x column and y columns, numbered absolutely: physical row 0 of the
/// columns is absolute row `first` (the rows rolled over before it are gone).
pub struct ColumnsRaw<'a> {
    /// The x column.
    pub x: &'a Column,
    /// The y columns, one per series.
    pub ys: Vec<&'a Column>,
    /// The absolute number of the columns' first row.
    pub first: u64,
}

impl plotwire_lod::Raw for ColumnsRaw<'_> {
    fn x(&self, i: u64) -> f64 {
        i.checked_sub(self.first)
            .and_then(|at| usize::try_from(at).ok())
            .and_then(|at| self.x.get_f64(at))
            .unwrap_or(f64::NAN)
    }

    fn scan(&self, series: usize, rows: Range<u64>, f: &mut dyn FnMut(u64, f64)) {
        if let Some(col) = self.ys.get(series) {
            scan_column(col, self.first, rows, f);
        }
    }

    fn aggregate(&self, series: usize, rows: Range<u64>) -> Agg {
        self.ys
            .get(series)
            .map_or_else(Agg::default, |col| aggregate_column(col, self.first, rows))
    }
}

/// Calls `f(i, value)` for every absolute row `i` of `rows` held by `col`, whose first
/// row is absolute row `first`; values that are not numbers read as NaN.
pub fn scan_column(col: &Column, first: u64, rows: Range<u64>, f: &mut dyn FnMut(u64, f64)) {
    let phys = |i: u64| usize::try_from(i.saturating_sub(first)).unwrap_or(usize::MAX);
    let mut row = rows.start.max(first);
    for slice in col.slices(phys(row)..phys(rows.end)) {
        row = each_value(&slice, row, f);
    }
}

/// The aggregate of the absolute rows `rows` held by `col` (first row `first`): what
/// [`scan_column`] and [`Agg::push`] give, with float64 runs taken a slice at a time.
pub fn aggregate_column(col: &Column, first: u64, rows: Range<u64>) -> Agg {
    /// Values decoded at a time from little-endian bytes: a base bucket's worth.
    const RUN: usize = plotwire_lod::BASE_ROWS as usize;
    let phys = |i: u64| usize::try_from(i.saturating_sub(first)).unwrap_or(usize::MAX);
    let mut row = rows.start.max(first);
    let mut agg = Agg::default();
    for slice in col.slices(phys(row)..phys(rows.end)) {
        match slice {
            ColumnSlice::Binary {
                dtype: DType::F64,
                bytes,
            } => {
                let mut run = [0f64; RUN];
                for part in bytes.chunks(8 * RUN) {
                    let mut n = 0;
                    for (v, e) in run.iter_mut().zip(part.chunks_exact(8)) {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(e);
                        *v = f64::from_le_bytes(b);
                        n += 1;
                    }
                    agg.then(&Agg::of(row, &run[..n]));
                    row += n as u64;
                }
            }
            ColumnSlice::Float(v) => {
                agg.then(&Agg::of(row, v));
                row += v.len() as u64;
            }
            other => row = each_value(&other, row, &mut |i, y| agg.push(i, y)),
        }
    }
    agg
}

/// Calls `f(i, value)` for each value of `slice`, numbering them from `row`; returns
/// the row after the last.
fn each_value(slice: &ColumnSlice<'_>, mut row: u64, f: &mut dyn FnMut(u64, f64)) -> u64 {
    match slice {
        ColumnSlice::Binary {
            dtype: DType::F64,
            bytes,
        } => {
            for e in bytes.chunks_exact(8) {
                let mut b = [0u8; 8];
                b.copy_from_slice(e);
                f(row, f64::from_le_bytes(b));
                row += 1;
            }
        }
        ColumnSlice::Binary { dtype, bytes } => {
            let size = dtype.size().max(1);
            for e in bytes.chunks_exact(size) {
                f(row, dtype.read_f64(e, 0).unwrap_or(f64::NAN));
                row += 1;
            }
        }
        ColumnSlice::Float(v) => {
            for y in v.iter() {
                f(row, *y);
                row += 1;
            }
        }
        ColumnSlice::Int(v) => {
            for y in v.iter() {
                f(row, *y as f64);
                row += 1;
            }
        }
        ColumnSlice::Bool(v) => {
            for y in v.iter() {
                f(row, f64::from(u8::from(*y)));
                row += 1;
            }
        }
        ColumnSlice::Str(v) => {
            for _ in v.iter() {
                f(row, f64::NAN);
                row += 1;
            }
        }
        ColumnSlice::Any(v) => {
            for y in v.iter() {
                let y = match y {
                    plotwire_protocol::Value::Int(i) => *i as f64,
                    plotwire_protocol::Value::Float(x) => *x,
                    _ => f64::NAN,
                };
                f(row, y);
                row += 1;
            }
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lod::testing::{floats, xy};

    fn pushed(col: &Column, first: u64, rows: Range<u64>) -> Agg {
        let mut agg = Agg::default();
        scan_column(col, first, rows, &mut |i, y| agg.push(i, y));
        agg
    }

    #[test]
    fn aggregates_equal_pushing_every_row_across_chunks_and_kinds() {
        // A binary column of several chunks (streams), a list of floats, a list of ints.
        let ys: Vec<f64> = (0..700)
            .map(|i| match i % 97 {
                13 => f64::NAN,
                50 => -0.0,
                _ => ((i * 7919) % 211) as f64 - 100.0,
            })
            .collect();
        let mut cols = xy(&[], &[]);
        for part in ys.chunks(150) {
            cols.get_mut("y")
                .unwrap()
                .stream(&floats(part), None)
                .unwrap();
        }
        let binary = cols.get("y").unwrap();
        let listed = Column::from_value(&plotwire_protocol::Value::List(
            ys.iter()
                .map(|y| plotwire_protocol::Value::Float(*y))
                .collect(),
        ))
        .unwrap();
        let ints = Column::from_value(&plotwire_protocol::Value::List(
            (0..700i64)
                .map(|i| plotwire_protocol::Value::Int((i * 31) % 17))
                .collect(),
        ))
        .unwrap();
        let first = 1000;
        for col in [binary, &listed, &ints] {
            for a in (first..first + 700).step_by(37) {
                for b in (a..=first + 700).step_by(53) {
                    assert_eq!(
                        aggregate_column(col, first, a..b),
                        pushed(col, first, a..b),
                        "{a}..{b}"
                    );
                }
            }
            assert_eq!(
                aggregate_column(col, first, 0..first + 5),
                pushed(col, first, first..first + 5),
                "rows before the first are not held"
            );
        }
    }
}
