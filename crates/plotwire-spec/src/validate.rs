//! Checks a parsed spec against its rules, and resolves each source's columns.

use serde_json::Value;

use crate::error::SpecError;
use crate::limits::*;
use crate::palette::{check_color, resolve};
use crate::spec::{
    AxisType, Columns, Dtype, PlotKind, PlotSpec, RangeSpec, Spec, WidgetKind, WidgetSpec,
};

/// A source's columns after validation: declared, or implied by the plots and tables.
pub type ResolvedColumns = Vec<(String, Dtype)>;

/// Checks `spec` and returns the columns of each source, in spec order.
pub fn check(spec: &Spec) -> Result<Vec<(String, ResolvedColumns)>, SpecError> {
    check_counts(spec)?;
    check_names(spec)?;
    if let Some(title) = &spec.title {
        check_text("title", title)?;
    }
    let mut resolved = Vec::with_capacity(spec.sources.len());
    for (name, source) in spec.sources.iter() {
        let declared = match &source.columns {
            Some(cols) => {
                if cols.len() > MAX_COLUMNS {
                    return Err(SpecError::invalid(
                        format!("sources.{name}.columns"),
                        format!("at most {MAX_COLUMNS} columns, not {}", cols.len()),
                    ));
                }
                for (col, _) in cols.iter() {
                    check_name(&format!("sources.{name}.columns.{col}"), col)?;
                }
                cols.0.clone()
            }
            None => Vec::new(),
        };
        resolved.push((name.to_owned(), declared));
    }
    for (name, plot) in spec.plots.iter() {
        check_plot(spec, name, plot, &mut resolved)?;
    }
    for (name, widget) in spec.widgets.iter() {
        check_widget(spec, name, widget, &mut resolved)?;
    }
    for (name, source) in spec.sources.iter() {
        let drawn = spec
            .plots
            .iter()
            .any(|(_, p)| p.source == name && crate::plot::lod_capable(p, source));
        if source.lod == Some(true) && !drawn {
            return Err(SpecError::invalid(
                format!("sources.{name}.lod"),
                "level of detail serves line, multi_line, step and area plots over a linear or datetime x axis, and no such plot draws this source",
            ));
        }
    }
    for (name, cols) in &resolved {
        if cols.len() > MAX_COLUMNS {
            return Err(SpecError::invalid(
                format!("sources.{name}"),
                format!("the plots and tables use more than {MAX_COLUMNS} columns"),
            ));
        }
    }
    check_layout(spec)?;
    Ok(resolved)
}

fn check_counts(spec: &Spec) -> Result<(), SpecError> {
    for (what, n, max) in [
        ("sources", spec.sources.len(), MAX_SOURCES),
        ("plots", spec.plots.len(), MAX_PLOTS),
        ("widgets", spec.widgets.len(), MAX_WIDGETS),
    ] {
        if n > max {
            return Err(SpecError::invalid(
                what,
                format!("at most {max} {what}, not {n}"),
            ));
        }
    }
    Ok(())
}

/// Checks a name: 1 to [`MAX_NAME`] bytes of letters, digits, `_`, `-` and `.`.
pub fn check_name(path: &str, name: &str) -> Result<(), SpecError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if name.is_empty() || name.len() > MAX_NAME || !ok_chars {
        return Err(SpecError::invalid(
            path,
            format!("\"{name}\" is not a name (1 to {MAX_NAME} letters, digits, '_', '-', '.')"),
        ));
    }
    Ok(())
}

/// Names are unique across sources, plots and widgets, because producers address models
/// by name.
fn check_names(spec: &Spec) -> Result<(), SpecError> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    let all = spec
        .sources
        .iter()
        .map(|(n, _)| ("sources", n))
        .chain(spec.plots.iter().map(|(n, _)| ("plots", n)))
        .chain(spec.widgets.iter().map(|(n, _)| ("widgets", n)));
    for (section, name) in all {
        let path = format!("{section}.{name}");
        check_name(&path, name)?;
        if let Some((other, _)) = seen.iter().find(|(_, n)| *n == name) {
            return Err(SpecError::invalid(
                path,
                format!("the name \"{name}\" is already used in {other}"),
            ));
        }
        seen.push((section, name));
    }
    Ok(())
}

