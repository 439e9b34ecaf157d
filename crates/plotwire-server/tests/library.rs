//! plotwire as a library inside a host app (issue 11): the config builder, the in-process
//! handle writing through the documents' real owners, the router merged under a host
//! prefix behind the host's own auth middleware, the shared graceful shutdown, and BokehJS
//! read from a directory.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod support;

use std::path::{Path, PathBuf};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use plotwire_server::body::float64_column;
use plotwire_server::{
    app, App, BokehJs, BokehJsError, Config, ConfigError, Followed, Plotwire, Retention, Value,
};
use serde_json::{json, Value as Json};
use support::{connect_view, header, http_get, http_request, within, T};

const NAME: &str = "lib/demo";

const SPEC: &[u8] = br#"{
    "sources": {"s": {"columns": {"x": "float64", "y": "float64"}}},
    "plots": {"p": {"kind": "line", "source": "s", "x": "x", "y": "y"}}
}"#;

fn columns(xs: &[f64]) -> Vec<(String, Value)> {
    let ys: Vec<f64> = xs.iter().map(|x| 2.0 * x).collect();
    vec![
        ("x".to_owned(), float64_column(xs)),
        ("y".to_owned(), float64_column(&ys)),
    ]
}

fn test_config() -> plotwire_server::ConfigBuilder {
    Config::builder().keep_alive(None)
}

async fn published(plotwire: &Plotwire) {
    let done = within("publish", plotwire.publish_spec_json(NAME, SPEC))
        .await
        .unwrap();
    assert!(done.created);
    assert_eq!(done.seq, 0);
}

#[tokio::test]
async fn the_handle_publishes_with_a_retention() {
    let App { plotwire, .. } = app(test_config().build().unwrap()).unwrap();
    let spec = plotwire_spec::parse(SPEC).unwrap();
    let kept = Retention::new(Some(3), Some("7d")).unwrap();
    plotwire.publish_spec_with(NAME, spec, kept).await.unwrap();
    let w = plotwire
        .stream(NAME, "s", columns(&[1.0, 2.0, 3.0, 4.0, 5.0]), None)
        .await
        .unwrap();
    assert_eq!(w.rows, Some(3), "max_rows kept three rows");
    let summary: Json = serde_json::from_str(&plotwire.summary(NAME).await.unwrap()).unwrap();
    assert_eq!(
        summary["retention"],
        json!({"max_rows": 3, "max_age": "7d"})
    );
    let bad = Retention::new(None, Some("soon")).unwrap_err();
    assert_eq!(bad.field.as_deref(), Some("max_age"), "{}", bad.message);
}

