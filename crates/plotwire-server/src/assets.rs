//! The BokehJS 3.9.2 bundles and the `/static/{*path}` handler that serves them.
//!
//! The bundles come from one of two places ([`BokehJs::for_config`]):
//! - embedded at build time (the default-on cargo feature `embedded-bokehjs`): `build.rs`
//!   fetches the pinned `@bokeh/bokehjs@3.9.2` npm tarball, verifies its integrity and embeds
//!   the five minified bundles a Bokeh server page loads, gzipped;
//! - read at start from a directory ([`crate::Config::bokehjs_dir`], `--bokehjs-dir`), such
//!   as the `bokeh/server/static/js` directory of the `bokeh==3.9.2` Python package, after
//!   checking that every bundle is BokehJS 3.9.2 ([`dir`]). It overrides the embedded ones.
//!
//! They are served the way Bokeh's Tornado `StaticHandler` serves them (spec §1.3): the `?v=`
//! value and the `Etag` are the lowercase hex SHA-512 of the file, and a request with `?v=`
//! may be cached for ten years.

use std::fmt;
use std::io::Read;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::bundles::BundleSet;

pub mod dir;

pub use dir::BokehJsError;

/// The BokehJS version plotwire speaks to; bundles of any other version are refused.
pub const BOKEHJS_VERSION: &str = "3.9.2";

/// The bundles a Bokeh 3.9.2 server page loads, in page order: name and file name.
pub const BUNDLE_FILES: [(&str, &str); 5] = [
    ("bokeh", "bokeh.min.js"),
    ("bokeh-gl", "bokeh-gl.min.js"),
    ("bokeh-widgets", "bokeh-widgets.min.js"),
    ("bokeh-tables", "bokeh-tables.min.js"),
    ("bokeh-mathjax", "bokeh-mathjax.min.js"),
];

/// One BokehJS bundle as served, e.g. `bokeh.min.js`.
pub struct Bundle {
    /// Bundle name without extension, e.g. `"bokeh"` or `"bokeh-widgets"`.
    pub name: &'static str,
    /// File name as served under `static/js/`, e.g. `"bokeh.min.js"`.
    pub file_name: &'static str,
    /// Lowercase hex SHA-512 of the uncompressed file: the `?v=` value and the `Etag`.
    pub sha512_hex: String,
    /// Length in bytes of the uncompressed file.
    pub len: usize,
    /// The file gzipped, as embedded at build time or compressed when read from a directory.
    pub gzipped: Bytes,
    /// The uncompressed file: read from a directory, or decompressed on first use.
    plain: OnceLock<Option<Bytes>>,
}

impl Bundle {
    /// A bundle read from a directory (or made in a test): hashed and gzipped here.
    fn read(name: &'static str, file_name: &'static str, contents: Vec<u8>) -> Bundle {
        Bundle {
            name,
            file_name,
            sha512_hex: dir::sha512_hex(&contents),
            len: contents.len(),
            gzipped: Bytes::from(gzip(&contents)),
            plain: OnceLock::from(Some(Bytes::from(contents))),
        }
    }

    /// The uncompressed file. An embedded one is decompressed once, on first use, and kept.
    ///
    /// Returns `None` only if the embedded gzip data were corrupt (or did not decompress to
    /// [`Bundle::len`] bytes), which the build rules out in practice.
    pub fn decompressed(&self) -> Option<&[u8]> {
        self.plain_bytes().map(|b| &b[..])
    }

