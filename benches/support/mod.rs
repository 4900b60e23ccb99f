//! What the benchmarks share: the stores compared, and how ids and values are made.
#![allow(dead_code)]

use std::fmt;
use std::sync::Arc;

use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use rustls_session_cache::SessionCache;

/// The stores compared, side by side in one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// This crate, one shard (the default).
    SessionCache,
    /// This crate with this many shards.
    Sharded(usize),
    /// This crate, one shard, through a resumption-context view.
    Context,
    /// rustls's built-in `ServerSessionMemoryCache`.
    Rustls,
    /// The twenty lines a user might write instead, on moka.
    Moka,
}

impl Store {
    pub fn name(self) -> String {
        match self {
            Self::SessionCache => "SessionCache".into(),
            Self::Sharded(n) => format!("SessionCache-{n}shards"),
            Self::Context => "SessionCache-context".into(),
            Self::Rustls => "rustls-builtin".into(),
            Self::Moka => "moka".into(),
        }
    }

    /// An empty store that holds `capacity` sessions.
    pub fn build(self, capacity: usize) -> Arc<dyn StoresServerSessions> {
        match self {
            Self::SessionCache => SessionCache::builder().capacity(capacity).build().unwrap(),
            Self::Sharded(n) => SessionCache::builder()
                .capacity(capacity)
                .shards(n)
                .build()
                .unwrap(),
            Self::Context => SessionCache::builder()
                .capacity(capacity)
                .build()
                .unwrap()
                .context("bench")
                .unwrap(),
            Self::Rustls => ServerSessionMemoryCache::new(capacity),
            Self::Moka => Arc::new(MokaStore::new(capacity)),
        }
    }
}

/// A minimal moka-based store: what a user might write instead of this crate.
pub struct MokaStore(pub moka::sync::Cache<Vec<u8>, Vec<u8>>);

impl MokaStore {
    pub fn new(capacity: usize) -> Self {
        Self(moka::sync::Cache::new(capacity as u64))
    }
}

impl StoresServerSessions for MokaStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.0.insert(key, value);
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.remove(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

impl fmt::Debug for MokaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MokaStore")
    }
}

/// A 32-byte id, unique per (`stream`, `n`), random-looking like rustls's.
pub fn id(stream: u8, n: u64) -> Vec<u8> {
    let mut id = Vec::with_capacity(32);
    let mut x = n ^ (u64::from(stream) << 56);
    for _ in 0..4 {
        // splitmix64: each word a bijection of (stream, n), so ids never collide.
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        id.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    id[0] = stream;
    id[1..9].copy_from_slice(&n.to_le_bytes());
    id
}

/// A typical encoded session value: 83 bytes.
pub fn value() -> Vec<u8> {
    vec![0x5a; 83]
}

/// Puts `count` sessions with ids from stream 0xff.
pub fn prefill(store: &dyn StoresServerSessions, count: usize) {
    for n in 0..count as u64 {
        store.put(id(0xff, n), value());
    }
}

/// The machine, for the report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores available")
}
