//! The ClientHello parser of the fleet tier: exact on well-formed input, and never a
//! panic on anything else.
#![cfg(feature = "redis")]

mod common;

use common::hello::{MAX_RECORD, SUITES, client_hello, client_hello_with_ticket};
use proptest::prelude::*;
use rustls_session_cache::fleet::client_hello::{MAX_CLIENT_HELLO, Parsed, parse};

#[test]
fn reads_the_session_id_and_identities() {
    let ids = vec![vec![1; 32], vec![2; 40]];
    let hello = client_hello(&[9; 32], &ids, true, MAX_RECORD);
    let Parsed::Complete(offer) = parse(&hello) else {
        panic!("{:?}", parse(&hello));
    };
    assert_eq!(offer.session_id, Some(vec![9; 32]));
    assert_eq!(offer.identities, ids);
    assert!(offer.offers_tls13);
}

#[test]
fn tells_a_tls12_ticket_from_a_request_for_one() {
    let offer = |ticket: Option<&[u8]>| match parse(&client_hello_with_ticket(
        &[9; 32],
        &[],
        false,
        MAX_RECORD,
        0,
        ticket,
    )) {
        Parsed::Complete(offer) => offer,
        other => panic!("{other:?}"),
    };
    assert!(offer(Some(&[7; 150])).offers_ticket);
    assert!(
        !offer(Some(&[])).offers_ticket,
        "an empty extension asks for one"
    );
    assert!(!offer(None).offers_ticket);
    assert_eq!(offer(Some(&[7; 150])).session_id, Some(vec![9; 32]));
}

#[test]
fn reads_three_hundred_identities_and_refuses_more_than_fit() {
    // With their 33-byte binders, 300 8-byte identities fit in 16 KiB; 1000 do not.
    let ids: Vec<Vec<u8>> = (0..300u16).map(|n| n.to_be_bytes().repeat(4)).collect();
    let hello = client_hello(&[], &ids, true, MAX_RECORD);
    assert!(
        hello.len() < MAX_CLIENT_HELLO,
        "fits the limit: {}",
        hello.len()
    );
    let Parsed::Complete(offer) = parse(&hello) else {
        panic!()
    };
    assert_eq!(offer.identities, ids);
    assert_eq!(offer.session_id, None);
    let too_many: Vec<Vec<u8>> = (0..1000u16).map(|n| n.to_be_bytes().repeat(4)).collect();
    let huge = client_hello(&[], &too_many, true, MAX_RECORD);
    assert_eq!(parse(&huge), Parsed::Invalid("ClientHello too large"));
}

#[test]
fn joins_a_hello_split_across_records() {
    let hello = client_hello(&[3; 32], &[vec![4; 32]], false, 100);
    let Parsed::Complete(offer) = parse(&hello) else {
        panic!()
    };
    assert_eq!(offer.session_id, Some(vec![3; 32]));
    assert!(!offer.offers_tls13);
}

/// rustls's record layer takes any `0x03XX` version and the few others it names; so
/// does the parser, and nothing else.
#[test]
fn reads_records_in_every_version_rustls_takes() {
    let hello = client_hello(&[3; 32], &[vec![4; 32]], true, MAX_RECORD);
    for version in [
        0x0300u16, 0x0301, 0x0303, 0x03ff, 0x0002, 0xfeff, 0xfefd, 0xfefc,
    ] {
        let mut framed = hello.clone();
        framed[1..3].copy_from_slice(&version.to_be_bytes());
        assert!(
            matches!(parse(&framed), Parsed::Complete(_)),
            "{version:#06x}"
        );
    }
    for version in [0x0200u16, 0x0400, 0x0000, 0xfefe] {
        let mut framed = hello.clone();
        framed[1..3].copy_from_slice(&version.to_be_bytes());
        assert_eq!(
            parse(&framed),
            Parsed::Invalid("not a TLS record"),
            "{version:#06x}"
        );
    }
}

#[test]
fn reads_records_up_to_the_longest_rustls_takes() {
    // A record of 16 KiB + 2 KiB - 1 bytes: a ClientHello, then more handshake bytes.
    // rustls reads such a record (its limit is exclusive); one byte more, it does not.
    let hello = client_hello(&[3; 32], &[], true, MAX_RECORD);
    let longest = 16 * 1024 + 2048 - 1;
    for (len, whole) in [(longest, true), (longest + 1, false)] {
        let mut record = vec![22, 3, 1];
        record.extend_from_slice(&(len as u16).to_be_bytes());
        record.extend_from_slice(&hello[5..]);
        record.resize(5 + len, 0);
        match parse(&record) {
            Parsed::Complete(_) => assert!(whole, "{len}"),
            other => assert_eq!(
                (other, whole),
                (Parsed::Invalid("bad record length"), false)
            ),
        }
    }
}

