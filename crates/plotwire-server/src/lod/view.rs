//! What one view shows and holds of the downsampled plots, and the events that bring it
//! up to date.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use plotwire_document::Document;
use plotwire_lod::Span;
use plotwire_protocol::event::DocumentEvent;
use plotwire_protocol::{Id, Value};

use super::plan::{Lod, LodPlot, Placement};

/// A view's level-of-detail state.
#[derive(Debug, Default, Clone)]
pub struct ViewLod {
    /// x range → where the viewer put it (absent: the server places it).
    user: HashMap<Id, (f64, f64)>,
    /// Plot → its data frame's width, as BokehJS reported it (`inner_width`).
    widths: HashMap<Id, u32>,
    /// x range → where the browser has it.
    shown: HashMap<Id, (f64, f64)>,
    /// Source → the generation and the absolute rows of the copy the browser holds.
    sent: HashMap<Id, (u64, Arc<[u64]>)>,
    /// When the view is next brought up to date, if it is due.
    pub due: Option<Instant>,
    /// Since when an update has been pending (bounds the trailing debounce).
    pub pending_since: Option<Instant>,
}

/// The widest data frame a view's copy is sized for, in pixels (an 8K screen is 7680
/// wide): a browser that reports more gets a copy for this many.
pub const MAX_WIDTH: u32 = 16_384;

/// The most a view's pending update waits while changes keep coming.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_millis(150);

impl ViewLod {
    /// Asks for an update `after` from now, postponed by later calls (trailing debounce)
    /// but never past [`MAX_WAIT`] after the first.
    pub fn schedule(&mut self, now: Instant, after: std::time::Duration) {
        let since = *self.pending_since.get_or_insert(now);
        self.due = Some((now + after).min(since + MAX_WAIT));
    }

    /// Asks for an update no later than `after` from now (new rows: not postponed).
    pub fn schedule_by(&mut self, now: Instant, after: std::time::Duration) {
        let at = now + after;
        self.pending_since.get_or_insert(now);
        self.due = Some(self.due.map_or(at, |d| d.min(at)));
    }

    /// The update ran.
    pub fn updated(&mut self) {
        self.due = None;
        self.pending_since = None;
    }

    /// Forgets what the browser holds, so that the next update sends everything; where
    /// the viewer put the ranges and the plots' sizes are kept.
    pub fn forget_copies(&mut self) {
        self.sent.clear();
        self.shown.clear();
    }

    /// The viewer set `attr` (`start` or `end`) of x range `range` to `value`.
    pub fn moved(&mut self, range: &str, attr: &str, value: f64) {
        let (mut s, mut e) = self
            .user
            .get(range)
            .or_else(|| self.shown.get(range))
            .copied()
            .unwrap_or((value, value));
        match attr {
            "start" => s = value,
            "end" => e = value,
            _ => return,
        }
        self.user.insert(range.to_owned(), (s, e));
        self.shown.insert(range.to_owned(), (s, e));
    }

    /// The viewer reset plot's x range: the server places it again.
    pub fn reset(&mut self, range: &str) {
        self.user.remove(range);
        self.shown.remove(range);
    }

    /// BokehJS reported the width of plot's data frame.
    pub fn resized(&mut self, plot: &str, width: u32) {
        self.widths.insert(plot.to_owned(), width.max(1));
    }

    /// The absolute rows of the browser's copy of `source`, if it holds a downsampled one.
    pub fn rows_of(&self, source: &str) -> Option<&[u64]> {
        self.sent.get(source).map(|(_, rows)| &rows[..])
    }

    /// Whether a plot of `source` in this view follows the data (the server places its
    /// range) or shows x values in `lo..=hi` (its range, widened by its margins).
    pub fn wants(&self, lod: &Lod, source: &str, lo: f64, hi: f64) -> bool {
        lod.plots.iter().filter(|p| p.source == source).any(|p| {
            let placed = !self.user.contains_key(&p.x_range);
            if placed && !matches!(p.placement, Placement::Fixed(..)) {
                return true;
            }
            self.shown.get(&p.x_range).is_some_and(|&(a, b)| {
                let (a, b) = (a.min(b), a.max(b));
                let margin = b - a;
                lo <= b + margin && hi >= a - margin
            })
        })
    }
}

impl Lod {
    /// Where plot `p`'s x range is in `view`.
    pub fn range_of(&self, doc: &Document, view: &ViewLod, p: &LodPlot) -> (f64, f64) {
        if let Some(r) = view.user.get(&p.x_range) {
            return *r;
        }
        let extent = self
            .source(&p.source)
            .zip(doc.model(&p.source).and_then(|m| m.columns.as_ref()))
            .and_then(|(s, cols)| s.extent(cols))
            .filter(|(a, b)| a.is_finite() && b.is_finite());
        match (p.placement, extent) {
            (Placement::Fixed(s, e), _) => (s, e),
            (Placement::Follow(f), Some((_, last))) => (last - f, last),
            (Placement::Follow(f), None) => (0.0, f),
            (Placement::Fit { .. }, Some((a, b))) if a == b => (a - 0.5, b + 0.5),
            (Placement::Fit { padding }, Some((a, b))) => {
                let pad = (b - a) * padding / 2.0;
                (a - pad, b + pad)
            }
            (Placement::Fit { .. }, None) => (0.0, 1.0),
        }
    }

