//! Server settings, with Bokeh's defaults where Bokeh has the same setting.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// How session ids are made and checked (Bokeh's `--session-ids`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionIdMode {
    /// Ids are generated unsigned; tokens are not checked for signatures.
    #[default]
    Unsigned,
    /// Ids are generated and signed; tokens must be signed with the secret key.
    Signed,
    /// Like `Signed`, but the server never generates ids: pages need an id or a token.
    ExternalSigned,
}

impl SessionIdMode {
    /// Whether signatures are made and checked.
    pub fn signs(self) -> bool {
        !matches!(self, SessionIdMode::Unsigned)
    }
}

/// Everything the server needs to run. [`Config::default`] matches `bokeh serve`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (default 127.0.0.1).
    pub address: IpAddr,
    /// Port to listen on (default 5006).
    pub port: u16,
    /// URL prefix, normalised to `""` or `"/x"`.
    pub prefix: String,
    /// Allowed websocket origins (`host[:port]`, `*` wildcards). Empty means
    /// `localhost:<port>`, as Bokeh.
    pub allow_websocket_origin: Vec<String>,
    /// Session id mode.
    pub session_ids: SessionIdMode,
    /// Secret key for signing; required by the signed modes.
    pub secret_key: Option<String>,
    /// Interval between websocket pings; `None` disables them (Bokeh: 37 s).
    pub keep_alive: Option<Duration>,
    /// How often unused sessions are looked for (Bokeh: 17 s).
    pub check_unused_sessions: Duration,
    /// How long a session without connections lives (Bokeh: 15 s).
    pub unused_session_lifetime: Duration,
    /// Lifetime of tokens minted for pages (Bokeh: 300 s).
    pub session_token_expiration: Duration,
    /// Largest accepted websocket message in bytes (Bokeh: 20 MiB).
    pub websocket_max_message_size: usize,
    /// Most messages queued for one connection before it is closed as too slow.
    pub outbox_max_messages: usize,
    /// Most bytes queued for one connection before it is closed as too slow.
    pub outbox_max_bytes: usize,
    /// Most binary buffers accepted in one Bokeh message.
    pub max_buffers_per_message: usize,
    /// Most bytes of one Bokeh message, all its fragments together (header, metadata,
    /// content and buffers). Each fragment is also bounded by
    /// `websocket_max_message_size`.
    pub max_message_bytes: usize,
    /// Most bytes that the inline gzip `bytes` values of one message may inflate to.
    pub max_decoded_bytes: usize,
    /// Most models one document may hold.
    pub max_models: usize,
    /// Most open TCP connections ([`crate::serve`] only; an app that mounts the router
    /// limits its own listener).
    pub max_connections: usize,
    /// Most open websockets.
    pub max_websockets: usize,
    /// Most requests (PULL-DOC-REQ, PUSH-DOC, PATCH-DOC) one connection may have waiting
    /// for their replies; the connection is not read further until one is answered.
    pub max_inflight_requests: usize,
    /// Most bytes of requests queued for one session owner; readers wait beyond it.
    pub session_queue_bytes: usize,
    /// A connection from which nothing (not even a pong) arrived for this long is
    /// closed; `None` never closes silent peers.
    pub dead_peer_timeout: Option<Duration>,
    /// How long a shutdown waits for websockets and requests to finish.
    pub shutdown_grace: Duration,
    /// List session ids on the index page even when session ids are signed (where they
    /// are the only access control).
    pub index_sessions: bool,
    /// Most warnings per second that one kind of client-caused problem may log; the rest
    /// are counted and reported in the next line that gets through.
    pub warnings_per_second: u32,
    /// Most published documents the server holds.
    pub max_documents: usize,
    /// Most bytes of one REST request body.
    pub max_body_bytes: usize,
    /// Most bytes of data one export (`export.html`, `json_item`) may embed, estimated
    /// before it is written; a bigger one is refused with 413 (`max_size` cuts it).
    pub max_export_bytes: usize,
    /// Whether [`crate::serve`] publishes the example dashboards ([`crate::demos`]).
    pub examples: bool,
    /// Viewer events kept per published document, for producers that resume.
    pub events_kept: usize,
    /// How long a view without connections keeps its state for a reconnect.
    pub view_linger: Duration,
    /// Sources with more rows than this are downsampled for each view (level of
    /// detail), unless their spec says otherwise.
    pub lod_threshold: u64,
    /// Origins allowed to read the REST API from pages (CORS); `*` allows any.
    pub cors_origins: Vec<String>,
    /// Where published documents are stored (`plotwire.sqlite3` in it); `None` keeps
    /// them in memory only, lost at exit. The `plotwire` binary defaults to
    /// `./plotwire-data`; the library to `None`.
    pub data_dir: Option<PathBuf>,
    /// When a write counts as stored (`--durability`).
    pub durability: plotwire_store::Durability,
    /// The most bytes the store's file may grow to; past it, writes are refused with
    /// 507 as on a full disk. `None`: as much as the disk holds.
    pub max_store_bytes: Option<u64>,
    /// Bytes of entries a document's log gathers after its last whole copy before a
    /// snapshot of the live document replaces them (and at least twice that copy).
    pub snapshot_bytes: usize,
    /// A directory to read the BokehJS 3.9.2 bundles from at start (`--bokehjs-dir`), such
    /// as the `bokeh/server/static/js` directory of the `bokeh==3.9.2` Python package.
    /// `None` serves the bundles embedded at build time (feature `embedded-bokehjs`); a
    /// build without that feature needs this.
    pub bokehjs_dir: Option<PathBuf>,
    /// The auth file (`--auth-file`, `docs/access.md`): API keys, private documents and
    /// the share-link secret. `None` turns access control off: everyone may do anything.
    pub auth_file: Option<PathBuf>,
    /// Rate limits and quotas per key and per client address (`--limit-*`); all off by
    /// default.
    pub limits: crate::limits::LimitSettings,
    /// Serve HTTPS and wss:// with this certificate and key (`--ssl-certfile`,
    /// `--ssl-keyfile`); `None` serves plain HTTP. See `docs/tls.md`.
    pub tls: Option<TlsFiles>,
    /// Whether `GET /metrics` answers with the Prometheus metrics (`docs/metrics.md`);
    /// when false it is not routed. The metrics are counted either way (a few atomic adds).
    pub metrics: bool,
    /// Whether the scheme, host and client address are taken from a reverse proxy's
    /// `X-Forwarded-*` headers, and from which peers (`--use-xheaders`,
    /// `--trusted-proxies`; [`crate::forwarded`]).
    pub forwarding: crate::forwarded::Forwarding,
}

