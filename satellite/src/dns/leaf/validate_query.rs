//! Leaf `validate_query`: header and question checks, before anything else looks at a query.
//!
//! | problem                                   | action                     | reference          |
//! |-------------------------------------------|----------------------------|--------------------|
//! | shorter than a header, or QR set          | drop                       | RFC 1035 §4.1.1    |
//! | opcode other than QUERY                   | NOTIMP                     | RFC 1035 §4.1.1    |
//! | QDCOUNT ≠ 1, malformed question/records   | FORMERR                    | RFC 1035 §4.1.1    |
//! | two OPT records, malformed OPT, OPT in    | FORMERR                    | RFC 6891 §6.1.1,   |
//! | the answer or authority section           |                            | §7                 |
//! | EDNS version > 0                          | BADVERS                    | RFC 6891 §6.1.3    |
//! | QTYPE OPT, TSIG, TKEY                     | FORMERR                    | RFC 6891 §6.1.1    |
//! | AXFR over UDP                             | FORMERR                    | RFC 5936 §4.2      |
//! | AXFR or IXFR of a name that is not the    | NOTAUTH                    | RFC 5936 §2.2.1    |
//! | apex of a served zone                     |                            |                    |
//! | AXFR over TCP or IXFR of a served apex    | REFUSED (no `xfr` service) | RFC 5936 §2.2.1    |
//! | MAILA, MAILB                              | NOTIMP                     | RFC 1035 §3.2.3    |
//!
//! Every response to a query that had an OPT record carries one, these errors included
//! (RFC 6891 §7): the wire codec keeps the OPT found (or a neutral one when it was broken)
//! whatever else is wrong. Knot 3.2 does so for NOTIMP and FORMERR, but, like NSD 4.6, leaves
//! the OPT out when the OPT itself is at fault (repeated, misplaced, malformed); §7 asks for it
//! ("the response MUST include an OPT record"), so the satellite sends it. A served apex is refused a transfer, as NSD does when no
//! `provide-xfr` allows it; other names are NOTAUTH, as NSD and Knot answer. With an `xfr`
//! service the DNS TCP edge hands AXFR and IXFR to it before the Selector, and the pipeline hands
//! it IXFR over UDP (answered with the SOA, RFC 1995 §2, to clients its ACL allows) and the
//! catalog's SOA queries ([`crate::xfr`]): with transfers served, this leaf never sees them.

use crate::dns::leaf::{Ctx, Dns};
use crate::dns::wire::{Event, Problem, Query, Transport, class, rcode, rtype};
use crate::selector::{Flow, Leaf};
use crate::zone::ZoneSet;

/// The validation leaf.
pub struct ValidateQuery {
    name: String,
}

impl ValidateQuery {
    pub fn new(name: String) -> Self {
        Self { name }
    }
}

impl Leaf<Dns> for ValidateQuery {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, ev: &mut Event, ctx: &Ctx<'_>) -> Flow {
        let code = match ev.query.problem {
            Problem::ShortHeader | Problem::IsResponse => return Flow::Drop,
            Problem::BadOpcode => rcode::NOTIMP,
            Problem::QuestionCount
            | Problem::BadQuestion
            | Problem::BadRecords
            | Problem::DuplicateOpt
            | Problem::BadOpt
            | Problem::MisplacedOpt => rcode::FORMERR,
            Problem::None => match (ev.query.edns, ev.query.qtype, ev.transport) {
                (Some(e), _, _) if e.version > 0 => rcode::BADVERS,
                (_, rtype::OPT | rtype::TSIG | 249, _) => rcode::FORMERR,
                (_, rtype::AXFR, Transport::Udp) => rcode::FORMERR,
                (_, rtype::AXFR | rtype::IXFR, _) if is_served_apex(ctx.zones, &ev.query) => {
                    rcode::REFUSED
                }
                (_, rtype::AXFR | rtype::IXFR, _) => rcode::NOTAUTH,
                (_, rtype::MAILA | rtype::MAILB, _) => rcode::NOTIMP,
                _ => return Flow::Continue,
            },
        };
        ev.begin_response(code, ctx.nsid);
        Flow::Respond
    }
}

