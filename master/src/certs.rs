//! The link's private CA and the certificates it issues (`orrery-master certs …`), with rcgen.
//!
//! Keys are ECDSA P-256. Files in the certificate directory:
//!
//! | file | what |
//! |---|---|
//! | `ca.pem`, `ca.key` | the CA (keep `ca.key` offline once the cluster's certificates exist) |
//! | `NAME.master.pem`, `NAME.master.key` | a master: DNS names `NAME.master.orrery` and `master.orrery`, server auth |
//! | `NAME.satellite.pem`, `NAME.satellite.key` | a satellite: DNS name `NAME.satellite.orrery`, client auth |
//!
//! Private keys are written with mode 0600. A satellite's identity is fixed by its certificate;
//! revoking one means re-keying the cluster's CA or removing the satellite from the master's
//! configuration (an unknown identity is refused).

use std::path::{Path, PathBuf};

use orrery_proto::link::tls::{MASTER_NAME, MASTER_SUFFIX, SatelliteId};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its key, in PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a certificate is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A master, by its own name (one DNS label).
    Master(SatelliteId),
    /// A satellite, by its identity.
    Satellite(SatelliteId),
}

impl Role {
    fn file_stem(&self) -> String {
        match self {
            Self::Master(n) => format!("{n}.master"),
            Self::Satellite(n) => format!("{n}.satellite"),
        }
    }
}

/// A failure making or writing certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} exists; remove it first to replace it")]
    Exists { path: PathBuf },
}

/// The CA's subject. Issuing rebuilds the CA's parameters from it (rcgen needs the issuer's
/// name and key, not its certificate), so it must never change.
fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Orrery");
    dn.push(DnType::CommonName, "Orrery link CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// A new CA valid for `days` from now.
pub fn create_ca(days: i64) -> Result<Issued, CertError> {
    let key = KeyPair::generate()?;
    let mut p = ca_params();
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(days);
    let cert = p.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A certificate for `role`, signed by the CA whose key is `ca_key_pem`, valid from
/// `not_before` to `not_after`.
pub fn issue_between(
    ca_key_pem: &str,
    role: &Role,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Issued, CertError> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let (names, cn, usage) = match role {
        Role::Master(n) => (
            vec![format!("{n}{MASTER_SUFFIX}"), MASTER_NAME.to_owned()],
            format!("{n}{MASTER_SUFFIX}"),
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        Role::Satellite(n) => (
            vec![n.dns_name()],
            n.dns_name(),
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    };
    let mut p = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Orrery");
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![usage];
    p.not_before = not_before;
    p.not_after = not_after;
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A certificate for `role` valid for `days` from now.
pub fn issue(ca_key_pem: &str, role: &Role, days: i64) -> Result<Issued, CertError> {
    let now = OffsetDateTime::now_utc();
    issue_between(
        ca_key_pem,
        role,
        now - Duration::hours(1),
        now + Duration::days(days),
    )
}

fn write_new(path: &Path, text: &str, private: bool) -> Result<(), CertError> {
    use std::io::Write;
    let io = |source| CertError::Io {
        path: path.to_owned(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CertError::Exists {
                path: path.to_owned(),
            }
        } else {
            io(e)
        }
    })?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

/// `certs ca`: creates `ca.pem` and `ca.key` in `dir`. Refuses to overwrite.
pub fn write_ca(dir: &Path, days: i64) -> Result<(PathBuf, PathBuf), CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let ca = create_ca(days)?;
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    write_new(&key, &ca.key_pem, true)?;
    write_new(&cert, &ca.cert_pem, false)?;
    Ok((cert, key))
}

/// `certs issue`: creates `STEM.pem` and `STEM.key` in `dir`, signed by `dir/ca.key`. Refuses
/// to overwrite.
pub fn write_issued(dir: &Path, role: &Role, days: i64) -> Result<(PathBuf, PathBuf), CertError> {
    let ca_key_path = dir.join("ca.key");
    let ca_key = std::fs::read_to_string(&ca_key_path).map_err(|source| CertError::Io {
        path: ca_key_path,
        source,
    })?;
    let issued = issue(&ca_key, role, days)?;
    let stem = role.file_stem();
    let (cert, key) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    write_new(&key, &issued.key_pem, true)?;
    write_new(&cert, &issued.cert_pem, false)?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use orrery_proto::link::tls::{TlsMaterial, satellite_identity};

    use super::*;

    #[test]
    fn satellite_certificates_carry_their_identity() {
        let ca = create_ca(30).unwrap();
        let id = SatelliteId::new("sat7").unwrap();
        let sat = issue(&ca.key_pem, &Role::Satellite(id.clone()), 30).unwrap();
        let m = TlsMaterial::from_pem(ca.cert_pem.clone(), sat.cert_pem, sat.key_pem).unwrap();
        assert_eq!(satellite_identity(m.own_certificate()).unwrap(), id);

        let master = issue(
            &ca.key_pem,
            &Role::Master(SatelliteId::new("m1").unwrap()),
            30,
        )
        .unwrap();
        let m = TlsMaterial::from_pem(ca.cert_pem, master.cert_pem, master.key_pem).unwrap();
        assert!(satellite_identity(m.own_certificate()).is_err());
    }

    #[test]
    fn files_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        write_ca(dir.path(), 30).unwrap();
        assert!(matches!(
            write_ca(dir.path(), 30),
            Err(CertError::Exists { .. })
        ));
        let role = Role::Satellite(SatelliteId::new("s1").unwrap());
        let (cert, key) = write_issued(dir.path(), &role, 30).unwrap();
        assert!(cert.ends_with("s1.satellite.pem") && key.ends_with("s1.satellite.key"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(write_issued(dir.path(), &role, 30).is_err());
    }
}
