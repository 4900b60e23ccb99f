//! A TLS echo server on tokio and tokio-rustls whose session store is a [`SessionCache`].
//! Every byte a client sends comes back.
//!
//! ```text
//! cargo run --release --example echo_server -- \
//!     [--listen 127.0.0.1:4433] [--cert certs/server.crt] [--key certs/server.key] \
//!     [--capacity 20480] [--timeout 300] [--mode server] [--tls 1.2|1.3|both] \
//!     [--stats-interval SECONDS] [--max-connections 512]
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
//! It prints `listening on ADDR` once it accepts connections; Ctrl-C or SIGTERM stops it
//! after open connections finish (or a grace period passes), with a final stats line.
//! Logs go to stderr through `RUST_LOG` (default `info`): one line per connection.
//!
//! Built with `--features redis`, it can share its sessions with other instances through
//! Redis (the fleet tier): `--redis redis://127.0.0.1:6379 --fleet-key-file FILE
//! [--redis-prefix NAME]`, or a Redis Cluster: `--redis-cluster URL[,URL...]`. Connections are then taken by the fleet's acceptor, which
//! claims or fetches what each ClientHello offers to resume before the handshake.
//!
//! With `--tickets fleet` (and a fleet as above) it issues stateless tickets under ticket
//! keys every instance shares, rotated through Redis every `--ticket-rotation SECONDS`
//! (default 3600): TLS 1.3 and TLS 1.2 ticket resumption then needs no lookup. The
//! default, `--tickets off`, keeps sessions stateful, through the cache.
//!
//! At most `--max-connections` connections are served at once (default 512, as nginx's
//! `worker_connections`); past that it stops accepting until one closes, which it logs
//! and counts (`limited=` in the stats line).

use std::cell::RefCell;
use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::StoresServerSessions;
use rustls::{HandshakeKind, ServerConfig, SupportedProtocolVersion};
use rustls_session_cache::{CacheMode, CacheStats, DEFAULT_CAPACITY, Session, SessionCache};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::error::Elapsed;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

/// The line a client sends, under `no-internal-store`, for its sessions to be admitted.
pub const ADMIT_LINE: &[u8] = b"remember me";

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
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
}

/// The default cap on open connections, nginx's default `worker_connections`: well under
/// the usual 1024 open files, so accepting pauses before the descriptors run out.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 512;

/// The fleet tier, when the example is built with `--features redis`.
#[cfg(feature = "redis")]
pub type FleetHandle = Arc<rustls_session_cache::fleet::Fleet>;

/// Without the `redis` feature there is no fleet tier: this type has no values.
#[cfg(not(feature = "redis"))]
pub enum FleetHandle {}

/// Which session tickets the server issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Tickets {
    /// None: sessions are stateful, through the cache.
    Off,
    /// Stateless tickets under the fleet's shared, rotating ticket keys.
    Fleet,
}

/// The fleet's ticketer, when the example is built with `--features redis`.
#[cfg(feature = "redis")]
pub type TicketsHandle = Arc<rustls_session_cache::fleet::FleetTicketer>;

/// Without the `redis` feature there are no fleet tickets: this type has no values.
#[cfg(not(feature = "redis"))]
pub enum TicketsHandle {}

/// The fleet's ticketer, as the flags describe, in step with the fleet (or on a local
/// key, Redis being unreachable) when it returns.
#[cfg(feature = "redis")]
pub async fn build_ticketer(
    at: &RedisAt,
    prefix: &str,
    key_file: Option<&Path>,
    rotation: Duration,
) -> Result<TicketsHandle, String> {
    use rustls_session_cache::fleet::{FleetKeys, FleetTicketer};
    let key_file = key_file.ok_or("--tickets fleet needs --fleet-key-file")?;
    let keys =
        FleetKeys::from_file(key_file).map_err(|e| format!("{e} ({})", key_file.display()))?;
    let builder = match at {
        RedisAt::Single(url) => FleetTicketer::builder().redis_url(url),
        RedisAt::Cluster(seeds) => FleetTicketer::builder().redis_cluster(seeds.iter().cloned()),
    };
    let ticketer = builder
        .prefix(prefix)
        .keys(keys)
        .rotation(rotation)
        .build()
        .map_err(|e| error_chain(&e))?;
    ticketer.first_sync().await;
    Ok(ticketer)
}

#[cfg(not(feature = "redis"))]
async fn build_ticketer(
    _: &RedisAt,
    _: &str,
    _: Option<&Path>,
    _: Duration,
) -> Result<TicketsHandle, String> {
    Err("--tickets fleet needs the example built with the `redis` feature".into())
}

