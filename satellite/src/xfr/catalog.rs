//! The catalog zone (RFC 9432, schema version 2): one member entry per served zone, so that
//! secondaries (Knot `catalog-role: interpret`, BIND `catalog-zones`) add and remove the
//! satellite's zones by themselves.
//!
//! ```text
//!  CATALOG                 0 SOA invalid. invalid. SERIAL 300 60 2147483646 0
//!  CATALOG                 0 NS  invalid.                       (§4.1: exactly this one)
//!  version.CATALOG         0 TXT "2"                            (§4.2.1)
//!  <unique-id>.zones.CATALOG 0 PTR <member>.                    (§4.3, one per served zone)
//! ```
//!
//! # Built off the query path
//! A catalog is built when a batch or a replacing snapshot changes the set of served zones
//! (or the transfer service names a catalog), on the applying thread
//! ([`crate::served::ServedStore`]), and travels with the served version it lists
//! ([`crate::served::Served::catalog`]): a transfer of the catalog reads the catalog of the
//! version it took, like any zone. A batch that leaves the set alone shares the previous
//! catalog (one pointer).
//!
//! # The same bytes on every satellite
//! - **Unique IDs** (§4.3.1) are the first 8 octets of SHA-256 over the member's canonical
//!   wire name, in hex: stable across serials, and the same on every satellite and after a
//!   restart, with nothing to store. A zone removed and added again gets its old ID back,
//!   which §4.3.1 allows (it is the same zone to the consumer; a reset would need a `coo` or
//!   a new ID, which nothing here asks for).
//! - **The serial** is the low 32 bits of the journal serial of the batch that last changed
//!   the member set (the serial of the state a satellite built from a snapshot, when it did
//!   not see that batch). Every satellite that applied that batch says the same; one that
//!   booted later says a higher serial for the same content, which is harmless: a secondary
//!   that took the higher one sees the other satellite as not newer and keeps what it has,
//!   and the next change of the set happens at a journal serial above both, so no secondary
//!   misses it. A serial that could not move forward (a snapshot older than the catalog)
//!   moves by one instead, so that a satellite's own serials only grow (RFC 1982).
//! - Records are sorted (members by canonical name), so the AXFR bytes are the same.
//!
//! # IXFR
//! A catalog keeps the differences of its last serials (the IXFR window's size), as zones do
//! ([`crate::served::history`]): a consumer that is one member change behind gets the PTR
//! added or removed, not the whole list; outside the window the answer is AXFR-style.
//!
//! # Not a public zone
//! RFC 9432 §7 asks that a catalog not be served to the public; BIND and Knot serve it as a
//! zone with its own `allow-query`/ACL. Here it is answered only to clients the `xfr` ACL
//! allows, and only what a consumer sends: SOA queries (UDP or TCP), IXFR over UDP (the SOA,
//! RFC 1995 §2), and AXFR/IXFR over TCP. Everyone else, and every other query, gets what a
//! name the satellite does not serve gets (REFUSED), so the catalog does not leak the list
//! of zones to the public or change what it sees.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;

use orrery_proto::{Name, Serial};

use crate::dns::wire::rtype;
use crate::served::history::{Diff, chain_since};
use crate::xfr::stream::{OwnedRecord, serial_lt};
use crate::zone::ZoneSet;

/// TTL of every catalog record: consumers never cache it as data (the example of §4.1).
pub const TTL: u32 = 0;
/// SOA timers: refresh and retry short enough that a consumer that missed the NOTIFY catches
/// up in minutes; expire as large as RFC 1912 allows (RFC 9432's example), so that a consumer
/// cut from every satellite keeps its zones instead of dropping them all; minimum 0 (§4.1).
pub const REFRESH: u32 = 300;
pub const RETRY: u32 = 60;
pub const EXPIRE: u32 = 2_147_483_646;
/// The catalog schema this satellite produces (§4.2.1).
pub const VERSION: &[u8] = b"2";

/// `invalid.` in wire form: SOA names and the one NS (§4.1).
const INVALID: &[u8] = b"\x07invalid\x00";

/// One catalog, for one served version.
#[derive(Debug)]
pub struct Catalog {
    /// The catalog's name, and its canonical wire form.
    pub name: Name,
    pub apex: Box<[u8]>,
    /// The SOA serial.
    pub serial: u32,
    /// Member apexes (canonical wire), sorted.
    members: Vec<Box<[u8]>>,
    soa: OwnedRecord,
    /// NS, TXT, then the PTRs: what a transfer sends between its two SOAs.
    records: Vec<OwnedRecord>,
    /// The differences of the last serials, oldest first.
    history: Arc<VecDeque<Arc<Diff>>>,
}

