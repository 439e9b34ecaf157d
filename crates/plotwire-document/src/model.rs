//! One model of a document: its type name, its attributes with nested models replaced by
//! references, and, for column data sources, its `data` held as typed columns.

use std::collections::HashSet;

use plotwire_protocol::{Id, ModelRep, Value};

use crate::column::{Column, ColumnError, ColumnKind};

/// The attribute that holds a column data source's columns.
pub const DATA_ATTR: &str = "data";

/// The columns of a column data source, in the sender's order.
#[derive(Debug, Clone, Default)]
pub struct ColumnSet {
    columns: Vec<(String, Column)>,
}

impl ColumnSet {
    /// Builds a column set from decoded `(name, value)` pairs.
    pub fn from_pairs(pairs: &[(String, Value)]) -> Result<ColumnSet, (String, ColumnError)> {
        let columns = pairs
            .iter()
            .map(|(k, v)| {
                Column::from_value(v)
                    .map(|c| (k.clone(), c))
                    .map_err(|e| (k.clone(), e))
            })
            .collect::<Result<_, _>>()?;
        Ok(ColumnSet { columns })
    }

    /// The column called `name`.
    pub fn get(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(k, _)| k == name).map(|(_, c)| c)
    }

    /// The column called `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Column> {
        self.columns
            .iter_mut()
            .find(|(k, _)| k == name)
            .map(|(_, c)| c)
    }

    /// Sets (adds or replaces) a column, keeping the position of an existing one.
    pub fn set(&mut self, name: String, column: Column) {
        match self.get_mut(&name) {
            Some(c) => *c = column,
            None => self.columns.push((name, column)),
        }
    }

    /// Column names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|(k, _)| k.as_str())
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// True when there are no columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Whether some binary column is split into several chunks.
    pub fn has_chunked_binary(&self) -> bool {
        self.columns
            .iter()
            .any(|(_, c)| c.chunk_count() > 1 && matches!(c.kind(), ColumnKind::Binary { .. }))
    }

    /// Joins the chunks of every binary column (see [`Column::compact`]).
    pub fn compact(&mut self) {
        for (_, c) in &mut self.columns {
            c.compact();
        }
    }

    /// The columns as one `{"type":"map"}` value, for encoding.
    pub fn to_value(&self) -> Value {
        Value::Map(
            self.columns
                .iter()
                .map(|(k, c)| (Value::Str(k.clone()), c.to_value()))
                .collect(),
        )
    }
}

