//! The key ring: the ticket keys a server holds, in memory, and which one encrypts now.
//! `encrypt` and `decrypt` read it under a shared lock and never wait for anything
//! else; only the rotation task writes to it.
//!
//! Which key encrypts at `now`: of the keys whose epoch has started and that may still
//! encrypt (their epoch, or its stretch: see [`Schedule`]), a fleet key before a local
//! one, and the newest of those. So a fleet key stretched past its epoch is used before
//! a local key for the new epoch, and a local key only when no fleet key can be.

use parking_lot::RwLock;

use super::format::{Origin, Parts, Refused, TicketKey, same_id};
use super::schedule::Schedule;

/// The keys a server holds. Never empty once built: a server that cannot reach Redis
/// at boot starts with a local key.
pub(crate) struct Ring {
    keys: RwLock<Vec<TicketKey>>,
    pub(crate) schedule: Schedule,
}

/// A ticket sealed by [`Ring::seal`], with its lifetime.
pub(crate) struct Sealed {
    pub(crate) ticket: Vec<u8>,
    pub(crate) lifetime: u32,
}

/// What a ring holds, for the stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Held {
    /// Fleet keys.
    pub(crate) fleet: u64,
    /// Local keys.
    pub(crate) local: u64,
}

impl Ring {
    pub(crate) fn new(schedule: Schedule) -> Self {
        Self {
            keys: RwLock::new(Vec::new()),
            schedule,
        }
    }

    /// `plain` sealed under the key that encrypts at `now`, and the lifetime to tell the
    /// client; `None` if no key may encrypt, or `plain` is too long for a ticket.
    pub(crate) fn seal(&self, plain: &[u8], context: &[u8], now: u64) -> Option<Sealed> {
        let keys = self.keys.read();
        let key = self.encrypting(&keys, now)?;
        Some(Sealed {
            ticket: key.seal(plain, context)?,
            lifetime: self.schedule.lifetime_secs(key.epoch, now),
        })
    }

    /// The lifetime of a ticket that would be sealed at `now`; 0 if none would.
    pub(crate) fn lifetime(&self, now: u64) -> u32 {
        let keys = self.keys.read();
        self.encrypting(&keys, now)
            .map_or(0, |key| self.schedule.lifetime_secs(key.epoch, now))
    }

    /// The session in `ticket`, if a key that decrypts at `now` has its id and
    /// authenticates it.
    pub(crate) fn open(
        &self,
        ticket: Parts<'_>,
        context: &[u8],
        now: u64,
    ) -> Result<Vec<u8>, Refused> {
        let keys = self.keys.read();
        keys.iter()
            .find(|key| same_id(&key.id, ticket.key_id) && self.schedule.decrypts(key.epoch, now))
            .ok_or(Refused::UnknownKey)?
            .open(ticket, context)
    }

    /// Adds `key`, unless the ring holds one with its id, or a fleet key for its epoch
    /// already; whether it was added.
    pub(crate) fn insert(&self, key: TicketKey) -> bool {
        let mut keys = self.keys.write();
        let clash = keys.iter().any(|held| {
            held.id == key.id
                || (held.origin == Origin::Fleet
                    && key.origin == Origin::Fleet
                    && held.epoch == key.epoch)
        });
        if !clash {
            keys.push(key);
        }
        !clash
    }

    /// Whether the ring holds a key for `epoch` from `origin`.
    pub(crate) fn holds(&self, epoch: u64, origin: Origin) -> bool {
        let keys = self.keys.read();
        keys.iter()
            .any(|key| key.epoch == epoch && key.origin == origin)
    }

    /// Whether a fleet key encrypts at `now`.
    pub(crate) fn fleet_encrypts(&self, now: u64) -> bool {
        let keys = self.keys.read();
        self.encrypting(&keys, now)
            .is_some_and(|key| key.origin == Origin::Fleet)
    }

    /// Erases (and so wipes) every key past its decrypt window at `now`.
    pub(crate) fn erase_expired(&self, now: u64) {
        self.keys
            .write()
            .retain(|key| now < self.schedule.erased_at(key.epoch));
    }

    /// When the ring next changes by itself: the first erasure, or the end of the
    /// stretch of the key encrypting now; `None` when empty.
    pub(crate) fn next_change(&self, now: u64) -> Option<u64> {
        let keys = self.keys.read();
        let erasure = keys
            .iter()
            .map(|key| self.schedule.erased_at(key.epoch))
            .min();
        let stretch_end = self
            .encrypting(&keys, now)
            .map(|key| self.schedule.end(key.epoch) + self.schedule.stretch());
        erasure.into_iter().chain(stretch_end).min()
    }

    pub(crate) fn held(&self) -> Held {
        let keys = self.keys.read();
        let fleet = keys.iter().filter(|k| k.origin == Origin::Fleet).count() as u64;
        Held {
            fleet,
            local: keys.len() as u64 - fleet,
        }
    }

