//! One websocket connection: the Bokeh protocol adapter between a socket and a session
//! owner. The reader assembles fragments into messages and decodes them into requests
//! (document events); the writer drains the bounded outbox, sends keep-alive pings and
//! closes the socket when the viewer lags, the peer goes silent, the session ends or the
//! server shuts down.
//!
//! A Bokeh message is never cut short on the wire: BokehJS keeps a half-received
//! message across its reconnect and then misreads every later message, so every close
//! happens between messages. A close is also a handshake: after its close frame the
//! connection keeps reading until the peer answers (or a timeout), because closing a TCP
//! socket with unread input makes the kernel reset it and discard what was still unsent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use plotwire_protocol::codec::buffer_map;
use plotwire_protocol::event::{decode_doc_message, decode_patch};
use plotwire_protocol::frame::{Assembler, Fragment, OutgoingMessage, RawMessage};
use plotwire_protocol::message::MsgType;
use plotwire_protocol::BOKEH_VERSION;
use tokio::sync::{mpsc, watch, Semaphore};
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use crate::framing::{send_message, Sink};
use crate::metrics::ConnMeters;
use crate::outbox::{outbox, Next, Outbox, OutboxReceiver, OVERFLOW_CLOSE_CODE};
use crate::session::{error_message, next_msgid, Command, ConnId, PeerKind, SessionHandle};
use crate::upgrade::WebSocket;

/// The close reason sent to a viewer that fell too far behind.
const OVERFLOW_REASON: &str = "viewer too slow: reconnect to resync";

/// The close code and reason sent to every websocket when the server shuts down.
const SHUTDOWN_CLOSE: (u16, &str) = (1001, "server shutting down");

/// How long a connection closed for a bad message waits for the replies to its earlier
/// requests.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a socket closed for a bad message stays open after its close frame. The
/// reader may have stopped with input unread (a frame past the size limit), and closing
/// a TCP socket with unread input resets it, which can destroy the close frame before the
/// peer reads it.
const LINGER_AFTER_BAD_INPUT: Duration = Duration::from_millis(500);

static CONN_COUNTER: AtomicU64 = AtomicU64::new(1);

/// Settings a connection needs.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Ping interval, if any.
    pub keep_alive: Option<Duration>,
    /// Close a connection silent for this long, if set.
    pub dead_peer_timeout: Option<Duration>,
    /// Outbox message bound.
    pub outbox_max_messages: usize,
    /// Outbox byte bound.
    pub outbox_max_bytes: usize,
    /// Most buffers in one Bokeh message.
    pub max_buffers: usize,
    /// Most bytes in one Bokeh message (all fragments).
    pub max_message_bytes: usize,
    /// Most bytes inline gzip values of one message may inflate to.
    pub max_decoded_bytes: usize,
    /// Most requests waiting for their replies.
    pub max_inflight: usize,
    /// Whether PUSH-DOC is accepted: access control is off, or the connection presented
    /// a key that may write to the session (`docs/access.md`).
    pub may_push: bool,
    /// The rate limits every message counts against (`--limit-requests`), and the client
    /// (key or address) it counts for; `None` when off or the client is unknown.
    pub limit: Option<(Arc<crate::limits::Limits>, crate::limits::Who)>,
}

impl ConnectionSettings {
    /// How long a blocked write may take to finish its message, and a close to be
    /// answered, before the socket is dropped.
    fn close_timeout(&self) -> Duration {
        self.dead_peer_timeout.unwrap_or(Duration::from_secs(60))
    }
}

/// Why the reader stopped, and how to close.
struct Closing {
    code: u16,
    reason: String,
}

/// Closes a socket that failed the checks at open (spec §3.2): a close frame without a
/// status code, and nothing else.
pub async fn refuse(mut socket: WebSocket, why: &str) {
    crate::warn_limited!(reason = why, "websocket refused at open");
    let _ = socket.send(Message::Close(None)).await;
}

/// What the writer tells the reader when the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Still open.
    Running,
    /// A close frame went out: read on to the peer's close.
    Drain,
    /// The peer is gone or stuck: stop now.
    Abandon,
}

