//! Claim or fetch: what the acceptor does with a ClientHello's offer before rustls sees
//! it, and what it did ([`Prepared`]).
//!
//! - A TLS 1.2 session id that L1 lacks is fetched with `GET` into L1 (TLS 1.2 sessions
//!   are multi-use: nothing to claim).
//! - Each TLS 1.3 ticket offered (up to the cap) is *claimed*: locally, by cancelling
//!   its write if it was issued here and not yet sent; else in Redis with `GETDEL`,
//!   after the write of the same ticket, if one is being sent, has landed. A ticket
//!   claimed goes into the connection's [`Claims`], and nowhere else. A claim lost or
//!   never made leaves nothing to resume with.
//!
//! Everything that goes to Redis goes in one pipeline, bounded by the fetch deadline and
//! by the cap on connections waiting at once. A slow, absent or shedding Redis makes the
//! handshake full; it never fails it, and never delays it past the deadline.

use tokio::time::{Instant, timeout_at};

use super::Fleet;
use super::claims::Claims;
use super::client_hello::{Parsed, ResumptionOffer, parse};
use super::context::Scope;
use super::store::{Read, Reply};
use super::write_behind::Pending;
use crate::session::{Id, Session};
use crate::stats::{add, bump};

/// The longest identity claimed; longer ones are shed. rustls's tickets are 32 bytes.
const MAX_IDENTITY_LEN: usize = 255;

/// What the fleet did for one connection before its handshake.
///
/// ```no_run
/// # async fn serve(
/// #     acceptor: rustls_session_cache::fleet::FleetAcceptor,
/// #     tcp: tokio::net::TcpStream,
/// # ) -> std::io::Result<()> {
/// let tls = acceptor.accept(tcp).await?;
/// let prepared = tls.get_ref().0.prepared();
/// println!("claimed {} ticket(s), fetched {}", prepared.claimed, prepared.fetched);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Prepared {
    /// Whether the acceptor read the offer from the ClientHello. `false` when it could
    /// not follow the hello (then nothing was fetched or claimed), or the mode had it not
    /// look (`NO_INTERNAL_LOOKUP`).
    pub followed: bool,
    /// TLS 1.2 sessions fetched from Redis into L1.
    pub fetched: usize,
    /// TLS 1.3 tickets claimed, in Redis or locally: at most this many can resume.
    pub claimed: usize,
    /// Of those, the ones claimed locally, by cancelling their write.
    pub claimed_locally: usize,
    /// TLS 1.3 tickets not found in Redis: used elsewhere already, expired, or never
    /// written.
    pub claims_lost: usize,
    /// Identities not looked up: over the cap, too long, or with the whole lookup shed.
    pub shed: usize,
    /// Whether Redis did not answer in time (or at all).
    pub timed_out: bool,
}

/// What each read in the pipeline was for.
enum Asked {
    /// A TLS 1.2 session, for L1.
    Session(Vec<u8>),
    /// A TLS 1.3 ticket, to claim.
    Ticket(Vec<u8>),
}

impl Fleet {
    /// The offer in the hello rustls read, if the acceptor can follow it: the recorded
    /// bytes parse, and their cipher suites are the ones rustls parsed.
    pub(crate) fn read_offer(
        &self,
        recorded: Option<&[u8]>,
        rustls_suites: &[u16],
    ) -> Option<ResumptionOffer> {
        let why = match recorded.map(parse) {
            Some(Parsed::Complete(offer)) if offer.cipher_suites == rustls_suites => {
                return Some(offer);
            }
            Some(Parsed::Complete(_)) => "the offer read is not the one rustls parsed",
            Some(Parsed::Invalid(why)) => why,
            Some(_) => "the ClientHello read is incomplete",
            None => "the ClientHello is larger than the acceptor keeps",
        };
        bump(&self.counters.hellos_unparsed);
        tracing::debug!(why, "ClientHello not followed; its handshake will be full");
        None
    }

