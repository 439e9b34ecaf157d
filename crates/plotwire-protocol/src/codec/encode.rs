//! Encoding: [`Value`]s to Bokeh content JSON plus binary buffers (spec §6.3, §6.4).
//!
//! JSON text is written directly. Binary data is collected into buffers. Each model is
//! written in full at its first occurrence in the message when the caller's
//! [`ModelLookup`] says it must, which nests every model inside the first one that
//! refers to it. A document's model graph can be far deeper than any JSON it was sent
//! as (30,000 roots that each refer to the next arrive at JSON depth 2), so the writer
//! never recurses: pending work lives on an explicit stack of [`Step`]s on the heap.

use std::borrow::Cow;
use std::collections::HashSet;

use bytes::Bytes;
use serde::Serialize;
use typed_arena::Arena;

use crate::value::{ArrayData, ArrayForm, ArrayValue, Id, ModelRep, Value};

/// A model as the encoder writes it in full: its type name and attributes.
pub struct EncodableModel<'a> {
    /// The qualified type name.
    pub name: &'a str,
    /// The attributes to write, in order.
    pub attributes: Vec<(&'a str, Cow<'a, Value>)>,
}

/// Tells the encoder which referenced models it must write in full.
pub trait ModelLookup {
    /// The model to write in full at the first occurrence of `id` in a message, or `None`
    /// to write a bare reference.
    fn full_model(&self, id: &str) -> Option<EncodableModel<'_>>;
}

/// A lookup that never expands: every reference stays a reference.
pub struct NoExpansion;

impl ModelLookup for NoExpansion {
    fn full_model(&self, _id: &str) -> Option<EncodableModel<'_>> {
        None
    }
}

/// Writes values as Bokeh content JSON, collecting binary data into buffers.
///
/// One encoder builds one message: buffer ids and the "already written in full" set are
/// per message (spec §6.2, §6.4).
pub struct Encoder<'l> {
    out: Vec<u8>,
    buffers: Vec<(String, Bytes)>,
    /// The element size of each of `buffers` (0: plain bytes).
    element_sizes: Vec<usize>,
    written: HashSet<Id>,
    lookup: &'l dyn ModelLookup,
    inline: Option<fn(&[u8]) -> String>,
}

