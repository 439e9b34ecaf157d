//! Helpers shared by the integration tests: the in-process server on 127.0.0.1, a raw
//! Bokeh websocket client, fixtures and a minimal HTTP client. Every wait is bounded.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::serve::ListenerExt;
use base64::Engine;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use plotwire_protocol::frame::{encode_message, Assembler, Fragment};
use plotwire_protocol::message::MsgType;
use plotwire_protocol::token::generate_token;
use plotwire_server::Config;
use serde_json::{json, Value as Json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The bound on every single wait.
pub const T: Duration = Duration::from_secs(5);

pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(T, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {T:?} waiting for {what}"),
    }
}

// ---------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------

/// Defaults for tests: no keep-alive pings in the way.
pub fn config() -> Config {
    Config {
        keep_alive: None,
        ..Config::default()
    }
}

/// Starts the router on 127.0.0.1 with an OS-chosen port (also set as `config.port`, so
/// that the default Origin allowlist is right). Returns the port.
pub async fn start(config: Config) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let app = plotwire_server::router(Config { port, ..config }).expect("valid config");
    // As `plotwire_server::serve` does.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

pub fn token(session_id: &str) -> String {
    generate_token(session_id, now() + 300, None, None).expect("token")
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bokeh-3.9.2")
}

/// A client→server message of a capture: type, content and buffers.
#[derive(Clone)]
pub struct FixtureMsg {
    pub msgtype: String,
    pub content: Json,
    pub buffers: Vec<(String, Bytes)>,
}

