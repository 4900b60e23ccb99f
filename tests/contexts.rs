//! Resumption contexts: one cache behind two `ServerConfig`s with the same certificate
//! and name, one of which requires client certificates. Real rustls handshakes, pumped in
//! memory, over TLS 1.2 and TLS 1.3.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use rustls::HandshakeKind::{Full, Resumed};
use rustls::server::StoresServerSessions;
use rustls_session_cache::{
    CacheMode, ConfigError, MAX_CONTEXTS, RemovalCause, Session, SessionCache,
};

/// The hole contexts close, shown: with one store shared by both configs, a session
/// made where no client certificate was asked for resumes under the config that
/// requires one, and that connection counts as authenticated-by-resumption with no
/// certificate at all. rustls does not re-run the client-auth policy on resumption.
#[test]
fn without_contexts_a_session_crosses_into_the_config_that_requires_client_certs() {
    for version in VERSIONS {
        let cache = SessionCache::new(64);
        let open = server_config_with_store(version, cache.clone());
        let mtls = mtls_server_config(version, cache.clone());
        let client = client_config_with_cert(version);
        let first = handshake(&open, &client);
        first.assert_kind(Full);
        assert!(
            !first.client_certified,
            "the open config asks for no certificate"
        );
        let crossed = handshake(&mtls, &client);
        crossed.assert_kind(Resumed);
        assert!(
            !crossed.client_certified,
            "{version:?}: resumed with no client cert"
        );
    }
}

/// With a context each, the session offered to the mTLS config gives a full handshake,
/// in which the client is asked for its certificate and presents it; each config still
/// resumes its own sessions. Both directions, every mode that stores and looks up.
#[test]
fn with_a_context_each_no_session_crosses_in_either_direction() {
    let server = CacheMode::SERVER;
    for mode in [
        server,
        server | CacheMode::NO_AUTO_CLEAR,
        server | CacheMode::UPDATE_TIME,
    ] {
        for version in VERSIONS {
            let cache = SessionCache::builder()
                .capacity(64)
                .mode(mode)
                .build()
                .unwrap();
            let (public, admin) = (
                cache.context("public").unwrap(),
                cache.context("admin").unwrap(),
            );
            let open = server_config_with_store(version, public);
            let mtls = mtls_server_config(version, admin);
            for (from, to, to_is_mtls) in [(&open, &mtls, true), (&mtls, &open, false)] {
                // A session from one config, offered to the other: a full handshake, in
                // which the mTLS config asks for the certificate and checks it.
                let client = client_config_with_cert(version);
                handshake(from, &client).assert_kind(Full);
                let crossed = handshake(to, &client);
                crossed.assert_kind(Full);
                assert_eq!(crossed.client_certified, to_is_mtls, "{mode} {version:?}");
                // The session that handshake made resumes where it was made.
                let again = handshake(to, &client);
                again.assert_kind(Resumed);
                assert_eq!(again.client_certified, to_is_mtls, "{mode} {version:?}");
            }
        }
    }
}

/// Under modes that never resume from the internal store, contexts change nothing: both
/// configs give full handshakes.
#[test]
fn modes_that_do_not_resume_internally_stay_so_in_every_context() {
    let server = CacheMode::SERVER;
    for mode in [
        CacheMode::OFF,
        server | CacheMode::NO_INTERNAL_LOOKUP,
        server | CacheMode::NO_INTERNAL_STORE,
    ] {
        for version in VERSIONS {
            let cache = SessionCache::builder().mode(mode).build().unwrap();
            let open = server_config_with_store(version, cache.context("public").unwrap());
            let mtls = mtls_server_config(version, cache.context("admin").unwrap());
            let client = client_config_with_cert(version);
            for config in [&open, &open, &mtls, &mtls] {
                handshake(config, &client).assert_kind(Full);
            }
            // Stored (and never looked up) only under NO_INTERNAL_LOOKUP.
            let per_handshake = if version == TLS13 { 2 } else { 1 };
            let stored = if mode.looks_up_internally() {
                0
            } else {
                4 * per_handshake
            };
            assert_eq!(cache.len(), stored, "{mode} {version:?}");
        }
    }
}

/// Views share the one cache: its capacity, eviction order and statistics, exactly.
#[test]
fn capacity_eviction_and_statistics_are_shared() {
    let cache = SessionCache::new(3);
    let (a, b) = (cache.context("a").unwrap(), cache.context("b").unwrap());
    assert!(a.put(id(1), value(1)));
    assert!(b.put(id(2), value(2)));
    assert!(cache.put(id(3), value(3)));
    assert_eq!(cache.len(), 3);
    assert!(
        b.put(id(4), value(4)),
        "full: the least recently used goes, whatever view"
    );
    assert!(!a.contains(&id(1)));
    assert_eq!(a.get(&id(1)), None);
    assert_eq!(b.get(&id(2)), Some(value(2)));
    assert_eq!(b.get(&id(3)), None, "the default context's");
    assert_eq!(cache.take(&id(3)), Some(value(3)));
    let stats = cache.stats();
    assert_eq!(
        (
            stats.entries,
            stats.hits,
            stats.misses,
            stats.cache_full,
            stats.new_sessions
        ),
        (2, 2, 2, 1, 4)
    );
    assert_eq!(stats.bytes, 2 * (32 + 83 + 112));
}

