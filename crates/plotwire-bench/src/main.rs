//! `plotwire-bench`: runs the same raw Bokeh protocol client against plotwire and against
//! `bokeh serve` 3.9.2 in one run, and prints a table of both figures and their ratio.
//!
//! Absolute figures drift on shared machines; the ratios, measured side by side in the
//! same run, are what matter. Progress goes to stderr, the table to stdout.
//!
//! Scenarios (each run on one server, then the other, before the next scenario):
//! 1. ack-gated ingest: small ColumnsStreamed PATCH-DOCs, each waiting for its OK;
//! 2. fan-out: one producer, K viewers, pipelined streams, send → receive latency;
//! 3. big column: push 1M float64 points, then ack-gated streams of 1000 points;
//! 4. pull latency: PULL-DOC round trips of that big document;
//! 5. memory: the servers' RSS, idle and after scenario 3.

mod client;
mod error;
mod report;
mod scenarios;
mod servers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use tokio::time::Instant;

use crate::error::{err, Result};
use crate::report::{ms, quantile, Better, Figure, Row};
use crate::scenarios::{BigColumn, Fanout, Ingest};
use crate::servers::{free_port, own_cpu_time, start_bokeh, start_plotwire, ServerProcess};

/// Benchmarks plotwire against `bokeh serve` 3.9.2 with identical raw protocol clients.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Smaller scenarios, for a smoke run of about a minute.
    #[arg(long)]
    quick: bool,
    /// Run against one server only (`--only plotwire` skips Bokeh).
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// The plotwire binary to benchmark (build it in release mode).
    #[arg(long, default_value = "target/release/plotwire")]
    plotwire_bin: PathBuf,
    /// The `bokeh` launcher, run as `<bokeh-bin> serve target.py ...`.
    #[arg(long, default_value = "bokeh")]
    bokeh_bin: String,
}

/// Which server `--only` keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Only {
    /// plotwire only.
    Plotwire,
    /// `bokeh serve` only.
    Bokeh,
}

/// Sizes and time bounds of the scenarios.
#[derive(Debug, Clone)]
struct Params {
    ingest_count: usize,
    ingest_points: usize,
    ingest_budget: Duration,
    fan_viewers: usize,
    fan_streams: usize,
    fan_points: usize,
    fan_budget: Duration,
    big_points: usize,
    big_streams: usize,
    big_stream_points: usize,
    big_budget: Duration,
    pulls: usize,
    pull_budget: Duration,
    startup: Duration,
}

impl Params {
    /// The full run, or the `--quick` smoke run.
    fn new(quick: bool) -> Params {
        let full = Params {
            ingest_count: 2000,
            ingest_points: 10,
            ingest_budget: Duration::from_secs(30),
            fan_viewers: 20,
            fan_streams: 1000,
            fan_points: 100,
            fan_budget: Duration::from_secs(120),
            big_points: 1_000_000,
            big_streams: 200,
            big_stream_points: 1000,
            big_budget: Duration::from_secs(60),
            pulls: 20,
            pull_budget: Duration::from_secs(60),
            startup: Duration::from_secs(60),
        };
        if !quick {
            return full;
        }
        Params {
            ingest_count: 200,
            ingest_budget: Duration::from_secs(8),
            fan_viewers: 5,
            fan_streams: 200,
            fan_budget: Duration::from_secs(20),
            big_points: 200_000,
            big_streams: 40,
            big_budget: Duration::from_secs(10),
            pulls: 5,
            pull_budget: Duration::from_secs(10),
            ..full
        }
    }
}

/// A scenario's result on one server: `None` when not run, `Err` with the message on failure.
type Outcome<T> = Option<std::result::Result<T, String>>;

/// The big-column figures that outlive the connection.
#[derive(Debug)]
struct BigSummary {
    push: Duration,
    planned: usize,
    done: usize,
    elapsed: Duration,
    rtts: Vec<Duration>,
}

/// Everything measured on one server.
#[derive(Default)]
struct Results {
    ingest: Outcome<Ingest>,
    /// Server on-CPU time during scenario 1.
    ingest_cpu: Option<Duration>,
    fanout: Outcome<Fanout>,
    /// Server on-CPU time during scenario 2 (set-up included: 20 connects and pulls).
    fanout_cpu: Option<Duration>,
    big: Outcome<BigSummary>,
    pull: Outcome<Vec<Duration>>,
    rss_idle_kib: Outcome<u64>,
    rss_big_kib: Outcome<u64>,
}

/// One server under test and what was measured on it.
struct Subject {
    server: ServerProcess,
    results: Results,
    /// Scenario 3's connection, kept open for scenario 4.
    big_conn: Option<BigColumn>,
    version: String,
}

/// A progress line on stderr.
fn progress(line: impl AsRef<str>) {
    eprintln!("[bench] {}", line.as_ref());
}

