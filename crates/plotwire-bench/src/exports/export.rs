//! The export of a big document: time to the last byte, and the file's size.

use super::polling::Rng;
use super::*;

/// The median of `samples`.
pub(super) fn median(samples: &[Duration]) -> Option<Duration> {
    quantile(samples, 0.5)
}

/// Part 2: exports a document of `args.points` rows. Appends figure lines to `out`;
/// returns the correctness problems.
pub(super) async fn export(
    server: &ServerProcess,
    args: &ExportsArgs,
    out: &mut String,
    misses: &mut usize,
) -> Result<Vec<String>> {
    let port = server.endpoint.port;
    let mut http = HttpConn::connect(port, Duration::from_secs(10)).await?;
    let name = "bench/exports-big";
    let spec = r#"{"title":"bench export","sources":{"pts":{"columns":{"x":"float64","y":"float64"}}},"plots":{"xy":{"kind":"line","source":"pts","x":"x","y":"y"}}}"#;
    put_spec(&mut http, name, spec).await?;
    let n = args.points;
    let x: Vec<f64> = (0..n).map(|k| k as f64).collect();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut walk = 0.0;
    let y: Vec<f64> = (0..n)
        .map(|_| {
            walk += rng.next() - 0.5;
            walk
        })
        .collect();
    let body = raw_xy(&x, &y);
    drop((x, y));
    let answer = http
        .request(
            "POST",
            &format!("/api/v1/documents/{name}/sources/pts/stream"),
            &format!("Content-Type: {}\r\n", Format::Raw.content_type()),
            &body,
            Instant::now() + Duration::from_secs(120),
        )
        .await?
        .ok("streaming the exported document's rows")?;
    drop(body);
    let rows: serde_json::Value =
        serde_json::from_slice(&answer.body).context(|| "the stream answer")?;
    let mut problems = Vec::new();
    if rows.get("rows").and_then(serde_json::Value::as_u64) != Some(n as u64) {
        problems.push(format!("after streaming {n} rows the source says {rows}"));
    }
    let bundle = http
        .get(
            "/static/js/bokeh.min.js",
            "",
            Instant::now() + Duration::from_secs(30),
        )
        .await?
        .ok("bokeh.min.js")?
        .body
        .len();

    let path = format!("/api/v1/documents/{name}/export.html");
    let usage = server.usage();
    let mut times = Vec::with_capacity(args.export_runs);
    let mut sizes = Vec::with_capacity(args.export_runs);
    for _ in 0..args.export_runs.max(1) {
        let sent = Instant::now();
        let page = http
            .get(&path, "", sent + Duration::from_secs(120))
            .await?
            .ok("the export")?;
        times.push(sent.elapsed());
        sizes.push(page.body.len());
        let text =
            String::from_utf8_lossy(page.body.get(..page.body.len().min(4096)).unwrap_or(&[]))
                .into_owned();
        if !text.to_ascii_lowercase().contains("<html") && problems.is_empty() {
            problems.push("the export is not an HTML page".to_owned());
        }
    }
    let usage = usage.finish();
    let raw = n * 16;
    let size = sizes.iter().copied().max().unwrap_or(0);
    if sizes.iter().any(|&s| s != size) {
        problems.push(format!("the exports differ in size: {sizes:?}"));
    }
    // Base64 of the data alone is 4/3 of it: a smaller file lacks rows.
    if (size as f64) < bundle as f64 + raw as f64 * 4.0 / 3.0 * 0.99 {
        problems.push(format!(
            "the export ({size} bytes) is smaller than the bundle ({bundle}) and the data as \
             base64 ({}): rows are missing",
            raw * 4 / 3
        ));
    }
    let runs: Vec<String> = times.iter().map(|t| format!("{:.0}", ms(*t))).collect();
    let _ = writeln!(
        out,
        "export: {n} rows of float64 x and y ({:.1} MB raw), GET export.html (default options) \
         {} times over one keep-alive connection: {} ms; server CPU {:.2} s over the exports",
        raw as f64 / 1e6,
        times.len(),
        runs.join(", "),
        usage.cpu.map_or(0.0, |c| c.as_secs_f64()),
    );
    let med = median(&times);
    figure(
        out,
        misses,
        &format!("export of a {n}-row document, request to last byte, median"),
        &med.map_or_else(|| "?".to_owned(), |m| format!("{:.0} ms", ms(m))),
        &format!(
            "≤ {} ms at {EXPORT_TARGET_POINTS} rows",
            EXPORT_TARGET.as_millis()
        ),
        med.filter(|_| n == EXPORT_TARGET_POINTS)
            .map(|m| m <= EXPORT_TARGET),
    );
    let ratio = size.saturating_sub(bundle) as f64 / raw.max(1) as f64;
    let limit = SIZE_TARGET_RATIO * raw as f64 + bundle as f64;
    figure(
        out,
        misses,
        "export file size",
        &format!(
            "{:.2} MB = {ratio:.3} x raw data ({:.2} MB) + bokeh.min.js ({:.2} MB); \
             file / (raw + bundle) = {:.3}",
            size as f64 / 1e6,
            raw as f64 / 1e6,
            bundle as f64 / 1e6,
            size as f64 / (raw + bundle).max(1) as f64
        ),
        &format!(
            "≤ {SIZE_TARGET_RATIO} x raw + bundle = {:.2} MB",
            limit / 1e6
        ),
        Some(size as f64 <= limit),
    );
    Ok(problems)
}
