//! Resource records in canonical form (RFC 4034 §6.2) and canonical name order (§6.1).

use std::cmp::Ordering;

use orrery_proto::Name;

/// Record types the signer handles (IANA "Resource Record (RR) TYPEs").
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const SOA: u16 = 6;
    pub const AAAA: u16 = 28;
    pub const DS: u16 = 43;
    pub const RRSIG: u16 = 46;
    pub const NSEC: u16 = 47;
    pub const DNSKEY: u16 = 48;
    pub const NSEC3: u16 = 50;
    pub const NSEC3PARAM: u16 = 51;
}

/// Class IN (RFC 1035 §3.2.4).
pub const CLASS_IN: u16 = 1;

/// One record of class IN. `rdata` is in canonical wire form: names inside it uncompressed and
/// lower-case (RFC 4034 §6.2; the project's [`Name`] is always canonical).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub owner: Name,
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

impl Record {
    pub fn new(owner: Name, rtype: u16, ttl: u32, rdata: Vec<u8>) -> Self {
        Self {
            owner,
            rtype,
            ttl,
            rdata,
        }
    }
}

/// Canonical DNS name order (RFC 4034 §6.1): label by label from the rightmost, each label
/// compared as lower-case octets, a missing label first. Names are canonical (lower-case)
/// already, so the octets compare as they are.
pub fn canonical_cmp(a: &Name, b: &Name) -> Ordering {
    let (wa, wb) = (a.as_wire(), b.as_wire());
    let (la, na) = label_offsets(wa);
    let (lb, nb) = label_offsets(wb);
    for (&oa, &ob) in la[..na].iter().rev().zip(lb[..nb].iter().rev()) {
        let (oa, ob) = (usize::from(oa), usize::from(ob));
        let x = &wa[oa + 1..oa + 1 + wa[oa] as usize];
        let y = &wb[ob + 1..ob + 1 + wb[ob] as usize];
        match x.cmp(y) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    na.cmp(&nb)
}

/// The offsets of the length octets of each label, the root label excluded, leftmost first,
/// and their number. A name is at most 255 octets (RFC 1035 §2.3.4), so at most 127 labels
/// and every offset fits an octet: no allocation (the incremental signer's ordered maps
/// compare names on every lookup).
fn label_offsets(wire: &[u8]) -> ([u8; 128], usize) {
    let mut out = [0u8; 128];
    let mut n = 0;
    let mut pos = 0;
    while pos < wire.len() && wire[pos] != 0 && n < out.len() {
        out[n] = pos as u8;
        n += 1;
        pos += 1 + wire[pos] as usize;
    }
    (out, n)
}

/// Appends the signed data of an RRset after the RRSIG RDATA prefix (RFC 4034 §3.1.8.1): each
/// record as owner | type | class | original TTL | RDLENGTH | RDATA, in canonical RDATA order
/// (§6.3), duplicates removed. `records` must be one RRset (same owner, type).
pub fn append_rrset_for_signing(out: &mut Vec<u8>, records: &[&Record], original_ttl: u32) {
    let mut rdatas: Vec<&[u8]> = records.iter().map(|r| r.rdata.as_slice()).collect();
    rdatas.sort_unstable();
    rdatas.dedup();
    let Some(first) = records.first() else { return };
    for rd in rdatas {
        out.extend_from_slice(first.owner.as_wire());
        out.extend_from_slice(&first.rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&original_ttl.to_be_bytes());
        out.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        out.extend_from_slice(rd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn canonical_order_is_rfc4034_section_6_1() {
        // The example list of RFC 4034 §6.1 (lower-cased; `\001` and `\200` are octets).
        let mut names = vec![
            n("example"),
            n("a.example"),
            n("yljkjljk.a.example"),
            n("z.a.example"),
            n("zabc.a.example"),
            n("z.example"),
            n("*.z.example"),
        ];
        let mut z1 = n("z.example").as_wire().to_vec();
        z1.splice(0..0, [1u8, 1]);
        let mut z200 = n("z.example").as_wire().to_vec();
        z200.splice(0..0, [1u8, 0o200]);
        let z1 = Name::from_canonical_wire(&z1).unwrap();
        let z200 = Name::from_canonical_wire(&z200).unwrap();
        names.insert(6, z1.clone());
        names.push(z200.clone());
        names.reverse();
        names.sort_by(canonical_cmp);
        // RFC order: ..., z.example, \001.z.example, *.z.example, \200.z.example.
        let order: Vec<String> = names.iter().map(|x| format!("{:?}", x.as_wire())).collect();
        assert_eq!(names[0], n("example"));
        assert_eq!(names[1], n("a.example"));
        assert_eq!(names[2], n("yljkjljk.a.example"));
        assert_eq!(names[3], n("z.a.example"));
        assert_eq!(names[4], n("zabc.a.example"));
        assert_eq!(names[5], n("z.example"));
        assert_eq!(names[6], z1, "{order:?}");
        assert_eq!(names[7], n("*.z.example"));
        assert_eq!(names[8], z200);
    }
}
