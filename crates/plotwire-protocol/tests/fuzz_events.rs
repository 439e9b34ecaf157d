//! Fuzzes event decoding, [`decode_event`] and [`decode_patch`], with structure-aware
//! random events of every kind (ModelChanged, ColumnDataChanged, ColumnsStreamed with
//! rollover, ColumnsPatched with integer, slice and multi-dimensional indices, RootAdded,
//! RootRemoved, TitleChanged, MessageSent) carrying random typed values (ndarray and
//! typed_array with binary and list bodies, bytes, maps, sets, model reps, tagged values,
//! NaN and infinities, slices), and with their wire forms perturbed (inline base64 and
//! gzip bytes, big-endian arrays, bad shapes and dtypes, missing buffers).
//!
//! Properties: decoding never panics; an event encoded with [`encode_patch`] decodes
//! (through `decode_patch` and through `decode_event` one by one) to an equal event (equal
//! encoding; equal value when it holds no NaN), with one buffer per binary value; the
//! inline, gzipped, big-endian and buffer forms of the same bytes decode to the same
//! value; and whatever perturbed content decodes re-encodes stably.
//! Case count: `PLOTWIRE_FUZZ_CASES`.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::HashMap;
use std::io::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use common::{fuzz, json_value, DTYPES};
use plotwire_protocol::codec::{buffer_map, Buffers, Encoder, NoExpansion};
use plotwire_protocol::event::{decode_event, decode_patch, encode_patch, DocumentEvent};
use plotwire_protocol::value::{ArrayData, ArrayForm, ArrayValue, DType, ModelRep, Slice, Value};
use proptest::prelude::*;
use serde_json::{json, Value as Json};

// ---------------------------------------------------------------------------------------
// Canonical values and events: the ones that decode back to themselves
// ---------------------------------------------------------------------------------------

const BINARY_DTYPES: &[DType] = &[
    DType::Bool,
    DType::U8,
    DType::I8,
    DType::U16,
    DType::I16,
    DType::U32,
    DType::I32,
    DType::F32,
    DType::F64,
];

const ALL_DTYPES: &[DType] = &[
    DType::Bool,
    DType::U8,
    DType::I8,
    DType::U16,
    DType::I16,
    DType::U32,
    DType::I32,
    DType::F32,
    DType::F64,
    DType::Object,
];

/// Keys for dicts and attributes: never `type` (it would make a tagged value) nor `id`
/// (`{"id": "x"}` is a reference).
const DICT_KEYS: &[&str] = &[
    "x",
    "y",
    "name",
    "value",
    "data",
    "",
    "é",
    "entries",
    "attributes",
];

const IDS: &[&str] = &["p1001", "p1008", "p1062", "x", ""];

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        1 => prop::sample::select(vec![
            f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0, 1.0, f64::MAX, f64::MIN_POSITIVE,
            5e-324, 1e16, 0.1,
        ]),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        float().prop_map(Value::Float),
        ".{0,8}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(|b| Value::Bytes(Bytes::from(b))),
        slice().prop_map(Value::Slice),
        prop::sample::select(IDS).prop_map(|id| Value::Ref(id.to_owned())),
        array(),
    ]
}

fn slice() -> impl Strategy<Value = Slice> {
    let part = || prop::option::of(prop_oneof![3 => -3i64..10, 1 => any::<i64>()]);
    (part(), part(), part()).prop_map(|(start, stop, step)| Slice { start, stop, step })
}

