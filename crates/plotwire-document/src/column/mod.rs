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

use std::ops::Range;

use bytes::Bytes;
use plotwire_protocol::value::{ArrayData, ArrayForm, ArrayValue, DType, Value};

use rules::{build_fresh, merge_kind, Items};
use storage::{BinRun, Chunked, Run, Storage};

mod patch;
mod rules;
mod storage;
mod take;

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
    /// The list kind of this [`ColumnKind::name`] (`float64`, `int64`, `bool`, `string`
    /// or `object`); `None` for any other name.
    pub fn list_of_name(name: &str) -> Option<ColumnKind> {
        match name {
            "float64" => Some(ColumnKind::Float),
            "int64" => Some(ColumnKind::Int),
            "bool" => Some(ColumnKind::Bool),
            "string" => Some(ColumnKind::Str),
            "object" => Some(ColumnKind::Any),
            _ => None,
        }
    }

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

/// Consecutive items of one column, borrowed from one of its chunks (see
/// [`Column::slices`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColumnSlice<'a> {
    /// Little-endian elements of a binary column.
    Binary {
        /// Their element type.
        dtype: DType,
        /// Whole elements, `dtype.size()` bytes each.
        bytes: &'a [u8],
    },
    /// Items of a [`ColumnKind::Float`] column.
    Float(&'a [f64]),
    /// Items of a [`ColumnKind::Int`] column.
    Int(&'a [i64]),
    /// Items of a [`ColumnKind::Bool`] column.
    Bool(&'a [bool]),
    /// Items of a [`ColumnKind::Str`] column.
    Str(&'a [String]),
    /// Items of a [`ColumnKind::Any`] column.
    Any(&'a [Value]),
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

    /// An empty list column that already has `kind`, as a column that held rows of that
    /// kind has after a trim to none; `None` for `Empty` and binary kinds (an empty
    /// binary array keeps its dtype on the wire, `[]` keeps nothing).
    pub fn empty_list(kind: ColumnKind) -> Option<Column> {
        match kind {
            ColumnKind::Empty | ColumnKind::Binary { .. } => None,
            list => Some(Column {
                storage: Storage::empty_of(list),
            }),
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
            } => binary_array(*form, *dtype, chunks.len(), chunks.contiguous()),
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

    /// The items of rows `range` (clamped to the column's length) as borrowed runs, one
    /// per chunk, front to back: read a row range without copying or building values.
    pub fn slices(&self, range: Range<usize>) -> Vec<ColumnSlice<'_>> {
        let (lo, hi) = (range.start, range.end);
        match &self.storage {
            Storage::Empty => Vec::new(),
            Storage::Binary { dtype, chunks, .. } => {
                let size = dtype.size().max(1);
                chunks
                    .pieces(lo, hi)
                    .into_iter()
                    .map(|(s, a, b)| ColumnSlice::Binary {
                        dtype: *dtype,
                        bytes: s.bytes.get(a * size..b * size).unwrap_or(&[]),
                    })
                    .collect()
            }
            Storage::Float(c) => runs(c, lo, hi, ColumnSlice::Float),
            Storage::Int(c) => runs(c, lo, hi, ColumnSlice::Int),
            Storage::Bool(c) => runs(c, lo, hi, ColumnSlice::Bool),
            Storage::Str(c) => runs(c, lo, hi, ColumnSlice::Str),
            Storage::Any(c) => runs(c, lo, hi, ColumnSlice::Any),
        }
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

/// A 1-D binary array value of `len` elements.
fn binary_array(form: ArrayForm, dtype: DType, len: usize, bytes: Bytes) -> Value {
    Value::Array(Box::new(ArrayValue {
        form,
        dtype,
        shape: vec![len],
        data: ArrayData::Binary(bytes),
    }))
}

/// The pieces of a typed chunk sequence overlapping `lo..hi`, each wrapped by `wrap`.
fn runs<'a, T: Clone>(
    c: &'a Chunked<Run<T>>,
    lo: usize,
    hi: usize,
    wrap: fn(&'a [T]) -> ColumnSlice<'a>,
) -> Vec<ColumnSlice<'a>> {
    c.pieces(lo, hi)
        .into_iter()
        .map(|(s, a, b)| wrap(s.as_slice().get(a..b).unwrap_or(&[])))
        .collect()
}
