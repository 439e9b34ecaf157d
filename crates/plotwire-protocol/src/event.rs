//! Document events (spec §7) and the DocJson envelope (spec §6.1): decoding from
//! message content and encoding through an [`Encoder`].

use serde_json::Value as Json;

use crate::codec::{decode_items, decode_raw, take, Buffers, CodecError, Encoder, Raw};
use crate::value::{Id, Value};

/// One document change, the single vocabulary that every input is turned into.
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentEvent {
    /// A property of a model was set. `new` may carry full reps of new models.
    ModelChanged {
        /// The changed model.
        model: Id,
        /// The property name.
        attr: String,
        /// The new value.
        new: Value,
    },
    /// A column data source's `data` was replaced (`cols: None`) or some of its columns
    /// were assigned (`cols: Some`).
    ColumnDataChanged {
        /// The source.
        model: Id,
        /// The property (always `data`).
        attr: String,
        /// The assigned columns.
        data: Vec<(String, Value)>,
        /// Which columns were assigned, or `None` for all.
        cols: Option<Vec<String>>,
    },
    /// Items appended to columns, optionally keeping only the last `rollover`.
    ColumnsStreamed {
        /// The source.
        model: Id,
        /// The property (always `data`).
        attr: String,
        /// New items per column.
        data: Vec<(String, Value)>,
        /// Keep at most this many items per column.
        rollover: Option<usize>,
    },
    /// Items replaced inside columns.
    ColumnsPatched {
        /// The source.
        model: Id,
        /// The property (always `data`).
        attr: String,
        /// Per column, `(index, value)` pairs.
        patches: Vec<(String, Vec<(Value, Value)>)>,
    },
    /// A root was added; `model` is a full rep or a reference.
    RootAdded {
        /// The root.
        model: Value,
    },
    /// A root was removed.
    RootRemoved {
        /// The root's id.
        model: Id,
    },
    /// The document title changed.
    TitleChanged {
        /// The new title.
        title: String,
    },
    /// A message for callbacks (UI events such as `button_click`); never stored.
    MessageSent {
        /// The message type, `bokeh_event` in practice.
        msg_type: String,
        /// The decoded payload.
        msg_data: Value,
    },
}

impl DocumentEvent {
    /// The Bokeh `kind` name of this event.
    pub fn kind(&self) -> &'static str {
        match self {
            DocumentEvent::ModelChanged { .. } => "ModelChanged",
            DocumentEvent::ColumnDataChanged { .. } => "ColumnDataChanged",
            DocumentEvent::ColumnsStreamed { .. } => "ColumnsStreamed",
            DocumentEvent::ColumnsPatched { .. } => "ColumnsPatched",
            DocumentEvent::RootAdded { .. } => "RootAdded",
            DocumentEvent::RootRemoved { .. } => "RootRemoved",
            DocumentEvent::TitleChanged { .. } => "TitleChanged",
            DocumentEvent::MessageSent { .. } => "MessageSent",
        }
    }
}

fn bad(kind: &'static str, problem: impl Into<String>) -> CodecError {
    CodecError::Malformed {
        tag: kind,
        problem: problem.into(),
    }
}

/// The fields of an event object, taken out one by one.
struct Fields {
    kind: &'static str,
    fields: Vec<(String, Raw)>,
}

impl Fields {
    fn opt(&mut self, key: &str) -> Option<Raw> {
        take(&mut self.fields, key)
    }

    fn field(&mut self, key: &str) -> Result<Raw, CodecError> {
        self.opt(key)
            .ok_or_else(|| bad(self.kind, format!("missing field {key:?}")))
    }

    fn string(&mut self, key: &str) -> Result<String, CodecError> {
        match self.field(key)? {
            Raw::Str(s) => Ok(s),
            _ => Err(bad(self.kind, format!("{key} must be a string"))),
        }
    }

    fn model_ref(&mut self) -> Result<Id, CodecError> {
        match self.field("model")? {
            Raw::Object(mut r) => match take(&mut r, "id") {
                Some(Raw::Str(id)) => Ok(id),
                _ => Err(bad(self.kind, "model must be a reference {\"id\": ...}")),
            },
            _ => Err(bad(self.kind, "model must be a reference {\"id\": ...}")),
        }
    }