impl Catalog {
    /// The catalog `name` of `zones` at `serial`, following `previous` (the catalog of the
    /// version before, whose differences it keeps, at most `window`).
    pub fn build(
        name: &Name,
        zones: &ZoneSet,
        serial: Serial,
        previous: Option<&Self>,
        window: usize,
    ) -> Self {
        let members = members(zones);
        let previous = previous.filter(|p| p.name == *name);
        let mut soa_serial = serial as u32;
        if let Some(p) = previous
            && !serial_lt(p.serial, soa_serial)
        {
            soa_serial = p.serial.wrapping_add(1);
        }
        let apex: Box<[u8]> = name.as_wire().into();
        let soa = soa_record(&apex, soa_serial);
        let records = body(&apex, &members);
        let mut history = previous.map(|p| (*p.history).clone()).unwrap_or_default();
        if let Some(p) = previous
            && window > 0
        {
            let was: std::collections::BTreeSet<&OwnedRecord> = p.records.iter().collect();
            let is: std::collections::BTreeSet<&OwnedRecord> = records.iter().collect();
            history.push_back(Arc::new(Diff {
                from: p.serial,
                to: soa_serial,
                old_soa: p.soa.clone(),
                new_soa: soa.clone(),
                deleted: was.difference(&is).map(|r| (*r).clone()).collect(),
                added: is.difference(&was).map(|r| (*r).clone()).collect(),
            }));
        }
        while history.len() > window {
            history.pop_front();
        }
        Self {
            name: name.clone(),
            apex,
            serial: soa_serial,
            members,
            soa,
            records,
            history: Arc::new(history),
        }
    }

    /// True when `zones` serves exactly the zones this catalog lists: the catalog can be
    /// shared with the next version.
    pub fn lists(&self, zones: &ZoneSet) -> bool {
        let mut served: Vec<&[u8]> = zones.zones().iter().map(|z| &*z.apex).collect();
        served.sort_unstable();
        served.len() == self.members.len()
            && served.iter().zip(&self.members).all(|(a, b)| *a == &**b)
    }

    /// The member apexes (canonical wire), sorted.
    pub fn members(&self) -> &[Box<[u8]>] {
        &self.members
    }

    /// The SOA record.
    pub fn soa(&self) -> &OwnedRecord {
        &self.soa
    }

    /// Every record but the SOA, in transfer order.
    pub fn records(&self) -> &[OwnedRecord] {
        &self.records
    }

    /// The differences from serial `from` to this catalog's, oldest first; `None` when the
    /// window does not reach back to `from`.
    pub fn since(&self, from: u32) -> Option<Vec<Arc<Diff>>> {
        chain_since(&self.history, from, self.serial)
    }
}

/// The unique ID of a member (§4.3.1): the first 8 octets of SHA-256 over its canonical wire
/// name, in lower-case hex.
pub fn unique_id(member: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, member);
    let mut id = String::with_capacity(16);
    for b in &digest.as_ref()[..8] {
        let _ = write!(id, "{b:02x}");
    }
    id
}

/// The served apexes, sorted.
fn members(zones: &ZoneSet) -> Vec<Box<[u8]>> {
    let mut m: Vec<Box<[u8]>> = zones.zones().iter().map(|z| z.apex.clone()).collect();
    m.sort_unstable();
    m
}

/// `label` in front of the wire name `under`.
fn prepend(label: &[u8], under: &[u8]) -> Box<[u8]> {
    let mut out = Vec::with_capacity(1 + label.len() + under.len());
    out.push(label.len() as u8);
    out.extend_from_slice(label);
    out.extend_from_slice(under);
    out.into_boxed_slice()
}

fn soa_record(apex: &[u8], serial: u32) -> OwnedRecord {
    let mut rdata = Vec::with_capacity(2 * INVALID.len() + 20);
    rdata.extend_from_slice(INVALID);
    rdata.extend_from_slice(INVALID);
    for v in [serial, REFRESH, RETRY, EXPIRE, 0] {
        rdata.extend_from_slice(&v.to_be_bytes());
    }
    OwnedRecord {
        owner: apex.into(),
        rtype: rtype::SOA,
        ttl: TTL,
        rdata: rdata.into_boxed_slice(),
    }
}

