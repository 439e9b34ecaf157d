//! The progress lines printed after each run, and the correctness problems they report.

use std::time::Duration;

use crate::fanout::Fanout;
use crate::pulls::PullInterference;
use crate::report::{ms, quantile};
use crate::servers::UsageReport;
/// "p50 x ms, p99 y ms, max z ms" of `samples`.
pub fn percentiles(samples: &[Duration]) -> String {
    match (
        quantile(samples, 0.5),
        quantile(samples, 0.99),
        quantile(samples, 1.0),
    ) {
        (Some(p50), Some(p99), Some(max)) => format!(
            "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            ms(p50),
            ms(p99),
            ms(max)
        ),
        _ => "no samples".to_owned(),
    }
}

/// CPU cores and peak RSS of a usage window, for progress lines.
pub fn usage_line(u: &UsageReport) -> String {
    format!(
        "server {} cores, peak RSS {} MiB",
        u.cores()
            .map_or_else(|| "?".to_owned(), |c| format!("{c:.2}")),
        u.peak_rss_kib
            .map_or_else(|| "?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
    )
}

/// The progress line of a fan-out run, and its correctness problem if any. `strict`
/// also counts undelivered batches as a problem (the quick run).
pub fn fanout_summary(f: &Fanout, strict: bool) -> (String, Option<String>) {
    let mut line = format!(
        "{} viewers (set-up {:.1} s), {} batches sent, delivered {:.2} % ({} viewers got \
         the end marker), latency {}, {}, client CPU {:.2} s, {} OKs",
        f.viewers,
        f.setup.as_secs_f64(),
        f.sent,
        100.0 * f.delivered_fraction(),
        f.finished_viewers,
        percentiles(&f.latencies),
        usage_line(&f.usage),
        f.client_cpu.map_or(0.0, |c| c.as_secs_f64()),
        f.oks
    );
    if let Some(note) = &f.producer_note {
        line.push_str(&format!("; {note}"));
    }
    if let Some(s) = &f.stalled {
        line.push_str(&format!("; stalled viewer: {}", s.outcome));
    }
    let mut problems = Vec::new();
    if !f.is_clean() {
        problems.push(format!(
            "lost {} points, {} batches reordered, {} corrupted, {} viewers closed ({}); first: {}",
            f.lost_points,
            f.reordered,
            f.corrupted,
            f.closed.0,
            f.closed.1.as_deref().unwrap_or("-"),
            f.first_problem.as_deref().unwrap_or("-")
        ));
        if let Some(s) = f.stalled.as_ref().filter(|s| !s.clean) {
            problems.push(format!(
                "stalled viewer: {}",
                s.problem.as_deref().unwrap_or("-")
            ));
        }
    }
    if strict && !f.is_complete() {
        problems.push(format!(
            "incomplete delivery: {}/{} batch deliveries, {}/{} viewers finished",
            f.delivered,
            f.sent * f.viewers as u64,
            f.finished_viewers,
            f.viewers
        ));
    }
    if strict && f.sent == 0 {
        problems.push("no batch was sent".to_owned());
    }
    (line, (!problems.is_empty()).then(|| problems.join("; ")))
}

/// The progress line of a pull-interference run, and its correctness problems if any
/// (either phase's, as [`fanout_summary`], and the pulled documents'). `strict` also
/// requires at least one pull.
pub fn pulls_summary(r: &PullInterference, strict: bool) -> (String, Option<String>) {
    let (without, without_problem) = fanout_summary(&r.without, strict);
    let (control, control_problem) = fanout_summary(&r.control, strict);
    let (with, with_problem) = fanout_summary(&r.with, strict);
    let p = &r.pulls;
    let ratio = |base: &Fanout| match (
        quantile(&base.latencies, 0.99),
        quantile(&r.with.latencies, 0.99),
    ) {
        (Some(a), Some(b)) if !a.is_zero() => format!("{:.2}", b.as_secs_f64() / a.as_secs_f64()),
        _ => "?".to_owned(),
    };
    let line = format!(
        "{} points pushed in {:.1} ms; {} pulls in {} rounds ({} started while streaming), \
         mean {:.1} ms, {:.1} MB read; p99 with pulls / without {}, / with a CPU burner {}; \
         without pulls: {without}; with a CPU burner: {control}; with pulls: {with}",
        r.doc_points,
        ms(r.push),
        p.times.len(),
        p.rounds,
        p.overlapping,
        p.mean().map_or(0.0, ms),
        p.bytes as f64 / 1e6,
        ratio(&r.without),
        ratio(&r.control),
    );
    let mut problems: Vec<String> = Vec::new();
    if let Some(e) = without_problem {
        problems.push(format!("without pulls: {e}"));
    }
    if let Some(e) = control_problem {
        problems.push(format!("with a CPU burner: {e}"));
    }
    if let Some(e) = with_problem {
        problems.push(format!("with pulls: {e}"));
    }
    if let Some(e) = &p.check {
        problems.push(e.clone());
    }
    if strict && p.overlapping == 0 {
        problems.push("no pull overlapped the stream".to_owned());
    }
    (line, (!problems.is_empty()).then(|| problems.join("; ")))
}
