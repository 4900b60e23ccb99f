//! Cache modes: OpenSSL's `SSL_SESS_CACHE_*` bits, and what each one does here.
//!
//! This is the only module that reads raw mode bits; everything else asks the named
//! predicates ([`CacheMode::caches_new_sessions`], [`CacheMode::stores_internally`], ...).

use core::fmt;
use core::str::FromStr;

bitflags::bitflags! {
    /// How the cache treats new sessions and lookups: OpenSSL's `SSL_SESS_CACHE_*` bits,
    /// with the same values.
    ///
    /// | flag | TLS 1.2 (`put` / `get`) | TLS 1.3 (`put` / `take`) |
    /// |---|---|---|
    /// | [`SERVER`](Self::SERVER) (default) | new sessions are cached; rustls sends a session id | new tickets are cached and issued |
    /// | [`OFF`](Self::OFF) (no `SERVER` bit) | rustls sends an empty session id; nothing is cached. Lookups still run | `put` returns `false`, so no ticket is issued. Lookups still run |
    /// | [`NO_AUTO_CLEAR`](Self::NO_AUTO_CLEAR) | no automatic sweep of expired sessions every 256 `put`s | same |
    /// | [`NO_INTERNAL_LOOKUP`](Self::NO_INTERNAL_LOOKUP) | `get` skips the internal cache; only the lookup callback is asked | `take` skips the internal cache, so an internal ticket is neither used nor consumed |
    /// | [`NO_INTERNAL_STORE`](Self::NO_INTERNAL_STORE) | new sessions go only to `on_new_session`; [`add_session`] still stores | same; a ticket is issued only if `on_new_session` is set |
    /// | [`NO_INTERNAL`](Self::NO_INTERNAL) | both of the above | both of the above |
    /// | [`UPDATE_TIME`](Self::UPDATE_TIME) | [`add_session`] resets the session's creation time to now | same |
    ///
    /// [`add_session`]: crate::SessionCache::add_session
    ///
    /// ```
    /// use rustls_session_cache::CacheMode;
    ///
    /// let mode = CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE;
    /// assert!(mode.caches_new_sessions());
    /// assert!(!mode.stores_internally());
    /// assert!(mode.looks_up_internally());
    /// assert_eq!(mode.bits(), 0x202);
    /// assert_eq!(mode, "server,no-internal-store".parse().unwrap());
    /// ```
    ///
    /// **`OFF` is no bits at all, so every mode contains it.** `mode.contains(CacheMode::OFF)`
    /// is always `true`, and `mode == CacheMode::OFF` misses a mode such as
    /// `NO_INTERNAL_LOOKUP` that has other bits but not `SERVER`, and so caches nothing
    /// new either. Ask [`is_off`](Self::is_off) instead:
    ///
    /// ```
    /// use rustls_session_cache::CacheMode;
    ///
    /// let mode = CacheMode::NO_INTERNAL_LOOKUP;
    /// assert!(mode.is_off(), "no SERVER bit: new sessions are not cached");
    /// assert_ne!(mode, CacheMode::OFF);
    /// assert!(CacheMode::SERVER.contains(CacheMode::OFF), "the trap: always true");
    /// assert!(!CacheMode::SERVER.is_off());
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CacheMode: u32 {
        /// No `SERVER` bit: new sessions are neither cached nor handed to `on_new_session`.
        ///
        /// It has no bits, so `mode.contains(CacheMode::OFF)` is `true` for every mode:
        /// test a mode with [`CacheMode::is_off`].
        const OFF                = 0;
        /// Cache new server sessions. The default.
        const SERVER             = 0x002;
        /// Do not sweep expired sessions automatically every 256 `put`s.
        const NO_AUTO_CLEAR      = 0x080;
        /// Do not look sessions up in the internal cache; ask only the lookup callback.
        const NO_INTERNAL_LOOKUP = 0x100;
        /// Do not store new sessions in the internal cache; hand them only to `on_new_session`.
        const NO_INTERNAL_STORE  = 0x200;
        /// `NO_INTERNAL_LOOKUP | NO_INTERNAL_STORE`.
        const NO_INTERNAL        = 0x300;
        /// `add_session` sets the session's creation time to now.
        const UPDATE_TIME        = 0x400;
    }
}

