//! The echo server over real TCP on 127.0.0.1, with a tokio-rustls client.
//!
//! The first tests serve in-process (`tests/common/server.rs`), so a test can reach the
//! cache it serves from: expire, remove, read counters. The rest run the example's
//! binary (`tests/common/process.rs`): its admission policy, its handling of bad
//! clients, its shutdown grace period and its connection cap are the example's own.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{self, stat};
use common::server::{Report, Serve, shipped_config};
use rustls::pki_types::ServerName;
use rustls::{HandshakeKind, SupportedProtocolVersion};
use rustls_session_cache::{CacheMode, SessionCache};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use HandshakeKind::{Full, Resumed};

const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;
const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;

/// An in-process echo server on a free port, TLS 1.2 and 1.3, serving from `cache`.
struct Running {
    addr: SocketAddr,
    cache: Arc<SessionCache>,
    server: common::server::Running,
}

impl Running {
    async fn start(cache: Arc<SessionCache>) -> Self {
        let config = shipped_config(&[TLS13, TLS12], cache.clone());
        let server = Serve::new(config, cache.clone()).start().await;
        Self {
            addr: server.addr,
            cache,
            server,
        }
    }

    async fn with_mode(mode: CacheMode) -> Self {
        Self::start(
            SessionCache::builder()
                .capacity(1024)
                .mode(mode)
                .build()
                .unwrap(),
        )
        .await
    }

    async fn stop(self) -> Report {
        self.server.stop().await
    }
}

/// The example's binary with `flags`, and its address.
fn binary(flags: &[&str]) -> (process::EchoServer, SocketAddr) {
    let server = process::EchoServer::start(flags);
    let addr = server.addr.parse().unwrap();
    (server, addr)
}

/// A client offering one TLS version, trusting `certs/ca.crt`, remembering its sessions.
fn connector(version: &'static SupportedProtocolVersion) -> TlsConnector {
    common::tls_connector(version)
}

/// Connects, sends `payload`, reads it all back while still sending (it may exceed what
/// the socket buffers hold), closes cleanly, and returns how the handshake went.
async fn exchange(client: &TlsConnector, addr: SocketAddr, payload: &[u8]) -> HandshakeKind {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = client.connect(name, tcp).await.unwrap();
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    let (mut rd, mut wr) = tokio::io::split(tls);
    let send = async {
        wr.write_all(payload).await.unwrap();
        wr.flush().await.unwrap();
    };
    let receive = async {
        let mut echoed = vec![0; payload.len()];
        rd.read_exact(&mut echoed).await.unwrap();
        echoed
    };
    let ((), echoed) = tokio::join!(send, receive);
    assert!(echoed == payload, "the echo differs from what was sent");
    let mut tls = rd.unsplit(wr);
    tls.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "nothing more after the echo");
    kind
}

#[tokio::test]
async fn full_then_resumed_with_every_byte_echoed() {
    let server = Running::with_mode(CacheMode::SERVER).await;
    for version in [TLS12, TLS13] {
        let client = connector(version);
        assert_eq!(exchange(&client, server.addr, b"hello\n").await, Full);
        assert_eq!(exchange(&client, server.addr, b"again\n").await, Resumed);
    }
    let report = server.stop().await;
    assert_eq!((report.full, report.resumed), (2, 2));
    assert_eq!((report.stats.hits, report.stats.misses), (2, 0));
}

#[tokio::test]
async fn payloads_larger_than_a_tls_record_come_back_byte_for_byte() {
    let server = Running::with_mode(CacheMode::SERVER).await;
    // 1 MiB of a pattern that never repeats within a record, every byte value present.
    let payload: Vec<u8> = (0u32..1 << 20)
        .map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8)
        .collect();
    for version in [TLS12, TLS13] {
        let client = connector(version);
        assert_eq!(exchange(&client, server.addr, &payload).await, Full);
        assert_eq!(exchange(&client, server.addr, &payload).await, Resumed);
    }
    server.stop().await;
}

#[tokio::test]
async fn every_mode_over_tcp() {
    // Under NO_INTERNAL_STORE no client asks to be remembered here: nothing is admitted.
    for (mode, tls12, tls13) in common::mode_matrix() {
        let running = Running::with_mode(mode).await;
        for (version, expected) in [(TLS12, tls12), (TLS13, tls13)] {
            let client = connector(version);
            assert_eq!(
                exchange(&client, running.addr, b"one\n").await,
                Full,
                "{mode}"
            );
            let second = exchange(&client, running.addr, b"two\n").await;
            assert_eq!(second, expected, "mode {mode} on {version:?}");
        }
        let report = running.stop().await;
        let resumed = u64::from(tls12 == Resumed) + u64::from(tls13 == Resumed);
        assert_eq!(report.resumed, resumed, "{mode}");
        assert_eq!(report.full, 4 - resumed, "{mode}");
    }
}

