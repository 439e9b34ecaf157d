#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]
//! Standalone live copies over REST, on 127.0.0.1 (`docs/exports.md`): what
//! `export.html` and `json_item` answer, and the envelopes and `retry:` of the data
//! streams that `--live sse` pages read. Chromium drives the copies in
//! `tests/e2e/test_exports.py`.

mod support;

use serde_json::{json, Value as Json};
use support::*;

/// A document with a named source, a slider, and two rows in the source.
async fn published(name: &str) -> (u16, u64) {
    let port = start(config()).await;
    let model = |name: &str, id: &str, attrs: Json| json!({"type": "object", "name": name, "id": id, "attributes": attrs});
    let doc = json!({
        "version": "3.9.2",
        "title": "exported <doc>",
        "roots": [
            model("ColumnDataSource", "src1", json!({"name": "src", "data": {"type": "map", "entries": [["x", []], ["y", []]]}})),
            model("Slider", "lr1", json!({"name": "lr", "value": 0.1, "start": 0, "end": 1, "step": 0.01})),
        ]
    });
    let (status, body) = http_json(port, "PUT", &format!("/api/v1/documents/{name}"), &doc).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = http_json(
        port,
        "POST",
        &format!("/api/v1/documents/{name}/sources/src/stream"),
        &json!({"x": [1.0, 2.0], "y": [3.0, 4.0]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seq = body["seq"].as_u64().expect("seq");
    (port, seq)
}

#[tokio::test]
async fn a_json_item_holds_one_root_whose_sources_read_on_from_the_snapshot() {
    let (port, seq) = published("e/item").await;
    let (status, headers, body) = http_get(
        port,
        "/api/v1/documents/e/item/json_item?root=src&public_url=https://plots.example.com/p&interval=250&max_size=1",
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    let item: Json = serde_json::from_slice(&body).unwrap();
    assert_eq!(item["root_id"], "src1");
    assert_eq!(item["version"], "3.9.2");
    assert_eq!(item["doc"]["title"], "");
    let roots = item["doc"]["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 1, "only the embedded model is a root");
    let src = &roots[0];
    assert_eq!(src["name"], "AjaxDataSource");
    assert_eq!(
        src["attributes"]["data_url"],
        format!("https://plots.example.com/p/api/v1/documents/e/item/sources/src1?since={seq}")
    );
    assert_eq!(src["attributes"]["polling_interval"], 250);
    assert_eq!(src["attributes"]["max_size"], 1);
    // The sample is cut to max_size: the last row.
    let entries = &src["attributes"]["data"]["entries"];
    assert_eq!(entries[0][0], "x");
    assert_eq!(entries[0][1]["shape"], json!([1]), "{entries}");

    // The cursor in the URL reads exactly what came after the snapshot.
    let (_, after) = http_json(
        port,
        "GET",
        &format!("/api/v1/documents/e/item/sources/src1?since={seq}"),
        &Json::Null,
    )
    .await;
    assert_eq!(after["rows"], 0);
    assert_eq!(after["reset"], false);

    let (status, body) = http_json(
        port,
        "GET",
        "/api/v1/documents/e/item/json_item?root=nope",
        &Json::Null,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["field"], "root");
    let (status, body) = http_json(
        port,
        "GET",
        "/api/v1/documents/e/item/json_item?live=carrier-pigeon",
        &Json::Null,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "live");
}

#[tokio::test]
async fn an_export_is_one_page_with_bokehjs_inlined() {
    let (port, _) = published("e/page").await;
    let (status, headers, body) =
        http_get(port, "/api/v1/documents/e/page/export.html?live=none").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("<title>exported &lt;doc&gt;</title>"));
    assert!(page.contains("<script data-bundle=\"bokeh\">"));
    assert!(
        page.contains("<script data-bundle=\"bokeh-widgets\">"),
        "the slider needs the widgets"
    );
    let doc_json = page
        .split("<script type=\"application/json\"")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .expect("the document's script");
    assert!(doc_json.contains("\"ColumnDataSource\""));
    assert!(
        !doc_json.contains("data_url"),
        "live=none leaves the sources alone"
    );
    let (status, _, _) = http_get(port, "/api/v1/documents/e/nothing/export.html").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_data_stream_of_envelopes_tells_the_browser_when_to_retry() {
    let (port, seq) = published("e/sse").await;
    let path = "/api/v1/documents/e/sse/sources/src";
    let mut sse = SseReader::open(
        port,
        &format!("{path}?since={seq}&format=envelope&retry=2500"),
        "",
    )
    .await;
    assert_eq!(sse.status, 200);
    let first = sse.next().await;
    assert_eq!(first.retry.as_deref(), Some("2500"));
    let first: Json = serde_json::from_str(&first.data).unwrap();
    assert_eq!(first["rows"], 0);
    assert_eq!(first["reset"], false);
    http_json(
        port,
        "POST",
        &format!("{path}/stream"),
        &json!({"x": [5.0], "y": [6.0]}),
    )
    .await;
    let m: Json = serde_json::from_str(&sse.next().await.data).unwrap();
    assert_eq!(m["data"], json!({"x": [5.0], "y": [6.0]}));
    assert_eq!(m["since"], seq);
    http_json(port, "PUT", path, &json!({"x": [7.0], "y": [8.0]})).await;
    let m: Json = serde_json::from_str(&sse.next().await.data).unwrap();
    assert_eq!(m["reset"], true, "a replace starts over: {m}");
    assert_eq!(m["data"], json!({"x": [7.0], "y": [8.0]}));

    let bad = SseReader::open(port, &format!("{path}?retry=5"), "").await;
    assert_eq!(bad.status, 400);
}

/// Idle polls are answered without the owner once one found nothing new; the first
/// change after them is read in full, as every later one.
#[tokio::test]
async fn idle_polls_still_see_the_next_change() {
    let (port, seq) = published("e/idle").await;
    let path = "/api/v1/documents/e/idle/sources/src";
    let mut since = seq;
    for round in 0..3u32 {
        for _ in 0..3 {
            let (_, idle) =
                http_json(port, "GET", &format!("{path}?since={since}"), &Json::Null).await;
            assert_eq!(idle["rows"], 0, "{idle}");
            assert_eq!(idle["next"], since, "{idle}");
            assert_eq!(idle["data"], json!({"x": [], "y": []}));
        }
        let x = f64::from(round);
        http_json(
            port,
            "POST",
            &format!("{path}/stream"),
            &json!({"x": [x], "y": [x]}),
        )
        .await;
        let (_, read) = http_json(port, "GET", &format!("{path}?since={since}"), &Json::Null).await;
        assert_eq!(read["data"]["x"], json!([x]), "{read}");
        since = read["next"].as_u64().expect("next");
    }
    // A replace after idle polls is a reset, not an idle answer.
    http_json(port, "PUT", path, &json!({"x": [9.0], "y": [9.0]})).await;
    let (_, read) = http_json(port, "GET", &format!("{path}?since={since}"), &Json::Null).await;
    assert_eq!(read["reset"], true, "{read}");
}

/// An export bigger than `--max-export-bytes` is refused before it is written, with a
/// 413 that says how to cut it; `max_size` does.
#[tokio::test]
async fn an_export_past_its_limit_is_refused_and_max_size_cuts_it() {
    let port = start(plotwire_server::Config {
        max_export_bytes: 40,
        ..config()
    })
    .await;
    let doc = json!({"title": "big", "sources": {"s": {"columns": {"x": "float64"}}},
                     "plots": {"p": {"kind": "line", "source": "s", "x": "x", "y": "x"}}});
    let (status, body) = http_json(port, "PUT", "/api/v1/documents/e/big", &doc).await;
    assert_eq!(status, 201, "{body}");
    let xs: Vec<f64> = (0..100).map(f64::from).collect();
    http_json(
        port,
        "POST",
        "/api/v1/documents/e/big/sources/s/stream",
        &json!({"x": xs}),
    )
    .await;
    for path in ["export.html", "json_item"] {
        let (status, body) = http_json(
            port,
            "GET",
            &format!("/api/v1/documents/e/big/{path}"),
            &Json::Null,
        )
        .await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["field"], "max_size");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("--max-export-bytes"),
            "{body}"
        );
    }
    let (status, _, _) = http_get(port, "/api/v1/documents/e/big/export.html?max_size=2").await;
    assert_eq!(status, 200);
}
