//! Sessions as connections and the registry see them: the commands a session owner
//! takes, the handle that sends them, and the budgets that bound what may wait for it.
//! The owner itself is in [`crate::owner`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use plotwire_protocol::codec::{Encoder, NoExpansion};
use plotwire_protocol::event::{DocJson, DocumentEvent};
use plotwire_protocol::frame::{encode_message, OutgoingMessage};
use plotwire_protocol::message::MsgType;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::outbox::Outbox;

/// Identifies one connection within the process.
pub type ConnId = u64;

/// What kind of peer a connection is. Browsers always send an `Origin` header on the
/// websocket handshake; `bokeh.client` producers send none (spec §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// BokehJS in a browser.
    Browser,
    /// A producer such as `bokeh.client`.
    Producer,
}

/// A request's share of the budgets: its bytes in the session's queue and one of its
/// connection's in-flight slots. Both are given back when the owner drops the ticket,
/// after it has queued the reply.
pub struct Ticket {
    _queued: OwnedSemaphorePermit,
    _inflight: OwnedSemaphorePermit,
}

/// A request for a session owner.
pub enum Command {
    /// Subscribe a connection; the owner queues the ACK as its first message.
    Join {
        /// The connection.
        conn: ConnId,
        /// Where its messages go.
        outbox: Outbox,
        /// Browser or producer.
        kind: PeerKind,
        /// Its Bokeh session id: the view it belongs to, in a published document.
        view: String,
    },
    /// Unsubscribe a connection.
    Leave {
        /// The connection.
        conn: ConnId,
    },
    /// PULL-DOC-REQ.
    Pull {
        /// The requester.
        conn: ConnId,
        /// The request's msgid.
        msgid: String,
        /// Held until the reply is queued.
        ticket: Ticket,
    },
    /// PUSH-DOC.
    Push {
        /// The pusher.
        conn: ConnId,
        /// The request's msgid.
        msgid: String,
        /// The pushed document.
        doc: Box<DocJson>,
        /// Held until the reply is queued.
        ticket: Ticket,
    },
    /// PATCH-DOC.
    Patch {
        /// The sender.
        conn: ConnId,
        /// The request's msgid.
        msgid: String,
        /// The decoded events.
        events: Vec<DocumentEvent>,
        /// Held until the reply is queued.
        ticket: Ticket,
    },
    /// The title and root ids, for rendering a page.
    Describe {
        /// Where to send them.
        reply: oneshot::Sender<PageInfo>,
    },
    /// A REST request for a published document.
    Rest {
        /// What is asked.
        request: crate::api::Request,
        /// The idempotency key of a write, if given.
        key: Option<String>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<crate::api::Answer, crate::error::HttpError>>,
    },
    /// Makes the owner panic, to test what happens then.
    #[cfg(test)]
    Crash,
}

impl Command {
    /// Whether the command may change the document (PUSH-DOC, PATCH-DOC, a REST write):
    /// what `plotwire_apply_seconds` times.
    pub fn changes(&self) -> bool {
        match self {
            Command::Push { .. } | Command::Patch { .. } => true,
            Command::Rest { request, .. } => request.is_write(),
            _ => false,
        }
    }
}

/// What a page needs to know about the document.
#[derive(Debug, Clone)]
pub struct PageInfo {
    /// The document title.
    pub title: String,
    /// The root ids, in order.
    pub roots: Vec<String>,
    /// The BokehJS bundles its page loads ([`crate::bundles::for_page`]).
    pub bundles: crate::bundles::PageBundles,
}

/// What the index and summaries show of a document, kept current by its owner.
#[derive(Debug, Clone)]
pub struct DocStatus {
    /// The document title.
    pub title: String,
    /// Views it has (published documents).
    pub views: usize,
    /// Its sequence number.
    pub version: u64,
    /// When it last changed.
    pub updated: std::time::SystemTime,
}

impl Default for DocStatus {
    fn default() -> Self {
        DocStatus {
            title: String::new(),
            views: 0,
            version: 0,
            updated: std::time::SystemTime::now(),
        }
    }
}

/// The limits a session owner works within.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Commands queued for the owner before senders wait.
    pub queue_commands: usize,
    /// Bytes of requests queued for the owner before senders wait.
    pub queue_bytes: usize,
    /// Most models the document may hold.
    pub max_models: usize,
    /// Settings of published documents' views.
    pub views: crate::owner::ViewSettings,
    /// Where published documents are logged; `None` keeps them in memory only.
    pub store: Option<crate::persist::StoreHandle>,
    /// The server's metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// A live session, as the registry and connections see it.
