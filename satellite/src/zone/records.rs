//! Every record of a zone, one at a time: what a zone transfer sends ([`crate::xfr`]) and what
//! the IXFR window compares between two versions.
//!
//! [`ZoneSet::records`] is the one walk over a zone's tables. The lookup answers from the same
//! tables by probing them; this walk visits all of them in a fixed order:
//!
//! 1. the apex SOA, then the apex NS RRset;
//! 2. every delegation: its NS RRset, then its DS RRset (table order);
//! 3. every published in-zone host: its A RRset, then its AAAA RRset (authoritative data, or
//!    glue when the host sits below a delegation).
//!
//! 4. for a signed zone, every DNSSEC record the master sent (DNSKEY, NSEC3PARAM, NSEC or
//!    NSEC3, RRSIG), owner by owner, as held: a transfer carries them without reading them.

use orrery_proto::Soa;

use super::{Ds, NO_HOST, ZoneData, ZoneSet};
use crate::dns::wire::rtype;

/// One record of a zone, borrowed from its version.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// Canonical wire form.
    pub owner: &'a [u8],
    pub ttl: u32,
    pub data: RecordData<'a>,
}

/// The RDATA of a [`Record`]; every one is class IN.
#[derive(Clone, Copy, Debug)]
pub enum RecordData<'a> {
    /// The zone's SOA with its serial (RFC 1035 §3.3.13).
    Soa {
        soa: &'a Soa,
        serial: u32,
    },
    /// A nameserver's canonical wire name.
    Ns(&'a [u8]),
    A(&'a [u8; 4]),
    Aaaa(&'a [u8; 16]),
    Ds(Ds<'a>),
    /// A DNSSEC record as the master sent it: its type and canonical RDATA (names in it are
    /// never compressed, RFC 4034 §3.1.7, §4.1.1; RFC 5155 §3.3).
    Dnssec {
        rtype: u16,
        rdata: &'a [u8],
    },
}

impl RecordData<'_> {
    /// The record's type.
    pub fn rtype(&self) -> u16 {
        match self {
            Self::Soa { .. } => rtype::SOA,
            Self::Ns(_) => rtype::NS,
            Self::A(_) => rtype::A,
            Self::Aaaa(_) => rtype::AAAA,
            Self::Ds(_) => rtype::DS,
            Self::Dnssec { rtype, .. } => *rtype,
        }
    }

    /// The uncompressed RDATA (names in canonical form, RFC 4034 §6.2): what the IXFR window
    /// stores and compares.
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        match self {
            Self::Soa { soa, serial } => {
                out.extend_from_slice(soa.mname.as_wire());
                out.extend_from_slice(soa.rname.as_wire());
                for v in [*serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Self::Ns(name) => out.extend_from_slice(name),
            Self::A(a) => out.extend_from_slice(&a[..]),
            Self::Aaaa(a) => out.extend_from_slice(&a[..]),
            Self::Ds(ds) => {
                out.extend_from_slice(&ds.key_tag.to_be_bytes());
                out.push(ds.algorithm);
                out.push(ds.digest_type);
                out.extend_from_slice(ds.digest);
            }
            Self::Dnssec { rdata, .. } => out.extend_from_slice(rdata),
        }
    }
}

impl ZoneSet {
    /// Visits every record of the zone at `apex` (canonical wire) in the order of the module
    /// docs, the SOA first and only once. False when no zone has that apex.
    pub fn records(&self, apex: &[u8], mut visit: impl FnMut(Record<'_>)) -> bool {
        let Some(&i) = self.by_apex.get(apex) else {
            return false;
        };
        let zone = &self.zones[i];
        visit(self.soa_record(zone));
        self.apex_ns_records(zone, &mut visit);
        for d in zone.delegations.iter() {
            self.delegation_records(zone, d.name(), &mut visit);
        }
        for node in zone.nodes.iter() {
            self.host_records(zone, node.name(), node.value().host, &mut visit);
        }
        zone.signed.each_set(|owner, rtype, _, set| {
            for rdata in set.rdatas() {
                visit(Record {
                    owner,
                    ttl: set.ttl,
                    data: RecordData::Dnssec { rtype, rdata },
                });
            }
        });
        true
    }

    /// The records at one owner name of a zone: for a name directly below the apex its
    /// delegation's, for any name below the apex the published host's there. The IXFR window
    /// compares these for the names a batch touched.
    pub fn records_at(&self, zone: &ZoneData, owner: &[u8], mut visit: impl FnMut(Record<'_>)) {
        if zone.delegations.get(owner).is_some() {
            self.delegation_records(zone, owner, &mut visit);
        }
        if let Some(node) = zone.nodes.value(owner) {
            self.host_records(zone, owner, node.host, &mut visit);
        }
        self.dnssec_records_at(zone, owner, &mut visit);
    }

    /// The DNSSEC records at one owner name (the apex included) of a signed zone.
    pub fn dnssec_records_at(
        &self,
        zone: &ZoneData,
        owner: &[u8],
        visit: &mut impl FnMut(Record<'_>),
    ) {
        zone.signed.sets_at(owner, |rtype, _, set| {
            for rdata in set.rdatas() {
                visit(Record {
                    owner,
                    ttl: set.ttl,
                    data: RecordData::Dnssec { rtype, rdata },
                });
            }
        });
    }

    /// The zone's SOA record.
    pub fn soa_record<'a>(&'a self, zone: &'a ZoneData) -> Record<'a> {
        Record {
            owner: &zone.apex,
            ttl: zone.soa_ttl,
            data: RecordData::Soa {
                soa: &zone.soa,
                serial: zone.serial,
            },
        }
    }

    /// The apex NS RRset.
    pub fn apex_ns_records(&self, zone: &ZoneData, visit: &mut impl FnMut(Record<'_>)) {
        for &id in &zone.apex_ns {
            visit(Record {
                owner: &zone.apex,
                ttl: zone.ns_ttl,
                data: RecordData::Ns(self.hosts.get(id).name),
            });
        }
    }

    fn delegation_records(
        &self,
        zone: &ZoneData,
        owner: &[u8],
        visit: &mut impl FnMut(Record<'_>),
    ) {
        let Some(del) = zone.delegation(owner) else {
            return;
        };
        for id in del.ns() {
            visit(Record {
                owner,
                ttl: zone.ns_ttl,
                data: RecordData::Ns(self.hosts.get(id).name),
            });
        }
        for ds in del.ds() {
            visit(Record {
                owner,
                ttl: zone.ds_ttl,
                data: RecordData::Ds(ds),
            });
        }
    }

    fn host_records(
        &self,
        zone: &ZoneData,
        owner: &[u8],
        host: u32,
        visit: &mut impl FnMut(Record<'_>),
    ) {
        if host == NO_HOST {
            return;
        }
        let h = self.hosts.get(host);
        for a in h.v4 {
            visit(Record {
                owner,
                ttl: zone.ns_ttl,
                data: RecordData::A(a),
            });
        }
        for a in h.v6 {
            visit(Record {
                owner,
                ttl: zone.ns_ttl,
                data: RecordData::Aaaa(a),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::tests::{n, sample};

    fn text(set: &ZoneSet, apex: &str) -> Vec<String> {
        let mut out = Vec::new();
        assert!(set.records(n(apex).as_wire(), |r| {
            let owner = orrery_proto::Name::from_canonical_wire(r.owner).unwrap();
            out.push(format!("{owner} {}", r.data.rtype()));
        }));
        out
    }

    /// The walk gives exactly what the generator would write for the sample zone: the SOA
    /// once, first; apex NS; delegations with their DS; published hosts only.
    #[test]
    fn visits_every_published_record_once() {
        let set = sample();
        let mut all = text(&set, "tld");
        assert_eq!(all[0], "tld 6");
        all.sort();
        let want = [
            "a.nic.tld 1",
            "a.nic.tld 28",
            "b.nic.tld 1",
            "bar.tld 2",
            "bar.tld 2",
            "foo.tld 2",
            "foo.tld 2",
            "ns1.foo.tld 1",
            "ns1.foo.tld 28",
            "ns1.signed.tld 1",
            "ns2.foo.tld 1",
            "signed.tld 2",
            "signed.tld 2",
            "signed.tld 43",
            "tld 2",
            "tld 2",
            "tld 2",
            "tld 6",
        ];
        assert_eq!(all, want);
        assert!(!set.records(n("foo.tld").as_wire(), |_| {}));
    }

    /// A signed zone's walk is the signed zone: every record the signer made (SOA, NS, DS,
    /// addresses and every DNSSEC record) exactly once, with its TTL and canonical RDATA, so
    /// an AXFR of it is the zone a validator checks.
    #[test]
    fn a_signed_zone_walks_to_the_signers_records() {
        use orrery_proto::dnssec::Denial;
        for denial in [Denial::Nsec3OptOut, Denial::Nsec] {
            let (set, _, signed) = crate::zone::tests::signed_sample(denial);
            let mut walked = Vec::new();
            assert!(set.records(n("tld").as_wire(), |r| {
                let mut rdata = Vec::new();
                r.data.write_canonical(&mut rdata);
                walked.push((r.owner.to_vec(), r.data.rtype(), r.ttl, rdata));
            }));
            let mut expected: Vec<_> = signed
                .records
                .iter()
                .map(|r| (r.owner.as_wire().to_vec(), r.rtype, r.ttl, r.rdata.clone()))
                .collect();
            walked.sort();
            expected.sort();
            let dnssec = |v: &[(Vec<u8>, u16, u32, Vec<u8>)]| {
                v.iter()
                    .filter(|r| matches!(r.1, 46..=48 | 50 | 51))
                    .count()
            };
            assert!(
                dnssec(&walked) > 10,
                "{denial:?}: the walk holds the DNSSEC records"
            );
            assert_eq!(walked, expected, "{denial:?}");
        }
    }
}
