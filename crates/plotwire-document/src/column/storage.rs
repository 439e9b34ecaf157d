//! Chunk storage: immutable shared chunks, rollover by dropping whole chunks, and
//! copy-on-write writes.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use plotwire_protocol::value::{ArrayForm, DType, Value};

use super::rules::bin_value;
use super::ColumnKind;

/// (copying at most [`SMALL_CHUNK_BYTES`]) instead of adding chunks forever.
pub(super) const COALESCE_AFTER_CHUNKS: usize = 32;

/// The largest chunk (approximate bytes) that small streams are merged into.
pub(super) const SMALL_CHUNK_BYTES: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------
// Chunk storage
// ---------------------------------------------------------------------------------------

/// One chunk: a view onto shared, immutable elements.
pub(super) trait Segment: Clone {
    /// Number of elements in the view.
    fn count(&self) -> usize;
    /// Drops the first `n` elements from the view (no copy).
    fn trim_front(&mut self, n: usize);
    /// Approximate size in bytes, for the coalescing heuristic.
    fn approx_bytes(&self) -> usize;
    /// A new chunk holding `self` followed by `next` (copies both).
    fn concat(&self, next: &Self) -> Self;
}

/// A typed chunk: `data[start..end]`.
#[derive(Debug, Clone)]
pub(super) struct Run<T> {
    pub(super) data: Arc<[T]>,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl<T: Clone> Run<T> {
    pub(super) fn from_vec(v: Vec<T>) -> Self {
        let end = v.len();
        Run {
            data: Arc::from(v),
            start: 0,
            end,
        }
    }

    pub(super) fn as_slice(&self) -> &[T] {
        self.data.get(self.start..self.end).unwrap_or(&[])
    }

    /// The view's elements, mutable; copies the view first when the chunk is shared.
    pub(super) fn make_mut(&mut self) -> &mut [T] {
        if Arc::get_mut(&mut self.data).is_none() {
            let owned: Arc<[T]> = Arc::from(self.as_slice());
            self.end = owned.len();
            self.start = 0;
            self.data = owned;
        }
        match Arc::get_mut(&mut self.data) {
            Some(all) => all.get_mut(self.start..self.end).unwrap_or(&mut []),
            None => &mut [],
        }
    }
}

impl<T: Clone> Segment for Run<T> {
    fn count(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    fn trim_front(&mut self, n: usize) {
        self.start = self.start.saturating_add(n).min(self.end);
    }

    fn approx_bytes(&self) -> usize {
        self.count().saturating_mul(std::mem::size_of::<T>())
    }

    fn concat(&self, next: &Self) -> Self {
        let mut v = Vec::with_capacity(self.count() + next.count());
        v.extend_from_slice(self.as_slice());
        v.extend_from_slice(next.as_slice());
        Run::from_vec(v)
    }
}

/// A binary chunk: whole little-endian elements of `esz` bytes each.
#[derive(Debug, Clone)]
pub(super) struct BinRun {
    pub(super) bytes: Bytes,
    pub(super) esz: usize,
}

impl Segment for BinRun {
    fn count(&self) -> usize {
        self.bytes.len() / self.esz.max(1)
    }

    fn trim_front(&mut self, n: usize) {
        let cut = n.saturating_mul(self.esz).min(self.bytes.len());
        self.bytes = self.bytes.slice(cut..);
    }

    fn approx_bytes(&self) -> usize {
        self.bytes.len()
    }

    fn concat(&self, next: &Self) -> Self {
        let mut b = BytesMut::with_capacity(self.bytes.len() + next.bytes.len());
        b.extend_from_slice(&self.bytes);
        b.extend_from_slice(&next.bytes);
        BinRun {
            bytes: b.freeze(),
            esz: self.esz,
        }
    }
}

/// A sequence of chunks with absolute positions, so that rollover is O(chunks dropped)
/// and locating an item is a binary search.
#[derive(Debug, Clone)]
pub(super) struct Chunked<S> {
    pub(super) segs: VecDeque<S>,
    /// Absolute end position of each chunk.
    pub(super) ends: VecDeque<usize>,
    /// Absolute position of the first live element (the start of `segs[0]`).
    pub(super) start: usize,
}

impl<S: Segment> Chunked<S> {
    pub(super) fn new() -> Self {
        Chunked {
            segs: VecDeque::new(),
            ends: VecDeque::new(),
            start: 0,
        }
    }

