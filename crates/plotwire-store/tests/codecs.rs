//! Column buffers through the real SQLite store: a store written before the delta codecs
//! (codec ids 0, 1 and 2 only) opens and reads back identically, and buffers whose
//! element width the store is told are delta-encoded where that pays, and read back
//! bit for bit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use plotwire_store::{Entry, EntryKind, SqliteOptions, SqliteStore, Store, DB_FILE};

/// The codec byte and stored length of each buffer of `doc`'s first log row, read with
/// SQL from the file.
fn stored_codecs(dir: &std::path::Path, doc: &str) -> Vec<(u8, usize)> {
    let db = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    let blob: Vec<u8> = db
        .query_row(
            "SELECT buffers FROM log WHERE doc = ?1 ORDER BY seq LIMIT 1",
            [doc],
            |r| r.get(0),
        )
        .unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at < blob.len() {
        let id_len = u32::from_le_bytes(blob[at..at + 4].try_into().unwrap()) as usize;
        at += 4 + id_len;
        let stored = u64::from_le_bytes(blob[at + 9..at + 17].try_into().unwrap()) as usize;
        out.push((blob[at], stored));
        at += 17 + stored;
    }
    out
}

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
            element_sizes: Vec::new(),
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
            element_sizes: Vec::new(),
            key: Some("k".to_owned()),
            rows: Some(7),
            meta: None,
        }
    );
}

#[tokio::test]
async fn told_widths_delta_encode_what_pays_and_read_back_bit_for_bit() {
    // splitmix64's finaliser: a pseudo-random word per index.
    let mix = |i: u64| {
        let z = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^ (z >> 27)
    };
    // Milliseconds 1 s apart, with up to 100 ms of jitter.
    let stamps: Vec<u8> = (0..50_000u64)
        .flat_map(|i| (1.796e12 + 1000.0 * i as f64 + (mix(i) % 101) as f64).to_le_bytes())
        .collect();
    // An integer random walk.
    let readings: Vec<u8> = (0..50_000u64)
        .scan(0i32, |w, i| {
            *w += (mix(i + 500_000) % 5) as i32 - 2;
            Some(*w)
        })
        .flat_map(i32::to_le_bytes)
        .collect();
    let noise: Vec<u8> = (0..50_000u64)
        .flat_map(|i| (mix(i + 1_000_000) >> 12).to_le_bytes())
        .collect();
    let buffers = vec![
        ("t".to_owned(), Bytes::from(stamps)),
        ("r".to_owned(), Bytes::from(readings)),
        ("n".to_owned(), Bytes::from(noise)),
    ];
    let entry = |element_sizes: Vec<usize>| Entry {
        kind: EntryKind::Publish,
        content: Bytes::from_static(b"{\"doc\":1}"),
        buffers: buffers.clone(),
        element_sizes,
        key: None,
        rows: None,
        meta: None,
    };
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        store.append("told", 1, entry(vec![8, 4, 8])).await.unwrap();
        store.append("unknown", 1, entry(Vec::new())).await.unwrap();
    }
    let told = stored_codecs(dir.path(), "told");
    let unknown = stored_codecs(dir.path(), "unknown");
    let codecs = |b: &[(u8, usize)]| b.iter().map(|(c, _)| *c).collect::<Vec<u8>>();
    // 4: zig-zag delta of 8-byte words; 5: of 4-byte words; 1: the 8-byte shuffle.
    assert_eq!(codecs(&told), [4, 5, 1], "noise is not delta-encoded");
    assert_eq!(codecs(&unknown), [1, 1, 1], "as before the delta codecs");
    for (i, name) in ["timestamps", "readings"].iter().enumerate() {
        assert!(
            told[i].1 * 3 < unknown[i].1 * 2,
            "{name}: {} bytes told, {} unknown",
            told[i].1,
            unknown[i].1
        );
    }
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    for doc in ["told", "unknown"] {
        let log = store.read_from(doc, 0).unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].entry.buffers, buffers, "{doc}");
        assert!(log[0].entry.element_sizes.is_empty(), "a hint, not stored");
    }
}
