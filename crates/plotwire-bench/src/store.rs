//! `plotwire-bench store`: the durable store's figures (issue 9), against `plotwire
//! serve` alone (`bokeh serve` keeps nothing): sustained durable ingest of 100k-point
//! batches with `--durability full` and `relaxed`, the acknowledgement latency of many
//! small batches from concurrent producers (group commit), the bytes stored per point,
//! the server's RSS while it holds 1e7 points, and the time a restart takes to serve a
//! document of 1e8 stored points again. Every figure is printed; none is asserted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::{err, Result};
use crate::http::HttpConn;
use crate::report::{ms, quantile};
use crate::rest::{publish, raw_body, raw_xy, Columns, Format, SOURCE};

/// A small seeded generator (xorshift64*), uniform in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A raw (`PWC1`) body of `points` rows: `x` the row index from `first` (as a
/// timestamp column is), `y` a random walk at full float64 precision (as a measured
/// signal is: about 6 bytes of every 8 are noise no codec removes).
fn walk_body(first: u64, points: usize, rng: &mut Rng, walk: &mut f64) -> Vec<u8> {
    let x: Vec<f64> = (0..points).map(|k| (first + k as u64) as f64).collect();
    let y: Vec<f64> = (0..points)
        .map(|_| {
            *walk += rng.next() - 0.5;
            *walk
        })
        .collect();
    raw_xy(&x, &y)
}
use crate::servers::{free_port, start_plotwire_with, ServerProcess, TempDir};

/// The store run's options.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// The plotwire binary (a release build).
    #[arg(long, default_value = "target/release/plotwire")]
    pub plotwire_bin: PathBuf,
    /// Seconds of each sustained-ingest run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent producers of the sustained-ingest runs.
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    /// Producers of the small-batch run.
    #[arg(long, default_value_t = 10)]
    pub small_producers: usize,
    /// Batches (of 10 points) each small-batch producer sends.
    #[arg(long, default_value_t = 1000)]
    pub small_batches: usize,
    /// Rows (x and y, float64) held for the memory figure.
    #[arg(long, default_value_t = 10_000_000)]
    pub memory_rows: usize,
    /// Rows (x and y) stored before the restart is timed.
    #[arg(long, default_value_t = 50_000_000)]
    pub restart_rows: usize,
}

const BATCH: usize = 100_000;
const STARTUP: Duration = Duration::from_secs(120);

async fn server(bin: &Path, dir: &Path, durability: &str) -> Result<ServerProcess> {
    let args = [
        "--data-dir".to_owned(),
        dir.display().to_string(),
        "--durability".to_owned(),
        durability.to_owned(),
        "--max-body-bytes".to_owned(),
        (64usize << 20).to_string(),
    ];
    start_plotwire_with(bin, free_port()?, &args, STARTUP).await
}

fn stream_path(name: &str, rollover: Option<usize>) -> String {
    let mut path = format!("/api/v1/documents/{name}/sources/{SOURCE}/stream");
    if let Some(r) = rollover {
        path.push_str(&format!("?rollover={r}"));
    }
    path
}

fn raw_headers() -> String {
    format!("Content-Type: {}\r\n", Format::Raw.content_type())
}

