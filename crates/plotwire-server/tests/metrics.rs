#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]
//! `GET /metrics` after a known workload over real sockets on 127.0.0.1, with a real
//! SQLite store: a published document, N rows streamed in M REST requests, a browser view
//! that opens and closes, a bokeh.client-style session that streams K rows with a
//! PATCH-DOC. Every counter moves by exactly what the workload did, and the text is
//! well-formed OpenMetrics.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use plotwire_server::Config;
use serde_json::json;
use support::*;

/// The samples of a scrape, by their name and labels as written (`name{kind="rest"}`).
struct Scrape {
    samples: HashMap<String, f64>,
    content_type: String,
}

impl Scrape {
    fn get(&self, key: &str) -> f64 {
        match self.samples.get(key) {
            Some(v) => *v,
            None => panic!("no sample {key}; the scrape has {:?}", self.samples.keys()),
        }
    }
}

/// Parses OpenMetrics (`open`) or Prometheus 0.0.4 text strictly: every line a HELP,
/// TYPE or (OpenMetrics) UNIT of a family, a sample of a declared family with a number,
/// or (OpenMetrics) the final `# EOF`. A 0.0.4 counter's samples are named as its family.
fn parse(text: &str, open: bool) -> HashMap<String, f64> {
    let mut families: HashSet<&str> = HashSet::new();
    let mut counters: HashSet<&str> = HashSet::new();
    let mut samples = HashMap::new();
    let mut lines: Vec<&str> = text.lines().collect();
    if open {
        assert_eq!(lines.pop(), Some("# EOF"), "the text ends with # EOF");
    }
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in &lines {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (what, name) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            let allowed: &[&str] = if open {
                &["HELP", "TYPE", "UNIT"]
            } else {
                &["HELP", "TYPE"]
            };
            assert!(allowed.contains(&what), "line {line:?}");
            assert!(name_ok(name), "family name in {line:?}");
            let rest = parts.next().unwrap_or("");
            assert!(!rest.is_empty(), "{what} with nothing in {line:?}");
            if what == "TYPE" {
                assert!(
                    matches!(rest, "counter" | "gauge" | "histogram"),
                    "type in {line:?}"
                );
                families.insert(name);
                if rest == "counter" {
                    counters.insert(name);
                }
            }
            if what == "HELP" {
                assert!(name.starts_with("plotwire_"), "{line:?}");
            }
            continue;
        }
        let (key, value) = line.rsplit_once(' ').expect("a sample is `key value`");
        let name = key.split('{').next().unwrap();
        assert!(name_ok(name), "sample name in {line:?}");
        if let Some(labels) = key.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line:?}");
            }
        }
        assert!(
            families.iter().any(|f| name.starts_with(f)),
            "sample {name} of no declared family"
        );
        if !open && name.ends_with("_total") {
            assert!(
                counters.contains(name),
                "0.0.4 counter sample {name} of its family"
            );
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value in {line:?}")),
        };
        assert!(
            samples.insert(key.to_owned(), value).is_none(),
            "sample {key} twice"
        );
    }
    samples
}

/// Scrapes in OpenMetrics, as Prometheus asks.
async fn scrape(port: u16) -> Scrape {
    scrape_as(port, true).await
}

/// Scrapes in OpenMetrics (`open`) or, without an `Accept`, in Prometheus 0.0.4 text.
async fn scrape_as(port: u16, open: bool) -> Scrape {
    let accept = if open {
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n"
    } else {
        ""
    };
    let (status, headers, body) = http_request(port, "GET", "/metrics", accept).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).expect("UTF-8");
    Scrape {
        samples: parse(&text, open),
        content_type: header(&headers, "content-type").unwrap_or("").to_owned(),
    }
}

