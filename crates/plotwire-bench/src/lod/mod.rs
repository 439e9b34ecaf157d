//! `plotwire-bench lod`: the level-of-detail figures of `plotwire-lod`, in-process (no
//! server, no Bokeh: `bokeh serve` has no level of detail). Every figure is printed as it
//! is measured; none is asserted, but the run fails if the pyramid's downsampling and a
//! full-scan M4 of the same range disagree.
//!
//! A *point* here is one row of a float64 `x` and `y`: 16 bytes of raw data.
//!
//! 1. build: a pyramid over `--points` rows appended in 10,000-row batches, as a producer
//!    streams them;
//! 2. memory: the pyramid's bytes, and as a share of the raw data;
//! 3. query: `--queries` random views (`--width` pixel columns, one series) through
//!    [`downsample`], then a metered second pass over the same views telling where the
//!    time goes;
//! 4. the alternative: a full-scan M4 (what plotly-resampler does on every zoom) over the
//!    whole range, against one pyramid query over the same range;
//! 5. streaming: 10,000-row appends into a pyramid over data in memory while it grows;
//!    then the queries of 3 and the comparison of 4 over that data in memory.
//! 6. with `--stored DIR`: the series written for real into a block file as it is
//!    streamed, and the queries of 3 over the stored rows, cold and warm (`stored.rs`).

use std::ops::Range;
use std::time::{Duration, Instant};

use clap::Args;
use plotwire_lod::{downsample, pixel_columns, PixelColumns, Pyramid, Raw, Slices, Span, XIndex};

use crate::error::{err, Result};
use crate::progress;
use crate::report::{ms, quantile};
use crate::summary::percentiles;
use scan::{m4_scan, read_floor};
use series::{y_of, Metered, Procedural, Rng};

mod scan;
mod series;
mod stored;

/// The lod run's options.
#[derive(Args, Debug, Clone)]
pub struct LodArgs {
    /// Points (rows of float64 x and y) of the series the pyramid summarises; generated,
    /// not held in memory. Accepts `1e9`.
    #[arg(long, default_value = "1e9", value_parser = parse_count)]
    pub points: u64,
    /// Random views to query.
    #[arg(long, default_value = "1000", value_parser = parse_count)]
    pub queries: u64,
    /// Pixel columns of each view.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub width: u32,
    /// Seed of the random views.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the series for real into a block file in this directory (16 bytes per
    /// point: 16 GB at 1e9) and time the views over the stored rows (6.); the file is
    /// left there.
    #[arg(long)]
    pub stored: Option<std::path::PathBuf>,
    /// Points of the stored series (default `--points`).
    #[arg(long, value_parser = parse_count)]
    pub stored_points: Option<u64>,
}

/// Rows per append, as a producer streams them.
const BATCH: u64 = 10_000;
/// The smallest view, in rows.
const MIN_VIEW_ROWS: u64 = 1_000;
/// The size of the in-memory series (1.6 GB of x and y), or `--points` if smaller.
const IN_MEMORY_ROWS: u64 = 100_000_000;
/// Bytes of raw data per point: float64 x and y.
const RAW_BYTES_PER_POINT: f64 = 16.0;

/// A pyramid and the x index it is queried with, kept current together as a server
/// keeps them.
struct Built {
    pyramid: Pyramid,
    index: XIndex,
}

impl Built {
    fn new() -> Built {
        Built {
            pyramid: Pyramid::new(0, 0),
            index: XIndex::new(0),
        }
    }

    fn append(&mut self, raw: &dyn Raw, end: u64) {
        self.pyramid.append(raw, end);
        self.index.append(raw, end);
    }

    fn memory_bytes(&self) -> usize {
        self.pyramid.memory_bytes() + self.index.memory_bytes()
    }
}

/// A count such as `1000`, `2_000_000` or `1e9`.
fn parse_count(s: &str) -> std::result::Result<u64, String> {
    let plain = s.replace('_', "");
    if let Ok(n) = plain.parse::<u64>() {
        return Ok(n);
    }
    match plain.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 2f64.powi(53) => {
            Ok(v as u64)
        }
        _ => Err(format!("`{s}` is not a whole number of at most 2^53")),
    }
}

