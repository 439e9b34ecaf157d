//! `plotwire push`: CSV (with a header row) or NDJSON from a file or stdin, in batches,
//! into a source of a published document.
//!
//! - Column types come from `--schema` or from the first [`INFER_ROWS`] rows: `int64` when
//!   every value is an integer, else `float64` when every value is a number (`nan`, `inf`
//!   included), else `bool` for `true`/`false`, else text (a batch with text goes as an
//!   Arrow IPC stream, since the raw format holds numbers only).
//! - A row is converted whole before it joins a batch, so a bad row adds nothing. It stops
//!   the push with its line number, unless `--skip-bad-rows` counts it and goes on.
//! - A file is read and checked to its end before anything is sent, so a bad row sends
//!   nothing. Stdin is sent as it comes, a batch at a time (`--batch-rows`, or after
//!   `--batch-ms` with rows waiting), as `tail -F log | plotwire push ...` needs.

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use plotwire_client::{Client, Columns, Values};
use serde_json::Value as Json;
use tokio::sync::mpsc;

use crate::remote::RemoteArgs;

mod follow;
mod input;

use input::{read_input, Chunks, Unchunk};

/// Rows read to infer the column types (see [`infer`]).
const INFER_ROWS: usize = 100;

/// How often a push prints a progress line when stdout is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// How long a push with nothing to send sleeps between looks at its input.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// Chunks of records read ahead of the sender.
const QUEUE_CHUNKS: usize = 64;

/// Records per chunk from a file (from stdin each record goes at once, since the next
/// read may wait for a long time).
const FILE_CHUNK: usize = 4096;

/// `plotwire push` arguments.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  plotwire push runs/exp42 train metrics.csv\n  \
    tail -F app.log | awk '{print $1\",\"$5}' | plotwire push --format csv ops/latency lat -"
)]
pub struct PushArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// The document name.
    name: String,
    /// The source (its name or id).
    source: String,
    /// A CSV or NDJSON file; `-` or nothing for stdin.
    file: Option<PathBuf>,
    /// The input format (default: from the file's extension, else from its first
    /// character: `{` is NDJSON).
    #[arg(long, value_enum)]
    format: Option<InputFormat>,
    /// Keep at most this many rows in the source.
    #[arg(long)]
    rollover: Option<usize>,
    /// Rows per request.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    batch_rows: u64,
    /// With stdin, send the rows waiting after this many milliseconds.
    #[arg(long, default_value_t = 250)]
    batch_ms: u64,
    /// Column types, overriding the inferred ones: `name:type,...` with the types
    /// float64, int64, bool and text.
    #[arg(long)]
    schema: Option<String>,
    /// Skip rows that do not convert (counted and reported), instead of stopping.
    #[arg(long)]
    skip_bad_rows: bool,
    /// Keep reading FILE as it grows, across rotations, as `tail -F` does (until
    /// interrupted). Rows are sent as they come, as from stdin.
    #[arg(long)]
    follow: bool,
}

/// The input formats.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

/// A column type of the push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ColType {
    F64,
    I64,
    Bool,
    Text,
}

impl ColType {
    fn parse(name: &str) -> Option<ColType> {
        match name {
            "float64" | "float" | "f64" => Some(ColType::F64),
            "int64" | "int" | "i64" => Some(ColType::I64),
            "bool" => Some(ColType::Bool),
            "text" | "str" | "string" => Some(ColType::Text),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ColType::F64 => "float64",
            ColType::I64 => "int64",
            ColType::Bool => "bool",
            ColType::Text => "text",
        }
    }
}

