#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]
//! Published documents over the REST API, with views over real websockets on
//! 127.0.0.1: what a view changes stays in it, producer changes reach every view, events
//! reach producers tagged with the view, cursors read every row once, keys apply once.

mod support;

use plotwire_server::Config;
use serde_json::{json, Value as Json};
use support::*;

/// A generic document: a named source, a range, a slider.
fn demo_doc() -> Json {
    let model = |name: &str, id: &str, attrs: Json| json!({"type": "object", "name": name, "id": id, "attributes": attrs});
    json!({
        "version": "3.9.2",
        "title": "demo",
        "roots": [
            model("ColumnDataSource", "src1", json!({"name": "src", "data": {"type": "map", "entries": [["x", [0.5]], ["y", [1.5]]]}})),
            model("Range1d", "xr1", json!({"name": "xr", "start": 0, "end": 10})),
            model("Slider", "lr1", json!({"name": "lr", "value": 0.1, "start": 0, "end": 1, "step": 0.01})),
        ]
    })
}

async fn published(name: &str) -> u16 {
    let port = start(config()).await;
    let (status, body) = http_json(
        port,
        "PUT",
        &format!("/api/v1/documents/{name}"),
        &demo_doc(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["url"], format!("/d/{name}/"));
    port
}

fn attr<'a>(doc: &'a Json, id: &str, attr: &str) -> &'a Json {
    doc["roots"]
        .as_array()
        .and_then(|r| r.iter().find(|m| m["id"] == id))
        .map(|m| &m["attributes"][attr])
        .unwrap_or(&Json::Null)
}

