//! Leaf `lookup`: the authoritative answer, a synchronous function of the zone data and the
//! question ([`answer`]). NXDOMAIN, NODATA and referrals are answer values, never errors.
//!
//! Behaviour, with BIND 9.18, NSD and Knot as the reference:
//! - Name in no zone, or class other than IN → REFUSED.
//! - At or below a delegation (the name directly below the apex is a delegated domain): a
//!   referral — NOERROR, AA clear, the NS RRset in AUTHORITY, glue A/AAAA in ADDITIONAL. Glue
//!   of nameservers inside the delegated domain (in-domain glue) must fit or TC is set
//!   (RFC 9471 §3.1); glue of other nameservers in the zone (sibling glue) is added when it
//!   fits (§3.2). The zone is unsigned, so no DS in referrals even with DO set.
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

use orrery_proto::name::wire_is_subdomain;

use crate::dns::leaf::{Ctx, Dns};
use crate::dns::wire::{Event, Full, Owner, Response, Section, Transport, class, rcode, rtype};
use crate::selector::{Flow, Leaf};
use crate::zone::{Delegation, HostId, HostTable, ZoneData, ZoneSet};

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
        answer(ctx.zones, ev, ctx.nsid);
        Flow::Respond
    }
}

/// Writes the authoritative answer to the event's question into its response.
pub fn answer(set: &ZoneSet, ev: &mut Event, nsid: Option<&'static [u8]>) {
    let zone = match ev.query.qclass {
        class::IN => set.find_zone(ev.query.qname()),
        _ => None,
    };
    let Some(zone) = zone else {
        ev.begin_response(rcode::REFUSED, nsid);
        return;
    };
    ev.begin_response(rcode::NOERROR, nsid);
    let q = &ev.query;
    let r = &mut ev.response;
    let qtype = q.qtype;
    let tcp = ev.transport == Transport::Tcp;
    let below = q.label_count() - zone.apex_labels;
    if below == 0 {
        answer_apex(set, zone, qtype, tcp, r);
        return;
    }
    let child = q.qname_suffix(below - 1);
    if let Some(del) = zone.delegation(child) {
        if below == 1 && qtype == rtype::DS {
            r.authoritative = true;
            if !del.has_ds() {
                no_data(zone, r);
            } else {
                r.rrset(Section::Answer, true, |r| {
                    for ds in del.ds() {
                        r.record(Owner::Question, rtype::DS, class::IN, zone.ds_ttl, |r| {
                            r.put_u16(ds.key_tag)?;
                            r.put_u8(ds.algorithm)?;
                            r.put_u8(ds.digest_type)?;
                            r.put_bytes(ds.digest)
                        })?;
                    }
                    Ok(())
                });
            }
        } else {
            referral(&set.hosts, zone, child, &del, r);
        }
        return;
    }
    r.authoritative = true;
    if let Some(node) = zone.node(q.qname()) {
        answer_host(&set.hosts, zone, node.host, qtype, tcp, r);
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
                if let Some(node) = zone.node(&buf[..len]) {
                    answer_host(&set.hosts, zone, node.host, qtype, tcp, r);
                    return;
                }
            }
            break;
        }
    }
    r.rcode = rcode::NXDOMAIN;
    soa(zone, Section::Authority, zone.negative_ttl(), r);
}

fn answer_apex(set: &ZoneSet, zone: &ZoneData, qtype: u16, tcp: bool, r: &mut Response) {
    r.authoritative = true;
    match qtype {
        rtype::SOA => {
            soa(zone, Section::Answer, zone.soa_ttl, r);
        }
        rtype::NS => {
            if ns_rrset(
                &set.hosts,
                zone,
                Section::Answer,
                Owner::Question,
                zone.apex_ns.iter().copied(),
                r,
            ) {
                for &id in &zone.apex_ns {
                    let h = set.hosts.get(id);
                    if zone.contains(h.name) {
                        addresses(&set.hosts, id, zone.ns_ttl, false, r);
                    }
                }
            }
        }
        rtype::ANY => {
            soa(zone, Section::Answer, zone.soa_ttl, r);
            if tcp {
                ns_rrset(
                    &set.hosts,
                    zone,
                    Section::Answer,
                    Owner::Question,
                    zone.apex_ns.iter().copied(),
                    r,
                );
            }
        }
        _ => no_data(zone, r),
    }
}

