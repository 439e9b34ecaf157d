//! Views of a published document. Everything a viewer changes stays in its view: the
//! change goes into the view's overlay (so that its re-pulls see it), to the view's
//! other connections, and to the producers as an event. It never reaches the shared
//! document or other views. Viewers may not add models or change rows: data comes from
//! producers.

use std::collections::HashMap;
use std::time::Instant;

use base64::Engine;
use plotwire_document::{Applied, Document};
use plotwire_protocol::codec::{Encoder, NoExpansion};
use plotwire_protocol::event::DocumentEvent;
use plotwire_protocol::message::MsgType;
use plotwire_protocol::{Id, Value};

use super::delivery::encode_events;
use super::Owner;
use crate::session::{error_message, simple_message, ConnId};

/// Most properties one view may hold changed; a viewer that changes more gets an ERROR.
pub const MAX_OVERLAY_ENTRIES: usize = 4096;

/// Most views a document keeps; past it, the view idle the longest is forgotten.
pub const MAX_VIEWS: usize = 100_000;

/// One view: its connections and what its browser changed.
#[derive(Debug, Default)]
pub struct View {
    /// Open connections.
    pub conns: usize,
    /// When the last connection left, if none is open.
    pub idle_since: Option<Instant>,
    /// `(model, property) → value` set by this view's browser or for this view only.
    pub overlay: HashMap<(Id, String), Value>,
    /// What its browser shows and holds of downsampled plots.
    pub lod: crate::lod::ViewLod,
}

impl Owner {
    pub(super) fn view_joined(&mut self, view: &str) {
        let fresh = !self.views.contains_key(view);
        if fresh && self.views.len() >= MAX_VIEWS {
            self.forget_idlest_view();
        }
        let v = self.views.entry(view.to_owned()).or_default();
        v.conns += 1;
        v.idle_since = None;
        if fresh {
            self.view_event(view, "\"kind\":\"view\",\"event\":\"open\"");
            self.publish_status();
        }
    }

    pub(super) fn view_left(&mut self, view: &str) {
        if let Some(v) = self.views.get_mut(view) {
            v.conns = v.conns.saturating_sub(1);
            if v.conns == 0 {
                v.idle_since = Some(Instant::now());
            }
        }
    }

