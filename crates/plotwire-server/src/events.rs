//! What viewers of a published document do, as events for its producers: a numbered,
//! bounded log that SSE streams and long-polls read from, resuming after any sequence
//! number still kept.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::api::{Answer, Request};
use crate::error::HttpError;
use crate::session::SessionHandle;

/// One producer event: its sequence number and its JSON text, encoded once for every
/// reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEvent {
    /// Its place in the document's event order, from 1.
    pub seq: u64,
    /// The event as a JSON object (see `docs/rest-api.md`, "Events for producers").
    pub json: Arc<str>,
}

/// Live events sent to subscribers before they fall this far behind; a subscriber
/// that lags more re-reads from the log.
const LIVE_CAPACITY: usize = 1024;

/// The event log of one document. Only its owner writes to it.
pub struct EventLog {
    next_seq: u64,
    kept: VecDeque<ProducerEvent>,
    capacity: usize,
    live: broadcast::Sender<ProducerEvent>,
}

/// What a subscriber gets: the kept events after its cursor, then the live ones.
pub struct Subscription {
    /// Events after the cursor, in order.
    pub backlog: Vec<ProducerEvent>,
    /// Whether events after the cursor were already dropped from the log (the reader
    /// missed some).
    pub gap: bool,
    /// The cursor the backlog follows: the one asked for, or 0 when that was ahead of
    /// the log.
    pub since: u64,
    /// The events that follow the backlog.
    pub live: broadcast::Receiver<ProducerEvent>,
}

impl EventLog {
    /// An empty log keeping the last `capacity` events (at least one).
    pub fn new(capacity: usize) -> EventLog {
        EventLog::starting_at(capacity, 1)
    }

    /// A log whose first event gets sequence number `first`. A document restored from
    /// the store starts its events past any number the server gave out before the
    /// restart ([`restart_seq`]), so that a producer resuming with its last number is
    /// told of the gap and then gets the new events, instead of waiting for the count to
    /// pass its number again.
    pub fn starting_at(capacity: usize, first: u64) -> EventLog {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        EventLog {
            next_seq: first.max(1),
            kept: VecDeque::new(),
            capacity: capacity.max(1),
            live,
        }
    }

    /// Appends an event given as a JSON object body without its `seq` (for example
    /// `"kind":"change",...`), numbering it. Returns its sequence number.
    pub fn push(&mut self, fields: &str) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let json: Arc<str> = format!("{{\"seq\":{seq},{fields}}}").into();
        let event = ProducerEvent { seq, json };
        if self.kept.len() == self.capacity {
            self.kept.pop_front();
        }
        self.kept.push_back(event.clone());
        // Nobody listening is fine.
        let _ = self.live.send(event);
        seq
    }

    /// The sequence number of the last event, 0 if none.
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Subscribes after sequence number `since`: the kept events after it and a
    /// receiver of the later ones, with nothing lost or repeated in between (the owner
    /// does both in one step).
    pub fn subscribe(&self, since: u64) -> Subscription {
        // A number past the last event is from an earlier life of the document (before
        // a delete and a republish): the subscriber starts over, told of the gap.
        let ahead = since > self.last_seq();
        let since = if ahead { 0 } else { since };
        let oldest = self.kept.front().map_or(self.next_seq, |e| e.seq);
        Subscription {
            backlog: self
                .kept
                .iter()
                .filter(|e| e.seq > since)
                .cloned()
                .collect(),
            gap: ahead || since + 1 < oldest,
            since,
            live: self.live.subscribe(),
        }
    }
}

/// Subscribes to `doc`'s events after sequence number `since`, through its owner.
pub async fn subscribe(doc: &SessionHandle, since: u64) -> Result<Subscription, HttpError> {
    match doc.rest(Request::Subscribe { since }, None).await? {
        Answer::Subscribed(sub) => Ok(sub),
        _ => Err(HttpError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected answer from the document",
        )),
    }
}

