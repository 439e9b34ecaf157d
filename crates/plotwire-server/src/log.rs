//! Rate-limited warnings for problems that clients cause.
//!
//! A client controls how often it sends bad input, so it must not control how many
//! lines the server writes. [`warn_limited!`](crate::warn_limited) lets each call site
//! log at most [`Config::warnings_per_second`](crate::Config::warnings_per_second) lines
//! per second; the lines it holds back are counted and reported as `suppressed = N` on
//! the next line that gets through.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Lines per second and call site, for every [`RateLimit`] in the process.
static PER_SECOND: AtomicU32 = AtomicU32::new(10);

/// Sets how many lines per second each rate-limited call site may write.
pub fn set_warnings_per_second(n: u32) {
    PER_SECOND.store(n, Ordering::Relaxed);
}

fn now_secs() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

/// The budget of one call site: a one-second window and the lines held back.
pub struct RateLimit {
    window: AtomicU64,
    count: AtomicU32,
    suppressed: AtomicU64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::new()
    }
}

impl RateLimit {
    /// A fresh budget.
    pub const fn new() -> RateLimit {
        RateLimit {
            window: AtomicU64::new(u64::MAX),
            count: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last line)` if a line may be written now.
    pub fn allow(&self) -> Option<u64> {
        let now = now_secs();
        let window = self.window.load(Ordering::Relaxed);
        if window != now
            && self
                .window
                .compare_exchange(window, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.count.store(0, Ordering::Release);
        }
        if self.count.fetch_add(1, Ordering::AcqRel) < PER_SECOND.load(Ordering::Relaxed) {
            Some(self.suppressed.swap(0, Ordering::AcqRel))
        } else {
            self.suppressed.fetch_add(1, Ordering::AcqRel);
            None
        }
    }
}

/// `tracing::warn!` with a per-call-site rate limit (see [`crate::log`]).
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::log::RateLimit = $crate::log::RateLimit::new();
        if let Some(suppressed) = LIMIT.allow() {
            if suppressed > 0 {
                tracing::warn!(suppressed, $($arg)+);
            } else {
                tracing::warn!($($arg)+);
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_site_writes_at_most_its_budget_per_second_and_counts_the_rest() {
        set_warnings_per_second(10);
        let limit = RateLimit::new();
        let start = now_secs();
        let allowed = (0..1000).filter(|_| limit.allow().is_some()).count();
        if now_secs() == start {
            assert_eq!(allowed, 10);
            assert_eq!(limit.suppressed.load(Ordering::Acquire), 990);
        } else {
            // The second turned during the loop: at most two windows' worth.
            assert!(allowed <= 20, "{allowed}");
        }
    }
}
