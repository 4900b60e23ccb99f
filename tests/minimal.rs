//! `examples/minimal.rs`, the built binary, as a newcomer runs it: it handshakes, and
//! resumes, over TLS 1.3 and TLS 1.2.

mod common;

use std::process::{Command, Stdio};

use common::process::{Lines, example_binary, repo};
use rustls::HandshakeKind::{self, Full, Resumed};
use rustls::pki_types::ServerName;
use rustls::version::{TLS12, TLS13};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Connects, reads the server's line to the end; the handshake's kind and the line.
async fn connect(client: &TlsConnector, addr: &str) -> (HandshakeKind, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = client.connect(name, tcp).await.unwrap();
    let mut line = String::new();
    tls.read_to_string(&mut line).await.unwrap();
    (tls.get_ref().1.handshake_kind().unwrap(), line)
}

#[tokio::test]
async fn the_minimal_server_handshakes_and_resumes() {
    // Run from the repository, as `cargo run --example minimal` is: it reads certs/.
    let mut child = Killed(
        Command::new(example_binary("minimal"))
            .arg("127.0.0.1:0")
            .current_dir(repo(""))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = Lines::collect(child.0.stdout.take().unwrap());
    let listening = stdout.wait_for("listening", |l| l.starts_with("listening on "));
    let addr = listening.trim_start_matches("listening on ").to_owned();

    let mut expected = Vec::new();
    for (version, cached) in [(&TLS13, [2, 3]), (&TLS12, [4, 4])] {
        let client = common::tls_connector(version);
        for (kind, cached) in [Full, Resumed].into_iter().zip(cached) {
            let name = if kind == Full { "full" } else { "resumed" };
            let (seen, line) = connect(&client, &addr).await;
            assert_eq!(
                (seen, line.as_str()),
                (kind, format!("hello, {name} handshake\n").as_str())
            );
            expected.push(format!("{name} handshake, {cached} cached"));
        }
    }
    // The server's own account, a line per connection, in order.
    for want in &expected {
        let line = stdout.wait_for(want, |l| l.contains(": ") && l.ends_with(want.as_str()));
        assert!(line.starts_with("127.0.0.1:"), "{line}");
    }
}

/// The server process, killed when the test ends, failed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
