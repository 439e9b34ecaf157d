//! The owner's side of the log: what it applied to a published document goes to the
//! store, and a write is answered only once the store has it. The owner never waits
//! for the disk: it applies, fans out and goes on, and the answers wait in
//! [`Durable::waiting`] until their entries are stored (many writes share one commit).
//!
//! If the store fails a write, that answer and every later one becomes an error, the
//! store takes no more entries for the document, and once the writes in flight have
//! settled the owner rebuilds the document from what was stored: what was never
//! stored is undone, so nothing unacknowledged stays visible, and views re-pull.
//!
//! Once the entries logged since the last whole document outgrow
//! [`StoreHandle::snapshot_bytes`] and twice that document's size, a snapshot of the live
//! document is encoded off the owner and replaces them in the store: a stream's rollover
//! bounds what is stored, and a restart replays little.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;

use plotwire_store::{Appended, Entry, StoreError};
use tokio::sync::{mpsc, oneshot};

use super::Owner;
use crate::api::Answer;
use crate::error::HttpError;
use crate::persist::{self, StoreHandle};

/// A snapshot encoded off the owner.
pub struct Snapshot {
    seq: u64,
    epoch: u64,
    counted: usize,
    entry: Option<Entry>,
}

/// A REST reply and the answer it gets once its entry is stored.
type Waiting = (
    u64,
    oneshot::Sender<Result<Answer, HttpError>>,
    Result<Answer, HttpError>,
);

/// The state of a published document's log.
pub struct Durable {
    /// The store, for published documents (none for Bokeh sessions or without a data
    /// dir).
    pub store: Option<StoreHandle>,
    /// Entries of the request being served, with their sequence numbers.
    staged: Vec<(u64, Entry)>,
    /// Whether the request being served changed the spec.
    pub spec_changed: bool,
    /// Appends handed to the store, for the run loop to wait on.
    pub appends: Vec<(u64, Appended)>,
    /// Appends not yet settled.
    in_flight: usize,
    /// The last sequence number the store has (none before the first entry is).
    stored: Option<u64>,
    /// Replies waiting for their entries.
    waiting: VecDeque<Waiting>,
    /// The error of a failed write, until the document is rebuilt from the store.
    failed: Option<StoreError>,
    /// Bytes of the entries logged since the last whole document.
    since_snapshot: usize,
    /// Bytes of the last whole document logged.
    snapshot_bytes: usize,
    /// Whether a snapshot is being encoded.
    snapshotting: bool,
    /// Bumped by every publish and rebuild: a snapshot of an older epoch is dropped.
    epoch: u64,
    /// Where finished snapshot encodes go (the run loop's receiver).
    snapshot_tx: mpsc::UnboundedSender<Snapshot>,
    /// Set by a delete: the document takes no more writes.
    pub deleted: bool,
    /// After a rebuild, writes are refused with the store's error until this instant,
    /// so that a producer retrying against a full disk does not cost a rebuild each time.
    cooldown: Option<(StoreError, std::time::Instant)>,
    /// The next cooldown: 1 s, doubling up to 30 s while writes keep failing.
    next_cooldown: std::time::Duration,
}

/// Entries handed to the store and not yet settled, past which writes are refused
/// with 503 until the disk catches up: memory stays bounded when ingest outruns it.
pub const MAX_IN_FLIGHT: usize = 1024;

/// The first cooldown after a failed write, and the longest.
const COOLDOWN: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(30),
);

impl Durable {
    /// The log state of a document whose entries up to `stored` are in the store.
    pub fn new(
        store: Option<StoreHandle>,
        stored: Option<u64>,
        snapshot_tx: mpsc::UnboundedSender<Snapshot>,
    ) -> Durable {
        Durable {
            store,
            staged: Vec::new(),
            spec_changed: false,
            appends: Vec::new(),
            in_flight: 0,
            stored,
            waiting: VecDeque::new(),
            failed: None,
            since_snapshot: 0,
            snapshot_bytes: 0,
            snapshotting: false,
            epoch: 0,
            snapshot_tx,
            deleted: false,
            cooldown: None,
            next_cooldown: COOLDOWN.0,
        }
    }

