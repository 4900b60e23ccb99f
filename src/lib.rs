//! A server session cache for [rustls] that the application can steer, as OpenSSL's
//! `SSL_CTX_add_session(3)` family lets it.
//!
//! [`SessionCache`] implements [`rustls::server::StoresServerSessions`] over an LRU map
//! and plugs into [`rustls::ServerConfig::session_storage`]. On top of that it has:
//! - cache modes with OpenSSL's bits ([`CacheMode`]), including `NO_INTERNAL_STORE` and
//!   `NO_INTERNAL_LOOKUP`, with which the application decides which sessions resume;
//! - explicit [`add_session`](SessionCache::add_session) and
//!   [`remove_session`](SessionCache::remove_session);
//! - session timeouts, with expiry on lookup, bounded automatic sweeps and
//!   [`flush_expired`](SessionCache::flush_expired);
//! - a byte budget ([`SessionCacheBuilder::max_bytes`]) and sharding for many cores
//!   ([`SessionCacheBuilder::shards`]);
//! - OpenSSL-like statistics ([`CacheStats`]);
//! - new-session, remove and external-lookup callbacks;
//! - [`tracing`] events that never carry secrets.
//!
//! It does not do network I/O, pick a crypto provider, or issue stateless tickets: with
//! a `ServerConfig::ticketer` enabled, TLS 1.3 never touches the session store. (The
//! `redis` feature's `fleet::FleetTicketer` is a ticketer, with keys shared by a fleet.)
//!
//! # Quick start
//!
//! ```
//! use std::sync::Arc;
//! use rustls::ServerConfig;
//! use rustls_session_cache::{Session, SessionCache};
//! # use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
//! # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
//! # let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
//! # let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
//!
//! let cache = SessionCache::new(20_480);
//! let mut config = ServerConfig::builder_with_provider(Arc::new(
//!     rustls::crypto::ring::default_provider(),
//! ))
//! .with_safe_default_protocol_versions()?
//! .with_no_client_auth()
//! .with_single_cert(chain, key)?;
//! config.session_storage = cache.clone();
//!
//! // Later, from anywhere that holds `cache`:
//! cache.add_session(Session::new(vec![1; 32], b"an encoded session".to_vec()));
//! assert_eq!(cache.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Security model
//!
//! rustls's contract for a session store, and what this crate does about each part:
//! - **Values are secrets.** A value holds the TLS 1.2 master secret or the TLS 1.3
//!   resumption PSK. Whoever reads one can decrypt the sessions resumed from it. So no
//!   `Debug` output and no `tracing` event here carries a value; ids appear in events
//!   only as a 4-byte hex prefix. Every copy of a value the cache holds (and the `Vec`
//!   rustls hands to `put`) is wiped with [`zeroize`] when dropped: on eviction, expiry,
//!   removal, replacement, `clear`, and when the cache is dropped. Values returned to
//!   rustls from `get`/`take` are rustls's to wipe.
//! - **Ids are not secret, and not wiped.** A TLS 1.2 session id crosses the network in
//!   clear, in the ServerHello and in the ClientHello that offers it back; so does a
//!   TLS 1.3 ticket identity, in the ClientHello. Knowing an id does not let anyone
//!   resume (that takes the value), though rustls's `take` runs before it checks the
//!   PSK binder, so someone who sees an unused ticket can use it up, and its client then
//!   makes a full handshake. The cache does not wipe ids, and could not wipe them all:
//!   the `lru` crate moves each id out of its node before freeing the node.
//! - **Looked-up ids are untrusted.** They come from the network, at any length. A
//!   lookup allocates nothing for the id, and no id length can cause a panic. The map
//!   hashes ids with a fast seeded hash (foldhash): flooding a hash table takes
//!   *inserting* keys that collide, and the ids inserted are rustls's, uniformly random,
//!   so a lookup with a chosen id only walks a probe sequence random ids shaped. The
//!   shard for an id is picked with SipHash under a random key, a function independent
//!   of the map's.
//! - **A store may forget, but `take` must really delete.** TLS 1.3 tickets are single
//!   use: `take` finds and removes a ticket in one critical section, so of several
//!   handshakes racing with one ticket at most one resumes. That is what makes 0-RTT
//!   data replay-safe with stateful tickets. A ticket supplied by the lookup callback is
//!   outside this guarantee: the callback must claim it atomically itself.
//!
//! A concrete case to keep in mind: **one cache shared by two `ServerConfig`s.** Say
//! config A requires client certificates and config B does not. A session made under B
//! can be offered to A; rustls checks the cipher suite and SNI of a resumed session, but
//! A's client-authentication policy is not re-run, so A would treat an unauthenticated
//! client as authenticated (nginx's CVE-2025-23419 is this). `tests/contexts.rs` shows it
//! happen with one store behind both. The answer is OpenSSL's session id context:
//! give each config whose requirements differ its own **resumption context**, a view of
//! the one cache ([`SessionCache::context`]), named by the application, one name per
//! client-authentication policy. (The crate does not derive names from a
//! `ClientCertVerifier`: what a verifier shows of itself, the issuers it hints to
//! clients, is not what it trusts or checks, so two policies could get one name.)
//! Sessions stored through a view resume only through a view of the same context; the cache itself is the default context. Views share capacity,
//! byte budget, eviction, expiry, statistics and callbacks. A config that requires client
//! certificates must have a context of its own.
//!
//! **Timeouts.** rustls never checks a session's age; this cache is what expires
//! sessions. A session past `created + timeout` is never returned, whatever the mode.
//! TLS 1.3 tickets advertise a 24 h lifetime to clients, but the cache's timeout (300 s
//! by default) is what holds. The lookup callback's sessions are checked the same way.
//!
//! # Cache modes
//!
//! See [`CacheMode`] for each bit's effect on TLS 1.2 and TLS 1.3. The man page's
//! "application decides" flow is `SERVER | NO_INTERNAL_STORE`: new sessions go only to
//! `on_new_session`; the application admits the ones it wants with `add_session` (or
//! hands them back from `lookup`), and only those resume.
//!
//! # Where we differ from OpenSSL
//!
//! - Eviction is least recently used, and a TLS 1.2 hit promotes. OpenSSL 3 evicts the
//!   session that expires soonest, and a hit never moves it.
//! - A cache of capacity N holds exactly N (OpenSSL 3 holds N−1). There is no unbounded
//!   mode: a zero capacity is a [`ConfigError`].
//! - `remove_session` calls `on_remove` only when something was removed (as BoringSSL).
//! - A session from the lookup callback whose id differs from the one asked for is
//!   ignored; OpenSSL never checks.
//! - An expired session found in the internal cache is counted as a timeout (not also a
//!   miss, as in OpenSSL) and then, unlike OpenSSL, the lookup callback is still asked.
//! - `try_set_timeout` applies to cached sessions without their own timeout too; OpenSSL
//!   stamps each session with the timeout current at its creation.
//! - `put` returns `false`, so rustls issues no TLS 1.3 ticket, when the session went
//!   nowhere: not stored (`NO_INTERNAL_STORE`) and no `on_new_session` took it.
//! - Sessions larger than [`SessionCacheBuilder::max_session_size`] are refused.
//! - The automatic sweep (every 256th new session, unless `NO_AUTO_CLEAR`) is bounded:
//!   it removes expired sessions from the least recently used end of one shard, at most
//!   256, and stops at the first live one. OpenSSL's list is sorted by expiry, so its
//!   sweep can stop there and still find every expired session; an LRU list is sorted by
//!   use, so an expired session that a TLS 1.2 hit promoted can sit behind a live one.
//!   It is never served (every lookup checks expiry), and it leaves on its lookup, on
//!   eviction, or with [`flush_expired`](SessionCache::flush_expired), the exact
//!   whole-cache pass, which the application calls when it wants one.
//!
//! # Sharding
//!
//! One shard (the default) is one mutex around one exact LRU. With
//! [`shards(n)`](SessionCacheBuilder::shards), ids are spread over n mutexes by SipHash
//! under a random key; capacity and byte budget are split and stay hard bounds on the
//! total, but eviction becomes LRU within each shard (see the builder for what that
//! costs).
//!
//! On 2 cores one mutex is enough: the critical section is a hash lookup and a few
//! pointer writes (about 100 ns), so two threads rarely meet in it. On 32 to 64 cores
//! handshakes still cost tens of microseconds of CPU each, so the cache sees perhaps a
//! million operations a second in all; at 100 ns each, one mutex would be held a tenth of
//! the time, and waiting threads would queue behind its cache line. Shards divide that:
//! with `shards(4 * cores)`, two threads collide rarely, and a shard's lock and LRU head
//! stay in one core's cache. The price is per-shard LRU, and one extra SipHash per
//! operation to pick the shard. rustls issue #2972 measured up to 5x from a
//! set-associative design with the same idea at its core: many small, independently
//! locked sets instead of one structure.
//!
//! # Costs
//!
//! - **Memory:** per cached session, the id (inline up to 32 bytes), the value in an
//!   exact-size buffer, 16 bytes of times, the LRU node's two links, and one hash-table
//!   slot (16 bytes plus a control byte, at most 7/8 full). For a 32-byte id and an
//!   83-byte value that is 88 + 83 bytes of allocations plus about 22 bytes of table at
//!   full capacity: 193 bytes a session, measured at 200,000 (`cargo bench --bench
//!   memory`). The whole table is allocated when the cache is built; under turnover it
//!   doubles once (see below), and the measured steady state is 216 bytes. The byte
//!   budget counts each session as id + value + 112 bytes (see
//!   [`SessionCacheBuilder::max_bytes`]).
//! - **Time:** `put`, `get`, `take`, `add_session` and `remove_session` are O(1): a hash
//!   lookup and a few list-pointer updates under one shard's mutex. Every 256th new
//!   session in a shard (unless `NO_AUTO_CLEAR`) also sweeps at most 256 expired
//!   sessions from that shard, in a critical section of its own.
//!   `flush_expired`, `clear` and `set_capacity` walk the cache, a shard at a time.
//! - **Allocation under the lock:** those five operations allocate nothing under the lock
//!   but the LRU node, which the `lru` crate allocates when a session enters a shard that
//!   is not full (a full shard reuses the evicted session's node) and frees when one
//!   leaves. What an operation fills under the lock is sized before it takes the lock:
//!   the buffer `get` copies a value into (128 bytes; for a longer value `get` makes room
//!   unlocked and looks again), the list of sessions a store evicts (inline for up to
//!   four, enough for a typical session even under a byte budget), the sweep's list
//!   (counted first), and the lists `flush_expired` and `clear` fill. Two exceptions:
//!   the hash table, allocated in full when the cache is built, is rebuilt inside one
//!   operation when deleted slots have used up its spare room; a full LRU is more than
//!   half full, so the first rebuild doubles the table (after which it has room to
//!   rebuild in place). Measured: once per run, within the first 100 turnovers of a
//!   256-session cache. And `set_capacity` rebuilds each shard's table under that shard's
//!   lock. (`flush_expired` also copies the ids it removes, which allocates for ids over
//!   32 bytes; rustls's are 32.)
//! - **Wiping, callbacks and logging** run after the mutex is released: what an operation
//!   removes is moved out under the lock and dropped, which wipes it, after `on_remove`
//!   has seen it.
//! - **Statistics** on the handshake path are plain counters in each shard, bumped
//!   under the lock the operation already holds: no atomic, no cache line every core
//!   writes. Rare events (callback hits, refusals, panics) use relaxed atomics.
//! - **Locks** are `parking_lot` mutexes, which spin briefly before parking and never
//!   poison. An operation holds one shard's lock at a time; a capacity change also holds
//!   the capacity's own lock (taken first, so changes apply one after the other), and
//!   `capacity()` waits for a change in progress.
//! - **Dropping** the cache wipes every session but calls no `on_remove`.
//!
//! # Features
//!
//! - `redis` (off by default): the `fleet` tier, one cache shared by many servers
//!   through Redis, with an acceptor that claims each TLS 1.3 ticket once in the whole
//!   fleet; and `FleetTicketer`, stateless tickets under keys the fleet shares and
//!   rotates through Redis. It adds `redis`, `tokio`, `tokio-rustls`,
//!   `chacha20poly1305`, `aes-gcm` and `hex` to the build; without it the core above has
//!   none of them and changes in no way.
//! - `metrics` (off by default): `metrics::SessionMetrics`, which publishes the
//!   statistics (and the fleet's) through the `metrics` facade from snapshots, so the
//!   store's operations cost the same with it as without; and a helper that counts
//!   handshakes by kind and version. It adds `metrics` to the build.
//!
//! # Logging
//!
//! Events use targets under `rustls_session_cache`: hits and misses at `trace`; stores,
//! removals and callback-supplied sessions at `debug`; refused settings at `warn`;
//! refused oversized sessions at `warn` too, but at most once per 10 s per cache, with a
//! `suppressed` count of the refusals not logged since; a panicking callback at `error`.
//! Nothing is logged at `info` on the handshake path.
//!
//! [rustls]: https://docs.rs/rustls

