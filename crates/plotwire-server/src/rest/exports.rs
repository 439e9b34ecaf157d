//! `GET .../export.html` and `GET .../json_item`: a published document as a standalone
//! copy that stays live (`docs/exports.md`, [`crate::export`]). The owner hands over a
//! snapshot; the copy is written off it, on a blocking thread.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use plotwire_api::live::{check_public_url, LiveOptions};

use super::answers::{allow_origin, no_store};
use crate::api::{Answer, Request, Snapshot};
use crate::assets::BokehJs;
use crate::error::HttpError;
use crate::export;
use crate::forwarded::ClientView;
use crate::routes::AppState;
use crate::session::SessionHandle;

/// How long an export waits for a turn when [`crate::MAX_CONCURRENT_EXPORTS`] are
/// being written.
pub const EXPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// What is being exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// One HTML file.
    Page,
    /// A `json_item`.
    Item,
}

/// An export asked for: of which document, as what, and the read grant its copy carries
/// (private documents only).
pub(super) struct Asked<'a> {
    /// The document's name.
    pub name: &'a str,
    /// A page or a `json_item`.
    pub kind: Kind,
    /// The grant every read of the copy carries.
    pub grant: Option<String>,
}

/// Answers an export `asked` with `headers` by the client `view` describes (whose
/// scheme and host make the page's URLs without `public_url`).
pub(super) async fn export(
    state: &AppState,
    doc: Arc<SessionHandle>,
    asked: Asked<'_>,
    headers: &HeaderMap,
    view: &ClientView,
    query: &HashMap<String, String>,
) -> Result<Response, HttpError> {
    let Asked { name, kind, grant } = asked;
    let options = LiveOptions::from_query(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| HttpError::bad_request(e.to_string()).with_field(e.field))?;
    let base = match &options.public_url {
        Some(url) => url.clone(),
        None => request_url(state, view)?,
    };
    let api_url = format!("{base}{}", plotwire_api::paths::document(name));
    let snapshot = match doc.rest(Request::Snapshot, None).await? {
        Answer::Snapshot(s) => *s,
        _ => {
            return Err(HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unexpected answer from the document",
            ))
        }
    };
    let estimate = export::embedded_bytes(&snapshot.doc, options.max_size);
    if estimate > state.config.max_export_bytes {
        return Err(HttpError::too_large(format!(
            "the export would embed about {} MB of data, more than --max-export-bytes ({} MB): \
             give max_size to keep fewer rows",
            estimate / 1_000_000,
            state.config.max_export_bytes / 1_000_000
        ))
        .with_field("max_size"));
    }
    let Ok(Ok(_turn)) = tokio::time::timeout(EXPORT_WAIT, state.exports.acquire()).await else {
        return Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} exports are being written and none finished within {} s: retry later",
                crate::MAX_CONCURRENT_EXPORTS,
                EXPORT_WAIT.as_secs()
            ),
        ));
    };
    let started = Instant::now();
    let root = query.get("root").cloned();
    let title = snapshot.doc.title().to_owned();
    let file = name.rsplit('/').next().unwrap_or(name).to_owned();
    let bokehjs = state.bokehjs.clone();
    let written = tokio::task::spawn_blocking(move || {
        write(
            kind,
            snapshot,
            &title,
            root.as_deref(),
            export::ReadFrom {
                api_url: &api_url,
                grant: grant.as_deref(),
            },
            &options,
            &bokehjs,
        )
    })
    .await
    .map_err(|e| {
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the export failed: {e}"),
        )
    })??;
    tracing::info!(
        document = name,
        kind = ?kind,
        bytes = written.len(),
        ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "exported"
    );
    let (content_type, disposition) = match kind {
        Kind::Page => (
            "text/html; charset=utf-8",
            format!("inline; filename=\"{file}.html\""),
        ),
        Kind::Item => (
            "application/json",
            format!("inline; filename=\"{file}.json\""),
        ),
    };
    let mut resp = ([(header::CONTENT_TYPE, content_type)], written).into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    allow_origin(state, headers, &mut resp);
    Ok(no_store(resp))
}

fn write(
    kind: Kind,
    snapshot: Snapshot,
    title: &str,
    root: Option<&str>,
    from: export::ReadFrom<'_>,
    options: &LiveOptions,
    bokehjs: &BokehJs,
) -> Result<String, HttpError> {
    match kind {
        Kind::Item => export::item::json_item(snapshot, root, from, options),
        Kind::Page => {
            let bundles = crate::bundles::needed_by(&snapshot.doc);
            let roots = snapshot.doc.roots().to_vec();
            let doc_json = export::live_doc_json(&snapshot, from, options);
            export::page::standalone_html(title, &doc_json, &roots, bundles, bokehjs)
                .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
    }
}

/// The server's URL as the client reached it: `<scheme>://<host><prefix>`, through a
/// trusted proxy's `X-Forwarded-Proto` and `X-Forwarded-Host` with `--use-xheaders`.
fn request_url(state: &AppState, view: &ClientView) -> Result<String, HttpError> {
    let host = view.host.as_deref().ok_or_else(|| {
        HttpError::bad_request(
            "the request has no usable Host header: give the server's URL as public_url",
        )
        .with_field("public_url")
    })?;
    let scheme = view.scheme.as_str();
    check_public_url(&format!("{scheme}://{host}{}", state.config.prefix)).map_err(|e| {
        HttpError::bad_request(format!(
            "cannot make the page's URL from the Host header ({e}): give public_url"
        ))
        .with_field("public_url")
    })
}
