//! Session owners: one task per session owns its [`Document`], applies every request in
//! arrival order and fans the results out, each outgoing message encoded once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use plotwire_document::{AllModels, Applied, Document, NewModels};
use plotwire_protocol::codec::{Encoder, NoExpansion};
use plotwire_protocol::event::{encode_patch, DocJson, DocumentEvent};
use plotwire_protocol::frame::{encode_message, OutgoingMessage};
use plotwire_protocol::message::MsgType;
use tokio::sync::{mpsc, oneshot};

use crate::outbox::{OfferError, Outbox};

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
    },
    /// PUSH-DOC.
    Push {
        /// The pusher.
        conn: ConnId,
        /// The request's msgid.
        msgid: String,
        /// The pushed document.
        doc: Box<DocJson>,
    },
    /// PATCH-DOC.
    Patch {
        /// The sender.
        conn: ConnId,
        /// The request's msgid.
        msgid: String,
        /// The decoded events.
        events: Vec<DocumentEvent>,
    },
    /// The title and root ids, for rendering a page.
    Describe {
        /// Where to send them.
        reply: oneshot::Sender<PageInfo>,
    },
}

/// What a page needs to know about the document.
#[derive(Debug, Clone)]
pub struct PageInfo {
    /// The document title.
    pub title: String,
    /// The root ids, in order.
    pub roots: Vec<String>,
}

/// A live session, as the registry and connections see it.
pub struct SessionHandle {
    /// The session id.
    pub id: String,
    /// The app path it was created under (without slashes).
    pub app: String,
    /// The token of whoever created the session; pages embed it (spec §1.2 step 7).
    pub creator_token: String,
    tx: mpsc::Sender<Command>,
    connections: AtomicUsize,
    last_left: Mutex<Instant>,
}

impl SessionHandle {
    /// Sends a command to the owner, waiting while its queue is full (backpressure).
    /// Returns false if the owner is gone.
    pub async fn send(&self, cmd: Command) -> bool {
        self.tx.send(cmd).await.is_ok()
    }

    /// The title and roots of the document, or `None` if the owner is gone.
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

    /// Whether the session has had no connections for longer than `lifetime`.
    pub fn unused_for(&self, lifetime: std::time::Duration) -> bool {
        self.connection_count() == 0
            && self
                .last_left
                .lock()
                .map(|t| t.elapsed() > lifetime)
                .unwrap_or(false)
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

/// Starts the owner task of a new session and returns its handle.
pub fn spawn(id: String, app: String, creator_token: String, queue: usize) -> SessionHandle {
    let (tx, rx) = mpsc::channel(queue.max(1));
    tokio::spawn(Owner::new(id.clone()).run(rx));
    SessionHandle {
        id,
        app,
        creator_token,
        tx,
        connections: AtomicUsize::new(0),
        last_left: Mutex::new(Instant::now()),
    }
}

struct Peer {
    outbox: Outbox,
    kind: PeerKind,
}

/// Who receives a relayed event.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Every connection but the originator.
    Others,
    /// Only connections of this kind, but the originator.
    OnlyKind(PeerKind),
    /// Every connection, the originator included.
    Everyone,
}

struct Owner {
    id: String,
    doc: Document,
    peers: HashMap<ConnId, Peer>,
}

impl Owner {
    fn new(id: String) -> Owner {
        Owner {
            id,
            doc: Document::new(),
            peers: HashMap::new(),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.recv().await {
            self.handle(cmd);
        }
        tracing::debug!(session = %self.id, "session owner stopped");
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Join { conn, outbox, kind } => {
                let ack = simple_message(MsgType::Ack, None, "{}");
                if outbox.offer(ack).is_ok() {
                    self.peers.insert(conn, Peer { outbox, kind });
                }
            }
            Command::Leave { conn } => {
                self.peers.remove(&conn);
            }
            Command::Pull { conn, msgid } => {
                self.doc.compact_columns();
                let lookup = AllModels(&self.doc);
                let mut enc = Encoder::new(&lookup);
                enc.raw("{\"doc\":");
                self.doc.encode_doc_json(&mut enc);
                enc.raw("}");
                let (content, buffers) = enc.finish();
                let reply = encode_message(
                    &next_msgid(),
                    MsgType::PullDocReply,
                    Some(&msgid),
                    content,
                    &buffers,
                );
                self.send_to(conn, reply);
            }
            Command::Push { conn, msgid, doc } => match self.doc.replace_with(*doc) {
                Ok(applied) => {
                    self.fan_out(&applied, conn, Route::Everyone);
                    self.send_to(conn, simple_message(MsgType::Ok, Some(&msgid), "{}"));
                }
                Err(e) => {
                    tracing::warn!(session = %self.id, conn, error = %e, "PUSH-DOC rejected");
                    self.send_to(conn, error_message(&msgid, &e.to_string()));
                }
            },
            Command::Patch {
                conn,
                msgid,
                events,
            } => match self.doc.apply(events) {
                Ok(applied) => {
                    self.fan_out(&applied, conn, Route::Others);
                    self.send_to(conn, simple_message(MsgType::Ok, Some(&msgid), "{}"));
                }
                Err(e) => {
                    tracing::warn!(session = %self.id, conn, error = %e, "PATCH-DOC rejected, nothing applied");
                    self.send_to(conn, error_message(&msgid, &e.to_string()));
                }
            },
            Command::Describe { reply } => {
                let _ = reply.send(PageInfo {
                    title: self.doc.title().to_owned(),
                    roots: self.doc.roots().to_vec(),
                });
            }
        }
    }

