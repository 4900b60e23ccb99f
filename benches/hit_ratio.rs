//! Hit ratio under a skewed workload: 100,000 clients drawn from a Zipf(0.9)
//! distribution, a cache of 10,000 sessions, 1,000,000 connection attempts.
//!
//! ```text
//! cargo bench --bench hit_ratio
//! ```
//!
//! A client that holds a session id offers it (`get`); on a miss it does a full
//! handshake and `put`s a new id, which it offers next time. The references: a cache
//! that always holds the 10,000 busiest clients (the best any cache of this size can
//! do against independent draws), rustls's FIFO, and a minimal moka store.
//! Results go to `target/bench-results/hit_ratio.json`.

mod support;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::Zipf;
use support::{Store, id, value};

const CLIENTS: usize = 100_000;
const CAPACITY: usize = 10_000;
const ATTEMPTS: usize = 1_000_000;
const SKEW: f64 = 0.9;

/// The clients of every attempt, the same sequence for every store.
fn draws() -> Vec<usize> {
    let zipf = Zipf::new(CLIENTS as f64, SKEW).unwrap();
    let mut rng = SmallRng::seed_from_u64(1);
    (0..ATTEMPTS)
        .map(|_| rng.sample(zipf) as usize - 1)
        .collect()
}

fn simulate(store: Store, draws: &[usize]) -> f64 {
    let built = store.build(CAPACITY);
    let mut held: Vec<Option<u64>> = vec![None; CLIENTS];
    let (mut hits, mut next) = (0usize, 0u64);
    for &client in draws {
        if let Some(n) = held[client]
            && built.get(&id(1, n)).is_some()
        {
            hits += 1;
            continue;
        }
        built.put(id(1, next), value());
        held[client] = Some(next);
        next += 1;
    }
    hits as f64 / draws.len() as f64
}

/// The share of attempts by the `CAPACITY` most frequent clients of this very sequence.
fn busiest_clients_bound(draws: &[usize]) -> f64 {
    let mut counts = vec![0usize; CLIENTS];
    for &client in draws {
        counts[client] += 1;
    }
    counts.sort_unstable_by(|a, b| b.cmp(a));
    counts[..CAPACITY].iter().sum::<usize>() as f64 / draws.len() as f64
}

fn main() {
    println!("machine: {}", support::machine());
    println!("Zipf({SKEW}) over {CLIENTS} clients, capacity {CAPACITY}, {ATTEMPTS} attempts");
    let draws = draws();
    let mut rows = vec![(
        "busiest-10k-bound".to_owned(),
        busiest_clients_bound(&draws),
    )];
    for store in [
        Store::SessionCache,
        Store::Sharded(4),
        Store::Rustls,
        Store::Moka,
    ] {
        rows.push((store.name(), simulate(store, &draws)));
    }
    for (name, ratio) in &rows {
        println!("{name:20} hit ratio {:.2}%", ratio * 100.0);
    }
    let json: Vec<String> = rows
        .iter()
        .map(|(name, ratio)| format!(r#"{{"store":"{name}","hit_ratio":{ratio:.5}}}"#))
        .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-results");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hit_ratio.json"),
        format!("{{\"results\":[{}]}}\n", json.join(",")),
    )
    .unwrap();
}
