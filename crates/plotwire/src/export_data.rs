//! `plotwire export-data`: one source of a stored document, read from the data dir
//! (a running server may be using it), written as CSV, an Arrow IPC stream or a Parquet
//! file (zstd-compressed).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use clap::{Args, ValueEnum};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use plotwire_document::column::{Column, ColumnKind};
use plotwire_protocol::value::DType;
use plotwire_protocol::Value;

/// The formats `plotwire export-data` writes.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A header row, then one row per line.
    Csv,
    /// An Arrow IPC stream (pyarrow: `pa.ipc.open_stream`; polars: `pl.read_ipc_stream`).
    Arrow,
    /// A Parquet file, zstd-compressed (pyarrow: `pq.read_table`; polars:
    /// `pl.read_parquet`; pandas: `pd.read_parquet`).
    Parquet,
}

/// `plotwire export-data` arguments.
#[derive(Args)]
#[command(
    after_help = "Example:\n  plotwire export-data runs/exp42 train --format parquet -o train.parquet --data-dir ./plotwire-data"
)]
pub struct ExportArgs {
    /// The document name.
    name: String,
    /// The source: its `name` or its id.
    source: String,
    /// The output format.
    #[arg(long, value_enum, default_value = "csv")]
    format: ExportFormat,
    /// Where to write; `-` (the default) is stdout.
    #[arg(short, long, default_value = "-")]
    output: String,
    /// The data dir the document is stored in.
    #[arg(long, env = "PLOTWIRE_DATA_DIR", default_value = "./plotwire-data")]
    data_dir: PathBuf,
}

/// A column as Arrow holds it.
enum Kind {
    Float,
    Int,
    Bool,
    Text,
}

fn kind_of(column: &Column) -> Kind {
    match column.kind() {
        ColumnKind::Float => Kind::Float,
        ColumnKind::Int => Kind::Int,
        ColumnKind::Bool => Kind::Bool,
        ColumnKind::Binary { dtype, .. } => match dtype {
            DType::F64 | DType::F32 => Kind::Float,
            DType::Bool => Kind::Bool,
            _ => Kind::Int,
        },
        _ => Kind::Text,
    }
}

/// A value as CSV text: numbers as Rust writes them (shortest round trip), text as it
/// is, anything else as its Bokeh JSON.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => s.clone(),
        other => plotwire_server::owner::value_json(other),
    }
}

fn array(column: &Column) -> (DataType, ArrayRef) {
    let n = column.len();
    match kind_of(column) {
        Kind::Float => (
            DataType::Float64,
            Arc::new(Float64Array::from_iter((0..n).map(|i| column.get_f64(i)))),
        ),
        Kind::Int => (
            DataType::Int64,
            Arc::new(Int64Array::from_iter((0..n).map(|i| match column.get(i) {
                Some(Value::Int(v)) => Some(v),
                _ => None,
            }))),
        ),
        Kind::Bool => (
            DataType::Boolean,
            Arc::new(BooleanArray::from_iter((0..n).map(
                |i| match column.get(i) {
                    Some(Value::Bool(v)) => Some(v),
                    _ => None,
                },
            ))),
        ),
        Kind::Text => (
            DataType::Utf8,
            Arc::new(StringArray::from_iter(
                (0..n).map(|i| column.get(i).map(|v| text(&v))),
            )),
        ),
    }
}

/// The source's columns, sorted by name, as one Arrow record batch.
fn record_batch(named: &[(&str, &Column)]) -> Result<RecordBatch, String> {
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = named
        .iter()
        .map(|(n, c)| {
            let (dt, a) = array(c);
            (Field::new(*n, dt, true), a)
        })
        .unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| format!("cannot build the Arrow batch: {e}"))
}

/// Writes the source's rows.
pub fn export(args: ExportArgs) -> Result<(), String> {
    let records = plotwire_store::SqliteStore::read_offline(&args.data_dir, &args.name)
        .map_err(|e| e.to_string())?;
    if records.is_empty() {
        return Err(format!(
            "no document named {:?} is stored in {}",
            args.name,
            args.data_dir.display()
        ));
    }
    let restored = plotwire_server::persist::restore(&records, usize::MAX, usize::MAX)
        .map_err(|e| format!("the stored document {:?} cannot be read: {e}", args.name))?;
    let doc = restored.doc;
    let id = if doc.model(&args.source).is_some_and(|m| m.columns.is_some()) {
        args.source.clone()
    } else {
        let ids: Vec<&String> = doc
            .find_named(&args.source)
            .filter(|id| doc.model(id).is_some_and(|m| m.columns.is_some()))
            .collect();
        match ids.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(format!(
                    "no source named {:?} in {:?}",
                    args.source, args.name
                ))
            }
            _ => {
                return Err(format!(
                    "{} sources are named {:?}; give its id",
                    ids.len(),
                    args.source
                ))
            }
        }
    };
    let Some(columns) = doc.model(&id).and_then(|m| m.columns.as_ref()) else {
        return Err(format!("{:?} is not a column data source", args.source));
    };
    let mut named: Vec<(&str, &Column)> = columns
        .names()
        .filter_map(|n| columns.get(n).map(|c| (n, c)))
        .collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let out: Box<dyn Write + Send> = match args.output.as_str() {
        "-" => Box::new(std::io::stdout()),
        path => {
            Box::new(std::fs::File::create(path).map_err(|e| format!("cannot create {path}: {e}"))?)
        }
    };
    let out = std::io::BufWriter::new(out);
    let rows = named.first().map_or(0, |(_, c)| c.len());
    match args.format {
        ExportFormat::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            let fail = |e: csv::Error| format!("cannot write CSV: {e}");
            csv.write_record(named.iter().map(|(n, _)| *n))
                .map_err(fail)?;
            for i in 0..rows {
                csv.write_record(
                    named
                        .iter()
                        .map(|(_, c)| c.get(i).map(|v| text(&v)).unwrap_or_default()),
                )
                .map_err(fail)?;
            }
            csv.flush().map_err(|e| format!("cannot write CSV: {e}"))?;
        }
        ExportFormat::Arrow => {
            let batch = record_batch(&named)?;
            let fail = |e: arrow_schema::ArrowError| format!("cannot write Arrow: {e}");
            let mut w =
                arrow_ipc::writer::StreamWriter::try_new(out, &batch.schema()).map_err(fail)?;
            w.write(&batch).map_err(fail)?;
            w.finish().map_err(fail)?;
        }
        ExportFormat::Parquet => {
            let batch = record_batch(&named)?;
            let fail = |e: parquet::errors::ParquetError| format!("cannot write Parquet: {e}");
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build();
            let mut w = ArrowWriter::try_new(out, batch.schema(), Some(props)).map_err(fail)?;
            w.write(&batch).map_err(fail)?;
            w.close().map_err(fail)?;
        }
    }
    eprintln!(
        "plotwire export-data: {rows} rows of {} column(s) of {:?} in {:?}",
        named.len(),
        args.source,
        args.name
    );
    Ok(())
}
