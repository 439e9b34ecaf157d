//! `plotwire-bench soak`: one long run against `plotwire serve` alone, to show that its
//! memory stays flat and that nothing goes wrong over time (issue 6).
//!
//! - One producer pushes a ColumnDataSource and streams `--points` float64 points per
//!   batch (binary) at `--rate` batches/s with `--rollover`, so the document stays
//!   bounded, for `--duration` seconds, then sends the end marker.
//! - `--steady` viewers attach before the first batch, stay connected and check every
//!   batch (whole, in order, nothing lost: see [`crate::data`]) until the end marker.
//! - `--churn` viewers loop: connect, pull (the pulled document is checked), receive and
//!   check for a random 1-10 s, close.
//! - `--stalled` viewers loop: connect with a tiny receive buffer, pull, then never read
//!   for `--stall` seconds; then they read what the server had buffered, which must be an
//!   in-order prefix followed by a close (the server closes a stalled viewer with 1013
//!   when its outbox overflows, or drops it past its dead-peer timeout), and reconnect.
//!
//! The server's RSS (`VmRSS`) and open file descriptors are sampled every 10 s; a line is
//! printed every minute. The summary gives RSS at the start (after `--warmup`), its
//! maximum and its end, the slope of a linear fit after the warm-up, and every error:
//! data-check failures, unexpected closes of steady or churn viewers, producer ERRORs or
//! missing OKs, a stalled viewer the server never closed. It is printed and written as
//! JSON (`--json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use plotwire_protocol::frame::RawMessage;
use plotwire_protocol::message::MsgType;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};

use crate::client::{Conn, ConnectOptions, Endpoint, Sender};
use crate::data::{
    check_pulled_any, end_marker, now_ns, read_relay, start_clock, Batch, Encoding, Relay,
    RelayCache, Source, Tracker,
};
use crate::error::{err, Context, Result};
use crate::servers::{free_port, own_cpu_time, start_plotwire, CpuTime};
use crate::session_id;

/// The soak run's options.
#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    /// How long the producer streams, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub duration: u64,
    /// Batches per second.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// float64 points per batch.
    #[arg(long, default_value_t = 100)]
    pub points: usize,
    /// The stream's rollover (the document never holds more points).
    #[arg(long, default_value_t = 100_000)]
    pub rollover: usize,
    /// Viewers that stay connected and check every batch.
    #[arg(long, default_value_t = 90)]
    pub steady: usize,
    /// Viewers that connect, pull, receive for 1-10 s and disconnect, in a loop.
    #[arg(long, default_value_t = 10)]
    pub churn: usize,
    /// Viewers that connect and never read, in a loop (the server must close them).
    #[arg(long, default_value_t = 1)]
    pub stalled: usize,
    /// Seconds a stalled viewer stays unread before it checks that the server closed it
    /// (above the server's default dead-peer timeout, 60 s, checked every 15 s).
    #[arg(long, default_value_t = 100)]
    pub stall: u64,
    /// Seconds of warm-up: the start RSS is the first sample after it, and the slope is
    /// fitted after it. It covers the first stalled-viewer cycle (stall, then close): RSS
    /// climbs to its plateau over that cycle (a 3-minute run rose from 50 to 61 MiB between
    /// 60 and 120 s, then stayed flat).
    #[arg(long, default_value_t = 180)]
    pub warmup: u64,
    /// The plotwire binary (a release build).
    #[arg(long, default_value = "target/release/plotwire")]
    pub plotwire_bin: PathBuf,
    /// Where to write the summary as JSON.
    #[arg(long, default_value = "target/bench/soak.json")]
    pub json: PathBuf,
}

/// The server's RSS and open files are sampled this often.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// The last sample is taken this long before the stream ends.
const FINAL_SAMPLE_LEAD: Duration = Duration::from_millis(500);

/// A progress line is printed this often.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// How long connecting and pulling may take for one viewer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long steady viewers may still receive after the producer's last batch.
const DRAIN: Duration = Duration::from_secs(15);

/// How long a stalled viewer reads after its stall: what the server had buffered, then
/// its close.
const STALLED_READ: Duration = Duration::from_secs(30);

/// The receive buffer of a stalled viewer's socket, in bytes.
const STALLED_RECV_BUFFER: u32 = 4096;

/// How long one producer message may take to send.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Viewers connecting at the same time at the start.
const CONNECT_CONCURRENCY: usize = 16;

/// Error descriptions kept (the count goes on).
const MAX_ERRORS_KEPT: usize = 50;

