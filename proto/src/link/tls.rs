//! Mutual TLS for the link, with rustls and the ring provider only.
//!
//! A private CA issues every certificate of a cluster (`orrery-master certs`):
//! - the master's carries the DNS names `NAME.master.orrery` and [`MASTER_NAME`]; satellites
//!   check [`MASTER_NAME`], so any master of the cluster will do and a satellite certificate
//!   (which lacks it) cannot pose as a master;
//! - a satellite's carries exactly one DNS name `NAME.satellite.orrery`: `NAME` is its identity,
//!   which the master reads from the *verified* certificate ([`satellite_identity`]) and looks
//!   up in its configuration. Messages never carry the identity.
//!
//! The master verifies client certificates against the CA (RFC 5280 path validation by
//! webpki: issuer, validity period, client-auth usage); a connection without a valid one fails
//! in the handshake, which the master logs with the peer's address and rustls' reason.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// The DNS name every master certificate carries and every satellite checks.
pub const MASTER_NAME: &str = "master.orrery";
/// The suffix of satellite identities: `NAME.satellite.orrery`.
pub const SATELLITE_SUFFIX: &str = ".satellite.orrery";
/// The suffix of a master's own name: `NAME.master.orrery`.
pub const MASTER_SUFFIX: &str = ".master.orrery";

/// Why TLS material could not be loaded or assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: no PEM certificate found")]
    NoCertificate { what: String },
    #[error("{what}: no PEM private key found ({reason})")]
    NoKey { what: String, reason: String },
    #[error("{what}: bad PEM: {reason}")]
    Pem { what: String, reason: String },
    #[error("CA certificate refused as a trust anchor: {0}")]
    TrustAnchor(String),
    #[error("the private key does not match the certificate ({0})")]
    KeyMismatch(String),
    #[error(
        "the certificate is not a valid master certificate of this cluster's CA for {MASTER_NAME}: {0}"
    )]
    Untrusted(String),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The PEM files of one end of the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster's CA certificate.
    pub ca: PathBuf,
    /// This end's certificate (chain).
    pub cert: PathBuf,
    /// This end's private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// TLS material in PEM form, loaded and checked to contain what it should.
#[derive(Clone)]
pub struct TlsMaterial {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    /// Where the CA certificate came from (its file), for error messages.
    ca_source: String,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("TlsMaterial")
            .field("ca_certs", &self.ca.len())
            .field("chain_certs", &self.chain.len())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certs(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what: what.to_owned(),
        });
    }
    Ok(certs)
}

fn key(what: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::NoKey {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

impl TlsMaterial {
    /// Reads and checks the three PEM files.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let m = Self {
            ca_pem: read(&files.ca)?,
            cert_pem: read(&files.cert)?,
            key_pem: read(&files.key)?,
            ca: vec![],
            chain: vec![],
            ca_source: String::new(),
        };
        m.check(
            &files.ca.display().to_string(),
            &files.cert.display().to_string(),
            &files.key.display().to_string(),
        )
    }

    /// Checks PEM text already in memory (certificates made on the fly, tests).
    pub fn from_pem(
        ca_pem: impl Into<Vec<u8>>,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Result<Self, TlsError> {
        Self {
            ca_pem: ca_pem.into(),
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
            ca: vec![],
            chain: vec![],
            ca_source: String::new(),
        }
        .check("CA certificate", "certificate", "private key")
    }

    fn check(mut self, ca_what: &str, cert_what: &str, key_what: &str) -> Result<Self, TlsError> {
        self.ca = certs(ca_what, &self.ca_pem)?;
        ca_what.clone_into(&mut self.ca_source);
        self.chain = certs(cert_what, &self.cert_pem)?;
        key(key_what, &self.key_pem)?;
        Ok(self)
    }

    /// Where the CA certificate came from: its file, or "CA certificate" for PEM given in
    /// memory (names the trust anchor in link error messages).
    pub fn ca_source(&self) -> &str {
        &self.ca_source
    }

    /// When this end's own certificate expires (notAfter), in seconds since the epoch.
    pub fn cert_not_after(&self) -> Option<i64> {
        not_after_seconds(self.own_certificate())
    }

    /// This end's own certificate (the first of its chain).
    pub fn own_certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }
}

/// The ring crypto provider every link configuration uses, whatever the process default.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(m: &TlsMaterial) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in &m.ca {
        roots
            .add(ca.clone())
            .map_err(|e| TlsError::TrustAnchor(e.to_string()))?;
    }
    Ok(Arc::new(roots))
}

