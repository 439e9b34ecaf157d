//! The spec's types, as read from JSON (docs/dashboard-spec.md describes every field).

use std::fmt;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::named::NamedMap;

/// A whole dashboard: named sources, plots and widgets, and where they go on the page.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The document title (default `"plotwire"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The data sources, by name.
    #[serde(default)]
    pub sources: NamedMap<SourceSpec>,
    /// The plots, by name.
    #[serde(default)]
    pub plots: NamedMap<PlotSpec>,
    /// The widgets, by name.
    #[serde(default)]
    pub widgets: NamedMap<WidgetSpec>,
    /// The grid; without it every plot and widget gets a row of its own, in spec order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<LayoutSpec>,
}

/// A `ColumnDataSource`: its columns and how many rows to keep.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// The columns and their types. Without it, the columns are those the plots and
    /// tables use (float64, or image for an image plot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<NamedMap<Dtype>>,
    /// Keep only the newest `max_rows` rows: the rollover applied to streams that give none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// Level of detail: `true` sends every view a downsampled copy fitted to what it
    /// shows, `false` never does; absent, the server decides by the source's size (its
    /// `--lod-threshold`). Only line, multi_line, step and area plots over a linear or
    /// datetime x axis are downsampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lod: Option<bool>,
}

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    /// 64-bit float.
    Float64,
    /// 32-bit float.
    Float32,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 8-bit integer.
    Int8,
    /// Unsigned 32-bit integer.
    Uint32,
    /// Unsigned 16-bit integer.
    Uint16,
    /// Unsigned 8-bit integer.
    Uint8,
    /// Boolean.
    Bool,
    /// Milliseconds since the epoch, as float64 (what Bokeh sends datetimes as).
    Datetime,
    /// Text.
    String,
    /// 2-D arrays, one per row (image plots).
    Image,
}

impl Dtype {
    /// The Bokeh ndarray dtype of a binary column, or `None` for list columns.
    pub fn wire_dtype(self) -> Option<&'static str> {
        match self {
            Dtype::Float64 | Dtype::Datetime => Some("float64"),
            Dtype::Float32 => Some("float32"),
            Dtype::Int32 => Some("int32"),
            Dtype::Int16 => Some("int16"),
            Dtype::Int8 => Some("int8"),
            Dtype::Uint32 => Some("uint32"),
            Dtype::Uint16 => Some("uint16"),
            Dtype::Uint8 => Some("uint8"),
            Dtype::Bool => Some("bool"),
            Dtype::String | Dtype::Image => None,
        }
    }

    /// Whether a plot can use the column as a coordinate or value.
    pub fn is_numeric(self) -> bool {
        !matches!(self, Dtype::String | Dtype::Image | Dtype::Bool)
    }

    /// The spec's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Datetime => "datetime",
            Dtype::String => "string",
            Dtype::Image => "image",
            other => other.wire_dtype().unwrap_or("object"),
        }
    }
}

/// What a plot draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlotKind {
    /// One line: `x`, `y`.
    Line,
    /// Tandem lines: one `x` and several `y` columns, one line each.
    MultiLine,
    /// Markers at `x`, `y`.
    Scatter,
    /// A step line at `x`, `y`.
    Step,
    /// The area between `baseline` and `y`.
    Area,
    /// Vertical bars at `x` up to `y` (histograms).
    Vbar,
    /// A 2-D array per row of the `image` column, coloured by a colour map.
    Image,
    /// A rectangle per row at `x`, `y`, coloured by `value` through a colour map.
    Heatmap,
}

impl PlotKind {
    /// The spec's name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            PlotKind::Line => "line",
            PlotKind::MultiLine => "multi_line",
            PlotKind::Scatter => "scatter",
            PlotKind::Step => "step",
            PlotKind::Area => "area",
            PlotKind::Vbar => "vbar",
            PlotKind::Image => "image",
            PlotKind::Heatmap => "heatmap",
        }
    }
}

/// An axis type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AxisType {
    /// Linear (the default).
    #[default]
    Linear,
    /// Logarithmic.
    Log,
    /// Datetime: values are milliseconds since the epoch.
    Datetime,
}

/// One plot. Which fields a kind takes is listed in docs/dashboard-spec.md; a field that
/// its kind does not take is an error.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlotSpec {
    /// What it draws.
    pub kind: PlotKind,
    /// The name of its source.
    pub source: String,
    /// The title shown above the plot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The x axis label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_label: Option<String>,
    /// The y axis label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_label: Option<String>,
    /// The x axis type.
    #[serde(default)]
    pub x_axis: AxisType,
    /// The y axis type.
    #[serde(default)]
    pub y_axis: AxisType,
    /// The x range (default: fit the data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_range: Option<RangeSpec>,
    /// The y range (default: fit the data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_range: Option<RangeSpec>,
    /// Show a legend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legend: Option<LegendSpec>,
    /// The toolbar's tools (default pan, wheel_zoom, box_zoom, reset, save).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Width in pixels (default: from the grid cell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels (default: from the grid cell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// The x column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// The y column (several for multi_line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<Columns>,
    /// The legend label of each series (default: the y column names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Columns>,
    /// The colour of a single series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// A palette name or a list of colours: series colours (multi_line) or the colour map
    /// (image, heatmap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub palette: Option<Palette>,
    /// Line width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_width: Option<f64>,
    /// Fill (and marker) opacity, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Scatter marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<Marker>,
    /// Scatter marker size in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<f64>,
    /// Where a step plot's steps are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<StepMode>,
    /// The y an area or bar starts from (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// The width of each bar in x units (default 0.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bar_width: Option<f64>,
    /// The image column (default "image").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The value column of a heatmap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where an image is drawn: `[x, y, dw, dh]` in data units (default `[0, 0, 1, 1]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extent: Option<[f64; 4]>,
    /// Heatmap cell size `[width, height]` in data units (default `[1, 1]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<[f64; 2]>,
    /// The value mapped to the first colour (default: the data's minimum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    /// The value mapped to the last colour (default: the data's maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// Show a colour bar at the right (default true for image and heatmap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color_bar: Option<bool>,
}