fn check_text(path: &str, text: &str) -> Result<(), SpecError> {
    let n = text.chars().count();
    if n > MAX_TEXT {
        return Err(SpecError::invalid(
            path,
            format!("at most {MAX_TEXT} characters, not {n}"),
        ));
    }
    Ok(())
}

fn check_pixels(path: &str, px: Option<u32>) -> Result<(), SpecError> {
    match px {
        Some(v) if !(MIN_PIXELS..=MAX_PIXELS).contains(&v) => Err(SpecError::invalid(
            path,
            format!("{v} is not from {MIN_PIXELS} to {MAX_PIXELS} pixels"),
        )),
        _ => Ok(()),
    }
}

fn check_number(path: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<(), SpecError> {
    match v {
        Some(x) if !(x.is_finite() && lo <= x && x <= hi) => Err(SpecError::invalid(
            path,
            format!("{x} is not from {lo} to {hi}"),
        )),
        _ => Ok(()),
    }
}

fn finite(path: &str, v: Option<f64>) -> Result<(), SpecError> {
    check_number(path, v, f64::MIN, f64::MAX)
}

/// Records that `source` has column `col` of type `dtype` (checking a declared type is
/// compatible), and returns an error naming `path` if the source declares its columns
/// and `col` is not one of them.
fn use_column(
    spec: &Spec,
    resolved: &mut [(String, ResolvedColumns)],
    source: &str,
    path: &str,
    col: &str,
    dtype: Dtype,
) -> Result<(), SpecError> {
    check_name(path, col)?;
    let declared = spec
        .sources
        .get(source)
        .is_some_and(|s| s.columns.is_some());
    let Some((_, cols)) = resolved.iter_mut().find(|(n, _)| n == source) else {
        return Err(SpecError::invalid(path, format!("no source \"{source}\"")));
    };
    match cols.iter().find(|(n, _)| n == col) {
        Some((_, have)) => {
            let fits = match dtype {
                Dtype::Image => *have == Dtype::Image,
                Dtype::String => true,
                _ => have.is_numeric(),
            };
            if !fits {
                return Err(SpecError::invalid(
                    path,
                    format!(
                        "column \"{col}\" of \"{source}\" is {}, not usable here",
                        have.name()
                    ),
                ));
            }
        }
        None if declared => {
            return Err(SpecError::invalid(
                path,
                format!("source \"{source}\" declares no column \"{col}\""),
            ))
        }
        None => cols.push((col.to_owned(), dtype)),
    }
    Ok(())
}

/// The plot fields each kind takes besides the common ones.
fn plot_kind_fields(kind: PlotKind) -> &'static [&'static str] {
    match kind {
        PlotKind::Line => &["x", "y", "labels", "color", "line_width"],
        PlotKind::MultiLine => &["x", "y", "labels", "palette", "line_width"],
        PlotKind::Scatter => &["x", "y", "labels", "color", "alpha", "marker", "size"],
        PlotKind::Step => &["x", "y", "labels", "color", "line_width", "mode"],
        PlotKind::Area => &["x", "y", "labels", "color", "alpha", "baseline"],
        PlotKind::Vbar => &[
            "x",
            "y",
            "labels",
            "color",
            "alpha",
            "baseline",
            "bar_width",
        ],
        PlotKind::Image => &["image", "extent", "palette", "low", "high", "color_bar"],
        PlotKind::Heatmap => &[
            "x",
            "y",
            "value",
            "cell",
            "palette",
            "alpha",
            "low",
            "high",
            "color_bar",
        ],
    }
}

