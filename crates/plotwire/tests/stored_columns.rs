//! Column data through the real `plotwire serve` and its store, as the codec packs it
//! (delta-encoded where that pays: datetimes, integer readings; shuffled for noise):
//! after a `kill -9` and a restart every value reads back bit for bit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value as Json};
use support::{ok, Server};

/// splitmix64's finaliser: a pseudo-random word per index.
fn mix(i: u64) -> u64 {
    let z = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 27)
}

/// Rows `from..from + rows`: `t` milliseconds 1 s apart with up to 100 ms of jitter,
/// `n` an integer random walk going on from `walk`, `y` noise in [0, 1).
fn rows(from: u64, rows: u64, walk: &mut i64) -> Json {
    let t: Vec<f64> = (from..from + rows)
        .map(|i| 1.796e12 + 1000.0 * i as f64 + (mix(i) % 101) as f64)
        .collect();
    let n: Vec<i64> = (from..from + rows)
        .map(|i| {
            *walk += (mix(i + (1 << 40)) % 5) as i64 - 2;
            *walk
        })
        .collect();
    let y: Vec<f64> = (from..from + rows)
        .map(|i| (mix(i + (1 << 41)) >> 11) as f64 / (1u64 << 53) as f64)
        .collect();
    json!({"t": t, "n": n, "y": y})
}

#[tokio::test]
async fn datetime_integer_and_noise_columns_read_back_bit_for_bit_after_kill_9() {
    let spec = json!({
        "title": "columns",
        "sources": {"s": {"columns": {"t": "datetime", "n": "int32", "y": "float64"}}},
        "plots": {"p": {"kind": "line", "source": "s", "x": "t", "y": "y"}},
        "layout": {"grid": {"p": [0, 0, 1, 1]}}
    });
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let port = server.port;
    ok(port, "PUT", "/api/v1/documents/cols", Some(&spec)).await;
    let mut walk = 0;
    let mut sent = Vec::new();
    // Batches of 5000 rows: every column's buffer is past the 4 KiB the codec packs.
    for b in 0..4 {
        let batch = rows(b * 5000, 5000, &mut walk);
        ok(
            port,
            "POST",
            "/api/v1/documents/cols/sources/s/stream",
            Some(&batch),
        )
        .await;
        sent.push(batch);
    }
    let live = ok(port, "GET", "/api/v1/documents/cols/sources/s", None).await;
    server.kill9();

    let server = Server::start(dir.path(), &[]).await;
    let read = ok(server.port, "GET", "/api/v1/documents/cols/sources/s", None).await;
    assert_eq!(read["rows"], json!(20_000));
    for column in ["t", "n", "y"] {
        let expected: Vec<Json> = sent
            .iter()
            .flat_map(|b| b[column].as_array().unwrap().clone())
            .collect();
        let got = read["data"][column].as_array().unwrap();
        assert_eq!(got.len(), expected.len(), "{column}");
        // Compared as numbers: JSON writes a float in its shortest round-trip form.
        let same = got
            .iter()
            .zip(&expected)
            .all(|(a, b)| a.as_f64().map(f64::to_bits) == b.as_f64().map(f64::to_bits));
        assert!(same, "{column} changed across the restart");
        assert_eq!(read["data"][column], live["data"][column], "{column}");
    }
}
