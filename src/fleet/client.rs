//! Redis, the second tier: the connection, how sessions are named there, the
//! write-behind task, the counters, and warnings that do not flood the log.
//!
//! Only single-key commands are used (`SET ... PX`, `GET`, `GETDEL`), so Valkey and Redis
//! Cluster work as well as a single Redis.

use core::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use super::codec::FleetKeys;
use crate::cache::SessionCache;
use crate::clock::Clock;
use crate::session::Session;
use crate::stats::{add, bump};

/// The most queued writes sent to Redis in one pipeline.
const WRITE_BATCH: usize = 64;

/// How long one pipeline of writes may take before its writes count as dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How often each kind of Redis trouble is logged at most.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What the fleet tier shares between the store, the prefetches and the writer.
pub(crate) struct L2 {
    pub(crate) conn: ConnectionManager,
    prefix: String,
    pub(crate) keys: FleetKeys,
    pub(crate) counters: FleetCounters,
    warn_io: RateLimited,
    pub(crate) clock: Clock,
}

impl L2 {
    pub(crate) fn new(conn: ConnectionManager, prefix: String, keys: FleetKeys) -> Self {
        Self {
            conn,
            prefix,
            keys,
            counters: FleetCounters::default(),
            warn_io: RateLimited::default(),
            clock: Clock::new(),
        }
    }

    /// The Redis key for a session id: `prefix:hex(id)`.
    pub(crate) fn key(&self, id: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 1 + 2 * id.len());
        key.extend_from_slice(self.prefix.as_bytes());
        key.push(b':');
        key.extend_from_slice(hex::encode(id).as_bytes());
        key
    }

    /// Logs Redis trouble at `warn`, at most once per [`WARN_EVERY`], with how many were
    /// not logged since.
    pub(crate) fn warn(&self, what: &'static str, error: &dyn fmt::Display) {
        bump(&self.counters.redis_errors);
        let now = self.clock.now_nanos();
        if let Some(suppressed) = self.warn_io.allow(now) {
            tracing::warn!(%error, suppressed, "{what}");
        }
    }
}

/// The write-behind task: takes sessions off the queue, seals them, and writes them to
/// Redis with their remaining lifetime as the TTL, a batch to a pipeline.
pub(crate) async fn write_behind(
    l2: Arc<L2>,
    l1: Arc<SessionCache>,
    mut queue: mpsc::Receiver<Session>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while queue.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        let now = l2.clock.now_nanos();
        let cache_timeout = l1.timeout_nanos();
        let mut pipe = redis::pipe();
        let mut written = 0u64;
        for session in batch.drain(..) {
            let stamp = session.entry.stamp;
            let left_ms = (stamp.deadline(cache_timeout) - i128::from(now)) / 1_000_000;
            let Ok(ttl_ms @ 1..) = u64::try_from(left_ms) else {
                continue; // expired while queued: not worth writing
            };
            let key = l2.key(session.id());
            pipe.cmd("SET")
                .arg(&key)
                .arg(
                    l2.keys
                        .seal(&key, &session, stamp.timeout_or(cache_timeout)),
                )
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
            written += 1;
        }
        if written == 0 {
            continue;
        }
        let mut conn = l2.conn.clone();
        match tokio::time::timeout(WRITE_TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => add(&l2.counters.writes_written, written),
            Ok(Err(error)) => {
                add(&l2.counters.writes_dropped, written);
                l2.warn("session writes to Redis failed", &error);
            }
            Err(_) => {
                add(&l2.counters.writes_dropped, written);
                l2.warn("session writes to Redis timed out", &"no answer within 1s");
            }
        }
    }
}

/// The fleet tier's counters.
#[derive(Debug, Default)]
pub(crate) struct FleetCounters {
    pub(crate) l2_hits: AtomicU64,
    pub(crate) l2_misses: AtomicU64,
    pub(crate) claims_won: AtomicU64,
    pub(crate) claims_lost: AtomicU64,
    pub(crate) writes_queued: AtomicU64,
    pub(crate) writes_written: AtomicU64,
    pub(crate) writes_dropped: AtomicU64,
    pub(crate) decrypt_failures: AtomicU64,
    pub(crate) prefetch_timeouts: AtomicU64,
    pub(crate) prefetches_shed: AtomicU64,
    pub(crate) identities_shed: AtomicU64,
    pub(crate) redis_errors: AtomicU64,
}

/// Lets one event through per [`WARN_EVERY`], counting the rest.
#[derive(Default)]
struct RateLimited {
    /// When the last event was let through, in clock nanoseconds; 0 for never.
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimited {
    /// `Some(events suppressed since the last one let through)` if this one may pass.
    fn allow(&self, now: i64) -> Option<u64> {
        let now = u64::try_from(now).unwrap_or(0).max(1);
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_nanos() as u64;
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

    #[test]
    fn rate_limit_lets_one_through_per_period_and_counts_the_rest() {
        let limit = RateLimited::default();
        let second = 1_000_000_000;
        assert_eq!(limit.allow(100 * second), Some(0));
        assert_eq!(limit.allow(101 * second), None);
        assert_eq!(limit.allow(105 * second), None);
        assert_eq!(limit.allow(110 * second), Some(2));
        assert_eq!(limit.allow(110 * second), None);
    }
}
