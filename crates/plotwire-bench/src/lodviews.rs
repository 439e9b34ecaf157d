//! `plotwire-bench lod-views`: issue 10's "streaming into a marked source with 100 views
//! open: ≥ 10 M points/s, with the aggregates kept current", against `plotwire serve`
//! alone (Bokeh has no level of detail to compare with).
//!
//! Each round publishes a dashboard spec with one line plot over a `"lod": true` source
//! (`max_rows` bounds it), opens `--views` views and pulls each as a browser would, then
//! one REST producer streams `--batch-points`-row raw batches back to back (one in
//! flight, `x` the row index, `y` a sawtooth) for `--seconds`. Meanwhile every view reads
//! what the server sends it: downsampled copies of the source, each one
//! `ColumnDataChanged` (`docs/lod.md`, "Live data": at most five a second for a view that
//! follows the data). Once the producer stops, every view must get a copy whose last `x`
//! is the last row streamed: the aggregates were current, and the views saw it. The
//! document is kept in memory (`--data-dir none`), or with `--stored` in a fresh data
//! dir, each batch durable before it is acknowledged.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use plotwire_protocol::codec::buffer_map;
use plotwire_protocol::event::{decode_patch, DocumentEvent};
use plotwire_protocol::message::MsgType;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::Receiver;
use crate::data::Column;
use crate::error::{err, Context, Result};
use crate::http::HttpConn;
use crate::report::{ms, number, quantile};
use crate::rest::{doc_name, raw_xy, unpublish, Format, SOURCE};
use crate::servers::{free_port, start_plotwire_with, ServerProcess, TempDir};
use crate::views::open_pulled;

/// The lod-views run's options.
#[derive(Args, Debug, Clone)]
pub struct LodViewsArgs {
    /// The plotwire binary (a release build for figures).
    #[arg(long, default_value = "target/release/plotwire")]
    pub plotwire_bin: PathBuf,
    /// Views open while the producer streams.
    #[arg(long, default_value_t = 100)]
    pub views: usize,
    /// Seconds the producer streams, per round.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Rows per streamed batch.
    #[arg(long, default_value_t = 100_000)]
    pub batch_points: usize,
    /// The source's `max_rows` (the newest rows kept).
    #[arg(long, default_value_t = 10_000_000)]
    pub max_rows: usize,
    /// Rounds, each on a fresh server.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Store the document (a fresh data dir, `--durability full`) instead of keeping it in
    /// memory only (`--data-dir none`).
    #[arg(long)]
    pub stored: bool,
}

/// The longest a server start may take.
const STARTUP: Duration = Duration::from_secs(60);

/// The longest opening and pulling every view may take.
const OPEN_BUDGET: Duration = Duration::from_secs(300);

/// How long the views get, after the last batch was acknowledged, to be sent a copy
/// that holds it (the server sends at most five a second).
const CATCH_UP: Duration = Duration::from_secs(5);

/// The most messages one view reads in a round.
const MAX_MESSAGES: usize = 100_000;

/// The most batches one round sends (the time bound usually ends it first).
const MAX_BATCHES: usize = 100_000;

/// The largest request body the server is started to take.
const MAX_BODY: usize = 64 << 20;

/// The period of the streamed `y`, in rows.
const SAWTOOTH: usize = 1000;

/// A dashboard spec of one line plot over a `"lod": true` source of `max_rows` rows.
fn spec(max_rows: usize) -> String {
    format!(
        r#"{{"title":"lod-views","sources":{{"{SOURCE}":{{"columns":{{"x":"float64","y":"float64"}},"lod":true,"max_rows":{max_rows}}}}},"plots":{{"p":{{"kind":"line","source":"{SOURCE}","x":"x","y":"y"}}}}}}"#
    )
}

/// What one view was sent in a round.
#[derive(Debug, Default, Clone)]
struct ViewRead {
    /// Downsampled copies (`ColumnDataChanged` of the source).
    copies: u64,
    /// Their rows, in all.
    rows: u64,
    /// Bytes read from the socket.
    bytes: u64,
    /// The last `x` of the newest copy.
    last_x: Option<f64>,
    /// When the copy holding the final row arrived.
    current_at: Option<Instant>,
    /// The first thing that went wrong.
    problem: Option<String>,
}

/// The last `x` of the source's copy in a PATCH-DOC, and its rows, if it holds one.
fn copy_of(message: &plotwire_protocol::frame::RawMessage) -> Result<Option<(f64, usize)>> {
    let buffers = buffer_map(message.buffers.clone());
    let events = decode_patch(&message.content, &buffers).context(|| "decoding a PATCH-DOC")?;
    let mut last = None;
    for event in &events {
        if let DocumentEvent::ColumnDataChanged { data, .. } = event {
            let Some((_, x)) = data.iter().find(|(name, _)| name == "x") else {
                continue;
            };
            let x = Column::of(x).context(|| "the copy's x")?;
            let rows = x.len();
            if rows == 0 {
                continue;
            }
            let at = x.get(rows - 1).context(|| "the copy's last x")?;
            last = Some((at, rows));
        }
    }
    Ok(last)
}

