//! HTTP routes compatible with `bokeh serve` (spec §1): app pages, autoload.js, metadata,
//! the websocket endpoint, the index of live sessions, static BokehJS and health.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use plotwire_protocol::token;
use rand::Rng;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::assets::{BokehJs, Scripts};
use crate::config::{Config, SessionIdMode};
use crate::connection::{self, ConnectionSettings};
use crate::error::HttpError;
use crate::origin;
use crate::pages;
use crate::registry::{Registry, Start};
use crate::session::{PeerKind, SessionHandle};
use crate::upgrade::WebSocketUpgrade;

/// Bytes tungstenite reads from a websocket at a time.
const WS_READ_BUFFER: usize = 16 * 1024;

/// Bytes tungstenite collects before it writes them to the socket (a message is flushed
/// whole anyway). Its 128 KiB default stays allocated in every connection once reached.
const WS_WRITE_BUFFER: usize = 16 * 1024;

/// Path segments that are not app names.
pub const RESERVED: &[&str] = &[
    "static",
    "healthz",
    "readyz",
    "metrics",
    "api",
    "favicon.ico",
    "d",
];

/// The app key of the notices shown to browsers whose published document is gone.
const ENDED_APP: &str = "/ended";

/// Shared state of every route.
pub struct AppState {
    /// The settings.
    pub config: Config,
    /// Live sessions.
    pub registry: Arc<Registry>,
    /// The websocket Origin allowlist in force.
    pub allowlist: Vec<String>,
    /// One permit per websocket that may still open (`max_websockets`).
    pub websockets: Arc<Semaphore>,
    /// Turns true when the server shuts down; every websocket then closes with 1001.
    pub shutdown: watch::Receiver<bool>,
    /// The BokehJS bundles served under `/static/js/`.
    pub bokehjs: Arc<BokehJs>,
    /// One permit per export (`export.html`, `json_item`) that may be written at once.
    pub exports: Arc<Semaphore>,
    /// The store, if documents are kept in one (`--data-dir`).
    pub store: Option<crate::persist::StoreHandle>,
    /// The access rules, when access control is on (`--auth-file`).
    pub access: Option<Arc<crate::access::Access>>,
    /// Rate limits and quotas, when any is on (`--limit-*`).
    pub limits: Option<Arc<crate::limits::Limits>>,
    /// The server's metrics (`GET /metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    /// The scheme, host and client address of a request from `peer` with `headers`,
    /// through a trusted proxy's headers when `--use-xheaders` is on. A request that
    /// came straight in has the scheme of this server's listener (https with TLS).
    pub fn client_view(
        &self,
        peer: crate::forwarded::Peer,
        headers: &HeaderMap,
    ) -> crate::forwarded::ClientView {
        let mut view = crate::forwarded::client_view(peer.0, headers, &self.config.forwarding);
        if !view.proxied && self.config.tls.is_some() {
            view.scheme = crate::forwarded::Scheme::Https;
        }
        view
    }
}

type Shared = State<Arc<AppState>>;

/// The routes, without the prefix.
pub fn routes(state: Arc<AppState>) -> Router {
    let api = crate::rest::routes().layer(axum::middleware::from_fn_with_state(
        state.clone(),
        count_rest,
    ));
    let router = if state.config.metrics {
        Router::new().route("/metrics", get(metrics))
    } else {
        Router::new()
    };
    router
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/favicon.ico", get(favicon))
        .route("/static/{*path}", get(static_file))
        .route(
            "/d/{*path}",
            get(crate::published::get).options(crate::published::get),
        )
        .nest("/api/v1", api)
        .route("/{app}", get(app_page))
        .route("/{app}/", get(app_page))
        .route("/{app}/ws", get(websocket))
        .route("/{app}/metadata", get(metadata))
        .route(
            "/{app}/autoload.js",
            get(autoload).options(autoload_options),
        )
        .fallback(no_route)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_requests,
        ))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// Who a request counts against for rate limits ([`crate::limits`]): its valid key, or
