//! The store's contract, bullet by bullet, through the public API and the rustls trait.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use rustls::server::StoresServerSessions;
use rustls_session_cache::{
    CacheMode, CacheStats, ConfigError, DEFAULT_CAPACITY, DEFAULT_TIMEOUT, MAX_TIMEOUT,
    RemovalCause, Session, SessionCache,
};

use RemovalCause::{Evicted, Expired, Removed, Taken};

// ---- put ------------------------------------------------------------------------------

#[test]
fn put_without_server_bit_stores_nothing_and_calls_nothing() {
    for mode in [
        CacheMode::OFF,
        CacheMode::NO_INTERNAL_LOOKUP | CacheMode::UPDATE_TIME,
    ] {
        let (builder, recorder) = recording_builder();
        let cache = builder.mode(mode).build().unwrap();
        assert!(!cache.put(id(1), value(1)));
        assert!(!cache.can_cache());
        assert_eq!(cache.len(), 0);
        assert!(recorder.new_ids().is_empty());
        assert_eq!(cache.stats(), CacheStats::default());
    }
}

#[test]
fn put_calls_on_new_session_and_stores_as_most_recently_used() {
    let (builder, recorder) = recording_builder();
    let cache = builder.capacity(2).build().unwrap();
    assert!(cache.can_cache());
    assert!(cache.put(id(1), value(1)));
    assert!(cache.put(id(2), value(2)));
    assert_eq!(recorder.new_ids(), [id(1), id(2)]);
    assert_eq!(recorder.new_sessions.lock().unwrap()[0].value(), value(1));
    assert!(cache.put(id(3), value(3)));
    // 1 was least recently used.
    assert_eq!(recorder.removed(), [(id(1), Evicted)]);
    assert_eq!(cache.get(&id(2)), Some(value(2)));
    assert_eq!(cache.get(&id(3)), Some(value(3)));
    let stats = cache.stats();
    assert_eq!(
        (stats.entries, stats.new_sessions, stats.cache_full),
        (2, 3, 1)
    );
}

#[test]
fn put_returns_true_without_callbacks_when_stored() {
    let cache = SessionCache::new(4);
    assert!(cache.put(id(1), value(1)));
    assert_eq!(cache.len(), 1);
}

#[test]
fn put_of_an_id_already_stored_reports_it_stored() {
    let cache = SessionCache::new(4);
    assert!(cache.put(id(1), value(1)));
    assert!(
        cache.put(id(1), value(1)),
        "identical: still stored, so a ticket may go out"
    );
    assert!(
        cache.put(id(1), value(2)),
        "rustls's contract: put overwrites"
    );
    assert_eq!(cache.get(&id(1)), Some(value(2)));
    assert_eq!(cache.len(), 1);
}

#[test]
fn put_under_no_internal_store_goes_only_to_the_callback() {
    let (builder, recorder) = recording_builder();
    let cache = builder
        .mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE)
        .build()
        .unwrap();
    assert!(cache.put(id(1), value(1)), "the application holds it");
    assert!(cache.can_cache());
    assert_eq!(cache.len(), 0);
    assert_eq!(recorder.new_ids(), [id(1)]);
}

#[test]
fn put_under_no_internal_store_without_callback_returns_false() {
    let cache = SessionCache::builder()
        .mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE)
        .build()
        .unwrap();
    assert!(!cache.put(id(1), value(1)));
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().new_sessions, 1);
}

#[test]
fn put_with_a_panicking_new_session_callback_still_stores() {
    let cache = SessionCache::builder()
        .on_new_session(|_| panic!("application bug"))
        .build()
        .unwrap();
    assert!(cache.put(id(1), value(1)));
    assert_eq!(cache.get(&id(1)), Some(value(1)));
    assert_eq!(cache.stats().callback_panics, 1);

    let nowhere = SessionCache::builder()
        .mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE)
        .on_new_session(|_| panic!("application bug"))
        .build()
        .unwrap();
    assert!(!nowhere.put(id(1), value(1)), "the session went nowhere");
}

