//! Attacks on the fleet tier, kept as regression tests. Each test's doc says the attack
//! and the property it guards: a TLS 1.3 ticket resumes at most once in the whole fleet
//! (single use), what the acceptor cannot follow gives a full handshake and never a
//! failed one (fail-closed), an attacker's bytes cost bounded memory and Redis calls,
//! and the cache modes mean for the fleet what they mean for one `SessionCache`. A few
//! tests pin down documented behaviour and one known limitation, and say so.
//!
//! The servers are echo servers in-process (`tests/common/server.rs`), taking
//! connections through the fleet's acceptor (or, to compare, through stock
//! tokio-rustls), and for the example's own wiring and limits its binary; each test that
//! needs Redis starts its own.
#![cfg(feature = "redis")]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::connect_saying;
use common::hello::{Answer, MAX_RECORD, client_hello, client_hello_padded, records};
use common::process::{EchoServer as Binary, stat};
use common::redis::Redis;
use common::reframe::{Framing, Proxy, read_record, replay};
use common::server::{Serve, shipped_config_on};
use common::settle;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::kx_group::{SECP256R1, X25519};
use rustls::pki_types::ServerName;
use rustls::server::StoresServerSessions;
use rustls::{HandshakeKind, ServerConfig, SupportedProtocolVersion};
use rustls_session_cache::fleet::client_hello::{Parsed, parse};
use rustls_session_cache::fleet::{Fleet, FleetBuilder, FleetError, FleetKeys, FleetStats};
use rustls_session_cache::{CacheMode, Session, SessionCache};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use HandshakeKind::{Full, Resumed};

const KEY1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;
const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;

fn ring() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The shipped certificate on ring's default provider, offering `versions`, storing
/// sessions in `store`.
fn shipped_config(
    versions: &[&'static SupportedProtocolVersion],
    store: Arc<dyn StoresServerSessions>,
) -> ServerConfig {
    let mut config = shipped_config_on(ring(), versions);
    config.session_storage = store;
    config
}

/// A TLS 1.3 config with the shipped certificate on `provider` (for its key exchange
/// groups).
fn config_on(provider: CryptoProvider) -> ServerConfig {
    shipped_config_on(provider, &[TLS13])
}

/// A client on `provider` offering `versions`, remembering its sessions.
fn client(
    provider: CryptoProvider,
    versions: &[&'static SupportedProtocolVersion],
) -> TlsConnector {
    TlsConnector::from(Arc::new(common::shipped_client_config(provider, versions)))
}

/// Runs an echo server on a free port, serving `config` from `cache`, through `fleet`'s
/// acceptor if there is one (told whether the config offers TLS 1.3), else through
/// stock tokio-rustls. It serves until the test's runtime ends.
async fn spawn_echo(
    config: ServerConfig,
    cache: Arc<SessionCache>,
    fleet: Option<Arc<Fleet>>,
    tls13: bool,
) -> SocketAddr {
    let serve = Serve::new(Arc::new(config), cache);
    let serve = match &fleet {
        Some(fleet) => serve.through(fleet, tls13),
        None => serve,
    };
    serve.start().await.addr
}

/// A stock tokio-rustls echo server (no fleet), TLS 1.2 and 1.3: what rustls itself
/// answers to the same bytes.
async fn stock_server() -> SocketAddr {
    let cache = SessionCache::new(64);
    let config = shipped_config(&[TLS13, TLS12], cache.clone());
    spawn_echo(config, cache, None, true).await
}

/// One server of the fleet: the echo server through the fleet's acceptor.
struct Node {
    addr: SocketAddr,
    fleet: Arc<Fleet>,
}

impl Node {
    async fn start(
        redis: &Redis,
        cache: Arc<SessionCache>,
        fleet: impl FnOnce(FleetBuilder) -> FleetBuilder,
        config: ServerConfig,
    ) -> Self {
        let builder = Fleet::builder(cache.clone())
            .redis_url(redis.url())
            .keys(FleetKeys::parse(KEY1).unwrap());
        let fleet = fleet(builder).build().unwrap();
        let addr = spawn_echo(config, cache, Some(fleet.clone()), true).await;
        Self { addr, fleet }
    }

    /// TLS 1.2 and 1.3, an L1 of 1024, the fleet's defaults but for `fleet`.
    async fn with(redis: &Redis, fleet: impl FnOnce(FleetBuilder) -> FleetBuilder) -> Self {
        let cache = SessionCache::new(1024);
        let config = shipped_config(&[TLS13, TLS12], cache.clone());
        Self::start(redis, cache, fleet, config).await
    }

    async fn plain(redis: &Redis) -> Self {
        Self::with(redis, |b| b).await
    }

    async fn settle(&self) {
        settle(&self.fleet).await;
    }
}

fn sum(nodes: &[&Node], counter: impl Fn(&FleetStats) -> u64) -> u64 {
    nodes.iter().map(|node| counter(&node.fleet.stats())).sum()
}

/// Handshake, echo a line (so TLS 1.3 tickets reach the client), close. The client's
/// view of the handshake.
async fn connect(client: &TlsConnector, addr: SocketAddr) -> HandshakeKind {
    connect_saying(client, addr, b"ping\n").await.0
}

/// What `client` would send to resume: its ClientHello, captured by a listener that
/// reads it and hangs up. The client's ticket, offered, is gone from its store; the
/// hello, with its valid binder, is what an attacker replaying 0-RTT holds.
async fn capture_hello(client: &TlsConnector) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let grab = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        read_record(&mut tcp).await.unwrap()
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let _ = client
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    grab.await.unwrap()
}

/// A fresh ticket's resumption ClientHello: a new client's full handshake on `issuer`,
/// the ticket written to Redis, and the hello the client would resume with, captured.
async fn fresh_hello(issuer: &Node) -> Vec<u8> {
    let client = client(ring(), &[TLS13]);
    assert_eq!(connect(&client, issuer.addr).await, Full);
    issuer.settle().await;
    capture_hello(&client).await
}

/// The ticket identities `hello` offers, read as an on-path observer reads them.
fn identities(hello: &[u8]) -> Vec<Vec<u8>> {
    match parse(hello) {
        Parsed::Complete(offer) => offer.identities,
        other => panic!("{other:?}"),
    }
}

/// How a burst of replays was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answers {
    resumes: usize,
    full: usize,
    failed: usize,
}

