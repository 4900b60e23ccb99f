//! The rotation task: keeps the ring in step with Redis, off the handshake path.
//!
//! Each pass ("sync") looks at the epochs the ring should hold ([`Schedule::wanted`])
//! and asks Redis, in one round of pipelines (one per hash slot on a cluster), for the
//! fleet keys it lacks:
//! - **past epochs** (still decrypting): `GET` only. A key nobody made is not made now:
//!   no server encrypted with it.
//! - **the current and the next epoch**: `SET NX PX` of a fresh key, sealed under the
//!   newest fleet key and bound to its epoch, then `GET`. The first server to ask
//!   creates it; every other reads the winner's. No leader, no lock, no operator.
//!
//! Then it erases what is past its decrypt window, and, if the current epoch has no
//! fleet key, makes a local key for it, which the ring uses once no fleet key may
//! encrypt (warning once, then, that tickets resume only here).
//!
//! It runs at boot, at each epoch's start (so the next epoch's key is published a whole
//! period ahead), when a key is due to be erased or a stretch ends, and, after a pass
//! that could not finish, again after `min(period / 4, 5 s)`.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::format::{Origin, TicketKey};
use crate::fleet::codec::FleetKeys;
use crate::fleet::store::{Created, Read, Reply, Store, Write};
use crate::rate_limit::RateLimited;
use crate::session::now_nanos;
use crate::stats::bump;

/// The longest one pass may wait for Redis.
const SYNC_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest wait before a pass that could not finish is tried again.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// The rotation task's state.
pub(crate) struct Rotation {
    pub(crate) shared: Arc<Shared>,
    pub(crate) store: Store,
    pub(crate) keys: FleetKeys,
    /// Whether a fleet key encrypted after the last pass; `None` before the first.
    pub(crate) joined: Option<bool>,
    pub(crate) warn: RateLimited,
}

impl Rotation {
    /// Runs until the ticketer is dropped (which aborts it).
    pub(crate) async fn run(mut self) {
        loop {
            let finished = self.sync().await;
            self.shared.synced.send_modify(|passes| *passes += 1);
            tokio::time::sleep(self.next_pass(finished)).await;
        }
    }

    /// One pass; whether it finished (every wanted key it could ask for was answered).
    pub(crate) async fn sync(&mut self) -> bool {
        // Not before the first pass: a server with Redis up never needs a local key.
        if self.joined.is_some() {
            self.keep_a_key();
        }
        let ring = &self.shared.ring;
        let schedule = ring.schedule;
        let now = self.shared.now();
        let current = schedule.epoch(now);
        let missing = schedule
            .wanted(now)
            .filter(|epoch| !ring.holds(*epoch, Origin::Fleet));
        let (past, ahead): (Vec<u64>, Vec<u64>) = missing.partition(|epoch| *epoch < current);
        let name = |epoch: u64| self.store.ticket_key(schedule.period, epoch);
        let reads: Vec<Read> = past.iter().map(|epoch| Read::Get(name(*epoch))).collect();
        let mut fresh: Vec<TicketKey> = Vec::with_capacity(ahead.len());
        let writes: Vec<Write> = ahead
            .iter()
            .map(|&epoch| {
                let (key, material) = TicketKey::generate_with_material(epoch, Origin::Fleet);
                fresh.push(key);
                let redis_key = name(epoch);
                Write {
                    tag: epoch.to_be_bytes().to_vec(),
                    sealed: self.keys.seal_ticket_key(&redis_key, epoch, &material[..]),
                    key: redis_key,
                    ttl_ms: schedule.redis_ttl(epoch, now),
                }
            })
            .collect();
        let asked = async {
            let read = async {
                match reads.is_empty() {
                    true => (Vec::new(), None),
                    false => self.store.read(&reads, Duration::ZERO).await,
                }
            };
            let create = async {
                match writes.is_empty() {
                    true => (Vec::new(), None),
                    false => self.store.create(&writes).await,
                }
            };
            futures_util::future::join(read, create).await
        };
        let mut finished = true;
        match tokio::time::timeout(SYNC_TIMEOUT, asked).await {
            Err(_) => {
                finished = false;
                self.trouble("Redis did not answer in time");
            }
            Ok(((replies, read_error), (created, create_error))) => {
                for (&epoch, reply) in past.iter().zip(replies) {
                    match reply {
                        Reply::Found(sealed) => self.adopt(epoch, &name(epoch), &sealed),
                        Reply::Missing => {}
                        _ => finished = false,
                    }
                }
                for ((key, write), created) in fresh.into_iter().zip(&writes).zip(created) {
                    let epoch = key.epoch;
                    match created {
                        Created::Here => {
                            if self.shared.ring.insert(key) {
                                bump(&self.shared.counters.keys_created);
                                tracing::debug!(epoch, "ticket key created");
                            }
                        }
                        Created::There(sealed) => self.adopt(epoch, &write.key, &sealed),
                        Created::Failed => finished = false,
                    }
                }
                if let Some(error) = read_error.or(create_error) {
                    finished = false;
                    self.trouble_with("ticket keys could not be had from Redis", &error);
                }
            }
        }
        self.settle();
        finished
    }

