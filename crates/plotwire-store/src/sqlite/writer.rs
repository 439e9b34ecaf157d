//! The writer thread: takes everything queued, writes it in one transaction and
//! answers every waiter with the outcome (group commit). With `Durability::Full` the
//! commit fsyncs the WAL; with `Relaxed`, the checkpoints ([`checkpoints`], on their
//! own thread) sync it every so often.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection};
use tokio::sync::oneshot;

use super::rows;
use crate::{Entry, EntryKind, StoreError};

/// At most this many operations share one transaction.
const MAX_GROUP: usize = 4096;
/// A transaction stops taking more operations past this many bytes.
const MAX_GROUP_BYTES: usize = 256 << 20;

/// An entry's buffers as they will be stored, packed (shuffled and compressed) by one
/// of the compressor threads while earlier entries are being written.
pub struct Packed(mpsc::Receiver<Vec<u8>>);

impl Packed {
    /// Waits for the packed buffers; packs them here if the compressors are gone.
    fn wait(&self, entry: &Entry) -> Vec<u8> {
        self.0
            .recv()
            .unwrap_or_else(|_| crate::codec::pack_buffers(&entry.buffers, &entry.element_sizes))
    }
}

/// A packing job for the compressor threads: buffers, their element sizes, where to
/// send them packed.
type Job = (
    Vec<(String, bytes::Bytes)>,
    Vec<usize>,
    mpsc::SyncSender<Vec<u8>>,
);

/// Threads that pack entries' buffers in parallel, ahead of the writer, which stores
/// them in order.
pub struct Compressors {
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Compressors {
    /// Starts `n` compressor threads (at least one).
    pub fn start(n: usize) -> std::io::Result<Compressors> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let rx = rx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("plotwire-pack-{i}"))
                    .spawn(move || loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((buffers, sizes, reply)) = job else {
                            break;
                        };
                        let _ = reply.send(crate::codec::pack_buffers(&buffers, &sizes));
                    })?,
            );
        }
        Ok(Compressors {
            jobs: Some(jobs),
            threads,
        })
    }

    /// Starts packing `entry`'s buffers.
    pub fn pack(&self, entry: &Entry) -> Packed {
        let (tx, rx) = mpsc::sync_channel(1);
        if let Some(jobs) = &self.jobs {
            // A failed send drops `tx`: the writer then packs the buffers itself.
            let _ = jobs.send((entry.buffers.clone(), entry.element_sizes.clone(), tx));
        }
        Packed(rx)
    }
}

