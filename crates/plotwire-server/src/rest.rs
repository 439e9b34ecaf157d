//! The REST API v1 (`docs/rest-api.md`): an adapter that turns HTTP requests into
//! [`Request`]s for a published document's owner and its answers into JSON. Bodies are
//! decoded here, off the owner; everything else happens there, in order.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request as HttpRequest, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream};
use plotwire_document::Document;
use plotwire_protocol::codec::{decode_value, Buffers};
use plotwire_protocol::event::{decode_doc, DocJson};
use plotwire_protocol::Value;
use serde_json::Value as Json;
use tokio::sync::broadcast::error::RecvError;

use crate::api::{Answer, Columns, Patches, Request, Streamvis};
use crate::error::HttpError;
use crate::events::{ProducerEvent, Subscription};
use crate::published::check_name;
use crate::routes::AppState;
use crate::session::SessionHandle;

type Shared = State<Arc<AppState>>;

/// Longest idempotency key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;

/// Longest long-poll wait, in seconds.
pub const MAX_POLL_SECONDS: u64 = 60;

/// Most events one long-poll answer carries.
pub const MAX_POLL_EVENTS: usize = 1000;

/// The `/api/v1` routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/documents", get(list))
        .route("/documents/{*path}", axum::routing::any(document))
}

async fn openapi() -> Response {
    no_store(
        (
            [(header::CONTENT_TYPE, "application/json")],
            include_str!("openapi.json"),
        )
            .into_response(),
    )
}

async fn list(State(state): Shared, headers: HeaderMap) -> Response {
    let prefix = &state.config.prefix;
    let docs: Vec<Json> = state
        .registry
        .list_published()
        .into_iter()
        .map(|d| {
            serde_json::json!({
                "name": d.name,
                "title": d.status.title,
                "updated": rfc3339(d.status.updated),
                "url": format!("{prefix}/d/{}/", d.name),
                "views": d.status.views,
                "connections": d.connections,
            })
        })
        .collect();
    let body = serde_json::json!({ "documents": docs }).to_string();
    get_answer(&state, &headers, body)
}

/// What a path under `/documents/` addresses.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Document,
    Doc,
    Events,
    Source(&'a str, Option<&'a str>),
    Model(&'a str, &'a str),
    Streamvis(&'a str),
}

/// Splits `runs/exp42/sources/loss/stream` into the name and what follows it.
fn split(path: &str) -> Result<(&str, Target<'_>), HttpError> {
    let path = path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    let cut = segments
        .iter()
        .position(|s| crate::published::RESERVED_SEGMENTS.contains(s))
        .unwrap_or(segments.len());
    let name_len = segments[..cut].iter().map(|s| s.len()).sum::<usize>() + cut.saturating_sub(1);
    let name = &path[..name_len];
    let rest = &segments[cut..];
    let target = match rest {
        [] => Target::Document,
        ["doc"] => Target::Doc,
        ["events"] => Target::Events,
        ["sources", source] => Target::Source(source, None),
        ["sources", source, action] => Target::Source(source, Some(action)),
        ["models", model, prop] => Target::Model(model, prop),
        ["streamvis", call] => Target::Streamvis(call),
        _ => {
            return Err(HttpError::not_found(format!(
                "no such route under a document: /{}",
                rest.join("/")
            )))
        }
    };
    Ok((name, target))
}

