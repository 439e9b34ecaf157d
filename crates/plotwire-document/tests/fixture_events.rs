//! Every document event kind applied to documents pushed by the real Bokeh 3.9.2 clients
//! (fixtures `tests/fixtures/bokeh-3.9.2/ws/*`), the PULL-DOC-REPLY encoding of the
//! results, all-or-nothing error handling, and a model-based property test of streams and
//! patches through [`Document::apply`].

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use plotwire_document::column::{Column, ColumnKind};
use plotwire_document::{AllModels, Applied, ApplyError, Document};
use plotwire_protocol::codec::{buffer_map, Encoder, NoExpansion};
use plotwire_protocol::event::{decode_doc_message, decode_patch, DocJson, DocumentEvent};
use plotwire_protocol::value::{ArrayData, ArrayForm, ArrayValue, DType, ModelRep, Slice, Value};
use proptest::prelude::*;
use serde_json::Value as Json;

// ---------------------------------------------------------------------------------------
// Fixture loading
// ---------------------------------------------------------------------------------------

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bokeh-3.9.2")
}

/// Standard base64 (the fixtures' `b64`), without a dependency.
fn b64(s: &str) -> Vec<u8> {
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

/// One assembled Bokeh message of a `*.messages.jsonl` capture.
struct Msg {
    dir: String,
    msgtype: String,
    msgid: String,
    content: Vec<u8>,
    buffers: Vec<(String, Bytes)>,
}

fn messages(scenario: &str, client: &str) -> Vec<Msg> {
    let path = fixtures()
        .join("ws")
        .join(scenario)
        .join(format!("{client}.messages.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let rec: Json = serde_json::from_str(line).expect("fixture line is JSON");
        let Some(header) = rec.get("header") else {
            continue; // handshake, ping and close records
        };
        let buffers = rec["buffers"]
            .as_array()
            .map(|bs| {
                bs.iter()
                    .map(|b| {
                        let bytes = b64(b["b64"].as_str().expect("b64"));
                        assert_eq!(Some(bytes.len() as u64), b["nbytes"].as_u64());
                        (b["id"].as_str().expect("id").to_owned(), Bytes::from(bytes))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Msg {
            dir: rec["dir"].as_str().expect("dir").to_owned(),
            msgtype: header["msgtype"].as_str().expect("msgtype").to_owned(),
            msgid: header["msgid"].as_str().expect("msgid").to_owned(),
            content: serde_json::to_vec(&rec["content"]).expect("content"),
            buffers,
        });
    }
    out
}

fn pushed_doc_json(scenario: &str) -> DocJson {
    let msgs = messages(scenario, "a_push_session");
    let push = msgs
        .iter()
        .find(|m| m.dir == "c2s" && m.msgtype == "PUSH-DOC")
        .expect("a PUSH-DOC");
    decode_doc_message(&push.content, &buffer_map(push.buffers.clone())).expect("PUSH-DOC decodes")
}

fn pushed_doc(scenario: &str) -> Document {
    Document::from_doc_json(pushed_doc_json(scenario)).expect("the pushed document is valid")
}

/// The client's PATCH-DOCs, decoded, in the order it sent them.
fn client_patches(scenario: &str, client: &str) -> Vec<(String, Vec<DocumentEvent>)> {
    messages(scenario, client)
        .into_iter()
        .filter(|m| m.dir == "c2s" && m.msgtype == "PATCH-DOC")
        .map(|m| {
            let events = decode_patch(&m.content, &buffer_map(m.buffers))
                .unwrap_or_else(|e| panic!("PATCH-DOC {} decodes: {e}", m.msgid));
            (m.msgid, events)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Inspection helpers
// ---------------------------------------------------------------------------------------

/// A value as Bokeh JSON plus its buffers: a comparison that treats NaN as equal to NaN
/// and still tells `1` from `1.0`.
fn encoded(v: &Value) -> (Bytes, Vec<Bytes>) {
    let mut enc = Encoder::new(&NoExpansion);
    enc.value(v);
    let (content, buffers) = enc.finish();
    (content, buffers.into_iter().map(|(_, b)| b).collect())
}

fn same(a: &Value, b: &Value) -> bool {
    encoded(a) == encoded(b)
}

fn assert_same(actual: &Value, expected: &Value, what: &str) {
    assert!(
        same(actual, expected),
        "{what}: got {actual:?}, expected {expected:?}"
    );
}

/// The whole document as PULL-DOC-REPLY content and buffers: equal snapshots mean equal
/// documents (the encoding is deterministic: roots first, depth first, attribute order).
fn snapshot(doc: &Document) -> (Bytes, Vec<(String, Bytes)>, usize) {
    let lookup = AllModels(doc);
    let mut enc = Encoder::new(&lookup);
    enc.raw("{\"doc\":");
    doc.encode_doc_json(&mut enc);
    enc.raw("}");
    let (content, buffers) = enc.finish();
    (content, buffers, doc.model_count())
}

fn column<'a>(doc: &'a Document, model: &str, name: &str) -> &'a Column {
    doc.model(model)
        .unwrap_or_else(|| panic!("model {model} exists"))
        .columns
        .as_ref()
        .unwrap_or_else(|| panic!("{model} has columns"))
        .get(name)
        .unwrap_or_else(|| panic!("{model} has column {name}"))
}

fn column_names(doc: &Document, model: &str) -> Vec<String> {
    doc.model(model)
        .and_then(|m| m.columns.as_ref())
        .map(|c| c.names().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn as_f64(c: &Column) -> Vec<f64> {
    (0..c.len())
        .map(|i| c.get_f64(i).expect("numeric item"))
        .collect()
}

fn binary(c: &Column) -> Bytes {
    match c.to_value() {
        Value::Array(a) => match a.data {
            ArrayData::Binary(b) => b,
            ArrayData::List(_) => panic!("list body"),
        },
        other => panic!("not an array column: {other:?}"),
    }
}

fn f64_le(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i32_le(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn attr(doc: &Document, model: &str, name: &str) -> Value {
    doc.model(model)
        .unwrap_or_else(|| panic!("model {model} exists"))
        .attribute(name)
        .unwrap_or_else(|| panic!("{model}.{name} is set"))
}

fn apply(doc: &mut Document, (msgid, events): &(String, Vec<DocumentEvent>)) -> Applied {
    doc.apply(events.clone())
        .unwrap_or_else(|e| panic!("PATCH-DOC {msgid} applies: {e}"))
}

/// Applies a browser's PATCH-DOCs, checking that MessageSent is relayed and changes
/// nothing, and returns the last value each (model, attr) was set to.
fn apply_browser(
    doc: &mut Document,
    patches: &[(String, Vec<DocumentEvent>)],
    skip: &HashSet<&str>,
) -> HashMap<(String, String), Value> {
    let mut last = HashMap::new();
    for p in patches {
        if skip.contains(p.0.as_str()) {
            continue;
        }
        let only_messages =
            p.1.iter()
                .all(|e| matches!(e, DocumentEvent::MessageSent { .. }));
        let before = snapshot(doc);
        let applied = apply(doc, p);
        if only_messages {
            assert_eq!(
                snapshot(doc),
                before,
                "MessageSent must not change the document"
            );
            assert_eq!(applied.relay.len(), p.1.len(), "MessageSent is handed on");
            for (out, sent) in applied.relay.iter().zip(&p.1) {
                match (out, sent) {
                    (
                        DocumentEvent::MessageSent {
                            msg_type: ta,
                            msg_data: da,
                        },
                        DocumentEvent::MessageSent {
                            msg_type: tb,
                            msg_data: db,
                        },
                    ) => {
                        assert_eq!(ta, tb);
                        assert_same(da, db, "MessageSent data is handed on unchanged");
                    }
                    other => panic!("MessageSent relayed as {other:?}"),
                }
            }
            assert!(applied.new_models.is_empty());
        }
        for e in &p.1 {
            if let DocumentEvent::ModelChanged { model, attr, new } = e {
                last.insert((model.clone(), attr.clone()), new.clone());
            }
        }
    }
    last
}

fn check_last_values(doc: &Document, last: &HashMap<(String, String), Value>) {
    assert!(!last.is_empty());
    for ((model, name), value) in last {
        assert_same(&attr(doc, model, name), value, &format!("{model}.{name}"));
    }
}

/// Walks PULL-DOC-REPLY JSON in document order: counts full model reps per id and checks
/// that every bare reference comes after its model was written in full.
fn walk_models(j: &Json, full: &mut HashMap<String, usize>, refs: &mut usize) {
    match j {
        Json::Array(items) => items.iter().for_each(|x| walk_models(x, full, refs)),
        Json::Object(obj) => {
            if obj.get("type").and_then(Json::as_str) == Some("bytes") {
                return; // {"type":"bytes","data":{"id": <buffer id>}} is not a model reference
            }
            let id = obj.get("id").and_then(Json::as_str);
            let is_model = obj.get("type").and_then(Json::as_str) == Some("object")
                && obj.contains_key("name");
            match id {
                Some(id) if is_model => *full.entry(id.to_owned()).or_default() += 1,
                Some(id) if obj.len() == 1 => {
                    *refs += 1;
                    assert!(
                        full.contains_key(id),
                        "reference {id} comes before its model was written in full"
                    );
                }
                _ => {}
            }
            obj.values().for_each(|x| walk_models(x, full, refs));
        }
        _ => {}
    }
}

/// Encodes the document as a PULL-DOC-REPLY, checks that every model is written in full
/// exactly once, and that decoding it gives back the same document.
fn check_pull_roundtrip(doc: &Document) {
    let (content, buffers, _) = snapshot(doc);
    let json: Json = serde_json::from_slice(&content).expect("PULL-DOC-REPLY content is JSON");
    let d = &json["doc"];
    assert_eq!(d["version"], "3.9.2");
    assert_eq!(d["title"], doc.title());
    assert_eq!(
        d["roots"].as_array().map(Vec::len),
        Some(doc.roots().len()),
        "roots"
    );
    let mut full = HashMap::new();
    let mut refs = 0;
    walk_models(&json, &mut full, &mut refs);
    for (id, n) in &full {
        assert_eq!(*n, 1, "model {id} written in full {n} times");
        assert!(doc.model(id).is_some(), "{id} is a model of the document");
    }
    assert_eq!(full.len(), doc.model_count(), "every model is written");
    // Buffer ids are unique and every one is referred to.
    let ids: HashSet<&str> = buffers.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), buffers.len());
    let text = std::str::from_utf8(&content).expect("UTF-8");
    for id in &ids {
        assert!(text.contains(&format!("{{\"id\":\"{id}\"}}")));
    }

    let decoded = decode_doc_message(&content, &buffer_map(buffers)).expect("decodes");
    assert_eq!(decoded.title.as_deref(), Some(doc.title()));
    assert_eq!(decoded.version.as_deref(), Some("3.9.2"));
    let back = Document::from_doc_json(decoded).expect("the reply builds a document");
    assert_eq!(back.title(), doc.title());
    assert_eq!(back.roots(), doc.roots());
    assert_eq!(back.model_count(), doc.model_count());
    for id in full.keys() {
        let (a, b) = (
            doc.model(id).expect("original"),
            back.model(id).expect("copy"),
        );
        assert_eq!(a.name, b.name, "{id} name");
        let names = |m: &plotwire_document::model::Model| -> Vec<String> {
            m.attributes.iter().map(|(k, _)| k.clone()).collect()
        };
        assert_eq!(names(a), names(b), "{id} attribute names");
        for (k, _) in &a.attributes {
            let (va, vb) = (a.attribute(k).expect("set"), b.attribute(k).expect("set"));
            assert_same(&vb, &va, &format!("{id}.{k} after the round trip"));
        }
        match (&a.columns, &b.columns) {
            (None, None) => {}
            (Some(ca), Some(cb)) => {
                let na: Vec<&str> = ca.names().collect();
                let nb: Vec<&str> = cb.names().collect();
                assert_eq!(na, nb, "{id} column names");
                for n in na {
                    let (x, y) = (ca.get(n).expect("column"), cb.get(n).expect("column"));
                    if x.is_empty() {
                        // An empty JSON list has no item type to carry over.
                        assert!(y.is_empty(), "{id} column {n} stays empty");
                    } else {
                        assert_eq!(x, y, "{id} column {n} (kind and items)");
                    }
                }
            }
            _ => panic!("{id}: columns lost or invented by the round trip"),
        }
    }
    // Encoding the copy gives the same bytes.
    assert_eq!(snapshot(&back), snapshot(doc));
}

#[test]
fn a_fresh_document_round_trips() {
    // A new session's document: its DocumentConfig must survive a PULL and a re-PUSH.
    let doc = Document::new();
    assert_eq!(doc.title(), "Bokeh Application");
    assert_eq!(doc.model_count(), 1, "the DocumentConfig");
    check_pull_roundtrip(&doc);
}

// ---------------------------------------------------------------------------------------
// ws/1-pushed-plain
// ---------------------------------------------------------------------------------------

const SRC: &str = "p1008";

fn range(a: i64, b: i64) -> Vec<f64> {
    (a..=b).map(|x| x as f64).collect()
}

/// Parses the `puller final src.data: {...}` line of an orchestrate.log whose dict holds
/// plain lists.
fn puller_final(scenario: &str) -> Option<Json> {
    let log = std::fs::read_to_string(fixtures().join("ws").join(scenario).join("orchestrate.log"))
        .ok()?;
    let line = log
        .lines()
        .find_map(|l| l.strip_prefix("puller final src.data: "))?;
    serde_json::from_str(&line.replace('\'', "\"")).ok()
}

#[test]
fn plain_push_then_every_client_patch() {
    let scenario = "1-pushed-plain";
    let mut doc = pushed_doc(scenario);
    assert_eq!(doc.title(), "pushed doc");
    assert_eq!(doc.roots(), ["p1062"]);
    assert_eq!(
        doc.model(SRC).map(|m| m.name.as_str()),
        Some("ColumnDataSource")
    );
    assert_eq!(column_names(&doc, SRC), ["x", "y"]);
    assert_eq!(column(&doc, SRC, "x").kind(), ColumnKind::Int);
    assert_eq!(as_f64(column(&doc, SRC, "x")), range(0, 4));
    assert_eq!(as_f64(column(&doc, SRC, "y")), [0., 1., 4., 9., 16.]);
    check_pull_roundtrip(&doc);

    let pusher = client_patches(scenario, "a_push_session");
    assert_eq!(pusher.len(), 7, "the pusher's seven changes");
    let xy = |doc: &Document| (as_f64(column(doc, SRC, "x")), as_f64(column(doc, SRC, "y")));

    // stream x=[5,6]: 7 items.
    let a = apply(&mut doc, &pusher[0]);
    assert_eq!(a.relay, pusher[0].1, "a stream is relayed as received");
    assert!(a.new_models.is_empty());
    assert_eq!(xy(&doc), (range(0, 6), vec![0., 1., 4., 9., 16., 25., 36.]));
    // stream x=[7,8,9] with rollover 8: 10 items, the last 8 kept.
    assert!(matches!(
        &pusher[1].1[0],
        DocumentEvent::ColumnsStreamed {
            rollover: Some(8),
            ..
        }
    ));
    apply(&mut doc, &pusher[1]);
    assert_eq!(
        xy(&doc),
        (range(2, 9), vec![4., 9., 16., 25., 36., 49., 64., 81.])
    );
    // stream x=[10]: 9 items.
    apply(&mut doc, &pusher[2]);
    assert_eq!(xy(&doc).0, range(2, 10));
    assert_eq!(column(&doc, SRC, "x").kind(), ColumnKind::Int);
    // patch y[0] = 42.
    let a = apply(&mut doc, &pusher[3]);
    assert_eq!(a.relay, pusher[3].1);
    assert_eq!(xy(&doc).1, [42., 9., 16., 25., 36., 49., 64., 81., 100.]);
    // slice patch y[1:3] = [7, 7].
    apply(&mut doc, &pusher[4]);
    assert_eq!(xy(&doc).1, [42., 7., 7., 25., 36., 49., 64., 81., 100.]);
    assert_eq!(column(&doc, SRC, "y").kind(), ColumnKind::Int);
    // doc.title.
    let a = apply(&mut doc, &pusher[5]);
    assert_eq!(doc.title(), "title changed by pusher");
    assert_eq!(
        a.relay,
        [DocumentEvent::TitleChanged {
            title: "title changed by pusher".into()
        }]
    );
    // the same title again is a no-op and is not relayed.
    let a = apply(&mut doc, &pusher[5]);
    assert!(a.relay.is_empty());
    // slider.value = 3.
    let a = apply(&mut doc, &pusher[6]);
    assert_eq!(a.relay, pusher[6].1);
    assert_same(
        &attr(&doc, "p1058", "value"),
        &Value::Int(3),
        "slider value",
    );

    // The puller sets the button label.
    let puller = client_patches(scenario, "b_pull_session");
    assert_eq!(puller.len(), 1);
    apply(&mut doc, &puller[0]);
    assert_same(
        &attr(&doc, "p1059", "label"),
        &Value::Str("Click (label set by puller)".into()),
        "button label",
    );

    // The browser: ranges, sizes, document_ready, pans, slider, clicks, a stream of
    // typed arrays carried in buffers "0" and "1", and a patch.
    let browser = client_patches(scenario, "c_browser");
    let stream = browser
        .iter()
        .find(|(_, ev)| matches!(ev.first(), Some(DocumentEvent::ColumnsStreamed { .. })))
        .expect("the browser's stream");
    let DocumentEvent::ColumnsStreamed { data, rollover, .. } = &stream.1[0] else {
        unreachable!()
    };
    assert_eq!(*rollover, None);
    for (name, value) in data {
        let Value::Array(a) = value else {
            panic!("{name} is not a typed array")
        };
        assert_eq!(
            (a.form, a.dtype, a.shape.as_slice()),
            (ArrayForm::Typed, DType::F64, &[2][..])
        );
    }
    let kinds: HashSet<&str> = browser
        .iter()
        .flat_map(|(_, ev)| ev.iter().map(DocumentEvent::kind))
        .collect();
    assert_eq!(
        kinds,
        HashSet::from([
            "ModelChanged",
            "MessageSent",
            "ColumnsStreamed",
            "ColumnsPatched"
        ])
    );
    let last = apply_browser(&mut doc, &browser, &HashSet::new());
    check_last_values(&doc, &last);
    assert_same(
        &attr(&doc, "p1058", "value"),
        &Value::Int(6),
        "slider value",
    );
    assert_same(
        &attr(&doc, "p1058", "value_throttled"),
        &Value::Int(6),
        "throttled",
    );

    // Final columns: as the puller printed them.
    let x = column(&doc, SRC, "x");
    let y = column(&doc, SRC, "y");
    assert_eq!(x.len(), 11);
    assert_eq!(y.len(), 11);
    assert_eq!(
        x.kind(),
        ColumnKind::Float,
        "floats streamed into an int column"
    );
    let mut ex = range(2, 10);
    ex.extend([100., 200.]);
    let ey = vec![-1., 7., 7., 25., 36., 49., 64., 81., 100., 101., 201.];
    assert_eq!(xy(&doc), (ex.clone(), ey.clone()));
    if let Some(final_data) = puller_final(scenario) {
        let nums = |k: &str| -> Vec<f64> {
            final_data[k]
                .as_array()
                .expect("list")
                .iter()
                .map(|v| v.as_f64().expect("number"))
                .collect()
        };
        assert_eq!(nums("x"), ex);
        assert_eq!(nums("y"), ey);
    }
    assert_eq!(doc.title(), "title changed by pusher");
    check_pull_roundtrip(&doc);
}

// ---------------------------------------------------------------------------------------
// ws/2-pushed-numpy
// ---------------------------------------------------------------------------------------

#[test]
fn numpy_push_binary_columns_are_bit_exact() {
    let scenario = "2-pushed-numpy";
    let mut doc = pushed_doc(scenario);
    assert_eq!(doc.title(), "pushed numpy doc");
    assert_eq!(doc.roots(), ["p1062", "p1066"]);
    assert_eq!(column_names(&doc, SRC), ["x", "y", "k"]);
    let kind = |doc: &Document, c: &str| column(doc, SRC, c).kind();
    assert_eq!(
        kind(&doc, "x"),
        ColumnKind::Binary {
            form: ArrayForm::Nd,
            dtype: DType::F64
        }
    );
    assert_eq!(
        kind(&doc, "k"),
        ColumnKind::Binary {
            form: ArrayForm::Nd,
            dtype: DType::I32
        }
    );
    assert_eq!(
        &binary(column(&doc, SRC, "k"))[..],
        i32_le(&[0, 1, 2, 3, 4])
    );
    let image = |doc: &Document| match column(doc, "p1063", "image").get(0) {
        Some(Value::Array(a)) => *a,
        other => panic!("image item 0 is not an array: {other:?}"),
    };
    let img = image(&doc);
    assert_eq!((img.dtype, img.shape.as_slice()), (DType::F64, &[3, 4][..]));
    let original: Vec<f64> = (0..12).map(f64::from).collect();
    assert_eq!(img.data, ArrayData::Binary(Bytes::from(f64_le(&original))));
    check_pull_roundtrip(&doc);

    let pusher = client_patches(scenario, "a_push_session");
    let kinds: Vec<&str> = pusher.iter().map(|(_, e)| e[0].kind()).collect();
    assert_eq!(
        kinds,
        [
            "ColumnsStreamed",
            "ColumnsStreamed",
            "ColumnsStreamed",
            "ColumnsPatched",
            "ColumnsPatched",
            "ColumnsPatched",
            "TitleChanged"
        ]
    );
    let nan_bits = 0x7ff8_0000_0000_0000u64;
    for (i, p) in pusher.iter().enumerate() {
        apply(&mut doc, p);
        match i {
            0 => assert_eq!(
                &binary(column(&doc, SRC, "k"))[..],
                i32_le(&[0, 1, 2, 3, 4, 5, 6])
            ),
            1 => {
                assert_eq!(&binary(column(&doc, SRC, "x"))[..], f64_le(&range(2, 9)));
                assert_eq!(
                    &binary(column(&doc, SRC, "k"))[..],
                    i32_le(&[2, 3, 4, 5, 6, 7, 8, 9])
                );
            }
            2 => {
                let y = binary(column(&doc, SRC, "y"));
                assert_eq!(y.len(), 9 * 8);
                assert_eq!(
                    u64::from_le_bytes(y[64..72].try_into().expect("8 bytes")),
                    nan_bits,
                    "the streamed NaN keeps its bits"
                );
            }
            5 => {
                // image[0][0:2, 1] = [100, 200] on the 3x4 image: elements (0,1) and (1,1).
                let mut expected = original.clone();
                expected[1] = 100.0;
                expected[5] = 200.0;
                let img = image(&doc);
                assert_eq!(
                    (img.form, img.dtype, img.shape.as_slice()),
                    (ArrayForm::Nd, DType::F64, &[3, 4][..])
                );
                assert_eq!(img.data, ArrayData::Binary(Bytes::from(f64_le(&expected))));
            }
            _ => {}
        }
    }
    let mut y_now: Vec<f64> = vec![42., 7., 7.5, 25., 36., 49., 64., 81., f64::NAN];
    let y = binary(column(&doc, SRC, "y"));
    assert_eq!(&y[..64], &f64_le(&y_now)[..64]);
    assert_eq!(doc.title(), "numpy title changed");

    for p in client_patches(scenario, "b_pull_session") {
        apply(&mut doc, &p);
    }
    let browser = client_patches(scenario, "c_browser");
    let last = apply_browser(&mut doc, &browser, &HashSet::new());
    check_last_values(&doc, &last);

    // Final state, bit for bit. The browser streamed k as float64 [102, 202]: plotwire keeps
    // the column int32 (Bokeh's numpy concatenation turned it into float64).
    assert_eq!(
        kind(&doc, "x"),
        ColumnKind::Binary {
            form: ArrayForm::Nd,
            dtype: DType::F64
        }
    );
    assert_eq!(
        kind(&doc, "k"),
        ColumnKind::Binary {
            form: ArrayForm::Nd,
            dtype: DType::I32
        }
    );
    let mut ex = range(2, 10);
    ex.extend([100., 200.]);
    assert_eq!(&binary(column(&doc, SRC, "x"))[..], f64_le(&ex));
    y_now[0] = -1.0;
    y_now.extend([101., 201.]);
    let y = binary(column(&doc, SRC, "y"));
    let mut expected_y = f64_le(&y_now);
    expected_y[64..72].copy_from_slice(&nan_bits.to_le_bytes());
    assert_eq!(
        &y[..],
        expected_y,
        "y = [-1, 7, 7.5, 25, 36, 49, 64, 81, nan, 101, 201]"
    );
    assert_eq!(
        &binary(column(&doc, SRC, "k"))[..],
        i32_le(&[2, 3, 4, 5, 6, 7, 8, 9, 10, 102, 202])
    );
    for c in ["x", "y", "k"] {
        assert_eq!(column(&doc, SRC, c).len(), 11, "column {c}");
    }
    check_pull_roundtrip(&doc);
}

// ---------------------------------------------------------------------------------------
// ws/4-pushed-extra-events
// ---------------------------------------------------------------------------------------

#[test]
fn extra_events_merge_new_models_roots_and_typed_values() {
    let scenario = "4-pushed-extra-events";
    let mut doc = pushed_doc(scenario);
    assert_eq!(doc.roots(), ["p1062"]);
    let pusher = client_patches(scenario, "a_push_session");
    let kinds: Vec<&str> = pusher.iter().map(|(_, e)| e[0].kind()).collect();
    assert_eq!(
        kinds,
        [
            "ColumnDataChanged",
            "ColumnDataChanged",
            "RootAdded",
            "ModelChanged",
            "ModelChanged",
            "RootRemoved"
        ]
    );
    let ints = |v: &[i64]| Value::List(v.iter().map(|x| Value::Int(*x)).collect());
    let data_map = |pairs: &[(&str, Value)]| {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (Value::Str((*k).to_owned()), v.clone()))
                .collect(),
        )
    };

    // src.data = {...}: cols null replaces the data; relayed as ModelChanged `data`.
    let a = apply(&mut doc, &pusher[0]);
    let full = data_map(&[("x", ints(&[0, 1, 2])), ("y", ints(&[3, 1, 2]))]);
    assert_eq!(a.relay.len(), 1);
    match &a.relay[0] {
        DocumentEvent::ModelChanged { model, attr, new } => {
            assert_eq!((model.as_str(), attr.as_str()), (SRC, "data"));
            assert_same(new, &full, "relayed data");
        }
        other => panic!("ColumnDataChanged relayed as {other:?}"),
    }
    assert_same(&attr(&doc, SRC, "data"), &full, "data");

    // src.data["y"] = [...]: cols ["y"] MERGES, x survives (Bokeh drops it).
    let a = apply(&mut doc, &pusher[1]);
    let merged = data_map(&[("x", ints(&[0, 1, 2])), ("y", ints(&[2, 2, 2]))]);
    match &a.relay[..] {
        [DocumentEvent::ModelChanged { model, attr, new }] => {
            assert_eq!((model.as_str(), attr.as_str()), (SRC, "data"));
            assert_same(new, &merged, "relayed merged data");
        }
        other => panic!("ColumnDataChanged relayed as {other:?}"),
    }
    assert_eq!(column_names(&doc, SRC), ["x", "y"]);
    assert_same(&attr(&doc, SRC, "data"), &merged, "merged data");

    // doc.add_root(Div): the Div is new.
    let a = apply(&mut doc, &pusher[2]);
    assert_eq!(doc.roots(), ["p1062", "p1067"]);
    assert!(
        a.new_models.contains_key("p1067"),
        "{:?}",
        a.new_models.keys()
    );
    assert!(matches!(&a.relay[..], [DocumentEvent::RootAdded { .. }]));
    assert_eq!(doc.model("p1067").map(|m| m.name.as_str()), Some("Div"));
    assert_same(
        &attr(&doc, "p1067", "text"),
        &Value::Str("<b>root added by pusher</b>".into()),
        "div text",
    );

    // plot.title = Title(...): the new Title is registered, the old one is gone.
    assert!(doc.model("p1014").is_some());
    let a = apply(&mut doc, &pusher[3]);
    assert!(
        a.new_models.contains_key("p1069"),
        "{:?}",
        a.new_models.keys()
    );
    assert_eq!(doc.model("p1069").map(|m| m.name.as_str()), Some("Title"));
    assert_same(
        &attr(&doc, "p1011", "title"),
        &Value::Ref("p1069".into()),
        "plot title",
    );
    assert!(
        doc.model("p1014").is_none(),
        "the replaced Title left the document"
    );
    match &a.relay[..] {
        [DocumentEvent::ModelChanged {
            new: Value::Ref(id),
            ..
        }] => assert_eq!(id, "p1069"),
        other => panic!("relay {other:?}"),
    }

    // div.tags = [nan, inf, b"\x00\x01\x02", {1: "int key"}, date, (1, 2)].
    apply(&mut doc, &pusher[4]);
    let tags = Value::List(vec![
        Value::Float(f64::NAN),
        Value::Float(f64::INFINITY),
        Value::Bytes(Bytes::from_static(&[0, 1, 2])),
        Value::Map(vec![(Value::Int(1), Value::Str("int key".into()))]),
        Value::Str("2020-01-02".into()),
        ints(&[1, 2]),
    ]);
    assert_same(&attr(&doc, "p1067", "tags"), &tags, "div tags");
    check_pull_roundtrip(&doc);

    // doc.remove_root(div): the Div is gone; later events naming it are dropped.
    let a = apply(&mut doc, &pusher[5]);
    assert!(matches!(&a.relay[..], [DocumentEvent::RootRemoved { model }] if model == "p1067"));
    assert_eq!(doc.roots(), ["p1062"]);
    assert!(doc.model("p1067").is_none(), "the Div left the document");
    let a = doc
        .apply(vec![DocumentEvent::ModelChanged {
            model: "p1067".into(),
            attr: "text".into(),
            new: Value::Str("late".into()),
        }])
        .expect("an event for a removed model is dropped");
    assert!(a.relay.is_empty());
    assert!(doc.model("p1067").is_none());

    for p in client_patches(scenario, "b_pull_session") {
        apply(&mut doc, &p);
    }

    // The browser streams only y, because under Bokeh's bug x was gone. Here x survived,
    // so that stream is refused (Bokeh's own rule: stream to all columns) and changes nothing.
    let browser = client_patches(scenario, "c_browser");
    let stream = browser
        .iter()
        .find(|(_, e)| matches!(e.first(), Some(DocumentEvent::ColumnsStreamed { .. })))
        .expect("the browser's stream")
        .clone();
    let skip = HashSet::from([stream.0.as_str()]);
    let mut probe = doc.clone();
    let before = snapshot(&probe);
    match probe.apply(stream.1.clone()) {
        Err(ApplyError::StreamColumns {
            model,
            missing,
            unknown,
        }) => {
            assert_eq!(model, SRC);
            assert_eq!(missing, ["x"]);
            assert!(unknown.is_empty());
        }
        other => panic!("a y-only stream must be refused, got {other:?}"),
    }
    assert_eq!(snapshot(&probe), before);
    let last = apply_browser(&mut doc, &browser, &skip);
    check_last_values(&doc, &last);
    assert_eq!(as_f64(column(&doc, SRC, "x")), [0., 1., 2.]);
    assert_eq!(as_f64(column(&doc, SRC, "y")), [-1., 2., 2.]);
    check_pull_roundtrip(&doc);
}

// ---------------------------------------------------------------------------------------
// Errors leave the document unchanged
// ---------------------------------------------------------------------------------------

fn stream(data: Vec<(&str, Value)>, rollover: Option<usize>) -> DocumentEvent {
    DocumentEvent::ColumnsStreamed {
        model: SRC.into(),
        attr: "data".into(),
        data: data.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        rollover,
    }
}

fn list_f(v: &[f64]) -> Value {
    Value::List(v.iter().map(|x| Value::Float(*x)).collect())
}

fn list_s(v: &[&str]) -> Value {
    Value::List(v.iter().map(|x| Value::Str((*x).to_owned())).collect())
}

fn assert_refused(
    doc: &mut Document,
    events: Vec<DocumentEvent>,
    check: impl Fn(&ApplyError) -> bool,
) {
    let before = snapshot(doc);
    let title = doc.title().to_owned();
    match doc.apply(events) {
        Ok(a) => panic!("expected an error, applied {:?}", a.relay),
        Err(e) => assert!(check(&e), "unexpected error {e:?}"),
    }
    assert_eq!(snapshot(doc), before, "the document is unchanged");
    assert_eq!(doc.title(), title);
}

#[test]
fn errors_apply_nothing() {
    let mut doc = pushed_doc("1-pushed-plain");
    let title = |t: &str| DocumentEvent::TitleChanged { title: t.into() };

    // Unknown model.
    assert_refused(
        &mut doc,
        vec![DocumentEvent::ModelChanged {
            model: "no-such-model".into(),
            attr: "value".into(),
            new: Value::Int(1),
        }],
        |e| matches!(e, ApplyError::UnknownModel(id) if id == "no-such-model"),
    );
    // Unknown reference inside a value.
    assert_refused(
        &mut doc,
        vec![DocumentEvent::ModelChanged {
            model: "p1058".into(),
            attr: "tags".into(),
            new: Value::List(vec![Value::Ref("no-such-ref".into())]),
        }],
        |e| matches!(e, ApplyError::UnknownReference(id) if id == "no-such-ref"),
    );
    // A new model whose own attributes refer to an unknown model.
    assert_refused(
        &mut doc,
        vec![DocumentEvent::RootAdded {
            model: Value::Model(Box::new(ModelRep {
                name: "Div".into(),
                id: "fresh-div".into(),
                attributes: vec![("tags".into(), Value::List(vec![Value::Ref("ghost".into())]))],
            })),
        }],
        |e| matches!(e, ApplyError::UnknownReference(id) if id == "ghost"),
    );
    assert!(doc.model("fresh-div").is_none());
    // A root that is not a model.
    assert_refused(
        &mut doc,
        vec![DocumentEvent::RootAdded {
            model: Value::Int(3),
        }],
        |e| matches!(e, ApplyError::NotAModel),
    );
    // A 2-event batch whose second event is bad: the first is not applied.
    assert_refused(
        &mut doc,
        vec![
            title("applied first"),
            DocumentEvent::ModelChanged {
                model: "no-such-model".into(),
                attr: "value".into(),
                new: Value::Int(1),
            },
        ],
        |e| matches!(e, ApplyError::UnknownModel(_)),
    );
    assert_eq!(doc.title(), "pushed doc");
    assert_refused(
        &mut doc,
        vec![
            stream(vec![("x", list_f(&[5.0])), ("y", list_f(&[25.0]))], None),
            stream(
                vec![("x", list_f(&[6.0, 7.0])), ("y", list_f(&[36.0]))],
                None,
            ),
        ],
        |e| matches!(e, ApplyError::StreamLengths { .. }),
    );
    assert_eq!(column(&doc, SRC, "x").len(), 5);
    // Unequal column lengths.
    assert_refused(
        &mut doc,
        vec![stream(
            vec![("x", list_f(&[5.0, 6.0])), ("y", list_f(&[25.0]))],
            None,
        )],
        |e| matches!(e, ApplyError::StreamLengths { model, .. } if model == SRC),
    );
    // A missing column.
    assert_refused(
        &mut doc,
        vec![stream(vec![("x", list_f(&[5.0]))], None)],
        |e| matches!(e, ApplyError::StreamColumns { missing, .. } if missing == &["y".to_owned()]),
    );
    // An unknown column.
    assert_refused(
        &mut doc,
        vec![stream(
            vec![
                ("x", list_f(&[5.0])),
                ("y", list_f(&[5.0])),
                ("z", list_f(&[5.0])),
            ],
            None,
        )],
        |e| matches!(e, ApplyError::StreamColumns { unknown, .. } if unknown == &["z".to_owned()]),
    );
    // Strings into a float column (y becomes float by a first, valid stream).
    doc.apply(vec![stream(
        vec![("x", list_f(&[5.0])), ("y", list_f(&[2.5]))],
        None,
    )])
    .expect("a valid stream");
    assert_eq!(column(&doc, SRC, "y").kind(), ColumnKind::Float);
    assert_refused(
        &mut doc,
        vec![stream(
            vec![("x", list_f(&[6.0])), ("y", list_s(&["six"]))],
            Some(3),
        )],
        |e| matches!(e, ApplyError::Column { column, .. } if column == "y"),
    );
    assert_eq!(
        column(&doc, SRC, "x").len(),
        6,
        "the rollover was not applied either"
    );
    // Strings into a binary float64 column.
    let mut numpy = pushed_doc("2-pushed-numpy");
    assert_refused(
        &mut numpy,
        vec![stream(
            vec![
                ("x", list_s(&["a"])),
                ("y", list_f(&[1.0])),
                ("k", Value::List(vec![Value::Int(1)])),
            ],
            None,
        )],
        |e| matches!(e, ApplyError::Column { column, .. } if column == "x"),
    );
    // A float that int32 cannot hold.
    assert_refused(
        &mut numpy,
        vec![stream(
            vec![
                ("x", list_f(&[1.0])),
                ("y", list_f(&[1.0])),
                ("k", list_f(&[1.5])),
            ],
            None,
        )],
        |e| matches!(e, ApplyError::Column { column, .. } if column == "k"),
    );
    // Patches: out of range, unknown column, not a data attribute, not a source.
    let patch = |model: &str, attr: &str, col: &str, index: Value, value: Value| {
        DocumentEvent::ColumnsPatched {
            model: model.into(),
            attr: attr.into(),
            patches: vec![(col.into(), vec![(index, value)])],
        }
    };
    let len = column(&doc, SRC, "y").len() as i64;
    assert_refused(
        &mut doc,
        vec![
            patch(SRC, "data", "y", Value::Int(0), Value::Float(1.0)),
            patch(SRC, "data", "y", Value::Int(len), Value::Float(1.0)),
        ],
        |e| matches!(e, ApplyError::Column { .. }),
    );
    assert_refused(
        &mut doc,
        vec![patch(SRC, "data", "nope", Value::Int(0), Value::Float(1.0))],
        |e| matches!(e, ApplyError::UnknownColumn { column, .. } if column == "nope"),
    );
    assert_refused(
        &mut doc,
        vec![patch(SRC, "tags", "y", Value::Int(0), Value::Float(1.0))],
        |e| matches!(e, ApplyError::NotDataAttr(_)),
    );
    assert_refused(
        &mut doc,
        vec![patch(
            "p1058",
            "data",
            "y",
            Value::Int(0),
            Value::Float(1.0),
        )],
        |e| matches!(e, ApplyError::NotAColumnSource(id) | ApplyError::UnknownColumn { model: id, .. } if id == "p1058"),
    );
    let mut odd = doc.clone();
    odd.apply(vec![DocumentEvent::ModelChanged {
        model: "p1058".into(),
        attr: "data".into(),
        new: Value::Str("not columns".into()),
    }])
    .expect("any attribute may be set");
    assert_refused(
        &mut odd,
        vec![patch(
            "p1058",
            "data",
            "y",
            Value::Int(0),
            Value::Float(1.0),
        )],
        |e| matches!(e, ApplyError::NotAColumnSource(id) if id == "p1058"),
    );
    // A multi-index patch with a value of the wrong length on the numpy image.
    let multi = Value::List(vec![
        Value::Int(0),
        Value::Slice(Slice {
            start: Some(0),
            stop: Some(2),
            step: None,
        }),
        Value::Int(1),
    ]);
    assert_refused(
        &mut numpy,
        vec![patch(
            "p1063",
            "data",
            "image",
            multi,
            list_f(&[1.0, 2.0, 3.0]),
        )],
        |e| matches!(e, ApplyError::Column { column, .. } if column == "image"),
    );
    // RootRemoved of a model that never existed.
    assert_refused(
        &mut doc,
        vec![
            title("t"),
            DocumentEvent::RootRemoved {
                model: "nope".into(),
            },
        ],
        |e| matches!(e, ApplyError::UnknownModel(_)),
    );
}

// ---------------------------------------------------------------------------------------
// Property test: streams and patches against a plain Vec model
// ---------------------------------------------------------------------------------------

/// One operation of the property test.
#[derive(Debug, Clone)]
enum Op {
    /// Stream `items` (a, b, c, s per row), then keep the last `rollover`.
    Stream {
        items: Vec<(f64, i64, f64, String)>,
        rollover: Option<usize>,
        binary_c: bool,
    },
    /// Integer-index patches; the indices are taken modulo the length.
    Points(Vec<(usize, f64, i64, f64)>),
    /// A slice patch on every column: start and span modulo the length, step 1..4.
    Slice {
        start: usize,
        span: usize,
        step: usize,
        base: f64,
        binary_c: bool,
    },
    /// A patch at index == len (out of range): refused, nothing changes.
    OutOfRange,
}

fn op() -> impl Strategy<Value = Op> {
    let num = -1.0e6..1.0e6f64;
    prop_oneof![
        3 => (
            prop::collection::vec((num.clone(), -1000i64..1000, num.clone(), "[a-z]{0,3}"), 0..12),
            prop::option::of(0usize..25),
            any::<bool>(),
        )
            .prop_map(|(items, rollover, binary_c)| Op::Stream { items, rollover, binary_c }),
        2 => prop::collection::vec((any::<usize>(), num.clone(), -1000i64..1000, num.clone()), 1..4)
            .prop_map(Op::Points),
        2 => (any::<usize>(), 0usize..12, 1usize..4, num, any::<bool>()).prop_map(
            |(start, span, step, base, binary_c)| Op::Slice { start, span, step, base, binary_c }
        ),
        1 => Just(Op::OutOfRange),
    ]
}

/// The plain model: one Vec per column.
#[derive(Debug, Clone, Default, PartialEq)]
struct Plain {
    a: Vec<f64>,
    b: Vec<i64>,
    c: Vec<f64>,
    s: Vec<String>,
}

fn f64_array(v: &[f64]) -> Value {
    Value::Array(Box::new(ArrayValue {
        form: ArrayForm::Typed,
        dtype: DType::F64,
        shape: vec![v.len()],
        data: ArrayData::Binary(Bytes::from(f64_le(v))),
    }))
}

fn prop_doc(init: &Plain) -> Document {
    let data = Value::Map(vec![
        (Value::Str("a".into()), list_f(&init.a)),
        (
            Value::Str("b".into()),
            Value::List(init.b.iter().map(|x| Value::Int(*x)).collect()),
        ),
        (Value::Str("c".into()), f64_array(&init.c)),
        (
            Value::Str("s".into()),
            Value::List(init.s.iter().map(|x| Value::Str(x.clone())).collect()),
        ),
    ]);
    let cds = Value::Model(Box::new(ModelRep {
        name: "ColumnDataSource".into(),
        id: SRC.into(),
        attributes: vec![("data".into(), data)],
    }));
    Document::from_doc_json(DocJson {
        version: Some("3.9.2".into()),
        title: Some("prop".into()),
        config: None,
        roots: vec![cds],
        callbacks: None,
        defs: None,
    })
    .expect("a valid document")
}

fn check_against(doc: &Document, plain: &Plain) -> Result<(), TestCaseError> {
    let n = plain.a.len();
    for name in ["a", "b", "c", "s"] {
        prop_assert_eq!(column(doc, SRC, name).len(), n, "column {}", name);
    }
    prop_assert!(same(&column(doc, SRC, "a").to_value(), &list_f(&plain.a)));
    prop_assert!(same(
        &column(doc, SRC, "b").to_value(),
        &Value::List(plain.b.iter().map(|x| Value::Int(*x)).collect())
    ));
    prop_assert_eq!(
        column(doc, SRC, "c").kind(),
        ColumnKind::Binary {
            form: ArrayForm::Typed,
            dtype: DType::F64
        }
    );
    prop_assert_eq!(&binary(column(doc, SRC, "c"))[..], &f64_le(&plain.c)[..]);
    let s: Vec<String> = (0..n)
        .map(|i| match column(doc, SRC, "s").get(i) {
            Some(Value::Str(s)) => s,
            other => panic!("string item expected, got {other:?}"),
        })
        .collect();
    prop_assert_eq!(&s, &plain.s);
    Ok(())
}

fn keep_last<T>(v: &mut Vec<T>, n: usize) {
    if v.len() > n {
        v.drain(..v.len() - n);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn streams_and_patches_match_a_plain_model(ops in prop::collection::vec(op(), 1..30)) {
        let mut plain = Plain {
            a: vec![0.5, 1.5, 2.5],
            b: vec![1, 2, 3],
            c: vec![10.0, 20.0, 30.0],
            s: vec!["p".into(), "q".into(), "r".into()],
        };
        let mut doc = prop_doc(&plain);
        check_against(&doc, &plain)?;
        for op in ops {
            let len = plain.a.len();
            match op {
                Op::Stream { items, rollover, binary_c } => {
                    let a: Vec<f64> = items.iter().map(|r| r.0).collect();
                    let b: Vec<i64> = items.iter().map(|r| r.1).collect();
                    let c: Vec<f64> = items.iter().map(|r| r.2).collect();
                    let s: Vec<String> = items.iter().map(|r| r.3.clone()).collect();
                    let event = stream(
                        vec![
                            ("a", list_f(&a)),
                            ("b", Value::List(b.iter().map(|x| Value::Int(*x)).collect())),
                            ("c", if binary_c { f64_array(&c) } else { list_f(&c) }),
                            ("s", Value::List(s.iter().map(|x| Value::Str(x.clone())).collect())),
                        ],
                        rollover,
                    );
                    let applied = doc.apply(vec![event.clone()]).expect("a valid stream");
                    prop_assert_eq!(&applied.relay, &vec![event]);
                    plain.a.extend(a);
                    plain.b.extend(b);
                    plain.c.extend(c);
                    plain.s.extend(s);
                    if let Some(r) = rollover {
                        keep_last(&mut plain.a, r);
                        keep_last(&mut plain.b, r);
                        keep_last(&mut plain.c, r);
                        keep_last(&mut plain.s, r);
                    }
                }
                Op::Points(points) => {
                    if len == 0 {
                        continue;
                    }
                    let mut cols: Vec<(String, Vec<(Value, Value)>)> =
                        ["a", "b", "c", "s"].iter().map(|n| ((*n).to_owned(), Vec::new())).collect();
                    for (i, fa, ib, fc) in points {
                        let i = i % len;
                        let idx = Value::Int(i as i64);
                        cols[0].1.push((idx.clone(), Value::Float(fa)));
                        cols[1].1.push((idx.clone(), Value::Int(ib)));
                        cols[2].1.push((idx.clone(), Value::Float(fc)));
                        cols[3].1.push((idx, Value::Str(format!("{ib}"))));
                        plain.a[i] = fa;
                        plain.b[i] = ib;
                        plain.c[i] = fc;
                        plain.s[i] = format!("{ib}");
                    }
                    doc.apply(vec![DocumentEvent::ColumnsPatched {
                        model: SRC.into(),
                        attr: "data".into(),
                        patches: cols,
                    }])
                    .expect("valid point patches");
                }
                Op::Slice { start, span, step, base, binary_c } => {
                    let start = start % (len + 1);
                    let stop = start + span;
                    let positions: Vec<usize> = (start..stop.min(len)).step_by(step).collect();
                    let a: Vec<f64> = positions.iter().map(|p| base + *p as f64).collect();
                    let b: Vec<i64> = positions.iter().map(|p| -(*p as i64)).collect();
                    let c: Vec<f64> = positions.iter().map(|p| base * 2.0 - *p as f64).collect();
                    let s: Vec<String> = positions.iter().map(|p| format!("s{p}")).collect();
                    let slice = Value::Slice(Slice {
                        start: Some(start as i64),
                        stop: Some(stop as i64),
                        step: Some(step as i64),
                    });
                    let patches = vec![
                        ("a".to_owned(), vec![(slice.clone(), list_f(&a))]),
                        ("b".to_owned(), vec![(slice.clone(), Value::List(b.iter().map(|x| Value::Int(*x)).collect()))]),
                        ("c".to_owned(), vec![(slice.clone(), if binary_c { f64_array(&c) } else { list_f(&c) })]),
                        ("s".to_owned(), vec![(slice, list_s(&s.iter().map(String::as_str).collect::<Vec<_>>()))]),
                    ];
                    doc.apply(vec![DocumentEvent::ColumnsPatched {
                        model: SRC.into(),
                        attr: "data".into(),
                        patches,
                    }])
                    .expect("a valid slice patch");
                    for (j, p) in positions.iter().enumerate() {
                        plain.a[*p] = a[j];
                        plain.b[*p] = b[j];
                        plain.c[*p] = c[j];
                        plain.s[*p] = s[j].clone();
                    }
                }
                Op::OutOfRange => {
                    let before = snapshot(&doc);
                    let result = doc.apply(vec![
                        DocumentEvent::ColumnsPatched {
                            model: SRC.into(),
                            attr: "data".into(),
                            patches: vec![("a".into(), vec![(Value::Int(0), Value::Float(-7.0))])],
                        },
                        DocumentEvent::ColumnsPatched {
                            model: SRC.into(),
                            attr: "data".into(),
                            patches: vec![("b".into(), vec![(Value::Int(len as i64), Value::Int(1))])],
                        },
                    ]);
                    prop_assert!(result.is_err());
                    prop_assert_eq!(snapshot(&doc), before);
                }
            }
            check_against(&doc, &plain)?;
        }
        check_pull_roundtrip(&doc);
    }
}
