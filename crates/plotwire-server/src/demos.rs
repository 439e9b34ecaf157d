//! The example server (`plotwire serve --examples`): a few live dashboards, published
//! in-process and fed by synthetic producers inside the process, so that a new user sees
//! plotwire work at once. Each is an ordinary published document under `examples/`, listed
//! on the index page, and each producer uses the in-process handle ([`Plotwire`]) exactly
//! as a host app would:
//! - `examples/random-walk`: a line that grows ten points a second, the last 2000 kept;
//! - `examples/training`: a simulated training run (loss, validation loss, accuracy); the
//!   learning-rate slider in any page changes how the loss falls;
//! - `examples/sensors`: three sensor series of 300,000 points each, with level of detail
//!   (`docs/lod.md`), growing twenty points a second;
//! - `examples/widgets`: two-way widgets: the slider sets the wave's frequency, the select
//!   its colour (set back into every page), the button clears it.

use std::time::Duration;

use plotwire_protocol::Value;
use serde_json::Value as Json;

use crate::body::{float64_column, int_column};
use crate::events::Followed;
use crate::inprocess::{Plotwire, PlotwireError};

/// The documents the example server publishes.
pub const NAMES: [&str; 4] = [
    "examples/random-walk",
    "examples/training",
    "examples/sensors",
    "examples/widgets",
];

const RANDOM_WALK: &str = r##"{"title": "Random walk",
 "sources": {"walk": {"columns": {"t": "int32", "y": "float64"}, "max_rows": 2000}},
 "plots": {"line": {"kind": "line", "source": "walk", "x": "t", "y": "y", "title": "A random walk, 10 points a second",
                    "x_range": {"follow": 500}, "width": 900, "height": 400}}}"##;

const TRAINING: &str = r##"{"title": "Training run",
 "sources": {"train": {"columns": {"step": "int32", "loss": "float64", "val_loss": "float64", "accuracy": "float64"}, "max_rows": 100000}},
 "plots": {
   "loss": {"kind": "multi_line", "source": "train", "x": "step", "y": ["loss", "val_loss"], "title": "Loss",
            "y_axis": "log", "legend": {"location": "top_right"}},
   "accuracy": {"kind": "line", "source": "train", "x": "step", "y": "accuracy", "title": "Accuracy",
                "y_range": {"start": 0, "end": 1}, "color": "#2ca02c"}},
 "widgets": {"lr": {"kind": "slider", "title": "learning rate (moves the run)", "start": 0.0001, "end": 0.01, "step": 0.0001, "value": 0.001}},
 "layout": {"grid": {"loss": [0, 0, 1, 1], "accuracy": [0, 1, 1, 1], "lr": [1, 0, 1, 2]}, "cell_width": 450, "cell_height": 300}}"##;

const SENSORS: &str = r##"{"title": "Sensors (level of detail)",
 "sources": {"sensors": {"columns": {"t": "float64", "a": "float64", "b": "float64", "c": "float64"}, "lod": true}},
 "plots": {"readings": {"kind": "multi_line", "source": "sensors", "x": "t", "y": ["a", "b", "c"],
                       "title": "Three sensors, 900,000 points: zoom in, the server sends the detail", "width": 900, "height": 400}}}"##;

const WIDGETS: &str = r##"{"title": "Two-way widgets",
 "sources": {"wave": {"columns": {"t": "float64", "y": "float64"}, "max_rows": 400}},
 "plots": {"waveform": {"kind": "line", "source": "wave", "x": "t", "y": "y", "title": "A wave the widgets steer",
                    "line_width": 2, "width": 700, "height": 300}},
 "widgets": {
   "frequency": {"kind": "slider", "title": "frequency", "start": 0.1, "end": 5, "step": 0.1, "value": 1},
   "color": {"kind": "select", "title": "colour", "options": ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]},
   "clear": {"kind": "button", "label": "Clear"}},
 "layout": {"grid": {"waveform": [0, 0, 1, 3], "frequency": [1, 0, 1, 1], "color": [1, 1, 1, 1], "clear": [1, 2, 1, 1]},
            "cell_width": 300, "cell_height": 300}}"##;

