//! One downsampled source: the pyramids of its y columns, kept current as its rows
//! change, and the rows a view of it needs.

use plotwire_document::model::ColumnSet;
use plotwire_lod::{downsample, Pyramid, Span, Summary, XIndex};
use plotwire_protocol::{Id, Value};

use super::raw::{scan_column, ColumnsRaw};

/// A source drawn by level-of-detail plots.
#[derive(Debug, Clone)]
pub struct LodSource {
    /// The source model.
    pub id: Id,
    /// The x column.
    pub x: String,
    /// The y columns, one per series.
    pub ys: Vec<String>,
    /// The spec's `lod`: `Some(true)` always, `Some(false)` never, `None` by size.
    pub forced: Option<bool>,
    pyramids: Vec<Pyramid>,
    /// Where each bucket of rows starts in x.
    index: XIndex,
    /// The absolute number of the first kept row.
    first: u64,
    /// One past the absolute number of the last row.
    end: u64,
    /// The last row that breaks the order of x (smaller than the row before it, or NaN
    /// next to it): the kept rows are sorted when it is at most `first`.
    last_break: u64,
    /// The x of the last row.
    last_x: f64,
    /// Bumped whenever rows are renumbered (a replace): rows sent before it mean nothing.
    pub generation: u64,
}

impl LodSource {
    /// A source with no rows yet; call [`LodSource::rebuild`] for the rows it has.
    pub fn new(id: Id, x: String, ys: Vec<String>, forced: Option<bool>) -> LodSource {
        let pyramids = (0..ys.len()).map(|s| Pyramid::new(s, 0)).collect();
        LodSource {
            id,
            x,
            ys,
            forced,
            pyramids,
            index: XIndex::new(0),
            first: 0,
            end: 0,
            last_break: 0,
            last_x: f64::NAN,
            generation: 0,
        }
    }

    /// Whether views get downsampled copies: forced on, or more than `threshold` rows,
    /// and x sorted (not NaN, non-decreasing). Otherwise every view gets every row.
    pub fn active(&self, threshold: u64) -> bool {
        let wanted = match self.forced {
            Some(on) => on,
            None => self.end - self.first > threshold,
        };
        wanted && self.sorted() && !self.ys.is_empty()
    }

    /// Whether the kept rows' x is non-decreasing and never NaN.
    pub fn sorted(&self) -> bool {
        self.last_break <= self.first
    }

    /// The absolute numbers of the kept rows.
    pub fn rows(&self) -> std::ops::Range<u64> {
        self.first..self.end
    }

    /// Bytes held by the pyramids.
    pub fn memory_bytes(&self) -> usize {
        self.pyramids
            .iter()
            .map(Pyramid::memory_bytes)
            .sum::<usize>()
            + self.index.memory_bytes()
    }

    /// Reads the source's rows again from the start (a publish, a replace, a patch or a
    /// restart), numbering them from 0.
    pub fn rebuild(&mut self, cols: Option<&ColumnSet>) {
        self.generation += 1;
        self.pyramids = (0..self.ys.len()).map(|s| Pyramid::new(s, 0)).collect();
        self.index = XIndex::new(0);
        self.first = 0;
        self.end = 0;
        self.last_break = 0;
        self.last_x = f64::NAN;
        let rows = cols.and_then(|c| c.get(&self.x)).map_or(0, |c| c.len()) as u64;
        if let Some(cols) = cols {
            self.appended(cols, rows);
        }
    }

    /// Takes in a stream of `batch` rows, already applied to `cols` (with any rollover).
    /// Returns the batch's x summary: where its rows are.
    pub fn appended(&mut self, cols: &ColumnSet, batch: u64) -> Summary {
        let Some(x) = cols.get(&self.x) else {
            return Summary::default();
        };
        let kept = x.len() as u64;
        let end = self.end + batch;
        let first = end.saturating_sub(kept);
        // Sortedness of the new rows, and where the latest break is.
        let mut summary = Summary::default();
        let mut prev = self.last_x;
        let mut at_first = self.end < first || self.end == self.first;
        let mut last_break = self.last_break;
        scan_column(x, first, self.end.max(first)..end, &mut |i, v| {
            let broken =
                v.is_nan() || (!at_first && prev.partial_cmp(&v).is_none_or(|o| o.is_gt()));
            if broken {
                last_break = i + u64::from(v.is_nan());
            }
            at_first = false;
            prev = v;
            summary.push(v);
        });
        self.last_break = last_break;
        self.last_x = prev;
        for p in &mut self.pyramids {
            p.drop_front(first);
        }
        self.index.drop_front(first);
        self.first = first;
        self.end = end;
        if let Some(raw) = self.raw(cols) {
            for p in &mut self.pyramids {
                p.append(&raw, end);
            }
            self.index.append(&raw, end);
        }
        summary
    }