/// else its client address (through a trusted proxy with `--use-xheaders`, the forwarded
/// one); `None` when neither is known.
fn client_of(state: &AppState, req: &axum::extract::Request) -> Option<crate::limits::Who> {
    use crate::limits::Who;
    if let Some(access) = &state.access {
        let query = Query::<HashMap<String, String>>::try_from_uri(req.uri())
            .map(|Query(q)| q)
            .unwrap_or_default();
        let creds = crate::access::Credentials::of_websocket(req.headers(), &query);
        if let Some(key) = access.rules().key_of(&creds) {
            return Some(Who::Key(key.name.as_str().into(), key.limits));
        }
    }
    let peer = crate::forwarded::Peer::of(req.extensions());
    state.client_view(peer, req.headers()).client.map(Who::Addr)
}

/// Counts every request against its client's `--limit-requests` (429 past it), and
/// hands the client on to the handlers, which count points and connections.
async fn limit_requests(
    State(state): Shared,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(limits) = &state.limits else {
        return next.run(req).await;
    };
    if let Some(who) = client_of(&state, &req) {
        if let Err(over) = limits.request(&who) {
            return HttpError::from(over).into_response();
        }
        req.extensions_mut().insert(who);
    }
    next.run(req).await
}

/// Takes a streaming-connection slot of the request's client (`--limit-connections`).
pub(crate) fn connection_slot(
    state: &AppState,
    who: Option<&crate::limits::Who>,
) -> Result<Option<crate::limits::ConnectionSlot>, HttpError> {
    match (&state.limits, who) {
        (Some(limits), Some(who)) => Ok(limits.connect(who.clone())?),
        _ => Ok(None),
    }
}

async fn static_file(
    State(state): Shared,
    Path(path): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    crate::assets::serve_static(&state.bokehjs, &path, &uri, &headers)
}

async fn no_route() -> HttpError {
    HttpError::not_found("no such route")
}