/// When the peer was last heard from, in milliseconds since the connection opened.
struct Heard {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Heard {
    fn now(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }
}

/// Where a connection runs: its session, its peer's kind and view, and the server's.
pub struct Joined {
    /// The session it subscribes to.
    pub session: Arc<SessionHandle>,
    /// Browser or producer.
    pub kind: PeerKind,
    /// Its Bokeh session id.
    pub view: String,
    /// Turns true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Counts its messages and bytes ([`crate::metrics::Metrics::connection`]).
    pub meters: ConnMeters,
}

/// Runs a connection subscribed to `joined.session` until either side closes, the
/// session ends or the server shuts down.
pub async fn run(socket: WebSocket, joined: Joined, settings: ConnectionSettings) {
    let Joined {
        session,
        kind,
        view,
        shutdown,
        meters,
    } = joined;
    let meters = Arc::new(meters);
    let conn: ConnId = CONN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let (out, out_rx) = outbox(settings.outbox_max_messages, settings.outbox_max_bytes);
    let (sink, stream) = socket.split();
    let (close_tx, close_rx) = mpsc::channel::<Closing>(1);
    let (stop_tx, stop_rx) = watch::channel(Stop::Running);
    let (reader_done_tx, reader_done_rx) = watch::channel(false);
    let heard = Arc::new(Heard {
        opened: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    tracing::debug!(session = %session.id, conn, ?kind, "connection opened");

    if !session
        .send(Command::Join {
            conn,
            outbox: out.clone(),
            kind,
            view,
        })
        .await
    {
        session.detach();
        return;
    }
    let writer = tokio::spawn(write_loop(
        sink,
        Stops {
            close: close_rx,
            ended: session.ended(),
            shutdown,
        },
        out_rx,
        ReaderLink {
            stop: stop_tx,
            done: reader_done_rx,
        },
        heard.clone(),
        settings.clone(),
        meters.clone(),
    ));
    let reader = Reader {
        session: &session,
        conn,
        out: &out,
        inflight: Arc::new(Semaphore::new(settings.max_inflight.max(1))),
        settings: &settings,
        meters: &meters,
    };
    let closing = reader.run(stream, stop_rx, &heard).await;
    reader_done_tx.send_replace(true);
    if let Some(c) = closing {
        crate::warn_limited!(session = %session.id, conn, code = c.code, reason = %c.reason, "closing connection");
        let _ = close_tx.send(c).await;
    }
    session.send(Command::Leave { conn }).await;
    session.detach();
    drop(out);
    drop(close_tx);
    let _ = writer.await;
    tracing::debug!(session = %session.id, conn, "connection closed");
}

struct Reader<'a> {
    session: &'a SessionHandle,
    conn: ConnId,
    out: &'a Outbox,
    inflight: Arc<Semaphore>,
    settings: &'a ConnectionSettings,
    meters: &'a ConnMeters,
}

impl Reader<'_> {
    async fn run(
        &self,
        mut stream: futures_util::stream::SplitStream<WebSocket>,
        mut stop: watch::Receiver<Stop>,
        heard: &Heard,
    ) -> Option<Closing> {
        let mut assembler = Assembler::new(self.settings.max_buffers)
            .with_max_message_bytes(self.settings.max_message_bytes);
        loop {
            let frame = tokio::select! {
                frame = stream.next() => match frame {
                    Some(f) => f,
                    None => return None,
                },
                // The writer is closing: read to the peer's close, so the socket is not
                // reset with unread input (unless the peer is gone anyway).
                how = async { stop.wait_for(|s| *s != Stop::Running).await.map(|s| *s) } => {
                    if !matches!(how, Ok(Stop::Drain)) {
                        return None;
                    }
                    let drain = async {
                        while let Some(Ok(m)) = stream.next().await {
                            if matches!(m, Message::Close(_)) {
                                break;
                            }
                        }
                    };
                    let _ = tokio::time::timeout(self.settings.close_timeout(), drain).await;
                    return None;
                }
            };
            heard.now();
            let fragment = match frame {
                Ok(Message::Text(t)) => {
                    self.meters.bytes_in.inc_by(t.len() as u64);
                    Fragment::Text(t.into())
                }
                Ok(Message::Binary(b)) => {
                    self.meters.bytes_in.inc_by(b.len() as u64);
                    Fragment::Binary(b)
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Ok(Message::Close(_)) => return None,
                Err(e) => return read_error(e),
            };
            match assembler.push(fragment) {
                Ok(None) => {}
                Ok(Some(msg)) => {
                    self.meters.messages_in.inc();
                    if let Err(c) = self.dispatch(msg).await {
                        return Some(c);
                    }
                }
                Err(e) => {
                    self.settle().await;
                    return Some(Closing {
                        code: e.close_code(),
                        reason: e.close_reason(),
                    });
                }
            }
        }
    }

    /// Waits (bounded) until the owner has answered every request this connection made,
    /// so that their replies go out before a close.
    async fn settle(&self) {
        let all = u32::try_from(self.settings.max_inflight.max(1)).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(SETTLE_TIMEOUT, self.inflight.acquire_many(all)).await;
    }

    /// Turns one assembled message into a request for the owner, or answers it here.
    /// Waits, without reading further, while the connection has its most requests in
    /// flight or the session's queue is full.
    async fn dispatch(&self, msg: RawMessage) -> Result<(), Closing> {
        let msgid = msg.header.msgid.clone();
        let Some(kind) = msg.kind() else {
            return Err(Closing {
                code: 1002,
                reason: format!("unknown message type {:?}", msg.header.msgtype),
            });
        };
        if let Some((limits, who)) = &self.settings.limit {
            if let Err(over) = limits.request(who) {
                crate::warn_limited!(session = %self.session.id, client = %who, "message over the rate limit, not applied");
                self.reply(error_message(
                    &msgid,
                    &format!("{over}; this message was not applied"),
                ));
                return Ok(());
            }
        }
        let size = msg.content.len() + msg.buffers.iter().map(|(_, b)| b.len()).sum::<usize>();
        let buffers = buffer_map(msg.buffers).with_inflate_limit(self.settings.max_decoded_bytes);
        let gone = || Closing {
            code: 1011,
            reason: "session closed".into(),
        };
        let conn = self.conn;
        let command = match kind {
            MsgType::ServerInfoReq => {
                let content = format!(
                    "{{\"version_info\":{{\"bokeh\":\"{BOKEH_VERSION}\",\"server\":\"{BOKEH_VERSION}\"}}}}"
                );
                self.reply(plotwire_protocol::frame::encode_message(
                    &next_msgid(),
                    MsgType::ServerInfoReply,
                    Some(&msgid),
                    content.into(),
                    &[],
                ));
                return Ok(());
            }
            MsgType::PullDocReq => {
                let ticket = self
                    .session
                    .ticket(size, &self.inflight)
                    .await
                    .ok_or_else(gone)?;
                Command::Pull {
                    conn,
                    msgid,
                    ticket,
                }
            }
            MsgType::PushDoc if !self.settings.may_push => {
                crate::warn_limited!(session = %self.session.id, "PUSH-DOC refused: no key that may write to this session");
                self.reply(error_message(
                    &msgid,
                    "PUSH-DOC refused: this server needs a key with write scope to push a document; \
                     pass it as ClientSession(..., arguments={\"plotwire_key\": KEY})",
                ));
                return Ok(());
            }
            MsgType::PushDoc => match decode_doc_message(&msg.content, &buffers) {
                Ok(doc) => {
                    let ticket = self
                        .session
                        .ticket(size, &self.inflight)
                        .await
                        .ok_or_else(gone)?;
                    Command::Push {
                        conn,
                        msgid,
                        doc: Box::new(doc),
                        ticket,
                    }
                }
                Err(e) => {
                    self.decode_failed(&msgid, "PUSH-DOC", &e.to_string());
                    return Ok(());
                }
            },
            MsgType::PatchDoc => match decode_patch(&msg.content, &buffers) {
                Ok(events) => {
                    if let Some((limits, who)) = &self.settings.limit {
                        if let Err(over) = limits.events(who, &events) {
                            crate::warn_limited!(session = %self.session.id, client = %who, "PATCH-DOC over the points limit, not applied");
                            self.reply(error_message(
                                &msgid,
                                &format!("{over}; this PATCH-DOC was not applied"),
                            ));
                            return Ok(());
                        }
                    }
                    let ticket = self
                        .session
                        .ticket(size, &self.inflight)
                        .await
                        .ok_or_else(gone)?;
                    Command::Patch {
                        conn,
                        msgid,
                        events,
                        ticket,
                    }
                }
                Err(e) => {
                    self.decode_failed(&msgid, "PATCH-DOC", &e.to_string());
                    return Ok(());
                }
            },
            MsgType::Ack
            | MsgType::Ok
            | MsgType::Error
            | MsgType::ServerInfoReply
            | MsgType::PullDocReply => {
                return Err(Closing {
                    code: 1002,
                    reason: format!("message {} is not expected on the server", kind.as_str()),
                })
            }
        };
        if self.session.send(command).await {
            Ok(())
        } else {
            Err(gone())
        }
    }

    fn decode_failed(&self, msgid: &str, what: &str, error: &str) {
        crate::warn_limited!(session = %self.session.id, error, "{what} could not be decoded, nothing applied");
        self.reply(error_message(msgid, &format!("{what} rejected: {error}")));
    }

    fn reply(&self, msg: OutgoingMessage) {
        // A full outbox closes the connection through the writer; nothing else to do here.
        let _ = self.out.offer(msg);
    }
}

/// The close a websocket-level error earns: 1009 for a frame or message past the
/// limit, 1007 for text that is not UTF-8, 1002 for any other protocol violation. Other
/// errors (the peer vanished) end the connection without a close.
fn read_error(e: tungstenite::Error) -> Option<Closing> {
    let (code, what) = match e {
        tungstenite::Error::Capacity(c) => (1009, format!("message too big: {c}")),
        tungstenite::Error::Utf8(e) => (1007, format!("text is not UTF-8: {e}")),
        tungstenite::Error::Protocol(p) => (1002, format!("websocket protocol error: {p}")),
        other => {
            tracing::debug!(error = %other, "websocket read error");
            return None;
        }
    };
    Some(Closing { code, reason: what })
}

/// Counts one message of `len` bytes written whole.
fn count_sent(meters: &ConnMeters, len: usize) {
    meters.messages_out.inc();
    meters
        .bytes_out
        .inc_by(u64::try_from(len).unwrap_or(u64::MAX));
}

async fn close_with(sink: &mut Sink, code: u16, reason: String, within: Duration) {
    let frame = Message::Close(Some(CloseFrame {
        code: code.into(),
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(within, sink.send(frame)).await;
}

/// Everything besides the outbox that can end a connection.
struct Stops {
    /// The reader's verdict on a bad message.
    close: mpsc::Receiver<Closing>,
    /// The session ended abnormally (its owner panicked).
    ended: watch::Receiver<Option<u16>>,
    /// The server is shutting down.
    shutdown: watch::Receiver<bool>,
}

/// How the writer and the reader of one connection end together.
struct ReaderLink {
    /// Tells the reader how the writer stopped.
    stop: watch::Sender<Stop>,
    /// Turns true once the reader has stopped.
    done: watch::Receiver<bool>,
}

/// Whether the peer has been silent past the timeout (logged when it has).
fn is_dead(heard: &Heard, timeout: Option<Duration>) -> bool {
    let Some(timeout) = timeout else {
        return false;
    };
    let silent = heard.silent_for();
    if silent < timeout {
        return false;
    }
    crate::warn_limited!(
        silent_ms = u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
        "peer silent past --dead-peer-timeout: dropping the connection"
    );
    true
}

/// An interval, or a tick that never comes.
async fn tick(t: &mut Option<tokio::time::Interval>) {
    match t.as_mut() {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}

fn interval(every: Option<Duration>) -> Option<tokio::time::Interval> {
    every.map(|every| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    })
}

async fn write_loop(
    mut sink: Sink,
    mut stops: Stops,
    mut out: OutboxReceiver,
    mut reader: ReaderLink,
    heard: Arc<Heard>,
    settings: ConnectionSettings,
    meters: Arc<ConnMeters>,
) {
    let mut ping = interval(settings.keep_alive);
    // Silence is checked four times per timeout, so a dead peer goes within 1.25 × it.
    let mut liveness = interval(
        settings
            .dead_peer_timeout
            .map(|t| (t / 4).max(Duration::from_millis(10))),
    );
    // A write that a stalled viewer blocks gets this long to finish its message.
    let finish_within = settings.close_timeout();
    let mut pings_sent: u64 = 0;
    let mut linger = false;
    // The peer is gone or not reading at all: drop the socket without a close handshake.
    let mut abandon = false;
    loop {
        tokio::select! {
            biased;
            c = stops.close.recv() => {
                if let Some(c) = c {
                    // Replies already queued go out before the close.
                    while let Some(msg) = out.try_next() {
                        let len = msg.total_len();
                        let sent = tokio::time::timeout(finish_within, send_message(&mut sink, msg)).await;
                        out.written(len);
                        if !matches!(sent, Ok(true)) {
                            break;
                        }
                        count_sent(&meters, len);
                    }
                    close_with(&mut sink, c.code, c.reason, finish_within).await;
                    linger = true;
                }
                break;
            }
            Ok(()) = async { stops.shutdown.wait_for(|s| *s).await.map(|_| ()) } => {
                close_with(&mut sink, SHUTDOWN_CLOSE.0, SHUTDOWN_CLOSE.1.into(), finish_within).await;
                break;
            }
            Ok(code) = async { stops.ended.wait_for(Option::is_some).await.map(|c| *c) } => {
                let code = code.unwrap_or(1011);
                close_with(&mut sink, code, "session failed: reload the page".into(), finish_within).await;
                break;
            }
            next = out.next() => match next {
                Next::Send(msg) => {
                    let len = msg.total_len();
                    // Some(true): written; Some(false): the socket failed; None: the
                    // viewer overflowed and its message was finished: close with 1013.
                    let outcome = {
                        let write = send_message(&mut sink, msg);
                        tokio::pin!(write);
                        loop {
                            tokio::select! {
                                ok = &mut write => break Some(ok),
                                // The viewer stopped reading while this write was blocked:
                                // the message is finished (never cut short) before the close.
                                _ = out.overflowed() => {
                                    break match tokio::time::timeout(finish_within, &mut write).await {
                                        Ok(true) => None,
                                        _ => Some(false),
                                    };
                                }
                                _ = tick(&mut liveness) => if is_dead(&heard, settings.dead_peer_timeout) {
                                    break Some(false);
                                },
                            }
                        }
                    };
                    out.written(len);
                    match outcome {
                        Some(true) => {
                            count_sent(&meters, len);
                            continue;
                        }
                        Some(false) => {
                            abandon = true;
                            break;
                        }
                        None => {
                            close_with(&mut sink, OVERFLOW_CLOSE_CODE, OVERFLOW_REASON.into(), finish_within).await;
                            break;
                        }
                    }
                }
                Next::Overflowed => {
                    close_with(&mut sink, OVERFLOW_CLOSE_CODE, OVERFLOW_REASON.into(), finish_within).await;
                    break;
                }
                Next::Done => break,
            },
            _ = tick(&mut ping) => {
                if sink.send(Message::Ping(pings_sent.to_string().into())).await.is_err() {
                    abandon = true;
                    break;
                }
                pings_sent += 1;
            }
            _ = tick(&mut liveness) => if is_dead(&heard, settings.dead_peer_timeout) {
                abandon = true;
                break;
            },
        }
    }
    if abandon {
        // The reader returns at once, and the socket goes with it.
        reader.stop.send_replace(Stop::Abandon);
        return;
    }
    // The reader drains to the peer's close; then the socket is closed.
    reader.stop.send_replace(Stop::Drain);
    let _ = tokio::time::timeout(finish_within, reader.done.wait_for(|d| *d)).await;
    let _ = tokio::time::timeout(finish_within, sink.close()).await;
    if linger {
        tokio::time::sleep(LINGER_AFTER_BAD_INPUT).await;
    }
}
