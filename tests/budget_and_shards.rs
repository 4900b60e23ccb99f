//! The byte budget and sharding: hard bounds under random sizes and many threads, and
//! TLS 1.3 tickets single-use across shards.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::SystemTime;

use common::*;
use rustls::server::StoresServerSessions;
use rustls_session_cache::{
    CacheMode, ConfigError, DEFAULT_MAX_SESSION_SIZE, RemovalCause, Session, SessionCache,
};

/// What the budget counts for a session beyond its id and value, 112 bytes as the
/// builder's docs state: read from a cache, not from the crate's internals.
const ENTRY_OVERHEAD: usize = 112;

/// A small deterministic generator, so a failure replays exactly.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn cost(id_len: usize, value_len: usize) -> usize {
    id_len + value_len + ENTRY_OVERHEAD
}

#[test]
fn byte_budget_holds_under_random_sizes_and_counts_exactly() {
    for shards in [1, 4] {
        let max_bytes = 64 * 1024;
        let removed = Arc::new(AtomicUsize::new(0));
        let seen = removed.clone();
        let cache = SessionCache::builder()
            .capacity(10_000)
            .shards(shards)
            .max_session_size(4096)
            .max_bytes(max_bytes)
            .on_remove(move |_, cause| {
                assert_eq!(cause, RemovalCause::Evicted);
                seen.fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .unwrap();
        let mut rng = XorShift(0x5eed + shards as u64);
        let mut model: HashMap<Vec<u8>, usize> = HashMap::new();
        for round in 0..5_000u32 {
            let id = round.to_be_bytes().repeat(8);
            let value_len = match rng.below(10) {
                0 => 1_000 + rng.below(3_000) as usize, // a client-certificate session
                _ => 50 + rng.below(100) as usize,
            };
            assert!(cache.put(id.clone(), vec![7; value_len]));
            model.insert(id, value_len);
            model.retain(|id, _| cache.contains(id));
            let stats = cache.stats();
            assert!(
                stats.bytes <= max_bytes,
                "round {round}: {} > {max_bytes}",
                stats.bytes
            );
            let expected: usize = model.iter().map(|(id, len)| cost(id.len(), *len)).sum();
            assert_eq!(stats.bytes, expected, "round {round}: accounting drifted");
            assert_eq!(stats.entries, model.len());
        }
        let stats = cache.stats();
        assert_eq!(stats.cache_full as usize, removed.load(Ordering::Relaxed));
        assert_eq!(
            stats.cache_full as usize + stats.entries,
            5_000,
            "evicted or kept"
        );
        // The budget, not the capacity of 10,000, is what bound this cache.
        assert!(stats.entries < 1_000, "{stats:?}");
    }
}

#[test]
fn a_session_costs_its_id_and_value_and_the_stated_overhead() {
    let cache = SessionCache::new(8);
    for (id_len, value_len) in [(32, 83), (0, 0), (300, 5_000), (1, 1)] {
        cache.clear();
        cache.add_session(Session::new(vec![1; id_len], vec![2; value_len]));
        assert_eq!(cache.bytes(), id_len + value_len + ENTRY_OVERHEAD);
    }
}

#[test]
fn byte_budget_accounts_for_every_way_out() {
    let cache = SessionCache::builder()
        .max_bytes(1 << 20)
        .lookup(|id| Some(Session::new(id, vec![1; 10])))
        .build()
        .unwrap();
    let one = cost(32, 83);
    cache.put(id(1), value(1));
    cache.put(id(2), value(2));
    cache.add_session(session(3).with_created(long_ago()));
    assert_eq!(cache.bytes(), 3 * one);
    assert_eq!(cache.take(&id(1)), Some(value(1)));
    assert_eq!(
        cache.get(&id(3)),
        Some(vec![1; 10]),
        "expired, then from the callback"
    );
    assert_eq!(cache.bytes(), one + cost(32, 10));
    cache.add_session(Session::new(id(2), vec![2; 200]));
    assert_eq!(cache.bytes(), cost(32, 200) + cost(32, 10));
    assert!(cache.remove_session(&id(2)));
    assert_eq!(
        cache.flush_expired(SystemTime::now() + cache.timeout() * 2),
        1
    );
    assert_eq!((cache.bytes(), cache.stats().bytes), (0, 0));
    cache.put(id(4), value(4));
    assert_eq!(cache.clear(), 1);
    assert_eq!(cache.bytes(), 0);
}

#[test]
fn byte_budget_and_shard_settings_are_checked() {
    let one_shard_min = DEFAULT_MAX_SESSION_SIZE + ENTRY_OVERHEAD;
    let ok = SessionCache::builder()
        .max_bytes(one_shard_min)
        .build()
        .unwrap();
    assert_eq!(ok.max_bytes(), Some(one_shard_min));
    let err = SessionCache::builder()
        .max_bytes(one_shard_min)
        .shards(2)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        ConfigError::ByteBudgetTooSmall {
            max_bytes: one_shard_min,
            min: 2 * one_shard_min
        }
    );
    assert!(err.to_string().contains("too small"), "{err}");
    let err = SessionCache::builder()
        .max_bytes(one_shard_min - 1)
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::ByteBudgetTooSmall { .. }));

    assert_eq!(
        SessionCache::builder().shards(0).build().unwrap_err(),
        ConfigError::ZeroShards
    );
    let err = SessionCache::builder()
        .capacity(3)
        .shards(4)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        ConfigError::TooManyShards {
            shards: 4,
            capacity: 3
        }
    );
    assert!(
        err.to_string()
            .contains("4 shards cannot share a capacity of 3"),
        "{err}"
    );
}

