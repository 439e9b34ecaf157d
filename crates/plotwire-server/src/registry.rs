//! The session registry: finds or creates sessions by app path and id, discards unused
//! ones (spec §8.3), and removes a session whose owner panicked. It is consulted when a
//! page is served or a connection opens, never on the per-message path, and it never
//! logs while holding its lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::session::{self, SessionHandle, SessionLimits};

/// What a session that does not exist yet starts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// An empty document, as a new Bokeh session of an empty app.
    Empty,
    /// The notice that the session has ended ([`session::ended_document`]), for a browser
    /// that reconnects to a session the server no longer has.
    Ended,
    /// Like `Empty`, and a session that only holds the ended notice is replaced: a page
    /// load starts the session over.
    Fresh,
}

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

/// Sessions belong to the app path that created them: the same id under another app
/// is another session (as in Bokeh, where each app has its own sessions).
type Key = (String, String);

/// The app part of a published document's key: no app name contains a `/`.
const PUBLISHED_APP: &str = "/d";

/// A published document, for the index and the document list.
#[derive(Debug, Clone)]
pub struct PublishedSummary {
    /// Its name.
    pub name: String,
    /// Its title, views and last change.
    pub status: session::DocStatus,
    /// Open connections.
    pub connections: usize,
}

/// What [`Registry::publish`] did.
pub enum Published {
    /// The document was created.
    Created(Arc<SessionHandle>),
    /// It existed: here it is, and the content that was not used.
    Exists(
        Arc<SessionHandle>,
        Box<plotwire_document::Document>,
        Option<plotwire_spec::Spec>,
        crate::retention::Retention,
    ),
}

/// Why a document could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The server holds as many published documents as it may.
    #[error("the server already holds {limit} published documents (--max-documents)")]
    TooMany {
        /// The limit.
        limit: usize,
    },
}

/// The close code sent to the connections of a session whose owner panicked.
pub const OWNER_FAILED_CLOSE_CODE: u16 = 1011;

/// All live sessions of the server.
pub struct Registry {
    sessions: Mutex<HashMap<Key, Arc<SessionHandle>>>,
    check_every: Duration,
    lifetime: Duration,
    limits: SessionLimits,
    reaper_started: AtomicBool,
}

