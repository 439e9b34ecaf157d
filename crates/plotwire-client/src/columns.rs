//! Columns to send: named, typed arrays of one length, sent as a raw typed-array body
//! (never as JSON number lists).

use plotwire_api::raw::{self, ColumnData};

use crate::Error;

/// One column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// float64.
    F64(Vec<f64>),
    /// float32.
    F32(Vec<f32>),
    /// int64 (the server narrows it to int32, or to float64, as Bokeh columns need).
    I64(Vec<i64>),
    /// int32.
    I32(Vec<i32>),
    /// uint8.
    U8(Vec<u8>),
    /// bool.
    Bool(Vec<bool>),
    /// Text (with the `arrow` feature: a batch that holds text goes as Arrow IPC).
    #[cfg(feature = "arrow")]
    Text(Vec<String>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::F64(v) => v.len(),
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::U8(v) => v.len(),
            Values::Bool(v) => v.len(),
            #[cfg(feature = "arrow")]
            Values::Text(v) => v.len(),
        }
    }

    /// The raw body's view of the values; `None` for text, which it cannot hold.
    fn data(&self) -> Option<ColumnData<'_>> {
        Some(match self {
            Values::F64(v) => ColumnData::Float64(v),
            Values::F32(v) => ColumnData::Float32(v),
            Values::I64(v) => ColumnData::Int64(v),
            Values::I32(v) => ColumnData::Int32(v),
            Values::U8(v) => ColumnData::UInt8(v),
            Values::Bool(v) => ColumnData::Bool(v),
            #[cfg(feature = "arrow")]
            Values::Text(_) => return None,
        })
    }
}

#[cfg(feature = "arrow")]
impl From<Vec<String>> for Values {
    fn from(v: Vec<String>) -> Values {
        Values::Text(v)
    }
}

impl From<Vec<f64>> for Values {
    fn from(v: Vec<f64>) -> Values {
        Values::F64(v)
    }
}

impl From<Vec<f32>> for Values {
    fn from(v: Vec<f32>) -> Values {
        Values::F32(v)
    }
}

impl From<Vec<i64>> for Values {
    fn from(v: Vec<i64>) -> Values {
        Values::I64(v)
    }
}

impl From<Vec<i32>> for Values {
    fn from(v: Vec<i32>) -> Values {
        Values::I32(v)
    }
}

impl From<Vec<u8>> for Values {
    fn from(v: Vec<u8>) -> Values {
        Values::U8(v)
    }
}

impl From<Vec<bool>> for Values {
    fn from(v: Vec<bool>) -> Values {
        Values::Bool(v)
    }
}

/// Named columns of one length, in order.
///
/// ```
/// use plotwire_client::Columns;
/// let batch = Columns::new()
///     .with("step", vec![1i64, 2, 3])
///     .with("loss", vec![0.9, 0.7, 0.6]);
/// assert_eq!(batch.rows(), Some(3));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    columns: Vec<(String, Values)>,
}

impl Columns {
    /// No columns.
    pub fn new() -> Columns {
        Columns::default()
    }

    /// Adds (or replaces) the column `name`.
    pub fn with(mut self, name: impl Into<String>, values: impl Into<Values>) -> Columns {
        self.insert(name, values);
        self
    }

    /// Adds (or replaces) the column `name`.
    pub fn insert(&mut self, name: impl Into<String>, values: impl Into<Values>) {
        let name = name.into();
        let values = values.into();
        match self.columns.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = values,
            None => self.columns.push((name, values)),
        }
    }

    /// The common length of the columns; `None` when there are none or they differ.
    pub fn rows(&self) -> Option<usize> {
        let first = self.columns.first()?.1.len();
        self.columns
            .iter()
            .all(|(_, v)| v.len() == first)
            .then_some(first)
    }

    /// The body and its content type, after checking the lengths: the raw format
    /// (`application/x-plotwire-columns`), or an Arrow IPC stream when a column holds text.
    pub(crate) fn encode(&self) -> Result<(&'static str, Vec<u8>), Error> {
        if self.columns.is_empty() {
            return Err(Error::BadColumns(
                "a batch needs at least one column".into(),
            ));
        }
        if self.rows().is_none() {
            let lengths: Vec<String> = self
                .columns
                .iter()
                .map(|(n, v)| format!("{n}: {}", v.len()))
                .collect();
            return Err(Error::BadColumns(format!(
                "the columns have different lengths ({})",
                lengths.join(", ")
            )));
        }
        let data: Option<Vec<(&str, ColumnData<'_>)>> = self
            .columns
            .iter()
            .map(|(n, v)| Some((n.as_str(), v.data()?)))
            .collect();
        match data {
            Some(data) => Ok((raw::CONTENT_TYPE, raw::encode(&data))),
            #[cfg(feature = "arrow")]
            None => Ok((
                crate::arrow::CONTENT_TYPE,
                crate::arrow::encode(&self.to_record_batch()?)?,
            )),
            #[cfg(not(feature = "arrow"))]
            None => Err(Error::BadColumns(
                "text columns need the arrow feature".into(),
            )),
        }
    }

    /// The columns as an Arrow record batch (int64 stays int64, bool stays boolean, text
    /// is utf8).
    #[cfg(feature = "arrow")]
    pub fn to_record_batch(&self) -> Result<arrow_array::RecordBatch, Error> {
        use std::sync::Arc;

        use arrow_array::{
            ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array,
            StringArray, UInt8Array,
        };
        let arrays: Vec<(String, ArrayRef)> = self
            .columns
            .iter()
            .map(|(n, v)| {
                let a: ArrayRef = match v {
                    Values::F64(v) => Arc::new(Float64Array::from(v.clone())),
                    Values::F32(v) => Arc::new(Float32Array::from(v.clone())),
                    Values::I64(v) => Arc::new(Int64Array::from(v.clone())),
                    Values::I32(v) => Arc::new(Int32Array::from(v.clone())),
                    Values::U8(v) => Arc::new(UInt8Array::from(v.clone())),
                    Values::Bool(v) => Arc::new(BooleanArray::from(v.clone())),
                    Values::Text(v) => Arc::new(StringArray::from_iter_values(v)),
                };
                (n.clone(), a)
            })
            .collect();
        arrow_array::RecordBatch::try_from_iter(arrays)
            .map_err(|e| Error::BadColumns(format!("cannot make an Arrow batch: {e}")))
    }
}
