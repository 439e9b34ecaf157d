//! A raw Bokeh protocol client (spec §3, §4): one websocket, `bokeh, <token>` subprotocols,
//! no Origin header (except [`Conn::connect_browser`]), TCP_NODELAY on the client side,
//! ACK awaited before anything is sent. Over TLS (wss://) when the [`Endpoint`] has a
//! client config.
//!
//! The same code talks to plotwire and to `bokeh serve`, so every difference in the
//! figures comes from the server.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use plotwire_protocol::frame::{encode_message, Assembler, Fragment, RawMessage};
use plotwire_protocol::message::MsgType;
use plotwire_protocol::token::generate_token;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::error::{err, Context, Result};

/// Largest websocket message or frame the client accepts (a 1.2M-point float64 column is
/// 9.6 MB; Bokeh itself refuses incoming messages above 20 MiB).
const MAX_INCOMING_BYTES: usize = 256 * 1024 * 1024;

/// Lifetime of the tokens the client makes. Expiry is only checked when a socket opens.
const TOKEN_LIFETIME_SECS: i64 = 3600;

/// How many unrelated messages a request may skip while it waits for its reply.
const MAX_SKIPPED_MESSAGES: usize = 100_000;

type Ws = WebSocketStream<Wire>;

/// What a websocket runs on: the counted TCP stream, or TLS over it.
pub enum Wire {
    /// ws://.
    Plain(Counted),
    /// wss://.
    Tls(Box<tokio_rustls::client::TlsStream<Counted>>),
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_flush(cx),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Wire::Plain(s) => s.is_write_vectored(),
            Wire::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// A TCP stream that counts the bytes read from it (the bytes on the wire: websocket
/// framing included).
pub struct Counted {
    inner: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            let n = buf.filled().len().saturating_sub(before);
            self.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Options for [`Conn::connect_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectOptions {
    /// `SO_RCVBUF` for the client's socket (a small one makes a viewer that stops reading
    /// push back on the server sooner).
    pub recv_buffer: Option<u32>,
}

/// Where a server's Bokeh websocket is: `ws://127.0.0.1:<port>/<app>/ws`, or `wss://`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The server's port on 127.0.0.1.
    pub port: u16,
    /// The app path segment (`target` for both servers: plotwire accepts any app name).
    pub app: String,
    /// TLS with this client config (wss://), or plain TCP (ws://).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A TLS connection over `tcp` to 127.0.0.1 with `config`.
///
/// # Errors
/// When the handshake fails.
pub async fn tls_connect<S>(
    config: &Arc<rustls::ClientConfig>,
    tcp: S,
) -> Result<tokio_rustls::client::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
        .context(|| "TLS handshake with 127.0.0.1")
}

/// The sending half of a connection: encodes Bokeh messages into fragments.
pub struct Sender {
    sink: SplitSink<Ws, Message>,
    next_id: u64,
}

/// The receiving half of a connection: assembles fragments into Bokeh messages.
pub struct Receiver {
    stream: SplitStream<Ws>,
    assembler: Assembler,
    read: Arc<AtomicU64>,
}

/// One Bokeh client connection, ACK already received.
pub struct Conn {
    /// The sending half.
    pub tx: Sender,
    /// The receiving half.
    pub rx: Receiver,
}

/// An unsigned session token for `session_id` (what a server without a secret key
/// accepts, and what a page of such a server carries).
///
/// # Errors
/// When the token cannot be made.
pub fn session_token(session_id: &str) -> Result<String> {
    generate_token(
        session_id,
        now_epoch_secs().saturating_add(TOKEN_LIFETIME_SECS),
        None,
        None,
    )
    .context(|| "making the session token")
}

/// The current Unix time in seconds.
fn now_epoch_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Conn {
    /// Opens a websocket to `endpoint` for `session_id` and waits for the ACK.
    ///
    /// # Errors
    /// Connection or handshake failures, a first message other than ACK, or `deadline`.
    pub async fn connect(endpoint: &Endpoint, session_id: &str, deadline: Instant) -> Result<Conn> {
        Conn::connect_with(endpoint, session_id, deadline, ConnectOptions::default()).await
    }

    /// [`Conn::connect`] with socket options.
    ///
    /// # Errors
    /// As [`Conn::connect`], plus a socket option that cannot be set.
    pub async fn connect_with(
        endpoint: &Endpoint,
        session_id: &str,
        deadline: Instant,
        options: ConnectOptions,
    ) -> Result<Conn> {
        let token = session_token(session_id)?;
        Conn::open(endpoint, &token, None, deadline, options).await
    }

    /// Connects as a browser would: with `token` (e.g. the one a page carried) and an
    /// `Origin` header, then waits for the ACK.
    ///
    /// # Errors
    /// As [`Conn::connect`].
    pub async fn connect_browser(
        endpoint: &Endpoint,
        token: &str,
        origin: &str,
        deadline: Instant,
    ) -> Result<Conn> {
        Conn::open(
            endpoint,
            token,
            Some(origin),
            deadline,
            ConnectOptions::default(),
        )
        .await
    }

    /// Opens the websocket with `token` (and `origin`, if any) and waits for the ACK.
    async fn open(
        endpoint: &Endpoint,
        token: &str,
        origin: Option<&str>,
        deadline: Instant,
        options: ConnectOptions,
    ) -> Result<Conn> {
        let scheme = if endpoint.tls.is_some() { "wss" } else { "ws" };
        let url = format!("{scheme}://127.0.0.1:{}/{}/ws", endpoint.port, endpoint.app);
        let mut request = url
            .as_str()
            .into_client_request()
            .context(|| format!("building the request for {url}"))?;
        let protocols = HeaderValue::from_str(&format!("bokeh, {token}"))
            .context(|| "the subprotocol header")?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols);
        if let Some(origin) = origin {
            let value = HeaderValue::from_str(origin).context(|| "the Origin header")?;
            request.headers_mut().insert("Origin", value);
        }

        let socket = TcpSocket::new_v4().context(|| "creating a socket")?;
        if let Some(size) = options.recv_buffer {
            socket
                .set_recv_buffer_size(size)
                .context(|| "setting SO_RCVBUF")?;
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], endpoint.port));
        let tcp = timeout_at(deadline, socket.connect(addr))
            .await
            .context(|| format!("connecting to {addr}"))?
            .context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true).context(|| "setting TCP_NODELAY")?;
        let read = Arc::new(AtomicU64::new(0));
        let tcp = Counted {
            inner: tcp,
            read: Arc::clone(&read),
        };
        let tcp = match &endpoint.tls {
            None => Wire::Plain(tcp),
            Some(config) => Wire::Tls(Box::new(
                timeout_at(deadline, tls_connect(config, tcp))
                    .await
                    .context(|| format!("TLS handshake with {addr}"))??,
            )),
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_INCOMING_BYTES))
            .max_frame_size(Some(MAX_INCOMING_BYTES));
        let (ws, _response) = timeout_at(
            deadline,
            tokio_tungstenite::client_async_with_config(request, tcp, Some(config)),
        )
        .await
        .context(|| format!("websocket handshake with {url}"))?
        .context(|| format!("websocket handshake with {url}"))?;
        let (sink, stream) = ws.split();
        let mut conn = Conn {
            tx: Sender { sink, next_id: 1 },
            rx: Receiver {
                stream,
                assembler: Assembler::default().with_max_message_bytes(MAX_INCOMING_BYTES),
                read,
            },
        };
        let first = conn.rx.recv(deadline).await.context(|| "waiting for ACK")?;
        if first.kind() != Some(MsgType::Ack) {
            return Err(err(format!(
                "the first message was {}, not ACK",
                first.header.msgtype
            )));
        }
        Ok(conn)
    }

    /// Sends a request and waits for the message whose `reqid` is its `msgid`. Other
    /// messages that arrive meanwhile (e.g. PUSH-DOC's RootAdded echo) are skipped.
    ///
    /// # Errors
    /// Send or receive failures, an ERROR reply (its text is quoted), or `deadline`.
    pub async fn request(
        &mut self,
        msgtype: MsgType,
        content: Bytes,
        buffers: &[(String, Bytes)],
        deadline: Instant,
    ) -> Result<RawMessage> {
        let msgid = self.tx.send(msgtype, content, buffers, deadline).await?;
        for _ in 0..MAX_SKIPPED_MESSAGES {
            let reply = self.rx.recv(deadline).await?;
            if reply.header.reqid.as_deref() != Some(msgid.as_str()) {
                continue;
            }
            if reply.kind() == Some(MsgType::Error) {
                return Err(err(format!(
                    "{msgtype} got ERROR: {}",
                    error_text(&reply.content)
                )));
            }
            return Ok(reply);
        }
        Err(err(format!(
            "no reply to {msgtype} among {MAX_SKIPPED_MESSAGES} messages"
        )))
    }

    /// Sends PULL-DOC-REQ and waits for its reply (the whole document).
    pub async fn pull(&mut self, deadline: Instant) -> Result<RawMessage> {
        self.request(
            MsgType::PullDocReq,
            Bytes::from_static(b"{}"),
            &[],
            deadline,
        )
        .await
    }

    /// Sends a request that must be answered by OK (PUSH-DOC, PATCH-DOC).
    ///
    /// # Errors
    /// As [`Conn::request`], plus a reply other than OK.
    pub async fn request_ok(
        &mut self,
        msgtype: MsgType,
        content: Bytes,
        buffers: &[(String, Bytes)],
        deadline: Instant,
    ) -> Result<()> {
        let reply = self.request(msgtype, content, buffers, deadline).await?;
        match reply.kind() {
            Some(MsgType::Ok) => Ok(()),
            _ => Err(err(format!(
                "{msgtype} was answered by {}, not OK",
                reply.header.msgtype
            ))),
        }
    }

    /// Closes the connection with a close frame (best effort, at most one second).
    pub async fn close(self) {
        self.tx.close().await;
    }
}

