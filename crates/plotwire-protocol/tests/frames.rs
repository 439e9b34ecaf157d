//! Message framing against the Bokeh 3.9.2 captures, plus the error cases of spec §3.5.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use plotwire_protocol::frame::{
    encode_message, Assembler, Fragment, FragmentKind, FrameError, RawMessage, Stage,
    DEFAULT_MAX_BUFFERS,
};
use plotwire_protocol::message::{Header, MsgType};
use proptest::prelude::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Fixture helpers
// ---------------------------------------------------------------------------------------------

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bokeh-3.9.2")
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("fixture base64")
}

/// Every raw frame capture `ws/*/*.jsonl` (not `*.messages.jsonl`, not `http-log.jsonl`),
/// paired with its assembled `*.messages.jsonl`.
fn captures() -> Vec<(PathBuf, PathBuf)> {
    let ws = fixtures().join("ws");
    let mut out = Vec::new();
    let mut scenarios: Vec<PathBuf> = fs::read_dir(&ws)
        .unwrap_or_else(|e| panic!("{}: {e}", ws.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    scenarios.sort();
    for dir in scenarios {
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .expect("scenario dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        files.sort();
        for f in files {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !name.ends_with(".jsonl")
                || name.ends_with(".messages.jsonl")
                || name == "http-log.jsonl"
            {
                continue;
            }
            let messages = f.with_file_name(name.replace(".jsonl", ".messages.jsonl"));
            assert!(
                messages.exists(),
                "no {} for {}",
                messages.display(),
                f.display()
            );
            out.push((f, messages));
        }
    }
    out
}

/// One assembled message and the text of the header fragment it was assembled from.
struct Assembled {
    msg: RawMessage,
    header_text: String,
}

/// Feeds a sequence of fragments through one assembler; every message must assemble
/// without error and the assembler must end idle.
fn assemble_all(frames: Vec<Fragment>, what: &str) -> Vec<Assembled> {
    let mut asm = Assembler::new(DEFAULT_MAX_BUFFERS);
    let mut out = Vec::new();
    let mut header_text = String::new();
    for (i, f) in frames.into_iter().enumerate() {
        if asm.is_idle() {
            header_text = String::from_utf8(f.as_bytes().to_vec()).expect("header utf-8");
        }
        match asm.push(f) {
            Ok(Some(msg)) => out.push(Assembled {
                msg,
                header_text: std::mem::take(&mut header_text),
            }),
            Ok(None) => {}
            Err(e) => panic!("{what}: fragment {i}: {e}"),
        }
    }
    assert!(asm.is_idle(), "{what}: capture ends inside a message");
    out
}

fn check_against_record(msg: &RawMessage, rec: &Value, what: &str) {
    let h = &rec["header"];
    assert_eq!(
        msg.header.msgid,
        h["msgid"].as_str().expect("msgid"),
        "{what}"
    );
    assert_eq!(
        msg.header.msgtype,
        h["msgtype"].as_str().expect("msgtype"),
        "{what}"
    );
    assert_eq!(msg.header.reqid.as_deref(), h["reqid"].as_str(), "{what}");
    assert_eq!(
        msg.header.num_buffers as u64,
        h.get("num_buffers").and_then(Value::as_u64).unwrap_or(0),
        "{what}"
    );
    assert!(msg.kind().is_some(), "{what}: unknown msgtype");
    let content: Value = serde_json::from_slice(&msg.content).expect("content JSON");
    assert_eq!(content, rec["content"], "{what}: content");
    let bufs = rec["buffers"].as_array().expect("buffers array");
    assert_eq!(msg.buffers.len(), bufs.len(), "{what}: buffer count");
    for ((id, data), b) in msg.buffers.iter().zip(bufs) {
        assert_eq!(id, b["id"].as_str().expect("buffer id"), "{what}");
        assert_eq!(
            data.len() as u64,
            b["nbytes"].as_u64().expect("nbytes"),
            "{what}"
        );
        assert_eq!(
            &data[..],
            &b64(b["b64"].as_str().expect("b64"))[..],
            "{what}"
        );
    }
}

fn reencode(msg: &RawMessage) -> Vec<Fragment> {
    let kind = msg.kind().expect("known msgtype");
    encode_message(
        &msg.header.msgid,
        kind,
        msg.header.reqid.as_deref(),
        msg.content.clone(),
        &msg.buffers,
    )
    .frames
}

#[test]
fn fixture_captures_assemble_to_recorded_messages_and_round_trip() {
    let caps = captures();
    assert!(
        caps.len() >= 10,
        "expected the 10 captures, found {}",
        caps.len()
    );
    let mut total_messages = 0;
    let mut total_buffers = 0;
    for (raw_path, msg_path) in &caps {
        let raw = read_jsonl(raw_path);
        let recs = read_jsonl(msg_path);
        for dir in ["c2s", "s2c"] {
            let what = format!("{} {dir}", raw_path.display());
            let frames: Vec<Fragment> = raw
                .iter()
                .filter(|l| l["dir"] == dir)
                .filter_map(|l| match l["kind"].as_str() {
                    Some("text") => Some(Fragment::text(l["text"].as_str().expect("text"))),
                    Some("binary") => {
                        let data = b64(l["b64"].as_str().expect("b64"));
                        assert_eq!(data.len() as u64, l["nbytes"].as_u64().expect("nbytes"));
                        Some(Fragment::binary(data))
                    }
                    _ => None,
                })
                .collect();
            let expected: Vec<&Value> = recs
                .iter()
                .filter(|r| r["dir"] == dir && r.get("header").is_some())
                .collect();
            let got = assemble_all(frames, &what);
            assert_eq!(got.len(), expected.len(), "{what}: message count");
            for (i, (a, rec)) in got.iter().zip(&expected).enumerate() {
                let what = format!("{what} message {i}");
                check_against_record(&a.msg, rec, &what);
                total_buffers += a.msg.buffers.len();

                // Round trip through the encoder and a fresh assembler.
                let frames = reencode(&a.msg);
                assert_eq!(frames.len(), 3 + 2 * a.msg.buffers.len(), "{what}");
                let again = assemble_all(frames, &what);
                assert_eq!(again.len(), 1, "{what}");
                assert_eq!(again[0].msg, a.msg, "{what}: round trip");

                // The server side of these captures is Python: the re-encoded header has the
                // same keys in the same order (num_buffers presence included).
                if dir == "s2c" {
                    let ours: serde_json::Map<String, Value> =
                        serde_json::from_str(&again[0].header_text).expect("our header");
                    let theirs: serde_json::Map<String, Value> =
                        serde_json::from_str(&a.header_text).expect("their header");
                    assert_eq!(
                        ours.iter().collect::<Vec<_>>(),
                        theirs.iter().collect::<Vec<_>>(),
                        "{what}: header"
                    );
                }
            }
            total_messages += got.len();
        }
    }
    assert!(total_messages > 100, "only {total_messages} messages");
    assert!(total_buffers > 10, "only {total_buffers} buffers");
}

#[test]
fn edge_case_server_frames_assemble() {
    let cases = read_jsonl(&fixtures().join("ws-edge-cases.jsonl"));
    let mut seen = 0;
    for case in &cases {
        let name = case["case"].as_str().unwrap_or("?");
        let Some(frames) = case.get("frames").and_then(Value::as_array) else {
            continue;
        };
        let frames: Vec<Fragment> = frames
            .iter()
            .map(|f| Fragment::text(f.as_str().expect("text frame")))
            .collect();
        let n = frames.len();
        let got = assemble_all(frames, name);
        assert_eq!(got.len(), n / 3, "{name}");
        if let Some(first) = got.first() {
            assert_eq!(
                first.msg.kind(),
                Some(MsgType::Ack),
                "{name}: ACK comes first"
            );
            assert_eq!(&first.msg.content[..], b"{}");
        }
        seen += got.len();
    }
    assert!(seen >= 10);
}

#[test]
fn edge_case_close_reasons_match_bokeh_texts() {
    let cases = read_jsonl(&fixtures().join("ws-edge-cases.jsonl"));
    let reason = |name: &str| -> String {
        let case = cases
            .iter()
            .find(|c| c["case"] == name)
            .unwrap_or_else(|| panic!("no case {name}"));
        case["close_reason"].as_str().expect("reason").to_owned()
    };

    // Bokeh names the Python method (`_HEADER`); we name the stage.
    let mut asm = Assembler::default();
    let err = asm.push(Fragment::binary(&b"\x00\x01"[..])).unwrap_err();
    assert_eq!(
        err.to_string(),
        reason("binary frame where header expected").replace("_HEADER", "header")
    );

    let mut asm = Assembler::default();
    let hdr = r#"{"msgid": "1", "msgtype": "PATCH-DOC", "num_buffers": 1}"#;
    assert_eq!(asm.push(Fragment::text(hdr)), Ok(None));
    assert_eq!(asm.push(Fragment::text("{}")), Ok(None));
    assert_eq!(asm.push(Fragment::text(r#"{"events":[]}"#)), Ok(None));
    let err = asm
        .push(Fragment::text(r#"{"id": "b1", "extra": 2}"#))
        .unwrap_err();
    let bokeh = reason("malformed buffer header");
    let prefix = "Malformed buffer header ";
    assert!(bokeh.starts_with(prefix));
    assert_eq!(
        err.to_string(),
        format!("{prefix}{{\"id\": \"b1\", \"extra\": 2}}")
    );
    assert_eq!(err.close_code(), 1002);
}

// ---------------------------------------------------------------------------------------------
// Unit tests: accepted forms
// ---------------------------------------------------------------------------------------------

fn push_all(asm: &mut Assembler, frames: &[Fragment]) -> Result<Vec<RawMessage>, FrameError> {
    let mut out = Vec::new();
    for f in frames {
        if let Some(m) = asm.push(f.clone())? {
            out.push(m);
        }
    }
    Ok(out)
}

fn texts(parts: &[&str]) -> Vec<Fragment> {
    parts.iter().map(|s| Fragment::text(*s)).collect()
}

fn header(msgid: &str, msgtype: &str, reqid: Option<&str>, num_buffers: usize) -> Header {
    Header {
        msgid: msgid.into(),
        msgtype: msgtype.into(),
        reqid: reqid.map(Into::into),
        num_buffers,
    }
}

#[test]
fn python_and_js_formatting_in_any_key_order() {
    let mut asm = Assembler::default();
    let cases: &[(&str, Header)] = &[
        (
            r#"{"msgid": "p1008", "msgtype": "ACK"}"#,
            header("p1008", "ACK", None, 0),
        ),
        (
            r#"{"msgid":"9BB1","msgtype":"PATCH-DOC"}"#,
            header("9BB1", "PATCH-DOC", None, 0),
        ),
        (
            r#"{"msgtype":"OK","reqid":"r","msgid":"m"}"#,
            header("m", "OK", Some("r"), 0),
        ),
        (
            r#" { "num_buffers" : 0 , "reqid": null, "msgid": "", "msgtype": "X", "extra": [1, {"a": 2}] } "#,
            header("", "X", None, 0),
        ),
        (
            r#"{"msg\u0069d": "a\"b", "msgtype": "PUSH-DOC", "msgid": "last wins"}"#,
            header("last wins", "PUSH-DOC", None, 0),
        ),
    ];
    for (text, expected) in cases {
        let msgs = push_all(&mut asm, &texts(&[text, "{}", "{}"])).expect(text);
        assert_eq!(msgs.len(), 1, "{text}");
        assert_eq!(&msgs[0].header, expected, "{text}");
        assert!(msgs[0].buffers.is_empty());
        assert!(asm.is_idle());
    }
}

#[test]
fn unknown_msgtype_is_assembled_and_reported_by_kind() {
    let mut asm = Assembler::default();
    let msgs = push_all(
        &mut asm,
        &texts(&[r#"{"msgid":"1","msgtype":"NOPE"}"#, "{}", "{}"]),
    )
    .expect("assembles");
    assert_eq!(msgs[0].header.msgtype, "NOPE");
    assert_eq!(msgs[0].kind(), None);
}

#[test]
fn message_with_buffers_and_stage_progression() {
    let mut asm = Assembler::default();
    assert_eq!(asm.stage(), Stage::Header);
    let steps: Vec<(Fragment, Stage)> = vec![
        (
            Fragment::text(r#"{"msgid":"D2","msgtype":"PATCH-DOC","num_buffers":2}"#),
            Stage::Metadata,
        ),
        (Fragment::text(r#"{"anything": [1, 2]}"#), Stage::Content),
        (Fragment::text(r#"{"events":[]}"#), Stage::BufferHeader),
        (Fragment::text(r#"{"id":"0"}"#), Stage::BufferPayload),
        (Fragment::binary(vec![1u8, 2, 3]), Stage::BufferHeader),
        (Fragment::text(r#"{"id": "1"}"#), Stage::BufferPayload),
    ];
    for (f, stage) in steps {
        assert_eq!(asm.push(f), Ok(None));
        assert_eq!(asm.stage(), stage);
        assert!(!asm.is_idle());
    }
    let msg = asm
        .push(Fragment::binary(Vec::<u8>::new()))
        .expect("ok")
        .expect("complete");
    assert!(asm.is_idle());
    assert_eq!(msg.header, header("D2", "PATCH-DOC", None, 2));
    assert_eq!(&msg.content[..], br#"{"events":[]}"#);
    assert_eq!(
        msg.buffers,
        vec![
            ("0".to_owned(), Bytes::from_static(&[1, 2, 3])),
            ("1".to_owned(), Bytes::new())
        ]
    );
}

#[test]
fn consecutive_messages() {
    let mut asm = Assembler::default();
    let mut frames = texts(&[r#"{"msgid":"a","msgtype":"ACK"}"#, "{}", "{}"]);
    frames.extend(texts(&[
        r#"{"msgid":"b","msgtype":"PATCH-DOC","num_buffers":1}"#,
        "{}",
        "{}",
        r#"{"id":"x"}"#,
    ]));
    frames.push(Fragment::binary(vec![9u8]));
    frames.extend(texts(&[
        r#"{"msgid":"c","msgtype":"OK","reqid":"b"}"#,
        "{}",
        "{}",
    ]));
    let msgs = push_all(&mut asm, &frames).expect("valid");
    let ids: Vec<&str> = msgs.iter().map(|m| m.header.msgid.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
}

// ---------------------------------------------------------------------------------------------
// Unit tests: every error of spec §3.5
// ---------------------------------------------------------------------------------------------

/// Pushes `frames`, expecting every one but the last to be accepted and the last to fail.
fn fails_with(asm: &mut Assembler, frames: &[Fragment]) -> FrameError {
    let (last, init) = frames.split_last().expect("at least one frame");
    push_all(asm, init).expect("prefix accepted");
    let err = asm.push(last.clone()).expect_err("last fragment rejected");
    assert_eq!(asm.error(), Some(&err));
    assert!(!asm.is_idle());
    err
}

fn fail(frames: &[Fragment]) -> FrameError {
    fails_with(&mut Assembler::default(), frames)
}

const PATCH1: &str = r#"{"msgid":"1","msgtype":"PATCH-DOC","num_buffers":1}"#;

#[test]
fn binary_where_text_expected_at_every_text_stage() {
    let bin = Fragment::binary(vec![0u8; 4]);
    let prefixes: Vec<(Vec<Fragment>, &str)> = vec![
        (vec![], "header"),
        (texts(&[PATCH1]), "metadata"),
        (texts(&[PATCH1, "{}"]), "content"),
        (texts(&[PATCH1, "{}", "{}"]), "buffer header"),
    ];
    for (mut frames, stage) in prefixes {
        frames.push(bin.clone());
        let err = fail(&frames);
        assert_eq!(
            err.to_string(),
            format!("expected text fragment but received binary fragment for {stage}")
        );
        assert!(matches!(
            err,
            FrameError::WrongFragmentKind {
                expected: FragmentKind::Text,
                received: FragmentKind::Binary,
                ..
            }
        ));
        assert_eq!(err.close_code(), 1002);
    }
}

#[test]
fn text_where_binary_expected() {
    let err = fail(&texts(&[
        PATCH1,
        "{}",
        "{}",
        r#"{"id":"0"}"#,
        r#"{"id":"1"}"#,
    ]));
    assert_eq!(
        err.to_string(),
        "expected binary fragment but received text fragment for buffer payload"
    );
    assert_eq!(
        err,
        FrameError::WrongFragmentKind {
            expected: FragmentKind::Binary,
            received: FragmentKind::Text,
            stage: Stage::BufferPayload
        }
    );
    assert_eq!(err.close_code(), 1002);
}

#[test]
fn malformed_buffer_headers() {
    for bad in [
        r#"{"id": "b1", "extra": 2}"#,
        r#"{"extra": 2, "id": "b1"}"#,
        r#"{}"#,
        r#"{"ID": "b1"}"#,
        r#"{"id": 1}"#,
        r#"{"id": null}"#,
        r#"{"id": ["b1"]}"#,
        r#"["id", "b1"]"#,
        r#""b1""#,
        r#"{"id": "b1""#,
        r#"{"id": "b1"} x"#,
        "",
    ] {
        let err = fail(&texts(&[PATCH1, "{}", "{}", bad]));
        assert_eq!(
            err,
            FrameError::MalformedBufferHeader(bad.to_owned()),
            "{bad}"
        );
        assert_eq!(err.to_string(), format!("Malformed buffer header {bad}"));
        assert_eq!(err.close_code(), 1002);
    }
    // Whitespace and formatting do not matter.
    let mut asm = Assembler::default();
    let frames = [
        Fragment::text(PATCH1),
        Fragment::text("{}"),
        Fragment::text("{}"),
        Fragment::text(" {\n\"id\" : \"b\\u0031\" } "),
        Fragment::binary(vec![1u8]),
    ];
    let msgs = push_all(&mut asm, &frames).expect("valid");
    assert_eq!(msgs[0].buffers[0].0, "b1");
}

#[test]
fn long_malformed_buffer_header_is_excerpted() {
    let long = format!(r#"{{"id": "x", "pad": "{}"}}"#, "é".repeat(500));
    let err = fail(&texts(&[PATCH1, "{}", "{}", &long]));
    let FrameError::MalformedBufferHeader(excerpt) = &err else {
        panic!("{err:?}")
    };
    assert!(excerpt.ends_with("...") && excerpt.chars().count() < 70);
    let reason = err.close_reason();
    assert!(reason.len() <= 123 && reason.starts_with("Malformed buffer header"));
}

#[test]
fn header_without_msgtype_or_msgid() {
    for bad in [
        r#"{"msgid": "1"}"#,
        r#"{"msgid": "1", "msgtype": null}"#,
        r#"{"id": "0"}"#,
        r#"{}"#,
    ] {
        let err = fail(&texts(&[bad]));
        assert_eq!(err, FrameError::MissingMsgType, "{bad}");
        assert_eq!(err.to_string(), "No 'msgtype' in header");
        assert_eq!(err.close_code(), 1002);
    }
    let err = fail(&texts(&[r#"{"msgtype": "ACK"}"#]));
    assert_eq!(err, FrameError::MissingMsgId);
    assert_eq!(err.close_code(), 1002);
}

#[test]
fn header_fields_of_the_wrong_type() {
    let cases = [
        (r#"{"msgid": 1, "msgtype": "ACK"}"#, "msgid"),
        (r#"{"msgid": "1", "msgtype": ["ACK"]}"#, "msgtype"),
        (r#"{"msgid": "1", "msgtype": "OK", "reqid": 5}"#, "reqid"),
        (
            r#"{"msgid": "1", "msgtype": "OK", "num_buffers": -1}"#,
            "num_buffers",
        ),
        (
            r#"{"msgid": "1", "msgtype": "OK", "num_buffers": 1.5}"#,
            "num_buffers",
        ),
        (
            r#"{"msgid": "1", "msgtype": "OK", "num_buffers": "1"}"#,
            "num_buffers",
        ),
        (
            r#"{"msgid": "1", "msgtype": "OK", "num_buffers": null}"#,
            "num_buffers",
        ),
        (
            r#"{"msgid": "1", "msgtype": "OK", "num_buffers": true}"#,
            "num_buffers",
        ),
    ];
    for (bad, field) in cases {
        let err = fail(&texts(&[bad]));
        assert!(
            matches!(err, FrameError::InvalidHeaderField { field: f, .. } if f == field),
            "{bad}: {err:?}"
        );
        assert_eq!(err.close_code(), 1002);
    }
}

#[test]
fn header_not_an_object() {
    for bad in ["[]", "\"ACK\"", "1", "null", "true"] {
        let err = fail(&texts(&[bad]));
        assert_eq!(err, FrameError::HeaderNotObject, "{bad}");
        assert_eq!(err.close_code(), 1002);
    }
}

#[test]
fn invalid_json_in_header_metadata_content() {
    for bad in [
        "",
        "{",
        "{\"msgid\": \"1\", \"msgtype\": \"ACK\"} x",
        "{'msgid': '1'}",
        "NaN",
    ] {
        let err = fail(&texts(&[bad]));
        assert!(
            matches!(err, FrameError::HeaderNotJson(_)),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().starts_with("header could not be decoded"));
        assert_eq!(err.close_code(), 1002);
    }
    let ack = r#"{"msgid":"1","msgtype":"ACK"}"#;
    for bad in ["", "{", "{}}", "{'a': 1}", "[1,]", "NaN"] {
        let err = fail(&texts(&[ack, bad]));
        assert!(
            matches!(err, FrameError::MetadataNotJson(_)),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().starts_with("metadata could not be decoded"));
        assert_eq!(err.close_code(), 1002);

        let err = fail(&texts(&[ack, "{}", bad]));
        assert!(
            matches!(err, FrameError::ContentNotJson(_)),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().starts_with("content could not be decoded"));
        assert_eq!(err.close_code(), 1002);
    }
    // Any JSON value is acceptable as metadata and content.
    let mut asm = Assembler::default();
    for ok in [
        "null",
        "[1, 2.5e3, \"x\"]",
        " {\"a\": {\"b\": []}} \n",
        "\"s\"",
        "0",
    ] {
        let msgs = push_all(&mut asm, &texts(&[ack, ok, ok])).expect(ok);
        assert_eq!(&msgs[0].content[..], ok.as_bytes());
    }
}

#[test]
fn invalid_utf8_text_fragment() {
    let err = fail(&[Fragment::Text(Bytes::from_static(b"{\"msgid\":\"\xff\"}"))]);
    assert_eq!(
        err,
        FrameError::InvalidUtf8 {
            stage: Stage::Header
        }
    );
    assert_eq!(err.close_code(), 1007);
    // Inside a content string, where a skipping JSON validator would not look.
    let err = fail(&[
        Fragment::text(r#"{"msgid":"1","msgtype":"ACK"}"#),
        Fragment::text("{}"),
        Fragment::Text(Bytes::from_static(b"{\"a\":\"\xc3\x28\"}")),
    ]);
    assert_eq!(
        err,
        FrameError::InvalidUtf8 {
            stage: Stage::Content
        }
    );
}

#[test]
fn too_many_buffers() {
    let mut asm = Assembler::new(2);
    let err = fails_with(
        &mut asm,
        &texts(&[r#"{"msgid":"1","msgtype":"PATCH-DOC","num_buffers":3}"#]),
    );
    assert_eq!(
        err,
        FrameError::TooManyBuffers {
            announced: 3,
            max: 2
        }
    );
    assert_eq!(err.close_code(), 1009);

    let huge = r#"{"msgid":"1","msgtype":"PATCH-DOC","num_buffers":18446744073709551615}"#;
    let err = fail(&texts(&[huge]));
    assert!(matches!(err, FrameError::TooManyBuffers { .. }));
    assert_eq!(err.close_code(), 1009);

    // Exactly at the limit is fine.
    let mut asm = Assembler::new(2);
    assert_eq!(asm.max_buffers(), 2);
    let mut frames = texts(&[
        r#"{"msgid":"1","msgtype":"PATCH-DOC","num_buffers":2}"#,
        "{}",
        "{}",
    ]);
    for id in ["a", "b"] {
        frames.push(Fragment::text(format!(r#"{{"id":"{id}"}}"#)));
        frames.push(Fragment::binary(vec![0u8; 8]));
    }
    assert_eq!(push_all(&mut asm, &frames).expect("at limit").len(), 1);
}

#[test]
fn extra_buffer_pairs_after_a_complete_message() {
    // More pairs than num_buffers: the extra buffer header is read as the next header.
    let mut asm = Assembler::default();
    let mut frames = texts(&[PATCH1, "{}", "{}", r#"{"id":"0"}"#]);
    frames.push(Fragment::binary(vec![1u8]));
    frames.push(Fragment::text(r#"{"id":"1"}"#));
    let err = fails_with(&mut asm, &frames);
    assert_eq!(err, FrameError::MissingMsgType);

    // ... and an extra binary payload is a kind mismatch for the header.
    let mut asm = Assembler::default();
    let mut frames = texts(&[
        r#"{"msgid":"1","msgtype":"PATCH-DOC","num_buffers":0}"#,
        "{}",
        "{}",
    ]);
    frames.push(Fragment::binary(vec![1u8]));
    let err = fails_with(&mut asm, &frames);
    assert_eq!(
        err.to_string(),
        "expected text fragment but received binary fragment for header"
    );
}

#[test]
fn duplicate_buffer_ids() {
    let mut frames = texts(&[
        r#"{"msgid":"1","msgtype":"PATCH-DOC","num_buffers":2}"#,
        "{}",
        "{}",
        r#"{"id":"0"}"#,
    ]);
    frames.push(Fragment::binary(vec![1u8]));
    frames.push(Fragment::text(r#"{"id":"0"}"#));
    let err = fail(&frames);
    assert_eq!(err, FrameError::DuplicateBufferId("0".into()));
    assert_eq!(err.close_code(), 1002);
}

#[test]
fn size_cap() {
    let ack = r#"{"msgid":"1","msgtype":"ACK"}"#; // 29 bytes
    let total = ack.len() + 2 + 2;

    // Exactly at the cap, repeatedly: the count restarts with each message.
    let mut asm = Assembler::new(4).with_max_message_bytes(total);
    assert_eq!(asm.max_message_bytes(), total);
    for _ in 0..3 {
        assert_eq!(
            push_all(&mut asm, &texts(&[ack, "{}", "{}"]))
                .expect("fits")
                .len(),
            1
        );
    }

    // One byte over.
    let mut asm = Assembler::new(4).with_max_message_bytes(total - 1);
    let err = fails_with(&mut asm, &texts(&[ack, "{}", "{}"]));
    assert_eq!(err, FrameError::MessageTooBig { limit: total - 1 });
    assert_eq!(err.close_code(), 1009);

    // Buffers count towards the cap.
    let mut asm = Assembler::new(4).with_max_message_bytes(1000);
    let mut frames = texts(&[PATCH1, "{}", "{}", r#"{"id":"0"}"#]);
    frames.push(Fragment::binary(vec![0u8; 1000]));
    let err = fails_with(&mut asm, &frames);
    assert_eq!(err, FrameError::MessageTooBig { limit: 1000 });
    assert_eq!(err.close_code(), 1009);
}

#[test]
fn errors_are_sticky_until_reset() {
    let mut asm = Assembler::default();
    let err = asm.push(Fragment::binary(vec![1u8])).unwrap_err();
    let ack = texts(&[r#"{"msgid":"1","msgtype":"ACK"}"#, "{}", "{}"]);
    assert_eq!(asm.push(ack[0].clone()), Err(err.clone()));
    assert_eq!(asm.error(), Some(&err));
    asm.reset();
    assert!(asm.is_idle());
    assert_eq!(asm.error(), None);
    assert_eq!(push_all(&mut asm, &ack).expect("after reset").len(), 1);

    // Reset in the middle of a message drops it.
    let mut asm = Assembler::default();
    push_all(&mut asm, &texts(&[PATCH1, "{}"])).expect("prefix");
    asm.reset();
    assert_eq!(asm.stage(), Stage::Header);
    assert_eq!(push_all(&mut asm, &ack).expect("after reset").len(), 1);
}

#[test]
fn close_reason_fits_a_close_frame() {
    let err = FrameError::HeaderNotJson("é".repeat(200));
    let reason = err.close_reason();
    assert!(reason.len() <= 123);
    assert!(err.to_string().starts_with(&reason));
    let short = FrameError::MissingMsgType;
    assert_eq!(short.close_reason(), short.to_string());
}

// ---------------------------------------------------------------------------------------------
// Unit tests: encoding
// ---------------------------------------------------------------------------------------------

fn frame_texts(frames: &[Fragment]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match f {
            Fragment::Text(b) => String::from_utf8(b.to_vec()).expect("utf-8"),
            Fragment::Binary(b) => format!("<{} bytes>", b.len()),
        })
        .collect()
}

#[test]
fn encode_layout_matches_python() {
    let ack = encode_message("p1008", MsgType::Ack, None, Bytes::from_static(b"{}"), &[]);
    assert_eq!(
        frame_texts(&ack.frames),
        [r#"{"msgid":"p1008","msgtype":"ACK"}"#, "{}", "{}"]
    );

    let ok = encode_message(
        "p1056",
        MsgType::Ok,
        Some("9BB1"),
        Bytes::from_static(b"{}"),
        &[],
    );
    assert_eq!(
        frame_texts(&ok.frames)[0],
        r#"{"msgid":"p1056","msgtype":"OK","reqid":"9BB1"}"#
    );

    for t in [MsgType::PatchDoc, MsgType::PushDoc, MsgType::PullDocReply] {
        let m = encode_message("p1", t, None, Bytes::from_static(b"{}"), &[]);
        let h: Value = serde_json::from_str(&frame_texts(&m.frames)[0]).expect("json");
        assert_eq!(h["num_buffers"], 0, "{t}");
    }
    for t in [
        MsgType::Ack,
        MsgType::Ok,
        MsgType::Error,
        MsgType::ServerInfoReq,
        MsgType::ServerInfoReply,
        MsgType::PullDocReq,
    ] {
        let m = encode_message("p1", t, None, Bytes::from_static(b"{}"), &[]);
        let h: Value = serde_json::from_str(&frame_texts(&m.frames)[0]).expect("json");
        assert!(h.get("num_buffers").is_none(), "{t}");
    }

    let bufs = vec![
        ("p1121".to_owned(), Bytes::from_static(&[0u8; 16])),
        ("p1122".to_owned(), Bytes::from_static(&[1u8; 8])),
    ];
    let m = encode_message(
        "p1120",
        MsgType::PatchDoc,
        Some("r"),
        Bytes::from_static(br#"{"events":[]}"#),
        &bufs,
    );
    assert_eq!(
        frame_texts(&m.frames),
        [
            r#"{"msgid":"p1120","msgtype":"PATCH-DOC","reqid":"r","num_buffers":2}"#,
            "{}",
            r#"{"events":[]}"#,
            r#"{"id":"p1121"}"#,
            "<16 bytes>",
            r#"{"id":"p1122"}"#,
            "<8 bytes>",
        ]
    );
    assert!(matches!(m.frames[4], Fragment::Binary(_)));
    let expected_len: usize = m.frames.iter().map(|f| f.as_bytes().len()).sum();
    assert_eq!(m.total_len(), expected_len);
    assert_eq!(m.total_len(), 67 + 2 + 13 + 14 + 16 + 14 + 8);
    // Buffers are shared, not copied.
    assert_eq!(m.frames[4].as_bytes().as_ptr(), bufs[0].1.as_ptr());
    let clone = m.clone();
    assert_eq!(clone, m);
}

#[test]
fn encode_escapes_strings() {
    let id = "q\"uo\\te\n\t\u{0}é😀\u{2028}</script>";
    let bufs = vec![(id.to_owned(), Bytes::from_static(b"x"))];
    let m = encode_message(
        id,
        MsgType::Error,
        Some(id),
        Bytes::from_static(b"{}"),
        &bufs,
    );
    let t = frame_texts(&m.frames);
    let h: Value = serde_json::from_str(&t[0]).expect("valid JSON header");
    assert_eq!(h["msgid"], id);
    assert_eq!(h["reqid"], id);
    let bh: Value = serde_json::from_str(&t[3]).expect("valid JSON buffer header");
    assert_eq!(bh["id"], id);

    let mut asm = Assembler::default();
    let msgs = push_all(&mut asm, &m.frames).expect("re-assembles");
    assert_eq!(msgs[0].header, header(id, "ERROR", Some(id), 1));
    assert_eq!(msgs[0].buffers[0].0, id);
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

fn arb_fragment() -> impl Strategy<Value = Fragment> {
    let header = (
        prop::sample::select(vec!["ACK", "PATCH-DOC", "OK", "X", ""]),
        0usize..4,
        any::<bool>(),
    )
        .prop_map(|(t, n, with_n)| {
            if with_n {
                Fragment::text(format!(
                    r#"{{"msgid":"m","msgtype":"{t}","num_buffers":{n}}}"#
                ))
            } else {
                Fragment::text(format!(r#"{{"msgid": "m", "msgtype": "{t}"}}"#))
            }
        });
    let buffer_header = prop::sample::select(vec!["0", "1", "2"])
        .prop_map(|id| Fragment::text(format!(r#"{{"id":"{id}"}}"#)));
    let json_ish = prop::sample::select(vec![
        "{}",
        "[]",
        "null",
        "{",
        "\"",
        "{\"id\":1}",
        "{\"msgtype\":\"ACK\"}",
        "1e999",
        "-0",
    ])
    .prop_map(Fragment::text);
    prop_oneof![
        3 => header,
        3 => json_ish,
        2 => buffer_header,
        2 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Fragment::binary),
        1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(|v| Fragment::Text(Bytes::from(v))),
        1 => ".{0,24}".prop_map(Fragment::text),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_fragment_sequences_never_panic(
        frames in prop::collection::vec((arb_fragment(), any::<bool>()), 0..40),
        max_buffers in 0usize..4,
        max_bytes in 0usize..400,
    ) {
        let mut asm = Assembler::new(max_buffers).with_max_message_bytes(max_bytes);
        for (f, reset_on_error) in frames {
            match asm.push(f) {
                Ok(Some(msg)) => {
                    prop_assert_eq!(msg.buffers.len(), msg.header.num_buffers);
                    prop_assert!(msg.header.num_buffers <= max_buffers);
                    // Syntactically valid JSON (`1e999` is, though it has no f64 value).
                    prop_assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&msg.content).is_ok());
                    prop_assert!(asm.is_idle());
                }
                Ok(None) => prop_assert!(asm.error().is_none()),
                Err(e) => {
                    let code = e.close_code();
                    prop_assert!(matches!(code, 1002 | 1007 | 1009));
                    prop_assert!(e.close_reason().len() <= 123);
                    if reset_on_error {
                        asm.reset();
                    }
                }
            }
        }
    }

    #[test]
    fn encode_then_assemble_round_trips(
        msgid in any::<String>(),
        reqid in prop::option::of(any::<String>()),
        kind in prop::sample::select(MsgType::ALL.to_vec()),
        content in prop::sample::select(vec!["{}", "[]", "{\"events\":[{\"kind\":\"X\"}]}", "null", "\"é\""]),
        buffers in prop::collection::vec((any::<String>(), prop::collection::vec(any::<u8>(), 0..32)), 0..5),
    ) {
        // Buffer ids must be unique within a message.
        let buffers: Vec<(String, Bytes)> = buffers
            .into_iter()
            .enumerate()
            .map(|(i, (id, data))| (format!("{id}#{i}"), Bytes::from(data)))
            .collect();
        let m = encode_message(&msgid, kind, reqid.as_deref(), Bytes::from_static(content.as_bytes()), &buffers);
        prop_assert_eq!(m.frames.len(), 3 + 2 * buffers.len());
        let mut asm = Assembler::default();
        let mut got = Vec::new();
        for f in &m.frames {
            if let Some(msg) = asm.push(f.clone()).map_err(|e| TestCaseError::fail(e.to_string()))? {
                got.push(msg);
            }
        }
        prop_assert_eq!(got.len(), 1);
        let msg = &got[0];
        prop_assert_eq!(&msg.header, &Header {
            msgid: msgid.clone(),
            msgtype: kind.as_str().to_owned(),
            reqid: reqid.clone(),
            num_buffers: buffers.len(),
        });
        prop_assert_eq!(msg.kind(), Some(kind));
        prop_assert_eq!(&msg.content[..], content.as_bytes());
        prop_assert_eq!(&msg.buffers, &buffers);
    }
}