/// The rows of `raw` over `rows` for one view of the whole range through the pyramid.
fn pyramid_view(raw: &dyn Raw, built: &Built, rows: Range<u64>, columns: u32) -> Vec<u64> {
    let mut out = Vec::new();
    let span = Span {
        x0: raw.x(rows.start),
        x1: raw.x(rows.end.saturating_sub(1)),
        columns,
    };
    downsample(raw, &built.index, &[&built.pyramid], &[span], &mut out);
    out
}

/// The fastest of `runs` runs of `f`, and its last result.
fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Option<T>) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let value = std::hint::black_box(f());
        best = best.min(started.elapsed());
        last = Some(value);
    }
    (best, last)
}

/// `PASS` or `MISS`.
fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "MISS"
    }
}

/// Millions per second.
fn mega_rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
}

/// A count as `1e9` when it is a power of ten, else as digits.
fn rows_name(n: u64) -> String {
    let mut p = 1u64;
    for k in 0..20 {
        if p == n && k >= 3 {
            return format!("1e{k}");
        }
        p = p.saturating_mul(10);
    }
    n.to_string()
}

/// Fails unless the full-scan M4 and the pyramid returned the same rows.
fn same_rows(what: &str, scan: &[u64], pyramid: &[u64]) -> Result<()> {
    if scan == pyramid {
        return Ok(());
    }
    let at = scan
        .iter()
        .zip(pyramid)
        .position(|(a, b)| a != b)
        .unwrap_or(scan.len().min(pyramid.len()));
    Err(err(format!(
        "{what}: the full-scan M4 and the pyramid disagree: {} and {} rows, first difference \
         at position {at} ({:?} against {:?})",
        scan.len(),
        pyramid.len(),
        scan.get(at),
        pyramid.get(at)
    )))
}

/// A view of `rows` rows starting at row `start`, in x.
#[derive(Debug, Clone, Copy)]
struct View {
    start: u64,
    rows: u64,
}

/// The random views: a span log-uniform between [`MIN_VIEW_ROWS`] and all `n` rows, at a
/// uniform position.
fn views(n: u64, count: u64, seed: u64) -> Vec<View> {
    let mut rng = Rng(seed);
    let lo = (MIN_VIEW_ROWS.min(n) as f64).ln();
    let hi = (n as f64).ln();
    (0..count)
        .map(|_| {
            let rows = ((lo + (hi - lo) * rng.unit()).exp().round() as u64).clamp(1, n);
            View {
                start: rng.below(n - rows + 1),
                rows,
            }
        })
        .collect()
}

/// Where a set of queries spent their time.
#[derive(Default)]
struct Breakdown {
    /// Column edges, plain pass.
    edges: Duration,
    /// Column aggregates, plain pass.
    aggregates: Duration,
    /// Column aggregates, metered pass.
    metered_aggregates: Duration,
    /// Partial-bucket scans, metered pass.
    scans: Duration,
    x_reads: u64,
    scan_calls: u64,
    scanned: u64,
    columns: u64,
    raw_views: u64,
}

impl Breakdown {
    fn add(&mut self, o: &Breakdown) {
        self.edges += o.edges;
        self.aggregates += o.aggregates;
        self.metered_aggregates += o.metered_aggregates;
        self.scans += o.scans;
        self.x_reads += o.x_reads;
        self.scan_calls += o.scan_calls;
        self.scanned += o.scanned;
        self.columns += o.columns;
        self.raw_views += o.raw_views;
    }
}

