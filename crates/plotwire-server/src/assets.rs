//! The embedded BokehJS 3.9.2 bundles and the `/static/{*path}` handler that serves them.
//!
//! `build.rs` fetches the pinned `@bokeh/bokehjs@3.9.2` npm tarball, verifies its integrity and
//! embeds the five minified bundles a Bokeh server page loads, gzipped. They are served the way
//! Bokeh's Tornado `StaticHandler` serves them (spec §1.3): the `?v=` value and the `Etag` are the
//! lowercase hex SHA-512 of the file, and a request with `?v=` may be cached for ten years.

use std::fmt;
use std::io::Read;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::bundles::BundleSet;

/// One embedded BokehJS bundle, e.g. `bokeh.min.js`.
pub struct Bundle {
    /// Bundle name without extension, e.g. `"bokeh"` or `"bokeh-widgets"`.
    pub name: &'static str,
    /// File name as served under `static/js/`, e.g. `"bokeh.min.js"`.
    pub file_name: &'static str,
    /// Lowercase hex SHA-512 of the uncompressed file: the `?v=` value and the `Etag`.
    pub sha512_hex: &'static str,
    /// Length in bytes of the uncompressed file.
    pub len: usize,
    /// The file gzipped (level 9), as embedded at build time.
    pub gzipped: &'static [u8],
    /// The uncompressed file, decompressed on first use.
    plain: OnceLock<Option<Box<[u8]>>>,
}

include!(concat!(env!("OUT_DIR"), "/bokehjs_bundles.rs"));

impl Bundle {
    /// The uncompressed file. It is decompressed once, on first use, and kept.
    ///
    /// Returns `None` only if the embedded gzip data were corrupt (or did not decompress to
    /// [`Bundle::len`] bytes), which the build rules out in practice.
    pub fn decompressed(&self) -> Option<&[u8]> {
        self.plain
            .get_or_init(|| {
                let mut out = Vec::with_capacity(self.len);
                let mut decoder = flate2::read::GzDecoder::new(self.gzipped);
                match decoder.read_to_end(&mut out) {
                    Ok(_) if out.len() == self.len => Some(out.into_boxed_slice()),
                    Ok(_) => {
                        tracing::error!(bundle = self.name, "embedded bundle has the wrong length");
                        None
                    }
                    Err(error) => {
                        tracing::error!(bundle = self.name, %error, "embedded bundle is corrupt");
                        None
                    }
                }
            })
            .as_deref()
    }

    /// The quoted entity tag for this file, as in `Etag: "<sha512 hex>"`.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.sha512_hex)
    }
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("name", &self.name)
            .field("file_name", &self.file_name)
            .field("sha512_hex", &self.sha512_hex)
            .field("len", &self.len)
            .field("gzipped_len", &self.gzipped.len())
            .finish_non_exhaustive()
    }
}

/// All embedded bundles in page order: bokeh, bokeh-gl, bokeh-widgets, bokeh-tables,
/// bokeh-mathjax.
pub fn bundles() -> &'static [Bundle] {
    &BUNDLES
}

/// Looks a bundle up by its file name, e.g. `"bokeh-gl.min.js"`.
pub fn bundle_by_file_name(file_name: &str) -> Option<&'static Bundle> {
    BUNDLES.iter().find(|b| b.file_name == file_name)
}

/// The script URLs of the bundles in `set`, in page order:
/// `{static_root}static/js/{name}.min.js?v={sha512 hex}`.
///
/// `static_root` is the root the static route hangs off, ending in `/`: `"/"`, `"/prefix/"` or
/// `"http://host:port/"` (see `pages::static_root`). A missing trailing slash is added.
pub fn script_urls(static_root: &str, set: BundleSet) -> Vec<String> {
    let sep = if static_root.ends_with('/') { "" } else { "/" };
    BUNDLES
        .iter()
        .filter(|b| set.contains(b.name))
        .map(|b| {
            format!(
                "{static_root}{sep}static/js/{}?v={}",
                b.file_name, b.sha512_hex
            )
        })
        .collect()
}

/// `Cache-Control` for a versioned URL (`?v=`): ten years, as Tornado does.
const CACHE_FOREVER: &str = "max-age=315360000, public";

