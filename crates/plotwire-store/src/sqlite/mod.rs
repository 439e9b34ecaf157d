//! The embedded engine: one SQLite file in WAL mode under the data dir, guarded by a
//! lock file so that one server at a time uses it. Appends go to one writer thread,
//! which commits everything queued in one transaction (group commit: concurrent writers
//! share an fsync). Reads use their own connection, which WAL lets run beside writes.
//!
//! The schema (`docs/storage.md`) is plain SQL, readable with `sqlite3`. Each log row
//! carries a CRC-32 of its fields: a row that fails it is cut off with everything after
//! it, and logged, never served.

mod rows;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};

use rusqlite::{params, Connection, OpenFlags};

use crate::{Appended, Durability, Entry, Record, Store, StoreError};
use writer::{Compressors, Op};

/// The database file in the data dir.
pub const DB_FILE: &str = "plotwire.sqlite3";

/// The database's write-ahead log, beside it.
pub const WAL_FILE: &str = "plotwire.sqlite3-wal";
/// The lock file in the data dir, held while a server uses it.
pub const LOCK_FILE: &str = "plotwire.lock";

/// The schema this build writes; a data dir written by another schema is refused.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS log (
    doc TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    content BLOB NOT NULL,
    buffers BLOB NOT NULL,
    key TEXT,
    rows INTEGER,
    meta BLOB,
    crc INTEGER NOT NULL,
    PRIMARY KEY (doc, seq)
) WITHOUT ROWID;
";

/// The WAL that makes the writer checkpoint itself (64 MiB): about the most the WAL
/// grows to, when the periodic checkpoints fall behind. Smaller costs the commits that
/// pay for it: at 16 MiB, `relaxed` acknowledgements of small batches took 11 ms at p99
/// instead of 1-3 ms (the writer's checkpoint syncs the database file).
const WAL_CHECKPOINT_BYTES: i64 = 64 << 20;

/// What a checkpoint cuts the WAL file back to (16 MiB).
const WAL_KEEP_BYTES: i64 = 16 << 20;

/// How a [`SqliteStore`] is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// When a write counts as stored.
    pub durability: Durability,
    /// The most the database file may grow to, in bytes (SQLite's `max_page_count`);
    /// past it, writes fail as on a full disk. `None`: as much as the disk holds.
    pub max_bytes: Option<u64>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Full,
            max_bytes: None,
        }
    }
}

/// The SQLite [`Store`]: `<dir>/plotwire.sqlite3`.
pub struct SqliteStore {
    /// The error of the writer's last group, if it failed.
    health: writer::Health,
    dir: PathBuf,
    reader: Mutex<Connection>,
    writer: Option<mpsc::Sender<Op>>,
    thread: Option<std::thread::JoinHandle<()>>,
    stop_checkpoints: Option<mpsc::Sender<()>>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
    compressors: Compressors,
    _lock: File,
}

