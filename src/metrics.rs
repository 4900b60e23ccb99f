//! Metrics (feature `metrics`): what [`SessionCache::stats`] knows, published through the
//! [`metrics`] facade to whatever exporter the application installs.
//!
//! # Nothing on the handshake path
//!
//! The cache counts hits, misses and the rest in plain integers under the shard locks it
//! takes anyway (see [`CacheStats`]). Pushing each event to a metrics recorder as well
//! would add an atomic write, or a recorder call, to every `get`, `take` and `put`.
//! [`SessionMetrics`] does not: [`publish`](SessionMetrics::publish) reads one
//! [`stats`](SessionCache::stats) snapshot and sets the recorder's counters to it
//! (`absolute`) and its gauges. Call it before each scrape, or on a timer: the values are
//! then as old as the last call. The store's code is the same with the feature on as off.
//!
//! Two things are recorded as they happen, because no snapshot holds them, and neither
//! is in `get`, `take` or `put`:
//! - [`record_handshake`](SessionMetrics::record_handshake): one counter increment per
//!   connection, by the application, after its handshake;
//! - with the fleet tier, in the acceptor before the handshake, how long each
//!   ClientHello that needed Redis waited for it
//!   (`tls_session_cache_fleet_round_trip_seconds`): one histogram sample per such
//!   hello, next to a wait that is itself at least one network round trip. A peer can
//!   cause one sample per hello it sends (a TLS 1.2 hello with a random session id is
//!   enough), so the recorder must drain its histograms even when nobody scrapes:
//!   metrics-exporter-prometheus drains them on each render and on `run_upkeep`, which
//!   its `install` and `build` schedule but `install_recorder` and `build_recorder`
//!   leave to the caller (the echo server example runs it every 5 s).
//!
//! # Names
//!
//! Prometheus conventions, under `tls_session_cache_`, each with a `cache` label naming
//! the cache (for servers that run several):
//!
//! | metric | kind | from |
//! |---|---|---|
//! | `tls_session_cache_hits_total` | counter | [`CacheStats::hits`] |
//! | `tls_session_cache_misses_total` | counter | [`CacheStats::misses`] |
//! | `tls_session_cache_cb_hits_total` | counter | [`CacheStats::cb_hits`] |
//! | `tls_session_cache_timeouts_total` | counter | [`CacheStats::timeouts`] |
//! | `tls_session_cache_cache_full_total` | counter | [`CacheStats::cache_full`] |
//! | `tls_session_cache_new_sessions_total` | counter | [`CacheStats::new_sessions`] |
//! | `tls_session_cache_refused_total` | counter | [`CacheStats::oversized`] |
//! | `tls_session_cache_callback_panics_total` | counter | [`CacheStats::callback_panics`] |
//! | `tls_session_cache_entries` | gauge | [`CacheStats::entries`] |
//! | `tls_session_cache_bytes` | gauge | [`CacheStats::bytes`] |
//! | `tls_session_cache_capacity` | gauge | [`SessionCache::capacity`] |
//! | `tls_handshakes_total{kind, version}` | counter | [`SessionMetrics::record_handshake`] |
//!
//! With the fleet tier (feature `redis` too), each of [`FleetStats::counters`] as
//! `tls_session_cache_fleet_NAME_total` (`writes_pending` is a gauge,
//! `tls_session_cache_fleet_writes_pending`), the histogram
//! `tls_session_cache_fleet_round_trip_seconds`, and with a fleet ticketer each of
//! [`TicketStats::counters`] as `tls_session_cache_NAME_total` (the two the ring holds
//! now are gauges: `tls_session_cache_ticket_epochs` and
//! `tls_session_cache_ticket_local_keys`).
//!
//! ```
//! use std::sync::Arc;
//! use rustls_session_cache::SessionCache;
//! use rustls_session_cache::metrics::SessionMetrics;
//!
//! let cache = SessionCache::new(1024);
//! // Register with the recorder installed now (the application's exporter).
//! let metrics = SessionMetrics::for_cache("default", cache.clone());
//! // Before each scrape, or every few seconds:
//! metrics.publish();
//! ```
//!
//! [`FleetStats::counters`]: crate::fleet::FleetStats::counters
//! [`TicketStats::counters`]: crate::fleet::TicketStats::counters

