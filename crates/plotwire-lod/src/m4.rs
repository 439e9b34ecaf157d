//! M4 downsampling: the rows a view needs to draw a line exactly as the full data does.

use std::ops::Range;

use crate::{Pyramid, Raw, XIndex};

/// An x interval drawn over `columns` pixel columns of equal width. Column `c` holds
/// the rows with `x0 + c·w <= x < x0 + (c+1)·w`, `w = (x1 − x0) / columns`; the last
/// column also holds `x == x1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// Where it starts.
    pub x0: f64,
    /// Where it ends.
    pub x1: f64,
    /// How many pixel columns it is drawn over.
    pub columns: u32,
}

/// The rows (of the rows `index` holds, increasing, without repeats) that draw every
/// series of `pyramids` over `spans` as the full data would, appended to `out`.
///
/// For every pixel column of every span, and every series: the column's first and last
/// row, and the rows of its minimum and maximum (the M4 result). A column holding a NaN
/// also gets its first NaN row and the rows on either side of it, so the line still
/// breaks there. A span whose rows are no more than four per column is sent whole: the
/// raw points. x must be non-decreasing and not NaN within the rows; spans may come in
/// any order.
pub fn downsample(
    raw: &dyn Raw,
    index: &XIndex,
    pyramids: &[&Pyramid],
    spans: &[Span],
    out: &mut Vec<u64>,
) {
    let from = out.len();
    let mut column_rows = Vec::with_capacity(8 * pyramids.len().max(1));
    for span in spans {
        let columns = match pixel_columns(raw, index, *span) {
            PixelColumns::Empty => continue,
            PixelColumns::Whole(rows) => {
                out.extend(rows);
                continue;
            }
            PixelColumns::Cut(columns) => columns,
        };
        for rows in columns {
            let (a, b) = (rows.start, rows.end);
            column_rows.clear();
            column_rows.push(a);
            column_rows.push(b - 1);
            for p in pyramids {
                let agg = p.query(raw, a..b);
                column_rows.extend(agg.min.map(|(_, i)| i));
                column_rows.extend(agg.max.map(|(_, i)| i));
                if let Some(n) = agg.nan {
                    column_rows.push(n);
                    if n > a {
                        column_rows.push(n - 1);
                    }
                    if n + 1 < b {
                        column_rows.push(n + 1);
                    }
                }
            }
            column_rows.sort_unstable();
            column_rows.dedup();
            out.extend_from_slice(&column_rows);
        }
    }
    // Spans may overlap or touch: keep each row once.
    let mut rows = out.split_off(from);
    if !rows.is_sorted() {
        rows.sort_unstable();
    }
    rows.dedup();
    out.append(&mut rows);
}

/// How the rows of a span split into pixel columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PixelColumns {
    /// The span holds no rows.
    Empty,
    /// No more than four rows per column: these rows, sent whole.
    Whole(Range<u64>),
    /// The rows of each column that holds any, in order.
    Cut(Vec<Range<u64>>),
}

/// Splits the rows of `index` inside `span` into its pixel columns (see [`Span`]).
pub fn pixel_columns(raw: &dyn Raw, index: &XIndex, span: Span) -> PixelColumns {
    if span.columns == 0 || span.x1.is_nan() || span.x0.is_nan() || span.x1 < span.x0 {
        return PixelColumns::Empty;
    }
    let rows = index.rows();
    let lo = lower_bound(raw, index, rows.clone(), span.x0);
    let hi = upper_bound(raw, index, lo..rows.end, span.x1);
    if hi <= lo {
        return PixelColumns::Empty;
    }
    if hi - lo <= 4 * u64::from(span.columns) {
        return PixelColumns::Whole(lo..hi);
    }
    let mut columns = Vec::with_capacity(span.columns as usize);
    let mut a = lo;
    for c in 1..=span.columns {
        let b = if c == span.columns {
            hi
        } else {
            let edge = span.x0 + (span.x1 - span.x0) * f64::from(c) / f64::from(span.columns);
            lower_bound(raw, index, a..hi, edge)
        };
        if b > a {
            columns.push(a..b);
        }
        a = b;
    }
    PixelColumns::Cut(columns)
}

/// The first row of `rows` whose x is at least `x`.
fn lower_bound(raw: &dyn Raw, index: &XIndex, rows: Range<u64>, x: f64) -> u64 {
    partition(index.narrow(rows, x, false), |i| raw.x(i) < x)
}

/// The first row of `rows` whose x is more than `x`.
fn upper_bound(raw: &dyn Raw, index: &XIndex, rows: Range<u64>, x: f64) -> u64 {
    partition(index.narrow(rows, x, true), |i| raw.x(i) <= x)
}

/// The first row of `rows` for which `before` is false (`before` true, then false).
fn partition(rows: Range<u64>, before: impl Fn(u64) -> bool) -> u64 {
    let (mut lo, mut hi) = (rows.start, rows.end.max(rows.start));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}