/// One value as read: CSV text or an NDJSON scalar.
#[derive(Clone, Copy, Debug)]
enum Field<'a> {
    Text(&'a str),
    Json(&'a Json),
}

/// A row's values: a CSV record as the parser left it (one buffer, no copy per field), or
/// NDJSON scalars.
#[derive(Debug)]
enum Fields {
    Csv(csv::StringRecord),
    Json(Vec<Json>),
}

impl Fields {
    fn len(&self) -> usize {
        match self {
            Fields::Csv(r) => r.len(),
            Fields::Json(v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> Option<Field<'_>> {
        match self {
            Fields::Csv(r) => r.get(i).map(|s| Field::Text(s.trim())),
            Fields::Json(v) => v.get(i).map(Field::Json),
        }
    }
}

/// One input row, with its line number.
#[derive(Debug)]
struct Record {
    line: u64,
    fields: Fields,
}

/// What the reader hands the sender.
enum Input {
    /// The column names (first, once).
    Header(Vec<String>),
    /// A row.
    Row(Record),
    /// A row that could not even be split into fields.
    Bad { line: u64, why: String },
}

/// Runs the push; the error is the message to print.
pub async fn run(args: PushArgs) -> Result<(), String> {
    let overrides = parse_schema(args.schema.as_deref())?;
    let client = args.remote.client()?;
    let path = args.file.clone().filter(|f| f.as_os_str() != "-");
    let from_file = path.is_some() && !args.follow;
    if args.follow && path.is_none() {
        return Err("--follow needs a FILE (stdin is followed anyway)".into());
    }
    let (mut input, format) = open(&args)?;
    let (tx, rx) = mpsc::channel::<Vec<Input>>(QUEUE_CHUNKS);
    let chunk = if from_file { FILE_CHUNK } else { 1 };
    let mut chunks = Chunks::new(tx, chunk);
    let reader = match path.filter(|_| args.follow) {
        Some(path) => {
            drop(input);
            std::thread::spawn(move || {
                if let Err(why) = follow::follow(&path, format, &mut chunks) {
                    let _ = chunks.blocking_send(Input::Bad { line: 0, why });
                }
            })
        }
        None => std::thread::spawn(move || read_input(&mut input, format, &mut chunks)),
    };
    let mut rx = Unchunk::new(rx);
    let mut push = Push::new(&args, client, overrides);
    let outcome = if from_file {
        push.file(&mut rx).await
    } else {
        push.stdin(&mut rx).await
    };
    drop(rx);
    let _ = reader.join();
    push.progress.finish(&push, outcome.is_ok());
    outcome
}

/// The input and its format.
fn open(args: &PushArgs) -> Result<(Box<dyn BufRead + Send>, InputFormat), String> {
    let mut input: Box<dyn BufRead + Send> = match &args.file {
        Some(p) if p.as_os_str() != "-" => Box::new(BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(p).map_err(|e| format!("cannot open {}: {e}", p.display()))?,
        )),
        _ => Box::new(BufReader::with_capacity(1 << 20, std::io::stdin())),
    };
    let by_extension = args
        .file
        .as_ref()
        .and_then(|p| match p.extension()?.to_str()? {
            "csv" => Some(InputFormat::Csv),
            "ndjson" | "jsonl" => Some(InputFormat::Ndjson),
            _ => None,
        });
    let format = match args.format.or(by_extension) {
        Some(f) => f,
        None => {
            let head = input
                .fill_buf()
                .map_err(|e| format!("cannot read the input: {e}"))?;
            match head.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') => InputFormat::Ndjson,
                _ => InputFormat::Csv,
            }
        }
    };
    Ok((input, format))
}

/// The push's state: the schema, the batch being filled, and the counts.
struct Push {
    client: Client,
    name: String,
    source: String,
    rollover: Option<usize>,
    batch_rows: usize,
    batch_wait: Duration,
    overrides: Vec<(String, ColType)>,
    skip_bad_rows: bool,
    columns: Vec<(String, ColType)>,
    batch: Vec<Values>,
    rows_in_batch: usize,
    sent_rows: u64,
    sent_bytes: u64,
    skipped: u64,
    started: Instant,
    progress: Progress,
}

impl Push {
    fn new(args: &PushArgs, client: Client, overrides: Vec<(String, ColType)>) -> Push {
        Push {
            client,
            name: args.name.clone(),
            source: args.source.clone(),
            rollover: args.rollover,
            batch_rows: usize::try_from(args.batch_rows).unwrap_or(usize::MAX),
            batch_wait: Duration::from_millis(args.batch_ms),
            overrides,
            skip_bad_rows: args.skip_bad_rows,
            columns: Vec::new(),
            batch: Vec::new(),
            rows_in_batch: 0,
            sent_rows: 0,
            sent_bytes: 0,
            skipped: 0,
            started: Instant::now(),
            progress: Progress::new(),
        }
    }

    /// A file: every row read and converted before the first request.
    async fn file(&mut self, rx: &mut Unchunk) -> Result<(), String> {
        let mut pending = Vec::new();
        let mut batches: Vec<Columns> = Vec::new();
        let mut header = None;
        for _ in 0..u64::MAX {
            let Some(item) = rx.recv().await else { break };
            match item {
                Input::Header(names) => header = Some(names),
                Input::Row(r) if self.columns.is_empty() => {
                    pending.push(r);
                    if pending.len() >= INFER_ROWS {
                        self.start(header.as_deref(), &mut pending, &mut batches)?;
                    }
                }
                Input::Row(r) => self.add(r, &mut batches)?,
                Input::Bad { line, why } => self.bad(line, &why)?,
            }
        }
        if self.columns.is_empty() {
            self.start(header.as_deref(), &mut pending, &mut batches)?;
        }
        if let Some(last) = self.take_batch() {
            batches.push(last);
        }
        for batch in batches {
            self.send(batch).await?;
        }
        Ok(())
    }

    /// Stdin: rows are sent as they come, a batch at a time.
    async fn stdin(&mut self, rx: &mut Unchunk) -> Result<(), String> {
        let mut pending = Vec::new();
        let mut header = None;
        let mut ready: Vec<Columns> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        for _ in 0..u64::MAX {
            // Ctrl-C (the way a followed push ends) sends what has been read, then stops.
            let wake = deadline.unwrap_or_else(|| tokio::time::Instant::now() + IDLE_WAKE);
            let item = tokio::select! {
                item = rx.recv() => item.map(Some),
                _ = tokio::time::sleep_until(wake) => Some(None),
                _ = &mut interrupted => None,
            };
            match item {
                None => break,
                Some(None) => {
                    // Rows have waited long enough (or nothing came for IDLE_WAKE).
                    if self.columns.is_empty() && pending.is_empty() {
                        deadline = None;
                        continue;
                    }
                    if self.columns.is_empty() {
                        self.start(header.as_deref(), &mut pending, &mut ready)?;
                    }
                    if let Some(b) = self.take_batch() {
                        ready.push(b);
                    }
                    deadline = None;
                }
                Some(Some(Input::Header(names))) => header = Some(names),
                Some(Some(Input::Row(r))) => {
                    if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + self.batch_wait);
                    }
                    if self.columns.is_empty() {
                        pending.push(r);
                        if pending.len() >= INFER_ROWS {
                            self.start(header.as_deref(), &mut pending, &mut ready)?;
                        }
                    } else {
                        self.add(r, &mut ready)?;
                    }
                }
                Some(Some(Input::Bad { line, why })) => self.bad(line, &why)?,
            }
            for batch in ready.drain(..) {
                self.send(batch).await?;
                deadline = None;
            }
        }
        if self.columns.is_empty() && !pending.is_empty() {
            self.start(header.as_deref(), &mut pending, &mut ready)?;
        }
        if let Some(b) = self.take_batch() {
            ready.push(b);
        }
        for batch in ready {
            self.send(batch).await?;
        }
        Ok(())
    }

    /// Fixes the column types from the rows held back for that, then adds those rows.
    fn start(
        &mut self,
        header: Option<&[String]>,
        pending: &mut Vec<Record>,
        ready: &mut Vec<Columns>,
    ) -> Result<(), String> {
        self.settle_schema(header, pending)?;
        for r in pending.drain(..) {
            self.add(r, ready)?;
        }
        Ok(())
    }

    /// Fixes the column types: `--schema`, then what the first rows hold.
    fn settle_schema(&mut self, header: Option<&[String]>, rows: &[Record]) -> Result<(), String> {
        let Some(names) = header else {
            return Err(
                "the input is empty: it needs a header row (CSV) or a first object (NDJSON)".into(),
            );
        };
        if names.is_empty() || names.iter().any(String::is_empty) {
            return Err("line 1: every column needs a name".into());
        }
        for (name, _) in &self.overrides {
            if !names.contains(name) {
                return Err(format!(
                    "--schema names column {name:?}, which the input does not have"
                ));
            }
        }
        self.columns = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let ty = match self.overrides.iter().find(|(n, _)| n == name) {
                    Some((_, t)) => *t,
                    None => infer(name, rows.iter().filter_map(move |r| r.fields.get(i)))?,
                };
                Ok((name.clone(), ty))
            })
            .collect::<Result<_, String>>()?;
        self.batch = self.columns.iter().map(|(_, t)| empty(*t)).collect();
        Ok(())
    }

    /// Converts a row and adds it to the batch; a full batch goes to `ready`.
    fn add(&mut self, r: Record, ready: &mut Vec<Columns>) -> Result<(), String> {
        if r.fields.len() != self.columns.len() {
            return self.bad(
                r.line,
                &format!(
                    "{} values for {} columns",
                    r.fields.len(),
                    self.columns.len()
                ),
            );
        }
        let mut converted = Vec::with_capacity(self.columns.len());
        for (i, (name, ty)) in self.columns.iter().enumerate() {
            let Some(field) = r.fields.get(i) else {
                continue;
            };
            match convert(*ty, field) {
                Some(v) => converted.push(v),
                None => {
                    let why = format!("column {name:?}: {} is not {}", show(field), ty.name());
                    return self.bad(r.line, &why);
                }
            }
        }
        for (values, v) in self.batch.iter_mut().zip(converted) {
            push_value(values, v);
        }
        self.rows_in_batch += 1;
        if self.rows_in_batch >= self.batch_rows {
            if let Some(b) = self.take_batch() {
                ready.push(b);
            }
        }
        Ok(())
    }

    fn bad(&mut self, line: u64, why: &str) -> Result<(), String> {
        if self.skip_bad_rows {
            self.skipped += 1;
            return Ok(());
        }
        Err(format!(
            "line {line}: {why} (nothing of this push was sent{}; --skip-bad-rows skips such rows)",
            if self.sent_rows > 0 {
                " after the rows before it"
            } else {
                ""
            }
        ))
    }

    fn take_batch(&mut self) -> Option<Columns> {
        if self.rows_in_batch == 0 {
            return None;
        }
        self.rows_in_batch = 0;
        let mut cols = Columns::new();
        for ((name, ty), values) in self.columns.iter().zip(self.batch.iter_mut()) {
            cols.insert(name.clone(), std::mem::replace(values, empty(*ty)));
        }
        Some(cols)
    }

    async fn send(&mut self, batch: Columns) -> Result<(), String> {
        let rows = batch.rows().unwrap_or(0) as u64;
        self.client
            .stream(&self.name, &self.source, &batch, self.rollover)
            .await
            .map_err(|e| format!("{e}{}", sent_so_far(self.sent_rows)))?;
        self.sent_rows += rows;
        let row_bytes: u64 = self
            .columns
            .iter()
            .map(|(_, t)| match t {
                ColType::Bool => 1,
                // An estimate: text goes as Arrow offsets and bytes.
                ColType::Text => 16,
                _ => 8,
            })
            .sum();
        self.sent_bytes += rows * row_bytes;
        let line = Progress::line(self);
        self.progress.tick(line);
        Ok(())
    }
}

