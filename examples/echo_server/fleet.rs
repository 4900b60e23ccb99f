//! The fleet tier, as the flags describe it: a [`Fleet`] on one Redis or a Redis Cluster
//! in front of the cache, taking connections through its acceptor, and with
//! `--tickets fleet` a [`FleetTicketer`]; each in `--context` if one is named.
//!
//! Without the `redis` feature there is no fleet tier: the flags that ask for one fail
//! at startup, and [`FleetTier`] is empty.
//!
//! [`Fleet`]: rustls_session_cache::fleet::Fleet
//! [`FleetTicketer`]: rustls_session_cache::fleet::FleetTicketer

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::StoresServerSessions;
use rustls_session_cache::SessionCache;
use tokio_rustls::TlsAcceptor;

use crate::Tickets;
use crate::policy::Admit;
use crate::server::{Acceptor, Counters};

/// Where the fleet's Redis is, as the flags say.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum RedisAt {
    /// `--redis URL`.
    Single(String),
    /// `--redis-cluster URL,...`.
    Cluster(Vec<String>),
}

/// The flags that shape the fleet tier.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct FleetFlags<'a> {
    pub(crate) redis: Option<&'a RedisAt>,
    pub(crate) prefix: &'a str,
    pub(crate) key_file: Option<&'a Path>,
    pub(crate) tickets: Tickets,
    pub(crate) rotation: Duration,
    pub(crate) context: Option<&'a str>,
}

/// The fleet tier in front of `cache`, as `flags` describe it (none without `--redis`
/// or `--redis-cluster`); a fleet ticketer is in step with the fleet (or on a local key,
/// Redis being unreachable) when this returns.
pub(crate) async fn build(
    flags: FleetFlags<'_>,
    cache: &Arc<SessionCache>,
) -> Result<FleetTier, String> {
    let mut tier = FleetTier::default();
    match (flags.redis, flags.key_file) {
        (Some(at), key_file) => tier.stateful(at, &flags, key_file, cache)?,
        (None, Some(_)) => return Err("--fleet-key-file is for --redis, which is not set".into()),
        (None, None) => {}
    }
    match (flags.tickets, flags.redis) {
        (Tickets::Off, _) => {}
        (Tickets::Fleet, None) => {
            return Err("--tickets fleet needs --redis or --redis-cluster".into());
        }
        (Tickets::Fleet, Some(at)) => tier.tickets(at, &flags).await?,
    }
    Ok(tier)
}

#[cfg(feature = "redis")]
pub(crate) use with_redis::FleetTier;
#[cfg(not(feature = "redis"))]
pub(crate) use without_redis::FleetTier;

#[cfg(feature = "redis")]
mod with_redis {
    use rustls::server::ProducesTickets;
    use rustls_session_cache::fleet::{Fleet, FleetContext, FleetKeys, FleetTicketer};

    use super::*;

    /// The fleet, its view for `--context`, and the fleet ticketer.
    #[derive(Default)]
    pub(crate) struct FleetTier {
        fleet: Option<(Arc<Fleet>, Option<Arc<FleetContext>>)>,
        tickets: Option<(Arc<FleetTicketer>, Arc<dyn ProducesTickets>)>,
    }

    impl FleetTier {
        pub(super) fn stateful(
            &mut self,
            at: &RedisAt,
            flags: &FleetFlags<'_>,
            key_file: Option<&Path>,
            cache: &Arc<SessionCache>,
        ) -> Result<(), String> {
            let key_file =
                key_file.ok_or("--redis needs --fleet-key-file: sessions are encrypted at rest")?;
            let builder = Fleet::builder(cache.clone());
            let builder = match at {
                RedisAt::Single(url) => builder.redis_url(url),
                RedisAt::Cluster(seeds) => builder.redis_cluster(seeds.iter().cloned()),
            };
            let fleet = builder
                .prefix(flags.prefix)
                .keys(keys(key_file)?)
                .build()
                .map_err(|e| error_chain(&e))?;
            let context = flags
                .context
                .map(|name| fleet.context(name).map_err(|e| e.to_string()))
                .transpose()?;
            self.fleet = Some((fleet, context));
            Ok(())
        }

        pub(super) async fn tickets(
            &mut self,
            at: &RedisAt,
            flags: &FleetFlags<'_>,
        ) -> Result<(), String> {
            let key_file = flags
                .key_file
                .ok_or("--tickets fleet needs --fleet-key-file")?;
            let builder = match at {
                RedisAt::Single(url) => FleetTicketer::builder().redis_url(url),
                RedisAt::Cluster(seeds) => {
                    FleetTicketer::builder().redis_cluster(seeds.iter().cloned())
                }
            };
            let ticketer = builder
                .prefix(flags.prefix)
                .keys(keys(key_file)?)
                .rotation(flags.rotation)
                .build()
                .map_err(|e| error_chain(&e))?;
            let issuing: Arc<dyn ProducesTickets> = match flags.context {
                Some(name) => ticketer.context(name).map_err(|e| e.to_string())?,
                None => ticketer.clone(),
            };
            ticketer.first_sync().await;
            self.tickets = Some((ticketer, issuing));
            Ok(())
        }

