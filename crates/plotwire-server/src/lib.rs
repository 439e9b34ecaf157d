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
//!
//! [`app`] also returns a [`Shutdown`] handle, which closes every websocket with 1001,
//! and a [`Plotwire`] handle, which publishes documents and streams into them
//! in-process; [`serve`] runs the whole server with signals, limits and a grace period.
//!
//! Mounted in a host app under a prefix, with the host's own middleware in front
//! (`docs/library.md`; `examples/embed_in_axum.rs` is a whole app):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::get, Router};
//!
//! let config = plotwire_server::Config::builder().prefix("/plots").build()?;
//! let plotwire_server::App { router, shutdown, plotwire } = plotwire_server::app(config)?;
//! // The router already hangs off /plots: merge it, do not nest it.
//! let host = Router::new().route("/", get(|| async { "home" })).merge(router);
//! plotwire
//!     .publish_spec_json("demo", br#"{"sources": {"s": {"columns": {"x": "float64"}}}}"#)
//!     .await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, host)
//!     .with_graceful_shutdown(async move {
//!         plotwire_server::stop_signal().await;
//!         shutdown.begin();
//!     })
//!     .await?;
//! # Ok(()) }
//! ```

pub mod access;
pub mod api;
pub mod assets;
pub mod body;
pub mod bundles;
pub mod config;
pub mod connection;
pub mod cursor;
pub mod demos;
pub mod error;
pub mod events;
pub mod export;
pub mod forwarded;
pub mod framing;
pub mod inprocess;
pub mod limits;
pub mod listener;
pub mod lod;
pub mod log;
pub mod metrics;
pub mod origin;
pub mod outbox;
pub mod owner;
pub mod pages;
pub mod persist;
pub mod published;
pub mod registry;
pub mod rest;
pub mod retention;
pub mod routes;
pub mod session;
pub mod subscriptions;
pub mod tls;
pub mod upgrade;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::{watch, Semaphore};

pub use assets::{BokehJs, BokehJsError};
pub use config::{Config, ConfigBuilder, ConfigError, SessionIdMode, TlsFiles};
pub use events::{Follow, Followed, ProducerEvent};
pub use inprocess::{Plotwire, PlotwireError, Written};
pub use plotwire_protocol::event::DocJson;
pub use plotwire_protocol::Value;
pub use plotwire_spec::Spec;
pub use published::PublishOutcome;
pub use retention::Retention;

/// Exports written at once; more wait for a turn (at most [`rest::EXPORT_WAIT`]).
pub const MAX_CONCURRENT_EXPORTS: usize = 2;

/// A router, the handle that shuts its websockets down, and the in-process handle to its
/// published documents.
pub struct App {
    /// The routes, mounted under the configured prefix: a host app merges them into its
    /// own router (`Router::merge`), at its root.
    pub router: Router,
    /// Closes every websocket with 1001 and waits for them to finish.
    pub shutdown: Shutdown,
    /// Publishes documents and writes to them in-process, through the same owners as the
    /// REST API.
    pub plotwire: Plotwire,
}

/// Shuts an [`App`]'s websockets down: each gets close 1001 ("going away"), after which
/// BokehJS reconnects to whatever serves the address next.
#[derive(Clone)]
pub struct Shutdown {
    begun: Arc<watch::Sender<bool>>,
    websockets: Arc<Semaphore>,
    max_websockets: usize,
}

impl Shutdown {
    /// Starts the shutdown: every open websocket is sent close 1001.
    pub fn begin(&self) {
        self.begun.send_replace(true);
    }

    /// Resolves once [`Shutdown::begin`] has been called.
    pub async fn begun(&self) {
        let mut rx = self.begun.subscribe();
        let _ = rx.wait_for(|b| *b).await;
    }

    /// Waits until every websocket has ended, for at most `within`. True if they all did.
    pub async fn drained(&self, within: Duration) -> bool {
        let all = u32::try_from(self.max_websockets).unwrap_or(u32::MAX);
        tokio::time::timeout(within, self.websockets.acquire_many(all))
            .await
            .is_ok()
    }
}

/// Builds the plotwire router for `config`, mounted under its prefix.
pub fn router(config: Config) -> Result<Router, ConfigError> {
    app(config).map(|a| a.router)
}

