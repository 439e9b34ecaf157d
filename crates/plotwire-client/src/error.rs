//! What can go wrong when talking to a plotwire server.

use plotwire_api::answers::ErrorBody;

/// A failed client call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status; `body` says what is wrong and, when
    /// one is to blame, the field.
    #[error("the server answered {status}: {}{}", body.error, body.field.as_deref().map(|f| format!(" (field {f:?})")).unwrap_or_default())]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's JSON error body.
        body: ErrorBody,
    },
    /// The server could not be reached, or the connection failed, on every attempt.
    #[error("cannot reach the plotwire server at {url} after {attempts} attempts: {reason} (is `plotwire serve` running there?)")]
    Unreachable {
        /// The server's base URL.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's failure.
        reason: String,
    },
    /// The base URL is not `http://host:port[/prefix]` or `host:port`.
    #[error("bad server URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A document name the server would refuse.
    #[error(transparent)]
    BadName(#[from] plotwire_api::names::NameError),
    /// Columns of different lengths, or none.
    #[error("bad columns: {0}")]
    BadColumns(String),
    /// An answer that is not what the API documents.
    #[error("unexpected answer from the server: {0}")]
    BadAnswer(String),
}