/// The kind-specific fields that `plot` sets.
fn plot_fields_set(p: &PlotSpec) -> Vec<&'static str> {
    let flags = [
        ("x", p.x.is_some()),
        ("y", p.y.is_some()),
        ("labels", p.labels.is_some()),
        ("color", p.color.is_some()),
        ("palette", p.palette.is_some()),
        ("line_width", p.line_width.is_some()),
        ("alpha", p.alpha.is_some()),
        ("marker", p.marker.is_some()),
        ("size", p.size.is_some()),
        ("mode", p.mode.is_some()),
        ("baseline", p.baseline.is_some()),
        ("bar_width", p.bar_width.is_some()),
        ("image", p.image.is_some()),
        ("value", p.value.is_some()),
        ("extent", p.extent.is_some()),
        ("cell", p.cell.is_some()),
        ("low", p.low.is_some()),
        ("high", p.high.is_some()),
        ("color_bar", p.color_bar.is_some()),
    ];
    flags
        .iter()
        .filter(|(_, set)| *set)
        .map(|(f, _)| *f)
        .collect()
}

fn check_plot(
    spec: &Spec,
    name: &str,
    p: &PlotSpec,
    resolved: &mut [(String, ResolvedColumns)],
) -> Result<(), SpecError> {
    let at = |f: &str| format!("plots.{name}.{f}");
    let kind = p.kind.name();
    let allowed = plot_kind_fields(p.kind);
    for f in plot_fields_set(p) {
        if !allowed.contains(&f) {
            return Err(SpecError::invalid(
                at(f),
                format!("a {kind} plot has no field \"{f}\""),
            ));
        }
    }
    if spec.sources.get(&p.source).is_none() {
        return Err(SpecError::invalid(
            at("source"),
            format!("no source \"{}\"", p.source),
        ));
    }
    for (f, text) in [
        ("title", &p.title),
        ("x_label", &p.x_label),
        ("y_label", &p.y_label),
    ] {
        if let Some(t) = text {
            check_text(&at(f), t)?;
        }
    }
    check_pixels(&at("width"), p.width)?;
    check_pixels(&at("height"), p.height)?;
    check_range(&at("x_range"), p.x_range.as_ref(), p.x_axis)?;
    check_range(&at("y_range"), p.y_range.as_ref(), p.y_axis)?;
    if let Some(tools) = &p.tools {
        if tools.len() > MAX_TOOLS {
            return Err(SpecError::invalid(
                at("tools"),
                format!("at most {MAX_TOOLS} tools"),
            ));
        }
        for (i, t) in tools.iter().enumerate() {
            if tools[..i].contains(t) {
                return Err(SpecError::invalid(
                    format!("{}.{i}", at("tools")),
                    "a tool given twice",
                ));
            }
        }
    }
    if let Some(c) = &p.color {
        check_color(&at("color"), c)?;
    }
    if let Some(pal) = &p.palette {
        resolve(&at("palette"), pal, 256)?;
    }
    check_number(&at("line_width"), p.line_width, 0.0, 100.0)?;
    check_number(&at("alpha"), p.alpha, 0.0, 1.0)?;
    check_number(&at("size"), p.size, 0.0, 1000.0)?;
    finite(&at("baseline"), p.baseline)?;
    check_number(&at("bar_width"), p.bar_width, 0.0, f64::MAX)?;
    finite(&at("low"), p.low)?;
    finite(&at("high"), p.high)?;
    if let (Some(lo), Some(hi)) = (p.low, p.high) {
        if lo >= hi {
            return Err(SpecError::invalid(at("high"), "must be greater than low"));
        }
    }
    for (i, v) in p.extent.iter().flatten().enumerate() {
        finite(&format!("{}.{i}", at("extent")), Some(*v))?;
    }
    for (i, v) in p.cell.iter().flatten().enumerate() {
        check_number(
            &format!("{}.{i}", at("cell")),
            Some(*v),
            f64::MIN_POSITIVE,
            f64::MAX,
        )?;
    }
    if p.legend.is_some() && matches!(p.kind, PlotKind::Image | PlotKind::Heatmap) {
        return Err(SpecError::invalid(
            at("legend"),
            format!("a {kind} plot has no legend"),
        ));
    }
    let coord = |axis: AxisType| {
        if axis == AxisType::Datetime {
            Dtype::Datetime
        } else {
            Dtype::Float64
        }
    };
    match p.kind {
        PlotKind::Image => {
            let col = p.image.as_deref().unwrap_or("image");
            use_column(spec, resolved, &p.source, &at("image"), col, Dtype::Image)?;
        }
        PlotKind::Heatmap => {
            for (f, col, dtype) in [
                ("x", &p.x, coord(p.x_axis)),
                ("y", &p.y.as_ref().and_then(single), coord(p.y_axis)),
                ("value", &p.value, Dtype::Float64),
            ] {
                let Some(col) = col else {
                    return Err(SpecError::invalid(
                        at(f),
                        format!("a heatmap plot needs \"{f}\""),
                    ));
                };
                use_column(spec, resolved, &p.source, &at(f), col, dtype)?;
            }
        }
        _ => {
            let Some(x) = &p.x else {
                return Err(SpecError::invalid(
                    at("x"),
                    format!("a {kind} plot needs \"x\""),
                ));
            };
            use_column(spec, resolved, &p.source, &at("x"), x, coord(p.x_axis))?;
            let ys = series(p);
            if p.y.is_none() {
                return Err(SpecError::invalid(
                    at("y"),
                    format!("a {kind} plot needs \"y\""),
                ));
            }
            if p.kind != PlotKind::MultiLine && ys.len() != 1 {
                return Err(SpecError::invalid(
                    at("y"),
                    format!("a {kind} plot has one y column"),
                ));
            }
            if ys.len() > MAX_SERIES {
                return Err(SpecError::invalid(
                    at("y"),
                    format!("at most {MAX_SERIES} series, not {}", ys.len()),
                ));
            }
            for (i, y) in ys.iter().enumerate() {
                if ys[..i].contains(y) {
                    return Err(SpecError::invalid(
                        format!("{}.{i}", at("y")),
                        format!("\"{y}\" given twice"),
                    ));
                }
                use_column(
                    spec,
                    resolved,
                    &p.source,
                    &format!("{}.{i}", at("y")),
                    y,
                    coord(p.y_axis),
                )?;
            }
            if let Some(labels) = &p.labels {
                let n = labels.names().len();
                if n != ys.len() {
                    return Err(SpecError::invalid(
                        at("labels"),
                        format!("{n} labels for {} series", ys.len()),
                    ));
                }
                for (i, l) in labels.names().iter().enumerate() {
                    check_text(&format!("{}.{i}", at("labels")), l)?;
                }
            }
        }
    }
    Ok(())
}