/// Replays `hello` `per_node` times on every node at once.
async fn burst(nodes: &[&Node], hello: &[u8], per_node: usize) -> Answers {
    let mut set = tokio::task::JoinSet::new();
    for node in nodes {
        for _ in 0..per_node {
            let (addr, hello) = (node.addr, hello.to_vec());
            set.spawn(async move { replay(addr, Framing::Whole, &hello).await });
        }
    }
    let answers = set.join_all().await;
    let count = |a: Answer| answers.iter().filter(|x| **x == a).count();
    Answers {
        resumes: count(Answer::Resumes),
        full: count(Answer::Full),
        failed: count(Answer::NoServerHello),
    }
}

/// Fires `hello` at every node, 8 connections each at once, then 4 each: exactly one
/// of them all resumes, in the first burst, and none fails.
async fn resumes_once_in_two_bursts(nodes: &[&Node], hello: &[u8]) {
    let first = burst(nodes, hello, 8).await;
    let again = burst(nodes, hello, 4).await;
    eprintln!("{first:?}, then {again:?}");
    assert_eq!(
        (first.resumes, first.failed),
        (1, 0),
        "one winner, no failure"
    );
    assert_eq!((again.resumes, again.failed), (0, 0), "used up");
}

fn redis_keys(redis: &Redis) -> Vec<String> {
    redis.all_values().into_iter().map(|(key, _)| key).collect()
}

/// Polls until `done`, for up to 5 s.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------
// Single use: concurrent replays, in every state of the ticket's write.
// ---------------------------------------------------------------------------------

/// Attack: an attacker holding a resumption ClientHello (valid binder) fires it at three
/// servers at once, 8 connections each, while the ticket's write is (a) landed in Redis,
/// (b) not yet sent (claimable locally on the issuer: Redis is paused and the writer's
/// batches are all taken), (c) in a batch stuck in flight long enough that the writer's
/// 1 s client-side timeout fires and the `SET` lands later. Then it bursts again after
/// Redis is back, to catch a late `SET` resurrecting a ticket already claimed.
///
/// Guards single use: at most one `Resumes` per ticket over all bursts, exactly one for
/// a landed ticket (with a 3 s fetch deadline the `GETDEL` winner resumes) and for an
/// unsent one (the issuer claims it locally), and no handshake fails. Every replay that
/// loses the landed ticket counts in `claims_lost`, none in `l2_misses`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_replays_across_three_servers_resume_at_most_once_in_every_write_state() {
    let redis = Redis::start();
    let deadline = |b: FleetBuilder| b.fetch_deadline(Duration::from_secs(3));
    let a = Node::with(&redis, deadline).await;
    let b = Node::with(&redis, deadline).await;
    let c = Node::with(&redis, deadline).await;
    let nodes = [&a, &b, &c];

    // (a) landed.
    let hello = fresh_hello(&a).await;
    resumes_once_in_two_bursts(&nodes, &hello).await;
    assert_eq!(sum(&nodes, |s| s.claims_won), 1);
    assert_eq!(sum(&nodes, |s| s.claims_redeemed), 1);
    assert_eq!(sum(&nodes, |s| s.claims_lost), 24 + 12 - 1);
    assert_eq!(sum(&nodes, |s| s.l2_misses), 0, "tickets are not l2 misses");

    // (b) unsent and (c) stuck in flight. Warm the writer's connection first.
    let warm = client(ring(), &[TLS13]);
    assert_eq!(connect(&warm, a.addr).await, Full);
    a.settle().await;
    assert_eq!(redis.command("CLIENT PAUSE 1500 WRITE"), "+OK\r\n");
    let stuck = client(ring(), &[TLS13]);
    assert_eq!(connect(&stuck, a.addr).await, Full); // its tickets: the first stuck batch
    // The writer has a few batches in flight, and holds one more waiting for a slot:
    // fill them all, until writes stay queued. Then a ticket issued is surely unsent
    // until the first stuck batch times out, 1 s after it was sent.
    while a.fleet.stats().writes_pending == 0 {
        assert_eq!(connect(&client(ring(), &[TLS13]), a.addr).await, Full);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let unsent = client(ring(), &[TLS13]);
    assert_eq!(connect(&unsent, a.addr).await, Full); // its tickets: unsent
    let hello_unsent = capture_hello(&unsent).await;
    let hello_stuck = capture_hello(&stuck).await;
    let local_before = a.fleet.stats().claims_local;
    let (u, s) = tokio::join!(
        burst(&nodes, &hello_unsent, 6),
        burst(&nodes, &hello_stuck, 6)
    );
    let claimed_locally = a.fleet.stats().claims_local - local_before;
    eprintln!("during the pause: unsent {u:?}, stuck {s:?}");
    a.settle().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // After Redis is back, a late `SET` (if it landed) must not make a second winner.
    let u2 = burst(&nodes, &hello_unsent, 4).await;
    let s2 = burst(&nodes, &hello_stuck, 4).await;
    eprintln!(
        "after the pause: unsent {u2:?}, stuck {s2:?}; a: {:?}",
        a.fleet.stats()
    );
    assert!(u.resumes + u2.resumes <= 1, "unsent ticket: {u:?} {u2:?}");
    assert!(s.resumes + s2.resumes <= 1, "stuck ticket: {s:?} {s2:?}");
    assert_eq!(
        (u.resumes, claimed_locally),
        (1, 1),
        "the issuer claims an unsent ticket locally"
    );
    assert_eq!(
        u.failed + s.failed + u2.failed + s2.failed,
        0,
        "no handshake failed"
    );
}

