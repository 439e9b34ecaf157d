#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]
//! The client against a real plotwire server on 127.0.0.1: every operation, the errors,
//! retries that apply a write once, and the event stream with its resume.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use plotwire_client::{Client, Columns, Error, EventKind, Retention, Retry};
use serde_json::{json, Value as Json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Every wait in these tests is bounded by this.
const T: Duration = Duration::from_secs(20);

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(T, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Starts a server on an OS-chosen port (views forgotten 200 ms after their last
/// connection); returns the port.
async fn server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = plotwire_server::Config {
        port,
        keep_alive: None,
        view_linger: Duration::from_millis(200),
        ..plotwire_server::Config::default()
    };
    let app = plotwire_server::router(config).unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// A document with a source `src` (x, y) and a slider `lr`.
fn demo_doc() -> Json {
    let model = |name: &str, id: &str, attrs: Json| json!({"type": "object", "name": name, "id": id, "attributes": attrs});
    json!({
        "version": "3.9.2",
        "title": "client test",
        "roots": [
            model("ColumnDataSource", "src1", json!({"name": "src", "data": {"type": "map", "entries": [["x", []], ["y", []]]}})),
            model("Slider", "lr1", json!({"name": "lr", "value": 0.1, "start": 0, "end": 1, "step": 0.01})),
        ]
    })
}

fn floats(values: &[Json]) -> Vec<f64> {
    values.iter().map(|v| v.as_f64().unwrap()).collect()
}

#[tokio::test]
async fn a_retention_given_at_publish_bounds_the_document() {
    let port = server().await;
    let client = Client::new(&format!("127.0.0.1:{port}")).unwrap();
    let retention = Retention {
        max_rows: Some(3),
        max_age: Some("7d".into()),
    };
    assert_eq!(retention.to_query(), "?max_rows=3&max_age=7d");
    assert_eq!(Retention::default().to_query(), "");
    client
        .publish_with("t/kept", &demo_doc(), &retention)
        .await
        .unwrap();
    let rows = Columns::new()
        .with("x", vec![1.0, 2.0, 3.0, 4.0, 5.0])
        .with("y", vec![1i64, 2, 3, 4, 5]);
    client.stream("t/kept", "src", &rows, None).await.unwrap();
    let kept = client.data("t/kept", "src", None).await.unwrap();
    assert_eq!(floats(&kept.data["x"]), [3.0, 4.0, 5.0]);
    let bad = Retention {
        max_rows: None,
        max_age: Some("3 weeks".into()),
    };
    match client.publish_with("t/kept", &demo_doc(), &bad).await {
        Err(Error::Api { status, body }) => {
            assert_eq!(status, 400);
            assert_eq!(body.field.as_deref(), Some("max_age"), "{body:?}");
        }
        other => panic!("a 400 naming max_age, got {other:?}"),
    }
}

#[tokio::test]
async fn every_operation_against_a_real_server() {
    let port = server().await;
    let client = Client::new(&format!("127.0.0.1:{port}")).unwrap();
    let published = client.publish("t/ops", &demo_doc()).await.unwrap();
    assert_eq!(published.url, "/d/t/ops/");

    let batch = |from: i64| {
        Columns::new()
            .with("x", vec![from as f64, from as f64 + 1.0])
            .with("y", vec![from, from + 1])
    };
    let w = client
        .stream("t/ops", "src", &batch(0), None)
        .await
        .unwrap();
    assert_eq!(w.rows, Some(2));
    let first = client.data("t/ops", "src", None).await.unwrap();
    assert!(first.reset);
    assert_eq!(floats(&first.data["x"]), [0.0, 1.0]);
    client
        .stream("t/ops", "src", &batch(2), None)
        .await
        .unwrap();
    client
        .stream("t/ops", "src", &batch(4), Some(5))
        .await
        .unwrap();
    let more = client.data("t/ops", "src", Some(first.next)).await.unwrap();
    assert!(!more.reset);
    assert_eq!(floats(&more.data["x"]), [2.0, 3.0, 4.0, 5.0]);
    assert_eq!(
        client.summary("t/ops").await.unwrap().sources["src"].rows,
        5,
        "rollover 5"
    );

    client
        .patch("t/ops", "src", &json!({"x": [[0, 100.0]]}))
        .await
        .unwrap();
    let patched = client.data("t/ops", "src", None).await.unwrap();
    assert_eq!(floats(&patched.data["x"])[0], 100.0);
    let w = client
        .replace(
            "t/ops",
            "src",
            &Columns::new().with("x", vec![7.0]).with("y", vec![8i64]),
        )
        .await
        .unwrap();
    assert_eq!(w.rows, Some(1));
    client.clear("t/ops", "src").await.unwrap();
    assert_eq!(client.data("t/ops", "src", None).await.unwrap().rows, 0);

    client
        .set("t/ops", "lr", "value", &json!(0.5), None)
        .await
        .unwrap();
    match client
        .set("t/ops", "lr", "value", &json!(0.25), Some("no-such-view"))
        .await
    {
        Err(Error::Api { status: 404, body }) => assert_eq!(body.field.as_deref(), Some("view")),
        other => panic!("a value for an unknown view: {other:?}"),
    }
    let _view = open_view(port, "t/ops", "some-view").await;
    client
        .set("t/ops", "lr", "value", &json!(0.25), Some("some-view"))
        .await
        .unwrap();

    let docs = client.documents().await.unwrap();
    assert!(docs.documents.iter().any(|d| d.name == "t/ops"));
    client.delete("t/ops").await.unwrap();
    match client.summary("t/ops").await {
        Err(Error::Api { status: 404, body }) => assert!(body.error.contains("t/ops"), "{body:?}"),
        other => panic!("a deleted document: {other:?}"),
    }
}

#[tokio::test]
async fn errors_say_what_is_wrong() {
    let port = server().await;
    let client = Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
    assert!(matches!(
        client.publish("bad name", &demo_doc()).await,
        Err(Error::BadName(_))
    ));
    let ragged = Columns::new()
        .with("x", vec![1.0, 2.0])
        .with("y", vec![1.0]);
    match client.stream("t/err", "src", &ragged, None).await {
        Err(Error::BadColumns(why)) => {
            assert!(why.contains("x: 2") && why.contains("y: 1"), "{why}")
        }
        other => panic!("ragged columns: {other:?}"),
    }
    client.publish("t/err", &demo_doc()).await.unwrap();
    let strings = Columns::new().with("x", vec![true]).with("y", vec![1.0]);
    match client.stream("t/err", "nope", &strings, None).await {
        Err(Error::Api { status: 404, body }) => assert!(body.error.contains("nope"), "{body:?}"),
        other => panic!("an unknown source: {other:?}"),
    }
    let numbers = Columns::new().with("x", vec![1.0]).with("y", vec![1.0]);
    client.stream("t/err", "src", &numbers, None).await.unwrap();
    match client.stream("t/err", "src", &strings, None).await {
        Err(Error::Api { status: 400, body }) => {
            assert_eq!(body.field.as_deref(), Some("x"), "{body:?}")
        }
        other => panic!("a bool batch into a float column: {other:?}"),
    }

    // Nothing listens on a port just closed.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    let down = Client::new(&format!("127.0.0.1:{dead}"))
        .unwrap()
        .with_retry(Retry {
            attempts: 3,
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        });
    match down.documents().await {
        Err(e @ Error::Unreachable { attempts: 3, .. }) => {
            assert!(e.to_string().contains("plotwire serve"), "{e}")
        }
        other => panic!("a server that is down: {other:?}"),
    }
    assert!(Client::new("https://127.0.0.1:1").is_err());
}

/// A loopback proxy in front of the server that, for its first `drops` answers, closes
/// the client's connection instead of passing the answer on: the server applied the
/// request, the client saw a network failure.
async fn dropping_proxy(upstream: u16, drops: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let left = Arc::new(AtomicUsize::new(drops));
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = dropped.clone();
    tokio::spawn(async move {
        for _ in 0..1000 {
            let Ok((mut down, _)) = listener.accept().await else {
                return;
            };
            let left = left.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut up = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                let (mut down_r, mut down_w) = down.split();
                let (mut up_r, mut up_w) = up.split();
                let requests = tokio::io::copy(&mut down_r, &mut up_w);
                let answers = async {
                    let mut buf = vec![0u8; 1 << 16];
                    for _ in 0..100_000 {
                        let n = up_r.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        let drop_it = left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                            .is_ok();
                        if drop_it {
                            counter.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        if down_w.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    _ = requests => {}
                    _ = answers => {}
                }
            });
        }
    });
    (port, dropped)
}

#[tokio::test]
async fn a_retried_write_is_applied_once() {
    let port = server().await;
    let direct = Client::new(&format!("127.0.0.1:{port}")).unwrap();
    direct.publish("t/retry", &demo_doc()).await.unwrap();
    let (proxy, dropped) = dropping_proxy(port, 2).await;
    let flaky = Client::new(&format!("127.0.0.1:{proxy}")).unwrap();
    let batch = Columns::new()
        .with("x", vec![1.0, 2.0, 3.0])
        .with("y", vec![4.0, 5.0, 6.0]);
    let w = within(
        "the retried stream",
        flaky.stream("t/retry", "src", &batch, None),
    )
    .await
    .unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 2, "two answers were lost");
    assert_eq!(w.rows, Some(3), "the retries got the first answer again");
    let read = direct.data("t/retry", "src", None).await.unwrap();
    assert_eq!(floats(&read.data["x"]), [1.0, 2.0, 3.0], "applied once");
}

/// Opens a websocket as a view of a published document, as a page does.
async fn open_view(
    port: u16,
    name: &str,
    view: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = plotwire_protocol::token::generate_token(view, now + 300, None, None).unwrap();
    let mut req = format!("ws://127.0.0.1:{port}/d/{name}/ws")
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert(
        "Sec-WebSocket-Protocol",
        format!("bokeh, {token}").parse().unwrap(),
    );
    h.insert(
        "Origin",
        format!("http://127.0.0.1:{port}").parse().unwrap(),
    );
    let (ws, _) = within(
        "the view's websocket",
        tokio_tungstenite::connect_async(req),
    )
    .await
    .unwrap();
    ws
}

fn is_view(e: &plotwire_client::ViewerEvent, view: &str, what: &str) -> bool {
    e.view == view && matches!(&e.kind, EventKind::View { event } if event == what)
}

#[tokio::test]
async fn events_are_typed_and_resume_after_the_last_one() {
    let port = server().await;
    let client = Client::new(&format!("127.0.0.1:{port}")).unwrap();
    client.publish("t/ev", &demo_doc()).await.unwrap();
    let mut events = Box::pin(client.events("t/ev", 0));

    let ws = open_view(port, "t/ev", "view-a").await;
    let opened = within("the open event", events.next())
        .await
        .unwrap()
        .unwrap();
    assert!(is_view(&opened, "view-a", "open"), "{opened:?}");
    assert_eq!(opened.doc, "t/ev");
    drop(ws);
    let closed = within("the close event", async {
        for _ in 0..100 {
            let e = events.next().await.unwrap().unwrap();
            if is_view(&e, "view-a", "close") {
                return e;
            }
        }
        panic!("no close event");
    })
    .await;
    assert!(closed.seq > opened.seq);

    // A new stream from the open event's cursor starts right after it.
    let mut resumed = Box::pin(client.events("t/ev", opened.seq));
    let next = within("the resumed stream", resumed.next())
        .await
        .unwrap()
        .unwrap();
    assert!(next.seq > opened.seq, "{next:?}");
}

#[tokio::test]
async fn the_event_stream_rides_out_a_lost_answer() {
    let port = server().await;
    let direct = Client::new(&format!("127.0.0.1:{port}")).unwrap();
    direct.publish("t/blip", &demo_doc()).await.unwrap();
    let _a = open_view(port, "t/blip", "view-1").await;
    // The first long-poll answer (the open event of view-1) is lost on the way.
    let (proxy, dropped) = dropping_proxy(port, 1).await;
    let flaky = Client::new(&format!("127.0.0.1:{proxy}")).unwrap();
    let mut events = Box::pin(flaky.events("t/blip", 0));
    let first = within("the first event", events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert!(is_view(&first, "view-1", "open"), "{first:?}");
    let _b = open_view(port, "t/blip", "view-2").await;
    let second = within("the second event", events.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        is_view(&second, "view-2", "open"),
        "no repeat, nothing lost: {second:?}"
    );
}

#[test]
fn the_blocking_client_works_without_a_runtime() {
    let (tx, rx) = std::sync::mpsc::channel();
    let server_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            tx.send(server().await).unwrap();
            tokio::time::sleep(T).await;
        });
    });
    let port = rx.recv_timeout(T).unwrap();
    let client = plotwire_client::blocking::Client::new(&format!("127.0.0.1:{port}")).unwrap();
    client.publish("t/blocking", &demo_doc()).unwrap();
    let batch = Columns::new().with("x", vec![1.5]).with("y", vec![2.5]);
    assert_eq!(
        client
            .stream("t/blocking", "src", &batch, None)
            .unwrap()
            .rows,
        Some(1)
    );
    let read = client.data("t/blocking", "src", None).unwrap();
    assert_eq!(floats(&read.data["y"]), [2.5]);
    drop(server_thread);
}

