//! `plotwire export`: a published document as one standalone HTML file (or a Bokeh
//! `json_item`) that keeps reading from the server (`docs/exports.md`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use plotwire_client::plotwire_api::live::{self, Live, LiveOptions};

use crate::remote::RemoteArgs;

/// How the exported sources stay live.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LiveArg {
    /// AjaxDataSource polling the read-back cursor.
    Ajax,
    /// ServerSentDataSource, resumed with Last-Event-ID.
    Sse,
    /// A static snapshot.
    None,
}

/// What to write.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportKind {
    /// One HTML file with BokehJS inlined.
    Html,
    /// A json_item, for `Bokeh.embed.embed_item(item, "div")`.
    JsonItem,
}

/// `plotwire export` arguments.
#[derive(Args)]
#[command(after_help = "Examples:\n  plotwire export runs/exp42 exp42.html\n  \
    plotwire export runs/exp42 exp42.html --live sse --public-url https://plots.example.com\n  \
    plotwire export runs/exp42 item.json --kind json-item --root loss")]
pub struct ExportArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// The document name.
    name: String,
    /// Where to write; `-` is stdout.
    output: String,
    /// HTML page or json_item.
    #[arg(long, value_enum, default_value = "html")]
    kind: ExportKind,
    /// How the page keeps updating.
    #[arg(long, value_enum, default_value = "ajax")]
    live: LiveArg,
    /// The server's URL as the page's readers reach it (default: --url).
    #[arg(long)]
    public_url: Option<String>,
    /// Polling interval of --live ajax, in milliseconds.
    #[arg(long, default_value_t = live::DEFAULT_INTERVAL_MS)]
    interval: u64,
    /// Rows each source keeps in the page (rollover); all by default.
    #[arg(long)]
    max_size: Option<u64>,
    /// How long the page waits before asking again when the server is away, in milliseconds.
    #[arg(long, default_value_t = live::DEFAULT_RETRY_MS)]
    retry: u64,
    /// For --kind json-item: the root to embed (its name or id); the first by default.
    #[arg(long)]
    root: Option<String>,
}

/// Writes the export.
pub async fn export(args: ExportArgs) -> Result<(), String> {
    let public_url = args.public_url.clone().unwrap_or_else(|| {
        let url = args.remote.url.trim_end_matches('/');
        if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        }
    });
    let options = LiveOptions {
        live: match args.live {
            LiveArg::Ajax => Live::Ajax,
            LiveArg::Sse => Live::Sse,
            LiveArg::None => Live::None,
        },
        public_url: Some(live::check_public_url(&public_url).map_err(|e| e.to_string())?),
        interval_ms: args.interval,
        max_size: args.max_size,
        retry_ms: args.retry,
    };
    let client = args
        .remote
        .client()?
        .with_timeout(std::time::Duration::from_secs(300));
    let started = std::time::Instant::now();
    let body = match args.kind {
        ExportKind::Html => client.export_html(&args.name, &options).await,
        ExportKind::JsonItem => {
            client
                .json_item(&args.name, args.root.as_deref(), &options)
                .await
        }
    }
    .map_err(|e| e.to_string())?;
    if args.output == "-" {
        use std::io::Write;
        std::io::stdout()
            .write_all(&body)
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
    } else {
        let path = PathBuf::from(&args.output);
        std::fs::write(&path, &body)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!(
            "wrote {} ({:.1} MB, {} live, reading from {}) in {:.2} s",
            path.display(),
            body.len() as f64 / 1e6,
            options.live.as_str(),
            public_url,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
