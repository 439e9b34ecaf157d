//! Bounded per-connection outboxes.
//!
//! Policy: the session owner never waits for a viewer. It offers each message (shared
//! bytes, encoded once) to every recipient's outbox. An outbox holds at most
//! `max_messages` messages and `max_bytes` bytes. A message that does not fit marks the
//! outbox *overflowed*: the connection is then closed with code 1013 ("try again later")
//! instead of being fed a document with a hole in it. BokehJS reconnects on such a close
//! and pulls a fresh copy of the document, so a viewer that fell behind catches up with
//! one PULL-DOC instead of an unbounded backlog. A stalled viewer therefore costs at most
//! the bound in memory and never slows the owner or the other viewers.
//!
//! A message counts against the bound until the writer has handed all of it to the
//! socket ([`OutboxReceiver::written`]), not merely until it left the queue, so the
//! bound covers what sits in the websocket's write buffer too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use plotwire_protocol::frame::OutgoingMessage;
use tokio::sync::{mpsc, watch};

/// The close code sent to a connection whose outbox overflowed.
pub const OVERFLOW_CLOSE_CODE: u16 = 1013;

struct Shared {
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    overflowed: watch::Sender<bool>,
}

/// The sending side, held by whoever produces messages for the connection.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<OutgoingMessage>,
    shared: Arc<Shared>,
}

/// The receiving side, held by the connection's writer.
pub struct OutboxReceiver {
    rx: mpsc::Receiver<OutgoingMessage>,
    shared: Arc<Shared>,
    overflowed: watch::Receiver<bool>,
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// The outbox is full: the connection is being closed as too slow.
    #[error("outbox full: the viewer is too slow")]
    Overflow,
    /// The connection is gone.
    #[error("connection closed")]
    Closed,
}

/// Makes an outbox bounded by message count and bytes.
pub fn outbox(max_messages: usize, max_bytes: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(max_messages.max(1));
    let (overflowed, overflowed_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        queued_bytes: AtomicUsize::new(0),
        max_bytes,
        overflowed,
    });
    (
        Outbox {
            tx,
            shared: shared.clone(),
        },
        OutboxReceiver {
            rx,
            shared,
            overflowed: overflowed_rx,
        },
    )
}

impl Outbox {
    /// Queues a message without waiting. On overflow the outbox is marked and the
    /// writer is woken so that it closes the connection.
    pub fn offer(&self, msg: OutgoingMessage) -> Result<(), OfferError> {
        if *self.shared.overflowed.borrow() {
            return Err(OfferError::Overflow);
        }
        let size = msg.total_len();
        let before = self.shared.queued_bytes.fetch_add(size, Ordering::AcqRel);
        if before > 0 && before + size > self.shared.max_bytes {
            self.shared.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            return Err(self.overflow());
        }
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                Err(self.overflow())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shared.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                Err(OfferError::Closed)
            }
        }
    }

    fn overflow(&self) -> OfferError {
        self.shared.overflowed.send_replace(true);
        OfferError::Overflow
    }

    /// Marks the outbox overflowed, so that the writer closes the connection as too
    /// slow (used when messages held back for the viewer exceed the same bound).
    pub fn force_overflow(&self) {
        self.shared.overflowed.send_replace(true);
    }

    /// Whether the connection's writer is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The bounds: most messages and most bytes.
    pub fn limits(&self) -> (usize, usize) {
        (self.tx.max_capacity(), self.shared.max_bytes)
    }

    /// Bytes currently queued.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Acquire)
    }
}

/// What the writer should do next.
pub enum Next {
    /// Send this message.
    Send(OutgoingMessage),
    /// Close the connection: the viewer fell too far behind.
    Overflowed,
    /// Every sender is gone.
    Done,
}

impl OutboxReceiver {
    /// Waits for the next message, or for an overflow.
    pub async fn next(&mut self) -> Next {
        tokio::select! {
            biased;
            _ = self.overflowed.wait_for(|o| *o) => Next::Overflowed,
            msg = self.rx.recv() => match msg {
                Some(m) => Next::Send(m),
                None => Next::Done,
            },
        }
    }

    /// The next queued message, if one is waiting now.
    pub fn try_next(&mut self) -> Option<OutgoingMessage> {
        self.rx.try_recv().ok()
    }

    /// Releases a message's bytes from the bound once it has been written out.
    pub fn written(&self, msg_len: usize) {
        self.shared
            .queued_bytes
            .fetch_sub(msg_len, Ordering::AcqRel);
    }

    /// Resolves once the outbox has overflowed, so that a write blocked on a viewer
    /// that stopped reading can be abandoned.
    pub async fn overflowed(&mut self) {
        if self.overflowed.wait_for(|o| *o).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use plotwire_protocol::frame::Fragment;

    fn msg(n: usize) -> OutgoingMessage {
        OutgoingMessage {
            frames: vec![Fragment::Binary(Bytes::from(vec![0u8; n]))],
        }
    }

    #[tokio::test]
    async fn a_stalled_reader_overflows_at_the_message_bound() {
        let (tx, mut rx) = outbox(3, 1 << 20);
        for _ in 0..3 {
            tx.offer(msg(10)).unwrap();
        }
        assert_eq!(tx.offer(msg(10)), Err(OfferError::Overflow));
        assert_eq!(tx.offer(msg(1)), Err(OfferError::Overflow));
        assert!(matches!(rx.next().await, Next::Overflowed));
    }

    #[tokio::test]
    async fn the_byte_bound_counts_queued_bytes() {
        let (tx, mut rx) = outbox(100, 100);
        tx.offer(msg(60)).unwrap();
        assert_eq!(tx.queued_bytes(), 60);
        let Next::Send(m) = rx.next().await else {
            panic!("expected a message")
        };
        // Still counted while it is being written.
        assert_eq!(tx.queued_bytes(), 60);
        assert_eq!(tx.offer(msg(60)), Err(OfferError::Overflow));
        let (tx, mut rx) = outbox(100, 100);
        tx.offer(m).unwrap();
        let Next::Send(m) = rx.next().await else {
            panic!("expected a message")
        };
        rx.written(m.total_len());
        assert_eq!(tx.queued_bytes(), 0);
        tx.offer(msg(60)).unwrap();
        assert_eq!(tx.offer(msg(60)), Err(OfferError::Overflow));
    }

    #[tokio::test]
    async fn one_oversized_message_still_goes_to_an_empty_outbox() {
        let (tx, mut rx) = outbox(4, 10);
        tx.offer(msg(100)).unwrap();
        assert!(matches!(rx.next().await, Next::Send(_)));
    }

    #[tokio::test]
    async fn dropping_the_receiver_reports_closed() {
        let (tx, rx) = outbox(4, 100);
        drop(rx);
        assert_eq!(tx.offer(msg(1)), Err(OfferError::Closed));
    }
}
