//! Level of detail for published documents (`docs/lod.md`): each view of a long time
//! series gets its own copy of the source, about four rows per pixel column of what it
//! shows (the M4 rows, which draw the same line as the full data), refined as the viewer
//! pans and zooms and as producers stream.
//!
//! Everything here is plain data and computation, testable without sockets; the owner
//! (`owner/lod.rs`) calls it when producers change a source, when a viewer moves a range
//! or resizes a plot, and when a view pulls the document.
//!
//! - [`plan`]: which plots and sources of a spec-built document are served this way.
//! - [`series`]: a source's pyramids, kept current by streams and rollover.
//! - [`view`]: what one view shows and holds, and the events that bring it up to date.
//! - [`raw`]: the document's columns as the rows a pyramid reads.

pub mod plan;
pub mod raw;
pub mod series;
pub mod view;

pub use plan::{Lod, LodPlot, Placement};
pub use series::LodSource;
pub use view::{CopyCache, ViewLod};

/// Sources with more rows than this are downsampled unless their spec says otherwise.
pub const DEFAULT_THRESHOLD: u64 = 100_000;

#[cfg(test)]
pub(crate) mod testing {
    //! Columns for the tests of this module.

    use plotwire_document::model::ColumnSet;
    use plotwire_protocol::value::{ArrayData, ArrayForm, ArrayValue, DType};
    use plotwire_protocol::Value;

    /// A float64 ndarray.
    pub fn floats(v: &[f64]) -> Value {
        let mut bytes = Vec::with_capacity(v.len() * 8);
        for x in v {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        Value::Array(Box::new(ArrayValue {
            form: ArrayForm::Nd,
            dtype: DType::F64,
            shape: vec![v.len()],
            data: ArrayData::Binary(bytes.into()),
        }))
    }

    /// Columns `x` and `y`.
    pub fn xy(x: &[f64], y: &[f64]) -> ColumnSet {
        ColumnSet::from_pairs(&[("x".into(), floats(x)), ("y".into(), floats(y))]).unwrap()
    }

    /// Streams `x`, `y` into `cols` with `rollover`.
    pub fn stream(cols: &mut ColumnSet, x: &[f64], y: &[f64], rollover: Option<usize>) {
        cols.get_mut("x")
            .unwrap()
            .stream(&floats(x), rollover)
            .unwrap();
        cols.get_mut("y")
            .unwrap()
            .stream(&floats(y), rollover)
            .unwrap();
    }

    /// The items of a taken column as floats.
    pub fn f64s(v: &Value) -> Vec<f64> {
        let col = plotwire_document::column::Column::from_value(v).unwrap();
        (0..col.len()).map(|i| col.get_f64(i).unwrap()).collect()
    }
}
