//! The websocket protocol and HTTP routes end to end: the real router on 127.0.0.1, raw
//! websocket clients speaking Bokeh's framing, fixture documents from the Bokeh 3.9.2
//! captures. Every wait is bounded.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use plotwire_protocol::message::MsgType;
use plotwire_protocol::token::{
    check_token_signature, decode_token_claims, generate_token, sign_session_id, token_session_id,
};
use plotwire_server::{Config, SessionIdMode};
use serde_json::{json, Value as Json};
use tokio_tungstenite::tungstenite::{self, Message};

mod support;
use support::*;

// ---------------------------------------------------------------------------------------
// Tests: basics, push, pull and relays
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ack_first_then_server_info() {
    let port = start(config()).await;
    let mut c = connect_raw(port, &token("info"), None).await;
    let first = c.recv().await;
    assert_eq!(first.msgtype, "ACK", "ACK is the first message");
    let id = c.send(MsgType::ServerInfoReq, &json!({}), &[]).await;
    let reply = c.expect_reply("SERVER-INFO-REPLY", &id).await;
    assert_eq!(
        reply.content,
        json!({"version_info": {"bokeh": "3.9.2", "server": "3.9.2"}})
    );
    c.assert_unique_ids();
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn push_pull_relay_and_new_models_to_everyone() {
    let port = start(config()).await;
    let push = plain_push_doc();
    let mut fixture_ids = Vec::new();
    full_model_ids(&push, &mut fixture_ids);

    // A pushes: it gets the replacement events, RootAdded in full, then OK.
    let mut a = connect(port, "relay").await;
    let echoed = a.push(&push).await;
    let events: Vec<&Json> = echoed.iter().flat_map(|m| m.events()).collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(kinds, ["RootAdded", "TitleChanged"], "{echoed:?}");
    assert_eq!(events[0]["model"]["type"], "object");
    assert_eq!(events[0]["model"]["id"], "p1062");
    assert_eq!(events[1]["title"], "pushed doc");

    // B and C pull: every root and every model is there, in full.
    let mut b = connect(port, "relay").await;
    let mut c = connect_browser(port, "relay").await;
    for viewer in [&mut b, &mut c] {
        let doc = viewer.pull().await;
        assert_eq!(doc["title"], "pushed doc");
        let roots = doc["roots"].as_array().expect("roots");
        assert_eq!(roots.len(), 1);
        assert_eq!(roots[0]["id"], "p1062");
        assert_eq!(roots[0]["type"], "object", "the root in full");
        let mut ids = Vec::new();
        full_model_ids(&doc, &mut ids);
        let pulled: HashSet<&String> = ids.iter().collect();
        assert_eq!(pulled.len(), ids.len(), "each model in full once");
        for id in &fixture_ids {
            assert!(pulled.contains(id), "model {id} is in the PULL-DOC-REPLY");
        }
    }

    // A PATCH-DOC from A goes to B and C, not back to A, which gets OK.
    a.patch_ok(
        json!([{"kind": "ModelChanged", "model": {"id": "p1058"}, "attr": "value", "new": 7}]),
    )
    .await;
    for viewer in [&mut b, &mut c] {
        let m = viewer.expect("PATCH-DOC").await;
        assert_eq!(
            m.events(),
            [json!({"kind": "ModelChanged", "model": {"id": "p1058"}, "attr": "value", "new": 7})]
        );
    }

    // The pusher's own changes from the capture, verbatim: relayed to both, OK to A.
    let patches: Vec<FixtureMsg> = fixture_c2s("1-pushed-plain", "a_push_session")
        .into_iter()
        .filter(|m| m.msgtype == "PATCH-DOC")
        .collect();
    assert_eq!(patches.len(), 7);
    for p in &patches {
        let id = a.send(MsgType::PatchDoc, &p.content, &p.buffers).await;
        a.expect_reply("OK", &id).await;
        for viewer in [&mut b, &mut c] {
            let m = viewer.expect("PATCH-DOC").await;
            assert_eq!(
                m.kinds(),
                [p.content["events"][0]["kind"].as_str().expect("kind")]
            );
        }
    }
    let doc = b.pull().await;
    assert_eq!(doc["title"], "title changed by pusher");

    // The browser's stream of typed arrays in buffers "0" and "1", from C: relayed to A
    // and B with the buffers re-attached.
    let browser_stream = fixture_c2s("1-pushed-plain", "c_browser")
        .into_iter()
        .find(|m| m.msgtype == "PATCH-DOC" && !m.buffers.is_empty())
        .expect("the browser's binary stream");
    let id = c
        .send(
            MsgType::PatchDoc,
            &browser_stream.content,
            &browser_stream.buffers,
        )
        .await;
    c.expect_reply("OK", &id).await;
    for viewer in [&mut a, &mut b] {
        let m = viewer.expect("PATCH-DOC").await;
        assert_eq!(m.kinds(), ["ColumnsStreamed"]);
        let entries = m.events()[0]["data"]["entries"]
            .as_array()
            .expect("entries");
        assert_eq!(entries.len(), 2);
        for (entry, (_, sent)) in entries.iter().zip(&browser_stream.buffers) {
            let buf_id = entry[1]["array"]["data"]["id"]
                .as_str()
                .expect("a buffer reference");
            let got = m
                .buffers
                .iter()
                .find(|(id, _)| id == buf_id)
                .map(|(_, b)| b)
                .expect("the referenced buffer is attached");
            assert_eq!(got, sent, "the buffer bytes of column {}", entry[0]);
        }
    }

    // A brand-new root reaches BOTH others with the model in full (the Bokeh bug: only
    // the first got it in full).
    let div = json!({"type": "object", "name": "Div", "id": "new-div",
                     "attributes": {"text": "<b>new</b>"}});
    a.patch_ok(json!([{"kind": "RootAdded", "model": div}]))
        .await;
    for viewer in [&mut b, &mut c] {
        let m = viewer.expect("PATCH-DOC").await;
        assert_eq!(m.events(), [json!({"kind": "RootAdded", "model": div})]);
    }
    // A new model inside a ModelChanged: in full to both as well.
    let title = json!({"type": "object", "name": "Title", "id": "new-title",
                       "attributes": {"text": "a brand-new Title model"}});
    a.patch_ok(
        json!([{"kind": "ModelChanged", "model": {"id": "p1011"}, "attr": "title", "new": title}]),
    )
    .await;
    for viewer in [&mut b, &mut c] {
        let m = viewer.expect("PATCH-DOC").await;
        assert_eq!(m.events()[0]["new"], title);
    }
    // A model the others already have stays a reference.
    a.patch_ok(
        json!([{"kind": "ModelChanged", "model": {"id": "p1011"}, "attr": "title",
                       "new": {"id": "new-title"}}]),
    )
    .await;
    // An unchanged value is not relayed: the next relay B sees is the label.
    c.patch_ok(json!([{"kind": "ModelChanged", "model": {"id": "p1059"}, "attr": "label", "new": "from C"}]))
        .await;
    for viewer in [&mut a, &mut b] {
        let m = viewer.expect("PATCH-DOC").await;
        assert_eq!(m.events()[0]["attr"], "label", "{m:?}");
    }
    let doc = a.pull().await;
    let roots: Vec<&str> = doc["roots"]
        .as_array()
        .expect("roots")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(roots, ["p1062", "new-div"]);

    for cl in [&a, &b, &c] {
        cl.assert_unique_ids();
    }
    for cl in [a, b, c] {
        cl.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ui_events_go_from_browsers_to_producers_only() {
    let port = start(config()).await;
    let mut producer = connect(port, "events").await;
    producer.push(&plain_push_doc()).await;
    let mut b1 = connect_browser(port, "events").await;
    let mut b2 = connect_browser(port, "events").await;
    b1.pull().await;
    b2.pull().await;

    // The browser's button_click, as BokehJS sent it in the capture.
    let click = fixture_c2s("1-pushed-plain", "c_browser")
        .into_iter()
        .find(|m| m.content.to_string().contains("button_click"))
        .expect("a button_click");
    let id = b1.send(MsgType::PatchDoc, &click.content, &[]).await;
    b1.expect_reply("OK", &id).await;
    let m = producer.expect("PATCH-DOC").await;
    assert_eq!(m.kinds(), ["MessageSent"]);
    assert_eq!(m.events()[0]["msg_data"]["name"], "button_click");
    assert_eq!(
        m.events()[0]["msg_data"]["values"]["entries"][0],
        json!(["model", {"id": "p1059"}])
    );

    // The other browser did not get it: its next relay is the following change.
    b1.patch_ok(
        json!([{"kind": "ModelChanged", "model": {"id": "p1058"}, "attr": "value", "new": 5}]),
    )
    .await;
    let m = b2.expect("PATCH-DOC").await;
    assert_eq!(
        m.kinds(),
        ["ModelChanged"],
        "b2 must not see the click: {m:?}"
    );
    let m = producer.expect("PATCH-DOC").await;
    assert_eq!(m.kinds(), ["ModelChanged"]);

    // A producer's MessageSent (like the server's clear_input) goes to the browsers.
    let clear = json!([{"kind": "MessageSent", "msg_type": "bokeh_event",
        "msg_data": {"type": "event", "name": "clear_input",
                     "values": {"type": "map", "entries": [["model", {"id": "p1059"}]]}}}]);
    producer.patch_ok(clear.clone()).await;
    for b in [&mut b1, &mut b2] {
        let m = b.expect("PATCH-DOC").await;
        assert_eq!(m.events(), clear.as_array().expect("list").as_slice());
    }
    for c in [producer, b1, b2] {
        c.close().await;
    }
}

// ---------------------------------------------------------------------------------------
// Tests: bad input
// ---------------------------------------------------------------------------------------

fn text(s: &str) -> Message {
    Message::text(s.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn protocol_violations_close_only_the_offender() {
    let port = start(config()).await;
    let mut healthy = Healthy::new(port).await;
    let victim = "victim";

    // A binary fragment where the header is expected.
    let mut c = connect(port, victim).await;
    c.send_frames(vec![Message::binary(vec![1u8, 2, 3])]).await;
    c.expect_close(1002).await;
    healthy.check("a binary header").await;

    // A malformed buffer header.
    let mut c = connect(port, victim).await;
    c.send_frames(vec![
        text(r#"{"msgid":"m1","msgtype":"PATCH-DOC","num_buffers":1}"#),
        text("{}"),
        text(r#"{"events":[]}"#),
        text(r#"{"id":"0","extra":true}"#),
    ])
    .await;
    c.expect_close(1002).await;
    healthy.check("a malformed buffer header").await;

    // An unknown msgtype.
    let mut c = connect(port, victim).await;
    c.send_frames(vec![
        text(r#"{"msgid":"m1","msgtype":"NOPE"}"#),
        text("{}"),
        text("{}"),
    ])
    .await;
    c.expect_close(1002).await;
    healthy.check("an unknown msgtype").await;

    // A message type only the server sends.
    let mut c = connect(port, victim).await;
    c.send(MsgType::Ack, &json!({}), &[]).await;
    c.expect_close(1002).await;
    healthy.check("an ACK from a client").await;

    // Content that is not JSON at all is a framing error (Bokeh: close 10001).
    let mut c = connect(port, victim).await;
    c.send_frames(vec![
        text(r#"{"msgid":"m1","msgtype":"PATCH-DOC"}"#),
        text("{}"),
        text("{not json"),
    ])
    .await;
    c.expect_close(1002).await;
    healthy.check("content that is not JSON").await;

    // A garbage token: refused at open, no ACK.
    let (mut ws, resp) = try_connect(port, "target", "bokeh, garbage", None)
        .await
        .map(|(ws, r)| (Client::new(ws), r))
        .expect("the handshake completes");
    assert_eq!(resp.status(), 101);
    ws.expect_refused().await;
    healthy.check("a garbage token").await;

    // An expired token cannot create a session...
    let expired = generate_token("never-seen", now() - 10, None, None).expect("token");
    let mut c = connect_raw(port, &expired, None).await;
    c.expect_refused().await;
    healthy.check("an expired token").await;
    // ...but it joins a live one: BokehJS reconnects with its page's token however old
    // the page is (issue 6, hole 9).
    let expired = generate_token(victim, now() - 10, None, None).expect("token");
    let mut c = connect_raw(port, &expired, None).await;
    c.expect_ack().await;
    healthy.check("an expired token for a live session").await;

    // A wrong first subprotocol.
    let (ws, _) = try_connect(
        port,
        "target",
        &format!("notbokeh, {}", token(victim)),
        None,
    )
    .await
    .expect("handshake");
    Client::new(ws).expect_refused().await;
    healthy.check("a wrong first subprotocol").await;

    // Only one subprotocol: nothing is selected, and the socket is closed without ACK.
    let (status, head, client) = raw_handshake(port, "Sec-WebSocket-Protocol: bokeh\r\n").await;
    assert_eq!(status, 101, "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("sec-websocket-protocol"),
        "{head}"
    );
    client.expect("an upgraded socket").expect_refused().await;
    // No subprotocol at all.
    let (status, _, client) = raw_handshake(port, "").await;
    assert_eq!(status, 101);
    client.expect("an upgraded socket").expect_refused().await;
    healthy.check("a single subprotocol").await;

    // A wrong Origin: HTTP 403 on the upgrade.
    match try_connect(
        port,
        "target",
        &format!("bokeh, {}", token(victim)),
        Some("http://evil.example:8000"),
    )
    .await
    {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        Err(e) => panic!("expected HTTP 403, got {e}"),
        Ok(_) => panic!("a foreign Origin was accepted"),
    }
    healthy.check("a wrong Origin").await;
    healthy.client.assert_unique_ids();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handling_errors_reply_error_and_apply_nothing() {
    let port = start(config()).await;
    let mut healthy = Healthy::new(port).await;
    let mut e = connect(port, "errors").await;
    e.push(&plain_push_doc()).await;
    let mut viewer = connect(port, "errors").await;
    viewer.pull().await;
    let x_len = |doc: &Json| -> usize {
        fn find<'a>(j: &'a Json, id: &str) -> Option<&'a Json> {
            match j {
                Json::Object(o)
                    if o.get("id") == Some(&json!(id)) && o.contains_key("attributes") =>
                {
                    Some(j)
                }
                Json::Object(o) => o.values().find_map(|v| find(v, id)),
                Json::Array(a) => a.iter().find_map(|v| find(v, id)),
                _ => None,
            }
        }
        let src = find(doc, "p1008").expect("src");
        let entries = src["attributes"]["data"]["entries"]
            .as_array()
            .expect("entries");
        let x = entries.iter().find(|e| e[0] == "x").expect("x");
        x[1].as_array().map(Vec::len).expect("a list")
    };

    // Unknown model: ERROR naming it; the connection stays open.
    let text = e
        .patch_error(
            &json!({"events": [{"kind": "ModelChanged", "model": {"id": "p-no-such-model"},
                                "attr": "value", "new": 1}]}),
            &[],
        )
        .await;
    assert!(text.contains("p-no-such-model"), "{text}");
    healthy.check("an unknown model").await;

    // Valid JSON that is not a PATCH-DOC content.
    let text = e.patch_error(&json!({"events": 5}), &[]).await;
    assert!(!text.is_empty());
    let text = e.patch_error(&json!([1, 2, 3]), &[]).await;
    assert!(!text.is_empty());
    // An event that does not decode (unknown kind, a reference to a missing buffer).
    e.patch_error(&json!({"events": [{"kind": "Nope"}]}), &[])
        .await;
    e.patch_error(
        &json!({"events": [{"kind": "ModelChanged", "model": {"id": "p1058"}, "attr": "tags",
                            "new": {"type": "bytes", "data": {"id": "missing"}}}]}),
        &[],
    )
    .await;
    // A PUSH-DOC without a doc.
    let id = e.send(MsgType::PushDoc, &json!({"nodoc": 1}), &[]).await;
    e.expect_reply("ERROR", &id).await;
    healthy.check("invalid content").await;

    let stream = |x: Json, y: Json| {
        json!({"events": [{"kind": "ColumnsStreamed", "model": {"id": "p1008"}, "attr": "data",
            "data": {"type": "map", "entries": [["x", x], ["y", y]]}, "rollover": null}]})
    };
    // Strings into a numeric column.
    let text = e
        .patch_error(&stream(json!(["a", "b"]), json!([1, 2])), &[])
        .await;
    assert!(text.contains('x'), "{text}");
    // Unequal lengths.
    e.patch_error(&stream(json!([5, 6]), json!([25])), &[])
        .await;
    // A missing column.
    e.patch_error(
        &json!({"events": [{"kind": "ColumnsStreamed", "model": {"id": "p1008"}, "attr": "data",
            "data": {"type": "map", "entries": [["x", [5]]]}, "rollover": null}]}),
        &[],
    )
    .await;
    // A typed array whose buffer does not match its dtype.
    e.patch_error(
        &stream(
            json!({"type": "typed_array", "array": {"type": "bytes", "data": {"id": "0"}},
                   "order": "little", "dtype": "float64"}),
            json!([1]),
        ),
        &[("0".to_owned(), Bytes::from_static(&[1, 2, 3]))],
    )
    .await;
    healthy.check("bad streams").await;

    // A 2-event PATCH-DOC whose 2nd event is bad: the 1st is not applied either.
    let text = e
        .patch_error(
            &json!({"events": [
                {"kind": "TitleChanged", "title": "must not stick"},
                {"kind": "ModelChanged", "model": {"id": "p-missing"}, "attr": "value", "new": 1}
            ]}),
            &[],
        )
        .await;
    assert!(text.contains("p-missing"), "{text}");
    e.patch_error(
        &json!({"events": [
            {"kind": "ColumnsStreamed", "model": {"id": "p1008"}, "attr": "data",
             "data": {"type": "map", "entries": [["x", [5]], ["y", [25]]]}, "rollover": null},
            {"kind": "ColumnsPatched", "model": {"id": "p1008"}, "attr": "data",
             "patches": {"type": "map", "entries": [["y", [[99, 1]]]]}}
        ]}),
        &[],
    )
    .await;
    let doc = e.pull().await;
    assert_eq!(doc["title"], "pushed doc", "the 1st event was not applied");
    assert_eq!(x_len(&doc), 5, "the stream was not applied");
    healthy.check("a half-bad PATCH-DOC").await;

    // Nothing of the failed PATCH-DOCs reached the viewer: its next message is this one.
    e.patch_ok(json!([{"kind": "TitleChanged", "title": "after the errors"}]))
        .await;
    let m = viewer.expect("PATCH-DOC").await;
    assert_eq!(
        m.events(),
        [json!({"kind": "TitleChanged", "title": "after the errors"})]
    );
    e.assert_unique_ids();
    e.close().await;
    viewer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_messages_close_1009() {
    // Big enough for the fixture PUSH-DOC (6.4 kB) of the healthy session.
    let port = start(Config {
        websocket_max_message_size: 16 * 1024,
        ..config()
    })
    .await;
    let mut healthy = Healthy::new(port).await;
    for (i, frames) in [
        // An oversized content fragment.
        vec![
            text(r#"{"msgid":"m1","msgtype":"PATCH-DOC"}"#),
            text("{}"),
            text(&format!(
                "{{\"events\":[],\"pad\":\"{}\"}}",
                "x".repeat(64 * 1024)
            )),
        ],
        // An oversized binary buffer.
        vec![
            text(r#"{"msgid":"m1","msgtype":"PATCH-DOC","num_buffers":1}"#),
            text("{}"),
            text(r#"{"events":[]}"#),
            text(r#"{"id":"0"}"#),
            Message::binary(vec![0u8; 64 * 1024]),
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = connect(port, "big").await;
        c.send_frames(frames).await;
        c.expect_close(1009).await;
        healthy.check(&format!("oversized message {i}")).await;
    }
    // Just under the limit is fine.
    let mut c = connect(port, "big").await;
    let id = c
        .send(
            MsgType::PatchDoc,
            &json!({"events": [], "pad": "x".repeat(15 * 1024)}),
            &[],
        )
        .await;
    c.expect_reply("OK", &id).await;
    c.close().await;
}

/// A document with one float64 column of `values`, sent as binary buffer "0".
fn column_doc(values: &[f64]) -> (Json, Bytes) {
    let doc = json!({"doc": {
        "version": "3.9.2",
        "title": "big",
        "roots": [{"type": "object", "name": "ColumnDataSource", "id": "cds", "attributes": {
            "data": {"type": "map", "entries": [["y", {
                "type": "ndarray",
                "array": {"type": "bytes", "data": {"id": "0"}},
                "shape": [values.len()],
                "dtype": "float64",
                "order": "little",
            }]]},
        }}],
    }});
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    (doc, Bytes::from(bytes))
}

/// The `y` column's array of a pulled document.
fn pulled_array(reply: &Received) -> &Json {
    let root = &reply.content["doc"]["roots"][0];
    &root["attributes"]["data"]["entries"][0][1]["array"]["data"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn big_messages_arrive_whole_in_fragments() {
    use std::io::Read;

    use base64::Engine;

    // 1.6 MB: the buffer, and a browser's inline base64 content, are several frames each.
    let values: Vec<f64> = (0..200_000).map(|i| f64::from(i) * 0.5).collect();
    let (doc, column) = column_doc(&values);
    assert!(column.len() > 4 * plotwire_server::framing::FRAME_BYTES);
    let port = start(config()).await;
    let mut producer = connect(port, "frag").await;
    let id = producer
        .send(MsgType::PushDoc, &doc, &[("0".into(), column.clone())])
        .await;
    // The pusher gets the replacement events first, then OK.
    loop {
        let m = producer.recv().await;
        if m.msgtype == "OK" {
            assert_eq!(m.reqid.as_deref(), Some(id.as_str()));
            break;
        }
    }

    // A producer gets the column as a binary buffer.
    let mut viewer = connect(port, "frag").await;
    let id = viewer.send(MsgType::PullDocReq, &json!({}), &[]).await;
    let reply = viewer.expect_reply("PULL-DOC-REPLY", &id).await;
    let buffer_id = pulled_array(&reply)["id"]
        .as_str()
        .expect("a buffer reference");
    let (_, pulled) = reply
        .buffers
        .iter()
        .find(|(id, _)| id == buffer_id)
        .expect("the referenced buffer");
    assert_eq!(pulled, &column, "the binary buffer");

    // A browser gets it inline (gzip, base64) in the content.
    let mut browser = connect_browser(port, "frag").await;
    let id = browser.send(MsgType::PullDocReq, &json!({}), &[]).await;
    let reply = browser.expect_reply("PULL-DOC-REPLY", &id).await;
    let inline = pulled_array(&reply).as_str().expect("inline bytes");
    let gz = base64::engine::general_purpose::STANDARD
        .decode(inline)
        .expect("base64");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut raw)
        .expect("gzip");
    assert_eq!(raw, column, "the inline bytes");

    // Small messages still flow after the big ones, in order.
    producer
        .patch_ok(json!([{"kind": "TitleChanged", "title": "after"}]))
        .await;
    for c in [&mut viewer, &mut browser] {
        let m = c.expect("PATCH-DOC").await;
        assert_eq!(
            m.events(),
            [json!({"kind": "TitleChanged", "title": "after"})]
        );
    }
    for c in [producer, viewer, browser] {
        c.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_sent_before_the_ack_is_queued() {
    let port = start(config()).await;
    let mut healthy = Healthy::new(port).await;
    for _ in 0..5 {
        let mut c = connect_raw(port, &token("eager"), None).await;
        let id = c.send(MsgType::PullDocReq, &json!({}), &[]).await;
        c.expect_ack().await;
        let reply = c.expect_reply("PULL-DOC-REPLY", &id).await;
        assert_eq!(reply.content["doc"]["title"], "Bokeh Application");
        c.close().await;
    }
    healthy.check("eager clients").await;
}

// ---------------------------------------------------------------------------------------
// Tests: signed sessions, keep-alive, unused sessions
// ---------------------------------------------------------------------------------------

const SECRET: &str = "fixture-secret-key-0123456789abcdefghijklmnopqrstuvwxyz";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_sessions_need_signed_tokens() {
    let port = start(Config {
        session_ids: SessionIdMode::Signed,
        secret_key: Some(SECRET.into()),
        ..config()
    })
    .await;
    let secret = Some(SECRET.as_bytes());
    let signed_id = sign_session_id("signedsession", SECRET.as_bytes());

    // A correctly signed token.
    let good = generate_token(&signed_id, now() + 300, None, secret).expect("token");
    let mut c = connect_raw(port, &good, None).await;
    c.expect_ack().await;
    assert_eq!(c.pull().await["title"], "Bokeh Application");

    // Unsigned token; signed token for an unsigned id; a signature made with another key.
    let unsigned = generate_token(&signed_id, now() + 300, None, None).expect("token");
    let unsigned_id = generate_token("unsigned-id", now() + 300, None, secret).expect("token");
    let other_key = generate_token(
        &sign_session_id("signedsession", b"another key"),
        now() + 300,
        None,
        Some(b"another key"),
    )
    .expect("token");
    for bad in [unsigned, unsigned_id, other_key] {
        connect_raw(port, &bad, None).await.expect_refused().await;
    }
    // The good connection is unaffected.
    assert_eq!(c.pull().await["title"], "Bokeh Application");

    // Pages: an unsigned id is 403 with a JSON error; a signed one is served.
    let (status, headers, body) = http_get(port, "/target/?bokeh-session-id=unsigned-id").await;
    assert_eq!(status, 403);
    assert!(header(&headers, "content-type").is_some_and(|v| v.contains("json")));
    let err: Json = serde_json::from_slice(&body).expect("a JSON body");
    assert!(
        err["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{err}"
    );
    let (status, _, body) = http_get(port, &format!("/target/?bokeh-session-id={signed_id}")).await;
    assert_eq!(status, 200);
    let page = String::from_utf8(body).expect("UTF-8");
    // The page embeds a token minted for it: for the same session, correctly signed.
    let embedded = token_in(&page);
    assert_eq!(token_session_id(&embedded).expect("a token"), signed_id);
    assert!(check_token_signature(&embedded, secret));
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keep_alive_pings_count_up() {
    let port = start(Config {
        keep_alive: Some(Duration::from_millis(200)),
        ..config()
    })
    .await;
    let mut c = connect(port, "pings").await;
    let started = Instant::now();
    let mut payloads = Vec::new();
    while payloads.len() < 3 {
        match c.next().await {
            Incoming::Ping(p) => payloads.push(String::from_utf8(p.to_vec()).expect("ASCII")),
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    assert_eq!(payloads, ["0", "1", "2"]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The connection still works (pongs were answered by the client).
    assert_eq!(c.pull().await["title"], "Bokeh Application");
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unused_sessions_are_discarded_but_survive_a_quick_reconnect() {
    let port = start(Config {
        check_unused_sessions: Duration::from_millis(100),
        unused_session_lifetime: Duration::from_millis(300),
        ..config()
    })
    .await;
    let sessions = |port| async move {
        let (status, _, body) = http_get(port, "/healthz").await;
        assert_eq!(status, 200);
        serde_json::from_slice::<Json>(&body).expect("JSON")["sessions"]
            .as_u64()
            .expect("sessions")
    };

    let mut a = connect(port, "short-lived").await;
    a.patch_ok(json!([{"kind": "TitleChanged", "title": "kept title"}]))
        .await;
    a.close().await;

    // A quick reconnect (well within the lifetime) finds the same document.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut b = connect(port, "short-lived").await;
    assert_eq!(b.pull().await["title"], "kept title");
    // Connected sessions are never discarded, however long they live.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(b.pull().await["title"], "kept title");
    assert_eq!(sessions(port).await, 1);
    b.close().await;

    // Once everyone left: gone after lifetime + check interval.
    let deadline = Instant::now() + T;
    while sessions(port).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the unused session was never discarded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = connect(port, "short-lived").await;
    let doc = c.pull().await;
    assert_eq!(doc["title"], "Bokeh Application", "a fresh document");
    assert_eq!(doc["roots"], json!([]));
    c.close().await;
}

// ---------------------------------------------------------------------------------------
// Tests: bounded outboxes
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_viewer_is_cut_off_without_slowing_anyone() {
    const N: usize = 2000;
    const ITEMS: usize = 1280; // 10 KiB of float64 per stream
    let test_started = Instant::now();
    let port = start(Config {
        outbox_max_messages: 8,
        ..config()
    })
    .await;
    let mut producer = connect(port, "firehose").await;
    let doc = json!({"doc": {"version": "3.9.2", "title": "firehose", "roots": [
        {"type": "object", "name": "ColumnDataSource", "id": "cds",
         "attributes": {"data": {"type": "map", "entries": [["x", []]]}}}]}});
    producer.push(&doc).await;

    // The stalled viewer: connects, pulls, then never reads again.
    let mut stalled = connect(port, "firehose").await;
    stalled.pull().await;

    // The reading viewer counts the relays in a task and checks their order.
    let mut reader = connect(port, "firehose").await;
    reader.pull().await;
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let reading = tokio::spawn(async move {
        let mut n = 0usize;
        while n < N {
            let m = reader.expect("PATCH-DOC").await;
            assert_eq!(m.kinds(), ["ColumnsStreamed"]);
            let first = f64::from_le_bytes(m.buffers[0].1[..8].try_into().expect("8 bytes"));
            assert_eq!(first, n as f64, "relays arrive in order, none missing");
            n += 1;
            let _ = count_tx.send(n);
        }
        reader
    });

    let stream_event = json!({"events": [{"kind": "ColumnsStreamed", "model": {"id": "cds"},
        "attr": "data", "data": {"type": "map", "entries": [["x", {"type": "typed_array",
        "array": {"type": "bytes", "data": {"id": "0"}}, "order": "little", "dtype": "float64"}]]},
        "rollover": 4096}]});
    let mut slowest = Duration::ZERO;
    for i in 0..N {
        let payload: Vec<u8> = std::iter::repeat_n(i as f64, ITEMS)
            .flat_map(f64::to_le_bytes)
            .collect();
        let sent = Instant::now();
        let id = producer
            .send(
                MsgType::PatchDoc,
                &stream_event,
                &[("0".to_owned(), Bytes::from(payload))],
            )
            .await;
        producer.expect_reply("OK", &id).await;
        slowest = slowest.max(sent.elapsed());
        // Pace the test by the reading viewer (never by the stalled one).
        if i % 8 == 7 {
            within("the reading viewer", count_rx.wait_for(|n| *n > i))
                .await
                .expect("the reader is alive");
        }
    }
    assert!(slowest < Duration::from_secs(1), "an OK took {slowest:?}");
    let reader = within("the reader to finish", reading)
        .await
        .expect("reader task");

    // The stalled viewer was cut off: reading it now gives what was queued, then a close
    // with 1013 (or the end of the stream).
    // (2000 x 10 KiB is far more than the default socket buffers hold: tcp_wmem max 4 MiB,
    // and a receive buffer that is never read does not grow.)
    let (close, relays) = stalled.closing().await;
    assert!(relays < N, "the stalled viewer got every relay ({relays})");
    assert!(matches!(close, Some(Some(1013)) | None), "close {close:?}");

    // The session is fine: the producer and the reader still talk.
    producer
        .patch_ok(json!([{"kind": "TitleChanged", "title": "still alive"}]))
        .await;
    let mut reader = reader;
    assert_eq!(reader.expect("PATCH-DOC").await.kinds(), ["TitleChanged"]);
    assert!(
        test_started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        test_started.elapsed()
    );
    producer.close().await;
    reader.close().await;
}

// ---------------------------------------------------------------------------------------
// Tests: HTTP
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_routes() {
    let port = start(config()).await;

    let (status, headers, body) = http_get(port, "/healthz").await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").is_some_and(|v| v.contains("application/json")));
    let health: Json = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(health["status"], "ok");

    let (status, _, body) = http_get(port, "/target/metadata").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Json>(&body).expect("JSON"),
        json!({"url": "/target", "data": {}})
    );

    let (status, headers, body) = http_get(port, "/target/autoload.js").await;
    assert_eq!(status, 400);
    assert!(header(&headers, "content-type").is_some_and(|v| v.contains("json")));
    let err: Json = serde_json::from_slice(&body).expect("JSON");
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|e| e.contains("bokeh-autoload-element")),
        "{err}"
    );

    let (status, headers, body) = http_get(port, "/static/js/bokeh.min.js?v=x").await;
    assert_eq!(status, 200);
    let cache = header(&headers, "cache-control").expect("Cache-Control");
    let max_age: u64 = cache
        .split(',')
        .find_map(|p| p.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .expect("max-age");
    assert!(max_age >= 315_360_000, "{cache}");
    assert!(header(&headers, "content-type").is_some_and(|v| v.contains("javascript")));
    assert!(body.len() > 100_000, "the bundle ({} bytes)", body.len());

    // A page creates its session and embeds a token for it.
    let (status, _, body) = http_get(port, "/target/?bokeh-session-id=abc").await;
    assert_eq!(status, 200);
    let page = String::from_utf8(body).expect("UTF-8");
    assert_eq!(token_session_id(&token_in(&page)).expect("a token"), "abc");

    // A pushed session: its pages embed a token minted at load, for that session (issue
    // 6, hole 9: never the pusher's, which expires).
    let pusher_token = token("pushed-page");
    let mut pusher = connect_raw(port, &pusher_token, None).await;
    pusher.expect_ack().await;
    pusher.push(&plain_push_doc()).await;
    let (status, _, body) = http_get(port, "/target/?bokeh-session-id=pushed-page").await;
    assert_eq!(status, 200);
    let page = String::from_utf8(body).expect("UTF-8");
    let embedded = decode_token_claims(&token_in(&page)).expect("a token");
    assert_eq!(embedded.session_id, "pushed-page");
    assert!(
        embedded.session_expiry.is_some_and(|e| e >= now() + 299),
        "{embedded:?}"
    );
    assert!(page.contains("p1062"), "the page names the root");
    assert!(page.contains("<title>pushed doc</title>"), "the page title");

    // The index lists both sessions.
    let (status, _, body) = http_get(port, "/").await;
    assert_eq!(status, 200);
    let index = String::from_utf8(body).expect("UTF-8");
    assert!(index.contains("/target/?bokeh-session-id=abc"), "{index}");
    assert!(
        index.contains("/target/?bokeh-session-id=pushed-page"),
        "{index}"
    );
    pusher.close().await;
}

/// The token a served page embeds.
fn token_in(page: &str) -> String {
    let at = page.find("\"token\"").expect("a token in the page");
    let rest = &page[at + 7..];
    let start = rest.find('"').expect("token value") + 1;
    let end = start + rest[start..].find('"').expect("token end");
    rest[start..end].to_owned()
}
