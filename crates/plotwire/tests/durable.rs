//! Durability of published documents (issue 9), on the real `plotwire serve` process
//! and its real SQLite store: what was acknowledged survives `kill -9`, a retried write
//! is applied once across a restart, a second server is refused the data dir, and a
//! full store refuses writes with 507 while keeping what it had. Every wait is bounded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value as Json};
use support::{column, free_port, ok, request, Server, T};

/// Sources the crash test's producers write, one each.
const PRODUCERS: usize = 3;

fn spec() -> Json {
    let mut sources: serde_json::Map<String, Json> = (0..PRODUCERS)
        .map(|p| (format!("p{p}"), json!({"columns": {"v": "int32"}})))
        .collect();
    // With a column of noise, which no codec shrinks.
    sources.insert(
        "noisy".into(),
        json!({"columns": {"v": "int32", "n": "float64"}}),
    );
    json!({
        "title": "durable",
        "sources": sources,
        "plots": {"v": {"kind": "line", "source": "p0", "x": "v", "y": "v"}},
        "layout": {"grid": {"v": [0, 0, 1, 1]}}
    })
}

/// The values of source `p`'s column `v`, in order.
async fn values(port: u16, doc: &str, p: usize) -> Vec<i64> {
    column(port, doc, &format!("p{p}")).await
}

