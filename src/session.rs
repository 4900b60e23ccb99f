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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use smallvec::SmallVec;
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

    /// The session id (TLS 1.2) or ticket (TLS 1.3) that clients send back.
    pub fn id(&self) -> &[u8] {
        &self.id.0
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
        self.id.0.len().saturating_add(self.entry.value.len())
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
            id: Id(SmallVec::from_slice(&id)),
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
        f.debug_struct("Session")
            .field("id_prefix", &format_args!("{}", IdPrefix::of(self.id())))
            .field("id_len", &self.id().len())
            .field("value_len", &self.value().len())
            .field("created", &self.created())
            .field("timeout", &self.timeout())
            .finish_non_exhaustive()
    }
}

/// A session id: inline up to 32 bytes (every id rustls makes), on the heap beyond.
///
/// It hashes, compares and borrows as a plain `[u8]`, so the LRU map can be queried
/// with a `&[u8]` from the network without allocating.
///
/// It is not wiped. Ids are public (they cross the network in clear), and wiping one on
/// drop would not wipe them all anyway: `lru` moves each id out of its node before it
/// frees the node, leaving a copy in the freed memory.
#[derive(Clone)]
pub(crate) struct Id(SmallVec<[u8; 32]>);

impl Id {
    #[cfg(feature = "redis")]
    pub(crate) fn from_slice(id: &[u8]) -> Self {
        Self(SmallVec::from_slice(id))
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<[u8]> for Id {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl Hash for Id {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must agree with `<[u8] as Hash>` for `Borrow<[u8]>` lookups.
        self.0.as_slice().hash(state);
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Id {}

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
    fn id_hashes_like_a_byte_slice() {
        use std::collections::hash_map::RandomState;
        use std::hash::BuildHasher;
        let state = RandomState::new();
        for id in [&b"the-id"[..], &[7u8; 32][..], &[8u8; 33][..], b""] {
            let s = Session::new(id.to_vec(), b"value".to_vec());
            assert_eq!(state.hash_one(&s.id), state.hash_one(id));
            assert_eq!(s.id(), id);
        }
    }

    #[test]
    fn stays_within_the_memory_layout_budget() {
        // The per-entry cost argued in the crate docs depends on these sizes.
        assert_eq!(size_of::<Id>(), 40);
        assert_eq!(size_of::<Entry>(), 32);
    }
}