/// Prints where `views` queries that took `total` in the timed pass spent their time.
fn print_breakdown(what: &str, b: &Breakdown, views: usize, total: Duration) {
    let queries = views.max(1) as f64;
    let per_query = |d: Duration| ms(d) / queries;
    let scan_share = b.scans.as_secs_f64() / b.metered_aggregates.as_secs_f64().max(1e-12);
    println!(
        "query breakdown, {what} ({views} views again, each part timed alone; means per \
         query): timed pass {:.3} ms; column edges by binary search on x {:.3} ms ({:.0} x \
         reads); column aggregates from the pyramid {:.3} ms over {:.0} columns, of which \
         partial-bucket scans {:.0} % ({:.0} rows in {:.0} scans) and bucket merges {:.0} % \
         (split timed through a metering reader); sort, dedup and output {:.3} ms (the timed \
         pass less the two parts, 0 when within noise); {} views small enough to send whole",
        per_query(total),
        per_query(b.edges),
        b.x_reads as f64 / queries,
        per_query(b.aggregates),
        b.columns as f64 / queries,
        100.0 * scan_share,
        b.scanned as f64 / queries,
        b.scan_calls as f64 / queries,
        100.0 * (1.0 - scan_share),
        per_query(total.saturating_sub(b.edges + b.aggregates)),
        b.raw_views,
    );
}

/// The row ranges of the pixel columns of `span` over the rows of `index`, as
/// `downsample` cuts them, or `None` when the view is sent whole.
fn column_rows(raw: &dyn Raw, index: &XIndex, span: Span) -> Option<Vec<Range<u64>>> {
    match pixel_columns(raw, index, span) {
        PixelColumns::Cut(columns) => Some(columns),
        PixelColumns::Empty | PixelColumns::Whole(_) => None,
    }
}

/// `downsample`'s work on one view in its two parts, each timed alone: the column edges
/// (binary searches on x), then every column's aggregate from the pyramid (bucket merges
/// and scans of the partial buckets at its ends). Then once more through [`Metered`], to
/// count the reads and to split the aggregates' time into scans and merges.
fn break_down(raw: &dyn Raw, built: &Built, span: Span, b: &mut Breakdown) {
    let pyramid = &built.pyramid;
    let started = Instant::now();
    let Some(columns) = column_rows(raw, &built.index, span) else {
        b.edges += started.elapsed();
        b.raw_views += 1;
        return;
    };
    b.edges += started.elapsed();
    let started = Instant::now();
    for rows in &columns {
        std::hint::black_box(pyramid.query(raw, rows.clone()));
    }
    b.aggregates += started.elapsed();

    let metered = Metered::new(raw);
    let _ = column_rows(&metered, &built.index, span);
    let started = Instant::now();
    for rows in &columns {
        std::hint::black_box(pyramid.query(&metered, rows.clone()));
    }
    b.metered_aggregates += started.elapsed();
    b.scans += metered.scan_time.get();
    b.x_reads += metered.x_reads.get();
    b.scan_calls += metered.scans.get();
    b.scanned += metered.scanned.get();
    b.columns += columns.len() as u64;
}

/// Times `downsample` over each of `views` of the rows `0..n` of `raw`, prints the
/// figure (`what` names the data) and the breakdown, and returns the p99.
fn query_views(
    what: &str,
    raw: &dyn Raw,
    built: &Built,
    n: u64,
    views: &[View],
    width: u32,
) -> Duration {
    let span_of = |v: &View| Span {
        x0: v.start as f64,
        x1: (v.start + v.rows - 1) as f64,
        columns: width,
    };
    let mut times = Vec::with_capacity(views.len());
    let mut returned = 0u64;
    let mut out = Vec::new();
    for v in views {
        out.clear();
        let started = Instant::now();
        downsample(
            raw,
            &built.index,
            &[&built.pyramid],
            &[span_of(v)],
            &mut out,
        );
        times.push(started.elapsed());
        returned += out.len() as u64;
    }
    let queries = views.len().max(1) as f64;
    let p99 = quantile(&times, 0.99).unwrap_or_default();
    println!(
        "query, {what}: {} random views (span log-uniform from {} rows to all {}, random \
         position), {width} columns, one series, downsample: {}; mean {:.0} rows returned; \
         target p99 ≤ 10 ms: {}",
        views.len(),
        MIN_VIEW_ROWS.min(n),
        rows_name(n),
        percentiles(&times),
        returned as f64 / queries,
        verdict(ms(p99) <= 10.0)
    );
    // The breakdown of all views, and of the slowest (at or above the p99).
    let mut all = Breakdown::default();
    let mut tail = Breakdown::default();
    let (mut tail_views, mut tail_total) = (0, Duration::ZERO);
    for (v, &t) in views.iter().zip(&times) {
        let mut one = Breakdown::default();
        break_down(raw, built, span_of(v), &mut one);
        if t >= p99 {
            tail.add(&one);
            tail_views += 1;
            tail_total += t;
        }
        all.add(&one);
    }
    let total: Duration = times.iter().sum();
    print_breakdown(&format!("{what}, all views"), &all, views.len(), total);
    print_breakdown(
        &format!("{what}, the views at or above the p99"),
        &tail,
        tail_views,
        tail_total,
    );
    p99
}