/// Attack: the canonical 0-RTT replay. A client's whole first flight (ClientHello, the
/// middlebox-compatibility ChangeCipherSpec, and an early-data record, in one write) is
/// captured and fired at three servers with early data enabled, 8 connections each.
///
/// Guards single use where it matters most: early data is accepted only with the PSK,
/// so exactly one ServerHello may accept it, and none on a second burst. (It also makes
/// the acceptor follow a hello followed by other records in the same segment.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_rtt_first_flight_replayed_on_three_servers_resumes_once() {
    let redis = Redis::start();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let cache = SessionCache::new(1024);
        let mut config = shipped_config(&[TLS13], cache.clone());
        config.max_early_data_size = 16 * 1024;
        let deadline = |b: FleetBuilder| b.fetch_deadline(Duration::from_secs(3));
        nodes.push(Node::start(&redis, cache, deadline, config).await);
    }
    let mut config = common::shipped_client_config(ring(), &[TLS13]);
    config.enable_early_data = true;
    let config = Arc::new(config);
    let connector = TlsConnector::from(config.clone());
    assert_eq!(connect(&connector, nodes[0].addr).await, Full);
    nodes[0].settle().await;
    let mut conn =
        rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut early = conn.early_data().expect("the ticket allows early data");
    std::io::Write::write_all(&mut early, b"POST /transfer?amount=100\n").unwrap();
    let mut flight = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut flight).unwrap();
    }
    let kinds = record_types(&flight);
    eprintln!("first flight: {} bytes, records {kinds:?}", flight.len());
    assert!(kinds.contains(&23), "an early-data record in the flight");
    let nodes: Vec<&Node> = nodes.iter().collect();
    // Exactly one server accepts the PSK, and with it the early data.
    resumes_once_in_two_bursts(&nodes, &flight).await;
}

/// The content type of each TLS record in `bytes`.
fn record_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut kinds = Vec::new();
    while bytes.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        kinds.push(bytes[0]);
        bytes = bytes.get(5 + len..).unwrap_or_default();
    }
    kinds
}

/// Attack: record-layer tricks on a real resumption hello (valid binder, fresh ticket):
/// 1-byte fragments, odd record versions, a record of 3 header bytes, empty and CCS
/// records first, warning alerts before and between fragments, the hello twice in one
/// record, trailing application data. Each is sent to a fleet server and to stock
/// rustls, then the framed bytes and the plain hello are replayed on both servers.
///
/// Guards single use and fail-closed across framings: no framing lets the ticket resume
/// twice, and the fleet never fails a hello that stock rustls answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_layer_tricks_on_a_fresh_hello_never_resume_twice_or_fail() {
    let redis = Redis::start();
    let a = Node::plain(&redis).await;
    let b = Node::plain(&redis).await;
    let stock = stock_server().await;
    const ALERT: [u8; 7] = [21, 3, 3, 0, 2, 1, 90];
    type Trick = (&'static str, fn(&[u8], &[u8]) -> Vec<u8>);
    let tricks: Vec<Trick> = vec![
        ("whole", |r, _| r.to_vec()),
        ("1-byte fragments", |_, m| records(22, [3, 1], m, 1)),
        ("first record = 3 bytes of header", |_, m| {
            let mut out = records(22, [3, 1], &m[..3], 3);
            out.extend(records(22, [3, 1], &m[3..], MAX_RECORD));
            out
        }),
        ("DTLS record version 0xfeff", |_, m| {
            records(22, [0xfe, 0xff], m, MAX_RECORD)
        }),
        ("record version 0x03ff", |_, m| {
            records(22, [3, 0xff], m, MAX_RECORD)
        }),
        ("mixed versions per fragment", |_, m| {
            let half = m.len() / 2;
            let mut out = records(22, [3, 1], &m[..half], MAX_RECORD);
            out.extend(records(22, [0xfe, 0xfd], &m[half..], MAX_RECORD));
            out
        }),
        ("empty handshake record first", |r, _| {
            let mut out = vec![22, 3, 1, 0, 0];
            out.extend_from_slice(r);
            out
        }),
        ("CCS record first", |r, _| {
            let mut out = vec![20, 3, 3, 0, 1, 1];
            out.extend_from_slice(r);
            out
        }),
        ("4 alerts, then 1-byte fragments", |_, m| {
            let mut out = ALERT.repeat(4);
            out.extend(records(22, [3, 1], m, 1));
            out
        }),
        ("alert between fragments", |_, m| {
            let half = m.len() / 2;
            let mut out = records(22, [3, 1], &m[..half], MAX_RECORD);
            out.extend_from_slice(&ALERT);
            out.extend(records(22, [3, 1], &m[half..], MAX_RECORD));
            out
        }),
        ("alert with fatal-looking length 3", |r, _| {
            let mut out = vec![21, 3, 3, 0, 3, 1, 90, 0];
            out.extend_from_slice(r);
            out
        }),
        ("hello twice in one record", |_, m| {
            let mut twice = m.to_vec();
            twice.extend_from_slice(m);
            records(22, [3, 1], &twice, MAX_RECORD)
        }),
        ("hello, then appdata junk", |r, _| {
            let mut out = r.to_vec();
            out.extend(records(23, [3, 3], &[0xee; 100], 100));
            out
        }),
        ("SSLv2-number record version 0x0002", |_, m| {
            records(22, [0, 2], m, MAX_RECORD)
        }),
    ];
    let mut broke = Vec::new();
    for (name, trick) in &tricks {
        let record = fresh_hello(&a).await;
        let bytes = trick(&record, &record[5..]);
        let on_stock = replay(stock, Framing::Whole, &bytes).await;
        let on_fleet = replay(b.addr, Framing::Whole, &bytes).await;
        let mut resumes = usize::from(on_fleet == Answer::Resumes);
        for node in [&a, &b] {
            for replayed in [&bytes, &record] {
                let answer = replay(node.addr, Framing::Whole, replayed).await;
                resumes += usize::from(answer == Answer::Resumes);
            }
        }
        eprintln!("{name:40} fleet={on_fleet:?} stock={on_stock:?} resumes={resumes}");
        if resumes > 1 {
            broke.push(format!("{name}: {resumes} resumptions"));
        }
        if on_fleet == Answer::NoServerHello && on_stock != Answer::NoServerHello {
            broke.push(format!(
                "{name}: the fleet failed a hello stock rustls answers"
            ));
        }
    }
    assert!(broke.is_empty(), "{broke:#?}");
}

