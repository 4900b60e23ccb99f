//! Application-controlled resumption, under `--mode server,no-internal-store`: the cache
//! stores no new session itself; each is held as pending for the connection that made
//! it, and admitted with `add_session` only if that connection's client sends the line
//! `remember me`. Pending sessions of other connections are dropped (and wiped) when
//! their connection ends.
//!
//! rustls calls the store's `put` inside the handshake, on the connection's own task, so
//! `on_new_session` ([`hold_pending`]) parks each session in a task-local list that
//! [`Admission::scope`] gives every connection.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls_session_cache::{Session, SessionCache};
use tracing::{debug, info};

/// The line a client sends, under `no-internal-store`, for its sessions to be admitted.
const ADMIT_LINE: &[u8] = b"remember me";

/// Where admitted sessions go: the cache, or the fleet (the cache and Redis). A session
/// goes into the resumption context it was made in.
pub(crate) type Admit = Arc<dyn Fn(Session) -> bool + Send + Sync>;

tokio::task_local! {
    /// New sessions made on this connection that wait for the admission policy.
    static PENDING: RefCell<Vec<Session>>;
}

/// `on_new_session` under `NO_INTERNAL_STORE`: the session is parked with its connection.
pub(crate) fn hold_pending(session: &Session) {
    let held = PENDING.try_with(|pending| pending.borrow_mut().push(session.clone()));
    if held.is_err() {
        debug!("new session outside a connection; not held");
    }
}

/// The admission policy, shared by every connection.
#[derive(Clone)]
pub(crate) struct Admission {
    admit: Admit,
}

impl Admission {
    /// Admits into `cache`.
    pub(crate) fn into_cache(cache: Arc<SessionCache>) -> Self {
        Self::new(Arc::new(move |session| cache.add_session(session)))
    }

    pub(crate) fn new(admit: Admit) -> Self {
        Self { admit }
    }

    /// Runs one connection with its own list of pending sessions.
    pub(crate) fn scope<F: Future>(connection: F) -> impl Future<Output = F::Output> {
        PENDING.scope(RefCell::default(), connection)
    }

    /// A watch over what one connection's client sends.
    pub(crate) fn watch(&self, peer: SocketAddr) -> Watch {
        Watch {
            admit: self.admit.clone(),
            peer,
            line: Vec::new(),
            overlong: false,
        }
    }
}

/// Watches a connection's bytes for a line that is exactly [`ADMIT_LINE`] (a trailing
/// `\r` allowed), holding at most one line's worth of them.
pub(crate) struct Watch {
    admit: Admit,
    peer: SocketAddr,
    line: Vec<u8>,
    overlong: bool,
}

impl Watch {
    /// Feeds what the client sent; on an admit line, admits the connection's pending
    /// sessions.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        let mut seen = false;
        for &byte in bytes {
            if byte == b'\n' {
                let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
                seen |= !self.overlong && line == ADMIT_LINE;
                self.line.clear();
                self.overlong = false;
            } else if self.line.len() > ADMIT_LINE.len() {
                self.overlong = true;
            } else {
                self.line.push(byte);
            }
        }
        if seen {
            self.admit_pending();
        }
    }

    fn admit_pending(&self) {
        let pending = PENDING
            .try_with(|pending| std::mem::take(&mut *pending.borrow_mut()))
            .unwrap_or_default();
        let admitted = pending
            .into_iter()
            .filter(|session| (self.admit)(session.clone()))
            .count();
        info!(peer = %self.peer, admitted, "client asked to be remembered");
    }
}
