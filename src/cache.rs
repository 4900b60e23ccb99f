//! [`SessionCache`]: the lock around the engine, the application's API
//! (`add_session`, `remove_session`, `flush_expired`, the setters), and delivery of what
//! each operation removed.
//!
//! Every operation follows one shape: take the lock, do map operations only, release
//! it; then count, log and call callbacks; then let the removed sessions drop, which
//! wipes them.

use core::fmt;
use core::hash::BuildHasher;
use core::num::NonZeroUsize;
use std::collections::hash_map::RandomState;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, MutexGuard};

use crate::builder::{self, SessionCacheBuilder};
use crate::callbacks::{Callbacks, RemovalCause};
use crate::clock::Clock;
use crate::context::Contexts;
use crate::error::ConfigError;
use crate::mode::CacheMode;
use crate::rate_limit::RateLimited;
use crate::session::{Context, Id, IdPrefix, Session, timeout_nanos, to_nanos};
use crate::shard::{Added, Removed, SWEEP_LIMIT, Shard, removal_room, session_cost};
use crate::stats::{CacheStats, Counters, ShardCounts, bump};

/// A server session cache for rustls: an LRU map with OpenSSL's cache modes, explicit
/// `add_session`/`remove_session`, timeouts, statistics and callbacks.
///
/// Plug it into [`rustls::ServerConfig::session_storage`]; keep a clone of the `Arc` to
/// steer it. See the [crate docs](crate) for the security model and the modes.
///
/// ```
/// use rustls_session_cache::{Session, SessionCache};
///
/// let cache = SessionCache::new(1024);
/// assert!(cache.add_session(Session::new(vec![7; 32], b"encoded session".to_vec())));
/// assert!(cache.contains(&[7; 32]));
/// assert!(cache.remove_session(&[7; 32]));
/// assert!(!cache.remove_session(&[7; 32]));
/// ```
pub struct SessionCache {
    /// Independently locked LRU maps; an id always maps to the same one.
    shards: Box<[Mutex<Shard>]>,
    /// Picks a shard for an id. Keyed (SipHash), since looked-up ids come from the network.
    shard_hasher: RandomState,
    /// The capacity over all shards. Its lock serialises capacity changes, so that the
    /// per-shard split is always that of one requested capacity. It is taken before a
    /// shard's lock, never after one, and no callback runs under it.
    capacity: Mutex<usize>,
    /// The byte budget over all shards, if any.
    max_bytes: Option<usize>,
    mode: AtomicU32,
    /// The cache's timeout in nanoseconds.
    timeout: AtomicU64,
    max_session_size: usize,
    /// The `warn` for refused oversized sessions, which any client with a long
    /// certificate chain can cause on every handshake.
    oversized_warning: RateLimited,
    /// The named resumption contexts.
    pub(crate) contexts: Contexts,
    /// The longest id ever stored: a lookup of a longer one finds nothing, copies
    /// nothing.
    longest_id: AtomicUsize,
    pub(crate) callbacks: Callbacks,
    pub(crate) counters: Counters,
    pub(crate) clock: Clock,
}

impl SessionCache {
    /// A cache of `capacity` sessions, in mode [`CacheMode::SERVER`], with a 300 s
    /// timeout and no callbacks.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero, which [`SessionCacheBuilder::build`] refuses with
    /// [`ConfigError::ZeroCapacity`]. A capacity read from configuration belongs in the
    /// builder, which returns that error instead.
    ///
    /// Why a panic, where rustls's `ServerSessionMemoryCache::new(0)` quietly stores
    /// nothing: a cache of zero would still tell rustls it can cache, so every TLS 1.2
    /// client would get a session id that never resumes, and nothing would say why.
    /// `new` is the shorthand for a capacity written in the code, where zero is a typo,
    /// and failing at once, naming the value, is the kindest report of a typo (as
    /// `Vec::with_capacity` panics on a size that cannot be). Taking a `NonZeroUsize`
    /// instead would make every call spell out a conversion for that one bad value.
    ///
    /// ```should_panic
    /// let _ = rustls_session_cache::SessionCache::new(0);
    /// ```
    pub fn new(capacity: usize) -> Arc<Self> {
        match Self::builder().capacity(capacity).build() {
            Ok(cache) => cache,
            Err(err) => panic!("SessionCache::new({capacity}): {err}"),
        }
    }