/// Rows of each sensor series published at the start.
const SENSOR_ROWS: usize = 300_000;

/// A small, seeded generator (xorshift), enough for synthetic data.
struct Noise(u64);

impl Noise {
    /// A value in [-1, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// Publishes the example dashboards and starts their producers on the current tokio
/// runtime. The producers run until the runtime ends.
pub async fn start(plotwire: &Plotwire) -> Result<(), PlotwireError> {
    for (name, spec) in NAMES.iter().zip([RANDOM_WALK, TRAINING, SENSORS, WIDGETS]) {
        plotwire.publish_spec_json(name, spec.as_bytes()).await?;
    }
    tokio::spawn(random_walk(plotwire.clone()));
    tokio::spawn(training(plotwire.clone()));
    tokio::spawn(sensors(plotwire.clone()));
    tokio::spawn(widgets(plotwire.clone()));
    tracing::info!(
        examples = NAMES.len(),
        "example dashboards published: see the index page"
    );
    Ok(())
}

/// Logs a producer's failed write; the producer goes on with its next one.
fn logged(name: &str, result: Result<crate::inprocess::Written, PlotwireError>) {
    if let Err(error) = result {
        tracing::warn!(document = name, %error, "an example producer's write failed");
    }
}

/// The name and value of a viewer's widget change, from an event's JSON.
fn change(json: &str) -> Option<(String, Json)> {
    let event: Json = serde_json::from_str(json).ok()?;
    if event["kind"] != "change" || event["attr"] != "value" {
        return None;
    }
    let name = event["model"]["name"].as_str()?.to_owned();
    Some((name, event["value"].clone()))
}

/// Whether an event's JSON is a click of the button `name`.
fn clicked(json: &str, name: &str) -> bool {
    serde_json::from_str::<Json>(json)
        .is_ok_and(|e| e["event"] == "button_click" && e["model"]["name"] == name)
}

async fn random_walk(plotwire: Plotwire) {
    let name = NAMES[0];
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let (mut t, mut y) = (0i64, 0.0f64);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        y += noise.next();
        let Ok(ts) = int_column("t", &[t]) else {
            return;
        };
        let columns = vec![("t".to_owned(), ts), ("y".to_owned(), float64_column(&[y]))];
        logged(name, plotwire.stream(name, "walk", columns, None).await);
        t += 1;
    }
}

async fn training(plotwire: Plotwire) {
    let name = NAMES[1];
    let Ok(mut events) = plotwire.events(name, 0).await else {
        return;
    };
    let mut noise = Noise(0x2545_F491_4F6C_DD1D);
    let (mut step, mut loss, mut lr) = (0i64, 2.5f64, 0.001f64);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            event = events.next() => {
                match event {
                    Some(Followed::Event(e)) => {
                        if let Some(("lr", v)) = change(&e.json).as_ref().map(|(n, v)| (n.as_str(), v)) {
                            lr = v.as_f64().unwrap_or(lr).clamp(1e-4, 1e-2);
                        }
                    }
                    Some(Followed::Gap) => {}
                    None => return,
                }
                continue;
            }
        }
        // A higher learning rate falls faster, and noisier.
        loss = (loss * (1.0 - lr * 8.0) + noise.next() * lr * 5.0).max(0.01);
        let val_loss = loss * (1.1 + 0.05 * noise.next());
        let accuracy = (1.0 - loss / 2.5).clamp(0.0, 1.0);
        let Ok(steps) = int_column("step", &[step]) else {
            return;
        };
        let columns = vec![
            ("step".to_owned(), steps),
            ("loss".to_owned(), float64_column(&[loss])),
            ("val_loss".to_owned(), float64_column(&[val_loss])),
            ("accuracy".to_owned(), float64_column(&[accuracy])),
        ];
        logged(name, plotwire.stream(name, "train", columns, None).await);
        step += 1;
    }
}

