//! Sessions at rest in Redis: sealed with XChaCha20-Poly1305 under a fleet key, bound to
//! their Redis key and id; and [`FleetKeys`], the keys, newest first.
//!
//! A sealed entry is `version (1) ‖ key id (4) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`,
//! where the plaintext is `created (8) ‖ timeout (8) ‖ value`, both times in
//! nanoseconds, big-endian. The associated data is `"rsc-session-v1" ‖ len(key) ‖ key ‖
//! id`, so an entry copied to another Redis key, or presented for another id, fails to
//! authenticate.
//!
//! Ticket keys (see `tickets`) are sealed the same way, with the label
//! `"rsc-ticket-key-v1"` and their epoch in place of the id: a ticket key opens only
//! under its own Redis key and epoch, and never as a session.
//!
//! Why XChaCha20-Poly1305: its nonces are 192 bits, so they can be drawn at random for
//! every entry, forever, across a fleet, with no counter to coordinate and no birthday
//! bound to watch. AES-GCM's 96-bit random nonces are limited to about 2^32 entries per
//! key, which a busy fleet writes in hours.

use core::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::session::{Context, Entry, Id, Session, Stamp};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;
const AAD_LABEL: &[u8] = b"rsc-session-v1";
const TICKET_KEY_LABEL: &[u8] = b"rsc-ticket-key-v1";

/// The fleet's encryption keys, newest first: sessions are sealed with the newest and
/// opened with whichever one sealed them.
///
/// Each key is 32 bytes. A key is known in ciphertexts by a 4-byte id derived from it
/// (the first bytes of an authentication tag over a fixed label), which reveals nothing
/// about the key. Keys are wiped when dropped, and never printed.
///
/// ```
/// use rustls_session_cache::fleet::FleetKeys;
///
/// let keys = FleetKeys::parse(
///     "# newest first\n\
///      1111111111111111111111111111111111111111111111111111111111111111\n\
///      \n\
///      2222222222222222222222222222222222222222222222222222222222222222\n",
/// )?;
/// assert_eq!(keys.len(), 2);
/// assert!(!format!("{keys:?}").contains("1111"));
/// # Ok::<(), rustls_session_cache::fleet::KeyFileError>(())
/// ```
pub struct FleetKeys {
    keys: Vec<FleetKey>,
}

struct FleetKey {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
}

impl FleetKeys {
    /// Keys from raw bytes, newest first.
    ///
    /// # Errors
    ///
    /// [`KeyFileError`] if there are none.
    pub fn new(keys: impl IntoIterator<Item = [u8; 32]>) -> Result<Self, KeyFileError> {
        let keys: Vec<FleetKey> = keys
            .into_iter()
            .map(|key| {
                let key = Zeroizing::new(key);
                let cipher = XChaCha20Poly1305::new((&*key).into());
                FleetKey {
                    id: key_id(&cipher),
                    cipher,
                }
            })
            .collect();
        if keys.is_empty() {
            return Err(KeyFileError::NoKey);
        }
        Ok(Self { keys })
    }

