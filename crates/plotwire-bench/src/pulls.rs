//! Workload 6, pull interference: whether pulling a big document disturbs another
//! session's fan-out (issue 6: big encodes run off the owner's hot path).
//!
//! Session A holds a big document (a producer pushes N float64 points as binary buffers,
//! the same data as the big-document workload). Session B is a fan-out (see [`fanout`]):
//! a producer streams small batches at a fixed rate to K viewers, which check every batch
//! and measure send → receive latency from the send time in the data.
//!
//! 1. Phase 1: B alone (A's document is loaded but idle).
//! 2. The control: B again, on a fresh session, while a thread at the puller's priority
//!    keeps one CPU busy and does nothing else (see [`burner`]).
//! 3. Phase 2: B again, on a fresh session, while one puller connection on A pulls the
//!    whole document three times in a row (each time waiting for the full reply), round
//!    after round, for as long as B's producer streams. Every pulled document is checked
//!    point by point.
//!
//! The puller runs on its own thread with its own runtime, so its reading and checking
//! (160 MB per pull at 1e7 points) never holds up the viewers' tasks. That thread runs
//! under `SCHED_IDLE` (see [`lowest_priority`]): on a 2-core machine, at equal priority,
//! its own CPU use delayed the viewers it shares the process with, which measured the
//! client rather than the server. Only the server's behaviour (and the shared CPUs) link
//! the two sessions.
//!
//! Even at the lowest priority, a thread that keeps a CPU busy raises the viewers' tail
//! latency on the small VMs these runs use, whatever it does (measured: an idle-priority
//! shell loop alone took phase 1's p99 from about 1 ms to 4-5 ms). The control phase
//! measures that part, so that phase 2 against the control is what the pulls add through
//! the server, and phase 2 against phase 1 is the figure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use plotwire_protocol::message::MsgType;
use tokio::sync::oneshot;
use tokio::time::{timeout, Instant};

use crate::client::{Conn, Endpoint};
use crate::data::{check_pulled, now_ns, Batch, Encoding, Source};
use crate::error::{err, Context, Result};
use crate::fanout::{self, Fanout, FanoutSpec, Window};
use crate::servers::ServerProcess;
use crate::session_id;

/// Pulls in a row, per round.
pub const PULLS_PER_ROUND: usize = 3;

/// At most this many rounds in one phase 2.
const MAX_ROUNDS: usize = 10_000;

/// At most this many messages read on A's idle producer connection.
const MAX_IDLE_MESSAGES: usize = 1000;

/// One pull-interference run.
#[derive(Debug, Clone, Copy)]
pub struct PullSpec {
    /// Points in session A's document.
    pub doc_points: usize,
    /// Session B's fan-out, used for both phases (its `duration` is each phase's length).
    pub fanout: FanoutSpec,
    /// The longest push, connect or single pull.
    pub budget: Duration,
    /// How long to let the server go idle between the phases, at most.
    pub settle: Duration,
}

/// What the puller did in phase 2.
#[derive(Debug, Clone, Default)]
pub struct PullStats {
    /// Every completed pull's time, PULL-DOC-REQ sent → PULL-DOC-REPLY complete.
    pub times: Vec<Duration>,
    /// Pulls that started while B's producer was streaming.
    pub overlapping: usize,
    /// Complete rounds of [`PULLS_PER_ROUND`] pulls.
    pub rounds: usize,
    /// Bytes read from the socket over all pulls.
    pub bytes: u64,
    /// The first pulled document that was not exactly the pushed one, if any.
    pub check: Option<String>,
}

impl PullStats {
    /// The mean pull time, if any pull completed.
    pub fn mean(&self) -> Option<Duration> {
        let n = u32::try_from(self.times.len()).ok().filter(|&n| n > 0)?;
        Some(self.times.iter().sum::<Duration>() / n)
    }
}

/// What one pull-interference run measured.
#[derive(Debug, Clone)]
pub struct PullInterference {
    /// Points in A's document.
    pub doc_points: usize,
    /// A's PUSH-DOC → OK.
    pub push: Duration,
    /// Phase 1: B without pulls.
    pub without: Fanout,
    /// The control: B without pulls, while a thread at the puller's priority keeps one
    /// CPU busy (the puller's CPU use, without the server's part in a pull).
    pub control: Fanout,
    /// Phase 2: B while A's document is pulled.
    pub with: Fanout,
    /// The puller in phase 2.
    pub pulls: PullStats,
}

/// Moves the calling thread to Linux's `SCHED_IDLE` policy (at nice 19): it runs only
/// when no other thread wants the CPU, and any waking thread preempts it at once. False
/// if it could not.
#[cfg(target_os = "linux")]
fn lowest_priority() -> bool {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    )
    .is_ok()
}

/// Thread priorities are only lowered on Linux.
#[cfg(not(target_os = "linux"))]
fn lowest_priority() -> bool {
    false
}

/// Starts a thread at the puller's priority that keeps one CPU busy, touching nothing
/// but itself, until `stop` is set or `bound` has passed: the control phase's stand-in
/// for the puller's own CPU use, without any pull.
fn burner(stop: Arc<AtomicBool>, bound: Duration) -> Result<std::thread::JoinHandle<bool>> {
    std::thread::Builder::new()
        .name("burner".into())
        .spawn(move || {
            let lowered = lowest_priority();
            let until = std::time::Instant::now() + bound;
            let mut spins: u64 = 0;
            while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
            lowered
        })
        .context(|| "starting the burner thread")
}

