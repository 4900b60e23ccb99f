//! Memory per cached session: 200,000 sessions with 32-byte ids and 83-byte values.
//!
//! ```text
//! cargo bench --bench memory
//! ```
//!
//! A counting global allocator tracks the bytes live on the heap. Each store is measured
//! in a child process of its own: heap bytes and resident memory before the store is
//! built, after it holds 200,000 sessions, and again after five turnovers (1,000,000
//! more new sessions, each evicting the oldest). The second figure is the steady state
//! of a busy server: a hash table that reclaims deleted slots by growing (hashbrown, in
//! `lru` and moka) has grown by then. "Heap" is every byte the store asked the
//! allocator for and still holds (the table, the LRU nodes, ids and values), which is
//! what the target counts; "RSS" adds what the allocator itself spends (glibc rounds each
//! block up to 16 bytes and adds an 8-byte header), so it is the honest upper figure.
//! Results go to `target/bench-results/memory.json`.
#![allow(unsafe_code)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicIsize, Ordering};

use std::sync::Arc;

use rustls::server::StoresServerSessions;
use support::{MokaStore, Store, id, value};

const SESSIONS: usize = 200_000;

/// New sessions put after the fill, each evicting one: five turnovers.
const TURNOVER: usize = 5 * SESSIONS;

static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

const STORES: [Store; 3] = [Store::SessionCache, Store::Rustls, Store::Moka];

/// In the child: build one store, fill it, print one JSON line.
fn measure(store: Store) {
    let (heap0, rss0) = (LIVE.load(Ordering::Relaxed), rss_bytes());
    let moka = matches!(store, Store::Moka).then(|| Arc::new(MokaStore::new(SESSIONS)));
    let built: Arc<dyn StoresServerSessions> = match &moka {
        Some(moka) => moka.clone(),
        None => store.build(SESSIONS),
    };
    for n in 0..SESSIONS as u64 {
        built.put(id(1, n), value());
    }
    if let Some(moka) = &moka {
        // moka applies writes and evictions in batches; settle them before counting.
        moka.0.run_pending_tasks();
    }
    let (heap, rss) = (LIVE.load(Ordering::Relaxed) - heap0, rss_bytes() - rss0);
    assert!(
        built.get(&id(1, SESSIONS as u64 - 1)).is_some(),
        "the last session is held"
    );
    for n in 0..TURNOVER as u64 {
        built.put(id(2, n), value());
    }
    if let Some(moka) = &moka {
        moka.0.run_pending_tasks();
    }
    let (heap_turned, rss_turned) = (LIVE.load(Ordering::Relaxed) - heap0, rss_bytes() - rss0);
    // moka's admission policy may turn new sessions away, so it need not hold the last.
    assert!(
        moka.is_some() || built.get(&id(2, TURNOVER as u64 - 1)).is_some(),
        "the last session is held"
    );
    let per = |bytes: isize| bytes as f64 / SESSIONS as f64;
    println!(
        r#"{{"store":"{}","sessions":{SESSIONS},"heap_bytes":{heap},"rss_bytes":{rss},"heap_per_session":{:.1},"rss_per_session":{:.1},"turnover":{TURNOVER},"heap_per_session_after_turnover":{:.1},"rss_per_session_after_turnover":{:.1}}}"#,
        store.name(),
        per(heap),
        per(rss as isize),
        per(heap_turned),
        per(rss_turned as isize)
    );
    drop((built, moka));
}

fn main() {
    if let Some(name) = std::env::args().skip_while(|a| a != "--child").nth(1) {
        let store = STORES.into_iter().find(|s| s.name() == name).unwrap();
        return measure(store);
    }
    println!("machine: {}", support::machine());
    let exe = std::env::current_exe().unwrap();
    let mut lines = Vec::new();
    for store in STORES {
        let out = Command::new(&exe)
            .args(["--child", &store.name()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        println!("{line}");
        lines.push(line);
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-results");
    std::fs::create_dir_all(&dir).unwrap();
    let json = format!(
        "{{\"machine\":\"{}\",\"results\":[\n{}\n]}}\n",
        support::machine(),
        lines.join(",\n")
    );
    std::fs::write(dir.join("memory.json"), json).unwrap();
}