fn sent_so_far(rows: u64) -> String {
    if rows == 0 {
        " (nothing was sent)".into()
    } else {
        format!(" ({rows} rows were sent before)")
    }
}

fn empty(t: ColType) -> Values {
    match t {
        ColType::F64 => Values::F64(Vec::new()),
        ColType::I64 => Values::I64(Vec::new()),
        ColType::Bool => Values::Bool(Vec::new()),
        ColType::Text => Values::Text(Vec::new()),
    }
}

/// A converted value.
enum Scalar {
    F(f64),
    I(i64),
    B(bool),
    T(String),
}

fn push_value(values: &mut Values, v: Scalar) {
    match (values, v) {
        (Values::F64(col), Scalar::F(x)) => col.push(x),
        (Values::I64(col), Scalar::I(x)) => col.push(x),
        (Values::Bool(col), Scalar::B(x)) => col.push(x),
        (Values::Text(col), Scalar::T(x)) => col.push(x),
        _ => {}
    }
}

fn convert(t: ColType, f: Field<'_>) -> Option<Scalar> {
    match (t, f) {
        (ColType::F64, Field::Text(s)) => parse_f64(s).map(Scalar::F),
        (ColType::I64, Field::Text(s)) => s.parse().ok().map(Scalar::I),
        (ColType::Bool, Field::Text(s)) => parse_bool(s).map(Scalar::B),
        (ColType::F64, Field::Json(Json::Number(n))) => n.as_f64().map(Scalar::F),
        (ColType::F64, Field::Json(Json::Null)) => Some(Scalar::F(f64::NAN)),
        (ColType::I64, Field::Json(Json::Number(n))) => n.as_i64().map(Scalar::I),
        (ColType::Bool, Field::Json(Json::Bool(b))) => Some(Scalar::B(*b)),
        (ColType::Text, Field::Text(s)) => Some(Scalar::T(s.to_owned())),
        (ColType::Text, Field::Json(Json::String(s))) => Some(Scalar::T(s.clone())),
        (ColType::Text, Field::Json(j @ (Json::Number(_) | Json::Bool(_)))) => {
            Some(Scalar::T(j.to_string()))
        }
        _ => None,
    }
}