/// Work left to do, innermost last. Containers are written as an opening, then one step
/// that yields their items one at a time, then their closing text.
enum Step<'a> {
    /// Literal JSON text.
    Text(&'static str),
    /// JSON text made at run time (an ndarray's shape and dtype).
    OwnedText(String),
    /// Items of a list or set, comma-separated, then `close`.
    Items {
        items: std::slice::Iter<'a, Value>,
        first: bool,
        close: &'static str,
    },
    /// `"key":value` fields of a dict, a tagged value or a model sent in full.
    Fields {
        fields: std::slice::Iter<'a, (String, Value)>,
        first: bool,
        close: &'static str,
    },
    /// The attributes of a model from the lookup, then the model's closing braces.
    Attributes {
        attributes: std::vec::IntoIter<(&'a str, Cow<'a, Value>)>,
        first: bool,
    },
    /// `[key, value]` entries of a map, then `close`.
    Entries {
        entries: std::slice::Iter<'a, (Value, Value)>,
        first: bool,
        close: &'static str,
    },
    /// One value.
    Value(&'a Value),
}

impl<'l> Encoder<'l> {
    /// A new encoder that expands references through `lookup`.
    pub fn new(lookup: &'l dyn ModelLookup) -> Self {
        Encoder {
            out: Vec::with_capacity(256),
            buffers: Vec::new(),
            element_sizes: Vec::new(),
            written: HashSet::new(),
            lookup,
            inline: None,
        }
    }

    /// Writes binary data inline, as `{"type":"bytes","data":"<to_text(data)>"}`, instead
    /// of as buffers. Both Bokeh decoders take a gzip in standard base64 there.
    pub fn inline_bytes(&mut self, to_text: fn(&[u8]) -> String) {
        self.inline = Some(to_text);
    }

    /// Appends raw JSON text (the caller guarantees it is valid in context).
    pub fn raw(&mut self, json: &str) {
        self.out.extend_from_slice(json.as_bytes());
    }

    /// Appends a JSON string literal.
    pub fn string(&mut self, s: &str) {
        // Writing a &str to a Vec cannot fail.
        let _ = s.serialize(&mut serde_json::Serializer::new(&mut self.out));
    }

    /// Appends a JSON object key followed by `:`.
    pub fn key(&mut self, k: &str) {
        self.string(k);
        self.out.push(b':');
    }

    /// Appends an integer.
    pub fn int(&mut self, i: i64) {
        let _ = i.serialize(&mut serde_json::Serializer::new(&mut self.out));
    }

    /// Appends a float, tagged when it is NaN or infinite.
    pub fn float(&mut self, f: f64) {
        if f.is_finite() {
            let _ = f.serialize(&mut serde_json::Serializer::new(&mut self.out));
        } else {
            let v = if f.is_nan() {
                "nan"
            } else if f > 0.0 {
                "+inf"
            } else {
                "-inf"
            };
            self.raw("{\"type\":\"number\",\"value\":\"");
            self.raw(v);
            self.raw("\"}");
        }
    }

    /// Appends a binary buffer reference and queues the buffer (or, with
    /// [`Encoder::inline_bytes`], the data itself).
    pub fn bytes(&mut self, data: Bytes) {
        self.buffer(data, 0);
    }

    /// [`Encoder::bytes`] for `data` made of `element_size`-byte elements.
    fn buffer(&mut self, data: Bytes, element_size: usize) {
        if let Some(to_text) = self.inline {
            self.raw("{\"type\":\"bytes\",\"data\":\"");
            self.raw(&to_text(&data));
            self.raw("\"}");
            return;
        }
        let id = self.buffers.len().to_string();
        self.raw("{\"type\":\"bytes\",\"data\":{\"id\":");
        self.string(&id);
        self.raw("}}");
        self.buffers.push((id, data));
        self.element_sizes.push(element_size);
    }

    /// The size in bytes of the elements of each buffer queued so far, in order: the
    /// dtype's for an array's data, 0 for plain bytes. (The store delta-encodes numeric
    /// columns by it.)
    pub fn element_sizes(&self) -> &[usize] {
        &self.element_sizes
    }

    /// Appends a reference to `id`, writing the model in full if the lookup asks for it
    /// and this message has not written it yet (and so on for the models it refers to).
    pub fn reference(&mut self, id: &str) {
        let lookup = self.lookup;
        let arena = Arena::new();
        let mut stack = Vec::new();
        self.open_reference(id, lookup, &mut stack);
        self.drain(&mut stack, lookup, &arena);
    }

    /// Appends any value.
    pub fn value(&mut self, v: &Value) {
        let lookup = self.lookup;
        let arena = Arena::new();
        let mut stack = Vec::new();
        self.open(v, lookup, &mut stack);
        self.drain(&mut stack, lookup, &arena);
    }

    /// Appends a typed array or ndarray.
    pub fn array(&mut self, a: &ArrayValue) {
        let lookup = self.lookup;
        let arena = Arena::new();
        let mut stack = Vec::new();
        self.open_array(a, &mut stack);
        self.drain(&mut stack, lookup, &arena);
    }

    /// Finishes the message: the content JSON and its buffers, in reference order.
    pub fn finish(self) -> (Bytes, Vec<(String, Bytes)>) {
        (Bytes::from(self.out), self.buffers)
    }

    /// Runs the pending steps to completion. Owned attribute values that the lookup
    /// makes (a source's columns) are kept in `arena` until the message part is written.
    fn drain<'a>(
        &mut self,
        stack: &mut Vec<Step<'a>>,
        lookup: &'a dyn ModelLookup,
        arena: &'a Arena<Value>,
    ) {
        while let Some(step) = stack.pop() {
            match step {
                Step::Text(t) => self.raw(t),
                Step::OwnedText(t) => self.raw(&t),
                Step::Value(v) => self.open(v, lookup, stack),
                Step::Items {
                    mut items,
                    first,
                    close,
                } => match items.next() {
                    Some(v) => {
                        if !first {
                            self.raw(",");
                        }
                        stack.push(Step::Items {
                            items,
                            first: false,
                            close,
                        });
                        self.open(v, lookup, stack);
                    }
                    None => self.raw(close),
                },
                Step::Fields {
                    mut fields,
                    first,
                    close,
                } => match fields.next() {
                    Some((k, v)) => {
                        if !first {
                            self.raw(",");
                        }
                        self.key(k);
                        stack.push(Step::Fields {
                            fields,
                            first: false,
                            close,
                        });
                        self.open(v, lookup, stack);
                    }
                    None => self.raw(close),
                },
                Step::Attributes {
                    mut attributes,
                    first,
                } => match attributes.next() {
                    Some((k, v)) => {
                        if !first {
                            self.raw(",");
                        }
                        self.key(k);
                        stack.push(Step::Attributes {
                            attributes,
                            first: false,
                        });
                        let v: &'a Value = match v {
                            Cow::Borrowed(v) => v,
                            Cow::Owned(v) => arena.alloc(v),
                        };
                        self.open(v, lookup, stack);
                    }
                    None => self.raw("}}"),
                },
                Step::Entries {
                    mut entries,
                    first,
                    close,
                } => match entries.next() {
                    Some((k, v)) => {
                        if !first {
                            self.raw(",");
                        }
                        self.raw("[");
                        stack.push(Step::Entries {
                            entries,
                            first: false,
                            close,
                        });
                        stack.push(Step::Text("]"));
                        stack.push(Step::Value(v));
                        stack.push(Step::Text(","));
                        self.open(k, lookup, stack);
                    }
                    None => self.raw(close),
                },
            }
        }
    }

    /// Writes a scalar at once, or the opening of a container with its remaining work
    /// pushed on `stack`.
    fn open<'a>(&mut self, v: &'a Value, lookup: &'a dyn ModelLookup, stack: &mut Vec<Step<'a>>) {
        match v {
            Value::Null => self.raw("null"),
            Value::Bool(true) => self.raw("true"),
            Value::Bool(false) => self.raw("false"),
            Value::Int(i) => self.int(*i),
            Value::Float(f) => self.float(*f),
            Value::Str(s) => self.string(s),
            Value::Bytes(b) => self.bytes(b.clone()),
            Value::Slice(s) => {
                self.raw("{\"type\":\"slice\",\"start\":");
                self.opt_int(s.start);
                self.raw(",\"stop\":");
                self.opt_int(s.stop);
                self.raw(",\"step\":");
                self.opt_int(s.step);
                self.raw("}");
            }
            Value::List(items) => {
                self.raw("[");
                stack.push(Step::Items {
                    items: items.iter(),
                    first: true,
                    close: "]",
                });
            }
            Value::Dict(fields) => {
                self.raw("{");
                stack.push(Step::Fields {
                    fields: fields.iter(),
                    first: true,
                    close: "}",
                });
            }
            Value::Map(entries) => {
                self.raw("{\"type\":\"map\"");
                if entries.is_empty() {
                    self.raw("}");
                } else {
                    self.raw(",\"entries\":[");
                    stack.push(Step::Entries {
                        entries: entries.iter(),
                        first: true,
                        close: "]}",
                    });
                }
            }
            Value::Set(items) => {
                self.raw("{\"type\":\"set\"");
                if items.is_empty() {
                    self.raw("}");
                } else {
                    self.raw(",\"entries\":[");
                    stack.push(Step::Items {
                        items: items.iter(),
                        first: true,
                        close: "]}",
                    });
                }
            }
            Value::Array(a) => self.open_array(a, stack),
            Value::Ref(id) => self.open_reference(id, lookup, stack),
            Value::Model(rep) => self.open_model_rep(rep, lookup, stack),
            Value::Tagged { tag, fields } => {
                self.raw("{\"type\":");
                self.string(tag);
                if fields.is_empty() {
                    self.raw("}");
                } else {
                    self.raw(",");
                    stack.push(Step::Fields {
                        fields: fields.iter(),
                        first: true,
                        close: "}",
                    });
                }
            }
        }
    }

    /// A reference: the model in full from the lookup at its first occurrence in this
    /// message, otherwise `{"id": ...}`.
    fn open_reference<'a>(
        &mut self,
        id: &str,
        lookup: &'a dyn ModelLookup,
        stack: &mut Vec<Step<'a>>,
    ) {
        if !self.written.contains(id) {
            if let Some(model) = lookup.full_model(id) {
                self.written.insert(id.to_owned());
                self.model_head(model.name, id);
                if model.attributes.is_empty() {
                    self.raw("}");
                } else {
                    self.raw(",\"attributes\":{");
                    stack.push(Step::Attributes {
                        attributes: model.attributes.into_iter(),
                        first: true,
                    });
                }
                return;
            }
        }
        self.bare_reference(id);
    }

    /// A model rep carried by the value itself, in full the first time this message
    /// meets its id.
    fn open_model_rep<'a>(
        &mut self,
        rep: &'a ModelRep,
        lookup: &'a dyn ModelLookup,
        stack: &mut Vec<Step<'a>>,
    ) {
        if !self.written.insert(rep.id.clone()) {
            self.open_reference(&rep.id, lookup, stack);
            return;
        }
        self.model_head(&rep.name, &rep.id);
        if rep.attributes.is_empty() {
            self.raw("}");
        } else {
            self.raw(",\"attributes\":{");
            stack.push(Step::Fields {
                fields: rep.attributes.iter(),
                first: true,
                close: "}}",
            });
        }
    }

    fn model_head(&mut self, name: &str, id: &str) {
        self.raw("{\"type\":\"object\",\"name\":");
        self.string(name);
        self.raw(",\"id\":");
        self.string(id);
    }

    fn bare_reference(&mut self, id: &str) {
        self.raw("{\"id\":");
        self.string(id);
        self.raw("}");
    }

    fn open_array<'a>(&mut self, a: &'a ArrayValue, stack: &mut Vec<Step<'a>>) {
        match a.form {
            ArrayForm::Typed => self.raw("{\"type\":\"typed_array\",\"array\":"),
            ArrayForm::Nd => self.raw("{\"type\":\"ndarray\",\"array\":"),
        }
        let mut tail = String::new();
        if a.form == ArrayForm::Nd {
            tail.push_str(",\"shape\":[");
            for (i, d) in a.shape.iter().enumerate() {
                if i > 0 {
                    tail.push(',');
                }
                tail.push_str(&d.to_string());
            }
            tail.push(']');
        }
        tail.push_str(",\"dtype\":\"");
        tail.push_str(a.dtype.name());
        tail.push_str("\",\"order\":\"little\"}");
        match &a.data {
            ArrayData::Binary(b) => {
                self.buffer(b.clone(), a.dtype.size());
                self.raw(&tail);
            }
            ArrayData::List(items) => {
                self.raw("[");
                stack.push(Step::OwnedText(tail));
                stack.push(Step::Items {
                    items: items.iter(),
                    first: true,
                    close: "]",
                });
            }
        }
    }

    fn opt_int(&mut self, i: Option<i64>) {
        match i {
            Some(i) => self.int(i),
            None => self.raw("null"),
        }
    }
}
