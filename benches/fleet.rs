//! The fleet tier over real TCP and a real `redis-server`: three echo server instances
//! behind a round-robin balancer, with and without the fleet tier.
//!
//! ```text
//! cargo bench --features redis --bench fleet
//! ```
//!
//! 1. **Resumption rate.** 300 clients, each with its own session store; each connection
//!    comes from a client picked at random, and the balancer sends it to the next
//!    instance in turn. A client's first connection cannot resume and is not counted.
//!    Without the fleet tier a session resumes only when its client lands on the same
//!    instance again, about one time in three.
//! 2. **Latency.** A session made on instance A, written to Redis, then resumed on A
//!    (local: from L1 for TLS 1.2; the `GETDEL` claim for TLS 1.3) or on B
//!    (cross-instance: fetched or claimed from Redis, decrypted). Handshake time from TCP connect, medians of 300 each, measured in one
//!    run, and their ratio.
//!
//! Each is measured on one Redis and on a Redis Cluster (three masters with a replica
//! each), and on the cluster again with `claim_replicas(1)`, whose cost is the TLS 1.3
//! latencies' difference; and on one Redis with fleet tickets (`--tickets fleet`), where
//! a resumption needs no Redis round trip.
//!
//! `cargo bench --features redis --bench fleet -- redis` runs only the topologies whose
//! name has `redis` in it: the stateful tier and fleet tickets on one Redis (results in
//! `fleet-redis.json`).
//!
//! Needs `redis-server` (Debian package `redis-server`, with `redis-cli`); starts its own
//! on free ports.
//! Results go to `target/bench-results/fleet.json`.

#[path = "../tests/common/redis.rs"]
mod redis_server;