#[test]
fn every_256th_put_sweeps_expired_sessions() {
    let (builder, recorder) = recording_builder();
    let cache = builder.capacity(1000).build().unwrap();
    for n in 0..3 {
        assert!(cache.add_session(session(200 + n).with_created(long_ago())));
    }
    for n in 0..255u32 {
        assert!(cache.put(n.to_be_bytes().to_vec(), value(0)));
    }
    assert_eq!(cache.len(), 258, "255 puts: no sweep yet");
    assert!(cache.contains(&id(200)));
    assert!(cache.put(b"256th".to_vec(), value(0)));
    assert_eq!(
        cache.len(),
        256,
        "the 256th put swept the three expired sessions"
    );
    assert!(!cache.contains(&id(200)));
    assert_eq!(recorder.causes(), [Expired, Expired, Expired]);
    let stats = cache.stats();
    assert_eq!((stats.timeouts, stats.cache_full, stats.misses), (0, 0, 0));
}

#[test]
fn no_auto_clear_keeps_expired_sessions_until_flushed() {
    let cache = SessionCache::builder()
        .mode(CacheMode::SERVER | CacheMode::NO_AUTO_CLEAR)
        .capacity(1000)
        .build()
        .unwrap();
    assert!(cache.add_session(session(200).with_created(long_ago())));
    for n in 0..512u32 {
        cache.put(n.to_be_bytes().to_vec(), value(0));
    }
    assert!(cache.contains(&id(200)));
    assert_eq!(cache.flush_expired(SystemTime::now()), 1);
}

#[test]
fn put_refuses_sessions_over_the_size_limit() {
    let (builder, recorder) = recording_builder();
    let cache = builder.max_session_size(32 + 83).build().unwrap();
    assert!(cache.put(id(1), value(1)), "exactly at the limit is fine");
    assert!(!cache.put(id(2), vec![2; 84]));
    assert!(!cache.add_session(Session::new(id(3), vec![3; 84])));
    assert_eq!(cache.len(), 1);
    assert_eq!(
        recorder.new_ids(),
        [id(1)],
        "a refused session reaches no callback"
    );
    let stats = cache.stats();
    assert_eq!((stats.oversized, stats.new_sessions), (2, 1));
}

// ---- get ------------------------------------------------------------------------------

#[test]
fn get_hit_keeps_and_promotes() {
    let cache = SessionCache::new(2);
    cache.put(id(1), value(1));
    cache.put(id(2), value(2));
    assert_eq!(cache.get(&id(1)), Some(value(1)));
    assert_eq!(cache.get(&id(1)), Some(value(1)), "the entry stays");
    cache.put(id(3), value(3));
    assert!(cache.contains(&id(1)), "promoted by get");
    assert!(
        !cache.contains(&id(2)),
        "the least recently used was evicted"
    );
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.cache_full), (2, 0, 1));
}

#[test]
fn get_of_an_expired_session_counts_a_timeout_and_removes_it() {
    let (builder, recorder) = recording_builder();
    let cache = builder.build().unwrap();
    cache.add_session(session(1).with_created(long_ago()));
    assert_eq!(cache.get(&id(1)), None);
    assert!(!cache.contains(&id(1)));
    assert_eq!(recorder.removed(), [(id(1), Expired)]);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.timeouts), (0, 0, 1));
    assert_eq!(cache.get(&id(1)), None);
    assert_eq!(cache.stats().misses, 1, "now it is simply absent");
}

#[test]
fn get_miss_counts_a_miss() {
    let cache = SessionCache::new(2);
    assert_eq!(cache.get(&id(9)), None);
    assert_eq!(cache.take(&id(9)), None);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.timeouts), (0, 2, 0));
}

#[test]
fn no_internal_lookup_skips_the_cache_and_counts_no_miss() {
    let cache = SessionCache::builder()
        .mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_LOOKUP)
        .build()
        .unwrap();
    assert!(cache.put(id(1), value(1)));
    assert_eq!(cache.get(&id(1)), None);
    assert_eq!(cache.take(&id(1)), None);
    assert!(
        cache.contains(&id(1)),
        "take under NO_INTERNAL_LOOKUP consumes nothing"
    );
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.cb_hits), (0, 0, 0));
}

#[test]
fn lookup_callback_supplies_and_caches_for_get() {
    let cache = SessionCache::builder()
        .lookup(|id| (id == [5; 32]).then(|| session(5)))
        .build()
        .unwrap();
    assert_eq!(cache.get(&id(5)), Some(value(5)));
    assert!(cache.contains(&id(5)), "added to the internal cache");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.cb_hits), (0, 1, 1));
    assert_eq!(cache.get(&id(5)), Some(value(5)));
    assert_eq!(cache.stats().hits, 1, "now found internally");
    assert_eq!(cache.get(&id(6)), None);
    assert_eq!(cache.stats().cb_hits, 1);
}

