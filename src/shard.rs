//! The engine: one LRU map of sessions, with capacity eviction and expiry sweeps.
//!
//! A `Shard` has no lock, calls no callbacks, counts no statistics and logs nothing. Every
//! operation hands back the sessions it removed, with the reason, so that the caller can
//! release its lock before it notifies anyone or wipes anything.

use core::fmt;
use core::num::NonZeroUsize;

use lru::{DefaultHasher, LruCache};
use smallvec::SmallVec;

use crate::callbacks::RemovalCause;
use crate::session::{Entry, Id, Session};
use crate::stats::ShardCounts;

/// Sessions an operation removed, with why. Made before the lock is taken with room for
/// all that the operation can remove ([`removal_room`]), and inline for up to four, so
/// that a typical store allocates nothing, and no store grows it under the lock.
pub(crate) type Removed = SmallVec<[(Session, RemovalCause); 4]>;

/// The most sessions that storing one of `cost` bytes ([`cost`]) can remove: one by
/// capacity, and, with a byte budget, enough to free its cost. Each session costs at
/// least [`ENTRY_OVERHEAD`], and before the store the shard was within its budget, so
/// the budget never evicts more than `cost / ENTRY_OVERHEAD`, rounded up.
pub(crate) fn removal_room(cost: usize, budgeted: bool) -> usize {
    1 + if budgeted {
        cost.div_ceil(ENTRY_OVERHEAD)
    } else {
        0
    }
}

/// What the byte budget counts for each session on top of its id and value: the LRU
/// node (the inline id, the value's pointer and length, the times, two links: 88 bytes)
/// and about 24 bytes of hash table (a 16-byte slot and a control byte, at most 7/8 full).
///
/// Not public: it follows the layout, which a release may change. The builder's docs
/// state the figure, and `SessionCache::bytes` reports the total.
pub(crate) const ENTRY_OVERHEAD: usize = 112;

/// The bytes a session counts against a byte budget.
pub(crate) fn cost(id: &Id, entry: &Entry) -> usize {
    session_cost(id.id().len(), entry.value.len())
}

/// [`cost`], from the lengths.
pub(crate) fn session_cost(id_len: usize, value_len: usize) -> usize {
    id_len
        .saturating_add(value_len)
        .saturating_add(ENTRY_OVERHEAD)
}

/// One LRU map from id to session, bounded by a count and by bytes.
///
/// The map hashes ids with `lru`'s default hasher (foldhash, with a random seed per map).
/// Looked-up ids are chosen by whoever connects, but that cannot slow the map down: a
/// lookup walks the probe sequence that the *inserted* ids shaped, and those are
/// uniformly random (rustls makes them), so no lookup meets long chains. Flooding a hash
/// table takes inserting chosen keys, which the network cannot do. (An application that
/// inserts ids an attacker chose, through `add_session`, should pick them at random.)
pub(crate) struct Shard {
    map: LruCache<Id, Entry, DefaultHasher>,
    /// What the sessions held cost, by [`cost`].
    bytes: usize,
    /// The most `bytes` may be after any operation.
    max_bytes: usize,
    /// What happened here; `entries` and `bytes` are filled in by [`Shard::counts`].
    counts: ShardCounts,
}

/// The most expired sessions one automatic sweep removes.
pub(crate) const SWEEP_LIMIT: usize = 256;

/// Every how many new sessions a shard (or, under `NO_INTERNAL_STORE`, the cache) sweeps
/// expired ones, unless `NO_AUTO_CLEAR`.
pub(crate) const AUTO_CLEAR_INTERVAL: u64 = 256;

/// What [`Shard::add`] did.
pub(crate) enum Added {
    /// The same id with the same value was already there. The session offered is handed
    /// back, to be dropped after the lock is released.
    Unchanged(Session),
    /// The same id had another value, now replaced; the old session is handed back.
    Replaced(Session),
    /// A new id.
    Inserted,
}

/// What a lookup found.
pub(crate) enum Lookup<T> {
    /// A live session.
    Hit(T),
    /// An expired session, now removed.
    Expired(Session),
    /// Nothing under that id.
    Miss,
}

