//! The `plotwire` command line. Thin: it parses flags and calls the server library.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use plotwire_server::{Config, SessionIdMode};

mod access;
mod commands;
mod config_file;
mod export;
mod export_data;
mod push;
mod remote;

/// jemalloc instead of glibc malloc. glibc raises its mmap threshold after the first big
/// free, so the multi-megabyte buffers of later pulls come from per-thread arenas it keeps:
/// a server that answered 100 pulls of a 1e6-point document held ~500 MiB it no longer
/// used (bench workload 9). jemalloc hands freed pages back to the system after a few
/// seconds (mimalloc, also tried, kept ~330 MiB).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// plotwire: a fast, Bokeh-compatible server for live, two-way plots of streaming data.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server. Unmodified BokehJS 3.9.2 and bokeh.client 3.9.2 talk to it like to `bokeh serve`.
    Serve(Box<ServeArgs>),
    /// Publish a dashboard spec, a Bokeh json_item or a DocJson under a name.
    Publish(commands::PublishArgs),
    /// Stream CSV or NDJSON rows from a file or stdin into a source.
    Push(push::PushArgs),
    /// Print what viewers do in a document, as NDJSON, as it happens.
    Events(commands::EventsArgs),
    /// Read a source back (CSV, NDJSON or JSON).
    Get(commands::GetArgs),
    /// List the published documents.
    Ls(commands::LsArgs),
    /// Copy a data dir's store, consistently, while the server runs.
    Backup(BackupArgs),
    /// Write a published document as one standalone HTML file (or a json_item) that keeps updating.
    Export(export::ExportArgs),
    /// Write one source of a stored document as CSV or Arrow, from the data dir (the server may be running).
    ExportData(export_data::ExportArgs),
    /// Manage the auth file of access control: its share secret and API keys.
    #[command(subcommand)]
    Keys(access::KeysCommand),
    /// Print a signed, expiring, read-only link to a document (needs a key that may publish it).
    Share(access::ShareArgs),
    /// Compact a data dir's store by hand (the server must be stopped; a running one compacts after its snapshots).
    Gc(GcArgs),
}

/// `plotwire gc` arguments.
#[derive(Args)]
#[command(after_help = "Example:\n  plotwire gc --data-dir ./plotwire-data")]
struct GcArgs {
    /// The data dir to compact.
    #[arg(long, env = "PLOTWIRE_DATA_DIR", default_value = "./plotwire-data")]
    data_dir: std::path::PathBuf,
}

/// `plotwire backup` arguments.
#[derive(Args)]
#[command(
    after_help = "Example:\n  plotwire backup /backups/plotwire-2026-12-01 --data-dir ./plotwire-data\n\nThe copy is itself a data dir: `plotwire serve --data-dir <copy>` serves it."
)]
struct BackupArgs {
    /// The new directory to write the copy into (created; must not hold a store).
    path: std::path::PathBuf,
    /// The data dir to copy.
    #[arg(long, env = "PLOTWIRE_DATA_DIR", default_value = "./plotwire-data")]
    data_dir: std::path::PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum SessionIds {
    /// Generate unsigned ids; accept any token without a signature check.
    Unsigned,
    /// Generate signed ids; require tokens signed with the secret key.
    Signed,
    /// Require signed tokens and never generate ids (pages need an id or a token).
    ExternalSigned,
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    /// fsync before every acknowledgement.
    Full,
    /// fsync every --sync-every milliseconds.
    Relaxed,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Args)]
