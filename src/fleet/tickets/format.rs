//! The ticket format, and [`TicketKey`], the key that makes and opens tickets.
//!
//! A ticket is `key id (16) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`: the session rustls
//! hands to `encrypt`, sealed with AES-256-GCM under the ticket key the id names, with
//! `"rsc-ticket-v1" ‖ key id ‖ context name` as associated data, so the id is
//! authenticated too, and a ticket made for one resumption context opens in no other
//! (the context is bound to the ticket rather than a key derived per context: the same
//! separation, with one key per epoch to hold and publish). 44
//! bytes on top of the session (83 bytes for a typical one).
//!
//! - **Key ids** are 16 random bytes, drawn with the key: they name a key, not an epoch,
//!   so a ring can hold a fleet key and a local key for one epoch apart.
//! - **Nonces** are 12 random bytes for every ticket, as rustls's own ticketer draws
//!   them (a counter would tell how many tickets a server issued). Random 96-bit nonces
//!   keep AES-GCM within NIST's bound (SP 800-38D, 8.3) for 2^32 tickets per key: with
//!   the default hourly keys, 1.19 million tickets a second across the whole fleet.
//!   Above that, rotate faster.
//! - **Lengths**: a ticket is at most 65,535 bytes, the most a TLS ticket field holds.
//!   Anything shorter than the 44 bytes of overhead, or longer than that, is malformed
//!   before any key is looked at.
//!
//! Why AES-256-GCM here and XChaCha20-Poly1305 for what Redis holds: tickets are sealed
//! and opened inside handshakes, where the `aes-gcm` crate (AES-NI and carry-less
//! multiplication, detected at run time) is several times faster on a short session
//! than the `chacha20poly1305` crate (the `tickets` benchmark measures both). Redis
//! values are written once per key, where 192-bit nonces cost nothing.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{AeadCore, AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use zeroize::Zeroizing;

/// The length of a key id.
pub(crate) const KEY_ID_LEN: usize = 16;
/// The length of a ticket key.
pub(crate) const SECRET_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = KEY_ID_LEN + NONCE_LEN;
/// What a ticket adds to the session it holds.
pub(crate) const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The longest ticket: TLS carries tickets in fields of at most `u16::MAX` bytes.
pub(crate) const MAX_TICKET: usize = u16::MAX as usize;
const AAD_LABEL: &[u8] = b"rsc-ticket-v1";

/// A key's id and bytes, `id ‖ secret`, wiped when dropped.
pub(crate) type Material = Zeroizing<[u8; KEY_ID_LEN + SECRET_LEN]>;

/// A key id, public: it travels in every ticket.
pub(crate) type KeyId = [u8; KEY_ID_LEN];

/// Where a ring's key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// From Redis (made here or elsewhere): every server of the fleet holds it.
    Fleet,
    /// Made here while the fleet's could not be had: its tickets resume only here.
    Local,
}

/// One ticket key: its id, its epoch, where it came from, and the cipher. The key bytes
/// live only inside the cipher, which wipes them when dropped; there is no `Debug`
/// that could print them.
pub(crate) struct TicketKey {
    pub(crate) id: KeyId,
    pub(crate) epoch: u64,
    pub(crate) origin: Origin,
    cipher: Aes256Gcm,
    /// The key bytes, kept only in tests, to look for them in Redis.
    #[cfg(test)]
    pub(crate) secret: [u8; SECRET_LEN],
}

/// Why a ticket did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Too short or too long to be a ticket.
    Malformed,
    /// No key with its id in the ring: never known here, erased, or not yet in force.
    UnknownKey,
    /// Its key is known, and the tag does not verify.
    BadTag,
}

impl TicketKey {
    /// A fresh random key for `epoch`.
    pub(crate) fn generate(epoch: u64, origin: Origin) -> Self {
        Self::generate_with_material(epoch, origin).0
    }

