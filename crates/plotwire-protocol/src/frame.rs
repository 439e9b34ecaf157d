//! Bokeh message framing (spec §3.3, §3.5): assembling incoming websocket fragments into
//! messages, and encoding outgoing messages into fragments.
//!
//! A Bokeh message is a sequence of websocket messages ("fragments") on one connection:
//!
//! ```text
//! text   header          {"msgid": str, "msgtype": str, "reqid"?: str, "num_buffers"?: int}
//! text   metadata        any JSON (always "{}")
//! text   content         any JSON
//! then num_buffers times:
//! text   buffer header   exactly {"id": str}
//! binary buffer payload  raw bytes
//! ```
//!
//! [`Assembler`] is the receiving state machine; [`encode_message`] produces the fragments of
//! an outgoing message in the layout Python's `bokeh` uses.

use std::collections::HashSet;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::message::{Header, MsgType};

/// Default limit on the `num_buffers` a header may announce (see [`Assembler::new`]).
pub const DEFAULT_MAX_BUFFERS: usize = 4096;

/// Default cap on the total size in bytes of all fragments of one assembled message
/// (see [`Assembler::with_max_message_bytes`]).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Longest excerpt of received data quoted inside an error message.
const SNIPPET_CHARS: usize = 60;

/// The longest close reason RFC 6455 allows (a control frame payload of 125 bytes minus the code).
const MAX_CLOSE_REASON_BYTES: usize = 123;

/// One websocket message: a fragment of a Bokeh message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Fragment {
    /// A text websocket message. The bytes are UTF-8 (the assembler checks this).
    Text(Bytes),
    /// A binary websocket message.
    Binary(Bytes),
}

impl Fragment {
    /// A text fragment holding `s`.
    pub fn text(s: impl Into<String>) -> Fragment {
        Fragment::Text(Bytes::from(s.into()))
    }

    /// A binary fragment holding `data`.
    pub fn binary(data: impl Into<Bytes>) -> Fragment {
        Fragment::Binary(data.into())
    }

    /// Whether this is a text or a binary fragment.
    pub fn kind(&self) -> FragmentKind {
        match self {
            Fragment::Text(_) => FragmentKind::Text,
            Fragment::Binary(_) => FragmentKind::Binary,
        }
    }

    /// Whether this is a text fragment.
    pub fn is_text(&self) -> bool {
        matches!(self, Fragment::Text(_))
    }

    /// The payload bytes (UTF-8 for a text fragment).
    pub fn as_bytes(&self) -> &Bytes {
        match self {
            Fragment::Text(b) | Fragment::Binary(b) => b,
        }
    }

    /// The payload, consuming the fragment.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Fragment::Text(b) | Fragment::Binary(b) => b,
        }
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }
}

/// The kind of a websocket message: text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FragmentKind {
    /// A text message.
    Text,
    /// A binary message.
    Binary,
}

impl fmt::Display for FragmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FragmentKind::Text => "text",
            FragmentKind::Binary => "binary",
        })
    }
}

/// The part of a message the [`Assembler`] expects next (the receiver states of spec §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The header fragment: the first fragment of every message.
    Header,
    /// The metadata fragment.
    Metadata,
    /// The content fragment.
    Content,
    /// A buffer header fragment `{"id": ...}`.
    BufferHeader,
    /// A binary buffer payload fragment.
    BufferPayload,
}

impl Stage {
    /// The fragment kind this stage requires.
    pub fn expected_kind(self) -> FragmentKind {
        match self {
            Stage::BufferPayload => FragmentKind::Binary,
            _ => FragmentKind::Text,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Header => "header",
            Stage::Metadata => "metadata",
            Stage::Content => "content",
            Stage::BufferHeader => "buffer header",
            Stage::BufferPayload => "buffer payload",
        })
    }
}

