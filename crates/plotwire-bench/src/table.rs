//! The comparison table: one row per figure of each workload, Bokeh's and plotwire's
//! side by side, with plotwire's targets.

use std::time::Duration;

use crate::browser::{Browser, Summary};
use crate::data::Encoding;
use crate::fanout::Fanout;
use crate::pulls::{PullInterference, PULLS_PER_ROUND};
use crate::report::{ms, points_label, quantile, Better, Figure, Row, Target};
use crate::rest::Format;
use crate::{Outcome, Params, Results};
/// A table figure from an outcome: `f` gives the value and an optional remark.
fn figure<T>(outcome: &Outcome<T>, f: impl Fn(&T) -> Option<(f64, Option<String>)>) -> Figure {
    match outcome {
        None => Figure::Skipped,
        Some(Err(_)) => Figure::Failed,
        Some(Ok(value)) => f(value).map_or(Figure::Skipped, |(v, remark)| Figure::Value(v, remark)),
    }
}

/// The quantile of `samples` in milliseconds, as a table value.
fn quantile_ms(samples: &[Duration], q: f64) -> Option<(f64, Option<String>)> {
    quantile(samples, q).map(|d| (ms(d), None))
}

/// KiB as MiB, as a table value.
fn mib(kib: Option<u64>) -> Option<(f64, Option<String>)> {
    kib.map(|k| (k as f64 / 1024.0, None))
}

/// The rows of one fan-out run; returns the indices of its p99 and CPU rows.
fn fanout_rows(
    row: &mut impl FnMut(&str, &str, Better, &FigureOf<'_>) -> usize,
    w: &str,
    get: &dyn Fn(&Results) -> Outcome<Fanout>,
) -> (usize, usize) {
    row(w, "latency p50, ms", Better::Lower, &|r| {
        figure(&get(r), |f| quantile_ms(&f.latencies, 0.5))
    });
    let p99 = row(w, "latency p99, ms", Better::Lower, &|r| {
        figure(&get(r), |f| quantile_ms(&f.latencies, 0.99))
    });
    row(w, "latency max, ms", Better::Lower, &|r| {
        figure(&get(r), |f| quantile_ms(&f.latencies, 1.0))
    });
    row(w, "delivered, %", Better::Higher, &|r| {
        figure(&get(r), |f| {
            let remark = f.producer_note.as_ref().map(|_| "producer late".to_owned());
            Some((100.0 * f.delivered_fraction(), remark))
        })
    });
    let cpu = row(w, "server CPU, cores", Better::Lower, &|r| {
        figure(&get(r), |f| f.usage.cores().map(|c| (c, None)))
    });
    row(w, "server RSS peak, MiB", Better::Lower, &|r| {
        figure(&get(r), |f| mib(f.usage.peak_rss_kib))
    });
    row(
        w,
        "server RSS per attached viewer, KiB",
        Better::Lower,
        // Allocator reuse hides the figure below about 1000 viewers.
        &|r| {
            figure(&get(r), |f| {
                f.rss_per_viewer_kib()
                    .filter(|_| f.viewers >= 1000)
                    .map(|k| (k, None))
            })
        },
    );
    (p99, cpu)
}

/// One server's figure of a row, from its results.
type FigureOf<'a> = dyn Fn(&Results) -> Figure + 'a;

/// Rows being built from both servers' results.
struct Rows<'a> {
    rows: Vec<Row>,
    pw: &'a Results,
    bk: &'a Results,
}

impl Rows<'_> {
    /// Adds a row (workload, metric, direction, each server's figure); returns its index.
    fn add(&mut self, workload: &str, metric: &str, better: Better, fig: &FigureOf<'_>) -> usize {
        self.rows.push(Row {
            workload: workload.to_owned(),
            metric: metric.to_owned(),
            better,
            bokeh: fig(self.bk),
            plotwire: fig(self.pw),
            target: None,
        });
        self.rows.len() - 1
    }
}

