//! streamvis semantics for a document built from a dashboard spec. `set_layout` makes
//! the grid's plots exist before their first data; the first `tandem_lines` or
//! `scatter` of a plot gives it its series or its markers. The spec is rebuilt and only
//! what changed is applied, as ordinary model changes that every view receives: open
//! pages gain the new lines without reloading.

use plotwire_document::model::{extract_models, Found};
use plotwire_protocol::event::DocumentEvent;
use plotwire_protocol::{ArrayData, ArrayForm, ArrayValue, DType, Value};
use plotwire_spec::streamvis::{source_name, with_series, y_column, X_COLUMN};
use plotwire_spec::{Columns, PlotKind, Spec};

use super::Owner;
use crate::api::{Answer, Streamvis};
use crate::error::HttpError;
use crate::published::{published_document, spec_doc_json, spec_error};

impl Owner {
    pub(super) fn streamvis(&mut self, call: Streamvis) -> Result<Answer, HttpError> {
        match call {
            Streamvis::Layout(grid) => {
                let same = self
                    .spec
                    .as_ref()
                    .and_then(|s| s.layout.as_ref())
                    .is_some_and(|l| l.grid == grid);
                if !same {
                    let spec = plotwire_spec::streamvis::layout_spec(&grid).map_err(spec_error)?;
                    self.rebuild(spec)?;
                }
                Ok(self.written())
            }
            Streamvis::TandemLines { plot, values } => {
                let Some((x, ys)) = values.split_first() else {
                    return Err(HttpError::bad_request(
                        "values is [x, y1, y2, ...]: give at least x and one y",
                    )
                    .with_field("values"));
                };
                if ys.is_empty() {
                    return Err(HttpError::bad_request(
                        "values is [x, y1, ...]: give at least one y",
                    )
                    .with_field("values"));
                }
                let mut spec = self.streamvis_spec(&plot)?;
                let series = match spec.plots.get(&plot) {
                    Some(p) if p.kind == PlotKind::MultiLine => {
                        p.y.as_ref().map_or(0, |c| c.names().len())
                    }
                    _ => {
                        return Err(HttpError::conflict(format!(
                            "plot {plot:?} is not a tandem-lines plot"
                        ))
                        .with_field("plot"))
                    }
                };
                if series != ys.len() {
                    self.reshape(&plot, &mut spec, |spec| with_series(spec, &plot, ys.len()))?;
                }
                let mut columns = vec![(X_COLUMN.to_owned(), floats(&[*x]))];
                columns.extend(
                    ys.iter()
                        .enumerate()
                        .map(|(i, y)| (y_column(i), floats(&[*y]))),
                );
                self.stream_into(&source_name(&plot), columns, None)
            }
            Streamvis::Scatter {
                plot,
                points,
                spatial_dim,
                append,
            } => {
                // streamvis: `spatial_dim` is the axis of `points` that holds the
                // coordinates: 1 for N points of [x, y], 0 for [[x, ...], [y, ...]].
                let (xs, ys): (Vec<f64>, Vec<f64>) = match spatial_dim {
                    1 => {
                        if let Some(i) = points.iter().position(|p| p.len() != 2) {
                            return Err(HttpError::bad_request(format!(
                                "point {i} has {} coordinates, not 2",
                                points[i].len()
                            ))
                            .with_field("points"));
                        }
                        points.iter().map(|p| (p[0], p[1])).unzip()
                    }
                    0 => match points.as_slice() {
                        [xs, ys] if xs.len() == ys.len() => (xs.clone(), ys.clone()),
                        _ => return Err(HttpError::bad_request(
                            "with spatial_dim 0, points is [[x, ...], [y, ...]] of equal lengths",
                        )
                        .with_field("points")),
                    },
                    other => {
                        return Err(HttpError::bad_request(format!(
                            "spatial_dim is the axis of the coordinates, 0 or 1, not {other}"
                        ))
                        .with_field("spatial_dim"))
                    }
                };
                let mut spec = self.streamvis_spec(&plot)?;
                let kind = spec.plots.get(&plot).map(|p| p.kind);
                if kind != Some(PlotKind::Scatter) {
                    self.reshape(&plot, &mut spec, |spec| {
                        if let Some(p) = spec.plots.get_mut(&plot) {
                            p.kind = PlotKind::Scatter;
                            p.y = Some(Columns::One(y_column(0)));
                        }
                        Ok(())
                    })?;
                }
                let columns = vec![
                    (X_COLUMN.to_owned(), floats(&xs)),
                    (y_column(0), floats(&ys)),
                ];
                if append {
                    self.stream_into(&source_name(&plot), columns, None)
                } else {
                    let id = self.source_id(&source_name(&plot))?;
                    let event = DocumentEvent::ColumnDataChanged {
                        model: id.clone(),
                        attr: "data".into(),
                        data: columns,
                        cols: None,
                    };
                    self.apply_producer(vec![event], &plot)?;
                    self.cursors.reset(&id, self.version);
                    Ok(self.written_rows(&id))
                }
            }
            Streamvis::Clear => {
                let sources: Vec<String> = self
                    .doc
                    .models()
                    .filter(|(_, m)| m.columns.is_some())
                    .map(|(id, _)| id.clone())
                    .collect();
                let events: Vec<DocumentEvent> = sources
                    .iter()
                    .map(|id| DocumentEvent::ColumnDataChanged {
                        model: id.clone(),
                        attr: "data".into(),
                        data: self.empty_columns(id),
                        cols: None,
                    })
                    .collect();
                if !events.is_empty() {
                    self.apply_producer(events, "")?;
                    for id in &sources {
                        self.cursors.reset(id, self.version);
                    }
                }
                Ok(self.written())
            }
        }
    }

