//! What a resumption-context view, and the `metrics` feature, cost per store operation,
//! counted in instructions under callgrind rather than timed: timings on a shared
//! virtual machine swing by more than the difference being measured.
//!
//! ```text
//! benches/context_cost.sh          # builds this, runs it under valgrind, prints ratios
//! ```
//!
//! Run directly, it does `OPS` steps of one workload on one store, prefilled to 20,480
//! sessions: `context_cost <bare|view> <tls13|tls12> <OPS>`. The script has callgrind
//! count only the steps (`run_steps`), not the set-up, whose clock calibration runs for
//! a time rather than a number of instructions. Making the ids and values is counted
//! too, the same for both stores.

mod support;

use std::sync::Arc;

use rustls::server::StoresServerSessions;
use rustls_session_cache::SessionCache;
use support::{id, prefill, value};

const CAPACITY: usize = 20_480;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (store, workload, ops) = match &args[..] {
        [_, store, workload, ops] => (store.as_str(), workload.as_str(), ops.parse().unwrap()),
        _ => {
            eprintln!("usage: context_cost <bare|view> <tls13|tls12> <OPS>");
            std::process::exit(2);
        }
    };
    let cache = SessionCache::new(CAPACITY);
    let store: Arc<dyn StoresServerSessions> = match store {
        "bare" => cache.clone(),
        "view" => cache.context("bench").unwrap(),
        other => panic!("unknown store {other}"),
    };
    prefill(&*store, CAPACITY);
    let found = run_steps(&*store, workload, ops);
    assert_eq!(found, ops, "every lookup found its session");
}

/// The steps measured: the script has callgrind count instructions only in here.
#[inline(never)]
fn run_steps(store: &dyn StoresServerSessions, workload: &str, ops: u64) -> u64 {
    let mut found = 0u64;
    for n in 0..ops {
        match workload {
            // A resumption: take a live ticket (the newest prefilled ones, which the
            // puts' evictions from the old end do not reach), put two new ones.
            "tls13" => {
                found += u64::from(store.take(&id(0xff, CAPACITY as u64 - 1 - n)).is_some());
                store.put(id(1, 2 * n), value());
                store.put(id(1, 2 * n + 1), value());
            }
            // A TLS 1.2 resumption: get a live session.
            "tls12" => found += u64::from(store.get(&id(0xff, n % CAPACITY as u64)).is_some()),
            other => panic!("unknown workload {other}"),
        }
    }
    found
}