/// Sensor `i`'s reading at time `t` (seconds): a daily-like wave, a fast ripple and noise.
fn reading(i: usize, t: f64, noise: &mut Noise) -> f64 {
    let k = i as f64 + 1.0;
    10.0 * k + 3.0 * (t / (600.0 * k)).sin() + 0.5 * (t / 7.0).sin() + 0.3 * noise.next()
}

async fn sensors(plotwire: Plotwire) {
    let name = NAMES[2];
    let mut noise = Noise(0xD1B5_4A32_D192_ED03);
    let batch = |from: usize, rows: usize, noise: &mut Noise| {
        let t: Vec<f64> = (from..from + rows).map(|r| r as f64 * 0.1).collect();
        let mut columns = vec![("t".to_owned(), float64_column(&t))];
        for (i, col) in ["a", "b", "c"].iter().enumerate() {
            let v: Vec<f64> = t.iter().map(|&t| reading(i, t, noise)).collect();
            columns.push(((*col).to_owned(), float64_column(&v)));
        }
        columns
    };
    let chunk = 50_000;
    for from in (0..SENSOR_ROWS).step_by(chunk) {
        let columns = batch(from, chunk, &mut noise);
        logged(name, plotwire.stream(name, "sensors", columns, None).await);
    }
    let mut next = SENSOR_ROWS;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let columns = batch(next, 2, &mut noise);
        logged(name, plotwire.stream(name, "sensors", columns, None).await);
        next += 2;
    }
}

async fn widgets(plotwire: Plotwire) {
    let name = NAMES[3];
    let Ok(mut events) = plotwire.events(name, 0).await else {
        return;
    };
    let glyph = plotwire_spec::glyph_id("waveform", 0);
    let (mut t, mut frequency) = (0.0f64, 1.0f64);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            event = events.next() => {
                let Some(item) = event else { return };
                let Followed::Event(e) = item else { continue };
                if clicked(&e.json, "clear") {
                    logged(name, plotwire.clear(name, "wave").await);
                } else if let Some((widget, value)) = change(&e.json) {
                    match (widget.as_str(), value) {
                        ("frequency", v) => frequency = v.as_f64().unwrap_or(frequency).clamp(0.1, 5.0),
                        ("color", Json::String(c)) if c.starts_with('#') && c.len() == 7 => {
                            // Set for every page, so that every viewer sees the choice.
                            logged(name, plotwire.set(name, &glyph, "line_color", Value::Str(c), None).await);
                        }
                        _ => {}
                    }
                }
                continue;
            }
        }
        t += 0.05;
        let y = (std::f64::consts::TAU * frequency * t).sin();
        let columns = vec![
            ("t".to_owned(), float64_column(&[t])),
            ("y".to_owned(), float64_column(&[y])),
        ];
        logged(name, plotwire.stream(name, "wave", columns, None).await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_spec_builds() {
        for spec in [RANDOM_WALK, TRAINING, SENSORS, WIDGETS] {
            plotwire_spec::build_json(spec.as_bytes()).expect("a valid spec");
        }
    }

    #[test]
    fn widget_changes_and_clicks_are_read_from_events() {
        let change_json = r#"{"seq":3,"doc":"d","view":"v","kind":"change","model":{"id":"x","name":"frequency","type":"Slider"},"attr":"value","value":2.5}"#;
        assert_eq!(
            change(change_json),
            Some(("frequency".to_owned(), serde_json::json!(2.5)))
        );
        let click = r#"{"seq":4,"doc":"d","view":"v","kind":"event","model":{"id":"b","name":"clear","type":"Button"},"event":"button_click","values":{}}"#;
        assert!(clicked(click, "clear"));
        assert!(!clicked(click, "other"));
        assert_eq!(change(click), None);
    }
}
