//! The fleet tier (feature `redis`): one session cache shared by many servers behind a
//! load balancer, through Redis, without ever blocking a handshake thread.
//!
//! A per-process cache resumes about 1/N of the sessions of N servers, since a client's
//! next connection usually reaches another server. A [`Fleet`] puts Redis behind the
//! local [`SessionCache`]:
//!
//! - **Two tiers.** The local cache (L1) answers every `put`, `get` and `take` rustls
//!   makes, synchronously. Redis (L2) is only reached from async code.
//! - **Write-behind.** A `put` lands in L1 at once and is queued, through a bounded
//!   queue, to a task that writes it to Redis with a TTL of its remaining lifetime. A
//!   full queue drops the write (counted); nothing ever waits for Redis in `put`.
//! - **Prefetch.** Before the handshake, [`Fleet::prefetch`] peeks at the ClientHello
//!   and fetches what L1 lacks, under a deadline (25 ms by default). A slow or absent
//!   Redis makes the handshake full; it never fails it and never delays it past the
//!   deadline.
//! - **Single-use tickets, fleet-wide.** A TLS 1.3 ticket resumes only where its `GETDEL`
//!   claim was won, even when L1 holds it: a ticket used on one server is refused on
//!   every other, and the reverse.
//! - **Encrypted at rest.** Redis only sees XChaCha20-Poly1305 ciphertexts under a fleet
//!   key, bound to their Redis key and session id ([`FleetKeys`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use rustls_session_cache::SessionCache;
//! use rustls_session_cache::fleet::{Fleet, FleetKeys};
//!
//! # async fn run(mut config: rustls::ServerConfig) -> Result<(), Box<dyn std::error::Error>> {
//! let fleet = Fleet::builder(SessionCache::new(20_480))
//!     .redis_url("redis://127.0.0.1:6379")
//!     .prefix("myservice")
//!     .keys(FleetKeys::from_file("/etc/myservice/fleet.keys")?)
//!     .build()?;
//! config.session_storage = fleet.clone();
//! let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let (fleet, acceptor) = (fleet.clone(), acceptor.clone());
//!     tokio::spawn(async move {
//!         fleet.prefetch(&tcp).await; // before rustls reads the ClientHello
//!         let _tls = acceptor.accept(tcp).await;
//!     });
//! }
//! # }
//! ```
//!
//! # When Redis is unreachable or partitioned
//!
//! - **Handshakes** go on, bounded by the deadline: each prefetch waits at most that
//!   long, then the handshake runs against L1 alone.
//! - **TLS 1.3 tickets** do not resume anywhere a claim cannot be made: every ticket
//!   offered is removed from L1 unless its `GETDEL` was answered with it. So a ticket is
//!   used at most once in the whole fleet, partition or not, and during the partition
//!   TLS 1.3 handshakes are full. When a server and Redis can talk again, tickets written
//!   before (and still within their TTL) resume again.
//! - **TLS 1.2 sessions** still resume from L1 on the server that made them (they are
//!   multi-use by design); other servers cannot fetch them until Redis is back.
//! - **New sessions** still land in L1; their writes fail, or fill the queue and are
//!   dropped, all counted. Those sessions then resume only on the server that made them
//!   (TLS 1.2), or nowhere (TLS 1.3: no claim can ever be won for a ticket never
//!   written).
//! - **The server starts** with Redis down, connects when it comes up, and reconnects by
//!   itself. Redis trouble is logged at `warn` at most every 10 s per kind.
//!
//! The guarantee needs every connection to pass through [`Fleet::prefetch`]: a handshake
//! that skips it resumes TLS 1.3 tickets from L1 without a claim.

mod client;
pub mod client_hello;
mod codec;
mod prefetch;

use core::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use rustls::server::StoresServerSessions;
use tokio::sync::{Semaphore, mpsc};

use self::client::{L2, write_behind};
pub use self::codec::{FleetKeys, KeyFileError};
pub use self::prefetch::Prefetch;
use crate::cache::SessionCache;
use crate::session::Session;
use crate::stats::{CacheStats, bump};

/// The default prefetch deadline: how long a handshake may wait for Redis.
pub const DEFAULT_PREFETCH_DEADLINE: Duration = Duration::from_millis(25);

/// A session cache shared by a fleet of servers: a local [`SessionCache`] (L1) in front
/// of Redis (L2). Plug it into `ServerConfig::session_storage` and call
/// [`prefetch`](Fleet::prefetch) with every connection. See the [module docs](self).
pub struct Fleet {
    l1: Arc<SessionCache>,
    l2: Arc<L2>,
    writes: mpsc::Sender<Session>,
    in_flight: Semaphore,
    config: Config,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    deadline: Duration,
    hello_timeout: Duration,
    max_identities: usize,
    tls13: bool,
}

