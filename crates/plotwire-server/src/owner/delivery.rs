//! The owner's connections and what is queued for them: relayed events encoded once per
//! group of recipients, and messages held back behind a reply still being encoded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use plotwire_document::{Applied, NewModels};
use plotwire_protocol::codec::Encoder;
use plotwire_protocol::event::{encode_patch, DocumentEvent};
use plotwire_protocol::frame::{encode_message, OutgoingMessage};
use plotwire_protocol::message::MsgType;

use super::Owner;
use crate::outbox::{OfferError, Outbox};
use crate::session::{next_msgid, ConnId, PeerKind};

/// The origin of changes that come from no connection (REST producers).
pub const NO_CONNECTION: ConnId = ConnId::MAX;

/// A message for one connection, or the place of a reply still being encoded.
pub enum Held {
    /// A message ready to go.
    Msg(OutgoingMessage),
    /// The reply of this pull, not encoded yet.
    Pull(u64),
}

/// One connection, as the owner sees it.
pub struct Peer {
    pub outbox: Outbox,
    pub kind: PeerKind,
    /// The view it belongs to (its Bokeh session id).
    pub view: String,
    /// Messages waiting behind a PULL-DOC-REPLY being encoded, in order.
    pub held: VecDeque<Held>,
    pub held_bytes: usize,
}

impl Peer {
    /// A connection with nothing held.
    pub fn new(outbox: Outbox, kind: PeerKind, view: String) -> Peer {
        Peer {
            outbox,
            kind,
            view,
            held: VecDeque::new(),
            held_bytes: 0,
        }
    }
}

/// Who receives a relayed event.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Every connection but the originator.
    Others,
    /// Only connections of this kind, but the originator.
    OnlyKind(PeerKind),
    /// Every connection, the originator included.
    Everyone,
}

impl Owner {
    /// Relays applied events: consecutive events with the same recipients go out as one
    /// PATCH-DOC, encoded once and shared by every recipient. MessageSent (UI events)
    /// crosses between browsers and producers and never echoes to its own kind.
    pub(super) fn fan_out(&mut self, applied: &Applied, origin: ConnId, route: Route) {
        let origin_kind = self.peers.get(&origin).map(|p| p.kind);
        let route_of = |e: &DocumentEvent| match e {
            DocumentEvent::MessageSent { .. } => Route::OnlyKind(match origin_kind {
                Some(PeerKind::Browser) => PeerKind::Producer,
                _ => PeerKind::Browser,
            }),
            _ => route,
        };
        let started = std::time::Instant::now();
        let mut offered = false;
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
            if !recipients.is_empty() {
                let msg = encode_events(applied, &applied.relay[start..end]);
                self.send_each(&recipients, &msg);
                offered = true;
            }
            start = end;
        }
        if offered {
            self.metrics.fan_out.observe(started.elapsed());
        }
    }

    /// Queues the same message for each of `recipients`.
    pub(super) fn send_each(&mut self, recipients: &[ConnId], msg: &OutgoingMessage) {
        for conn in recipients {
            self.send_to(*conn, msg.clone());
        }
    }

    /// Queues a message for one connection, behind any reply still being encoded for it.
    pub(super) fn send_to(&mut self, conn: ConnId, msg: OutgoingMessage) {
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

    /// Offers a connection's held messages, up to the next reply still being encoded.
    pub(super) fn flush_held(&mut self, conn: ConnId) {
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

    /// Closes every connection so that it reconnects and re-pulls (BokehJS reconnects
    /// after any close); their views count them gone.
    pub(super) fn close_all_peers(&mut self) {
        let peers: Vec<Peer> = self.peers.drain().map(|(_, p)| p).collect();
        for peer in peers {
            peer.outbox.force_overflow();
            if self.policy == super::Policy::Views {
                self.view_left(&peer.view);
            }
        }
    }

    pub(super) fn drop_peer(&mut self, conn: ConnId, why: OfferError) {
        if why == OfferError::Overflow {
            self.metrics.slow_viewer_closes.inc();
            crate::warn_limited!(session = %self.id, conn, "viewer too slow: outbox full, closing it so it reconnects");
        }
        if let Some(peer) = self.peers.remove(&conn) {
            if self.policy == super::Policy::Views {
                self.view_left(&peer.view);
            }
        }
    }
}

/// PATCH-DOCs encoded for relaying since the process started, whatever the number of
/// recipients of each: encode once, send many.
pub static PATCH_ENCODES: AtomicU64 = AtomicU64::new(0);

/// One PATCH-DOC holding `events`, with the models new in `applied` written in full.
pub fn encode_events(applied: &Applied, events: &[DocumentEvent]) -> OutgoingMessage {
    PATCH_ENCODES.fetch_add(1, Ordering::Relaxed);
    let lookup = NewModels(&applied.new_models);
    let mut enc = Encoder::new(&lookup);
    encode_patch(&mut enc, events);
    let (content, buffers) = enc.finish();
    encode_message(&next_msgid(), MsgType::PatchDoc, None, content, &buffers)
}
