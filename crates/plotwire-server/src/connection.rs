//! One websocket connection: the Bokeh protocol adapter between a socket and a session
//! owner. The reader assembles fragments into messages and decodes them into requests
//! (document events); the writer drains the bounded outbox and sends keep-alive pings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use plotwire_protocol::codec::buffer_map;
use plotwire_protocol::event::{decode_doc_message, decode_patch};
use plotwire_protocol::frame::{Assembler, Fragment, OutgoingMessage, RawMessage};
use plotwire_protocol::message::MsgType;
use plotwire_protocol::BOKEH_VERSION;
use tokio::sync::{mpsc, watch};

use crate::outbox::{outbox, Next, Outbox, OutboxReceiver, OVERFLOW_CLOSE_CODE};

/// The close reason sent to a viewer that fell too far behind.
const OVERFLOW_REASON: &str = "viewer too slow: reconnect to resync";
use crate::session::{error_message, next_msgid, Command, ConnId, PeerKind, SessionHandle};

static CONN_COUNTER: AtomicU64 = AtomicU64::new(1);

/// Settings a connection needs.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Ping interval, if any.
    pub keep_alive: Option<Duration>,
    /// Outbox message bound.
    pub outbox_max_messages: usize,
    /// Outbox byte bound.
    pub outbox_max_bytes: usize,
    /// Most buffers in one Bokeh message.
    pub max_buffers: usize,
    /// Most bytes in one Bokeh message (all fragments).
    pub max_message_bytes: usize,
}

/// Why the reader stopped, and how to close.
struct Closing {
    code: u16,
    reason: String,
}

/// Closes a socket that failed the checks at open (spec §3.2): a close frame without a
/// status code, and nothing else.
pub async fn refuse(mut socket: WebSocket, why: &str) {
    tracing::warn!(reason = why, "websocket refused at open");
    let _ = socket.send(Message::Close(None)).await;
}

/// Runs a connection subscribed to `session` until either side closes.
pub async fn run(
    socket: WebSocket,
    session: Arc<SessionHandle>,
    kind: PeerKind,
    settings: ConnectionSettings,
) {
    let conn: ConnId = CONN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let (out, out_rx) = outbox(settings.outbox_max_messages, settings.outbox_max_bytes);
    let (sink, stream) = socket.split();
    let (close_tx, close_rx) = mpsc::channel::<Closing>(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    tracing::debug!(session = %session.id, conn, ?kind, "connection opened");

    if !session
        .send(Command::Join {
            conn,
            outbox: out.clone(),
            kind,
        })
        .await
    {
        session.detach();
        return;
    }
    let writer = tokio::spawn(write_loop(
        sink,
        out_rx,
        close_rx,
        stop_tx,
        settings.keep_alive,
    ));
    let closing = read_loop(stream, stop_rx, &session, conn, &out, &settings).await;
    if let Some(c) = closing {
        tracing::warn!(session = %session.id, conn, code = c.code, reason = %c.reason, "closing connection");
        let _ = close_tx.send(c).await;
    }
    session.send(Command::Leave { conn }).await;
    session.detach();
    drop(out);
    drop(close_tx);
    let _ = writer.await;
    tracing::debug!(session = %session.id, conn, "connection closed");
}

async fn read_loop(
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    mut stop: watch::Receiver<bool>,
    session: &SessionHandle,
    conn: ConnId,
    out: &Outbox,
    settings: &ConnectionSettings,
) -> Option<Closing> {
    let mut assembler =
        Assembler::new(settings.max_buffers).with_max_message_bytes(settings.max_message_bytes);
    loop {
        let frame = tokio::select! {
            frame = stream.next() => match frame {
                Some(f) => f,
                None => return None,
            },
            // The writer gave up on this connection (its viewer stopped reading).
            _ = stop.wait_for(|s| *s) => return None,
        };
        let fragment = match frame {
            Ok(Message::Text(t)) => Fragment::Text(t.into()),
            Ok(Message::Binary(b)) => Fragment::Binary(b),
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            Ok(Message::Close(_)) => return None,
            Err(e) => return read_error(e),
        };
        match assembler.push(fragment) {
            Ok(None) => {}
            Ok(Some(msg)) => {
                if let Err(c) = dispatch(msg, session, conn, out).await {
                    return Some(c);
                }
            }
            Err(e) => {
                return Some(Closing {
                    code: e.close_code(),
                    reason: e.close_reason(),
                })
            }
        }
    }
}

fn read_error(e: axum::Error) -> Option<Closing> {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(c)) => Some(Closing {
            code: 1009,
            reason: format!("message too big: {c}"),
        }),
        _ => {
            tracing::debug!(error = %inner, "websocket read error");
            None
        }
    }
}

