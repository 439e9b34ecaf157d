#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]
//! Per-document retention (`docs/storage.md`, "Retention") over the REST API, with a
//! real SQLite data dir and views over real websockets on 127.0.0.1: `max_rows` caps
//! streams and refuses bigger replaces and publishes, `max_age` trims old rows for
//! views and read-back, and bad values are 400 naming the parameter. Every wait is
//! bounded.

mod support;

use std::time::{Duration, Instant};

use plotwire_server::Config;
use serde_json::{json, Value as Json};
use support::*;

/// A server on a fresh data dir (kept alive by the returned guard).
async fn server() -> (u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = start(Config {
        data_dir: Some(dir.path().to_owned()),
        ..config()
    })
    .await;
    (port, dir)
}

/// A DocJson holding the source `src` with `rows` rows of `x` and `y` (JSON lists).
fn list_doc(rows: usize) -> Json {
    let x: Vec<f64> = (0..rows).map(|i| i as f64).collect();
    json!({
        "version": "3.9.2",
        "title": "kept",
        "roots": [{"type": "object", "name": "ColumnDataSource", "id": "s1",
                   "attributes": {"name": "src", "data": {"type": "map", "entries": [["x", x], ["y", x]]}}}]
    })
}

/// A dashboard spec whose source `train` has float64 (binary) columns.
fn spec() -> Json {
    json!({
        "sources": {"train": {"columns": {"step": "float64", "loss": "float64"}}},
        "plots": {"p": {"kind": "line", "source": "train", "x": "step", "y": "loss"}},
        "layout": {"grid": {"p": [0, 0, 1, 1]}}
    })
}

