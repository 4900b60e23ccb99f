//! [`Session`]: an id, its secret value, when it was made and how long it lives, and
//! **the** expiry rule.
//!
//! # Layout
//!
//! A session is an [`Id`] (up to 32 bytes inline, longer ones on the heap) and an
//! [`Entry`]: the value in an exact-size heap buffer, wrapped in [`Zeroizing`] so every
//! copy the cache holds is wiped when dropped, and the times as integer nanoseconds.
//! Ids are not wiped: they cross the network in clear (see [`Id`]).
//! That keeps a cached 32-byte id with an 83-byte value under 200 bytes, the LRU links
//! and hash table included (see the crate docs).
//!
//! The two halves are separate because the LRU map keys on the id and must read and
//! update the entry in place without promoting it.

use core::borrow::Borrow;
use core::fmt;
use core::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zeroize::{Zeroize, Zeroizing};

/// A resumable TLS session: an opaque id and its opaque, secret value.
///
/// rustls encodes the value; it holds the TLS 1.2 master secret or the TLS 1.3
/// resumption PSK. So a `Session`:
/// - never shows its value in `Debug` (only lengths, times and a short id prefix);
/// - wipes its value when dropped, and so does every clone.
///
/// The id is not secret and is not wiped: a TLS 1.2 session id travels in clear in the
/// ServerHello and ClientHello, and a TLS 1.3 ticket identity in clear in the
/// ClientHello that offers it.
///
/// A session expires when `now > created + timeout`, strictly. Its timeout is the
/// cache's ([`SessionCache::timeout`]) unless set with [`with_timeout`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use rustls_session_cache::Session;
///
/// let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let session = Session::new(b"id".to_vec(), b"secret".to_vec())
///     .with_created(created)
///     .with_timeout(Duration::from_secs(60));
/// assert_eq!(session.id(), b"id");
/// assert_eq!(session.value(), b"secret");
/// assert_eq!(session.created(), created);
/// assert_eq!(session.timeout(), Some(Duration::from_secs(60)));
///
/// // Debug shows this much, and no more: no value, and of the id only a prefix.
/// assert_eq!(
///     format!("{session:?}"),
///     format!(
///         "Session {{ id_prefix: 6964, id_len: 2, value_len: 6, created: {created:?}, \
///          timeout: Some(60s), .. }}"
///     )
/// );
/// ```
///
/// [`SessionCache::timeout`]: crate::SessionCache::timeout
/// [`with_timeout`]: Session::with_timeout
#[derive(Clone)]
pub struct Session {
    pub(crate) id: Id,
    pub(crate) entry: Entry,
    /// The resumption context's name, for sessions a cache hands out from a named one.
    pub(crate) context: Option<Arc<str>>,
}

impl Session {
    /// Makes a session created now, with the cache's timeout.
    ///
    /// The value is copied into an exact-size buffer that is wiped on drop, and the `Vec`
    /// passed in is wiped before it is freed: growing or shrinking a `Vec` would leave
    /// unwiped copies behind. The id is copied (inline up to 32 bytes) and not wiped.
    pub fn new(id: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self::created_at_nanos(id.into(), value.into(), now_nanos())
    }

    /// Sets when the session was created.
    ///
    /// Times are kept in nanoseconds since the Unix epoch in an `i64`, so times before
    /// 1677 or after 2262 are clamped to those years.
    #[must_use]
    pub fn with_created(mut self, created: SystemTime) -> Self {
        self.entry.stamp.created = to_nanos(created);
        self
    }

