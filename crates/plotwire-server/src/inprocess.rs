//! The in-process adapter of published documents: what a Rust app that runs plotwire
//! inside itself uses to publish dashboards, stream data and hear what viewers do, with
//! no HTTP in between.
//!
//! It is an adapter like the REST API ([`crate::rest`]): each call becomes the same
//! [`Request`] for the document's owner that the matching REST call makes, and the owner
//! applies it in order with everything else that reaches the document (REST writes,
//! viewers' edits). Only the decoding of HTTP bodies is skipped: the values come typed.
//! A call is refused exactly where the REST API would refuse it ([`PlotwireError`]).
//!
//! Column values are wire values as a REST body decodes to: build them with
//! [`crate::body::float64_column`], [`crate::body::int_column`],
//! [`crate::body::bool_column`] and [`crate::body::string_column`].

use std::sync::Arc;

use axum::http::StatusCode;
use plotwire_protocol::event::DocJson;
use plotwire_protocol::Value;

use crate::api::{Answer, Columns, Patches, Request, RowsRead};
use crate::error::HttpError;
use crate::events::Follow;
use crate::published::{self, PublishOutcome};
use crate::retention::Retention;
use crate::routes::AppState;

/// Publishes documents and writes to them in-process; cheap to clone, and usable from
/// any task of the runtime the app was built in. Every method addresses a published
/// document by its name (`docs/rest-api.md`, "Names").
#[derive(Clone)]
pub struct Plotwire {
    state: Arc<AppState>,
}

/// Why a call was refused: what the REST API would have answered to the same request.
#[derive(Debug, thiserror::Error)]
#[error("{message} ({status})")]
pub struct PlotwireError {
    /// The status the REST API answers with: 400 invalid input, 404 no such document,
    /// source or model, 409 a conflict, 413 over a limit, 507 the store or
    /// `max_documents` is full.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
    /// The input field to blame, if one is (for example a spec path or a column).
    pub field: Option<String>,
}

impl From<HttpError> for PlotwireError {
    fn from(e: HttpError) -> Self {
        PlotwireError {
            status: e.status,
            message: e.message,
            field: e.field,
        }
    }
}

/// A write applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The document's sequence number after it.
    pub seq: u64,
    /// The rows the source holds now, for data writes.
    pub rows: Option<usize>,
}

impl Plotwire {
    /// The adapter of an app's state ([`crate::app`] makes it).
    pub(crate) fn new(state: Arc<AppState>) -> Plotwire {
        Plotwire { state }
    }

