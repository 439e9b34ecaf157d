//! `plotwire-bench`: runs the same workloads against plotwire and against `bokeh serve`
//! 3.9.2 in one run, prints a table (workload, metric, bokeh, plotwire, ratio, target)
//! and writes it as JSON.
//!
//! Absolute figures drift on shared machines; the ratios, measured side by side in the
//! same run, are what matter. Progress goes to stderr, the table to stdout.
//!
//! Workloads (each runs on plotwire, then on Bokeh, before the next; every one checks that
//! no data was lost, reordered or corrupted, see [`data`]):
//! 1. ingest: ack-gated streams of 1k and 100k points, binary and JSON, with rollover;
//! 2. fan-out: 100 points at 50 batches/s to K = 1, 10, 100, 1000 raw viewers;
//! 3. big document: a fresh viewer pulls 1e6 and 1e7 points;
//! 4. browser: `bench/browser_workload.py` (BokehJS in Chromium, `bokeh.client` producer);
//! 5. slow viewer: fan-out to 100 viewers, with and without one that never reads;
//! 6. pull interference: fan-out to 10 viewers, without and then with another session's
//!    1e7-point document pulled three times in a row, round after round.
//!
//! Issue 7's REST dashboards and views (see [`rest`] and [`views`]):
//! 7. REST ingest: 100k-point batches in each body format over one keep-alive connection
//!    (plotwire only: Bokeh has no REST API);
//! 8. views fan-out: 100 views of a published document, a REST producer at 50 batches/s
//!    (Bokeh: workload 2 with 100 viewers);
//! 9. views memory: RSS with 1 and with 100 views of a 1e6-point document;
//! 10. view open: page, websocket and pull of a 1e5-point document, ~30 times.
//!
//! `plotwire-bench soak` is a separate long run against plotwire alone, see [`soak`];
//! `plotwire-bench lod` measures the level-of-detail crate in-process, see [`lod`];
//! `plotwire-bench exports` measures exported pages polling and exports, see [`exports`];
//! `plotwire-bench tls` measures fan-out and ingest with and without TLS, see [`tls`].
//! `plotwire-bench access` the cost of access control, see [`access`];
//! `plotwire-bench sizing` memory per view and per point held, see [`sizing`].
//!
//! `--quick` is a smoke run that asserts correctness only (exit status 1 on any loss,
//! reordering, corruption or failure), never speed.

mod access;
mod bigdoc;
mod browser;
mod client;
mod data;
mod error;
mod exports;
mod fanout;
mod http;
mod ingest;
mod lod;
mod pulls;
mod report;
mod rest;
mod servers;
mod sizing;
mod soak;
mod store;
mod tls;
mod views;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use plotwire_protocol::message::MsgType;
use tokio::time::Instant;

use crate::bigdoc::BigDoc;
use crate::browser::{Browser, Summary};
use crate::client::{Conn, Endpoint};
use crate::data::{start_clock, Encoding};
use crate::error::{err, Context, Result};
use crate::fanout::{Fanout, FanoutSpec};
use crate::ingest::{Ingest, IngestSpec};
use crate::pulls::{PullInterference, PullSpec, PULLS_PER_ROUND};
use crate::report::{ms, number, quantile, Better, Figure, Row, Target};
use crate::rest::{Format, RestIngest, RestIngestSpec};
use crate::servers::{
    free_port, start_bokeh, start_plotwire, ServerProcess, UsageReport, SESSION_CLEANUP,
};
use crate::views::{ViewOpen, ViewsMemory};

/// Benchmarks plotwire against `bokeh serve` 3.9.2 with identical clients.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// A few seconds per workload; asserts correctness only (CI smoke test).
    #[arg(long)]
    quick: bool,
    /// Run against one server only (`--only plotwire` skips Bokeh).
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Run only these workloads (repeatable; default all).
    #[arg(long = "workload", value_enum)]
    workloads: Vec<Workload>,
    /// The plotwire binary to benchmark (build it in release mode for figures).
    #[arg(long, default_value = "target/release/plotwire")]
    plotwire_bin: PathBuf,
    /// Python with bokeh 3.9.2 (runs `bokeh serve`) and Playwright (runs the browser
    /// workload). Default: `.bench-venv/bin/python` if it exists, else `python3`.
    #[arg(long)]
    python: Option<PathBuf>,
    /// The browser workload script.
    #[arg(long, default_value = "bench/browser_workload.py")]
    browser_script: PathBuf,
    /// Where to write the results as JSON. Default: `target/bench/results.json`
    /// (`results-quick.json` with `--quick`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// `soak`, `store`, `lod`, `exports`, `access`, `sizing`: other runs instead of the workloads.
    #[command(subcommand)]
    command: Option<Command>,
}

/// Runs other than the comparison.
#[derive(Subcommand, Debug)]
enum Command {
    /// One long run against `plotwire serve` alone (default an hour): a producer streaming
    /// at a fixed rate, steady, churning and stalled viewers; samples the server's RSS and
    /// open files, checks every batch, and fails unless there is no error and RSS is flat.
    Soak(soak::SoakArgs),
    /// The durable store's figures against `plotwire serve` alone: durable ingest with
    /// `--durability full` and `relaxed`, small-batch acknowledgement latency, bytes per
    /// point, memory holding 1e7 points, restart time with 1e8 stored points.
    Store(store::StoreArgs),
    /// The level of detail (`plotwire-lod`) in-process, no server: pyramid build time and
    /// memory over `--points` points (default 1e9, generated), p50/p99 of `--queries`
    /// random views, a full-scan M4 against one pyramid query, streaming appends.
    Lod(lod::LodArgs),
    /// Exported pages against `plotwire serve` alone: `--pages` pages (default 1000)
    /// polling a source once a second while a producer streams (server CPU, idle answer
    /// bytes, every row once), and the export of a 1e6-row document (time, file size).
    Exports(exports::ExportsArgs),
    /// What TLS costs, against `plotwire serve` alone, plain and with a self-signed
    /// certificate: fan-out p99 to `--viewers` viewers (default 100) and ack-gated ingest of
    /// 100k-point batches.
    Tls(tls::TlsArgs),
    /// The cost of access control: REST ingest and views fan-out against `plotwire serve`
    /// without and with `--auth-file`, alternated, each figure and the on/off ratio.
    Access(access::AccessArgs),
    /// Memory figures for sizing a deployment: server RSS per open view, per view of a
    /// downsampled (LOD) document, and per million points held, in memory and stored.
    Sizing(sizing::SizingArgs),
}

/// Which server `--only` keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Only {
    /// plotwire only.
    Plotwire,
    /// `bokeh serve` only.
    Bokeh,
}

/// The workloads, for `--workload`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// 1: ack-gated ingest.
    Ingest,
    /// 2: fan-out to K viewers.
    Fanout,
    /// 3: pulling a big document.
    Bigdoc,
    /// 4: the browser workload script.
    Browser,
    /// 5: fan-out with a stalled viewer.
    Slow,
    /// 6: fan-out while another session's big document is pulled.
    PullInterference,
    /// 7: REST ingest of 100k-point batches in every body format (plotwire only).
    RestIngest,
    /// 8: 100 views of a published document, a REST producer at 50 batches/s.
    ViewsFanout,
    /// 9: server RSS with 1 and with 100 views of a 1e6-point document.
    ViewsMemory,
    /// 10: opening a view (page, websocket, pull) of a 1e5-point document.
    ViewOpen,
}