    /// The first and last x of the kept rows.
    pub fn extent(&self, cols: &ColumnSet) -> Option<(f64, f64)> {
        let x = cols.get(&self.x)?;
        let a = x.get_f64(0)?;
        let b = x.get_f64(x.len().checked_sub(1)?)?;
        Some((a, b))
    }

    /// The rows (absolute, increasing) that draw every series over `spans`.
    pub fn rows_for(&self, cols: &ColumnSet, spans: &[Span]) -> Vec<u64> {
        let mut out = Vec::new();
        if let Some(raw) = self.raw(cols) {
            let pyramids: Vec<&Pyramid> = self.pyramids.iter().collect();
            downsample(&raw, &self.index, &pyramids, spans, &mut out);
        }
        out
    }

    /// Every column of `cols` at the absolute `rows`: a view's copy of the source.
    pub fn take(&self, cols: &ColumnSet, rows: &[u64]) -> Vec<(String, Value)> {
        let phys: Vec<usize> = rows
            .iter()
            .filter_map(|r| usize::try_from(r.checked_sub(self.first)?).ok())
            .collect();
        cols.names()
            .filter_map(|name| Some((name.to_owned(), cols.get(name)?.take(&phys))))
            .collect()
    }

    /// The current row of an absolute row, if it is still kept.
    pub fn physical(&self, row: u64) -> Option<u64> {
        (self.first..self.end)
            .contains(&row)
            .then(|| row - self.first)
    }

    fn raw<'a>(&self, cols: &'a ColumnSet) -> Option<ColumnsRaw<'a>> {
        let x = cols.get(&self.x)?;
        let ys = self
            .ys
            .iter()
            .map(|y| cols.get(y))
            .collect::<Option<Vec<_>>>()?;
        Some(ColumnsRaw {
            x,
            ys,
            first: self.first,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lod::testing::{f64s, stream, xy};

    fn source() -> LodSource {
        LodSource::new("s".into(), "x".into(), vec!["y".into()], None)
    }

    #[test]
    fn rows_keep_their_numbers_through_rollover() {
        let mut cols = xy(&[], &[]);
        let mut s = source();
        s.rebuild(Some(&cols));
        for k in 0..10 {
            let x: Vec<f64> = (k * 1000..(k + 1) * 1000).map(|i| i as f64).collect();
            let y: Vec<f64> = x.iter().map(|v| (v * 0.01).sin()).collect();
            stream(&mut cols, &x, &y, Some(2500));
            s.appended(&cols, 1000);
        }
        assert_eq!(s.rows(), 7500..10_000);
        let rows = s.rows_for(
            &cols,
            &[Span {
                x0: 0.0,
                x1: 20_000.0,
                columns: 50,
            }],
        );
        assert!(rows.iter().all(|r| (7500..10_000).contains(r)), "{rows:?}");
        let taken = s.take(&cols, &rows);
        let x = f64s(&taken.iter().find(|(n, _)| n == "x").unwrap().1);
        // absolute row r has x == r in this series
        assert_eq!(x, rows.iter().map(|&r| r as f64).collect::<Vec<_>>());
        assert_eq!(s.physical(7500), Some(0));
        assert_eq!(s.physical(7499), None);
    }

    #[test]
    fn x_out_of_order_or_nan_turns_level_of_detail_off_until_it_rolls_out() {
        let mut cols = xy(&[0.0, 1.0, 2.0], &[0.0; 3]);
        let mut s = LodSource::new("s".into(), "x".into(), vec!["y".into()], Some(true));
        s.rebuild(Some(&cols));
        assert!(s.sorted() && s.active(100));
        stream(&mut cols, &[1.5, 3.0], &[0.0; 2], Some(4));
        s.appended(&cols, 2);
        assert!(!s.sorted() && !s.active(100), "1.5 after 2.0");
        stream(&mut cols, &[4.0, 5.0], &[0.0; 2], Some(4));
        s.appended(&cols, 2);
        // kept: 1.5 3 4 5
        assert!(s.sorted(), "the break rolled out");
        stream(&mut cols, &[f64::NAN], &[0.0], Some(4));
        s.appended(&cols, 1);
        assert!(!s.sorted(), "NaN x");
        stream(&mut cols, &[7.0, 8.0, 9.0, 10.0], &[0.0; 4], Some(4));
        s.appended(&cols, 4);
        assert!(s.sorted(), "the NaN rolled out");
        assert_eq!(s.extent(&cols), Some((7.0, 10.0)));
    }

    #[test]
    fn size_decides_unless_the_spec_does() {
        let cols = xy(&[0.0, 1.0, 2.0], &[0.0; 3]);
        let mut auto = source();
        auto.rebuild(Some(&cols));
        assert!(auto.active(2) && !auto.active(3));
        let mut off = LodSource::new("s".into(), "x".into(), vec!["y".into()], Some(false));
        off.rebuild(Some(&cols));
        assert!(!off.active(0));
    }
}
