//! What a published document's log holds, and the document rebuilt from it. The owner
//! logs its inputs as applied (the events a producer's write became, not the relays
//! sent to views, which can be far bigger), so replaying the log from its last
//! `publish` entry through [`plotwire_document::Document::apply`] gives back the exact
//! state: the same column kinds, chunks and removed models as the live document had.

use bytes::Bytes;
use plotwire_document::{AllModels, Document};
use plotwire_protocol::codec::{buffer_map, Encoder, NoExpansion};
use plotwire_protocol::event::{decode_doc_message, decode_patch, encode_patch, DocumentEvent};
use plotwire_store::{Entry, EntryKind, Record};

use crate::retention::{Arrivals, Retention};

/// Logged idempotency keys and their answers: key, sequence number, rows.
pub type Answers = Vec<(String, u64, Option<usize>)>;

/// A document rebuilt from its log.
pub struct Restored {
    /// The document as it stood after the last entry.
    pub doc: Document,
    /// The dashboard spec it was last given, if any.
    pub spec: Option<plotwire_spec::Spec>,
    /// The sequence number of the last entry.
    pub version: u64,
    /// The idempotency keys of logged writes and their answers (sequence number, rows).
    pub answers: Answers,
    /// The retention it was published with.
    pub retention: Retention,
    /// The arrival times of its rows, when it has a `max_age`.
    pub arrivals: Arrivals,
}

/// Why a log could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The log is empty or does not start with a whole document.
    #[error("its log does not start with a published document")]
    NoPublish,
    /// An entry could not be decoded or applied.
    #[error("entry {seq} cannot be replayed: {message}")]
    Entry {
        /// The entry's sequence number.
        seq: u64,
        /// What went wrong.
        message: String,
    },
}

/// What a whole-document entry keeps beside the document: its spec, retention, the
/// arrival times of its rows (with a `max_age`) and the idempotency answers of the
/// writes it replaces.
#[derive(Default, Clone, Copy)]
pub struct Whole<'a> {
    /// The dashboard spec, if the document was built from one.
    pub spec: Option<&'a plotwire_spec::Spec>,
    /// The retention it was published with.
    pub retention: Retention,
    /// The arrival times of its rows.
    pub arrivals: Option<&'a Arrivals>,
    /// The idempotency answers of the writes a snapshot replaces.
    pub answers: &'a [(String, u64, Option<usize>)],
}

/// The entry that starts a log (a publish, or a snapshot of the live document): the
/// whole document, its binary columns as buffers, with what [`Whole`] says and the ids
/// of the models it once held in `meta`.
pub fn publish_entry(doc: &Document, whole: Whole<'_>) -> Entry {
    let mut snapshot = doc.clone();
    snapshot.compact_columns();
    let lookup = AllModels(&snapshot);
    let mut enc = Encoder::new(&lookup);
    enc.raw("{\"doc\":");
    snapshot.encode_doc_json(&mut enc);
    enc.raw("}");
    let element_sizes = enc.element_sizes().to_vec();
    let (content, buffers) = enc.finish();
    let removed = snapshot.removed_ids();
    let kinds = snapshot.empty_list_kinds();
    let meta = MetaParts {
        spec: whole.spec,
        removed: &removed,
        kinds: &kinds,
        answers: whole.answers,
        retention: whole.retention,
        arrivals: whole.arrivals,
        at: whole.arrivals.map(|_| crate::retention::wall_ms()),
    };
    Entry {
        kind: EntryKind::Publish,
        content,
        buffers,
        element_sizes,
        key: None,
        rows: None,
        meta: meta.json(),
    }
}

/// An entry holding `events`, as the owner is about to apply them.
pub fn events_entry(events: &[DocumentEvent]) -> Entry {
    let mut enc = Encoder::new(&NoExpansion);
    encode_patch(&mut enc, events);
    let element_sizes = enc.element_sizes().to_vec();
    let (content, buffers) = enc.finish();
    Entry {
        kind: EntryKind::Events,
        content,
        buffers,
        element_sizes,
        key: None,
        rows: None,
        meta: None,
    }
}

