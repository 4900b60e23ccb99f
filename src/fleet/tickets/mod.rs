//! Fleet tickets: [`FleetTicketer`], stateless TLS tickets under ticket keys a fleet
//! shares and rotates through Redis; its ring, its rotation task and its ticket format.

mod builder;
mod format;
mod ring;
mod rotation;
mod schedule;
mod stats;
#[cfg(test)]
mod tests;

use core::fmt;
use std::cell::Cell;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::server::ProducesTickets;
use tokio::sync::watch;
use tokio::task::AbortHandle;

pub use self::builder::{DEFAULT_MAX_SKEW, DEFAULT_ROTATION, FleetTicketerBuilder};
use self::format::split;
use self::ring::{Ring, Sealed};
use self::stats::Counters;
pub use self::stats::TicketStats;
use crate::error::ConfigError;
use crate::stats::bump;

/// Stateless TLS tickets that resume on every server of a fleet, under ticket keys that
/// every server shares and that rotate by themselves through Redis.
///
/// A `FleetTicketer` is a [`ProducesTickets`] for `ServerConfig::ticketer`. The
/// session goes into the ticket, encrypted under a key every server holds, so a server
/// resumes it without asking anyone: no lookup, no Redis round trip. rustls's own
/// ticketer draws random keys per process, so its tickets resume only where they were
/// made; this one coordinates the keys, with no leader and no operator action.
///
/// ```no_run
/// use std::time::Duration;
/// use rustls_session_cache::fleet::{FleetKeys, FleetTicketer};
///
/// # async fn run(mut config: rustls::ServerConfig) -> Result<(), Box<dyn std::error::Error>> {
/// let ticketer = FleetTicketer::builder()
///     .redis_url("redis://10.0.0.5:6379")
///     .prefix("myservice")
///     .keys(FleetKeys::from_file("/etc/myservice/fleet.keys")?)
///     .rotation(Duration::from_secs(3600))
///     .build()?;
/// ticketer.first_sync().await; // in step with the fleet (or on local keys) before serving
/// config.ticketer = ticketer;
/// # Ok(()) }
/// ```
///
/// # The handshake path never waits
///
/// rustls calls `encrypt` and `decrypt` inside the handshake, synchronously. They read
/// an in-memory key ring under a shared lock, and nothing else. A background task (on
/// the tokio runtime `build` ran in) keeps the ring in step with Redis.
///
/// # Rotation
///
/// Time is cut into epochs of a fixed period `P` ([`rotation`], default 1 hour), counted
/// from the Unix epoch on each server's wall clock, so servers agree on them without
/// talking. Each epoch has one fleet key, which:
/// - **is published ahead**: made (or read) at the start of the epoch before, so it is in
///   Redis and in every ring a whole period before any server encrypts with it;
/// - **encrypts during its epoch**;
/// - **then only decrypts**, for the decrypt window `W` ([`decrypt_window`], default the
///   period);
/// - **then is erased**: from every ring at `end + W`, and from Redis (its TTL) a skew
///   later.
///
/// The first server to need an epoch's key creates it with `SET NX PX`, sealed; every
/// other one reads that one. A server started later reads the keys of the epochs that
/// still decrypt, so it resumes tickets issued before it started.
///
/// **The lifetime told to clients** (`ticket_lifetime`, and TLS 1.2's hint) is how long
/// the ticket is sure to decrypt on every server: `end + W - S - now`, for a ticket
/// issued at `now` under an epoch ending at `end`, with `S` the tolerated skew. With
/// the defaults (`P` = `W` = 1 h, `S` = 5 s) that is from 59 min 55 s (a ticket issued
/// as its epoch ends) to 1 h 59 min 55 s (as it starts); never more than TLS's 7 days.
/// rustls never checks a ticket's age itself: the lifetime holds because the key is
/// erased, as rustls asks of a ticketer.
///
/// # What Redis holds
///
/// One value per epoch, under `PREFIX:ticket-key:PERIOD_MS:EPOCH`: the key's id and
/// bytes, sealed with XChaCha20-Poly1305 under the newest [`FleetKeys`](crate::fleet::FleetKeys) key and bound
/// to that Redis name and epoch (see the fleet's encryption at rest). Redis never holds
/// a ticket key in plaintext, and a value moved to another name or epoch does not
/// open. Rotating the fleet keys works as for sessions: keep the old key in the file,
/// after the new one, until the ticket keys it sealed have left Redis. A key is sealed
/// up to a period before its epoch and kept until `W + S` after it: `2·P + W + S` after
/// the old fleet key was last first in the file (3 h 5 s by default). A server that
/// cannot open a ticket key (counted in `keys_unopened`) uses a local key instead.
///
/// In memory, a ticket key lives inside its cipher, which wipes it when dropped (when
/// erased, and when the ticketer is dropped); nothing here prints one, and `Debug`
/// shows only the schedule and how many keys are held.
///
/// # The ticket
///
/// `key id (16) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`, AES-256-GCM with the key id in
/// the associated data: 44 bytes on top of the session. Random nonces keep AES-GCM
/// within NIST's bound for 2^32 tickets per key: with hourly keys, 1.19 million tickets a
/// second across the fleet; rotate faster above that. The key id is 16 random
/// bytes drawn with the key, so it says nothing about the key. Anything that does not
/// open decrypts to `None`, never a panic, and is counted by cause in [`TicketStats`]:
/// a length no ticket has (under 44 bytes, over 65,535), a key id the ring does not
/// hold (never known, already erased, or not yet in force), and a tag that does not
/// verify.
///
/// # When Redis is down
///
/// A handshake never fails because of Redis: at worst a ticket gives a full handshake.
/// - **At boot**: the first sync fails, the server makes a local key, logs at `warn`
///   that new tickets resume only on this server, and retries every `min(P/4, 5 s)`.
///   Once Redis answers it joins the fleet's ring (logged at `info`): new tickets
///   resume everywhere; the local tickets still resume here until their key is erased.
/// - **Later**: the ring keeps the keys it has; they decrypt until their windows end.
///   If the next epoch's key cannot be had when its epoch starts, the current key goes
///   on encrypting for up to `W/2` past its epoch (30 min by default). Tickets issued
///   then still resume everywhere, and are told the shorter lifetime left to them, at
///   least `W/2 - S`. After that the server makes a local key for the epoch, as at boot,
///   until Redis answers again.
/// - Until the first sync has ended (milliseconds, at most 2 s with Redis blackholed),
///   no key is held and no ticket is issued: await [`FleetTicketer::first_sync`] before
///   serving.
///
/// # Clocks
///
/// Servers' clocks differ. Up to the skew `S` ([`max_skew`], default 5 s, or a quarter
/// of the period or window if less), it makes no difference: a key decrypts from `S`
/// before its epoch starts, so a ticket from a server ahead resumes everywhere; the
/// lifetime told is `S` short of the erasure, so a server ahead does not erase a key a
/// ticket still counts on. A server off by more than `S` issues tickets that others
/// refuse for a while around each epoch's start and end, as unknown keys: full
/// handshakes, never failures.
///
/// # Security: stateless or stateful?
///
/// - **Stateless tickets are not single use.** A ticket resumes as often as it is
///   offered, on any server, until its key is erased. So rustls refuses 0-RTT with a
///   ticketer (it sends no `early_data` in tickets, and no data is replayed). The
///   stateful fleet tier ([`Fleet`](super::Fleet)) is what gives each TLS 1.3 ticket one
///   use in the whole fleet, and so what 0-RTT needs.
/// - **Forward secrecy is bounded by the decrypt window.** Whoever takes a ticket key
///   (from a server's memory, or the fleet key and Redis's copy) can decrypt every
///   ticket issued under it, and the sessions resumed from them, until `P + W` after
///   its epoch started. A shorter period and window narrow that, at the cost of more
///   full handshakes.
/// - **Nothing can be revoked.** A stateful session can be removed everywhere
///   ([`Fleet::remove_session`](super::Fleet::remove_session)); a ticket lives until
///   its key goes.
///
/// Choose fleet tickets for the cheapest resumption (no Redis round trip) and for
/// clients that resume TLS 1.2 only with tickets (Go's crypto/tls, for one). Choose the
/// stateful fleet tier for single use, 0-RTT, and revocation. A `ServerConfig` with a
/// ticketer uses it for every TLS 1.3 resumption (rustls then never asks the session
/// store), and for TLS 1.2 clients that offer the ticket extension; TLS 1.2 clients
/// that offer only a session id still resume through the session store.
///
/// [`rotation`]: FleetTicketerBuilder::rotation
/// [`decrypt_window`]: FleetTicketerBuilder::decrypt_window
/// [`max_skew`]: FleetTicketerBuilder::max_skew
///
/// # Building one
///
/// Made by [`FleetTicketer::builder`]; set it as `ServerConfig::ticketer`. Dropping the
/// last handle stops its rotation task and wipes its keys.
///
/// ```
/// use rustls::server::ProducesTickets;
/// use rustls_session_cache::fleet::{FleetKeys, FleetTicketer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ticketer = FleetTicketer::builder()
///     .redis_url("redis://127.0.0.1:6379")
///     .keys(FleetKeys::new([[7; 32]])?)
///     .build()?;
/// assert!(ticketer.enabled());
/// // No key is held before the first sync; none is ever printed.
/// assert!(format!("{ticketer:?}").ends_with("held: Held { fleet: 0, local: 0 }, .. }"));
/// # Ok(()) }
/// ```
pub struct FleetTicketer {
    shared: Arc<Shared>,
    task: Option<AbortHandle>,
}

