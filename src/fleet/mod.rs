//! The fleet tier (feature `redis`): one session cache shared by many servers behind a
//! load balancer, through Redis, without ever blocking a handshake thread.
//!
//! A per-process cache resumes about 1/N of the sessions of N servers, since a client's
//! next connection usually reaches another server. A [`Fleet`] puts Redis behind the
//! local [`SessionCache`] (L1), and a [`FleetAcceptor`] takes connections through it:
//!
//! 1. **accept** ([`FleetAcceptor::accept`]): rustls reads the ClientHello; the acceptor
//!    keeps a copy of the bytes rustls read, and takes from them the session id and the
//!    ticket identities offered;
//! 2. **claim or fetch**: a TLS 1.2 session L1 lacks is fetched from Redis into L1; each
//!    TLS 1.3 ticket is *claimed*, once in the whole fleet;
//! 3. **store**: rustls finishes the handshake against the fleet, which answers from L1
//!    (TLS 1.2) and from the connection's claims (TLS 1.3). New sessions land in L1 at
//!    once, and reach Redis from a write-behind queue.
//!
//! ```no_run
//! use std::sync::Arc;
//! use rustls_session_cache::SessionCache;
//! use rustls_session_cache::fleet::{Fleet, FleetKeys};
//!
//! # async fn run(config: rustls::ServerConfig) -> Result<(), Box<dyn std::error::Error>> {
//! let fleet = Fleet::builder(SessionCache::new(20_480))
//!     .redis_url("redis://127.0.0.1:6379")
//!     .prefix("myservice")
//!     .keys(FleetKeys::from_file("/etc/myservice/fleet.keys")?)
//!     .build()?;
//! let acceptor = fleet.acceptor(Arc::new(config)); // the fleet becomes its session store
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let acceptor = acceptor.clone();
//!     tokio::spawn(async move {
//!         let _tls = acceptor.accept(tcp).await;
//!     });
//! }
//! # }
//! ```
//!
//! # Single use, exactly
//!
//! A TLS 1.3 ticket resumes at most once in the whole fleet, whichever servers it is
//! offered to, however often, in whatever framing. This is what makes 0-RTT data
//! replay-safe with stateful tickets. It holds by construction:
//!
//! - `Fleet::take`, which rustls calls to resume a ticket, never reads L1 or Redis. It
//!   hands out only a ticket the acceptor *claimed* for the connection being
//!   handshaken, and each claim once.
//! - A claim is won by a `GETDEL` that returned the ticket (Redis runs it atomically:
//!   of all the servers asking, one gets the value), or locally, for a ticket issued
//!   here whose write to Redis had not been sent: the write is cancelled, so no other
//!   server can ever see it. A write already being sent is waited for before the
//!   `GETDEL`, so the `SET` is ahead of it in Redis.
//!
//! Every other way ends in a full handshake: a connection accepted without a
//! [`FleetAcceptor`], a ClientHello the acceptor cannot follow (or whose offer is not
//! the one rustls parsed), a claim lost to another server, a ticket over the per-hello
//! cap, a lookup shed because too many are waiting, a Redis that is slow, down or
//! partitioned away, and a ticket whose write never landed.
//!
//! What it does not cover: a ticket handed out by the lookup callback (then single use
//! is the callback's job, as with [`SessionCache`]); sessions under a
//! `ServerConfig::ticketer` (stateless tickets never touch the store; rustls refuses
//! 0-RTT with them); a ticket the application hands back with [`Fleet::add_session`]
//! after it was used (that makes it claimable again); and, on a Redis Cluster with
//! `claim_replicas(0)`, a master that dies after answering a `GETDEL` and before
//! replicating it (see [`FleetBuilder::claim_replicas`]); and a ticket put through the
//! fleet on a connection its acceptor did not take. Then the fleet cannot know the
//! version, so the session goes to L1 as well as Redis; the fleet's own `take` still
//! never reads L1, but a plain store over the same L1 and context (the L1 itself, or a
//! [`SessionCache::context`] view, behind another `ServerConfig`) could resume it there
//! while another server claims the Redis copy. Take every connection of a fleet's
//! configs with its acceptor, and give no plain store the fleet's contexts. TLS 1.2
//! sessions are multi-use by design.
//!
//! A known limitation: TLS 1.2 session ids are sent in the clear, and one offered as a
//! TLS 1.3 ticket identity is claimed (deleted) like a ticket, as rustls's own store
//! deletes what it `take`s. Whoever sees a TLS 1.2 session id can so end its
//! resumption on the servers that have not fetched it yet: a full handshake for its
//! client, never a resumption for anyone without the secret.
//!
//! # Stateless tickets instead
//!
//! [`FleetTicketer`] is the other way for a fleet to resume: a `ServerConfig::ticketer`
//! whose ticket keys every server shares, rotated through the same Redis. Resumption
//! then needs no lookup, but its tickets are not single use; its docs say which to
//! choose when. With a ticketer, the acceptor claims no TLS 1.3 tickets (rustls never
//! asks the store for them) and fetches no session for a TLS 1.2 hello that carries a
//! ticket.
//!
//! # Redis, one node or a cluster
//!
//! [`FleetBuilder::redis_url`] names one Redis; [`FleetBuilder::redis_cluster`] the seed
//! nodes of a Redis Cluster, reached through the `redis` crate's cluster client. Commands
//! go out as one pipeline per hash slot, so a slot without a master (while a replica is
//! being promoted) fails alone: its sessions give full handshakes, within the deadline,
//! and resume again once the cluster has a master for it.
//!
//! # Cache modes, fleet-wide
//!
//! The L1 cache's [`CacheMode`] governs Redis too:
//! - `SERVER` (default): new sessions go to L1 and to Redis;
//! - `NO_INTERNAL_STORE`: new sessions go to `on_new_session` only; the ones the
//!   application admits with [`Fleet::add_session`] go to L1 and Redis;
//! - `NO_INTERNAL_LOOKUP`: nothing resumes from L1 or Redis (nothing is fetched or
//!   claimed), only through the lookup callback;
//! - `OFF` (no `SERVER`): new sessions are stored nowhere.
//!
//! `put` returns what [`SessionCache`] returns for the same mode: for TLS 1.3, whether
//! rustls issues the ticket.
//!
//! # When Redis is unreachable or partitioned
//!
//! - **Handshakes** go on, bounded by the fetch deadline: each waits at most that
//!   long, then runs against L1 and its claims.
//! - **TLS 1.3 tickets** resume only where a claim is won: a ticket issued here and not
//!   yet sent to Redis still resumes here, once; the others give full handshakes. When a
//!   server and Redis can talk again, tickets written before (and still within their
//!   TTL) resume again.
//! - **TLS 1.2 sessions** still resume from L1 on the server that made them; other
//!   servers cannot fetch them until Redis is back.
//! - **New sessions** still land in L1; their writes fail, or fill the queue and are
//!   dropped, all counted.
//! - **The server starts** with Redis down, connects when it comes up, and reconnects by
//!   itself. Redis trouble is logged at `warn` at most every 10 s.