async fn document(
    State(state): Shared,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    request: HttpRequest,
) -> Result<Response, HttpError> {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let method = parts.method;
    if method == Method::OPTIONS {
        return Ok(preflight(&state, &headers));
    }
    let (name, target) = split(&path)?;
    check_name(name)?;
    let key = idempotency_key(&headers)?;
    let read_body = || async {
        axum::body::to_bytes(body, state.config.max_body_bytes)
            .await
            .map_err(|_| {
                HttpError::too_large(format!(
                    "the body is larger than {} bytes (--max-body-bytes)",
                    state.config.max_body_bytes
                ))
            })
    };
    match (&method, target) {
        (&Method::PUT, Target::Document) => {
            let body = read_body().await?;
            publish(&state, name, &body, key).await
        }
        (&Method::DELETE, Target::Document) => {
            if state.registry.unpublish(name) {
                Ok(StatusCode::NO_CONTENT.into_response())
            } else {
                Err(missing(name))
            }
        }
        (&Method::GET, Target::Document) => {
            let doc = find(&state, name)?;
            json_answer(&state, &headers, doc.rest(Request::Summary, None).await?)
        }
        (&Method::GET, Target::Doc) => {
            let doc = find(&state, name)?;
            json_answer(&state, &headers, doc.rest(Request::DocJson, None).await?)
        }
        (&Method::GET, Target::Events) => {
            let doc = find(&state, name)?;
            events(&state, doc, &headers, &query).await
        }
        (&Method::GET, Target::Source(source, None)) => {
            let doc = find(&state, name)?;
            let since = match query.get("since") {
                None => None,
                Some(s) => Some(s.parse::<u64>().map_err(|_| {
                    HttpError::bad_request(format!("since must be a sequence number, not {s:?}"))
                        .with_field("since")
                })?),
            };
            let request = Request::Read {
                source: source.to_owned(),
                since,
            };
            json_answer(&state, &headers, doc.rest(request, None).await?)
        }
        (&Method::PUT, Target::Source(source, None)) => {
            let doc = find(&state, name)?;
            let body = read_body().await?;
            let columns = decode_columns(&state, &headers, &body)?;
            let request = Request::Replace {
                source: source.to_owned(),
                columns,
            };
            written(doc.rest(request, key).await?)
        }
        (&Method::POST, Target::Source(source, Some(action))) => {
            let doc = find(&state, name)?;
            let body = read_body().await?;
            let source = source.to_owned();
            let request = match action {
                "stream" => Request::Stream {
                    source,
                    columns: decode_columns(&state, &headers, &body)?,
                    rollover: rollover(&query)?,
                },
                "patch" => Request::Patch {
                    source,
                    patches: decode_patches(&body)?,
                },
                "clear" => Request::Clear { source },
                other => {
                    return Err(HttpError::not_found(format!(
                        "no source action {other:?}: use stream, patch or clear"
                    )))
                }
            };
            written(doc.rest(request, key).await?)
        }
        (&Method::POST, Target::Streamvis(call)) => {
            let body = read_body().await?;
            streamvis(&state, name, call, &body, key).await
        }
        (&Method::PUT, Target::Model(model, prop)) => {
            let doc = find(&state, name)?;
            let body = read_body().await?;
            let (value, view) = decode_set(&body)?;
            let request = Request::Set {
                model: model.to_owned(),
                prop: prop.to_owned(),
                value,
                view,
            };
            written(doc.rest(request, key).await?)
        }
        (m, t) => Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{m} is not allowed on {t:?}"),
        )),
    }
}

fn missing(name: &str) -> HttpError {
    HttpError::not_found(format!("no published document named {name:?}")).with_field("name")
}

fn find(state: &AppState, name: &str) -> Result<Arc<SessionHandle>, HttpError> {
    state.registry.published(name).ok_or_else(|| missing(name))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, HttpError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        HttpError::bad_request(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_BYTES} printable ASCII characters"
        ))
        .with_field("Idempotency-Key")
    };
    let s = v.to_str().map_err(|_| bad())?;
    if s.is_empty() || s.len() > MAX_KEY_BYTES || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(s.to_owned()))
}

fn rollover(query: &HashMap<String, String>) -> Result<Option<usize>, HttpError> {
    match query.get("rollover") {
        None => Ok(None),
        Some(s) => s.parse::<usize>().map(Some).map_err(|_| {
            HttpError::bad_request(format!("rollover must be a row count, not {s:?}"))
                .with_field("rollover")
        }),
    }
}

fn parse_json(body: &[u8]) -> Result<Json, HttpError> {
    serde_json::from_slice(body)
        .map_err(|e| HttpError::bad_request(format!("the body is not valid JSON: {e}")))
}

