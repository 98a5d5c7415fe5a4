//! The part of a signed zone that travels on the link: what a satellite cannot derive from the
//! registry's objects.
//!
//! A satellite builds SOA, NS, DS and glue from the objects it receives; the zone's DNSKEY and
//! NSEC3PARAM, its NSEC or NSEC3 chain and every RRSIG come from the signer. [`dnssec_rrsets`]
//! cuts a [`SignedZone`] into those RRsets, one per (owner, type, covered type), the unit the
//! master sends and replaces (`orrery_proto::dnssec::DnssecRrset`).

use std::collections::HashMap;

use orrery_proto::Name;
use orrery_proto::dnssec::{DnssecRrset, DnssecRrsetId};

use crate::record::rtype;
use crate::zone::SignedZone;

/// The DNSKEY, NSEC3PARAM, NSEC, NSEC3 and RRSIG records of `zone` (signed at `apex`), one
/// RRset per owner, type and (for RRSIG) covered type, in the zone's canonical order, RDATA
/// ascending within each.
pub fn dnssec_rrsets(apex: &Name, zone: &SignedZone) -> Vec<DnssecRrset> {
    let mut out: Vec<DnssecRrset> = Vec::new();
    let mut index: HashMap<DnssecRrsetId, usize> = HashMap::new();
    for r in &zone.records {
        let covered = match r.rtype {
            // The type covered is the RRSIG's first field (RFC 4034 §3.1.1).
            rtype::RRSIG if r.rdata.len() >= 2 => u16::from_be_bytes([r.rdata[0], r.rdata[1]]),
            rtype::DNSKEY | rtype::NSEC3PARAM | rtype::NSEC | rtype::NSEC3 => 0,
            _ => continue,
        };
        let id = DnssecRrsetId {
            zone: apex.clone(),
            owner: r.owner.clone(),
            rtype: r.rtype,
            covered,
        };
        match index.get(&id) {
            Some(&i) => out[i].rdata.push(r.rdata.clone()),
            None => {
                index.insert(id.clone(), out.len());
                out.push(DnssecRrset {
                    id,
                    ttl: r.ttl,
                    rdata: vec![r.rdata.clone()],
                });
            }
        }
    }
    for set in &mut out {
        set.rdata.sort();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::PrivateKey;
    use crate::zone::sign_zone;
    use crate::zone::tests::{keyed, n, zone_records};
    use orrery_proto::dnssec::Denial;

    #[test]
    fn every_dnssec_record_lands_in_exactly_one_checked_rrset() {
        let key = PrivateKey::p256_from_scalar(&[5; 32]).unwrap();
        for denial in [Denial::Nsec3OptOut, Denial::Nsec] {
            let z = sign_zone(&n("test"), zone_records(), &keyed(denial, &key), &|_| {
                Some(&key)
            })
            .unwrap();
            let sets = dnssec_rrsets(&n("test"), &z);
            let dnssec_types = [
                rtype::DNSKEY,
                rtype::NSEC3PARAM,
                rtype::NSEC,
                rtype::NSEC3,
                rtype::RRSIG,
            ];
            let wanted = z
                .records
                .iter()
                .filter(|r| dnssec_types.contains(&r.rtype))
                .count();
            assert_eq!(sets.iter().map(|s| s.rdata.len()).sum::<usize>(), wanted);
            assert_eq!(
                sets.iter().filter(|s| s.id.rtype == rtype::RRSIG).count() as u64,
                // One key: one signature per signed RRset.
                z.signatures
            );
            let mut ids: Vec<_> = sets.iter().map(|s| s.id.clone()).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), sets.len(), "an id appears twice");
            for s in &sets {
                s.check().unwrap_or_else(|e| panic!("{:?}: {e}", s.id));
                assert!(s.rdata.windows(2).all(|w| w[0] < w[1]));
            }
            // The secure delegation's DS is signed; the insecure one's NS is not.
            let signed = |owner: &str, covered: u16| {
                sets.iter().any(|s| {
                    s.id.owner == n(owner) && s.id.rtype == rtype::RRSIG && s.id.covered == covered
                })
            };
            assert!(signed("signed.test", rtype::DS));
            assert!(signed("test", rtype::SOA));
            assert!(signed("test", rtype::DNSKEY));
            assert!(!signed("plain.test", rtype::NS));
            assert!(!signed("signed.test", rtype::NS));
        }
    }
}