/// The largest websocket message both servers accept (the 1e7-point push is 160 MB).
const MAX_MESSAGE_BYTES: usize = 200 * 1024 * 1024;

/// Sizes and bounds of the workloads.
#[derive(Debug, Clone)]
struct Params {
    ingest: Vec<IngestSpec>,
    fanout: FanoutSpec,
    fanout_viewers: Vec<usize>,
    slow_viewers: usize,
    big_points: Vec<usize>,
    big_budget: Duration,
    pulls: PullSpec,
    rest_ingest: Vec<RestIngestSpec>,
    views_fanout: FanoutSpec,
    memory_points: usize,
    memory_views: usize,
    open_points: usize,
    opens: usize,
    browser_limit: Duration,
    startup: Duration,
    /// Whether to wait for each run's sessions to be dropped (full runs: RSS figures).
    cleanup: bool,
    settle: Duration,
}

impl Params {
    /// How long to wait after each run at least and at most: see [`ServerProcess::settle`].
    fn settle(&self) -> (Duration, Duration) {
        let min = if self.cleanup {
            SESSION_CLEANUP
        } else {
            Duration::ZERO
        };
        (min, self.settle)
    }

    /// The full run, or the `--quick` smoke run.
    fn new(quick: bool) -> Params {
        let (small_max, small_budget, big_max, big_budget, rollover) = if quick {
            (
                100,
                Duration::from_secs(1),
                5,
                Duration::from_secs(2),
                200_000,
            )
        } else {
            (
                20_000,
                Duration::from_secs(5),
                1000,
                Duration::from_secs(5),
                1_000_000,
            )
        };
        let mut ingest = Vec::new();
        for (points, max_batches, budget) in [
            (1_000, small_max, small_budget),
            (100_000, big_max, big_budget),
        ] {
            for encoding in [Encoding::Binary, Encoding::Json] {
                ingest.push(IngestSpec {
                    points,
                    encoding,
                    max_batches,
                    budget,
                    rollover,
                });
            }
        }
        let fanout = FanoutSpec {
            viewers: 1,
            points: 100,
            rate_hz: 50,
            duration: Duration::from_secs(if quick { 2 } else { 5 }),
            drain: Duration::from_secs(10),
            stalled: false,
            rollover,
            setup_budget: Duration::from_secs(if quick { 30 } else { 180 }),
        };
        Params {
            ingest,
            fanout,
            fanout_viewers: if quick {
                vec![1, 10]
            } else {
                vec![1, 10, 100, 1000]
            },
            slow_viewers: if quick { 10 } else { 100 },
            big_points: if quick {
                vec![1_000_000]
            } else {
                vec![1_000_000, 10_000_000]
            },
            big_budget: Duration::from_secs(if quick { 60 } else { 180 }),
            pulls: PullSpec {
                doc_points: if quick { 100_000 } else { 10_000_000 },
                fanout: FanoutSpec {
                    viewers: 10,
                    duration: Duration::from_secs(if quick { 2 } else { 10 }),
                    ..fanout
                },
                budget: Duration::from_secs(if quick { 60 } else { 180 }),
                settle: Duration::from_secs(if quick { 5 } else { 30 }),
            },
            rest_ingest: Format::ALL
                .iter()
                .map(|&format| RestIngestSpec {
                    format,
                    points: if quick { 10_000 } else { 100_000 },
                    max_batches: if quick { 20 } else { 2000 },
                    budget: Duration::from_secs(if quick { 1 } else { 5 }),
                    rollover: 1_000_000,
                })
                .collect(),
            views_fanout: FanoutSpec {
                viewers: if quick { 10 } else { 100 },
                duration: Duration::from_secs(if quick { 2 } else { 10 }),
                ..fanout
            },
            memory_points: if quick { 100_000 } else { 1_000_000 },
            memory_views: if quick { 10 } else { 100 },
            open_points: 100_000,
            opens: if quick { 5 } else { 30 },
            browser_limit: Duration::from_secs(if quick { 90 } else { 240 }),
            startup: Duration::from_secs(60),
            cleanup: !quick,
            settle: Duration::from_secs(if quick { 5 } else { 30 }),
        }
    }
}

/// A run's result on one server: `None` when not run, `Err` with the message on failure.
type Outcome<T> = Option<std::result::Result<T, String>>;

/// Everything measured on one server.
#[derive(Default)]
struct Results {
    ingest: Vec<Outcome<Ingest>>,
    fanout: Vec<Outcome<Fanout>>,
    slow_base: Outcome<Fanout>,
    slow: Outcome<Fanout>,
    big: Vec<Outcome<BigDoc>>,
    browser: Outcome<Browser>,
    pulls: Outcome<PullInterference>,
    rest_ingest: Vec<Outcome<RestIngest>>,
    views_fanout: Outcome<Fanout>,
    views_memory: Outcome<ViewsMemory>,
    view_open: Outcome<ViewOpen>,
    rss_idle_kib: Option<u64>,
}

/// A failed run, or a correctness violation in a run that finished.
#[derive(Debug, Clone)]
struct Problem {
    /// What happened, with the workload and server.
    text: String,
    /// Data lost, reordered or corrupted (as opposed to a run that failed or timed out).
    violation: bool,
}

/// One server under test and what was measured on it.
struct Subject {
    server: ServerProcess,
    results: Results,
    version: String,
    problems: Vec<Problem>,
}

/// A progress line on stderr.
fn progress(line: impl AsRef<str>) {
    eprintln!("[bench] {}", line.as_ref());
}

/// Distinguishes the sessions of one run.
static SESSION_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh session id for `workload`, unique within the run and across runs.
pub fn session_id(workload: &str) -> String {
    let n = SESSION_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("bench-{workload}-{}-{n}-{nanos}", std::process::id())
}

/// Asks a server for its SERVER-INFO-REPLY and returns its `version_info` as JSON text.
async fn server_info(endpoint: &Endpoint) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = Conn::connect(endpoint, &session_id("info"), deadline).await?;
    let reply = conn
        .request(
            MsgType::ServerInfoReq,
            Bytes::from_static(b"{}"),
            &[],
            deadline,
        )
        .await?;
    conn.close().await;
    let content: serde_json::Value =
        serde_json::from_slice(&reply.content).context(|| "SERVER-INFO-REPLY content")?;
    Ok(content
        .get("version_info")
        .map_or_else(|| content.to_string(), ToString::to_string))
}

/// Runs one workload on `subject`: prints progress, turns a failure into `Err(message)`
/// (noting whether the server died), records problems, then waits for the server to go
/// idle so the next run starts clean.
async fn attempt<T>(
    server: &ServerProcess,
    problems: &mut Vec<Problem>,
    title: &str,
    settle: (Duration, Duration),
    summary: impl Fn(&T) -> (String, Option<String>),
    run: impl std::future::Future<Output = Result<T>>,
) -> std::result::Result<T, String> {
    let name = server.name;
    progress(format!("{title}: {name} ..."));
    let started = Instant::now();
    let result = run.await;
    let wall = started.elapsed().as_secs_f64();
    let result = match result {
        Ok(value) => {
            let (line, problem) = summary(&value);
            progress(format!("{title}: {name}: {line} ({wall:.1} s)"));
            if let Some(problem) = problem {
                progress(format!("PROBLEM {title} on {name}: {problem}"));
                problems.push(Problem {
                    text: format!("{title} on {name}: {problem}"),
                    violation: true,
                });
            }
            Ok(value)
        }
        Err(e) => {
            let mut message = format!("{title} on {name}: {e}");
            if !server.is_running() {
                message.push_str(&format!(" ({name} has exited)"));
            }
            progress(format!("FAILED {message} ({wall:.1} s)"));
            problems.push(Problem {
                text: message.clone(),
                violation: false,
            });
            Err(message)
        }
    };
    let waited = server.settle(settle.0, settle.1).await;
    if waited > Duration::from_secs(3) {
        progress(format!(
            "{name} busy after {title}: waited {:.1} s for it to go idle",
            waited.as_secs_f64()
        ));
    }
    result
}

