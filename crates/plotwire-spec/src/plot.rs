//! Builds one plot of the spec as a Bokeh `Figure` with its ranges, axes, renderers,
//! toolbar, legend and colour bar.

use serde_json::{json, Value};

use crate::error::SpecError;
use crate::model::{field, set_of, value, ModelRef, Models, Val};
use crate::palette::{resolve, series_color};
use crate::spec::{
    AxisType, ClickPolicy, LegendLocation, PlotKind, PlotSpec, RangeSpec, SourceSpec, StepMode,
    Tool,
};
use crate::validate::series;

/// The events a plot sends to the server (bokehjs-views-lod-ajax.md §3.6, §5.4).
pub const PLOT_EVENTS: [&str; 4] = ["rangesupdate", "lodend", "reset", "tap"];

/// The tools of a plot that gives none.
const DEFAULT_TOOLS: [Tool; 5] = [
    Tool::Pan,
    Tool::WheelZoom,
    Tool::BoxZoom,
    Tool::Reset,
    Tool::Save,
];

/// Whether plot `p` draws a series that level of detail can downsample: a line,
/// multi_line, step or area plot over a linear or datetime x axis, of a source that does
/// not opt out (`lod: false`).
pub fn lod_capable(p: &PlotSpec, source: &SourceSpec) -> bool {
    matches!(
        p.kind,
        PlotKind::Line | PlotKind::MultiLine | PlotKind::Step | PlotKind::Area
    ) && p.x_axis != AxisType::Log
        && source.lod != Some(false)
}

/// Adds plot `name` to `g`, drawing from `source`, `size` pixels wide and high. A plot
/// that level of detail may serve (`lod`) gets an explicit x `Range1d` that the server
/// sets for each view (a `DataRange1d` would refit to every downsampled copy and fight
/// the viewer's zoom), and its y range fits the data inside the visible x range.
pub fn build_plot(
    g: &mut Models,
    name: &str,
    p: &PlotSpec,
    source: ModelRef,
    size: (u32, u32),
    lod: bool,
) -> Result<ModelRef, SpecError> {
    let id = |part: &str| format!("plot:{name}:{part}");
    let x_range_id = crate::build::x_range_id(name);
    let x_range = if lod {
        server_range(g, x_range_id, p.x_range.as_ref())?
    } else {
        range(g, x_range_id, p.x_range.as_ref())?
    };
    let y_range = range(g, id("y_range"), p.y_range.as_ref())?;
    let x_scale = g.add(id("x_scale"), scale_name(p.x_axis), vec![])?;
    let y_scale = g.add(id("y_scale"), scale_name(p.y_axis), vec![])?;
    let x_axis = axis(g, &id("x_axis"), p.x_axis, p.x_label.as_deref())?;
    let y_axis = axis(g, &id("y_axis"), p.y_axis, p.y_label.as_deref())?;
    let title = g.add(
        id("title"),
        "Title",
        vec![("text", json!(p.title.as_deref().unwrap_or("")).into())],
    )?;

    let glyphs = glyphs(g, name, p)?;
    let mut renderers = Vec::with_capacity(glyphs.len());
    for (i, glyph) in glyphs.iter().enumerate() {
        let filter = g.add(id(&format!("r{i}:filter")), "AllIndices", vec![])?;
        let view = g.add(
            id(&format!("r{i}:view")),
            "CDSView",
            vec![("filter", filter.into())],
        )?;
        renderers.push(g.add(
            id(&format!("r{i}")),
            "GlyphRenderer",
            vec![
                ("data_source", source.into()),
                ("view", view.into()),
                ("glyph", (*glyph).into()),
            ],
        )?);
    }

    let x_grid = g.add(id("x_grid"), "Grid", vec![("axis", x_axis.into())])?;
    let y_grid = g.add(
        id("y_grid"),
        "Grid",
        vec![("dimension", json!(1).into()), ("axis", y_axis.into())],
    )?;
    let mut center: Vec<Val> = vec![x_grid.into(), y_grid.into()];
    if p.legend.is_some() || p.labels.is_some() {
        center.push(legend(g, name, p, &renderers)?.into());
    }
    let tools = toolbar(g, name, p)?;
    let mut attrs: Vec<(&'static str, Val)> = vec![
        ("name", json!(name).into()),
        ("width", json!(size.0).into()),
        ("height", json!(size.1).into()),
        ("title", title.into()),
        ("x_range", x_range.into()),
        ("y_range", y_range.into()),
        ("x_scale", x_scale.into()),
        ("y_scale", y_scale.into()),
        (
            "renderers",
            Val::List(renderers.into_iter().map(Val::from).collect()),
        ),
        ("toolbar", tools.into()),
        ("left", Val::List(vec![y_axis.into()])),
        ("below", Val::List(vec![x_axis.into()])),
        ("center", Val::List(center)),
    ];
    if matches!(p.kind, PlotKind::Image | PlotKind::Heatmap) && p.color_bar.unwrap_or(true) {
        let mapper = glyphs_mapper(g, name)?;
        let bar = g.add(
            id("color_bar"),
            "ColorBar",
            vec![("color_mapper", mapper.into())],
        )?;
        attrs.push(("right", Val::List(vec![bar.into()])));
    }
    if lod {
        attrs.push(("window_axis", json!("x").into()));
    }
    attrs.push(("subscribed_events", set_of(&PLOT_EVENTS)));
    g.add(crate::build::plot_id(name), "Figure", attrs)
}

