//! Request bodies of the REST API: which document a publish sends, the columns of a
//! data write (any format of [`crate::body`]), patches and property values.

use axum::http::{header, HeaderMap, StatusCode};
use bytes::Bytes;
use plotwire_protocol::codec::{decode_value, Buffers};
use plotwire_protocol::event::{decode_doc, DocJson};
use plotwire_protocol::Value;
use serde_json::Value as Json;

use crate::api::{Columns, Patches};
use crate::error::HttpError;
use crate::routes::AppState;

pub(super) fn parse_json(body: &[u8]) -> Result<Json, HttpError> {
    serde_json::from_slice(body)
        .map_err(|e| HttpError::bad_request(format!("the body is not valid JSON: {e}")))
}

/// A DocJson, a `json_item` (its `doc`) or a dashboard spec, told apart by their keys:
/// `roots` is a DocJson, `doc` with `root_id` a json_item, anything else a spec (which
/// is returned too).
pub(super) fn decode_published(
    name: &str,
    body: &[u8],
    max_decoded: usize,
) -> Result<(DocJson, Option<plotwire_spec::Spec>), HttpError> {
    let json = parse_json(body)?;
    let Json::Object(obj) = &json else {
        return Err(HttpError::bad_request(
            "the body must be a JSON object: a dashboard spec, a json_item or a DocJson",
        ));
    };
    let buffers = Buffers::new().with_inflate_limit(max_decoded);
    let bad = |e: plotwire_protocol::codec::CodecError| {
        HttpError::bad_request(format!("the document is not valid: {e}")).with_field("doc")
    };
    let mut spec = None;
    let mut doc = if obj.contains_key("doc") && obj.contains_key("root_id") {
        // json_item output; its title is always "" (bokeh.embed.json_item).
        let doc = obj.get("doc").unwrap_or(&Json::Null);
        decode_doc(doc, &buffers).map_err(bad)?
    } else if obj.contains_key("roots") {
        decode_doc(&json, &buffers).map_err(bad)?
    } else {
        // A dashboard spec (docs/dashboard-spec.md).
        let parsed = plotwire_spec::parse(body).map_err(crate::published::spec_error)?;
        let doc = crate::published::spec_doc_json(&parsed)?;
        spec = Some(parsed);
        doc
    };
    crate::published::default_title(&mut doc, name);
    Ok((doc, spec))
}

/// Columns from a body of any accepted format (`crate::body`), decoded off the owner.
pub(super) fn decode_columns(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Columns, HttpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(crate::body::JSON);
    let limits = crate::body::BodyLimits {
        max_body_bytes: state.config.max_body_bytes,
        ..crate::body::BodyLimits::default()
    };
    crate::body::decode(content_type, body, &limits).map_err(body_error)
}

/// A body error as HTTP: 415 for an unknown type, 413 past the size limit, else 400;
/// always naming the field to blame when there is one.
pub fn body_error(e: crate::body::BodyError) -> HttpError {
    use crate::body::BodyError;
    let status = match &e {
        BodyError::UnsupportedType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        BodyError::Limit {
            limit: "max_body_bytes",
            ..
        } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let field = e.field();
    let err = HttpError::new(status, e.to_string());
    match field {
        Some(f) => err.with_field(f),
        None => err,
    }
}

/// `{"col": [[index, value], ...]}`.
pub(super) fn decode_patches(body: &[u8]) -> Result<Patches, HttpError> {
    let Json::Object(obj) = parse_json(body)? else {
        return Err(HttpError::bad_request(
            "a patch is a JSON object of column name → [[index, value], ...]",
        ));
    };
    let buffers = Buffers::new();
    let mut out = Vec::with_capacity(obj.len());
    for (name, pairs) in obj {
        let Json::Array(pairs) = pairs else {
            return Err(
                HttpError::bad_request(format!("patches of {name:?} must be a list"))
                    .with_field(name),
            );
        };
        let mut items = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match pair {
                Json::Array(p) if p.len() == 2 => {
                    let index = decode_value(&p[0], &buffers).map_err(|e| {
                        HttpError::bad_request(e.to_string()).with_field(name.clone())
                    })?;
                    let value = decode_value(&p[1], &buffers).map_err(|e| {
                        HttpError::bad_request(e.to_string()).with_field(name.clone())
                    })?;
                    items.push((index, value));
                }
                _ => {
                    return Err(HttpError::bad_request(format!(
                        "each patch of {name:?} is [index, value]"
                    ))
                    .with_field(name))
                }
            }
        }
        out.push((name, items));
    }
    Ok(out)
}

/// `{"value": ..., "view": "..."}`.
pub(super) fn decode_set(body: &[u8]) -> Result<(Value, Option<String>), HttpError> {
    let Json::Object(mut obj) = parse_json(body)? else {
        return Err(HttpError::bad_request(
            "the body is {\"value\": ..., \"view\": ...}",
        ));
    };
    for key in obj.keys() {
        if key != "value" && key != "view" {
            return Err(
                HttpError::bad_request(format!("unknown field {key:?}")).with_field(key.clone())
            );
        }
    }
    let value = obj
        .remove("value")
        .ok_or_else(|| HttpError::bad_request("\"value\" is missing").with_field("value"))?;
    let value = decode_value(&value, &Buffers::new())
        .map_err(|e| HttpError::bad_request(e.to_string()).with_field("value"))?;
    let view = match obj.remove("view") {
        None | Some(Json::Null) => None,
        Some(Json::String(v)) => Some(v),
        Some(_) => {
            return Err(HttpError::bad_request("\"view\" must be a view id").with_field("view"))
        }
    };
    Ok((value, view))
}