// ---------------------------------------------------------------------------------
// Single use: ways around the claim.
// ---------------------------------------------------------------------------------

/// Attack: the application flips the cache mode between `SERVER` and
/// `SERVER | NO_INTERNAL_LOOKUP` in a tight loop while rustls calls `take` for a ticket
/// that is in L1 and in Redis, with no claim lent. When `take` read the mode twice
/// (once itself, once in `SessionCache::take`), a flip in between sent it to L1, which
/// handed out the ticket unclaimed while another server could still `GETDEL` it. Against
/// that code, this loop won the race in each of 27 runs, after at most 0.92 million
/// tries (half the runs within 100).
///
/// Guards single use: over two million tries, `take` never returns a ticket it has no
/// claim for, whatever the mode reads; the ticket stays in L1 (so the old path would
/// have found it) and in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_racing_set_mode_never_hands_out_an_unclaimed_ticket() {
    const TRIES: u64 = 2_000_000;
    let redis = Redis::start();
    let cache = SessionCache::new(1024);
    let fleet = Fleet::builder(cache.clone())
        .redis_url(redis.url())
        .keys(FleetKeys::parse(KEY1).unwrap())
        .build()
        .unwrap();
    // Put outside any handshake, as rustls would for an unknown version: into L1 and,
    // once written, Redis.
    let id = vec![0xab; 32];
    assert!(StoresServerSessions::put(&*fleet, id.clone(), vec![1; 83]));
    eventually("the ticket reached Redis", || {
        !redis_keys(&redis).is_empty()
    })
    .await;
    assert!(cache.contains(&id), "the ticket is in L1");
    let stop = Arc::new(AtomicBool::new(false));
    let toggler = {
        let (cache, stop) = (cache.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                cache.set_mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_LOOKUP);
                cache.set_mode(CacheMode::SERVER);
                flips += 1;
            }
            flips
        })
    };
    let (taker, key) = (fleet.clone(), id.clone());
    let (handed, took) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let handed = (0..TRIES)
            .filter(|_| StoresServerSessions::take(&*taker, &key).is_some())
            .count();
        (handed, started.elapsed())
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let flips = toggler.join().unwrap();
    eprintln!("{TRIES} takes in {took:?}, {flips} mode flips meanwhile");
    assert!(flips > 0, "the mode was flipping");
    assert_eq!(handed, 0, "take handed out an unclaimed ticket");
    assert!(cache.contains(&id), "still in L1");
    let key = format!("rsc::{}", "ab".repeat(32));
    assert_eq!(redis_keys(&redis), [key], "still claimable in Redis, once");
}

/// Attack: a ticket offered in a ClientHello that gets a HelloRetryRequest. The acceptor
/// claims (`GETDEL`s) the tickets of the first hello; rustls looks the PSK up only in the
/// second hello, on a later poll of the handshake. Here a client gets a ticket from a
/// server taking its x25519 key share, then resumes on a server that takes only
/// secp256r1, so its first hello (x25519 share and the ticket) gets a retry.
///
/// Guards resumption and single use together: the claims are lent to the whole
/// handshake, so the ticket resumes after the retry, once (one claim won, one redeemed);
/// a replay of the captured first hello then resumes nowhere, not even on the server
/// that would take its key share without a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_offered_again_after_a_hello_retry_request_resumes_once() {
    let redis = Redis::start();
    let a = Node::plain(&redis).await;
    let mut secp256r1_only = ring();
    secp256r1_only.kx_groups = vec![SECP256R1];
    let cache = SessionCache::new(1024);
    let b = Node::start(&redis, cache, |f| f, config_on(secp256r1_only)).await;
    let x25519_first = || {
        let mut provider = ring();
        provider.kx_groups = vec![X25519, SECP256R1];
        client(provider, &[TLS13])
    };
    // Control: a client sending an x25519 share gets a retry from b.
    assert_eq!(
        connect(&x25519_first(), b.addr).await,
        HandshakeKind::FullWithHelloRetryRequest
    );
    let c = x25519_first();
    assert_eq!(connect(&c, a.addr).await, Full); // a takes x25519: c keeps sending it
    a.settle().await;
    let proxy = Proxy::start(b.addr, Framing::Whole).await;
    assert_eq!(
        connect(&c, proxy.addr).await,
        Resumed,
        "resumed after the retry"
    );
    let s = b.fleet.stats();
    eprintln!("b: {s:?}");
    assert_eq!((s.claims_won, s.claims_redeemed), (1, 1));
    let first_hello = proxy.last_hello();
    assert_eq!(
        identities(&first_hello).len(),
        1,
        "the first hello offered it"
    );
    assert_eq!(
        replay(a.addr, Framing::Whole, &first_hello).await,
        Answer::Full,
        "a replay on a server that takes its key share"
    );
    assert_eq!(a.fleet.stats().claims_lost, 1);
    assert_eq!(
        replay(b.addr, Framing::Whole, &first_hello).await,
        Answer::Full
    );
    let b_claims = b.fleet.stats();
    assert_eq!((b_claims.claims_won, b_claims.claims_redeemed), (1, 1));
}

