//! Fleet tickets against a real `redis-server` and real `openssl s_client`: tickets
//! resuming on every server, across rotations and not past their window; Redis down at
//! boot; tampered and malformed tickets; clock skew; the echo server's flags. Each test
//! starts its own Redis.
#![cfg(feature = "redis")]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::hello::{MAX_RECORD, client_hello_with_ticket, handshake_types};
use common::process::{EchoServer as Binary, fails_with_one_line, openssl, s_client_output};
use common::redis::{Cluster, Redis};
use common::server::{Serve, shipped_config};
use rustls::SupportedProtocolVersion;
use rustls::server::ProducesTickets;
use rustls_session_cache::SessionCache;
use rustls_session_cache::fleet::{
    Fleet, FleetKeys, FleetTicketer, FleetTicketerBuilder, TicketStats,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;
const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;
const KEY1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const VERSIONS: [(&str, &str); 2] = [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")];

/// One echo server of the fleet, in-process (`tests/common/server.rs`): the stateful
/// fleet tier as its session store (as `--redis` makes it) and a fleet ticketer (as
/// `--tickets fleet`).
struct Server {
    addr: String,
    ticketer: Arc<FleetTicketer>,
    fleet: Arc<Fleet>,
    server: common::server::Running,
}

impl Server {
    async fn start(
        redis: &Redis,
        tickets: impl FnOnce(FleetTicketerBuilder) -> FleetTicketerBuilder,
    ) -> Self {
        let cache = SessionCache::new(1024);
        let keys = || FleetKeys::parse(KEY1).unwrap();
        let fleet = Fleet::builder(cache.clone())
            .redis_url(redis.url())
            .keys(keys())
            .build()
            .unwrap();
        let ticketer = tickets(FleetTicketer::builder().redis_url(redis.url()).keys(keys()))
            .build()
            .unwrap();
        ticketer.first_sync().await;
        let tls = shipped_config(&[TLS13, TLS12], fleet.clone());
        let server = Serve::new(tls, cache)
            .tickets(&ticketer)
            .through(&fleet, true)
            .start()
            .await;
        Self {
            addr: server.addr.to_string(),
            ticketer,
            fleet,
            server,
        }
    }

    /// Two servers with the default settings.
    async fn two(redis: &Redis) -> (Self, Self) {
        (
            Self::start(redis, |t| t).await,
            Self::start(redis, |t| t).await,
        )
    }

    fn stats(&self) -> TicketStats {
        self.ticketer.stats()
    }

    /// Tickets it refused, by cause.
    fn refused(&self) -> Refusals {
        let s = self.stats();
        (
            s.decrypt_malformed,
            s.decrypt_unknown_key,
            s.decrypt_bad_tag,
        )
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// Runs `openssl s_client` against `server` with `version`, saving (`-sess_out`) or
/// offering (`-sess_in`) `session`; its `New`/`Reused` line and all it printed.
fn s_client(server: &Server, version: &str, flag: &str, session: &Path) -> (String, Vec<String>) {
    tokio::task::block_in_place(|| s_client_output(&server.addr, version, (flag, session), "hi"))
}

/// The `New`/`Reused` line alone.
fn outcome(server: &Server, version: &str, flag: &str, session: &Path) -> String {
    s_client(server, version, flag, session).0
}

/// The wall clock in milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Sleeps until the wall clock reads `at` (milliseconds since the Unix epoch).
async fn sleep_until(at: u64) {
    tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
}

/// Waits until `done`, failing after 15 s.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_made_on_one_server_resumes_on_the_others_and_on_one_started_after() {
    let redis = Redis::start();
    let (a, b) = Server::two(&redis).await;
    let dir = tempfile::tempdir().unwrap();
    for (version, name) in VERSIONS {
        let made = outcome(&a, version, "-sess_out", &dir.path().join(name));
        assert!(made.starts_with(&format!("New, {name}")), "{made}");
    }
    // C starts after the tickets were issued, and reads the keys from Redis.
    let c = Server::start(&redis, |t| t).await;
    for server in [&b, &c] {
        for (version, name) in VERSIONS {
            let resumed = outcome(server, version, "-sess_in", &dir.path().join(name));
            assert!(resumed.starts_with(&format!("Reused, {name}")), "{resumed}");
        }
        // From the ticket itself: no claim, no lookup of its session in Redis.
        let s = server.stats();
        assert_eq!((s.decrypted, server.refused()), (2, (0, 0, 0)), "{s:?}");
        let f = server.fleet.stats();
        let looked_up = (f.claims_won, f.claims_local, f.l2_hits, f.l2_misses);
        assert_eq!(looked_up, (0, 0, 0, 0), "{f:?}");
    }
    // A and B (whichever came first) made the two keys; C read them.
    let made: u64 = [&a, &b].iter().map(|s| s.stats().keys_created).sum();
    assert_eq!(made, 2);
    assert_eq!(c.stats().keys_created, 0);
    assert_eq!(c.stats().keys_fetched, c.stats().epochs_held);
    for server in [a, b, c] {
        server.stop().await;
    }
}

/// The lifetime hint s_client printed for the ticket it got.
fn lifetime_hint(lines: &[String]) -> u64 {
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("TLS session ticket lifetime hint: "))
        .and_then(|hint| hint.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no lifetime hint: {lines:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_resume_across_an_epoch_boundary_and_not_past_their_window() {
    // 2 s epochs, each key decrypting 2 s past its own; skew 0.5 s (a quarter).
    const P: u64 = 2_000;
    let redis = Redis::start();
    let rotation = |t: FleetTicketerBuilder| t.rotation(Duration::from_millis(P));
    let (a, b) = (
        Server::start(&redis, rotation).await,
        Server::start(&redis, rotation).await,
    );
    // Start early in an epoch, so the issuing below stays inside it.
    sleep_until((now_ms() / P + 1) * P + 100).await;
    let dir = tempfile::tempdir().unwrap();
    let before = now_ms();
    let epoch = before / P;
    let mut hints = Vec::new();
    for (version, name) in VERSIONS {
        let (made, lines) = s_client(&a, version, "-sess_out", &dir.path().join(name));
        assert!(made.starts_with(&format!("New, {name}")), "{made}");
        hints.push(lifetime_hint(&lines));
    }
    let after = now_ms();
    assert_eq!(after / P, epoch, "issued within one epoch");
    // Told: what is left until the key is erased (end of epoch + 2 s), less the skew.
    let told = |at: u64| ((epoch + 2) * P - 500 - at) / 1000;
    for hint in hints {
        assert!((told(after)..=told(before)).contains(&hint), "{hint}");
    }

    // The next epoch: B encrypts with a new key, and the old tickets still resume.
    sleep_until((epoch + 1) * P + 200).await;
    for (version, name) in VERSIONS {
        let resumed = outcome(&b, version, "-sess_in", &dir.path().join(name));
        assert!(resumed.starts_with(&format!("Reused, {name}")), "{resumed}");
    }
    assert_eq!(b.stats().decrypted, 2);
    // Past the window, the key is gone: a full handshake, counted as an unknown key.
    sleep_until((epoch + 2) * P + 200).await;
    for (version, name) in VERSIONS {
        let expired = outcome(&b, version, "-sess_in", &dir.path().join(name));
        assert!(expired.starts_with(&format!("New, {name}")), "{expired}");
    }
    assert_eq!(b.refused(), (0, 2, 0));
    // Keys were made ahead for every epoch passed through, and the old ones erased.
    let created: u64 = [&a, &b].iter().map(|s| s.stats().keys_created).sum();
    assert!(created >= 4, "{created}");
    for server in [&a, &b] {
        let s = server.stats();
        assert!(s.epochs_held <= 3 && s.local_keys_held == 0, "{s:?}");
        assert_eq!((s.sync_failures, s.encrypt_failures), (0, 0), "{s:?}");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_at_boot_tickets_resume_locally_then_fleet_wide() {
    let mut redis = Redis::absent();
    // 12 s epochs: retries every 3 s. The test takes 6 s or so; it runs within one epoch,
    // so that each server makes exactly one local key.
    const P: u64 = 12_000;
    let rotation = |t: FleetTicketerBuilder| t.rotation(Duration::from_millis(P));
    if now_ms() % P > P - 7_000 {
        sleep_until((now_ms() / P + 1) * P + 50).await;
    }
    let epoch = now_ms() / P;
    let (a, b) = (
        Server::start(&redis, rotation).await,
        Server::start(&redis, rotation).await,
    );
    for server in [&a, &b] {
        let s = server.stats();
        assert_eq!((s.epochs_held, s.local_keys_held), (0, 1), "{s:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    assert!(outcome(&a, "-tls1_3", "-sess_out", &local).starts_with("New"));
    assert!(outcome(&a, "-tls1_3", "-sess_in", &local).starts_with("Reused"));
    assert!(outcome(&b, "-tls1_3", "-sess_in", &local).starts_with("New"));
    assert_eq!(b.refused(), (0, 1, 0), "A's local key is unknown on B");

    redis.restart();
    eventually("both joined the fleet's ring", || {
        [&a, &b].iter().all(|s| s.stats().epochs_held >= 2)
    })
    .await;
    let fleet = dir.path().join("fleet");
    assert!(outcome(&a, "-tls1_3", "-sess_out", &fleet).starts_with("New"));
    assert!(outcome(&b, "-tls1_3", "-sess_in", &fleet).starts_with("Reused"));
    // The local ticket still resumes where it was made.
    assert!(outcome(&a, "-tls1_3", "-sess_in", &local).starts_with("Reused"));
    assert_eq!(now_ms() / P, epoch, "the test ran past its epoch");
    assert_eq!(a.stats().local_keys_made, 1);
    a.stop().await;
    b.stop().await;
}

/// A change made to a ticket's bytes.
type Tamper = fn(&mut [u8]);

/// Counts of tickets refused: `(malformed, unknown key, bad tag)`.
type Refusals = (u64, u64, u64);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_gone_later_keys_held_serve_then_stretch_then_a_local_key() {
    // 2 s epochs and window: a key stretches 1 s past its epoch; skew 0.5 s.
    const P: u64 = 2_000;
    let mut redis = Redis::start();
    let rotation = |t: FleetTicketerBuilder| t.rotation(Duration::from_millis(P));
    let (a, b) = (
        Server::start(&redis, rotation).await,
        Server::start(&redis, rotation).await,
    );
    // Stop Redis early in an epoch `e`: the rings hold the keys of e and e + 1.
    sleep_until((now_ms() / P + 1) * P + 100).await;
    let epoch = now_ms() / P;
    redis.stop();
    let dir = tempfile::tempdir().unwrap();
    let crosses = |at: &str| {
        let path = dir.path().join(at);
        assert!(outcome(&a, "-tls1_3", "-sess_out", &path).starts_with("New"));
        outcome(&b, "-tls1_3", "-sess_in", &path).starts_with("Reused")
    };
    // Epoch e + 1: its key was published ahead; tickets still cross.
    sleep_until((epoch + 1) * P + 200).await;
    assert!(crosses("e+1"), "a key held serves with Redis gone");
    // Epoch e + 2 has no key: e + 1's stretches for 1 s, with a shorter lifetime...
    sleep_until((epoch + 2) * P + 200).await;
    let (made, lines) = s_client(&a, "-tls1_3", "-sess_out", &dir.path().join("stretched"));
    assert!(made.starts_with("New"));
    assert_eq!(
        lifetime_hint(&lines),
        1,
        "end of e + 1, + 2 s, - 0.5 s, - now"
    );
    assert!(
        outcome(&b, "-tls1_3", "-sess_in", &dir.path().join("stretched")).starts_with("Reused")
    );
    // ... then a local key: tickets resume only where they were made.
    sleep_until((epoch + 2) * P + 1_300).await;
    assert!(!crosses("local"), "a local key's ticket resumed elsewhere");
    assert_eq!(b.refused(), (0, 1, 0));
    for server in [&a, &b] {
        let s = server.stats();
        assert_eq!(s.local_keys_made, 1, "{s:?}");
        assert!(s.sync_failures > 0, "{s:?}");
        assert_eq!(s.encrypt_failures, 0, "never without a key: {s:?}");
    }
    // Redis back: both rejoin, and tickets cross again.
    redis.restart();
    eventually("both encrypt with fleet keys again", || {
        [&a, &b]
            .iter()
            .all(|s| s.stats().local_keys_held == 0 || s.stats().epochs_held >= 2)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !crosses("again") {
        assert!(Instant::now() < deadline, "tickets never crossed again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.stop().await;
    b.stop().await;
}

/// A session file of openssl's, as DER, with its ticket's place.
struct SessionFile {
    der: Vec<u8>,
    ticket: std::ops::Range<usize>,
}

impl SessionFile {
    fn read(pem: &Path) -> Self {
        let der = openssl_sess_id(pem, "PEM", "DER");
        let ticket = ticket_in(&der);
        Self { der, ticket }
    }

    /// Writes the session with `change` made to its ticket (same length) to `pem`.
    fn write_with(&self, pem: &Path, change: impl Fn(&mut [u8])) {
        let mut der = self.der.clone();
        change(&mut der[self.ticket.clone()]);
        let path = pem.with_extension("der");
        std::fs::write(&path, &der).unwrap();
        std::fs::write(pem, openssl_sess_id(&path, "DER", "PEM")).unwrap();
    }
}

fn openssl_sess_id(input: &Path, from: &str, to: &str) -> Vec<u8> {
    let out = openssl()
        .args(["sess_id", "-inform", from, "-outform", to, "-in"])
        .arg(input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

/// Where the ticket is in an `SSL_SESSION` (`tlsext_tick [10] EXPLICIT OCTET STRING`),
/// found by walking the top-level fields.
fn ticket_in(der: &[u8]) -> std::ops::Range<usize> {
    /// The tag, and the start and end of the value, of the DER element at `at`.
    fn element(der: &[u8], at: usize) -> (u8, usize, usize) {
        let (tag, first) = (der[at], der[at + 1]);
        let (start, len) = match first {
            0x80.. => {
                let n = usize::from(first & 0x7f);
                let len = der[at + 2..at + 2 + n]
                    .iter()
                    .fold(0, |len, b| len << 8 | usize::from(*b));
                (at + 2 + n, len)
            }
            _ => (at + 2, usize::from(first)),
        };
        (tag, start, start + len)
    }
    let (_, mut at, end) = element(der, 0); // the SEQUENCE
    while at < end {
        let (tag, start, next) = element(der, at);
        if tag == 0xaa {
            let (inner, value, value_end) = element(der, start);
            assert_eq!(inner, 0x04, "an OCTET STRING");
            return value..value_end;
        }
        at = next;
    }
    panic!("no ticket in the session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_malformed_tickets_give_full_handshakes_counted_by_cause() {
    let redis = Redis::start();
    let (a, b) = Server::two(&redis).await;
    let dir = tempfile::tempdir().unwrap();
    for (version, name) in VERSIONS {
        let good = dir.path().join(name);
        assert!(outcome(&a, version, "-sess_out", &good).starts_with("New"));
        let session = SessionFile::read(&good);
        // 44 bytes of overhead around a session that holds a 48-byte secret at least.
        assert!(session.ticket.len() > 44 + 48, "{:?}", session.ticket);
        let tampered = dir.path().join(format!("{name}-tampered"));
        let changes: [(&str, Tamper, Refusals); 3] = [
            ("key id", |t| t[0] ^= 1, (0, 1, 0)),
            ("tag", |t| *t.last_mut().unwrap() ^= 1, (0, 1, 1)),
            ("ciphertext", |t| t[16 + 12] ^= 0x80, (0, 1, 2)),
        ];
        let before = b.refused();
        for (what, change, expected) in changes {
            session.write_with(&tampered, change);
            let answer = outcome(&b, version, "-sess_in", &tampered);
            assert!(
                answer.starts_with(&format!("New, {name}")),
                "{what}: {answer}"
            );
            let now = b.refused();
            assert_eq!(
                (now.0 - before.0, now.1 - before.1, now.2 - before.2),
                expected,
                "{name}, {what}"
            );
        }
        // The premise: the file, untouched, resumes.
        let intact = outcome(&b, version, "-sess_in", &good);
        assert!(intact.starts_with(&format!("Reused, {name}")), "{intact}");
    }
    // Lengths no ticket has, and 65,000 bytes of noise (about the most a ClientHello
    // can carry), in a TLS 1.2 session_ticket extension: the server answers with its certificate, a full
    // handshake.
    let addr: SocketAddr = b.addr.parse().unwrap();
    let before = b.refused();
    for garbage in [vec![0x5a; 1], vec![0x5a; 43], vec![0x5a; 65_000]] {
        let hello = client_hello_with_ticket(&[], &[], false, MAX_RECORD, 0, Some(&garbage));
        let reply = first_flight(addr, &hello).await;
        assert_eq!(
            handshake_types(&reply).get(..2),
            Some(&[2, 11][..]),
            "ServerHello, Certificate for {} bytes",
            garbage.len()
        );
    }
    let now = b.refused();
    assert_eq!(
        (now.0 - before.0, now.1 - before.1, now.2 - before.2),
        (2, 1, 0)
    );
    a.stop().await;
    b.stop().await;
}

/// Sends `hello` and returns what the server sends back within a second.
async fn first_flight(addr: SocketAddr, hello: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut reply = Vec::new();
    let mut buf = [0; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Ok(n @ 1..)) = tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
        reply.extend_from_slice(&buf[..n]);
        if handshake_types(&reply).contains(&14) {
            break; // ServerHelloDone: the whole first flight
        }
    }
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_from_a_server_ahead_by_less_than_the_skew_resumes() {
    // 4 s epochs, 1 s of skew tolerated. A's clock is 900 ms ahead; C tolerates none.
    const P: u64 = 4_000;
    let redis = Redis::start();
    let schedule = |t: FleetTicketerBuilder| {
        t.rotation(Duration::from_millis(P))
            .max_skew(Duration::from_secs(1))
    };
    let a = Server::start(&redis, |t| {
        schedule(t).clock(|| SystemTime::now() + Duration::from_millis(900))
    })
    .await;
    let b = Server::start(&redis, schedule).await;
    let c = Server::start(&redis, |t| {
        t.rotation(Duration::from_millis(P))
            .max_skew(Duration::ZERO)
    })
    .await;
    // 800 ms before an epoch starts: A is already in it, B and C are not.
    let boundary = (now_ms() / P + 1) * P;
    sleep_until(boundary - 800).await;
    let dir = tempfile::tempdir().unwrap();
    let ticket = dir.path().join("ahead");
    assert!(outcome(&a, "-tls1_3", "-sess_out", &ticket).starts_with("New"));
    assert!(outcome(&b, "-tls1_3", "-sess_in", &ticket).starts_with("Reused"));
    assert!(outcome(&c, "-tls1_3", "-sess_in", &ticket).starts_with("New"));
    assert!(
        now_ms() < boundary,
        "the test ran too slowly to show anything"
    );
    assert_eq!(b.refused(), (0, 0, 0));
    assert_eq!(c.refused(), (0, 1, 0), "not yet in force, without skew");
    for server in [a, b, c] {
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_acl_is_all_the_ticketer_needs() {
    let redis = Redis::start();
    let acl = "ACL SETUSER rsc on >secret-pw ~rsc:* -@all +get +set +getdel +del +ping";
    assert_eq!(redis.command(acl), "+OK\r\n");
    let url = format!("redis://rsc:secret-pw@127.0.0.1:{}", redis.port);
    let a = Server::start(&redis, |t| t.redis_url(url.clone())).await;
    let b = Server::start(&redis, |t| t.redis_url(url.clone())).await;
    for server in [&a, &b] {
        let s = server.stats();
        assert_eq!((s.epochs_held, s.sync_failures, s.keys_unopened), (2, 0, 0));
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_the_ticketers_share_their_keys() {
    let cluster = Cluster::start();
    let ticketer = || {
        FleetTicketer::builder()
            .redis_cluster(cluster.seeds())
            .keys(FleetKeys::parse(KEY1).unwrap())
            .build()
            .unwrap()
    };
    let (a, b) = (ticketer(), ticketer());
    a.first_sync().await;
    b.first_sync().await;
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.keys_created + sb.keys_created, 2, "{sa:?} {sb:?}");
    assert_eq!(sa.keys_fetched + sb.keys_fetched, 2, "{sa:?} {sb:?}");
    assert_eq!((sa.epochs_held, sb.epochs_held), (2, 2));
    assert_eq!(sa.sync_failures + sb.sync_failures, 0);
    let on_masters: u64 = cluster.masters().iter().map(|m| cluster.keys_on(*m)).sum();
    assert_eq!(on_masters, 2, "the two keys, on their slots' masters");
    let ticket = a.encrypt(b"a session").unwrap();
    assert_eq!(b.decrypt(&ticket).unwrap(), b"a session");
}

mod binary {
    use super::*;

    /// The flags for fleet tickets on `redis`, with a key file in `dir`.
    fn flags(redis: &Redis, dir: &tempfile::TempDir) -> Vec<String> {
        let keys = dir.path().join("fleet.keys");
        std::fs::write(&keys, format!("{KEY1}\n")).unwrap();
        let keys = keys.to_str().unwrap().to_owned();
        let named = |s: &str| s.to_owned();
        vec![
            named("--redis"),
            redis.url(),
            named("--fleet-key-file"),
            keys,
            named("--tickets"),
            named("fleet"),
        ]
    }

    #[test]
    fn three_echo_servers_with_fleet_tickets_resume_each_others() {
        let redis = Redis::start();
        let dir = tempfile::tempdir().unwrap();
        let flags = flags(&redis, &dir);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let flags = [&flags[..], &["--ticket-rotation", "60"]].concat();
        let servers = [
            Binary::start(&flags),
            Binary::start(&flags),
            Binary::start(&flags),
        ];
        for (version, name) in VERSIONS {
            let session = dir.path().join(name);
            let flag = |i: usize| if i == 0 { "-sess_out" } else { "-sess_in" };
            for (i, server) in servers.iter().enumerate() {
                let (line, _) = s_client_output(&server.addr, version, (flag(i), &session), "hi");
                let expected = if i == 0 { "New" } else { "Reused" };
                assert!(line.starts_with(&format!("{expected}, {name}")), "{line}");
            }
        }
        for (i, server) in servers.into_iter().enumerate() {
            let (status, stats, _) = server.terminate();
            assert!(status.success());
            let decrypted = if i == 0 { 0 } else { 2 };
            assert!(
                stats.contains(&format!(" tickets_decrypted={decrypted} ")),
                "{stats}"
            );
            assert!(
                stats.contains(" ticket_decrypt_malformed=0 ticket_decrypt_unknown_key=0 "),
                "{stats}"
            );
        }
    }

    #[test]
    fn with_redis_down_at_boot_the_binary_serves_and_warns_once() {
        let redis = Redis::absent();
        let dir = tempfile::tempdir().unwrap();
        let flags = flags(&redis, &dir);
        let server = Binary::start(&flags.iter().map(String::as_str).collect::<Vec<_>>());
        let warning = server.stderr.wait_for("the warning", |l| {
            l.contains("new tickets resume only on this server until it can")
        });
        assert!(warning.contains(" WARN "), "{warning}");
        let session = dir.path().join("local.pem");
        for (flag, expected) in [("-sess_out", "New"), ("-sess_in", "Reused")] {
            let (line, _) = s_client_output(&server.addr, "-tls1_3", (flag, &session), "hi");
            assert!(line.starts_with(expected), "{line}");
        }
        let (status, stats, stderr) = server.terminate();
        assert!(status.success());
        assert!(stats.contains(" ticket_local_keys_made=1 "), "{stats}");
        let warnings = stderr
            .iter()
            .filter(|l| l.contains("resume only on this server"));
        assert_eq!(warnings.count(), 1, "{stderr:#?}");
    }

    #[test]
    fn fleet_tickets_without_a_fleet_fail_with_one_line() {
        let err = fails_with_one_line(&["--tickets", "fleet"]);
        assert_eq!(
            err.trim(),
            "error: --tickets fleet needs --redis or --redis-cluster"
        );
        let err = fails_with_one_line(&["--tickets", "fleet", "--redis", "redis://127.0.0.1:1"]);
        assert!(err.contains("--fleet-key-file"), "{err}");
        let err = fails_with_one_line(&["--ticket-rotation", "0"]);
        assert!(err.contains("--ticket-rotation"), "{err}");
    }
}