#[tokio::test]
async fn the_handle_publishes_and_writes_through_the_owner() {
    let App { plotwire, .. } = app(test_config().build().unwrap()).unwrap();
    published(&plotwire).await;
    assert_eq!(plotwire.names(), [NAME]);
    assert_eq!(plotwire.url(NAME), "/d/lib/demo/");

    let w = plotwire
        .stream(NAME, "s", columns(&[1.0, 2.0]), None)
        .await
        .unwrap();
    assert_eq!(w.rows, Some(2));
    let w2 = plotwire
        .stream(NAME, "s", columns(&[3.0, 4.0, 5.0]), Some(4))
        .await
        .unwrap();
    assert_eq!(w2.rows, Some(4), "rollover kept four rows");
    assert!(w2.seq > w.seq);

    let read = plotwire.read(NAME, "s", None).await.unwrap();
    assert_eq!(read.rows, 4);
    let data: Json = serde_json::from_str(&read.data).unwrap();
    assert_eq!(data["x"], json!([2.0, 3.0, 4.0, 5.0]));
    assert_eq!(data["y"], json!([4.0, 6.0, 8.0, 10.0]));

    let summary: Json = serde_json::from_str(&plotwire.summary(NAME).await.unwrap()).unwrap();
    assert_eq!(
        summary["title"],
        json!("plotwire"),
        "a spec's default title, as over REST"
    );
    let doc: Json = serde_json::from_str(&plotwire.doc_json(NAME).await.unwrap()).unwrap();
    assert!(doc["roots"].as_array().is_some_and(|r| !r.is_empty()));

    let cleared = plotwire.clear(NAME, "s").await.unwrap();
    assert_eq!(cleared.rows, Some(0));

    // A publish under the same name replaces the content, in order after the writes.
    let again = plotwire.publish_spec_json(NAME, SPEC).await.unwrap();
    assert!(!again.created);
    assert!(again.seq > cleared.seq);

    // Refused where the REST API refuses, with its status.
    let e = plotwire
        .stream("nope", "s", columns(&[1.0]), None)
        .await
        .unwrap_err();
    assert_eq!(e.status, StatusCode::NOT_FOUND);
    let e = plotwire
        .stream(NAME, "missing", columns(&[1.0]), None)
        .await
        .unwrap_err();
    assert_eq!(e.status, StatusCode::NOT_FOUND, "{e}");
    let e = plotwire
        .publish_spec_json("bad name", SPEC)
        .await
        .unwrap_err();
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert_eq!(e.field.as_deref(), Some("name"));
    let e = plotwire
        .publish_spec_json(
            "other",
            br#"{"sources": {"s": {"columns": {"x": "int128"}}}}"#,
        )
        .await
        .unwrap_err();
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert!(e.field.is_some(), "a spec error names its field: {e}");
    assert_eq!(
        plotwire.names(),
        [NAME],
        "nothing was published by the refusals"
    );

    plotwire.delete(NAME).await.unwrap();
    assert!(plotwire.names().is_empty());
    let e = plotwire.clear(NAME, "s").await.unwrap_err();
    assert_eq!(e.status, StatusCode::NOT_FOUND);
}

/// Serves `router` on 127.0.0.1 with the given listener until `shutdown` begins, as a
/// host app does.
fn serve(listener: tokio::net::TcpListener, router: Router, shutdown: plotwire_server::Shutdown) {
    tokio::spawn(async move {
        let stop = shutdown.clone();
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.begun().await })
            .await;
    });
}

async fn bind() -> (tokio::net::TcpListener, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// The host's login check: plotwire's routes answer only with the session cookie.
async fn require_login(request: Request, next: Next) -> Response {
    let logged_in = request
        .headers()
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|c| c.trim() == "host_session=ok");
    if logged_in {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "log in first").into_response()
    }
}

#[tokio::test]
async fn merged_under_a_host_prefix_behind_the_hosts_auth() {
    let (listener, port) = bind().await;
    let config = test_config().prefix("/plots/").port(port).build().unwrap();
    let App {
        router,
        shutdown,
        plotwire,
    } = app(config).unwrap();
    let host = Router::new()
        .route("/", get(|| async { "the host's own page" }))
        .merge(router.layer(axum::middleware::from_fn(require_login)));
    serve(listener, host, shutdown.clone());
    published(&plotwire).await;
    assert_eq!(plotwire.url(NAME), "/plots/d/lib/demo/");
    plotwire
        .stream(NAME, "s", columns(&[1.0, 2.0, 3.0]), None)
        .await
        .unwrap();

    let (status, _, body) = http_get(port, "/").await;
    assert_eq!(status, 200);
    assert_eq!(body, b"the host's own page");
    for path in [
        "/plots/d/lib/demo/",
        "/plots/static/js/bokeh.min.js",
        "/plots/api/v1/documents",
        "/plots/",
    ] {
        let (status, _, body) = http_get(port, path).await;
        assert_eq!(status, 401, "{path} without the cookie");
        assert_eq!(
            body, b"log in first",
            "{path}: nothing of plotwire's is served"
        );
    }

    let cookie = "Cookie: host_session=ok\r\n";
    let (status, _, page) = http_request(port, "GET", "/plots/d/lib/demo/", cookie).await;
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    let script = page
        .split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    assert!(
        script.starts_with("/plots/static/js/bokeh.min.js?v="),
        "{script}"
    );
    let (status, headers, js) = http_request(port, "GET", script, cookie).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("text/javascript"));
    assert!(js.len() > 100_000, "the bundle itself");

    // The REST API, mounted with it, reads what the handle wrote: one owner.
    let (status, _, body) = http_request(
        port,
        "GET",
        "/plots/api/v1/documents/lib/demo/sources/s",
        cookie,
    )
    .await;
    assert_eq!(status, 200);
    let body: Json = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["rows"], json!(3));
    assert_eq!(body["data"]["x"], json!([1.0, 2.0, 3.0]));
    let (_, _, list) = http_request(port, "GET", "/plots/api/v1/documents", cookie).await;
    let list: Json = serde_json::from_slice(&list).unwrap();
    assert_eq!(list["documents"][0]["url"], json!("/plots/d/lib/demo/"));
    shutdown.begin();
}

