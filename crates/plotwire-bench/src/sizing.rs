//! `plotwire-bench sizing`: memory figures for sizing a deployment (docs/deploy/sizing.md),
//! against `plotwire serve` alone. Each is a slope, fitted by least squares over
//! settled RSS readings (`VmRSS`, after the server went idle):
//! - per open view: N idle browser-like views (`/d/<name>/ws` with an Origin, pulled) of
//!   one small published document, for each N of `--views`;
//! - per view of a large source with level of detail on and off: views of a dashboard
//!   spec (one line plot) whose source holds `--lod-points` rows, `"lod": true` (each view
//!   gets a downsampled copy) against `"lod": false` (each view is sent every row);
//! - per million points held: one published document streamed up to each count of
//!   `--points` float64 x/y points, with `--data-dir none` and with a data dir.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use tokio::time::{sleep, Instant};

use crate::error::Result;
use crate::http::HttpConn;
use crate::report::number;
use crate::rest::{doc_name, publish, raw_xy, Format, SOURCE};
use crate::servers::{free_port, start_plotwire_with, ServerProcess, TempDir};
use crate::views::{lod_spec, open_pulled, open_views};

/// The sizing run's options.
#[derive(Args, Debug, Clone)]
pub struct SizingArgs {
    /// The plotwire binary (a release build for figures).
    #[arg(long, default_value = "target/release/plotwire")]
    pub plotwire_bin: PathBuf,
    /// Counts of open views of one small document (comma-separated, increasing).
    #[arg(long, value_delimiter = ',', default_value = "0,100,500")]
    pub views: Vec<usize>,
    /// Rows of the source of the level-of-detail document.
    #[arg(long, default_value_t = 1_000_000)]
    pub lod_points: usize,
    /// Counts of views of the level-of-detail document (comma-separated, increasing).
    #[arg(long, value_delimiter = ',', default_value = "0,10,50")]
    pub lod_views: Vec<usize>,
    /// Counts of points held (comma-separated, increasing).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000000,5000000,10000000"
    )]
    pub points: Vec<usize>,
}

/// The longest a server start may take.
const STARTUP: Duration = Duration::from_secs(120);

/// Points per streamed batch.
const BATCH: usize = 100_000;

/// The largest request body the servers accept here (a 1e6-row replace is 16 MB).
const MAX_BODY: usize = 64 << 20;

/// How long opening one batch of views may take.
const OPEN_BUDGET: Duration = Duration::from_secs(600);

/// One RSS reading: the count (views or points) and the settled RSS in KiB.
type Reading = (usize, u64);

