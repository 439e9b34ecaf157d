//! Tests for the embedded BokehJS bundles, the static handler, the app page, autoload.js and the
//! index page, checked against the Bokeh 3.9.2 captures in `tests/fixtures/bokeh-3.9.2/`.
//! They need the bundles embedded at build time (feature `embedded-bokehjs`).
#![cfg(feature = "embedded-bokehjs")]
// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::io::Read;
use std::path::PathBuf;

use axum::body::to_bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use plotwire_server::assets::{serve_static, BokehJs, Bundle, Scripts};
use plotwire_server::bundles::{BundleSet, PageBundles};
use plotwire_server::pages::{
    app_page, autoload_js, index_page, new_element_id, static_root, IndexEntry,
};
use serde_json::{json, Value};

/// The `?v=` values of the five bundles as served by a real Bokeh 3.9.2 server
/// (fixtures: `http/demo-page.html`).
const FIXTURE_HASHES: [(&str, &str); 5] = [
    ("bokeh", "6acf7fa15d17d1f4f73b696c45463ebcb45d3d5d8067e86826a48d7d9fd7c67183278ae3b40225167b8c8f4073fdd7ea100fcc28ed9a8653a3d295322ea9d1e8"),
    ("bokeh-gl", "491e3b65808ff55704d4383425fa1c479560e54143b176dc4d219aee688613c4ee4413f0e74e0f64344117e0bfc0b54040ae4d11a5cf239b912d00e7e2ddf92b"),
    ("bokeh-widgets", "7cce1f95cc36d3d6f72c346862eee80401d3cb2e6d277f1309fefbe4f4a68db7f52dd73bea0218521880ed3000162dac0e0d07a9abe2e6dd9caad2f07446018f"),
    ("bokeh-tables", "e4f64205532d8472bea184da120e7a1759c98a442601e122fd2b3fd7070f4d643f72ac75849ae290067e5260a9b74e5a801d424c05f944cd96250270902b45f6"),
    ("bokeh-mathjax", "4c1a98e8a6e8f734cc18a91772a7216dd1d1ea541a6ef5528560ae6e86218c90af76506074c5b5fa8174c3b381b60712c532e3bdc3cb22096f48ed35822c0038"),
];

/// The token of fixtures `ws/1-pushed-plain/d_page.html`.
const PUSHED_TOKEN: &str =
    "eyJzZXNzaW9uX2lkIjogImZpeHR1cmUtc2Vzc2lvbi1wbGFpbiIsICJzZXNzaW9uX2V4cGlyeSI6IDE3OTUzMTMyNjJ9";

// ---------------------------------------------------------------------------------------------
// A small independent SHA-512 (FIPS 180-4), so the test does not trust the build script's hashes.

#[rustfmt::skip]
const K: [u64; 80] = [
    0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
    0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
    0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
    0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
    0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
    0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
    0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
    0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
    0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
    0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
    0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
    0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
    0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
    0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
];

