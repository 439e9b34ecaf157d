//! Message content as parsed JSON, before its Bokeh meaning is decoded: the tree that
//! [`decode`](super::decode) walks.
//!
//! It replaces `serde_json::Value` on the protocol path because most of a large message
//! is long lists of numbers (streamed and replaced columns), and a generic tree spends
//! a node per number. [`Raw`] parses such a list straight into a `Vec<f64>` while every
//! element is a float literal, or a `Vec<i64>` while every element is an integer, and
//! falls back to a list of nodes at the first element that breaks the run. Numbers keep
//! the distinction serde_json's `Value` gives them: an integer literal that fits an `i64`
//! is [`Raw::Int`], any other number is [`Raw::Float`], parsed by the same deserializer
//! (so with the workspace's `float_roundtrip`, bit for bit).
//!
//! Depth: the visitor recurses once per JSON nesting level, which serde_json caps at 128.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

/// One parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer literal that fits an `i64`.
    Int(i64),
    /// An integer literal above `i64::MAX` that fits a `u64` (a number, like
    /// [`Raw::Float`], to the decoder, but still a valid length or rollover).
    UInt(u64),
    /// Any other number.
    Float(f64),
    /// A string.
    Str(String),
    /// A list that is not (only) numbers of one kind, including the empty list.
    List(Vec<Raw>),
    /// A non-empty list of [`Raw::Float`]s only.
    Floats(Vec<f64>),
    /// A non-empty list of [`Raw::Int`]s only.
    Ints(Vec<i64>),
    /// An object: keys in first-seen order, a repeated key keeping its last value (as
    /// serde_json's `preserve_order` map does).
    Object(Vec<(String, Raw)>),
}

impl Raw {
    /// The items of a list of any form, or `Err(self)` when this is not a list.
    pub(crate) fn into_list(self) -> Result<Vec<Raw>, Raw> {
        match self {
            Raw::List(items) => Ok(items),
            Raw::Floats(v) => Ok(v.into_iter().map(Raw::Float).collect()),
            Raw::Ints(v) => Ok(v.into_iter().map(Raw::Int).collect()),
            other => Err(other),
        }
    }

    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Raw::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Takes the value of `key` out of `fields`, leaving `null` in its place.
pub(crate) fn take(fields: &mut [(String, Raw)], key: &str) -> Option<Raw> {
    fields
        .iter_mut()
        .find(|(k, _)| k == key)
        .map(|(_, v)| std::mem::replace(v, Raw::Null))
}

/// The value of `key` in `fields`.
pub(crate) fn get<'a>(fields: &'a [(String, Raw)], key: &str) -> Option<&'a Raw> {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