    /// Erases what is due, and makes a local key for the current epoch if it has no
    /// fleet key: the ring uses it only once no fleet key may encrypt (a stretched one
    /// comes first), and it is there before then, whatever Redis does meanwhile.
    fn keep_a_key(&self) {
        let ring = &self.shared.ring;
        let now = self.shared.now();
        ring.erase_expired(now);
        let epoch = ring.schedule.epoch(now);
        if !ring.holds(epoch, Origin::Fleet)
            && !ring.holds(epoch, Origin::Local)
            && ring.insert(TicketKey::generate(epoch, Origin::Local))
        {
            bump(&self.shared.counters.local_keys_made);
        }
    }

    /// After a pass: [`keep_a_key`](Self::keep_a_key), and say when the ring leaves or
    /// joins the fleet's.
    fn settle(&mut self) {
        self.keep_a_key();
        let joined = self.shared.ring.fleet_encrypts(self.shared.now());
        match (self.joined, joined) {
            (None | Some(false), true) => {
                tracing::info!("ticket keys: in step with the fleet's ring");
            }
            (None | Some(true), false) => tracing::warn!(
                "ticket keys: the fleet's cannot be had from Redis; new tickets resume only \
                 on this server until it can"
            ),
            _ => {}
        }
        self.joined = Some(joined);
    }

    /// Opens the sealed key of `epoch` found under `redis_key` and adds it to the ring.
    fn adopt(&self, epoch: u64, redis_key: &[u8], sealed: &[u8]) {
        let counters = &self.shared.counters;
        let key = self
            .keys
            .open_ticket_key(redis_key, epoch, sealed)
            .and_then(|material| TicketKey::from_material(epoch, Origin::Fleet, &material));
        match key {
            Some(key) => {
                if self.shared.ring.insert(key) {
                    bump(&counters.keys_fetched);
                }
            }
            None => {
                bump(&counters.keys_unopened);
                if let Some(suppressed) = self.warn.allow(now_nanos()) {
                    tracing::warn!(
                        epoch,
                        suppressed,
                        "a ticket key in Redis does not open with the fleet keys"
                    );
                }
            }
        }
    }

    fn trouble(&self, what: &'static str) {
        self.trouble_with(what, &"timeout");
    }

    fn trouble_with(&self, what: &'static str, error: &dyn std::fmt::Display) {
        bump(&self.shared.counters.sync_failures);
        if let Some(suppressed) = self.warn.allow(now_nanos()) {
            tracing::warn!(%error, suppressed, "{what}");
        }
    }

    /// How long to sleep before the next pass.
    fn next_pass(&self, finished: bool) -> Duration {
        let ring = &self.shared.ring;
        let schedule = ring.schedule;
        let now = self.shared.now();
        let next_epoch = schedule.epoch(now).saturating_add(1);
        // A few milliseconds into the next epoch, so that the clock has surely turned.
        let mut wake = schedule.start(next_epoch).saturating_add(5);
        if let Some(change) = ring.next_change(now) {
            wake = wake.min(change.saturating_add(5));
        }
        if !finished || !ring.holds(next_epoch, Origin::Fleet) {
            let retry = (schedule.period / 4).min(MAX_RETRY.as_millis() as u64);
            wake = wake.min(now.saturating_add(retry));
        }
        Duration::from_millis(wake.saturating_sub(now).max(10))
    }
}
