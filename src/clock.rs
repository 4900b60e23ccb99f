//! What time it is, cheaply: every `get`, `take` and `put` needs the current wall-clock
//! time (to check expiry, or to stamp a new session), and in virtual machines reading
//! `SystemTime::now()` costs tens of nanoseconds, a quarter of a cache lookup.
//!
//! So the cache reads the CPU's timestamp counter through `quanta` (which falls back to
//! the OS's monotonic clock where the counter is not invariant), and turns it into wall
//! time with an offset taken from `SystemTime::now()`. The offset is taken again at most
//! once a second, by whichever operation notices, so the reading follows the system
//! clock: drift between the two clocks has a second to accumulate (microseconds), and a
//! step of the system clock shows within a second.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::SystemTime;

use crate::session::to_nanos;

/// How often, in nanoseconds, the offset to the system clock is taken again.
const RESYNC: u64 = 1_000_000_000;

/// The wall clock, read from the timestamp counter.
pub(crate) struct Clock {
    tsc: quanta::Clock,
    /// The counter at construction: readings are scaled from here.
    base: u64,
    /// Wall-clock nanoseconds minus scaled counter nanoseconds, as of the last sync.
    offset: AtomicI64,
    /// Scaled counter nanoseconds at the last sync.
    synced: AtomicU64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let tsc = quanta::Clock::new();
        let base = tsc.raw();
        let clock = Self {
            tsc,
            base,
            offset: AtomicI64::new(0),
            synced: AtomicU64::new(0),
        };
        clock.sync(0);
        clock
    }

    /// Now, in nanoseconds since the Unix epoch.
    pub(crate) fn now_nanos(&self) -> i64 {
        let elapsed = self.tsc.delta_as_nanos(self.base, self.tsc.raw());
        if elapsed.wrapping_sub(self.synced.load(Ordering::Relaxed)) > RESYNC {
            return self.sync(elapsed);
        }
        self.offset
            .load(Ordering::Relaxed)
            .saturating_add(scaled(elapsed))
    }

    /// Takes the offset to the system clock again, and returns the system clock's now.
    fn sync(&self, elapsed: u64) -> i64 {
        let wall = to_nanos(SystemTime::now());
        // One atomic holds the whole offset, so a racing reader sees an old one or a new
        // one, never half of each.
        self.offset
            .store(wall.saturating_sub(scaled(elapsed)), Ordering::Relaxed);
        self.synced.store(elapsed, Ordering::Relaxed);
        wall
    }
}

fn scaled(elapsed: u64) -> i64 {
    i64::try_from(elapsed).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_system_clock() {
        let clock = Clock::new();
        for _ in 0..1_000 {
            let before = to_nanos(SystemTime::now());
            let now = clock.now_nanos();
            let after = to_nanos(SystemTime::now());
            // Within a millisecond of the system clock, either side.
            assert!(
                now > before - 1_000_000 && now < after + 1_000_000,
                "{before} {now} {after}"
            );
        }
    }

    #[test]
    fn never_goes_backwards_between_syncs() {
        let clock = Clock::new();
        let mut last = clock.now_nanos();
        for _ in 0..10_000 {
            let now = clock.now_nanos();
            assert!(now >= last);
            last = now;
        }
    }
}
