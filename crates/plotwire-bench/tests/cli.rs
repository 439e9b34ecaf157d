//! The bench's command line. Having an integration test also makes `cargo test` build the
//! bench binary, which the CI smoke run (`scripts/test.sh`) then runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn help_lists_every_workload_and_the_quick_mode() {
    let out = Command::new(env!("CARGO_BIN_EXE_plotwire-bench"))
        .arg("--help")
        .output()
        .expect("run plotwire-bench");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--quick",
        "--workload",
        "ingest",
        "fanout",
        "rest-ingest",
        "soak",
        "store",
        "lod",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[test]
fn an_unknown_workload_is_refused_with_the_choices() {
    let out = Command::new(env!("CARGO_BIN_EXE_plotwire-bench"))
        .args(["--workload", "nope"])
        .output()
        .expect("run plotwire-bench");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope") && err.contains("ingest"), "{err}");
}

#[test]
fn lod_runs_at_a_tiny_size_and_prints_every_figure() {
    let out = Command::new(env!("CARGO_BIN_EXE_plotwire-bench"))
        .args(["lod", "--points", "3e5", "--queries", "5", "--width", "200"])
        .output()
        .expect("run plotwire-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "build:",
        "memory:",
        "query, procedural y:",
        "query breakdown",
        "full-scan M4",
        "scan/pyramid",
        "streaming:",
        "query, x and y in memory",
    ] {
        assert!(stdout.contains(needle), "{needle} missing from:\n{stdout}");
    }
}

#[test]
fn lod_refuses_a_zero_width() {
    let out = Command::new(env!("CARGO_BIN_EXE_plotwire-bench"))
        .args(["lod", "--width", "0"])
        .output()
        .expect("run plotwire-bench");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--width"), "{err}");
}
