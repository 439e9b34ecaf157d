//! Read-back cursors: which rows of a source are new since a document sequence number,
//! so that a poller sending `since=<next>` each time gets every appended row exactly
//! once, and is told to start over (`reset`) when appends cannot describe the change.

use std::collections::{HashMap, VecDeque};

use plotwire_protocol::Id;

/// Appends remembered per source; older cursors get the whole content.
const APPENDS_KEPT: usize = 4096;

/// The append history of one source.
#[derive(Debug, Default)]
struct History {
    /// The sequence number of the last change that was not an append.
    reset_seq: u64,
    /// Rows appended since that change (rollover does not lower it).
    appended: u64,
    /// `(seq, appended after it)`, oldest first.
    appends: VecDeque<(u64, u64)>,
    /// Cursors before this sequence number are older than the history.
    floor_seq: u64,
}

/// What a read from `since` must return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// The whole content: the reader must replace what it has.
    All,
    /// The last `n` rows of the current content: append them.
    Last(usize),
}

/// The cursors of every source of a document.
#[derive(Debug, Default)]
pub struct Cursors {
    sources: HashMap<Id, History>,
    /// The sequence number of the last replacement of the whole document: older
    /// cursors start over, whatever the source.
    doc_reset_seq: u64,
}

impl Cursors {
    /// Records that `source` got `rows` more rows at sequence number `seq`.
    pub fn appended(&mut self, source: &str, seq: u64, rows: usize) {
        let h = self.sources.entry(source.to_owned()).or_default();
        h.appended += rows as u64;
        if h.appends.len() == APPENDS_KEPT {
            if let Some((s, _)) = h.appends.pop_front() {
                h.floor_seq = s;
            }
        }
        h.appends.push_back((seq, h.appended));
    }

    /// Records a change to `source` that appends cannot describe (a replace, patch or
    /// clear) at sequence number `seq`.
    pub fn reset(&mut self, source: &str, seq: u64) {
        self.sources.insert(
            source.to_owned(),
            History {
                reset_seq: seq,
                floor_seq: seq,
                ..History::default()
            },
        );
    }

    /// Forgets every source: the whole document was replaced at `seq`.
    pub fn reset_all(&mut self, seq: u64) {
        self.sources.clear();
        self.doc_reset_seq = seq;
    }

    /// The rows a reader whose cursor is `since` must get, for a source that now holds
    /// `len` rows.
    pub fn rows_since(&self, source: &str, since: Option<u64>, len: usize) -> Rows {
        let Some(since) = since.filter(|s| *s >= self.doc_reset_seq) else {
            return Rows::All;
        };
        let Some(h) = self.sources.get(source) else {
            // Never changed since the document was made (sequence 0 and later).
            return Rows::Last(0);
        };
        if since < h.reset_seq || since < h.floor_seq {
            return Rows::All;
        }
        let at_since = h
            .appends
            .iter()
            .rev()
            .find(|(seq, _)| *seq <= since)
            .map_or(0, |(_, n)| *n);
        let new = h.appended.saturating_sub(at_since);
        match usize::try_from(new) {
            Ok(n) if n <= len => Rows::Last(n),
            // Rollover already dropped some of the new rows.
            _ => Rows::All,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_read_once() {
        let mut c = Cursors::default();
        c.appended("s", 1, 3);
        c.appended("s", 2, 2);
        assert_eq!(c.rows_since("s", None, 5), Rows::All);
        assert_eq!(c.rows_since("s", Some(0), 5), Rows::Last(5));
        assert_eq!(c.rows_since("s", Some(1), 5), Rows::Last(2));
        assert_eq!(c.rows_since("s", Some(2), 5), Rows::Last(0));
        assert_eq!(c.rows_since("other", Some(2), 7), Rows::Last(0));
    }

    #[test]
    fn rollover_and_resets_start_over() {
        let mut c = Cursors::default();
        c.appended("s", 1, 10);
        c.appended("s", 2, 10);
        // Rollover kept 15 rows: a reader at 0 lost 5 of its 20 new rows.
        assert_eq!(c.rows_since("s", Some(0), 15), Rows::All);
        assert_eq!(c.rows_since("s", Some(1), 15), Rows::Last(10));
        c.reset("s", 3);
        assert_eq!(c.rows_since("s", Some(2), 4), Rows::All);
        c.appended("s", 4, 1);
        assert_eq!(c.rows_since("s", Some(3), 5), Rows::Last(1));
        c.reset_all(5);
        assert_eq!(c.rows_since("s", Some(4), 5), Rows::All);
    }

    #[test]
    fn a_replaced_document_starts_every_source_over() {
        let mut c = Cursors::default();
        c.appended("old", 1, 2);
        c.reset_all(2);
        // "new" came with the replacing document; it was never streamed into.
        assert_eq!(c.rows_since("new", Some(1), 4), Rows::All);
        assert_eq!(c.rows_since("old", Some(1), 4), Rows::All);
        assert_eq!(c.rows_since("new", Some(2), 4), Rows::Last(0));
    }

    #[test]
    fn history_is_bounded() {
        let mut c = Cursors::default();
        for seq in 1..=(APPENDS_KEPT as u64 + 10) {
            c.appended("s", seq, 1);
        }
        assert_eq!(c.rows_since("s", Some(5), usize::MAX), Rows::All);
        let recent = APPENDS_KEPT as u64;
        assert_eq!(c.rows_since("s", Some(recent), usize::MAX), Rows::Last(10));
    }
}
