//! REST requests of a published document's producers. Each write becomes document
//! events, applied to the shared document in order, counted in the sequence number and
//! fanned out once to every view. A retried write (same idempotency key) gets its first
//! answer again and is not applied twice.

use std::collections::{HashMap, VecDeque};

use plotwire_protocol::event::DocumentEvent;
use plotwire_protocol::{Id, Value};

use super::delivery::{encode_events, Route, NO_CONNECTION};
use super::views::json_string;
use super::Owner;
use crate::api::{Answer, Columns, Request, RowsRead};
use crate::cursor::Rows;
use crate::error::HttpError;
use crate::retention::Arrivals;

/// Idempotency keys remembered per document.
pub const KEYS_KEPT: usize = 10_000;

/// The answers of the last [`KEYS_KEPT`] keyed writes.
#[derive(Default)]
pub struct Idempotency {
    answers: HashMap<String, (u64, Option<usize>)>,
    order: VecDeque<String>,
}

impl Idempotency {
    fn get(&self, key: &str) -> Option<(u64, Option<usize>)> {
        self.answers.get(key).copied()
    }

    /// Remembers the answer of a keyed write.
    pub fn remember(&mut self, key: String, answer: (u64, Option<usize>)) {
        if self.answers.len() >= KEYS_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
            }
        }
        self.order.push_back(key.clone());
        self.answers.insert(key, answer);
    }

    /// The remembered answers of writes up to sequence number `seq`, oldest first.
    pub fn up_to(&self, seq: u64) -> crate::persist::Answers {
        self.order
            .iter()
            .filter_map(|k| {
                let (s, rows) = self.answers.get(k)?;
                (*s <= seq).then(|| (k.clone(), *s, *rows))
            })
            .collect()
    }

    /// Forgets the answers of writes after sequence number `seq` (they were undone).
    pub fn forget_after(&mut self, seq: u64) {
        self.answers.retain(|_, (s, _)| *s <= seq);
        let answers = &self.answers;
        self.order.retain(|k| answers.contains_key(k));
    }
}

impl Owner {
    /// Serves one REST request.
    pub(super) fn rest(
        &mut self,
        request: Request,
        key: Option<String>,
    ) -> Result<Answer, HttpError> {
        let write = request.is_write();
        let key = key.filter(|_| write);
        if let Some((seq, rows)) = key.as_deref().and_then(|k| self.idempotency.get(k)) {
            return Ok(Answer::Written { seq, rows });
        }
        if write {
            self.refuse_while_failed()?;
        }
        if self.log.deleted && write {
            return Err(HttpError::not_found("the document was just deleted"));
        }
        let answer = self.serve(request);
        match &answer {
            Ok(Answer::Written { rows, .. }) => self.flush_log(key.as_deref(), *rows),
            _ => self.flush_log(None, None),
        }
        let answer = answer?;
        if let (Some(key), Answer::Written { seq, rows }) = (key, &answer) {
            self.idempotency.remember(key, (*seq, *rows));
        }
        Ok(answer)
    }