/// A typed array or ndarray whose header matches its body.
fn array() -> impl Strategy<Value = Value> {
    let binary = (
        prop::sample::select(BINARY_DTYPES),
        prop::collection::vec(0usize..4, 1..4),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(dtype, dims, typed, seed)| {
            let n: usize = dims.iter().product();
            let bytes: Vec<u8> = (0..n * dtype.size())
                .map(|i| (seed.rotate_left(i as u32 % 64) >> 7) as u8)
                .collect();
            let (form, shape) = if typed {
                (ArrayForm::Typed, vec![n])
            } else {
                (ArrayForm::Nd, dims)
            };
            Value::Array(Box::new(ArrayValue {
                form,
                dtype,
                shape,
                data: ArrayData::Binary(Bytes::from(bytes)),
            }))
        });
    let list = (
        prop::sample::select(ALL_DTYPES),
        prop::collection::vec(
            prop_oneof![
                any::<i64>().prop_map(Value::Int),
                float().prop_map(Value::Float),
                ".{0,3}".prop_map(Value::Str),
                Just(Value::Null),
            ],
            0..5,
        ),
        prop::option::of(prop::collection::vec(0usize..5, 0..3)),
    )
        .prop_map(|(dtype, items, nd_shape)| {
            // A list body is flat (the shape's product) or nested by its first dimension.
            let (form, shape) = match nd_shape {
                None => (ArrayForm::Typed, vec![items.len()]),
                Some(mut rest) => {
                    rest.insert(0, items.len());
                    (ArrayForm::Nd, rest)
                }
            };
            Value::Array(Box::new(ArrayValue {
                form,
                dtype,
                shape,
                data: ArrayData::List(items),
            }))
        });
    prop_oneof![2 => binary, 1 => list]
}

/// Unique keys, in the generated order.
fn unique<T>(pairs: Vec<(&'static str, T)>) -> Vec<(String, T)> {
    let mut seen = std::collections::HashSet::new();
    pairs
        .into_iter()
        .filter(|(k, _)| seen.insert(*k))
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// A canonical value: one that encodes and decodes back to itself. Depth at most 4.
fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 5, |inner| {
        let fields =
            || prop::collection::vec((prop::sample::select(DICT_KEYS), inner.clone()), 0..4);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::List),
            fields().prop_map(|f| Value::Dict(unique(f))),
            prop::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Value::Map),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Set),
            (
                prop::sample::select(vec!["ColumnDataSource", "Div", "Title", "Range1d", ""]),
                prop::sample::select(IDS),
                fields(),
            )
                .prop_map(|(name, id, f)| Value::Model(Box::new(ModelRep {
                    name: name.to_owned(),
                    id: id.to_owned(),
                    attributes: unique(f),
                }))),
            (
                prop::sample::select(vec![
                    "value", "field", "expr", "event", "date", "symbol", "x"
                ]),
                fields(),
            )
                .prop_map(|(tag, f)| Value::Tagged {
                    tag: tag.to_owned(),
                    fields: unique(f),
                }),
        ]
    })
}

/// A patch index: an integer, a slice, or a multi-dimensional `[i, slice, ...]`.
fn patch_index() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        (-2i64..12).prop_map(Value::Int),
        slice().prop_map(Value::Slice),
    ];
    prop_oneof![
        3 => scalar.clone(),
        1 => prop::collection::vec(scalar, 1..4).prop_map(Value::List),
        1 => value(),
    ]
}

fn columns() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["x", "y", "k", "img", ""]).prop_map(str::to_owned),
            prop_oneof![
                3 => array(),
                2 => prop::collection::vec(leaf(), 0..5).prop_map(Value::List),
                1 => value(),
            ],
        ),
        0..4,
    )
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["data", "start", "title", "tags", "value"]).prop_map(str::to_owned),
        1 => ".{0,6}",
    ]
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(IDS).prop_map(str::to_owned), 1 => ".{0,6}"]
}

