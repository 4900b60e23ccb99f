//! The fleet tier against a real `redis-server`: instances sharing sessions; tickets used
//! once in the whole fleet, in every framing a ClientHello can legally take; local
//! claims; the cache modes across instances; encryption at rest; key rotation; Redis
//! slow, stopping, restarting and absent at boot; hostile ClientHellos; the builder's
//! limits. Each test starts its own Redis.
#![cfg(feature = "redis")]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::connect_saying;
use common::hello::{Answer, MAX_RECORD, client_hello, client_hello_padded};
use common::process::s_client;
use common::redis::{Cluster, Redis};
use common::reframe::{FRAMINGS, Framing, Proxy, replay};
use common::server::{Serve, shipped_config};
use rustls::pki_types::ServerName;
use rustls::server::StoresServerSessions;
use rustls::{HandshakeKind, KeyLog, SupportedProtocolVersion};
use rustls_session_cache::fleet::{
    DEFAULT_FETCH_DEADLINE, Fleet, FleetBuilder, FleetError, FleetKeys,
};
use rustls_session_cache::{CacheMode, Session, SessionCache, SessionCacheBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use HandshakeKind::{Full, Resumed};

const KEY1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const KEY3: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;
const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;

/// How much longer than the fetch deadline a handshake may take on loopback, in a debug
/// build, on a busy 2-core machine.
const MARGIN: Duration = Duration::from_millis(300);

/// One echo server instance of the fleet, in-process (`tests/common/server.rs`), taking
/// connections through the fleet's acceptor.
struct Instance {
    addr: SocketAddr,
    fleet: Arc<Fleet>,
    server: common::server::Running,
}

impl Instance {
    async fn start(redis: &impl Backend, keys: &str) -> Self {
        Self::with(redis, keys, SessionCache::builder(), |b| b, None).await
    }

    /// Three instances on `redis`, with the same key.
    async fn three(redis: &impl Backend) -> [Self; 3] {
        [
            Self::start(redis, KEY1).await,
            Self::start(redis, KEY1).await,
            Self::start(redis, KEY1).await,
        ]
    }

    async fn with_mode(redis: &Redis, mode: CacheMode) -> Self {
        let cache = SessionCache::builder().capacity(1024).mode(mode);
        Self::with(redis, KEY1, cache, |b| b, None).await
    }

    /// Under `NO_INTERNAL_STORE`, an application's policy as the echo server's: the
    /// sessions a connection made are added to the fleet if its client says `remember
    /// me`, and dropped otherwise. (Clients here connect one at a time, so "the sessions
    /// made since the last line" are that connection's.)
    async fn admitting(redis: &Redis, mode: CacheMode) -> Self {
        let pending = Arc::new(Mutex::new(Vec::<Session>::new()));
        let held = pending.clone();
        let cache = SessionCache::builder()
            .capacity(1024)
            .mode(mode)
            .on_new_session(move |s| held.lock().unwrap().push(s.clone()))
            .build()
            .unwrap();
        let fleet = redis
            .backend(Fleet::builder(cache.clone()))
            .keys(FleetKeys::parse(KEY1).unwrap())
            .build()
            .unwrap();
        let admit = fleet.clone();
        let serve = Serve::new(shipped_config(&[TLS13, TLS12], fleet.clone()), cache)
            .through(&fleet, true)
            .on_data(move |line| {
                let made: Vec<Session> = std::mem::take(&mut *pending.lock().unwrap());
                if line == b"remember me\n" {
                    made.into_iter().for_each(|s| assert!(admit.add_session(s)));
                }
            });
        Self::serving(fleet, serve).await
    }

    async fn with(
        redis: &impl Backend,
        keys: &str,
        cache: SessionCacheBuilder,
        fleet: impl FnOnce(FleetBuilder) -> FleetBuilder,
        key_log: Option<Arc<dyn KeyLog>>,
    ) -> Self {
        Self::serve(redis, keys, cache.build().unwrap(), fleet, key_log, true).await
    }

    async fn serve(
        redis: &impl Backend,
        keys: &str,
        cache: Arc<SessionCache>,
        fleet: impl FnOnce(FleetBuilder) -> FleetBuilder,
        key_log: Option<Arc<dyn KeyLog>>,
        through_acceptor: bool,
    ) -> Self {
        let builder = redis
            .backend(Fleet::builder(cache.clone()))
            .keys(FleetKeys::parse(keys).unwrap());
        let fleet = fleet(builder).build().unwrap();
        let tls = shipped_config(&[TLS13, TLS12], fleet.clone());
        let tls = match key_log {
            Some(log) => {
                let mut config = Arc::try_unwrap(tls).unwrap();
                config.key_log = log;
                Arc::new(config)
            }
            None => tls,
        };
        let serve = Serve::new(tls, cache);
        // Without the fleet's acceptor: tokio-rustls's own, with the fleet as the store.
        let serve = match through_acceptor {
            true => serve.through(&fleet, true),
            false => serve,
        };
        Self::serving(fleet, serve).await
    }

    async fn serving(fleet: Arc<Fleet>, serve: Serve) -> Self {
        let server = serve.start().await;
        Self {
            addr: server.addr,
            fleet,
            server,
        }
    }

    /// Waits until every write queued so far has been written to Redis or dropped.
    async fn settle(&self) {
        common::settle(&self.fleet).await;
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// Where an instance's Redis is: one node, or a cluster.
trait Backend {
    fn backend(&self, builder: FleetBuilder) -> FleetBuilder;
}

impl Backend for Redis {
    fn backend(&self, builder: FleetBuilder) -> FleetBuilder {
        builder.redis_url(self.url())
    }
}

impl Backend for Cluster {
    fn backend(&self, builder: FleetBuilder) -> FleetBuilder {
        builder.redis_cluster(self.seeds())
    }
}

/// A client that remembers its sessions, whichever instance made them, as clients
/// behind a load balancer do (every instance has the same name and certificate).
fn connector(version: &'static SupportedProtocolVersion) -> TlsConnector {
    common::tls_connector(version)
}

async fn connect(client: &TlsConnector, addr: SocketAddr) -> (HandshakeKind, Duration) {
    connect_saying(client, addr, b"ping\n").await
}

async fn kind(client: &TlsConnector, instance: &Instance) -> HandshakeKind {
    connect(client, instance.addr).await.0
}

fn sum(
    fleet: &[Instance],
    counter: impl Fn(&rustls_session_cache::fleet::FleetStats) -> u64,
) -> u64 {
    fleet.iter().map(|i| counter(&i.fleet.stats())).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_instance_resumes_on_the_others() {
    let redis = Redis::start();
    let fleet = Instance::three(&redis).await;
    for version in [TLS12, TLS13] {
        let client = connector(version);
        assert_eq!(kind(&client, &fleet[0]).await, Full, "{version:?}");
        for i in [1, 2, 0, 2] {
            for instance in &fleet {
                instance.settle().await;
            }
            assert_eq!(
                kind(&client, &fleet[i]).await,
                Resumed,
                "{version:?} on instance {i}"
            );
        }
    }
    let stats: Vec<_> = fleet.iter().map(|i| i.fleet.stats()).collect();
    // TLS 1.2: fetched on 1 and 2 (0 made it); TLS 1.3: four tickets claimed, each once.
    assert_eq!(stats[1].l1.hits + stats[2].l1.hits, 3, "{stats:#?}");
    assert_eq!(
        sum(&fleet, |s| s.claims_won + s.claims_local),
        4,
        "{stats:#?}"
    );
    assert_eq!(sum(&fleet, |s| s.claims_redeemed), 4, "{stats:#?}");
    assert_eq!(sum(&fleet, |s| s.decrypt_failures + s.redis_errors), 0);
    for instance in fleet {
        instance.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_ticket_is_refused_on_every_instance() {
    let redis = Redis::start();
    let fleet = Instance::three(&redis).await;
    let addr = |i: usize| fleet[i].addr.to_string();
    // openssl's s_client offers a saved ticket as often as asked: a replaying client.
    let dir = tempfile::tempdir().unwrap();
    let ticket = dir.path().join("ticket.pem");
    let first =
        tokio::task::block_in_place(|| s_client(&addr(0), "-tls1_3", ("-sess_out", &ticket), "hi"));
    assert!(first.starts_with("New, TLSv1.3"), "{first}");
    fleet[0].settle().await;
    let replays = tokio::task::block_in_place(|| {
        [1, 2, 0, 1].map(|i| s_client(&addr(i), "-tls1_3", ("-sess_in", &ticket), "hi"))
    });
    assert!(
        replays[0].starts_with("Reused, TLSv1.3"),
        "used on instance 1: {}",
        replays[0]
    );
    for (i, replay) in replays.iter().enumerate().skip(1) {
        assert!(
            replay.starts_with("New, TLSv1.3"),
            "replay {i} resumed: {replay}"
        );
    }
    // Instance 0 made the ticket and still held it: its claim was lost to instance 1.
    assert_eq!(fleet[0].fleet.stats().claims_lost, 1);
    assert_eq!(fleet[1].fleet.stats().claims_won, 1);
    assert_eq!(sum(&fleet, |s| s.claims_redeemed), 1);
    for instance in fleet {
        instance.stop().await;
    }
}

/// The attack the issue measured: a ticket used once, then its ClientHello replayed
/// (as 0-RTT replays are) in a framing the old peeking parser did not follow but rustls
/// accepts. Every framing of a fresh ticket resumes once; every replay, on every
/// instance, gets a full handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_resumes_once_in_every_framing_and_replays_resume_nowhere() {
    let redis = Redis::start();
    let fleet = Instance::three(&redis).await;
    let mut framings = FRAMINGS.to_vec();
    framings.push(Framing::RecordVersion(0x0002)); // SSLv2's number: rustls takes it too
    for framing in framings {
        let redeemed_before = sum(&fleet, |s| s.claims_redeemed);
        let client = connector(TLS13);
        assert_eq!(kind(&client, &fleet[0]).await, Full);
        fleet[0].settle().await;
        // A fresh ticket, framed this way through a proxy, resumes on another instance.
        let proxy = Proxy::start(fleet[1].addr, framing).await;
        assert_eq!(
            connect(&client, proxy.addr).await.0,
            Resumed,
            "a fresh ticket in {framing:?}"
        );
        // The same ClientHello, replayed raw in the same framing, resumes nowhere: not
        // where it was used, not where it was made, not on the third instance.
        let hello = proxy.last_hello();
        for (i, instance) in fleet.iter().enumerate() {
            let answer = replay(instance.addr, framing, &hello).await;
            assert_eq!(
                answer,
                Answer::Full,
                "replay in {framing:?} on instance {i}"
            );
        }
        assert_eq!(
            sum(&fleet, |s| s.claims_redeemed) - redeemed_before,
            1,
            "one resumption in {framing:?}"
        );
    }
    // TLS 1.2 sessions are multi-use: every framing resumes, on every instance.
    for framing in FRAMINGS {
        let client = connector(TLS12);
        assert_eq!(kind(&client, &fleet[2]).await, Full);
        fleet[2].settle().await;
        for instance in &fleet[..2] {
            let proxy = Proxy::start(instance.addr, framing).await;
            assert_eq!(connect(&client, proxy.addr).await.0, Resumed, "{framing:?}");
        }
    }
    assert_eq!(sum(&fleet, |s| s.hellos_unparsed), 0);
    for instance in fleet {
        instance.stop().await;
    }
}

/// A hello slower than the hello timeout is dropped: nothing is claimed for it, so the
/// ticket it carries is not used up, and resumes when offered again in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_slower_than_the_hello_timeout_is_dropped_and_claims_nothing() {
    let redis = Redis::start();
    let maker = Instance::start(&redis, KEY1).await;
    let slow = Instance::with(
        &redis,
        KEY1,
        SessionCache::builder(),
        |b| b.hello_timeout(Duration::from_millis(300)),
        None,
    )
    .await;
    let client = connector(TLS13);
    assert_eq!(kind(&client, &maker).await, Full);
    maker.settle().await;
    let proxy = Proxy::start(slow.addr, Framing::Dribble(4, Duration::from_millis(200))).await;
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    assert!(client.connect(name, tcp).await.is_err(), "dropped");
    let hello = proxy.last_hello();
    let stats = slow.fleet.stats();
    assert_eq!(
        (stats.claims_won, redis.calls("getdel")),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(
        replay(slow.addr, Framing::Whole, &hello).await,
        Answer::Resumes
    );
    assert_eq!(slow.fleet.stats().claims_redeemed, 1);
    maker.stop().await;
    slow.stop().await;
}

/// `take` hands out no ticket without a claim: a server that takes connections with
/// plain `TlsAcceptor` (no fleet acceptor) never resumes TLS 1.3, even its own tickets,
/// and a direct `take` of a ticket L1 holds finds nothing. TLS 1.2 still resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_acceptor_no_ticket_resumes() {
    let redis = Redis::start();
    let ids = Arc::new(Mutex::new(Vec::new()));
    let seen = ids.clone();
    let cache = SessionCache::builder()
        .on_new_session(move |s: &Session| seen.lock().unwrap().push(s.id().to_vec()))
        .build()
        .unwrap();
    let server = Instance::serve(&redis, KEY1, cache.clone(), |b| b, None, false).await;
    let (fleet, addr) = (server.fleet.clone(), server.addr);
    let (tls12, tls13) = (connector(TLS12), connector(TLS13));
    assert_eq!(connect(&tls13, addr).await.0, Full);
    assert_eq!(
        connect(&tls13, addr).await.0,
        Full,
        "its own ticket, unclaimed"
    );
    assert_eq!(connect(&tls12, addr).await.0, Full);
    assert_eq!(connect(&tls12, addr).await.0, Resumed, "TLS 1.2 from L1");
    let tickets: Vec<Vec<u8>> = ids.lock().unwrap().clone();
    assert_eq!(
        tickets.len(),
        4 + 1,
        "two tickets per TLS 1.3 handshake, one TLS 1.2 session"
    );
    let held = tickets.iter().filter(|id| cache.contains(id)).count();
    assert!(held >= 3, "L1 holds the tickets: {held}");
    for id in &tickets {
        assert_eq!(fleet.take(id), None, "no claim, no ticket");
    }
    assert_eq!(fleet.stats().claims_redeemed, 0);
    server.stop().await;
}

/// Clients that come straight back, before their tickets' writes have landed, still
/// resume: a ticket not yet sent is claimed locally, and one being sent is waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_immediate_reconnects_all_resume() {
    let redis = Redis::start();
    // 64 handshakes at once in a debug build can hold a connection's task past the
    // default 25 ms: this test is about finding the ticket, not about the deadline.
    let instance = Instance::with(
        &redis,
        KEY1,
        SessionCache::builder(),
        |b| b.fetch_deadline(Duration::from_secs(2)),
        None,
    )
    .await;
    let addr = instance.addr;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..32 {
        clients.spawn(async move {
            let client = connector(TLS13);
            let first = connect(&client, addr).await.0;
            let again = connect(&client, addr).await.0;
            (first, again)
        });
    }
    let outcomes = clients.join_all().await;
    let s = instance.fleet.stats();
    assert!(
        outcomes.iter().all(|o| *o == (Full, Resumed)),
        "{outcomes:?} {s:?}"
    );
    assert_eq!(s.claims_won + s.claims_local, 32, "{s:?}");
    assert_eq!((s.claims_redeemed, s.claims_lost), (32, 0), "{s:?}");
    assert_eq!(s.writes_cancelled, s.claims_local, "{s:?}");
    instance.settle().await;
    instance.stop().await;
}

/// A local claim, deterministically: with Redis not answering writes, the writer's
/// batches in flight (four at most) get stuck, and later tickets stay unsent. Those
/// resume here, once; a ticket in a stuck batch cannot be claimed within the deadline,
/// so its handshake is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_not_yet_sent_are_claimed_locally_and_once() {
    let redis = Redis::start();
    let instance = Instance::start(&redis, KEY1).await;
    // Prime the connection, so that the pause below catches writes, not the connect.
    let warm = connector(TLS13);
    assert_eq!(kind(&warm, &instance).await, Full);
    instance.settle().await;
    assert_eq!(redis.command("CLIENT PAUSE 3000 WRITE"), "+OK\r\n");
    let first = connector(TLS13);
    assert_eq!(kind(&first, &instance).await, Full); // its tickets: a stuck batch
    for _ in 0..4 {
        // More stuck batches, until the writer has no room left.
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(kind(&connector(TLS13), &instance).await, Full);
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let second = connector(TLS13);
    assert_eq!(kind(&second, &instance).await, Full); // its tickets: unsent
    let cancelled = instance.fleet.stats().writes_cancelled;
    let (kind2, took) = connect(&second, instance.addr).await;
    assert_eq!(kind2, Resumed, "unsent: claimed locally");
    assert!(took < DEFAULT_FETCH_DEADLINE + MARGIN, "{took:?}");
    assert_eq!(instance.fleet.stats().writes_cancelled, cancelled + 1);
    assert_eq!(instance.fleet.stats().claims_local, 1);
    let (kind1, took) = connect(&first, instance.addr).await;
    assert_eq!(
        kind1, Full,
        "being sent, and Redis is stuck: no claim in time"
    );
    assert!(took < DEFAULT_FETCH_DEADLINE + MARGIN, "{took:?}");
    assert!(instance.fleet.stats().fetch_timeouts >= 1);
    assert_eq!(redis.command("CLIENT UNPAUSE"), "+OK\r\n");
    instance.settle().await;
    instance.stop().await;
}

/// With Redis not answering at all, handshakes stay within the deadline and give full
/// handshakes; past `max_in_flight`, lookups are shed without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_redis_costs_at_most_the_deadline_and_sheds_past_the_cap() {
    let redis = Redis::start();
    let maker = Instance::start(&redis, KEY1).await;
    let capped = Instance::with(
        &redis,
        KEY1,
        SessionCache::builder(),
        |b| {
            b.max_in_flight(1)
                .fetch_deadline(Duration::from_millis(400))
        },
        None,
    )
    .await;
    let clients = [connector(TLS13), connector(TLS13)];
    for client in &clients {
        assert_eq!(kind(client, &maker).await, Full);
    }
    maker.settle().await;
    assert_eq!(redis.command("CLIENT PAUSE 2000 ALL"), "+OK\r\n");
    let (a, b) = tokio::join!(
        connect(&clients[0], capped.addr),
        connect(&clients[1], capped.addr)
    );
    assert_eq!((a.0, b.0), (Full, Full));
    let (slow, quick) = if a.1 > b.1 { (a.1, b.1) } else { (b.1, a.1) };
    assert!(slow < Duration::from_millis(400) + MARGIN, "{slow:?}");
    assert!(
        quick < Duration::from_millis(400),
        "shed, not waiting: {quick:?}"
    );
    let s = capped.fleet.stats();
    assert_eq!((s.fetches_shed, s.fetch_timeouts), (1, 1), "{s:?}");
    assert_eq!(redis.command("CLIENT UNPAUSE"), "+OK\r\n");
    maker.stop().await;
    capped.stop().await;
}

/// The cache modes hold across the fleet, with two instances on one Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mode_holds_across_two_instances() {
    let server = CacheMode::SERVER;
    for (mode, crosses) in [
        (server, true),
        (server | CacheMode::NO_INTERNAL_LOOKUP, false),
        (CacheMode::OFF, false),
    ] {
        let redis = Redis::start();
        let (a, b) = (
            Instance::with_mode(&redis, mode).await,
            Instance::with_mode(&redis, mode).await,
        );
        for version in [TLS12, TLS13] {
            let client = connector(version);
            assert_eq!(kind(&client, &a).await, Full, "{mode} {version:?}");
            a.settle().await;
            let expected = if crosses { Resumed } else { Full };
            assert_eq!(kind(&client, &b).await, expected, "{mode} {version:?} on b");
            assert_eq!(kind(&client, &a).await, expected, "{mode} {version:?} on a");
        }
        let lookups = redis.calls("get") + redis.calls("getdel");
        let keys = redis.all_values().len();
        match mode {
            m if m == CacheMode::OFF => assert_eq!(keys, 0, "off stores nothing anywhere"),
            m if !m.looks_up_internally() => assert_eq!(lookups, 0, "no lookups"),
            _ => assert!(lookups > 0),
        }
        a.stop().await;
        b.stop().await;
    }
}

/// `NO_INTERNAL_STORE`: only the sessions the application admits (the echo server's
/// `remember me`) reach Redis and resume, on either instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_internal_store_shares_only_what_the_application_admits() {
    let redis = Redis::start();
    let mode = CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE;
    let (a, b) = (
        Instance::admitting(&redis, mode).await,
        Instance::admitting(&redis, mode).await,
    );
    for (version, admitted) in [(TLS12, 1), (TLS13, 2)] {
        assert_eq!(redis.command("FLUSHALL"), "+OK\r\n");
        let remembered = connector(version);
        let forgotten = connector(version);
        assert_eq!(
            connect_saying(&remembered, a.addr, b"remember me\n")
                .await
                .0,
            Full
        );
        assert_eq!(connect(&forgotten, a.addr).await.0, Full);
        a.settle().await;
        assert_eq!(
            redis.all_values().len(),
            admitted,
            "{version:?}: only the admitted"
        );
        assert_eq!(kind(&remembered, &b).await, Resumed, "{version:?}");
        assert_eq!(kind(&forgotten, &b).await, Full, "{version:?}");
        assert_eq!(kind(&forgotten, &a).await, Full, "{version:?}");
    }
    a.stop().await;
    b.stop().await;
}

