//! Leaf `lookup`: the authoritative answer, a synchronous function of the zone data and the
//! question ([`answer`]). NXDOMAIN, NODATA and referrals are answer values, never errors.
//!
//! Behaviour, with BIND 9.18, NSD and Knot as the reference:
//! - Name in no zone, or class other than IN → REFUSED.
//! - At or below a delegation (the name directly below the apex is a delegated domain): a
//!   referral — NOERROR, AA clear, the NS RRset in AUTHORITY, glue A/AAAA in ADDITIONAL. Glue
//!   of nameservers inside the delegated domain (in-domain glue) must fit or TC is set
//!   (RFC 9471 §3.1); glue of other nameservers in the zone (sibling glue) is added when it
//!   fits (§3.2).
//! - DS for the delegated name itself: answered from the parent side with AA (RFC 4034 §5,
//!   RFC 4035 §3.1.4.1): the DS RRset, or NODATA.
//! - Apex: SOA, NS (addresses of in-zone nameservers in ADDITIONAL, optional), anything else
//!   NODATA (DS at the apex too: there is no parent here).
//! - Other names in the zone: the registry's hosts (A/AAAA), empty non-terminals (NODATA,
//!   RFC 8020), wildcards (RFC 4592 §3.3.1: `*` below the closest encloser), else NXDOMAIN.
//! - Negative answers carry the SOA in AUTHORITY with TTL min(SOA TTL, MINIMUM) (RFC 2308 §3).
//! - Positive answers carry no NS RRset in AUTHORITY (as BIND with `minimal-responses
//!   no-auth`, NSD and Knot do by default).
//! - ANY (RFC 8482 §4.1): over UDP one RRset (the SOA at the apex, the A RRset of a host, else
//!   its AAAA); over TCP every RRset at the name. This is BIND's `minimal-any yes`.
//!
//! # DNSSEC (DO set and the zone signed, issue 13)
//! Without DO, or in an unsigned zone, nothing below applies and the answer is byte for byte
//! the unsigned one. With DO in a signed zone ([`crate::zone::dnssec`] holds its records):
//! - every authoritative RRset comes with its RRSIGs, written in the same atomic group as the
//!   RRset, so a group that does not fit is dropped whole: TC when the RRset was required,
//!   never an RRset without its signatures (RFC 4035 §3.1.1). Glue is not signed.
//! - the apex answers DNSKEY and NSEC3PARAM (and NSEC at an NSEC owner);
//! - a referral to a delegation with DS carries the DS and its RRSIGs (§3.1.4); to one without,
//!   the proof of no DS: with NSEC3 the closest provable encloser's (the apex's) matching NSEC3
//!   and the opt-out NSEC3 covering the delegation (RFC 5155 §7.2.7), or its matching NSEC3
//!   where the chain has one; with NSEC the delegation's NSEC (RFC 4035 §3.1.4.1);
//! - NODATA: the NSEC3 matching the name (RFC 5155 §7.2.3), a DS NODATA at an insecure
//!   delegation as the referral's proof (§7.2.4, §7.2.5); NXDOMAIN: the closest-encloser
//!   proof and the NSEC3 covering the wildcard at the closest encloser (§7.2.2); a wildcard
//!   answer: the NSEC3 covering the next closer name (§7.2.6); a wildcard NODATA: the
//!   closest-encloser proof and the wildcard's matching NSEC3 (§7.2.5). NSEC zones the
//!   RFC 4035 §3.1.3 way (the NSEC matching or covering the name, and the one covering the
//!   wildcard). A record two parts of a proof name is written once.
//! - CD is copied (as for every answer); AD is never set (an authoritative server).

use orrery_proto::dnssec::rrset_type;
use orrery_proto::name::wire_is_subdomain;

use crate::dns::leaf::{Ctx, Dns};
use crate::dns::wire::{Event, Full, Owner, Response, Section, Transport, class, rcode, rtype};
use crate::expiry::Expiry;
use crate::selector::{Flow, Leaf};
use crate::zone::dnssec::{Denial, Hash, Signed, nsec3_owner};
use crate::zone::{Delegation, HostId, HostTable, ZoneData, ZoneSet};

/// The zone's DNSSEC records when the answer is to carry them (DO set, zone signed).
type Sec<'a> = Option<&'a Signed>;

/// The lookup leaf.
pub struct Lookup {
    name: String,
}

impl Lookup {
    pub fn new(name: String) -> Self {
        Self { name }
    }
}

impl Leaf<Dns> for Lookup {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, ev: &mut Event, ctx: &Ctx<'_>) -> Flow {
        answer_unless_expired(ctx.zones, ev, ctx.nsid, ctx.expiry);
        Flow::Respond
    }
}

/// Writes the authoritative answer to the event's question into its response.
pub fn answer(set: &ZoneSet, ev: &mut Event, nsid: Option<&'static [u8]>) {
    answer_unless_expired(set, ev, nsid, None);
}

