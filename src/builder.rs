//! [`SessionCacheBuilder`]: configuration, its defaults, and its validation.

use core::fmt;
use core::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::{Config, SessionCache, split};
use crate::callbacks::{Callbacks, RemovalCause};
use crate::error::ConfigError;
use crate::mode::CacheMode;
use crate::session::Session;
use crate::shard::ENTRY_OVERHEAD;

/// The default capacity: OpenSSL's `SSL_SESSION_CACHE_MAX_SIZE_DEFAULT`.
pub const DEFAULT_CAPACITY: usize = 20_480;

/// The default session timeout: what nginx, Apache mod_ssl and HAProxy use.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The longest cache timeout allowed: seven days, RFC 8446's cap on a ticket's lifetime.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The default per-session size limit (id plus value): 16 KiB.
///
/// A typical rustls session is about 115 bytes (a 32-byte id, an 83-byte value). Client
/// authentication adds the client's certificate chain to the value, commonly 1 to 6 KiB;
/// 16 KiB leaves room for long chains and large certificates.
pub const DEFAULT_MAX_SESSION_SIZE: usize = 16 * 1024;

/// Configures and builds a [`SessionCache`].
///
/// Every setting has a default; [`build`](Self::build) checks them all.
///
/// ```
/// use std::time::Duration;
/// use rustls_session_cache::{CacheMode, SessionCache};
///
/// let cache = SessionCache::builder()
///     .capacity(10_000)
///     .timeout(Duration::from_secs(600))
///     .mode(CacheMode::SERVER | CacheMode::UPDATE_TIME)
///     .on_new_session(|session| println!("new session, {} bytes", session.len()))
///     .build()?;
/// assert_eq!(cache.capacity(), 10_000);
/// # Ok::<(), rustls_session_cache::ConfigError>(())
/// ```
#[must_use]
pub struct SessionCacheBuilder {
    capacity: usize,
    shards: usize,
    max_bytes: Option<usize>,
    timeout: Duration,
    mode: CacheMode,
    max_session_size: usize,
    callbacks: Callbacks,
}