use std::sync::Arc;

use ::metrics::{Counter, Gauge, Label, Unit, counter, describe_counter, describe_gauge, gauge};
use rustls::{CommonState, HandshakeKind, ProtocolVersion};

use crate::{CacheStats, SessionCache};

/// The label every metric carries: which cache.
const CACHE_LABEL: &str = "cache";

/// A cache's metrics, registered with the recorder installed when it was made. See the
/// [module docs](self).
pub struct SessionMetrics {
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    label: Label,
    source: Source,
    cache: CacheMetrics,
    handshakes: Handshakes,
    #[cfg(feature = "redis")]
    fleet: Option<fleet::FleetMetrics>,
    #[cfg(feature = "redis")]
    tickets: Option<fleet::TicketMetrics>,
}

/// Where the snapshots come from.
enum Source {
    Cache(Arc<SessionCache>),
    #[cfg(feature = "redis")]
    Fleet(Arc<crate::fleet::Fleet>),
}

impl SessionMetrics {
    /// Metrics for `cache`, labelled `cache="NAME"`.
    pub fn for_cache(name: &str, cache: Arc<SessionCache>) -> Self {
        Self::registered(name, Source::Cache(cache))
    }

    /// The cache's metrics and the handshake counters, labelled `cache="NAME"`, over
    /// `source`; the fleet's and the ticketer's are added by their constructors.
    fn registered(name: &str, source: Source) -> Self {
        let label = Label::new(CACHE_LABEL, name.to_owned());
        Self {
            label: label.clone(),
            source,
            cache: CacheMetrics::register(&label),
            handshakes: Handshakes::register(&label),
            #[cfg(feature = "redis")]
            fleet: None,
            #[cfg(feature = "redis")]
            tickets: None,
        }
    }

    /// Publishes the counters as they are now: one [`SessionCache::stats`] snapshot
    /// (and, with the fleet, one [`Fleet::stats`](crate::fleet::Fleet::stats)), set into
    /// the recorder. Cheap enough to call on every scrape.
    pub fn publish(&self) {
        match &self.source {
            Source::Cache(cache) => self.cache.publish(&cache.stats(), cache.capacity()),
            #[cfg(feature = "redis")]
            Source::Fleet(fleet) => {
                let stats = fleet.stats();
                self.cache.publish(&stats.l1, fleet.l1().capacity());
                if let Some(metrics) = &self.fleet {
                    metrics.publish(&stats);
                }
            }
        }
        #[cfg(feature = "redis")]
        if let Some(tickets) = &self.tickets {
            tickets.publish();
        }
    }

    /// Counts one connection's handshake in `tls_handshakes_total`, by kind (`full` or
    /// `resumed`) and version (`1.2` or `1.3`). Returns whether it was counted: not if
    /// the handshake has not finished, or negotiated another version.
    ///
    /// The resumption ratio an operator wants is resumed over all handshakes, and only
    /// the connection knows it: the cache sees lookups, and a lookup that hit can still
    /// end in a full handshake (the client's binder failed, or rustls picked another
    /// identity).
    ///
    /// ```
    /// # use rustls_session_cache::{SessionCache, metrics::SessionMetrics};
    /// # fn after_handshake(metrics: &SessionMetrics, tls: &rustls::ServerConnection) {
    /// metrics.record_handshake(tls);
    /// # }
    /// ```
    pub fn record_handshake(&self, connection: &CommonState) -> bool {
        // rustls knows the kind while the handshake is still going (from the hello).
        if connection.is_handshaking() {
            return false;
        }
        let version = match connection.protocol_version() {
            Some(ProtocolVersion::TLSv1_2) => 0,
            Some(ProtocolVersion::TLSv1_3) => 1,
            _ => return false,
        };
        let counters = match connection.handshake_kind() {
            Some(HandshakeKind::Resumed) => &self.handshakes.resumed,
            Some(HandshakeKind::Full | HandshakeKind::FullWithHelloRetryRequest) => {
                &self.handshakes.full
            }
            None => return false,
        };
        counters[version].increment(1);
        true
    }
}

