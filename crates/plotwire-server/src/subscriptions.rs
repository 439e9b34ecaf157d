//! The UI events a published document's viewers report. BokehJS sends a UI event only
//! when its model subscribed to it (`subscribed_events`, a set), and `json_item` keeps
//! subscriptions only where Python's `on_event` was used. So the server subscribes the
//! plots and widgets of every published document to what producers may want to hear.

use plotwire_document::Document;
use plotwire_protocol::event::DocumentEvent;
use plotwire_protocol::Value;

/// The events each kind of model is subscribed to, by Bokeh type name.
fn events_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "Figure" | "Plot" | "GMap" | "GMapPlot" => &plotwire_spec::PLOT_EVENTS,
        "Button" | "Toggle" | "RadioButtonGroup" | "CheckboxButtonGroup" => {
            &plotwire_spec::BUTTON_EVENTS
        }
        "Dropdown" => &["button_click", "menu_item_click"],
        "TextInput" => &["value_submit"],
        _ => &[],
    }
}

/// Adds the subscriptions of [`events_of`] to every model of `doc`, keeping the ones
/// it has. Returns how many models changed.
pub fn subscribe_ui_events(doc: &mut Document) -> usize {
    let mut events = Vec::new();
    for (id, model) in doc.models() {
        let wanted = events_of(&model.name);
        if wanted.is_empty() {
            continue;
        }
        let mut names: Vec<Value> = match model.attribute("subscribed_events") {
            Some(Value::Set(items)) | Some(Value::List(items)) => items,
            _ => Vec::new(),
        };
        let before = names.len();
        for w in wanted {
            if !names.iter().any(|n| matches!(n, Value::Str(s) if s == w)) {
                names.push(Value::Str((*w).to_owned()));
            }
        }
        if names.len() != before {
            events.push(DocumentEvent::ModelChanged {
                model: id.clone(),
                attr: "subscribed_events".into(),
                new: Value::Set(names),
            });
        }
    }
    let changed = events.len();
    if doc.apply(events).is_err() {
        // Plain strings in a set on existing models cannot fail to apply.
        return 0;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotwire_protocol::codec::Buffers;

    #[test]
    fn plots_and_buttons_are_subscribed_and_keep_their_own() {
        let json = serde_json::json!({"roots": [
            {"type": "object", "name": "Button", "id": "b", "attributes": {}},
            {"type": "object", "name": "Figure", "id": "f", "attributes": {
                "subscribed_events": {"type": "set", "entries": ["mousemove"]}}},
            {"type": "object", "name": "Div", "id": "d", "attributes": {}},
        ]});
        let doc = plotwire_protocol::event::decode_doc(&json, &Buffers::new()).unwrap();
        let mut doc = Document::from_doc_json(doc).unwrap();
        assert_eq!(subscribe_ui_events(&mut doc), 2);
        let set = |id: &str| match doc.model(id).and_then(|m| m.attribute("subscribed_events")) {
            Some(Value::Set(items)) => items,
            other => panic!("{other:?}"),
        };
        assert_eq!(set("b"), vec![Value::Str("button_click".into())]);
        let f = set("f");
        assert_eq!(f[0], Value::Str("mousemove".into()));
        assert!(f.contains(&Value::Str("rangesupdate".into())));
        assert!(doc
            .model("d")
            .and_then(|m| m.attribute("subscribed_events"))
            .is_none());
        assert_eq!(subscribe_ui_events(&mut doc), 0, "already subscribed");
    }
}