fn single(c: &Columns) -> Option<String> {
    match c.names().as_slice() {
        [one] => Some((*one).to_owned()),
        _ => None,
    }
}

/// The y columns of a plot, in order.
pub fn series(p: &PlotSpec) -> Vec<&str> {
    p.y.as_ref().map(Columns::names).unwrap_or_default()
}

fn check_range(path: &str, r: Option<&RangeSpec>, axis: AxisType) -> Result<(), SpecError> {
    let Some(r) = r else { return Ok(()) };
    finite(&format!("{path}.start"), r.start)?;
    finite(&format!("{path}.end"), r.end)?;
    check_number(
        &format!("{path}.follow"),
        r.follow,
        f64::MIN_POSITIVE,
        f64::MAX,
    )?;
    check_number(&format!("{path}.padding"), r.padding, 0.0, 10.0)?;
    if r.start.is_some() != r.end.is_some() {
        return Err(SpecError::invalid(
            path,
            "give both start and end, or neither",
        ));
    }
    if r.follow.is_some() && r.start.is_some() {
        return Err(SpecError::invalid(
            format!("{path}.follow"),
            "a following range has no start and end",
        ));
    }
    if let (Some(s), Some(e)) = (r.start, r.end) {
        if s == e {
            return Err(SpecError::invalid(
                format!("{path}.end"),
                "must differ from start",
            ));
        }
        if axis == AxisType::Log && (s <= 0.0 || e <= 0.0) {
            return Err(SpecError::invalid(
                path,
                "a log axis needs a positive start and end",
            ));
        }
    }
    Ok(())
}

