//! Issue 7's view workloads on published documents, each with its `bokeh serve`
//! counterpart where one exists:
//! - 8 views fan-out: K browser-like views (Origin header, `/d/<name>/ws`, pull) of one
//!   published document while a producer streams over REST at a fixed rate; send → view
//!   latency. Bokeh's counterpart is workload 2 (a `bokeh.client`-style producer pushing
//!   PATCH-DOCs, K raw viewers of its session).
//! - 9 views memory: the server's RSS with 1 view and with K views of a 1e6-point
//!   document (Bokeh: 1 and K viewers of a pushed session).
//! - 10 view open: page GET, websocket connect with the page's token, PULL-DOC-REQ →
//!   PULL-DOC-REPLY, for a 1e5-point document (Bokeh: the page of a pushed session).

use std::sync::Arc;
use std::time::Duration;

use plotwire_protocol::message::MsgType;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};

use crate::client::{session_token, Conn, Endpoint, Receiver};
use crate::data::{check_pulled, now_ns, read_relay, Batch, Encoding, RelayCache, Source, Tracker};
use crate::error::{err, Context, Result};
use crate::fanout::{Fanout, FanoutSpec};
use crate::http::HttpConn;
use crate::rest::{doc_name, fill, publish, raw_body, unpublish, Columns, Format, SOURCE};
use crate::servers::{own_cpu_time, ServerProcess, APP};
use crate::session_id;

/// How long connecting and pulling may take for one view.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

/// Views connecting at the same time.
const CONNECT_CONCURRENCY: usize = 16;

/// The endpoint of published document `name`'s websocket (`/d/<name>/ws`).
fn doc_endpoint(server: &ServerProcess, name: &str) -> Endpoint {
    Endpoint {
        port: server.endpoint.port,
        app: format!("d/{name}"),
        tls: server.endpoint.tls.clone(),
    }
}

/// The `Origin` a page of this server would send.
fn origin(server: &ServerProcess) -> String {
    format!("http://127.0.0.1:{}", server.endpoint.port)
}

/// Opens a view of `name` as a browser would after loading its page: a fresh view id,
/// the Origin header, then a pull (checked: `points` points from index 0).
async fn open_view(
    endpoint: Endpoint,
    origin: String,
    view: String,
    points: usize,
    batch_points: usize,
) -> Result<Conn> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let token = session_token(&view)?;
    let mut conn = Conn::connect_browser(&endpoint, &token, &origin, deadline).await?;
    let reply = conn.pull(deadline).await.context(|| "PULL-DOC")?;
    check_pulled(&reply, 0, points, batch_points).context(|| "the pulled document")?;
    Ok(conn)
}

/// Opens `count` views concurrently (at most [`CONNECT_CONCURRENCY`] at a time).
pub async fn open_views(
    server: &ServerProcess,
    name: &str,
    count: usize,
    points: usize,
    budget: Duration,
) -> Result<Vec<Conn>> {
    let endpoint = doc_endpoint(server, name);
    let origin = origin(server);
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut joins = JoinSet::new();
    for v in 0..count {
        let (endpoint, origin, permits) = (endpoint.clone(), origin.clone(), Arc::clone(&permits));
        let view = session_id("view");
        joins.spawn(async move {
            let _permit = permits.acquire_owned().await.context(|| "semaphore")?;
            open_view(endpoint, origin, view, points, points.max(1))
                .await
                .context(|| format!("view {v}"))
        });
    }
    let deadline = Instant::now() + budget;
    let mut views = Vec::with_capacity(count);
    for _ in 0..count {
        let joined = tokio::time::timeout_at(deadline, joins.join_next())
            .await
            .map_err(|_| {
                err(format!(
                    "opening {count} views took over {} s ({} open)",
                    budget.as_secs(),
                    views.len()
                ))
            })?
            .context(|| "a view task vanished")?
            .context(|| "a view task panicked")??;
        views.push(joined);
    }
    Ok(views)
}

