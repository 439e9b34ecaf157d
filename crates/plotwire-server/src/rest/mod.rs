//! The REST API v1 (`docs/rest-api.md`): an adapter that turns HTTP requests into
//! [`Request`]s for a published document's owner and its answers into JSON. Bodies are
//! decoded here, off the owner; everything else happens there, in order.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request as HttpRequest, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use plotwire_protocol::event::DocJson;
use serde_json::Value as Json;

use crate::access::{self, Allowed, Credentials, Level};
use crate::api::{Answer, Request, Streamvis};
use crate::error::HttpError;
use crate::published::{check_name, find};
use crate::retention::Retention;
use answers::{get_answer, no_store, preflight};
use bodies::{decode_columns, decode_patches, decode_published, decode_set};

use crate::routes::AppState;
pub use bodies::body_error;

mod answers;
mod bodies;
mod events;
mod exports;
pub use exports::EXPORT_WAIT;
mod reads;
mod share;

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

async fn list(State(state): Shared, headers: HeaderMap) -> Result<Response, HttpError> {
    let prefix = &state.config.prefix;
    let creds = Credentials::of_request(&headers, &HashMap::new());
    let rules = state.access.as_ref().map(|a| a.rules());
    if let Some(rules) = &rules {
        rules.check_presented(&creds)?;
    }
    let now = access::now();
    let docs: Vec<Json> = state
        .registry
        .list_published()
        .into_iter()
        .filter(|d| {
            rules
                .as_ref()
                .is_none_or(|r| r.authorize(&creds, Level::Read, &d.name, now).is_ok())
        })
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
    Ok(get_answer(&state, &headers, body))
}

/// What a path under `/documents/` addresses.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Document,
    Doc,
    Export(exports::Kind),
    Events,
    Source(&'a str, Option<&'a str>),
    Model(&'a str, &'a str),
    Streamvis(&'a str),
    Share,
}

