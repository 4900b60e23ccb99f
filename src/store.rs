//! `impl StoresServerSessions for SessionCache`: what rustls's `put`, `get`, `take` and
//! `can_cache` do under each cache mode, and why a lookup missed.
//!
//! - `put`: a new session (TLS 1.2 once per full handshake; TLS 1.3 once per ticket).
//! - `get`: TLS 1.2 resumption. The session stays, and is promoted.
//! - `take`: TLS 1.3 resumption. The ticket is removed in the same critical section that
//!   finds it, so racing handshakes get it at most once. That is what makes 0-RTT
//!   replay-safe.
//! - `can_cache`: TLS 1.2 only; rustls sends an empty session id when it is `false`.

use std::sync::Arc;

use rustls::server::StoresServerSessions;
use zeroize::Zeroizing;

use crate::cache::{SessionCache, Stored};
use crate::callbacks::RemovalCause;
use crate::mode::CacheMode;
use crate::session::{Context, IdPrefix, Session};
use crate::shard::{AUTO_CLEAR_INTERVAL, Lookup};
use crate::stats::{bump, count};

/// How a resumption uses the session it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    /// TLS 1.2 `get`: the session stays.
    Keep,
    /// TLS 1.3 `take`: the ticket is consumed.
    Take,
}

/// What `get` reserves for the value before taking the lock, so a hit copies into it
/// without allocating under the lock. Typical values are 83 bytes; for a longer one
/// (client certificates) the shard says how long, and `get` makes room and looks again.
const VALUE_CAPACITY_HINT: usize = 128;

impl StoresServerSessions for SessionCache {
    /// Stores a new session, as the mode says:
    /// - without `SERVER`: refuses (`false`); stores nothing, calls nothing;
    /// - else: calls `on_new_session`, then (unless `NO_INTERNAL_STORE`) inserts the
    ///   session as most recently used. Returns whether the session was stored
    ///   internally or handed to an `on_new_session` that returned normally. For TLS 1.3,
    ///   `false` means rustls issues no ticket.
    ///
    /// A session over the per-session limit is refused before any of that. Unless
    /// `NO_AUTO_CLEAR`, every 256th new session also sweeps expired sessions from the
    /// least recently used end of its shard (see [`SessionCache`]'s expiry docs).
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.put_in(Context::default(), None, key, value)
    }

    /// TLS 1.2 resumption; see [`SessionCache`]'s lookup rules.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get_in(Context::default(), key)
    }

    /// TLS 1.3 resumption: as `get`, but the session is removed (`on_remove` with
    /// [`RemovalCause::Taken`]).
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.take_in(Context::default(), key)
    }

    /// Whether the mode has `SERVER`. rustls asks this for TLS 1.2 only.
    fn can_cache(&self) -> bool {
        self.mode().caches_new_sessions()
    }
}