mod accept;
mod builder;
mod claims;
#[doc(hidden)]
pub mod client_hello;
mod codec;
mod context;
mod fetch;
mod stats;
mod store;
mod tap;
mod tickets;
mod write_behind;

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::StoresServerSessions;
use rustls::{ProtocolVersion, ServerConfig};
use tokio::sync::Semaphore;

pub use self::accept::FleetAcceptor;
pub use self::builder::{DEFAULT_FETCH_DEADLINE, DEFAULT_HELLO_TIMEOUT, FleetBuilder, FleetError};
use self::claims::Owner;
pub use self::codec::{FleetKeys, KeyFileError};
pub use self::context::FleetContext;
use self::context::Scope;
pub use self::fetch::Prepared;
use self::stats::Counters;
pub use self::stats::FleetStats;
use self::store::Store;
pub use self::tap::HelloTap;
pub use self::tickets::{
    ContextTicketer, DEFAULT_MAX_SKEW, DEFAULT_ROTATION, FleetTicketer, FleetTicketerBuilder,
    TicketStats,
};
use self::write_behind::WriteQueue;
use crate::CacheMode;
use crate::cache::{SessionCache, Stored};
use crate::session::{Id, Session};
use crate::stats::bump;

/// How long [`Fleet::remove_session`] waits for Redis.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(2);

