//! Shared by the `fuzz_*` targets (included with `#[path]` from `plotwire-document` too):
//! the case count from `PLOTWIRE_FUZZ_CASES`, a runner that persists failing seeds and
//! reports how many cases it ran, fixture loading, and byte-level mutations.

// Not every target uses every helper.
#![allow(dead_code)]

use std::cell::Cell;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{FileFailurePersistence, TestRunner};
use serde_json::Value as Json;

/// The environment variable that sets the number of cases of every fuzz property.
pub const CASES_VAR: &str = "PLOTWIRE_FUZZ_CASES";

/// The number of cases: `PLOTWIRE_FUZZ_CASES` when set (and a number), else `default`,
/// which is kept small so that `cargo test --workspace` stays quick.
pub fn cases(default: u32) -> u32 {
    std::env::var(CASES_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The config of every fuzz property: `cases` from the environment and failing seeds
/// persisted next to the test file (`tests/<file>.proptest-regressions`, committed).
pub fn config(source_file: &'static str, default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default_cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        source_file: Some(source_file),
        // Shrinking a fuzz failure should not take longer than finding it.
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

/// Runs one fuzz property and prints `fuzz-stats <name> cases=<n>` to stderr (shown with
/// `--nocapture`; `scripts/fuzz.sh` adds the counts up). `n` counts every execution of
/// `test`, shrinking steps included. Panics with the minimal failing input on failure.
pub fn fuzz<S>(
    name: &str,
    source_file: &'static str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let mut runner = TestRunner::new(config(source_file, default_cases));
    let count = Cell::new(0u64);
    let result = runner.run(&strategy, |v| {
        count.set(count.get() + 1);
        test(v)
    });
    eprintln!("fuzz-stats {name} cases={}", count.get());
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// `tests/fixtures/bokeh-3.9.2` of the workspace.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bokeh-3.9.2")
}

/// The lines of a JSONL file, parsed.
pub fn read_jsonl(path: &Path) -> Vec<Json> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// Standard base64 (the fixtures' `b64` fields), padding optional.
pub fn b64(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            other => panic!("bad base64 byte {other:#x}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The scenario files `ws/*/<name>` whose name passes `keep`, sorted.
fn ws_files(keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let ws = fixtures().join("ws");
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&ws)
        .unwrap_or_else(|e| panic!("{}: {e}", ws.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("scenario dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}

/// One websocket frame of a raw capture: text or binary, and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// A text frame (else binary).
    pub text: bool,
    /// The payload.
    pub data: Vec<u8>,
}

/// One direction of one raw capture `ws/*/*.jsonl`.
#[derive(Debug)]
pub struct Capture {
    /// `<scenario>/<file> <dir>`.
    pub name: String,
    /// The text and binary frames, in order.
    pub frames: Vec<RawFrame>,
}

/// Every direction of every raw frame capture (not `*.messages.jsonl`, not `http-log`),
/// loaded once.
pub fn captures() -> &'static [Capture] {
    static CAPTURES: OnceLock<Vec<Capture>> = OnceLock::new();
    CAPTURES.get_or_init(|| {
        let files = ws_files(|n| {
            n.ends_with(".jsonl") && !n.ends_with(".messages.jsonl") && n != "http-log.jsonl"
        });
        let mut out = Vec::new();
        for f in files {
            let lines = read_jsonl(&f);
            for dir in ["c2s", "s2c"] {
                let frames: Vec<RawFrame> = lines
                    .iter()
                    .filter(|l| l["dir"] == dir)
                    .filter_map(|l| match l["kind"].as_str() {
                        Some("text") => Some(RawFrame {
                            text: true,
                            data: l["text"].as_str().expect("text").as_bytes().to_vec(),
                        }),
                        Some("binary") => Some(RawFrame {
                            text: false,
                            data: b64(l["b64"].as_str().expect("b64")),
                        }),
                        _ => None,
                    })
                    .collect();
                if !frames.is_empty() {
                    out.push(Capture {
                        name: format!("{} {dir}", short(&f)),
                        frames,
                    });
                }
            }
        }
        assert!(
            out.len() >= 16,
            "expected the fixture captures, found {}",
            out.len()
        );
        out
    })
}

fn short(p: &Path) -> String {
    let parent = p
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    format!("{parent}/{name}")
}

/// One assembled message of a `ws/*/*.messages.jsonl` capture.
#[derive(Debug, Clone)]
pub struct FixtureMessage {
    /// `<scenario>/<file> #<n> <dir> <msgtype>`.
    pub name: String,
    /// `c2s` or `s2c`.
    pub dir: String,
    /// The header's `msgtype`.
    pub msgtype: String,
    /// The content, as compact JSON.
    pub content: Vec<u8>,
    /// The buffers `(id, payload)`.
    pub buffers: Vec<(String, Bytes)>,
}

/// Every assembled message of every `*.messages.jsonl` capture, loaded once.
pub fn fixture_messages() -> &'static [FixtureMessage] {
    static MESSAGES: OnceLock<Vec<FixtureMessage>> = OnceLock::new();
    MESSAGES.get_or_init(|| {
        let mut out = Vec::new();
        for f in ws_files(|n| n.ends_with(".messages.jsonl")) {
            for (i, rec) in read_jsonl(&f).into_iter().enumerate() {
                let Some(header) = rec.get("header") else {
                    continue; // handshake, ping and close records
                };
                let msgtype = header["msgtype"].as_str().expect("msgtype").to_owned();
                let dir = rec["dir"].as_str().expect("dir").to_owned();
                let buffers = rec["buffers"]
                    .as_array()
                    .map(|bs| {
                        bs.iter()
                            .map(|b| {
                                (
                                    b["id"].as_str().expect("id").to_owned(),
                                    Bytes::from(b64(b["b64"].as_str().expect("b64"))),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(FixtureMessage {
                    name: format!("{} #{i} {dir} {msgtype}", short(&f)),
                    dir,
                    msgtype,
                    content: serde_json::to_vec(&rec["content"]).expect("content"),
                    buffers,
                });
            }
        }
        assert!(
            out.len() > 100,
            "expected the fixture messages, found {}",
            out.len()
        );
        out
    })
}

// ---------------------------------------------------------------------------------------
// Byte mutations
// ---------------------------------------------------------------------------------------

/// One edit of a byte string. Positions are [`Index`]es, so a mutation applies to a
/// string of any length (and shrinks towards the start).
#[derive(Debug, Clone)]
pub enum ByteMutation {
    /// XOR one byte with a non-zero mask.
    Flip(Index, u8),
    /// Overwrite one byte.
    Set(Index, u8),
    /// Cut the string at a position.
    Truncate(Index),
    /// Insert bytes at a position.
    Insert(Index, Vec<u8>),
    /// Remove up to `n` bytes at a position.
    Delete(Index, usize),
    /// Copy a range of the string to another position.
    Duplicate(Index, usize, Index),
    /// Insert one of the "interesting" tokens at a position.
    Token(Index, &'static str),
}

/// Tokens that make JSON and Bokeh structure change meaning when inserted.
pub const TOKENS: &[&str] = &[
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "true",
    "-1",
    "0",
    "1e999",
    "-0",
    "18446744073709551616",
    "9223372036854775808",
    "\"type\"",
    "\"id\"",
    "\"map\"",
    "\"entries\"",
    "\"ndarray\"",
    "\"bytes\"",
    "\"shape\"",
    "\"dtype\"",
    "\\u0000",
    "\\ud800",
    "\u{e9}",
    "\u{1f600}",
    "\u{0}",
    ".",
    "=",
    "+",
    "/",
    "-",
    "_",
];

/// A byte mutation.
pub fn byte_mutation() -> impl Strategy<Value = ByteMutation> {
    prop_oneof![
        4 => (any::<Index>(), 1u8..=255).prop_map(|(i, m)| ByteMutation::Flip(i, m)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteMutation::Set(i, b)),
        1 => any::<Index>().prop_map(ByteMutation::Truncate),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| ByteMutation::Insert(i, b)),
        2 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| ByteMutation::Delete(i, n)),
        1 => (any::<Index>(), 1usize..64, any::<Index>())
            .prop_map(|(i, n, j)| ByteMutation::Duplicate(i, n, j)),
        3 => (any::<Index>(), prop::sample::select(TOKENS))
            .prop_map(|(i, t)| ByteMutation::Token(i, t)),
    ]
}

/// Applies `m` to `data` (positions taken modulo the current length).
pub fn apply_byte_mutation(data: &mut Vec<u8>, m: &ByteMutation) {
    let len = data.len();
    // A position for an insertion: 0..=len.
    let at = |i: &Index| i.index(len + 1);
    match m {
        ByteMutation::Flip(i, mask) if len > 0 => data[i.index(len)] ^= mask,
        ByteMutation::Set(i, b) if len > 0 => data[i.index(len)] = *b,
        ByteMutation::Truncate(i) => data.truncate(at(i)),
        ByteMutation::Insert(i, bytes) => {
            let p = at(i);
            data.splice(p..p, bytes.iter().copied());
        }
        ByteMutation::Delete(i, n) if len > 0 => {
            let p = i.index(len);
            data.drain(p..(p + n).min(len));
        }
        ByteMutation::Duplicate(i, n, j) if len > 0 => {
            let p = i.index(len);
            let chunk: Vec<u8> = data[p..(p + n).min(len)].to_vec();
            let q = at(j);
            data.splice(q..q, chunk);
        }
        ByteMutation::Token(i, t) => {
            let p = at(i);
            data.splice(p..p, t.bytes());
        }
        _ => {}
    }
}

/// `data` with every mutation applied in order.
pub fn mutated(data: &[u8], muts: &[ByteMutation]) -> Vec<u8> {
    let mut out = data.to_vec();
    for m in muts {
        apply_byte_mutation(&mut out, m);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Random JSON
// ---------------------------------------------------------------------------------------

/// Keys that Bokeh values and messages give meaning to, plus a few others.
pub const KEYS: &[&str] = &[
    "type",
    "id",
    "name",
    "attributes",
    "entries",
    "data",
    "array",
    "shape",
    "dtype",
    "order",
    "value",
    "start",
    "stop",
    "step",
    "kind",
    "model",
    "attr",
    "new",
    "cols",
    "rollover",
    "patches",
    "title",
    "msg_type",
    "msg_data",
    "events",
    "doc",
    "roots",
    "config",
    "callbacks",
    "version",
    "x",
    "",
];

/// `type` tags: every one the codec knows, and some it does not.
pub const TAGS: &[&str] = &[
    "map",
    "set",
    "array",
    "bytes",
    "slice",
    "typed_array",
    "ndarray",
    "number",
    "object",
    "value",
    "field",
    "expr",
    "event",
    "date",
    "symbol",
    "MAP",
    "",
];

/// Dtype names, valid and not.
pub const DTYPES: &[&str] = &[
    "bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "object",
    "int64", "float16", "",
];

/// A JSON leaf, biased towards numbers and strings that matter to the decoders.
pub fn json_leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        (-3i64..40).prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        any::<f64>().prop_map(Json::from), // NaN and infinities become null
        prop::sample::select(TAGS).prop_map(Json::from),
        prop::sample::select(DTYPES).prop_map(Json::from),
        prop::sample::select(
            &["nan", "inf", "+inf", "-inf", "little", "big", "0", "1", "p1008"][..]
        )
        .prop_map(Json::from),
        ".{0,8}".prop_map(Json::from),
    ]
}

/// Random JSON of bounded depth and size, with Bokeh keys and tags favoured.
pub fn json_value(depth: u32) -> BoxedStrategy<Json> {
    json_leaf().prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec(
                (
                    prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => ".{0,4}"],
                    inner.clone()
                ),
                0..6
            )
            .prop_map(|kv| Json::Object(kv.into_iter().collect())),
            // A tagged object: {"type": tag, ...}.
            (
                prop::sample::select(TAGS),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..5)
            )
                .prop_map(|(tag, kv)| {
                    let mut obj: serde_json::Map<String, Json> =
                        kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                    obj.insert("type".into(), Json::from(tag));
                    Json::Object(obj)
                }),
        ]
    })
    .boxed()
}