    /// A builder, to set the mode, timeout, size limits and callbacks.
    pub fn builder() -> SessionCacheBuilder {
        SessionCacheBuilder::new()
    }

    pub(crate) fn from_config(config: Config) -> Self {
        let Config {
            capacity,
            shards,
            max_bytes,
            timeout,
            mode,
            max_session_size,
            callbacks,
        } = config;
        // Without a byte budget, a shard's share of `usize::MAX` never binds.
        let budgets = split(max_bytes.unwrap_or(usize::MAX), shards);
        let shards: Box<[Mutex<Shard>]> = split(capacity.get(), shards)
            .zip(budgets)
            .map(|(capacity, budget)| {
                // `build` checked that every shard gets at least one session.
                let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
                Mutex::new(Shard::new(capacity, budget))
            })
            .collect();
        Self {
            shards,
            shard_hasher: RandomState::new(),
            capacity: Mutex::new(capacity.get()),
            max_bytes,
            mode: AtomicU32::new(mode.bits()),
            timeout: AtomicU64::new(timeout_nanos(timeout)),
            max_session_size,
            oversized_warning: RateLimited::default(),
            contexts: Contexts::default(),
            longest_id: AtomicUsize::new(0),
            callbacks,
            counters: Counters::default(),
            clock: Clock::new(),
        }
    }

    /// Adds a session the application holds, as OpenSSL's `SSL_CTX_add_session` does.
    ///
    /// The mode is not consulted, and no expiry check is made: an expired session is
    /// accepted (and found expired on lookup). Returns:
    /// - `false` if a session with the same id and the same value is present; nothing
    ///   changes, except that under [`CacheMode::UPDATE_TIME`] its creation time becomes
    ///   now;
    /// - `true` if another value under the same id was replaced (without `on_remove`);
    /// - `true` if the id was new: the session is the most recently used, and when the
    ///   cache is full the least recently used one is evicted (`cache_full`, `on_remove`
    ///   with [`RemovalCause::Evicted`]);
    /// - `false` if the session is larger than the per-session limit (counted in
    ///   [`CacheStats::oversized`], logged at `warn` at most once per 10 s).
    ///
    /// Under `UPDATE_TIME` the session's creation time is set to now.
    ///
    /// The session goes into the resumption context it names ([`Session::context`]):
    /// the default one for a session made with [`Session::new`], its own for one a
    /// callback was handed. `false` if it names a context this cache cannot take (past
    /// [`MAX_CONTEXTS`](crate::MAX_CONTEXTS)).
    pub fn add_session(&self, session: Session) -> bool {
        match self.contexts.of(session.context()) {
            Some(context) => self.add_session_in(context, session),
            None => false,
        }
    }

    /// Removes the session with this id, in the default context. Returns `true`, and
    /// calls `on_remove` with [`RemovalCause::Removed`], if one was present, expired or
    /// not; `false` if not.
    pub fn remove_session(&self, id: &[u8]) -> bool {
        self.remove_session_in(Context::default(), id)
    }

    /// Whether a session is stored under `id` in the default context, live or expired
    /// (as [`len`](Self::len) counts it). Changes no statistic and does not promote.
    pub fn contains(&self, id: &[u8]) -> bool {
        self.contains_in(Context::default(), id)
    }

    pub(crate) fn add_session_in(&self, context: Context, mut session: Session) -> bool {
        session.id.set_context(context);
        self.insert(session, self.mode().updates_time()) == Stored::Changed
    }

    pub(crate) fn remove_session_in(&self, context: Context, id: &[u8]) -> bool {
        let Some(key) = self.key(context, id) else {
            return false;
        };
        let removed = self.lock(key.key()).remove(key.key());
        match removed {
            Some(session) => {
                self.removed(session, RemovalCause::Removed);
                true
            }
            None => false,
        }
    }

