//! A published document as a Bokeh `json_item` (`docs/bokehjs-views-lod-ajax.md` §6):
//! `{"target_id": null, "root_id", "doc", "version"}` for `Bokeh.embed.embed_item(item, "div")`,
//! of a root or of any one model (a plot of a grid).
//! The `doc` holds exactly one root (BokehJS matches roots to elements by position) and an
//! empty title, as `bokeh.embed.json_item` writes it.

use plotwire_api::live::LiveOptions;
use plotwire_document::Document;
use plotwire_protocol::event::DocumentEvent;
use plotwire_protocol::{Id, Value, BOKEH_VERSION};

use crate::api::Snapshot;
use crate::error::HttpError;
use crate::owner::json_string;

/// The model `root` names (its id, or the `name` of one model), or the first root.
fn pick_root(doc: &Document, root: Option<&str>) -> Result<Id, HttpError> {
    let Some(wanted) = root else {
        return doc
            .roots()
            .first()
            .cloned()
            .ok_or_else(|| HttpError::conflict("the document has no root to embed yet"));
    };
    if doc.model(wanted).is_some() {
        return Ok(wanted.to_owned());
    }
    let mut named: Vec<&Id> = doc.find_named(wanted).collect();
    named.sort();
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(HttpError::not_found(format!(
            "no model of this document has the id or name {wanted:?}"
        ))
        .with_field("root")),
        _ => Err(HttpError::conflict(format!(
            "{} models are named {wanted:?}; give one's id",
            named.len()
        ))
        .with_field("root")),
    }
}

/// The `json_item` of `root` (or the first root) of the snapshot, live as `options` say.
pub fn json_item(
    snapshot: Snapshot,
    root: Option<&str>,
    from: super::ReadFrom<'_>,
    options: &LiveOptions,
) -> Result<String, HttpError> {
    let Snapshot {
        mut doc,
        seq,
        placed_ranges,
    } = snapshot;
    let root_id = pick_root(&doc, root)?;
    // The model becomes the one root; the old roots go, and with them what only they held.
    let mut events = Vec::new();
    if !doc.roots().contains(&root_id) {
        events.push(DocumentEvent::RootAdded {
            model: Value::Ref(root_id.clone()),
        });
    }
    events.extend(
        doc.roots()
            .iter()
            .filter(|r| **r != root_id)
            .map(|r| DocumentEvent::RootRemoved { model: r.clone() }),
    );
    events.push(DocumentEvent::TitleChanged {
        title: String::new(),
    });
    doc.apply(events)
        .map_err(|e| HttpError::bad_request(format!("cannot cut the document to one root: {e}")))?;
    let doc_json = super::live_doc_json(
        &Snapshot {
            doc,
            seq,
            placed_ranges,
        },
        from,
        options,
    );
    Ok(format!(
        "{{\"target_id\":null,\"root_id\":{},\"doc\":{doc_json},\"version\":{}}}",
        json_string(&root_id),
        json_string(BOKEH_VERSION)
    ))
}