impl SessionCacheBuilder {
    pub(crate) fn new() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            shards: 1,
            max_bytes: None,
            timeout: DEFAULT_TIMEOUT,
            mode: CacheMode::default(),
            max_session_size: DEFAULT_MAX_SESSION_SIZE,
            callbacks: Callbacks::default(),
        }
    }

    /// The most sessions the cache holds; default [`DEFAULT_CAPACITY`]. Must be at least 1.
    ///
    /// The hash table for this many sessions is allocated up front.
    pub fn capacity(self, capacity: usize) -> Self {
        Self { capacity, ..self }
    }

    /// Splits the cache into `shards` independently locked LRU maps; default 1. An id's
    /// shard is chosen by a keyed hash (SipHash with a random key) of the id.
    ///
    /// One shard keeps the exact semantics: a single LRU order over the whole cache, and
    /// a cache of capacity N holds N sessions however they hash. With more shards, the
    /// capacity and the byte budget are split among them (as evenly as they divide) and
    /// stay hard upper bounds on the total, but eviction is LRU **per shard**: a shard
    /// that fills up evicts its own least recently used session while another shard may
    /// still have room, or hold older sessions. Each shard is one `Mutex`, so threads
    /// contend only when their ids fall in the same shard.
    ///
    /// Must be at least 1 and at most the capacity.
    pub fn shards(self, shards: usize) -> Self {
        Self { shards, ..self }
    }

    /// Bounds the memory the cache holds to `bytes`: each session counts its id, its
    /// value and a fixed overhead for its LRU node and hash-table slot, 112 bytes in this
    /// release. The overhead follows the memory layout, so a later release may count
    /// another figure; [`SessionCache::bytes`] reports the total as counted. Least
    /// recently used sessions are evicted to fit
    /// (counted in `cache_full`, `on_remove` with [`RemovalCause::Evicted`]). Default:
    /// no byte budget, only the capacity.
    ///
    /// Use it when sessions may be large: with client certificates, a session is
    /// kilobytes, and a count alone does not bound memory. The hash table, allocated for
    /// [`capacity`](Self::capacity) sessions up front (about 20 bytes a slot), is not
    /// part of the budget.
    ///
    /// Each shard must fit the largest session allowed: `bytes / shards` must be at least
    /// [`max_session_size`](Self::max_session_size) plus the overhead.
    pub fn max_bytes(self, bytes: usize) -> Self {
        Self {
            max_bytes: Some(bytes),
            ..self
        }
    }

    /// How long sessions without their own timeout live; default [`DEFAULT_TIMEOUT`].
    /// Must be more than zero and at most [`MAX_TIMEOUT`].
    pub fn timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// The cache mode; default [`CacheMode::SERVER`].
    pub fn mode(self, mode: CacheMode) -> Self {
        Self { mode, ..self }
    }

    /// The largest session (id plus value, in bytes) the cache accepts; default
    /// [`DEFAULT_MAX_SESSION_SIZE`]. Must be at least 1.
    ///
    /// Larger sessions are refused wherever they come from (`put`, `add_session`, the
    /// lookup callback) and counted in [`CacheStats::oversized`]. Refusals are logged at
    /// `warn`, but at most once per 10 s per cache, each line with the number not logged
    /// since (`suppressed`): a client with a long certificate chain cannot fill the log.
    ///
    /// [`CacheStats::oversized`]: crate::CacheStats::oversized
    pub fn max_session_size(self, bytes: usize) -> Self {
        Self {
            max_session_size: bytes,
            ..self
        }
    }

    /// Called with every new session rustls hands the cache while the mode has `SERVER`,
    /// before it enters the internal cache (if it does).
    ///
    /// Under [`CacheMode::NO_INTERNAL_STORE`] this is the only place a new session goes:
    /// keep it, and hand it back later with [`SessionCache::add_session`] or the
    /// [`lookup`](Self::lookup) callback. Never called under the cache's lock.
    pub fn on_new_session(mut self, f: impl Fn(&Session) + Send + Sync + 'static) -> Self {
        self.callbacks.on_new_session = Some(Box::new(f));
        self
    }

    /// Called with every session that leaves the internal cache, and why. Also called
    /// with [`RemovalCause::Taken`] for a TLS 1.3 ticket the lookup callback supplied, so
    /// the application can delete it from its own store.
    ///
    /// Not called when a session is replaced by another with the same id, nor when the
    /// cache is dropped. Never called under the cache's lock.
    pub fn on_remove(mut self, f: impl Fn(&Session, RemovalCause) + Send + Sync + 'static) -> Self {
        self.callbacks.on_remove = Some(Box::new(f));
        self
    }

    /// Asked for a session the internal cache could not supply (OpenSSL's get-session
    /// callback); `id` comes from the network.
    ///
    /// A returned session is used only if its id equals `id` and it has not expired (by
    /// its own timeout, else the cache's). For TLS 1.2 it is then added to the internal
    /// cache unless the mode has `NO_INTERNAL_STORE`. For TLS 1.3 it is not cached, and
    /// `on_remove` gets it with [`RemovalCause::Taken`].
    ///
    /// Single use of TLS 1.3 tickets is then the application's job: two handshakes that
    /// race with the same ticket both reach this callback, so it should claim a ticket
    /// atomically (return it once). Never called under the cache's lock.
    pub fn lookup(mut self, f: impl Fn(&[u8]) -> Option<Session> + Send + Sync + 'static) -> Self {
        self.callbacks.lookup = Some(Box::new(f));
        self
    }

    /// Checks the configuration and builds the cache.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a zero capacity, zero shards or more shards than sessions, a
    /// timeout of zero or over [`MAX_TIMEOUT`], a zero per-session size limit, or a byte
    /// budget too small for one session per shard.
    pub fn build(self) -> Result<Arc<SessionCache>, ConfigError> {
        let capacity = check_capacity(self.capacity, self.shards)?;
        let timeout = check_timeout(self.timeout)?;
        if self.max_session_size == 0 {
            return Err(ConfigError::ZeroMaxSessionSize);
        }
        if let Some(max_bytes) = self.max_bytes {
            let min = self.max_session_size.saturating_add(ENTRY_OVERHEAD);
            let smallest_share = split(max_bytes, self.shards).min().unwrap_or(0);
            if smallest_share < min {
                return Err(ConfigError::ByteBudgetTooSmall {
                    max_bytes,
                    min: min.saturating_mul(self.shards),
                });
            }
        }
        Ok(Arc::new(SessionCache::from_config(Config {
            capacity,
            shards: self.shards,
            max_bytes: self.max_bytes,
            timeout,
            mode: self.mode,
            max_session_size: self.max_session_size,
            callbacks: self.callbacks,
        })))
    }
}

impl fmt::Debug for SessionCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCacheBuilder")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards)
            .field("max_bytes", &self.max_bytes)
            .field("timeout", &self.timeout)
            .field("mode", &self.mode)
            .field("max_session_size", &self.max_session_size)
            .field("callbacks", &self.callbacks)
            .finish()
    }
}

/// A capacity that gives each of `shards` shards at least one session.
pub(crate) fn check_capacity(capacity: usize, shards: usize) -> Result<NonZeroUsize, ConfigError> {
    let capacity = NonZeroUsize::new(capacity).ok_or(ConfigError::ZeroCapacity)?;
    match shards {
        0 => Err(ConfigError::ZeroShards),
        n if n > capacity.get() => Err(ConfigError::TooManyShards {
            shards: n,
            capacity: capacity.get(),
        }),
        _ => Ok(capacity),
    }
}

pub(crate) fn check_timeout(timeout: Duration) -> Result<Duration, ConfigError> {
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(ConfigError::TimeoutOutOfRange {
            timeout,
            max: MAX_TIMEOUT,
        });
    }
    Ok(timeout)
}
