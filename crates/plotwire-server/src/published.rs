//! The pages of published documents, under `/d/<name>/`, as a Bokeh app's are (spec §1):
//! the page, `autoload.js`, `metadata` and the websocket. Every page load or embed is a
//! new view, with a fresh session id and token.
//!
//! Also what every adapter (the REST API, the in-process [`crate::Plotwire`]) does to
//! publish, find and delete a document: it builds the content off the owner, then hands
//! it to the registry or to the document's owner.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::access::{self, Credentials, Level};
use crate::api::{Answer, Request as OwnerRequest};
use crate::error::HttpError;
use crate::pages;
use crate::registry::Published;
use crate::routes::{self, AppState, Target};
use crate::session::SessionHandle;
use crate::upgrade::WebSocketUpgrade;

pub use plotwire_api::names::{MAX_NAME_BYTES, MAX_NAME_SEGMENTS, RESERVED_SEGMENTS};

/// Checks a document name (`docs/rest-api.md`): one to eight segments of letters,
/// digits and `-_.~`, none starting with `.` or reserved, at most 200 bytes.
pub fn check_name(name: &str) -> Result<(), HttpError> {
    plotwire_api::names::check_name(name)
        .map_err(|e| HttpError::bad_request(e.to_string()).with_field("name"))
}

/// A spec error as HTTP 400, naming the spec field to blame.
pub fn spec_error(e: plotwire_spec::SpecError) -> HttpError {
    HttpError::bad_request(format!("the dashboard spec is not valid: {e}"))
        .with_field(e.path().to_owned())
}

/// The DocJson a dashboard spec builds.
pub fn spec_doc_json(
    spec: &plotwire_spec::Spec,
) -> Result<plotwire_protocol::event::DocJson, HttpError> {
    let built = plotwire_spec::build(spec).map_err(spec_error)?;
    plotwire_protocol::event::decode_doc(&built.doc, &plotwire_protocol::codec::Buffers::new())
        .map_err(|e| HttpError::bad_request(format!("the built document is not valid: {e}")))
}

/// A published document's content: `doc` checked (at most `max_models` models) and its
/// plots and buttons subscribed to the UI events producers hear.
pub fn published_document(
    doc: plotwire_protocol::event::DocJson,
    max_models: usize,
) -> Result<plotwire_document::Document, HttpError> {
    let mut built = plotwire_document::Document::from_doc_json_limited(doc, max_models)
        .map_err(|e| HttpError::bad_request(format!("the document is not valid: {e}")))?;
    crate::subscriptions::subscribe_ui_events(&mut built);
    Ok(built)
}

/// A document without a title is titled by its name.
pub fn default_title(doc: &mut plotwire_protocol::event::DocJson, name: &str) {
    if doc.title.as_deref().is_none_or(str::is_empty) {
        doc.title = Some(name.to_owned());
    }
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Whether the document was created; otherwise its content was replaced.
    pub created: bool,
    /// The document's sequence number after the publish (0 for a new one).
    pub seq: u64,
    /// Its page under the prefix: `{prefix}/d/{name}/`.
    pub url: String,
}

/// The page of the published document `name`: `{prefix}/d/{name}/`.
pub fn page_url(state: &AppState, name: &str) -> String {
    format!("{}/d/{name}/", state.config.prefix)
}

/// Publishes `doc` under `name`, keeping what `retention` says: creates the document
/// (answering once its first entry is stored), or has its owner replace the content.
/// The document is built and checked here, once, off the owner.
pub async fn publish(
    state: &AppState,
    name: &str,
    doc: plotwire_protocol::event::DocJson,
    spec: Option<plotwire_spec::Spec>,
    retention: crate::retention::Retention,
    key: Option<String>,
) -> Result<PublishOutcome, HttpError> {
    check_name(name)?;
    let url = page_url(state, name);
    let built = published_document(doc, state.config.max_models)?;
    check_max_rows(&built, retention)?;
    let published = state
        .registry
        .publish(name, built, spec, retention, state.config.max_documents)
        .map_err(|e| HttpError::new(axum::http::StatusCode::INSUFFICIENT_STORAGE, e.to_string()))?;
    let (handle, doc, spec, retention) = match published {
        Published::Created(handle) => {
            if let Err(e) = handle.rest(OwnerRequest::Stored, None).await {
                state.registry.unpublish(name);
                return Err(e);
            }
            return Ok(PublishOutcome {
                created: true,
                seq: 0,
                url,
            });
        }
        Published::Exists(handle, doc, spec, retention) => (handle, doc, spec, retention),
    };
    let request = OwnerRequest::Publish {
        doc,
        spec: spec.map(Box::new),
        retention,
    };
    let seq = match handle.rest(request, key).await? {
        Answer::Written { seq, .. } => seq,
        _ => 0,
    };
    Ok(PublishOutcome {
        created: false,
        seq,
        url,
    })
}