/// Runs `scenario` on `subject`, printing progress and the server's CPU time, and turns a
/// failure into an `Err(message)` (adding whether the server process died).
///
/// Also returns the time the server spent on a CPU during the scenario, when `/proc` tells.
async fn measure<T, F>(
    subject: &mut Subject,
    title: &str,
    summary: impl Fn(&T) -> String,
    scenario: F,
) -> (std::result::Result<T, String>, Option<Duration>)
where
    F: std::future::Future<Output = Result<T>>,
{
    let name = subject.server.name;
    progress(format!("{title}: {name} ..."));
    let server_before = subject.server.cpu_time();
    let on_cpu_before = subject.server.on_cpu();
    let client_before = own_cpu_time();
    let started = Instant::now();
    let result = scenario.await;
    let mut cpu = format!("; {:.2} s wall", started.elapsed().as_secs_f64());
    let on_cpu = match (on_cpu_before, subject.server.on_cpu()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    if let Some(on_cpu) = on_cpu {
        cpu.push_str(&format!(", server on-CPU {:.3} s", on_cpu.as_secs_f64()));
    }
    if let (Some(a), Some(b)) = (server_before, subject.server.cpu_time()) {
        let used = b.since(a);
        cpu.push_str(&format!(
            " (user {:.2} s + sys {:.2} s), {} minor faults",
            used.user.as_secs_f64(),
            used.system.as_secs_f64(),
            used.minor_faults
        ));
    }
    if let (Some(a), Some(b)) = (client_before, own_cpu_time()) {
        let used = b.since(a);
        cpu.push_str(&format!(
            ", client CPU user {:.2} s + sys {:.2} s",
            used.user.as_secs_f64(),
            used.system.as_secs_f64()
        ));
    }
    let result = match result {
        Ok(value) => {
            progress(format!("{title}: {name}: {}{cpu}", summary(&value)));
            Ok(value)
        }
        Err(e) => {
            let mut message = format!("{title} on {name}: {e}");
            if let Err(dead) = subject.server.check_alive() {
                message.push_str(&format!(" ({dead})"));
            }
            progress(format!("FAILED {message}"));
            Err(message)
        }
    };
    (result, on_cpu)
}

/// Per second.
fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// "p50 x ms, p99 y ms" of `samples`.
fn percentiles(samples: &[Duration]) -> String {
    match (quantile(samples, 0.5), quantile(samples, 0.99)) {
        (Some(p50), Some(p99)) => format!("p50 {:.3} ms, p99 {:.3} ms", ms(p50), ms(p99)),
        _ => "no samples".to_owned(),
    }
}

/// Runs every scenario on every subject and returns the report for stdout.
async fn run(cli: &Cli) -> Result<String> {
    let params = Params::new(cli.quick);
    let mode = if cli.quick { "quick" } else { "full" };
    progress(format!("mode {mode}: {params:?}"));

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
        let server = start_plotwire(&cli.plotwire_bin, port, params.startup).await?;
        subjects.push(Subject {
            server,
            results: Results::default(),
            big_conn: None,
            version: String::new(),
        });
    }
    if cli.only != Some(Only::Plotwire) {
        let port = free_port()?;
        progress(format!("starting bokeh serve on 127.0.0.1:{port}"));
        let server = start_bokeh(&cli.bokeh_bin, port, params.startup).await?;
        subjects.push(Subject {
            server,
            results: Results::default(),
            big_conn: None,
            version: String::new(),
        });
    }

    for s in &mut subjects {
        s.version = scenarios::server_info(&s.server.endpoint)
            .await
            .map_err(|e| err(format!("{}: SERVER-INFO: {e}", s.server.name)))?;
        s.results.rss_idle_kib = Some(s.server.rss_kib().map_err(|e| e.to_string()));
        progress(format!(
            "{} ready, pid {}, version_info {}",
            s.server.name,
            s.server.pid(),
            s.version
        ));
    }

    let p = &params;
    for s in &mut subjects {
        let endpoint = s.server.endpoint.clone();
        let (result, cpu) = measure(
            s,
            "1 ingest",
            |r: &Ingest| {
                format!(
                    "{}/{} batches in {:.2} s = {:.1}/s, {}",
                    r.done,
                    r.planned,
                    r.elapsed.as_secs_f64(),
                    rate(r.done, r.elapsed),
                    percentiles(&r.rtts)
                )
            },
            scenarios::ingest(&endpoint, p.ingest_count, p.ingest_points, p.ingest_budget),
        )
        .await;
        s.results.ingest = Some(result);
        s.results.ingest_cpu = cpu;
    }

    for s in &mut subjects {
        let endpoint = s.server.endpoint.clone();
        let (result, cpu) = measure(
            s,
            "2 fan-out",
            |r: &Fanout| {
                format!(
                    "{} streams sent, {}/{} relays to {} viewers in {:.2} s = {:.0}/s, {} OKs, \
                     latency {}",
                    r.sent,
                    r.delivered,
                    r.expected,
                    r.viewers,
                    r.wall.as_secs_f64(),
                    rate(r.delivered, r.wall),
                    r.oks,
                    percentiles(&r.latencies)
                )
            },
            scenarios::fanout(
                &endpoint,
                p.fan_viewers,
                p.fan_streams,
                p.fan_points,
                p.fan_budget,
            ),
        )
        .await;
        s.results.fanout = Some(result);
        s.results.fanout_cpu = cpu;
    }

    for s in &mut subjects {
        let endpoint = s.server.endpoint.clone();
        let (result, _) = measure(
            s,
            "3 big column",
            |r: &BigColumn| {
                format!(
                    "push of {} points {:.1} ms; {}/{} streams in {:.2} s = {:.1}/s, {}",
                    r.initial_points,
                    ms(r.push),
                    r.rtts.len(),
                    r.planned,
                    r.elapsed.as_secs_f64(),
                    rate(r.rtts.len(), r.elapsed),
                    percentiles(&r.rtts)
                )
            },
            scenarios::big_column(
                &endpoint,
                p.big_points,
                p.big_streams,
                p.big_stream_points,
                p.big_budget,
            ),
        )
        .await;
        s.results.big = Some(result.map(|big| {
            let summary = BigSummary {
                push: big.push,
                planned: big.planned,
                done: big.rtts.len(),
                elapsed: big.elapsed,
                rtts: big.rtts.clone(),
            };
            s.big_conn = Some(big);
            summary
        }));
        let rss = s.server.rss_kib().map_err(|e| e.to_string());
        if let Ok(kib) = &rss {
            progress(format!(
                "5 memory: {}: RSS {:.1} MiB after scenario 3",
                s.server.name,
                *kib as f64 / 1024.0
            ));
        }
        s.results.rss_big_kib = Some(rss);
    }

    for s in &mut subjects {
        let Some(mut big) = s.big_conn.take() else {
            continue;
        };
        let expected = big.expected_points();
        let (result, _) = measure(
            s,
            "4 pull",
            |r: &Vec<Duration>| {
                format!(
                    "{} pulls of {expected} points per column, {}",
                    r.len(),
                    percentiles(r)
                )
            },
            scenarios::pull_latency(&mut big.conn, p.pulls, expected, p.pull_budget),
        )
        .await;
        s.results.pull = Some(result);
        big.conn.close().await;
    }

    let none = Results::default();
    let find = |name: &str| {
        subjects
            .iter()
            .find(|s| s.server.name == name)
            .map_or(&none, |s| &s.results)
    };
    let rows = rows(p, find("plotwire"), find("bokeh"));
    let mut notes: Vec<String> = Vec::new();
    for s in &subjects {
        let r = &s.results;
        let errors = [
            error_of(&r.ingest),
            error_of(&r.fanout),
            error_of(&r.big),
            error_of(&r.pull),
            error_of(&r.rss_idle_kib),
            error_of(&r.rss_big_kib),
        ];
        notes.extend(errors.into_iter().flatten().map(|e| format!("error: {e}")));
    }
    let versions: Vec<String> = subjects
        .iter()
        .map(|s| format!("{} {}", s.server.name, s.version))
        .collect();
    Ok(render(mode, &versions, &rows, &notes))
}

