//! [`ConfigError`]: what [`SessionCacheBuilder::build`] refuses, and why.
//!
//! [`SessionCacheBuilder::build`]: crate::SessionCacheBuilder::build

use core::fmt;
use std::time::Duration;

/// A cache configuration that cannot work.
///
/// ```
/// use std::time::Duration;
/// use rustls_session_cache::{ConfigError, SessionCache};
///
/// let err = SessionCache::builder().capacity(0).build().unwrap_err();
/// assert_eq!(err, ConfigError::ZeroCapacity);
///
/// let err = SessionCache::builder().timeout(Duration::from_secs(8 * 86_400)).build().unwrap_err();
/// assert!(matches!(err, ConfigError::TimeoutOutOfRange { .. }));
/// assert!(err.to_string().contains("RFC 8446"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A capacity of zero: the cache could hold nothing, yet rustls would be told it can
    /// cache. There is no unbounded mode.
    ZeroCapacity,
    /// A session timeout of zero, or above `max` (seven days: RFC 8446 caps a TLS 1.3
    /// ticket's lifetime there).
    TimeoutOutOfRange {
        /// The timeout asked for.
        timeout: Duration,
        /// The largest timeout allowed.
        max: Duration,
    },
    /// A per-session size limit of zero: every session would be refused.
    ZeroMaxSessionSize,
    /// Zero shards.
    ZeroShards,
    /// More shards than the capacity has sessions: some shard could hold none.
    TooManyShards {
        /// The shards asked for.
        shards: usize,
        /// The capacity asked for.
        capacity: usize,
    },
    /// A resumption context name that is empty or longer than
    /// [`MAX_CONTEXT_NAME`](crate::MAX_CONTEXT_NAME) bytes.
    ContextName {
        /// The name's length.
        len: usize,
    },
    /// More named resumption contexts than one cache holds.
    TooManyContexts {
        /// The most a cache holds.
        max: usize,
    },
    /// A byte budget in which some shard could not hold even one session of the largest
    /// size allowed.
    ByteBudgetTooSmall {
        /// The budget asked for.
        max_bytes: usize,
        /// The smallest budget that works with these shards and this size limit.
        min: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroCapacity => f.write_str("session cache capacity must be at least 1"),
            Self::TimeoutOutOfRange { timeout, max } => write!(
                f,
                "session timeout {timeout:?} is out of range: it must be more than zero and \
                 at most {max:?} (RFC 8446 caps ticket lifetimes at seven days)"
            ),
            Self::ZeroMaxSessionSize => {
                f.write_str("the per-session size limit must be at least 1 byte")
            }
            Self::ZeroShards => f.write_str("a session cache needs at least one shard"),
            Self::ContextName { len } => write!(
                f,
                "a resumption context name must be 1 to {} bytes, not {len}",
                crate::MAX_CONTEXT_NAME
            ),
            Self::TooManyContexts { max } => {
                write!(f, "a session cache holds at most {max} named contexts")
            }
            Self::TooManyShards { shards, capacity } => write!(
                f,
                "{shards} shards cannot share a capacity of {capacity}: each shard needs \
                 room for at least one session"
            ),
            Self::ByteBudgetTooSmall { max_bytes, min } => write!(
                f,
                "a byte budget of {max_bytes} is too small: with these shards and this \
                 per-session size limit it must be at least {min}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