/// Refuses (400 naming `max_rows`) a document holding a source with more rows than its
/// retention's `max_rows`, as a replace with more rows is refused.
fn check_max_rows(
    doc: &plotwire_document::Document,
    retention: crate::retention::Retention,
) -> Result<(), HttpError> {
    let Some(max) = retention.max_rows() else {
        return Ok(());
    };
    for (id, m) in doc.models() {
        if m.columns.is_none() {
            continue;
        }
        let rows = crate::retention::source_rows(doc, id);
        if rows > max {
            return Err(HttpError::bad_request(format!(
                "source {id:?} holds {rows} rows, more than max_rows={max}"
            ))
            .with_field("max_rows"));
        }
    }
    Ok(())
}

/// 404 for a name that is not published.
pub fn missing(name: &str) -> HttpError {
    HttpError::not_found(format!("no published document named {name:?}")).with_field("name")
}

/// The published document `name`, or 404.
pub fn find(state: &AppState, name: &str) -> Result<Arc<SessionHandle>, HttpError> {
    state.registry.published(name).ok_or_else(|| missing(name))
}

/// Deletes the published document `name`: its owner forgets it in the store first, in
/// order after what it logged; then the registry lets the name go.
pub async fn delete(state: &AppState, name: &str) -> Result<(), HttpError> {
    let doc = find(state, name)?;
    doc.rest(OwnerRequest::Delete, None).await?;
    if state.registry.unpublish(name) {
        Ok(())
    } else {
        Err(missing(name))
    }
}

/// A source's rows after a cursor (`None`: all of them), read by `doc`'s owner.
pub async fn read_rows(
    doc: &SessionHandle,
    source: &str,
    since: Option<u64>,
) -> Result<crate::api::RowsRead, HttpError> {
    if let Some(idle) = since.and_then(|s| doc.idle_read(source, s)) {
        return Ok(idle);
    }
    let request = OwnerRequest::Read {
        source: source.to_owned(),
        since,
    };
    match doc.rest(request, None).await? {
        Answer::Rows(rows) => {
            doc.remember_idle_read(source, &rows);
            Ok(rows)
        }
        _ => Err(HttpError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected answer from the document",
        )),
    }
}

