//! Many threads at once: tickets are handed out once, capacity holds, nothing deadlocks.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::*;
use rustls::server::StoresServerSessions;
use rustls_session_cache::{RemovalCause, Session, SessionCache};

const THREADS: usize = 8;

/// Runs `f`, failing the test if it has not finished within a minute (a deadlock).
fn within_a_minute(f: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("deadlock: still running after 60 s"),
    }
}

#[test]
fn racing_takes_get_each_ticket_exactly_once() {
    // Every thread goes for the same ticket at the same moment: all start together
    // (spinning, not parking, until the last arrives) and take the same tickets in the
    // same order, so each ticket is raced for by all of them; the hand-off of the lock
    // keeps them in step. A take that finds and removes in two critical sections hands
    // some ticket out twice; one critical section never does.
    const TICKETS: u32 = 60_000;
    const RACERS: usize = 4;
    let taken_notices = Arc::new(AtomicUsize::new(0));
    let notices = taken_notices.clone();
    let cache = SessionCache::builder()
        .capacity(TICKETS as usize)
        .on_remove(move |_, cause| {
            assert_eq!(cause, RemovalCause::Taken);
            notices.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    for n in 0..TICKETS {
        assert!(cache.put(n.to_be_bytes().to_vec(), n.to_le_bytes().to_vec()));
    }
    let arrived = AtomicUsize::new(0);
    let winners: Vec<Vec<u32>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..RACERS)
            .map(|_| {
                let (cache, arrived) = (&cache, &arrived);
                scope.spawn(move || {
                    arrived.fetch_add(1, Ordering::AcqRel);
                    while arrived.load(Ordering::Acquire) < RACERS {
                        std::hint::spin_loop();
                    }
                    (0..TICKETS)
                        .filter(|n| match cache.take(&n.to_be_bytes()) {
                            Some(value) => {
                                assert_eq!(value, n.to_le_bytes());
                                true
                            }
                            None => false,
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<u32> = winners.into_iter().flatten().collect();
    all.sort_unstable();
    let handed_out = all.len();
    all.dedup();
    assert_eq!(
        handed_out,
        all.len(),
        "{} tickets handed out twice",
        handed_out - all.len()
    );
    assert_eq!(
        all,
        (0..TICKETS).collect::<Vec<_>>(),
        "every ticket exactly once"
    );
    assert_eq!(taken_notices.load(Ordering::Relaxed), TICKETS as usize);
    let stats = cache.stats();
    assert_eq!(stats.hits, u64::from(TICKETS));
    assert_eq!(stats.misses, u64::from(TICKETS) * (RACERS as u64 - 1));
    assert_eq!(stats.entries, 0);
}

#[test]
fn mixed_stress_respects_capacity_and_finishes() {
    within_a_minute(|| {
        const CAPACITY: usize = 64;
        let reentered = Arc::new(AtomicUsize::new(0));
        let seen = reentered.clone();
        let cache = SessionCache::builder()
            .capacity(CAPACITY)
            .on_remove(move |_, _| {
                seen.fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .unwrap();
        thread::scope(|scope| {
            for t in 0..THREADS {
                let cache = &cache;
                scope.spawn(move || {
                    let mut state = 0x9e37_79b9_u32.wrapping_mul(t as u32 + 1);
                    for _ in 0..20_000 {
                        // xorshift: a cheap, deterministic spread of keys and operations.
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        let key = (state % 256) as u8;
                        match state % 7 {
                            0 | 1 => assert!(cache.put(id(key), value(key))),
                            2 | 3 => {
                                if let Some(v) = cache.get(&id(key)) {
                                    assert_eq!(v, value(key));
                                }
                            }
                            4 => {
                                if let Some(v) = cache.take(&id(key)) {
                                    assert_eq!(v, value(key));
                                }
                            }
                            5 => {
                                cache.add_session(Session::new(id(key), value(key)));
                            }
                            _ => {
                                cache.remove_session(&id(key));
                            }
                        }
                        assert!(cache.len() <= CAPACITY);
                    }
                });
            }
        });
        let stats = cache.stats();
        assert!(stats.entries <= CAPACITY);
        assert!(stats.hits > 0 && stats.cache_full > 0, "{stats:?}");
        assert!(reentered.load(Ordering::Relaxed) > 0);
    });
}

#[test]
fn callbacks_that_reenter_under_contention_do_not_deadlock() {
    const OPS: usize = 2_000;
    within_a_minute(|| {
        let holder: Arc<std::sync::OnceLock<std::sync::Weak<SessionCache>>> = Default::default();
        let inner = holder.clone();
        // Each on_remove call counts itself by cause, and counts again once its calls
        // back into the cache have returned, so the test sees that re-entry happened.
        let counts: Arc<[AtomicUsize; 3]> = Arc::default();
        let seen = counts.clone();
        let cache = SessionCache::builder()
            .capacity(16)
            .on_remove(move |session, cause| {
                let slot = match cause {
                    RemovalCause::Taken => 0,
                    RemovalCause::Evicted => 1,
                    other => panic!("unexpected cause {other:?}"),
                };
                seen[slot].fetch_add(1, Ordering::Relaxed);
                let cache = inner.get().and_then(std::sync::Weak::upgrade).unwrap();
                // Touch the cache from inside the callback while others hold it.
                let _ = cache.contains(session.id());
                let _ = cache.len();
                seen[2].fetch_add(1, Ordering::Relaxed);
            })
            .lookup(|id| Some(Session::new(id, value(1))))
            .build()
            .unwrap();
        holder.set(Arc::downgrade(&cache)).unwrap();
        thread::scope(|scope| {
            for t in 0..THREADS {
                let cache = &cache;
                scope.spawn(move || {
                    for n in 0..OPS as u32 {
                        let key = (n.wrapping_mul(t as u32 + 7) % 64).to_be_bytes();
                        cache.put(key.to_vec(), value(2));
                        // Never taken: 64 of these in 16 places make evictions certain.
                        cache.put((1_000 + n % 64).to_be_bytes().to_vec(), value(3));
                        // The lookup callback answers whatever the cache lacks.
                        assert!(cache.get(&key).is_some());
                        assert!(cache.take(&key).is_some());
                    }
                });
            }
        });
        let [taken, evicted, reentered] = counts.each_ref().map(|c| c.load(Ordering::Relaxed));
        // Every take used a ticket (the cache's or the callback's): one notice each.
        assert_eq!(taken, THREADS * OPS);
        assert_eq!(evicted as u64, cache.stats().cache_full);
        assert!(evicted >= 64 - 16, "{evicted} evictions");
        assert_eq!(
            reentered,
            taken + evicted,
            "every callback re-entered and returned"
        );
        assert!(cache.len() <= 16);
    });
}

#[test]
fn concurrent_capacity_changes_apply_one_after_the_other() {
    // Two threads change the capacity at once, over and over. Serialised, the result is
    // one of the two, and each call's "previous" is what the other left or the starting
    // capacity. Interleaved shard by shard, a per-shard split neither asked for can
    // remain: 256 shards of 40 or of 30 add up to neither 10,240 nor 7,680 when mixed.
    const ROUNDS: usize = 1_000;
    const SHARDS: usize = 256;
    const START: usize = SHARDS * 50;
    const TARGETS: [usize; 2] = [SHARDS * 40, SHARDS * 30];
    let cache = SessionCache::builder()
        .capacity(START)
        .shards(SHARDS)
        .build()
        .unwrap();
    // The workers spin, rather than park, until the round starts, so that both reach the
    // shards within the same microsecond; the main thread parks meanwhile.
    let round = AtomicUsize::new(0);
    let done = Barrier::new(3);
    let (previous, after): (Vec<Vec<usize>>, Vec<usize>) = thread::scope(|scope| {
        let workers: Vec<_> = TARGETS
            .map(|target| {
                let (cache, round, done) = (&cache, &round, &done);
                scope.spawn(move || {
                    (1..=ROUNDS)
                        .map(|n| {
                            while round.load(Ordering::Acquire) != n {
                                std::hint::spin_loop();
                            }
                            let previous = cache.try_set_capacity(target).unwrap();
                            done.wait();
                            previous
                        })
                        .collect::<Vec<_>>()
                })
            })
            .into_iter()
            .collect();
        let after = (1..=ROUNDS)
            .map(|n| {
                round.store(n, Ordering::Release);
                done.wait();
                let after = cache.capacity();
                assert_eq!(cache.try_set_capacity(START).unwrap(), after);
                after
            })
            .collect();
        let previous = workers.into_iter().map(|w| w.join().unwrap()).collect();
        (previous, after)
    });
    let [a, b] = TARGETS;
    let torn: Vec<_> = (0..ROUNDS)
        .map(|round| (previous[0][round], previous[1][round], after[round]))
        .filter(|&outcome| outcome != (b, START, a) && outcome != (START, a, b))
        .collect();
    assert!(
        torn.is_empty(),
        "{} of {ROUNDS} rounds were not one change after the other: {:?}",
        torn.len(),
        &torn[..torn.len().min(5)]
    );
}
