//! Real rustls handshakes pumped in memory, full and resumed, TLS 1.2 and TLS 1.3, with
//! this crate's cache against rustls's built-in one, both prefilled to capacity.
//!
//! ```text
//! cargo bench --bench handshakes               # about 2 minutes
//! cargo bench --bench handshakes -- --quick    # one size, one short repetition: a smoke test
//! ```
//!
//! ring provider, the ECDSA P-256 certificate in `certs/`, one thread. Each figure is
//! the median of 5 repetitions of about half a second. Two figures per line: handshakes
//! per second of the whole loop, which runs the client's crypto too, and of the time
//! spent in the server's own calls alone, which is what a server's capacity is. Every resumed handshake is
//! checked with `handshake_kind()` on both ends; a full one where a resumption was
//! expected aborts the run. Results go to `target/bench-results/handshakes.json`, which
//! `benches/report.py` and `benches/plot.py` read.

mod support;

use std::ops::DerefMut;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::StoresServerSessions;
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, HandshakeKind, RootCertStore, ServerConfig,
    ServerConnection, SupportedProtocolVersion,
};
use support::{Store, prefill};

const SIZES: [usize; 4] = [256, 2_048, 20_480, 200_000];
const FULL_SIZES: [usize; 2] = [256, 200_000];
const STORES: [Store; 2] = [Store::SessionCache, Store::Rustls];
const REPETITIONS: usize = 5;
const REPETITION_TIME: Duration = Duration::from_millis(500);

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(
    version: &'static SupportedProtocolVersion,
    store: Arc<dyn StoresServerSessions>,
) -> Arc<ServerConfig> {
    let chain = CertificateDer::pem_file_iter(repo("certs/server.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(repo("certs/server.key")).unwrap();
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.session_storage = store;
    Arc::new(config)
}

fn client_config(version: &'static SupportedProtocolVersion, resume: bool) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(repo("certs/ca.crt")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = if resume {
        Resumption::in_memory_sessions(256)
    } else {
        Resumption::disabled()
    };
    Arc::new(config)
}

fn transfer<L, R>(
    from: &mut impl DerefMut<Target = ConnectionCommon<L>>,
    to: &mut impl DerefMut<Target = ConnectionCommon<R>>,
    buf: &mut Vec<u8>,
) {
    buf.clear();
    while from.wants_write() {
        from.write_tls(buf).unwrap();
    }
    let mut rd = buf.as_slice();
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
    }
}

/// One handshake, then the server's tickets delivered. Returns how it went, as both
/// ends agree, and the time spent in the server's own calls (making its connection,
/// processing the client's flights, writing its own): what a server spends, without the
/// client's crypto that this single-threaded loop also runs.
fn handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> (HandshakeKind, Duration) {
    let mut buf = Vec::new();
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = ClientConnection::new(client.clone(), name).unwrap();
    let timer = Instant::now();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let mut on_server = timer.elapsed();
    while s.is_handshaking() || c.is_handshaking() {
        transfer(&mut c, &mut s, &mut buf);
        let timer = Instant::now();
        s.process_new_packets().unwrap();
        on_server += timer.elapsed();
        transfer(&mut s, &mut c, &mut buf);
        c.process_new_packets().unwrap();
    }
    transfer(&mut s, &mut c, &mut buf);
    c.process_new_packets().unwrap();
    let kind = s.handshake_kind().unwrap();
    assert_eq!(Some(kind), c.handshake_kind(), "the two ends disagree");
    (kind, on_server)
}

struct Measurement {
    store: String,
    size: usize,
    version: &'static str,
    kind: &'static str,
    /// Handshakes per second of the whole loop (client and server on one thread).
    per_second: Vec<f64>,
    /// Handshakes per second of server time alone.
    server_per_second: Vec<f64>,
}

fn median(runs: &[f64]) -> f64 {
    let mut sorted = runs.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

impl Measurement {
    fn median(&self) -> f64 {
        median(&self.per_second)
    }

    fn server_median(&self) -> f64 {
        median(&self.server_per_second)
    }
}

fn measure(
    store: Store,
    size: usize,
    version: &'static SupportedProtocolVersion,
    resume: bool,
    (repetitions, time): (usize, Duration),
) -> Measurement {
    let built = store.build(size);
    prefill(&*built, size);
    let server = server_config(version, built);
    let client = client_config(version, resume);
    let expected = if resume {
        HandshakeKind::Resumed
    } else {
        HandshakeKind::Full
    };
    if resume {
        assert_eq!(
            handshake(&server, &client).0,
            HandshakeKind::Full,
            "the first is full"
        );
    }
    let (per_second, server_per_second) = (0..repetitions)
        .map(|_| {
            let start = Instant::now();
            let (mut count, mut on_server) = (0u32, Duration::ZERO);
            while count < 3 || start.elapsed() < time {
                let (kind, server_time) = handshake(&server, &client);
                assert_eq!(kind, expected, "{} at {size}", store.name());
                on_server += server_time;
                count += 1;
            }
            (
                f64::from(count) / start.elapsed().as_secs_f64(),
                f64::from(count) / on_server.as_secs_f64(),
            )
        })
        .unzip();
    Measurement {
        store: store.name(),
        size,
        version: if version.version == rustls::ProtocolVersion::TLSv1_3 {
            "1.3"
        } else {
            "1.2"
        },
        kind: if resume { "resumed" } else { "full" },
        per_second,
        server_per_second,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick {
        (1, Duration::from_millis(50))
    } else {
        (REPETITIONS, REPETITION_TIME)
    };
    let (sizes, full_sizes): (&[usize], &[usize]) = if quick {
        (&[256], &[256])
    } else {
        (&SIZES, &FULL_SIZES)
    };
    println!("machine: {}", support::machine());
    let mut results = Vec::new();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        for (resume, sizes) in [(true, sizes), (false, full_sizes)] {
            for &size in sizes {
                for store in STORES {
                    let m = measure(store, size, version, resume, budget);
                    println!(
                        "TLS {} {:8} {:>7} prefilled  {:16} {:>9.0} handshakes/s, server side alone {:>9.0} (medians of {})",
                        m.version,
                        m.kind,
                        m.size,
                        m.store,
                        m.median(),
                        m.server_median(),
                        m.per_second.len()
                    );
                    results.push(m);
                }
            }
        }
    }
    if !quick {
        write_json(&results);
    }
}

fn join(runs: &[f64]) -> String {
    runs.iter()
        .map(|r| format!("{r:.1}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn write_json(results: &[Measurement]) {
    let rows: Vec<String> = results
        .iter()
        .map(|m| {
            format!(
                r#"{{"store":"{}","size":{},"version":"{}","kind":"{}","median":{:.1},"server_median":{:.1},"runs":[{}],"server_runs":[{}]}}"#,
                m.store,
                m.size,
                m.version,
                m.kind,
                m.median(),
                m.server_median(),
                join(&m.per_second),
                join(&m.server_per_second)
            )
        })
        .collect();
    let json = format!(
        "{{\"machine\":\"{}\",\"results\":[\n{}\n]}}\n",
        support::machine(),
        rows.join(",\n")
    );
    let dir = repo("target/bench-results");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("handshakes.json"), json).unwrap();
}