/// Why a sequence of fragments is not a valid Bokeh message.
///
/// Every error ends the connection: use [`FrameError::close_code`] and
/// [`FrameError::close_reason`] for the close frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A binary fragment where a text one was expected, or the reverse.
    #[error("expected {expected} fragment but received {received} fragment for {stage}")]
    WrongFragmentKind {
        /// The kind the current stage requires.
        expected: FragmentKind,
        /// The kind that arrived.
        received: FragmentKind,
        /// The stage the assembler was in.
        stage: Stage,
    },
    /// A text fragment that is not valid UTF-8.
    #[error("text fragment for {stage} is not valid UTF-8")]
    InvalidUtf8 {
        /// The stage the assembler was in.
        stage: Stage,
    },
    /// The header fragment is not valid JSON.
    #[error("header could not be decoded: {0}")]
    HeaderNotJson(String),
    /// The header fragment is valid JSON but not an object.
    #[error("header is not a JSON object")]
    HeaderNotObject,
    /// The header has no `msgtype` (or it is `null`).
    #[error("No 'msgtype' in header")]
    MissingMsgType,
    /// The header has no `msgid` (or it is `null`).
    #[error("No 'msgid' in header")]
    MissingMsgId,
    /// A header field has the wrong JSON type.
    #[error("header field '{field}' must be {expected}")]
    InvalidHeaderField {
        /// The field name.
        field: &'static str,
        /// What it must be, e.g. "a string".
        expected: &'static str,
    },
    /// The metadata fragment is not valid JSON.
    #[error("metadata could not be decoded: {0}")]
    MetadataNotJson(String),
    /// The content fragment is not valid JSON.
    #[error("content could not be decoded: {0}")]
    ContentNotJson(String),
    /// A buffer header that is not exactly `{"id": <string>}`; holds (an excerpt of) its text.
    #[error("Malformed buffer header {0}")]
    MalformedBufferHeader(String),
    /// Two buffers of one message have the same id; holds (an excerpt of) the id.
    #[error("duplicate buffer id '{0}'")]
    DuplicateBufferId(String),
    /// The header announces more buffers than the assembler allows.
    #[error("too many buffers: the header announces {announced}, the limit is {max}")]
    TooManyBuffers {
        /// The header's `num_buffers`.
        announced: u64,
        /// The configured limit.
        max: usize,
    },
    /// The fragments of one message add up to more bytes than the assembler allows.
    #[error("message too big: its fragments exceed {limit} bytes")]
    MessageTooBig {
        /// The configured limit in bytes.
        limit: usize,
    },
}

impl FrameError {
    /// The RFC 6455 close code to end the connection with: 1009 (message too big) for the
    /// size limits, 1007 (invalid payload data) for a text fragment that is not UTF-8, and
    /// 1002 (protocol error) for every other framing error.
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::TooManyBuffers { .. } | FrameError::MessageTooBig { .. } => 1009,
            FrameError::InvalidUtf8 { .. } => 1007,
            _ => 1002,
        }
    }

    /// The error message cut to fit a close frame's reason (at most 123 bytes of UTF-8).
    pub fn close_reason(&self) -> String {
        let mut s = self.to_string();
        if s.len() > MAX_CLOSE_REASON_BYTES {
            let mut end = MAX_CLOSE_REASON_BYTES;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        s
    }
}

/// A complete incoming Bokeh message, with its content still unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The parsed header.
    pub header: Header,
    /// The content fragment: valid JSON text (UTF-8), not parsed.
    pub content: Bytes,
    /// The buffers `(id, payload)`, in the order received. Ids are unique.
    pub buffers: Vec<(String, Bytes)>,
}

impl RawMessage {
    /// The message type, or `None` if the header names an unknown type.
    pub fn kind(&self) -> Option<MsgType> {
        self.header.kind()
    }
}

/// An incoming message being put together.
#[derive(Debug)]
struct Partial {
    header: Header,
    content: Bytes,
    buffers: Vec<(String, Bytes)>,
    ids: HashSet<String>,
}

impl Partial {
    /// Moves on after the content or a buffer payload: the finished message if all
    /// buffers are in, otherwise the state waiting for the next buffer header.
    fn advance(self) -> (State, Option<RawMessage>) {
        if self.buffers.len() >= self.header.num_buffers {
            let msg = RawMessage {
                header: self.header,
                content: self.content,
                buffers: self.buffers,
            };
            (State::Header, Some(msg))
        } else {
            (State::BufferHeader(self), None)
        }
    }
}

/// The receiver state, holding the message received so far.
#[derive(Debug)]
enum State {
    Header,
    Metadata(Partial),
    Content(Partial),
    BufferHeader(Partial),
    BufferPayload(Partial, String),
}

