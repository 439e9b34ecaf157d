//! How an outgoing Bokeh message goes onto a websocket. Each of its fragments (a header,
//! metadata, content, buffer header or buffer) is one websocket message. A small one is
//! written as a single frame. A big one (a column buffer, the content of a pulled
//! document) is written as RFC 6455 fragments of at most [`FRAME_BYTES`] each, with a
//! yield to the runtime after each of them.
//!
//! tungstenite copies a frame whole into its write buffer and, after every partial write
//! to the socket, moves the unsent rest to the front of that buffer. One 80 MB frame
//! (a 1e7-point float64 column) written to a socket that takes a few MB at a time
//! therefore costs gigabytes of memmove, in single polls of 10 ms and more that stall
//! every other connection served by the same runtime worker. In frames of
//! [`FRAME_BYTES`] the same message costs one copy, and no poll writes more than one
//! frame. Every receiver reassembles fragments into the same message: browsers,
//! tornado (`bokeh.client`) and tungstenite.

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use plotwire_protocol::frame::{Fragment, OutgoingMessage};
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::{Message, Utf8Bytes};

use crate::upgrade::WebSocket;

/// The largest websocket frame written: bigger fragments are split into frames this size.
/// tungstenite's write buffer keeps the capacity of the largest frame it has held for as
/// long as the connection lives, so this is also about what an idle viewer costs after
/// its pull.
pub const FRAME_BYTES: usize = 64 * 1024;

/// The sending half of a websocket.
pub type Sink = SplitSink<WebSocket, Message>;

/// Writes every fragment of `msg`, then flushes. False if the socket failed, or if a text
/// fragment is not UTF-8 (the encoder never makes one; it is not sent).
pub async fn send_message(sink: &mut Sink, msg: OutgoingMessage) -> bool {
    for fragment in msg.frames {
        let sent = match fragment {
            Fragment::Text(b) if b.len() <= FRAME_BYTES => match Utf8Bytes::try_from(b) {
                Ok(text) => sink.feed(Message::Text(text)).await.is_ok(),
                Err(_) => false,
            },
            Fragment::Binary(b) if b.len() <= FRAME_BYTES => {
                sink.feed(Message::Binary(b)).await.is_ok()
            }
            Fragment::Text(b) => send_fragmented(sink, b, Data::Text).await,
            Fragment::Binary(b) => send_fragmented(sink, b, Data::Binary).await,
        };
        if !sent {
            tracing::debug!("websocket write failed");
            return false;
        }
    }
    sink.flush().await.is_ok()
}

/// Writes one websocket message as frames of at most [`FRAME_BYTES`], yielding after
/// each. Text is cut at character boundaries, so each frame is checked as UTF-8 alone.
async fn send_fragmented(sink: &mut Sink, mut rest: Bytes, kind: Data) -> bool {
    let text = kind == Data::Text;
    let mut opcode = OpCode::Data(kind);
    while !rest.is_empty() {
        let cut = if text {
            char_boundary_at_most(&rest, FRAME_BYTES)
        } else {
            FRAME_BYTES.min(rest.len())
        };
        let chunk = rest.split_to(cut);
        if text && std::str::from_utf8(&chunk).is_err() {
            tracing::error!("an outgoing text fragment is not UTF-8: not sent");
            return false;
        }
        let frame = Frame::message(chunk, opcode, rest.is_empty());
        if sink.feed(Message::Frame(frame)).await.is_err() {
            return false;
        }
        opcode = OpCode::Data(Data::Continue);
        tokio::task::yield_now().await;
    }
    true
}

/// The largest cut at most `max` into `data` (if it is longer) that does not split a
/// UTF-8 character; `max` itself when there is none (the text is not UTF-8 there).
fn char_boundary_at_most(data: &[u8], max: usize) -> usize {
    if data.len() <= max {
        return data.len();
    }
    // A character is at most 4 bytes: a boundary is among the last 4 positions.
    (max.saturating_sub(3)..=max)
        .rev()
        .find(|&i| i > 0 && data.get(i).is_some_and(|b| b & 0xC0 != 0x80))
        .unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use super::char_boundary_at_most;

    #[test]
    fn cuts_never_split_a_character() {
        let text = "aé€😀".repeat(1000);
        let bytes = text.as_bytes();
        for max in 1..40 {
            let mut rest = bytes;
            let mut joined = String::new();
            while !rest.is_empty() {
                let cut = char_boundary_at_most(rest, max.max(4));
                let (chunk, tail) = rest.split_at(cut);
                joined.push_str(std::str::from_utf8(chunk).expect("a whole-character chunk"));
                rest = tail;
            }
            assert_eq!(joined, text);
        }
    }

    #[test]
    fn short_data_is_one_cut() {
        assert_eq!(char_boundary_at_most(b"abc", 10), 3);
        assert_eq!(char_boundary_at_most(b"abcdef", 4), 4);
    }
}
