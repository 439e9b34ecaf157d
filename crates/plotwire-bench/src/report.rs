//! Figures and the final table: one row per measured figure, plotwire's and Bokeh's side
//! by side with their ratio.

use std::fmt::Write as _;
use std::time::Duration;

/// Whether a bigger figure is better (throughput) or worse (latency, memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Throughput: the ratio is plotwire / bokeh.
    Higher,
    /// Latency or memory: the ratio is bokeh / plotwire.
    Lower,
    /// A count for information (e.g. points checked): no ratio.
    Neither,
}

impl Better {
    /// `higher`, `lower` or `info`.
    pub fn name(self) -> &'static str {
        match self {
            Better::Higher => "higher",
            Better::Lower => "lower",
            Better::Neither => "info",
        }
    }
}

/// One server's result for one row.
#[derive(Debug, Clone)]
pub enum Figure {
    /// A measured value, with an optional remark (e.g. "680/2000 in the time bound").
    Value(f64, Option<String>),
    /// The scenario failed; the error is reported under the table.
    Failed,
    /// The server was not run (`--only`) or the scenario depended on a failed one.
    Skipped,
}

impl Figure {
    /// The value, if measured.
    pub fn value(&self) -> Option<f64> {
        match self {
            Figure::Value(v, _) => Some(*v),
            _ => None,
        }
    }

    /// The figure as JSON: `{"value": x, "remark": ..}`, `{"status": "failed"}` or
    /// `{"status": "skipped"}`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Figure::Value(v, remark) => serde_json::json!({
                "status": "ok",
                "value": v.is_finite().then_some(*v),
                "remark": remark,
            }),
            Figure::Failed => serde_json::json!({"status": "failed"}),
            Figure::Skipped => serde_json::json!({"status": "skipped"}),
        }
    }
}

/// A target plotwire should meet, and whether it did.
#[derive(Debug, Clone)]
pub struct Target {
    /// The goal, e.g. "≥ 30× bokeh".
    pub goal: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not measurable (a run failed).
    pub pass: Option<bool>,
}

impl Target {
    /// `PASS`, `MISS` or `n/a`.
    pub fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a",
        }
    }
}

/// One table row.
#[derive(Debug, Clone)]
pub struct Row {
    /// The workload, e.g. "1 ingest: 1k-pt batches, binary".
    pub workload: String,
    /// The figure's name and unit, e.g. "points/s".
    pub metric: String,
    /// Which direction is better.
    pub better: Better,
    /// Bokeh's figure.
    pub bokeh: Figure,
    /// plotwire's figure.
    pub plotwire: Figure,
    /// A target on this row, if any.
    pub target: Option<Target>,
}

impl Row {
    /// How many times better plotwire is (> 1 favours plotwire), when both were measured.
    pub fn ratio(&self) -> Option<f64> {
        let (p, b) = (self.plotwire.value()?, self.bokeh.value()?);
        let r = match self.better {
            Better::Higher => p / b,
            Better::Lower => b / p,
            Better::Neither => return None,
        };
        r.is_finite().then_some(r)
    }

    /// The row as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "workload": self.workload,
            "metric": self.metric,
            "better": self.better.name(),
            "bokeh": self.bokeh.to_json(),
            "plotwire": self.plotwire.to_json(),
            "ratio": self.ratio(),
            "target": self.target.as_ref().map(|t| serde_json::json!({
                "goal": t.goal,
                "pass": t.pass,
            })),
        })
    }
}

/// The `q`-quantile (0..=1) of `samples` by nearest rank, or `None` when empty.
pub fn quantile(samples: &[Duration], q: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Milliseconds as f64.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A figure with 3 to 4 significant digits (millions as `12.3M`).
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e7 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A cell of the table.
fn cell(figure: &Figure) -> String {
    match figure {
        Figure::Value(v, None) => number(*v),
        Figure::Value(v, Some(remark)) => format!("{} ({remark})", number(*v)),
        Figure::Failed => "error".to_owned(),
        Figure::Skipped => "-".to_owned(),
    }
}

/// Renders `rows` as a Markdown table: workload, metric, bokeh, plotwire, ratio, target.
/// Rows that neither server ran are left out.
pub fn table(rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| !matches!((&r.bokeh, &r.plotwire), (Figure::Skipped, Figure::Skipped)))
        .collect();
    const COLUMNS: usize = 6;
    let header = [
        "workload".to_owned(),
        "metric".to_owned(),
        "bokeh".to_owned(),
        "plotwire".to_owned(),
        "ratio".to_owned(),
        "target".to_owned(),
    ];
    let body: Vec<[String; COLUMNS]> = rows
        .iter()
        .map(|r| {
            [
                r.workload.clone(),
                r.metric.clone(),
                cell(&r.bokeh),
                cell(&r.plotwire),
                r.ratio()
                    .map_or_else(|| "-".to_owned(), |x| format!("{}x", number(x))),
                r.target
                    .as_ref()
                    .map_or_else(String::new, |t| format!("{} {}", t.verdict(), t.goal)),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for line in &body {
        for (w, c) in widths.iter_mut().zip(line) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Text columns left-aligned, figures right-aligned.
    let left = |i: usize| i < 2 || i == 5;
    let mut out = String::new();
    let write_line = |out: &mut String, cells: &[String; COLUMNS]| {
        out.push('|');
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            let pad = " ".repeat(w.saturating_sub(c.chars().count()));
            if left(i) {
                let _ = write!(out, " {c}{pad} |");
            } else {
                let _ = write!(out, " {pad}{c} |");
            }
        }
        out.push('\n');
    };
    write_line(&mut out, &header);
    out.push('|');
    for (i, w) in widths.iter().enumerate() {
        let dashes = "-".repeat(*w);
        if left(i) {
            let _ = write!(out, " {dashes} |");
        } else {
            let _ = write!(out, " {}: |", &dashes[1..]);
        }
    }
    out.push('\n');
    for line in &body {
        write_line(&mut out, line);
    }
    out
}

/// A "k" label for a count of points: 1k, 100k, 1M.
pub fn points_label(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&s, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(quantile(&s, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(quantile(&s, 0.0), Some(Duration::from_millis(1)));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn ratio_points_towards_plotwire() {
        let row = |better, p, b| Row {
            workload: String::new(),
            metric: "m".to_owned(),
            better,
            plotwire: Figure::Value(p, None),
            bokeh: Figure::Value(b, None),
            target: None,
        };
        assert_eq!(row(Better::Higher, 10.0, 2.0).ratio(), Some(5.0));
        assert_eq!(row(Better::Lower, 2.0, 10.0).ratio(), Some(5.0));
        assert_eq!(row(Better::Lower, 0.0, 10.0).ratio(), None);
    }
}
