//! Workload 1, ingest: one producer pushes a document with an empty float64
//! ColumnDataSource, then streams batches with one in flight (each waits for its OK),
//! with rollover. At the end a fresh viewer pulls the document and checks that it holds
//! exactly the last `rollover` points, whole and in order.

use std::time::Duration;

use plotwire_protocol::message::MsgType;
use tokio::time::Instant;

use crate::client::Conn;
use crate::data::{check_pulled, now_ns, Batch, Encoding, Source};
use crate::error::{Context, Result};
use crate::servers::{ServerProcess, UsageReport};
use crate::session_id;

/// How long one request may wait for its reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// One ingest variant.
#[derive(Debug, Clone, Copy)]
pub struct IngestSpec {
    /// Points per batch.
    pub points: usize,
    /// Binary buffers or JSON lists.
    pub encoding: Encoding,
    /// At most this many batches.
    pub max_batches: usize,
    /// At most this long (the batch in flight finishes).
    pub budget: Duration,
    /// The stream's rollover.
    pub rollover: usize,
}

/// What one ingest variant measured.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// Batches sent and acknowledged.
    pub batches: usize,
    /// Points in them.
    pub points: u64,
    /// First send to last OK.
    pub elapsed: Duration,
    /// Send → OK of each batch.
    pub acks: Vec<Duration>,
    /// The final PULL-DOC's round trip.
    pub pull: Duration,
    /// The server's CPU and RSS while the batches streamed.
    pub usage: UsageReport,
    /// What is wrong with the final document, if anything (data lost, reordered or
    /// corrupted).
    pub check: Option<String>,
}

impl Ingest {
    /// Points per second.
    pub fn points_per_sec(&self) -> f64 {
        self.points as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs one ingest variant on `server`.
///
/// # Errors
/// Connection failures, ERROR replies, timeouts, and a final document that is not
/// exactly the last `rollover` points in order.
pub async fn run(server: &ServerProcess, spec: IngestSpec) -> Result<Ingest> {
    let endpoint = &server.endpoint;
    let sid = session_id("ingest");
    let source = Source::new(&sid, spec.encoding, Some(spec.rollover));
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut conn = Conn::connect(endpoint, &sid, deadline)
        .await
        .context(|| "producer connect")?;
    let empty = Batch {
        first_index: 0,
        points: 0,
        sent_ns: 0,
    };
    let (content, buffers) = source.push_doc(&empty);
    conn.request_ok(MsgType::PushDoc, content, &buffers, deadline)
        .await
        .context(|| "PUSH-DOC of the empty source")?;

    let usage = server.usage();
    let start = Instant::now();
    let end = start + spec.budget;
    let mut acks = Vec::with_capacity(spec.max_batches.min(1 << 20));
    let mut next_index: u64 = 0;
    for n in 0..spec.max_batches {
        if Instant::now() >= end {
            break;
        }
        let batch = Batch {
            first_index: next_index,
            points: spec.points,
            sent_ns: now_ns(),
        };
        let (content, buffers) = source.stream(&batch);
        let sent = Instant::now();
        conn.request_ok(MsgType::PatchDoc, content, &buffers, sent + REQUEST_TIMEOUT)
            .await
            .context(|| format!("batch {n}"))?;
        acks.push(sent.elapsed());
        next_index += spec.points as u64;
    }
    let elapsed = start.elapsed();
    let usage = usage.finish();

    // A fresh viewer checks what the server kept.
    let kept = next_index.min(spec.rollover as u64);
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut viewer = Conn::connect(endpoint, &sid, deadline)
        .await
        .context(|| "checking viewer connect")?;
    let pull_start = Instant::now();
    let reply = viewer
        .pull(deadline)
        .await
        .context(|| "checking PULL-DOC")?;
    let pull = pull_start.elapsed();
    let check = check_pulled(&reply, next_index - kept, kept as usize, spec.points)
        .err()
        .map(|e| {
            format!(
                "the document after {} batches (rollover {}): {e}",
                acks.len(),
                spec.rollover
            )
        });
    viewer.close().await;
    conn.close().await;
    Ok(Ingest {
        batches: acks.len(),
        points: next_index,
        elapsed,
        acks,
        pull,
        usage,
        check,
    })
}
