//! Claims: the only way a TLS 1.3 ticket resumes through a [`Fleet`](super::Fleet).
//!
//! A ticket is single-use across the fleet because resuming it takes a *claim*, and a
//! claim can be won at most once:
//! - in Redis, by the `GETDEL` that returned the ticket (Redis runs it atomically, so of
//!   all the servers asking, one gets the value and the others nothing);
//! - or locally, for a ticket this server issued whose write to Redis had not been sent:
//!   the acceptor cancels the write, so no other server can ever see the ticket.
//!
//! The acceptor gathers what it won into [`Claims`] and lends them to rustls only while
//! rustls processes that connection's ClientHello ([`lend`]). `Fleet::take`, which
//! rustls calls from there, hands out a ticket only by [`redeem`]ing a claim: each claim
//! once, on the thread and in the moment it was lent for. So a ticket resumes only where
//! its claim was won, and once; every other way in finds no claim and gets a full
//! handshake:
//! - a connection accepted without the fleet's acceptor (its `take` sees no claims);
//! - a hello the acceptor could not follow, or whose offer did not match what rustls
//!   parsed (nothing was claimed);
//! - a claim lost, shed, timed out, or not attempted because Redis is down.
//!
//! Claims rustls did not redeem (it tried another identity first, or negotiated TLS 1.2)
//! are dropped, and their tickets with them: they were taken out of Redis, and resume
//! nowhere. rustls does the same with the tickets it takes before checking binders.

use std::cell::RefCell;

use crate::session::Session;

tokio::task_local! {
    /// The claims lent to the ClientHello being processed on this thread, if any.
    static LENT: RefCell<Claims>;
}

/// Tickets won for one connection, each redeemable once.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    /// Which fleet won them: a claim is redeemed only through the fleet that made it.
    fleet: u64,
    won: Vec<Session>,
}

impl Claims {
    pub(crate) fn new(fleet: u64) -> Self {
        Self {
            fleet,
            won: Vec::new(),
        }
    }

    /// Adds a ticket whose claim was won (in Redis, or by cancelling its write).
    pub(crate) fn won(&mut self, ticket: Session) {
        self.won.push(ticket);
    }
}

/// Runs `f` (rustls processing a ClientHello) with `claims` lent to it, and returns what
/// `f` returned with the claims it did not redeem.
pub(crate) fn lend<R>(claims: Claims, f: impl FnOnce() -> R) -> (R, Claims) {
    LENT.sync_scope(RefCell::new(claims), || {
        let result = f();
        let left = LENT.with(|lent| std::mem::take(&mut *lent.borrow_mut()));
        (result, left)
    })
}

/// The ticket `id` of fleet `fleet`, if a claim for it is lent to this thread now and
/// was not redeemed before. Removes the claim: one claim, one resumption.
pub(crate) fn redeem(fleet: u64, id: &[u8]) -> Option<Session> {
    LENT.try_with(|lent| {
        let mut lent = lent.try_borrow_mut().ok()?;
        if lent.fleet != fleet {
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

    #[test]
    fn a_claim_is_redeemed_once_and_only_while_lent() {
        assert!(redeem(1, &[1; 32]).is_none(), "nothing lent");
        let mut claims = Claims::new(1);
        claims.won(ticket(1));
        claims.won(ticket(2));
        let ((first, again, other_fleet, unknown), left) = lend(claims, || {
            (
                redeem(1, &[1; 32]).map(|t| t.value().to_vec()),
                redeem(1, &[1; 32]),
                redeem(2, &[2; 32]),
                redeem(1, &[3; 32]),
            )
        });
        assert_eq!(first, Some(vec![1; 8]));
        assert!(again.is_none(), "one claim, one resumption");
        assert!(
            other_fleet.is_none(),
            "claims belong to the fleet that won them"
        );
        assert!(unknown.is_none());
        assert_eq!(left.won.len(), 1, "the unredeemed claim comes back");
        assert_eq!(left.won[0].id(), &[2; 32]);
        assert!(redeem(1, &[2; 32]).is_none(), "nothing lent any more");
    }

    #[test]
    fn claims_lent_on_one_thread_are_not_seen_on_another() {
        let mut claims = Claims::new(7);
        claims.won(ticket(9));
        let (elsewhere, left) = lend(claims, || {
            std::thread::spawn(|| redeem(7, &[9; 32]).is_some())
                .join()
                .unwrap()
        });
        assert!(!elsewhere);
        assert_eq!(left.won.len(), 1);
    }
}
