//! The application's callbacks, why a session left the cache ([`RemovalCause`]), and how
//! callbacks are delivered: never under a cache lock, and with panics contained.
//!
//! Delivery happens after the cache has released its lock, so a callback may call back
//! into the cache (`on_remove` may `add_session`, `lookup` may `remove_session`) without
//! deadlocking, and a slow callback stalls only the thread that runs it.
//!
//! A callback that panics is caught: the panic is logged at `error`, counted in
//! [`CacheStats::callback_panics`], and the operation carries on as if the callback had
//! not been set for that call (a panicking `lookup` finds nothing). No lock is held, so
//! nothing is poisoned. With `panic = "abort"` there is nothing to catch.
//!
//! [`CacheStats::callback_panics`]: crate::CacheStats::callback_panics

use core::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::session::{IdPrefix, Session};
use crate::stats::{Counters, bump};

/// Why a session left the cache, as passed to the `on_remove` callback.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use rustls_session_cache::{RemovalCause, Session, SessionCache};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// let cache = SessionCache::builder()
///     .capacity(1)
///     .on_remove(move |s, cause| log.lock().unwrap().push((s.id().to_vec(), cause)))
///     .build()?;
/// cache.add_session(Session::new(b"a".to_vec(), b"1".to_vec()));
/// cache.add_session(Session::new(b"b".to_vec(), b"2".to_vec()));
/// cache.remove_session(b"b");
/// assert_eq!(
///     *seen.lock().unwrap(),
///     [(b"a".to_vec(), RemovalCause::Evicted), (b"b".to_vec(), RemovalCause::Removed)]
/// );
/// # Ok::<(), rustls_session_cache::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// The application removed it: [`remove_session`](crate::SessionCache::remove_session)
    /// or [`clear`](crate::SessionCache::clear).
    Removed,
    /// The least recently used session made room for another.
    Evicted,
    /// It outlived its timeout: found on lookup, or swept.
    Expired,
    /// A TLS 1.3 ticket was used (`take`), and tickets are single use.
    Taken,
}

impl fmt::Display for RemovalCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Removed => "removed",
            Self::Evicted => "evicted",
            Self::Expired => "expired",
            Self::Taken => "taken",
        })
    }
}

type NewSessionFn = dyn Fn(&Session) + Send + Sync;
type RemoveFn = dyn Fn(&Session, RemovalCause) + Send + Sync;
type LookupFn = dyn Fn(&[u8]) -> Option<Session> + Send + Sync;

/// The callbacks a cache was built with, each optional.
#[derive(Default)]
pub(crate) struct Callbacks {
    pub(crate) on_new_session: Option<Box<NewSessionFn>>,
    pub(crate) on_remove: Option<Box<RemoveFn>>,
    pub(crate) lookup: Option<Box<LookupFn>>,
}

impl Callbacks {
    /// Hands a new session to `on_new_session`. Returns whether a callback took it.
    pub(crate) fn new_session(&self, session: &Session, counters: &Counters) -> bool {
        let Some(callback) = &self.on_new_session else {
            return false;
        };
        guarded("on_new_session", counters, || callback(session)).is_some()
    }

    /// Tells `on_remove` that `session` left the cache, and logs it.
    pub(crate) fn removed(&self, session: &Session, cause: RemovalCause, counters: &Counters) {
        tracing::debug!(
            id_prefix = %IdPrefix::of(session.id()),
            %cause,
            "session removed"
        );
        if let Some(callback) = &self.on_remove {
            guarded("on_remove", counters, || callback(session, cause));
        }
    }

    /// Whether any callback is set (so sessions handed out need their context's name).
    pub(crate) fn any(&self) -> bool {
        self.on_new_session.is_some() || self.on_remove.is_some() || self.lookup.is_some()
    }

    /// Asks the lookup callback for `id`.
    pub(crate) fn lookup(&self, id: &[u8], counters: &Counters) -> Option<Session> {
        let callback = self.lookup.as_ref()?;
        guarded("lookup", counters, || callback(id)).flatten()
    }
}

impl fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks")
            .field("on_new_session", &self.on_new_session.is_some())
            .field("on_remove", &self.on_remove.is_some())
            .field("lookup", &self.lookup.is_some())
            .finish()
    }
}

/// Runs a user callback, containing a panic: logged, counted, and reported as `None`.
fn guarded<R>(name: &'static str, counters: &Counters, f: impl FnOnce() -> R) -> Option<R> {
    // The callback sees only shared references to data no one else can observe half
    // updated: the cache holds no lock here, so unwind safety is not at stake.
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => Some(result),
        Err(_) => {
            bump(&counters.callback_panics);
            tracing::error!(
                callback = name,
                "session cache callback panicked; the cache carries on"
            );
            None
        }
    }
}