impl Fleet {
    /// A builder for a fleet tier in front of `l1`.
    pub fn builder(l1: Arc<SessionCache>) -> FleetBuilder {
        FleetBuilder {
            l1,
            url: "redis://127.0.0.1:6379".into(),
            prefix: "rsc".into(),
            keys: None,
            deadline: DEFAULT_PREFETCH_DEADLINE,
            hello_timeout: Duration::from_secs(5),
            max_identities: 4,
            max_in_flight: 512,
            queue: 8192,
            tls13: true,
        }
    }

    /// The local cache.
    pub fn l1(&self) -> &Arc<SessionCache> {
        &self.l1
    }

    /// A snapshot of both tiers' statistics.
    pub fn stats(&self) -> FleetStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let c = &self.l2.counters;
        FleetStats {
            l1: self.l1.stats(),
            l2_hits: read(&c.l2_hits),
            l2_misses: read(&c.l2_misses),
            claims_won: read(&c.claims_won),
            claims_lost: read(&c.claims_lost),
            writes_queued: read(&c.writes_queued),
            writes_written: read(&c.writes_written),
            writes_dropped: read(&c.writes_dropped),
            decrypt_failures: read(&c.decrypt_failures),
            prefetch_timeouts: read(&c.prefetch_timeouts),
            prefetches_shed: read(&c.prefetches_shed),
            identities_shed: read(&c.identities_shed),
            redis_errors: read(&c.redis_errors),
        }
    }
}

impl StoresServerSessions for Fleet {
    /// Stores in L1 as [`SessionCache`] does, and queues the session for Redis when the
    /// mode caches new sessions. Returns whether either took it.
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mode = self.l1.mode();
        if !mode.caches_new_sessions() {
            return self.l1.put(key, value);
        }
        // One session for both tiers: L1 takes it, Redis gets a copy, unless it is too
        // large for L1 (which refuses it, counted), in which case neither does.
        let now = self.l1.clock.now_nanos();
        let session = Session::created_at_nanos(key, value, now);
        let for_redis = (session.len() <= self.l1.max_session_size()).then(|| session.clone());
        let stored = self.l1.put_session(session, mode, now);
        let Some(for_redis) = for_redis else {
            return stored;
        };
        let queued = match self.writes.try_send(for_redis) {
            Ok(()) => {
                bump(&self.l2.counters.writes_queued);
                true
            }
            Err(_) => {
                bump(&self.l2.counters.writes_dropped);
                false
            }
        };
        stored || queued
    }

    /// From L1, where [`Fleet::prefetch`] put what Redis had.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.l1.get(key)
    }

    /// From L1, where [`Fleet::prefetch`] put the tickets whose claims it won.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.l1.take(key)
    }

    fn can_cache(&self) -> bool {
        self.l1.can_cache()
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("l1", &self.l1)
            .field("keys", &self.l2.keys)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Fleet`].
#[must_use]
pub struct FleetBuilder {
    l1: Arc<SessionCache>,
    url: String,
    prefix: String,
    keys: Option<FleetKeys>,
    deadline: Duration,
    hello_timeout: Duration,
    max_identities: usize,
    max_in_flight: usize,
    queue: usize,
    tls13: bool,
}

impl FleetBuilder {
    /// Where Redis is; default `redis://127.0.0.1:6379`. `rediss://` (TLS) needs the
    /// `redis` crate's TLS feature in your build, e.g. `tokio-rustls-comp`.
    pub fn redis_url(self, url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..self
        }
    }

    /// The prefix of every Redis key, `PREFIX:hex(id)`; default `rsc`. Fleets that must
    /// not share sessions need different prefixes (or different keys).
    pub fn prefix(self, prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..self
        }
    }

    /// The fleet's encryption keys. Required.
    pub fn keys(self, keys: FleetKeys) -> Self {
        Self {
            keys: Some(keys),
            ..self
        }
    }

    /// How long a prefetch may wait for Redis; default
    /// [`DEFAULT_PREFETCH_DEADLINE`]. Must not be zero.
    pub fn prefetch_deadline(self, deadline: Duration) -> Self {
        Self { deadline, ..self }
    }

    /// How long a prefetch waits for a whole ClientHello; default 5 s.
    pub fn hello_timeout(self, timeout: Duration) -> Self {
        Self {
            hello_timeout: timeout,
            ..self
        }
    }

    /// The most TLS 1.3 tickets claimed per ClientHello; default 4. Clients offer one,
    /// so more are likely hostile: the rest are shed (counted, and refused in L1).
    pub fn max_identities(self, n: usize) -> Self {
        Self {
            max_identities: n,
            ..self
        }
    }

    /// The most prefetches waiting on Redis at once; default 512. Beyond that a prefetch
    /// is shed (counted) and its handshake is full. Must not be zero.
    pub fn max_in_flight(self, n: usize) -> Self {
        Self {
            max_in_flight: n,
            ..self
        }
    }

    /// The write-behind queue's length; default 8192. Must not be zero.
    pub fn write_queue(self, n: usize) -> Self {
        Self { queue: n, ..self }
    }

    /// Whether the servers offer TLS 1.3; default `true`. When they do, a ClientHello
    /// that offers TLS 1.3 carries a random legacy session id, not a TLS 1.2 session to
    /// fetch.
    pub fn tls13(self, enabled: bool) -> Self {
        Self {
            tls13: enabled,
            ..self
        }
    }

    /// Checks the configuration, and starts the write-behind task on the current tokio
    /// runtime. Redis need not be up: the connection is made when first needed, and
    /// again whenever it is lost.
    ///
    /// # Errors
    ///
    /// [`FleetError`] for missing keys, a malformed Redis URL, a zero limit, or no tokio
    /// runtime to run on.
    pub fn build(self) -> Result<Arc<Fleet>, FleetError> {
        let keys = self.keys.ok_or(FleetError::NoKeys)?;
        for (value, name) in [
            (self.queue, "write_queue"),
            (self.max_in_flight, "max_in_flight"),
            (self.deadline.as_nanos() as usize, "prefetch_deadline"),
        ] {
            if value == 0 {
                return Err(FleetError::Zero(name));
            }
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| FleetError::NoRuntime)?;
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| FleetError::RedisUrl(e.to_string()))?;
        let wait = self.deadline.max(Duration::from_millis(200));
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(wait))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = {
            let _entered = runtime.enter();
            client
                .get_connection_manager_lazy(manager_config)
                .map_err(|e| FleetError::RedisUrl(e.to_string()))?
        };
        let l2 = Arc::new(L2::new(conn, self.prefix, keys));
        let (writes, queue) = mpsc::channel(self.queue);
        runtime.spawn(write_behind(l2.clone(), self.l1.clone(), queue));
        Ok(Arc::new(Fleet {
            l1: self.l1,
            l2,
            writes,
            in_flight: Semaphore::new(self.max_in_flight),
            config: Config {
                deadline: self.deadline,
                hello_timeout: self.hello_timeout,
                max_identities: self.max_identities,
                tls13: self.tls13,
            },
        }))
    }
}

