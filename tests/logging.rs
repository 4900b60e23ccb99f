//! What the cache logs: quiet at `info` during real handshakes, never a secret, targets
//! under the crate name, and a `warn` for refused sessions.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use rustls::HandshakeKind::{Full, Resumed};
use rustls::server::StoresServerSessions;
use rustls_session_cache::{Session, SessionCache};
use tracing_subscriber::fmt::MakeWriter;

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs `f` with every event at `trace` and above captured; returns the lines.
fn captured(f: impl FnOnce()) -> Vec<String> {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(lines.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    text.lines().map(str::to_owned).collect()
}

/// Fails naming the form, and the line, if the lines show a rendering of `secret`.
fn assert_not_in(lines: &[String], secret: &[u8], what: &str) {
    if let Some(form) = leak::Output::new(&lines.join("\n")).shows(secret) {
        let line = lines
            .iter()
            .find(|line| leak::leaked(line, secret).is_some());
        panic!("{what} leaked as {form:?}: {line:?}");
    }
}

#[test]
fn handshakes_log_nothing_at_info_and_never_a_secret() {
    let sessions = Arc::new(Mutex::new(Vec::<Session>::new()));
    let lines = captured(|| {
        for version in VERSIONS {
            let keep = sessions.clone();
            let cache = SessionCache::builder()
                .on_new_session(move |s| keep.lock().unwrap().push(s.clone()))
                .build()
                .unwrap();
            let (server, client) = (server_config(version, &cache), client_config(version));
            handshake(&server, &client).assert_kind(Full);
            handshake(&server, &client).assert_kind(Resumed);
            assert_eq!(cache.get(&[0xab; 32]), None);
            cache.clear();
        }
    });
    let sessions = sessions.lock().unwrap();
    // TLS 1.2: one session, then none on resumption; TLS 1.3: two tickets, then two more.
    assert_eq!(sessions.len(), 1 + 4);
    assert!(!lines.is_empty(), "trace and debug events were emitted");
    for line in &lines {
        assert!(
            line.contains("TRACE") || line.contains("DEBUG"),
            "a handshake logged above debug: {line}"
        );
        assert!(
            line.contains("rustls_session_cache"),
            "target outside the crate: {line}"
        );
    }
    for session in sessions.iter() {
        assert_not_in(&lines, session.value(), "a value");
        assert_not_in(&lines, session.id(), "a whole id");
    }
    for event in [
        "session stored",
        "session hit",
        "session miss",
        "session removed",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(event)),
            "no {event:?} event in {lines:#?}"
        );
    }
}

#[test]
fn no_event_shows_a_planted_secret_in_any_form() {
    // A secret and ids whose every rendering is searched, driven through every event
    // the cache emits: stored, hit, miss, taken, replaced, evicted, expired on lookup,
    // flushed, cleared, refused, supplied by the lookup callback, panicked.
    const SECRET: &[u8] = b"TOP-SECRET-MASTER-KEY-do-not-log";
    let secret = |n: u8| [SECRET, &[n]].concat();
    let planted_id = |n: u8| [b"planted-session-id-".as_slice(), &[n; 13]].concat();
    let (ids, secrets): (Vec<_>, Vec<_>) = (0..=255).map(|n| (planted_id(n), secret(n))).unzip();
    let lines = captured(|| {
        let cache = SessionCache::builder()
            .capacity(200)
            .max_session_size(200)
            .on_remove(|_, _| {})
            .lookup(move |id| Some(Session::new(id, secret(1))))
            .build()
            .unwrap();
        let panicking = SessionCache::builder()
            .on_new_session(|_| panic!("application bug"))
            .build()
            .unwrap();
        panicking.put(ids[0].clone(), secrets[0].clone());
        assert!(cache.put(ids[1].clone(), secrets[1].clone()));
        assert_eq!(cache.get(&ids[1]), Some(secrets[1].clone()));
        assert_eq!(
            cache.get(&ids[2]).as_deref(),
            Some(&secret(1)[..]),
            "the callback"
        );
        assert!(cache.add_session(Session::new(ids[1].clone(), secrets[3].clone())));
        assert_eq!(cache.take(&ids[1]), Some(secrets[3].clone()));
        assert!(!cache.put(ids[4].clone(), [secrets[4].clone(), vec![0; 300]].concat()));
        cache
            .add_session(Session::new(ids[5].clone(), secrets[5].clone()).with_created(long_ago()));
        assert_eq!(
            cache.get(&ids[5]).as_deref(),
            Some(&secret(1)[..]),
            "expired, then the callback"
        );
        for n in 6..=7 {
            cache.add_session(
                Session::new(ids[n].clone(), secrets[n].clone()).with_created(long_ago()),
            );
        }
        // 256 ids into a cache of 200: evictions.
        for n in 8..=255 {
            assert!(cache.put(ids[n].clone(), secrets[n].clone()));
        }
        for n in 0..=255 {
            cache.put(ids[n].clone(), secrets[n].clone());
        }
        cache
            .add_session(Session::new(ids[9].clone(), secrets[8].clone()).with_created(long_ago()));
        assert_eq!(cache.flush_expired(std::time::SystemTime::now()), 1);
        assert!(cache.clear() > 0);
        assert!(cache.stats().cache_full > 0, "{:?}", cache.stats());
    });
    for event in [
        "session stored",
        "session hit",
        "session miss",
        "session removed",
        "session refused",
        "session supplied by lookup callback",
        "expired sessions flushed",
        "callback panicked",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(event)),
            "no {event:?} in {lines:#?}"
        );
    }
    for cause in ["taken", "evicted", "expired", "removed"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains("session removed") && l.contains(cause)),
            "no removal as {cause}"
        );
    }
    // Every value starts with SECRET, and every id with the same 19 bytes: the search
    // (the first 15 bytes' renderings) covers them all at once.
    assert_not_in(&lines, SECRET, "the planted secret");
    assert_not_in(&lines, &ids[0], "a whole planted id");
}