/// [`answer`], or SERVFAIL when `expiry` (given with `serve_expired = false`) finds the zone
/// past its SOA EXPIRE: the zone "is no longer authoritative" (RFC 1035 §3.3.13), as a BIND,
/// NSD or Knot secondary answers then. One relaxed load, only for names in a zone.
fn answer_unless_expired(
    set: &ZoneSet,
    ev: &mut Event,
    nsid: Option<&'static [u8]>,
    expiry: Option<&Expiry>,
) {
    let zone = match ev.query.qclass {
        class::IN => set.find_zone(ev.query.qname()),
        _ => None,
    };
    let Some(zone) = zone else {
        ev.begin_response(rcode::REFUSED, nsid);
        return;
    };
    if expiry.is_some_and(|e| e.is_expired(zone.soa.expire)) {
        ev.begin_response(rcode::SERVFAIL, nsid);
        return;
    }
    ev.begin_response(rcode::NOERROR, nsid);
    let q = &ev.query;
    let r = &mut ev.response;
    let sec: Sec<'_> =
        (q.edns.is_some_and(|e| e.dnssec_ok) && zone.signed.is_signed()).then_some(&zone.signed);
    let qtype = q.qtype;
    let tcp = ev.transport == Transport::Tcp;
    let below = q.label_count() - zone.apex_labels;
    if below == 0 {
        answer_apex(set, zone, sec, qtype, tcp, r);
        return;
    }
    let child = q.qname_suffix(below - 1);
    if let Some(del) = zone.delegation(child) {
        if below == 1 && qtype == rtype::DS {
            r.authoritative = true;
            if !del.has_ds() {
                no_data(zone, sec, r);
                if let Some(sec) = sec {
                    insecure_delegation_proof(zone, sec, child, r);
                }
            } else {
                ds_rrset(zone, sec, child, Section::Answer, &del, r);
            }
        } else {
            referral(&set.hosts, zone, sec, child, &del, r);
        }
        return;
    }
    r.authoritative = true;
    if let Some(node) = zone.node(q.qname()) {
        answer_host(&set.hosts, zone, sec, q.qname(), node.host, qtype, tcp, r);
        return;
    }
    if zone.has_wildcards() {
        // The closest encloser is the longest existing ancestor (RFC 4592 §3.3.1); the apex
        // always exists. Delegations are excluded above, so ancestors are plain nodes.
        for skip in 1..=below {
            let ancestor = q.qname_suffix(skip);
            if skip < below && zone.node(ancestor).is_none() {
                continue;
            }
            let mut buf = [0u8; 257];
            buf[0] = 1;
            buf[1] = b'*';
            let len = 2 + ancestor.len();
            if len <= 255 {
                buf[2..len].copy_from_slice(ancestor);
                let wildcard = &buf[..len];
                if let Some(node) = zone.node(wildcard) {
                    let wrote =
                        answer_host(&set.hosts, zone, sec, wildcard, node.host, qtype, tcp, r);
                    if let Some(sec) = sec {
                        let next_closer = q.qname_suffix(skip - 1);
                        let needs: &[Need<'_>] = match (wrote, sec.denial()) {
                            // §7.2.6 / RFC 4035 §3.1.3.3: no closer match.
                            (true, Denial::Nsec3) => &[Need::Cover(next_closer)],
                            (true, Denial::Nsec) => &[Need::Cover(q.qname())],
                            // §7.2.5 / RFC 4035 §3.1.3.4: wildcard NODATA.
                            (false, Denial::Nsec3) => &[
                                Need::Match(ancestor),
                                Need::Cover(next_closer),
                                Need::Match(wildcard),
                            ],
                            (false, Denial::Nsec) => {
                                &[Need::Cover(q.qname()), Need::Match(wildcard)]
                            }
                        };
                        deny(zone, sec, needs, r);
                    }
                    return;
                }
            }
            break;
        }
    }
    r.rcode = rcode::NXDOMAIN;
    soa(zone, sec, Section::Authority, zone.negative_ttl(), r);
    if let Some(sec) = sec {
        // The closest encloser: the longest existing ancestor, the apex at the latest.
        let mut skip = 1;
        while skip < below && zone.node(q.qname_suffix(skip)).is_none() {
            skip += 1;
        }
        let ce = q.qname_suffix(skip);
        let mut buf = [0u8; 257];
        buf[0] = 1;
        buf[1] = b'*';
        let len = 2 + ce.len();
        let wildcard = if len <= 255 {
            buf[2..len].copy_from_slice(ce);
            &buf[..len]
        } else {
            // No wildcard can exist there: nothing to prove beyond the name itself.
            ce
        };
        let needs: &[Need<'_>] = match sec.denial() {
            // RFC 5155 §7.2.2.
            Denial::Nsec3 => &[
                Need::Match(ce),
                Need::Cover(q.qname_suffix(skip - 1)),
                Need::Cover(wildcard),
            ],
            // RFC 4035 §3.1.3.2.
            Denial::Nsec => &[Need::Cover(q.qname()), Need::Cover(wildcard)],
        };
        deny(zone, sec, needs, r);
    }
}

fn answer_apex(
    set: &ZoneSet,
    zone: &ZoneData,
    sec: Sec<'_>,
    qtype: u16,
    tcp: bool,
    r: &mut Response,
) {
    r.authoritative = true;
    match qtype {
        rtype::SOA => {
            soa(zone, sec, Section::Answer, zone.soa_ttl, r);
        }
        rtype::NS => {
            if ns_rrset(
                &set.hosts,
                zone,
                sec,
                Section::Answer,
                Owner::Question,
                &zone.apex,
                zone.apex_ns.iter().copied(),
                r,
            ) {
                for &id in &zone.apex_ns {
                    let h = set.hosts.get(id);
                    if zone.contains(h.name) {
                        addresses(&set.hosts, sec, id, zone.ns_ttl, false, r);
                    }
                }
            }
        }
        rtype::ANY => {
            soa(zone, sec, Section::Answer, zone.soa_ttl, r);
            if tcp {
                ns_rrset(
                    &set.hosts,
                    zone,
                    sec,
                    Section::Answer,
                    Owner::Question,
                    &zone.apex,
                    zone.apex_ns.iter().copied(),
                    r,
                );
                if let Some(sec) = sec {
                    for t in [rrset_type::DNSKEY, rrset_type::NSEC3PARAM] {
                        held_rrset(sec, &zone.apex, t, r);
                    }
                }
            }
        }
        _ => {
            if let Some(sec) = sec
                && held_rrset(sec, &zone.apex, qtype, r)
            {
                return;
            }
            no_data(zone, sec, r);
            if let Some(sec) = sec {
                deny(zone, sec, &[Need::Match(&zone.apex)], r);
            }
        }
    }
}

/// A DNSSEC RRset the master sent (DNSKEY, NSEC3PARAM, NSEC) at `owner` with its RRSIGs, in
/// ANSWER. False when there is none of that type there (or it did not fit: TC is then set).
fn held_rrset(sec: &Signed, owner: &[u8], qtype: u16, r: &mut Response) -> bool {
    if !matches!(
        qtype,
        rrset_type::DNSKEY | rrset_type::NSEC3PARAM | rrset_type::NSEC
    ) {
        return false;
    }
    let Some(set) = sec.set(owner, qtype, 0) else {
        return false;
    };
    r.rrset(Section::Answer, true, |r| {
        for rd in set.rdatas() {
            r.record(Owner::Question, qtype, class::IN, set.ttl, |r| {
                r.put_bytes(rd)
            })?;
        }
        rrsigs(Some(sec), Owner::Question, owner, qtype, set.ttl, r)
    });
    true
}

