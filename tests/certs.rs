//! The certificates shipped in `certs/` still work, and will for at least a year.
//!
//! When this fails: regenerate them with `cargo run --example make_certs` and commit
//! `certs/`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{RootCertStore, ServerConfig};

const REGENERATE: &str = "regenerate with `cargo run --example make_certs` and commit certs/";

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn certificates(path: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(repo(path))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn server_certificate_verifies_for_every_name_a_year_from_now() {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in certificates("certs/ca.crt") {
        roots.add(ca).unwrap();
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let chain = certificates("certs/server.crt");
    assert_eq!(chain.len(), 1);
    let a_year_from_now = SystemTime::now() + Duration::from_secs(366 * 86_400);
    let then = UnixTime::since_unix_epoch(
        a_year_from_now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap(),
    );
    for name in ["localhost", "127.0.0.1", "::1"] {
        let name = ServerName::try_from(name).unwrap();
        let verified = verifier.verify_server_cert(&chain[0], &[], &name, &[], then);
        assert!(
            verified.is_ok(),
            "certs/server.crt is not valid for {name:?} a year from now ({:?}): {REGENERATE}",
            verified.err()
        );
    }
    let elsewhere = ServerName::try_from("example.com").unwrap();
    let now = UnixTime::now();
    assert!(
        verifier
            .verify_server_cert(&chain[0], &[], &elsewhere, &[], now)
            .is_err()
    );
}

#[test]
fn server_key_is_ecdsa_p256_and_fits_the_certificate() {
    let key = PrivateKeyDer::from_pem_file(repo("certs/server.key")).unwrap();
    let der = key.secret_der();
    let ec_public_key = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let prime256v1 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    assert!(
        has(&ec_public_key) && has(&prime256v1),
        "not an ECDSA P-256 key: {REGENERATE}"
    );
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certificates("certs/server.crt"), key.clone_key());
    assert!(
        config.is_ok(),
        "certs/server.key does not fit certs/server.crt: {REGENERATE}"
    );
}
