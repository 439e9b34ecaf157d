//! The kinds of empty list columns, which a DocJson cannot carry. A column that held
//! rows keeps their kind after a trim to none (a string column still refuses numbers),
//! but it is written as `[]`, which reads back as a column of no kind yet. A stored
//! snapshot keeps these kinds beside its DocJson, so that the document read back takes
//! and refuses what the live one did.

use plotwire_protocol::Id;

use super::Document;
use crate::column::{Column, ColumnKind};

/// Why stored kinds do not fit the document read back (the store is inconsistent).
#[derive(Debug, thiserror::Error)]
pub enum KindsError {
    /// The kind names a source or column the document does not have.
    #[error("no column {column:?} in source {model:?}")]
    UnknownColumn {
        /// The source.
        model: Id,
        /// The column.
        column: String,
    },
    /// The column has rows, so its kind is its rows'.
    #[error("column {column:?} of source {model:?} is not empty")]
    NotEmpty {
        /// The source.
        model: Id,
        /// The column.
        column: String,
    },
    /// Not the name of a list kind.
    #[error("{0:?} is not a list column kind")]
    UnknownKind(String),
}

impl Document {
    /// Every empty list column that has a kind, as `(source id, column, kind name)`,
    /// sorted.
    pub fn empty_list_kinds(&self) -> Vec<(Id, String, String)> {
        let mut out = Vec::new();
        for (id, model) in &self.models {
            let Some(columns) = &model.columns else {
                continue;
            };
            for name in columns.names() {
                let Some(column) = columns.get(name) else {
                    continue;
                };
                let kind = column.kind();
                if column.is_empty() && Column::empty_list(kind).is_some() {
                    out.push((id.clone(), name.to_owned(), kind.name().to_owned()));
                }
            }
        }
        out.sort();
        out
    }

    /// Gives empty list columns the kinds [`Document::empty_list_kinds`] listed, all or
    /// none.
    ///
    /// # Errors
    /// A source or column the document does not have, a column with rows, or an unknown
    /// kind name.
    pub fn set_empty_list_kinds(
        &mut self,
        kinds: &[(Id, String, String)],
    ) -> Result<(), KindsError> {
        let mut staged = Vec::with_capacity(kinds.len());
        for (model, column, kind) in kinds {
            let unknown = || KindsError::UnknownColumn {
                model: model.clone(),
                column: column.clone(),
            };
            let existing = self
                .models
                .get(model)
                .and_then(|m| m.columns.as_ref())
                .and_then(|c| c.get(column))
                .ok_or_else(unknown)?;
            if !existing.is_empty() {
                return Err(KindsError::NotEmpty {
                    model: model.clone(),
                    column: column.clone(),
                });
            }
            let empty = ColumnKind::list_of_name(kind)
                .and_then(Column::empty_list)
                .ok_or_else(|| KindsError::UnknownKind(kind.clone()))?;
            staged.push((model, column, empty));
        }
        for (model, column, empty) in staged {
            if let Some(columns) = self
                .models
                .get_mut(model)
                .map(std::sync::Arc::make_mut)
                .and_then(|m| m.columns.as_mut())
            {
                columns.set(column.clone(), empty);
            }
        }
        Ok(())
    }
}