    /// The key from `id ‖ secret` (48 bytes), as [`material`](Self::material) gives
    /// it; `None` for any other length.
    pub(crate) fn from_material(epoch: u64, origin: Origin, material: &[u8]) -> Option<Self> {
        if material.len() != KEY_ID_LEN + SECRET_LEN {
            return None;
        }
        let (id, secret) = material.split_at(KEY_ID_LEN);
        Some(Self {
            id: id.try_into().ok()?,
            epoch,
            origin,
            cipher: Aes256Gcm::new_from_slice(secret).ok()?,
            #[cfg(test)]
            secret: secret.try_into().ok()?,
        })
    }

    /// A fresh random key for `epoch`, and its `id ‖ secret`, to seal for Redis.
    pub(crate) fn generate_with_material(epoch: u64, origin: Origin) -> (Self, Material) {
        let mut material = Zeroizing::new([0; KEY_ID_LEN + SECRET_LEN]);
        OsRng.fill_bytes(&mut material[..]);
        match Self::from_material(epoch, origin, &material[..]) {
            Some(key) => (key, material),
            None => unreachable!("generated material has the right length"),
        }
    }

    /// `plain` sealed into a ticket for resumption context `context`; `None` if the
    /// ticket would be too long.
    pub(crate) fn seal(&self, plain: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        if plain.len() > MAX_TICKET - OVERHEAD {
            return None;
        }
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut ticket = Vec::with_capacity(OVERHEAD + plain.len());
        ticket.extend_from_slice(&self.id);
        ticket.extend_from_slice(&nonce);
        ticket.extend_from_slice(plain);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce, &aad(&self.id, context), &mut ticket[HEADER_LEN..])
            .ok()?;
        ticket.extend_from_slice(&tag);
        Some(ticket)
    }

    /// The session in `ticket`, which [`split`] found to be this key's, made for
    /// resumption context `context`.
    pub(crate) fn open(&self, ticket: Parts<'_>, context: &[u8]) -> Result<Vec<u8>, Refused> {
        let mut plain = ticket.ciphertext.to_vec();
        self.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(ticket.nonce),
                // The id the ticket names (which the ring matched to this key's).
                &aad(ticket.key_id, context),
                &mut plain,
                Tag::from_slice(ticket.tag),
            )
            .map_err(|_| Refused::BadTag)?;
        Ok(plain)
    }
}

/// A ticket cut into its fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'a> {
    pub(crate) key_id: &'a KeyId,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8],
}

/// Cuts `ticket` into its fields; [`Refused::Malformed`] if it is too short or too long
/// to be one.
pub(crate) fn split(ticket: &[u8]) -> Result<Parts<'_>, Refused> {
    if !(OVERHEAD..=MAX_TICKET).contains(&ticket.len()) {
        return Err(Refused::Malformed);
    }
    let (header, rest) = ticket.split_at(HEADER_LEN);
    let (key_id, nonce) = header.split_at(KEY_ID_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    Ok(Parts {
        key_id: key_id.try_into().map_err(|_| Refused::Malformed)?,
        nonce,
        ciphertext,
        tag,
    })
}

