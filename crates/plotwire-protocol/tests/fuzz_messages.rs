//! Fuzzes message decoding, [`decode_doc_message`] and [`decode_patch`] with their buffers,
//! on (1) the content and buffers of every assembled message of the Bokeh 3.9.2 captures
//! (`tests/fixtures/bokeh-3.9.2/ws/*/*.messages.jsonl`) after byte mutations, JSON-tree
//! mutations (replaced, removed, duplicated and grafted nodes, renamed keys, extreme
//! numbers) and buffer mutations (dropped, truncated, flipped, renamed, added), and (2)
//! structured random JSON with Bokeh's keys, tags and event kinds.
//!
//! Properties: neither decoder panics; the unmutated fixture contents decode; and whatever
//! decodes re-encodes (`encode_patch`, or the DocJson fields through an [`Encoder`]) to
//! content that decodes again to the same encoding (encode ∘ decode is idempotent).
//! Case count: `PLOTWIRE_FUZZ_CASES`.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use bytes::Bytes;
use common::{byte_mutation, fixture_messages, fuzz, json_value, mutated, ByteMutation, KEYS};
use plotwire_protocol::codec::{buffer_map, Buffers, Encoder, NoExpansion};
use plotwire_protocol::event::{decode_doc_message, decode_patch, encode_patch, DocJson};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value as Json;

/// Encoded content and buffers: what equality of decoded values is judged by (it treats
/// NaN as equal to NaN and still tells `1` from `1.0`).
type Encoded = (Bytes, Vec<(String, Bytes)>);

fn encode_doc(doc: &DocJson) -> Encoded {
    let mut enc = Encoder::new(&NoExpansion);
    enc.raw("{\"doc\":{");
    if let Some(v) = &doc.version {
        enc.raw("\"version\":");
        enc.string(v);
        enc.raw(",");
    }
    if let Some(t) = &doc.title {
        enc.raw("\"title\":");
        enc.string(t);
        enc.raw(",");
    }
    if let Some(c) = &doc.config {
        enc.raw("\"config\":");
        enc.value(c);
        enc.raw(",");
    }
    if let Some(c) = &doc.callbacks {
        enc.raw("\"callbacks\":");
        enc.value(c);
        enc.raw(",");
    }
    enc.raw("\"roots\":[");
    for (i, r) in doc.roots.iter().enumerate() {
        if i > 0 {
            enc.raw(",");
        }
        enc.value(r);
    }
    enc.raw("]}}");
    enc.finish()
}

/// Runs both decoders on `content` and `buffers`; whatever decodes must re-encode stably.
/// Returns whether (doc, patch) decoded.
fn check_decoders(content: &[u8], buffers: &Buffers) -> Result<(bool, bool), TestCaseError> {
    let doc = decode_doc_message(content, buffers);
    if let Ok(doc) = &doc {
        let first = encode_doc(doc);
        let again = decode_doc_message(&first.0, &buffer_map(first.1.clone()))
            .map_err(|e| TestCaseError::fail(format!("re-encoded doc does not decode: {e}")))?;
        prop_assert_eq!(&encode_doc(&again), &first, "doc encoding is not stable");
        prop_assert_eq!(&again.title, &doc.title);
        prop_assert_eq!(&again.version, &doc.version);
        prop_assert_eq!(again.roots.len(), doc.roots.len());
    }
    let patch = decode_patch(content, buffers);
    if let Ok(events) = &patch {
        let mut enc = Encoder::new(&NoExpansion);
        encode_patch(&mut enc, events);
        let first = enc.finish();
        let again = decode_patch(&first.0, &buffer_map(first.1.clone()))
            .map_err(|e| TestCaseError::fail(format!("re-encoded patch does not decode: {e}")))?;
        prop_assert_eq!(again.len(), events.len());
        let mut enc = Encoder::new(&NoExpansion);
        encode_patch(&mut enc, &again);
        prop_assert_eq!(&enc.finish(), &first, "patch encoding is not stable");
        for (a, b) in again.iter().zip(events) {
            prop_assert_eq!(a.kind(), b.kind());
        }
    }
    Ok((doc.is_ok(), patch.is_ok()))
}

