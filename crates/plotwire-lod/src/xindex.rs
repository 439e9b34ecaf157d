//! Where each bucket of rows starts in x: a pixel column's first row is found in this
//! small, cache-friendly array, then among the 128 rows of one bucket, instead of by a
//! binary search over the whole x column (a cache miss per step on a long series).

use std::collections::VecDeque;
use std::ops::Range;

use crate::pyramid::BASE_ROWS;
use crate::Raw;

/// The x of the first row of every bucket of [`BASE_ROWS`] rows whose first row is
/// kept, and the rows kept. Kept current like a [`crate::Pyramid`]: appends add the new
/// buckets' entries, a rollover drops the entries of the rows that went. 8 bytes per
/// bucket: 0.2 % of a float64 x and y.
#[derive(Debug, Clone)]
pub struct XIndex {
    /// The bucket of `xs[0]`.
    first: u64,
    xs: VecDeque<f64>,
    start: u64,
    end: u64,
}

impl XIndex {
    /// An empty index whose first row will be `start`.
    pub fn new(start: u64) -> XIndex {
        XIndex {
            first: start.div_ceil(BASE_ROWS),
            xs: VecDeque::new(),
            start,
            end: start,
        }
    }

    /// The rows indexed.
    pub fn rows(&self) -> Range<u64> {
        self.start..self.end
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.xs.capacity() * std::mem::size_of::<f64>()
    }

    /// Takes in the rows up to `end` (exclusive), which `raw` now holds.
    pub fn append(&mut self, raw: &dyn Raw, end: u64) {
        if end <= self.end {
            return;
        }
        let next = self.first + self.xs.len() as u64;
        let last = (end - 1) / BASE_ROWS;
        for q in next..=last {
            self.xs.push_back(raw.x(q * BASE_ROWS));
        }
        self.end = end;
    }

    /// Forgets the rows before `start` (a rollover).
    pub fn drop_front(&mut self, start: u64) {
        if start <= self.start {
            return;
        }
        self.start = start;
        self.end = self.end.max(start);
        let first = start.div_ceil(BASE_ROWS);
        while self.first < first && self.xs.pop_front().is_some() {
            self.first += 1;
        }
        if self.xs.is_empty() {
            self.first = first;
        }
    }

    /// The rows of `rows` among which the first row whose x is at least `x` (or, with
    /// `past`, more than `x`) lies, x being sorted. Time series are mostly evenly spaced,
    /// so the search interpolates, with a bisection every other step to bound the worst
    /// case: a pixel column's edge costs a few reads of this array, not a cache miss per
    /// halving of a long column.
    pub fn narrow(&self, rows: Range<u64>, x: f64, past: bool) -> Range<u64> {
        let before = |v: f64| if past { v <= x } else { v < x };
        // The first bucket whose first row is not before: the answer is at most its first
        // row, and past the first row of the bucket before it.
        let (mut lo, mut hi) = (0usize, self.xs.len());
        let mut bisect = false;
        while hi - lo > 4 {
            let (a, b) = (self.xs[lo], self.xs[hi - 1]);
            let probe = if bisect || a.is_nan() || b.is_nan() || b <= a {
                lo + (hi - lo) / 2
            } else {
                let t = ((x - a) / (b - a)).clamp(0.0, 1.0);
                (lo + (t * (hi - 1 - lo) as f64) as usize).clamp(lo, hi - 1)
            };
            bisect = !bisect;
            if before(self.xs[probe]) {
                lo = probe + 1;
            } else {
                hi = probe;
            }
        }
        while lo < hi && before(self.xs[lo]) {
            lo += 1;
        }
        let k = lo;
        let start = match k.checked_sub(1) {
            Some(b) => (self.first + b as u64) * BASE_ROWS,
            None => rows.start,
        };
        let end = (self.first + k as u64)
            .checked_mul(BASE_ROWS)
            .map_or(rows.end, |h| h.min(rows.end));
        start.clamp(rows.start, rows.end)..end.max(start).clamp(rows.start, rows.end)
    }
}
