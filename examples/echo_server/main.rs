//! A TLS echo server on tokio and tokio-rustls whose session store is a [`SessionCache`].
//! Every byte a client sends comes back.
//!
//! ```text
//! cargo run --release --example echo_server -- \
//!     [--listen 127.0.0.1:4433] [--cert certs/server.crt] [--key certs/server.key] \
//!     [--capacity 20480] [--timeout 300] [--mode server] [--tls 1.2|1.3|both] \
//!     [--stats-interval SECONDS] [--max-connections 512] [--context NAME] \
//!     [--metrics 127.0.0.1:9898]
//! ```
//!
//! Then watch resumption with `openssl s_client -connect 127.0.0.1:4433 -CAfile
//! certs/ca.crt -reconnect` (TLS 1.2 or 1.3), or `-sess_out` and `-sess_in`.
//!
//! With `--mode server,no-internal-store` the server shows application-controlled
//! resumption: new sessions are held as pending for their connection, and admitted into
//! the cache with `add_session` only if the client sends the line `remember me`. Other
//! clients get sessions (and tickets) that never resume.
//!
//! With `--context NAME` its sessions (and fleet tickets) are stored and looked up in
//! the resumption context `NAME` (1 to 64 bytes): servers of one fleet resume each
//! other's sessions only when they name the same context.
//!
//! It prints `listening on ADDR` once it accepts connections; Ctrl-C or SIGTERM stops it
//! after open connections finish (or a grace period passes), with a final stats line.
//! Logs go to stderr through `RUST_LOG` (default `info`): one line per connection.
//!
//! Built with `--features redis`, it can share its sessions with other instances through
//! Redis (the fleet tier): `--redis redis://127.0.0.1:6379 --fleet-key-file FILE
//! [--redis-prefix NAME]`, or a Redis Cluster: `--redis-cluster URL[,URL...]`.
//! Connections are then taken by the fleet's acceptor, which claims or fetches what each
//! ClientHello offers to resume before the handshake.
//!
//! With `--tickets fleet` (and a fleet as above) it issues stateless tickets under ticket
//! keys every instance shares, rotated through Redis every `--ticket-rotation SECONDS`
//! (default 3600): TLS 1.3 and TLS 1.2 ticket resumption then needs no lookup. The
//! default, `--tickets off`, keeps sessions stateful, through the cache.
//!
//! At most `--max-connections` connections are served at once (default 512, as nginx's
//! `worker_connections`); past that it stops accepting until one closes, which it logs
//! and counts (`limited=` in the stats line).
//!
//! Built with `--features metrics`, `--metrics ADDR` serves the cache's metrics (and
//! the fleet's) in Prometheus text at `http://ADDR/metrics`, and prints `metrics on
//! ADDR` at start.
//!
//! Where things are: `server.rs` accepts, handshakes and echoes, and prints the stats
//! line; `policy.rs` is the application-controlled resumption; `fleet.rs` builds the
//! fleet tier from the flags; `metrics.rs` serves the metrics.

mod fleet;
#[cfg(feature = "metrics")]
mod metrics;
mod policy;
mod server;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::StoresServerSessions;
use rustls::{ServerConfig, SupportedProtocolVersion};
use rustls_session_cache::{CacheMode, DEFAULT_CAPACITY, SessionCache};
use tracing::{info, warn};

use fleet::{FleetFlags, RedisAt};
use server::{EchoServer, Settings};