    /// Gives the session its own timeout instead of the cache's.
    ///
    /// Timeouts are kept in nanoseconds in a `u64`; anything longer than about 584 years
    /// is kept as that, which never expires in practice. No upper bound is imposed here:
    /// the bound on [`SessionCacheBuilder::timeout`] is for the cache's own default.
    ///
    /// [`SessionCacheBuilder::timeout`]: crate::SessionCacheBuilder::timeout
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.entry.stamp.timeout = u64::try_from(timeout.as_nanos())
            .unwrap_or(u64::MAX)
            .min(Stamp::CACHE_DEFAULT - 1);
        self
    }

    /// Puts the session in the resumption context `context` (`None`: the default one),
    /// for [`SessionCache::add_session`](crate::SessionCache::add_session) or a lookup
    /// callback's answer.
    ///
    /// ```
    /// use rustls_session_cache::Session;
    ///
    /// let session = Session::new(vec![1; 32], b"encoded".to_vec()).with_context(Some("admin"));
    /// assert_eq!(session.context(), Some("admin"));
    /// ```
    #[must_use]
    pub fn with_context(mut self, context: Option<&str>) -> Self {
        self.context = context.map(Arc::from);
        self
    }

    /// The session id (TLS 1.2) or ticket (TLS 1.3) that clients send back.
    pub fn id(&self) -> &[u8] {
        self.id.id()
    }

    /// The resumption context the session belongs to: `None` for a cache's default one,
    /// else the name given to [`SessionCache::context`](crate::SessionCache::context).
    /// Sessions the cache hands to callbacks carry theirs;
    /// [`SessionCache::add_session`](crate::SessionCache::add_session) puts a session
    /// back in the context it names, and [`ContextView::add_session`] in the view's.
    ///
    /// [`ContextView::add_session`]: crate::ContextView::add_session
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// The encoded session: secret. Do not log it.
    pub fn value(&self) -> &[u8] {
        &self.entry.value
    }

    /// When the session was created.
    pub fn created(&self) -> SystemTime {
        from_nanos(self.entry.stamp.created)
    }

    /// The session's own timeout, or `None` if the cache's timeout applies.
    pub fn timeout(&self) -> Option<Duration> {
        self.entry.stamp.own_timeout().map(Duration::from_nanos)
    }

    /// Whether the session has expired at `now`, given the cache's timeout for sessions
    /// without their own: `now > created + timeout`, strictly.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use rustls_session_cache::Session;
    ///
    /// let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    /// let s = Session::new(b"id".to_vec(), b"v".to_vec()).with_created(created);
    /// let timeout = Duration::from_secs(10);
    /// assert!(!s.is_expired_at(created + timeout, timeout));
    /// assert!(s.is_expired_at(created + timeout + Duration::from_nanos(1), timeout));
    /// ```
    pub fn is_expired_at(&self, now: SystemTime, cache_timeout: Duration) -> bool {
        self.entry
            .stamp
            .is_expired_at(to_nanos(now), timeout_nanos(cache_timeout))
    }

    /// The size the cache counts against its per-session limit: id plus value, in bytes.
    pub fn len(&self) -> usize {
        self.id().len().saturating_add(self.entry.value.len())
    }

    /// Whether both the id and the value are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves the value out, leaving this session's empty. The returned `Vec` is no longer
    /// wiped on drop: it is for handing to rustls, which owns it from then on.
    pub(crate) fn take_value(&mut self) -> Vec<u8> {
        Vec::from(core::mem::take(&mut *self.entry.value))
    }

    /// The same session, created at `now`.
    #[cfg(feature = "redis")]
    pub(crate) fn restamped(mut self, now: i64) -> Self {
        self.entry.stamp.created = now;
        self
    }

    pub(crate) fn created_at_nanos(id: Vec<u8>, mut value: Vec<u8>, created: i64) -> Self {
        let session = Self {
            id: Id::new(Context::default(), &id),
            context: None,
            entry: Entry {
                value: Zeroizing::new(Box::from(value.as_slice())),
                stamp: Stamp {
                    created,
                    timeout: Stamp::CACHE_DEFAULT,
                },
            },
        };
        value.zeroize();
        session
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = f.debug_struct("Session");
        if let Some(context) = &self.context {
            shown.field("context", context);
        }
        shown
            .field("id_prefix", &format_args!("{}", IdPrefix::of(self.id())))
            .field("id_len", &self.id().len())
            .field("value_len", &self.value().len())
            .field("created", &self.created())
            .field("timeout", &self.timeout())
            .finish_non_exhaustive()
    }
}

/// A session id as the cache keys it: the index of its resumption context, then the id.
/// Inline up to 37 id bytes (every id rustls makes is 32), on the heap beyond; 40 bytes
/// either way.
///
/// The map looks keys up as plain `[u8]` (through `Borrow`), and a lookup builds its
/// key as an `Id` too, on the stack for ids up to 37 bytes: one byte of context before
/// the id makes the contexts separate namespaces, with no name a prefix of another's.
///
/// It is not wiped. Ids are public (they cross the network in clear), and wiping one on
/// drop would not wipe them all anyway: `lru` moves each id out of its node before it
/// frees the node, leaving a copy in the freed memory.
#[derive(Clone)]
pub(crate) enum Id {
    /// `len` bytes of `bytes` are the key.
    Inline(u8, [u8; ID_INLINE]),
    Heap(Box<[u8]>),
}

/// How many key bytes (context and id) an [`Id`] holds inline.
const ID_INLINE: usize = 38;

