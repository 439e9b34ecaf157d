//! Viewer events for producers: an SSE stream (resuming after `Last-Event-ID`) or a
//! long-poll, both reading the document's event log through a subscription.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};

use super::answers::{allow_origin, event_stream, get_answer};
use super::{MAX_POLL_EVENTS, MAX_POLL_SECONDS};
use crate::error::HttpError;
use crate::events::{subscribe, Follow, Followed, ProducerEvent, Subscription};
use crate::metrics::ConnMeters;
use crate::routes::AppState;
use crate::session::SessionHandle;

/// Viewer events: SSE for `Accept: text/event-stream`, a long-poll otherwise.
pub(super) async fn events(
    state: &AppState,
    doc: Arc<SessionHandle>,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Response, HttpError> {
    let since_text = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.get("since").cloned());
    let since = match since_text {
        None => 0,
        Some(s) => s.trim().parse::<u64>().map_err(|_| {
            HttpError::bad_request(format!(
                "the event cursor must be a sequence number, not {s:?}"
            ))
            .with_field("since")
        })?,
    };
    let sub = subscribe(&doc, since).await?;
    let since = sub.since;
    let sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if sse {
        let meters = state.metrics.connection(crate::metrics::ConnKind::Sse);
        let mut resp = Sse::new(sse_stream(doc, since, sub, meters))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response();
        allow_origin(state, headers, &mut resp);
        return Ok(event_stream(resp));
    }
    let timeout = match query.get("timeout") {
        None => 25,
        Some(t) => t.parse::<u64>().map_err(|_| {
            HttpError::bad_request(format!("timeout must be whole seconds, not {t:?}"))
                .with_field("timeout")
        })?,
    }
    .min(MAX_POLL_SECONDS);
    let (events, gap) = long_poll(sub, Duration::from_secs(timeout)).await;
    let next = events.last().map_or(since, |e| e.seq);
    let mut body = String::from("{\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&e.json);
    }
    body.push_str(&format!("],\"next\":{next},\"gap\":{gap}}}"));
    Ok(get_answer(state, headers, body))
}

/// Waits up to `wait` for events after the subscription's cursor.
pub(super) async fn long_poll(mut sub: Subscription, wait: Duration) -> (Vec<ProducerEvent>, bool) {
    let gap = sub.gap;
    let mut events = std::mem::take(&mut sub.backlog);
    let last = events.last().map(|e| e.seq);
    if events.is_empty() {
        if let Ok(Ok(e)) = tokio::time::timeout(wait, sub.live.recv()).await {
            events.push(e);
        }
    }
    // Whatever else is already there, in order, without waiting.
    while events.len() < MAX_POLL_EVENTS {
        match sub.live.try_recv() {
            Ok(e) if last.is_none_or(|l| e.seq > l) => events.push(e),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    events.truncate(MAX_POLL_EVENTS);
    (events, gap)
}

/// The SSE stream: the backlog, then live events ([`Follow`]), a gap as a `gap` event.
/// `meters` count its events (and their data's bytes) and, dropped with the stream, its
/// end.
pub(super) fn sse_stream(
    doc: Arc<SessionHandle>,
    since: u64,
    sub: Subscription,
    meters: ConnMeters,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let start = (Follow::new(doc, since, sub), meters);
    stream::unfold(start, |(mut follow, meters)| async move {
        let (event, bytes) = match follow.next().await? {
            Followed::Gap => (SseEvent::default().event("gap").data("{}"), 2),
            Followed::Event(e) => (to_sse(&e), e.json.len()),
        };
        meters.messages_out.inc();
        meters
            .bytes_out
            .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
        Some((Ok(event), (follow, meters)))
    })
}

pub(super) fn to_sse(e: &ProducerEvent) -> SseEvent {
    SseEvent::default().id(e.seq.to_string()).data(&*e.json)
}
