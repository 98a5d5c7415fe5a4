//! A chunk's objects decoded straight from their protobuf bytes into the model.
//!
//! The general path decodes a chunk's `pb::ChangeBatch` with prost (a `String` for every name,
//! a `Vec` for every list, a `pb::Change` for every object), then converts each message into
//! the model with the link's checked conversion ([`crate::link::convert`]), which parses the
//! names again and frees the messages. At 1,000,000 delegations that is 1.85 million objects
//! built twice: in a profile of a start, most of the read was allocating and freeing the
//! messages, not checking them.
//!
//! This decoder reads the same bytes (`link.proto`'s encoding, not a second format) and builds
//! domains and hosts, nearly all of a registry, directly: each text and name is read from the
//! chunk's buffer into its final allocation, addresses into `IpAddr`s, and the zone name of
//! consecutive domains is parsed once. It makes the same checks as the conversion (names
//! through [`Name::from_ascii_octets`], the domain below its zone, EPP statuses, DS field widths and
//! digest lengths, addresses of 4 or 16 octets). Zones, contacts, registrars and DNSSEC sets,
//! a handful per registry, go through prost and the conversion one by one.
//!
//! It is a fast path, not a second judge of the file: anything that is not in the shape the
//! writers make — an unknown field, an unexpected wire type, a removal, a malformed varint, a
//! check that fails — gives `None`, and the caller decodes the whole chunk on the general
//! path, which says what is wrong exactly as before. So a chunk it accepts gives the objects
//! the general path gives (the tests compare the two, on valid chunks and on mutated ones),
//! and one it refuses costs one more decode.

use prost::Message;

use super::{Chunk, Detail};
use crate::link::convert::address_from_bytes;
use crate::link::pb;
use crate::model::{Change, Domain, Ds, EppStatus, Host, Timestamp};
use crate::name::Name;

/// Protobuf wire types (the encoding guide's "Message Structure").
const VARINT: u8 = 0;
const LEN: u8 = 2;

/// `ChangeBatch.changes` (link.proto).
const BATCH_CHANGES: u32 = 3;

/// The objects of a chunk (a `pb::ChangeBatch` message) in `detail`, or `None` when the chunk
/// is not in the shape this decoder takes whole (see the module docs).
pub(super) fn objects(body: &[u8], detail: Detail) -> Option<Chunk> {
    let count = count_changes(body)?;
    let mut out = Vec::with_capacity(count);
    let mut zone_cache = ZoneCache::default();
    let mut batch = Wire(body);
    while !batch.is_empty() {
        match batch.key()? {
            // `after`, `upto`: a state file's are the header's serial; not used.
            (1 | 2, VARINT) => {
                batch.varint()?;
            }
            (BATCH_CHANGES, LEN) => {
                if let Some(change) = change(batch.bytes()?, &mut zone_cache, detail)? {
                    out.push(change);
                }
            }
            _ => return None,
        }
    }
    Some(Chunk {
        left_out: (count - out.len()) as u64,
        objects: out,
    })
}

/// How many changes the batch holds (its top-level fields only), to size the vector once.
fn count_changes(body: &[u8]) -> Option<usize> {
    let mut batch = Wire(body);
    let mut n = 0;
    while !batch.is_empty() {
        match batch.key()? {
            (_, VARINT) => {
                batch.varint()?;
            }
            (tag, LEN) => {
                batch.bytes()?;
                n += usize::from(tag == BATCH_CHANGES);
            }
            _ => return None,
        }
    }
    Some(n)
}

/// One `pb::Change`: exactly one object field, never a removal; `Some(None)` for an object
/// `detail` leaves out.
fn change(bytes: &[u8], zones: &mut ZoneCache, detail: Detail) -> Option<Option<Change>> {
    let mut w = Wire(bytes);
    let (tag, wire_type) = w.key()?;
    if wire_type != LEN {
        return None;
    }
    let object = w.bytes()?;
    if !w.is_empty() {
        // A second field: prost would merge or replace; leave that to it.
        return None;
    }
    // The `Change.change` oneof's field numbers (link.proto).
    Some(Some(match tag {
        3 => Change::Domain(domain(object, zones, detail)?),
        5 => Change::Host(host(object, detail)?),
        1 => Change::Zone(pb::Zone::decode(object).ok()?.try_into().ok()?),
        7 if detail == Detail::Dns => return Some(None),
        7 => Change::Contact(pb::Contact::decode(object).ok()?.try_into().ok()?),
        9 => Change::Registrar(pb::Registrar::decode(object).ok()?.try_into().ok()?),
        11 => Change::Dnssec(pb::DnssecRrset::decode(object).ok()?.try_into().ok()?),
        _ => return None,
    }))
}