impl Registry {
    /// An empty registry whose sessions work within `limits` and are discarded when
    /// unused for `lifetime`, checked every `check_every`.
    pub fn new(check_every: Duration, lifetime: Duration, limits: SessionLimits) -> Arc<Registry> {
        Arc::new(Registry {
            sessions: Mutex::new(HashMap::new()),
            check_every,
            lifetime,
            limits,
            reaper_started: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<SessionHandle>>> {
        // A panic while holding this lock cannot leave the map inconsistent (every
        // critical section is a single map operation), so a poisoned lock is still usable.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session `id` of `app`, if it is live.
    pub fn get(&self, app: &str, id: &str) -> Option<Arc<SessionHandle>> {
        self.lock().get(&(app.to_owned(), id.to_owned())).cloned()
    }

    /// The session `id` of `app`, created as `start` says if it does not exist. With
    /// `attach`, the new connection is counted before the lock is released, so the reaper
    /// can never discard a session that is being joined.
    pub fn get_or_create(
        self: &Arc<Self>,
        app: &str,
        id: &str,
        attach: bool,
        start: Start,
    ) -> Arc<SessionHandle> {
        self.start_reaper();
        let key: Key = (app.to_owned(), id.to_owned());
        let mut created = None;
        let handle = {
            let mut map = self.lock();
            if start == Start::Fresh && map.get(&key).is_some_and(|h| h.is_ended_notice()) {
                map.remove(&key);
            }
            let handle = map
                .entry(key.clone())
                .or_insert_with(|| {
                    let seed = match (start == Start::Ended)
                        .then(session::ended_document)
                        .flatten()
                    {
                        Some(doc) => session::Seed::Ended(doc),
                        None => session::Seed::Empty,
                    };
                    let (handle, task) =
                        session::spawn(id.to_owned(), app.to_owned(), &self.limits, seed);
                    let handle = Arc::new(handle);
                    created = Some((Arc::downgrade(&handle), task));
                    handle
                })
                .clone();
            if attach {
                handle.attach();
            }
            handle
        };
        if let Some((weak, task)) = created {
            tracing::info!(session = id, app, "session created");
            self.supervise(key, weak, task);
        }
        handle
    }

    /// Watches an owner task: if it panics, its connections are closed with 1011 and the
    /// session is removed, so that a new one with the same id can be made.
    fn supervise(
        self: &Arc<Self>,
        key: Key,
        handle: Weak<SessionHandle>,
        task: tokio::task::JoinHandle<()>,
    ) {
        let registry = Arc::downgrade(self);
        tokio::spawn(async move {
            let Err(e) = task.await else {
                return;
            };
            if !e.is_panic() {
                return;
            }
            tracing::error!(
                app = %key.0,
                session = %key.1,
                "session owner panicked: closing its connections with 1011 and removing the session"
            );
            if let Some(h) = handle.upgrade() {
                h.end(OWNER_FAILED_CLOSE_CODE);
            }
            if let Some(reg) = registry.upgrade() {
                let mut map = reg.lock();
                let same = map
                    .get(&key)
                    .is_some_and(|h| std::ptr::eq(Arc::as_ptr(h), handle.as_ptr()));
                if same {
                    map.remove(&key);
                }
            }
        });
    }

    /// The published document `name`, if there is one.
    pub fn published(&self, name: &str) -> Option<Arc<SessionHandle>> {
        self.get(PUBLISHED_APP, name)
    }

    /// Creates the published document `name` from `doc`, if there is none. An existing
    /// document is returned as it is, with `doc`, `spec` and `retention` given back:
    /// replacing its content is its owner's job. At most `max_documents` may exist.
    pub fn publish(
        self: &Arc<Self>,
        name: &str,
        doc: plotwire_document::Document,
        spec: Option<plotwire_spec::Spec>,
        retention: crate::retention::Retention,
        max_documents: usize,
    ) -> Result<Published, PublishError> {
        let key: Key = (PUBLISHED_APP.to_owned(), name.to_owned());
        let (handle, task) = {
            let mut map = self.lock();
            if let Some(h) = map.get(&key) {
                return Ok(Published::Exists(h.clone(), Box::new(doc), spec, retention));
            }
            let count = map.values().filter(|h| h.published).count();
            if count >= max_documents {
                return Err(PublishError::TooMany {
                    limit: max_documents,
                });
            }
            let (handle, task) = session::spawn(
                name.to_owned(),
                PUBLISHED_APP.to_owned(),
                &self.limits,
                session::Seed::Published(doc, spec, retention),
            );
            let handle = Arc::new(handle);
            map.insert(key.clone(), handle.clone());
            (handle, task)
        };
        tracing::info!(document = name, "document published");
        self.supervise(key, Arc::downgrade(&handle), task);
        Ok(Published::Created(handle))
    }

    /// Serves the published document `name` as rebuilt from its log.
    pub fn restore(self: &Arc<Self>, name: &str, restored: crate::persist::Restored) {
        let key: Key = (PUBLISHED_APP.to_owned(), name.to_owned());
        let (handle, task) = session::spawn(
            name.to_owned(),
            PUBLISHED_APP.to_owned(),
            &self.limits,
            session::Seed::Restored(restored),
        );
        let handle = Arc::new(handle);
        self.lock().insert(key.clone(), handle.clone());
        self.supervise(key, Arc::downgrade(&handle), task);
    }

    /// Deletes the published document `name`; its connections close (1001) and
    /// reconnecting browsers are told it has ended. Returns whether it existed.
    pub fn unpublish(&self, name: &str) -> bool {
        let removed = self
            .lock()
            .remove(&(PUBLISHED_APP.to_owned(), name.to_owned()));
        match removed {
            Some(h) => {
                h.end(1001);
                tracing::info!(document = name, "document deleted");
                true
            }
            None => false,
        }
    }

    /// The published documents, sorted by name.
    pub fn list_published(&self) -> Vec<PublishedSummary> {
        let mut out: Vec<PublishedSummary> = self
            .lock()
            .values()
            .filter(|h| h.published)
            .map(|h| PublishedSummary {
                name: h.id.clone(),
                status: h.status(),
                connections: h.connection_count(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The live Bokeh sessions, sorted by app then id.
    pub fn list(&self) -> Vec<SessionSummary> {
        let mut out: Vec<SessionSummary> = self
            .lock()
            .values()
            .filter(|h| !h.published)
            .map(|h| SessionSummary {
                id: h.id.clone(),
                app: h.app.clone(),
                connections: h.connection_count(),
            })
            .collect();
        out.sort_by(|a, b| (&a.app, &a.id).cmp(&(&b.app, &b.id)));
        out
    }

    /// Live Bokeh sessions, published documents, and the views of those documents
    /// (`GET /metrics`).
    pub fn counts(&self) -> (usize, usize, usize) {
        let map = self.lock();
        let mut counts = (0, 0, 0);
        for h in map.values() {
            if h.published {
                counts.1 += 1;
                counts.2 += h.status().views;
            } else {
                counts.0 += 1;
            }
        }
        counts
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
        let mut gone = Vec::new();
        {
            let mut map = self.lock();
            map.retain(|key, h| {
                let keep = !h.unused_for(self.lifetime);
                if !keep {
                    gone.push(key.clone());
                }
                keep
            });
        }
        for (app, id) in &gone {
            tracing::info!(app = %app, session = %id, "discarding unused session");
        }
        gone.len()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{outbox, Next};
    use crate::session::{Command, PeerKind};

    fn registry() -> Arc<Registry> {
        Registry::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
            SessionLimits {
                queue_commands: 16,
                queue_bytes: 1 << 20,
                max_models: 1000,
                views: Default::default(),
                store: None,
                metrics: Default::default(),
            },
        )
    }

    #[tokio::test]
    async fn a_panicking_owner_ends_its_connections_and_is_removed() {
        let reg = registry();
        let other = reg.get_or_create("app", "other", false, Start::Empty);
        let s = reg.get_or_create("app", "s1", true, Start::Empty);
        let (out, mut rx) = outbox(16, 1 << 20);
        assert!(
            s.send(Command::Join {
                conn: 1,
                outbox: out,
                kind: PeerKind::Browser,
                view: "s1".into(),
            })
            .await
        );
        assert!(matches!(rx.next().await, Next::Send(_)), "the ACK");
        let mut ended = s.ended();
        assert!(s.send(Command::Crash).await);
        let code = tokio::time::timeout(Duration::from_secs(5), ended.wait_for(Option::is_some))
            .await
            .expect("ended in time")
            .expect("watch open")
            .unwrap_or(0);
        assert_eq!(code, 1011);
        // Removed (the supervisor runs right after the owner's task ends).
        for _ in 0..100 {
            if reg.get("app", "s1").is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(reg.get("app", "s1").is_none());
        // A new session with the same id works; the other session never noticed.
        let again = reg.get_or_create("app", "s1", false, Start::Empty);
        assert!(!Arc::ptr_eq(&again, &s));
        assert!(again.describe().await.is_some());
        assert!(other.describe().await.is_some());
        assert!(other.ended().borrow().is_none());
    }

    #[tokio::test]
    async fn a_page_load_replaces_an_ended_notice_but_a_reconnect_does_not() {
        let reg = registry();
        let ended = reg.get_or_create("app", "lost", true, Start::Ended);
        assert!(ended.is_ended_notice());
        let info = ended.describe().await.unwrap();
        assert_eq!(info.title, "Session ended");
        let rejoined = reg.get_or_create("app", "lost", true, Start::Ended);
        assert!(Arc::ptr_eq(&ended, &rejoined));
        let page = reg.get_or_create("app", "lost", false, Start::Fresh);
        assert!(!Arc::ptr_eq(&ended, &page));
        assert!(!page.is_ended_notice());
        assert!(page.describe().await.unwrap().roots.is_empty());
        // A live session is never replaced by a page load.
        assert!(Arc::ptr_eq(
            &page,
            &reg.get_or_create("app", "lost", false, Start::Fresh)
        ));
    }

    #[tokio::test]
    async fn sessions_belong_to_their_app() {
        let reg = registry();
        let a = reg.get_or_create("a", "id", false, Start::Empty);
        assert!(reg.get("b", "id").is_none());
        let b = reg.get_or_create("b", "id", false, Start::Empty);
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(reg.len(), 2);
    }
}