#[tokio::test]
async fn views_are_independent_and_producer_changes_reach_all() {
    let port = published("t/demo").await;
    let mut v1 = connect_view(port, "t/demo", "view-one").await;
    let mut v2 = connect_view(port, "t/demo", "view-two").await;

    // A pan in view one stays in view one.
    v1.patch_ok(
        json!([{"kind": "ModelChanged", "model": {"id": "xr1"}, "attr": "start", "new": 5}]),
    )
    .await;

    // A producer stream reaches both views, and is the next thing view two sees.
    let (status, body) = http_json(
        port,
        "POST",
        "/api/v1/documents/t/demo/sources/src/stream",
        &json!({"x": [1.0, 2.0], "y": [3.0, 4.0]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], 3);
    for v in [&mut v1, &mut v2] {
        let m = v.expect("PATCH-DOC").await;
        assert_eq!(m.kinds(), vec!["ColumnsStreamed"], "{:?}", m.content);
    }

    // Each view's pull shows its own range.
    let d1 = v1.pull().await;
    let d2 = v2.pull().await;
    assert_eq!(attr(&d1, "xr1", "start"), &json!(5));
    assert_eq!(attr(&d2, "xr1", "start"), &json!(0));

    // The producer sets the slider for everyone, then for view two only.
    let (status, _) = http_json(
        port,
        "PUT",
        "/api/v1/documents/t/demo/models/lr/value",
        &json!({"value": 0.5}),
    )
    .await;
    assert_eq!(status, 200);
    for v in [&mut v1, &mut v2] {
        let m = v.expect("PATCH-DOC").await;
        assert_eq!(m.events()[0]["new"], json!(0.5));
    }
    let (status, _) = http_json(
        port,
        "PUT",
        "/api/v1/documents/t/demo/models/lr/value",
        &json!({"value": 0.25, "view": "view-two"}),
    )
    .await;
    assert_eq!(status, 200);
    let m = v2.expect("PATCH-DOC").await;
    assert_eq!(m.events()[0]["new"], json!(0.25));
    assert_eq!(attr(&v2.pull().await, "lr1", "value"), &json!(0.25));
    assert_eq!(
        attr(&v1.pull().await, "lr1", "value"),
        &json!(0.5),
        "view one kept the shared value"
    );

    // The producer sees view one's pan, tagged with its view.
    let (status, events) = http_json(
        port,
        "GET",
        "/api/v1/documents/t/demo/events?since=0&timeout=1",
        &Json::Null,
    )
    .await;
    assert_eq!(status, 200);
    let events = events["events"].as_array().expect("events").clone();
    let pan = events
        .iter()
        .find(|e| e["kind"] == "change")
        .expect("the range change");
    assert_eq!(pan["view"], "view-one");
    assert_eq!(pan["model"]["name"], "xr");
    assert_eq!(pan["attr"], "start");
    assert_eq!(pan["value"], 5);
    assert_eq!(pan["doc"], "t/demo");
    let opened: Vec<&Json> = events.iter().filter(|e| e["kind"] == "view").collect();
    assert_eq!(opened.len(), 2, "{events:?}");
}

#[tokio::test]
async fn a_view_cannot_change_shared_data() {
    let port = published("t/ro").await;
    let mut v = connect_view(port, "t/ro", "v").await;
    let text = v
        .patch_error(
            &json!({"events": [{"kind": "ColumnsStreamed", "model": {"id": "src1"}, "attr": "data", "data": {"type": "map", "entries": [["x", [9]], ["y", [9]]]}, "rollover": null}]}),
            &[],
        )
        .await;
    assert!(text.contains("producers"), "{text}");
    let text = v
        .patch_error(
            &json!({"events": [{"kind": "ModelChanged", "model": {"id": "xr1"}, "attr": "start", "new": {"type": "object", "name": "Range1d", "id": "new1", "attributes": {}}}]}),
            &[],
        )
        .await;
    assert!(text.contains("cannot add models"), "{text}");
    let (_, body) = http_json(
        port,
        "GET",
        "/api/v1/documents/t/ro/sources/src",
        &Json::Null,
    )
    .await;
    assert_eq!(body["rows"], 1, "nothing changed: {body}");
}

#[tokio::test]
async fn cursors_read_every_row_once() {
    let port = published("t/cur").await;
    let path = "/api/v1/documents/t/cur/sources/src";
    let (_, first) = http_json(port, "GET", path, &Json::Null).await;
    assert_eq!(first["reset"], true);
    assert_eq!(first["data"]["x"], json!([0.5]));
    let mut next = first["next"].as_u64().expect("next");
    let mut seen = Vec::new();
    for batch in 0..20 {
        let x: Vec<f64> = (0..3).map(|i| f64::from(batch * 3 + i)).collect();
        let (status, _) = http_json(
            port,
            "POST",
            &format!("{path}/stream"),
            &json!({"x": x, "y": x}),
        )
        .await;
        assert_eq!(status, 200);
        if batch % 4 == 3 {
            let (_, read) =
                http_json(port, "GET", &format!("{path}?since={next}"), &Json::Null).await;
            assert_eq!(read["reset"], false, "{read}");
            seen.extend(
                read["data"]["x"]
                    .as_array()
                    .expect("x")
                    .iter()
                    .map(|v| v.as_f64().expect("f64")),
            );
            next = read["next"].as_u64().expect("next");
        }
    }
    let expected: Vec<f64> = (0..60).map(f64::from).collect();
    assert_eq!(seen, expected);
    let (_, idle) = http_json(port, "GET", &format!("{path}?since={next}"), &Json::Null).await;
    assert_eq!(idle["rows"], 0);
    // A replace tells the poller to start over.
    http_json(port, "PUT", path, &json!({"x": [7.0], "y": [7.0]})).await;
    let (_, read) = http_json(port, "GET", &format!("{path}?since={next}"), &Json::Null).await;
    assert_eq!(read["reset"], true);
    assert_eq!(read["data"]["x"], json!([7.0]));
}

/// A cursor from an earlier life of the document (before a delete and a republish, or an
/// in-memory restart) is ahead of the new sequence numbers: the reader starts over, for
/// rows and for events, instead of waiting for the count to pass it again.
#[tokio::test]
async fn a_cursor_from_before_a_republish_starts_over() {
    let port = published("t/anew").await;
    let path = "/api/v1/documents/t/anew/sources/src";
    for _ in 0..5 {
        http_json(
            port,
            "POST",
            &format!("{path}/stream"),
            &json!({"x": [1.0], "y": [1.0]}),
        )
        .await;
    }
    let (_, read) = http_json(port, "GET", path, &Json::Null).await;
    let old = read["next"].as_u64().expect("next");
    assert!(old >= 5, "{read}");
    let (_, events) = http_json(
        port,
        "GET",
        "/api/v1/documents/t/anew/events?timeout=0",
        &Json::Null,
    )
    .await;
    let old_events = events["next"].as_u64().expect("next");

    let (status, _) = http_json(port, "DELETE", "/api/v1/documents/t/anew", &Json::Null).await;
    assert_eq!(status, 204);
    let (status, _) = http_json(port, "PUT", "/api/v1/documents/t/anew", &demo_doc()).await;
    assert_eq!(status, 201);
    http_json(
        port,
        "POST",
        &format!("{path}/stream"),
        &json!({"x": [9.0], "y": [9.0]}),
    )
    .await;
    let (_, read) = http_json(port, "GET", &format!("{path}?since={old}"), &Json::Null).await;
    assert_eq!(read["reset"], true, "{read}");
    assert_eq!(read["data"]["x"], json!([0.5, 9.0]));
    let next = read["next"].as_u64().expect("next");
    assert!(next < old, "the new cursor is the new document's: {read}");
    let (_, idle) = http_json(port, "GET", &format!("{path}?since={next}"), &Json::Null).await;
    assert_eq!(
        (idle["reset"].clone(), idle["rows"].clone()),
        (json!(false), json!(0))
    );

    let (_, events) = http_json(
        port,
        "GET",
        &format!(
            "/api/v1/documents/t/anew/events?since={}&timeout=0",
            old_events + 1000
        ),
        &Json::Null,
    )
    .await;
    assert_eq!(events["gap"], true, "{events}");
    let next = events["next"].as_u64().expect("next");
    assert!(next <= old_events + 1000 && next < 1000, "{events}");
}

#[tokio::test]
async fn a_retried_write_is_applied_once() {
    let port = published("t/idem").await;
    let path = "/api/v1/documents/t/idem/sources/src/stream";
    let body = json!({"x": [1.0], "y": [2.0]}).to_string();
    let headers = "Content-Type: application/json\r\nIdempotency-Key: batch-1\r\n";
    let (s1, _, a1) = http_send(port, "POST", path, headers, body.as_bytes()).await;
    let (s2, _, a2) = http_send(port, "POST", path, headers, body.as_bytes()).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(a1, a2, "the retry gets the first answer");
    let (_, read) = http_json(
        port,
        "GET",
        "/api/v1/documents/t/idem/sources/src",
        &Json::Null,
    )
    .await;
    assert_eq!(read["rows"], 2, "applied once: {read}");
}

#[tokio::test]
async fn bad_requests_name_the_problem_and_change_nothing() {
    let port = published("t/bad").await;
    let base = "/api/v1/documents/t/bad";
    let cases: Vec<(&str, String, Json, u16, &str)> = vec![
        (
            "POST",
            format!("{base}/sources/nope/stream"),
            json!({"x": [1]}),
            404,
            "source",
        ),
        (
            "POST",
            format!("{base}/sources/src/stream"),
            json!({"x": [1.0, 2.0], "y": [1.0]}),
            400,
            "y",
        ),
        (
            "POST",
            format!("{base}/sources/src/stream"),
            json!({"x": "no"}),
            400,
            "x",
        ),
        (
            "PUT",
            format!("{base}/models/nope/value"),
            json!({"value": 1}),
            404,
            "model",
        ),
        (
            "PUT",
            format!("{base}/models/lr/value"),
            json!({"value": 1, "extra": 2}),
            400,
            "extra",
        ),
        (
            "PUT",
            format!("{base}/models/lr/value"),
            json!({"value": 1, "view": "none"}),
            404,
            "view",
        ),
        (
            "PUT",
            "/api/v1/documents/a%20b".to_owned(),
            demo_doc(),
            400,
            "name",
        ),
        (
            "PUT",
            "/api/v1/documents/t/x".to_owned(),
            json!({"nothing": 1}),
            400,
            "",
        ),
        (
            "GET",
            "/api/v1/documents/t/none".to_owned(),
            Json::Null,
            404,
            "name",
        ),
    ];
    for (method, path, body, status, field) in cases {
        let (got, answer) = http_json(port, method, &path, &body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
        if !field.is_empty() {
            assert_eq!(answer["field"], field, "{method} {path}: {answer}");
        }
    }
    let (_, read) = http_json(port, "GET", &format!("{base}/sources/src"), &Json::Null).await;
    assert_eq!(read["rows"], 1, "nothing changed: {read}");
}

#[tokio::test]
async fn pages_index_and_listing() {
    let port = published("t/page").await;
    let (status, _, body) = http_get(port, "/d/t/page/").await;
    assert_eq!(status, 200);
    let html = String::from_utf8(body).expect("UTF-8");
    assert!(html.contains("<title>demo</title>"), "{html}");
    let (status, _, body) = http_get(port, "/").await;
    assert_eq!(status, 200);
    let index = String::from_utf8(body).expect("UTF-8");
    assert!(
        index.contains("/d/t/page/"),
        "the index links the document: {index}"
    );
    let (_, list) = http_json(port, "GET", "/api/v1/documents", &Json::Null).await;
    assert_eq!(list["documents"][0]["name"], "t/page");
    assert_eq!(list["documents"][0]["title"], "demo");
    let (status, _, _) = http_get(port, "/d/t/missing/").await;
    assert_eq!(status, 404);
    let (status, _) = http_json(port, "DELETE", "/api/v1/documents/t/page", &Json::Null).await;
    assert_eq!(status, 204);
    let (status, _, _) = http_get(port, "/d/t/page/").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let port = start(config()).await;
    let (status, doc) = http_json(port, "GET", "/api/v1/openapi.json", &Json::Null).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/documents",
        "/api/v1/documents/{name}",
        "/api/v1/documents/{name}/events",
        "/api/v1/documents/{name}/sources/{source}",
        "/api/v1/documents/{name}/sources/{source}/stream",
        "/api/v1/documents/{name}/models/{model}/{prop}",
        "/api/v1/documents/{name}/export.html",
        "/api/v1/documents/{name}/json_item",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is described");
    }
}

#[tokio::test]
async fn readyz_says_ready_with_the_store_it_has() {
    let port = start(config()).await;
    let (status, body) = http_json(port, "GET", "/readyz", &Json::Null).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "ready", "store": "memory"}));
}

