//! Workload 2, fan-out (and workload 5, the slow viewer): one producer streams batches
//! at a fixed rate while K raw viewers, attached before the first batch (each pulls the
//! document first), receive every relay. Each viewer checks the batches it gets (no loss,
//! no reordering, no corruption) and measures send → receive latency from the send time
//! in the data. After its last batch the producer changes the title to `end <n>`; that
//! relay comes after every batch, so a viewer that sees it knows what it should have.
//!
//! With `stalled`, one more viewer attaches with a tiny receive buffer and never reads
//! while the batches flow. Afterwards it reads what the server kept for it: an in-order
//! prefix, then either everything or a close.

use std::sync::Arc;
use std::time::Duration;

use plotwire_protocol::message::MsgType;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

use crate::client::{Conn, ConnectOptions, Endpoint, Receiver};
use crate::data::{
    check_pulled, end_marker, now_ns, read_relay, Batch, Encoding, Relay, RelayCache, Source,
    Tracker,
};
use crate::error::{err, Context, Result};
use crate::servers::{own_cpu_time, ServerProcess, UsageReport};
use crate::session_id;

/// How long connecting and pulling may take for one viewer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Viewers connecting at the same time.
const CONNECT_CONCURRENCY: usize = 16;

/// The receive buffer of the stalled viewer's socket, in bytes.
const STALLED_RECV_BUFFER: u32 = 4096;

/// How long the stalled viewer is read at the end.
const STALLED_DRAIN: Duration = Duration::from_secs(10);

/// One fan-out run.
#[derive(Debug, Clone, Copy)]
pub struct FanoutSpec {
    /// Reading viewers.
    pub viewers: usize,
    /// Points per batch.
    pub points: usize,
    /// Batches per second.
    pub rate_hz: u32,
    /// How long the producer streams.
    pub duration: Duration,
    /// How long viewers may still receive after the producer's last batch.
    pub drain: Duration,
    /// Whether one more viewer attaches and never reads.
    pub stalled: bool,
    /// The stream's rollover.
    pub rollover: usize,
    /// The longest setup (connecting every viewer).
    pub setup_budget: Duration,
}

/// What the stalled viewer got, read after the run.
#[derive(Debug, Clone)]
pub struct Stalled {
    /// How its reading ended: the end marker, a close by the server, or the time bound.
    pub outcome: String,
    /// Whether what it got was clean (an in-order prefix).
    pub clean: bool,
    /// The first problem, if any.
    pub problem: Option<String>,
}

/// What a fan-out run measured.
#[derive(Debug, Clone)]
pub struct Fanout {
    /// Reading viewers.
    pub viewers: usize,
    /// Batches the producer sent.
    pub sent: u64,
    /// Batch deliveries to the reading viewers, whole and in order.
    pub delivered: u64,
    /// Send → receive latency of every delivery.
    pub latencies: Vec<Duration>,
    /// Reading viewers that got the end marker.
    pub finished_viewers: usize,
    /// Points lost (a gap, or missing before the end marker), over all reading viewers.
    pub lost_points: u64,
    /// Batches reordered or duplicated.
    pub reordered: u64,
    /// Batches corrupted.
    pub corrupted: u64,
    /// The first problem seen, if any.
    pub first_problem: Option<String>,
    /// Reading viewers the server closed, with the first reason.
    pub closed: (usize, Option<String>),
    /// Time to connect and pull every viewer.
    pub setup: Duration,
    /// The server's RSS (KiB) before and after every viewer attached.
    pub setup_rss_kib: (Option<u64>, Option<u64>),
    /// The server's CPU and RSS from the first batch until every viewer finished.
    pub usage: UsageReport,
    /// The bench's own CPU time in the same window.
    pub client_cpu: Option<Duration>,
    /// The OKs the producer got.
    pub oks: u64,
    /// Whether the producer could send everything in time.
    pub producer_note: Option<String>,
    /// The stalled viewer's outcome, when there was one.
    pub stalled: Option<Stalled>,
}

impl Fanout {
    /// The server's RSS growth per attached viewer, in KiB (connections and their
    /// buffers, before any batch).
    pub fn rss_per_viewer_kib(&self) -> Option<f64> {
        let (before, after) = self.setup_rss_kib;
        let viewers = self.viewers + usize::from(self.stalled.is_some());
        (viewers > 0).then_some(())?;
        Some((after? as f64 - before? as f64) / viewers as f64)
    }

