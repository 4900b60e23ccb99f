//! The fleet ticketer's `decrypt` reads tickets straight off the network, before any
//! other check: whatever it is given, it must not panic, must open nothing it did not
//! seal, and must count each refusal under exactly one cause. Each input is tried as
//! it is, and behind the id of a key the ring holds, so that the nonce, ciphertext and
//! tag the AEAD checks are the fuzzer's too.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rustls::server::ProducesTickets;
use rustls_session_cache::fleet::{FleetTicketer, TicketStats};

static TICKETER: LazyLock<FleetTicketer> = LazyLock::new(FleetTicketer::local_only);

/// The id of the ring's key: the first 16 bytes of any ticket it makes.
static KEY_ID: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let ticket = TICKETER.encrypt(b"seed").expect("the ring holds a key");
    ticket[..16].to_vec()
});

fn refused(s: &TicketStats) -> u64 {
    s.decrypt_malformed + s.decrypt_unknown_key + s.decrypt_bad_tag
}

fuzz_target!(|data: &[u8]| {
    let behind_key_id = [&KEY_ID[..], data].concat();
    for ticket in [data, &behind_key_id[..]] {
        let before = TICKETER.stats();
        assert_eq!(TICKETER.decrypt(ticket), None, "a forged ticket opened");
        let after = TICKETER.stats();
        assert_eq!(refused(&after), refused(&before) + 1);
        assert_eq!(after.decrypted, before.decrypted);
    }
    // What it seals, it opens, whatever the session.
    if let Some(ticket) = TICKETER.encrypt(data) {
        assert_eq!(ticket.len(), data.len() + 44);
        assert_eq!(TICKETER.decrypt(&ticket).as_deref(), Some(data));
    }
});
