//! Signed master files: the zone's records as [`orrery_signer`] records, signed, written in
//! canonical order with absolute owner names.
//!
//! The same store state gives the same file on every run and every host: the signer's
//! signatures are deterministic and its times come from the policy in the store, and the file
//! holds nothing else that varies (no generation time).

use std::io::{self, Write};

use orrery_proto::Zone;
use orrery_proto::dnssec::ZoneDnssec;
use orrery_signer::rdata::{present, type_name};
use orrery_signer::{KeyStore, Record, SignWithKeysError, SignedZone, sign_with_keys};

/// Why a zone could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignZoneError {
    #[error("zone {0} is signed by its policy but no key directory was given (--key-dir)")]
    NoKeyStore(orrery_proto::Name),
    #[error(transparent)]
    Sign(#[from] SignWithKeysError),
}

/// Signs `records` of `zone` with the private keys of the keys that sign, from `keys`.
pub(crate) fn sign(
    zone: &Zone,
    dnssec: &ZoneDnssec,
    records: Vec<Record>,
    keys: Option<&dyn KeyStore>,
) -> Result<SignedZone, SignZoneError> {
    let keys = keys.ok_or_else(|| SignZoneError::NoKeyStore(zone.name.clone()))?;
    Ok(sign_with_keys(&zone.name, dnssec, records, keys)?)
}

/// Writes a signed zone: the serial line (so an unchanged zone is skipped), a comment, and
/// every record with its absolute owner.
pub(crate) fn write(
    out: &mut impl Write,
    serial_line: &str,
    zone: &Zone,
    signed: &SignedZone,
) -> io::Result<()> {
    writeln!(out, "{serial_line}")?;
    writeln!(
        out,
        "; zone {} generated and signed by orrery-generator from the registry store; do not edit",
        zone.name.to_fqdn()
    )?;
    let mut owner = String::new();
    let mut last: Option<&orrery_proto::Name> = None;
    for r in &signed.records {
        if last != Some(&r.owner) {
            owner = r.owner.to_fqdn();
            last = Some(&r.owner);
        }
        let text = present(r.rtype, &r.rdata).ok_or_else(|| {
            io::Error::other(format!(
                "cannot present a {} record at {owner}",
                type_name(r.rtype)
            ))
        })?;
        writeln!(
            out,
            "{owner}\t{}\tIN\t{}\t{text}",
            r.ttl,
            type_name(r.rtype)
        )?;
    }
    Ok(())
}