/// A dashboard spec of one line plot over source `src` (x, y float64), `lod` on or off.
pub fn lod_spec(lod: bool) -> String {
    format!(
        r#"{{"title":"plotwire-bench","sources":{{"{SOURCE}":{{"columns":{{"x":"float64","y":"float64"}},"lod":{lod}}}}},"plots":{{"p":{{"kind":"line","source":"{SOURCE}","x":"x","y":"y"}}}}}}"#
    )
}

/// Opens `count` views of `name` and pulls each (the pull's size depends on the level of
/// detail, so it is not checked beyond arriving).
pub async fn open_pulled(
    srv: &ServerProcess,
    name: &str,
    count: usize,
    budget: Duration,
) -> Result<Vec<Conn>> {
    let endpoint = Endpoint {
        port: srv.endpoint.port,
        app: format!("d/{name}"),
        tls: None,
    };
    let origin = format!("http://127.0.0.1:{}", srv.endpoint.port);
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut joins = JoinSet::new();
    for _ in 0..count {
        let (endpoint, origin, permits) = (endpoint.clone(), origin.clone(), Arc::clone(&permits));
        let view = session_id("lod-view");
        joins.spawn(async move {
            let _permit = permits.acquire_owned().await.context(|| "semaphore")?;
            let deadline = Instant::now() + budget;
            let token = session_token(&view)?;
            let mut conn = Conn::connect_browser(&endpoint, &token, &origin, deadline).await?;
            conn.pull(deadline).await.context(|| "PULL-DOC")?;
            Ok::<Conn, crate::error::BoxError>(conn)
        });
    }
    let deadline = Instant::now() + budget;
    let mut conns = Vec::with_capacity(count);
    for _ in 0..count {
        let joined = tokio::time::timeout_at(deadline, joins.join_next())
            .await
            .map_err(|_| err(format!("opening {count} views timed out")))?
            .context(|| "a view task vanished")?
            .context(|| "a view task panicked")??;
        conns.push(joined);
    }
    Ok(conns)
}

/// One view's reading.
#[derive(Debug, Default)]
struct ViewResult {
    tracker: Tracker,
    latencies: Vec<Duration>,
    closed: Option<String>,
}