// ---------------------------------------------------------------------------------------
// JSON-tree mutations
// ---------------------------------------------------------------------------------------

fn count_nodes(j: &Json) -> usize {
    1 + match j {
        Json::Array(a) => a.iter().map(count_nodes).sum(),
        Json::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// The `n`th node of `j` in pre-order (0 is `j` itself).
fn nth_mut(j: &mut Json, n: usize) -> Option<&mut Json> {
    fn go<'a>(j: &'a mut Json, n: &mut usize) -> Option<&'a mut Json> {
        if *n == 0 {
            return Some(j);
        }
        *n -= 1;
        match j {
            Json::Array(a) => a.iter_mut().find_map(|c| go(c, n)),
            Json::Object(o) => o.values_mut().find_map(|c| go(c, n)),
            _ => None,
        }
    }
    let mut n = n;
    go(j, &mut n)
}

fn nth(j: &Json, n: usize) -> Option<&Json> {
    fn go<'a>(j: &'a Json, n: &mut usize) -> Option<&'a Json> {
        if *n == 0 {
            return Some(j);
        }
        *n -= 1;
        match j {
            Json::Array(a) => a.iter().find_map(|c| go(c, n)),
            Json::Object(o) => o.values().find_map(|c| go(c, n)),
            _ => None,
        }
    }
    let mut n = n;
    go(j, &mut n)
}

/// Numbers at the edges of what the decoders convert.
const EXTREME_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "-0",
    "0.5",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "5e-324",
    "1e400",
];

#[derive(Debug, Clone)]
enum TreeMutation {
    Replace(Index, Json),
    RemoveChild(Index, Index),
    DuplicateChild(Index, Index),
    /// Replace a node with a node of another fixture message.
    Graft(Index, Index, Index),
    Number(Index, &'static str),
    RenameKey(Index, Index, &'static str),
}

fn tree_mutation() -> impl Strategy<Value = TreeMutation> {
    prop_oneof![
        4 => (any::<Index>(), json_value(3)).prop_map(|(i, j)| TreeMutation::Replace(i, j)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, c)| TreeMutation::RemoveChild(i, c)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(i, c)| TreeMutation::DuplicateChild(i, c)),
        3 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(i, m, n)| TreeMutation::Graft(i, m, n)),
        2 => (any::<Index>(), prop::sample::select(EXTREME_NUMBERS))
            .prop_map(|(i, n)| TreeMutation::Number(i, n)),
        2 => (any::<Index>(), any::<Index>(), prop::sample::select(KEYS))
            .prop_map(|(i, c, k)| TreeMutation::RenameKey(i, c, k)),
    ]
}

fn fixture_json(i: usize) -> &'static Json {
    use std::sync::OnceLock;
    static PARSED: OnceLock<Vec<Json>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        fixture_messages()
            .iter()
            .map(|m| serde_json::from_slice(&m.content).expect("fixture content is JSON"))
            .collect()
    });
    &parsed[i % parsed.len()]
}