#[tokio::test]
async fn a_dashboard_spec_publishes_and_streams() {
    let port = start(config()).await;
    let spec: Json = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/specs/training-run.json"
        ))
        .expect("the example spec"),
    )
    .expect("JSON");
    let (status, body) = http_json(port, "PUT", "/api/v1/documents/runs/exp1", &spec).await;
    assert_eq!(status, 201, "{body}");
    let (_, summary) = http_json(port, "GET", "/api/v1/documents/runs/exp1", &Json::Null).await;
    let sources = summary["sources"].as_object().expect("sources");
    assert!(!sources.is_empty(), "{summary}");
    let mut v = connect_view(port, "runs/exp1", "v").await;
    let doc = v.pull().await;
    assert!(!doc["roots"].as_array().expect("roots").is_empty());
}

#[tokio::test]
async fn streamvis_layout_then_lines_grow_in_open_views() {
    let port = start(config()).await;
    let base = "/api/v1/documents/sv/run/streamvis";
    let (status, body) = http_json(port, "POST", &format!("{base}/clear"), &Json::Null).await;
    assert_eq!(status, 200, "{body}");
    let grid = json!({"grid": {"top": [0, 0, 1, 2], "left": [1, 0, 1, 1]}});
    let (status, body) = http_json(port, "POST", &format!("{base}/layout"), &grid).await;
    assert_eq!(status, 201, "{body}");
    let mut v = connect_view(port, "sv/run", "v").await;
    let before = v.pull().await;
    // The first step gives the plot its three lines, as model changes the open view gets.
    let step = json!({"plot": "top", "values": [0.0, 1.0, 2.0, 3.0]});
    let (status, body) = http_json(port, "POST", &format!("{base}/tandem_lines"), &step).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], 1);
    let shape = v.expect("PATCH-DOC").await;
    assert!(
        shape.kinds().contains(&"ModelChanged"),
        "{:?}",
        shape.content
    );
    let data = next_data(&mut v).await;
    assert_eq!(data.kinds(), vec!["ColumnsStreamed"]);
    for i in 1..5 {
        let step = json!({"plot": "top", "values": [f64::from(i), 1.0, 2.0, 3.0]});
        let (status, _) = http_json(port, "POST", &format!("{base}/tandem_lines"), &step).await;
        assert_eq!(status, 200);
        assert_eq!(next_data(&mut v).await.kinds(), vec!["ColumnsStreamed"]);
    }
    // The view's x range follows the data: the server places it (level of detail).
    let mut end = None;
    for _ in 0..20 {
        let m = v.expect("PATCH-DOC").await;
        assert!(is_range_move(&m), "{:?}", m.content);
        end = m
            .events()
            .iter()
            .find(|e| e["attr"] == "end")
            .map(|e| e["new"].clone());
        if end == Some(json!(4.0)) {
            break;
        }
    }
    assert_eq!(end, Some(json!(4.0)));
    let (_, read) = http_json(
        port,
        "GET",
        "/api/v1/documents/sv/run/sources/top.data",
        &Json::Null,
    )
    .await;
    assert_eq!(read["data"]["x"], json!([0.0, 1.0, 2.0, 3.0, 4.0]));
    assert_eq!(read["data"]["y3"], json!([3.0, 3.0, 3.0, 3.0, 3.0]));
    // The same view is still connected, with no reconnect: its document grew.
    let after = v.pull().await;
    assert!(
        after.to_string().len() > before.to_string().len(),
        "the view's document gained the lines"
    );
    // Another shape of data for a plot that has data is refused.
    let bad = json!({"plot": "top", "values": [9.0, 1.0]});
    let (status, body) = http_json(port, "POST", &format!("{base}/tandem_lines"), &bad).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = http_json(port, "POST", &format!("{base}/scatter"), &json!({"plot": "left", "points": [[1.0, 2.0], [3.0, 4.0]], "spatial_dim": 1, "append": false})).await;
    assert_eq!(status, 200, "{body}");
    let (_, read) = http_json(
        port,
        "GET",
        "/api/v1/documents/sv/run/sources/top.data",
        &Json::Null,
    )
    .await;
    assert_eq!(
        read["rows"], 5,
        "the other plot's first scatter kept these rows: {read}"
    );
    let (status, _) = http_json(port, "POST", &format!("{base}/clear"), &Json::Null).await;
    assert_eq!(status, 200);
    let (_, read) = http_json(
        port,
        "GET",
        "/api/v1/documents/sv/run/sources/top.data",
        &Json::Null,
    )
    .await;
    assert_eq!(read["rows"], 0);
}

