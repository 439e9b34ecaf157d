//! Rate limits and quotas (`--limit-requests`, `--limit-points`, `--limit-connections`):
//! requests per second, points (rows written) per second and open streaming connections
//! (websockets and SSE reads), each counted per API key for a request that presents a
//! valid one, and per client address otherwise. So a producer with a key is limited by
//! its key wherever it runs, and anonymous traffic by where it comes from; one client
//! over its quota never slows another.
//!
//! Going over gets 429 with `Retry-After` (seconds) and a JSON body naming the limit.
//! Rates are GCRA buckets (the `governor` crate) that allow a burst of one second's worth.
//!
//! A request whose client address is unknown (a host app that mounts the router without
//! `ConnectInfo`) and that presents no key is not limited.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use plotwire_protocol::event::DocumentEvent;
use plotwire_protocol::Value;

use crate::error::HttpError;

/// Who a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Who {
    /// The API key of this name, with its own limits from the auth file.
    Key(Arc<str>, Overrides),
    /// This client address.
    Addr(IpAddr),
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::Key(name, _) => write!(f, "the key {name:?}"),
            Who::Addr(addr) => write!(f, "the client address {addr}"),
        }
    }
}

/// The limits in force; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitSettings {
    /// HTTP requests (and websocket upgrades) per second.
    pub requests_per_second: u32,
    /// Rows written per second by REST stream and replace calls.
    pub points_per_second: u32,
    /// Websockets and SSE reads open at once.
    pub connections: usize,
}

impl LimitSettings {
    /// Whether any limit is on.
    pub fn any(&self) -> bool {
        self.requests_per_second > 0 || self.points_per_second > 0 || self.connections > 0
    }
}

/// A key's own limits (`limits = { ... }` in the auth file), each in place of its flag
/// for that key; `None` keeps the flag's, 0 turns that limit off for the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Overrides {
    /// In place of `--limit-requests`.
    pub requests_per_second: Option<u32>,
    /// In place of `--limit-points`.
    pub points_per_second: Option<u32>,
    /// In place of `--limit-connections`.
    pub connections: Option<usize>,
}

impl Overrides {
    /// Whether any limit is overridden.
    pub fn any(&self) -> bool {
        *self != Overrides::default()
    }

    /// `flags` with these overrides in place.
    pub fn over(&self, flags: LimitSettings) -> LimitSettings {
        LimitSettings {
            requests_per_second: self
                .requests_per_second
                .unwrap_or(flags.requests_per_second),
            points_per_second: self.points_per_second.unwrap_or(flags.points_per_second),
            connections: self.connections.unwrap_or(flags.connections),
        }
    }
}

const FLAG_REQUESTS: &str = "requests per second (--limit-requests)";
const FLAG_POINTS: &str = "points per second (--limit-points)";
const FLAG_POINTS_SPLIT: &str = "points per second (--limit-points); split it into smaller batches";
const OWN_POINTS_SPLIT: &str =
    "points per second (the key's limits in the auth file); split it into smaller batches";
const OWN_REQUESTS: &str = "requests per second (the key's limits in the auth file)";
const OWN_POINTS: &str = "points per second (the key's limits in the auth file)";

/// The buckets of one key with limits of its own.
struct OwnBuckets {
    /// The flags with the key's overrides in place.
    settings: LimitSettings,
    /// What a refusal names: for requests, for points, for a batch too big to pass.
    what: (&'static str, &'static str, &'static str),
    requests: Option<governor::DefaultDirectRateLimiter>,
    points: Option<governor::DefaultDirectRateLimiter>,
}

/// Clients tracked before idle ones are forgotten.
const MAX_TRACKED: usize = 100_000;

/// Checks between looks at how many clients are tracked.
const SWEEP_EVERY: u64 = 4096;

/// A refusal: which limit, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{who} is over its limit of {limit} {what}: retry in {} s", retry_after.as_secs().max(1))]
pub struct Limited {
    /// The client.
    pub who: String,
    /// What is limited (`requests per second`, …).
    pub what: &'static str,
    /// The limit.
    pub limit: u64,
    /// When the client may try again.
    pub retry_after: Duration,
}

impl From<Limited> for HttpError {
    fn from(l: Limited) -> HttpError {
        crate::warn_limited!(client = %l.who, limit = l.what, "over a rate limit: 429");
        let retry = l.retry_after;
        HttpError::new(StatusCode::TOO_MANY_REQUESTS, l.to_string()).with_retry_after(retry)
    }
}

/// The buckets and counters of every client.
pub struct Limits {
    settings: LimitSettings,
    requests: Option<DefaultKeyedRateLimiter<Who>>,
    points: Option<DefaultKeyedRateLimiter<Who>>,
    open: Mutex<HashMap<Who, usize>>,
    own: Mutex<HashMap<Who, Arc<OwnBuckets>>>,
    checks: AtomicU64,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("settings", &self.settings)
            .finish()
    }
}

fn keyed(per_second: u32) -> Option<DefaultKeyedRateLimiter<Who>> {
    NonZeroU32::new(per_second).map(|n| RateLimiter::keyed(Quota::per_second(n)))
}

