//! `plotwire-bench lod --stored DIR`: the queries of a series whose rows are in the
//! store, not in memory. The rows (the procedural series, written for real) go into a
//! [`BlockStore`] file in blocks of [`BASE_ROWS`] rows as they are streamed, the
//! pyramid and x index are built from each batch on the way, and the views then read
//! their column edges' blocks from the file through a [`Blocked`] reader.

use std::path::Path;
use std::time::{Duration, Instant};

use plotwire_lod::{downsample, Block, BlockSource, Blocked, Raw, Slices, Span, BASE_ROWS};
use plotwire_store::{BlockReader, BlockStore, Snapshot};

use super::series::{y_of, Procedural};
use super::{mega_rate, query_views, rows_name, verdict, views, Built, View, RAW_BYTES_PER_POINT};
use crate::error::{err, Result};
use crate::progress;
use crate::report::{ms, quantile};
use crate::summary::percentiles;

/// Blocks per write: 10,240 rows, about a producer's batch.
const WRITE_BLOCKS: u64 = 80;
/// Blocks a reader keeps between reads: more than a 2000-column view's edges.
const CACHE_BLOCKS: usize = 8192;
/// Views timed with a cold page cache (each can take a second from a slow disk).
const COLD_VIEWS: usize = 200;
/// Views compared row for row with the same views over the procedural series.
const CHECKED_VIEWS: usize = 50;
/// The series' number in the block file.
const SERIES: u32 = 0;

/// One series of x and y in a block file, as of one read transaction.
struct FileBlocks<'a>(&'a Snapshot<'a>);

impl BlockSource for FileBlocks<'_> {
    fn block(&self, number: u64) -> Option<Block> {
        self.0
            .with(SERIES, number, |bytes| Block::from_bytes(bytes, 1))
            .ok()
            .flatten()
            .flatten()
    }
}

/// The x and y of `rows`, into `out`: what a view's copy is made of.
fn values(raw: &dyn Raw, rows: &[u64], out: &mut Vec<(f64, f64)>) {
    out.clear();
    for &i in rows {
        let mut y = f64::NAN;
        raw.scan(0, i..i + 1, &mut |_, v| y = v);
        out.push((raw.x(i), y));
    }
}

/// The pyramid and x index of the `n` rows in `reader`'s file, read in order.
fn rebuild(reader: &BlockReader, n: u64) -> Result<Built> {
    let snapshot = reader
        .snapshot()
        .map_err(|e| err(format!("a read of the block file: {e}")))?;
    let source = FileBlocks(&snapshot);
    let blocks = n.div_ceil(BASE_ROWS);
    let mut built = Built::new();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut number = 0;
    while number < blocks {
        x.clear();
        y.clear();
        let first = number * BASE_ROWS;
        for b in number..(number + WRITE_BLOCKS).min(blocks) {
            let block = source
                .block(b)
                .ok_or_else(|| err(format!("block {b} of {blocks} is missing from the file")))?;
            x.extend_from_slice(block.x());
            y.extend_from_slice(block.y(0));
        }
        let ys = [y.as_slice()];
        let end = first + x.len() as u64;
        built.append(
            &Slices {
                x: &x,
                ys: &ys,
                first,
            },
            end,
        );
        number += WRITE_BLOCKS;
    }
    Ok(built)
}

/// Times each of `views` over the rows of `reader` as a server would serve it: a read
/// snapshot, the view's rows, then their x and y; prints the figures.
fn timed_views(
    label: &str,
    reader: &BlockReader,
    built: &Built,
    n: u64,
    views: &[View],
    width: u32,
) -> Result<()> {
    let mut times = Vec::with_capacity(views.len());
    let mut with_values = Vec::with_capacity(views.len());
    let (mut out, mut xy) = (Vec::new(), Vec::new());
    let mut reads = 0;
    for v in views {
        out.clear();
        let started = Instant::now();
        let snapshot = reader
            .snapshot()
            .map_err(|e| err(format!("a read of the block file: {e}")))?;
        let blocked = Blocked::new(FileBlocks(&snapshot), CACHE_BLOCKS);
        downsample(
            &blocked,
            &built.index,
            &[&built.pyramid],
            &[span_of(v, width)],
            &mut out,
        );
        times.push(started.elapsed());
        values(&blocked, &out, &mut xy);
        with_values.push(started.elapsed());
        reads += blocked.reads();
    }
    let reads = reads as f64 / views.len().max(1) as f64;
    let p99 = quantile(&with_values, 0.99).unwrap_or_default();
    println!(
        "query, stored {}, {label}: {} random views, {width} columns: the rows {}; with their x \
         and y read, as a view's copy needs them, {}; {reads:.0} block reads per view; target \
         p99 ≤ 10 ms: {}",
        rows_name(n),
        views.len(),
        percentiles(&times),
        percentiles(&with_values),
        verdict(ms(p99) <= 10.0)
    );
    Ok(())
}

