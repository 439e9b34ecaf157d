//! Turns a checked spec into a complete Bokeh 3.9.2 DocJson.

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Map, Value};

use crate::error::SpecError;
use crate::model::{ModelRef, Models, Val};
use crate::plot::build_plot;
use crate::spec::{Dtype, Spec};
use crate::validate::{check, ResolvedColumns};
use crate::widget::build_widget;

/// The Bokeh version the documents are written for.
pub const BOKEH_VERSION: &str = "3.9.2";

/// The default grid cell size in pixels: width, height.
pub const DEFAULT_CELL: (u32, u32) = (400, 300);

/// Standard base64 of gzip of no bytes: the data of an empty binary column.
const EMPTY_GZIP_BASE64: &str = "H4sIAAAAAAACAwMAAAAAAAAAAAA=";

/// A source of a built document.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltSource {
    /// The `ColumnDataSource` model id.
    pub id: String,
    /// Its columns and their types, in order.
    pub columns: Vec<(String, Dtype)>,
    /// The rollover for streams that give none (`max_rows` of the spec).
    pub max_rows: Option<u64>,
}

/// A built document: the DocJson, and the model ids of the spec's named entries.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltDoc {
    /// The complete DocJson (`version`, `title`, `config`, `roots`).
    pub doc: Value,
    /// Source name → its model and columns.
    pub sources: BTreeMap<String, BuiltSource>,
    /// Plot name → `Figure` model id.
    pub plots: BTreeMap<String, String>,
    /// Plot name → the name of the source it draws.
    pub plot_sources: BTreeMap<String, String>,
    /// Widget name → model id.
    pub widgets: BTreeMap<String, String>,
}

impl BuiltDoc {
    /// The DocJson as JSON text.
    pub fn to_json_string(&self) -> String {
        self.doc.to_string()
    }
}

/// The model id of source `name`'s `ColumnDataSource`.
pub fn source_id(name: &str) -> String {
    format!("source:{name}")
}

/// The model id of plot `name`'s `Figure`.
pub fn plot_id(name: &str) -> String {
    format!("plot:{name}")
}

/// The model id of the glyph of renderer `i` of plot `name` (a multi_line plot has one
/// renderer per y column; every other kind has one).
pub fn glyph_id(name: &str, i: usize) -> String {
    format!("plot:{name}:r{i}:glyph")
}

/// The model id of plot `name`'s x range.
pub fn x_range_id(name: &str) -> String {
    format!("plot:{name}:x_range")
}