fn event() -> impl Strategy<Value = DocumentEvent> {
    prop_oneof![
        (id(), name(), value()).prop_map(|(model, attr, new)| DocumentEvent::ModelChanged {
            model,
            attr,
            new
        }),
        (
            id(),
            name(),
            columns(),
            prop::option::of(prop::collection::vec(name(), 0..3))
        )
            .prop_map(
                |(model, attr, data, cols)| DocumentEvent::ColumnDataChanged {
                    model,
                    attr,
                    data,
                    cols
                }
            ),
        (
            id(),
            name(),
            columns(),
            prop::option::of(prop_oneof![3 => 0usize..10, 1 => Just(i64::MAX as usize)])
        )
            .prop_map(
                |(model, attr, data, rollover)| DocumentEvent::ColumnsStreamed {
                    model,
                    attr,
                    data,
                    rollover
                }
            ),
        (
            id(),
            name(),
            prop::collection::vec(
                (
                    name(),
                    prop::collection::vec((patch_index(), value()), 0..4)
                ),
                0..3
            )
        )
            .prop_map(|(model, attr, patches)| DocumentEvent::ColumnsPatched {
                model,
                attr,
                patches
            }),
        value().prop_map(|model| DocumentEvent::RootAdded { model }),
        id().prop_map(|model| DocumentEvent::RootRemoved { model }),
        ".{0,10}".prop_map(|title| DocumentEvent::TitleChanged { title }),
        (
            prop_oneof![Just("bokeh_event".to_owned()), ".{0,6}"],
            value()
        )
            .prop_map(|(msg_type, msg_data)| DocumentEvent::MessageSent { msg_type, msg_data }),
    ]
}

// --- walking values -----------------------------------------------------------------------

fn children_mut(v: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    f(v);
    match v {
        Value::List(items) | Value::Set(items) => items.iter_mut().for_each(|c| children_mut(c, f)),
        Value::Dict(fields) | Value::Tagged { fields, .. } => {
            fields.iter_mut().for_each(|(_, c)| children_mut(c, f))
        }
        Value::Map(entries) => entries.iter_mut().for_each(|(k, c)| {
            children_mut(k, f);
            children_mut(c, f);
        }),
        Value::Model(rep) => rep
            .attributes
            .iter_mut()
            .for_each(|(_, c)| children_mut(c, f)),
        Value::Array(a) => {
            if let ArrayData::List(items) = &mut a.data {
                items.iter_mut().for_each(|c| children_mut(c, f));
            }
        }
        _ => {}
    }
}

/// Every value of an event, in encoding order.
fn event_values_mut(e: &mut DocumentEvent, f: &mut dyn FnMut(&mut Value)) {
    match e {
        DocumentEvent::ModelChanged { new, .. } => children_mut(new, f),
        DocumentEvent::ColumnDataChanged { data, .. }
        | DocumentEvent::ColumnsStreamed { data, .. } => {
            data.iter_mut().for_each(|(_, v)| children_mut(v, f))
        }
        DocumentEvent::ColumnsPatched { patches, .. } => {
            patches.iter_mut().for_each(|(_, pairs)| {
                pairs.iter_mut().for_each(|(i, v)| {
                    children_mut(i, f);
                    children_mut(v, f);
                })
            })
        }
        DocumentEvent::RootAdded { model } => children_mut(model, f),
        DocumentEvent::MessageSent { msg_data, .. } => children_mut(msg_data, f),
        DocumentEvent::RootRemoved { .. } | DocumentEvent::TitleChanged { .. } => {}
    }
}

/// Gives every model rep of the patch its own id (a second rep of an id in one message is
/// written as a reference, by design), and counts NaNs and binary values.
fn canonicalize(events: &mut [DocumentEvent]) -> (usize, usize) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let (mut nans, mut binaries) = (0, 0);
    for e in events.iter_mut() {
        event_values_mut(e, &mut |v| match v {
            Value::Model(rep) => {
                let n = seen.entry(rep.id.clone()).or_default();
                if *n > 0 {
                    rep.id = format!("{}#{n}", rep.id);
                }
                *n += 1;
            }
            Value::Float(f) if f.is_nan() => nans += 1,
            Value::Bytes(_) => binaries += 1,
            Value::Array(a) if matches!(a.data, ArrayData::Binary(_)) => binaries += 1,
            _ => {}
        });
    }
    (nans, binaries)
}

fn encode(events: &[DocumentEvent]) -> (Bytes, Vec<(String, Bytes)>) {
    let mut enc = Encoder::new(&NoExpansion);
    encode_patch(&mut enc, events);
    enc.finish()
}

