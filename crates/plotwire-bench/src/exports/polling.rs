//! The polling pages: each on its own keep-alive connection, moving its cursor as an
//! exported page's adapter does, while a producer streams.

use super::wire::*;
use super::*;

/// A small seeded generator (xorshift64*), uniform in [0, 1).
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What one page saw.
#[derive(Debug, Default)]
pub(super) struct PageStats {
    /// Polls answered 200.
    pub(super) polls: u64,
    /// Polls sent in the measured window.
    pub(super) window_polls: u64,
    /// Polls answered with no row.
    pub(super) idle: u64,
    /// Wire bytes of the smallest and largest idle answer.
    pub(super) idle_bytes: Option<(usize, usize)>,
    /// Bytes of the largest request sent.
    pub(super) request_bytes: usize,
    /// Rows received (the next `step` expected).
    pub(super) rows: u64,
    /// Answers with `reset: true`.
    pub(super) resets: u64,
    /// Answers whose `since` was not the cursor sent.
    pub(super) wrong_since: u64,
    /// Connections the server closed (the page reconnected).
    pub(super) reconnects: u64,
    /// Request to answer, of the window's polls.
    pub(super) latencies: Vec<Duration>,
    /// The first thing wrong, if anything.
    pub(super) problem: Option<String>,
    /// One idle answer's head, as read.
    pub(super) idle_head: Option<String>,
}

impl PageStats {
    pub(super) fn note(&mut self, problem: impl FnOnce() -> String) {
        if self.problem.is_none() {
            self.problem = Some(problem());
        }
    }

    /// Takes in one answer's envelope: checks it and moves `cursor`. Returns the rows
    /// taken, or `None` for an answer to another cursor (which the page drops).
    pub(super) fn take(&mut self, body: &[u8], cursor: &mut u64) -> Result<Option<usize>> {
        let v: serde_json::Value = serde_json::from_slice(body).context(|| "the poll answer")?;
        let since = v.get("since").and_then(serde_json::Value::as_u64);
        let next = v
            .get("next")
            .and_then(serde_json::Value::as_u64)
            .context(|| format!("no next in {v}"))?;
        let reset = v.get("reset").and_then(serde_json::Value::as_bool) == Some(true);
        let steps = v
            .pointer("/data/step")
            .and_then(serde_json::Value::as_array)
            .context(|| format!("no data.step in {v}"))?;
        let rows = v.get("rows").and_then(serde_json::Value::as_u64);
        if rows != Some(steps.len() as u64) {
            self.note(|| format!("rows {rows:?} but {} steps", steps.len()));
        }
        if since != Some(*cursor) {
            // The page's adapter drops such an answer.
            self.wrong_since += 1;
            self.note(|| format!("since {since:?} answering since={cursor}"));
            return Ok(None);
        }
        if reset {
            self.resets += 1;
            self.rows = 0;
        }
        for step in steps {
            let step = step.as_u64();
            if step != Some(self.rows) {
                let expected = self.rows;
                self.note(|| format!("step {step:?} where {expected} was expected"));
            }
            self.rows += 1;
        }
        *cursor = next;
        Ok(Some(steps.len()))
    }
}

/// One page's schedule.
pub(super) struct PageSpec {
    pub(super) port: u16,
    pub(super) path: String,
    pub(super) cursor: u64,
    pub(super) hosted: bool,
    /// Its first poll.
    pub(super) first: Instant,
    pub(super) interval: Duration,
    pub(super) window: (Instant, Instant),
    pub(super) end: Instant,
}