/// Builds the plotwire router, its [`Shutdown`] handle and its [`Plotwire`] handle.
///
/// Fails on settings that do not fit together, a data dir that cannot be opened, or
/// BokehJS bundles that cannot be had ([`BokehJs::for_config`]).
pub fn app(config: Config) -> Result<App, ConfigError> {
    let config = config.validated()?;
    let bokehjs = BokehJs::for_config(config.bokehjs_dir.as_deref())?;
    if let assets::BokehJsSource::Dir(dir) = bokehjs.source() {
        tracing::info!(dir = %dir.display(), "serving the BokehJS bundles of this directory");
    }
    log::set_warnings_per_second(config.warnings_per_second);
    let limits = config.limits;
    let access = match &config.auth_file {
        Some(path) => {
            let access = access::Access::open(path)?;
            let rules = access.rules();
            tracing::info!(path = %path.display(), keys = rules.keys.len(), private = rules.private.len(), "access control on");
            Some(Arc::new(access))
        }
        None => None,
    };
    let store = open_store(&config)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let registry = registry::Registry::new(
        config.check_unused_sessions,
        config.unused_session_lifetime,
        session::SessionLimits {
            queue_commands: 1024,
            queue_bytes: config.session_queue_bytes,
            max_models: config.max_models,
            views: owner::ViewSettings {
                events_kept: config.events_kept,
                view_linger: config.view_linger,
                lod_threshold: config.lod_threshold,
            },
            store: store.clone(),
            metrics: metrics.clone(),
        },
    );
    if let Some(store) = &store {
        restore_documents(&registry, store, &config)?;
    }
    let allowlist = origin::allowlist(&config.allow_websocket_origin, config.port);
    let prefix = config.prefix.clone();
    let (begun, shutdown_rx) = watch::channel(false);
    let websockets = Arc::new(Semaphore::new(config.max_websockets));
    let shutdown = Shutdown {
        begun: Arc::new(begun),
        websockets: websockets.clone(),
        max_websockets: config.max_websockets,
    };
    // With an auth file, keys may carry limits of their own, now or after a reload.
    let limiter = (limits.any() || access.is_some()).then(|| Arc::new(limits::Limits::new(limits)));
    let state = Arc::new(routes::AppState {
        config,
        registry,
        allowlist,
        websockets,
        shutdown: shutdown_rx,
        bokehjs,
        exports: Arc::new(Semaphore::new(MAX_CONCURRENT_EXPORTS)),
        store: store.clone(),
        access,
        limits: limiter,
        metrics,
    });
    let plotwire = Plotwire::new(state.clone());
    let routes = routes::routes(state);
    let router = if prefix.is_empty() {
        routes
    } else {
        Router::new().nest(&prefix, routes)
    };
    Ok(App {
        router,
        shutdown,
        plotwire,
    })
}

/// Opens the store the config names, if it names one.
fn open_store(config: &Config) -> Result<Option<persist::StoreHandle>, ConfigError> {
    let Some(dir) = &config.data_dir else {
        return Ok(None);
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(ConfigError::NoRuntime);
    }
    let store = plotwire_store::SqliteStore::open(
        dir,
        plotwire_store::SqliteOptions {
            durability: config.durability,
            max_bytes: config.max_store_bytes,
        },
    )?;
    tracing::info!(data_dir = %dir.display(), durability = ?config.durability, "store opened");
    Ok(Some(persist::StoreHandle {
        store: Arc::new(store),
        max_decoded_bytes: config.max_decoded_bytes,
        snapshot_bytes: config.snapshot_bytes,
    }))
}

/// Brings back every stored document. One that cannot be replayed is left out, loudly:
/// its log stays in the store untouched.
fn restore_documents(
    registry: &Arc<registry::Registry>,
    handle: &persist::StoreHandle,
    config: &Config,
) -> Result<(), ConfigError> {
    let names = handle.store.documents()?;
    if names.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    tracing::info!(
        documents = names.len(),
        "restoring published documents from the store"
    );
    for name in names {
        let records = handle.store.read_from(&name, 0)?;
        let entries = records.len();
        match persist::restore(&records, config.max_models, config.max_decoded_bytes) {
            Ok(restored) => {
                tracing::info!(document = %name, seq = restored.version, entries, "document restored");
                registry.restore(&name, restored);
            }
            Err(e) => {
                tracing::error!(document = %name, error = %e, "cannot restore this document: it is not served; its log is kept as it is");
            }
        }
    }
    tracing::info!(
        ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "documents restored"
    );
    Ok(())
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
    /// The TLS certificate or key (`--ssl-certfile`, `--ssl-keyfile`) cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// The example dashboards (`--examples`) could not be published.
    #[error("cannot publish the example dashboards: {0}")]
    Examples(#[from] inprocess::PlotwireError),
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM: what [`serve`] stops on, for a host app's
/// `with_graceful_shutdown` too.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// On every SIGHUP until the task is aborted, rereads what the server was started with:
/// the auth file and the TLS certificates. One that fails to load is logged and the one
/// in force stays. With neither, says there is nothing to reload: a SIGHUP
/// (`systemctl reload`) never ends the server.
#[cfg(unix)]
async fn reload_on_hangup(plotwire: Plotwire, certs: Option<Arc<tls::TlsCerts>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP: nothing will be reloaded");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        let access = match plotwire.reload_access() {
            Ok(reloaded) => reloaded,
            Err(e) => {
                tracing::error!(error = %e, "the auth file was not reloaded; the rules in force stay");
                true
            }
        };
        if let Some(certs) = &certs {
            let files = certs.files();
            match certs.reload() {
                Ok(()) => tracing::info!(
                    cert = %files.cert.display(),
                    key = %files.key.display(),
                    "certificates reloaded"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "certificates not reloaded: the ones in use stay")
                }
            }
        } else if !access {
            tracing::info!("SIGHUP: nothing to reload (no --auth-file, no --ssl-certfile)");
        }
    }
}