/// Whether two key ids are equal, in time that does not depend on where they differ.
pub(crate) fn same_id(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The associated data: the label, the key id, then the resumption context's name
/// (empty for the default context). The first two have fixed lengths, so the name is
/// the rest: tickets of one context fail to open in any other.
fn aad(id: &KeyId, context: &[u8]) -> Aad {
    let mut aad = Aad {
        bytes: [0; AAD_MAX],
        len: 0,
    };
    for part in [AAD_LABEL, &id[..], context] {
        // Context names are at most `MAX_CONTEXT_NAME` bytes: it all fits.
        let end = (aad.len + part.len()).min(AAD_MAX);
        aad.bytes[aad.len..end].copy_from_slice(&part[..end - aad.len]);
        aad.len = end;
    }
    aad
}

/// The longest associated data: the label, a key id, and the longest context name.
const AAD_MAX: usize = AAD_LABEL.len() + KEY_ID_LEN + crate::MAX_CONTEXT_NAME;

/// Associated data, built on the stack (the handshake path allocates nothing for it).
struct Aad {
    bytes: [u8; AAD_MAX],
    len: usize,
}

impl core::ops::Deref for Aad {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_opens_only_in_the_context_it_was_made_for() {
        let key = TicketKey::generate(1, Origin::Fleet);
        let ticket = key.seal(b"session value", b"a").unwrap();
        let open_in = |context: &[u8]| key.open(split(&ticket).unwrap(), context);
        assert_eq!(open_in(b"a").unwrap(), b"session value");
        for other in [&b""[..], b"ab", b"b", b"A"] {
            assert_eq!(open_in(other), Err(Refused::BadTag), "{other:?}");
        }
        let default = key.seal(b"session value", b"").unwrap();
        assert_eq!(
            key.open(split(&default).unwrap(), b"a"),
            Err(Refused::BadTag)
        );
    }

    fn open(key: &TicketKey, ticket: &[u8]) -> Result<Vec<u8>, Refused> {
        key.open(split(ticket)?, b"")
    }

    #[test]
    fn a_ticket_is_the_id_a_nonce_the_ciphertext_and_a_tag() {
        let key = TicketKey::generate(7, Origin::Fleet);
        let ticket = key.seal(b"session value", b"").unwrap();
        assert_eq!(ticket.len(), OVERHEAD + 13);
        assert_eq!(&ticket[..KEY_ID_LEN], &key.id);
        assert!(!ticket.windows(7).any(|w| w == b"session"));
        assert_eq!(open(&key, &ticket).unwrap(), b"session value");
        let again = key.seal(b"session value", b"").unwrap();
        assert_ne!(
            ticket[KEY_ID_LEN..HEADER_LEN],
            again[KEY_ID_LEN..HEADER_LEN]
        );
    }

    #[test]
    fn every_flipped_bit_and_every_other_key_fails_the_tag() {
        let key = TicketKey::generate(7, Origin::Fleet);
        let ticket = key.seal(b"session value", b"").unwrap();
        for i in 0..ticket.len() {
            let mut bad = ticket.clone();
            bad[i] ^= 0x80;
            assert_eq!(open(&key, &bad), Err(Refused::BadTag), "bit flip at {i}");
        }
        // Another key under the same id (an id clash, or a forged id) fails the tag.
        let mut material = [0; KEY_ID_LEN + SECRET_LEN];
        material[..KEY_ID_LEN].copy_from_slice(&key.id);
        let other = TicketKey::from_material(7, Origin::Fleet, &material).unwrap();
        assert_eq!(open(&other, &ticket), Err(Refused::BadTag));
    }

    #[test]
    fn lengths_out_of_bounds_are_malformed_before_any_key() {
        for len in [0, 1, OVERHEAD - 1, MAX_TICKET + 1, 64 * 1024] {
            assert!(
                matches!(split(&vec![0xa5; len]), Err(Refused::Malformed)),
                "{len}"
            );
        }
        assert!(split(&[0; OVERHEAD]).is_ok(), "an empty session");
        let key = TicketKey::generate(1, Origin::Local);
        assert!(key.seal(&vec![0; MAX_TICKET - OVERHEAD], b"").is_some());
        assert!(key.seal(&vec![0; MAX_TICKET - OVERHEAD + 1], b"").is_none());
    }

    #[test]
    fn material_must_be_48_bytes_and_ids_compare_whole() {
        assert!(TicketKey::from_material(1, Origin::Fleet, &[0; 47]).is_none());
        assert!(TicketKey::from_material(1, Origin::Fleet, &[0; 49]).is_none());
        let (key, material) = TicketKey::generate_with_material(3, Origin::Fleet);
        let copy = TicketKey::from_material(3, Origin::Fleet, &material[..]).unwrap();
        assert_eq!(copy.id, key.id);
        let ticket = key.seal(b"x", b"").unwrap();
        assert_eq!(open(&copy, &ticket).unwrap(), b"x");
        assert!(same_id(&key.id, &copy.id));
        assert!(!same_id(&key.id, &key.id[..15]));
        let mut other = key.id;
        other[15] ^= 1;
        assert!(!same_id(&key.id, &other));
    }
}