fn sha512_hex(data: &[u8]) -> String {
    let mut h: [u64; 8] = [
        0x6a09e667f3bcc908,
        0xbb67ae8584caa73b,
        0x3c6ef372fe94f82b,
        0xa54ff53a5f1d36f1,
        0x510e527fade682d1,
        0x9b05688c2b3e6c1f,
        0x1f83d9abfb41bd6b,
        0x5be0cd19137e2179,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 128 != 112 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u128) * 8).to_be_bytes());
    for block in msg.chunks_exact(128) {
        let mut w = [0u64; 80];
        for (i, word) in block.chunks_exact(8).enumerate() {
            w[i] = u64::from_be_bytes(word.try_into().unwrap());
        }
        for i in 16..80 {
            let s0 = w[i - 15].rotate_right(1) ^ w[i - 15].rotate_right(8) ^ (w[i - 15] >> 7);
            let s1 = w[i - 2].rotate_right(19) ^ w[i - 2].rotate_right(61) ^ (w[i - 2] >> 6);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..80 {
            let s1 = e.rotate_right(14) ^ e.rotate_right(18) ^ e.rotate_right(41);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(28) ^ a.rotate_right(34) ^ a.rotate_right(39);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:016x}")).collect()
}

#[test]
fn sha512_reference_vector() {
    assert_eq!(
        sha512_hex(b"abc"),
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
         2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn fixture(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/bokeh-3.9.2")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Every `<script src="...">` URL in a page, in order.
fn script_srcs(html: &str) -> Vec<String> {
    html.split("<script src=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// The JSON array assigned by `const render_items = [...];` in a page or script.
fn render_items(text: &str) -> Value {
    let start = text.find("const render_items = ").unwrap() + "const render_items = ".len();
    let rest = &text[start..];
    let end = rest.find(";\n").unwrap();
    serde_json::from_str(&rest[..end]).unwrap()
}

/// The value of the `js_urls` array in an autoload script.
fn js_urls(text: &str) -> Vec<String> {
    let start = text.find("const js_urls = ").unwrap() + "const js_urls = ".len();
    let rest = &text[start..];
    let end = rest.find(";\n").unwrap();
    serde_json::from_str(&rest[..end]).unwrap()
}

/// The arguments after `render_items` in the `embed_items(...)` call.
fn embed_items_call(text: &str) -> String {
    let start = text.find("embed_items(").unwrap() + "embed_items(".len();
    let rest = &text[start..];
    rest[..rest.find(");").unwrap()].to_owned()
}

async fn get_static(path: &str, uri: &str, headers: &[(&'static str, &str)]) -> Response {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(*k, HeaderValue::from_str(v).unwrap());
    }
    serve_static(
        BokehJs::embedded(),
        path,
        &uri.parse::<Uri>().unwrap(),
        &map,
    )
}

async fn body(response: Response) -> Vec<u8> {
    to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec()
}

/// The embedded bundles.
fn bundles() -> &'static [Bundle] {
    BokehJs::embedded().bundles()
}

/// The scripts of the embedded bundles under `root`.
fn scripts(root: &str) -> Scripts<'_> {
    Scripts::new(root, BokehJs::embedded())
}

/// The script URLs of the embedded bundles in `set` under `root`.
fn script_urls(root: &str, set: BundleSet) -> Vec<String> {
    scripts(root).urls(set)
}

fn header_str(response: &Response, name: header::HeaderName) -> Option<&str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

// ---------------------------------------------------------------------------------------------
// The embedded bundles

#[test]
fn embedded_bundles_match_their_table_and_bokeh_3_9_2() {
    assert_eq!(bundles().len(), 5);
    for (bundle, (name, fixture_hash)) in bundles().iter().zip(FIXTURE_HASHES) {
        assert_eq!(bundle.name, name);
        assert_eq!(bundle.sha512_hex, fixture_hash, "{name}: table vs fixture");
        let plain = gunzip(&bundle.gzipped);
        assert_eq!(plain.len(), bundle.len, "{name}: length");
        assert_eq!(
            sha512_hex(&plain),
            fixture_hash,
            "{name}: recomputed sha512"
        );
        assert_eq!(bundle.decompressed(), Some(plain.as_slice()));
    }
    // The main bundle really is BokehJS 3.9.2.
    let main = bundles()[0].decompressed().unwrap();
    let text = String::from_utf8_lossy(main);
    assert!(text.contains("version=\"3.9.2\""), "version string missing");
}

#[test]
fn script_urls_carry_the_sha512() {
    let urls = script_urls("/", ALL);
    let expected: Vec<String> = FIXTURE_HASHES
        .iter()
        .map(|(name, hash)| format!("/static/js/{name}.min.js?v={hash}"))
        .collect();
    assert_eq!(urls, expected);
    // Exactly the URLs of a real Bokeh 3.9.2 page.
    assert_eq!(urls, script_srcs(&fixture("http/demo-page.html")));
}

// ---------------------------------------------------------------------------------------------
// The static handler

#[tokio::test]
async fn static_versioned_gzip() {
    let b = &bundles()[0];
    let uri = format!("/static/js/bokeh.min.js?v={}", b.sha512_hex);
    let response = get_static(
        "js/bokeh.min.js",
        &uri,
        &[("accept-encoding", "gzip, deflate, br")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header_str(&response, header::CONTENT_TYPE),
        Some("text/javascript")
    );
    assert_eq!(
        header_str(&response, header::CONTENT_ENCODING),
        Some("gzip")
    );
    assert_eq!(
        header_str(&response, header::CACHE_CONTROL),
        Some("max-age=315360000, public")
    );
    assert_eq!(
        header_str(&response, header::ETAG),
        Some(format!("\"{}\"", FIXTURE_HASHES[0].1).as_str())
    );
    assert_eq!(header_str(&response, header::VARY), Some("Accept-Encoding"));
    let bytes = body(response).await;
    assert_eq!(bytes, b.gzipped);
    assert_eq!(sha512_hex(&gunzip(&bytes)), FIXTURE_HASHES[0].1);
}

#[tokio::test]
async fn static_unversioned_plain() {
    let b = &bundles()[1];
    let response = get_static("js/bokeh-gl.min.js", "/static/js/bokeh-gl.min.js", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_str(&response, header::CONTENT_ENCODING), None);
    assert_eq!(
        header_str(&response, header::CACHE_CONTROL),
        Some("no-cache")
    );
    assert_eq!(
        header_str(&response, header::CONTENT_TYPE),
        Some("text/javascript")
    );
    let bytes = body(response).await;
    assert_eq!(bytes.len(), b.len);
    assert_eq!(sha512_hex(&bytes), FIXTURE_HASHES[1].1);

    // gzip refused explicitly: plain as well.
    let response = get_static(
        "js/bokeh-gl.min.js",
        "/static/js/bokeh-gl.min.js?v=x",
        &[("accept-encoding", "gzip;q=0, identity")],
    )
    .await;
    assert_eq!(header_str(&response, header::CONTENT_ENCODING), None);
    assert_eq!(body(response).await.len(), b.len);
}

#[tokio::test]
async fn static_if_none_match_gives_304() {
    let hash = FIXTURE_HASHES[3].1;
    let response = get_static(
        "js/bokeh-tables.min.js",
        "/static/js/bokeh-tables.min.js?v=1",
        &[
            ("if-none-match", &format!("\"{hash}\"")),
            ("accept-encoding", "gzip"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        header_str(&response, header::ETAG),
        Some(format!("\"{hash}\"").as_str())
    );
    assert!(body(response).await.is_empty());

    // A stale tag: full response.
    let response = get_static(
        "js/bokeh-tables.min.js",
        "/static/js/bokeh-tables.min.js",
        &[("if-none-match", "\"0000\"")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn static_unknown_file_is_json_404() {
    for path in [
        "js/nope.min.js",
        "bokeh.min.js",
        "js/bokeh.min.js/..",
        "../Cargo.toml",
        "js/bokeh-api.min.js",
    ] {
        let response = get_static(path, &format!("/static/{path}"), &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let json: Value = serde_json::from_slice(&body(response).await).unwrap();
        assert!(json["error"].is_string(), "{json}");
    }
}

/// Every bundle, as Bokeh's own server page lists them.
const ALL: BundleSet = BundleSet::ALL;

// ---------------------------------------------------------------------------------------------
// The app page

#[test]
fn app_page_matches_the_fixture_structure() {
    let page = app_page(
        "pushed doc",
        &["p1062".to_owned()],
        PUSHED_TOKEN,
        &scripts("/"),
        PageBundles::ALL,
    );
    let reference = fixture("ws/1-pushed-plain/d_page.html");

    assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(page.contains("<title>pushed doc</title>"));
    assert_eq!(script_srcs(&page), script_srcs(&reference));
    assert_eq!(script_srcs(&page).len(), 5);
    assert!(page.contains("<script>\nBokeh.set_log_level(\"info\");\n</script>"));
    assert!(page.contains("<script type=\"application/json\" id=\""));

    // render_items: same as the real server's, apart from the random element id.
    let items = render_items(&page);
    let reference_items = render_items(&reference);
    let elem = items[0]["roots"]["p1062"].as_str().unwrap().to_owned();
    let mut expected = reference_items.clone();
    expected[0]["roots"]["p1062"] = json!(elem);
    assert_eq!(items, expected);
    assert_eq!(
        serde_json::to_string(&items).unwrap(),
        serde_json::to_string(&expected).unwrap(),
        "key order"
    );

    // The root div carries the element id and the root id.
    assert!(page.contains(&format!(
        "<div id=\"{elem}\" data-root-id=\"p1062\" style=\"display: contents;\"></div>"
    )));
    // docs_json is `{}` inside the application/json script that the embed code reads.
    let json_id = page
        .split("<script type=\"application/json\" id=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(page.contains(&format!("id=\"{json_id}\">\n      {{}}\n    </script>")));
    assert!(page.contains(&format!(
        "document.getElementById(\"{json_id}\").textContent"
    )));
    assert!(page.contains("root.Bokeh.embed.embed_items(docs_json, render_items);"));
    assert!(page.contains("}, 10, root)"));
    assert!(page.contains("attempts > 100"));
    assert!(page.contains("Bokeh.safely(function()"));
    assert!(page.contains("document.addEventListener(\"DOMContentLoaded\", fn)"));
    assert!(page.trim_end().ends_with("</html>"));
}

#[test]
fn app_page_several_roots_in_order() {
    let roots = vec!["p1".to_owned(), "p22".to_owned(), "p3".to_owned()];
    let page = app_page("t", &roots, "tok", &scripts("/prefix/"), PageBundles::ALL);
    let items = render_items(&page);
    assert_eq!(items[0]["root_ids"], json!(["p1", "p22", "p3"]));
    let positions: Vec<usize> = roots
        .iter()
        .map(|r| {
            let elem = items[0]["roots"][r].as_str().unwrap();
            page.find(&format!("<div id=\"{elem}\" data-root-id=\"{r}\""))
                .unwrap()
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert!(script_srcs(&page)
        .iter()
        .all(|s| s.starts_with("/prefix/static/js/")));
}

#[test]
fn app_page_without_roots_omits_roots() {
    let page = app_page("empty", &[], "tok", &scripts("/"), PageBundles::ALL);
    assert_eq!(
        render_items(&page),
        json!([{"token": "tok", "use_for_title": true}])
    );
    assert!(!page.contains("data-root-id"));
}

#[test]
fn app_page_runs_the_later_bundles_after_the_render() {
    let bundles = PageBundles {
        now: BundleSet {
            tables: true,
            ..BundleSet::NONE
        },
        later: BundleSet {
            widgets: true,
            ..BundleSet::NONE
        },
    };
    let page = app_page("t", &["p1".to_owned()], "tok", &scripts("/"), bundles);
    let scripts: Vec<&str> = page
        .split("<script src=\"")
        .skip(1)
        .filter_map(|s| s.split('?').next())
        .collect();
    assert_eq!(
        scripts,
        ["/static/js/bokeh.min.js", "/static/js/bokeh-tables.min.js"]
    );
    let widgets = &script_urls("/", BundleSet::ALL)[2];
    assert!(widgets.contains("bokeh-widgets.min.js"));
    assert!(page.contains(&format!(
        "<link rel=\"preload\" as=\"script\" href=\"{widgets}\">"
    )));
    assert!(page.contains(&format!(
        "load_later(root.Bokeh.embed.embed_items(docs_json, render_items), [\"{widgets}\"]);"
    )));
    assert!(page.contains("Promise.resolve(rendered).then(when_idle, load)"));
}

#[test]
fn app_page_escapes_hostile_input() {
    let title = "</title><script>alert(1)</script>";
    let token = "tok</script><script>alert(2)</script>";
    let root = "p1\"><img src=x onerror=alert(3)>";
    let page = app_page(
        title,
        &[root.to_owned()],
        token,
        &scripts("/"),
        PageBundles::ALL,
    );
    assert!(page.contains("<title>&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;</title>"));
    assert!(!page.contains("alert(1)</script>"));
    assert!(!page.contains("alert(2)</script>"));
    assert!(!page.contains("<img"));
    // Exactly the expected number of script elements: 5 bundles, log level, json, embed.
    assert_eq!(page.matches("<script").count(), 8);
    assert_eq!(page.matches("</script>").count(), 8);
    // The JSON still decodes to the original values.
    let items = render_items(&page);
    assert_eq!(items[0]["token"], json!(token));
    assert_eq!(items[0]["root_ids"], json!([root]));
}

// ---------------------------------------------------------------------------------------------
// autoload.js

#[test]
fn autoload_with_absolute_url_uses_absolute_bundle_urls() {
    let reference = fixture("ws/1-pushed-plain/d_autoload.js");
    let root = static_root("", Some("http://127.0.0.1:5107/target"));
    assert_eq!(root, "http://127.0.0.1:5107/");
    let js = autoload_js(
        "fixture-autoload-element",
        PUSHED_TOKEN,
        "/target",
        Some("http://127.0.0.1:5107/target"),
        true,
        &scripts(&root),
        ALL,
    );
    assert_eq!(js_urls(&js), js_urls(&reference));
    assert_eq!(render_items(&js), render_items(&reference));
    assert_eq!(
        embed_items_call(&js),
        "'{}', render_items, \"/target\", \"http://127.0.0.1:5107/target\""
    );
    assert_eq!(
        embed_items_call(&reference),
        "docs_json, render_items, \"/target\", \"http://127.0.0.1:5107/target\""
    );
    assert!(js.contains("Bokeh.set_log_level(\"info\")"));
    assert!(js.contains("script.async = false;"));
    assert!(js.contains("const element_id = \"fixture-autoload-element\";"));
}

#[test]
fn autoload_without_absolute_url_uses_root_relative_urls() {
    let reference = fixture("http/demo-autoload-relative.js");
    let root = static_root("", None);
    let js = autoload_js(
        "p-fixture-elem2",
        "tok",
        "/demo",
        None,
        true,
        &scripts(&root),
        ALL,
    );
    assert_eq!(js_urls(&js), js_urls(&reference));
    assert!(js_urls(&js).iter().all(|u| u.starts_with("/static/js/")));
    assert_eq!(embed_items_call(&js), "'{}', render_items, \"/demo\"");
    assert_eq!(
        render_items(&js),
        json!([{"token": "tok", "elementid": "p-fixture-elem2", "use_for_title": false}])
    );
}

#[test]
fn autoload_matches_the_absolute_fixture_urls() {
    let reference = fixture("http/demo-autoload.js");
    let js = autoload_js(
        "p-fixture-elem",
        "tok",
        "/demo",
        Some("http://127.0.0.1:5106/demo"),
        true,
        &scripts(&static_root("", Some("http://127.0.0.1:5106/demo"))),
        ALL,
    );
    assert_eq!(js_urls(&js), js_urls(&reference));
}

#[test]
fn autoload_resources_none_and_escaping() {
    let js = autoload_js(
        "el\"</script>",
        "t'ok",
        "/a\"pp",
        Some("http://h/</script>"),
        false,
        &scripts("/"),
        ALL,
    );
    assert!(js_urls(&js).is_empty());
    assert!(!js.contains("</script>"));
    assert!(js.contains(r#"const element_id = "el\"\u003c/script\u003e";"#));
    assert_eq!(
        render_items(&js),
        json!([{"token": "t'ok", "elementid": "el\"</script>", "use_for_title": false}])
    );
    assert_eq!(
        embed_items_call(&js),
        r#"'{}', render_items, "/a\"pp", "http://h/\u003c/script\u003e""#
    );
}

#[test]
fn autoload_is_syntactically_plausible_js() {
    let js = autoload_js("e", "t", "/", None, true, &scripts("/"), ALL);
    // Balanced brackets outside string literals (a cheap guard against template typos).
    let (mut depth_paren, mut depth_brace, mut depth_bracket) = (0i32, 0i32, 0i32);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in js.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' => depth_paren += 1,
            ')' => depth_paren -= 1,
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ => {}
        }
        assert!(depth_paren >= 0 && depth_brace >= 0 && depth_bracket >= 0);
    }
    assert_eq!((depth_paren, depth_brace, depth_bracket), (0, 0, 0));
    assert!(quote.is_none());
}

// ---------------------------------------------------------------------------------------------
// Index page and helpers

#[test]
fn index_page_lists_and_escapes() {
    let entries = vec![
        IndexEntry {
            href: "/demo?bokeh-session-id=abc&x=\"1\"".to_owned(),
            label: "<script>alert('x')</script>".to_owned(),
            detail: "2 connections & <b>bold</b>".to_owned(),
        },
        IndexEntry {
            href: "/other".to_owned(),
            label: "Other".to_owned(),
            detail: String::new(),
        },
    ];
    let page = index_page(&[], &entries);
    assert!(page.contains("<title>plotwire</title>"));
    assert!(!page.contains("<script"));
    assert!(!page.contains("<b>"));
    assert!(page.contains(
        "<a href=\"/demo?bokeh-session-id=abc&amp;x=&quot;1&quot;\">&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</a>"
    ));
    assert!(page.contains("2 connections &amp; &lt;b&gt;bold&lt;/b&gt;"));
    assert!(page.contains("<a href=\"/other\">Other</a>"));
    assert!(!page.contains("No documents or live sessions yet"));
}

#[test]
fn index_page_empty_state() {
    let page = index_page(&[], &[]);
    assert!(page.contains("<title>plotwire</title>"));
    assert!(page.contains("No documents or live sessions yet"));
    assert!(page.contains("push_session"));
    assert!(!page.contains("<li>"));
}

#[test]
fn element_ids_are_fresh() {
    let a = new_element_id();
    let b = new_element_id();
    assert_ne!(a, b);
    assert!(a.starts_with(|c: char| c.is_ascii_alphabetic()));
}

#[test]
fn static_root_forms() {
    assert_eq!(static_root("", None), "/");
    assert_eq!(static_root("/foo/", None), "/foo/");
    assert_eq!(
        static_root("/foo", Some("https://example.org:8443/foo/app")),
        "https://example.org:8443/foo/"
    );
    // Scripts accepts any of them.
    assert!(script_urls(&static_root("/foo", None), ALL)[0].starts_with("/foo/static/js/"));
}