impl State {
    fn stage(&self) -> Stage {
        match self {
            State::Header => Stage::Header,
            State::Metadata(_) => Stage::Metadata,
            State::Content(_) => Stage::Content,
            State::BufferHeader(_) => Stage::BufferHeader,
            State::BufferPayload(..) => Stage::BufferPayload,
        }
    }
}

/// The receiver state machine of spec §3.3:
/// HEADER → METADATA → CONTENT → (BUFFER_HEADER → BUFFER_PAYLOAD)×`num_buffers`.
///
/// Feed it every websocket message of one direction of one connection, in order, with
/// [`Assembler::push`]. After an error it keeps returning that error until [`Assembler::reset`];
/// the connection should be closed anyway.
#[derive(Debug)]
pub struct Assembler {
    max_buffers: usize,
    max_message_bytes: usize,
    state: State,
    bytes: usize,
    failed: Option<FrameError>,
}

impl Default for Assembler {
    /// An assembler with [`DEFAULT_MAX_BUFFERS`] and [`DEFAULT_MAX_MESSAGE_BYTES`].
    fn default() -> Self {
        Assembler::new(DEFAULT_MAX_BUFFERS)
    }
}

impl Assembler {
    /// A new assembler that rejects headers announcing more than `max_buffers` buffers.
    /// The message size cap starts at [`DEFAULT_MAX_MESSAGE_BYTES`].
    pub fn new(max_buffers: usize) -> Assembler {
        Assembler {
            max_buffers,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            state: State::Header,
            bytes: 0,
            failed: None,
        }
    }

    /// Sets the cap on the total bytes of all fragments (header, metadata, content, buffer
    /// headers and payloads) of one message.
    pub fn with_max_message_bytes(mut self, max_message_bytes: usize) -> Assembler {
        self.max_message_bytes = max_message_bytes;
        self
    }

    /// The configured limit on `num_buffers`.
    pub fn max_buffers(&self) -> usize {
        self.max_buffers
    }

    /// The configured cap on the bytes of one message.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// The part of a message expected next ([`Stage::Header`] after an error).
    pub fn stage(&self) -> Stage {
        self.state.stage()
    }

    /// Whether the assembler is between messages (nothing partially received) and has not failed.
    pub fn is_idle(&self) -> bool {
        self.failed.is_none() && matches!(self.state, State::Header)
    }

    /// The error that stopped this assembler, if any.
    pub fn error(&self) -> Option<&FrameError> {
        self.failed.as_ref()
    }

    /// Drops any partial message and any error, and waits for a header again.
    pub fn reset(&mut self) {
        self.state = State::Header;
        self.bytes = 0;
        self.failed = None;
    }

    /// Consumes one fragment. Returns the message it completes, if any.
    ///
    /// On error the partial message is dropped and the same error is returned for every
    /// later fragment until [`Assembler::reset`] is called.
    pub fn push(&mut self, fragment: Fragment) -> Result<Option<RawMessage>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let state = std::mem::replace(&mut self.state, State::Header);
        match self.step(state, fragment) {
            Ok((next, done)) => {
                if matches!(next, State::Header) {
                    self.bytes = 0;
                }
                self.state = next;
                Ok(done)
            }
            Err(err) => {
                self.bytes = 0;
                self.failed = Some(err.clone());
                Err(err)
            }
        }
    }

    fn step(
        &mut self,
        state: State,
        fragment: Fragment,
    ) -> Result<(State, Option<RawMessage>), FrameError> {
        let stage = state.stage();
        let received = fragment.kind();
        let expected = stage.expected_kind();
        if received != expected {
            return Err(FrameError::WrongFragmentKind {
                expected,
                received,
                stage,
            });
        }
        self.bytes = self.bytes.saturating_add(fragment.len());
        if self.bytes > self.max_message_bytes {
            return Err(FrameError::MessageTooBig {
                limit: self.max_message_bytes,
            });
        }
        let data = fragment.into_bytes();
        if expected == FragmentKind::Text && std::str::from_utf8(&data).is_err() {
            return Err(FrameError::InvalidUtf8 { stage });
        }
        match state {
            State::Header => {
                let header = parse_header(&data, self.max_buffers)?;
                let partial = Partial {
                    buffers: Vec::with_capacity(header.num_buffers.min(64)),
                    header,
                    content: Bytes::new(),
                    ids: HashSet::new(),
                };
                Ok((State::Metadata(partial), None))
            }
            State::Metadata(partial) => {
                serde_json::from_slice::<IgnoredAny>(&data)
                    .map_err(|e| FrameError::MetadataNotJson(e.to_string()))?;
                Ok((State::Content(partial), None))
            }
            State::Content(mut partial) => {
                serde_json::from_slice::<IgnoredAny>(&data)
                    .map_err(|e| FrameError::ContentNotJson(e.to_string()))?;
                partial.content = data;
                Ok(partial.advance())
            }
            State::BufferHeader(partial) => {
                let id = parse_buffer_header(&data)?;
                if partial.ids.contains(&id) {
                    return Err(FrameError::DuplicateBufferId(snippet(&id)));
                }
                Ok((State::BufferPayload(partial, id), None))
            }
            State::BufferPayload(mut partial, id) => {
                partial.ids.insert(id.clone());
                partial.buffers.push((id, data));
                Ok(partial.advance())
            }
        }
    }
}

