//! `plotwire-bench access`: the cost of access control on the hot path (issue 12: "ingest
//! and fan-out figures with keys on, within 5 % of those with them off"). The same REST
//! ingest (workload 7: 100k-point raw batches over one keep-alive connection) and views
//! fan-out (workload 8: K views of a public published document, a REST producer) run
//! against `plotwire serve` without and with `--auth-file`, alternating off, on, off, on …
//! so that drift on a shared machine hits both sides alike. With keys on the producer
//! presents a `publish:*` key made by `plotwire keys add`; the views need none. Each run's
//! figures are printed, then each side's median and the on/off ratio of the medians.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use crate::error::{err, Context, Result};
use crate::fanout::FanoutSpec;
use crate::http::HttpConn;
use crate::report::{ms, number, quantile};
use crate::rest::{self, doc_name, Format, RestIngestSpec};
use crate::servers::{free_port, start_plotwire_with, ServerProcess, TempDir};
use crate::views;

/// The access run's options.
#[derive(Args, Debug, Clone)]
pub struct AccessArgs {
    /// The plotwire binary (a release build for figures).
    #[arg(long, default_value = "target/release/plotwire")]
    pub plotwire_bin: PathBuf,
    /// Runs with keys off and with keys on each (alternated: off, on, off, on, …).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Seconds of each ingest run.
    #[arg(long, default_value_t = 5)]
    pub ingest_seconds: u64,
    /// Points per ingest batch.
    #[arg(long, default_value_t = 100_000)]
    pub batch_points: usize,
    /// Views of the fan-out.
    #[arg(long, default_value_t = 100)]
    pub viewers: usize,
    /// Seconds the fan-out producer streams.
    #[arg(long, default_value_t = 5)]
    pub fanout_seconds: u64,
    /// Points per fan-out batch.
    #[arg(long, default_value_t = 100)]
    pub fanout_points: usize,
    /// Fan-out batches per second.
    #[arg(long, default_value_t = 50)]
    pub fanout_rate: u32,
}

/// The longest a server start may take.
const STARTUP: Duration = Duration::from_secs(60);

/// The most batches one ingest run sends (the time bound usually ends it first).
const MAX_BATCHES: usize = 100_000;

/// The ingest stream's rollover (keeps the document bounded).
const INGEST_ROLLOVER: usize = 1_000_000;

/// One side of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    Off,
    On,
}

impl Keys {
    fn name(self) -> &'static str {
        match self {
            Keys::Off => "off",
            Keys::On => "on",
        }
    }
}

/// The figures of one run.
#[derive(Debug, Clone, Copy)]
struct Figures {
    ingest_mpts: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    fanout_p50_ms: f64,
    fanout_p99_ms: f64,
}

