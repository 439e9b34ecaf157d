//! A Rust client of the plotwire server's REST API (`docs/rest-api.md`): publish a
//! dashboard, stream columns into its sources, read them back with a cursor, set widget
//! values and hear what viewers do.
//!
//! - [`Client`] is async, on tokio; [`blocking::Client`] wraps it for code without a
//!   runtime.
//! - Columns go out as raw little-endian typed arrays ([`Columns`]), never as JSON
//!   number lists. With the `arrow` feature, a batch that holds text goes as an Arrow IPC
//!   stream, and `Client::stream_batch`/`replace_batch` send Arrow record batches.
//! - Every write carries an idempotency key, and a failed attempt (a network blip, a
//!   server restart, a 503) is tried again with the same key, so nothing is lost or
//!   applied twice ([`Retry`]).
//! - The answer and event types are those of [`plotwire_api`], which the server uses too.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use plotwire_client::{Client, Columns};
//!
//! # async fn run() -> Result<(), plotwire_client::Error> {
//! let client = Client::new("127.0.0.1:5006")?;
//! let spec = serde_json::json!({
//!     "title": "training",
//!     "sources": {"train": {"columns": {"step": "int32", "loss": "float64"}}},
//!     "plots": {"loss": {"kind": "line", "source": "train", "x": "step", "y": "loss"}},
//!     "layout": {"grid": {"loss": [0, 0, 1, 1]}}
//! });
//! client.publish("runs/exp42", &spec).await?;
//! let batch = Columns::new().with("step", vec![1i32, 2, 3]).with("loss", vec![0.9, 0.7, 0.6]);
//! client.stream("runs/exp42", "train", &batch, None).await?;
//! let mut events = Box::pin(client.events("runs/exp42", 0));
//! while let Some(event) = events.next().await {
//!     println!("{:?}", event?);
//! }
//! # Ok(()) }
//! ```

#[cfg(feature = "arrow")]
pub mod arrow;
pub mod blocking;
mod client;
mod columns;
mod error;
mod transport;

pub use client::{Client, Retention, Retry};
pub use columns::{Columns, Values};
pub use error::Error;
pub use plotwire_api;
pub use plotwire_api::answers::{DocumentList, Published, ReadBack, Shared, Summary, Written};
pub use plotwire_api::events::{EventKind, ViewerEvent};