    /// Relays applied events: consecutive events with the same recipients go out as one
    /// PATCH-DOC, encoded once and shared by every recipient. MessageSent (UI events)
    /// crosses between browsers and producers and never echoes to its own kind.
    fn fan_out(&mut self, applied: &Applied, origin: ConnId, route: Route) {
        let origin_kind = self.peers.get(&origin).map(|p| p.kind);
        let route_of = |e: &DocumentEvent| match e {
            DocumentEvent::MessageSent { .. } => Route::OnlyKind(match origin_kind {
                Some(PeerKind::Browser) => PeerKind::Producer,
                _ => PeerKind::Browser,
            }),
            _ => route,
        };
        let mut start = 0;
        while start < applied.relay.len() {
            let r = route_of(&applied.relay[start]);
            let mut end = start + 1;
            while end < applied.relay.len() && route_of(&applied.relay[end]) == r {
                end += 1;
            }
            let recipients: Vec<ConnId> = self
                .peers
                .iter()
                .filter(|(id, p)| match r {
                    Route::Everyone => true,
                    Route::Others => **id != origin,
                    Route::OnlyKind(k) => **id != origin && p.kind == k,
                })
                .map(|(id, _)| *id)
                .collect();
            if recipients.is_empty() {
                // Nobody to tell: don't pay for encoding.
                start = end;
                continue;
            }
            let lookup = NewModels {
                doc: &self.doc,
                ids: &applied.new_models,
            };
            let mut enc = Encoder::new(&lookup);
            encode_patch(&mut enc, &applied.relay[start..end]);
            let (content, buffers) = enc.finish();
            let msg = encode_message(&next_msgid(), MsgType::PatchDoc, None, content, &buffers);
            for conn in recipients {
                self.send_to(conn, msg.clone());
            }
            start = end;
        }
    }

    fn send_to(&mut self, conn: ConnId, msg: OutgoingMessage) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        match peer.outbox.offer(msg) {
            Ok(()) => {}
            Err(OfferError::Overflow) => {
                tracing::warn!(session = %self.id, conn, "viewer too slow: outbox full, closing it so it reconnects");
                self.peers.remove(&conn);
            }
            Err(OfferError::Closed) => {
                self.peers.remove(&conn);
            }
        }
    }
}