    /// Claims the tickets and fetches the session `offer` names, for a server that will
    /// negotiate TLS 1.3 with a client offering it if `tls13`, and whose config has a
    /// ticketer if `ticketer`: rustls then resumes TLS 1.3 from tickets only (nothing to
    /// claim), and a TLS 1.2 hello that carries a ticket from the ticket only (nothing
    /// to fetch).
    pub(crate) async fn claim_or_fetch(
        &self,
        scope: &Scope,
        offer: ResumptionOffer,
        tls13: bool,
        ticketer: bool,
    ) -> (Claims, Prepared) {
        let mut claims = Claims::new(self.owner(scope));
        let context = scope.name.as_deref();
        let mut report = Prepared {
            followed: true,
            ..Prepared::default()
        };
        let will_be_tls13 = offer.offers_tls13 && tls13;
        let mut reads = Vec::new();
        let mut asked = Vec::new();
        // A TLS 1.3 client sends a random legacy session id; it names no session. Nor
        // does a TLS 1.2 one that sends a ticket to a server with a ticketer.
        if let Some(id) = offer.session_id
            && !will_be_tls13
            && !(ticketer && offer.offers_ticket)
            && !self.l1.contains_in(scope.context, &id)
        {
            reads.push(Read::Get(self.store.key(context, &id)));
            asked.push(Asked::Session(id));
        }
        // Tickets whose write is being sent: their `GETDEL` waits for it to land.
        let mut in_flight = Vec::new();
        let identities = if will_be_tls13 && !ticketer {
            offer.identities
        } else {
            Vec::new()
        };
        for identity in identities {
            if report.claimed + asked.len() >= self.config.max_identities
                || identity.len() > MAX_IDENTITY_LEN
            {
                report.shed += 1;
                continue;
            }
            let l1_key = Id::new(scope.context, &identity);
            let pending = self.writes.cancel(l1_key.key());
            if pending.cancelled.is_some() {
                bump(&self.counters.writes_cancelled);
            }
            match pending {
                // Issued here and never sent: no other server can have it.
                Pending {
                    cancelled: Some(ticket),
                    sending: false,
                } => {
                    if !self.expired(&ticket) {
                        bump(&self.counters.claims_local);
                        report.claimed += 1;
                        report.claimed_locally += 1;
                        claims.won(ticket);
                    }
                }
                // A write of it may land in Redis: claim it there, after that write.
                Pending { sending, .. } => {
                    if sending {
                        in_flight.push(l1_key);
                    }
                    reads.push(Read::GetDel(self.store.key(context, &identity)));
                    asked.push(Asked::Ticket(identity));
                }
            }
        }
        add(&self.counters.identities_shed, report.shed as u64);
        if reads.is_empty() {
            return (claims, report);
        }
        let Ok(_permit) = self.in_flight.try_acquire() else {
            bump(&self.counters.fetches_shed);
            report.shed += asked.len();
            return (claims, report);
        };
        let deadline = Instant::now() + self.config.deadline;
        let round_trip = async {
            for id in &in_flight {
                self.writes.landed(id.key()).await;
            }
            // Claims wait for replicas at most half of what is left of the deadline,
            // leaving the rest for the reply to come back.
            let left = deadline.saturating_duration_since(Instant::now());
            self.store.read(&reads, left / 2).await
        };
        let started = Instant::now();
        let answer = timeout_at(deadline, round_trip).await;
        self.counters.round_trips.record(started.elapsed());
        let Ok((replies, error)) = answer else {
            bump(&self.counters.fetch_timeouts);
            report.timed_out = true;
            return (claims, report);
        };
        if let Some(error) = error {
            self.counters
                .redis_trouble("session lookup in Redis failed", &error);
            report.timed_out = true;
        }
        for (asked, reply) in asked.into_iter().zip(replies) {
            match (asked, reply) {
                (_, Reply::Failed) => {}
                (Asked::Session(id), reply) => {
                    if let Some(session) = self.open(scope, &id, reply) {
                        self.l1.insert(session, false);
                        report.fetched += 1;
                    }
                }
                (Asked::Ticket(id), reply) => {
                    match reply {
                        Reply::Found(sealed) => {
                            if let Some(ticket) = self.open(scope, &id, Reply::Found(sealed)) {
                                bump(&self.counters.claims_won);
                                report.claimed += 1;
                                claims.won(ticket);
                            }
                        }
                        // Deleted in Redis, but not known to be deleted on enough
                        // replicas: it does not count, and resumes nowhere.
                        Reply::Unreplicated => bump(&self.counters.claims_unreplicated),
                        _ => {
                            bump(&self.counters.claims_lost);
                            report.claims_lost += 1;
                        }
                    }
                }
            }
        }
        (claims, report)
    }

    /// Opens a sealed session fetched for `id` in `scope`. `None`, counted, if nothing
    /// was found, it does not authenticate (another key, or another context's), or it
    /// has expired.
    fn open(&self, scope: &Scope, id: &[u8], reply: Reply) -> Option<Session> {
        let counters = &self.counters;
        let Reply::Found(sealed) = reply else {
            bump(&counters.l2_misses);
            return None;
        };
        let redis_key = self.store.key(scope.name.as_deref(), id);
        let Some(mut session) = self.keys.open(&redis_key, id, &sealed) else {
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
        session.id.set_context(scope.context);
        session.context = scope.name.clone();
        Some(session)
    }

    fn expired(&self, session: &Session) -> bool {
        session
            .entry
            .stamp
            .is_expired_at(self.l1.clock.now_nanos(), self.l1.timeout_nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionCache;
    use crate::fleet::FleetKeys;

    /// A ClientHello offering one cipher suite, `0x1301`, and nothing else.
    fn hello() -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7; 32]);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        let mut message = vec![1, 0, 0, body.len() as u8];
        message.extend(body);
        let mut record = vec![22, 3, 1, 0, message.len() as u8];
        record.extend(message);
        record
    }

    #[tokio::test]
    async fn an_offer_is_followed_only_if_it_parses_to_what_rustls_parsed() {
        let fleet = Fleet::builder(SessionCache::new(16))
            .redis_url("redis://127.0.0.1:1")
            .keys(FleetKeys::new([[1; 32]]).unwrap())
            .build()
            .unwrap();
        let hello = hello();
        assert!(fleet.read_offer(Some(&hello), &[0x1301]).is_some());
        assert_eq!(fleet.stats().hellos_unparsed, 0);
        for (recorded, suites) in [
            (Some(&hello[..]), &[0x1302u16][..]), // another hello than rustls's
            (Some(&hello[..]), &[0x1301, 0x1302]),
            (Some(&hello[..hello.len() - 1]), &[0x1301]), // incomplete
            (Some(&[23, 3, 3, 0, 1, 0][..]), &[0x1301]),  // not a hello
            (None, &[0x1301]),                            // not all kept
        ] {
            assert!(
                fleet.read_offer(recorded, suites).is_none(),
                "{recorded:?} {suites:?}"
            );
        }
        assert_eq!(fleet.stats().hellos_unparsed, 5);
    }
}
