//! The store contract, on both engines, and the SQLite engine's own promises: it
//! survives a reopen, refuses a second server, cuts a corrupted tail off, and refuses
//! writes with a clear error when full.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use bytes::Bytes;
use plotwire_store::{
    Durability, Entry, EntryKind, MemoryStore, SqliteOptions, SqliteStore, Store, StoreError,
};

fn entry(kind: EntryKind, content: &str, key: Option<&str>) -> Entry {
    Entry {
        kind,
        content: Bytes::from(content.to_owned()),
        buffers: vec![("0".into(), Bytes::from(vec![7u8; 16]))],
        element_sizes: Vec::new(),
        key: key.map(str::to_owned),
        rows: Some(3),
        meta: key.map(|_| Bytes::from_static(b"{\"spec\":1}")),
    }
}

async fn contract(store: &dyn Store) {
    assert!(store.documents().unwrap().is_empty());
    store
        .append("a", 1, entry(EntryKind::Publish, "doc1", None))
        .await
        .unwrap();
    store
        .append("a", 2, entry(EntryKind::Events, "ev2", Some("k2")))
        .await
        .unwrap();
    store
        .append("b", 1, entry(EntryKind::Publish, "docb", None))
        .await
        .unwrap();
    store
        .append("a", 3, entry(EntryKind::Events, "ev3", None))
        .await
        .unwrap();
    assert_eq!(store.documents().unwrap(), ["a", "b"]);
    let a = store.read_from("a", 0).unwrap();
    let seqs: Vec<u64> = a.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(a[1].entry, entry(EntryKind::Events, "ev2", Some("k2")));
    assert_eq!(store.read_from("a", 3).unwrap().len(), 1);
    // A sequence number that does not go up is refused, and so is everything after it
    // until the document is recovered: a log never gets a hole.
    assert!(store
        .append("a", 3, entry(EntryKind::Events, "again", None))
        .await
        .is_err());
    assert!(store
        .append("a", 9, entry(EntryKind::Events, "after", None))
        .await
        .is_err());
    store.recover("a").await.unwrap();
    assert_eq!(store.read_from("a", 0).unwrap().len(), 3);
    // A publish starts the log over.
    store
        .append("a", 4, entry(EntryKind::Publish, "doc4", None))
        .await
        .unwrap();
    let a = store.read_from("a", 0).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].seq, 4);
    // A snapshot replaces the entries up to its sequence number, and only those.
    for seq in 5..=7 {
        store
            .append("a", seq, entry(EntryKind::Events, "ev", None))
            .await
            .unwrap();
    }
    store
        .snapshot("a", 6, entry(EntryKind::Publish, "snap6", Some("kept")))
        .await
        .unwrap();
    let a = store.read_from("a", 0).unwrap();
    let seqs: Vec<u64> = a.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [6, 7]);
    assert_eq!(a[0].entry, entry(EntryKind::Publish, "snap6", Some("kept")));
    store.delete("a").await.unwrap();
    assert_eq!(store.documents().unwrap(), ["b"]);
    assert!(store.read_from("a", 0).unwrap().is_empty());
    // A document whose write failed, then deleted, can be published again.
    assert!(store
        .append("b", 1, entry(EntryKind::Events, "again", None))
        .await
        .is_err());
    store.delete("b").await.unwrap();
    store
        .append("b", 0, entry(EntryKind::Publish, "new b", None))
        .await
        .unwrap();
    assert_eq!(store.read_from("b", 0).unwrap().len(), 1);
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    contract(&MemoryStore::new()).await;
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap()).await;
}

#[tokio::test]
async fn what_was_acknowledged_is_there_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    for durability in [Durability::Full, Durability::Relaxed { every_ms: 50 }] {
        let options = SqliteOptions {
            durability,
            max_bytes: None,
        };
        {
            let store = SqliteStore::open(dir.path(), options).unwrap();
            store
                .append("d", 1, entry(EntryKind::Publish, "doc", None))
                .await
                .unwrap();
            let pending: Vec<_> = (2..=200)
                .map(|seq| {
                    store.append("d", seq, entry(EntryKind::Events, &format!("e{seq}"), None))
                })
                .collect();
            for p in pending {
                p.await.unwrap();
            }
        }
        let store = SqliteStore::open(dir.path(), options).unwrap();
        let log = store.read_from("d", 0).unwrap();
        assert_eq!(log.len(), 200, "{durability:?}");
        assert!(log.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        assert_eq!(log[199].entry.content, Bytes::from_static(b"e200"));
        store.delete("d").await.unwrap();
    }
}

