//! Issue 7's REST workloads' shared parts: published documents (created with a DocJson
//! PUT), batch bodies in every REST body format (docs/rest-api.md), and workload 7, REST
//! ingest: 100k-point batches POSTed back to back over one keep-alive connection.
//!
//! A published document here is one `ColumnDataSource` root named `src` with float64
//! columns `x` and `y`, as in [`crate::data`]: `x` is the batch's send time in ns (or 0),
//! `y` the point's global index, so views can check what they pulled or were sent.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Float64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use tokio::time::Instant;

use crate::error::{err, Context, Result};
use crate::http::HttpConn;
use crate::servers::{ServerProcess, UsageReport};

/// The name the source of every published bench document has.
pub const SOURCE: &str = "src";

/// The REST body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-plotwire-columns`.
    Raw,
    /// `application/vnd.apache.arrow.stream`.
    Arrow,
    /// `application/json` columns.
    Json,
    /// `application/x-ndjson` rows.
    Ndjson,
}

impl Format {
    /// Every format, in table order.
    pub const ALL: [Format; 4] = [Format::Raw, Format::Arrow, Format::Json, Format::Ndjson];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw binary",
            Format::Arrow => "Arrow IPC stream",
            Format::Json => "JSON columns",
            Format::Ndjson => "NDJSON",
        }
    }

    /// The `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Raw => "application/x-plotwire-columns",
            Format::Arrow => "application/vnd.apache.arrow.stream",
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

/// The columns of one batch: `x[k] = x`, `y[k] = first + k`.
#[derive(Debug, Clone, Copy)]
pub struct Columns {
    /// `x` of every point.
    pub x: f64,
    /// `y` of the first point.
    pub first: u64,
    /// Points.
    pub points: usize,
}

impl Columns {
    fn y(&self, k: usize) -> f64 {
        (self.first + k as u64) as f64
    }
}

/// Writes a float as JSON so that it reads back as a float (`1.0`, not `1`).
fn push_f64(out: &mut String, v: f64) {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{v:.1}");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// The body of `columns` in `format`.
///
/// # Errors
/// Only the Arrow writer can fail.
pub fn body(format: Format, c: &Columns) -> Result<Vec<u8>> {
    match format {
        Format::Raw => Ok(raw_body(c)),
        Format::Arrow => arrow_body(c),
        Format::Json => {
            let mut out = String::with_capacity(32 + c.points * 24);
            out.push_str("{\"x\":[");
            for k in 0..c.points {
                if k > 0 {
                    out.push(',');
                }
                push_f64(&mut out, c.x);
            }
            out.push_str("],\"y\":[");
            for k in 0..c.points {
                if k > 0 {
                    out.push(',');
                }
                push_f64(&mut out, c.y(k));
            }
            out.push_str("]}");
            Ok(out.into_bytes())
        }
        Format::Ndjson => {
            let mut out = String::with_capacity(c.points * 32);
            for k in 0..c.points {
                out.push_str("{\"x\":");
                push_f64(&mut out, c.x);
                out.push_str(",\"y\":");
                push_f64(&mut out, c.y(k));
                out.push_str("}\n");
            }
            Ok(out.into_bytes())
        }
    }
}

/// `PWC1`, the header, then `x` and `y` as little-endian float64, 8-aligned.
pub fn raw_body(c: &Columns) -> Vec<u8> {
    let x = vec![c.x; c.points];
    let y: Vec<f64> = (0..c.points).map(|k| c.y(k)).collect();
    raw_xy(&x, &y)
}

/// A raw (`PWC1`) body of float64 columns `x` and `y` (of the same length).
pub fn raw_xy(x: &[f64], y: &[f64]) -> Vec<u8> {
    let header = format!(
        r#"{{"columns":[{{"name":"x","dtype":"float64","length":{n}}},{{"name":"y","dtype":"float64","length":{n}}}]}}"#,
        n = x.len()
    );
    let mut out = Vec::with_capacity(16 + header.len() + x.len() * 16);
    out.extend_from_slice(b"PWC1");
    out.extend_from_slice(
        &u32::try_from(header.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(header.as_bytes());
    while !out.len().is_multiple_of(8) {
        out.push(b' ');
    }
    for v in x.iter().chain(y) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// One record batch of `x` and `y` as an Arrow IPC stream.
fn arrow_body(c: &Columns) -> Result<Vec<u8>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Float64, false),
        Field::new("y", DataType::Float64, false),
    ]));
    let x = Float64Array::from(vec![c.x; c.points]);
    let y = Float64Array::from((0..c.points).map(|k| c.y(k)).collect::<Vec<f64>>());
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(x), Arc::new(y)])
        .context(|| "building the Arrow batch")?;
    let mut out = Vec::with_capacity(c.points * 16 + 1024);
    {
        let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &schema)
            .context(|| "the Arrow stream writer")?;
        writer.write(&batch).context(|| "writing the Arrow batch")?;
        writer.finish().context(|| "finishing the Arrow stream")?;
    }
    Ok(out)
}