impl Sender {
    /// Encodes and sends one Bokeh message, all fragments in one flush. Returns its msgid.
    ///
    /// # Errors
    /// A websocket error, or `deadline` (a server that stops reading).
    pub async fn send(
        &mut self,
        msgtype: MsgType,
        content: Bytes,
        buffers: &[(String, Bytes)],
        deadline: Instant,
    ) -> Result<String> {
        let msgid = format!("b{}", self.next_id);
        self.next_id += 1;
        let message = encode_message(&msgid, msgtype, None, content, buffers);
        let sink = &mut self.sink;
        let write = async move {
            for fragment in message.frames {
                let ws_message = match fragment {
                    Fragment::Text(text) => Message::Text(
                        Utf8Bytes::try_from(text).context(|| "a text fragment is not UTF-8")?,
                    ),
                    Fragment::Binary(data) => Message::Binary(data),
                };
                sink.feed(ws_message)
                    .await
                    .context(|| "writing a fragment")?;
            }
            sink.flush().await.context(|| "flushing a message")
        };
        timeout_at(deadline, write)
            .await
            .context(|| format!("sending {msgtype}"))??;
        Ok(msgid)
    }

    /// Sends a close frame (best effort, at most one second).
    pub async fn close(mut self) {
        let _ = timeout(Duration::from_secs(1), self.sink.close()).await;
    }
}

