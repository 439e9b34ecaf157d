#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]
//! Access control (`--auth-file`) over real sockets on 127.0.0.1: a table of requests
//! (no key, a wrong key, a key of the wrong scope, the right one, share links expired,
//! tampered and for another document) against every kind of route, each answered with
//! its documented status, and nothing changed by a denial.

mod support;

use std::path::PathBuf;

use plotwire_protocol::message::MsgType;
use plotwire_server::access::grant;
use plotwire_server::access::keys::KeyHash;
use plotwire_server::Config;
use serde_json::{json, Value as Json};
use support::*;

const SECRET: &str = "test-share-secret-0123456789abcdef";

const KEYS: [(&str, &str); 6] = [
    ("writer", "\"write:runs/*\""),
    ("publisher", "\"publish:*\""),
    ("reader", "\"read:team/*\""),
    ("admin", "\"admin\""),
    ("pusher", "\"write:target/*\""),
    ("scraper", "\"metrics\""),
];

fn key(name: &str) -> String {
    format!("pwk_test_{name}")
}

fn auth_file(tag: &str) -> PathBuf {
    let mut text = format!("share_secret = \"{SECRET}\"\nprivate = [\"team/*\"]\n");
    for (name, scopes) in KEYS {
        text.push_str(&format!(
            "[[keys]]\nname = \"{name}\"\nhash = \"{}\"\nscopes = [{scopes}]\n",
            KeyHash::of(&key(name))
        ));
    }
    let path =
        std::env::temp_dir().join(format!("plotwire-access-{tag}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

fn doc() -> Json {
    let model = |name: &str, id: &str, attrs: Json| json!({"type": "object", "name": name, "id": id, "attributes": attrs});
    json!({
        "version": "3.9.2",
        "title": "t",
        "roots": [model("ColumnDataSource", "src1", json!({"name": "src", "data": {"type": "map", "entries": [["x", [0.5]]]}}))]
    })
}

fn bearer(name: &str) -> String {
    format!("Authorization: Bearer {}\r\n", key(name))
}

/// A request of the table: what it is, method, path, header lines, body, status.
type Row<'a> = (&'a str, &'a str, String, String, &'a [u8], u16);

/// One request: its status and JSON body.
async fn call(port: u16, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, Json) {
    let (status, _, body) = http_send(port, method, path, headers, body).await;
    let json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    (status, json)
}

async fn rows(port: u16, name: &str) -> usize {
    let (status, body) = call(
        port,
        "GET",
        &format!("/api/v1/documents/{name}/sources/src"),
        &bearer("admin"),
        b"",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["x"].as_array().map_or(0, Vec::len)
}

async fn server(tag: &str) -> u16 {
    let port = start(Config {
        auth_file: Some(auth_file(tag)),
        ..config()
    })
    .await;
    let body = doc().to_string();
    for name in ["runs/a", "team/board"] {
        let (status, answer) = call(
            port,
            "PUT",
            &format!("/api/v1/documents/{name}"),
            &format!("{}Content-Type: application/json\r\n", bearer("admin")),
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_kind_answers_the_documented_status_and_denials_change_nothing() {
    let port = server("table").await;
    let now = now();
    let good = grant::sign(SECRET.as_bytes(), "team/board", now + 3600);
    let expired = grant::sign(SECRET.as_bytes(), "team/board", now - 1);
    let other = grant::sign(SECRET.as_bytes(), "team/other", now + 3600);
    let tampered = good.replace(&format!(".{}.", now + 3600), &format!(".{}.", now + 7200));
    assert_ne!(tampered, good);
    let json = "Content-Type: application/json\r\n";
    let stream = br#"{"x": [1.5]}"#.as_slice();
    let publish = doc().to_string();
    let with = |who: &str| format!("{}{json}", bearer(who));
    let wrong = format!("Authorization: Bearer pwk_nobody\r\n{json}");
    let g = |grant: &str| format!("?grant={grant}");

    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        // Writes to a public document.
        ("stream, no key", "POST", "/api/v1/documents/runs/a/sources/src/stream".into(), json.into(), stream, 401),
        ("stream, wrong key", "POST", "/api/v1/documents/runs/a/sources/src/stream".into(), wrong.clone(), stream, 401),
        ("stream, reader", "POST", "/api/v1/documents/runs/a/sources/src/stream".into(), with("reader"), stream, 403),
        ("stream, writer", "POST", "/api/v1/documents/runs/a/sources/src/stream".into(), with("writer"), stream, 200),
        ("stream, share link", "POST", format!("/api/v1/documents/team/board/sources/src/stream{}", g(&good)), json.into(), stream, 403),
        ("patch, writer elsewhere", "POST", "/api/v1/documents/team/board/sources/src/clear".into(), with("writer"), b"", 403),
        ("clear, no key", "POST", "/api/v1/documents/runs/a/sources/src/clear".into(), json.into(), b"", 401),
        ("set, no key", "PUT", "/api/v1/documents/runs/a/models/src1/name".into(), json.into(), br#"{"value": "y"}"#, 401),
        // Publishing.
        ("publish, no key", "PUT", "/api/v1/documents/runs/b".into(), json.into(), publish.as_bytes(), 401),
        ("publish, writer", "PUT", "/api/v1/documents/runs/b".into(), with("writer"), publish.as_bytes(), 403),
        ("publish, publisher", "PUT", "/api/v1/documents/runs/b".into(), with("publisher"), publish.as_bytes(), 201),
        ("delete, writer", "DELETE", "/api/v1/documents/team/board".into(), with("writer"), b"", 403),
        ("delete, no key", "DELETE", "/api/v1/documents/team/board".into(), json.into(), b"", 401),
        // Reads of a public document need nothing; a wrong key is still refused.
        ("public read, nothing", "GET", "/api/v1/documents/runs/a/sources/src".into(), String::new(), b"", 200),
        ("public read, wrong key", "GET", "/api/v1/documents/runs/a/sources/src".into(), wrong.clone(), b"", 401),
        ("public page, nothing", "GET", "/d/runs/a/".into(), String::new(), b"", 200),
        // Reads of a private document.
        ("private read, nothing", "GET", "/api/v1/documents/team/board/sources/src".into(), String::new(), b"", 401),
        ("private read, writer", "GET", "/api/v1/documents/team/board/sources/src".into(), with("writer"), b"", 403),
        ("private read, reader", "GET", "/api/v1/documents/team/board/sources/src".into(), with("reader"), b"", 200),
        ("private read, grant", "GET", format!("/api/v1/documents/team/board/sources/src{}", g(&good)), String::new(), b"", 200),
        ("private read, expired grant", "GET", format!("/api/v1/documents/team/board/sources/src{}", g(&expired)), String::new(), b"", 401),
        ("private read, tampered grant", "GET", format!("/api/v1/documents/team/board/sources/src{}", g(&tampered)), String::new(), b"", 401),
        ("private read, another's grant", "GET", format!("/api/v1/documents/team/board/sources/src{}", g(&other)), String::new(), b"", 401),
        ("private summary, nothing", "GET", "/api/v1/documents/team/board".into(), String::new(), b"", 401),
        ("private doc, nothing", "GET", "/api/v1/documents/team/board/doc".into(), String::new(), b"", 401),
        ("private events, nothing", "GET", "/api/v1/documents/team/board/events".into(), String::new(), b"", 401),
        ("private export, nothing", "GET", "/api/v1/documents/team/board/export.html".into(), String::new(), b"", 401),
        ("private json_item, grant", "GET", format!("/api/v1/documents/team/board/json_item{}", g(&good)), String::new(), b"", 200),
        ("private page, nothing", "GET", "/d/team/board/".into(), String::new(), b"", 401),
        ("private page, expired", "GET", format!("/d/team/board/{}", g(&expired)), String::new(), b"", 401),
        ("private page, grant", "GET", format!("/d/team/board/{}", g(&good)), String::new(), b"", 200),
        ("private page, reader", "GET", "/d/team/board/".into(), bearer("reader"), b"", 200),
        ("private embed, nothing", "GET", "/d/team/board/autoload.js?bokeh-autoload-element=e".into(), String::new(), b"", 401),
        ("private embed, grant", "GET", format!("/d/team/board/autoload.js?bokeh-autoload-element=e&grant={good}"), String::new(), b"", 200),
        // A private name that does not exist is denied exactly as one that does.
        ("missing private, nothing", "GET", "/api/v1/documents/team/nothing/sources/src".into(), String::new(), b"", 401),
        ("missing private page, nothing", "GET", "/d/team/nothing/".into(), String::new(), b"", 401),
        ("missing private, reader", "GET", "/api/v1/documents/team/nothing/sources/src".into(), with("reader"), b"", 404),
        // Share links.
        ("share, no key", "POST", "/api/v1/documents/team/board/share".into(), String::new(), b"", 401),
        ("share, reader", "POST", "/api/v1/documents/team/board/share".into(), with("reader"), b"", 403),
        ("share, publisher", "POST", "/api/v1/documents/team/board/share?expires=1h".into(), with("publisher"), b"", 201),
        ("share, too long", "POST", "/api/v1/documents/team/board/share?expires=9999d".into(), with("publisher"), b"", 400),
        // /metrics needs the metrics (or admin) scope.
        ("metrics, nothing", "GET", "/metrics".into(), String::new(), b"", 401),
        ("metrics, writer", "GET", "/metrics".into(), with("writer"), b"", 403),
        ("metrics, scraper", "GET", "/metrics".into(), bearer("scraper"), b"", 200),
        ("metrics, admin", "GET", "/metrics".into(), bearer("admin"), b"", 200),
        // Listing refuses a wrong key.
        ("list, wrong key", "GET", "/api/v1/documents".into(), wrong.clone(), b"", 401),
    ];
    for (what, method, path, headers, body, want) in &table {
        let (status, answer) = call(port, method, path, headers, body).await;
        assert_eq!(status, *want, "{what}: {method} {path} answered {answer}");
        if status >= 400 {
            let error = answer["error"].as_str().unwrap_or("");
            assert!(!error.is_empty(), "{what}: a JSON error body, got {answer}");
            assert!(
                !error.contains("pwk_"),
                "{what}: the error repeats a key: {error}"
            );
        }
        if status == 401 {
            let (_, headers, _) = http_send(port, method, path, headers, body).await;
            assert_eq!(
                header(&headers, "www-authenticate"),
                Some("Bearer realm=\"plotwire\""),
                "{what}"
            );
        }
    }
    // Only the writer's one stream landed; the denied delete left the document.
    assert_eq!(rows(port, "runs/a").await, 2);
    assert_eq!(rows(port, "team/board").await, 1);

    // The index and the list show a private document only to those who may read it.
    let (_, _, index) = http_get(port, "/").await;
    let index = String::from_utf8_lossy(&index);
    assert!(
        index.contains("runs/a") && !index.contains("team/board"),
        "{index}"
    );
    let names = |list: &Json| -> Vec<String> {
        list["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, anyone) = call(port, "GET", "/api/v1/documents", "", b"").await;
    assert_eq!(names(&anyone), ["runs/a", "runs/b"]);
    let (_, reader) = call(port, "GET", "/api/v1/documents", &bearer("reader"), b"").await;
    assert_eq!(names(&reader), ["runs/a", "runs/b", "team/board"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_link_opens_the_page_and_its_websocket_and_exports_carry_it() {
    let port = server("share").await;
    let (status, shared) = call(
        port,
        "POST",
        "/api/v1/documents/team/board/share?expires=2h",
        &bearer("publisher"),
        b"",
    )
    .await;
    assert_eq!(status, 201, "{shared}");
    let link = shared["url"].as_str().unwrap();
    assert!(link.starts_with("/d/team/board/?grant=g1."), "{link}");

    // The page's token carries a grant, so its websocket opens; a bare token does not.
    let (status, _, page) = http_get(port, link).await;
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    let token = page
        .split("\"token\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no token in the page: {page}"));
    let origin = format!("http://127.0.0.1:{port}");
    let (ws, resp) = try_connect(
        port,
        "d/team/board",
        &format!("bokeh, {token}"),
        Some(&origin),
    )
    .await
    .expect("the page's websocket");
    assert_eq!(resp.status(), 101);
    let mut view = Client::new(ws);
    view.expect_ack().await;
    let bare = try_connect(
        port,
        "d/team/board",
        &format!("bokeh, {}", support::token("intruder")),
        Some(&origin),
    )
    .await;
    match bare {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("a websocket without a grant was not refused: {other:?}"),
    }

    // An export of the private document reads on with a grant of its own.
    let (status, _, html) = http_get(
        port,
        &format!(
            "/api/v1/documents/team/board/export.html?grant={}",
            shared["grant"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(status, 200);
    let html = String::from_utf8_lossy(&html);
    let at = html.find("/sources/src1?since=").expect("a live source");
    let url = &html[at..at + 80];
    assert!(
        url.contains("grant=g1."),
        "no grant in the export's URLs: {url}"
    );
    // Of a public one, without.
    let (status, _, html) = http_get(port, "/api/v1/documents/runs/a/export.html").await;
    assert_eq!(status, 200);
    assert!(!String::from_utf8_lossy(&html).contains("grant="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bokeh_client_pushes_need_a_key_that_may_write_to_the_session() {
    let port = server("push").await;
    // Without a key: it connects and pulls, but its PUSH-DOC is refused with an ERROR.
    let mut anonymous = connect(port, "s1").await;
    let id = anonymous
        .send(MsgType::PushDoc, &plain_push_doc(), &[])
        .await;
    let refused = anonymous.expect_reply("ERROR", &id).await;
    assert!(
        refused.content.to_string().contains("plotwire_key"),
        "{:?}",
        refused.content
    );

    // With a key in `plotwire_key` (bokeh.client's `arguments`): accepted.
    let url = format!(
        "ws://127.0.0.1:{port}/target/ws?plotwire_key={}",
        key("pusher")
    );
    let connect_with = |url: String| async move {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            format!("bokeh, {}", support::token("s2")).parse().unwrap(),
        );
        tokio_tungstenite::connect_async(req).await
    };
    let (ws, _) = within("the pusher's handshake", connect_with(url))
        .await
        .unwrap();
    let mut pusher = Client::new(ws);
    pusher.expect_ack().await;
    pusher.push(&plain_push_doc()).await;

    // A key that may not write to this app: refused like no key.
    let url = format!(
        "ws://127.0.0.1:{port}/target/ws?plotwire_key={}",
        key("writer")
    );
    let (ws, _) = within("the writer's handshake", connect_with(url))
        .await
        .unwrap();
    let mut writer = Client::new(ws);
    writer.expect_ack().await;
    let id = writer.send(MsgType::PushDoc, &plain_push_doc(), &[]).await;
    writer.expect_reply("ERROR", &id).await;

    // A key that is not valid: the handshake itself is refused.
    let url = format!("ws://127.0.0.1:{port}/target/ws?plotwire_key=pwk_nobody");
    match within("a bad key's handshake", connect_with(url)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("a bad key was not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_auth_file_stops_the_server_from_starting_with_a_message() {
    let path =
        std::env::temp_dir().join(format!("plotwire-access-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "private = [\"x\"]\n").unwrap();
    let err = plotwire_server::router(Config {
        auth_file: Some(path.clone()),
        ..config()
    })
    .expect_err("refused");
    assert!(err.to_string().contains("share_secret"), "{err}");
    let missing = plotwire_server::router(Config {
        auth_file: Some(path.with_extension("absent")),
        ..config()
    })
    .expect_err("refused");
    assert!(
        missing.to_string().contains("cannot read the auth file"),
        "{missing}"
    );
}