#[test]
fn refuses_what_is_not_a_client_hello() {
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\n"),
        Parsed::Invalid("not a handshake record")
    );
    assert_eq!(
        parse(&[22, 3, 1, 0, 0]),
        Parsed::Invalid("bad record length")
    );
    assert_eq!(
        parse(&[22, 3, 1, 0, 4, 2, 0, 0, 0]),
        Parsed::Invalid("not a ClientHello")
    );
    assert_eq!(
        parse(&[22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff]),
        Parsed::Invalid("ClientHello too large")
    );
    assert_eq!(
        parse(&[22, 3, 1, 0, 5, 1, 0, 0, 1, 0]),
        Parsed::Invalid("malformed ClientHello")
    );
}

proptest! {
    #[test]
    fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn never_panics_on_a_corrupted_hello(
        seed_ids in 0usize..6,
        record in 16usize..2000,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let ids: Vec<Vec<u8>> = (0..seed_ids).map(|n| vec![n as u8 + 1; 32]).collect();
        let mut hello = client_hello(&[1; 32], &ids, true, record);
        for (at, byte) in flips {
            let i = at.index(hello.len());
            hello[i] = byte;
        }
        let _ = parse(&hello);
    }

    #[test]
    fn every_prefix_is_incomplete_and_the_whole_is_exact(
        session_id in proptest::collection::vec(any::<u8>(), 0..=32),
        ids in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 0..6),
        record in 1usize..3000,
        tls13: bool,
    ) {
        let hello = client_hello(&session_id, &ids, tls13, record);
        for cut in [0, 1, 4, 5, hello.len() / 2, hello.len() - 1] {
            prop_assert_eq!(parse(&hello[..cut]), Parsed::Incomplete);
        }
        let Parsed::Complete(offer) = parse(&hello) else {
            return Err(TestCaseError::fail(format!("{:?}", parse(&hello))));
        };
        prop_assert_eq!(&offer.session_id, &(!session_id.is_empty()).then(|| session_id.clone()));
        prop_assert_eq!(&offer.identities, &ids);
        prop_assert_eq!(offer.offers_tls13, tls13);
        prop_assert_eq!(&offer.cipher_suites[..], &SUITES[..]);
        // Bytes after the ClientHello (the client's next flight) change nothing.
        let mut more = hello.clone();
        more.extend_from_slice(&[23, 3, 3, 0, 1, 0]);
        prop_assert_eq!(parse(&more), Parsed::Complete(offer));
    }
}

/// ClientHellos captured from `openssl s_client` (OpenSSL 3.0) on its way to the echo
/// server: they also seed the fuzzer (`fuzz/seeds/client_hello`).
fn captured(name: &str) -> Vec<u8> {
    std::fs::read(common::process::repo("fuzz/seeds/client_hello").join(name)).unwrap()
}

#[test]
fn reads_what_real_clients_send() {
    let Parsed::Complete(fresh) = parse(&captured("tls13-fresh")) else {
        panic!("a fresh TLS 1.3 ClientHello")
    };
    assert!(fresh.offers_tls13);
    assert!(fresh.identities.is_empty());
    assert_eq!(
        fresh.session_id.map(|id| id.len()),
        Some(32),
        "the compatibility id"
    );

    let Parsed::Complete(psk) = parse(&captured("tls13-psk")) else {
        panic!("a TLS 1.3 resumption")
    };
    assert!(psk.offers_tls13);
    assert_eq!(psk.identities.len(), 1);
    assert_eq!(
        psk.identities[0].len(),
        32,
        "one of rustls's 32-byte tickets"
    );

    let Parsed::Complete(tls12) = parse(&captured("tls12-session-id")) else {
        panic!("a TLS 1.2 resumption")
    };
    assert!(!tls12.offers_tls13);
    assert_eq!(
        tls12.session_id.map(|id| id.len()),
        Some(32),
        "the id rustls issued"
    );
    assert!(tls12.identities.is_empty());

    // Every prefix of a real one is incomplete, never an error.
    let hello = captured("tls13-psk");
    for cut in 0..hello.len() {
        assert_eq!(parse(&hello[..cut]), Parsed::Incomplete, "cut at {cut}");
    }
}