impl fmt::Debug for FleetBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetBuilder")
            .field("prefix", &self.prefix)
            .field("keys", &self.keys)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// A fleet configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetError {
    /// No [`FleetKeys`]: sessions are never stored in Redis unencrypted.
    NoKeys,
    /// The Redis URL could not be used.
    RedisUrl(String),
    /// A limit that must not be zero was zero.
    Zero(&'static str),
    /// `build` was called outside a tokio runtime.
    NoRuntime,
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoKeys => f.write_str("the fleet tier needs encryption keys (FleetKeys)"),
            Self::RedisUrl(e) => write!(f, "bad Redis URL: {e}"),
            Self::Zero(name) => write!(f, "{name} must not be zero"),
            Self::NoRuntime => f.write_str("the fleet tier must be built inside a tokio runtime"),
        }
    }
}

impl std::error::Error for FleetError {}

/// A snapshot of both tiers' counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetStats {
    /// The local cache's.
    pub l1: CacheStats,
    /// Sessions fetched from Redis and used (TLS 1.2 fetches and TLS 1.3 claims won).
    pub l2_hits: u64,
    /// Sessions looked for in Redis and not found (or expired, or failing to open).
    pub l2_misses: u64,
    /// TLS 1.3 tickets claimed with `GETDEL`.
    pub claims_won: u64,
    /// TLS 1.3 tickets held in L1 whose claim was lost (another server used them, or
    /// they were never written): refused.
    pub claims_lost: u64,
    /// Writes queued for Redis.
    pub writes_queued: u64,
    /// Writes Redis acknowledged.
    pub writes_written: u64,
    /// Writes dropped: the queue was full, or Redis failed or timed out.
    pub writes_dropped: u64,
    /// Entries in Redis that did not authenticate under any key: treated as misses.
    pub decrypt_failures: u64,
    /// Prefetches that Redis did not answer within the deadline.
    pub prefetch_timeouts: u64,
    /// Prefetches not made because too many were in flight.
    pub prefetches_shed: u64,
    /// TLS 1.3 identities not claimed: over the per-hello cap, too long, or shed.
    pub identities_shed: u64,
    /// Redis errors (failed commands), of every kind.
    pub redis_errors: u64,
}