/// The values of column `col` of `source` of document `doc`, read back.
async fn read(port: u16, doc: &str, source: &str, col: &str) -> Vec<f64> {
    let (status, body) = http_json(
        port,
        "GET",
        &format!("/api/v1/documents/{doc}/sources/{source}"),
        &Json::Null,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"][col]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

async fn stream(port: u16, path: &str, body: &Json) -> Json {
    let (status, answer) = http_json(port, "POST", path, body).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

#[tokio::test]
async fn max_rows_caps_every_stream_and_refuses_bigger_replaces_and_publishes() {
    let (port, _dir) = server().await;
    let (status, body) = http_json(
        port,
        "PUT",
        "/api/v1/documents/r/a?max_rows=5",
        &list_doc(1),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let path = "/api/v1/documents/r/a/sources/src/stream";
    for b in 0..3 {
        let xs: Vec<f64> = (0..4).map(|i| f64::from(b * 4 + i + 1)).collect();
        let answer = stream(port, path, &json!({"x": xs, "y": xs})).await;
        assert!(answer["rows"].as_u64().unwrap() <= 5, "{answer}");
    }
    assert_eq!(
        read(port, "r/a", "src", "x").await,
        [8.0, 9.0, 10.0, 11.0, 12.0]
    );
    // A larger rollover is capped; a smaller one is kept.
    let answer = stream(
        port,
        &format!("{path}?rollover=100"),
        &json!({"x": [13.0], "y": [13.0]}),
    )
    .await;
    assert_eq!(answer["rows"], 5, "{answer}");
    let answer = stream(
        port,
        &format!("{path}?rollover=2"),
        &json!({"x": [14.0], "y": [14.0]}),
    )
    .await;
    assert_eq!(answer["rows"], 2, "{answer}");

    // A replace with more rows than max_rows is refused, and changes nothing.
    let six: Vec<f64> = (0..6).map(f64::from).collect();
    let (status, body) = http_json(
        port,
        "PUT",
        "/api/v1/documents/r/a/sources/src",
        &json!({"x": six, "y": six}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "max_rows", "{body}");
    assert_eq!(read(port, "r/a", "src", "x").await, [13.0, 14.0]);

    // So is a publish of a document holding more rows than it may keep.
    let (status, body) = http_json(
        port,
        "PUT",
        "/api/v1/documents/r/a?max_rows=5",
        &list_doc(6),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "max_rows", "{body}");
    assert_eq!(read(port, "r/a", "src", "x").await, [13.0, 14.0]);

    // A publish gives the document its retention anew: without max_rows, nothing caps.
    let (status, body) = http_json(port, "PUT", "/api/v1/documents/r/a", &list_doc(6)).await;
    assert_eq!(status, 200, "{body}");
    let answer = stream(port, path, &json!({"x": [7.0], "y": [7.0]})).await;
    assert_eq!(answer["rows"], 7, "{answer}");

    // A spec document's sources are capped the same way.
    let (status, body) =
        http_json(port, "PUT", "/api/v1/documents/r/spec?max_rows=3", &spec()).await;
    assert_eq!(status, 201, "{body}");
    let answer = stream(
        port,
        "/api/v1/documents/r/spec/sources/train/stream",
        &json!({"step": [1, 2, 3, 4, 5], "loss": [5, 4, 3, 2, 1]}),
    )
    .await;
    assert_eq!(answer["rows"], 3, "{answer}");
    assert_eq!(read(port, "r/spec", "train", "step").await, [3.0, 4.0, 5.0]);
}

/// Setting a source's `data` as a model property adds rows as a replace does, so
/// `max_rows` bounds it the same way: refused when it holds more, for every view or for
/// one, and nothing changes.
#[tokio::test]
async fn max_rows_bounds_a_source_data_set_as_a_property() {
    let (port, _dir) = server().await;
    let (status, body) = http_json(
        port,
        "PUT",
        "/api/v1/documents/r/p?max_rows=3",
        &list_doc(2),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, summary) = http_json(port, "GET", "/api/v1/documents/r/p", &Json::Null).await;
    assert_eq!(summary["retention"], json!({"max_rows": 3}), "{summary}");
    let data = |rows: usize| {
        let x: Vec<f64> = (0..rows).map(|i| 10.0 + i as f64).collect();
        json!({"type": "map", "entries": [["x", x], ["y", x]]})
    };
    for body in [
        json!({"value": data(4)}),
        json!({"value": data(4), "view": "v1"}),
    ] {
        let (status, answer) =
            http_json(port, "PUT", "/api/v1/documents/r/p/models/src/data", &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["field"], "max_rows", "{answer}");
    }
    assert_eq!(read(port, "r/p", "src", "x").await, [0.0, 1.0]);
    let (status, answer) = http_json(
        port,
        "PUT",
        "/api/v1/documents/r/p/models/src/data",
        &json!({"value": data(3)}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(read(port, "r/p", "src", "x").await, [10.0, 11.0, 12.0]);
}

#[tokio::test]
async fn bad_retention_parameters_are_400_naming_them() {
    let (port, _dir) = server().await;
    for (query, field) in [
        ("max_rows=0", "max_rows"),
        ("max_rows=-3", "max_rows"),
        ("max_rows=ten", "max_rows"),
        ("max_rows=1000000001", "max_rows"),
        ("max_age=0s", "max_age"),
        ("max_age=30", "max_age"),
        ("max_age=1w", "max_age"),
        ("max_age=1.5h", "max_age"),
        ("max_age=366d", "max_age"),
        ("max_age=", "max_age"),
        ("max_rows=10&max_age=x", "max_age"),
    ] {
        let (status, body) = http_json(
            port,
            "PUT",
            &format!("/api/v1/documents/bad?{query}"),
            &list_doc(1),
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
        assert!(body["error"].as_str().unwrap().contains(field), "{body}");
    }
    // Nothing was published.
    let (status, _) = http_json(port, "GET", "/api/v1/documents/bad", &Json::Null).await;
    assert_eq!(status, 404);
    let (status, body) = http_json(
        port,
        "PUT",
        "/api/v1/documents/bad?max_rows=1000000000&max_age=365d",
        &list_doc(1),
    )
    .await;
    assert_eq!(status, 201, "the bounds themselves are taken: {body}");
}

/// The next PATCH-DOC a view gets within `deadline` whose events include one of `kind`.
async fn next_event(c: &mut Client, kind: &str, deadline: Instant) -> Json {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = tokio::time::timeout(left, c.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} reached the view in time"));
        if m.msgtype != "PATCH-DOC" {
            continue;
        }
        if let Some(e) = m.events().iter().find(|e| e["kind"] == kind) {
            return e.clone();
        }
    }
}

/// Waits (bounded) until `doc`'s source reads back `want`.
async fn until_read(port: u16, doc: &str, source: &str, col: &str, want: &[f64]) {
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let got = read(port, doc, source, col).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{doc} reads {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn max_age_trims_old_rows_for_views_and_read_back() {
    let (port, _dir) = server().await;

    // List columns (the published row makes them lists): views get the trim as a
    // stream of no rows whose rollover keeps the younger rows. The first trim comes a
    // second after the publish and takes the published row only.
    let published = Instant::now();
    let (status, body) = http_json(
        port,
        "PUT",
        "/api/v1/documents/age/list?max_age=1s",
        &list_doc(1),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, summary) = http_json(port, "GET", "/api/v1/documents/age/list", &Json::Null).await;
    assert_eq!(summary["retention"], json!({"max_age": "1s"}), "{summary}");
    let mut view = connect_view(port, "age/list", "v-list").await;
    view.pull().await;
    // The streamed rows arrive well after the published one, so that a trim a little
    // late (the owner is busy, the machine loaded) still takes the published row alone.
    tokio::time::sleep(Duration::from_millis(400).saturating_sub(published.elapsed())).await;
    let path = "/api/v1/documents/age/list/sources/src/stream";
    stream(
        port,
        path,
        &json!({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0]}),
    )
    .await;
    stream(port, path, &json!({"x": [4.0, 5.0], "y": [4.0, 5.0]})).await;
    assert!(
        published.elapsed() < Duration::from_millis(900),
        "too slow to test"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let _ = next_event(&mut view, "ColumnsStreamed", deadline).await;
    let _ = next_event(&mut view, "ColumnsStreamed", deadline).await;
    let trim = next_event(&mut view, "ColumnsStreamed", deadline).await;
    assert!(
        published.elapsed() >= Duration::from_secs(1),
        "trimmed early"
    );
    assert_eq!(trim["rollover"], 5, "{trim}");
    for entry in trim["data"]["entries"].as_array().unwrap() {
        assert_eq!(entry[1], json!([]), "{trim}");
    }
    assert_eq!(
        read(port, "age/list", "src", "x").await,
        [1.0, 2.0, 3.0, 4.0, 5.0]
    );
    until_read(port, "age/list", "src", "x", &[]).await;
    // The last trim left no rows: BokehJS keeps a whole list for a rollover of 0
    // (`slice(-0)`), so views get the empty data instead.
    let deadline = Instant::now() + Duration::from_secs(5);
    let emptied = next_event(&mut view, "ColumnDataChanged", deadline).await;
    let entries = emptied["data"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{emptied}");
    for entry in entries {
        assert_eq!(entry[1], json!([]), "{emptied}");
    }

    // Binary columns: BokehJS cannot shorten a typed array by a rollover, so views get
    // the source's new data.
    let (status, body) = http_json(
        port,
        "PUT",
        "/api/v1/documents/age/spec?max_age=1s",
        &spec(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut view = connect_view(port, "age/spec", "v-spec").await;
    view.pull().await;
    let path = "/api/v1/documents/age/spec/sources/train/stream";
    stream(port, path, &json!({"step": [1, 2, 3], "loss": [3, 2, 1]})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream(port, path, &json!({"step": [4, 5], "loss": [0.5, 0.25]})).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let changed = next_event(&mut view, "ColumnDataChanged", deadline).await;
    let entries = changed["data"]["entries"].as_array().unwrap();
    assert!(!entries.is_empty(), "{changed}");
    for (name, column) in entries.iter().map(|e| (&e[0], &e[1])) {
        assert_eq!(column["shape"], json!([2]), "{name}: {changed}");
    }
    assert_eq!(read(port, "age/spec", "train", "step").await, [4.0, 5.0]);
    until_read(port, "age/spec", "train", "step", &[]).await;
    // The document takes rows as before.
    stream(port, path, &json!({"step": [6], "loss": [0.1]})).await;
    assert_eq!(read(port, "age/spec", "train", "step").await, [6.0]);
}