    pub(super) fn serve(&mut self, request: Request) -> Result<Answer, HttpError> {
        match request {
            Request::Stored => Ok(Answer::Written {
                seq: self.version,
                rows: None,
            }),
            Request::Delete => {
                // Refused only while a failed write is being settled: a delete is how
                // space is freed on a full disk.
                if let Some(e) = self.log_failure() {
                    return Err(e);
                }
                self.forget_in_store();
                Ok(Answer::Written {
                    seq: self.version,
                    rows: None,
                })
            }
            Request::Publish {
                doc,
                spec,
                retention,
            } => {
                self.doc = *doc;
                self.spec = spec.map(|s| *s);
                self.retention = retention;
                self.retention_start(None);
                self.changed();
                if self.log.logs() {
                    // The entry starts the log over: it keeps the idempotency answers of
                    // the writes it drops.
                    let answers = self.idempotency.up_to(self.version);
                    let entry = self.whole_entry(&answers);
                    self.stage(Some(entry));
                }
                self.cursors.reset_all(self.version);
                for v in self.views.values_mut() {
                    v.overlay.clear();
                    v.lod = crate::lod::ViewLod::default();
                }
                self.lod_replan();
                // Every view re-pulls the new document.
                self.close_all_peers();
                Ok(Answer::Written {
                    seq: self.version,
                    rows: None,
                })
            }
            Request::Stream {
                source,
                columns,
                rollover,
            } => {
                let id = self.source_id(&source)?;
                let columns = self.conform(&id, columns)?;
                let rows = crate::limits::column_rows(&columns);
                let rollover = self.capped_rollover(&id, rollover);
                let event = DocumentEvent::ColumnsStreamed {
                    model: id.clone(),
                    attr: "data".into(),
                    data: columns,
                    rollover,
                };
                self.apply_producer(vec![event], &source)?;
                self.metrics
                    .points_ingested
                    .inc_by(u64::try_from(rows).unwrap_or(u64::MAX));
                self.cursors.appended(&id, self.version, rows);
                Ok(self.written_rows(&id))
            }
            Request::Replace { source, columns } => {
                let id = self.source_id(&source)?;
                let columns = self.conform(&id, columns)?;
                let event = DocumentEvent::ColumnDataChanged {
                    model: id.clone(),
                    attr: "data".into(),
                    data: columns,
                    cols: None,
                };
                self.apply_producer(vec![event], &source)?;
                self.cursors.reset(&id, self.version);
                Ok(self.written_rows(&id))
            }
            Request::Patch { source, patches } => {
                let id = self.source_id(&source)?;
                let event = DocumentEvent::ColumnsPatched {
                    model: id.clone(),
                    attr: "data".into(),
                    patches,
                };
                self.apply_producer(vec![event], &source)?;
                self.cursors.reset(&id, self.version);
                Ok(self.written_rows(&id))
            }
            Request::Clear { source } => {
                let id = self.source_id(&source)?;
                let empty = self.empty_columns(&id);
                let event = DocumentEvent::ColumnDataChanged {
                    model: id.clone(),
                    attr: "data".into(),
                    data: empty,
                    cols: None,
                };
                self.apply_producer(vec![event], &source)?;
                self.cursors.reset(&id, self.version);
                Ok(self.written_rows(&id))
            }
            Request::Set {
                model,
                prop,
                value,
                view,
            } => self.set_property(&model, prop, value, view),
            Request::Read { source, since } => self.read(&source, since),
            Request::Streamvis(call) => self.streamvis(call),
            Request::Summary => Ok(Answer::Json(self.summary_json())),
            Request::DocJson => Ok(Answer::Json(self.doc_json())),
            Request::Snapshot => Ok(Answer::Snapshot(Box::new(crate::api::Snapshot {
                doc: self.doc.clone(),
                seq: self.version,
                placed_ranges: self.lod.as_ref().map_or_else(Vec::new, |lod| {
                    lod.plots
                        .iter()
                        .map(|p| (p.x_range.clone(), p.placement))
                        .collect()
                }),
            }))),
            Request::Subscribe { since } => Ok(Answer::Subscribed(self.events.subscribe(since))),
        }
    }

    /// Applies a producer's events to the shared document and sends them to every view.
    pub(super) fn apply_producer(
        &mut self,
        events: Vec<DocumentEvent>,
        source: &str,
    ) -> Result<(), HttpError> {
        self.check_rows_kept(&events)?;
        let entry = self.log_events(&events);
        let touched = self.lod_touched(&events);
        let changes = Arrivals::changes(&events);
        let before = self.rows_before_rollover(&events);
        let mut applied = self
            .doc
            .apply(events)
            .map_err(|e| HttpError::bad_request(e.to_string()).with_field(source.to_owned()))?;
        self.changed();
        self.stage(entry);
        self.retention_observe(&changes);
        let shrunk: Vec<Id> = before
            .into_iter()
            .filter(|(id, rows)| self.source_rows(id) < *rows)
            .map(|(id, _)| id)
            .collect();
        self.relay_shrunk(&shrunk, &mut applied);
        self.lod_applied(touched, &mut applied);
        self.fan_out(&applied, NO_CONNECTION, Route::Everyone);
        Ok(())
    }