impl CacheMode {
    /// Whether the mode is off: it lacks the `SERVER` bit, whatever other bits it has.
    /// rustls's new sessions are then refused, but lookups still run.
    ///
    /// This is the test to use rather than `contains(CacheMode::OFF)`, which holds for
    /// every mode, or `== CacheMode::OFF`, which misses modes with other bits.
    ///
    /// ```
    /// use rustls_session_cache::CacheMode;
    ///
    /// assert!(CacheMode::OFF.is_off());
    /// assert!((CacheMode::NO_INTERNAL | CacheMode::UPDATE_TIME).is_off());
    /// assert!(!(CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE).is_off());
    /// ```
    pub fn is_off(self) -> bool {
        !self.caches_new_sessions()
    }

    /// Whether new sessions from rustls are cached at all (the `SERVER` bit).
    ///
    /// Without it `put` refuses every session and `can_cache` is `false`.
    pub fn caches_new_sessions(self) -> bool {
        self.contains(Self::SERVER)
    }

    /// Whether new sessions from rustls enter the internal cache (no `NO_INTERNAL_STORE`).
    pub fn stores_internally(self) -> bool {
        !self.contains(Self::NO_INTERNAL_STORE)
    }

    /// Whether `get` and `take` consult the internal cache (no `NO_INTERNAL_LOOKUP`).
    pub fn looks_up_internally(self) -> bool {
        !self.contains(Self::NO_INTERNAL_LOOKUP)
    }

    /// Whether expired sessions are swept automatically as sessions are stored
    /// (no `NO_AUTO_CLEAR`).
    pub fn auto_clears(self) -> bool {
        !self.contains(Self::NO_AUTO_CLEAR)
    }

    /// Whether `add_session` resets the creation time to now (`UPDATE_TIME`).
    pub fn updates_time(self) -> bool {
        self.contains(Self::UPDATE_TIME)
    }
}

impl Default for CacheMode {
    /// [`CacheMode::SERVER`], as in OpenSSL.
    fn default() -> Self {
        Self::SERVER
    }
}

/// The names [`CacheMode`]'s `FromStr` and `Display` use, in display order.
const NAMES: [(&str, CacheMode); 6] = [
    ("server", CacheMode::SERVER),
    ("no-auto-clear", CacheMode::NO_AUTO_CLEAR),
    ("no-internal", CacheMode::NO_INTERNAL),
    ("no-internal-lookup", CacheMode::NO_INTERNAL_LOOKUP),
    ("no-internal-store", CacheMode::NO_INTERNAL_STORE),
    ("update-time", CacheMode::UPDATE_TIME),
];

impl FromStr for CacheMode {
    type Err = ParseModeError;

    /// Parses comma-separated flag names: `server`, `off`, `no-auto-clear`,
    /// `no-internal-lookup`, `no-internal-store`, `no-internal`, `update-time`.
    ///
    /// Names are case-insensitive and may have spaces around them. `off` contributes no
    /// bits; an empty string is refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mode = Self::empty();
        for name in s.split(',').map(str::trim) {
            if name.eq_ignore_ascii_case("off") {
                continue;
            }
            let (_, flag) = NAMES
                .iter()
                .find(|(known, _)| name.eq_ignore_ascii_case(known))
                .ok_or_else(|| ParseModeError {
                    name: name.to_owned(),
                })?;
            mode |= *flag;
        }
        Ok(mode)
    }
}

impl fmt::Display for CacheMode {
    /// Writes the names `FromStr` accepts, comma-separated; `off` for no bits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = *self;
        let mut first = true;
        for (name, flag) in NAMES {
            if rest.contains(flag) {
                f.write_str(if first { "" } else { "," })?;
                f.write_str(name)?;
                rest.remove(flag);
                first = false;
            }
        }
        if !rest.is_empty() {
            write!(f, "{}{:#x}", if first { "" } else { "," }, rest.bits())?;
        } else if first {
            f.write_str("off")?;
        }
        Ok(())
    }
}