#[test]
fn lookup_callback_is_asked_after_an_expired_internal_session() {
    let cache = SessionCache::builder()
        .lookup(|_| Some(session(5)))
        .build()
        .unwrap();
    cache.add_session(Session::new(id(5), b"stale".to_vec()).with_created(long_ago()));
    assert_eq!(cache.get(&id(5)), Some(value(5)));
    let stats = cache.stats();
    assert_eq!((stats.timeouts, stats.misses, stats.cb_hits), (1, 0, 1));
}

#[test]
fn lookup_callback_session_is_not_cached_under_no_internal_store() {
    let cache = SessionCache::builder()
        .mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE)
        .lookup(|_| Some(session(5)))
        .build()
        .unwrap();
    assert_eq!(cache.get(&id(5)), Some(value(5)));
    assert_eq!(cache.len(), 0);
}

#[test]
fn lookup_callback_sessions_that_are_expired_foreign_or_oversized_are_ignored() {
    type Lookup = fn(&[u8]) -> Option<Session>;
    let cases: [(&str, Lookup); 4] = [
        ("expired", |id| {
            Some(Session::new(id, value(1)).with_created(long_ago()))
        }),
        ("expired by its own timeout", |id| {
            let created = SystemTime::now() - Duration::from_secs(2);
            Some(
                Session::new(id, value(1))
                    .with_created(created)
                    .with_timeout(Duration::from_secs(1)),
            )
        }),
        ("another id", |_| Some(session(2))),
        ("oversized", |id| Some(Session::new(id, vec![0; 200]))),
    ];
    for (case, lookup) in cases {
        let cache = SessionCache::builder()
            .max_session_size(150)
            .lookup(lookup)
            .build()
            .unwrap();
        assert_eq!(cache.get(&id(1)), None, "{case}");
        assert_eq!(cache.take(&id(1)), None, "{case}");
        let stats = cache.stats();
        assert_eq!((stats.cb_hits, stats.entries), (0, 0), "{case}");
    }
}

#[test]
fn lookup_callback_with_update_time_restamps_what_it_caches() {
    let created = SystemTime::now() - Duration::from_secs(100);
    let cache = SessionCache::builder()
        .mode(CacheMode::SERVER | CacheMode::UPDATE_TIME)
        .timeout(Duration::from_secs(150))
        .lookup(move |id| Some(Session::new(id, value(1)).with_created(created)))
        .build()
        .unwrap();
    assert_eq!(cache.get(&id(1)), Some(value(1)));
    // Restamped to now: still live 100 s from now, when the original would have expired.
    let later = SystemTime::now() + Duration::from_secs(100);
    assert_eq!(cache.flush_expired(later), 0);
}

// ---- take -----------------------------------------------------------------------------

#[test]
fn take_returns_once_and_reports_taken() {
    let (builder, recorder) = recording_builder();
    let cache = builder.build().unwrap();
    cache.put(id(1), value(1));
    assert_eq!(cache.take(&id(1)), Some(value(1)));
    assert_eq!(cache.take(&id(1)), None);
    assert_eq!(cache.get(&id(1)), None);
    assert_eq!(recorder.removed(), [(id(1), Taken)]);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (1, 2, 0));
}

#[test]
fn take_of_an_expired_ticket_counts_a_timeout() {
    let (builder, recorder) = recording_builder();
    let cache = builder.build().unwrap();
    cache.add_session(session(1).with_created(long_ago()));
    assert_eq!(cache.take(&id(1)), None);
    assert_eq!(recorder.removed(), [(id(1), Expired)]);
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.timeouts, stats.entries),
        (0, 0, 1, 0)
    );
}

#[test]
fn take_from_the_lookup_callback_is_not_cached_and_reported_taken() {
    let (builder, recorder) = recording_builder();
    let cache = builder.lookup(|_| Some(session(7))).build().unwrap();
    assert_eq!(cache.take(&id(7)), Some(value(7)));
    assert_eq!(cache.len(), 0);
    assert_eq!(recorder.removed(), [(id(7), Taken)]);
    assert_eq!(cache.stats().cb_hits, 1);
}

// ---- add_session ----------------------------------------------------------------------

#[test]
fn add_of_an_identical_session_returns_false_and_changes_nothing() {
    let (builder, recorder) = recording_builder();
    let cache = builder.capacity(2).build().unwrap();
    let created = SystemTime::now() - Duration::from_secs(10);
    assert!(cache.add_session(session(1).with_created(created)));
    assert!(cache.add_session(session(2)));
    assert!(!cache.add_session(session(1)));
    assert!(!cache.add_session(session(1).with_timeout(Duration::from_secs(1))));
    // No promotion: 1 is still the least recently used.
    assert!(cache.add_session(session(3)));
    assert_eq!(recorder.removed(), [(id(1), Evicted)]);
}

