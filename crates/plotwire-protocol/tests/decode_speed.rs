//! Measures [`decode_patch`] on a ColumnsStreamed carrying one long column: floats,
//! integers, and a mixed list (ints, floats, nulls and strings). Prints ns per point of
//! thread CPU time.
//! Ignored by default (it is a measurement, not a check); run it with
//! `cargo test --release -p plotwire-protocol --test decode_speed -- --ignored --nocapture`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use plotwire_protocol::codec::Buffers;
use plotwire_protocol::event::decode_patch;

const POINTS: usize = 100_000;
const ROUNDS: usize = 40;

/// A ColumnsStreamed message whose column `x` holds `items` (JSON texts).
fn streamed(items: impl Iterator<Item = String>) -> Vec<u8> {
    let list: Vec<String> = items.collect();
    format!(
        r#"{{"events":[{{"kind":"ColumnsStreamed","model":{{"id":"p1008"}},"attr":"data","data":{{"type":"map","entries":[["x",[{}]]]}},"rollover":null}}]}}"#,
        list.join(",")
    )
    .into_bytes()
}

/// A deterministic pseudo-random sequence in [0, 1).
fn unit(n: usize) -> impl Iterator<Item = f64> {
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n).map(move |_| {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// Nanoseconds this thread has run on a CPU (Linux `schedstat`), or wall-clock
/// nanoseconds where that is not available. CPU time keeps the figure honest on a
/// loaded machine, where the thread waits for a core much of the time. The kernel
/// updates it at scheduler ticks, so only long totals are precise.
fn now_ns(start: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or_else(|| start.elapsed().as_secs_f64() * 1e9)
}

/// The mean over [`ROUNDS`] runs of `run`, in ns per point.
fn ns_per_point(mut run: impl FnMut()) -> f64 {
    let start = Instant::now();
    run();
    let t = now_ns(start);
    for _ in 0..ROUNDS {
        run();
    }
    (now_ns(start) - t) / (ROUNDS * POINTS) as f64
}

/// Decodes `content` (dropping the result included).
fn decode(content: &[u8]) -> impl FnMut() + '_ {
    let buffers = Buffers::new();
    move || {
        let events = decode_patch(content, &buffers).unwrap();
        assert_eq!(events.len(), 1);
    }
}

#[test]
#[ignore]
fn decode_patch_ns_per_point() {
    let floats = streamed(unit(POINTS).map(|x| serde_json::to_string(&(x * 1000.0)).unwrap()));
    let ints = streamed(unit(POINTS).map(|x| ((x * 2e6) as i64 - 1_000_000).to_string()));
    let mixed = streamed(unit(POINTS).enumerate().map(|(i, x)| match i % 4 {
        0 => ((x * 1e6) as i64).to_string(),
        1 => serde_json::to_string(&x).unwrap(),
        2 => "null".to_owned(),
        _ => format!("\"s{i}\""),
    }));
    for (name, content) in [("floats", &floats), ("ints", &ints), ("mixed", &mixed)] {
        println!(
            "decode_patch {name:>6}: {:6.1} ns/point ({} bytes)",
            ns_per_point(decode(content)),
            content.len()
        );
    }
}