fn parse_f64(s: &str) -> Option<f64> {
    if s.is_empty() {
        return Some(f64::NAN);
    }
    s.parse().ok()
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" | "1" => Some(true),
        "false" | "False" | "FALSE" | "0" => Some(false),
        _ => None,
    }
}

fn show(f: Field<'_>) -> String {
    match f {
        Field::Text(s) => format!("{s:?}"),
        Field::Json(j) => j.to_string(),
    }
}

/// The type of a column from its first values: the first of int64, float64 and bool that
/// all of them fit; else the one (float64 before bool) that at least half of them fit,
/// the others then being bad rows, reported with their line; else text.
fn infer<'a>(
    name: &str,
    values: impl Iterator<Item = Field<'a>> + Clone,
) -> Result<ColType, String> {
    let total = values.clone().count();
    let fits = |t: ColType| values.clone().filter(|f| convert(t, *f).is_some()).count();
    if let Some(t) = [ColType::I64, ColType::F64, ColType::Bool]
        .into_iter()
        .find(|t| fits(*t) == total)
    {
        return Ok(t);
    }
    if let Some(t) = [ColType::F64, ColType::Bool].into_iter().find(|t| {
        let n = fits(*t);
        n > 0 && n * 2 >= total
    }) {
        return Ok(t);
    }
    if values.clone().all(|f| convert(ColType::Text, f).is_some()) {
        return Ok(ColType::Text);
    }
    let example = values
        .clone()
        .find(|f| convert(ColType::Text, *f).is_none())
        .map(show)
        .unwrap_or_default();
    Err(format!(
        "column {name:?} holds {example}, which is not a number, a boolean or a text \
         (give its type with --schema {name}:float64 to stop at the first bad value)"
    ))
}

