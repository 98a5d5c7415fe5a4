//! When a link certificate expires: the watchdog warns about satellite and master certificates
//! expiring soon. The master reads a satellite's from the connection it verified (see
//! `serve.rs`) and its own from its TLS files.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The certificate's notAfter as milliseconds since the epoch; `None` when the DER does not
/// parse (it was verified by rustls, so that does not happen for a connection's certificate).
pub fn not_after_ms(der: &[u8]) -> Option<i64> {
    orrery_proto::link::tls::not_after_seconds(der)?.checked_mul(1000)
}

/// Milliseconds since the epoch, on this machine's clock.
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{Role, write_ca, write_issued};
    use orrery_proto::link::tls::SatelliteId;

    #[test]
    fn reads_the_expiry_of_an_issued_certificate() {
        let dir = tempfile::tempdir().unwrap();
        write_ca(dir.path(), 30).unwrap();
        let role = Role::Satellite(SatelliteId::new("sat1").unwrap());
        let (cert, _) = write_issued(dir.path(), &role, 10).unwrap();
        let pem = std::fs::read(cert).unwrap();
        let der = x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents;
        let expires = not_after_ms(&der).unwrap();
        let in_ten_days = unix_ms(SystemTime::now()) + 10 * 86_400_000;
        assert!(
            (expires - in_ten_days).abs() < 86_400_000,
            "{expires} {in_ten_days}"
        );
        assert_eq!(not_after_ms(b"not a certificate"), None);
    }
}
