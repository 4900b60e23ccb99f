//! The fleet tier's ClientHello parser reads bytes straight off the network, before any
//! TLS validation: it must never panic, and must never report more than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustls_session_cache::fleet::client_hello::{Parsed, parse};

fuzz_target!(|data: &[u8]| {
    if let Parsed::Complete(offer) = parse(data) {
        let id_bytes: usize = offer.identities.iter().map(Vec::len).sum();
        assert!(id_bytes <= data.len());
        assert!(offer.session_id.as_ref().is_none_or(|id| id.len() <= 32));
        assert!(offer.identities.iter().all(|id| !id.is_empty()));
    }
});
