//! The benchmark scenarios. Each runs the same client code against one server.
//!
//! The document is one root `ColumnDataSource` whose `data` is
//! `{"type":"map","entries":[["x", ndarray float64], ["y", ndarray float64]]}`, with the
//! arrays in binary buffers as numpy sends them (spec §6.3, §6.4). Streams are PATCH-DOC
//! `ColumnsStreamed` events of the same shape (spec §7.3).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use plotwire_protocol::codec::buffer_map;
use plotwire_protocol::event::{decode_doc_message, decode_patch, DocumentEvent};
use plotwire_protocol::frame::RawMessage;
use plotwire_protocol::message::MsgType;
use plotwire_protocol::{ArrayData, Value};
use tokio::time::Instant;

use crate::client::{Conn, Endpoint};
use crate::error::{err, Context, Result};

/// How long one request may wait for its reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Distinguishes the sessions of one run.
static SESSION_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh session id for `scenario`, unique within the run and across runs.
pub fn session_id(scenario: &str) -> String {
    let n = SESSION_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("bench-{scenario}-{}-{n}-{nanos}", std::process::id())
}

/// The content JSON of an ndarray float64 value of `len` items in buffer `buffer_id`.
fn ndarray_json(buffer_id: &str, len: usize) -> String {
    format!(
        r#"{{"type":"ndarray","array":{{"type":"bytes","data":{{"id":"{buffer_id}"}}}},"shape":[{len}],"dtype":"float64","order":"little"}}"#
    )
}

/// The `data` map of the document and of every stream: `x` in buffer "0", `y` in "1".
fn data_map_json(len: usize) -> String {
    format!(
        r#"{{"type":"map","entries":[["x",{}],["y",{}]]}}"#,
        ndarray_json("0", len),
        ndarray_json("1", len)
    )
}

/// Little-endian float64 bytes of `f(0..len)`.
fn f64_buffer(len: usize, f: impl Fn(usize) -> f64) -> Bytes {
    let mut out = Vec::with_capacity(len * 8);
    for i in 0..len {
        out.extend_from_slice(&f(i).to_le_bytes());
    }
    Bytes::from(out)
}

/// The two buffers of a message: `x` and `y`.
fn xy_buffers(x: Bytes, y: Bytes) -> [(String, Bytes); 2] {
    [("0".to_owned(), x), ("1".to_owned(), y)]
}

/// The model id of the session's ColumnDataSource.
fn cds_id(session_id: &str) -> String {
    format!("{session_id}-cds")
}

/// PUSH-DOC content for a document whose only root is a ColumnDataSource of `len` points.
fn push_doc_content(session_id: &str, len: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"doc":{{"version":"3.9.2","title":"plotwire-bench","config":{{"type":"object","name":"DocumentConfig","id":"{session_id}-config"}},"roots":[{{"type":"object","name":"ColumnDataSource","id":"{}","attributes":{{"data":{}}}}}]}}}}"#,
        cds_id(session_id),
        data_map_json(len)
    ))
}

/// PATCH-DOC content streaming `len` points to the session's ColumnDataSource.
fn stream_content(session_id: &str, len: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"events":[{{"kind":"ColumnsStreamed","model":{{"id":"{}"}},"attr":"data","data":{},"rollover":null}}]}}"#,
        cds_id(session_id),
        data_map_json(len)
    ))
}

/// Connects a producer to a fresh session and pushes a document of `len` points.
/// Returns the connection and the PUSH-DOC → OK time.
async fn producer(endpoint: &Endpoint, session_id: &str, len: usize) -> Result<(Conn, Duration)> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut conn = Conn::connect(endpoint, session_id, deadline)
        .await
        .context(|| "producer connect")?;
    let buffers = xy_buffers(
        f64_buffer(len, |i| i as f64),
        f64_buffer(len, |i| (i as f64 * 0.001).sin()),
    );
    let start = Instant::now();
    conn.request_ok(
        MsgType::PushDoc,
        push_doc_content(session_id, len),
        &buffers,
        deadline,
    )
    .await
    .context(|| format!("PUSH-DOC of {len} points"))?;
    Ok((conn, start.elapsed()))
}

