//! The plotwire server library: a Bokeh 3.9-compatible HTTP and websocket server,
//! exposed as an [`axum::Router`] so that it can run inside another Rust web app.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = plotwire_server::Config::default();
//! let app = plotwire_server::router(config)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5006").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

pub mod assets;
pub mod config;
pub mod connection;
pub mod error;
pub mod listener;
pub mod origin;
pub mod outbox;
pub mod pages;
pub mod registry;
pub mod routes;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

pub use config::{Config, ConfigError, SessionIdMode};

/// Builds the plotwire router for `config`, mounted under its prefix.
pub fn router(config: Config) -> Result<Router, ConfigError> {
    let config = config.validated()?;
    let registry =
        registry::Registry::new(config.check_unused_sessions, config.unused_session_lifetime);
    let allowlist = origin::allowlist(&config.allow_websocket_origin, config.port);
    let prefix = config.prefix.clone();
    let state = Arc::new(routes::AppState {
        config,
        registry,
        allowlist,
    });
    let routes = routes::routes(state);
    Ok(if prefix.is_empty() {
        routes
    } else {
        Router::new().nest(&prefix, routes)
    })
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address could not be bound or the server failed.
    #[error("server error on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Runs the server on `config.address:config.port` until Ctrl-C, on a
/// [`listener::FastAckListener`] (TCP_NODELAY, and TCP_QUICKACK on Linux). `on_ready` is
/// called with the bound address.
pub async fn serve(config: Config, on_ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    let addr = SocketAddr::new(config.address, config.port);
    let app = router(config)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Io { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Io { addr, source })?;
    on_ready(bound);
    axum::serve(listener::FastAckListener::new(listener), app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
        .await
        .map_err(|source| ServeError::Io {
            addr: bound,
            source,
        })
}
