//! Standalone copies of a published document that stay live (`docs/exports.md`): one
//! HTML file ([`page`]) or a Bokeh `json_item` ([`item`]), holding the document as it is
//! now, with each of its column data sources wired to the read-back endpoint so that the
//! copy keeps growing where it is opened: a blog on another host, a `file://` page.
//!
//! This module makes the live copy of the DocJson: every `ColumnDataSource` is written as
//! - an `AjaxDataSource` (`live = ajax`) in append mode, polling
//!   `.../sources/<id>?since=<cursor>` with a simple `GET` (no CORS preflight) and the
//!   adapter of [`adapter`], which moves the cursor and drops a stale answer;
//! - a `ServerSentDataSource` (`live = sse`) reading `.../sources/<id>` as a stream of
//!   envelopes, which the browser resumes with `Last-Event-ID`;
//! - or itself (`live = none`).
//!
//! The x ranges that level of detail places for each view (`docs/lod.md`) become
//! `DataRange1d`s, which range over the data in the browser, as without level of detail.
//!
//! The cursor starts at the sequence number of the snapshot the data was taken from, so a
//! page gets every later row exactly once. The document itself is not changed: the copy is
//! made by the [`ModelLookup`] the encoder reads models through.

use std::borrow::Cow;
use std::collections::HashMap;

use plotwire_api::live::{Live, LiveOptions};
use plotwire_document::column::ColumnKind;
use plotwire_document::Document;
use plotwire_protocol::codec::{EncodableModel, Encoder, ModelLookup};
use plotwire_protocol::{Id, Value};

use crate::api::Snapshot;
use crate::lod::Placement;

mod adapter;
pub mod item;
pub mod page;

/// The id of the one `CustomJS` adapter that every live source shares.
const ADAPTER_ID: &str = "plotwire-live-adapter";

/// The tag that marks a live source, so that a page can find the ones to look after.
pub const LIVE_TAG: &str = "plotwire-live";

/// Where a live copy reads on from.
#[derive(Debug, Clone, Copy)]
pub struct ReadFrom<'a> {
    /// The document's API URL: `http://host:5006/prefix/api/v1/documents/<name>`.
    pub api_url: &'a str,
    /// The read grant every read carries, for a private document.
    pub grant: Option<&'a str>,
}

/// A published document's DocJson with its sources wired to read on from `from`, as
/// `options` say.
pub fn live_doc_json(snapshot: &Snapshot, from: ReadFrom<'_>, options: &LiveOptions) -> String {
    let mut doc = snapshot.doc.clone();
    doc.compact_columns();
    let copy = LiveCopy::new(&doc, snapshot.seq, &snapshot.placed_ranges, from, options);
    let mut enc = Encoder::new(&copy);
    enc.inline_bytes(crate::owner::gzip_base64);
    doc.encode_doc_json(&mut enc);
    let (content, _) = enc.finish();
    String::from_utf8_lossy(&content).into_owned()
}

/// Bytes a text, list or object item is estimated to take in a copy.
const ITEM_ESTIMATE: usize = 32;

/// An estimate of the bytes of data a copy of `doc` embeds, each source cut to `max_size`
/// rows: binary columns at their dtype's width, numbers at 8 bytes, other items at
/// [`ITEM_ESTIMATE`], all as base64 (4/3). It is checked against `--max-export-bytes`
/// before anything is written.
pub fn embedded_bytes(doc: &Document, max_size: Option<u64>) -> usize {
    let cut = max_size.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut bytes = 0usize;
    for (_, model) in doc.models() {
        let Some(cols) = &model.columns else { continue };
        for name in cols.names() {
            let Some(col) = cols.get(name) else { continue };
            let width = match col.kind() {
                ColumnKind::Binary { dtype, .. } => dtype.size(),
                ColumnKind::Float | ColumnKind::Int => 8,
                ColumnKind::Bool => 1,
                ColumnKind::Empty => 0,
                ColumnKind::Str | ColumnKind::Any => ITEM_ESTIMATE,
            };
            bytes = bytes.saturating_add(col.len().min(cut).saturating_mul(width));
        }
    }
    bytes.saturating_add(bytes / 3)
}