/// True when the query names the apex of a zone this satellite serves.
fn is_served_apex(zones: &ZoneSet, query: &Query) -> bool {
    query.qclass == class::IN
        && zones
            .find_zone(query.qname())
            .is_some_and(|z| z.apex_labels == query.label_count())
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::ResponseCode;

    use crate::dns::leaf::tests::{ask, selector};
    use crate::dns::wire::tests::{EDNS, query_packet};
    use crate::dns::wire::{Edns, Transport, rtype};
    use crate::zone::tests::sample;

    fn rc(packet: &[u8], t: Transport) -> Option<ResponseCode> {
        ask(&selector(), &sample(), packet, t).map(|m| m.response_code)
    }

    #[test]
    fn checks_header_and_question() {
        let good = query_packet("foo.tld", 1, 1, None);
        assert_eq!(rc(&good[..11], Transport::Udp), None);
        let mut p = good.clone();
        p[2] |= 0x80;
        assert_eq!(rc(&p, Transport::Udp), None);
        let mut p = good.clone();
        p[2] |= 4 << 3; // NOTIFY
        assert_eq!(rc(&p, Transport::Udp), Some(ResponseCode::NotImp));
        let mut p = good.clone();
        p[5] = 0;
        assert_eq!(rc(&p[..12], Transport::Udp), Some(ResponseCode::FormErr));
        let mut p = good.clone();
        p[5] = 2;
        let m = ask(&selector(), &sample(), &p, Transport::Udp).unwrap();
        assert_eq!(m.response_code, ResponseCode::FormErr);
        assert!(m.queries.is_empty());
        assert_eq!(
            rc(&good[..good.len() - 2], Transport::Udp),
            Some(ResponseCode::FormErr)
        );
    }

    #[test]
    fn checks_edns() {
        let bad = Edns { version: 1, ..EDNS };
        let m = ask(
            &selector(),
            &sample(),
            &query_packet("foo.tld", 1, 1, Some(bad)),
            Transport::Udp,
        )
        .unwrap();
        assert_eq!(
            u16::from(m.response_code),
            16,
            "BADVERS (hickory calls 16 BADSIG)"
        );
        assert_eq!(m.edns.as_ref().unwrap().rcode_high(), 1);
        let mut p = query_packet("foo.tld", 1, 1, Some(EDNS));
        let opt = p[p.len() - 11..].to_vec();
        p.extend_from_slice(&opt);
        p[11] = 2;
        let m = ask(&selector(), &sample(), &p, Transport::Udp).unwrap();
        assert_eq!(m.response_code, ResponseCode::FormErr);
        // RFC 6891 §7: a problem with the OPT itself is answered with an OPT.
        assert_eq!(m.edns.as_ref().unwrap().max_payload(), 1232);
    }

    /// Every response to a query with an OPT carries one (RFC 6891 §6.1.1, §7), whatever the
    /// error; an OPT outside the additional section is a format error.
    #[test]
    fn errors_carry_an_opt_when_the_query_had_one() {
        let zones = sample();
        let answer = |p: &[u8]| ask(&selector(), &zones, p, Transport::Udp).unwrap();
        let with_edns = query_packet("foo.tld", 1, 1, Some(EDNS));
        let opt = with_edns[with_edns.len() - 11..].to_vec();
        let question = &with_edns[12..with_edns.len() - 11];
        // NOTIMP: opcode NOTIFY and STATUS.
        for opcode in [4u8, 2] {
            let mut p = with_edns.clone();
            p[2] |= opcode << 3;
            let m = answer(&p);
            assert_eq!(m.response_code, ResponseCode::NotImp);
            assert!(m.edns.is_some(), "opcode {opcode}: no OPT in the NOTIMP");
        }
        // FORMERR: no question, two questions, an unparsable record after the OPT.
        let mut p = with_edns[..12].to_vec();
        p[5] = 0;
        p.extend_from_slice(&opt);
        let m = answer(&p);
        assert_eq!(m.response_code, ResponseCode::FormErr);
        assert!(m.edns.is_some());
        let mut p = with_edns[..12].to_vec();
        p[5] = 2;
        p.extend_from_slice(question);
        p.extend_from_slice(question);
        p.extend_from_slice(&opt);
        let m = answer(&p);
        assert_eq!(m.response_code, ResponseCode::FormErr);
        assert!(m.edns.is_some());
        let mut p = with_edns.clone();
        p[11] = 2;
        p.extend_from_slice(&[0, 0, 1]);
        let m = answer(&p);
        assert_eq!(m.response_code, ResponseCode::FormErr);
        assert!(m.edns.is_some());
        // Without an OPT in the query, none in the answer.
        let mut p = query_packet("foo.tld", 1, 1, None);
        p[2] |= 4 << 3;
        let m = answer(&p);
        assert_eq!(m.response_code, ResponseCode::NotImp);
        assert!(m.edns.is_none());
        // An OPT in the answer or the authority section.
        for count_at in [7, 9] {
            let mut p = with_edns.clone();
            p[11] = 0;
            p[count_at] = 1;
            let m = answer(&p);
            assert_eq!(
                m.response_code,
                ResponseCode::FormErr,
                "count at {count_at}"
            );
            assert!(m.edns.is_some());
        }
        // Malformed OPT: owner not the root, an option running past the record.
        let mut p = query_packet("foo.tld", 1, 1, None);
        p[11] = 1;
        p.extend_from_slice(b"\x03tld\x00");
        p.extend_from_slice(&opt[1..]);
        assert_eq!(answer(&p).response_code, ResponseCode::FormErr);
        assert!(answer(&p).edns.is_some());
        let mut p = with_edns.clone();
        let n = p.len();
        p[n - 2..].copy_from_slice(&[0, 3]);
        p.extend_from_slice(&[0, 3, 0]);
        let m = answer(&p);
        assert_eq!(m.response_code, ResponseCode::FormErr);
        assert!(m.edns.is_some());
    }

    /// RFC 5936 §2.2.1: a transfer of a name that is not a served apex is NOTAUTH; a served
    /// apex is refused (no transfers are offered), as NSD answers both.
    #[test]
    fn transfers_of_names_that_are_not_a_served_apex_are_notauth() {
        let q = |name, t, tr| rc(&query_packet(name, t, 1, None), tr);
        for t in [rtype::AXFR, rtype::IXFR] {
            assert_eq!(q("tld", t, Transport::Tcp), Some(ResponseCode::Refused));
            assert_eq!(q("TLD", t, Transport::Tcp), Some(ResponseCode::Refused));
            for name in ["foo.tld", "other", "example.com", "."] {
                assert_eq!(
                    q(name, t, Transport::Tcp),
                    Some(ResponseCode::NotAuth),
                    "{name}"
                );
            }
        }
        assert_eq!(
            q("tld", rtype::IXFR, Transport::Udp),
            Some(ResponseCode::Refused)
        );
        assert_eq!(
            q("foo.tld", rtype::IXFR, Transport::Udp),
            Some(ResponseCode::NotAuth)
        );
        // AXFR over UDP stays a format error, a CHAOS-class transfer is not authoritative.
        assert_eq!(
            q("foo.tld", rtype::AXFR, Transport::Udp),
            Some(ResponseCode::FormErr)
        );
        assert_eq!(
            rc(&query_packet("tld", rtype::AXFR, 3, None), Transport::Tcp),
            Some(ResponseCode::NotAuth)
        );
    }

    #[test]
    fn checks_qtypes() {
        let q = |t, tr| rc(&query_packet("tld", t, 1, None), tr);
        assert_eq!(q(rtype::AXFR, Transport::Udp), Some(ResponseCode::FormErr));
        assert_eq!(q(rtype::AXFR, Transport::Tcp), Some(ResponseCode::Refused));
        assert_eq!(q(rtype::IXFR, Transport::Udp), Some(ResponseCode::Refused));
        assert_eq!(q(rtype::OPT, Transport::Udp), Some(ResponseCode::FormErr));
        assert_eq!(q(rtype::MAILA, Transport::Udp), Some(ResponseCode::NotImp));
    }
}
