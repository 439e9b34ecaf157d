//! streamvis semantics: the spec that `set_layout(grid_map)` implies, and growing a
//! tandem-lines plot to the number of series its first data has.

use crate::error::SpecError;
use crate::limits::MAX_SERIES;
use crate::named::NamedMap;
use crate::spec::{Columns, LayoutSpec, PlotKind, PlotSpec, SourceSpec, Spec};

/// The x column of a streamvis plot's source.
pub const X_COLUMN: &str = "x";

/// The name of the source of streamvis plot `plot`.
pub fn source_name(plot: &str) -> String {
    format!("{plot}.data")
}

/// The name of y column `i` (from 0) of a streamvis plot.
pub fn y_column(i: usize) -> String {
    format!("y{}", i + 1)
}

/// The spec of `set_layout(grid_map)`: for each entry (plot name → `[top, left, height,
/// width]`) an empty multi_line plot, with a source `<plot>.data` holding an `x` column,
/// so the plots exist before their first data. [`with_series`] adds the y series.
pub fn layout_spec(grid: &NamedMap<[u32; 4]>) -> Result<Spec, SpecError> {
    let mut spec = Spec {
        title: Some("streamvis".into()),
        layout: Some(LayoutSpec {
            grid: grid.clone(),
            cell_width: None,
            cell_height: None,
        }),
        ..Spec::default()
    };
    for (plot, _) in grid.iter() {
        spec.sources
            .insert(source_name(plot), SourceSpec::default());
        spec.plots.insert(
            plot,
            PlotSpec {
                kind: PlotKind::MultiLine,
                source: source_name(plot),
                title: Some(plot.to_owned()),
                x: Some(X_COLUMN.into()),
                y: Some(Columns::Many(Vec::new())),
                ..PlotSpec::blank()
            },
        );
    }
    crate::build(&spec)?;
    Ok(spec)
}

/// Gives multi_line plot `plot` of `spec` the series `y1..yN` (`n` of them), as
/// `tandem_lines` with `n` values does. Rebuilding the spec keeps every existing model id
/// and adds only the new renderers and columns.
pub fn with_series(spec: &mut Spec, plot: &str, n: usize) -> Result<(), SpecError> {
    let path = format!("plots.{plot}");
    if n > MAX_SERIES {
        return Err(SpecError::invalid(
            format!("{path}.y"),
            format!("at most {MAX_SERIES} series, not {n}"),
        ));
    }
    let Some(p) = spec.plots.get_mut(plot) else {
        return Err(SpecError::invalid(path, format!("no plot \"{plot}\"")));
    };
    if p.kind != PlotKind::MultiLine {
        return Err(SpecError::invalid(
            format!("{path}.kind"),
            "not a multi_line plot",
        ));
    }
    p.y = Some(Columns::Many((0..n).map(y_column).collect()));
    Ok(())
}

impl PlotSpec {
    /// A line plot of source "" with every optional field unset: a base for struct update.
    pub fn blank() -> PlotSpec {
        PlotSpec {
            kind: PlotKind::Line,
            source: String::new(),
            title: None,
            x_label: None,
            y_label: None,
            x_axis: Default::default(),
            y_axis: Default::default(),
            x_range: None,
            y_range: None,
            legend: None,
            tools: None,
            width: None,
            height: None,
            x: None,
            y: None,
            labels: None,
            color: None,
            palette: None,
            line_width: None,
            alpha: None,
            marker: None,
            size: None,
            mode: None,
            baseline: None,
            bar_width: None,
            image: None,
            value: None,
            extent: None,
            cell: None,
            low: None,
            high: None,
            color_bar: None,
        }
    }
}