#[path = "../tests/common/server.rs"]
mod server;

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use redis_server::{Cluster, Redis};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::StoresServerSessions;
use rustls::{ClientConfig, HandshakeKind, RootCertStore, SupportedProtocolVersion};
use rustls_session_cache::SessionCache;
use rustls_session_cache::fleet::{Fleet, FleetKeys, FleetTicketer};
use server::{Serve, shipped_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const CLIENTS: usize = 300;
const CONNECTIONS: usize = 3_000;
const LATENCY_SAMPLES: usize = 300;
const KEY: &str = "4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a";

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

struct Instance {
    addr: SocketAddr,
    fleet: Option<Arc<Fleet>>,
}

/// Where the fleet's sessions go.
#[derive(Clone, Copy)]
enum Backend<'a> {
    /// No fleet tier: each instance's own cache.
    None,
    Single(&'a Redis),
    Cluster(&'a Cluster, usize),
    /// One Redis, and fleet tickets.
    Tickets(&'a Redis),
}

async fn instance(backend: Backend<'_>) -> Instance {
    let cache = SessionCache::new(100_000);
    let builder = || Fleet::builder(cache.clone()).keys(FleetKeys::parse(KEY).unwrap());
    let fleet = match backend {
        Backend::None => None,
        Backend::Single(redis) | Backend::Tickets(redis) => Some(builder().redis_url(redis.url())),
        Backend::Cluster(cluster, replicas) => Some(
            builder()
                .redis_cluster(cluster.seeds())
                .claim_replicas(replicas),
        ),
    }
    .map(|builder| builder.build().unwrap());
    let storage: Arc<dyn StoresServerSessions> = match &fleet {
        Some(fleet) => fleet.clone(),
        None => cache.clone(),
    };
    let serve = Serve::new(
        shipped_config(&[&rustls::version::TLS13, &rustls::version::TLS12], storage),
        cache,
    );
    let serve = match backend {
        Backend::Tickets(redis) => {
            let ticketer = FleetTicketer::builder()
                .redis_url(redis.url())
                .keys(FleetKeys::parse(KEY).unwrap())
                .build()
                .unwrap();
            ticketer.first_sync().await;
            serve.tickets(&ticketer)
        }
        _ => serve,
    };
    let serve = match &fleet {
        Some(fleet) => serve.through(fleet, true),
        None => serve,
    };
    // Not stopped: it serves until the bench's runtime ends.
    let addr = serve.start().await.addr;
    Instance { addr, fleet }
}

impl Instance {
    /// Waits until every write queued so far has reached Redis (or was dropped).
    async fn settle(&self) {
        let Some(fleet) = &self.fleet else { return };
        loop {
            let s = fleet.stats();
            let done = s.writes_written + s.writes_dropped + s.writes_cancelled;
            if done >= s.writes_queued && s.writes_pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
}

fn connector(version: &'static SupportedProtocolVersion) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(repo("certs/ca.crt")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// One connection: handshake, echo, close. Returns whether it resumed and how long the
/// TCP connect and handshake took.
async fn connect(client: &TlsConnector, addr: SocketAddr) -> (bool, Duration) {
    let started = Instant::now();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut tls = client
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let took = started.elapsed();
    let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
    tls.write_all(b"ping").await.unwrap();
    let mut echo = [0; 4];
    tls.read_exact(&mut echo).await.unwrap();
    tls.shutdown().await.unwrap();
    (resumed, took)
}

async fn resumption_rate(fleet: &[Instance], version: &'static SupportedProtocolVersion) -> f64 {
    let clients: Vec<TlsConnector> = (0..CLIENTS).map(|_| connector(version)).collect();
    let mut seen = vec![false; CLIENTS];
    let mut rng = SmallRng::seed_from_u64(7);
    let (mut attempts, mut resumed) = (0u32, 0u32);
    for turn in 0..CONNECTIONS {
        let client = rng.random_range(0..CLIENTS);
        let (r, _) = connect(&clients[client], fleet[turn % fleet.len()].addr).await;
        if std::mem::replace(&mut seen[client], true) {
            attempts += 1;
            resumed += u32::from(r);
        }
    }
    f64::from(resumed) / f64::from(attempts)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Medians of local and cross-instance resumption latency, from alternating samples.
async fn latencies(
    a: &Instance,
    b: &Instance,
    version: &'static SupportedProtocolVersion,
) -> (Duration, Duration) {
    let (mut local, mut cross) = (Vec::new(), Vec::new());
    for i in 0..2 * LATENCY_SAMPLES {
        let client = connector(version);
        let (full, _) = connect(&client, a.addr).await;
        assert!(!full, "the first handshake is full");
        a.settle().await;
        let on = if i % 2 == 0 { a } else { b };
        let (resumed, took) = connect(&client, on.addr).await;
        assert!(resumed, "{version:?}: expected a resumption");
        if i % 2 == 0 { &mut local } else { &mut cross }.push(took);
    }
    (median(local), median(cross))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("machine: {}", support::machine());
    let only = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let wanted = |topology: &str| only.as_deref().is_none_or(|only| topology.contains(only));
    let redis = Redis::start();
    let cluster = (wanted("cluster") || wanted("cluster, claim_replicas(1)")).then(Cluster::start);
    let three = |backend| async move {
        [
            instance(backend).await,
            instance(backend).await,
            instance(backend).await,
        ]
    };
    let plain = three(Backend::None).await;
    let mut rows = Vec::new();
    let mut topologies = vec![
        (Backend::Single(&redis), "redis"),
        (Backend::Tickets(&redis), "redis, fleet tickets"),
    ];
    if let Some(cluster) = &cluster {
        topologies.push((Backend::Cluster(cluster, 0), "cluster"));
        topologies.push((Backend::Cluster(cluster, 1), "cluster, claim_replicas(1)"));
    }
    for (backend, topology) in topologies.into_iter().filter(|(_, t)| wanted(t)) {
        let shared = three(backend).await;
        for (version, name) in [
            (&rustls::version::TLS12, "1.2"),
            (&rustls::version::TLS13, "1.3"),
        ] {
            let without = resumption_rate(&plain, version).await;
            let with = resumption_rate(&shared, version).await;
            let (local, cross) = latencies(&shared[0], &shared[1], version).await;
            let ratio = cross.as_secs_f64() / local.as_secs_f64();
            println!(
                "{topology}, TLS {name}: resumption rate across 3 instances: {:.1}% without the fleet tier, {:.1}% with it",
                without * 100.0,
                with * 100.0
            );
            println!(
                "{topology}, TLS {name}: resumed handshake, median of {LATENCY_SAMPLES}: local {:.3} ms, cross-instance {:.3} ms, ratio {ratio:.2}x",
                local.as_secs_f64() * 1e3,
                cross.as_secs_f64() * 1e3
            );
            rows.push(format!(
                r#"{{"topology":"{topology}","version":"{name}","rate_without":{without:.4},"rate_with":{with:.4},"local_ms":{:.4},"cross_ms":{:.4},"ratio":{ratio:.3}}}"#,
                local.as_secs_f64() * 1e3,
                cross.as_secs_f64() * 1e3
            ));
        }
        for (i, instance) in shared.iter().enumerate() {
            let stats = instance.fleet.as_ref().map(|f| f.stats());
            println!("{topology}, instance {i}: {stats:?}");
        }
    }
    let dir = repo("target/bench-results");
    std::fs::create_dir_all(&dir).unwrap();
    let json = format!(
        "{{\"machine\":\"{}\",\"results\":[\n{}\n]}}\n",
        support::machine(),
        rows.join(",\n")
    );
    let file = match only {
        None => "fleet.json".to_owned(),
        Some(only) => format!(
            "fleet-{}.json",
            only.replace(|c: char| !c.is_alphanumeric(), "_")
        ),
    };
    std::fs::write(dir.join(file), json).unwrap();
}