    fn value(&mut self, key: &str, buffers: &Buffers) -> Result<Value, CodecError> {
        decode_raw(self.field(key)?, buffers)
    }

    /// Decodes a column map (`{"type":"map"}` or a plain object) into `(name, value)`
    /// pairs.
    fn column_map(
        &mut self,
        key: &str,
        buffers: &Buffers,
    ) -> Result<Vec<(String, Value)>, CodecError> {
        match self.value(key, buffers)? {
            Value::Map(entries) => entries
                .into_iter()
                .map(|(k, v)| match k {
                    Value::Str(k) => Ok((k, v)),
                    _ => Err(bad(self.kind, "column names must be strings")),
                })
                .collect(),
            Value::Dict(fields) => Ok(fields),
            _ => Err(bad(self.kind, "data must be a map of columns")),
        }
    }
}

/// Decodes one event object.
pub fn decode_event(json: &Json, buffers: &Buffers) -> Result<DocumentEvent, CodecError> {
    decode_raw_event(Raw::from(json), buffers)
}

fn decode_raw_event(raw: Raw, buffers: &Buffers) -> Result<DocumentEvent, CodecError> {
    let Raw::Object(fields) = raw else {
        return Err(bad("event", "an event must be an object"));
    };
    let mut obj = Fields {
        kind: "event",
        fields,
    };
    obj.kind = match obj.opt("kind") {
        Some(Raw::Str(k)) => match k.as_str() {
            "ModelChanged" => "ModelChanged",
            "ColumnDataChanged" => "ColumnDataChanged",
            "ColumnsStreamed" => "ColumnsStreamed",
            "ColumnsPatched" => "ColumnsPatched",
            "RootAdded" => "RootAdded",
            "RootRemoved" => "RootRemoved",
            "TitleChanged" => "TitleChanged",
            "MessageSent" => "MessageSent",
            other => return Err(bad("event", format!("unknown event kind {other:?}"))),
        },
        _ => return Err(bad("event", "missing kind")),
    };
    Ok(match obj.kind {
        "ModelChanged" => DocumentEvent::ModelChanged {
            model: obj.model_ref()?,
            attr: obj.string("attr")?,
            new: obj.value("new", buffers)?,
        },
        "ColumnDataChanged" => DocumentEvent::ColumnDataChanged {
            model: obj.model_ref()?,
            attr: obj.string("attr")?,
            data: obj.column_map("data", buffers)?,
            cols: match obj.opt("cols") {
                None | Some(Raw::Null) => None,
                Some(cols @ Raw::List(_)) => Some(
                    cols.into_list()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| match c {
                            Raw::Str(c) => Ok(c),
                            _ => Err(bad("ColumnDataChanged", "cols must list strings")),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Some(Raw::Floats(_) | Raw::Ints(_)) => {
                    return Err(bad("ColumnDataChanged", "cols must list strings"))
                }
                Some(_) => return Err(bad("ColumnDataChanged", "cols must be a list or null")),
            },
        },
        "ColumnsStreamed" => DocumentEvent::ColumnsStreamed {
            model: obj.model_ref()?,
            attr: obj.string("attr")?,
            data: obj.column_map("data", buffers)?,
            rollover: match obj.opt("rollover") {
                None | Some(Raw::Null) => None,
                Some(Raw::Int(r)) => Some(usize::try_from(r).map_err(|_| {
                    bad("ColumnsStreamed", "rollover must be a non-negative integer")
                })?),
                Some(Raw::UInt(r)) => Some(usize::try_from(r).map_err(|_| {
                    bad("ColumnsStreamed", "rollover must be a non-negative integer")
                })?),
                Some(Raw::Float(_)) => {
                    return Err(bad(
                        "ColumnsStreamed",
                        "rollover must be a non-negative integer",
                    ))
                }
                Some(_) => {
                    return Err(bad(
                        "ColumnsStreamed",
                        "rollover must be an integer or null",
                    ))
                }
            },
        },
        "ColumnsPatched" => {
            let raw = obj.column_map("patches", buffers)?;
            let mut patches = Vec::with_capacity(raw.len());
            for (col, list) in raw {
                let Value::List(items) = list else {
                    return Err(bad(
                        "ColumnsPatched",
                        format!("patches for {col:?} must be a list"),
                    ));
                };
                let mut pairs = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::List(mut pair) if pair.len() == 2 => {
                            let value = pair.pop().unwrap_or(Value::Null);
                            let index = pair.pop().unwrap_or(Value::Null);
                            pairs.push((index, value));
                        }
                        _ => {
                            return Err(bad(
                                "ColumnsPatched",
                                format!("each patch for {col:?} must be an [index, value] pair"),
                            ))
                        }
                    }
                }
                patches.push((col, pairs));
            }
            DocumentEvent::ColumnsPatched {
                model: obj.model_ref()?,
                attr: obj.string("attr")?,
                patches,
            }
        }
        "RootAdded" => DocumentEvent::RootAdded {
            model: obj.value("model", buffers)?,
        },
        "RootRemoved" => DocumentEvent::RootRemoved {
            model: obj.model_ref()?,
        },
        "TitleChanged" => DocumentEvent::TitleChanged {
            title: obj.string("title")?,
        },
        _ => DocumentEvent::MessageSent {
            msg_type: obj.string("msg_type")?,
            msg_data: decode_raw(obj.opt("msg_data").unwrap_or(Raw::Null), buffers)?,
        },
    })
}