/// Attack: a live TLS 1.3 ticket id (in clear in its client's ClientHello) offered as a
/// TLS 1.2 session id. The acceptor `GET`s it from Redis into this server's L1 (it stays
/// in Redis); rustls's TLS 1.2 lookup then finds a TLS 1.3 value.
///
/// Guards the TLS 1.2/1.3 boundary: rustls does not resume with it, the copy in L1 is
/// of no use to anyone (`take` never reads L1), and the real hello still resumes
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls13_ticket_id_offered_as_a_tls12_session_id_resumes_nothing() {
    let redis = Redis::start();
    let a = Node::plain(&redis).await;
    let b = Node::plain(&redis).await;
    let hello = fresh_hello(&a).await;
    let ticket = identities(&hello).swap_remove(0);
    let hostile = client_hello(&ticket, &[], false, MAX_RECORD);
    let answer = replay(b.addr, Framing::Whole, &hostile).await;
    eprintln!(
        "a TLS 1.2 hello naming the ticket: {answer:?}; b: {:?}",
        b.fleet.stats()
    );
    assert_eq!(answer, Answer::Full);
    assert!(
        b.fleet.l1().contains(&ticket),
        "the ticket was copied into b's L1"
    );
    let answers = [
        replay(b.addr, Framing::Whole, &hello).await,
        replay(a.addr, Framing::Whole, &hello).await,
    ];
    assert_eq!(answers, [Answer::Resumes, Answer::Full]);
}

/// Known limitation, not fixed: TLS 1.2 session ids travel in clear (in the
/// ServerHello, and in the client's next ClientHello). An on-path observer who saw one
/// sends any server a TLS 1.3 ClientHello offering it as a PSK identity: the acceptor
/// cannot tell it from a ticket and claims it, so `GETDEL` deletes the session from
/// Redis. (Stock rustls has the same take-by-identity, on one server.)
///
/// Pins down how far it reaches: the attacker resumes nothing, and copies already in an
/// L1 (the issuer's, and those of servers that fetched it) are not touched by claims, so
/// the victim still resumes there, even when the attacker aims at the issuer; any other
/// server gives it a full handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_limitation_a_tls12_session_id_offered_as_a_psk_identity_leaves_redis() {
    let redis = Redis::start();
    let a = Node::plain(&redis).await;
    let b = Node::plain(&redis).await;
    let c = Node::plain(&redis).await;
    let victim = client(ring(), &[TLS12]);
    assert_eq!(connect(&victim, a.addr).await, Full);
    a.settle().await;
    let keys = redis_keys(&redis);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let session_id = hex::decode(keys[0].strip_prefix("rsc::").unwrap()).unwrap();
    assert_eq!(connect(&victim, b.addr).await, Resumed, "b fetches it");
    // The attack, on c: a TLS 1.3 hello naming the session id as a ticket.
    let hostile = client_hello(
        &[0; 32],
        std::slice::from_ref(&session_id),
        true,
        MAX_RECORD,
    );
    let on_c = replay(c.addr, Framing::Whole, &hostile).await;
    eprintln!("the attacker, on c: {on_c:?}; c: {:?}", c.fleet.stats());
    assert_ne!(on_c, Answer::Resumes);
    assert_eq!(c.fleet.stats().claims_won, 1, "claimed as a ticket");
    assert!(
        redis_keys(&redis).is_empty(),
        "the TLS 1.2 session left Redis"
    );
    // Aimed at the issuer: nothing left in Redis to claim, and L1 is not touched.
    let on_a = replay(a.addr, Framing::Whole, &hostile).await;
    assert_ne!(on_a, Answer::Resumes);
    assert_eq!(a.fleet.stats().claims_lost, 1);
    assert!(
        a.fleet.l1().contains(&session_id),
        "still in the issuer's L1"
    );
    let l2_hits = a.fleet.stats().l2_hits + b.fleet.stats().l2_hits;
    assert_eq!(connect(&victim, a.addr).await, Resumed, "from a's L1");
    assert_eq!(connect(&victim, b.addr).await, Resumed, "from b's L1");
    assert_eq!(a.fleet.stats().l2_hits + b.fleet.stats().l2_hits, l2_hits);
    assert_eq!(connect(&victim, c.addr).await, Full, "lost everywhere else");
}