pub fn fixture_c2s(scenario: &str, client: &str) -> Vec<FixtureMsg> {
    let path = fixtures()
        .join("ws")
        .join(scenario)
        .join(format!("{client}.messages.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|r| r["dir"] == "c2s" && r.get("header").is_some())
        .map(|r| FixtureMsg {
            msgtype: r["header"]["msgtype"].as_str().expect("msgtype").to_owned(),
            content: r["content"].clone(),
            buffers: r["buffers"]
                .as_array()
                .map(|bs| {
                    bs.iter()
                        .map(|b| {
                            let raw = base64::engine::general_purpose::STANDARD
                                .decode(b["b64"].as_str().expect("b64"))
                                .expect("base64");
                            (b["id"].as_str().expect("id").to_owned(), Bytes::from(raw))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// The PUSH-DOC content of `ws/1-pushed-plain`: one root `p1062`, title "pushed doc".
pub fn plain_push_doc() -> Json {
    fixture_c2s("1-pushed-plain", "a_push_session")
        .into_iter()
        .find(|m| m.msgtype == "PUSH-DOC")
        .expect("PUSH-DOC")
        .content
}

/// A document whose one root is a `ColumnDataSource` `id` with one row of `x` and `y`.
pub fn cds_doc(id: &str) -> Json {
    json!({
        "version": "3.9.2",
        "title": "cds",
        "roots": [{"type": "object", "name": "ColumnDataSource", "id": id,
                   "attributes": {"name": "src", "data": {"type": "map", "entries": [["x", [0.5]], ["y", [1.5]]]}}}]
    })
}

/// Ids of the full model reps inside `j`.
pub fn full_model_ids(j: &Json, out: &mut Vec<String>) {
    match j {
        Json::Array(items) => items.iter().for_each(|x| full_model_ids(x, out)),
        Json::Object(obj) => {
            if obj.get("type").and_then(Json::as_str) == Some("object") {
                if let (Some(id), true) = (
                    obj.get("id").and_then(Json::as_str),
                    obj.contains_key("name"),
                ) {
                    out.push(id.to_owned());
                }
            }
            obj.values().for_each(|x| full_model_ids(x, out));
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// A raw Bokeh websocket client
// ---------------------------------------------------------------------------------------

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One assembled incoming message.
#[derive(Debug, Clone)]
pub struct Received {
    pub msgtype: String,
    pub reqid: Option<String>,
    pub content: Json,
    pub buffers: Vec<(String, Bytes)>,
}

impl Received {
    pub fn events(&self) -> &[Json] {
        self.content["events"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn kinds(&self) -> Vec<&str> {
        self.events()
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or("?"))
            .collect()
    }
}

/// What the socket delivered next.
#[derive(Debug)]
pub enum Incoming {
    Msg(Received),
    Ping(Bytes),
    /// A close frame (with its code, `None` for a close frame without status code).
    Close(Option<u16>),
    /// The stream ended (or failed) without a close frame.
    End,
}

pub struct Client {
    pub ws: Ws,
    pub asm: Assembler,
    pub next_id: u64,
    pub received_ids: Vec<String>,
}

pub async fn try_connect(
    port: u16,
    app: &str,
    protocols: &str,
    origin: Option<&str>,
) -> Result<(Ws, Response), tungstenite::Error> {
    let mut req = format!("ws://127.0.0.1:{port}/{app}/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols.parse().expect("header"));
    if let Some(o) = origin {
        req.headers_mut()
            .insert("Origin", o.parse().expect("header"));
    }
    within(
        "the websocket handshake",
        tokio_tungstenite::connect_async_with_config(req, None, true),
    )
    .await
}

/// Connects with `["bokeh", token]`, checks that `bokeh` was selected, and returns the
/// client without reading anything.
pub async fn connect_raw(port: u16, token: &str, origin: Option<&str>) -> Client {
    let (ws, resp) = try_connect(port, "target", &format!("bokeh, {token}"), origin)
        .await
        .expect("handshake");
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("bokeh"),
        "the selected subprotocol"
    );
    Client::new(ws)
}

/// Connects and waits for the ACK.
pub async fn connect(port: u16, session: &str) -> Client {
    let mut c = connect_raw(port, &token(session), None).await;
    c.expect_ack().await;
    c
}

/// Connects as a browser (with a same-origin `Origin` header) and waits for the ACK.
pub async fn connect_browser(port: u16, session: &str) -> Client {
    let origin = format!("http://127.0.0.1:{port}");
    let mut c = connect_raw(port, &token(session), Some(&origin)).await;
    c.expect_ack().await;
    c
}

/// A websocket handshake written by hand, for requests `connect_async` refuses to make
/// or to finish (e.g. a single subprotocol, which the server answers without one).
pub async fn raw_handshake(port: u16, extra_headers: &str) -> (u16, String, Option<Client>) {
    let mut tcp = within("connect", TcpStream::connect(("127.0.0.1", port)))
        .await
        .expect("connect");
    let req = format!(
        "GET /target/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    );
    within("write", tcp.write_all(req.as_bytes()))
        .await
        .expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        let n = within("the handshake response", tcp.read(&mut b))
            .await
            .expect("read");
        assert_eq!(n, 1, "the server closed during the handshake");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).expect("UTF-8 head");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let client = if status == 101 {
        let ws =
            WebSocketStream::from_raw_socket(MaybeTlsStream::Plain(tcp), Role::Client, None).await;
        Some(Client::new(ws))
    } else {
        None
    };
    (status, head, client)
}

impl Client {
    pub fn new(ws: Ws) -> Client {
        Client {
            ws,
            asm: Assembler::default(),
            next_id: 0,
            received_ids: Vec::new(),
        }
    }

    pub fn msgid(&mut self) -> String {
        self.next_id += 1;
        format!("c{}", self.next_id)
    }

    /// Sends raw websocket messages.
    pub async fn send_frames(&mut self, frames: Vec<Message>) {
        within("sending", async {
            for f in frames {
                self.ws.feed(f).await.expect("send");
            }
            self.ws.flush().await.expect("flush");
        })
        .await;
    }

    /// Sends a Bokeh message as fragments; returns its msgid.
    pub async fn send(
        &mut self,
        msgtype: MsgType,
        content: &Json,
        buffers: &[(String, Bytes)],
    ) -> String {
        let id = self.msgid();
        let msg = encode_message(
            &id,
            msgtype,
            None,
            Bytes::from(content.to_string()),
            buffers,
        );
        let frames = msg
            .frames
            .into_iter()
            .map(|f| match f {
                Fragment::Text(b) => Message::Text(Utf8Bytes::try_from(b).expect("UTF-8")),
                Fragment::Binary(b) => Message::Binary(b),
            })
            .collect();
        self.send_frames(frames).await;
        id
    }

    pub async fn patch(&mut self, events: Json) -> String {
        self.send(MsgType::PatchDoc, &json!({ "events": events }), &[])
            .await
    }

    /// The next thing the socket delivers, assembled into messages.
    pub async fn next(&mut self) -> Incoming {
        within("the next message", async {
            loop {
                let fragment = match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => Fragment::Text(Bytes::from(t)),
                    Some(Ok(Message::Binary(b))) => Fragment::Binary(b),
                    Some(Ok(Message::Ping(p))) => return Incoming::Ping(p),
                    Some(Ok(Message::Pong(_))) | Some(Ok(Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(f))) => {
                        return Incoming::Close(f.map(|f: CloseFrame| u16::from(f.code)))
                    }
                    Some(Err(_)) | None => return Incoming::End,
                };
                if let Some(raw) = self
                    .asm
                    .push(fragment)
                    .expect("the server's framing is valid")
                {
                    self.received_ids.push(raw.header.msgid.clone());
                    return Incoming::Msg(Received {
                        msgtype: raw.header.msgtype,
                        reqid: raw.header.reqid,
                        content: serde_json::from_slice(&raw.content).expect("content JSON"),
                        buffers: raw.buffers,
                    });
                }
            }
        })
        .await
    }

    /// The next Bokeh message (pings are skipped).
    pub async fn recv(&mut self) -> Received {
        loop {
            match self.next().await {
                Incoming::Msg(m) => return m,
                Incoming::Ping(_) => continue,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    pub async fn expect(&mut self, msgtype: &str) -> Received {
        let m = self.recv().await;
        assert_eq!(m.msgtype, msgtype, "unexpected message {m:?}");
        m
    }

    pub async fn expect_ack(&mut self) {
        let m = self.expect("ACK").await;
        assert_eq!(m.reqid, None);
        assert_eq!(m.content, json!({}));
    }

    /// Expects a reply of `msgtype` to `reqid` as the very next message.
    pub async fn expect_reply(&mut self, msgtype: &str, reqid: &str) -> Received {
        let m = self.expect(msgtype).await;
        assert_eq!(m.reqid.as_deref(), Some(reqid), "reqid of {m:?}");
        m
    }

    /// Sends a PATCH-DOC and expects OK as the very next message (no echo before it).
    pub async fn patch_ok(&mut self, events: Json) {
        let id = self.patch(events).await;
        self.expect_reply("OK", &id).await;
    }

    /// Sends a PATCH-DOC and expects ERROR; returns its text.
    pub async fn patch_error(&mut self, content: &Json, buffers: &[(String, Bytes)]) -> String {
        let id = self.send(MsgType::PatchDoc, content, buffers).await;
        let m = self.expect_reply("ERROR", &id).await;
        m.content["text"].as_str().expect("ERROR text").to_owned()
    }

    /// PULL-DOC-REQ → the `doc` of the reply.
    pub async fn pull(&mut self) -> Json {
        let id = self.send(MsgType::PullDocReq, &json!({}), &[]).await;
        let m = self.expect_reply("PULL-DOC-REPLY", &id).await;
        m.content["doc"].clone()
    }

    /// PUSH-DOC → the PATCH-DOCs received before the OK.
    pub async fn push(&mut self, content: &Json) -> Vec<Received> {
        let id = self.send(MsgType::PushDoc, content, &[]).await;
        let mut before = Vec::new();
        loop {
            let m = self.recv().await;
            if m.msgtype == "OK" {
                assert_eq!(m.reqid.as_deref(), Some(id.as_str()));
                return before;
            }
            assert_eq!(m.msgtype, "PATCH-DOC", "before the OK of a PUSH-DOC: {m:?}");
            before.push(m);
        }
    }

    /// Reads until the connection ends; returns the close code (`Some(None)`: a close
    /// frame without status; `None`: no close frame) and how many messages came first.
    pub async fn closing(&mut self) -> (Option<Option<u16>>, usize) {
        let mut messages = 0;
        loop {
            match self.next().await {
                Incoming::Msg(_) => messages += 1,
                Incoming::Ping(_) => {}
                Incoming::Close(code) => return (Some(code), messages),
                Incoming::End => return (None, messages),
            }
        }
    }

    /// Expects the server to close with `code` before sending any message.
    pub async fn expect_close(&mut self, code: u16) {
        let (close, messages) = self.closing().await;
        assert_eq!(messages, 0, "no message before the close");
        assert_eq!(close, Some(Some(code)), "close code");
    }

    /// Expects the connection to end without any Bokeh message (no ACK): a close frame
    /// without status code, or no frame at all.
    pub async fn expect_refused(&mut self) {
        let (close, messages) = self.closing().await;
        assert_eq!(messages, 0, "nothing, not even an ACK, before the close");
        assert!(
            matches!(close, Some(None) | None),
            "a close without status code, got {close:?}"
        );
    }

    pub async fn close(mut self) {
        let _ = within("closing", self.ws.close(None)).await;
        // Drain until the server's close reply.
        let _ = tokio::time::timeout(T, async { while self.ws.next().await.is_some() {} }).await;
    }

    pub fn assert_unique_ids(&self) {
        let set: HashSet<&String> = self.received_ids.iter().collect();
        assert_eq!(
            set.len(),
            self.received_ids.len(),
            "msgids {:?}",
            self.received_ids
        );
    }
}

/// A session kept healthy while bad input hits others: a round trip must keep working.
pub struct Healthy {
    pub client: Client,
    pub title: String,
}

impl Healthy {
    pub async fn new(port: u16) -> Healthy {
        let mut client = connect(port, "healthy-session").await;
        let mut doc = plain_push_doc();
        doc["doc"]["title"] = json!("healthy");
        client.push(&doc).await;
        Healthy {
            client,
            title: "healthy".into(),
        }
    }

    pub async fn check(&mut self, after: &str) {
        self.title = format!("healthy after {after}");
        let title = self.title.clone();
        self.client
            .patch_ok(json!([{ "kind": "TitleChanged", "title": title }]))
            .await;
        let doc = self.client.pull().await;
        assert_eq!(doc["title"], json!(self.title), "after {after}");
        assert_eq!(doc["roots"][0]["id"], "p1062");
    }
}

/// A minimal HTTP/1.1 GET with `Connection: close`: status, headers (lowercase names), body.
pub async fn http_get(port: u16, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    http_request(port, "GET", path, "").await
}

/// Like [`http_get`], with any method and extra header lines (each ending in `\r\n`).
pub async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    extra_headers: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra_headers}\r\n"
    );
    exchange(port, req.as_bytes()).await
}

/// Writes a whole request on a new connection and reads the whole answer: its status,
/// headers (names lower-cased) and body (chunked encoding undone).
async fn exchange(port: u16, request: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut tcp = within("connect", TcpStream::connect(("127.0.0.1", port)))
        .await
        .expect("connect");
    within("write", tcp.write_all(request))
        .await
        .expect("write");
    let mut raw = Vec::new();
    within("the response", tcp.read_to_end(&mut raw))
        .await
        .expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8(raw[..split].to_vec()).expect("UTF-8 head");
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..eol]).expect("hex").trim(), 16)
                    .expect("chunk size");
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    (status, headers, body)
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Sends a request with a body; returns the status, headers and body.
pub async fn http_send(
    port: u16,
    method: &str,
    path: &str,
    extra_headers: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n{extra_headers}\r\n",
        body.len()
    );
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    exchange(port, &req).await
}

/// Sends JSON and parses the JSON answer.
pub async fn http_json(port: u16, method: &str, path: &str, body: &Json) -> (u16, Json) {
    let (status, _, body) = http_send(
        port,
        method,
        path,
        "Content-Type: application/json\r\n",
        body.to_string().as_bytes(),
    )
    .await;
    let json = if body.is_empty() {
        Json::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
    };
    (status, json)
}

/// Connects to a published document's websocket as a browser view with session id
/// `view`, and waits for the ACK.
pub async fn connect_view(port: u16, name: &str, view: &str) -> Client {
    let origin = format!("http://127.0.0.1:{port}");
    let (ws, resp) = try_connect(
        port,
        &format!("d/{name}"),
        &format!("bokeh, {}", token(view)),
        Some(&origin),
    )
    .await
    .expect("handshake");
    assert_eq!(resp.status(), 101);
    let mut c = Client::new(ws);
    c.expect_ack().await;
    c
}

/// An open server-sent-events response, read event by event.
pub struct SseReader {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// The status and headers (names lower-cased) of the response.
    pub status: u16,
    /// The response headers.
    pub headers: Vec<(String, String)>,
}

/// One SSE event: its fields (`id`, `data`, `retry`, `event`), data lines joined by `\n`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SseMessage {
    pub id: Option<String>,
    pub event: Option<String>,
    pub retry: Option<String>,
    pub data: String,
}

impl SseReader {
    /// Opens `path` with `Accept: text/event-stream` and `extra_headers` (lines ending in
    /// `\r\n`). HTTP/1.0, so that the body is not chunked.
    pub async fn open(port: u16, path: &str, extra_headers: &str) -> SseReader {
        let mut tcp = within("connect", TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("connect");
        let req = format!(
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n{extra_headers}\r\n"
        );
        within("write", tcp.write_all(req.as_bytes()))
            .await
            .expect("write");
        let mut r = SseReader {
            tcp,
            buf: Vec::new(),
            status: 0,
            headers: Vec::new(),
        };
        let head = r.until(b"\r\n\r\n").await;
        let head = String::from_utf8(head).expect("UTF-8 head");
        let mut lines = head.split("\r\n");
        r.status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status");
        r.headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        r
    }

    /// Reads up to and without `end`, which it consumes; bounded by [`within`].
    async fn until(&mut self, end: &[u8]) -> Vec<u8> {
        for _ in 0..10_000 {
            if let Some(at) = self.buf.windows(end.len()).position(|w| w == end) {
                let out = self.buf[..at].to_vec();
                self.buf.drain(..at + end.len());
                return out;
            }
            let mut chunk = [0u8; 4096];
            let n = within("an SSE event", self.tcp.read(&mut chunk))
                .await
                .expect("read");
            assert!(
                n > 0,
                "the stream ended; had {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
        panic!("no {end:?} in the stream");
    }

    /// The next event that has data (comments and keep-alives are skipped).
    pub async fn next(&mut self) -> SseMessage {
        for _ in 0..1000 {
            let block = String::from_utf8(self.until(b"\n\n").await).expect("UTF-8 event");
            let mut m = SseMessage::default();
            let mut data = Vec::new();
            for line in block.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                match field {
                    "id" => m.id = Some(value),
                    "event" => m.event = Some(value),
                    "retry" => m.retry = Some(value),
                    "data" => data.push(value),
                    _ => {}
                }
            }
            if !data.is_empty() {
                m.data = data.join("\n");
                return m;
            }
        }
        panic!("no event with data");
    }
}
