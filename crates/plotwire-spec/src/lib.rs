//! The plotwire dashboard spec, and its translation into a Bokeh 3.9.2 document.
//!
//! A spec (docs/dashboard-spec.md) names sources, plots and widgets and places them on a
//! grid. [`parse`] reads one from JSON, refusing unknown fields with an error naming the
//! field's path; [`build`] checks it and writes the complete DocJson that BokehJS and
//! Python `bokeh` load, with the model ids of every named entry. [`streamvis`] gives the
//! spec that streamvis's `set_layout(grid_map)` implies.

mod build;
mod error;
pub mod limits;
mod model;
mod named;
mod palette;
mod plot;
mod spec;
pub mod streamvis;
mod validate;
mod widget;

pub use build::{
    build, glyph_id, plot_id, source_id, x_range_id, BuiltDoc, BuiltSource, BOKEH_VERSION,
    DEFAULT_CELL,
};
pub use error::SpecError;
pub use named::NamedMap;
pub use plot::{lod_capable, PLOT_EVENTS};
pub use spec::{
    AxisType, ButtonType, ClickPolicy, Columns, Dtype, LayoutSpec, LegendLocation, LegendSpec,
    Marker, Palette, PlotKind, PlotSpec, RangeSpec, SourceSpec, Spec, StepMode, Tool, WidgetKind,
    WidgetSpec,
};
pub use widget::BUTTON_EVENTS;

/// Reads a spec from JSON text. Only the shape is checked here; [`build`] checks the rules.
pub fn parse(json: &[u8]) -> Result<Spec, SpecError> {
    if json.len() > limits::MAX_SPEC_BYTES {
        return Err(SpecError::Parse {
            path: String::new(),
            message: format!(
                "a spec is at most {} bytes, not {}",
                limits::MAX_SPEC_BYTES,
                json.len()
            ),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let spec: Spec = serde_path_to_error::deserialize(&mut de).map_err(|e| SpecError::Parse {
        path: path_of(e.path()),
        message: strip_position(&e.inner().to_string()),
    })?;
    de.end().map_err(|e| SpecError::Parse {
        path: String::new(),
        message: e.to_string(),
    })?;
    Ok(spec)
}

/// Reads and builds a spec in one step.
pub fn build_json(json: &[u8]) -> Result<BuiltDoc, SpecError> {
    build(&parse(json)?)
}

/// serde_path_to_error's path, with `.` for the root written as empty.
fn path_of(path: &serde_path_to_error::Path) -> String {
    let p = path.to_string();
    if p == "." {
        String::new()
    } else {
        p
    }
}

/// serde_json appends " at line L column C"; the path says where, so that goes.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}