impl Id {
    pub(crate) fn new(context: Context, id: &[u8]) -> Self {
        let len = id.len() + 1;
        if len <= ID_INLINE {
            let mut bytes = [0; ID_INLINE];
            bytes[0] = context.0;
            bytes[1..len].copy_from_slice(id);
            // `len` is at most 38: it fits a `u8`.
            Self::Inline(len as u8, bytes)
        } else {
            let mut key = Vec::with_capacity(len);
            key.push(context.0);
            key.extend_from_slice(id);
            Self::Heap(key.into_boxed_slice())
        }
    }

    /// The key: the context's index, then the id.
    pub(crate) fn key(&self) -> &[u8] {
        match self {
            Self::Inline(len, bytes) => &bytes[..usize::from(*len)],
            Self::Heap(key) => key,
        }
    }

    /// The id, without its context.
    pub(crate) fn id(&self) -> &[u8] {
        self.key().get(1..).unwrap_or_default()
    }

    pub(crate) fn context(&self) -> Context {
        Context(self.key().first().copied().unwrap_or(0))
    }

    pub(crate) fn set_context(&mut self, context: Context) {
        match self {
            Self::Inline(_, bytes) => bytes[0] = context.0,
            Self::Heap(key) => {
                if let Some(first) = key.first_mut() {
                    *first = context.0;
                }
            }
        }
    }
}

impl Borrow<[u8]> for Id {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

impl Hash for Id {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must agree with `<[u8] as Hash>` for `Borrow<[u8]>` lookups.
        self.key().hash(state);
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Id {}

/// A resumption context, as a cache numbers them: 0 is the default, the others are
/// named ([`SessionCache::context`](crate::SessionCache::context)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Context(pub(crate) u8);

/// What the LRU map holds for an id: the secret value and its times.
#[derive(Clone)]
pub(crate) struct Entry {
    /// Exact-size, wiped on drop.
    pub(crate) value: Zeroizing<Box<[u8]>>,
    pub(crate) stamp: Stamp,
}

/// When a session was created and how long it lives, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Nanoseconds since the Unix epoch.
    pub(crate) created: i64,
    /// Nanoseconds, or [`Stamp::CACHE_DEFAULT`].
    pub(crate) timeout: u64,
}

impl Stamp {
    /// The `timeout` that means "the cache's timeout, whatever it is when checked".
    pub(crate) const CACHE_DEFAULT: u64 = u64::MAX;

    pub(crate) fn own_timeout(self) -> Option<u64> {
        (self.timeout != Self::CACHE_DEFAULT).then_some(self.timeout)
    }

    /// The timeout that applies: the session's own, else the cache's.
    pub(crate) fn timeout_or(self, cache_timeout: u64) -> u64 {
        self.own_timeout().unwrap_or(cache_timeout)
    }

    /// `created + timeout`, in exact integer arithmetic.
    pub(crate) fn deadline(self, cache_timeout: u64) -> i128 {
        i128::from(self.created) + i128::from(self.timeout_or(cache_timeout))
    }

    /// The expiry rule: `now > created + timeout`, strictly.
    pub(crate) fn is_expired_at(self, now: i64, cache_timeout: u64) -> bool {
        i128::from(now) > self.deadline(cache_timeout)
    }
}

/// Up to the first four bytes of an id, in hex: enough to correlate log lines, never
/// enough to resume a session. A copy, so it outlives the id it came from.
#[derive(Clone, Copy)]
pub(crate) struct IdPrefix {
    bytes: [u8; 4],
    shown: usize,
    truncated: bool,
}

impl IdPrefix {
    pub(crate) fn of(id: &[u8]) -> Self {
        let shown = id.len().min(4);
        let mut bytes = [0; 4];
        bytes[..shown].copy_from_slice(&id[..shown]);
        Self {
            bytes,
            shown,
            truncated: id.len() > 4,
        }
    }
}

impl fmt::Display for IdPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.bytes[..self.shown] {
            write!(f, "{byte:02x}")?;
        }
        if self.truncated {
            f.write_str("…")?;
        }
        Ok(())
    }
}

/// Now, in nanoseconds since the Unix epoch.
pub(crate) fn now_nanos() -> i64 {
    to_nanos(SystemTime::now())
}

/// `time` in nanoseconds since the Unix epoch, clamped to what an `i64` holds.
pub(crate) fn to_nanos(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos())
            .map(|n| -n)
            .unwrap_or(i64::MIN),
    }
}

/// The inverse of [`to_nanos`].
pub(crate) fn from_nanos(nanos: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(nanos.unsigned_abs());
    let time = if nanos >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    // Every i64 of nanoseconds (years 1677..2262) is a valid SystemTime on the platforms
    // rustls supports; the epoch is a safe answer should one not be.
    time.unwrap_or(UNIX_EPOCH)
}

