//! Which plots and sources of a document level of detail serves, from its spec.

use plotwire_document::Document;
use plotwire_protocol::{Id, Value};
use plotwire_spec::Spec;

use super::series::LodSource;

/// Where a view's x range is when its viewer has not moved it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    /// All the data, widened by `padding` of its span (half on each side).
    Fit {
        /// The spec's range padding (default 0).
        padding: f64,
    },
    /// The newest `.0` x units, up to the newest x.
    Follow(f64),
    /// Fixed by the spec.
    Fixed(f64, f64),
}

/// A plot drawn from a downsampled source.
#[derive(Debug, Clone, PartialEq)]
pub struct LodPlot {
    /// The Figure.
    pub plot: Id,
    /// Its x range (a `Range1d` the server places for each view).
    pub x_range: Id,
    /// Its source.
    pub source: Id,
    /// Where its x range is until the viewer moves it.
    pub placement: Placement,
    /// Its data frame's width in pixels until a view's browser reports its own
    /// `inner_width`: guessed from the Figure's width, then the last width reported.
    pub width: u32,
}

/// The level of detail of one document: its plots and their sources.
#[derive(Debug, Clone, Default)]
pub struct Lod {
    /// Sources with more rows than this are downsampled unless their spec says.
    pub threshold: u64,
    /// The plots, in spec order.
    pub plots: Vec<LodPlot>,
    /// Their sources.
    pub sources: Vec<LodSource>,
}

/// Pixels of a Figure's width that are not its data frame (the y axis with 4-digit tick
/// labels and the borders, as BokehJS 3.9.2 lays out a 900-px Figure): the width guessed
/// until a browser reports `inner_width`.
const FRAME_BORDER: u32 = 72;

impl Lod {
    /// The plan for a document built from `spec`, its sources read from `doc`.
    pub fn plan(spec: &Spec, doc: &Document, threshold: u64) -> Lod {
        let mut lod = Lod {
            threshold,
            ..Lod::default()
        };
        for (name, p) in spec.plots.iter() {
            let Some(src) = spec.sources.get(&p.source) else {
                continue;
            };
            if !plotwire_spec::lod_capable(p, src) {
                continue;
            }
            let plot = plotwire_spec::plot_id(name);
            let source = plotwire_spec::source_id(&p.source);
            let ys: Vec<String> =
                p.y.as_ref()
                    .map(|c| c.names().into_iter().map(str::to_owned).collect())
                    .unwrap_or_default();
            let x = p.x.clone().unwrap_or_else(|| "x".to_owned());
            let placement = match &p.x_range {
                Some(r) => match (r.start, r.end, r.follow) {
                    (Some(s), Some(e), _) => Placement::Fixed(s, e),
                    (_, _, Some(f)) => Placement::Follow(f),
                    _ => Placement::Fit {
                        padding: r.padding.unwrap_or(0.0),
                    },
                },
                None => Placement::Fit { padding: 0.0 },
            };
            let width = match doc.model(&plot).and_then(|m| m.attribute("width")) {
                Some(Value::Int(w)) => u32::try_from(w).unwrap_or(600),
                Some(Value::Float(w)) if w.is_finite() && w > 0.0 => w as u32,
                _ => 600,
            };
            match lod.sources.iter_mut().find(|s| s.id == source) {
                Some(s) => {
                    for y in ys {
                        if !s.ys.contains(&y) {
                            s.ys.push(y);
                        }
                    }
                }
                None => lod
                    .sources
                    .push(LodSource::new(source.clone(), x, ys, src.lod)),
            }
            lod.plots.push(LodPlot {
                x_range: plotwire_spec::x_range_id(name),
                plot,
                source,
                placement,
                width: width.saturating_sub(FRAME_BORDER).max(10),
            });
        }
        for s in &mut lod.sources {
            let cols = doc.model(&s.id).and_then(|m| m.columns.as_ref());
            s.rebuild(cols);
        }
        lod
    }

    /// The source `id`, if level of detail serves it.
    pub fn source(&self, id: &str) -> Option<&LodSource> {
        self.sources.iter().find(|s| s.id == id)
    }

    /// The source `id`, mutable.
    pub fn source_mut(&mut self, id: &str) -> Option<&mut LodSource> {
        self.sources.iter_mut().find(|s| s.id == id)
    }

    /// Whether views get a downsampled copy of source `id` rather than every row.
    pub fn downsamples(&self, id: &str) -> bool {
        self.source(id).is_some_and(|s| s.active(self.threshold))
    }

    /// The plot whose x range is `range`.
    pub fn plot_of_range(&self, range: &str) -> Option<&LodPlot> {
        self.plots.iter().find(|p| p.x_range == range)
    }

    /// The plot `plot`.
    pub fn plot(&self, plot: &str) -> Option<&LodPlot> {
        self.plots.iter().find(|p| p.plot == plot)
    }

    /// Bytes held by every source's pyramids.
    pub fn memory_bytes(&self) -> usize {
        self.sources.iter().map(LodSource::memory_bytes).sum()
    }
}