    pub(super) fn end_abs(&self) -> usize {
        self.ends.back().copied().unwrap_or(self.start)
    }

    pub(super) fn len(&self) -> usize {
        self.end_abs() - self.start
    }

    pub(super) fn chunk_count(&self) -> usize {
        self.segs.len()
    }

    /// Appends a chunk; small chunks are merged once the column has many chunks.
    pub(super) fn push(&mut self, seg: S) {
        let n = seg.count();
        if n == 0 {
            return;
        }
        let end = self.end_abs() + n;
        if self.segs.len() >= COALESCE_AFTER_CHUNKS {
            if let (Some(last), Some(last_end)) = (self.segs.back_mut(), self.ends.back_mut()) {
                if last.approx_bytes().saturating_add(seg.approx_bytes()) <= SMALL_CHUNK_BYTES {
                    *last = last.concat(&seg);
                    *last_end = end;
                    return;
                }
            }
        }
        self.segs.push_back(seg);
        self.ends.push_back(end);
    }

    /// Drops the first `n` elements: whole chunks, then an offset into the next one.
    pub(super) fn drop_front(&mut self, n: usize) {
        let n = n.min(self.len());
        if n == 0 {
            return;
        }
        let target = self.start + n;
        let mut seg_start = self.start;
        while let Some(&end) = self.ends.front() {
            if end > target {
                break;
            }
            seg_start = end;
            self.ends.pop_front();
            self.segs.pop_front();
        }
        if let Some(seg) = self.segs.front_mut() {
            seg.trim_front(target - seg_start);
        }
        self.start = target;
    }

    /// The chunk holding item `i` and the offset inside it.
    pub(super) fn locate(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.len() {
            return None;
        }
        let abs = self.start + i;
        let k = self.ends.partition_point(|&e| e <= abs);
        let seg_start = match k.checked_sub(1) {
            None => self.start,
            Some(p) => *self.ends.get(p)?,
        };
        Some((k, abs - seg_start))
    }

    /// The chunks overlapping items `lo..hi` (clamped to the length), each with the
    /// element range inside it, front to back.
    pub(super) fn pieces(&self, lo: usize, hi: usize) -> Vec<(&S, usize, usize)> {
        let hi = hi.min(self.len());
        let mut out = Vec::new();
        let Some((first, _)) = self.locate(lo).filter(|_| lo < hi) else {
            return out;
        };
        let (lo, hi) = (self.start + lo, self.start + hi);
        for k in first..self.segs.len() {
            let seg_start = match k.checked_sub(1) {
                None => self.start,
                Some(p) => self.ends.get(p).copied().unwrap_or(self.start),
            };
            if seg_start >= hi {
                break;
            }
            let (Some(seg), Some(&seg_end)) = (self.segs.get(k), self.ends.get(k)) else {
                break;
            };
            out.push((
                seg,
                lo.max(seg_start) - seg_start,
                hi.min(seg_end) - seg_start,
            ));
        }
        out
    }

    /// A chunked sequence with the same chunk boundaries, each chunk mapped by `f`.
    pub(super) fn map<U: Clone>(&self, f: impl Fn(&S) -> Vec<U>) -> Chunked<Run<U>> {
        Chunked {
            segs: self.segs.iter().map(|s| Run::from_vec(f(s))).collect(),
            ends: self.ends.clone(),
            start: self.start,
        }
    }
}

impl<T: Clone> Chunked<Run<T>> {
    pub(super) fn get(&self, i: usize) -> Option<&T> {
        let (k, off) = self.locate(i)?;
        self.segs.get(k)?.as_slice().get(off)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.segs.iter().flat_map(|s| s.as_slice().iter())
    }