/// The widget fields each kind takes besides `kind` and `width`.
fn widget_kind_fields(kind: WidgetKind) -> &'static [&'static str] {
    match kind {
        WidgetKind::Slider | WidgetKind::RangeSlider => &["title", "start", "end", "step", "value"],
        WidgetKind::Button => &["label", "button_type"],
        WidgetKind::Toggle => &["label", "button_type", "active"],
        WidgetKind::Select => &["title", "options", "value"],
        WidgetKind::TextInput => &["title", "value", "placeholder"],
        WidgetKind::CheckboxGroup => &["labels", "active"],
        WidgetKind::DataTable => &["source", "columns", "height"],
    }
}

fn widget_fields_set(w: &WidgetSpec) -> Vec<&'static str> {
    let flags = [
        ("title", w.title.is_some()),
        ("label", w.label.is_some()),
        ("start", w.start.is_some()),
        ("end", w.end.is_some()),
        ("step", w.step.is_some()),
        ("value", w.value.is_some()),
        ("active", w.active.is_some()),
        ("options", w.options.is_some()),
        ("labels", w.labels.is_some()),
        ("placeholder", w.placeholder.is_some()),
        ("button_type", w.button_type.is_some()),
        ("source", w.source.is_some()),
        ("columns", w.columns.is_some()),
        ("height", w.height.is_some()),
    ];
    flags
        .iter()
        .filter(|(_, set)| *set)
        .map(|(f, _)| *f)
        .collect()
}

fn check_widget(
    spec: &Spec,
    name: &str,
    w: &WidgetSpec,
    resolved: &mut [(String, ResolvedColumns)],
) -> Result<(), SpecError> {
    let at = |f: &str| format!("widgets.{name}.{f}");
    let kind = w.kind.name();
    let allowed = widget_kind_fields(w.kind);
    for f in widget_fields_set(w) {
        if !allowed.contains(&f) {
            return Err(SpecError::invalid(
                at(f),
                format!("a {kind} widget has no field \"{f}\""),
            ));
        }
    }
    check_pixels(&at("width"), w.width)?;
    check_pixels(&at("height"), w.height)?;
    for (f, text) in [
        ("title", &w.title),
        ("label", &w.label),
        ("placeholder", &w.placeholder),
    ] {
        if let Some(t) = text {
            check_text(&at(f), t)?;
        }
    }
    for (f, list) in [
        ("options", &w.options),
        ("labels", &w.labels),
        ("columns", &w.columns),
    ] {
        if let Some(items) = list {
            if items.len() > MAX_CHOICES {
                return Err(SpecError::invalid(
                    at(f),
                    format!("at most {MAX_CHOICES} entries"),
                ));
            }
            for (i, t) in items.iter().enumerate() {
                check_text(&format!("{}.{i}", at(f)), t)?;
            }
        }
    }
    match w.kind {
        WidgetKind::Slider | WidgetKind::RangeSlider => check_slider(&at, w)?,
        WidgetKind::Button => {}
        WidgetKind::TextInput => {
            if let Some(v) = &w.value {
                let s = v
                    .as_str()
                    .ok_or_else(|| SpecError::invalid(at("value"), "expected a string"))?;
                check_text(&at("value"), s)?;
            }
        }
        WidgetKind::Toggle => {
            if w.active.as_ref().is_some_and(|a| !a.is_boolean()) {
                return Err(SpecError::invalid(at("active"), "expected true or false"));
            }
        }
        WidgetKind::Select => {
            let options = w.options.as_deref().unwrap_or_default();
            if options.is_empty() {
                return Err(SpecError::invalid(
                    at("options"),
                    "a select needs at least one option",
                ));
            }
            if let Some(v) = &w.value {
                match v.as_str() {
                    Some(s) if options.iter().any(|o| o == s) => {}
                    _ => {
                        return Err(SpecError::invalid(
                            at("value"),
                            "expected one of the options",
                        ))
                    }
                }
            }
        }
        WidgetKind::CheckboxGroup => {
            let n = w.labels.as_ref().map_or(0, Vec::len);
            if n == 0 {
                return Err(SpecError::invalid(
                    at("labels"),
                    "a checkbox group needs at least one label",
                ));
            }
            if let Some(active) = &w.active {
                let ok = active
                    .as_array()
                    .is_some_and(|a| a.iter().all(|i| i.as_u64().is_some_and(|i| i < n as u64)));
                if !ok {
                    return Err(SpecError::invalid(
                        at("active"),
                        format!("expected a list of box indices below {n}"),
                    ));
                }
            }
        }
        WidgetKind::DataTable => {
            let Some(source) = &w.source else {
                return Err(SpecError::invalid(
                    at("source"),
                    "a data table needs a source",
                ));
            };
            if spec.sources.get(source).is_none() {
                return Err(SpecError::invalid(
                    at("source"),
                    format!("no source \"{source}\""),
                ));
            }
            for (i, col) in w.columns.iter().flatten().enumerate() {
                use_column(
                    spec,
                    resolved,
                    source,
                    &format!("{}.{i}", at("columns")),
                    col,
                    Dtype::String,
                )?;
            }
        }
    }
    Ok(())
}

