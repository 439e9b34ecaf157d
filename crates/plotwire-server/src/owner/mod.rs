//! The session owner: one task per session (or published document) owns its
//! [`Document`], applies every request in arrival order and fans the results out, each
//! outgoing message encoded once.
//!
//! - [`delivery`]: the connections and what is queued for them.
//! - [`pull`]: full-document encodes (PULL-DOC-REPLY), off the owner.
//! - [`views`]: the view-local state of published documents' viewers.
//! - [`producer`]: REST requests of a published document's producers.
//! - [`retention`]: a published document's `max_rows` and `max_age`.
//!
//! A Bokeh session ([`Policy::Shared`]) keeps Bokeh's semantics: every connection
//! shares one document and sees every other connection's changes. A published document
//! ([`Policy::Views`]) gives every view its own overlay of what its browser changed;
//! only producers change the shared document.

mod delivery;
mod durability;
mod lod;
mod producer;
mod pull;
mod retention;
mod streamvis;
mod views;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesOrdered, StreamExt};
use plotwire_document::Document;
use plotwire_protocol::message::MsgType;
use tokio::sync::{mpsc, watch};

use crate::bundles::{self, PageBundles};
use crate::cursor::Cursors;
use crate::events::EventLog;
use crate::session::{error_message, simple_message, Command, DocStatus};
use delivery::{Peer, Route};
use durability::Durable;
use producer::Idempotency;
use pull::PullDone;
use views::View;

pub use delivery::PATCH_ENCODES;
pub use pull::gzip_base64;
pub use views::{json_string, value_json};

/// How a document is shared among its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// A Bokeh session: one document for every connection.
    Shared,
    /// A published document: every view keeps its own view-local state.
    Views,
}

/// Settings of a published document's owner.
#[derive(Debug, Clone)]
pub struct ViewSettings {
    /// Viewer events kept for resuming.
    pub events_kept: usize,
    /// How long a view without connections keeps its state for a reconnect.
    pub view_linger: Duration,
    /// Sources with more rows than this are downsampled for each view, unless their
    /// spec says otherwise (`lod`).
    pub lod_threshold: u64,
}

impl Default for ViewSettings {
    fn default() -> Self {
        ViewSettings {
            events_kept: 10_000,
            view_linger: Duration::from_secs(60),
            lod_threshold: crate::lod::DEFAULT_THRESHOLD,
        }
    }
}