impl Figures {
    /// Name, value and whether higher is better, in table order.
    fn cells(&self) -> [(&'static str, f64, bool); 5] {
        [
            ("ingest Mpts/s", self.ingest_mpts, true),
            ("ingest ack p50 ms", self.ack_p50_ms, false),
            ("ingest ack p99 ms", self.ack_p99_ms, false),
            ("fan-out p50 ms", self.fanout_p50_ms, false),
            ("fan-out p99 ms", self.fanout_p99_ms, false),
        ]
    }
}

/// Runs `plotwire keys …` and returns its stdout.
fn keys_command(bin: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .arg("keys")
        .args(args)
        .output()
        .context(|| format!("running {} keys {args:?}", bin.display()))?;
    if !out.status.success() {
        return Err(err(format!(
            "plotwire keys {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes an auth file in `dir` with `plotwire keys init` and one `publish:*` key from
/// `plotwire keys add`; returns the file and the key.
fn auth_file(bin: &Path, dir: &Path) -> Result<(PathBuf, String)> {
    let file = dir.join("auth.toml");
    let path = file.display().to_string();
    keys_command(bin, &["init", &path])?;
    let printed = keys_command(bin, &["add", &path, "bench", "--scope", "publish:*"])?;
    let key = printed
        .split_whitespace()
        .find(|w| w.starts_with("pwk_"))
        .context(|| format!("no key in the output of plotwire keys add: {printed:?}"))?;
    Ok((file, key.to_owned()))
}

/// Starts the server, with access control when `auth` is given.
async fn server(bin: &Path, auth: Option<&(PathBuf, String)>) -> Result<ServerProcess> {
    let mut args = vec!["--data-dir".to_owned(), "none".to_owned()];
    if let Some((file, _)) = auth {
        args.push("--auth-file".to_owned());
        args.push(file.display().to_string());
    }
    let mut srv = start_plotwire_with(bin, free_port()?, &args, STARTUP).await?;
    srv.key = auth.map(|(_, key)| key.clone());
    Ok(srv)
}

/// With keys on, a publish without the key must be refused (else the run measures
/// nothing); with keys off it must succeed.
async fn check_enforced(srv: &ServerProcess, keys: Keys) -> Result<()> {
    let mut http = HttpConn::connect(srv.endpoint.port, Duration::from_secs(10)).await?;
    let name = doc_name("access-check");
    let deadline = Instant::now() + Duration::from_secs(30);
    let published = rest::publish(&mut http, &name, deadline).await;
    match (keys, published) {
        (Keys::On, Ok(())) => Err(err("keys on, yet a publish without a key was accepted")),
        (Keys::On, Err(_)) => Ok(()),
        (Keys::Off, Ok(())) => {
            rest::unpublish(&mut http, &name).await;
            Ok(())
        }
        (Keys::Off, Err(e)) => Err(err(format!("keys off, yet a publish failed: {e}"))),
    }
}

/// One run: a fresh server, the check, the ingest, the fan-out.
async fn run_once(args: &AccessArgs, keys: Keys, auth: &(PathBuf, String)) -> Result<Figures> {
    let srv = server(&args.plotwire_bin, (keys == Keys::On).then_some(auth)).await?;
    check_enforced(&srv, keys).await?;
    let ingest = rest::ingest(
        &srv,
        RestIngestSpec {
            format: Format::Raw,
            points: args.batch_points,
            max_batches: MAX_BATCHES,
            budget: Duration::from_secs(args.ingest_seconds),
            rollover: INGEST_ROLLOVER,
        },
    )
    .await
    .context(|| format!("ingest, keys {}", keys.name()))?;
    if let Some(problem) = &ingest.check {
        return Err(err(format!("ingest, keys {}: {problem}", keys.name())));
    }
    srv.settle(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    let fanout = views::fanout(
        &srv,
        FanoutSpec {
            viewers: args.viewers,
            points: args.fanout_points,
            rate_hz: args.fanout_rate,
            duration: Duration::from_secs(args.fanout_seconds),
            drain: Duration::from_secs(10),
            stalled: false,
            rollover: 10_000,
            setup_budget: Duration::from_secs(120),
        },
    )
    .await
    .context(|| format!("fan-out, keys {}", keys.name()))?;
    if !fanout.is_clean() || !fanout.is_complete() {
        return Err(err(format!(
            "fan-out, keys {}: {} of {} deliveries, {}",
            keys.name(),
            fanout.delivered,
            fanout.sent * fanout.viewers as u64,
            fanout.first_problem.as_deref().unwrap_or("views closed")
        )));
    }
    let q = |samples: &[Duration], p: f64| quantile(samples, p).map_or(f64::NAN, ms);
    Ok(Figures {
        ingest_mpts: ingest.points_per_sec() / 1e6,
        ack_p50_ms: q(&ingest.latencies, 0.5),
        ack_p99_ms: q(&ingest.latencies, 0.99),
        fanout_p50_ms: q(&fanout.latencies, 0.5),
        fanout_p99_ms: q(&fanout.latencies, 0.99),
    })
}

/// The median of each figure over `runs` (the middle one, or the mean of the middle
/// two): one spike in one run, common on a shared machine, does not move it.
fn median(runs: &[Figures]) -> Option<Figures> {
    (!runs.is_empty()).then(|| {
        let mid = |f: fn(&Figures) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        };
        Figures {
            ingest_mpts: mid(|f| f.ingest_mpts),
            ack_p50_ms: mid(|f| f.ack_p50_ms),
            ack_p99_ms: mid(|f| f.ack_p99_ms),
            fanout_p50_ms: mid(|f| f.fanout_p50_ms),
            fanout_p99_ms: mid(|f| f.fanout_p99_ms),
        }
    })
}

/// The report: one line per run, then each side's median and the ratio on/off (for a
/// throughput, on/off; for a latency, off/on, so that 1.00 is no cost and below 0.95 a
/// cost over 5 %).
fn report(args: &AccessArgs, runs: &[(Keys, Figures)]) -> String {
    let mut out = format!(
        "access control on the hot path: REST ingest of {}-point batches for {} s, fan-out \
         of {}-point batches at {}/s to {} views for {} s\n\n",
        args.batch_points,
        args.ingest_seconds,
        args.fanout_points,
        args.fanout_rate,
        args.viewers,
        args.fanout_seconds
    );
    let names = runs
        .first()
        .map(|(_, f)| f.cells().map(|(n, _, _)| n))
        .unwrap_or_default();
    out.push_str("| run | keys |");
    for n in names {
        out.push_str(&format!(" {n} |"));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---:|".repeat(names.len()));
    out.push('\n');
    let mut line = |label: String, keys: &str, f: &Figures| {
        out.push_str(&format!("| {label} | {keys} |"));
        for (_, v, _) in f.cells() {
            out.push_str(&format!(" {} |", number(v)));
        }
        out.push('\n');
    };
    for (i, (keys, f)) in runs.iter().enumerate() {
        line(format!("{}", i + 1), keys.name(), f);
    }
    let side = |k: Keys| runs.iter().filter(move |(x, _)| *x == k).map(|(_, f)| *f);
    let off = median(&side(Keys::Off).collect::<Vec<_>>());
    let on = median(&side(Keys::On).collect::<Vec<_>>());
    if let Some(f) = &off {
        line("median".to_owned(), "off", f);
    }
    if let Some(f) = &on {
        line("median".to_owned(), "on", f);
    }
    if let (Some(off), Some(on)) = (off, on) {
        out.push_str("| ratio (1 = no cost) | on vs off |");
        for ((_, a, higher), (_, b, _)) in off.cells().into_iter().zip(on.cells()) {
            let r = if higher { b / a } else { a / b };
            out.push_str(&format!(" {r:.3} |"));
        }
        out.push('\n');
    }
    out
}

/// Runs the comparison and returns its report; fails if any run fails or loses data.
///
/// # Errors
/// A server that does not start, a run that fails, loses or corrupts data, or keys that
/// are not enforced.
pub async fn run(args: &AccessArgs) -> Result<(String, bool)> {
    let dir = TempDir::new("plotwire-bench-access")?;
    let auth = auth_file(&args.plotwire_bin, dir.path())?;
    let mut runs = Vec::with_capacity(args.rounds * 2);
    for round in 0..args.rounds {
        for keys in [Keys::Off, Keys::On] {
            eprintln!(
                "access: round {}/{}, keys {}",
                round + 1,
                args.rounds,
                keys.name()
            );
            let figures = run_once(args, keys, &auth).await?;
            runs.push((keys, figures));
        }
    }
    Ok((report(args, &runs), true))
}
