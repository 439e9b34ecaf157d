//! Fuzzes frame assembly, [`Assembler::push`], with (1) structure-aware random sequences of
//! text and binary fragments and resets, and (2) mutations of the real Bokeh 3.9.2 frame
//! captures `tests/fixtures/bokeh-3.9.2/ws/*/*.jsonl`: byte flips, truncation, splicing,
//! duplicated, dropped, reordered and re-kinded fragments.
//!
//! Properties: `push` never panics; every error has a close code the module defines
//! (1002, 1007 or 1009, so within 1000..=1015), a close reason of at most 123 bytes that
//! starts the error text, and is sticky until `reset`; `MessageTooBig` comes exactly when
//! the fragments of the message so far exceed `max_message_bytes`; an assembled message
//! never exceeds the configured limits (bytes, `num_buffers`), has unique buffer ids and
//! JSON content; and a mutation never changes the messages completed before the first
//! fragment it touched. Case count: `PLOTWIRE_FUZZ_CASES`.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::HashSet;

use bytes::Bytes;
use common::{byte_mutation, captures, fuzz, mutated, ByteMutation, RawFrame};
use plotwire_protocol::frame::{
    Assembler, Fragment, FrameError, RawMessage, DEFAULT_MAX_BUFFERS, DEFAULT_MAX_MESSAGE_BYTES,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// One step of a fuzz run: a fragment, or a reset of the assembler.
#[derive(Debug, Clone)]
enum Step {
    Push(Fragment),
    Reset,
}

/// What one run of an assembler produced.
#[derive(Debug, Default)]
struct Outcome {
    /// `(index of the completing fragment, message)`.
    messages: Vec<(usize, RawMessage)>,
    /// The first error and the index of the fragment that caused it.
    first_error: Option<(usize, FrameError)>,
}

fn to_fragment(f: &RawFrame) -> Fragment {
    let data = Bytes::from(f.data.clone());
    if f.text {
        Fragment::Text(data)
    } else {
        Fragment::Binary(data)
    }
}

/// Checks the properties of one error.
fn check_error(e: &FrameError) -> Result<(), TestCaseError> {
    let code = e.close_code();
    prop_assert!(
        matches!(code, 1002 | 1007 | 1009),
        "close code {code} for {e}"
    );
    prop_assert!((1000..=1015).contains(&code));
    let reason = e.close_reason();
    prop_assert!(
        reason.len() <= 123,
        "close reason of {} bytes",
        reason.len()
    );
    prop_assert!(e.to_string().starts_with(&reason));
    match e {
        FrameError::TooManyBuffers { .. } | FrameError::MessageTooBig { .. } => {
            prop_assert_eq!(code, 1009)
        }
        FrameError::InvalidUtf8 { .. } => prop_assert_eq!(code, 1007),
        _ => prop_assert_eq!(code, 1002),
    }
    Ok(())
}

/// Feeds `steps` to a new assembler with the given limits, checking every property on
/// the way, and returns what it produced.
fn run(steps: &[Step], max_buffers: usize, max_bytes: usize) -> Result<Outcome, TestCaseError> {
    let mut asm = Assembler::new(max_buffers).with_max_message_bytes(max_bytes);
    prop_assert_eq!(asm.max_buffers(), max_buffers);
    prop_assert_eq!(asm.max_message_bytes(), max_bytes);
    let mut out = Outcome::default();
    // Bytes of the message being assembled, as the test counts them.
    let mut pending: usize = 0;
    for (i, step) in steps.iter().enumerate() {
        let f = match step {
            Step::Reset => {
                asm.reset();
                prop_assert!(asm.is_idle());
                prop_assert!(asm.error().is_none());
                pending = 0;
                continue;
            }
            Step::Push(f) => f.clone(),
        };
        let len = f.len();
        let was_failed = asm.error().cloned();
        match asm.push(f) {
            Ok(done) => {
                prop_assert!(was_failed.is_none(), "push succeeded after an error");
                prop_assert!(asm.error().is_none());
                pending += len;
                prop_assert!(
                    pending <= max_bytes,
                    "{} bytes accepted, limit {}",
                    pending,
                    max_bytes
                );
                match done {
                    Some(msg) => {
                        prop_assert!(asm.is_idle());
                        prop_assert_eq!(msg.buffers.len(), msg.header.num_buffers);
                        prop_assert!(msg.header.num_buffers <= max_buffers);
                        let ids: HashSet<&str> =
                            msg.buffers.iter().map(|(id, _)| id.as_str()).collect();
                        prop_assert_eq!(ids.len(), msg.buffers.len(), "duplicate buffer ids");
                        let size = msg.content.len()
                            + msg.buffers.iter().map(|(_, b)| b.len()).sum::<usize>();
                        prop_assert!(size <= max_bytes);
                        prop_assert!(
                            serde_json::from_slice::<serde::de::IgnoredAny>(&msg.content).is_ok(),
                            "content is not JSON"
                        );
                        prop_assert!(std::str::from_utf8(&msg.content).is_ok());
                        out.messages.push((i, msg));
                        pending = 0;
                    }
                    None => prop_assert!(!asm.is_idle()),
                }
            }
            Err(e) => {
                check_error(&e)?;
                prop_assert_eq!(asm.error(), Some(&e));
                prop_assert!(!asm.is_idle());
                match &was_failed {
                    // Sticky: the same error again, whatever the fragment.
                    Some(prev) => prop_assert_eq!(prev, &e),
                    None => {
                        if let FrameError::MessageTooBig { limit } = &e {
                            prop_assert_eq!(*limit, max_bytes);
                            prop_assert!(
                                pending + len > max_bytes,
                                "too big at {} + {} <= {}",
                                pending,
                                len,
                                max_bytes
                            );
                        } else if !matches!(e, FrameError::WrongFragmentKind { .. }) {
                            // Every check but the kind check comes after the size check.
                            prop_assert!(pending + len <= max_bytes);
                        }
                        if let FrameError::TooManyBuffers { max, .. } = &e {
                            prop_assert_eq!(*max, max_buffers);
                        }
                        if out.first_error.is_none() {
                            out.first_error = Some((i, e.clone()));
                        }
                    }
                }
                pending = 0;
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Random fragment sequences
// ---------------------------------------------------------------------------------------

/// A header fragment: valid, or with fields missing, of the wrong type or out of range.
fn header_text() -> impl Strategy<Value = String> {
    let msgtype = prop_oneof![
        prop::sample::select(vec![
            "\"ACK\"",
            "\"OK\"",
            "\"PATCH-DOC\"",
            "\"PUSH-DOC\"",
            "\"PULL-DOC-REQ\"",
            "\"SERVER-INFO-REQ\"",
            "\"NOPE\"",
            "\"\"",
            "null",
            "1",
            "[]",
            "{}",
        ])
        .prop_map(str::to_owned),
        ".{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    let msgid = prop::sample::select(vec!["\"m1\"", "\"\"", "null", "7", "true", "\"\\u00e9\""]);
    let num = prop_oneof![
        (0u64..5).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "-1",
            "1.5",
            "\"2\"",
            "null",
            "4096",
            "4097",
            "18446744073709551615",
            "18446744073709551616",
            "1e3",
            "true",
        ])
        .prop_map(str::to_owned),
    ];
    let reqid = prop::sample::select(vec!["\"r\"", "null", "3", "[\"r\"]"]);
    (
        prop::option::weighted(0.95, msgtype),
        prop::option::weighted(0.95, msgid),
        prop::option::of(num),
        prop::option::weighted(0.3, reqid),
        prop::option::weighted(
            0.1,
            (prop::sample::select(common::KEYS), common::json_leaf()),
        ),
        any::<bool>(),
        prop::sample::select(vec!["", "   ", "x", "}", ",", "\u{0}"]),
    )
        .prop_map(|(msgtype, msgid, num, reqid, extra, dup, tail)| {
            let mut fields = Vec::new();
            if let Some(t) = &msgtype {
                fields.push(format!("\"msgtype\": {t}"));
            }
            if let Some(m) = msgid {
                fields.push(format!("\"msgid\":{m}"));
            }
            if let Some(n) = num {
                fields.push(format!("\"num_buffers\":{n}"));
            }
            if let Some(r) = reqid {
                fields.push(format!("\"reqid\":{r}"));
            }
            if let Some((k, v)) = extra {
                fields.push(format!("{}:{v}", serde_json::to_string(k).unwrap()));
            }
            if dup {
                // A key given twice keeps its last value.
                if let Some(t) = &msgtype {
                    fields.push(format!("\"msgtype\":{t}"));
                }
            }
            format!("{{{}}}{tail}", fields.join(","))
        })
}

/// A buffer header fragment: `{"id": ...}` and near misses.
fn buffer_header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["0", "1", "2", "p1", ""])
            .prop_map(|id| format!("{{\"id\":\"{id}\"}}")),
        2 => prop::sample::select(vec![
            "{\"id\":1}", "{\"id\":null}", "{}", "{\"id\":\"0\",\"x\":1}", "{\"ID\":\"0\"}",
            "[\"0\"]", "{\"id\":\"0\"", "\"0\"", "{\"id\":\"0\",\"id\":\"1\"}",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,70}".prop_map(|id| format!("{{\"id\":{}}}", serde_json::to_string(&id).unwrap())),
    ]
}