    /// Keys in the key-file format: one key per line as 64 hex digits (32 bytes), newest
    /// first; blank lines and lines starting with `#` are ignored, and so is white space
    /// around a key.
    ///
    /// # Errors
    ///
    /// [`KeyFileError`], naming the line, for a line that is not 64 hex digits, or a
    /// text with no key.
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let mut keys: Vec<Zeroizing<[u8; 32]>> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut key = Zeroizing::new([0u8; 32]);
            let line_number = index + 1;
            return Err(match (line.len(), hex::decode_to_slice(line, &mut *key)) {
                (64, Ok(())) => {
                    keys.push(key);
                    continue;
                }
                (64, Err(_)) => KeyFileError::NotHex { line: line_number },
                _ => KeyFileError::WrongLength { line: line_number },
            });
        }
        Self::new(keys.iter().map(|key| **key))
    }

    /// Keys from a key file (see [`FleetKeys::parse`]).
    ///
    /// # Errors
    ///
    /// [`KeyFileError`] if the file cannot be read or is malformed.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyFileError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| KeyFileError::Unreadable { source })?,
        );
        Self::parse(&text)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always `false`: a `FleetKeys` holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Seals `session` for storage under `redis_key`, with the newest key.
    pub(crate) fn seal(&self, redis_key: &[u8], session: &Session, timeout: u64) -> Vec<u8> {
        let mut plain = Zeroizing::new(Vec::with_capacity(16 + session.value().len()));
        plain.extend_from_slice(&session.entry.stamp.created.to_be_bytes());
        plain.extend_from_slice(&timeout.to_be_bytes());
        plain.extend_from_slice(session.value());
        self.seal_with(&associated_data(AAD_LABEL, redis_key, session.id()), &plain)
    }

    /// Opens what [`FleetKeys::seal`] made for `redis_key` and `id`, with whichever key
    /// sealed it; `None` if it does not authenticate under any key with its id.
    pub(crate) fn open(&self, redis_key: &[u8], id: &[u8], sealed: &[u8]) -> Option<Session> {
        let plain = self.open_with(&associated_data(AAD_LABEL, redis_key, id), sealed)?;
        let created = i64::from_be_bytes(plain.get(..8)?.try_into().ok()?);
        let timeout = u64::from_be_bytes(plain.get(8..16)?.try_into().ok()?);
        Some(Session {
            id: Id::new(Context::default(), id),
            context: None,
            entry: Entry {
                value: Zeroizing::new(Box::from(plain.get(16..)?)),
                stamp: Stamp { created, timeout },
            },
        })
    }

    /// Seals a ticket key (`secret`) for storage under `redis_key`, bound to its
    /// `epoch`, with the newest key. Its own label keeps it from ever opening as a
    /// session, and a session from ever opening as a ticket key.
    pub(crate) fn seal_ticket_key(&self, redis_key: &[u8], epoch: u64, secret: &[u8]) -> Vec<u8> {
        let aad = associated_data(TICKET_KEY_LABEL, redis_key, &epoch.to_be_bytes());
        self.seal_with(&aad, secret)
    }

    /// Opens what [`FleetKeys::seal_ticket_key`] made for `redis_key` and `epoch`.
    pub(crate) fn open_ticket_key(
        &self,
        redis_key: &[u8],
        epoch: u64,
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let aad = associated_data(TICKET_KEY_LABEL, redis_key, &epoch.to_be_bytes());
        self.open_with(&aad, sealed)
    }

    /// `plain` sealed under the newest key, with a fresh random nonce.
    fn seal_with(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let newest = &self.keys[0];
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut sealed = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
        sealed.push(VERSION);
        sealed.extend_from_slice(&newest.id);
        sealed.extend_from_slice(&nonce);
        // Encrypting into a Vec only fails if it cannot allocate, which aborts anyway.
        let ciphertext = newest
            .cipher
            .encrypt(&nonce, Payload { msg: plain, aad })
            .unwrap_or_default();
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// The plaintext of what [`seal_with`](Self::seal_with) made, with whichever key
    /// sealed it; `None` if it does not authenticate under any key with its id.
    fn open_with(&self, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (header, ciphertext) = (sealed.get(..HEADER_LEN)?, sealed.get(HEADER_LEN..)?);
        if header[0] != VERSION {
            return None;
        }
        let (key_id, nonce) = header[1..].split_at(KEY_ID_LEN);
        let nonce = XNonce::from_slice(nonce);
        self.keys
            .iter()
            .filter(|key| key.id == key_id)
            .find_map(|key| {
                key.cipher
                    .decrypt(
                        nonce,
                        Payload {
                            msg: ciphertext,
                            aad,
                        },
                    )
                    .ok()
            })
            .map(Zeroizing::new)
    }
}