/// Scrapes until `ready` holds (at most 5 s): a close is counted once the server has seen it.
async fn scrape_until(port: u16, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    within(what, async {
        loop {
            let s = scrape(port).await;
            if ready(&s) {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plotwire-metrics-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn counters_move_by_exactly_the_workload() {
    let dir = temp_dir("workload");
    let port = start(Config {
        data_dir: Some(dir.clone()),
        ..config()
    })
    .await;
    let before = scrape(port).await;
    assert!(
        before
            .content_type
            .starts_with("application/openmetrics-text"),
        "{}",
        before.content_type
    );
    for kind in ["browser", "bokeh_client", "rest", "sse"] {
        assert_eq!(
            before.get(&format!("plotwire_connections{{kind=\"{kind}\"}}")),
            0.0
        );
    }
    assert_eq!(before.get("plotwire_points_ingested_total"), 0.0);

    let (status, body) = http_json(port, "PUT", "/api/v1/documents/m/demo", &cds_doc("s1")).await;
    assert_eq!(status, 201, "{body}");
    let mut view = connect_view(port, "m/demo", "view-one").await;
    let open = scrape(port).await;
    assert_eq!(open.get("plotwire_connections{kind=\"browser\"}"), 1.0);
    assert_eq!(open.get("plotwire_views"), 1.0);
    assert_eq!(open.get("plotwire_sessions{kind=\"published\"}"), 1.0);

    // N rows in M requests, each fanned out to the view.
    let batches: [&[f64]; 4] = [
        &[1.0, 2.0, 3.0],
        &[4.0, 5.0, 6.0],
        &[7.0, 8.0, 9.0],
        &[10.0],
    ];
    let n: usize = batches.iter().map(|b| b.len()).sum();
    for b in batches {
        let (status, body) = http_json(
            port,
            "POST",
            "/api/v1/documents/m/demo/sources/src/stream",
            &json!({"x": b, "y": b}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let m = view.expect("PATCH-DOC").await;
        assert_eq!(m.kinds(), vec!["ColumnsStreamed"]);
    }
    let doc = view.pull().await;
    assert!(doc["roots"].is_array());
    let streamed = scrape(port).await;
    let delta = |key: &str| streamed.get(key) - before.get(key);
    assert_eq!(delta("plotwire_points_ingested_total"), n as f64);
    // The publish and the streams: one REST request each, answered whole.
    let requests = (1 + batches.len()) as f64;
    assert_eq!(
        delta("plotwire_connections_opened_total{kind=\"rest\"}"),
        requests
    );
    assert_eq!(
        delta("plotwire_messages_received_total{kind=\"rest\"}"),
        requests
    );
    assert_eq!(
        delta("plotwire_messages_sent_total{kind=\"rest\"}"),
        requests
    );
    assert!(delta("plotwire_received_bytes_total{kind=\"rest\"}") > 0.0);
    assert!(delta("plotwire_sent_bytes_total{kind=\"rest\"}") > 0.0);
    assert_eq!(streamed.get("plotwire_connections{kind=\"rest\"}"), 0.0);
    // The view: the ACK, M PATCH-DOCs and the pull's reply out; its pull in.
    assert_eq!(
        delta("plotwire_messages_sent_total{kind=\"browser\"}"),
        (2 + batches.len()) as f64
    );
    assert_eq!(
        delta("plotwire_messages_received_total{kind=\"browser\"}"),
        1.0
    );
    assert!(delta("plotwire_sent_bytes_total{kind=\"browser\"}") > 0.0);
    assert!(delta("plotwire_received_bytes_total{kind=\"browser\"}") > 0.0);
    // Each stream applied, fanned out to the one view, and committed.
    assert_eq!(delta("plotwire_apply_seconds_count"), batches.len() as f64);
    assert_eq!(
        delta("plotwire_fan_out_seconds_count"),
        batches.len() as f64
    );
    assert!(delta("plotwire_store_commit_seconds_count") >= batches.len() as f64);
    assert_eq!(
        streamed.get("plotwire_apply_seconds_count"),
        streamed.get("plotwire_apply_seconds_bucket{le=\"+Inf\"}")
    );
    assert!(streamed.get("plotwire_apply_seconds_sum") > 0.0);
    assert!(streamed.get("plotwire_store_size_bytes") > 0.0);
    assert_eq!(delta("plotwire_slow_viewer_closes_total"), 0.0);

    view.close().await;
    let closed = scrape_until(port, "the view's close to be counted", |s| {
        s.get("plotwire_connections{kind=\"browser\"}") == 0.0
    })
    .await;
    assert_eq!(
        closed.get("plotwire_connections_opened_total{kind=\"browser\"}"),
        1.0
    );
    // With nothing going on, the Prometheus text holds the same samples
    let text = scrape_as(port, false).await;
    assert!(
        text.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        text.content_type
    );
    // (but the store's size, which a WAL checkpoint may change meanwhile).
    let without_size = |s: &Scrape| {
        let mut samples = s.samples.clone();
        samples.remove("plotwire_store_size_bytes");
        samples
    };
    assert_eq!(without_size(&text), without_size(&closed));

    // A bokeh.client session: PUSH-DOC, then K rows in one PATCH-DOC.
    let mut producer = connect(port, "push-session").await;
    producer.push(&json!({"doc": cds_doc("c1")})).await;
    producer
        .patch_ok(json!([{"kind": "ColumnsStreamed", "model": {"id": "c1"}, "attr": "data",
            "data": {"type": "map", "entries": [["x", [2.0, 3.0]], ["y", [4.0, 5.0]]]}, "rollover": null}]))
        .await;
    // The owner times a patch after it has sent the OK, so a scrape can come first.
    let applied = streamed.get("plotwire_apply_seconds_count") + 2.0;
    let pushing = scrape_until(port, "the PUSH-DOC and the patch to be timed", |s| {
        s.get("plotwire_apply_seconds_count") >= applied
    })
    .await;
    assert_eq!(
        pushing.get("plotwire_connections{kind=\"bokeh_client\"}"),
        1.0
    );
    assert_eq!(pushing.get("plotwire_sessions{kind=\"bokeh\"}"), 1.0);
    assert_eq!(
        pushing.get("plotwire_points_ingested_total")
            - streamed.get("plotwire_points_ingested_total"),
        2.0
    );
    assert_eq!(
        pushing.get("plotwire_messages_received_total{kind=\"bokeh_client\"}"),
        2.0
    );
    assert_eq!(
        pushing.get("plotwire_apply_seconds_count") - streamed.get("plotwire_apply_seconds_count"),
        2.0
    );
    producer.close().await;
    scrape_until(port, "the producer's close to be counted", |s| {
        s.get("plotwire_connections{kind=\"bokeh_client\"}") == 0.0
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_sse_stream_counts_while_open() {
    let port = start(config()).await;
    let (status, body) = http_json(port, "PUT", "/api/v1/documents/m/sse", &cds_doc("s1")).await;
    assert_eq!(status, 201, "{body}");
    let sse = SseReader::open(port, "/api/v1/documents/m/sse/events", "").await;
    assert_eq!(sse.status, 200);
    let open = scrape_until(port, "the SSE stream to be counted", |s| {
        s.get("plotwire_connections{kind=\"sse\"}") == 1.0
    })
    .await;
    assert_eq!(
        open.get("plotwire_connections_opened_total{kind=\"sse\"}"),
        1.0
    );
    assert_eq!(open.get("plotwire_store_size_bytes"), 0.0, "no store");
    drop(sse);
    scrape_until(port, "the SSE stream's end to be counted", |s| {
        s.get("plotwire_connections{kind=\"sse\"}") == 0.0
    })
    .await;
}

#[tokio::test]
async fn two_servers_in_one_process_count_apart_and_metrics_can_be_off() {
    let a = start(config()).await;
    let b = start(Config {
        metrics: false,
        ..config()
    })
    .await;
    let (status, _) = http_json(b, "PUT", "/api/v1/documents/m/b", &cds_doc("s1")).await;
    assert_eq!(status, 201);
    let (status, _, _) = http_get(b, "/metrics").await;
    assert_eq!(status, 404);
    let s = scrape(a).await;
    assert_eq!(
        s.get("plotwire_connections_opened_total{kind=\"rest\"}"),
        0.0
    );
    assert_eq!(s.get("plotwire_sessions{kind=\"published\"}"), 0.0);
}

#[tokio::test]
async fn a_viewer_that_stops_reading_counts_one_slow_viewer_close() {
    const N: usize = 2000;
    const ITEMS: usize = 1280; // 10 KiB of float64 per stream: 20 MB in all, far more
                               // than the socket buffers of a viewer that never reads hold
    let port = start(Config {
        outbox_max_messages: 8,
        ..config()
    })
    .await;
    let mut producer = connect(port, "firehose").await;
    producer.push(&json!({"doc": cds_doc("cds")})).await;
    let mut stalled = connect(port, "firehose").await;
    stalled.pull().await;
    let event = json!({"events": [{"kind": "ColumnsStreamed", "model": {"id": "cds"},
        "attr": "data", "data": {"type": "map", "entries": [["x", {"type": "typed_array",
        "array": {"type": "bytes", "data": {"id": "0"}}, "order": "little", "dtype": "float64"}],
        ["y", {"type": "typed_array", "array": {"type": "bytes", "data": {"id": "0"}},
        "order": "little", "dtype": "float64"}]]}, "rollover": 4096}]});
    let payload = bytes::Bytes::from(vec![0u8; ITEMS * 8]);
    let mut sent = 0;
    for _ in 0..N {
        let id = producer
            .send(
                plotwire_protocol::message::MsgType::PatchDoc,
                &event,
                &[("0".to_owned(), payload.clone())],
            )
            .await;
        producer.expect_reply("OK", &id).await;
        sent += 1;
        if scrape(port).await.get("plotwire_slow_viewer_closes_total") > 0.0 {
            break;
        }
    }
    assert!(sent < N, "the viewer was never cut off");
    let (close, _) = stalled.closing().await;
    assert!(matches!(close, Some(Some(1013)) | None), "close {close:?}");
    drop(stalled);
    let after = scrape_until(port, "the stalled viewer's close to be counted", |s| {
        s.get("plotwire_connections{kind=\"bokeh_client\"}") == 1.0
    })
    .await;
    assert_eq!(after.get("plotwire_slow_viewer_closes_total"), 1.0);
    assert_eq!(
        after.get("plotwire_points_ingested_total"),
        (sent * ITEMS) as f64
    );
}
