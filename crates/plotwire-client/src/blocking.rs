//! The same client for code without an async runtime: each call blocks until its answer.
//!
//! ```no_run
//! use plotwire_client::{blocking::Client, Columns};
//! # fn run() -> Result<(), plotwire_client::Error> {
//! let client = Client::new("127.0.0.1:5006")?;
//! let batch = Columns::new().with("t", vec![0.0, 1.0]).with("cpu", vec![12.5, 13.0]);
//! client.stream("host/metrics", "cpu.data", &batch, Some(3600))?;
//! for event in client.events("host/metrics", 0) {
//!     println!("{:?}", event?);
//! }
//! # Ok(()) }
//! ```

use futures_util::StreamExt;
use serde_json::Value as Json;

use crate::{
    Columns, DocumentList, Error, Published, ReadBack, Retry, Summary, ViewerEvent, Written,
};

/// A blocking client: a [`crate::Client`] and a single-threaded runtime of its own. Do not
/// use it from inside an async runtime (use [`crate::Client`] there).
pub struct Client {
    inner: crate::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// A client of the server at `url` (see [`crate::Client::new`]).
    pub fn new(url: &str) -> Result<Client, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::BadAnswer(format!("cannot start the client's runtime: {e}")))?;
        Ok(Client {
            inner: crate::Client::new(url)?,
            runtime,
        })
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, retry: Retry) -> Client {
        self.inner = self.inner.with_retry(retry);
        self
    }

    /// See [`crate::Client::with_key`].
    pub fn with_key(mut self, key: &str) -> Client {
        self.inner = self.inner.with_key(key);
        self
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Client {
        self.inner = self.inner.with_timeout(timeout);
        self
    }

    /// See [`crate::Client::publish`].
    pub fn publish(&self, name: &str, document: &Json) -> Result<Published, Error> {
        self.runtime.block_on(self.inner.publish(name, document))
    }

    /// See [`crate::Client::publish_with`].
    pub fn publish_with(
        &self,
        name: &str,
        document: &Json,
        retention: &crate::Retention,
    ) -> Result<Published, Error> {
        self.runtime
            .block_on(self.inner.publish_with(name, document, retention))
    }

    /// See [`crate::Client::stream`].
    pub fn stream(
        &self,
        name: &str,
        source: &str,
        columns: &Columns,
        rollover: Option<usize>,
    ) -> Result<Written, Error> {
        self.runtime
            .block_on(self.inner.stream(name, source, columns, rollover))
    }

    /// See [`crate::Client::replace`].
    pub fn replace(&self, name: &str, source: &str, columns: &Columns) -> Result<Written, Error> {
        self.runtime
            .block_on(self.inner.replace(name, source, columns))
    }

    /// See [`crate::Client::stream_batch`].
    #[cfg(feature = "arrow")]
    pub fn stream_batch(
        &self,
        name: &str,
        source: &str,
        batch: &arrow_array::RecordBatch,
        rollover: Option<usize>,
    ) -> Result<Written, Error> {
        self.runtime
            .block_on(self.inner.stream_batch(name, source, batch, rollover))
    }

    /// See [`crate::Client::replace_batch`].
    #[cfg(feature = "arrow")]
    pub fn replace_batch(
        &self,
        name: &str,
        source: &str,
        batch: &arrow_array::RecordBatch,
    ) -> Result<Written, Error> {
        self.runtime
            .block_on(self.inner.replace_batch(name, source, batch))
    }

    /// See [`crate::Client::patch`].
    pub fn patch(&self, name: &str, source: &str, patches: &Json) -> Result<Written, Error> {
        self.runtime
            .block_on(self.inner.patch(name, source, patches))
    }

    /// See [`crate::Client::clear`].
    pub fn clear(&self, name: &str, source: &str) -> Result<Written, Error> {
        self.runtime.block_on(self.inner.clear(name, source))
    }

    /// See [`crate::Client::data`].
    pub fn data(&self, name: &str, source: &str, since: Option<u64>) -> Result<ReadBack, Error> {
        self.runtime.block_on(self.inner.data(name, source, since))
    }

    /// See [`crate::Client::set`].
    pub fn set(
        &self,
        name: &str,
        model: &str,
        prop: &str,
        value: &Json,
        view: Option<&str>,
    ) -> Result<Written, Error> {
        self.runtime
            .block_on(self.inner.set(name, model, prop, value, view))
    }

    /// See [`crate::Client::documents`].
    pub fn documents(&self) -> Result<DocumentList, Error> {
        self.runtime.block_on(self.inner.documents())
    }

    /// See [`crate::Client::summary`].
    pub fn summary(&self, name: &str) -> Result<Summary, Error> {
        self.runtime.block_on(self.inner.summary(name))
    }

    /// See [`crate::Client::delete`].
    pub fn delete(&self, name: &str) -> Result<(), Error> {
        self.runtime.block_on(self.inner.delete(name))
    }

    /// See [`crate::Client::events`]: an iterator that blocks for each event.
    pub fn events(
        &self,
        name: &str,
        since: u64,
    ) -> impl Iterator<Item = Result<ViewerEvent, Error>> + '_ {
        let mut events = Box::pin(self.inner.events(name, since));
        std::iter::from_fn(move || self.runtime.block_on(events.next()))
    }
}