/// Decodes the content of a PATCH-DOC message: `{"events": [...]}`.
pub fn decode_patch(content: &[u8], buffers: &Buffers) -> Result<Vec<DocumentEvent>, CodecError> {
    let raw: Raw = serde_json::from_slice(content)?;
    let events = match raw {
        Raw::Object(mut obj) => take(&mut obj, "events").map(Raw::into_list),
        _ => None,
    };
    match events {
        Some(Ok(events)) => events
            .into_iter()
            .map(|e| decode_raw_event(e, buffers))
            .collect(),
        _ => Err(bad("PATCH-DOC", "content must be {\"events\": [...]}")),
    }
}

/// Writes one event as Bokeh JSON.
pub fn encode_event(enc: &mut Encoder<'_>, event: &DocumentEvent) {
    enc.raw("{\"kind\":");
    enc.string(event.kind());
    match event {
        DocumentEvent::ModelChanged { model, attr, new } => {
            model_field(enc, model);
            enc.raw(",\"attr\":");
            enc.string(attr);
            enc.raw(",\"new\":");
            enc.value(new);
        }
        DocumentEvent::ColumnDataChanged {
            model,
            attr,
            data,
            cols,
        } => {
            model_field(enc, model);
            enc.raw(",\"attr\":");
            enc.string(attr);
            enc.raw(",\"data\":");
            columns(enc, data);
            enc.raw(",\"cols\":");
            match cols {
                None => enc.raw("null"),
                Some(cols) => {
                    enc.raw("[");
                    for (i, c) in cols.iter().enumerate() {
                        if i > 0 {
                            enc.raw(",");
                        }
                        enc.string(c);
                    }
                    enc.raw("]");
                }
            }
        }
        DocumentEvent::ColumnsStreamed {
            model,
            attr,
            data,
            rollover,
        } => {
            model_field(enc, model);
            enc.raw(",\"attr\":");
            enc.string(attr);
            enc.raw(",\"data\":");
            columns(enc, data);
            enc.raw(",\"rollover\":");
            match rollover {
                Some(r) => enc.int(i64::try_from(*r).unwrap_or(i64::MAX)),
                None => enc.raw("null"),
            }
        }
        DocumentEvent::ColumnsPatched {
            model,
            attr,
            patches,
        } => {
            model_field(enc, model);
            enc.raw(",\"attr\":");
            enc.string(attr);
            enc.raw(",\"patches\":{\"type\":\"map\",\"entries\":[");
            for (i, (col, pairs)) in patches.iter().enumerate() {
                if i > 0 {
                    enc.raw(",");
                }
                enc.raw("[");
                enc.string(col);
                enc.raw(",[");
                for (j, (index, value)) in pairs.iter().enumerate() {
                    if j > 0 {
                        enc.raw(",");
                    }
                    enc.raw("[");
                    enc.value(index);
                    enc.raw(",");
                    enc.value(value);
                    enc.raw("]");
                }
                enc.raw("]]");
            }
            enc.raw("]}");
        }
        DocumentEvent::RootAdded { model } => {
            enc.raw(",\"model\":");
            enc.value(model);
        }
        DocumentEvent::RootRemoved { model } => model_field(enc, model),
        DocumentEvent::TitleChanged { title } => {
            enc.raw(",\"title\":");
            enc.string(title);
        }
        DocumentEvent::MessageSent { msg_type, msg_data } => {
            enc.raw(",\"msg_type\":");
            enc.string(msg_type);
            enc.raw(",\"msg_data\":");
            enc.value(msg_data);
        }
    }
    enc.raw("}");
}

