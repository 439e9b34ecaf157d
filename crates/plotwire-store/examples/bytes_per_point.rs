//! Bytes per point on disk, through the real SQLite store, for series of 1e6 points
//! each, logged as 10 entries of 100k points (as a stream of 100k-point batches is):
//! float64 series (a constant step 0, 1, 2, ..., a random walk, white noise, a training
//! loss recorded in float32 precision, and timestamps in milliseconds since the epoch
//! 1 s apart, as Bokeh sends datetimes, evenly or with a real clock's jitter), an int64
//! counter and int32 readings. Prints the packed buffers' bytes (the codec's output,
//! what the log rows hold) and, in brackets, the database file's (which adds SQLite's
//! pages, 64 KiB each, and so is coarse at this size) per point, once with the element
//! width unknown to the store (the codec as it was before delta encoding: the 8-byte
//! shuffle) and once told (`Entry::element_sizes`, as the server does for an array).
//!
//! `cargo run --release -p plotwire-store --example bytes_per_point`

use bytes::Bytes;
use plotwire_store::{Entry, EntryKind, SqliteOptions, SqliteStore, Store, DB_FILE};

const POINTS: usize = 1_000_000;
const BATCH: usize = 100_000;

/// A small seeded generator (xorshift64*), uniform in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Milliseconds since the epoch of 2026-12-01 00:00 UTC.
const EPOCH_MS: f64 = 1_796_083_200_000.0;

/// The series measured: name, element width in bytes.
const SERIES: [(&str, usize); 8] = [
    ("constant step", 8),
    ("random walk", 8),
    ("white noise", 8),
    ("training loss (float32 precision)", 8),
    ("timestamps (float64 ms, 1 s apart)", 8),
    ("timestamps, 1 s apart +- 50 ms jitter", 8),
    ("int64 counter", 8),
    ("int32 readings (integer random walk)", 4),
];

/// The series' values as little-endian elements.
fn series(name: &str) -> Vec<u8> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut walk = 0.0;
    let mut int_walk = 0i32;
    let mut out = Vec::with_capacity(POINTS * 8);
    for i in 0..POINTS {
        let t = i as f64;
        match name {
            "int64 counter" => out.extend((1_000_000_i64 + 3 * i as i64).to_le_bytes()),
            "int32 readings (integer random walk)" => {
                int_walk += (rng.next() * 5.0) as i32 - 2;
                out.extend(int_walk.to_le_bytes());
            }
            "constant step" => out.extend(t.to_le_bytes()),
            "random walk" => {
                walk += rng.next() - 0.5;
                out.extend(f64::to_le_bytes(walk));
            }
            "white noise" => out.extend(rng.next().to_le_bytes()),
            "timestamps (float64 ms, 1 s apart)" => {
                out.extend((EPOCH_MS + 1000.0 * t).to_le_bytes());
            }
            "timestamps, 1 s apart +- 50 ms jitter" => {
                let jitter = (rng.next() * 101.0).floor() - 50.0;
                out.extend((EPOCH_MS + 1000.0 * t + jitter).to_le_bytes());
            }
            _ => {
                let loss = 2.0 * (-t / 300_000.0).exp() + 0.05 * rng.next();
                out.extend(f64::from(loss as f32).to_le_bytes());
            }
        }
    }
    out
}

/// Stores `values` (elements of `width` bytes, told to the store when `tell` is set) in
/// a fresh store: the packed buffers' bytes and the file's.
fn measure(
    runtime: &tokio::runtime::Runtime,
    values: &[u8],
    width: usize,
    tell: bool,
) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let store = SqliteStore::open(dir.path(), SqliteOptions::default())?;
        let publish = Entry {
            kind: EntryKind::Publish,
            content: Bytes::from_static(b"{}"),
            buffers: Vec::new(),
            element_sizes: Vec::new(),
            key: None,
            rows: None,
            meta: None,
        };
        runtime.block_on(store.append("s", 0, publish))?;
        for (i, chunk) in values.chunks(BATCH * width).enumerate() {
            let entry = Entry {
                kind: EntryKind::Events,
                content: Bytes::from_static(b"{\"events\":[]}"),
                buffers: vec![("0".to_owned(), Bytes::copy_from_slice(chunk))],
                element_sizes: if tell { vec![width] } else { Vec::new() },
                key: None,
                rows: None,
                meta: None,
            };
            runtime.block_on(store.append("s", i as u64 + 1, entry))?;
        }
    }
    // Dropping the store checkpointed the WAL into the file.
    let file = std::fs::metadata(dir.path().join(DB_FILE))?.len();
    let packed: i64 = rusqlite::Connection::open(dir.path().join(DB_FILE))?.query_row(
        "SELECT sum(length(buffers)) FROM log",
        [],
        |r| r.get(0),
    )?;
    Ok((u64::try_from(packed)?, file))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    println!("bytes per point stored (1e6 points, 10 entries of 100k), packed (in the file):");
    println!(
        "  {:38} {:>16} {:>16}",
        "series", "width unknown", "width told"
    );
    for (name, width) in SERIES {
        let values = series(name);
        let per_point = |bytes: u64| bytes as f64 / POINTS as f64;
        let (before, before_file) = measure(&runtime, &values, width, false)?;
        let (after, after_file) = measure(&runtime, &values, width, true)?;
        println!(
            "  {name:38} {:>6.3} ({:5.2}) {:>9.3} ({:5.2})",
            per_point(before),
            per_point(before_file),
            per_point(after),
            per_point(after_file)
        );
    }
    Ok(())
}