/// The WAL stays under 64 MiB (and one entry) however much is written, even when the
/// periodic checkpoints fall behind (here they never run: a slow or busy machine): the
/// writer checkpoints itself before the WAL grows past that.
#[tokio::test]
async fn the_wal_stays_bounded_when_the_periodic_checkpoints_fall_behind() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        durability: Durability::Relaxed {
            every_ms: 3_600_000,
        },
        max_bytes: None,
    };
    let store = SqliteStore::open(dir.path(), options).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = |n: usize| -> Bytes {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    let wal = dir.path().join("plotwire.sqlite3-wal");
    let mut largest = 0;
    for seq in 1..=600u64 {
        let mut e = entry(EntryKind::Events, "{}", None);
        e.buffers = vec![("0".into(), noise(200_000))];
        store.append("d", seq, e).await.unwrap();
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    assert!(
        largest <= (64 << 20) + (1 << 20),
        "120 MB written; the WAL reached {largest} bytes"
    );
    assert_eq!(store.read_from("d", 0).unwrap().len(), 600);
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    match SqliteStore::open(dir.path(), SqliteOptions::default()) {
        Err(e @ StoreError::Locked { .. }) => {
            assert!(
                e.to_string().contains("in use by another plotwire server"),
                "{e}"
            )
        }
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second store opened the same data dir"),
    }
}

#[tokio::test]
async fn a_corrupted_entry_is_cut_off_with_everything_after_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        store
            .append("d", 1, entry(EntryKind::Publish, "doc", None))
            .await
            .unwrap();
        for seq in 2..=5 {
            store
                .append("d", seq, entry(EntryKind::Events, "e", None))
                .await
                .unwrap();
        }
    }
    {
        let db = rusqlite_open(dir.path());
        db.execute("UPDATE log SET content = X'00' WHERE seq = 3", [])
            .unwrap();
    }
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    let seqs: Vec<u64> = store
        .read_from("d", 0)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [1, 2], "served up to the bad entry only");
    // The tail is gone for good: writing on from 3 works.
    store
        .append("d", 3, entry(EntryKind::Events, "new", None))
        .await
        .unwrap();
    assert_eq!(store.read_from("d", 0).unwrap().len(), 3);
}

#[test]
fn a_file_that_is_not_a_store_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(plotwire_store::DB_FILE), vec![0x55u8; 8192]).unwrap();
    match SqliteStore::open(dir.path(), SqliteOptions::default()) {
        Err(StoreError::Corrupt(text)) => assert!(text.contains("plotwire.sqlite3"), "{text}"),
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("opened a file that is not a database"),
    }
}

#[tokio::test]
async fn a_full_store_refuses_writes_and_keeps_what_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        durability: Durability::Full,
        max_bytes: Some(256 << 10),
    };
    let store = SqliteStore::open(dir.path(), options).unwrap();
    store
        .append("d", 1, entry(EntryKind::Publish, "doc", None))
        .await
        .unwrap();
    let big = Entry {
        // Noise, which no codec shrinks.
        buffers: vec![(
            "0".into(),
            Bytes::from(
                (0..64u64 << 10)
                    .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
                    .collect::<Vec<u8>>(),
            ),
        )],
        ..entry(EntryKind::Events, "big", None)
    };
    let mut stored = 1;
    let mut refused = None;
    for seq in 2..100 {
        match store.append("d", seq, big.clone()).await {
            Ok(()) => stored += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    match refused {
        Some(e @ StoreError::Full(_)) => assert!(e.to_string().contains("full"), "{e}"),
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(store.read_from("d", 0).unwrap().len(), stored);
}

#[test]
fn a_data_dir_that_cannot_be_made_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taken");
    std::fs::write(&file, b"not a directory").unwrap();
    match SqliteStore::open(&file.join("data"), SqliteOptions::default()) {
        Err(e @ StoreError::Io(_)) => assert!(e.to_string().contains("taken"), "{e}"),
        Err(e) => panic!("expected Io, got {e}"),
        Ok(_) => panic!("opened a store under a file"),
    }
}

fn rusqlite_open(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(plotwire_store::DB_FILE)).unwrap()
}