/// What an entry keeps beside its content: `{"spec": ..., "removed": [...], ...}`, each
/// field only when there is something to keep.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spec: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    removed: Vec<String>,
    /// For a whole document, the kinds of its empty list columns, which its DocJson
    /// (`[]`) cannot carry: `(source id, column, kind name)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    kinds: Vec<(String, String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    answers: Answers,
    #[serde(default, skip_serializing_if = "Retention::is_none")]
    retention: Retention,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arrivals: Option<Arrivals>,
    /// The wall time the entry was applied at (ms since the Unix epoch), for documents
    /// with a `max_age`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<u64>,
}

/// The parts of an entry's `meta`.
#[derive(Default, Clone, Copy)]
pub struct MetaParts<'a> {
    /// The spec the entry sets.
    pub spec: Option<&'a plotwire_spec::Spec>,
    /// For a whole document, the ids of the models it once held.
    pub removed: &'a [String],
    /// For a whole document, the kinds of its empty list columns.
    pub kinds: &'a [(String, String, String)],
    /// For a whole document, the idempotency answers of the entries it replaces.
    pub answers: &'a [(String, u64, Option<usize>)],
    /// For a whole document, its retention.
    pub retention: Retention,
    /// For a whole document with a `max_age`, the arrival times of its rows.
    pub arrivals: Option<&'a Arrivals>,
    /// The wall time the entry was applied at, for a document with a `max_age`.
    pub at: Option<u64>,
}

impl MetaParts<'_> {
    /// The `meta` bytes, or `None` when there is nothing to keep.
    pub fn json(&self) -> Option<Bytes> {
        let meta = Meta {
            spec: self.spec.and_then(|s| serde_json::to_value(s).ok()),
            removed: self.removed.to_vec(),
            kinds: self.kinds.to_vec(),
            answers: self.answers.to_vec(),
            retention: self.retention,
            arrivals: self.arrivals.cloned(),
            at: self.at,
        };
        if meta.spec.is_none()
            && meta.removed.is_empty()
            && meta.kinds.is_empty()
            && meta.answers.is_empty()
            && meta.retention.is_none()
            && meta.arrivals.is_none()
            && meta.at.is_none()
        {
            return None;
        }
        serde_json::to_vec(&meta).ok().map(Bytes::from)
    }
}

/// Rebuilds a document from its log, as read from the store.
pub fn restore(
    records: &[Record],
    max_models: usize,
    max_decoded_bytes: usize,
) -> Result<Restored, RestoreError> {
    // A log starts at its last whole document (a publish or a snapshot).
    let start = records
        .iter()
        .rposition(|r| r.entry.kind == EntryKind::Publish)
        .ok_or(RestoreError::NoPublish)?;
    let (first, rest) = records[start..]
        .split_first()
        .ok_or(RestoreError::NoPublish)?;
    let bad = |seq: u64, message: String| RestoreError::Entry { seq, message };
    let buffers =
        |entry: &Entry| buffer_map(entry.buffers.clone()).with_inflate_limit(max_decoded_bytes);
    let doc_json = decode_doc_message(&first.entry.content, &buffers(&first.entry))
        .map_err(|e| bad(first.seq, e.to_string()))?;
    let mut doc = crate::published::published_document(doc_json, max_models)
        .map_err(|e| bad(first.seq, e.message))?;
    let mut spec = None;
    let mut answers = Vec::new();
    let mut retention = Retention::default();
    let mut arrivals = Arrivals::default();
    // Rows of entries that carry no wall time arrive at the restart.
    let now = crate::retention::wall_ms();
    for record in &records[start..] {
        let entry = &record.entry;
        let meta: Meta = match &entry.meta {
            Some(m) => {
                serde_json::from_slice(m).map_err(|e| bad(record.seq, format!("bad meta: {e}")))?
            }
            None => Meta::default(),
        };
        let at = meta.at.unwrap_or(now);
        if record.seq == first.seq {
            doc.set_empty_list_kinds(&meta.kinds)
                .map_err(|e| bad(record.seq, format!("bad column kinds: {e}")))?;
            retention = meta.retention;
            if retention.max_age_ms.is_some() {
                arrivals = meta.arrivals.unwrap_or_else(|| Arrivals::fresh(&doc, at));
            }
        } else {
            let events = decode_patch(&entry.content, &buffers(entry))
                .map_err(|e| bad(record.seq, e.to_string()))?;
            let changes = match retention.max_age_ms {
                Some(_) => Arrivals::changes(&events),
                None => Vec::new(),
            };
            doc.apply(events)
                .map_err(|e| bad(record.seq, e.to_string()))?;
            arrivals.observe(&changes, at, &doc, retention.merge_ms());
        }
        if let Some(s) = meta.spec {
            let text = serde_json::to_vec(&s).unwrap_or_default();
            spec = Some(plotwire_spec::parse(&text).map_err(|e| bad(record.seq, e.to_string()))?);
        }
        doc.mark_removed(meta.removed);
        answers.extend(meta.answers);
        if let Some(key) = &entry.key {
            let rows = entry.rows.and_then(|r| usize::try_from(r).ok());
            answers.push((key.clone(), record.seq, rows));
        }
    }
    let version = rest.last().map_or(first.seq, |r| r.seq);
    Ok(Restored {
        doc,
        spec,
        version,
        answers,
        retention,
        arrivals,
    })
}