#[test]
fn add_of_an_identical_session_under_update_time_restamps_it() {
    let (builder, recorder) = recording_builder();
    let cache = builder.timeout(Duration::from_secs(60)).build().unwrap();
    let created = SystemTime::now() - Duration::from_secs(50);
    assert!(cache.add_session(session(1).with_created(created)));
    cache.set_mode(CacheMode::SERVER | CacheMode::UPDATE_TIME);
    assert!(!cache.add_session(session(1)), "identical: still false");
    let in_30s = SystemTime::now() + Duration::from_secs(30);
    assert_eq!(
        cache.flush_expired(in_30s),
        0,
        "restamped: 50 s old would have expired"
    );
    assert!(cache.contains(&id(1)));
    assert!(recorder.removed().is_empty());
}

#[test]
fn add_under_update_time_stamps_new_sessions_now() {
    let cache = SessionCache::builder()
        .mode(CacheMode::SERVER | CacheMode::UPDATE_TIME)
        .build()
        .unwrap();
    assert!(cache.add_session(session(1).with_created(long_ago())));
    assert_eq!(
        cache.get(&id(1)),
        Some(value(1)),
        "live: created now, not long ago"
    );
}

#[test]
fn add_with_another_value_replaces_without_on_remove() {
    let (builder, recorder) = recording_builder();
    let cache = builder.build().unwrap();
    assert!(cache.add_session(session(1)));
    assert!(cache.add_session(Session::new(id(1), b"new value".to_vec())));
    assert_eq!(cache.get(&id(1)), Some(b"new value".to_vec()));
    assert_eq!(cache.len(), 1);
    assert!(recorder.removed().is_empty());
}

#[test]
fn add_of_a_new_id_evicts_the_least_recently_used() {
    let (builder, recorder) = recording_builder();
    let cache = builder.capacity(5).build().unwrap();
    for n in 0..10 {
        assert!(cache.add_session(session(n)));
        assert_eq!(
            cache.len(),
            usize::from(n + 1).min(5),
            "a capacity of N holds N"
        );
    }
    for n in 0..5 {
        assert!(!cache.contains(&id(n)));
    }
    for n in 5..10 {
        assert!(cache.contains(&id(n)));
    }
    let expected: Vec<_> = (0..5).map(|n| (id(n), Evicted)).collect();
    assert_eq!(recorder.removed(), expected);
    assert_eq!(cache.stats().cache_full, 5);
}

#[test]
fn add_ignores_the_mode_and_accepts_expired_sessions() {
    let cache = SessionCache::builder()
        .mode(CacheMode::OFF)
        .build()
        .unwrap();
    assert!(cache.add_session(session(1).with_created(long_ago())));
    let cache = SessionCache::builder()
        .mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE)
        .build()
        .unwrap();
    assert!(cache.add_session(session(1)));
    assert_eq!(cache.get(&id(1)), Some(value(1)));
}

#[test]
fn a_cache_of_one_keeps_working_when_it_overflows() {
    let cache = SessionCache::new(1);
    for n in 0..50 {
        assert!(cache.put(id(n), value(n)));
        assert_eq!(cache.get(&id(n)), Some(value(n)));
        assert_eq!(cache.len(), 1);
    }
    assert_eq!(cache.stats().cache_full, 49);
}

// ---- remove, flush, clear ---------------------------------------------------------------

#[test]
fn remove_reports_presence_and_calls_on_remove_only_when_present() {
    let (builder, recorder) = recording_builder();
    let cache = builder.build().unwrap();
    cache.add_session(session(1));
    assert!(cache.remove_session(&id(1)));
    assert!(!cache.remove_session(&id(1)));
    assert_eq!(recorder.removed(), [(id(1), Removed)]);
    // Expired but present still counts as present.
    cache.add_session(session(2).with_created(long_ago()));
    assert!(cache.remove_session(&id(2)));
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.timeouts), (0, 0, 0));
}

