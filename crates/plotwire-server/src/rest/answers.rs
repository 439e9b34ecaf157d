//! How REST answers go out: JSON, never cached, and readable from the allowed origins
//! (CORS), with preflights for reads only.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::routes::AppState;

/// A GET answer: JSON, never cached, readable from the allowed origins.
pub(super) fn get_answer(state: &AppState, headers: &HeaderMap, body: String) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    allow_origin(state, headers, &mut resp);
    no_store(resp)
}

/// An SSE answer: not stored, and not buffered by a reverse proxy (`X-Accel-Buffering:
/// no` turns nginx's buffering off for it even without `proxy_buffering off`).
pub(super) fn event_stream(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    no_store(resp)
}

pub(super) fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Sets `Access-Control-Allow-Origin` when the request's origin may read the answer.
pub(super) fn allow_origin(state: &AppState, headers: &HeaderMap, resp: &mut Response) {
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

/// A CORS preflight for the reads at a path: `GET`, and the empty `POST` of an
/// `AjaxDataSource` where `post_reads`; with the headers pollers send.
pub(super) fn preflight(state: &AppState, headers: &HeaderMap, post_reads: bool) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    allow_origin(state, headers, &mut resp);
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(if post_reads {
            "GET, POST, OPTIONS"
        } else {
            "GET, OPTIONS"
        }),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Last-Event-ID, Cache-Control, If-Modified-Since"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    resp
}
