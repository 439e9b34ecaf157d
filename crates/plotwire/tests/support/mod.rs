//! The harness of the tests that run the real `plotwire serve` process on a data dir:
//! spawning it, killing it with SIGKILL, and bounded HTTP/1.1 requests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bound on every single request.
pub const T: Duration = Duration::from_secs(10);

/// A running `plotwire serve` on a data dir, killed (SIGKILL) on drop.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Its HTTP port.
    pub port: u16,
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Spawns `plotwire serve` on `dir` with `args`, on a free port.
    pub fn spawn(dir: &Path, args: &[&str]) -> (Child, u16) {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_plotwire"));
        cmd.args([
            "serve",
            "--address",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir)
        .args(["--log-level", "warn"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        for (key, _) in std::env::vars() {
            if key.starts_with("PLOTWIRE_") || key.starts_with("BOKEH_") {
                cmd.env_remove(key);
            }
        }
        (cmd.spawn().expect("spawn plotwire"), port)
    }

    /// Spawns the server and waits (at most 30 s) until it answers `/healthz`.
    pub async fn start(dir: &Path, args: &[&str]) -> Server {
        let (child, port) = Server::spawn(dir, args);
        let mut server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = request(port, "GET", "/healthz", None, None).await {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("plotwire exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "plotwire did not start");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Kills the server with SIGKILL and reaps it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on its own connection: the status and the JSON body (or
/// `null`). An error means no answer came (refused, reset, timed out).
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Json>,
    key: Option<&str>,
) -> std::io::Result<(u16, Json)> {
    let go = async {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let body = body.map(Json::to_string).unwrap_or_default();
        let key = key
            .map(|k| format!("Idempotency-Key: {k}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{key}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let status: u16 = raw
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("no HTTP answer"))?;
        let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        Ok((status, serde_json::from_str(body).unwrap_or(Json::Null)))
    };
    tokio::time::timeout(T, go)
        .await
        .map_err(|_| std::io::Error::other("timed out"))?
}

/// A request that must be answered 2xx: its JSON body.
pub async fn ok(port: u16, method: &str, path: &str, body: Option<&Json>) -> Json {
    let (status, answer) = request(port, method, path, body, None).await.unwrap();
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {answer}"
    );
    answer
}

/// The values of column `v` of source `source`, in order.
pub async fn column(port: u16, doc: &str, source: &str) -> Vec<i64> {
    let read = ok(
        port,
        "GET",
        &format!("/api/v1/documents/{doc}/sources/{source}"),
        None,
    )
    .await;
    read["data"]["v"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}