fn scale_name(axis: AxisType) -> &'static str {
    match axis {
        AxisType::Log => "LogScale",
        AxisType::Linear | AxisType::Datetime => "LinearScale",
    }
}

/// The x range of a plot that level of detail may serve: a `Range1d`, fixed when the
/// spec fixes it, else a placeholder that the server replaces for each view (fitting or
/// following the data).
fn server_range(g: &mut Models, id: String, r: Option<&RangeSpec>) -> Result<ModelRef, SpecError> {
    let (start, end) = match r {
        Some(RangeSpec {
            start: Some(s),
            end: Some(e),
            ..
        }) => (*s, *e),
        _ => (0.0, 1.0),
    };
    g.add(
        id,
        "Range1d",
        vec![("start", json!(start).into()), ("end", json!(end).into())],
    )
}

fn range(g: &mut Models, id: String, r: Option<&RangeSpec>) -> Result<ModelRef, SpecError> {
    let r = r.cloned().unwrap_or_default();
    if let (Some(start), Some(end)) = (r.start, r.end) {
        return g.add(
            id,
            "Range1d",
            vec![("start", json!(start).into()), ("end", json!(end).into())],
        );
    }
    let mut attrs: Vec<(&'static str, Val)> = Vec::new();
    if let Some(n) = r.follow {
        attrs.push(("follow", json!("end").into()));
        attrs.push(("follow_interval", json!(n).into()));
    }
    if let Some(pad) = r.padding {
        attrs.push(("range_padding", json!(pad).into()));
    }
    g.add(id, "DataRange1d", attrs)
}

fn axis(
    g: &mut Models,
    id: &str,
    kind: AxisType,
    label: Option<&str>,
) -> Result<ModelRef, SpecError> {
    let (axis, ticker, formatter) = match kind {
        AxisType::Linear => ("LinearAxis", "BasicTicker", "BasicTickFormatter"),
        AxisType::Log => ("LogAxis", "LogTicker", "LogTickFormatter"),
        AxisType::Datetime => ("DatetimeAxis", "DatetimeTicker", "DatetimeTickFormatter"),
    };
    let ticker = g.add(format!("{id}:ticker"), ticker, vec![])?;
    let formatter = g.add(format!("{id}:formatter"), formatter, vec![])?;
    let policy = g.add(format!("{id}:labels"), "AllLabels", vec![])?;
    let mut attrs: Vec<(&'static str, Val)> = vec![
        ("ticker", ticker.into()),
        ("formatter", formatter.into()),
        ("major_label_policy", policy.into()),
    ];
    if let Some(label) = label {
        attrs.push(("axis_label", json!(label).into()));
    }
    g.add(id, axis, attrs)
}

/// The glyphs of plot `name`, one per renderer.
fn glyphs(g: &mut Models, name: &str, p: &PlotSpec) -> Result<Vec<ModelRef>, SpecError> {
    let x = p.x.as_deref().unwrap_or("x");
    let ys = series(p);
    let y = ys.first().copied().unwrap_or("y");
    let color = p
        .color
        .clone()
        .unwrap_or_else(|| series_color(0).to_owned());
    let alpha = p.alpha.unwrap_or(1.0);
    let line_width = p.line_width.unwrap_or(1.0);
    let baseline = p.baseline.unwrap_or(0.0);
    let one = |g: &mut Models, kind: &'static str, attrs: Vec<(&'static str, Val)>| {
        g.add(crate::glyph_id(name, 0), kind, attrs)
            .map(|m| vec![m])
    };
    match p.kind {
        PlotKind::Line => one(
            g,
            "Line",
            vec![
                ("x", field(x)),
                ("y", field(y)),
                ("line_color", json!(color).into()),
                ("line_width", json!(line_width).into()),
            ],
        ),
        PlotKind::MultiLine => {
            let colors = match &p.palette {
                Some(pal) => resolve(&format!("plots.{name}.palette"), pal, ys.len().max(1))?,
                None => (0..ys.len()).map(|i| series_color(i).to_owned()).collect(),
            };
            let mut out = Vec::with_capacity(ys.len());
            for (i, y) in ys.iter().enumerate() {
                let c = colors
                    .get(i % colors.len().max(1))
                    .cloned()
                    .unwrap_or_default();
                out.push(g.add(
                    crate::glyph_id(name, i),
                    "Line",
                    vec![
                        ("x", field(x)),
                        ("y", field(y)),
                        ("line_color", json!(c).into()),
                        ("line_width", json!(line_width).into()),
                    ],
                )?);
            }
            Ok(out)
        }
        PlotKind::Scatter => {
            let marker = p.marker.map_or(Value::from("circle"), |m| json!(m));
            one(
                g,
                "Scatter",
                vec![
                    ("x", field(x)),
                    ("y", field(y)),
                    ("size", value(p.size.unwrap_or(6.0))),
                    ("marker", value(marker)),
                    ("line_color", value(color.clone())),
                    ("fill_color", value(color)),
                    ("fill_alpha", value(alpha)),
                ],
            )
        }
        PlotKind::Step => one(
            g,
            "Step",
            vec![
                ("x", field(x)),
                ("y", field(y)),
                ("line_color", json!(color).into()),
                ("line_width", json!(line_width).into()),
                ("mode", json!(p.mode.unwrap_or(StepMode::Before)).into()),
            ],
        ),
        PlotKind::Area => one(
            g,
            "VArea",
            vec![
                ("x", field(x)),
                ("y1", value(baseline)),
                ("y2", field(y)),
                ("fill_color", json!(color).into()),
                ("fill_alpha", json!(alpha).into()),
            ],
        ),
        PlotKind::Vbar => one(
            g,
            "VBar",
            vec![
                ("x", field(x)),
                ("width", value(p.bar_width.unwrap_or(0.9))),
                ("top", field(y)),
                ("bottom", value(baseline)),
                ("line_color", value(color.clone())),
                ("fill_color", value(color)),
                ("fill_alpha", value(alpha)),
            ],
        ),
        PlotKind::Image => {
            let mapper = mapper(g, name, p)?;
            let [x0, y0, dw, dh] = p.extent.unwrap_or([0.0, 0.0, 1.0, 1.0]);
            one(
                g,
                "Image",
                vec![
                    ("image", field(p.image.as_deref().unwrap_or("image"))),
                    ("x", value(x0)),
                    ("y", value(y0)),
                    ("dw", value(dw)),
                    ("dh", value(dh)),
                    ("color_mapper", mapper.into()),
                ],
            )
        }
        PlotKind::Heatmap => {
            let mapper = mapper(g, name, p)?;
            let [w, h] = p.cell.unwrap_or([1.0, 1.0]);
            let fill = Val::Obj(vec![
                ("type", json!("field").into()),
                ("field", json!(p.value.as_deref().unwrap_or("value")).into()),
                ("transform", mapper.into()),
            ]);
            one(
                g,
                "Rect",
                vec![
                    ("x", field(x)),
                    ("y", field(y)),
                    ("width", value(w)),
                    ("height", value(h)),
                    ("fill_color", fill),
                    ("fill_alpha", value(alpha)),
                    ("line_color", value(Value::Null)),
                ],
            )
        }
    }
}

