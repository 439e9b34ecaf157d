//! A published document's retention (`docs/storage.md`, "Retention"): `max_rows` caps
//! every stream's rollover and refuses bigger replaces; `max_age` has the owner trim
//! rows older than it, now and then, with an ordinary document event (a stream of no
//! rows whose rollover keeps the younger rows), applied, logged and fanned out like any
//! write, so that a restart replays the trims.

use std::time::{Duration, Instant};

use plotwire_document::Applied;
use plotwire_protocol::event::DocumentEvent;
use plotwire_protocol::{Id, Value};

use super::Owner;
use crate::api::Columns;
use crate::error::HttpError;
use crate::persist::{self, Whole};
use crate::retention::{wall_ms, Arrivals, Change};

impl Owner {
    /// Starts the arrivals of the document (those its log kept, or every row arriving
    /// now) and its trims, as its retention says.
    pub(super) fn retention_start(&mut self, arrivals: Option<Arrivals>) {
        self.arrivals = match (self.retention.max_age_ms, arrivals) {
            (None, _) => Arrivals::default(),
            (Some(_), Some(kept)) => kept,
            (Some(_), None) => Arrivals::fresh(&self.doc, wall_ms()),
        };
        // A restored document trims what aged while the server was down at once.
        self.next_trim = self.retention.trim_every().map(|_| Instant::now());
    }

    /// The entry holding the whole document, its spec, retention and arrivals, and the
    /// idempotency `answers` of the writes it replaces.
    pub(super) fn whole_entry(
        &self,
        answers: &[(String, u64, Option<usize>)],
    ) -> plotwire_store::Entry {
        persist::publish_entry(&self.doc, self.whole(answers))
    }

    /// What a whole-document entry keeps beside the document.
    pub(super) fn whole<'a>(&'a self, answers: &'a [(String, u64, Option<usize>)]) -> Whole<'a> {
        Whole {
            spec: self.spec.as_ref(),
            retention: self.retention,
            arrivals: self.retention.max_age_ms.map(|_| &self.arrivals),
            answers,
        }
    }

