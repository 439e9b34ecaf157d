//! Bytes per point on disk, through the real SQLite store, for four float64 series of
//! 1e6 points each, logged as 10 entries of 100k points (as a stream of 100k-point
//! batches is): a constant step (0, 1, 2, ...), a random walk, white noise, and a
//! training loss recorded in float32 precision.
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

fn series(name: &str) -> Vec<f64> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut walk = 0.0;
    (0..POINTS)
        .map(|i| match name {
            "constant step" => i as f64,
            "random walk" => {
                walk += rng.next() - 0.5;
                walk
            }
            "white noise" => rng.next(),
            _ => {
                let t = i as f64;
                let loss = 2.0 * (-t / 300_000.0).exp() + 0.05 * rng.next();
                f64::from(loss as f32)
            }
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    println!("bytes per float64 point stored (1e6 points, 10 entries of 100k):");
    for name in [
        "constant step",
        "random walk",
        "white noise",
        "training loss (float32 precision)",
    ] {
        let dir = tempfile::tempdir()?;
        let values = series(name);
        {
            let store = SqliteStore::open(dir.path(), SqliteOptions::default())?;
            let publish = Entry {
                kind: EntryKind::Publish,
                content: Bytes::from_static(b"{}"),
                buffers: Vec::new(),
                key: None,
                rows: None,
                meta: None,
            };
            runtime.block_on(store.append("s", 0, publish))?;
            for (i, chunk) in values.chunks(BATCH).enumerate() {
                let data: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
                let entry = Entry {
                    kind: EntryKind::Events,
                    content: Bytes::from_static(b"{\"events\":[]}"),
                    buffers: vec![("0".to_owned(), Bytes::from(data))],
                    key: None,
                    rows: None,
                    meta: None,
                };
                runtime.block_on(store.append("s", i as u64 + 1, entry))?;
            }
        }
        // Dropping the store checkpointed the WAL into the file.
        let bytes = std::fs::metadata(dir.path().join(DB_FILE))?.len();
        println!(
            "  {name:36} {:.2} bytes/point",
            bytes as f64 / POINTS as f64
        );
    }
    Ok(())
}