impl SessionCache {
    /// `put` into `context`, named `name` (for the callbacks).
    pub(crate) fn put_in(
        &self,
        context: Context,
        name: Option<&Arc<str>>,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> bool {
        let mode = self.mode();
        if !mode.caches_new_sessions() {
            // Wipe the value rustls handed over; it is ours to drop. (Ids are public.)
            drop((key, Zeroizing::new(value)));
            tracing::trace!(%mode, "session not cached: the mode lacks SERVER");
            return false;
        }
        let now = self.clock.now_nanos();
        let mut session = Session::created_at_nanos(key, value, now);
        session.id.set_context(context);
        if self.callbacks.any() {
            session.context = name.cloned();
        }
        self.put_session(session, mode, now)
    }

    pub(crate) fn get_in(&self, context: Context, id: &[u8]) -> Option<Vec<u8>> {
        self.resume(context, id, Use::Keep)
    }

    pub(crate) fn take_in(&self, context: Context, id: &[u8]) -> Option<Vec<u8>> {
        self.resume(context, id, Use::Take)
    }

    /// `put` past its mode check, for a session made at `now` under `mode` (which has
    /// `SERVER`).
    pub(crate) fn put_session(&self, session: Session, mode: CacheMode, now: i64) -> bool {
        if !self.admits(&session) {
            return false;
        }
        let handed = self.callbacks.new_session(&session, &self.counters);
        let sweep_at = mode.auto_clears().then_some(now);
        if mode.stores_internally() {
            // An identical session already stored counts as stored.
            return self.insert_new(session, sweep_at) != Stored::Refused || handed;
        }
        let put_count = count(&self.counters.unstored_new_sessions);
        if sweep_at.is_some() && put_count.is_multiple_of(AUTO_CLEAR_INTERVAL) {
            self.sweep(self.shard_index(session.id.key()), now);
        }
        handed
    }

    /// The lookup rules for `get` and `take`:
    /// 1. Unless `NO_INTERNAL_LOOKUP`, the internal cache: a live session is a hit; an
    ///    expired one is a timeout, removed (`on_remove` with `Expired`), and then handled
    ///    as a miss without counting one; nothing is a miss.
    /// 2. If that found nothing usable and a lookup callback is set, the callback.
    fn resume(&self, context: Context, id: &[u8], how: Use) -> Option<Vec<u8>> {
        let mode = self.mode();
        let now = self.clock.now_nanos();
        if mode.looks_up_internally()
            && let Some(value) = self.resume_internally(context, id, now, how)
        {
            return Some(value);
        }
        self.resume_from_callback(context, id, now, how, mode.stores_internally())
    }

    fn resume_internally(
        &self,
        context: Context,
        id: &[u8],
        now: i64,
        how: Use,
    ) -> Option<Vec<u8>> {
        let timeout = self.timeout_nanos();
        let Some(key) = self.key(context, id) else {
            // Longer than any id stored: a miss, found without copying the id.
            self.count_miss(id);
            return None;
        };
        let key = key.key();
        let found = match how {
            Use::Keep => {
                let mut value = Vec::with_capacity(VALUE_CAPACITY_HINT);
                let found = loop {
                    let found = self.lock(key).get(key, now, timeout, &mut value);
                    match found {
                        Ok(found) => break found,
                        // Longer than the room made: make room, unlocked, and look
                        // again. The room only grows, and no value is longer than the
                        // per-session limit, so this ends (after one more look unless
                        // the session was replaced by a longer one in between).
                        Err(needed) => value.reserve_exact(needed),
                    }
                };
                match found {
                    Lookup::Hit(()) => Lookup::Hit(value),
                    Lookup::Expired(session) => Lookup::Expired(session),
                    Lookup::Miss => Lookup::Miss,
                }
            }
            Use::Take => {
                let taken = self.lock(key).take(key, now, timeout);
                match taken {
                    Lookup::Hit(mut session) => {
                        self.name(&mut session);
                        self.callbacks
                            .removed(&session, RemovalCause::Taken, &self.counters);
                        // The ticket is consumed: hand rustls its buffer rather than a copy.
                        Lookup::Hit(session.take_value())
                    }
                    Lookup::Expired(session) => Lookup::Expired(session),
                    Lookup::Miss => Lookup::Miss,
                }
            }
        };
        // The shard counted the hit, timeout or miss under its lock.
        match found {
            Lookup::Hit(value) => {
                tracing::trace!(id_prefix = %IdPrefix::of(id), ?how, "session hit");
                Some(value)
            }
            Lookup::Expired(session) => {
                self.removed(session, RemovalCause::Expired);
                None
            }
            Lookup::Miss => {
                tracing::trace!(id_prefix = %IdPrefix::of(id), ?how, "session miss");
                None
            }
        }
    }

    /// `take` from the lookup callback alone, past the internal cache.
    #[cfg(feature = "redis")]
    pub(crate) fn take_from_callback(&self, context: Context, id: &[u8]) -> Option<Vec<u8>> {
        let now = self.clock.now_nanos();
        self.resume_from_callback(context, id, now, Use::Take, self.mode().stores_internally())
    }

    /// Asks the lookup callback. Its session is used only if its id is `id`, it is live,
    /// and it fits the size limit. For `get` it is then cached (unless `NO_INTERNAL_STORE`,
    /// with `add_session`'s rules); for `take`, `on_remove` gets it as `Taken`.
    fn resume_from_callback(
        &self,
        context: Context,
        id: &[u8],
        now: i64,
        how: Use,
        store: bool,
    ) -> Option<Vec<u8>> {
        let mut session = self.callbacks.lookup(id, &self.counters)?;
        if session.id() != id {
            tracing::debug!(
                id_prefix = %IdPrefix::of(id),
                "lookup callback returned a session with another id; ignored"
            );
            return None;
        }
        if self.contexts.known(session.context()) != Some(context) {
            tracing::debug!(
                id_prefix = %IdPrefix::of(id),
                "lookup callback returned a session of another context; ignored"
            );
            return None;
        }
        session.id.set_context(context);
        if session.entry.stamp.is_expired_at(now, self.timeout_nanos()) {
            tracing::debug!(
                id_prefix = %IdPrefix::of(id),
                "lookup callback returned an expired session; ignored"
            );
            return None;
        }
        if !self.admits(&session) {
            return None;
        }
        bump(&self.counters.cb_hits);
        tracing::debug!(id_prefix = %IdPrefix::of(id), ?how, "session supplied by lookup callback");
        let value = session.value().to_vec();
        match how {
            Use::Keep if store => {
                self.insert(session, self.mode().updates_time());
            }
            Use::Keep => {}
            Use::Take => self.removed(session, RemovalCause::Taken),
        }
        Some(value)
    }
}
