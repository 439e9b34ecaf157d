//! plotwire's durable storage: every published document is an ordered log of
//! [`Entry`]s, numbered by the document's sequence number ("the log is the truth",
//! `docs/storage.md`).
//!
//! The [`Store`] trait is the whole contract an engine implements: append (durable when
//! the returned [`Appended`] resolves), read from a sequence number, and delete. An
//! entry of kind [`EntryKind::Publish`] holds a whole document and starts its log over:
//! the engine drops every older entry of that document in the same write; a snapshot
//! (the whole document as of a sequence number) replaces the entries up to it. Entries are
//! opaque bytes to the store, so a message log such as NATS JetStream (a stream per
//! document, the sequence number as the message's) fits the same trait.
//!
//! - [`MemoryStore`]: in memory, for tests.
//! - [`SqliteStore`]: one SQLite file in WAL mode, with group commit.
//! - [`BlockStore`]: fixed-size blocks of rows by number, in a SQLite file of their own,
//!   for level of detail's reads at pixel-column edges.

/// The format of a log row's binary buffers: [`codec::pack_buffers`] and its inverse.
mod blocks;
pub mod codec;
mod memory;
mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;

pub use blocks::{BlockReader, BlockStore, Snapshot, BLOCK_BITS, MAX_SERIES};
pub use memory::MemoryStore;
pub use sqlite::{SqliteOptions, SqliteStore, DB_FILE, LOCK_FILE};

/// What a log entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A whole document (its DocJson and spec): the log starts over here.
    Publish,
    /// Document events applied to the document as it stood after the previous entry.
    Events,
}

impl EntryKind {
    /// The name stored for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Publish => "publish",
            EntryKind::Events => "events",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(s: &str) -> Option<EntryKind> {
        match s {
            "publish" => Some(EntryKind::Publish),
            "events" => Some(EntryKind::Events),
            _ => None,
        }
    }
}

/// One change of a published document, as the server logs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// What the entry holds.
    pub kind: EntryKind,
    /// Bokeh content JSON: a DocJson with the spec for `Publish`, a PATCH-DOC's content for
    /// `Events`.
    pub content: Bytes,
    /// The binary buffers the content refers to, by id.
    pub buffers: Vec<(String, Bytes)>,
    /// The size in bytes of the elements of each of `buffers`, in the same order (8 for
    /// float64, 4 for int32 or float32; 0, or missing, when unknown): lets the store
    /// delta-encode numeric columns. A hint for packing, not stored: an entry read back
    /// from a [`SqliteStore`] has none.
    pub element_sizes: Vec<usize>,
    /// What the server keeps beside the content: the dashboard spec (JSON) the
    /// document was built from, when the entry set it.
    pub meta: Option<Bytes>,
    /// The idempotency key of the write, so that a retry after a restart gets the same
    /// answer.
    pub key: Option<String>,
    /// The row count the write answered with, if it named a source.
    pub rows: Option<u64>,
}

/// A stored entry and its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The document's sequence number after this entry.
    pub seq: u64,
    /// The entry.
    pub entry: Entry,
}

/// How hard the store works to keep what it acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every acknowledged write is on disk (fsync) first: survives a power cut.
    Full,
    /// Writes are acknowledged once written to the operating system, and synced to disk
    /// every `every_ms`: survives a crash or `kill -9` of the server, but a power cut can
    /// lose the last `every_ms` of acknowledged writes.
    Relaxed {
        /// Milliseconds between syncs.
        every_ms: u64,
    },
}

/// Why the store could not do what it was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The disk holding the data dir is full.
    #[error("the disk holding the data dir is full ({0}); free space, or lower the retention limits, and retry")]
    Full(String),
    /// Another server holds the data dir.
    #[error("the data dir {dir} is in use by another plotwire server (it holds the lock on {lock}); stop that server or pass another --data-dir")]
    Locked {
        /// The data dir.
        dir: String,
        /// Its lock file.
        lock: String,
    },
    /// The data dir cannot be created, opened or written.
    #[error("the store cannot be written: {0}")]
    Io(String),
    /// Stored data failed its checks.
    #[error("the stored data is corrupted: {0}")]
    Corrupt(String),
    /// The store has shut down.
    #[error("the store has shut down")]
    Closed,
}

/// A pending write: resolves once the write is durable (as [`Durability`] says), or
/// with the reason it failed. Dropping it does not cancel the write.
pub struct Appended(AppendedState);

enum AppendedState {
    Done(Option<Result<(), StoreError>>),
    Waiting(tokio::sync::oneshot::Receiver<Result<(), StoreError>>),
}

impl Appended {
    /// A write that has already finished with `result`.
    pub fn done(result: Result<(), StoreError>) -> Appended {
        Appended(AppendedState::Done(Some(result)))
    }

    /// A write that finishes when `done` gets its result; the sender's side is the
    /// engine's.
    pub fn channel() -> (
        tokio::sync::oneshot::Sender<Result<(), StoreError>>,
        Appended,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (tx, Appended(AppendedState::Waiting(rx)))
    }
}

impl Future for Appended {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            AppendedState::Done(result) => {
                Poll::Ready(result.take().unwrap_or(Err(StoreError::Closed)))
            }
            AppendedState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(StoreError::Closed))),
        }
    }
}

/// A durable log per published document. Appends to one document arrive in sequence
/// order, each with a sequence number above the last; appends to different documents
/// may interleave.
///
/// A log never gets a hole: once an append to a document fails, every later append to
/// it fails too, until [`Store::recover`], which the server calls once it has reloaded
/// the document from what was stored.
pub trait Store: Send + Sync {
    /// The names of the stored documents, sorted.
    fn documents(&self) -> Result<Vec<String>, StoreError>;

    /// Appends `entry` to `doc`'s log as `seq`. A `Publish` entry drops every older
    /// entry of `doc`. Resolves once durable.
    fn append(&self, doc: &str, seq: u64, entry: Entry) -> Appended;

    /// `doc`'s entries with a sequence number of at least `from`, in order.
    fn read_from(&self, doc: &str, from: u64) -> Result<Vec<Record>, StoreError>;

    /// Replaces every entry of `doc` up to `seq` by `entry`, the whole document as of
    /// `seq` (a `Publish` entry): what bounds a log's size and its replay time. Entries
    /// after `seq` stay. Resolves once durable.
    fn snapshot(&self, doc: &str, seq: u64, entry: Entry) -> Appended;

    /// Forgets `doc` and its whole log. Resolves once durable.
    fn delete(&self, doc: &str) -> Appended;

    /// Accepts appends to `doc` again after a failed one. Applies after every append
    /// made before it.
    fn recover(&self, doc: &str) -> Appended;

    /// Whether the store takes writes: the error of its last write when that failed (a
    /// full disk, an unwritable file), until a write succeeds again. For readiness
    /// checks (`/readyz`).
    fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Bytes the store takes on disk (0 for one that keeps nothing there): read from the
    /// file system, cheap enough for every metrics scrape.
    fn size_bytes(&self) -> u64 {
        0
    }
}