    /// The uncompressed file as shared bytes (see [`Bundle::decompressed`]).
    fn plain_bytes(&self) -> Option<&Bytes> {
        self.plain
            .get_or_init(|| {
                let mut out = Vec::with_capacity(self.len);
                let mut decoder = flate2::read::GzDecoder::new(&self.gzipped[..]);
                match decoder.read_to_end(&mut out) {
                    Ok(_) if out.len() == self.len => Some(Bytes::from(out)),
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
            .as_ref()
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

/// Where a [`BokehJs`] set was taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BokehJsSource {
    /// Embedded at build time (feature `embedded-bokehjs`).
    Embedded,
    /// Read at start from this directory.
    Dir(PathBuf),
}

/// The five BokehJS bundles a server serves, in page order: bokeh, bokeh-gl,
/// bokeh-widgets, bokeh-tables, bokeh-mathjax.
#[derive(Debug)]
pub struct BokehJs {
    bundles: Vec<Bundle>,
    source: BokehJsSource,
}

/// One embedded bundle, as `build.rs` writes it.
#[cfg(feature = "embedded-bokehjs")]
struct Embedded {
    name: &'static str,
    sha512_hex: &'static str,
    len: usize,
    gzipped: &'static [u8],
}

#[cfg(feature = "embedded-bokehjs")]
include!(concat!(env!("OUT_DIR"), "/bokehjs_bundles.rs"));

impl BokehJs {
    /// The bundles embedded at build time, made once per process.
    #[cfg(feature = "embedded-bokehjs")]
    pub fn embedded() -> &'static Arc<BokehJs> {
        static SET: OnceLock<Arc<BokehJs>> = OnceLock::new();
        SET.get_or_init(|| {
            let bundles = EMBEDDED
                .iter()
                .zip(BUNDLE_FILES)
                .map(|(e, (_, file_name))| Bundle {
                    name: e.name,
                    file_name,
                    sha512_hex: e.sha512_hex.to_owned(),
                    len: e.len,
                    gzipped: Bytes::from_static(e.gzipped),
                    plain: OnceLock::new(),
                })
                .collect();
            Arc::new(BokehJs {
                bundles,
                source: BokehJsSource::Embedded,
            })
        })
    }

    /// The bundles a server with this `--bokehjs-dir` serves: read from `dir` when given
    /// (checked to be BokehJS 3.9.2), else the embedded ones. Without the `embedded-bokehjs`
    /// feature, a missing `dir` is [`BokehJsError::NotEmbedded`].
    pub fn for_config(dir: Option<&FsPath>) -> Result<Arc<BokehJs>, BokehJsError> {
        match dir {
            Some(dir) => BokehJs::from_dir(dir).map(Arc::new),
            #[cfg(feature = "embedded-bokehjs")]
            None => Ok(BokehJs::embedded().clone()),
            #[cfg(not(feature = "embedded-bokehjs"))]
            None => Err(BokehJsError::NotEmbedded),
        }
    }

    /// Reads and checks the five bundles in `dir` (see [`dir::read_dir`]).
    pub fn from_dir(dir: &FsPath) -> Result<BokehJs, BokehJsError> {
        let bundles = dir::read_dir(dir)?
            .into_iter()
            .zip(BUNDLE_FILES)
            .map(|(contents, (name, file_name))| Bundle::read(name, file_name, contents))
            .collect();
        Ok(BokehJs {
            bundles,
            source: BokehJsSource::Dir(dir.to_owned()),
        })
    }

    /// Where the bundles came from.
    pub fn source(&self) -> &BokehJsSource {
        &self.source
    }

    /// All bundles in page order.
    pub fn bundles(&self) -> &[Bundle] {
        &self.bundles
    }

    /// Looks a bundle up by its file name, e.g. `"bokeh-gl.min.js"`.
    pub fn bundle_by_file_name(&self, file_name: &str) -> Option<&Bundle> {
        self.bundles.iter().find(|b| b.file_name == file_name)
    }
}

/// Gzips a bundle read from a directory, at the default level (a server start pays for
/// it, once).
fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into memory cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// Where a page's script tags point: the root the static route hangs off and the bundles
/// served there.
#[derive(Clone, Copy)]
pub struct Scripts<'a> {
    /// The root ending in `/`: `"/"`, `"/prefix/"` or `"http://host:port/"` (see
    /// `pages::static_root`). A missing trailing slash is added.
    pub root: &'a str,
    /// The bundles, whose hashes are the `?v=` values.
    pub bokehjs: &'a BokehJs,
}

impl<'a> Scripts<'a> {
    /// The scripts of `bokehjs` under `root`.
    pub fn new(root: &'a str, bokehjs: &'a BokehJs) -> Scripts<'a> {
        Scripts { root, bokehjs }
    }

    /// The script URLs of the bundles in `set`, in page order:
    /// `{root}static/js/{name}.min.js?v={sha512 hex}`.
    pub fn urls(&self, set: BundleSet) -> Vec<String> {
        let root = self.root;
        let sep = if root.ends_with('/') { "" } else { "/" };
        self.bokehjs
            .bundles
            .iter()
            .filter(|b| set.contains(b.name))
            .map(|b| format!("{root}{sep}static/js/{}?v={}", b.file_name, b.sha512_hex))
            .collect()
    }
}

/// `Cache-Control` for a versioned URL (`?v=`): ten years, as Tornado does.
const CACHE_FOREVER: &str = "max-age=315360000, public";

/// The answer to `GET /static/{path}` (`path` like `js/bokeh.min.js`) from `bokehjs`:
///
/// - unknown file: 404 with a JSON body `{"error": "..."}`;
/// - `Content-Type: text/javascript`, `Etag: "<sha512 hex>"`, `Vary: Accept-Encoding`;
/// - a matching `If-None-Match` gives 304;
/// - with a `v` query parameter `Cache-Control: max-age=315360000, public`, otherwise
///   `Cache-Control: no-cache` (revalidate with the `Etag`);
/// - the gzip bytes with `Content-Encoding: gzip` when `Accept-Encoding` allows gzip,
///   else the uncompressed file.
pub fn serve_static(bokehjs: &BokehJs, path: &str, uri: &Uri, headers: &HeaderMap) -> Response {
    let Some(bundle) = path
        .strip_prefix("js/")
        .and_then(|f| bokehjs.bundle_by_file_name(f))
    else {
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

    if if_none_match_matches(headers, &bundle.sha512_hex) {
        return build(
            common(Response::builder().status(StatusCode::NOT_MODIFIED)),
            Body::empty(),
        );
    }

    let builder = common(Response::builder().status(StatusCode::OK))
        .header(header::CONTENT_TYPE, "text/javascript");
    if accepts_gzip(headers) {
        let builder = builder.header(header::CONTENT_ENCODING, "gzip");
        return build(builder, Body::from(bundle.gzipped.clone()));
    }
    match bundle.plain_bytes() {
        Some(plain) => build(builder, Body::from(plain.clone())),
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

    /// A set of five small bundles, as if read from a directory.
    fn fake() -> BokehJs {
        let bundles = BUNDLE_FILES
            .iter()
            .map(|(name, file_name)| {
                Bundle::read(name, file_name, format!("// {name}").into_bytes())
            })
            .collect();
        BokehJs {
            bundles,
            source: BokehJsSource::Dir(PathBuf::from("/fake")),
        }
    }

    #[cfg(feature = "embedded-bokehjs")]
    #[test]
    fn table_is_in_page_order_and_consistent() {
        let bundles = BokehJs::embedded().bundles();
        let names: Vec<_> = bundles.iter().map(|b| b.name).collect();
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
        for b in bundles {
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
        let js = fake();
        let urls = Scripts::new("/", &js).urls(BundleSet::ALL);
        assert_eq!(urls.len(), 5);
        assert_eq!(
            urls[0],
            format!("/static/js/bokeh.min.js?v={}", js.bundles()[0].sha512_hex)
        );
        assert!(Scripts::new("/pre/", &js).urls(BundleSet::ALL)[4]
            .starts_with("/pre/static/js/bokeh-mathjax.min.js?v="));
        assert!(Scripts::new("http://h:1", &js).urls(BundleSet::ALL)[1]
            .starts_with("http://h:1/static/js/bokeh-gl.min.js?v="));
        let some = BundleSet {
            tables: true,
            ..BundleSet::default()
        };
        let urls = Scripts::new("/", &js).urls(some);
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
        let js = fake();
        let hex = js.bundles()[0].sha512_hex.as_str();
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
