//! Reading chosen rows of a column: what a view's downsampled copy of a source holds.

use bytes::BytesMut;
use plotwire_protocol::value::{ArrayForm, DType, Value};

use super::storage::Storage;
use super::{binary_array, Column};

impl Column {
    /// The items of `rows` (in that order; rows past the end are skipped) as a wire
    /// value. Binary columns keep their form and dtype; float lists become float64
    /// ndarrays, which BokehJS takes without a per-item parse; other kinds stay lists.
    pub fn take(&self, rows: &[usize]) -> Value {
        match &self.storage {
            Storage::Empty => Value::List(Vec::new()),
            Storage::Binary {
                form,
                dtype,
                chunks,
            } => {
                let mut bytes = BytesMut::with_capacity(rows.len() * dtype.size().max(1));
                let mut n = 0;
                for e in rows.iter().filter_map(|&r| chunks.elem(r)) {
                    bytes.extend_from_slice(e);
                    n += 1;
                }
                binary_array(*form, *dtype, n, bytes.freeze())
            }
            Storage::Float(c) => {
                let mut bytes = BytesMut::with_capacity(rows.len() * 8);
                let mut n = 0;
                for x in rows.iter().filter_map(|&r| c.get(r)) {
                    bytes.extend_from_slice(&x.to_le_bytes());
                    n += 1;
                }
                binary_array(ArrayForm::Nd, DType::F64, n, bytes.freeze())
            }
            Storage::Int(c) => list(rows, |r| c.get(r).map(|x| Value::Int(*x))),
            Storage::Bool(c) => list(rows, |r| c.get(r).map(|x| Value::Bool(*x))),
            Storage::Str(c) => list(rows, |r| c.get(r).map(|x| Value::Str(x.clone()))),
            Storage::Any(c) => list(rows, |r| c.get(r).cloned()),
        }
    }
}

fn list(rows: &[usize], get: impl Fn(usize) -> Option<Value>) -> Value {
    Value::List(rows.iter().filter_map(|&r| get(r)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64s(v: &Value) -> Vec<f64> {
        let col = Column::from_value(v).unwrap();
        (0..col.len()).map(|i| col.get_f64(i).unwrap()).collect()
    }

    #[test]
    fn take_reads_the_chosen_rows_across_chunks() {
        let mut col = Column::new();
        let chunk = |v: &[f64]| {
            let mut b = BytesMut::new();
            for x in v {
                b.extend_from_slice(&x.to_le_bytes());
            }
            binary_array(ArrayForm::Nd, DType::F64, v.len(), b.freeze())
        };
        col.stream(&chunk(&[0.0, 1.0, 2.0]), None).unwrap();
        col.stream(&chunk(&[3.0, 4.0]), None).unwrap();
        let got = col.take(&[0, 2, 3, 4, 9]);
        assert_eq!(f64s(&got), vec![0.0, 2.0, 3.0, 4.0]);
        let Value::Array(a) = &got else {
            panic!("not an array: {got:?}")
        };
        assert_eq!(
            (a.form, a.dtype, a.shape.clone()),
            (ArrayForm::Nd, DType::F64, vec![4])
        );
    }

    #[test]
    fn float_lists_become_float64_arrays_and_strings_stay_lists() {
        let floats =
            Column::from_value(&Value::List(vec![Value::Float(1.5), Value::Float(2.5)])).unwrap();
        let got = floats.take(&[1]);
        assert!(matches!(&got, Value::Array(a) if a.dtype == DType::F64));
        assert_eq!(f64s(&got), vec![2.5]);
        let strs = Column::from_value(&Value::List(vec![
            Value::Str("a".into()),
            Value::Str("b".into()),
        ]))
        .unwrap();
        assert_eq!(
            strs.take(&[1, 0]),
            Value::List(vec![Value::Str("b".into()), Value::Str("a".into())])
        );
    }
}
