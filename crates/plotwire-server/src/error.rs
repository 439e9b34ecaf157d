//! HTTP errors: a status and a JSON body `{"error": "...", "field": "..."}` naming the
//! problem (and the field to blame, when there is one).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An HTTP error answered with a JSON body.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct HttpError {
    /// The status code.
    pub status: StatusCode,
    /// What went wrong, for the client.
    pub message: String,
    /// The request field to blame, if one is.
    pub field: Option<String>,
    /// When to try again (`Retry-After`, whole seconds rounded up), for 429 and 503.
    pub retry_after: Option<std::time::Duration>,
}

impl HttpError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// The same error, telling the client to try again after `after`.
    pub fn with_retry_after(mut self, after: std::time::Duration) -> HttpError {
        self.retry_after = Some(after);
        self
    }

    /// The same error, blaming `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> HttpError {
        self.field = Some(field.into());
        self
    }

    /// 409 Conflict.
    pub fn conflict(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::CONFLICT, message)
    }

    /// 413 Payload Too Large.
    pub fn too_large(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 415 Unsupported Media Type.
    pub fn unsupported_media(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::FORBIDDEN, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::NOT_FOUND, message)
    }

    /// 503 Service Unavailable.
    pub fn unavailable(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        tracing::debug!(status = %self.status, message = %self.message, "HTTP error");
        let mut resp = (
            self.status,
            Json(match self.field {
                Some(field) => serde_json::json!({ "error": self.message, "field": field }),
                None => serde_json::json!({ "error": self.message }),
            }),
        )
            .into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs.max(1).to_string()) {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"plotwire\""),
            );
        }
        resp
    }
}