/// One page: polls on its timer until `end`, one request at a time, reconnecting when
/// the server closes the connection.
pub(super) async fn page(spec: PageSpec) -> Result<PageStats> {
    let mut stats = PageStats::default();
    let mut cursor = spec.cursor;
    let mut conn = PageConn::connect(spec.port, spec.first + POLL_TIMEOUT).await?;
    let mut timer = tokio::time::interval_at(spec.first, spec.interval);
    timer.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let total = spec.end.saturating_duration_since(spec.first);
    let max_polls = total.as_millis() / spec.interval.as_millis().max(1) + 2;
    for _ in 0..max_polls {
        let tick = timer.tick().await;
        if tick >= spec.end {
            break;
        }
        let request = poll_request(spec.port, &spec.path, cursor, spec.hosted);
        stats.request_bytes = stats.request_bytes.max(request.len());
        let sent = Instant::now();
        let deadline = sent + POLL_TIMEOUT;
        let wire = match conn.exchange(&request, deadline).await {
            Ok(wire) => wire,
            Err(e) if stats.reconnects < MAX_RECONNECTS && Instant::now() < deadline => {
                // A browser opens a new connection and sends the request again.
                stats.reconnects += 1;
                if stats.reconnects == 1 {
                    crate::progress(format!("exports: a page reconnects after: {e}"));
                }
                conn = PageConn::connect(spec.port, deadline).await?;
                conn.exchange(&request, deadline).await?
            }
            Err(e) => return Err(e),
        };
        let took = sent.elapsed();
        if wire.status != 200 {
            let mut text = String::from_utf8_lossy(&wire.body).into_owned();
            text.truncate(200);
            return Err(err(format!("a poll got HTTP {}: {text}", wire.status)));
        }
        stats.polls += 1;
        if sent >= spec.window.0 && sent < spec.window.1 {
            stats.window_polls += 1;
            stats.latencies.push(took);
        }
        if stats.take(&wire.body, &mut cursor)? == Some(0) {
            stats.idle += 1;
            let (lo, hi) = stats.idle_bytes.unwrap_or((wire.bytes, wire.bytes));
            stats.idle_bytes = Some((lo.min(wire.bytes), hi.max(wire.bytes)));
            if stats.idle_head.is_none() {
                stats.idle_head = Some(format!(
                    "{}{}",
                    wire.head,
                    String::from_utf8_lossy(&wire.body)
                ));
            }
        }
    }
    Ok(stats)
}

/// The source path and cursor of the first `AjaxDataSource` URL in an export of `name`.
pub(super) fn poll_url(html: &str, name: &str) -> Option<(String, u64)> {
    let prefix = format!("/api/v1/documents/{name}/sources/");
    let at = html.find(&prefix)?;
    let rest = html.get(at..)?;
    let q = rest.find("?since=")?;
    let path = rest.get(..q)?.to_owned();
    let digits: String = rest
        .get(q + 7..)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((path, digits.parse().ok()?))
}

