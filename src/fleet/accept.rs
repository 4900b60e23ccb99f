//! [`FleetAcceptor`]: how connections come in through a fleet. It reads the ClientHello
//! through rustls, claims or fetches what it offers to resume, and then lets rustls
//! finish the handshake with those claims, and only those.
//!
//! 1. **Read the hello the way rustls reads it.** `tokio_rustls::LazyConfigAcceptor`
//!    reads records until rustls has a whole ClientHello: split over records or over
//!    segments, or slow, it is rustls's own reading. The stream under it, a
//!    [`HelloTap`], keeps a copy of the bytes rustls took. Waiting is event-driven: a
//!    stalled client costs a parked task and its few bytes, bounded by the hello
//!    timeout.
//! 2. **Take the offer from those bytes**: the session id and PSK identities rustls will
//!    look up. If they do not parse, or their cipher suites are not the ones rustls
//!    parsed, nothing is fetched or claimed.
//! 3. **Claim or fetch** (see `fetch`), within the fetch deadline.
//! 4. **Hand over.** rustls runs the handshake with the connection's claims lent to it
//!    (see `claims`): its `take`s can redeem those and nothing else, for the first
//!    ClientHello or a second one after a HelloRetryRequest.

use std::io;
use std::sync::Arc;

use rustls::server::Acceptor;
use rustls::server::StoresServerSessions;
use rustls::{ProtocolVersion, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use super::Fleet;
use super::claims::{self, Claims};
use super::context::Scope;
use super::fetch::Prepared;
use super::tap::HelloTap;

/// Accepts TLS connections for a [`Fleet`]: the way applications take connections when
/// their sessions are shared through Redis. Cheap to clone; one per `ServerConfig`.
///
/// Made by [`Fleet::acceptor`], which also makes the fleet the config's session store.
///
/// ```no_run
/// use std::sync::Arc;
/// use rustls_session_cache::SessionCache;
/// use rustls_session_cache::fleet::{Fleet, FleetKeys};
///
/// # async fn run(config: rustls::ServerConfig) -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder(SessionCache::new(20_480))
///     .redis_url("redis://127.0.0.1:6379")
///     .keys(FleetKeys::from_file("/etc/myservice/fleet.keys")?)
///     .build()?;
/// let acceptor = fleet.acceptor(Arc::new(config));
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
/// loop {
///     let (tcp, _) = listener.accept().await?;
///     let acceptor = acceptor.clone();
///     tokio::spawn(async move {
///         let timeout = std::time::Duration::from_secs(10);
///         if let Ok(Ok(tls)) = tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
///             // serve `tls`
///         }
///     });
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct FleetAcceptor {
    fleet: Arc<Fleet>,
    /// The resumption context it claims and fetches in.
    scope: Scope,
    config: Arc<ServerConfig>,
    tls13: bool,
}

impl FleetAcceptor {
    /// An acceptor in `scope`, whose config's session store becomes `storage` (the
    /// fleet, or its view of that context).
    pub(crate) fn new(
        fleet: Arc<Fleet>,
        scope: Scope,
        storage: Arc<dyn StoresServerSessions>,
        config: Arc<ServerConfig>,
    ) -> Self {
        let held: *const () = Arc::as_ptr(&config.session_storage).cast();
        let config = if core::ptr::eq(held, Arc::as_ptr(&storage).cast()) {
            config
        } else {
            let mut config = Arc::unwrap_or_clone(config);
            config.session_storage = storage;
            Arc::new(config)
        };
        let tls13 = config
            .crypto_provider()
            .cipher_suites
            .iter()
            .any(|suite| suite.version().version == ProtocolVersion::TLSv1_3);
        Self {
            fleet,
            scope,
            config,
            tls13,
        }
    }

    /// Tells the acceptor whether its config offers TLS 1.3. rustls keeps a config's
    /// versions to itself, so the acceptor assumes it does when its crypto provider has a
    /// TLS 1.3 cipher suite. Say `false` for a config built for TLS 1.2 only: a TLS 1.3
    /// client's session id then names a TLS 1.2 session to fetch, and its tickets are
    /// not claimed (a claim would only use them up).
    #[must_use]
    pub fn tls13(self, offered: bool) -> Self {
        Self {
            tls13: offered,
            ..self
        }
    }

    /// The config connections are accepted with; its session store is the fleet.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// The fleet.
    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }

    /// Reads the ClientHello from `io`, claims or fetches what it offers to resume, and
    /// runs the TLS handshake.
    ///
    /// It waits for the hello for up to the fleet's hello timeout, then for Redis for up
    /// to its fetch deadline; whatever goes wrong before the handshake (a hello it
    /// cannot follow, a slow or absent Redis, too many connections waiting) makes the
    /// handshake full, never failed. Bound the whole with a timeout of your own, as with
    /// `tokio_rustls::TlsAcceptor`.
    ///
    /// # Errors
    ///
    /// What `tokio_rustls` reports for a failed handshake, and
    /// [`io::ErrorKind::TimedOut`] when no whole ClientHello came within the hello
    /// timeout.
    pub async fn accept<IO>(&self, io: IO) -> io::Result<TlsStream<HelloTap<IO>>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let fleet = &self.fleet;
        let reading = LazyConfigAcceptor::new(Acceptor::default(), HelloTap::new(io));
        let mut start = match tokio::time::timeout(fleet.config.hello_timeout, reading).await {
            Ok(started) => started?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no whole ClientHello within the hello timeout",
                ));
            }
        };
        let (claims, prepared) = if fleet.l1.mode().looks_up_internally() {
            let suites: Vec<u16> = start
                .client_hello()
                .cipher_suites()
                .iter()
                .map(|suite| u16::from(*suite))
                .collect();
            match fleet.read_offer(start.io.recorded(), &suites) {
                Some(offer) => {
                    let ticketer = self.config.ticketer.enabled();
                    fleet
                        .claim_or_fetch(&self.scope, offer, self.tls13, ticketer)
                        .await
                }
                None => (Claims::new(fleet.owner(&self.scope)), Prepared::default()),
            }
        } else {
            // Only the lookup callback resumes: nothing to fetch or claim.
            (Claims::new(fleet.owner(&self.scope)), Prepared::default())
        };
        start.io.hello_read(prepared);
        let config = self.config.clone();
        claims::lend(claims, async move {
            // rustls processes the hello right here, in `into_stream_with`, and tells
            // which version it chose; later polls finish the handshake.
            let handshake = start.into_stream_with(config, |conn| {
                claims::negotiated(conn.protocol_version());
            });
            handshake.await
        })
        .await
    }
}

impl core::fmt::Debug for FleetAcceptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FleetAcceptor")
            .field("fleet", &self.fleet)
            .field("context", &self.scope.name)
            .field("tls13", &self.tls13)
            .finish_non_exhaustive()
    }
}
