//! Before the handshake: peek at the ClientHello without consuming it, and bring into
//! L1 what it offers to resume, under a deadline.
//!
//! - A TLS 1.2 session id that L1 lacks is fetched with `GET` (sessions are multi-use).
//! - Every TLS 1.3 ticket offered is *claimed* with `GETDEL`, even one L1 holds: only a
//!   claim won in Redis lets it resume here. One lost (already claimed elsewhere, or
//!   never written), not attempted (over the cap, or too many prefetches in flight), or
//!   unanswered (Redis slow, down, or partitioned away) is removed from L1 first, so the
//!   handshake is full. That is what keeps tickets single-use across the fleet.
//!
//! rustls then runs as usual, and finds in L1 what was fetched.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout, timeout_at};

use super::Fleet;
use super::client_hello::{MAX_CLIENT_HELLO, Parsed, ResumptionOffer, parse};
use crate::session::Session;
use crate::stats::{add, bump};

/// How much is peeked at most: a ClientHello of [`MAX_CLIENT_HELLO`] bytes, with room for
/// the headers of the records it may be split into.
const MAX_PEEK: usize = MAX_CLIENT_HELLO + 4 * 1024;

/// How long to wait before peeking again when no new bytes have come.
const PEEK_BACKOFF: Duration = Duration::from_millis(1);

/// The longest identity claimed; longer ones are shed. rustls's tickets are 32 bytes.
const MAX_IDENTITY_LEN: usize = 255;

/// What one [`Fleet::prefetch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Prefetch {
    /// Whether a whole ClientHello was read.
    pub client_hello: bool,
    /// Sessions fetched from Redis into L1 (a TLS 1.2 session, or TLS 1.3 tickets claimed).
    pub fetched: usize,
    /// TLS 1.3 tickets L1 held whose claim was lost: removed from L1.
    pub claims_lost: usize,
    /// Identities not looked up: over the cap, too long, or with the whole prefetch shed.
    pub shed: usize,
    /// Whether Redis did not answer in time (or at all).
    pub timed_out: bool,
}

impl Fleet {
    /// Reads the ClientHello waiting on `stream` (peeking: the bytes stay for rustls) and
    /// brings into L1, from Redis, the sessions it offers to resume. Call it with every
    /// accepted connection, before the TLS handshake.
    ///
    /// It waits for the ClientHello for up to the configured hello timeout, then for
    /// Redis for up to the prefetch deadline. It never fails: whatever goes wrong (no
    /// ClientHello, garbage, a slow or absent Redis) leaves the handshake to be a full
    /// one, which rustls then runs as usual.
    ///
    /// ```no_run
    /// # async fn serve(fleet: std::sync::Arc<rustls_session_cache::fleet::Fleet>,
    /// #     acceptor: tokio_rustls::TlsAcceptor, listener: tokio::net::TcpListener)
    /// #     -> std::io::Result<()> {
    /// let (tcp, _) = listener.accept().await?;
    /// fleet.prefetch(&tcp).await;
    /// let tls = acceptor.accept(tcp).await?;
    /// # Ok(()) }
    /// ```
    pub async fn prefetch(&self, stream: &TcpStream) -> Prefetch {
        match self.peek_offer(stream).await {
            Some(offer) => self.fetch(offer).await,
            None => Prefetch::default(),
        }
    }

    /// Peeks until a whole ClientHello is there, or it cannot be one, or time is up.
    async fn peek_offer(&self, stream: &TcpStream) -> Option<ResumptionOffer> {
        let deadline = Instant::now() + self.config.hello_timeout;
        let mut buf = vec![0; MAX_PEEK];
        let mut seen = 0;
        loop {
            let n = timeout_at(deadline, stream.peek(&mut buf))
                .await
                .ok()?
                .ok()?;
            match parse(buf.get(..n)?) {
                Parsed::Complete(offer) => return Some(offer),
                Parsed::Invalid(why) => {
                    tracing::debug!(why, "no ClientHello to prefetch for");
                    return None;
                }
                Parsed::Incomplete if n == 0 || n == buf.len() => return None,
                Parsed::Incomplete => {}
            }
            if n == seen {
                // Peeking returns at once while bytes are waiting: rather than spin until
                // the rest of a ClientHello split over segments arrives, wait a little.
                timeout_at(deadline, sleep(PEEK_BACKOFF)).await.ok()?;
            }
            seen = n;
        }
    }

