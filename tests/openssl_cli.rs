//! The echo server example as users run it (the built binary, its flags, its output),
//! against a client nobody on this project wrote: the `openssl s_client` command.
//!
//! Needs the `openssl` command-line tool (Debian package `openssl`); `.ci/run` installs it.
//! Without it these tests fail, naming the package; they never skip.

mod common;

use std::process::Stdio;

use common::process::{EchoServer, fails_with_one_line, openssl, s_client, s_client_output};

/// A first connection that saves its session, and a second that offers it; returns both
/// summary lines.
fn twice(addr: &str, version: &str, first_line: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("session.pem");
    let first = s_client(addr, version, ("-sess_out", &session), first_line);
    let second = s_client(addr, version, ("-sess_in", &session), "hello again");
    (first, second)
}

#[test]
fn default_mode_resumes_tls12_and_tls13() {
    let server = EchoServer::start(&[]);
    let (first, second) = twice(&server.addr, "-tls1_2", "hello");
    assert!(first.starts_with("New, TLSv1.2, Cipher is "), "{first}");
    assert!(
        second.starts_with("Reused, TLSv1.2, Cipher is "),
        "{second}"
    );
    let (first, second) = twice(&server.addr, "-tls1_3", "hello");
    assert!(first.starts_with("New, TLSv1.3, Cipher is "), "{first}");
    assert!(
        second.starts_with("Reused, TLSv1.3, Cipher is "),
        "{second}"
    );

    let (status, stats, logs) = server.terminate();
    assert!(status.success(), "{status}");
    assert!(stats.contains(" hits=2 misses=0 "), "{stats}");
    assert!(stats.ends_with(" full=2 resumed=2 limited=0"), "{stats}");
    let connections: Vec<_> = logs.iter().filter(|l| l.contains(" connection ")).collect();
    assert_eq!(connections.len(), 4, "{logs:#?}");
    for (line, (version, kind)) in connections.iter().zip([
        ("TLSv1_2", "full"),
        ("TLSv1_2", "resumed"),
        ("TLSv1_3", "full"),
        ("TLSv1_3", "resumed"),
    ]) {
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("peer=127.0.0.1:"), "{line}");
        assert!(line.contains(&format!("version={version}")), "{line}");
        assert!(line.contains("suite=TLS"), "{line}");
        assert!(line.contains(&format!("handshake=\"{kind}\"")), "{line}");
    }
}

#[test]
fn no_internal_lookup_never_resumes() {
    let server = EchoServer::start(&["--mode", "no-internal-lookup"]);
    for (version, name) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (first, second) = twice(&server.addr, version, "hello");
        assert!(first.starts_with(&format!("New, {name}")), "{first}");
        assert!(second.starts_with(&format!("New, {name}")), "{second}");
    }
    let (status, stats, _) = server.terminate();
    assert!(status.success());
    assert!(
        stats.contains(" hits=0 misses=0 "),
        "nothing looked up: {stats}"
    );
    // One TLS 1.2 session and two TLS 1.3 tickets per full handshake, two of each.
    assert!(
        stats.contains(" entries=6 "),
        "stored all the same: {stats}"
    );
}

#[test]
fn off_mode_never_resumes_tls12() {
    let server = EchoServer::start(&["--mode", "off", "--tls", "1.2"]);
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("session.pem");
    for _ in 0..2 {
        let (summary, output) =
            s_client_output(&server.addr, "-tls1_2", ("-sess_out", &session), "hello");
        assert!(summary.starts_with("New, TLSv1.2"), "{summary}");
        // The server sent an empty session id: there is nothing to resume with, so
        // s_client saves no session at all.
        assert!(
            output.iter().any(|l| l.trim() == "Session-ID:"),
            "{output:#?}"
        );
        assert!(!session.exists(), "s_client saved a resumable session");
    }
    let (_, stats, _) = server.terminate();
    assert!(stats.contains(" hits=0 misses=0 "), "{stats}");
    assert!(stats.contains(" entries=0 "), "{stats}");
    assert!(stats.ends_with(" full=2 resumed=0 limited=0"), "{stats}");
}

#[test]
fn no_internal_store_resumes_only_clients_that_ask() {
    let server = EchoServer::start(&["--mode", "no-internal-store"]);
    for (version, name) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (_, refused) = twice(&server.addr, version, "hello");
        assert!(refused.starts_with(&format!("New, {name}")), "{refused}");
        let (_, admitted) = twice(&server.addr, version, "remember me");
        assert!(
            admitted.starts_with(&format!("Reused, {name}")),
            "{admitted}"
        );
    }
    let (status, _, logs) = server.terminate();
    assert!(status.success());
    let asked = logs
        .iter()
        .filter(|l| l.contains("client asked to be remembered"));
    assert_eq!(asked.count(), 2, "{logs:#?}");
}

#[test]
fn tls_flag_limits_the_versions_offered() {
    let server = EchoServer::start(&["--tls", "1.3"]);
    let dir = tempfile::tempdir().unwrap();
    let out = openssl()
        .args(["s_client", "-connect", &server.addr, "-tls1_2"])
        .arg("-sess_out")
        .arg(dir.path().join("s.pem"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a TLS 1.2-only client must fail");
    let summary = s_client(
        &server.addr,
        "-tls1_3",
        ("-sess_out", &dir.path().join("t.pem")),
        "hi",
    );
    assert!(summary.starts_with("New, TLSv1.3"), "{summary}");
}

#[test]
fn stats_interval_prints_stats_lines() {
    let server = EchoServer::start(&["--stats-interval", "1"]);
    let line = server
        .stdout
        .wait_for("periodic stats", |l| l.starts_with("stats: "));
    assert!(
        line.contains(" hits=0 ") && line.contains(" entries=0 "),
        "{line}"
    );
    let (status, _, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn bad_flags_and_files_fail_with_one_clear_line() {
    assert!(fails_with_one_line(&["--mode", "bogus"]).contains("unknown cache mode \"bogus\""));
    assert!(fails_with_one_line(&["--mode", "off,server"]).contains("contradict"));
    assert!(fails_with_one_line(&["--tls", "1.4"]).contains("possible values: 1.2, 1.3, both"));
    assert!(fails_with_one_line(&["--capacity", "0"]).contains("capacity must be at least 1"));
    assert!(fails_with_one_line(&["--timeout", "0"]).contains("out of range"));
    assert!(fails_with_one_line(&["--timeout", "604801"]).contains("out of range"));
    assert!(fails_with_one_line(&["--stats-interval", "-1"]).contains("'-1'"));
    assert!(fails_with_one_line(&["--no-such-flag"]).contains("--no-such-flag"));
    assert!(fails_with_one_line(&["--max-connections", "0"]).contains("not in 1..=1000000"));

    let missing = fails_with_one_line(&["--cert", "/no/such/server.crt"]);
    assert!(
        missing.contains("cannot read certificates from /no/such/server.crt"),
        "{missing}"
    );

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let garbage = garbage.to_str().unwrap();
    let unreadable = fails_with_one_line(&["--key", garbage]);
    assert!(
        unreadable.contains("cannot read a private key from"),
        "{unreadable}"
    );

    let other = dir.path().join("other.key");
    std::fs::write(&other, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let other = other.to_str().unwrap();
    let mismatch = fails_with_one_line(&["--key", other]);
    assert!(
        mismatch.contains("does not fit the certificate"),
        "{mismatch}"
    );
}