/// "p50 x ms, p99 y ms, max z ms" of `samples`.
fn percentiles(samples: &[Duration]) -> String {
    match (
        quantile(samples, 0.5),
        quantile(samples, 0.99),
        quantile(samples, 1.0),
    ) {
        (Some(p50), Some(p99), Some(max)) => format!(
            "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            ms(p50),
            ms(p99),
            ms(max)
        ),
        _ => "no samples".to_owned(),
    }
}

/// CPU cores and peak RSS of a usage window, for progress lines.
fn usage_line(u: &UsageReport) -> String {
    format!(
        "server {} cores, peak RSS {} MiB",
        u.cores()
            .map_or_else(|| "?".to_owned(), |c| format!("{c:.2}")),
        u.peak_rss_kib
            .map_or_else(|| "?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
    )
}

/// The progress line of a fan-out run, and its correctness problem if any. `strict`
/// also counts undelivered batches as a problem (the quick run).
fn fanout_summary(f: &Fanout, strict: bool) -> (String, Option<String>) {
    let mut line = format!(
        "{} viewers (set-up {:.1} s), {} batches sent, delivered {:.2} % ({} viewers got \
         the end marker), latency {}, {}, client CPU {:.2} s, {} OKs",
        f.viewers,
        f.setup.as_secs_f64(),
        f.sent,
        100.0 * f.delivered_fraction(),
        f.finished_viewers,
        percentiles(&f.latencies),
        usage_line(&f.usage),
        f.client_cpu.map_or(0.0, |c| c.as_secs_f64()),
        f.oks
    );
    if let Some(note) = &f.producer_note {
        line.push_str(&format!("; {note}"));
    }
    if let Some(s) = &f.stalled {
        line.push_str(&format!("; stalled viewer: {}", s.outcome));
    }
    let mut problems = Vec::new();
    if !f.is_clean() {
        problems.push(format!(
            "lost {} points, {} batches reordered, {} corrupted, {} viewers closed ({}); first: {}",
            f.lost_points,
            f.reordered,
            f.corrupted,
            f.closed.0,
            f.closed.1.as_deref().unwrap_or("-"),
            f.first_problem.as_deref().unwrap_or("-")
        ));
        if let Some(s) = f.stalled.as_ref().filter(|s| !s.clean) {
            problems.push(format!(
                "stalled viewer: {}",
                s.problem.as_deref().unwrap_or("-")
            ));
        }
    }
    if strict && !f.is_complete() {
        problems.push(format!(
            "incomplete delivery: {}/{} batch deliveries, {}/{} viewers finished",
            f.delivered,
            f.sent * f.viewers as u64,
            f.finished_viewers,
            f.viewers
        ));
    }
    if strict && f.sent == 0 {
        problems.push("no batch was sent".to_owned());
    }
    (line, (!problems.is_empty()).then(|| problems.join("; ")))
}

/// The progress line of a pull-interference run, and its correctness problems if any
/// (either phase's, as [`fanout_summary`], and the pulled documents'). `strict` also
/// requires at least one pull.
fn pulls_summary(r: &PullInterference, strict: bool) -> (String, Option<String>) {
    let (without, without_problem) = fanout_summary(&r.without, strict);
    let (with, with_problem) = fanout_summary(&r.with, strict);
    let p = &r.pulls;
    let ratio = match (
        quantile(&r.without.latencies, 0.99),
        quantile(&r.with.latencies, 0.99),
    ) {
        (Some(a), Some(b)) if !a.is_zero() => format!("{:.2}", b.as_secs_f64() / a.as_secs_f64()),
        _ => "?".to_owned(),
    };
    let line = format!(
        "{} points pushed in {:.1} ms; {} pulls in {} rounds ({} started while streaming), \
         mean {:.1} ms, {:.1} MB read; p99 with/without pulls {ratio}; without pulls: \
         {without}; with pulls: {with}",
        r.doc_points,
        ms(r.push),
        p.times.len(),
        p.rounds,
        p.overlapping,
        p.mean().map_or(0.0, ms),
        p.bytes as f64 / 1e6,
    );
    let mut problems: Vec<String> = Vec::new();
    if let Some(e) = without_problem {
        problems.push(format!("without pulls: {e}"));
    }
    if let Some(e) = with_problem {
        problems.push(format!("with pulls: {e}"));
    }
    if let Some(e) = &p.check {
        problems.push(e.clone());
    }
    if strict && p.overlapping == 0 {
        problems.push("no pull overlapped the stream".to_owned());
    }
    (line, (!problems.is_empty()).then(|| problems.join("; ")))
}

/// The python to use: `--python`, else `.bench-venv/bin/python` if present, else `python3`.
fn python_path(cli: &Cli) -> PathBuf {
    if let Some(p) = &cli.python {
        return p.clone();
    }
    let venv = Path::new(".bench-venv/bin/python");
    if venv.exists() {
        venv.to_path_buf()
    } else {
        PathBuf::from("python3")
    }
}

/// Runs every workload on every subject; returns the report for stdout and whether the
/// run passed (no failure on plotwire and no correctness problem; with `--quick`, no
/// failure at all).
async fn run(cli: &Cli) -> Result<(String, bool)> {
    start_clock();
    let run_start = Instant::now();
    let params = Params::new(cli.quick);
    let mode = if cli.quick { "quick" } else { "full" };
    let python = python_path(cli);
    let wants = |w: Workload| cli.workloads.is_empty() || cli.workloads.contains(&w);
    progress(format!("mode {mode}, python {}", python.display()));

    let mut subjects: Vec<Subject> = Vec::new();
    if cli.only != Some(Only::Bokeh) {
        if !cli.plotwire_bin.is_file() {
            return Err(err(format!(
                "plotwire binary {} not found: build it with `cargo build --release -p plotwire` \
                 or pass --plotwire-bin",
                cli.plotwire_bin.display()
            )));
        }
        let port = free_port()?;
        progress(format!("starting plotwire on 127.0.0.1:{port}"));
        let server =
            start_plotwire(&cli.plotwire_bin, port, MAX_MESSAGE_BYTES, params.startup).await?;
        subjects.push(Subject {
            server,
            results: Results::default(),
            version: String::new(),
            problems: Vec::new(),
        });
    }
    if cli.only != Some(Only::Plotwire) {
        let port = free_port()?;
        progress(format!("starting bokeh serve on 127.0.0.1:{port}"));
        let server = start_bokeh(&python, port, MAX_MESSAGE_BYTES, params.startup).await?;
        subjects.push(Subject {
            server,
            results: Results::default(),
            version: String::new(),
            problems: Vec::new(),
        });
    }
    for s in &mut subjects {
        s.version = server_info(&s.server.endpoint)
            .await
            .map_err(|e| err(format!("{}: SERVER-INFO: {e}", s.server.name)))?;
        s.results.rss_idle_kib = s.server.rss_kib().ok();
        progress(format!(
            "{} ready, pid {}, version_info {}",
            s.server.name,
            s.server.pid(),
            s.version
        ));
    }

    let p = &params;
    let strict = cli.quick;
    let mut timings: Vec<(String, Duration)> = Vec::new();

    // The slow-viewer pair runs first, on fresh processes: its RSS comparison needs a
    // high-water mark that no earlier workload has raised.
    if wants(Workload::Slow) {
        let t = Instant::now();
        let k = p.slow_viewers;
        for s in &mut subjects {
            for stalled in [false, true] {
                let spec = FanoutSpec {
                    viewers: k,
                    stalled,
                    ..p.fanout
                };
                let title = if stalled {
                    format!("5 slow viewer K={k} + 1 stalled")
                } else {
                    format!("5 slow viewer K={k} (baseline)")
                };
                let fut = fanout::run(&s.server, spec);
                let outcome = attempt(
                    &s.server,
                    &mut s.problems,
                    &title,
                    p.settle(),
                    |f| fanout_summary(f, strict),
                    fut,
                )
                .await;
                if stalled {
                    s.results.slow = Some(outcome);
                } else {
                    s.results.slow_base = Some(outcome);
                }
            }
        }
        timings.push(("5 slow viewer".to_owned(), t.elapsed()));
    }

    if wants(Workload::Ingest) {
        let t = Instant::now();
        for spec in &p.ingest {
            let title = format!("1 ingest {}k {}", spec.points / 1000, spec.encoding.name());
            for s in &mut subjects {
                let summary = |r: &Ingest| {
                    (
                        format!(
                            "{} batches, {} points in {:.2} s = {} points/s, ack {}, final pull \
                             {:.1} ms, {}",
                            r.batches,
                            r.points,
                            r.elapsed.as_secs_f64(),
                            number(r.points_per_sec()),
                            percentiles(&r.acks),
                            ms(r.pull),
                            usage_line(&r.usage)
                        ),
                        r.check.clone().or_else(|| {
                            (r.batches == 0).then(|| "no batch acknowledged".to_owned())
                        }),
                    )
                };
                let fut = ingest::run(&s.server, *spec);
                let outcome =
                    attempt(&s.server, &mut s.problems, &title, p.settle(), summary, fut).await;
                s.results.ingest.push(Some(outcome));
            }
        }
        timings.push(("1 ingest".to_owned(), t.elapsed()));
    }

    if wants(Workload::Fanout) {
        let t = Instant::now();
        for &k in &p.fanout_viewers {
            let spec = FanoutSpec {
                viewers: k,
                ..p.fanout
            };
            let title = format!("2 fan-out K={k}");
            for s in &mut subjects {
                let fut = fanout::run(&s.server, spec);
                let outcome = attempt(
                    &s.server,
                    &mut s.problems,
                    &title,
                    p.settle(),
                    |f| fanout_summary(f, strict),
                    fut,
                )
                .await;
                s.results.fanout.push(Some(outcome));
            }
        }
        timings.push(("2 fan-out".to_owned(), t.elapsed()));
    }

    if wants(Workload::Bigdoc) {
        let t = Instant::now();
        for &n in &p.big_points {
            let title = format!("3 big doc {n} points");
            for s in &mut subjects {
                let summary = |b: &BigDoc| {
                    (
                        format!(
                            "{} points: push {:.1} ms, connect {:.1} ms, pull {:.1} ms, {:.1} MB \
                             read, server RSS {} MiB",
                            b.points,
                            ms(b.push),
                            ms(b.connect),
                            ms(b.pull),
                            b.pull_bytes as f64 / 1e6,
                            b.rss_kib.map_or_else(
                                || "?".to_owned(),
                                |k| format!("{:.1}", k as f64 / 1024.0)
                            )
                        ),
                        b.check.clone(),
                    )
                };
                let fut = bigdoc::run(&s.server, n, p.big_budget);
                let outcome =
                    attempt(&s.server, &mut s.problems, &title, p.settle(), summary, fut).await;
                s.results.big.push(Some(outcome));
            }
        }
        timings.push(("3 big doc".to_owned(), t.elapsed()));
    }

    if wants(Workload::Browser) {
        let t = Instant::now();
        for s in &mut subjects {
            let summary = |b: &Browser| {
                (
                    format!(
                        "points visible p50 {:.1} / p99 {:.1} / max {:.1} ms (n {}), slider round \
                         trip p50 {:.1} / p99 {:.1} / max {:.1} ms (n {}), {} points checked, \
                         {:.1} s, {}",
                        b.points_visible.p50,
                        b.points_visible.p99,
                        b.points_visible.max,
                        b.points_visible.n,
                        b.slider_roundtrip.p50,
                        b.slider_roundtrip.p99,
                        b.slider_roundtrip.max,
                        b.slider_roundtrip.n,
                        b.checked_points,
                        b.wall.as_secs_f64(),
                        usage_line(&b.usage)
                    ),
                    None,
                )
            };
            let fut = browser::run(
                &s.server,
                &python,
                &cli.browser_script,
                cli.quick,
                p.browser_limit,
            );
            let outcome = attempt(
                &s.server,
                &mut s.problems,
                "4 browser",
                p.settle(),
                summary,
                fut,
            )
            .await;
            s.results.browser = Some(outcome);
        }
        timings.push(("4 browser".to_owned(), t.elapsed()));
    }

    if wants(Workload::PullInterference) {
        let t = Instant::now();
        let title = format!(
            "6 pull interference, {} points",
            points_label(p.pulls.doc_points)
        );
        for s in &mut subjects {
            let fut = pulls::run(&s.server, p.pulls);
            let outcome = attempt(
                &s.server,
                &mut s.problems,
                &title,
                p.settle(),
                |r| pulls_summary(r, strict),
                fut,
            )
            .await;
            s.results.pulls = Some(outcome);
        }
        timings.push(("6 pull interference".to_owned(), t.elapsed()));
    }

    if wants(Workload::RestIngest) {
        let t = Instant::now();
        for spec in &p.rest_ingest {
            let title = format!(
                "7 REST ingest {} {}",
                points_label(spec.points),
                spec.format.name()
            );
            // Bokeh has no REST API: plotwire only.
            for s in subjects.iter_mut().filter(|s| s.server.name == "plotwire") {
                let summary = |r: &RestIngest| {
                    (
                        format!(
                            "{} batches of {} bytes, {} points in {:.2} s = {} points/s ({:.0} MB/s), \
                             request {}, {}",
                            r.batches,
                            r.body_bytes,
                            r.points,
                            r.elapsed.as_secs_f64(),
                            number(r.points_per_sec()),
                            r.mb_per_sec(),
                            percentiles(&r.latencies),
                            usage_line(&r.usage)
                        ),
                        r.check.clone(),
                    )
                };
                let fut = rest::ingest(&s.server, *spec);
                let outcome =
                    attempt(&s.server, &mut s.problems, &title, p.settle(), summary, fut).await;
                s.results.rest_ingest.push(Some(outcome));
            }
        }
        timings.push(("7 REST ingest".to_owned(), t.elapsed()));
    }

    if wants(Workload::ViewsFanout) {
        let t = Instant::now();
        let spec = p.views_fanout;
        for s in &mut subjects {
            // Bokeh's counterpart: workload 2's producer and raw viewers of its session.
            let (title, fut) = if s.server.name == "plotwire" {
                (
                    format!("8 views fan-out K={} (REST producer)", spec.viewers),
                    futures_util::future::Either::Left(views::fanout(&s.server, spec)),
                )
            } else {
                (
                    format!("8 views fan-out K={} (websocket producer)", spec.viewers),
                    futures_util::future::Either::Right(fanout::run(&s.server, spec)),
                )
            };
            let outcome = attempt(
                &s.server,
                &mut s.problems,
                &title,
                p.settle(),
                |f| fanout_summary(f, strict),
                fut,
            )
            .await;
            s.results.views_fanout = Some(outcome);
        }
        timings.push(("8 views fan-out".to_owned(), t.elapsed()));
    }

    if wants(Workload::ViewsMemory) {
        let t = Instant::now();
        let title = format!(
            "9 views memory, {} points, 1 vs {} views",
            points_label(p.memory_points),
            p.memory_views
        );
        for s in &mut subjects {
            let summary = |m: &ViewsMemory| {
                let k = |v: Option<u64>| {
                    v.map_or_else(|| "?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
                };
                (
                    format!(
                        "RSS {} MiB with the document, {} MiB with 1 view, {} MiB with {} views: \
                             +{} MiB",
                        k(m.rss_none_kib),
                        k(m.rss_one_kib),
                        k(m.rss_all_kib),
                        m.views,
                        m.growth_mib()
                            .map_or_else(|| "?".to_owned(), |g| format!("{g:.1}"))
                    ),
                    None,
                )
            };
            let fut = views::memory(&s.server, p.memory_points, p.memory_views);
            let outcome =
                attempt(&s.server, &mut s.problems, &title, p.settle(), summary, fut).await;
            s.results.views_memory = Some(outcome);
        }
        timings.push(("9 views memory".to_owned(), t.elapsed()));
    }

    if wants(Workload::ViewOpen) {
        let t = Instant::now();
        let title = format!(
            "10 view open, {} points, {} opens",
            points_label(p.open_points),
            p.opens
        );
        for s in &mut subjects {
            let summary = |o: &ViewOpen| {
                let q = |v: &[Duration], x: f64| quantile(v, x).map_or(0.0, ms);
                (
                    format!(
                        "total median {:.2} ms, p90 {:.2} ms (page {:.2}, connect {:.2}, pull {:.2} \
                             ms medians), n {}",
                        q(&o.total, 0.5),
                        q(&o.total, 0.9),
                        q(&o.page, 0.5),
                        q(&o.connect, 0.5),
                        q(&o.pull, 0.5),
                        o.total.len()
                    ),
                    o.check.clone(),
                )
            };
            let fut = views::open(&s.server, p.open_points, p.opens);
            let outcome =
                attempt(&s.server, &mut s.problems, &title, p.settle(), summary, fut).await;
            s.results.view_open = Some(outcome);
        }
        timings.push(("10 view open".to_owned(), t.elapsed()));
    }

    let none = Results::default();
    let find = |name: &str| {
        subjects
            .iter()
            .find(|s| s.server.name == name)
            .map_or(&none, |s| &s.results)
    };
    let (pw, bk) = (find("plotwire"), find("bokeh"));
    let rows = rows(p, pw, bk, cli.quick);
    let problems: Vec<String> = subjects
        .iter()
        .flat_map(|s| s.problems.iter().map(|p| p.text.clone()))
        .collect();
    // Quick: nothing may go wrong. Full: nothing on plotwire, and no data lost, reordered
    // or corrupted on Bokeh (a Bokeh run that times out is only reported).
    let passed = subjects.iter().all(|s| {
        s.problems.is_empty()
            || (!cli.quick && s.server.name == "bokeh" && s.problems.iter().all(|p| !p.violation))
    });
    let total = run_start.elapsed();
    timings.push(("total".to_owned(), total));

    let versions: Vec<(String, String)> = subjects
        .iter()
        .map(|s| (s.server.name.to_owned(), s.version.clone()))
        .collect();
    let json_path = cli.json.clone().unwrap_or_else(|| {
        PathBuf::from(if cli.quick {
            "target/bench/results-quick.json"
        } else {
            "target/bench/results.json"
        })
    });
    let browser_raw = |r: &Results| match &r.browser {
        Some(Ok(b)) => b.raw.clone(),
        Some(Err(e)) => serde_json::json!({"error": e}),
        None => serde_json::Value::Null,
    };
    let json = serde_json::json!({
        "mode": mode,
        "started_utc": utc_now(),
        "machine": machine(),
        "servers": versions.iter().map(|(n, v)| serde_json::json!({"name": n, "version_info": v})).collect::<Vec<_>>(),
        "params": format!("{p:?}"),
        "rows": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        "problems": problems,
        "passed": passed,
        "browser_raw": {"plotwire": browser_raw(pw), "bokeh": browser_raw(bk)},
        "durations_s": timings.iter().map(|(n, d)| (n.clone(), serde_json::json!(d.as_secs_f64()))).collect::<serde_json::Map<_, _>>(),
    });
    let written = write_json(&json_path, &json);
    let mut out = render(mode, &versions, &rows, &problems, &timings);
    match written {
        Ok(abs) => out.push_str(&format!("results written to {}\n", abs.display())),
        Err(e) => out.push_str(&format!("could not write {}: {e}\n", json_path.display())),
    }
    out.push_str(if passed {
        "result: PASSED (no failure, no data lost, reordered or corrupted)\n"
    } else {
        "result: FAILED (see problems above)\n"
    });
    Ok((out, passed))
}

/// Writes `json` to `path` (creating its directory); returns the absolute path.
fn write_json(path: &Path, json: &serde_json::Value) -> Result<PathBuf> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(json).context(|| "serializing the results")?;
    std::fs::write(path, text + "\n").context(|| format!("writing {}", path.display()))?;
    Ok(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// A table figure from an outcome: `f` gives the value and an optional remark.
fn figure<T>(outcome: &Outcome<T>, f: impl Fn(&T) -> Option<(f64, Option<String>)>) -> Figure {
    match outcome {
        None => Figure::Skipped,
        Some(Err(_)) => Figure::Failed,
        Some(Ok(value)) => f(value).map_or(Figure::Skipped, |(v, remark)| Figure::Value(v, remark)),
    }
}

/// The quantile of `samples` in milliseconds, as a table value.
fn quantile_ms(samples: &[Duration], q: f64) -> Option<(f64, Option<String>)> {
    quantile(samples, q).map(|d| (ms(d), None))
}

/// KiB as MiB, as a table value.
fn mib(kib: Option<u64>) -> Option<(f64, Option<String>)> {
    kib.map(|k| (k as f64 / 1024.0, None))
}

/// A "k" label for a count of points: 1k, 100k, 1M.
fn points_label(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// The rows of one fan-out run; returns the indices of its p99 and CPU rows.
fn fanout_rows(
    row: &mut impl FnMut(&str, &str, Better, &FigureOf<'_>) -> usize,
    w: &str,
    get: &dyn Fn(&Results) -> Outcome<Fanout>,
) -> (usize, usize) {
    row(w, "latency p50, ms", Better::Lower, &|r| {
        figure(&get(r), |f| quantile_ms(&f.latencies, 0.5))
    });
    let p99 = row(w, "latency p99, ms", Better::Lower, &|r| {
        figure(&get(r), |f| quantile_ms(&f.latencies, 0.99))
    });
    row(w, "latency max, ms", Better::Lower, &|r| {
        figure(&get(r), |f| quantile_ms(&f.latencies, 1.0))
    });
    row(w, "delivered, %", Better::Higher, &|r| {
        figure(&get(r), |f| {
            let remark = f.producer_note.as_ref().map(|_| "producer late".to_owned());
            Some((100.0 * f.delivered_fraction(), remark))
        })
    });
    let cpu = row(w, "server CPU, cores", Better::Lower, &|r| {
        figure(&get(r), |f| f.usage.cores().map(|c| (c, None)))
    });
    row(w, "server RSS peak, MiB", Better::Lower, &|r| {
        figure(&get(r), |f| mib(f.usage.peak_rss_kib))
    });
    row(
        w,
        "server RSS per attached viewer, KiB",
        Better::Lower,
        // Allocator reuse hides the figure below about 1000 viewers.
        &|r| {
            figure(&get(r), |f| {
                f.rss_per_viewer_kib()
                    .filter(|_| f.viewers >= 1000)
                    .map(|k| (k, None))
            })
        },
    );
    (p99, cpu)
}

/// One server's figure of a row, from its results.
type FigureOf<'a> = dyn Fn(&Results) -> Figure + 'a;

/// Rows being built from both servers' results.
struct Rows<'a> {
    rows: Vec<Row>,
    pw: &'a Results,
    bk: &'a Results,
}

impl Rows<'_> {
    /// Adds a row (workload, metric, direction, each server's figure); returns its index.
    fn add(&mut self, workload: &str, metric: &str, better: Better, fig: &FigureOf<'_>) -> usize {
        self.rows.push(Row {
            workload: workload.to_owned(),
            metric: metric.to_owned(),
            better,
            bokeh: fig(self.bk),
            plotwire: fig(self.pw),
            target: None,
        });
        self.rows.len() - 1
    }
}

/// The table rows, Bokeh's and plotwire's figures side by side, with plotwire's targets
/// (full runs only: the quick run asserts correctness, never speed).
fn rows(p: &Params, pw: &Results, bk: &Results, quick: bool) -> Vec<Row> {
    let mut table = Rows {
        rows: Vec::new(),
        pw,
        bk,
    };
    let mut row = |workload: &str, metric: &str, better: Better, fig: &FigureOf<'_>| {
        table.add(workload, metric, better, fig)
    };
    let mut targets: Vec<(usize, Target)> = Vec::new();

    for (i, spec) in p.ingest.iter().enumerate() {
        let w = format!(
            "1 ingest: {}-pt batches, {}, 1 in flight",
            points_label(spec.points),
            spec.encoding.name()
        );
        let get = |r: &Results| r.ingest.get(i).cloned().flatten();
        let idx = row(&w, "points/s", Better::Higher, &|r| {
            figure(&get(r), |x| {
                Some((x.points_per_sec(), Some(format!("{} batches", x.batches))))
            })
        });
        if spec.points == 1000 {
            targets.push((
                idx,
                Target {
                    goal: "≥ 30x bokeh".to_owned(),
                    pass: None,
                },
            ));
        }
        if spec.points == 100_000 && spec.encoding == Encoding::Binary {
            targets.push((
                idx,
                Target {
                    goal: "≥ 30M points/s".to_owned(),
                    pass: None,
                },
            ));
        }
        row(&w, "ack latency p50, ms", Better::Lower, &|r| {
            figure(&get(r), |x| quantile_ms(&x.acks, 0.5))
        });
        row(&w, "ack latency p99, ms", Better::Lower, &|r| {
            figure(&get(r), |x| quantile_ms(&x.acks, 0.99))
        });
        row(&w, "server CPU per 1M points, ms", Better::Lower, &|r| {
            figure(&get(r), |x| {
                let cpu = x.usage.cpu?;
                (x.points > 0).then(|| {
                    let per = cpu.as_secs_f64() * 1e3 * 1e6 / x.points as f64;
                    let cores = x.usage.cores().map(|c| format!("{c:.2} cores"));
                    (per, cores)
                })
            })
        });
        row(&w, "server RSS peak, MiB", Better::Lower, &|r| {
            figure(&get(r), |x| mib(x.usage.peak_rss_kib))
        });
    }

    for (i, &k) in p.fanout_viewers.iter().enumerate() {
        let w = format!(
            "2 fan-out: K={k} viewers, {} pts at {}/s for {} s",
            p.fanout.points,
            p.fanout.rate_hz,
            p.fanout.duration.as_secs()
        );
        let get = |r: &Results| r.fanout.get(i).cloned().flatten();
        let (p99, cpu) = fanout_rows(&mut row, &w, &get);
        if k == 100 {
            targets.push((
                p99,
                Target {
                    goal: "≤ 10 ms".to_owned(),
                    pass: None,
                },
            ));
        }
        if k == 1000 {
            targets.push((
                p99,
                Target {
                    goal: "≤ 50 ms".to_owned(),
                    pass: None,
                },
            ));
            targets.push((
                cpu,
                Target {
                    goal: "< 1 core".to_owned(),
                    pass: None,
                },
            ));
        }
    }

    for (i, &n) in p.big_points.iter().enumerate() {
        let w = format!("3 big doc: fresh viewer pulls {} pts", points_label(n));
        let get = |r: &Results| r.big.get(i).cloned().flatten();
        row(&w, "pull time, ms", Better::Lower, &|r| {
            figure(&get(r), |b| Some((ms(b.pull), None)))
        });
        row(&w, "bytes on the wire, MB", Better::Lower, &|r| {
            figure(&get(r), |b| Some((b.pull_bytes as f64 / 1e6, None)))
        });
        row(&w, "push time, ms", Better::Lower, &|r| {
            figure(&get(r), |b| Some((ms(b.push), None)))
        });
        row(&w, "server RSS with the doc, MiB", Better::Lower, &|r| {
            figure(&get(r), |b| mib(b.rss_kib))
        });
    }

    {
        let w = "4 browser: BokehJS in Chromium + bokeh.client";
        let get = |r: &Results| r.browser.clone();
        let stat = |pick: fn(&Browser) -> Summary, q: fn(&Summary) -> f64| {
            move |r: &Results| {
                figure(&get(r), |b| {
                    Some((q(&pick(b)), Some(format!("n {}", pick(b).n))))
                })
            }
        };
        row(
            w,
            "points visible p50, ms",
            Better::Lower,
            &stat(|b| b.points_visible, |s| s.p50),
        );
        row(
            w,
            "points visible p99, ms",
            Better::Lower,
            &stat(|b| b.points_visible, |s| s.p99),
        );
        row(
            w,
            "points visible max, ms",
            Better::Lower,
            &stat(|b| b.points_visible, |s| s.max),
        );
        row(
            w,
            "slider round trip p50, ms",
            Better::Lower,
            &stat(|b| b.slider_roundtrip, |s| s.p50),
        );
        row(
            w,
            "slider round trip p99, ms",
            Better::Lower,
            &stat(|b| b.slider_roundtrip, |s| s.p99),
        );
        row(
            w,
            "slider round trip max, ms",
            Better::Lower,
            &stat(|b| b.slider_roundtrip, |s| s.max),
        );
        row(w, "points checked in the page", Better::Neither, &|r| {
            figure(&get(r), |b| Some((b.checked_points as f64, None)))
        });
    }

    {
        let w = format!(
            "5 slow viewer: K={} viewers, {} pts at {}/s",
            p.slow_viewers, p.fanout.points, p.fanout.rate_hz
        );
        let base = |r: &Results| r.slow_base.clone();
        let slow = |r: &Results| r.slow.clone();
        row(
            &w,
            "others' p99 without a stalled viewer, ms",
            Better::Lower,
            &|r| figure(&base(r), |f| quantile_ms(&f.latencies, 0.99)),
        );
        let p99 = row(
            &w,
            "others' p99 with 1 stalled viewer, ms",
            Better::Lower,
            &|r| figure(&slow(r), |f| quantile_ms(&f.latencies, 0.99)),
        );
        row(
            &w,
            "others' delivered with 1 stalled, %",
            Better::Higher,
            &|r| figure(&slow(r), |f| Some((100.0 * f.delivered_fraction(), None))),
        );
        let rss_peak = |f: &Fanout| {
            let peak = f.usage.peak_rss_kib? as f64 / 1024.0;
            let start = f
                .usage
                .start_rss_kib
                .map(|k| format!("{:.1} at start", k as f64 / 1024.0));
            Some((peak, start))
        };
        row(&w, "server RSS peak without, MiB", Better::Lower, &|r| {
            figure(&base(r), rss_peak)
        });
        let rss = row(
            &w,
            "server RSS peak with 1 stalled, MiB",
            Better::Lower,
            &|r| figure(&slow(r), rss_peak),
        );
        targets.push((
            p99,
            Target {
                goal: "≤ 2x the run without".to_owned(),
                pass: None,
            },
        ));
        targets.push((
            rss,
            Target {
                goal: "≤ the run without + 16 MiB".to_owned(),
                pass: None,
            },
        ));
    }

    {
        let q = &p.pulls;
        let w = format!(
            "6 pull interference: K={}, {} pts at {}/s for {} s; another session's {}-pt doc \
             pulled {PULLS_PER_ROUND}x in a row",
            q.fanout.viewers,
            q.fanout.points,
            q.fanout.rate_hz,
            q.fanout.duration.as_secs(),
            points_label(q.doc_points)
        );
        let get = |r: &Results| r.pulls.clone();
        let lat = |phase: fn(&PullInterference) -> &Fanout, q: f64| {
            move |r: &Results| figure(&get(r), |x| quantile_ms(&phase(x).latencies, q))
        };
        row(
            &w,
            "p50 without pulls, ms",
            Better::Lower,
            &lat(|x| &x.without, 0.5),
        );
        row(
            &w,
            "p50 with pulls, ms",
            Better::Lower,
            &lat(|x| &x.with, 0.5),
        );
        row(
            &w,
            "p99 without pulls, ms",
            Better::Lower,
            &lat(|x| &x.without, 0.99),
        );
        let p99 = row(
            &w,
            "p99 with pulls, ms",
            Better::Lower,
            &lat(|x| &x.with, 0.99),
        );
        row(&w, "p99 with / without pulls", Better::Lower, &|r| {
            figure(&get(r), |x| {
                let without = quantile(&x.without.latencies, 0.99)?;
                let with = quantile(&x.with.latencies, 0.99)?;
                (!without.is_zero()).then(|| (with.as_secs_f64() / without.as_secs_f64(), None))
            })
        });
        row(
            &w,
            "max with pulls, ms",
            Better::Lower,
            &lat(|x| &x.with, 1.0),
        );
        row(&w, "delivered with pulls, %", Better::Higher, &|r| {
            figure(&get(r), |x| {
                let remark = x
                    .with
                    .producer_note
                    .as_ref()
                    .map(|_| "producer late".to_owned());
                Some((100.0 * x.with.delivered_fraction(), remark))
            })
        });
        row(&w, "pulls completed", Better::Neither, &|r| {
            figure(&get(r), |x| {
                let remark = format!(
                    "{} rounds, {} while streaming",
                    x.pulls.rounds, x.pulls.overlapping
                );
                Some((x.pulls.times.len() as f64, Some(remark)))
            })
        });
        row(&w, "pull time mean, ms", Better::Lower, &|r| {
            figure(&get(r), |x| x.pulls.mean().map(|d| (ms(d), None)))
        });
        targets.push((
            p99,
            Target {
                goal: "≤ 2x p99 without pulls".to_owned(),
                pass: None,
            },
        ));
    }

    for (i, spec) in p.rest_ingest.iter().enumerate() {
        let w = format!(
            "7 REST ingest: {}-pt batches, {}, 1 keep-alive connection",
            points_label(spec.points),
            spec.format.name()
        );
        let get = |r: &Results| r.rest_ingest.get(i).cloned().flatten();
        let idx = row(&w, "points/s", Better::Higher, &|r| {
            figure(&get(r), |x| {
                Some((x.points_per_sec(), Some(format!("{} batches", x.batches))))
            })
        });
        let values = row(&w, "values/s (2 per point)", Better::Higher, &|r| {
            figure(&get(r), |x| Some((2.0 * x.points_per_sec(), None)))
        });
        match spec.format {
            Format::Raw | Format::Arrow => targets.push((
                idx,
                Target {
                    goal: "≥ 50M points/s".to_owned(),
                    pass: None,
                },
            )),
            Format::Json | Format::Ndjson => targets.push((
                values,
                Target {
                    goal: "≥ 10M values/s".to_owned(),
                    pass: None,
                },
            )),
        }
        row(&w, "body MB/s", Better::Higher, &|r| {
            figure(&get(r), |x| Some((x.mb_per_sec(), None)))
        });
        row(&w, "request p50, ms", Better::Lower, &|r| {
            figure(&get(r), |x| quantile_ms(&x.latencies, 0.5))
        });
        row(&w, "request p99, ms", Better::Lower, &|r| {
            figure(&get(r), |x| quantile_ms(&x.latencies, 0.99))
        });
        row(&w, "server CPU per 1M points, ms", Better::Lower, &|r| {
            figure(&get(r), |x| {
                let cpu = x.usage.cpu?;
                (x.points > 0).then(|| {
                    let per = cpu.as_secs_f64() * 1e3 * 1e6 / x.points as f64;
                    let cores = x.usage.cores().map(|c| format!("{c:.2} cores"));
                    (per, cores)
                })
            })
        });
    }

    {
        let f = &p.views_fanout;
        let w = format!(
            "8 views fan-out: K={} views, {} pts at {}/s for {} s (plotwire REST producer, \
             bokeh websocket producer)",
            f.viewers,
            f.points,
            f.rate_hz,
            f.duration.as_secs()
        );
        let get = |r: &Results| r.views_fanout.clone();
        let (p99, _cpu) = fanout_rows(&mut row, &w, &get);
        targets.push((
            p99,
            Target {
                goal: "≤ 10 ms".to_owned(),
                pass: None,
            },
        ));
    }

    {
        let w = format!(
            "9 views memory: {}-pt document, 1 vs {} views",
            points_label(p.memory_points),
            p.memory_views
        );
        let get = |r: &Results| r.views_memory.clone();
        row(
            &w,
            "server RSS with the document, MiB",
            Better::Lower,
            &|r| figure(&get(r), |m| mib(m.rss_none_kib)),
        );
        row(&w, "server RSS with 1 view, MiB", Better::Lower, &|r| {
            figure(&get(r), |m| mib(m.rss_one_kib))
        });
        row(
            &w,
            &format!("server RSS with {} views, MiB", p.memory_views),
            Better::Lower,
            &|r| figure(&get(r), |m| mib(m.rss_all_kib)),
        );
        let growth = row(&w, "RSS growth 1 → all views, MiB", Better::Lower, &|r| {
            figure(&get(r), |m| m.growth_mib().map(|g| (g, None)))
        });
        targets.push((
            growth,
            Target {
                goal: "≤ +20 MiB".to_owned(),
                pass: None,
            },
        ));
    }

    {
        let w = format!(
            "10 view open: page + websocket + pull of a {}-pt document, {} opens",
            points_label(p.open_points),
            p.opens
        );
        let get = |r: &Results| r.view_open.clone();
        let median = row(&w, "total median, ms", Better::Lower, &|r| {
            figure(&get(r), |o| quantile_ms(&o.total, 0.5))
        });
        row(&w, "total p90, ms", Better::Lower, &|r| {
            figure(&get(r), |o| quantile_ms(&o.total, 0.9))
        });
        row(&w, "page GET median, ms", Better::Lower, &|r| {
            figure(&get(r), |o| quantile_ms(&o.page, 0.5))
        });
        row(&w, "websocket connect median, ms", Better::Lower, &|r| {
            figure(&get(r), |o| quantile_ms(&o.connect, 0.5))
        });
        row(&w, "pull median, ms", Better::Lower, &|r| {
            figure(&get(r), |o| quantile_ms(&o.pull, 0.5))
        });
        targets.push((
            median,
            Target {
                goal: "≤ 20 ms".to_owned(),
                pass: None,
            },
        ));
    }

    let mut rows = table.rows;
    if quick {
        return rows;
    }
    // Judge the targets on plotwire's figures.
    for (idx, mut target) in targets {
        let Some(r) = rows.get(idx) else { continue };
        let pwv = r.plotwire.value();
        target.pass = match target.goal.as_str() {
            "≥ 30x bokeh" => r.ratio().map(|x| x >= 30.0),
            "≥ 30M points/s" => pwv.map(|v| v >= 30e6),
            "≤ 10 ms" => pwv.map(|v| v <= 10.0),
            "≤ 20 ms" => pwv.map(|v| v <= 20.0),
            "≥ 50M points/s" => pwv.map(|v| v >= 50e6),
            "≥ 10M values/s" => pwv.map(|v| v >= 10e6),
            "≤ +20 MiB" => pwv.map(|v| v <= 20.0),
            "≤ 50 ms" => pwv.map(|v| v <= 50.0),
            "< 1 core" => pwv.map(|v| v < 1.0),
            // The row before is the run without (slow viewer), or p99 without pulls.
            "≤ 2x the run without" | "≤ 2x p99 without pulls" => {
                let without = idx
                    .checked_sub(1)
                    .and_then(|i| rows.get(i))
                    .and_then(|b| b.plotwire.value());
                pwv.zip(without)
                    .map(|(with, without)| with <= 2.0 * without)
            }
            "≤ the run without + 16 MiB" => {
                let without = idx
                    .checked_sub(1)
                    .and_then(|i| rows.get(i))
                    .and_then(|b| b.plotwire.value());
                pwv.zip(without)
                    .map(|(with, without)| with <= without + 16.0)
            }
            _ => None,
        };
        if let Some(r) = rows.get_mut(idx) {
            r.target = Some(target);
        }
    }
    rows
}

/// Machine facts for the report: cores and CPU model.
fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("nproc {nproc}, {cpu}")
}

/// The report: machine info, the table, the targets, the problems, the durations.
fn render(
    mode: &str,
    versions: &[(String, String)],
    rows: &[Row],
    problems: &[String],
    timings: &[(String, Duration)],
) -> String {
    let mut out = String::new();
    out.push_str(&format!("plotwire-bench ({mode} run), {}\n", utc_now()));
    out.push_str(&format!("machine: {}\n", machine()));
    for (name, version) in versions {
        out.push_str(&format!("server: {name} {version}\n"));
    }
    out.push('\n');
    out.push_str(&report::table(rows));
    out.push('\n');
    out.push_str(
        "ratio = how many times better plotwire is, so > 1 favours plotwire (plotwire/bokeh for\n\
         rates and fractions, bokeh/plotwire for times, CPU, memory and bytes). Both servers ran\n\
         in this run on this machine with identical client code; absolute figures drift on\n\
         shared machines, the ratios are what matter.\n",
    );
    let judged: Vec<&Row> = rows.iter().filter(|r| r.target.is_some()).collect();
    if !judged.is_empty() {
        out.push_str("\ntargets (plotwire):\n");
        for r in judged {
            if let Some(t) = &r.target {
                let measured = match (&r.plotwire, t.goal.contains("bokeh")) {
                    (Figure::Value(_, _), true) => r
                        .ratio()
                        .map_or_else(|| "-".to_owned(), |x| format!("{}x bokeh", number(x))),
                    (Figure::Value(v, _), false) => number(*v),
                    (Figure::Failed, _) => "failed".to_owned(),
                    (Figure::Skipped, _) => "not run".to_owned(),
                };
                out.push_str(&format!(
                    "  {:4}  {} / {}: {measured} (target {})\n",
                    t.verdict(),
                    r.workload,
                    r.metric,
                    t.goal
                ));
            }
        }
    }
    if !problems.is_empty() {
        out.push_str("\nproblems:\n");
        for p in problems {
            out.push_str(&format!("  {p}\n"));
        }
    }
    out.push_str("\ndurations:");
    for (name, d) in timings {
        out.push_str(&format!(" {name} {:.0} s;", d.as_secs_f64()));
    }
    out.push('\n');
    out
}

/// The current UTC time as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `lod` is CPU work on this thread alone: no runtime, and Ctrl-C ends it as usual.
    if let Some(Command::Lod(args)) = &cli.command {
        return exit_code(lod::run(args));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plotwire-bench: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Dropping `run` (on Ctrl-C or when it returns) drops the server guards, which kill
    // both servers.
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = async {
                match &cli.command {
                    Some(Command::Soak(args)) => soak::run(args).await,
                    Some(Command::Store(args)) => store::run(args).await,
                    Some(Command::Lod(args)) => lod::run(args),
                    Some(Command::Exports(args)) => exports::run(args).await,
                    Some(Command::Tls(args)) => tls::run(args).await,
                    Some(Command::Access(args)) => access::run(args).await,
                    Some(Command::Sizing(args)) => sizing::run(args).await,
                    None => run(&cli).await,
                }
            } => result,
            _ = tokio::signal::ctrl_c() => Err(err("interrupted")),
        }
    });
    exit_code(outcome)
}

/// Prints a run's report, or its error, and says how it went.
fn exit_code(outcome: Result<(String, bool)>) -> ExitCode {
    match outcome {
        Ok((report, passed)) => {
            print!("{report}");
            if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("plotwire-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