/// The same id in two contexts is two sessions; names that are prefixes of each other
/// are separate contexts; the default context is one too.
#[test]
fn contexts_are_separate_namespaces() {
    let cache = SessionCache::new(16);
    let (a, ab) = (cache.context("a").unwrap(), cache.context("ab").unwrap());
    assert!(a.put(id(1), value(1)));
    assert!(ab.put(id(1), value(2)));
    assert!(cache.put(id(1), value(3)));
    assert_eq!(cache.len(), 3);
    assert_eq!(a.get(&id(1)), Some(value(1)));
    assert_eq!(ab.get(&id(1)), Some(value(2)));
    assert_eq!(cache.get(&id(1)), Some(value(3)));
    // A TLS 1.3 take in one context consumes only its own ticket.
    assert_eq!(ab.take(&id(1)), Some(value(2)));
    assert_eq!(ab.take(&id(1)), None);
    assert_eq!(a.get(&id(1)), Some(value(1)));
    // A crafted id that spells another context's key finds nothing.
    let mut spelled = vec![1u8]; // how "a" (the first named context) is numbered
    spelled.extend(id(1));
    assert_eq!(cache.get(&spelled), None);
    assert_eq!(ab.get(&spelled), None);
    // Per-context add, remove, contains.
    assert!(ab.add_session(Session::new(id(9), value(9))));
    assert!(ab.contains(&id(9)) && !a.contains(&id(9)) && !cache.contains(&id(9)));
    assert!(!a.remove_session(&id(9)));
    assert!(ab.remove_session(&id(9)));
    // Views of one name share.
    assert_eq!(cache.context("a").unwrap().get(&id(1)), Some(value(1)));
}

#[test]
fn names_are_bounded_and_so_is_their_number() {
    let cache = SessionCache::new(16);
    assert_eq!(
        cache.context("").unwrap_err(),
        ConfigError::ContextName { len: 0 }
    );
    assert_eq!(
        cache.context(&"x".repeat(65)).unwrap_err(),
        ConfigError::ContextName { len: 65 }
    );
    assert!(cache.context(&"x".repeat(64)).is_ok());
    for n in 1..MAX_CONTEXTS {
        cache.context(&n.to_string()).unwrap();
    }
    let err = cache.context("one too many").unwrap_err();
    assert_eq!(err, ConfigError::TooManyContexts { max: 255 });
    assert!(cache.context("7").is_ok(), "a known name is no new context");
}

/// Callbacks see each session's context; a session re-added with the cache's
/// `add_session` goes back into the context it names; a lookup callback's session is
/// used only in the context it names.
#[test]
fn callbacks_see_the_context_and_sessions_go_back_where_they_came_from() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (new, removed) = (seen.clone(), seen.clone());
    let parked: Arc<Mutex<Vec<Session>>> = Arc::default();
    let park = parked.clone();
    let cache = SessionCache::builder()
        .capacity(16)
        .on_new_session(move |s| {
            new.lock()
                .unwrap()
                .push(("new", s.context().map(str::to_owned)));
            park.lock().unwrap().push(s.clone());
        })
        .on_remove(move |s, cause| {
            let context = s.context().map(str::to_owned);
            removed.lock().unwrap().push((cause_name(cause), context));
        })
        .lookup(|id| {
            (id == [7; 32]).then(|| Session::new(id.to_vec(), value(7)).with_context(Some("admin")))
        })
        .build()
        .unwrap();
    let admin = cache.context("admin").unwrap();
    assert!(admin.put(id(1), value(1)));
    assert!(cache.put(id(2), value(2)));
    assert_eq!(admin.take(&id(1)), Some(value(1)));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("new", Some("admin".to_owned())),
            ("new", None),
            ("taken", Some("admin".to_owned())),
        ]
    );
    // The parked admin session, re-added through the cache, is an admin session again.
    let session = parked.lock().unwrap()[0].clone();
    assert_eq!(session.context(), Some("admin"));
    assert!(cache.add_session(session));
    assert!(admin.contains(&id(1)) && !cache.contains(&id(1)));
    // The lookup callback's admin session resumes in admin only.
    assert_eq!(cache.get(&[7; 32]), None, "not in the default context");
    assert_eq!(admin.get(&[7; 32]), Some(value(7)));
    assert_eq!(cache.stats().cb_hits, 1);
}

fn cause_name(cause: RemovalCause) -> &'static str {
    match cause {
        RemovalCause::Taken => "taken",
        RemovalCause::Removed => "removed",
        RemovalCause::Evicted => "evicted",
        RemovalCause::Expired => "expired",
        _ => "other",
    }
}

/// A lookup callback naming contexts the cache has never seen (from a shared external
/// store, say) is ignored for them, and takes up none of the cache's 255 slots.
#[test]
fn lookup_callback_sessions_of_unknown_contexts_register_nothing() {
    let cache = SessionCache::builder()
        .capacity(16)
        .lookup(|id| {
            let name = format!("x{}", u16::from_be_bytes([id[0], id[1]]));
            Some(Session::new(id.to_vec(), value(1)).with_context(Some(&name)))
        })
        .build()
        .unwrap();
    for n in 0..300u16 {
        let mut key = n.to_be_bytes().to_vec();
        key.resize(32, 0);
        assert_eq!(cache.get(&key), None, "context x{n} was never registered");
    }
    assert_eq!(cache.stats().cb_hits, 0);
    assert!(cache.context("admin").is_ok(), "no slot was used up");
}