/// The span of view `v` over `width` columns (x is the row number).
fn span_of(v: &View, width: u32) -> Span {
    Span {
        x0: v.start as f64,
        x1: (v.start + v.rows - 1) as f64,
        columns: width,
    }
}

/// Bytes the files under `dir` take.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Asks the kernel to write back and drop its page cache (root only), so that the next
/// reads come from the disk. Whether it could.
fn drop_page_cache() -> bool {
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Writes `n` procedural rows into a fresh block file under `dir`, building the
/// pyramid on the way, then times `queries` random views over the stored rows (after
/// dropping the page cache when it can, then again warm), and checks the first views
/// row for row against the same views over the procedural series.
///
/// # Errors
/// The block file cannot be made or written; a stored view differs from the procedural
/// one, or read a block the file did not give.
pub(super) fn run(dir: &Path, n: u64, queries: u64, seed: u64, width: u32) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    let path = dir.join("lod-blocks.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut store = BlockStore::open(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    println!(
        "stored: {} points of x and y written to {} in blocks of {BASE_ROWS} rows \
         ({WRITE_BLOCKS} blocks a transaction), the pyramid built from each batch",
        rows_name(n),
        path.display()
    );

    let mut built = Built::new();
    let batch = WRITE_BLOCKS * BASE_ROWS;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut encoded: Vec<(u64, Vec<u8>)> = Vec::new();
    let started = Instant::now();
    let mut last_print = started;
    let mut writing = Duration::ZERO;
    let mut end = 0;
    while end < n {
        let next = (end + batch).min(n);
        x.clear();
        y.clear();
        x.extend((end..next).map(|i| i as f64));
        y.extend((end..next).map(y_of));
        let ys = [y.as_slice()];
        built.append(
            &Slices {
                x: &x,
                ys: &ys,
                first: end,
            },
            next,
        );
        encoded.clear();
        for (k, (xs, ys)) in x
            .chunks(BASE_ROWS as usize)
            .zip(y.chunks(BASE_ROWS as usize))
            .enumerate()
        {
            let block = Block::new(xs, &[ys]).ok_or_else(|| err("a block of unequal columns"))?;
            encoded.push((end / BASE_ROWS + k as u64, block.to_bytes()));
        }
        let blocks: Vec<(u64, &[u8])> = encoded.iter().map(|(b, d)| (*b, d.as_slice())).collect();
        let write = Instant::now();
        store
            .put(SERIES, &blocks)
            .map_err(|e| err(format!("writing blocks: {e}")))?;
        writing += write.elapsed();
        end = next;
        if last_print.elapsed() > Duration::from_secs(10) {
            progress(format!("lod stored: wrote {end} of {n} rows"));
            last_print = Instant::now();
        }
    }
    let build = started.elapsed();
    drop(store);
    let on_disk = dir_bytes(dir);
    println!(
        "stored build: {} points in {:.1} s = {:.1} M points/s (the block writes alone {:.1} s); \
         {:.0} MB on disk = {:.2} bytes per point (uncompressed float64, {RAW_BYTES_PER_POINT} \
         raw); pyramid and x index in memory {:.1} MB = {:.2} % of the raw data",
        rows_name(n),
        build.as_secs_f64(),
        mega_rate(n, build),
        writing.as_secs_f64(),
        on_disk as f64 / 1e6,
        on_disk as f64 / n as f64,
        built.memory_bytes() as f64 / 1e6,
        100.0 * built.memory_bytes() as f64 / (n as f64 * RAW_BYTES_PER_POINT)
    );
    let store = BlockStore::open(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let reader = store
        .reader()
        .map_err(|e| err(format!("a reader of {}: {e}", path.display())))?;

    // A restart: the pyramid and x index rebuilt from the stored blocks alone.
    let started = Instant::now();
    let rebuilt = rebuild(&reader, n)?;
    let rebuild_time = started.elapsed();
    if rebuilt.memory_bytes() != built.memory_bytes() || rebuilt.index.rows() != built.index.rows()
    {
        return Err(err(format!(
            "the pyramid rebuilt from the blocks holds {} bytes for rows {:?}; the one built as \
             they were written {} bytes for rows {:?}",
            rebuilt.memory_bytes(),
            rebuilt.index.rows(),
            built.memory_bytes(),
            built.index.rows()
        )));
    }
    println!(
        "stored: pyramid and x index rebuilt from the {} stored blocks alone (a restart) in {:.1} \
         s = {:.1} M points/s; the views below query the rebuilt one",
        n.div_ceil(BASE_ROWS),
        rebuild_time.as_secs_f64(),
        mega_rate(n, rebuild_time)
    );
    drop(built);
    let built = rebuilt;

    let views_n = views(n, queries, seed);

    // Cold: the page cache dropped, every block read from the disk.
    let cold = drop_page_cache();
    let label = if cold {
        "the page cache dropped first (cold reads from the disk)"
    } else {
        "the page cache as it was (not root: could not drop it)"
    };
    let cold_views = views_n.get(..COLD_VIEWS.min(views_n.len())).unwrap_or(&[]);
    timed_views(label, &reader, &built, n, cold_views, width)?;

    // Warm: the whole file read once, so that it is in the page cache (if it fits).
    let started = Instant::now();
    let mut file =
        std::fs::File::open(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let bytes = std::io::copy(&mut file, &mut std::io::sink())
        .map_err(|e| err(format!("reading {}: {e}", path.display())))?;
    let read_time = started.elapsed();
    println!(
        "stored: the block file read whole ({:.0} MB) in {:.1} s = {:.0} MB/s, to warm the page \
         cache",
        bytes as f64 / 1e6,
        read_time.as_secs_f64(),
        bytes as f64 / 1e6 / read_time.as_secs_f64().max(1e-9)
    );
    timed_views("in the page cache", &reader, &built, n, &views_n, width)?;

    // One block at a time, at random: what each of a view's reads costs.
    let mut rng = super::series::Rng(seed ^ 0x5EED);
    let blocks = n.div_ceil(BASE_ROWS);
    let samples = 20_000;
    let started = Instant::now();
    let mut found = 0u64;
    let snapshot = reader
        .snapshot()
        .map_err(|e| err(format!("a read of the block file: {e}")))?;
    for _ in 0..samples {
        found += u64::from(FileBlocks(&snapshot).block(rng.below(blocks)).is_some());
    }
    let per_read = started.elapsed().as_secs_f64() * 1e6 / f64::from(samples);
    println!(
        "stored: {samples} random block reads (of {blocks}), after the views: {per_read:.2} µs \
         a read, {found} found"
    );

    // Where a warm view's time goes.
    let blocked = Blocked::new(FileBlocks(&snapshot), CACHE_BLOCKS);
    let what = format!("stored {} in the page cache", rows_name(n));
    query_views(&what, &blocked, &built, n, &views_n, width);

    // The stored rows are the procedural ones: the same views give the same rows.
    let procedural = Procedural { rows: n };
    for v in views_n.iter().take(CHECKED_VIEWS) {
        let span = [span_of(v, width)];
        let (mut want, mut got) = (Vec::new(), Vec::new());
        downsample(
            &procedural,
            &built.index,
            &[&built.pyramid],
            &span,
            &mut want,
        );
        downsample(&blocked, &built.index, &[&built.pyramid], &span, &mut got);
        super::same_rows(&format!("stored view {v:?}"), &want, &got)?;
    }
    if blocked.missing() > 0 {
        return Err(err(format!(
            "{} block reads found no block in {}",
            blocked.missing(),
            path.display()
        )));
    }
    println!(
        "stored: the first {CHECKED_VIEWS} views return the same rows as over the procedural \
         series; no read missed"
    );
    Ok(())
}
