//! The `metrics` feature: what a Prometheus scrape shows after real handshakes, rendered
//! by metrics-exporter-prometheus from a recorder of this test's own.
#![cfg(feature = "metrics")]

mod common;

use std::sync::Arc;

use common::{client_config, handshake_then, server_config};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use rustls::HandshakeKind;
use rustls::version::{TLS12, TLS13};
use rustls_session_cache::SessionCache;
use rustls_session_cache::metrics::SessionMetrics;

/// A recorder for this test alone, and metrics for `cache` registered with it.
fn recorded(name: &str, cache: &Arc<SessionCache>) -> (PrometheusRecorder, SessionMetrics) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics =
        metrics::with_local_recorder(&recorder, || SessionMetrics::for_cache(name, cache.clone()));
    (recorder, metrics)
}

/// The scrape's sample lines (no `# HELP`/`# TYPE`), sorted.
fn samples(handle: &PrometheusHandle) -> Vec<String> {
    sample_lines(&handle.render())
}

/// A Prometheus text rendering's sample lines (no `# HELP`/`# TYPE`), sorted.
fn sample_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// `tls_session_cache_METRIC{cache="CACHE"}`'s value.
fn of<'a>(lines: &'a [String], metric: &str, cache: &str) -> Option<&'a str> {
    sample(
        lines,
        &format!(r#"tls_session_cache_{metric}{{cache="{cache}"}}"#),
    )
}

fn sample<'a>(lines: &'a [String], metric: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|line| line.strip_prefix(metric)?.strip_prefix(' '))
}

