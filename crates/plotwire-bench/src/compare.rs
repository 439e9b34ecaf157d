//! The comparison run: every chosen workload against each server (plotwire, then
//! `bokeh serve`), with identical clients, one after the other.

use crate::bigdoc::BigDoc;
use crate::browser::Browser;
use crate::client::{Conn, Endpoint};
use crate::data::start_clock;
use crate::error::{err, Context, Result};
use crate::fanout::FanoutSpec;
use crate::ingest::Ingest;
use crate::report::{ms, number, points_label, quantile, Row};
use crate::rest::RestIngest;
use crate::servers::{free_port, start_bokeh, start_plotwire, ServerProcess};
use crate::summary::{fanout_summary, percentiles, pulls_summary, usage_line};
use crate::table::rows;
use crate::views::{ViewOpen, ViewsMemory};
use crate::{
    bigdoc, browser, fanout, ingest, machine, progress, pulls, python_path, render, rest,
    session_id, utc_now, views, write_json, Cli, Only, Params, Problem, Results, Subject, Workload,
    MAX_MESSAGE_BYTES,
};
use bytes::Bytes;
use plotwire_protocol::message::MsgType;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// Asks a server for its SERVER-INFO-REPLY and returns its `version_info` as JSON text.
async fn server_info(endpoint: &Endpoint) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = Conn::connect(endpoint, &session_id("info"), deadline).await?;
    let reply = conn
        .request(
            MsgType::ServerInfoReq,
            Bytes::from_static(b"{}"),
            &[],
            deadline,
        )
        .await?;
    conn.close().await;
    let content: serde_json::Value =
        serde_json::from_slice(&reply.content).context(|| "SERVER-INFO-REPLY content")?;
    Ok(content
        .get("version_info")
        .map_or_else(|| content.to_string(), ToString::to_string))
}

/// Runs one workload on `subject`: prints progress, turns a failure into `Err(message)`
/// (noting whether the server died), records problems, then waits for the server to go
/// idle so the next run starts clean.
async fn attempt<T>(
    server: &ServerProcess,
    problems: &mut Vec<Problem>,
    title: &str,
    settle: (Duration, Duration),
    summary: impl Fn(&T) -> (String, Option<String>),
    run: impl std::future::Future<Output = Result<T>>,
) -> std::result::Result<T, String> {
    let name = server.name;
    progress(format!("{title}: {name} ..."));
    let started = Instant::now();
    let result = run.await;
    let wall = started.elapsed().as_secs_f64();
    let result = match result {
        Ok(value) => {
            let (line, problem) = summary(&value);
            progress(format!("{title}: {name}: {line} ({wall:.1} s)"));
            if let Some(problem) = problem {
                progress(format!("PROBLEM {title} on {name}: {problem}"));
                problems.push(Problem {
                    text: format!("{title} on {name}: {problem}"),
                    violation: true,
                });
            }
            Ok(value)
        }
        Err(e) => {
            let mut message = format!("{title} on {name}: {e}");
            if !server.is_running() {
                message.push_str(&format!(" ({name} has exited)"));
            }
            progress(format!("FAILED {message} ({wall:.1} s)"));
            problems.push(Problem {
                text: message.clone(),
                violation: false,
            });
            Err(message)
        }
    };
    let waited = server.settle(settle.0, settle.1).await;
    if waited > Duration::from_secs(3) {
        progress(format!(
            "{name} busy after {title}: waited {:.1} s for it to go idle",
            waited.as_secs_f64()
        ));
    }
    result
}

