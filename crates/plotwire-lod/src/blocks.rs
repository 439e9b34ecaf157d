//! A [`Raw`] over rows kept elsewhere (a store) in blocks of [`BASE_ROWS`] rows, the
//! pyramid's finest bucket: a view's query reads one block per pixel-column edge, to
//! find the edge's row and to aggregate the two partial buckets around it, so a series
//! too large for memory only needs its pyramid and x index there.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;

use crate::{Agg, Raw, BASE_ROWS};

/// The rows `number × BASE_ROWS ..` of x and every series: at most [`BASE_ROWS`] rows,
/// fewer only in a series' last block.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    rows: usize,
    /// `rows` x, then `rows` values of each series in turn.
    values: Box<[f64]>,
}

impl Block {
    /// The block of `x` and `ys` (one slice per series, each as long as `x`, at most
    /// [`BASE_ROWS`] rows), or `None` when the lengths say otherwise.
    pub fn new(x: &[f64], ys: &[&[f64]]) -> Option<Block> {
        if x.len() as u64 > BASE_ROWS || ys.iter().any(|y| y.len() != x.len()) {
            return None;
        }
        let mut values = Vec::with_capacity(x.len() * (1 + ys.len()));
        values.extend_from_slice(x);
        for y in ys {
            values.extend_from_slice(y);
        }
        Some(Block {
            rows: x.len(),
            values: values.into_boxed_slice(),
        })
    }

    /// The rows it holds.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Its x.
    pub fn x(&self) -> &[f64] {
        self.values.get(..self.rows).unwrap_or(&[])
    }

    /// The values of series `series` (empty past the last).
    pub fn y(&self, series: usize) -> &[f64] {
        let from = self.rows * (1 + series);
        self.values.get(from..from + self.rows).unwrap_or(&[])
    }

    /// Its bytes as stored: every value as 8 little-endian bytes, x first.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// The block stored as `bytes` (see [`Block::to_bytes`]) of a source of `series`
    /// series, or `None` when the length does not fit.
    pub fn from_bytes(bytes: &[u8], series: usize) -> Option<Block> {
        let per_row = 8 * (1 + series);
        if !bytes.len().is_multiple_of(per_row) || (bytes.len() / per_row) as u64 > BASE_ROWS {
            return None;
        }
        let values = bytes
            .chunks_exact(8)
            .map(|b| {
                let mut word = [0u8; 8];
                word.copy_from_slice(b);
                f64::from_le_bytes(word)
            })
            .collect();
        Some(Block {
            rows: bytes.len() / per_row,
            values,
        })
    }
}

/// Where a [`Blocked`] reader gets its blocks.
pub trait BlockSource {
    /// Block `number` (rows `number × BASE_ROWS ..`), or `None` when it is not held or
    /// cannot be read.
    fn block(&self, number: u64) -> Option<Block>;
}

/// A [`Raw`] reading the rows of a [`BlockSource`], keeping the blocks it read last
/// (up to a count, oldest out first): a query reads each edge's block twice, once to
/// find the edge's row and once to aggregate around it.
///
/// A row whose block the source does not give reads as NaN, and is counted
/// ([`Blocked::missing`]): a caller checks the count after a query and discards what a
/// failed read spoiled.
pub struct Blocked<S> {
    source: S,
    cache: RefCell<Cache>,
    missing: Cell<u64>,
    reads: Cell<u64>,
}

struct Cache {
    capacity: usize,
    blocks: HashMap<u64, Arc<Block>>,
    order: VecDeque<u64>,
}

impl<S: BlockSource> Blocked<S> {
    /// A reader of `source` keeping up to `cache_blocks` blocks (at least one).
    pub fn new(source: S, cache_blocks: usize) -> Blocked<S> {
        Blocked {
            source,
            cache: RefCell::new(Cache {
                capacity: cache_blocks.max(1),
                blocks: HashMap::new(),
                order: VecDeque::new(),
            }),
            missing: Cell::new(0),
            reads: Cell::new(0),
        }
    }

    /// Reads the source did not answer, since the reader was made.
    pub fn missing(&self) -> u64 {
        self.missing.get()
    }

    /// Blocks read from the source (not the cache), since the reader was made.
    pub fn reads(&self) -> u64 {
        self.reads.get()
    }

    /// Forgets the blocks kept (after the source changed them: a patch, a rollover).
    pub fn clear(&self) {
        let mut cache = self.cache.borrow_mut();
        cache.blocks.clear();
        cache.order.clear();
    }

    fn block(&self, number: u64) -> Option<Arc<Block>> {
        if let Some(block) = self.cache.borrow().blocks.get(&number) {
            return Some(Arc::clone(block));
        }
        self.reads.set(self.reads.get() + 1);
        let Some(block) = self.source.block(number) else {
            self.missing.set(self.missing.get() + 1);
            return None;
        };
        let block = Arc::new(block);
        let mut cache = self.cache.borrow_mut();
        while cache.order.len() >= cache.capacity {
            match cache.order.pop_front() {
                Some(old) => drop(cache.blocks.remove(&old)),
                None => break,
            }
        }
        cache.order.push_back(number);
        cache.blocks.insert(number, Arc::clone(&block));
        Some(block)
    }

