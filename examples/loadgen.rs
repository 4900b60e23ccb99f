//! A load generator for the echo server, over real TCP: many TLS connections, a share of
//! them resuming, each echoing a payload that must come back byte for byte.
//!
//! ```text
//! cargo run --release --example echo_server &
//! cargo run --release --example loadgen -- -n 20000 -c 32 --resume 0.9 --tls 1.3
//! cargo run --release --example loadgen -- -n 2000 --json      # one JSON object instead
//! ```
//!
//! It simulates `--clients` clients (default 1), each with its own session store;
//! connection `i` belongs to client `i % clients`. A connection that is meant to resume
//! uses its client's store; the others use none. Resumption is reported twice: as a share
//! of all connections, and among the connections that offered a session (a client with
//! no ticket left offers none: rustls keeps 8 TLS 1.3 tickets per server, and one
//! client's concurrent connections use them up). Latency is from TCP connect to the end
//! of the handshake, kept in an HDR histogram (3 significant digits): the report gives
//! p50, p90, p99, p99.9 and max, then a chart of ten equal-width buckets from the
//! fastest handshake to the slowest. While it runs, the progress bar shows the rate and
//! the share of connections resumed so far.
//!
//! ```text
//! cargo run --release --example loadgen -- -n 20000 -c 64 --resume 0.9 --clients 1000
//! ```
//!
//! Exits non-zero if any connection failed or any echo differed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, NamedGroup, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

#[derive(Parser, Debug)]
#[command(about = "Opens many TLS connections to the echo server and reports how they went")]
struct Args {
    /// The echo server.
    #[arg(long, default_value = "127.0.0.1:4433")]
    connect: SocketAddr,
    /// The name to verify the server's certificate for.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// CA certificate to trust, PEM.
    #[arg(long, default_value = "certs/ca.crt")]
    ca: PathBuf,
    /// Connections to open in all.
    #[arg(short = 'n', long, default_value_t = 1000)]
    connections: usize,
    /// Connections open at once.
    #[arg(short = 'c', long, default_value_t = 16)]
    concurrency: usize,
    /// Simulated clients, each with its own session store.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    clients: u32,
    /// Share of connections that try to resume, 0 to 1.
    #[arg(long, default_value_t = 0.9, value_parser = parse_share)]
    resume: f64,
    /// TLS versions to offer.
    #[arg(long, value_enum, default_value = "both")]
    tls: Versions,
    /// Bytes each connection sends and expects back.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Versions {
    #[value(name = "1.2")]
    Tls12,
    #[value(name = "1.3")]
    Tls13,
    Both,
}

fn parse_share(s: &str) -> Result<f64, String> {
    let share: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err("must be between 0 and 1".into())
    }
}

/// What one connection did.
struct Outcome {
    wanted_resume: bool,
    offered: bool,
    resumed: bool,
    handshake: Duration,
}

/// The simulated clients: one base config, and a session store each.
struct Clients {
    base: ClientConfig,
    stores: Vec<Arc<ClientSessionMemoryCache>>,
}

impl Clients {
    /// A connector for client `i`'s next connection, and the probe that tells whether it
    /// offered a session.
    fn connector(&self, i: usize) -> (TlsConnector, Arc<Probe>) {
        let probe = Arc::new(Probe {
            store: self.stores[i % self.stores.len()].clone(),
            offered: AtomicBool::new(false),
        });
        let mut config = self.base.clone();
        config.resumption = Resumption::store(probe.clone());
        (TlsConnector::from(Arc::new(config)), probe)
    }
}

/// A client's session store, seen through one connection: notes whether the connection
/// found a session to offer.
#[derive(Debug)]
struct Probe {
    store: Arc<ClientSessionMemoryCache>,
    offered: AtomicBool,
}

impl Probe {
    fn found<T>(&self, found: Option<T>) -> Option<T> {
        if found.is_some() {
            self.offered.store(true, Ordering::Relaxed);
        }
        found
    }
}

