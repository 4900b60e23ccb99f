//! Claims: the only way a TLS 1.3 ticket resumes through a [`Fleet`](super::Fleet).
//!
//! A ticket is single-use across the fleet because resuming it takes a *claim*, and a
//! claim can be won at most once:
//! - in Redis, by the `GETDEL` that returned the ticket (Redis runs it atomically, so of
//!   all the servers asking, one gets the value and the others nothing);
//! - or locally, for a ticket this server issued whose write to Redis had not been sent:
//!   the acceptor cancels the write, so no other server can ever see the ticket.
//!
//! The acceptor gathers what it won into [`Claims`] and lends them to that connection's
//! handshake only ([`lend`]: a tokio task-local, set while the handshake future runs).
//! `Fleet::take`, which rustls calls from there, hands out a ticket only by
//! [`redeem`]ing a claim: each claim once, within the handshake it was lent to. So a ticket resumes only where
//! its claim was won, and once; every other way in finds no claim and gets a full
//! handshake:
//! - a connection accepted without the fleet's acceptor (its `take` sees no claims);
//! - a hello the acceptor could not follow, or whose offer did not match what rustls
//!   parsed (nothing was claimed);
//! - a claim lost, shed, timed out, or not attempted because Redis is down.
//!
//! Claims rustls did not redeem (it tried another identity first, or negotiated TLS 1.2)
//! are dropped with the handshake, and their tickets with them: they were taken out of Redis, and resume
//! nowhere. rustls does the same with the tickets it takes before checking binders.

use std::cell::RefCell;
use std::future::Future;

use rustls::ProtocolVersion;

use crate::session::Session;

tokio::task_local! {
    /// The claims lent to the handshake this task is running, if any.
    static LENT: RefCell<Claims>;
}

/// Whose claims these are: a fleet's number, and its resumption context's.
pub(crate) type Owner = (u64, u8);

/// Tickets won for one connection, each redeemable once; and what rustls negotiated.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    /// Which fleet, and which of its resumption contexts, won them: a claim is redeemed
    /// only through the store it was won for.
    owner: Owner,
    won: Vec<Session>,
    /// The TLS version rustls chose for the connection, once it has.
    version: Option<ProtocolVersion>,
}

impl Claims {
    pub(crate) fn new(owner: Owner) -> Self {
        Self {
            owner,
            ..Self::default()
        }
    }

    /// Adds a ticket whose claim was won (in Redis, or by cancelling its write).
    pub(crate) fn won(&mut self, ticket: Session) {
        self.won.push(ticket);
    }
}

/// Runs `handshake` (rustls processing a ClientHello, and a second one after a
/// HelloRetryRequest, and finishing the handshake) with `claims` lent to it. The claims
/// it does not redeem are dropped with it.
pub(crate) async fn lend<F: Future>(claims: Claims, handshake: F) -> F::Output {
    LENT.scope(RefCell::new(claims), handshake).await
}

/// Notes the version rustls negotiated for the handshake the claims are lent to.
pub(crate) fn negotiated(version: Option<ProtocolVersion>) {
    let _ = LENT.try_with(|lent| {
        if let Ok(mut lent) = lent.try_borrow_mut() {
            lent.version = version;
        }
    });
}

/// The version rustls negotiated for the handshake `owner` lent claims to on this task,
/// if it is running one.
pub(crate) fn version(owner: Owner) -> Option<ProtocolVersion> {
    LENT.try_with(|lent| {
        let lent = lent.try_borrow().ok()?;
        (lent.owner == owner).then_some(lent.version).flatten()
    })
    .ok()
    .flatten()
}

/// The ticket `id` of `owner`, if a claim for it is lent to the handshake running on
/// this task and was not redeemed before. Removes the claim: one claim, one resumption.
pub(crate) fn redeem(owner: Owner, id: &[u8]) -> Option<Session> {
    LENT.try_with(|lent| {
        let mut lent = lent.try_borrow_mut().ok()?;
        if lent.owner != owner {
            return None;
        }
        let index = lent.won.iter().position(|ticket| ticket.id() == id)?;
        Some(lent.won.swap_remove(index))
    })
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(id: u8) -> Session {
        Session::new(vec![id; 32], vec![id; 8])
    }

    #[tokio::test]
    async fn a_claim_is_redeemed_once_and_only_while_lent() {
        assert!(redeem((1, 0), &[1; 32]).is_none(), "nothing lent");
        let mut claims = Claims::new((1, 0));
        claims.won(ticket(1));
        claims.won(ticket(2));
        let (first, again, other_fleet, unknown, across_await) = lend(claims, async {
            let first = redeem((1, 0), &[1; 32]).map(|t| t.value().to_vec());
            let again = redeem((1, 0), &[1; 32]);
            let other_fleet = redeem((2, 0), &[2; 32]);
            let other_context = redeem((1, 1), &[2; 32]);
            assert!(
                other_context.is_none(),
                "nor through another of its contexts"
            );
            let unknown = redeem((1, 0), &[3; 32]);
            tokio::task::yield_now().await; // a later poll: a second ClientHello, after HRR
            let across_await = redeem((1, 0), &[2; 32]).is_some();
            (first, again, other_fleet, unknown, across_await)
        })
        .await;
        assert_eq!(first, Some(vec![1; 8]));
        assert!(again.is_none(), "one claim, one resumption");
        assert!(
            other_fleet.is_none(),
            "claims belong to the fleet that won them"
        );
        assert!(unknown.is_none());
        assert!(across_await, "lent for the whole handshake");
        assert!(redeem((1, 0), &[2; 32]).is_none(), "nothing lent any more");
    }

    #[tokio::test]
    async fn claims_lent_to_one_task_are_not_seen_by_another() {
        let mut claims = Claims::new((7, 0));
        claims.won(ticket(9));
        let elsewhere = lend(claims, async {
            let other = tokio::spawn(async { redeem((7, 0), &[9; 32]).is_some() });
            let thread = std::thread::spawn(|| redeem((7, 0), &[9; 32]).is_some());
            (other.await.unwrap(), thread.join().unwrap())
        })
        .await;
        assert_eq!(elsewhere, (false, false));
    }

    #[tokio::test]
    async fn the_negotiated_version_is_seen_only_by_its_fleet() {
        assert_eq!(version((3, 0)), None);
        let seen = lend(Claims::new((3, 0)), async {
            negotiated(Some(ProtocolVersion::TLSv1_3));
            (version((3, 0)), version((4, 0)), version((3, 1)))
        })
        .await;
        assert_eq!(seen, (Some(ProtocolVersion::TLSv1_3), None, None));
    }
}
