//! Requests that the REST API hands to the owner of a published document, and what the
//! owner answers. The HTTP side (routes, bodies, status codes) is in [`crate::rest`];
//! the owner side in [`crate::owner`].

use plotwire_protocol::Value;

use crate::events::Subscription;

/// Columns as they go into a source: names and equal-length values.
pub type Columns = Vec<(String, Value)>;

/// Per column, `(row index, new value)` pairs.
pub type Patches = Vec<(String, Vec<(Value, Value)>)>;

/// One request for a published document's owner.
pub enum Request {
    /// Answers `Written` once everything applied so far is stored (a new document's
    /// first entry, before its creation is acknowledged).
    Stored,
    /// Forgets the document in the store, after everything it logged, and refuses every
    /// later write: the registry drops the document once this is answered.
    Delete,
    /// Replace the whole document (a new publish under the same name).
    Publish {
        /// The new content, checked and subscribed ([`crate::rest`] builds it, off the
        /// owner).
        doc: Box<plotwire_document::Document>,
        /// The dashboard spec it was built from, if it was.
        spec: Option<Box<plotwire_spec::Spec>>,
        /// What it keeps (`docs/storage.md`, "Retention").
        retention: crate::retention::Retention,
    },
    /// Append rows to a source, keeping at most `rollover` rows.
    Stream {
        /// The source's name or id.
        source: String,
        /// The new rows.
        columns: Columns,
        /// Rows to keep, if bounded.
        rollover: Option<usize>,
    },
    /// Replace a source's rows.
    Replace {
        /// The source's name or id.
        source: String,
        /// The new content.
        columns: Columns,
    },
    /// Change single rows of a source's columns.
    Patch {
        /// The source's name or id.
        source: String,
        /// The changes.
        patches: Patches,
    },
    /// Remove every row of a source, keeping its columns.
    Clear {
        /// The source's name or id.
        source: String,
    },
    /// Set a model property, for every view or for one.
    Set {
        /// The models' `name`, or one model's id.
        model: String,
        /// The property.
        prop: String,
        /// The new value.
        value: Value,
        /// Only this view, if given.
        view: Option<String>,
    },
    /// Read a source's rows after a cursor.
    Read {
        /// The source's name or id.
        source: String,
        /// The cursor from the previous read, if any.
        since: Option<u64>,
    },
    /// The document's summary: title, views, sources.
    Summary,
    /// The whole document as DocJson.
    DocJson,
    /// The document as it is now and its sequence number, for a standalone copy
    /// (`crate::export`).
    Snapshot,
    /// A streamvis call.
    Streamvis(Streamvis),
    /// Viewer events after a sequence number, then the live ones.
    Subscribe {
        /// The last event already seen (0 for all).
        since: u64,
    },
}

impl Request {
    /// Whether the request changes the document (and so takes an idempotency key).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Publish { .. }
                | Request::Streamvis(_)
                | Request::Stream { .. }
                | Request::Replace { .. }
                | Request::Patch { .. }
                | Request::Clear { .. }
                | Request::Set { .. }
        )
    }
}

/// The streamvis calls (`docs/rest-api.md`, "streamvis").
pub enum Streamvis {
    /// `set_layout(grid_map)`: the document becomes the grid's empty plots, unless it
    /// already has exactly this layout.
    Layout(plotwire_spec::NamedMap<[u32; 4]>),
    /// `tandem_lines(plot, [x, y1, ...])`: one step appended to each line of `plot`.
    TandemLines {
        /// The plot's name.
        plot: String,
        /// `x` then one value per line.
        values: Vec<f64>,
    },
    /// `scatter(plot, points, spatial_dim, append)`.
    Scatter {
        /// The plot's name.
        plot: String,
        /// The points.
        points: Vec<Vec<f64>>,
        /// The axis of `points` that holds the coordinates: 1 for `[[x, y], ...]`, 0
        /// for `[[x, ...], [y, ...]]`.
        spatial_dim: usize,
        /// Append to the points (true) or replace them.
        append: bool,
    },
    /// `clear()`: every plot's data is removed; the plots stay.
    Clear,
}

/// What the owner answers.
pub enum Answer {
    /// A write was applied: the document's sequence number after it and, for data
    /// writes, the rows the source holds now.
    Written {
        /// The sequence number after the write.
        seq: u64,
        /// Rows in the source, for data writes.
        rows: Option<usize>,
    },
    /// A JSON body, ready to send.
    Json(String),
    /// Rows of a source, read after a cursor.
    Rows(RowsRead),
    /// A subscription to viewer events.
    Subscribed(Subscription),
    /// The document and its sequence number.
    Snapshot(Box<Snapshot>),
}

/// A published document as it was at one sequence number: what a standalone copy embeds,
/// and the cursor its sources read on from.
pub struct Snapshot {
    /// The document (a cheap copy: models and columns are shared).
    pub doc: plotwire_document::Document,
    /// Its sequence number: a read with `since=seq` returns what came after it.
    pub seq: u64,
    /// The x ranges that level of detail places for each view, and where: a copy without
    /// the server must range over its data itself.
    pub placed_ranges: Vec<(plotwire_protocol::Id, crate::lod::Placement)>,
}

/// What a read of a source's rows after a cursor found.
#[derive(Debug, Clone, PartialEq)]
pub struct RowsRead {
    /// The cursor the read was given, if any.
    pub since: Option<u64>,
    /// The cursor for the next read.
    pub next: u64,
    /// Whether `data` is the whole content (replace, don't append).
    pub reset: bool,
    /// Rows in `data`.
    pub rows: usize,
    /// The rows as a JSON object of column name to list.
    pub data: String,
}