impl fmt::Debug for FleetKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetKeys")
            .field("len", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// A key file or key list that cannot be used. Its messages name the line at fault,
/// never what is on it: a key file holds secrets.
///
/// ```
/// use rustls_session_cache::fleet::{FleetKeys, KeyFileError};
///
/// let err = FleetKeys::parse("# newest first\nabcd\n").unwrap_err();
/// assert!(matches!(err, KeyFileError::WrongLength { line: 2 }));
/// assert_eq!(err.to_string(), "fleet key file, line 2: a key must be 64 hex digits (32 bytes)");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read; the `source` says why.
    Unreadable {
        /// What reading it said.
        source: std::io::Error,
    },
    /// No key at all.
    NoKey,
    /// A line that is 64 characters long but not all hex digits.
    NotHex {
        /// The line, from 1.
        line: usize,
    },
    /// A line that is not 64 characters long.
    WrongLength {
        /// The line, from 1.
        line: usize,
    },
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable { .. } => f.write_str("fleet key file: cannot read the key file"),
            Self::NoKey => f.write_str(
                "fleet key file: no key found: expected one key per line, 64 hex digits, newest first",
            ),
            Self::NotHex { line } => {
                write!(f, "fleet key file, line {line}: a key must be hex digits only")
            }
            Self::WrongLength { line } => write!(
                f,
                "fleet key file, line {line}: a key must be 64 hex digits (32 bytes)"
            ),
        }
    }
}

impl std::error::Error for KeyFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unreadable { source } => Some(source),
            _ => None,
        }
    }
}

fn associated_data(label: &[u8], redis_key: &[u8], id: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(label.len() + 4 + redis_key.len() + id.len());
    aad.extend_from_slice(label);
    aad.extend_from_slice(&(redis_key.len() as u32).to_be_bytes());
    aad.extend_from_slice(redis_key);
    aad.extend_from_slice(id);
    aad
}