    /// Writes `(index, value)` pairs; indices must be in range (others are ignored).
    pub(super) fn write(&mut self, writes: Vec<(usize, T)>) {
        for (i, v) in writes {
            if let Some((k, off)) = self.locate(i) {
                if let Some(slot) = self.segs.get_mut(k).and_then(|s| s.make_mut().get_mut(off)) {
                    *slot = v;
                }
            }
        }
    }
}

impl Chunked<BinRun> {
    pub(super) fn elem(&self, i: usize) -> Option<&[u8]> {
        let (k, off) = self.locate(i)?;
        let seg = self.segs.get(k)?;
        let a = off.checked_mul(seg.esz)?;
        seg.bytes.get(a..a.checked_add(seg.esz)?)
    }

    /// All elements as one buffer; no copy when there is at most one chunk.
    pub(super) fn contiguous(&self) -> Bytes {
        match self.segs.len() {
            0 => Bytes::new(),
            1 => self
                .segs
                .front()
                .map(|s| s.bytes.clone())
                .unwrap_or_default(),
            _ => {
                let total = self.segs.iter().map(|s| s.bytes.len()).sum();
                let mut b = BytesMut::with_capacity(total);
                for s in &self.segs {
                    b.extend_from_slice(&s.bytes);
                }
                b.freeze()
            }
        }
    }

    /// Replaces the chunks by one contiguous chunk, so that later reads of the whole
    /// column share it instead of joining the chunks again.
    pub(super) fn compact(&mut self) {
        if self.segs.len() <= 1 {
            return;
        }
        let esz = self.segs.front().map(|s| s.esz).unwrap_or(1);
        let end = self.end_abs();
        let bytes = self.contiguous();
        self.segs = VecDeque::from([BinRun { bytes, esz }]);
        self.ends = VecDeque::from([end]);
    }

    /// Writes elements `data[j*esz..(j+1)*esz]` at `indices[j]`; `indices` ascending.
    /// Each touched chunk is made writable once (in place when unshared).
    pub(super) fn write(&mut self, indices: &[usize], data: &[u8], esz: usize) {
        let mut current: Option<(usize, BytesMut)> = None;
        for (j, &i) in indices.iter().enumerate() {
            let Some((k, off)) = self.locate(i) else {
                continue;
            };
            let Some(src) = data.get(j * esz..(j + 1) * esz) else {
                continue;
            };
            if current.as_ref().map(|(ck, _)| *ck) != Some(k) {
                self.flush(current.take());
                let Some(seg) = self.segs.get_mut(k) else {
                    continue;
                };
                let taken = std::mem::take(&mut seg.bytes);
                let buf = taken
                    .try_into_mut()
                    .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                current = Some((k, buf));
            }
            if let Some((_, buf)) = current.as_mut() {
                if let Some(dst) = buf.get_mut(off * esz..(off + 1) * esz) {
                    dst.copy_from_slice(src);
                }
            }
        }
        self.flush(current);
    }