    /// The events that bring `view` up to date: x ranges the server places and that
    /// moved, and a new copy of each downsampled source whose rows changed. `all`: as if
    /// the browser held nothing yet (the events go into its PULL-DOC-REPLY).
    pub fn update(
        &self,
        doc: &Document,
        view: &mut ViewLod,
        all: bool,
        cache: &mut CopyCache,
    ) -> Vec<DocumentEvent> {
        let mut events = Vec::new();
        for p in &self.plots {
            let r = self.range_of(doc, view, p);
            let placed = !view.user.contains_key(&p.x_range);
            if placed && (all || view.shown.get(&p.x_range) != Some(&r)) {
                for (attr, v) in [("start", r.0), ("end", r.1)] {
                    events.push(DocumentEvent::ModelChanged {
                        model: p.x_range.clone(),
                        attr: attr.to_owned(),
                        new: Value::Float(v),
                    });
                }
            }
            view.shown.insert(p.x_range.clone(), r);
        }
        for s in &self.sources {
            let Some(cols) = doc.model(&s.id).and_then(|m| m.columns.as_ref()) else {
                continue;
            };
            if !s.active(self.threshold) {
                // A copy left from when it was downsampled: every row again.
                if view.sent.remove(&s.id).is_some() && !all {
                    let data = cols
                        .names()
                        .filter_map(|n| Some((n.to_owned(), cols.get(n)?.to_value())))
                        .collect();
                    events.push(data_changed(&s.id, data));
                }
                continue;
            }
            let mut spans = Vec::new();
            for p in self.plots.iter().filter(|p| p.source == s.id) {
                let Some(&(x0, x1)) = view.shown.get(&p.x_range) else {
                    continue;
                };
                let width = view.widths.get(&p.plot).copied().unwrap_or(p.width);
                spans.extend(spans_for(x0, x1, width));
            }
            let key = (
                s.id.clone(),
                spans
                    .iter()
                    .map(|sp| [sp.x0.to_bits(), sp.x1.to_bits(), u64::from(sp.columns)])
                    .collect::<Vec<_>>(),
            );
            let (rows, data) = cache
                .entry(key)
                .or_insert_with(|| {
                    let rows: Arc<[u64]> = s.rows_for(cols, &spans).into();
                    let data = Arc::new(s.take(cols, &rows));
                    (rows, data)
                })
                .clone();
            let same = view
                .sent
                .get(&s.id)
                .is_some_and(|(g, r)| *g == s.generation && *r == rows);
            if all || !same {
                events.push(data_changed(&s.id, data.as_ref().clone()));
                view.sent.insert(s.id.clone(), (s.generation, rows));
            }
        }
        events
    }
}

/// Copies computed during one round of updates, by source and spans: views that show
/// the same thing share one computation.
pub type CopyCache = HashMap<(Id, Vec<[u64; 3]>), (Arc<[u64]>, Arc<Vec<(String, Value)>>)>;

/// The spans a plot `width` pixels wide over `x0..x1` needs: the range at one column
/// per pixel, and one range's width past each edge at one column per 8 pixels, so that
/// a pan shows data at once, coarser until the refinement arrives.
pub fn spans_for(x0: f64, x1: f64, width: u32) -> Vec<Span> {
    // A flipped range (start after end) shows the same rows.
    let (x0, x1) = (x0.min(x1), x0.max(x1));
    let width = width.min(MAX_WIDTH);
    let span = x1 - x0;
    if !(span.is_finite() && span > 0.0) {
        return Vec::new();
    }
    let margin = (width / 8).max(1);
    vec![
        Span {
            x0: x0 - span,
            x1: x0,
            columns: margin,
        },
        Span {
            x0,
            x1,
            columns: width.max(1),
        },
        Span {
            x0: x1,
            x1: x1 + span,
            columns: margin,
        },
    ]
}

