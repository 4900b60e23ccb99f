//! Shared test helpers: certificates from rcgen, rustls configs on the ring provider, and
//! a handshake pumped in memory.
#![allow(dead_code, unreachable_pub)]

pub mod hello;
pub mod leak;
pub mod process;
#[cfg(feature = "redis")]
pub mod redis;
pub mod reframe;
pub mod server;

use std::ops::DerefMut;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use rustls::client::Resumption;
use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::StoresServerSessions;
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, HandshakeKind, ProtocolVersion,
    RootCertStore, ServerConfig, ServerConnection, SupportedProtocolVersion,
};
use rustls_session_cache::{CacheMode, RemovalCause, Session, SessionCache};

pub const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;
pub const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;
pub const VERSIONS: [&SupportedProtocolVersion; 2] = [TLS12, TLS13];

/// A CA, and a `localhost` certificate it signed, made once per test binary.
pub struct Pki {
    pub roots: RootCertStore,
    pub chain: Vec<CertificateDer<'static>>,
    pub key_der: Vec<u8>,
    /// A client certificate the same CA signed, for client authentication.
    pub client_chain: Vec<CertificateDer<'static>>,
    pub client_key_der: Vec<u8>,
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client = rcgen::CertificateParams::new(vec!["client.example".to_owned()])
            .unwrap()
            .signed_by(&client_key, &ca)
            .unwrap();
        let ca_der = CertificateDer::from(ca.as_ref().der().to_vec());
        let mut roots = RootCertStore::empty();
        roots.add(ca_der).unwrap();
        Pki {
            roots,
            chain: vec![CertificateDer::from(leaf.der().to_vec())],
            key_der: leaf_key.serialize_der(),
            client_chain: vec![CertificateDer::from(client.der().to_vec())],
            client_key_der: client_key.serialize_der(),
        }
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// A server config offering only `version`, storing sessions in `cache`.
pub fn server_config(
    version: &'static SupportedProtocolVersion,
    cache: &Arc<SessionCache>,
) -> Arc<ServerConfig> {
    server_config_with_store(version, cache.clone())
}

pub fn server_config_with_store(
    version: &'static SupportedProtocolVersion,
    store: Arc<dyn StoresServerSessions>,
) -> Arc<ServerConfig> {
    let pki = pki();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der.clone()));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), key)
        .unwrap();
    config.session_storage = store;
    Arc::new(config)
}

/// As [`server_config_with_store`], but requiring a client certificate from the test CA.
pub fn mtls_server_config(
    version: &'static SupportedProtocolVersion,
    store: Arc<dyn StoresServerSessions>,
) -> Arc<ServerConfig> {
    let pki = pki();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der.clone()));
    let verifier = client_verifier();
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki.chain.clone(), key)
        .unwrap();
    config.session_storage = store;
    Arc::new(config)
}

/// The verifier [`mtls_server_config`] uses: client certificates from the test CA,
/// required.
pub fn client_verifier() -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
    rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(pki().roots.clone()),
        provider(),
    )
    .build()
    .unwrap()
}

/// As [`client_config`], with a client certificate to present when asked.
pub fn client_config_with_cert(version: &'static SupportedProtocolVersion) -> Arc<ClientConfig> {
    let pki = pki();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.client_key_der.clone()));
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(pki.roots.clone())
        .with_client_auth_cert(pki.client_chain.clone(), key)
        .unwrap();
    config.resumption = Resumption::in_memory_sessions(64);
    Arc::new(config)
}

/// A client config offering only `version`, with its own in-memory resumption store.
/// Reuse one across connections for the client to resume.
pub fn client_config(version: &'static SupportedProtocolVersion) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(pki().roots.clone())
        .with_no_client_auth();
    config.resumption = Resumption::in_memory_sessions(64);
    Arc::new(config)
}