/// Runs the puller on its own thread and runtime: connects to A's session, reports
/// readiness through `ready`, waits (at most `wait`) for B's streaming window, then pulls
/// in rounds of [`PULLS_PER_ROUND`] until the window ends.
fn puller(
    endpoint: Endpoint,
    sid: String,
    points: usize,
    budget: Duration,
    wait: Duration,
    ready: oneshot::Sender<()>,
    window: oneshot::Receiver<Window>,
) -> Result<PullStats> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context(|| "starting the puller's runtime")?;
    runtime.block_on(async move {
        let mut conn = Conn::connect(&endpoint, &sid, Instant::now() + budget)
            .await
            .context(|| "puller connect")?;
        let _ = ready.send(());
        let (_, end) = timeout(wait, window)
            .await
            .context(|| "the puller waited too long for the stream to start")?
            .context(|| "phase 2 ended before its stream started")?;
        let mut stats = PullStats::default();
        for _ in 0..MAX_ROUNDS {
            if Instant::now() >= end {
                break;
            }
            for _ in 0..PULLS_PER_ROUND {
                let before = conn.rx.bytes_read();
                let started = Instant::now();
                let reply = conn
                    .pull(started + budget)
                    .await
                    .context(|| format!("PULL-DOC {} of {points} points", stats.times.len()))?;
                stats.times.push(started.elapsed());
                stats.bytes += conn.rx.bytes_read().saturating_sub(before);
                if started < end {
                    stats.overlapping += 1;
                }
                if stats.check.is_none() {
                    stats.check = check_pulled(&reply, 0, points, points).err().map(|e| {
                        format!(
                            "pulled document {}: {e}",
                            stats.times.len().saturating_sub(1)
                        )
                    });
                }
            }
            stats.rounds += 1;
        }
        conn.close().await;
        Ok(stats)
    })
}

/// Runs one pull-interference run on `server`.
///
/// # Errors
/// Either phase's fan-out failing, A's push, or any pull failing (a timeout, an ERROR, a
/// dropped connection).
pub async fn run(server: &ServerProcess, spec: PullSpec) -> Result<PullInterference> {
    let endpoint = server.endpoint.clone();
    let sid = session_id("pulls");
    let source = Source::new(&sid, Encoding::Binary, None);
    let deadline = Instant::now() + spec.budget;
    let mut producer = Conn::connect(&endpoint, &sid, deadline)
        .await
        .context(|| "session A: producer connect")?;
    let doc = Batch {
        first_index: 0,
        points: spec.doc_points,
        sent_ns: now_ns(),
    };
    let (content, buffers) = source.push_doc(&doc);
    let push_start = Instant::now();
    producer
        .request_ok(MsgType::PushDoc, content, &buffers, deadline)
        .await
        .context(|| format!("session A: PUSH-DOC of {} points", spec.doc_points))?;
    let push = push_start.elapsed();
    drop(buffers);
    // A's producer stays connected, so the session and its document outlive phase 1
    // (the servers drop sessions without connections after 1 s). It keeps reading,
    // which answers the servers' keep-alive pings.
    let Conn { tx, mut rx } = producer;
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let bound = (spec.fanout.setup_budget + spec.fanout.duration + spec.fanout.drain + spec.settle)
        * 2
        + spec.budget * 4;
    let keep_reading = tokio::spawn(async move {
        let until = Instant::now() + bound;
        for _ in 0..MAX_IDLE_MESSAGES {
            tokio::select! {
                message = rx.recv(until) => if message.is_err() { break },
                _ = &mut stop_rx => break,
            }
        }
    });
    server.settle(Duration::ZERO, spec.settle).await;

    let without = fanout::run(server, spec.fanout)
        .await
        .context(|| "phase 1 (without pulls)")?;
    server.settle(Duration::ZERO, spec.settle).await;

    let stop = Arc::new(AtomicBool::new(false));
    let burning = burner(stop.clone(), spec.fanout.setup_budget + spec.budget)?;
    let control = fanout::run(server, spec.fanout).await;
    stop.store(true, Ordering::Relaxed);
    let lowered = burning
        .join()
        .map_err(|_| err("the burner thread panicked"))?;
    if !lowered {
        eprintln!("[bench] the burner could not lower its priority: it ran at nice 0");
    }
    let control = control.context(|| "the control phase (a CPU burner, no pulls)")?;
    server.settle(Duration::ZERO, spec.settle).await;

    let (ready_tx, ready_rx) = oneshot::channel();
    let (window_tx, window_rx) = oneshot::channel();
    let wait = spec.fanout.setup_budget + spec.budget;
    let (points, budget) = (spec.doc_points, spec.budget);
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("puller".into())
        .spawn(move || {
            if !lowest_priority() {
                eprintln!("[bench] the puller could not lower its priority: it runs at nice 0");
            }
            let _ = done_tx.send(puller(
                endpoint, sid, points, budget, wait, ready_tx, window_rx,
            ));
        })
        .context(|| "starting the puller thread")?;
    // A puller that fails to connect drops `ready_tx`; its error comes from the join.
    let connected = timeout(spec.budget, ready_rx).await;
    let with = match connected {
        Ok(Ok(())) => fanout::run_with(server, spec.fanout, Some(window_tx))
            .await
            .context(|| "phase 2 (with pulls)"),
        Ok(Err(_)) => Err(err("the puller stopped before it was connected")),
        Err(_) => Err(err("the puller did not connect in time")),
    };
    let pulls = done_rx
        .await
        .context(|| "the puller thread failed")?
        .context(|| "session A: puller");
    let _ = stop_tx.send(());
    let _ = keep_reading.await;
    tx.close().await;
    let (with, pulls) = match (with, pulls) {
        (Ok(with), Ok(pulls)) => (with, pulls),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
        (Err(a), Err(b)) => return Err(err(format!("{a}; {b}"))),
    };
    Ok(PullInterference {
        doc_points: spec.doc_points,
        push,
        without,
        control,
        with,
        pulls,
    })
}