/// Sends `count` ack-gated streams of `points` points (each waits for its OK), stopping
/// early at `deadline`. Returns the round trips.
async fn ack_gated_streams(
    conn: &mut Conn,
    session_id: &str,
    count: usize,
    points: usize,
    deadline: Instant,
) -> Result<Vec<Duration>> {
    let content = stream_content(session_id, points);
    let mut rtts = Vec::with_capacity(count);
    for n in 0..count {
        if Instant::now() >= deadline {
            break;
        }
        let base = (n * points) as f64;
        let buffers = xy_buffers(
            f64_buffer(points, |i| base + i as f64),
            f64_buffer(points, |i| ((base + i as f64) * 0.01).cos()),
        );
        let start = Instant::now();
        conn.request_ok(
            MsgType::PatchDoc,
            content.clone(),
            &buffers,
            start + REQUEST_TIMEOUT,
        )
        .await
        .context(|| format!("stream {n}"))?;
        rtts.push(start.elapsed());
    }
    Ok(rtts)
}

/// What scenario 1 measured.
#[derive(Debug)]
pub struct Ingest {
    /// PATCH-DOCs sent and acknowledged.
    pub done: usize,
    /// How many were planned.
    pub planned: usize,
    /// Time for all of them.
    pub elapsed: Duration,
    /// Round trip of each, PATCH-DOC → OK.
    pub rtts: Vec<Duration>,
}

/// Scenario 1: one producer sends `count` ColumnsStreamed of `points` float64 points and
/// waits for each OK, for at most `budget`.
///
/// # Errors
/// Connection failures, ERROR replies, timeouts.
pub async fn ingest(
    endpoint: &Endpoint,
    count: usize,
    points: usize,
    budget: Duration,
) -> Result<Ingest> {
    let sid = session_id("ingest");
    let (mut conn, _) = producer(endpoint, &sid, points).await?;
    let start = Instant::now();
    let rtts = ack_gated_streams(&mut conn, &sid, count, points, start + budget).await?;
    let elapsed = start.elapsed();
    conn.close().await;
    Ok(Ingest {
        done: rtts.len(),
        planned: count,
        elapsed,
        rtts,
    })
}

/// What scenario 2 measured.
#[derive(Debug)]
pub struct Fanout {
    /// Viewers.
    pub viewers: usize,
    /// Streams the producer sent.
    pub sent: usize,
    /// Relays received by all viewers together.
    pub delivered: usize,
    /// `viewers × streams`.
    pub expected: usize,
    /// First send → last relay received by the slowest viewer (or the budget).
    pub wall: Duration,
    /// Producer send → viewer receive, one per delivered relay.
    pub latencies: Vec<Duration>,
    /// OKs the producer got back.
    pub oks: usize,
}

/// The sequence number a fan-out stream carries as the first item of both `x` and `y`.
///
/// When the relay carries binary buffers, the first 8 bytes of its first buffer are read
/// (both columns start with the sequence number, so the buffer order does not matter);
/// this keeps the viewers' CPU cost low, so that the client is not what limits a fast
/// server. A relay without buffers is decoded in full.
fn stream_sequence(message: &RawMessage) -> Result<Option<usize>> {
    if message.kind() != Some(MsgType::PatchDoc) {
        return Ok(None);
    }
    if let Some((_, first)) = message.buffers.first() {
        let bytes: [u8; 8] = first
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .context(|| "a relayed stream with a buffer under 8 bytes")?;
        return sequence_number(f64::from_le_bytes(bytes)).map(Some);
    }
    let buffers = buffer_map(message.buffers.clone());
    let events = decode_patch(&message.content, &buffers).context(|| "decoding a relay")?;
    for event in events {
        let DocumentEvent::ColumnsStreamed { data, .. } = event else {
            continue;
        };
        let x = data
            .iter()
            .find(|(name, _)| name == "x")
            .map(|(_, v)| v)
            .context(|| "a relayed stream without column x")?;
        let first = first_number(x).context(|| "a relayed stream with an empty column x")?;
        return sequence_number(first).map(Some);
    }
    Ok(None)
}