/// The host's RRsets at `owner` (the question's name, or the wildcard that synthesises it):
/// true when an RRset was written (or did not fit), false after a NODATA (its SOA written;
/// the caller adds its proof).
#[allow(clippy::too_many_arguments)]
fn answer_host(
    hosts: &HostTable,
    zone: &ZoneData,
    sec: Sec<'_>,
    owner: &[u8],
    host: Option<HostId>,
    qtype: u16,
    tcp: bool,
    r: &mut Response,
) -> bool {
    let exact = !owner.starts_with(b"\x01*");
    let Some(id) = host else {
        no_data(zone, sec, r);
        if let (Some(sec), true) = (sec, exact) {
            deny(zone, sec, &[Need::Match(owner)], r);
        }
        return false;
    };
    let h = hosts.get(id);
    let ttl = zone.ns_ttl;
    let q = Owner::Question;
    let wrote = match qtype {
        rtype::A if !h.v4.is_empty() => a_rrset(sec, owner, h.v4, Section::Answer, q, ttl, true, r),
        rtype::AAAA if !h.v6.is_empty() => {
            aaaa_rrset(sec, owner, h.v6, Section::Answer, q, ttl, true, r)
        }
        rtype::ANY if !h.v4.is_empty() || !h.v6.is_empty() => {
            if !h.v4.is_empty() {
                a_rrset(sec, owner, h.v4, Section::Answer, q, ttl, true, r);
            }
            if !h.v6.is_empty() && (tcp || h.v4.is_empty()) {
                aaaa_rrset(sec, owner, h.v6, Section::Answer, q, ttl, true, r);
            }
            true
        }
        _ => false,
    };
    if wrote || r.truncated {
        return true;
    }
    if let (Some(sec), true) = (sec, exact)
        && held_rrset(sec, owner, qtype, r)
    {
        return true;
    }
    no_data(zone, sec, r);
    if let (Some(sec), true) = (sec, exact) {
        deny(zone, sec, &[Need::Match(owner)], r);
    }
    false
}

/// The DS RRset of `child` with its RRSIGs, in `section` (required).
fn ds_rrset(
    zone: &ZoneData,
    sec: Sec<'_>,
    child: &[u8],
    section: Section,
    del: &Delegation<'_>,
    r: &mut Response,
) -> bool {
    let owner = if section == Section::Answer {
        Owner::Question
    } else {
        Owner::Name(child)
    };
    r.rrset(section, true, |r| {
        for ds in del.ds() {
            r.record(owner, rtype::DS, class::IN, zone.ds_ttl, |r| {
                r.put_u16(ds.key_tag)?;
                r.put_u8(ds.algorithm)?;
                r.put_u8(ds.digest_type)?;
                r.put_bytes(ds.digest)
            })?;
        }
        rrsigs(sec, owner, child, rtype::DS, zone.ds_ttl, r)
    })
}

/// A referral to `del`, the delegation of `child`.
fn referral(
    hosts: &HostTable,
    zone: &ZoneData,
    sec: Sec<'_>,
    child: &[u8],
    del: &Delegation<'_>,
    r: &mut Response,
) {
    // The delegation's NS RRset is not authoritative here: never signed (RFC 4035 §2.2).
    if !ns_rrset(
        hosts,
        zone,
        None,
        Section::Authority,
        Owner::Name(child),
        child,
        del.ns(),
        r,
    ) {
        return;
    }
    if let Some(sec) = sec {
        if del.has_ds() {
            ds_rrset(zone, Some(sec), child, Section::Authority, del, r);
        } else {
            insecure_delegation_proof(zone, sec, child, r);
        }
    }
    // In-domain glue first (required), then sibling glue (optional), each in NS order.
    for in_domain in [true, false] {
        for id in del.ns() {
            let name = hosts.get(id).name;
            if !zone.contains(name) || name.len() == zone.apex.len() {
                continue;
            }
            if wire_is_subdomain(name, child) == in_domain {
                addresses(hosts, None, id, zone.ns_ttl, in_domain, r);
            }
        }
    }
}

/// The proof that the delegation `child` has no DS (RFC 5155 §7.2.4 when the chain holds its
/// name, else §7.2.7's opt-out proof; RFC 4035 §3.1.4.1 with NSEC).
fn insecure_delegation_proof(zone: &ZoneData, sec: &Signed, child: &[u8], r: &mut Response) {
    match sec.denial() {
        Denial::Nsec3 => {
            let h = sec.hash(&zone.apex, child);
            if sec.nsec3().matches(&h) {
                deny(zone, sec, &[Need::Match(child)], r);
            } else {
                deny(zone, sec, &[Need::Match(&zone.apex), Need::Cover(child)], r);
            }
        }
        Denial::Nsec => deny(zone, sec, &[Need::Match(child)], r),
    }
}