/// A cache-mode name that [`CacheMode`]'s `FromStr` does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseModeError {
    name: String,
}

impl fmt::Display for ParseModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown cache mode {:?}; expected a comma-separated list of: off, server, \
             no-auto-clear, no-internal-lookup, no-internal-store, no-internal, update-time",
            self.name
        )
    }
}

impl std::error::Error for ParseModeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_match_openssl() {
        assert_eq!(CacheMode::OFF.bits(), 0);
        assert_eq!(CacheMode::SERVER.bits(), 0x002);
        assert_eq!(CacheMode::NO_AUTO_CLEAR.bits(), 0x080);
        assert_eq!(CacheMode::NO_INTERNAL_LOOKUP.bits(), 0x100);
        assert_eq!(CacheMode::NO_INTERNAL_STORE.bits(), 0x200);
        assert_eq!(CacheMode::NO_INTERNAL.bits(), 0x300);
        assert_eq!(CacheMode::UPDATE_TIME.bits(), 0x400);
        assert_eq!(CacheMode::default(), CacheMode::SERVER);
    }

    #[test]
    fn predicates_read_the_right_bits() {
        let off = CacheMode::OFF;
        assert!(!off.caches_new_sessions());
        assert!(off.stores_internally() && off.looks_up_internally() && off.auto_clears());
        let all = CacheMode::all();
        assert!(all.caches_new_sessions() && all.updates_time());
        assert!(!all.stores_internally() && !all.looks_up_internally() && !all.auto_clears());
    }

    #[test]
    fn is_off_means_no_server_bit_whatever_else_is_set() {
        // Every combination of the known bits: off exactly when SERVER is missing.
        let flags = [
            CacheMode::SERVER,
            CacheMode::NO_AUTO_CLEAR,
            CacheMode::NO_INTERNAL_LOOKUP,
            CacheMode::NO_INTERNAL_STORE,
            CacheMode::UPDATE_TIME,
        ];
        let mut off = 0;
        for combo in 0..1u32 << flags.len() {
            let mode = flags
                .iter()
                .enumerate()
                .filter(|(i, _)| combo & (1 << i) != 0)
                .fold(CacheMode::OFF, |mode, (_, flag)| mode | *flag);
            assert_eq!(mode.is_off(), combo & 1 == 0, "{mode}");
            assert!(
                mode.contains(CacheMode::OFF),
                "the trap is_off avoids: {mode}"
            );
            off += usize::from(mode.is_off());
        }
        assert_eq!(off, 16, "half of the 32 combinations lack SERVER");
        assert!(CacheMode::from_bits_retain(0x1000).is_off());
    }

    #[test]
    fn parses_and_displays_names() {
        let parsed: CacheMode = " Server , no-internal-store".parse().unwrap();
        assert_eq!(parsed, CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE);
        assert_eq!(parsed.to_string(), "server,no-internal-store");
        assert_eq!("off".parse::<CacheMode>().unwrap(), CacheMode::OFF);
        assert_eq!(CacheMode::OFF.to_string(), "off");
        let both: CacheMode = "server,no-internal".parse().unwrap();
        assert_eq!(both.bits(), 0x302);
        assert_eq!(both.to_string(), "server,no-internal");
        assert_eq!(
            CacheMode::from_bits_retain(0x1002).to_string(),
            "server,0x1000"
        );
    }

    #[test]
    fn refuses_unknown_and_empty_names() {
        let err = "server,bogus".parse::<CacheMode>().unwrap_err();
        assert_eq!(err.name, "bogus");
        assert!(err.to_string().contains("unknown cache mode \"bogus\""));
        assert_eq!("".parse::<CacheMode>().unwrap_err().name, "");
    }
}
