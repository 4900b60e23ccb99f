//! Warnings that cannot flood the log: [`RateLimited`] lets one event through per
//! period and counts the ones it held back.
//!
//! A warning a client can trigger (an oversized session on every handshake, say) would
//! otherwise write one line per handshake, without limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::stats::bump;

/// The most often one [`RateLimited`] lets an event through.
pub(crate) const EVERY: Duration = Duration::from_secs(10);

/// Lets one event through per [`EVERY`], counting the rest.
#[derive(Debug, Default)]
pub(crate) struct RateLimited {
    /// When the last event was let through, in clock nanoseconds; 0 for never.
    last: AtomicU64,
    /// Events held back since the last one let through.
    suppressed: AtomicU64,
}

impl RateLimited {
    /// `Some(events suppressed since the last one let through)` if this one, at
    /// `now_nanos` (the cache clock's nanoseconds since the Unix epoch), may pass.
    ///
    /// Of several threads due at once, one passes; the others count as suppressed.
    pub(crate) fn allow(&self, now_nanos: i64) -> Option<u64> {
        // 0 means "never", so the earliest time that can pass is 1.
        let now = u64::try_from(now_nanos).unwrap_or(0).max(1);
        let last = self.last.load(Ordering::Relaxed);
        let period = u64::try_from(EVERY.as_nanos()).unwrap_or(u64::MAX);
        let due = last == 0 || now.saturating_sub(last) >= period;
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        bump(&self.suppressed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn lets_one_through_per_period_and_counts_the_rest() {
        let limit = RateLimited::default();
        assert_eq!(limit.allow(100 * SECOND), Some(0), "the first passes");
        assert_eq!(limit.allow(101 * SECOND), None);
        assert_eq!(limit.allow(110 * SECOND - 1), None, "a nanosecond early");
        assert_eq!(limit.allow(110 * SECOND), Some(2), "ten seconds on");
        assert_eq!(limit.allow(110 * SECOND), None);
        assert_eq!(limit.allow(200 * SECOND), Some(1));
    }

    #[test]
    fn times_at_or_before_the_epoch_do_not_mean_never() {
        let limit = RateLimited::default();
        assert_eq!(limit.allow(-5), Some(0));
        assert_eq!(limit.allow(0), None, "still within the period");
        assert_eq!(limit.allow(11 * SECOND), Some(1));
    }

    #[test]
    fn of_threads_due_together_exactly_one_passes() {
        let limit = RateLimited::default();
        let passed: u64 = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..1_000)
                            .filter(|_| limit.allow(5 * SECOND).is_some())
                            .count() as u64
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(passed, 1);
        assert_eq!(limit.allow(15 * SECOND), Some(3_999));
    }
}