impl ClientSessionStore for Probe {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.store.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.store.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.store.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.found(self.store.tls12_session(server_name))
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.store.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.store.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.found(self.store.take_tls13_ticket(server_name))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let base = client_config(&args)?;
    let clients = Arc::new(Clients {
        stores: (0..args.clients)
            .map(|_| Arc::new(ClientSessionMemoryCache::new(16)))
            .collect(),
        base: base.clone(),
    });
    let fresh = TlsConnector::from(Arc::new(base));
    let name = ServerName::try_from(args.server_name.clone())
        .map_err(|e| format!("bad --server-name: {e}"))?;
    let progress = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.connections as u64)
    };
    progress.set_style(
        ProgressStyle::with_template("{bar:24} {pos}/{len} {per_sec} {msg}, {eta} left")
            .map_err(|e| e.to_string())?,
    );
    // The live resumption share, refreshed four times a second.
    let resumed_so_far = Arc::new(AtomicUsize::new(0));
    let share_shown = {
        let (progress, resumed) = (progress.clone(), resumed_so_far.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(250));
            loop {
                ticks.tick().await;
                let done = progress.position().max(1) as f64;
                let share = resumed.load(Ordering::Relaxed) as f64 / done;
                progress.set_message(format!("resumed {:.1}%", share * 100.0));
            }
        })
    };
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(args.connections)));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (next, outcomes, errors) = (next.clone(), outcomes.clone(), errors.clone());
        let (clients, fresh, name) = (clients.clone(), fresh.clone(), name.clone());
        let (progress, total, share) = (progress.clone(), args.connections, args.resume);
        let resumed_so_far = resumed_so_far.clone();
        let (addr, payload_len) = (args.connect, args.payload);
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                // Exactly `share` of the connections, spread evenly.
                let wanted_resume = ((i + 1) as f64 * share).floor() > (i as f64 * share).floor();
                let (connector, probe) = if wanted_resume {
                    let (connector, probe) = clients.connector(i);
                    (connector, Some(probe))
                } else {
                    (fresh.clone(), None)
                };
                let payload = payload_for(i, payload_len);
                match connection(&connector, name.clone(), addr, &payload).await {
                    Ok((resumed, handshake)) => {
                        resumed_so_far.fetch_add(usize::from(resumed), Ordering::Relaxed);
                        outcomes.lock().await.push(Outcome {
                            wanted_resume,
                            offered: probe.is_some_and(|p| p.offered.load(Ordering::Relaxed)),
                            resumed,
                            handshake,
                        });
                    }
                    Err(error) => errors.lock().await.push(format!("connection {i}: {error}")),
                }
                progress.inc(1);
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    share_shown.abort();
    progress.finish_and_clear();
    let outcomes = outcomes.lock().await;
    let errors = errors.lock().await;
    let report = Report::new(&outcomes, errors.len(), elapsed, &args);
    if args.json {
        out(&format!("{}\n", report.json()));
    } else {
        out(&report.table());
        out(&report.chart());
        for error in errors.iter().take(5) {
            eprintln!("{error}");
        }
    }
    Ok(errors.is_empty())
}

/// Writes to stdout; a reader gone (`| head`) is not an error worth a panic.
fn out(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The clients' config, trusting `--ca`, offering `--tls`, and resuming nothing (each
/// client's connections get their store from [`Clients::connector`]).
fn client_config(args: &Args) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&args.ca)
        .map_err(|e| format!("cannot read {}: {e}", args.ca.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("cannot read {}: {e}", args.ca.display()))?;
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    let versions: &[&'static SupportedProtocolVersion] = match args.tls {
        Versions::Tls12 => &[&rustls::version::TLS12],
        Versions::Tls13 => &[&rustls::version::TLS13],
        Versions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// A payload unique to connection `i`, so a mix-up between connections shows.
fn payload_for(i: usize, len: usize) -> Vec<u8> {
    let seed = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..len)
        .map(|j| (seed >> ((j % 8) * 8)) as u8 ^ j as u8)
        .collect()
}

/// One connection: handshake, echo, close. Returns whether it resumed and how long the
/// connect and handshake took.
async fn connection(
    connector: &TlsConnector,
    name: ServerName<'static>,
    addr: SocketAddr,
    payload: &[u8],
) -> std::io::Result<(bool, Duration)> {
    let started = Instant::now();
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = connector.connect(name, tcp).await?;
    let handshake = started.elapsed();
    let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
    tls.write_all(payload).await?;
    let mut echoed = vec![0; payload.len()];
    tls.read_exact(&mut echoed).await?;
    if echoed != payload {
        return Err(std::io::Error::other("the echo differs from what was sent"));
    }
    tls.shutdown().await?;
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).await?;
    Ok((resumed, handshake))
}

struct Report {
    connections: usize,
    errors: usize,
    seconds: f64,
    per_second: f64,
    clients: u32,
    wanted_resume: usize,
    offered: usize,
    resumed: usize,
    resumed_of_offered: usize,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    /// Handshake latencies, in microseconds.
    latencies: Histogram<u64>,
}

