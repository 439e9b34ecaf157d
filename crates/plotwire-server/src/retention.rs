//! Per-document retention (`docs/storage.md`, "Retention"): the `max_rows` and
//! `max_age` a published document is given at publish time, and the arrival times of
//! its sources' rows that `max_age` is measured against.
//!
//! Arrivals are kept per source as a short queue of `(rows, wall time)` batches, oldest
//! first, bounded by [`MAX_BATCHES`]. They are derived from the document events the
//! owner applies and the row counts the document has after them, live and on replay
//! alike ([`Arrivals::observe`]), so a restart rebuilds the same queues from the log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plotwire_document::Document;
use plotwire_protocol::event::DocumentEvent;
use plotwire_protocol::Id;

use crate::error::HttpError;

/// The largest `max_rows` a document may be given.
pub const MAX_ROWS_LIMIT: u64 = 1_000_000_000;

/// The shortest `max_age` a document may be given.
pub const MIN_AGE: Duration = Duration::from_secs(1);

/// The longest `max_age` a document may be given: 365 days.
pub const MAX_AGE_LIMIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Arrival batches kept per source: past it, the two oldest are merged (their rows are
/// then kept as long as the younger of them).
pub const MAX_BATCHES: usize = 1024;

/// The longest time between two trims of a document with `max_age`.
const MAX_TRIM_EVERY: Duration = Duration::from_secs(60);

/// What a published document keeps: at most `max_rows` rows per source, and no row that
/// arrived more than `max_age` ago. Empty: everything is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Retention {
    /// Rows each column data source keeps: the rollover of streams that give none, the
    /// most a stream keeps, and the most a replace may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// How long a row is kept after it arrived, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<u64>,
}

impl Retention {
    /// The retention given by a publish's query parameters `max_rows` and `max_age`
    /// (`30s`, `15m`, `1h`, `7d`); 400 naming the parameter for a bad value.
    pub fn from_query(query: &HashMap<String, String>) -> Result<Retention, HttpError> {
        let max_rows = match query.get("max_rows") {
            None => None,
            Some(s) => Some(parse_rows(s).map_err(|m| bad("max_rows", &m))?),
        };
        let max_age_ms = match query.get("max_age") {
            None => None,
            Some(s) => Some(parse_age_ms(s).map_err(|m| bad("max_age", &m))?),
        };
        Ok(Retention {
            max_rows,
            max_age_ms,
        })
    }

    /// `{"max_rows":N,"max_age":"D"}` for a document's summary, with `max_age` in its
    /// largest whole unit; `None` when nothing is limited.
    pub fn summary_json(&self) -> Option<String> {
        if self.is_none() {
            return None;
        }
        let mut fields = Vec::new();
        if let Some(rows) = self.max_rows {
            fields.push(format!("\"max_rows\":{rows}"));
        }
        if let Some(ms) = self.max_age_ms {
            let seconds = ms / 1000;
            let age = [(86_400, 'd'), (3600, 'h'), (60, 'm')]
                .iter()
                .find(|(unit, _)| seconds % unit == 0)
                .map_or_else(
                    || format!("{seconds}s"),
                    |(unit, c)| format!("{}{c}", seconds / unit),
                );
            fields.push(format!("\"max_age\":\"{age}\""));
        }
        Some(format!("{{{}}}", fields.join(",")))
    }

    /// A retention of `max_rows` rows per source and `max_age` (`30s`, `15m`, `1h`,
    /// `7d`), checked as a publish's query parameters are.
    ///
    /// # Errors
    /// 400 naming `max_rows` or `max_age` when it is out of bounds or not a duration.
    pub fn new(max_rows: Option<u64>, max_age: Option<&str>) -> Result<Retention, HttpError> {
        let mut query = HashMap::new();
        if let Some(rows) = max_rows {
            query.insert("max_rows".to_owned(), rows.to_string());
        }
        if let Some(age) = max_age {
            query.insert("max_age".to_owned(), age.to_owned());
        }
        Retention::from_query(&query)
    }

    /// Whether nothing is limited.
    pub fn is_none(&self) -> bool {
        self.max_rows.is_none() && self.max_age_ms.is_none()
    }

    /// `max_rows` as a row count.
    pub fn max_rows(&self) -> Option<usize> {
        self.max_rows
            .map(|m| usize::try_from(m).unwrap_or(usize::MAX))
    }

    /// Arrival batches closer than this (a [`MAX_BATCHES`]th of `max_age`) share one
    /// wall time: the older one.
    pub fn merge_ms(&self) -> u64 {
        self.max_age_ms.map_or(0, |ms| ms / MAX_BATCHES as u64)
    }

    /// The least time between two trims: a sixteenth of `max_age`, between 1 s and
    /// 60 s. A row goes between `max_age` and `max_age` plus this after it arrived.
    pub fn trim_every(&self) -> Option<Duration> {
        self.max_age_ms.map(|ms| {
            (Duration::from_millis(ms) / 16).clamp(Duration::from_secs(1), MAX_TRIM_EVERY)
        })
    }
}