/// A store error as the HTTP error a writer gets: 507 for a full store, 503 otherwise.
pub fn store_http_error(e: &plotwire_store::StoreError) -> crate::error::HttpError {
    let status = match e {
        plotwire_store::StoreError::Full(_) => axum::http::StatusCode::INSUFFICIENT_STORAGE,
        _ => axum::http::StatusCode::SERVICE_UNAVAILABLE,
    };
    crate::error::HttpError::new(
        status,
        format!("the write was not stored, so it was not applied: {e}"),
    )
}

/// The store the owners of published documents log to.
#[derive(Clone)]
pub struct StoreHandle {
    /// The engine.
    pub store: std::sync::Arc<dyn plotwire_store::Store>,
    /// Most bytes inline `bytes` values of a replayed entry may inflate to.
    pub max_decoded_bytes: usize,
    /// The fewest bytes of entries logged since a document's last whole copy before a
    /// snapshot replaces them (also at least twice that copy's size).
    pub snapshot_bytes: usize,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle").finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use plotwire_protocol::value::{ArrayData, ArrayForm, ArrayValue, DType};
    use plotwire_protocol::Value;

    fn doc_text(doc: &Document) -> String {
        let entry = publish_entry(doc, Whole::default());
        let mut text = String::from_utf8_lossy(&entry.content).into_owned();
        for (id, b) in &entry.buffers {
            text.push_str(&format!("|{id}:{b:?}"));
        }
        text
    }

    fn kinds(doc: &Document) -> Vec<(String, String, &'static str, usize)> {
        let mut out = Vec::new();
        for (id, m) in doc.models() {
            if let Some(cols) = &m.columns {
                for name in cols.names() {
                    let c = cols.get(name).unwrap();
                    out.push((id.clone(), name.to_owned(), c.kind_name(), c.len()));
                }
            }
        }
        out.sort();
        out
    }

    /// A published document built from `spec`, and the id of its one source.
    fn spec_document(spec: &[u8]) -> (plotwire_spec::Spec, Document, String) {
        let spec = plotwire_spec::parse(spec).unwrap();
        let doc_json = crate::published::spec_doc_json(&spec).unwrap();
        let doc = crate::published::published_document(doc_json, 1000).unwrap();
        let source = doc
            .models()
            .find(|(_, m)| m.columns.is_some())
            .map(|(id, _)| id.clone())
            .unwrap();
        (spec, doc, source)
    }

    fn floats(values: &[f64]) -> Value {
        Value::Array(Box::new(ArrayValue {
            form: ArrayForm::Nd,
            dtype: DType::F64,
            shape: vec![values.len()],
            data: ArrayData::Binary(
                values
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>()
                    .into(),
            ),
        }))
    }