        /// The session store the config should have, if the fleet's.
        pub(crate) fn storage(&self) -> Option<Arc<dyn StoresServerSessions>> {
            self.fleet.as_ref().map(|(fleet, context)| match context {
                Some(context) => context.clone() as Arc<dyn StoresServerSessions>,
                None => fleet.clone(),
            })
        }

        /// `tls`, issuing fleet tickets if there are any.
        pub(crate) fn with_tickets(&self, tls: Arc<ServerConfig>) -> Arc<ServerConfig> {
            let Some((_, issuing)) = &self.tickets else {
                return tls;
            };
            let mut config = Arc::unwrap_or_clone(tls);
            config.ticketer = issuing.clone();
            Arc::new(config)
        }

        /// The fleet's acceptor, told whether the config offers TLS 1.3; else
        /// tokio-rustls's.
        pub(crate) fn acceptor(&self, tls: Arc<ServerConfig>, tls13: bool) -> Acceptor {
            match &self.fleet {
                Some((_, Some(context))) => Acceptor::Fleet(context.acceptor(tls).tls13(tls13)),
                Some((fleet, None)) => Acceptor::Fleet(fleet.acceptor(tls).tls13(tls13)),
                None => Acceptor::Plain(TlsAcceptor::from(tls)),
            }
        }

        /// Admission into the fleet (L1 and Redis), if there is one.
        pub(crate) fn admitter(&self) -> Option<Admit> {
            self.fleet.clone().map(|(fleet, context)| -> Admit {
                match context {
                    Some(context) => Arc::new(move |session| context.add_session(session)),
                    None => Arc::new(move |session| fleet.add_session(session)),
                }
            })
        }

        /// Metrics for the fleet (or, without one, `cache`) and its ticketer, labelled
        /// `name`.
        #[cfg(feature = "metrics")]
        pub(crate) fn metrics(
            &self,
            name: &str,
            cache: &Arc<SessionCache>,
        ) -> rustls_session_cache::metrics::SessionMetrics {
            use rustls_session_cache::metrics::SessionMetrics;
            let metrics = match &self.fleet {
                Some((fleet, _)) => SessionMetrics::for_fleet(name, fleet.clone()),
                None => SessionMetrics::for_cache(name, cache.clone()),
            };
            match &self.tickets {
                Some((ticketer, _)) => metrics.with_tickets(ticketer.clone()),
                None => metrics,
            }
        }

        /// The fleet's counters for the stats line, then its ticketer's.
        pub(crate) fn counters(&self) -> Counters {
            let fleet = self.fleet.as_ref().map(|(fleet, _)| fleet.clone());
            let ticketer = self.tickets.as_ref().map(|(ticketer, _)| ticketer.clone());
            Arc::new(move || {
                let fleet = fleet.iter().flat_map(|fleet| fleet.stats().counters());
                let tickets = ticketer.iter().flat_map(|t| t.stats().counters());
                fleet.chain(tickets).collect()
            })
        }
    }

    fn keys(key_file: &Path) -> Result<FleetKeys, String> {
        FleetKeys::from_file(key_file).map_err(|e| format!("{e} ({})", key_file.display()))
    }

    /// An error and its sources, on one line.
    fn error_chain(error: &dyn std::error::Error) -> String {
        let mut line = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            line.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        line
    }
}

#[cfg(not(feature = "redis"))]
mod without_redis {
    use super::*;

    /// No fleet tier: building one is an error, and every answer is "none".
    #[derive(Default)]
    pub(crate) struct FleetTier {}

    impl FleetTier {
        pub(super) fn stateful(
            &mut self,
            _: &RedisAt,
            _: &FleetFlags<'_>,
            _: Option<&Path>,
            _: &Arc<SessionCache>,
        ) -> Result<(), String> {
            Err("--redis needs the example built with the `redis` feature: \
                 cargo run --release --features redis --example echo_server"
                .into())
        }

        pub(super) async fn tickets(
            &mut self,
            _: &RedisAt,
            _: &FleetFlags<'_>,
        ) -> Result<(), String> {
            Err("--tickets fleet needs the example built with the `redis` feature".into())
        }

        pub(crate) fn storage(&self) -> Option<Arc<dyn StoresServerSessions>> {
            None
        }

        pub(crate) fn with_tickets(&self, tls: Arc<ServerConfig>) -> Arc<ServerConfig> {
            tls
        }

        pub(crate) fn acceptor(&self, tls: Arc<ServerConfig>, _tls13: bool) -> Acceptor {
            Acceptor::Plain(TlsAcceptor::from(tls))
        }

        pub(crate) fn admitter(&self) -> Option<Admit> {
            None
        }

        #[cfg(feature = "metrics")]
        pub(crate) fn metrics(
            &self,
            name: &str,
            cache: &Arc<SessionCache>,
        ) -> rustls_session_cache::metrics::SessionMetrics {
            rustls_session_cache::metrics::SessionMetrics::for_cache(name, cache.clone())
        }

        pub(crate) fn counters(&self) -> Counters {
            Arc::new(Vec::new)
        }
    }
}