impl Shard {
    /// An empty shard holding at most `capacity` sessions and `max_bytes` bytes. The hash
    /// table is allocated here, in full, so that inserts never rehash.
    pub(crate) fn new(capacity: NonZeroUsize, max_bytes: usize) -> Self {
        Self {
            map: LruCache::with_hasher(capacity, DefaultHasher::default()),
            bytes: 0,
            max_bytes,
            counts: ShardCounts::default(),
        }
    }

    /// The counters, with the current length and bytes.
    pub(crate) fn counts(&self) -> ShardCounts {
        ShardCounts {
            entries: self.map.len(),
            bytes: self.bytes,
            ..self.counts
        }
    }

    /// Stores a new session from rustls's `put`, and counts it.
    ///
    /// rustls's ids are fresh and random, so this skips [`Shard::add`]'s look before it
    /// inserts: one hash probe fewer under the lock. Should the id be stored already, the
    /// new value overwrites the old (rustls's contract for `put`) and is promoted.
    ///
    /// `removed` must have room for [`removal_room`] more.
    pub(crate) fn put(&mut self, session: Session, removed: &mut Removed) -> Added {
        self.counts.new_sessions += 1;
        let Session { id, entry, .. } = session;
        self.bytes += cost(&id, &entry);
        let added = match self.map.push(id, entry) {
            None => Added::Inserted,
            Some(displaced) => {
                // `push` hands back the new id with the old value when the id was there
                // (the new session is then the most recently used, under that id), or
                // the least recently used session when it evicted one.
                let replaced = self
                    .map
                    .peek_mru()
                    .is_some_and(|(mru, _)| *mru == displaced.0);
                let old = self.detach(displaced);
                if replaced {
                    Added::Replaced(old)
                } else {
                    self.counts.cache_full += 1;
                    removed.push((old, RemovalCause::Evicted));
                    Added::Inserted
                }
            }
        };
        self.fit_budget(removed);
        added
    }