/// Behaviour by design: single use holds for what rustls `put`s, but the application
/// can re-admit a ticket. An application that keeps the sessions `on_new_session` hands
/// it and re-adds them with `Fleet::add_session` (say, after a restart) puts a used
/// ticket back in Redis, and the same captured ClientHello resumes again: whoever
/// re-adds tickets takes over their single use.
///
/// Pins that down: the hello resumes once, is refused while used, and resumes once more
/// after the re-add.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_adding_a_used_ticket_with_add_session_lets_it_resume_again() {
    let redis = Redis::start();
    let seen = Arc::new(Mutex::new(Vec::<Session>::new()));
    let log = seen.clone();
    let cache = SessionCache::builder()
        .on_new_session(move |s: &Session| log.lock().unwrap().push(s.clone()))
        .build()
        .unwrap();
    let config = shipped_config(&[TLS13], cache.clone());
    let a = Node::start(&redis, cache, |b| b, config).await;
    let b = Node::plain(&redis).await;
    let c = Node::plain(&redis).await;
    let hello = fresh_hello(&a).await;
    assert_eq!(
        replay(b.addr, Framing::Whole, &hello).await,
        Answer::Resumes
    );
    assert_eq!(
        replay(c.addr, Framing::Whole, &hello).await,
        Answer::Full,
        "used"
    );
    let sessions = seen.lock().unwrap().clone();
    assert!(!sessions.is_empty(), "on_new_session saw the tickets");
    for session in sessions {
        a.fleet.add_session(session);
    }
    a.settle().await;
    assert_eq!(
        replay(c.addr, Framing::Whole, &hello).await,
        Answer::Resumes,
        "the same hello resumed a second time"
    );
    assert_eq!(replay(b.addr, Framing::Whole, &hello).await, Answer::Full);
}

// ---------------------------------------------------------------------------------
// What the fleet keeps where, and the modes.
// ---------------------------------------------------------------------------------

/// Attack on capacity: TLS 1.3 handshakes, cheap for any client, each issue tickets.
/// Those can resume only through a claim, from the write queue or Redis, so a copy in
/// L1 would only take room from TLS 1.2 sessions, which L1 does serve. With an L1 of 4
/// entries, 4 TLS 1.3 handshakes (8 tickets) once evicted a TLS 1.2 session from its
/// own issuer.
///
/// Guards L1 for what it serves: tickets issued on connections the acceptor took stay
/// out of L1 (they all reach Redis), and the TLS 1.2 session resumes from L1 with no
/// fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_tickets_stay_out_of_l1_and_do_not_evict_tls12_sessions() {
    let redis = Redis::start();
    let cache = SessionCache::builder()
        .capacity(4)
        .shards(1)
        .build()
        .unwrap();
    let config = shipped_config(&[TLS13, TLS12], cache.clone());
    let a = Node::start(&redis, cache.clone(), |b| b, config).await;
    let old = client(ring(), &[TLS12]);
    assert_eq!(connect(&old, a.addr).await, Full);
    for _ in 0..4 {
        assert_eq!(connect(&client(ring(), &[TLS13]), a.addr).await, Full);
    }
    a.settle().await;
    let tickets = redis_keys(&redis).len() - 1;
    eprintln!(
        "L1 entries: {} (capacity 4); tickets in Redis: {tickets}",
        cache.len()
    );
    assert_eq!(tickets, 8, "every ticket reached Redis");
    assert_eq!(cache.len(), 1, "only the TLS 1.2 session is in L1");
    let fetched = a.fleet.stats().l2_hits;
    assert_eq!(connect(&old, a.addr).await, Resumed);
    assert_eq!(
        a.fleet.stats().l2_hits,
        fetched,
        "resumed from L1, not fetched"
    );
}

/// Attack on expiry: under `UPDATE_TIME`, `SessionCache::add_session` of a session
/// already held with the same value refreshes its creation time. `Fleet::add_session`
/// promises the same rules; it once restamped only the copy it sent to Redis, so L1's
/// copy kept its old time and expired early.
///
/// Guards the mode's meaning: after a re-add, the fleet's L1 copy outlives the first
/// stamp exactly as a plain `SessionCache`'s does (checked with `flush_expired` at a
/// time between the two stamps' expiries, so no sleep has to be exact); a session added
/// once is flushed at that time (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_add_session_under_update_time_refreshes_l1_like_the_cache() {
    let redis = Redis::start();
    let build = || {
        SessionCache::builder()
            .mode(CacheMode::SERVER | CacheMode::UPDATE_TIME)
            .build()
            .unwrap()
    };
    let (plain, l1) = (build(), build());
    let fleet = Fleet::builder(l1.clone())
        .redis_url(redis.url())
        .keys(FleetKeys::parse(KEY1).unwrap())
        .build()
        .unwrap();
    let session = |n: u8| Session::new(vec![n; 32], vec![n; 83]);
    plain.add_session(session(7));
    fleet.add_session(session(7));
    fleet.add_session(session(8)); // added once: the control
    let first_stamped = SystemTime::now(); // no stamp above is later
    tokio::time::sleep(Duration::from_millis(100)).await;
    let readded = SystemTime::now(); // no stamp below is earlier
    plain.add_session(session(7));
    fleet.add_session(session(7));
    // Past the first stamps' expiry, before the refreshed ones'.
    let at = readded + plain.timeout() - Duration::from_millis(20);
    assert!(at > first_stamped + plain.timeout());
    plain.flush_expired(at);
    l1.flush_expired(at);
    assert!(plain.contains(&[7; 32]), "SessionCache refreshed it");
    assert!(l1.contains(&[7; 32]), "the fleet's L1 refreshed it too");
    assert!(
        !l1.contains(&[8; 32]),
        "control: a session added once expired"
    );
}

