//! REST body formats (`plotwire_server::body`): every format decoded, turned into a
//! document column and read back, bit for bit; every bad body refused with the error
//! and the field it names; the type rules of `conform`. The Arrow fixtures are written
//! by pyarrow (`tests/fixtures/arrow/make_fixtures.py`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use bytes::Bytes;
use plotwire_document::column::{Column, ColumnKind};
use plotwire_protocol::value::{ArrayData, ArrayForm, ArrayValue, DType, Value};
use plotwire_server::body::{
    conform, decode, encode_columns_json, BodyError, BodyLimits, Columns, ARROW_FILE, ARROW_STREAM,
    JSON, NDJSON, RAW,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn dec(ct: &str, body: &[u8]) -> Columns {
    decode(ct, &Bytes::copy_from_slice(body), &BodyLimits::default()).unwrap()
}

fn err(ct: &str, body: &[u8]) -> BodyError {
    decode(ct, &Bytes::copy_from_slice(body), &BodyLimits::default()).unwrap_err()
}

fn err_with(ct: &str, body: &[u8], limits: BodyLimits) -> BodyError {
    decode(ct, &Bytes::copy_from_slice(body), &limits).unwrap_err()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/arrow/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn nd(dtype: DType, bytes: Vec<u8>) -> Value {
    let n = bytes.len() / dtype.size();
    Value::Array(Box::new(ArrayValue {
        form: ArrayForm::Nd,
        dtype,
        shape: vec![n],
        data: ArrayData::Binary(Bytes::from(bytes)),
    }))
}

fn f64s(v: &[f64]) -> Value {
    nd(DType::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

fn i32s(v: &[i32]) -> Value {
    nd(DType::I32, v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

fn strs(v: &[&str]) -> Value {
    Value::List(v.iter().map(|s| Value::Str((*s).to_owned())).collect())
}

fn bools(v: &[bool]) -> Value {
    nd(DType::Bool, v.iter().map(|b| u8::from(*b)).collect())
}

fn get<'a>(cols: &'a Columns, name: &str) -> &'a Value {
    &cols.iter().find(|(n, _)| n == name).unwrap().1
}

/// Columns → document columns → read-back JSON of all rows.
fn readback(cols: &Columns) -> String {
    let built: Vec<(String, Column)> = cols
        .iter()
        .map(|(n, v)| (n.clone(), Column::from_value(v).unwrap()))
        .collect();
    let refs: Vec<(&str, &Column)> = built.iter().map(|(n, c)| (n.as_str(), c)).collect();
    let mut out = Vec::new();
    encode_columns_json(&mut out, &refs, 0..usize::MAX);
    String::from_utf8(out).unwrap()
}

/// A raw body: each column is (name, dtype, length, element bytes).
fn raw(cols: &[(&str, &str, usize, Vec<u8>)]) -> Vec<u8> {
    let header = serde_json::json!({"columns": cols.iter().map(|(n, d, l, _)|
        serde_json::json!({"name": n, "dtype": d, "length": l})).collect::<Vec<_>>()});
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = b"PWC1".to_vec();
    out.extend_from_slice(&u32::try_from(header.len()).unwrap().to_le_bytes());
    out.extend_from_slice(&header);
    for (_, _, _, data) in cols {
        while out.len() & 7 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
    }
    out
}

const EXTREME_F64: [f64; 8] = [
    0.0,
    -0.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::MAX,
    5e-324,
    -2.5e-310,
];
const I32_EDGES: [i32; 8] = [i32::MIN, i32::MAX, 0, -1, 1, 2, 3, 4];
const TEXTS: [&str; 8] = [
    "",
    "héllo",
    "✓",
    "𝄞",
    "a\"b",
    "tab\tnew\nline",
    "\\",
    "\u{1}",
];
const FLAGS: [bool; 8] = [true, false, true, true, false, false, true, false];

const READBACK: &str = concat!(
    r#"{"f":[0.0,-0.0,null,1e999,-1e999,1.7976931348623157e308,5e-324,-2.5e-310],"#,
    r#""i":[-2147483648,2147483647,0,-1,1,2,3,4],"#,
    r#""s":["","héllo","✓","𝄞","a\"b","tab\tnew\nline","\\","\u0001"],"#,
    r#""b":[true,false,true,true,false,false,true,false]}"#
);

fn expected_columns() -> Columns {
    vec![
        ("f".into(), f64s(&EXTREME_F64)),
        ("i".into(), i32s(&I32_EDGES)),
        ("s".into(), strs(&TEXTS)),
        ("b".into(), bools(&FLAGS)),
    ]
}

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

#[test]
fn json_round_trips_bit_exact() {
    let body = r#"{"f": [0.0, -0.0, null, 1e999, -1e999, 1.7976931348623157e308, 5e-324, -2.5e-310],
        "i": [-2147483648, 2147483647, 0, -1, 1, 2, 3, 4],
        "s": ["", "héllo", "\u2713", "𝄞", "a\"b", "tab\tnew\nline", "\\", "\u0001"],
        "b": [true, false, true, true, false, false, true, false]}"#;
    let cols = dec("application/json; charset=utf-8", body.as_bytes());
    assert_eq!(cols, expected_columns());
    let back = readback(&cols);
    assert_eq!(back, READBACK);
    // What is read back decodes to the same columns again.
    assert_eq!(dec(JSON, back.as_bytes()), cols);
}

#[test]
fn json_number_rules() {
    let cols = dec(
        JSON,
        br#"{"a": [1, 2.5], "b": [null, 1], "c": [1, 1099511627776], "d": [null, null], "g": [-9007199254740992, 0]}"#,
    );
    assert_eq!(get(&cols, "a"), &f64s(&[1.0, 2.5]));
    let Value::Array(b) = get(&cols, "b") else {
        panic!()
    };
    assert_eq!(b.dtype, DType::F64);
    // Integers past int32 but exact in float64 become float64.
    assert_eq!(get(&cols, "c"), &f64s(&[1.0, 1099511627776.0]));
    assert_eq!(get(&cols, "d").clone(), f64s(&[f64::NAN, f64::NAN]));
    assert_eq!(get(&cols, "g"), &f64s(&[-9007199254740992.0, 0.0]));
    let empty = dec(JSON, br#"{"e": [], "f": []}"#);
    assert_eq!(get(&empty, "e"), &Value::List(Vec::new()));
    let e = err(JSON, br#"{"n": [1, 1152921504606846976]}"#);
    assert!(matches!(
        e,
        BodyError::IntegerRange {
            value: 1152921504606846976,
            ..
        }
    ));
    assert_eq!(e.field().as_deref(), Some("n"));
    assert!(matches!(
        err(JSON, br#"{"n": [99999999999999999999]}"#),
        BodyError::Json { .. }
    ));
}

#[test]
fn ndjson_round_trips_like_json() {
    let mut body = String::new();
    let f = [
        "0.0",
        "-0.0",
        "null",
        "1e999",
        "-1e999",
        "1.7976931348623157e308",
        "5e-324",
        "-2.5e-310",
    ];
    let s = [
        r#""""#,
        r#""héllo""#,
        r#""✓""#,
        r#""𝄞""#,
        r#""a\"b""#,
        r#""tab\tnew\nline""#,
        r#""\\""#,
        r#""\u0001""#,
    ];
    for r in 0..8 {
        // Keys in another order on some rows, and a blank line and CRLF in between.
        if r % 2 == 0 {
            body += &format!(
                "{{\"f\": {}, \"i\": {}, \"s\": {}, \"b\": {}}}\n",
                f[r], I32_EDGES[r], s[r], FLAGS[r]
            );
        } else {
            body += &format!(
                "{{\"b\": {}, \"s\": {}, \"i\": {}, \"f\": {}}}\r\n\n",
                FLAGS[r], s[r], I32_EDGES[r], f[r]
            );
        }
    }
    let cols = dec(NDJSON, body.as_bytes());
    assert_eq!(cols, expected_columns());
    assert_eq!(readback(&cols), READBACK);
}

#[test]
fn raw_round_trips_every_dtype() {
    let le = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let body = raw(&[
        ("f64", "float64", 8, le(&EXTREME_F64)),
        (
            "f32",
            "float32",
            2,
            [0.1f32, -0.0]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        (
            "i64",
            "int64",
            2,
            [i64::from(i32::MIN), 7]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        (
            "u64",
            "uint64",
            2,
            [1u64 << 40, 3]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        (
            "i32",
            "int32",
            2,
            [i32::MIN, i32::MAX]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        (
            "i16",
            "int16",
            2,
            [i16::MIN, i16::MAX]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        ("i8", "int8", 2, vec![0x80, 0x7f]),
        (
            "u32",
            "uint32",
            2,
            [0u32, u32::MAX]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        (
            "u16",
            "uint16",
            2,
            [0u16, u16::MAX]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        ("u8", "uint8", 2, vec![0, 255]),
        ("b", "bool", 2, vec![1, 0]),
    ]);
    // Columns of 2 rows and one of 8: unequal.
    let e = err(RAW, &body);
    assert!(matches!(e, BodyError::UnequalLengths { .. }));
    assert_eq!(e.field().as_deref(), Some("f32"));

    let body = raw(&[
        ("f64", "float64", 2, le(&[f64::MIN_POSITIVE, -0.0])),
        (
            "f32",
            "float32",
            2,
            [0.1f32, -0.0]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        (
            "i64",
            "int64",
            2,
            [i64::from(i32::MIN), 7]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        (
            "u64",
            "uint64",
            2,
            [1u64 << 40, 3]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        (
            "i16",
            "int16",
            2,
            [i16::MIN, i16::MAX]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        ("i8", "int8", 2, vec![0x80, 0x7f]),
        (
            "u32",
            "uint32",
            2,
            [0u32, u32::MAX]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        (
            "u16",
            "uint16",
            2,
            [0u16, u16::MAX]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        ("u8", "uint8", 2, vec![0, 255]),
        ("b", "bool", 2, vec![1, 0]),
    ]);
    let cols = dec(RAW, &body);
    let dtypes: Vec<DType> = cols
        .iter()
        .map(|(_, v)| match v {
            Value::Array(a) => a.dtype,
            _ => panic!(),
        })
        .collect();
    use DType::*;
    assert_eq!(dtypes, [F64, F32, I32, F64, I16, I8, U32, U16, U8, Bool]);
    assert_eq!(get(&cols, "u64"), &f64s(&[1099511627776.0, 3.0]));
    assert_eq!(
        readback(&cols),
        concat!(
            r#"{"f64":[2.2250738585072014e-308,-0.0],"f32":[0.1,-0.0],"i64":[-2147483648,7],"#,
            r#""u64":[1099511627776.0,3.0],"i16":[-32768,32767],"i8":[-128,127],"#,
            r#""u32":[0,4294967295],"u16":[0,65535],"u8":[0,255],"b":[true,false]}"#
        )
    );
}

fn check_basic_fixture(cols: &Columns) {
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "f64",
            "f32",
            "i32",
            "i64",
            "u8",
            "flag",
            "label",
            "big_label"
        ]
    );
    assert_eq!(
        get(cols, "f64"),
        &f64s(&[
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            5e-324,
            1.5
        ])
    );
    assert_eq!(
        get(cols, "i32"),
        &i32s(&[i32::MIN, i32::MAX, 0, -1, 1, 7, 8, 9])
    );
    assert_eq!(
        get(cols, "i64"),
        &i32s(&[i32::MIN, i32::MAX, 0, -1, 1, 2, 3, 4])
    );
    assert_eq!(
        get(cols, "u8"),
        &nd(DType::U8, vec![0, 255, 1, 2, 3, 4, 5, 6])
    );
    assert_eq!(get(cols, "flag"), &bools(&FLAGS));
    assert_eq!(
        get(cols, "label"),
        &strs(&["", "héllo", "✓", "𝄞", "a\"b", "tab\tnew\nline", "x", "y"])
    );
    assert_eq!(
        get(cols, "big_label"),
        &strs(&["", "a", "bb", "ccc", "é", "ü", "z", "zz"])
    );
    assert_eq!(
        readback(cols),
        concat!(
            r#"{"f64":[0.0,-0.0,null,1e999,-1e999,1.7976931348623157e308,5e-324,1.5],"#,
            r#""f32":[0.1,-0.0,1.5,3.4028235e38,1e-45,2.0,-7.25,0.0],"#,
            r#""i32":[-2147483648,2147483647,0,-1,1,7,8,9],"#,
            r#""i64":[-2147483648,2147483647,0,-1,1,2,3,4],"u8":[0,255,1,2,3,4,5,6],"#,
            r#""flag":[true,false,true,true,false,false,true,false],"#,
            r#""label":["","héllo","✓","𝄞","a\"b","tab\tnew\nline","x","y"],"#,
            r#""big_label":["","a","bb","ccc","é","ü","z","zz"]}"#
        )
    );
}

#[test]
fn pyarrow_stream_and_file_round_trip() {
    let stream = dec(ARROW_STREAM, &fixture("basic.arrows"));
    check_basic_fixture(&stream);
    let file = dec(ARROW_FILE, &fixture("basic.arrow"));
    assert_eq!(file, stream);
}

#[test]
fn pyarrow_batches_are_concatenated() {
    for (ct, name) in [
        (ARROW_STREAM, "batches.arrows"),
        (ARROW_FILE, "batches.arrow"),
    ] {
        let cols = dec(ct, &fixture(name));
        assert_eq!(get(&cols, "x"), &f64s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        assert_eq!(get(&cols, "s"), &strs(&["a", "b", "c", "d", "e", "f"]));
    }
}

#[test]
fn pyarrow_nulls_timestamps_and_dates() {
    let cols = dec(ARROW_STREAM, &fixture("nulls_and_times.arrows"));
    assert_eq!(get(&cols, "f"), &f64s(&[1.5, f64::NAN, -2.0]));
    assert_eq!(get(&cols, "i"), &f64s(&[1.0, f64::NAN, 1099511627776.0]));
    assert_eq!(
        get(&cols, "big"),
        &f64s(&[1099511627776.0, -9007199254740992.0, 9007199254740992.0])
    );
    // 2024-01-02T03:04:05.678 is 1704164645678 ms after the epoch.
    assert_eq!(
        get(&cols, "ms"),
        &f64s(&[1500.0, f64::NAN, 1704164645678.0])
    );
    // Nanoseconds to whole microseconds (floor), then milliseconds, as Bokeh does.
    assert_eq!(get(&cols, "ns"), &f64s(&[1500.0, -0.001, 0.0]));
    assert_eq!(
        get(&cols, "day"),
        &f64s(&[86_400_000.0, 1709164800000.0, f64::NAN])
    );
    assert_eq!(dec(ARROW_FILE, &fixture("nulls_and_times.arrow")), cols);
}

#[test]
fn pyarrow_dictionary_strings() {
    let cols = dec(ARROW_STREAM, &fixture("dictionary.arrows"));
    assert_eq!(get(&cols, "cat"), &strs(&["a", "b", "a", "c", "a"]));
}

#[test]
fn readback_of_a_row_range_and_of_any_columns() {
    let mut c = Column::from_value(&f64s(&[1.0, 2.0])).unwrap();
    c.stream(&f64s(&[3.0, 4.0, 5.0]), None).unwrap();
    let any = Column::from_value(&Value::List(vec![
        Value::Null,
        Value::List(vec![Value::Int(1), Value::Float(2.5)]),
        Value::Dict(vec![("k".into(), Value::Str("v".into()))]),
        Value::Array(Box::new(ArrayValue {
            form: ArrayForm::Nd,
            dtype: DType::U8,
            shape: vec![2, 3],
            data: ArrayData::Binary(Bytes::from_static(&[1, 2, 3, 4, 5, 6])),
        })),
        Value::Bool(true),
    ]))
    .unwrap();
    assert_eq!(any.kind(), ColumnKind::Any);
    let mut out = Vec::new();
    encode_columns_json(&mut out, &[("x", &c), ("a", &any)], 1..4);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"x":[2.0,3.0,4.0],"a":[[1,2.5],{"k":"v"},[[1,2,3],[4,5,6]]]}"#
    );
}

// ---------------------------------------------------------------------------------------
// Bad bodies
// ---------------------------------------------------------------------------------------

#[test]
fn unsupported_content_type_lists_the_accepted_ones() {
    let e = err("text/csv", b"x\n1");
    assert!(matches!(&e, BodyError::UnsupportedType { found } if found == "text/csv"));
    assert_eq!(e.field().as_deref(), Some("Content-Type"));
    let msg = e.to_string();
    for ct in [JSON, NDJSON, RAW, ARROW_STREAM, ARROW_FILE] {
        assert!(msg.contains(ct), "{msg}");
    }
}

#[test]
fn raw_truncated_header() {
    assert!(matches!(
        err(RAW, b"PWC1\x10"),
        BodyError::TruncatedHeader { .. }
    ));
    assert!(matches!(err(RAW, b"PW"), BodyError::TruncatedHeader { .. }));
    let mut body = raw(&[("x", "uint8", 1, vec![7])]);
    body.truncate(12);
    assert!(matches!(err(RAW, &body), BodyError::TruncatedHeader { .. }));
}

#[test]
fn raw_wrong_magic() {
    let mut body = raw(&[("x", "uint8", 1, vec![7])]);
    body[3] = b'2';
    let e = err(RAW, &body);
    assert_eq!(e, BodyError::BadMagic);
    assert_eq!(e.field(), None);
}

#[test]
fn raw_short_and_misaligned_data() {
    let mut body = raw(&[("x", "float64", 2, vec![0; 16])]);
    body.pop();
    let e = err(RAW, &body);
    assert!(matches!(e, BodyError::ShortData { .. }));
    assert_eq!(e.field().as_deref(), Some("x"));
    // A writer that does not pad to 8: the data starts too early, so it ends short.
    let good = raw(&[("a", "uint8", 1, vec![1]), ("y", "float64", 1, vec![0; 8])]);
    let mut unpadded = good[..good.len() - 8 - 7].to_vec();
    unpadded.extend_from_slice(&[0; 8]);
    let e = err(RAW, &unpadded);
    assert!(matches!(e, BodyError::ShortData { .. }));
    assert_eq!(e.field().as_deref(), Some("y"));
    let mut trailing = raw(&[("x", "float64", 1, vec![0; 8])]);
    trailing.extend_from_slice(&[0; 9]);
    assert!(matches!(
        err(RAW, &trailing),
        BodyError::TrailingData { extra: 9 }
    ));
}

#[test]
fn raw_unknown_dtype_bad_bool_and_bad_header() {
    let e = err(RAW, &raw(&[("when", "datetime64", 1, vec![0; 8])]));
    assert!(matches!(&e, BodyError::UnknownDType { dtype, .. } if dtype == "datetime64"));
    assert_eq!(e.field().as_deref(), Some("when"));
    let e = err(RAW, &raw(&[("ok", "bool", 2, vec![1, 2])]));
    assert!(matches!(e, BodyError::BadColumn { .. }));
    assert_eq!(e.field().as_deref(), Some("ok"));
    let mut body = b"PWC1".to_vec();
    body.extend_from_slice(&3u32.to_le_bytes());
    body.extend_from_slice(b"{x}");
    assert!(matches!(err(RAW, &body), BodyError::BadHeader { .. }));
}

#[test]
fn json_unequal_lengths_name_the_column() {
    let e = err(JSON, br#"{"x": [1, 2, 3], "y": [1, 2]}"#);
    assert_eq!(
        e,
        BodyError::UnequalLengths {
            column: "y".into(),
            found: 2,
            first: "x".into(),
            expected: 3
        }
    );
    assert_eq!(e.field().as_deref(), Some("y"));
}

#[test]
fn json_bad_utf8_and_bad_shapes() {
    let e = err(JSON, b"{\"s\": [\"a\xff\"]}");
    assert_eq!(e, BodyError::BadUtf8 { offset: 9 });
    for (body, field) in [
        (&br#"{"x": [[1, 2]]}"#[..], Some("x")),
        (br#"{"x": [{"a": 1}]}"#, Some("x")),
        (br#"{"x": [1, "a"]}"#, Some("x")),
        (br#"{"x": ["a", null]}"#, Some("x")),
        (br#"{"x": [true, 1]}"#, Some("x")),
        (br#"{"x": 1}"#, Some("x")),
        (br#"{"x": [1], "x": [2]}"#, Some("x")),
        (br#"{"x": [1,]}"#, None),
        (br#"{"x": [01]}"#, None),
        (br#"{"x": [1.]}"#, None),
        (br#"{"x": [1] } extra"#, None),
        (br#"[1, 2]"#, None),
        (br#"{"x": ["unterminated]}"#, None),
    ] {
        let e = err(JSON, body);
        assert_eq!(e.field().as_deref(), field, "{e}");
    }
}

#[test]
fn ndjson_rows_must_have_the_first_rows_keys() {
    let e = err(NDJSON, b"{\"x\": 1, \"y\": 2}\n{\"x\": 3}\n");
    assert!(matches!(&e, BodyError::Ndjson { line: 2, problem } if problem.contains("\"y\"")));
    assert_eq!(e.field().as_deref(), Some("line 2"));
    let e = err(NDJSON, b"{\"x\": 1}\n\n{\"x\": 3, \"z\": 4}\n");
    assert!(matches!(&e, BodyError::Ndjson { line: 3, problem } if problem.contains("\"z\"")));
    let e = err(NDJSON, b"{\"x\": 1}\n{\"x\": 3, \"x\": 4}\n");
    assert!(matches!(e, BodyError::Ndjson { line: 2, .. }));
    let e = err(NDJSON, b"{\"x\": 1}\n{\"x\": 3\n");
    assert!(matches!(e, BodyError::Ndjson { line: 2, .. }));
    let e = err(NDJSON, b"{\"x\": 1}\n{\"x\": \"a\"}\n");
    assert!(
        matches!(&e, BodyError::BadColumn { column, problem } if column == "x" && problem.contains("line 2"))
    );
    assert_eq!(dec(NDJSON, b""), Vec::new());
}

#[test]
fn arrow_unsupported_type_names_the_column() {
    for (ct, name) in [
        (ARROW_STREAM, "unsupported.arrows"),
        (ARROW_FILE, "unsupported.arrow"),
    ] {
        let e = err(ct, &fixture(name));
        assert!(
            matches!(&e, BodyError::UnsupportedArrowType { data_type, .. } if data_type.contains("List")),
            "{e}"
        );
        assert_eq!(e.field().as_deref(), Some("nested"));
    }
    let e = err(ARROW_STREAM, &fixture("too_big_int.arrows"));
    assert!(matches!(e, BodyError::IntegerRange { .. }));
    assert_eq!(e.field().as_deref(), Some("n"));
}

#[test]
fn arrow_garbage_and_truncation_are_errors() {
    assert!(matches!(
        err(ARROW_STREAM, b"not arrow at all"),
        BodyError::Arrow(_)
    ));
    assert!(matches!(
        err(ARROW_FILE, b"not arrow at all"),
        BodyError::Arrow(_)
    ));
    let body = fixture("basic.arrows");
    for cut in [9, body.len() / 2, body.len() - 9] {
        assert!(decode(
            ARROW_STREAM,
            &Bytes::copy_from_slice(&body[..cut]),
            &BodyLimits::default()
        )
        .is_err());
    }
    let file = fixture("basic.arrow");
    assert!(matches!(
        err(ARROW_FILE, &file[..file.len() - 10]),
        BodyError::Arrow(_)
    ));
    // A stream is not a file.
    assert!(matches!(err(ARROW_FILE, &body), BodyError::Arrow(_)));
}

fn limit_of(e: &BodyError) -> &'static str {
    match e {
        BodyError::Limit { limit, .. } => limit,
        other => panic!("not a limit: {other}"),
    }
}

#[test]
fn every_limit_is_enforced_and_named() {
    let d = BodyLimits::default();
    let body = br#"{"a": [1, 2, 3], "b": ["xy", "z", ""]}"#;
    let cases = [
        (
            BodyLimits {
                max_body_bytes: 10,
                ..d
            },
            "max_body_bytes",
        ),
        (
            BodyLimits {
                max_columns: 1,
                ..d
            },
            "max_columns",
        ),
        (BodyLimits { max_rows: 2, ..d }, "max_rows"),
        (
            BodyLimits {
                max_string_bytes: 2,
                ..d
            },
            "max_string_bytes",
        ),
    ];
    for (limits, name) in cases {
        let e = err_with(JSON, body, limits);
        assert_eq!(limit_of(&e), name);
        assert_eq!(e.field().as_deref(), Some(name));
    }
    assert!(decode(
        JSON,
        &Bytes::copy_from_slice(body),
        &BodyLimits {
            max_string_bytes: 3,
            ..d
        }
    )
    .is_ok());

    let nd = b"{\"a\": 1, \"b\": \"xy\"}\n{\"a\": 2, \"b\": \"z\"}\n{\"a\": 3, \"b\": \"\"}\n";
    for (limits, name) in [
        (
            BodyLimits {
                max_columns: 1,
                ..d
            },
            "max_columns",
        ),
        (BodyLimits { max_rows: 2, ..d }, "max_rows"),
        (
            BodyLimits {
                max_string_bytes: 2,
                ..d
            },
            "max_string_bytes",
        ),
    ] {
        assert_eq!(limit_of(&err_with(NDJSON, nd, limits)), name);
    }

    let r = raw(&[
        ("a", "uint8", 3, vec![1, 2, 3]),
        ("b", "uint8", 3, vec![1, 2, 3]),
    ]);
    for (limits, name) in [
        (
            BodyLimits {
                max_columns: 1,
                ..d
            },
            "max_columns",
        ),
        (BodyLimits { max_rows: 2, ..d }, "max_rows"),
    ] {
        assert_eq!(limit_of(&err_with(RAW, &r, limits)), name);
    }

    let a = fixture("basic.arrows");
    for (limits, name) in [
        (
            BodyLimits {
                max_body_bytes: 100,
                ..d
            },
            "max_body_bytes",
        ),
        (
            BodyLimits {
                max_columns: 7,
                ..d
            },
            "max_columns",
        ),
        (BodyLimits { max_rows: 7, ..d }, "max_rows"),
        (
            BodyLimits {
                max_string_bytes: 10,
                ..d
            },
            "max_string_bytes",
        ),
    ] {
        assert_eq!(limit_of(&err_with(ARROW_STREAM, &a, limits)), name);
    }
    // Dictionary strings count once per item, not once per dictionary entry.
    let dict = fixture("dictionary.arrows");
    assert_eq!(
        limit_of(&err_with(
            ARROW_STREAM,
            &dict,
            BodyLimits {
                max_string_bytes: 4,
                ..d
            }
        )),
        "max_string_bytes"
    );
    assert!(decode(
        ARROW_STREAM,
        &Bytes::from(dict),
        &BodyLimits {
            max_string_bytes: 5,
            ..d
        }
    )
    .is_ok());
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    let deep = format!("{{\"x\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let e = err(JSON, deep.as_bytes());
    assert_eq!(e.field().as_deref(), Some("x"));
}

// ---------------------------------------------------------------------------------------
// Type rules against existing columns
// ---------------------------------------------------------------------------------------

fn kinds<'a>(map: &'a [(&'static str, ColumnKind)]) -> impl Fn(&str) -> Option<ColumnKind> + 'a {
    move |name| map.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

#[test]
fn conform_converts_ints_into_float_columns_and_refuses_floats_into_int_columns() {
    let cols = dec(
        JSON,
        br#"{"f": [1, 2], "i": [3, 4], "e": [1.5, 2.5], "new": ["a", "b"]}"#,
    );
    let existing = kinds(&[
        ("f", ColumnKind::Float),
        ("i", ColumnKind::Int),
        ("e", ColumnKind::Empty),
    ]);
    let out = conform(cols.clone(), &existing).unwrap();
    assert_eq!(
        get(&out, "f"),
        &Value::List(vec![Value::Float(1.0), Value::Float(2.0)])
    );
    assert_eq!(
        get(&out, "i"),
        &Value::List(vec![Value::Int(3), Value::Int(4)])
    );
    assert_eq!(get(&out, "e"), get(&cols, "e"));
    assert_eq!(get(&out, "new"), get(&cols, "new"));

    let e = conform(cols.clone(), &kinds(&[("e", ColumnKind::Int)])).unwrap_err();
    assert!(matches!(
        e,
        BodyError::Mismatch {
            expected: "int64",
            ..
        }
    ));
    assert_eq!(e.field().as_deref(), Some("e"));
    let e = conform(cols.clone(), &kinds(&[("new", ColumnKind::Float)])).unwrap_err();
    assert_eq!(e.field().as_deref(), Some("new"));
    let e = conform(cols, &kinds(&[("f", ColumnKind::Str)])).unwrap_err();
    assert_eq!(e.field().as_deref(), Some("f"));
}

#[test]
fn integers_past_int32_go_into_int_list_columns() {
    // Bokeh keeps Python ints as JSON lists; BokehJS holds them as doubles, exact to 2^53.
    let cols = dec(JSON, br#"{"i": [1099511627776, -3, 9007199254740992]}"#);
    let out = conform(cols, &kinds(&[("i", ColumnKind::Int)])).unwrap();
    assert_eq!(
        get(&out, "i"),
        &Value::List(vec![
            Value::Int(1_099_511_627_776),
            Value::Int(-3),
            Value::Int(9_007_199_254_740_992)
        ])
    );
    // A fraction is still no integer, nor is a whole number past 2^53.
    let cols = dec(JSON, br#"{"i": [1099511627776, 0.5]}"#);
    assert!(conform(cols, &kinds(&[("i", ColumnKind::Int)])).is_err());
    let cols = dec(JSON, br#"{"i": [1.8e16]}"#);
    assert!(conform(cols, &kinds(&[("i", ColumnKind::Int)])).is_err());
}

#[test]
fn conform_into_binary_columns() {
    let f64col = ColumnKind::Binary {
        form: ArrayForm::Typed,
        dtype: DType::F64,
    };
    let u8col = ColumnKind::Binary {
        form: ArrayForm::Nd,
        dtype: DType::U8,
    };
    let i32col = ColumnKind::Binary {
        form: ArrayForm::Nd,
        dtype: DType::I32,
    };
    let cols = dec(JSON, br#"{"x": [1, 300]}"#);
    let out = conform(cols.clone(), &kinds(&[("x", f64col)])).unwrap();
    let Value::Array(a) = get(&out, "x") else {
        panic!()
    };
    assert_eq!((a.form, a.dtype), (ArrayForm::Typed, DType::F64));
    assert_eq!(get(&out, "x").clone(), {
        let Value::Array(mut b) = f64s(&[1.0, 300.0]) else {
            panic!()
        };
        b.form = ArrayForm::Typed;
        Value::Array(b)
    });
    // The converted batch streams into the column as a chunk of its own dtype.
    let mut column = Column::from_value(&Value::Array(Box::new(ArrayValue {
        form: ArrayForm::Typed,
        dtype: DType::F64,
        shape: vec![0],
        data: ArrayData::Binary(Bytes::new()),
    })))
    .unwrap();
    column.stream(get(&out, "x"), None).unwrap();
    assert_eq!(column.len(), 2);

    let e = conform(cols.clone(), &kinds(&[("x", u8col)])).unwrap_err();
    assert!(matches!(e, BodyError::BadColumn { .. }));
    assert_eq!(e.field().as_deref(), Some("x"));
    assert!(conform(dec(JSON, br#"{"x": [1, 255]}"#), &kinds(&[("x", u8col)])).is_ok());
    let e = conform(dec(JSON, br#"{"x": [1.5]}"#), &kinds(&[("x", i32col)])).unwrap_err();
    assert!(matches!(e, BodyError::Mismatch { .. }));
    let e = conform(dec(JSON, br#"{"x": [true]}"#), &kinds(&[("x", f64col)])).unwrap_err();
    assert!(matches!(e, BodyError::Mismatch { .. }));
    let e = conform(dec(JSON, br#"{"x": ["a"]}"#), &kinds(&[("x", f64col)])).unwrap_err();
    assert!(matches!(e, BodyError::Mismatch { .. }));
    // No rows fit any column.
    assert!(conform(dec(JSON, br#"{"x": []}"#), &kinds(&[("x", u8col)])).is_ok());
}

// ---------------------------------------------------------------------------------------
// Throughput (release: cargo test --release -p plotwire-server --test body -- --ignored --nocapture)
// ---------------------------------------------------------------------------------------

fn per_second(n: usize, f: impl Fn()) -> f64 {
    f();
    let runs = 5;
    let t = std::time::Instant::now();
    for _ in 0..runs {
        f();
    }
    (n * runs) as f64 / t.elapsed().as_secs_f64()
}

#[test]
#[ignore]
fn throughput() {
    let n = 1_000_000;
    let xs: Vec<f64> = (0..n).map(|i| (i as f64) * 0.37 + 1e-3).collect();
    let json = Bytes::from(serde_json::to_vec(&serde_json::json!({ "x": xs })).unwrap());
    let ints = Bytes::from(
        serde_json::to_vec(&serde_json::json!({ "i": (0..n).collect::<Vec<_>>() })).unwrap(),
    );
    let limits = BodyLimits {
        max_body_bytes: 1 << 30,
        max_rows: 1 << 30,
        ..BodyLimits::default()
    };
    let j = per_second(n, || drop(decode(JSON, &json, &limits).unwrap()));
    let ji = per_second(n, || drop(decode(JSON, &ints, &limits).unwrap()));
    let big = 10_000_000;
    let raw_body = Bytes::from(raw(&[("x", "float64", big, vec![0; big * 8])]));
    let r = per_second(big, || drop(decode(RAW, &raw_body, &limits).unwrap()));
    let arrow_body = {
        use arrow_array::{Float64Array, RecordBatch};
        let batch = RecordBatch::try_from_iter([(
            "x",
            std::sync::Arc::new(Float64Array::from_iter_values((0..big).map(|i| i as f64)))
                as arrow_array::ArrayRef,
        )])
        .unwrap();
        let mut out = Vec::new();
        let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        drop(w);
        Bytes::from(out)
    };
    let a = per_second(big, || {
        drop(decode(ARROW_STREAM, &arrow_body, &limits).unwrap())
    });
    let rows: String = xs
        .iter()
        .map(|x| format!("{{\"x\":{x},\"y\":{}}}\n", x * 2.0))
        .collect();
    let ndjson = Bytes::from(rows);
    let nd = per_second(2 * n, || drop(decode(NDJSON, &ndjson, &limits).unwrap()));
    let cols = decode(JSON, &json, &limits).unwrap();
    let column = Column::from_value(&cols[0].1).unwrap();
    let e = per_second(n, || {
        let mut out = Vec::with_capacity(json.len());
        encode_columns_json(&mut out, &[("x", &column)], 0..n);
    });
    println!("JSON floats decode: {:.1} M values/s", j / 1e6);
    println!("JSON ints decode:   {:.1} M values/s", ji / 1e6);
    println!("NDJSON floats decode: {:.1} M values/s", nd / 1e6);
    println!("raw float64 decode: {:.1} M values/s", r / 1e6);
    println!("Arrow float64 decode: {:.1} M values/s", a / 1e6);
    println!("read-back JSON encode: {:.1} M values/s", e / 1e6);
}