fn fragment() -> impl Strategy<Value = Fragment> {
    prop_oneof![
        4 => header_text().prop_map(Fragment::text),
        3 => prop::sample::select(vec![
            "{}", "[]", "null", "{", "\"", "1e999", "-0", "{\"events\":[]}", "  {} ", "{}{}", "",
        ])
        .prop_map(Fragment::text),
        2 => common::json_value(3).prop_map(|j| Fragment::text(j.to_string())),
        3 => buffer_header_text().prop_map(Fragment::text),
        3 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Fragment::binary),
        1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(|v| Fragment::Text(Bytes::from(v))),
        1 => prop::sample::select(vec![
            &b"\xff"[..], b"{\"a\":\"\xc3\"}", b"\xed\xa0\x80", b"{}\x80", b"\xf4\x90\x80\x80",
        ])
        .prop_map(|b| Fragment::Text(Bytes::from_static(b))),
        1 => ".{0,24}".prop_map(Fragment::text),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => fragment().prop_map(Step::Push),
        1 => Just(Step::Reset),
    ]
}

fn limits() -> impl Strategy<Value = (usize, usize)> {
    (
        prop_oneof![2 => 0usize..6, 1 => Just(DEFAULT_MAX_BUFFERS)],
        prop_oneof![
            2 => 0usize..600,
            1 => Just(DEFAULT_MAX_MESSAGE_BYTES),
            1 => Just(usize::MAX),
        ],
    )
}

