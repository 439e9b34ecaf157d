//! Reading the input on a thread of its own (a read may block for a long time): CSV or
//! NDJSON records, handed to the sender in chunks.

use std::io::{BufRead, Read};

use serde_json::Value as Json;
use tokio::sync::mpsc;

use super::{Fields, Input, InputFormat, Record};

/// The reader's side of the channel: records go in chunks of `size`.
pub(super) struct Chunks {
    tx: mpsc::Sender<Vec<Input>>,
    chunk: Vec<Input>,
    size: usize,
}

impl Chunks {
    pub(super) fn new(tx: mpsc::Sender<Vec<Input>>, size: usize) -> Chunks {
        Chunks {
            tx,
            chunk: Vec::with_capacity(size),
            size,
        }
    }

    /// Queues `item`; false once the sender is gone.
    pub(super) fn blocking_send(&mut self, item: Input) -> Result<(), ()> {
        self.chunk.push(item);
        if self.chunk.len() >= self.size {
            return self.flush();
        }
        Ok(())
    }

    pub(super) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    pub(super) fn flush(&mut self) -> Result<(), ()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(self.size));
        self.tx.blocking_send(chunk).map_err(drop)
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// The sender's side: one record at a time.
pub(super) struct Unchunk {
    rx: mpsc::Receiver<Vec<Input>>,
    chunk: std::vec::IntoIter<Input>,
}

impl Unchunk {
    pub(super) fn new(rx: mpsc::Receiver<Vec<Input>>) -> Unchunk {
        Unchunk {
            rx,
            chunk: Vec::new().into_iter(),
        }
    }

    pub(super) async fn recv(&mut self) -> Option<Input> {
        for _ in 0..2 {
            if let Some(item) = self.chunk.next() {
                return Some(item);
            }
            self.chunk = self.rx.recv().await?.into_iter();
        }
        self.chunk.next()
    }
}

/// Reads records on a thread of its own (the input may block), until the end or until
/// the sender is gone.
pub(super) fn read_input(input: &mut (dyn BufRead + Send), format: InputFormat, tx: &mut Chunks) {
    match format {
        InputFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(true)
                .from_reader(input as &mut dyn Read);
            match reader.headers() {
                Ok(h) => {
                    let names = h.iter().map(|s| s.trim().to_owned()).collect();
                    if tx.blocking_send(Input::Header(names)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Input::Bad {
                        line: 1,
                        why: format!("the header row does not parse: {e}"),
                    });
                    return;
                }
            }
            for _ in 0..u64::MAX {
                let line = reader.position().line() + 1;
                // A record of its own each time: it moves to the sender whole.
                let mut record = csv::StringRecord::new();
                let item = match reader.read_record(&mut record) {
                    Ok(false) => return,
                    Ok(true) => Input::Row(Record {
                        line: record.position().map_or(line, |p| p.line()),
                        fields: Fields::Csv(record),
                    }),
                    Err(e) => Input::Bad {
                        line,
                        why: e.to_string(),
                    },
                };
                if tx.blocking_send(item).is_err() {
                    return;
                }
            }
        }
        InputFormat::Ndjson => {
            let mut names: Option<Vec<String>> = None;
            let mut text = String::new();
            for line in 1..u64::MAX {
                text.clear();
                match input.read_line(&mut text) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Input::Bad {
                            line,
                            why: format!("cannot read: {e}"),
                        });
                        return;
                    }
                }
                if text.trim().is_empty() {
                    continue;
                }
                for item in ndjson_line(&text, &mut names, line) {
                    if tx.blocking_send(item).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// One NDJSON line: the first object's keys are the columns.
pub(super) fn ndjson_line(text: &str, keys: &mut Option<Vec<String>>, line: u64) -> Vec<Input> {
    let mut obj = match serde_json::from_str::<serde_json::Map<String, Json>>(text) {
        Ok(obj) => obj,
        Err(e) => {
            return vec![Input::Bad {
                line,
                why: format!("not a JSON object: {e}"),
            }]
        }
    };
    let mut out = Vec::with_capacity(2);
    let cols = match keys {
        Some(k) => k.clone(),
        None => {
            let k: Vec<String> = obj.keys().cloned().collect();
            out.push(Input::Header(k.clone()));
            *keys = Some(k.clone());
            k
        }
    };
    if obj.len() != cols.len() || !cols.iter().all(|c| obj.contains_key(c)) {
        out.push(Input::Bad {
            line,
            why: format!(
                "the row's keys are not the first row's ({})",
                cols.join(", ")
            ),
        });
    } else {
        out.push(Input::Row(Record {
            line,
            fields: Fields::Json(
                cols.iter()
                    .map(|c| obj.remove(c).unwrap_or(Json::Null))
                    .collect(),
            ),
        }));
    }
    out
}