/// Rows, rows/s and bytes: a bar on a terminal, a line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_log: Instant,
}

impl Progress {
    fn new() -> Progress {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            last_log: Instant::now(),
        }
    }

    fn line(push: &Push) -> String {
        let secs = push.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "{} rows sent ({:.0} rows/s, {:.1} MB){}",
            push.sent_rows,
            push.sent_rows as f64 / secs,
            push.sent_bytes as f64 / 1e6,
            if push.skipped > 0 {
                format!(", {} bad rows skipped", push.skipped)
            } else {
                String::new()
            }
        )
    }

    fn tick(&mut self, line: String) {
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None if self.last_log.elapsed() >= LOG_EVERY => {
                eprintln!("plotwire push: {line}");
                self.last_log = Instant::now();
            }
            None => {}
        }
    }

    fn finish(&self, push: &Push, ok: bool) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if ok {
            eprintln!(
                "plotwire push: {} in {:.1} s",
                Progress::line(push),
                push.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// `--schema name:type,...` as column types.
fn parse_schema(schema: Option<&str>) -> Result<Vec<(String, ColType)>, String> {
    schema
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            part.split_once(':')
                .and_then(|(n, t)| Some((n.trim(), ColType::parse(t.trim())?)))
                .filter(|(n, _)| !n.is_empty())
                .map(|(n, t)| (n.to_owned(), t))
                .ok_or_else(|| {
                    format!(
                        "--schema: {part:?} is not name:type (types: float64, int64, bool, text)"
                    )
                })
        })
        .collect()
}
