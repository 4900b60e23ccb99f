//! Real rustls handshakes, pumped in memory, over TLS 1.2 and TLS 1.3, for every mode.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::*;
use rustls::HandshakeKind::{Full, Resumed};
use rustls::{ProtocolVersion, SupportedProtocolVersion};
use rustls_session_cache::{CacheMode, RemovalCause, Session, SessionCache};

/// Sessions rustls stores per full handshake: one TLS 1.2 session, two TLS 1.3 tickets.
fn puts_per_handshake(version: &SupportedProtocolVersion) -> u64 {
    if version.version == ProtocolVersion::TLSv1_3 {
        2
    } else {
        1
    }
}

#[test]
fn second_connection_resumes_and_counts_a_hit() {
    for version in VERSIONS {
        let cache = SessionCache::new(64);
        let (server, client) = (server_config(version, &cache), client_config(version));
        let first = handshake(&server, &client);
        first.assert_kind(Full);
        assert_eq!(first.version, version.version);
        let stats = cache.stats();
        assert_eq!(
            stats.new_sessions,
            puts_per_handshake(version),
            "{version:?}"
        );
        assert_eq!(
            stats.entries as u64,
            puts_per_handshake(version),
            "{version:?}"
        );
        assert_eq!((stats.hits, stats.misses), (0, 0), "{version:?}");

        handshake(&server, &client).assert_kind(Resumed);
        let stats = cache.stats();
        assert_eq!(
            (stats.hits, stats.misses, stats.timeouts),
            (1, 0, 0),
            "{version:?}"
        );
        if version == TLS13 {
            // One ticket taken; the resumed handshake issued two more.
            assert_eq!(stats.entries, 3);
            assert_eq!(stats.new_sessions, 4);
        } else {
            // The TLS 1.2 session stays and is not stored again.
            assert_eq!(stats.entries, 1);
            assert_eq!(stats.new_sessions, 1);
        }
    }
}

#[test]
fn tls13_ticket_is_single_use() {
    let (builder, recorder) = recording_builder();
    let cache = builder.build().unwrap();
    let (server, client) = (server_config(TLS13, &cache), client_config(TLS13));
    handshake(&server, &client).assert_kind(Full);
    let tickets = recorder.new_ids();
    assert_eq!(tickets.len(), 2);
    handshake(&server, &client).assert_kind(Resumed);
    // The client offered one of its two tickets, and that one is gone now.
    let removed = recorder.removed();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].1, RemovalCause::Taken);
    assert!(tickets.contains(&removed[0].0));
    assert!(!cache.contains(&removed[0].0));
    // Replaying it is a miss, whoever tries.
    assert_eq!(
        rustls::server::StoresServerSessions::take(&*cache, &removed[0].0),
        None
    );
}

#[test]
fn every_mode_on_both_versions() {
    for (mode, tls12, tls13) in mode_matrix() {
        for (version, expected) in [(TLS12, tls12), (TLS13, tls13)] {
            let cache = SessionCache::builder().mode(mode).build().unwrap();
            let (server, client) = (server_config(version, &cache), client_config(version));
            handshake(&server, &client).assert_kind(Full);
            let second = handshake(&server, &client);
            assert_eq!(
                (second.server, second.client),
                (expected, expected),
                "mode {mode} on {version:?}"
            );
            let stats = cache.stats();
            let hits = u64::from(expected == Resumed);
            assert_eq!(stats.hits, hits, "mode {mode} on {version:?}");
            let stored = mode.caches_new_sessions() && mode.stores_internally();
            assert_eq!(
                stats.entries > 0,
                stored,
                "mode {mode} on {version:?}: {stats:?}"
            );
        }
    }
}

#[test]
fn off_mode_makes_tls12_send_no_session_id() {
    let cache = SessionCache::builder()
        .mode(CacheMode::OFF)
        .build()
        .unwrap();
    let (server, client) = (server_config(TLS12, &cache), client_config(TLS12));
    handshake(&server, &client).assert_kind(Full);
    handshake(&server, &client).assert_kind(Full);
    let stats = cache.stats();
    // `can_cache` was false, so rustls never called `put`, and the client, holding no
    // session id, never offered one: no lookup either.
    assert_eq!((stats.new_sessions, stats.entries), (0, 0));
    assert_eq!((stats.hits, stats.misses), (0, 0));
}

#[test]
fn no_internal_lookup_stores_but_never_resumes() {
    for version in VERSIONS {
        let mode = CacheMode::SERVER | CacheMode::NO_INTERNAL_LOOKUP;
        let cache = SessionCache::builder().mode(mode).build().unwrap();
        let (server, client) = (server_config(version, &cache), client_config(version));
        handshake(&server, &client).assert_kind(Full);
        let stored = cache.len();
        assert_eq!(stored as u64, puts_per_handshake(version));
        handshake(&server, &client).assert_kind(Full);
        let stats = cache.stats();
        assert_eq!(
            (stats.hits, stats.misses),
            (0, 0),
            "no lookup, so no miss either"
        );
        // The internal entries were not consulted, so not consumed either.
        assert_eq!(stats.entries, stored * 2, "{version:?}");
    }
}