/// A sequence number sent as f64: non-negative and integral.
fn sequence_number(value: f64) -> Result<usize> {
    if !(value >= 0.0 && value.fract() == 0.0 && value < 1e15) {
        return Err(err(format!("a relayed stream has sequence number {value}")));
    }
    // A non-negative integral f64 below 2^53: the conversion is exact.
    Ok(value as usize)
}

/// The first element of a column value (ndarray, typed array or list), as f64.
fn first_number(value: &Value) -> Option<f64> {
    match value {
        Value::Array(array) => match &array.data {
            ArrayData::Binary(bytes) => array.dtype.read_f64(bytes, 0),
            ArrayData::List(items) => items.first().and_then(number),
        },
        Value::List(items) => items.first().and_then(number),
        _ => None,
    }
}

/// A numeric value as f64.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// One viewer: reads relays until it has all `streams` of them or `deadline` passes.
/// Returns, per sequence number, when it arrived.
async fn viewer(mut conn: Conn, streams: usize, deadline: Instant) -> Result<Vec<Option<Instant>>> {
    let mut arrived = vec![None; streams];
    let mut count = 0;
    // Bounded by `deadline` (each recv) and by the number of relays expected.
    while count < streams {
        let message = match conn.rx.recv(deadline).await {
            Ok(m) => m,
            Err(_) if Instant::now() >= deadline => break,
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        let Some(seq) = stream_sequence(&message)? else {
            continue;
        };
        let slot = arrived
            .get_mut(seq)
            .context(|| format!("relay sequence {seq} out of range"))?;
        if slot.is_some() {
            return Err(err(format!("relay {seq} arrived twice")));
        }
        *slot = Some(now);
        count += 1;
    }
    conn.close().await;
    Ok(arrived)
}

/// Scenario 2: a producer and `viewers` raw viewers (PULL-DOC first) on one session. The
/// producer sends `streams` streams of `points` points without waiting for OKs; the clock
/// stops when every viewer has every relay, or at `budget`.
///
/// # Errors
/// Connection failures, ERROR replies, malformed relays.
pub async fn fanout(
    endpoint: &Endpoint,
    viewers: usize,
    streams: usize,
    points: usize,
    budget: Duration,
) -> Result<Fanout> {
    let sid = session_id("fanout");
    let (producer_conn, _) = producer(endpoint, &sid, points).await?;

    let mut viewer_conns = Vec::with_capacity(viewers);
    for v in 0..viewers {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut conn = Conn::connect(endpoint, &sid, deadline)
            .await
            .context(|| format!("viewer {v} connect"))?;
        let reply = conn
            .request(
                MsgType::PullDocReq,
                Bytes::from_static(b"{}"),
                &[],
                deadline,
            )
            .await
            .context(|| format!("viewer {v} PULL-DOC"))?;
        if reply.kind() != Some(MsgType::PullDocReply) {
            return Err(err(format!(
                "viewer {v}: PULL-DOC-REQ answered by {}",
                reply.header.msgtype
            )));
        }
        viewer_conns.push(conn);
    }

    let start = Instant::now();
    let deadline = start + budget;
    let mut tasks = AbortOnDrop(
        viewer_conns
            .into_iter()
            .map(|conn| tokio::spawn(viewer(conn, streams, deadline)))
            .collect(),
    );

    let Conn { mut tx, mut rx } = producer_conn;
    // The producer reads its OKs concurrently, so that its receive side never backs up.
    let mut ok_reader = AbortOnDrop(vec![tokio::spawn(async move {
        let mut oks = 0usize;
        while oks < streams {
            match rx.recv(deadline).await {
                Ok(m) if m.kind() == Some(MsgType::Ok) => oks += 1,
                Ok(m) if m.kind() == Some(MsgType::Error) => {
                    return Err(err(format!(
                        "a stream got ERROR: {}",
                        String::from_utf8_lossy(&m.content)
                    )))
                }
                Ok(_) => {}
                Err(_) if Instant::now() >= deadline => break,
                Err(e) => return Err(e),
            }
        }
        Ok(oks)
    })]);

    let content = stream_content(&sid, points);
    let mut sent_at = Vec::with_capacity(streams);
    for seq in 0..streams {
        if Instant::now() >= deadline {
            break;
        }
        // Both columns start with the sequence number (see `stream_sequence`).
        let base = seq as f64;
        let buffers = xy_buffers(
            f64_buffer(points, |i| base + i as f64 * 1e-3),
            f64_buffer(
                points,
                |i| if i == 0 { base } else { (i as f64 * 0.1).sin() },
            ),
        );
        sent_at.push(Instant::now());
        match tx
            .send(MsgType::PatchDoc, content.clone(), &buffers, deadline)
            .await
        {
            Ok(_) => {}
            // The server stopped reading and the time bound passed: report what arrived.
            Err(_) if Instant::now() >= deadline => {
                sent_at.pop();
                break;
            }
            Err(e) => return Err(err(format!("producer stream {seq}: {e}"))),
        }
    }

    let mut delivered = 0;
    let mut latencies = Vec::with_capacity(viewers * streams);
    let mut last = start;
    for (v, task) in tasks.0.iter_mut().enumerate() {
        let arrived = task
            .await
            .context(|| format!("viewer {v} task"))?
            .context(|| format!("viewer {v}"))?;
        for (seq, at) in arrived.iter().enumerate() {
            let (Some(at), Some(sent)) = (at, sent_at.get(seq)) else {
                continue;
            };
            delivered += 1;
            latencies.push(at.saturating_duration_since(*sent));
            last = last.max(*at);
        }
    }
    let complete = delivered == viewers * streams;
    let wall = if complete {
        last.saturating_duration_since(start)
    } else {
        budget
    };
    let mut oks = 0;
    for task in &mut ok_reader.0 {
        oks += task
            .await
            .context(|| "producer OK reader task")?
            .context(|| "producer")?;
    }
    tx.close().await;
    Ok(Fanout {
        viewers,
        sent: sent_at.len(),
        delivered,
        expected: viewers * streams,
        wall,
        latencies,
        oks,
    })
}

/// Spawned tasks that are aborted when an early return drops them (aborting a finished
/// task does nothing).
struct AbortOnDrop<T>(Vec<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// What scenario 3 measured. Keeps the producer connection open for scenario 4.
pub struct BigColumn {
    /// The producer, still connected to the 1M-point session.
    pub conn: Conn,
    /// Points pushed initially.
    pub initial_points: usize,
    /// Points per stream.
    pub stream_points: usize,
    /// PUSH-DOC → OK of the big document.
    pub push: Duration,
    /// Streams planned.
    pub planned: usize,
    /// Time for the streams that were sent.
    pub elapsed: Duration,
    /// Round trip of each stream.
    pub rtts: Vec<Duration>,
}

impl BigColumn {
    /// The points per column the server should hold now.
    pub fn expected_points(&self) -> usize {
        self.initial_points + self.rtts.len() * self.stream_points
    }
}

/// Scenario 3: push a document of `initial_points` points, then `streams` ack-gated
/// streams of `stream_points` points each, for at most `budget`.
///
/// # Errors
/// Connection failures, ERROR replies (e.g. a message over Bokeh's 20 MiB limit), timeouts.
pub async fn big_column(
    endpoint: &Endpoint,
    initial_points: usize,
    streams: usize,
    stream_points: usize,
    budget: Duration,
) -> Result<BigColumn> {
    let sid = session_id("big");
    let (mut conn, push) = producer(endpoint, &sid, initial_points).await?;
    let start = Instant::now();
    let rtts = ack_gated_streams(&mut conn, &sid, streams, stream_points, start + budget).await?;
    Ok(BigColumn {
        conn,
        initial_points,
        stream_points,
        push,
        planned: streams,
        elapsed: start.elapsed(),
        rtts,
    })
}

/// Scenario 4: `count` PULL-DOC-REQ → PULL-DOC-REPLY round trips of the big document,
/// each reply checked to hold `expected_points` points in column `x`.
///
/// # Errors
/// Connection failures, ERROR replies, a reply with the wrong column length.
pub async fn pull_latency(
    conn: &mut Conn,
    count: usize,
    expected_points: usize,
    budget: Duration,
) -> Result<Vec<Duration>> {
    let deadline = Instant::now() + budget;
    let mut rtts = Vec::with_capacity(count);
    for n in 0..count {
        if Instant::now() >= deadline {
            break;
        }
        let start = Instant::now();
        let reply = conn
            .request(
                MsgType::PullDocReq,
                Bytes::from_static(b"{}"),
                &[],
                start + REQUEST_TIMEOUT,
            )
            .await
            .context(|| format!("pull {n}"))?;
        rtts.push(start.elapsed());
        let points = pulled_points(&reply).context(|| format!("pull {n}"))?;
        if points != expected_points {
            return Err(err(format!(
                "pull {n}: column x has {points} points, expected {expected_points}"
            )));
        }
    }
    Ok(rtts)
}

/// The length of column `x` of the ColumnDataSource root in a PULL-DOC-REPLY.
fn pulled_points(reply: &RawMessage) -> Result<usize> {
    if reply.kind() != Some(MsgType::PullDocReply) {
        return Err(err(format!(
            "PULL-DOC-REQ answered by {}",
            reply.header.msgtype
        )));
    }
    let buffers = buffer_map(reply.buffers.clone());
    let doc = decode_doc_message(&reply.content, &buffers).context(|| "decoding the document")?;
    for root in &doc.roots {
        let Value::Model(model) = root else { continue };
        if model.name != "ColumnDataSource" {
            continue;
        }
        let data = model
            .attributes
            .iter()
            .find(|(k, _)| k == "data")
            .map(|(_, v)| v)
            .context(|| "the ColumnDataSource has no data")?;
        let entries: Vec<(&Value, &Value)> = match data {
            Value::Map(entries) => entries.iter().map(|(k, v)| (k, v)).collect(),
            _ => return Err(err("data is not a map")),
        };
        for (key, value) in entries {
            if key != &Value::Str("x".to_owned()) {
                continue;
            }
            return match value {
                Value::Array(array) => Ok(array.len()),
                Value::List(items) => Ok(items.len()),
                _ => Err(err("column x is not an array")),
            };
        }
        return Err(err("the ColumnDataSource has no column x"));
    }
    Err(err("the document has no ColumnDataSource root"))
}

/// Asks a server for its SERVER-INFO-REPLY and returns its `version_info` as JSON text.
///
/// # Errors
/// Connection failures, a reply of another type, timeouts.
pub async fn server_info(endpoint: &Endpoint) -> Result<String> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut conn = Conn::connect(endpoint, &session_id("info"), deadline).await?;
    let reply = conn
        .request(
            MsgType::ServerInfoReq,
            Bytes::from_static(b"{}"),
            &[],
            deadline,
        )
        .await?;
    conn.close().await;
    if reply.kind() != Some(MsgType::ServerInfoReply) {
        return Err(err(format!(
            "SERVER-INFO-REQ answered by {}",
            reply.header.msgtype
        )));
    }
    let content: serde_json::Value =
        serde_json::from_slice(&reply.content).context(|| "SERVER-INFO-REPLY content")?;
    Ok(content
        .get("version_info")
        .map_or_else(|| content.to_string(), ToString::to_string))
}
