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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        for session in sessions.iter() {
            assert!(
                !line.contains(&hex(session.value())),
                "a value leaked: {line}"
            );
            assert!(
                !line.contains(&hex(session.id())),
                "a whole id leaked: {line}"
            );
        }
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
