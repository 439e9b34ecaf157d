//! The small client subcommands: `publish`, `ls`, `get` and `events`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use serde_json::Value as Json;

use crate::remote::RemoteArgs;

/// `plotwire publish` arguments.
#[derive(Args)]
#[command(after_help = "Example:\n  plotwire publish runs/exp42 examples/specs/training-run.json")]
pub struct PublishArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// The document name (`runs/exp42`: letters, digits, -_.~ and slashes).
    name: String,
    /// A dashboard spec, a Bokeh `json_item` or a DocJson (told apart by their content).
    file: PathBuf,
    /// Keep at most this many rows in each of the document's sources.
    #[arg(long)]
    max_rows: Option<u64>,
    /// Drop rows older than this: a whole number and s, m, h or d (`7d`).
    #[arg(long)]
    max_age: Option<String>,
}

/// Publishes a document.
pub async fn publish(args: PublishArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let doc: Json = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not JSON: {e}", args.file.display()))?;
    let published = args
        .remote
        .client()?
        .publish_with(
            &args.name,
            &doc,
            &plotwire_client::Retention {
                max_rows: args.max_rows,
                max_age: args.max_age.clone(),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    println!("{}{}", args.remote.url.trim_end_matches('/'), published.url);
    Ok(())
}

/// `plotwire ls` arguments.
#[derive(Args)]
#[command(after_help = "Example:\n  plotwire ls --url http://127.0.0.1:5006")]
pub struct LsArgs {
    #[command(flatten)]
    remote: RemoteArgs,
}

/// Lists the published documents: name, views, last update, title.
pub async fn ls(args: LsArgs) -> Result<(), String> {
    let list = args
        .remote
        .client()?
        .documents()
        .await
        .map_err(|e| e.to_string())?;
    let width = list
        .documents
        .iter()
        .map(|d| d.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{:width$}  VIEWS  UPDATED               TITLE", "NAME");
    for d in &list.documents {
        let _ = writeln!(
            out,
            "{:width$}  {:>5}  {:20}  {}",
            d.name, d.views, d.updated, d.title
        );
    }
    Ok(())
}

/// The formats `plotwire get` writes.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A header row, then one row per line.
    Csv,
    /// One JSON object per row.
    Ndjson,
    /// The server's answer: `{"since","next","reset","rows","data"}`.
    Json,
}

/// `plotwire get` arguments.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  plotwire get runs/exp42 train --format csv > train.csv\n  \
    plotwire get runs/exp42 train --since 17 --format ndjson"
)]
pub struct GetArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// The document name.
    name: String,
    /// The source (its name or id).
    source: String,
    /// Only the rows appended after this cursor (the `next` of an earlier read).
    #[arg(long)]
    since: Option<u64>,
    /// What to write.
    #[arg(long, value_enum, default_value_t = OutputFormat::Csv)]
    format: OutputFormat,
}

/// Reads a source back.
pub async fn get(args: GetArgs) -> Result<(), String> {
    let read = args
        .remote
        .client()?
        .data(&args.name, &args.source, args.since)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let names: Vec<&String> = read.data.keys().collect();
    let cell = |name: &String, row: usize| read.data[name].get(row).cloned().unwrap_or(Json::Null);
    let written = match args.format {
        OutputFormat::Json => serde_json::to_writer(&mut out, &read)
            .map_err(|e| e.to_string())
            .and_then(|()| writeln!(out).map_err(|e| e.to_string())),
        OutputFormat::Csv => (|| {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(&names)?;
            for row in 0..read.rows {
                w.write_record(names.iter().map(|n| match cell(n, row) {
                    Json::String(s) => s,
                    Json::Null => String::new(),
                    other => other.to_string(),
                }))?;
            }
            w.flush()?;
            Ok::<(), csv::Error>(())
        })()
        .map_err(|e| e.to_string()),
        OutputFormat::Ndjson => (|| {
            for row in 0..read.rows {
                let obj: serde_json::Map<String, Json> =
                    names.iter().map(|n| ((*n).clone(), cell(n, row))).collect();
                serde_json::to_writer(&mut out, &obj)?;
                writeln!(out).map_err(serde_json::Error::io)?;
            }
            Ok::<(), serde_json::Error>(())
        })()
        .map_err(|e| e.to_string()),
    };
    match written.and_then(|()| out.flush().map_err(|e| e.to_string())) {
        // The reader is gone (`| head`): what it wanted was written.
        Err(e) if e.contains("Broken pipe") => return Ok(()),
        other => other?,
    }
    eprintln!(
        "plotwire get: {} rows{}; next cursor {}",
        read.rows,
        if read.reset {
            " (the whole content)"
        } else {
            ""
        },
        read.next
    );
    Ok(())
}

/// `plotwire events` arguments.
#[derive(Args)]
#[command(
    after_help = "Example:\n  plotwire events runs/exp42 --since 0 | jq 'select(.kind == \"change\")'"
)]
pub struct EventsArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// The document name.
    name: String,
    /// Start after this event (0: every event still kept).
    #[arg(long, default_value_t = 0)]
    since: u64,
}

/// Prints viewer events as NDJSON as they happen, until interrupted.
pub async fn events(args: EventsArgs) -> Result<(), String> {
    let client = args.remote.client()?;
    let mut events = Box::pin(client.events(&args.name, args.since));
    let mut out = std::io::stdout();
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| e.to_string())?;
        let line = serde_json::to_string(&event).map_err(|e| e.to_string())?;
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            // The reader is gone (`| head`): stop quietly.
            return Ok(());
        }
    }
    Ok(())
}
