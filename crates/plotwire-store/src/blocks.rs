//! Fixed-size blocks of rows by number, in their own SQLite file: what level of detail
//! reads when a view's pixel-column edge falls inside a bucket (`docs/lod.md`, *Rows in
//! the store*). A query needs one block per column edge, thousands of random reads, so
//! each block is one row of a rowid table (one B-tree descent), the file's pages are
//! small (4 KiB, so a read touches few bytes) and readers map the file instead of
//! copying its pages.
//!
//! Blocks are opaque bytes here; `plotwire-lod` gives them their layout.

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::StoreError;

/// The most series one file holds: a block's key is its series' number times
/// 2^[`BLOCK_BITS`] plus its own.
pub const MAX_SERIES: u32 = 1 << (63 - BLOCK_BITS);
/// Bits of a block's number within its series: 2^40 blocks, 1.4e14 rows of 128.
pub const BLOCK_BITS: u32 = 40;
/// Bytes a reader maps of the file (SQLite's `mmap_size`).
const MAP_BYTES: u64 = 1 << 40;

/// A file of blocks, by series and number. One writer (this value) and any number of
/// [`BlockReader`]s, each on its own connection (SQLite's WAL mode lets them read while
/// the writer writes).
pub struct BlockStore {
    conn: Connection,
    path: std::path::PathBuf,
}

/// Reads blocks from a [`BlockStore`]'s file: one per thread.
pub struct BlockReader {
    conn: Connection,
}

fn io(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Io(e.to_string()),
    }
}

/// The key of block `block` of series `series`.
fn key(series: u32, block: u64) -> Result<i64, StoreError> {
    if series >= MAX_SERIES || block >= 1 << BLOCK_BITS {
        return Err(StoreError::Io(format!(
            "block {block} of series {series} is past the block file's limits \
             ({MAX_SERIES} series of 2^{BLOCK_BITS} blocks)"
        )));
    }
    Ok((i64::from(series) << BLOCK_BITS) | block as i64)
}