/// A document name unique to this run: `bench/<what>-<pid>-<n>`.
pub fn doc_name(what: &str) -> String {
    let id = crate::session_id(what);
    format!("bench/{id}")
}

/// Publishes (creates or replaces) document `name` holding one empty source `src`.
///
/// # Errors
/// Anything but a 2xx answer.
pub async fn publish(http: &mut HttpConn, name: &str, deadline: Instant) -> Result<()> {
    let doc = format!(
        r#"{{"title":"plotwire-bench","roots":[{{"type":"object","name":"ColumnDataSource","id":"src1","attributes":{{"name":"{SOURCE}","data":{{"type":"map","entries":[["x",[]],["y",[]]]}}}}}}]}}"#
    );
    http.request(
        "PUT",
        &format!("/api/v1/documents/{name}"),
        "Content-Type: application/json\r\n",
        doc.as_bytes(),
        deadline,
    )
    .await?
    .ok(&format!("publishing {name}"))?;
    Ok(())
}

/// Replaces the source's data with `points` points (`x` = 0, `y` = 0..points), raw.
///
/// # Errors
/// Anything but a 2xx answer.
pub async fn fill(http: &mut HttpConn, name: &str, points: usize, deadline: Instant) -> Result<()> {
    let body = raw_body(&Columns {
        x: 0.0,
        first: 0,
        points,
    });
    http.request(
        "PUT",
        &format!("/api/v1/documents/{name}/sources/{SOURCE}"),
        &format!("Content-Type: {}\r\n", Format::Raw.content_type()),
        &body,
        deadline,
    )
    .await?
    .ok(&format!("filling {name} with {points} points"))?;
    Ok(())
}

/// Deletes document `name` (best effort).
pub async fn unpublish(http: &mut HttpConn, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let _ = http
        .request(
            "DELETE",
            &format!("/api/v1/documents/{name}"),
            "",
            &[],
            deadline,
        )
        .await;
}

/// The `rows` of a stream answer `{"seq", "rows"}`.
fn answer_rows(body: &[u8]) -> Result<u64> {
    let v: serde_json::Value = serde_json::from_slice(body).context(|| "the stream answer")?;
    v.get("rows")
        .and_then(serde_json::Value::as_u64)
        .context(|| format!("no rows in the answer {v}"))
}

/// One REST ingest run.
#[derive(Debug, Clone, Copy)]
pub struct RestIngestSpec {
    /// The body format.
    pub format: Format,
    /// Points per batch.
    pub points: usize,
    /// At most this many batches …
    pub max_batches: usize,
    /// … within this time.
    pub budget: Duration,
    /// The stream's rollover (keeps the document bounded).
    pub rollover: usize,
}

/// What a REST ingest run measured.
#[derive(Debug, Clone)]
pub struct RestIngest {
    /// Batches acknowledged (200).
    pub batches: usize,
    /// Points acknowledged.
    pub points: u64,
    /// Bytes of one body.
    pub body_bytes: usize,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Request → answer of every batch.
    pub latencies: Vec<Duration>,
    /// The server's CPU and RSS over the run.
    pub usage: UsageReport,
    /// What is wrong with the answers, if anything.
    pub check: Option<String>,
}

