//! An echo server for tests and benches, in-process on a free port of 127.0.0.1, so a
//! test can reach the cache (and fleet) it serves from: expire, remove, read counters.
//! It takes connections with tokio-rustls's acceptor or a fleet's, counts full and
//! resumed handshakes, and echoes every byte; stopping it returns a [`Report`].
//!
//! This is not the example: what `examples/echo_server` itself does (its admission
//! policy, connection cap, timeouts, grace period, stats line) is tested on its binary,
//! through `tests/common/process.rs`.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::StoresServerSessions;
use rustls::{HandshakeKind, ServerConfig, SupportedProtocolVersion};
use rustls_session_cache::{CacheStats, SessionCache};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::server::TlsStream;

/// Called with each chunk a connection's client sends, before it is echoed.
pub type OnData = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// A config for the shipped certificate (`certs/server.crt`, signed by `certs/ca.crt`)
/// on `provider`, offering `versions`, with rustls's default session store.
pub fn shipped_config_on(
    provider: CryptoProvider,
    versions: &[&'static SupportedProtocolVersion],
) -> ServerConfig {
    let file = |name: &str| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    let chain = CertificateDer::pem_file_iter(file("certs/server.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(file("certs/server.key")).unwrap();
    ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap()
}

/// [`shipped_config_on`] ring, storing sessions in `store`.
pub fn shipped_config(
    versions: &[&'static SupportedProtocolVersion],
    store: Arc<dyn StoresServerSessions>,
) -> Arc<ServerConfig> {
    let mut config = shipped_config_on(rustls::crypto::ring::default_provider(), versions);
    config.session_storage = store;
    Arc::new(config)
}

/// What to serve, before [`start`](Self::start).
pub struct Serve {
    config: Arc<ServerConfig>,
    cache: Arc<SessionCache>,
    on_data: Option<OnData>,
    #[cfg(feature = "redis")]
    fleet: Option<(Arc<rustls_session_cache::fleet::Fleet>, bool)>,
    #[cfg(feature = "redis")]
    ticketer: Option<Arc<rustls_session_cache::fleet::FleetTicketer>>,
}

impl Serve {
    /// Serves `config` through tokio-rustls's acceptor; the report has `cache`'s stats.
    pub fn new(config: Arc<ServerConfig>, cache: Arc<SessionCache>) -> Self {
        Self {
            config,
            cache,
            on_data: None,
            #[cfg(feature = "redis")]
            fleet: None,
            #[cfg(feature = "redis")]
            ticketer: None,
        }
    }

    /// Calls `hook` with what clients send.
    pub fn on_data(self, hook: impl Fn(&[u8]) + Send + Sync + 'static) -> Self {
        Self {
            on_data: Some(Arc::new(hook)),
            ..self
        }
    }

    /// Takes connections through `fleet`'s acceptor instead, told whether the config
    /// offers TLS 1.3; the report has its counters.
    #[cfg(feature = "redis")]
    pub fn through(self, fleet: &Arc<rustls_session_cache::fleet::Fleet>, tls13: bool) -> Self {
        Self {
            fleet: Some((fleet.clone(), tls13)),
            ..self
        }
    }

    /// Issues tickets with `ticketer`; the report has its counters.
    #[cfg(feature = "redis")]
    pub fn tickets(self, ticketer: &Arc<rustls_session_cache::fleet::FleetTicketer>) -> Self {
        let mut config = Arc::unwrap_or_clone(self.config);
        config.ticketer = ticketer.clone();
        Self {
            config: Arc::new(config),
            ticketer: Some(ticketer.clone()),
            ..self
        }
    }

    /// Binds a free port and serves until [`Running::stop`] (or, if the `Running` is
    /// dropped, until the runtime ends).
    pub async fn start(self) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(listener, counts, async {
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
        Running { addr, stop, task }
    }

    async fn serve(
        self,
        listener: TcpListener,
        counts: Arc<Counts>,
        stop: impl Future<Output = ()>,
    ) -> Report {
        #[cfg(feature = "redis")]
        let fleet = self
            .fleet
            .as_ref()
            .map(|(fleet, tls13)| fleet.acceptor(self.config.clone()).tls13(*tls13));
        let plain = tokio_rustls::TlsAcceptor::from(self.config.clone());
        let mut connections = JoinSet::new();
        tokio::pin!(stop);
        loop {
            let (tcp, _) = tokio::select! {
                () = &mut stop => break,
                accepted = listener.accept() => accepted.unwrap(),
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let (counts, on_data) = (counts.clone(), self.on_data.clone());
            #[cfg(feature = "redis")]
            if let Some(fleet) = fleet.clone() {
                connections
                    .spawn(async move { echo(fleet.accept(tcp).await, &counts, on_data).await });
                continue;
            }
            let accept = plain.accept(tcp);
            connections.spawn(async move { echo(accept.await, &counts, on_data).await });
        }
        connections.shutdown().await;
        self.report(&counts)
    }

    fn report(&self, counts: &Counts) -> Report {
        #[cfg(feature = "redis")]
        let fleet = {
            let fleet = self.fleet.iter().flat_map(|(f, _)| f.stats().counters());
            let tickets = self.ticketer.iter().flat_map(|t| t.stats().counters());
            fleet.chain(tickets).collect()
        };
        #[cfg(not(feature = "redis"))]
        let fleet = Vec::new();
        Report {
            stats: self.cache.stats(),
            full: counts.full.load(Ordering::Relaxed),
            resumed: counts.resumed.load(Ordering::Relaxed),
            fleet,
        }
    }
}

#[derive(Default)]
struct Counts {
    full: AtomicU64,
    resumed: AtomicU64,
}

/// Counts the handshake, then echoes until the client closes; any error ends only this
/// connection.
async fn echo<IO: AsyncRead + AsyncWrite + Unpin>(
    handshake: std::io::Result<TlsStream<IO>>,
    counts: &Counts,
    on_data: Option<OnData>,
) {
    let Ok(mut tls) = handshake else { return };
    let counter = match tls.get_ref().1.handshake_kind() {
        Some(HandshakeKind::Resumed) => &counts.resumed,
        _ => &counts.full,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let mut buf = vec![0; 16 * 1024];
    while let Ok(n @ 1..) = tls.read(&mut buf).await {
        if let Some(hook) = &on_data {
            hook(&buf[..n]);
        }
        if tls.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = tls.shutdown().await;
}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Report>,
}

impl Running {
    /// Stops accepting, ends open connections, and reports.
    pub async fn stop(self) -> Report {
        self.stop.send(()).unwrap();
        self.task.await.unwrap()
    }
}

/// What a server did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The cache's counters.
    pub stats: CacheStats,
    /// Full handshakes completed.
    pub full: u64,
    /// Resumed handshakes completed.
    pub resumed: u64,
    /// The fleet's counters, then its ticketer's, as `name=value` pairs.
    pub fleet: Vec<(&'static str, u64)>,
}