#[test]
fn refused_sessions_warn_once_per_period_without_secrets() {
    let mut oversized = 0;
    let lines = captured(|| {
        let cache = SessionCache::builder()
            .max_session_size(64)
            .build()
            .unwrap();
        // One client with a long certificate chain, handshaking again and again.
        for _ in 0..100 {
            assert!(!cache.put(vec![0x5a; 32], vec![0xc3; 100]));
        }
        oversized = cache.stats().oversized;
    });
    assert_eq!(oversized, 100, "every refusal is counted");
    let warns: Vec<_> = lines.iter().filter(|l| l.contains("WARN")).collect();
    // The test runs in well under the 10 s period, so one line, for the first refusal.
    assert_eq!(warns.len(), 1, "{lines:#?}");
    assert!(warns[0].contains("session refused"), "{}", warns[0]);
    assert!(
        warns[0].contains("len=132") && warns[0].contains("limit=64"),
        "{}",
        warns[0]
    );
    assert!(warns[0].contains("suppressed=0"), "{}", warns[0]);
    assert!(warns[0].contains("id_prefix=5a5a5a5a…"), "{}", warns[0]);
    assert!(!warns[0].contains("c3c3"), "{}", warns[0]);
}

#[test]
fn a_panicking_callback_is_logged_at_error() {
    let lines = captured(|| {
        let cache = SessionCache::builder()
            .on_new_session(|_| panic!("application bug"))
            .build()
            .unwrap();
        cache.put(id(1), value(1));
    });
    let errors: Vec<_> = lines.iter().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{lines:#?}");
    assert!(
        errors[0].contains("callback=\"on_new_session\""),
        "{}",
        errors[0]
    );
}

#[test]
fn the_leak_search_finds_every_rendering_of_a_secret() {
    let secret = b"TOP-SECRET-MASTER-KEY".to_vec();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    for printed in [
        format!("value: {}", String::from_utf8_lossy(&secret)),
        format!("value={hex}"),
        format!("value={}", hex.to_uppercase()),
        format!("value: {secret:?}"),
        format!("value: {secret:#?}"),
        format!("value: {secret:x?}"),
        format!("value: {secret:02X?}"),
        // Base64 of the whole secret, as a `base64` crate would print it.
        "value=VE9QLVNFQ1JFVC1NQVNURVItS0VZ".to_owned(),
    ] {
        assert!(
            leak::leaked(&printed, &secret).is_some(),
            "missed: {printed}"
        );
    }
    // A secret with bytes that base64 maps to `+` and `/`, standard and URL-safe.
    let binary = [0xfb, 0xef, 0xff, 0x3e, 0x01, 0x02];
    assert!(leak::leaked("k=++//PgEC", &binary).is_some());
    assert!(leak::leaked("k=--__PgEC", &binary).is_some());
    // And nothing is found where nothing leaked.
    assert_eq!(
        leak::leaked("Session { id_prefix: 736f6d65…, value_len: 21 }", &secret),
        None
    );
}