/// `Fleet::put` returns what `SessionCache::put` returns, in every mode, and queues for
/// Redis exactly what L1 stored; `add_session` and `remove_session` reach Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_add_and_remove_match_the_cache_and_reach_redis() {
    let redis = Redis::start();
    let server = CacheMode::SERVER;
    for (mode, callback, queued) in [
        (server, false, 1),
        (server | CacheMode::NO_INTERNAL_LOOKUP, false, 1),
        (server | CacheMode::NO_INTERNAL_STORE, false, 0),
        (server | CacheMode::NO_INTERNAL_STORE, true, 0),
        (CacheMode::OFF, true, 0),
    ] {
        let build = || {
            let builder = SessionCache::builder().mode(mode);
            let builder = if callback {
                builder.on_new_session(|_| {})
            } else {
                builder
            };
            builder.build().unwrap()
        };
        let (plain, l1) = (build(), build());
        let fleet = Fleet::builder(l1)
            .redis_url(redis.url())
            .keys(FleetKeys::parse(KEY1).unwrap())
            .build()
            .unwrap();
        let (id, value) = (vec![1; 32], vec![2; 83]);
        assert_eq!(
            fleet.put(id.clone(), value.clone()),
            plain.put(id, value),
            "{mode} callback={callback}"
        );
        assert_eq!(
            fleet.stats().writes_queued,
            queued,
            "{mode} callback={callback}"
        );
    }

    let fleet = Fleet::builder(SessionCache::new(16))
        .redis_url(redis.url())
        .keys(FleetKeys::parse(KEY1).unwrap())
        .build()
        .unwrap();
    assert_eq!(redis.command("FLUSHALL"), "+OK\r\n");
    let session = Session::new(vec![5; 32], vec![6; 83]);
    assert!(fleet.add_session(session.clone()));
    assert!(
        !fleet.add_session(session),
        "identical: false, as SessionCache"
    );
    let exists = format!("EXISTS rsc::{}", "05".repeat(32));
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis.command(&exists) != ":1\r\n" {
        assert!(Instant::now() < deadline, "add_session never reached Redis");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(fleet.remove_session(&[5; 32]).await.unwrap());
    assert_eq!(redis.command(&exists), ":0\r\n", "removed from Redis");
    assert!(!fleet.l1().contains(&[5; 32]));
    assert!(!fleet.remove_session(&[5; 32]).await.unwrap());
}

