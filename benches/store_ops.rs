//! Cache operations, store against store, on stores prefilled to capacity.
//!
//! ```text
//! cargo bench --bench store_ops                 # all of it, about 5 minutes
//! python3 benches/report.py                     # medians, hit shares and ratios
//! ```
//!
//! Workloads, each step one "element" of throughput:
//! - `tls13`: a resumption: `take` of a live ticket, then two `put`s of new 32-byte ids
//!   with 83-byte values (rustls's two new tickets). Each client takes the ticket it got
//!   a quarter of the capacity's worth of steps ago, so it is still live in a FIFO and
//!   an LRU alike;
//! - `tls12`: 90% `get` of a live id (uniform over each client's recent half of the
//!   capacity), 10% `put` of a new one.
//!
//! Capacities 256, 20,480 and 200,000; one and two threads. A fast miss is not a win:
//! every benchmark also records the share of lookups that found a live session, in
//! `target/bench-results/store_ops_hits.jsonl`, which `benches/report.py` puts beside
//! the throughput.

mod support;

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rustls::server::StoresServerSessions;
use support::{Store, id, prefill, value};

const CAPACITIES: [usize; 3] = [256, 20_480, 200_000];
const THREADS: [usize; 2] = [1, 2];
const STORES: [Store; 5] = [
    Store::SessionCache,
    Store::Context,
    Store::Sharded(4),
    Store::Rustls,
    Store::Moka,
];

/// One thread's clients: what it asks of the store, one step at a time.
trait Clients: Send + 'static {
    const NAME: &'static str;
    /// Thread `thread` of `threads`, on a store prefilled with `capacity` sessions.
    fn new(thread: usize, threads: usize, capacity: usize) -> Self;
    /// One step; returns (lookups, lookups that found a live session).
    fn step(&mut self, store: &dyn StoresServerSessions) -> (u64, u64);
}

/// The ids most recently prefilled, a disjoint slice for each thread.
fn recent_prefill(thread: usize, len: usize, capacity: usize) -> Vec<Vec<u8>> {
    (0..len)
        .map(|i| id(0xff, (capacity - 1 - (thread * len + i) % capacity) as u64))
        .collect()
}

struct Tls13 {
    stream: u8,
    next: u64,
    /// Tickets waiting to be used, oldest at `pos`.
    ring: Vec<Vec<u8>>,
    pos: usize,
}

impl Clients for Tls13 {
    const NAME: &'static str = "tls13";

    fn new(thread: usize, threads: usize, capacity: usize) -> Self {
        let len = (capacity / (4 * threads)).max(1);
        Self {
            stream: thread as u8,
            next: 0,
            ring: recent_prefill(thread, len, capacity),
            pos: 0,
        }
    }

    fn step(&mut self, store: &dyn StoresServerSessions) -> (u64, u64) {
        let hit = store.take(&self.ring[self.pos]).is_some();
        let kept = id(self.stream, self.next);
        store.put(kept.clone(), value());
        store.put(id(self.stream, self.next + 1), value());
        self.next += 2;
        self.ring[self.pos] = kept;
        self.pos = (self.pos + 1) % self.ring.len();
        (1, u64::from(hit))
    }
}

struct Tls12 {
    stream: u8,
    next: u64,
    /// Ids this thread's clients hold, replaced oldest first.
    ring: Vec<Vec<u8>>,
    pos: usize,
    rng: SmallRng,
}

impl Clients for Tls12 {
    const NAME: &'static str = "tls12";

    fn new(thread: usize, threads: usize, capacity: usize) -> Self {
        let len = (capacity / (2 * threads)).max(1);
        Self {
            stream: thread as u8,
            next: 0,
            ring: recent_prefill(thread, len, capacity),
            pos: 0,
            rng: SmallRng::seed_from_u64(thread as u64 + 1),
        }
    }

    fn step(&mut self, store: &dyn StoresServerSessions) -> (u64, u64) {
        if self.rng.random_range(0..10) == 0 {
            let new = id(self.stream, self.next);
            self.next += 1;
            store.put(new.clone(), value());
            self.ring[self.pos] = new;
            self.pos = (self.pos + 1) % self.ring.len();
            (0, 0)
        } else {
            let i = self.rng.random_range(0..self.ring.len());
            (1, u64::from(store.get(&self.ring[i]).is_some()))
        }
    }
}

