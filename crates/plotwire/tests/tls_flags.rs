//! `--ssl-certfile` and `--ssl-keyfile` on the real binary: both or neither, from flags,
//! Bokeh's environment variables or a `--config` file; unusable files stop the server
//! with a message that names them. (Serving TLS is tested in plotwire-server's
//! `tests/tls.rs` and `tests/e2e/test_tls.py`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output, Stdio};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plotwire"));
    cmd.args(["serve", "--data-dir", "none", "--port", "0"])
        .args(args)
        .stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("PLOTWIRE_") || key.starts_with("BOKEH_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    // Every case here fails at start, before anything is bound.
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn one_file_without_the_other_is_refused() {
    let out = run(&["--ssl-certfile", "cert.pem"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--ssl-keyfile"), "{}", stderr(&out));

    let out = run(&[], &[("BOKEH_SSL_KEYFILE", "key.pem")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--ssl-certfile"), "{}", stderr(&out));
}

#[test]
fn a_missing_file_stops_the_server_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("no-such-cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&key, "").unwrap();
    let out = run(
        &[
            "--ssl-certfile",
            cert.to_str().unwrap(),
            "--ssl-keyfile",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no-such-cert.pem"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_files_can_come_from_the_environment_or_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("env-key.pem");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let out = run(
        &[],
        &[
            ("BOKEH_SSL_CERTFILE", cert.to_str().unwrap()),
            ("BOKEH_SSL_KEYFILE", key.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no certificate in"),
        "{}",
        stderr(&out)
    );

    let toml = dir.path().join("plotwire.toml");
    std::fs::write(
        &toml,
        format!(
            "ssl-certfile = {:?}\nssl-keyfile = {:?}\n",
            dir.path().join("file-cert.pem"),
            dir.path().join("file-key.pem")
        ),
    )
    .unwrap();
    let out = run(&["--config", toml.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("file-cert.pem"), "{}", stderr(&out));
}
