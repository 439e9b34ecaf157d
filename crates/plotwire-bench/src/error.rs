//! Errors: boxed, with a line of context added at each level (`anyhow` is not a dependency).

use std::fmt::Display;

/// Any error the bench reports. The message carries its context ("bokeh: ingest: ...").
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The bench's result type.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// Adds a line of context to an error, as `what: cause`.
pub trait Context<T> {
    /// Wraps the error, if any, as `"{what()}: {error}"`.
    fn context<S: Display>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context<S: Display>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| format!("{}: {e}", what()).into())
    }
}

impl<T> Context<T> for Option<T> {
    fn context<S: Display>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.ok_or_else(|| what().to_string().into())
    }
}

/// An error from a plain message.
pub fn err(message: impl Into<String>) -> BoxError {
    message.into().into()
}
