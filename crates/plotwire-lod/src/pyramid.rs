//! The M4 aggregates of one series at power-of-two bucket sizes.

use std::collections::VecDeque;
use std::ops::Range;

use crate::agg::{Agg, Packed};
use crate::Raw;

/// Rows in a bucket of the finest level. Queries scan at most this many rows at each
/// end of a range; the pyramid costs 2 × 32 bytes per this many rows (3.1 % of a
/// float64 x and y).
pub const BASE_ROWS: u64 = 1 << BASE_SHIFT;
const BASE_SHIFT: u32 = 7;

/// Levels kept: the coarsest bucket holds 2^31 rows, so a row offset fits in 32 bits.
const LEVELS: usize = (32 - BASE_SHIFT) as usize;

/// One level: consecutive complete buckets, numbered from `first`.
#[derive(Debug, Clone, Default)]
struct Level {
    first: u64,
    buckets: VecDeque<Packed>,
}

impl Level {
    fn get(&self, q: u64) -> Option<&Packed> {
        let at = q.checked_sub(self.first)?;
        self.buckets.get(usize::try_from(at).ok()?)
    }

    fn get_mut(&mut self, q: u64) -> Option<&mut Packed> {
        let at = q.checked_sub(self.first)?;
        self.buckets.get_mut(usize::try_from(at).ok()?)
    }

    fn push(&mut self, q: u64, bucket: Packed) {
        if self.buckets.is_empty() || self.first + self.buckets.len() as u64 != q {
            self.buckets.clear();
            self.first = q;
        }
        self.buckets.push_back(bucket);
    }
}

/// The aggregates of one series: for every complete bucket of 2^k × [`BASE_ROWS`] rows
/// inside the kept rows, its minimum, maximum and first NaN with their rows.
///
/// The pyramid holds no data: it reads rows through a [`Raw`] when it builds buckets
/// and at the ends of a query. Appends build only the new buckets, a rollover drops
/// only the buckets that reach before the first kept row, and a patch rebuilds only the
/// buckets above the patched rows.
#[derive(Debug, Clone)]
pub struct Pyramid {
    series: usize,
    levels: Vec<Level>,
    /// The first kept row.
    start: u64,
    /// One past the last row.
    end: u64,
}

impl Pyramid {
    /// An empty pyramid of series `series` of a [`Raw`], whose first row will be `start`.
    pub fn new(series: usize, start: u64) -> Pyramid {
        Pyramid {
            series,
            levels: vec![Level::default(); LEVELS],
            start,
            end: start,
        }
    }

    /// The rows summarised.
    pub fn rows(&self) -> Range<u64> {
        self.start..self.end
    }

    /// The series of the [`Raw`] it reads.
    pub fn series(&self) -> usize {
        self.series
    }

    /// Bytes held by the aggregates.
    pub fn memory_bytes(&self) -> usize {
        self.levels
            .iter()
            .map(|l| l.buckets.capacity() * std::mem::size_of::<Packed>())
            .sum()
    }

    /// Takes in the rows up to `end` (exclusive), which `raw` now holds.
    pub fn append(&mut self, raw: &dyn Raw, end: u64) {
        if end <= self.end {
            return;
        }
        let from = self.end / BASE_ROWS;
        let to = end / BASE_ROWS;
        self.end = end;
        for q in from..to {
            let first = q * BASE_ROWS;
            if first < self.start {
                // Reaches before the first kept row: never built.
                continue;
            }
            let agg = scan(raw, self.series, first..first + BASE_ROWS);
            self.put(0, q, Packed::pack(&agg, first));
        }
    }

    /// Forgets the rows before `start` (a rollover).
    pub fn drop_front(&mut self, start: u64) {
        if start <= self.start {
            return;
        }
        self.start = start.min(self.end);
        for (k, level) in self.levels.iter_mut().enumerate() {
            let size = BASE_ROWS << k;
            while level.buckets.front().is_some() && level.first * size < self.start {
                level.buckets.pop_front();
                level.first += 1;
            }
        }
    }

    /// Rebuilds the buckets above `rows`, whose values changed in `raw`.
    pub fn patched(&mut self, raw: &dyn Raw, rows: &[u64]) {
        let mut bases: Vec<u64> = rows.iter().map(|r| r / BASE_ROWS).collect();
        bases.sort_unstable();
        bases.dedup();
        for q in bases {
            if self.levels[0].get(q).is_none() {
                continue;
            }
            let first = q * BASE_ROWS;
            let agg = scan(raw, self.series, first..first + BASE_ROWS);
            if let Some(b) = self.levels[0].get_mut(q) {
                *b = Packed::pack(&agg, first);
            }
            let mut child = q;
            for k in 1..LEVELS {
                let parent = child / 2;
                let Some(merged) = self.merge_children(k, parent) else {
                    break;
                };
                match self.levels[k].get_mut(parent) {
                    Some(b) => *b = merged,
                    None => break,
                }
                child = parent;
            }
        }
    }

