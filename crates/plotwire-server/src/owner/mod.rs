//! The session owner: one task per session owns its [`Document`], applies every request
//! in arrival order and fans the results out, each outgoing message encoded once.
//!
//! Full-document encodes (PULL-DOC-REPLY) run off the owner, on the blocking pool, from
//! a snapshot (cloning a document shares its models and column chunks). Until the reply
//! is queued, messages for that connection are held back in order, so the connection
//! still sees the reply first and every later change after it, while the owner goes on
//! serving everyone else.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;

use base64::Engine;
use plotwire_document::{AllModels, Applied, Document, NewModels};
use plotwire_protocol::codec::Encoder;
use plotwire_protocol::event::{encode_patch, DocumentEvent};
use plotwire_protocol::frame::{encode_message, OutgoingMessage};
use plotwire_protocol::message::MsgType;
use tokio::sync::mpsc;

use crate::outbox::{OfferError, Outbox};
use crate::session::{
    error_message, next_msgid, simple_message, Command, ConnId, PeerKind, Ticket,
};

/// A message for one connection, or the place of a reply still being encoded.
enum Held {
    Msg(OutgoingMessage),
    Pull(u64),
}

struct Peer {
    outbox: Outbox,
    kind: PeerKind,
    /// Messages waiting behind a PULL-DOC-REPLY being encoded, in order.
    held: VecDeque<Held>,
    held_bytes: usize,
}

/// A finished off-owner encode.
struct PullDone {
    conn: ConnId,
    pull: u64,
    reply: OutgoingMessage,
    /// The snapshot, its binary columns joined; kept if the document has not changed.
    snapshot: Document,
    version: u64,
    _ticket: Ticket,
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
    /// Bumped by every change, so that a snapshot can tell whether it is still current.
    version: u64,
    peers: HashMap<ConnId, Peer>,
    next_pull: u64,
    done_tx: mpsc::UnboundedSender<PullDone>,
}

/// Runs the owner of session `id` until every handle to it is gone.
pub async fn run(id: String, doc: Document, mut rx: mpsc::Receiver<Command>) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut owner = Owner {
        id,
        doc,
        version: 0,
        peers: HashMap::new(),
        next_pull: 0,
        done_tx,
    };
    loop {
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => owner.pull_done(done),
            cmd = rx.recv() => match cmd {
                Some(cmd) => owner.handle(cmd),
                None => break,
            },
        }
    }
    tracing::debug!(session = %owner.id, "session owner stopped");
}

/// Encodes a PULL-DOC-REPLY. Browsers get `bytes` inline (gzip, base64): BokehJS drops
/// the binary buffers of a reply when it re-pulls after a reconnect (BokehJS 3.9.2
/// `replace_with_json`), so buffers would leave it with a stale document.
fn encode_pull_reply(doc: &mut Document, msgid: &str, inline: bool) -> OutgoingMessage {
    doc.compact_columns();
    let lookup = AllModels(doc);
    let mut enc = Encoder::new(&lookup);
    if inline {
        enc.inline_bytes(gzip_base64);
    }
    enc.raw("{\"doc\":");
    doc.encode_doc_json(&mut enc);
    enc.raw("}");
    let (content, buffers) = enc.finish();
    encode_message(
        &next_msgid(),
        MsgType::PullDocReply,
        Some(msgid),
        content,
        &buffers,
    )
}

/// Gzip (stored blocks: the point is the format both Bokeh decoders require, not the
/// size) and standard base64.
fn gzip_base64(data: &[u8]) -> String {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() + data.len() / 1000 + 64),
        flate2::Compression::none(),
    );
    let gz = match gz.write_all(data) {
        Ok(()) => gz.finish().unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    base64::engine::general_purpose::STANDARD.encode(gz)
}