#[test]
fn shards_split_the_capacity_exactly() {
    let cache = SessionCache::builder()
        .capacity(10)
        .shards(4)
        .build()
        .unwrap();
    assert_eq!((cache.capacity(), cache.shards()), (10, 4));
    assert_eq!(cache.try_set_capacity(7), Ok(10));
    assert_eq!(cache.capacity(), 7);
    assert_eq!(
        cache.try_set_capacity(3),
        Err(ConfigError::TooManyShards {
            shards: 4,
            capacity: 3
        })
    );
    assert_eq!(cache.capacity(), 7);
}

#[test]
fn sharded_cache_never_exceeds_capacity_under_threads() {
    const CAPACITY: usize = 100;
    let cache = SessionCache::builder()
        .capacity(CAPACITY)
        .shards(8)
        .build()
        .unwrap();
    let over = AtomicUsize::new(0);
    thread::scope(|scope| {
        for t in 0..4u64 {
            let (cache, over) = (&cache, &over);
            scope.spawn(move || {
                let mut rng = XorShift(t + 1);
                for _ in 0..20_000 {
                    let key = rng.below(1_000).to_be_bytes().to_vec();
                    match rng.below(4) {
                        0 | 1 => {
                            cache.put(key, vec![1; 83]);
                        }
                        2 => {
                            cache.get(&key);
                        }
                        _ => {
                            cache.take(&key);
                        }
                    }
                    if cache.len() > CAPACITY {
                        over.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(over.load(Ordering::Relaxed), 0);
    let stats = cache.stats();
    assert!(
        stats.entries <= CAPACITY && stats.cache_full > 0,
        "{stats:?}"
    );
}

#[test]
fn per_shard_lru_evicts_before_the_cache_is_full() {
    // 16 shards of 16. An exact LRU of 256 evicts nothing for 256 new ids; a sharded
    // one evicts as soon as one shard has had its 17th, while others still have room.
    // That fails to happen only if the keyed hash puts exactly 16 of the 256 ids in
    // every shard: a chance of 3.5e-15.
    let at_eviction = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = at_eviction.clone();
    let holder: Arc<std::sync::OnceLock<std::sync::Weak<SessionCache>>> = Default::default();
    let inner = holder.clone();
    let cache = SessionCache::builder()
        .capacity(256)
        .shards(16)
        .on_remove(move |_, cause| {
            assert_eq!(cause, RemovalCause::Evicted);
            let cache = inner.get().and_then(std::sync::Weak::upgrade).unwrap();
            record.lock().unwrap().push(cache.len());
        })
        .build()
        .unwrap();
    holder.set(Arc::downgrade(&cache)).unwrap();
    for n in 0..256u32 {
        assert!(cache.put(n.to_be_bytes().to_vec(), value(1)));
        assert!(cache.len() <= 256);
    }
    let stats = cache.stats();
    let at_eviction = at_eviction.lock().unwrap();
    assert!(stats.cache_full > 0, "no shard overflowed: {stats:?}");
    assert_eq!(at_eviction.len() as u64, stats.cache_full);
    // Each eviction happened with the cache below its capacity: the shard was full, the
    // cache was not.
    assert!(at_eviction.iter().all(|&len| len < 256), "{at_eviction:?}");
    assert_eq!(stats.entries, 256 - stats.cache_full as usize);

    // One shard is exact: it holds all 256.
    let one_shard = SessionCache::builder().capacity(256).build().unwrap();
    for n in 0..256u32 {
        one_shard.put(n.to_be_bytes().to_vec(), value(1));
    }
    assert_eq!(
        (one_shard.len(), one_shard.stats().cache_full),
        (256, 0),
        "one shard: exact"
    );
}

#[test]
fn take_is_single_use_across_shards() {
    const TICKETS: u32 = 4_000;
    const THREADS: usize = 4;
    // Twice the room: with 16 shards of 500, no shard overflows from uneven hashing.
    let cache = SessionCache::builder()
        .capacity(2 * TICKETS as usize)
        .shards(16)
        .build()
        .unwrap();
    for n in 0..TICKETS {
        assert!(cache.put(n.to_le_bytes().to_vec(), n.to_be_bytes().to_vec()));
    }
    assert_eq!(
        cache.len(),
        TICKETS as usize,
        "room for all: no shard overflowed"
    );
    let barrier = Barrier::new(THREADS);
    let won: Vec<u32> = thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (cache, barrier) = (&cache, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    (0..TICKETS)
                        .filter(|n| cache.take(&n.to_le_bytes()) == Some(n.to_be_bytes().to_vec()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut won = won;
    won.sort_unstable();
    assert_eq!(
        won,
        (0..TICKETS).collect::<Vec<_>>(),
        "each ticket exactly once"
    );
    assert_eq!(cache.stats().hits, u64::from(TICKETS));
}

#[test]
fn sharded_caches_resume_real_handshakes() {
    for version in VERSIONS {
        let cache = SessionCache::builder().shards(8).build().unwrap();
        let (server, client) = (server_config(version, &cache), client_config(version));
        handshake(&server, &client).assert_kind(rustls::HandshakeKind::Full);
        for _ in 0..10 {
            handshake(&server, &client).assert_kind(rustls::HandshakeKind::Resumed);
        }
        assert_eq!(cache.stats().hits, 10);
    }
}

#[test]
fn the_automatic_sweep_is_bounded_and_starts_at_the_lru_end() {
    let cache = SessionCache::builder()
        .capacity(2_000)
        .mode(CacheMode::SERVER)
        .build()
        .unwrap();
    // 300 expired sessions at the least recently used end, then a live one, then one
    // more expired session behind it.
    for n in 0..300u32 {
        cache
            .add_session(Session::new(n.to_be_bytes().to_vec(), value(1)).with_created(long_ago()));
    }
    cache.add_session(Session::new(b"live".to_vec(), value(2)));
    cache.add_session(Session::new(b"hidden".to_vec(), value(3)).with_created(long_ago()));
    for n in 0..255u32 {
        cache.put((1_000_000 + n).to_be_bytes().to_vec(), value(4));
    }
    assert_eq!(
        cache.len(),
        302 + 255,
        "no sweep before the 256th new session"
    );
    cache.put(b"256th".to_vec(), value(4));
    assert_eq!(
        cache.len(),
        302 + 256 - 256,
        "one sweep removes at most 256"
    );
    for n in 0..256u32 {
        cache.put((2_000_000 + n).to_be_bytes().to_vec(), value(4));
    }
    // The next sweep removed the other 44 and stopped at the live session.
    assert_eq!(cache.len(), 2 + 256 + 256);
    assert!(
        cache.contains(b"hidden"),
        "behind a live session: left for later"
    );
    assert_eq!(cache.get(b"hidden"), None, "but never served");
    assert_eq!(cache.stats().timeouts, 1);
}
