//! The owner's side of level of detail (`crate::lod`): it keeps the pyramids current
//! as producers change downsampled sources, keeps their rows out of the relay, and
//! brings each view up to date when its viewer pans, zooms or resizes, when new rows
//! reach what it shows, and when it pulls the document.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use plotwire_document::Applied;
use plotwire_protocol::event::DocumentEvent;
use plotwire_protocol::{Id, Value};

use super::delivery::encode_events;
use super::views::ui_event_parts;
use super::{Owner, Policy};
use crate::limits::column_rows;
use crate::lod::view::MAX_WIDTH;
use crate::lod::{CopyCache, Lod};

/// The trailing debounce of a viewer's range changes (they come at pointer rate).
const DEBOUNCE: Duration = Duration::from_millis(40);

/// How often, at most, new rows refresh a view.
const LIVE: Duration = Duration::from_millis(200);

/// How a producer's event touches a downsampled source.
pub(super) enum Touch {
    /// `rows` rows were streamed.
    Stream(u64),
    /// Its rows were replaced or patched: read them again.
    Rebuild,
}

impl Owner {
    /// Plans level of detail from the spec (a new document, a publish, a spec change).
    /// Views keep where their viewers put the ranges; their copies are sent again.
    pub(super) fn lod_replan(&mut self) {
        self.lod = match (&self.spec, self.policy) {
            (Some(spec), Policy::Views) => {
                let lod = Lod::plan(spec, &self.doc, self.settings.lod_threshold);
                (!lod.plots.is_empty()).then_some(lod)
            }
            _ => None,
        };
        let now = Instant::now();
        for v in self.views.values_mut() {
            v.lod.forget_copies();
            if self.lod.is_some() {
                v.lod.schedule_by(now, Duration::ZERO);
                self.lod_due = Some(now);
            }
        }
    }

    /// How `events` (a producer's, about to be applied) touch downsampled sources.
    pub(super) fn lod_touched(&self, events: &[DocumentEvent]) -> Vec<(Id, Touch)> {
        let Some(lod) = &self.lod else {
            return Vec::new();
        };
        events
            .iter()
            .filter_map(|e| {
                let (model, touch) = match e {
                    DocumentEvent::ColumnsStreamed { model, data, .. } => {
                        (model, Touch::Stream(column_rows(data) as u64))
                    }
                    DocumentEvent::ColumnDataChanged { model, .. }
                    | DocumentEvent::ColumnsPatched { model, .. } => (model, Touch::Rebuild),
                    DocumentEvent::ModelChanged { model, attr, .. } if attr == "data" => {
                        (model, Touch::Rebuild)
                    }
                    _ => return None,
                };
                lod.source(model).map(|_| (model.clone(), touch))
            })
            .collect()
    }

    /// After a producer's events were applied: brings the pyramids up to date, keeps
    /// the rows of downsampled sources out of the relay (views get their own copies)
    /// and schedules the views that show the new rows.
    pub(super) fn lod_applied(&mut self, touched: Vec<(Id, Touch)>, applied: &mut Applied) {
        let Some(lod) = &mut self.lod else {
            return;
        };
        let threshold = lod.threshold;
        let now = Instant::now();
        let mut hidden: Vec<Id> = Vec::new();
        for (id, touch) in touched {
            let cols = self.doc.model(&id).and_then(|m| m.columns.as_ref());
            let Some(source) = lod.source_mut(&id) else {
                continue;
            };
            let was = source.active(threshold);
            let (lo, hi) = match (touch, cols) {
                (Touch::Stream(rows), Some(cols)) => {
                    let s = source.appended(cols, rows);
                    (s.min, s.max)
                }
                (_, cols) => {
                    source.rebuild(cols);
                    (f64::NEG_INFINITY, f64::INFINITY)
                }
            };
            if was || source.active(threshold) {
                hidden.push(id.clone());
            }
            for v in self.views.values_mut() {
                if v.lod.wants(lod, &id, lo, hi) {
                    v.lod.schedule_by(now, LIVE);
                    self.lod_due = earliest(self.lod_due, v.lod.due);
                }
            }
        }
        if !hidden.is_empty() {
            applied.relay.retain(|e| match e {
                DocumentEvent::ColumnsStreamed { model, .. }
                | DocumentEvent::ColumnsPatched { model, .. }
                | DocumentEvent::ColumnDataChanged { model, .. } => !hidden.contains(model),
                DocumentEvent::ModelChanged { model, attr, .. } => {
                    !(attr == "data" && hidden.contains(model))
                }
                _ => true,
            });
        }
    }

