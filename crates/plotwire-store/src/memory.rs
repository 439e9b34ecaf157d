//! The in-memory [`Store`]: the same contract as the durable engines, for tests.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use crate::{Appended, Entry, EntryKind, Record, Store, StoreError};

/// A [`Store`] that keeps every log in memory and loses it with the process.
#[derive(Default)]
pub struct MemoryStore {
    logs: Mutex<BTreeMap<String, Vec<Record>>>,
    failed: Mutex<HashSet<String>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn logs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Record>>> {
        // Every critical section is one map operation: a poisoned lock is still usable.
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn documents(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.logs().keys().cloned().collect())
    }

    fn append(&self, doc: &str, seq: u64, entry: Entry) -> Appended {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed.contains(doc) {
            return Appended::done(Err(StoreError::Io(format!(
                "an earlier write to {doc:?} failed; it takes no more until it is recovered"
            ))));
        }
        let mut logs = self.logs();
        let log = logs.entry(doc.to_owned()).or_default();
        if log.last().is_some_and(|r| r.seq >= seq) {
            failed.insert(doc.to_owned());
            return Appended::done(Err(StoreError::Corrupt(format!(
                "sequence number {seq} of {doc:?} is not above the last one stored"
            ))));
        }
        if entry.kind == EntryKind::Publish {
            log.clear();
        }
        log.push(Record { seq, entry });
        Appended::done(Ok(()))
    }

    fn read_from(&self, doc: &str, from: u64) -> Result<Vec<Record>, StoreError> {
        Ok(self
            .logs()
            .get(doc)
            .map(|log| log.iter().filter(|r| r.seq >= from).cloned().collect())
            .unwrap_or_default())
    }

    fn snapshot(&self, doc: &str, seq: u64, entry: Entry) -> Appended {
        if let Some(log) = self.logs().get_mut(doc) {
            log.retain(|r| r.seq > seq);
            log.insert(0, Record { seq, entry });
        }
        Appended::done(Ok(()))
    }

    fn delete(&self, doc: &str) -> Appended {
        self.logs().remove(doc);
        self.recover(doc)
    }

    fn recover(&self, doc: &str) -> Appended {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(doc);
        Appended::done(Ok(()))
    }
}
