//! The ticketer against a real `redis-server`, where a test must see inside the ring:
//! the key bytes, to look for them in Redis. (Handshakes are in `tests/fleet_tickets.rs`.)

#[path = "../../../tests/common/redis.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::Duration;

use rustls::server::ProducesTickets;

use super::FleetTicketer;
use super::format::Origin;
use crate::fleet::FleetKeys;
use redis_server::Redis;

const HOUR: Duration = Duration::from_secs(3600);

fn ticketer(redis: &Redis, fleet_key: u8) -> Arc<FleetTicketer> {
    FleetTicketer::builder()
        .redis_url(redis.url())
        .keys(FleetKeys::new([[fleet_key; 32]]).unwrap())
        .rotation(HOUR)
        .build()
        .unwrap()
}

fn secrets(ticketer: &FleetTicketer) -> Vec<([u8; 16], [u8; 32], Origin)> {
    let mut secrets = Vec::new();
    ticketer
        .shared
        .ring
        .each(|key| secrets.push((key.id, key.secret, key.origin)));
    secrets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_share_two_keys_and_redis_never_holds_one_in_the_clear() {
    let redis = Redis::start();
    let fleet = [
        ticketer(&redis, 1),
        ticketer(&redis, 1),
        ticketer(&redis, 1),
    ];
    for server in &fleet {
        server.first_sync().await;
    }
    // The current epoch's key and the next one's, made once between the three.
    let stats: Vec<_> = fleet.iter().map(|t| t.stats()).collect();
    assert_eq!(
        stats.iter().map(|s| s.keys_created).sum::<u64>(),
        2,
        "{stats:?}"
    );
    assert_eq!(
        stats.iter().map(|s| s.keys_fetched).sum::<u64>(),
        4,
        "{stats:?}"
    );
    assert!(
        stats
            .iter()
            .all(|s| s.epochs_held == 2 && s.local_keys_held == 0)
    );
    let rings: Vec<_> = fleet.iter().map(|t| secrets(t)).collect();
    assert_eq!(rings[0].len(), 2);
    for ring in &rings[1..] {
        assert_eq!(
            ring.iter().map(|k| (k.0, k.1)).collect::<Vec<_>>(),
            rings[0].iter().map(|k| (k.0, k.1)).collect::<Vec<_>>(),
            "the same keys in every ring"
        );
    }
    // A ticket made on one server opens on the others.
    let ticket = fleet[0].encrypt(b"a session").unwrap();
    assert_eq!(fleet[2].decrypt(&ticket).unwrap(), b"a session");

    let stored = redis.all_values();
    let epoch = fleet[0].shared.ring.schedule.epoch(fleet[0].shared.now());
    let mut names: Vec<&str> = stored.iter().map(|(name, _)| name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("rsc:ticket-key:3600000:{epoch}"),
            format!("rsc:ticket-key:3600000:{}", epoch + 1)
        ]
    );
    for (name, value) in &stored {
        assert_eq!(
            value.len(),
            1 + 4 + 24 + 48 + 16,
            "{name}: sealed id and key"
        );
        for (_, secret, _) in &rings[0] {
            for window in secret.windows(8) {
                assert!(
                    !value.windows(8).any(|w| w == window),
                    "key bytes in the clear under {name}"
                );
            }
        }
    }
    // Redis keeps each key a skew past its erasure: (epoch + 2) h + 1 h + 5 s for the
    // current one, from now.
    let ttl = redis.command(&format!("PTTL rsc:ticket-key:3600000:{epoch}"));
    let ttl: u64 = ttl.trim_start_matches(':').trim().parse().unwrap();
    let expected = (epoch + 2) * 3_600_000 + 5_000 - fleet[0].shared.now();
    assert!(
        ttl.abs_diff(expected) < 2_000,
        "{ttl} ms, {expected} expected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_key_sealed_under_another_fleet_key_is_not_used() {
    let redis = Redis::start();
    let theirs = ticketer(&redis, 1);
    theirs.first_sync().await;
    let ours = ticketer(&redis, 2);
    ours.first_sync().await;
    let stats = ours.stats();
    assert_eq!(
        (stats.keys_unopened, stats.keys_fetched, stats.keys_created),
        (2, 0, 0),
        "{stats:?}"
    );
    // It cannot join: it makes a local key, and its tickets do not open elsewhere.
    assert_eq!((stats.epochs_held, stats.local_keys_held), (0, 1));
    let ticket = ours.encrypt(b"s").unwrap();
    assert_eq!(theirs.decrypt(&ticket), None);
    assert_eq!(theirs.stats().decrypt_unknown_key, 1);
    assert_eq!(ours.decrypt(&ticket).unwrap(), b"s");
}

#[tokio::test(flavor = "current_thread")]
async fn before_the_first_sync_nothing_is_issued_and_with_redis_down_a_local_key_is() {
    let redis = Redis::absent();
    let ticketer = ticketer(&redis, 1);
    assert_eq!(ticketer.encrypt(b"s"), None, "no key before the first pass");
    assert_eq!(ticketer.lifetime(), 0);
    let started = std::time::Instant::now();
    ticketer.first_sync().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let stats = ticketer.stats();
    assert_eq!(
        (
            stats.local_keys_held,
            stats.local_keys_made,
            stats.epochs_held
        ),
        (1, 1, 0)
    );
    assert_eq!(stats.sync_failures, 1);
    assert_eq!(stats.encrypt_failures, 1);
    let ticket = ticketer.encrypt(b"s").unwrap();
    assert_eq!(ticketer.decrypt(&ticket).unwrap(), b"s");
    // A 1-hour key issued at `now`: the lifetime is what is left to its erasure.
    let now = ticketer.shared.now();
    let expected = ((now / 3_600_000 + 2) * 3_600_000 - 5_000 - now) / 1000;
    let told = u64::from(ticketer.lifetime());
    assert!(
        told == expected || told + 1 == expected,
        "{told} {expected}"
    );
}

#[test]
fn debug_shows_the_schedule_and_counts_never_a_key() {
    let ticketer = FleetTicketer::local_only();
    let printed = format!("{ticketer:?}");
    assert_eq!(
        printed,
        "FleetTicketer { schedule: Schedule { period: 3600000, window: 3600000, skew: 5000 }, \
         held: Held { fleet: 0, local: 1 }, .. }"
    );
    let (id, secret, _) = secrets(&ticketer)[0];
    for bytes in [&id[..], &secret[..]] {
        assert!(!printed.contains(&hex(bytes)));
        assert!(!printed.contains(format!("{:?}", &bytes[..4]).trim_end_matches(']')));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
