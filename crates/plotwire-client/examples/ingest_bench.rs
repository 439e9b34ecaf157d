//! How fast the Rust client streams: 100k-point batches (two float64 columns) into a
//! published document over one connection, back to back, each answer checked. Prints
//! points/s. Issue 8's target: at least 50 M points/s, as for the raw REST path.
//!
//! ```sh
//! cargo run --release -p plotwire -- serve &
//! cargo run --release -p plotwire-client --example ingest_bench -- http://127.0.0.1:5006 [BATCHES]
//! ```

use std::time::Instant;

use plotwire_client::{Client, Columns};
use serde_json::json;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const POINTS: usize = 100_000;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:5006".into());
    let batches: usize = args.next().map(|b| b.parse()).transpose()?.unwrap_or(500);
    let client = Client::new(&url)?;
    let name = format!("bench/client-{}", std::process::id());
    client
        .publish(
            &name,
            &json!({
                "sources": {"s": {"columns": {"x": "float64", "y": "float64"}}},
                "plots": {"p": {"kind": "line", "source": "s", "x": "x", "y": "y"}},
                "layout": {"grid": {"p": [0, 0, 1, 1]}}
            }),
        )
        .await?;
    let x: Vec<f64> = (0..POINTS).map(|i| i as f64).collect();
    let batch = Columns::new().with("x", x.clone()).with("y", x);
    // One warm-up batch, then the timed ones.
    client.stream(&name, "s", &batch, Some(1_000_000)).await?;
    let started = Instant::now();
    for _ in 0..batches {
        let written = client.stream(&name, "s", &batch, Some(1_000_000)).await?;
        if written.rows.is_none_or(|r| r < POINTS) {
            return Err(format!("the server holds {:?} rows after a batch", written.rows).into());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let points = (batches * POINTS) as f64;
    println!(
        "{batches} batches of {POINTS} points in {secs:.2} s: {:.1} M points/s ({:.0} MB/s of column data)",
        points / secs / 1e6,
        points * 16.0 / secs / 1e6
    );
    client.delete(&name).await?;
    Ok(())
}
