//! Why a body was refused.

use super::ACCEPTED;

/// Why a body could not be decoded or does not fit the source. [`BodyError::field`]
/// names what to blame, for the `{"error", "field"}` answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    /// A `Content-Type` that is not one of [`ACCEPTED`] (the route answers 415).
    #[error("unsupported Content-Type {found:?}; accepted: {}", ACCEPTED.join(", "))]
    UnsupportedType {
        /// The media type found (lower-cased, without parameters).
        found: String,
    },
    /// A [`super::BodyLimits`] limit was exceeded.
    #[error("the body exceeds {limit} ({max})")]
    Limit {
        /// The limit's field name in [`super::BodyLimits`].
        limit: &'static str,
        /// Its value.
        max: usize,
    },
    /// Not valid JSON, or not the JSON shape of a columns body.
    #[error("invalid JSON at byte {offset}: {problem}")]
    Json {
        /// Byte offset of the problem in the body (or in the NDJSON line).
        offset: usize,
        /// What is wrong.
        problem: String,
    },
    /// An NDJSON line that is invalid or does not match the first row's keys.
    #[error("line {line}: {problem}")]
    Ndjson {
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A column whose values cannot make one column: mixed types, nested values, a null
    /// where no NaN can stand, a bool that is neither 0 nor 1.
    #[error("column {column:?}: {problem}")]
    BadColumn {
        /// The column.
        column: String,
        /// What is wrong.
        problem: String,
    },
    /// A 64-bit integer column with a value outside ±2^53 that does not fit `int32`
    /// (Bokeh 3.9 has no 64-bit integer dtype).
    #[error("column {column:?}: the integer {value} fits neither int32 nor float64 exactly")]
    IntegerRange {
        /// The column.
        column: String,
        /// The first offending value.
        value: i128,
    },
    /// Two columns of different lengths.
    #[error("column {column:?} has {found} rows but column {first:?} has {expected}")]
    UnequalLengths {
        /// The column whose length differs.
        column: String,
        /// Its length.
        found: usize,
        /// The first column.
        first: String,
        /// The first column's length.
        expected: usize,
    },
    /// The same column name twice.
    #[error("column {column:?} appears twice")]
    DuplicateColumn {
        /// The column.
        column: String,
    },
    /// Invalid UTF-8 in a JSON or NDJSON body.
    #[error("invalid UTF-8 at byte {offset}")]
    BadUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// A raw (`x-plotwire-columns`) body that does not start with `PWC1`.
    #[error("not an x-plotwire-columns body: the magic is not \"PWC1\"")]
    BadMagic,
    /// A raw body too short for its header.
    #[error("truncated x-plotwire-columns header: {problem}")]
    TruncatedHeader {
        /// What is missing.
        problem: String,
    },
    /// A raw body whose header JSON is invalid.
    #[error("invalid x-plotwire-columns header: {problem}")]
    BadHeader {
        /// What is wrong.
        problem: String,
    },
    /// A raw column whose data runs past the end of the body.
    #[error(
        "column {column:?}: its data needs bytes {start}..{end} (8-aligned) but the body has {len}"
    )]
    ShortData {
        /// The column.
        column: String,
        /// Where its data starts.
        start: usize,
        /// Where it would end.
        end: usize,
        /// The body's length.
        len: usize,
    },
    /// Bytes after the last raw column (beyond its padding).
    #[error("{extra} bytes after the last column")]
    TrailingData {
        /// How many.
        extra: usize,
    },
    /// A raw column with a dtype this format does not define.
    #[error("column {column:?}: unknown dtype {dtype:?}")]
    UnknownDType {
        /// The column.
        column: String,
        /// The dtype as given.
        dtype: String,
    },
    /// An Arrow column of a type that has no Bokeh column form.
    #[error("column {column:?}: unsupported Arrow type {data_type}")]
    UnsupportedArrowType {
        /// The column.
        column: String,
        /// The Arrow type.
        data_type: String,
    },
    /// An Arrow IPC body that the reader refused.
    #[error("invalid Arrow IPC: {0}")]
    Arrow(String),
    /// A column that does not fit the kind of the source's column of that name.
    #[error("column {column:?}: cannot put {found} into the source's {expected} column")]
    Mismatch {
        /// The column.
        column: String,
        /// What the body holds.
        found: String,
        /// The source column's kind.
        expected: &'static str,
    },
}

impl BodyError {
    pub(super) fn limit(limit: &'static str, max: usize) -> BodyError {
        BodyError::Limit { limit, max }
    }

    pub(super) fn bad_column(column: &str, problem: impl Into<String>) -> BodyError {
        BodyError::BadColumn {
            column: column.to_owned(),
            problem: problem.into(),
        }
    }

    /// What to blame: the column, the limit (`max_rows`, ...) or the line (`line 3`), if
    /// any one is.
    pub fn field(&self) -> Option<String> {
        match self {
            BodyError::Limit { limit, .. } => Some((*limit).to_owned()),
            BodyError::Ndjson { line, .. } => Some(format!("line {line}")),
            BodyError::BadColumn { column, .. }
            | BodyError::IntegerRange { column, .. }
            | BodyError::UnequalLengths { column, .. }
            | BodyError::DuplicateColumn { column }
            | BodyError::ShortData { column, .. }
            | BodyError::UnknownDType { column, .. }
            | BodyError::UnsupportedArrowType { column, .. }
            | BodyError::Mismatch { column, .. } => Some(column.clone()),
            BodyError::UnsupportedType { .. } => Some("Content-Type".to_owned()),
            BodyError::Json { .. }
            | BodyError::BadUtf8 { .. }
            | BodyError::BadMagic
            | BodyError::TruncatedHeader { .. }
            | BodyError::BadHeader { .. }
            | BodyError::TrailingData { .. }
            | BodyError::Arrow(_) => None,
        }
    }
}