#![forbid(unsafe_code)]
#![forbid(unused_must_use)]
#![deny(missing_docs)]
#![warn(
    unreachable_pub,
    elided_lifetimes_in_paths,
    unused_qualifications,
    clippy::unwrap_used,
    clippy::expect_used
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod builder;
pub use builder::{
    DEFAULT_CAPACITY, DEFAULT_MAX_SESSION_SIZE, DEFAULT_TIMEOUT, MAX_TIMEOUT, SessionCacheBuilder,
};

mod cache;
pub use cache::SessionCache;

mod callbacks;
pub use callbacks::RemovalCause;

mod clock;

mod context;
pub use context::{ContextView, MAX_CONTEXT_NAME, MAX_CONTEXTS};

mod error;
pub use error::ConfigError;

#[cfg(feature = "redis")]
pub mod fleet;

#[cfg(feature = "metrics")]
pub mod metrics;

mod mode;
pub use mode::{CacheMode, ParseModeError};

mod rate_limit;

mod session;
pub use session::Session;

mod shard;

mod stats;
pub use stats::CacheStats;

mod store;

/// The rustls this crate implements [`rustls::server::StoresServerSessions`] for, so
/// applications can name the same version.
pub use rustls;

// The README's examples use the fleet tier too, so they run with the `redis` feature
// (as `.ci/run` does).
#[cfg(all(doctest, feature = "redis"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
