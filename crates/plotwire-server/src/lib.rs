//! The plotwire server library: a Bokeh 3.9-compatible HTTP and websocket server,
//! exposed as an [`axum::Router`] so that it can run inside another Rust web app.

pub mod assets;
pub mod pages;