#[tokio::test]
async fn views_closed_by_a_republish_are_forgotten_when_they_do_not_return() {
    let port = start(Config {
        view_linger: std::time::Duration::from_millis(100),
        ..config()
    })
    .await;
    let path = "/api/v1/documents/t/again";
    let (status, _) = http_json(port, "PUT", path, &demo_doc()).await;
    assert_eq!(status, 201);
    let mut v = connect_view(port, "t/again", "gone").await;
    let (status, _) = http_json(port, "PUT", path, &demo_doc()).await;
    assert_eq!(status, 200);
    // The republish closes the view's socket (it would reconnect; this one does not).
    assert!(matches!(v.next().await, Incoming::Close(_) | Incoming::End));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, summary) = http_json(port, "GET", path, &Json::Null).await;
        if summary["views"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the closed view is never forgotten: {summary}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// What an AjaxDataSource sends and takes: an empty POST (or a GET) answered with the
/// cursor envelope or, with `format=columns`, the bare column object; never cached,
/// readable from any origin, preflights that allow the POST on reads only.
#[tokio::test]
async fn reads_answer_what_web_data_sources_send() {
    let port = published("t/ajax").await;
    let path = "/api/v1/documents/t/ajax/sources/src";
    let (status, headers, body) = http_get(port, &format!("{path}?format=columns")).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Json>(&body).unwrap(),
        json!({"x": [0.5], "y": [1.5]})
    );
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));

    // AjaxDataSource's default request: POST, no body, Content-Type: application/json.
    let (status, _, body) = http_send(
        port,
        "POST",
        path,
        "Content-Type: application/json\r\nOrigin: null\r\n",
        b"",
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let read: Json = serde_json::from_slice(&body).unwrap();
    assert_eq!(read["reset"], true);
    assert_eq!(read["data"], json!({"x": [0.5], "y": [1.5]}));
    let (status, _, body) = http_send(
        port,
        "POST",
        &format!("{path}?format=columns"),
        "Content-Type: application/json\r\n",
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Json>(&body).unwrap(),
        json!({"x": [0.5], "y": [1.5]})
    );

    let (status, body) = http_json(port, "POST", path, &json!({"x": [1.0]})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("/stream"),
        "{body}"
    );
    let (status, body) = http_json(port, "GET", &format!("{path}?format=xml"), &Json::Null).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("format")),
        "{body}"
    );

    let preflight = |p: String| async move {
        let (status, headers, _) = http_request(
            port,
            "OPTIONS",
            &p,
            "Origin: http://elsewhere\r\nAccess-Control-Request-Method: POST\r\n",
        )
        .await;
        assert_eq!(status, 204);
        header(&headers, "access-control-allow-methods")
            .unwrap()
            .to_owned()
    };
    assert!(preflight(path.to_owned()).await.contains("POST"));
    assert!(!preflight(format!("{path}/stream")).await.contains("POST"));
    assert!(!preflight("/api/v1/documents/t/ajax/events".to_owned())
        .await
        .contains("POST"));
}