#[test]
fn fuzz_random_fragment_sequences() {
    fuzz(
        "frames/random",
        file!(),
        192,
        (prop::collection::vec(step(), 0..48), limits()),
        |(steps, (max_buffers, max_bytes))| {
            run(&steps, max_buffers, max_bytes)?;
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// Mutated fixture captures
// ---------------------------------------------------------------------------------------

/// One edit of a capture's fragment sequence.
#[derive(Debug, Clone)]
enum FrameMutation {
    /// Byte mutations inside one fragment.
    Bytes(Index, Vec<ByteMutation>),
    /// Replace the tail of fragment `a` from a position with the tail of fragment `b`.
    Splice(Index, Index, Index, Index),
    /// Insert a copy of a fragment at another position.
    Duplicate(Index, Index),
    /// Remove a fragment.
    Drop(Index),
    /// Swap two fragments.
    Swap(Index, Index),
    /// Turn a text fragment into a binary one or the reverse.
    Rekind(Index),
    /// Move a fragment of another capture in.
    Foreign(Index, Index, Index),
    /// Cut the sequence.
    Truncate(Index),
}

fn frame_mutation() -> impl Strategy<Value = FrameMutation> {
    prop_oneof![
        6 => (any::<Index>(), prop::collection::vec(byte_mutation(), 1..4))
            .prop_map(|(i, m)| FrameMutation::Bytes(i, m)),
        2 => (any::<Index>(), any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, b, p, q)| FrameMutation::Splice(a, b, p, q)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| FrameMutation::Duplicate(a, b)),
        2 => any::<Index>().prop_map(FrameMutation::Drop),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| FrameMutation::Swap(a, b)),
        1 => any::<Index>().prop_map(FrameMutation::Rekind),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(c, f, at)| FrameMutation::Foreign(c, f, at)),
        1 => any::<Index>().prop_map(FrameMutation::Truncate),
    ]
}

