//! Resumption contexts through the fleet: [`FleetContext`], the fleet's view for one
//! `ServerConfig`, as [`ContextView`](crate::ContextView) is L1's.
//!
//! A context keeps its sessions apart everywhere a session can be: in L1 (its own
//! namespace of the map), in Redis (its name is part of every key,
//! `PREFIX:hex(context):hex(id)`, and the key is bound into each sealed entry's
//! associated data, so an entry copied under another context's key fails to open), in
//! the write queue, and in the claims a connection's handshake may redeem (won for one
//! context, redeemable through that context's store only). Fleet tickets
//! ([`FleetTicketer::context`](super::FleetTicketer::context)) name their context in
//! their associated data the same way.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::StoresServerSessions;

use super::{Fleet, FleetAcceptor, FleetError};
use crate::error::ConfigError;
use crate::session::{Context, Session};

/// Which resumption context an operation is in: L1's number for it, and its name (none
/// for the default context).
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope {
    pub(crate) context: Context,
    pub(crate) name: Option<Arc<str>>,
}

/// A [`Fleet`]'s session store for one resumption context: sessions stored through it
/// resume only through a view of the same context, on this server or any other of the
/// fleet. Made by [`Fleet::context`]; take its connections with
/// [`acceptor`](Self::acceptor).
///
/// ```no_run
/// use std::sync::Arc;
/// # use rustls_session_cache::fleet::Fleet;
///
/// # async fn run(fleet: Arc<Fleet>, public: rustls::ServerConfig, admin: rustls::ServerConfig)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// // The admin port requires client certificates: its sessions must never be resumed
/// // through the public port's config, nor the other way round.
/// let public = fleet.context("public")?.acceptor(Arc::new(public));
/// let admin = fleet.context("admin")?.acceptor(Arc::new(admin));
/// # Ok(()) }
/// ```
pub struct FleetContext {
    fleet: Arc<Fleet>,
    scope: Scope,
}

impl Fleet {
    /// The fleet's view for the resumption context `name` (see
    /// [`SessionCache::context`](crate::SessionCache::context), whose rules for names it
    /// follows). Servers of a fleet that give a context the same name share its
    /// sessions.
    ///
    /// # Errors
    ///
    /// As [`SessionCache::context`](crate::SessionCache::context).
    pub fn context(self: &Arc<Self>, name: &str) -> Result<Arc<FleetContext>, ConfigError> {
        let (context, name) = self.l1.contexts.register(name)?;
        Ok(Arc::new(FleetContext {
            fleet: self.clone(),
            scope: Scope {
                context,
                name: Some(name),
            },
        }))
    }
}

impl FleetContext {
    /// The context's name.
    pub fn name(&self) -> &str {
        self.scope.name.as_deref().unwrap_or_default()
    }

    /// The fleet.
    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }

    /// An acceptor for connections served with `config`, whose session store it makes
    /// this view (on a copy of `config`, if its store is another).
    pub fn acceptor(self: &Arc<Self>, config: Arc<ServerConfig>) -> FleetAcceptor {
        FleetAcceptor::new(self.fleet.clone(), self.scope.clone(), self.clone(), config)
    }

    /// [`Fleet::add_session`], into this context, whatever context `session` names.
    pub fn add_session(&self, session: Session) -> bool {
        self.fleet.add_session_in(&self.scope, session)
    }

    /// [`Fleet::remove_session`], in this context.
    ///
    /// # Errors
    ///
    /// As [`Fleet::remove_session`].
    pub async fn remove_session(&self, id: &[u8]) -> Result<bool, FleetError> {
        self.fleet.remove_session_in(&self.scope, id).await
    }
}

impl StoresServerSessions for FleetContext {
    /// [`Fleet`]'s `put`, into this context.
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.fleet.put_in(&self.scope, key, value)
    }

    /// [`Fleet`]'s `get`, in this context only.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.fleet.l1.get_in(self.scope.context, key)
    }

    /// [`Fleet`]'s `take`, in this context only: a claim won for another context is
    /// not redeemed here.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.fleet.take_in(&self.scope, key)
    }

    fn can_cache(&self) -> bool {
        self.fleet.l1.can_cache()
    }
}

impl core::fmt::Debug for FleetContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FleetContext")
            .field("name", &self.name())
            .field("fleet", &self.fleet)
            .finish()
    }
}