impl SqliteStore {
    /// Opens (or creates) the store in `dir`, which is created if missing. Fails if
    /// another process holds the data dir, or if the file is not a plotwire store.
    pub fn open(dir: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let durability = options.durability;
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Io(format!("cannot create the data dir {}: {e}", dir.display()))
        })?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: dir.display().to_string(),
                    lock: lock_path.display().to_string(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Io(format!(
                    "cannot lock {}: {e}",
                    lock_path.display()
                )))
            }
        }
        let db = dir.join(DB_FILE);
        let write = open_connection(&db, durability)?;
        prepare_schema(&write, &db)?;
        let page: i64 = write
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(|e| rows::error(&db, e))?;
        if let Some(max) = options.max_bytes {
            let pages = (i64::try_from(max).unwrap_or(i64::MAX) / page.max(1)).max(1);
            write
                .execute_batch(&format!("PRAGMA max_page_count = {pages};"))
                .map_err(|e| rows::error(&db, e))?;
        }
        let read = Connection::open_with_flags(
            &db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| rows::error(&db, e))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let compressors = Compressors::start(cores.min(4)).map_err(|e| {
            StoreError::Io(format!("cannot start the store's compressor threads: {e}"))
        })?;
        // Checkpoints run on their own connection and thread, so that a commit does not
        // wait for one. Under sustained writes, or on a machine too busy to run them in
        // time, they fall behind the end of the WAL, so the writer checkpoints itself
        // once the WAL holds WAL_CHECKPOINT_BYTES: that bounds the WAL whatever the load.
        write
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = {};",
                (WAL_CHECKPOINT_BYTES / page.max(1)).max(1)
            ))
            .map_err(|e| rows::error(&db, e))?;
        let check = open_connection(&db, durability)?;
        let every = match durability {
            Durability::Full => std::time::Duration::from_millis(100),
            Durability::Relaxed { every_ms } => std::time::Duration::from_millis(every_ms.max(1)),
        };
        let (stop_checkpoints, stop) = mpsc::channel();
        let checkpointer = std::thread::Builder::new()
            .name("plotwire-checkpoint".into())
            .spawn(move || writer::checkpoints(check, stop, every))
            .map_err(|e| StoreError::Io(format!("cannot start the store's checkpoints: {e}")))?;
        let (tx, rx) = mpsc::channel();
        let health = writer::Health::default();
        let thread = std::thread::Builder::new()
            .name("plotwire-store".into())
            .spawn({
                let health = health.clone();
                move || writer::run(write, rx, health)
            })
            .map_err(|e| StoreError::Io(format!("cannot start the store's writer: {e}")))?;
        Ok(SqliteStore {
            health,
            dir: dir.to_owned(),
            reader: Mutex::new(read),
            writer: Some(tx),
            thread: Some(thread),
            stop_checkpoints: Some(stop_checkpoints),
            checkpointer: Some(checkpointer),
            compressors,
            _lock: lock,
        })
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `doc`'s log in data dir `dir`, read on a read-only connection beside a server
    /// that may be running (WAL readers see the last commit). Stops at the first entry
    /// that fails its checks, as a restart would.
    pub fn read_offline(dir: &Path, doc: &str) -> Result<Vec<Record>, StoreError> {
        let db = existing_db(dir)?;
        let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| rows::error(&db, e))?;
        Ok(rows::read_log(&conn, &db, doc, 0)?.records)
    }

    /// Compacts the store in data dir `dir` by hand: hands free pages back to the file
    /// system and empties the WAL. Needs the data dir to itself (a running server
    /// compacts after its snapshots on its own). Returns the bytes of the store's files
    /// before and after.
    pub fn compact(dir: &Path) -> Result<(u64, u64), StoreError> {
        let files = |dir: &Path| -> u64 {
            [DB_FILE, WAL_FILE]
                .iter()
                .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
                .map(|m| m.len())
                .sum()
        };
        let before = files(dir);
        let store = SqliteStore::open(dir, SqliteOptions::default())?;
        let db = dir.join(DB_FILE);
        let conn = Connection::open(&db).map_err(|e| rows::error(&db, e))?;
        conn.execute_batch("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(|e| rows::error(&db, e))?;
        drop(conn);
        drop(store);
        Ok((before, files(dir)))
    }

    /// Writes a consistent copy of the store in data dir `from` into the new data dir
    /// `to`, while a server may be using `from` (SQLite's `VACUUM INTO` reads one
    /// snapshot of the WAL). `to` must not hold a store yet. Returns the copy's size.
    pub fn backup(from: &Path, to: &Path) -> Result<u64, StoreError> {
        let db = existing_db(from)?;
        std::fs::create_dir_all(to).map_err(|e| {
            StoreError::Io(format!(
                "cannot create the backup dir {}: {e}",
                to.display()
            ))
        })?;
        let target = to.join(DB_FILE);
        if target.exists() {
            return Err(StoreError::Io(format!(
                "{} exists already: back up into an empty directory",
                target.display()
            )));
        }
        let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| rows::error(&db, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| rows::error(&db, e))?;
        let text = target.to_str().ok_or_else(|| {
            StoreError::Io(format!("the backup path {} is not UTF-8", target.display()))
        })?;
        conn.execute("VACUUM INTO ?1", params![text])
            .map_err(|e| rows::error(&target, e))?;
        std::fs::metadata(&target)
            .map(|m| m.len())
            .map_err(|e| StoreError::Io(format!("{}: {e}", target.display())))
    }

    fn send(
        &self,
        op: impl FnOnce(tokio::sync::oneshot::Sender<Result<(), StoreError>>) -> Op,
    ) -> Appended {
        let (done, appended) = Appended::channel();
        match &self.writer {
            Some(tx) if tx.send(op(done)).is_ok() => appended,
            _ => Appended::done(Err(StoreError::Closed)),
        }
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while reading leaves the connection usable: it holds no transaction.
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued, sync and stop.
        self.writer = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.stop_checkpoints = None;
        if let Some(thread) = self.checkpointer.take() {
            let _ = thread.join();
        }
    }
}