impl Target<'_> {
    /// What the target is, and the methods it takes, for a 405's message.
    fn describe(&self) -> String {
        match self {
            Target::Document => "a document (GET, PUT, DELETE)".to_owned(),
            Target::Doc => "a document's DocJson (GET)".to_owned(),
            Target::Export(exports::Kind::Page) => "a document's standalone page (GET)".to_owned(),
            Target::Export(exports::Kind::Item) => "a document's json_item (GET)".to_owned(),
            Target::Events => "a document's events (GET)".to_owned(),
            Target::Source(s, None) => {
                format!("source {s:?} (GET or an empty POST to read, PUT to replace)")
            }
            Target::Source(s, Some(a)) => format!("{a:?} of source {s:?} (POST)"),
            Target::Model(m, p) => format!("property {p:?} of model {m:?} (PUT)"),
            Target::Streamvis(c) => format!("streamvis call {c:?} (POST)"),
            Target::Share => "a document's share links (POST)".to_owned(),
        }
    }

    /// What access `method` on this target needs; `None` for a method it does not take.
    fn level(&self, method: &Method) -> Option<Level> {
        use Target::*;
        Some(match (method, self) {
            (&Method::PUT | &Method::DELETE, Document) => Level::Publish,
            (&Method::GET, Document | Doc | Export(_) | Events | Source(_, None)) => Level::Read,
            (&Method::POST, Source(_, None)) => Level::Read,
            (&Method::PUT, Source(_, None) | Model(..)) => Level::Write,
            (&Method::POST, Source(_, Some(_))) => Level::Write,
            (&Method::POST, Streamvis("layout") | Share) => Level::Publish,
            (&Method::POST, Streamvis(_)) => Level::Write,
            _ => return None,
        })
    }
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
        ["export.html"] => Target::Export(exports::Kind::Page),
        ["json_item"] => Target::Export(exports::Kind::Item),
        ["events"] => Target::Events,
        ["sources", source] => Target::Source(source, None),
        ["sources", source, action] => Target::Source(source, Some(action)),
        ["models", model, prop] => Target::Model(model, prop),
        ["streamvis", call] => Target::Streamvis(call),
        ["share"] => Target::Share,
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
    let who = parts.extensions.get::<crate::limits::Who>().cloned();
    let peer = crate::forwarded::Peer::of(&parts.extensions);
    let headers = parts.headers;
    let method = parts.method;
    let (name, target) = split(&path)?;
    if method == Method::OPTIONS {
        let post_reads = matches!(target, Target::Source(_, None));
        return Ok(preflight(&state, &headers, post_reads));
    }
    check_name(name)?;
    // Credentials are read only when access control is on: REST writes are a hot path.
    let allowed = match (state.access.as_deref(), target.level(&method)) {
        (Some(rules), Some(level)) => {
            let creds = Credentials::of_request(&headers, &query);
            access::authorize(Some(rules), &creds, level, name)?
        }
        _ => Allowed::Open,
    };
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
            let retention = Retention::from_query(&query)?;
            let body = read_body().await?;
            publish(&state, name, &body, retention, key).await
        }
        (&Method::DELETE, Target::Document) => {
            crate::published::delete(&state, name).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::GET, Target::Document) => {
            let doc = find(&state, name)?;
            json_answer(&state, &headers, doc.rest(Request::Summary, None).await?)
        }
        (&Method::GET, Target::Doc) => {
            let doc = find(&state, name)?;
            json_answer(&state, &headers, doc.rest(Request::DocJson, None).await?)
        }
        (&Method::GET, Target::Export(kind)) => {
            let doc = find(&state, name)?;
            let view = state.client_view(peer, &headers);
            let grant = state.access.as_ref().and_then(|a| {
                a.rules()
                    .carried_grant(&allowed, name, access::EXPORT_GRANT_SECONDS)
            });
            let asked = exports::Asked { name, kind, grant };
            exports::export(&state, doc, asked, &headers, &view, &query).await
        }
        (&Method::GET, Target::Events) => {
            let doc = find(&state, name)?;
            events::events(&state, doc, &headers, &query).await
        }
        (&Method::GET, Target::Source(source, None)) => {
            let doc = find(&state, name)?;
            reads::read(&state, doc, source, &headers, &query, who.as_ref()).await
        }
        // An AjaxDataSource polls with an empty POST by default.
        (&Method::POST, Target::Source(source, None)) => {
            let doc = find(&state, name)?;
            if !read_body().await?.is_empty() {
                return Err(HttpError::bad_request(
                    "a POST to a source reads it and takes no body: send rows to .../stream",
                ));
            }
            reads::read(&state, doc, source, &headers, &query, who.as_ref()).await
        }
        (&Method::PUT, Target::Source(source, None)) => {
            let doc = find(&state, name)?;
            let body = read_body().await?;
            let columns = decode_columns(&state, &headers, &body)?;
            count_points(&state, who.as_ref(), &columns)?;
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
                "stream" => {
                    let columns = decode_columns(&state, &headers, &body)?;
                    count_points(&state, who.as_ref(), &columns)?;
                    Request::Stream {
                        source,
                        columns,
                        rollover: rollover(&query)?,
                    }
                }
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
        (&Method::POST, Target::Share) => share::create(&state, name, &query),
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
            format!("{m} is not allowed on {}", t.describe()),
        )),
    }
}

/// Counts the rows of a write against its client's `--limit-points` (429 past it).
fn count_points(
    state: &AppState,
    who: Option<&crate::limits::Who>,
    columns: &crate::api::Columns,
) -> Result<(), HttpError> {
    let (Some(limits), Some(who)) = (&state.limits, who) else {
        return Ok(());
    };
    Ok(limits.points(who, crate::limits::column_rows(columns))?)
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

async fn publish(
    state: &Arc<AppState>,
    name: &str,
    body: &[u8],
    retention: Retention,
    key: Option<String>,
) -> Result<Response, HttpError> {
    let (doc, spec) = decode_published(name, body, state.config.max_decoded_bytes)?;
    publish_doc(state, name, doc, spec, retention, key).await
}

/// Publishes `doc` under `name` ([`crate::published::publish`]): 201 when created, 200
/// when its content was replaced.
async fn publish_doc(
    state: &Arc<AppState>,
    name: &str,
    doc: DocJson,
    spec: Option<plotwire_spec::Spec>,
    retention: Retention,
    key: Option<String>,
) -> Result<Response, HttpError> {
    let done = crate::published::publish(state, name, doc, spec, retention, key).await?;
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = serde_json::json!({ "name": name, "url": done.url, "seq": done.seq });
    Ok((status, axum::Json(body)).into_response())
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
                let spec = plotwire_spec::streamvis::layout_spec(&layout.grid)
                    .map_err(crate::published::spec_error)?;
                let doc = crate::published::spec_doc_json(&spec)?;
                return publish_doc(state, name, doc, Some(spec), Retention::default(), key).await;
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
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_083_200 + 3661);
        assert_eq!(rfc3339(t), "2026-12-01T01:01:01Z");
    }
}
