//! ClientHellos built byte by byte, which rustls accepts, for the parser's tests and
//! hostile-client tests; and a reader of the ServerHello that answers one.
#![allow(dead_code, unreachable_pub)]

/// The largest payload of one TLS record.
pub const MAX_RECORD: usize = 16 * 1024;

/// A ClientHello with this session id and these ticket identities (one binder each), in
/// TLS records of at most `record` bytes each. It offers TLS 1.3 (and 1.2) if `tls13`,
/// else TLS 1.2 only, for `localhost`, with what rustls needs to accept it.
pub fn client_hello(
    session_id: &[u8],
    identities: &[Vec<u8>],
    tls13: bool,
    record: usize,
) -> Vec<u8> {
    client_hello_padded(session_id, identities, tls13, record, 0)
}

/// As [`client_hello`], with a `padding` extension of `padding` bytes.
pub fn client_hello_padded(
    session_id: &[u8],
    identities: &[Vec<u8>],
    tls13: bool,
    record: usize,
    padding: usize,
) -> Vec<u8> {
    client_hello_with_ticket(session_id, identities, tls13, record, padding, None)
}

/// As [`client_hello_padded`], offering `ticket` in a TLS 1.2 `session_ticket` extension
/// when there is one.
pub fn client_hello_with_ticket(
    session_id: &[u8],
    identities: &[Vec<u8>],
    tls13: bool,
    record: usize,
    padding: usize,
    ticket: Option<&[u8]>,
) -> Vec<u8> {
    let mut ext = Vec::new();
    let mut extension = |kind: u16, data: &[u8]| {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext.extend_from_slice(data);
    };
    let name = b"localhost";
    let mut sni = vec![0, (name.len() + 3) as u8, 0, 0, name.len() as u8];
    sni.extend_from_slice(name);
    extension(0, &sni);
    extension(10, &[0, 4, 0x00, 0x1d, 0x00, 0x17]); // x25519, secp256r1
    extension(11, &[1, 0]); // uncompressed points
    extension(13, &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]);
    extension(23, &[]); // extended master secret
    if padding > 0 {
        extension(21, &vec![0; padding]);
    }
    if let Some(ticket) = ticket {
        extension(35, ticket);
    }
    if tls13 {
        extension(43, &[4, 3, 4, 3, 3]);
        extension(45, &[1, 1]); // psk_dhe_ke
        let mut share = vec![0, 36, 0x00, 0x1d, 0, 32];
        share.extend([9; 32]);
        extension(51, &share);
    } else {
        extension(43, &[2, 3, 3]);
    }
    if !identities.is_empty() {
        let mut ids = Vec::new();
        for id in identities {
            ids.extend_from_slice(&(id.len() as u16).to_be_bytes());
            ids.extend_from_slice(id);
            ids.extend_from_slice(&[0, 0, 0, 7]);
        }
        let mut binders = Vec::new();
        for _ in identities {
            binders.push(32);
            binders.extend([9; 32]);
        }
        let mut psk = (ids.len() as u16).to_be_bytes().to_vec();
        psk.extend_from_slice(&ids);
        psk.extend_from_slice(&(binders.len() as u16).to_be_bytes());
        psk.extend_from_slice(&binders);
        extension(41, &psk); // last, as RFC 8446 requires
    }
    let mut body = vec![3, 3];
    body.extend([7; 32]);
    body.push(session_id.len() as u8);
    body.extend_from_slice(session_id);
    body.extend_from_slice(&[0, 6, 0x13, 0x01, 0x13, 0x02, 0xc0, 0x2b, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut message = vec![1];
    message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    message.extend_from_slice(&body);
    records_of(&message, record)
}

/// `message` in handshake records of at most `record` bytes each.
pub fn records_of(message: &[u8], record: usize) -> Vec<u8> {
    records(22, [3, 1], message, record)
}

/// `payload` in records of content type `kind` and record version `version`, at most
/// `size` bytes each (an empty payload makes no record).
pub fn records(kind: u8, version: [u8; 2], payload: &[u8], size: usize) -> Vec<u8> {
    let mut records = Vec::new();
    for chunk in payload.chunks(size.max(1)) {
        records.extend_from_slice(&[kind, version[0], version[1]]);
        records.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        records.extend_from_slice(chunk);
    }
    records
}

/// The handshake message types at the start of a server's reply, in order, from its
/// handshake records up to the first record of another type.
pub fn handshake_types(reply: &[u8]) -> Vec<u8> {
    let mut messages = Vec::new();
    let mut rest = reply;
    while let [22, _, _, a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        let Some(payload) = tail.get(..len) else {
            break;
        };
        messages.extend_from_slice(payload);
        rest = &tail[len..];
    }
    let mut types = Vec::new();
    let mut rest = &messages[..];
    while let [kind, a, b, c, tail @ ..] = rest {
        types.push(*kind);
        let len = usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c);
        rest = tail.get(len..).unwrap_or_default();
    }
    types
}

/// The cipher suites [`client_hello`] offers.
pub const SUITES: [u16; 3] = [0x1301, 0x1302, 0xc02b];

/// How a server answered a ClientHello, read from the start of its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A ServerHello that accepts a pre-shared key: a TLS 1.3 resumption (early data
    /// included, had there been any).
    Resumes,
    /// A ServerHello without one: a full handshake.
    Full,
    /// No ServerHello (an alert, a hang-up, or too little).
    NoServerHello,
}

/// Reads the ServerHello at the start of `reply`.
pub fn answer(reply: &[u8]) -> Answer {
    let Some(hello) = server_hello_extensions(reply) else {
        return Answer::NoServerHello;
    };
    let mut rest = hello;
    while let [a, b, c, d, tail @ ..] = rest {
        let (kind, len) = (
            u16::from_be_bytes([*a, *b]),
            usize::from(u16::from_be_bytes([*c, *d])),
        );
        if kind == 41 {
            return Answer::Resumes;
        }
        rest = tail.get(len..).unwrap_or_default();
    }
    Answer::Full
}

fn server_hello_extensions(reply: &[u8]) -> Option<&[u8]> {
    let (header, payload) = (reply.get(..5)?, reply.get(5..)?);
    if header[0] != 22 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let record = payload.get(..len)?;
    let (&kind, body) = record.split_first()?;
    if kind != 2 {
        return None;
    }
    let body = body.get(3..)?; // 24-bit length
    let rest = body.get(2 + 32..)?; // version, random
    let (&id_len, rest) = rest.split_first()?;
    let rest = rest.get(usize::from(id_len) + 2 + 1..)?; // id, suite, compression
    let ext_len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    rest.get(2..2 + ext_len)
}
