//! The one error type of this crate: every error names the JSON path of the field to blame.

use thiserror::Error;

/// Why a spec was refused. `path` is the JSON path of the field to blame, dot-separated
/// (`plots.loss.kind`), or empty for the spec as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    /// The body is not JSON, or does not have the shape of a spec (unknown field, wrong
    /// type, unknown kind, ...).
    #[error("{}{message}", prefix(path))]
    Parse {
        /// Where in the spec.
        path: String,
        /// What is wrong, as serde says it.
        message: String,
    },
    /// The spec parsed but breaks a rule: a missing reference, a limit, a field that does
    /// not belong to that kind, an overlap in the grid.
    #[error("{}{message}", prefix(path))]
    Invalid {
        /// Where in the spec.
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

impl SpecError {
    /// An [`SpecError::Invalid`] at `path`.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The JSON path of the field to blame (empty: the whole spec).
    pub fn path(&self) -> &str {
        match self {
            SpecError::Parse { path, .. } | SpecError::Invalid { path, .. } => path,
        }
    }

    /// What is wrong, without the path.
    pub fn message(&self) -> &str {
        match self {
            SpecError::Parse { message, .. } | SpecError::Invalid { message, .. } => message,
        }
    }
}