#[test]
fn a_scrape_after_one_full_and_one_resumed_handshake_shows_exactly_them() {
    for (version, name, tickets) in [(&TLS13, "1.3", 2), (&TLS12, "1.2", 1)] {
        let cache = SessionCache::new(64);
        let (recorder, metrics) = recorded("default", &cache);
        let server = server_config(version, &cache);
        let client = client_config(version);
        for kind in [HandshakeKind::Full, HandshakeKind::Resumed] {
            let outcome = handshake_then(&server, &client, |tls| {
                assert!(metrics.record_handshake(tls));
            });
            outcome.assert_kind(kind);
        }
        metrics.publish();
        let lines = samples(&recorder.handle());
        let full =
            format!(r#"tls_handshakes_total{{cache="default",kind="full",version="{name}"}}"#);
        let resumed =
            format!(r#"tls_handshakes_total{{cache="default",kind="resumed",version="{name}"}}"#);
        assert_eq!(sample(&lines, &full), Some("1"), "{lines:#?}");
        assert_eq!(sample(&lines, &resumed), Some("1"), "{lines:#?}");
        // TLS 1.3: two tickets put after the full handshake, one taken, two more put
        // after the resumption. TLS 1.2: one session put, then got (it stays).
        let (entries, new_sessions) = if tickets == 2 { ("3", "4") } else { ("1", "1") };
        let at = |metric: &str| sample(&lines, &format!(r#"{metric}{{cache="default"}}"#));
        assert_eq!(at("tls_session_cache_hits_total"), Some("1"), "{lines:#?}");
        assert_eq!(at("tls_session_cache_misses_total"), Some("0"));
        assert_eq!(at("tls_session_cache_entries"), Some(entries));
        assert_eq!(
            at("tls_session_cache_new_sessions_total"),
            Some(new_sessions)
        );
        assert_eq!(at("tls_session_cache_capacity"), Some("64"));
        assert_eq!(at("tls_session_cache_timeouts_total"), Some("0"));
        assert_eq!(at("tls_session_cache_cache_full_total"), Some("0"));
        let bytes: f64 = at("tls_session_cache_bytes").unwrap().parse().unwrap();
        assert_eq!(bytes, cache.stats().bytes as f64);
        assert!(bytes > 0.0);
        // The other version's handshakes were registered, and stay at zero.
        let other = if tickets == 2 { "1.2" } else { "1.3" };
        let other =
            format!(r#"tls_handshakes_total{{cache="default",kind="full",version="{other}"}}"#);
        assert_eq!(sample(&lines, &other), Some("0"));
    }
}

#[test]
fn values_are_as_of_the_last_publish_and_counters_only_grow() {
    let cache = SessionCache::new(64);
    let (recorder, metrics) = recorded("edge", &cache);
    let handle = recorder.handle();
    let hits = r#"tls_session_cache_hits_total{cache="edge"}"#;
    let entries = r#"tls_session_cache_entries{cache="edge"}"#;
    metrics.publish();
    assert_eq!(sample(&samples(&handle), hits), Some("0"));
    let server = server_config(&TLS12, &cache);
    let client = client_config(&TLS12);
    handshake_then(&server, &client, |_| {}).assert_kind(HandshakeKind::Full);
    handshake_then(&server, &client, |_| {}).assert_kind(HandshakeKind::Resumed);
    // Nothing pushed while the handshakes ran: the scrape shows the last publish.
    assert_eq!(sample(&samples(&handle), hits), Some("0"));
    assert_eq!(sample(&samples(&handle), entries), Some("0"));
    metrics.publish();
    assert_eq!(sample(&samples(&handle), hits), Some("1"));
    assert_eq!(sample(&samples(&handle), entries), Some("1"));
    // Clearing empties the gauge; the counters keep their totals.
    cache.clear();
    metrics.publish();
    assert_eq!(sample(&samples(&handle), hits), Some("1"));
    assert_eq!(sample(&samples(&handle), entries), Some("0"));
}

#[test]
fn two_caches_are_told_apart_by_their_label() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let (a, b) = (SessionCache::new(8), SessionCache::new(16));
    let (ma, mb) = metrics::with_local_recorder(&recorder, || {
        (
            SessionMetrics::for_cache("a", a.clone()),
            SessionMetrics::for_cache("b", b.clone()),
        )
    });
    let server = server_config(&TLS12, &a);
    handshake_then(&server, &client_config(&TLS12), |_| {}).assert_kind(HandshakeKind::Full);
    ma.publish();
    mb.publish();
    let lines = samples(&recorder.handle());
    assert_eq!(of(&lines, "entries", "a"), Some("1"));
    assert_eq!(of(&lines, "entries", "b"), Some("0"));
    assert_eq!(of(&lines, "capacity", "a"), Some("8"));
    assert_eq!(of(&lines, "capacity", "b"), Some("16"));
}

#[test]
fn a_handshake_still_going_is_not_counted() {
    // rustls knows a handshake's kind from the ClientHello on, before it finishes.
    use std::ops::DerefMut;
    let cache = SessionCache::new(8);
    let (recorder, metrics) = recorded("default", &cache);
    let mut server = rustls::ServerConnection::new(server_config(&TLS13, &cache)).unwrap();
    let mut client = rustls::ClientConnection::new(
        client_config(&TLS13),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut hello = Vec::new();
    client.deref_mut().write_tls(&mut hello).unwrap();
    server.read_tls(&mut hello.as_slice()).unwrap();
    server.process_new_packets().unwrap();
    assert!(server.is_handshaking() && server.handshake_kind().is_some());
    assert!(!metrics.record_handshake(&server));
    let lines = samples(&recorder.handle());
    let full = r#"tls_handshakes_total{cache="default",kind="full",version="1.3"}"#;
    assert_eq!(sample(&lines, full), Some("0"));
}

#[test]
fn an_unfinished_handshake_is_not_counted() {
    let cache = SessionCache::new(8);
    let (recorder, metrics) = recorded("default", &cache);
    let tls = rustls::ServerConnection::new(server_config(&TLS13, &cache)).unwrap();
    assert!(!metrics.record_handshake(&tls));
    let lines = samples(&recorder.handle());
    assert!(
        lines
            .iter()
            .filter(|l| l.starts_with("tls_handshakes_total"))
            .all(|l| l.ends_with(" 0")),
        "{lines:#?}"
    );
}

/// The fleet tier's metrics, against a real `redis-server`: a ticket issued on one
/// server and claimed on another moves both servers' fleet counters, and the claim's
/// round trip lands in the histogram.
#[cfg(feature = "redis")]
mod fleet {
    use std::sync::Arc;

    use super::{of, sample, samples};
    use crate::common::redis::Redis;
    use crate::common::{client_config, settle};
    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
    use rustls::HandshakeKind;
    use rustls::pki_types::ServerName;
    use rustls::version::TLS13;
    use rustls_session_cache::SessionCache;
    use rustls_session_cache::fleet::{Fleet, FleetAcceptor, FleetKeys};
    use rustls_session_cache::metrics::SessionMetrics;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsConnector;

    const KEY: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    struct Server {
        fleet: Arc<Fleet>,
        acceptor: FleetAcceptor,
        recorder: PrometheusRecorder,
        metrics: SessionMetrics,
    }

    impl Server {
        fn new(redis: &Redis, name: &str) -> Self {
            let fleet = Fleet::builder(SessionCache::new(64))
                .redis_url(redis.url())
                .keys(FleetKeys::parse(KEY).unwrap())
                .build()
                .unwrap();
            let recorder = PrometheusBuilder::new().build_recorder();
            let metrics = metrics::with_local_recorder(&recorder, || {
                SessionMetrics::for_fleet(name, fleet.clone())
            });
            let config = crate::common::server_config(&TLS13, fleet.l1());
            Self {
                acceptor: fleet.acceptor(config),
                fleet,
                recorder,
                metrics,
            }
        }

        /// One connection from `client`, served to the end; the server's handshake kind.
        async fn connection(&self, client: &TlsConnector) -> HandshakeKind {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let serve = async {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut tls = self.acceptor.accept(tcp).await.unwrap();
                assert!(self.metrics.record_handshake(tls.get_ref().1));
                let mut byte = [0];
                tls.read_exact(&mut byte).await.unwrap();
                tls.write_all(&byte).await.unwrap();
                tls.get_ref().1.handshake_kind().unwrap()
            };
            let connect = async {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let name = ServerName::try_from("localhost").unwrap();
                let mut tls = client.connect(name, tcp).await.unwrap();
                tls.write_all(b"x").await.unwrap();
                let mut byte = [0];
                tls.read_exact(&mut byte).await.unwrap();
            };
            tokio::join!(serve, connect).0
        }

        fn scrape(&self) -> Vec<String> {
            self.metrics.publish();
            samples(&self.recorder.handle())
        }
    }

    #[tokio::test]
    async fn fleet_counters_move_as_the_handshakes_do() {
        let redis = Redis::start();
        let (a, b) = (Server::new(&redis, "a"), Server::new(&redis, "b"));
        let client = TlsConnector::from(client_config(&TLS13));
        assert_eq!(a.connection(&client).await, HandshakeKind::Full);
        settle(&a.fleet).await;
        assert_eq!(b.connection(&client).await, HandshakeKind::Resumed);
        settle(&b.fleet).await;

        let (la, lb) = (a.scrape(), b.scrape());
        let on = |lines: &[String], cache: &str, metric: &str| {
            sample(
                lines,
                &format!(r#"tls_session_cache_fleet_{metric}{{cache="{cache}"}}"#),
            )
            .map(str::to_owned)
        };
        // A issued two tickets and wrote them; B claimed one in Redis and resumed with
        // it, then issued and wrote two of its own.
        assert_eq!(
            on(&la, "a", "writes_written_total").as_deref(),
            Some("2"),
            "{la:#?}"
        );
        assert_eq!(on(&la, "a", "claims_won_total").as_deref(), Some("0"));
        assert_eq!(
            on(&lb, "b", "claims_won_total").as_deref(),
            Some("1"),
            "{lb:#?}"
        );
        assert_eq!(on(&lb, "b", "claims_redeemed_total").as_deref(), Some("1"));
        assert_eq!(on(&lb, "b", "claims_lost_total").as_deref(), Some("0"));
        assert_eq!(on(&lb, "b", "writes_written_total").as_deref(), Some("2"));
        assert_eq!(on(&lb, "b", "writes_pending").as_deref(), Some("0"));
        assert_eq!(
            on(&lb, "b", "round_trip_seconds_count").as_deref(),
            Some("1")
        );
        assert_eq!(
            on(&la, "a", "round_trip_seconds_count").as_deref(),
            Some("0"),
            "none on A"
        );
        let resumed = r#"tls_handshakes_total{cache="b",kind="resumed",version="1.3"}"#;
        assert_eq!(sample(&lb, resumed), Some("1"));
        // The fleet keeps TLS 1.3 tickets out of L1: they live in Redis, until claimed.
        assert_eq!(of(&lb, "entries", "b"), Some("0"));
    }

    #[test]
    fn ticketer_counters_and_its_key_epochs_are_published_under_the_cache_label() {
        use rustls_session_cache::fleet::FleetTicketer;
        let cache = SessionCache::new(8);
        let ticketer = Arc::new(FleetTicketer::local_only());
        let recorder = PrometheusBuilder::new().build_recorder();
        let metrics = metrics::with_local_recorder(&recorder, || {
            SessionMetrics::for_cache("t", cache.clone()).with_tickets(ticketer.clone())
        });
        let mut config = (*crate::common::server_config(&TLS13, &cache)).clone();
        config.ticketer = ticketer.clone();
        let config = Arc::new(config);
        let client = client_config(&TLS13);
        crate::common::handshake(&config, &client).assert_kind(HandshakeKind::Full);
        crate::common::handshake(&config, &client).assert_kind(HandshakeKind::Resumed);
        metrics.publish();
        let lines = samples(&recorder.handle());
        let at = |metric: &str| {
            sample(
                &lines,
                &format!(r#"tls_session_cache_{metric}{{cache="t"}}"#),
            )
        };
        // Two tickets after each handshake; one opened to resume.
        assert_eq!(at("tickets_encrypted_total"), Some("4"), "{lines:#?}");
        assert_eq!(at("tickets_decrypted_total"), Some("1"));
        assert_eq!(at("ticket_local_keys"), Some("1"));
        assert_eq!(
            at("ticket_epochs"),
            Some("0"),
            "no fleet key: Redis was never asked"
        );
        // With a ticketer, TLS 1.3 never touches the store.
        assert_eq!(at("entries"), Some("0"));
    }
}

/// The echo server's `--metrics`: scraped over real TCP after real handshakes with the
/// built binary, as an operator's Prometheus would.
mod endpoint {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream as StdTcp};
    use std::time::{Duration, Instant};

    use super::{of, sample, sample_lines};
    use crate::common::process::EchoServer;
    use crate::common::tls_connector;
    use rustls::HandshakeKind::{self, Full, Resumed};
    use rustls::pki_types::ServerName;
    use rustls::version::{TLS12, TLS13};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_rustls::TlsConnector;

    /// The binary with `--metrics 127.0.0.1:0` and `flags`, and where its metrics are.
    fn start(flags: &[&str]) -> (EchoServer, SocketAddr) {
        let mut all = vec!["--metrics", "127.0.0.1:0"];
        all.extend_from_slice(flags);
        let server = EchoServer::start(&all);
        let line = server
            .stdout
            .all()
            .into_iter()
            .find(|l| l.starts_with("metrics on "))
            .expect("a `metrics on ADDR` line before `listening on`");
        let at: SocketAddr = line["metrics on ".len()..].parse().unwrap();
        assert_ne!(at.port(), 0, "the real port: {line}");
        (server, at)
    }

    /// One HTTP request, `request` sent as is; the whole response.
    fn http(at: SocketAddr, request: &[u8]) -> String {
        let mut tcp = StdTcp::connect(at).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(request).unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).unwrap();
        response
    }

    /// `GET /metrics`: the sample lines, sorted.
    fn scrape(at: SocketAddr) -> Vec<String> {
        let response = http(at, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(
            head.contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        sample_lines(body)
    }

    async fn connect(client: &TlsConnector, addr: &str) -> HandshakeKind {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = client.connect(name, tcp).await.unwrap();
        tls.write_all(b"ping").await.unwrap();
        let mut echo = [0; 4];
        tls.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"ping");
        tls.shutdown().await.unwrap();
        tls.get_ref().1.handshake_kind().unwrap()
    }

    #[tokio::test]
    async fn a_scrape_after_one_full_and_one_resumed_handshake_per_version() {
        let (server, at) = start(&[]);
        for version in [&TLS13, &TLS12] {
            let client = tls_connector(version);
            assert_eq!(connect(&client, &server.addr).await, Full);
            assert_eq!(connect(&client, &server.addr).await, Resumed);
        }
        let lines = scrape(at);
        let at_ = |metric: &str| sample(&lines, metric).map(str::to_owned);
        for (kind, version) in [
            ("full", "1.3"),
            ("resumed", "1.3"),
            ("full", "1.2"),
            ("resumed", "1.2"),
        ] {
            let name = format!(
                r#"tls_handshakes_total{{cache="default",kind="{kind}",version="{version}"}}"#
            );
            assert_eq!(at_(&name).as_deref(), Some("1"), "{name} in {lines:#?}");
        }
        // TLS 1.3: 2 tickets, one taken, 2 more; TLS 1.2: one session, got.
        for (metric, value) in [
            ("hits_total", "2"),
            ("misses_total", "0"),
            ("entries", "4"),
            ("new_sessions_total", "5"),
            ("capacity", "20480"),
        ] {
            let name = format!(r#"tls_session_cache_{metric}{{cache="default"}}"#);
            assert_eq!(at_(&name).as_deref(), Some(value), "{name} in {lines:#?}");
        }
        // The stats line agrees.
        let (status, stats, _) = server.terminate();
        assert!(status.success());
        assert!(
            stats.contains("hits=2 misses=0") && stats.contains("full=2 resumed=2"),
            "{stats}"
        );
    }

    #[test]
    fn only_get_metrics_is_served_and_a_hostile_request_is_bounded() {
        let (_server, at) = start(&["--context", "edge"]);
        assert!(http(at, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(http(at, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        // A head that never ends: read up to 8 KiB, then answered (here: 404) and closed.
        let mut tcp = StdTcp::connect(at).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let started = Instant::now();
        let junk = vec![b'a'; 64 * 1024];
        let _ = tcp.write_all(&junk); // the server may close before taking it all
        let mut response = Vec::new();
        let _ = tcp.read_to_end(&mut response);
        assert!(
            response.starts_with(b"HTTP/1.1 404"),
            "{:?}",
            String::from_utf8_lossy(&response)
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // A head that never completes: dropped after 5 s in all, however it trickles.
        let mut slow = StdTcp::connect(at).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let started = Instant::now();
        let mut closed = false;
        for _ in 0..12 {
            if slow.write_all(b"G").is_err() {
                closed = true;
                break;
            }
            let mut byte = [0];
            slow.set_read_timeout(Some(Duration::from_millis(1000)))
                .unwrap();
            if let Ok(0) = slow.read(&mut byte) {
                closed = true;
                break;
            }
        }
        assert!(closed, "a trickling request was not dropped");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(4) && took < Duration::from_secs(9),
            "{took:?}"
        );
        // The label is the context's name.
        let lines = scrape(at);
        assert_eq!(of(&lines, "entries", "edge"), Some("0"));
    }

    #[test]
    fn a_bad_metrics_address_is_refused_in_one_line() {
        let line = crate::common::process::fails_with_one_line(&["--metrics", "nonsense"]);
        assert!(line.contains("--metrics"), "{line}");
    }

    /// With the fleet: the fleet's counters on the scrape move as handshakes do.
    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn the_fleet_counters_appear_and_move() {
        let redis = crate::common::redis::Redis::start();
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("fleet.keys");
        std::fs::write(&keys, format!("{}\n", "3".repeat(64))).unwrap();
        let url = redis.url();
        let flags = [
            "--redis",
            &url,
            "--fleet-key-file",
            keys.to_str().unwrap(),
            "--tls",
            "1.3",
        ];
        let (a, at_a) = start(&flags);
        let (b, at_b) = start(&flags);
        let fleet = |lines: &[String], metric: &str| {
            sample(
                lines,
                &format!(r#"tls_session_cache_fleet_{metric}{{cache="default"}}"#),
            )
            .map(str::to_owned)
        };
        let before = scrape(at_b);
        assert_eq!(
            fleet(&before, "claims_won_total").as_deref(),
            Some("0"),
            "{before:#?}"
        );
        let client = tls_connector(&TLS13);
        assert_eq!(connect(&client, &a.addr).await, Full);
        // Until A's two tickets have landed in Redis (write-behind).
        let deadline = Instant::now() + Duration::from_secs(10);
        while fleet(&scrape(at_a), "writes_written_total").as_deref() != Some("2") {
            assert!(Instant::now() < deadline, "{:#?}", scrape(at_a));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(connect(&client, &b.addr).await, Resumed);
        let after = scrape(at_b);
        assert_eq!(
            fleet(&after, "claims_won_total").as_deref(),
            Some("1"),
            "{after:#?}"
        );
        assert_eq!(fleet(&after, "claims_redeemed_total").as_deref(), Some("1"));
        assert_eq!(fleet(&after, "claims_lost_total").as_deref(), Some("0"));
        assert_eq!(
            fleet(&after, "round_trip_seconds_count").as_deref(),
            Some("1")
        );
        let resumed = r#"tls_handshakes_total{cache="default",kind="resumed",version="1.3"}"#;
        assert_eq!(sample(&after, resumed), Some("1"));
    }
}
