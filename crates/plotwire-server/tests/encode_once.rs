#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]
//! Encode once, send many: a producer change to a published document with many views is
//! encoded once, and every view receives the same bytes. Alone in its test binary, so
//! that no other test encodes meanwhile.

mod support;

use std::sync::atomic::Ordering;

use plotwire_server::owner::PATCH_ENCODES;
use serde_json::json;
use support::*;

#[tokio::test]
async fn each_change_is_encoded_once_for_all_views() {
    let port = start(config()).await;
    let doc = json!({"roots": [{"type": "object", "name": "ColumnDataSource", "id": "s", "attributes": {
        "name": "src", "data": {"type": "map", "entries": [["x", []]]}}}]});
    let (status, _) = http_json(port, "PUT", "/api/v1/documents/many", &doc).await;
    assert_eq!(status, 201);
    let mut views = Vec::new();
    for i in 0..50 {
        views.push(connect_view(port, "many", &format!("view-{i}")).await);
    }
    let before = PATCH_ENCODES.load(Ordering::Relaxed);
    let batches: u32 = 10;
    for b in 0..batches {
        let (status, _) = http_json(
            port,
            "POST",
            "/api/v1/documents/many/sources/src/stream",
            &json!({"x": [f64::from(b)]}),
        )
        .await;
        assert_eq!(status, 200);
    }
    for v in &mut views {
        for _ in 0..batches {
            assert_eq!(v.expect("PATCH-DOC").await.kinds(), vec!["ColumnsStreamed"]);
        }
    }
    let encodes = PATCH_ENCODES.load(Ordering::Relaxed) - before;
    assert_eq!(
        encodes,
        u64::from(batches),
        "one encode per batch for 50 views"
    );
}
