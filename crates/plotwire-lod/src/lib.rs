//! Level of detail for time series (`docs/lod.md`).
//!
//! A browser plotting a line can draw at most a few distinct values per pixel column:
//! the first and last point of the column (where the line enters and leaves it) and its
//! minimum and maximum (how far it reaches). The M4 downsampling keeps exactly those
//! four rows per column, so the line it draws is the line of the full data.
//!
//! Computing M4 by scanning is O(rows) per query: 80 ms per 1e8 points with SIMD, far
//! from interactive at 1e9. A [`Pyramid`] keeps, for one series, the minimum and maximum
//! (with their rows) of every bucket of 2^k rows, from [`BASE_ROWS`] rows up. Any row
//! range is then a handful of buckets plus two short scans at its ends, so one query
//! costs O(columns × log rows) whatever the size of the series.
//!
//! - [`Raw`]: how the pyramid reads the rows it summarises (memory or a store).
//! - [`Pyramid`]: the aggregates of one series, kept current by appends, front drops
//!   (rollover) and patches, never by a rescan.
//! - [`XIndex`]: where each bucket starts in x, so that finding a pixel column's rows
//!   reads a small array and one bucket instead of the whole x column.
//! - [`downsample`]: the rows a view of `width` pixel columns over an x range needs.
//! - [`Summary`]: what a chunk of rows says about itself (count, min, max, sortedness).
//! - [`Blocked`]: a [`Raw`] over rows kept in a store in blocks of [`BASE_ROWS`] rows, for
//!   a series too large for memory.
//!
//! Rows are numbered absolutely: row 0 is the first row ever appended, and rollover
//! moves the first kept row forward instead of renumbering. x must be non-decreasing and
//! not NaN ([`Summary::sorted`] tells); NaN in a y series breaks a line in Bokeh, and the
//! downsampled data keeps that break (see [`downsample`]).

mod agg;
mod blocks;
mod m4;
mod pyramid;
mod summary;
mod xindex;

pub use agg::Agg;
pub use blocks::{Block, BlockSource, Blocked};
pub use m4::{downsample, pixel_columns, PixelColumns, Span};
pub use pyramid::{Pyramid, BASE_ROWS};
pub use summary::Summary;
pub use xindex::XIndex;

use std::ops::Range;

/// Read access to the rows a pyramid summarises. Indices are absolute (see the crate
/// docs); a reader is only asked for rows it holds.
pub trait Raw {
    /// The x of row `i`.
    fn x(&self, i: u64) -> f64;
    /// Calls `f(i, y)` for every row `i` of `rows`, in order, with series `series`' y.
    fn scan(&self, series: usize, rows: Range<u64>, f: &mut dyn FnMut(u64, f64));

    /// The aggregate of series `series` over `rows`: what a pyramid asks for when it
    /// builds a bucket and at the ends of a query. The default pushes every row of
    /// [`Raw::scan`]; a reader that holds runs of contiguous float64 values does better
    /// with [`Agg::of`] on each run.
    fn aggregate(&self, series: usize, rows: Range<u64>) -> Agg {
        let mut agg = Agg::default();
        self.scan(series, rows, &mut |i, y| agg.push(i, y));
        agg
    }
}

/// A [`Raw`] over plain slices: `x` and one slice per series, row 0 first. For tests,
/// benchmarks and callers that hold their data contiguously.
#[derive(Debug, Clone, Copy)]
pub struct Slices<'a> {
    /// The x column.
    pub x: &'a [f64],
    /// The y columns, one per series.
    pub ys: &'a [&'a [f64]],
    /// The absolute index of `x[0]`.
    pub first: u64,
}

impl Raw for Slices<'_> {
    fn x(&self, i: u64) -> f64 {
        let at = i.saturating_sub(self.first) as usize;
        self.x.get(at).copied().unwrap_or(f64::NAN)
    }

    fn scan(&self, series: usize, rows: Range<u64>, f: &mut dyn FnMut(u64, f64)) {
        let Some(ys) = self.ys.get(series) else {
            return;
        };
        let lo = rows.start.saturating_sub(self.first) as usize;
        let hi = (rows.end.saturating_sub(self.first) as usize).min(ys.len());
        for (k, y) in ys.get(lo..hi).unwrap_or(&[]).iter().enumerate() {
            f(rows.start + k as u64, *y);
        }
    }

    fn aggregate(&self, series: usize, rows: Range<u64>) -> Agg {
        let Some(ys) = self.ys.get(series) else {
            return Agg::default();
        };
        let start = rows.start.max(self.first);
        let lo = (start - self.first) as usize;
        let hi = (rows.end.saturating_sub(self.first) as usize).min(ys.len());
        Agg::of(start, ys.get(lo..hi).unwrap_or(&[]))
    }
}
