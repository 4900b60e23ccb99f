//! The fleet tier against a real `redis-server`: instances sharing sessions, tickets
//! single-use across them, encryption at rest, key rotation, Redis stopping, restarting
//! and absent at boot, and hostile ClientHellos. Each test starts its own Redis.
#![cfg(feature = "redis")]

mod common;

#[path = "../examples/echo_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod echo_server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::hello::{MAX_RECORD, client_hello};
use common::process::{repo, s_client};
use common::redis::Redis;
use echo_server::{EchoServer, Report, Settings, TlsVersions};
use rustls::pki_types::ServerName;
use rustls::{HandshakeKind, KeyLog, SupportedProtocolVersion};
use rustls_session_cache::fleet::{DEFAULT_PREFETCH_DEADLINE, Fleet, FleetKeys};
use rustls_session_cache::{Session, SessionCache, SessionCacheBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use HandshakeKind::{Full, Resumed};

const KEY1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const KEY3: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;
const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;

/// How much longer than the prefetch deadline a handshake may take on loopback, in a
/// debug build, on a busy 2-core machine.
const MARGIN: Duration = Duration::from_millis(300);

/// One echo server instance of the fleet, in-process.
struct Instance {
    addr: SocketAddr,
    fleet: Arc<Fleet>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Report>,
}

impl Instance {
    async fn start(redis: &Redis, keys: &str) -> Self {
        Self::with(redis, keys, SessionCache::builder(), None).await
    }

    async fn with(
        redis: &Redis,
        keys: &str,
        cache: SessionCacheBuilder,
        key_log: Option<Arc<dyn KeyLog>>,
    ) -> Self {
        let cache = cache.build().unwrap();
        let fleet = Fleet::builder(cache.clone())
            .redis_url(redis.url())
            .keys(FleetKeys::parse(keys).unwrap())
            .build()
            .unwrap();
        let tls = echo_server::tls_config(
            &repo("certs/server.crt"),
            &repo("certs/server.key"),
            TlsVersions::Both,
            fleet.clone(),
        )
        .unwrap();
        let tls = match key_log {
            Some(log) => {
                let mut config = Arc::try_unwrap(tls).unwrap();
                config.key_log = log;
                Arc::new(config)
            }
            None => tls,
        };
        let server = EchoServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            tls,
            cache,
            Settings::default(),
        )
        .await
        .unwrap()
        .with_fleet(Some(fleet.clone()));
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            fleet,
            stop,
            task,
        }
    }

    /// Waits until every write queued so far has been written to Redis or dropped.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.fleet.stats();
            if s.writes_written + s.writes_dropped >= s.writes_queued {
                return;
            }
            assert!(Instant::now() < deadline, "writes did not settle: {s:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(self) -> Report {
        self.stop.send(()).unwrap();
        self.task.await.unwrap()
    }
}

/// A client that remembers its sessions, whichever instance made them, as clients
/// behind a load balancer do (every instance has the same name and certificate).
fn connector(version: &'static SupportedProtocolVersion) -> TlsConnector {
    common::tls_connector(version)
}

/// One connection: handshake, echo, close. Returns how the handshake went and how long
/// it took from the TCP connect.
async fn connect(client: &TlsConnector, addr: SocketAddr) -> (HandshakeKind, Duration) {
    let started = Instant::now();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = client
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let took = started.elapsed();
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    tls.write_all(b"ping\n").await.unwrap();
    let mut echo = [0; 5];
    tls.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping\n");
    tls.shutdown().await.unwrap();
    (kind, took)
}

