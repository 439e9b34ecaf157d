//! What viewers do, as producers receive it (`GET .../events`): each event has the
//! document's event sequence number, the document and the view it happened in.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// A model an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// The model id.
    pub id: String,
    /// Its `name`, if it has one.
    #[serde(default)]
    pub name: Option<String>,
    /// Its type (`Slider`, `Figure`, ...).
    #[serde(rename = "type")]
    pub type_name: String,
}

/// A source that a selection belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// The source's model id.
    pub id: String,
    /// Its `name`, if it has one.
    #[serde(default)]
    pub name: Option<String>,
}

/// One viewer event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewerEvent {
    /// Its sequence number in the document (the SSE `id:` and the cursor to resume after).
    pub seq: u64,
    /// The document name.
    pub doc: String,
    /// The view it happened in.
    pub view: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What a viewer did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EventKind {
    /// A property the viewer changed: a widget value, a range, a selection, a plot size.
    Change {
        /// The model.
        model: ModelRef,
        /// The property.
        attr: String,
        /// Its new value.
        value: Json,
        /// For `Selection.indices`: the selected source.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<SourceRef>,
    },
    /// A Bokeh UI event: `button_click`, `tap`, `rangesupdate`, ...
    Event {
        /// The model it fired on; none for document events such as `document_ready`.
        model: Option<ModelRef>,
        /// The event name.
        event: String,
        /// Its values (`x`, `y`, `x0`, ...).
        #[serde(default)]
        values: Map<String, Json>,
    },
    /// A view opened or closed.
    View {
        /// `open` or `close`.
        event: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_as_the_server_writes_them() {
        let parse = |s: &str| serde_json::from_str::<ViewerEvent>(s).unwrap();
        let click = parse(
            r#"{"seq":19,"doc":"d","view":"v","kind":"event","model":{"id":"w","name":"reset","type":"Button"},"event":"button_click","values":{}}"#,
        );
        assert!(
            matches!(&click.kind, EventKind::Event { model: Some(m), event, .. } if m.name.as_deref() == Some("reset") && event == "button_click")
        );
        let ready = parse(
            r#"{"seq":14,"doc":"d","view":"v","kind":"event","model":null,"event":"document_ready","values":{}}"#,
        );
        assert!(matches!(&ready.kind, EventKind::Event { model: None, .. }));
        let change = parse(
            r#"{"seq":2,"doc":"d","view":"v","kind":"change","model":{"id":"r","name":null,"type":"DataRange1d"},"attr":"start","value":1.5}"#,
        );
        assert!(matches!(&change.kind, EventKind::Change { attr, .. } if attr == "start"));
        let open = parse(r#"{"seq":1,"doc":"d","view":"v","kind":"view","event":"open"}"#);
        assert!(matches!(&open.kind, EventKind::View { event } if event == "open"));
    }
}