/// The last zone name parsed and its text: the domains of a zone come one after the other.
#[derive(Default)]
struct ZoneCache {
    text: Vec<u8>,
    name: Option<Name>,
}

impl ZoneCache {
    fn name(&mut self, text: &[u8]) -> Option<Name> {
        if let Some(name) = &self.name
            && self.text == text
        {
            return Some(name.clone());
        }
        let name = Name::from_ascii_octets(text)?;
        self.text.clear();
        self.text.extend_from_slice(text);
        self.name = Some(name.clone());
        Some(name)
    }
}

/// A `pb::Domain`, checked as `Domain::try_from(pb::Domain)` checks it; in [`Detail::Dns`]
/// its Whois fields are passed over, not read.
fn domain(bytes: &[u8], zones: &mut ZoneCache, detail: Detail) -> Option<Domain> {
    let whois = detail == Detail::Full;
    let mut name: &[u8] = b"";
    let mut zone: &[u8] = b"";
    let (mut roid, mut registrar) = (String::new(), String::new());
    let (mut created, mut updated, mut expires) = (0, 0, 0);
    let mut statuses = Vec::new();
    let (mut registrant, mut admin, mut tech, mut billing) = (None, None, None, None);
    let mut nameservers = Vec::with_capacity(2);
    let mut ds = Vec::new();
    let mut w = Wire(bytes);
    // Singular fields: the last occurrence wins, as in prost; repeated ones accumulate.
    while !w.is_empty() {
        match w.key()? {
            (1, LEN) => name = w.bytes()?,
            (2, LEN) => zone = w.bytes()?,
            (3 | 4 | 9 | 10 | 11 | 12, LEN) if !whois => {
                w.bytes()?;
            }
            (3, LEN) => roid = text(w.bytes()?)?,
            (4, LEN) => registrar = text(w.bytes()?)?,
            (5, VARINT) => created = w.varint()? as i64,
            (6, VARINT) => updated = w.varint()? as i64,
            (7, VARINT) => expires = w.varint()? as i64,
            (8, LEN) => statuses.push(EppStatus::parse(utf8(w.bytes()?)?)?),
            (9, LEN) => registrant = Some(text(w.bytes()?)?),
            (10, LEN) => admin = Some(text(w.bytes()?)?),
            (11, LEN) => tech = Some(text(w.bytes()?)?),
            (12, LEN) => billing = Some(text(w.bytes()?)?),
            (13, LEN) => nameservers.push(Name::from_ascii_octets(w.bytes()?)?),
            (14, LEN) => ds.push(delegation_signer(w.bytes()?)?),
            _ => return None,
        }
    }
    let name = Name::from_ascii_octets(name)?;
    let zone = zones.name(zone)?;
    if !name.is_subdomain_of(&zone) || name == zone {
        return None;
    }
    Some(Domain {
        name,
        zone,
        roid,
        registrar,
        created: Timestamp(created),
        updated: Timestamp(updated),
        expires: Timestamp(expires),
        statuses,
        registrant,
        admin,
        tech,
        billing,
        nameservers,
        ds,
    })
}

/// A `pb::Ds`: the fields must fit their widths and the digest its type.
fn delegation_signer(bytes: &[u8]) -> Option<Ds> {
    let (mut key_tag, mut algorithm, mut digest_type) = (0u32, 0u32, 0u32);
    let mut digest: &[u8] = b"";
    let mut w = Wire(bytes);
    while !w.is_empty() {
        // `uint32` fields keep the low 32 bits of the varint, as prost does.
        match w.key()? {
            (1, VARINT) => key_tag = w.varint()? as u32,
            (2, VARINT) => algorithm = w.varint()? as u32,
            (3, VARINT) => digest_type = w.varint()? as u32,
            (4, LEN) => digest = w.bytes()?,
            _ => return None,
        }
    }
    let ds = Ds {
        key_tag: u16::try_from(key_tag).ok()?,
        algorithm: u8::try_from(algorithm).ok()?,
        digest_type: u8::try_from(digest_type).ok()?,
        digest: digest.to_vec(),
    };
    ds.check().ok()?;
    Some(ds)
}