    pub(crate) fn contains_in(&self, context: Context, id: &[u8]) -> bool {
        self.key(context, id)
            .is_some_and(|key| self.lock(key.key()).contains(key.key()))
    }

    /// Counts a miss for `id`, in the shard it would be in, without a look.
    pub(crate) fn count_miss(&self, id: &[u8]) {
        self.lock(id).count_miss();
    }

    /// The key for `id` in `context` (on the stack for ids up to 37 bytes); `None` if no
    /// id that long was ever stored (so nothing can be found, and nothing is copied).
    pub(crate) fn key(&self, context: Context, id: &[u8]) -> Option<Id> {
        (id.len() <= self.longest_id.load(Ordering::Relaxed)).then(|| Id::new(context, id))
    }

    /// Removes every session with `created + timeout < now`, calling `on_remove` with
    /// [`RemovalCause::Expired`] for each. Returns how many; changes no statistic.
    ///
    /// This walks each shard twice under its lock (once to count, once to remove): call
    /// it from a maintenance task, not per connection.
    pub fn flush_expired(&self, now: SystemTime) -> usize {
        self.flush_expired_at(to_nanos(now))
    }

    /// Removes every session, calling `on_remove` with [`RemovalCause::Removed`] for
    /// each. Returns how many; changes no statistic.
    pub fn clear(&self) -> usize {
        let mut drained = Vec::new();
        for shard in self.shards.iter() {
            move_out(shard, &mut drained, Shard::len, Shard::drain);
        }
        self.notify_all(&mut drained, RemovalCause::Removed);
        drained.len()
    }

    /// Sets the mode and returns the previous one. Takes effect for operations that
    /// start after it.
    pub fn set_mode(&self, mode: CacheMode) -> CacheMode {
        CacheMode::from_bits_retain(self.mode.swap(mode.bits(), Ordering::Relaxed))
    }

    /// The current mode.
    pub fn mode(&self) -> CacheMode {
        CacheMode::from_bits_retain(self.mode.load(Ordering::Relaxed))
    }