struct ServeArgs {
    /// A TOML file holding any of these flags (`max-body-bytes = 1048576`); a flag or its
    /// environment variable overrides the file.
    #[arg(long, env = "PLOTWIRE_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Port to listen on.
    #[arg(long, env = "PLOTWIRE_PORT", default_value_t = 5006)]
    port: u16,
    /// Address to listen on.
    #[arg(long, env = "PLOTWIRE_ADDRESS", default_value = "127.0.0.1")]
    address: IpAddr,
    /// URL prefix to serve everything under, e.g. /plots.
    #[arg(long, env = "PLOTWIRE_PREFIX", default_value = "")]
    prefix: String,
    /// Websocket origin allowed to connect, as host[:port] with optional * wildcards (repeatable).
    /// Same-origin pages and clients that send no Origin (bokeh.client) are always allowed.
    /// Default: localhost:<port>. BOKEH_ALLOW_WS_ORIGIN (comma-separated) is also read.
    #[arg(
        long = "allow-websocket-origin",
        env = "PLOTWIRE_ALLOW_WEBSOCKET_ORIGIN",
        value_delimiter = ','
    )]
    allow_websocket_origin: Vec<String>,
    /// Take the scheme, host and client address from a reverse proxy's X-Forwarded-Proto,
    /// X-Forwarded-Host and X-Forwarded-For (or X-Real-IP, or Forwarded) headers, as
    /// `bokeh serve --use-xheaders`; only from --trusted-proxies peers.
    #[arg(long, env = "BOKEH_USE_XHEADERS")]
    use_xheaders: bool,
    /// Peers whose forwarding headers are believed with --use-xheaders, as IP addresses or
    /// CIDR networks, comma-separated. Default: loopback only (127.0.0.0/8 and ::1).
    #[arg(
        long,
        env = "PLOTWIRE_TRUSTED_PROXIES",
        value_delimiter = ',',
        requires = "use_xheaders"
    )]
    trusted_proxies: Vec<plotwire_server::forwarded::ProxyNet>,
    /// How session ids are generated and checked. The secret key comes from
    /// PLOTWIRE_SECRET_KEY or BOKEH_SECRET_KEY. Default: signed if BOKEH_SIGN_SESSIONS is
    /// true, else unsigned.
    #[arg(long, value_enum, env = "PLOTWIRE_SESSION_IDS")]
    session_ids: Option<SessionIds>,
    /// Milliseconds between websocket keep-alive pings (0 disables them).
    #[arg(long, env = "PLOTWIRE_KEEP_ALIVE", default_value_t = 37_000)]
    keep_alive: u64,
    /// Milliseconds between checks for unused sessions.
    #[arg(long, env = "PLOTWIRE_CHECK_UNUSED_SESSIONS", default_value_t = 17_000)]
    check_unused_sessions: u64,
    /// Milliseconds a session without connections is kept.
    #[arg(
        long,
        env = "PLOTWIRE_UNUSED_SESSION_LIFETIME",
        default_value_t = 15_000
    )]
    unused_session_lifetime: u64,
    /// Seconds that tokens minted for pages stay valid.
    #[arg(long, env = "PLOTWIRE_SESSION_TOKEN_EXPIRATION", default_value_t = 300)]
    session_token_expiration: u64,
    /// Largest websocket message accepted, in bytes; larger ones close the socket with 1009.
    #[arg(long, env = "PLOTWIRE_WEBSOCKET_MAX_MESSAGE_SIZE", default_value_t = 20 * 1024 * 1024)]
    websocket_max_message_size: usize,
    /// Most messages queued for one viewer before it is closed as too slow (it reconnects and resyncs).
    #[arg(long, env = "PLOTWIRE_OUTBOX_MAX_MESSAGES", default_value_t = 4096)]
    outbox_max_messages: usize,
    /// Most bytes queued for one viewer before it is closed as too slow (counted until written to the socket).
    #[arg(long, env = "PLOTWIRE_OUTBOX_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
    outbox_max_bytes: usize,
    /// Most bytes of one Bokeh message, all fragments together; more closes the socket with 1009.
    #[arg(long, env = "PLOTWIRE_MAX_MESSAGE_BYTES", default_value_t = 256 * 1024 * 1024)]
    max_message_bytes: usize,
    /// Most binary buffers in one Bokeh message; more closes the socket with 1009.
    #[arg(long, env = "PLOTWIRE_MAX_BUFFERS_PER_MESSAGE", default_value_t = 4096)]
    max_buffers_per_message: usize,
    /// Most bytes the inline (gzip, base64) values of one message may inflate to; more gets ERROR.
    #[arg(long, env = "PLOTWIRE_MAX_DECODED_BYTES", default_value_t = 256 * 1024 * 1024)]
    max_decoded_bytes: usize,
    /// Most models one document may hold; a push or patch past it gets ERROR and changes nothing.
    #[arg(long, env = "PLOTWIRE_MAX_MODELS", default_value_t = 100_000)]
    max_models: usize,
    /// Most open TCP connections; past it, new ones wait in the kernel's backlog.
    #[arg(long, env = "PLOTWIRE_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Most open websockets; past it, the upgrade gets 503.
    #[arg(long, env = "PLOTWIRE_MAX_WEBSOCKETS", default_value_t = 10_000)]
    max_websockets: usize,
    /// Most requests one connection may have waiting for replies; it is not read further meanwhile.
    #[arg(long, env = "PLOTWIRE_MAX_INFLIGHT_REQUESTS", default_value_t = 16)]
    max_inflight_requests: usize,
    /// Most bytes of requests queued for one session; readers wait past it.
    #[arg(long, env = "PLOTWIRE_SESSION_QUEUE_BYTES", default_value_t = 256 * 1024 * 1024)]
    session_queue_bytes: usize,
    /// Milliseconds a connection may stay silent (no message, no pong) before it is dropped (0: never).
    #[arg(long, env = "PLOTWIRE_DEAD_PEER_TIMEOUT", default_value_t = 60_000)]
    dead_peer_timeout: u64,
    /// Milliseconds a shutdown (SIGTERM, Ctrl-C) waits for websockets and requests to finish.
    #[arg(long, env = "PLOTWIRE_SHUTDOWN_GRACE", default_value_t = 10_000)]
    shutdown_grace: u64,
    /// List session ids on the index page in the signed modes too (there they are the only access control).
    #[arg(long, env = "PLOTWIRE_INDEX_SESSIONS")]
    index_sessions: bool,
    /// Most warnings per second for each kind of client-caused problem; the rest are counted.
    #[arg(long, env = "PLOTWIRE_WARNINGS_PER_SECOND", default_value_t = 10)]
    warnings_per_second: u32,
    /// Most published documents the server holds; publishing more gets 507.
    #[arg(long, env = "PLOTWIRE_MAX_DOCUMENTS", default_value_t = 10_000)]
    max_documents: usize,
    /// Most bytes of one REST request body; a larger body gets 413.
    #[arg(long, env = "PLOTWIRE_MAX_BODY_BYTES", default_value_t = 256 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Most bytes of data one export (export.html, json_item) may embed; a bigger one gets 413.
    #[arg(long, env = "PLOTWIRE_MAX_EXPORT_BYTES", default_value_t = 512 * 1024 * 1024)]
    max_export_bytes: usize,
    /// Publish a few live example dashboards, fed by producers inside the server
    /// (examples/random-walk, examples/training, examples/sensors, examples/widgets).
    #[arg(long)]
    examples: bool,
    /// Viewer events kept per published document, for producers that resume with a cursor.
    #[arg(long, env = "PLOTWIRE_EVENTS_KEPT", default_value_t = 10_000)]
    events_kept: usize,
    /// Milliseconds a view of a published document keeps its state (ranges, widget values) after its last connection closes.
    #[arg(long, env = "PLOTWIRE_VIEW_LINGER", default_value_t = 60_000)]
    view_linger: u64,
    /// Rows above which a source of a spec-built dashboard is downsampled for each view (level of detail; a source's `lod` in the spec overrides it).
    #[arg(long, env = "PLOTWIRE_LOD_THRESHOLD", default_value_t = 100_000)]
    lod_threshold: u64,
    /// Origins whose pages may read the REST API (CORS on GETs), comma-separated; `*` for any.
    #[arg(
        long,
        env = "PLOTWIRE_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "*"
    )]
    cors_origins: Vec<String>,
    /// Where published documents are stored, so that they survive a restart (one SQLite file, plotwire.sqlite3, in it); `none` keeps them in memory only.
    #[arg(long, env = "PLOTWIRE_DATA_DIR", default_value = "./plotwire-data")]
    data_dir: String,
    /// When a write counts as stored: `full` fsyncs before every acknowledgement (survives a power cut); `relaxed` acknowledges once the OS has it and fsyncs every --sync-every ms (survives a crash or kill -9; a power cut can lose the last interval).
    #[arg(long, value_enum, env = "PLOTWIRE_DURABILITY", default_value = "full")]
    durability: DurabilityArg,
    /// Milliseconds between fsyncs with --durability relaxed.
    #[arg(long, env = "PLOTWIRE_SYNC_EVERY", default_value_t = 200)]
    sync_every: u64,
    /// The most bytes the store's file may grow to (0: no limit); past it, writes get 507 as on a full disk.
    #[arg(long, env = "PLOTWIRE_MAX_STORE_BYTES", default_value_t = 0)]
    max_store_bytes: u64,
    /// Bytes of writes a document's log gathers after its last whole copy before a snapshot of the live document replaces them (and at least twice that copy): bounds the store of a stream with rollover, and the replay at a restart.
    #[arg(long, env = "PLOTWIRE_SNAPSHOT_BYTES", default_value_t = 64 << 20)]
    snapshot_bytes: usize,
    /// Serve the BokehJS 3.9.2 bundles of this directory instead of the embedded ones, e.g. the `bokeh/server/static/js` directory of the bokeh==3.9.2 Python package. Bundles of another version are refused.
    #[arg(long, env = "PLOTWIRE_BOKEHJS_DIR")]
    bokehjs_dir: Option<std::path::PathBuf>,
    /// Turn access control on with this auth file: API keys with scopes, private documents, share links (docs/access.md; `plotwire keys init` writes one). Reread on SIGHUP.
    #[arg(long, env = "PLOTWIRE_AUTH_FILE")]
    auth_file: Option<std::path::PathBuf>,
    /// Requests per second each client may make (per API key, or per client address without one); past it, 429 with Retry-After. 0: no limit.
    #[arg(long, env = "PLOTWIRE_LIMIT_REQUESTS", default_value_t = 0)]
    limit_requests: u32,
    /// Rows per second each client may write through REST stream and replace calls (per key, or per address); past it, 429. 0: no limit.
    #[arg(long, env = "PLOTWIRE_LIMIT_POINTS", default_value_t = 0)]
    limit_points: u32,
    /// Websockets and SSE reads each client may hold open at once (per key, or per address); past it, 429. 0: no limit.
    #[arg(long, env = "PLOTWIRE_LIMIT_CONNECTIONS", default_value_t = 0)]
    limit_connections: usize,
    /// PEM certificate chain (leaf first) to serve HTTPS and wss:// with; needs --ssl-keyfile. Both files are read again on SIGHUP (see docs/tls.md).
    #[arg(long, env = "BOKEH_SSL_CERTFILE", requires = "ssl_keyfile")]
    ssl_certfile: Option<std::path::PathBuf>,
    /// PEM private key (unencrypted) of --ssl-certfile; needs --ssl-certfile.
    #[arg(long, env = "BOKEH_SSL_KEYFILE", requires = "ssl_certfile")]
    ssl_keyfile: Option<std::path::PathBuf>,
    /// Log level: error, warn, info, debug or trace (or a tracing filter such as plotwire_server=debug).
    #[arg(long, env = "PLOTWIRE_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long, value_enum, env = "PLOTWIRE_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