impl core::fmt::Debug for SessionMetrics {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionMetrics").finish_non_exhaustive()
    }
}

/// The cache's own counters and gauges.
struct CacheMetrics {
    hits: Counter,
    misses: Counter,
    cb_hits: Counter,
    timeouts: Counter,
    cache_full: Counter,
    new_sessions: Counter,
    refused: Counter,
    callback_panics: Counter,
    entries: Gauge,
    bytes: Gauge,
    capacity: Gauge,
}

impl CacheMetrics {
    fn register(label: &Label) -> Self {
        let counter = |name: &'static str, help: &'static str| {
            describe_counter!(name, help);
            counter!(name, vec![label.clone()])
        };
        let gauge = |name: &'static str, unit: Option<Unit>, help: &'static str| {
            match unit {
                Some(unit) => describe_gauge!(name, unit, help),
                None => describe_gauge!(name, help),
            }
            gauge!(name, vec![label.clone()])
        };
        Self {
            hits: counter(
                "tls_session_cache_hits_total",
                "Lookups answered by a live session from the internal cache.",
            ),
            misses: counter(
                "tls_session_cache_misses_total",
                "Lookups that found no session in the internal cache.",
            ),
            cb_hits: counter(
                "tls_session_cache_cb_hits_total",
                "Sessions supplied by the lookup callback and used.",
            ),
            timeouts: counter(
                "tls_session_cache_timeouts_total",
                "Expired sessions found by lookups (and removed).",
            ),
            cache_full: counter(
                "tls_session_cache_cache_full_total",
                "Sessions evicted to keep the cache within its capacity or byte budget.",
            ),
            new_sessions: counter(
                "tls_session_cache_new_sessions_total",
                "New sessions handed to the cache while it caches server sessions.",
            ),
            refused: counter(
                "tls_session_cache_refused_total",
                "Sessions refused for being larger than the per-session limit.",
            ),
            callback_panics: counter(
                "tls_session_cache_callback_panics_total",
                "User callbacks that panicked (caught).",
            ),
            entries: gauge(
                "tls_session_cache_entries",
                None,
                "Sessions in the internal cache now.",
            ),
            bytes: gauge(
                "tls_session_cache_bytes",
                Some(Unit::Bytes),
                "What the cached sessions cost against the byte budget.",
            ),
            capacity: gauge(
                "tls_session_cache_capacity",
                None,
                "The most sessions the internal cache holds.",
            ),
        }
    }

    fn publish(&self, stats: &CacheStats, capacity: usize) {
        self.hits.absolute(stats.hits);
        self.misses.absolute(stats.misses);
        self.cb_hits.absolute(stats.cb_hits);
        self.timeouts.absolute(stats.timeouts);
        self.cache_full.absolute(stats.cache_full);
        self.new_sessions.absolute(stats.new_sessions);
        self.refused.absolute(stats.oversized);
        self.callback_panics.absolute(stats.callback_panics);
        self.entries.set(stats.entries as f64);
        self.bytes.set(stats.bytes as f64);
        self.capacity.set(capacity as f64);
    }
}

/// `tls_handshakes_total`, by kind, then by version (1.2, 1.3).
struct Handshakes {
    full: [Counter; 2],
    resumed: [Counter; 2],
}

impl Handshakes {
    fn register(label: &Label) -> Self {
        const NAME: &str = "tls_handshakes_total";
        describe_counter!(NAME, "TLS handshakes completed, by kind and version.");
        let counter = |kind: &'static str, version: &'static str| {
            let labels = vec![
                label.clone(),
                Label::from_static_parts("kind", kind),
                Label::from_static_parts("version", version),
            ];
            counter!(NAME, labels)
        };
        Self {
            full: [counter("full", "1.2"), counter("full", "1.3")],
            resumed: [counter("resumed", "1.2"), counter("resumed", "1.3")],
        }
    }
}

#[cfg(feature = "redis")]
mod fleet {
    //! The fleet tier's metrics, and its ticketer's.

    use std::sync::Arc;