fn answer_host(
    hosts: &HostTable,
    zone: &ZoneData,
    host: Option<HostId>,
    qtype: u16,
    tcp: bool,
    r: &mut Response,
) {
    let Some(id) = host else {
        no_data(zone, r);
        return;
    };
    let h = hosts.get(id);
    let ttl = zone.ns_ttl;
    let wrote = match qtype {
        rtype::A if !h.v4.is_empty() => {
            a_rrset(h.v4, Section::Answer, Owner::Question, ttl, true, r)
        }
        rtype::AAAA if !h.v6.is_empty() => {
            aaaa_rrset(h.v6, Section::Answer, Owner::Question, ttl, true, r)
        }
        rtype::ANY if !h.v4.is_empty() || !h.v6.is_empty() => {
            if !h.v4.is_empty() {
                a_rrset(h.v4, Section::Answer, Owner::Question, ttl, true, r);
            }
            if !h.v6.is_empty() && (tcp || h.v4.is_empty()) {
                aaaa_rrset(h.v6, Section::Answer, Owner::Question, ttl, true, r);
            }
            true
        }
        _ => false,
    };
    if !wrote && !r.truncated {
        no_data(zone, r);
    }
}

/// A referral to `del`, the delegation of `child`.
fn referral(
    hosts: &HostTable,
    zone: &ZoneData,
    child: &[u8],
    del: &Delegation<'_>,
    r: &mut Response,
) {
    if !ns_rrset(
        hosts,
        zone,
        Section::Authority,
        Owner::Name(child),
        del.ns(),
        r,
    ) {
        return;
    }
    // In-domain glue first (required), then sibling glue (optional), each in NS order.
    for in_domain in [true, false] {
        for id in del.ns() {
            let name = hosts.get(id).name;
            if !zone.contains(name) || name.len() == zone.apex.len() {
                continue;
            }
            if wire_is_subdomain(name, child) == in_domain {
                addresses(hosts, id, zone.ns_ttl, in_domain, r);
            }
        }
    }
}

fn no_data(zone: &ZoneData, r: &mut Response) {
    r.rcode = rcode::NOERROR;
    soa(zone, Section::Authority, zone.negative_ttl(), r);
}

/// The zone's SOA RRset in `section` (the question's owner in ANSWER, else the apex).
pub(crate) fn soa(zone: &ZoneData, section: Section, ttl: u32, r: &mut Response) -> bool {
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
        })
    })
}

fn ns_rrset(
    hosts: &HostTable,
    zone: &ZoneData,
    section: Section,
    owner: Owner<'_>,
    ns: impl Iterator<Item = HostId>,
    r: &mut Response,
) -> bool {
    r.rrset(section, true, |r| {
        for id in ns {
            r.record(owner, rtype::NS, class::IN, zone.ns_ttl, |r| {
                r.put_name(hosts.get(id).name)
            })?;
        }
        Ok(())
    })
}

/// A and AAAA RRsets of a host in ADDITIONAL.
fn addresses(hosts: &HostTable, id: HostId, ttl: u32, required: bool, r: &mut Response) {
    let h = hosts.get(id);
    let owner = Owner::Name(h.name);
    if !h.v4.is_empty() {
        a_rrset(h.v4, Section::Additional, owner, ttl, required, r);
    }
    if !h.v6.is_empty() {
        aaaa_rrset(h.v6, Section::Additional, owner, ttl, required, r);
    }
}

fn a_rrset(
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
        Ok::<(), Full>(())
    })
}

fn aaaa_rrset(
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
        Ok::<(), Full>(())
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
}