impl Drop for Compressors {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One queued write.
pub enum Op {
    /// Append an entry (a `Publish` entry drops the document's older entries).
    Append {
        doc: String,
        seq: u64,
        entry: Entry,
        packed: Packed,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Replace a document's entries up to `seq` by a whole-document entry.
    Snapshot {
        doc: String,
        seq: u64,
        entry: Entry,
        packed: Packed,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Forget a document.
    Delete {
        doc: String,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Take appends to a document again after a failed one.
    Recover {
        doc: String,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Drop a document's entries from `seq` on (a corrupted tail).
    CutFrom {
        doc: String,
        seq: u64,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
}

impl Op {
    fn size(&self) -> usize {
        match self {
            Op::Append { entry, .. } | Op::Snapshot { entry, .. } => {
                entry.content.len() + entry.buffers.iter().map(|(_, b)| b.len()).sum::<usize>()
            }
            Op::Delete { .. } | Op::Recover { .. } | Op::CutFrom { .. } => 0,
        }
    }

    fn doc(&self) -> &str {
        match self {
            Op::Append { doc, .. }
            | Op::Snapshot { doc, .. }
            | Op::Delete { doc, .. }
            | Op::Recover { doc, .. }
            | Op::CutFrom { doc, .. } => doc,
        }
    }

    fn finish(self, result: Result<(), StoreError>) {
        let done = match self {
            Op::Append { done, .. }
            | Op::Snapshot { done, .. }
            | Op::Delete { done, .. }
            | Op::Recover { done, .. }
            | Op::CutFrom { done, .. } => done,
        };
        let _ = done.send(result);
    }
}

/// Runs until every sender is gone. Checkpoints are not its job ([`checkpoints`]): a
/// commit never waits for one.
/// The outcome of the writer's last group of writes: its error, if it failed.
pub type Health = std::sync::Arc<std::sync::Mutex<Option<StoreError>>>;

pub fn run(conn: Connection, rx: Receiver<Op>, health: Health) {
    let db = conn
        .path()
        .map(std::path::PathBuf::from)
        .unwrap_or_default();
    // Documents whose last write failed: they take no appends until recovered, so that
    // no log ever gets a hole.
    let mut failed: HashSet<String> = HashSet::new();
    while let Ok(first) = rx.recv() {
        let mut bytes = first.size();
        let mut group = vec![first];
        while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(op) => {
                    bytes += op.size();
                    group.push(op);
                }
                Err(_) => break,
            }
        }
        let mut refused = Vec::new();
        let mut group: Vec<Op> = group
            .into_iter()
            .filter_map(|op| match op {
                Op::Recover { doc, done } => {
                    failed.remove(&doc);
                    let _ = done.send(Ok(()));
                    None
                }
                Op::Delete { ref doc, .. } => {
                    // A deleted document has no log left to keep whole.
                    failed.remove(doc);
                    Some(op)
                }
                Op::Append { .. } | Op::Snapshot { .. } if failed.contains(op.doc()) => {
                    refused.push(op);
                    None
                }
                op => Some(op),
            })
            .collect();
        for op in refused {
            let doc = op.doc().to_owned();
            op.finish(Err(StoreError::Io(format!(
                "an earlier write to {doc:?} failed; it takes no more until it is recovered"
            ))));
        }
        if group.is_empty() {
            continue;
        }
        let drops = group.iter().any(|op| match op {
            Op::Append { entry, .. } => entry.kind == EntryKind::Publish,
            Op::Snapshot { .. } | Op::Delete { .. } | Op::CutFrom { .. } => true,
            Op::Recover { .. } => false,
        });
        let result = write_group(&conn, &group).map_err(|e| rows::error(&db, e));
        if drops && result.is_ok() {
            // Hands the pages of dropped entries back to the file system.
            if let Err(e) = conn.execute_batch("PRAGMA incremental_vacuum;") {
                tracing::warn!(error = %rows::error(&db, e), "store compaction failed; the next one retries");
            }
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, writes = group.len(), "store write failed: nothing in it is acknowledged");
            failed.extend(group.iter().map(|op| op.doc().to_owned()));
        }
        if let Ok(mut last) = health.lock() {
            *last = result.as_ref().err().cloned();
        }
        for op in group.drain(..) {
            op.finish(result.clone());
        }
    }
}

/// Copies the WAL into the database file every `every` on its own connection, beside
/// the writer, until `stop` closes; then once more. Each checkpoint syncs the WAL and
/// the database file: with `Durability::Relaxed` it is what makes writes durable
/// against a power cut, and in every mode it keeps the WAL short.
pub fn checkpoints(conn: Connection, stop: Receiver<()>, every: Duration) {
    let db = conn
        .path()
        .map(std::path::PathBuf::from)
        .unwrap_or_default();
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        sync(&conn, &db);
    }
    sync(&conn, &db);
}

/// Writes the WAL through to the database file, syncing both.
fn sync(conn: &Connection, db: &std::path::Path) {
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
        tracing::warn!(error = %rows::error(db, e), "store sync failed; the next one retries");
    }
}

fn write_group(conn: &Connection, group: &[Op]) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = group.iter().try_for_each(|op| write_one(conn, op));
    match result {
        Ok(()) => conn.execute_batch("COMMIT").inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        }),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn write_one(conn: &Connection, op: &Op) -> rusqlite::Result<()> {
    match op {
        Op::Append {
            doc,
            seq,
            entry,
            packed,
            ..
        } => {
            let buffers = packed.wait(entry);
            if entry.kind == EntryKind::Publish {
                conn.prepare_cached("DELETE FROM log WHERE doc = ?1")?
                    .execute(params![doc])?;
                conn.prepare_cached("INSERT OR IGNORE INTO documents (name) VALUES (?1)")?
                    .execute(params![doc])?;
            }
            rows::insert(conn, doc, *seq, entry, &buffers)
        }
        Op::Snapshot {
            doc,
            seq,
            entry,
            packed,
            ..
        } => {
            let buffers = packed.wait(entry);
            conn.prepare_cached("DELETE FROM log WHERE doc = ?1 AND seq <= ?2")?
                .execute(params![doc, i64::try_from(*seq).unwrap_or(i64::MAX)])?;
            rows::insert(conn, doc, *seq, entry, &buffers)
        }
        Op::Delete { doc, .. } => {
            conn.prepare_cached("DELETE FROM log WHERE doc = ?1")?
                .execute(params![doc])?;
            conn.prepare_cached("DELETE FROM documents WHERE name = ?1")?
                .execute(params![doc])?;
            Ok(())
        }
        Op::Recover { .. } => Ok(()),
        Op::CutFrom { doc, seq, .. } => {
            conn.prepare_cached("DELETE FROM log WHERE doc = ?1 AND seq >= ?2")?
                .execute(params![doc, i64::try_from(*seq).unwrap_or(i64::MAX)])?;
            Ok(())
        }
    }
}
