//! What each operation allocates, counted exactly: the crate docs promise the session's
//! own buffer, the LRU node, the value `get` hands back, and lists sized before the
//! lock is taken, and nothing more.
//!
//! A global allocator counts allocations (and reallocations) made by the current
//! thread, so that the test harness's other threads do not disturb the counts. The
//! shard-level unit tests show that the buffers filled under the lock are never grown
//! there; this shows that no other allocation hides in an operation.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, SystemTime};

use rustls::server::StoresServerSessions;
use rustls_session_cache::{CacheMode, Session, SessionCache};

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

fn count_one() {
    // During thread teardown the counter may be gone; such allocations are not ours.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: forwards every call to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// How many allocations `f` made on this thread.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    (ALLOCATIONS.with(Cell::get) - before, result)
}

fn id(n: u32) -> Vec<u8> {
    let mut id = vec![0xa5; 32];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id
}

fn long_ago() -> SystemTime {
    SystemTime::now() - Duration::from_secs(86_400)
}

#[test]
fn each_operation_allocates_only_what_it_must() {
    let cache = SessionCache::new(4);
    // Warm up once, so that one-time set-up (tracing's callsites) is not counted.
    cache.put(id(0), vec![0; 83]);
    cache.get(&id(0));
    cache.take(&id(0));

    let (key, value) = (id(1), vec![1; 83]);
    let (n, stored) = allocations(|| cache.put(key, value));
    assert!(stored);
    assert_eq!(
        n, 2,
        "put, not full: the exact-size value buffer and the LRU node"
    );

    // Ids are made before counting: `id` allocates.
    let (one, two, missing) = (id(1), id(2), id(99));
    let (n, found) = allocations(|| cache.get(&one));
    assert_eq!(found.as_deref(), Some(&[1; 83][..]));
    assert_eq!(n, 1, "get of an 83-byte value: the buffer handed back");

    let (n, found) = allocations(|| cache.get(&missing));
    assert_eq!(
        (n, found),
        (1, None),
        "a miss reserved the same buffer, unlocked"
    );

    let (n, found) = allocations(|| cache.take(&one));
    assert_eq!(found.as_deref(), Some(&[1; 83][..]));
    assert_eq!(n, 0, "take hands back the cached buffer itself");

    let session = Session::new(id(2), vec![2; 5_000]);
    let (n, added) = allocations(|| cache.add_session(session));
    assert!(added);
    assert_eq!(n, 1, "add_session: the LRU node");
    let (n, found) = allocations(|| cache.get(&two));
    assert_eq!(found.map(|v| v.len()), Some(5_000));
    assert_eq!(
        n, 2,
        "get of 5,000 bytes: the usual buffer, then grown once, unlocked"
    );

    let (n, removed) = allocations(|| cache.remove_session(&two));
    assert_eq!((n, removed), (0, true), "remove_session");

    for n in 10..14 {
        cache.put(id(n), vec![3; 83]);
    }
    let (key, value) = (id(20), vec![4; 83]);
    let (n, _) = allocations(|| cache.put(key, value));
    assert_eq!(
        n, 1,
        "put into a full cache: the value buffer; the node is reused"
    );
}

#[test]
fn sweeps_flushes_and_clears_allocate_one_list_each() {
    let cache = SessionCache::builder().capacity(1_000).build().unwrap();
    // 256 expired sessions at the least recently used end, then 255 new sessions from
    // rustls: its 256th sweeps them all.
    for n in 0..256 {
        cache.add_session(Session::new(id(n), vec![1; 83]).with_created(long_ago()));
    }
    // The warm-up put, of the 255, is not counted.
    for n in 1_000..1_255 {
        cache.put(id(n), vec![2; 83]);
    }
    assert_eq!(cache.len(), 256 + 255);
    let (key, value) = (id(2_000), vec![3; 83]);
    let (n, _) = allocations(|| cache.put(key, value));
    assert_eq!(
        cache.len(),
        256,
        "the sweep removed the 256 expired sessions"
    );
    assert_eq!(n, 3, "the value, the node, and the sweep's list of 256");

    for n in 3_000..3_100 {
        cache.add_session(Session::new(id(n), vec![4; 83]).with_created(long_ago()));
    }
    let (n, flushed) = allocations(|| cache.flush_expired(SystemTime::now()));
    assert_eq!(
        (n, flushed),
        (1, 100),
        "flush_expired: one list, sized first"
    );
    let (n, cleared) = allocations(|| cache.clear());
    assert_eq!((n, cleared), (1, 256), "clear: one list, sized first");
}

#[test]
fn a_large_session_under_a_byte_budget_allocates_its_removal_list_unlocked() {
    let cache = SessionCache::builder()
        .capacity(1_000)
        .max_bytes(20_000)
        .mode(CacheMode::SERVER | CacheMode::NO_AUTO_CLEAR)
        .build()
        .unwrap();
    for n in 0..80 {
        cache.put(id(n), vec![1; 83]);
    }
    let (key, value) = (id(1_000), vec![2; 16_000]);
    let (n, stored) = allocations(|| cache.put(key, value));
    assert!(stored);
    assert!(cache.stats().cache_full > 4, "{:?}", cache.stats());
    assert_eq!(
        n, 3,
        "the value, the node, and a list with room for every eviction"
    );
}

#[test]
fn under_turnover_the_hash_table_is_rebuilt_at_most_once() {
    // The table is allocated in full when the cache is built, but hashbrown does not
    // reuse deleted slots forever: once they use up its spare room it rebuilds the
    // table, doubling it if more than half full (a full LRU is). A doubled table has
    // room to rebuild in place from then on. 100 turnovers of a full cache: each put
    // allocates its value buffer (the node is reused), and the table at most once more.
    const CAPACITY: u32 = 256;
    let cache = SessionCache::builder()
        .capacity(CAPACITY as usize)
        .build()
        .unwrap();
    let ids: Vec<Vec<u8>> = (0..101 * CAPACITY).map(id).collect();
    for id in &ids[..CAPACITY as usize] {
        cache.put(id.clone(), vec![1; 83]);
    }
    let puts: Vec<(Vec<u8>, Vec<u8>)> = ids[CAPACITY as usize..]
        .iter()
        .map(|id| (id.clone(), vec![2; 83]))
        .collect();
    let count = puts.len();
    let (n, ()) = allocations(|| {
        for (id, value) in puts {
            cache.put(id, value);
        }
    });
    assert_eq!(cache.stats().cache_full, count as u64);
    let table = n - count;
    assert!(table <= 1, "{table} table allocations in {count} puts");
}