/// Whether `v` looks like a column data source's `data`: a map or dict whose values are
/// all lists or arrays, with string keys.
pub fn column_pairs(v: &Value) -> Option<Vec<(String, Value)>> {
    let is_column = |v: &Value| matches!(v, Value::List(_) | Value::Array(_));
    match v {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| match k {
                Value::Str(k) if is_column(v) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect(),
        Value::Dict(fields) if fields.iter().all(|(_, v)| is_column(v)) => Some(fields.clone()),
        _ => None,
    }
}

/// In a map or dict of named entries, the first entry that cannot be a column, with why.
fn first_non_column(v: &Value) -> Option<(String, ColumnError)> {
    let check = |name: &str, v: &Value| {
        crate::column::Column::from_value(v)
            .err()
            .map(|e| (name.to_owned(), e))
    };
    match v {
        Value::Map(entries) => entries.iter().find_map(|(k, v)| match k {
            Value::Str(k) => check(k, v),
            _ => None,
        }),
        Value::Dict(fields) => fields.iter().find_map(|(k, v)| check(k, v)),
        _ => None,
    }
}

/// A model in the document.
#[derive(Debug, Clone)]
pub struct Model {
    /// The qualified type name.
    pub name: String,
    /// Attributes in the order received. Nested models are [`Value::Ref`]s. When
    /// `columns` is set, the `data` entry is a placeholder and `columns` is the truth.
    pub attributes: Vec<(String, Value)>,
    /// The typed columns of a column data source.
    pub columns: Option<ColumnSet>,
}

impl Model {
    /// The attribute `attr`, with columns rendered as a map.
    pub fn attribute(&self, attr: &str) -> Option<Value> {
        if attr == DATA_ATTR {
            if let Some(cols) = &self.columns {
                return Some(cols.to_value());
            }
        }
        self.attributes
            .iter()
            .find(|(k, _)| k == attr)
            .map(|(_, v)| v.clone())
    }

    /// Sets an attribute whose nested models are already references. A `data` value that
    /// looks like columns becomes a [`ColumnSet`].
    pub fn set_attribute(&mut self, attr: &str, value: Value) -> Result<(), (String, ColumnError)> {
        let stored = if attr == DATA_ATTR {
            match column_pairs(&value) {
                Some(pairs) => {
                    self.columns = Some(ColumnSet::from_pairs(&pairs)?);
                    Value::Null
                }
                None => {
                    if self.name.ends_with("DataSource") {
                        // A source's data that is a table with a cell that is no column.
                        if let Some(bad) = first_non_column(&value) {
                            return Err(bad);
                        }
                    }
                    self.columns = None;
                    value
                }
            }
        } else {
            value
        };
        match self.attributes.iter_mut().find(|(k, _)| k == attr) {
            Some((_, v)) => *v = stored,
            None => self.attributes.push((attr.to_owned(), stored)),
        }
        Ok(())
    }
}

/// Model reps taken out of values by [`extract_models`], in the order found.
#[derive(Debug, Default)]
pub struct Found {
    /// The reps, outermost first, their nested models already references.
    pub reps: Vec<ModelRep>,
    ids: HashSet<Id>,
}

impl Found {
    /// Number of reps found.
    pub fn len(&self) -> usize {
        self.reps.len()
    }

    /// True when no rep was found.
    pub fn is_empty(&self) -> bool {
        self.reps.is_empty()
    }
}

/// Replaces every full model rep inside `v` by a reference, collecting the reps
/// (depth first, outermost first) into `found`. A rep whose id is `known`, or was found
/// already, is only a reference: as in Bokeh, whose deserializer registers a model before
/// decoding its attributes, the rep of a model it has is ignored, and so is everything
/// nested in it.
pub fn extract_models(v: Value, found: &mut Found, known: &dyn Fn(&str) -> bool) -> Value {
    let mut walk = |v: Value| extract_models(v, found, known);
    match v {
        Value::Model(rep) => {
            let ModelRep {
                name,
                id,
                attributes,
            } = *rep;
            if known(&id) || !found.ids.insert(id.clone()) {
                return Value::Ref(id);
            }
            let index = found.reps.len();
            found.reps.push(ModelRep {
                name,
                id: id.clone(),
                attributes: Vec::new(),
            });
            let attributes = attributes
                .into_iter()
                .map(|(k, v)| (k, extract_models(v, found, known)))
                .collect();
            if let Some(slot) = found.reps.get_mut(index) {
                slot.attributes = attributes;
            }
            Value::Ref(id)
        }
        Value::List(items) => Value::List(items.into_iter().map(&mut walk).collect()),
        Value::Set(items) => Value::Set(items.into_iter().map(&mut walk).collect()),
        Value::Dict(fields) => Value::Dict(fields.into_iter().map(|(k, v)| (k, walk(v))).collect()),
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (walk(k), walk(v)))
                .collect(),
        ),
        Value::Tagged { tag, fields } => Value::Tagged {
            tag,
            fields: fields.into_iter().map(|(k, v)| (k, walk(v))).collect(),
        },
        other => other,
    }
}

/// Calls `f` with every model id referenced inside `v`.
pub fn for_each_ref(v: &Value, f: &mut dyn FnMut(&Id)) {
    match v {
        Value::Ref(id) => f(id),
        Value::Model(rep) => {
            f(&rep.id);
            for (_, v) in &rep.attributes {
                for_each_ref(v, f);
            }
        }
        Value::List(items) | Value::Set(items) => items.iter().for_each(|v| for_each_ref(v, f)),
        Value::Dict(fields) | Value::Tagged { fields, .. } => {
            fields.iter().for_each(|(_, v)| for_each_ref(v, f))
        }
        Value::Map(entries) => entries.iter().for_each(|(k, v)| {
            for_each_ref(k, f);
            for_each_ref(v, f);
        }),
        Value::Array(a) => {
            if let plotwire_protocol::ArrayData::List(items) = &a.data {
                items.iter().for_each(|v| for_each_ref(v, f));
            }
        }
        _ => {}
    }
}

/// True when `v` contains a model reference or rep.
pub fn has_refs(v: &Value) -> bool {
    let mut any = false;
    for_each_ref(v, &mut |_| any = true);
    any
}