fn bad(param: &str, message: &str) -> HttpError {
    HttpError::bad_request(format!("{param}: {message}")).with_field(param.to_owned())
}

fn parse_rows(s: &str) -> Result<u64, String> {
    let rows: u64 = s
        .parse()
        .map_err(|_| format!("must be a row count, not {s:?}"))?;
    if rows == 0 || rows > MAX_ROWS_LIMIT {
        return Err(format!(
            "must be between 1 and {MAX_ROWS_LIMIT} rows, not {rows}"
        ));
    }
    Ok(rows)
}

/// Parses a duration like `30s`, `15m`, `1h` or `7d` into milliseconds, within
/// [`MIN_AGE`] and [`MAX_AGE_LIMIT`].
pub fn parse_age_ms(s: &str) -> Result<u64, String> {
    let usage = || {
        format!(
            "must be a whole number followed by s, m, h or d (like 30s, 15m, 1h, 7d), not {s:?}"
        )
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(usage)?;
    let (number, unit) = s.split_at(split);
    let seconds: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(usage()),
    };
    let n: u64 = number.parse().map_err(|_| usage())?;
    let limit = MAX_AGE_LIMIT.as_secs();
    let total = n.checked_mul(seconds).filter(|t| *t <= limit);
    match total {
        Some(t) if t >= MIN_AGE.as_secs() => Ok(t * 1000),
        _ => Err(format!(
            "must be between {}s and {}d, not {s:?}",
            MIN_AGE.as_secs(),
            limit / 86_400
        )),
    }
}

/// The wall time now, in milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The rows source `id` of `doc` holds (its first column's length).
pub fn source_rows(doc: &Document, id: &str) -> usize {
    doc.model(id)
        .and_then(|m| m.columns.as_ref())
        .and_then(|c| c.names().next().and_then(|n| c.get(n)).map(|c| c.len()))
        .unwrap_or(0)
}

/// How an event changed a source's rows, for its arrivals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Rows were appended (then possibly rolled over).
    Appended,
    /// The whole content was replaced: every row arrived now.
    Replaced,
}

/// The arrival times of every source's rows: per source, `(rows, wall ms)` batches,
/// oldest first, that add up to the rows it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Arrivals {
    sources: BTreeMap<Id, VecDeque<(u64, u64)>>,
}

impl Arrivals {
    /// Every row of `doc` arriving at `at`.
    pub fn fresh(doc: &Document, at: u64) -> Arrivals {
        let mut arrivals = Arrivals::default();
        for (id, m) in doc.models() {
            if m.columns.is_some() {
                arrivals.settle(id, source_rows(doc, id), at, 0);
            }
        }
        arrivals
    }

    /// The sources `events` change the rows of, and how.
    pub fn changes(events: &[DocumentEvent]) -> Vec<(Id, Change)> {
        events
            .iter()
            .filter_map(|e| match e {
                DocumentEvent::ColumnsStreamed { model, .. } => {
                    Some((model.clone(), Change::Appended))
                }
                DocumentEvent::ColumnDataChanged { model, .. } => {
                    Some((model.clone(), Change::Replaced))
                }
                DocumentEvent::ModelChanged { model, attr, .. } if attr == "data" => {
                    Some((model.clone(), Change::Replaced))
                }
                _ => None,
            })
            .collect()
    }

    /// After `changes` were applied to `doc` at wall time `at`: new rows arrived at
    /// `at`, rolled-over rows are gone from the front. Batches closer than `merge_ms`
    /// to the newest one join it.
    pub fn observe(&mut self, changes: &[(Id, Change)], at: u64, doc: &Document, merge_ms: u64) {
        for (id, change) in changes {
            if *change == Change::Replaced {
                self.sources.remove(id);
            }
        }
        for (id, _) in changes {
            if doc.model(id).is_some_and(|m| m.columns.is_some()) {
                self.settle(id, source_rows(doc, id), at, merge_ms);
            } else {
                self.sources.remove(id);
            }
        }
    }

    /// Makes source `id`'s batches add up to `rows`: rows it lacks arrived at `at`,
    /// rows it has too many of are dropped from the front.
    fn settle(&mut self, id: &str, rows: usize, at: u64, merge_ms: u64) {
        let rows = rows as u64;
        let batches = self.sources.entry(id.to_owned()).or_default();
        let mut total: u64 = batches.iter().map(|(n, _)| n).sum();
        while total > rows {
            let Some(front) = batches.front_mut() else {
                break;
            };
            let drop = front.0.min(total - rows);
            front.0 -= drop;
            total -= drop;
            if front.0 == 0 {
                batches.pop_front();
            }
        }
        if total < rows {
            let more = rows - total;
            match batches.back_mut() {
                Some(back) if at.saturating_sub(back.1) < merge_ms => back.0 += more,
                _ => batches.push_back((more, at)),
            }
        }
        while batches.len() > MAX_BATCHES {
            if let (Some(first), Some(second)) = (batches.pop_front(), batches.front_mut()) {
                second.0 += first.0;
            }
        }
    }