/// Checks what a satellite will check of the master: the private key matches the
/// certificate, and the certificate chains to the cluster CA, is valid now and names
/// [`MASTER_NAME`]. [`server_config`] runs it, so `run` and `check-config` check the same.
pub fn check_master_material(m: &TlsMaterial) -> Result<(), TlsError> {
    use rustls::client::danger::ServerCertVerifier;
    let signing = provider()
        .key_provider
        .load_private_key(key("private key", &m.key_pem)?)
        .map_err(|e| TlsError::NoKey {
            what: "private key".into(),
            reason: e.to_string(),
        })?;
    rustls::sign::CertifiedKey::new(m.chain.clone(), signing)
        .keys_match()
        .map_err(|e| TlsError::KeyMismatch(e.to_string()))?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(m)?, provider())
            .build()
            .map_err(|e| TlsError::TrustAnchor(e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(MASTER_NAME)
        .map_err(|e| TlsError::Untrusted(e.to_string()))?;
    verifier
        .verify_server_cert(
            &m.chain[0],
            &m.chain[1..],
            &name,
            &[],
            rustls::pki_types::UnixTime::now(),
        )
        .map_err(|e| TlsError::Untrusted(e.to_string()))?;
    Ok(())
}

/// The master's server configuration: its own certificate, client certificates required and
/// verified against the cluster CA, TLS 1.2/1.3, ALPN `h2` (gRPC runs over HTTP/2). The
/// material is checked first ([`check_master_material`]).
pub fn server_config(m: &TlsMaterial) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    check_master_material(m)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(m)?, provider())
        .build()
        .map_err(|e| TlsError::TrustAnchor(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(m.chain.clone(), key("private key", &m.key_pem)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The satellite's client configuration for tonic: the cluster CA as the only trust anchor,
/// [`MASTER_NAME`] as the name to verify, and the satellite's certificate as client identity.
pub fn client_config(m: &TlsMaterial) -> tonic::transport::ClientTlsConfig {
    tonic::transport::ClientTlsConfig::new()
        .domain_name(MASTER_NAME)
        .ca_certificate(tonic::transport::Certificate::from_pem(&m.ca_pem))
        .identity(tonic::transport::Identity::from_pem(
            &m.cert_pem,
            &m.key_pem,
        ))
}

/// A satellite's identity: the `NAME` of `NAME.satellite.orrery`, one DNS label of letters,
/// digits and hyphens, lower case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SatelliteId(String);

impl SatelliteId {
    /// Checks a name given in configuration or on a command line (folded to lower case).
    pub fn new(name: &str) -> Result<Self, IdentityError> {
        let lower = name.to_ascii_lowercase();
        let ok = !lower.is_empty()
            && lower.len() <= 63
            && lower
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !lower.starts_with('-')
            && !lower.ends_with('-');
        if ok {
            Ok(Self(lower))
        } else {
            Err(IdentityError::BadName(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The DNS name its certificate carries.
    pub fn dns_name(&self) -> String {
        format!("{}{SATELLITE_SUFFIX}", self.0)
    }
}

impl fmt::Display for SatelliteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why no satellite identity could be read from a peer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("no client certificate")]
    NoCertificate,
    #[error("client certificate cannot be parsed: {0}")]
    BadCertificate(String),
    #[error("client certificate names no satellite (no DNS name *{SATELLITE_SUFFIX})")]
    NotASatellite,
    #[error("client certificate names several satellites ({0} and {1})")]
    Ambiguous(String, String),
    #[error("{0:?} is not a valid satellite name (one DNS label: letters, digits, hyphens)")]
    BadName(String),
}

/// Reads the satellite identity from a client certificate that rustls has already verified
/// against the cluster CA: its single DNS subject alternative name `NAME.satellite.orrery`.
pub fn satellite_identity(cert: &CertificateDer<'_>) -> Result<SatelliteId, IdentityError> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
    let mut found: Option<SatelliteId> = None;
    for dns in ee.valid_dns_names() {
        let lower = dns.to_ascii_lowercase();
        let Some(name) = lower.strip_suffix(SATELLITE_SUFFIX) else {
            continue;
        };
        let id = SatelliteId::new(name)?;
        if let Some(prev) = &found {
            if *prev != id {
                return Err(IdentityError::Ambiguous(prev.0.clone(), id.0));
            }
        } else {
            found = Some(id);
        }
    }
    found.ok_or(IdentityError::NotASatellite)
}

/// A DER certificate's notAfter, in seconds since the epoch; `None` when it does not parse.
/// The master's watchdog and the satellite's metrics both read expiry dates through it.
pub fn not_after_seconds(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satellite_names() {
        assert_eq!(SatelliteId::new("Sat-1").unwrap().as_str(), "sat-1");
        assert_eq!(
            SatelliteId::new("sat1").unwrap().dns_name(),
            "sat1.satellite.orrery"
        );
        for bad in ["", "-a", "a-", "a.b", "a_b", &"x".repeat(64)] {
            assert!(SatelliteId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn missing_pem_is_reported() {
        let e = TlsMaterial::from_pem("", "", "").unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        let e = TlsMaterial::load(&TlsFiles {
            ca: "/nonexistent/ca.pem".into(),
            cert: "/nonexistent/c.pem".into(),
            key: "/nonexistent/k.pem".into(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn garbage_certificate_is_not_an_identity() {
        let der = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        assert!(matches!(
            satellite_identity(&der),
            Err(IdentityError::BadCertificate(_))
        ));
    }
}