/// Applies `m` and returns the index of the first fragment it changed (`len` if none).
fn apply_frame_mutation(frames: &mut Vec<RawFrame>, m: &FrameMutation) -> usize {
    let len = frames.len();
    if len == 0 {
        return 0;
    }
    match m {
        FrameMutation::Bytes(i, muts) => {
            let i = i.index(len);
            let data = mutated(&frames[i].data, muts);
            if data == frames[i].data {
                return len;
            }
            frames[i].data = data;
            i
        }
        FrameMutation::Splice(a, b, p, q) => {
            let (a, b) = (a.index(len), b.index(len));
            let tail = frames[b].data[q.index(frames[b].data.len() + 1)..].to_vec();
            let f = &mut frames[a].data;
            let before = f.clone();
            f.truncate(p.index(f.len() + 1));
            f.extend_from_slice(&tail);
            if *f == before {
                len
            } else {
                a
            }
        }
        FrameMutation::Duplicate(a, at) => {
            let f = frames[a.index(len)].clone();
            let at = at.index(len + 1);
            frames.insert(at, f);
            at
        }
        FrameMutation::Drop(a) => {
            let a = a.index(len);
            frames.remove(a);
            a
        }
        FrameMutation::Swap(a, b) => {
            let (a, b) = (a.index(len), b.index(len));
            if frames[a] == frames[b] {
                return len;
            }
            frames.swap(a, b);
            a.min(b)
        }
        FrameMutation::Rekind(a) => {
            let a = a.index(len);
            frames[a].text = !frames[a].text;
            a
        }
        FrameMutation::Foreign(c, f, at) => {
            let caps = captures();
            let cap = &caps[c.index(caps.len())];
            let f = cap.frames[f.index(cap.frames.len())].clone();
            let at = at.index(len + 1);
            frames.insert(at, f);
            at
        }
        FrameMutation::Truncate(at) => {
            let at = at.index(len + 1);
            frames.truncate(at);
            if at == len {
                len
            } else {
                at
            }
        }
    }
}

#[test]
fn fuzz_mutated_fixture_captures() {
    let caps = captures();
    fuzz(
        "frames/fixtures",
        file!(),
        96,
        (
            0..caps.len(),
            prop::collection::vec(frame_mutation(), 0..6),
            prop_oneof![4 => Just(None), 1 => (0usize..5000).prop_map(Some)],
            prop_oneof![4 => Just(DEFAULT_MAX_BUFFERS), 1 => 0usize..5],
        ),
        |(c, muts, max_bytes, max_buffers)| {
            let cap = &caps[c];
            let mut frames = cap.frames.clone();
            let mut first_changed = frames.len();
            for m in &muts {
                // Indices after an insertion or removal shift, so track the minimum.
                first_changed = first_changed.min(apply_frame_mutation(&mut frames, m));
            }
            let max_bytes = max_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
            let steps: Vec<Step> = frames.iter().map(|f| Step::Push(to_fragment(f))).collect();
            let got = run(&steps, max_buffers, max_bytes)?;

            // The same limits on the unmutated capture give the same messages up to the
            // first changed fragment.
            let original: Vec<Step> = cap
                .frames
                .iter()
                .map(|f| Step::Push(to_fragment(f)))
                .collect();
            let want = run(&original, max_buffers, max_bytes)?;
            let before = |o: &Outcome| -> Vec<RawMessage> {
                o.messages
                    .iter()
                    .filter(|(i, _)| *i < first_changed)
                    .map(|(_, m)| m.clone())
                    .collect()
            };
            prop_assert_eq!(
                before(&got),
                before(&want),
                "{}: messages before fragment {}",
                cap.name,
                first_changed
            );
            match (&got.first_error, &want.first_error) {
                (Some((i, e)), _) if *i < first_changed => {
                    prop_assert_eq!(&want.first_error, &Some((*i, e.clone())));
                }
                (_, Some((i, _))) if *i < first_changed => {
                    prop_assert!(
                        false,
                        "{}: error at {} before the first change went missing",
                        cap.name,
                        i
                    );
                }
                _ => {}
            }
            if muts.is_empty()
                && max_bytes == DEFAULT_MAX_MESSAGE_BYTES
                && max_buffers == DEFAULT_MAX_BUFFERS
            {
                // The real captures assemble without error (the capture may end inside a
                // message only where the connection was cut).
                prop_assert!(
                    got.first_error.is_none(),
                    "{}: {:?}",
                    cap.name,
                    got.first_error
                );
                prop_assert!(!got.messages.is_empty());
            }
            Ok(())
        },
    );
}

/// Regression guard for the oracle above: a capture without mutations gives its messages.
#[test]
fn unmutated_captures_assemble() {
    for cap in captures() {
        let steps: Vec<Step> = cap
            .frames
            .iter()
            .map(|f| Step::Push(to_fragment(f)))
            .collect();
        let out = run(&steps, DEFAULT_MAX_BUFFERS, DEFAULT_MAX_MESSAGE_BYTES).unwrap();
        assert!(
            out.first_error.is_none(),
            "{}: {:?}",
            cap.name,
            out.first_error
        );
        assert!(!out.messages.is_empty(), "{}", cap.name);
    }
}