    /// Whether the new session [`Shard::put`] just counted is one that sweeps: every
    /// [`AUTO_CLEAR_INTERVAL`]th in this shard.
    pub(crate) fn sweep_due(&self) -> bool {
        self.counts.new_sessions.is_multiple_of(AUTO_CLEAR_INTERVAL)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.map.cap().get()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether a session (live or expired) is stored under `id`. Does not promote.
    pub(crate) fn contains(&self, id: &[u8]) -> bool {
        self.map.contains(id)
    }

    /// Adds `session` as the most recently used, with OpenSSL's `SSL_CTX_add_session`
    /// rules: an identical session changes nothing (but its time, if `update_time` is
    /// `Some(now)`), another value under the same id replaces the old one, and a new id
    /// evicts the least recently used sessions while the shard is over its count or its
    /// byte budget.
    ///
    /// The caller makes sure one session fits the byte budget on its own; the session
    /// just added is then never the one evicted. `removed` must have room for
    /// [`removal_room`] more.
    pub(crate) fn add(
        &mut self,
        session: Session,
        update_time: Option<i64>,
        removed: &mut Removed,
    ) -> Added {
        let Session { id, mut entry, .. } = session;
        if let Some(now) = update_time {
            entry.stamp.created = now;
        }
        let key = id.key();
        let added_cost = cost(&id, &entry);
        let added = match self.map.peek_mut(key) {
            Some(held) if held.value[..] == entry.value[..] => {
                if update_time.is_some() {
                    held.stamp.created = entry.stamp.created;
                }
                return Added::Unchanged(Session {
                    id,
                    entry,
                    context: None,
                });
            }
            Some(held) => {
                // Swap in place rather than `push`, which would hand back the new id.
                core::mem::swap(held, &mut entry);
                self.map.promote(key);
                self.bytes = self.bytes + added_cost - cost(&id, &entry);
                Added::Replaced(Session {
                    id,
                    entry,
                    context: None,
                })
            }
            None => {
                self.bytes += added_cost;
                // `push` on a full map evicts the least recently used session and reuses
                // its node, so a full cache allocates nothing here.
                if let Some(evicted) = self.map.push(id, entry) {
                    self.counts.cache_full += 1;
                    removed.push((self.detach(evicted), RemovalCause::Evicted));
                }
                Added::Inserted
            }
        };
        self.fit_budget(removed);
        added
    }

    /// Evicts least recently used sessions while over the byte budget, never the last
    /// one (the caller made sure a single session fits).
    fn fit_budget(&mut self, removed: &mut Removed) {
        while self.bytes > self.max_bytes && self.map.len() > 1 {
            let Some(evicted) = self.map.pop_lru() else {
                break;
            };
            self.counts.cache_full += 1;
            removed.push((self.detach(evicted), RemovalCause::Evicted));
        }
    }

    /// TLS 1.2 lookup: copies a live session's value into `out` and promotes it; removes
    /// an expired one.
    ///
    /// `out` is never grown here, so nothing is allocated under the caller's lock: a live
    /// value longer than `out`'s spare capacity is `Err(its length)`, and nothing is
    /// counted, for the caller to make room and ask again.
    pub(crate) fn get(
        &mut self,
        id: &[u8],
        now: i64,
        cache_timeout: u64,
        out: &mut Vec<u8>,
    ) -> Result<Lookup<()>, usize> {
        let found = match self.map.get(id) {
            None => Lookup::Miss,
            Some(entry) if entry.stamp.is_expired_at(now, cache_timeout) => {
                self.remove(id).map_or(Lookup::Miss, Lookup::Expired)
            }
            Some(entry) if entry.value.len() > out.capacity() - out.len() => {
                return Err(entry.value.len());
            }
            Some(entry) => {
                out.extend_from_slice(&entry.value);
                Lookup::Hit(())
            }
        };
        self.count(&found);
        Ok(found)
    }

    /// TLS 1.3 lookup: removes the session under `id`, live or expired, in one step, so a
    /// ticket is handed out at most once.
    pub(crate) fn take(&mut self, id: &[u8], now: i64, cache_timeout: u64) -> Lookup<Session> {
        let found = match self.remove(id) {
            None => Lookup::Miss,
            Some(session) if session.entry.stamp.is_expired_at(now, cache_timeout) => {
                Lookup::Expired(session)
            }
            Some(session) => Lookup::Hit(session),
        };
        self.count(&found);
        found
    }

    /// Counts a miss found without a look: an id longer than any stored.
    pub(crate) fn count_miss(&mut self) {
        self.counts.misses += 1;
    }

    /// Counts a lookup's outcome: a hit, a timeout (an expired session), or a miss.
    fn count<T>(&mut self, found: &Lookup<T>) {
        match found {
            Lookup::Hit(_) => self.counts.hits += 1,
            Lookup::Expired(_) => self.counts.timeouts += 1,
            Lookup::Miss => self.counts.misses += 1,
        }
    }

    pub(crate) fn remove(&mut self, id: &[u8]) -> Option<Session> {
        let removed = self.map.pop_entry(id)?;
        Some(self.detach(removed))
    }

    /// The bounded sweep: moves expired sessions from the least recently used end into
    /// `out`, stopping at the first live one or when `out` is full (it is not grown).
    /// Constant work per call, however large the shard; an expired session behind a live
    /// one waits for its lookup, for eviction, or for [`Shard::flush_expired`].
    pub(crate) fn sweep_lru_end(
        &mut self,
        now: i64,
        cache_timeout: u64,
        out: &mut Vec<(Session, RemovalCause)>,
    ) {
        while out.len() < out.capacity() {
            match self.map.peek_lru() {
                Some((_, entry)) if entry.stamp.is_expired_at(now, cache_timeout) => {}
                _ => break,
            }
            let Some(expired) = self.map.pop_lru() else {
                break;
            };
            out.push((self.detach(expired), RemovalCause::Expired));
        }
    }

    /// How many sessions [`Shard::sweep_lru_end`] would remove, at most `limit`: the
    /// expired ones at the least recently used end, up to the first live one.
    pub(crate) fn expired_at_lru_end(&self, now: i64, cache_timeout: u64, limit: usize) -> usize {
        self.map
            .iter()
            .rev()
            .take(limit)
            .take_while(|(_, entry)| entry.stamp.is_expired_at(now, cache_timeout))
            .count()
    }

    /// How many sessions are expired at `now`. Walks the whole shard.
    pub(crate) fn count_expired(&self, now: i64, cache_timeout: u64) -> usize {
        self.map
            .iter()
            .filter(|(_, entry)| entry.stamp.is_expired_at(now, cache_timeout))
            .count()
    }

    /// Moves the sessions expired at `now` into `out`, walking the whole shard, as many
    /// as `out` has room for: it is not grown. Returns how many expired ones it left for
    /// lack of room.
    ///
    /// Values are moved, not dropped, so that they are wiped after the caller's lock is
    /// released. Ids are copied (`lru` lends them only by reference), which allocates
    /// only for ids over 32 bytes; rustls's are 32.
    pub(crate) fn flush_expired(
        &mut self,
        now: i64,
        cache_timeout: u64,
        out: &mut Vec<Session>,
    ) -> usize {
        let mut left = 0;
        let bytes = &mut self.bytes;
        self.map.retain(|id, entry| {
            if !entry.stamp.is_expired_at(now, cache_timeout) {
                return true;
            }
            if out.len() == out.capacity() {
                left += 1;
                return true;
            }
            *bytes -= cost(id, entry);
            // What stays behind for `retain` to drop is an empty value.
            let value = core::mem::take(&mut entry.value);
            out.push(Session {
                context: None,
                id: id.clone(),
                entry: Entry {
                    value,
                    stamp: entry.stamp,
                },
            });
            false
        });
        left
    }

    /// Moves sessions into `out`, least recently used first, as many as it has room for:
    /// it is not grown. Returns how many it left.
    pub(crate) fn drain(&mut self, out: &mut Vec<Session>) -> usize {
        while out.len() < out.capacity() {
            let Some(removed) = self.map.pop_lru() else {
                break;
            };
            out.push(self.detach(removed));
        }
        self.map.len()
    }

    /// Changes the capacity, evicting least recently used sessions into `out` to fit.
    ///
    /// This one does allocate: `out` grows if it lacks room, and the hash table is
    /// rebuilt for the new capacity, larger or smaller.
    pub(crate) fn set_capacity(&mut self, capacity: NonZeroUsize, out: &mut Vec<Session>) {
        while self.map.len() > capacity.get() {
            let Some(evicted) = self.map.pop_lru() else {
                break;
            };
            self.counts.cache_full += 1;
            out.push(self.detach(evicted));
        }
        if capacity > self.map.cap() {
            // Grow into a table allocated in full now, so that later inserts never
            // rehash under the lock. Moving least recently used first keeps the order.
            let mut grown = LruCache::with_hasher(capacity, DefaultHasher::default());
            while let Some((id, entry)) = self.map.pop_lru() {
                grown.push(id, entry);
            }
            self.map = grown;
        } else {
            self.map.resize(capacity);
        }
    }

    /// Accounts for a session leaving the map.
    fn detach(&mut self, (id, entry): (Id, Entry)) -> Session {
        self.bytes -= cost(&id, &entry);
        Session {
            id,
            entry,
            context: None,
        }
    }
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("len", &self.map.len())
            .field("capacity", &self.map.cap())
            .field("bytes", &self.bytes)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: u8, value: u8, created: i64) -> Session {
        Session::created_at_nanos(vec![id; 32], vec![value; 83], created)
    }