#[tokio::test]
async fn expired_sessions_give_full_handshakes() {
    let server = Running::with_mode(CacheMode::SERVER).await;
    for version in [TLS12, TLS13] {
        let client = connector(version);
        assert_eq!(exchange(&client, server.addr, b"a\n").await, Full);
        // Every session made so far is older than a nanosecond by the next handshake.
        server
            .cache
            .try_set_timeout(Duration::from_nanos(1))
            .unwrap();
        let before = server.cache.stats().timeouts;
        assert_eq!(exchange(&client, server.addr, b"b\n").await, Full);
        assert_eq!(server.cache.stats().timeouts, before + 1, "{version:?}");
        server
            .cache
            .try_set_timeout(Duration::from_secs(300))
            .unwrap();
        assert_eq!(exchange(&client, server.addr, b"c\n").await, Resumed);
    }
    server.stop().await;
}

#[tokio::test]
async fn removed_sessions_give_full_handshakes() {
    let made = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let record = made.clone();
    let cache = SessionCache::builder()
        .on_new_session(move |s| record.lock().unwrap().push(s.id().to_vec()))
        .build()
        .unwrap();
    let server = Running::start(cache).await;
    for version in [TLS12, TLS13] {
        let client = connector(version);
        assert_eq!(exchange(&client, server.addr, b"a\n").await, Full);
        let ids: Vec<_> = made.lock().unwrap().drain(..).collect();
        assert!(!ids.is_empty());
        for id in &ids {
            assert!(server.cache.remove_session(id));
        }
        assert_eq!(exchange(&client, server.addr, b"b\n").await, Full);
        assert_eq!(exchange(&client, server.addr, b"c\n").await, Resumed);
    }
    server.stop().await;
}

/// `--mode server,no-internal-store`: a connection's sessions are admitted only if its
/// client sends the line `remember me`.
#[tokio::test]
async fn application_controlled_resumption_admits_only_clients_that_ask() {
    // TLS 1.2: one session per full handshake; TLS 1.3: two tickets.
    for (version, admitted) in [(TLS12, 1), (TLS13, 2)] {
        let (server, addr) = binary(&["--mode", "server,no-internal-store"]);
        let asked = |lines: &[String]| {
            lines
                .iter()
                .filter(|l| l.contains("client asked to be remembered"))
                .count()
        };
        let client = connector(version);
        assert_eq!(exchange(&client, addr, b"hello\n").await, Full);
        // Not admitted: no resumption. This client now asks to be remembered.
        assert_eq!(exchange(&client, addr, b"remember me\r\n").await, Full);
        let line = server.stderr.wait_for("remembered", |l| {
            l.contains("client asked to be remembered")
        });
        assert!(line.contains(&format!("admitted={admitted}")), "{line}");
        assert_eq!(exchange(&client, addr, b"thanks\n").await, Resumed);
        // For a new client, a line that merely contains the phrase does not count.
        let other = connector(version);
        assert_eq!(exchange(&other, addr, b"please remember me\n").await, Full);
        assert_eq!(exchange(&other, addr, b"and?\n").await, Full);
        let (status, stats, stderr) = server.terminate();
        assert!(status.success());
        assert_eq!(asked(&stderr), 1, "{version:?}: one admission in all");
        assert_eq!(
            (stat(&stats, "full"), stat(&stats, "resumed")),
            (4, 1),
            "{version:?}: {stats}"
        );
        // The one admitted session (or ticket) left: resuming used the other.
        let (hits, misses) = (stat(&stats, "hits"), stat(&stats, "misses"));
        assert_eq!(
            (hits, misses, stat(&stats, "entries")),
            (1, 2, 1),
            "{stats}"
        );
    }
}