    fn set_property(
        &mut self,
        model: &str,
        prop: String,
        value: Value,
        view: Option<String>,
    ) -> Result<Answer, HttpError> {
        let ids = self.model_ids(model)?;
        let events: Vec<DocumentEvent> = ids
            .iter()
            .map(|id| DocumentEvent::ModelChanged {
                model: id.clone(),
                attr: prop.clone(),
                new: value.clone(),
            })
            .collect();
        self.check_rows_kept(&events)?;
        match view {
            None => {
                let entry = self.log_events(&events);
                let changes = Arrivals::changes(&events);
                let applied = self
                    .doc
                    .apply(events)
                    .map_err(|e| HttpError::bad_request(e.to_string()).with_field("value"))?;
                self.changed();
                self.stage(entry);
                self.retention_observe(&changes);
                for v in self.views.values_mut() {
                    for id in &ids {
                        v.overlay.remove(&(id.clone(), prop.clone()));
                    }
                }
                self.fan_out(&applied, NO_CONNECTION, Route::Everyone);
            }
            Some(view) => {
                // Checked against a copy: the shared document does not change.
                let mut probe = self.doc.clone();
                probe
                    .apply(events.clone())
                    .map_err(|e| HttpError::bad_request(e.to_string()).with_field("value"))?;
                let Some(v) = self.views.get_mut(&view) else {
                    return Err(
                        HttpError::not_found(format!("no view {view:?} of this document"))
                            .with_field("view"),
                    );
                };
                for id in &ids {
                    v.overlay.insert((id.clone(), prop.clone()), value.clone());
                }
                let recipients: Vec<_> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.view == view)
                    .map(|(c, _)| *c)
                    .collect();
                let msg = encode_events(&plotwire_document::Applied::default(), &events);
                self.send_each(&recipients, &msg);
            }
        }
        Ok(Answer::Written {
            seq: self.version,
            rows: None,
        })
    }

    /// Checks and converts a batch against the kinds of source `id`'s columns.
    fn conform(&self, id: &str, columns: Columns) -> Result<Columns, HttpError> {
        let cols = self.doc.model(id).and_then(|m| m.columns.as_ref());
        crate::body::conform(columns, &|name| {
            cols.and_then(|c| c.get(name)).map(|c| c.kind())
        })
        .map_err(crate::rest::body_error)
    }

    /// The ids a model name (or id) stands for.
    fn model_ids(&self, model: &str) -> Result<Vec<Id>, HttpError> {
        if self.doc.model(model).is_some() {
            return Ok(vec![model.to_owned()]);
        }
        let mut ids: Vec<Id> = self.doc.find_named(model).cloned().collect();
        ids.sort();
        if ids.is_empty() {
            return Err(
                HttpError::not_found(format!("no model named {model:?} in this document"))
                    .with_field("model"),
            );
        }
        Ok(ids)
    }

    /// The id of the column data source that `source` names.
    pub(super) fn source_id(&self, source: &str) -> Result<Id, HttpError> {
        let is_source = |id: &str| self.doc.model(id).is_some_and(|m| m.columns.is_some());
        if is_source(source) {
            return Ok(source.to_owned());
        }
        let mut ids: Vec<&Id> = self
            .doc
            .find_named(source)
            .filter(|id| is_source(id))
            .collect();
        ids.sort();
        match ids.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(HttpError::not_found(format!(
                "no column data source named {source:?} in this document"
            ))
            .with_field("source")),
            _ => Err(HttpError::conflict(format!(
                "{} sources are named {source:?}; address one by its id",
                ids.len()
            ))
            .with_field("source")),
        }
    }

    pub(super) fn empty_columns(&self, id: &str) -> Columns {
        let Some(cols) = self.doc.model(id).and_then(|m| m.columns.as_ref()) else {
            return Vec::new();
        };
        cols.names()
            .map(|n| (n.to_owned(), Value::List(Vec::new())))
            .collect()
    }

    pub(super) fn written_rows(&self, id: &str) -> Answer {
        Answer::Written {
            seq: self.version,
            rows: Some(self.source_rows(id)),
        }
    }

    pub(super) fn source_rows(&self, id: &str) -> usize {
        crate::retention::source_rows(&self.doc, id)
    }

    /// `{"since","next","reset","rows","data"}`: the rows after the cursor.
    fn read(&self, source: &str, since: Option<u64>) -> Result<Answer, HttpError> {
        let id = self.source_id(source)?;
        // A cursor past this document's sequence number is from an earlier life of it
        // (before a delete and a republish): it starts over.
        let since = since.filter(|s| *s <= self.version);
        let len = self.source_rows(&id);
        let rows = self.cursors.rows_since(&id, since, len);
        let (reset, first) = match rows {
            Rows::All => (true, 0),
            Rows::Last(n) => (false, len - n),
        };
        let data = match self.doc.model(&id).and_then(|m| m.columns.as_ref()) {
            Some(cols) => {
                let columns: Vec<(&str, &plotwire_document::column::Column)> = cols
                    .names()
                    .filter_map(|n| cols.get(n).map(|c| (n, c)))
                    .collect();
                let mut json = Vec::new();
                crate::body::encode_columns_json(&mut json, &columns, first..len);
                String::from_utf8_lossy(&json).into_owned()
            }
            None => "{}".to_owned(),
        };
        Ok(Answer::Rows(RowsRead {
            since,
            next: self.version,
            reset,
            rows: len - first,
            data,
        }))
    }

    fn summary_json(&self) -> String {
        let mut sources: Vec<(String, String)> = self
            .doc
            .models()
            .filter_map(|(id, m)| {
                let cols = m.columns.as_ref()?;
                let name = match m.attribute("name") {
                    Some(Value::Str(n)) => n,
                    _ => id.clone(),
                };
                let kinds: Vec<String> = cols
                    .names()
                    .filter_map(|n| {
                        cols.get(n)
                            .map(|c| format!("{}:{}", json_string(n), json_string(c.kind_name())))
                    })
                    .collect();
                Some((
                    name.clone(),
                    format!(
                        "{}:{{\"id\":{},\"columns\":{{{}}},\"rows\":{}}}",
                        json_string(&name),
                        json_string(id),
                        kinds.join(","),
                        self.source_rows(id)
                    ),
                ))
            })
            .collect();
        sources.sort();
        let sources: Vec<String> = sources.into_iter().map(|(_, s)| s).collect();
        let retention = self
            .retention
            .summary_json()
            .map_or_else(String::new, |r| format!(",\"retention\":{r}"));
        format!(
            "{{\"name\":{},\"title\":{},\"views\":{},\"seq\":{},\"events\":{},\"sources\":{{{}}}{retention}}}",
            json_string(&self.id),
            json_string(self.doc.title()),
            self.views.len(),
            self.version,
            self.events.last_seq(),
            sources.join(",")
        )
    }

    fn doc_json(&self) -> String {
        let mut snapshot = self.doc.clone();
        snapshot.compact_columns();
        let lookup = plotwire_document::AllModels(&snapshot);
        let mut enc = plotwire_protocol::codec::Encoder::new(&lookup);
        enc.inline_bytes(super::pull::gzip_base64);
        snapshot.encode_doc_json(&mut enc);
        let (content, _) = enc.finish();
        String::from_utf8_lossy(&content).into_owned()
    }
}