/// The error message of a failed outcome.
fn error_of<T>(outcome: &Outcome<T>) -> Option<String> {
    match outcome {
        Some(Err(e)) => Some(e.clone()),
        _ => None,
    }
}

/// A table figure from an outcome: `f` gives the value and an optional remark.
fn figure<T>(outcome: &Outcome<T>, f: impl Fn(&T) -> Option<(f64, Option<String>)>) -> Figure {
    match outcome {
        None => Figure::Skipped,
        Some(Err(_)) => Figure::Failed,
        Some(Ok(value)) => f(value).map_or(Figure::Skipped, |(v, remark)| Figure::Value(v, remark)),
    }
}

/// A remark when fewer than planned were done within the time bound.
fn partial(done: usize, planned: usize) -> Option<String> {
    (done < planned).then(|| format!("{done}/{planned}, time bound"))
}

/// The quantile of `samples` in milliseconds, as a table value.
fn quantile_ms(samples: &[Duration], q: f64) -> Option<(f64, Option<String>)> {
    quantile(samples, q).map(|d| (ms(d), None))
}

/// CPU time per item in microseconds, as a table value.
fn per_item_us(cpu: Duration, items: usize) -> Option<(f64, Option<String>)> {
    (items > 0).then(|| (cpu.as_secs_f64() * 1e6 / items as f64, None))
}