/// Reads relays until the view has the number of batches `expected` ends up holding,
/// a close, or `deadline`.
async fn read_view(
    rx: &mut Receiver,
    mut expected: watch::Receiver<u64>,
    deadline: Instant,
    max_messages: u64,
) -> ViewResult {
    let mut result = ViewResult {
        tracker: Tracker::starting_at(0),
        ..ViewResult::default()
    };
    let mut cache = RelayCache::default();
    for _ in 0..max_messages {
        if result.tracker.batches >= *expected.borrow() {
            break;
        }
        let message = tokio::select! {
            m = rx.recv(deadline) => m,
            changed = expected.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        let message = match message {
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
        if let Err(e) = read_relay(&message, &mut result.tracker, &mut cache, |sent| {
            latencies.push(Duration::from_nanos(received.saturating_sub(sent)));
        }) {
            result.tracker.corrupted += 1;
            result
                .tracker
                .first_problem
                .get_or_insert_with(|| e.to_string());
        }
    }
    result
}

/// Workload 8 on plotwire: publishes an empty document, opens `spec.viewers` views,
/// then streams `spec.points`-point raw batches at `spec.rate_hz` over one keep-alive
/// REST connection (`x` = send time), and collects every view's send → receive latency.
/// The result is shaped as workload 2's, so the same rows describe both.
///
/// # Errors
/// Set-up failures, or a producer request that fails.
pub async fn fanout(server: &ServerProcess, spec: FanoutSpec) -> Result<Fanout> {
    let port = server.endpoint.port;
    let mut http = HttpConn::connect(port, Duration::from_secs(10))
        .await?
        .with_key(server.key.as_deref());
    let name = doc_name("views");
    publish(&mut http, &name, Instant::now() + Duration::from_secs(30)).await?;

    let rss_before = server.rss_kib().ok();
    let setup_start = Instant::now();
    let views = open_views(server, &name, spec.viewers, 0, spec.setup_budget).await?;
    let setup = setup_start.elapsed();
    let setup_rss_kib = (rss_before, server.rss_kib().ok());

    let period = Duration::from_secs_f64(1.0 / f64::from(spec.rate_hz.max(1)));
    let planned = (spec.duration.as_secs_f64() * f64::from(spec.rate_hz)).ceil() as u64;
    let usage = server.usage();
    let client_before = own_cpu_time();
    let start = Instant::now();
    let stream_end = start + spec.duration;
    let view_deadline = stream_end + spec.drain;
    let (expected_tx, expected) = watch::channel(u64::MAX);
    let mut tasks: JoinSet<ViewResult> = JoinSet::new();
    for mut conn in views {
        let expected = expected.clone();
        tasks.spawn(async move {
            let r = read_view(&mut conn.rx, expected, view_deadline, planned + 1000).await;
            conn.close().await;
            r
        });
    }

    let path = format!(
        "/api/v1/documents/{name}/sources/{SOURCE}/stream?rollover={}",
        spec.rollover
    );
    let headers = format!("Content-Type: {}\r\n", Format::Raw.content_type());
    let mut sent = 0u64;
    let mut producer_note = None;
    for n in 0..planned {
        sleep_until(start + period.mul_f64(n as f64)).await;
        if Instant::now() >= stream_end {
            break;
        }
        let body = raw_body(&Columns {
            x: now_ns() as f64,
            first: n * spec.points as u64,
            points: spec.points,
        });
        let answer = http
            .request("POST", &path, &headers, &body, stream_end + spec.drain / 2)
            .await
            .and_then(|a| a.ok("a stream batch"));
        match answer {
            Ok(_) => sent += 1,
            Err(e) => {
                producer_note = Some(format!("the producer stopped after {sent} batches: {e}"));
                break;
            }
        }
    }
    let behind = Instant::now().saturating_duration_since(stream_end);
    if producer_note.is_none() && behind > Duration::from_millis(200) {
        producer_note = Some(format!(
            "the producer finished {} ms late",
            behind.as_millis()
        ));
    }
    let _ = expected_tx.send(sent);

    let mut results = Vec::with_capacity(spec.viewers);
    for _ in 0..spec.viewers {
        match tasks.join_next().await {
            Some(Ok(r)) => results.push(r),
            Some(Err(e)) => return Err(err(format!("a view task failed: {e}"))),
            None => break,
        }
    }
    let usage = usage.finish();
    let client_cpu = match (client_before, own_cpu_time()) {
        (Some(a), Some(b)) => Some(b.since(a).total()),
        _ => None,
    };
    unpublish(&mut http, &name).await;

    let mut f = Fanout {
        viewers: spec.viewers,
        sent,
        delivered: 0,
        latencies: Vec::new(),
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
        oks: sent,
        producer_note,
        stalled: None,
    };
    for r in results {
        let t = &r.tracker;
        f.delivered += t.batches;
        f.lost_points += t.lost_points;
        f.reordered += t.reordered;
        f.corrupted += t.corrupted;
        if f.first_problem.is_none() {
            f.first_problem.clone_from(&t.first_problem);
        }
        if t.batches >= sent {
            f.finished_viewers += 1;
        } else {
            let missing = (sent - t.batches) * spec.points as u64;
            f.lost_points += missing;
            f.first_problem
                .get_or_insert_with(|| format!("a view got {} of {sent} batches", t.batches));
        }
        if let Some(reason) = r.closed {
            f.closed.0 += 1;
            f.closed.1.get_or_insert(reason);
        }
        f.latencies.extend(r.latencies);
    }
    Ok(f)
}

/// What workload 9 measured.
#[derive(Debug, Clone)]
pub struct ViewsMemory {
    /// Views at the second measurement.
    pub views: usize,
    /// RSS (KiB) with the document and no view.
    pub rss_none_kib: Option<u64>,
    /// RSS (KiB) with one view.
    pub rss_one_kib: Option<u64>,
    /// RSS (KiB) with every view.
    pub rss_all_kib: Option<u64>,
}

impl ViewsMemory {
    /// RSS growth from 1 view to all, in MiB.
    pub fn growth_mib(&self) -> Option<f64> {
        Some((self.rss_all_kib? as f64 - self.rss_one_kib? as f64) / 1024.0)
    }
}

/// How long the server is given to go idle before an RSS reading.
const RSS_SETTLE: Duration = Duration::from_secs(2);

/// Bokeh: a producer that pushed a `points`-point document to session `sid` (it stays
/// connected, so the session lives).
async fn push_points(
    server: &ServerProcess,
    sid: &str,
    points: usize,
    deadline: Instant,
) -> Result<Conn> {
    let source = Source::new(sid, Encoding::Binary, None);
    let mut producer = Conn::connect(&server.endpoint, sid, deadline).await?;
    let (content, buffers) = source.push_doc(&Batch {
        first_index: 0,
        points,
        sent_ns: 0,
    });
    producer
        .request_ok(MsgType::PushDoc, content, &buffers, deadline)
        .await
        .context(|| "PUSH-DOC")?;
    Ok(producer)
}

/// Workload 9: the server's RSS with 1 view and with `views` views of a document of
/// `points` points (each view pulls it, checked). On Bokeh the document is pushed to a
/// session and the viewers are raw clients of that session.
///
/// # Errors
/// Set-up failures, a pull that fails or is wrong.
pub async fn memory(server: &ServerProcess, points: usize, views: usize) -> Result<ViewsMemory> {
    let budget = Duration::from_secs(600);
    let mut http = HttpConn::connect(server.endpoint.port, Duration::from_secs(10)).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    // plotwire: a published document; Bokeh: a pushed session (the producer stays).
    let (name, producer) = if server.name == "plotwire" {
        let name = doc_name("memory");
        publish(&mut http, &name, deadline).await?;
        fill(&mut http, &name, points, deadline).await?;
        (Some(name), None)
    } else {
        let sid = session_id("memory");
        let producer = push_points(server, &sid, points, deadline).await?;
        (None, Some((producer, sid)))
    };
    let open = |count: usize| {
        let name = name.clone();
        let sid = producer.as_ref().map(|(_, sid)| sid.clone());
        async move {
            match (name, sid) {
                (Some(name), _) => open_views(server, &name, count, points, budget).await,
                (None, Some(sid)) => {
                    let mut conns = Vec::with_capacity(count);
                    for _ in 0..count {
                        let deadline = Instant::now() + CONNECT_TIMEOUT;
                        let mut c = Conn::connect(&server.endpoint, &sid, deadline).await?;
                        let reply = c.pull(deadline).await.context(|| "PULL-DOC")?;
                        check_pulled(&reply, 0, points, points)
                            .context(|| "the pulled document")?;
                        conns.push(c);
                    }
                    Ok(conns)
                }
                (None, None) => Err(err("no document")),
            }
        }
    };
    let settle = || async {
        sleep(Duration::from_millis(500)).await;
        server.settle(Duration::ZERO, RSS_SETTLE).await;
    };
    settle().await;
    let rss_none_kib = server.rss_kib().ok();
    let mut all = open(1).await?;
    settle().await;
    let rss_one_kib = server.rss_kib().ok();
    all.extend(open(views.saturating_sub(1)).await?);
    settle().await;
    let rss_all_kib = server.rss_kib().ok();
    for c in all {
        c.close().await;
    }
    if let Some((producer, _)) = producer {
        producer.close().await;
    }
    if let Some(name) = &name {
        unpublish(&mut http, name).await;
    }
    Ok(ViewsMemory {
        views,
        rss_none_kib,
        rss_one_kib,
        rss_all_kib,
    })
}

/// What workload 10 measured: each open's total and its parts.
#[derive(Debug, Clone, Default)]
pub struct ViewOpen {
    /// Page GET start → PULL-DOC-REPLY complete.
    pub total: Vec<Duration>,
    /// The page GET (new connection included).
    pub page: Vec<Duration>,
    /// Websocket connect → ACK.
    pub connect: Vec<Duration>,
    /// PULL-DOC-REQ → PULL-DOC-REPLY.
    pub pull: Vec<Duration>,
    /// What is wrong with a pulled document, if anything.
    pub check: Option<String>,
}

/// The `"token":"…"` value in a page.
fn page_token(page: &[u8]) -> Result<String> {
    let text = String::from_utf8_lossy(page);
    // Bokeh writes `"token":"..."`, plotwire's script JSON may put a space after ':'.
    let at = text
        .find("\"token\":")
        .context(|| "the page carries no token")?;
    let rest = text
        .get(at + 8..)
        .context(|| "the page's token")?
        .trim_start()
        .strip_prefix('"')
        .context(|| "the page's token is not a string")?;
    let end = rest
        .find('"')
        .context(|| "the page's token is not closed")?;
    Ok(rest.get(..end).unwrap_or_default().to_owned())
}

/// Workload 10: `opens` times, loads the page of a `points`-point document (a new HTTP
/// connection each time, as a fresh tab), connects its websocket with the page's token
/// and Origin, and pulls. plotwire: a published document's `/d/<name>/`; Bokeh: the
/// page of a pushed session (`/target?bokeh-session-id=<id>`). Every pull is checked.
///
/// # Errors
/// Set-up failures, a page without a token, a failed connect or pull.
pub async fn open(server: &ServerProcess, points: usize, opens: usize) -> Result<ViewOpen> {
    let port = server.endpoint.port;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut http = HttpConn::connect(port, Duration::from_secs(10)).await?;
    let origin = origin(server);
    let (page_path, endpoint, name, producer) = if server.name == "plotwire" {
        let name = doc_name("open");
        publish(&mut http, &name, deadline).await?;
        fill(&mut http, &name, points, deadline).await?;
        let endpoint = doc_endpoint(server, &name);
        (format!("/d/{name}/"), endpoint, Some(name), None)
    } else {
        let sid = session_id("open");
        let producer = push_points(server, &sid, points, deadline).await?;
        (
            format!("/{APP}?bokeh-session-id={sid}"),
            server.endpoint.clone(),
            None,
            Some(producer),
        )
    };
    let mut r = ViewOpen::default();
    let headers = "Accept: text/html\r\n";
    for i in 0..opens {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let t0 = Instant::now();
        let mut page_conn = HttpConn::connect(port, Duration::from_secs(10)).await?;
        let page = page_conn
            .get(&page_path, headers, deadline)
            .await?
            .ok("the page")?;
        let t1 = Instant::now();
        let token = page_token(&page.body).context(|| format!("open {i}"))?;
        let mut conn = Conn::connect_browser(&endpoint, &token, &origin, deadline)
            .await
            .context(|| format!("open {i}: connect"))?;
        let t2 = Instant::now();
        let reply = conn
            .pull(deadline)
            .await
            .context(|| format!("open {i}: pull"))?;
        let t3 = Instant::now();
        r.total.push(t3 - t0);
        r.page.push(t1 - t0);
        r.connect.push(t2 - t1);
        r.pull.push(t3 - t2);
        if r.check.is_none() {
            r.check = check_pulled(&reply, 0, points, points)
                .err()
                .map(|e| format!("open {i}: the pulled document: {e}"));
        }
        drop(reply);
        conn.close().await;
        drop(page_conn);
        // Let the closed view go before the next open.
        sleep(Duration::from_millis(20)).await;
    }
    if let Some(p) = producer {
        p.close().await;
    }
    if let Some(name) = &name {
        unpublish(&mut http, name).await;
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_page_token() {
        let page = br#"<script>const render_items = [{"token":"eyJ.abc-_","roots":{}}]</script>"#;
        assert_eq!(page_token(page).unwrap(), "eyJ.abc-_");
        let spaced = br#"{"token": "t1", "x": 1}"#;
        assert_eq!(page_token(spaced).unwrap(), "t1");
        assert!(page_token(b"<html></html>").is_err());
    }
}