/// `tls`, issuing tickets with `tickets`.
#[cfg(feature = "redis")]
pub fn with_tickets(tls: Arc<ServerConfig>, tickets: &TicketsHandle) -> Arc<ServerConfig> {
    let mut config = Arc::unwrap_or_clone(tls);
    config.ticketer = tickets.clone();
    Arc::new(config)
}

#[cfg(not(feature = "redis"))]
fn with_tickets(_: Arc<ServerConfig>, tickets: &TicketsHandle) -> Arc<ServerConfig> {
    match *tickets {}
}

/// Where the fleet's Redis is, as the flags say.
#[derive(Debug, Clone)]
pub enum RedisAt {
    /// `--redis URL`.
    Single(String),
    /// `--redis-cluster URL,...`.
    Cluster(Vec<String>),
}

/// The fleet tier in front of `cache`, as the flags describe.
#[cfg(feature = "redis")]
pub fn build_fleet(
    at: &RedisAt,
    prefix: &str,
    key_file: Option<&Path>,
    cache: Arc<SessionCache>,
) -> Result<FleetHandle, String> {
    use rustls_session_cache::fleet::{Fleet, FleetKeys};
    let key_file =
        key_file.ok_or("--redis needs --fleet-key-file: sessions are encrypted at rest")?;
    let keys =
        FleetKeys::from_file(key_file).map_err(|e| format!("{e} ({})", key_file.display()))?;
    let builder = Fleet::builder(cache);
    let builder = match at {
        RedisAt::Single(url) => builder.redis_url(url),
        RedisAt::Cluster(seeds) => builder.redis_cluster(seeds.iter().cloned()),
    };
    builder
        .prefix(prefix)
        .keys(keys)
        .build()
        .map_err(|e| error_chain(&e))
}

/// An error and its sources, on one line.
#[cfg(feature = "redis")]
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    line
}

#[cfg(not(feature = "redis"))]
fn build_fleet(
    _: &RedisAt,
    _: &str,
    _: Option<&Path>,
    _: Arc<SessionCache>,
) -> Result<FleetHandle, String> {
    Err("--redis needs the example built with the `redis` feature: \
         cargo run --release --features redis --example echo_server"
        .into())
}

/// Parses `--mode`: the named flags, plus `server` unless `off` is among them, so that
/// `--mode no-internal-store` means what a reader expects (`SERVER | NO_INTERNAL_STORE`).
pub fn parse_mode(names: &str) -> Result<CacheMode, String> {
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

/// Which TLS versions the server offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TlsVersions {
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

/// Timeouts and intervals that are not flags.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// A client that has not finished its handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// A connection with no read or write progress for this long is closed.
    pub idle_timeout: Duration,
    /// How long open connections may go on after a shutdown signal.
    pub grace: Duration,
    /// How often to print a stats line, if at all.
    pub stats_interval: Option<Duration>,
    /// The most connections served at once.
    pub max_connections: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            grace: Duration::from_secs(5),
            stats_interval: None,
            max_connections: DEFAULT_MAX_CONNECTIONS as usize,
        }
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

async fn run(args: Args) -> Result<(), String> {
    let cache = build_cache(args.capacity, Duration::from_secs(args.timeout), args.mode)?;
    let redis = match (args.redis.clone(), args.redis_cluster.clone()) {
        (Some(url), _) => Some(RedisAt::Single(url)),
        (None, Some(seeds)) => Some(RedisAt::Cluster(seeds)),
        (None, None) => None,
    };
    let fleet = match (&redis, &args.fleet_key_file) {
        (Some(at), key_file) => Some(build_fleet(
            at,
            &args.redis_prefix,
            key_file.as_deref(),
            cache.clone(),
        )?),
        (None, Some(_)) => return Err("--fleet-key-file is for --redis, which is not set".into()),
        (None, None) => None,
    };
    let storage: Arc<dyn StoresServerSessions> = match &fleet {
        #[cfg(feature = "redis")]
        Some(fleet) => fleet.clone(),
        #[cfg(not(feature = "redis"))]
        Some(never) => match *never {},
        None => cache.clone(),
    };
    let tls = tls_config(&args.cert, &args.key, args.tls, storage)?;
    let tickets = match (args.tickets, &redis) {
        (Tickets::Off, _) => None,
        (Tickets::Fleet, None) => {
            return Err("--tickets fleet needs --redis or --redis-cluster".into());
        }
        (Tickets::Fleet, Some(at)) => Some(
            build_ticketer(
                at,
                &args.redis_prefix,
                args.fleet_key_file.as_deref(),
                Duration::from_secs(args.ticket_rotation),
            )
            .await?,
        ),
    };
    let tls = match &tickets {
        Some(tickets) => with_tickets(tls, tickets),
        None => tls,
    };
    let settings = Settings {
        stats_interval: (args.stats_interval > 0).then(|| Duration::from_secs(args.stats_interval)),
        max_connections: args.max_connections as usize,
        ..Settings::default()
    };
    let server = EchoServer::bind(args.listen, tls, cache, settings)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?
        .with_fleet(fleet, args.tls)
        .with_ticket_stats(tickets);
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    info!(%addr, mode = %args.mode, tls = ?args.tls, "echo server started");
    say(&format!("listening on {addr}"));
    let report = server.run(shutdown_signal()).await;
    say(&report.to_string());
    Ok(())
}

