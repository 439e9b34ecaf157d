//! The generic server-side Bokeh document: models keyed by id, roots, title, config,
//! and column data sources held as typed, chunked columns.
//!
//! [`Document::apply`] is the one place where document events are validated and
//! applied; it returns what must be relayed and which models are new to recipients.

pub mod column;
pub mod document;
pub mod model;

pub use document::{AllModels, Applied, ApplyError, Document, KindsError, NewModels};