#[test]
fn fuzz_encoded_events_round_trip() {
    fuzz(
        "events/roundtrip",
        file!(),
        384,
        prop::collection::vec(event(), 0..5),
        |mut events| {
            let (nans, binaries) = canonicalize(&mut events);
            let (content, buffers) = encode(&events);
            prop_assert_eq!(buffers.len(), binaries);
            let bufs = buffer_map(buffers.clone());
            let decoded = decode_patch(&content, &bufs)
                .map_err(|e| TestCaseError::fail(format!("encoded patch does not decode: {e}")))?;
            prop_assert_eq!(
                encode(&decoded),
                (content.clone(), buffers),
                "re-encoding differs"
            );
            if nans == 0 {
                prop_assert_eq!(&decoded, &events);
            }
            // decode_event, one event at a time, agrees with decode_patch.
            let json: Json = serde_json::from_slice(&content).unwrap();
            let items = json["events"].as_array().unwrap();
            prop_assert_eq!(items.len(), events.len());
            for (j, d) in items.iter().zip(&decoded) {
                let one = decode_event(j, &bufs).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(encode(&[one]).0, encode(std::slice::from_ref(d)).0);
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// Wire forms of the same bytes
// ---------------------------------------------------------------------------------------

fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(raw).unwrap();
    gz.finish().unwrap()
}

fn swapped(raw: &[u8], size: usize) -> Vec<u8> {
    let mut out = raw.to_vec();
    if size > 1 {
        out.chunks_exact_mut(size).for_each(<[u8]>::reverse);
    }
    out
}

#[test]
fn fuzz_bytes_wire_forms_agree() {
    fuzz(
        "events/wire-forms",
        file!(),
        256,
        (
            prop::sample::select(BINARY_DTYPES),
            prop::collection::vec(any::<u8>(), 0..24),
            any::<bool>(),
        ),
        |(dtype, mut raw, nd)| {
            raw.truncate(raw.len() / dtype.size() * dtype.size());
            let n = raw.len() / dtype.size();
            let tag = if nd { "ndarray" } else { "typed_array" };
            let mut buffers = Buffers::new();
            buffers.insert("le".into(), Bytes::from(raw.clone()));
            buffers.insert("be".into(), Bytes::from(swapped(&raw, dtype.size())));
            let body = |data: Json, order: &str| json!({"type": tag, "array": {"type": "bytes", "data": data}, "shape": [n], "dtype": dtype.name(), "order": order});
            let forms = [
                body(json!({"id": "le"}), "little"),
                body(json!({"id": "be"}), "big"),
                body(Json::from(STANDARD.encode(gzip(&raw))), "little"),
                body(
                    Json::from(STANDARD.encode(gzip(&swapped(&raw, dtype.size())))),
                    "big",
                ),
            ];
            let decode = |v: &Json| -> Result<Vec<DocumentEvent>, TestCaseError> {
                let content =
                    json!({"events": [{"kind": "MessageSent", "msg_type": "t", "msg_data": v}]});
                decode_patch(&serde_json::to_vec(&content).unwrap(), &buffers)
                    .map_err(|e| TestCaseError::fail(format!("{v}: {e}")))
            };
            let first = decode(&forms[0])?;
            for f in &forms[1..] {
                prop_assert_eq!(&decode(f)?, &first, "{}", f);
            }
            let DocumentEvent::MessageSent {
                msg_data: Value::Array(a),
                ..
            } = &first[0]
            else {
                return Err(TestCaseError::fail("not an array"));
            };
            prop_assert_eq!(&a.data, &ArrayData::Binary(Bytes::from(raw.clone())));
            prop_assert_eq!(a.len(), n);
            // Plain bytes: inline (gzipped or not, unless it looks like gzip) and by buffer.
            let plain = [
                json!({"type": "bytes", "data": {"id": "le"}}),
                json!({"type": "bytes", "data": STANDARD.encode(gzip(&raw))}),
            ];
            let is_raw = |got: &[DocumentEvent]| matches!(got, [DocumentEvent::MessageSent { msg_data: Value::Bytes(b), .. }] if b[..] == raw[..]);
            for p in &plain {
                prop_assert!(is_raw(&decode(p)?), "{}", p);
            }
            if !raw.starts_with(&[0x1f, 0x8b]) {
                let inline = json!({"type": "bytes", "data": STANDARD.encode(&raw)});
                prop_assert!(is_raw(&decode(&inline)?), "{}", inline);
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// Perturbed wire forms
// ---------------------------------------------------------------------------------------

/// Typed values as JSON, valid and broken: inline and referenced bytes, arrays with odd
/// shapes, dtypes and orders, number specials, slices.
fn typed_json() -> impl Strategy<Value = Json> {
    let buffer_id = prop::sample::select(vec!["0", "1", "missing"]);
    let raw = prop::collection::vec(any::<u8>(), 0..24);
    let inline = prop_oneof![
        raw.clone().prop_map(|r| Json::from(STANDARD.encode(r))),
        raw.clone()
            .prop_map(|r| Json::from(STANDARD.encode(gzip(&r)))),
        (raw.clone(), any::<prop::sample::Index>()).prop_map(|(r, cut)| {
            let g = gzip(&r);
            Json::from(STANDARD.encode(&g[..cut.index(g.len())]))
        }),
        ".{0,12}".prop_map(Json::from),
    ];
    let bytes = prop_oneof![
        buffer_id
            .clone()
            .prop_map(|id| json!({"type": "bytes", "data": {"id": id}})),
        inline.prop_map(|d| json!({"type": "bytes", "data": d})),
        json_value(1).prop_map(|d| json!({"type": "bytes", "data": d})),
    ];
    let dim = prop_oneof![
        4 => (0u64..6).prop_map(Json::from),
        1 => prop::sample::select(vec![
            json!(-1), json!(1.5), json!(4_294_967_296u64), json!(u64::MAX), json!("2"), json!(null),
        ]),
    ];
    let array = (
        prop::sample::select(vec!["ndarray", "typed_array"]),
        prop_oneof![3 => bytes.clone(), 1 => prop::collection::vec(json_value(1), 0..5).prop_map(Json::Array), 1 => json_value(1)],
        prop::option::weighted(0.8, prop::collection::vec(dim, 0..4)),
        prop::option::weighted(0.9, prop::sample::select(DTYPES)),
        prop::option::of(prop::sample::select(vec!["little", "big", "middle"])),
    )
        .prop_map(|(tag, array, shape, dtype, order)| {
            let mut o = serde_json::Map::new();
            o.insert("type".into(), Json::from(tag));
            o.insert("array".into(), array);
            if let Some(s) = shape {
                o.insert("shape".into(), Json::Array(s));
            }
            if let Some(d) = dtype {
                o.insert("dtype".into(), Json::from(d));
            }
            if let Some(ord) = order {
                o.insert("order".into(), Json::from(ord));
            }
            Json::Object(o)
        });
    let number = prop::sample::select(vec![
        json!("nan"),
        json!("inf"),
        json!("+inf"),
        json!("-inf"),
        json!("NaN"),
        json!(1),
        json!(2.5),
        json!(null),
        json!([]),
    ])
    .prop_map(|v| json!({"type": "number", "value": v}));
    let part = prop::sample::select(vec![
        json!(null),
        json!(0),
        json!(3),
        json!(-1),
        json!(1.5),
        json!("1"),
        json!(i64::MIN),
        json!(u64::MAX),
    ]);
    let slice =
        (part.clone(), part.clone(), part, any::<bool>()).prop_map(|(a, b, c, drop_step)| {
            if drop_step {
                json!({"type": "slice", "start": a, "stop": b})
            } else {
                json!({"type": "slice", "start": a, "stop": b, "step": c})
            }
        });
    let leaf = prop_oneof![3 => array, 2 => bytes, 1 => number, 2 => slice, 2 => json_value(2)];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec((inner.clone(), inner.clone()), 0..3)
                .prop_map(|kv| json!({"type": "map", "entries": kv.into_iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()})),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|e| json!({"type": "set", "entries": e})),
            (prop::sample::select(IDS), prop::collection::vec((prop::sample::select(DICT_KEYS), inner), 0..3))
                .prop_map(|(id, attrs)| {
                    let attrs: serde_json::Map<String, Json> = attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                    json!({"type": "object", "name": "M", "id": id, "attributes": attrs})
                }),
        ]
    })
}

/// A column map as events carry it: `{"type":"map","entries":[[name, value]]}` or a dict.
fn column_map_json() -> impl Strategy<Value = Json> {
    prop::collection::vec((prop::sample::select(vec!["x", "y", ""]), typed_json()), 0..3).prop_flat_map(|cols| {
        let as_map = json!({"type": "map", "entries": cols.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()});
        let as_dict = Json::Object(cols.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect());
        prop::sample::select(vec![as_map, as_dict])
    })
}

fn event_json() -> impl Strategy<Value = Json> {
    let model = || json!({"id": "p1008"});
    let index = prop_oneof![typed_json(), (0i64..5).prop_map(Json::from)];
    prop_oneof![
        typed_json().prop_map(move |v| json!({"kind": "ModelChanged", "model": model(), "attr": "x", "new": v})),
        (column_map_json(), prop::sample::select(vec![json!(null), json!(["x"]), json!([1]), json!("x")]))
            .prop_map(move |(d, cols)| json!({"kind": "ColumnDataChanged", "model": model(), "attr": "data", "data": d, "cols": cols})),
        (column_map_json(), prop::sample::select(vec![json!(null), json!(3), json!(-1), json!(1.5), json!(u64::MAX), json!("3")]))
            .prop_map(move |(d, r)| json!({"kind": "ColumnsStreamed", "model": model(), "attr": "data", "data": d, "rollover": r})),
        prop::collection::vec((prop::sample::select(vec!["x", "y"]), prop::collection::vec((index, typed_json()), 0..3)), 0..3)
            .prop_map(move |p| {
                let entries: Vec<Json> = p
                    .into_iter()
                    .map(|(k, pairs)| json!([k, pairs.into_iter().map(|(i, v)| json!([i, v])).collect::<Vec<_>>()]))
                    .collect();
                json!({"kind": "ColumnsPatched", "model": model(), "attr": "data", "patches": {"type": "map", "entries": entries}})
            }),
        typed_json().prop_map(|m| json!({"kind": "RootAdded", "model": m})),
        typed_json().prop_map(|m| json!({"kind": "MessageSent", "msg_type": "bokeh_event", "msg_data": m})),
    ]
}

#[test]
fn fuzz_perturbed_wire_forms() {
    fuzz(
        "events/perturbed",
        file!(),
        384,
        (
            prop::collection::vec(event_json(), 0..4),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..32), 0..3),
        ),
        |(events, bufs)| {
            let buffers: Buffers = buffer_map(
                bufs.into_iter()
                    .enumerate()
                    .map(|(i, b)| (i.to_string(), Bytes::from(b)))
                    .collect(),
            );
            let content = serde_json::to_vec(&json!({ "events": events })).unwrap();
            let one_by_one: Vec<bool> = events
                .iter()
                .map(|e| decode_event(e, &buffers).is_ok())
                .collect();
            match decode_patch(&content, &buffers) {
                Ok(decoded) => {
                    prop_assert!(one_by_one.iter().all(|ok| *ok));
                    let (c1, b1) = encode(&decoded);
                    let again = decode_patch(&c1, &buffer_map(b1.clone())).map_err(|e| {
                        TestCaseError::fail(format!("re-encoded patch does not decode: {e}"))
                    })?;
                    prop_assert_eq!(encode(&again), (c1, b1));
                }
                Err(_) => prop_assert!(one_by_one.iter().any(|ok| !*ok)),
            }
            Ok(())
        },
    );
}