    /// As [`try_set_capacity`](Self::try_set_capacity), but a capacity the cache cannot
    /// take is logged at `warn` and ignored, and the current capacity returned.
    #[deprecated(
        since = "0.1.0",
        note = "use `try_set_capacity`, which reports a refused capacity instead of logging it"
    )]
    pub fn set_capacity(&self, capacity: usize) -> usize {
        self.try_set_capacity(capacity).unwrap_or_else(|err| {
            tracing::warn!(%err, "session cache capacity unchanged");
            self.capacity()
        })
    }

    /// Sets the capacity and returns the previous one. When it shrinks, least recently
    /// used sessions are evicted at once (`cache_full`, `on_remove` with
    /// [`RemovalCause::Evicted`]) until `len() <= capacity`.
    ///
    /// With shards, the capacity is split among them as evenly as it divides, and each
    /// shard evicts its own least recently used sessions. Concurrent changes apply one
    /// after the other: each returns the capacity the one before it left.
    ///
    /// ```
    /// use rustls_session_cache::{ConfigError, Session, SessionCache};
    ///
    /// let cache = SessionCache::new(4);
    /// for n in 0..4u8 {
    ///     cache.add_session(Session::new(vec![n; 32], b"encoded session".to_vec()));
    /// }
    /// assert_eq!(cache.try_set_capacity(2), Ok(4));
    /// assert_eq!((cache.len(), cache.capacity()), (2, 2));
    /// assert_eq!(cache.try_set_capacity(0), Err(ConfigError::ZeroCapacity));
    /// assert_eq!(cache.capacity(), 2, "a refused capacity changes nothing");
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroCapacity`] for zero; [`ConfigError::TooManyShards`] for fewer
    /// sessions than shards.
    pub fn try_set_capacity(&self, capacity: usize) -> Result<usize, ConfigError> {
        let capacity = builder::check_capacity(capacity, self.shards.len())?;
        let n = self.shards.len();
        let mut total = self.capacity.lock();
        let previous = *total;
        // A shard holds at most its old share, so it evicts at most what its share
        // shrinks by: room for that is made before any shard is locked.
        let shrinks: usize = split(previous, n)
            .zip(split(capacity.get(), n))
            .map(|(old, new)| old.saturating_sub(new))
            .sum();
        let mut evicted = Vec::with_capacity(shrinks);
        for (shard, share) in self.shards.iter().zip(split(capacity.get(), n)) {
            lock(shard).set_capacity(
                NonZeroUsize::new(share).unwrap_or(NonZeroUsize::MIN),
                &mut evicted,
            );
        }
        *total = capacity.get();
        drop(total);
        self.notify_all(&mut evicted, RemovalCause::Evicted);
        Ok(previous)
    }

    /// The most sessions the cache holds. While a capacity change runs, this waits for
    /// it and returns the new capacity.
    pub fn capacity(&self) -> usize {
        *self.capacity.lock()
    }

    /// As [`try_set_timeout`](Self::try_set_timeout), but an out-of-range timeout is
    /// logged at `warn` and ignored, and the current timeout returned.
    #[deprecated(
        since = "0.1.0",
        note = "use `try_set_timeout`, which reports a refused timeout instead of logging it"
    )]
    pub fn set_timeout(&self, timeout: Duration) -> Duration {
        self.try_set_timeout(timeout).unwrap_or_else(|err| {
            tracing::warn!(%err, "session cache timeout unchanged");
            self.timeout()
        })
    }

    /// Sets the cache's timeout and returns the previous one. It applies, from now on, to
    /// every session without its own timeout, those already cached included.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rustls_session_cache::{ConfigError, DEFAULT_TIMEOUT, SessionCache};
    ///
    /// let cache = SessionCache::new(16);
    /// assert_eq!(cache.try_set_timeout(Duration::from_secs(60)), Ok(DEFAULT_TIMEOUT));
    /// assert!(matches!(
    ///     cache.try_set_timeout(Duration::ZERO),
    ///     Err(ConfigError::TimeoutOutOfRange { .. })
    /// ));
    /// assert_eq!(cache.timeout(), Duration::from_secs(60));
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::TimeoutOutOfRange`] for zero or over seven days.
    pub fn try_set_timeout(&self, timeout: Duration) -> Result<Duration, ConfigError> {
        let timeout = builder::check_timeout(timeout)?;
        let previous = self.timeout.swap(timeout_nanos(timeout), Ordering::Relaxed);
        Ok(Duration::from_nanos(previous))
    }

    /// The timeout for sessions without their own.
    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout_nanos())
    }

    /// The largest session (id plus value) the cache accepts.
    pub fn max_session_size(&self) -> usize {
        self.max_session_size
    }

    /// The byte budget, if one was set with
    /// [`SessionCacheBuilder::max_bytes`](crate::SessionCacheBuilder::max_bytes).
    pub fn max_bytes(&self) -> Option<usize> {
        self.max_bytes
    }

    /// What the cached sessions cost against the byte budget: ids, values, and
    /// a fixed overhead each (see [`SessionCacheBuilder::max_bytes`]). Counted with or
    /// without a budget.
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).bytes()).sum()
    }

    /// How many independently locked shards the cache has.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Sessions stored now, expired ones not yet removed included.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    /// Whether no session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> CacheStats {
        let mut counts = ShardCounts::default();
        for shard in self.shards.iter() {
            counts += lock(shard).counts();
        }
        self.counters.snapshot(counts)
    }

    /// Inserts with `add_session`'s rules; `update_time` sets the creation time to now.
    pub(crate) fn insert(&self, session: Session, update_time: bool) -> Stored {
        let now = update_time.then(|| self.clock.now_nanos());
        let index = self.shard_index(session.id.key());
        self.store(index, session, |shard, session, removed| {
            shard.add(session, now, removed)
        })
    }

    /// Inserts a new session from rustls's `put`. With `sweep_at: Some(now)` (the mode
    /// auto-clears), every [`AUTO_CLEAR_INTERVAL`](crate::shard::AUTO_CLEAR_INTERVAL)th new session in a shard then sweeps
    /// that shard, in a critical section of its own.
    pub(crate) fn insert_new(&self, session: Session, sweep_at: Option<i64>) -> Stored {
        let index = self.shard_index(session.id.key());
        let mut sweep_due = false;
        let stored = self.store(index, session, |shard, session, removed| {
            let added = shard.put(session, removed);
            sweep_due = shard.sweep_due();
            added
        });
        if let Some(now) = sweep_at.filter(|_| sweep_due) {
            self.sweep(index, now);
        }
        stored
    }

    /// Runs `op` to store `session` in shard `index` under its lock; then, unlocked,
    /// tells `on_remove` what it displaced, logs, and wipes.
    fn store(
        &self,
        index: usize,
        session: Session,
        op: impl FnOnce(&mut Shard, Session, &mut Removed) -> Added,
    ) -> Stored {
        if !self.admits(&session) {
            return Stored::Refused;
        }
        let prefix = IdPrefix::of(session.id());
        let id_len = session.id().len();
        if id_len > self.longest_id.load(Ordering::Relaxed) {
            self.longest_id.fetch_max(id_len, Ordering::Relaxed);
        }
        // Room for all the store can remove, made before locking: inline for a session
        // of typical size; allocated here, unlocked, for a large one under a budget.
        let cost = session_cost(session.id().len(), session.value().len());
        let mut removed = Removed::with_capacity(removal_room(cost, self.max_bytes.is_some()));
        let added = op(&mut lock(&self.shards[index]), session, &mut removed);
        self.notify(&mut removed);
        // The lock is released: wipe what the add displaced here.
        let (outcome, stored) = match added {
            Added::Unchanged(offered) => {
                drop(offered);
                ("unchanged", Stored::Unchanged)
            }
            Added::Replaced(old) => {
                drop(old);
                ("replaced", Stored::Changed)
            }
            Added::Inserted => ("inserted", Stored::Changed),
        };
        tracing::debug!(id_prefix = %prefix, outcome, "session stored");
        stored
    }

    /// Whether `session` fits the per-session limit; counts a refusal, and logs it at
    /// most once per 10 s, with how many went unlogged since.
    pub(crate) fn admits(&self, session: &Session) -> bool {
        if session.len() <= self.max_session_size {
            return true;
        }
        bump(&self.counters.oversized);
        if let Some(suppressed) = self.oversized_warning.allow(self.clock.now_nanos()) {
            tracing::warn!(
                id_prefix = %IdPrefix::of(session.id()),
                len = session.len(),
                limit = self.max_session_size,
                suppressed,
                "session refused: larger than the per-session limit"
            );
        }
        false
    }

    pub(crate) fn flush_expired_at(&self, now: i64) -> usize {
        let timeout = self.timeout_nanos();
        let mut flushed = Vec::new();
        for shard in self.shards.iter() {
            move_out(
                shard,
                &mut flushed,
                |shard| shard.count_expired(now, timeout),
                |shard, out| shard.flush_expired(now, timeout, out),
            );
        }
        self.notify_all(&mut flushed, RemovalCause::Expired);
        if !flushed.is_empty() {
            tracing::debug!(count = flushed.len(), "expired sessions flushed");
        }
        // `flushed` drops here, with no lock held: that wipes the values.
        flushed.len()
    }

    /// The bounded sweep of shard `index`: see [`Shard::sweep_lru_end`].
    pub(crate) fn sweep(&self, index: usize, now: i64) {
        let shard = &self.shards[index];
        let timeout = self.timeout_nanos();
        // Count first, then make room unlocked: most sweeps find nothing, and allocate
        // nothing. Should more have expired in between, they wait for the next sweep.
        let found = lock(shard).expired_at_lru_end(now, timeout, SWEEP_LIMIT);
        if found == 0 {
            return;
        }
        let mut expired = Vec::with_capacity(found);
        lock(shard).sweep_lru_end(now, timeout, &mut expired);
        self.notify(&mut expired);
    }

    pub(crate) fn timeout_nanos(&self) -> u64 {
        self.timeout.load(Ordering::Relaxed)
    }

    /// The shard for `id`, locked.
    pub(crate) fn lock(&self, id: &[u8]) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.shard_index(id)])
    }

    /// Which shard holds `id`.
    pub(crate) fn shard_index(&self, id: &[u8]) -> usize {
        match self.shards.len() {
            1 => 0,
            n => (self.shard_hasher.hash_one(id) % n as u64) as usize,
        }
    }

    /// Tells `on_remove` (and the log) about sessions removed, each with its cause.
    fn notify(&self, removed: &mut [(Session, RemovalCause)]) {
        for (session, cause) in removed {
            self.name(session);
            self.callbacks.removed(session, *cause, &self.counters);
        }
    }

    fn notify_all(&self, sessions: &mut [Session], cause: RemovalCause) {
        for session in sessions {
            self.name(session);
            self.callbacks.removed(session, cause, &self.counters);
        }
    }

    /// Tells `on_remove` about one session removed; then it drops, and is wiped.
    pub(crate) fn removed(&self, mut session: Session, cause: RemovalCause) {
        self.name(&mut session);
        self.callbacks.removed(&session, cause, &self.counters);
    }

    /// Gives a session the cache hands to a callback the name of its context.
    pub(crate) fn name(&self, session: &mut Session) {
        if session.context.is_none() && self.callbacks.any() {
            session.context = self.contexts.name(session.id.context());
        }
    }
}