/// With the `arrow` feature: text columns go as Arrow IPC, and so do record batches.
#[cfg(feature = "arrow")]
#[tokio::test]
async fn text_columns_and_arrow_batches_reach_the_source() {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};

    let port = server().await;
    let client = Client::new(&format!("127.0.0.1:{port}")).unwrap();
    let model = |name: &str, id: &str, attrs: Json| json!({"type": "object", "name": name, "id": id, "attributes": attrs});
    let doc = json!({
        "version": "3.9.2",
        "title": "text",
        "roots": [model("ColumnDataSource", "log1", json!({"name": "log", "data": {"type": "map", "entries": [["t", []], ["level", []]]}}))]
    });
    within("publish", client.publish("c/text", &doc))
        .await
        .unwrap();
    let batch = Columns::new()
        .with("t", vec![1.0, 2.0])
        .with("level", vec!["info".to_owned(), "warn \"x\"".to_owned()]);
    let written = within("stream", client.stream("c/text", "log", &batch, None))
        .await
        .unwrap();
    assert_eq!(written.rows, Some(2));
    let arrow = RecordBatch::try_from_iter([
        ("t", Arc::new(Float64Array::from(vec![3.0])) as ArrayRef),
        (
            "level",
            Arc::new(StringArray::from(vec!["error"])) as ArrayRef,
        ),
    ])
    .unwrap();
    within(
        "stream_batch",
        client.stream_batch("c/text", "log", &arrow, Some(2)),
    )
    .await
    .unwrap();
    let back = within("data", client.data("c/text", "log", None))
        .await
        .unwrap();
    assert_eq!(
        back.data["level"],
        vec![json!("warn \"x\""), json!("error")]
    );
    assert_eq!(floats(&back.data["t"]), vec![2.0, 3.0]);
    within(
        "replace_batch",
        client.replace_batch("c/text", "log", &arrow),
    )
    .await
    .unwrap();
    let back = within("data", client.data("c/text", "log", None))
        .await
        .unwrap();
    assert_eq!(back.data["level"], vec![json!("error")]);
}