/// A tokio-rustls client offering one TLS version, trusting the shipped `certs/ca.crt`,
/// remembering its sessions (rustls's default in-memory store).
pub fn tls_connector(version: &'static SupportedProtocolVersion) -> tokio_rustls::TlsConnector {
    let config = shipped_client_config(ring::default_provider(), &[version]);
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A client config on `provider` offering `versions`, trusting the shipped
/// `certs/ca.crt`, remembering its sessions (rustls's default in-memory store).
pub fn shipped_client_config(
    provider: rustls::crypto::CryptoProvider,
    versions: &[&'static SupportedProtocolVersion],
) -> ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/ca.crt");
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// One connection to an echo server: handshake, echo `line`, close. Returns how the
/// handshake went (as the client saw it) and how long it took from the TCP connect.
pub async fn connect_saying(
    client: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    line: &[u8],
) -> (HandshakeKind, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = client
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let took = started.elapsed();
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    tls.write_all(line).await.unwrap();
    let mut echo = vec![0; line.len()];
    tls.read_exact(&mut echo).await.unwrap();
    assert_eq!(echo, line);
    tls.shutdown().await.unwrap();
    (kind, took)
}

/// What one handshake did, as both ends report it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub server: HandshakeKind,
    pub client: HandshakeKind,
    pub version: ProtocolVersion,
    /// Whether the server holds a client certificate chain for the connection: one the
    /// client presented, or one a resumed session carried.
    pub client_certified: bool,
}

impl Outcome {
    /// Both ends agree on `kind`; panics with the whole outcome if not.
    pub fn assert_kind(self, kind: HandshakeKind) {
        assert_eq!((self.server, self.client), (kind, kind), "{self:?}");
    }
}

/// Runs a whole handshake in memory, then delivers anything the server sent after it
/// (TLS 1.3 tickets) to the client, so the client can resume next time.
pub fn handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> Outcome {
    handshake_then(server, client, |_| {})
}

/// As [`handshake`], handing the server's connection to `after` once it is done.
pub fn handshake_then(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    after: impl FnOnce(&ServerConnection),
) -> Outcome {
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let mut c =
        ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut rounds = 0;
    while s.is_handshaking() || c.is_handshaking() {
        rounds += 1;
        assert!(rounds < 20, "handshake did not finish");
        transfer(&mut c, &mut s);
        s.process_new_packets().unwrap();
        transfer(&mut s, &mut c);
        c.process_new_packets().unwrap();
    }
    transfer(&mut s, &mut c);
    c.process_new_packets().unwrap();
    after(&s);
    Outcome {
        server: s.handshake_kind().unwrap(),
        client: c.handshake_kind().unwrap(),
        version: s.protocol_version().unwrap(),
        client_certified: s.peer_certificates().is_some(),
    }
}

fn transfer<L, R>(
    from: &mut impl DerefMut<Target = ConnectionCommon<L>>,
    to: &mut impl DerefMut<Target = ConnectionCommon<R>>,
) {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rd = buf.as_slice();
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
    }
}

/// Records every callback, in order, for exact assertions.
#[derive(Default)]
pub struct Recorder {
    pub new_sessions: Mutex<Vec<Session>>,
    pub removed: Mutex<Vec<(Vec<u8>, RemovalCause)>>,
    pub lookups: Mutex<Vec<Vec<u8>>>,
}

impl Recorder {
    pub fn new_ids(&self) -> Vec<Vec<u8>> {
        self.new_sessions
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.id().to_vec())
            .collect()
    }

    pub fn removed(&self) -> Vec<(Vec<u8>, RemovalCause)> {
        self.removed.lock().unwrap().clone()
    }

    pub fn causes(&self) -> Vec<RemovalCause> {
        self.removed().into_iter().map(|(_, cause)| cause).collect()
    }
}

/// A builder whose `on_new_session` and `on_remove` record into the returned recorder.
pub fn recording_builder() -> (rustls_session_cache::SessionCacheBuilder, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let (on_new, on_remove) = (recorder.clone(), recorder.clone());
    let builder = SessionCache::builder()
        .on_new_session(move |s| on_new.new_sessions.lock().unwrap().push(s.clone()))
        .on_remove(move |s, cause| {
            on_remove
                .removed
                .lock()
                .unwrap()
                .push((s.id().to_vec(), cause))
        });
    (builder, recorder)
}

/// Every mode the examples and tests exercise, with whether a second connection from
/// the same client resumes on TLS 1.2 and on TLS 1.3 when nothing else intervenes
/// (no callbacks; under `NO_INTERNAL_STORE` nobody admits sessions).
pub fn mode_matrix() -> [(CacheMode, HandshakeKind, HandshakeKind); 7] {
    use HandshakeKind::{Full, Resumed};
    let server = CacheMode::SERVER;
    [
        (server, Resumed, Resumed),
        (CacheMode::OFF, Full, Full),
        (server | CacheMode::NO_AUTO_CLEAR, Resumed, Resumed),
        (server | CacheMode::UPDATE_TIME, Resumed, Resumed),
        (server | CacheMode::NO_INTERNAL_LOOKUP, Full, Full),
        (server | CacheMode::NO_INTERNAL_STORE, Full, Full),
        (server | CacheMode::NO_INTERNAL, Full, Full),
    ]
}

/// A session with a 32-byte id of `n` and an 83-byte value of `n`.
pub fn session(n: u8) -> Session {
    Session::new(vec![n; 32], vec![n; 83])
}

pub fn id(n: u8) -> Vec<u8> {
    vec![n; 32]
}

pub fn value(n: u8) -> Vec<u8> {
    vec![n; 83]
}

/// A time far enough in the past that a session created then has expired under any
/// timeout the cache allows.
pub fn long_ago() -> SystemTime {
    SystemTime::now() - Duration::from_secs(8 * 86_400)
}

/// Waits (up to 10 s) until every write `fleet` queued so far has been written to
/// Redis, dropped or cancelled.
#[cfg(feature = "redis")]
pub async fn settle(fleet: &rustls_session_cache::fleet::Fleet) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = fleet.stats();
        let done = s.writes_written + s.writes_dropped + s.writes_cancelled;
        if done >= s.writes_queued && s.writes_pending == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "writes did not settle: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