    fn written(&self) -> Answer {
        Answer::Written {
            seq: self.version,
            rows: None,
        }
    }

    /// The spec, for a call on `plot` (which it must have).
    fn streamvis_spec(&self, plot: &str) -> Result<Spec, HttpError> {
        let spec = self.spec.clone().ok_or_else(|| {
            HttpError::conflict(
                "this document was not built from a dashboard spec; call set_layout first",
            )
        })?;
        if spec.plots.get(plot).is_none() {
            return Err(HttpError::not_found(format!(
                "no plot {plot:?} in the layout; call set_layout with it first"
            ))
            .with_field("plot"));
        }
        Ok(spec)
    }

    /// Changes the spec of `plot`, which must have no data yet, and applies the result.
    fn reshape(
        &mut self,
        plot: &str,
        spec: &mut Spec,
        change: impl FnOnce(&mut Spec) -> Result<(), plotwire_spec::SpecError>,
    ) -> Result<(), HttpError> {
        let id = self.source_id(&source_name(plot))?;
        if self.source_rows(&id) > 0 {
            return Err(HttpError::conflict(format!(
                "plot {plot:?} already has data of another shape; clear() first"
            ))
            .with_field("plot"));
        }
        change(spec).map_err(spec_error)?;
        self.update_to(spec.clone())
    }

    fn stream_into(
        &mut self,
        source: &str,
        columns: Vec<(String, Value)>,
        rollover: Option<usize>,
    ) -> Result<Answer, HttpError> {
        let id = self.source_id(source)?;
        let rows = columns.first().map_or(0, |(_, v)| match v {
            Value::Array(a) => a.len(),
            _ => 0,
        });
        let event = DocumentEvent::ColumnsStreamed {
            model: id.clone(),
            attr: "data".into(),
            data: columns,
            rollover: self.capped_rollover(&id, rollover),
        };
        self.apply_producer(vec![event], source)?;
        self.cursors.appended(&id, self.version, rows);
        Ok(self.written_rows(&id))
    }

    /// Replaces the whole document with `spec`'s (views reconnect and re-pull).
    fn rebuild(&mut self, spec: Spec) -> Result<(), HttpError> {
        let doc = spec_doc_json(&spec)?;
        let doc = published_document(doc, self.doc.max_models())?;
        self.serve(crate::api::Request::Publish {
            doc: Box::new(doc),
            spec: Some(Box::new(spec)),
            retention: self.retention,
        })
        .map(|_| ())
    }

    /// Brings the live document to what `spec` builds, as model changes: every
    /// attribute of an existing model that differs is set to its new value (new models
    /// inline, in full), in the order the built document lists them.
    fn update_to(&mut self, spec: Spec) -> Result<(), HttpError> {
        let doc = spec_doc_json(&spec)?;
        let mut events = Vec::new();
        let mut stack: Vec<&Value> = doc.roots.iter().rev().collect();
        while let Some(v) = stack.pop() {
            match v {
                Value::Model(rep) => {
                    if let Some(old) = self.doc.model(&rep.id) {
                        // A spec's sources are empty: rows already streamed stay.
                        let has_rows = self.source_rows(&rep.id) > 0;
                        for (attr, new) in &rep.attributes {
                            if attr == "data" && has_rows {
                                continue;
                            }
                            let plain =
                                extract_models(new.clone(), &mut Found::default(), &|_| true);
                            if old.attribute(attr).as_ref() != Some(&plain) {
                                events.push(DocumentEvent::ModelChanged {
                                    model: rep.id.clone(),
                                    attr: attr.clone(),
                                    new: new.clone(),
                                });
                            }
                        }
                    }
                    stack.extend(rep.attributes.iter().rev().map(|(_, v)| v));
                }
                Value::List(items) | Value::Set(items) => stack.extend(items.iter().rev()),
                Value::Dict(fields) | Value::Tagged { fields, .. } => {
                    stack.extend(fields.iter().rev().map(|(_, v)| v))
                }
                Value::Map(entries) => {
                    for (k, v) in entries.iter().rev() {
                        stack.push(v);
                        stack.push(k);
                    }
                }
                _ => {}
            }
        }
        if !events.is_empty() {
            self.apply_producer(events, "")?;
        }
        self.spec = Some(spec);
        self.log.spec_changed = true;
        self.lod_replan();
        Ok(())
    }
}

/// A float64 column.
fn floats(values: &[f64]) -> Value {
    let mut bytes = Vec::with_capacity(values.len() * 8);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    Value::Array(Box::new(ArrayValue {
        form: ArrayForm::Nd,
        dtype: DType::F64,
        shape: vec![values.len()],
        data: ArrayData::Binary(bytes.into()),
    }))
}
