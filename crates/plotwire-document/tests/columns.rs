//! Typed, chunked columns: construction, streaming with rollover, every patch form, the
//! type rules, atomicity on errors, and model-based property tests.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use bytes::Bytes;
use plotwire_document::column::{Column, ColumnError, ColumnKind};
use plotwire_protocol::value::{ArrayData, ArrayForm, ArrayValue, DType, Slice, Value};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn ints(v: &[i64]) -> Value {
    Value::List(v.iter().map(|x| Value::Int(*x)).collect())
}

fn floats(v: &[f64]) -> Value {
    Value::List(v.iter().map(|x| Value::Float(*x)).collect())
}

fn strs(v: &[&str]) -> Value {
    Value::List(v.iter().map(|x| Value::Str((*x).to_string())).collect())
}

fn bools(v: &[bool]) -> Value {
    Value::List(v.iter().map(|x| Value::Bool(*x)).collect())
}

fn f64_bytes(v: &[f64]) -> Bytes {
    Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

fn array(form: ArrayForm, dtype: DType, shape: Vec<usize>, bytes: Bytes) -> Value {
    Value::Array(Box::new(ArrayValue {
        form,
        dtype,
        shape,
        data: ArrayData::Binary(bytes),
    }))
}

fn f64_array(v: &[f64]) -> Value {
    array(ArrayForm::Nd, DType::F64, vec![v.len()], f64_bytes(v))
}

fn i32_array(v: &[i32]) -> Value {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    array(
        ArrayForm::Typed,
        DType::I32,
        vec![v.len()],
        Bytes::from(bytes),
    )
}

fn u8_array(v: &[u8]) -> Value {
    array(
        ArrayForm::Nd,
        DType::U8,
        vec![v.len()],
        Bytes::copy_from_slice(v),
    )
}

fn image(rows: usize, cols: usize) -> Value {
    let v: Vec<f64> = (0..rows * cols).map(|x| x as f64).collect();
    array(ArrayForm::Nd, DType::F64, vec![rows, cols], f64_bytes(&v))
}

fn slice(start: Option<i64>, stop: Option<i64>, step: Option<i64>) -> Value {
    Value::Slice(Slice { start, stop, step })
}

fn s(start: i64, stop: i64) -> Value {
    slice(Some(start), Some(stop), None)
}

fn col(v: &Value) -> Column {
    Column::from_value(v).expect("valid column")
}

/// The float64 elements of a binary array value.
fn array_f64(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => match &a.data {
            ArrayData::Binary(b) => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            ArrayData::List(_) => panic!("list body"),
        },
        other => panic!("not an array: {other:?}"),
    }
}

fn first_chunk_ptr(c: &Column) -> *const u8 {
    c.binary_chunks()[0].as_ptr()
}

/// Applies `f`, expects an error, and checks that the column did not change.
fn assert_refused(
    c: &mut Column,
    f: impl FnOnce(&mut Column) -> Result<(), ColumnError>,
) -> ColumnError {
    let before = c.clone();
    let before_value = c.to_value();
    let err = f(c).expect_err("operation should be refused");
    assert_eq!(*c, before, "column changed after error {err}");
    assert_eq!(c.to_value(), before_value);
    assert_eq!(c.kind(), before.kind());
    err
}

// ---------------------------------------------------------------------------------------
// from_value
// ---------------------------------------------------------------------------------------

#[test]
fn from_value_infers_list_kinds() {
    assert_eq!(col(&ints(&[1, 2, 3])).kind(), ColumnKind::Int);
    let mixed = Value::List(vec![
        Value::Int(1),
        Value::Float(2.5),
        Value::Float(f64::NAN),
    ]);
    let c = col(&mixed);
    assert_eq!(c.kind(), ColumnKind::Float);
    assert_eq!(c.get(0), Some(Value::Float(1.0)));
    assert!(matches!(c.get(2), Some(Value::Float(x)) if x.is_nan()));
    assert_eq!(col(&bools(&[true, false])).kind(), ColumnKind::Bool);
    assert_eq!(col(&strs(&["a", "b"])).kind(), ColumnKind::Str);
    let empty = col(&Value::List(vec![]));
    assert_eq!(empty.kind(), ColumnKind::Empty);
    assert!(empty.is_empty());
    assert_eq!(empty.to_value(), Value::List(vec![]));
    assert_eq!(Column::new(), empty);

    for any in [
        Value::List(vec![Value::Int(1), Value::Null]),
        Value::List(vec![Value::Int(1), Value::Str("a".into())]),
        Value::List(vec![Value::Bool(true), Value::Int(1)]),
        Value::List(vec![ints(&[1, 2]), ints(&[3])]),
        Value::List(vec![image(3, 4)]),
        Value::List(vec![Value::Null]),
    ] {
        let c = col(&any);
        assert_eq!(c.kind(), ColumnKind::Any, "{any:?}");
        assert_eq!(c.to_value(), any);
    }
}

#[test]
fn from_value_keeps_binary_arrays_without_copying() {
    let bytes = f64_bytes(&[1.0, 2.0, 3.0]);
    let v = array(ArrayForm::Nd, DType::F64, vec![3], bytes.clone());
    let c = col(&v);
    assert_eq!(
        c.kind(),
        ColumnKind::Binary {
            form: ArrayForm::Nd,
            dtype: DType::F64
        }
    );
    assert_eq!(c.len(), 3);
    assert_eq!(c.chunk_count(), 1);
    assert_eq!(first_chunk_ptr(&c), bytes.as_ptr());
    // to_value of a single chunk shares the buffer and keeps form and dtype.
    let out = c.to_value();
    assert_eq!(out, v);
    match &out {
        Value::Array(a) => match &a.data {
            ArrayData::Binary(b) => assert_eq!(b.as_ptr(), bytes.as_ptr()),
            ArrayData::List(_) => panic!("list body"),
        },
        _ => panic!("not an array"),
    }

    let t = col(&i32_array(&[4, -5]));
    assert_eq!(
        t.kind(),
        ColumnKind::Binary {
            form: ArrayForm::Typed,
            dtype: DType::I32
        }
    );
    assert_eq!(t.kind_name(), "int32");
    assert_eq!(t.get(1), Some(Value::Int(-5)));
    assert_eq!(t.get_f64(1), Some(-5.0));
    assert_eq!(t.get(2), None);

    let b = col(&array(
        ArrayForm::Nd,
        DType::Bool,
        vec![2],
        Bytes::from_static(&[1, 0]),
    ));
    assert_eq!(b.get(0), Some(Value::Bool(true)));

    // An empty binary array still fixes the dtype.
    let e = col(&f64_array(&[]));
    assert_eq!(e.len(), 0);
    assert_eq!(
        e.kind(),
        ColumnKind::Binary {
            form: ArrayForm::Nd,
            dtype: DType::F64
        }
    );
    assert_eq!(e.to_value(), f64_array(&[]));
}