    /// Runs `f` on each key, for tests that look for key bytes.
    #[cfg(test)]
    pub(crate) fn each(&self, mut f: impl FnMut(&TicketKey)) {
        self.keys.read().iter().for_each(&mut f);
    }

    fn encrypting<'k>(&self, keys: &'k [TicketKey], now: u64) -> Option<&'k TicketKey> {
        keys.iter()
            .filter(|key| self.schedule.may_encrypt(key.epoch, now))
            .max_by_key(|key| (key.origin == Origin::Fleet, key.epoch))
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::split;
    use super::*;

    /// P = 10 s, W = 8 s (stretch 4 s), S = 1 s.
    fn ring() -> Ring {
        Ring::new(Schedule {
            period: 10_000,
            window: 8_000,
            skew: 1_000,
        })
    }

    fn key_id_of(ticket: &[u8]) -> [u8; 16] {
        ticket[..16].try_into().unwrap()
    }

    #[test]
    fn the_current_fleet_key_encrypts_and_the_next_only_decrypts() {
        let ring = ring();
        let (e5, e6) = (
            TicketKey::generate(5, Origin::Fleet),
            TicketKey::generate(6, Origin::Fleet),
        );
        let (id5, id6) = (e5.id, e6.id);
        assert!(ring.insert(e5) && ring.insert(e6));
        let sealed = ring.seal(b"s", b"", 55_000).unwrap();
        assert_eq!(key_id_of(&sealed.ticket), id5);
        assert_eq!(sealed.lifetime, 12, "60 + 8 - 1 - 55 s");
        // A server 1 s ahead already seals with epoch 6's key; it opens here.
        let ahead = ring.seal(b"s", b"", 60_000).unwrap();
        assert_eq!(key_id_of(&ahead.ticket), id6);
        assert_eq!(
            ring.open(split(&ahead.ticket).unwrap(), b"", 59_000)
                .unwrap(),
            b"s"
        );
        assert_eq!(
            ring.open(split(&ahead.ticket).unwrap(), b"", 58_999),
            Err(Refused::UnknownKey),
            "more than the skew early"
        );
        // Epoch 5's ticket opens until 68 s, then its key is gone.
        let old = split(&sealed.ticket).unwrap();
        assert_eq!(ring.open(old, b"", 67_999).unwrap(), b"s");
        assert_eq!(ring.open(old, b"", 68_000), Err(Refused::UnknownKey));
        ring.erase_expired(68_000);
        assert_eq!(ring.held(), Held { fleet: 1, local: 0 });
    }

    #[test]
    fn without_a_newer_key_the_fleet_key_stretches_then_a_local_one_takes_over() {
        let ring = ring();
        let e5 = TicketKey::generate(5, Origin::Fleet);
        let id5 = e5.id;
        ring.insert(e5);
        let local6 = TicketKey::generate(6, Origin::Local);
        let id6 = local6.id;
        ring.insert(local6);
        // In epoch 6, with no fleet key for it: epoch 5's goes on for W/2 = 4 s.
        let stretched = ring.seal(b"s", b"", 63_999).unwrap();
        assert_eq!(key_id_of(&stretched.ticket), id5);
        assert_eq!(stretched.lifetime, 3, "68 - 1 - 63.999 s");
        assert!(ring.fleet_encrypts(63_999));
        assert_eq!(ring.next_change(61_000), Some(64_000), "the stretch's end");
        let local = ring.seal(b"s", b"", 64_000).unwrap();
        assert_eq!(key_id_of(&local.ticket), id6);
        assert!(!ring.fleet_encrypts(64_000));
        // The fleet's key for epoch 6 arrives: it takes over from the local one, which
        // still opens its tickets.
        let fleet6 = TicketKey::generate(6, Origin::Fleet);
        let fleet_id = fleet6.id;
        assert!(ring.insert(fleet6));
        assert_eq!(
            key_id_of(&ring.seal(b"s", b"", 64_001).unwrap().ticket),
            fleet_id
        );
        assert_eq!(
            ring.open(split(&local.ticket).unwrap(), b"", 64_001)
                .unwrap(),
            b"s"
        );
        assert_eq!(ring.held(), Held { fleet: 2, local: 1 });
    }

    #[test]
    fn an_empty_or_expired_ring_seals_nothing_and_a_second_fleet_key_is_refused() {
        let ring = ring();
        assert!(ring.seal(b"s", b"", 1).is_none());
        assert_eq!(ring.lifetime(1), 0);
        assert_eq!(ring.next_change(1), None);
        ring.insert(TicketKey::generate(0, Origin::Fleet));
        assert!(!ring.insert(TicketKey::generate(0, Origin::Fleet)));
        assert!(ring.holds(0, Origin::Fleet) && !ring.holds(0, Origin::Local));
        assert_eq!(ring.lifetime(0), 17);
        assert!(ring.seal(b"s", b"", 14_000).is_none(), "past its stretch");
    }
}