/// A session cache shared by a fleet of servers: a local [`SessionCache`] (L1) in front
/// of Redis (L2). Take connections with its [`acceptor`](Fleet::acceptor). See the
/// [module docs](self).
pub struct Fleet {
    /// Tells this fleet's claims from another's in the same process.
    id: u64,
    l1: Arc<SessionCache>,
    store: Store,
    keys: Arc<FleetKeys>,
    counters: Arc<Counters>,
    writes: Arc<WriteQueue>,
    in_flight: Semaphore,
    config: Config,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    deadline: Duration,
    hello_timeout: Duration,
    max_identities: usize,
}

impl Fleet {
    /// A builder for a fleet tier in front of `l1`.
    pub fn builder(l1: Arc<SessionCache>) -> FleetBuilder {
        FleetBuilder::new(l1)
    }

    /// An acceptor for connections served with `config`, whose session store it makes
    /// this fleet (on a copy of `config`, if its store is another).
    pub fn acceptor(self: &Arc<Self>, config: Arc<ServerConfig>) -> FleetAcceptor {
        FleetAcceptor::new(self.clone(), Scope::default(), self.clone(), config)
    }

    /// The local cache.
    pub fn l1(&self) -> &Arc<SessionCache> {
        &self.l1
    }

    /// Adds a session the application holds, to L1 (with
    /// [`SessionCache::add_session`]'s rules and return value) and, unless L1 refused it
    /// as oversized, to Redis, through the write-behind queue. This is how sessions
    /// reach the fleet under `NO_INTERNAL_STORE`. The session goes into the resumption
    /// context it names ([`Session::context`]).
    pub fn add_session(&self, session: Session) -> bool {
        match self.scope_of(session.context()) {
            Some(scope) => self.add_session_in(&scope, session),
            None => false,
        }
    }