#[test]
fn expiry_is_strict_at_the_boundary() {
    let (builder, recorder) = recording_builder();
    let timeout = Duration::from_secs(60);
    let cache = builder.timeout(timeout).build().unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    cache.add_session(session(1).with_created(t0));
    cache.add_session(session(2).with_created(t0 + Duration::from_nanos(1)));
    cache.add_session(
        session(3)
            .with_created(t0)
            .with_timeout(Duration::from_secs(120)),
    );
    assert_eq!(
        cache.flush_expired(t0 + timeout),
        0,
        "now == created + timeout is live"
    );
    assert_eq!(
        cache.flush_expired(t0 + timeout + Duration::from_nanos(1)),
        1
    );
    assert_eq!(recorder.removed(), [(id(1), Expired)]);
    assert_eq!(
        cache.flush_expired(t0 + timeout + Duration::from_nanos(2)),
        1
    );
    assert_eq!(
        cache.flush_expired(t0 + Duration::from_secs(120)),
        0,
        "own timeout"
    );
    assert_eq!(cache.flush_expired(t0 + Duration::from_secs(121)), 1);
    assert_eq!(recorder.causes(), [Expired, Expired, Expired]);
    assert_eq!(
        cache.stats(),
        CacheStats::default(),
        "flushing changes no statistic"
    );
}

#[test]
fn clear_removes_everything_as_removed() {
    let (builder, recorder) = recording_builder();
    let cache = builder.build().unwrap();
    for n in 0..4 {
        cache.add_session(session(n));
    }
    assert_eq!(cache.clear(), 4);
    assert!(cache.is_empty());
    assert_eq!(recorder.causes(), [Removed; 4]);
    assert_eq!(cache.clear(), 0);
    assert_eq!(cache.stats().cache_full, 0);
}

// ---- settings -------------------------------------------------------------------------

#[test]
fn a_smaller_capacity_evicts_least_recently_used_at_once() {
    let (builder, recorder) = recording_builder();
    let cache = builder.capacity(4).build().unwrap();
    for n in 0..4 {
        cache.add_session(session(n));
    }
    assert_eq!(cache.get(&id(0)), Some(value(0)));
    assert_eq!(cache.try_set_capacity(2), Ok(4));
    assert_eq!(cache.capacity(), 2);
    assert_eq!(recorder.removed(), [(id(1), Evicted), (id(2), Evicted)]);
    assert!(cache.contains(&id(0)) && cache.contains(&id(3)));
    assert_eq!(cache.stats().cache_full, 2);
    assert_eq!(cache.try_set_capacity(10), Ok(2));
    for n in 10..18 {
        cache.add_session(session(n));
    }
    assert_eq!(cache.len(), 10);
}

#[test]
fn invalid_settings_are_refused_and_reported() {
    let cache = SessionCache::new(8);
    assert_eq!(cache.try_set_capacity(0), Err(ConfigError::ZeroCapacity));
    assert_eq!(cache.capacity(), 8);
    assert_eq!(
        cache.try_set_timeout(Duration::ZERO),
        Err(ConfigError::TimeoutOutOfRange {
            timeout: Duration::ZERO,
            max: MAX_TIMEOUT
        })
    );
    assert!(matches!(
        cache.try_set_timeout(MAX_TIMEOUT + Duration::from_nanos(1)),
        Err(ConfigError::TimeoutOutOfRange { .. })
    ));
    assert_eq!(cache.timeout(), DEFAULT_TIMEOUT);
    assert_eq!(cache.try_set_timeout(MAX_TIMEOUT), Ok(DEFAULT_TIMEOUT));
    assert_eq!(
        cache.try_set_timeout(Duration::from_secs(5)),
        Ok(MAX_TIMEOUT)
    );
}

#[test]
#[allow(deprecated)]
fn the_deprecated_setters_still_set_and_ignore_what_they_refuse() {
    let cache = SessionCache::new(8);
    assert_eq!(cache.set_capacity(0), 8, "refused: the current capacity");
    assert_eq!(cache.set_capacity(4), 8);
    assert_eq!(cache.capacity(), 4);
    assert_eq!(
        cache.set_timeout(Duration::ZERO),
        DEFAULT_TIMEOUT,
        "refused"
    );
    assert_eq!(cache.set_timeout(Duration::from_secs(5)), DEFAULT_TIMEOUT);
    assert_eq!(cache.timeout(), Duration::from_secs(5));
}

