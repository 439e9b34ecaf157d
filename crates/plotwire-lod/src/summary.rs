//! What a chunk of rows says about one of its columns, as Rerun's chunks do: enough to
//! tell whether x is sorted, and where it starts and ends, without reading it again.

/// The count, extremes, ends and sortedness of a run of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Values, NaN included.
    pub count: u64,
    /// NaN values.
    pub nans: u64,
    /// The smallest value that is not NaN (+inf when there is none).
    pub min: f64,
    /// The largest value that is not NaN (−inf when there is none).
    pub max: f64,
    /// The first value (NaN when empty).
    pub first: f64,
    /// The last value (NaN when empty).
    pub last: f64,
    /// Whether the values are non-decreasing and none is NaN.
    pub sorted: bool,
}

impl Default for Summary {
    fn default() -> Summary {
        Summary {
            count: 0,
            nans: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            first: f64::NAN,
            last: f64::NAN,
            sorted: true,
        }
    }
}

impl Summary {
    /// The summary of `values`, in order.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Summary {
        let mut s = Summary::default();
        for v in values {
            s.push(v);
        }
        s
    }

    /// Adds one value after the others.
    pub fn push(&mut self, v: f64) {
        if self.count == 0 {
            self.first = v;
        } else if self.last.partial_cmp(&v).is_none_or(|o| o.is_gt()) {
            self.sorted = false;
        }
        if v.is_nan() {
            self.nans += 1;
            self.sorted = false;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.last = v;
        self.count += 1;
    }

    /// Merges the summary of the values that follow these.
    pub fn then(&mut self, later: &Summary) {
        if later.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *later;
            return;
        }
        self.sorted = self.sorted && later.sorted && self.last <= later.first;
        self.count += later.count;
        self.nans += later.nans;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        self.last = later.last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_summaries_equal_the_summary_of_everything() {
        let v = [1.0, 2.0, 2.0, 5.0, 4.0, f64::NAN, 9.0];
        let whole = Summary::of(v);
        assert!(!whole.sorted);
        assert_eq!(
            (whole.count, whole.nans, whole.min, whole.max),
            (7, 1, 1.0, 9.0)
        );
        for cut in 0..=v.len() {
            let mut a = Summary::of(v[..cut].iter().copied());
            a.then(&Summary::of(v[cut..].iter().copied()));
            assert_eq!(a.count, whole.count);
            assert_eq!(
                (a.min, a.max, a.sorted, a.nans),
                (whole.min, whole.max, whole.sorted, whole.nans)
            );
        }
        let sorted = Summary::of([1.0, 1.0, 3.0]);
        assert!(sorted.sorted);
        let mut joined = sorted;
        joined.then(&Summary::of([2.0]));
        assert!(!joined.sorted, "a later chunk that starts lower unsorts");
    }
}