    /// Removes the session with this id, in the default context, everywhere: from L1,
    /// from the write queue, and from Redis (after any write of it being sent has
    /// landed). Returns whether it was found in any of them.
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`] or [`FleetError::Timeout`] (after 2 s) if Redis could not be
    /// asked; the session is gone from L1 and the queue all the same.
    pub async fn remove_session(&self, id: &[u8]) -> Result<bool, FleetError> {
        self.remove_session_in(&Scope::default(), id).await
    }

    /// A snapshot of both tiers' statistics.
    pub fn stats(&self) -> FleetStats {
        self.counters.snapshot(self.l1.stats(), self.writes.len())
    }

    /// Where the claim or fetch round trips are recorded.
    #[cfg(feature = "metrics")]
    pub(crate) fn round_trips(&self) -> &stats::RoundTrips {
        &self.counters.round_trips
    }

    /// The scope of the context `name` names, registered in L1 if new.
    fn scope_of(&self, name: Option<&str>) -> Option<Scope> {
        let context = self.l1.contexts.of(name)?;
        Some(Scope {
            context,
            name: self.l1.contexts.name(context),
        })
    }

    pub(crate) fn add_session_in(&self, scope: &Scope, mut session: Session) -> bool {
        session.id.set_context(scope.context);
        session.context = scope.name.clone();
        let update_time = self.l1.mode().updates_time();
        let session = match update_time {
            true => session.restamped(self.l1.clock.now_nanos()),
            false => session,
        };
        // As `SessionCache::add_session`: an identical session held gets the new time.
        let stored = self.l1.insert(session.clone(), update_time);
        if stored != Stored::Refused {
            self.queue(session);
        }
        stored == Stored::Changed
    }

    pub(crate) async fn remove_session_in(
        &self,
        scope: &Scope,
        id: &[u8],
    ) -> Result<bool, FleetError> {
        let in_l1 = self.l1.remove_session_in(scope.context, id);
        let l1_key = Id::new(scope.context, id);
        let pending = self.writes.cancel(l1_key.key());
        if pending.sending {
            let landed = tokio::time::timeout(REMOVE_TIMEOUT, self.writes.landed(l1_key.key()));
            landed.await.map_err(|_| FleetError::Timeout)?;
        }
        let queued = pending.cancelled.is_some();
        if queued {
            bump(&self.counters.writes_cancelled);
        }
        let key = self.store.key(scope.name.as_deref(), id);
        let in_redis = tokio::time::timeout(REMOVE_TIMEOUT, self.store.delete(&key))
            .await
            .map_err(|_| FleetError::Timeout)?
            .map_err(FleetError::redis)?;
        Ok(in_l1 || queued || in_redis)
    }

    /// Queues `session` for Redis; counts a full queue as a dropped write. Whether it
    /// was queued.
    fn queue(&self, session: Session) -> bool {
        let queued = self.writes.push(session);
        bump(match queued {
            true => &self.counters.writes_queued,
            false => &self.counters.writes_dropped,
        });
        queued
    }

    /// `put` into `scope`: see [`Fleet`]'s `put`.
    pub(crate) fn put_in(&self, scope: &Scope, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mode = self.l1.mode();
        if !(mode.caches_new_sessions() && mode.stores_internally()) {
            return self
                .l1
                .put_in(scope.context, scope.name.as_ref(), key, value);
        }
        let now = self.l1.clock.now_nanos();
        let mut session = Session::created_at_nanos(key, value, now);
        session.id.set_context(scope.context);
        session.context = scope.name.clone();
        if session.len() > self.l1.max_session_size() {
            return self.l1.put_session(session, mode, now); // refused, counted
        }
        if claims::version(self.owner(scope)) == Some(ProtocolVersion::TLSv1_3) {
            let handed =
                self.l1
                    .put_session(session.clone(), mode | CacheMode::NO_INTERNAL_STORE, now);
            return self.queue(session) || handed;
        }
        // One session for both tiers: L1 takes it, Redis gets a copy.
        let for_redis = session.clone();
        let stored = self.l1.put_session(session, mode, now);
        if stored {
            self.queue(for_redis);
        }
        stored
    }

    /// `take` in `scope`: see [`Fleet`]'s `take`.
    pub(crate) fn take_in(&self, scope: &Scope, key: &[u8]) -> Option<Vec<u8>> {
        // One read of the mode: a `set_mode` racing this call cannot send it to L1.
        if !self.l1.mode().looks_up_internally() {
            return self.l1.take_from_callback(scope.context, key);
        }
        match claims::redeem(self.owner(scope), key) {
            Some(mut ticket) => {
                bump(&self.counters.claims_redeemed);
                Some(ticket.take_value())
            }
            None => self.l1.take_from_callback(scope.context, key),
        }
    }

    /// Whose claims a handshake in `scope` redeems.
    pub(crate) fn owner(&self, scope: &Scope) -> Owner {
        (self.id, scope.context.0)
    }
}

impl StoresServerSessions for Fleet {
    /// As [`SessionCache`]'s `put`, with the same return value, and the session stored
    /// is queued for Redis too. Under `NO_INTERNAL_STORE` nothing is queued: the
    /// application admits sessions with [`Fleet::add_session`].
    ///
    /// A TLS 1.3 ticket issued on a connection the acceptor took skips L1: it can resume
    /// only through a claim, which comes from the write queue or Redis, so a copy in L1
    /// would only take room from TLS 1.2 sessions. It counts as stored once queued (or
    /// taken by `on_new_session`); when the queue is full, `put` returns `false` and
    /// rustls issues no ticket that could never resume.
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.put_in(&Scope::default(), key, value)
    }

    /// TLS 1.2 resumption: from L1, where the acceptor put what Redis had.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.l1.get(key)
    }

    /// TLS 1.3 resumption: only a ticket the acceptor claimed for this connection, once.
    /// Never from L1 or Redis directly; without a claim, only the lookup callback is
    /// asked. Under `NO_INTERNAL_LOOKUP`, as [`SessionCache`]: the callback alone.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.take_in(&Scope::default(), key)
    }

    fn can_cache(&self) -> bool {
        self.l1.can_cache()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // The writer finishes what is queued, then ends.
        self.writes.close();
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("l1", &self.l1)
            .field("keys", &self.keys)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