/// Prints a line on stdout and flushes it: scripts wait for these lines.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The cache, with a pending-session hook when the mode keeps new sessions out of it.
pub fn build_cache(
    capacity: usize,
    timeout: Duration,
    mode: CacheMode,
) -> Result<Arc<SessionCache>, String> {
    let mut builder = SessionCache::builder()
        .capacity(capacity)
        .timeout(timeout)
        .mode(mode);
    if !mode.stores_internally() {
        builder = builder.on_new_session(hold_pending);
    }
    builder.build().map_err(|e| e.to_string())
}

/// A `ServerConfig` with the certificate and key from PEM files, storing sessions in
/// `storage`. Fails with one line naming the file and the problem.
pub fn tls_config(
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

tokio::task_local! {
    /// New sessions made on this connection that wait for the admission policy.
    static PENDING: RefCell<Vec<Session>>;
}

/// `on_new_session` under `NO_INTERNAL_STORE`: rustls calls `put` inside the handshake,
/// on the connection's task, so the session is parked with that connection.
fn hold_pending(session: &Session) {
    let held = PENDING.try_with(|pending| pending.borrow_mut().push(session.clone()));
    if held.is_err() {
        debug!("new session outside a connection; not held");
    }
}

/// Counts of finished handshakes, and of pauses at the connection cap.
#[derive(Debug, Default)]
pub struct Handshakes {
    /// Full handshakes.
    pub full: AtomicU64,
    /// Resumed handshakes.
    pub resumed: AtomicU64,
    /// Times accepting paused because `max_connections` were open.
    pub limited: AtomicU64,
}

/// What the server reports when asked or when it stops.
#[derive(Debug, Clone)]
pub struct Report {
    /// The cache's counters.
    pub stats: CacheStats,
    /// Full handshakes completed.
    pub full: u64,
    /// Resumed handshakes completed.
    pub resumed: u64,
    /// Times accepting paused at the connection cap.
    pub limited: u64,
    /// The fleet tier's counters, then the fleet ticketer's, as `name=value` pairs.
    pub fleet: Vec<(&'static str, u64)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.stats;
        write!(
            f,
            "stats: hits={} misses={} cb_hits={} timeouts={} cache_full={} entries={} \
             full={} resumed={} limited={}",
            s.hits,
            s.misses,
            s.cb_hits,
            s.timeouts,
            s.cache_full,
            s.entries,
            self.full,
            self.resumed,
            self.limited
        )?;
        self.fleet
            .iter()
            .try_for_each(|(name, value)| write!(f, " {name}={value}"))
    }
}

/// The fleet tier's counters for the report, then its ticketer's.
#[cfg(feature = "redis")]
fn fleet_counters(
    fleet: &Option<FleetHandle>,
    tickets: &Option<TicketsHandle>,
) -> Vec<(&'static str, u64)> {
    let fleet = fleet.iter().flat_map(|fleet| fleet.stats().counters());
    let tickets = tickets.iter().flat_map(|t| t.stats().counters());
    fleet.chain(tickets).collect()
}

#[cfg(not(feature = "redis"))]
fn fleet_counters(
    fleet: &Option<FleetHandle>,
    tickets: &Option<TicketsHandle>,
) -> Vec<(&'static str, u64)> {
    match (fleet, tickets) {
        (Some(never), _) => match *never {},
        (_, Some(never)) => match *never {},
        (None, None) => Vec::new(),
    }
}

/// How connections are taken: tokio-rustls's acceptor, or the fleet's, which claims or
/// fetches before the handshake.
#[derive(Clone)]
enum Acceptor {
    Plain(TlsAcceptor),
    #[cfg(feature = "redis")]
    Fleet(rustls_session_cache::fleet::FleetAcceptor),
}

/// A bound echo server, ready to [`run`](Self::run).
pub struct EchoServer {
    listener: TcpListener,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    tls: Arc<ServerConfig>,
    acceptor: Acceptor,
    cache: Arc<SessionCache>,
    fleet: Arc<Option<FleetHandle>>,
    tickets: Arc<Option<TicketsHandle>>,
    handshakes: Arc<Handshakes>,
    settings: Settings,
}

impl EchoServer {
    /// Binds `addr` and prepares to serve `tls`, whose session store is `cache`.
    pub async fn bind(
        addr: SocketAddr,
        tls: Arc<ServerConfig>,
        cache: Arc<SessionCache>,
        settings: Settings,
    ) -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            acceptor: Acceptor::Plain(TlsAcceptor::from(tls.clone())),
            tls,
            cache,
            fleet: Arc::new(None),
            tickets: Arc::new(None),
            handshakes: Arc::default(),
            settings,
        })
    }

    /// Takes connections through `fleet`'s acceptor (`fleet`'s L1 should be the cache
    /// given to [`bind`](Self::bind)), telling it whether `versions` include TLS 1.3.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub fn with_fleet(self, fleet: Option<FleetHandle>, versions: TlsVersions) -> Self {
        let acceptor = match &fleet {
            #[cfg(feature = "redis")]
            Some(fleet) => Acceptor::Fleet(
                fleet
                    .acceptor(self.tls.clone())
                    .tls13(versions != TlsVersions::Tls12),
            ),
            #[cfg(not(feature = "redis"))]
            Some(never) => match *never {},
            None => self.acceptor.clone(),
        };
        Self {
            acceptor,
            fleet: Arc::new(fleet),
            ..self
        }
    }

    /// Reports `tickets`'s counters in its stats lines (the config given to
    /// [`bind`](Self::bind) should issue tickets with it: see [`with_tickets`]).
    pub fn with_ticket_stats(self, tickets: Option<TicketsHandle>) -> Self {
        Self {
            tickets: Arc::new(tickets),
            ..self
        }
    }

    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; then stops accepting, gives open connections
    /// the grace period, and returns the final report.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Report {
        let mut connections = JoinSet::new();
        let stats_printer = self.settings.stats_interval.map(|every| {
            let (cache, fleet) = (self.cache.clone(), self.fleet.clone());
            let (tickets, handshakes) = (self.tickets.clone(), self.handshakes.clone());
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    say(&report(&cache, &fleet, &tickets, &handshakes).to_string());
                }
            })
        });
        let open = Arc::new(Semaphore::new(self.settings.max_connections));
        let mut limit = LimitLog::default();
        tokio::pin!(shutdown);
        loop {
            // A slot for one more connection; while none is free, nothing is accepted.
            let slot = match open.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    self.handshakes.limited.fetch_add(1, Ordering::Relaxed);
                    limit.paused(self.settings.max_connections);
                    tokio::select! {
                        () = &mut shutdown => break,
                        Some(_) = connections.join_next() => continue,
                    }
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let connection = Connection {
                            peer,
                            acceptor: self.acceptor.clone(),
                            cache: self.cache.clone(),
                            fleet: self.fleet.clone(),
                            handshakes: self.handshakes.clone(),
                            settings: self.settings,
                        };
                        let serve = PENDING.scope(RefCell::default(), connection.serve(tcp));
                        connections.spawn(async move {
                            serve.await;
                            drop(slot);
                        });
                    }
                    Err(error) => {
                        // Out of file descriptors, say: back off briefly, keep serving.
                        warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(self.listener);
        info!(open = connections.len(), "shutting down");
        let drained = timeout(self.settings.grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            info!(
                open = connections.len(),
                "grace period over; closing the rest"
            );
            connections.shutdown().await;
        }
        if let Some(printer) = stats_printer {
            printer.abort();
        }
        report(&self.cache, &self.fleet, &self.tickets, &self.handshakes)
    }
}

