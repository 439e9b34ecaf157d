//! Workload 4, browser: runs `bench/browser_workload.py` (unmodified BokehJS in headless
//! Chromium plus an unmodified `bokeh.client` producer) against one server and reads the
//! one JSON object it prints:
//!
//! ```json
//! {"ok": true, "error": null,
//!  "points_visible_ms": {"p50": 1.0, "p99": 2.0, "max": 3.0, "n": 100},
//!  "slider_roundtrip_ms": {"p50": 1.0, "p99": 2.0, "max": 3.0, "n": 20},
//!  "checked_points": 1000}
//! ```
//!
//! The script checks itself that every point reached the page exactly once and in order.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::error::{err, Context, Result};
use crate::servers::{ServerProcess, UsageReport};

/// The most stdout the script may print.
const MAX_STDOUT: u64 = 1 << 20;

/// The most stderr lines forwarded.
const MAX_STDERR_LINES: usize = 10_000;

/// p50, p99, max (milliseconds) and the number of samples of one browser metric.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    /// Median, ms.
    pub p50: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// Maximum, ms.
    pub max: f64,
    /// Samples.
    pub n: u64,
}

/// What the browser workload reported.
#[derive(Debug, Clone)]
pub struct Browser {
    /// Producer `stream()` → the batch is in the page's document.
    pub points_visible: Summary,
    /// Slider set in the page → the producer's `on_change` sees it.
    pub slider_roundtrip: Summary,
    /// Points the script checked bit for bit in the page.
    pub checked_points: u64,
    /// The script's wall time.
    pub wall: Duration,
    /// The server's CPU and RSS during the script.
    pub usage: UsageReport,
    /// The script's JSON, verbatim.
    pub raw: serde_json::Value,
}

/// Reads `{"p50","p99","max","n"}` under `key`.
fn summary(json: &serde_json::Value, key: &str) -> Result<Summary> {
    let s = json
        .get(key)
        .context(|| format!("no {key:?} in the output"))?;
    let num = |k: &str| {
        s.get(k)
            .and_then(serde_json::Value::as_f64)
            .context(|| format!("{key}.{k} is not a number"))
    };
    Ok(Summary {
        p50: num("p50")?,
        p99: num("p99")?,
        max: num("max")?,
        n: num("n")? as u64,
    })
}

/// The JSON object the script printed: the whole of stdout, or else its last line that
/// parses.
fn parse_output(stdout: &str) -> Result<serde_json::Value> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(stdout.trim()) {
        return Ok(v);
    }
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .filter(serde_json::Value::is_object)
        .context(|| format!("no JSON object on stdout: {:?}", shorten(stdout)))
}

/// At most 300 characters of `text`.
fn shorten(text: &str) -> String {
    text.chars().take(300).collect()
}

/// Runs `<python> <script> --url http://127.0.0.1:<port> --app <app> [--quick]` against
/// `server`, killing it after `limit`.
///
/// # Errors
/// The script is missing, cannot start, times out, prints no JSON, or reports `ok: false`.
pub async fn run(
    server: &ServerProcess,
    python: &Path,
    script: &Path,
    quick: bool,
    limit: Duration,
) -> Result<Browser> {
    if !script.is_file() {
        return Err(err(format!("{} not found", script.display())));
    }
    let url = format!("http://127.0.0.1:{}", server.endpoint.port);
    let mut command = Command::new(python);
    command
        .arg(script)
        .args(["--url", &url, "--app", &server.endpoint.app]);
    if quick {
        command.arg("--quick");
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let usage = server.usage();
    let started = std::time::Instant::now();
    let mut child = command
        .spawn()
        .context(|| format!("starting {} {}", python.display(), script.display()))?;
    let stdout = child.stdout.take().context(|| "no stdout pipe")?;
    let stderr = child.stderr.take().context(|| "no stderr pipe")?;
    let name = server.name;
    let forward = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        for _ in 0..MAX_STDERR_LINES {
            match lines.next_line().await {
                Ok(Some(line)) => eprintln!("[browser/{name}] {line}"),
                _ => break,
            }
        }
    });
    let collect = async {
        let mut out = String::new();
        stdout
            .take(MAX_STDOUT)
            .read_to_string(&mut out)
            .await
            .context(|| "reading the script's stdout")?;
        let status = child.wait().await.context(|| "waiting for the script")?;
        Ok::<_, crate::error::BoxError>((out, status))
    };
    let outcome = tokio::time::timeout(limit, collect).await;
    forward.abort();
    let (out, status) = match outcome {
        Ok(r) => r?,
        Err(_) => {
            let _ = child.kill().await;
            return Err(err(format!(
                "the browser workload did not finish within {} s",
                limit.as_secs()
            )));
        }
    };
    let wall = started.elapsed();
    let usage = usage.finish();
    let json = parse_output(&out).context(|| format!("browser workload ({status})"))?;
    let ok = json.get("ok").and_then(serde_json::Value::as_bool) == Some(true);
    if !ok || !status.success() {
        let error = json
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("no error message");
        return Err(err(format!("browser workload failed ({status}): {error}")));
    }
    Ok(Browser {
        points_visible: summary(&json, "points_visible_ms")?,
        slider_roundtrip: summary(&json, "slider_roundtrip_ms")?,
        checked_points: json
            .get("checked_points")
            .and_then(serde_json::Value::as_u64)
            .context(|| "checked_points is not a count")?,
        wall,
        usage,
        raw: json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_the_whole_stdout_or_its_last_json_line() {
        let v = parse_output("{\"ok\": true}\n").expect("whole");
        assert_eq!(v["ok"], true);
        let v = parse_output("noise\n{\"ok\": false}\n").expect("last line");
        assert_eq!(v["ok"], false);
        assert!(parse_output("nothing").is_err());
    }
}