/// Distinct close reasons of stalled viewers kept.
const MAX_CLOSE_REASONS: usize = 20;

/// Growth over the run (after the warm-up, from the fitted slope) still called flat: the
/// larger of this and [`FLAT_FRACTION`] of the start RSS.
const FLAT_KIB: f64 = 4096.0;

/// See [`FLAT_KIB`].
const FLAT_FRACTION: f64 = 0.05;

/// Counters shared by every task of the run.
struct Stats {
    start: Instant,
    sent: AtomicU64,
    oks: AtomicU64,
    deliveries: AtomicU64,
    churn_deliveries: AtomicU64,
    stalled_deliveries: AtomicU64,
    churn_cycles: AtomicU64,
    stalled_closes: AtomicU64,
    steady_finished: AtomicU64,
    steady_reconnects: AtomicU64,
    errors: AtomicU64,
    /// The highest steady-viewer latency since the last progress line, in ns.
    window_latency_ns: AtomicU64,
    /// The highest steady-viewer latency of the run, in ns.
    max_latency_ns: AtomicU64,
    kept_errors: Mutex<Vec<String>>,
    close_reasons: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    fn new(start: Instant) -> Stats {
        Stats {
            start,
            sent: AtomicU64::new(0),
            oks: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            churn_deliveries: AtomicU64::new(0),
            stalled_deliveries: AtomicU64::new(0),
            churn_cycles: AtomicU64::new(0),
            stalled_closes: AtomicU64::new(0),
            steady_finished: AtomicU64::new(0),
            steady_reconnects: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            window_latency_ns: AtomicU64::new(0),
            max_latency_ns: AtomicU64::new(0),
            kept_errors: Mutex::new(Vec::new()),
            close_reasons: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts an error; the first [`MAX_ERRORS_KEPT`] are kept and printed.
    fn error(&self, what: impl AsRef<str>) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        let line = format!(
            "{:.1} s: {}",
            self.start.elapsed().as_secs_f64(),
            what.as_ref()
        );
        if let Ok(mut kept) = self.kept_errors.lock() {
            if kept.len() < MAX_ERRORS_KEPT {
                progress(format!("ERROR #{n} at {line}"));
                kept.push(line);
            }
        }
    }

    /// Counts a stalled viewer's close, by reason.
    fn stalled_closed(&self, reason: &str) {
        self.stalled_closes.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut reasons) = self.close_reasons.lock() {
            if let Some(n) = reasons.get_mut(reason) {
                *n += 1;
            } else if reasons.len() < MAX_CLOSE_REASONS {
                reasons.insert(reason.to_owned(), 1);
            }
        }
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A progress line on stderr.
fn progress(line: impl AsRef<str>) {
    eprintln!("[soak] {}", line.as_ref());
}

/// What every task needs.
struct Ctx {
    endpoint: Endpoint,
    sid: String,
    points: usize,
    /// The producer's last batch is due before this.
    stream_end: Instant,
    /// Steady viewers stop waiting for the end marker at this instant.
    viewer_deadline: Instant,
    stall: Duration,
    stats: Stats,
}

/// One viewer's checks: every relayed batch goes through a [`Tracker`], and every new
/// problem is counted as an error.
struct Checked {
    tracker: Tracker,
    cache: RelayCache,
    /// Lost points, reordered and corrupted batches already reported.
    reported: (u64, u64, u64),
}

impl Checked {
    /// Checks expecting the next batch to start at index `next`.
    fn new(next: u64) -> Checked {
        Checked {
            tracker: Tracker::starting_at(next),
            cache: RelayCache::default(),
            reported: (0, 0, 0),
        }
    }

    /// Takes one message; counts its batch in `delivered`, reports new problems as
    /// errors of `who`, and returns the end marker's batch count if it was one.
    fn take(
        &mut self,
        message: &RawMessage,
        who: &str,
        delivered: &AtomicU64,
        latency: Option<&Stats>,
        stats: &Stats,
    ) -> Option<u64> {
        let before = self.tracker.batches;
        let received = now_ns();
        let mut worst = 0u64;
        let relay = read_relay(message, &mut self.tracker, &mut self.cache, |sent| {
            worst = worst.max(received.saturating_sub(sent));
        });
        let mut end = None;
        match relay {
            Ok(Relay::End(n)) => end = Some(n),
            Ok(_) => {}
            Err(e) => {
                self.tracker.corrupted += 1;
                self.tracker
                    .first_problem
                    .get_or_insert_with(|| e.to_string());
            }
        }
        delivered.fetch_add(self.tracker.batches - before, Ordering::Relaxed);
        if let Some(s) = latency {
            s.window_latency_ns.fetch_max(worst, Ordering::Relaxed);
            s.max_latency_ns.fetch_max(worst, Ordering::Relaxed);
        }
        let t = &self.tracker;
        let now = (t.lost_points, t.reordered, t.corrupted);
        if now != self.reported {
            self.reported = now;
            stats.error(format!(
                "{who}: {} points lost, {} batches reordered, {} corrupted so far (first: {})",
                now.0,
                now.1,
                now.2,
                t.first_problem.as_deref().unwrap_or("-")
            ));
        }
        end
    }
}

/// Connects a viewer to the session and pulls the document; returns the connection and
/// the index the next relayed batch must start at.
async fn attach(ctx: &Ctx, options: ConnectOptions) -> Result<(Conn, u64)> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut conn = Conn::connect_with(&ctx.endpoint, &ctx.sid, deadline, options).await?;
    let reply = conn.pull(deadline).await.context(|| "PULL-DOC")?;
    let next = check_pulled_any(&reply, ctx.points).context(|| "the pulled document")?;
    Ok((conn, next))
}

/// Closes a viewer's connection: a close frame, then reads up to the server's close (at
/// most a second), so that neither side resets the connection.
async fn close_politely(conn: Conn) {
    let Conn { tx, mut rx } = conn;
    tx.close().await;
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if rx.recv(deadline).await.is_err() {
            break;
        }
    }
}

