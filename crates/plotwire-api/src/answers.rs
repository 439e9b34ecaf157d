//! The JSON answers of the REST API, and its error body.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Every error answer (4xx, 5xx): what is wrong and, when one is to blame, the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What is wrong, in a sentence that says what to do.
    pub error: String,
    /// The field, parameter, header or column to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The answer to a `PUT /api/v1/documents/{name}` (201 created, 200 replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The document name.
    pub name: String,
    /// Its page, relative to the server (`/d/<name>/`).
    pub url: String,
    /// Its sequence number after the publish.
    pub seq: u64,
}

/// The answer to a `POST /api/v1/documents/{name}/share` (201): a read-only link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shared {
    /// The document name.
    pub name: String,
    /// The document's page with the grant, relative to the server (`/d/<name>/?grant=…`).
    pub url: String,
    /// The grant alone, for reads (`?grant=…`) and embeds.
    pub grant: String,
    /// When the link stops working (RFC 3339, UTC).
    pub expires: String,
}

/// The answer to every other write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The document's sequence number after the write.
    pub seq: u64,
    /// The rows the source holds now, for data writes (stream and replace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
}

/// A source read after a cursor (`GET .../sources/{source}?since=S`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadBack {
    /// The cursor the read was given.
    pub since: Option<u64>,
    /// The cursor for the next read.
    pub next: u64,
    /// Whether `data` is the whole content (replace, don't append).
    pub reset: bool,
    /// The rows in `data`.
    pub rows: usize,
    /// The rows: column name to values (NaN as `null`, ±infinity as `±1e999`).
    pub data: BTreeMap<String, Vec<Json>>,
}

/// One entry of `GET /api/v1/documents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentEntry {
    /// The document name.
    pub name: String,
    /// Its title.
    pub title: String,
    /// When it last changed (RFC 3339).
    pub updated: String,
    /// Its page, relative to the server.
    pub url: String,
    /// Its views.
    pub views: usize,
    /// Its open websocket connections.
    pub connections: usize,
}

/// `GET /api/v1/documents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentList {
    /// The published documents.
    pub documents: Vec<DocumentEntry>,
}

/// A source in a document's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSummary {
    /// The source's model id.
    pub id: String,
    /// Its columns and their kinds (`float64`, `int64`, `string`, ...).
    pub columns: BTreeMap<String, String>,
    /// Its rows.
    pub rows: usize,
}

/// `GET /api/v1/documents/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The document name.
    pub name: String,
    /// Its title.
    pub title: String,
    /// Its views.
    pub views: usize,
    /// Its sequence number.
    pub seq: u64,
    /// The sequence number of its last viewer event.
    pub events: u64,
    /// Its sources, by name.
    pub sources: BTreeMap<String, SourceSummary>,
    /// What it keeps, when it was published with a retention (`?max_rows=&max_age=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSummary>,
}

/// A document's retention, as it was published with it (`docs/storage.md`, "Retention").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionSummary {
    /// The most rows each source keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// How long a row is kept after it arrived (`30s`, `15m`, `1h`, `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}

/// One page of the events long-poll (`GET .../events?since=S&timeout=T`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    /// The events after the cursor, in order.
    pub events: Vec<crate::events::ViewerEvent>,
    /// The cursor for the next poll.
    pub next: u64,
    /// Whether events between the cursor and the first one were no longer kept.
    pub gap: bool,
}