    /// A viewer's PATCH-DOC, already checked and kept in its view: range moves, plot
    /// sizes and the end of gestures schedule its refinement.
    pub(super) fn lod_from_view(&mut self, view: &str, events: &[DocumentEvent]) {
        let Some(lod) = &self.lod else {
            return;
        };
        let Some(v) = self.views.get_mut(view) else {
            return;
        };
        let now = Instant::now();
        let mut widths: Vec<(Id, u32)> = Vec::new();
        for e in events {
            match e {
                DocumentEvent::ModelChanged { model, attr, new } => {
                    let number = match new {
                        Value::Float(f) => Some(*f),
                        Value::Int(i) => Some(*i as f64),
                        _ => None,
                    };
                    let Some(number) = number.filter(|n| n.is_finite()) else {
                        continue;
                    };
                    if lod.plot_of_range(model).is_some() && (attr == "start" || attr == "end") {
                        v.lod.moved(model, attr, number);
                        v.lod.schedule(now, DEBOUNCE);
                    } else if lod.plot(model).is_some() && attr == "inner_width" {
                        let width = number.clamp(1.0, f64::from(MAX_WIDTH)) as u32;
                        v.lod.resized(model, width);
                        v.lod.schedule(now, DEBOUNCE);
                        widths.push((model.clone(), width));
                    }
                }
                DocumentEvent::MessageSent { msg_data, .. } => {
                    let Some((name, Some(plot))) = ui_event(msg_data) else {
                        continue;
                    };
                    let Some(p) = lod.plot(&plot) else {
                        continue;
                    };
                    match name.as_str() {
                        "rangesupdate" | "lodend" => v.lod.schedule(now, Duration::ZERO),
                        "reset" => {
                            v.lod.reset(&p.x_range);
                            v.lod.schedule(now, Duration::ZERO);
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        self.lod_due = earliest(self.lod_due, v.lod.due);
        // The next views start at the width browsers report (the same Figure usually
        // has the same frame), so that their first copy is already the right one.
        if let Some(lod) = &mut self.lod {
            for (plot, width) in widths {
                if let Some(p) = lod.plots.iter_mut().find(|p| p.plot == plot) {
                    p.width = width;
                }
            }
        }
    }

    /// A selection a viewer made on its downsampled copy, as rows of the full source
    /// (for the producers); `None` when `model` is not such a selection.
    pub(super) fn lod_selection(&self, view: &str, model: &str, value: &Value) -> Option<Value> {
        let lod = self.lod.as_ref()?;
        let source = lod.sources.iter().find(|s| {
            self.doc
                .model(&s.id)
                .and_then(|m| m.attribute("selected"))
                .is_some_and(|sel| matches!(sel, Value::Ref(r) if r == model))
        })?;
        let rows = self.views.get(view)?.lod.rows_of(&source.id)?;
        let Value::List(items) = value else {
            return None;
        };
        let mapped = items
            .iter()
            .filter_map(|i| match i {
                Value::Int(k) => usize::try_from(*k).ok(),
                _ => None,
            })
            .filter_map(|k| rows.get(k))
            .filter_map(|&row| source.physical(row))
            .filter_map(|r| i64::try_from(r).ok().map(Value::Int))
            .collect();
        Some(Value::List(mapped))
    }

    /// The events that put `view`'s ranges and copies into its PULL-DOC-REPLY.
    pub(super) fn lod_pull(&mut self, view: &str) -> Vec<DocumentEvent> {
        let (Some(lod), Some(v)) = (&self.lod, self.views.get_mut(view)) else {
            return Vec::new();
        };
        v.lod.updated();
        lod.update(&self.doc, &mut v.lod, true, &mut CopyCache::new())
    }

    /// When the next view may be due to be brought up to date (no later than the
    /// earliest due view; a view whose update was postponed since is looked at again).
    pub(super) fn lod_next_due(&self) -> Option<Instant> {
        self.lod.as_ref().and(self.lod_due)
    }

    /// Brings every due view up to date.
    pub(super) fn lod_tick(&mut self) {
        let Some(lod) = &self.lod else {
            return;
        };
        let now = Instant::now();
        let started = now;
        let mut cache = CopyCache::new();
        // Views that get the same events share one encoded message.
        let mut out: Vec<(Vec<DocumentEvent>, HashSet<String>)> = Vec::new();
        let mut next = None;
        for (id, v) in self.views.iter_mut() {
            if v.lod.due.is_none_or(|d| d > now) {
                next = earliest(next, v.lod.due);
                continue;
            }
            v.lod.updated();
            if v.conns == 0 {
                // Nobody to send to: its next pull sends everything.
                v.lod.forget_copies();
                continue;
            }
            let events = lod.update(&self.doc, &mut v.lod, false, &mut cache);
            if events.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(e, _)| *e == events) {
                Some((_, views)) => {
                    views.insert(id.clone());
                }
                None => out.push((events, HashSet::from([id.clone()]))),
            }
        }
        self.lod_due = next;
        for (events, views) in out {
            let msg = encode_events(&Applied::default(), &events);
            let conns: Vec<_> = self
                .peers
                .iter()
                .filter(|(_, p)| views.contains(&p.view))
                .map(|(c, _)| *c)
                .collect();
            self.send_each(&conns, &msg);
        }
        let took = started.elapsed();
        tracing::debug!(session = %self.id, ms = took.as_secs_f64() * 1000.0, "lod tick");
    }
}

/// The earlier of two instants, either of which may be missing.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The name and model of a `bokeh_event`.
fn ui_event(msg_data: &Value) -> Option<(String, Option<Id>)> {
    let (name, entries) = ui_event_parts(msg_data);
    let model = entries.into_iter().find_map(|(k, v)| match v {
        Value::Ref(id) if k == "model" => Some(id.clone()),
        _ => None,
    });
    (!name.is_empty()).then_some((name, model))
}
