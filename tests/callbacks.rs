//! Callbacks run outside the lock: they may call back into the cache, and a panicking
//! one neither poisons nor wedges it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use common::*;
use rustls::server::StoresServerSessions;
use rustls_session_cache::{RemovalCause, Session, SessionCache};

/// A slot a callback can reach the cache through once it is built.
fn slot() -> Arc<OnceLock<Weak<SessionCache>>> {
    Arc::new(OnceLock::new())
}

fn reach(slot: &OnceLock<Weak<SessionCache>>) -> Arc<SessionCache> {
    slot.get().and_then(Weak::upgrade).expect("cache is alive")
}

#[test]
fn on_remove_may_add_sessions_back() {
    let handle = slot();
    let inner = handle.clone();
    let cache = SessionCache::builder()
        .capacity(2)
        .on_remove(move |session, cause| {
            // Give an evicted session a second life under a new id, once.
            if cause == RemovalCause::Evicted && session.id()[0] != 0xee {
                let mut id = session.id().to_vec();
                id[0] = 0xee;
                assert!(reach(&inner).add_session(Session::new(id, session.value())));
            }
        })
        .build()
        .unwrap();
    handle.set(Arc::downgrade(&cache)).unwrap();
    cache.put(id(1), value(1));
    cache.put(id(2), value(2));
    cache.put(id(3), value(3));
    // 1 was evicted and re-added as ee..; that evicted 2, re-added as ee.. too, which
    // replaced the first (same id, other value); nothing further re-adds.
    let mut reborn = id(2);
    reborn[0] = 0xee;
    assert_eq!(cache.get(&reborn), Some(value(2)));
    assert_eq!(cache.len(), 2);
}

#[test]
fn lookup_may_use_the_cache_it_serves() {
    let handle = slot();
    let inner = handle.clone();
    let cache = SessionCache::builder()
        .lookup(move |id| {
            let cache = reach(&inner);
            cache.remove_session(b"other");
            let _ = cache.stats();
            Some(Session::new(id, value(4)))
        })
        .build()
        .unwrap();
    handle.set(Arc::downgrade(&cache)).unwrap();
    cache.add_session(Session::new(b"other".to_vec(), value(1)));
    assert_eq!(cache.get(&id(4)), Some(value(4)));
    assert!(!cache.contains(b"other"));
    assert!(cache.contains(&id(4)));
}

#[test]
fn on_new_session_may_remove_the_session_it_is_told_about() {
    let handle = slot();
    let inner = handle.clone();
    let cache = SessionCache::builder()
        .on_new_session(move |s| {
            // Called before the session enters the cache: nothing to remove yet.
            assert!(!reach(&inner).remove_session(s.id()));
        })
        .build()
        .unwrap();
    handle.set(Arc::downgrade(&cache)).unwrap();
    assert!(cache.put(id(1), value(1)));
    assert!(cache.contains(&id(1)));
}

#[test]
fn panicking_callbacks_are_contained_and_counted() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (on_remove_calls, lookup_calls) = (calls.clone(), calls.clone());
    let cache = SessionCache::builder()
        .capacity(1)
        .on_remove(move |_, _| {
            on_remove_calls.fetch_add(1, Ordering::Relaxed);
            panic!("on_remove bug")
        })
        .lookup(move |_| {
            lookup_calls.fetch_add(1, Ordering::Relaxed);
            panic!("lookup bug")
        })
        .build()
        .unwrap();
    for round in 0..3u8 {
        assert!(cache.put(id(round), value(round)));
        assert_eq!(cache.get(&id(round)), Some(value(round)));
        assert_eq!(
            cache.get(&[0xff; 32]),
            None,
            "a panicking lookup finds nothing"
        );
    }
    assert_eq!(cache.take(&id(2)), Some(value(2)));
    assert_eq!(cache.len(), 0);
    // Evictions of rounds 0 and 1, the take, and three lookups.
    assert_eq!(calls.load(Ordering::Relaxed), 6);
    let stats = cache.stats();
    assert_eq!(stats.callback_panics, 6);
    assert_eq!((stats.hits, stats.misses, stats.cache_full), (4, 3, 2));
}
