//! TLS on the server's own listener, with self-signed certificates made here: HTTPS and
//! wss:// work, plain HTTP to the TLS port gets no HTTP answer and harms nothing, a silent
//! client does not hold up other handshakes, a reload swaps the certificate for new
//! connections while an open websocket goes on, and unusable files get errors that name
//! them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use plotwire_server::tls::{TlsCerts, TlsError, TlsListener};
use plotwire_server::{Config, TlsFiles};
use rustls::pki_types::{CertificateDer, ServerName};
use support::{token, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A self-signed certificate for 127.0.0.1 and localhost: its DER and both PEM files.
struct SelfSigned {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn self_signed(name: &str) -> SelfSigned {
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    SelfSigned {
        der: cert.der().clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn write_files(dir: &Path, cert: &SelfSigned) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, &cert.cert_pem).unwrap();
    std::fs::write(&files.key, &cert.key_pem).unwrap();
    files
}

/// Starts the server with TLS on 127.0.0.1 and an OS-chosen port.
async fn start_tls(files: TlsFiles) -> (u16, Arc<TlsCerts>) {
    let certs = TlsCerts::load(files).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let app = plotwire_server::router(Config {
        port,
        ..support::config()
    })
    .unwrap();
    let listener = TlsListener::new(tcp, 100, certs.clone()).unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, certs)
}

/// A TLS connection to `port` that trusts only `trusted`.
async fn tls_connect(
    port: u16,
    trusted: &CertificateDer<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = within("connect", TcpStream::connect(("127.0.0.1", port))).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    within(
        "the TLS handshake",
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
}

/// `GET path` over TLS: the status and body.
async fn https_get(port: u16, trusted: &CertificateDer<'static>, path: &str) -> (u16, String) {
    let mut tls = tls_connect(port, trusted).await.expect("TLS handshake");
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    within("write", tls.write_all(req.as_bytes()))
        .await
        .unwrap();
    let mut raw = Vec::new();
    // The server may end TLS without close_notify after Connection: close.
    let _ = within("read", tls.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    (status, text)
}

type Wss = tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>;

/// A Bokeh websocket over TLS to the `target` app, after its ACK.
async fn wss_connect(port: u16, trusted: &CertificateDer<'static>) -> Wss {
    let tls = tls_connect(port, trusted).await.expect("TLS handshake");
    let mut req = format!("wss://127.0.0.1:{port}/target/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("bokeh, {}", token("tls-session")).parse().unwrap(),
    );
    let (mut ws, resp) = within(
        "the websocket handshake",
        tokio_tungstenite::client_async(req, tls),
    )
    .await
    .expect("websocket handshake");
    assert_eq!(resp.status(), 101);
    let first = within("the ACK", ws.next()).await.unwrap().unwrap();
    let header = first.into_text().unwrap();
    assert!(header.contains("\"msgtype\":\"ACK\""), "{header}");
    ws
}

/// The websocket still carries traffic: a ping gets its pong.
async fn ping_pong(ws: &mut Wss) {
    within(
        "ping",
        ws.send(Message::Ping(b"still there".to_vec().into())),
    )
    .await
    .unwrap();
    within("the pong", async {
        loop {
            match ws.next().await.expect("open").expect("frame") {
                Message::Pong(p) => return assert_eq!(&p[..], b"still there"),
                _ => continue,
            }
        }
    })
    .await;
}

#[tokio::test]
async fn pages_rest_and_websockets_work_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed("plotwire test");
    let (port, _) = start_tls(write_files(dir.path(), &cert)).await;

    let tls = tls_connect(port, &cert.der).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop(tls);

    let (status, _) = https_get(port, &cert.der, "/").await;
    assert_eq!(status, 200);
    let (status, body) = https_get(port, &cert.der, "/api/v1/documents").await;
    assert_eq!(status, 200, "{body}");
    let mut ws = wss_connect(port, &cert.der).await;
    ping_pong(&mut ws).await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_no_http_answer_and_harms_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed("plotwire test");
    let (port, _) = start_tls(write_files(dir.path(), &cert)).await;
    for _ in 0..3 {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        // The server answers with a TLS alert, or closes, or resets.
        let _ = within("the server to close", tcp.read_to_end(&mut raw)).await;
        assert!(!raw.starts_with(b"HTTP/"), "{raw:?}");
    }
    let (status, _) = https_get(port, &cert.der, "/").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_silent_client_does_not_hold_up_another_clients_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed("plotwire test");
    let (port, _) = start_tls(write_files(dir.path(), &cert)).await;
    // These connect and send nothing; the handshake timeout (10 s) is longer than any
    // wait here (5 s), so the request below only succeeds if handshakes run side by side.
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = https_get(port, &cert.der, "/").await;
    assert_eq!(status, 200);
    drop(silent);
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_to_new_connections_and_keeps_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let a = self_signed("certificate A");
    let b = self_signed("certificate B");
    let files = write_files(dir.path(), &a);
    let (port, certs) = start_tls(files.clone()).await;
    let mut ws = wss_connect(port, &a.der).await;

    write_files(dir.path(), &b);
    certs.reload().unwrap();
    let tls = tls_connect(port, &b.der).await.expect("B is served");
    let served = tls.get_ref().1.peer_certificates().unwrap();
    assert_eq!(served[0], b.der);
    drop(tls);
    assert!(
        tls_connect(port, &a.der).await.is_err(),
        "A is still served"
    );
    ping_pong(&mut ws).await;

    // A reload that fails keeps what is served.
    std::fs::write(&files.key, "not a key").unwrap();
    let err = certs.reload().unwrap_err();
    assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
    assert!(err.to_string().contains("key.pem"), "{err}");
    let (status, _) = https_get(port, &b.der, "/").await;
    assert_eq!(status, 200);
    ping_pong(&mut ws).await;
}

#[test]
fn unusable_files_get_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let a = self_signed("certificate A");
    let b = self_signed("certificate B");
    let files = write_files(dir.path(), &a);
    let with = |cert: &Path, key: &Path| {
        TlsCerts::load(TlsFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
        .unwrap_err()
    };

    let missing = dir.path().join("missing.pem");
    let err = with(&missing, &files.key);
    assert!(matches!(err, TlsError::Read { .. }), "{err}");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    // The key given as the certificate: no certificate in it.
    let err = with(&files.key, &files.key);
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    assert!(err.to_string().contains("key.pem"), "{err}");

    let err = with(&files.cert, &files.cert);
    assert!(matches!(err, TlsError::NoKey { .. }), "{err}");

    let encrypted = dir.path().join("encrypted.pem");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = with(&files.cert, &encrypted);
    assert!(matches!(err, TlsError::EncryptedKey { .. }), "{err}");
    assert!(err.to_string().contains("openssl pkey -in"), "{err}");

    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, &b.key_pem).unwrap();
    let err = with(&files.cert, &other_key);
    assert!(matches!(err, TlsError::BadKey { .. }), "{err}");
    assert!(err.to_string().contains("does not belong"), "{err}");

    assert!(TlsCerts::load(files).is_ok());
}