/// What the ticketer and its rotation task share.
pub(crate) struct Shared {
    pub(crate) ring: Ring,
    pub(crate) counters: Counters,
    clock: Box<dyn Fn() -> SystemTime + Send + Sync>,
    /// Passes of the rotation task so far.
    pub(crate) synced: watch::Sender<u64>,
}

impl Shared {
    /// The wall clock, in milliseconds since the Unix epoch (0 before it).
    pub(crate) fn now(&self) -> u64 {
        (self.clock)()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64)
    }
}

thread_local! {
    /// The ticketer and lifetime of the last ticket sealed on this thread. rustls calls
    /// `lifetime` right after `encrypt`, on the same thread; this makes the lifetime
    /// the one of the key that sealed the ticket, even if an epoch ended in between.
    static ISSUED: Cell<Option<(usize, u32)>> = const { Cell::new(None) };
}

impl FleetTicketer {
    /// A builder; see [`FleetTicketerBuilder`] for the settings and their defaults.
    pub fn builder() -> FleetTicketerBuilder {
        FleetTicketerBuilder::new()
    }

    /// A snapshot of the counters, and of how many keys the ring holds.
    pub fn stats(&self) -> TicketStats {
        self.shared.counters.snapshot(self.shared.ring.held())
    }

    /// Waits until the rotation task's first pass has ended: the ring then holds the
    /// fleet's keys, or (Redis unreachable) a local one. Until then no ticket is
    /// issued. At most about 2 s, Redis down or not.
    pub async fn first_sync(&self) {
        let mut passes = self.shared.synced.subscribe();
        // Fails only if the sender is gone, which the ticketer holds.
        let _ = passes.wait_for(|passes| *passes > 0).await;
    }

