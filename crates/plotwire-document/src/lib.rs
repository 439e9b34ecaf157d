//! The generic server-side Bokeh document: models keyed by id, roots, title, config,
//! and column data sources held as typed, chunked columns.

pub mod column;