/// The PEM files of a TLS certificate chain and its private key. [`serve`](crate::serve)
/// reads them at start and again on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (`--ssl-certfile`).
    pub cert: PathBuf,
    /// The unencrypted private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) (`--ssl-keyfile`).
    pub key: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 5006,
            prefix: String::new(),
            allow_websocket_origin: Vec::new(),
            session_ids: SessionIdMode::Unsigned,
            secret_key: None,
            keep_alive: Some(Duration::from_millis(37_000)),
            check_unused_sessions: Duration::from_millis(17_000),
            unused_session_lifetime: Duration::from_millis(15_000),
            session_token_expiration: Duration::from_secs(300),
            websocket_max_message_size: 20 * 1024 * 1024,
            outbox_max_messages: 4096,
            outbox_max_bytes: 256 * 1024 * 1024,
            max_buffers_per_message: 4096,
            max_message_bytes: 256 * 1024 * 1024,
            max_decoded_bytes: 256 * 1024 * 1024,
            max_models: 100_000,
            max_connections: 10_000,
            max_websockets: 10_000,
            max_inflight_requests: 16,
            session_queue_bytes: 256 * 1024 * 1024,
            dead_peer_timeout: Some(Duration::from_secs(60)),
            shutdown_grace: Duration::from_secs(10),
            index_sessions: false,
            warnings_per_second: 10,
            max_documents: 10_000,
            max_body_bytes: 256 * 1024 * 1024,
            max_export_bytes: 512 * 1024 * 1024,
            examples: false,
            events_kept: 10_000,
            view_linger: Duration::from_secs(60),
            lod_threshold: crate::lod::DEFAULT_THRESHOLD,
            cors_origins: vec!["*".to_owned()],
            data_dir: None,
            durability: plotwire_store::Durability::Full,
            max_store_bytes: None,
            snapshot_bytes: 64 << 20,
            bokehjs_dir: None,
            auth_file: None,
            limits: crate::limits::LimitSettings::default(),
            tls: None,
            metrics: true,
            forwarding: crate::forwarded::Forwarding::default(),
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A signed mode without a secret key.
    #[error("--session-ids {0} needs a secret key: set PLOTWIRE_SECRET_KEY (or BOKEH_SECRET_KEY)")]
    MissingSecret(&'static str),
    /// A limit of zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// A limit too large to hold.
    #[error("{0} must be at most {1}")]
    TooLarge(&'static str, usize),
    /// The data dir cannot be used.
    #[error("cannot use the data dir: {0}")]
    Store(#[from] plotwire_store::StoreError),
    /// Stored documents are restored by owner tasks, which need a tokio runtime.
    #[error("a server with a data dir must be built inside a tokio runtime")]
    NoRuntime,
    /// No usable BokehJS bundles.
    #[error(transparent)]
    BokehJs(#[from] crate::assets::BokehJsError),
    /// The auth file cannot be used.
    #[error(transparent)]
    Access(#[from] crate::access::RulesError),
}

impl Config {
    /// Normalises the prefix and checks that the settings fit together.
    pub fn validated(mut self) -> Result<Config, ConfigError> {
        self.prefix = normalize_prefix(&self.prefix);
        if self.session_ids.signs() && self.secret_key.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::MissingSecret(match self.session_ids {
                SessionIdMode::Signed => "signed",
                _ => "external-signed",
            }));
        }
        for (name, v) in [
            (
                "--websocket-max-message-size",
                self.websocket_max_message_size,
            ),
            ("--outbox-max-messages", self.outbox_max_messages),
            ("--outbox-max-bytes", self.outbox_max_bytes),
            ("--max-buffers-per-message", self.max_buffers_per_message),
            ("--max-message-bytes", self.max_message_bytes),
            ("--max-decoded-bytes", self.max_decoded_bytes),
            ("--max-models", self.max_models),
            ("--max-connections", self.max_connections),
            ("--max-websockets", self.max_websockets),
            ("--max-inflight-requests", self.max_inflight_requests),
            ("--session-queue-bytes", self.session_queue_bytes),
            ("--max-documents", self.max_documents),
            ("--max-body-bytes", self.max_body_bytes),
            ("--max-export-bytes", self.max_export_bytes),
            ("--events-kept", self.events_kept),
            ("--snapshot-bytes", self.snapshot_bytes),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        // Semaphores hold at most this many permits.
        let most = tokio::sync::Semaphore::MAX_PERMITS;
        for (name, v) in [
            ("--max-websockets", self.max_websockets),
            ("--max-connections", self.max_connections),
            ("--max-inflight-requests", self.max_inflight_requests),
            ("--session-queue-bytes", self.session_queue_bytes),
        ] {
            if v > most {
                return Err(ConfigError::TooLarge(name, most));
            }
        }
        Ok(self)
    }

    /// Whether the index page may list session ids: always when ids are unsigned (then
    /// anyone can open any id anyway), in signed modes only with `index_sessions`.
    pub fn lists_sessions(&self) -> bool {
        self.index_sessions || !self.session_ids.signs()
    }

    /// The scheme of the server's own URLs: `https` when it serves TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The secret key bytes when signing is on.
    pub fn signing_key(&self) -> Option<&[u8]> {
        if self.session_ids.signs() {
            self.secret_key.as_deref().map(str::as_bytes)
        } else {
            None
        }
    }
}

impl Config {
    /// A builder of a config with the common settings, starting from [`Config::default`]
    /// (the settings of `bokeh serve`).
    ///
    /// ```
    /// let config = plotwire_server::Config::builder()
    ///     .prefix("/plots")
    ///     .port(8080)
    ///     .max_documents(100)
    ///     .build()?;
    /// assert_eq!(config.prefix, "/plots");
    /// # Ok::<(), plotwire_server::ConfigError>(())
    /// ```
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            config: Config::default(),
        }
    }
}

/// Builds a [`Config`] setting by setting; [`ConfigBuilder::build`] checks it. Every other
/// setting can still be changed on the [`Config`] it gives, field by field.
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// The URL prefix the routes hang off, e.g. `"/plots"` for a host app that mounts
    /// plotwire there (see `docs/library.md`); pages and scripts link under it.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.prefix = prefix.into();
        self
    }

    /// The address [`crate::serve`] listens on (a host app binds its own listener).
    pub fn address(mut self, address: IpAddr) -> Self {
        self.config.address = address;
        self
    }

    /// The port the server is reached on: [`crate::serve`] listens on it, and with no
    /// [`ConfigBuilder::allow_websocket_origin`] the websocket allowlist is
    /// `localhost:<port>` (same-origin pages are always allowed).
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }

    /// Websocket origins allowed besides same-origin pages (`host[:port]`, `*` wildcards).
    pub fn allow_websocket_origin<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.allow_websocket_origin = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Signs session ids and tokens with `secret_key` (Bokeh's `--session-ids signed`).
    pub fn signed_sessions(mut self, secret_key: impl Into<String>) -> Self {
        self.config.session_ids = SessionIdMode::Signed;
        self.config.secret_key = Some(secret_key.into());
        self
    }

    /// Keeps published documents in `dir` (`plotwire.sqlite3` in it), restored at start;
    /// without it they live in memory only. The app must then be built inside a tokio
    /// runtime.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = Some(dir.into());
        self
    }

    /// Serves the BokehJS 3.9.2 bundles of `dir` (e.g. the Python package's
    /// `bokeh/server/static/js`) instead of the embedded ones; required without the
    /// `embedded-bokehjs` feature.
    pub fn bokehjs_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.bokehjs_dir = Some(dir.into());
        self
    }

    /// Turns access control on with the auth file at `path` (`docs/access.md`).
    pub fn auth_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.auth_file = Some(path.into());
        self
    }

    /// Whether `GET /metrics` is routed (it is by default).
    pub fn metrics(mut self, on: bool) -> Self {
        self.config.metrics = on;
        self
    }

    /// Believes the `X-Forwarded-*` (and `Forwarded`) headers of requests from
    /// `trusted_proxies` (empty: loopback only) for the scheme, host and client address
    /// ([`crate::forwarded`]). A host app must then serve the router with
    /// `into_make_service_with_connect_info::<SocketAddr>()`, or no peer is trusted.
    pub fn use_xheaders(mut self, trusted_proxies: Vec<crate::forwarded::ProxyNet>) -> Self {
        self.config.forwarding = crate::forwarded::Forwarding {
            use_xheaders: true,
            trusted_proxies,
        };
        self
    }

    /// Most published documents held at once.
    pub fn max_documents(mut self, max: usize) -> Self {
        self.config.max_documents = max;
        self
    }

    /// Most open websockets.
    pub fn max_websockets(mut self, max: usize) -> Self {
        self.config.max_websockets = max;
        self
    }

    /// Origins allowed to read the REST API from pages (CORS); `*` allows any, none
    /// allows none.
    pub fn cors_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.cors_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Interval between websocket pings; `None` sends none.
    pub fn keep_alive(mut self, every: Option<Duration>) -> Self {
        self.config.keep_alive = every;
        self
    }

    /// How long a shutdown waits for websockets to close ([`crate::Shutdown::drained`]).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// Sources with more rows than this are downsampled for each view.
    pub fn lod_threshold(mut self, rows: u64) -> Self {
        self.config.lod_threshold = rows;
        self
    }

    /// The config, checked ([`Config::validated`]).
    pub fn build(self) -> Result<Config, ConfigError> {
        self.config.validated()
    }
}

