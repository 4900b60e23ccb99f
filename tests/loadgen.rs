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
        let at = |q: &str| latency[q].as_f64().unwrap();
        let quantiles = ["p50", "p90", "p99", "p99.9", "max"].map(at);
        assert!(quantiles[0] > 0.0, "{report}");
        assert!(quantiles.is_sorted(), "quantiles in order: {report}");
        assert_eq!(
            latency["count"], 40,
            "every handshake in the histogram: {report}"
        );
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

#[test]
fn the_table_ends_with_a_latency_chart_of_every_handshake_and_a_closed_pipe_is_no_panic() {
    let server = EchoServer::start(&[]);
    let run = |stdout: std::process::Stdio| {
        Command::new(example_binary("loadgen"))
            .args(["--connect", &server.addr, "-n", "30", "-c", "2"])
            .arg("--ca")
            .arg(repo("certs/ca.crt"))
            .stdout(stdout)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let out = run(std::process::Stdio::piped())
        .wait_with_output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let chart: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "handshake latency")
        .skip(1)
        .collect();
    assert!(!chart.is_empty() && chart.len() <= 10, "{text}");
    // Each bucket: `FROM - TO ms COUNT BARS`; the counts add up to every connection.
    let total: u64 = chart
        .iter()
        .map(|l| l.split_whitespace().nth(4).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 30, "{text}");
    assert!(text.contains("handshake p99.9"), "{text}");
    // Stdout closed before the report is written: a clean exit, no panic message.
    let mut child = run(std::process::Stdio::piped());
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
}