/// One part of a denial proof: the NSEC(3) matching a name, or the one covering it (for NSEC,
/// both are the greatest owner at or before the name).
#[derive(Clone, Copy)]
enum Need<'a> {
    Match(&'a [u8]),
    Cover(&'a [u8]),
}

/// A record a proof writes: an NSEC3 by its owner hash, or an NSEC by its owner.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Proof<'a> {
    Nsec3(Hash),
    Nsec(&'a [u8]),
}

/// Writes the NSEC or NSEC3 records (with their RRSIGs) that `needs` name, each once, in
/// AUTHORITY, each required (TC rather than a partial proof). A part the chain cannot give
/// (a matching NSEC3 that is not there) is left out: the data is wrong then, and a validator
/// will say so, as it would of any server holding it.
fn deny(zone: &ZoneData, sec: &Signed, needs: &[Need<'_>], r: &mut Response) {
    let mut done: [Option<Proof<'_>>; 3] = [None; 3];
    for (i, need) in needs.iter().take(3).enumerate() {
        let proof = match (sec.denial(), *need) {
            (Denial::Nsec3, Need::Match(name)) => {
                let h = sec.hash(&zone.apex, name);
                sec.nsec3().matches(&h).then_some(Proof::Nsec3(h))
            }
            (Denial::Nsec3, Need::Cover(name)) => {
                let h = sec.hash(&zone.apex, name);
                sec.nsec3().covering(&h).map(|h| Proof::Nsec3(*h))
            }
            (Denial::Nsec, Need::Match(name) | Need::Cover(name)) => {
                sec.nsec().covering(name).map(Proof::Nsec)
            }
        };
        let Some(proof) = proof else { continue };
        if done[..i].contains(&Some(proof)) {
            continue;
        }
        done[i] = Some(proof);
        let mut buf = [0u8; 255];
        let (owner, rtype) = match proof {
            Proof::Nsec3(h) => match nsec3_owner(&h, &zone.apex, &mut buf) {
                Some(len) => (&buf[..len], rrset_type::NSEC3),
                None => continue,
            },
            Proof::Nsec(owner) => (owner, rrset_type::NSEC),
        };
        let Some(set) = sec.set(owner, rtype, 0) else {
            continue;
        };
        r.rrset(Section::Authority, true, |r| {
            for rd in set.rdatas() {
                r.record(Owner::Name(owner), rtype, class::IN, set.ttl, |r| {
                    r.put_bytes(rd)
                })?;
            }
            rrsigs(Some(sec), Owner::Name(owner), owner, rtype, set.ttl, r)
        });
    }
}

/// The RRSIGs over `covered` at `owner` (canonical wire; the records are written with
/// `written` as owner, the question's name for a wildcard answer), with the TTL of the RRset
/// they cover (RFC 4034 §3). Nothing without `sec`.
fn rrsigs(
    sec: Sec<'_>,
    written: Owner<'_>,
    owner: &[u8],
    covered: u16,
    ttl: u32,
    r: &mut Response,
) -> Result<(), Full> {
    let Some(set) = sec.and_then(|s| s.rrsig(owner, covered)) else {
        return Ok(());
    };
    for rd in set.rdatas() {
        // The signer's name in an RRSIG is never compressed (RFC 4034 §3.1.7): copied as is.
        r.record(written, rrset_type::RRSIG, class::IN, ttl, |r| {
            r.put_bytes(rd)
        })?;
    }
    Ok(())
}

/// A NODATA answer's SOA (signed when `sec`); the caller adds the proof.
fn no_data(zone: &ZoneData, sec: Sec<'_>, r: &mut Response) {
    r.rcode = rcode::NOERROR;
    soa(zone, sec, Section::Authority, zone.negative_ttl(), r);
}

/// The zone's SOA RRset in `section` (the question's owner in ANSWER, else the apex), with its
/// RRSIGs when `sec`.
pub(crate) fn soa(
    zone: &ZoneData,
    sec: Sec<'_>,
    section: Section,
    ttl: u32,
    r: &mut Response,
) -> bool {
    r.rrset(section, true, |r| {
        let owner = if section == Section::Answer {
            Owner::Question
        } else {
            Owner::Name(&zone.apex)
        };
        r.record(owner, rtype::SOA, class::IN, ttl, |r| {
            let soa = &zone.soa;
            r.put_name(soa.mname.as_wire())?;
            r.put_name(soa.rname.as_wire())?;
            r.put_u32(zone.serial)?;
            r.put_u32(soa.refresh)?;
            r.put_u32(soa.retry)?;
            r.put_u32(soa.expire)?;
            r.put_u32(soa.minimum)
        })?;
        rrsigs(sec, owner, &zone.apex, rtype::SOA, ttl, r)
    })
}

/// An NS RRset (at `owner_wire`, written as `owner`), with its RRSIGs when `sec`.
#[allow(clippy::too_many_arguments)]
fn ns_rrset(
    hosts: &HostTable,
    zone: &ZoneData,
    sec: Sec<'_>,
    section: Section,
    owner: Owner<'_>,
    owner_wire: &[u8],
    ns: impl Iterator<Item = HostId>,
    r: &mut Response,
) -> bool {
    r.rrset(section, true, |r| {
        for id in ns {
            r.record(owner, rtype::NS, class::IN, zone.ns_ttl, |r| {
                r.put_name(hosts.get(id).name)
            })?;
        }
        rrsigs(sec, owner, owner_wire, rtype::NS, zone.ns_ttl, r)
    })
}

/// A and AAAA RRsets of a host in ADDITIONAL (signed when `sec`: authoritative addresses).
fn addresses(
    hosts: &HostTable,
    sec: Sec<'_>,
    id: HostId,
    ttl: u32,
    required: bool,
    r: &mut Response,
) {
    let h = hosts.get(id);
    let owner = Owner::Name(h.name);
    if !h.v4.is_empty() {
        a_rrset(
            sec,
            h.name,
            h.v4,
            Section::Additional,
            owner,
            ttl,
            required,
            r,
        );
    }
    if !h.v6.is_empty() {
        aaaa_rrset(
            sec,
            h.name,
            h.v6,
            Section::Additional,
            owner,
            ttl,
            required,
            r,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn a_rrset(
    sec: Sec<'_>,
    owner_wire: &[u8],
    addrs: &[[u8; 4]],
    section: Section,
    owner: Owner<'_>,
    ttl: u32,
    required: bool,
    r: &mut Response,
) -> bool {
    r.rrset(section, required, |r| {
        for a in addrs {
            r.record(owner, rtype::A, class::IN, ttl, |r| r.put_bytes(a))?;
        }
        rrsigs(sec, owner, owner_wire, rtype::A, ttl, r)
    })
}

#[allow(clippy::too_many_arguments)]
fn aaaa_rrset(
    sec: Sec<'_>,
    owner_wire: &[u8],
    addrs: &[[u8; 16]],
    section: Section,
    owner: Owner<'_>,
    ttl: u32,
    required: bool,
    r: &mut Response,
) -> bool {
    r.rrset(section, required, |r| {
        for a in addrs {
            r.record(owner, rtype::AAAA, class::IN, ttl, |r| r.put_bytes(a))?;
        }
        rrsigs(sec, owner, owner_wire, rtype::AAAA, ttl, r)
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::{RData, RecordType};

    use super::*;
    use crate::dns::leaf::tests::{ask, selector};
    use crate::dns::wire::Edns;
    use crate::dns::wire::tests::{EDNS, query_packet};
    use crate::zone::tests::{domain, host, sample, zone};

    fn q(name: &str, qtype: u16) -> Message {
        q_with(name, qtype, None, Transport::Udp)
    }

    fn q_with(name: &str, qtype: u16, edns: Option<Edns>, t: Transport) -> Message {
        ask(
            &selector(),
            &sample(),
            &query_packet(name, qtype, class::IN, edns),
            t,
        )
        .unwrap()
    }

    fn names(records: &[hickory_proto::rr::Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{} {}", r.name.to_string().to_lowercase(), r.record_type()))
            .collect()
    }

    /// With `serve_expired = false` (an [`Expiry`] in the context) a zone silent for its SOA
    /// EXPIRE answers SERVFAIL, every name in it, until a master is heard from; names in no
    /// zone are still REFUSED; without one (the default) the same silence changes nothing.
    #[test]
    fn an_expired_zone_answers_servfail_only_when_told_to() {
        let zones = sample();
        let expire = zones.zones()[0].soa.expire;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ask_with = |name: &str, expiry: Option<&Expiry>| {
            let mut ev = Event::new();
            ev.load(
                &query_packet(name, rtype::A, class::IN, None),
                "127.0.0.1".parse().unwrap(),
                Transport::Udp,
            );
            let ctx = Ctx {
                zones: &zones,
                nsid: None,
                expiry,
            };
            assert!(selector().run(&mut ev, &ctx));
            Message::from_vec(ev.response.bytes())
                .unwrap()
                .response_code
        };
        let fresh = Expiry::heard_at(now - u64::from(expire) + 60);
        let expired = Expiry::heard_at(now - u64::from(expire) - 1);
        for name in ["tld", "foo.tld", "nope.tld", "ns1.foo.tld"] {
            assert_ne!(ask_with(name, None), ResponseCode::ServFail, "{name}");
            assert_ne!(
                ask_with(name, Some(&fresh)),
                ResponseCode::ServFail,
                "{name}"
            );
            assert_eq!(
                ask_with(name, Some(&expired)),
                ResponseCode::ServFail,
                "{name}"
            );
        }
        assert_eq!(
            ask_with("example.org", Some(&expired)),
            ResponseCode::Refused
        );
        expired.heard();
        assert_eq!(ask_with("foo.tld", Some(&expired)), ResponseCode::NoError);
    }

    #[test]
    fn referral_with_glue() {
        for name in ["foo.tld", "www.foo.tld", "a.b.FOO.tld"] {
            let m = q(name, rtype::A);
            assert_eq!(m.response_code, ResponseCode::NoError);
            assert!(!m.authoritative);
            assert!(m.answers.is_empty());
            assert_eq!(names(&m.authorities), ["foo.tld. NS", "foo.tld. NS"]);
            assert_eq!(
                names(&m.additionals),
                ["ns1.foo.tld. A", "ns1.foo.tld. AAAA", "ns2.foo.tld. A"]
            );
            assert_eq!(m.authorities[0].ttl, 86400);
        }
        // Sibling glue for bar.tld (ns1.foo.tld), none for the out-of-zone host.
        let m = q("bar.tld", rtype::NS);
        assert!(!m.authoritative);
        assert_eq!(
            names(&m.additionals),
            ["ns1.foo.tld. A", "ns1.foo.tld. AAAA"]
        );
    }

    #[test]
    fn no_ds_in_referrals_even_with_do() {
        let edns = Edns {
            dnssec_ok: true,
            ..EDNS
        };
        let m = q_with("signed.tld", rtype::A, Some(edns), Transport::Udp);
        assert_eq!(names(&m.authorities), ["signed.tld. NS", "signed.tld. NS"]);
        assert!(m.edns.as_ref().unwrap().flags().dnssec_ok);
    }

    #[test]
    fn ds_answered_by_parent() {
        let m = q("signed.tld", rtype::DS);
        assert!(m.authoritative);
        assert_eq!(names(&m.answers), ["signed.tld. DS"]);
        assert_eq!(m.answers[0].ttl, 3600);
        let m = q("foo.tld", rtype::DS);
        assert!(m.authoritative);
        assert!(m.answers.is_empty());
        assert_eq!(names(&m.authorities), ["tld. SOA"]);
        // DS below a delegation is a referral; DS at the apex is NODATA.
        assert!(!q("x.foo.tld", rtype::DS).authoritative);
        let m = q("tld", rtype::DS);
        assert!(m.authoritative && m.answers.is_empty());
        assert_eq!(names(&m.authorities), ["tld. SOA"]);
    }

    #[test]
    fn negative_answers() {
        for name in [
            "nope.tld",
            "held.tld",
            "www.held.tld",
            "nons.tld",
            "unused.tld",
        ] {
            let m = q(name, rtype::A);
            assert_eq!(m.response_code, ResponseCode::NXDomain, "{name}");
            assert!(m.authoritative);
            assert_eq!(names(&m.authorities), ["tld. SOA"]);
            // min(3600, 300)
            assert_eq!(m.authorities[0].ttl, 300);
        }
        // Empty non-terminal and missing type: NODATA.
        for (name, t) in [
            ("nic.tld", rtype::A),
            ("a.nic.tld", rtype::TXT),
            ("b.nic.tld", rtype::AAAA),
        ] {
            let m = q(name, t);
            assert_eq!(m.response_code, ResponseCode::NoError, "{name}");
            assert!(m.authoritative && m.answers.is_empty());
            assert_eq!(names(&m.authorities), ["tld. SOA"]);
        }
        // Outside every zone, or another class.
        assert_eq!(q("example", rtype::A).response_code, ResponseCode::Refused);
        let m = ask(
            &selector(),
            &sample(),
            &query_packet("tld", rtype::SOA, 4, None),
            Transport::Udp,
        )
        .unwrap();
        assert_eq!(m.response_code, ResponseCode::Refused);
    }

    #[test]
    fn apex_and_hosts() {
        let m = q("TLD", rtype::SOA);
        assert!(m.authoritative);
        assert_eq!(m.queries[0].name().to_string(), "TLD.");
        assert_eq!(names(&m.answers), ["tld. SOA"]);
        let RData::SOA(soa) = &m.answers[0].data else {
            panic!()
        };
        assert_eq!(soa.serial, 7);
        assert_eq!(soa.mname.to_string().to_lowercase(), "a.nic.tld.");
        let m = q("tld", rtype::NS);
        assert_eq!(names(&m.answers), ["tld. NS", "tld. NS", "tld. NS"]);
        assert_eq!(
            names(&m.additionals),
            ["a.nic.tld. A", "a.nic.tld. AAAA", "b.nic.tld. A"]
        );
        assert!(m.authorities.is_empty());
        let m = q("A.Nic.tld", rtype::AAAA);
        assert!(m.authoritative);
        assert_eq!(names(&m.answers), ["a.nic.tld. AAAA"]);
        let m = q("tld", rtype::A);
        assert!(m.answers.is_empty() && m.authoritative);
    }

    #[test]
    fn any_is_minimal_over_udp() {
        assert_eq!(names(&q("tld", rtype::ANY).answers), ["tld. SOA"]);
        let m = q_with("tld", rtype::ANY, None, Transport::Tcp);
        assert_eq!(
            names(&m.answers),
            ["tld. SOA", "tld. NS", "tld. NS", "tld. NS"]
        );
        assert_eq!(names(&q("a.nic.tld", rtype::ANY).answers), ["a.nic.tld. A"]);
        let m = q_with("a.nic.tld", rtype::ANY, None, Transport::Tcp);
        assert_eq!(names(&m.answers), ["a.nic.tld. A", "a.nic.tld. AAAA"]);
    }

    #[test]
    fn wildcards() {
        let zones = ZoneSet::build(
            1,
            &[zone("tld", &["*.w.tld", "ns.w.tld"])],
            &[],
            &[
                host("*.w.tld", &["192.0.2.5"]),
                host("ns.w.tld", &["192.0.2.6"]),
            ],
        );
        let ask1 = |name: &str, t| {
            ask(
                &selector(),
                &zones,
                &query_packet(name, t, class::IN, None),
                Transport::Udp,
            )
            .unwrap()
        };
        let m = ask1("x.y.W.tld", rtype::A);
        assert!(m.authoritative);
        assert_eq!(names(&m.answers), ["x.y.w.tld. A"]);
        // An existing name is not covered by the wildcard (RFC 4592 §2.2.1).
        assert_eq!(names(&ask1("ns.w.tld", rtype::A).answers), ["ns.w.tld. A"]);
        let m = ask1("a.ns.w.tld", rtype::A);
        assert_eq!(m.response_code, ResponseCode::NXDomain);
        assert_eq!(
            ask1("x.w.tld", rtype::TXT).response_code,
            ResponseCode::NoError
        );
        assert_eq!(
            ask1("x.v.tld", rtype::A).response_code,
            ResponseCode::NXDomain
        );
    }

    #[test]
    fn required_glue_sets_tc() {
        let ns: Vec<String> = (0..12).map(|i| format!("ns{i}.big.tld")).collect();
        let ns_ref: Vec<&str> = ns.iter().map(String::as_str).collect();
        let hosts: Vec<_> = ns
            .iter()
            .map(|n| host(n, &["192.0.2.1", "2001:db8::1", "2001:db8::2"]))
            .collect();
        let zones = ZoneSet::build(
            1,
            &[zone("tld", &["a.nic.tld"])],
            &[domain("big.tld", "tld", &ns_ref)],
            &hosts,
        );
        let run = |edns, t| {
            ask(
                &selector(),
                &zones,
                &query_packet("big.tld", rtype::A, class::IN, edns),
                t,
            )
            .unwrap()
        };
        let m = run(None, Transport::Udp);
        assert!(m.truncation);
        assert_eq!(m.authorities.len(), 12);
        let m = run(Some(EDNS), Transport::Udp);
        assert!(!m.truncation);
        assert_eq!(m.additionals.len(), 36);
        let m = run(None, Transport::Tcp);
        assert!(!m.truncation);
        assert_eq!(m.additionals.len(), 36);
        // Sibling glue never sets TC.
        let zones = ZoneSet::build(
            1,
            &[zone("tld", &["a.nic.tld"])],
            &[
                domain("small.tld", "tld", &ns_ref),
                domain("big.tld", "tld", &["x.example"]),
            ],
            &hosts,
        );
        let m = ask(
            &selector(),
            &zones,
            &query_packet("small.tld", rtype::A, class::IN, None),
            Transport::Udp,
        )
        .unwrap();
        assert!(!m.truncation);
        assert!(m.additionals.len() < 36);
        let _ = RecordType::from_str("A");
    }

    mod signed {
        use orrery_proto::Change;
        use orrery_proto::dnssec::Denial;
        use orrery_signer::nsec3;

        use super::*;
        use crate::dns::leaf::Ctx;
        use crate::zone::tests::{n, signed_sample};

        const DO: Edns = Edns {
            dnssec_ok: true,
            ..EDNS
        };

        fn raw(zones: &ZoneSet, name: &str, t: u16, edns: Option<Edns>, tr: Transport) -> Vec<u8> {
            let mut ev = Event::new();
            ev.load(
                &query_packet(name, t, class::IN, edns),
                "127.0.0.1".parse().unwrap(),
                tr,
            );
            let ctx = Ctx {
                zones,
                nsid: None,
                expiry: None,
            };
            assert!(selector().run(&mut ev, &ctx));
            ev.response.bytes().to_vec()
        }

        fn ask_do(zones: &ZoneSet, name: &str, t: u16) -> Message {
            Message::from_vec(&raw(zones, name, t, Some(DO), Transport::Udp)).unwrap()
        }

        /// "owner TYPE" of each record, RRSIGs as "owner RRSIG(covered)".
        fn rrs(records: &[hickory_proto::rr::Record]) -> Vec<String> {
            records
                .iter()
                .map(|r| {
                    let owner = r.name.to_string().to_lowercase();
                    match &r.data {
                        RData::Unknown { code, rdata } if u16::from(*code) == 46 => {
                            let b = &rdata.anything;
                            format!("{owner} RRSIG({})", u16::from_be_bytes([b[0], b[1]]))
                        }
                        _ => format!("{owner} {}", r.record_type()),
                    }
                })
                .collect()
        }

        /// The owner of the NSEC3 record covering (or matching, `exact`) `name`, from the
        /// signer's records: base32hex sorts as the hashes do.
        fn nsec3_for(sz: &orrery_signer::SignedZone, name: &str, exact: bool) -> String {
            let target = nsec3::base32hex(&nsec3::hash(&n(name), &[], 0));
            let mut owners: Vec<String> = sz
                .records
                .iter()
                .filter(|r| r.rtype == 50)
                .map(|r| r.owner.to_string().trim_end_matches('.').to_string())
                .collect();
            owners.sort();
            let label = |o: &String| o.split('.').next().unwrap().to_string();
            if exact {
                let o = owners
                    .iter()
                    .find(|o| label(o) == target)
                    .expect("matching NSEC3");
                return format!("{o}.");
            }
            let o = owners
                .iter()
                .rev()
                .find(|o| label(o) < target)
                .unwrap_or(owners.last().unwrap());
            format!("{o}.")
        }

        fn objects_only(changes: &[Change]) -> ZoneSet {
            ZoneSet::from_objects(
                7,
                changes.iter().filter(|c| !matches!(c, Change::Dnssec(_))),
            )
        }

        const CORPUS: &[(&str, u16)] = &[
            ("tld", rtype::SOA),
            ("tld", rtype::NS),
            ("tld", 48),
            ("tld", 51),
            ("tld", rtype::A),
            ("tld", rtype::DS),
            ("tld", rtype::ANY),
            ("foo.tld", rtype::A),
            ("www.foo.tld", rtype::AAAA),
            ("foo.tld", rtype::DS),
            ("signed.tld", rtype::DS),
            ("signed.tld", rtype::NS),
            ("a.nic.tld", rtype::A),
            ("a.nic.tld", rtype::TXT),
            ("nic.tld", rtype::A),
            ("x.w.tld", rtype::A),
            ("x.w.tld", rtype::TXT),
            ("nope.tld", rtype::A),
            ("a.b.nope.tld", rtype::A),
            ("x.a.nic.tld", rtype::A),
        ];

        #[test]
        fn without_do_answers_are_byte_identical_to_unsigned() {
            for denial in [Denial::Nsec3OptOut, Denial::Nsec] {
                let (signed, changes, _) = signed_sample(denial);
                let plain = objects_only(&changes);
                assert!(signed.zones()[0].signed.is_signed());
                assert!(!plain.zones()[0].signed.is_signed());
                for &(name, t) in CORPUS {
                    for edns in [None, Some(EDNS)] {
                        for tr in [Transport::Udp, Transport::Tcp] {
                            assert_eq!(
                                raw(&signed, name, t, edns, tr),
                                raw(&plain, name, t, edns, tr),
                                "{name} {t} {edns:?} {tr:?}"
                            );
                        }
                    }
                    // DO in an unsigned zone: unchanged but for the DO bit echoed in the
                    // OPT record (its flags' high octet, 4 from the end: no options).
                    let mut want = raw(&plain, name, t, Some(EDNS), Transport::Udp);
                    let at = want.len() - 4;
                    want[at] |= 0x80;
                    assert_eq!(
                        raw(&plain, name, t, Some(DO), Transport::Udp),
                        want,
                        "{name} {t}"
                    );
                }
            }
        }

        #[test]
        fn apex_rrsets_carry_their_signatures() {
            let (zones, _, _) = signed_sample(Denial::Nsec3OptOut);
            let m = ask_do(&zones, "tld", rtype::SOA);
            assert!(m.authoritative);
            assert_eq!(rrs(&m.answers), ["tld. SOA", "tld. RRSIG(6)"]);
            assert_eq!(m.answers[1].ttl, m.answers[0].ttl);
            let m = ask_do(&zones, "tld", 48);
            assert_eq!(rrs(&m.answers), ["tld. DNSKEY", "tld. RRSIG(48)"]);
            let m = ask_do(&zones, "tld", 51);
            assert_eq!(rrs(&m.answers), ["tld. NSEC3PARAM", "tld. RRSIG(51)"]);
            let m = ask_do(&zones, "tld", rtype::NS);
            assert_eq!(
                rrs(&m.answers),
                ["tld. NS", "tld. NS", "tld. NS", "tld. NS", "tld. RRSIG(2)"]
            );
            // In-zone nameserver addresses, authoritative, signed.
            assert_eq!(
                rrs(&m.additionals)[..4],
                [
                    "a.nic.tld. A",
                    "a.nic.tld. RRSIG(1)",
                    "a.nic.tld. AAAA",
                    "a.nic.tld. RRSIG(28)"
                ]
            );
            assert!(m.edns.as_ref().unwrap().flags().dnssec_ok);
        }

        #[test]
        fn referrals_signed_and_opted_out_nsec3() {
            let (zones, _, sz) = signed_sample(Denial::Nsec3OptOut);
            let m = ask_do(&zones, "www.signed.tld", rtype::A);
            assert!(!m.authoritative);
            assert_eq!(
                rrs(&m.authorities),
                [
                    "signed.tld. NS",
                    "signed.tld. NS",
                    "signed.tld. DS",
                    "signed.tld. RRSIG(43)"
                ]
            );
            assert_eq!(rrs(&m.additionals), ["ns1.signed.tld. A"]);
            // Insecure: the apex's matching NSEC3 and the opt-out NSEC3 covering foo.tld.
            let m = ask_do(&zones, "foo.tld", rtype::A);
            let apex = nsec3_for(&sz, "tld", true);
            let cover = nsec3_for(&sz, "foo.tld", false);
            let mut want = vec!["foo.tld. NS".to_string(), "foo.tld. NS".into()];
            // In this small zone one record may be both (written once).
            for o in if apex == cover {
                vec![&apex]
            } else {
                vec![&apex, &cover]
            } {
                want.push(format!("{o} NSEC3"));
                want.push(format!("{o} RRSIG(50)"));
            }
            assert_eq!(rrs(&m.authorities), want);
            // Glue unsigned.
            assert_eq!(
                rrs(&m.additionals),
                ["ns1.foo.tld. A", "ns1.foo.tld. AAAA", "ns2.foo.tld. A"]
            );
            // The covering record has the opt-out flag (RFC 5155 §7.2.7).
            let nsec3 = m
                .authorities
                .iter()
                .find(|r| {
                    r.name.to_string().to_lowercase() == cover
                        && r.record_type() == RecordType::NSEC3
                })
                .unwrap();
            let RData::Unknown { rdata, .. } = &nsec3.data else {
                panic!()
            };
            assert_eq!(rdata.anything[1] & 1, 1);
            // DS NODATA at the insecure delegation: the same proof, AA, with the signed SOA.
            let m = ask_do(&zones, "foo.tld", rtype::DS);
            assert!(m.authoritative && m.answers.is_empty());
            assert_eq!(rrs(&m.authorities)[..2], ["tld. SOA", "tld. RRSIG(6)"]);
            assert_eq!(rrs(&m.authorities)[2..], want[2..]);
            // DS present: the DS and its RRSIG in ANSWER.
            let m = ask_do(&zones, "signed.tld", rtype::DS);
            assert_eq!(rrs(&m.answers), ["signed.tld. DS", "signed.tld. RRSIG(43)"]);
        }

        #[test]
        fn nxdomain_and_nodata_proofs_nsec3() {
            let (zones, _, sz) = signed_sample(Denial::Nsec3OptOut);
            let proof = |owners: &[String]| {
                let mut v: Vec<String> = vec!["tld. SOA".into(), "tld. RRSIG(6)".into()];
                let mut seen = Vec::new();
                for o in owners {
                    if !seen.contains(o) {
                        seen.push(o.clone());
                        v.push(format!("{o} NSEC3"));
                        v.push(format!("{o} RRSIG(50)"));
                    }
                }
                v
            };
            // NXDOMAIN below the apex: CE tld, next closer nope.tld, wildcard *.tld.
            for q in ["nope.tld", "a.b.nope.tld"] {
                let m = ask_do(&zones, q, rtype::A);
                assert_eq!(m.response_code, ResponseCode::NXDomain);
                assert_eq!(
                    rrs(&m.authorities),
                    proof(&[
                        nsec3_for(&sz, "tld", true),
                        nsec3_for(&sz, "nope.tld", false),
                        nsec3_for(&sz, "*.tld", false),
                    ]),
                    "{q}"
                );
            }
            // NXDOMAIN deeper: CE a.nic.tld.
            let m = ask_do(&zones, "x.a.nic.tld", rtype::A);
            assert_eq!(m.response_code, ResponseCode::NXDomain);
            assert_eq!(
                rrs(&m.authorities),
                proof(&[
                    nsec3_for(&sz, "a.nic.tld", true),
                    nsec3_for(&sz, "x.a.nic.tld", false),
                    nsec3_for(&sz, "*.a.nic.tld", false),
                ])
            );
            // NODATA: the matching NSEC3 (a host, an empty non-terminal, the apex).
            for (q, t) in [
                ("a.nic.tld", rtype::TXT),
                ("nic.tld", rtype::A),
                ("tld", rtype::A),
            ] {
                let m = ask_do(&zones, q, t);
                assert_eq!(m.response_code, ResponseCode::NoError);
                assert!(m.answers.is_empty());
                assert_eq!(
                    rrs(&m.authorities),
                    proof(&[nsec3_for(&sz, q, true)]),
                    "{q}"
                );
            }
            // A signed host answer.
            let m = ask_do(&zones, "a.nic.tld", rtype::A);
            assert_eq!(rrs(&m.answers), ["a.nic.tld. A", "a.nic.tld. RRSIG(1)"]);
            assert!(m.authorities.is_empty());
        }

        #[test]
        fn wildcard_proofs_nsec3() {
            let (zones, _, sz) = signed_sample(Denial::Nsec3OptOut);
            // Synthesised: RRSIG of the wildcard (labels field 2), the next closer's cover.
            let m = ask_do(&zones, "x.w.tld", rtype::A);
            assert_eq!(rrs(&m.answers), ["x.w.tld. A", "x.w.tld. RRSIG(1)"]);
            let RData::Unknown { rdata, .. } = &m.answers[1].data else {
                panic!()
            };
            assert_eq!(rdata.anything[3], 2);
            let c = nsec3_for(&sz, "x.w.tld", false);
            assert_eq!(
                rrs(&m.authorities),
                [format!("{c} NSEC3"), format!("{c} RRSIG(50)")]
            );
            // Wildcard NODATA: CE w.tld, next closer, the wildcard's matching NSEC3.
            let m = ask_do(&zones, "y.x.w.tld", rtype::TXT);
            assert_eq!(m.response_code, ResponseCode::NoError);
            let mut want = vec!["tld. SOA".to_string(), "tld. RRSIG(6)".into()];
            let mut seen: Vec<String> = Vec::new();
            for o in [
                nsec3_for(&sz, "w.tld", true),
                nsec3_for(&sz, "x.w.tld", false),
                nsec3_for(&sz, "*.w.tld", true),
            ] {
                if !seen.contains(&o) {
                    want.push(format!("{o} NSEC3"));
                    want.push(format!("{o} RRSIG(50)"));
                    seen.push(o);
                }
            }
            assert_eq!(rrs(&m.authorities), want);
        }

        #[test]
        fn nsec_zone_proofs() {
            let (zones, _, _) = signed_sample(Denial::Nsec);
            let m = ask_do(&zones, "tld", rtype::SOA);
            assert_eq!(rrs(&m.answers), ["tld. SOA", "tld. RRSIG(6)"]);
            // Insecure referral: the delegation's own NSEC (no DS bit).
            let m = ask_do(&zones, "foo.tld", rtype::A);
            assert_eq!(
                rrs(&m.authorities),
                [
                    "foo.tld. NS",
                    "foo.tld. NS",
                    "foo.tld. NSEC",
                    "foo.tld. RRSIG(47)"
                ]
            );
            // NXDOMAIN: the NSEC covering the name (b.nic.tld < nope.tld < signed.tld) and
            // the one covering *.tld (the apex's: *.tld sorts right after tld).
            let m = ask_do(&zones, "nope.tld", rtype::A);
            assert_eq!(m.response_code, ResponseCode::NXDomain);
            assert_eq!(
                rrs(&m.authorities),
                [
                    "tld. SOA",
                    "tld. RRSIG(6)",
                    "b.nic.tld. NSEC",
                    "b.nic.tld. RRSIG(47)",
                    "tld. NSEC",
                    "tld. RRSIG(47)"
                ]
            );
            // NODATA at a host, and the NSEC answered at its owner.
            let m = ask_do(&zones, "a.nic.tld", rtype::TXT);
            assert_eq!(
                rrs(&m.authorities),
                [
                    "tld. SOA",
                    "tld. RRSIG(6)",
                    "a.nic.tld. NSEC",
                    "a.nic.tld. RRSIG(47)"
                ]
            );
            let m = ask_do(&zones, "a.nic.tld", 47);
            assert_eq!(rrs(&m.answers), ["a.nic.tld. NSEC", "a.nic.tld. RRSIG(47)"]);
        }

        #[test]
        fn signatures_that_do_not_fit_truncate_rather_than_go_unsigned() {
            let (zones, _, _) = signed_sample(Denial::Nsec3OptOut);
            // Without EDNS the limit is 512; with DO 1232 at most. An NXDOMAIN with three
            // NSEC3 and four RRSIGs (P-256: 64-octet signatures) fits 1232, not less.
            let small = Edns {
                udp_size: 512,
                ..DO
            };
            let m = Message::from_vec(&raw(
                &zones,
                "nope.tld",
                rtype::A,
                Some(small),
                Transport::Udp,
            ))
            .unwrap();
            for (i, r) in m.authorities.iter().enumerate() {
                // Every NSEC3/SOA written is followed by its RRSIG.
                if r.record_type() != RecordType::RRSIG {
                    assert_eq!(
                        m.authorities.get(i + 1).map(|r| r.record_type()),
                        Some(RecordType::RRSIG)
                    );
                }
            }
            if m.authorities.len() < 8 {
                assert!(m.truncation);
            }
            let m = Message::from_vec(&raw(&zones, "nope.tld", rtype::A, Some(DO), Transport::Tcp))
                .unwrap();
            assert!(!m.truncation);
        }

        #[test]
        fn a_batch_changes_signatures_and_zone_removal_drops_them() {
            use orrery_proto::dnssec::DnssecRrsetId;
            let (zones, changes, _) = signed_sample(Denial::Nsec3OptOut);
            let id = DnssecRrsetId {
                zone: n("tld"),
                owner: n("signed.tld"),
                rtype: 46,
                covered: 43,
            };
            let mut next = zones.clone();
            next.apply(&orrery_proto::ChangeBatch {
                after: 7,
                upto: 8,
                changes: vec![Change::DnssecRemoved(id)],
            })
            .unwrap();
            // The old version keeps its signature (copy-on-write); the new one has none.
            let m = ask_do(&zones, "signed.tld", rtype::DS);
            assert_eq!(rrs(&m.answers).len(), 2);
            let m = ask_do(&next, "signed.tld", rtype::DS);
            assert_eq!(rrs(&m.answers), ["signed.tld. DS"]);
            let Some(Change::Zone(z)) = changes.first() else {
                panic!()
            };
            next.apply(&orrery_proto::ChangeBatch {
                after: 8,
                upto: 9,
                changes: vec![Change::ZoneRemoved(z.name.clone()), Change::Zone(z.clone())],
            })
            .unwrap();
            assert!(!next.zones()[0].signed.is_signed());
            assert_eq!(next.zones()[0].signed.owner_count(), 0);
        }
    }
}