/// A `pb::Host`, checked as `Host::try_from(pb::Host)` checks it; in [`Detail::Dns`] without
/// its registrar.
fn host(bytes: &[u8], detail: Detail) -> Option<Host> {
    let mut name: &[u8] = b"";
    let mut addresses = Vec::new();
    let mut registrar = None;
    let (mut created, mut updated) = (0, 0);
    let mut w = Wire(bytes);
    while !w.is_empty() {
        match w.key()? {
            (1, LEN) => name = w.bytes()?,
            (2, LEN) => addresses.push(address_from_bytes(w.bytes()?)?),
            (3, LEN) if detail == Detail::Dns => {
                w.bytes()?;
            }
            (3, LEN) => registrar = Some(text(w.bytes()?)?),
            (4, VARINT) => created = w.varint()? as i64,
            (5, VARINT) => updated = w.varint()? as i64,
            _ => return None,
        }
    }
    Some(Host {
        name: Name::from_ascii_octets(name)?,
        addresses,
        registrar,
        created: Timestamp(created),
        updated: Timestamp(updated),
    })
}

fn utf8(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

fn text(bytes: &[u8]) -> Option<String> {
    utf8(bytes).map(str::to_owned)
}

/// A cursor over protobuf-encoded bytes. Every read is checked: `None` past the end or on a
/// malformed value, never a panic.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A base-128 varint of at most 10 octets that fits in 64 bits.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &b) in self.0.iter().enumerate().take(10) {
            if i == 9 && b > 1 {
                return None;
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }

    /// A field's number (1 or more) and wire type.
    fn key(&mut self) -> Option<(u32, u8)> {
        let key = u32::try_from(self.varint()?).ok()?;
        let tag = key >> 3;
        (tag >= 1).then_some((tag, (key & 7) as u8))
    }

    /// A length-delimited value.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (value, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::{DnssecRrset, DnssecRrsetId};
    use crate::model::{Registrar, Soa, Zone};
    use std::net::{IpAddr, Ipv4Addr};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    /// The direct decoder, every object whole.
    fn full(body: &[u8]) -> Option<Vec<Change>> {
        let chunk = objects(body, Detail::Full)?;
        assert_eq!(chunk.left_out, 0);
        Some(chunk.objects)
    }

    /// The direct decoder for a DNS-only start, and how many objects it left out.
    fn dns(body: &[u8]) -> Option<(Vec<Change>, u64)> {
        objects(body, Detail::Dns).map(|c| (c.objects, c.left_out))
    }

    /// What [`Detail::Dns`] keeps of `objects`, through the general path's filter.
    fn kept_for_dns(objects: Vec<Change>) -> (Vec<Change>, u64) {
        let count = objects.len();
        let kept: Vec<Change> = objects
            .into_iter()
            .filter_map(|c| Detail::Dns.keep(c))
            .collect();
        let left_out = (count - kept.len()) as u64;
        (kept, left_out)
    }

    /// The general path: prost, then the link's conversion.
    fn via_messages(body: &[u8]) -> Result<Vec<Change>, String> {
        let batch = pb::ChangeBatch::decode(body).map_err(|e| e.to_string())?;
        batch
            .changes
            .into_iter()
            .map(|c| Change::try_from(c).map_err(|e| e.to_string()))
            .collect()
    }

    fn encode(objects: &[Change]) -> Vec<u8> {
        pb::ChangeBatch {
            after: 5,
            upto: 5,
            changes: objects.iter().map(pb::Change::from).collect(),
        }
        .encode_to_vec()
    }

    /// Every kind of object, and domains and hosts with every field set and unset.
    fn varied() -> Vec<Change> {
        let domain = |name: &str, zone: &str| Domain {
            name: n(name),
            zone: n(zone),
            roid: format!("{name}-ROID"),
            registrar: "R1".into(),
            created: Timestamp(1_700_000_000),
            updated: Timestamp(-5),
            expires: Timestamp(i64::MAX),
            statuses: vec![],
            registrant: None,
            admin: None,
            tech: None,
            billing: None,
            nameservers: vec![],
            ds: vec![],
        };
        let full = Domain {
            statuses: vec![EppStatus::ClientHold, EppStatus::ServerTransferProhibited],
            registrant: Some("C1".into()),
            admin: Some("".into()),
            tech: Some("C3 ünï".into()),
            billing: Some("C4".into()),
            nameservers: vec![n("ns1.full.tld"), n("ns.other.example")],
            ds: vec![
                Ds {
                    key_tag: 65535,
                    algorithm: 13,
                    digest_type: 2,
                    digest: vec![7; 32],
                },
                Ds {
                    key_tag: 0,
                    algorithm: 255,
                    digest_type: 1,
                    digest: vec![1; 20],
                },
            ],
            ..domain("full.tld", "tld")
        };
        let host = |name: &str, addresses: Vec<IpAddr>, registrar: Option<&str>| Host {
            name: n(name),
            addresses,
            registrar: registrar.map(Into::into),
            created: Timestamp(3),
            updated: Timestamp(4),
        };
        vec![
            Change::Registrar(Registrar {
                handle: "R1".into(),
                name: "One".into(),
                iana_id: Some(9999),
                url: Some("https://r1.example".into()),
                whois_server: None,
                email: None,
                phone: None,
                abuse_email: None,
                abuse_phone: None,
            }),
            crate::state_file::tests::contact("C1"),
            Change::Zone(Zone {
                name: n("tld"),
                soa: Soa {
                    mname: n("ns.nic.tld"),
                    rname: n("hostmaster.nic.tld"),
                    refresh: 1,
                    retry: 2,
                    expire: 3,
                    minimum: 4,
                },
                soa_ttl: 5,
                ns_ttl: 6,
                ds_ttl: 7,
                nameservers: vec![n("ns.nic.tld")],
                serial: 99,
            }),
            Change::Host(host("ns.nic.tld", vec![], None)),
            Change::Host(host(
                "ns1.full.tld",
                vec![
                    Ipv4Addr::new(192, 0, 2, 1).into(),
                    "2001:db8::1".parse().unwrap(),
                ],
                Some("R1"),
            )),
            Change::Domain(domain("plain.tld", "tld")),
            Change::Domain(full),
            // Another zone between domains of the first: the cached zone name must follow.
            Change::Domain(domain("a.b.sld.tld", "sld.tld")),
            Change::Domain(domain("xn--bcher-kva.tld", "tld")),
            Change::Dnssec(DnssecRrset {
                id: DnssecRrsetId {
                    zone: n("tld"),
                    owner: n("tld"),
                    rtype: 48,
                    covered: 0,
                },
                ttl: 3600,
                rdata: vec![vec![1, 1, 3, 13, 9, 9, 9, 9]],
            }),
        ]
    }

    #[test]
    fn the_direct_decoder_makes_what_the_conversion_makes() {
        let want = varied();
        let body = encode(&want);
        assert_eq!(via_messages(&body).unwrap(), want);
        assert_eq!(full(&body).unwrap(), want);
        // An empty chunk, and one with no serials.
        assert_eq!(full(&[]).unwrap(), vec![]);
        let mut bare = pb::ChangeBatch::decode(body.as_slice()).unwrap();
        (bare.after, bare.upto) = (0, 0);
        assert_eq!(full(&bare.encode_to_vec()).unwrap(), want);
    }

    /// A DNS-only read makes what the general path makes once the Whois-only fields and the
    /// contacts are dropped, and counts the contacts it left out.
    #[test]
    fn a_dns_only_read_leaves_out_the_whois_data_and_counts_it() {
        let all = varied();
        let body = encode(&all);
        let (kept, left_out) = dns(&body).unwrap();
        assert_eq!((kept.clone(), left_out), kept_for_dns(all.clone()));
        let contacts = all
            .iter()
            .filter(|c| matches!(c, Change::Contact(_)))
            .count();
        assert!(contacts > 0 && left_out == contacts as u64);
        assert_eq!(kept.len() + contacts, all.len());
        for c in &kept {
            match c {
                Change::Domain(d) => {
                    assert!(d.roid.is_empty() && d.registrar.is_empty());
                    assert!(d.registrant.is_none() && d.admin.is_none());
                    assert!(d.tech.is_none() && d.billing.is_none());
                }
                Change::Host(h) => assert!(h.registrar.is_none()),
                Change::Contact(_) => panic!("a contact kept"),
                _ => {}
            }
        }
        // What DNS serves is all there: names, nameservers, statuses, DS, addresses.
        let dns_part = |c: &Change| match c {
            Change::Domain(d) => Some(format!(
                "{:?}",
                (&d.name, &d.zone, &d.statuses, &d.nameservers, &d.ds)
            )),
            Change::Host(h) => Some(format!("{:?}", (&h.name, &h.addresses))),
            Change::Contact(_) => None,
            other => Some(format!("{other:?}")),
        };
        assert_eq!(
            kept.iter().filter_map(dns_part).collect::<Vec<_>>(),
            all.iter().filter_map(dns_part).collect::<Vec<_>>()
        );
    }

    /// What the writers never make is left to the general path, which gives the error (or,
    /// for the legal but unusual, the objects) it always gave.
    #[test]
    fn what_writers_never_make_goes_the_general_way() {
        let domain = || {
            pb::Domain::from(&match &varied()[6] {
                Change::Domain(d) => d.clone(),
                _ => unreachable!(),
            })
        };
        let batch = |d: pb::Domain| {
            pb::ChangeBatch {
                after: 1,
                upto: 1,
                changes: vec![pb::Change {
                    change: Some(pb::change::Change::Domain(d)),
                }],
            }
            .encode_to_vec()
        };
        let refused = |body: Vec<u8>, general_ok: bool| {
            assert_eq!(full(&body), None);
            assert_eq!(
                via_messages(&body).is_ok(),
                general_ok,
                "{:?}",
                via_messages(&body)
            );
        };
        refused(
            batch(pb::Domain {
                name: "bad..name".into(),
                ..domain()
            }),
            false,
        );
        refused(
            batch(pb::Domain {
                zone: "other".into(),
                ..domain()
            }),
            false,
        );
        refused(
            batch(pb::Domain {
                zone: "full.tld".into(),
                ..domain()
            }),
            false,
        );
        refused(
            batch(pb::Domain {
                statuses: vec!["onHold".into()],
                ..domain()
            }),
            false,
        );
        let mut d = domain();
        d.ds[0].key_tag = 65536;
        refused(batch(d), false);
        let mut d = domain();
        d.ds[0].digest.pop();
        refused(batch(d), false);
        refused(
            batch(pb::Domain {
                nameservers: vec!["-".repeat(64)],
                ..domain()
            }),
            false,
        );
        // A removal, an empty change, an address of 5 octets.
        let removal = pb::ChangeBatch {
            after: 1,
            upto: 1,
            changes: vec![pb::Change {
                change: Some(pb::change::Change::DomainRemoved("a.tld".into())),
            }],
        };
        refused(removal.encode_to_vec(), true);
        let empty = pb::ChangeBatch {
            after: 1,
            upto: 1,
            changes: vec![pb::Change { change: None }],
        };
        refused(empty.encode_to_vec(), false);
        let host = pb::Host {
            name: "ns.tld".into(),
            addresses: vec![vec![1, 2, 3, 4, 5]],
            ..Default::default()
        };
        let host = pb::ChangeBatch {
            after: 1,
            upto: 1,
            changes: vec![pb::Change {
                change: Some(pb::change::Change::Host(host)),
            }],
        };
        refused(host.encode_to_vec(), false);
        // An unknown field in the batch (legal protobuf; prost skips it), invalid UTF-8 in a
        // name, a chunk cut short.
        let mut unknown = batch(domain());
        unknown.extend_from_slice(&[(15 << 3) | 2, 1, b'x']);
        refused(unknown, true);
        let mut body = batch(pb::Domain {
            name: "full.tld".into(),
            ..domain()
        });
        let at = body.windows(8).position(|w| w == b"full.tld").unwrap();
        body[at] = 0xff;
        refused(body, false);
        let body = batch(domain());
        refused(body[..body.len() - 1].to_vec(), false);
    }

    /// Mutated chunks: wherever the direct decoder accepts one, the general path gives the
    /// same objects. (Deterministic: a fixed xorshift sequence.)
    #[test]
    fn mutated_chunks_the_direct_decoder_takes_read_the_same_both_ways() {
        let body = encode(&varied());
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut taken, mut left, mut dns_compared) = (0, 0, 0);
        for _ in 0..20_000 {
            let mut bad = body.clone();
            for _ in 0..=next() % 3 {
                let at = (next() % bad.len() as u64) as usize;
                match next() % 3 {
                    0 => bad[at] ^= 1 << (next() % 8),
                    1 => bad[at] = next() as u8,
                    _ => {
                        bad.remove(at);
                    }
                }
            }
            match full(&bad) {
                Some(direct) => {
                    assert_eq!(Ok(direct), via_messages(&bad), "chunk {bad:?}");
                    taken += 1;
                }
                None => left += 1,
            }
            // A DNS-only read does not look into the fields it passes over, so it may take a
            // chunk the general path refuses there; where both take one, they agree.
            if let (Some(direct), Ok(general)) = (dns(&bad), via_messages(&bad)) {
                assert_eq!(direct, kept_for_dns(general), "chunk {bad:?}");
                dns_compared += 1;
            }
        }
        // Both sides of the comparison were exercised.
        assert!(taken > 1000 && left > 1000, "{taken} taken, {left} left");
        assert!(
            dns_compared > 1000,
            "{dns_compared} compared in a DNS-only read"
        );
    }
}
