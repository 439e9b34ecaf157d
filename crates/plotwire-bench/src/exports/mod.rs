//! `plotwire-bench exports`: issue 11's figures for exported pages, against `plotwire
//! serve` alone (`bokeh serve` has neither a read-back endpoint nor an export endpoint, so
//! there is nothing to compare with):
//!
//! 1. **Polling pages.** `--pages` simulated exported pages (default 1000), each on its own
//!    keep-alive HTTP/1.1 connection, poll `GET .../sources/<id>?since=<cursor>` once per
//!    `--interval-ms` (default 1 s) at a random phase, with the headers Chromium sends for
//!    the page's `AjaxDataSource` (`Content-Type: text/plain`, `Origin: null` for a
//!    `file://` page or `http://127.0.0.1:8000` for a hosted one, `Accept: */*`, its
//!    User-Agent and client hints). Each moves its cursor to `next`, as the page's adapter
//!    does. The URL and the first cursor are the ones in the document's `export.html`. A
//!    producer streams `--batch-rows` rows every `--batch-every-ms`. Over the measured
//!    `--seconds` window the server's CPU time (utime + stime of `/proc/<pid>/stat`) is
//!    taken as a share of one core; every idle answer (no new row) is measured as read off
//!    the socket (status line, headers and body). Afterwards every page must hold every
//!    streamed row exactly once and in order (the `step` column counts rows).
//! 2. **Exporting a big document.** A document whose source holds `--points` rows of
//!    float64 `x` and `y` (default 1e6; one raw body) is exported with
//!    `GET .../export.html` (default options) `--export-runs` times over one keep-alive
//!    connection, request to last byte. The file's size is compared with the raw data
//!    (16 bytes a row) plus `bokeh.min.js` as `/static/js/bokeh.min.js` serves it.
//!
//! Each figure is printed with its target and PASS or FAIL (`n/a` when the run's
//! parameters are not the target's). The run fails on a lost, repeated or reordered row,
//! an HTTP error, or a file without the data; with `--check-targets` a missed target fails
//! it too.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout_at, Instant, MissedTickBehavior};

use crate::error::{err, BoxError, Context, Result};
use crate::http::HttpConn;
use crate::report::{ms, quantile};
use crate::rest::{raw_xy, Format};
use crate::servers::{free_port, own_cpu_time, start_plotwire_with, ServerProcess};

mod export;
mod polling;
mod wire;

/// The exports run's options.
#[derive(Args, Debug, Clone)]
pub struct ExportsArgs {
    /// The plotwire binary (a release build for figures).
    #[arg(long, default_value = "target/release/plotwire")]
    pub plotwire_bin: PathBuf,
    /// Simulated exported pages, one keep-alive connection each.
    #[arg(long, default_value_t = 1000)]
    pub pages: usize,
    /// Seconds of the measured polling window.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Seconds of polling before the window (every page connects and polls in it).
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Each page's polling interval, in ms (an exported page's default is 1000).
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Rows the producer streams at a time.
    #[arg(long, default_value_t = 10)]
    pub batch_rows: usize,
    /// How often the producer streams, in ms.
    #[arg(long, default_value_t = 2000)]
    pub batch_every_ms: u64,
    /// Rows (float64 `x` and `y`) of the exported document.
    #[arg(long, default_value_t = 1_000_000)]
    pub points: usize,
    /// Exports timed (the median is the figure).
    #[arg(long, default_value_t = 5)]
    pub export_runs: usize,
    /// Fail the run when a target is missed, not only on a correctness problem.
    #[arg(long)]
    pub check_targets: bool,
}

/// Server CPU of 1000 pages polling once a second: at most this share of one core, in %.
const CPU_TARGET_PERCENT: f64 = 10.0;
/// The pages and interval that [`CPU_TARGET_PERCENT`] is for.
const CPU_TARGET_PAGES: usize = 1000;
/// An idle answer, on the wire: at most this many bytes.
const IDLE_TARGET_BYTES: usize = 300;
/// The export of a 1e6-row document: at most this long.
const EXPORT_TARGET: Duration = Duration::from_secs(1);
/// The rows [`EXPORT_TARGET`] is for.
const EXPORT_TARGET_POINTS: usize = 1_000_000;
/// The export's size: at most this times the raw data, plus the bundle.
const SIZE_TARGET_RATIO: f64 = 1.5;

/// How long the server may take to start.
const STARTUP: Duration = Duration::from_secs(60);
/// The longest answer head read.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The longest poll answer body read.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The most header lines of an answer read.
const MAX_HEADER_LINES: usize = 100;
/// The most chunks of a chunked answer read.
const MAX_CHUNKS: usize = 100_000;
/// The longest a poll may take before it counts as failed.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);
/// The most times one page reconnects in a run.
const MAX_RECONNECTS: u64 = 20;

/// Chromium 131 on Linux.
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// `PASS`, `FAIL`, or `n/a` when the target does not apply.
fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "n/a",
    }
}

