//! The crate in a tokio-rustls server, and nothing else: `cargo run --example minimal`,
//! then `openssl s_client -connect 127.0.0.1:4433 -CAfile certs/ca.crt -tls1_2 -reconnect`
//! (TLS 1.3 tickets come after the handshake, which `-reconnect` does not wait for).
//! An address argument listens elsewhere (`127.0.0.1:0` picks a free port).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{HandshakeKind, ServerConfig};
use rustls_session_cache::SessionCache;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:4433".into());
    let certs = CertificateDer::pem_file_iter("certs/server.crt")?.collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file("certs/server.key")?;

    let mut config =
        ServerConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    // rustls keeps TLS 1.2 sessions and TLS 1.3 tickets here: an LRU of at most 20,480
    // sessions that expire after 300 s (rustls never checks a session's age itself),
    // whose secrets are wiped when they leave it. A TLS 1.3 ticket is taken out when it
    // is used, so it resumes once: what makes 0-RTT replay-safe.
    let cache = SessionCache::new(20_480);
    config.session_storage = cache.clone();
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (tcp, peer) = listener.accept().await?;
        let (acceptor, cache) = (acceptor.clone(), cache.clone());
        tokio::spawn(async move {
            // One client's failure ends its connection only.
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
            let kind = if resumed { "resumed" } else { "full" };
            println!("{peer}: {kind} handshake, {} cached", cache.len());
            let _ = tls
                .write_all(format!("hello, {kind} handshake\n").as_bytes())
                .await;
            let _ = tls.shutdown().await;
        });
    }
}