fn mapper(g: &mut Models, name: &str, p: &PlotSpec) -> Result<ModelRef, SpecError> {
    let palette = match &p.palette {
        Some(pal) => resolve(&format!("plots.{name}.palette"), pal, 256)?,
        None => resolve("", &crate::spec::Palette::Named("viridis".into()), 256)?,
    };
    let mut attrs: Vec<(&'static str, Val)> = vec![("palette", json!(palette).into())];
    if let Some(low) = p.low {
        attrs.push(("low", json!(low).into()));
    }
    if let Some(high) = p.high {
        attrs.push(("high", json!(high).into()));
    }
    g.add(
        format!("plot:{name}:color_mapper"),
        "LinearColorMapper",
        attrs,
    )
}

/// The colour mapper already added for plot `name` (a reference for the colour bar).
fn glyphs_mapper(g: &mut Models, name: &str) -> Result<ModelRef, SpecError> {
    g.find(&format!("plot:{name}:color_mapper"))
        .ok_or_else(|| SpecError::invalid(format!("plots.{name}"), "no colour mapper to show"))
}

fn legend(
    g: &mut Models,
    name: &str,
    p: &PlotSpec,
    renderers: &[ModelRef],
) -> Result<ModelRef, SpecError> {
    let ys = series(p);
    let labels: Vec<String> = match &p.labels {
        Some(l) => l.names().into_iter().map(str::to_owned).collect(),
        None => ys.iter().map(|s| (*s).to_owned()).collect(),
    };
    let mut items = Vec::with_capacity(renderers.len());
    for (i, (r, label)) in renderers.iter().zip(labels).enumerate() {
        items.push(Val::from(g.add(
            format!("plot:{name}:legend:{i}"),
            "LegendItem",
            vec![
                ("label", value(label)),
                ("renderers", Val::List(vec![(*r).into()])),
            ],
        )?));
    }
    let spec = p.legend.clone().unwrap_or_default();
    let location = spec.location.unwrap_or(LegendLocation::TopRight);
    let click = spec.click_policy.unwrap_or(ClickPolicy::Hide);
    g.add(
        format!("plot:{name}:legend"),
        "Legend",
        vec![
            ("location", json!(location).into()),
            ("click_policy", json!(click).into()),
            ("items", Val::List(items)),
        ],
    )
}

fn toolbar(g: &mut Models, name: &str, p: &PlotSpec) -> Result<ModelRef, SpecError> {
    let tools = p.tools.clone().unwrap_or_else(|| DEFAULT_TOOLS.to_vec());
    let mut reps = Vec::with_capacity(tools.len());
    for tool in tools {
        let dims = |d: &str| vec![("dimensions", Val::from(json!(d)))];
        let (kind, attrs): (&'static str, Vec<(&'static str, Val)>) = match tool {
            Tool::Pan => ("PanTool", vec![]),
            Tool::Xpan => ("PanTool", dims("width")),
            Tool::Ypan => ("PanTool", dims("height")),
            Tool::WheelZoom => ("WheelZoomTool", vec![]),
            Tool::XwheelZoom => ("WheelZoomTool", dims("width")),
            Tool::YwheelZoom => ("WheelZoomTool", dims("height")),
            Tool::BoxZoom => ("BoxZoomTool", vec![]),
            Tool::XboxZoom => ("BoxZoomTool", dims("width")),
            Tool::Reset => ("ResetTool", vec![]),
            Tool::Save => ("SaveTool", vec![]),
            Tool::Hover => ("HoverTool", vec![("tooltips", hover_tooltips(p))]),
            Tool::Tap => ("TapTool", vec![]),
            Tool::Crosshair => ("CrosshairTool", vec![]),
            Tool::BoxSelect => ("BoxSelectTool", vec![]),
            Tool::Undo => ("UndoTool", vec![]),
            Tool::Redo => ("RedoTool", vec![]),
        };
        let tool_name = serde_json::to_value(tool)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        reps.push(Val::from(g.add(
            format!("plot:{name}:tool:{tool_name}"),
            kind,
            attrs,
        )?));
    }
    g.add(
        format!("plot:{name}:toolbar"),
        "Toolbar",
        vec![("tools", Val::List(reps))],
    )
}

/// `[[column, "@{column}"], ...]` for the columns a plot draws.
fn hover_tooltips(p: &PlotSpec) -> Val {
    let mut cols: Vec<&str> = Vec::new();
    match p.kind {
        PlotKind::Image => cols.push(p.image.as_deref().unwrap_or("image")),
        _ => {
            cols.extend(p.x.as_deref());
            cols.extend(series(p));
            cols.extend(p.value.as_deref());
        }
    }
    let pairs: Vec<Value> = cols
        .iter()
        .map(|c| json!([c, format!("@{{{c}}}")]))
        .collect();
    Val::Json(Value::Array(pairs))
}