fn check_slider(at: &dyn Fn(&str) -> String, w: &WidgetSpec) -> Result<(), SpecError> {
    let (Some(start), Some(end)) = (w.start, w.end) else {
        return Err(SpecError::invalid(
            at("end"),
            "a slider needs start and end",
        ));
    };
    finite(&at("start"), Some(start))?;
    finite(&at("end"), Some(end))?;
    if start >= end {
        return Err(SpecError::invalid(at("end"), "must be greater than start"));
    }
    check_number(&at("step"), w.step, f64::MIN_POSITIVE, end - start)?;
    let in_range = |v: &Value| v.as_f64().is_some_and(|x| start <= x && x <= end);
    match (&w.value, w.kind) {
        (None, _) => Ok(()),
        (Some(v), WidgetKind::Slider) if in_range(v) => Ok(()),
        (Some(Value::Array(pair)), WidgetKind::RangeSlider)
            if pair.len() == 2
                && pair.iter().all(in_range)
                && pair[0].as_f64() <= pair[1].as_f64() =>
        {
            Ok(())
        }
        (Some(_), WidgetKind::RangeSlider) => Err(SpecError::invalid(
            at("value"),
            "expected [low, high] with start <= low <= high <= end",
        )),
        (Some(_), _) => Err(SpecError::invalid(
            at("value"),
            "expected a number from start to end",
        )),
    }
}

fn check_layout(spec: &Spec) -> Result<(), SpecError> {
    let Some(layout) = &spec.layout else {
        return Ok(());
    };
    check_pixels("layout.cell_width", layout.cell_width)?;
    check_pixels("layout.cell_height", layout.cell_height)?;
    let mut taken = vec![false; (MAX_GRID * MAX_GRID) as usize];
    for (name, cell) in layout.grid.iter() {
        let path = format!("layout.grid.{name}");
        if spec.plots.get(name).is_none() && spec.widgets.get(name).is_none() {
            return Err(SpecError::invalid(
                path,
                format!("no plot or widget \"{name}\""),
            ));
        }
        let [top, left, height, width] = *cell;
        if height == 0 || width == 0 {
            return Err(SpecError::invalid(path, "height and width are at least 1"));
        }
        if top.saturating_add(height) > MAX_GRID || left.saturating_add(width) > MAX_GRID {
            return Err(SpecError::invalid(
                path,
                format!("the cell goes past row or column {MAX_GRID}"),
            ));
        }
        for r in top..top + height {
            for c in left..left + width {
                let slot = &mut taken[(r * MAX_GRID + c) as usize];
                if *slot {
                    return Err(SpecError::invalid(
                        path,
                        format!("overlaps another entry at row {r}, column {c}"),
                    ));
                }
                *slot = true;
            }
        }
    }
    let names = spec
        .plots
        .iter()
        .map(|(n, _)| ("plots", n))
        .chain(spec.widgets.iter().map(|(n, _)| ("widgets", n)));
    for (section, name) in names {
        if layout.grid.get(name).is_none() {
            return Err(SpecError::invalid(
                "layout.grid",
                format!("{section}.{name} is not placed in the grid"),
            ));
        }
    }
    Ok(())
}