/// Part 1: `args.pages` pages polling while a producer streams. Appends figure lines to
/// `out`; returns the correctness problems.
pub(super) async fn polling(
    server: &ServerProcess,
    args: &ExportsArgs,
    out: &mut String,
    misses: &mut usize,
) -> Result<Vec<String>> {
    let port = server.endpoint.port;
    let mut http = HttpConn::connect(port, Duration::from_secs(10)).await?;
    let name = "bench/exports-poll";
    let spec = r#"{"title":"bench","sources":{"train":{"columns":{"step":"int32","loss":"float64"}}},"plots":{"loss":{"kind":"line","source":"train","x":"step","y":"loss"}}}"#;
    let seq = put_spec(&mut http, name, spec).await?;
    let page_html = http
        .get(
            &format!("/api/v1/documents/{name}/export.html"),
            "",
            Instant::now() + Duration::from_secs(30),
        )
        .await?
        .ok("exporting the polled document")?;
    let (path, cursor) = poll_url(&page_html.text(), name)
        .context(|| "no .../sources/<id>?since=<cursor> URL in the export")?;
    crate::progress(format!(
        "exports: the export polls {path}?since={cursor} (publish seq {seq})"
    ));
    let mut problems = Vec::new();
    if cursor != seq {
        problems.push(format!(
            "the export's cursor {cursor} is not the publish seq {seq}"
        ));
    }

    let interval = Duration::from_millis(args.interval_ms.max(1));
    let start = Instant::now() + Duration::from_millis(200);
    let window = (
        start + Duration::from_secs(args.warmup),
        start + Duration::from_secs(args.warmup + args.seconds),
    );
    // After the window, two more intervals: every page reads the last batch.
    let end = window.1 + 2 * interval + Duration::from_millis(500);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut pages = JoinSet::new();
    for i in 0..args.pages {
        let phase = interval.mul_f64(rng.next());
        pages.spawn(page(PageSpec {
            port,
            path: path.clone(),
            cursor,
            hosted: i % 2 == 1,
            first: start + phase,
            interval,
            window,
            end,
        }));
    }

    // The producer: `batch_rows` rows every `batch_every_ms`, from the start to the
    // window's end; `step` counts rows from 0.
    let streamed = Arc::new(AtomicU64::new(0));
    let producer = {
        let streamed = Arc::clone(&streamed);
        let every = Duration::from_millis(args.batch_every_ms.max(1));
        let rows = args.batch_rows;
        let stop = window.1;
        let stream_path = format!("/api/v1/documents/{name}/sources/train/stream");
        tokio::spawn(async move {
            let mut http = HttpConn::connect(port, Duration::from_secs(10)).await?;
            let mut timer = tokio::time::interval_at(start + every / 2, every);
            timer.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let max = (stop - start).as_millis() / every.as_millis() + 2;
            let mut batches = 0u64;
            for _ in 0..max {
                if timer.tick().await >= stop {
                    break;
                }
                let first = streamed.load(Ordering::Relaxed);
                let steps: Vec<String> = (first..first + rows as u64)
                    .map(|s| s.to_string())
                    .collect();
                let losses: Vec<String> = (first..first + rows as u64)
                    .map(|s| format!("{:.6}", 1.0 / (1.0 + s as f64)))
                    .collect();
                let body = format!(
                    r#"{{"step":[{}],"loss":[{}]}}"#,
                    steps.join(","),
                    losses.join(",")
                );
                http.request(
                    "POST",
                    &stream_path,
                    "Content-Type: application/json\r\n",
                    body.as_bytes(),
                    Instant::now() + Duration::from_secs(30),
                )
                .await?
                .ok("a producer batch")?;
                streamed.fetch_add(rows as u64, Ordering::Relaxed);
                batches += 1;
            }
            Ok::<u64, BoxError>(batches)
        })
    };

    sleep_until(window.0).await;
    let usage = server.usage();
    let split_before = server.cpu_time();
    let own_before = own_cpu_time();
    sleep_until(window.1).await;
    let usage = usage.finish();
    let split = match (split_before, server.cpu_time()) {
        (Some(a), Some(b)) => Some(b.since(a)),
        _ => None,
    };
    let own = match (own_before, own_cpu_time()) {
        (Some(a), Some(b)) => Some(b.since(a).total()),
        _ => None,
    };

    let batches = producer
        .await
        .map_err(|e| err(format!("the producer panicked: {e}")))??;
    let streamed = streamed.load(Ordering::Relaxed);
    let mut all = Vec::with_capacity(args.pages);
    while let Some(done) = timeout_at(end + POLL_TIMEOUT * 2, pages.join_next())
        .await
        .context(|| "the pages did not finish")?
    {
        all.push(done.map_err(|e| err(format!("a page panicked: {e}")))??);
    }

    let window_polls: u64 = all.iter().map(|p| p.window_polls).sum();
    let polls: u64 = all.iter().map(|p| p.polls).sum();
    let idle: u64 = all.iter().map(|p| p.idle).sum();
    let reconnects: u64 = all.iter().map(|p| p.reconnects).sum();
    let resets: u64 = all.iter().map(|p| p.resets).sum();
    let wrong_since: u64 = all.iter().map(|p| p.wrong_since).sum();
    let idle_lo = all.iter().filter_map(|p| p.idle_bytes).map(|b| b.0).min();
    let idle_hi = all.iter().filter_map(|p| p.idle_bytes).map(|b| b.1).max();
    let request_bytes = all.iter().map(|p| p.request_bytes).max().unwrap_or(0);
    let latencies: Vec<Duration> = all.iter().flat_map(|p| p.latencies.clone()).collect();
    let complete = all.iter().filter(|p| p.rows == streamed).count();
    for (i, p) in all.iter().enumerate() {
        if let Some(problem) = &p.problem {
            problems.push(format!("page {i}: {problem}"));
        }
    }
    if complete != all.len() {
        let short = all.iter().filter(|p| p.rows != streamed).count();
        problems.push(format!(
            "{short} of {} pages do not hold the {streamed} rows streamed",
            all.len()
        ));
    }
    if streamed == 0 {
        problems.push("the producer streamed nothing".to_owned());
    }
    if let Some(head) = all.iter().find_map(|p| p.idle_head.as_ref()) {
        crate::progress(format!("exports: an idle answer as read:\n{head}"));
    }

    let wall = usage.wall.as_secs_f64();
    let cpu = usage.cpu.map(|c| c.as_secs_f64());
    let percent = cpu.map(|c| 100.0 * c / wall.max(1e-9));
    let q = |x: f64| quantile(&latencies, x).map_or(0.0, ms);
    let _ = writeln!(
        out,
        "polling: {} pages every {} ms ({} with Origin: null, {} with Origin: http://127.0.0.1:8000), \
         {:.1} s window after {} s of warm-up; producer {} batches of {} rows every {} ms \
         ({streamed} rows); {window_polls} polls in the window ({:.0}/s), {polls} in all, \
         {idle} idle; poll latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         {complete}/{} pages hold every row exactly once and in order; \
         {reconnects} reconnects, {resets} resets, {wrong_since} answers for another cursor; \
         bench CPU {}",
        args.pages,
        args.interval_ms,
        args.pages.div_ceil(2),
        args.pages / 2,
        wall,
        args.warmup,
        batches,
        args.batch_rows,
        args.batch_every_ms,
        window_polls as f64 / wall.max(1e-9),
        q(0.5),
        q(0.99),
        q(1.0),
        all.len(),
        own.map_or_else(|| "?".to_owned(), |c| format!("{:.2} s", c.as_secs_f64())),
    );
    let applies = args.pages == CPU_TARGET_PAGES && args.interval_ms == 1000;
    figure(
        out,
        misses,
        &format!("server CPU, {} pages polling", args.pages),
        &percent.map_or_else(
            || "?".to_owned(),
            |p| {
                format!(
                    "{p:.2} % of one core ({:.3} s CPU in {wall:.1} s{}; {:.1} µs per poll)",
                    cpu.unwrap_or(0.0),
                    split.map_or_else(String::new, |s| format!(
                        ": user {:.2} s, system {:.2} s",
                        s.user.as_secs_f64(),
                        s.system.as_secs_f64()
                    )),
                    1e6 * cpu.unwrap_or(0.0) / (window_polls.max(1) as f64)
                )
            },
        ),
        &format!("≤ {CPU_TARGET_PERCENT} % at {CPU_TARGET_PAGES} pages, 1 poll/s"),
        percent.filter(|_| applies).map(|p| p <= CPU_TARGET_PERCENT),
    );
    figure(
        out,
        misses,
        "idle answer on the wire (status line + headers + body)",
        &idle_hi.map_or_else(
            || "none seen".to_owned(),
            |hi| format!("{hi} bytes (smallest {} bytes)", idle_lo.unwrap_or(hi)),
        ),
        &format!("≤ {IDLE_TARGET_BYTES} bytes"),
        idle_hi.map(|b| b <= IDLE_TARGET_BYTES),
    );
    let _ = writeln!(
        out,
        "     idle poll request (Chromium's headers): {request_bytes} bytes (no target)"
    );
    Ok(problems)
}