    /// Replaying the log gives the live document back exactly: its content, its column
    /// kinds and lengths, its spec, sequence number and idempotency answers.
    #[test]
    fn a_replayed_log_is_the_live_document() {
        let (spec, mut live, source) = spec_document(
            br#"{"sources": {"s": {"columns": {"step": "int32", "loss": "float64", "tag": "string"}}},
                 "plots": {"p": {"kind": "line", "source": "s", "x": "step", "y": "loss"}},
                 "layout": {"grid": {"p": [0, 0, 1, 1]}}}"#,
        );
        let mut records = vec![Record {
            seq: 0,
            entry: publish_entry(
                &live,
                Whole {
                    spec: Some(&spec),
                    ..Whole::default()
                },
            ),
        }];
        let batches: Vec<Vec<DocumentEvent>> = (0..5)
            .map(|i| {
                vec![DocumentEvent::ColumnsStreamed {
                    model: source.clone(),
                    attr: "data".into(),
                    data: vec![
                        (
                            "step".into(),
                            Value::List((0..10).map(|k| Value::Int(i * 10 + k)).collect()),
                        ),
                        (
                            "loss".into(),
                            floats(
                                &(0..10)
                                    .map(|k| 1.0 / f64::from((i * 10 + k + 1) as i32))
                                    .collect::<Vec<_>>(),
                            ),
                        ),
                        (
                            "tag".into(),
                            Value::List((0..10).map(|k| Value::Str(format!("t{k}"))).collect()),
                        ),
                    ],
                    rollover: Some(35),
                }]
            })
            .chain(std::iter::once(vec![DocumentEvent::ColumnsPatched {
                model: source.clone(),
                attr: "data".into(),
                patches: vec![("loss".into(), vec![(Value::Int(3), Value::Float(-1.5))])],
            }]))
            .collect();
        for (i, events) in batches.into_iter().enumerate() {
            let mut entry = events_entry(&events);
            entry.key = Some(format!("k{i}"));
            entry.rows = Some(i as u64);
            live.apply(events).unwrap();
            records.push(Record {
                seq: i as u64 + 1,
                entry,
            });
        }
        let restored = restore(&records, 1000, 1 << 20).unwrap();
        assert_eq!(restored.version, 6);
        assert_eq!(restored.spec.as_ref(), Some(&spec));
        assert_eq!(restored.answers.len(), 6);
        assert_eq!(restored.answers[5], ("k5".to_owned(), 6, Some(5)));
        assert_eq!(kinds(&restored.doc), kinds(&live));
        assert!(
            kinds(&live).iter().all(|(_, _, _, len)| *len == 35),
            "{:?}",
            kinds(&live)
        );
        assert_eq!(doc_text(&restored.doc), doc_text(&live));
    }

    /// A list column emptied by a trim keeps its kind live, and a snapshot (a DocJson,
    /// where it is `[]`) keeps it too: the restored document refuses and takes the same
    /// streams as the live one.
    #[test]
    fn a_snapshot_keeps_the_kinds_of_emptied_list_columns() {
        let doc_json = decode_doc_message(
            br#"{"doc": {"title": "t", "roots": [{"type": "object", "name": "ColumnDataSource",
                 "id": "s", "attributes": {"data": {"type": "map", "entries":
                 [["tag", ["a", "b"]], ["n", [1, 2]], ["on", [true, false]], ["v", [0.5, 1.5]]]}}}]}}"#,
            &buffer_map(Vec::new()),
        )
        .unwrap();
        let mut live = crate::published::published_document(doc_json, 1000).unwrap();
        let columns = ["n", "on", "tag", "v"];
        let stream = |value: Option<Value>, rollover: Option<usize>| {
            vec![DocumentEvent::ColumnsStreamed {
                model: "s".into(),
                attr: "data".into(),
                data: columns
                    .iter()
                    .map(|c| {
                        (
                            (*c).to_owned(),
                            Value::List(value.iter().cloned().collect()),
                        )
                    })
                    .collect(),
                rollover,
            }]
        };
        // A trim to no rows (what a max_age does once every row is old).
        live.apply(stream(None, Some(0))).unwrap();
        let records = vec![Record {
            seq: 7,
            entry: publish_entry(&live, Whole::default()),
        }];
        let mut restored = restore(&records, 1000, 1 << 20).unwrap().doc;
        assert_eq!(
            kinds(&live),
            [
                ("s".to_owned(), "n".to_owned(), "int64", 0),
                ("s".to_owned(), "on".to_owned(), "bool", 0),
                ("s".to_owned(), "tag".to_owned(), "string", 0),
                ("s".to_owned(), "v".to_owned(), "float64", 0),
            ]
        );
        assert_eq!(kinds(&restored), kinds(&live));
        // A string into every column (the bool, int and float ones refuse it): refused
        // by both, and the same number then taken by both.
        let text = stream(Some(Value::Str("x".into())), None);
        assert!(live.apply(text.clone()).is_err());
        assert!(restored.apply(text).is_err());
        assert!(live.apply(stream(Some(Value::Int(3)), None)).is_err());
        assert!(restored.apply(stream(Some(Value::Int(3)), None)).is_err());
        assert_eq!(doc_text(&restored), doc_text(&live));
    }

    /// With a `max_age`, replayed rows keep the wall time their entry logged: the
    /// arrivals rebuilt from the log are the ones the live owner had.
    #[test]
    fn replayed_rows_keep_their_logged_arrival_times() {
        let (spec, mut live, source) = spec_document(
            br#"{"sources": {"s": {"columns": {"v": "float64"}}},
                 "plots": {"p": {"kind": "line", "source": "s", "x": "v", "y": "v"}},
                 "layout": {"grid": {"p": [0, 0, 1, 1]}}}"#,
        );
        let retention = Retention {
            max_rows: None,
            max_age_ms: Some(10_000),
        };
        let mut arrivals = Arrivals::fresh(&live, 1_000);
        let mut records = vec![Record {
            seq: 0,
            entry: publish_entry(
                &live,
                Whole {
                    spec: Some(&spec),
                    retention,
                    arrivals: Some(&arrivals),
                    answers: &[],
                },
            ),
        }];
        for (i, at) in [(1u64, 2_000u64), (2, 7_000)] {
            let events = vec![DocumentEvent::ColumnsStreamed {
                model: source.clone(),
                attr: "data".into(),
                data: vec![("v".into(), floats(&[1.0, 2.0, 3.0]))],
                rollover: None,
            }];
            let mut entry = events_entry(&events);
            entry.meta = MetaParts {
                at: Some(at),
                ..MetaParts::default()
            }
            .json();
            let changes = Arrivals::changes(&events);
            live.apply(events).unwrap();
            arrivals.observe(&changes, at, &live, retention.merge_ms());
            records.push(Record { seq: i, entry });
        }
        let mut restored = restore(&records, 1000, 1 << 20).unwrap();
        assert_eq!(restored.retention, retention);
        assert_eq!(restored.arrivals, arrivals);
        assert_eq!(restored.arrivals.oldest(), Some(2_000));
        // At 12 s the first batch (2 s) has aged out, the second (7 s) has not.
        assert_eq!(
            restored.arrivals.due(12_000, 10_000, &restored.doc),
            vec![(source, 3)]
        );
    }

    #[test]
    fn a_log_that_does_not_start_with_a_publish_is_refused() {
        let records = vec![Record {
            seq: 1,
            entry: events_entry(&[]),
        }];
        assert!(matches!(
            restore(&records, 10, 1 << 20),
            Err(RestoreError::NoPublish)
        ));
        assert!(matches!(
            restore(&[], 10, 1 << 20),
            Err(RestoreError::NoPublish)
        ));
    }

    /// The store delta-encodes a buffer only when told its element width: a float64
    /// column's buffer is logged with 8, whether streamed or in a whole document.
    #[test]
    fn logged_buffers_carry_their_element_width() {
        let events = vec![DocumentEvent::ColumnsStreamed {
            model: "s".into(),
            attr: "data".into(),
            data: vec![("t".into(), floats(&[1.0, 2.0, 3.0]))],
            rollover: None,
        }];
        let entry = events_entry(&events);
        assert_eq!(entry.buffers.len(), 1);
        assert_eq!(entry.element_sizes, [8]);

        let (spec, mut doc, source) = spec_document(
            br#"{"sources": {"s": {"columns": {"t": "float64"}}},
                 "plots": {"p": {"kind": "line", "source": "s", "x": "t", "y": "t"}},
                 "layout": {"grid": {"p": [0, 0, 1, 1]}}}"#,
        );
        doc.apply(vec![DocumentEvent::ColumnsStreamed {
            model: source,
            attr: "data".into(),
            data: vec![("t".into(), floats(&[1.0, 2.0, 3.0]))],
            rollover: None,
        }])
        .unwrap();
        let whole = publish_entry(
            &doc,
            Whole {
                spec: Some(&spec),
                ..Whole::default()
            },
        );
        assert!(!whole.buffers.is_empty());
        assert_eq!(whole.element_sizes, vec![8; whole.buffers.len()]);
    }
}