/// A steady viewer: already attached (before the first batch); checks every batch until
/// the end marker. An unexpected close is an error; it then reconnects.
async fn steady(v: usize, ctx: Arc<Ctx>, conn: Conn, next: u64) {
    let who = format!("steady viewer {v}");
    let stats = &ctx.stats;
    let mut conn = Some(conn);
    let mut checked = Checked::new(next);
    let mut finished = false;
    while Instant::now() < ctx.viewer_deadline {
        let Some(c) = conn.as_mut() else {
            match attach(&ctx, ConnectOptions::default()).await {
                Ok((c, next)) => {
                    stats.steady_reconnects.fetch_add(1, Ordering::Relaxed);
                    conn = Some(c);
                    checked = Checked::new(next);
                }
                Err(e) => {
                    stats.error(format!("{who}: reconnecting: {e}"));
                    sleep(Duration::from_secs(1)).await;
                }
            }
            continue;
        };
        match c.rx.recv(ctx.viewer_deadline).await {
            Ok(message) => {
                if let Some(n) = checked.take(&message, &who, &stats.deliveries, Some(stats), stats)
                {
                    let expected = n * ctx.points as u64;
                    if checked.tracker.next_index != expected {
                        stats.error(format!(
                            "{who}: the end marker after {n} batches came after index {}, \
                             expected {expected}",
                            checked.tracker.next_index
                        ));
                    }
                    finished = true;
                    break;
                }
            }
            Err(e) => {
                if Instant::now() < ctx.viewer_deadline {
                    stats.error(format!("{who}: closed: {e}"));
                    conn = None;
                }
            }
        }
    }
    if finished {
        stats.steady_finished.fetch_add(1, Ordering::Relaxed);
    } else {
        stats.error(format!("{who}: no end marker before the deadline"));
    }
    if let Some(c) = conn {
        close_politely(c).await;
    }
}

/// A small xorshift generator for the churn viewers' stays (no `rand` dependency).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi.saturating_sub(lo) + 1)
    }
}