/// What a `/d/...` path asks for.
enum Page<'a> {
    Html(&'a str),
    Websocket(&'a str),
    Autoload(&'a str),
    Metadata(&'a str),
}

fn parse(path: &str) -> Page<'_> {
    let path = path.trim_end_matches('/');
    if let Some(name) = path.strip_suffix("/ws") {
        Page::Websocket(name)
    } else if let Some(name) = path.strip_suffix("/autoload.js") {
        Page::Autoload(name)
    } else if let Some(name) = path.strip_suffix("/metadata") {
        Page::Metadata(name)
    } else {
        Page::Html(path)
    }
}

/// `GET /d/{*path}` (and `OPTIONS` for `autoload.js`).
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Response, HttpError> {
    let (mut parts, _body) = request.into_parts();
    let headers = parts.headers.clone();
    match parse(&path) {
        Page::Websocket(name) => {
            check_name(name).map_err(not_found)?;
            let mut creds = Credentials::of_websocket(&headers, &query);
            if let Some(grant) =
                routes::offered_token(&headers).and_then(|t| access::token_grant(&t))
            {
                creds.set_grant(&grant);
            }
            access::authorize(state.access.as_deref(), &creds, Level::Read, name)?;
            let ws = WebSocketUpgrade::from_request_parts(&mut parts, &state)
                .await
                .map_err(|e| HttpError::bad_request(e.to_string()))?;
            // A published document is replaced over REST, never by PUSH-DOC: its owner refuses it.
            let peer = crate::forwarded::Peer::of(&parts.extensions);
            let who = parts.extensions.get::<crate::limits::Who>().cloned();
            let slot = routes::connection_slot(&state, who.as_ref())?;
            let admission = routes::Admission {
                may_push: true,
                slot,
                who,
            };
            routes::upgrade(
                state,
                peer,
                headers,
                ws,
                Target::Published(name.to_owned()),
                admission,
            )
        }
        Page::Autoload(name) if parts.method == Method::OPTIONS => {
            check_name(name).map_err(not_found)?;
            Ok(routes::autoload_options(headers).await)
        }
        Page::Autoload(name) => {
            check_name(name).map_err(not_found)?;
            let grant = page_grant(&state, name, &headers, &query)?;
            autoload(&state, name, &query, &headers, grant.as_deref()).await
        }
        Page::Metadata(name) => {
            check_name(name).map_err(not_found)?;
            Ok(Json(serde_json::json!({
                "url": format!("{}/d/{name}", state.config.prefix),
                "data": {}
            }))
            .into_response())
        }
        Page::Html(name) => {
            check_name(name).map_err(not_found)?;
            let grant = page_grant(&state, name, &headers, &query)?;
            page(&state, name, grant.as_deref()).await
        }
    }
}

/// Checks that the request may view `name`; returns the grant its page's token must
/// carry so that its websocket may open (private documents only).
fn page_grant(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Option<String>, HttpError> {
    let creds = Credentials::of_request(headers, query);
    let allowed = access::authorize(state.access.as_deref(), &creds, Level::Read, name)?;
    Ok(state.access.as_ref().and_then(|a| {
        a.rules()
            .carried_grant(&allowed, name, access::KEY_PAGE_GRANT_SECONDS)
    }))
}

fn not_found(e: HttpError) -> HttpError {
    HttpError::not_found(e.message)
}

/// The title, roots and bundles of a published document, or 404.
async fn describe(state: &AppState, name: &str) -> Result<crate::session::PageInfo, HttpError> {
    check_name(name).map_err(not_found)?;
    let doc = state
        .registry
        .published(name)
        .ok_or_else(|| HttpError::not_found(format!("no published document named {name:?}")))?;
    doc.describe()
        .await
        .ok_or_else(|| HttpError::not_found(format!("the document {name:?} was just deleted")))
}

/// A new view: a fresh session id and a token for it, carrying `grant` if given.
fn view_token(state: &AppState, grant: Option<&str>) -> Result<String, HttpError> {
    let (sid, token) = routes::resolve_session(state, &HashMap::new(), &HeaderMap::new())?;
    let Some(grant) = grant else {
        return Ok(token);
    };
    let expiry = access::now().saturating_add(
        i64::try_from(state.config.session_token_expiration.as_secs()).unwrap_or(i64::MAX / 2),
    );
    let mut extra = serde_json::Map::new();
    extra.insert(
        access::TOKEN_GRANT_CLAIM.to_owned(),
        serde_json::Value::String(grant.to_owned()),
    );
    plotwire_protocol::token::generate_token(&sid, expiry, Some(&extra), state.config.signing_key())
        .map_err(|e| HttpError::bad_request(format!("can't make a token: {e}")))
}

async fn page(state: &AppState, name: &str, grant: Option<&str>) -> Result<Response, HttpError> {
    let info = describe(state, name).await?;
    let token = view_token(state, grant)?;
    let root = pages::static_root(&state.config.prefix, None);
    let scripts = crate::assets::Scripts::new(&root, &state.bokehjs);
    let html = pages::app_page(&info.title, &info.roots, &token, &scripts, info.bundles);
    Ok(([(header::CONTENT_TYPE, "text/html")], html).into_response())
}

async fn autoload(
    state: &AppState,
    name: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    grant: Option<&str>,
) -> Result<Response, HttpError> {
    routes::autoload_element(query)?;
    let info = describe(state, name).await?;
    let token = view_token(state, grant)?;
    routes::autoload_response(state, query, headers, &token, info.bundles.all())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "runs/exp42", "a-b_c.d~e/f", "x/y/z"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            ".a",
            "a/.b",
            "a b",
            "a/ws",
            "sources",
            "ä",
            "a/b/c/d/e/f/g/h/i",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(MAX_NAME_BYTES + 1)).is_err());
    }
}
