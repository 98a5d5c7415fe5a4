//! Signed master files: the zone's records as [`orrery_signer`] records, signed, written in
//! canonical order with absolute owner names.
//!
//! The same store state gives the same file on every run and every host: the signer's
//! signatures are deterministic and its times come from the policy in the store, and the file
//! holds nothing else that varies (no generation time).

use std::io::{self, Write};

use orrery_proto::dnssec::ZoneDnssec;
use orrery_proto::{Serial, Zone};
use orrery_signer::rdata::{present, type_name};
use orrery_signer::{KeyStore, Record, SignWithKeysError, SignedZone, sign_with_keys};
use orrery_store::ZoneItem;

/// Why a zone could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignZoneError {
    #[error("zone {0} is signed by its policy but no key directory was given (--key-dir)")]
    NoKeyStore(orrery_proto::Name),
    #[error(transparent)]
    Sign(#[from] SignWithKeysError),
}

/// A signed zone's records, collected from the store's walk of the zone (`Store::visit_zone`)
/// in the order it yields them: the zone, its policy right after it (which says whether the
/// zone signs), then domains and hosts. The one place that turns those items into the
/// records the signer takes, for the signed file and for the satellites' DNSSEC sets alike.
#[derive(Default)]
pub(crate) struct SignedRecords {
    /// The zone's policy, once it has said that the zone signs.
    pub(crate) dnssec: Option<ZoneDnssec>,
    pub(crate) records: Vec<Record>,
}

impl SignedRecords {
    /// Takes an item that follows `zone`'s own: a signing policy starts the collection with
    /// the apex's records (SOA serial `soa_serial`); then each domain and host adds its
    /// records. Returns `None` for a domain or host of a zone that does not sign (the caller
    /// writes it as it is), else the records it added and whether it was a delegation.
    pub(crate) fn take(
        &mut self,
        zone: &Zone,
        soa_serial: Serial,
        item: &ZoneItem,
    ) -> Option<(u64, bool)> {
        use orrery_signer::objects::{apex_records, domain_records, host_records};
        match item {
            ZoneItem::Dnssec(d) => {
                if d.is_signed() {
                    apex_records(zone, soa_serial, &mut self.records);
                    self.dnssec = Some(d.clone());
                }
                Some((0, false))
            }
            ZoneItem::Zone { .. } => Some((0, false)),
            _ if self.dnssec.is_none() => None,
            ZoneItem::Domain(d) => {
                let n = domain_records(zone, d, &mut self.records);
                Some((n, n > 0))
            }
            ZoneItem::Host(h) => Some((host_records(zone, h, &mut self.records), false)),
        }
    }
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
