//! Read-back JSON: a row range of a source's columns as `{"col": [...], ...}`, the way
//! pollers (and BokehJS `AjaxDataSource`, which parses plain JSON) can use it. NaN is
//! written as `null`, ±infinity as `1e999`/`-1e999` (which JSON parsers read back as
//! infinities).

use std::fmt::Write;
use std::ops::Range;

use plotwire_document::model::ColumnSet;
use plotwire_protocol::Value;

/// Appends the rows `rows` of every column of `cols` to `out` as one JSON object.
pub fn encode_columns_json(out: &mut String, cols: &ColumnSet, rows: Range<usize>) {
    out.push('{');
    for (i, name) in cols.names().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::String(name.to_owned()).to_string());
        out.push_str(":[");
        if let Some(col) = cols.get(name) {
            for (j, row) in rows.clone().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                match col.get(row) {
                    Some(v) => write_value(out, &v),
                    None => out.push_str("null"),
                }
            }
        }
        out.push(']');
    }
    out.push('}');
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => write_float(out, *f),
        Value::Str(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
        other => out.push_str(&crate::owner::value_json(other)),
    }
}

/// A float as JSON: shortest round-trip digits, NaN as `null`, infinities as `±1e999`.
pub fn write_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("null");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "1e999" } else { "-1e999" });
    } else if f == f.trunc() && f.abs() < 1e16 {
        let _ = write!(out, "{f:.1}");
    } else {
        let _ = write!(out, "{f:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_floats() {
        let mut s = String::new();
        for f in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            1.5,
            3.0,
            1e300,
        ] {
            write_float(&mut s, f);
            s.push(' ');
        }
        assert_eq!(s, "null 1e999 -1e999 -0.0 1.5 3.0 1e300 ");
    }
}
