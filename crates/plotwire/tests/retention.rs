//! Per-document retention across restarts, on the real `plotwire serve` process and its
//! real SQLite store: a DocJson document's `max_rows` bounds its rows in memory, after a
//! `kill -9` and on disk; `max_age` trims are logged, so a restart keeps the trimmed
//! state and the rows' ages. Every wait is bounded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use support::{column, ok, request, Server};

/// A DocJson holding the source `src` with one row of `v` and `n`.
fn doc() -> Json {
    json!({
        "version": "3.9.2",
        "title": "retention",
        "roots": [{"type": "object", "name": "ColumnDataSource", "id": "s1",
                   "attributes": {"name": "src", "data": {"type": "map", "entries": [["v", [-1]], ["n", [0.5]]]}}}]
    })
}

/// `v` counts from `from`; `n` is noise, which no codec shrinks.
fn batch(from: i64, rows: i64) -> Json {
    let n: Vec<f64> = (from..from + rows)
        .map(|i| {
            ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect();
    json!({"v": (from..from + rows).collect::<Vec<i64>>(), "n": n})
}

#[tokio::test]
async fn max_rows_bounds_a_docjson_stream_in_memory_after_restart_and_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--snapshot-bytes", "1000000"];
    let server = Server::start(dir.path(), &args).await;
    let port = server.port;
    ok(
        port,
        "PUT",
        "/api/v1/documents/kept?max_rows=10000",
        Some(&doc()),
    )
    .await;
    let (rows, batches) = (5_000i64, 200i64);
    for b in 0..batches {
        // No rollover given: max_rows is the rollover.
        let answer = ok(
            port,
            "POST",
            "/api/v1/documents/kept/sources/src/stream",
            Some(&batch(b * rows, rows)),
        )
        .await;
        assert!(answer["rows"].as_u64().unwrap() <= 10_000, "{answer}");
    }
    let last = batches * rows;
    let want: Vec<i64> = (last - 10_000..last).collect();
    assert_eq!(column(port, "kept", "src").await, want);
    // 1e6 rows went in (16 MB of column data, half of it noise); the database keeps
    // about the last snapshot and the entries after it.
    let size = |file: &str| std::fs::metadata(dir.path().join(file)).map_or(0, |m| m.len());
    let (db, wal) = (size("plotwire.sqlite3"), size("plotwire.sqlite3-wal"));
    eprintln!(
        "store after {batches} batches of {rows}: {db} bytes in the database, {wal} in the WAL"
    );
    assert!(db < 6_000_000, "the database holds {db} bytes");
    server.kill9();

    let server = Server::start(dir.path(), &args).await;
    assert_eq!(column(server.port, "kept", "src").await, want);
    // The retention came back with the document: it still caps.
    let answer = ok(
        server.port,
        "POST",
        "/api/v1/documents/kept/sources/src/stream?rollover=20000",
        Some(&batch(last, 10)),
    )
    .await;
    assert_eq!(answer["rows"], 10_000, "{answer}");
    let (status, body) = request(
        server.port,
        "PUT",
        "/api/v1/documents/kept/sources/src",
        Some(&batch(0, 10_001)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("max_rows")),
        "{body}"
    );
}

/// Waits (bounded by `within`) until `name` reads back `want`.
async fn until_column(port: u16, name: &str, want: &[i64], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = column(port, name, "src").await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} reads {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn max_age_trims_are_logged_and_a_restart_keeps_the_trimmed_state() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let port = server.port;
    let age = Duration::from_secs(3);
    ok(
        port,
        "PUT",
        "/api/v1/documents/aged?max_age=3s",
        Some(&doc()),
    )
    .await;
    let path = "/api/v1/documents/aged/sources/src/stream";
    ok(port, "POST", path, Some(&batch(0, 3))).await;
    // The published row and the first batch age out (a trim within a second past it).
    until_column(port, "aged", &[], age + Duration::from_secs(3)).await;
    let young = Instant::now();
    ok(port, "POST", path, Some(&batch(10, 2))).await;
    server.kill9();

    let server = Server::start(dir.path(), &[]).await;
    let got = column(server.port, "aged", "src").await;
    if young.elapsed() < age {
        assert_eq!(
            got,
            [10, 11],
            "the young rows are back, the trimmed ones are not"
        );
    } else {
        assert!(got.is_empty() || got == [10, 11], "{got:?}");
    }
    // They keep their logged arrival: they go `max_age` after they came, not after the
    // restart (plus at most one trim interval, 1 s, and slack for a slow machine).
    let left = (age + Duration::from_secs(3)).saturating_sub(young.elapsed());
    until_column(server.port, "aged", &[], left).await;
    let trimmed_after = young.elapsed();
    eprintln!("young rows trimmed {trimmed_after:?} after they arrived");
    assert!(trimmed_after >= age, "trimmed early: {trimmed_after:?}");
}