impl Receiver {
    /// The bytes read from the socket so far (websocket framing and the handshake
    /// response included).
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Receives the next complete Bokeh message. Pings and pongs are skipped.
    ///
    /// # Errors
    /// A close by the server, a websocket or framing error, or `deadline`.
    pub async fn recv(&mut self, deadline: Instant) -> Result<RawMessage> {
        // Bounded by `deadline`: every iteration waits for a websocket message.
        loop {
            let next = timeout_at(deadline, self.stream.next())
                .await
                .context(|| "timed out waiting for a message")?;
            let fragment = match next {
                None => return Err(err("the server dropped the connection")),
                Some(Err(e)) => return Err(err(format!("websocket error: {e}"))),
                Some(Ok(Message::Text(text))) => Fragment::Text(Bytes::from(text)),
                Some(Ok(Message::Binary(data))) => Fragment::Binary(data),
                Some(Ok(Message::Close(frame))) => {
                    return Err(err(match frame {
                        Some(f) => format!("the server closed the socket: {} {}", f.code, f.reason),
                        None => "the server closed the socket without a code".to_owned(),
                    }))
                }
                Some(Ok(_)) => continue,
            };
            if let Some(message) = self
                .assembler
                .push(fragment)
                .context(|| "bad framing from the server")?
            {
                return Ok(message);
            }
        }
    }
}

/// The `text` of an ERROR reply's content, or the raw content when it has none.
fn error_text(content: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(content)
        .ok()
        .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(content).into_owned())
}