/// The man page's flow: `SERVER | NO_INTERNAL_STORE`; the application stashes new
/// sessions, and only those it adds back resume.
#[test]
fn application_controlled_resumption() {
    for version in VERSIONS {
        let stash = Arc::new(Mutex::new(Vec::<Session>::new()));
        let keep = stash.clone();
        let cache = SessionCache::builder()
            .mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE)
            .on_new_session(move |s| keep.lock().unwrap().push(s.clone()))
            .build()
            .unwrap();
        let (server, client) = (server_config(version, &cache), client_config(version));

        handshake(&server, &client).assert_kind(Full);
        assert_eq!(cache.len(), 0, "nothing stored internally");
        let stashed = stash.lock().unwrap().len() as u64;
        assert_eq!(stashed, puts_per_handshake(version));

        // Not admitted yet: the client's session (or ticket) is unknown.
        handshake(&server, &client).assert_kind(Full);
        assert_eq!(cache.stats().hits, 0);

        // Admit everything stashed so far; the client's newest session resumes.
        for session in stash.lock().unwrap().drain(..) {
            assert!(cache.add_session(session));
        }
        handshake(&server, &client).assert_kind(Resumed);
        assert_eq!(cache.stats().hits, 1, "{version:?}");
    }
}

#[test]
fn removed_or_cleared_sessions_do_not_resume() {
    for version in VERSIONS {
        let (builder, recorder) = recording_builder();
        let cache = builder.build().unwrap();
        let (server, client) = (server_config(version, &cache), client_config(version));
        handshake(&server, &client).assert_kind(Full);
        for id in recorder.new_ids() {
            assert!(cache.remove_session(&id));
        }
        handshake(&server, &client).assert_kind(Full);
        assert_eq!(cache.stats().hits, 0);

        // The full handshake stored new sessions; clear them all.
        assert_eq!(cache.clear() as u64, puts_per_handshake(version));
        handshake(&server, &client).assert_kind(Full);
        handshake(&server, &client).assert_kind(Resumed);
    }
}

#[test]
fn expired_sessions_do_not_resume() {
    for version in VERSIONS {
        let (builder, recorder) = recording_builder();
        let cache = builder.build().unwrap();
        let (server, client) = (server_config(version, &cache), client_config(version));
        handshake(&server, &client).assert_kind(Full);
        // Back-date every session past the timeout.
        for session in recorder.new_sessions.lock().unwrap().drain(..) {
            assert!(cache.remove_session(session.id()));
            assert!(cache.add_session(session.with_created(long_ago())));
        }
        handshake(&server, &client).assert_kind(Full);
        let stats = cache.stats();
        assert_eq!(
            (stats.hits, stats.timeouts, stats.misses),
            (0, 1, 0),
            "{version:?}"
        );
        assert_eq!(recorder.causes().last(), Some(&RemovalCause::Expired));
    }
}

#[test]
fn flushed_sessions_do_not_resume() {
    for version in VERSIONS {
        let cache = SessionCache::new(64);
        let (server, client) = (server_config(version, &cache), client_config(version));
        handshake(&server, &client).assert_kind(Full);
        let later = SystemTime::now() + cache.timeout() + Duration::from_secs(1);
        assert_eq!(
            cache.flush_expired(later) as u64,
            puts_per_handshake(version)
        );
        handshake(&server, &client).assert_kind(Full);
        assert_eq!(cache.stats().misses, 1);
    }
}

#[test]
fn lookup_callback_resumes_sessions_the_cache_does_not_hold() {
    for version in VERSIONS {
        let external = Arc::new(Mutex::new(Vec::<Session>::new()));
        let (store, find) = (external.clone(), external.clone());
        let (builder, recorder) = recording_builder();
        let cache = builder
            .mode(CacheMode::SERVER | CacheMode::NO_INTERNAL)
            .on_new_session(move |s| store.lock().unwrap().push(s.clone()))
            .lookup(move |id| find.lock().unwrap().iter().find(|s| s.id() == id).cloned())
            .build()
            .unwrap();
        let (server, client) = (server_config(version, &cache), client_config(version));
        handshake(&server, &client).assert_kind(Full);
        handshake(&server, &client).assert_kind(Resumed);
        let stats = cache.stats();
        assert_eq!(
            (stats.cb_hits, stats.hits, stats.misses),
            (1, 0, 0),
            "{version:?}"
        );
        assert_eq!(
            stats.entries, 0,
            "NO_INTERNAL_STORE: the callback's session is not cached"
        );
        if version == TLS13 {
            assert_eq!(
                recorder.causes(),
                [RemovalCause::Taken],
                "told to delete the ticket"
            );
        } else {
            assert_eq!(recorder.causes(), []);
        }
    }
}
