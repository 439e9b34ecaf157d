//! Where each REST endpoint is, relative to the server root. Names are not escaped:
//! [`check_name`](crate::names::check_name) allows only characters that need none.

/// `GET` the documents.
pub const DOCUMENTS: &str = "/api/v1/documents";

/// A document (`PUT` to publish, `GET` its summary, `DELETE`).
pub fn document(name: &str) -> String {
    format!("{DOCUMENTS}/{name}")
}

/// A document's DocJson.
pub fn doc_json(name: &str) -> String {
    format!("{DOCUMENTS}/{name}/doc")
}

/// A document's viewer events.
pub fn events(name: &str) -> String {
    format!("{DOCUMENTS}/{name}/events")
}

/// A document as one standalone HTML file that stays live (`GET`, with
/// [`crate::live::LiveOptions::to_query`]).
pub fn export_html(name: &str) -> String {
    format!("{DOCUMENTS}/{name}/export.html")
}

/// A document's share links (`POST ?expires=7d`, with a key that may publish it).
pub fn share(name: &str) -> String {
    format!("{DOCUMENTS}/{name}/share")
}

/// A document as a Bokeh `json_item` that stays live (`GET`).
pub fn json_item(name: &str) -> String {
    format!("{DOCUMENTS}/{name}/json_item")
}

/// A source (`GET` or an empty `POST` to read, `PUT` to replace).
pub fn source(name: &str, source: &str) -> String {
    format!("{DOCUMENTS}/{name}/sources/{source}")
}

/// A source action: `stream`, `patch` or `clear` (`POST`).
pub fn source_action(name: &str, source: &str, action: &str) -> String {
    format!("{DOCUMENTS}/{name}/sources/{source}/{action}")
}

/// A model property (`PUT`).
pub fn property(name: &str, model: &str, prop: &str) -> String {
    format!("{DOCUMENTS}/{name}/models/{model}/{prop}")
}

/// A streamvis call (`POST`).
pub fn streamvis(name: &str, call: &str) -> String {
    format!("{DOCUMENTS}/{name}/streamvis/{call}")
}