    /// Calls `f(first row, values)` for each block's run of series `series` in `rows`.
    fn runs(&self, series: usize, rows: Range<u64>, mut f: impl FnMut(u64, &[f64])) {
        let mut at = rows.start;
        while at < rows.end {
            let number = at / BASE_ROWS;
            let base = number * BASE_ROWS;
            let upto = rows.end.min(base + BASE_ROWS);
            if let Some(block) = self.block(number) {
                let ys = block.y(series);
                let lo = ((at - base) as usize).min(ys.len());
                let hi = ((upto - base) as usize).min(ys.len());
                f(at, ys.get(lo..hi).unwrap_or(&[]));
            }
            at = upto;
        }
    }
}

impl<S: BlockSource> Raw for Blocked<S> {
    fn x(&self, i: u64) -> f64 {
        self.block(i / BASE_ROWS)
            .and_then(|b| b.x().get((i % BASE_ROWS) as usize).copied())
            .unwrap_or(f64::NAN)
    }

    fn scan(&self, series: usize, rows: Range<u64>, f: &mut dyn FnMut(u64, f64)) {
        self.runs(series, rows, |first, ys| {
            for (k, &y) in ys.iter().enumerate() {
                f(first + k as u64, y);
            }
        });
    }

    fn aggregate(&self, series: usize, rows: Range<u64>) -> Agg {
        let mut agg = Agg::default();
        self.runs(series, rows, |first, ys| agg.then(&Agg::of(first, ys)));
        agg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{downsample, Pyramid, Slices, Span, XIndex};

    /// Blocks cut from slices, as a store would give them back.
    struct Cut<'a>(Slices<'a>);

    impl BlockSource for Cut<'_> {
        fn block(&self, number: u64) -> Option<Block> {
            let from = usize::try_from(number * BASE_ROWS).ok()?;
            let to = (from + BASE_ROWS as usize).min(self.0.x.len());
            let ys: Vec<&[f64]> = self
                .0
                .ys
                .iter()
                .map(|y| y.get(from..to))
                .collect::<Option<_>>()?;
            let block = Block::new(self.0.x.get(from..to)?, &ys)?;
            Block::from_bytes(&block.to_bytes(), ys.len())
        }
    }

    #[test]
    fn a_blocked_reader_downsamples_as_the_slices_it_was_cut_from() {
        let n = 20_000usize;
        let x: Vec<f64> = (0..n).map(|i| (i / 3) as f64).collect();
        let y: Vec<f64> = (0..n)
            .map(|i| match i % 997 {
                0 => f64::NAN,
                k => ((i * 7919) % 1013) as f64 - k as f64 * 0.25,
            })
            .collect();
        let ys = [y.as_slice()];
        let slices = Slices {
            x: &x,
            ys: &ys,
            first: 0,
        };
        let blocked = Blocked::new(Cut(slices), 3);
        let (mut pyramid, mut index) = (Pyramid::new(0, 0), XIndex::new(0));
        pyramid.append(&slices, n as u64);
        index.append(&slices, n as u64);
        for (x0, x1, columns) in [(0.0, 7000.0, 50), (12.5, 4000.0, 333), (100.0, 101.0, 9)] {
            let span = [Span { x0, x1, columns }];
            let (mut want, mut got) = (Vec::new(), Vec::new());
            downsample(&slices, &index, &[&pyramid], &span, &mut want);
            downsample(&blocked, &index, &[&pyramid], &span, &mut got);
            assert!(!want.is_empty());
            assert_eq!(got, want, "span {x0}..{x1} over {columns} columns");
        }
        assert_eq!(blocked.missing(), 0);
        assert!(blocked.reads() > 0);
        assert_eq!(
            blocked.aggregate(0, 5..19_999),
            Agg::of(5, &y[5..19_999]),
            "an aggregate across many blocks"
        );
    }

    #[test]
    fn a_missing_block_reads_as_nan_and_is_counted() {
        struct Nothing;
        impl BlockSource for Nothing {
            fn block(&self, _: u64) -> Option<Block> {
                None
            }
        }
        let blocked = Blocked::new(Nothing, 4);
        assert!(blocked.x(7).is_nan());
        assert_eq!(blocked.aggregate(0, 0..300), Agg::default());
        assert_eq!(blocked.missing(), 4);
    }

    #[test]
    fn bytes_of_the_wrong_length_are_refused() {
        let block = Block::new(&[1.0, 2.0], &[&[3.0, 4.0]]).unwrap();
        let bytes = block.to_bytes();
        assert_eq!(Block::from_bytes(&bytes, 1), Some(block));
        assert_eq!(Block::from_bytes(&bytes[..31], 1), None);
        assert_eq!(Block::from_bytes(&vec![0u8; 8 * 2 * 129], 1), None);
        assert_eq!(Block::new(&[1.0], &[&[1.0, 2.0]]), None);
    }
}
