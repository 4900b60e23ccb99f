//! [`FleetBuilder`]: the fleet's settings, their defaults and bounds, and
//! [`FleetError`].

use core::fmt;
use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::codec::FleetKeys;
use super::stats::Counters;
use super::store::{Store, Target};
use super::write_behind::{WriteQueue, Writer, write_behind};
use super::{Config, Fleet};
use crate::cache::SessionCache;

/// The default fetch deadline: how long a handshake may wait for Redis.
pub const DEFAULT_FETCH_DEADLINE: Duration = Duration::from_millis(25);

/// The default hello timeout: how long the acceptor waits for a whole ClientHello.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Bounds on the count settings: `(setting, default, min, max)`.
const WRITE_QUEUE: (&str, usize, usize, usize) = ("write_queue", 8192, 1, 1 << 20);
const MAX_IN_FLIGHT: (&str, usize, usize, usize) = ("max_in_flight", 512, 1, 65_536);
const MAX_IDENTITIES: (&str, usize, usize, usize) = ("max_identities", 4, 0, 16);
const CLAIM_REPLICAS: (&str, usize, usize, usize) = ("claim_replicas", 0, 0, 8);
const SEEDS: (&str, usize, usize, usize) = ("redis_cluster seeds", 1, 1, 64);

/// Bounds on the durations: `(setting, min, max)`.
const FETCH_DEADLINE: (&str, Duration, Duration) = (
    "fetch_deadline",
    Duration::from_millis(1),
    Duration::from_secs(10),
);
const HELLO_TIMEOUT: (&str, Duration, Duration) = (
    "hello_timeout",
    Duration::from_millis(1),
    Duration::from_secs(300),
);

/// The longest key prefix.
const MAX_PREFIX: usize = 64;

/// Configures a [`Fleet`]. Every setting has a default and bounds, which
/// [`build`](Self::build) checks.
///
/// ```no_run
/// use std::time::Duration;
/// use rustls_session_cache::SessionCache;
/// use rustls_session_cache::fleet::{Fleet, FleetKeys};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder(SessionCache::new(20_480))
///     .redis_url("redis://10.0.0.5:6379")
///     .prefix("shop-frontend")
///     .keys(FleetKeys::from_file("/etc/shop/fleet.keys")?)
///     .fetch_deadline(Duration::from_millis(10))
///     .build()?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct FleetBuilder {
    l1: Arc<SessionCache>,
    target: Target,
    prefix: String,
    keys: Option<FleetKeys>,
    deadline: Duration,
    hello_timeout: Duration,
    max_identities: usize,
    max_in_flight: usize,
    write_queue: usize,
    claim_replicas: usize,
}

impl FleetBuilder {
    pub(crate) fn new(l1: Arc<SessionCache>) -> Self {
        Self {
            l1,
            target: Target::Single("redis://127.0.0.1:6379".into()),
            prefix: "rsc".into(),
            keys: None,
            deadline: DEFAULT_FETCH_DEADLINE,
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            max_identities: MAX_IDENTITIES.1,
            max_in_flight: MAX_IN_FLIGHT.1,
            write_queue: WRITE_QUEUE.1,
            claim_replicas: CLAIM_REPLICAS.1,
        }
    }

    /// Where Redis is, a single node; default `redis://127.0.0.1:6379`. `rediss://`
    /// (TLS) needs the `redis` crate's TLS feature in your build, e.g.
    /// `tokio-rustls-comp`.
    pub fn redis_url(self, url: impl Into<String>) -> Self {
        Self {
            target: Target::Single(url.into()),
            ..self
        }
    }

