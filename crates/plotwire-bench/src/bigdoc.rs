//! Workload 3, big document: a producer pushes a document holding N float64 points (as
//! binary buffers), then a fresh viewer connects and pulls it. Reports the pull's time and
//! the bytes it read from the socket, and checks every pulled point.

use std::time::Duration;

use plotwire_protocol::message::MsgType;
use tokio::time::Instant;

use crate::client::Conn;
use crate::data::{check_pulled, now_ns, Batch, Encoding, Source};
use crate::error::{Context, Result};
use crate::servers::ServerProcess;
use crate::session_id;

/// What one big-document run measured.
#[derive(Debug, Clone)]
pub struct BigDoc {
    /// Points in the document.
    pub points: usize,
    /// PUSH-DOC → OK (includes the server's RootAdded echo to the pusher).
    pub push: Duration,
    /// A fresh viewer's connect (handshake and ACK).
    pub connect: Duration,
    /// PULL-DOC-REQ sent → PULL-DOC-REPLY complete.
    pub pull: Duration,
    /// Bytes the viewer read from the socket during the pull (websocket framing included).
    pub pull_bytes: u64,
    /// The server's RSS after the push and pull, in KiB.
    pub rss_kib: Option<u64>,
    /// What is wrong with the pulled document, if anything.
    pub check: Option<String>,
}

/// Pushes a document of `points` points to a fresh session on `server`, then pulls it
/// from a fresh viewer, within `budget` per request.
///
/// # Errors
/// Connection failures, ERROR replies (e.g. a message over the size limit), timeouts, and
/// a pulled document whose points are not exactly the pushed ones.
pub async fn run(server: &ServerProcess, points: usize, budget: Duration) -> Result<BigDoc> {
    let endpoint = &server.endpoint;
    let sid = session_id("bigdoc");
    let source = Source::new(&sid, Encoding::Binary, None);
    let deadline = Instant::now() + budget;
    let mut producer = Conn::connect(endpoint, &sid, deadline)
        .await
        .context(|| "producer connect")?;
    let doc = Batch {
        first_index: 0,
        points,
        sent_ns: now_ns(),
    };
    let (content, buffers) = source.push_doc(&doc);
    let push_start = Instant::now();
    producer
        .request_ok(MsgType::PushDoc, content, &buffers, deadline)
        .await
        .context(|| format!("PUSH-DOC of {points} points"))?;
    let push = push_start.elapsed();
    drop(buffers);

    let deadline = Instant::now() + budget;
    let connect_start = Instant::now();
    let mut viewer = Conn::connect(endpoint, &sid, deadline)
        .await
        .context(|| "viewer connect")?;
    let connect = connect_start.elapsed();
    let before = viewer.rx.bytes_read();
    let pull_start = Instant::now();
    let reply = viewer
        .pull(deadline)
        .await
        .context(|| format!("PULL-DOC of {points} points"))?;
    let pull = pull_start.elapsed();
    let pull_bytes = viewer.rx.bytes_read().saturating_sub(before);
    let rss_kib = server.rss_kib().ok();
    let check = check_pulled(&reply, 0, points, points)
        .err()
        .map(|e| format!("the pulled document: {e}"));
    drop(reply);
    viewer.close().await;
    producer.close().await;
    Ok(BigDoc {
        points,
        push,
        connect,
        pull,
        pull_bytes,
        rss_kib,
        check,
    })
}