/// A key's public name: the first bytes of its tag over a fixed label, under a fixed
/// nonce. The same key always gets the same id; the id says nothing about the key.
fn key_id(cipher: &XChaCha20Poly1305) -> [u8; KEY_ID_LEN] {
    let tag = cipher
        .encrypt(
            &XNonce::default(),
            Payload {
                msg: &[],
                aad: b"rustls-session-cache fleet key id",
            },
        )
        .unwrap_or_default();
    let mut id = [0; KEY_ID_LEN];
    id.copy_from_slice(tag.get(..KEY_ID_LEN).unwrap_or(&[0; KEY_ID_LEN]));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> FleetKeys {
        FleetKeys::new(bytes.iter().map(|b| [*b; 32])).unwrap()
    }

    fn session() -> Session {
        Session::created_at_nanos(vec![7; 32], b"secret value".to_vec(), 1_234)
    }

    #[test]
    fn seals_and_opens_with_the_times() {
        let k = keys(&[1]);
        let sealed = k.seal(b"rsc:0707", &session(), 300);
        assert_eq!(sealed.len(), HEADER_LEN + 16 + 12 + TAG_LEN);
        let opened = k.open(b"rsc:0707", &[7; 32], &sealed).unwrap();
        assert_eq!(opened.value(), b"secret value");
        assert_eq!(
            opened.entry.stamp,
            Stamp {
                created: 1_234,
                timeout: 300
            }
        );
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn another_key_or_id_or_any_flipped_bit_fails() {
        let k = keys(&[1]);
        let sealed = k.seal(b"rsc:0707", &session(), 300);
        assert!(
            k.open(b"rsc:0708", &[7; 32], &sealed).is_none(),
            "moved key"
        );
        assert!(k.open(b"rsc:0707", &[8; 32], &sealed).is_none(), "other id");
        assert!(
            keys(&[2]).open(b"rsc:0707", &[7; 32], &sealed).is_none(),
            "wrong key"
        );
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(
                k.open(b"rsc:0707", &[7; 32], &bad).is_none(),
                "bit flip at {i}"
            );
        }
        assert!(k.open(b"rsc:0707", &[7; 32], &sealed[..10]).is_none());
    }

    #[test]
    fn rotation_seals_with_the_newest_and_opens_with_any() {
        let old = keys(&[1]);
        let sealed_old = old.seal(b"k", &session(), 1);
        let rotated = keys(&[2, 1]);
        assert!(rotated.open(b"k", &[7; 32], &sealed_old).is_some());
        let sealed_new = rotated.seal(b"k", &session(), 1);
        assert!(
            old.open(b"k", &[7; 32], &sealed_new).is_none(),
            "sealed with the newest"
        );
        assert!(keys(&[2]).open(b"k", &[7; 32], &sealed_new).is_some());
    }

    #[test]
    fn nonces_differ_every_time() {
        let k = keys(&[1]);
        let a = k.seal(b"k", &session(), 1);
        let b = k.seal(b"k", &session(), 1);
        assert_ne!(a[5..HEADER_LEN], b[5..HEADER_LEN]);
    }

    #[test]
    fn key_files_parse_and_refuse_clearly() {
        let text =
            "# comment\n\n  0123456789abcdef0123456789abcdef0123456789ABCDEF0123456789abcdef  \n";
        assert_eq!(FleetKeys::parse(text).unwrap().len(), 1);
        let short = FleetKeys::parse("# c\nabcd\n").unwrap_err();
        assert!(
            matches!(short, KeyFileError::WrongLength { line: 2 }),
            "{short:?}"
        );
        assert_eq!(
            short.to_string(),
            "fleet key file, line 2: a key must be 64 hex digits (32 bytes)"
        );
        let not_hex = FleetKeys::parse(&"zz".repeat(32)).unwrap_err();
        assert!(
            matches!(not_hex, KeyFileError::NotHex { line: 1 }),
            "{not_hex:?}"
        );
        assert!(
            !not_hex.to_string().contains("zz"),
            "never what is on the line"
        );
        assert!(matches!(
            FleetKeys::parse("# only comments\n").unwrap_err(),
            KeyFileError::NoKey
        ));
        let unreadable = FleetKeys::from_file("/no/such/file").unwrap_err();
        assert!(matches!(unreadable, KeyFileError::Unreadable { .. }));
        assert!(
            std::error::Error::source(&unreadable).is_some(),
            "keeps the io error"
        );
    }

    #[test]
    fn a_ticket_key_opens_only_under_its_name_and_epoch_and_never_as_a_session() {
        let k = keys(&[1]);
        let sealed = k.seal_ticket_key(b"rsc:ticket-key:1000:5", 5, &[9; 48]);
        assert_eq!(sealed.len(), HEADER_LEN + 48 + TAG_LEN);
        let opened = k
            .open_ticket_key(b"rsc:ticket-key:1000:5", 5, &sealed)
            .unwrap();
        assert_eq!(&opened[..], &[9; 48]);
        assert!(!sealed.windows(8).any(|w| w == [9; 8]));
        assert!(
            k.open_ticket_key(b"rsc:ticket-key:1000:6", 5, &sealed)
                .is_none()
        );
        assert!(
            k.open_ticket_key(b"rsc:ticket-key:1000:5", 6, &sealed)
                .is_none()
        );
        let as_session = k.open(b"rsc:ticket-key:1000:5", &5u64.to_be_bytes(), &sealed);
        assert!(as_session.is_none(), "another label");
        assert!(
            keys(&[2])
                .open_ticket_key(b"rsc:ticket-key:1000:5", 5, &sealed)
                .is_none()
        );
    }

    #[test]
    fn key_ids_are_stable_and_distinct() {
        assert_eq!(keys(&[1]).keys[0].id, keys(&[1]).keys[0].id);
        assert_ne!(keys(&[1]).keys[0].id, keys(&[2]).keys[0].id);
    }
}