/// The table rows, Bokeh's and plotwire's figures side by side, with plotwire's targets
/// (full runs only: the quick run asserts correctness, never speed).
pub fn rows(p: &Params, pw: &Results, bk: &Results, quick: bool) -> Vec<Row> {
    let mut table = Rows {
        rows: Vec::new(),
        pw,
        bk,
    };
    let mut row = |workload: &str, metric: &str, better: Better, fig: &FigureOf<'_>| {
        table.add(workload, metric, better, fig)
    };
    let mut targets: Vec<(usize, Target)> = Vec::new();

    for (i, spec) in p.ingest.iter().enumerate() {
        let w = format!(
            "1 ingest: {}-pt batches, {}, 1 in flight",
            points_label(spec.points),
            spec.encoding.name()
        );
        let get = |r: &Results| r.ingest.get(i).cloned().flatten();
        let idx = row(&w, "points/s", Better::Higher, &|r| {
            figure(&get(r), |x| {
                Some((x.points_per_sec(), Some(format!("{} batches", x.batches))))
            })
        });
        if spec.points == 1000 {
            targets.push((
                idx,
                Target {
                    goal: "≥ 30x bokeh".to_owned(),
                    pass: None,
                },
            ));
        }
        if spec.points == 100_000 && spec.encoding == Encoding::Binary {
            targets.push((
                idx,
                Target {
                    goal: "≥ 30M points/s".to_owned(),
                    pass: None,
                },
            ));
        }
        row(&w, "ack latency p50, ms", Better::Lower, &|r| {
            figure(&get(r), |x| quantile_ms(&x.acks, 0.5))
        });
        row(&w, "ack latency p99, ms", Better::Lower, &|r| {
            figure(&get(r), |x| quantile_ms(&x.acks, 0.99))
        });
        row(&w, "server CPU per 1M points, ms", Better::Lower, &|r| {
            figure(&get(r), |x| {
                let cpu = x.usage.cpu?;
                (x.points > 0).then(|| {
                    let per = cpu.as_secs_f64() * 1e3 * 1e6 / x.points as f64;
                    let cores = x.usage.cores().map(|c| format!("{c:.2} cores"));
                    (per, cores)
                })
            })
        });
        row(&w, "server RSS peak, MiB", Better::Lower, &|r| {
            figure(&get(r), |x| mib(x.usage.peak_rss_kib))
        });
    }

    for (i, &k) in p.fanout_viewers.iter().enumerate() {
        let w = format!(
            "2 fan-out: K={k} viewers, {} pts at {}/s for {} s",
            p.fanout.points,
            p.fanout.rate_hz,
            p.fanout.duration.as_secs()
        );
        let get = |r: &Results| r.fanout.get(i).cloned().flatten();
        let (p99, cpu) = fanout_rows(&mut row, &w, &get);
        if k == 100 {
            targets.push((
                p99,
                Target {
                    goal: "≤ 10 ms".to_owned(),
                    pass: None,
                },
            ));
        }
        if k == 1000 {
            targets.push((
                p99,
                Target {
                    goal: "≤ 50 ms".to_owned(),
                    pass: None,
                },
            ));
            targets.push((
                cpu,
                Target {
                    goal: "< 1 core".to_owned(),
                    pass: None,
                },
            ));
        }
    }

    for (i, &n) in p.big_points.iter().enumerate() {
        let w = format!("3 big doc: fresh viewer pulls {} pts", points_label(n));
        let get = |r: &Results| r.big.get(i).cloned().flatten();
        row(&w, "pull time, ms", Better::Lower, &|r| {
            figure(&get(r), |b| Some((ms(b.pull), None)))
        });
        row(&w, "bytes on the wire, MB", Better::Lower, &|r| {
            figure(&get(r), |b| Some((b.pull_bytes as f64 / 1e6, None)))
        });
        row(&w, "push time, ms", Better::Lower, &|r| {
            figure(&get(r), |b| Some((ms(b.push), None)))
        });
        row(&w, "server RSS with the doc, MiB", Better::Lower, &|r| {
            figure(&get(r), |b| mib(b.rss_kib))
        });
    }

    {
        let w = "4 browser: BokehJS in Chromium + bokeh.client";
        let get = |r: &Results| r.browser.clone();
        let stat = |pick: fn(&Browser) -> Summary, q: fn(&Summary) -> f64| {
            move |r: &Results| {
                figure(&get(r), |b| {
                    Some((q(&pick(b)), Some(format!("n {}", pick(b).n))))
                })
            }
        };
        row(
            w,
            "points visible p50, ms",
            Better::Lower,
            &stat(|b| b.points_visible, |s| s.p50),
        );
        row(
            w,
            "points visible p99, ms",
            Better::Lower,
            &stat(|b| b.points_visible, |s| s.p99),
        );
        row(
            w,
            "points visible max, ms",
            Better::Lower,
            &stat(|b| b.points_visible, |s| s.max),
        );
        row(
            w,
            "slider round trip p50, ms",
            Better::Lower,
            &stat(|b| b.slider_roundtrip, |s| s.p50),
        );
        row(
            w,
            "slider round trip p99, ms",
            Better::Lower,
            &stat(|b| b.slider_roundtrip, |s| s.p99),
        );
        row(
            w,
            "slider round trip max, ms",
            Better::Lower,
            &stat(|b| b.slider_roundtrip, |s| s.max),
        );
        row(w, "points checked in the page", Better::Neither, &|r| {
            figure(&get(r), |b| Some((b.checked_points as f64, None)))
        });
    }

    {
        let w = format!(
            "5 slow viewer: K={} viewers, {} pts at {}/s",
            p.slow_viewers, p.fanout.points, p.fanout.rate_hz
        );
        let base = |r: &Results| r.slow_base.clone();
        let slow = |r: &Results| r.slow.clone();
        row(
            &w,
            "others' p99 without a stalled viewer, ms",
            Better::Lower,
            &|r| figure(&base(r), |f| quantile_ms(&f.latencies, 0.99)),
        );
        let p99 = row(
            &w,
            "others' p99 with 1 stalled viewer, ms",
            Better::Lower,
            &|r| figure(&slow(r), |f| quantile_ms(&f.latencies, 0.99)),
        );
        row(
            &w,
            "others' delivered with 1 stalled, %",
            Better::Higher,
            &|r| figure(&slow(r), |f| Some((100.0 * f.delivered_fraction(), None))),
        );
        let rss_peak = |f: &Fanout| {
            let peak = f.usage.peak_rss_kib? as f64 / 1024.0;
            let start = f
                .usage
                .start_rss_kib
                .map(|k| format!("{:.1} at start", k as f64 / 1024.0));
            Some((peak, start))
        };
        row(&w, "server RSS peak without, MiB", Better::Lower, &|r| {
            figure(&base(r), rss_peak)
        });
        let rss = row(
            &w,
            "server RSS peak with 1 stalled, MiB",
            Better::Lower,
            &|r| figure(&slow(r), rss_peak),
        );
        targets.push((
            p99,
            Target {
                goal: "≤ 2x the run without".to_owned(),
                pass: None,
            },
        ));
        targets.push((
            rss,
            Target {
                goal: "≤ the run without + 16 MiB".to_owned(),
                pass: None,
            },
        ));
    }

    {
        let q = &p.pulls;
        let w = format!(
            "6 pull interference: K={}, {} pts at {}/s for {} s; another session's {}-pt doc \
             pulled {PULLS_PER_ROUND}x in a row",
            q.fanout.viewers,
            q.fanout.points,
            q.fanout.rate_hz,
            q.fanout.duration.as_secs(),
            points_label(q.doc_points)
        );
        let get = |r: &Results| r.pulls.clone();
        let lat = |phase: fn(&PullInterference) -> &Fanout, q: f64| {
            move |r: &Results| figure(&get(r), |x| quantile_ms(&phase(x).latencies, q))
        };
        row(
            &w,
            "p50 without pulls, ms",
            Better::Lower,
            &lat(|x| &x.without, 0.5),
        );
        row(
            &w,
            "p50 with pulls, ms",
            Better::Lower,
            &lat(|x| &x.with, 0.5),
        );
        row(
            &w,
            "p99 without pulls, ms",
            Better::Lower,
            &lat(|x| &x.without, 0.99),
        );
        let p99 = row(
            &w,
            "p99 with pulls, ms",
            Better::Lower,
            &lat(|x| &x.with, 0.99),
        );
        // After the p99 with pulls, whose target compares with the row before it.
        row(
            &w,
            "p99 with a CPU burner, ms",
            Better::Lower,
            &lat(|x| &x.control, 0.99),
        );
        let p99_over = |base: fn(&PullInterference) -> &Fanout| {
            move |r: &Results| {
                figure(&get(r), |x| {
                    let base = quantile(&base(x).latencies, 0.99)?;
                    let with = quantile(&x.with.latencies, 0.99)?;
                    (!base.is_zero()).then(|| (with.as_secs_f64() / base.as_secs_f64(), None))
                })
            }
        };
        row(
            &w,
            "p99 with / without pulls",
            Better::Lower,
            &p99_over(|x| &x.without),
        );
        row(
            &w,
            "p99 with pulls / with a CPU burner",
            Better::Lower,
            &p99_over(|x| &x.control),
        );
        row(
            &w,
            "max with pulls, ms",
            Better::Lower,
            &lat(|x| &x.with, 1.0),
        );
        row(&w, "delivered with pulls, %", Better::Higher, &|r| {
            figure(&get(r), |x| {
                let remark = x
                    .with
                    .producer_note
                    .as_ref()
                    .map(|_| "producer late".to_owned());
                Some((100.0 * x.with.delivered_fraction(), remark))
            })
        });
        row(&w, "pulls completed", Better::Neither, &|r| {
            figure(&get(r), |x| {
                let remark = format!(
                    "{} rounds, {} while streaming",
                    x.pulls.rounds, x.pulls.overlapping
                );
                Some((x.pulls.times.len() as f64, Some(remark)))
            })
        });
        row(&w, "pull time mean, ms", Better::Lower, &|r| {
            figure(&get(r), |x| x.pulls.mean().map(|d| (ms(d), None)))
        });
        targets.push((
            p99,
            Target {
                goal: "≤ 2x p99 without pulls".to_owned(),
                pass: None,
            },
        ));
    }

    for (i, spec) in p.rest_ingest.iter().enumerate() {
        let w = format!(
            "7 REST ingest: {}-pt batches, {}, 1 keep-alive connection",
            points_label(spec.points),
            spec.format.name()
        );
        let get = |r: &Results| r.rest_ingest.get(i).cloned().flatten();
        let idx = row(&w, "points/s", Better::Higher, &|r| {
            figure(&get(r), |x| {
                Some((x.points_per_sec(), Some(format!("{} batches", x.batches))))
            })
        });
        let values = row(&w, "values/s (2 per point)", Better::Higher, &|r| {
            figure(&get(r), |x| Some((2.0 * x.points_per_sec(), None)))
        });
        match spec.format {
            Format::Raw | Format::Arrow => targets.push((
                idx,
                Target {
                    goal: "≥ 50M points/s".to_owned(),
                    pass: None,
                },
            )),
            Format::Json | Format::Ndjson => targets.push((
                values,
                Target {
                    goal: "≥ 10M values/s".to_owned(),
                    pass: None,
                },
            )),
        }
        row(&w, "body MB/s", Better::Higher, &|r| {
            figure(&get(r), |x| Some((x.mb_per_sec(), None)))
        });
        row(&w, "request p50, ms", Better::Lower, &|r| {
            figure(&get(r), |x| quantile_ms(&x.latencies, 0.5))
        });
        row(&w, "request p99, ms", Better::Lower, &|r| {
            figure(&get(r), |x| quantile_ms(&x.latencies, 0.99))
        });
        row(&w, "server CPU per 1M points, ms", Better::Lower, &|r| {
            figure(&get(r), |x| {
                let cpu = x.usage.cpu?;
                (x.points > 0).then(|| {
                    let per = cpu.as_secs_f64() * 1e3 * 1e6 / x.points as f64;
                    let cores = x.usage.cores().map(|c| format!("{c:.2} cores"));
                    (per, cores)
                })
            })
        });
    }

    {
        let f = &p.views_fanout;
        let w = format!(
            "8 views fan-out: K={} views, {} pts at {}/s for {} s (plotwire REST producer, \
             bokeh websocket producer)",
            f.viewers,
            f.points,
            f.rate_hz,
            f.duration.as_secs()
        );
        let get = |r: &Results| r.views_fanout.clone();
        let (p99, _cpu) = fanout_rows(&mut row, &w, &get);
        targets.push((
            p99,
            Target {
                goal: "≤ 10 ms".to_owned(),
                pass: None,
            },
        ));
    }

    {
        let w = format!(
            "9 views memory: {}-pt document, 1 vs {} views",
            points_label(p.memory_points),
            p.memory_views
        );
        let get = |r: &Results| r.views_memory.clone();
        row(
            &w,
            "server RSS with the document, MiB",
            Better::Lower,
            &|r| figure(&get(r), |m| mib(m.rss_none_kib)),
        );
        row(&w, "server RSS with 1 view, MiB", Better::Lower, &|r| {
            figure(&get(r), |m| mib(m.rss_one_kib))
        });
        row(
            &w,
            &format!("server RSS with {} views, MiB", p.memory_views),
            Better::Lower,
            &|r| figure(&get(r), |m| mib(m.rss_all_kib)),
        );
        let growth = row(&w, "RSS growth 1 → all views, MiB", Better::Lower, &|r| {
            figure(&get(r), |m| m.growth_mib().map(|g| (g, None)))
        });
        targets.push((
            growth,
            Target {
                goal: "≤ +20 MiB".to_owned(),
                pass: None,
            },
        ));
    }

    {
        let w = format!(
            "10 view open: page + websocket + pull of a {}-pt document, {} opens",
            points_label(p.open_points),
            p.opens
        );
        let get = |r: &Results| r.view_open.clone();
        let median = row(&w, "total median, ms", Better::Lower, &|r| {
            figure(&get(r), |o| quantile_ms(&o.total, 0.5))
        });
        row(&w, "total p90, ms", Better::Lower, &|r| {
            figure(&get(r), |o| quantile_ms(&o.total, 0.9))
        });
        row(&w, "page GET median, ms", Better::Lower, &|r| {
            figure(&get(r), |o| quantile_ms(&o.page, 0.5))
        });
        row(&w, "websocket connect median, ms", Better::Lower, &|r| {
            figure(&get(r), |o| quantile_ms(&o.connect, 0.5))
        });
        row(&w, "pull median, ms", Better::Lower, &|r| {
            figure(&get(r), |o| quantile_ms(&o.pull, 0.5))
        });
        targets.push((
            median,
            Target {
                goal: "≤ 20 ms".to_owned(),
                pass: None,
            },
        ));
    }

    let mut rows = table.rows;
    if quick {
        return rows;
    }
    // Judge the targets on plotwire's figures.
    for (idx, mut target) in targets {
        let Some(r) = rows.get(idx) else { continue };
        let pwv = r.plotwire.value();
        target.pass = match target.goal.as_str() {
            "≥ 30x bokeh" => r.ratio().map(|x| x >= 30.0),
            "≥ 30M points/s" => pwv.map(|v| v >= 30e6),
            "≤ 10 ms" => pwv.map(|v| v <= 10.0),
            "≤ 20 ms" => pwv.map(|v| v <= 20.0),
            "≥ 50M points/s" => pwv.map(|v| v >= 50e6),
            "≥ 10M values/s" => pwv.map(|v| v >= 10e6),
            "≤ +20 MiB" => pwv.map(|v| v <= 20.0),
            "≤ 50 ms" => pwv.map(|v| v <= 50.0),
            "< 1 core" => pwv.map(|v| v < 1.0),
            // The row before is the run without (slow viewer), or p99 without pulls.
            "≤ 2x the run without" | "≤ 2x p99 without pulls" => {
                let without = idx
                    .checked_sub(1)
                    .and_then(|i| rows.get(i))
                    .and_then(|b| b.plotwire.value());
                pwv.zip(without)
                    .map(|(with, without)| with <= 2.0 * without)
            }
            "≤ the run without + 16 MiB" => {
                let without = idx
                    .checked_sub(1)
                    .and_then(|i| rows.get(i))
                    .and_then(|b| b.plotwire.value());
                pwv.zip(without)
                    .map(|(with, without)| with <= without + 16.0)
            }
            _ => None,
        };
        if let Some(r) = rows.get_mut(idx) {
            r.target = Some(target);
        }
    }
    rows
}