/// Runs every workload on every subject; returns the report for stdout and whether the
/// run passed (no failure on plotwire and no correctness problem; with `--quick`, no
/// failure at all).
pub async fn run(cli: &Cli) -> Result<(String, bool)> {
    start_clock();
    let run_start = Instant::now();
    let params = Params::new(cli.quick);
    let mode = if cli.quick { "quick" } else { "full" };
    let python = python_path(cli);
    let wants = |w: Workload| cli.workloads.is_empty() || cli.workloads.contains(&w);
    progress(format!("mode {mode}, python {}", python.display()));

    let mut subjects: Vec<Subject> = Vec::new();
    if cli.only != Some(Only::Bokeh) {
        if !cli.plotwire_bin.is_file() {
            return Err(err(format!(
                "plotwire binary {} not found: build it with `cargo build --release -p plotwire` \
                 or pass --plotwire-bin",
                cli.plotwire_bin.display()
            )));
        }
        let port = free_port()?;
        progress(format!("starting plotwire on 127.0.0.1:{port}"));
        let server =
            start_plotwire(&cli.plotwire_bin, port, MAX_MESSAGE_BYTES, params.startup).await?;
        subjects.push(Subject {
            server,
            results: Results::default(),
            version: String::new(),
            problems: Vec::new(),
        });
    }
    if cli.only != Some(Only::Plotwire) {
        let port = free_port()?;
        progress(format!("starting bokeh serve on 127.0.0.1:{port}"));
        let server = start_bokeh(&python, port, MAX_MESSAGE_BYTES, params.startup).await?;
        subjects.push(Subject {
            server,
            results: Results::default(),
            version: String::new(),
            problems: Vec::new(),
        });
    }
    for s in &mut subjects {
        s.version = server_info(&s.server.endpoint)
            .await
            .map_err(|e| err(format!("{}: SERVER-INFO: {e}", s.server.name)))?;
        s.results.rss_idle_kib = s.server.rss_kib().ok();
        progress(format!(
            "{} ready, pid {}, version_info {}",
            s.server.name,
            s.server.pid(),
            s.version
        ));
    }

    let p = &params;
    let strict = cli.quick;
    let mut timings: Vec<(String, Duration)> = Vec::new();

    // The slow-viewer pair runs first, on fresh processes: its RSS comparison needs a
    // high-water mark that no earlier workload has raised.
    if wants(Workload::Slow) {
        let t = Instant::now();
        let k = p.slow_viewers;
        for s in &mut subjects {
            for stalled in [false, true] {
                let spec = FanoutSpec {
                    viewers: k,
                    stalled,
                    ..p.fanout
                };
                let title = if stalled {
                    format!("5 slow viewer K={k} + 1 stalled")
                } else {
                    format!("5 slow viewer K={k} (baseline)")
                };
                let fut = fanout::run(&s.server, spec);
                let outcome = attempt(
                    &s.server,
                    &mut s.problems,
                    &title,
                    p.settle(),
                    |f| fanout_summary(f, strict),
                    fut,
                )
                .await;
                if stalled {
                    s.results.slow = Some(outcome);
                } else {
                    s.results.slow_base = Some(outcome);
                }
            }
        }
        timings.push(("5 slow viewer".to_owned(), t.elapsed()));
    }

    if wants(Workload::Ingest) {
        let t = Instant::now();
        for spec in &p.ingest {
            let title = format!("1 ingest {}k {}", spec.points / 1000, spec.encoding.name());
            for s in &mut subjects {
                let summary = |r: &Ingest| {
                    (
                        format!(
                            "{} batches, {} points in {:.2} s = {} points/s, ack {}, final pull \
                             {:.1} ms, {}",
                            r.batches,
                            r.points,
                            r.elapsed.as_secs_f64(),
                            number(r.points_per_sec()),
                            percentiles(&r.acks),
                            ms(r.pull),
                            usage_line(&r.usage)
                        ),
                        r.check.clone().or_else(|| {
                            (r.batches == 0).then(|| "no batch acknowledged".to_owned())
                        }),
                    )
                };
                let fut = ingest::run(&s.server, *spec);
                let outcome =
                    attempt(&s.server, &mut s.problems, &title, p.settle(), summary, fut).await;
                s.results.ingest.push(Some(outcome));
            }
        }
        timings.push(("1 ingest".to_owned(), t.elapsed()));
    }

    if wants(Workload::Fanout) {
        let t = Instant::now();
        for &k in &p.fanout_viewers {
            let spec = FanoutSpec {
                viewers: k,
                ..p.fanout
            };
            let title = format!("2 fan-out K={k}");
            for s in &mut subjects {
                let fut = fanout::run(&s.server, spec);
                let outcome = attempt(
                    &s.server,
                    &mut s.problems,
                    &title,
                    p.settle(),
                    |f| fanout_summary(f, strict),
                    fut,
                )
                .await;
                s.results.fanout.push(Some(outcome));
            }
        }
        timings.push(("2 fan-out".to_owned(), t.elapsed()));
    }

    if wants(Workload::Bigdoc) {
        let t = Instant::now();
        for &n in &p.big_points {
            let title = format!("3 big doc {n} points");
            for s in &mut subjects {
                let summary = |b: &BigDoc| {
                    (
                        format!(
                            "{} points: push {:.1} ms, connect {:.1} ms, pull {:.1} ms, {:.1} MB \
                             read, server RSS {} MiB",
                            b.points,
                            ms(b.push),
                            ms(b.connect),
                            ms(b.pull),
                            b.pull_bytes as f64 / 1e6,
                            b.rss_kib.map_or_else(
                                || "?".to_owned(),
                                |k| format!("{:.1}", k as f64 / 1024.0)
                            )
                        ),
                        b.check.clone(),
                    )
                };
                let fut = bigdoc::run(&s.server, n, p.big_budget);
                let outcome =
                    attempt(&s.server, &mut s.problems, &title, p.settle(), summary, fut).await;
                s.results.big.push(Some(outcome));
            }
        }
        timings.push(("3 big doc".to_owned(), t.elapsed()));
    }

    if wants(Workload::Browser) {
        let t = Instant::now();
        for s in &mut subjects {
            let summary = |b: &Browser| {
                (
                    format!(
                        "points visible p50 {:.1} / p99 {:.1} / max {:.1} ms (n {}), slider round \
                         trip p50 {:.1} / p99 {:.1} / max {:.1} ms (n {}), {} points checked, \
                         {:.1} s, {}",
                        b.points_visible.p50,
                        b.points_visible.p99,
                        b.points_visible.max,
                        b.points_visible.n,
                        b.slider_roundtrip.p50,
                        b.slider_roundtrip.p99,
                        b.slider_roundtrip.max,
                        b.slider_roundtrip.n,
                        b.checked_points,
                        b.wall.as_secs_f64(),
                        usage_line(&b.usage)
                    ),
                    None,
                )
            };
            let fut = browser::run(
                &s.server,
                &python,
                &cli.browser_script,
                cli.quick,
                p.browser_limit,
            );
            let outcome = attempt(
                &s.server,
                &mut s.problems,
                "4 browser",
                p.settle(),
                summary,
                fut,
            )
            .await;
            s.results.browser = Some(outcome);
        }
        timings.push(("4 browser".to_owned(), t.elapsed()));
    }

    if wants(Workload::PullInterference) {
        let t = Instant::now();
        let title = format!(
            "6 pull interference, {} points",
            points_label(p.pulls.doc_points)
        );
        for s in &mut subjects {
            let fut = pulls::run(&s.server, p.pulls);
            let outcome = attempt(
                &s.server,
                &mut s.problems,
                &title,
                p.settle(),
                |r| pulls_summary(r, strict),
                fut,
            )
            .await;
            s.results.pulls = Some(outcome);
        }
        timings.push(("6 pull interference".to_owned(), t.elapsed()));
    }

    if wants(Workload::RestIngest) {
        let t = Instant::now();
        for spec in &p.rest_ingest {
            let title = format!(
                "7 REST ingest {} {}",
                points_label(spec.points),
                spec.format.name()
            );
            // Bokeh has no REST API: plotwire only.
            for s in subjects.iter_mut().filter(|s| s.server.name == "plotwire") {
                let summary = |r: &RestIngest| {
                    (
                        format!(
                            "{} batches of {} bytes, {} points in {:.2} s = {} points/s ({:.0} MB/s), \
                             request {}, {}",
                            r.batches,
                            r.body_bytes,
                            r.points,
                            r.elapsed.as_secs_f64(),
                            number(r.points_per_sec()),
                            r.mb_per_sec(),
                            percentiles(&r.latencies),
                            usage_line(&r.usage)
                        ),
                        r.check.clone(),
                    )
                };
                let fut = rest::ingest(&s.server, *spec);
                let outcome =
                    attempt(&s.server, &mut s.problems, &title, p.settle(), summary, fut).await;
                s.results.rest_ingest.push(Some(outcome));
            }
        }
        timings.push(("7 REST ingest".to_owned(), t.elapsed()));
    }

    if wants(Workload::ViewsFanout) {
        let t = Instant::now();
        let spec = p.views_fanout;
        for s in &mut subjects {
            // Bokeh's counterpart: workload 2's producer and raw viewers of its session.
            let (title, fut) = if s.server.name == "plotwire" {
                (
                    format!("8 views fan-out K={} (REST producer)", spec.viewers),
                    futures_util::future::Either::Left(views::fanout(&s.server, spec)),
                )
            } else {
                (
                    format!("8 views fan-out K={} (websocket producer)", spec.viewers),
                    futures_util::future::Either::Right(fanout::run(&s.server, spec)),
                )
            };
            let outcome = attempt(
                &s.server,
                &mut s.problems,
                &title,
                p.settle(),
                |f| fanout_summary(f, strict),
                fut,
            )
            .await;
            s.results.views_fanout = Some(outcome);
        }
        timings.push(("8 views fan-out".to_owned(), t.elapsed()));
    }

    if wants(Workload::ViewsMemory) {
        let t = Instant::now();
        let title = format!(
            "9 views memory, {} points, 1 vs {} views",
            points_label(p.memory_points),
            p.memory_views
        );
        for s in &mut subjects {
            let summary = |m: &ViewsMemory| {
                let k = |v: Option<u64>| {
                    v.map_or_else(|| "?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
                };
                (
                    format!(
                        "RSS {} MiB with the document, {} MiB with 1 view, {} MiB with {} views: \
                             +{} MiB",
                        k(m.rss_none_kib),
                        k(m.rss_one_kib),
                        k(m.rss_all_kib),
                        m.views,
                        m.growth_mib()
                            .map_or_else(|| "?".to_owned(), |g| format!("{g:.1}"))
                    ),
                    None,
                )
            };
            let fut = views::memory(&s.server, p.memory_points, p.memory_views);
            let outcome =
                attempt(&s.server, &mut s.problems, &title, p.settle(), summary, fut).await;
            s.results.views_memory = Some(outcome);
        }
        timings.push(("9 views memory".to_owned(), t.elapsed()));
    }

    if wants(Workload::ViewOpen) {
        let t = Instant::now();
        let title = format!(
            "10 view open, {} points, {} opens",
            points_label(p.open_points),
            p.opens
        );
        for s in &mut subjects {
            let summary = |o: &ViewOpen| {
                let q = |v: &[Duration], x: f64| quantile(v, x).map_or(0.0, ms);
                (
                    format!(
                        "total median {:.2} ms, p90 {:.2} ms (page {:.2}, connect {:.2}, pull {:.2} \
                             ms medians), n {}",
                        q(&o.total, 0.5),
                        q(&o.total, 0.9),
                        q(&o.page, 0.5),
                        q(&o.connect, 0.5),
                        q(&o.pull, 0.5),
                        o.total.len()
                    ),
                    o.check.clone(),
                )
            };
            let fut = views::open(&s.server, p.open_points, p.opens);
            let outcome =
                attempt(&s.server, &mut s.problems, &title, p.settle(), summary, fut).await;
            s.results.view_open = Some(outcome);
        }
        timings.push(("10 view open".to_owned(), t.elapsed()));
    }

    let none = Results::default();
    let find = |name: &str| {
        subjects
            .iter()
            .find(|s| s.server.name == name)
            .map_or(&none, |s| &s.results)
    };
    let (pw, bk) = (find("plotwire"), find("bokeh"));
    let rows = rows(p, pw, bk, cli.quick);
    let problems: Vec<String> = subjects
        .iter()
        .flat_map(|s| s.problems.iter().map(|p| p.text.clone()))
        .collect();
    // Quick: nothing may go wrong. Full: nothing on plotwire, and no data lost, reordered
    // or corrupted on Bokeh (a Bokeh run that times out is only reported).
    let passed = subjects.iter().all(|s| {
        s.problems.is_empty()
            || (!cli.quick && s.server.name == "bokeh" && s.problems.iter().all(|p| !p.violation))
    });
    let total = run_start.elapsed();
    timings.push(("total".to_owned(), total));

    let versions: Vec<(String, String)> = subjects
        .iter()
        .map(|s| (s.server.name.to_owned(), s.version.clone()))
        .collect();
    let json_path = cli.json.clone().unwrap_or_else(|| {
        PathBuf::from(if cli.quick {
            "target/bench/results-quick.json"
        } else {
            "target/bench/results.json"
        })
    });
    let browser_raw = |r: &Results| match &r.browser {
        Some(Ok(b)) => b.raw.clone(),
        Some(Err(e)) => serde_json::json!({"error": e}),
        None => serde_json::Value::Null,
    };
    let json = serde_json::json!({
        "mode": mode,
        "started_utc": utc_now(),
        "machine": machine(),
        "servers": versions.iter().map(|(n, v)| serde_json::json!({"name": n, "version_info": v})).collect::<Vec<_>>(),
        "params": format!("{p:?}"),
        "rows": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        "problems": problems,
        "passed": passed,
        "browser_raw": {"plotwire": browser_raw(pw), "bokeh": browser_raw(bk)},
        "durations_s": timings.iter().map(|(n, d)| (n.clone(), serde_json::json!(d.as_secs_f64()))).collect::<serde_json::Map<_, _>>(),
    });
    let written = write_json(&json_path, &json);
    let mut out = render(mode, &versions, &rows, &problems, &timings);
    match written {
        Ok(abs) => out.push_str(&format!("results written to {}\n", abs.display())),
        Err(e) => out.push_str(&format!("could not write {}: {e}\n", json_path.display())),
    }
    out.push_str(if passed {
        "result: PASSED (no failure, no data lost, reordered or corrupted)\n"
    } else {
        "result: FAILED (see problems above)\n"
    });
    Ok((out, passed))
}