/// A cache timeout in nanoseconds. Cache timeouts are at most seven days, so this never
/// saturates for them.
pub(crate) fn timeout_nanos(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_nanos())
        .unwrap_or(u64::MAX)
        .min(Stamp::CACHE_DEFAULT - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_and_value_share_one_buffer_and_round_trip() {
        let s = Session::new(vec![1, 2, 3], vec![9; 83]);
        assert_eq!(s.id(), &[1, 2, 3]);
        assert_eq!(s.value(), &[9; 83][..]);
        assert_eq!(s.len(), 86);
        let empty = Session::new(Vec::new(), Vec::new());
        assert!(empty.is_empty());
        assert_eq!(empty.id(), b"");
        assert_eq!(empty.value(), b"");
    }

    #[test]
    fn times_round_trip_exactly_including_before_the_epoch() {
        for nanos in [0i64, 1, -1, 1_700_000_000_123_456_789, -86_400_000_000_001] {
            assert_eq!(to_nanos(from_nanos(nanos)), nanos);
        }
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 987_654_321);
        let s = Session::new(b"i".to_vec(), b"v".to_vec()).with_created(t);
        assert_eq!(s.created(), t);
    }

    #[test]
    fn far_times_clamp_instead_of_panicking() {
        let far = UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400);
        assert_eq!(to_nanos(far), i64::MAX);
        let s = Session::new(b"i".to_vec(), b"v".to_vec())
            .with_created(far)
            .with_timeout(Duration::MAX);
        assert_eq!(s.timeout(), Some(Duration::from_nanos(u64::MAX - 1)));
        assert!(!s.is_expired_at(far, Duration::from_secs(1)));
    }

    #[test]
    fn expiry_is_strict_and_uses_own_timeout_first() {
        let created = UNIX_EPOCH + Duration::from_secs(100);
        let s = Session::new(b"i".to_vec(), b"v".to_vec()).with_created(created);
        let cache = Duration::from_secs(10);
        assert!(!s.is_expired_at(created + cache, cache));
        assert!(s.is_expired_at(created + cache + Duration::from_nanos(1), cache));
        // Before creation (a clock stepped back) is never expired.
        assert!(!s.is_expired_at(created - Duration::from_secs(50), cache));

        let own = s.with_timeout(Duration::from_secs(1));
        assert!(own.is_expired_at(created + Duration::from_millis(1001), cache));
        assert!(!own.is_expired_at(created + Duration::from_secs(1), cache));
        let zero = own.with_timeout(Duration::ZERO);
        assert!(!zero.is_expired_at(created, cache));
        assert!(zero.is_expired_at(created + Duration::from_nanos(1), cache));
    }

    #[test]
    fn debug_shows_lengths_times_and_an_id_prefix_and_nothing_else() {
        let created = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let s = Session::new(
            vec![0xab, 0xcd, 0xef, 0x01, 0x7e],
            b"MASTER-SECRET".to_vec(),
        )
        .with_created(created);
        // The whole output, so that a field added later (the value, say, in whatever
        // rendering) fails here rather than hiding among the others.
        assert_eq!(
            format!("{s:?}"),
            format!(
                "Session {{ id_prefix: abcdef01…, id_len: 5, value_len: 13, \
                 created: {created:?}, timeout: None, .. }}"
            )
        );
    }

    #[test]
    fn a_key_hashes_like_its_bytes_and_holds_context_then_id() {
        use std::collections::hash_map::RandomState;
        use std::hash::BuildHasher;
        let state = RandomState::new();
        for id in [
            &b"the-id"[..],
            &[7u8; 32][..],
            &[8u8; 37][..],
            &[9u8; 38][..],
            b"",
        ] {
            let mut s = Session::new(id.to_vec(), b"value".to_vec());
            s.id.set_context(Context(5));
            let key = Id::new(Context(5), id);
            assert_eq!(s.id.key(), key.key());
            assert_eq!(state.hash_one(&s.id), state.hash_one(key.key()));
            assert_eq!((s.id(), s.id.context()), (id, Context(5)));
            assert_eq!(key.key()[0], 5);
        }
        let a = Id::new(Context(1), b"ab");
        let b = Id::new(Context(2), b"b");
        assert_ne!(a.key(), b.key(), "contexts never run into ids");
    }

    #[test]
    fn stays_within_the_memory_layout_budget() {
        // The per-entry cost argued in the crate docs depends on these sizes.
        assert_eq!(size_of::<Id>(), 40);
        assert_eq!(size_of::<Entry>(), 32);
    }
}
