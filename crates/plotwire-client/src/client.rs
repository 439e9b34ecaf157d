//! The async client: every REST operation, with retries that carry an idempotency key,
//! so that a network blip or a server restart neither loses nor repeats a write.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use hyper::{Method, StatusCode};
use plotwire_api::answers::{
    DocumentList, ErrorBody, EventPage, Published, ReadBack, Shared, Summary, Written,
};
use plotwire_api::events::ViewerEvent;
use plotwire_api::live::LiveOptions;
use plotwire_api::{names, paths};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::transport::{Answer, Base, Failure, Transport};
use crate::{Columns, Error};

/// How long the events long-poll waits on the server for the next event.
const POLL_SECONDS: u64 = 25;

/// How a failed attempt is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the second attempt; it doubles after each attempt.
    pub first_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for Retry {
    /// 8 attempts over about 10 s, enough to ride out a server restart.
    fn default() -> Retry {
        Retry {
            attempts: 8,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// A connection to one plotwire server. Cheap to clone; clones share the connection pool.
///
/// ```no_run
/// # async fn run() -> Result<(), plotwire_client::Error> {
/// use plotwire_client::{Client, Columns};
/// let client = Client::new("http://127.0.0.1:5006")?;
/// let spec = serde_json::json!({
///     "sources": {"train": {"columns": {"step": "int32", "loss": "float64"}}},
///     "plots": {"loss": {"kind": "line", "source": "train", "x": "step", "y": "loss"}},
///     "layout": {"grid": {"loss": [0, 0, 1, 1]}}
/// });
/// client.publish("runs/exp42", &spec).await?;
/// let batch = Columns::new().with("step", vec![1i32, 2]).with("loss", vec![0.9, 0.8]);
/// client.stream("runs/exp42", "train", &batch, Some(10_000)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    transport: Transport,
    url: String,
    retry: Retry,
    timeout: Duration,
    /// `Bearer <key>` for the `Authorization` header, when the client has a key.
    authorization: Option<String>,
}

/// A request, as the retry loop sends it again and again.
struct Call<'a> {
    method: Method,
    path: String,
    content_type: Option<&'a str>,
    body: Bytes,
    /// Writes carry one key for all their attempts.
    key: Option<String>,
    timeout: Duration,
}

impl Client {
    /// A client of the server at `url`: `http://host:port`, `http://host:port/prefix`, or
    /// `host:port` as streamvis takes it. Nothing is sent until the first call.
    pub fn new(url: &str) -> Result<Client, Error> {
        let base = Base::parse(url)?;
        Ok(Client {
            transport: Transport::new(base, Duration::from_secs(5)),
            url: url.to_owned(),
            retry: Retry::default(),
            timeout: Duration::from_secs(30),
            authorization: None,
        })
    }

    /// The same client, sending the API key `key` with every request (a server with
    /// access control on, `docs/access.md`).
    pub fn with_key(mut self, key: &str) -> Client {
        self.authorization = Some(format!("Bearer {key}"));
        self
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, retry: Retry) -> Client {
        retry_at_least_once(&mut self, retry);
        self
    }

    /// The same client with another per-request timeout (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Publishes a dashboard spec, a Bokeh `json_item` or a DocJson (the server tells
    /// them apart by their content) under `name`, creating or replacing the document.
    pub async fn publish(&self, name: &str, document: &Json) -> Result<Published, Error> {
        self.publish_with(name, document, &Retention::default())
            .await
    }

    /// [`Client::publish`] with a retention: what the server keeps of the document, in
    /// memory and on disk (`docs/storage.md`, "Retention"). A bad value is the server's
    /// 400 naming `max_rows` or `max_age`.
    pub async fn publish_with(
        &self,
        name: &str,
        document: &Json,
        retention: &Retention,
    ) -> Result<Published, Error> {
        names::check_name(name)?;
        let body = Bytes::from(document.to_string());
        let path = paths::document(name) + &retention.to_query();
        self.json(self.write(Method::PUT, path, "application/json", body))
            .await
    }

    /// Appends `columns` to `source` (its `name` or id), keeping at most `rollover` rows.
    pub async fn stream(
        &self,
        name: &str,
        source: &str,
        columns: &Columns,
        rollover: Option<usize>,
    ) -> Result<Written, Error> {
        let path = stream_path(name, source, rollover)?;
        let (content_type, body) = columns.encode()?;
        self.json(self.write(Method::POST, path, content_type, Bytes::from(body)))
            .await
    }

    /// Appends an Arrow record batch to `source`, as an Arrow IPC stream, keeping at most
    /// `rollover` rows.
    #[cfg(feature = "arrow")]
    pub async fn stream_batch(
        &self,
        name: &str,
        source: &str,
        batch: &arrow_array::RecordBatch,
        rollover: Option<usize>,
    ) -> Result<Written, Error> {
        let path = stream_path(name, source, rollover)?;
        let body = Bytes::from(crate::arrow::encode(batch)?);
        self.json(self.write(Method::POST, path, crate::arrow::CONTENT_TYPE, body))
            .await
    }

    /// Replaces the whole content of `source` with an Arrow record batch.
    #[cfg(feature = "arrow")]
    pub async fn replace_batch(
        &self,
        name: &str,
        source: &str,
        batch: &arrow_array::RecordBatch,
    ) -> Result<Written, Error> {
        names::check_name(name)?;
        let body = Bytes::from(crate::arrow::encode(batch)?);
        self.json(self.write(
            Method::PUT,
            paths::source(name, source),
            crate::arrow::CONTENT_TYPE,
            body,
        ))
        .await
    }

    /// Replaces the whole content of `source` with `columns`.
    pub async fn replace(
        &self,
        name: &str,
        source: &str,
        columns: &Columns,
    ) -> Result<Written, Error> {
        names::check_name(name)?;
        let (content_type, body) = columns.encode()?;
        self.json(self.write(
            Method::PUT,
            paths::source(name, source),
            content_type,
            Bytes::from(body),
        ))
        .await
    }

    /// Patches single rows of `source`: `{"column": [[index, value], ...]}`.
    pub async fn patch(&self, name: &str, source: &str, patches: &Json) -> Result<Written, Error> {
        names::check_name(name)?;
        let body = Bytes::from(patches.to_string());
        self.json(self.write(
            Method::POST,
            paths::source_action(name, source, "patch"),
            "application/json",
            body,
        ))
        .await
    }

    /// Empties every column of `source`.
    pub async fn clear(&self, name: &str, source: &str) -> Result<Written, Error> {
        names::check_name(name)?;
        self.json(self.write(
            Method::POST,
            paths::source_action(name, source, "clear"),
            "application/json",
            Bytes::new(),
        ))
        .await
    }

    /// Reads `source` back: everything (`since` = `None`), or the rows appended after the
    /// cursor `since` (the `next` of the previous read). `reset` in the answer means its
    /// data is the whole content.
    pub async fn data(
        &self,
        name: &str,
        source: &str,
        since: Option<u64>,
    ) -> Result<ReadBack, Error> {
        names::check_name(name)?;
        let mut path = paths::source(name, source);
        if let Some(s) = since {
            path.push_str(&format!("?since={s}"));
        }
        self.json(self.read(path)).await
    }

    /// Sets `prop` of the model named (or with id) `model` to `value`, for every view, or
    /// for the view `view` alone.
    pub async fn set(
        &self,
        name: &str,
        model: &str,
        prop: &str,
        value: &Json,
        view: Option<&str>,
    ) -> Result<Written, Error> {
        names::check_name(name)?;
        let body = serde_json::json!({ "value": value, "view": view });
        self.json(self.write(
            Method::PUT,
            paths::property(name, model, prop),
            "application/json",
            Bytes::from(body.to_string()),
        ))
        .await
    }

    /// Document `name` as one standalone HTML file that keeps reading from this server
    /// as `options` say (`docs/exports.md`).
    pub async fn export_html(&self, name: &str, options: &LiveOptions) -> Result<Bytes, Error> {
        names::check_name(name)?;
        let path = format!("{}?{}", paths::export_html(name), options.to_query());
        Ok(self.send(self.read(path)).await?.body)
    }

    /// Document `name` as a Bokeh `json_item` of its root `root` (its id or name; the
    /// first root if `None`), live as `options` say.
    pub async fn json_item(
        &self,
        name: &str,
        root: Option<&str>,
        options: &LiveOptions,
    ) -> Result<Bytes, Error> {
        names::check_name(name)?;
        let mut path = format!("{}?{}", paths::json_item(name), options.to_query());
        if let Some(root) = root {
            path.push_str("&root=");
            path.push_str(&plotwire_api::live::query_value(root));
        }
        Ok(self.send(self.read(path)).await?.body)
    }

    /// The published documents.
    pub async fn documents(&self) -> Result<DocumentList, Error> {
        self.json(self.read(paths::DOCUMENTS.to_owned())).await
    }

    /// A document's summary: title, views, sequence number and sources.
    pub async fn summary(&self, name: &str) -> Result<Summary, Error> {
        names::check_name(name)?;
        self.json(self.read(paths::document(name))).await
    }

    /// A read-only link to the document `name` that expires after `expires` (`30m`,
    /// `12h`, `7d`, `2w`; the server's default is 7 days). Needs a key that may publish
    /// it ([`Client::with_key`]).
    pub async fn share(&self, name: &str, expires: Option<&str>) -> Result<Shared, Error> {
        names::check_name(name)?;
        let mut path = paths::share(name);
        if let Some(e) = expires {
            path.push_str("?expires=");
            path.push_str(&plotwire_api::live::query_value(e));
        }
        let call = Call {
            method: Method::POST,
            path,
            content_type: None,
            body: Bytes::new(),
            key: None,
            timeout: self.timeout,
        };
        self.json(call).await
    }

    /// Deletes a document; its open pages show that it has ended.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        names::check_name(name)?;
        let call = Call {
            method: Method::DELETE,
            path: paths::document(name),
            content_type: None,
            body: Bytes::new(),
            key: None,
            timeout: self.timeout,
        };
        self.send(call).await.map(drop)
    }

    /// What viewers do in document `name`, after the event `since` (0 for all that are
    /// kept), as they happen. The stream resumes after the last event it gave, through
    /// network failures and server restarts (retried as any call). It ends with an error
    /// when the retries run out or the document is gone.
    pub fn events(
        &self,
        name: &str,
        since: u64,
    ) -> impl Stream<Item = Result<ViewerEvent, Error>> + Send + 'static {
        struct St {
            client: Client,
            name: String,
            cursor: u64,
            pending: std::collections::VecDeque<ViewerEvent>,
            done: bool,
        }
        let st = St {
            client: self.clone(),
            name: name.to_owned(),
            cursor: since,
            pending: std::collections::VecDeque::new(),
            done: names::check_name(name).is_err(),
        };
        stream::unfold(st, |mut st| async move {
            if st.done {
                return None;
            }
            // Each turn is one long-poll, which waits on the server for up to
            // POLL_SECONDS; an empty answer only means nothing happened meanwhile.
            loop {
                if let Some(e) = st.pending.pop_front() {
                    st.cursor = e.seq;
                    return Some((Ok(e), st));
                }
                let path = format!(
                    "{}?since={}&timeout={POLL_SECONDS}",
                    paths::events(&st.name),
                    st.cursor
                );
                let call = Call {
                    method: Method::GET,
                    path,
                    content_type: None,
                    body: Bytes::new(),
                    key: None,
                    timeout: Duration::from_secs(POLL_SECONDS) + st.client.timeout,
                };
                match st.client.json::<EventPage>(call).await {
                    Ok(page) => {
                        st.pending
                            .extend(page.events.into_iter().filter(|e| e.seq > st.cursor));
                        if st.pending.is_empty() {
                            st.cursor = st.cursor.max(page.next);
                        }
                    }
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
        })
    }

    fn read(&self, path: String) -> Call<'static> {
        Call {
            method: Method::GET,
            path,
            content_type: None,
            body: Bytes::new(),
            key: None,
            timeout: self.timeout,
        }
    }

    fn write<'a>(
        &self,
        method: Method,
        path: String,
        content_type: &'a str,
        body: Bytes,
    ) -> Call<'a> {
        Call {
            method,
            path,
            content_type: Some(content_type),
            body,
            key: Some(idempotency_key()),
            timeout: self.timeout,
        }
    }

    async fn json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, Error> {
        let answer = self.send(call).await?;
        serde_json::from_slice(&answer.body).map_err(|e| {
            Error::BadAnswer(format!(
                "{e}: {}",
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
            ))
        })
    }

    /// Sends `call` until it gets an answer that is not worth retrying, or the attempts
    /// run out. Connection failures, timeouts and 502/503/504 are retried; a write keeps
    /// its idempotency key across attempts, so the server applies it once.
    async fn send(&self, call: Call<'_>) -> Result<Answer, Error> {
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(3);
        if let Some(auth) = &self.authorization {
            headers.push(("authorization", auth));
        }
        if let Some(ct) = call.content_type {
            headers.push(("content-type", ct));
        }
        if let Some(key) = &call.key {
            headers.push(("idempotency-key", key));
        }
        let mut delay = self.retry.first_delay;
        let mut reason = String::new();
        for attempt in 1..=self.retry.attempts {
            if attempt > 1 {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(self.retry.max_delay);
            }
            let sent = self
                .transport
                .send(
                    &call.method,
                    &call.path,
                    &headers,
                    call.body.clone(),
                    call.timeout,
                )
                .await;
            match sent {
                Ok(a) if a.status.is_success() => return Ok(a),
                Ok(a) if retryable(a.status) => {
                    reason = format!("HTTP {}", a.status.as_u16());
                }
                Ok(a) => return Err(api_error(a)),
                Err(Failure::Transient(why)) => reason = why,
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
        Err(Error::Unreachable {
            url: self.url.clone(),
            attempts: self.retry.attempts,
            reason,
        })
    }
}

/// The path of a stream into `source` of document `name`, keeping `rollover` rows.
/// What the server keeps of a published document (`docs/storage.md`, "Retention"); the
/// default keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// At most this many rows per source: the rollover of streams that give none.
    pub max_rows: Option<u64>,
    /// Rows older than this are dropped: a whole number and `s`, `m`, `h` or `d` (`7d`).
    pub max_age: Option<String>,
}