/// Most bytes of an error body that [`json_errors`] reads to wrap it.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// Gives every error a JSON body `{"error": "..."}`, including the ones axum answers by
/// itself (no route, wrong method, a path or query that does not parse, a websocket
/// request without upgrade headers).
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, ERROR_BODY_LIMIT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut out = HttpError::new(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// Longest app name accepted.
pub const MAX_APP_NAME: usize = 128;

/// App names are what Bokeh apps are named after (a file or directory): letters, digits
/// and `-_.~`, not starting with a dot, at most [`MAX_APP_NAME`] bytes, and not reserved.
fn check_app(app: &str) -> Result<(), HttpError> {
    let valid = !app.is_empty()
        && app.len() <= MAX_APP_NAME
        && !app.starts_with('.')
        && app
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
    if RESERVED.contains(&app) || !valid {
        Err(HttpError::not_found(format!("{app:?} is not an app path")))
    } else {
        Ok(())
    }
}

fn new_session_id(config: &Config) -> String {
    let mut rng = rand::rng();
    token::new_session_id(|n| rng.random_range(0..n), config.signing_key())
}

/// Resolves the session of a page or autoload request (spec §1.2): returns the session
/// id and the token to create it with.
pub(crate) fn resolve_session(
    state: &AppState,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(String, String), HttpError> {
    let config = &state.config;
    let mut sid = query.get("bokeh-session-id").cloned();
    let token_arg = query.get("bokeh-token").cloned();
    if let Some(h) = headers
        .get("bokeh-session-id")
        .and_then(|v| v.to_str().ok())
    {
        if sid.is_some() {
            return Err(HttpError::forbidden(
                "session ID was provided as an argument and header",
            ));
        }
        sid = Some(h.to_owned());
    }
    let tok = match (token_arg, sid) {
        (Some(_), Some(_)) => {
            return Err(HttpError::forbidden(
                "Both token and session ID were provided",
            ))
        }
        (Some(t), None) => t,
        (None, sid) => {
            let sid = match sid {
                Some(s) => s,
                None if config.session_ids == SessionIdMode::ExternalSigned => {
                    return Err(HttpError::forbidden("No bokeh-session-id provided"))
                }
                None => new_session_id(config),
            };
            let expiry = crate::access::now()
                + i64::try_from(config.session_token_expiration.as_secs()).unwrap_or(i64::MAX / 2);
            token::generate_token(&sid, expiry, None, config.signing_key())
                .map_err(|e| HttpError::bad_request(format!("can't make a token: {e}")))?
        }
    };
    if !token::check_token_signature(&tok, config.signing_key()) {
        return Err(HttpError::forbidden("Invalid token or session ID"));
    }
    let sid = token::token_session_id(&tok)
        .map_err(|e| HttpError::forbidden(format!("Invalid token: {e}")))?;
    if sid.is_empty() {
        return Err(HttpError::forbidden("Invalid token: empty session ID"));
    }
    Ok((sid, tok))
}

/// The session a page or autoload request is for, created if needed (spec §1.2), and
/// the token the page embeds: the one given, or one minted for this page load. A page
/// never embeds the token of whoever created the session (a pusher's token expires
/// minutes later, and BokehJS reconnects with the token of its page).
fn page_session(
    state: &AppState,
    app: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(Arc<SessionHandle>, String), HttpError> {
    check_app(app)?;
    let (sid, tok) = resolve_session(state, query, headers)?;
    Ok((
        state.registry.get_or_create(app, &sid, false, Start::Fresh),
        tok,
    ))
}

async fn app_page(
    State(state): Shared,
    Path(app): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let (session, token) = page_session(&state, &app, &query, &headers)?;
    let info = session.describe().await.ok_or_else(|| {
        HttpError::unavailable("the session closed while the page was being made")
    })?;
    let root = pages::static_root(&state.config.prefix, None);
    let scripts = Scripts::new(&root, &state.bokehjs);
    let html = pages::app_page(&info.title, &info.roots, &token, &scripts, info.bundles);
    Ok(([(header::CONTENT_TYPE, "text/html")], html).into_response())
}

async fn autoload(
    State(state): Shared,
    Path(app): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    check_app(&app)?;
    autoload_element(&query)?;
    let (session, token) = page_session(&state, &app, &query, &headers)?;
    let info = session.describe().await.ok_or_else(|| {
        HttpError::unavailable("the session closed while the script was being made")
    })?;
    autoload_response(&state, &query, &headers, &token, info.bundles.all())
}

/// `autoload.js` (spec §1.4) for a page's token: its element, app path, absolute URL and
/// resources come from the query; answered with the CORS headers embeds need.
pub(crate) fn autoload_response(
    state: &AppState,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    token: &str,
    bundles: crate::bundles::BundleSet,
) -> Result<Response, HttpError> {
    let element = autoload_element(query)?;
    let app_path = query
        .get("bokeh-app-path")
        .map(String::as_str)
        .unwrap_or("/");
    let absolute_url = query.get("bokeh-absolute-url").map(String::as_str);
    let include_js = query.get("resources").map(String::as_str) != Some("none");
    let root = pages::static_root(&state.config.prefix, absolute_url);
    let js = pages::autoload_js(
        element,
        token,
        app_path,
        absolute_url,
        include_js,
        &Scripts::new(&root, &state.bokehjs),
        bundles,
    );
    let mut resp = ([(header::CONTENT_TYPE, "application/javascript")], js).into_response();
    cors(&mut resp, headers);
    Ok(resp)
}

/// The `bokeh-autoload-element` argument, which `autoload.js` requires.
pub(crate) fn autoload_element(query: &HashMap<String, String>) -> Result<&String, HttpError> {
    query
        .get("bokeh-autoload-element")
        .ok_or_else(|| HttpError::bad_request("No bokeh-autoload-element query parameter"))
}

pub(crate) fn cors(resp: &mut Response, req: &HeaderMap) {
    let h = resp.headers_mut();
    let origin = match (req.get(header::ORIGIN), req.contains_key(header::COOKIE)) {
        (Some(o), true) => o.clone(),
        _ => HeaderValue::from_static("*"),
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
}

pub(crate) async fn autoload_options(headers: HeaderMap) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    cors(&mut resp, &headers);
    if let Some(o) = headers.get(header::ORIGIN) {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
    }
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("PUT, GET, OPTIONS"),
    );
    resp
}

async fn metadata(Path(app): Path<String>) -> Result<Response, HttpError> {
    check_app(&app)?;
    Ok(Json(serde_json::json!({ "url": format!("/{app}"), "data": {} })).into_response())
}

/// The index: live sessions when ids may be listed ([`Config::lists_sessions`]),
/// otherwise only the apps that have sessions, which hands out no session id.
async fn index(State(state): Shared) -> Html<String> {
    let prefix = &state.config.prefix;
    let sessions = state.registry.list();
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let entries: Vec<pages::IndexEntry> = if state.config.lists_sessions() {
        sessions
            .into_iter()
            .map(|s| pages::IndexEntry {
                href: format!(
                    "{prefix}/{}/?bokeh-session-id={}",
                    s.app,
                    percent_encode(&s.id)
                ),
                label: format!("{} / {}", s.app, s.id),
                detail: plural(s.connections, "connection"),
            })
            .collect()
    } else {
        let mut apps: Vec<(String, usize)> = Vec::new();
        for s in sessions {
            match apps.last_mut() {
                Some((app, n)) if *app == s.app => *n += 1,
                _ => apps.push((s.app, 1)),
            }
        }
        apps.into_iter()
            .map(|(app, n)| pages::IndexEntry {
                href: format!("{prefix}/{}/", percent_encode(&app)),
                label: app,
                detail: plural(n, "live session"),
            })
            .collect()
    };
    // The index is for anyone: private documents are not listed.
    let rules = state.access.as_ref().map(|a| a.rules());
    let documents: Vec<pages::IndexEntry> = state
        .registry
        .list_published()
        .into_iter()
        .filter(|d| rules.as_ref().is_none_or(|r| !r.is_private(&d.name)))
        .map(|d| pages::IndexEntry {
            href: format!("{prefix}/d/{}/", d.name),
            label: if d.status.title.is_empty() {
                d.name.clone()
            } else {
                d.status.title.clone()
            },
            detail: format!(
                "{} · {} · updated {}",
                d.name,
                plural(d.status.views, "view"),
                crate::rest::rfc3339(d.status.updated)
            ),
        })
        .collect();
    Html(pages::index_page(&documents, &entries))
}

/// Percent-encodes a query value (everything but unreserved characters).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn healthz(State(state): Shared) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "sessions": state.registry.len() }))
}

/// `GET /readyz`: 200 while the server takes writes; 503 while it shuts down or its store
/// refuses writes (the last one failed: a full disk, an unwritable file), for
/// orchestrators to route traffic elsewhere. `/healthz` says only that it is alive.
async fn readyz(State(state): Shared) -> Response {
    if *state.shutdown.borrow() {
        return HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down")
            .into_response();
    }
    let Some(store) = &state.store else {
        return Json(serde_json::json!({ "status": "ready", "store": "memory" })).into_response();
    };
    match store.store.health() {
        Ok(()) => Json(serde_json::json!({ "status": "ready", "store": "sqlite" })).into_response(),
        Err(e) => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the store's last write failed: {e}"),
        )
        .into_response(),
    }
}