/// Adds one figure line to `out` and counts a miss.
fn figure(
    out: &mut String,
    misses: &mut usize,
    what: &str,
    value: &str,
    target: &str,
    pass: Option<bool>,
) {
    if pass == Some(false) {
        *misses += 1;
    }
    let line = format!("{:<4} {what}: {value} (target {target})", verdict(pass));
    crate::progress(format!("exports: {line}"));
    let _ = writeln!(out, "{line}");
}

/// `PUT`s document `name` from `spec` (a dashboard spec); returns its `seq`.
async fn put_spec(http: &mut HttpConn, name: &str, spec: &str) -> Result<u64> {
    let answer = http
        .request(
            "PUT",
            &format!("/api/v1/documents/{name}"),
            "Content-Type: application/json\r\n",
            spec.as_bytes(),
            Instant::now() + Duration::from_secs(30),
        )
        .await?
        .ok(&format!("publishing {name}"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&answer.body).context(|| "the publish answer")?;
    v.get("seq")
        .and_then(serde_json::Value::as_u64)
        .context(|| format!("no seq in the publish answer {v}"))
}

/// Runs both parts against one `plotwire serve` (in memory) and returns the report;
/// the run passes unless a check (or, with `--check-targets`, a target) fails.
///
/// # Errors
/// A server that fails to start or answer, an HTTP error, a page that fails.
pub async fn run(args: &ExportsArgs) -> Result<(String, bool)> {
    if !args.plotwire_bin.is_file() {
        return Err(err(format!(
            "plotwire binary {} not found: build it with `cargo build --release -p plotwire` \
             or pass --plotwire-bin",
            args.plotwire_bin.display()
        )));
    }
    let server = start_plotwire_with(
        &args.plotwire_bin,
        free_port()?,
        &["--data-dir".to_owned(), "none".to_owned()],
        STARTUP,
    )
    .await?;
    crate::progress(format!(
        "exports: plotwire {} pid {} on 127.0.0.1:{}",
        args.plotwire_bin.display(),
        server.pid(),
        server.endpoint.port
    ));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plotwire-bench exports: exported pages (issue 11), plotwire alone: bokeh serve has \
         no read-back or export endpoint to compare with\nserver: {}, in memory",
        args.plotwire_bin.display()
    );
    let mut misses = 0;
    let mut problems = polling::polling(&server, args, &mut out, &mut misses).await?;
    server
        .settle(Duration::from_secs(1), Duration::from_secs(10))
        .await;
    problems.extend(export::export(&server, args, &mut out, &mut misses).await?);
    if !server.is_running() {
        problems.push("the server exited".to_owned());
    }
    server.kill();
    for p in problems.iter().take(20) {
        let _ = writeln!(out, "PROBLEM {p}");
    }
    if problems.len() > 20 {
        let _ = writeln!(out, "... and {} more problems", problems.len() - 20);
    }
    let _ = writeln!(out, "{} problems, {misses} targets missed", problems.len());
    let passed = problems.is_empty() && (!args.check_targets || misses == 0);
    Ok((out, passed))
}

#[cfg(test)]
mod tests {
    use super::polling::{poll_url, PageStats};
    use super::wire::poll_request;

    #[test]
    fn finds_the_poll_url() {
        let html = r#"..."data_url":"http://127.0.0.1:5/api/v1/documents/a/b/sources/source%3Atrain?since=42","x"..."#;
        assert_eq!(
            poll_url(html, "a/b"),
            Some((
                "/api/v1/documents/a/b/sources/source%3Atrain".to_owned(),
                42
            ))
        );
    }

    #[test]
    fn checks_rows_once_and_in_order() {
        let mut s = PageStats::default();
        let mut cursor = 3;
        let idle = br#"{"since":3,"next":3,"reset":false,"rows":0,"data":{"step":[],"loss":[]}}"#;
        assert_eq!(s.take(idle, &mut cursor).unwrap(), Some(0));
        let two =
            br#"{"since":3,"next":5,"reset":false,"rows":2,"data":{"step":[0,1],"loss":[1,2]}}"#;
        assert_eq!(s.take(two, &mut cursor).unwrap(), Some(2));
        assert_eq!((cursor, s.rows, s.problem.is_none()), (5, 2, true));
        let again =
            br#"{"since":5,"next":6,"reset":false,"rows":1,"data":{"step":[1],"loss":[2]}}"#;
        s.take(again, &mut cursor).unwrap();
        assert!(s.problem.is_some());
    }

    #[test]
    fn the_request_looks_like_chromium() {
        let r = String::from_utf8(poll_request(5006, "/p", 7, false)).unwrap();
        assert!(r.starts_with("GET /p?since=7 HTTP/1.1\r\n"));
        assert!(r.contains("\r\nOrigin: null\r\n"));
        assert!(r.contains("\r\nContent-Type: text/plain\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }
}