#[derive(Parser, Debug)]
#[command(about = "A TLS echo server whose rustls session store is a SessionCache")]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:4433")]
    listen: SocketAddr,
    /// Server certificate chain, PEM.
    #[arg(long, default_value = "certs/server.crt")]
    cert: PathBuf,
    /// Server private key, PEM.
    #[arg(long, default_value = "certs/server.key")]
    key: PathBuf,
    /// Most sessions the cache holds.
    #[arg(long, default_value_t = DEFAULT_CAPACITY)]
    capacity: usize,
    /// Session timeout, in seconds (1 to 604800).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    timeout: u64,
    /// Cache mode, comma-separated: server, off, no-internal-lookup, no-internal-store,
    /// no-internal, no-auto-clear, update-time. Every mode but `off` includes `server`.
    #[arg(long, default_value = "server", value_parser = parse_mode)]
    mode: CacheMode,
    /// TLS versions to offer.
    #[arg(long, value_enum, default_value = "both")]
    tls: TlsVersions,
    /// Print a stats line this often, in seconds; 0 never.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    stats_interval: u64,
    /// Store and look up sessions (and fleet tickets) in this resumption context (1 to
    /// 64 bytes) instead of the default one.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Share sessions with other instances through this Redis (needs `--features redis`
    /// and `--fleet-key-file`).
    #[arg(long, value_name = "URL", conflicts_with = "redis_cluster")]
    redis: Option<String>,
    /// Share sessions through this Redis Cluster instead: seed nodes, comma-separated
    /// (any one that answers is enough).
    #[arg(long, value_name = "URL[,URL...]", value_delimiter = ',')]
    redis_cluster: Option<Vec<String>>,
    /// The prefix of this fleet's Redis keys.
    #[arg(long, value_name = "NAME", default_value = "rsc")]
    redis_prefix: String,
    /// The fleet's encryption keys: one per line, 64 hex digits, newest first.
    #[arg(long, value_name = "PATH")]
    fleet_key_file: Option<PathBuf>,
    /// Session tickets: `off` (stateful sessions through the cache) or `fleet`
    /// (stateless tickets under keys shared through Redis; needs `--redis` or
    /// `--redis-cluster`, and `--fleet-key-file`).
    #[arg(long, value_enum, default_value = "off")]
    tickets: Tickets,
    /// How often fleet ticket keys rotate, in seconds (1 to 86400).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    ticket_rotation: u64,
    /// The most connections served at once; past it, accepting pauses until one closes.
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Serve metrics in Prometheus text at http://ADDR/metrics (needs `--features
    /// metrics`); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
}

/// Which session tickets the server issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Tickets {
    /// None: sessions are stateful, through the cache.
    Off,
    /// Stateless tickets under the fleet's shared, rotating ticket keys.
    Fleet,
}

/// Which TLS versions the server offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TlsVersions {
    /// TLS 1.2 only.
    #[value(name = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[value(name = "1.3")]
    Tls13,
    /// Both.
    Both,
}

impl TlsVersions {
    fn versions(self) -> Vec<&'static SupportedProtocolVersion> {
        match self {
            Self::Tls12 => vec![&rustls::version::TLS12],
            Self::Tls13 => vec![&rustls::version::TLS13],
            Self::Both => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        }
    }
}