    /// The wall time of the oldest row tracked, if any.
    pub fn oldest(&self) -> Option<u64> {
        self.sources
            .values()
            .filter_map(|b| b.front().map(|(_, at)| *at))
            .min()
    }

    /// The sources of `doc` holding rows that arrived `max_age_ms` or longer before
    /// `now`, each with the rows to keep. Forgets sources that left the document.
    pub fn due(&mut self, now: u64, max_age_ms: u64, doc: &Document) -> Vec<(Id, usize)> {
        self.sources
            .retain(|id, _| doc.model(id).is_some_and(|m| m.columns.is_some()));
        let cutoff = now.saturating_sub(max_age_ms);
        self.sources
            .iter()
            .filter_map(|(id, batches)| {
                let old: u64 = batches
                    .iter()
                    .take_while(|(_, at)| *at <= cutoff)
                    .map(|(n, _)| n)
                    .sum();
                let rows = source_rows(doc, id);
                (old > 0).then(|| {
                    let keep = (rows as u64).saturating_sub(old);
                    (id.clone(), usize::try_from(keep).unwrap_or(usize::MAX))
                })
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_with_their_unit_and_within_bounds() {
        assert_eq!(parse_age_ms("30s"), Ok(30_000));
        assert_eq!(parse_age_ms("15m"), Ok(900_000));
        assert_eq!(parse_age_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_age_ms("7d"), Ok(604_800_000));
        assert_eq!(parse_age_ms("365d"), Ok(31_536_000_000));
        for bad in [
            "",
            "1",
            "s",
            "0s",
            "1.5h",
            "-1s",
            "1w",
            "1 h",
            "366d",
            "1H",
            "99999999999999999999s",
            "9999999999999999d",
        ] {
            assert!(parse_age_ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rows_parse_within_bounds() {
        assert_eq!(parse_rows("1"), Ok(1));
        assert_eq!(parse_rows("1000000000"), Ok(MAX_ROWS_LIMIT));
        for bad in ["0", "-1", "1e3", "", "1000000001", "x"] {
            assert!(parse_rows(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn trims_come_every_sixteenth_of_the_age_between_one_second_and_a_minute() {
        let every = |ms| {
            Retention {
                max_rows: None,
                max_age_ms: Some(ms),
            }
            .trim_every()
            .unwrap()
        };
        assert_eq!(every(1000), Duration::from_secs(1));
        assert_eq!(every(160_000), Duration::from_secs(10));
        assert_eq!(every(604_800_000), Duration::from_secs(60));
    }

    #[test]
    fn batches_settle_to_the_rows_held_and_stay_bounded() {
        let mut a = Arrivals::default();
        a.settle("s", 10, 1000, 0);
        a.settle("s", 25, 2000, 0);
        a.settle("s", 20, 3000, 0);
        assert_eq!(a.sources["s"], VecDeque::from([(5, 1000), (15, 2000)]));
        a.settle("s", 30, 3005, 2000);
        assert_eq!(a.sources["s"], VecDeque::from([(5, 1000), (25, 2000)]));
        for i in 0..(MAX_BATCHES as u64 * 3) {
            a.settle("s", 31 + i as usize, 10_000 + i * 100, 10);
        }
        assert_eq!(a.sources["s"].len(), MAX_BATCHES);
        let total: u64 = a.sources["s"].iter().map(|(n, _)| n).sum();
        assert_eq!(total, 30 + MAX_BATCHES as u64 * 3);
        assert_eq!(
            a.sources["s"].back().unwrap().1,
            10_000 + (MAX_BATCHES as u64 * 3 - 1) * 100
        );
    }

    #[test]
    fn a_summary_names_the_age_in_its_largest_whole_unit() {
        let r = |rows: Option<u64>, age: Option<&str>| Retention {
            max_rows: rows,
            max_age_ms: age.map(|a| parse_age_ms(a).unwrap()),
        };
        assert_eq!(r(None, None).summary_json(), None);
        assert_eq!(
            r(Some(5), None).summary_json().unwrap(),
            r#"{"max_rows":5}"#
        );
        for (given, shown) in [
            ("7d", "7d"),
            ("90m", "90m"),
            ("3600s", "1h"),
            ("45s", "45s"),
            ("48h", "2d"),
        ] {
            assert_eq!(
                r(Some(1), Some(given)).summary_json().unwrap(),
                format!(r#"{{"max_rows":1,"max_age":"{shown}"}}"#)
            );
        }
    }
}