impl Owner {
    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Join { conn, outbox, kind } => {
                let ack = simple_message(MsgType::Ack, None, "{}");
                if outbox.offer(ack).is_ok() {
                    self.peers.insert(
                        conn,
                        Peer {
                            outbox,
                            kind,
                            held: VecDeque::new(),
                            held_bytes: 0,
                        },
                    );
                }
            }
            Command::Leave { conn } => {
                self.peers.remove(&conn);
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
                match self.doc.replace_with(*doc) {
                    Ok(applied) => {
                        self.version += 1;
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
                match self.doc.apply(events) {
                    Ok(applied) => {
                        self.version += 1;
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
                let _ = reply.send(crate::session::PageInfo {
                    title: self.doc.title().to_owned(),
                    roots: self.doc.roots().to_vec(),
                });
            }
            #[cfg(test)]
            #[allow(clippy::panic)]
            Command::Crash => panic!("session owner crash requested by a test"),
        }
    }

    /// Starts encoding a PULL-DOC-REPLY off the owner, holding the connection's later
    /// messages back until it is queued.
    fn pull(&mut self, conn: ConnId, msgid: String, ticket: Ticket) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if peer.outbox.is_closed() {
            // Its peer is gone: don't pay for the encode.
            self.peers.remove(&conn);
            return;
        }
        let pull = self.next_pull;
        self.next_pull += 1;
        peer.held.push_back(Held::Pull(pull));
        let inline = peer.kind == PeerKind::Browser;
        let snapshot = self.doc.clone();
        let version = self.version;
        let done = self.done_tx.clone();
        let session = self.id.clone();
        tokio::task::spawn_blocking(move || {
            let mut snapshot = snapshot;
            let encoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
                encode_pull_reply(&mut snapshot, &msgid, inline)
            }));
            let reply = encoded.unwrap_or_else(|_| {
                tracing::error!(session = %session, conn, "PULL-DOC-REPLY encode panicked");
                error_message(&msgid, "the document could not be encoded")
            });
            let _ = done.send(PullDone {
                conn,
                pull,
                reply,
                snapshot,
                version,
                _ticket: ticket,
            });
        });
    }

    fn pull_done(&mut self, done: PullDone) {
        if done.version == self.version {
            // Nothing changed meanwhile: keep the joined columns for the next pull.
            self.doc = done.snapshot;
        }
        let Some(peer) = self.peers.get_mut(&done.conn) else {
            return;
        };
        let slot = peer
            .held
            .iter_mut()
            .find(|h| matches!(h, Held::Pull(p) if *p == done.pull));
        if let Some(slot) = slot {
            *slot = Held::Msg(done.reply);
        }
        self.flush_held(done.conn);
    }

    /// Offers a connection's held messages, up to the next reply still being encoded.
    fn flush_held(&mut self, conn: ConnId) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        while let Some(Held::Msg(_)) = peer.held.front() {
            let Some(Held::Msg(msg)) = peer.held.pop_front() else {
                break;
            };
            peer.held_bytes = peer.held_bytes.saturating_sub(msg.total_len());
            if let Err(e) = peer.outbox.offer(msg) {
                self.drop_peer(conn, e);
                return;
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
            let lookup = NewModels(&applied.new_models);
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
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if peer.held.is_empty() {
            if let Err(e) = peer.outbox.offer(msg) {
                self.drop_peer(conn, e);
            }
            return;
        }
        // Held back behind a reply: the same bounds as the outbox apply.
        let (max_messages, max_bytes) = peer.outbox.limits();
        let size = msg.total_len();
        if peer.held.len() >= max_messages
            || (peer.held_bytes > 0 && peer.held_bytes + size > max_bytes)
        {
            peer.outbox.force_overflow();
            self.drop_peer(conn, OfferError::Overflow);
            return;
        }
        peer.held_bytes += size;
        peer.held.push_back(Held::Msg(msg));
    }

    fn drop_peer(&mut self, conn: ConnId, why: OfferError) {
        if why == OfferError::Overflow {
            crate::warn_limited!(session = %self.id, conn, "viewer too slow: outbox full, closing it so it reconnects");
        }
        self.peers.remove(&conn);
    }
}
