//! Full-document encodes (PULL-DOC-REPLY). They run off the owner, on the blocking pool,
//! from a snapshot (cloning a document shares its models and column chunks). Until the
//! reply is queued, messages for that connection are held back in order, so the
//! connection still sees the reply first and every later change after it, while the
//! owner goes on serving everyone else. A view's snapshot carries its overlay.

use std::panic::AssertUnwindSafe;

use base64::Engine;
use plotwire_document::{AllModels, Document};
use plotwire_protocol::codec::Encoder;
use plotwire_protocol::frame::{encode_message, OutgoingMessage};
use plotwire_protocol::message::MsgType;

use super::delivery::Held;
use super::{Owner, Policy};
use crate::session::{error_message, next_msgid, ConnId, PeerKind, Ticket};

/// A finished off-owner encode.
pub struct PullDone {
    conn: ConnId,
    pull: u64,
    reply: OutgoingMessage,
    /// The snapshot, its binary columns joined; kept if the document has not changed
    /// (and carried no view overlay).
    snapshot: Option<Document>,
    version: u64,
    _ticket: Ticket,
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
pub fn gzip_base64(data: &[u8]) -> String {
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
    /// Starts encoding a PULL-DOC-REPLY off the owner, holding the connection's later
    /// messages back until it is queued.
    pub(super) fn pull(&mut self, conn: ConnId, msgid: String, ticket: Ticket) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if peer.outbox.is_closed() {
            // Its peer is gone: don't pay for the encode.
            let view = peer.view.clone();
            self.peers.remove(&conn);
            if self.policy == Policy::Views {
                self.view_left(&view);
            }
            return;
        }
        let pull = self.next_pull;
        self.next_pull += 1;
        peer.held.push_back(Held::Pull(pull));
        let inline = peer.kind == PeerKind::Browser;
        let view = peer.view.clone();
        let mut snapshot = self.doc.clone();
        let mut overlaid = self.policy == Policy::Views && self.overlay_onto(&view, &mut snapshot);
        let lod = self.lod_pull(&view);
        if !lod.is_empty() {
            // Built from this document just now: it applies.
            let _ = snapshot.apply(lod);
            overlaid = true;
        }
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
                snapshot: (!overlaid).then_some(snapshot),
                version,
                _ticket: ticket,
            });
        });
    }

    pub(super) fn pull_done(&mut self, done: PullDone) {
        if let Some(snapshot) = done.snapshot {
            if done.version == self.version {
                // Nothing changed meanwhile: keep the joined columns for the next pull.
                self.doc = snapshot;
            }
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
}
