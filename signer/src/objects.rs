//! The registry's objects as the records a signer signs: the one place that says which
//! records a zone, a domain and a host put in DNS, shared by the generator and the master so
//! both sign the same RRsets a satellite serves.

use std::collections::HashMap;

use orrery_proto::dnssec::ZoneDnssec;
use orrery_proto::{Domain, Host, Name, Serial, Zone};

use crate::key::{KeyError, KeyStore, SigningKey};
use crate::rdata;
use crate::record::{Record, rtype};
use crate::zone::{SignError, SignatureCache, SignedZone, sign_zone_cached};

/// The apex records: SOA (its serial from the zone's serial) and NS.
pub fn apex_records(zone: &Zone, serial: Serial, out: &mut Vec<Record>) {
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
pub fn domain_records(zone: &Zone, d: &Domain, out: &mut Vec<Record>) -> u64 {
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
pub fn host_records(zone: &Zone, h: &Host, out: &mut Vec<Record>) -> u64 {
    for a in &h.addresses {
        let (t, rd) = rdata::address(a);
        out.push(Record::new(h.name.clone(), t, zone.ns_ttl, rd));
    }
    h.addresses.len() as u64
}

/// Why [`sign_with_keys`] could not sign a zone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignWithKeysError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Signs `records` of the zone at `apex` with the private keys, loaded from `keys`, of the
/// keys that sign.
pub fn sign_with_keys(
    apex: &Name,
    dnssec: &ZoneDnssec,
    records: Vec<Record>,
    keys: &dyn KeyStore,
) -> Result<SignedZone, SignWithKeysError> {
    sign_with_keys_cached(apex, dnssec, records, keys, None)
}

/// [`sign_with_keys`] with a [`SignatureCache`] (see [`sign_zone_cached`]).
pub fn sign_with_keys_cached(
    apex: &Name,
    dnssec: &ZoneDnssec,
    records: Vec<Record>,
    keys: &dyn KeyStore,
    cache: Option<&mut SignatureCache>,
) -> Result<SignedZone, SignWithKeysError> {
    let private = load_private(dnssec, keys)?;
    let find = |loc: &str| private.get(loc).map(|k| k.as_ref() as &dyn SigningKey);
    Ok(sign_zone_cached(apex, records, dnssec, &find, cache)?)
}

/// The private keys, by locator, of the keys of `dnssec` that sign.
pub(crate) fn load_private(
    dnssec: &ZoneDnssec,
    keys: &dyn KeyStore,
) -> Result<HashMap<String, Box<dyn SigningKey>>, KeyError> {
    let mut private: HashMap<String, Box<dyn SigningKey>> = HashMap::new();
    for k in &dnssec.keys {
        if (k.signs_zone() || k.signs_dnskey()) && !private.contains_key(&k.locator) {
            private.insert(k.locator.clone(), keys.load(&k.locator, k.algorithm)?);
        }
    }
    Ok(private)
}