/// Logs pauses at the connection cap at `warn`, at most once every 10 s.
#[derive(Default)]
struct LimitLog {
    last: Option<tokio::time::Instant>,
    since: u64,
}

impl LimitLog {
    fn paused(&mut self, max: usize) {
        self.since += 1;
        let now = tokio::time::Instant::now();
        if self
            .last
            .is_none_or(|last| now - last >= Duration::from_secs(10))
        {
            warn!(
                max_connections = max,
                pauses = self.since,
                "connection limit reached; accepting paused until one closes"
            );
            self.last = Some(now);
            self.since = 0;
        }
    }
}

fn report(
    cache: &SessionCache,
    fleet: &Option<FleetHandle>,
    tickets: &Option<TicketsHandle>,
    handshakes: &Handshakes,
) -> Report {
    Report {
        stats: cache.stats(),
        full: handshakes.full.load(Ordering::Relaxed),
        resumed: handshakes.resumed.load(Ordering::Relaxed),
        limited: handshakes.limited.load(Ordering::Relaxed),
        fleet: fleet_counters(fleet, tickets),
    }
}

/// One client's connection.
struct Connection {
    peer: SocketAddr,
    acceptor: Acceptor,
    cache: Arc<SessionCache>,
    fleet: Arc<Option<FleetHandle>>,
    handshakes: Arc<Handshakes>,
    settings: Settings,
}