/// Runs `iters` steps split over the clients' threads; returns the wall time.
fn run_steps<C: Clients>(
    store: &Arc<dyn StoresServerSessions>,
    clients: &[Mutex<C>],
    iters: u64,
    counts: &(AtomicU64, AtomicU64),
) -> Duration {
    let per_thread = (iters / clients.len() as u64).max(1);
    let work = |client: &Mutex<C>| {
        let mut client = client.lock().unwrap();
        let (mut lookups, mut hits) = (0, 0);
        for _ in 0..per_thread {
            let (l, h) = client.step(&**store);
            lookups += l;
            hits += h;
        }
        counts.0.fetch_add(lookups, Ordering::Relaxed);
        counts.1.fetch_add(hits, Ordering::Relaxed);
    };
    if clients.len() == 1 {
        let start = Instant::now();
        work(&clients[0]);
        return start.elapsed();
    }
    let barrier = Barrier::new(clients.len() + 1);
    std::thread::scope(|scope| {
        for client in clients {
            let (barrier, work) = (&barrier, &work);
            scope.spawn(move || {
                barrier.wait();
                work(client);
            });
        }
        barrier.wait();
        let start = Instant::now();
        // The scope joins every thread before it returns.
        start
    })
    .elapsed()
}

fn workload<C: Clients>(c: &mut Criterion) {
    for capacity in CAPACITIES {
        let mut group = c.benchmark_group(format!("{}-cap{capacity}", C::NAME));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .throughput(Throughput::Elements(1));
        for threads in THREADS {
            for store in STORES {
                let counts = (AtomicU64::new(0), AtomicU64::new(0));
                let name = store.name();
                // Built on first use, so a benchmark the command line filtered out costs
                // no prefill and records no hit share.
                let setup = OnceLock::new();
                group.bench_with_input(
                    BenchmarkId::new(&name, format!("threads{threads}")),
                    &(),
                    |b, ()| {
                        let (built, clients) = setup.get_or_init(|| {
                            let built = store.build(capacity);
                            prefill(&*built, capacity);
                            let clients: Vec<Mutex<C>> = (0..threads)
                                .map(|t| Mutex::new(C::new(t, threads, capacity)))
                                .collect();
                            (built, clients)
                        });
                        b.iter_custom(|iters| run_steps(built, clients, iters, &counts))
                    },
                );
                if setup.get().is_some() {
                    record_hits(C::NAME, capacity, threads, &name, &counts);
                }
            }
        }
        group.finish();
    }
}

/// Appends one benchmark's hit share to `target/bench-results/store_ops_hits.jsonl`.
fn record_hits(
    workload: &str,
    capacity: usize,
    threads: usize,
    store: &str,
    (lookups, hits): &(AtomicU64, AtomicU64),
) {
    let (lookups, hits) = (
        lookups.load(Ordering::Relaxed),
        hits.load(Ordering::Relaxed),
    );
    let share = hits as f64 / lookups.max(1) as f64;
    println!(
        "{workload} cap={capacity} threads={threads} {store}: hit share {:.2}%",
        share * 100.0
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-results");
    std::fs::create_dir_all(&dir).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("store_ops_hits.jsonl"))
        .unwrap();
    writeln!(
        file,
        r#"{{"workload":"{workload}","capacity":{capacity},"threads":{threads},"store":"{store}","lookups":{lookups},"hits":{hits}}}"#
    )
    .unwrap();
}

fn benches(c: &mut Criterion) {
    println!("machine: {}", support::machine());
    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-results/store_ops_hits.jsonl");
    // A whole run starts the file afresh; a filtered one (criterion's positional
    // argument) adds to it, so that benchmarks run a group at a time keep their shares.
    // `benches/report.py` reads the last line for each benchmark.
    if !std::env::args().skip(1).any(|arg| !arg.starts_with('-')) {
        let _ = std::fs::remove_file(results);
    }
    workload::<Tls13>(c);
    workload::<Tls12>(c);
}

criterion_group!(store_ops, benches);
criterion_main!(store_ops);
