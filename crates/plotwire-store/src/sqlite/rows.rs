//! Log rows: an [`Entry`]'s fields as SQLite columns, the buffers packed into one blob,
//! and the checksum that guards them.

use std::path::Path;

use bytes::Bytes;
use rusqlite::{params, Connection, ErrorCode};

use crate::{Entry, EntryKind, Record, StoreError};

/// The log of one document as read back.
pub struct ReadLog {
    /// The entries that passed their checks, in order.
    pub records: Vec<Record>,
    /// The first sequence number that failed them, if one did.
    pub corrupt_from: Option<u64>,
}

/// A SQLite error as a [`StoreError`], naming the file.
pub fn error(db: &Path, e: rusqlite::Error) -> StoreError {
    let text = format!("{}: {e}", db.display());
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full(text),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt(text),
        _ => StoreError::Io(text),
    }
}

use crate::codec::unpack_buffers;

/// The checksum of a row's fields.
pub fn checksum(
    seq: u64,
    kind: &str,
    content: &[u8],
    buffers: &[u8],
    key: Option<&str>,
    rows: Option<u64>,
    meta: Option<&[u8]>,
) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(kind.as_bytes());
    h.update(&(content.len() as u64).to_le_bytes());
    h.update(content);
    h.update(&(buffers.len() as u64).to_le_bytes());
    h.update(buffers);
    match key {
        Some(k) => {
            h.update(&[1]);
            h.update(k.as_bytes());
        }
        None => h.update(&[0]),
    }
    match rows {
        Some(r) => {
            h.update(&[1]);
            h.update(&r.to_le_bytes());
        }
        None => h.update(&[0]),
    }
    match meta {
        Some(m) => {
            h.update(&[1]);
            h.update(m);
        }
        None => h.update(&[0]),
    }
    h.finalize()
}

/// Inserts one entry, its buffers packed as `buffers` ([`crate::codec::pack_buffers`]).
pub fn insert(
    conn: &Connection,
    doc: &str,
    seq: u64,
    entry: &Entry,
    buffers: &[u8],
) -> rusqlite::Result<()> {
    let kind = entry.kind.as_str();
    let meta = entry.meta.as_deref();
    let crc = checksum(
        seq,
        kind,
        &entry.content,
        buffers,
        entry.key.as_deref(),
        entry.rows,
        meta,
    );
    let mut stmt = conn.prepare_cached(
        "INSERT INTO log (doc, seq, kind, content, buffers, key, rows, meta, crc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    stmt.execute(params![
        doc,
        i64::try_from(seq).unwrap_or(i64::MAX),
        kind,
        &entry.content[..],
        buffers,
        entry.key,
        entry.rows.map(|r| i64::try_from(r).unwrap_or(i64::MAX)),
        meta,
        i64::from(crc),
    ])?;
    Ok(())
}

/// Reads `doc`'s entries from sequence number `from`, stopping at the first that fails
/// its checks.
pub fn read_log(conn: &Connection, db: &Path, doc: &str, from: u64) -> Result<ReadLog, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, kind, content, buffers, key, rows, meta, crc FROM log WHERE doc = ?1 AND seq >= ?2 ORDER BY seq",
        )
        .map_err(|e| error(db, e))?;
    let mut found = stmt
        .query(params![doc, i64::try_from(from).unwrap_or(i64::MAX)])
        .map_err(|e| error(db, e))?;
    let mut records = Vec::new();
    while let Some(row) = found.next().map_err(|e| error(db, e))? {
        let seq: i64 = row.get(0).map_err(|e| error(db, e))?;
        let seq = u64::try_from(seq).unwrap_or(0);
        match decode_row(row, seq) {
            Some(entry) => records.push(Record { seq, entry }),
            None => {
                return Ok(ReadLog {
                    records,
                    corrupt_from: Some(seq),
                })
            }
        }
    }
    Ok(ReadLog {
        records,
        corrupt_from: None,
    })
}

fn decode_row(row: &rusqlite::Row<'_>, seq: u64) -> Option<Entry> {
    let kind: String = row.get(1).ok()?;
    let content: Vec<u8> = row.get(2).ok()?;
    let buffers: Vec<u8> = row.get(3).ok()?;
    let key: Option<String> = row.get(4).ok()?;
    let rows: Option<i64> = row.get(5).ok()?;
    let meta: Option<Vec<u8>> = row.get(6).ok()?;
    let crc: i64 = row.get(7).ok()?;
    let rows = match rows {
        Some(r) => Some(u64::try_from(r).ok()?),
        None => None,
    };
    if i64::from(checksum(
        seq,
        &kind,
        &content,
        &buffers,
        key.as_deref(),
        rows,
        meta.as_deref(),
    )) != crc
    {
        return None;
    }
    let buffers = unpack_buffers(&buffers)?;
    Some(Entry {
        kind: EntryKind::parse(&kind)?,
        content: Bytes::from(content),
        buffers,
        element_sizes: Vec::new(),
        key,
        rows,
        meta: meta.map(Bytes::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_covers_every_field() {
        let base = checksum(1, "events", b"{}", b"", None, None, None);
        assert_ne!(base, checksum(2, "events", b"{}", b"", None, None, None));
        assert_ne!(base, checksum(1, "publish", b"{}", b"", None, None, None));
        assert_ne!(base, checksum(1, "events", b"{ }", b"", None, None, None));
        assert_ne!(base, checksum(1, "events", b"{}", b"x", None, None, None));
        assert_ne!(
            base,
            checksum(1, "events", b"{}", b"", Some("k"), None, None)
        );
        assert_ne!(base, checksum(1, "events", b"{}", b"", None, Some(0), None));
        assert_ne!(
            base,
            checksum(1, "events", b"{}", b"", None, None, Some(b"{}"))
        );
    }
}