fn body(apex: &[u8], members: &[Box<[u8]>]) -> Vec<OwnedRecord> {
    let mut out = Vec::with_capacity(2 + members.len());
    out.push(OwnedRecord {
        owner: apex.into(),
        rtype: rtype::NS,
        ttl: TTL,
        rdata: INVALID.into(),
    });
    let mut txt = vec![VERSION.len() as u8];
    txt.extend_from_slice(VERSION);
    out.push(OwnedRecord {
        owner: prepend(b"version", apex),
        rtype: rtype::TXT,
        ttl: TTL,
        rdata: txt.into_boxed_slice(),
    });
    let zones = prepend(b"zones", apex);
    for m in members {
        // A catalog name too long for `<16-octet ID>.zones.` under it (over 231 octets): the
        // entries are left out (logged), never a panic or an invalid name.
        if zones.len() + 17 > 255 {
            tracing::error!("the catalog zone's name is too long for member entries");
            break;
        }
        out.push(OwnedRecord {
            owner: prepend(unique_id(m).as_bytes(), &zones),
            rtype: rtype::PTR,
            ttl: TTL,
            rdata: m.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use orrery_proto::{Change, ChangeBatch};

    use super::*;
    use crate::zone::tests::{n, sample, zone};

    fn set_with(extra: &[&str]) -> ZoneSet {
        let mut set = sample();
        let changes = extra
            .iter()
            .map(|z| Change::Zone(zone(z, &["a.nic.tld"])))
            .collect();
        let b = ChangeBatch {
            after: set.serial,
            upto: set.serial + 1,
            changes,
        };
        set.apply(&b).unwrap();
        set
    }

    fn ptrs(c: &Catalog) -> Vec<OwnedRecord> {
        c.records()
            .iter()
            .filter(|r| r.rtype == rtype::PTR)
            .cloned()
            .collect()
    }

    /// The records of RFC 9432 §4: SOA and NS with `invalid.`, version 2, one PTR per zone
    /// under `zones`, parsed back by hickory; IDs independent of the serial and of the other
    /// members.
    #[test]
    fn lists_every_served_zone_with_stable_ids() {
        let name = n("catalog.invalid");
        let one = Catalog::build(&name, &set_with(&[]), 10, None, 5);
        let two = Catalog::build(&name, &set_with(&["other"]), 20, Some(&one), 5);
        assert_eq!((one.serial, two.serial), (10, 20));
        assert_eq!(ptrs(&one).len(), 1);
        assert_eq!(ptrs(&two).len(), 2);
        assert!(
            ptrs(&two).contains(&ptrs(&one)[0]),
            "tld keeps its ID when another zone is added"
        );
        let again = Catalog::build(&name, &set_with(&["other"]), 99, None, 5);
        assert_eq!(ptrs(&again), ptrs(&two), "the same bytes at any serial");
        // Parsed by an independent decoder.
        for r in std::iter::once(two.soa()).chain(two.records()) {
            let mut wire = r.owner.to_vec();
            wire.extend_from_slice(&r.rtype.to_be_bytes());
            wire.extend_from_slice(&[0, 1]);
            wire.extend_from_slice(&r.ttl.to_be_bytes());
            wire.extend_from_slice(&(r.rdata.len() as u16).to_be_bytes());
            wire.extend_from_slice(&r.rdata);
            use hickory_proto::serialize::binary::BinDecodable;
            let mut d = hickory_proto::serialize::binary::BinDecoder::new(&wire);
            let rec = hickory_proto::rr::Record::read(&mut d).unwrap();
            let text = format!("{} {} {}", rec.name, rec.record_type(), rec.data);
            match r.rtype {
                rtype::SOA => assert_eq!(
                    text,
                    "catalog.invalid. SOA invalid. invalid. 20 300 60 2147483646 0"
                ),
                rtype::NS => assert_eq!(text, "catalog.invalid. NS invalid."),
                rtype::TXT => assert_eq!(text, "version.catalog.invalid. TXT 2"),
                _ => {
                    assert!(
                        text.ends_with(".zones.catalog.invalid. PTR tld.")
                            || text.ends_with(".zones.catalog.invalid. PTR other."),
                        "{text}"
                    );
                    assert_eq!(rec.name.num_labels(), 4, "<id>.zones.catalog.invalid");
                }
            }
        }
    }

    /// The difference to the previous serial is the PTR added or removed; a serial that would
    /// not move forward moves by one.
    #[test]
    fn keeps_differences_and_moves_forward() {
        let name = n("catalog.invalid");
        let one = Catalog::build(&name, &set_with(&[]), 10, None, 2);
        let two = Catalog::build(&name, &set_with(&["other"]), 20, Some(&one), 2);
        let three = Catalog::build(&name, &set_with(&[]), 15, Some(&two), 2);
        assert_eq!(three.serial, 21, "never backwards");
        let d = three.since(10).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].added.len(), d[0].deleted.len()), (1, 0));
        assert_eq!((d[1].added.len(), d[1].deleted.len()), (0, 1));
        assert_eq!(d[0].added[0].rdata, d[1].deleted[0].rdata);
        assert!(
            three.since(21).is_none(),
            "current: the caller answers the SOA alone"
        );
        let four = Catalog::build(&name, &set_with(&["x"]), 30, Some(&three), 2);
        assert!(four.since(10).is_none(), "outside a window of two");
        assert!(four.lists(&set_with(&["x"])) && !four.lists(&set_with(&[])));
    }
}