    /// The fraction of expected deliveries that arrived whole and in order.
    pub fn delivered_fraction(&self) -> f64 {
        let expected = self.sent * self.viewers as u64;
        if expected == 0 {
            return 0.0;
        }
        self.delivered as f64 / expected as f64
    }

    /// Whether nothing was lost, reordered or corrupted among what arrived.
    pub fn is_clean(&self) -> bool {
        self.lost_points == 0
            && self.reordered == 0
            && self.corrupted == 0
            && self.closed.0 == 0
            && self.stalled.as_ref().is_none_or(|s| s.clean)
    }

    /// Whether every reading viewer got every batch.
    pub fn is_complete(&self) -> bool {
        self.finished_viewers == self.viewers && self.delivered == self.sent * self.viewers as u64
    }
}

/// One reading viewer's result.
#[derive(Debug, Default)]
struct ViewerResult {
    tracker: Tracker,
    latencies: Vec<Duration>,
    end: Option<u64>,
    closed: Option<String>,
}

/// The soft limit on open files of this process, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Connects a viewer and pulls the (empty) document.
async fn attach(
    endpoint: Endpoint,
    sid: String,
    options: ConnectOptions,
    points: usize,
) -> Result<Conn> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut conn = Conn::connect_with(&endpoint, &sid, deadline, options).await?;
    let reply = conn.pull(deadline).await.context(|| "PULL-DOC")?;
    check_pulled(&reply, 0, 0, points).context(|| "the pulled document")?;
    Ok(conn)
}

/// Reads relays until the end marker, a close, or `deadline`.
async fn read_viewer(rx: &mut Receiver, deadline: Instant, max_messages: u64) -> ViewerResult {
    let mut result = ViewerResult {
        tracker: Tracker::starting_at(0),
        ..ViewerResult::default()
    };
    let mut cache = RelayCache::default();
    for _ in 0..max_messages {
        let message = match rx.recv(deadline).await {
            Ok(m) => m,
            Err(e) => {
                if Instant::now() < deadline {
                    result.closed = Some(e.to_string());
                }
                break;
            }
        };
        let received = now_ns();
        let latencies = &mut result.latencies;
        let relay = read_relay(&message, &mut result.tracker, &mut cache, |sent| {
            latencies.push(Duration::from_nanos(received.saturating_sub(sent)));
        });
        match relay {
            Ok(Relay::End(n)) => {
                result.end = Some(n);
                break;
            }
            Ok(_) => {}
            Err(e) => {
                result.tracker.corrupted += 1;
                if result.tracker.first_problem.is_none() {
                    result.tracker.first_problem = Some(e.to_string());
                }
            }
        }
    }
    result
}

/// The streaming window of a fan-out run: when its first batch is due and when the
/// producer stops.
pub type Window = (Instant, Instant);

/// Runs one fan-out on `server`.
///
/// # Errors
/// Set-up failures (connect, PUSH-DOC, PULL-DOC), too few open files, a producer that
/// fails for another reason than the time bound.
pub async fn run(server: &ServerProcess, spec: FanoutSpec) -> Result<Fanout> {
    run_with(server, spec, None).await
}