/// `v` counts from `from`; `n` is noise.
fn noisy(from: i64, rows: i64) -> Json {
    let n: Vec<f64> = (from..from + rows)
        .map(|i| {
            ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect();
    json!({"v": (from..from + rows).collect::<Vec<i64>>(), "n": n})
}

fn batch(from: i64, rows: i64) -> Json {
    json!({"v": (from..from + rows).collect::<Vec<i64>>()})
}

#[tokio::test]
async fn a_published_document_and_its_data_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let port = server.port;
    ok(port, "PUT", "/api/v1/documents/runs/a", Some(&spec())).await;
    let mut seq = 0;
    for i in 0..20 {
        let path = "/api/v1/documents/runs/a/sources/p0/stream";
        let (status, answer) = request(
            port,
            "POST",
            path,
            Some(&batch(i * 100, 100)),
            Some(&format!("k{i}")),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{answer}");
        seq = answer["seq"].as_u64().unwrap();
    }
    let before = ok(port, "GET", "/api/v1/documents/runs/a", None).await;
    server.kill9();

    let server = Server::start(dir.path(), &[]).await;
    let port = server.port;
    let after = ok(port, "GET", "/api/v1/documents/runs/a", None).await;
    assert_eq!(
        after["seq"],
        json!(seq),
        "the sequence number goes on where it was"
    );
    assert_eq!(
        after["sources"], before["sources"],
        "same sources, kinds and rows"
    );
    assert_eq!(
        values(port, "runs/a", 0).await,
        (0..2000).collect::<Vec<i64>>()
    );
    // A retry of an acknowledged write, after the restart, is answered, not applied again.
    let (status, answer) = request(
        port,
        "POST",
        "/api/v1/documents/runs/a/sources/p0/stream",
        Some(&batch(0, 100)),
        Some("k19"),
    )
    .await
    .unwrap();
    assert_eq!(
        (status, answer["seq"].as_u64()),
        (200, Some(seq)),
        "{answer}"
    );
    assert_eq!(values(port, "runs/a", 0).await.len(), 2000);
    // And the document takes new writes after its restored sequence number.
    let more = ok(
        port,
        "POST",
        "/api/v1/documents/runs/a/sources/p0/stream",
        Some(&batch(2000, 5)),
    )
    .await;
    assert!(more["seq"].as_u64().unwrap() > seq, "{more}");
    // A deleted document stays deleted.
    ok(port, "DELETE", "/api/v1/documents/runs/a", None).await;
    server.kill9();
    let server = Server::start(dir.path(), &[]).await;
    let (status, _) = request(server.port, "GET", "/api/v1/documents/runs/a", None, None)
        .await
        .unwrap();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Server::start(dir.path(), &[]).await;
    let port = free_port();
    let mut second = Command::new(env!("CARGO_BIN_EXE_plotwire"));
    second
        .args(["serve", "--port", &port.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = second.spawn().unwrap();
    let out = tokio::time::timeout(
        T,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("the second server exits at once")
    .unwrap()
    .unwrap();
    assert!(!out.status.success(), "the second server must exit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another plotwire server"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_full_store_refuses_writes_with_507_and_keeps_what_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-store-bytes", "400000"]).await;
    let port = server.port;
    ok(port, "PUT", "/api/v1/documents/full", Some(&spec())).await;
    let acked = fill_until_refused(port, "full").await;
    // What was acknowledged is served, and nothing of the refused write.
    assert_eq!(
        values(port, "full", 0).await,
        (0..acked).collect::<Vec<i64>>()
    );
    // A retry at once is refused the same way (a cooldown spares the store a rebuild per
    // retry), and changes nothing either.
    let (status, answer) = request(
        port,
        "POST",
        "/api/v1/documents/full/sources/p0/stream",
        Some(&batch(acked, 2000)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 507, "{answer}");
    assert_eq!(
        values(port, "full", 0).await,
        (0..acked).collect::<Vec<i64>>()
    );
    server.kill9();
    let server = Server::start(dir.path(), &["--max-store-bytes", "400000"]).await;
    assert_eq!(
        values(server.port, "full", 0).await,
        (0..acked).collect::<Vec<i64>>()
    );
}

/// Streams 2000-row batches into source `p0` of `doc` until a write is refused, which
/// must be a 507 saying that it was not stored; returns the rows acknowledged.
async fn fill_until_refused(port: u16, doc: &str) -> i64 {
    let mut acked = 0i64;
    for _ in 0..5000 {
        let (status, answer) = request(
            port,
            "POST",
            &format!("/api/v1/documents/{doc}/sources/p0/stream"),
            Some(&batch(acked, 2000)),
            None,
        )
        .await
        .unwrap();
        if status == 200 {
            acked += 2000;
            continue;
        }
        assert_eq!(status, 507, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("not stored"),
            "{answer}"
        );
        return acked;
    }
    panic!("{doc}: 5000 batches were all stored: the store never filled up");
}

/// A small, seeded generator: the crash test prints its seed to replay a failure.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// What one producer has sent: the rows acknowledged, and the batch in the air when
/// the server died (sent again with the same key after the restart).
#[derive(Default, Clone)]
struct Producer {
    acked: i64,
    pending: Option<(i64, i64, String)>,
    batches: u64,
}

/// Streams batches into source `p` until a request gets no answer.
async fn produce(port: u16, p: usize, mut state: Producer, seed: u64) -> Producer {
    let mut rng = Rng(seed | 1);
    loop {
        let (from, rows, key) = state.pending.clone().unwrap_or_else(|| {
            state.batches += 1;
            (
                state.acked,
                1 + rng.below(200) as i64,
                format!("p{p}-{}", state.batches),
            )
        });
        state.pending = Some((from, rows, key.clone()));
        let path = format!("/api/v1/documents/crash/sources/p{p}/stream");
        match request(port, "POST", &path, Some(&batch(from, rows)), Some(&key)).await {
            Ok((200, _)) => {
                state.acked = from + rows;
                state.pending = None;
            }
            Ok((status, body)) => panic!("producer {p}: {status} {body}"),
            Err(_) => return state,
        }
    }
}

/// `kill -9` at random moments while producers stream through REST: after every
/// restart each source holds every acknowledged row, in order, exactly once. 20 cycles
/// here; `PLOTWIRE_CRASH_CYCLES` asks for more.
#[tokio::test]
async fn kill_9_at_random_moments_loses_no_acknowledged_row() {
    let cycles: u64 = std::env::var("PLOTWIRE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test: {cycles} cycles, seed {seed}");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    ok(server.port, "PUT", "/api/v1/documents/crash", Some(&spec())).await;
    let mut producers = vec![Producer::default(); PRODUCERS];
    let mut server = Some(server);
    let mut rows_acked = 0;
    for cycle in 0..cycles {
        let port = server.as_ref().unwrap().port;
        let tasks: Vec<_> = producers
            .iter()
            .cloned()
            .enumerate()
            .map(|(p, state)| tokio::spawn(produce(port, p, state, rng.below(u64::MAX))))
            .collect();
        tokio::time::sleep(Duration::from_millis(20 + rng.below(300))).await;
        server.take().unwrap().kill9();
        for (p, task) in tasks.into_iter().enumerate() {
            producers[p] = tokio::time::timeout(T, task).await.unwrap().unwrap();
        }
        let restarted = Server::start(dir.path(), &[]).await;
        for (p, state) in producers.iter().enumerate() {
            let got = values(restarted.port, "crash", p).await;
            let n = got.len() as i64;
            assert!(
                n >= state.acked,
                "cycle {cycle}, source p{p}: {} rows stored, {} acknowledged (seed {seed})",
                n,
                state.acked
            );
            let in_air = state.pending.as_ref().map_or(0, |(_, rows, _)| *rows);
            assert!(
                n == state.acked || n == state.acked + in_air,
                "cycle {cycle}, source p{p}: {n} rows, acknowledged {}, in the air {in_air} (seed {seed})",
                state.acked
            );
            assert!(
                got.iter().enumerate().all(|(i, v)| *v == i as i64),
                "cycle {cycle}, source p{p}: rows out of order, missing or repeated (seed {seed})"
            );
        }
        rows_acked = producers.iter().map(|p| p.acked).sum::<i64>();
        server = Some(restarted);
    }
    eprintln!("crash test: {cycles} kill -9 cycles, {rows_acked} rows acknowledged, none lost or repeated");
    assert!(rows_acked > 0, "the producers got writes through");
}

/// A long stream with rollover keeps the store bounded: snapshots of the live document
/// replace the entries they cover. After a restart the source holds the last rows, and
/// a retried key from before the last snapshot is still answered, not applied again.
#[tokio::test]
async fn a_stream_with_rollover_keeps_the_store_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--snapshot-bytes", "1000000"];
    let server = Server::start(dir.path(), &args).await;
    let port = server.port;
    ok(port, "PUT", "/api/v1/documents/bounded", Some(&spec())).await;
    let rows = 10_000i64;
    let batches = 400i64;
    let mut last_seq = 0;
    for b in 0..batches {
        let (status, answer) = request(
            port,
            "POST",
            "/api/v1/documents/bounded/sources/noisy/stream?rollover=10000",
            Some(&noisy(b * rows, rows)),
            Some(&format!("b{b}")),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{answer}");
        last_seq = answer["seq"].as_u64().unwrap();
    }
    // 400 batches of 10,000 rows went in: 48 MB of column data, 32 MB of it noise. The database
    // file keeps about the last snapshot and the entries after it. The WAL beside it took
    // more than that in pages (55 MB once on a busy CI machine, where the periodic
    // checkpoints fell behind): the writer's own checkpoint at 64 MiB bounds it.
    let size = |file: &str| std::fs::metadata(dir.path().join(file)).map_or(0, |m| m.len());
    let (db, wal) = (size("plotwire.sqlite3"), size("plotwire.sqlite3-wal"));
    eprintln!("store after 400 batches: {db} bytes in the database, {wal} in the WAL");
    assert!(db < 8_000_000, "the database holds {db} bytes");
    assert!(wal <= (64 << 20) + (4 << 20), "the WAL holds {wal} bytes");
    server.kill9();
    let server = Server::start(dir.path(), &args).await;
    let got = column(server.port, "bounded", "noisy").await;
    let first = (batches - 1) * rows;
    assert_eq!(got, (first..first + rows).collect::<Vec<i64>>());
    let (status, answer) = request(
        server.port,
        "POST",
        "/api/v1/documents/bounded/sources/noisy/stream?rollover=10000",
        Some(&noisy(0, rows)),
        Some("b10"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["seq"].as_u64().unwrap() < last_seq,
        "the first answer: {answer}"
    );
    assert_eq!(
        column(server.port, "bounded", "noisy").await,
        got,
        "not applied again"
    );
}

/// `plotwire backup` copies the store while the server runs and writes go on; a server
/// on the copy serves the document with a whole prefix of what was written.
#[tokio::test]
async fn a_backup_taken_while_the_server_writes_is_a_consistent_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let port = server.port;
    ok(port, "PUT", "/api/v1/documents/backed", Some(&spec())).await;
    for b in 0..20 {
        ok(
            port,
            "POST",
            "/api/v1/documents/backed/sources/p0/stream",
            Some(&batch(b * 100, 100)),
        )
        .await;
    }
    let writer = tokio::spawn(async move {
        for b in 20..200 {
            ok(
                port,
                "POST",
                "/api/v1/documents/backed/sources/p0/stream",
                Some(&batch(b * 100, 100)),
            )
            .await;
        }
    });
    let copy = tempfile::tempdir().unwrap();
    let target = copy.path().join("copy");
    let out = tokio::task::spawn_blocking({
        let (from, to) = (dir.path().to_owned(), target.clone());
        move || {
            Command::new(env!("CARGO_BIN_EXE_plotwire"))
                .arg("backup")
                .arg(&to)
                .arg("--data-dir")
                .arg(&from)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("copied to"));
    writer.await.unwrap();
    let restored = Server::start(&target, &[]).await;
    let got = values(restored.port, "backed", 0).await;
    assert!(
        got.len() >= 2000 && got.len() % 100 == 0,
        "{} rows",
        got.len()
    );
    assert!(got.iter().enumerate().all(|(i, v)| *v == i as i64));
    // A second backup into the same place is refused.
    let again = Command::new(env!("CARGO_BIN_EXE_plotwire"))
        .arg("backup")
        .arg(&target)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
}

/// A torn write at the end of the WAL (a crash in the middle of a commit) is cut off by
/// the recovery: the server starts, and serves a whole prefix of the batches, in order.
#[tokio::test]
async fn a_torn_wal_tail_is_cut_off_and_the_rest_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--durability", "relaxed", "--sync-every", "60000"],
    )
    .await;
    let port = server.port;
    ok(port, "PUT", "/api/v1/documents/torn", Some(&spec())).await;
    for b in 0..50 {
        ok(
            port,
            "POST",
            "/api/v1/documents/torn/sources/noisy/stream",
            Some(&noisy(b * 100, 100)),
        )
        .await;
    }
    server.kill9();
    let wal = dir.path().join("plotwire.sqlite3-wal");
    let len = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(
        len > 10_000,
        "the WAL holds the recent commits ({len} bytes)"
    );
    let file = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    file.set_len(len - 3000).unwrap();
    drop(file);
    let server = Server::start(dir.path(), &[]).await;
    let got = column(server.port, "torn", "noisy").await;
    assert!(
        got.len() % 100 == 0,
        "whole batches only: {} rows",
        got.len()
    );
    assert!(
        got.iter().enumerate().all(|(i, v)| *v == i as i64),
        "a prefix, in order"
    );
    // And it takes writes again.
    ok(
        server.port,
        "POST",
        "/api/v1/documents/torn/sources/noisy/stream",
        Some(&noisy(got.len() as i64, 100)),
    )
    .await;
}

/// `plotwire gc` refuses a data dir a server is using, and compacts a stopped one
/// without changing what it serves.
#[tokio::test]
async fn gc_compacts_a_stopped_store_and_refuses_a_running_one() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--snapshot-bytes", "1000000"];
    let server = Server::start(dir.path(), &args).await;
    ok(server.port, "PUT", "/api/v1/documents/gc", Some(&spec())).await;
    for b in 0..100 {
        ok(
            server.port,
            "POST",
            "/api/v1/documents/gc/sources/noisy/stream?rollover=1000",
            Some(&noisy(b * 1000, 1000)),
        )
        .await;
    }
    let gc = || {
        Command::new(env!("CARGO_BIN_EXE_plotwire"))
            .arg("gc")
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let refused = gc();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("in use by another plotwire server"));
    server.kill9();
    let done = gc();
    let said = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{said}");
    assert!(said.contains("compacted from"), "{said}");
    let wal = std::fs::metadata(dir.path().join("plotwire.sqlite3-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the WAL is emptied");
    let server = Server::start(dir.path(), &args).await;
    assert_eq!(
        column(server.port, "gc", "noisy").await,
        (99_000..100_000).collect::<Vec<i64>>()
    );
}

/// `plotwire export-data` reads a source out of the data dir while the server runs:
/// as CSV, as an Arrow IPC stream with typed columns, and as Parquet (the same batch).
#[tokio::test]
async fn export_data_writes_a_stored_source_as_csv_arrow_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    ok(server.port, "PUT", "/api/v1/documents/exp", Some(&spec())).await;
    for b in 0..3 {
        ok(
            server.port,
            "POST",
            "/api/v1/documents/exp/sources/noisy/stream",
            Some(&noisy(b * 10, 10)),
        )
        .await;
    }
    let export = |format: &str, out: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_plotwire"))
            .args(["export-data", "exp", "noisy", "--format", format, "-o"])
            .arg(out)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let csv_path = dir.path().join("noisy.csv");
    let done = export("csv", &csv_path);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 31);
    assert_eq!(lines[0], "n,v");
    let want = noisy(0, 30);
    let first_n = want["n"][0].as_f64().unwrap();
    assert_eq!(lines[1], format!("{first_n},0"));
    assert!(lines[30].ends_with(",29"), "{}", lines[30]);

    let arrow_path = dir.path().join("noisy.arrow");
    let done = export("arrow", &arrow_path);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let file = std::fs::File::open(&arrow_path).unwrap();
    let reader = arrow_ipc::reader::StreamReader::try_new(file, None).unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let batch = &batches[0];
    assert_eq!(batch.num_rows(), 30);
    let v = batch
        .column_by_name("v")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap();
    assert_eq!(v.values().to_vec(), (0..30).collect::<Vec<i64>>());
    let n = batch
        .column_by_name("n")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::Float64Array>()
        .unwrap();
    assert_eq!(n.value(0), first_n);

    let parquet_path = dir.path().join("noisy.parquet");
    let done = export("parquet", &parquet_path);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let file = std::fs::File::open(&parquet_path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 30);
    let from_parquet = &batches[0];
    assert_eq!(from_parquet.schema(), batch.schema());
    let v = from_parquet
        .column_by_name("v")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap();
    assert_eq!(v.values().to_vec(), (0..30).collect::<Vec<i64>>());
    assert_eq!(from_parquet.column_by_name("n"), batch.column_by_name("n"));

    let missing = Command::new(env!("CARGO_BIN_EXE_plotwire"))
        .args(["export-data", "nope", "noisy", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no document named \"nope\""));
}

/// A new document whose first write fails on a full store can be published once space
/// is freed (before, the store kept its name as failed until a restart), and keys
/// logged before a republish are still answered after a restart.
#[tokio::test]
async fn a_full_store_frees_up_and_keys_outlive_a_republish() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--max-store-bytes", "600000"];
    let server = Server::start(dir.path(), &args).await;
    let port = server.port;
    ok(port, "PUT", "/api/v1/documents/filler", Some(&spec())).await;
    let mut b = 0;
    loop {
        let (status, _) = request(
            port,
            "POST",
            "/api/v1/documents/filler/sources/noisy/stream",
            Some(&noisy(b * 1000, 1000)),
            None,
        )
        .await
        .unwrap();
        if status != 200 {
            assert_eq!(status, 507);
            break;
        }
        b += 1;
        assert!(b < 1000, "the store never filled");
    }
    // A document of 20,000 rows in its DocJson: more than the space left.
    let late = json!({
        "version": "3.9.2",
        "title": "late",
        "roots": [{"type": "object", "name": "ColumnDataSource", "id": "s1", "attributes": {
            "name": "p0",
            "data": {"type": "map", "entries": [["v", (0..20_000).collect::<Vec<i64>>()]]}
        }}]
    });
    let (status, body) = request(port, "PUT", "/api/v1/documents/late", Some(&late), None)
        .await
        .unwrap();
    assert_eq!(status, 507, "{body}");
    ok(port, "DELETE", "/api/v1/documents/filler", None).await;
    let (status, body) = request(port, "PUT", "/api/v1/documents/late", Some(&late), None)
        .await
        .unwrap();
    assert_eq!(status, 201, "space was freed: {body}");

    // A keyed write, then a republish of the same document, then a restart.
    let path = "/api/v1/documents/late/sources/p0/stream";
    let (status, first) = request(port, "POST", path, Some(&batch(0, 10)), Some("before"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{first}");
    ok(port, "PUT", "/api/v1/documents/late", Some(&late)).await;
    server.kill9();
    let server = Server::start(dir.path(), &args).await;
    let (status, again) = request(
        server.port,
        "POST",
        path,
        Some(&batch(0, 10)),
        Some("before"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["seq"], first["seq"],
        "the first answer, not a new write"
    );
    let rows = values(server.port, "late", 0).await.len();
    assert_eq!(rows, 20_000, "not applied again: {rows} rows");
}

/// A tmpfs of `kib` KiB mounted on `dir` for a test, unmounted when dropped.
struct Tmpfs {
    dir: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts it (as root, or through `sudo -n`); the error says why this machine does
    /// not let the test mount (no root, or a container without the right to mount).
    fn mount(dir: &Path, kib: u32) -> Result<Tmpfs, String> {
        let args = [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={kib}k"),
            "tmpfs",
            dir.to_str().unwrap(),
        ];
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n");
        let out = if root.unwrap_or(false) {
            Command::new(args[0]).args(&args[1..]).output()
        } else {
            Command::new("sudo").arg("-n").args(args).output()
        }
        .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs {
            dir: dir.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let dir = self.dir.to_str().unwrap_or_default().to_owned();
        let _ = Command::new("umount").arg(&dir).output();
        let _ = Command::new("sudo").args(["-n", "umount", &dir]).output();
    }
}

/// A real full filesystem (a 2 MiB tmpfs): writes are refused with 507 and a message,
/// what was acknowledged stays readable, and after a `kill -9` the server starts on the
/// full disk and serves it all.
#[tokio::test]
async fn a_full_disk_refuses_writes_and_keeps_what_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let _fs = match Tmpfs::mount(dir.path(), 2048) {
        Ok(fs) => fs,
        Err(why) if std::env::var("PLOTWIRE_REQUIRE_TMPFS").as_deref() == Ok("1") => panic!(
            "cannot mount a tmpfs for the full-disk test ({why}), and PLOTWIRE_REQUIRE_TMPFS=1"
        ),
        Err(why) => {
            eprintln!(
                "SKIPPED a_full_disk_refuses_writes_and_keeps_what_it_had: cannot mount a \
                 tmpfs ({why}); run as root or with passwordless sudo (PLOTWIRE_REQUIRE_TMPFS=1 \
                 makes this a failure)"
            );
            return;
        }
    };
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]).await;
    let port = server.port;
    ok(port, "PUT", "/api/v1/documents/disk", Some(&spec())).await;
    let (status, ready) = request(port, "GET", "/readyz", None, None).await.unwrap();
    assert_eq!(
        (status, ready["store"].as_str()),
        (200, Some("sqlite")),
        "{ready}"
    );
    let acked = fill_until_refused(port, "disk").await;
    // Not ready while the store refuses writes: orchestrators route elsewhere.
    let (status, ready) = request(port, "GET", "/readyz", None, None).await.unwrap();
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["error"]
            .as_str()
            .unwrap()
            .contains("disk holding the data dir is full"),
        "{ready}"
    );
    assert!(acked > 0, "something was stored before the disk was full");
    assert_eq!(
        column(port, "disk", "p0").await,
        (0..acked).collect::<Vec<i64>>()
    );
    let (status, _) = request(port, "GET", "/healthz", None, None).await.unwrap();
    assert_eq!(status, 200, "the server goes on");
    server.kill9();
    let server = Server::start(&data, &[]).await;
    assert_eq!(
        column(server.port, "disk", "p0").await,
        (0..acked).collect::<Vec<i64>>()
    );
}