fn apply_tree_mutation(root: &mut Json, m: &TreeMutation) {
    let total = count_nodes(root);
    let node = |i: &Index| i.index(total);
    match m {
        TreeMutation::Replace(i, j) => {
            if let Some(n) = nth_mut(root, node(i)) {
                *n = j.clone();
            }
        }
        TreeMutation::RemoveChild(i, c) => match nth_mut(root, node(i)) {
            Some(Json::Array(a)) if !a.is_empty() => {
                a.remove(c.index(a.len()));
            }
            Some(Json::Object(o)) if !o.is_empty() => {
                if let Some(k) = o.keys().nth(c.index(o.len())).cloned() {
                    o.shift_remove(&k);
                }
            }
            _ => {}
        },
        TreeMutation::DuplicateChild(i, c) => {
            if let Some(Json::Array(a)) = nth_mut(root, node(i)) {
                if !a.is_empty() {
                    let k = c.index(a.len());
                    let dup = a[k].clone();
                    a.insert(k, dup);
                }
            }
        }
        TreeMutation::Graft(i, msg, n) => {
            let other = fixture_json(msg.index(fixture_messages().len()));
            let graft = nth(other, n.index(count_nodes(other))).cloned();
            if let (Some(slot), Some(g)) = (nth_mut(root, node(i)), graft) {
                *slot = g;
            }
        }
        TreeMutation::Number(i, n) => {
            if let Some(slot) = nth_mut(root, node(i)) {
                // Numbers serde_json cannot hold (1e400) stay as they were.
                if let Ok(v) = serde_json::from_str::<Json>(n) {
                    *slot = v;
                }
            }
        }
        TreeMutation::RenameKey(i, c, k) => {
            if let Some(Json::Object(o)) = nth_mut(root, node(i)) {
                if !o.is_empty() {
                    let old = o.keys().nth(c.index(o.len())).cloned();
                    if let Some(v) = old.and_then(|old| o.shift_remove(&old)) {
                        o.insert((*k).to_owned(), v);
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum BufferMutation {
    Drop(Index),
    Bytes(Index, Vec<ByteMutation>),
    Rename(Index, String),
    Add(String, Vec<u8>),
}

fn buffer_mutation() -> impl Strategy<Value = BufferMutation> {
    prop_oneof![
        2 => any::<Index>().prop_map(BufferMutation::Drop),
        3 => (any::<Index>(), prop::collection::vec(byte_mutation(), 1..3))
            .prop_map(|(i, m)| BufferMutation::Bytes(i, m)),
        1 => (any::<Index>(), prop::sample::select(vec!["0", "1", "p1", ""]).prop_map(str::to_owned))
            .prop_map(|(i, id)| BufferMutation::Rename(i, id)),
        1 => (
            prop::sample::select(vec!["0", "1", "2", "x"]).prop_map(str::to_owned),
            prop::collection::vec(any::<u8>(), 0..32)
        )
            .prop_map(|(id, b)| BufferMutation::Add(id, b)),
    ]
}

fn apply_buffer_mutation(buffers: &mut Vec<(String, Bytes)>, m: &BufferMutation) {
    let len = buffers.len();
    match m {
        BufferMutation::Drop(i) if len > 0 => {
            buffers.remove(i.index(len));
        }
        BufferMutation::Bytes(i, muts) if len > 0 => {
            let b = &mut buffers[i.index(len)].1;
            *b = Bytes::from(mutated(b, muts));
        }
        BufferMutation::Rename(i, id) if len > 0 => buffers[i.index(len)].0 = id.clone(),
        BufferMutation::Add(id, b) => buffers.push((id.clone(), Bytes::from(b.clone()))),
        _ => {}
    }
}

/// How the content of a fixture message is mutated.
#[derive(Debug, Clone)]
enum ContentMutation {
    Bytes(Vec<ByteMutation>),
    Tree(Vec<TreeMutation>),
}

#[test]
fn fuzz_mutated_fixture_messages() {
    let msgs = fixture_messages();
    fuzz(
        "messages/fixtures",
        file!(),
        160,
        (
            0..msgs.len(),
            prop_oneof![
                1 => prop::collection::vec(byte_mutation(), 1..5).prop_map(ContentMutation::Bytes),
                2 => prop::collection::vec(tree_mutation(), 1..4).prop_map(ContentMutation::Tree),
            ],
            prop::collection::vec(buffer_mutation(), 0..3),
        ),
        |(i, content_mutation, buffer_mutations)| {
            let m = &msgs[i];
            let content = match &content_mutation {
                ContentMutation::Bytes(muts) => mutated(&m.content, muts),
                ContentMutation::Tree(muts) => {
                    let mut j = fixture_json(i).clone();
                    for t in muts {
                        apply_tree_mutation(&mut j, t);
                    }
                    serde_json::to_vec(&j).unwrap()
                }
            };
            let mut buffers = m.buffers.clone();
            for b in &buffer_mutations {
                apply_buffer_mutation(&mut buffers, b);
            }
            check_decoders(&content, &buffer_map(buffers))?;
            Ok(())
        },
    );
}

/// The oracle's base case: every fixture message decodes as what its type says.
#[test]
fn fixture_messages_decode() {
    let mut docs = 0;
    let mut patches = 0;
    for m in fixture_messages() {
        let (doc, patch) = check_decoders(&m.content, &buffer_map(m.buffers.clone()))
            .unwrap_or_else(|e| panic!("{}: {e}", m.name));
        match m.msgtype.as_str() {
            "PUSH-DOC" | "PULL-DOC-REPLY" => {
                assert!(doc, "{} decodes", m.name);
                docs += 1;
            }
            "PATCH-DOC" => {
                assert!(patch, "{} decodes", m.name);
                patches += 1;
            }
            _ => {}
        }
    }
    assert!(docs >= 7 && patches >= 50, "{docs} docs, {patches} patches");
}

// ---------------------------------------------------------------------------------------
// Structured random JSON
// ---------------------------------------------------------------------------------------

const KINDS: &[&str] = &[
    "ModelChanged",
    "ColumnDataChanged",
    "ColumnsStreamed",
    "ColumnsPatched",
    "RootAdded",
    "RootRemoved",
    "TitleChanged",
    "MessageSent",
    "Nope",
];

/// An object that looks like an event: a kind and a random subset of event fields.
fn event_json() -> impl Strategy<Value = Json> {
    (
        prop::sample::select(KINDS),
        prop_oneof![
            3 => prop::sample::select(vec!["p1", "p1008", ""]).prop_map(|id| serde_json::json!({"id": id})),
            1 => json_value(2),
        ],
        prop::collection::vec((prop::sample::select(KEYS), json_value(3)), 0..5),
    )
        .prop_map(|(kind, model, fields)| {
            let mut obj = serde_json::Map::new();
            obj.insert("kind".into(), Json::from(kind));
            obj.insert("model".into(), model);
            obj.insert("attr".into(), Json::from("data"));
            for (k, v) in fields {
                obj.insert(k.to_owned(), v);
            }
            Json::Object(obj)
        })
}

fn random_content() -> impl Strategy<Value = Json> {
    prop_oneof![
        3 => prop::collection::vec(event_json(), 0..5).prop_map(|e| serde_json::json!({"events": e})),
        2 => (
            prop::collection::vec(json_value(3), 0..4),
            prop::collection::vec((prop::sample::select(KEYS), json_value(3)), 0..4),
        )
            .prop_map(|(roots, fields)| {
                let mut doc = serde_json::Map::new();
                doc.insert("roots".into(), Json::Array(roots));
                for (k, v) in fields {
                    doc.insert(k.to_owned(), v);
                }
                serde_json::json!({"doc": doc})
            }),
        1 => json_value(4),
    ]
}

#[test]
fn fuzz_random_json_content() {
    fuzz(
        "messages/random",
        file!(),
        256,
        (
            random_content(),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["0", "1", "p1", "x"]).prop_map(str::to_owned),
                    prop::collection::vec(any::<u8>(), 0..24),
                ),
                0..3,
            ),
        ),
        |(content, buffers)| {
            let buffers: Buffers = buffer_map(
                buffers
                    .into_iter()
                    .map(|(k, v)| (k, Bytes::from(v)))
                    .collect(),
            );
            check_decoders(&serde_json::to_vec(&content).unwrap(), &buffers)?;
            Ok(())
        },
    );
}