/// What a ServerSentDataSource reads: `retry:` and the whole content first, then one
/// message per stream with only its rows, each `id:` the cursor that `Last-Event-ID`
/// resumes after; `mode=replace` sends the whole content each time.
#[tokio::test]
async fn a_data_stream_sends_every_row_once_and_resumes_after_its_id() {
    let port = published("t/sse").await;
    let path = "/api/v1/documents/t/sse/sources/src";
    let mut sse = SseReader::open(port, path, "").await;
    assert_eq!(sse.status, 200);
    assert_eq!(
        header(&sse.headers, "content-type"),
        Some("text/event-stream")
    );
    assert_eq!(header(&sse.headers, "cache-control"), Some("no-store"));
    let first = sse.next().await;
    assert_eq!(first.retry.as_deref(), Some("1000"));
    assert_eq!(
        serde_json::from_str::<Json>(&first.data).unwrap(),
        json!({"x": [0.5], "y": [1.5]})
    );
    let mut replace = SseReader::open(port, &format!("{path}?mode=replace"), "").await;
    replace.next().await;

    let mut ids = vec![first.id.clone().expect("an id")];
    for batch in 0..3 {
        let x = [f64::from(batch) * 2.0, f64::from(batch) * 2.0 + 1.0];
        let (status, _) = http_json(
            port,
            "POST",
            &format!("{path}/stream"),
            &json!({"x": x, "y": x}),
        )
        .await;
        assert_eq!(status, 200);
        let m = sse.next().await;
        assert_eq!(
            serde_json::from_str::<Json>(&m.data).unwrap(),
            json!({"x": x, "y": x}),
            "batch {batch}"
        );
        ids.push(m.id.expect("an id"));
        let whole = replace.next().await;
        let whole: Json = serde_json::from_str(&whole.data).unwrap();
        assert_eq!(
            whole["x"].as_array().unwrap().len(),
            1 + 2 * (batch as usize + 1)
        );
    }
    assert!(ids.windows(2).all(|w| w[0] != w[1]), "{ids:?}");

    // A browser reconnecting with the id of the first batch gets the two after it.
    let mut again = SseReader::open(port, path, &format!("Last-Event-ID: {}\r\n", ids[1])).await;
    let m = again.next().await;
    assert_eq!(
        serde_json::from_str::<Json>(&m.data).unwrap(),
        json!({"x": [2.0, 3.0, 4.0, 5.0], "y": [2.0, 3.0, 4.0, 5.0]})
    );
    assert_eq!(m.id.as_deref(), Some(ids[3].as_str()));

    let (status, _, body) = http_get(port, &format!("{path}?mode=sideways")).await;
    assert_eq!(
        status,
        200,
        "mode only matters to a stream: {}",
        String::from_utf8_lossy(&body)
    );
    let bad = SseReader::open(port, &format!("{path}?mode=sideways"), "").await;
    assert_eq!(bad.status, 400);
    let missing = SseReader::open(port, "/api/v1/documents/t/sse/sources/nope", "").await;
    assert_eq!(missing.status, 404);
}