/// A churn viewer: connect, pull, receive for a random 1-10 s, close; until the stream
/// ends.
async fn churn(v: usize, ctx: Arc<Ctx>) {
    let who = format!("churn viewer {v}");
    let stats = &ctx.stats;
    let mut rng = Rng::new(now_ns() ^ (v as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    // Spread the first connects.
    sleep(Duration::from_millis(rng.between(0, 1000))).await;
    while Instant::now() < ctx.stream_end {
        let (mut conn, next) = match attach(&ctx, ConnectOptions::default()).await {
            Ok(attached) => attached,
            Err(e) => {
                if Instant::now() < ctx.stream_end {
                    stats.error(format!("{who}: attaching: {e}"));
                }
                sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let stay = Duration::from_millis(rng.between(1000, 10_000));
        let until = (Instant::now() + stay).min(ctx.stream_end);
        let mut checked = Checked::new(next);
        let mut dropped = false;
        while Instant::now() < until {
            match conn.rx.recv(until).await {
                Ok(message) => {
                    checked.take(&message, &who, &stats.churn_deliveries, None, stats);
                }
                Err(e) => {
                    if Instant::now() < until {
                        stats.error(format!("{who}: closed: {e}"));
                        dropped = true;
                    }
                    break;
                }
            }
        }
        if !dropped {
            close_politely(conn).await;
        }
        stats.churn_cycles.fetch_add(1, Ordering::Relaxed);
    }
}

/// A stalled viewer: connect with a tiny receive buffer, pull, never read for the stall
/// time, then read what the server had buffered (an in-order prefix) and its close; until
/// the stream ends.
async fn stalled(v: usize, ctx: Arc<Ctx>) {
    let who = format!("stalled viewer {v}");
    let stats = &ctx.stats;
    let options = ConnectOptions {
        recv_buffer: Some(STALLED_RECV_BUFFER),
    };
    while Instant::now() < ctx.stream_end {
        let (mut conn, next) = match attach(&ctx, options).await {
            Ok(attached) => attached,
            Err(e) => {
                if Instant::now() < ctx.stream_end {
                    stats.error(format!("{who}: attaching: {e}"));
                }
                sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let stall_end = Instant::now() + ctx.stall;
        if stall_end > ctx.stream_end {
            // The run ends before this stall would: stay stalled to the end.
            sleep_until(ctx.stream_end).await;
            break;
        }
        sleep_until(stall_end).await;
        let read_deadline = Instant::now() + STALLED_READ;
        let mut checked = Checked::new(next);
        let mut closed = None;
        while Instant::now() < read_deadline {
            match conn.rx.recv(read_deadline).await {
                Ok(message) => {
                    checked.take(&message, &who, &stats.stalled_deliveries, None, stats);
                }
                Err(e) => {
                    if Instant::now() < read_deadline {
                        closed = Some(e.to_string());
                    }
                    break;
                }
            }
        }
        match closed {
            Some(reason) => stats.stalled_closed(&reason),
            None => stats.error(format!(
                "{who}: still open {} s after it stopped reading",
                (ctx.stall + STALLED_READ).as_secs()
            )),
        }
    }
}

/// Streams batches at the rate until the stream ends, then the end marker. Returns how
/// many messages were sent, and the sender (to close it once every OK is in).
async fn produce(ctx: Arc<Ctx>, mut tx: Sender, source: Source, rate: u32) -> (u64, Sender) {
    let stats = &ctx.stats;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = stats.start;
    let planned = ((ctx.stream_end - start).as_secs_f64() * f64::from(rate)).ceil() as u64;
    let mut sent = 0u64;
    for n in 0..planned {
        sleep_until(start + period.mul_f64(n as f64)).await;
        if Instant::now() >= ctx.stream_end {
            break;
        }
        let batch = Batch {
            first_index: n * ctx.points as u64,
            points: ctx.points,
            sent_ns: now_ns(),
        };
        let (content, buffers) = source.stream(&batch);
        if let Err(e) = tx
            .send(
                MsgType::PatchDoc,
                content,
                &buffers,
                Instant::now() + SEND_TIMEOUT,
            )
            .await
        {
            stats.error(format!("producer: sending batch {n}: {e}"));
            // A message may be half written: no end marker.
            return (sent, tx);
        }
        sent += 1;
        stats.sent.fetch_add(1, Ordering::Relaxed);
    }
    match tx
        .send(
            MsgType::PatchDoc,
            end_marker(sent),
            &[],
            Instant::now() + SEND_TIMEOUT,
        )
        .await
    {
        Ok(_) => (sent + 1, tx),
        Err(e) => {
            stats.error(format!("producer: sending the end marker: {e}"));
            (sent, tx)
        }
    }
}

/// One sample of the server.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds since the stream started.
    t: f64,
    rss_kib: u64,
    fds: u64,
}

/// The server's open file descriptors.
fn open_fds(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(dir.count() as u64)
}

/// The soft limit on open files of this process, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The least-squares slope of RSS over time, in KiB per minute.
fn slope_kib_per_min(samples: &[Sample]) -> Option<f64> {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return None;
    }
    let mean_t = samples.iter().map(|s| s.t).sum::<f64>() / n;
    let mean_r = samples.iter().map(|s| s.rss_kib as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for s in samples {
        num += (s.t - mean_t) * (s.rss_kib as f64 - mean_r);
        den += (s.t - mean_t) * (s.t - mean_t);
    }
    (den > 0.0).then(|| num / den * 60.0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// CPU cores used between two readings over `wall`.
fn cores(a: Option<CpuTime>, b: Option<CpuTime>, wall: Duration) -> Option<f64> {
    let (a, b) = (a?, b?);
    let wall = wall.as_secs_f64();
    (wall > 0.0).then(|| b.since(a).total().as_secs_f64() / wall)
}

/// Runs the soak; returns the summary for stdout and whether it passed.
///
/// # Errors
/// Set-up failures (the server, the producer's PUSH-DOC, attaching the steady viewers),
/// too few open files, or the server exiting during the run.
pub async fn run(args: &SoakArgs) -> Result<(String, bool)> {
    start_clock();
    let needed = (args.steady + args.churn + args.stalled) as u64 + 64;
    if let Some(limit) = open_files_limit() {
        if limit < needed {
            return Err(err(format!(
                "{needed} open files needed, the limit is {limit}: raise it with `ulimit -n`"
            )));
        }
    }
    if !args.plotwire_bin.is_file() {
        return Err(err(format!(
            "plotwire binary {} not found: build it with `cargo build --release -p plotwire`",
            args.plotwire_bin.display()
        )));
    }
    let port = free_port()?;
    let server = start_plotwire(
        &args.plotwire_bin,
        port,
        20 * 1024 * 1024,
        Duration::from_secs(60),
    )
    .await?;
    let pid = server.pid();
    progress(format!(
        "plotwire pid {pid} on 127.0.0.1:{port}; {} s at {} batches/s of {} points (rollover \
         {}), {} steady + {} churn + {} stalled viewers",
        args.duration, args.rate, args.points, args.rollover, args.steady, args.churn, args.stalled
    ));

    let sid = session_id("soak");
    let source = Source::new(&sid, Encoding::Binary, Some(args.rollover));
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut producer = Conn::connect(&server.endpoint, &sid, deadline)
        .await
        .context(|| "producer connect")?;
    let empty = Batch {
        first_index: 0,
        points: 0,
        sent_ns: 0,
    };
    let (content, buffers) = source.push_doc(&empty);
    producer
        .request_ok(MsgType::PushDoc, content, &buffers, deadline)
        .await
        .context(|| "PUSH-DOC")?;

    // The context's instants are set once the steady viewers are attached; attaching
    // only needs the endpoint and session.
    let setup_ctx = Ctx {
        endpoint: server.endpoint.clone(),
        sid: sid.clone(),
        points: args.points,
        stream_end: Instant::now(),
        viewer_deadline: Instant::now(),
        stall: Duration::from_secs(args.stall),
        stats: Stats::new(Instant::now()),
    };
    let setup_ctx = Arc::new(setup_ctx);
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut joins = JoinSet::new();
    for v in 0..args.steady {
        let (ctx, permits) = (Arc::clone(&setup_ctx), Arc::clone(&permits));
        joins.spawn(async move {
            let _permit = permits.acquire_owned().await.context(|| "semaphore")?;
            attach(&ctx, ConnectOptions::default())
                .await
                .context(|| format!("steady viewer {v}"))
                .map(|(conn, next)| (v, conn, next))
        });
    }
    let mut viewers = Vec::with_capacity(args.steady);
    while let Some(joined) = joins.join_next().await {
        viewers.push(joined.context(|| "a viewer task failed")??);
    }
    viewers.sort_by_key(|(v, _, _)| *v);

    let start = Instant::now();
    let duration = Duration::from_secs(args.duration);
    let stream_end = start + duration;
    let ctx = Arc::new(Ctx {
        endpoint: server.endpoint.clone(),
        sid,
        points: args.points,
        stream_end,
        viewer_deadline: stream_end + DRAIN,
        stall: Duration::from_secs(args.stall),
        stats: Stats::new(start),
    });
    let client_cpu_start = own_cpu_time();
    let server_cpu_start = server.cpu_time();

    let mut tasks = JoinSet::new();
    for (v, conn, next) in viewers {
        tasks.spawn(steady(v, Arc::clone(&ctx), conn, next));
    }
    for v in 0..args.churn {
        tasks.spawn(churn(v, Arc::clone(&ctx)));
    }
    for v in 0..args.stalled {
        tasks.spawn(stalled(v, Arc::clone(&ctx)));
    }
    let Conn { tx, mut rx } = producer;
    // The producer's OKs are read all along (an unread producer would be closed as too
    // slow); the reader stops once it has one per message sent.
    let (expected_tx, mut expected) = tokio::sync::watch::channel(u64::MAX);
    let ok_reader = {
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            let stats = &ctx.stats;
            let deadline = ctx.viewer_deadline;
            while Instant::now() < deadline && Stats::get(&stats.oks) < *expected.borrow() {
                tokio::select! {
                    message = rx.recv(deadline) => match message {
                        Ok(m) if m.kind() == Some(MsgType::Ok) => {
                            stats.oks.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(m) if m.kind() == Some(MsgType::Error) => stats.error(format!(
                            "producer got ERROR: {}",
                            String::from_utf8_lossy(&m.content)
                        )),
                        Ok(_) => {}
                        Err(e) => {
                            if Instant::now() < deadline {
                                stats.error(format!("producer connection: {e}"));
                            }
                            break;
                        }
                    },
                    changed = expected.changed() => if changed.is_err() {
                        break;
                    },
                }
            }
            rx
        })
    };
    let producer_task = tokio::spawn(produce(Arc::clone(&ctx), tx, source, args.rate));

    // Sample until the stream ends.
    let stats = &ctx.stats;
    let mut samples: Vec<Sample> = Vec::new();
    let mut last_report = (start, own_cpu_time(), server.cpu_time());
    let mut server_died = false;
    let sample_count = args.duration / SAMPLE_EVERY.as_secs().max(1) + 1;
    for k in 0..=sample_count {
        // The last sample comes just before the stream ends: right after it, the steady
        // viewers get the end marker and close.
        let last = stream_end
            .checked_sub(FINAL_SAMPLE_LEAD)
            .unwrap_or(stream_end);
        let at = (start + SAMPLE_EVERY * u32::try_from(k).unwrap_or(u32::MAX)).min(last);
        sleep_until(at).await;
        if !server.is_running() {
            stats.error("the server exited");
            server_died = true;
            break;
        }
        let t = start.elapsed().as_secs_f64();
        match (server.rss_kib(), open_fds(pid)) {
            (Ok(rss_kib), Some(fds)) => samples.push(Sample { t, rss_kib, fds }),
            (rss, fds) => progress(format!("could not sample the server: {rss:?}, fds {fds:?}")),
        }
        let now = Instant::now();
        if now.duration_since(last_report.0) + Duration::from_millis(500) >= REPORT_EVERY
            || at >= last
        {
            let (client, srv) = (own_cpu_time(), server.cpu_time());
            let wall = now.duration_since(last_report.0);
            progress(minute_line(
                stats,
                samples.last(),
                t,
                cores(last_report.2, srv, wall),
                cores(last_report.1, client, wall),
            ));
            last_report = (now, client, srv);
        }
        if at >= last {
            break;
        }
    }

    let (messages, tx) = match producer_task.await {
        Ok((messages, tx)) => (messages, Some(tx)),
        Err(e) => {
            stats.error(format!("the producer task failed: {e}"));
            (0, None)
        }
    };
    let _ = expected_tx.send(messages);
    let wall = start.elapsed();
    let client_cpu = cores(client_cpu_start, own_cpu_time(), wall);
    let server_cpu = cores(server_cpu_start, server.cpu_time(), wall);
    // Every task is bounded by the viewer deadline or the stalled viewers' read.
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            stats.error(format!("a viewer task failed: {e}"));
        }
    }
    match ok_reader.await {
        Ok(rx) => drop(rx),
        Err(e) => stats.error(format!("the OK reader failed: {e}")),
    }
    if let Some(tx) = tx {
        tx.close().await;
    }
    let oks = Stats::get(&stats.oks);
    if !server_died && oks != messages {
        stats.error(format!(
            "the producer got {oks} OKs for {messages} messages"
        ));
    }
    let after_close = server.rss_kib().ok();
    let summary = summarize(args, &ctx, &samples, after_close, client_cpu, server_cpu);
    drop(server);
    Ok(summary)
}

/// The progress line printed every minute.
fn minute_line(
    stats: &Stats,
    sample: Option<&Sample>,
    t: f64,
    server_cores: Option<f64>,
    client_cores: Option<f64>,
) -> String {
    let latency = stats.window_latency_ns.swap(0, Ordering::Relaxed);
    let opt = |c: Option<f64>| c.map_or_else(|| "?".to_owned(), |c| format!("{c:.2}"));
    format!(
        "{:02}:{:02} elapsed {t:.0} s: RSS {} MiB, fds {}, sent {}, deliveries {}, latency max \
         {:.1} ms, errors {}, churn cycles {}, stalled closes {}, server CPU {} cores, client \
         CPU {} cores",
        (t as u64) / 60,
        (t as u64) % 60,
        sample.map_or_else(|| "?".to_owned(), |s| format!("{:.1}", mib(s.rss_kib))),
        sample.map_or_else(|| "?".to_owned(), |s| s.fds.to_string()),
        Stats::get(&stats.sent),
        Stats::get(&stats.deliveries),
        latency as f64 / 1e6,
        Stats::get(&stats.errors),
        Stats::get(&stats.churn_cycles),
        Stats::get(&stats.stalled_closes),
        opt(server_cores),
        opt(client_cores),
    )
}

/// The summary text and JSON (written to `--json`), and whether the run passed.
fn summarize(
    args: &SoakArgs,
    ctx: &Ctx,
    samples: &[Sample],
    after_close: Option<u64>,
    client_cpu: Option<f64>,
    server_cpu: Option<f64>,
) -> (String, bool) {
    let stats = &ctx.stats;
    let warm: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.t >= args.warmup as f64)
        .collect();
    let fitted = if warm.len() >= 2 { &warm[..] } else { samples };
    let start = fitted.first().copied();
    let end = samples.last().copied();
    let max = samples.iter().copied().max_by_key(|s| s.rss_kib);
    let slope = slope_kib_per_min(fitted);
    let fitted_minutes = match (fitted.first(), fitted.last()) {
        (Some(a), Some(b)) => (b.t - a.t) / 60.0,
        _ => 0.0,
    };
    let growth = slope.map(|s| s * fitted_minutes);
    let allowed = start.map_or(FLAT_KIB, |s| FLAT_KIB.max(FLAT_FRACTION * s.rss_kib as f64));
    let flat = growth.is_some_and(|g| g <= allowed);

    let sent = Stats::get(&stats.sent);
    let deliveries = Stats::get(&stats.deliveries);
    let expected = sent * args.steady as u64;
    let finished = Stats::get(&stats.steady_finished);
    let closes = Stats::get(&stats.stalled_closes);
    if deliveries != expected && Stats::get(&stats.errors) == 0 {
        stats.error(format!(
            "steady viewers got {deliveries} batch deliveries of {expected}"
        ));
    }
    let stall_cycle = ctx.stall + STALLED_READ;
    if args.stalled > 0 && args.duration > stall_cycle.as_secs() && closes == 0 {
        stats.error("the server closed no stalled viewer");
    }
    let errors = Stats::get(&stats.errors);
    let passed = errors == 0 && flat && finished == args.steady as u64;
    let kept = stats
        .kept_errors
        .lock()
        .map(|k| k.clone())
        .unwrap_or_default();
    let reasons = stats
        .close_reasons
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let fds_max = samples.iter().map(|s| s.fds).max();
    let max_latency_ms = Stats::get(&stats.max_latency_ns) as f64 / 1e6;

    let kib_json = |s: Option<Sample>| {
        s.map(|s| serde_json::json!({"t_s": s.t, "rss_kib": s.rss_kib, "fds": s.fds}))
    };
    let json = serde_json::json!({
        "started_utc": crate::utc_now(),
        "machine": crate::machine(),
        "params": {
            "duration_s": args.duration, "rate_hz": args.rate, "points": args.points,
            "rollover": args.rollover, "steady": args.steady, "churn": args.churn,
            "stalled": args.stalled, "stall_s": args.stall, "warmup_s": args.warmup,
        },
        "rss": {
            "start": kib_json(start), "max": kib_json(max), "end": kib_json(end),
            "after_viewers_closed_kib": after_close,
            "slope_kib_per_min": slope,
            "fitted_growth_kib": growth,
            "flat_allowance_kib": allowed,
            "flat": flat,
        },
        "fds": {"start": start.map(|s| s.fds), "max": fds_max, "end": end.map(|s| s.fds)},
        "samples": samples.iter().map(|s| serde_json::json!([s.t, s.rss_kib, s.fds])).collect::<Vec<_>>(),
        "batches_sent": sent,
        "producer_oks": Stats::get(&stats.oks),
        "steady_deliveries": deliveries,
        "steady_deliveries_expected": expected,
        "steady_finished": finished,
        "steady_reconnects": Stats::get(&stats.steady_reconnects),
        "steady_latency_max_ms": max_latency_ms,
        "churn_cycles": Stats::get(&stats.churn_cycles),
        "churn_deliveries": Stats::get(&stats.churn_deliveries),
        "stalled_closes": closes,
        "stalled_close_reasons": reasons,
        "stalled_deliveries": Stats::get(&stats.stalled_deliveries),
        "server_cpu_cores": server_cpu,
        "client_cpu_cores": client_cpu,
        "errors": errors,
        "error_list": kept,
        "passed": passed,
    });

    let kib_text = |s: Option<Sample>| {
        s.map_or_else(
            || "?".to_owned(),
            |s| {
                format!(
                    "{:.1} MiB ({} KiB) at {:.0} s",
                    mib(s.rss_kib),
                    s.rss_kib,
                    s.t
                )
            },
        )
    };
    let mut out = String::new();
    let _ = writeln!(out, "plotwire soak, {}", crate::utc_now());
    let _ = writeln!(out, "machine: {}", crate::machine());
    let _ = writeln!(
        out,
        "{} s at {} batches/s of {} points (rollover {}); {} steady, {} churn, {} stalled viewers",
        args.duration, args.rate, args.points, args.rollover, args.steady, args.churn, args.stalled
    );
    let _ = writeln!(
        out,
        "RSS start (after {} s warm-up): {}",
        args.warmup,
        kib_text(start)
    );
    let _ = writeln!(out, "RSS max:   {}", kib_text(max));
    let _ = writeln!(out, "RSS end:   {}", kib_text(end));
    if let Some(k) = after_close {
        let _ = writeln!(out, "RSS after every viewer closed: {:.1} MiB", mib(k));
    }
    let _ = writeln!(
        out,
        "RSS slope after warm-up: {} KiB/min (fitted growth {} KiB over {:.1} min; flat if \
         ≤ {:.0} KiB): {}",
        slope.map_or_else(|| "?".to_owned(), |s| format!("{s:.2}")),
        growth.map_or_else(|| "?".to_owned(), |g| format!("{g:.0}")),
        fitted_minutes,
        allowed,
        if flat { "FLAT" } else { "NOT FLAT" }
    );
    let _ = writeln!(
        out,
        "open fds: start {}, max {}, end {}",
        start.map_or_else(|| "?".to_owned(), |s| s.fds.to_string()),
        fds_max.map_or_else(|| "?".to_owned(), |f| f.to_string()),
        end.map_or_else(|| "?".to_owned(), |s| s.fds.to_string())
    );
    let _ = writeln!(
        out,
        "batches sent {sent}, producer OKs {}; steady deliveries {deliveries} of {expected} \
         ({finished}/{} viewers got the end marker, {} reconnects), latency max {max_latency_ms:.1} ms",
        Stats::get(&stats.oks),
        args.steady,
        Stats::get(&stats.steady_reconnects)
    );
    let _ = writeln!(
        out,
        "churn: {} cycles, {} deliveries; stalled: {} closes ({}), {} deliveries read after stalls",
        Stats::get(&stats.churn_cycles),
        Stats::get(&stats.churn_deliveries),
        closes,
        reasons
            .iter()
            .map(|(r, n)| format!("{n}x {r}"))
            .collect::<Vec<_>>()
            .join("; "),
        Stats::get(&stats.stalled_deliveries)
    );
    let opt = |c: Option<f64>| c.map_or_else(|| "?".to_owned(), |c| format!("{c:.2}"));
    let _ = writeln!(
        out,
        "CPU: server {} cores, client {} cores",
        opt(server_cpu),
        opt(client_cpu)
    );
    let _ = writeln!(out, "errors: {errors}");
    for e in &kept {
        let _ = writeln!(out, "  {e}");
    }
    match crate::write_json(&args.json, &json) {
        Ok(abs) => {
            let _ = writeln!(out, "summary written to {}", abs.display());
        }
        Err(e) => {
            let _ = writeln!(out, "could not write {}: {e}", args.json.display());
        }
    }
    let _ = writeln!(
        out,
        "result: {}",
        if passed {
            "PASSED (no error, RSS flat)"
        } else {
            "FAILED"
        }
    );
    (out, passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_is_in_kib_per_minute() {
        let samples: Vec<Sample> = (0..10)
            .map(|k| Sample {
                t: f64::from(k) * 10.0,
                rss_kib: 1000 + u64::try_from(k).unwrap() * 5,
                fds: 3,
            })
            .collect();
        let slope = slope_kib_per_min(&samples).unwrap();
        assert!((slope - 30.0).abs() < 1e-9, "{slope}");
        assert_eq!(slope_kib_per_min(&samples[..1]), None);
    }

    #[test]
    fn rng_stays_in_range() {
        let mut rng = Rng::new(42);
        for _ in 0..1000 {
            let n = rng.between(1000, 10_000);
            assert!((1000..=10_000).contains(&n));
        }
    }
}