impl fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCache")
            .field("mode", &self.mode())
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("timeout", &self.timeout())
            .field("max_session_size", &self.max_session_size)
            .field("max_bytes", &self.max_bytes)
            .field("shards", &self.shards.len())
            .field("callbacks", &self.callbacks)
            .finish_non_exhaustive()
    }
}

/// Everything [`SessionCache::from_config`] needs, checked by the builder.
pub(crate) struct Config {
    pub(crate) capacity: NonZeroUsize,
    pub(crate) shards: usize,
    pub(crate) max_bytes: Option<usize>,
    pub(crate) timeout: Duration,
    pub(crate) mode: CacheMode,
    pub(crate) max_session_size: usize,
    pub(crate) callbacks: Callbacks,
}

/// `total` split into `parts` shares that differ by at most one and add up to `total`.
pub(crate) fn split(total: usize, parts: usize) -> impl Iterator<Item = usize> {
    let parts = parts.max(1);
    (0..parts).map(move |i| total / parts + usize::from(i < total % parts))
}

/// Whether [`SessionCache::insert`] stored a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// Over the size limit.
    Refused,
    /// The same id and value were already stored.
    Unchanged,
    /// Inserted, or replaced another value under the same id.
    Changed,
}

/// Moves sessions out of `shard` into `out` without growing `out` under the shard's
/// lock: `wanted` (locked) says how many there are to move, `out` is grown to fit with
/// the lock released, then `take` (locked) moves what fits and says how many it left.
/// Repeats until `take` leaves none, which takes more than one round only when the
/// shard gained sessions to move in between.
fn move_out(
    shard: &Mutex<Shard>,
    out: &mut Vec<Session>,
    wanted: impl Fn(&Shard) -> usize,
    mut take: impl FnMut(&mut Shard, &mut Vec<Session>) -> usize,
) {
    loop {
        let wanted = wanted(&lock(shard));
        if wanted == 0 {
            return;
        }
        out.reserve(wanted);
        if take(&mut lock(shard), out) == 0 {
            return;
        }
    }
}

/// Locks a shard. `parking_lot`'s mutex spins briefly before it parks, which suits a
/// critical section of a hash probe and a few pointer writes, and it never poisons: no
/// user code runs under it, and our code under it does not panic.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock()
}