/// At most [`SNIPPET_CHARS`] characters of `s`, with "..." when cut.
fn snippet(s: &str) -> String {
    match s.char_indices().nth(SNIPPET_CHARS) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_owned(),
    }
}

/// The value of one header field, reduced to what validation needs. Anything else is
/// skipped without being built.
#[derive(Debug, Default)]
enum FieldValue {
    #[default]
    Null,
    Str(String),
    UInt(u64),
    Other,
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldValue, E> {
                Ok(FieldValue::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<FieldValue, E> {
                Ok(FieldValue::Str(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FieldValue, E> {
                Ok(FieldValue::UInt(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FieldValue, E> {
                Ok(u64::try_from(v).map_or(FieldValue::Other, FieldValue::UInt))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<FieldValue, E> {
                Ok(FieldValue::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<FieldValue, E> {
                Ok(FieldValue::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<FieldValue, E> {
                Ok(FieldValue::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<FieldValue, E> {
                Ok(FieldValue::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FieldValue, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FieldValue::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldValue, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(FieldValue::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The header object's interesting fields. A key given twice keeps its last value, as in
/// Python's `json.loads`; unknown keys are skipped.
#[derive(Debug, Default)]
struct WireHeader {
    msgid: Option<FieldValue>,
    msgtype: Option<FieldValue>,
    reqid: Option<FieldValue>,
    num_buffers: Option<FieldValue>,
}

impl<'de> Deserialize<'de> for WireHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireHeader;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireHeader, A::Error> {
                let mut h = WireHeader::default();
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "msgid" => &mut h.msgid,
                        "msgtype" => &mut h.msgtype,
                        "reqid" => &mut h.reqid,
                        "num_buffers" => &mut h.num_buffers,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value::<FieldValue>()?);
                }
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses and validates a header fragment (already known to be UTF-8).
fn parse_header(data: &[u8], max_buffers: usize) -> Result<Header, FrameError> {
    let wire = serde_json::from_slice::<WireHeader>(data).map_err(|e| {
        if e.is_data() {
            FrameError::HeaderNotObject
        } else {
            FrameError::HeaderNotJson(e.to_string())
        }
    })?;
    let msgtype = match wire.msgtype {
        None | Some(FieldValue::Null) => return Err(FrameError::MissingMsgType),
        Some(FieldValue::Str(s)) => s,
        Some(_) => {
            return Err(FrameError::InvalidHeaderField {
                field: "msgtype",
                expected: "a string",
            })
        }
    };
    let msgid = match wire.msgid {
        None | Some(FieldValue::Null) => return Err(FrameError::MissingMsgId),
        Some(FieldValue::Str(s)) => s,
        Some(_) => {
            return Err(FrameError::InvalidHeaderField {
                field: "msgid",
                expected: "a string",
            })
        }
    };
    let reqid = match wire.reqid {
        None | Some(FieldValue::Null) => None,
        Some(FieldValue::Str(s)) => Some(s),
        Some(_) => {
            return Err(FrameError::InvalidHeaderField {
                field: "reqid",
                expected: "a string",
            })
        }
    };
    let num_buffers = match wire.num_buffers {
        None => 0,
        Some(FieldValue::UInt(n)) => n,
        Some(_) => {
            return Err(FrameError::InvalidHeaderField {
                field: "num_buffers",
                expected: "a non-negative integer",
            })
        }
    };
    let num_buffers = usize::try_from(num_buffers)
        .ok()
        .filter(|&n| n <= max_buffers)
        .ok_or(FrameError::TooManyBuffers {
            announced: num_buffers,
            max: max_buffers,
        })?;
    Ok(Header {
        msgid,
        msgtype,
        reqid,
        num_buffers,
    })
}

/// Parses a buffer header, which must be exactly `{"id": <string>}`, returning the id.
fn parse_buffer_header(data: &[u8]) -> Result<String, FrameError> {
    struct BufferHeader(Option<String>);
    impl<'de> Deserialize<'de> for BufferHeader {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = BufferHeader;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object {\"id\": string}")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<BufferHeader, A::Error> {
                    let mut id = None;
                    let mut only_id = true;
                    while let Some(key) = map.next_key::<String>()? {
                        if key == "id" {
                            id = match map.next_value::<FieldValue>()? {
                                FieldValue::Str(s) => Some(s),
                                _ => None,
                            };
                        } else {
                            only_id = false;
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    Ok(BufferHeader(id.filter(|_| only_id)))
                }
            }
            d.deserialize_map(V)
        }
    }
    match serde_json::from_slice::<BufferHeader>(data) {
        Ok(BufferHeader(Some(id))) => Ok(id),
        _ => Err(FrameError::MalformedBufferHeader(snippet(
            &String::from_utf8_lossy(data),
        ))),
    }
}

/// The fragments of one outgoing Bokeh message. Cloning is cheap (the payloads are [`Bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Header, metadata, content, then a buffer header and payload per buffer.
    pub frames: Vec<Fragment>,
}

impl OutgoingMessage {
    /// The sum of the frames' payload lengths in bytes (for outbox accounting).
    pub fn total_len(&self) -> usize {
        self.frames.iter().map(Fragment::len).sum()
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a `str` into a `Vec<u8>` cannot fail: there is no I/O error and no
    // unrepresentable value, so the result carries no information.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

/// Encodes an outgoing message as Python's `bokeh` lays it out (spec §3.3):
///
/// - the header, compact JSON with keys `msgid`, `msgtype`, `reqid` (when given) and
///   `num_buffers` (when there are buffers, and always for PUSH-DOC, PULL-DOC-REPLY and
///   PATCH-DOC);
/// - the metadata `{}`;
/// - `content_json`, which must already be valid JSON (it is sent as is);
/// - per buffer, a text `{"id":...}` and a binary payload.
///
/// Strings are escaped by `serde_json`.
pub fn encode_message(
    msgid: &str,
    msgtype: MsgType,
    reqid: Option<&str>,
    content_json: Bytes,
    buffers: &[(String, Bytes)],
) -> OutgoingMessage {
    let mut header = Vec::with_capacity(64 + msgid.len() + reqid.map_or(0, str::len));
    header.extend_from_slice(b"{\"msgid\":");
    push_json_str(&mut header, msgid);
    header.extend_from_slice(b",\"msgtype\":");
    push_json_str(&mut header, msgtype.as_str());
    if let Some(reqid) = reqid {
        header.extend_from_slice(b",\"reqid\":");
        push_json_str(&mut header, reqid);
    }
    if !buffers.is_empty() || msgtype.always_has_num_buffers() {
        header.extend_from_slice(b",\"num_buffers\":");
        header.extend_from_slice(buffers.len().to_string().as_bytes());
    }
    header.push(b'}');

    let mut frames = Vec::with_capacity(3 + 2 * buffers.len());
    frames.push(Fragment::Text(Bytes::from(header)));
    frames.push(Fragment::Text(Bytes::from_static(b"{}")));
    frames.push(Fragment::Text(content_json));
    for (id, payload) in buffers {
        let mut buf_header = Vec::with_capacity(8 + id.len());
        buf_header.extend_from_slice(b"{\"id\":");
        push_json_str(&mut buf_header, id);
        buf_header.push(b'}');
        frames.push(Fragment::Text(Bytes::from(buf_header)));
        frames.push(Fragment::Binary(payload.clone()));
    }
    OutgoingMessage { frames }
}
