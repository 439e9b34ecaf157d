//! The alternative to a pyramid: M4 by one pass over every row of the range, as
//! plotly-resampler does on every zoom, and the least any full scan costs.

use plotwire_lod::Span;

/// One pixel column of a full-scan M4.
struct Column {
    first: u64,
    last: u64,
    min: (f64, u64),
    max: (f64, u64),
}

impl Column {
    fn new(i: u64, y: f64) -> Column {
        Column {
            first: i,
            last: i,
            min: (y, i),
            max: (y, i),
        }
    }

    /// Adds a later row. Ties keep the earliest row, as the pyramid's aggregates do.
    #[inline]
    fn push(&mut self, i: u64, y: f64) {
        self.last = i;
        if y < self.min.0 {
            self.min = (y, i);
        }
        if y > self.max.0 {
            self.max = (y, i);
        }
    }

    /// Its rows, increasing, each once.
    fn flush(&self, out: &mut Vec<u64>) {
        let mut rows = [self.first, self.min.1, self.max.1, self.last];
        rows.sort_unstable();
        let mut prev = None;
        for r in rows {
            if prev != Some(r) {
                out.push(r);
                prev = Some(r);
            }
        }
    }
}

/// M4 by one pass over `points` (row, x, y; x increasing, all within the span, no NaN y):
/// the first, last, minimum and maximum rows of every pixel column, appended to `out` in
/// increasing order. What plotly-resampler (tsdownsample) does on every zoom, without any
/// precomputed aggregate. Columns are cut where [`downsample`] cuts them (the first row
/// with `x >= x0 + (x1 − x0)·c/columns`), so the two give the same rows.
pub(super) fn m4_scan(
    points: impl Iterator<Item = (u64, f64, f64)>,
    span: Span,
    out: &mut Vec<u64>,
) {
    let columns = span.columns;
    let edge = |c: u32| {
        if c >= columns {
            f64::INFINITY
        } else {
            span.x0 + (span.x1 - span.x0) * f64::from(c) / f64::from(columns)
        }
    };
    let mut c = 0u32;
    let mut next = edge(1);
    let mut column: Option<Column> = None;
    for (i, x, y) in points {
        if x >= next {
            if let Some(done) = column.take() {
                done.flush(out);
            }
            while x >= next {
                c += 1;
                next = edge(c + 1);
            }
        }
        match &mut column {
            Some(col) => col.push(i, y),
            None => column = Some(Column::new(i, y)),
        }
    }
    if let Some(done) = column {
        done.flush(out);
    }
}

/// The sum of every x and y, in 8 lanes so that it vectorizes: reading the data once, the
/// least any full scan does (memory bandwidth, not arithmetic, bounds it).
pub(super) fn read_floor(x: &[f64], y: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 8];
    for column in [x, y] {
        let chunks = column.chunks_exact(8);
        for (lane, v) in lanes.iter_mut().zip(chunks.remainder()) {
            *lane += v;
        }
        for chunk in chunks {
            for (lane, v) in lanes.iter_mut().zip(chunk) {
                *lane += v;
            }
        }
    }
    lanes.iter().sum()
}
