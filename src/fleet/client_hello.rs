//! What a ClientHello offers to resume, read from the bytes the acceptor handed rustls:
//! the legacy session id and whether a ticket comes with it (TLS 1.2), the
//! `pre_shared_key` identities (TLS 1.3), and the cipher suites, which the acceptor compares with what rustls itself parsed.
//!
//! **Not part of the crate's API**: it is public only for the fuzz target and the
//! property tests, and may change in any release.
//!
//! rustls keeps both fields to itself (`rustls::server::ClientHello` has neither), so
//! the acceptor reads them here, from exactly the records rustls read: it follows
//! rustls's framing (record versions, lengths, a hello split over several records), and
//! gives up, which means a full handshake, wherever it would have to guess. Nothing this
//! parser says can make a ticket resume that was not claimed: the claims decide that
//! (see `fleet::claims`).
//!
//! A small parser of our own rather than `tls-parser`: that crate leaves the
//! `pre_shared_key` extension as raw bytes (so the identity parsing, the part needed
//! here, would be ours anyway), parses and allocates every other extension too, and does
//! not join a handshake message split across records. This one reads only the fields it
//! needs, walks every length against what is left before using it, and stops at
//! [`MAX_CLIENT_HELLO`]. It is fuzzed (`fuzz/`) and property-tested
//! (`tests/client_hello.rs`).

/// The largest ClientHello looked at, in bytes. Real ones are a few hundred bytes, about
/// 1.5 KiB with a post-quantum key share; for larger ones nothing is fetched or claimed,
/// so they get full handshakes.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

/// The longest record payload rustls reads: 16 KiB plus 2 KiB, less one (rustls's
/// `MAX_PAYLOAD` is exclusive).
const MAX_RECORD: usize = 16 * 1024 + 2048 - 1;

/// What a ClientHello offers to resume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumptionOffer {
    /// The legacy session id, if not empty. A TLS 1.2 client sends the id of the session
    /// it wants to resume; a TLS 1.3 client sends random bytes here, for middleboxes.
    pub session_id: Option<Vec<u8>>,
    /// The `pre_shared_key` identities, in the order offered. There can be no more than
    /// fit in [`MAX_CLIENT_HELLO`] bytes.
    pub identities: Vec<Vec<u8>>,
    /// Whether `supported_versions` lists TLS 1.3.
    pub offers_tls13: bool,
    /// Whether a `session_ticket` extension carries a TLS 1.2 ticket (rather than, empty,
    /// asks for one). With a ticketer, rustls then resumes from the ticket alone, or not
    /// at all, and never looks up the session id.
    pub offers_ticket: bool,
    /// The cipher suites, as offered.
    pub cipher_suites: Vec<u16>,
}

/// The result of looking at the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Parsed {
    /// A whole ClientHello.
    Complete(ResumptionOffer),
    /// A valid start of one: more bytes are needed.
    Incomplete,
    /// Not a ClientHello this parser reads, and never will be, however many bytes follow.
    Invalid(&'static str),
}