    /// Forgets views that have had no connection for longer than the linger time.
    pub(super) fn reap_views(&mut self) {
        let linger = self.settings.view_linger;
        let gone: Vec<String> = self
            .views
            .iter()
            .filter(|(_, v)| v.idle_since.is_some_and(|t| t.elapsed() >= linger))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.views.remove(id);
            self.view_event(id, "\"kind\":\"view\",\"event\":\"close\"");
        }
        if !gone.is_empty() {
            self.publish_status();
        }
    }

    fn forget_idlest_view(&mut self) {
        let idlest = self
            .views
            .iter()
            .filter_map(|(id, v)| v.idle_since.map(|t| (t, id.clone())))
            .min();
        if let Some((_, id)) = idlest {
            self.views.remove(&id);
            self.view_event(&id, "\"kind\":\"view\",\"event\":\"close\"");
        }
    }

    /// Applies a view's overlay to a snapshot of the document. Returns whether there was
    /// anything to apply. Overlay entries that no longer fit the document are skipped.
    pub(super) fn overlay_onto(&self, view: &str, snapshot: &mut Document) -> bool {
        let Some(v) = self.views.get(view) else {
            return false;
        };
        for ((model, attr), value) in &v.overlay {
            let event = DocumentEvent::ModelChanged {
                model: model.clone(),
                attr: attr.clone(),
                new: value.clone(),
            };
            // Checked when it was set; a later publish may have removed the model.
            let _ = snapshot.apply(vec![event]);
        }
        !v.overlay.is_empty()
    }

    /// A PATCH-DOC from a view: all of it is checked first, then kept in the view.
    pub(super) fn view_patch(&mut self, conn: ConnId, msgid: &str, events: Vec<DocumentEvent>) {
        let Some(view) = self.peers.get(&conn).map(|p| p.view.clone()) else {
            return;
        };
        if let Err(why) = self.check_view_events(&view, &events) {
            crate::warn_limited!(session = %self.id, conn, error = %why, "view PATCH-DOC rejected, nothing applied");
            self.send_to(conn, error_message(msgid, &why));
            return;
        }
        self.lod_from_view(&view, &events);
        for e in &events {
            match e {
                DocumentEvent::ModelChanged { model, attr, new } => {
                    if let Some(v) = self.views.get_mut(&view) {
                        v.overlay.insert((model.clone(), attr.clone()), new.clone());
                    }
                    // A selection of a downsampled copy reaches producers as rows of
                    // the full source.
                    let full = match attr.as_str() {
                        "indices" | "line_indices" => self.lod_selection(&view, model, new),
                        _ => None,
                    };
                    let fields = self.change_fields(model, attr, full.as_ref().unwrap_or(new));
                    self.view_event(&view, &fields);
                }
                DocumentEvent::MessageSent { msg_data, .. } => {
                    let fields = self.ui_event_fields(msg_data);
                    self.view_event(&view, &fields);
                }
                _ => {}
            }
        }
        // Bokeh semantics within the view: its other connections see the change.
        let others: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(id, p)| **id != conn && p.view == view)
            .map(|(id, _)| *id)
            .collect();
        let changes: Vec<DocumentEvent> = events
            .into_iter()
            .filter(|e| matches!(e, DocumentEvent::ModelChanged { .. }))
            .collect();
        if !others.is_empty() && !changes.is_empty() {
            let msg = encode_events(&Applied::default(), &changes);
            self.send_each(&others, &msg);
        }
        self.send_to(conn, simple_message(MsgType::Ok, Some(msgid), "{}"));
    }

    fn check_view_events(&self, view: &str, events: &[DocumentEvent]) -> Result<(), String> {
        let overlay = self.views.get(view).map_or(0, |v| v.overlay.len());
        let mut added = 0;
        for e in events {
            match e {
                DocumentEvent::ModelChanged { model, attr, new } => {
                    self.check_view_value(model, new)?;
                    let known = self
                        .views
                        .get(view)
                        .is_some_and(|v| v.overlay.contains_key(&(model.clone(), attr.clone())));
                    if !known {
                        added += 1;
                    }
                    if overlay + added > MAX_OVERLAY_ENTRIES {
                        return Err(format!(
                            "a view may change at most {MAX_OVERLAY_ENTRIES} properties"
                        ));
                    }
                }
                DocumentEvent::MessageSent { .. } => {}
                other => {
                    return Err(format!(
                        "a view of a published document cannot send {}: its data and models come from its producers (REST API)",
                        other.kind()
                    ))
                }
            }
        }
        Ok(())
    }

    fn check_view_value(&self, model: &str, value: &Value) -> Result<(), String> {
        if self.doc.model(model).is_none() {
            return Err(format!("no model {model:?} in this document"));
        }
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            match v {
                Value::Model(_) => {
                    return Err("a view of a published document cannot add models".into())
                }
                Value::Ref(id) if self.doc.model(id).is_none() => {
                    return Err(format!("reference to unknown model {id:?}"))
                }
                Value::List(items) | Value::Set(items) => stack.extend(items.iter()),
                Value::Dict(fields) | Value::Tagged { fields, .. } => {
                    stack.extend(fields.iter().map(|(_, v)| v))
                }
                Value::Map(entries) => {
                    for (k, v) in entries {
                        stack.push(k);
                        stack.push(v);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Appends a viewer event (`fields` without `seq`, `doc` and `view`) to the log.
    pub(super) fn view_event(&mut self, view: &str, fields: &str) {
        let mut head = String::with_capacity(fields.len() + view.len() + self.id.len() + 32);
        head.push_str("\"doc\":");
        head.push_str(&json_string(&self.id));
        head.push_str(",\"view\":");
        head.push_str(&json_string(view));
        head.push(',');
        head.push_str(fields);
        self.events.push(&head);
    }

    /// `{"id","name","type"}` of a model, as events name it.
    pub(super) fn model_info(&self, id: &str) -> String {
        let (name, kind) = match self.doc.model(id) {
            Some(m) => (
                match m.attribute("name") {
                    Some(Value::Str(n)) => json_string(&n),
                    _ => "null".to_owned(),
                },
                json_string(&m.name),
            ),
            None => ("null".to_owned(), "null".to_owned()),
        };
        format!(
            "{{\"id\":{},\"name\":{name},\"type\":{kind}}}",
            json_string(id)
        )
    }

    fn change_fields(&self, model: &str, attr: &str, value: &Value) -> String {
        let mut out = format!(
            "\"kind\":\"change\",\"model\":{},\"attr\":{},\"value\":{}",
            self.model_info(model),
            json_string(attr),
            value_json(value)
        );
        let is_selection = self.doc.model(model).is_some_and(|m| m.name == "Selection");
        if is_selection {
            let source = self.doc.models().find(|(_, m)| {
                m.attributes
                    .iter()
                    .any(|(k, v)| k == "selected" && matches!(v, Value::Ref(r) if r == model))
            });
            if let Some((id, _)) = source {
                out.push_str(",\"source\":");
                out.push_str(&self.model_info(id));
            }
        }
        out
    }

    /// A `bokeh_event` (`{"type":"event","name":N,"values":{...}}`) as an event.
    fn ui_event_fields(&self, msg_data: &Value) -> String {
        let (name, entries) = ui_event_parts(msg_data);
        let mut model = "null".to_owned();
        let mut values = String::from("{");
        for (k, v) in entries {
            if k == "model" {
                if let Value::Ref(id) = v {
                    model = self.model_info(id);
                    continue;
                }
            }
            if values.len() > 1 {
                values.push(',');
            }
            values.push_str(&json_string(&k));
            values.push(':');
            values.push_str(&value_json(v));
        }
        values.push('}');
        format!(
            "\"kind\":\"event\",\"model\":{model},\"event\":{},\"values\":{values}",
            json_string(&name)
        )
    }
}

/// The name of a `bokeh_event` (empty if it has none) and its `values` with string keys.
pub(super) fn ui_event_parts(msg_data: &Value) -> (String, Vec<(String, &Value)>) {
    let fields = match msg_data {
        Value::Tagged { fields, .. } => fields.as_slice(),
        Value::Dict(fields) => fields.as_slice(),
        _ => &[],
    };
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v);
    let name = match get("name") {
        Some(Value::Str(n)) => n.clone(),
        _ => String::new(),
    };
    let entries = match get("values") {
        Some(Value::Map(entries)) => entries
            .iter()
            .filter_map(|(k, v)| match k {
                Value::Str(k) => Some((k.clone(), v)),
                _ => None,
            })
            .collect(),
        Some(Value::Dict(entries)) => entries.iter().map(|(k, v)| (k.clone(), v)).collect(),
        _ => Vec::new(),
    };
    (name, entries)
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// A value as JSON, in Bokeh's encoding (binary data inline as base64).
pub fn value_json(v: &Value) -> String {
    let mut enc = Encoder::new(&NoExpansion);
    enc.inline_bytes(|b| base64::engine::general_purpose::STANDARD.encode(b));
    enc.value(v);
    let (content, _) = enc.finish();
    String::from_utf8_lossy(&content).into_owned()
}
