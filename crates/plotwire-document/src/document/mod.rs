//! The document: the model graph, roots, title and config, the one place where document
//! events are validated and applied.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use plotwire_protocol::event::{DocJson, DocumentEvent};
use plotwire_protocol::{Id, ModelRep, Value};

use crate::column::ColumnError;
use crate::model::{extract_models, for_each_ref, has_refs, ColumnSet, Found, Model, DATA_ATTR};

mod columns;
mod kinds;
mod wire;

use columns::ensure_columns;

pub use kinds::KindsError;
pub use wire::{AllModels, NewModels};

/// The title of a new, empty document (as Bokeh's).
pub const DEFAULT_TITLE: &str = "Bokeh Application";

/// Why events could not be applied. Nothing was changed when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// An event names a model that is not in the document.
    #[error("unknown model {0:?}")]
    UnknownModel(Id),
    /// A value refers to a model that is neither in the document nor sent with it.
    #[error("can't resolve reference {0:?}")]
    UnknownReference(Id),
    /// A column event targets a model without column data.
    #[error("model {0:?} has no column data")]
    NotAColumnSource(Id),
    /// A column event targets an attribute other than `data`.
    #[error("column events must target attribute \"data\", not {0:?}")]
    NotDataAttr(String),
    /// A column operation failed.
    #[error("column {column:?} of {model:?}: {source}")]
    Column {
        /// The source.
        model: Id,
        /// The column.
        column: String,
        /// What went wrong.
        source: ColumnError,
    },
    /// A stream did not name exactly the existing columns.
    #[error("must stream updates to all existing columns of {model:?} (missing: {missing:?}, unknown: {unknown:?})")]
    StreamColumns {
        /// The source.
        model: Id,
        /// Existing columns not streamed.
        missing: Vec<String>,
        /// Streamed columns that don't exist.
        unknown: Vec<String>,
    },
    /// The streamed columns have different lengths.
    #[error("all streamed columns of {model:?} must have the same length, got {lengths:?}")]
    StreamLengths {
        /// The source.
        model: Id,
        /// Column name and length.
        lengths: Vec<(String, usize)>,
    },
    /// A patch names a column that does not exist.
    #[error("can't patch unknown column {column:?} of {model:?}")]
    UnknownColumn {
        /// The source.
        model: Id,
        /// The column.
        column: String,
    },
    /// A root event whose model is not a model.
    #[error("RootAdded needs a model, got something else")]
    NotAModel,
    /// A document part that must be a model is something else.
    #[error("{0} must be a model")]
    NotAModelValue(&'static str),
    /// The document would hold more models than its limit.
    #[error(
        "the document would hold {count} models, more than the limit of {limit} (--max-models)"
    )]
    TooManyModels {
        /// Models it would hold.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

/// The outcome of applying events: what to relay and which models are new.
#[derive(Debug, Default)]
pub struct Applied {
    /// The events to send to other connections, in order, normalised (a
    /// ColumnDataChanged becomes a ModelChanged of the merged `data`; unchanged values
    /// are left out). MessageSent events are included; the caller routes them.
    pub relay: Vec<DocumentEvent>,
    /// Models that joined the document, as they were when they joined: recipients have
    /// never seen them, so they must be written in full, in that state (later events of
    /// the same batch are relayed after them). Sharing makes this a reference count each.
    pub new_models: HashMap<Id, Arc<Model>>,
}

/// What a batch being applied has changed, so that a failed batch can be undone.
///
/// Models are shared (`Arc`), so saving one before its first change costs a reference
/// count; a batch costs O(events) to stage, whatever the size of the document.
#[derive(Debug, Clone, Default)]
struct Undo {
    /// The models touched, as they were (`None`: the model did not exist).
    models: HashMap<Id, Option<Arc<Model>>>,
    roots: Option<Vec<Id>>,
    title: Option<String>,
    removed: Option<Arc<HashSet<Id>>>,
    /// A reference was dropped: unreachable models are collected once, at the end.
    collect: bool,
}

/// A Bokeh document held generically (spec §8.6).
///
/// Cloning is cheap: models are shared and copied on write, and columns share chunks.
#[derive(Debug, Clone)]
pub struct Document {
    models: HashMap<Id, Arc<Model>>,
    roots: Vec<Id>,
    title: String,
    config: Id,
    callbacks: Option<Value>,
    /// The data model definitions it was sent with ([`DocJson::defs`]), kept verbatim.
    defs: Option<Value>,
    /// Models that were in the document once; events naming them are dropped (as Bokeh).
    /// Shared so that the staging copy made by [`Document::apply`] does not copy it.
    removed: Arc<HashSet<Id>>,
    /// Most models the document may hold; a batch that would exceed it is refused.
    max_models: usize,
    /// While a batch is being applied: how to undo it.
    undo: Option<Undo>,
}

/// Models a document may hold unless set otherwise ([`Document::set_max_models`]).
pub const DEFAULT_MAX_MODELS: usize = 100_000;

impl Default for Document {
    fn default() -> Self {
        Document::new()
    }
}

impl Document {
    /// An empty document, as a new Bokeh session of an empty app has.
    pub fn new() -> Document {
        let config = "plotwire-config".to_owned();
        let mut models = HashMap::new();
        models.insert(
            config.clone(),
            Arc::new(Model {
                name: "DocumentConfig".into(),
                attributes: Vec::new(),
                columns: None,
            }),
        );
        Document {
            models,
            roots: Vec::new(),
            title: DEFAULT_TITLE.into(),
            config,
            callbacks: None,
            defs: None,
            removed: Arc::default(),
            max_models: DEFAULT_MAX_MODELS,
            undo: None,
        }
    }

    /// Sets the most models the document may hold. Pushes and patches past it are
    /// refused with [`ApplyError::TooManyModels`]; nothing already held is dropped.
    pub fn set_max_models(&mut self, max: usize) {
        self.max_models = max;
    }

    /// The ids of models that were in the document once (events naming them are
    /// dropped), sorted.
    pub fn removed_ids(&self) -> Vec<Id> {
        let mut ids: Vec<Id> = self.removed.iter().cloned().collect();
        ids.sort();
        ids
    }

    /// Marks `ids` as models that were in the document once (restoring a stored
    /// document); ids of models the document holds are ignored.
    pub fn mark_removed(&mut self, ids: impl IntoIterator<Item = Id>) {
        let removed = Arc::make_mut(&mut self.removed);
        for id in ids {
            if !self.models.contains_key(&id) {
                removed.insert(id);
            }
        }
    }

    /// Builds a document from a pushed or pulled DocJson, checking every reference.
    pub fn from_doc_json(doc: DocJson) -> Result<Document, ApplyError> {
        Document::from_doc_json_limited(doc, DEFAULT_MAX_MODELS)
    }

    /// [`Document::from_doc_json`] for a document that may hold at most `max_models`.
    pub fn from_doc_json_limited(doc: DocJson, max_models: usize) -> Result<Document, ApplyError> {
        let mut found = Found::default();
        let roots: Vec<Value> = doc
            .roots
            .into_iter()
            .map(|r| extract_models(r, &mut found, &|_| false))
            .collect();
        let config = doc
            .config
            .map(|c| extract_models(c, &mut found, &|_| false));
        let callbacks = doc
            .callbacks
            .map(|c| extract_models(c, &mut found, &|_| false));
        if found.len() > max_models {
            return Err(ApplyError::TooManyModels {
                count: found.len(),
                limit: max_models,
            });
        }
        let mut out = Document::new();
        out.max_models = max_models;
        out.title = doc.title.unwrap_or_else(|| DEFAULT_TITLE.into());
        if config
            .as_ref()
            .is_some_and(|c| !matches!(c, Value::Ref(_) | Value::Null))
        {
            return Err(ApplyError::NotAModelValue("config"));
        }
        if let Some(Value::Ref(_)) = &config {
            // The sent config replaces the default one, even when it reuses its id (a
            // document pulled from plotwire and pushed back).
            out.models.remove(&out.config);
        }
        out.register(found.reps)?;
        for r in &roots {
            match r {
                Value::Ref(id) => out.check_ref(id)?,
                _ => return Err(ApplyError::NotAModelValue("every root")),
            }
        }
        out.roots = roots
            .into_iter()
            .filter_map(|r| match r {
                Value::Ref(id) => Some(id),
                _ => None,
            })
            .collect();
        if let Some(Value::Ref(id)) = config {
            out.check_ref(&id)?;
            out.config = id;
        }
        if let Some(cb) = &callbacks {
            out.check_refs(cb)?;
        }
        out.callbacks = callbacks;
        out.defs = doc.defs;
        out.collect_garbage();
        Ok(out)
    }

    /// The title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The root ids, in order.
    pub fn roots(&self) -> &[Id] {
        &self.roots
    }

    /// The model `id`.
    pub fn model(&self, id: &str) -> Option<&Model> {
        self.models.get(id).map(Arc::as_ref)
    }

    /// Number of models in the document.
    pub fn model_count(&self) -> usize {
        self.models.len()
    }

    /// Most models the document may hold.
    pub fn max_models(&self) -> usize {
        self.max_models
    }

    /// Every model, by id, in no particular order.
    pub fn models(&self) -> impl Iterator<Item = (&Id, &Model)> {
        self.models.iter().map(|(id, m)| (id, m.as_ref()))
    }

    /// Ids of the models whose Bokeh `name` property is `name` (not their type).
    pub fn find_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Id> + 'a {
        self.models
            .iter()
            .filter(move |(_, m)| {
                m.attributes
                    .iter()
                    .any(|(k, v)| k == "name" && matches!(v, Value::Str(s) if s == name))
            })
            .map(|(id, _)| id)
    }

    /// Ids of all models with the given type name.
    pub fn models_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Id> + 'a {
        self.models
            .iter()
            .filter(move |(_, m)| m.name == name)
            .map(|(id, _)| id)
    }

    fn check_ref(&self, id: &str) -> Result<(), ApplyError> {
        if self.models.contains_key(id) {
            Ok(())
        } else {
            Err(ApplyError::UnknownReference(id.to_owned()))
        }
    }

    fn check_refs(&self, v: &Value) -> Result<(), ApplyError> {
        let mut missing = None;
        for_each_ref(v, &mut |id| {
            if missing.is_none() && !self.models.contains_key(id) {
                missing = Some(id.clone());
            }
        });
        match missing {
            Some(id) => Err(ApplyError::UnknownReference(id)),
            None => Ok(()),
        }
    }

    /// Adds extracted model reps that are not in the document yet (a rep for a known id
    /// is ignored, as Bokeh's server does), then checks that all their references
    /// resolve. Returns the ids added.
    fn register(&mut self, found: Vec<ModelRep>) -> Result<HashSet<Id>, ApplyError> {
        let mut added = HashSet::new();
        for rep in found {
            if self.models.contains_key(&rep.id) {
                continue;
            }
            let mut model = Model {
                name: rep.name,
                attributes: Vec::with_capacity(rep.attributes.len()),
                columns: None,
            };
            for (k, v) in rep.attributes {
                model
                    .set_attribute(&k, v)
                    .map_err(|(column, source)| ApplyError::Column {
                        model: rep.id.clone(),
                        column,
                        source,
                    })?;
            }
            added.insert(rep.id.clone());
            if self.removed.contains(&rep.id) {
                self.save_removed();
                Arc::make_mut(&mut self.removed).remove(&rep.id);
            }
            self.save_model(&rep.id);
            self.models.insert(rep.id, Arc::new(model));
        }
        if self.models.len() > self.max_models {
            return Err(ApplyError::TooManyModels {
                count: self.models.len(),
                limit: self.max_models,
            });
        }
        for id in &added {
            if let Some(m) = self.models.get(id) {
                for (_, v) in &m.attributes {
                    self.check_refs(v)?;
                }
            }
        }
        Ok(added)
    }

    /// Applies `events` in order, all or nothing: on error the document is unchanged.
    /// Models that became unreachable are dropped once, after the last event (as
    /// Bokeh, which recomputes its models once per patch).
    pub fn apply(&mut self, events: Vec<DocumentEvent>) -> Result<Applied, ApplyError> {
        let mut applied = Applied::default();
        self.undo = Some(Undo::default());
        let mut result = Ok(());
        for e in events {
            result = self.apply_one(e, &mut applied);
            if result.is_err() {
                break;
            }
        }
        let Some(undo) = self.undo.take() else {
            return result.map(|()| applied);
        };
        match result {
            Ok(()) => {
                if undo.collect {
                    self.collect_garbage();
                }
                Ok(applied)
            }
            Err(e) => {
                self.restore(undo);
                Err(e)
            }
        }
    }

    /// Puts back everything a failed batch changed.
    fn restore(&mut self, undo: Undo) {
        for (id, old) in undo.models {
            match old {
                Some(m) => {
                    self.models.insert(id, m);
                }
                None => {
                    self.models.remove(&id);
                }
            }
        }
        if let Some(roots) = undo.roots {
            self.roots = roots;
        }
        if let Some(title) = undo.title {
            self.title = title;
        }
        if let Some(removed) = undo.removed {
            self.removed = removed;
        }
    }

    /// Remembers model `id` as it is, before the batch first changes it.
    fn save_model(&mut self, id: &str) {
        if let Some(undo) = self.undo.as_mut() {
            if !undo.models.contains_key(id) {
                undo.models
                    .insert(id.to_owned(), self.models.get(id).cloned());
            }
        }
    }

    fn save_roots(&mut self) {
        if let Some(undo) = self.undo.as_mut() {
            undo.roots.get_or_insert_with(|| self.roots.clone());
        }
    }

    fn save_removed(&mut self) {
        if let Some(undo) = self.undo.as_mut() {
            undo.removed.get_or_insert_with(|| self.removed.clone());
        }
    }

    /// Marks the batch as having dropped a reference.
    fn collect_later(&mut self) {
        match self.undo.as_mut() {
            Some(undo) => undo.collect = true,
            None => self.collect_garbage(),
        }
    }

    fn model_mut(&mut self, id: &str) -> Result<&mut Model, ApplyError> {
        self.save_model(id);
        self.models
            .get_mut(id)
            .map(Arc::make_mut)
            .ok_or_else(|| ApplyError::UnknownModel(id.to_owned()))
    }

    fn is_removed(&self, id: &str) -> bool {
        !self.models.contains_key(id) && self.removed.contains(id)
    }

    fn apply_one(&mut self, event: DocumentEvent, applied: &mut Applied) -> Result<(), ApplyError> {
        match event {
            DocumentEvent::ModelChanged { model, attr, new } => {
                if self.is_removed(&model) {
                    return Ok(());
                }
                if !self.models.contains_key(&model) {
                    return Err(ApplyError::UnknownModel(model));
                }
                let mut found = Found::default();
                let models = &self.models;
                let new = extract_models(new, &mut found, &|id| models.contains_key(id));
                let added = self.register(found.reps)?;
                self.check_refs(&new)?;
                let old = self.model(&model).and_then(|m| m.attribute(&attr));
                if old.as_ref() == Some(&new) {
                    return Ok(());
                }
                // Only a dropped reference can leave models unreachable.
                let drops_refs = old.as_ref().is_some_and(has_refs);
                self.model_mut(&model)?
                    .set_attribute(&attr, new.clone())
                    .map_err(|(column, source)| ApplyError::Column {
                        model: model.clone(),
                        column,
                        source,
                    })?;
                self.snapshot_new(&added, applied);
                applied
                    .relay
                    .push(DocumentEvent::ModelChanged { model, attr, new });
                if drops_refs {
                    self.collect_later();
                }
            }
            DocumentEvent::ColumnDataChanged {
                model,
                attr,
                data,
                cols,
            } => {
                if self.is_removed(&model) {
                    return Ok(());
                }
                if attr != DATA_ATTR {
                    return Err(ApplyError::NotDataAttr(attr));
                }
                let fresh = ColumnSet::from_pairs(&data).map_err(|(column, source)| {
                    ApplyError::Column {
                        model: model.clone(),
                        column,
                        source,
                    }
                })?;
                let target = self.model_mut(&model)?;
                ensure_columns(target, &model)?;
                let merged = match (cols, target.columns.take()) {
                    (Some(_), Some(mut existing)) => {
                        for (name, _) in &data {
                            if let Some(c) = fresh.get(name) {
                                existing.set(name.clone(), c.clone());
                            }
                        }
                        existing
                    }
                    _ => fresh,
                };
                let value = merged.to_value();
                target.columns = Some(merged);
                applied.relay.push(DocumentEvent::ModelChanged {
                    model,
                    attr,
                    new: value,
                });
            }
            DocumentEvent::ColumnsStreamed {
                model,
                attr,
                data,
                rollover,
            } => {
                if self.is_removed(&model) {
                    return Ok(());
                }
                self.stream(&model, &attr, &data, rollover)?;
                applied.relay.push(DocumentEvent::ColumnsStreamed {
                    model,
                    attr,
                    data,
                    rollover,
                });
            }
            DocumentEvent::ColumnsPatched {
                model,
                attr,
                patches,
            } => {
                if self.is_removed(&model) {
                    return Ok(());
                }
                let columns = self.columns_mut(&model, &attr)?;
                let mut staged = columns.clone();
                for (name, pairs) in &patches {
                    let col = staged
                        .get_mut(name)
                        .ok_or_else(|| ApplyError::UnknownColumn {
                            model: model.clone(),
                            column: name.clone(),
                        })?;
                    col.patch(pairs).map_err(|source| ApplyError::Column {
                        model: model.clone(),
                        column: name.clone(),
                        source,
                    })?;
                }
                *self.columns_mut(&model, &attr)? = staged;
                applied.relay.push(DocumentEvent::ColumnsPatched {
                    model,
                    attr,
                    patches,
                });
            }
            DocumentEvent::RootAdded { model } => {
                let mut found = Found::default();
                let models = &self.models;
                let root = extract_models(model, &mut found, &|id| models.contains_key(id));
                let Value::Ref(id) = &root else {
                    return Err(ApplyError::NotAModel);
                };
                let added = self.register(found.reps)?;
                self.check_ref(id)?;
                if !self.roots.contains(id) {
                    self.save_roots();
                    self.roots.push(id.clone());
                    self.snapshot_new(&added, applied);
                    applied.relay.push(DocumentEvent::RootAdded { model: root });
                }
            }
            DocumentEvent::RootRemoved { model } => {
                if let Some(pos) = self.roots.iter().position(|r| *r == model) {
                    self.save_roots();
                    self.roots.remove(pos);
                    self.collect_later();
                    applied.relay.push(DocumentEvent::RootRemoved { model });
                } else if !self.is_removed(&model) && !self.models.contains_key(&model) {
                    return Err(ApplyError::UnknownModel(model));
                }
            }
            DocumentEvent::TitleChanged { title } => {
                if title != self.title {
                    if let Some(undo) = self.undo.as_mut() {
                        undo.title.get_or_insert_with(|| self.title.clone());
                    }
                    self.title = title.clone();
                    applied.relay.push(DocumentEvent::TitleChanged { title });
                }
            }
            DocumentEvent::MessageSent { msg_type, msg_data } => {
                applied
                    .relay
                    .push(DocumentEvent::MessageSent { msg_type, msg_data });
            }
        }
        Ok(())
    }

    /// Replaces the content with a pushed document (PUSH-DOC, spec §4): returns the events
    /// Bokeh broadcasts for it (RootRemoved for old roots, RootAdded for new ones, then
    /// TitleChanged if the title differs), with every model of the new document new.
    pub fn replace_with(&mut self, doc: DocJson) -> Result<Applied, ApplyError> {
        let next = Document::from_doc_json_limited(doc, self.max_models)?;
        let mut applied = Applied::default();
        for r in &self.roots {
            applied
                .relay
                .push(DocumentEvent::RootRemoved { model: r.clone() });
        }
        for r in &next.roots {
            applied.relay.push(DocumentEvent::RootAdded {
                model: Value::Ref(r.clone()),
            });
        }
        if next.title != self.title {
            applied.relay.push(DocumentEvent::TitleChanged {
                title: next.title.clone(),
            });
        }
        applied.new_models = next
            .models
            .iter()
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect();
        let mut removed = std::mem::take(&mut self.removed);
        Arc::make_mut(&mut removed).extend(
            self.models
                .keys()
                .filter(|id| !next.models.contains_key(*id))
                .cloned(),
        );
        *self = next;
        self.removed = removed;
        Ok(applied)
    }

    /// Joins the chunks of every binary column, so that the next full encoding shares
    /// one buffer per column instead of copying. Called before a PULL-DOC-REPLY.
    pub fn compact_columns(&mut self) {
        for model in self.models.values_mut() {
            if model
                .columns
                .as_ref()
                .is_some_and(|c| c.has_chunked_binary())
            {
                if let Some(cols) = Arc::make_mut(model).columns.as_mut() {
                    cols.compact();
                }
            }
        }
    }

    /// Drops models no longer reachable from the roots, the config or the callbacks.
    fn collect_garbage(&mut self) {
        let mut reachable: HashSet<Id> = HashSet::with_capacity(self.models.len());
        let mut stack: Vec<Id> = self.roots.clone();
        stack.push(self.config.clone());
        if let Some(cb) = &self.callbacks {
            for_each_ref(cb, &mut |id| stack.push(id.clone()));
        }
        while let Some(id) = stack.pop() {
            if !reachable.insert(id.clone()) {
                continue;
            }
            if let Some(m) = self.models.get(&id) {
                for (_, v) in &m.attributes {
                    for_each_ref(v, &mut |r| {
                        if !reachable.contains(r) {
                            stack.push(r.clone());
                        }
                    });
                }
            }
        }
        if reachable.len() < self.models.len() {
            let gone: Vec<Id> = self
                .models
                .keys()
                .filter(|id| !reachable.contains(*id))
                .cloned()
                .collect();
            let removed = Arc::make_mut(&mut self.removed);
            for id in gone {
                self.models.remove(&id);
                removed.insert(id);
            }
        }
    }

    /// Records the models a batch just added, in their state now.
    fn snapshot_new(&self, added: &HashSet<Id>, applied: &mut Applied) {
        for id in added {
            if let Some(m) = self.models.get(id) {
                applied
                    .new_models
                    .entry(id.clone())
                    .or_insert_with(|| m.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