fn model_field(enc: &mut Encoder<'_>, id: &str) {
    enc.raw(",\"model\":{\"id\":");
    enc.string(id);
    enc.raw("}");
}

fn columns(enc: &mut Encoder<'_>, data: &[(String, Value)]) {
    enc.raw("{\"type\":\"map\"");
    if !data.is_empty() {
        enc.raw(",\"entries\":[");
        for (i, (k, v)) in data.iter().enumerate() {
            if i > 0 {
                enc.raw(",");
            }
            enc.raw("[");
            enc.string(k);
            enc.raw(",");
            enc.value(v);
            enc.raw("]");
        }
        enc.raw("]");
    }
    enc.raw("}");
}

/// Writes the content of a PATCH-DOC message carrying `events`.
pub fn encode_patch(enc: &mut Encoder<'_>, events: &[DocumentEvent]) {
    enc.raw("{\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            enc.raw(",");
        }
        encode_event(enc, e);
    }
    enc.raw("]}");
}

/// A decoded DocJson (spec §6.1).
#[derive(Debug, Clone, PartialEq)]
pub struct DocJson {
    /// The Bokeh version string the sender wrote.
    pub version: Option<String>,
    /// The document title.
    pub title: Option<String>,
    /// The `DocumentConfig` model, if sent.
    pub config: Option<Value>,
    /// The roots, usually full model reps.
    pub roots: Vec<Value>,
    /// Document-level JS callbacks (`{"type":"map"}`), kept verbatim.
    pub callbacks: Option<Value>,
    /// The definitions of the data models (Python `DataModel` subclasses) the document
    /// uses, kept verbatim: BokehJS registers them before it builds the models, and a
    /// model of a type it does not know fails the whole page.
    pub defs: Option<Value>,
}

/// Decodes the content of a PUSH-DOC or PULL-DOC-REPLY message: `{"doc": DocJson}`.
pub fn decode_doc_message(content: &[u8], buffers: &Buffers) -> Result<DocJson, CodecError> {
    let raw: Raw = serde_json::from_slice(content)?;
    match raw {
        Raw::Object(mut obj) => match take(&mut obj, "doc") {
            Some(doc @ Raw::Object(_)) => decode_raw_doc(doc, buffers),
            _ => Err(bad("PUSH-DOC", "content must be {\"doc\": {...}}")),
        },
        _ => Err(bad("PUSH-DOC", "content must be {\"doc\": {...}}")),
    }
}

/// Decodes a DocJson object (`{"version","title","config","roots",...}`), as PUSH-DOC
/// carries it and as `Document.to_json()` and `json_item` write it.
pub fn decode_doc(doc: &Json, buffers: &Buffers) -> Result<DocJson, CodecError> {
    decode_raw_doc(Raw::from(doc), buffers)
}