/// `GET /metrics`: every metric (`docs/metrics.md`); with access control on, for a key
/// with the `metrics` or `admin` scope only, in OpenMetrics when the `Accept`
/// header asks for it and in the Prometheus text format otherwise; the live sessions,
/// views and the store's size read now.
async fn metrics(State(state): Shared, headers: HeaderMap) -> Response {
    if let Some(access) = &state.access {
        let creds = crate::access::Credentials::of_request(&headers, &HashMap::new());
        if let Err(denied) = access.rules().authorize_metrics(&creds) {
            return HttpError::from(denied).into_response();
        }
    }
    let format = crate::metrics::Format::for_accept(
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
    );
    let (bokeh_sessions, published, views) = state.registry.counts();
    let store_bytes = state.store.as_ref().map(|s| s.store.size_bytes());
    let scraped = crate::metrics::Scraped {
        bokeh_sessions,
        published,
        views,
        store_bytes,
    };
    match state.metrics.encode(scraped, format) {
        Ok(text) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(_) => HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded",
        )
        .into_response(),
    }
}

/// Counts a REST request as a connection of kind `rest` while it is answered: the
/// request and its answer as one message each way, the request body's `Content-Length`
/// and the answer body's length when known up front (not a stream's).
async fn count_rest(
    State(state): Shared,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::body::HttpBody;
    let meters = state.metrics.connection(crate::metrics::ConnKind::Rest);
    meters.messages_in.inc();
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    meters.bytes_in.inc_by(length.unwrap_or(0));
    let response = next.run(request).await;
    meters.messages_out.inc();
    meters
        .bytes_out
        .inc_by(response.body().size_hint().exact().unwrap_or(0));
    response
}