struct Owner {
    id: String,
    policy: Policy,
    doc: Document,
    /// The dashboard spec the document was built from, if it was (streamvis calls
    /// change it).
    spec: Option<plotwire_spec::Spec>,
    /// What the document keeps, as published.
    retention: crate::retention::Retention,
    /// When its rows arrived, for a `max_age` (empty without one).
    arrivals: crate::retention::Arrivals,
    /// When the owner next looks for rows older than `max_age`.
    next_trim: Option<Instant>,
    /// When it last trimmed some.
    trimmed_at: Option<Instant>,
    /// Bumped by every change: the document's sequence number. A snapshot compares it
    /// to tell whether it is still current; read-back cursors count in it.
    version: u64,
    /// The bundles a page of the document loads, and the version they were computed at.
    bundles: Option<(u64, PageBundles)>,
    peers: HashMap<crate::session::ConnId, Peer>,
    views: HashMap<String, View>,
    events: EventLog,
    cursors: Cursors,
    idempotency: Idempotency,
    settings: ViewSettings,
    status: watch::Sender<DocStatus>,
    next_pull: u64,
    done_tx: mpsc::UnboundedSender<PullDone>,
    log: Durable,
    /// Level of detail, for a published document built from a spec with line plots.
    lod: Option<crate::lod::Lod>,
    /// No later than the earliest view due for a level-of-detail update.
    lod_due: Option<std::time::Instant>,
    /// The server's metrics.
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// What an owner starts with.
pub struct Start {
    /// The session id or document name.
    pub id: String,
    /// The document.
    pub doc: Document,
    /// The spec it was built from, if it was.
    pub spec: Option<plotwire_spec::Spec>,
    /// What a published document keeps.
    pub retention: crate::retention::Retention,
    /// How it is shared.
    pub policy: Policy,
    /// Settings of published documents.
    pub settings: ViewSettings,
    /// Where a published document is logged, if anywhere.
    pub store: Option<crate::persist::StoreHandle>,
    /// For a document rebuilt from its log, what the log said beside the document.
    /// `None`: a new document, whose first entry is the whole of it.
    pub restored: Option<Restored>,
    /// The server's metrics.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// What a document rebuilt from its log starts with beside its content.
pub struct Restored {
    /// Its sequence number.
    pub version: u64,
    /// The idempotency answers logged.
    pub answers: crate::persist::Answers,
    /// The arrival times of its rows, for a `max_age`.
    pub arrivals: crate::retention::Arrivals,
}

/// Runs the owner of session `id` until every handle to it is gone.
pub async fn run(start: Start, status: watch::Sender<DocStatus>, mut rx: mpsc::Receiver<Command>) {
    let Start {
        id,
        doc,
        spec,
        retention,
        policy,
        settings,
        store,
        restored,
        metrics,
    } = start;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (snapshot_tx, mut snapshot_rx) = mpsc::unbounded_channel();
    let store = store.filter(|_| policy == Policy::Views);
    let version = restored.as_ref().map_or(0, |r| r.version);
    let stored = restored.as_ref().map(|r| r.version);
    let mut idempotency = Idempotency::default();
    let (answers, arrivals) = match restored {
        Some(r) => (r.answers, Some(r.arrivals)),
        None => (Vec::new(), None),
    };
    for (key, seq, rows) in answers {
        idempotency.remember(key, (seq, rows));
    }
    let mut owner = Owner {
        id,
        policy,
        doc,
        spec,
        retention,
        arrivals: crate::retention::Arrivals::default(),
        next_trim: None,
        trimmed_at: None,
        version,
        bundles: None,
        peers: HashMap::new(),
        views: HashMap::new(),
        events: match stored {
            Some(_) => EventLog::starting_at(settings.events_kept, crate::events::restart_seq()),
            None => EventLog::new(settings.events_kept),
        },
        cursors: Cursors::default(),
        idempotency,
        settings,
        status,
        next_pull: 0,
        done_tx,
        log: Durable::new(store, stored, snapshot_tx),
        lod: None,
        lod_due: None,
        metrics,
    };
    owner.lod_replan();
    owner.cursors.reset_all(version);
    owner.retention_start(arrivals);
    if owner.log.logs() && stored.is_none() {
        let entry = owner.whole_entry(&[]);
        owner.stage(Some(entry));
        owner.flush_log(None, None);
    }
    let mut in_flight = FuturesOrdered::new();
    owner.publish_status();
    let mut reap = tokio::time::interval(owner.settings.view_linger.max(Duration::from_secs(1)));
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        for (seq, appended) in owner.log.appends.drain(..) {
            let commit = owner.metrics.store_commit.clone();
            let handed = Instant::now();
            in_flight.push_back(async move {
                let result = appended.await;
                commit.observe(handed.elapsed());
                (seq, result)
            });
        }
        let trim_due = owner.next_trim;
        let trim_wake = tokio::time::sleep_until(
            trim_due.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std),
        );
        let lod_due = owner.lod_next_due();
        let lod_wake = tokio::time::sleep_until(
            lod_due.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std),
        );
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => owner.pull_done(done),
            Some((seq, result)) = in_flight.next(), if !in_flight.is_empty() => owner.stored(seq, result),
            Some(snapshot) = snapshot_rx.recv() => owner.snapshot_done(snapshot),
            cmd = rx.recv() => match cmd {
                Some(cmd) if cmd.changes() => {
                    let started = Instant::now();
                    owner.handle(cmd);
                    owner.metrics.apply.observe(started.elapsed());
                    // A busy owner may not get to the timer: a due trim runs here.
                    owner.retention_tick();
                }
                Some(cmd) => owner.handle(cmd),
                None => break,
            },
            _ = reap.tick(), if owner.policy == Policy::Views => owner.reap_views(),
            _ = lod_wake, if lod_due.is_some() => owner.lod_tick(),
            _ = trim_wake, if trim_due.is_some() => owner.retention_tick(),
        }
    }
    // Answer the writes still waiting for the store before going.
    while let Some((seq, result)) = in_flight.next().await {
        owner.stored(seq, result);
    }
    tracing::debug!(session = %owner.id, "session owner stopped");
}

