//! The client subcommands (`publish`, `push`, `get`, `ls`, `events`) as users run them:
//! the real binary, against a real server on 127.0.0.1. Every run of the binary is bounded
//! in time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The bound on one run of the binary.
const RUN_BOUND: Duration = Duration::from_secs(60);

/// A server in a runtime of its own, for as long as the test runs; returns its URL.
fn server() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let config = plotwire_server::Config {
                port,
                keep_alive: None,
                ..plotwire_server::Config::default()
            };
            let app = plotwire_server::router(config).unwrap();
            tx.send(port).unwrap();
            let _ = axum::serve(listener, app).await;
        });
    });
    let port = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    format!("http://127.0.0.1:{port}")
}

/// What a run printed, and how it ended.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `plotwire args...` against `url`, with `stdin` as its input.
fn plotwire(url: &str, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plotwire"))
        .args(args)
        .env("PLOTWIRE_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    // Read both pipes while it runs, so that it never blocks on a full one.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + RUN_BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("plotwire {args:?} ran longer than {RUN_BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Run {
        ok: status.success(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A file in the test's own temporary directory.
fn file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plotwire-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

const SPEC: &str = r#"{"title": "cli", "sources": {"train": {"columns": {"step": "int32", "loss": "float64", "ok": "bool"}}},
 "plots": {"loss": {"kind": "line", "source": "train", "x": "step", "y": "loss"}}, "layout": {"grid": {"loss": [0, 0, 1, 1]}}}"#;

fn publish(url: &str, name: &str) {
    let spec = file(&format!("{}.json", name.replace('/', "_")), SPEC);
    let run = plotwire(url, &["publish", name, spec.to_str().unwrap()], b"");
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), format!("{url}/d/{name}/"));
}

#[test]
fn publish_push_100k_csv_rows_then_read_them_back() {
    let url = server();
    publish(&url, "cli/big");
    let mut csv = String::from("step,loss,ok\n");
    for i in 0..100_000u32 {
        csv.push_str(&format!("{i},{},{}\n", f64::from(i) * 0.5, i % 2 == 0));
    }
    let path = file("big.csv", &csv);
    let run = plotwire(
        &url,
        &["push", "cli/big", "train", path.to_str().unwrap()],
        b"",
    );
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stderr.contains("100000 rows sent"), "{}", run.stderr);

    let got = plotwire(&url, &["get", "cli/big", "train", "--format", "csv"], b"");
    assert!(got.ok, "{}", got.stderr);
    let lines: Vec<&str> = got.stdout.lines().collect();
    assert_eq!(lines.len(), 100_001);
    assert_eq!(lines[0], "loss,ok,step");
    assert_eq!(lines[1], "0.0,true,0");
    assert_eq!(lines[100_000], "49999.5,false,99999");

    let ls = plotwire(&url, &["ls"], b"");
    assert!(ls.ok && ls.stdout.contains("cli/big"), "{}", ls.stdout);
}

#[test]
fn publish_takes_a_retention() {
    let url = server();
    let spec = file("kept.json", SPEC);
    let run = plotwire(
        &url,
        &[
            "publish",
            "cli/kept",
            spec.to_str().unwrap(),
            "--max-rows",
            "2",
        ],
        b"",
    );
    assert!(run.ok, "{}", run.stderr);
    let csv = file(
        "kept.csv",
        "step,loss,ok\n1,0.5,true\n2,0.25,false\n3,0.125,true\n",
    );
    let run = plotwire(
        &url,
        &["push", "cli/kept", "train", csv.to_str().unwrap()],
        b"",
    );
    assert!(run.ok, "{}", run.stderr);
    let got = plotwire(&url, &["get", "cli/kept", "train", "--format", "csv"], b"");
    assert!(got.ok, "{}", got.stderr);
    assert_eq!(
        got.stdout.lines().collect::<Vec<_>>(),
        ["loss,ok,step", "0.25,false,2", "0.125,true,3"]
    );
    let bad = plotwire(
        &url,
        &[
            "publish",
            "cli/kept",
            spec.to_str().unwrap(),
            "--max-age",
            "soon",
        ],
        b"",
    );
    assert!(!bad.ok, "{}", bad.stdout);
    assert!(bad.stderr.contains("max_age"), "{}", bad.stderr);
}

#[test]
fn stdin_ndjson_arrives_in_order() {
    let url = server();
    publish(&url, "cli/nd");
    let rows: String = (0..250)
        .map(|i| {
            format!(
                "{{\"step\": {i}, \"loss\": {}, \"ok\": true}}\n",
                f64::from(i) / 4.0
            )
        })
        .collect();
    let run = plotwire(
        &url,
        &["push", "cli/nd", "train", "-", "--batch-rows", "100"],
        rows.as_bytes(),
    );
    assert!(run.ok, "{}", run.stderr);
    let got = plotwire(&url, &["get", "cli/nd", "train", "--format", "ndjson"], b"");
    let steps: Vec<i64> = got
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, (0..250).collect::<Vec<_>>());
}