impl Limits {
    /// Limits as `settings` say.
    pub fn new(settings: LimitSettings) -> Limits {
        Limits {
            settings,
            requests: keyed(settings.requests_per_second),
            points: keyed(settings.points_per_second),
            open: Mutex::new(HashMap::new()),
            own: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
            clock: DefaultClock::default(),
        }
    }

    /// The limits in force.
    pub fn settings(&self) -> LimitSettings {
        self.settings
    }

    fn sweep(&self) {
        if !self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            return;
        }
        for limiter in [&self.requests, &self.points].into_iter().flatten() {
            if limiter.len() > MAX_TRACKED {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }

    /// The buckets of `who` if it is a key with limits of its own: made on first use,
    /// and made again when a reloaded auth file changed them.
    fn own(&self, who: &Who) -> Option<Arc<OwnBuckets>> {
        let Who::Key(name, overrides) = who else {
            return None;
        };
        if !overrides.any() {
            return None;
        }
        let mut own = match self.own.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(b) = own.get(who) {
            return Some(b.clone());
        }
        // The key's buckets under its limits before a reload changed them go (keys with
        // limits of their own are few: this runs once per key and change).
        own.retain(|k, _| !matches!(k, Who::Key(n, _) if n == name));
        if own.len() >= MAX_TRACKED {
            own.clear();
        }
        let settings = overrides.over(self.settings);
        let direct = |per_second: u32| {
            NonZeroU32::new(per_second).map(|n| RateLimiter::direct(Quota::per_second(n)))
        };
        let buckets = Arc::new(OwnBuckets {
            settings,
            what: (
                if overrides.requests_per_second.is_some() {
                    OWN_REQUESTS
                } else {
                    FLAG_REQUESTS
                },
                if overrides.points_per_second.is_some() {
                    OWN_POINTS
                } else {
                    FLAG_POINTS
                },
                if overrides.points_per_second.is_some() {
                    OWN_POINTS_SPLIT
                } else {
                    FLAG_POINTS_SPLIT
                },
            ),
            requests: direct(settings.requests_per_second),
            points: direct(settings.points_per_second),
        });
        own.insert(who.clone(), buckets.clone());
        Some(buckets)
    }

    /// Counts one request of `who`.
    pub fn request(&self, who: &Who) -> Result<(), Limited> {
        let own = self.own(who);
        let (checked, limit, what) = match &own {
            Some(own) => {
                let Some(limiter) = &own.requests else {
                    return Ok(());
                };
                (
                    limiter.check(),
                    u64::from(own.settings.requests_per_second),
                    own.what.0,
                )
            }
            None => {
                let Some(limiter) = &self.requests else {
                    return Ok(());
                };
                self.sweep();
                (
                    limiter.check_key(who),
                    u64::from(self.settings.requests_per_second),
                    FLAG_REQUESTS,
                )
            }
        };
        checked.map_err(|not_until| Limited {
            who: who.to_string(),
            what,
            limit,
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }

    /// Counts `rows` rows written by `who`. A batch larger than a second's worth is
    /// refused with a message saying so: it could never pass.
    pub fn points(&self, who: &Who, rows: usize) -> Result<(), Limited> {
        let Some(n) = NonZeroU32::new(u32::try_from(rows).unwrap_or(u32::MAX)) else {
            return Ok(());
        };
        let own = self.own(who);
        let (checked, limit, what, split) = match &own {
            Some(own) => {
                let Some(limiter) = &own.points else {
                    return Ok(());
                };
                (
                    limiter.check_n(n),
                    u64::from(own.settings.points_per_second),
                    own.what.1,
                    own.what.2,
                )
            }
            None => {
                let Some(limiter) = &self.points else {
                    return Ok(());
                };
                (
                    limiter.check_key_n(who, n),
                    u64::from(self.settings.points_per_second),
                    FLAG_POINTS,
                    FLAG_POINTS_SPLIT,
                )
            }
        };
        match checked {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Limited {
                who: who.to_string(),
                what,
                limit,
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
            Err(_) => Err(Limited {
                who: format!("a batch of {rows} rows from {who}"),
                what: split,
                limit,
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    /// Counts the rows that Bokeh `events` write (see [`rows_written`]) against `who`'s
    /// `--limit-points`, as [`Limits::points`] does for a REST write.
    pub fn events(&self, who: &Who, events: &[DocumentEvent]) -> Result<(), Limited> {
        self.points(who, rows_written(events))
    }

    /// Takes one of `who`'s streaming connections, given back when the slot drops.
    pub fn connect(self: &Arc<Self>, who: Who) -> Result<Option<ConnectionSlot>, Limited> {
        let (max, what) = match &who {
            Who::Key(
                _,
                Overrides {
                    connections: Some(max),
                    ..
                },
            ) => (
                *max,
                "open websockets and SSE reads (the key's limits in the auth file)",
            ),
            _ => (
                self.settings.connections,
                "open websockets and SSE reads (--limit-connections)",
            ),
        };
        if max == 0 {
            return Ok(None);
        }
        let mut open = match self.open.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let n = open.entry(who.clone()).or_insert(0);
        if *n >= max {
            return Err(Limited {
                who: who.to_string(),
                what,
                limit: u64::try_from(max).unwrap_or(u64::MAX),
                retry_after: Duration::from_secs(5),
            });
        }
        *n += 1;
        Ok(Some(ConnectionSlot {
            limits: self.clone(),
            who,
        }))
    }
}

/// One open streaming connection of a client; closes its count when dropped.
pub struct ConnectionSlot {
    limits: Arc<Limits>,
    who: Who,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = match self.limits.open.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(n) = open.get_mut(&self.who) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.who);
            }
        }
    }
}

/// The rows of a set of columns: the first column's length (a list's, or a typed
/// array's first dimension).
pub fn column_rows(columns: &[(String, Value)]) -> usize {
    columns.first().map_or(0, |(_, values)| column_len(values))
}

/// The items of one column value: a list's, or an array's first dimension; 0 for
/// anything else.
pub fn column_len(values: &Value) -> usize {
    match values {
        Value::List(items) => items.len(),
        Value::Array(array) => array.shape.first().copied().unwrap_or_else(|| array.len()),
        _ => 0,
    }
}

/// The rows that Bokeh document events write into data sources: the rows a
/// `ColumnsStreamed` appends and those a `ColumnDataChanged` puts in place, as REST's
/// stream and replace count theirs. Patches of single cells and property changes write
/// no rows.
pub fn rows_written(events: &[DocumentEvent]) -> usize {
    events
        .iter()
        .map(|e| match e {
            DocumentEvent::ColumnsStreamed { data, .. }
            | DocumentEvent::ColumnDataChanged { data, .. } => column_rows(data),
            _ => 0,
        })
        .fold(0, usize::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> Who {
        Who::Addr(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn a_key_whose_limits_changed_keeps_only_its_new_buckets() {
        let limits = Limits::new(LimitSettings::default());
        let key = |requests| {
            Who::Key(
                "k".into(),
                Overrides {
                    requests_per_second: Some(requests),
                    ..Overrides::default()
                },
            )
        };
        for requests in 1..=50 {
            assert!(limits.request(&key(requests)).is_ok());
        }
        assert!(
            limits.request(&key(1)).is_ok(),
            "made again, with a full bucket"
        );
        assert!(limits.request(&key(1)).is_err());
        let other = Who::Key(
            "other".into(),
            Overrides {
                points_per_second: Some(10),
                ..Overrides::default()
            },
        );
        assert!(limits.points(&other, 10).is_ok());
        assert!(limits.request(&key(2)).is_ok());
        let own = limits.own.lock().unwrap();
        let mut names: Vec<_> = own
            .keys()
            .map(|w| match w {
                Who::Key(name, o) => (name.to_string(), o.requests_per_second),
                Who::Addr(a) => (a.to_string(), None),
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![("k".to_owned(), Some(2)), ("other".to_owned(), None)]
        );
    }

    #[test]
    fn each_client_has_its_own_bucket() {
        let limits = Limits::new(LimitSettings {
            requests_per_second: 3,
            points_per_second: 100,
            connections: 2,
        });
        for _ in 0..3 {
            assert!(limits.request(&addr(1)).is_ok());
        }
        let over = limits.request(&addr(1)).unwrap_err();
        assert!(over.retry_after <= Duration::from_secs(1), "{over:?}");
        assert!(
            limits.request(&addr(2)).is_ok(),
            "another address is not slowed"
        );
        assert!(limits
            .request(&Who::Key("a".into(), Overrides::default()))
            .is_ok());

        assert!(limits.points(&addr(1), 60).is_ok());
        assert!(limits.points(&addr(1), 60).is_err());
        let too_big = limits.points(&addr(2), 101).unwrap_err();
        assert!(too_big.to_string().contains("smaller batches"), "{too_big}");
        assert!(limits.points(&addr(2), 100).is_ok());
    }

    #[test]
    fn connections_are_given_back() {
        let limits = Arc::new(Limits::new(LimitSettings {
            connections: 2,
            ..LimitSettings::default()
        }));
        let a = limits.connect(addr(1)).unwrap();
        let b = limits.connect(addr(1)).unwrap();
        assert!(limits.connect(addr(1)).is_err());
        assert!(limits.connect(addr(2)).unwrap().is_some());
        drop(a);
        let c = limits.connect(addr(1)).unwrap();
        assert!(c.is_some());
        drop((b, c));
        assert!(limits.open.lock().unwrap().get(&addr(1)).is_none());
    }

    #[test]
    fn off_means_off() {
        let limits = Arc::new(Limits::new(LimitSettings::default()));
        for _ in 0..1000 {
            assert!(limits.request(&addr(1)).is_ok());
            assert!(limits.points(&addr(1), 1_000_000).is_ok());
        }
        assert!(limits.connect(addr(1)).unwrap().is_none());
    }
}