/// `--prefix /foo/` → `/foo`; `""` or `/` → `""` (Bokeh's rule).
pub fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_normalise() {
        assert_eq!(normalize_prefix("/foo/"), "/foo");
        assert_eq!(normalize_prefix("foo"), "/foo");
        assert_eq!(normalize_prefix("foo/"), "/foo");
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix(""), "");
    }

    #[test]
    fn signed_mode_needs_a_secret() {
        let c = Config {
            session_ids: SessionIdMode::Signed,
            ..Config::default()
        };
        assert!(c.validated().is_err());
    }

    #[test]
    fn the_builder_sets_what_it_names_and_checks_the_result() {
        let c = Config::builder()
            .prefix("plots/")
            .port(8123)
            .allow_websocket_origin(["example.com:443"])
            .signed_sessions("s3cret")
            .bokehjs_dir("/opt/bokeh/js")
            .max_documents(7)
            .cors_origins(Vec::<String>::new())
            .keep_alive(None)
            .shutdown_grace(Duration::from_millis(250))
            .lod_threshold(99)
            .build();
        let c = match c {
            Ok(c) => c,
            Err(e) => panic!("a good config was refused: {e}"),
        };
        assert_eq!(c.prefix, "/plots", "normalised by build");
        assert_eq!(c.port, 8123);
        assert_eq!(c.allow_websocket_origin, ["example.com:443"]);
        assert_eq!(c.session_ids, SessionIdMode::Signed);
        assert_eq!(c.signing_key(), Some(&b"s3cret"[..]));
        assert_eq!(c.bokehjs_dir, Some(PathBuf::from("/opt/bokeh/js")));
        assert_eq!(c.max_documents, 7);
        assert!(c.cors_origins.is_empty());
        assert_eq!(c.keep_alive, None);
        assert_eq!(c.shutdown_grace, Duration::from_millis(250));
        assert_eq!(c.lod_threshold, 99);
        // What it does not name stays as bokeh serve has it.
        assert_eq!(
            c.unused_session_lifetime,
            Config::default().unused_session_lifetime
        );

        assert!(matches!(
            Config::builder().max_documents(0).build(),
            Err(ConfigError::Zero("--max-documents"))
        ));
        assert!(matches!(
            Config::builder().signed_sessions("").build(),
            Err(ConfigError::MissingSecret("signed"))
        ));
    }
}