/// Parses `--mode`: the named flags, plus `server` unless `off` is among them, so that
/// `--mode no-internal-store` means what a reader expects (`SERVER | NO_INTERNAL_STORE`).
fn parse_mode(names: &str) -> Result<CacheMode, String> {
    let mode: CacheMode = names.parse().map_err(|e| format!("{e}"))?;
    let off = names
        .split(',')
        .any(|n| n.trim().eq_ignore_ascii_case("off"));
    match (off, mode.caches_new_sessions()) {
        (true, true) => Err("`off` and `server` contradict each other".to_owned()),
        (true, false) => Ok(mode),
        (false, _) => Ok(mode | CacheMode::SERVER),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) if !err.use_stderr() => err.exit(), // --help, --version
        Err(err) => {
            // clap's message in one line: its first paragraph, without the help hint.
            let message = err.to_string();
            let first: Vec<&str> = message.lines().take_while(|l| !l.is_empty()).collect();
            eprintln!(
                "{}",
                first.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
            );
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the cache, the fleet tier if asked for, the TLS config and the server; serves
/// until a shutdown signal; prints the final stats line.
async fn run(args: Args) -> Result<(), String> {
    // The recorder first: metrics registered before it would go nowhere.
    #[cfg(feature = "metrics")]
    let prometheus = args.metrics.map(|_| metrics::install()).transpose()?;
    #[cfg(not(feature = "metrics"))]
    if args.metrics.is_some() {
        return Err("--metrics needs the example built with the `metrics` feature".into());
    }
    let cache = build_cache(args.capacity, Duration::from_secs(args.timeout), args.mode)?;
    // Checked before anything connects to Redis; the fleet takes the same name.
    let local: Arc<dyn StoresServerSessions> = match &args.context {
        Some(name) => cache
            .context(name)
            .map_err(|e| format!("--context {name:?}: {e}"))?,
        None => cache.clone(),
    };
    let redis = match (args.redis.clone(), args.redis_cluster.clone()) {
        (Some(url), _) => Some(RedisAt::Single(url)),
        (None, Some(seeds)) => Some(RedisAt::Cluster(seeds)),
        (None, None) => None,
    };
    let fleet = fleet::build(
        FleetFlags {
            redis: redis.as_ref(),
            prefix: &args.redis_prefix,
            key_file: args.fleet_key_file.as_deref(),
            tickets: args.tickets,
            rotation: Duration::from_secs(args.ticket_rotation),
            context: args.context.as_deref(),
        },
        &cache,
    )
    .await?;
    let storage = fleet.storage().unwrap_or(local);
    let tls = fleet.with_tickets(tls_config(&args.cert, &args.key, args.tls, storage)?);
    let acceptor = fleet.acceptor(tls, args.tls != TlsVersions::Tls12);
    let settings = Settings {
        stats_interval: (args.stats_interval > 0).then(|| Duration::from_secs(args.stats_interval)),
        max_connections: args.max_connections as usize,
        ..Settings::default()
    };
    let server = EchoServer::bind(args.listen, acceptor, cache.clone(), settings)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?
        .reporting(fleet.counters());
    // With a fleet, admitted sessions go to Redis too.
    let server = match fleet.admitter() {
        Some(admit) => server.admitting(policy::Admission::new(admit)),
        None => server,
    };
    #[cfg(feature = "metrics")]
    let server = match (args.metrics, prometheus) {
        (Some(at), Some(prometheus)) => {
            let name = args.context.as_deref().unwrap_or("default");
            let session_metrics = Arc::new(fleet.metrics(name, &cache));
            let bound = metrics::serve(at, prometheus, session_metrics.clone()).await?;
            server::say(&format!("metrics on {bound}"));
            server.observing(Arc::new(move |tls| {
                session_metrics.record_handshake(tls);
            }))
        }
        _ => server,
    };
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    info!(%addr, mode = %args.mode, tls = ?args.tls, context = ?args.context, "echo server started");
    server::say(&format!("listening on {addr}"));
    let stats = server.run(shutdown_signal()).await;
    server::say(&stats);
    Ok(())
}

/// The cache, with the admission policy's pending-session hook when the mode keeps new
/// sessions out of it.
fn build_cache(
    capacity: usize,
    timeout: Duration,
    mode: CacheMode,
) -> Result<Arc<SessionCache>, String> {
    let mut builder = SessionCache::builder()
        .capacity(capacity)
        .timeout(timeout)
        .mode(mode);
    if !mode.stores_internally() {
        builder = builder.on_new_session(policy::hold_pending);
    }
    builder.build().map_err(|e| e.to_string())
}

/// A `ServerConfig` with the certificate and key from PEM files, storing sessions in
/// `storage`. Fails with one line naming the file and the problem.
fn tls_config(
    cert: &Path,
    key: &Path,
    versions: TlsVersions,
    storage: Arc<dyn StoresServerSessions>,
) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate found in {}", cert.display()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read a private key from {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions.versions())
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            format!(
                "the key in {} does not fit the certificate in {}: {e}",
                key.display(),
                cert.display()
            )
        })?;
    config.session_storage = storage;
    Ok(Arc::new(config))
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the server");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    info!("shutdown signal received");
}