/// The README's ACL for the fleet's user is enough: two instances logged in as a user
/// limited to the prefix and the commands the fleet uses share sessions, and
/// `remove_session` works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_acl_is_all_the_fleet_needs() {
    let redis = Redis::start();
    let acl = "ACL SETUSER rsc on >secret-pw ~rsc:* -@all +get +set +getdel +del +ping";
    assert_eq!(redis.command(acl), "+OK\r\n");
    let url = format!("redis://rsc:secret-pw@127.0.0.1:{}", redis.port);
    let login = |b: FleetBuilder| b.redis_url(url.clone());
    let a = Instance::with(&redis, KEY1, SessionCache::builder(), login, None).await;
    let b = Instance::with(&redis, KEY1, SessionCache::builder(), login, None).await;
    for version in [TLS12, TLS13] {
        let client = connector(version);
        assert_eq!(kind(&client, &a).await, Full);
        a.settle().await;
        assert_eq!(kind(&client, &b).await, Resumed, "{version:?}");
    }
    let session = Session::new(vec![8; 32], vec![9; 83]);
    assert!(a.fleet.add_session(session));
    a.settle().await;
    assert!(a.fleet.remove_session(&[8; 32]).await.unwrap());
    assert_eq!(
        a.fleet.stats().redis_errors + b.fleet.stats().redis_errors,
        0
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builder_refuses_every_setting_out_of_bounds_with_a_typed_error() {
    let keys = || FleetKeys::parse(KEY1).unwrap();
    let build = |f: fn(FleetBuilder) -> FleetBuilder| {
        f(Fleet::builder(SessionCache::new(16)).keys(keys())).build()
    };
    let limit = |result: Result<Arc<Fleet>, FleetError>| match result {
        Err(FleetError::LimitOutOfRange { setting, value, .. }) => (setting, value),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        limit(build(|b| b.write_queue(usize::MAX))),
        ("write_queue", usize::MAX)
    );
    assert_eq!(limit(build(|b| b.write_queue(0))), ("write_queue", 0));
    assert_eq!(
        limit(build(|b| b.max_in_flight(usize::MAX))),
        ("max_in_flight", usize::MAX)
    );
    assert_eq!(limit(build(|b| b.max_in_flight(0))), ("max_in_flight", 0));
    assert_eq!(
        limit(build(|b| b.max_identities(17))),
        ("max_identities", 17)
    );
    let duration = |result: Result<Arc<Fleet>, FleetError>| match result {
        Err(FleetError::DurationOutOfRange { setting, value, .. }) => (setting, value),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        duration(build(|b| b.fetch_deadline(Duration::ZERO))),
        ("fetch_deadline", Duration::ZERO)
    );
    assert_eq!(
        duration(build(|b| b.fetch_deadline(Duration::MAX))),
        ("fetch_deadline", Duration::MAX)
    );
    assert_eq!(
        duration(build(|b| b.hello_timeout(Duration::from_secs(301)))),
        ("hello_timeout", Duration::from_secs(301))
    );
    for bad in ["", "has space", "tab\t", "ünïcode", &"x".repeat(65)] {
        let prefix = bad.to_owned();
        let result = Fleet::builder(SessionCache::new(16))
            .keys(keys())
            .prefix(prefix)
            .build();
        assert!(
            matches!(result, Err(FleetError::BadPrefix { .. })),
            "{bad:?}"
        );
    }
    let url = Fleet::builder(SessionCache::new(16))
        .keys(keys())
        .redis_url("nope://x")
        .build();
    let err = url.unwrap_err();
    assert!(matches!(err, FleetError::RedisUrl { .. }));
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps the redis error"
    );
    assert!(matches!(
        Fleet::builder(SessionCache::new(16)).build(),
        Err(FleetError::NoKeys)
    ));
    // The bounds themselves are accepted.
    let edges = Fleet::builder(SessionCache::new(16))
        .keys(keys())
        .write_queue(1 << 20)
        .max_in_flight(65_536)
        .max_identities(0)
        .fetch_deadline(Duration::from_secs(10))
        .hello_timeout(Duration::from_millis(1))
        .prefix("x".repeat(64))
        .build();
    assert!(edges.is_ok(), "{edges:?}");
}

