//! The cost of a ticket: `encrypt` then `decrypt` of one typical session (83 bytes),
//! with the fleet ticketer and with rustls's own `ring` `Ticketer` (ChaCha20-Poly1305
//! under a `TicketRotator`), side by side in one run, one thread.
//!
//! ```text
//! cargo bench --features redis --bench tickets
//! ```
//!
//! The fleet ticketer here holds one local key and runs no rotation task: `encrypt` and
//! `decrypt` read the same ring as with Redis (the task only ever writes to it), so the
//! figure is the handshake path's. Results go to `target/bench-results/tickets.json`.
//!
//! A third line seals and opens the same session with the `chacha20poly1305` crate's
//! XChaCha20-Poly1305 alone (no nonce drawn, no ring), which the fleet uses for what
//! it keeps in Redis: why tickets use AES-256-GCM instead.

mod support;

use std::hint::black_box;
use std::sync::Arc;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use criterion::{Criterion, criterion_group, criterion_main};
use rustls::server::ProducesTickets;
use rustls_session_cache::fleet::FleetTicketer;

/// A typical encoded session's length (SNI "example.com", no client auth).
const SESSION_LEN: usize = 83;

fn round_trip(ticketer: &dyn ProducesTickets, session: &[u8]) -> Vec<u8> {
    let ticket = ticketer.encrypt(session).expect("encrypts");
    let _lifetime = black_box(ticketer.lifetime());
    ticketer.decrypt(black_box(&ticket)).expect("decrypts")
}

fn benches(c: &mut Criterion) {
    println!("machine: {}", support::machine());
    let session: Vec<u8> = (0..SESSION_LEN as u8).collect();
    let ticketers: [(&str, Arc<dyn ProducesTickets>); 2] = [
        (
            "rustls-ring-Ticketer",
            rustls::crypto::ring::Ticketer::new().unwrap(),
        ),
        ("FleetTicketer", Arc::new(FleetTicketer::local_only())),
    ];
    let mut group = c.benchmark_group("tickets");
    for (name, ticketer) in &ticketers {
        assert_eq!(round_trip(&**ticketer, &session), session);
        group.bench_function(*name, |b| b.iter(|| round_trip(&**ticketer, &session)));
    }
    let xchacha = XChaCha20Poly1305::new(&[7; 32].into());
    group.bench_function("XChaCha20Poly1305-alone", |b| {
        b.iter(|| {
            let nonce = XNonce::default();
            let mut buf = session.clone();
            let tag = xchacha
                .encrypt_in_place_detached(&nonce, b"aad", &mut buf)
                .unwrap();
            xchacha
                .decrypt_in_place_detached(&nonce, b"aad", black_box(&mut buf), &tag)
                .unwrap();
            buf
        })
    });
    group.finish();
    report(&ticketers.map(|(name, _)| name));
}

/// Prints each median and the ratio to rustls's, and writes them as JSON.
fn report(names: &[&str; 2]) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let median = |name: &str| -> Option<f64> {
        let path = root.join(format!("criterion/tickets/{name}/new/estimates.json"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        json["median"]["point_estimate"].as_f64()
    };
    let (Some(rustls), Some(fleet)) = (median(names[0]), median(names[1])) else {
        return; // a filtered run: nothing to compare
    };
    let xchacha = median("XChaCha20Poly1305-alone").unwrap_or(f64::NAN);
    let ratio = fleet / rustls;
    println!(
        "encrypt+decrypt median: rustls {rustls:.0} ns, FleetTicketer {fleet:.0} ns, ratio {ratio:.2}; \
         XChaCha20-Poly1305 seal+open alone {xchacha:.0} ns"
    );
    let dir = root.join("bench-results");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("tickets.json"),
        format!(
            r#"{{"machine":"{}","session_len":{SESSION_LEN},"rustls_ns":{rustls:.1},"fleet_ns":{fleet:.1},"ratio":{ratio:.3},"xchacha_alone_ns":{xchacha:.1}}}"#,
            support::machine()
        ),
    )
    .unwrap();
}

criterion_group!(tickets, benches);
criterion_main!(tickets);
