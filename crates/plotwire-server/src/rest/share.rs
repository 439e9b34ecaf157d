//! `POST .../share?expires=7d`: a share link to a document, signed with the auth file's
//! share secret (`docs/access.md`). Its holder may read the document, and only it, until
//! the link expires. A key with the publish scope over the document asks for it.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::access;
use crate::error::HttpError;
use crate::routes::AppState;

/// How long a link lasts when `expires` is not given (7 days).
pub const DEFAULT_EXPIRES_SECONDS: u64 = 7 * 24 * 3600;

/// Reads `30s`, `15m`, `12h`, `7d`, `2w` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        "w" => 7 * 24 * 3600,
        _ => return None,
    };
    n.checked_mul(scale).filter(|s| *s > 0)
}

/// Makes a share link to `name`.
pub(super) fn create(
    state: &AppState,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<Response, HttpError> {
    let Some(access) = &state.access else {
        return Err(HttpError::conflict(
            "share links need access control: start the server with --auth-file",
        ));
    };
    let rules = access.rules();
    let seconds = match query.get("expires") {
        None => DEFAULT_EXPIRES_SECONDS,
        Some(text) => parse_duration(text).ok_or_else(|| {
            HttpError::bad_request(format!(
                "expires must be a duration such as 30m, 12h, 7d or 2w, not {text:?}"
            ))
            .with_field("expires")
        })?,
    };
    if seconds > rules.max_share_seconds {
        return Err(HttpError::bad_request(format!(
            "expires may be at most {} days (max_share_days in the auth file)",
            rules.max_share_seconds / (24 * 3600)
        ))
        .with_field("expires"));
    }
    let expiry = access::now().saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX));
    let grant = rules.sign_grant(name, expiry).ok_or_else(|| {
        HttpError::conflict(
            "the auth file has no share_secret: add one (`plotwire keys init` writes a file with one)",
        )
    })?;
    let url = format!(
        "{}?{}={grant}",
        crate::published::page_url(state, name),
        access::GRANT_PARAM
    );
    tracing::info!(document = name, expires = expiry, "share link made");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "name": name,
            "url": url,
            "grant": grant,
            "expires": crate::rest::rfc3339(epoch_time(expiry)),
        })),
    )
        .into_response())
}

fn epoch_time(secs: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Some(7 * 86400));
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("2w"), Some(14 * 86400));
        for bad in ["", "0", "d", "7x", "-1d", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