impl Owner {
    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Join {
                conn,
                outbox,
                kind,
                view,
            } => {
                let ack = simple_message(MsgType::Ack, None, "{}");
                if outbox.offer(ack).is_ok() {
                    self.peers
                        .insert(conn, Peer::new(outbox, kind, view.clone()));
                    if self.policy == Policy::Views {
                        self.view_joined(&view);
                    }
                }
            }
            Command::Leave { conn } => {
                if let Some(peer) = self.peers.remove(&conn) {
                    if self.policy == Policy::Views {
                        self.view_left(&peer.view);
                    }
                }
            }
            Command::Pull {
                conn,
                msgid,
                ticket,
            } => self.pull(conn, msgid, ticket),
            Command::Push {
                conn,
                msgid,
                doc,
                ticket,
            } => {
                if self.policy == Policy::Views {
                    self.send_to(
                        conn,
                        error_message(
                            &msgid,
                            "a published document is replaced with PUT /api/v1/documents/<name>, not PUSH-DOC",
                        ),
                    );
                    return;
                }
                match self.doc.replace_with(*doc) {
                    Ok(applied) => {
                        self.changed();
                        self.fan_out(&applied, conn, Route::Everyone);
                        self.send_to(conn, simple_message(MsgType::Ok, Some(&msgid), "{}"));
                    }
                    Err(e) => {
                        crate::warn_limited!(session = %self.id, conn, error = %e, "PUSH-DOC rejected");
                        self.send_to(conn, error_message(&msgid, &e.to_string()));
                    }
                }
                drop(ticket);
            }
            Command::Patch {
                conn,
                msgid,
                events,
                ticket,
            } => {
                if self.policy == Policy::Views {
                    self.view_patch(conn, &msgid, events);
                    return;
                }
                let rows = streamed_rows(&events);
                match self.doc.apply(events) {
                    Ok(applied) => {
                        self.metrics.points_ingested.inc_by(rows);
                        self.changed();
                        self.fan_out(&applied, conn, Route::Others);
                        self.send_to(conn, simple_message(MsgType::Ok, Some(&msgid), "{}"));
                    }
                    Err(e) => {
                        crate::warn_limited!(session = %self.id, conn, error = %e, "PATCH-DOC rejected, nothing applied");
                        self.send_to(conn, error_message(&msgid, &e.to_string()));
                    }
                }
                drop(ticket);
            }
            Command::Describe { reply } => {
                let bundles = self.page_bundles();
                let _ = reply.send(crate::session::PageInfo {
                    title: self.doc.title().to_owned(),
                    roots: self.doc.roots().to_vec(),
                    bundles,
                });
            }
            Command::Rest {
                request,
                key,
                reply,
            } => {
                let answer = self.rest(request, key);
                self.reply_when_stored(reply, answer);
            }
            #[cfg(test)]
            #[allow(clippy::panic)]
            Command::Crash => panic!("session owner crash requested by a test"),
        }
    }

    /// The bundles a page of the document loads, computed once per document version.
    fn page_bundles(&mut self) -> PageBundles {
        match self.bundles {
            Some((version, set)) if version == self.version => set,
            _ => {
                let set = bundles::for_page(&self.doc);
                self.bundles = Some((self.version, set));
                set
            }
        }
    }

    /// Counts a change to the shared document.
    fn changed(&mut self) {
        self.version += 1;
        self.publish_status();
    }

    /// Tells the registry (index page, summaries) the document's current state. Runs on
    /// every change, so the title is copied only when it changed.
    fn publish_status(&self) {
        let title = self.doc.title();
        let views = self.views.len();
        let version = self.version;
        self.status.send_modify(|s| {
            if s.version != version || s.title != title {
                s.updated = std::time::SystemTime::now();
            }
            if s.title != title {
                s.title = title.to_owned();
            }
            s.views = views;
            s.version = version;
        });
    }
}

/// Rows that the `ColumnsStreamed` events among `events` append.
fn streamed_rows(events: &[plotwire_protocol::event::DocumentEvent]) -> u64 {
    events
        .iter()
        .map(|e| match e {
            plotwire_protocol::event::DocumentEvent::ColumnsStreamed { data, .. } => {
                u64::try_from(crate::limits::column_rows(data)).unwrap_or(u64::MAX)
            }
            _ => 0,
        })
        .sum()
}
