//! How the document is written to the wire: the whole of it as DocJson (a
//! PULL-DOC-REPLY, a snapshot), and models in full where a message first refers to them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use plotwire_protocol::codec::{EncodableModel, Encoder, ModelLookup};
use plotwire_protocol::{Id, BOKEH_VERSION};

use super::Document;
use crate::model::{Model, DATA_ATTR};

impl Document {
    /// Writes the full document as DocJson (PULL-DOC-REPLY, spec §6.1): every model in
    /// full at its first occurrence, depth first.
    pub fn encode_doc_json(&self, enc: &mut Encoder<'_>) {
        enc.raw("{\"version\":");
        enc.string(BOKEH_VERSION);
        enc.raw(",\"title\":");
        enc.string(&self.title);
        enc.raw(",\"config\":");
        enc.reference(&self.config);
        enc.raw(",\"roots\":[");
        for (i, r) in self.roots.iter().enumerate() {
            if i > 0 {
                enc.raw(",");
            }
            enc.reference(r);
        }
        enc.raw("]");
        if let Some(cb) = &self.callbacks {
            enc.raw(",\"callbacks\":");
            enc.value(cb);
        }
        if let Some(defs) = &self.defs {
            enc.raw(",\"defs\":");
            enc.value(defs);
        }
        enc.raw("}");
    }

    /// The model `id` as the encoder writes it in full (its columns as `data`).
    pub fn encodable(&self, id: &str) -> Option<EncodableModel<'_>> {
        self.models.get(id).map(|m| encodable(m))
    }
}

/// A model as the encoder writes it in full, with its columns as `data`.
fn encodable(m: &Model) -> EncodableModel<'_> {
    EncodableModel {
        name: &m.name,
        attributes: m
            .attributes
            .iter()
            .map(|(k, v)| match (&m.columns, k.as_str()) {
                (Some(cols), DATA_ATTR) => (k.as_str(), Cow::Owned(cols.to_value())),
                _ => (k.as_str(), Cow::Borrowed(v)),
            })
            .collect(),
    }
}

/// Expands every model of the document: for PULL-DOC-REPLY.
pub struct AllModels<'a>(pub &'a Document);

impl ModelLookup for AllModels<'_> {
    fn full_model(&self, id: &str) -> Option<EncodableModel<'_>> {
        self.0.encodable(id)
    }
}

/// Expands only the models a batch added, as they were when they joined
/// ([`Applied::new_models`]): for relayed PATCH-DOCs, so that every recipient receives
/// in full the models it has never seen, even ones the batch dropped again.
pub struct NewModels<'a>(pub &'a HashMap<Id, Arc<Model>>);

impl ModelLookup for NewModels<'_> {
    fn full_model(&self, id: &str) -> Option<EncodableModel<'_>> {
        self.0.get(id).map(|m| encodable(m))
    }
}
