//! [`SessionCacheBuilder`]: configuration, its defaults, and its validation.

use core::fmt;
use core::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::SessionCache;
use crate::callbacks::{Callbacks, RemovalCause};
use crate::error::ConfigError;
use crate::mode::CacheMode;
use crate::session::Session;

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
    timeout: Duration,
    mode: CacheMode,
    max_session_size: usize,
    callbacks: Callbacks,
}

impl SessionCacheBuilder {
    pub(crate) fn new() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
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
    /// lookup callback), counted in [`CacheStats::oversized`] and logged at `warn`.
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
    /// [`ConfigError`] for a zero capacity, a timeout of zero or over [`MAX_TIMEOUT`], or
    /// a zero per-session size limit.
    pub fn build(self) -> Result<Arc<SessionCache>, ConfigError> {
        let capacity = check_capacity(self.capacity)?;
        let timeout = check_timeout(self.timeout)?;
        if self.max_session_size == 0 {
            return Err(ConfigError::ZeroMaxSessionSize);
        }
        Ok(Arc::new(SessionCache::from_config(
            capacity,
            timeout,
            self.mode,
            self.max_session_size,
            self.callbacks,
        )))
    }
}

impl fmt::Debug for SessionCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCacheBuilder")
            .field("capacity", &self.capacity)
            .field("timeout", &self.timeout)
            .field("mode", &self.mode)
            .field("max_session_size", &self.max_session_size)
            .field("callbacks", &self.callbacks)
            .finish()
    }
}

pub(crate) fn check_capacity(capacity: usize) -> Result<NonZeroUsize, ConfigError> {
    NonZeroUsize::new(capacity).ok_or(ConfigError::ZeroCapacity)
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