impl Retention {
    /// The publish's query string (`?max_rows=N&max_age=D`), or nothing.
    pub fn to_query(&self) -> String {
        let mut params = Vec::new();
        if let Some(rows) = self.max_rows {
            params.push(format!("max_rows={rows}"));
        }
        if let Some(age) = &self.max_age {
            let age =
                percent_encoding::utf8_percent_encode(age, percent_encoding::NON_ALPHANUMERIC);
            params.push(format!("max_age={age}"));
        }
        if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        }
    }
}

fn stream_path(name: &str, source: &str, rollover: Option<usize>) -> Result<String, Error> {
    names::check_name(name)?;
    let mut path = paths::source_action(name, source, "stream");
    if let Some(n) = rollover {
        path.push_str(&format!("?rollover={n}"));
    }
    Ok(path)
}

fn retry_at_least_once(client: &mut Client, retry: Retry) {
    client.retry = Retry {
        attempts: retry.attempts.max(1),
        ..retry
    };
}

fn retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

fn api_error(a: Answer) -> Error {
    let body = serde_json::from_slice::<ErrorBody>(&a.body).unwrap_or_else(|_| ErrorBody {
        error: String::from_utf8_lossy(&a.body[..a.body.len().min(500)]).into_owned(),
        field: None,
    });
    Error::Api {
        status: a.status.as_u16(),
        body,
    }
}

/// A fresh idempotency key: 128 random bits in hex.
fn idempotency_key() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}