fn data_changed(id: &str, data: Vec<(String, Value)>) -> DocumentEvent {
    DocumentEvent::ColumnDataChanged {
        model: id.to_owned(),
        attr: "data".to_owned(),
        data,
        cols: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lod::testing::floats;
    use crate::lod::LodSource;
    use plotwire_protocol::value::ModelRep;

    /// A document with source `s` (x, y) and nothing else: enough for the plan's plots.
    fn doc(x: &[f64], y: &[f64]) -> Document {
        let rep = ModelRep {
            name: "ColumnDataSource".into(),
            id: "s".into(),
            attributes: vec![(
                "data".into(),
                Value::Map(vec![
                    (Value::Str("x".into()), floats(x)),
                    (Value::Str("y".into()), floats(y)),
                ]),
            )],
        };
        let json = plotwire_protocol::event::DocJson {
            version: None,
            title: Some("t".into()),
            config: None,
            roots: vec![Value::Model(Box::new(rep))],
            callbacks: None,
            defs: None,
        };
        Document::from_doc_json(json).unwrap()
    }

    fn lod(doc: &Document, placement: Placement) -> Lod {
        let mut s = LodSource::new("s".into(), "x".into(), vec!["y".into()], Some(true));
        s.rebuild(doc.model("s").and_then(|m| m.columns.as_ref()));
        Lod {
            threshold: 0,
            plots: vec![LodPlot {
                plot: "p".into(),
                x_range: "xr".into(),
                source: "s".into(),
                placement,
                width: 100,
            }],
            sources: vec![s],
        }
    }

    fn range_events(events: &[DocumentEvent]) -> Vec<(String, f64)> {
        events
            .iter()
            .filter_map(|e| match e {
                DocumentEvent::ModelChanged {
                    attr,
                    new: Value::Float(v),
                    ..
                } => Some((attr.clone(), *v)),
                _ => None,
            })
            .collect()
    }

    fn copy_len(events: &[DocumentEvent]) -> Option<usize> {
        events.iter().find_map(|e| match e {
            DocumentEvent::ColumnDataChanged { data, .. } => {
                Some(crate::lod::testing::f64s(&data[0].1).len())
            }
            _ => None,
        })
    }

    #[test]
    fn a_view_gets_its_ranges_and_copy_once_and_again_only_when_they_change() {
        let x: Vec<f64> = (0..10_000).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| (v * 0.37).sin()).collect();
        let d = doc(&x, &y);
        let l = lod(&d, Placement::Fit { padding: 0.0 });
        let mut v = ViewLod::default();
        let mut cache = CopyCache::new();
        let first = l.update(&d, &mut v, true, &mut cache);
        assert_eq!(
            range_events(&first),
            vec![("start".into(), 0.0), ("end".into(), 9999.0)]
        );
        let n = copy_len(&first).unwrap();
        assert!(n <= 4 * 100 && n > 100, "{n} rows for 100 columns");
        assert!(
            l.update(&d, &mut v, false, &mut CopyCache::new())
                .is_empty(),
            "nothing changed"
        );

        // the viewer zooms in: no range event (the browser moved it), a finer copy
        v.moved("xr", "start", 1000.0);
        v.moved("xr", "end", 1100.0);
        let zoomed = l.update(&d, &mut v, false, &mut CopyCache::new());
        assert!(range_events(&zoomed).is_empty());
        // 101 rows in range, raw; margins of 100 rows on each side at 12 columns each
        let n = copy_len(&zoomed).unwrap();
        assert!((101..=101 + 2 * 48).contains(&n), "{n}");
        // reset: placed again
        v.reset("xr");
        let reset = l.update(&d, &mut v, false, &mut CopyCache::new());
        assert_eq!(
            range_events(&reset),
            vec![("start".into(), 0.0), ("end".into(), 9999.0)]
        );
        assert!(
            v.wants(&l, "s", 20_000.0, 20_001.0),
            "a fitted view wants new rows anywhere"
        );
    }

    #[test]
    fn a_following_view_moves_with_the_data_and_a_zoomed_view_wants_only_its_rows() {
        let x: Vec<f64> = (0..1000).map(f64::from).collect();
        let mut d = doc(&x, &x);
        let mut l = lod(&d, Placement::Follow(100.0));
        let mut v = ViewLod::default();
        let first = l.update(&d, &mut v, true, &mut CopyCache::new());
        assert_eq!(
            range_events(&first),
            vec![("start".into(), 899.0), ("end".into(), 999.0)]
        );
        // more rows: the range follows
        let all: Vec<f64> = (0..1100).map(f64::from).collect();
        d = doc(&all, &all);
        l.sources[0].appended(d.model("s").and_then(|m| m.columns.as_ref()).unwrap(), 100);
        let next = l.update(&d, &mut v, false, &mut CopyCache::new());
        assert_eq!(
            range_events(&next),
            vec![("start".into(), 999.0), ("end".into(), 1099.0)]
        );

        let mut zoomed = ViewLod::default();
        zoomed.moved("xr", "start", 100.0);
        zoomed.moved("xr", "end", 200.0);
        assert!(
            zoomed.wants(&l, "s", 250.0, 260.0),
            "inside the right margin"
        );
        assert!(
            !zoomed.wants(&l, "s", 1100.0, 1200.0),
            "far past what it shows"
        );
    }

    #[test]
    fn an_empty_range_has_no_spans_and_a_flipped_one_the_same_as_unflipped() {
        assert!(spans_for(1.0, 1.0, 100).is_empty());
        assert_eq!(spans_for(2.0, 1.0, 100), spans_for(1.0, 2.0, 100));
        let widest = spans_for(0.0, 1.0, u32::MAX);
        assert_eq!(widest[1].columns, MAX_WIDTH, "a reported width is capped");
        assert!(spans_for(0.0, f64::INFINITY, 100).is_empty());
        assert_eq!(spans_for(0.0, 1.0, 800).len(), 3);
    }
}