/// Garbage, a client stalled in its handshake (dropped at the example's 10 s handshake
/// timeout) and one that vanishes mid-stream each end only their own connection.
#[tokio::test]
async fn bad_clients_end_only_their_own_connection() {
    let (server, addr) = binary(&[]);

    // Garbage instead of a ClientHello: the server closes the connection.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut reply));
    read.await.expect("closed promptly").ok();

    // A client that stalls in the handshake is dropped after the handshake timeout.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(20), stalled.read(&mut byte));
    assert!(
        matches!(read.await, Ok(Ok(0)) | Ok(Err(_))),
        "stalled client not dropped"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(9_500),
        "{:?}",
        started.elapsed()
    );

    // A client that vanishes mid-stream, without close_notify.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = connector(TLS13)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"half a message").await.unwrap();
    let mut echoed = [0; 14];
    tls.read_exact(&mut echoed).await.unwrap();
    assert_eq!(
        &echoed, b"half a message",
        "the connection was up, mid-stream"
    );
    drop(tls);

    // The server still serves.
    let client = connector(TLS13);
    assert_eq!(exchange(&client, addr, b"still here\n").await, Full);
    assert_eq!(exchange(&client, addr, b"yes\n").await, Resumed);
    // And it ended the vanished client's connection by itself: had that connection
    // stayed open (its idle timeout is 300 s), stopping would wait out the 5 s grace.
    let stopping = Instant::now();
    let (status, stats, stderr) = server.terminate();
    assert!(status.success());
    assert!(
        stopping.elapsed() < Duration::from_millis(2_500),
        "a connection was still open at shutdown: {:?}",
        stopping.elapsed()
    );
    assert!(
        !stderr.iter().any(|l| l.contains("grace period over")),
        "{stderr:#?}"
    );
    // Full: the vanished client, then "still here"; resumed: "yes".
    assert_eq!(
        (stat(&stats, "full"), stat(&stats, "resumed")),
        (2, 1),
        "{stats}"
    );
}

/// An idle but open connection keeps the server, once signalled, for its 5 s grace
/// period and no longer.
#[tokio::test]
async fn shutdown_waits_for_open_connections_within_the_grace_period() {
    let (server, addr) = binary(&[]);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let _open = connector(TLS13)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let started = Instant::now();
    let (status, stats, stderr) = server.terminate();
    let took = started.elapsed();
    assert!(status.success());
    assert!(
        took >= Duration::from_millis(4_900),
        "left before the grace: {took:?}"
    );
    assert!(
        took < Duration::from_secs(8),
        "waited past the grace: {took:?}"
    );
    assert!(
        stderr.iter().any(|l| l.contains("grace period over")),
        "{stderr:#?}"
    );
    assert_eq!(stat(&stats, "full"), 1, "{stats}");
}

/// Past `--max-connections` open connections the server stops accepting: a further
/// client gets no handshake until one closes, then it does; the pause is counted.
#[tokio::test]
async fn past_max_connections_accepting_waits_until_one_closes() {
    let (server, addr) = binary(&["--max-connections", "2"]);
    let client = connector(TLS13);
    let name = || ServerName::try_from("localhost").unwrap();
    let mut open = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(addr).await.unwrap();
        open.push(client.connect(name(), tcp).await.unwrap());
    }
    // The kernel completes the TCP connect; the server does not accept it yet.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let third = tokio::spawn({
        let client = client.clone();
        async move { client.connect(name(), tcp).await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "a third handshake while two are open");
    let mut closing = open.pop().unwrap();
    closing.shutdown().await.unwrap();
    drop(closing);
    let done = tokio::time::timeout(Duration::from_secs(5), third).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
    drop(open);
    let (_, stats, stderr) = server.terminate();
    assert!(stat(&stats, "limited") >= 1, "{stats}");
    assert_eq!(stat(&stats, "full"), 3, "{stats}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("connection limit reached")),
        "{stderr:#?}"
    );
}

/// `--context NAME` on one server (no fleet): its sessions are stored and found in that
/// context of its cache, so its clients resume.
#[tokio::test]
async fn a_server_with_a_context_resumes_its_own_sessions() {
    let (server, addr) = binary(&["--context", "web"]);
    for version in [TLS12, TLS13] {
        let client = connector(version);
        assert_eq!(
            exchange(&client, addr, b"hello\n").await,
            Full,
            "{version:?}"
        );
        assert_eq!(
            exchange(&client, addr, b"again\n").await,
            Resumed,
            "{version:?}"
        );
    }
    let (status, stats, stderr) = server.terminate();
    assert!(status.success());
    let line = stderr.iter().find(|l| l.contains("echo server started"));
    assert!(
        line.is_some_and(|l| l.contains(r#"context=Some("web")"#)),
        "{stderr:#?}"
    );
    assert_eq!(
        (stat(&stats, "hits"), stat(&stats, "misses")),
        (2, 0),
        "{stats}"
    );
    assert_eq!(
        (stat(&stats, "full"), stat(&stats, "resumed")),
        (2, 2),
        "{stats}"
    );
}

/// A context name the cache cannot take fails at startup, in one line.
#[test]
fn an_invalid_context_fails_with_one_line() {
    let long = "x".repeat(65);
    for (name, len) in [(long.as_str(), 65), ("", 0)] {
        let stderr = process::fails_with_one_line(&["--context", name]);
        assert!(stderr.starts_with("error: --context"), "{stderr}");
        assert!(
            stderr.contains(&format!("must be 1 to 64 bytes, not {len}")),
            "{stderr}"
        );
    }
}