    /// A Redis Cluster instead, found through these seed nodes (`redis://host:port`
    /// URLs, as many as you like): any one that answers is enough to learn the topology,
    /// at start or after a failover. The `redis` crate's cluster client routes each
    /// command to the master of its key's slot, follows `MOVED` and `ASK`, and refreshes
    /// the slot map by itself.
    ///
    /// ```no_run
    /// # use rustls_session_cache::{SessionCache, fleet::{Fleet, FleetKeys}};
    /// # async fn run(keys: FleetKeys) -> Result<(), rustls_session_cache::fleet::FleetError> {
    /// let fleet = Fleet::builder(SessionCache::new(20_480))
    ///     .redis_cluster(["redis://10.0.0.5:7000", "redis://10.0.0.6:7000"])
    ///     .keys(keys)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn redis_cluster<S: Into<String>>(self, seeds: impl IntoIterator<Item = S>) -> Self {
        Self {
            target: Target::Cluster(seeds.into_iter().map(Into::into).collect()),
            ..self
        }
    }

    /// How many replicas must acknowledge a TLS 1.3 claim before it counts; default 0,
    /// at most 8. With `n > 0` each claim's `GETDEL` is followed by `WAIT n` (bounded by
    /// what is left of the fetch deadline) on the same master, and a claim fewer replicas
    /// acknowledged gives a full handshake (counted in `claims_unreplicated`).
    ///
    /// Why: replication is asynchronous. With 0, a master that acknowledges a `GETDEL`
    /// and dies before replicating it leaves the ticket alive on the replica promoted in
    /// its place, and a replay of the ticket there wins a second claim. With `n`, a
    /// ticket resumes only once `n` replicas have deleted it too; what can still happen
    /// is the promotion of a replica that was not among them (with more replicas than
    /// `n`), or the loss of all `n` with the master. Redis promotes the replica with the
    /// most replication progress, which is one that acknowledged, when any survives. The
    /// cost is one replication round trip per resumption: see the fleet benchmark.
    ///
    /// Redis checks `WAIT`'s timeout on its own clock, about every 100 ms at its default
    /// `hz` of 10: with a shorter fetch deadline, a claim no replica acknowledges ends as
    /// a fetch timeout rather than in `claims_unreplicated`. Either way it does not count.
    pub fn claim_replicas(self, n: usize) -> Self {
        Self {
            claim_replicas: n,
            ..self
        }
    }

    /// The prefix of every Redis key, `PREFIX:hex(context):hex(id)`; default `rsc`. 1 to 64 printable
    /// ASCII characters, no spaces and no braces (a cluster hash tag). Fleets that must not share sessions need different
    /// prefixes (or different keys).
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

    /// How long a connection may wait for Redis before its handshake (a fetch or a claim,
    /// and any write of the same ticket it must wait for); default
    /// [`DEFAULT_FETCH_DEADLINE`]. From 1 ms to 10 s. Past it, the handshake is full.
    pub fn fetch_deadline(self, deadline: Duration) -> Self {
        Self { deadline, ..self }
    }

    /// How long the acceptor waits for a whole ClientHello; default
    /// [`DEFAULT_HELLO_TIMEOUT`]. From 1 ms to 300 s. Past it, the connection is
    /// dropped, as a handshake timeout would.
    pub fn hello_timeout(self, timeout: Duration) -> Self {
        Self {
            hello_timeout: timeout,
            ..self
        }
    }

    /// The most TLS 1.3 tickets claimed per ClientHello; default 4, at most 16. Clients
    /// offer one, so more are likely hostile: the rest are not claimed (counted), and
    /// cannot resume. 0 claims none: TLS 1.3 then never resumes.
    pub fn max_identities(self, n: usize) -> Self {
        Self {
            max_identities: n,
            ..self
        }
    }

    /// The most connections waiting on Redis at once; default 512, from 1 to 65,536.
    /// Beyond that a connection's lookups are shed (counted) and its handshake is full.
    pub fn max_in_flight(self, n: usize) -> Self {
        Self {
            max_in_flight: n,
            ..self
        }
    }

    /// The most writes waiting for Redis; default 8192, from 1 to 1,048,576. Beyond that
    /// new sessions stay local (counted in `writes_dropped`).
    pub fn write_queue(self, n: usize) -> Self {
        Self {
            write_queue: n,
            ..self
        }
    }

    /// Checks the configuration, and starts the write-behind task on the current tokio
    /// runtime. Redis need not be up: the connection is made when first needed, and
    /// again whenever it is lost.
    ///
    /// # Errors
    ///
    /// [`FleetError`] for missing keys, a malformed Redis URL or prefix, a setting out of
    /// its bounds, or no tokio runtime to run on. A runtime without timers is found out
    /// by making one, which tokio refuses with a panic: it is caught and reported as
    /// [`FleetError::NoRuntime`], but the panic hook has printed its message by then.
    pub fn build(self) -> Result<Arc<Fleet>, FleetError> {
        let keys = self.keys.ok_or(FleetError::NoKeys)?;
        for (value, limit) in [
            (self.write_queue, WRITE_QUEUE),
            (self.max_in_flight, MAX_IN_FLIGHT),
            (self.max_identities, MAX_IDENTITIES),
            (self.claim_replicas, CLAIM_REPLICAS),
        ] {
            check_limit(value, limit)?;
        }
        check_target(&self.target)?;
        check_duration(self.deadline, FETCH_DEADLINE)?;
        check_duration(self.hello_timeout, HELLO_TIMEOUT)?;
        check_prefix(&self.prefix)?;
        let runtime = runtime_with_timers()?;
        let store = {
            let _entered = runtime.enter();
            let connect_timeout = self.deadline.max(Duration::from_millis(200));
            Store::open(
                &self.target,
                self.prefix,
                connect_timeout,
                self.claim_replicas,
            )?
        };
        let keys = Arc::new(keys);
        let counters = Arc::new(Counters::default());
        let writes = Arc::new(WriteQueue::new(self.write_queue));
        let warming = store.clone();
        runtime.spawn(async move { warming.warm_up().await });
        runtime.spawn(write_behind(Writer {
            queue: writes.clone(),
            store: store.clone(),
            keys: keys.clone(),
            counters: counters.clone(),
            l1: self.l1.clone(),
        }));
        static FLEETS: AtomicU64 = AtomicU64::new(1);
        Ok(Arc::new(Fleet {
            id: FLEETS.fetch_add(1, Ordering::Relaxed),
            l1: self.l1,
            store,
            keys,
            counters,
            writes,
            in_flight: Semaphore::new(self.max_in_flight),
            config: Config {
                deadline: self.deadline,
                hello_timeout: self.hello_timeout,
                max_identities: self.max_identities,
            },
        }))
    }
}