    async fn fetch(&self, offer: ResumptionOffer) -> Prefetch {
        let mut report = Prefetch {
            client_hello: true,
            ..Prefetch::default()
        };
        let l1 = &self.l1;
        // A TLS 1.3 client sends a random legacy session id; it names no session.
        let will_be_tls13 = offer.offers_tls13 && self.config.tls13;
        let tls12_id = offer
            .session_id
            .filter(|id| !will_be_tls13 && !l1.contains(id));
        // A server that will not speak TLS 1.3 resumes no ticket: claiming one would only
        // use it up.
        let mut claims = Vec::new();
        if will_be_tls13 {
            for identity in offer.identities {
                if claims.len() < self.config.max_identities && identity.len() <= MAX_IDENTITY_LEN {
                    claims.push(identity);
                } else {
                    self.refuse(&identity);
                    report.shed += 1;
                }
            }
        }
        add(&self.l2.counters.identities_shed, report.shed as u64);
        if tls12_id.is_none() && claims.is_empty() {
            return report;
        }
        let Ok(_permit) = self.in_flight.try_acquire() else {
            bump(&self.l2.counters.prefetches_shed);
            claims.iter().for_each(|id| self.refuse(id));
            report.shed += claims.len();
            return report;
        };

        let mut pipe = redis::pipe();
        if let Some(id) = &tls12_id {
            pipe.cmd("GET").arg(self.l2.key(id));
        }
        for id in &claims {
            pipe.cmd("GETDEL").arg(self.l2.key(id));
        }
        let mut conn = self.l2.conn.clone();
        let query = pipe.query_async::<Vec<Option<Vec<u8>>>>(&mut conn);
        let replies = match timeout(self.config.deadline, query).await {
            Ok(Ok(replies)) => replies,
            Ok(Err(error)) => {
                self.l2.warn("prefetch from Redis failed", &error);
                claims.iter().for_each(|id| self.refuse(id));
                report.timed_out = true;
                return report;
            }
            Err(_) => {
                bump(&self.l2.counters.prefetch_timeouts);
                claims.iter().for_each(|id| self.refuse(id));
                report.timed_out = true;
                return report;
            }
        };

        let mut replies = replies.into_iter();
        if let Some(id) = tls12_id {
            let found = replies.next().flatten();
            report.fetched += usize::from(self.admit(&id, found).is_some());
        }
        for id in claims {
            let held = l1.contains(&id);
            match replies.next().flatten() {
                Some(sealed) => match self.admit(&id, Some(sealed)) {
                    Some(()) => {
                        bump(&self.l2.counters.claims_won);
                        report.fetched += 1;
                    }
                    None => self.refuse(&id),
                },
                None if held => {
                    bump(&self.l2.counters.claims_lost);
                    report.claims_lost += 1;
                    self.refuse(&id);
                }
                None => bump(&self.l2.counters.l2_misses),
            }
        }
        report
    }

    /// Opens a sealed session fetched for `id` and puts it in L1. `None`, counted, if
    /// nothing was found, it does not authenticate, or it has expired.
    fn admit(&self, id: &[u8], sealed: Option<Vec<u8>>) -> Option<()> {
        let counters = &self.l2.counters;
        let Some(sealed) = sealed else {
            bump(&counters.l2_misses);
            return None;
        };
        let Some(session) = self.l2.keys.open(&self.l2.key(id), id, &sealed) else {
            bump(&counters.decrypt_failures);
            bump(&counters.l2_misses);
            tracing::debug!("a session from Redis failed to authenticate; treated as a miss");
            return None;
        };
        if self.expired(&session) {
            bump(&counters.l2_misses);
            return None;
        }
        bump(&counters.l2_hits);
        self.l1.insert(session, false);
        Some(())
    }

    fn expired(&self, session: &Session) -> bool {
        session
            .entry
            .stamp
            .is_expired_at(self.l1.clock.now_nanos(), self.l1.timeout_nanos())
    }

    /// Makes sure L1 cannot resume a TLS 1.3 ticket whose claim was not won.
    fn refuse(&self, id: &[u8]) {
        self.l1.remove_session(id);
    }
}