/// Handler for `/static/{*path}` (`path` like `js/bokeh.min.js`).
///
/// - unknown file: 404 with a JSON body `{"error": "..."}`;
/// - `Content-Type: text/javascript`, `Etag: "<sha512 hex>"`, `Vary: Accept-Encoding`;
/// - a matching `If-None-Match` gives 304;
/// - with a `v` query parameter `Cache-Control: max-age=315360000, public`, otherwise
///   `Cache-Control: no-cache` (revalidate with the `Etag`);
/// - the embedded gzip bytes with `Content-Encoding: gzip` when `Accept-Encoding` allows gzip,
///   else the decompressed file.
pub async fn serve_static(Path(path): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(bundle) = path.strip_prefix("js/").and_then(bundle_by_file_name) else {
        return error_response(StatusCode::NOT_FOUND, format!("no static file {path:?}"));
    };

    let cache_control = if has_query_param(uri.query(), "v") {
        CACHE_FOREVER
    } else {
        "no-cache"
    };
    let etag = bundle.etag();
    let common = |builder: axum::http::response::Builder| {
        builder
            .header(header::ETAG, etag.as_str())
            .header(header::CACHE_CONTROL, cache_control)
            .header(header::VARY, "Accept-Encoding")
    };

    if if_none_match_matches(&headers, bundle.sha512_hex) {
        return build(
            common(Response::builder().status(StatusCode::NOT_MODIFIED)),
            Body::empty(),
        );
    }

    let builder = common(Response::builder().status(StatusCode::OK))
        .header(header::CONTENT_TYPE, "text/javascript");
    if accepts_gzip(&headers) {
        let builder = builder.header(header::CONTENT_ENCODING, "gzip");
        return build(builder, Body::from(Bytes::from_static(bundle.gzipped)));
    }
    match bundle.decompressed() {
        Some(plain) => build(builder, Body::from(Bytes::from_static(plain))),
        None => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "embedded BokehJS bundle could not be decompressed".to_owned(),
        ),
    }
}

/// Finishes a response; header values here are all static ASCII, so this cannot really fail.
fn build(builder: axum::http::response::Builder, body: Body) -> Response {
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A JSON error response `{"error": message}`.
fn error_response(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Whether the query string has a parameter `name` (with any value, even empty), as Tornado's
/// `"v" in request.arguments` with `keep_blank_values`.
fn has_query_param(query: Option<&str>, name: &str) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.split('=').next().is_some_and(|k| k == name))
    })
}

/// Whether `If-None-Match` lists this file's tag (weak comparison) or is `*`.
fn if_none_match_matches(headers: &HeaderMap, sha512_hex: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| {
            if tag == "*" {
                return true;
            }
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag.strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .is_some_and(|t| t == sha512_hex)
        })
}

/// Whether `Accept-Encoding` allows gzip: `gzip`/`x-gzip` with q > 0, or else `*` with q > 0.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip: Option<bool> = None;
    let mut star: Option<bool> = None;
    for value in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v: &HeaderValue| v.to_str().ok())
    {
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("q")
                        .then(|| v.trim().parse::<f32>().ok())
                        .flatten()
                })
                .next()
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(q > 0.0),
                "*" => star = Some(q > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(star).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn table_is_in_page_order_and_consistent() {
        let names: Vec<_> = bundles().iter().map(|b| b.name).collect();
        assert_eq!(
            names,
            [
                "bokeh",
                "bokeh-gl",
                "bokeh-widgets",
                "bokeh-tables",
                "bokeh-mathjax"
            ]
        );
        for b in bundles() {
            assert_eq!(b.file_name, format!("{}.min.js", b.name));
            assert_eq!(b.sha512_hex.len(), 128);
            assert!(b
                .sha512_hex
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
            assert_eq!(b.decompressed().map(<[u8]>::len), Some(b.len));
            assert!(b.gzipped.len() < b.len);
        }
    }

    #[test]
    fn script_urls_hang_off_the_root() {
        let urls = script_urls("/", BundleSet::ALL);
        assert_eq!(urls.len(), 5);
        assert_eq!(
            urls[0],
            format!("/static/js/bokeh.min.js?v={}", bundles()[0].sha512_hex)
        );
        assert!(script_urls("/pre/", BundleSet::ALL)[4]
            .starts_with("/pre/static/js/bokeh-mathjax.min.js?v="));
        assert!(script_urls("http://h:1", BundleSet::ALL)[1]
            .starts_with("http://h:1/static/js/bokeh-gl.min.js?v="));
        let some = BundleSet {
            tables: true,
            ..BundleSet::default()
        };
        let urls = script_urls("/", some);
        assert_eq!(urls.len(), 2);
        assert!(urls[0].starts_with("/static/js/bokeh.min.js?v="));
        assert!(urls[1].starts_with("/static/js/bokeh-tables.min.js?v="));
    }

    #[test]
    fn query_param_detection() {
        assert!(has_query_param(Some("v=abc"), "v"));
        assert!(has_query_param(Some("a=1&v"), "v"));
        assert!(has_query_param(Some("v="), "v"));
        assert!(!has_query_param(Some("vv=1&x=v"), "v"));
        assert!(!has_query_param(None, "v"));
    }

    #[test]
    fn accept_encoding_parsing() {
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "gzip, deflate, br"
        )])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br;q=1.0, GZIP;q=0.5"
        )])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "*")])));
        assert!(!accepts_gzip(&headers(&[(
            "accept-encoding",
            "gzip;q=0, *"
        )])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "identity")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "*;q=0")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match_parsing() {
        let hex = bundles()[0].sha512_hex;
        let tag: &'static str = Box::leak(format!("\"x\", W/\"{hex}\"").into_boxed_str());
        assert!(if_none_match_matches(
            &headers(&[("if-none-match", tag)]),
            hex
        ));
        assert!(if_none_match_matches(
            &headers(&[("if-none-match", "*")]),
            hex
        ));
        assert!(!if_none_match_matches(
            &headers(&[("if-none-match", "\"abc\"")]),
            hex
        ));
        assert!(!if_none_match_matches(&HeaderMap::new(), hex));
    }
}