fn config_from(args: &ServeArgs) -> Config {
    let secret_key = std::env::var("PLOTWIRE_SECRET_KEY")
        .or_else(|_| std::env::var("BOKEH_SECRET_KEY"))
        .ok()
        .filter(|s| !s.is_empty());
    let session_ids = match args.session_ids {
        Some(SessionIds::Unsigned) => SessionIdMode::Unsigned,
        Some(SessionIds::Signed) => SessionIdMode::Signed,
        Some(SessionIds::ExternalSigned) => SessionIdMode::ExternalSigned,
        None if env_flag("BOKEH_SIGN_SESSIONS") => SessionIdMode::Signed,
        None => SessionIdMode::Unsigned,
    };
    let mut allow = args.allow_websocket_origin.clone();
    if let Ok(extra) = std::env::var("BOKEH_ALLOW_WS_ORIGIN") {
        allow = extra
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
    }
    Config {
        address: args.address,
        port: args.port,
        prefix: args.prefix.clone(),
        allow_websocket_origin: allow,
        session_ids,
        secret_key,
        keep_alive: (args.keep_alive > 0).then(|| Duration::from_millis(args.keep_alive)),
        check_unused_sessions: Duration::from_millis(args.check_unused_sessions.max(1)),
        unused_session_lifetime: Duration::from_millis(args.unused_session_lifetime),
        session_token_expiration: Duration::from_secs(args.session_token_expiration),
        websocket_max_message_size: args.websocket_max_message_size,
        outbox_max_messages: args.outbox_max_messages,
        outbox_max_bytes: args.outbox_max_bytes,
        max_buffers_per_message: args.max_buffers_per_message,
        max_message_bytes: args.max_message_bytes,
        max_decoded_bytes: args.max_decoded_bytes,
        max_models: args.max_models,
        max_connections: args.max_connections,
        max_websockets: args.max_websockets,
        max_inflight_requests: args.max_inflight_requests,
        session_queue_bytes: args.session_queue_bytes,
        dead_peer_timeout: (args.dead_peer_timeout > 0)
            .then(|| Duration::from_millis(args.dead_peer_timeout)),
        shutdown_grace: Duration::from_millis(args.shutdown_grace),
        index_sessions: args.index_sessions,
        warnings_per_second: args.warnings_per_second,
        max_documents: args.max_documents,
        max_body_bytes: args.max_body_bytes,
        max_export_bytes: args.max_export_bytes,
        examples: args.examples,
        events_kept: args.events_kept,
        view_linger: Duration::from_millis(args.view_linger),
        lod_threshold: args.lod_threshold,
        cors_origins: args.cors_origins.clone(),
        data_dir: (args.data_dir != "none").then(|| args.data_dir.clone().into()),
        durability: match args.durability {
            DurabilityArg::Full => plotwire_store::Durability::Full,
            DurabilityArg::Relaxed => plotwire_store::Durability::Relaxed {
                every_ms: args.sync_every.max(1),
            },
        },
        max_store_bytes: (args.max_store_bytes > 0).then_some(args.max_store_bytes),
        snapshot_bytes: args.snapshot_bytes,
        bokehjs_dir: args.bokehjs_dir.clone(),
        auth_file: args.auth_file.clone(),
        limits: plotwire_server::limits::LimitSettings {
            requests_per_second: args.limit_requests,
            points_per_second: args.limit_points,
            connections: args.limit_connections,
        },
        tls: match (&args.ssl_certfile, &args.ssl_keyfile) {
            (Some(cert), Some(key)) => Some(plotwire_server::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        metrics: true,
        forwarding: plotwire_server::forwarded::Forwarding {
            use_xheaders: args.use_xheaders,
            trusted_proxies: args.trusted_proxies.clone(),
        },
    }
}

/// Sets up logging to stdout through a background writer thread: a runtime worker never
/// waits on a slow or blocked stdout. If the writer falls behind, lines are dropped (and
/// counted by tracing-appender) rather than blocking. The guard flushes on drop.
fn init_logging(
    level: &str,
    format: LogFormat,
) -> Result<tracing_appender::non_blocking::WorkerGuard, String> {
    let filter = match level {
        "error" | "warn" | "info" | "debug" | "trace" => {
            format!("{level},tower_http=warn,hyper=warn")
        }
        other => other.to_owned(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .map_err(|e| format!("bad --log-level {level:?}: {e}"))?;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .finish(std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(guard)
}

/// How long the exit waits for the log writer to flush.
const LOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Flushes the log writer, for at most [`LOG_FLUSH_TIMEOUT`]: with stdout blocked, the
/// writer never finishes, and the process must still exit.
fn finish_logging(guard: tracing_appender::non_blocking::WorkerGuard) {
    let (done, flushed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(guard);
        let _ = done.send(());
    });
    let _ = flushed.recv_timeout(LOG_FLUSH_TIMEOUT);
}

#[tokio::main]
async fn main() -> ExitCode {
    let argv = match config_file::apply::<Cli>(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("plotwire: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(argv);
    match cli.command {
        Command::Serve(args) => {
            let log_guard = match init_logging(&args.log_level, args.log_format) {
                Ok(g) => g,
                Err(e) => {
                    eprintln!("plotwire: {e}");
                    return ExitCode::from(2);
                }
            };
            let config = config_from(&args);
            let prefix = plotwire_server::config::normalize_prefix(&config.prefix);
            let scheme = config.scheme();
            let result = plotwire_server::serve(config, |addr| {
                tracing::info!(
                    "plotwire {} serving on {scheme}://{addr}{prefix}/",
                    env!("CARGO_PKG_VERSION")
                );
            })
            .await;
            finish_logging(log_guard);
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("plotwire: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Publish(args) => finish("publish", commands::publish(args).await),
        Command::Push(args) => finish("push", push::run(args).await),
        Command::Events(args) => finish("events", commands::events(args).await),
        Command::Get(args) => finish("get", commands::get(args).await),
        Command::Ls(args) => finish("ls", commands::ls(args).await),
        Command::Export(args) => finish("export", export::export(args).await),
        Command::Keys(command) => finish("keys", access::keys(command)),
        Command::Share(args) => finish("share", access::share(args).await),
        Command::ExportData(args) => finish("export-data", export_data::export(args)),
        Command::Gc(args) => {
            let compacted = plotwire_store::SqliteStore::compact(&args.data_dir)
                .map(|(before, after)| {
                    eprintln!(
                        "plotwire gc: {} compacted from {:.1} MB to {:.1} MB",
                        args.data_dir.display(),
                        before as f64 / 1e6,
                        after as f64 / 1e6
                    );
                })
                .map_err(|e| e.to_string());
            finish("gc", compacted)
        }
        Command::Backup(args) => {
            let started = std::time::Instant::now();
            let copied = plotwire_store::SqliteStore::backup(&args.data_dir, &args.path)
                .map(|bytes| {
                    eprintln!(
                        "plotwire backup: {} copied to {} ({:.1} MB in {:.1} s)",
                        args.data_dir.display(),
                        args.path.display(),
                        bytes as f64 / 1e6,
                        started.elapsed().as_secs_f64()
                    );
                })
                .map_err(|e| e.to_string());
            finish("backup", copied)
        }
    }
}

/// The exit status of a client subcommand, its error printed.
fn finish(command: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plotwire {command}: {e}");
            ExitCode::FAILURE
        }
    }
}
