//! A column data source's columns in the document: finding them (made empty for a
//! source that has none yet) and streaming into them, all or nothing.

use std::collections::HashSet;

use plotwire_protocol::Value;

use super::{ApplyError, Document};
use crate::model::{column_pairs, ColumnSet, Model, DATA_ATTR};

impl Document {
    pub(super) fn columns_mut(
        &mut self,
        id: &str,
        attr: &str,
    ) -> Result<&mut ColumnSet, ApplyError> {
        if attr != DATA_ATTR {
            return Err(ApplyError::NotDataAttr(attr.to_owned()));
        }
        ensure_columns(self.model_mut(id)?, id)
    }

    pub(super) fn stream(
        &mut self,
        model: &str,
        attr: &str,
        data: &[(String, Value)],
        rollover: Option<usize>,
    ) -> Result<(), ApplyError> {
        let lengths: Vec<(String, usize)> = data
            .iter()
            .map(|(k, v)| {
                let n = match v {
                    Value::List(items) => items.len(),
                    Value::Array(a) => a.shape.first().copied().unwrap_or(0),
                    _ => 0,
                };
                (k.clone(), n)
            })
            .collect();
        if lengths.windows(2).any(|w| w[0].1 != w[1].1) {
            return Err(ApplyError::StreamLengths {
                model: model.to_owned(),
                lengths,
            });
        }
        let columns = self.columns_mut(model, attr)?;
        let mut staged = columns.clone();
        if !staged.is_empty() {
            let streamed: HashSet<&str> = data.iter().map(|(k, _)| k.as_str()).collect();
            let existing: HashSet<&str> = staged.names().collect();
            if streamed != existing {
                let mut missing: Vec<String> = existing
                    .difference(&streamed)
                    .map(|s| s.to_string())
                    .collect();
                let mut unknown: Vec<String> = streamed
                    .difference(&existing)
                    .map(|s| s.to_string())
                    .collect();
                missing.sort();
                unknown.sort();
                return Err(ApplyError::StreamColumns {
                    model: model.to_owned(),
                    missing,
                    unknown,
                });
            }
        }
        for (name, items) in data {
            let result = match staged.get_mut(name) {
                Some(col) => col.stream(items, rollover),
                None => {
                    crate::column::Column::from_value(&Value::List(Vec::new())).and_then(|mut c| {
                        c.stream(items, rollover)?;
                        staged.set(name.clone(), c);
                        Ok(())
                    })
                }
            };
            result.map_err(|source| ApplyError::Column {
                model: model.to_owned(),
                column: name.clone(),
                source,
            })?;
        }
        *self.columns_mut(model, attr)? = staged;
        Ok(())
    }
}

/// The columns of a column data source, created empty for a source whose `data` is
/// still empty or absent (Bokeh leaves out default values). Models that are not data
/// sources (their type name does not end in `DataSource`) have no columns.
pub(super) fn ensure_columns<'m>(
    model: &'m mut Model,
    id: &str,
) -> Result<&'m mut ColumnSet, ApplyError> {
    if model.columns.is_none() {
        let data = model.attributes.iter().position(|(k, _)| k == DATA_ATTR);
        let empty = match data {
            None => model.name.ends_with("DataSource"),
            Some(i) => model
                .attributes
                .get(i)
                .and_then(|(_, v)| column_pairs(v))
                .is_some_and(|p| p.is_empty()),
        };
        if !empty {
            return Err(ApplyError::NotAColumnSource(id.to_owned()));
        }
        if data.is_none() {
            model.attributes.push((DATA_ATTR.into(), Value::Null));
        }
        model.columns = Some(ColumnSet::default());
    }
    model
        .columns
        .as_mut()
        .ok_or_else(|| ApplyError::NotAColumnSource(id.to_owned()))
}
