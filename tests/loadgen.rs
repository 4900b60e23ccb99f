//! The load generator example, run as users run it, against the echo server binary.

mod common;

use std::process::Command;

use common::process::{EchoServer, example_binary, repo};

/// Runs loadgen with `flags` against `server`, with `--json`; returns its report.
fn loadgen(server: &EchoServer, flags: &[&str]) -> serde_json::Value {
    let out = Command::new(example_binary("loadgen"))
        .args(["--connect", &server.addr, "--json"])
        .arg("--ca")
        .arg(repo("certs/ca.crt"))
        .args(flags)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "loadgen failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn one_at_a_time_every_connection_after_the_first_resumes() {
    let server = EchoServer::start(&[]);
    for tls in ["1.2", "1.3"] {
        let report = loadgen(
            &server,
            &["-n", "40", "-c", "1", "--resume", "1", "--tls", tls],
        );
        assert_eq!(report["connections"], 40, "{report}");
        assert_eq!(report["errors"], 0, "{report}");
        assert_eq!(report["asked_to_resume"], 40, "{report}");
        assert_eq!(report["resumed"], 39, "TLS {tls}: {report}");
        assert_eq!(report["offered"], 39, "all but the first: {report}");
        assert_eq!(report["resumed_of_offered"], 39, "{report}");
        let latency = &report["handshake_ms"];
        let (p50, p99, max) = (
            latency["p50"].as_f64(),
            latency["p99"].as_f64(),
            latency["max"].as_f64(),
        );
        assert!(p50 > Some(0.0) && p50 <= p99 && p99 <= max, "{report}");
    }
    let (status, stats, _) = server.terminate();
    assert!(status.success());
    assert!(stats.contains(" full=2 resumed=78 "), "{stats}");
}

#[test]
fn the_resume_share_is_what_is_asked_and_big_payloads_echo() {
    let server = EchoServer::start(&["--tls", "1.2"]);
    let report = loadgen(
        &server,
        &[
            "-n",
            "100",
            "-c",
            "4",
            "--resume",
            "0.25",
            "--payload",
            "100000",
        ],
    );
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["asked_to_resume"], 25, "{report}");
    let resumed = report["resumed"].as_u64().unwrap();
    assert!((1..=25).contains(&resumed), "{report}");
    let none = loadgen(&server, &["-n", "20", "--resume", "0"]);
    assert_eq!(
        (none["asked_to_resume"].as_u64(), none["resumed"].as_u64()),
        (Some(0), Some(0))
    );
}

/// Each simulated client has its own store: with 10 clients taking turns, one at a time,
/// each client's first connection offers nothing and every later one resumes.
#[test]
fn each_client_has_its_own_session_store() {
    let server = EchoServer::start(&[]);
    for tls in ["1.2", "1.3"] {
        let report = loadgen(
            &server,
            &[
                "-n",
                "50",
                "-c",
                "1",
                "--clients",
                "10",
                "--resume",
                "1",
                "--tls",
                tls,
            ],
        );
        assert_eq!(report["errors"], 0, "{report}");
        assert_eq!(report["clients"], 10, "{report}");
        assert_eq!(report["offered"], 40, "TLS {tls}: {report}");
        assert_eq!(report["resumed"], 40, "TLS {tls}: {report}");
        assert_eq!(report["offered_resumption_rate"], 1.0, "{report}");
    }
}

#[test]
fn a_server_that_is_not_there_is_an_error() {
    let out = Command::new(example_binary("loadgen"))
        .args(["--connect", "127.0.0.1:9", "-n", "3", "--json"])
        .arg("--ca")
        .arg(repo("certs/ca.crt"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["errors"], 3, "{report}");
}
