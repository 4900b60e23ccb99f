//! The fleet tier's counters ([`FleetStats`]), and warnings about Redis that do not flood
//! the log.

use core::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::CacheStats;
use crate::rate_limit::RateLimited;
use crate::session::now_nanos;
use crate::stats::bump;

/// A snapshot of both tiers' counters.
///
/// ```
/// # use rustls_session_cache::fleet::FleetStats;
/// fn resumable_share(s: &FleetStats) -> f64 {
///     let claims = s.claims_won + s.claims_local;
///     claims as f64 / (claims + s.claims_lost + s.l2_misses).max(1) as f64
/// }
/// assert_eq!(resumable_share(&FleetStats::default()), 0.0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetStats {
    /// The local cache's.
    pub l1: CacheStats,
    /// Sessions fetched from Redis and put to use: TLS 1.2 sessions fetched into L1, and
    /// TLS 1.3 tickets claimed there.
    pub l2_hits: u64,
    /// Sessions looked for in Redis and not found (or expired, or failing to open); TLS
    /// 1.3 tickets not found count in `claims_lost` instead.
    pub l2_misses: u64,
    /// TLS 1.3 tickets claimed in Redis with `GETDEL`.
    pub claims_won: u64,
    /// TLS 1.3 tickets claimed locally: issued here, their write to Redis not yet sent,
    /// and cancelled.
    pub claims_local: u64,
    /// Claims that rustls then resumed with (the rest it did not ask for: it tried
    /// another identity, or negotiated TLS 1.2).
    pub claims_redeemed: u64,
    /// TLS 1.3 tickets offered whose claim was lost: not found in Redis (used elsewhere
    /// already, expired, or never written).
    pub claims_lost: u64,
    /// Claims taken in Redis that fewer replicas than `claim_replicas` acknowledged in
    /// time: they do not count, and those tickets resume nowhere.
    pub claims_unreplicated: u64,
    /// Writes queued for Redis.
    pub writes_queued: u64,
    /// Writes that landed in Redis.
    pub writes_written: u64,
    /// Writes dropped: the queue was full, Redis failed or was too slow, or the session
    /// expired while queued.
    pub writes_dropped: u64,
    /// Writes cancelled by a local claim: those tickets never reach Redis.
    pub writes_cancelled: u64,
    /// Writes waiting in the queue now.
    pub writes_pending: usize,
    /// Sessions from Redis that failed to authenticate (another fleet key, tampering).
    pub decrypt_failures: u64,
    /// Lookups in Redis not answered within the fetch deadline.
    pub fetch_timeouts: u64,
    /// Connections whose lookups were skipped: too many already waiting on Redis.
    pub fetches_shed: u64,
    /// TLS 1.3 identities not claimed: over the per-hello cap, or too long.
    pub identities_shed: u64,
    /// ClientHellos the acceptor could not follow (too large, malformed, or not what
    /// rustls parsed): nothing was fetched or claimed for them.
    pub hellos_unparsed: u64,
    /// Redis errors (connection, protocol, refused commands).
    pub redis_errors: u64,
}

impl FleetStats {
    /// Each counter with its name, in the order they are declared, L1's excepted: for
    /// a stats line or an exporter.
    pub fn counters(&self) -> [(&'static str, u64); 18] {
        [
            ("l2_hits", self.l2_hits),
            ("l2_misses", self.l2_misses),
            ("claims_won", self.claims_won),
            ("claims_local", self.claims_local),
            ("claims_redeemed", self.claims_redeemed),
            ("claims_lost", self.claims_lost),
            ("claims_unreplicated", self.claims_unreplicated),
            ("writes_queued", self.writes_queued),
            ("writes_written", self.writes_written),
            ("writes_dropped", self.writes_dropped),
            ("writes_cancelled", self.writes_cancelled),
            ("writes_pending", self.writes_pending as u64),
            ("decrypt_failures", self.decrypt_failures),
            ("fetch_timeouts", self.fetch_timeouts),
            ("fetches_shed", self.fetches_shed),
            ("identities_shed", self.identities_shed),
            ("hellos_unparsed", self.hellos_unparsed),
            ("redis_errors", self.redis_errors),
        ]
    }
}

/// The fleet tier's counters, shared by the acceptor, the store and the writer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) l2_hits: AtomicU64,
    pub(crate) l2_misses: AtomicU64,
    pub(crate) claims_won: AtomicU64,
    pub(crate) claims_local: AtomicU64,
    pub(crate) claims_redeemed: AtomicU64,
    pub(crate) claims_lost: AtomicU64,
    pub(crate) claims_unreplicated: AtomicU64,
    pub(crate) writes_queued: AtomicU64,
    pub(crate) writes_written: AtomicU64,
    pub(crate) writes_dropped: AtomicU64,
    pub(crate) writes_cancelled: AtomicU64,
    pub(crate) decrypt_failures: AtomicU64,
    pub(crate) fetch_timeouts: AtomicU64,
    pub(crate) fetches_shed: AtomicU64,
    pub(crate) identities_shed: AtomicU64,
    pub(crate) hellos_unparsed: AtomicU64,
    pub(crate) redis_errors: AtomicU64,
    pub(crate) round_trips: RoundTrips,
    warn: RateLimited,
}

/// The histogram of claim or fetch round trips: nowhere until metrics are published
/// (feature `metrics`), and without the feature, nothing at all.
#[derive(Debug, Default)]
pub(crate) struct RoundTrips {
    #[cfg(feature = "metrics")]
    histogram: std::sync::OnceLock<metrics::Histogram>,
}

impl RoundTrips {
    /// Records round trips in `histogram` from now on, unless another already is.
    #[cfg(feature = "metrics")]
    pub(crate) fn start(&self, histogram: metrics::Histogram) {
        let _ = self.histogram.set(histogram);
    }

    /// Records one round trip, if a histogram was started.
    #[cfg_attr(not(feature = "metrics"), allow(clippy::unused_self))]
    pub(crate) fn record(&self, _took: std::time::Duration) {
        #[cfg(feature = "metrics")]
        if let Some(histogram) = self.histogram.get() {
            histogram.record(_took);
        }
    }
}

impl Counters {
    pub(crate) fn snapshot(&self, l1: CacheStats, writes_pending: usize) -> FleetStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        FleetStats {
            l1,
            l2_hits: read(&self.l2_hits),
            l2_misses: read(&self.l2_misses),
            claims_won: read(&self.claims_won),
            claims_local: read(&self.claims_local),
            claims_redeemed: read(&self.claims_redeemed),
            claims_lost: read(&self.claims_lost),
            claims_unreplicated: read(&self.claims_unreplicated),
            writes_queued: read(&self.writes_queued),
            writes_written: read(&self.writes_written),
            writes_dropped: read(&self.writes_dropped),
            writes_cancelled: read(&self.writes_cancelled),
            writes_pending,
            decrypt_failures: read(&self.decrypt_failures),
            fetch_timeouts: read(&self.fetch_timeouts),
            fetches_shed: read(&self.fetches_shed),
            identities_shed: read(&self.identities_shed),
            hellos_unparsed: read(&self.hellos_unparsed),
            redis_errors: read(&self.redis_errors),
        }
    }

    /// Counts Redis trouble, and logs it at `warn` at most once per 10 s, with how many
    /// were not logged since.
    pub(crate) fn redis_trouble(&self, what: &'static str, error: &dyn fmt::Display) {
        bump(&self.redis_errors);
        if let Some(suppressed) = self.warn.allow(now_nanos()) {
            tracing::warn!(%error, suppressed, "{what}");
        }
    }
}