/// Attack: the echo server run with `--tls 1.2 --redis ...`. The ring provider has TLS
/// 1.3 suites, so an acceptor not told otherwise assumes TLS 1.3, takes a modern
/// client's TLS 1.2 session id for a TLS 1.3 client's random legacy id, and fetches
/// nothing: a session made on one instance never resumed on another.
///
/// Guards the example's wiring (its `--tls` tells the fleet's acceptor the versions),
/// on two of its binaries: a client offering TLS 1.3 and 1.2 resumes across instances
/// of a TLS 1.2-only fleet, as a TLS 1.2-only client does (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls12_only_echo_server_fleet_fetches_for_clients_offering_tls13() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("fleet.keys");
    std::fs::write(&key_file, format!("{KEY1}\n")).unwrap();
    let url = redis.url();
    let flags = ["--tls", "1.2", "--redis", &url, "--fleet-key-file"];
    let flags = [&flags[..], &[key_file.to_str().unwrap()]].concat();
    let (maker, other) = (Binary::start(&flags), Binary::start(&flags));
    let addr = |server: &Binary| server.addr.parse::<SocketAddr>().unwrap();
    let offers: [&[&'static SupportedProtocolVersion]; 2] = [&[TLS12], &[TLS13, TLS12]];
    for (made, versions) in (1..).zip(offers) {
        let client = client(ring(), versions);
        assert_eq!(connect(&client, addr(&maker)).await, Full, "{versions:?}");
        // The maker's write of the session has reached Redis.
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.all_values().len() < made {
            assert!(Instant::now() < deadline, "session {made} never written");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let resumed = connect(&client, addr(&other)).await;
        assert_eq!(resumed, Resumed, "{versions:?}");
    }
    let (_, stats, _) = other.terminate();
    assert_eq!(stat(&stats, "l2_hits"), 2, "{stats}");
    maker.terminate();
}

// ---------------------------------------------------------------------------------
// Bounds: hostile sizes, stalled clients, configuration.
// ---------------------------------------------------------------------------------

/// Attack: hostile sizes against the fleet and stock rustls: a 60 KB hello in 1-byte
/// records (~360 KB on the wire), the same in 16 KiB records, 380 one-byte identities (a
/// hello the acceptor parses), one 40 KB identity, and a 255- and a 256-byte identity
/// around the longest identity claimed.
///
/// Guards fail-closed and bounded cost: the fleet answers what stock rustls answers, in
/// comparable time, and Redis sees 5 `GETDEL`s in all: `max_identities` (4) for the 380
/// identities, one for the 255-byte one, none for the rest (too long, or in a hello
/// larger than the acceptor follows). Each ticket not found counts in `claims_lost`,
/// each identity not looked up in `identities_shed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sizes_cost_what_they_cost_stock_rustls() {
    let redis = Redis::start();
    // A deadline no lookup misses, so that every `GETDEL` sent is counted.
    let node = Node::with(&redis, |b| b.fetch_deadline(Duration::from_secs(3))).await;
    let stock = stock_server().await;
    let padded = client_hello_padded(&[1; 32], &[vec![2; 32]], true, MAX_RECORD, 60_000);
    let one_byte_records = records(22, [3, 1], &handshake_payload(&padded), 1);
    let tiny_ids: Vec<Vec<u8>> = (0..380u32).map(|n| vec![(n % 251) as u8 + 1]).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("60 KB hello in 1-byte records", one_byte_records),
        (
            "380 one-byte identities",
            client_hello(&[1; 32], &tiny_ids, true, MAX_RECORD),
        ),
        ("60 KB hello in 16 KiB records", padded.clone()),
        (
            "one 40 KB identity",
            client_hello(&[1; 32], &[vec![3; 40_000]], true, MAX_RECORD),
        ),
        (
            "255-byte identity",
            client_hello(&[1; 32], &[vec![4; 255]], true, MAX_RECORD),
        ),
        (
            "256-byte identity",
            client_hello(&[1; 32], &[vec![5; 256]], true, MAX_RECORD),
        ),
    ];
    assert_eq!(redis.command("CONFIG RESETSTAT"), "+OK\r\n");
    for (name, bytes) in &cases {
        let started = Instant::now();
        let on_stock = replay(stock, Framing::Whole, bytes).await;
        let stock_took = started.elapsed();
        let started = Instant::now();
        let on_fleet = replay(node.addr, Framing::Whole, bytes).await;
        let fleet_took = started.elapsed();
        eprintln!(
            "{name:32} {} bytes: fleet={on_fleet:?} in {fleet_took:?}, stock={on_stock:?} in {stock_took:?}",
            bytes.len()
        );
        assert_eq!(on_fleet, on_stock, "{name}");
        assert!(
            fleet_took < stock_took * 3 + Duration::from_millis(200),
            "{name}"
        );
    }
    let s = node.fleet.stats();
    eprintln!("stats: {s:?}");
    assert_eq!(redis.calls("getdel"), 4 + 1);
    assert_eq!((s.claims_lost, s.l2_misses), (4 + 1, 0), "{s:?}");
    assert_eq!(s.identities_shed, (380 - 4) + 1, "{s:?}");
}

/// The handshake messages carried by the records in `bytes`, joined.
fn handshake_payload(mut bytes: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    while bytes.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        payload.extend_from_slice(&bytes[5..5 + len]);
        bytes = &bytes[5 + len..];
    }
    payload
}

