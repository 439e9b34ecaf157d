//! The document's columns as the rows a pyramid reads ([`plotwire_lod::Raw`]).

use std::ops::Range;

use plotwire_document::column::{Column, ColumnSlice};
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
}

/// Calls `f(i, value)` for every absolute row `i` of `rows` held by `col`, whose first
/// row is absolute row `first`; values that are not numbers read as NaN.
pub fn scan_column(col: &Column, first: u64, rows: Range<u64>, f: &mut dyn FnMut(u64, f64)) {
    let phys = |i: u64| usize::try_from(i.saturating_sub(first)).unwrap_or(usize::MAX);
    let mut row = rows.start.max(first);
    for slice in col.slices(phys(row)..phys(rows.end)) {
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
                for y in v {
                    f(row, *y);
                    row += 1;
                }
            }
            ColumnSlice::Int(v) => {
                for y in v {
                    f(row, *y as f64);
                    row += 1;
                }
            }
            ColumnSlice::Bool(v) => {
                for y in v {
                    f(row, f64::from(u8::from(*y)));
                    row += 1;
                }
            }
            ColumnSlice::Str(v) => {
                for _ in v {
                    f(row, f64::NAN);
                    row += 1;
                }
            }
            ColumnSlice::Any(v) => {
                for y in v {
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
    }
}
