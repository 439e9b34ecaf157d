//! A small graph of Bokeh models and its serialization as Bokeh 3 model reps.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::error::SpecError;

/// A model in a [`Models`] graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelRef(usize);

/// A property value: plain JSON, a model, or containers that may hold models.
#[derive(Debug, Clone)]
pub enum Val {
    /// Plain JSON with no models inside.
    Json(Value),
    /// A model.
    Model(ModelRef),
    /// A JSON array.
    List(Vec<Val>),
    /// A plain JSON object (e.g. a field spec with a transform).
    Obj(Vec<(&'static str, Val)>),
}

impl From<Value> for Val {
    fn from(v: Value) -> Val {
        Val::Json(v)
    }
}

impl From<ModelRef> for Val {
    fn from(m: ModelRef) -> Val {
        Val::Model(m)
    }
}

/// `{"type":"field","field":name}`.
pub fn field(name: &str) -> Val {
    Val::Json(json!({"type": "field", "field": name}))
}

/// `{"type":"value","value":v}`.
pub fn value(v: impl Into<Value>) -> Val {
    Val::Json(json!({"type": "value", "value": v.into()}))
}

/// `{"type":"set","entries":[...]}`.
pub fn set_of(entries: &[&str]) -> Val {
    Val::Json(json!({"type": "set", "entries": entries}))
}

struct Def {
    id: String,
    name: &'static str,
    attrs: Vec<(&'static str, Val)>,
}

/// Models with their ids, type names and attributes.
#[derive(Default)]
pub struct Models {
    defs: Vec<Def>,
    ids: HashSet<String>,
}

impl Models {
    /// An empty graph.
    pub fn new() -> Models {
        Models::default()
    }

    /// Adds a model of Bokeh type `name`. Ids must be unique: they are derived from the
    /// spec's names, so a repeat means two spec entries collide.
    pub fn add(
        &mut self,
        id: impl Into<String>,
        name: &'static str,
        attrs: Vec<(&'static str, Val)>,
    ) -> Result<ModelRef, SpecError> {
        let id = id.into();
        if !self.ids.insert(id.clone()) {
            return Err(SpecError::invalid(
                "",
                format!("two models would have the id \"{id}\""),
            ));
        }
        self.defs.push(Def { id, name, attrs });
        Ok(ModelRef(self.defs.len() - 1))
    }

    /// The model whose id is `id`.
    pub fn find(&self, id: &str) -> Option<ModelRef> {
        self.defs.iter().position(|d| d.id == id).map(ModelRef)
    }

    /// The id of a model.
    pub fn id(&self, model: ModelRef) -> &str {
        self.defs.get(model.0).map_or("", |d| d.id.as_str())
    }

    /// Serializes `root`: each model in full where it first occurs (depth first, in
    /// attribute order), as a bare `{"id"}` reference after that. `written` carries the
    /// models already written across several calls (one DocJson).
    pub fn to_json(&self, root: ModelRef, written: &mut HashSet<usize>) -> Value {
        self.model_json(root, written)
    }

    fn model_json(&self, m: ModelRef, written: &mut HashSet<usize>) -> Value {
        let Some(def) = self.defs.get(m.0) else {
            return Value::Null;
        };
        if !written.insert(m.0) {
            return json!({"id": def.id});
        }
        let mut rep = Map::new();
        rep.insert("type".into(), "object".into());
        rep.insert("name".into(), def.name.into());
        rep.insert("id".into(), def.id.clone().into());
        if !def.attrs.is_empty() {
            let mut attrs = Map::new();
            for (k, v) in &def.attrs {
                attrs.insert((*k).to_owned(), self.val_json(v, written));
            }
            rep.insert("attributes".into(), Value::Object(attrs));
        }
        Value::Object(rep)
    }

    fn val_json(&self, v: &Val, written: &mut HashSet<usize>) -> Value {
        match v {
            Val::Json(j) => j.clone(),
            Val::Model(m) => self.model_json(*m, written),
            Val::List(items) => {
                Value::Array(items.iter().map(|i| self.val_json(i, written)).collect())
            }
            Val::Obj(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), self.val_json(v, written)))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_is_written_in_full_once_then_by_reference() {
        let mut g = Models::new();
        let a = g.add("a", "Selection", vec![]).unwrap();
        let b = g
            .add(
                "b",
                "Thing",
                vec![("x", a.into()), ("y", Val::List(vec![a.into()]))],
            )
            .unwrap();
        let mut written = HashSet::new();
        let j = g.to_json(b, &mut written);
        assert_eq!(
            j,
            json!({"type":"object","name":"Thing","id":"b","attributes":{
                "x":{"type":"object","name":"Selection","id":"a"},"y":[{"id":"a"}]}})
        );
        assert_eq!(g.to_json(a, &mut written), json!({"id":"a"}));
        assert!(g.add("a", "Other", vec![]).is_err());
    }
}