fn decode_raw_doc(doc: Raw, buffers: &Buffers) -> Result<DocJson, CodecError> {
    let Raw::Object(mut doc) = doc else {
        return Err(bad("doc", "a document must be a JSON object"));
    };
    let roots = match take(&mut doc, "roots").map(|r| decode_items(r, buffers)) {
        Some(roots) => roots?.ok_or_else(|| bad("doc", "doc.roots must be a list"))?,
        None => return Err(bad("doc", "doc.roots must be a list")),
    };
    let version = match take(&mut doc, "version") {
        Some(Raw::Str(v)) => Some(v),
        _ => None,
    };
    let title = match take(&mut doc, "title") {
        None | Some(Raw::Null) => None,
        Some(Raw::Str(t)) => Some(t),
        Some(_) => return Err(bad("doc", "doc.title must be a string")),
    };
    let mut opt = |key: &str| -> Result<Option<Value>, CodecError> {
        match take(&mut doc, key) {
            None | Some(Raw::Null) => Ok(None),
            Some(v) => Ok(Some(decode_raw(v, buffers)?)),
        }
    };
    Ok(DocJson {
        version,
        title,
        config: opt("config")?,
        roots,
        callbacks: opt("callbacks")?,
        defs: opt("defs")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::NoExpansion;

    #[test]
    fn events_roundtrip() {
        let content = br#"{"events":[
            {"kind":"ModelChanged","model":{"id":"p1012"},"attr":"start","new":-0.2},
            {"kind":"ColumnsStreamed","model":{"id":"p1008"},"attr":"data","data":{"type":"map","entries":[["x",[5,6]]]},"rollover":8},
            {"kind":"ColumnsPatched","model":{"id":"p1008"},"attr":"data","patches":{"type":"map","entries":[["y",[[0,42],[{"type":"slice","start":1,"stop":3,"step":null},[7,7]]]]]}},
            {"kind":"ColumnDataChanged","model":{"id":"p1008"},"attr":"data","data":{"type":"map","entries":[["y",[1]]]},"cols":["y"]},
            {"kind":"RootRemoved","model":{"id":"p1067"}},
            {"kind":"TitleChanged","title":"t"},
            {"kind":"MessageSent","msg_type":"bokeh_event","msg_data":{"type":"event","name":"document_ready","values":{"type":"map"}}}
        ]}"#;
        let events = decode_patch(content, &Buffers::new()).unwrap();
        assert_eq!(events.len(), 7);
        let mut enc = Encoder::new(&NoExpansion);
        encode_patch(&mut enc, &events);
        let (out, _) = enc.finish();
        assert_eq!(decode_patch(&out, &Buffers::new()).unwrap(), events);
    }

    #[test]
    fn missing_rollover_is_none_and_bad_events_are_errors() {
        let content = br#"{"events":[{"kind":"ColumnsStreamed","model":{"id":"a"},"attr":"data","data":{"type":"map"}}]}"#;
        let events = decode_patch(content, &Buffers::new()).unwrap();
        assert!(matches!(
            &events[0],
            DocumentEvent::ColumnsStreamed { rollover: None, .. }
        ));
        for bad in [
            &br#"{"events":[{"kind":"Nope"}]}"#[..],
            br#"{"events":[{"kind":"ModelChanged","attr":"x","new":1}]}"#,
            br#"{"events":{}}"#,
            br#"not json"#,
        ] {
            assert!(decode_patch(bad, &Buffers::new()).is_err());
        }
    }

    #[test]
    fn parsed_content_decodes_as_the_json_tree_does() {
        let content = br#"{"events":[
            {"kind":"ColumnsStreamed","model":{"id":"s"},"attr":"data","data":{"type":"map","entries":[
                ["f",[0.1,-0.0,1e300,2.5e-308]],["i",[1,-2,9223372036854775807]],["m",[1,2.5,null,"x",[1,2]]],
                ["u",[18446744073709551615,1]],["e",[]],["n",{"type":"ndarray","array":[1.5,2.5],"shape":[2],"dtype":"float64"}]]},"rollover":3},
            {"kind":"ModelChanged","model":{"id":"m"},"attr":"a","new":{"type":5,"id":"x"},"attr":"b"},
            {"kind":"ModelChanged","model":{"id":"m"},"attr":"a","new":{"type":"set","entries":[3,1]}},
            {"kind":"ModelChanged","model":{"id":"m"},"attr":"a","new":{"type":"map","entries":[[1,2],[1.5,"y"]]}},
            {"kind":"ModelChanged","model":{"id":"m"},"attr":"a","new":{"id":"only"}},
            {"kind":"ColumnsPatched","model":{"id":"s"},"attr":"data","patches":{"f":[[0,1.5],[{"type":"slice","start":0,"stop":2,"step":1},[1,2]]]}}
        ]}"#;
        let events = decode_patch(content, &Buffers::new()).unwrap();
        let json: Json = serde_json::from_slice(content).unwrap();
        let via_json: Vec<DocumentEvent> = json["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| decode_event(e, &Buffers::new()).unwrap())
            .collect();
        assert_eq!(events, via_json);
        let encode = |events: &[DocumentEvent]| {
            let mut enc = Encoder::new(&NoExpansion);
            encode_patch(&mut enc, events);
            enc.finish().0
        };
        assert_eq!(encode(&events), encode(&via_json));
    }
}