#[tokio::test]
async fn viewers_hear_the_handle_and_the_handle_hears_viewers_until_shutdown() {
    let (listener, port) = bind().await;
    let App {
        router,
        shutdown,
        plotwire,
    } = app(test_config().port(port).build().unwrap()).unwrap();
    serve(listener, router, shutdown.clone());
    published(&plotwire).await;
    let mut events = plotwire.events(NAME, 0).await.unwrap();

    let mut view = connect_view(port, NAME, "view-one").await;
    let opened = within("the view's event", events.next()).await;
    let Some(Followed::Event(e)) = opened else {
        panic!("expected an event, got {opened:?}");
    };
    let e: Json = serde_json::from_str(&e.json).unwrap();
    assert_eq!(e["kind"], json!("view"), "{e}");

    plotwire
        .stream(NAME, "s", columns(&[7.0]), None)
        .await
        .unwrap();
    let streamed = view.recv().await;
    assert!(
        streamed.kinds().contains(&"ColumnsStreamed"),
        "{:?}",
        streamed.kinds()
    );

    // The host's shutdown: every websocket is closed with 1001, and they drain.
    shutdown.begin();
    view.expect_close(1001).await;
    drop(view);
    assert!(shutdown.drained(T).await, "every websocket ended");
}

// ---------------------------------------------------------------------------------------
// BokehJS from a directory

/// A fresh empty directory under the target's temp dir.
fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plotwire-lib-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes five bundles that declare BokehJS `version`, the way the real ones do.
fn fake_bundles(dir: &Path, version: &str) {
    for (name, file) in plotwire_server::assets::BUNDLE_FILES {
        let text = if name == "bokeh" {
            format!("/* licence */\nfunction _(n,i,o,c,e){{c(),o.version=\"{version}\"}},")
        } else {
            format!("(function(root, factory) {{\n  factory(root[\"Bokeh\"], \"{version}\");\n}})")
        };
        std::fs::write(dir.join(file), text).unwrap();
    }
}