impl RestIngest {
    /// Points (rows) per second.
    pub fn points_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.points as f64 / s
        } else {
            0.0
        }
    }

    /// Body megabytes per second.
    pub fn mb_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            (self.batches * self.body_bytes) as f64 / 1e6 / s
        } else {
            0.0
        }
    }
}

/// Workload 7, REST ingest: publishes a document, then POSTs the same pre-built batch
/// body to its source's `stream` endpoint back to back (one in flight) over one
/// keep-alive connection, until `max_batches` or `budget`. Each answer's `rows` is
/// checked against what was sent (and the rollover).
///
/// # Errors
/// Set-up failures, a non-2xx answer, a timeout.
pub async fn ingest(server: &ServerProcess, spec: RestIngestSpec) -> Result<RestIngest> {
    let port = server.endpoint.port;
    let mut http = HttpConn::connect(port, Duration::from_secs(10))
        .await?
        .with_key(server.key.as_deref());
    let name = doc_name("ingest");
    let setup = Instant::now() + Duration::from_secs(30);
    publish(&mut http, &name, setup).await?;
    let body = body(
        spec.format,
        &Columns {
            x: 1.0,
            first: 0,
            points: spec.points,
        },
    )?;
    let path = format!(
        "/api/v1/documents/{name}/sources/{SOURCE}/stream?rollover={}",
        spec.rollover
    );
    let headers = format!("Content-Type: {}\r\n", spec.format.content_type());
    // One warm-up batch, outside the figures.
    let warm = http.request("POST", &path, &headers, &body, setup).await?;
    let warm = warm.ok("the warm-up batch")?;
    let mut rows = answer_rows(&warm.body)?;
    let mut check = (rows != spec.points as u64)
        .then(|| format!("after the first batch the source has {rows} rows"));

    let usage = server.usage();
    let start = Instant::now();
    let end = start + spec.budget;
    let mut latencies = Vec::with_capacity(spec.max_batches);
    let mut batches = 0usize;
    for _ in 0..spec.max_batches {
        if Instant::now() >= end {
            break;
        }
        let sent = Instant::now();
        let answer = http
            .request(
                "POST",
                &path,
                &headers,
                &body,
                end + Duration::from_secs(30),
            )
            .await?
            .ok(&format!("batch {batches}"))?;
        latencies.push(sent.elapsed());
        batches += 1;
        let now_rows = answer_rows(&answer.body)?;
        let expected = (rows + spec.points as u64).min(spec.rollover as u64);
        if now_rows != expected && check.is_none() {
            check = Some(format!(
                "batch {batches}: the source has {now_rows} rows, expected {expected}"
            ));
        }
        rows = now_rows;
    }
    let elapsed = start.elapsed();
    let usage = usage.finish();
    unpublish(&mut http, &name).await;
    if batches == 0 {
        return Err(err("no batch was acknowledged"));
    }
    Ok(RestIngest {
        batches,
        points: (batches * spec.points) as u64,
        body_bytes: body.len(),
        elapsed,
        latencies,
        usage,
        check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_body_is_aligned() {
        let c = Columns {
            x: 2.0,
            first: 5,
            points: 3,
        };
        let b = raw_body(&c);
        assert_eq!(&b[..4], b"PWC1");
        let h = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
        let data = (8 + h).div_ceil(8) * 8;
        assert_eq!(b.len(), data + 48);
        let y0 = f64::from_le_bytes(b[data + 24..data + 32].try_into().unwrap());
        assert_eq!(y0, 5.0);
    }

    #[test]
    fn json_floats_stay_floats() {
        let c = Columns {
            x: 1.0,
            first: 0,
            points: 2,
        };
        let b = body(Format::Json, &c).unwrap();
        assert_eq!(b, br#"{"x":[1.0,1.0],"y":[0.0,1.0]}"#);
        let n = body(Format::Ndjson, &c).unwrap();
        assert_eq!(n, b"{\"x\":1.0,\"y\":0.0}\n{\"x\":1.0,\"y\":1.0}\n");
    }
}