/// The current tokio runtime, if it has timers.
pub(super) fn runtime_with_timers() -> Result<tokio::runtime::Handle, FleetError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| FleetError::NoRuntime)?;
    // tokio has no way to ask whether a runtime has timers but to make one, which
    // panics without them (the acceptor's deadlines would, once per connection).
    let timers = std::panic::catch_unwind(|| {
        let _entered = runtime.enter();
        drop(tokio::time::sleep(Duration::ZERO));
    });
    match timers {
        Ok(()) => Ok(runtime),
        Err(_) => Err(FleetError::NoRuntime),
    }
}

/// Checks that a duration setting is within `(setting, min, max)`.
pub(super) fn check_duration(
    value: Duration,
    (setting, min, max): (&'static str, Duration, Duration),
) -> Result<(), FleetError> {
    match (min..=max).contains(&value) {
        true => Ok(()),
        false => Err(FleetError::DurationOutOfRange {
            setting,
            value,
            min,
            max,
        }),
    }
}

/// Checks the number of Redis nodes named.
pub(super) fn check_target(target: &Target) -> Result<(), FleetError> {
    check_limit(target.nodes(), SEEDS)
}

/// Checks that a count setting is within `(setting, default, min, max)`.
fn check_limit(
    value: usize,
    (setting, _, min, max): (&'static str, usize, usize, usize),
) -> Result<(), FleetError> {
    match (min..=max).contains(&value) {
        true => Ok(()),
        false => Err(FleetError::LimitOutOfRange {
            setting,
            value,
            min,
            max,
        }),
    }
}

pub(super) fn check_prefix(prefix: &str) -> Result<(), FleetError> {
    let reason = if prefix.is_empty() {
        "it is empty"
    } else if prefix.len() > MAX_PREFIX {
        "it is longer than 64 bytes"
    } else if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        "it has a character that is not printable ASCII, or a space"
    } else if prefix.contains(['{', '}']) {
        "it has a brace: on a cluster, a hash tag would put every session in one slot"
    } else {
        return Ok(());
    };
    Err(FleetError::BadPrefix { reason })
}

impl fmt::Debug for FleetBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetBuilder")
            .field("prefix", &self.prefix)
            .field("keys", &self.keys)
            .field("deadline", &self.deadline)
            .field("hello_timeout", &self.hello_timeout)
            .field("max_identities", &self.max_identities)
            .field("max_in_flight", &self.max_in_flight)
            .field("write_queue", &self.write_queue)
            .field("claim_replicas", &self.claim_replicas)
            .finish_non_exhaustive()
    }
}