/// The table rows, plotwire's and Bokeh's figures side by side.
fn rows(p: &Params, pw: &Results, bk: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut row =
        |scenario: &str, metric: &'static str, better: Better, fig: &dyn Fn(&Results) -> Figure| {
            rows.push(Row {
                scenario: scenario.to_owned(),
                metric,
                better,
                plotwire: fig(pw),
                bokeh: fig(bk),
            });
        };

    let s1 = format!(
        "1 ingest: {} x {} pts, ack-gated",
        p.ingest_count, p.ingest_points
    );
    row(&s1, "batches/s", Better::Higher, &|r| {
        figure(&r.ingest, |i| {
            Some((rate(i.done, i.elapsed), partial(i.done, i.planned)))
        })
    });
    row(&s1, "round trip p50, ms", Better::Lower, &|r| {
        figure(&r.ingest, |i| quantile_ms(&i.rtts, 0.5))
    });
    row(&s1, "round trip p99, ms", Better::Lower, &|r| {
        figure(&r.ingest, |i| quantile_ms(&i.rtts, 0.99))
    });
    row(&s1, "server CPU per batch, us", Better::Lower, &|r| {
        figure(&r.ingest, |i| per_item_us(r.ingest_cpu?, i.done))
    });

    let s2 = format!(
        "2 fan-out: 1 -> {} viewers, {} x {} pts pipelined",
        p.fan_viewers, p.fan_streams, p.fan_points
    );
    row(&s2, "delivered msgs/s", Better::Higher, &|r| {
        figure(&r.fanout, |f| {
            Some((rate(f.delivered, f.wall), partial(f.delivered, f.expected)))
        })
    });
    row(&s2, "send->receive p50, ms", Better::Lower, &|r| {
        figure(&r.fanout, |f| quantile_ms(&f.latencies, 0.5))
    });
    row(&s2, "send->receive p99, ms", Better::Lower, &|r| {
        figure(&r.fanout, |f| quantile_ms(&f.latencies, 0.99))
    });
    row(
        &s2,
        "server CPU per delivered msg, us",
        Better::Lower,
        &|r| figure(&r.fanout, |f| per_item_us(r.fanout_cpu?, f.delivered)),
    );

    let s3 = format!(
        "3 big column: {} pts, then {} x {} pts ack-gated",
        p.big_points, p.big_streams, p.big_stream_points
    );
    row(&s3, "PUSH-DOC -> OK, ms", Better::Lower, &|r| {
        figure(&r.big, |b| Some((ms(b.push), None)))
    });
    row(&s3, "streams/s", Better::Higher, &|r| {
        figure(&r.big, |b| {
            Some((rate(b.done, b.elapsed), partial(b.done, b.planned)))
        })
    });
    row(&s3, "stream round trip p99, ms", Better::Lower, &|r| {
        figure(&r.big, |b| quantile_ms(&b.rtts, 0.99))
    });

    let s4 = format!("4 pull: {} x PULL-DOC of the big doc", p.pulls);
    row(&s4, "round trip p50, ms", Better::Lower, &|r| {
        figure(&r.pull, |v| {
            quantile_ms(v, 0.5).map(|(x, _)| (x, partial(v.len(), p.pulls)))
        })
    });
    row(&s4, "round trip max, ms", Better::Lower, &|r| {
        figure(&r.pull, |v| quantile_ms(v, 1.0))
    });

    let s5 = "5 memory: server VmRSS";
    row(s5, "idle, MiB", Better::Lower, &|r| {
        figure(&r.rss_idle_kib, |k| Some((*k as f64 / 1024.0, None)))
    });
    row(s5, "after scenario 3, MiB", Better::Lower, &|r| {
        figure(&r.rss_big_kib, |k| Some((*k as f64 / 1024.0, None)))
    });
    rows
}

/// The report: machine info, the table, the note on ratios, errors.
fn render(mode: &str, versions: &[String], rows: &[Row], notes: &[String]) -> String {
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
    let mut out = String::new();
    out.push_str(&format!("plotwire-bench ({mode} run), {}\n", utc_now()));
    out.push_str(&format!("machine: nproc {nproc}, {cpu}\n"));
    for v in versions {
        out.push_str(&format!("server: {v}\n"));
    }
    out.push('\n');
    out.push_str(&report::table(rows));
    out.push('\n');
    out.push_str(
        "ratio = how many times better plotwire is (plotwire/bokeh for rates, bokeh/plotwire for\n\
         times and memory). Both servers ran in this run on this machine with identical client\n\
         code; absolute figures drift on shared machines, the ratios are what matter.\n",
    );
    for n in notes {
        out.push_str(&format!("{n}\n"));
    }
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
            result = run(&cli) => result,
            _ = tokio::signal::ctrl_c() => Err(err("interrupted")),
        }
    });
    match outcome {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plotwire-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
