//! Signed master files: the zone's records as [`orrery_signer`] records, signed, written in
//! canonical order with absolute owner names.
//!
//! The same store state gives the same file on every run and every host: the signer's
//! signatures are deterministic and its times come from the policy in the store, and the file
//! holds nothing else that varies (no generation time).

use std::collections::HashMap;
use std::io::{self, Write};

use orrery_proto::dnssec::ZoneDnssec;
use orrery_proto::{Domain, Host, Serial, Zone};
use orrery_signer::key::SigningKey;
use orrery_signer::rdata::{self, present, type_name};
use orrery_signer::record::rtype;
use orrery_signer::{KeyError, KeyStore, Record, SignError, SignedZone, sign_zone};

/// The apex records: SOA (its serial from the zone's serial) and NS.
pub(crate) fn apex_records(zone: &Zone, serial: Serial, out: &mut Vec<Record>) {
    let apex = &zone.name;
    let soa = rdata::soa(&rdata::Soa {
        mname: &zone.soa.mname,
        rname: &zone.soa.rname,
        serial: zone.soa_serial(serial),
        refresh: zone.soa.refresh,
        retry: zone.soa.retry,
        expire: zone.soa.expire,
        minimum: zone.soa.minimum,
    });
    out.push(Record::new(apex.clone(), rtype::SOA, zone.soa_ttl, soa));
    for ns in &zone.nameservers {
        out.push(Record::new(
            apex.clone(),
            rtype::NS,
            zone.ns_ttl,
            rdata::ns(ns),
        ));
    }
}

/// A delegated domain's NS and DS; nothing for a domain out of DNS. Returns the records added.
pub(crate) fn domain_records(zone: &Zone, d: &Domain, out: &mut Vec<Record>) -> u64 {
    if !d.is_delegated() || d.zone != zone.name {
        return 0;
    }
    for ns in &d.nameservers {
        out.push(Record::new(
            d.name.clone(),
            rtype::NS,
            zone.ns_ttl,
            rdata::ns(ns),
        ));
    }
    for ds in &d.ds {
        out.push(Record::new(
            d.name.clone(),
            rtype::DS,
            zone.ds_ttl,
            rdata::ds(ds),
        ));
    }
    (d.nameservers.len() + d.ds.len()) as u64
}

/// A host's addresses.
pub(crate) fn host_records(zone: &Zone, h: &Host, out: &mut Vec<Record>) -> u64 {
    for a in &h.addresses {
        let (t, rd) = rdata::address(a);
        out.push(Record::new(h.name.clone(), t, zone.ns_ttl, rd));
    }
    h.addresses.len() as u64
}

/// Why a zone could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignZoneError {
    #[error("zone {0} is signed by its policy but no key directory was given (--key-dir)")]
    NoKeyStore(orrery_proto::Name),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Signs `records` of `zone` with the private keys of the keys that sign, from `keys`.
pub(crate) fn sign(
    zone: &Zone,
    dnssec: &ZoneDnssec,
    records: Vec<Record>,
    keys: Option<&dyn KeyStore>,
) -> Result<SignedZone, SignZoneError> {
    let keys = keys.ok_or_else(|| SignZoneError::NoKeyStore(zone.name.clone()))?;
    let mut private: HashMap<String, Box<dyn SigningKey>> = HashMap::new();
    for k in &dnssec.keys {
        if (k.signs_zone() || k.signs_dnskey()) && !private.contains_key(&k.locator) {
            private.insert(k.locator.clone(), keys.load(&k.locator, k.algorithm)?);
        }
    }
    let find = |loc: &str| private.get(loc).map(|k| k.as_ref() as &dyn SigningKey);
    Ok(sign_zone(&zone.name, records, dnssec, &find)?)
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
