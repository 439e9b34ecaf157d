//! One column of a `ColumnDataSource`, typed and chunked (architecture: "Columns are typed
//! and chunked"; protocol spec §6.3, §6.4, §7.2–§7.4).
//!
//! A [`Column`] holds its items in immutable shared chunks. Streaming appends a chunk (a
//! binary stream of the column's dtype appends the received [`Bytes`] without copying),
//! rollover drops whole chunks from the front plus an offset into the first remaining one,
//! and cloning a column only clones the chunk handles. Patching copies at most the chunks
//! it writes into, and only when they are shared (copy-on-write).
//!
//! Every mutating operation is atomic: it validates the whole request before it changes
//! anything, so an `Err` leaves the column exactly as it was.

use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use plotwire_protocol::value::{ArrayData, ArrayForm, ArrayValue, DType, Slice, Value};

/// Once a column has this many chunks, small streams are merged into the last chunk
/// (copying at most [`SMALL_CHUNK_BYTES`]) instead of adding chunks forever.
const COALESCE_AFTER_CHUNKS: usize = 32;

/// The largest chunk (approximate bytes) that small streams are merged into.
const SMALL_CHUNK_BYTES: usize = 64 * 1024;

/// Why a column operation was refused. The column is unchanged when one is returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ColumnError {
    /// The value is neither a list nor an array, so it cannot be (part of) a column.
    #[error("not a column: expected a list or a 1-D array, got {found}")]
    NotAColumn {
        /// What was found instead.
        found: String,
    },
    /// An array used as a whole column or as streamed items has more than one dimension.
    #[error("columns must be 1-D, but the array has shape {shape:?}")]
    NotOneDimensional {
        /// The array's shape.
        shape: Vec<usize>,
    },
    /// An array whose header does not match its body.
    #[error("malformed array: {problem}")]
    MalformedArray {
        /// What is wrong with it.
        problem: String,
    },
    /// A value that the column (or the array item being patched) cannot hold.
    #[error("type mismatch: cannot put {value} into {target}")]
    TypeMismatch {
        /// The offending value, described (e.g. "a string", "the int 300").
        value: String,
        /// Where it was going (e.g. "float64 column", "int32 ndarray item 0").
        target: String,
    },
    /// An integer patch index outside `0 <= index < len`.
    #[error("patch index {index} out of range for column of length {len}")]
    IndexOutOfRange {
        /// The index as sent.
        index: i64,
        /// The column's length.
        len: usize,
    },
    /// A slice index that Bokeh rejects (negative bounds, start after stop, step below 1).
    #[error("bad slice (start {start:?}, stop {stop:?}, step {step:?}): {reason}")]
    BadSlice {
        /// The slice's start.
        start: Option<i64>,
        /// The slice's stop.
        stop: Option<i64>,
        /// The slice's step.
        step: Option<i64>,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A patch index of a form that is neither an integer, a slice nor a multi-index.
    #[error("bad patch index: {problem}")]
    BadIndex {
        /// What is wrong with it.
        problem: String,
    },
    /// A patch value of the wrong shape for its index (e.g. a scalar for a slice).
    #[error("bad patch value: {problem}")]
    BadValue {
        /// What is wrong with it.
        problem: String,
    },
    /// A patch value with a different number of elements than its index selects.
    #[error("wrong value length: the index selects {expected} items but the value has {actual}")]
    LengthMismatch {
        /// How many elements the index selects.
        expected: usize,
        /// How many the value holds.
        actual: usize,
    },
    /// A multi-index patch whose target item is not an ndarray.
    #[error("multi-index patch needs an ndarray item, but item {index} is {found}")]
    NotAnArray {
        /// The item index.
        index: usize,
        /// What the item is.
        found: String,
    },
    /// A multi-index patch with the wrong number of sub-indices for its item.
    #[error("multi-index patch has {given} sub-indices but item {index} has {ndim} dimensions")]
    DimensionMismatch {
        /// The item index.
        index: usize,
        /// Number of sub-indices given.
        given: usize,
        /// Number of dimensions of the item.
        ndim: usize,
    },
    /// An integer sub-index outside its dimension.
    #[error("sub-index {index} out of range for dimension {dim} of length {len}")]
    SubIndexOutOfRange {
        /// The sub-index as sent.
        index: i64,
        /// Which dimension (0-based).
        dim: usize,
        /// That dimension's length.
        len: usize,
    },
}

/// What a column holds. Reported by [`Column::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// No items yet, and no type: the first non-empty stream decides.
    Empty,
    /// A binary array (`typed_array` or `ndarray`) of a non-`object` dtype, kept as
    /// little-endian bytes and re-encoded with the same form and dtype.
    Binary {
        /// The form it arrived in.
        form: ArrayForm,
        /// Its element type.
        dtype: DType,
    },
    /// A JSON list of numbers, at least one of them a float.
    Float,
    /// A JSON list of integers.
    Int,
    /// A JSON list of booleans.
    Bool,
    /// A JSON list of strings.
    Str,
    /// A JSON list of anything else: nulls, mixed types, nested lists, ndarrays (images).
    Any,
}