/// A DocJson, a `json_item` (its `doc`) or a dashboard spec, told apart by their keys:
/// `roots` is a DocJson, `doc` with `root_id` a json_item, anything else a spec (which
/// is returned too).
fn decode_published(
    name: &str,
    body: &[u8],
    max_decoded: usize,
) -> Result<(DocJson, Option<plotwire_spec::Spec>), HttpError> {
    let json = parse_json(body)?;
    let Json::Object(obj) = &json else {
        return Err(HttpError::bad_request(
            "the body must be a JSON object: a dashboard spec, a json_item or a DocJson",
        ));
    };
    let buffers = Buffers::new().with_inflate_limit(max_decoded);
    let bad = |e: plotwire_protocol::codec::CodecError| {
        HttpError::bad_request(format!("the document is not valid: {e}")).with_field("doc")
    };
    let mut spec = None;
    let mut doc = if obj.contains_key("doc") && obj.contains_key("root_id") {
        // json_item output; its title is always "" (bokeh.embed.json_item).
        let doc = obj.get("doc").unwrap_or(&Json::Null);
        decode_doc(doc, &buffers).map_err(bad)?
    } else if obj.contains_key("roots") {
        decode_doc(&json, &buffers).map_err(bad)?
    } else {
        // A dashboard spec (docs/dashboard-spec.md).
        let bad_spec = |e: plotwire_spec::SpecError| {
            HttpError::bad_request(format!("the dashboard spec is not valid: {e}"))
                .with_field(e.path().to_owned())
        };
        let parsed = plotwire_spec::parse(body).map_err(bad_spec)?;
        let built = plotwire_spec::build(&parsed).map_err(bad_spec)?;
        spec = Some(parsed);
        decode_doc(&built.doc, &buffers).map_err(bad)?
    };
    if doc.title.as_deref().is_none_or(str::is_empty) {
        doc.title = Some(name.to_owned());
    }
    Ok((doc, spec))
}

async fn publish(
    state: &Arc<AppState>,
    name: &str,
    body: &[u8],
    key: Option<String>,
) -> Result<Response, HttpError> {
    let (doc, spec) = decode_published(name, body, state.config.max_decoded_bytes)?;
    publish_doc(state, name, doc, spec, key).await
}

