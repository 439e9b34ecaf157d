//! A small service that publishes a dashboard of this machine's CPU and memory use,
//! streams a sample every second, and empties the plots when someone presses "Reset" in
//! the page.
//!
//! ```sh
//! cargo run --release -p plotwire -- serve &
//! cargo run -p plotwire-client --example system_metrics -- http://127.0.0.1:5006
//! # open http://127.0.0.1:5006/d/host/metrics/
//! ```
//!
//! Linux only (it reads `/proc/stat` and `/proc/meminfo`). `--seconds N` stops after N
//! samples.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use plotwire_client::{Client, Columns, EventKind};
use serde_json::json;

const NAME: &str = "host/metrics";
const SOURCE: &str = "host";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    let mut url = std::env::var("PLOTWIRE_URL").unwrap_or_else(|_| "http://127.0.0.1:5006".into());
    let mut seconds: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = Some(args.next().ok_or("--seconds needs a number")?.parse()?),
            other => url = other.to_owned(),
        }
    }
    let client = Client::new(&url)?;
    let published = client.publish(NAME, &spec()).await?;
    println!(
        "publishing at {}{}",
        url.trim_end_matches('/'),
        published.url
    );

    // Viewers' clicks on "Reset" empty the source; the stream resumes through blips.
    let listener = client.clone();
    tokio::spawn(async move {
        let mut events = Box::pin(listener.events(NAME, 0));
        while let Some(event) = events.next().await {
            match event {
                Ok(e) => {
                    if let EventKind::Event { model, event, .. } = &e.kind {
                        let name = model.as_ref().and_then(|m| m.name.as_deref());
                        if event == "button_click" && name == Some("reset") {
                            println!("view {} pressed Reset", e.view);
                            if let Err(err) = listener.clear(NAME, SOURCE).await {
                                eprintln!("clear failed: {err}");
                            }
                        }
                    }
                }
                Err(err) => {
                    eprintln!("the event stream ended: {err}");
                    return;
                }
            }
        }
    });

    let mut last = cpu_times()?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    for _ in 0..seconds.unwrap_or(u64::MAX) {
        tick.tick().await;
        let now = cpu_times()?;
        let busy = (now.busy - last.busy) as f64;
        let total = (now.total - last.total).max(1) as f64;
        last = now;
        let t = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64() * 1000.0;
        let batch = Columns::new()
            .with("t", vec![t])
            .with("cpu", vec![100.0 * busy / total])
            .with("mem", vec![memory_used_percent()?]);
        client.stream(NAME, SOURCE, &batch, Some(3600)).await?;
    }
    Ok(())
}

/// Two plots over the last 10 minutes and a Reset button.
fn spec() -> serde_json::Value {
    json!({
        "title": "This machine",
        "sources": {SOURCE: {"columns": {"t": "datetime", "cpu": "float64", "mem": "float64"}, "max_rows": 3600}},
        "plots": {
            "cpu": {"kind": "line", "source": SOURCE, "x": "t", "y": "cpu", "title": "CPU, %",
                     "x_axis": "datetime", "x_range": {"follow": 600_000}, "y_range": {"start": 0, "end": 100}},
            "mem": {"kind": "area", "source": SOURCE, "x": "t", "y": "mem", "title": "Memory used, %",
                     "x_axis": "datetime", "x_range": {"follow": 600_000}, "y_range": {"start": 0, "end": 100}}
        },
        "widgets": {"reset": {"kind": "button", "label": "Reset", "button_type": "warning"}},
        "layout": {"grid": {"cpu": [0, 0, 1, 1], "mem": [1, 0, 1, 1], "reset": [2, 0, 1, 1]},
                   "cell_width": 700, "cell_height": 250}
    })
}

/// Jiffies spent busy and in all, summed over the CPUs (`/proc/stat`'s first line).
struct CpuTimes {
    busy: u64,
    total: u64,
}

fn cpu_times() -> Result<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().ok_or("/proc/stat is empty")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    let total: u64 = fields.iter().sum();
    // idle and iowait are the 4th and 5th fields.
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Ok(CpuTimes {
        busy: total - idle,
        total,
    })
}

fn memory_used_percent() -> Result<f64> {
    let info = std::fs::read_to_string("/proc/meminfo")?;
    let field = |name: &str| -> Option<f64> {
        let line = info.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let total = field("MemTotal:").ok_or("no MemTotal in /proc/meminfo")?;
    let available = field("MemAvailable:").ok_or("no MemAvailable in /proc/meminfo")?;
    Ok(100.0 * (total - available) / total)
}