/// Reads one view until its newest copy ends at the final row (once the producer has
/// said which), a close, `MAX_MESSAGES`, or `deadline`.
async fn read_view(
    mut rx: Receiver,
    mut last_row: watch::Receiver<Option<f64>>,
    deadline: Instant,
) -> ViewRead {
    let mut read = ViewRead::default();
    let start = rx.bytes_read();
    for _ in 0..MAX_MESSAGES {
        let target = *last_row.borrow();
        if target.is_some() && read.last_x == target {
            read.current_at.get_or_insert_with(Instant::now);
            break;
        }
        let message = tokio::select! {
            m = rx.recv(deadline) => m,
            changed = last_row.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                if Instant::now() < deadline {
                    read.problem.get_or_insert_with(|| format!("closed: {e}"));
                }
                break;
            }
        };
        if message.kind() != Some(MsgType::PatchDoc) {
            continue;
        }
        match copy_of(&message) {
            Ok(Some((x, rows))) => {
                read.copies += 1;
                read.rows += rows as u64;
                read.last_x = Some(x);
            }
            Ok(None) => {}
            Err(e) => {
                read.problem.get_or_insert_with(|| e.to_string());
            }
        }
    }
    read.bytes = rx.bytes_read().saturating_sub(start);
    read
}

/// The figures of one round.
#[derive(Debug, Clone)]
struct Round {
    /// Rows acknowledged.
    points: u64,
    /// From the first batch sent to the last acknowledged.
    elapsed: Duration,
    /// Each batch's send → acknowledgement.
    acks: Vec<Duration>,
    /// Server CPU while streaming, cores.
    cores: Option<f64>,
    /// What each view was sent.
    views: Vec<ViewRead>,
    /// When the last batch was acknowledged.
    last_ack: Instant,
}