    /// The aggregate of `rows` (clamped to the kept rows), exact.
    pub fn query(&self, raw: &dyn Raw, rows: Range<u64>) -> Agg {
        let a = rows.start.max(self.start);
        let b = rows.end.min(self.end);
        if a >= b {
            return Agg::default();
        }
        let fa = a.div_ceil(BASE_ROWS);
        let fb = b / BASE_ROWS;
        if fa >= fb {
            return scan(raw, self.series, a..b);
        }
        let mut agg = scan(raw, self.series, a..fa * BASE_ROWS);
        let mut p = fa;
        while p < fb {
            let mut k = 0;
            while k + 1 < LEVELS {
                let size = 1u64 << (k + 1);
                let fits = p.is_multiple_of(size) && p + size <= fb;
                if !fits || self.levels[k + 1].get(p >> (k + 1)).is_none() {
                    break;
                }
                k += 1;
            }
            let start = p * BASE_ROWS;
            match self.levels[k].get(p >> k) {
                Some(bucket) => agg.then(&bucket.unpack(start)),
                // Not built (cannot happen for kept rows): read the rows instead.
                None => agg.then(&scan(raw, self.series, start..start + BASE_ROWS)),
            }
            p += 1 << k;
        }
        agg.then(&scan(raw, self.series, fb * BASE_ROWS..b));
        agg
    }

    /// Stores bucket `q` of level `k` and builds the parents it completes.
    fn put(&mut self, k: usize, q: u64, bucket: Packed) {
        self.levels[k].push(q, bucket);
        let (mut k, mut q) = (k, q);
        while q % 2 == 1 && k + 1 < LEVELS {
            let parent = q / 2;
            let Some(merged) = self.merge_children(k + 1, parent) else {
                return;
            };
            self.levels[k + 1].push(parent, merged);
            k += 1;
            q = parent;
        }
    }

    /// Bucket `parent` of level `k`, from its two children, if both are built.
    fn merge_children(&self, k: usize, parent: u64) -> Option<Packed> {
        let below = &self.levels[k - 1];
        let child_size = BASE_ROWS << (k - 1);
        let (l, r) = (2 * parent, 2 * parent + 1);
        let mut agg = below.get(l)?.unpack(l * child_size);
        agg.then(&below.get(r)?.unpack(r * child_size));
        Some(Packed::pack(&agg, l * child_size))
    }
}

/// The aggregate of `rows` read from `raw`.
fn scan(raw: &dyn Raw, series: usize, rows: Range<u64>) -> Agg {
    raw.aggregate(series, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Slices;

    fn brute(ys: &[f64], first: u64, rows: Range<u64>) -> Agg {
        let mut agg = Agg::default();
        for i in rows {
            agg.push(i, ys[(i - first) as usize]);
        }
        agg
    }

    #[test]
    fn every_range_of_a_built_pyramid_matches_a_scan() {
        let n = 5 * BASE_ROWS + 37;
        let ys: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1009) as f64).collect();
        let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let raw = Slices {
            x: &x,
            ys: &[&ys],
            first: 0,
        };
        let mut p = Pyramid::new(0, 0);
        // In uneven appends, as streams arrive.
        let mut end = 0;
        for step in [1, 300, 2, 700, 1000, n] {
            end = (end + step).min(n);
            p.append(&raw, end);
        }
        for a in (0..n).step_by(31) {
            for b in (a..=n).step_by(97) {
                assert_eq!(p.query(&raw, a..b), brute(&ys, 0, a..b), "{a}..{b}");
            }
        }
    }

    #[test]
    fn a_rollover_drops_the_buckets_before_the_first_kept_row() {
        let n = 16 * BASE_ROWS;
        let ys: Vec<f64> = (0..n).map(|i| -(i as f64)).collect();
        let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let mut p = Pyramid::new(0, 0);
        p.append(
            &Slices {
                x: &x,
                ys: &[&ys],
                first: 0,
            },
            n,
        );
        let start = 3 * BASE_ROWS + 5;
        p.drop_front(start);
        let kept = Slices {
            x: &x[start as usize..],
            ys: &[&ys[start as usize..]],
            first: start,
        };
        assert_eq!(p.query(&kept, 0..n), brute(&ys, 0, start..n));
        assert_eq!(
            p.query(&kept, start..start + 1).max,
            Some((-(start as f64), start))
        );
        for (k, l) in p.levels.iter().enumerate() {
            assert!(
                l.buckets.is_empty() || l.first * (BASE_ROWS << k) >= start,
                "level {k}"
            );
        }
    }

    #[test]
    fn a_patch_rebuilds_its_buckets_and_their_parents() {
        let n = 8 * BASE_ROWS;
        let mut ys: Vec<f64> = vec![1.0; n as usize];
        let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let mut p = Pyramid::new(0, 0);
        p.append(
            &Slices {
                x: &x,
                ys: &[&ys],
                first: 0,
            },
            n,
        );
        ys[700] = 50.0;
        ys[10] = f64::NAN;
        let raw = Slices {
            x: &x,
            ys: &[&ys],
            first: 0,
        };
        p.patched(&raw, &[700, 10]);
        let all = p.query(&raw, 0..n);
        assert_eq!(all.max, Some((50.0, 700)));
        assert_eq!(all.nan, Some(10));
    }
}