    /// Whether entries are kept.
    pub fn logs(&self) -> bool {
        self.store.is_some()
    }
}

use crate::persist::store_http_error as store_error;

impl Owner {
    /// Keeps `entry` (made before the change was applied) as the change just counted.
    pub(super) fn stage(&mut self, entry: Option<Entry>) {
        if let Some(entry) = entry {
            self.log.staged.push((self.version, entry));
        }
    }

    /// The entry for `events`, if the document is logged.
    pub(super) fn log_events(
        &self,
        events: &[plotwire_protocol::event::DocumentEvent],
    ) -> Option<Entry> {
        self.log.logs().then(|| persist::events_entry(events))
    }

    /// Refuses a write while the store is failing, while the document cannot be
    /// rebuilt, and for a cooldown after a rebuild.
    pub(super) fn refuse_while_failed(&mut self) -> Result<(), HttpError> {
        if let Some((e, until)) = &self.log.cooldown {
            if std::time::Instant::now() < *until {
                return Err(store_error(e));
            }
        }
        if self.log.failed.is_some() && self.log.in_flight == 0 {
            self.rebuild_from_store();
        }
        if let Some(e) = &self.log.failed {
            return Err(store_error(e));
        }
        if self.log.in_flight >= MAX_IN_FLIGHT {
            return Err(HttpError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("the store is {MAX_IN_FLIGHT} writes behind; retry in a moment"),
            ));
        }
        Ok(())
    }

    /// The store's error while a failed write is being settled.
    pub(super) fn log_failure(&self) -> Option<HttpError> {
        self.log.failed.as_ref().map(store_error)
    }

    /// Hands the request's entries to the store; the last one carries the idempotency
    /// key and the rows answered, and the spec if the request changed it.
    pub(super) fn flush_log(&mut self, key: Option<&str>, rows: Option<usize>) {
        let Some(handle) = self.log.store.clone() else {
            self.log.staged.clear();
            return;
        };
        if self.log.spec_changed && self.log.staged.is_empty() {
            self.changed();
            self.stage(Some(persist::events_entry(&[])));
        }
        let count = self.log.staged.len();
        let staged: Vec<(u64, Entry)> = self.log.staged.drain(..).collect();
        // With a max_age, an entry keeps its wall time: replayed rows keep their age.
        let at = self
            .retention
            .max_age_ms
            .map(|_| crate::retention::wall_ms());
        for (i, (seq, mut entry)) in staged.into_iter().enumerate() {
            let last = i + 1 == count;
            if last {
                entry.key = key.map(str::to_owned);
                entry.rows = rows.map(|r| r as u64);
            }
            let spec = (last && self.log.spec_changed)
                .then_some(self.spec.as_ref())
                .flatten();
            if entry.kind == plotwire_store::EntryKind::Events && (spec.is_some() || at.is_some()) {
                let meta = persist::MetaParts {
                    spec,
                    at,
                    ..persist::MetaParts::default()
                };
                entry.meta = meta.json();
            }
            let size = entry_bytes(&entry);
            if entry.kind == plotwire_store::EntryKind::Publish {
                self.log.since_snapshot = 0;
                self.log.snapshot_bytes = size;
                self.log.epoch += 1;
            } else {
                self.log.since_snapshot += size;
            }
            self.log.in_flight += 1;
            self.log
                .appends
                .push((seq, handle.store.append(&self.id, seq, entry)));
        }
        self.log.spec_changed = false;
        self.maybe_snapshot();
    }

    /// Starts a snapshot encode, off the owner, if the log has grown enough since the
    /// last whole document.
    fn maybe_snapshot(&mut self) {
        let Some(min) = self.log.store.as_ref().map(|h| h.snapshot_bytes) else {
            return;
        };
        let due = min.max(self.log.snapshot_bytes.saturating_mul(2));
        if self.log.snapshotting || self.log.failed.is_some() || self.log.since_snapshot < due {
            return;
        }
        self.log.snapshotting = true;
        let doc = self.doc.clone();
        let spec = self.spec.clone();
        let retention = self.retention;
        let arrivals = retention.max_age_ms.map(|_| self.arrivals.clone());
        let answers = self.idempotency.up_to(self.version);
        let (seq, epoch, counted) = (self.version, self.log.epoch, self.log.since_snapshot);
        let tx = self.log.snapshot_tx.clone();
        let id = self.id.clone();
        tokio::task::spawn_blocking(move || {
            let entry = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let whole = persist::Whole {
                    spec: spec.as_ref(),
                    retention,
                    arrivals: arrivals.as_ref(),
                    answers: &answers,
                };
                persist::publish_entry(&doc, whole)
            }));
            if entry.is_err() {
                tracing::error!(document = %id, "a snapshot encode panicked; the log is kept as it is");
            }
            let _ = tx.send(Snapshot {
                seq,
                epoch,
                counted,
                entry: entry.ok(),
            });
        });
    }

    /// A snapshot encode finished: it replaces the entries up to its sequence number,
    /// unless the document was published or rebuilt since.
    pub(super) fn snapshot_done(&mut self, snapshot: Snapshot) {
        self.log.snapshotting = false;
        let Some(handle) = self.log.store.clone() else {
            return;
        };
        let Some(entry) = snapshot.entry else {
            return;
        };
        if snapshot.epoch != self.log.epoch || self.log.failed.is_some() {
            return;
        }
        self.log.since_snapshot = self.log.since_snapshot.saturating_sub(snapshot.counted);
        self.log.snapshot_bytes = entry_bytes(&entry);
        tracing::debug!(document = %self.id, seq = snapshot.seq, bytes = self.log.snapshot_bytes, "snapshot taken");
        self.log.in_flight += 1;
        self.log.appends.push((
            snapshot.seq,
            handle.store.snapshot(&self.id, snapshot.seq, entry),
        ));
    }

    /// Deletes the document's log, after every entry it handed the store, and takes no
    /// more writes (a write racing the delete cannot leave an entry behind it).
    pub(super) fn forget_in_store(&mut self) {
        self.log.deleted = true;
        self.log.epoch += 1;
        // A sequence number of its own, so that the answer waits for the delete itself
        // and not only for the entries before it.
        self.changed();
        if let Some(handle) = self.log.store.clone() {
            self.log.in_flight += 1;
            self.log
                .appends
                .push((self.version, handle.store.delete(&self.id)));
        }
    }

    /// Sends `answer` now, or once its entry is stored; while a failed write is being
    /// settled, the store's error at once.
    pub(super) fn reply_when_stored(
        &mut self,
        reply: oneshot::Sender<Result<Answer, HttpError>>,
        answer: Result<Answer, HttpError>,
    ) {
        if let (Some(e), Ok(Answer::Written { .. })) = (&self.log.failed, &answer) {
            let _ = reply.send(Err(store_error(e)));
            return;
        }
        match &answer {
            Ok(Answer::Written { seq, .. })
                if self.log.logs() && self.log.stored.is_none_or(|s| s < *seq) =>
            {
                if self.log.in_flight > 0 {
                    self.log.waiting.push_back((*seq, reply, answer));
                    return;
                }
                // Nothing in flight can store it any more: its write failed.
                let failed = self.log.cooldown.as_ref().map(|(e, _)| store_error(e));
                let _ = reply.send(Err(failed.unwrap_or_else(|| {
                    store_error(&StoreError::Io("the write was not stored".into()))
                })));
            }
            _ => {
                let _ = reply.send(answer);
            }
        }
    }

    /// The store settled the append of entry `seq`.
    pub(super) fn stored(&mut self, seq: u64, result: Result<(), StoreError>) {
        self.log.in_flight = self.log.in_flight.saturating_sub(1);
        match result {
            Ok(()) if self.log.failed.is_none() => {
                self.log.stored = Some(self.log.stored.map_or(seq, |s| s.max(seq)));
                self.log.cooldown = None;
                self.log.next_cooldown = COOLDOWN.0;
                self.release_stored();
            }
            Ok(()) => {}
            Err(e) => {
                if self.log.failed.is_none() {
                    tracing::error!(document = %self.id, seq, error = %e, "a write was not stored: refusing writes, then rebuilding the document from the store");
                    self.log.failed = Some(e);
                }
                if let Some(e) = &self.log.failed {
                    for (_, reply, _) in self.log.waiting.drain(..) {
                        let _ = reply.send(Err(store_error(e)));
                    }
                }
            }
        }
        if self.log.failed.is_some() && self.log.in_flight == 0 {
            self.rebuild_from_store();
        }
    }

    /// Sends the waiting answers whose entries are stored.
    fn release_stored(&mut self) {
        let stored = self.log.stored;
        let waiting = std::mem::take(&mut self.log.waiting);
        for (s, reply, answer) in waiting {
            if stored.is_some_and(|st| st >= s) {
                let _ = reply.send(answer);
            } else {
                self.log.waiting.push_back((s, reply, answer));
            }
        }
    }

    /// Puts the document back to what the store holds, after a failed write.
    fn rebuild_from_store(&mut self) {
        let Some(handle) = self.log.store.clone() else {
            return;
        };
        let records = handle.store.read_from(&self.id, 0);
        if self.log.deleted || records.as_ref().is_ok_and(Vec::is_empty) {
            // Nothing is stored (a new document whose first write failed, which its
            // creator unpublishes; or a deleted one): nothing to rebuild, and no hole to
            // guard against.
            drop(handle.store.recover(&self.id));
            if let Some(e) = self.log.failed.take() {
                let until = std::time::Instant::now() + self.log.next_cooldown;
                self.log.cooldown = Some((e, until));
            }
            return;
        }
        let restored = records.map_err(|e| e.to_string()).and_then(|records| {
            persist::restore(&records, self.doc.max_models(), handle.max_decoded_bytes)
                .map_err(|e| e.to_string())
        });
        match restored {
            Ok(r) => {
                let mut doc = r.doc;
                doc.set_max_models(self.doc.max_models());
                self.doc = doc;
                self.spec = r.spec;
                self.retention = r.retention;
                self.retention_start(Some(r.arrivals));
                self.idempotency.forget_after(r.version);
                if let Some(e) = self.log.failed.take() {
                    let wait = self.log.next_cooldown;
                    self.log.cooldown = Some((e, std::time::Instant::now() + wait));
                    self.log.next_cooldown = (wait * 2).min(COOLDOWN.1);
                }
                self.log.epoch += 1;
                drop(handle.store.recover(&self.id));
                self.changed();
                self.log.stored = Some(self.version);
                self.log.since_snapshot = 0;
                self.release_stored();
                self.cursors.reset_all(self.version);
                self.close_all_peers();
                tracing::warn!(document = %self.id, seq = r.version, "document rebuilt from the store after a failed write; writes are taken again");
            }
            Err(e) => {
                tracing::error!(document = %self.id, error = %e, "cannot rebuild the document from the store; writes stay refused");
                if let Some(failed) = &self.log.failed {
                    let wait = self.log.next_cooldown;
                    self.log.cooldown = Some((failed.clone(), std::time::Instant::now() + wait));
                    self.log.next_cooldown = (wait * 2).min(COOLDOWN.1);
                }
            }
        }
    }
}

/// Bytes an entry holds.
fn entry_bytes(entry: &Entry) -> usize {
    entry.content.len() + entry.buffers.iter().map(|(_, b)| b.len()).sum::<usize>()
}
