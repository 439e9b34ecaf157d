#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]
//! Rate limits and quotas (`--limit-requests`, `--limit-points`, `--limit-connections`)
//! over real sockets: clients come from different loopback addresses (127.0.0.2,
//! 127.0.0.3, …) or present different keys. The one over its quota gets 429 with
//! `Retry-After` and a JSON body; the others are not affected; a refused write changes
//! nothing.

mod support;

use std::net::{IpAddr, SocketAddr};

use plotwire_server::access::keys::KeyHash;
use plotwire_server::limits::LimitSettings;
use plotwire_server::listener::FastAckListener;
use plotwire_server::Config;
use serde_json::{json, Value as Json};
use support::{within, T};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Starts a server with `limits` as `plotwire serve` runs it (peer addresses known).
async fn start(limits: LimitSettings, auth_file: Option<std::path::PathBuf>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = plotwire_server::router(Config {
        port,
        keep_alive: None,
        limits,
        auth_file,
        ..Config::default()
    })
    .unwrap();
    tokio::spawn(async move {
        let listener =
            axum::serve::ListenerExt::tap_io(FastAckListener::new(listener, 1000), |_| {});
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    port
}

/// A Bokeh websocket (after its ACK) to session `session` of app `/target`, from
/// `127.0.0.<from>`.
async fn ws_from(from: u8, port: u16, session: &str) -> support::Client {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let tcp = connect_from(from, port).await;
    let mut req = format!("ws://127.0.0.1:{port}/target/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("bokeh, {}", support::token(session))
            .parse()
            .unwrap(),
    );
    let tcp = tokio_tungstenite::MaybeTlsStream::Plain(tcp);
    let (ws, _) = within("the handshake", tokio_tungstenite::client_async(req, tcp))
        .await
        .unwrap();
    let mut client = support::Client::new(ws);
    client.expect_ack().await;
    client
}

/// An auth file `plotwire-limits-<tag>-<pid>.toml` with one `publish:*` key `pwk_<name>`
/// per `(name, extra lines)`.
fn auth_file(tag: &str, keys: &[(&str, &str)]) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("plotwire-limits-{tag}-{}.toml", std::process::id()));
    let mut text = String::new();
    for (name, extra) in keys {
        text.push_str(&format!(
            "[[keys]]\nname = \"{name}\"\nhash = \"{}\"\nscopes = [\"publish:*\"]\n{extra}",
            KeyHash::of(&format!("pwk_{name}"))
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Opens an SSE read of source `src` of document `doc` from `127.0.0.<from>`, with
/// `headers` (each ending in CRLF); returns the answer's status and the open connection.
async fn open_sse(port: u16, from: u8, doc: &str, headers: &str) -> (u16, TcpStream) {
    let mut tcp = connect_from(from, port).await;
    let head = format!(
        "GET /api/v1/documents/{doc}/sources/src?since=0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Accept: text/event-stream\r\n{headers}\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = within("the SSE head", tcp.read(&mut buf)).await.unwrap();
    let status: u16 = String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, tcp)
}

/// A connection to the server from `127.0.0.<from>`.
async fn connect_from(from: u8, port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(IpAddr::from([127, 0, 0, from]), 0))
        .unwrap();
    within(
        "connect",
        socket.connect(SocketAddr::from(([127, 0, 0, 1], port))),
    )
    .await
    .unwrap()
}

/// One request from `127.0.0.<from>`: status, `Retry-After`, JSON body.
async fn request(
    from: u8,
    port: u16,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, Option<u64>, Json) {
    let mut tcp = connect_from(from, port).await;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n{headers}\r\n",
        body.len()
    );
    within("write", tcp.write_all(&[head.as_bytes(), body].concat()))
        .await
        .unwrap();
    let mut answer = Vec::new();
    within("the answer", tcp.read_to_end(&mut answer))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let retry_after = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse().ok());
    (
        status,
        retry_after,
        serde_json::from_str(body).unwrap_or(Json::Null),
    )
}

fn doc() -> Vec<u8> {
    json!({
        "version": "3.9.2",
        "title": "t",
        "roots": [{"type": "object", "name": "ColumnDataSource", "id": "src1",
                   "attributes": {"name": "src", "data": {"type": "map", "entries": [["x", [0.5]]]}}}]
    })
    .to_string()
    .into_bytes()
}

const JSON: &str = "Content-Type: application/json\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_request_rate_gets_429_and_the_others_do_not_notice() {
    let port = start(
        LimitSettings {
            requests_per_second: 5,
            ..LimitSettings::default()
        },
        None,
    )
    .await;
    let mut refused = 0;
    let mut retry_after = None;
    for _ in 0..20 {
        let (status, retry, body) = request(2, port, "GET", "/healthz", "", b"").await;
        match status {
            200 => {}
            429 => {
                refused += 1;
                retry_after = retry;
                assert!(
                    body["error"].as_str().unwrap().contains("--limit-requests"),
                    "{body}"
                );
            }
            other => panic!("status {other}: {body}"),
        }
    }
    // 20 requests well within a second against 5 per second with a burst of 5.
    assert!(refused >= 10, "only {refused} of 20 refused");
    assert!(
        matches!(retry_after, Some(1..=2)),
        "Retry-After {retry_after:?}"
    );
    // Another address is not slowed by the first one's flood.
    let (status, _, _) = request(3, port, "GET", "/healthz", "", b"").await;
    assert_eq!(status, 200);
    // After the wait it says, the first gets in again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _, _) = request(2, port, "GET", "/healthz", "", b"").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_over_its_points_quota_is_refused_and_changes_nothing() {
    let path = auth_file("quota", &[("a", ""), ("b", "")]);
    let port = start(
        LimitSettings {
            points_per_second: 100,
            ..LimitSettings::default()
        },
        Some(path),
    )
    .await;
    let key = |k: &str| format!("Authorization: Bearer pwk_{k}\r\n{JSON}");
    let (status, _, body) = request(
        2,
        port,
        "PUT",
        "/api/v1/documents/runs/x",
        &key("a"),
        &doc(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let sixty = json!({"x": vec![1.0; 60]}).to_string().into_bytes();
    let stream = "/api/v1/documents/runs/x/sources/src/stream";
    let (status, _, body) = request(2, port, "POST", stream, &key("a"), &sixty).await;
    assert_eq!(status, 200, "{body}");
    let (status, retry, body) = request(2, port, "POST", stream, &key("a"), &sixty).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some());
    assert!(
        body["error"].as_str().unwrap().contains("--limit-points"),
        "{body}"
    );
    // The same key from another address is the same client: still over.
    let (status, _, _) = request(3, port, "POST", stream, &key("a"), &sixty).await;
    assert_eq!(status, 429);
    // Another key is not.
    let (status, _, body) = request(2, port, "POST", stream, &key("b"), &sixty).await;
    assert_eq!(status, 200, "{body}");
    // A batch larger than a second's worth could never pass: it says so.
    let big = json!({"x": vec![1.0; 101]}).to_string().into_bytes();
    let (status, _, body) = request(4, port, "POST", stream, &key("b"), &big).await;
    assert_eq!(status, 429);
    assert!(
        body["error"].as_str().unwrap().contains("smaller batches"),
        "{body}"
    );
    // 1 + 60 + 60 rows: the refused writes changed nothing.
    let (status, _, body) = request(
        5,
        port,
        "GET",
        "/api/v1/documents/runs/x/sources/src",
        "",
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["x"].as_array().unwrap().len(), 121);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_with_limits_of_its_own_in_the_auth_file_gets_them_in_place_of_the_flags() {
    let path = auth_file(
        "own",
        &[
            ("flag", ""),
            ("big", "limits = { points = 1000, connections = 1 }\n"),
            ("free", "limits = { points = 0 }\n"),
        ],
    );
    let port = start(
        LimitSettings {
            points_per_second: 100,
            connections: 3,
            ..LimitSettings::default()
        },
        Some(path),
    )
    .await;
    let key = |k: &str| format!("Authorization: Bearer pwk_{k}\r\n{JSON}");
    let (status, _, body) = request(
        2,
        port,
        "PUT",
        "/api/v1/documents/own",
        &key("flag"),
        &doc(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let rows = |n: usize| json!({"x": vec![1.0; n]}).to_string().into_bytes();
    let stream = "/api/v1/documents/own/sources/src/stream";
    // The key without limits of its own has the flag's 100 rows/s.
    let (status, _, body) = request(2, port, "POST", stream, &key("flag"), &rows(60)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = request(2, port, "POST", stream, &key("flag"), &rows(60)).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("--limit-points"),
        "{body}"
    );
    // "big" has 1000 rows/s: 900 pass, the next 200 do not, and the refusal names the file.
    for n in [600, 300] {
        let (status, _, body) = request(3, port, "POST", stream, &key("big"), &rows(n)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, retry, body) = request(3, port, "POST", stream, &key("big"), &rows(200)).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some());
    assert!(
        body["error"].as_str().unwrap().contains("auth file"),
        "{body}"
    );
    // "free" has no points limit at all.
    for _ in 0..4 {
        let (status, _, body) = request(4, port, "POST", stream, &key("free"), &rows(500)).await;
        assert_eq!(status, 200, "{body}");
    }
    // 1 + 60 + 900 + 2000 rows: the refused writes changed nothing.
    let (status, _, body) =
        request(5, port, "GET", "/api/v1/documents/own/sources/src", "", b"").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["x"].as_array().unwrap().len(), 2961);
    // "big" may hold one open stream where the flag allows three.
    let sse = |k: &str| {
        let auth = format!("Authorization: Bearer pwk_{k}\r\n");
        async move { open_sse(port, 6, "own", &auth).await }
    };
    let (first, _open) = sse("big").await;
    let (second, _) = sse("big").await;
    assert_eq!((first, second), (200, 429));
    let (flagged, _kept) = sse("flag").await;
    assert_eq!(flagged, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_are_counted_per_client_and_given_back_on_close() {
    let port = start(
        LimitSettings {
            connections: 2,
            ..LimitSettings::default()
        },
        None,
    )
    .await;
    let (status, _, _) = request(9, port, "PUT", "/api/v1/documents/live", JSON, &doc()).await;
    assert_eq!(status, 201);
    let open_sse = |from: u8| open_sse(port, from, "live", "");
    let (s1, first) = open_sse(2).await;
    let (s2, _second) = open_sse(2).await;
    let (s3, _) = open_sse(2).await;
    assert_eq!((s1, s2, s3), (200, 200, 429));
    // Another address has slots of its own.
    let (other, _kept) = open_sse(3).await;
    assert_eq!(other, 200);
    // Closing one gives its slot back (the server sees the close at its next write or
    // keep-alive; bounded wait).
    drop(first);
    let deadline = tokio::time::Instant::now() + T * 6;
    loop {
        let (status, _tcp) = open_sse(2).await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed stream's slot never came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_over_the_rate_get_a_protocol_error_and_others_are_served() {
    use plotwire_protocol::message::MsgType;
    let port = start(
        LimitSettings {
            requests_per_second: 5,
            ..LimitSettings::default()
        },
        None,
    )
    .await;
    let ws_from = |from: u8, session: &'static str| ws_from(from, port, session);
    let mut flooder = ws_from(2, "flooded").await;
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(flooder.send(MsgType::PullDocReq, &json!({}), &[]).await);
    }
    let mut errors = 0;
    for _ in 0..ids.len() {
        let m = flooder.recv().await;
        assert!(ids.contains(m.reqid.as_ref().unwrap()), "{m:?}");
        match m.msgtype.as_str() {
            "PULL-DOC-REPLY" => {}
            "ERROR" => {
                errors += 1;
                assert!(
                    m.content.to_string().contains("--limit-requests"),
                    "{:?}",
                    m.content
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    // The upgrade took one of the burst of 5; 12 messages at once leave at least 7 over.
    assert!(errors >= 7, "only {errors} of 12 refused");
    // Another address is served in full.
    let mut other = ws_from(3, "calm").await;
    let id = other.send(MsgType::PullDocReq, &json!({}), &[]).await;
    other.expect_reply("PULL-DOC-REPLY", &id).await;
}

/// A PATCH-DOC content that streams `rows` rows into `ColumnDataSource` `c1`.
fn stream_rows(rows: usize) -> Json {
    let column: Vec<f64> = (0..rows).map(|i| i as f64).collect();
    json!([{"kind": "ColumnsStreamed", "model": {"id": "c1"}, "attr": "data",
        "data": {"type": "map", "entries": [["x", column], ["y", column]]}, "rollover": null}])
}

/// The rows of column `x` of `c1` in a pulled document.
fn rows_of_c1(doc: &Json) -> usize {
    let entries = doc["roots"][0]["attributes"]["data"]["entries"]
        .as_array()
        .unwrap();
    entries.iter().find(|e| e[0] == "x").unwrap()[1]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bokeh_client_rows_count_against_the_points_quota_and_a_refused_patch_changes_nothing() {
    let port = start(
        LimitSettings {
            points_per_second: 10,
            ..LimitSettings::default()
        },
        None,
    )
    .await;
    let mut producer = ws_from(2, port, "quota").await;
    producer.push(&json!({"doc": support::cds_doc("c1")})).await;
    producer.patch_ok(stream_rows(8)).await;
    // A replace of the whole data counts as its rows, as a REST replace does.
    let nine = vec![0.0; 9];
    let replace = json!({"events": [{"kind": "ColumnDataChanged", "model": {"id": "c1"}, "attr": "data",
        "data": {"type": "map", "entries": [["x", nine], ["y", nine]]}, "cols": null}]});
    let refused = producer.patch_error(&replace, &[]).await;
    assert!(refused.contains("--limit-points"), "{refused}");
    // The second batch of 8 within the second is over the 10 rows/s.
    let over = producer
        .patch_error(&json!({"events": stream_rows(8)}), &[])
        .await;
    assert!(over.contains("--limit-points"), "{over}");
    // A batch that could never pass says to split it.
    let too_big = producer
        .patch_error(&json!({"events": stream_rows(11)}), &[])
        .await;
    assert!(too_big.contains("split"), "{too_big}");
    // No refused patch was applied: 1 pushed row + 8 streamed.
    assert_eq!(rows_of_c1(&producer.pull().await), 9);
    // Another address streams its own rows meanwhile.
    let mut other = ws_from(3, port, "other").await;
    other.push(&json!({"doc": support::cds_doc("c1")})).await;
    other.patch_ok(stream_rows(8)).await;
    assert_eq!(rows_of_c1(&other.pull().await), 9);
}