impl BlockStore {
    /// Opens (creating if needed) the block file at `path`. Writes are synced as
    /// `synchronous = NORMAL` in WAL mode does: a crash of the process loses nothing
    /// written, a power cut may lose the last transactions (blocks are derived data,
    /// rebuilt from the log).
    ///
    /// # Errors
    /// The file cannot be created or opened, or is not a block file.
    pub fn open(path: &Path) -> Result<BlockStore, StoreError> {
        let conn = Connection::open(path).map_err(io)?;
        conn.execute_batch(
            "PRAGMA page_size = 65536; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA busy_timeout = 5000; \
             CREATE TABLE IF NOT EXISTS blocks (key INTEGER PRIMARY KEY, data BLOB NOT NULL);",
        )
        .map_err(io)?;
        Ok(BlockStore {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Writes `blocks` (number and bytes) of series `series` in one transaction,
    /// replacing blocks of the same numbers.
    ///
    /// # Errors
    /// The write failed (a full disk, an unwritable file), or a number is past the
    /// limits ([`MAX_SERIES`], [`BLOCK_BITS`]); nothing of it was written.
    pub fn put(&mut self, series: u32, blocks: &[(u64, &[u8])]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(io)?;
        {
            let mut insert = tx
                .prepare_cached("INSERT OR REPLACE INTO blocks (key, data) VALUES (?1, ?2)")
                .map_err(io)?;
            for (block, data) in blocks {
                insert
                    .execute(params![key(series, *block)?, data])
                    .map_err(io)?;
            }
        }
        tx.commit().map_err(io)
    }

    /// Drops the blocks of series `series` numbered below `before` (a rollover).
    ///
    /// # Errors
    /// The write failed.
    pub fn drop_front(&mut self, series: u32, before: u64) -> Result<(), StoreError> {
        let from = key(series, 0)?;
        let to = key(series, before.min((1 << BLOCK_BITS) - 1))?;
        self.conn
            .execute(
                "DELETE FROM blocks WHERE key >= ?1 AND key < ?2",
                params![from, to],
            )
            .map(drop)
            .map_err(io)
    }

    /// A reader of this file, on a connection of its own.
    ///
    /// # Errors
    /// The file cannot be opened for reading.
    pub fn reader(&self) -> Result<BlockReader, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(io)?;
        conn.execute_batch(&format!(
            "PRAGMA mmap_size = {MAP_BYTES}; PRAGMA busy_timeout = 5000;"
        ))
        .map_err(io)?;
        Ok(BlockReader { conn })
    }
}

impl BlockReader {
    /// Block `block` of series `series`, passed to `f` (so that it is read where SQLite
    /// holds it, without a copy), or `None` when there is none.
    ///
    /// # Errors
    /// The read failed.
    pub fn with<T>(
        &self,
        series: u32,
        block: u64,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, StoreError> {
        read(&self.conn, series, block, f)
    }

    /// A read of the file as it stands now, for many blocks in a row: one read
    /// transaction instead of one per block (each takes and drops the file's locks).
    /// Writes made meanwhile are not seen until it is dropped.
    ///
    /// # Errors
    /// The read transaction cannot start.
    pub fn snapshot(&self) -> Result<Snapshot<'_>, StoreError> {
        self.conn
            .unchecked_transaction()
            .map(|tx| Snapshot { tx })
            .map_err(io)
    }
}

/// The block file as of one moment: see [`BlockReader::snapshot`].
pub struct Snapshot<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl Snapshot<'_> {
    /// As [`BlockReader::with`], as of the snapshot.
    ///
    /// # Errors
    /// The read failed.
    pub fn with<T>(
        &self,
        series: u32,
        block: u64,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, StoreError> {
        read(&self.tx, series, block, f)
    }
}

fn read<T>(
    conn: &Connection,
    series: u32,
    block: u64,
    f: impl FnOnce(&[u8]) -> T,
) -> Result<Option<T>, StoreError> {
    let mut select = conn
        .prepare_cached("SELECT data FROM blocks WHERE key = ?1")
        .map_err(io)?;
    select
        .query_row(params![key(series, block)?], |row| {
            let data = row.get_ref(0)?.as_blob()?;
            Ok(f(data))
        })
        .optional()
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_read_back_by_series_and_number_and_a_rollover_drops_the_front() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = BlockStore::open(&dir.path().join("blocks.sqlite")).unwrap();
        store
            .put(0, &[(0, b"a0".as_slice()), (1, b"a1"), (2, b"a2")])
            .unwrap();
        store.put(1, &[(0, b"b0".as_slice())]).unwrap();
        store.put(0, &[(1, b"a1'".as_slice())]).unwrap();
        let reader = store.reader().unwrap();
        let read = |s, b| reader.with(s, b, <[u8]>::to_vec).unwrap();
        assert_eq!(read(0, 0), Some(b"a0".to_vec()));
        assert_eq!(read(0, 1), Some(b"a1'".to_vec()));
        assert_eq!(read(1, 0), Some(b"b0".to_vec()));
        assert_eq!(read(1, 1), None);
        store.drop_front(0, 2).unwrap();
        assert_eq!(read(0, 1), None);
        assert_eq!(read(0, 2), Some(b"a2".to_vec()));
        assert_eq!(read(1, 0), Some(b"b0".to_vec()));
    }

    #[test]
    fn numbers_past_the_limits_are_refused_not_wrapped() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = BlockStore::open(&dir.path().join("blocks.sqlite")).unwrap();
        assert!(store.put(MAX_SERIES, &[(0, b"x".as_slice())]).is_err());
        assert!(store.put(0, &[(1 << BLOCK_BITS, b"x".as_slice())]).is_err());
        let reader = store.reader().unwrap();
        assert_eq!(reader.with(0, 0, <[u8]>::to_vec).unwrap(), None);
    }
}