#[test]
fn from_value_object_ndarray_is_a_list() {
    let v = Value::Array(Box::new(ArrayValue {
        form: ArrayForm::Nd,
        dtype: DType::Object,
        shape: vec![2],
        data: ArrayData::List(vec![Value::Str("a".into()), Value::Str("b".into())]),
    }));
    let c = col(&v);
    assert_eq!(c.kind(), ColumnKind::Str);
    assert_eq!(c.to_value(), strs(&["a", "b"]));
}

#[test]
fn from_value_rejects_non_columns() {
    let err = Column::from_value(&image(3, 4)).unwrap_err();
    assert_eq!(err, ColumnError::NotOneDimensional { shape: vec![3, 4] });
    assert!(err.to_string().contains("1-D"), "{err}");

    let err = Column::from_value(&Value::Str("x".into())).unwrap_err();
    assert!(matches!(err, ColumnError::NotAColumn { .. }), "{err}");
    assert!(Column::from_value(&Value::Null).is_err());

    // Bytes that are not a whole number of elements.
    let bad = array(
        ArrayForm::Nd,
        DType::F64,
        vec![1],
        Bytes::from_static(&[0; 7]),
    );
    assert!(matches!(
        Column::from_value(&bad).unwrap_err(),
        ColumnError::MalformedArray { .. }
    ));
    // A shape that does not match the body.
    let bad = array(ArrayForm::Nd, DType::F64, vec![3], f64_bytes(&[1.0]));
    assert!(matches!(
        Column::from_value(&bad).unwrap_err(),
        ColumnError::MalformedArray { .. }
    ));
    // Object dtype with a byte body.
    let bad = array(ArrayForm::Nd, DType::Object, vec![0], Bytes::new());
    assert!(Column::from_value(&bad).is_err());
}

// ---------------------------------------------------------------------------------------
// stream and rollover
// ---------------------------------------------------------------------------------------

#[test]
fn stream_with_rollover_keeps_the_last_items() {
    let mut c = col(&ints(&[0, 1, 2, 3, 4, 5, 6]));
    c.stream(&ints(&[7, 8, 9]), Some(8)).unwrap();
    assert_eq!(c.to_value(), ints(&[2, 3, 4, 5, 6, 7, 8, 9]));
    // A later stream without rollover grows past 8.
    c.stream(&ints(&[10]), None).unwrap();
    assert_eq!(c.len(), 9);
    assert_eq!(c.get(0), Some(Value::Int(2)));
    assert_eq!(c.get(8), Some(Value::Int(10)));
}

#[test]
fn stream_without_rollover_appends() {
    let mut c = col(&floats(&[1.0]));
    c.stream(&floats(&[2.0, 3.0]), None).unwrap();
    c.stream(&ints(&[4]), None).unwrap();
    assert_eq!(c.to_value(), floats(&[1.0, 2.0, 3.0, 4.0]));
    assert_eq!(c.chunk_count(), 3);
    // Rollover larger than the column keeps everything.
    c.stream(&floats(&[5.0]), Some(100)).unwrap();
    assert_eq!(c.len(), 5);
    // Rollover 0 empties it but keeps the kind.
    c.stream(&floats(&[]), Some(0)).unwrap();
    assert!(c.is_empty());
    assert_eq!(c.kind(), ColumnKind::Float);
}

#[test]
fn empty_stream_is_a_no_op_but_rollover_applies() {
    let mut c = col(&strs(&["a", "b", "c"]));
    c.stream(&Value::List(vec![]), None).unwrap();
    assert_eq!(c.len(), 3);
    c.stream(&Value::List(vec![]), Some(1)).unwrap();
    assert_eq!(c.to_value(), strs(&["c"]));
    // An empty column stays empty (and untyped) after an empty stream.
    let mut e = Column::new();
    e.stream(&f64_array(&[]), Some(3)).unwrap();
    assert_eq!(e.kind(), ColumnKind::Empty);
}

#[test]
fn binary_stream_appends_without_copying() {
    let first = f64_bytes(&[1.0, 2.0]);
    let mut c = col(&array(ArrayForm::Typed, DType::F64, vec![2], first.clone()));
    let more = f64_bytes(&[3.0, 4.0, 5.0]);
    c.stream(
        &array(ArrayForm::Nd, DType::F64, vec![3], more.clone()),
        None,
    )
    .unwrap();
    assert_eq!(c.chunk_count(), 2);
    assert_eq!(first_chunk_ptr(&c), first.as_ptr());
    assert_eq!(c.binary_chunks()[1].as_ptr(), more.as_ptr());
    // The column keeps its original form.
    let out = c.to_value();
    match &out {
        Value::Array(a) => {
            assert_eq!(a.form, ArrayForm::Typed);
            assert_eq!(a.dtype, DType::F64);
            assert_eq!(a.shape, vec![5]);
        }
        _ => panic!("not an array"),
    }
    assert_eq!(array_f64(&out), vec![1.0, 2.0, 3.0, 4.0, 5.0]);

    // Clones share the chunks.
    let clone = c.clone();
    assert_eq!(first_chunk_ptr(&clone), first.as_ptr());
}

