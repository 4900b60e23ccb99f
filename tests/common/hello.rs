//! ClientHellos built byte by byte, for the parser's tests and hostile-client tests.
#![allow(dead_code, unreachable_pub)]

/// The largest payload of one TLS record.
pub const MAX_RECORD: usize = 16 * 1024;

/// A ClientHello with this session id and these identities, in TLS records of at
/// most `record` bytes each.
pub fn client_hello(
    session_id: &[u8],
    identities: &[Vec<u8>],
    tls13: bool,
    record: usize,
) -> Vec<u8> {
    let mut ext = Vec::new();
    let versions: &[u8] = if tls13 { &[3, 4, 3, 3] } else { &[3, 3] };
    ext.extend_from_slice(&43u16.to_be_bytes());
    ext.extend_from_slice(&(versions.len() as u16 + 1).to_be_bytes());
    ext.push(versions.len() as u8);
    ext.extend_from_slice(versions);
    // An extension this parser skips: a 1,200-byte key share, as post-quantum ones are.
    ext.extend_from_slice(&51u16.to_be_bytes());
    ext.extend_from_slice(&1200u16.to_be_bytes());
    ext.extend(std::iter::repeat_n(0xab, 1200));
    if !identities.is_empty() {
        let mut ids = Vec::new();
        for id in identities {
            ids.extend_from_slice(&(id.len() as u16).to_be_bytes());
            ids.extend_from_slice(id);
            ids.extend_from_slice(&[0, 0, 0, 7]);
        }
        let binders = [0u8, 33, 32]
            .iter()
            .copied()
            .chain([9; 32])
            .collect::<Vec<_>>();
        ext.extend_from_slice(&41u16.to_be_bytes());
        ext.extend_from_slice(&((ids.len() + 2 + binders.len()) as u16).to_be_bytes());
        ext.extend_from_slice(&(ids.len() as u16).to_be_bytes());
        ext.extend_from_slice(&ids);
        ext.extend_from_slice(&binders);
    }
    let mut body = vec![3, 3];
    body.extend([7; 32]);
    body.push(session_id.len() as u8);
    body.extend_from_slice(session_id);
    body.extend_from_slice(&[0, 4, 0x13, 0x01, 0xc0, 0x2b, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut message = vec![1];
    message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    message.extend_from_slice(&body);
    let mut records = Vec::new();
    for chunk in message.chunks(record) {
        records.extend_from_slice(&[22, 3, 1]);
        records.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        records.extend_from_slice(chunk);
    }
    records
}