/// Bytes of the store's files.
fn stored_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// `producers` connections stream 100k-row batches into one document for `seconds`.
/// Returns points (x and y values) acknowledged per second and the bytes stored per
/// point.
async fn sustained(args: &StoreArgs, durability: &str, producers: usize) -> Result<(f64, f64)> {
    let dir = TempDir::new("plotwire-bench-store")?;
    let srv = server(&args.plotwire_bin, dir.path(), durability).await?;
    let port = srv.endpoint.port;
    let mut http = HttpConn::connect(port, Duration::from_secs(10)).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    publish(&mut http, "store/ingest", deadline).await?;
    let before = stored_bytes(dir.path());
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut tasks = JoinSet::new();
    for p in 0..producers {
        // Made before the clock starts: the bench's own work stays out of the figure.
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ p as u64);
        let mut walk = 0.0;
        let bodies: Vec<Vec<u8>> = (0..8u64)
            .map(|b| walk_body(b * BATCH as u64, BATCH, &mut rng, &mut walk))
            .collect();
        tasks.spawn(async move {
            let mut http = HttpConn::connect(port, Duration::from_secs(10)).await?;
            let mut batches = 0u64;
            while Instant::now() < end {
                let body = &bodies[batches as usize % bodies.len()];
                http.request(
                    "POST",
                    &stream_path("store/ingest", Some(1_000_000)),
                    &raw_headers(),
                    body,
                    end + Duration::from_secs(60),
                )
                .await?
                .ok("a durable batch")?;
                batches += 1;
            }
            Ok::<u64, crate::error::BoxError>(batches)
        });
    }
    let mut batches = 0;
    while let Some(done) = tasks.join_next().await {
        batches += done.map_err(|e| err(format!("a producer failed: {e}")))??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let points = (batches * BATCH as u64 * 2) as f64;
    let stored = stored_bytes(dir.path()).saturating_sub(before) as f64;
    srv.kill();
    Ok((points / elapsed, stored / points.max(1.0)))
}

