//! Resumption contexts, OpenSSL's `sid_ctx`: one cache behind several `ServerConfig`s,
//! and no session resuming under a config other than the one it was made under.
//!
//! rustls checks a resumed session's cipher suite and SNI, but not the config's
//! client-authentication policy: it copies the stored client certificate chain into the
//! resumed connection. So a session made under a config that asks for no client
//! certificate, offered to one that requires them, would resume as if the client had
//! authenticated (nginx's CVE-2025-23419 is this, across virtual servers). Give each
//! config whose security requirements differ its own [`ContextView`] of one cache:
//! sessions stored through a view are found only through a view of the same context.
//!
//! Each session is keyed by its context's number, one byte, then its id: the contexts are
//! separate namespaces of one map, whatever their names (a name that is a prefix of
//! another's included), while sharing its capacity, byte budget, eviction order, expiry
//! and statistics. The cache's own `put`/`get`/`take` and its `add_session` and friends
//! are the default context, a context like any other.

use core::fmt;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::server::StoresServerSessions;

use crate::cache::SessionCache;
use crate::error::ConfigError;
use crate::session::{Context, Session};

/// The longest context name, in bytes.
pub const MAX_CONTEXT_NAME: usize = 64;

/// The most named contexts one cache holds (besides the default).
pub const MAX_CONTEXTS: usize = 255;

/// A view of a [`SessionCache`] for one resumption context: a session store for one
/// `ServerConfig`, from which only sessions stored through a view of the same context
/// resume. Made by [`SessionCache::context`].
///
/// ```
/// use rustls::server::StoresServerSessions;
/// use rustls_session_cache::SessionCache;
///
/// let cache = SessionCache::new(1024);
/// let public = cache.context("public")?;
/// let admin = cache.context("admin")?; // say, a config that requires client certificates
/// assert!(public.put(vec![1; 32], b"encoded session".to_vec()));
/// assert_eq!(admin.get(&[1; 32]), None, "not across contexts");
/// assert_eq!(cache.get(&[1; 32]), None, "nor into the default one");
/// assert!(public.get(&[1; 32]).is_some());
/// assert_eq!(cache.len(), 1, "one cache: capacity and statistics are shared");
/// # Ok::<(), rustls_session_cache::ConfigError>(())
/// ```
pub struct ContextView {
    cache: Arc<SessionCache>,
    context: Context,
    name: Arc<str>,
}

impl ContextView {
    /// The context's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cache this is a view of.
    pub fn cache(&self) -> &Arc<SessionCache> {
        &self.cache
    }

    /// [`SessionCache::add_session`], into this context, whatever context `session`
    /// names.
    pub fn add_session(&self, mut session: Session) -> bool {
        session.context = Some(self.name.clone());
        self.cache.add_session_in(self.context, session)
    }

    /// [`SessionCache::remove_session`], in this context.
    pub fn remove_session(&self, id: &[u8]) -> bool {
        self.cache.remove_session_in(self.context, id)
    }

    /// [`SessionCache::contains`], in this context.
    pub fn contains(&self, id: &[u8]) -> bool {
        self.cache.contains_in(self.context, id)
    }
}

impl StoresServerSessions for ContextView {
    /// [`SessionCache`]'s `put`, into this context.
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.cache
            .put_in(self.context, Some(&self.name), key, value)
    }

    /// [`SessionCache`]'s `get`, in this context only.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.get_in(self.context, key)
    }

    /// [`SessionCache`]'s `take`, in this context only: a ticket of another context is
    /// neither used nor consumed.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.take_in(self.context, key)
    }

    fn can_cache(&self) -> bool {
        self.cache.can_cache()
    }
}

impl fmt::Debug for ContextView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextView")
            .field("name", &self.name)
            .field("cache", &self.cache)
            .finish()
    }
}

impl SessionCache {
    /// A view of this cache for the resumption context `name`: plug it into the
    /// `ServerConfig::session_storage` of one config. Views of the same name share their
    /// sessions; views of different names, and the cache itself (the default context),
    /// never see each other's. Capacity, byte budget, eviction, expiry, statistics and
    /// callbacks are the cache's, shared by all; callbacks see each session's context
    /// ([`Session::context`]).
    ///
    /// Names are the application's, not the network's: 1 to 64 bytes of any kind. A
    /// cache holds at most 255 named contexts.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ContextName`] for an empty or overlong name,
    /// [`ConfigError::TooManyContexts`] past 255.
    pub fn context(self: &Arc<Self>, name: &str) -> Result<Arc<ContextView>, ConfigError> {
        let (context, name) = self.contexts.register(name)?;
        Ok(Arc::new(ContextView {
            cache: self.clone(),
            context,
            name,
        }))
    }
}

/// A cache's named contexts, by number (the default, 0, has no name).
#[derive(Default)]
pub(crate) struct Contexts {
    names: RwLock<Vec<Arc<str>>>,
}

impl Contexts {
    /// The context named `name`, registered if new.
    pub(crate) fn register(&self, name: &str) -> Result<(Context, Arc<str>), ConfigError> {
        if name.is_empty() || name.len() > MAX_CONTEXT_NAME {
            return Err(ConfigError::ContextName { len: name.len() });
        }
        if let Some(found) = self.find(name) {
            return Ok(found);
        }
        let mut names = self.names.write();
        if let Some(index) = names.iter().position(|known| &**known == name) {
            return Ok((number(index), names[index].clone()));
        }
        if names.len() >= MAX_CONTEXTS {
            return Err(ConfigError::TooManyContexts { max: MAX_CONTEXTS });
        }
        let name: Arc<str> = Arc::from(name);
        names.push(name.clone());
        Ok((number(names.len() - 1), name))
    }

    /// The context `session` names: the default for none, `None` for a name this cache
    /// does not know and cannot take.
    pub(crate) fn of(&self, name: Option<&str>) -> Option<Context> {
        match name {
            None => Some(Context::default()),
            Some(name) => self.register(name).ok().map(|(context, _)| context),
        }
    }

    /// The context `name` names if the cache knows it, without registering it: a
    /// session from the lookup callback must not take up one of the cache's slots.
    pub(crate) fn known(&self, name: Option<&str>) -> Option<Context> {
        match name {
            None => Some(Context::default()),
            Some(name) => self.find(name).map(|(context, _)| context),
        }
    }

    /// The name of `context`, `None` for the default.
    pub(crate) fn name(&self, context: Context) -> Option<Arc<str>> {
        let index = usize::from(context.0).checked_sub(1)?;
        self.names.read().get(index).cloned()
    }

    fn find(&self, name: &str) -> Option<(Context, Arc<str>)> {
        let names = self.names.read();
        let index = names.iter().position(|known| &**known == name)?;
        Some((number(index), names[index].clone()))
    }
}

/// The context stored at `index` among the names: numbered from 1.
fn number(index: usize) -> Context {
    // At most `MAX_CONTEXTS` (255) names: index + 1 fits a byte.
    Context(u8::try_from(index + 1).unwrap_or(u8::MAX))
}
