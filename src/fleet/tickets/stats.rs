//! [`TicketStats`]: what the ticketer and its ring did.

use std::sync::atomic::AtomicU64;

use super::format::Refused;
use super::ring::Held;
use crate::stats::bump;

/// A snapshot of a [`FleetTicketer`](super::FleetTicketer)'s counters.
///
/// ```
/// # use rustls_session_cache::fleet::TicketStats;
/// fn decrypt_failures(s: &TicketStats) -> u64 {
///     s.decrypt_malformed + s.decrypt_unknown_key + s.decrypt_bad_tag
/// }
/// assert_eq!(decrypt_failures(&TicketStats::default()), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TicketStats {
    /// Epochs whose fleet key the ring holds now (usually three: the last one, which
    /// still decrypts, the current one, and the next, published ahead).
    pub epochs_held: u64,
    /// Local keys the ring holds now: made here while Redis could not be reached.
    pub local_keys_held: u64,
    /// Fleet keys this server created in Redis (the first to need them).
    pub keys_created: u64,
    /// Fleet keys read from Redis, created by another server (or by this one before a
    /// restart).
    pub keys_fetched: u64,
    /// Local keys made: at boot, or when the fleet's key for an epoch could not be had
    /// in time.
    pub local_keys_made: u64,
    /// Keys in Redis that no fleet key opens (another fleet key file, tampering).
    pub keys_unopened: u64,
    /// Tickets issued.
    pub encrypted: u64,
    /// Tickets not issued: no key could encrypt, or the session was too large.
    pub encrypt_failures: u64,
    /// Tickets that opened.
    pub decrypted: u64,
    /// Tickets refused for their length: shorter than the 44 bytes of overhead, or
    /// longer than 65,535.
    pub decrypt_malformed: u64,
    /// Tickets refused because no key in the ring has their id: unknown, already erased,
    /// or not yet in force.
    pub decrypt_unknown_key: u64,
    /// Tickets whose key is known and whose tag does not verify: tampered with, forged,
    /// or made for another resumption context.
    pub decrypt_bad_tag: u64,
    /// Times the ring could not be brought in step with Redis (errors, or no answer in
    /// time).
    pub sync_failures: u64,
}

impl TicketStats {
    /// Each counter with its name, in the order they are declared: for a stats line or
    /// an exporter.
    pub fn counters(&self) -> [(&'static str, u64); 13] {
        [
            ("ticket_epochs", self.epochs_held),
            ("ticket_local_keys", self.local_keys_held),
            ("ticket_keys_created", self.keys_created),
            ("ticket_keys_fetched", self.keys_fetched),
            ("ticket_local_keys_made", self.local_keys_made),
            ("ticket_keys_unopened", self.keys_unopened),
            ("tickets_encrypted", self.encrypted),
            ("ticket_encrypt_failures", self.encrypt_failures),
            ("tickets_decrypted", self.decrypted),
            ("ticket_decrypt_malformed", self.decrypt_malformed),
            ("ticket_decrypt_unknown_key", self.decrypt_unknown_key),
            ("ticket_decrypt_bad_tag", self.decrypt_bad_tag),
            ("ticket_sync_failures", self.sync_failures),
        ]
    }
}

/// The counters, shared by the ticketer and its rotation task.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) keys_created: AtomicU64,
    pub(crate) keys_fetched: AtomicU64,
    pub(crate) local_keys_made: AtomicU64,
    pub(crate) keys_unopened: AtomicU64,
    pub(crate) encrypted: AtomicU64,
    pub(crate) encrypt_failures: AtomicU64,
    pub(crate) decrypted: AtomicU64,
    pub(crate) decrypt_malformed: AtomicU64,
    pub(crate) decrypt_unknown_key: AtomicU64,
    pub(crate) decrypt_bad_tag: AtomicU64,
    pub(crate) sync_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn refused(&self, why: Refused) {
        bump(match why {
            Refused::Malformed => &self.decrypt_malformed,
            Refused::UnknownKey => &self.decrypt_unknown_key,
            Refused::BadTag => &self.decrypt_bad_tag,
        });
    }

    pub(crate) fn snapshot(&self, held: Held) -> TicketStats {
        let read = |counter: &AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
        TicketStats {
            epochs_held: held.fleet,
            local_keys_held: held.local,
            keys_created: read(&self.keys_created),
            keys_fetched: read(&self.keys_fetched),
            local_keys_made: read(&self.local_keys_made),
            keys_unopened: read(&self.keys_unopened),
            encrypted: read(&self.encrypted),
            encrypt_failures: read(&self.encrypt_failures),
            decrypted: read(&self.decrypted),
            decrypt_malformed: read(&self.decrypt_malformed),
            decrypt_unknown_key: read(&self.decrypt_unknown_key),
            decrypt_bad_tag: read(&self.decrypt_bad_tag),
            sync_failures: read(&self.sync_failures),
        }
    }
}
