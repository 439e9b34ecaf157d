//! Bokeh message types and the message header (spec §3.3, §3.4, §4).

use std::fmt;

/// The message types of the Bokeh 3.9 protocol (spec §4).
///
/// The wire name of each variant is given by [`MsgType::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// `ACK`: the first message the server sends on every connection.
    Ack,
    /// `OK`: the server's reply to a successful PUSH-DOC or PATCH-DOC.
    Ok,
    /// `ERROR`: the server's reply when handling a request failed.
    Error,
    /// `SERVER-INFO-REQ`: a client asks for the server's version information.
    ServerInfoReq,
    /// `SERVER-INFO-REPLY`: the answer to SERVER-INFO-REQ.
    ServerInfoReply,
    /// `PULL-DOC-REQ`: a client asks for the full session document.
    PullDocReq,
    /// `PULL-DOC-REPLY`: the answer to PULL-DOC-REQ, carrying the document.
    PullDocReply,
    /// `PUSH-DOC`: a client replaces the session document.
    PushDoc,
    /// `PATCH-DOC`: document events, in either direction.
    PatchDoc,
}

impl MsgType {
    /// Every message type, in declaration order.
    pub const ALL: [MsgType; 9] = [
        MsgType::Ack,
        MsgType::Ok,
        MsgType::Error,
        MsgType::ServerInfoReq,
        MsgType::ServerInfoReply,
        MsgType::PullDocReq,
        MsgType::PullDocReply,
        MsgType::PushDoc,
        MsgType::PatchDoc,
    ];

    /// The name of this type as written in the header's `msgtype` field, e.g. `"PULL-DOC-REQ"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MsgType::Ack => "ACK",
            MsgType::Ok => "OK",
            MsgType::Error => "ERROR",
            MsgType::ServerInfoReq => "SERVER-INFO-REQ",
            MsgType::ServerInfoReply => "SERVER-INFO-REPLY",
            MsgType::PullDocReq => "PULL-DOC-REQ",
            MsgType::PullDocReply => "PULL-DOC-REPLY",
            MsgType::PushDoc => "PUSH-DOC",
            MsgType::PatchDoc => "PATCH-DOC",
        }
    }

    /// Parses a wire name (exact, case-sensitive match). Returns `None` for an unknown type.
    pub fn parse(s: &str) -> Option<MsgType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether Python's `bokeh` always writes `num_buffers` in the header of this type,
    /// even when it is 0 (PUSH-DOC, PULL-DOC-REPLY and PATCH-DOC, spec §3.3).
    pub fn always_has_num_buffers(self) -> bool {
        matches!(
            self,
            MsgType::PushDoc | MsgType::PullDocReply | MsgType::PatchDoc
        )
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header fragment of a Bokeh message (spec §3.3).
///
/// `msgtype` is kept as the raw string so that a message of an unknown type can still be
/// assembled and then reported by the caller; use [`Header::kind`] to classify it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The sender's message id: any string, copied into `reqid` by a reply.
    pub msgid: String,
    /// The message type as written on the wire.
    pub msgtype: String,
    /// The `msgid` of the request this message answers, if any.
    pub reqid: Option<String>,
    /// The number of buffer pairs that follow the content fragment (0 when absent).
    pub num_buffers: usize,
}

impl Header {
    /// The message type, or `None` if `msgtype` is not a Bokeh message type.
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::parse(&self.msgtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in MsgType::ALL {
            assert_eq!(MsgType::parse(t.as_str()), Some(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(MsgType::parse("ack"), None);
        assert_eq!(MsgType::parse("EVENT"), None);
        assert_eq!(MsgType::parse(""), None);
    }

    #[test]
    fn header_kind() {
        let mut h = Header {
            msgid: "p1".into(),
            msgtype: "PATCH-DOC".into(),
            reqid: None,
            num_buffers: 0,
        };
        assert_eq!(h.kind(), Some(MsgType::PatchDoc));
        h.msgtype = "NOPE".into();
        assert_eq!(h.kind(), None);
    }
}