/// Runs the server on `config.address:config.port` until Ctrl-C or SIGTERM, on a
/// [`listener::FastAckListener`] (at most `max_connections` connections, TCP_NODELAY,
/// TCP keepalive, and TCP_QUICKACK on Linux), or with `config.tls` on a
/// [`tls::TlsListener`] over it, whose certificates are reloaded on SIGHUP. `on_ready` is
/// called with the bound address.
///
/// On a signal, new connections stop, every websocket gets close 1001, requests in
/// flight finish, and the call returns within `shutdown_grace` whatever is left open.
pub async fn serve(config: Config, on_ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    let addr = SocketAddr::new(config.address, config.port);
    let grace = config.shutdown_grace;
    let max_connections = config.max_connections;
    let examples = config.examples;
    let certs = config.tls.clone().map(tls::TlsCerts::load).transpose()?;
    let App {
        router,
        shutdown,
        plotwire,
    } = app(config)?;
    if examples {
        demos::start(&plotwire).await?;
    }
    #[cfg(unix)]
    let reloads = tokio::spawn(reload_on_hangup(plotwire.clone(), certs.clone()));
    #[cfg(not(unix))]
    tracing::warn!(
        "no SIGHUP on this platform: the auth file and certificates are read only at start"
    );
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Io { addr, source })?;
    let bound = tcp
        .local_addr()
        .map_err(|source| ServeError::Io { addr, source })?;
    let result = match certs {
        None => {
            on_ready(bound);
            let listener = listener::FastAckListener::new(tcp, max_connections);
            run(listener, router, shutdown, grace, bound).await
        }
        Some(certs) => {
            let listener = tls::TlsListener::new(tcp, max_connections, certs)
                .map_err(|source| ServeError::Io { addr, source })?;
            on_ready(bound);
            run(listener, router, shutdown, grace, bound).await
        }
    };
    #[cfg(unix)]
    reloads.abort();
    result
}

/// Serves `router` on `listener` until a stop signal, then shuts down as [`serve`] says.
async fn run<L>(
    listener: L,
    router: Router,
    shutdown: Shutdown,
    grace: Duration,
    bound: SocketAddr,
) -> Result<(), ServeError>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let trigger = shutdown.clone();
    // axum gives `ConnectInfo<SocketAddr>` (the peer, [`forwarded::Peer`]) for any
    // listener only through `tap_io`; the tap itself has nothing to do.
    let listener = axum::serve::ListenerExt::tap_io(listener, |_| {});
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        stop_signal().await;
        tracing::info!(
            grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            "shutting down: closing websockets with 1001, finishing requests"
        );
        trigger.begin();
    })
    .into_future();
    let deadline = async {
        shutdown.begun().await;
        let started = tokio::time::Instant::now();
        tokio::time::sleep(grace).await;
        started
    };
    let started = tokio::select! {
        result = server => {
            result.map_err(|source| ServeError::Io { addr: bound, source })?;
            tokio::time::Instant::now()
        }
        _ = deadline => {
            tracing::warn!("shutdown grace period over with HTTP requests still open: exiting");
            return Ok(());
        }
    };
    let left = grace.saturating_sub(started.elapsed());
    if !shutdown.drained(left).await {
        tracing::warn!("shutdown grace period over with websockets still open: exiting");
    }
    tracing::info!("stopped");
    Ok(())
}