    /// A ticketer with one local key of a 1-hour epoch and no rotation task: for the
    /// `decrypt` fuzz target and the benchmark, which need no Redis and no runtime.
    #[doc(hidden)]
    pub fn local_only() -> Self {
        let shared = Shared::new(builder::default_schedule(), Box::new(SystemTime::now));
        let epoch = shared.ring.schedule.epoch(shared.now());
        let key = format::TicketKey::generate(epoch, format::Origin::Local);
        shared.ring.insert(key);
        Self {
            shared: Arc::new(shared),
            task: None,
        }
    }

    fn tag(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }
}

impl Shared {
    fn new(schedule: schedule::Schedule, clock: Box<dyn Fn() -> SystemTime + Send + Sync>) -> Self {
        Self {
            ring: Ring::new(schedule),
            counters: Counters::default(),
            clock,
            synced: watch::Sender::new(0),
        }
    }
}

impl ProducesTickets for FleetTicketer {
    fn enabled(&self) -> bool {
        true
    }

    /// The lifetime of the ticket `encrypt` just made on this thread, or else of one it
    /// would make now: how long it is sure to decrypt on every server.
    fn lifetime(&self) -> u32 {
        match ISSUED.take() {
            Some((tag, lifetime)) if tag == self.tag() => lifetime,
            _ => self.shared.ring.lifetime(self.shared.now()),
        }
    }