/// Attack (slowloris, memory): 200 connections each send the first 19,000 bytes of a
/// 60 KB ClientHello and stall: just under the 20 KiB the acceptor's tap keeps of a
/// hello, its most expensive case. Measured against the same on stock tokio-rustls.
///
/// Guards bounded memory: a stalled hello costs the fleet at most 48 KiB more than it
/// costs stock rustls, which buffers the same bytes. That is generous, more than twice
/// the tap's cap (room for its buffer's growth and for allocator noise), and still fails
/// a tap or acceptor that keeps much more per connection. Each server is measured in a
/// process of its own, this test binary run again for this test alone, so the other
/// tests' allocations do not show in its resident memory.
#[test]
fn stalled_partial_hellos_cost_bounded_memory() {
    if let Ok(server) = std::env::var(RSS_PROBE) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let each = runtime.block_on(rss_per_stalled_hello(&server));
        println!("{RSS_PROBE} {server} {each:.1}");
        return;
    }
    let stock = measure_in_own_process("stock");
    let fleet = measure_in_own_process("fleet");
    eprintln!(
        "a stalled partial hello costs {stock:.1} KiB on stock rustls, {fleet:.1} KiB on the fleet"
    );
    assert!(
        fleet < stock + 48.0,
        "stock {stock:.1} KiB, fleet {fleet:.1} KiB"
    );
}

/// Set in the child process that measures one server: `stock` or `fleet`.
const RSS_PROBE: &str = "FLEET_ATTACKS_RSS_PROBE";

/// Runs this test again in a child process measuring `server`; KiB per stalled hello.
fn measure_in_own_process(server: &str) -> f64 {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["stalled_partial_hellos_cost_bounded_memory", "--exact"])
        .args(["--nocapture", "--test-threads=1"])
        .env(RSS_PROBE, server)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let prefix = format!("{RSS_PROBE} {server} ");
    stdout
        .lines()
        .find_map(|line| Some(line.split_once(&prefix)?.1))
        .and_then(|each| each.trim().parse().ok())
        .unwrap_or_else(|| panic!("no measurement in {stdout}"))
}

/// Resident memory this process gains per stalled partial hello sent to `server`.
async fn rss_per_stalled_hello(server: &str) -> f64 {
    const CONNECTIONS: u32 = 200;
    let redis = (server == "fleet").then(Redis::start);
    let addr = match &redis {
        Some(redis) => Node::plain(redis).await.addr,
        None => stock_server().await,
    };
    let hello = client_hello_padded(&[1; 32], &[vec![2; 32]], true, MAX_RECORD, 60_000);
    let partial = &hello[..19_000];
    // Warm up: one stalled connection, so one-time costs are not counted.
    let mut warm = TcpStream::connect(addr).await.unwrap();
    warm.write_all(partial).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(partial).await.unwrap();
        held.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_kib();
    after.saturating_sub(before) as f64 / f64::from(CONNECTIONS)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Attack: build a fleet on a tokio runtime without the time driver. `build` once only
/// checked that a runtime exists, and the first `FleetAcceptor::accept` then panicked in
/// `tokio::time::timeout` ("timers are disabled"), once per connection, where
/// tokio-rustls's own acceptor works.
///
/// Guards against configuration-reachable panics: `build` refuses such a runtime with
/// `FleetError::NoRuntime`, and builds on the same kind of runtime with timers (the
/// control).
#[test]
fn a_runtime_without_timers_is_refused_at_build() {
    let build = |runtime: tokio::runtime::Runtime| {
        runtime.block_on(async {
            Fleet::builder(SessionCache::new(16))
                .redis_url("redis://127.0.0.1:1")
                .keys(FleetKeys::parse(KEY1).unwrap())
                .build()
        })
    };
    let mut without_timers = tokio::runtime::Builder::new_current_thread();
    let refused = build(without_timers.enable_io().build().unwrap());
    assert!(matches!(refused, Err(FleetError::NoRuntime)), "{refused:?}");
    let mut with_timers = tokio::runtime::Builder::new_current_thread();
    let built = build(with_timers.enable_all().build().unwrap());
    assert!(built.is_ok(), "{built:?}");
}

/// Behaviour of the example, by design: `--max-connections N` counts every open socket,
/// so N silent TCP connections (no bytes at all) keep everyone else from being accepted
/// until the handshake timeout drops them.
///
/// Pins that down on the example's binary, `--max-connections 2`: a client gets in
/// (control); with 2 idle sockets open it waits; once the handshake timeout (the
/// example's 10 s) has dropped them, it gets in again while they are still open on the
/// attacker's side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_slots_are_held_by_idle_sockets_until_the_handshake_timeout() {
    let server = Binary::start(&["--max-connections", "2"]);
    let addr: SocketAddr = server.addr.parse().unwrap();
    let real = client(ring(), &[TLS13]);
    assert_eq!(connect(&real, addr).await, Full, "control");
    let started = Instant::now();
    let _idle = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    let locked_out = tokio::time::timeout(Duration::from_millis(500), connect(&real, addr)).await;
    assert!(
        locked_out.is_err(),
        "two silent sockets lock everyone else out"
    );
    let later = tokio::time::timeout(Duration::from_secs(15), connect(&real, addr)).await;
    let waited = started.elapsed();
    eprintln!("in again after {waited:?}");
    assert!(later.is_ok(), "the handshake timeout frees the slots");
    assert!(waited >= Duration::from_millis(9_500), "{waited:?}");
    let (_, stats, _) = server.terminate();
    // The control's full handshake; the client came back with the control's ticket.
    let handshakes = (stat(&stats, "full"), stat(&stats, "resumed"));
    assert_eq!(handshakes, (1, 1), "{stats}");
    assert!(stat(&stats, "limited") >= 1, "{stats}");
}
