//! Statistics: OpenSSL's `SSL_CTX_sess_*` counters.
//!
//! What happens on every handshake (hits, misses, timeouts, evictions, new sessions) is
//! counted by each shard in plain integers, under the lock the operation holds anyway:
//! no atomic, and no cache line that every core writes. What is rare (callback hits,
//! refusals, panics) is counted in relaxed atomics.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the cache's counters, as OpenSSL's `SSL_CTX_sess_*` functions report them.
///
/// Each shard's counters are read together, under its lock, but shards one after another:
/// a snapshot taken while handshakes run may be off by the operations in flight. Counters only grow;
/// [`SessionCache::clear`] and [`SessionCache::flush_expired`] change none of them.
///
/// ```
/// # use rustls::server::StoresServerSessions;
/// use rustls_session_cache::SessionCache;
///
/// let cache = SessionCache::new(16);
/// assert!(cache.put(vec![1; 32], vec![2; 83]));
/// assert_eq!(cache.get(&[1; 32]), Some(vec![2; 83]));
/// assert_eq!(cache.get(&[3; 32]), None);
/// let stats = cache.stats();
/// assert_eq!((stats.entries, stats.hits, stats.misses), (1, 1, 1));
/// ```
///
/// [`SessionCache::clear`]: crate::SessionCache::clear
/// [`SessionCache::flush_expired`]: crate::SessionCache::flush_expired
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Sessions in the internal cache now, expired ones not yet removed included
    /// (OpenSSL's `sess_number`).
    pub entries: usize,
    /// What the cached sessions cost against the byte budget: their ids and values, and a
    /// fixed overhead each (see [`SessionCacheBuilder::max_bytes`]).
    ///
    /// [`SessionCacheBuilder::max_bytes`]: crate::SessionCacheBuilder::max_bytes
    pub bytes: usize,
    /// `get`/`take` calls answered by a live session from the internal cache.
    pub hits: u64,
    /// `get`/`take` calls that found no session in the internal cache. Not counted under
    /// `NO_INTERNAL_LOOKUP`, and not for an expired session (that is a timeout).
    pub misses: u64,
    /// Sessions supplied by the lookup callback and used.
    pub cb_hits: u64,
    /// Expired sessions found by `get`/`take` in the internal cache (and removed).
    pub timeouts: u64,
    /// Sessions evicted to keep the cache within its capacity or byte budget.
    pub cache_full: u64,
    /// Sessions rustls handed to `put` while the mode had `SERVER`, refused ones excluded.
    pub new_sessions: u64,
    /// Sessions refused for being larger than the per-session limit.
    pub oversized: u64,
    /// User callbacks that panicked (the panic was caught; the cache carried on).
    pub callback_panics: u64,
}

/// What one shard counts, under its lock.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShardCounts {
    pub(crate) entries: usize,
    pub(crate) bytes: usize,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) timeouts: u64,
    pub(crate) cache_full: u64,
    /// New sessions from `put` stored in this shard; also the automatic sweep's clock.
    pub(crate) new_sessions: u64,
}

impl core::ops::AddAssign for ShardCounts {
    fn add_assign(&mut self, other: Self) {
        self.entries += other.entries;
        self.bytes += other.bytes;
        self.hits += other.hits;
        self.misses += other.misses;
        self.timeouts += other.timeouts;
        self.cache_full += other.cache_full;
        self.new_sessions += other.new_sessions;
    }
}

/// The counters of rare events, shared by all shards.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) cb_hits: AtomicU64,
    /// New sessions from `put` that went to no shard (`NO_INTERNAL_STORE`).
    pub(crate) unstored_new_sessions: AtomicU64,
    pub(crate) oversized: AtomicU64,
    pub(crate) callback_panics: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self, shards: ShardCounts) -> CacheStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            entries: shards.entries,
            bytes: shards.bytes,
            hits: shards.hits,
            misses: shards.misses,
            cb_hits: read(&self.cb_hits),
            timeouts: shards.timeouts,
            cache_full: shards.cache_full,
            new_sessions: shards.new_sessions + read(&self.unstored_new_sessions),
            oversized: read(&self.oversized),
            callback_panics: read(&self.callback_panics),
        }
    }
}

/// Adds one to a counter. Statistics need no ordering with other memory.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter. (Only the fleet tier counts by more than one.)
#[cfg(feature = "redis")]
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Adds one to a counter and returns the new count.
pub(crate) fn count(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed) + 1
}