#[test]
fn bad_input_stops_with_its_line_and_sends_nothing() {
    let url = server();
    publish(&url, "cli/bad");
    let rows = |run: &Run| run.stdout.lines().count().saturating_sub(1);
    let cases = [
        (
            "ragged.csv",
            "step,loss,ok\n1,0.5,true\n2,0.25\n",
            "line 3: 2 values for 3 columns",
        ),
        (
            "text.csv",
            "step,loss,ok\n1,0.5,true\n2,oops,true\n3,0.1,false\n",
            "line 3: column \"loss\": \"oops\" is not float64",
        ),
    ];
    for (name, content, message) in cases {
        let path = file(name, content);
        let run = plotwire(
            &url,
            &["push", "cli/bad", "train", path.to_str().unwrap()],
            b"",
        );
        assert!(!run.ok, "{name} was accepted");
        assert!(run.stderr.contains(message), "{name}: {}", run.stderr);
        let got = plotwire(&url, &["get", "cli/bad", "train"], b"");
        assert_eq!(rows(&got), 0, "{name}: something was sent: {}", got.stdout);
    }
    let path = file(
        "skip.csv",
        "step,loss,ok\n1,0.5,true\n2,oops,true\n3,0.1,false\n",
    );
    let run = plotwire(
        &url,
        &[
            "push",
            "cli/bad",
            "train",
            path.to_str().unwrap(),
            "--skip-bad-rows",
        ],
        b"",
    );
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stderr.contains("2 rows sent") && run.stderr.contains("1 bad rows skipped"),
        "{}",
        run.stderr
    );

    let unknown = plotwire(
        &url,
        &[
            "push",
            "cli/bad",
            "nope",
            path.to_str().unwrap(),
            "--skip-bad-rows",
        ],
        b"",
    );
    assert!(
        !unknown.ok && unknown.stderr.contains("\"nope\""),
        "{}",
        unknown.stderr
    );
    let schema = plotwire(
        &url,
        &[
            "push",
            "cli/bad",
            "train",
            path.to_str().unwrap(),
            "--schema",
            "loss",
        ],
        b"",
    );
    assert!(
        !schema.ok && schema.stderr.contains("--schema"),
        "{}",
        schema.stderr
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let down = plotwire(&dead, &["ls"], b"");
    assert!(
        !down.ok && down.stderr.contains("cannot reach"),
        "{}",
        down.stderr
    );
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for sub in ["publish", "push", "get", "ls", "events"] {
        let run = plotwire("http://127.0.0.1:1", &[sub, "--help"], b"");
        assert!(run.ok, "{sub} --help");
        assert!(
            run.stdout.contains("Example"),
            "{sub} --help has no example:\n{}",
            run.stdout
        );
        assert!(
            run.stdout.contains("PLOTWIRE_URL"),
            "{sub} --help does not name PLOTWIRE_URL"
        );
    }
}

#[test]
fn follow_sends_appended_lines_in_order_across_a_rotation() {
    let url = server();
    publish(&url, "cli/follow");
    let dir = std::env::temp_dir().join(format!("plotwire-follow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("app.csv");
    std::fs::write(&log, "step,loss,ok\n0,1.0,true\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_plotwire"))
        .args([
            "push",
            "cli/follow",
            "train",
            log.to_str().unwrap(),
            "--follow",
            "--batch-ms",
            "50",
        ])
        .env("PLOTWIRE_URL", &url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let append = |path: &PathBuf, text: &str| {
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    let steps = || -> Vec<i64> {
        let got = plotwire(
            &url,
            &["get", "cli/follow", "train", "--format", "ndjson"],
            b"",
        );
        got.stdout
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                    .as_i64()
                    .unwrap()
            })
            .collect()
    };
    let wait_for = |want: Vec<i64>| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = steps();
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rows {got:?}, waiting for {want:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(vec![0]);
    append(&log, "1,0.5,false\n2,0.25,");
    std::thread::sleep(Duration::from_millis(300));
    append(&log, "true\n");
    wait_for(vec![0, 1, 2]);
    // Rotation: the log is renamed and a new one (with the header again) takes its place.
    std::fs::rename(&log, dir.join("app.csv.1")).unwrap();
    std::fs::write(&log, "step,loss,ok\n3,0.125,true\n").unwrap();
    wait_for(vec![0, 1, 2, 3]);
    append(&log, "4,0.0625,false\n");
    wait_for(vec![0, 1, 2, 3, 4]);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn text_columns_are_pushed_whole() {
    let url = server();
    let spec = file(
        "cli_text.json",
        r#"{"title": "log", "sources": {"log": {"columns": {"t": "float64", "level": "string"}}},
 "plots": {"t": {"kind": "scatter", "source": "log", "x": "t", "y": "t"}}, "layout": {"grid": {"t": [0, 0, 1, 1]}}}"#,
    );
    let run = plotwire(&url, &["publish", "cli/text", spec.to_str().unwrap()], b"");
    assert!(run.ok, "{}", run.stderr);
    let path = file("text.csv", "t,level\n1,info\n2,\"warn, twice\"\n3,error\n");
    let run = plotwire(
        &url,
        &["push", "cli/text", "log", path.to_str().unwrap()],
        b"",
    );
    assert!(run.ok, "{}", run.stderr);
    let ndjson = "{\"t\": 4, \"level\": \"debug\"}\n";
    let run = plotwire(&url, &["push", "cli/text", "log", "-"], ndjson.as_bytes());
    assert!(run.ok, "{}", run.stderr);
    let got = plotwire(&url, &["get", "cli/text", "log", "--format", "ndjson"], b"");
    assert!(got.ok, "{}", got.stderr);
    let levels: Vec<String> = got
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["level"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(levels, ["info", "warn, twice", "error", "debug"]);
    let bad = plotwire(
        &url,
        &["push", "cli/text", "log", "-", "--schema", "level:blob"],
        ndjson.as_bytes(),
    );
    assert!(!bad.ok && bad.stderr.contains("text"), "{}", bad.stderr);
}