/// The database file of data dir `dir`, which must exist (for the tools that read a
/// store without opening it as a server does).
fn existing_db(dir: &Path) -> Result<PathBuf, StoreError> {
    let db = dir.join(DB_FILE);
    if !db.exists() {
        return Err(StoreError::Io(format!(
            "{} does not exist: is {} a plotwire data dir?",
            db.display(),
            dir.display()
        )));
    }
    Ok(db)
}

fn open_connection(db: &Path, durability: Durability) -> Result<Connection, StoreError> {
    let fresh = std::fs::metadata(db).map_or(true, |m| m.len() == 0);
    let conn = Connection::open(db).map_err(|e| rows::error(db, e))?;
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Relaxed { .. } => "NORMAL",
    };
    // The page size and auto_vacuum must be set before the first table is made. They
    // are set only then: on an existing file, setting auto_vacuum writes a transaction,
    // which on a full disk fails, and the store must open there to serve what it holds.
    if fresh {
        conn.execute_batch("PRAGMA page_size = 65536; PRAGMA auto_vacuum = INCREMENTAL;")
            .map_err(|e| rows::error(db, e))?;
    }
    // The WAL is cut back to WAL_KEEP_BYTES after each checkpoint.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 5000; PRAGMA journal_size_limit = {WAL_KEEP_BYTES};"
    ))
    .map_err(|e| rows::error(db, e))?;
    Ok(conn)
}

fn prepare_schema(conn: &Connection, db: &Path) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA).map_err(|e| rows::error(db, e))?;
    let version: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
            r.get(0)
        })
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(rows::error(db, e)),
        })?;
    match version {
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                params![SCHEMA_VERSION.to_string()],
            )
            .map_err(|e| rows::error(db, e))?;
            Ok(())
        }
        Some(v) if v == SCHEMA_VERSION.to_string() => Ok(()),
        Some(v) => Err(StoreError::Corrupt(format!(
            "{} has schema version {v}, this plotwire reads version {SCHEMA_VERSION}",
            db.display()
        ))),
    }
}

impl Store for SqliteStore {
    /// The database file and its write-ahead log.
    fn size_bytes(&self) -> u64 {
        [DB_FILE, WAL_FILE]
            .iter()
            .filter_map(|f| std::fs::metadata(self.dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    }

    fn health(&self) -> Result<(), StoreError> {
        match self.health.lock() {
            Ok(last) => last.clone().map_or(Ok(()), Err),
            Err(_) => Err(StoreError::Io("the store's writer stopped".into())),
        }
    }

    fn documents(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.reader();
        let db = self.dir.join(DB_FILE);
        let mut stmt = conn
            .prepare_cached("SELECT name FROM documents ORDER BY name")
            .map_err(|e| rows::error(&db, e))?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| rows::error(&db, e))?;
        names
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| rows::error(&db, e))
    }

    fn append(&self, doc: &str, seq: u64, entry: Entry) -> Appended {
        let doc = doc.to_owned();
        let packed = self.compressors.pack(&entry);
        self.send(|done| Op::Append {
            doc,
            seq,
            entry,
            packed,
            done,
        })
    }

    fn read_from(&self, doc: &str, from: u64) -> Result<Vec<Record>, StoreError> {
        let db = self.dir.join(DB_FILE);
        let read = {
            let conn = self.reader();
            rows::read_log(&conn, &db, doc, from)?
        };
        if let Some(bad) = read.corrupt_from {
            tracing::error!(
                document = doc,
                seq = bad,
                kept = read.records.len(),
                "a stored log entry failed its checksum: cutting the log off there"
            );
            let doc = doc.to_owned();
            drop(self.send(|done| Op::CutFrom {
                doc,
                seq: bad,
                done,
            }));
        }
        Ok(read.records)
    }

    fn snapshot(&self, doc: &str, seq: u64, entry: Entry) -> Appended {
        let doc = doc.to_owned();
        let packed = self.compressors.pack(&entry);
        self.send(|done| Op::Snapshot {
            doc,
            seq,
            entry,
            packed,
            done,
        })
    }

    fn delete(&self, doc: &str) -> Appended {
        let doc = doc.to_owned();
        self.send(|done| Op::Delete { doc, done })
    }

    fn recover(&self, doc: &str) -> Appended {
        let doc = doc.to_owned();
        self.send(|done| Op::Recover { doc, done })
    }
}
