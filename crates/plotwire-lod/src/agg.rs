//! The aggregate of a row range of one series: its minimum and maximum with their rows,
//! and its first NaN.

/// The minimum, maximum and first NaN of a range of one series. NaN rows count for
/// `nan` only; ±inf are ordinary values. Ties keep the earliest row.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Agg {
    /// The smallest value and its row, if the range holds a value that is not NaN.
    pub min: Option<(f64, u64)>,
    /// The largest value and its row, if the range holds a value that is not NaN.
    pub max: Option<(f64, u64)>,
    /// The first NaN row, if any.
    pub nan: Option<u64>,
}

impl Agg {
    /// Adds row `i` with value `y`; rows must come in increasing order.
    pub fn push(&mut self, i: u64, y: f64) {
        if y.is_nan() {
            self.nan.get_or_insert(i);
            return;
        }
        match self.min {
            Some((m, _)) if m <= y => {}
            _ => self.min = Some((y, i)),
        }
        match self.max {
            Some((m, _)) if m >= y => {}
            _ => self.max = Some((y, i)),
        }
    }

    /// The aggregate of `ys`, row `first` first: the same as pushing each value in
    /// turn, in a few passes over the slice that the compiler can vectorize (the
    /// extremes, then the first row holding each, then the first NaN).
    pub fn of(first: u64, ys: &[f64]) -> Agg {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &y in ys {
            // Comparisons with NaN are false: NaN rows never become an extreme.
            lo = if y < lo { y } else { lo };
            hi = if y > hi { y } else { hi };
        }
        // Equal extremes keep the earliest row; -0.0 and 0.0 are equal, as in `push`.
        let at = |i: usize| (ys[i], first + i as u64);
        Agg {
            min: ys.iter().position(|&y| y == lo).map(at),
            max: ys.iter().position(|&y| y == hi).map(at),
            nan: ys.iter().position(|y| y.is_nan()).map(|i| first + i as u64),
        }
    }

    /// Merges the aggregate of the rows that follow this one's.
    pub fn then(&mut self, later: &Agg) {
        if let Some((y, i)) = later.min {
            match self.min {
                Some((m, _)) if m <= y => {}
                _ => self.min = Some((y, i)),
            }
        }
        if let Some((y, i)) = later.max {
            match self.max {
                Some((m, _)) if m >= y => {}
                _ => self.max = Some((y, i)),
            }
        }
        if self.nan.is_none() {
            self.nan = later.nan;
        }
    }
}

/// An [`Agg`] as a pyramid stores it: rows as offsets from the bucket's first row, so a
/// bucket costs 32 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Packed {
    min: f64,
    max: f64,
    imin: u32,
    imax: u32,
    nan: u32,
}

/// The offset that stands for "none".
const NONE: u32 = u32::MAX;

impl Packed {
    /// Packs `agg` of a bucket starting at row `start` and at most 2^31 rows long.
    pub(crate) fn pack(agg: &Agg, start: u64) -> Packed {
        let off = |i: u64| {
            i.checked_sub(start)
                .and_then(|d| u32::try_from(d).ok())
                .unwrap_or(NONE)
        };
        let (min, imin) = agg.min.map_or((f64::NAN, NONE), |(y, i)| (y, off(i)));
        let (max, imax) = agg.max.map_or((f64::NAN, NONE), |(y, i)| (y, off(i)));
        Packed {
            min,
            max,
            imin,
            imax,
            nan: agg.nan.map_or(NONE, off),
        }
    }

    /// The aggregate of the bucket starting at row `start`.
    pub(crate) fn unpack(&self, start: u64) -> Agg {
        let row = |off: u32| (off != NONE).then(|| start + u64::from(off));
        Agg {
            min: row(self.imin).map(|i| (self.min, i)),
            max: row(self.imax).map(|i| (self.max, i)),
            nan: row(self.nan),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_keeps_the_earliest_of_equal_extremes_and_the_first_nan() {
        let mut a = Agg::default();
        for (i, y) in [3.0, f64::NAN, 1.0, 1.0, 5.0, f64::NAN, 5.0]
            .into_iter()
            .enumerate()
        {
            a.push(i as u64, y);
        }
        assert_eq!(a.min, Some((1.0, 2)));
        assert_eq!(a.max, Some((5.0, 4)));
        assert_eq!(a.nan, Some(1));
    }

    #[test]
    fn then_equals_pushing_everything() {
        let ys = [2.0, -1.0, f64::INFINITY, 0.5, f64::NAN, -1.0, 7.0];
        let mut whole = Agg::default();
        for (i, y) in ys.iter().enumerate() {
            whole.push(i as u64, *y);
        }
        for cut in 0..ys.len() {
            let (mut a, mut b) = (Agg::default(), Agg::default());
            for (i, y) in ys.iter().enumerate() {
                if i < cut {
                    a.push(i as u64, *y)
                } else {
                    b.push(i as u64, *y)
                }
            }
            a.then(&b);
            assert_eq!(a, whole, "cut at {cut}");
        }
    }

    #[test]
    fn of_a_slice_equals_pushing_every_value() {
        let specials = [
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1.0,
            -1.0,
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..2000 {
            let len = (next() % 40) as usize;
            let ys: Vec<f64> = (0..len)
                .map(|_| match next() % 4 {
                    0 => specials[(next() % specials.len() as u64) as usize],
                    // few distinct values, so that ties are common
                    1 => (next() % 3) as f64,
                    _ => (next() % 1000) as f64 / 7.0 - 70.0,
                })
                .collect();
            let mut pushed = Agg::default();
            for (i, y) in ys.iter().enumerate() {
                pushed.push(100 + i as u64, *y);
            }
            let of = Agg::of(100, &ys);
            // Compare bits, so that -0.0 against 0.0 counts.
            let bits = |a: &Agg| {
                (
                    a.min.map(|(y, i)| (y.to_bits(), i)),
                    a.max.map(|(y, i)| (y.to_bits(), i)),
                    a.nan,
                )
            };
            assert_eq!(bits(&of), bits(&pushed), "case {case}: {ys:?}");
        }
    }

    #[test]
    fn packing_round_trips() {
        let agg = Agg {
            min: Some((-2.0, 1003)),
            max: Some((9.0, 1000)),
            nan: None,
        };
        assert_eq!(Packed::pack(&agg, 1000).unpack(1000), agg);
        assert_eq!(Packed::pack(&Agg::default(), 5).unpack(5), Agg::default());
        assert_eq!(std::mem::size_of::<Packed>(), 32);
    }
}