/// The least-squares slope of RSS (KiB) per unit of count, or `None` with fewer than two
/// distinct counts.
fn slope(readings: &[Reading]) -> Option<f64> {
    let n = readings.len() as f64;
    let mx = readings.iter().map(|r| r.0 as f64).sum::<f64>() / n;
    let my = readings.iter().map(|r| r.1 as f64).sum::<f64>() / n;
    let sxx: f64 = readings.iter().map(|r| (r.0 as f64 - mx).powi(2)).sum();
    let sxy: f64 = readings
        .iter()
        .map(|r| (r.0 as f64 - mx) * (r.1 as f64 - my))
        .sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Starts a server: in memory (`data_dir` none) or storing in `data_dir`.
async fn server(bin: &Path, data_dir: Option<&Path>) -> Result<ServerProcess> {
    let dir = data_dir.map_or_else(|| "none".to_owned(), |d| d.display().to_string());
    let args = [
        "--data-dir".to_owned(),
        dir,
        "--max-body-bytes".to_owned(),
        MAX_BODY.to_string(),
    ];
    start_plotwire_with(bin, free_port()?, &args, STARTUP).await
}

/// The RSS once the server has gone idle (or after 10 s).
async fn settled_rss(srv: &ServerProcess) -> Result<u64> {
    sleep(Duration::from_millis(500)).await;
    srv.settle(Duration::ZERO, Duration::from_secs(10)).await;
    srv.rss_kib()
}

/// RSS per open view of an empty published document.
async fn per_view(args: &SizingArgs) -> Result<Vec<Reading>> {
    let srv = server(&args.plotwire_bin, None).await?;
    let mut http = HttpConn::connect(srv.endpoint.port, Duration::from_secs(10)).await?;
    let name = doc_name("sizing-views");
    publish(&mut http, &name, Instant::now() + Duration::from_secs(30)).await?;
    let mut open = Vec::new();
    let mut readings = Vec::with_capacity(args.views.len());
    for &n in &args.views {
        let more = n.saturating_sub(open.len());
        open.extend(open_views(&srv, &name, more, 0, OPEN_BUDGET).await?);
        readings.push((open.len(), settled_rss(&srv).await?));
        eprintln!("sizing: {} views open", open.len());
    }
    for c in open {
        c.close().await;
    }
    Ok(readings)
}

/// RSS per view of a spec document whose source holds `lod_points` rows.
async fn per_lod_view(args: &SizingArgs, lod: bool) -> Result<Vec<Reading>> {
    let srv = server(&args.plotwire_bin, None).await?;
    let mut http = HttpConn::connect(srv.endpoint.port, Duration::from_secs(10)).await?;
    let name = doc_name("sizing-lod");
    let deadline = Instant::now() + Duration::from_secs(120);
    http.request(
        "PUT",
        &format!("/api/v1/documents/{name}"),
        "Content-Type: application/json\r\n",
        lod_spec(lod).as_bytes(),
        deadline,
    )
    .await?
    .ok("publishing the spec")?;
    let x: Vec<f64> = (0..args.lod_points).map(|k| k as f64).collect();
    let y: Vec<f64> = x.iter().map(|v| (v * 1e-3).sin()).collect();
    http.request(
        "PUT",
        &format!("/api/v1/documents/{name}/sources/{SOURCE}"),
        &format!("Content-Type: {}\r\n", Format::Raw.content_type()),
        &raw_xy(&x, &y),
        deadline,
    )
    .await?
    .ok("filling the source")?;
    let mut open = Vec::new();
    let mut readings = Vec::with_capacity(args.lod_views.len());
    for &n in &args.lod_views {
        let more = n.saturating_sub(open.len());
        open.extend(open_pulled(&srv, &name, more, OPEN_BUDGET).await?);
        readings.push((open.len(), settled_rss(&srv).await?));
        eprintln!(
            "sizing: {} views of the lod={lod} document open",
            open.len()
        );
    }
    for c in open {
        c.close().await;
    }
    Ok(readings)
}

/// RSS per point held: one document streamed up to each count of `points`.
async fn per_point(args: &SizingArgs, stored: bool) -> Result<Vec<Reading>> {
    let dir = TempDir::new("plotwire-bench-sizing")?;
    let srv = server(&args.plotwire_bin, stored.then(|| dir.path())).await?;
    let mut http = HttpConn::connect(srv.endpoint.port, Duration::from_secs(10)).await?;
    let name = doc_name("sizing-points");
    publish(&mut http, &name, Instant::now() + Duration::from_secs(30)).await?;
    let most = args.points.iter().copied().max().unwrap_or(0);
    let path = format!("/api/v1/documents/{name}/sources/{SOURCE}/stream?rollover={most}");
    let headers = format!("Content-Type: {}\r\n", Format::Raw.content_type());
    let mut readings = vec![(0, settled_rss(&srv).await?)];
    let mut held = 0usize;
    for &target in &args.points {
        while held < target {
            let n = BATCH.min(target - held);
            let x: Vec<f64> = (held..held + n).map(|k| k as f64).collect();
            let y: Vec<f64> = x.iter().map(|v| v * 0.5).collect();
            http.request(
                "POST",
                &path,
                &headers,
                &raw_xy(&x, &y),
                Instant::now() + Duration::from_secs(60),
            )
            .await?
            .ok("a stream batch")?;
            held += n;
        }
        readings.push((held, settled_rss(&srv).await?));
        eprintln!("sizing: {held} points held (stored: {stored})");
    }
    Ok(readings)
}

/// One table line: what, the readings, the slope.
fn line(out: &mut String, what: &str, readings: &[Reading], unit: f64, per: &str) {
    let list: Vec<String> = readings
        .iter()
        .map(|(n, kib)| format!("{n}: {} MiB", number(*kib as f64 / 1024.0)))
        .collect();
    let s = slope(readings).map_or_else(|| "-".to_owned(), |s| number(s * unit));
    out.push_str(&format!("| {what} | {} | {s} {per} |\n", list.join(", ")));
}

/// Measures every figure and returns the table.
///
/// # Errors
/// A server that does not start, a request that fails, a view that cannot be opened.
pub async fn run(args: &SizingArgs) -> Result<(String, bool)> {
    let mut out = String::from(
        "server RSS (settled VmRSS), slope fitted by least squares\n\n\
         | what | readings (count: RSS) | slope |\n|---|---|---:|\n",
    );
    let views = per_view(args).await?;
    line(
        &mut out,
        "idle views of one document",
        &views,
        1.0,
        "KiB/view",
    );
    for lod in [true, false] {
        let r = per_lod_view(args, lod).await?;
        let what = format!(
            "views of a {}-row line source, lod {}",
            args.lod_points,
            if lod { "on" } else { "off" }
        );
        line(&mut out, &what, &r, 1.0 / 1024.0, "MiB/view");
    }
    for stored in [false, true] {
        let r = per_point(args, stored).await?;
        let what = if stored {
            "points held, with a data dir"
        } else {
            "points held, --data-dir none"
        };
        line(&mut out, what, &r, 1e6 / 1024.0, "MiB/1e6 points");
    }
    Ok((out, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line() {
        let r = [(0, 100), (10, 120), (20, 140)];
        assert_eq!(slope(&r), Some(2.0));
        assert_eq!(slope(&[(5, 1), (5, 2)]), None);
    }
}