impl Report {
    fn new(outcomes: &[Outcome], errors: usize, elapsed: Duration, args: &Args) -> Self {
        // 1 µs to an hour, 3 significant digits; `saturating_record` clamps the rest.
        let mut latencies = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
            .expect("constant bounds are valid");
        for outcome in outcomes {
            latencies.saturating_record(outcome.handshake.as_micros().max(1) as u64);
        }
        let at = |q: f64| latencies.value_at_quantile(q) as f64 / 1e3;
        Self {
            connections: args.connections,
            errors,
            seconds: elapsed.as_secs_f64(),
            per_second: outcomes.len() as f64 / elapsed.as_secs_f64(),
            clients: args.clients,
            wanted_resume: outcomes.iter().filter(|o| o.wanted_resume).count(),
            offered: outcomes.iter().filter(|o| o.offered).count(),
            resumed: outcomes.iter().filter(|o| o.resumed).count(),
            resumed_of_offered: outcomes.iter().filter(|o| o.offered && o.resumed).count(),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: latencies.max() as f64 / 1e3,
            latencies,
        }
    }

    fn resumption_rate(&self) -> f64 {
        self.resumed as f64 / (self.connections - self.errors).max(1) as f64
    }

    /// Resumed among the connections that offered a session.
    fn offered_resumption_rate(&self) -> f64 {
        self.resumed_of_offered as f64 / self.offered.max(1) as f64
    }

    fn table(&self) -> String {
        format!(
            "connections        {}\n\
             errors             {}\n\
             elapsed            {:.2} s\n\
             handshakes/s       {:.0}\n\
             clients            {}\n\
             asked to resume    {}\n\
             offered a session  {}\n\
             resumed            {} ({:.1}% of connections; {:.1}% of those that offered)\n\
             handshake p50      {:.2} ms\n\
             handshake p90      {:.2} ms\n\
             handshake p99      {:.2} ms\n\
             handshake p99.9    {:.2} ms\n\
             handshake max      {:.2} ms\n",
            self.connections,
            self.errors,
            self.seconds,
            self.per_second,
            self.clients,
            self.wanted_resume,
            self.offered,
            self.resumed,
            self.resumption_rate() * 100.0,
            self.offered_resumption_rate() * 100.0,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms
        )
    }

    /// The handshake latencies in ten equal-width buckets from the fastest to the
    /// slowest, each with its count and a bar.
    fn chart(&self) -> String {
        let h = &self.latencies;
        if h.is_empty() {
            return String::new();
        }
        let (low, high) = (h.min(), h.max());
        let width = (high - low).div_ceil(10).max(1);
        // Each recorded value counted once, in the bucket its value falls in.
        let mut counts = [0u64; 10];
        for value in h.iter_recorded() {
            let bucket = ((value.value_iterated_to().clamp(low, high) - low) / width).min(9);
            counts[bucket as usize] += value.count_at_value();
        }
        let buckets: Vec<(u64, u64, u64)> = (0..10)
            .map(|b| {
                (
                    low + b * width,
                    (low + (b + 1) * width - 1).min(high),
                    counts[b as usize],
                )
            })
            .filter(|&(from, _, _)| from <= high)
            .collect();
        let most = buckets.iter().map(|b| b.2).max().unwrap_or(1).max(1);
        let mut chart = String::from("handshake latency\n");
        for (from, to, count) in buckets {
            let bar = "#".repeat((count * 40).div_ceil(most) as usize);
            chart += &format!(
                "  {:>8.2} - {:>8.2} ms {count:>8} {bar}\n",
                from as f64 / 1e3,
                to as f64 / 1e3
            );
        }
        chart
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "connections": self.connections,
            "errors": self.errors,
            "seconds": self.seconds,
            "handshakes_per_second": self.per_second,
            "clients": self.clients,
            "asked_to_resume": self.wanted_resume,
            "offered": self.offered,
            "resumed": self.resumed,
            "resumed_of_offered": self.resumed_of_offered,
            "resumption_rate": self.resumption_rate(),
            "offered_resumption_rate": self.offered_resumption_rate(),
            "handshake_ms": {
                "p50": self.p50_ms,
                "p90": self.p90_ms,
                "p99": self.p99_ms,
                "p99.9": self.p999_ms,
                "max": self.max_ms,
                "count": self.latencies.len(),
            },
        })
    }
}