/// What a [`Follow`] reads next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// Events after the cursor were dropped from the log before they were read.
    Gap,
    /// The next event.
    Event(ProducerEvent),
}

/// Follows a document's events from a cursor: the backlog, then live events. A reader
/// that falls behind the live channel re-reads from the log, so nothing is lost or
/// repeated (what is dropped from the log meanwhile is a [`Followed::Gap`]).
pub struct Follow {
    doc: Arc<SessionHandle>,
    last: u64,
    pending: VecDeque<Followed>,
    live: broadcast::Receiver<ProducerEvent>,
}

impl Follow {
    /// Follows `doc` from `sub`, a subscription after `since`.
    pub fn new(doc: Arc<SessionHandle>, since: u64, sub: Subscription) -> Follow {
        let mut follow = Follow {
            doc,
            last: since,
            pending: VecDeque::new(),
            live: sub.live,
        };
        follow.queue(sub.gap, sub.backlog);
        follow
    }

    fn queue(&mut self, gap: bool, backlog: Vec<ProducerEvent>) {
        if gap {
            self.pending.push_back(Followed::Gap);
        }
        for e in backlog {
            self.last = e.seq;
            self.pending.push_back(Followed::Event(e));
        }
    }

    /// The next event (or gap), waiting for it; `None` once the document is gone.
    pub async fn next(&mut self) -> Option<Followed> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            match self.live.recv().await {
                Ok(e) if e.seq > self.last => {
                    self.last = e.seq;
                    return Some(Followed::Event(e));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    let sub = subscribe(&self.doc, self.last).await.ok()?;
                    self.live = sub.live;
                    self.queue(sub.gap, sub.backlog);
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// The first event number after a restart: the time in milliseconds times 1000, above
/// any number the earlier run gave out unless it made a thousand events per millisecond
/// on average; below 2^53, so JavaScript reads it exactly, until the year 2255.
pub fn restart_seq() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 1000)
        });
    ms.saturating_mul(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A producer that resumes after a restart with the last number it saw is told of
    /// the gap, and the new events reach it. (Numbered from 1 again, the new events were
    /// all at or below its number, so its SSE stream and long-poll dropped them.)
    #[test]
    fn a_restarted_log_numbers_past_the_old_one() {
        let mut before = EventLog::new(10);
        for _ in 0..500 {
            before.push("\"a\":1");
        }
        let resume_at = before.last_seq();
        let mut after = EventLog::starting_at(10, restart_seq());
        let seq = after.push("\"a\":2");
        assert!(seq > resume_at);
        let sub = after.subscribe(resume_at);
        assert!(
            sub.gap,
            "the events of the old run are gone: the producer is told"
        );
        assert_eq!(sub.backlog.len(), 1);
        assert!(restart_seq() < 1 << 53);
    }

    #[test]
    fn numbering_backlog_and_gaps() {
        let mut log = EventLog::new(3);
        for i in 0..5 {
            log.push(&format!("\"n\":{i}"));
        }
        assert_eq!(log.last_seq(), 5);
        let sub = log.subscribe(0);
        assert!(sub.gap, "events 1 and 2 were dropped");
        let seqs: Vec<u64> = sub.backlog.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        assert_eq!(&*sub.backlog[0].json, "{\"seq\":3,\"n\":2}");
        let sub = log.subscribe(2);
        assert!(!sub.gap);
        assert_eq!(sub.backlog.len(), 3);
        let sub = log.subscribe(5);
        assert!(sub.backlog.is_empty() && !sub.gap);
    }

    #[tokio::test]
    async fn live_events_follow_the_backlog() {
        let mut log = EventLog::new(10);
        log.push("\"a\":1");
        let mut sub = log.subscribe(0);
        log.push("\"a\":2");
        assert_eq!(sub.backlog.len(), 1);
        let next = sub.live.recv().await;
        assert_eq!(next.map(|e| e.seq).ok(), Some(2));
    }
}
