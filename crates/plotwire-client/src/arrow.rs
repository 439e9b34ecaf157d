//! Arrow IPC stream bodies (the `arrow` feature): how record batches, and batches that
//! hold text, go to the server.

use arrow_array::RecordBatch;

use crate::Error;

/// The content type of an Arrow IPC stream body.
pub const CONTENT_TYPE: &str = "application/vnd.apache.arrow.stream";

/// `batch` as an Arrow IPC stream.
pub fn encode(batch: &RecordBatch) -> Result<Vec<u8>, Error> {
    let fail =
        |e: arrow_schema::ArrowError| Error::BadColumns(format!("cannot write Arrow IPC: {e}"));
    let mut out = Vec::new();
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).map_err(fail)?;
    writer.write(batch).map_err(fail)?;
    writer.finish().map_err(fail)?;
    drop(writer);
    Ok(out)
}
