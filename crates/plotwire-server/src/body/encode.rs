//! Reading back (docs/rest-api.md, "Reading back"): a row range of a source's columns
//! as `{"x":[...],...}`. NaN is written as `null`, ±infinity as `1e999`/`-1e999`, floats
//! in their shortest round-trip form (always with a `.` or an exponent), integers as
//! integers.

use std::ops::Range;

use plotwire_document::column::{Column, ColumnSlice};
use plotwire_protocol::value::{ArrayData, DType, Value};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes rows `rows` (clamped to each column's length) of `columns` as one JSON object
/// of column name to list, in the given order.
///
/// `Any` columns are written as plain JSON: lists, sets and list-bodied arrays as lists,
/// dicts as objects, binary ndarrays as lists nested by their shape, and values with no
/// plain JSON form (model references, bytes, ...) as `null`.
pub fn encode_columns_json(out: &mut Vec<u8>, columns: &[(&str, &Column)], rows: Range<usize>) {
    out.push(b'{');
    for (i, (name, column)) in columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.extend_from_slice(b":[");
        let mut first = true;
        for slice in column.slices(rows.clone()) {
            write_slice(out, slice, &mut first);
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// Writes a run of items, each preceded by a comma unless it is the first.
fn write_slice(out: &mut Vec<u8>, slice: ColumnSlice<'_>, first: &mut bool) {
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(first) {
            out.push(b',');
        }
    };
    match slice {
        ColumnSlice::Float(v) => v.iter().for_each(|x| {
            sep(out);
            write_f64(out, *x);
        }),
        ColumnSlice::Int(v) => {
            let mut buf = itoa::Buffer::new();
            v.iter().for_each(|x| {
                sep(out);
                out.extend_from_slice(buf.format(*x).as_bytes());
            })
        }
        ColumnSlice::Bool(v) => v.iter().for_each(|b| {
            sep(out);
            write_bool(out, *b);
        }),
        ColumnSlice::Str(v) => v.iter().for_each(|s| {
            sep(out);
            write_str(out, s);
        }),
        ColumnSlice::Binary { dtype, bytes } => {
            let size = dtype.size().max(1);
            for e in bytes.chunks_exact(size) {
                sep(out);
                write_elem(out, dtype, e);
            }
        }
        ColumnSlice::Any(v) => v.iter().for_each(|x| {
            sep(out);
            write_value(out, x);
        }),
    }
}

/// A float: NaN as `null`, ±infinity as `±1e999`, else the shortest round-trip form.
fn write_f64(out: &mut Vec<u8>, x: f64) {
    if x.is_nan() {
        out.extend_from_slice(b"null");
    } else if x.is_infinite() {
        out.extend_from_slice(if x > 0.0 { b"1e999" } else { b"-1e999" });
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
    }
}

/// A float32 element, in the shortest form that reads back as the same float32.
fn write_f32(out: &mut Vec<u8>, x: f32) {
    if x.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
    } else {
        write_f64(out, f64::from(x));
    }
}

fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// One little-endian binary element.
fn write_elem(out: &mut Vec<u8>, dtype: DType, e: &[u8]) {
    match dtype {
        DType::F32 => match <[u8; 4]>::try_from(e) {
            Ok(b) => write_f32(out, f32::from_le_bytes(b)),
            Err(_) => out.extend_from_slice(b"null"),
        },
        DType::F64 => write_f64(out, dtype.read_f64(e, 0).unwrap_or(f64::NAN)),
        DType::Bool => write_bool(out, e.first().is_some_and(|b| *b != 0)),
        _ => match dtype.read_f64(e, 0) {
            Some(x) => out.extend_from_slice(itoa::Buffer::new().format(x as i64).as_bytes()),
            None => out.extend_from_slice(b"null"),
        },
    }
}

/// A JSON string, escaped.
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// A nested container being written.
enum Frame<'a> {
    List(std::slice::Iter<'a, Value>),
    Dict(std::slice::Iter<'a, (String, Value)>),
}

/// An item of an `Any` column as plain JSON, with an explicit stack (no recursion).
fn write_value(out: &mut Vec<u8>, v: &Value) {
    let mut stack: Vec<(Frame<'_>, bool)> = Vec::new();
    let mut next = Some(v);
    loop {
        if let Some(v) = next.take() {
            match v {
                Value::Null => out.extend_from_slice(b"null"),
                Value::Bool(b) => write_bool(out, *b),
                Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
                Value::Float(x) => write_f64(out, *x),
                Value::Str(s) => write_str(out, s),
                Value::List(items) | Value::Set(items) => {
                    out.push(b'[');
                    stack.push((Frame::List(items.iter()), true));
                }
                Value::Dict(entries) => {
                    out.push(b'{');
                    stack.push((Frame::Dict(entries.iter()), true));
                }
                Value::Array(a) => match &a.data {
                    ArrayData::List(items) => {
                        out.push(b'[');
                        stack.push((Frame::List(items.iter()), true));
                    }
                    ArrayData::Binary(bytes) => write_ndarray(out, a.dtype, &a.shape, bytes),
                },
                _ => out.extend_from_slice(b"null"),
            }
        }
        let Some((frame, first)) = stack.last_mut() else {
            return;
        };
        let sep = !std::mem::take(first);
        match frame {
            Frame::List(items) => match items.next() {
                Some(item) => {
                    if sep {
                        out.push(b',');
                    }
                    next = Some(item);
                }
                None => {
                    out.push(b']');
                    stack.pop();
                }
            },
            Frame::Dict(entries) => match entries.next() {
                Some((k, item)) => {
                    if sep {
                        out.push(b',');
                    }
                    write_str(out, k);
                    out.push(b':');
                    next = Some(item);
                }
                None => {
                    out.push(b'}');
                    stack.pop();
                }
            },
        }
    }
}

/// A binary ndarray as lists nested by its shape (row-major).
fn write_ndarray(out: &mut Vec<u8>, dtype: DType, shape: &[usize], bytes: &[u8]) {
    let inner = shape.len().saturating_sub(1);
    // Elements per block at each inner level, outermost first.
    let blocks: Vec<usize> = (1..shape.len())
        .map(|j| shape.get(j..).unwrap_or_default().iter().product())
        .collect();
    out.push(b'[');
    let size = dtype.size().max(1);
    let mut any = false;
    for (e, elem) in bytes.chunks_exact(size).enumerate() {
        if e == 0 {
            out.extend(std::iter::repeat_n(b'[', inner));
        } else {
            let m = blocks.iter().filter(|&&b| b > 0 && e % b == 0).count();
            out.extend(std::iter::repeat_n(b']', m));
            out.push(b',');
            out.extend(std::iter::repeat_n(b'[', m));
        }
        write_elem(out, dtype, elem);
        any = true;
    }
    if any {
        out.extend(std::iter::repeat_n(b']', inner));
    }
    out.push(b']');
}
