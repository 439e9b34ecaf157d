#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]
//! A reverse proxy's headers over real sockets on 127.0.0.1 (`docs/deploy/README.md`):
//! with `--use-xheaders`, the URLs of an export and the websocket Origin check follow
//! `X-Forwarded-Proto` and `X-Forwarded-Host` from a trusted peer, and only from one.
//! The peer is always 127.0.0.1 here; a trust list without loopback makes it untrusted.

mod support;

use std::net::SocketAddr;

use plotwire_server::forwarded::Forwarding;
use plotwire_server::Config;
use serde_json::json;
use support::*;
use tokio::net::TcpListener;

/// Starts the router as `plotwire_server::serve` does, with the peer address in every
/// request. Returns the port.
async fn start_with_peer(config: Config) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let app = plotwire_server::router(Config { port, ..config }).expect("valid config");
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    port
}

fn forwarding(trusted: &[&str]) -> Config {
    Config {
        forwarding: Forwarding {
            use_xheaders: true,
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        },
        ..config()
    }
}

const PROXY_HEADERS: &str =
    "X-Forwarded-Proto: https\r\nX-Forwarded-Host: plots.example.com\r\nX-Forwarded-For: 203.0.113.7\r\n";

/// The body of `export.html` of a fresh document, asked with [`PROXY_HEADERS`].
async fn exported_page(config: Config) -> (u16, String) {
    let port = start_with_peer(Config {
        prefix: "/plots".into(),
        ..config
    })
    .await;
    let spec = json!({"sources": {"s": {"columns": {"x": "float64"}}}});
    let (status, body) = http_json(port, "PUT", "/plots/api/v1/documents/fw", &spec).await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = http_request(
        port,
        "GET",
        "/plots/api/v1/documents/fw/export.html",
        PROXY_HEADERS,
    )
    .await;
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{body}");
    (port, body)
}

#[tokio::test]
async fn an_export_links_to_the_forwarded_scheme_and_host_from_a_trusted_proxy() {
    let (_, page) = exported_page(forwarding(&[])).await;
    assert!(
        page.contains("https://plots.example.com/plots/api/v1/documents/fw"),
        "the page does not link to the forwarded URL"
    );
    assert!(!page.contains("http://127.0.0.1"));
}

#[tokio::test]
async fn an_export_ignores_forwarding_headers_from_an_untrusted_peer_or_without_xheaders() {
    for config in [forwarding(&["10.0.0.0/8"]), config()] {
        let (port, page) = exported_page(config).await;
        assert!(
            page.contains(&format!(
                "http://127.0.0.1:{port}/plots/api/v1/documents/fw"
            )),
            "the page does not link to the Host the request named"
        );
        assert!(!page.contains("plots.example.com"));
    }
}

#[tokio::test]
async fn the_websocket_origin_check_compares_with_the_forwarded_host_of_a_trusted_proxy() {
    let headers = format!(
        "Origin: https://plots.example.com\r\n{PROXY_HEADERS}Sec-WebSocket-Protocol: bokeh, {}\r\n",
        token("fw-session")
    );
    let trusted = start_with_peer(forwarding(&["127.0.0.1"])).await;
    let (status, head, client) = raw_handshake(trusted, &headers).await;
    assert_eq!(status, 101, "{head}");
    client.expect("upgraded").expect_ack().await;

    let untrusted = start_with_peer(forwarding(&["::1"])).await;
    let (status, head, _) = raw_handshake(untrusted, &headers).await;
    assert_eq!(status, 403, "{head}");
}
