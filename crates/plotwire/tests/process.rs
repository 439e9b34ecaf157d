//! The real `plotwire serve` process on 127.0.0.1: signals and graceful shutdown, a
//! stdout nobody reads, and peers that go silent (issue 6, holes 5, 7 and 10). Each test
//! names the hole it covers and says why the code before the issue (5a297e7) fails it.
//! Every wait is bounded, and every spawned server is killed when its test ends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::future::Future;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use plotwire_protocol::frame::{Assembler, Fragment};
use plotwire_protocol::token::generate_token;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The bound on every single wait.
const T: Duration = Duration::from_secs(5);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(T, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {T:?} waiting for {what}"),
    }
}

// ---------------------------------------------------------------------------------------
// The process
// ---------------------------------------------------------------------------------------

/// A running `plotwire serve`, killed on drop if it is still running.
struct Server {
    child: Child,
    port: u16,
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("local addr")
        .port()
}

impl Server {
    /// Starts `plotwire serve` with `args` (and stdout as given) and waits until it
    /// answers `/healthz`.
    async fn start(args: &[&str], stdout: Stdio) -> Server {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_plotwire"));
        cmd.args([
            "serve",
            "--address",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit());
        for (key, _) in std::env::vars() {
            if key.starts_with("PLOTWIRE_") || key.starts_with("BOKEH_") {
                cmd.env_remove(key);
            }
        }
        // In memory unless the test names a data dir (the flag wins over the variable).
        cmd.env("PLOTWIRE_DATA_DIR", "none");
        let child = cmd.spawn().expect("spawn plotwire");
        let server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Ok((200, _))) =
                tokio::time::timeout(Duration::from_secs(1), try_get(port, "/healthz")).await
            {
                return server;
            }
            assert!(Instant::now() < deadline, "plotwire did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name}");
    }

