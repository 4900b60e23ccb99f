//! Every copy of a session value the cache held is wiped before its memory is freed;
//! ids are not, as the docs say.
//!
//! A global allocator scans each block as it is freed for a canary that only session
//! values contain. The test plants the canary in values, drives them through every way
//! out of the cache, and expects the scanner never to find it. A second canary, in an
//! id, shows the limit the docs state: `lru` frees its nodes with the id's bytes still
//! in them. This is a test binary of its own, with one test, so nothing else allocates
//! the canaries meanwhile.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use rustls::server::StoresServerSessions;
use rustls_session_cache::{CacheMode, Session, SessionCache};
use zeroize::Zeroize;

const CANARY: &[u8; 16] = b"\xc4\x4e\x41\x52\x59wipe-me-now";

/// In ids only; 16 bytes, so a 32-byte id holds it.
const ID_CANARY: &[u8; 16] = b"\xc4\x49\x44not-wiped-id!";

static ARMED: AtomicBool = AtomicBool::new(false);
static UNWIPED: AtomicUsize = AtomicUsize::new(0);
static FREED_IDS: AtomicUsize = AtomicUsize::new(0);

struct Scanner;

// SAFETY: forwards every call to the system allocator; `dealloc` only reads the block
// it is about to free, which is valid for `layout.size()` bytes.
unsafe impl GlobalAlloc for Scanner {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Relaxed) && layout.size() >= CANARY.len() {
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if block.windows(CANARY.len()).any(|w| w == CANARY) {
                UNWIPED.fetch_add(1, Ordering::Relaxed);
            }
            if block.windows(ID_CANARY.len()).any(|w| w == ID_CANARY) {
                FREED_IDS.fetch_add(1, Ordering::Relaxed);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Scanner = Scanner;

/// An 83-byte value holding the canary, in a `Vec` with spare capacity (as rustls's
/// encoder leaves it), so that a shrink-in-place would be caught too.
fn secret(n: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(128);
    v.extend_from_slice(CANARY);
    v.resize(83, n);
    v
}

fn id(n: u8) -> Vec<u8> {
    vec![n; 32]
}

/// Fails naming `step` if anything freed since the last check still held a value.
fn clean_after(step: &str) {
    assert_eq!(
        UNWIPED.swap(0, Ordering::Relaxed),
        0,
        "unwiped value freed: {step}"
    );
}

/// Takes a value the cache returned (now the caller's), and wipes it as a caller should.
fn wipe(value: Option<Vec<u8>>) {
    let mut value = value.expect("the cache returned the value");
    assert_eq!(&value[..16], CANARY);
    value.zeroize();
}

#[test]
fn no_session_value_is_freed_unwiped() {
    // A control first: the scanner does see an unwiped canary.
    ARMED.store(true, Ordering::Relaxed);
    drop(secret(0));
    assert_eq!(UNWIPED.swap(0, Ordering::Relaxed), 1, "the scanner works");

    let long_ago = SystemTime::now() - Duration::from_secs(30 * 86_400);
    let cache = SessionCache::builder()
        .capacity(4)
        .on_new_session(|s| drop(s.clone()))
        .on_remove(|s, _| drop(s.clone()))
        .lookup(|id| (id == [50; 32]).then(|| Session::new(id, secret(50))))
        .build()
        .unwrap();

    // put (the Vecs handed over are wiped), then evict by capacity.
    for n in 1..=6 {
        assert!(cache.put(id(n), secret(n)));
    }
    clean_after("put and eviction");
    // get copies out; take moves out.
    wipe(cache.get(&id(5)));
    wipe(cache.take(&id(6)));
    clean_after("get and take");
    // Expired on lookup, then swept by flush_expired.
    cache.add_session(Session::new(id(7), secret(7)).with_created(long_ago));
    assert_eq!(cache.get(&id(7)), None);
    cache.add_session(Session::new(id(8), secret(8)).with_created(long_ago));
    assert_eq!(cache.flush_expired(SystemTime::now()), 1);
    clean_after("expiry");
    // An identical add (the offer is dropped), a replacement (the old value is dropped).
    assert!(!cache.add_session(Session::new(id(5), secret(5))));
    assert!(cache.add_session(Session::new(id(5), secret(55))));
    clean_after("identical add and replacement");
    // Removal, the lookup callback (cached for get), and a mode that refuses.
    assert!(cache.remove_session(&id(5)));
    wipe(cache.get(&[50; 32]));
    cache.set_mode(CacheMode::OFF);
    assert!(!cache.put(id(9), secret(9)));
    cache.set_mode(CacheMode::SERVER);
    clean_after("removal, lookup callback, OFF");
    // Oversized sessions are refused and dropped.
    let mut big = Vec::with_capacity(20_000);
    big.extend_from_slice(CANARY);
    big.resize(20_000, 10);
    assert!(!cache.put(id(10), big));
    clean_after("oversized");
    // Shrinking, clearing, and finally dropping a cache that still holds sessions.
    cache.put(id(11), secret(11));
    cache.put(id(12), secret(12));
    cache.try_set_capacity(1).unwrap();
    cache.try_set_capacity(8).unwrap();
    cache.clear();
    clean_after("set_capacity and clear");
    cache.put(id(13), secret(13));
    cache.put(id(14), secret(14));
    drop(cache);
    clean_after("drop");

    // Ids are public and not wiped: the node `lru` frees still holds the id's bytes.
    let cache = SessionCache::new(4);
    let mut public_id = Vec::with_capacity(32);
    public_id.extend_from_slice(ID_CANARY);
    public_id.resize(32, 0);
    // The Vec handed to `put` is freed unwiped too; count only what follows.
    assert!(cache.put(public_id.clone(), secret(15)));
    FREED_IDS.store(0, Ordering::Relaxed);
    assert!(cache.remove_session(&public_id));
    clean_after("an id's removal");
    assert!(
        FREED_IDS.load(Ordering::Relaxed) >= 1,
        "the freed LRU node held the id, unwiped"
    );

    ARMED.store(false, Ordering::Relaxed);
    assert_eq!(
        UNWIPED.load(Ordering::Relaxed),
        0,
        "freed blocks still held a value"
    );
}