impl ColumnKind {
    /// A short name for messages: the dtype name for binary columns, `float64`, `int64`,
    /// `bool`, `string`, `object` or `empty` otherwise.
    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::Empty => "empty",
            ColumnKind::Binary { dtype, .. } => dtype.name(),
            ColumnKind::Float => "float64",
            ColumnKind::Int => "int64",
            ColumnKind::Bool => "bool",
            ColumnKind::Str => "string",
            ColumnKind::Any => "object",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Chunk storage
// ---------------------------------------------------------------------------------------

/// One chunk: a view onto shared, immutable elements.
trait Segment: Clone {
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
struct Run<T> {
    data: Arc<[T]>,
    start: usize,
    end: usize,
}

impl<T: Clone> Run<T> {
    fn from_vec(v: Vec<T>) -> Self {
        let end = v.len();
        Run {
            data: Arc::from(v),
            start: 0,
            end,
        }
    }

    fn as_slice(&self) -> &[T] {
        self.data.get(self.start..self.end).unwrap_or(&[])
    }

    /// The view's elements, mutable; copies the view first when the chunk is shared.
    fn make_mut(&mut self) -> &mut [T] {
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
struct BinRun {
    bytes: Bytes,
    esz: usize,
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
struct Chunked<S> {
    segs: VecDeque<S>,
    /// Absolute end position of each chunk.
    ends: VecDeque<usize>,
    /// Absolute position of the first live element (the start of `segs[0]`).
    start: usize,
}

impl<S: Segment> Chunked<S> {
    fn new() -> Self {
        Chunked {
            segs: VecDeque::new(),
            ends: VecDeque::new(),
            start: 0,
        }
    }

    fn end_abs(&self) -> usize {
        self.ends.back().copied().unwrap_or(self.start)
    }

    fn len(&self) -> usize {
        self.end_abs() - self.start
    }

    fn chunk_count(&self) -> usize {
        self.segs.len()
    }

    /// Appends a chunk; small chunks are merged once the column has many chunks.
    fn push(&mut self, seg: S) {
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
    fn drop_front(&mut self, n: usize) {
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
    fn locate(&self, i: usize) -> Option<(usize, usize)> {
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

    /// A chunked sequence with the same chunk boundaries, each chunk mapped by `f`.
    fn map<U: Clone>(&self, f: impl Fn(&S) -> Vec<U>) -> Chunked<Run<U>> {
        Chunked {
            segs: self.segs.iter().map(|s| Run::from_vec(f(s))).collect(),
            ends: self.ends.clone(),
            start: self.start,
        }
    }
}

impl<T: Clone> Chunked<Run<T>> {
    fn get(&self, i: usize) -> Option<&T> {
        let (k, off) = self.locate(i)?;
        self.segs.get(k)?.as_slice().get(off)
    }

    fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.segs.iter().flat_map(|s| s.as_slice().iter())
    }

    /// Writes `(index, value)` pairs; indices must be in range (others are ignored).
    fn write(&mut self, writes: Vec<(usize, T)>) {
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
    fn elem(&self, i: usize) -> Option<&[u8]> {
        let (k, off) = self.locate(i)?;
        let seg = self.segs.get(k)?;
        let a = off.checked_mul(seg.esz)?;
        seg.bytes.get(a..a.checked_add(seg.esz)?)
    }

    /// All elements as one buffer; no copy when there is at most one chunk.
    fn contiguous(&self) -> Bytes {
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
    fn compact(&mut self) {
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
    fn write(&mut self, indices: &[usize], data: &[u8], esz: usize) {
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

    fn flush(&mut self, current: Option<(usize, BytesMut)>) {
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
enum Storage {
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
enum Fresh {
    /// Little-endian elements of the given dtype.
    Bin(Bytes, DType),
    F(Vec<f64>),
    I(Vec<i64>),
    B(Vec<bool>),
    S(Vec<String>),
    A(Vec<Value>),
}

impl Fresh {
    fn into_values(self) -> Vec<Value> {
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
    fn kind(&self) -> ColumnKind {
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

    fn empty_of(kind: ColumnKind) -> Storage {
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

    fn len(&self) -> usize {
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

    fn chunk_count(&self) -> usize {
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

    fn drop_front(&mut self, n: usize) {
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

    fn get(&self, i: usize) -> Option<Value> {
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
    fn to_any(&self) -> Chunked<Run<Value>> {
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
    fn convert_to(&mut self, target: ColumnKind) {
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
    fn append(&mut self, fresh: Fresh) {
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
    fn write(&mut self, indices: Vec<usize>, fresh: Fresh) {
        fn pairs<T>(indices: Vec<usize>, v: Vec<T>) -> Vec<(usize, T)> {
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

// ---------------------------------------------------------------------------------------
// Values, dtypes and the type rules
// ---------------------------------------------------------------------------------------

/// Describes a value for error messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the bool {b}"),
        Value::Int(i) => format!("the int {i}"),
        Value::Float(x) => format!("the float {x}"),
        Value::Str(_) => "a string".into(),
        Value::List(_) => "a list".into(),
        Value::Dict(_) => "a dict".into(),
        Value::Map(_) => "a map".into(),
        Value::Set(_) => "a set".into(),
        Value::Bytes(_) => "bytes".into(),
        Value::Array(a) => match a.form {
            ArrayForm::Typed => "a typed_array".into(),
            ArrayForm::Nd => "an ndarray".into(),
        },
        Value::Slice(_) => "a slice".into(),
        Value::Ref(_) => "a model reference".into(),
        Value::Model(_) => "a model".into(),
        Value::Tagged { tag, .. } => format!("a {tag:?} object"),
    }
}

fn mismatch(v: &Value, kind: ColumnKind) -> ColumnError {
    ColumnError::TypeMismatch {
        value: describe(v),
        target: format!("{} column", kind.name()),
    }
}

/// One binary element as a value: `Bool`, `Int` for integer dtypes, `Float` for floats.
fn bin_value(dtype: DType, elem: &[u8]) -> Option<Value> {
    let x = dtype.read_f64(elem, 0)?;
    Some(match dtype {
        DType::Bool => Value::Bool(x != 0.0),
        DType::F32 | DType::F64 => Value::Float(x),
        // Every integer dtype Bokeh sends fits in an f64 exactly.
        _ => Value::Int(x as i64),
    })
}

/// The value as an integer, if it is an `Int` or an integral, finite `Float`.
fn as_integer(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.2e18 => Some(*x as i64),
        _ => None,
    }
}

/// Appends `v` encoded as one little-endian `dtype` element; false when `v` is not
/// representable (floats go into float dtypes always, into integer dtypes only when
/// integral and in range; only booleans go into `bool`).
fn encode(dtype: DType, v: &Value, out: &mut Vec<u8>) -> bool {
    fn int<T: TryFrom<i64>>(v: &Value) -> Option<T> {
        as_integer(v).and_then(|i| T::try_from(i).ok())
    }
    match dtype {
        DType::Bool => match v {
            Value::Bool(b) => out.push(u8::from(*b)),
            _ => return false,
        },
        DType::F64 => match v {
            Value::Int(i) => out.extend_from_slice(&(*i as f64).to_le_bytes()),
            Value::Float(x) => out.extend_from_slice(&x.to_le_bytes()),
            _ => return false,
        },
        DType::F32 => match v {
            Value::Int(i) => out.extend_from_slice(&(*i as f32).to_le_bytes()),
            Value::Float(x) => out.extend_from_slice(&(*x as f32).to_le_bytes()),
            _ => return false,
        },
        DType::U8 => match int::<u8>(v) {
            Some(x) => out.extend_from_slice(&x.to_le_bytes()),
            None => return false,
        },
        DType::I8 => match int::<i8>(v) {
            Some(x) => out.extend_from_slice(&x.to_le_bytes()),
            None => return false,
        },
        DType::U16 => match int::<u16>(v) {
            Some(x) => out.extend_from_slice(&x.to_le_bytes()),
            None => return false,
        },
        DType::I16 => match int::<i16>(v) {
            Some(x) => out.extend_from_slice(&x.to_le_bytes()),
            None => return false,
        },
        DType::U32 => match int::<u32>(v) {
            Some(x) => out.extend_from_slice(&x.to_le_bytes()),
            None => return false,
        },
        DType::I32 => match int::<i32>(v) {
            Some(x) => out.extend_from_slice(&x.to_le_bytes()),
            None => return false,
        },
        DType::Object => return false,
    }
    true
}

/// The kind a list of values gets on its own (spec of [`Column::from_value`]).
fn infer<I>(values: I) -> ColumnKind
where
    I: IntoIterator,
    I::Item: Borrow<Value>,
{
    let (mut n, mut all_int, mut all_num, mut all_bool, mut all_str) = (0, true, true, true, true);
    for v in values {
        n += 1;
        let v = v.borrow();
        all_int &= matches!(v, Value::Int(_));
        all_num &= matches!(v, Value::Int(_) | Value::Float(_));
        all_bool &= matches!(v, Value::Bool(_));
        all_str &= matches!(v, Value::Str(_));
        if !(all_num || all_bool || all_str) {
            return ColumnKind::Any;
        }
    }
    match () {
        _ if n == 0 => ColumnKind::Empty,
        _ if all_int => ColumnKind::Int,
        _ if all_num => ColumnKind::Float,
        _ if all_bool => ColumnKind::Bool,
        _ if all_str => ColumnKind::Str,
        _ => ColumnKind::Any,
    }
}

/// The kind a column of kind `kind` must become to accept all of `values`.
///
/// `Empty` takes the inferred kind; list kinds accept their own family plus nulls (which
/// make the column `Any`), and an int column that receives a float becomes a float column.
/// Binary columns never change kind; their values are checked when encoded.
fn merge_kind<I>(kind: ColumnKind, values: I) -> Result<ColumnKind, ColumnError>
where
    I: IntoIterator,
    I::Item: Borrow<Value>,
{
    match kind {
        ColumnKind::Any | ColumnKind::Binary { .. } => Ok(kind),
        ColumnKind::Empty => Ok(infer(values)),
        ColumnKind::Float | ColumnKind::Int | ColumnKind::Bool | ColumnKind::Str => {
            let (mut has_null, mut has_float) = (false, false);
            for v in values {
                let v = v.borrow();
                match (kind, v) {
                    (_, Value::Null) => has_null = true,
                    (ColumnKind::Float | ColumnKind::Int, Value::Int(_)) => {}
                    (ColumnKind::Float | ColumnKind::Int, Value::Float(_)) => has_float = true,
                    (ColumnKind::Bool, Value::Bool(_)) | (ColumnKind::Str, Value::Str(_)) => {}
                    _ => return Err(mismatch(v, kind)),
                }
            }
            Ok(if has_null {
                ColumnKind::Any
            } else if kind == ColumnKind::Int && has_float {
                ColumnKind::Float
            } else {
                kind
            })
        }
    }
}

/// Items to append or write, borrowed from a list or a 1-D array.
enum Items<'a> {
    Values(&'a [Value]),
    Binary {
        form: ArrayForm,
        dtype: DType,
        bytes: &'a Bytes,
    },
}

impl<'a> Items<'a> {
    /// The items of a list or of a 1-D array; anything else is refused.
    fn of(v: &'a Value) -> Result<Items<'a>, ColumnError> {
        match v {
            Value::List(items) => Ok(Items::Values(items)),
            Value::Array(a) => {
                if a.shape.len() != 1 {
                    return Err(ColumnError::NotOneDimensional {
                        shape: a.shape.clone(),
                    });
                }
                check_array(a)?;
                Ok(match &a.data {
                    ArrayData::List(items) => Items::Values(items),
                    ArrayData::Binary(bytes) => Items::Binary {
                        form: a.form,
                        dtype: a.dtype,
                        bytes,
                    },
                })
            }
            other => Err(ColumnError::NotAColumn {
                found: describe(other),
            }),
        }
    }

    fn len(&self) -> usize {
        match self {
            Items::Values(v) => v.len(),
            Items::Binary { dtype, bytes, .. } => bytes.len() / dtype.size().max(1),
        }
    }

    fn iter(&self) -> impl Iterator<Item = Cow<'a, Value>> + 'a {
        let (values, bin): (&'a [Value], Option<(DType, &'a [u8])>) = match self {
            Items::Values(v) => (v, None),
            Items::Binary { dtype, bytes, .. } => (&[], Some((*dtype, &bytes[..]))),
        };
        let bin_iter = bin.into_iter().flat_map(|(d, b)| {
            b.chunks_exact(d.size().max(1))
                .filter_map(move |e| bin_value(d, e))
                .map(Cow::Owned)
        });
        values.iter().map(Cow::Borrowed).chain(bin_iter)
    }
}

/// Checks that an array's header matches its body.
fn check_array(a: &ArrayValue) -> Result<(), ColumnError> {
    let numel = a
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| ColumnError::MalformedArray {
            problem: format!("shape {:?} is too large", a.shape),
        })?;
    match &a.data {
        ArrayData::Binary(bytes) => {
            let size = a.dtype.size();
            if size == 0 {
                return Err(ColumnError::MalformedArray {
                    problem: "an object array must have a list body, not bytes".into(),
                });
            }
            if bytes.len() % size != 0 {
                return Err(ColumnError::MalformedArray {
                    problem: format!(
                        "{} bytes are not a whole number of {} elements",
                        bytes.len(),
                        a.dtype.name()
                    ),
                });
            }
            if bytes.len() / size != numel {
                return Err(ColumnError::MalformedArray {
                    problem: format!(
                        "shape {:?} needs {numel} elements but the body has {}",
                        a.shape,
                        bytes.len() / size
                    ),
                });
            }
        }
        ArrayData::List(items) => {
            if items.len() != numel {
                return Err(ColumnError::MalformedArray {
                    problem: format!(
                        "shape {:?} needs {numel} elements but the body has {}",
                        a.shape,
                        items.len()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Converts items to the storage type of `target`, failing on anything it cannot hold.
fn build_fresh(target: ColumnKind, items: &Items<'_>) -> Result<Fresh, ColumnError> {
    fn collect<T>(
        items: &Items<'_>,
        target: ColumnKind,
        f: impl Fn(&Value) -> Option<T>,
    ) -> Result<Vec<T>, ColumnError> {
        let mut out = Vec::with_capacity(items.len());
        for v in items.iter() {
            out.push(f(&v).ok_or_else(|| mismatch(&v, target))?);
        }
        Ok(out)
    }
    Ok(match target {
        ColumnKind::Binary { dtype, .. } => {
            if let Items::Binary {
                dtype: from, bytes, ..
            } = items
            {
                if *from == dtype {
                    // Same dtype: keep the received buffer, no copy.
                    return Ok(Fresh::Bin((*bytes).clone(), dtype));
                }
            }
            let mut out = Vec::with_capacity(items.len().saturating_mul(dtype.size()));
            for v in items.iter() {
                if !encode(dtype, &v, &mut out) {
                    return Err(mismatch(&v, target));
                }
            }
            Fresh::Bin(Bytes::from(out), dtype)
        }
        ColumnKind::Float => Fresh::F(collect(items, target, |v| match v {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            _ => None,
        })?),
        ColumnKind::Int => Fresh::I(collect(items, target, |v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        })?),
        ColumnKind::Bool => Fresh::B(collect(items, target, |v| match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        })?),
        ColumnKind::Str => Fresh::S(collect(items, target, |v| match v {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        })?),
        ColumnKind::Any | ColumnKind::Empty => {
            Fresh::A(items.iter().map(Cow::into_owned).collect())
        }
    })
}

/// A resolved slice: `count` positions `start, start + step, ...`.
#[derive(Debug, Clone, Copy)]
struct Sel {
    start: usize,
    count: usize,
    step: usize,
}

impl Sel {
    fn positions(self) -> impl Iterator<Item = usize> {
        (0..self.count).map(move |j| self.start + j * self.step)
    }
}

/// Resolves a slice against a length `len`, with Bokeh's rules: no negative bounds,
/// `start <= stop`, `step >= 1`; `stop` is clamped to `len`.
fn resolve_slice(s: &Slice, len: usize) -> Result<Sel, ColumnError> {
    let bad = |reason| ColumnError::BadSlice {
        start: s.start,
        stop: s.stop,
        step: s.step,
        reason,
    };
    let step = s.step.unwrap_or(1);
    if step < 1 {
        return Err(bad("step must be at least 1"));
    }
    let start = s.start.unwrap_or(0);
    let stop = s.stop.unwrap_or(i64::try_from(len).unwrap_or(i64::MAX));
    if start < 0 || stop < 0 {
        return Err(bad("start and stop must not be negative"));
    }
    if start > stop {
        return Err(bad("start must not be greater than stop"));
    }
    let clamp = |x: i64| usize::try_from(x).unwrap_or(usize::MAX).min(len);
    let (start, stop) = (clamp(start), clamp(stop));
    let step = usize::try_from(step).unwrap_or(usize::MAX);
    let count = if stop > start {
        (stop - start - 1) / step + 1
    } else {
        0
    };
    Ok(Sel { start, count, step })
}

/// The elements of a patch value, flattened row-major (nested lists and arrays).
fn flatten<'a>(v: &'a Value, out: &mut Vec<Cow<'a, Value>>) {
    match v {
        Value::List(items) => items.iter().for_each(|x| flatten(x, out)),
        Value::Array(a) => match &a.data {
            ArrayData::List(items) => items.iter().for_each(|x| flatten(x, out)),
            ArrayData::Binary(bytes) => {
                let size = a.dtype.size();
                if size > 0 {
                    out.extend(
                        bytes
                            .chunks_exact(size)
                            .filter_map(|e| bin_value(a.dtype, e))
                            .map(Cow::Owned),
                    );
                }
            }
        },
        scalar => out.push(Cow::Borrowed(scalar)),
    }
}

/// Writes `value` into `item[subs]` (a multi-index patch), returning the new item.
/// The item's bytes are copied; the original item is untouched.
fn patch_item(
    a: &ArrayValue,
    index: usize,
    subs: &[Value],
    value: &Value,
) -> Result<ArrayValue, ColumnError> {
    let ndim = a.shape.len();
    if subs.len() != ndim {
        return Err(ColumnError::DimensionMismatch {
            index,
            given: subs.len(),
            ndim,
        });
    }
    check_array(a)?;
    let mut sels = Vec::with_capacity(ndim);
    for (dim, (sub, &len)) in subs.iter().zip(&a.shape).enumerate() {
        sels.push(match sub {
            Value::Int(j) => match usize::try_from(*j) {
                Ok(u) if u < len => Sel {
                    start: u,
                    count: 1,
                    step: 1,
                },
                _ => {
                    return Err(ColumnError::SubIndexOutOfRange {
                        index: *j,
                        dim,
                        len,
                    })
                }
            },
            Value::Slice(s) => resolve_slice(s, len)?,
            other => {
                return Err(ColumnError::BadIndex {
                    problem: format!(
                        "sub-index {dim} must be an integer or a slice, not {}",
                        describe(other)
                    ),
                })
            }
        });
    }
    // Row-major flat offsets of the selection.
    let mut strides = vec![1usize; ndim];
    for d in (0..ndim.saturating_sub(1)).rev() {
        let next = strides.get(d + 1).copied().unwrap_or(1);
        let len = a.shape.get(d + 1).copied().unwrap_or(1);
        if let Some(s) = strides.get_mut(d) {
            *s = next.saturating_mul(len);
        }
    }
    let total: usize = sels.iter().map(|s| s.count).product();
    let mut offsets = Vec::with_capacity(total);
    if total > 0 {
        let mut counter = vec![0usize; ndim];
        'outer: loop {
            let off: usize = sels
                .iter()
                .zip(&counter)
                .zip(&strides)
                .map(|((s, &c), &st)| (s.start + c * s.step) * st)
                .sum();
            offsets.push(off);
            // Advance the row-major counter; stop after the last combination.
            let mut d = ndim;
            loop {
                if d == 0 {
                    break 'outer;
                }
                d -= 1;
                let (Some(c), Some(s)) = (counter.get_mut(d), sels.get(d)) else {
                    break 'outer;
                };
                *c += 1;
                if *c < s.count {
                    break;
                }
                *c = 0;
            }
        }
    }
    let scalar = !matches!(value, Value::List(_) | Value::Array(_));
    let mut leaves = Vec::new();
    flatten(value, &mut leaves);
    if !scalar && leaves.len() != total {
        return Err(ColumnError::LengthMismatch {
            expected: total,
            actual: leaves.len(),
        });
    }
    let leaf = |j: usize| -> Option<&Value> {
        if scalar {
            Some(value)
        } else {
            leaves.get(j).map(|c| c.as_ref())
        }
    };
    let target = || format!("{} ndarray item {index}", a.dtype.name());
    let mut out = a.clone();
    match &mut out.data {
        ArrayData::Binary(bytes) => {
            let size = a.dtype.size();
            let mut buf = bytes.to_vec();
            let mut scratch = Vec::with_capacity(8);
            for (j, &off) in offsets.iter().enumerate() {
                let Some(v) = leaf(j) else { continue };
                scratch.clear();
                if !encode(a.dtype, v, &mut scratch) {
                    return Err(ColumnError::TypeMismatch {
                        value: describe(v),
                        target: target(),
                    });
                }
                if let Some(dst) = buf.get_mut(off * size..(off + 1) * size) {
                    dst.copy_from_slice(&scratch);
                }
            }
            *bytes = Bytes::from(buf);
        }
        ArrayData::List(items) => {
            let mut scratch = Vec::with_capacity(8);
            for (j, &off) in offsets.iter().enumerate() {
                let Some(v) = leaf(j) else { continue };
                let stored = if a.dtype == DType::Object {
                    v.clone()
                } else {
                    scratch.clear();
                    let ok = encode(a.dtype, v, &mut scratch);
                    match bin_value(a.dtype, &scratch) {
                        Some(n) if ok => n,
                        _ => {
                            return Err(ColumnError::TypeMismatch {
                                value: describe(v),
                                target: target(),
                            })
                        }
                    }
                };
                if let Some(slot) = items.get_mut(off) {
                    *slot = stored;
                }
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Column
// ---------------------------------------------------------------------------------------

/// One column of a `ColumnDataSource`: typed, chunked and cheap to clone.
///
/// Cloning costs O(number of chunks): the chunks themselves are shared and copied only
/// when a patch writes into a shared one. Two columns are equal when they have the same
/// [`ColumnKind`] and the same items (floats in `Float` columns and binary elements are
/// compared bit for bit, so a NaN equals itself).
#[derive(Debug, Clone)]
pub struct Column {
    storage: Storage,
}

impl Default for Column {
    fn default() -> Self {
        Column::new()
    }
}

impl PartialEq for Column {
    fn eq(&self, other: &Column) -> bool {
        if self.kind() != other.kind() || self.len() != other.len() {
            return false;
        }
        match (&self.storage, &other.storage) {
            (Storage::Empty, Storage::Empty) => true,
            (Storage::Binary { chunks: a, .. }, Storage::Binary { chunks: b, .. }) => {
                a.contiguous() == b.contiguous()
            }
            (Storage::Float(a), Storage::Float(b)) => a
                .iter()
                .map(|x| x.to_bits())
                .eq(b.iter().map(|x| x.to_bits())),
            (Storage::Int(a), Storage::Int(b)) => a.iter().eq(b.iter()),
            (Storage::Bool(a), Storage::Bool(b)) => a.iter().eq(b.iter()),
            (Storage::Str(a), Storage::Str(b)) => a.iter().eq(b.iter()),
            (Storage::Any(a), Storage::Any(b)) => a.iter().eq(b.iter()),
            _ => false,
        }
    }
}

impl Column {
    /// A column with no items and no type yet ([`ColumnKind::Empty`]).
    pub fn new() -> Column {
        Column {
            storage: Storage::Empty,
        }
    }

    /// Builds a column from its wire value.
    ///
    /// - A `List` gets a kind from its items: all `Int` → [`ColumnKind::Int`]; numbers
    ///   (`Int`/`Float`, NaN included) → `Float`; all `Bool` → `Bool`; all `Str` → `Str`;
    ///   empty → `Empty`; anything else (nulls, mixtures, nested lists, ndarrays such as
    ///   image items) → `Any`.
    /// - A 1-D `typed_array`/`ndarray` with binary data → `Binary` with its form and dtype,
    ///   sharing the buffer (no copy), even when it has no elements.
    /// - A 1-D ndarray with a list body (e.g. dtype `object`) is treated like a list.
    ///
    /// An N-d array as a whole column is refused (Bokeh requires 1-D columns), as is any
    /// other value.
    pub fn from_value(v: &Value) -> Result<Column, ColumnError> {
        let mut col = Column::new();
        if let Items::Binary { form, dtype, bytes } = Items::of(v)? {
            let mut chunks = Chunked::new();
            chunks.push(BinRun {
                bytes: bytes.clone(),
                esz: dtype.size().max(1),
            });
            col.storage = Storage::Binary {
                form,
                dtype,
                chunks,
            };
            return Ok(col);
        }
        col.stream(v, None)?;
        Ok(col)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.storage.len()
    }

    /// True when the column has no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the column holds.
    pub fn kind(&self) -> ColumnKind {
        self.storage.kind()
    }

    /// The kind's short name, for messages (see [`ColumnKind::name`]).
    pub fn kind_name(&self) -> &'static str {
        self.kind().name()
    }

    /// Number of chunks the items are held in (0 when empty).
    pub fn chunk_count(&self) -> usize {
        self.storage.chunk_count()
    }

    /// The raw little-endian bytes of each chunk of a binary column, front to back
    /// (empty for other kinds). Lets callers check sharing without copying.
    pub fn binary_chunks(&self) -> Vec<Bytes> {
        match &self.storage {
            Storage::Binary { chunks, .. } => chunks.segs.iter().map(|s| s.bytes.clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// Appends `items` (a `List`, or a 1-D `typed_array`/`ndarray`), then keeps only the
    /// last `rollover` items if `rollover` is set (ColumnsStreamed, spec §7.3).
    ///
    /// Type rules: a binary column takes an array of its own dtype as a new chunk without
    /// copying, and converts other numbers when representable (any number into a float
    /// dtype; integral, in-range numbers into an integer dtype; only booleans into `bool`).
    /// A `Float` column takes numbers; an `Int` column takes integers and becomes `Float`
    /// when given a float; `Bool` and `Str` columns take their own type; a null turns a
    /// `Float`/`Int`/`Bool`/`Str` column into `Any`; `Any` takes everything; `Empty` adopts
    /// the kind of the items (an array with binary data keeps its form and dtype).
    /// Anything else is a [`ColumnError::TypeMismatch`]. Empty `items` change nothing but
    /// the rollover.
    ///
    /// Atomic: on `Err` the column is unchanged.
    pub fn stream(&mut self, items: &Value, rollover: Option<usize>) -> Result<(), ColumnError> {
        let items = Items::of(items)?;
        if items.len() > 0 {
            let kind = self.kind();
            let target = match (kind, &items) {
                (ColumnKind::Empty, Items::Binary { form, dtype, .. }) => ColumnKind::Binary {
                    form: *form,
                    dtype: *dtype,
                },
                _ => merge_kind(kind, items.iter())?,
            };
            let fresh = build_fresh(target, &items)?;
            // Validated: nothing below can fail.
            self.storage.convert_to(target);
            self.storage.append(fresh);
        }
        if let Some(keep) = rollover {
            self.keep_last(keep);
        }
        Ok(())
    }

    /// Keeps only the last `n` items, dropping whole chunks plus an offset.
    pub fn keep_last(&mut self, n: usize) {
        let len = self.len();
        if len > n {
            self.storage.drop_front(len - n);
        }
    }

    /// Applies one column's `[index, value]` pairs from a ColumnsPatched event (spec
    /// §7.4), in order and atomically (on `Err` the column is unchanged).
    ///
    /// Index forms:
    /// - an integer `0 <= i < len` (Bokeh's off-by-one `i == len` is refused here);
    /// - a slice (no negative bounds, `start <= stop`, `step >= 1`; defaults 0, `len`, 1;
    ///   `stop` clamped to `len`) with a list or array value of exactly as many elements;
    /// - a multi-index `[i, sub, ...]` where item `i` is an ndarray with one dimension per
    ///   sub-index (each an integer or a slice). The value is a scalar (written to every
    ///   selected element), or a list/array with as many elements as the selection
    ///   (row-major). The item's elements are converted to its dtype as for a stream.
    ///
    /// Values follow the type rules of [`Column::stream`]. Only the chunks written into
    /// are copied, and only when shared.
    pub fn patch(&mut self, patches: &[(Value, Value)]) -> Result<(), ColumnError> {
        let len = self.len();
        // Final value per patched index; values of integer/slice patches for the kind check.
        let mut overlay: BTreeMap<usize, Value> = BTreeMap::new();
        let mut written: Vec<Cow<'_, Value>> = Vec::new();
        for (index, value) in patches {
            match index {
                Value::Int(i) => {
                    let at = checked_index(*i, len)?;
                    written.push(Cow::Borrowed(value));
                    overlay.insert(at, value.clone());
                }
                Value::Slice(s) => {
                    let sel = resolve_slice(s, len)?;
                    let mut leaves = Vec::new();
                    match value {
                        Value::List(items) => leaves.extend(items.iter().map(Cow::Borrowed)),
                        Value::Array(a) => {
                            check_array(a)?;
                            match &a.data {
                                // The body's items as they are (they may be ndarrays).
                                ArrayData::List(items) => {
                                    leaves.extend(items.iter().map(Cow::Borrowed))
                                }
                                ArrayData::Binary(_) => flatten(value, &mut leaves),
                            }
                        }
                        other => {
                            return Err(ColumnError::BadValue {
                                problem: format!(
                                    "a slice patch needs a list or an array, not {}",
                                    describe(other)
                                ),
                            })
                        }
                    }
                    if leaves.len() != sel.count {
                        return Err(ColumnError::LengthMismatch {
                            expected: sel.count,
                            actual: leaves.len(),
                        });
                    }
                    for (at, v) in sel.positions().zip(leaves) {
                        overlay.insert(at, v.clone().into_owned());
                        written.push(v);
                    }
                }
                Value::List(parts) => {
                    let (first, subs) = match parts.split_first() {
                        Some((first, subs)) if !subs.is_empty() => (first, subs),
                        _ => {
                            return Err(ColumnError::BadIndex {
                                problem: "a multi-index needs at least 2 parts".into(),
                            })
                        }
                    };
                    let Value::Int(i) = first else {
                        return Err(ColumnError::BadIndex {
                            problem: format!(
                                "a multi-index must start with an integer, not {}",
                                describe(first)
                            ),
                        });
                    };
                    let at = checked_index(*i, len)?;
                    let current = match overlay.get(&at) {
                        Some(v) => Some(v.clone()),
                        None => self.storage.get(at),
                    };
                    let Some(Value::Array(item)) = current else {
                        return Err(ColumnError::NotAnArray {
                            index: at,
                            found: match current {
                                Some(v) => describe(&v),
                                None => "missing".into(),
                            },
                        });
                    };
                    let patched = patch_item(&item, at, subs, value)?;
                    overlay.insert(at, Value::Array(Box::new(patched)));
                }
                other => {
                    return Err(ColumnError::BadIndex {
                        problem: format!(
                            "expected an integer, a slice or a multi-index, not {}",
                            describe(other)
                        ),
                    })
                }
            }
        }
        if overlay.is_empty() {
            return Ok(());
        }
        let mut target = merge_kind(self.kind(), written.iter().map(|c| c.as_ref()))?;
        if target == ColumnKind::Empty {
            target = ColumnKind::Any;
        }
        let (indices, values): (Vec<usize>, Vec<Value>) = overlay.into_iter().unzip();
        let fresh = build_fresh(target, &Items::Values(&values))?;
        // Validated: nothing below can fail.
        self.storage.convert_to(target);
        self.storage.write(indices, fresh);
        Ok(())
    }

    /// Joins a binary column's chunks into one, so that encoding the whole column
    /// (PULL-DOC-REPLY) no longer copies until the next stream. Other kinds are unchanged.
    pub fn compact(&mut self) {
        if let Storage::Binary { chunks, .. } = &mut self.storage {
            chunks.compact();
        }
    }

    /// The whole column as a wire value: a binary column becomes a `Value::Array` with its
    /// form and dtype, shape `[len]` and one contiguous buffer (shared, not copied, when
    /// the column is a single chunk); other kinds become a `List` (`Float` items as
    /// `Value::Float`, `Int` as `Value::Int`, and so on; `Empty` as an empty list).
    pub fn to_value(&self) -> Value {
        match &self.storage {
            Storage::Empty => Value::List(Vec::new()),
            Storage::Binary {
                form,
                dtype,
                chunks,
            } => Value::Array(Box::new(ArrayValue {
                form: *form,
                dtype: *dtype,
                shape: vec![chunks.len()],
                data: ArrayData::Binary(chunks.contiguous()),
            })),
            Storage::Float(c) => Value::List(c.iter().map(|x| Value::Float(*x)).collect()),
            Storage::Int(c) => Value::List(c.iter().map(|x| Value::Int(*x)).collect()),
            Storage::Bool(c) => Value::List(c.iter().map(|x| Value::Bool(*x)).collect()),
            Storage::Str(c) => Value::List(c.iter().cloned().map(Value::Str).collect()),
            Storage::Any(c) => Value::List(c.iter().cloned().collect()),
        }
    }

    /// Item `i`, or `None` past the end. Binary elements come back as `Bool`, `Int`
    /// (integer dtypes) or `Float` (float dtypes).
    pub fn get(&self, i: usize) -> Option<Value> {
        self.storage.get(i)
    }

    /// Item `i` as a number, for numeric work such as downsampling: numbers and booleans
    /// (as 0/1) of any kind; `None` for other items or past the end.
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        match &self.storage {
            Storage::Binary { dtype, chunks, .. } => dtype.read_f64(chunks.elem(i)?, 0),
            Storage::Float(c) => c.get(i).copied(),
            Storage::Int(c) => c.get(i).map(|x| *x as f64),
            Storage::Bool(c) => c.get(i).map(|b| f64::from(u8::from(*b))),
            Storage::Str(_) | Storage::Empty => None,
            Storage::Any(c) => match c.get(i)? {
                Value::Int(x) => Some(*x as f64),
                Value::Float(x) => Some(*x),
                Value::Bool(b) => Some(f64::from(u8::from(*b))),
                _ => None,
            },
        }
    }
}

/// An integer patch index checked against `0 <= i < len`.
fn checked_index(i: i64, len: usize) -> Result<usize, ColumnError> {
    match usize::try_from(i) {
        Ok(u) if u < len => Ok(u),
        _ => Err(ColumnError::IndexOutOfRange { index: i, len }),
    }
}