/// Checks `spec` and builds its document. Model ids are derived from the spec's names
/// (`plot:loss`, `source:train`, `plot:loss:r0`, ...), so building a changed spec again
/// keeps the ids of everything that did not change.
pub fn build(spec: &Spec) -> Result<BuiltDoc, SpecError> {
    let resolved = check(spec)?;
    let mut g = Models::new();
    let mut sources = BTreeMap::new();
    let mut source_models: Vec<(String, ModelRef, &ResolvedColumns)> = Vec::new();
    for ((name, cols), (_, src)) in resolved.iter().zip(spec.sources.iter()) {
        let m = source(&mut g, name, cols)?;
        sources.insert(
            name.clone(),
            BuiltSource {
                id: g.id(m).to_owned(),
                columns: cols.clone(),
                max_rows: src.max_rows,
            },
        );
        source_models.push((name.clone(), m, cols));
    }
    let find_source = |name: &str| {
        source_models
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, m, c)| (*m, *c))
    };

    let (cell_w, cell_h) = spec.layout.as_ref().map_or(DEFAULT_CELL, |l| {
        (
            l.cell_width.unwrap_or(DEFAULT_CELL.0),
            l.cell_height.unwrap_or(DEFAULT_CELL.1),
        )
    });
    let cell_of = |name: &str, row: u32| -> [u32; 4] {
        spec.layout
            .as_ref()
            .and_then(|l| l.grid.get(name).copied())
            .unwrap_or([row, 0, 1, 1])
    };

    let mut children = Vec::new();
    let mut used = HashSet::new();
    let mut plots = BTreeMap::new();
    let mut plot_sources = BTreeMap::new();
    let mut row = 0;
    for (name, p) in spec.plots.iter() {
        let Some((src, _)) = find_source(&p.source) else {
            return Err(SpecError::invalid(
                format!("plots.{name}.source"),
                format!("no source \"{}\"", p.source),
            ));
        };
        // A plot with no series yet (streamvis, before the first data) draws nothing, so
        // its source is held in `tags` until it does.
        if p.y.as_ref().is_none_or(|y| !y.names().is_empty()) {
            used.insert(p.source.clone());
        }
        let cell = cell_of(name, row);
        let size = (
            p.width.unwrap_or(cell[3] * cell_w),
            p.height.unwrap_or(cell[2] * cell_h),
        );
        let lod = spec
            .sources
            .get(&p.source)
            .is_some_and(|src| crate::plot::lod_capable(p, src));
        let m = build_plot(&mut g, name, p, src, size, lod)?;
        plots.insert(name.to_owned(), g.id(m).to_owned());
        plot_sources.insert(name.to_owned(), p.source.clone());
        children.push((m, cell));
        row += 1;
    }
    let mut widgets = BTreeMap::new();
    for (name, w) in spec.widgets.iter() {
        let table = w.source.as_deref().and_then(find_source);
        if let Some(s) = &w.source {
            used.insert(s.clone());
        }
        let m = build_widget(&mut g, name, w, table)?;
        widgets.insert(name.to_owned(), g.id(m).to_owned());
        children.push((m, cell_of(name, row)));
        row += 1;
    }

    let grid: Vec<Val> = children
        .iter()
        .map(|(m, [top, left, height, width])| {
            Val::List(vec![
                (*m).into(),
                json!(top).into(),
                json!(left).into(),
                json!(height).into(),
                json!(width).into(),
            ])
        })
        .collect();
    let mut root_attrs: Vec<(&'static str, Val)> = vec![
        ("name", json!("layout").into()),
        ("children", Val::List(grid)),
    ];
    // Sources that no plot or table draws still belong to the document: held in `tags`.
    let unused: Vec<Val> = source_models
        .iter()
        .filter(|(n, _, _)| !used.contains(n))
        .map(|(_, m, _)| Val::from(*m))
        .collect();
    if !unused.is_empty() {
        root_attrs.push(("tags", Val::List(unused)));
    }
    let root = g.add("layout", "GridBox", root_attrs)?;
    let notifications = g.add("doc:notifications", "Notifications", vec![])?;
    let config = g.add(
        "doc:config",
        "DocumentConfig",
        vec![("notifications", notifications.into())],
    )?;

    let mut written = HashSet::new();
    let mut doc = Map::new();
    doc.insert("version".into(), BOKEH_VERSION.into());
    doc.insert(
        "title".into(),
        spec.title.as_deref().unwrap_or("plotwire").into(),
    );
    doc.insert("config".into(), g.to_json(config, &mut written));
    doc.insert(
        "roots".into(),
        Value::Array(vec![g.to_json(root, &mut written)]),
    );
    Ok(BuiltDoc {
        doc: Value::Object(doc),
        sources,
        plots,
        plot_sources,
        widgets,
    })
}

/// Adds source `name` with empty typed columns.
fn source(g: &mut Models, name: &str, cols: &ResolvedColumns) -> Result<ModelRef, SpecError> {
    let id = source_id(name);
    let selection = g.add(
        format!("{id}:selected"),
        "Selection",
        vec![
            ("indices", json!([]).into()),
            ("line_indices", json!([]).into()),
        ],
    )?;
    let policy = g.add(format!("{id}:policy"), "UnionRenderers", vec![])?;
    let entries: Vec<Value> = cols
        .iter()
        .map(|(c, d)| json!([c, empty_column(*d)]))
        .collect();
    let data = if entries.is_empty() {
        json!({"type": "map"})
    } else {
        json!({"type": "map", "entries": entries})
    };
    g.add(
        id,
        "ColumnDataSource",
        vec![
            ("name", json!(name).into()),
            ("selected", selection.into()),
            ("selection_policy", policy.into()),
            ("data", data.into()),
        ],
    )
}

/// An empty column of type `d`: a zero-length ndarray for binary types, `[]` otherwise.
fn empty_column(d: Dtype) -> Value {
    match d.wire_dtype() {
        Some(dtype) => json!({
            "type": "ndarray",
            "array": {"type": "bytes", "data": EMPTY_GZIP_BASE64},
            "shape": [0],
            "dtype": dtype,
            "order": "little",
        }),
        None => json!([]),
    }
}