/// Publishes `doc` under `name`: creates the document, or replaces its content.
async fn publish_doc(
    state: &Arc<AppState>,
    name: &str,
    doc: DocJson,
    spec: Option<plotwire_spec::Spec>,
    key: Option<String>,
) -> Result<Response, HttpError> {
    let url = format!("{}/d/{name}/", state.config.prefix);
    if state.registry.published(name).is_none() {
        let mut built = Document::from_doc_json_limited(doc.clone(), state.config.max_models)
            .map_err(|e| HttpError::bad_request(format!("the document is not valid: {e}")))?;
        crate::subscriptions::subscribe_ui_events(&mut built);
        let (_, created) = state
            .registry
            .publish(name, built, spec.clone(), state.config.max_documents)
            .map_err(|e| HttpError::new(StatusCode::INSUFFICIENT_STORAGE, e.to_string()))?;
        if created {
            let body = serde_json::json!({ "name": name, "url": url, "seq": 0 });
            return Ok((StatusCode::CREATED, axum::Json(body)).into_response());
        }
    }
    let handle = find(state, name)?;
    let answer = handle
        .rest(
            Request::Publish {
                doc: Box::new(doc),
                spec: spec.map(Box::new),
            },
            key,
        )
        .await?;
    let seq = match answer {
        Answer::Written { seq, .. } => seq,
        _ => 0,
    };
    let body = serde_json::json!({ "name": name, "url": url, "seq": seq });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// The streamvis calls. `layout` creates the document when there is none.
async fn streamvis(
    state: &Arc<AppState>,
    name: &str,
    call: &str,
    body: &[u8],
    key: Option<String>,
) -> Result<Response, HttpError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Layout {
        grid: plotwire_spec::NamedMap<[u32; 4]>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Tandem {
        plot: String,
        values: Vec<f64>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Scatter {
        plot: String,
        points: Vec<Vec<f64>>,
        spatial_dim: usize,
        #[serde(default = "yes")]
        append: bool,
    }
    fn yes() -> bool {
        true
    }
    fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, HttpError> {
        serde_json::from_slice(body)
            .map_err(|e| HttpError::bad_request(format!("the body is not valid: {e}")))
    }
    let call = match call {
        "layout" => {
            let layout: Layout = parse(body)?;
            if state.registry.published(name).is_none() {
                let spec = plotwire_spec::streamvis::layout_spec(&layout.grid).map_err(|e| {
                    HttpError::bad_request(e.to_string()).with_field(e.path().to_owned())
                })?;
                let built = plotwire_spec::build(&spec).map_err(|e| {
                    HttpError::bad_request(e.to_string()).with_field(e.path().to_owned())
                })?;
                let doc = decode_doc(&built.doc, &Buffers::new())
                    .map_err(|e| HttpError::bad_request(e.to_string()))?;
                return publish_doc(state, name, doc, Some(spec), key).await;
            }
            Streamvis::Layout(layout.grid)
        }
        "tandem_lines" => {
            let t: Tandem = parse(body)?;
            Streamvis::TandemLines {
                plot: t.plot,
                values: t.values,
            }
        }
        "scatter" => {
            let s: Scatter = parse(body)?;
            Streamvis::Scatter {
                plot: s.plot,
                points: s.points,
                spatial_dim: s.spatial_dim,
                append: s.append,
            }
        }
        "clear" => {
            if state.registry.published(name).is_none() {
                // Nothing laid out yet: nothing to clear.
                return written(Answer::Written { seq: 0, rows: None });
            }
            Streamvis::Clear
        }
        other => {
            return Err(HttpError::not_found(format!(
                "no streamvis call {other:?}: use layout, tandem_lines, scatter or clear"
            )))
        }
    };
    let doc = find(state, name)?;
    written(doc.rest(Request::Streamvis(call), key).await?)
}

/// Columns from a body of any accepted format (`crate::body`), decoded off the owner.
fn decode_columns(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Columns, HttpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(crate::body::JSON);
    let limits = crate::body::BodyLimits {
        max_body_bytes: state.config.max_body_bytes,
        ..crate::body::BodyLimits::default()
    };
    crate::body::decode(content_type, body, &limits).map_err(body_error)
}

/// A body error as HTTP: 415 for an unknown type, 413 past the size limit, else 400;
/// always naming the field to blame when there is one.
pub fn body_error(e: crate::body::BodyError) -> HttpError {
    use crate::body::BodyError;
    let status = match &e {
        BodyError::UnsupportedType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        BodyError::Limit {
            limit: "max_body_bytes",
            ..
        } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let field = e.field();
    let err = HttpError::new(status, e.to_string());
    match field {
        Some(f) => err.with_field(f),
        None => err,
    }
}

/// `{"col": [[index, value], ...]}`.
fn decode_patches(body: &[u8]) -> Result<Patches, HttpError> {
    let Json::Object(obj) = parse_json(body)? else {
        return Err(HttpError::bad_request(
            "a patch is a JSON object of column name → [[index, value], ...]",
        ));
    };
    let buffers = Buffers::new();
    let mut out = Vec::with_capacity(obj.len());
    for (name, pairs) in obj {
        let Json::Array(pairs) = pairs else {
            return Err(
                HttpError::bad_request(format!("patches of {name:?} must be a list"))
                    .with_field(name),
            );
        };
        let mut items = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match pair {
                Json::Array(p) if p.len() == 2 => {
                    let index = decode_value(&p[0], &buffers).map_err(|e| {
                        HttpError::bad_request(e.to_string()).with_field(name.clone())
                    })?;
                    let value = decode_value(&p[1], &buffers).map_err(|e| {
                        HttpError::bad_request(e.to_string()).with_field(name.clone())
                    })?;
                    items.push((index, value));
                }
                _ => {
                    return Err(HttpError::bad_request(format!(
                        "each patch of {name:?} is [index, value]"
                    ))
                    .with_field(name))
                }
            }
        }
        out.push((name, items));
    }
    Ok(out)
}

/// `{"value": ..., "view": "..."}`.
fn decode_set(body: &[u8]) -> Result<(Value, Option<String>), HttpError> {
    let Json::Object(mut obj) = parse_json(body)? else {
        return Err(HttpError::bad_request(
            "the body is {\"value\": ..., \"view\": ...}",
        ));
    };
    for key in obj.keys() {
        if key != "value" && key != "view" {
            return Err(
                HttpError::bad_request(format!("unknown field {key:?}")).with_field(key.clone())
            );
        }
    }
    let value = obj
        .remove("value")
        .ok_or_else(|| HttpError::bad_request("\"value\" is missing").with_field("value"))?;
    let value = decode_value(&value, &Buffers::new())
        .map_err(|e| HttpError::bad_request(e.to_string()).with_field("value"))?;
    let view = match obj.remove("view") {
        None | Some(Json::Null) => None,
        Some(Json::String(v)) => Some(v),
        Some(_) => {
            return Err(HttpError::bad_request("\"view\" must be a view id").with_field("view"))
        }
    };
    Ok((value, view))
}

fn written(answer: Answer) -> Result<Response, HttpError> {
    let body = match answer {
        Answer::Written {
            seq,
            rows: Some(rows),
        } => serde_json::json!({ "seq": seq, "rows": rows }),
        Answer::Written { seq, rows: None } => serde_json::json!({ "seq": seq }),
        _ => serde_json::json!({}),
    };
    Ok(axum::Json(body).into_response())
}

fn json_answer(
    state: &AppState,
    headers: &HeaderMap,
    answer: Answer,
) -> Result<Response, HttpError> {
    match answer {
        Answer::Json(body) => Ok(get_answer(state, headers, body)),
        _ => Err(HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected answer from the document",
        )),
    }
}

/// A GET answer: JSON, never cached, readable from the allowed origins.
fn get_answer(state: &AppState, headers: &HeaderMap, body: String) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    allow_origin(state, headers, &mut resp);
    no_store(resp)
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Sets `Access-Control-Allow-Origin` when the request's origin may read the answer.
fn allow_origin(state: &AppState, headers: &HeaderMap, resp: &mut Response) {
    let origins = &state.config.cors_origins;
    let h = resp.headers_mut();
    if origins.iter().any(|o| o == "*") {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else if let Some(origin) = headers.get(header::ORIGIN) {
        if origin
            .to_str()
            .is_ok_and(|o| origins.iter().any(|a| a == o))
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

/// A CORS preflight: GETs only, with the headers pollers send.
fn preflight(state: &AppState, headers: &HeaderMap) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    allow_origin(state, headers, &mut resp);
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Last-Event-ID, Cache-Control"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    resp
}

/// Viewer events: SSE for `Accept: text/event-stream`, a long-poll otherwise.
async fn events(
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
    let sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if sse {
        let mut resp = Sse::new(sse_stream(doc, since, sub))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response();
        allow_origin(state, headers, &mut resp);
        return Ok(no_store(resp));
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

async fn subscribe(doc: &SessionHandle, since: u64) -> Result<Subscription, HttpError> {
    match doc.rest(Request::Subscribe { since }, None).await? {
        Answer::Subscribed(sub) => Ok(sub),
        _ => Err(HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected answer from the document",
        )),
    }
}

/// Waits up to `wait` for events after the subscription's cursor.
async fn long_poll(mut sub: Subscription, wait: Duration) -> (Vec<ProducerEvent>, bool) {
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

/// The SSE stream: the backlog, then live events; a subscriber that falls behind the
/// live channel re-reads from the log, so nothing is lost or repeated.
fn sse_stream(
    doc: Arc<SessionHandle>,
    since: u64,
    sub: Subscription,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    struct St {
        doc: Arc<SessionHandle>,
        last: u64,
        pending: std::collections::VecDeque<SseEvent>,
        live: Option<tokio::sync::broadcast::Receiver<ProducerEvent>>,
    }
    let mut pending = std::collections::VecDeque::new();
    if sub.gap {
        pending.push_back(SseEvent::default().event("gap").data("{}"));
    }
    let mut last = since;
    for e in sub.backlog {
        last = e.seq;
        pending.push_back(to_sse(&e));
    }
    let st = St {
        doc,
        last,
        pending,
        live: Some(sub.live),
    };
    stream::unfold(st, |mut st| async move {
        loop {
            if let Some(e) = st.pending.pop_front() {
                return Some((Ok(e), st));
            }
            let live = st.live.as_mut()?;
            match live.recv().await {
                Ok(e) if e.seq > st.last => {
                    st.last = e.seq;
                    return Some((Ok(to_sse(&e)), st));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    let sub = subscribe(&st.doc, st.last).await.ok()?;
                    if sub.gap {
                        st.pending
                            .push_back(SseEvent::default().event("gap").data("{}"));
                    }
                    for e in sub.backlog {
                        st.last = e.seq;
                        st.pending.push_back(to_sse(&e));
                    }
                    st.live = Some(sub.live);
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

fn to_sse(e: &ProducerEvent) -> SseEvent {
    SseEvent::default().id(e.seq.to_string()).data(&*e.json)
}

/// A time as RFC 3339 (`2026-12-01T12:00:00Z`).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_at_reserved_words() {
        assert_eq!(
            split("runs/exp42").ok(),
            Some(("runs/exp42", Target::Document))
        );
        assert_eq!(
            split("runs/exp42/sources/loss/stream").ok(),
            Some(("runs/exp42", Target::Source("loss", Some("stream"))))
        );
        assert_eq!(split("a/events").ok(), Some(("a", Target::Events)));
        assert_eq!(split("a/doc").ok(), Some(("a", Target::Doc)));
        assert_eq!(
            split("a/b/models/lr/value").ok(),
            Some(("a/b", Target::Model("lr", "value")))
        );
        assert!(split("a/sources").is_err());
    }

    #[test]
    fn dates() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_796_083_200 + 3661);
        assert_eq!(rfc3339(t), "2026-12-01T01:01:01Z");
    }
}