async fn kind(client: &TlsConnector, instance: &Instance) -> HandshakeKind {
    connect(client, instance.addr).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_instance_resumes_on_the_others() {
    let redis = Redis::start();
    let fleet = [
        Instance::start(&redis, KEY1).await,
        Instance::start(&redis, KEY1).await,
        Instance::start(&redis, KEY1).await,
    ];
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
    assert!(stats[1].l2_hits >= 2 && stats[2].l2_hits >= 2, "{stats:#?}");
    assert!(
        stats.iter().map(|s| s.claims_won).sum::<u64>() >= 3,
        "{stats:#?}"
    );
    assert_eq!(
        stats
            .iter()
            .map(|s| s.decrypt_failures + s.redis_errors)
            .sum::<u64>(),
        0
    );
    for instance in fleet {
        instance.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_ticket_is_refused_on_every_instance() {
    let redis = Redis::start();
    let fleet = [
        Instance::start(&redis, KEY1).await,
        Instance::start(&redis, KEY1).await,
        Instance::start(&redis, KEY1).await,
    ];
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
    for instance in fleet {
        instance.stop().await;
    }
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
    let instance = Instance::with(&redis, KEY1, cache, Some(masters.clone())).await;
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
    // was made; TLS 1.3 tickets cannot be claimed, so they resume nowhere. (A TLS 1.2
    // client keeps only its latest session: try where it was made first.)
    let bound = DEFAULT_PREFETCH_DEADLINE + MARGIN;
    for (client, on_a, on_b) in [(&tls12, Resumed, Full), (&tls13, Full, Full)] {
        for (instance, expected) in [(&a, on_a), (&b, on_b)] {
            let (kind, took) = connect(client, instance.addr).await;
            assert_eq!(kind, expected);
            assert!(took < bound, "a handshake took {took:?} with Redis down");
        }
    }
    assert!(a.fleet.stats().prefetch_timeouts + a.fleet.stats().redis_errors > 0);

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
    assert!(took < DEFAULT_PREFETCH_DEADLINE + MARGIN, "{took:?}");
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

    // 8-byte identities, so that 1000 of them fit in a ClientHello the parser reads.
    let thousand: Vec<Vec<u8>> = (0..1000u16).map(|n| n.to_be_bytes().repeat(4)).collect();
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        (
            "garbage",
            b"\x16\x03\x01garbage that is not TLS at all".to_vec(),
        ),
        ("plain text", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (
            "truncated",
            client_hello(&[1; 32], &[vec![2; 32]], true, MAX_RECORD)[..80].to_vec(),
        ),
        ("oversized", {
            let mut big = vec![22, 3, 1, 0x40, 0x00, 1, 0x01, 0x00, 0x00];
            big.resize(5 + 0x4000, 0xee);
            big
        }),
        ("1000 ticket-sized identities (38 KB)", {
            let big: Vec<Vec<u8>> = (0..1000u16).map(|n| n.to_be_bytes().repeat(16)).collect();
            client_hello(&[3; 32], &big, true, MAX_RECORD)
        }),
        (
            "1000 identities",
            client_hello(&[3; 32], &thousand, true, MAX_RECORD),
        ),
    ];
    for (name, hello) in &hostile {
        send_raw(instance.addr, hello).await;
        assert_eq!(
            (cache.len(), cache.bytes()),
            (entries, bytes),
            "{name} changed L1"
        );
    }
    // Only the 1000-identity hello reached Redis: with the first 4 identities, in one
    // pipeline of GETDELs. Nothing else cost a call.
    assert_eq!(redis.calls("getdel"), 4);
    assert_eq!(redis.calls("get"), 0);
    let stats = instance.fleet.stats();
    assert_eq!(stats.identities_shed, 996, "{stats:?}");
    assert_eq!(stats.claims_won, 0);

    // And the server still serves, and resumes.
    assert_eq!(kind(&client, &instance).await, Resumed);
    instance.stop().await;
}

/// Runs one prefetch for a connection whose client sent `hello`.
async fn prefetch_for(fleet: &Fleet, hello: &[u8]) -> rustls_session_cache::fleet::Prefetch {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    client.write_all(hello).await.unwrap();
    let (server_side, _) = listener.accept().await.unwrap();
    fleet.prefetch(&server_side).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_without_tls13_claims_no_tickets() {
    let redis = Redis::start();
    let hello = client_hello(&[5; 32], &[vec![6; 32]], true, MAX_RECORD);
    for (tls13, getdels) in [(true, 1), (false, 0)] {
        assert_eq!(redis.command("CONFIG RESETSTAT"), "+OK\r\n");
        let fleet = Fleet::builder(SessionCache::new(16))
            .redis_url(redis.url())
            .keys(FleetKeys::parse(KEY1).unwrap())
            .tls13(tls13)
            .build()
            .unwrap();
        let report = prefetch_for(&fleet, &hello).await;
        assert!(report.client_hello);
        assert_eq!(redis.calls("getdel"), getdels, "tls13({tls13})");
        // Without TLS 1.3 the legacy session id names a TLS 1.2 session: looked up.
        assert_eq!(redis.calls("get"), 1 - getdels, "tls13({tls13})");
    }
}

/// The echo server binary, as users run it, with `--redis` and a key file.
mod binary {
    use super::common::process::{EchoServer, fails_with_one_line, s_client};
    use super::{KEY1, KEY2, Redis};

    fn key_file(dir: &tempfile::TempDir, text: &str) -> String {
        let path = dir.path().join("fleet.keys");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
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
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while redis.all_values().len() < written {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the session never reached Redis"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
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
        let (status, stats, _) = a.terminate();
        assert!(status.success());
        assert!(stats.contains(" writes_dropped=0 "), "{stats}");
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
        assert!(err.contains("bad Redis URL"), "{err}");
    }
}
