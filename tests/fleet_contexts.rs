//! Resumption contexts through the fleet, against a real `redis-server`: two servers,
//! each serving a public config and an admin config that requires client
//! certificates, sharing one fleet. No session or ticket made in one context resumes in
//! the other, on either server; within a context, they resume across servers.
#![cfg(feature = "redis")]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::redis::Redis;
use common::{TLS12, TLS13, VERSIONS, client_config_with_cert, mtls_server_config, settle};
use rustls::HandshakeKind::{self, Full, Resumed};
use rustls::pki_types::ServerName;
use rustls::server::StoresServerSessions;
use rustls::{ServerConfig, SupportedProtocolVersion};
use rustls_session_cache::SessionCache;
use rustls_session_cache::fleet::{Fleet, FleetAcceptor, FleetKeys, FleetTicketer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

const KEY1: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// Accepts connections through `acceptor` on a free port: handshake, echo one line,
/// close.
async fn serve(acceptor: FleetAcceptor) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut line = [0; 5];
                if tls.read_exact(&mut line).await.is_ok() {
                    let _ = tls.write_all(&line).await;
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

/// One server: a fleet, and its public and admin ports, each its own context.
struct Server {
    fleet: Arc<Fleet>,
    public: SocketAddr,
    admin: SocketAddr,
}

impl Server {
    async fn start(redis: &Redis, version: &'static SupportedProtocolVersion) -> Self {
        let fleet = Fleet::builder(SessionCache::new(1024))
            .redis_url(redis.url())
            .keys(FleetKeys::parse(KEY1).unwrap())
            .build()
            .unwrap();
        let (public, admin) = (
            fleet.context("public").unwrap(),
            fleet.context("admin").unwrap(),
        );
        let open = common::server_config_with_store(version, public.clone());
        let mtls = mtls_server_config(version, admin.clone());
        Self {
            public: serve(public.acceptor(open)).await,
            admin: serve(admin.acceptor(mtls)).await,
            fleet,
        }
    }
}

/// A client with a client certificate (sent only where asked for), remembering its
/// sessions across servers and ports (they share one name and certificate).
fn client(version: &'static SupportedProtocolVersion) -> TlsConnector {
    TlsConnector::from(client_config_with_cert(version))
}

async fn connect(client: &TlsConnector, addr: SocketAddr) -> HandshakeKind {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = client.connect(name, tcp).await.unwrap();
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    tls.write_all(b"ping\n").await.unwrap();
    let mut echo = [0; 5];
    tls.read_exact(&mut echo).await.unwrap();
    let _ = tls.shutdown().await;
    kind
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_crosses_contexts_through_the_fleet_and_each_crosses_servers() {
    for version in VERSIONS {
        let redis = Redis::start();
        let (a, b) = (
            Server::start(&redis, version).await,
            Server::start(&redis, version).await,
        );
        for (from, to, other) in [(a.public, b.public, b.admin), (a.admin, b.admin, b.public)] {
            let client = client(version);
            assert_eq!(connect(&client, from).await, Full);
            settle(&a.fleet).await;
            // Offered to the other context on the other server: full.
            assert_eq!(connect(&client, other).await, Full, "{version:?}");
            settle(&b.fleet).await;
            // A fresh session from the first context resumes on the other server.
            let client = self::client(version);
            assert_eq!(connect(&client, from).await, Full);
            settle(&a.fleet).await;
            assert_eq!(connect(&client, to).await, Resumed, "{version:?}");
        }
        // Redis keys name their context: `rsc:hex(name):hex(id)`.
        let keys: Vec<String> = redis.all_values().into_iter().map(|(k, _)| k).collect();
        let public = format!("rsc:{}:", hex(b"public"));
        let admin = format!("rsc:{}:", hex(b"admin"));
        assert!(
            keys.iter()
                .all(|k| k.starts_with(&public) || k.starts_with(&admin)),
            "{keys:?}"
        );
        assert!(keys.iter().any(|k| k.starts_with(&public)));
        assert!(keys.iter().any(|k| k.starts_with(&admin)));
    }
}

/// An entry copied under another context's Redis key does not open there: the key is
/// bound into the sealed entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_moved_to_another_contexts_key_fails_to_open() {
    let redis = Redis::start();
    let (a, b) = (
        Server::start(&redis, TLS12).await,
        Server::start(&redis, TLS12).await,
    );
    let client = client(TLS12);
    assert_eq!(connect(&client, a.public).await, Full);
    settle(&a.fleet).await;
    let (key, _) = redis.all_values().pop().unwrap();
    let moved = key.replace(&hex(b"public"), &hex(b"admin"));
    assert_eq!(redis.command(&format!("COPY {key} {moved}")), ":1\r\n");
    // The client's session id, offered to the admin port, finds the moved entry, which
    // fails to open: a full handshake, counted.
    assert_eq!(connect(&client, b.admin).await, Full);
    assert_eq!(b.fleet.stats().decrypt_failures, 1);
}

/// Fleet tickets per context: a ticket made through one context's ticketer opens only
/// through a ticketer of the same context, on any server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_tickets_of_one_context_open_in_no_other() {
    let redis = Redis::start();
    let ticketer = || async {
        let ticketer = FleetTicketer::builder()
            .redis_url(redis.url())
            .keys(FleetKeys::parse(KEY1).unwrap())
            .build()
            .unwrap();
        ticketer.first_sync().await;
        ticketer
    };
    let (on_a, on_b) = (ticketer().await, ticketer().await);
    use rustls::server::ProducesTickets;
    let ticket = on_a
        .context("public")
        .unwrap()
        .encrypt(b"a session")
        .unwrap();
    assert_eq!(
        on_b.context("public").unwrap().decrypt(&ticket).as_deref(),
        Some(&b"a session"[..]),
        "the same context, another server"
    );
    for other in [
        on_b.context("admin").unwrap(),
        on_b.context("publi").unwrap(),
    ] {
        assert_eq!(other.decrypt(&ticket), None, "{}", other.name());
    }
    assert_eq!(on_b.decrypt(&ticket), None, "nor in the default context");
    assert_eq!(on_b.stats().decrypt_bad_tag, 3);
    // And real handshakes: a ticket from the public config resumes on the public config
    // of the other server, not on its admin config.
    for version in [TLS12, TLS13] {
        let config = |ticketer: Arc<dyn ProducesTickets>, mtls: bool| -> Arc<ServerConfig> {
            let store: Arc<dyn StoresServerSessions> = SessionCache::new(16);
            let base = if mtls {
                mtls_server_config(version, store)
            } else {
                common::server_config_with_store(version, store)
            };
            let mut config = Arc::unwrap_or_clone(base);
            config.ticketer = ticketer;
            Arc::new(config)
        };
        let public_a = config(on_a.context("public").unwrap(), false);
        let public_b = config(on_b.context("public").unwrap(), false);
        let admin_b = config(on_b.context("admin").unwrap(), true);
        let client = client_config_with_cert(version);
        common::handshake(&public_a, &client).assert_kind(Full);
        let crossed = common::handshake(&admin_b, &client);
        crossed.assert_kind(Full);
        assert!(crossed.client_certified, "{version:?}");
        let client = client_config_with_cert(version);
        common::handshake(&public_a, &client).assert_kind(Full);
        common::handshake(&public_b, &client).assert_kind(Resumed);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