/// Runs every lod measurement and prints each figure as it is measured (the report it
/// returns is empty; the run passes unless the pyramid and the full scan disagree).
///
/// # Errors
/// `--points` below 1000; the in-memory series cannot be allocated; the pyramid's
/// downsampling differs from a full-scan M4 of the same range.
pub fn run(args: &LodArgs) -> Result<(String, bool)> {
    let n = args.points;
    let width = args.width;
    if n < MIN_VIEW_ROWS {
        return Err(err(format!(
            "--points {n}: at least {MIN_VIEW_ROWS} are needed"
        )));
    }
    println!(
        "plotwire-bench lod: level of detail (plotwire-lod, in-process; bokeh serve has none), \
         {} points (rows of float64 x and y), views of {width} pixel columns",
        rows_name(n)
    );

    // 1. Build, over the procedural series.
    let raw = Procedural { rows: n };
    let mut pyramid = Built::new();
    let started = Instant::now();
    let mut last_print = started;
    let mut end = 0;
    while end < n {
        end = (end + BATCH).min(n);
        pyramid.append(&raw, end);
        if last_print.elapsed() > Duration::from_secs(10) {
            progress(format!("lod: built {end} of {n} rows"));
            last_print = Instant::now();
        }
    }
    let build = started.elapsed();
    let gen_rows = n.min(IN_MEMORY_ROWS);
    let (gen_time, _) = best_of(1, || {
        let mut sum = 0.0;
        raw.scan(0, 0..gen_rows, &mut |_, y| sum += y);
        sum
    });
    println!(
        "build: pyramid over {} points appended in {BATCH}-row batches (procedural y): {:.2} s \
         = {:.1} M points/s (generating y alone costs {:.2} ns/point of it)",
        rows_name(n),
        build.as_secs_f64(),
        mega_rate(n, build),
        gen_time.as_secs_f64() * 1e9 / gen_rows as f64
    );

    // 2. Memory.
    let bytes = pyramid.memory_bytes() as f64;
    let raw_bytes = n as f64 * RAW_BYTES_PER_POINT;
    let share = 100.0 * bytes / raw_bytes;
    println!(
        "memory: pyramid and x index {:.1} MB for {} points = {share:.2} % of the raw {:.0} MB (16 bytes \
         per point, float64 x and y); {:.3} bytes per point; target ≤ 5 %: {}",
        bytes / 1e6,
        rows_name(n),
        raw_bytes / 1e6,
        bytes / n as f64,
        verdict(share <= 5.0)
    );

    // 3. Queries.
    let views_n = views(n, args.queries, args.seed);
    query_views("procedural y", &raw, &pyramid, n, &views_n, width);

    // 4. The alternative: a full-scan M4 over the whole range, procedural y.
    let mut sizes = vec![gen_rows];
    if n > gen_rows {
        sizes.push(n);
    }
    for &rows in &sizes {
        let span = Span {
            x0: 0.0,
            x1: (rows - 1) as f64,
            columns: width,
        };
        let runs = if rows > IN_MEMORY_ROWS { 1 } else { 3 };
        let (scan_time, scanned) = best_of(runs, || {
            let mut out = Vec::new();
            m4_scan((0..rows).map(|i| (i, i as f64, y_of(i))), span, &mut out);
            out
        });
        let (pyr_time, queried) = best_of(5, || pyramid_view(&raw, &pyramid, 0..rows, width));
        let scanned = scanned.unwrap_or_default();
        let queried = queried.unwrap_or_default();
        if rows > 4 * u64::from(width) {
            same_rows(&format!("{rows} procedural rows"), &scanned, &queried)?;
        }
        println!(
            "full-scan M4 (no pyramid; plotly-resampler's way), procedural y, all {} rows, \
             {width} columns: {:.1} ms ({:.0} M rows/s); one pyramid query over the same range \
             {:.3} ms (same {} rows); scan/pyramid {:.0}x",
            rows_name(rows),
            ms(scan_time),
            mega_rate(rows, scan_time),
            ms(pyr_time),
            queried.len(),
            scan_time.as_secs_f64() / pyr_time.as_secs_f64().max(1e-9)
        );
    }
    drop(pyramid);

    // 5. Streaming into a pyramid over data in memory, which also makes the in-memory
    // series of the fair comparison.
    let m = gen_rows;
    let cap = usize::try_from(m).map_err(|e| err(format!("{m} rows: {e}")))?;
    let mut x: Vec<f64> = Vec::new();
    let mut y: Vec<f64> = Vec::new();
    x.try_reserve_exact(cap)
        .and_then(|()| y.try_reserve_exact(cap))
        .map_err(|e| err(format!("allocating {m} rows of x and y: {e}")))?;
    let mut pyramid = Built::new();
    let mut appends = Vec::with_capacity(cap / BATCH as usize + 1);
    let mut produce = Duration::ZERO;
    let mut end = 0;
    while end < m {
        let next = (end + BATCH).min(m);
        let started = Instant::now();
        for i in end..next {
            x.push(i as f64);
            y.push(y_of(i));
        }
        produce += started.elapsed();
        let ys = [y.as_slice()];
        let raw = Slices {
            x: &x,
            ys: &ys,
            first: 0,
        };
        let started = Instant::now();
        pyramid.append(&raw, next);
        appends.push(started.elapsed());
        end = next;
    }
    let appending: Duration = appends.iter().sum();
    let tenth = (appends.len() / 10).max(1);
    let rate_of = |batches: &[Duration]| {
        let rows = batches.len() as u64 * BATCH;
        mega_rate(rows, batches.iter().sum())
    };
    let first_rate = rate_of(appends.get(..tenth).unwrap_or(&[]));
    let last_rate = rate_of(
        appends
            .get(appends.len().saturating_sub(tenth)..)
            .unwrap_or(&[]),
    );
    let stream_rate = mega_rate(m, appending);
    println!(
        "streaming: {} appends of {BATCH} rows into a pyramid over x and y in memory, growing \
         to {} points: {stream_rate:.1} M points/s with the aggregates kept current (first \
         tenth {first_rate:.1}, last tenth {last_rate:.1} M points/s); append {}; the \
         producer's own writes into memory {:.1} M points/s; target ≥ 10 M points/s: {}",
        appends.len(),
        rows_name(m),
        percentiles(&appends),
        mega_rate(m, produce),
        verdict(stream_rate >= 10.0)
    );

    // 4, fairly: the full scan over real memory against one pyramid query.
    let ys = [y.as_slice()];
    let raw = Slices {
        x: &x,
        ys: &ys,
        first: 0,
    };
    // The same kind of views over real memory: x's binary searches and the partial
    // buckets' reads now miss the cache, as they would in a server.
    let views_m = views(m, args.queries, args.seed);
    let what = format!("x and y in memory ({} rows)", rows_name(m));
    query_views(&what, &raw, &pyramid, m, &views_m, width);
    let span = Span {
        x0: 0.0,
        x1: (m - 1) as f64,
        columns: width,
    };
    let (scan_time, scanned) = best_of(3, || {
        let mut out = Vec::new();
        let points = x
            .iter()
            .zip(&y)
            .enumerate()
            .map(|(i, (&x, &y))| (i as u64, x, y));
        m4_scan(points, span, &mut out);
        out
    });
    let (pyr_time, queried) = best_of(5, || pyramid_view(&raw, &pyramid, 0..m, width));
    let (floor_time, _) = best_of(3, || read_floor(&x, &y));
    let scanned = scanned.unwrap_or_default();
    let queried = queried.unwrap_or_default();
    if m > 4 * u64::from(width) {
        same_rows(&format!("{m} rows in memory"), &scanned, &queried)?;
    }
    let pyr = pyr_time.as_secs_f64().max(1e-9);
    println!(
        "full-scan M4 over x and y in memory ({:.0} MB), all {} rows, {width} columns: {:.1} ms \
         ({:.0} M rows/s, best of 3); one pyramid query over the same data and range {:.3} ms \
         (best of 5, same {} rows); scan/pyramid {:.0}x; the read floor of any full scan (a \
         vectorized sum of x and y) {:.1} ms, floor/pyramid {:.0}x",
        m as f64 * RAW_BYTES_PER_POINT / 1e6,
        rows_name(m),
        ms(scan_time),
        mega_rate(m, scan_time),
        ms(pyr_time),
        queried.len(),
        scan_time.as_secs_f64() / pyr,
        ms(floor_time),
        floor_time.as_secs_f64() / pyr
    );
    drop((x, y, pyramid));

    // 6. The series in the store.
    if let Some(dir) = &args.stored {
        let points = args.stored_points.unwrap_or(n).max(MIN_VIEW_ROWS);
        stored::run(dir, points, args.queries, args.seed, width)?;
    }
    Ok((String::new(), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_with_exponents_and_underscores() {
        assert_eq!(parse_count("1e9"), Ok(1_000_000_000));
        assert_eq!(parse_count("2_000_000"), Ok(2_000_000));
        assert_eq!(parse_count("50"), Ok(50));
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("-3").is_err());
    }

    #[test]
    fn procedural_y_is_bounded_and_varies() {
        let ys: Vec<f64> = (0..10_000u64).map(|i| y_of(i * 7919)).collect();
        assert!(ys.iter().all(|y| (-5.0..=5.0).contains(y)));
        let distinct = ys
            .iter()
            .map(|y| y.to_bits())
            .collect::<std::collections::HashSet<_>>();
        assert!(distinct.len() > 9_900);
    }

    #[test]
    fn the_full_scan_and_the_pyramid_return_the_same_rows() {
        let n = 200_000u64;
        let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let y: Vec<f64> = (0..n).map(y_of).collect();
        let ys = [y.as_slice()];
        let raw = Slices {
            x: &x,
            ys: &ys,
            first: 0,
        };
        let mut pyramid = Built::new();
        pyramid.append(&raw, n);
        for columns in [1, 7, 300, 2000] {
            let mut scanned = Vec::new();
            let span = Span {
                x0: 0.0,
                x1: (n - 1) as f64,
                columns,
            };
            m4_scan(
                x.iter()
                    .zip(&y)
                    .enumerate()
                    .map(|(i, (&x, &y))| (i as u64, x, y)),
                span,
                &mut scanned,
            );
            assert_eq!(
                scanned,
                pyramid_view(&raw, &pyramid, 0..n, columns),
                "{columns}"
            );
            let procedural = Procedural { rows: n };
            assert_eq!(
                scanned,
                pyramid_view(&procedural, &pyramid, 0..n, columns),
                "procedural, {columns}"
            );
        }
    }

    #[test]
    fn views_stay_inside_the_series() {
        let n = 5_000_000;
        for v in views(n, 1000, 7) {
            assert!(v.rows >= MIN_VIEW_ROWS && v.start + v.rows <= n, "{v:?}");
        }
    }
}