#[test]
fn a_bokehjs_dir_of_another_version_is_refused_saying_what_to_do() {
    let dir = temp_dir("wrong");
    fake_bundles(&dir, "3.8.1");
    let e = BokehJs::from_dir(&dir).unwrap_err();
    assert!(
        matches!(&e, BokehJsError::WrongVersion { found, .. } if found == "3.8.1"),
        "{e}"
    );
    let text = e.to_string();
    assert!(text.contains("bokeh.min.js is BokehJS 3.8.1"), "{text}");
    assert!(text.contains("--bokehjs-dir"), "{text}");
    assert!(text.contains("bokeh/server/static/js"), "{text}");

    // One plugin of another version is enough to refuse the set.
    fake_bundles(&dir, "3.9.2");
    std::fs::write(
        dir.join("bokeh-tables.min.js"),
        "factory(root[\"Bokeh\"], \"3.9.1\");",
    )
    .unwrap();
    let e = BokehJs::from_dir(&dir).unwrap_err();
    assert!(
        e.to_string()
            .contains("bokeh-tables.min.js is BokehJS 3.9.1"),
        "{e}"
    );

    std::fs::write(dir.join("bokeh-tables.min.js"), "console.log(1)").unwrap();
    assert!(matches!(
        BokehJs::from_dir(&dir),
        Err(BokehJsError::NoVersion { .. })
    ));
    std::fs::remove_file(dir.join("bokeh-tables.min.js")).unwrap();
    assert!(matches!(
        BokehJs::from_dir(&dir),
        Err(BokehJsError::Read { .. })
    ));

    // The server refuses to start on it, with the same words.
    let config = test_config().bokehjs_dir(&dir).build().unwrap();
    match app(config) {
        Err(ConfigError::BokehJs(BokehJsError::Read { path, .. })) => {
            assert!(path.ends_with("bokeh-tables.min.js"));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("started without bokeh-tables.min.js"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pinned npm tarball: `BOKEHJS_TARBALL`, or the usual offline copy.
fn tarball() -> Option<PathBuf> {
    std::env::var_os("BOKEHJS_TARBALL")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/tmp/bokeh-bokehjs-3.9.2.tgz")))
        .filter(|p| p.is_file())
}

/// The real bundles from a directory (extracted from the npm tarball, which holds the
/// same files as the Python package's `bokeh/server/static/js`) are served, with their
/// SHA-512 as `?v=`.
#[tokio::test]
async fn the_real_bundles_are_served_from_a_directory() {
    let Some(tarball) = tarball() else {
        eprintln!("skipped: no BokehJS tarball (set BOKEHJS_TARBALL)");
        return;
    };
    let dir = temp_dir("real");
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir)
        .arg("--strip-components=3")
        .args(
            plotwire_server::assets::BUNDLE_FILES
                .iter()
                .map(|(_, f)| format!("package/build/js/{f}")),
        )
        .status()
        .unwrap();
    assert!(status.success());
    let js = BokehJs::from_dir(&dir).unwrap();
    assert_eq!(js.bundles().len(), 5);
    #[cfg(feature = "embedded-bokehjs")]
    for (read, embedded) in js.bundles().iter().zip(BokehJs::embedded().bundles()) {
        assert_eq!(read.sha512_hex, embedded.sha512_hex, "{}", read.name);
        assert_eq!(read.len, embedded.len);
    }

    let (listener, port) = bind().await;
    let App {
        router,
        shutdown,
        plotwire,
    } = app(test_config().port(port).bokehjs_dir(&dir).build().unwrap()).unwrap();
    serve(listener, router, shutdown.clone());
    published(&plotwire).await;
    let (status, _, page) = http_get(port, "/d/lib/demo/").await;
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    let main = &js.bundles()[0];
    let url = format!("/static/js/bokeh.min.js?v={}", main.sha512_hex);
    assert!(page.contains(&url), "{page}");
    let (status, headers, body) =
        http_request(port, "GET", &url, "Accept-Encoding: gzip\r\n").await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain).unwrap();
    assert_eq!(plain.len(), main.len);
    assert_eq!(Some(&plain[..]), main.decompressed());
    shutdown.begin();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without the `embedded-bokehjs` feature and without a directory, the server does not
/// start, and says what to do.
#[cfg(not(feature = "embedded-bokehjs"))]
#[test]
fn without_embedded_bundles_a_bokehjs_dir_is_required() {
    match app(test_config().build().unwrap()) {
        Err(ConfigError::BokehJs(e @ BokehJsError::NotEmbedded)) => {
            let text = e.to_string();
            assert!(text.contains("--bokehjs-dir"), "{text}");
            assert!(text.contains("embedded-bokehjs"), "{text}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("started without BokehJS"),
    }
}