impl From<&Json> for Raw {
    fn from(json: &Json) -> Raw {
        match json {
            Json::Null => Raw::Null,
            Json::Bool(b) => Raw::Bool(*b),
            Json::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Raw::Int(i),
                (None, Some(u)) => Raw::UInt(u),
                (None, None) => Raw::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => Raw::Str(s.clone()),
            Json::Array(items) => Raw::List(items.iter().map(Raw::from).collect()),
            Json::Object(obj) => {
                Raw::Object(obj.iter().map(|(k, v)| (k.clone(), Raw::from(v))).collect())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: Error>(self, b: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(b))
    }

    fn visit_i64<E: Error>(self, i: i64) -> Result<Raw, E> {
        Ok(Raw::Int(i))
    }

    fn visit_u64<E: Error>(self, u: u64) -> Result<Raw, E> {
        Ok(i64::try_from(u).map_or(Raw::UInt(u), Raw::Int))
    }

    fn visit_f64<E: Error>(self, x: f64) -> Result<Raw, E> {
        Ok(Raw::Float(x))
    }

    fn visit_str<E: Error>(self, s: &str) -> Result<Raw, E> {
        Ok(Raw::Str(s.to_owned()))
    }

    fn visit_string<E: Error>(self, s: String) -> Result<Raw, E> {
        Ok(Raw::Str(s))
    }

    fn visit_unit<E: Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        match seq.next_element::<Raw>()? {
            None => Ok(Raw::List(Vec::new())),
            Some(Raw::Float(x)) => typed_run(seq, x, float_of, Raw::Float, Raw::Floats),
            Some(Raw::Int(i)) => typed_run(seq, i, int_of, Raw::Int, Raw::Ints),
            Some(first) => rest_of_list(seq, vec![first]),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut fields = Vec::new();
        while let Some(entry) = map.next_entry::<String, Raw>()? {
            fields.push(entry);
        }
        Ok(Raw::Object(merge_repeated_keys(fields)))
    }
}

fn float_of(r: Raw) -> Result<f64, Raw> {
    match r {
        Raw::Float(x) => Ok(x),
        other => Err(other),
    }
}

fn int_of(r: Raw) -> Result<i64, Raw> {
    match r {
        Raw::Int(i) => Ok(i),
        other => Err(other),
    }
}

/// Reads a list whose first element was `first`, keeping it typed (`done`) while `pick`
/// accepts every element; at the first one it refuses, the run so far becomes nodes
/// (`node`) and the rest is read as a generic list.
fn typed_run<'de, A: SeqAccess<'de>, T>(
    mut seq: A,
    first: T,
    pick: fn(Raw) -> Result<T, Raw>,
    node: fn(T) -> Raw,
    done: fn(Vec<T>) -> Raw,
) -> Result<Raw, A::Error> {
    let mut run = vec![first];
    while let Some(item) = seq.next_element::<Raw>()? {
        match pick(item) {
            Ok(x) => run.push(x),
            Err(other) => {
                let mut items: Vec<Raw> = Vec::with_capacity(run.len() + 1);
                items.extend(run.into_iter().map(node));
                items.push(other);
                return rest_of_list(seq, items);
            }
        }
    }
    Ok(done(run))
}

/// Reads the remaining elements of a list into `items`.
fn rest_of_list<'de, A: SeqAccess<'de>>(mut seq: A, mut items: Vec<Raw>) -> Result<Raw, A::Error> {
    while let Some(item) = seq.next_element::<Raw>()? {
        items.push(item);
    }
    Ok(Raw::List(items))
}

/// Merges repeated keys the way serde_json's `preserve_order` map does: the first
/// occurrence keeps its place and takes the last value. Linear in the number of keys.
fn merge_repeated_keys(fields: Vec<(String, Raw)>) -> Vec<(String, Raw)> {
    let mut seen = HashSet::with_capacity(fields.len());
    if fields.iter().all(|(k, _)| seen.insert(k.as_str())) {
        return fields;
    }
    let mut position: HashMap<String, usize> = HashMap::with_capacity(fields.len());
    let mut out: Vec<(String, Raw)> = Vec::with_capacity(fields.len());
    for (k, v) in fields {
        match position.get(&k) {
            Some(&i) => {
                if let Some(slot) = out.get_mut(i) {
                    slot.1 = v;
                }
            }
            None => {
                position.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Raw {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn number_lists_stay_typed_until_a_mismatch() {
        assert_eq!(
            parse("[1.5,-0.0,1e300]"),
            Raw::Floats(vec![1.5, -0.0, 1e300])
        );
        assert_eq!(parse("[1,-2,3]"), Raw::Ints(vec![1, -2, 3]));
        assert_eq!(parse("[]"), Raw::List(vec![]));
        assert_eq!(
            parse("[1,2.5]"),
            Raw::List(vec![Raw::Int(1), Raw::Float(2.5)])
        );
        assert_eq!(
            parse("[2.5,1,null]"),
            Raw::List(vec![Raw::Float(2.5), Raw::Int(1), Raw::Null])
        );
        assert_eq!(
            parse("[1.5,18446744073709551615]"),
            Raw::List(vec![Raw::Float(1.5), Raw::UInt(u64::MAX)])
        );
    }

    #[test]
    fn numbers_match_serde_json_values_bit_for_bit() {
        let text = "[0.1,0.30000000000000004,2.2250738585072014e-308,5e-324,1.7976931348623157e308,123456789.12345678,-0,9223372036854775807,-9223372036854775808,9223372036854775808,1.0,1e2]";
        let json: Json = serde_json::from_str(text).unwrap();
        let via_json = Raw::from(&json).into_list().unwrap();
        let direct = parse(text).into_list().unwrap();
        assert_eq!(via_json.len(), direct.len());
        for (a, b) in via_json.iter().zip(&direct) {
            match (a, b) {
                (Raw::Float(x), Raw::Float(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                (Raw::Int(x), Raw::Int(y)) => assert_eq!(x, y),
                (Raw::UInt(x), Raw::UInt(y)) => assert_eq!(x, y),
                _ => panic!("{a:?} vs {b:?}"),
            }
        }
    }

    #[test]
    fn repeated_keys_keep_the_first_place_and_the_last_value() {
        let text = r#"{"a":1,"b":2,"a":3}"#;
        assert_eq!(
            parse(text),
            Raw::from(&serde_json::from_str::<Json>(text).unwrap())
        );
        assert_eq!(
            parse(text),
            Raw::Object(vec![("a".into(), Raw::Int(3)), ("b".into(), Raw::Int(2))])
        );
    }

    #[test]
    fn nesting_past_serde_jsons_limit_is_an_error() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(serde_json::from_str::<Raw>(&deep).is_err());
    }
}