/// [`run`], telling `window` (once every viewer is attached) when the producer streams,
/// so that other load can overlap the stream exactly.
///
/// # Errors
/// As [`run`].
pub async fn run_with(
    server: &ServerProcess,
    spec: FanoutSpec,
    window: Option<oneshot::Sender<Window>>,
) -> Result<Fanout> {
    let endpoint = server.endpoint.clone();
    let needed = spec.viewers as u64 + 64;
    if let Some(limit) = open_files_limit() {
        if limit < needed {
            return Err(err(format!(
                "{} viewers need about {needed} open files, the limit is {limit}: raise it \
                 with `ulimit -n` (scripts/bench.sh does)",
                spec.viewers
            )));
        }
    }
    let sid = session_id("fanout");
    let source = Source::new(&sid, Encoding::Binary, Some(spec.rollover));
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let producer = Conn::connect(&endpoint, &sid, deadline)
        .await
        .context(|| "producer connect")?;
    let mut producer = producer;
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

    // Attach every viewer before the first batch.
    let rss_before = server.rss_kib().ok();
    let setup_start = Instant::now();
    let setup_deadline = setup_start + spec.setup_budget;
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut joins = JoinSet::new();
    for v in 0..spec.viewers {
        let (endpoint, sid, permits) = (endpoint.clone(), sid.clone(), Arc::clone(&permits));
        let points = spec.points;
        joins.spawn(async move {
            let _permit = permits.acquire_owned().await.context(|| "semaphore")?;
            attach(endpoint, sid, ConnectOptions::default(), points)
                .await
                .context(|| format!("viewer {v}"))
        });
    }
    let mut viewers = Vec::with_capacity(spec.viewers);
    for _ in 0..spec.viewers {
        let joined = tokio::time::timeout_at(setup_deadline, joins.join_next())
            .await
            .map_err(|_| {
                err(format!(
                    "attaching {} viewers took over {} s ({} attached)",
                    spec.viewers,
                    spec.setup_budget.as_secs(),
                    viewers.len()
                ))
            })?
            .context(|| "a viewer task vanished")?
            .context(|| "a viewer task panicked")??;
        viewers.push(joined);
    }
    let mut stalled = if spec.stalled {
        let options = ConnectOptions {
            recv_buffer: Some(STALLED_RECV_BUFFER),
        };
        Some(
            attach(endpoint.clone(), sid.clone(), options, spec.points)
                .await
                .context(|| "the stalled viewer")?,
        )
    } else {
        None
    };
    let setup = setup_start.elapsed();
    let setup_rss_kib = (rss_before, server.rss_kib().ok());

    // Stream.
    let period = Duration::from_secs_f64(1.0 / f64::from(spec.rate_hz.max(1)));
    let planned = (spec.duration.as_secs_f64() * f64::from(spec.rate_hz)).ceil() as u64;
    let usage = server.usage();
    let client_before = own_cpu_time();
    let start = Instant::now();
    let stream_end = start + spec.duration;
    let viewer_deadline = stream_end + spec.drain;
    if let Some(window) = window {
        // A receiver that is gone only means nobody overlaps the stream.
        let _ = window.send((start, stream_end));
    }
    let max_messages = planned + 1000;
    let mut tasks: JoinSet<ViewerResult> = JoinSet::new();
    for mut conn in viewers {
        tasks.spawn(async move {
            let result = read_viewer(&mut conn.rx, viewer_deadline, max_messages).await;
            conn.close().await;
            result
        });
    }

    let Conn { mut tx, mut rx } = producer;
    // The producer reads its OKs concurrently; it stops once it has one per message sent
    // (the count arrives through `expected` when the producer is done).
    let (expected_tx, mut expected) = tokio::sync::watch::channel(u64::MAX);
    let ok_reader = tokio::spawn(async move {
        let mut oks = 0u64;
        for _ in 0..max_messages * 2 {
            if oks >= *expected.borrow() {
                break;
            }
            tokio::select! {
                message = rx.recv(viewer_deadline) => match message {
                    Ok(m) if m.kind() == Some(MsgType::Ok) => oks += 1,
                    Ok(m) if m.kind() == Some(MsgType::Error) => {
                        return (oks, Some(format!("ERROR: {}", String::from_utf8_lossy(&m.content))))
                    }
                    Ok(_) => {}
                    Err(e) if Instant::now() < viewer_deadline => return (oks, Some(e.to_string())),
                    Err(_) => break,
                },
                changed = expected.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        (oks, None)
    });

    let mut sent = 0u64;
    let mut producer_note = None;
    let mut send_failed = false;
    for n in 0..planned {
        let due = start + period.mul_f64(n as f64);
        sleep_until(due).await;
        if Instant::now() >= stream_end {
            break;
        }
        let batch = Batch {
            first_index: n * spec.points as u64,
            points: spec.points,
            sent_ns: now_ns(),
        };
        let (content, buffers) = source.stream(&batch);
        match tx
            .send(
                MsgType::PatchDoc,
                content,
                &buffers,
                stream_end + spec.drain / 2,
            )
            .await
        {
            Ok(_) => sent += 1,
            Err(e) => {
                producer_note = Some(format!("the producer stopped after {sent} batches: {e}"));
                send_failed = true;
                break;
            }
        }
    }
    let behind = Instant::now().saturating_duration_since(stream_end);
    if producer_note.is_none() && behind > Duration::from_millis(200) {
        producer_note = Some(format!(
            "the producer finished {} ms late (the server read it slowly)",
            behind.as_millis()
        ));
    }
    // After a failed send a message may be half written: no end marker then.
    let mut messages = sent;
    if !send_failed {
        match tx
            .send(MsgType::PatchDoc, end_marker(sent), &[], viewer_deadline)
            .await
        {
            Ok(_) => messages += 1,
            Err(e) => {
                producer_note.get_or_insert_with(|| format!("the end marker was not sent: {e}"));
            }
        }
    }
    let _ = expected_tx.send(messages);

    let mut results = Vec::with_capacity(spec.viewers);
    for _ in 0..spec.viewers {
        match tasks.join_next().await {
            Some(Ok(r)) => results.push(r),
            Some(Err(e)) => return Err(err(format!("a viewer task failed: {e}"))),
            None => break,
        }
    }
    let usage = usage.finish();
    let client_cpu = match (client_before, own_cpu_time()) {
        (Some(a), Some(b)) => Some(b.since(a).total()),
        _ => None,
    };
    let (oks, ok_problem) = ok_reader
        .await
        .unwrap_or((0, Some("OK reader panicked".into())));
    if let Some(p) = ok_problem {
        producer_note.get_or_insert(p);
    }

    let stalled = match stalled.take() {
        Some(mut conn) => {
            let deadline = Instant::now() + STALLED_DRAIN;
            let r = read_viewer(&mut conn.rx, deadline, max_messages).await;
            drop(conn);
            Some(stalled_outcome(&r, sent, spec.points))
        }
        None => None,
    };
    tx.close().await;

    let mut fanout = Fanout {
        viewers: spec.viewers,
        sent,
        delivered: 0,
        latencies: Vec::with_capacity(results.iter().map(|r| r.latencies.len()).sum()),
        finished_viewers: 0,
        lost_points: 0,
        reordered: 0,
        corrupted: 0,
        first_problem: None,
        closed: (0, None),
        setup,
        setup_rss_kib,
        usage,
        client_cpu,
        oks,
        producer_note,
        stalled,
    };
    for r in results {
        let t = &r.tracker;
        fanout.delivered += t.batches;
        fanout.lost_points += t.lost_points;
        fanout.reordered += t.reordered;
        fanout.corrupted += t.corrupted;
        if fanout.first_problem.is_none() {
            fanout.first_problem.clone_from(&t.first_problem);
        }
        if let Some(end) = r.end {
            fanout.finished_viewers += 1;
            let expected = end * spec.points as u64;
            if t.next_index < expected {
                fanout.lost_points += expected - t.next_index;
                fanout.first_problem.get_or_insert_with(|| {
                    format!(
                        "a viewer got the end marker after index {} of {expected}",
                        t.next_index
                    )
                });
            }
        }
        if let Some(reason) = r.closed {
            fanout.closed.0 += 1;
            fanout.closed.1.get_or_insert(reason);
        }
        fanout.latencies.extend(r.latencies);
    }
    Ok(fanout)
}

/// Judges what the stalled viewer read after the run.
fn stalled_outcome(r: &ViewerResult, sent: u64, points: usize) -> Stalled {
    let t = &r.tracker;
    let outcome = match (&r.end, &r.closed) {
        (Some(_), _) => format!(
            "caught up: {}/{sent} batches, then the end marker",
            t.batches
        ),
        (None, Some(reason)) => format!("{}/{sent} batches, then {reason}", t.batches),
        (None, None) => format!("{}/{sent} batches when the time bound passed", t.batches),
    };
    let mut clean = t.is_clean();
    let mut problem = t.first_problem.clone();
    if let Some(end) = r.end {
        if t.next_index < end * points as u64 {
            clean = false;
            problem.get_or_insert_with(|| "the end marker came before every batch".to_owned());
        }
    }
    Stalled {
        outcome,
        clean,
        problem,
    }
}