    /// The map key of `session(id, ..)`: the default context, then the id.
    fn key(id: u8) -> Vec<u8> {
        let mut key = vec![0];
        key.extend([id; 32]);
        key
    }

    fn shard(capacity: usize) -> Shard {
        Shard::new(NonZeroUsize::new(capacity).unwrap(), usize::MAX)
    }

    /// What one test session (32-byte id, 83-byte value) costs.
    const ONE: usize = 32 + 83 + ENTRY_OVERHEAD;

    fn lru_order(shard: &Shard) -> Vec<u8> {
        shard.map.iter().rev().map(|(id, _)| id.id()[0]).collect()
    }

    #[test]
    fn add_evicts_the_least_recently_used_and_get_promotes() {
        let mut s = shard(3);
        let mut removed = Removed::new();
        for id in 1..=3 {
            assert!(matches!(
                s.add(session(id, id, 0), None, &mut removed),
                Added::Inserted
            ));
        }
        let mut out = Vec::with_capacity(83);
        assert!(matches!(
            s.get(&key(1), 0, 10, &mut out),
            Ok(Lookup::Hit(()))
        ));
        assert_eq!(out, vec![1; 83]);
        assert_eq!(lru_order(&s), [2, 3, 1]);
        assert!(matches!(
            s.add(session(4, 4, 0), None, &mut removed),
            Added::Inserted
        ));
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].0.id(), &[2; 32]);
        assert_eq!(removed[0].1, RemovalCause::Evicted);
        assert_eq!(lru_order(&s), [3, 1, 4]);
        assert!(s.contains(&key(3)));
        assert_eq!(lru_order(&s), [3, 1, 4], "contains does not promote");
    }

    #[test]
    fn identical_add_changes_nothing_but_the_time_when_asked() {
        let mut s = shard(2);
        let mut removed = Removed::new();
        s.add(session(1, 1, 5), None, &mut removed);
        s.add(session(2, 2, 5), None, &mut removed);
        assert!(matches!(
            s.add(session(1, 1, 9), None, &mut removed),
            Added::Unchanged(_)
        ));
        assert_eq!(lru_order(&s), [1, 2], "an identical add does not promote");
        assert_eq!(s.map.peek(&key(1)[..]).unwrap().stamp.created, 5);
        assert!(matches!(
            s.add(session(1, 1, 9), Some(77), &mut removed),
            Added::Unchanged(_)
        ));
        assert_eq!(s.map.peek(&key(1)[..]).unwrap().stamp.created, 77);
        assert!(removed.is_empty());
    }

    #[test]
    fn another_value_replaces_and_promotes() {
        let mut s = shard(2);
        let mut removed = Removed::new();
        s.add(session(1, 1, 5), None, &mut removed);
        s.add(session(2, 2, 5), None, &mut removed);
        let Added::Replaced(old) = s.add(session(1, 9, 6), None, &mut removed) else {
            panic!("expected a replacement");
        };
        assert_eq!(old.value(), &[1; 83][..]);
        assert_eq!(old.entry.stamp.created, 5);
        assert_eq!(lru_order(&s), [2, 1]);
        let mut out = Vec::with_capacity(83);
        assert!(matches!(
            s.get(&key(1), 6, 10, &mut out),
            Ok(Lookup::Hit(()))
        ));
        assert_eq!(out, vec![9; 83]);
        assert!(removed.is_empty());
    }

    #[test]
    fn expired_entries_are_removed_on_lookup() {
        let mut s = shard(4);
        let mut removed = Removed::new();
        s.add(session(1, 1, 0), None, &mut removed);
        s.add(session(2, 2, 0), None, &mut removed);
        let mut out = Vec::with_capacity(83);
        assert!(matches!(
            s.get(&key(1), 10, 10, &mut out),
            Ok(Lookup::Hit(()))
        ));
        assert!(matches!(
            s.get(&key(1), 11, 10, &mut Vec::new()),
            Ok(Lookup::Expired(_))
        ));
        assert!(!s.contains(&key(1)));
        assert!(matches!(s.take(&key(2), 11, 10), Lookup::Expired(_)));
        assert!(matches!(s.take(&key(2), 0, 10), Lookup::Miss));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn flush_moves_out_exactly_the_expired_as_room_allows() {
        let mut s = shard(8);
        let mut removed = Removed::new();
        for id in 1..=5 {
            s.add(session(id, id, i64::from(id) * 10), None, &mut removed);
        }
        // Deadlines are 20, 30, 40, 50, 60: at 45, the first three have `deadline < now`.
        assert_eq!(s.count_expired(45, 10), 3);
        let mut out = Vec::with_capacity(2);
        assert_eq!(s.flush_expired(45, 10, &mut out), 1, "no room for one");
        assert_eq!(out.capacity(), 2, "not grown");
        let ids: Vec<u8> = out.iter().map(|s| s.id()[0]).collect();
        assert_eq!(ids, [3, 2], "most recently used first, as retain walks");
        assert_eq!(out[0].value(), &[3; 83][..], "the value moved out whole");
        assert_eq!(lru_order(&s), [1, 4, 5]);
        out.reserve(1);
        assert_eq!(s.flush_expired(45, 10, &mut out), 0);
        assert_eq!((out.len(), lru_order(&s)), (3, vec![4, 5]));
        assert_eq!(s.count_expired(45, 10), 0);
    }

    #[test]
    fn drain_moves_out_as_room_allows_least_recently_used_first() {
        let mut s = shard(8);
        let mut removed = Removed::new();
        for id in 1..=3 {
            s.add(session(id, id, 0), None, &mut removed);
        }
        let mut out = Vec::with_capacity(2);
        assert_eq!(s.drain(&mut out), 1);
        assert_eq!(out.capacity(), 2, "not grown");
        out.reserve(1);
        assert_eq!(s.drain(&mut out), 0);
        let ids: Vec<u8> = out.iter().map(|s| s.id()[0]).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!((s.len(), s.bytes()), (0, 0));
    }

    #[test]
    fn get_never_grows_the_buffer_it_copies_into() {
        let mut s = shard(4);
        let mut removed = Removed::new();
        let big = Session::created_at_nanos(vec![1; 32], vec![7; 5_000], 0);
        s.add(big, None, &mut removed);
        let mut out = Vec::with_capacity(128);
        let before = (out.as_ptr(), out.capacity());
        assert!(matches!(s.get(&key(1), 0, 10, &mut out), Err(5_000)));
        assert_eq!((out.as_ptr(), out.capacity()), before, "not grown");
        assert_eq!(s.counts().hits + s.counts().misses, 0, "nothing counted");
        out.reserve_exact(5_000);
        let before = (out.as_ptr(), out.capacity());
        assert!(matches!(
            s.get(&key(1), 0, 10, &mut out),
            Ok(Lookup::Hit(()))
        ));
        assert_eq!((out.as_ptr(), out.capacity()), before, "copied in place");
        assert_eq!(out, vec![7; 5_000]);
        assert_eq!(s.counts().hits, 1);
        // Misses and expired sessions need no room.
        let mut none = Vec::new();
        assert!(matches!(s.get(&key(2), 0, 10, &mut none), Ok(Lookup::Miss)));
        assert!(matches!(
            s.get(&key(1), 11, 10, &mut none),
            Ok(Lookup::Expired(_))
        ));
        assert_eq!(none.capacity(), 0);
    }

    #[test]
    fn no_store_removes_more_than_the_room_made_for_it() {
        // Random sizes from empty to 16 KiB under a tight budget, stored with `add` and
        // `put`, replacing ids as often as not: the list made with `removal_room` never
        // has to grow, which is what keeps a store from allocating under the lock.
        let max = 16 * 1024;
        let mut s = Shard::new(NonZeroUsize::new(64).unwrap(), max + ENTRY_OVERHEAD);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut most = 0;
        for round in 0..4_000 {
            let id_len = next(40) as usize;
            let value_len = match next(4) {
                0 => next(max as u64 - 40) as usize,
                _ => next(100) as usize,
            };
            let id = vec![next(48) as u8; id_len];
            let session = Session::created_at_nanos(id, vec![1; value_len], 0);
            let room = removal_room(session_cost(id_len, value_len), true);
            let mut removed = Removed::with_capacity(room);
            let capacity = removed.capacity();
            if round % 2 == 0 {
                s.put(session, &mut removed);
            } else {
                s.add(session, None, &mut removed);
            }
            assert_eq!(removed.capacity(), capacity, "round {round}: grown");
            assert!(s.bytes() <= max + ENTRY_OVERHEAD);
            most = most.max(removed.len());
        }
        assert!(most > 4, "some store evicted more than fits inline: {most}");
        assert_eq!(removal_room(32 + 83 + ENTRY_OVERHEAD, true), 4, "inline");
        assert_eq!(
            removal_room(usize::MAX, false),
            1,
            "no budget: one eviction"
        );
    }

    #[test]
    fn shrinking_evicts_lru_and_growing_keeps_order() {
        let mut s = shard(4);
        let mut removed = Removed::new();
        for id in 1..=4 {
            s.add(session(id, id, 0), None, &mut removed);
        }
        let mut out = Vec::new();
        s.set_capacity(NonZeroUsize::new(2).unwrap(), &mut out);
        assert_eq!(out.iter().map(|s| s.id()[0]).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((s.len(), s.capacity()), (2, 2));
        s.set_capacity(NonZeroUsize::new(100).unwrap(), &mut out);
        assert_eq!((lru_order(&s), s.capacity()), (vec![3, 4], 100));
    }

    #[test]
    fn bytes_follow_every_way_in_and_out() {
        let mut s = shard(8);
        let mut removed = Removed::new();
        let mut out = Vec::new();
        s.add(session(1, 1, 0), None, &mut removed);
        s.add(session(2, 2, 0), None, &mut removed);
        assert_eq!(s.bytes(), 2 * ONE);
        let longer = Session::created_at_nanos(vec![1; 32], vec![7; 100], 0);
        assert!(matches!(
            s.add(longer, None, &mut removed),
            Added::Replaced(_)
        ));
        assert_eq!(s.bytes(), 2 * ONE + 17);
        assert!(matches!(s.take(&key(1), 0, 10), Lookup::Hit(_)));
        assert_eq!(s.bytes(), ONE);
        s.add(session(3, 3, 100), None, &mut removed);
        out.reserve(2);
        s.flush_expired(50, 10, &mut out);
        assert_eq!(s.bytes(), ONE);
        s.drain(&mut out);
        assert_eq!((s.bytes(), s.len()), (0, 0));
    }

    #[test]
    fn the_byte_budget_evicts_least_recently_used_to_fit() {
        let mut s = Shard::new(NonZeroUsize::new(100).unwrap(), 3 * ONE);
        let mut removed = Removed::new();
        for id in 1..=3 {
            s.add(session(id, id, 0), None, &mut removed);
        }
        assert!(removed.is_empty());
        s.add(session(4, 4, 0), None, &mut removed);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].0.id(), &[1; 32]);
        // A session twice the usual size pushes out two.
        removed.clear();
        let big = Session::created_at_nanos(vec![5; 32], vec![5; 83 + ONE], 0);
        s.add(big, None, &mut removed);
        let evicted: Vec<u8> = removed.iter().map(|(s, _)| s.id()[0]).collect();
        assert_eq!(evicted, [2, 3]);
        assert_eq!(lru_order(&s), [4, 5]);
        assert!(s.bytes() <= 3 * ONE);
    }

    #[test]
    fn the_sweep_stops_at_the_first_live_session_or_its_limit() {
        let mut s = shard(8);
        let mut removed = Removed::new();
        // Least recently used first: 1 and 2 expired (deadline 10), 3 live, 4 expired.
        s.add(session(1, 1, 0), None, &mut removed);
        s.add(session(2, 2, 0), None, &mut removed);
        s.add(session(3, 3, 50), None, &mut removed);
        s.add(session(4, 4, 0), None, &mut removed);
        assert_eq!(s.expired_at_lru_end(20, 10, 100), 2);
        assert_eq!(s.expired_at_lru_end(20, 10, 1), 1);
        let mut out = Vec::with_capacity(1);
        s.sweep_lru_end(20, 10, &mut out);
        assert_eq!(out.len(), 1, "the room made is the limit");
        out.reserve_exact(99);
        s.sweep_lru_end(20, 10, &mut out);
        assert!(out.iter().all(|(_, cause)| *cause == RemovalCause::Expired));
        let ids: Vec<u8> = out.iter().map(|(s, _)| s.id()[0]).collect();
        assert_eq!(ids, [1, 2], "stops at 3, live; 4 waits");
        assert_eq!(lru_order(&s), [3, 4]);
        assert_eq!(s.bytes(), 2 * ONE);
    }
}