#[test]
fn a_new_timeout_applies_to_cached_sessions_without_their_own() {
    let cache = SessionCache::new(8);
    let created = SystemTime::now() - Duration::from_secs(100);
    cache.add_session(session(1).with_created(created));
    cache.add_session(
        session(2)
            .with_created(created)
            .with_timeout(Duration::from_secs(1000)),
    );
    assert_eq!(cache.get(&id(1)), Some(value(1)));
    assert_eq!(
        cache.try_set_timeout(Duration::from_secs(50)),
        Ok(DEFAULT_TIMEOUT)
    );
    assert_eq!(cache.get(&id(1)), None);
    assert_eq!(cache.get(&id(2)), Some(value(2)));
    assert_eq!(cache.stats().timeouts, 1);
}

#[test]
fn set_mode_returns_the_previous_mode() {
    let cache = SessionCache::new(8);
    assert_eq!(cache.mode(), CacheMode::SERVER);
    let off = cache.set_mode(CacheMode::OFF);
    assert_eq!(off, CacheMode::SERVER);
    assert_eq!(cache.mode(), CacheMode::OFF);
    assert!(!cache.put(id(1), value(1)));
}

#[test]
fn builder_defaults_and_refusals() {
    let cache = SessionCache::builder().build().unwrap();
    assert_eq!(cache.capacity(), DEFAULT_CAPACITY);
    assert_eq!(cache.capacity(), 20_480);
    assert_eq!(cache.timeout(), Duration::from_secs(300));
    assert_eq!(cache.mode(), CacheMode::SERVER);
    let errors = [
        (
            SessionCache::builder().capacity(0).build(),
            "capacity must be at least 1",
        ),
        (
            SessionCache::builder().timeout(Duration::ZERO).build(),
            "out of range",
        ),
        (
            SessionCache::builder().timeout(MAX_TIMEOUT * 2).build(),
            "at most 604800s",
        ),
        (
            SessionCache::builder().max_session_size(0).build(),
            "size limit",
        ),
    ];
    for (result, message) in errors {
        let err = result.unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
        let _: &dyn std::error::Error = &err;
    }
}

#[test]
#[should_panic(expected = "SessionCache::new(0): session cache capacity must be at least 1")]
fn new_with_zero_capacity_panics_clearly() {
    let _ = SessionCache::new(0);
}

// ---- hostile input ----------------------------------------------------------------------

#[test]
fn lookup_keys_of_any_length_are_just_misses() {
    let cache = SessionCache::new(8);
    cache.put(id(1), value(1));
    let huge = vec![1u8; 1 << 20];
    for key in [&[][..], &[1], &id(1)[..31], &[1; 33], &huge] {
        assert_eq!(cache.get(key), None);
        assert_eq!(cache.take(key), None);
        assert!(!cache.remove_session(key));
        assert!(!cache.contains(key));
    }
    assert_eq!(cache.stats().misses, 10);
    assert_eq!(cache.get(&id(1)), Some(value(1)));
}

#[test]
fn ids_longer_than_inline_storage_work() {
    let cache = SessionCache::new(8);
    let long = vec![9u8; 300];
    assert!(cache.put(long.clone(), value(9)));
    assert!(cache.put(Vec::new(), value(8)));
    assert_eq!(cache.take(&long), Some(value(9)));
    assert_eq!(cache.get(&[]), Some(value(8)));
}

// ---- secrets in Debug -------------------------------------------------------------------

#[test]
fn debug_output_carries_no_secret_bytes() {
    let secret = b"TOP-SECRET-MASTER-KEY".to_vec();
    let id = b"some-id-that-is-long".to_vec();
    let cache = SessionCache::builder()
        .on_new_session(|_| {})
        .on_remove(|_, _| {})
        .lookup(|_| None)
        .build()
        .unwrap();
    cache.add_session(Session::new(id.clone(), secret.clone()));
    let session = Session::new(id.clone(), secret.clone());
    let builder = SessionCache::builder().lookup(|_| None);
    // Plain and pretty, of everything that can hold or reach a session.
    let printed = format!(
        "{cache:?} {cache:#?} {session:?} {session:#?} {builder:?} {:?}",
        cache.stats()
    );
    if let Some(form) = common::leak::leaked(&printed, &secret) {
        panic!("the value leaked as {form:?}: {printed}");
    }
    if let Some(form) = common::leak::leaked(&printed, &id) {
        panic!("the whole id leaked as {form:?}: {printed}");
    }
    // What is shown instead.
    assert!(printed.contains("id_prefix: 736f6d65…"), "{printed}");
    assert!(printed.contains("value_len: 21"), "{printed}");
    assert!(printed.contains("len: 1"), "{printed}");
    assert!(printed.contains("lookup: true"), "{printed}");
}