/// One column name, or several.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Columns {
    /// One name.
    One(String),
    /// Several names.
    Many(Vec<String>),
}

impl Columns {
    /// The names, one or several.
    pub fn names(&self) -> Vec<&str> {
        match self {
            Columns::One(n) => vec![n.as_str()],
            Columns::Many(ns) => ns.iter().map(String::as_str).collect(),
        }
    }
}

impl<'de> Deserialize<'de> for Columns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ColumnsVisitor;

        impl<'de> Visitor<'de> for ColumnsVisitor {
            type Value = Columns;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a column name or a list of column names")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Columns, E> {
                Ok(Columns::One(v.to_owned()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Columns, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(Columns::Many(names))
            }
        }

        deserializer.deserialize_any(ColumnsVisitor)
    }
}

/// A palette: a name (`viridis`, `magma`, `inferno`, `plasma`, `greys`, `category10`,
/// optionally with a size, `viridis:16`) or a list of colours.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Palette {
    /// A built-in palette by name.
    Named(String),
    /// Explicit colours.
    Colors(Vec<String>),
}

impl<'de> Deserialize<'de> for Palette {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Columns::deserialize(deserializer)? {
            Columns::One(name) => Palette::Named(name),
            Columns::Many(colors) => Palette::Colors(colors),
        })
    }
}

/// A range: fixed (`start` and `end`), following the newest data (`follow`), or fitted
/// to the data (default).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    /// The start (with `end`: a fixed range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    /// The end (with `start`: a fixed range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
    /// Show only the last `follow` units of the data (the newest `follow` points when x
    /// is a step counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<f64>,
    /// Padding around fitted data, as a fraction of the span (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<f64>,
}

/// Where the legend goes and what clicking an entry does.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LegendSpec {
    /// Location inside the plot (default `top_right`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LegendLocation>,
    /// What a click on an entry does (default `hide`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_policy: Option<ClickPolicy>,
}

/// A legend location inside the plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegendLocation {
    TopLeft,
    TopCenter,
    TopRight,
    CenterLeft,
    Center,
    CenterRight,
    BottomLeft,
    BottomCenter,
    BottomRight,
}

/// What a click on a legend entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClickPolicy {
    /// Nothing.
    None,
    /// Hide the series.
    Hide,
    /// Dim the series.
    Mute,
}

/// A toolbar tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    Pan,
    Xpan,
    Ypan,
    WheelZoom,
    XwheelZoom,
    YwheelZoom,
    BoxZoom,
    XboxZoom,
    Reset,
    Save,
    Hover,
    Tap,
    Crosshair,
    BoxSelect,
    Undo,
    Redo,
}

/// A scatter marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
    Cross,
    X,
    Star,
    InvertedTriangle,
}

/// Where the steps of a step plot are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepMode {
    Before,
    Center,
    After,
}

/// What a widget is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WidgetKind {
    /// A number slider.
    Slider,
    /// A slider with two handles.
    RangeSlider,
    /// A push button.
    Button,
    /// A button that stays down.
    Toggle,
    /// A drop-down choice.
    Select,
    /// A one-line text field.
    TextInput,
    /// Check boxes.
    CheckboxGroup,
    /// A table of a source's rows.
    DataTable,
}

impl WidgetKind {
    /// The spec's name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            WidgetKind::Slider => "slider",
            WidgetKind::RangeSlider => "range_slider",
            WidgetKind::Button => "button",
            WidgetKind::Toggle => "toggle",
            WidgetKind::Select => "select",
            WidgetKind::TextInput => "text_input",
            WidgetKind::CheckboxGroup => "checkbox_group",
            WidgetKind::DataTable => "data_table",
        }
    }
}

/// One widget. Which fields a kind takes is listed in docs/dashboard-spec.md; a field that
/// its kind does not take is an error.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetSpec {
    /// What it is.
    pub kind: WidgetKind,
    /// The title shown with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A button's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A slider's lowest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    /// A slider's highest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
    /// A slider's step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    /// The initial value: a number (slider), `[low, high]` (range_slider), a string
    /// (select, text_input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Whether a toggle starts down (bool), or the checked boxes (list of indices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<Value>,
    /// A select's choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// A checkbox group's boxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// A text input's placeholder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// A button's look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_type: Option<ButtonType>,
    /// A data table's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A data table's columns (default: all the source's columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels (data_table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// A button's look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonType {
    Default,
    Primary,
    Success,
    Warning,
    Danger,
    Light,
}

/// The grid, in streamvis's form: name → `[top, left, height, width]` in cells.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutSpec {
    /// Where each plot and widget goes.
    pub grid: NamedMap<[u32; 4]>,
    /// The width of one cell in pixels (default 400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_width: Option<u32>,
    /// The height of one cell in pixels (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_height: Option<u32>,
}
