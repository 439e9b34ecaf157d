//! Column buffers through the real SQLite store: a store written before the delta codecs
//! (codec ids 0, 1 and 2 only) opens and reads back identically.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use plotwire_store::{Entry, EntryKind, SqliteOptions, SqliteStore, Store, DB_FILE};

/// A data dir as `plotwire serve` wrote it at commit 1cd1a50 (before the delta codecs;
/// re-paged to 1 KiB pages with `sqlite3` to keep it small): document `old`, a publish
/// and an events entry, each holding [`old_buffers`] (the second in reverse order).
const OLD_STORE: &[u8] = include_bytes!("fixtures/store-codecs-0-1-2.sqlite3");

/// The buffers the old store holds: stored with codec 1 (shuffle8 + zstd: `0`, `3`), 2
/// (zstd: `1`) and 0 (raw: `2`).
fn old_buffers() -> Vec<(String, Bytes)> {
    let steps: Vec<u8> = (0..10_000)
        .flat_map(|i| f64::from(i).to_le_bytes())
        .collect();
    let odd: Vec<u8> = (0..10_001u32).map(|i| (i % 251) as u8).collect();
    let noise: Vec<u8> = (0..1_000u64)
        .flat_map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes())
        .collect();
    vec![
        ("0".to_owned(), Bytes::from(steps)),
        ("1".to_owned(), Bytes::from(odd)),
        ("2".to_owned(), Bytes::from_static(b"12345678")),
        ("3".to_owned(), Bytes::from(noise)),
    ]
}

#[test]
fn a_store_written_before_the_delta_codecs_reads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE), OLD_STORE).unwrap();
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    assert_eq!(store.documents().unwrap(), ["old"]);
    let log = store.read_from("old", 0).unwrap();
    let seqs: Vec<u64> = log.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2], "no entry was cut off as corrupted");
    assert_eq!(
        log[0].entry,
        Entry {
            kind: EntryKind::Publish,
            content: Bytes::from_static(b"{\"doc\":1}"),
            buffers: old_buffers(),
            key: None,
            rows: None,
            meta: Some(Bytes::from_static(b"{}")),
        }
    );
    assert_eq!(
        log[1].entry,
        Entry {
            kind: EntryKind::Events,
            content: Bytes::from_static(b"{\"events\":[]}"),
            buffers: old_buffers().into_iter().rev().collect(),
            key: Some("k".to_owned()),
            rows: Some(7),
            meta: None,
        }
    );
}