    /// Rereads the auth file (`Config::auth_file`), as `plotwire serve` does on SIGHUP.
    /// `Ok(false)` when access control is off; on an error the rules in force stay.
    pub fn reload_access(&self) -> Result<bool, crate::access::RulesError> {
        match &self.state.access {
            Some(access) => access.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// Publishes a dashboard spec (`docs/dashboard-spec.md`) under `name`: creates the
    /// document or replaces its content, as `PUT /api/v1/documents/{name}` does. A spec
    /// without a title is titled by the name.
    pub async fn publish_spec(
        &self,
        name: &str,
        spec: plotwire_spec::Spec,
    ) -> Result<PublishOutcome, PlotwireError> {
        self.publish_spec_with(name, spec, Retention::default())
            .await
    }

    /// [`Plotwire::publish_spec`] with a retention ([`Retention::new`]): what the
    /// document keeps, in memory and in the store, as `?max_rows=&max_age=` says over REST.
    pub async fn publish_spec_with(
        &self,
        name: &str,
        spec: plotwire_spec::Spec,
        retention: Retention,
    ) -> Result<PublishOutcome, PlotwireError> {
        let mut doc = published::spec_doc_json(&spec)?;
        published::default_title(&mut doc, name);
        Ok(published::publish(&self.state, name, doc, Some(spec), retention, None).await?)
    }

    /// Publishes a dashboard spec given as JSON text (see [`Plotwire::publish_spec`]).
    pub async fn publish_spec_json(
        &self,
        name: &str,
        json: &[u8],
    ) -> Result<PublishOutcome, PlotwireError> {
        let spec = plotwire_spec::parse(json).map_err(published::spec_error)?;
        self.publish_spec(name, spec).await
    }

    /// Publishes a Bokeh document (DocJson, as `bokeh.embed.standalone_docs_json` or
    /// [`plotwire_protocol::event::decode_doc`] make it) under `name`.
    pub async fn publish_doc_json(
        &self,
        name: &str,
        doc: DocJson,
    ) -> Result<PublishOutcome, PlotwireError> {
        self.publish_doc_json_with(name, doc, Retention::default())
            .await
    }

    /// [`Plotwire::publish_doc_json`] with a retention ([`Retention::new`]).
    pub async fn publish_doc_json_with(
        &self,
        name: &str,
        mut doc: DocJson,
        retention: Retention,
    ) -> Result<PublishOutcome, PlotwireError> {
        published::default_title(&mut doc, name);
        Ok(published::publish(&self.state, name, doc, None, retention, None).await?)
    }

    /// Appends rows to a source (its name or id), keeping at most `rollover` rows.
    pub async fn stream(
        &self,
        name: &str,
        source: &str,
        columns: Columns,
        rollover: Option<usize>,
    ) -> Result<Written, PlotwireError> {
        let request = Request::Stream {
            source: source.to_owned(),
            columns,
            rollover,
        };
        self.write(name, request).await
    }

    /// Replaces every row of a source.
    pub async fn replace(
        &self,
        name: &str,
        source: &str,
        columns: Columns,
    ) -> Result<Written, PlotwireError> {
        let request = Request::Replace {
            source: source.to_owned(),
            columns,
        };
        self.write(name, request).await
    }

    /// Changes single rows of a source's columns.
    pub async fn patch(
        &self,
        name: &str,
        source: &str,
        patches: Patches,
    ) -> Result<Written, PlotwireError> {
        let request = Request::Patch {
            source: source.to_owned(),
            patches,
        };
        self.write(name, request).await
    }

    /// Removes every row of a source, keeping its columns.
    pub async fn clear(&self, name: &str, source: &str) -> Result<Written, PlotwireError> {
        let request = Request::Clear {
            source: source.to_owned(),
        };
        self.write(name, request).await
    }

    /// Sets a property of the models named `model` (or of the model with that id), in
    /// every view, or only in `view`.
    pub async fn set(
        &self,
        name: &str,
        model: &str,
        prop: &str,
        value: Value,
        view: Option<String>,
    ) -> Result<Written, PlotwireError> {
        let request = Request::Set {
            model: model.to_owned(),
            prop: prop.to_owned(),
            value,
            view,
        };
        self.write(name, request).await
    }

    /// The rows of a source after a cursor (`None`: all of them), and the next cursor.
    pub async fn read(
        &self,
        name: &str,
        source: &str,
        since: Option<u64>,
    ) -> Result<RowsRead, PlotwireError> {
        let doc = published::find(&self.state, name)?;
        Ok(published::read_rows(&doc, source, since).await?)
    }

    /// The document's summary as JSON text, as `GET /api/v1/documents/{name}` answers.
    pub async fn summary(&self, name: &str) -> Result<String, PlotwireError> {
        self.json(name, Request::Summary).await
    }

    /// The whole document as DocJson text.
    pub async fn doc_json(&self, name: &str) -> Result<String, PlotwireError> {
        self.json(name, Request::DocJson).await
    }

    /// What viewers do in the document (widget input, clicks, ranges; `docs/rest-api.md`,
    /// "Events for producers"), after sequence number `since` (0 for all still kept),
    /// then live, for as long as the document exists.
    pub async fn events(&self, name: &str, since: u64) -> Result<Follow, PlotwireError> {
        let doc = published::find(&self.state, name)?;
        let sub = crate::events::subscribe(&doc, since).await?;
        Ok(Follow::new(doc, since, sub))
    }

    /// Deletes the document; its viewers are told it is gone.
    pub async fn delete(&self, name: &str) -> Result<(), PlotwireError> {
        Ok(published::delete(&self.state, name).await?)
    }

    /// The names of the published documents, in name order.
    pub fn names(&self) -> Vec<String> {
        self.state
            .registry
            .list_published()
            .into_iter()
            .map(|d| d.name)
            .collect()
    }

    /// The page of the document `name` under the configured prefix, `{prefix}/d/{name}/`.
    pub fn url(&self, name: &str) -> String {
        published::page_url(&self.state, name)
    }

    async fn ask(&self, name: &str, request: Request) -> Result<Answer, PlotwireError> {
        let doc = published::find(&self.state, name)?;
        Ok(doc.rest(request, None).await?)
    }

    async fn write(&self, name: &str, request: Request) -> Result<Written, PlotwireError> {
        match self.ask(name, request).await? {
            Answer::Written { seq, rows } => Ok(Written { seq, rows }),
            _ => Err(unexpected()),
        }
    }

    async fn json(&self, name: &str, request: Request) -> Result<String, PlotwireError> {
        match self.ask(name, request).await? {
            Answer::Json(body) => Ok(body),
            _ => Err(unexpected()),
        }
    }
}

fn unexpected() -> PlotwireError {
    HttpError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unexpected answer from the document",
    )
    .into()
}