/// A fleet configuration that cannot work, or a fleet operation that failed.
///
/// ```
/// use rustls_session_cache::SessionCache;
/// use rustls_session_cache::fleet::{Fleet, FleetError, FleetKeys};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let err = Fleet::builder(SessionCache::new(16))
///     .keys(FleetKeys::new([[7; 32]]).unwrap())
///     .max_in_flight(usize::MAX)
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, FleetError::LimitOutOfRange { setting: "max_in_flight", .. }));
/// assert_eq!(err.to_string(), format!("max_in_flight is {}: it must be from 1 to 65536", usize::MAX));
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum FleetError {
    /// No [`FleetKeys`]: sessions are never stored in Redis unencrypted.
    NoKeys,
    /// The Redis URL could not be used; the `source` says why.
    RedisUrl {
        /// What the `redis` crate said.
        source: Box<dyn Error + Send + Sync>,
    },
    /// A count setting out of its bounds.
    LimitOutOfRange {
        /// The setting, named as its builder method.
        setting: &'static str,
        /// The value given.
        value: usize,
        /// The smallest value allowed.
        min: usize,
        /// The largest value allowed.
        max: usize,
    },
    /// A duration setting out of its bounds.
    DurationOutOfRange {
        /// The setting, named as its builder method.
        setting: &'static str,
        /// The value given.
        value: Duration,
        /// The shortest allowed.
        min: Duration,
        /// The longest allowed.
        max: Duration,
    },
    /// A key prefix that cannot be used.
    BadPrefix {
        /// Why.
        reason: &'static str,
    },
    /// `build` was called outside a tokio runtime, or in one without timers
    /// (`enable_time`, or `enable_all`).
    NoRuntime,
    /// Redis failed to carry out an operation; the `source` says why.
    Redis {
        /// What the `redis` crate said.
        source: Box<dyn Error + Send + Sync>,
    },
    /// Redis did not answer in time.
    Timeout,
}

impl FleetError {
    pub(crate) fn redis_url(source: redis::RedisError) -> Self {
        Self::RedisUrl {
            source: Box::new(source),
        }
    }

    pub(crate) fn redis(source: redis::RedisError) -> Self {
        Self::Redis {
            source: Box::new(source),
        }
    }
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoKeys => f.write_str("the fleet tier needs encryption keys (FleetKeys)"),
            Self::RedisUrl { .. } => f.write_str("bad Redis URL"),
            Self::LimitOutOfRange {
                setting,
                value,
                min,
                max,
            } => write!(f, "{setting} is {value}: it must be from {min} to {max}"),
            Self::DurationOutOfRange {
                setting,
                value,
                min,
                max,
            } => write!(
                f,
                "{setting} is {value:?}: it must be from {min:?} to {max:?}"
            ),
            Self::BadPrefix { reason } => write!(f, "bad Redis key prefix: {reason}"),
            Self::NoRuntime => f.write_str(
                "the fleet tier must be built inside a tokio runtime with timers enabled",
            ),
            Self::Redis { .. } => f.write_str("Redis failed"),
            Self::Timeout => f.write_str("Redis did not answer in time"),
        }
    }
}

impl Error for FleetError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::RedisUrl { source } | Self::Redis { source } => Some(&**source),
            _ => None,
        }
    }
}