#[test]
fn building_outside_a_runtime_is_an_error() {
    let result = Fleet::builder(SessionCache::new(16))
        .keys(FleetKeys::parse(KEY1).unwrap())
        .build();
    assert!(matches!(result, Err(FleetError::NoRuntime)), "{result:?}");
}

/// Records every new session's plaintext value and every TLS 1.2 master secret.
#[derive(Debug, Default)]
struct Secrets(Mutex<Vec<Vec<u8>>>);

impl KeyLog for Secrets {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        if label == "CLIENT_RANDOM" {
            self.0.lock().unwrap().push(secret.to_vec());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_never_sees_a_session_value_or_master_secret_in_plaintext() {
    let redis = Redis::start();
    let values = Arc::new(Secrets::default());
    let masters = Arc::new(Secrets::default());
    let seen = values.clone();
    let cache = SessionCache::builder()
        .on_new_session(move |s: &Session| seen.0.lock().unwrap().push(s.value().to_vec()));
    let instance = Instance::with(&redis, KEY1, cache, |b| b, Some(masters.clone())).await;
    for version in [TLS12, TLS13, TLS12, TLS13] {
        assert_eq!(kind(&connector(version), &instance).await, Full);
    }
    instance.settle().await;
    let stored = redis.all_values();
    let values = values.0.lock().unwrap().clone();
    let masters = masters.0.lock().unwrap().clone();
    assert_eq!(
        values.len(),
        6,
        "two TLS 1.2 sessions, four TLS 1.3 tickets"
    );
    assert_eq!(masters.len(), 2, "two TLS 1.2 master secrets");
    assert_eq!(stored.len(), 6, "all six in Redis: {stored:?}");
    for (key, value) in &stored {
        assert!(key.starts_with("rsc:"), "{key}");
        for secret in values.iter().chain(masters.iter()) {
            // No 12-byte run of a secret appears anywhere in what Redis holds.
            for window in secret.windows(12) {
                assert!(
                    !value.windows(12).any(|w| w == window),
                    "plaintext at rest under {key}"
                );
                assert!(
                    !key.as_bytes().windows(12).any(|w| w == window),
                    "plaintext in key {key}"
                );
            }
        }
    }
    instance.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_opens_old_entries_and_a_wrong_key_only_misses() {
    let redis = Redis::start();
    let old = Instance::start(&redis, KEY1).await;
    let rotated = Instance::start(&redis, &format!("# newest first\n{KEY2}\n{KEY1}\n")).await;
    let wrong = Instance::start(&redis, KEY3).await;
    let client = connector(TLS12);
    assert_eq!(kind(&client, &old).await, Full);
    old.settle().await;
    assert_eq!(
        kind(&client, &rotated).await,
        Resumed,
        "old entries still open"
    );
    assert_eq!(
        kind(&client, &wrong).await,
        Full,
        "a wrong key is a miss, not an error"
    );
    let stats = wrong.fleet.stats();
    assert_eq!((stats.decrypt_failures, stats.l2_hits), (1, 0), "{stats:?}");
    // New entries are sealed with the newest key: the old-key-only instance cannot open
    // them, the rotated one can.
    let fresh = connector(TLS12);
    let newer = Instance::start(&redis, KEY2).await;
    assert_eq!(kind(&fresh, &rotated).await, Full);
    rotated.settle().await;
    // (A TLS 1.2 client keeps only its latest session, and a full handshake replaces
    // it: check where it resumes before where it cannot.)
    assert_eq!(kind(&fresh, &newer).await, Resumed);
    assert_eq!(kind(&fresh, &old).await, Full);
    assert_eq!(old.fleet.stats().decrypt_failures, 1);
    for instance in [old, rotated, wrong, newer] {
        instance.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopping_and_restarting_mid_run() {
    let mut redis = Redis::start();
    let a = Instance::start(&redis, KEY1).await;
    let b = Instance::start(&redis, KEY1).await;
    let (tls12, tls13) = (connector(TLS12), connector(TLS13));
    for client in [&tls12, &tls13] {
        assert_eq!(kind(client, &a).await, Full);
    }
    a.settle().await;
    redis.stop();

    // Every handshake still succeeds, promptly. TLS 1.2 still resumes where the session
    // was made; TLS 1.3 tickets written to Redis cannot be claimed, so they resume
    // nowhere. (A TLS 1.2 client keeps only its latest session: try where it was made
    // first.)
    let bound = DEFAULT_FETCH_DEADLINE + MARGIN;
    for (client, on_a, on_b) in [(&tls12, Resumed, Full), (&tls13, Full, Full)] {
        for (instance, expected) in [(&a, on_a), (&b, on_b)] {
            let (kind, took) = connect(client, instance.addr).await;
            assert_eq!(kind, expected);
            assert!(took < bound, "a handshake took {took:?} with Redis down");
        }
    }
    assert!(a.fleet.stats().fetch_timeouts + a.fleet.stats().redis_errors > 0);
    assert_eq!(
        a.fleet.stats().claims_redeemed + b.fleet.stats().claims_redeemed,
        0
    );

    // Redis comes back on the same port: the servers reconnect by themselves, and
    // sessions made from now on resume across instances again.
    redis.restart();
    shared_again(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

/// Waits, making fresh sessions on `a`, until one resumes on `b`: Redis is reachable
/// from both again, without restarting either.
async fn shared_again(a: &Instance, b: &Instance) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fresh = connector(TLS13);
        assert_eq!(kind(&fresh, a).await, Full);
        a.settle().await;
        if kind(&fresh, b).await == Resumed {
            return;
        }
        assert!(Instant::now() < deadline, "sessions never shared again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_start_and_serve_with_redis_down_at_boot() {
    let mut redis = Redis::absent();
    let a = Instance::start(&redis, KEY1).await;
    let b = Instance::start(&redis, KEY1).await;
    let client = connector(TLS13);
    let (first, took) = connect(&client, a.addr).await;
    assert_eq!(first, Full);
    assert!(took < DEFAULT_FETCH_DEADLINE + MARGIN, "{took:?}");
    redis.restart();
    shared_again(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

/// Sends `bytes` as a client would its first flight, then reads until the server hangs
/// up (or a second passes).
async fn send_raw(addr: SocketAddr, bytes: &[u8]) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(bytes).await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.read_to_end(&mut sink)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_client_hellos_change_nothing_and_cost_bounded_redis_calls() {
    let redis = Redis::start();
    let instance = Instance::start(&redis, KEY1).await;
    let cache = instance.fleet.l1().clone();
    let client = connector(TLS13);
    assert_eq!(kind(&client, &instance).await, Full);
    instance.settle().await;
    let (entries, bytes) = (cache.len(), cache.bytes());
    assert_eq!(redis.command("CONFIG RESETSTAT"), "+OK\r\n");

    // 8-byte identities: 300 of them fit in a ClientHello the acceptor keeps.
    let many: Vec<Vec<u8>> = (0..300u16).map(|n| n.to_be_bytes().repeat(4)).collect();
    let thousand: Vec<Vec<u8>> = (0..1000u16).map(|n| n.to_be_bytes().repeat(4)).collect();
    let hostile: Vec<(&str, Vec<u8>, u64)> = vec![
        (
            "garbage",
            b"\x16\x03\x01garbage that is not TLS at all".to_vec(),
            0,
        ),
        (
            "plain text",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            0,
        ),
        (
            "truncated",
            client_hello(&[1; 32], &[vec![2; 32]], true, MAX_RECORD)[..80].to_vec(),
            0,
        ),
        (
            "oversized record",
            {
                let mut big = vec![22, 3, 1, 0x48, 0x00, 1, 0x00, 0x47, 0xfc];
                big.resize(5 + 0x4800, 0xee);
                big
            },
            0,
        ),
        (
            "1000 identities (47 KB, larger than the acceptor keeps)",
            client_hello(&[3; 32], &thousand, true, MAX_RECORD),
            1,
        ),
        (
            "300 identities",
            client_hello(&[3; 32], &many, true, MAX_RECORD),
            0,
        ),
        (
            "16 KiB of padding",
            client_hello_padded(&[3; 32], &many[..1], true, MAX_RECORD, 16 * 1024),
            1,
        ),
    ];
    for (name, hello, unparsed) in &hostile {
        let before = instance.fleet.stats().hellos_unparsed;
        send_raw(instance.addr, hello).await;
        assert_eq!(
            (cache.len(), cache.bytes()),
            (entries, bytes),
            "{name} changed L1"
        );
        assert_eq!(
            instance.fleet.stats().hellos_unparsed - before,
            *unparsed,
            "{name}"
        );
    }
    // Only the 300-identity hello reached Redis: with the first 4 identities, in one
    // pipeline of GETDELs. Nothing else cost a call.
    assert_eq!(redis.calls("getdel"), 4);
    assert_eq!(redis.calls("get"), 0);
    let stats = instance.fleet.stats();
    assert_eq!(stats.identities_shed, 296, "{stats:?}");
    assert_eq!(stats.claims_won, 0);

    // And the server still serves, and resumes.
    assert_eq!(kind(&client, &instance).await, Resumed);
    instance.stop().await;
}

/// An acceptor told its config is TLS 1.2 only claims no tickets (a claim would only use
/// them up), and looks the legacy session id up as a TLS 1.2 session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acceptor_without_tls13_claims_no_tickets() {
    let redis = Redis::start();
    let hello = client_hello(&[5; 32], &[vec![6; 32]], true, MAX_RECORD);
    for (tls13, getdels) in [(true, 1), (false, 0)] {
        assert_eq!(redis.command("CONFIG RESETSTAT"), "+OK\r\n");
        let fleet = Fleet::builder(SessionCache::new(16))
            .redis_url(redis.url())
            .keys(FleetKeys::parse(KEY1).unwrap())
            .build()
            .unwrap();
        let versions: &[_] = if tls13 { &[TLS13, TLS12] } else { &[TLS12] };
        let config = shipped_config(versions, fleet.clone());
        let acceptor = fleet.acceptor(config).tls13(tls13);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        });
        send_raw(addr, &hello).await;
        server.await.unwrap();
        assert_eq!(redis.calls("getdel"), getdels, "tls13({tls13})");
        // Without TLS 1.3 the legacy session id names a TLS 1.2 session: looked up.
        assert_eq!(redis.calls("get"), 1 - getdels, "tls13({tls13})");
    }
}

/// The echo server binary, as users run it, with `--redis` and a key file.
mod binary {
    use std::net::TcpStream;
    use std::time::Duration;

    use super::common::process::{EchoServer, fails_with_one_line, s_client};
    use super::{KEY1, KEY2, Redis};

    fn key_file(dir: &tempfile::TempDir, text: &str) -> String {
        let path = dir.path().join("fleet.keys");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Waits (10 s at most) until `done` says the sessions have reached Redis.
    fn written_when(done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "the session never reached Redis"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn two_echo_servers_share_sessions_through_redis() {
        let redis = Redis::start();
        let dir = tempfile::tempdir().unwrap();
        let keys = key_file(
            &dir,
            &format!("# fleet keys, newest first\n\n{KEY2}\n{KEY1}\n"),
        );
        let flags = [
            "--redis",
            &redis.url(),
            "--redis-prefix",
            "test",
            "--fleet-key-file",
            &keys,
        ];
        let a = EchoServer::start(&flags);
        let b = EchoServer::start(&flags);
        for (version, name, written) in [("-tls1_2", "TLSv1.2", 1), ("-tls1_3", "TLSv1.3", 3)] {
            let session = dir.path().join(format!("{name}.pem"));
            let made = s_client(&a.addr, version, ("-sess_out", &session), "hello");
            assert!(made.starts_with(&format!("New, {name}")), "{made}");
            // The write to Redis is behind the handshake: wait until it has landed.
            written_when(|| redis.all_values().len() >= written);
            let resumed = s_client(&b.addr, version, ("-sess_in", &session), "again");
            assert!(
                resumed.starts_with(&format!("Reused, {name}")),
                "on the other server: {resumed}"
            );
        }
        assert!(
            redis
                .all_values()
                .iter()
                .all(|(key, _)| key.starts_with("test:"))
        );
        let (status, stats, _) = b.terminate();
        assert!(status.success());
        assert!(stats.contains(" l2_hits=2 "), "{stats}");
        assert!(stats.contains(" claims_won=1 "), "{stats}");
        assert!(stats.contains(" claims_redeemed=1 "), "{stats}");
        let (status, stats, _) = a.terminate();
        assert!(status.success());
        assert!(stats.contains(" writes_dropped=0 "), "{stats}");
    }

    /// `--context`: two servers on one Redis naming different contexts never resume
    /// each other's sessions (nor use them up), and one naming the same context does;
    /// with `tickets` (`--tickets fleet`) the same holds for fleet tickets.
    fn contexts_across_servers(tickets: bool) {
        let redis = Redis::start();
        let dir = tempfile::tempdir().unwrap();
        let keys = key_file(&dir, &format!("{KEY1}\n"));
        let url = redis.url();
        let fleet = ["--redis", &url, "--fleet-key-file", &keys];
        let with = |context| {
            let ticket_flags: &[&str] = if tickets {
                &["--tickets", "fleet"]
            } else {
                &[]
            };
            EchoServer::start(&[&fleet[..], ticket_flags, &["--context", context]].concat())
        };
        let (a, other, same) = (with("alpha"), with("beta"), with("alpha"));
        // `alpha`, hex: the context is in every key of its sessions.
        let alpha_keys = || {
            let all = redis.all_values();
            all.iter()
                .filter(|(key, _)| key.starts_with("rsc:616c706861:"))
                .count()
        };
        for (version, name, written) in [("-tls1_2", "TLSv1.2", 1), ("-tls1_3", "TLSv1.3", 3)] {
            let session = dir.path().join(format!("{name}.pem"));
            let made = s_client(&a.addr, version, ("-sess_out", &session), "hello");
            assert!(made.starts_with(&format!("New, {name}")), "{made}");
            written_when(|| tickets || alpha_keys() >= written);
            let crossed = s_client(&other.addr, version, ("-sess_in", &session), "hi");
            assert!(
                crossed.starts_with(&format!("New, {name}")),
                "another context: {crossed}"
            );
            let resumed = s_client(&same.addr, version, ("-sess_in", &session), "again");
            assert!(
                resumed.starts_with(&format!("Reused, {name}")),
                "the same context, on another server: {resumed}"
            );
        }
        let (status, stats, _) = other.terminate();
        assert!(status.success());
        assert!(stats.contains(" resumed=0 "), "{stats}");
        assert!(stats.contains(" l2_hits=0 "), "{stats}");
        assert!(stats.contains(" claims_redeemed=0 "), "{stats}");
        if tickets {
            // Both tickets were opened under `beta` and failed: the context is bound in.
            assert!(stats.contains(" tickets_decrypted=0 "), "{stats}");
            assert!(stats.contains(" ticket_decrypt_bad_tag=2 "), "{stats}");
        }
        let (status, stats, _) = same.terminate();
        assert!(status.success());
        assert!(stats.contains(" full=0 resumed=2 "), "{stats}");
        if tickets {
            assert!(stats.contains(" tickets_decrypted=2 "), "{stats}");
        } else {
            // TLS 1.2 fetched, TLS 1.3 claimed, both from Redis, as on any other server.
            assert!(stats.contains(" l2_hits=2 "), "{stats}");
            assert!(stats.contains(" claims_redeemed=1 "), "{stats}");
        }
        a.terminate();
    }

    #[test]
    fn different_contexts_never_resume_each_others_sessions_and_the_same_does() {
        contexts_across_servers(false);
    }

    #[test]
    fn different_contexts_never_resume_each_others_fleet_tickets_and_the_same_does() {
        contexts_across_servers(true);
    }

    #[test]
    fn an_invalid_context_fails_at_startup_before_redis() {
        let dir = tempfile::tempdir().unwrap();
        let keys = key_file(&dir, &format!("{KEY1}\n"));
        let long = "x".repeat(65);
        // No Redis listens on port 1: the name is refused before any connection.
        let redis = ["--redis", "redis://127.0.0.1:1", "--fleet-key-file", &keys];
        for (name, len) in [(long.as_str(), 65), ("", 0)] {
            let stderr = fails_with_one_line(&[&redis[..], &["--context", name]].concat());
            let expected = format!("must be 1 to 64 bytes, not {len}");
            assert!(stderr.contains(&expected), "{stderr}");
            assert!(stderr.starts_with("error: --context"), "{stderr}");
        }
    }

    #[test]
    fn two_echo_servers_share_sessions_through_a_cluster() {
        let cluster = super::Cluster::start();
        let dir = tempfile::tempdir().unwrap();
        let keys = key_file(&dir, KEY1);
        let seeds = cluster.seeds().join(",");
        let flags = ["--redis-cluster", &seeds, "--fleet-key-file", &keys];
        let (a, b) = (EchoServer::start(&flags), EchoServer::start(&flags));
        let session = dir.path().join("tls13.pem");
        let made = s_client(&a.addr, "-tls1_3", ("-sess_out", &session), "hello");
        assert!(made.starts_with("New, TLSv1.3"), "{made}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while cluster
            .masters()
            .iter()
            .map(|m| cluster.keys_on(*m))
            .sum::<u64>()
            < 2
        {
            assert!(
                std::time::Instant::now() < deadline,
                "tickets never reached the cluster"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let resumed = s_client(&b.addr, "-tls1_3", ("-sess_in", &session), "again");
        assert!(resumed.starts_with("Reused, TLSv1.3"), "{resumed}");
        let (status, stats, _) = b.terminate();
        assert!(status.success());
        assert!(
            stats.contains(" claims_won=1 ") && stats.ends_with(" redis_errors=0"),
            "{stats}"
        );
        let err = fails_with_one_line(&["--redis", "redis://x:1", "--redis-cluster", &seeds]);
        assert!(err.contains("cannot be used with"), "{err}");
    }

    /// 200 clients that each send 5 bytes of a ClientHello and stall: the server waits
    /// on their sockets, and burns no CPU doing so. (Before the acceptor, polling for
    /// the rest of the hello every millisecond cost 0.42 s of CPU over these 3 s, in a
    /// release build.)
    #[test]
    fn stalled_hellos_cost_no_cpu() {
        let redis = Redis::start();
        let dir = tempfile::tempdir().unwrap();
        let keys = key_file(&dir, KEY1);
        let server = EchoServer::start(&["--redis", &redis.url(), "--fleet-key-file", &keys]);
        let stalled: Vec<TcpStream> = (0..200)
            .map(|_| {
                let mut tcp = TcpStream::connect(&server.addr).unwrap();
                std::io::Write::write_all(&mut tcp, &[22, 3, 1, 2, 0]).unwrap();
                tcp
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let before = cpu_seconds(server.child.id());
        std::thread::sleep(Duration::from_secs(3));
        let used = cpu_seconds(server.child.id()) - before;
        println!("200 stalled hellos: {used:.3} s of server CPU in 3 s");
        // A generous bound: the clock ticks in 10 ms steps, and the machine is shared.
        assert!(used < 0.05, "{used} s of CPU for stalled clients");
        drop(stalled);
    }

    /// User plus system CPU time of process `pid`, in seconds.
    fn cpu_seconds(pid: u32) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / 100.0 // USER_HZ, 100 on Linux
    }

    #[test]
    fn fleet_flags_that_cannot_work_fail_at_startup() {
        let dir = tempfile::tempdir().unwrap();
        let url = "redis://127.0.0.1:1";
        let short = key_file(&dir, "# a key too short\nabcdef\n");
        let err = fails_with_one_line(&["--redis", url, "--fleet-key-file", &short]);
        assert!(
            err.contains("fleet key file, line 2: a key must be 64 hex digits"),
            "{err}"
        );
        let err = fails_with_one_line(&["--redis", url]);
        assert!(err.contains("--redis needs --fleet-key-file"), "{err}");
        let err = fails_with_one_line(&["--redis", url, "--fleet-key-file", "/no/such/keys"]);
        assert!(err.contains("cannot read the key file"), "{err}");
        let err = fails_with_one_line(&["--fleet-key-file", &short]);
        assert!(err.contains("--redis, which is not set"), "{err}");
        let good = key_file(&dir, KEY1);
        let err = fails_with_one_line(&["--redis", "not a url", "--fleet-key-file", &good]);
        assert!(err.contains("bad Redis URL: "), "{err}");
        let err = fails_with_one_line(&[
            "--redis",
            url,
            "--fleet-key-file",
            &good,
            "--redis-prefix",
            "two words",
        ]);
        assert!(err.contains("bad Redis key prefix"), "{err}");
    }
}

/// The fleet on a real Redis Cluster: three masters with a replica each.
mod cluster {
    use redis::RedisResult;

    use super::*;

    /// Sessions and tickets made on one instance resume on the other, spread over every
    /// master, and a used ticket resumes nowhere; the first seed being dead at boot does
    /// not matter.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_share_sessions_through_a_cluster() {
        let cluster = Cluster::start();
        let mut seeds = vec!["redis://127.0.0.1:1".to_owned()]; // dead, and first
        seeds.extend(cluster.seeds());
        let seeded = |b: FleetBuilder| b.redis_cluster(seeds.clone());
        let a = Instance::with(&cluster, KEY1, SessionCache::builder(), seeded, None).await;
        let b = Instance::with(&cluster, KEY1, SessionCache::builder(), seeded, None).await;
        let mut last_hello = None;
        for version in [TLS12, TLS13] {
            for n in 0..20 {
                let client = connector(version);
                assert_eq!(kind(&client, &a).await, Full);
                a.settle().await;
                if version == TLS13 && n == 0 {
                    let proxy = Proxy::start(b.addr, Framing::Whole).await;
                    assert_eq!(connect(&client, proxy.addr).await.0, Resumed);
                    last_hello = Some(proxy.last_hello());
                } else {
                    assert_eq!(kind(&client, &b).await, Resumed, "{version:?} #{n}");
                }
            }
        }
        // The used ticket's hello, replayed to both: no PSK accepted.
        let hello = last_hello.unwrap();
        for instance in [&a, &b] {
            assert_eq!(
                replay(instance.addr, Framing::Whole, &hello).await,
                Answer::Full
            );
        }
        for master in cluster.masters() {
            assert!(cluster.keys_on(master) > 0, "sessions on every master");
        }
        let (sa, sb) = (a.fleet.stats(), b.fleet.stats());
        assert_eq!(sb.l1.hits, 20, "TLS 1.2, fetched: {sb:?}");
        assert_eq!(sb.claims_redeemed, 20, "{sb:?}");
        assert_eq!(
            sa.writes_dropped + sa.redis_errors + sb.redis_errors,
            0,
            "{sa:?} {sb:?}"
        );
        a.stop().await;
        b.stop().await;
    }

    /// A master dies under load: no handshake fails or waits past the deadline, tickets
    /// of its slots give full handshakes meanwhile, and once its replica is promoted,
    /// sessions resume across instances again, with no restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_master_dying_fails_no_handshake_and_resumption_recovers() {
        let mut cluster = Cluster::start();
        let a = Instance::start(&cluster, KEY1).await;
        let b = Instance::start(&cluster, KEY1).await;
        let victim = cluster.masters()[0];
        cluster.kill(victim);
        let killed = Instant::now();
        let (mut slowest, mut recovered, mut rounds) = (Duration::ZERO, 0, 0);
        // Handshakes through the failover and after it, until the replica has taken over
        // and 10 in a row resume.
        while recovered < 10 || cluster.masters().len() < 3 {
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "never recovered"
            );
            let client = connector(TLS13);
            let (first, took) = connect(&client, a.addr).await;
            assert_eq!(first, Full);
            slowest = slowest.max(took);
            a.settle().await;
            let (again, took) = connect(&client, b.addr).await;
            slowest = slowest.max(took);
            recovered = if again == Resumed { recovered + 1 } else { 0 };
            rounds += 1;
        }
        println!("failover: {rounds} rounds, slowest handshake {slowest:?}");
        assert!(slowest < DEFAULT_FETCH_DEADLINE + MARGIN, "{slowest:?}");
        a.stop().await;
        b.stop().await;
    }

    /// With `claim_replicas(1)`, a claim counts only once the master's replica has
    /// deleted the ticket too: a replica that does not answer makes the claim void (a
    /// full handshake), and a ticket claimed just before its master dies is still refused
    /// after the failover.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claim_replicas_waits_for_a_replica_and_survives_failover() {
        let mut cluster = Cluster::start();
        let ids = Arc::new(Mutex::new(Vec::new()));
        let seen = ids.clone();
        let recording = SessionCache::builder()
            .on_new_session(move |s: &Session| seen.lock().unwrap().push(s.id().to_vec()));
        // Redis checks WAIT's timeout on its own clock (every 100 ms at the default
        // `hz`): a deadline long enough for that shows the claim refused as
        // unreplicated; a shorter one refuses it as a fetch timeout instead.
        let replicated = |b: FleetBuilder| {
            b.claim_replicas(1)
                .fetch_deadline(Duration::from_millis(400))
        };
        let a = Instance::with(&cluster, KEY1, recording, replicated, None).await;
        let b = Instance::with(&cluster, KEY1, SessionCache::builder(), replicated, None).await;

        // A replica that does not answer: the claim is taken on its master, but never
        // acknowledged, so it does not count.
        let client = connector(TLS13);
        assert_eq!(kind(&client, &a).await, Full);
        a.settle().await;
        let newest = ids.lock().unwrap().last().cloned().unwrap();
        let master = cluster.master_of(&format!("rsc::{}", hex_of(&newest)));
        let replica = cluster.replica_of(master);
        let sleeper = std::thread::spawn(move || {
            super::common::redis::command_on(replica, "DEBUG SLEEP 0.6")
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            kind(&client, &b).await,
            Full,
            "an unreplicated claim does not resume"
        );
        let stats = b.fleet.stats();
        assert_eq!(
            (stats.claims_won, stats.claims_unreplicated),
            (0, 1),
            "{stats:?}"
        );
        sleeper.join().unwrap();
        // Until the woken replica acknowledges its master's writes again: a write to
        // the ticket's slot, then WAIT on the same connection.
        let probe = format!("{{rsc::{}}}probe", hex_of(&newest));
        cluster.wait_until(|_| {
            let client = redis::Client::open(format!("redis://127.0.0.1:{master}")).unwrap();
            let mut conn = client.get_connection().unwrap();
            let acked: RedisResult<((), i64)> = redis::pipe()
                .cmd("SET")
                .arg(&probe)
                .arg(1)
                .cmd("WAIT")
                .arg(1)
                .arg(100)
                .query(&mut conn);
            matches!(acked, Ok(((), 1)))
        });

        // Replicated, the claim counts.
        let client = connector(TLS13);
        assert_eq!(kind(&client, &a).await, Full);
        a.settle().await;
        let proxy = Proxy::start(b.addr, Framing::Whole).await;
        let resumed = connect(&client, proxy.addr).await.0;
        assert_eq!(
            resumed,
            Resumed,
            "replicated claim: a {:?} b {:?}",
            a.fleet.stats(),
            b.fleet.stats()
        );
        let hello = proxy.last_hello();
        assert_eq!(b.fleet.stats().claims_won, 1);

        // Kill the master that held the claimed ticket: after the failover, the
        // promoted replica does not have it either.
        cluster.kill(cluster.master_of(&first_ticket_key(&hello)));
        cluster.wait_until(|c| c.masters().len() == 3 && c.all_ok());
        for instance in [&a, &b] {
            assert_eq!(
                replay(instance.addr, Framing::Whole, &hello).await,
                Answer::Full
            );
        }
        a.stop().await;
        b.stop().await;
    }

    /// The Redis key of the first PSK identity in a recorded ClientHello.
    fn first_ticket_key(hello: &[u8]) -> String {
        use rustls_session_cache::fleet::client_hello::{Parsed, parse};
        let Parsed::Complete(offer) = parse(hello) else {
            panic!("a whole hello")
        };
        format!("rsc::{}", hex_of(&offer.identities[0]))
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