/// Every REST answer parses into its type in `plotwire-api`, the crate clients build
/// on, so the server and the clients cannot drift apart.
#[tokio::test]
async fn answers_are_the_shared_api_types() {
    use plotwire_api::answers::{
        DocumentList, ErrorBody, EventPage, Published, ReadBack, Summary, Written,
    };
    use plotwire_api::events::EventKind;
    use plotwire_api::{paths, raw};

    let port = start(config()).await;
    let parse = |what: &str, body: &Json| -> Json {
        assert!(body.is_object(), "{what}: {body}");
        body.clone()
    };
    let (status, body) = http_json(port, "PUT", &paths::document("t/api"), &demo_doc()).await;
    assert_eq!(status, 201);
    let published: Published = serde_json::from_value(parse("publish", &body)).unwrap();
    assert_eq!(published.url, "/d/t/api/");

    let x = [1.0f64, 2.0];
    let payload = raw::encode(&[
        ("x", raw::ColumnData::Float64(&x)),
        ("y", raw::ColumnData::Float64(&x)),
    ]);
    let (status, _, body) = http_send(
        port,
        "POST",
        &paths::source_action("t/api", "src", "stream"),
        &format!("Content-Type: {}\r\n", raw::CONTENT_TYPE),
        &payload,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let written: Written = serde_json::from_slice(&body).unwrap();
    assert_eq!(written.rows, Some(3));

    let (_, body) = http_json(port, "GET", &paths::source("t/api", "src"), &Json::Null).await;
    let read: ReadBack = serde_json::from_value(parse("read", &body)).unwrap();
    assert_eq!((read.rows, read.reset), (3, true));
    assert_eq!(read.data["x"], [json!(0.5), json!(1.0), json!(2.0)]);

    let (_, body) = http_json(port, "GET", paths::DOCUMENTS, &Json::Null).await;
    let list: DocumentList = serde_json::from_value(parse("list", &body)).unwrap();
    assert_eq!(list.documents[0].name, "t/api");
    let (_, body) = http_json(port, "GET", &paths::document("t/api"), &Json::Null).await;
    let summary: Summary = serde_json::from_value(parse("summary", &body)).unwrap();
    assert_eq!(summary.sources["src"].rows, 3);

    let view = connect_view(port, "t/api", "api-view").await;
    let (_, body) = http_json(
        port,
        "GET",
        &format!("{}?since=0&timeout=5", paths::events("t/api")),
        &Json::Null,
    )
    .await;
    let page: EventPage = serde_json::from_value(parse("events", &body)).unwrap();
    assert!(
        page.events.iter().any(|e| e.view == "api-view"
            && matches!(&e.kind, EventKind::View { event } if event == "open")),
        "{body}"
    );
    drop(view);

    let (status, body) = http_json(port, "GET", &paths::source("t/api", "nope"), &Json::Null).await;
    assert_eq!(status, 404);
    let error: ErrorBody = serde_json::from_value(parse("error", &body)).unwrap();
    assert!(error.error.contains("nope"), "{error:?}");
}

/// A spec source's `max_rows` is the rollover of streams that give none, and bounds a
/// stream that gives a larger one (docs/dashboard-spec.md): a long run cannot grow the
/// source, nor its store, past it. (Before, the server built `max_rows` and ignored it.)
#[tokio::test]
async fn a_spec_sources_max_rows_bounds_every_stream() {
    let port = start(config()).await;
    let spec = json!({
        "sources": {"s": {"columns": {"x": "float64"}, "max_rows": 50}},
        "plots": {"p": {"kind": "line", "source": "s", "x": "x", "y": "x"}},
        "layout": {"grid": {"p": [0, 0, 1, 1]}}
    });
    let (status, body) = http_json(port, "PUT", "/api/v1/documents/bounded", &spec).await;
    assert_eq!(status, 201, "{body}");
    let rows: Vec<f64> = (0..80).map(f64::from).collect();
    for path in [
        "/api/v1/documents/bounded/sources/s/stream",
        "/api/v1/documents/bounded/sources/s/stream?rollover=1000",
    ] {
        let (status, body) = http_json(port, "POST", path, &json!({"x": rows})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["rows"], 50, "{path}: {body}");
    }
    let (_, read) = http_json(
        port,
        "GET",
        "/api/v1/documents/bounded/sources/s",
        &Json::Null,
    )
    .await;
    assert_eq!(
        read["data"]["x"][0], 30.0,
        "the newest rows are kept: {read}"
    );
    // A smaller rollover than max_rows still applies.
    let (_, body) = http_json(
        port,
        "POST",
        "/api/v1/documents/bounded/sources/s/stream?rollover=10",
        &json!({"x": rows}),
    )
    .await;
    assert_eq!(body["rows"], 10, "{body}");
    // A replace with more rows than max_rows is refused, naming the limit.
    let (status, body) = http_json(
        port,
        "PUT",
        "/api/v1/documents/bounded/sources/s",
        &json!({"x": rows}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "max_rows", "{body}");
}

/// Whether a PATCH-DOC only moves a plot's x range (the server places the x range of
/// each view of a line plot).
fn is_range_move(m: &Received) -> bool {
    !m.events().is_empty()
        && m.events().iter().all(|e| {
            e["kind"] == "ModelChanged"
                && e["model"]["id"]
                    .as_str()
                    .is_some_and(|id| id.ends_with(":x_range"))
        })
}

/// The next PATCH-DOC that is not only an x range move.
async fn next_data(v: &mut Client) -> Received {
    for _ in 0..20 {
        let m = v.expect("PATCH-DOC").await;
        if !is_range_move(&m) {
            return m;
        }
    }
    panic!("only range moves arrived")
}
