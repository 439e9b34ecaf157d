//! `plotwire-bench tls`: what TLS costs, against `plotwire serve` alone, once over plain
//! TCP and once with `--ssl-certfile`/`--ssl-keyfile` (a self-signed certificate made
//! here with rcgen, trusted by the bench's clients), with the same raw Bokeh clients:
//!
//! 1. **fan-out**: one producer streams `--points`-point batches at `--rate-hz` to
//!    `--viewers` viewers (default 100) for `--seconds`; the figure is the p99 of send →
//!    receive over every delivery (workload 2 of the comparison);
//! 2. **ingest**: ack-gated binary batches of `--ingest-points` points (default 100k) for
//!    `--ingest-seconds` (workload 1); the figures are points per second and the p99 of
//!    send → OK.
//!
//! The run fails if a delivery was lost, reordered or corrupted, or a final document is
//! wrong.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::data::Encoding;
use crate::error::{err, Context, Result};
use crate::fanout::{Fanout, FanoutSpec};
use crate::ingest::{Ingest, IngestSpec};
use crate::report::{ms, quantile};
use crate::servers::{free_port, start_plotwire_over, TempDir};

/// The TLS run's options.
#[derive(Args, Debug, Clone)]
pub struct TlsArgs {
    /// The plotwire binary (a release build for figures).
    #[arg(long, default_value = "target/release/plotwire")]
    pub plotwire_bin: PathBuf,
    /// Fan-out viewers.
    #[arg(long, default_value_t = 100)]
    pub viewers: usize,
    /// Points per fan-out batch.
    #[arg(long, default_value_t = 100)]
    pub points: usize,
    /// Fan-out batches per second.
    #[arg(long, default_value_t = 50)]
    pub rate_hz: u32,
    /// Seconds the fan-out producer streams.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Points per ingest batch.
    #[arg(long, default_value_t = 100_000)]
    pub ingest_points: usize,
    /// Seconds of ingest (the batch in flight finishes).
    #[arg(long, default_value_t = 5)]
    pub ingest_seconds: u64,
    /// The most ingest batches.
    #[arg(long, default_value_t = 1000)]
    pub ingest_batches: usize,
}

/// How long the server may take to start.
const STARTUP: Duration = Duration::from_secs(60);
/// The largest websocket message the server accepts (as the comparison's).
const MAX_MESSAGE_BYTES: usize = 200 * 1024 * 1024;
/// The streams' rollover.
const ROLLOVER: usize = 1_000_000;
/// How long viewers may still receive after the last batch.
const DRAIN: Duration = Duration::from_secs(10);
/// The longest fan-out setup (connecting every viewer).
const SETUP_BUDGET: Duration = Duration::from_secs(180);

/// What one server (plain or TLS) measured.
struct Measured {
    fanout: Fanout,
    ingest: Ingest,
}

/// A self-signed certificate for 127.0.0.1 in `dir` (cert.pem, key.pem), and a client
/// config that trusts it.
fn certificate(dir: &TempDir) -> Result<(Vec<String>, Arc<rustls::ClientConfig>)> {
    let key = rcgen::KeyPair::generate().context(|| "making a key")?;
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .context(|| "certificate parameters")?;
    let cert = params
        .self_signed(&key)
        .context(|| "signing the certificate")?;
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.pem()).context(|| "writing cert.pem")?;
    std::fs::write(&key_path, key.serialize_pem()).context(|| "writing key.pem")?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.der().clone())
        .context(|| "trusting the certificate")?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context(|| "TLS versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let args = vec![
        "--ssl-certfile".to_owned(),
        cert_path.display().to_string(),
        "--ssl-keyfile".to_owned(),
        key_path.display().to_string(),
    ];
    Ok((args, Arc::new(config)))
}

/// Runs both workloads on a fresh server, over TLS if `tls` is given.
async fn measure(
    args: &TlsArgs,
    tls: Option<(Vec<String>, Arc<rustls::ClientConfig>)>,
) -> Result<Measured> {
    let (mut extra, client) = tls.map_or((Vec::new(), None), |(a, c)| (a, Some(c)));
    extra.extend([
        "--websocket-max-message-size".to_owned(),
        MAX_MESSAGE_BYTES.to_string(),
        "--data-dir".to_owned(),
        "none".to_owned(),
    ]);
    let server =
        start_plotwire_over(&args.plotwire_bin, free_port()?, &extra, STARTUP, client).await?;
    let fanout = crate::fanout::run(
        &server,
        FanoutSpec {
            viewers: args.viewers,
            points: args.points,
            rate_hz: args.rate_hz,
            duration: Duration::from_secs(args.seconds),
            drain: DRAIN,
            stalled: false,
            rollover: ROLLOVER,
            setup_budget: SETUP_BUDGET,
        },
    )
    .await
    .context(|| "fan-out")?;
    let ingest = crate::ingest::run(
        &server,
        IngestSpec {
            points: args.ingest_points,
            encoding: Encoding::Binary,
            max_batches: args.ingest_batches,
            budget: Duration::from_secs(args.ingest_seconds),
            rollover: ROLLOVER,
        },
    )
    .await
    .context(|| "ingest")?;
    Ok(Measured { fanout, ingest })
}

fn millis(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.2} ms", ms(d)))
}

/// Runs the TLS comparison and returns its report and whether it passed.
///
/// # Errors
/// A server that cannot start, or a workload that cannot run.
pub async fn run(args: &TlsArgs) -> Result<(String, bool)> {
    let dir = TempDir::new("plotwire-bench-tls")?;
    let plain = measure(args, None).await.context(|| "plain")?;
    let tls = measure(args, Some(certificate(&dir)?))
        .await
        .context(|| "TLS")?;
    let mut out = String::new();
    let mut passed = true;
    let _ = writeln!(
        out,
        "TLS cost (plotwire alone; fan-out: {} viewers, {}-point batches at {} Hz for {} s; ingest: {}-point binary batches for {} s)",
        args.viewers, args.points, args.rate_hz, args.seconds, args.ingest_points, args.ingest_seconds
    );
    let _ = writeln!(
        out,
        "{:<8} {:>13} {:>13} {:>11} {:>12} {:>16} {:>13} {:>11}",
        "",
        "fan-out p50",
        "fan-out p99",
        "delivered",
        "server cores",
        "ingest Mpts/s",
        "ingest ack p99",
        "ingest cores"
    );
    for (name, m) in [("plain", &plain), ("TLS", &tls)] {
        let f = &m.fanout;
        let i = &m.ingest;
        let _ = writeln!(
            out,
            "{:<8} {:>13} {:>13} {:>10.1}% {:>12} {:>16.2} {:>13} {:>11}",
            name,
            millis(quantile(&f.latencies, 0.5)),
            millis(quantile(&f.latencies, 0.99)),
            100.0 * f.delivered_fraction(),
            f.usage
                .cores()
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
            i.points_per_sec() / 1e6,
            millis(quantile(&i.acks, 0.99)),
            i.usage
                .cores()
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
        );
        if !f.is_clean() || !f.is_complete() {
            passed = false;
            let _ = writeln!(
                out,
                "  {name} fan-out FAILED: {}",
                f.first_problem.as_deref().unwrap_or("deliveries missing")
            );
        }
        if let Some(problem) = &i.check {
            passed = false;
            let _ = writeln!(out, "  {name} ingest FAILED: {problem}");
        }
    }
    if plain.fanout.latencies.is_empty() || tls.fanout.latencies.is_empty() {
        return Err(err("a fan-out run delivered nothing"));
    }
    Ok((out, passed))
}