    pub(super) fn flush(&mut self, current: Option<(usize, BytesMut)>) {
        if let Some((k, buf)) = current {
            if let Some(seg) = self.segs.get_mut(k) {
                seg.bytes = buf.freeze();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(super) enum Storage {
    Empty,
    Binary {
        form: ArrayForm,
        dtype: DType,
        chunks: Chunked<BinRun>,
    },
    Float(Chunked<Run<f64>>),
    Int(Chunked<Run<i64>>),
    Bool(Chunked<Run<bool>>),
    Str(Chunked<Run<String>>),
    Any(Chunked<Run<Value>>),
}

/// New items (for a stream) or new values (for a patch), already in the target's type.
pub(super) enum Fresh {
    /// Little-endian elements of the given dtype.
    Bin(Bytes, DType),
    F(Vec<f64>),
    I(Vec<i64>),
    B(Vec<bool>),
    S(Vec<String>),
    A(Vec<Value>),
}

impl Fresh {
    pub(super) fn into_values(self) -> Vec<Value> {
        match self {
            Fresh::Bin(b, d) => b
                .chunks_exact(d.size().max(1))
                .filter_map(|e| bin_value(d, e))
                .collect(),
            Fresh::F(v) => v.into_iter().map(Value::Float).collect(),
            Fresh::I(v) => v.into_iter().map(Value::Int).collect(),
            Fresh::B(v) => v.into_iter().map(Value::Bool).collect(),
            Fresh::S(v) => v.into_iter().map(Value::Str).collect(),
            Fresh::A(v) => v,
        }
    }
}

impl Storage {
    pub(super) fn kind(&self) -> ColumnKind {
        match self {
            Storage::Empty => ColumnKind::Empty,
            Storage::Binary { form, dtype, .. } => ColumnKind::Binary {
                form: *form,
                dtype: *dtype,
            },
            Storage::Float(_) => ColumnKind::Float,
            Storage::Int(_) => ColumnKind::Int,
            Storage::Bool(_) => ColumnKind::Bool,
            Storage::Str(_) => ColumnKind::Str,
            Storage::Any(_) => ColumnKind::Any,
        }
    }

    pub(super) fn empty_of(kind: ColumnKind) -> Storage {
        match kind {
            ColumnKind::Empty => Storage::Empty,
            ColumnKind::Binary { form, dtype } => Storage::Binary {
                form,
                dtype,
                chunks: Chunked::new(),
            },
            ColumnKind::Float => Storage::Float(Chunked::new()),
            ColumnKind::Int => Storage::Int(Chunked::new()),
            ColumnKind::Bool => Storage::Bool(Chunked::new()),
            ColumnKind::Str => Storage::Str(Chunked::new()),
            ColumnKind::Any => Storage::Any(Chunked::new()),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Storage::Empty => 0,
            Storage::Binary { chunks, .. } => chunks.len(),
            Storage::Float(c) => c.len(),
            Storage::Int(c) => c.len(),
            Storage::Bool(c) => c.len(),
            Storage::Str(c) => c.len(),
            Storage::Any(c) => c.len(),
        }
    }

    pub(super) fn chunk_count(&self) -> usize {
        match self {
            Storage::Empty => 0,
            Storage::Binary { chunks, .. } => chunks.chunk_count(),
            Storage::Float(c) => c.chunk_count(),
            Storage::Int(c) => c.chunk_count(),
            Storage::Bool(c) => c.chunk_count(),
            Storage::Str(c) => c.chunk_count(),
            Storage::Any(c) => c.chunk_count(),
        }
    }

    pub(super) fn drop_front(&mut self, n: usize) {
        match self {
            Storage::Empty => {}
            Storage::Binary { chunks, .. } => chunks.drop_front(n),
            Storage::Float(c) => c.drop_front(n),
            Storage::Int(c) => c.drop_front(n),
            Storage::Bool(c) => c.drop_front(n),
            Storage::Str(c) => c.drop_front(n),
            Storage::Any(c) => c.drop_front(n),
        }
    }

    pub(super) fn get(&self, i: usize) -> Option<Value> {
        match self {
            Storage::Empty => None,
            Storage::Binary { dtype, chunks, .. } => bin_value(*dtype, chunks.elem(i)?),
            Storage::Float(c) => c.get(i).map(|x| Value::Float(*x)),
            Storage::Int(c) => c.get(i).map(|x| Value::Int(*x)),
            Storage::Bool(c) => c.get(i).map(|x| Value::Bool(*x)),
            Storage::Str(c) => c.get(i).map(|x| Value::Str(x.clone())),
            Storage::Any(c) => c.get(i).cloned(),
        }
    }

    /// The same items as an `Any` column, with the same chunk boundaries.
    pub(super) fn to_any(&self) -> Chunked<Run<Value>> {
        match self {
            Storage::Empty => Chunked::new(),
            Storage::Binary { dtype, chunks, .. } => {
                let d = *dtype;
                chunks.map(|s| {
                    s.bytes
                        .chunks_exact(d.size().max(1))
                        .filter_map(|e| bin_value(d, e))
                        .collect()
                })
            }
            Storage::Float(c) => c.map(|s| s.as_slice().iter().map(|x| Value::Float(*x)).collect()),
            Storage::Int(c) => c.map(|s| s.as_slice().iter().map(|x| Value::Int(*x)).collect()),
            Storage::Bool(c) => c.map(|s| s.as_slice().iter().map(|x| Value::Bool(*x)).collect()),
            Storage::Str(c) => c.map(|s| s.as_slice().iter().cloned().map(Value::Str).collect()),
            Storage::Any(c) => c.clone(),
        }
    }

    /// Converts to `target` (one of the promotions the type rules allow: from `Empty`,
    /// int to float, anything to `Any`). Copies the column only when the kind changes.
    pub(super) fn convert_to(&mut self, target: ColumnKind) {
        let current = self.kind();
        if current == target {
            return;
        }
        let next = match (&*self, target) {
            (Storage::Empty, k) => Storage::empty_of(k),
            (Storage::Int(c), ColumnKind::Float) => {
                Storage::Float(c.map(|s| s.as_slice().iter().map(|x| *x as f64).collect()))
            }
            // `Any` is the target of every other promotion and the safe fallback.
            (s, _) => Storage::Any(s.to_any()),
        };
        *self = next;
    }

    /// Appends new items of the storage's own type.
    pub(super) fn append(&mut self, fresh: Fresh) {
        match (&mut *self, fresh) {
            (Storage::Binary { dtype, chunks, .. }, Fresh::Bin(b, d)) if *dtype == d => {
                let esz = d.size().max(1);
                chunks.push(BinRun { bytes: b, esz });
            }
            (Storage::Float(c), Fresh::F(v)) => c.push(Run::from_vec(v)),
            (Storage::Int(c), Fresh::I(v)) => c.push(Run::from_vec(v)),
            (Storage::Bool(c), Fresh::B(v)) => c.push(Run::from_vec(v)),
            (Storage::Str(c), Fresh::S(v)) => c.push(Run::from_vec(v)),
            (Storage::Any(c), fresh) => {
                c.push(Run::from_vec(fresh.into_values()));
            }
            (_, fresh) => {
                // Not produced by the planners; keep every item rather than drop any.
                let values = fresh.into_values();
                let mut any = self.to_any();
                any.push(Run::from_vec(values));
                *self = Storage::Any(any);
            }
        }
    }

    /// Writes new values at ascending `indices`.
    pub(super) fn write(&mut self, indices: Vec<usize>, fresh: Fresh) {
        pub(super) fn pairs<T>(indices: Vec<usize>, v: Vec<T>) -> Vec<(usize, T)> {
            indices.into_iter().zip(v).collect()
        }
        match (&mut *self, fresh) {
            (Storage::Binary { dtype, chunks, .. }, Fresh::Bin(b, d)) if *dtype == d => {
                chunks.write(&indices, &b, d.size().max(1));
            }
            (Storage::Float(c), Fresh::F(v)) => c.write(pairs(indices, v)),
            (Storage::Int(c), Fresh::I(v)) => c.write(pairs(indices, v)),
            (Storage::Bool(c), Fresh::B(v)) => c.write(pairs(indices, v)),
            (Storage::Str(c), Fresh::S(v)) => c.write(pairs(indices, v)),
            (Storage::Any(c), fresh) => c.write(pairs(indices, fresh.into_values())),
            (_, fresh) => {
                // Not produced by the planners; fall back to an `Any` column.
                let mut any = self.to_any();
                any.write(pairs(indices, fresh.into_values()));
                *self = Storage::Any(any);
            }
        }
    }
}
