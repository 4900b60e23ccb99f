//! Finding a secret in text output, whatever form it was printed in.
//!
//! A search for the secret as text alone cannot catch a leak: `{:?}` on bytes prints a
//! list of decimal numbers (`[84, 79, 80, ...]`), a log field may print hex, and a
//! careless one base64. So a secret is searched for in every rendering below.

/// How many leading bytes of a secret are searched for: a leak of the whole secret, or
/// of any longer buffer that starts with it, contains the rendering of these. 15 is a
/// multiple of 3, so that base64 of the prefix is a prefix of base64 of the whole.
const PREFIX: usize = 15;

/// Every way the first bytes of `secret` can show in text output: as text, as lower- and
/// upper-case hex, as the lists `{:?}`, `{:x?}`, `{:X?}`, `{:02x?}` and `{:02X?}` print
/// (without their closing bracket), and as standard and URL-safe base64. White space is
/// removed, so that pretty-printed (`{:#?}`) lists match too.
pub fn renderings(secret: &[u8]) -> Vec<String> {
    let bytes = &secret[..secret.len().min(PREFIX)];
    let open = |list: String| list.trim_end_matches(']').to_owned();
    let mut forms = vec![
        String::from_utf8_lossy(bytes).into_owned(),
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
        bytes.iter().map(|b| format!("{b:02X}")).collect(),
        open(format!("{bytes:?}")),
        open(format!("{bytes:x?}")),
        open(format!("{bytes:X?}")),
        open(format!("{bytes:02x?}")),
        open(format!("{bytes:02X?}")),
    ];
    let whole_triples = &bytes[..bytes.len() / 3 * 3];
    if !whole_triples.is_empty() {
        let standard = base64(whole_triples);
        forms.push(standard.replace('+', "-").replace('/', "_"));
        forms.push(standard);
    }
    forms.iter().map(|form| without_space(form)).collect()
}

/// The rendering of `secret` that `text` contains, if any.
pub fn leaked(text: &str, secret: &[u8]) -> Option<String> {
    Output::new(text).shows(secret)
}

/// Text output prepared once for many searches.
pub struct Output(String);

impl Output {
    pub fn new(text: &str) -> Self {
        Self(without_space(text))
    }

    /// The rendering of `secret` this output contains, if any.
    pub fn shows(&self, secret: &[u8]) -> Option<String> {
        renderings(secret)
            .into_iter()
            .find(|form| self.0.contains(form.as_str()))
    }
}

fn without_space(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Standard base64 of whole 3-byte groups (so no padding is needed).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    bytes
        .chunks_exact(3)
        .flat_map(|group| {
            let n = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
            [18, 12, 6, 0].map(|shift| char::from(ALPHABET[(n >> shift & 63) as usize]))
        })
        .collect()
}
