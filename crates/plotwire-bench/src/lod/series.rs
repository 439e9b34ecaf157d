//! The series the lod run measures without holding them: generated rows, the views'
//! seeded generator, and a reader that meters what a query reads.

use std::cell::Cell;
use std::ops::Range;
use std::time::{Duration, Instant};

use plotwire_lod::{Agg, Raw};

/// splitmix64's output function: a cheap, well-mixed hash of `z`.
pub(super) fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seeded generator of the views.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.0)
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// The y of row `i`: uniform noise in [-1, 1] (a splitmix64 hash of `i`) on a triangle
/// wave between -4 and 4 with a period of 2^27 rows, so that the minima and maxima of
/// columns and buckets move (and ties are rare). Integer arithmetic and one conversion:
/// a few nanoseconds, no transcendental function.
#[inline]
pub(super) fn y_of(i: u64) -> f64 {
    const HALF_PERIOD: u64 = 1 << 26;
    let noise = (splitmix64(i) >> 11) as f64 * (2.0 / (1u64 << 53) as f64) - 1.0;
    let phase = i & (2 * HALF_PERIOD - 1);
    let ramp = if phase < HALF_PERIOD {
        phase
    } else {
        2 * HALF_PERIOD - phase
    };
    noise + 8.0 * ramp as f64 / HALF_PERIOD as f64 - 4.0
}

/// A series computed from the row number instead of read from memory: `x(i) = i` (so x is
/// increasing), `y(i)` = [`y_of`]. At the default 1e9 points the raw data would be 16 GB
/// of float64 x and y, which does not fit comfortably in this machine's 23 GB next to
/// everything else; computing a row costs about what reading it from memory does (a few
/// ns, see the build line's "generating y alone"), so the pyramid's build and its queries
/// (which read only short runs of rows at the ends of buckets, and x by binary search)
/// are timed as they would be over data in memory, without the 16 GB allocation. The
/// full-scan M4, whose cost is almost all reads, is timed over real memory as well.
pub(super) struct Procedural {
    pub(super) rows: u64,
}

impl Raw for Procedural {
    fn x(&self, i: u64) -> f64 {
        i as f64
    }

    fn scan(&self, _series: usize, rows: Range<u64>, f: &mut dyn FnMut(u64, f64)) {
        for i in rows.start..rows.end.min(self.rows) {
            f(i, y_of(i));
        }
    }
}

/// A [`Raw`] that counts what a query reads through it and times its scans: the
/// breakdown pass (`Instant::now` twice per scan call adds about 0.05 µs each).
pub(super) struct Metered<'a> {
    inner: &'a dyn Raw,
    pub(super) x_reads: Cell<u64>,
    pub(super) scans: Cell<u64>,
    pub(super) scanned: Cell<u64>,
    pub(super) scan_time: Cell<Duration>,
}

impl<'a> Metered<'a> {
    pub(super) fn new(inner: &'a dyn Raw) -> Metered<'a> {
        Metered {
            inner,
            x_reads: Cell::new(0),
            scans: Cell::new(0),
            scanned: Cell::new(0),
            scan_time: Cell::new(Duration::ZERO),
        }
    }
}

impl Raw for Metered<'_> {
    fn x(&self, i: u64) -> f64 {
        self.x_reads.set(self.x_reads.get() + 1);
        self.inner.x(i)
    }

    fn scan(&self, series: usize, rows: Range<u64>, f: &mut dyn FnMut(u64, f64)) {
        let started = Instant::now();
        self.scans.set(self.scans.get() + 1);
        self.scanned
            .set(self.scanned.get() + rows.end.saturating_sub(rows.start));
        self.inner.scan(series, rows, f);
        self.scan_time.set(self.scan_time.get() + started.elapsed());
    }

    fn aggregate(&self, series: usize, rows: Range<u64>) -> Agg {
        let started = Instant::now();
        self.scans.set(self.scans.get() + 1);
        self.scanned
            .set(self.scanned.get() + rows.end.saturating_sub(rows.start));
        let agg = self.inner.aggregate(series, rows);
        self.scan_time.set(self.scan_time.get() + started.elapsed());
        agg
    }
}