/// Small batches from concurrent producers: the acknowledgement latencies.
async fn small(args: &StoreArgs, durability: &str) -> Result<Vec<Duration>> {
    let dir = TempDir::new("plotwire-bench-store")?;
    let srv = server(&args.plotwire_bin, dir.path(), durability).await?;
    let port = srv.endpoint.port;
    let mut http = HttpConn::connect(port, Duration::from_secs(10)).await?;
    publish(
        &mut http,
        "store/small",
        Instant::now() + Duration::from_secs(30),
    )
    .await?;
    let mut tasks = JoinSet::new();
    for p in 0..args.small_producers {
        let batches = args.small_batches;
        tasks.spawn(async move {
            let mut http = HttpConn::connect(port, Duration::from_secs(10)).await?;
            let mut latencies = Vec::with_capacity(batches);
            for b in 0..batches {
                let body = raw_body(&Columns {
                    x: p as f64,
                    first: (b * 10) as u64,
                    points: 10,
                });
                let sent = Instant::now();
                http.request(
                    "POST",
                    &stream_path("store/small", Some(100_000)),
                    &raw_headers(),
                    &body,
                    sent + Duration::from_secs(30),
                )
                .await?
                .ok("a small batch")?;
                latencies.push(sent.elapsed());
            }
            Ok::<Vec<Duration>, crate::error::BoxError>(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.map_err(|e| err(format!("a producer failed: {e}")))??);
    }
    srv.kill();
    Ok(all)
}

/// Fills a document with `rows` rows in 100k-row batches.
async fn fill(http: &mut HttpConn, name: &str, rows: usize) -> Result<()> {
    let mut sent = 0;
    let mut last_print = Instant::now();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut walk = 0.0;
    while sent < rows {
        let n = BATCH.min(rows - sent);
        let body = walk_body(sent as u64, n, &mut rng, &mut walk);
        http.request(
            "POST",
            &stream_path(name, None),
            &raw_headers(),
            &body,
            Instant::now() + Duration::from_secs(60),
        )
        .await?
        .ok("a fill batch")?;
        sent += n;
        if last_print.elapsed() > Duration::from_secs(5) {
            eprintln!("  {sent} of {rows} rows stored");
            last_print = Instant::now();
        }
    }
    Ok(())
}

/// The rows the document's source holds, from its summary.
async fn rows_of(http: &mut HttpConn, name: &str) -> Result<u64> {
    let answer = http
        .get(
            &format!("/api/v1/documents/{name}"),
            "",
            Instant::now() + Duration::from_secs(60),
        )
        .await?
        .ok("the summary")?;
    let v: serde_json::Value = serde_json::from_slice(&answer.body)
        .map_err(|e| err(format!("the summary is not JSON: {e}")))?;
    v["sources"][SOURCE]["rows"]
        .as_u64()
        .ok_or_else(|| err(format!("no rows in the summary {v}")))
}

/// Runs every store measurement and prints each figure as it is measured (the report
/// it returns is empty; the run passes unless it fails).
///
/// # Errors
/// A server that fails to start or answer, a write that is refused.
pub async fn run(args: &StoreArgs) -> Result<(String, bool)> {
    println!("plotwire-bench store: durable storage (plotwire alone; bokeh serve stores nothing)");
    for durability in ["full", "relaxed"] {
        for producers in [1, args.producers] {
            let (rate, per_point) = sustained(args, durability, producers).await?;
            println!(
                "sustained ingest, 100k-row batches (x an index, y a random walk, float64), --durability {durability}, {producers} producer(s): {:.1} M points/s acknowledged (store at the end, rollover 1e6 rows and snapshots bounding it: {per_point:.2} bytes per point acknowledged)",
                rate / 1e6
            );
        }
    }
    for durability in ["full", "relaxed"] {
        let latencies = small(args, durability).await?;
        let q = |x: f64| quantile(&latencies, x).map_or(0.0, ms);
        println!(
            "small batches (10 rows), --durability {durability}, {} producers x {} batches: ack p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            args.small_producers,
            args.small_batches,
            q(0.5),
            q(0.99),
            q(1.0)
        );
    }

    let dir = TempDir::new("plotwire-bench-store")?;
    let srv = server(&args.plotwire_bin, dir.path(), "relaxed").await?;
    let mut http = HttpConn::connect(srv.endpoint.port, Duration::from_secs(10)).await?;
    publish(
        &mut http,
        "store/memory",
        Instant::now() + Duration::from_secs(30),
    )
    .await?;
    fill(&mut http, "store/memory", args.memory_rows).await?;
    srv.settle(Duration::from_secs(3), Duration::from_secs(20))
        .await;
    let rss = srv.rss_kib()? as f64 / 1024.0;
    println!(
        "memory holding {} rows ({} points): {rss:.0} MiB RSS (Bokeh 3.9.2: 522 MB for 1e7 points)",
        args.memory_rows,
        args.memory_rows * 2
    );
    srv.kill();
    drop(dir);

    let dir = TempDir::new("plotwire-bench-store")?;
    let srv = server(&args.plotwire_bin, dir.path(), "relaxed").await?;
    let mut http = HttpConn::connect(srv.endpoint.port, Duration::from_secs(10)).await?;
    publish(
        &mut http,
        "store/restart",
        Instant::now() + Duration::from_secs(30),
    )
    .await?;
    eprintln!("storing {} rows for the restart figure", args.restart_rows);
    fill(&mut http, "store/restart", args.restart_rows).await?;
    let stored = stored_bytes(dir.path());
    srv.kill();
    let started = Instant::now();
    let srv = server(&args.plotwire_bin, dir.path(), "full").await?;
    let answering = started.elapsed();
    let mut http = HttpConn::connect(srv.endpoint.port, Duration::from_secs(10)).await?;
    let rows = rows_of(&mut http, "store/restart").await?;
    let serving = started.elapsed();
    if rows != args.restart_rows as u64 {
        return Err(err(format!(
            "after the restart the source has {rows} rows, not {}",
            args.restart_rows
        )));
    }
    println!(
        "restart after kill -9 with {} rows ({} points, {:.0} MB stored): HTTP answers after {:.2} s, the document is served after {:.2} s",
        args.restart_rows,
        args.restart_rows * 2,
        stored as f64 / 1e6,
        answering.as_secs_f64(),
        serving.as_secs_f64()
    );
    srv.kill();
    Ok((String::new(), true))
}