    /// The most rows source `id` keeps: the lower of its spec's `max_rows` and the
    /// document's.
    pub(super) fn max_rows(&self, id: &str) -> Option<usize> {
        let of_spec = self.spec.as_ref().and_then(|spec| {
            let name = match self.doc.model(id)?.attribute("name") {
                Some(Value::Str(n)) => n,
                _ => return None,
            };
            let max = spec.sources.get(&name)?.max_rows?;
            Some(usize::try_from(max).unwrap_or(usize::MAX))
        });
        match (of_spec, self.retention.max_rows()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The rollover a stream into source `id` asking for `rollover` gets: `max_rows`
    /// when it asks for none, and at most `max_rows`.
    pub(super) fn capped_rollover(&self, id: &str, rollover: Option<usize>) -> Option<usize> {
        match (rollover, self.max_rows(id)) {
            (Some(r), Some(max)) => Some(r.min(max)),
            (r, max) => r.or(max),
        }
    }

    /// Refuses (400 naming `max_rows`) events that would leave a source holding more
    /// rows than it keeps: its columns replaced (`ColumnDataChanged`, from a REST replace
    /// or a streamvis scatter) or its `data` set as a property. Streams are not refused:
    /// their rollover is capped ([`Owner::capped_rollover`]).
    pub(super) fn check_rows_kept(&self, events: &[DocumentEvent]) -> Result<(), HttpError> {
        for event in events {
            let (id, rows) = match event {
                DocumentEvent::ColumnDataChanged { model, data, .. } => {
                    (model, crate::limits::column_rows(data))
                }
                DocumentEvent::ModelChanged { model, attr, new } if attr == "data" => {
                    (model, data_rows(new))
                }
                _ => continue,
            };
            let Some(max) = self.max_rows(id) else {
                continue;
            };
            if rows > max {
                let name = match self.doc.model(id).and_then(|m| m.attribute("name")) {
                    Some(Value::Str(name)) => name,
                    _ => id.clone(),
                };
                return Err(HttpError::bad_request(format!(
                    "source {name:?} keeps at most {max} rows (max_rows); this write has {rows}"
                ))
                .with_field("max_rows"));
            }
        }
        Ok(())
    }

    /// After events that made `changes` were applied: their rows arrived now.
    pub(super) fn retention_observe(&mut self, changes: &[(Id, Change)]) {
        if self.retention.max_age_ms.is_some() && !changes.is_empty() {
            let merge = self.retention.merge_ms();
            self.arrivals.observe(changes, wall_ms(), &self.doc, merge);
        }
    }

    /// Trims the rows older than `max_age`, if a trim is due: one stream of no rows per
    /// source, whose rollover keeps the younger rows.
    pub(super) fn retention_tick(&mut self) {
        let (Some(due), Some(age), Some(every)) = (
            self.next_trim,
            self.retention.max_age_ms,
            self.retention.trim_every(),
        ) else {
            return;
        };
        let now = Instant::now();
        if now < due {
            return;
        }
        // While the store is failing, the trim waits for the next look.
        let refused = self.log.deleted || self.refuse_while_failed().is_err();
        if !refused {
            self.trim_expired(age, now);
        }
        // The next look: when the oldest row expires, but no sooner than `every` after
        // the last trim (and `every` from now if the store is failing).
        let wall = wall_ms();
        let until_expiry = self
            .arrivals
            .oldest()
            .map_or(age, |at| at.saturating_add(age).saturating_sub(wall));
        let mut next = now + Duration::from_millis(until_expiry);
        if let Some(t) = self.trimmed_at {
            next = next.max(t + every);
        }
        if refused {
            next = next.max(now + every);
        }
        self.next_trim = Some(next);
    }

    /// Trims the rows of every source that arrived `age` ms or longer ago.
    fn trim_expired(&mut self, age: u64, now: Instant) {
        let expired = self.arrivals.due(wall_ms(), age, &self.doc);
        if expired.is_empty() {
            return;
        }
        self.trimmed_at = Some(now);
        for (id, keep) in expired {
            let event = DocumentEvent::ColumnsStreamed {
                model: id.clone(),
                attr: "data".into(),
                data: self.empty_columns(&id),
                rollover: Some(keep),
            };
            if let Err(e) = self.apply_producer(vec![event], &id) {
                crate::warn_limited!(document = %self.id, source = %id, error = %e.message, "a max_age trim was not applied");
            }
        }
        self.flush_log(None, None);
    }

    /// Makes the relay of `shrunk` sources work in BokehJS: its `stream_to` cannot
    /// shorten a typed array (a rollover below a typed column's length leaves its length
    /// as it was), and a rollover of 0 keeps a whole list (`slice(-0)`), so a stream that
    /// left a source with binary columns, or no rows, shorter than before reaches views
    /// as the source's new data (a `ColumnDataChanged`).
    pub(super) fn relay_shrunk(&self, shrunk: &[Id], applied: &mut Applied) {
        for id in shrunk {
            let Some(cols) = self.doc.model(id).and_then(|m| m.columns.as_ref()) else {
                continue;
            };
            let typed = cols.names().filter_map(|n| cols.get(n)).any(|c| {
                matches!(
                    c.kind(),
                    plotwire_document::column::ColumnKind::Binary { .. }
                )
            });
            if !typed && self.source_rows(id) > 0 {
                continue;
            }
            let is_stream = |e: &DocumentEvent| matches!(e, DocumentEvent::ColumnsStreamed { model, .. } if model == id);
            let Some(last) = applied.relay.iter().rposition(is_stream) else {
                continue;
            };
            let data: Columns = cols
                .names()
                .filter_map(|n| cols.get(n).map(|c| (n.to_owned(), c.to_value())))
                .collect();
            applied.relay[last] = DocumentEvent::ColumnDataChanged {
                model: id.clone(),
                attr: "data".into(),
                data,
                cols: None,
            };
            // Earlier streams of the batch are in the new data too.
            applied.relay.retain(|e| !is_stream(e));
        }
    }

    /// The sources that `events` stream into with a rollover, and their rows before.
    pub(super) fn rows_before_rollover(&self, events: &[DocumentEvent]) -> Vec<(Id, usize)> {
        events
            .iter()
            .filter_map(|e| match e {
                DocumentEvent::ColumnsStreamed {
                    model,
                    rollover: Some(_),
                    ..
                } => Some((model.clone(), self.source_rows(model))),
                _ => None,
            })
            .collect()
    }
}

/// The rows of a `data` value (a map of column name to column): its longest column.
fn data_rows(data: &Value) -> usize {
    let Value::Map(entries) = data else {
        return 0;
    };
    entries
        .iter()
        .map(|(_, column)| crate::limits::column_len(column))
        .max()
        .unwrap_or(0)
}
