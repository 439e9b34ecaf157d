//! The session registry: finds or creates sessions by id and discards unused ones
//! (spec §8.3). It is consulted when a page is served or a connection opens, never on
//! the per-message path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::session::{self, SessionHandle};

/// Commands queued per session owner before senders wait.
const OWNER_QUEUE: usize = 1024;

/// A summary of one live session, for the index page.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    /// The session id.
    pub id: String,
    /// The app path it lives under.
    pub app: String,
    /// Open connections.
    pub connections: usize,
}

/// All live sessions of the server.
pub struct Registry {
    sessions: Mutex<HashMap<String, Arc<SessionHandle>>>,
    check_every: Duration,
    lifetime: Duration,
    reaper_started: AtomicBool,
}

impl Registry {
    /// An empty registry that discards sessions unused for `lifetime`, checking every
    /// `check_every`.
    pub fn new(check_every: Duration, lifetime: Duration) -> Arc<Registry> {
        Arc::new(Registry {
            sessions: Mutex::new(HashMap::new()),
            check_every,
            lifetime,
            reaper_started: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SessionHandle>>> {
        // A panic while holding this lock cannot leave the map inconsistent (every
        // critical section is a single map operation), so a poisoned lock is still usable.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session `id`, created under `app` with `token` as its creator token if it
    /// does not exist. With `attach`, the new connection is counted before the lock is
    /// released, so the reaper can never discard a session that is being joined.
    pub fn get_or_create(
        self: &Arc<Self>,
        id: &str,
        app: &str,
        token: &str,
        attach: bool,
    ) -> Arc<SessionHandle> {
        self.start_reaper();
        let mut map = self.lock();
        let handle = map
            .entry(id.to_owned())
            .or_insert_with(|| {
                tracing::info!(session = id, app, "session created");
                Arc::new(session::spawn(
                    id.to_owned(),
                    app.to_owned(),
                    token.to_owned(),
                    OWNER_QUEUE,
                ))
            })
            .clone();
        if attach {
            handle.attach();
        }
        handle
    }

    /// The live sessions, sorted by app then id.
    pub fn list(&self) -> Vec<SessionSummary> {
        let mut out: Vec<SessionSummary> = self
            .lock()
            .values()
            .map(|h| SessionSummary {
                id: h.id.clone(),
                app: h.app.clone(),
                connections: h.connection_count(),
            })
            .collect();
        out.sort_by(|a, b| (&a.app, &a.id).cmp(&(&b.app, &b.id)));
        out
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when there are no live sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Discards sessions that have had no connections for longer than the lifetime.
    /// Dropping the last handle closes the owner's queue, which stops its task.
    pub fn discard_unused(&self) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|id, h| {
            let keep = !h.unused_for(self.lifetime);
            if !keep {
                tracing::info!(session = %id, "discarding unused session");
            }
            keep
        });
        before - map.len()
    }

    fn start_reaper(self: &Arc<Self>) {
        if self.reaper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Registry> = Arc::downgrade(self);
        let every = self.check_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(reg) => {
                        reg.discard_unused();
                    }
                    None => break,
                }
            }
        });
    }
}