/// Attributes a model gets in the copy.
type Attributes = Vec<(&'static str, Value)>;

/// Reads models from the document, and writes its column data sources as web data sources.
struct LiveCopy<'a> {
    doc: &'a Document,
    /// The type each source is written as, and the attributes it gets.
    sources: HashMap<Id, (&'static str, Attributes)>,
    /// The rows each source keeps, if not all.
    max_size: Option<usize>,
    /// The adapter's code, when the sources have one.
    adapter: Option<String>,
    /// The x ranges that level of detail places for each view, as the `DataRange1d`s
    /// that range over the data in a copy without the server.
    ranges: HashMap<Id, Attributes>,
}

impl<'a> LiveCopy<'a> {
    fn new(
        doc: &'a Document,
        seq: u64,
        placed_ranges: &[(Id, Placement)],
        from: ReadFrom<'_>,
        options: &LiveOptions,
    ) -> LiveCopy<'a> {
        let max_size = options
            .max_size
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let mut copy = LiveCopy {
            doc,
            sources: HashMap::new(),
            max_size,
            adapter: None,
            ranges: HashMap::new(),
        };
        for (id, placement) in placed_ranges {
            let attrs = match *placement {
                Placement::Fixed(..) => continue,
                Placement::Fit { padding } => vec![("range_padding", Value::Float(padding))],
                Placement::Follow(interval) => vec![
                    ("follow", Value::Str("end".to_owned())),
                    ("follow_interval", Value::Float(interval)),
                ],
            };
            copy.ranges.insert(id.clone(), attrs);
        }
        if options.live == Live::None {
            return copy;
        }
        let max_size_value = options.max_size.map_or(Value::Null, |n| {
            Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
        });
        let tags = Value::List(vec![Value::Str(LIVE_TAG.to_owned())]);
        for (id, model) in doc.models() {
            if model.name != "ColumnDataSource" || model.columns.is_none() {
                continue;
            }
            let mut url = format!("{}/sources/{}?since={seq}", from.api_url, path_segment(id));
            if let Some(grant) = from.grant {
                // A grant is URL-safe base64, digits and dots: nothing to escape.
                url.push_str(&format!("&{}={grant}", crate::access::GRANT_PARAM));
            }
            let (kind, mut attrs) = match options.live {
                Live::Sse => (
                    "ServerSentDataSource",
                    vec![(
                        "data_url",
                        Value::Str(format!("{url}&format=envelope&retry={}", options.retry_ms)),
                    )],
                ),
                _ => (
                    "AjaxDataSource",
                    vec![
                        ("data_url", Value::Str(url)),
                        ("method", Value::Str("GET".to_owned())),
                        // Not `application/json`: a text/plain GET needs no CORS preflight.
                        ("content_type", Value::Str("text/plain".to_owned())),
                        (
                            "polling_interval",
                            Value::Int(i64::try_from(options.interval_ms).unwrap_or(i64::MAX)),
                        ),
                    ],
                ),
            };
            attrs.push(("mode", Value::Str("append".to_owned())));
            attrs.push(("max_size", max_size_value.clone()));
            attrs.push(("adapter", Value::Ref(ADAPTER_ID.to_owned())));
            attrs.push(("tags", tags.clone()));
            copy.sources.insert(id.clone(), (kind, attrs));
        }
        if !copy.sources.is_empty() {
            copy.adapter = Some(adapter::code(options.live, options.retry_ms));
        }
        copy
    }
}

impl ModelLookup for LiveCopy<'_> {
    fn full_model(&self, id: &str) -> Option<EncodableModel<'_>> {
        if id == ADAPTER_ID {
            let code = self.adapter.as_ref()?;
            return Some(EncodableModel {
                name: "CustomJS",
                attributes: vec![("code", Cow::Owned(Value::Str(code.clone())))],
            });
        }
        if let Some(attrs) = self.ranges.get(id) {
            return Some(EncodableModel {
                name: "DataRange1d",
                attributes: attrs.iter().map(|(k, v)| (*k, Cow::Borrowed(v))).collect(),
            });
        }
        let mut model = self.doc.encodable(id)?;
        let Some(source) = self.doc.model(id) else {
            return Some(model);
        };
        if let (Some(max), Some(cols)) = (self.max_size, &source.columns) {
            let rows = cols
                .names()
                .next()
                .and_then(|n| cols.get(n))
                .map_or(0, |c| c.len());
            if rows > max {
                let keep: Vec<usize> = (rows - max..rows).collect();
                let data = Value::Map(
                    cols.names()
                        .filter_map(|n| {
                            cols.get(n)
                                .map(|c| (Value::Str(n.to_owned()), c.take(&keep)))
                        })
                        .collect(),
                );
                for (k, v) in &mut model.attributes {
                    if *k == "data" {
                        *v = Cow::Owned(data.clone());
                    }
                }
            }
        }
        if let Some((kind, extra)) = self.sources.get(id) {
            model.name = kind;
            model.attributes.retain(|(k, _)| *k != "tags");
            model
                .attributes
                .extend(extra.iter().map(|(k, v)| (*k, Cow::Borrowed(v))));
        }
        Some(model)
    }
}