async fn favicon() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn websocket(
    State(state): Shared,
    Path(app): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    who: Option<axum::Extension<crate::limits::Who>>,
    peer: crate::forwarded::Peer,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, HttpError> {
    check_app(&app)?;
    let may_push = may_push(&state, &app, &headers, &query)?;
    let who = who.map(|w| w.0);
    let slot = connection_slot(&state, who.as_ref())?;
    upgrade(
        state,
        peer,
        headers,
        ws,
        Target::App(app),
        Admission {
            may_push,
            slot,
            who,
        },
    )
}

/// What a websocket was admitted with.
pub struct Admission {
    /// Whether it may PUSH-DOC (access control).
    pub may_push: bool,
    /// Its client's connection slot (`--limit-connections`), held while it is open.
    pub slot: Option<crate::limits::ConnectionSlot>,
    /// The client its messages count against (`--limit-requests`), if known.
    pub who: Option<crate::limits::Who>,
}

/// Whether a websocket of a Bokeh app's session may PUSH-DOC: always without access
/// control; with it, when its key may write to `<app>/<session id>`. Anyone may still
/// connect, pull and patch, as a browser does. A key that is not valid is refused here.
fn may_push(
    state: &AppState,
    app: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<bool, HttpError> {
    let Some(access) = &state.access else {
        return Ok(true);
    };
    let creds = crate::access::Credentials::of_websocket(headers, query);
    let rules = access.rules();
    rules.check_presented(&creds)?;
    if !creds.has_key() {
        return Ok(false);
    }
    let Some(sid) = offered_token(headers).and_then(|t| token::token_session_id(&t).ok()) else {
        return Ok(false);
    };
    let name = format!("{app}/{sid}");
    Ok(rules
        .authorize(
            &creds,
            crate::access::Level::Write,
            &name,
            crate::access::now(),
        )
        .is_ok())
}

/// What a websocket connects to.
pub enum Target {
    /// A Bokeh session of this app path.
    App(String),
    /// A view of this published document.
    Published(String),
}

/// The subprotocols a websocket request offers, in order.
fn offered_subprotocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The session token a websocket request offers: the second of exactly two
/// subprotocols (Bokeh's `["bokeh", token]`).
pub(crate) fn offered_token(headers: &HeaderMap) -> Option<String> {
    match offered_subprotocols(headers).as_slice() {
        [_, token] => Some(token.clone()),
        _ => None,
    }
}

/// Accepts a websocket from `peer` for `target` (spec §3): checks the origin, the
/// subprotocols and the token, then runs the connection in its session.
pub fn upgrade(
    state: Arc<AppState>,
    peer: crate::forwarded::Peer,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
    target: Target,
    admission: Admission,
) -> Result<Response, HttpError> {
    let Admission {
        may_push,
        slot,
        who,
    } = admission;
    let view = state.client_view(peer, &headers);
    let client = view.client;
    if !origin::origin_allowed(&headers, view.host.as_deref(), &state.allowlist) {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        crate::warn_limited!(origin, client = ?client, "websocket origin refused");
        return Err(HttpError::forbidden(format!(
            "websocket origin {origin:?} is not allowed; start plotwire with --allow-websocket-origin"
        )));
    }
    let offered = offered_subprotocols(&headers);
    let kind = if headers.contains_key(header::ORIGIN) {
        PeerKind::Browser
    } else {
        PeerKind::Producer
    };
    let Ok(permit) = state.websockets.clone().try_acquire_owned() else {
        crate::warn_limited!(
            limit = state.config.max_websockets,
            "websocket refused: too many open (--max-websockets)"
        );
        return Err(HttpError::unavailable(format!(
            "too many open websockets (the limit is {}, --max-websockets)",
            state.config.max_websockets
        )));
    };
    let c = &state.config;
    let settings = ConnectionSettings {
        keep_alive: c.keep_alive,
        dead_peer_timeout: c.dead_peer_timeout,
        outbox_max_messages: c.outbox_max_messages,
        outbox_max_bytes: c.outbox_max_bytes,
        max_buffers: c.max_buffers_per_message,
        max_message_bytes: c.max_message_bytes,
        max_decoded_bytes: c.max_decoded_bytes,
        max_inflight: c.max_inflight_requests,
        may_push,
        limit: state.limits.clone().zip(who),
    };
    let max = state.config.websocket_max_message_size;
    // tungstenite zero-fills up to `read_buffer_size` bytes of its buffer on every read, so
    // its 128 KiB default costs each idle viewer 128 KiB of memory. 16 KiB keeps viewers
    // cheap; large frames still get a buffer of their full length, read in 16 KiB steps.
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER);
    // Bokeh's select_subprotocol: exactly two values, the first echoed, the second the token.
    let (protocol, token) = match offered.as_slice() {
        [first, tok] => (HeaderValue::from_str(first).ok(), Some(tok.clone())),
        _ => (None, None),
    };
    let state2 = state.clone();
    let meters = state.metrics.connection(kind.into());
    // Every line the connection logs names its client (through a trusted proxy, the
    // forwarded address).
    let span = tracing::info_span!(
        "websocket",
        client = %client.map_or_else(|| "unknown".to_owned(), |c| c.to_string())
    );
    Ok(ws.on_upgrade(ws_config, protocol, move |socket| tracing::Instrument::instrument(async move {
        let _slot = slot;
        let Some(tok) = token else {
            return connection::refuse(socket, "subprotocols must be [\"bokeh\", token]").await;
        };
        if offered.first().map(String::as_str) != Some("bokeh") {
            return connection::refuse(socket, "first subprotocol must be \"bokeh\"").await;
        }
        if !token::check_token_signature(&tok, state2.config.signing_key()) {
            return connection::refuse(socket, "invalid token signature").await;
        }
        // The extra payload (`__bk__zlib_`) is never inflated: no app code here reads it.
        let payload = match token::decode_token_claims(&tok) {
            Ok(p) => p,
            Err(e) => return connection::refuse(socket, &format!("invalid token: {e}")).await,
        };
        if payload.session_id.is_empty() {
            return connection::refuse(socket, "empty session id").await;
        }
        let registry = &state2.registry;
        let joined = |session| connection::Joined {
            session,
            kind,
            view: payload.session_id.clone(),
            shutdown: state2.shutdown.clone(),
            meters,
        };
        let app = match target {
            Target::App(app) => app,
            Target::Published(name) => {
                match registry.published(&name) {
                    Some(doc) => {
                        doc.attach();
                        connection::run(socket, joined(doc), settings).await;
                    }
                    // Deleted (or never published): a browser is told so, as for a lost session.
                    None if kind == PeerKind::Browser => {
                        let ended = registry.get_or_create(ENDED_APP, &payload.session_id, true, Start::Ended);
                        connection::run(socket, joined(ended), settings).await;
                    }
                    None => {
                        return connection::refuse(socket, &format!("no published document named {name:?}")).await;
                    }
                }
                drop(permit);
                return;
            }
        };
        let live = registry.get(&app, &payload.session_id).is_some();
        if let Err(e) = token::check_token_expiry(&payload, crate::access::now()) {
            // BokehJS reconnects with its page's token, however old the page is, so an
            // expired (but correctly signed) token still joins a live session. It never
            // creates a producer's session.
            if !live && kind == PeerKind::Producer {
                return connection::refuse(socket, &format!("token rejected: {e}")).await;
            }
            tracing::debug!(session = %payload.session_id, "expired token accepted for a reconnect");
        }
        // A browser always loads its page, which creates the session, before it opens
        // the websocket. So a browser asking for a session that does not exist lost it
        // (a restart, or it was discarded): it gets a document that says so, instead of
        // an empty one or a silently stale plot.
        let start = match kind {
            PeerKind::Browser => Start::Ended,
            PeerKind::Producer => Start::Empty,
        };
        let session = registry.get_or_create(&app, &payload.session_id, true, start);
        connection::run(socket, joined(session), settings).await;
        drop(permit);
    }, span)))
}
