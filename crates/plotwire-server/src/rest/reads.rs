//! Reading a source back, in the shapes BokehJS's web data sources take
//! (`docs/rest-api.md`, "Reading back"):
//! - one answer, to a `GET` or to the empty `POST` that an `AjaxDataSource` sends by
//!   default: the cursor envelope `{"since","next","reset","rows","data"}`, or with
//!   `format=columns` the bare column object that BokehJS assigns as the source's `data`;
//! - with `Accept: text/event-stream`, an SSE stream for a `ServerSentDataSource`: every
//!   change of the source is one message, its `id:` the cursor to resume after
//!   (`Last-Event-ID`), its `data:` a column object. With `mode=append` (the default) a
//!   message holds the rows after the previous one; with `mode=replace` it holds the
//!   whole content.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt as _};

use super::answers::{allow_origin, event_stream, get_answer};
use crate::api::RowsRead;
use crate::error::HttpError;
use crate::published::read_rows;
use crate::routes::AppState;
use crate::session::SessionHandle;

/// How long a browser waits before it reopens a data stream that ended (SSE `retry:`),
/// unless the request says (`retry=<ms>`).
const RETRY: Duration = Duration::from_secs(1);

/// How often an idle data stream sends a comment, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What each message of a data stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The rows after the previous message (the whole content after a replace).
    Append,
    /// The whole content.
    Replace,
}

/// Answers a read of `source`: one answer, or an SSE stream for `Accept: text/event-stream`.
pub(super) async fn read(
    state: &AppState,
    doc: Arc<SessionHandle>,
    source: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    who: Option<&crate::limits::Who>,
) -> Result<Response, HttpError> {
    let sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if sse {
        let since = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| query.get("since").cloned());
        let since = parse_since(since.as_deref())?;
        let mode = match query.get("mode").map(String::as_str) {
            None | Some("append") => Mode::Append,
            Some("replace") => Mode::Replace,
            Some(other) => {
                return Err(HttpError::bad_request(format!(
                    "mode must be append or replace, not {other:?}"
                ))
                .with_field("mode"))
            }
        };
        // The first read answers 404 for an unknown source before the stream starts.
        let retry = match query.get("retry") {
            None => RETRY,
            Some(ms) => {
                let ms = ms.trim().parse::<u64>().ok().filter(|ms| {
                    (plotwire_api::live::MIN_RETRY_MS..=plotwire_api::live::MAX_DELAY_MS)
                        .contains(ms)
                });
                Duration::from_millis(ms.ok_or_else(|| {
                    HttpError::bad_request(format!(
                        "retry must be {} to {} ms",
                        plotwire_api::live::MIN_RETRY_MS,
                        plotwire_api::live::MAX_DELAY_MS
                    ))
                    .with_field("retry")
                })?)
            }
        };
        let envelopes = parse_format(query, Format::Columns)? == Format::Envelope;
        let first = read_rows(
            &doc,
            source,
            if mode == Mode::Append { since } else { None },
        )
        .await?;
        let slot = crate::routes::connection_slot(state, who)?;
        let stream = data_stream(doc, source.to_owned(), mode, first, retry, envelopes)
            // The client's connection slot is held as long as the stream is.
            .map(move |event| {
                let _held = &slot;
                event
            });
        let mut resp = Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
            .into_response();
        allow_origin(state, headers, &mut resp);
        return Ok(event_stream(resp));
    }
    let since = parse_since(query.get("since").map(String::as_str))?;
    let rows = read_rows(&doc, source, since).await?;
    let body = match parse_format(query, Format::Envelope)? {
        Format::Columns => rows.data,
        Format::Envelope => envelope(&rows),
    };
    Ok(get_answer(state, headers, body))
}

/// What a read answers (`format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// The bare column object (`format=columns`; a data stream's default).
    Columns,
    /// `{"since","next","reset","rows","data"}` (`format=envelope`, or `json`; a single
    /// read's default).
    Envelope,
}

fn parse_format(query: &HashMap<String, String>, default: Format) -> Result<Format, HttpError> {
    match query.get("format").map(String::as_str) {
        None => Ok(default),
        Some("json" | "envelope") => Ok(Format::Envelope),
        Some("columns") => Ok(Format::Columns),
        Some(other) => Err(HttpError::bad_request(format!(
            "format must be json or columns (or envelope, the same as json), not {other:?}"
        ))
        .with_field("format")),
    }
}

fn parse_since(text: Option<&str>) -> Result<Option<u64>, HttpError> {
    text.map(|s| {
        s.trim().parse::<u64>().map_err(|_| {
            HttpError::bad_request(format!("since must be a sequence number, not {s:?}"))
                .with_field("since")
        })
    })
    .transpose()
}

/// `{"since","next","reset","rows","data"}`.
fn envelope(r: &RowsRead) -> String {
    format!(
        "{{\"since\":{},\"next\":{},\"reset\":{},\"rows\":{},\"data\":{}}}",
        r.since.map_or("null".to_owned(), |s| s.to_string()),
        r.next,
        r.reset,
        r.rows,
        r.data
    )
}

fn message(rows: &RowsRead, envelopes: bool) -> SseEvent {
    let event = SseEvent::default().id(rows.next.to_string());
    if envelopes {
        event.data(envelope(rows))
    } else {
        event.data(&rows.data)
    }
}

/// The data stream: `first` (with the `retry:` delay), then one message per change of the
/// source, until the document ends or the source goes away.
fn data_stream(
    doc: Arc<SessionHandle>,
    source: String,
    mode: Mode,
    first: RowsRead,
    retry: Duration,
    envelopes: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    struct St {
        doc: Arc<SessionHandle>,
        source: String,
        mode: Mode,
        cursor: u64,
        first: Option<RowsRead>,
        changed: tokio::sync::watch::Receiver<crate::session::DocStatus>,
        ended: tokio::sync::watch::Receiver<Option<u16>>,
    }
    let st = St {
        changed: doc.watch_status(),
        ended: doc.ended(),
        cursor: first.next,
        first: Some(first),
        doc,
        source,
        mode,
    };
    stream::unfold(st, move |mut st| async move {
        if let Some(first) = st.first.take() {
            return Some((Ok(message(&first, envelopes).retry(retry)), st));
        }
        // Bounded by the document's changes: each turn waits for one.
        loop {
            tokio::select! {
                changed = st.changed.changed() => changed.ok()?,
                _ = st.ended.wait_for(Option::is_some) => return None,
            }
            let rows = read_rows(&st.doc, &st.source, Some(st.cursor)).await.ok()?;
            st.cursor = rows.next;
            if rows.rows == 0 && !rows.reset {
                // Another part of the document changed.
                continue;
            }
            let rows = match st.mode {
                Mode::Append => rows,
                Mode::Replace => read_rows(&st.doc, &st.source, None).await.ok()?,
            };
            st.cursor = rows.next;
            return Some((Ok(message(&rows, envelopes)), st));
        }
    })
}