/// Turns one assembled message into a request for the owner, or answers it here.
async fn dispatch(
    msg: RawMessage,
    session: &SessionHandle,
    conn: ConnId,
    out: &Outbox,
) -> Result<(), Closing> {
    let msgid = msg.header.msgid.clone();
    let Some(kind) = msg.kind() else {
        return Err(Closing {
            code: 1002,
            reason: format!("unknown message type {:?}", msg.header.msgtype),
        });
    };
    let buffers = buffer_map(msg.buffers);
    let command = match kind {
        MsgType::ServerInfoReq => {
            let content = format!(
                "{{\"version_info\":{{\"bokeh\":\"{BOKEH_VERSION}\",\"server\":\"{BOKEH_VERSION}\"}}}}"
            );
            reply(
                out,
                plotwire_protocol::frame::encode_message(
                    &next_msgid(),
                    MsgType::ServerInfoReply,
                    Some(&msgid),
                    content.into(),
                    &[],
                ),
            );
            return Ok(());
        }
        MsgType::PullDocReq => Command::Pull { conn, msgid },
        MsgType::PushDoc => match decode_doc_message(&msg.content, &buffers) {
            Ok(doc) => Command::Push {
                conn,
                msgid,
                doc: Box::new(doc),
            },
            Err(e) => return decode_failed(out, session, &msgid, "PUSH-DOC", &e.to_string()),
        },
        MsgType::PatchDoc => match decode_patch(&msg.content, &buffers) {
            Ok(events) => Command::Patch {
                conn,
                msgid,
                events,
            },
            Err(e) => return decode_failed(out, session, &msgid, "PATCH-DOC", &e.to_string()),
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
    if session.send(command).await {
        Ok(())
    } else {
        Err(Closing {
            code: 1011,
            reason: "session closed".into(),
        })
    }
}

fn decode_failed(
    out: &Outbox,
    session: &SessionHandle,
    msgid: &str,
    what: &str,
    error: &str,
) -> Result<(), Closing> {
    tracing::warn!(session = %session.id, error, "{what} could not be decoded, nothing applied");
    reply(
        out,
        error_message(msgid, &format!("{what} rejected: {error}")),
    );
    Ok(())
}

fn reply(out: &Outbox, msg: OutgoingMessage) {
    // A full outbox closes the connection through the writer; nothing else to do here.
    let _ = out.offer(msg);
}

fn to_ws(f: plotwire_protocol::frame::Fragment) -> Option<Message> {
    match f {
        Fragment::Text(b) => Utf8Bytes::try_from(b).ok().map(Message::Text),
        Fragment::Binary(b) => Some(Message::Binary(b)),
    }
}

/// How long a close frame may take to go out before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

async fn send_message(sink: &mut Sink, msg: OutgoingMessage) -> bool {
    for f in msg.frames {
        if let Some(m) = to_ws(f) {
            if sink.feed(m).await.is_err() {
                return false;
            }
        }
    }
    sink.flush().await.is_ok()
}

async fn close_with(sink: &mut Sink, code: u16, reason: String) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(frame)).await;
}

async fn write_loop(
    mut sink: Sink,
    mut out: OutboxReceiver,
    mut close_rx: mpsc::Receiver<Closing>,
    stop: watch::Sender<bool>,
    keep_alive: Option<Duration>,
) {
    let mut ping = keep_alive.map(|every| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut pings_sent: u64 = 0;
    loop {
        let tick = async {
            match ping.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            biased;
            c = close_rx.recv() => {
                if let Some(c) = c {
                    close_with(&mut sink, c.code, c.reason).await;
                }
                break;
            }
            next = out.next() => match next {
                Next::Send(msg) => {
                    tokio::select! {
                        ok = send_message(&mut sink, msg) => if !ok {
                            break;
                        },
                        // The viewer stopped reading while this write was blocked.
                        _ = out.overflowed() => {
                            close_with(&mut sink, OVERFLOW_CLOSE_CODE, OVERFLOW_REASON.into()).await;
                            break;
                        }
                    }
                }
                Next::Overflowed => {
                    close_with(&mut sink, OVERFLOW_CLOSE_CODE, OVERFLOW_REASON.into()).await;
                    break;
                }
                Next::Done => break,
            },
            _ = tick => {
                if sink.send(Message::Ping(pings_sent.to_string().into())).await.is_err() {
                    break;
                }
                pings_sent += 1;
            }
        }
    }
    stop.send_replace(true);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}
