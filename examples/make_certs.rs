//! Regenerates the certificates in `certs/`: a CA, and an ECDSA P-256 server certificate
//! it signed for `localhost`, `127.0.0.1` and `::1`, valid for ten years from today.
//!
//! ```text
//! cargo run --example make_certs            # writes certs/ca.crt, server.crt, server.key
//! cargo run --example make_certs -- DIR     # writes them into DIR instead
//! ```
//!
//! The CA's private key is not written anywhere: each run makes a new CA and a new server
//! certificate together. These are for local testing only; never trust `ca.crt` beyond it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// How long the certificates stay valid.
const VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "certs".into()));
    let now = SystemTime::now();
    // Backdate a day so that a slightly slow clock elsewhere still accepts them.
    let not_before = now - Duration::from_secs(86_400);
    let not_after = now + VALIDITY;

    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name("rustls-session-cache example CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = not_before.into();
    ca_params.not_after = not_after.into();
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
    params.distinguished_name = name("localhost");
    params.subject_alt_names.extend([
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]);
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    let key = KeyPair::generate()?; // ECDSA P-256 with SHA-256, rcgen's default.
    let server = params.signed_by(&key, &ca)?;

    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("ca.crt"), ca.as_ref().pem())?;
    std::fs::write(dir.join("server.crt"), server.pem())?;
    std::fs::write(dir.join("server.key"), key.serialize_pem())?;
    println!(
        "wrote {0}/ca.crt, {0}/server.crt, {0}/server.key",
        dir.display()
    );
    Ok(())
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}
