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
        }
    }
}

impl std::error::Error for ConfigError {}
