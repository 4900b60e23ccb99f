//! The server: the accept loop under the connection cap, one connection's handshake and
//! echo, the graceful shutdown, and the stats line.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls::HandshakeKind;
use rustls_session_cache::{CacheStats, SessionCache};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::error::Elapsed;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

use crate::policy::Admission;

/// The default cap on open connections, nginx's default `worker_connections`: well under
/// the usual 1024 open files, so accepting pauses before the descriptors run out.
pub(crate) const DEFAULT_MAX_CONNECTIONS: u32 = 512;

/// How connections are taken: tokio-rustls's acceptor, or the fleet's, which claims or
/// fetches before the handshake.
#[derive(Clone)]
pub(crate) enum Acceptor {
    Plain(TlsAcceptor),
    #[cfg(feature = "redis")]
    Fleet(rustls_session_cache::fleet::FleetAcceptor),
}

/// Counters the stats line shows after the cache's and the server's, as `name=value`.
pub(crate) type Counters = Arc<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

/// Told of each finished handshake (the metrics count them by kind and version).
pub(crate) type OnHandshake = Arc<dyn Fn(&rustls::CommonState) + Send + Sync>;

/// Timeouts and intervals that are not flags.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// A client that has not finished its handshake by then is dropped.
    pub(crate) handshake_timeout: Duration,
    /// A connection with no read or write progress for this long is closed.
    pub(crate) idle_timeout: Duration,
    /// How long open connections may go on after a shutdown signal.
    pub(crate) grace: Duration,
    /// How often to print a stats line, if at all.
    pub(crate) stats_interval: Option<Duration>,
    /// The most connections served at once.
    pub(crate) max_connections: usize,
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

/// Counts of finished handshakes, and of pauses at the connection cap.
#[derive(Debug, Default)]
struct Handshakes {
    full: AtomicU64,
    resumed: AtomicU64,
    limited: AtomicU64,
}

/// What the stats line says.
struct Report {
    stats: CacheStats,
    full: u64,
    resumed: u64,
    limited: u64,
    /// The fleet tier's counters, then the fleet ticketer's.
    more: Vec<(&'static str, u64)>,
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
        self.more
            .iter()
            .try_for_each(|(name, value)| write!(f, " {name}={value}"))
    }
}

/// Prints a line on stdout and flushes it: scripts wait for these lines.
pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A bound echo server, ready to [`run`](Self::run).
pub(crate) struct EchoServer {
    listener: TcpListener,
    acceptor: Acceptor,
    admission: Admission,
    cache: Arc<SessionCache>,
    more: Counters,
    on_handshake: OnHandshake,
    settings: Settings,
}

/// What the stats line is made of.
struct Stats {
    cache: Arc<SessionCache>,
    handshakes: Handshakes,
    more: Counters,
}

impl Stats {
    fn report(&self) -> Report {
        let h = &self.handshakes;
        Report {
            stats: self.cache.stats(),
            full: h.full.load(Ordering::Relaxed),
            resumed: h.resumed.load(Ordering::Relaxed),
            limited: h.limited.load(Ordering::Relaxed),
            more: (self.more)(),
        }
    }
}

impl EchoServer {
    /// Binds `addr`, to take connections with `acceptor`; the stats line shows `cache`'s
    /// counters. Sessions are admitted into `cache` until [`admitting`](Self::admitting)
    /// says otherwise.
    pub(crate) async fn bind(
        addr: SocketAddr,
        acceptor: Acceptor,
        cache: Arc<SessionCache>,
        settings: Settings,
    ) -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            acceptor,
            admission: Admission::into_cache(cache.clone()),
            cache,
            more: Arc::new(Vec::new),
            on_handshake: Arc::new(|_| {}),
            settings,
        })
    }

    /// Admits sessions with `admission` instead.
    pub(crate) fn admitting(self, admission: Admission) -> Self {
        Self { admission, ..self }
    }

    /// Shows `more` counters in the stats line.
    pub(crate) fn reporting(self, more: Counters) -> Self {
        Self { more, ..self }
    }

    /// Tells `on_handshake` of each finished handshake.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn observing(self, on_handshake: OnHandshake) -> Self {
        Self {
            on_handshake,
            ..self
        }
    }

    /// The address it listens on (the real port when bound to port 0).
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; then stops accepting, gives open connections
    /// the grace period, and returns the final stats line.
    pub(crate) async fn run(self, shutdown: impl Future<Output = ()>) -> String {
        let stats = Arc::new(Stats {
            cache: self.cache,
            handshakes: Handshakes::default(),
            more: self.more,
        });
        let mut connections = JoinSet::new();
        let stats_printer = self.settings.stats_interval.map(|every| {
            let stats = stats.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    say(&stats.report().to_string());
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
                    stats.handshakes.limited.fetch_add(1, Ordering::Relaxed);
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
                            admission: self.admission.clone(),
                            on_handshake: self.on_handshake.clone(),
                            stats: stats.clone(),
                            settings: self.settings,
                        };
                        let serve = Admission::scope(connection.serve(tcp));
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
        stats.report().to_string()
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

/// One client's connection.
struct Connection {
    peer: SocketAddr,
    acceptor: Acceptor,
    admission: Admission,
    on_handshake: OnHandshake,
    stats: Arc<Stats>,
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
        let handshakes = &self.stats.handshakes;
        let counter = if resumed {
            &handshakes.resumed
        } else {
            &handshakes.full
        };
        counter.fetch_add(1, Ordering::Relaxed);
        (self.on_handshake)(conn);
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
        let mut watch = self.admission.watch(self.peer);
        loop {
            let n = timeout(idle, tls.read(&mut buf)).await??;
            if n == 0 {
                break;
            }
            watch.feed(&buf[..n]);
            timeout(idle, tls.write_all(&buf[..n])).await??;
        }
        timeout(idle, tls.shutdown()).await?
    }
}