pub struct SessionHandle {
    /// The session id.
    pub id: String,
    /// The app path it was created under (without slashes).
    pub app: String,
    tx: mpsc::Sender<Command>,
    queue_budget: Arc<Semaphore>,
    queue_bytes: usize,
    connections: AtomicUsize,
    last_left: Mutex<Instant>,
    ended: watch::Sender<Option<u16>>,
    ended_notice: bool,
    /// Whether this is a published document (kept until deleted, one view per session id).
    pub published: bool,
    status: watch::Receiver<DocStatus>,
    /// Reads that found nothing new, by source address: the document's sequence number
    /// then, and the empty columns answered ([`SessionHandle::idle_read`]).
    idle_reads: Mutex<HashMap<String, (u64, String)>>,
}

/// Most source addresses whose last idle read a session remembers.
const IDLE_READS_KEPT: usize = 256;

impl SessionHandle {
    /// Sends a command to the owner, waiting while its queue is full (backpressure).
    /// Returns false if the owner is gone.
    pub async fn send(&self, cmd: Command) -> bool {
        self.tx.send(cmd).await.is_ok()
    }

    /// Waits for room for a request of `bytes` in the session's queue and for a free slot
    /// in its connection's `inflight` slots. `None` if the session is gone.
    pub async fn ticket(&self, bytes: usize, inflight: &Arc<Semaphore>) -> Option<Ticket> {
        let slot = inflight.clone().acquire_owned().await.ok()?;
        let share = bytes.min(self.queue_bytes).min(u32::MAX as usize);
        let queued = self
            .queue_budget
            .clone()
            .acquire_many_owned(u32::try_from(share).unwrap_or(u32::MAX))
            .await
            .ok()?;
        Some(Ticket {
            _queued: queued,
            _inflight: slot,
        })
    }

    /// The title, roots and bundles of the document, or `None` if the owner is gone.
    pub async fn describe(&self) -> Option<PageInfo> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Command::Describe { reply }).await {
            return None;
        }
        rx.await.ok()
    }

    /// Counts a new connection.
    pub fn attach(&self) {
        self.connections.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a connection gone, starting the unused timer when it was the last.
    pub fn detach(&self) {
        if self.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Ok(mut t) = self.last_left.lock() {
                *t = Instant::now();
            }
        }
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// The document's current title, views and last change.
    pub fn status(&self) -> DocStatus {
        self.status.borrow().clone()
    }

    /// The document's status, to wait for its next change.
    pub fn watch_status(&self) -> watch::Receiver<DocStatus> {
        self.status.clone()
    }

    /// The answer to a read of `source` after `since`, when the last read of it found
    /// nothing new at `since` and the document is still there: nothing has changed, so
    /// it is answered without the owner (most polls of an exported page). `None`: ask
    /// the owner.
    pub fn idle_read(&self, source: &str, since: u64) -> Option<crate::api::RowsRead> {
        if self.status.borrow().version != since {
            return None;
        }
        let idle = self.idle_reads.lock().ok()?;
        let (seq, data) = idle.get(source)?;
        (*seq == since).then(|| crate::api::RowsRead {
            since: Some(since),
            next: since,
            reset: false,
            rows: 0,
            data: data.clone(),
        })
    }

    /// Remembers the owner's answer to a read of `source` if it found nothing new.
    pub fn remember_idle_read(&self, source: &str, rows: &crate::api::RowsRead) {
        if rows.rows != 0 || rows.reset {
            return;
        }
        if let Ok(mut idle) = self.idle_reads.lock() {
            if idle.len() >= IDLE_READS_KEPT && !idle.contains_key(source) {
                idle.clear();
            }
            idle.insert(source.to_owned(), (rows.next, rows.data.clone()));
        }
    }

    /// Sends a REST request to the owner and waits for its answer.
    pub async fn rest(
        &self,
        request: crate::api::Request,
        key: Option<String>,
    ) -> Result<crate::api::Answer, crate::error::HttpError> {
        let (reply, rx) = oneshot::channel();
        let gone = || crate::error::HttpError::not_found("the document was just deleted");
        if !self
            .send(Command::Rest {
                request,
                key,
                reply,
            })
            .await
        {
            return Err(gone());
        }
        rx.await.map_err(|_| gone())?
    }

    /// Whether the session has had no connections for longer than `lifetime`. A
    /// published document is never unused: it lives until deleted.
    pub fn unused_for(&self, lifetime: std::time::Duration) -> bool {
        !self.published
            && self.connection_count() == 0
            && self
                .last_left
                .lock()
                .map(|t| t.elapsed() > lifetime)
                .unwrap_or(false)
    }

    /// Marks the session as ended abnormally: its connections close with `code`.
    pub fn end(&self, code: u16) {
        self.ended.send_replace(Some(code));
    }

    /// Whether the session was made to hold the notice that it had ended.
    pub fn is_ended_notice(&self) -> bool {
        self.ended_notice
    }

    /// Resolves with a close code once the session has ended abnormally.
    pub fn ended(&self) -> watch::Receiver<Option<u16>> {
        self.ended.subscribe()
    }
}