    /// Waits at most `bound` for the process to exit.
    async fn exit_within(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "plotwire still running {bound:?} after the signal; its threads: {}",
                threads(self.child.id())
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Each thread of process `pid` and what it waits in (Linux; best effort), for failures.
fn threads(pid: u32) -> String {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return "unknown".into();
    };
    let mut out = Vec::new();
    for task in dir.flatten() {
        let read = |f: &str| {
            std::fs::read_to_string(task.path().join(f))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let syscall = read("syscall");
        let nr = syscall.split_whitespace().next().unwrap_or("?").to_owned();
        out.push(format!(
            "{} in {} (syscall {nr})",
            read("comm"),
            read("wchan")
        ));
    }
    out.join(", ")
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

/// A GET with `Connection: close`: status and body.
async fn try_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

async fn get(port: u16, path: &str) -> String {
    let (status, body) = within(&format!("GET {path}"), try_get(port, path))
        .await
        .expect("GET");
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn token(session_id: &str) -> String {
    generate_token(session_id, now() + 300, None, None).expect("token")
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a websocket delivered next.
#[derive(Debug, PartialEq)]
enum Got {
    /// A whole Bokeh message: its msgtype.
    Msg(String),
    Ping,
    /// A close frame and its code (`None`: no status code).
    Close(Option<u16>),
    /// The stream ended or failed without a close frame.
    End,
}

struct Client {
    ws: Ws,
    asm: Assembler,
}

impl Client {
    /// Opens a websocket to session `session` of app `target` with `["bokeh", token]`.
    async fn open(port: u16, protocols: &str) -> Client {
        let mut req = format!("ws://127.0.0.1:{port}/target/ws")
            .into_client_request()
            .expect("request");
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols.parse().expect("header"));
        let (ws, _) = within(
            "the websocket handshake",
            tokio_tungstenite::connect_async(req),
        )
        .await
        .expect("handshake");
        Client {
            ws,
            asm: Assembler::default(),
        }
    }

    /// Opens a websocket to `session` and waits for the ACK.
    async fn connect(port: u16, session: &str) -> Client {
        let mut c = Client::open(port, &format!("bokeh, {}", token(session))).await;
        assert_eq!(c.next().await, Got::Msg("ACK".into()));
        c
    }

    async fn next(&mut self) -> Got {
        within("the next message", async {
            loop {
                let fragment = match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => Fragment::Text(Bytes::from(t)),
                    Some(Ok(Message::Binary(b))) => Fragment::Binary(b),
                    Some(Ok(Message::Ping(_))) => return Got::Ping,
                    Some(Ok(Message::Close(f))) => return Got::Close(f.map(|f| u16::from(f.code))),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return Got::End,
                };
                if let Some(raw) = self.asm.push(fragment).expect("valid framing") {
                    return Got::Msg(raw.header.msgtype);
                }
            }
        })
        .await
    }

    /// The next Bokeh message or the end of the connection, pings skipped.
    async fn next_non_ping(&mut self) -> Got {
        loop {
            match self.next().await {
                Got::Ping => continue,
                other => return other,
            }
        }
    }

    /// Sends a Bokeh message with `content` and no buffers.
    async fn send(&mut self, msgid: &str, msgtype: &str, content: &str) {
        within("sending", async {
            for f in [
                format!(r#"{{"msgid":"{msgid}","msgtype":"{msgtype}"}}"#),
                "{}".to_owned(),
                content.to_owned(),
            ] {
                self.ws.feed(Message::text(f)).await.expect("send");
            }
            self.ws.flush().await.expect("flush");
        })
        .await;
    }

    /// After the server's close frame: reads on, which sends tungstenite's close reply (as
    /// a browser answers a close), until the server ends the connection.
    async fn answer_close(&mut self) {
        within("the end after the close handshake", async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// A PULL-DOC-REQ round trip.
    async fn pull(&mut self) {
        self.send("pull", "PULL-DOC-REQ", "{}").await;
        assert_eq!(
            self.next_non_ping().await,
            Got::Msg("PULL-DOC-REPLY".into())
        );
    }
}

// ---------------------------------------------------------------------------------------
// Hole 7: signals and graceful shutdown
// ---------------------------------------------------------------------------------------

/// The `--shutdown-grace` of the shutdown tests, in milliseconds.
const GRACE_MS: u64 = 3000;

// Hole 7: SIGTERM killed the process outright (only Ctrl-C was handled) and neither signal
// closed websockets: clients saw the TCP connection drop, not close 1001. Now both close
// every websocket with 1001 and exit successfully within --shutdown-grace, even with a
// request that never finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_close_websockets_with_1001_and_exit_within_the_grace() {
    for signal in ["TERM", "INT"] {
        let mut server = Server::start(
            &[
                "--keep-alive",
                "0",
                "--shutdown-grace",
                &GRACE_MS.to_string(),
            ],
            Stdio::null(),
        )
        .await;
        let mut client = Client::connect(server.port, "shutdown").await;
        client.pull().await;
        // A request whose headers never end: the grace period, not it, decides the exit.
        let mut stuck = within("connect", TcpStream::connect(("127.0.0.1", server.port)))
            .await
            .expect("connect");
        within(
            "write",
            stuck.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"),
        )
        .await
        .expect("write");

        let signalled = Instant::now();
        server.signal(signal);
        assert_eq!(
            client.next_non_ping().await,
            Got::Close(Some(u16::from(CloseCode::Away))),
            "SIG{signal}: close 1001"
        );
        assert!(
            signalled.elapsed() < Duration::from_secs(2),
            "SIG{signal}: the close came only after {:?}",
            signalled.elapsed()
        );
        client.answer_close().await;
        let status = server
            .exit_within(Duration::from_millis(GRACE_MS) + Duration::from_secs(2))
            .await;
        assert!(status.success(), "SIG{signal}: exit status {status:?}");
        drop(stuck);
    }
}

// Hole 7: with nothing left open, the shutdown does not sit out the whole grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_with_only_websockets_open_is_quick() {
    let mut server = Server::start(
        &["--keep-alive", "0", "--shutdown-grace", "20000"],
        Stdio::null(),
    )
    .await;
    let mut a = Client::connect(server.port, "quick").await;
    let mut b = Client::connect(server.port, "quick-other").await;
    server.signal("TERM");
    for c in [&mut a, &mut b] {
        assert_eq!(
            c.next_non_ping().await,
            Got::Close(Some(u16::from(CloseCode::Away)))
        );
        c.answer_close().await;
    }
    let status = server.exit_within(Duration::from_secs(5)).await;
    assert!(status.success(), "exit status {status:?}");
}

// A SIGHUP's default action ends a process: `systemctl reload` (the unit's ExecReload)
// of a server with neither --auth-file nor --ssl-certfile used to stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_with_nothing_to_reload_leaves_the_server_running() {
    let mut server = Server::start(&[], Stdio::null()).await;
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "SIGHUP stopped the server"
    );
    assert!(get(server.port, "/healthz").await.contains("ok"));
}

// ---------------------------------------------------------------------------------------
// Hole 10: logging never blocks
// ---------------------------------------------------------------------------------------

/// Bad PATCH-DOCs sent in the flood: more than tracing-appender's 128 000 buffered lines,
/// so its lossy mode is reached, not only its buffer.
const FLOOD: usize = 150_000;

/// Bad messages in flight at once.
const WINDOW: usize = 1000;

/// Starts a server whose stdout is piped and never read (the pipe fills after 64 KiB),
/// with the warning rate limit lifted, and floods it with [`FLOOD`] bad PATCH-DOCs, each
/// a warning. Returns the server and the flooding connection.
async fn flooded_server() -> (Server, Client) {
    let server = Server::start(
        &[
            "--keep-alive",
            "0",
            "--warnings-per-second",
            "1000000000",
            "--outbox-max-messages",
            "1000000",
            "--shutdown-grace",
            "3000",
        ],
        Stdio::piped(),
    )
    .await;
    let started = Instant::now();
    let mut flooder = Client::connect(server.port, "flood").await;
    let header = Message::text(r#"{"msgid":"bad","msgtype":"PATCH-DOC"}"#);
    let meta = Message::text("{}");
    let content = Message::text(r#"{"events":5}"#);
    let mut sent = 0;
    while sent < FLOOD {
        let n = WINDOW.min(FLOOD - sent);
        within("sending bad PATCH-DOCs", async {
            for _ in 0..n {
                for f in [&header, &meta, &content] {
                    flooder.ws.feed(f.clone()).await.expect("send");
                }
            }
            flooder.ws.flush().await.expect("flush");
        })
        .await;
        for _ in 0..n {
            assert_eq!(
                flooder.next_non_ping().await,
                Got::Msg("ERROR".into()),
                "after {sent} bad messages"
            );
        }
        sent += n;
    }
    eprintln!("{FLOOD} warnings in {:?}", started.elapsed());
    (server, flooder)
}

// Hole 10: every log line was a synchronous write to stdout, so with a stdout pipe nobody
// reads (64 KiB) the first client-caused warnings past it blocked the runtime workers and
// the whole server hung. Now lines go through a lossy background writer; with the rate
// limit lifted, 150 000 warnings must still leave the server answering at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdout_nobody_reads_never_blocks_the_server() {
    let (server, mut flooder) = flooded_server().await;
    let port = server.port;
    // The server answers at once: HTTP, a fresh session, and the flooded connection.
    let asked = Instant::now();
    let health = get(port, "/healthz").await;
    assert!(health.contains("\"ok\""), "{health}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "/healthz took {:?}",
        asked.elapsed()
    );
    let mut fresh = Client::connect(port, "fresh-after-flood").await;
    fresh.pull().await;
    flooder.pull().await;
}

// Hole 10 (shutdown): once the background writer's 128 000-line buffer is full, dropping
// tracing-appender's WorkerGuard at exit times out sending its shutdown message and then
// println!s the failure to stdout, whose lock the writer thread holds while blocked on
// the full pipe: the main thread waits forever and SIGTERM never ends the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_with_a_blocked_stdout_still_exits() {
    let (mut server, mut flooder) = flooded_server().await;
    server.signal("TERM");
    assert_eq!(
        flooder.next_non_ping().await,
        Got::Close(Some(u16::from(CloseCode::Away)))
    );
    flooder.answer_close().await;
    let status = server.exit_within(Duration::from_secs(5)).await;
    assert!(status.success(), "exit status {status:?}");
}

// ---------------------------------------------------------------------------------------
// Hole 5: dead peers
// ---------------------------------------------------------------------------------------

/// The index's connection count of session `id` of app `target`, if it is listed.
async fn connections(port: u16, id: &str) -> Option<usize> {
    let index = get(port, "/").await;
    let at = index.find(&format!("target / {id}</a>"))?;
    let rest = &index[at..];
    let detail = rest.find("class=\"detail\">")? + "class=\"detail\">".len();
    rest[detail..].split_whitespace().next()?.parse().ok()
}

// Hole 5: a peer that stopped reading (and so never answered a ping) kept its connection,
// its outbox and its session until the kernel's TCP timeouts, if ever. With
// --dead-peer-timeout 800 it must be dropped within about a second, while a peer that
// keeps reading (tungstenite answers pings) stays connected past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_dropped_and_a_live_one_is_kept() {
    let server = Server::start(
        &[
            "--keep-alive",
            "200",
            "--dead-peer-timeout",
            "800",
            "--unused-session-lifetime",
            "60000",
        ],
        Stdio::null(),
    )
    .await;
    let port = server.port;
    let opened = Instant::now();
    // Reads its ACK, then nothing.
    let mut silent = Client::connect(port, "silent").await;
    // Keeps reading (and so answering pings) for 4 s.
    let mut live = Client::connect(port, "live").await;
    let reader = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(4);
        let mut pings = 0;
        while let Ok(got) = tokio::time::timeout_at(until.into(), live.next()).await {
            match got {
                Got::Ping => pings += 1,
                other => panic!("the live peer got {other:?}"),
            }
        }
        (live, pings)
    });
    assert_eq!(connections(port, "silent").await, Some(1));

    let dropped = within("the silent peer to be dropped", async {
        loop {
            if connections(port, "silent").await == Some(0) {
                return opened.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        dropped < Duration::from_secs(3),
        "dropped only after {dropped:?}"
    );
    assert_eq!(connections(port, "live").await, Some(1));

    // The live peer is still there after 4 s, well past the timeout, and it works.
    let (mut live, pings) = within("the live reader", reader).await.expect("reader");
    assert!(pings >= 10, "only {pings} pings in 4 s at --keep-alive 200");
    assert_eq!(connections(port, "live").await, Some(1));
    live.pull().await;

    // The silent peer, reading again, finds its connection over: pings, then the end.
    loop {
        match silent.next().await {
            Got::Ping => continue,
            Got::Close(_) | Got::End => break,
            Got::Msg(m) => panic!("the dropped peer got {m}"),
        }
    }
}
