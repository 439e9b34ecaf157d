//! `plotwire serve --config plotwire.toml` on the real binary: the file sets any flag,
//! its environment variable overrides the file, and a flag overrides both; a file with an
//! unknown setting or a bad value stops the server with a message that names it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plotwire"));
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("PLOTWIRE_") || key.starts_with("BOKEH_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// The status of `GET path` on `port`, or `None` if nothing answers.
fn status(port: u16, path: &str) -> Option<u16> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).ok()?;
    raw.split_whitespace().nth(1)?.parse().ok()
}

/// Starts the server and waits (at most 20 s) until `path` answers 200 on `port`.
fn serve_until(port: u16, path: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut child = command(args, env).stderr(Stdio::inherit()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if status(port, path) == Some(200) {
            return child;
        }
        if let Ok(Some(exit)) = child.try_wait() {
            panic!("plotwire exited: {exit}");
        }
        assert!(Instant::now() < deadline, "{path} never answered 200");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("plotwire.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn flags_then_environment_then_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = write(
        dir.path(),
        &format!(
            "port = {port}\naddress = \"127.0.0.1\"\nprefix = \"/fromfile\"\ndata_dir = \"none\"\n\
             allow-websocket-origin = [\"a.example:80\", \"b.example:80\"]\n"
        ),
    );
    let serve = ["serve", "--config", file.as_str()];
    let child = serve_until(port, "/fromfile/healthz", &serve, &[]);
    assert_eq!(status(port, "/healthz"), Some(404));
    stop(child);

    let child = serve_until(
        port,
        "/fromenv/healthz",
        &serve,
        &[("PLOTWIRE_PREFIX", "/fromenv")],
    );
    assert_eq!(status(port, "/fromfile/healthz"), Some(404));
    stop(child);

    let with_flag = ["serve", "--config", file.as_str(), "--prefix", "/fromflag"];
    let child = serve_until(
        port,
        "/fromflag/healthz",
        &with_flag,
        &[("PLOTWIRE_PREFIX", "/fromenv")],
    );
    stop(child);
}

#[test]
fn the_example_config_file_is_valid() {
    let port = free_port();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/plotwire.toml");
    let port_text = port.to_string();
    let args = [
        "serve",
        "--config",
        example,
        "--address",
        "127.0.0.1",
        "--port",
        port_text.as_str(),
        "--data-dir",
        "none",
    ];
    stop(serve_until(port, "/healthz", &args, &[]));
}

fn refused(text: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), text);
    let out = command(&["serve", "--config", &file], &[])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{text} was accepted");
    out
}

#[test]
fn a_bad_file_stops_the_server_and_names_the_problem() {
    let stderr = |o: Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let unknown = stderr(refused("porrt = 5006\n"));
    assert!(
        unknown.contains("\"porrt\"") && unknown.contains("plotwire serve --help"),
        "{unknown}"
    );
    let bad = stderr(refused("port = \"eighty\"\n"));
    assert!(bad.contains("--port") && bad.contains("eighty"), "{bad}");
    let toml = stderr(refused("port = = 1\n"));
    assert!(toml.contains("not valid TOML"), "{toml}");
    let nested = stderr(refused("[server]\nport = 1\n"));
    assert!(nested.contains("server"), "{nested}");
}