    use ::metrics::{Counter, Gauge, Histogram, Label, Unit, describe_histogram};

    use super::{SessionMetrics, Source};
    use crate::fleet::{Fleet, FleetStats, FleetTicketer, TicketStats};

    /// A counter or a gauge, named after a `counters()` entry.
    enum Published {
        Counter(Counter),
        Gauge(Gauge),
    }

    impl Published {
        fn register(label: &Label, name: String, gauge: bool) -> Self {
            let labels = vec![label.clone()];
            if gauge {
                Self::Gauge(::metrics::gauge!(name, labels))
            } else {
                Self::Counter(::metrics::counter!(format!("{name}_total"), labels))
            }
        }

        fn set(&self, value: u64) {
            match self {
                Self::Counter(counter) => counter.absolute(value),
                Self::Gauge(gauge) => gauge.set(value as f64),
            }
        }
    }

    /// One metric per `counters()` entry, in its order, named
    /// `tls_session_cache_{prefix}{name}`: a gauge if `gauges` names it (what is held
    /// now), else a counter (`_total`).
    fn published(
        label: &Label,
        counters: &[(&'static str, u64)],
        prefix: &str,
        gauges: &[&str],
    ) -> Vec<Published> {
        counters
            .iter()
            .map(|(name, _)| {
                let metric = format!("tls_session_cache_{prefix}{name}");
                Published::register(label, metric, gauges.contains(name))
            })
            .collect()
    }

    /// One metric per [`FleetStats::counters`] entry, in its order.
    pub(super) struct FleetMetrics(Vec<Published>);

    impl FleetMetrics {
        pub(super) fn publish(&self, stats: &FleetStats) {
            for (metric, (_, value)) in self.0.iter().zip(stats.counters()) {
                metric.set(value);
            }
        }
    }

    /// One metric per [`TicketStats::counters`] entry, and the ticketer they come from.
    pub(super) struct TicketMetrics {
        ticketer: Arc<FleetTicketer>,
        metrics: Vec<Published>,
    }

    impl TicketMetrics {
        pub(super) fn publish(&self) {
            let stats = self.ticketer.stats();
            for (metric, (_, value)) in self.metrics.iter().zip(stats.counters()) {
                metric.set(value);
            }
        }
    }

    impl SessionMetrics {
        /// Metrics for `fleet` (its L1's, then its own), labelled `cache="NAME"`.
        ///
        /// It also starts the round-trip histogram: from then on the fleet's acceptor
        /// records, in `tls_session_cache_fleet_round_trip_seconds`, how long each
        /// ClientHello that needed Redis waited for it: for writes of its tickets still
        /// in flight to land, then for the claim or fetch (on a cluster, every slot's
        /// pipeline), up to the fetch deadline when that passed. Only the first
        /// `SessionMetrics` made for a fleet gets them.
        pub fn for_fleet(name: &str, fleet: Arc<Fleet>) -> Self {
            let base = Self::registered(name, Source::Fleet(fleet.clone()));
            const ROUND_TRIP: &str = "tls_session_cache_fleet_round_trip_seconds";
            describe_histogram!(
                ROUND_TRIP,
                Unit::Seconds,
                "How long each ClientHello's claim or fetch in Redis took."
            );
            let histogram: Histogram = ::metrics::histogram!(ROUND_TRIP, vec![base.label.clone()]);
            fleet.round_trips().start(histogram);
            let counters = FleetStats::default().counters();
            let metrics = published(&base.label, &counters, "fleet_", &["writes_pending"]);
            Self {
                fleet: Some(FleetMetrics(metrics)),
                ..base
            }
        }

        /// Publishes `ticketer`'s counters too, under this cache's label: the key epochs
        /// its ring holds and its local keys as gauges, the rest as counters.
        pub fn with_tickets(self, ticketer: Arc<FleetTicketer>) -> Self {
            let counters = TicketStats::default().counters();
            let gauges = ["ticket_epochs", "ticket_local_keys"];
            let metrics = published(&self.label, &counters, "", &gauges);
            Self {
                tickets: Some(TicketMetrics { ticketer, metrics }),
                ..self
            }
        }
    }
}