/// Reads the ClientHello at the start of `bytes` (TLS records, as rustls received them).
/// Never panics; allocates only what it returns (and, for a ClientHello split across
/// records, a copy of it).
///
/// Records are read as rustls reads them: a known record version (`0x03XX`, or one of
/// the few others rustls names), a non-empty payload of at most 18,431 bytes, and only
/// handshake records until the ClientHello is whole.
///
/// ```
/// use rustls_session_cache::fleet::client_hello::{parse, Parsed};
///
/// assert_eq!(parse(&[22, 3, 1]), Parsed::Incomplete);
/// assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parsed::Invalid("not a handshake record"));
/// ```
pub fn parse(bytes: &[u8]) -> Parsed {
    let mut records = Reader(bytes);
    let mut joined: Vec<u8> = Vec::new();
    let mut first: &[u8] = &[];
    loop {
        let Some(header) = records.take(5) else {
            return Parsed::Incomplete;
        };
        if header[0] != 22 {
            return Parsed::Invalid("not a handshake record");
        }
        if !known_record_version(u16::from_be_bytes([header[1], header[2]])) {
            return Parsed::Invalid("not a TLS record");
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_RECORD {
            return Parsed::Invalid("bad record length");
        }
        let Some(fragment) = records.take(len) else {
            return Parsed::Incomplete;
        };
        // Borrow the common case, one record; join fragments only when there are several.
        let message = if first.is_empty() && joined.is_empty() {
            first = fragment;
            first
        } else {
            if joined.is_empty() {
                joined.extend_from_slice(first);
            }
            joined.extend_from_slice(fragment);
            &joined[..]
        };
        if let [kind, a, b, c, body @ ..] = message {
            if *kind != 1 {
                return Parsed::Invalid("not a ClientHello");
            }
            let len = usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c);
            if len > MAX_CLIENT_HELLO {
                return Parsed::Invalid("ClientHello too large");
            }
            if let Some(hello) = body.get(..len) {
                return match offer(hello) {
                    Some(offer) => Parsed::Complete(offer),
                    None => Parsed::Invalid("malformed ClientHello"),
                };
            }
        }
        if message.len() > MAX_CLIENT_HELLO {
            return Parsed::Invalid("ClientHello too large");
        }
    }
}

/// Reads the fields of a ClientHello's body; `None` if any length runs past its end.
fn offer(body: &[u8]) -> Option<ResumptionOffer> {
    let mut r = Reader(body);
    r.take(2)?; // legacy_version
    r.take(32)?; // random
    let session_id = r.vec8()?;
    if session_id.len() > 32 {
        return None;
    }
    let suites = r.vec16()?;
    if suites.len() < 2 || suites.len() % 2 != 0 {
        return None;
    }
    let cipher_suites = suites
        .chunks_exact(2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .collect();
    if r.vec8()?.is_empty() {
        return None; // compression methods: at least "null"
    }
    let mut offer = ResumptionOffer {
        session_id: (!session_id.is_empty()).then(|| session_id.to_vec()),
        cipher_suites,
        ..ResumptionOffer::default()
    };
    if r.is_empty() {
        return Some(offer); // no extensions at all
    }
    let mut extensions = Reader(r.vec16()?);
    if !r.is_empty() {
        return None;
    }
    while !extensions.is_empty() {
        let kind = extensions.u16()?;
        let mut data = Reader(extensions.vec16()?);
        match kind {
            SUPPORTED_VERSIONS => {
                let versions = data.vec8()?;
                if versions.len() % 2 != 0 {
                    return None;
                }
                offer.offers_tls13 |= versions.chunks_exact(2).any(|v| v == [3, 4]);
            }
            SESSION_TICKET => offer.offers_ticket = !data.is_empty(),
            PRE_SHARED_KEY => {
                let mut identities = Reader(data.vec16()?);
                while !identities.is_empty() {
                    let identity = identities.vec16()?;
                    identities.take(4)?; // obfuscated_ticket_age
                    if identity.is_empty() {
                        return None;
                    }
                    offer.identities.push(identity.to_vec());
                }
                // The binders follow; they are rustls's to check.
            }
            _ => {}
        }
    }
    Some(offer)
}

/// Whether rustls's record layer takes this record version: any `0x03XX`, and the other
/// versions rustls names (SSLv2's `0x0002` and the three DTLS ones).
pub(crate) fn known_record_version(version: u16) -> bool {
    version >> 8 == 3 || matches!(version, 0x0002 | 0xfeff | 0xfefd | 0xfefc)
}

const SESSION_TICKET: u16 = 35;
const SUPPORTED_VERSIONS: u16 = 43;
const PRE_SHARED_KEY: u16 = 41;

/// A cursor that never reads past the end: every read returns `None` instead.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one-byte length.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let len = self.take(1)?[0];
        self.take(usize::from(len))
    }

    /// A vector with a two-byte length.
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
