//! The bad-input catalogue of `docs/bad-input.md`, as one table run by one driver.
//!
//! Each case sends one piece of bad input to the in-process server on 127.0.0.1 and
//! checks its outcome exactly (ERROR text, close code, HTTP status and JSON error). After
//! every case, a witness session on the same server must still relay a stream from its
//! producer to its viewer, and `/healthz` must answer. Cases the server gets wrong today
//! are listed in [`KNOWN_FAILING`] and run by the ignored test `known_failing_cases`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod support;

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use plotwire_protocol::frame::Fragment;
use plotwire_protocol::message::MsgType;
use plotwire_protocol::token::{generate_token, sign_session_id};
use plotwire_server::{Config, SessionIdMode};
use serde_json::{json, Value as Json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Ids of cases the server gets wrong today (see "fails today" in the doc). Remove an id
/// once the server is fixed; `known_failing_cases` runs exactly these.
const KNOWN_FAILING: &[&str] = &[];

/// The msgid of every bad Bokeh message, so that replies can be matched.
const MSGID: &str = "bad";

/// The signing key of the signed server.
const SECRET: &str = "bad-input-secret-key-0123456789abcdefghijklmnopqrstuvwxyz";

/// The bound on one whole case, witness check included.
const CASE_BOUND: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// The table's types
// ---------------------------------------------------------------------------------------

/// One row of the catalogue.
struct Case {
    id: &'static str,
    srv: Srv,
    input: Input,
    expect: Expect,
}

/// The server a case runs on.
#[derive(Clone, Copy)]
enum Srv {
    /// Unsigned ids and the small limits of [`limits`].
    Main,
    /// Signed ids with [`SECRET`].
    Signed,
    /// A server of its own: [`limits`] changed by the function (new limits go here).
    Tweaked(fn(&mut Config)),
}

/// What a case sends.
enum Input {
    /// Websocket messages on a fresh connection to a victim session, after ACK and push.
    Frames(Vec<Message>),
    /// Raw bytes on the TCP stream of such a connection: websocket-level violations.
    Raw(Vec<u8>),
    /// A websocket handshake to `path` with these extra header lines.
    Handshake { path: &'static str, headers: String },
    /// An HTTP request with `Connection: close` and these extra header lines.
    Http {
        method: &'static str,
        path: String,
        headers: String,
    },
    /// A viewer that stops reading while a producer streams `batches` buffers of `bytes`.
    StalledViewer { batches: usize, bytes: usize },
    /// A REST request on the published victim document `rest/victim-<id>` (made fresh
    /// for the case): `{doc}` in the path stands for its name. Afterwards the victim's
    /// source must be unchanged.
    Rest {
        method: &'static str,
        path: &'static str,
        content_type: &'static str,
        body: Vec<u8>,
        headers: &'static str,
    },
}

/// The outcome a case must have.
enum Expect {
    /// An ERROR reply to [`MSGID`] whose text contains the gist; the connection stays
    /// open and the victim document is unchanged.
    Error(&'static str),
    /// An OK reply to [`MSGID`]: the input is accepted.
    Ok,
    /// A close frame with this code whose reason contains the gist, no message before it;
    /// the victim document is unchanged.
    Close(u16, &'static str),
    /// A reply of this type to the complete message, then the close of [`Expect::Close`].
    ReplyThenClose(&'static str, u16, &'static str),
    /// A handshake refusal: 101, then a close frame without status code and nothing else.
    Refused,
    /// A handshake that is accepted: 101, then the ACK.
    Accepted,
    /// HTTP status and a JSON body whose `error` contains the gist.
    Http(u16, &'static str),
    /// An HTTP status only (answered by hyper itself, without a body of ours).
    HttpStatus(u16),
    /// 200 with a content type containing the gist.
    HttpOk(&'static str),
}

// ---------------------------------------------------------------------------------------
// Table helpers
// ---------------------------------------------------------------------------------------

fn case(id: &'static str, input: Input, expect: Expect) -> Case {
    Case {
        id,
        srv: Srv::Main,
        input,
        expect,
    }
}

impl Case {
    fn on(mut self, srv: Srv) -> Case {
        self.srv = srv;
        self
    }
}

fn t(s: &str) -> Message {
    Message::text(s.to_owned())
}

fn b(data: &[u8]) -> Message {
    Message::binary(data.to_vec())
}

fn frames(f: Vec<Message>) -> Input {
    Input::Frames(f)
}

/// A Bokeh message of any msgtype with raw content text and buffers.
fn msg_raw(msgtype: &str, content: &str, buffers: &[(&str, &[u8])]) -> Input {
    let mut header = json!({"msgid": MSGID, "msgtype": msgtype});
    if !buffers.is_empty() {
        header["num_buffers"] = json!(buffers.len());
    }
    let mut f = vec![t(&header.to_string()), t("{}"), t(content)];
    for (id, data) in buffers {
        f.push(t(&json!({ "id": id }).to_string()));
        f.push(b(data));
    }
    Input::Frames(f)
}

fn msg(msgtype: &str, content: Json) -> Input {
    msg_raw(msgtype, &content.to_string(), &[])
}

fn patch(events: Json) -> Input {
    msg("PATCH-DOC", json!({ "events": events }))
}

fn patch_buf(events: Json, buffers: &[(&str, &[u8])]) -> Input {
    msg_raw(
        "PATCH-DOC",
        &json!({ "events": events }).to_string(),
        buffers,
    )
}

fn push(doc: Json) -> Input {
    msg("PUSH-DOC", json!({ "doc": doc }))
}

/// A PATCH-DOC setting `slider.tags` to `value`: for values that must not decode.
fn tags(value: Json) -> Input {
    patch(json!([mc("slider", "tags", value)]))
}

fn mc(model: &str, attr: &str, new: Json) -> Json {
    json!({"kind": "ModelChanged", "model": {"id": model}, "attr": attr, "new": new})
}

fn stream(model: &str, data: Json, rollover: Json) -> Json {
    json!({"kind": "ColumnsStreamed", "model": {"id": model}, "attr": "data",
           "data": data, "rollover": rollover})
}

/// A stream of `x` and `y` into the victim's `src`.
fn stream_xy(x: Json, y: Json) -> Json {
    stream(
        "src",
        json!({"type": "map", "entries": [["x", x], ["y", y]]}),
        Json::Null,
    )
}

fn patched(model: &str, col: &str, pairs: Json) -> Json {
    json!({"kind": "ColumnsPatched", "model": {"id": model}, "attr": "data",
           "patches": {"type": "map", "entries": [[col, pairs]]}})
}

fn slice(start: Json, stop: Json, step: Json) -> Json {
    json!({"type": "slice", "start": start, "stop": stop, "step": step})
}

fn typed(dtype: &str, buffer: &str) -> Json {
    json!({"type": "typed_array", "array": {"type": "bytes", "data": {"id": buffer}},
           "order": "little", "dtype": dtype})
}

fn nd(dtype: &str, shape: Json, buffer: &str) -> Json {
    json!({"type": "ndarray", "array": {"type": "bytes", "data": {"id": buffer}},
           "shape": shape, "dtype": dtype, "order": "little"})
}

/// A model rep.
fn model(name: &str, id: &str, attributes: Json) -> Json {
    json!({"type": "object", "name": name, "id": id, "attributes": attributes})
}

/// The victim document with its roots replaced: for PUSH-DOC cases.
fn doc_with(roots: Json) -> Json {
    json!({"version": "3.9.2", "title": "bad push", "roots": roots})
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn f64s(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A masked client frame: `first` is FIN, RSV and opcode; the length is encoded as needed.
fn ws_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut out = ws_header(first, payload.len() as u64, true);
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, x)| x ^ mask[i % 4]));
    out
}

/// An unmasked frame (only servers may send those).
fn ws_frame_unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ws_header(first, payload.len() as u64, false);
    out.extend_from_slice(payload);
    out
}

fn ws_header(first: u8, len: u64, masked: bool) -> Vec<u8> {
    let m = if masked { 0x80 } else { 0 };
    let mut out = vec![first];
    match len {
        0..=125 => out.push(m | len as u8),
        126..=0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out
}

/// A close frame payload: the code, then the reason bytes.
fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// A websocket handshake offering `protocols` (none when `None`) from `origin`.
fn handshake(path: &'static str, protocols: Option<&str>, origin: Option<&str>) -> Input {
    let mut headers = String::new();
    if let Some(p) = protocols {
        headers.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    if let Some(o) = origin {
        headers.push_str(&format!("Origin: {o}\r\n"));
    }
    Input::Handshake { path, headers }
}

/// A handshake to the victim app offering `bokeh, <token>`.
fn with_token(token: &str) -> Input {
    handshake("/target/ws", Some(&format!("bokeh, {token}")), None)
}

/// A REST request with a body of this content type.
fn rest(
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
) -> Input {
    Input::Rest {
        method,
        path,
        content_type,
        body: body.into(),
        headers: "",
    }
}

/// A REST request with a JSON body.
fn rest_json(method: &'static str, path: &'static str, body: Json) -> Input {
    rest(method, path, "application/json", body.to_string())
}

/// The raw columns format (`docs/rest-api.md`) with this header JSON and data.
fn raw_body(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"PWC1".to_vec();
    let pad = (8 - (8 + header.len()) % 8) % 8;
    let header = format!("{header}{}", " ".repeat(pad));
    out.extend_from_slice(&u32::try_from(header.len()).unwrap().to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn get(path: &str) -> Input {
    Input::Http {
        method: "GET",
        path: path.to_owned(),
        headers: String::new(),
    }
}

fn get_with(path: &str, headers: &str) -> Input {
    Input::Http {
        method: "GET",
        path: path.to_owned(),
        headers: headers.to_owned(),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn unsigned_token(sid: &str, expiry: i64) -> String {
    generate_token(sid, expiry, None, None).expect("token")
}

/// A token with this payload JSON, unsigned.
fn payload_token(payload: &Json) -> String {
    b64url(payload.to_string().as_bytes())
}

fn signed_id(base: &str, key: &str) -> String {
    sign_session_id(base, key.as_bytes())
}

fn signed_token(sid: &str, expiry: i64, key: &str) -> String {
    generate_token(sid, expiry, None, Some(key.as_bytes())).expect("token")
}

// ---------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------

/// Every case of `docs/bad-input.md`, in its order.
fn cases() -> Vec<Case> {
    use Expect::*;
    let hdr = |t: &str, n: usize| {
        self::t(&json!({"msgid": MSGID, "msgtype": t, "num_buffers": n}).to_string())
    };
    let pull_hdr = || t(&json!({"msgid": MSGID, "msgtype": "PULL-DOC-REQ"}).to_string());
    let events0 = || t(r#"{"events":[]}"#);
    let too_big = 64 * 1024 + 1;
    let mut v = vec![
        // --- websocket framing ------------------------------------------------------------
        case(
            "WS-01",
            frames(vec![b(&[1, 2, 3])]),
            Close(
                1002,
                "expected text fragment but received binary fragment for header",
            ),
        ),
        case(
            "WS-02",
            frames(vec![pull_hdr(), b(b"{}")]),
            Close(
                1002,
                "expected text fragment but received binary fragment for metadata",
            ),
        ),
        case(
            "WS-03",
            frames(vec![pull_hdr(), t("{}"), b(b"{}")]),
            Close(
                1002,
                "expected text fragment but received binary fragment for content",
            ),
        ),
        case(
            "WS-04",
            frames(vec![hdr("PATCH-DOC", 1), t("{}"), events0(), b(&[0; 8])]),
            Close(
                1002,
                "expected text fragment but received binary fragment for buffer header",
            ),
        ),
        case(
            "WS-05",
            frames(vec![
                hdr("PATCH-DOC", 1),
                t("{}"),
                events0(),
                t(r#"{"id":"0"}"#),
                t("not binary"),
            ]),
            Close(
                1002,
                "expected binary fragment but received text fragment for buffer payload",
            ),
        ),
        case(
            "WS-06",
            frames(vec![t(r#"{"id":"0"}"#), b(&[0; 8]), t("{}")]),
            Close(1002, "No 'msgtype' in header"),
        ),
        case(
            "WS-07",
            frames(vec![
                hdr("PATCH-DOC", 1),
                t("{}"),
                events0(),
                t(r#"{"id":"0","extra":true}"#),
            ]),
            Close(1002, "Malformed buffer header"),
        ),
        case(
            "WS-08",
            frames(vec![
                hdr("PATCH-DOC", 1),
                t("{}"),
                events0(),
                t(r#"{"id":0}"#),
            ]),
            Close(1002, "Malformed buffer header"),
        ),
        case(
            "WS-09",
            frames(vec![
                hdr("PATCH-DOC", 1),
                t("{}"),
                events0(),
                t("{not json"),
            ]),
            Close(1002, "Malformed buffer header"),
        ),
        case(
            "WS-10",
            frames(vec![
                hdr("PATCH-DOC", 2),
                t("{}"),
                events0(),
                t(r#"{"id":"0"}"#),
                b(&[0; 8]),
                t(r#"{"id":"0"}"#),
            ]),
            Close(1002, "duplicate buffer id '0'"),
        ),
        case(
            "WS-11",
            frames(vec![
                hdr("PATCH-DOC", 2),
                t("{}"),
                events0(),
                t(r#"{"id":"0"}"#),
                b(&[0; 8]),
                pull_hdr(),
                t("{}"),
                t("{}"),
            ]),
            Close(1002, "Malformed buffer header"),
        ),
        case(
            "WS-12",
            frames(vec![
                hdr("PATCH-DOC", 1),
                t("{}"),
                events0(),
                t(r#"{"id":"0"}"#),
                b(&[0; 8]),
                t(r#"{"id":"1"}"#),
                b(&[0; 8]),
            ]),
            ReplyThenClose("OK", 1002, "No 'msgtype' in header"),
        ),
        case(
            "WS-13",
            frames(vec![pull_hdr(), t("{}"), t("{}"), b(&[0; 8])]),
            ReplyThenClose(
                "PULL-DOC-REPLY",
                1002,
                "expected text fragment but received binary fragment for header",
            ),
        ),
        case(
            "WS-14",
            Input::Raw(ws_frame(0x81, &[b'{', 0xff, 0xfe, b'}'])),
            Close(1007, ""),
        ),
        case(
            "WS-15",
            Input::Raw([ws_frame(0x01, &[b'"', 0xe2, 0x82]), ws_frame(0x80, b"(\"")].concat()),
            Close(1007, ""),
        ),
        case("WS-16", Input::Raw(ws_frame(0x80, b"{}")), Close(1002, "")),
        case(
            "WS-17",
            Input::Raw([ws_frame(0x01, b"{\"ms"), ws_frame(0x81, b"{}")].concat()),
            Close(1002, ""),
        ),
        case("WS-18", Input::Raw(ws_frame(0x83, b"{}")), Close(1002, "")),
        case("WS-19", Input::Raw(ws_frame(0x8b, b"")), Close(1002, "")),
        case("WS-20", Input::Raw(ws_frame(0xc1, b"{}")), Close(1002, "")),
        case(
            "WS-21",
            Input::Raw(ws_frame_unmasked(0x81, b"{}")),
            Close(1002, ""),
        ),
        case(
            "WS-22",
            Input::Raw(ws_frame(0x09, b"ping")),
            Close(1002, ""),
        ),
        case(
            "WS-23",
            Input::Raw(ws_frame(0x89, &[b'p'; 126])),
            Close(1002, ""),
        ),
        case("WS-24", Input::Raw(ws_frame(0x88, &[3])), Close(1002, "")),
        case(
            "WS-25",
            Input::Raw(ws_frame(0x88, &close_payload(1005, b""))),
            Close(1002, ""),
        ),
        case(
            "WS-26",
            Input::Raw(ws_frame(0x88, &close_payload(1000, &[0xff, 0xfe]))),
            Close(1007, ""),
        ),
        // --- message JSON -----------------------------------------------------------------
        case(
            "MSG-01",
            frames(vec![
                t(r#"{"msgid":"bad","msgtype":"PULL-DOC-REQ""#),
                t("{}"),
                t("{}"),
            ]),
            Close(1002, "header could not be decoded"),
        ),
        case(
            "MSG-02",
            frames(vec![t(r#"["bad","PULL-DOC-REQ"]"#), t("{}"), t("{}")]),
            Close(1002, "header is not a JSON object"),
        ),
        case(
            "MSG-03",
            frames(vec![t(r#""PULL-DOC-REQ""#), t("{}"), t("{}")]),
            Close(1002, "header is not a JSON object"),
        ),
        case(
            "MSG-04",
            frames(vec![pull_hdr(), t("{oops"), t("{}")]),
            Close(1002, "metadata could not be decoded"),
        ),
        case(
            "MSG-05",
            frames(vec![pull_hdr(), t("{}"), t("{not json")]),
            Close(1002, "content could not be decoded"),
        ),
        case(
            "MSG-06",
            frames(vec![
                hdr("PATCH-DOC", 0),
                t("{}"),
                t(&format!(
                    "{{\"events\":{}{}}}",
                    "[".repeat(200),
                    "]".repeat(200)
                )),
            ]),
            Error("recursion limit exceeded"),
        ),
        case(
            "MSG-07",
            frames(vec![t(r#"{"msgid":"bad"}"#), t("{}"), t("{}")]),
            Close(1002, "No 'msgtype' in header"),
        ),
        case(
            "MSG-08",
            frames(vec![
                t(r#"{"msgid":"bad","msgtype":null}"#),
                t("{}"),
                t("{}"),
            ]),
            Close(1002, "No 'msgtype' in header"),
        ),
        case(
            "MSG-09",
            frames(vec![t(r#"{"msgtype":"PULL-DOC-REQ"}"#), t("{}"), t("{}")]),
            Close(1002, "No 'msgid' in header"),
        ),
        case(
            "MSG-10",
            frames(vec![t(r#"{"msgid":"bad","msgtype":7}"#), t("{}"), t("{}")]),
            Close(1002, "header field 'msgtype' must be a string"),
        ),
        case(
            "MSG-11",
            frames(vec![
                t(r#"{"msgid":7,"msgtype":"PULL-DOC-REQ"}"#),
                t("{}"),
                t("{}"),
            ]),
            Close(1002, "header field 'msgid' must be a string"),
        ),
        case(
            "MSG-12",
            frames(vec![
                t(r#"{"msgid":"bad","msgtype":"PULL-DOC-REQ","reqid":{}}"#),
                t("{}"),
                t("{}"),
            ]),
            Close(1002, "header field 'reqid' must be a string"),
        ),
        case(
            "MSG-13",
            frames(vec![
                t(r#"{"msgid":"bad","msgtype":"PATCH-DOC","num_buffers":"1"}"#),
                t("{}"),
                t("{}"),
            ]),
            Close(
                1002,
                "header field 'num_buffers' must be a non-negative integer",
            ),
        ),
        case(
            "MSG-14",
            frames(vec![
                t(r#"{"msgid":"bad","msgtype":"PATCH-DOC","num_buffers":-1}"#),
                t("{}"),
                t("{}"),
            ]),
            Close(
                1002,
                "header field 'num_buffers' must be a non-negative integer",
            ),
        ),
        case(
            "MSG-15",
            frames(vec![
                t(r#"{"msgid":"bad","msgtype":"PATCH-DOC","num_buffers":1.5}"#),
                t("{}"),
                t("{}"),
            ]),
            Close(
                1002,
                "header field 'num_buffers' must be a non-negative integer",
            ),
        ),
        case(
            "MSG-16",
            msg("FROBNICATE-DOC", json!({})),
            Close(1002, r#"unknown message type "FROBNICATE-DOC""#),
        ),
        case(
            "MSG-17",
            msg("pull-doc-req", json!({})),
            Close(1002, r#"unknown message type "pull-doc-req""#),
        ),
        case(
            "MSG-18",
            msg("ACK", json!({})),
            Close(1002, "message ACK is not expected on the server"),
        ),
        case(
            "MSG-19",
            msg("OK", json!({})),
            Close(1002, "message OK is not expected on the server"),
        ),
        case(
            "MSG-20",
            msg("ERROR", json!({"text": "x", "traceback": null})),
            Close(1002, "message ERROR is not expected on the server"),
        ),
        case(
            "MSG-21",
            msg("SERVER-INFO-REPLY", json!({"version_info": {}})),
            Close(
                1002,
                "message SERVER-INFO-REPLY is not expected on the server",
            ),
        ),
        case(
            "MSG-22",
            msg("PULL-DOC-REPLY", json!({"doc": doc_with(json!([]))})),
            Close(1002, "message PULL-DOC-REPLY is not expected on the server"),
        ),
        case(
            "MSG-23",
            msg("PATCH-DOC", json!([1, 2, 3])),
            Error(r#"content must be {"events": [...]}"#),
        ),
        case(
            "MSG-24",
            msg("PATCH-DOC", json!({"events": 5})),
            Error(r#"content must be {"events": [...]}"#),
        ),
        case(
            "MSG-25",
            msg("PATCH-DOC", json!({})),
            Error(r#"content must be {"events": [...]}"#),
        ),
        case(
            "MSG-26",
            msg("PUSH-DOC", json!({"nodoc": 1})),
            Error(r#"content must be {"doc": {...}}"#),
        ),
        case(
            "MSG-27",
            msg("PUSH-DOC", json!({"doc": 5})),
            Error(r#"content must be {"doc": {...}}"#),
        ),
        case(
            "MSG-28",
            frames(vec![
                hdr("PATCH-DOC", 0),
                t("{}"),
                t(&format!(
                    "{{\"events\":{}{}}}",
                    "[".repeat(30_000),
                    "]".repeat(30_000)
                )),
            ]),
            Error("recursion limit exceeded"),
        ),
        // --- document JSON (PUSH-DOC) -----------------------------------------------------
        case(
            "DOC-01",
            push(json!({"version": "3.9.2", "title": "t"})),
            Error("doc.roots must be a list"),
        ),
        case(
            "DOC-02",
            push(json!({"title": "t", "roots": {}})),
            Error("doc.roots must be a list"),
        ),
        case(
            "DOC-03",
            push(doc_with(json!([5]))),
            Error("every root must be a model"),
        ),
        case(
            "DOC-04",
            push(doc_with(json!(["p1000"]))),
            Error("every root must be a model"),
        ),
        case(
            "DOC-05",
            push(doc_with(json!([{"type": "map"}]))),
            Error("every root must be a model"),
        ),
        case(
            "DOC-06",
            push(doc_with(json!([{"id": "nope"}]))),
            Error(r#"can't resolve reference "nope""#),
        ),
        case(
            "DOC-07",
            push(doc_with(json!([model(
                "Div",
                "d1",
                json!({"child": {"id": "ghost"}})
            )]))),
            Error(r#"can't resolve reference "ghost""#),
        ),
        case(
            "DOC-08",
            push(doc_with(
                json!([{"type": "object", "id": "d1", "attributes": {}}]),
            )),
            Error("model d1 has no name"),
        ),
        case(
            "DOC-09",
            push(doc_with(
                json!([{"type": "object", "name": "Div", "id": 7}]),
            )),
            Error("id must be a string"),
        ),
        case(
            "DOC-10",
            push(doc_with(
                json!([{"type": "object", "name": "Div", "id": "d1", "attributes": [1]}]),
            )),
            Error("attributes must be an object"),
        ),
        case(
            "DOC-11",
            push(json!({"title": 5, "roots": []})),
            Error("doc.title must be a string"),
        ),
        case(
            "DOC-12",
            push(json!({"title": "t", "roots": [], "config": 5})),
            Error("config"),
        ),
        case(
            "DOC-13",
            push(json!({"title": "t", "roots": [], "config": {"id": "noconfig"}})),
            Error(r#"can't resolve reference "noconfig""#),
        ),
        case(
            "DOC-14",
            push(doc_with(json!([model(
                "ColumnDataSource",
                "src2",
                json!({"data": {"type": "map", "entries": [["x", 5]]}})
            )]))),
            Error(r#"column "x" of "src2": not a column"#),
        ),
        case(
            "DOC-15",
            push(json!({"title": "t", "roots": [],
                "callbacks": {"type": "map", "entries": [["document_ready", [{"id": "nocb"}]]]}})),
            Error(r#"can't resolve reference "nocb""#),
        ),
        case(
            "DOC-16",
            push(doc_with(json!([model(
                "Div",
                "d1",
                json!({"text": {"type": "bytes", "data": {"id": "0"}}})
            )]))),
            Error(r#"unknown buffer id "0""#),
        ),
        // --- events (PATCH-DOC) -----------------------------------------------------------
        case(
            "EV-01",
            patch(json!([5])),
            Error("an event must be an object"),
        ),
        case(
            "EV-02",
            patch(json!([{"kind": "Frobnicated"}])),
            Error(r#"unknown event kind "Frobnicated""#),
        ),
        case(
            "EV-03",
            patch(json!([{"model": {"id": "slider"}}])),
            Error("missing kind"),
        ),
        case(
            "EV-04",
            patch(json!([{"kind": "ModelChanged", "attr": "value", "new": 2}])),
            Error(r#"missing field "model""#),
        ),
        case(
            "EV-05",
            patch(json!([{"kind": "ModelChanged", "model": "slider", "attr": "value", "new": 2}])),
            Error(r#"model must be a reference {"id": ...}"#),
        ),
        case(
            "EV-06",
            patch(json!([{"kind": "ModelChanged", "model": {"id": "slider"}, "new": 2}])),
            Error(r#"missing field "attr""#),
        ),
        case(
            "EV-07",
            patch(
                json!([{"kind": "ModelChanged", "model": {"id": "slider"}, "attr": 5, "new": 2}]),
            ),
            Error("attr must be a string"),
        ),
        case(
            "EV-08",
            patch(json!([{"kind": "ModelChanged", "model": {"id": "slider"}, "attr": "value"}])),
            Error(r#"missing field "new""#),
        ),
        case(
            "EV-09",
            patch(json!([mc("nope", "value", json!(2))])),
            Error(r#"unknown model "nope""#),
        ),
        case(
            "EV-10",
            patch(json!([mc("slider", "tags", json!([{"id": "ghost"}]))])),
            Error(r#"can't resolve reference "ghost""#),
        ),
        case(
            "EV-11",
            patch(json!([stream(
                "slider",
                json!({"type": "map", "entries": [["x", [1.0]]]}),
                Json::Null
            )])),
            Error(r#"model "slider" has no column data"#),
        ),
        case(
            "EV-12",
            patch(json!([patched("slider", "x", json!([[0, 1.0]]))])),
            Error(r#"model "slider" has no column data"#),
        ),
        case(
            "EV-13",
            patch(
                json!([{"kind": "ColumnDataChanged", "model": {"id": "slider"}, "attr": "data",
                "data": {"type": "map", "entries": [["x", [1.0]]]}, "cols": null}]),
            ),
            Error(r#"model "slider" has no column data"#),
        ),
        case(
            "EV-14",
            patch(json!([stream(
                "nope",
                json!({"type": "map", "entries": [["x", [1.0]]]}),
                Json::Null
            )])),
            Error(r#"unknown model "nope""#),
        ),
        case(
            "EV-15",
            patch(
                json!([{"kind": "ColumnsStreamed", "model": {"id": "src"}, "attr": "value",
                "data": {"type": "map", "entries": [["x", [1.0]], ["y", [1.0]]]}, "rollover": null}]),
            ),
            Error(r#"column events must target attribute "data", not "value""#),
        ),
        case(
            "EV-16",
            patch(json!([stream_xy(json!([5.0, 6.0]), json!([25.0]))])),
            Error("must have the same length"),
        ),
        case(
            "EV-17",
            patch(json!([stream(
                "src",
                json!({"type": "map", "entries":
                [["x", [5.0]], ["y", [5.0]], ["z", [5.0]]]}),
                Json::Null
            )])),
            Error(r#"unknown: ["z"]"#),
        ),
        case(
            "EV-18",
            patch(json!([stream(
                "src",
                json!({"type": "map", "entries": [["x", [5.0]]]}),
                Json::Null
            )])),
            Error(r#"missing: ["y"]"#),
        ),
        case(
            "EV-19",
            patch(json!([stream_xy(json!(["a"]), json!(["b"]))])),
            Error("type mismatch"),
        ),
        case(
            "EV-20",
            patch(json!([stream("src", json!([[5.0]]), Json::Null)])),
            Error("data must be a map of columns"),
        ),
        case(
            "EV-21",
            patch(json!([stream(
                "src",
                json!({"type": "map", "entries": [["x", [5.0]], ["y", [5.0]]]}),
                json!(-1)
            )])),
            Error("rollover must be a non-negative integer"),
        ),
        case(
            "EV-22",
            patch(json!([stream(
                "src",
                json!({"type": "map", "entries": [["x", [5.0]], ["y", [5.0]]]}),
                json!(1e300)
            )])),
            Error("rollover must be a non-negative integer"),
        ),
        case(
            "EV-23",
            msg_raw(
                "PATCH-DOC",
                &format!(
                    r#"{{"events":[{{"kind":"ColumnsStreamed","model":{{"id":"src"}},"attr":"data","data":{},"rollover":18446744073709551616}}]}}"#,
                    json!({"type": "map", "entries": [["x", [5.0]], ["y", [5.0]]]})
                ),
                &[],
            ),
            Error("rollover must be a non-negative integer"),
        ),
        case(
            "EV-24",
            patch(json!([stream(
                "src",
                json!({"type": "map", "entries": [["x", [5.0]], ["y", [5.0]]]}),
                json!("5")
            )])),
            Error("rollover must be an integer or null"),
        ),
        case(
            "EV-25",
            patch(json!([stream(
                "src",
                json!({"type": "map", "entries": [["x", [5.0]], ["y", [5.0]]]}),
                json!(u64::MAX)
            )])),
            Ok,
        ),
        case(
            "EV-26",
            patch(json!([patched("src", "x", json!([[99, 1.0]]))])),
            Error("patch index 99 out of range for column of length 3"),
        ),
        case(
            "EV-27",
            patch(json!([patched("src", "x", json!([[-1, 1.0]]))])),
            Error("patch index -1 out of range for column of length 3"),
        ),
        case(
            "EV-28",
            patch(json!([patched(
                "src",
                "x",
                json!([[slice(json!(2), json!(1), Json::Null), []]])
            )])),
            Error("start must not be greater than stop"),
        ),
        case(
            "EV-29",
            patch(json!([patched(
                "src",
                "x",
                json!([[slice(json!(-2), Json::Null, Json::Null), [1.0, 2.0]]])
            )])),
            Error("start and stop must not be negative"),
        ),
        case(
            "EV-30",
            patch(json!([patched(
                "src",
                "x",
                json!([[slice(json!(0), json!(2), json!(0)), [1.0, 2.0]]])
            )])),
            Error("step must be at least 1"),
        ),
        case(
            "EV-31",
            patch(json!([patched(
                "src",
                "x",
                json!([[slice(json!(0), json!(2), Json::Null), [1.0]]])
            )])),
            Error("the index selects 2 items but the value has 1"),
        ),
        case(
            "EV-32",
            patch(json!([patched("src", "z", json!([[0, 1.0]]))])),
            Error(r#"can't patch unknown column "z" of "src""#),
        ),
        case(
            "EV-33",
            patch(json!([patched("src", "x", json!([[0, 1.0, 2.0]]))])),
            Error(r#"each patch for "x" must be an [index, value] pair"#),
        ),
        case(
            "EV-34",
            patch(json!([patched("src", "x", json!(5))])),
            Error(r#"patches for "x" must be a list"#),
        ),
        case(
            "EV-35",
            patch(json!([patched("src", "x", json!([[[0, 1], 1.0]]))])),
            Error("multi-index patch needs an ndarray item"),
        ),
        case(
            "EV-36",
            patch(json!([patched("src", "x", json!([["0", 1.0]]))])),
            Error("bad patch index: expected an integer, a slice or a multi-index"),
        ),
        case(
            "EV-37",
            patch(json!([{"kind": "RootAdded", "model": 5}])),
            Error("RootAdded needs a model"),
        ),
        case(
            "EV-38",
            patch(json!([{"kind": "RootAdded", "model": {"id": "nope"}}])),
            Error(r#"can't resolve reference "nope""#),
        ),
        case(
            "EV-39",
            patch(json!([{"kind": "RootRemoved", "model": {"id": "nope"}}])),
            Error(r#"unknown model "nope""#),
        ),
        case(
            "EV-40",
            patch(json!([{"kind": "TitleChanged", "title": 5}])),
            Error("title must be a string"),
        ),
        case(
            "EV-41",
            patch(json!([{"kind": "MessageSent", "msg_data": {}}])),
            Error(r#"missing field "msg_type""#),
        ),
        case(
            "EV-42",
            patch(
                json!([{"kind": "ColumnDataChanged", "model": {"id": "src"}, "attr": "data",
                "data": {"type": "map", "entries": [["x", [1.0]]]}, "cols": "x"}]),
            ),
            Error("cols must be a list or null"),
        ),
        case(
            "EV-43",
            patch(
                json!([{"kind": "TitleChanged", "title": "must not stick"}, mc("nope", "value", json!(1))]),
            ),
            Error(r#"unknown model "nope""#),
        ),
        case(
            "EV-44",
            patch(json!([patched("src", "x", json!([[0, "a string"]]))])),
            Error("type mismatch"),
        ),
        case(
            "EV-45",
            patch(json!([patched(
                "src",
                "x",
                json!([[slice(json!(0), json!(2), Json::Null), 5.0]])
            )])),
            Error("a slice patch needs a list or an array"),
        ),
        // --- values -----------------------------------------------------------------------
        case(
            "VAL-01",
            patch_buf(
                json!([mc("slider", "tags", nd("complex128", json!([1]), "0"))]),
                &[("0", &[0; 16])],
            ),
            Error(r#"unknown dtype "complex128""#),
        ),
        case(
            "VAL-02",
            patch_buf(
                json!([mc(
                    "slider",
                    "tags",
                    json!({"type": "typed_array", "array": {"type": "bytes", "data": {"id": "0"}}, "order": "little"})
                )]),
                &[("0", &[0; 8])],
            ),
            Error("missing dtype"),
        ),
        case(
            "VAL-03",
            patch_buf(
                json!([mc("slider", "tags", nd("float64", json!([3]), "0"))]),
                &[("0", &[0; 16])],
            ),
            Error("needs 24 bytes, got 16"),
        ),
        case(
            "VAL-04",
            patch_buf(
                json!([mc("slider", "tags", typed("float64", "0"))]),
                &[("0", &[1, 2, 3])],
            ),
            Error("got 3"),
        ),
        case(
            "VAL-05",
            patch_buf(
                json!([mc("slider", "tags", nd("float64", json!([-1]), "0"))]),
                &[("0", &[0; 8])],
            ),
            Error("shape must list non-negative integers"),
        ),
        case(
            "VAL-06",
            patch_buf(
                json!([mc("slider", "tags", nd("float64", json!(1), "0"))]),
                &[("0", &[0; 8])],
            ),
            Error("shape must be a list"),
        ),
        case(
            "VAL-07",
            patch_buf(
                json!([mc(
                    "slider",
                    "tags",
                    nd("float64", json!([1u64 << 62, 1u64 << 62]), "0")
                )]),
                &[("0", &[0; 8])],
            ),
            Error("shape too large"),
        ),
        case(
            "VAL-08",
            tags(
                json!({"type": "typed_array", "array": [1.0], "order": "middle", "dtype": "float64"}),
            ),
            Error(r#"order must be "little" or "big""#),
        ),
        case(
            "VAL-09",
            patch_buf(
                json!([mc("slider", "tags", nd("object", json!([1]), "0"))]),
                &[("0", &[0; 8])],
            ),
            Error("dtype object needs a list body"),
        ),
        case(
            "VAL-10",
            tags(json!({"type": "ndarray", "array": 5, "shape": [1], "dtype": "float64"})),
            Error("array must be bytes or a list"),
        ),
        case(
            "VAL-11",
            tags(json!({"type": "ndarray", "array": [1.0, 2.0], "shape": [3], "dtype": "float64"})),
            Error("shape"),
        ),
        case(
            "VAL-12",
            patch_buf(
                json!([stream_xy(
                    nd("float64", json!([2, 1]), "0"),
                    nd("float64", json!([2, 1]), "1")
                )]),
                &[("0", &f64s(&[1.0, 2.0])), ("1", &f64s(&[1.0, 2.0]))],
            ),
            Error("columns must be 1-D"),
        ),
        case(
            "VAL-13",
            tags(json!({"type": "bytes", "data": "@@not base64@@"})),
            Error("invalid inline bytes"),
        ),
        case(
            "VAL-14",
            tags(
                json!({"type": "bytes", "data": b64(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad])}),
            ),
            Error("invalid inline bytes"),
        ),
        case(
            "VAL-15",
            tags(json!({"type": "bytes", "data": 5})),
            Error("data must be a buffer reference or a string"),
        ),
        case(
            "VAL-16",
            tags(json!({"type": "bytes", "data": {"id": 5}})),
            Error("buffer reference without a string id"),
        ),
        case(
            "VAL-17",
            tags(json!({"type": "bytes", "data": {"id": "0"}})),
            Error(r#"unknown buffer id "0""#),
        ),
        case(
            "VAL-18",
            patch_buf(
                json!([mc("slider", "tags", typed("float64", "0"))]),
                &[("1", &[0; 8])],
            ),
            Error(r#"unknown buffer id "0""#),
        ),
        case(
            "VAL-19",
            tags(json!({"type": "number", "value": "NaN"})),
            Error(r#"unknown value "NaN""#),
        ),
        case(
            "VAL-20",
            tags(json!({"type": "number", "value": "infinity"})),
            Error(r#"unknown value "infinity""#),
        ),
        case(
            "VAL-21",
            tags(json!({"type": "number"})),
            Error("malformed number value: missing value"),
        ),
        case(
            "VAL-22",
            tags(json!({"type": "map", "entries": {"a": 1}})),
            Error("malformed map value: entries must be a list"),
        ),
        case(
            "VAL-23",
            tags(json!({"type": "map", "entries": [["a", 1, 2]]})),
            Error("each entry must be a [key, value] pair"),
        ),
        case(
            "VAL-24",
            tags(json!({"type": "map", "entries": ["a"]})),
            Error("each entry must be a [key, value] pair"),
        ),
        case(
            "VAL-25",
            tags(json!({"type": "set", "entries": {"a": 1}})),
            Error("malformed set value: entries must be a list"),
        ),
        case(
            "VAL-26",
            patch(json!([patched(
                "src",
                "x",
                json!([[slice(json!(1.5), Json::Null, Json::Null), [1.0]]])
            )])),
            Error("start must be an integer"),
        ),
        case(
            "VAL-27",
            patch(json!([patched(
                "src",
                "x",
                json!([[slice(json!(0), json!("2"), Json::Null), [1.0]]])
            )])),
            Error("stop must be an integer or null"),
        ),
        case(
            "VAL-28",
            tags(json!([{"type": "object", "id": "m1", "attributes": {}}])),
            Error("model m1 has no name"),
        ),
        case(
            "VAL-29",
            patch(json!([stream(
                "src",
                json!({"type": "map", "entries": [[1, [5.0]], ["y", [5.0]]]}),
                Json::Null
            )])),
            Error("column names must be strings"),
        ),
        // --- tokens and subprotocols ------------------------------------------------------
        case("TOK-01", with_token("!!!!"), Refused),
        case("TOK-02", with_token(&b64url(b"not json")), Refused),
        case("TOK-03", with_token(&b64url(b"[1,2]")), Refused),
        case(
            "TOK-04",
            with_token(&payload_token(&json!({"session_expiry": now() + 300}))),
            Refused,
        ),
        case(
            "TOK-05",
            with_token(&payload_token(
                &json!({"session_id": 5, "session_expiry": now() + 300}),
            )),
            Refused,
        ),
        case(
            "TOK-06",
            with_token(&payload_token(
                &json!({"session_id": "", "session_expiry": now() + 300}),
            )),
            Refused,
        ),
        case(
            "TOK-07",
            with_token(&payload_token(&json!({"session_id": "victim-tok"}))),
            Refused,
        ),
        case(
            "TOK-08",
            with_token(&payload_token(
                &json!({"session_id": "victim-tok", "session_expiry": "soon"}),
            )),
            Refused,
        ),
        case(
            "TOK-09",
            with_token(&unsigned_token("victim-tok", now() - 10)),
            Refused,
        ),
        case(
            "TOK-10",
            with_token(&payload_token(
                &json!({"session_id": "victim-tok", "session_expiry": now() + 300,
                "__bk__zlib_": b64url(b"not zlib")}),
            )),
            // The extra payload is never inflated nor parsed: nothing here reads it.
            Accepted,
        ),
        case(
            "TOK-11",
            handshake("/target/ws", Some("bokeh"), None),
            Refused,
        ),
        case(
            "TOK-12",
            handshake(
                "/target/ws",
                Some(&format!(
                    "bokeh, {}, extra",
                    unsigned_token("victim-tok", now() + 300)
                )),
                None,
            ),
            Refused,
        ),
        case(
            "TOK-13",
            handshake(
                "/target/ws",
                Some(&format!(
                    "notbokeh, {}",
                    unsigned_token("victim-tok", now() + 300)
                )),
                None,
            ),
            Refused,
        ),
        case("TOK-14", handshake("/target/ws", None, None), Refused),
        case(
            "TOK-15",
            handshake(
                "/target/ws",
                Some(&format!(
                    "bokeh, {}",
                    unsigned_token("victim-tok", now() + 300)
                )),
                Some("http://evil.example:8000"),
            ),
            Http(
                403,
                r#"websocket origin "http://evil.example:8000" is not allowed"#,
            ),
        ),
        case(
            "TOK-16",
            with_token(&unsigned_token(
                &signed_id("victimtok", SECRET),
                now() + 300,
            )),
            Refused,
        )
        .on(Srv::Signed),
        case(
            "TOK-17",
            with_token(&signed_token(
                &signed_id("victimtok", "other-key"),
                now() + 300,
                "other-key",
            )),
            Refused,
        )
        .on(Srv::Signed),
        case(
            "TOK-18",
            with_token(&signed_token("unsigned-id", now() + 300, SECRET)),
            Refused,
        )
        .on(Srv::Signed),
        case(
            "TOK-19",
            with_token(&signed_token(
                &signed_id("victimtok", SECRET),
                now() - 10,
                SECRET,
            )),
            Refused,
        )
        .on(Srv::Signed),
        case(
            "TOK-20",
            with_token(&format!(
                "{}.garbage",
                unsigned_token(&signed_id("victimtok", SECRET), now() + 300)
            )),
            Refused,
        )
        .on(Srv::Signed),
        case(
            "TOK-21",
            get("/target/?bokeh-session-id=unsigned-id"),
            Http(403, "Invalid token or session ID"),
        )
        .on(Srv::Signed),
        case(
            "TOK-22",
            get(&format!(
                "/target/?bokeh-token={}",
                signed_token(
                    &signed_id("victimtok", "other-key"),
                    now() + 300,
                    "other-key"
                )
            )),
            Http(403, "Invalid token or session ID"),
        )
        .on(Srv::Signed),
        // --- HTTP -------------------------------------------------------------------------
        case(
            "HTTP-01",
            get("/api/"),
            Http(404, r#""api" is not an app path"#),
        ),
        case(
            "HTTP-02",
            get("/healthz/"),
            Http(404, r#""healthz" is not an app path"#),
        ),
        case(
            "HTTP-03",
            get("/metrics/metadata"),
            Http(404, r#""metrics" is not an app path"#),
        ),
        case(
            "HTTP-04",
            get("/favicon.ico/autoload.js?bokeh-autoload-element=e1"),
            Http(404, r#""favicon.ico" is not an app path"#),
        ),
        case(
            "HTTP-05",
            handshake(
                "/api/ws",
                Some(&format!(
                    "bokeh, {}",
                    unsigned_token("victim-tok", now() + 300)
                )),
                None,
            ),
            Http(404, r#""api" is not an app path"#),
        ),
        case("HTTP-06", get("/static/"), Http(404, "static")),
        case(
            "HTTP-07",
            get(&format!(
                "/target/?bokeh-session-id=a&bokeh-token={}",
                unsigned_token("a", now() + 300)
            )),
            Http(403, "Both token and session ID were provided"),
        ),
        case(
            "HTTP-08",
            get_with("/target/?bokeh-session-id=a", "Bokeh-Session-Id: b\r\n"),
            Http(403, "session ID was provided as an argument and header"),
        ),
        case(
            "HTTP-09",
            get("/target/?bokeh-token=garbage"),
            Http(403, "Invalid token"),
        ),
        case(
            "HTTP-10",
            get(&format!(
                "/target/?bokeh-token={}",
                payload_token(&json!({"session_id": "", "session_expiry": now() + 300}))
            )),
            Http(403, "empty session ID"),
        ),
        case(
            "HTTP-11",
            get("/target/?bokeh-session-id="),
            Http(403, "empty session ID"),
        ),
        case(
            "HTTP-12",
            get("/target/autoload.js"),
            Http(400, "No bokeh-autoload-element query parameter"),
        ),
        case(
            "HTTP-13",
            get_with(
                "/target/autoload.js?bokeh-autoload-element=e1&bokeh-session-id=a",
                "Bokeh-Session-Id: b\r\n",
            ),
            Http(403, "session ID was provided as an argument and header"),
        ),
        case(
            "HTTP-14",
            get("/static/js/nope.min.js"),
            Http(404, r#"no static file "js/nope.min.js""#),
        ),
        case(
            "HTTP-15",
            get("/static/css/bokeh.min.js"),
            Http(404, r#"no static file "css/bokeh.min.js""#),
        ),
        case(
            "HTTP-16",
            get("/static/js/../../Cargo.toml"),
            Http(404, "no static file"),
        ),
        case(
            "HTTP-17",
            get("/static/js/bokeh.min.js?v=not-the-sha512"),
            HttpOk("text/javascript"),
        ),
        case(
            "HTTP-18",
            get(&format!("/{}/", "a".repeat(70_000))),
            HttpStatus(414),
        ),
        case(
            "HTTP-19",
            get_with("/target/", &format!("X-Big: {}\r\n", "h".repeat(500_000))),
            HttpStatus(431),
        ),
        case("HTTP-20", get("/%FF/"), Http(400, "")),
        case("HTTP-21", get("/%2e%2e/"), Http(404, "not an app path")),
        case("HTTP-22", get("/target/a/b"), Http(404, "")),
        case(
            "HTTP-23",
            Input::Http {
                method: "POST",
                path: "/target/".into(),
                headers: "Content-Length: 0\r\n".into(),
            },
            Http(405, ""),
        ),
        case("HTTP-24", get("/target/ws"), Http(400, "")),
        case(
            "HTTP-25",
            get("/target/"),
            Http(403, "No bokeh-session-id provided"),
        )
        .on(Srv::Tweaked(|c| {
            c.session_ids = SessionIdMode::ExternalSigned;
            c.secret_key = Some(SECRET.into());
        })),
        // --- REST API ---------------------------------------------------------------------
        case(
            "REST-01",
            rest_json("PUT", "/api/v1/documents/a%20b", json!({"roots": []})),
            Http(400, "bad segment"),
        ),
        case(
            "REST-02",
            rest_json("PUT", "/api/v1/documents/a/ws", json!({"roots": []})),
            Http(404, "no such route under a document"),
        ),
        case(
            "REST-03",
            rest(
                "PUT",
                "/api/v1/documents/{doc}",
                "application/json",
                "{\"roots\":",
            ),
            Http(400, "not valid JSON"),
        ),
        case(
            "REST-04",
            rest_json("PUT", "/api/v1/documents/{doc}", json!([1, 2])),
            Http(400, "must be a JSON object"),
        ),
        case(
            "REST-05",
            rest_json(
                "PUT",
                "/api/v1/documents/{doc}",
                json!({"roots": [{"type": "object", "name": "Plot", "id": "p", "attributes": {"x_range": {"id": "nope"}}}]}),
            ),
            Http(400, "nope"),
        ),
        case(
            "REST-06",
            rest_json(
                "PUT",
                "/api/v1/documents/{doc}",
                json!({"plots": {"p": {"kind": "pie", "source": "s"}}}),
            ),
            Http(400, "pie"),
        ),
        case(
            "REST-07",
            rest_json(
                "PUT",
                "/api/v1/documents/{doc}",
                json!({"title": "t", "colour": 1}),
            ),
            Http(400, "colour"),
        ),
        case(
            "REST-08",
            rest_json(
                "POST",
                "/api/v1/documents/{doc}/sources/nope/stream",
                json!({"x": [1.0]}),
            ),
            Http(404, "no column data source named \"nope\""),
        ),
        case(
            "REST-09",
            rest_json(
                "POST",
                "/api/v1/documents/{doc}/sources/src/stream",
                json!({"x": [1.0, 2.0], "y": [1.0]}),
            ),
            Http(400, "y"),
        ),
        case(
            "REST-10",
            rest_json(
                "POST",
                "/api/v1/documents/{doc}/sources/src/stream",
                json!({"x": ["a"], "y": ["b"]}),
            ),
            Http(400, "x"),
        ),
        case(
            "REST-11",
            rest_json(
                "POST",
                "/api/v1/documents/{doc}/sources/src/stream",
                json!({"x": [[1.0]], "y": [1.0]}),
            ),
            Http(400, "x"),
        ),
        case(
            "REST-12",
            rest(
                "POST",
                "/api/v1/documents/{doc}/sources/src/stream",
                "text/csv",
                "x,y\n1,2\n",
            ),
            Http(415, "application/x-plotwire-columns"),
        ),
        case(
            "REST-13",
            rest(
                "POST",
                "/api/v1/documents/{doc}/sources/src/stream",
                "application/x-ndjson",
                "{\"x\": 1.0, \"y\": 2.0}\n{\"x\": 3.0}\n",
            ),
            Http(400, "line 2"),
        ),
        case(
            "REST-14",
            rest(
                "POST",
                "/api/v1/documents/{doc}/sources/src/stream",
                "application/x-plotwire-columns",
                b"PWC2\0\0\0\0".to_vec(),
            ),
            Http(400, ""),
        ),
        case(
            "REST-15",
            rest(
                "POST",
                "/api/v1/documents/{doc}/sources/src/stream",
                "application/x-plotwire-columns",
                raw_body(
                    r#"{"columns":[{"name":"x","dtype":"float64","length":2},{"name":"y","dtype":"float64","length":2}]}"#,
                    &[0; 24],
                ),
            ),
            Http(400, ""),
        ),
        case(
            "REST-16",
            rest(
                "POST",
                "/api/v1/documents/{doc}/sources/src/stream",
                "application/x-plotwire-columns",
                raw_body(
                    r#"{"columns":[{"name":"x","dtype":"complex128","length":1}]}"#,
                    &[0; 16],
                ),
            ),
            Http(400, "complex128"),
        ),
        case(
            "REST-17",
            rest(
                "POST",
                "/api/v1/documents/{doc}/sources/src/stream",
                "application/vnd.apache.arrow.stream",
                b"not arrow at all".to_vec(),
            ),
            Http(400, ""),
        ),
        case(
            "REST-18",
            rest_json(
                "POST",
                "/api/v1/documents/{doc}/sources/src/stream?rollover=-1",
                json!({"x": [1.0], "y": [1.0]}),
            ),
            Http(400, "rollover"),
        ),
        case(
            "REST-19",
            rest_json(
                "POST",
                "/api/v1/documents/{doc}/sources/src/patch",
                json!({"x": [[99, 1.0]]}),
            ),
            Http(400, ""),
        ),
        case(
            "REST-20",
            rest_json(
                "POST",
                "/api/v1/documents/{doc}/sources/src/patch",
                json!({"x": [1.0]}),
            ),
            Http(400, "[index, value]"),
        ),
        case(
            "REST-21",
            rest_json(
                "POST",
                "/api/v1/documents/{doc}/sources/src/frobnicate",
                json!({}),
            ),
            Http(404, "frobnicate"),
        ),
        case(
            "REST-22",
            rest_json(
                "PUT",
                "/api/v1/documents/{doc}/models/nope/value",
                json!({"value": 1}),
            ),
            Http(404, "no model named"),
        ),
        case(
            "REST-23",
            rest_json(
                "PUT",
                "/api/v1/documents/{doc}/models/slider/value",
                json!({"value": 1, "view": "no-such-view"}),
            ),
            Http(404, "no view"),
        ),
        case(
            "REST-24",
            rest_json(
                "PUT",
                "/api/v1/documents/{doc}/models/slider/value",
                json!({"value": {"type": "object", "name": "Div", "id": "new", "attributes": {}}, "vue": 1}),
            ),
            Http(400, "vue"),
        ),
        case(
            "REST-25",
            Input::Rest {
                method: "POST",
                path: "/api/v1/documents/{doc}/sources/src/stream",
                content_type: "application/json",
                body: b"{}".to_vec(),
                headers: "Idempotency-Key: has space\r\n",
            },
            Http(400, "Idempotency-Key"),
        ),
        case(
            "REST-26",
            rest_json(
                "GET",
                "/api/v1/documents/{doc}/sources/src?since=minus",
                json!(null),
            ),
            Http(400, "since"),
        ),
        case(
            "REST-27",
            rest_json(
                "GET",
                "/api/v1/documents/{doc}/events?timeout=soon",
                json!(null),
            ),
            Http(400, "timeout"),
        ),
        case(
            "REST-28",
            rest_json("DELETE", "/api/v1/documents/{doc}/sources/src", json!(null)),
            Http(405, ""),
        ),
        case(
            "REST-29",
            rest_json(
                "POST",
                "/api/v1/documents/{doc}/streamvis/tandem_lines",
                json!({"plot": "p", "values": [1.0, 2.0]}),
            ),
            Http(409, "dashboard spec"),
        ),
        case(
            "REST-30",
            rest_json(
                "POST",
                "/api/v1/documents/{doc}/sources/src/stream",
                json!({"x": vec![1.5; 400], "y": vec![1.5; 400]}),
            ),
            Http(413, "max-body-bytes"),
        )
        .on(Srv::Tweaked(|c| c.max_body_bytes = 2048)),
        case(
            "REST-31",
            rest(
                "GET",
                "/api/v1/documents/{doc}/sources/src?format=xml",
                "",
                "",
            ),
            Http(400, "format must be json or columns"),
        ),
        case(
            "REST-32",
            Input::Rest {
                method: "GET",
                path: "/api/v1/documents/{doc}/sources/src?mode=sideways",
                content_type: "",
                body: Vec::new(),
                headers: "Accept: text/event-stream\r\n",
            },
            Http(400, "mode must be append or replace"),
        ),
        case(
            "REST-33",
            Input::Rest {
                method: "GET",
                path: "/api/v1/documents/{doc}/sources/src",
                content_type: "",
                body: Vec::new(),
                headers: "Accept: text/event-stream\r\nLast-Event-ID: yesterday\r\n",
            },
            Http(400, "since must be a sequence number"),
        ),
        case(
            "REST-34",
            rest_json(
                "POST",
                "/api/v1/documents/{doc}/sources/src",
                json!({"x": [1.0]}),
            ),
            Http(400, "send rows to .../stream"),
        ),
        // --- limits -----------------------------------------------------------------------
        case(
            "LIM-01",
            frames(vec![
                pull_hdr(),
                t("{}"),
                t(&format!("{{\"pad\":\"{}\"}}", "x".repeat(too_big))),
            ]),
            Close(1009, "message too big"),
        ),
        case(
            "LIM-02",
            frames(vec![
                hdr("PATCH-DOC", 1),
                t("{}"),
                events0(),
                t(r#"{"id":"0"}"#),
                b(&vec![0; too_big]),
            ]),
            Close(1009, "message too big"),
        ),
        case(
            "LIM-03",
            Input::Raw([ws_frame(0x02, &[0; 40_000]), ws_frame(0x80, &[0; 40_000])].concat()),
            Close(1009, "message too big"),
        ),
        case(
            "LIM-04",
            Input::Raw([ws_header(0x82, 1 << 30, true), vec![0; 4]].concat()),
            Close(1009, "message too big"),
        ),
        case(
            "LIM-05",
            frames(vec![hdr("PATCH-DOC", 9), t("{}"), events0()]),
            Close(
                1009,
                "too many buffers: the header announces 9, the limit is 8",
            ),
        ),
        case(
            "LIM-06",
            frames(vec![
                t(&format!(
                    r#"{{"msgid":"bad","msgtype":"PATCH-DOC","num_buffers":{}}}"#,
                    u64::MAX
                )),
                t("{}"),
                events0(),
            ]),
            Close(1009, "too many buffers"),
        ),
        case(
            "LIM-07",
            Input::StalledViewer {
                batches: 300,
                bytes: 32 * 1024,
            },
            Close(1013, "viewer too slow"),
        ),
        case(
            "LIM-08",
            Input::StalledViewer {
                batches: 1500,
                bytes: 4 * 1024,
            },
            Close(1013, "viewer too slow"),
        )
        .on(Srv::Tweaked(|c| c.outbox_max_bytes = 1 << 30)),
    ];
    // The victim's control: a valid message of every kind the cases use is accepted.
    v.push(case(
        "OK-01",
        patch(json!([stream_xy(json!([5.0]), json!([25.0]))])),
        Ok,
    ));
    v
}

// ---------------------------------------------------------------------------------------
// Servers, victims and the witness
// ---------------------------------------------------------------------------------------

/// The settings of every server: small, explicit limits so that limit cases are cheap.
fn limits() -> Config {
    Config {
        keep_alive: None,
        websocket_max_message_size: 64 * 1024,
        max_buffers_per_message: 8,
        outbox_max_messages: 16,
        outbox_max_bytes: 256 * 1024,
        ..Config::default()
    }
}

/// A running server with its witness session.
struct Server {
    port: u16,
    secret: Option<&'static str>,
    witness: Witness,
}

impl Server {
    async fn start(config: Config) -> Server {
        let secret = config.secret_key.as_ref().map(|_| SECRET);
        let port = start(config).await;
        let witness = Witness::open(port, secret).await;
        Server {
            port,
            secret,
            witness,
        }
    }

    /// A session id that this server accepts.
    fn sid(&self, base: &str) -> String {
        match self.secret {
            Some(key) => signed_id(&base.replace('-', ""), key),
            None => base.to_owned(),
        }
    }

    fn token(&self, sid: &str) -> String {
        match self.secret {
            Some(key) => signed_token(sid, now() + 300, key),
            None => unsigned_token(sid, now() + 300),
        }
    }

    async fn connect(&self, sid: &str) -> Client {
        let mut c = connect_raw(self.port, &self.token(sid), None).await;
        c.expect_ack().await;
        c
    }

    /// `/healthz` answers 200 `{"status": "ok"}`.
    async fn check_health(&self) {
        let (status, _, body) = http_get(self.port, "/healthz").await;
        assert_eq!(status, 200, "/healthz status");
        let health: Json = serde_json::from_slice(&body).expect("/healthz JSON");
        assert_eq!(health["status"], "ok", "/healthz body {health}");
    }
}

/// A session kept open for the whole run: after every case its producer streams one
/// batch and its viewer must receive the relay.
struct Witness {
    producer: Client,
    viewer: Client,
    round: u64,
}

impl Witness {
    async fn open(port: u16, secret: Option<&str>) -> Witness {
        let sid = match secret {
            Some(key) => signed_id("witness", key),
            None => "witness".to_owned(),
        };
        let tok = match secret {
            Some(key) => signed_token(&sid, now() + 300, key),
            None => unsigned_token(&sid, now() + 300),
        };
        let mut producer = connect_raw(port, &tok, None).await;
        producer.expect_ack().await;
        let doc = json!({"doc": {"version": "3.9.2", "title": "witness", "roots": [
            model("ColumnDataSource", "wsrc",
                json!({"data": {"type": "map", "entries": [["x", [0.0]], ["y", [0.0]]]}}))]}});
        producer.push(&doc).await;
        let mut viewer = connect_raw(port, &tok, None).await;
        viewer.expect_ack().await;
        viewer.pull().await;
        Witness {
            producer,
            viewer,
            round: 0,
        }
    }

    async fn check(&mut self) {
        self.round += 1;
        let (x, y) = (self.round as f64, self.round as f64 * 10.0);
        let ev = json!([stream(
            "wsrc",
            json!({"type": "map", "entries": [["x", [x]], ["y", [y]]]}),
            json!(100)
        )]);
        let id = self.producer.patch(ev).await;
        self.producer.expect_reply("OK", &id).await;
        let m = self.viewer.expect("PATCH-DOC").await;
        let e = &m.events()[0];
        assert_eq!(e["kind"], "ColumnsStreamed", "witness relay {m:?}");
        assert_eq!(e["model"]["id"], "wsrc");
        let col = |name: &str| -> Vec<f64> {
            let entries = e["data"]["entries"].as_array().expect("entries");
            let c = entries.iter().find(|c| c[0] == name).expect("column");
            c[1].as_array()
                .expect("a list")
                .iter()
                .map(|v| v.as_f64().expect("a number"))
                .collect()
        };
        assert_eq!(col("x"), [x], "witness x");
        assert_eq!(col("y"), [y], "witness y");
    }
}

/// The victim document: a float source `src` (x, y of 3 items) and a `slider`.
fn victim_doc() -> Json {
    json!({"doc": {"version": "3.9.2", "title": "victim", "roots": [
        model("ColumnDataSource", "src",
            json!({"data": {"type": "map", "entries": [["x", [0.0, 1.0, 2.0]], ["y", [0.0, 1.0, 4.0]]]}})),
        model("Slider", "slider", json!({"start": 0, "end": 10, "value": 1, "title": "s"}))]}})
}

// ---------------------------------------------------------------------------------------
// Running one case
// ---------------------------------------------------------------------------------------

/// How a connection ended.
#[derive(Debug, PartialEq)]
enum Ending {
    /// A close frame: its code (`None`: without status) and reason.
    Close(Option<u16>, String),
    /// The stream ended without a close frame.
    End,
}

/// Reads until the connection ends: the Bokeh messages first, then how it ended.
async fn read_to_end(c: &mut Client) -> (Vec<Received>, Ending) {
    let mut got = Vec::new();
    let ending = within("the connection to end", async {
        loop {
            let fragment = match c.ws.next().await {
                Some(Ok(Message::Text(s))) => Fragment::Text(Bytes::from(s)),
                Some(Ok(Message::Binary(d))) => Fragment::Binary(d),
                Some(Ok(Message::Close(f))) => {
                    return match f {
                        Some(f) => Ending::Close(Some(u16::from(f.code)), f.reason.to_string()),
                        None => Ending::Close(None, String::new()),
                    }
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ending::End,
            };
            if let Ok(Some(raw)) = c.asm.push(fragment) {
                got.push(Received {
                    msgtype: raw.header.msgtype,
                    reqid: raw.header.reqid,
                    content: serde_json::from_slice(&raw.content).unwrap_or(Json::Null),
                    buffers: raw.buffers,
                });
            }
        }
    })
    .await;
    (got, ending)
}

fn check_close(ending: &Ending, code: u16, gist: &str) {
    match ending {
        Ending::Close(Some(c), reason) => {
            assert_eq!(*c, code, "close code (reason {reason:?})");
            assert!(
                reason.contains(gist),
                "close reason {reason:?} lacks {gist:?}"
            );
        }
        other => panic!("expected close {code}, got {other:?}"),
    }
}

/// Runs one case's input and checks its outcome.
async fn run_case(srv: &Server, case: &Case) {
    match &case.input {
        Input::Frames(_) | Input::Raw(_) => run_on_victim(srv, case).await,
        Input::Handshake { path, headers } => {
            let (status, body, client) = ws_handshake(srv.port, path, headers).await;
            match &case.expect {
                Expect::Refused => {
                    assert_eq!(status, 101, "the handshake status (body {body:?})");
                    let mut c = client.expect("an upgraded socket");
                    let (got, ending) = read_to_end(&mut c).await;
                    assert!(got.is_empty(), "nothing, not even an ACK: {got:?}");
                    assert_eq!(
                        ending,
                        Ending::Close(None, String::new()),
                        "a close without status"
                    );
                }
                Expect::Accepted => {
                    assert_eq!(status, 101, "the handshake status (body {body:?})");
                    client.expect("an upgraded socket").expect_ack().await;
                }
                Expect::Http(code, gist) => check_http(*code, gist, status, body.as_bytes()),
                other => unreachable!(
                    "{}: handshakes expect Refused, Accepted or Http, not {other:?}",
                    case.id
                ),
            }
        }
        Input::Http {
            method,
            path,
            headers,
        } => {
            let (status, hdrs, body) = http_request(srv.port, method, path, headers).await;
            match &case.expect {
                Expect::Http(code, gist) => check_http(*code, gist, status, &body),
                Expect::HttpStatus(code) => assert_eq!(status, *code, "status"),
                Expect::HttpOk(ctype) => {
                    assert_eq!(status, 200, "status");
                    let ct = header(&hdrs, "content-type").unwrap_or("");
                    assert!(ct.contains(ctype), "content-type {ct:?}");
                }
                other => unreachable!("{}: HTTP cases expect Http*, not {other:?}", case.id),
            }
        }
        Input::StalledViewer { batches, bytes } => {
            stalled_viewer(srv, case, *batches, *bytes).await
        }
        Input::Rest {
            method,
            path,
            content_type,
            body,
            headers,
        } => {
            let name = format!("rest/victim-{}", case.id.to_ascii_lowercase());
            let (status, answer) = http_json(
                srv.port,
                "PUT",
                &format!("/api/v1/documents/{name}"),
                &rest_victim_doc(),
            )
            .await;
            assert!(
                status == 201 || status == 200,
                "the victim is published: {answer}"
            );
            let path = path.replace("{doc}", &name);
            let extra = format!("Content-Type: {content_type}\r\n{headers}");
            let (status, _, got) = http_send(srv.port, method, &path, &extra, body).await;
            match &case.expect {
                Expect::Http(code, gist) => check_http(*code, gist, status, &got),
                other => unreachable!("{}: REST cases expect Http, not {other:?}", case.id),
            }
            let (_, after) = http_json(
                srv.port,
                "GET",
                &format!("/api/v1/documents/{name}/sources/src"),
                &Json::Null,
            )
            .await;
            assert_eq!(
                after["data"],
                json!({"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 4.0]}),
                "the victim source is unchanged"
            );
        }
    }
}

/// The published victim: the float source `src` of [`victim_doc`], named, and the slider.
fn rest_victim_doc() -> Json {
    json!({"version": "3.9.2", "title": "victim", "roots": [
        model("ColumnDataSource", "src",
            json!({"name": "src", "data": {"type": "map", "entries": [["x", [0.0, 1.0, 2.0]], ["y", [0.0, 1.0, 4.0]]]}})),
        model("Slider", "slider", json!({"name": "slider", "start": 0, "end": 10, "value": 1, "title": "s"}))]})
}

impl std::fmt::Debug for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Error(g) => write!(f, "Error({g:?})"),
            Expect::Ok => write!(f, "Ok"),
            Expect::Close(c, g) => write!(f, "Close({c}, {g:?})"),
            Expect::ReplyThenClose(m, c, g) => write!(f, "ReplyThenClose({m}, {c}, {g:?})"),
            Expect::Refused => write!(f, "Refused"),
            Expect::Accepted => write!(f, "Accepted"),
            Expect::Http(s, g) => write!(f, "Http({s}, {g:?})"),
            Expect::HttpStatus(s) => write!(f, "HttpStatus({s})"),
            Expect::HttpOk(c) => write!(f, "HttpOk({c:?})"),
        }
    }
}

fn check_http(code: u16, gist: &str, status: u16, body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    assert_eq!(status, code, "HTTP status (body {text:?})");
    let json: Json = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {text:?}"));
    let error = json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no \"error\" string in {json}"));
    assert!(!error.is_empty(), "an empty error");
    assert!(error.contains(gist), "error {error:?} lacks {gist:?}");
}

/// A fresh connection to a fresh victim session (pushed and pulled), the input, the
/// outcome, and then a check that the victim document is unchanged.
async fn run_on_victim(srv: &Server, case: &Case) {
    let sid = srv.sid(&format!("victim-{}", case.id));
    let mut c = srv.connect(&sid).await;
    c.push(&victim_doc()).await;
    let before = c.pull().await;
    match &case.input {
        Input::Frames(f) => c.send_frames(f.clone()).await,
        Input::Raw(bytes) => {
            let MaybeTlsStream::Plain(tcp) = c.ws.get_mut() else {
                unreachable!("plain TCP")
            };
            within("writing raw bytes", tcp.write_all(bytes))
                .await
                .expect("write");
        }
        _ => unreachable!(),
    }
    let unchanged = match &case.expect {
        Expect::Error(gist) => {
            let m = c.recv().await;
            assert_eq!(m.msgtype, "ERROR", "expected ERROR, got {m:?}");
            assert_eq!(m.reqid.as_deref(), Some(MSGID), "ERROR reqid");
            let text = m.content["text"].as_str().expect("ERROR text");
            assert!(text.contains(gist), "ERROR text {text:?} lacks {gist:?}");
            // The connection stays usable.
            let id = c.send(MsgType::ServerInfoReq, &json!({}), &[]).await;
            c.expect_reply("SERVER-INFO-REPLY", &id).await;
            true
        }
        Expect::Ok => {
            c.expect_reply("OK", MSGID).await;
            false
        }
        Expect::Close(code, gist) => {
            let (got, ending) = read_to_end(&mut c).await;
            assert!(got.is_empty(), "no message before the close: {got:?}");
            check_close(&ending, *code, gist);
            true
        }
        Expect::ReplyThenClose(msgtype, code, gist) => {
            let (got, ending) = read_to_end(&mut c).await;
            let types: Vec<&str> = got.iter().map(|m| m.msgtype.as_str()).collect();
            assert_eq!(types, [*msgtype], "the replies before the close");
            assert_eq!(got[0].reqid.as_deref(), Some(MSGID));
            check_close(&ending, *code, gist);
            true
        }
        other => unreachable!("{}: victim cases don't expect {other:?}", case.id),
    };
    if unchanged {
        let mut again = srv.connect(&sid).await;
        assert_eq!(again.pull().await, before, "the victim document changed");
        again.close().await;
    }
}

/// A websocket handshake written by hand: the status, the body of a refusal, and the
/// socket of an upgrade.
async fn ws_handshake(port: u16, path: &str, headers: &str) -> (u16, String, Option<Client>) {
    let mut tcp = within("connect", TcpStream::connect(("127.0.0.1", port)))
        .await
        .expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n{headers}\r\n"
    );
    within("write", tcp.write_all(req.as_bytes()))
        .await
        .expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = within("the handshake response", tcp.read(&mut byte))
            .await
            .expect("read");
        assert_eq!(n, 1, "the server closed during the handshake");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("UTF-8 head");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    if status == 101 {
        let ws =
            WebSocketStream::from_raw_socket(MaybeTlsStream::Plain(tcp), Role::Client, None).await;
        return (status, String::new(), Some(Client::new(ws)));
    }
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    within("the refusal body", tcp.read_exact(&mut body))
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned(), None)
}

/// A viewer with a tiny receive buffer stops reading while a producer streams into its
/// session; it must then be closed with the expected code, without having seen every batch.
async fn stalled_viewer(srv: &Server, case: &Case, batches: usize, bytes: usize) {
    let sid = srv.sid(&format!("stall-{}", case.id));
    let mut producer = srv.connect(&sid).await;
    let doc = json!({"doc": {"version": "3.9.2", "title": "stall", "roots": [
        model("ColumnDataSource", "cds", json!({"data": {"type": "map", "entries": [["x", []]]}}))]}});
    producer.push(&doc).await;

    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let tcp = within("connect", sock.connect(([127, 0, 0, 1], srv.port).into()))
        .await
        .expect("connect");
    let mut req = format!("ws://127.0.0.1:{}/target/ws", srv.port)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("bokeh, {}", srv.token(&sid))
            .parse()
            .expect("header"),
    );
    let (ws, _) = within(
        "the stalled viewer's handshake",
        tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(tcp)),
    )
    .await
    .expect("handshake");
    let mut viewer = Client::new(ws);
    viewer.expect_ack().await;
    viewer.pull().await;

    let ev = json!({"events": [{"kind": "ColumnsStreamed", "model": {"id": "cds"}, "attr": "data",
        "data": {"type": "map", "entries": [["x", typed("float64", "0")]]}, "rollover": 64}]});
    let payload = Bytes::from(vec![0u8; bytes / 8 * 8]);
    let started = Instant::now();
    for _ in 0..batches {
        let id = producer
            .send(MsgType::PatchDoc, &ev, &[("0".to_owned(), payload.clone())])
            .await;
        producer.expect_reply("OK", &id).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "streaming took {:?}",
        started.elapsed()
    );
    let (got, ending) = read_to_end(&mut viewer).await;
    assert!(
        got.len() < batches,
        "the stalled viewer got all {} batches",
        got.len()
    );
    let Expect::Close(code, gist) = case.expect else {
        unreachable!("{}: a stalled viewer expects Close", case.id)
    };
    check_close(&ending, code, gist);
    // The producer is unaffected.
    producer
        .patch_ok(json!([{"kind": "TitleChanged", "title": "still alive"}]))
        .await;
    producer.close().await;
}

// ---------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".into())
}

/// Runs `f` bounded by [`CASE_BOUND`], turning a panic or a timeout into an error.
async fn guarded<F: std::future::Future<Output = ()>>(f: F) -> Result<(), String> {
    match tokio::time::timeout(CASE_BOUND, AssertUnwindSafe(f).catch_unwind()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(p)) => Err(panic_text(p)),
        Err(_) => Err(format!("timed out after {CASE_BOUND:?}")),
    }
}

/// Runs the cases, each followed by the witness and health checks of its server;
/// fails naming every failed case.
async fn run_all(cases: Vec<Case>) {
    let started = Instant::now();
    let mut main = Server::start(limits()).await;
    let mut signed = Server::start(Config {
        session_ids: SessionIdMode::Signed,
        secret_key: Some(SECRET.into()),
        ..limits()
    })
    .await;
    let mut failures = Vec::new();
    let total = cases.len();
    for case in &cases {
        let mut own;
        let srv = match case.srv {
            Srv::Main => &mut main,
            Srv::Signed => &mut signed,
            Srv::Tweaked(tweak) => {
                let mut config = limits();
                tweak(&mut config);
                own = Server::start(config).await;
                &mut own
            }
        };
        if let Err(e) = guarded(run_case(srv, case)).await {
            failures.push(format!("{}: {e}", case.id));
        }
        let checked = guarded(async {
            srv.witness.check().await;
            srv.check_health().await;
        })
        .await;
        if let Err(e) = checked {
            failures.push(format!(
                "{}: the witness or /healthz failed afterwards: {e}",
                case.id
            ));
            // A fresh witness, so that later cases are judged on their own.
            srv.witness = Witness::open(srv.port, srv.secret).await;
        }
    }
    eprintln!("{total} cases in {:?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn select(known_failing: bool) -> Vec<Case> {
    cases()
        .into_iter()
        .filter(|c| KNOWN_FAILING.contains(&c.id) == known_failing)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_catalogue() {
    run_all(select(false)).await;
}

/// The cases the server gets wrong today; un-ignore once they are fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "these cases fail today; see KNOWN_FAILING"]
async fn known_failing_cases() {
    run_all(select(true)).await;
}

/// The table, `KNOWN_FAILING` and `docs/bad-input.md` list the same cases.
#[test]
fn the_table_matches_the_doc() {
    let ids: Vec<&str> = cases().iter().map(|c| c.id).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate case ids");
    for id in KNOWN_FAILING {
        assert!(
            unique.contains(id),
            "KNOWN_FAILING names {id}, which is not in the table"
        );
    }
    let doc_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/bad-input.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/bad-input.md");
    let mut doc_ids = Vec::new();
    let mut doc_failing = Vec::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() > 2 && looks_like_id(cells[1]) {
            doc_ids.push(cells[1].to_owned());
            if line.contains("fails today") {
                doc_failing.push(cells[1].to_owned());
            }
        }
    }
    assert_eq!(
        doc_ids, ids,
        "the doc's rows are the table's cases, in order"
    );
    let mut known: Vec<String> = KNOWN_FAILING.iter().map(|s| (*s).to_owned()).collect();
    known.sort();
    doc_failing.sort();
    assert_eq!(
        doc_failing, known,
        "rows marked \"fails today\" are KNOWN_FAILING"
    );
}

/// `WS-01`, `HTTP-12`, ...: capitals, a dash, digits.
fn looks_like_id(s: &str) -> bool {
    s.split_once('-').is_some_and(|(a, n)| {
        !a.is_empty()
            && a.bytes().all(|c| c.is_ascii_uppercase())
            && !n.is_empty()
            && n.bytes().all(|c| c.is_ascii_digit())
    })
}