static MSG_COUNTER: AtomicU64 = AtomicU64::new(1000);

/// A fresh message id. Ids only need to be unique per connection; one process-wide
/// counter keeps them unique everywhere.
pub fn next_msgid() -> String {
    format!("pw{}", MSG_COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Encodes a message whose content needs no model expansion.
pub fn simple_message(
    msgtype: MsgType,
    reqid: Option<&str>,
    content: &'static str,
) -> OutgoingMessage {
    encode_message(
        &next_msgid(),
        msgtype,
        reqid,
        Bytes::from_static(content.as_bytes()),
        &[],
    )
}

/// Encodes an ERROR reply naming the problem.
pub fn error_message(reqid: &str, text: &str) -> OutgoingMessage {
    let mut enc = Encoder::new(&NoExpansion);
    enc.raw("{\"text\":");
    enc.string(text);
    enc.raw(",\"traceback\":null}");
    let (content, _) = enc.finish();
    encode_message(&next_msgid(), MsgType::Error, Some(reqid), content, &[])
}

/// The text shown in a page whose session is gone.
pub const ENDED_TEXT: &str = "This session has ended: the server restarted or discarded it. Reload the page to start a new one.";

/// The document of a lost session: one root `Div` saying so.
pub fn ended_document() -> Option<plotwire_document::Document> {
    let content = format!(
        r#"{{"doc":{{"title":"Session ended","roots":[{{"type":"object","name":"Div","id":"plotwire-session-ended","attributes":{{"text":{}}}}}]}}}}"#,
        serde_json::Value::String(ENDED_TEXT.to_owned())
    );
    let doc = plotwire_protocol::event::decode_doc_message(
        content.as_bytes(),
        &plotwire_protocol::codec::Buffers::new(),
    )
    .ok()?;
    plotwire_document::Document::from_doc_json(doc).ok()
}

/// What a new session starts with.
pub enum Seed {
    /// An empty document (a new Bokeh session).
    Empty,
    /// The notice of [`ended_document`].
    Ended(plotwire_document::Document),
    /// A published document, the dashboard spec it was built from, if it was, and what
    /// it keeps.
    Published(
        plotwire_document::Document,
        Option<plotwire_spec::Spec>,
        crate::retention::Retention,
    ),
    /// A published document rebuilt from its log at start-up.
    Restored(crate::persist::Restored),
}

/// Starts the owner task of a new session holding `seed`. Returns its handle and the
/// task, which ends when every handle is gone, or early if the owner panicked.
pub fn spawn(
    id: String,
    app: String,
    limits: &SessionLimits,
    seed: Seed,
) -> (SessionHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(limits.queue_commands.max(1));
    let (ended, _) = watch::channel(None);
    let (status_tx, status) = watch::channel(DocStatus::default());
    let no_retention = crate::retention::Retention::default;
    let (ended_notice, published, mut doc, spec, retention, restored) = match seed {
        Seed::Empty => (
            false,
            false,
            plotwire_document::Document::default(),
            None,
            no_retention(),
            None,
        ),
        Seed::Ended(doc) => (true, false, doc, None, no_retention(), None),
        Seed::Published(doc, spec, retention) => (false, true, doc, spec, retention, None),
        Seed::Restored(r) => (
            false,
            true,
            r.doc,
            r.spec,
            r.retention,
            Some(crate::owner::Restored {
                version: r.version,
                answers: r.answers,
                arrivals: r.arrivals,
            }),
        ),
    };
    doc.set_max_models(limits.max_models);
    let policy = if published {
        crate::owner::Policy::Views
    } else {
        crate::owner::Policy::Shared
    };
    let start = crate::owner::Start {
        id: id.clone(),
        doc,
        spec,
        retention,
        policy,
        settings: limits.views.clone(),
        store: limits.store.clone(),
        restored,
        metrics: limits.metrics.clone(),
    };
    let task = tokio::spawn(crate::owner::run(start, status_tx, rx));
    let handle = SessionHandle {
        id,
        app,
        tx,
        queue_budget: Arc::new(Semaphore::new(limits.queue_bytes)),
        queue_bytes: limits.queue_bytes,
        connections: AtomicUsize::new(0),
        last_left: Mutex::new(Instant::now()),
        ended,
        ended_notice,
        published,
        status,
        idle_reads: Mutex::new(HashMap::new()),
    };
    (handle, task)
}
