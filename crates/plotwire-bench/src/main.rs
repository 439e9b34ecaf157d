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
//! `plotwire-bench lod-views` streams into a downsampled source with 100 views open, see
//! [`lodviews`];
//! `plotwire-bench exports` measures exported pages polling and exports, see [`exports`];
//! `plotwire-bench tls` measures fan-out and ingest with and without TLS, see [`tls`].
//! `plotwire-bench access` the cost of access control, see [`access`];
//! `plotwire-bench sizing` memory per view and per point held, see [`sizing`].
//!
//! The comparison run is [`compare`], its progress lines [`summary`] and its table
//! [`table`]; this file holds the command line and what the runs share.
//!
//! `--quick` is a smoke run that asserts correctness only (exit status 1 on any loss,
//! reordering, corruption or failure), never speed.

mod access;
mod bigdoc;
mod browser;
mod client;
mod compare;
mod data;
mod error;
mod exports;
mod fanout;
mod http;
mod ingest;
mod lod;
mod lodviews;
mod pulls;
mod report;
mod rest;
mod servers;
mod sizing;
mod soak;
mod store;
mod summary;
mod table;
mod tls;
mod views;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};

use crate::bigdoc::BigDoc;
use crate::browser::Browser;
use crate::data::Encoding;
use crate::error::{err, Context, Result};
use crate::fanout::{Fanout, FanoutSpec};
use crate::ingest::{Ingest, IngestSpec};
use crate::pulls::{PullInterference, PullSpec};
use crate::report::{number, Figure, Row};
use crate::rest::{Format, RestIngest, RestIngestSpec};
use crate::servers::{ServerProcess, SESSION_CLEANUP};
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
    /// Streaming into a `"lod": true` source with `--views` views open (default 100),
    /// against `plotwire serve` alone: points/s acknowledged, what each view is sent, and
    /// whether every view's copy reaches the last row (the aggregates kept current).
    LodViews(lodviews::LodViewsArgs),
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

/// Writes `json` to `path` (creating its directory); returns the absolute path.
fn write_json(path: &Path, json: &serde_json::Value) -> Result<PathBuf> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(json).context(|| "serializing the results")?;
    std::fs::write(path, text + "\n").context(|| format!("writing {}", path.display()))?;
    Ok(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
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
                    Some(Command::LodViews(args)) => lodviews::run(args).await,
                    None => compare::run(&cli).await,
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