#[test]
fn rollover_drops_whole_chunks_plus_an_offset() {
    let mut c = col(&f64_array(&[0.0, 1.0, 2.0, 3.0]));
    c.stream(&f64_array(&[4.0, 5.0, 6.0, 7.0]), None).unwrap();
    let third = f64_bytes(&[8.0, 9.0, 10.0, 11.0]);
    c.stream(
        &array(ArrayForm::Nd, DType::F64, vec![4], third.clone()),
        Some(6),
    )
    .unwrap();
    assert_eq!(c.chunk_count(), 2);
    assert_eq!(c.len(), 6);
    assert_eq!(
        array_f64(&c.to_value()),
        vec![6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    );
    assert_eq!(c.binary_chunks()[1].as_ptr(), third.as_ptr());
    // Exactly at a chunk boundary.
    c.keep_last(4);
    assert_eq!(c.chunk_count(), 1);
    assert_eq!(first_chunk_ptr(&c), third.as_ptr());
    assert_eq!(c.get(0), Some(Value::Float(8.0)));

    // Same for list columns.
    let mut l = col(&ints(&[0, 1, 2]));
    l.stream(&ints(&[3, 4, 5]), None).unwrap();
    l.stream(&ints(&[6, 7, 8]), Some(4)).unwrap();
    assert_eq!(l.chunk_count(), 2);
    assert_eq!(l.to_value(), ints(&[5, 6, 7, 8]));
}

#[test]
fn many_small_streams_are_coalesced() {
    let mut c = col(&f64_array(&[0.0]));
    for i in 1..1000 {
        c.stream(&f64_array(&[i as f64]), None).unwrap();
    }
    assert_eq!(c.len(), 1000);
    assert!(c.chunk_count() <= 40, "{} chunks", c.chunk_count());
    let expected: Vec<f64> = (0..1000).map(|x| x as f64).collect();
    assert_eq!(array_f64(&c.to_value()), expected);

    let mut l = col(&ints(&[0]));
    for i in 1..1000 {
        l.stream(&ints(&[i]), Some(500)).unwrap();
    }
    assert_eq!(l.to_value(), ints(&(500..1000).collect::<Vec<_>>()));
    assert!(l.chunk_count() <= 40, "{} chunks", l.chunk_count());
}

#[test]
fn binary_stream_converts_representable_numbers() {
    let mut c = col(&i32_array(&[1, 2]));
    c.stream(&Value::List(vec![Value::Int(3), Value::Float(4.0)]), None)
        .unwrap();
    assert_eq!(c.get(3), Some(Value::Int(4)));
    c.stream(&u8_array(&[5]), None).unwrap();
    assert_eq!(c.get(4), Some(Value::Int(5)));
    assert_eq!(c.len(), 5);

    let mut f = col(&array(
        ArrayForm::Nd,
        DType::F32,
        vec![1],
        Bytes::copy_from_slice(&1.5f32.to_le_bytes()),
    ));
    f.stream(&i32_array(&[7]), None).unwrap();
    f.stream(&floats(&[0.25, f64::NAN]), None).unwrap();
    f.stream(&f64_array(&[1e300]), None).unwrap(); // floats go into float32 always
    assert_eq!(f.get(1), Some(Value::Float(7.0)));
    assert_eq!(f.get(2), Some(Value::Float(0.25)));
    assert_eq!(f.get(4), Some(Value::Float(f64::INFINITY)));

    let mut b = col(&array(
        ArrayForm::Nd,
        DType::Bool,
        vec![1],
        Bytes::from_static(&[0]),
    ));
    b.stream(&bools(&[true]), None).unwrap();
    assert_eq!(b.get(1), Some(Value::Bool(true)));
}

#[test]
fn binary_stream_refuses_unrepresentable_values() {
    let mut c = col(&f64_array(&[1.0]));
    let err = assert_refused(&mut c, |c| c.stream(&strs(&["x"]), None));
    assert_eq!(
        err.to_string(),
        "type mismatch: cannot put a string into float64 column"
    );
    assert_refused(&mut c, |c| c.stream(&Value::List(vec![Value::Null]), None));
    assert_refused(&mut c, |c| c.stream(&bools(&[true]), None));
    // The whole stream is refused even when only the last item is bad.
    assert_refused(&mut c, |c| {
        c.stream(
            &Value::List(vec![Value::Float(2.0), Value::Str("x".into())]),
            Some(1),
        )
    });

    let mut i = col(&i32_array(&[1]));
    let err = assert_refused(&mut i, |c| c.stream(&floats(&[1.5]), None));
    assert!(err.to_string().contains("int32 column"), "{err}");
    assert_refused(&mut i, |c| c.stream(&floats(&[f64::NAN]), None));
    assert_refused(&mut i, |c| c.stream(&ints(&[1 << 40]), None));
    assert_refused(&mut i, |c| c.stream(&f64_array(&[0.5]), None));

    let mut u = col(&u8_array(&[1]));
    assert_refused(&mut u, |c| c.stream(&ints(&[300]), None));
    assert_refused(&mut u, |c| c.stream(&ints(&[-1]), None));
    assert_refused(&mut u, |c| c.stream(&i32_array(&[256]), None));
    u.stream(&i32_array(&[255]), None).unwrap();
    assert_eq!(u.get(1), Some(Value::Int(255)));

    let mut b = col(&array(
        ArrayForm::Nd,
        DType::Bool,
        vec![1],
        Bytes::from_static(&[0]),
    ));
    assert_refused(&mut b, |c| c.stream(&ints(&[1]), None));
    assert_refused(&mut b, |c| c.stream(&u8_array(&[1]), None));

    // Streamed arrays must be 1-D.
    let err = assert_refused(&mut c, |c| c.stream(&image(2, 2), None));
    assert!(matches!(err, ColumnError::NotOneDimensional { .. }));
    assert_refused(&mut c, |c| c.stream(&Value::Int(1), None));
}

#[test]
fn list_stream_type_rules() {
    // Float + Int/Float.
    let mut f = col(&floats(&[1.5]));
    f.stream(&ints(&[2]), None).unwrap();
    f.stream(&f64_array(&[3.5]), None).unwrap();
    assert_eq!(f.to_value(), floats(&[1.5, 2.0, 3.5]));
    assert_eq!(f.kind(), ColumnKind::Float);

    // Int + Float becomes Float.
    let mut i = col(&ints(&[1, 2]));
    i.stream(&i32_array(&[3]), None).unwrap();
    assert_eq!(i.kind(), ColumnKind::Int);
    i.stream(&floats(&[3.5]), None).unwrap();
    assert_eq!(i.kind(), ColumnKind::Float);
    assert_eq!(i.to_value(), floats(&[1.0, 2.0, 3.0, 3.5]));

    // Null into numbers makes the column Any.
    let mut n = col(&ints(&[1]));
    n.stream(&Value::List(vec![Value::Null, Value::Int(2)]), None)
        .unwrap();
    assert_eq!(n.kind(), ColumnKind::Any);
    assert_eq!(
        n.to_value(),
        Value::List(vec![Value::Int(1), Value::Null, Value::Int(2)])
    );
    let mut nf = col(&floats(&[1.0]));
    nf.stream(&Value::List(vec![Value::Null]), None).unwrap();
    assert_eq!(nf.kind(), ColumnKind::Any);

    // Str + Str, Bool + Bool.
    let mut s = col(&strs(&["a"]));
    s.stream(&strs(&["b"]), None).unwrap();
    assert_eq!(s.to_value(), strs(&["a", "b"]));
    let mut b = col(&bools(&[true]));
    b.stream(&bools(&[false]), None).unwrap();
    assert_eq!(b.to_value(), bools(&[true, false]));

    // Crossings are refused and leave the column unchanged.
    assert_refused(&mut f, |c| c.stream(&strs(&["x"]), None));
    assert_refused(&mut f, |c| c.stream(&bools(&[true]), None));
    assert_refused(&mut f, |c| {
        c.stream(&Value::List(vec![ints(&[1, 2])]), None)
    });
    assert_refused(&mut f, |c| {
        c.stream(
            &Value::List(vec![Value::Null, Value::Str("x".into())]),
            None,
        )
    });
    let mut i = col(&ints(&[1]));
    let err = assert_refused(&mut i, |c| c.stream(&strs(&["x"]), Some(0)));
    assert_eq!(
        err.to_string(),
        "type mismatch: cannot put a string into int64 column"
    );
    assert_refused(&mut s, |c| c.stream(&ints(&[1]), None));
    assert_refused(&mut s, |c| c.stream(&bools(&[true]), None));
    assert_refused(&mut b, |c| c.stream(&strs(&["x"]), None));
    assert_refused(&mut b, |c| c.stream(&ints(&[0]), None));

    // Any takes anything.
    let mut a = col(&Value::List(vec![Value::Null]));
    a.stream(&strs(&["x"]), None).unwrap();
    a.stream(&f64_array(&[2.5]), None).unwrap();
    a.stream(&Value::List(vec![image(2, 2)]), None).unwrap();
    assert_eq!(a.len(), 4);
    assert_eq!(a.get(2), Some(Value::Float(2.5)));
    assert_eq!(a.get(3), Some(image(2, 2)));
}

#[test]
fn empty_column_adopts_the_first_stream() {
    let mut e = Column::new();
    e.stream(&ints(&[1, 2]), None).unwrap();
    assert_eq!(e.kind(), ColumnKind::Int);

    let mut e = Column::new();
    let bytes = f64_bytes(&[1.0]);
    e.stream(
        &array(ArrayForm::Typed, DType::F64, vec![1], bytes.clone()),
        None,
    )
    .unwrap();
    assert_eq!(
        e.kind(),
        ColumnKind::Binary {
            form: ArrayForm::Typed,
            dtype: DType::F64
        }
    );
    assert_eq!(first_chunk_ptr(&e), bytes.as_ptr());

    let mut e = Column::new();
    e.stream(&Value::List(vec![image(2, 2), image(1, 3)]), Some(1))
        .unwrap();
    assert_eq!(e.kind(), ColumnKind::Any);
    assert_eq!(e.to_value(), Value::List(vec![image(1, 3)]));
}

// ---------------------------------------------------------------------------------------
// patch
// ---------------------------------------------------------------------------------------

#[test]
fn patch_integer_index() {
    let mut c = col(&ints(&[1, 2, 3]));
    c.patch(&[(Value::Int(0), Value::Int(42))]).unwrap();
    assert_eq!(c.to_value(), ints(&[42, 2, 3]));
    // Applied in order: the last write wins.
    c.patch(&[
        (Value::Int(2), Value::Int(5)),
        (Value::Int(2), Value::Int(6)),
    ])
    .unwrap();
    assert_eq!(c.to_value(), ints(&[42, 2, 6]));
    c.patch(&[]).unwrap();
    assert_eq!(c.to_value(), ints(&[42, 2, 6]));
}

#[test]
fn patch_slice() {
    // y[1:3] = [7, 7]
    let mut y = col(&ints(&[1, 2, 3, 4, 5]));
    y.patch(&[(s(1, 3), ints(&[7, 7]))]).unwrap();
    assert_eq!(y.to_value(), ints(&[1, 7, 7, 4, 5]));
    // Step, defaults and a stop past the end (clamped).
    y.patch(&[(slice(None, None, Some(2)), ints(&[0, 0, 0]))])
        .unwrap();
    assert_eq!(y.to_value(), ints(&[0, 7, 0, 4, 0]));
    y.patch(&[(slice(Some(3), Some(99), None), ints(&[8, 9]))])
        .unwrap();
    assert_eq!(y.to_value(), ints(&[0, 7, 0, 8, 9]));
    // Empty selections take an empty value.
    y.patch(&[(s(2, 2), ints(&[]))]).unwrap();
    y.patch(&[(s(10, 20), ints(&[]))]).unwrap();
    assert_eq!(y.to_value(), ints(&[0, 7, 0, 8, 9]));
    // An array value.
    y.patch(&[(s(0, 2), i32_array(&[-1, -2]))]).unwrap();
    assert_eq!(y.to_value(), ints(&[-1, -2, 0, 8, 9]));
}

#[test]
fn patch_binary_column_copies_only_the_touched_chunk() {
    let first = f64_bytes(&[0.0, 1.0, 2.0]);
    let mut c = col(&array(ArrayForm::Nd, DType::F64, vec![3], first.clone()));
    c.stream(&f64_array(&[3.0, 4.0, 5.0]), None).unwrap();
    let snapshot = c.clone();
    c.patch(&[
        (Value::Int(4), Value::Int(40)),
        (
            s(3, 6),
            Value::List(vec![
                Value::Float(30.0),
                Value::Float(41.0),
                Value::Float(50.0),
            ]),
        ),
        (Value::Int(4), Value::Float(40.5)),
    ])
    .unwrap();
    assert_eq!(
        array_f64(&c.to_value()),
        vec![0.0, 1.0, 2.0, 30.0, 40.5, 50.0]
    );
    assert_eq!(c.chunk_count(), 2);
    // The untouched first chunk is still the original buffer.
    assert_eq!(first_chunk_ptr(&c), first.as_ptr());
    // The clone taken before is unaffected (copy-on-write).
    assert_eq!(
        array_f64(&snapshot.to_value()),
        vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    );

    let mut u = col(&u8_array(&[1, 2, 3]));
    u.patch(&[(s(0, 2), u8_array(&[9, 8]))]).unwrap();
    assert_eq!(u.get(0), Some(Value::Int(9)));
    assert_eq!(u.get(1), Some(Value::Int(8)));
}

#[test]
fn patch_list_column_copy_on_write() {
    let mut c = col(&floats(&[1.0, 2.0]));
    c.stream(&floats(&[3.0]), None).unwrap();
    let snapshot = c.clone();
    c.patch(&[(Value::Int(2), Value::Float(9.0))]).unwrap();
    assert_eq!(c.to_value(), floats(&[1.0, 2.0, 9.0]));
    assert_eq!(snapshot.to_value(), floats(&[1.0, 2.0, 3.0]));
    // Patching the unshared column again works in place.
    drop(snapshot);
    c.patch(&[(Value::Int(0), Value::Int(7))]).unwrap();
    assert_eq!(c.to_value(), floats(&[7.0, 2.0, 9.0]));
}

#[test]
fn patch_type_promotion() {
    let mut c = col(&ints(&[1, 2]));
    c.patch(&[(Value::Int(1), Value::Float(2.5))]).unwrap();
    assert_eq!(c.kind(), ColumnKind::Float);
    assert_eq!(c.to_value(), floats(&[1.0, 2.5]));
    c.patch(&[(Value::Int(0), Value::Null)]).unwrap();
    assert_eq!(c.kind(), ColumnKind::Any);
    assert_eq!(
        c.to_value(),
        Value::List(vec![Value::Null, Value::Float(2.5)])
    );
}

#[test]
fn patch_multi_index_on_an_image() {
    // image[0][0:2, 1] = [100, 200] on a 3x4 float64 image.
    let img = image(3, 4);
    let mut c = col(&Value::List(vec![img.clone(), image(2, 2)]));
    let snapshot = c.clone();
    let index = Value::List(vec![Value::Int(0), s(0, 2), Value::Int(1)]);
    c.patch(&[(index, f64_array(&[100.0, 200.0]))]).unwrap();
    let patched = c.get(0).unwrap();
    let mut expected: Vec<f64> = (0..12).map(|x| x as f64).collect();
    expected[1] = 100.0; // row 0, col 1
    expected[5] = 200.0; // row 1, col 1
    assert_eq!(array_f64(&patched), expected);
    match &patched {
        Value::Array(a) => assert_eq!(a.shape, vec![3, 4]),
        _ => panic!(),
    }
    // The other item and the earlier clone are untouched.
    assert_eq!(c.get(1), Some(image(2, 2)));
    assert_eq!(snapshot.get(0), Some(img));

    // A list value, a 2-D selection and a scalar broadcast.
    let index = Value::List(vec![Value::Int(0), s(1, 3), slice(Some(2), None, None)]);
    c.patch(&[(index, Value::List(vec![ints(&[1, 2]), ints(&[3, 4])]))])
        .unwrap();
    let v = array_f64(&c.get(0).unwrap());
    assert_eq!((v[6], v[7], v[10], v[11]), (1.0, 2.0, 3.0, 4.0));
    let index = Value::List(vec![Value::Int(1), slice(None, None, None), Value::Int(0)]);
    c.patch(&[(index, Value::Float(-1.0))]).unwrap();
    assert_eq!(array_f64(&c.get(1).unwrap()), vec![-1.0, 1.0, -1.0, 3.0]);

    // Applied in order after a replacement of the same item in the same batch.
    let mut d = col(&Value::List(vec![image(2, 2)]));
    d.patch(&[
        (Value::Int(0), image(1, 3)),
        (
            Value::List(vec![Value::Int(0), Value::Int(0), Value::Int(2)]),
            Value::Int(9),
        ),
    ])
    .unwrap();
    assert_eq!(array_f64(&d.get(0).unwrap()), vec![0.0, 1.0, 9.0]);

    // A 1-D item and an item with a list body.
    let body = Value::Array(Box::new(ArrayValue {
        form: ArrayForm::Nd,
        dtype: DType::Object,
        shape: vec![3],
        data: ArrayData::List(vec![Value::Str("a".into()), Value::Null, Value::Int(1)]),
    }));
    let mut e = col(&Value::List(vec![body, f64_array(&[1.0, 2.0])]));
    e.patch(&[
        (
            Value::List(vec![Value::Int(0), Value::Int(1)]),
            Value::Str("b".into()),
        ),
        (
            Value::List(vec![Value::Int(1), Value::Int(0)]),
            Value::Int(5),
        ),
    ])
    .unwrap();
    match e.get(0) {
        Some(Value::Array(a)) => assert_eq!(
            a.data,
            ArrayData::List(vec![
                Value::Str("a".into()),
                Value::Str("b".into()),
                Value::Int(1)
            ])
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(array_f64(&e.get(1).unwrap()), vec![5.0, 2.0]);
}

#[test]
fn patch_errors_leave_the_column_unchanged() {
    let mut c = col(&floats(&[1.0, 2.0, 3.0, 4.0, 5.0]));

    let err = assert_refused(&mut c, |c| {
        c.patch(&[(Value::Int(0), Value::Str("x".into()))])
    });
    assert_eq!(
        err.to_string(),
        "type mismatch: cannot put a string into float64 column"
    );
    // Bokeh's off-by-one index == len is refused.
    let err = assert_refused(&mut c, |c| c.patch(&[(Value::Int(5), Value::Int(1))]));
    assert_eq!(
        err.to_string(),
        "patch index 5 out of range for column of length 5"
    );
    let err = assert_refused(&mut c, |c| c.patch(&[(Value::Int(7), Value::Int(1))]));
    assert_eq!(
        err.to_string(),
        "patch index 7 out of range for column of length 5"
    );
    assert_refused(&mut c, |c| c.patch(&[(Value::Int(-1), Value::Int(1))]));

    // Bad slices.
    for bad in [
        s(3, 1),
        slice(Some(-1), Some(2), None),
        slice(Some(0), Some(-2), None),
        slice(Some(0), Some(2), Some(0)),
        slice(Some(0), Some(2), Some(-1)),
    ] {
        let err = assert_refused(&mut c, |c| c.patch(&[(bad.clone(), ints(&[1, 1]))]));
        assert!(matches!(err, ColumnError::BadSlice { .. }), "{err}");
    }
    // Wrong value length, and a scalar for a slice.
    let err = assert_refused(&mut c, |c| c.patch(&[(s(1, 3), ints(&[7]))]));
    assert_eq!(
        err,
        ColumnError::LengthMismatch {
            expected: 2,
            actual: 1
        }
    );
    assert_refused(&mut c, |c| {
        c.patch(&[(s(1, 3), f64_array(&[1.0, 2.0, 3.0]))])
    });
    assert_refused(&mut c, |c| c.patch(&[(s(1, 3), Value::Int(7))]));
    // Bad index forms.
    assert_refused(&mut c, |c| {
        c.patch(&[(Value::Str("0".into()), Value::Int(1))])
    });
    assert_refused(&mut c, |c| c.patch(&[(Value::Float(1.0), Value::Int(1))]));
    // A multi-index on a column whose items are not arrays.
    let err = assert_refused(&mut c, |c| {
        c.patch(&[(
            Value::List(vec![Value::Int(0), Value::Int(0)]),
            Value::Int(1),
        )])
    });
    assert!(
        matches!(err, ColumnError::NotAnArray { index: 0, .. }),
        "{err}"
    );
    // An earlier valid patch in the same batch is not kept.
    assert_refused(&mut c, |c| {
        c.patch(&[
            (Value::Int(0), Value::Int(10)),
            (s(0, 2), ints(&[1, 2])),
            (Value::Int(9), Value::Int(1)),
        ])
    });
    assert_refused(&mut c, |c| {
        c.patch(&[
            (Value::Int(0), Value::Null),
            (Value::Int(1), Value::Str("x".into())),
        ])
    });

    // Binary columns.
    let mut b = col(&i32_array(&[1, 2, 3]));
    assert_refused(&mut b, |c| c.patch(&[(Value::Int(0), Value::Float(0.5))]));
    assert_refused(&mut b, |c| c.patch(&[(Value::Int(0), Value::Null)]));
    assert_refused(&mut b, |c| {
        c.patch(&[(Value::Int(0), Value::Int(1)), (s(1, 3), strs(&["a", "b"]))])
    });

    // Empty columns have no valid index.
    let mut e = Column::new();
    assert_refused(&mut e, |c| c.patch(&[(Value::Int(0), Value::Int(1))]));
}

#[test]
fn multi_index_errors_leave_the_column_unchanged() {
    let mut c = col(&Value::List(vec![image(3, 4), ints(&[1, 2])]));
    let mi = |parts: Vec<Value>| Value::List(parts);

    // The item is not an ndarray.
    let err = assert_refused(&mut c, |c| {
        c.patch(&[(mi(vec![Value::Int(1), Value::Int(0)]), Value::Int(1))])
    });
    assert_eq!(
        err.to_string(),
        "multi-index patch needs an ndarray item, but item 1 is a list"
    );
    // Wrong number of sub-indices.
    let err = assert_refused(&mut c, |c| {
        c.patch(&[(mi(vec![Value::Int(0), Value::Int(0)]), Value::Int(1))])
    });
    assert_eq!(
        err,
        ColumnError::DimensionMismatch {
            index: 0,
            given: 1,
            ndim: 2
        }
    );
    // Too few parts, a non-integer first part, an out-of-range item.
    assert_refused(&mut c, |c| {
        c.patch(&[(mi(vec![Value::Int(0)]), Value::Int(1))])
    });
    assert_refused(&mut c, |c| {
        c.patch(&[(
            mi(vec![s(0, 1), Value::Int(0), Value::Int(0)]),
            Value::Int(1),
        )])
    });
    assert_refused(&mut c, |c| {
        c.patch(&[(
            mi(vec![Value::Int(2), Value::Int(0), Value::Int(0)]),
            Value::Int(1),
        )])
    });
    // Sub-index out of range, negative, or of the wrong type; bad sub-slice.
    let err = assert_refused(&mut c, |c| {
        c.patch(&[(
            mi(vec![Value::Int(0), Value::Int(3), Value::Int(0)]),
            Value::Int(1),
        )])
    });
    assert_eq!(
        err,
        ColumnError::SubIndexOutOfRange {
            index: 3,
            dim: 0,
            len: 3
        }
    );
    assert_refused(&mut c, |c| {
        c.patch(&[(
            mi(vec![Value::Int(0), Value::Int(-1), Value::Int(0)]),
            Value::Int(1),
        )])
    });
    assert_refused(&mut c, |c| {
        c.patch(&[(
            mi(vec![Value::Int(0), Value::Str("a".into()), Value::Int(0)]),
            Value::Int(1),
        )])
    });
    assert_refused(&mut c, |c| {
        c.patch(&[(mi(vec![Value::Int(0), s(2, 1), Value::Int(0)]), ints(&[]))])
    });
    // Wrong value length for the selection.
    let err = assert_refused(&mut c, |c| {
        c.patch(&[(
            mi(vec![Value::Int(0), s(0, 2), Value::Int(1)]),
            ints(&[1, 2, 3]),
        )])
    });
    assert_eq!(
        err,
        ColumnError::LengthMismatch {
            expected: 2,
            actual: 3
        }
    );
    // A value the item's dtype cannot hold.
    let err = assert_refused(&mut c, |c| {
        c.patch(&[(
            mi(vec![Value::Int(0), Value::Int(0), Value::Int(0)]),
            Value::Str("x".into()),
        )])
    });
    assert_eq!(
        err.to_string(),
        "type mismatch: cannot put a string into float64 ndarray item 0"
    );
    // A valid multi-index followed by a bad one: nothing is applied.
    assert_refused(&mut c, |c| {
        c.patch(&[
            (
                mi(vec![Value::Int(0), Value::Int(0), Value::Int(0)]),
                Value::Int(5),
            ),
            (
                mi(vec![Value::Int(0), Value::Int(9), Value::Int(0)]),
                Value::Int(5),
            ),
        ])
    });

    let mut u = col(&Value::List(vec![array(
        ArrayForm::Nd,
        DType::U8,
        vec![2],
        Bytes::from_static(&[1, 2]),
    )]));
    assert_refused(&mut u, |c| {
        c.patch(&[(mi(vec![Value::Int(0), Value::Int(0)]), Value::Int(256))])
    });
}

#[test]
fn get_f64_reads_numbers() {
    assert_eq!(col(&ints(&[3])).get_f64(0), Some(3.0));
    assert_eq!(col(&floats(&[2.5])).get_f64(0), Some(2.5));
    assert_eq!(col(&bools(&[true])).get_f64(0), Some(1.0));
    assert_eq!(col(&strs(&["a"])).get_f64(0), None);
    assert_eq!(col(&f64_array(&[4.5])).get_f64(0), Some(4.5));
    assert_eq!(col(&f64_array(&[4.5])).get_f64(1), None);
}

// ---------------------------------------------------------------------------------------
// Property tests against a Vec model
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Stream `n` items starting at `base`; `as_array` sends a binary array.
    Stream {
        n: usize,
        base: i64,
        rollover: Option<usize>,
        as_array: bool,
    },
    /// `col[a % len] = v`.
    Set { a: usize, v: i64 },
    /// `col[start:stop:step] = [v, v+1, ...]`, bounds derived from `len`.
    Slice {
        a: usize,
        b: usize,
        step: usize,
        v: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0usize..12,
            -1000i64..1000,
            proptest::option::of(0usize..20),
            any::<bool>()
        )
            .prop_map(|(n, base, rollover, as_array)| Op::Stream {
                n,
                base,
                rollover,
                as_array
            }),
        (any::<usize>(), -1000i64..1000).prop_map(|(a, v)| Op::Set { a, v }),
        (any::<usize>(), any::<usize>(), 1usize..4, -1000i64..1000)
            .prop_map(|(a, b, step, v)| Op::Slice { a, b, step, v }),
    ]
}

/// Applies `op` to a model `Vec<i64>`, returning the operation for the column.
enum ColOp {
    Stream(Vec<i64>, Option<usize>, bool),
    Patch(Vec<(Value, Value)>),
    Nothing,
}

fn apply_model(model: &mut Vec<i64>, op: &Op) -> ColOp {
    match *op {
        Op::Stream {
            n,
            base,
            rollover,
            as_array,
        } => {
            let items: Vec<i64> = (0..n as i64).map(|j| base + j).collect();
            model.extend(&items);
            if let Some(r) = rollover {
                if model.len() > r {
                    model.drain(..model.len() - r);
                }
            }
            ColOp::Stream(items, rollover, as_array)
        }
        Op::Set { a, v } => {
            if model.is_empty() {
                return ColOp::Nothing;
            }
            let i = a % model.len();
            model[i] = v;
            ColOp::Patch(vec![(Value::Int(i as i64), Value::Int(v))])
        }
        Op::Slice { a, b, step, v } => {
            let len = model.len();
            let start = a % (len + 1);
            let stop = start + b % (len + 1 - start + 2); // may exceed len: clamped
            let positions: Vec<usize> = (start..stop.min(len)).step_by(step).collect();
            let values: Vec<i64> = (0..positions.len() as i64).map(|j| v + j).collect();
            for (p, x) in positions.iter().zip(&values) {
                model[*p] = *x;
            }
            ColOp::Patch(vec![(
                slice(Some(start as i64), Some(stop as i64), Some(step as i64)),
                ints(&values),
            )])
        }
    }
}

fn run_ops(mut c: Column, mut model: Vec<i64>, ops: &[Op], expect: impl Fn(&[i64]) -> Value) {
    for op in ops {
        match apply_model(&mut model, op) {
            ColOp::Stream(items, rollover, as_array) => {
                let v = if as_array {
                    let f: Vec<f64> = items.iter().map(|x| *x as f64).collect();
                    f64_array(&f)
                } else {
                    ints(&items)
                };
                c.stream(&v, rollover).unwrap();
            }
            ColOp::Patch(p) => c.patch(&p).unwrap(),
            ColOp::Nothing => {}
        }
        assert_eq!(c.len(), model.len());
        assert_eq!(c.to_value(), expect(&model));
        let round = Column::from_value(&c.to_value()).unwrap();
        assert_eq!(round.to_value(), c.to_value());
        if !c.is_empty() {
            assert_eq!(round, c);
        }
        for (i, x) in model.iter().enumerate() {
            assert_eq!(c.get_f64(i), Some(*x as f64));
        }
        assert_eq!(c.get(model.len()), None);
    }
}

proptest! {
    #[test]
    fn float_list_column_matches_vec_model(
        init in proptest::collection::vec(-1000i64..1000, 1..10),
        ops in proptest::collection::vec(op(), 0..40),
    ) {
        let f: Vec<f64> = init.iter().map(|x| *x as f64).collect();
        let c = Column::from_value(&floats(&f)).unwrap();
        run_ops(c, init, &ops, |m| {
            floats(&m.iter().map(|x| *x as f64).collect::<Vec<_>>())
        });
    }

    #[test]
    fn binary_f64_column_matches_vec_model(
        init in proptest::collection::vec(-1000i64..1000, 0..10),
        ops in proptest::collection::vec(op(), 0..40),
    ) {
        let f: Vec<f64> = init.iter().map(|x| *x as f64).collect();
        let c = Column::from_value(&f64_array(&f)).unwrap();
        run_ops(c, init, &ops, |m| {
            f64_array(&m.iter().map(|x| *x as f64).collect::<Vec<_>>())
        });
    }

    #[test]
    fn int_column_matches_vec_model(
        init in proptest::collection::vec(-1000i64..1000, 1..10),
        ops in proptest::collection::vec(op(), 0..40),
    ) {
        // Streams as lists only, so the column stays Int.
        let ops: Vec<Op> = ops
            .into_iter()
            .map(|o| match o {
                Op::Stream { n, base, rollover, .. } => Op::Stream { n, base, rollover, as_array: false },
                other => other,
            })
            .collect();
        let c = Column::from_value(&ints(&init)).unwrap();
        run_ops(c, init, &ops, ints);
    }

    #[test]
    fn errors_never_change_the_column(
        init in proptest::collection::vec(-1000i64..1000, 0..10),
        idx in -3i64..15,
        start in proptest::option::of(-2i64..15),
        stop in proptest::option::of(-2i64..15),
        step in proptest::option::of(-1i64..3),
        n in 0usize..6,
    ) {
        let f: Vec<f64> = init.iter().map(|x| *x as f64).collect();
        for mut c in [
            Column::from_value(&f64_array(&f)).unwrap(),
            Column::from_value(&ints(&init)).unwrap(),
        ] {
            let before = c.clone();
            let patches = vec![
                (Value::Int(idx), Value::Int(1)),
                (slice(start, stop, step), ints(&vec![2; n])),
            ];
            if c.patch(&patches).is_err() {
                prop_assert_eq!(&c, &before);
            }
            if c.kind() != ColumnKind::Empty {
                let before = c.clone();
                prop_assert!(c.stream(&strs(&["x"]), Some(0)).is_err());
                prop_assert_eq!(&c, &before);
            }
        }
    }
}

#[test]
fn slice_patch_with_an_object_array_of_images() {
    let mut c = col(&Value::List(vec![image(2, 2), image(2, 2), image(2, 2)]));
    let value = Value::Array(Box::new(ArrayValue {
        form: ArrayForm::Nd,
        dtype: DType::Object,
        shape: vec![2],
        data: ArrayData::List(vec![image(1, 3), image(3, 1)]),
    }));
    c.patch(&[(s(1, 3), value)]).unwrap();
    assert_eq!(
        c.to_value(),
        Value::List(vec![image(2, 2), image(1, 3), image(3, 1)])
    );
}

#[test]
fn compaction_joins_binary_chunks_once_and_then_shares_them() {
    let mut c = Column::from_value(&f64_array(&[1.0, 2.0])).unwrap();
    c.stream(&f64_array(&[3.0]), None).unwrap();
    c.stream(&f64_array(&[4.0, 5.0]), Some(4)).unwrap();
    assert_eq!(c.chunk_count(), 3);
    c.compact();
    assert_eq!(c.chunk_count(), 1);
    assert_eq!(array_f64(&c.to_value()), vec![2.0, 3.0, 4.0, 5.0]);
    let ptr = |v: &Value| match v {
        Value::Array(a) => match &a.data {
            ArrayData::Binary(b) => b.as_ptr(),
            ArrayData::List(_) => panic!("list body"),
        },
        _ => panic!("not an array"),
    };
    assert_eq!(
        ptr(&c.to_value()),
        ptr(&c.to_value()),
        "reads after compaction share one buffer"
    );
    c.stream(&f64_array(&[6.0]), Some(4)).unwrap();
    assert_eq!(array_f64(&c.to_value()), vec![3.0, 4.0, 5.0, 6.0]);
}

// ---------------------------------------------------------------------------------------
// Row-range slices
// ---------------------------------------------------------------------------------------

#[test]
fn slices_cover_a_row_range_across_chunks_and_rollover() {
    use plotwire_document::column::ColumnSlice;
    let mut c = Column::from_value(&ints(&[0, 1, 2])).unwrap();
    c.stream(&ints(&[3, 4]), None).unwrap();
    c.stream(&ints(&[5, 6, 7]), Some(7)).unwrap();
    // Items 1..=7 remain, in chunks [1, 2], [3, 4], [5, 6, 7].
    let collect = |r: std::ops::Range<usize>| -> Vec<Vec<i64>> {
        c.slices(r)
            .into_iter()
            .map(|s| match s {
                ColumnSlice::Int(v) => v.to_vec(),
                other => panic!("not an int slice: {other:?}"),
            })
            .collect()
    };
    assert_eq!(collect(0..7), vec![vec![1, 2], vec![3, 4], vec![5, 6, 7]]);
    assert_eq!(collect(1..5), vec![vec![2], vec![3, 4], vec![5]]);
    assert_eq!(collect(2..4), vec![vec![3, 4]]);
    assert_eq!(collect(6..100), vec![vec![7]]);
    assert!(collect(7..9).is_empty());
    assert!(collect(3..3).is_empty());

    let mut b = Column::from_value(&Value::Array(Box::new(ArrayValue {
        form: ArrayForm::Nd,
        dtype: DType::F64,
        shape: vec![3],
        data: ArrayData::Binary(f64_bytes(&[1.0, 2.0, 3.0])),
    })))
    .unwrap();
    b.keep_last(2);
    assert_eq!(
        b.slices(1..2),
        vec![ColumnSlice::Binary {
            dtype: DType::F64,
            bytes: &3.0f64.to_le_bytes()
        }]
    );
    assert!(Column::new().slices(0..10).is_empty());
}