/// Percent-encodes a model id for a URL path segment.
fn path_segment(id: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotwire_protocol::codec::Buffers;
    use plotwire_protocol::event::decode_doc;

    fn doc_with_source(rows: usize) -> Document {
        let xs: Vec<String> = (0..rows).map(|i| i.to_string()).collect();
        let json = format!(
            r#"{{"version":"3.9.2","title":"t","roots":[{{"type":"object","name":"Plot","id":"p1","attributes":{{"x_range":{{"type":"object","name":"Range1d","id":"xr","attributes":{{"start":0,"end":1}}}},"renderers":[{{"type":"object","name":"GlyphRenderer","id":"r1","attributes":{{"data_source":{{"type":"object","name":"ColumnDataSource","id":"s 1","attributes":{{"name":"loss","data":{{"type":"map","entries":[["x",[{xs}]]]}}}}}}}}}}]}}}}]}}"#,
            xs = xs.join(",")
        );
        let doc_json =
            decode_doc(&serde_json::from_str(&json).expect("json"), &Buffers::new()).expect("doc");
        Document::from_doc_json(doc_json).expect("document")
    }

    fn copy(rows: usize, options: &LiveOptions) -> serde_json::Value {
        copy_placed(rows, options, Vec::new())
    }

    fn copy_placed(
        rows: usize,
        options: &LiveOptions,
        placed_ranges: Vec<(Id, Placement)>,
    ) -> serde_json::Value {
        let snapshot = Snapshot {
            doc: doc_with_source(rows),
            seq: 42,
            placed_ranges,
        };
        let from = ReadFrom {
            api_url: "http://h:1/api/v1/documents/a/b",
            grant: None,
        };
        let text = live_doc_json(&snapshot, from, options);
        serde_json::from_str(&text).expect("json")
    }

    fn source(doc: &serde_json::Value) -> &serde_json::Value {
        &doc["roots"][0]["attributes"]["renderers"][0]["attributes"]["data_source"]
    }

    #[test]
    fn ajax_sources_poll_the_cursor_after_the_snapshot() {
        let doc = copy(3, &LiveOptions::default());
        let s = source(&doc);
        assert_eq!(s["name"], "AjaxDataSource");
        let a = &s["attributes"];
        assert_eq!(
            a["data_url"],
            "http://h:1/api/v1/documents/a/b/sources/s%201?since=42"
        );
        assert_eq!(a["method"], "GET");
        assert_eq!(a["content_type"], "text/plain");
        assert_eq!(a["polling_interval"], 1000);
        assert_eq!(a["mode"], "append");
        assert_eq!(a["tags"][0], LIVE_TAG);
        assert_eq!(a["name"], "loss");
        assert_eq!(a["adapter"]["name"], "CustomJS");
        assert!(a["adapter"]["attributes"]["code"]
            .as_str()
            .is_some_and(|c| c.contains("searchParams.set(\"since\"")));
        // The embedded sample is the data as it was.
        assert_eq!(a["data"]["entries"][0][1], serde_json::json!([0, 1, 2]));
    }

    #[test]
    fn sse_sources_read_envelopes_and_max_size_cuts_the_sample() {
        let options = LiveOptions {
            live: Live::Sse,
            max_size: Some(2),
            retry_ms: 5000,
            ..LiveOptions::default()
        };
        let doc = copy(5, &options);
        let a = &source(&doc)["attributes"];
        assert_eq!(source(&doc)["name"], "ServerSentDataSource");
        assert_eq!(
            a["data_url"],
            "http://h:1/api/v1/documents/a/b/sources/s%201?since=42&format=envelope&retry=5000"
        );
        assert_eq!(a["max_size"], 2);
        assert!(a.get("polling_interval").is_none());
        assert_eq!(a["data"]["entries"][0][1], serde_json::json!([3, 4]));
    }

    #[test]
    fn ranges_placed_by_level_of_detail_range_over_the_data() {
        let doc = copy(3, &LiveOptions::default());
        assert_eq!(doc["roots"][0]["attributes"]["x_range"]["name"], "Range1d");
        let follow = copy_placed(
            3,
            &LiveOptions::default(),
            vec![("xr".to_owned(), Placement::Follow(10.0))],
        );
        let r = &follow["roots"][0]["attributes"]["x_range"];
        assert_eq!(r["name"], "DataRange1d");
        assert_eq!(r["attributes"]["follow"], "end");
        assert_eq!(r["attributes"]["follow_interval"], 10.0);
        let fixed = copy_placed(
            3,
            &LiveOptions::default(),
            vec![("xr".to_owned(), Placement::Fixed(2.0, 5.0))],
        );
        assert_eq!(
            fixed["roots"][0]["attributes"]["x_range"]["name"],
            "Range1d"
        );
    }

    #[test]
    fn the_estimate_counts_the_rows_a_copy_keeps() {
        let doc = doc_with_source(300);
        // 300 integers at 8 bytes, as base64.
        assert_eq!(embedded_bytes(&doc, None), 3200);
        assert_eq!(embedded_bytes(&doc, Some(30)), 320);
    }

    #[test]
    fn a_static_copy_keeps_its_sources() {
        let options = LiveOptions {
            live: Live::None,
            ..LiveOptions::default()
        };
        let doc = copy(3, &options);
        assert_eq!(source(&doc)["name"], "ColumnDataSource");
        assert!(source(&doc)["attributes"].get("data_url").is_none());
    }
}