    /// Seals `plain` under the key that encrypts now; `None` (counted) if none can, or
    /// `plain` is too large for a ticket.
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.encrypt_in(b"", plain)
    }

    /// Opens a ticket with the ring's key of its id, if that key decrypts now; `None`
    /// for anything else, counted by cause.
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.decrypt_in(b"", cipher)
    }
}

impl FleetTicketer {
    /// A ticketer for the resumption context `name`, sharing this one's keys: its
    /// tickets name the context in their associated data, so they open only through a
    /// ticketer of the same context (on any server of the fleet), and the default
    /// context's (this ticketer's own) open in none of them. Give each `ServerConfig`
    /// whose security requirements differ its own, as with
    /// [`SessionCache::context`](crate::SessionCache::context).
    ///
    /// # Errors
    ///
    /// [`ConfigError::ContextName`] for an empty name or one longer than
    /// [`MAX_CONTEXT_NAME`](crate::MAX_CONTEXT_NAME) bytes.
    pub fn context(self: &Arc<Self>, name: &str) -> Result<Arc<ContextTicketer>, ConfigError> {
        if name.is_empty() || name.len() > crate::MAX_CONTEXT_NAME {
            return Err(ConfigError::ContextName { len: name.len() });
        }
        Ok(Arc::new(ContextTicketer {
            ticketer: self.clone(),
            name: Arc::from(name),
        }))
    }

    fn encrypt_in(&self, context: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
        match self.shared.ring.seal(plain, context, self.shared.now()) {
            Some(Sealed { ticket, lifetime }) => {
                ISSUED.set(Some((self.tag(), lifetime)));
                bump(&self.shared.counters.encrypted);
                Some(ticket)
            }
            None => {
                ISSUED.set(None);
                bump(&self.shared.counters.encrypt_failures);
                None
            }
        }
    }

    fn decrypt_in(&self, context: &[u8], cipher: &[u8]) -> Option<Vec<u8>> {
        let now = self.shared.now();
        match split(cipher).and_then(|ticket| self.shared.ring.open(ticket, context, now)) {
            Ok(plain) => {
                bump(&self.shared.counters.decrypted);
                Some(plain)
            }
            Err(why) => {
                self.shared.counters.refused(why);
                None
            }
        }
    }
}

/// A [`FleetTicketer`] for one resumption context: see [`FleetTicketer::context`].
pub struct ContextTicketer {
    ticketer: Arc<FleetTicketer>,
    name: Arc<str>,
}

impl ContextTicketer {
    /// The context's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl ProducesTickets for ContextTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.ticketer.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.ticketer.encrypt_in(self.name.as_bytes(), plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.ticketer.decrypt_in(self.name.as_bytes(), cipher)
    }
}

impl fmt::Debug for ContextTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextTicketer")
            .field("name", &self.name)
            .field("ticketer", &self.ticketer)
            .finish()
    }
}

impl Drop for FleetTicketer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl fmt::Debug for FleetTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetTicketer")
            .field("schedule", &self.shared.ring.schedule)
            .field("held", &self.shared.ring.held())
            .finish_non_exhaustive()
    }
}