impl Round {
    fn points_per_sec(&self) -> f64 {
        self.points as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Views whose newest copy ended at the final row.
    fn current(&self) -> usize {
        self.views.iter().filter(|v| v.current_at.is_some()).count()
    }

    /// The longest a view waited, after the last acknowledgement, for the copy holding it.
    fn slowest_catch_up(&self) -> Option<Duration> {
        self.views
            .iter()
            .filter_map(|v| v.current_at)
            .map(|t| t.saturating_duration_since(self.last_ack))
            .max()
    }
}

/// Starts a server: in memory, or storing in `dir`.
async fn server(bin: &std::path::Path, dir: Option<&TempDir>) -> Result<ServerProcess> {
    let args = [
        "--data-dir".to_owned(),
        dir.map_or_else(|| "none".to_owned(), |d| d.path().display().to_string()),
        "--max-body-bytes".to_owned(),
        MAX_BODY.to_string(),
    ];
    start_plotwire_with(bin, free_port()?, &args, STARTUP).await
}

/// One round on a fresh server.
async fn round(args: &LodViewsArgs) -> Result<Round> {
    let dir = if args.stored {
        Some(TempDir::new("plotwire-bench-lod-views")?)
    } else {
        None
    };
    let srv = server(&args.plotwire_bin, dir.as_ref()).await?;
    let mut http = HttpConn::connect(srv.endpoint.port, Duration::from_secs(10)).await?;
    let name = doc_name("lod-views");
    let setup = Instant::now() + Duration::from_secs(60);
    http.request(
        "PUT",
        &format!("/api/v1/documents/{name}"),
        "Content-Type: application/json\r\n",
        spec(args.max_rows).as_bytes(),
        setup,
    )
    .await?
    .ok("publishing the spec")?;
    let conns = open_pulled(&srv, &name, args.views, OPEN_BUDGET).await?;
    let (last_tx, last_rx) = watch::channel(None);
    let deadline =
        Instant::now() + Duration::from_secs(args.seconds) + CATCH_UP + Duration::from_secs(30);
    let mut readers = JoinSet::new();
    let mut senders = Vec::with_capacity(conns.len());
    for conn in conns {
        senders.push(conn.tx);
        readers.spawn(read_view(conn.rx, last_rx.clone(), deadline));
    }

    let path = format!("/api/v1/documents/{name}/sources/{SOURCE}/stream");
    let headers = format!("Content-Type: {}\r\n", Format::Raw.content_type());
    let usage = srv.usage();
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut acks = Vec::new();
    let mut first = 0usize;
    let mut last_ack = start;
    // A sawtooth, the same in every batch, so that the producer's own work per batch is
    // only its x column (it must not be what limits the rate).
    let y: Vec<f64> = (0..args.batch_points)
        .map(|k| (k % SAWTOOTH) as f64 / SAWTOOTH as f64)
        .collect();
    for _ in 0..MAX_BATCHES {
        if Instant::now() >= end {
            break;
        }
        let x: Vec<f64> = (first..first + args.batch_points)
            .map(|k| k as f64)
            .collect();
        let body = raw_xy(&x, &y);
        let sent = Instant::now();
        http.request(
            "POST",
            &path,
            &headers,
            &body,
            end + Duration::from_secs(30),
        )
        .await?
        .ok(&format!("the batch at row {first}"))?;
        last_ack = Instant::now();
        acks.push(last_ack - sent);
        first += args.batch_points;
    }
    let elapsed = last_ack - start;
    let cores = usage.finish().cores();
    if first == 0 {
        return Err(err("no batch was acknowledged"));
    }
    last_tx.send_replace(Some((first - 1) as f64));

    let mut views = Vec::with_capacity(args.views);
    let catch_up = last_ack + CATCH_UP;
    while let Ok(joined) = tokio::time::timeout_at(catch_up, readers.join_next()).await {
        match joined {
            Some(Ok(read)) => views.push(read),
            Some(Err(e)) => return Err(err(format!("a view reader failed: {e}"))),
            None => break,
        }
    }
    readers.abort_all();
    drop(senders);
    unpublish(&mut http, &name).await;
    Ok(Round {
        points: first as u64,
        elapsed,
        acks,
        cores,
        views,
        last_ack,
    })
}

/// One line per round, and whether every view was current in every round.
fn report(args: &LodViewsArgs, rounds: &[Round]) -> (String, bool) {
    let mut out = format!(
        "lod-views: {} views of a \"lod\": true line source (max_rows {}), one REST \
         producer streaming {}-row raw batches back to back for {} s; plotwire alone, \
         {}. Target: >= 10 M points/s with the aggregates kept current.\n\n",
        args.views,
        number(args.max_rows as f64),
        number(args.batch_points as f64),
        args.seconds,
        if args.stored {
            "stored (--durability full)"
        } else {
            "in memory (--data-dir none)"
        }
    );
    let mut all_current = true;
    for (i, r) in rounds.iter().enumerate() {
        let copies: u64 = r.views.iter().map(|v| v.copies).sum();
        let rows: u64 = r.views.iter().map(|v| v.rows).sum();
        let bytes: u64 = r.views.iter().map(|v| v.bytes).sum();
        let problems: Vec<&str> = r
            .views
            .iter()
            .filter_map(|v| v.problem.as_deref())
            .collect();
        let current = r.current();
        all_current &= current == args.views && problems.is_empty();
        let views = r.views.len().max(1) as f64;
        let q = |p| quantile(&r.acks, p).map_or(f64::NAN, ms);
        out.push_str(&format!(
            "round {}: {} M points/s ({} points in {:.2} s; ack p50 {:.2} ms, p99 {:.2} ms); \
             server {} cores; per view {:.1} copies of {:.0} rows on average, {:.1} KB; \
             {current}/{} views current, the last {} after the last ack{}\n",
            i + 1,
            number(r.points_per_sec() / 1e6),
            number(r.points as f64),
            r.elapsed.as_secs_f64(),
            q(0.5),
            q(0.99),
            r.cores
                .map_or_else(|| "?".to_owned(), |c| format!("{c:.2}")),
            copies as f64 / views,
            if copies > 0 {
                rows as f64 / copies as f64
            } else {
                0.0
            },
            bytes as f64 / views / 1e3,
            args.views,
            r.slowest_catch_up()
                .map_or_else(|| "never".to_owned(), |d| format!("{:.0} ms", ms(d))),
            problems
                .first()
                .map_or_else(String::new, |p| format!("; first problem: {p}")),
        ));
    }
    let mut rates: Vec<f64> = rounds.iter().map(Round::points_per_sec).collect();
    rates.sort_by(f64::total_cmp);
    if let Some(median) = rates.get(rates.len() / 2) {
        let verdict = if *median >= 10e6 && all_current {
            "PASS"
        } else {
            "MISS"
        };
        out.push_str(&format!(
            "\nmedian {} M points/s: {verdict}{}\n",
            number(median / 1e6),
            if all_current {
                ""
            } else {
                " (a view was not current, or a problem)"
            }
        ));
    }
    (out, all_current)
}

/// Runs `--rounds` rounds, each on a fresh server, and reports them.
///
/// # Errors
/// Set-up failures, a refused batch, a timeout.
pub async fn run(args: &LodViewsArgs) -> Result<(String, bool)> {
    let mut rounds = Vec::with_capacity(args.rounds);
    for i in 0..args.rounds {
        eprintln!("lod-views: round {}/{}", i + 1, args.rounds);
        rounds.push(round(args).await.context(|| format!("round {}", i + 1))?);
    }
    Ok(report(args, &rounds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_is_a_lod_line_plot() {
        let v: serde_json::Value = serde_json::from_str(&spec(7)).unwrap();
        assert_eq!(v["sources"][SOURCE]["lod"], true);
        assert_eq!(v["sources"][SOURCE]["max_rows"], 7);
        assert_eq!(v["plots"]["p"]["kind"], "line");
    }
}
