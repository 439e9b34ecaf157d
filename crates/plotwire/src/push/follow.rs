//! `plotwire push --follow FILE`: the file's rows, then the lines appended to it, as
//! `tail -F` follows a log: when the file is replaced (rotated: a new file at the path) or
//! truncated, the rest of the old one is read and then the new one from its start.
//!
//! Lines are read whole (a line without its newline waits for the rest), so a CSV field
//! cannot span lines here. A rotated CSV file that starts with the same header row has it
//! skipped.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::input::{ndjson_line, Chunks};
use super::{Fields, Input, InputFormat, Record};

/// How often the file is checked for new lines and for a rotation, once read to its end.
const POLL: Duration = Duration::from_millis(100);

/// The open file and where it is.
struct Followed {
    path: PathBuf,
    reader: BufReader<File>,
    inode: u64,
    pos: u64,
}

impl Followed {
    fn open(path: &Path) -> std::io::Result<Followed> {
        let file = File::open(path)?;
        let inode = file.metadata()?.ino();
        Ok(Followed {
            path: path.to_owned(),
            reader: BufReader::with_capacity(1 << 16, file),
            inode,
            pos: 0,
        })
    }

    /// Whether the path now names another file, or this one was truncated.
    fn replaced(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => m.ino() != self.inode || m.len() < self.pos,
            // Between the rename and the new file: not yet.
            Err(_) => false,
        }
    }
}

/// Follows `path` until the sender is gone; the error is a message for the user.
pub(super) fn follow(path: &Path, format: InputFormat, tx: &mut Chunks) -> Result<(), String> {
    let mut file =
        Followed::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut header: Option<String> = None;
    let mut ndjson_keys: Option<Vec<String>> = None;
    let mut partial = String::new();
    let mut line_no = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        let n = file
            .reader
            .read_line(&mut line)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        file.pos += n as u64;
        if n > 0 && line.ends_with('\n') {
            partial.push_str(&line);
            let whole = std::mem::take(&mut partial);
            let text = whole.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            line_no += 1;
            let items = match format {
                InputFormat::Csv => csv_line(text, &mut header, line_no),
                InputFormat::Ndjson => ndjson_line(text, &mut ndjson_keys, line_no),
            };
            for item in items {
                if tx.blocking_send(item).is_err() {
                    return Ok(());
                }
            }
            continue;
        }
        // At the end (maybe of a line still being written).
        partial.push_str(&line);
        if tx.flush().is_err() || tx.is_closed() {
            return Ok(());
        }
        if file.replaced() {
            // A new file at the path, or this one truncated: from its start.
            if let Ok(next) = Followed::open(path) {
                file = next;
                partial.clear();
                line_no = 0;
                if let Some(h) = &header {
                    skip_header(&mut file, h);
                }
                continue;
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Skips the first line of a rotated CSV file when it repeats the header.
fn skip_header(file: &mut Followed, header: &str) {
    let mut first = String::new();
    if let Ok(n) = file.reader.read_line(&mut first) {
        if first.trim_end_matches(['\n', '\r']) == header {
            file.pos = n as u64;
            return;
        }
    }
    let _ = file.reader.seek(SeekFrom::Start(0));
    file.pos = 0;
}

/// One CSV line: the header first, then rows.
fn csv_line(text: &str, header: &mut Option<String>, line: u64) -> Vec<Input> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    let parsed = reader.read_record(&mut record);
    match (parsed, header.is_some()) {
        (Err(e), _) => vec![Input::Bad {
            line,
            why: e.to_string(),
        }],
        (Ok(_), false) => {
            *header = Some(text.to_owned());
            vec![Input::Header(
                record.iter().map(|s| s.trim().to_owned()).collect(),
            )]
        }
        (Ok(_), true) => vec![Input::Row(Record {
            line,
            fields: Fields::Csv(record),
        })],
    }
}