impl Connection {
    /// Handshakes, logs, echoes. Whatever goes wrong ends this connection only.
    async fn serve(self, tcp: TcpStream) {
        let _ = tcp.set_nodelay(true);
        let limit = self.settings.handshake_timeout;
        match self.acceptor.clone() {
            Acceptor::Plain(acceptor) => self.serve_tls(timeout(limit, acceptor.accept(tcp))).await,
            #[cfg(feature = "redis")]
            Acceptor::Fleet(acceptor) => self.serve_tls(timeout(limit, acceptor.accept(tcp))).await,
        }
    }

    async fn serve_tls<IO: AsyncRead + AsyncWrite + Unpin>(
        self,
        handshake: impl Future<Output = Result<std::io::Result<TlsStream<IO>>, Elapsed>>,
    ) {
        let peer = self.peer;
        let tls = match handshake.await {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => return debug!(%peer, %error, "handshake failed"),
            Err(_) => return debug!(%peer, "handshake timed out"),
        };
        let (_, conn) = tls.get_ref();
        let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
        let counter = if resumed {
            &self.handshakes.resumed
        } else {
            &self.handshakes.full
        };
        counter.fetch_add(1, Ordering::Relaxed);
        info!(
            %peer,
            version = ?conn.protocol_version().unwrap_or(rustls::ProtocolVersion::Unknown(0)),
            suite = ?conn
                .negotiated_cipher_suite()
                .map_or(rustls::CipherSuite::Unknown(0), |s| s.suite()),
            handshake = if resumed { "resumed" } else { "full" },
            "connection"
        );
        match self.echo(tls).await {
            Ok(()) => debug!(%peer, "connection closed"),
            Err(error) => debug!(%peer, %error, "connection ended"),
        }
    }

    async fn echo<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut tls: TlsStream<IO>,
    ) -> std::io::Result<()> {
        let idle = self.settings.idle_timeout;
        let mut buf = vec![0; 16 * 1024];
        let mut lines = LineWatch::default();
        loop {
            let n = timeout(idle, tls.read(&mut buf)).await??;
            if n == 0 {
                break;
            }
            if lines.feed(&buf[..n]) {
                self.admit_pending();
            }
            timeout(idle, tls.write_all(&buf[..n])).await??;
        }
        timeout(idle, tls.shutdown()).await?
    }

    /// The admission policy: this connection's pending sessions enter the cache (and,
    /// with a fleet, Redis).
    fn admit_pending(&self) {
        let pending = PENDING
            .try_with(|pending| std::mem::take(&mut *pending.borrow_mut()))
            .unwrap_or_default();
        let admitted = pending
            .into_iter()
            .filter(|session| self.admit(session.clone()))
            .count();
        info!(peer = %self.peer, admitted, "client asked to be remembered");
    }

    fn admit(&self, session: Session) -> bool {
        match &*self.fleet {
            #[cfg(feature = "redis")]
            Some(fleet) => fleet.add_session(session),
            #[cfg(not(feature = "redis"))]
            Some(never) => match *never {},
            None => self.cache.add_session(session),
        }
    }
}

/// Watches a byte stream for a line that is exactly [`ADMIT_LINE`] (a trailing `\r`
/// allowed), holding at most one line's worth of it.
#[derive(Default)]
struct LineWatch {
    line: Vec<u8>,
    overlong: bool,
}

impl LineWatch {
    /// Feeds bytes; returns whether they completed an admit line.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        let mut seen = false;
        for &byte in bytes {
            if byte == b'\n' {
                let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
                seen |= !self.overlong && line == ADMIT_LINE;
                self.line.clear();
                self.overlong = false;
            } else if self.line.len() > ADMIT_LINE.len() {
                self.overlong = true;
            } else {
                self.line.push(byte);
            }
        }
        seen
    }
}

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
