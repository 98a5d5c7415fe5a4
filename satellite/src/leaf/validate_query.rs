//! Leaf `validate_query`: header and question checks, before anything else looks at a query.
//!
//! | problem                                   | action                     | reference          |
//! |-------------------------------------------|----------------------------|--------------------|
//! | shorter than a header, or QR set          | drop                       | RFC 1035 §4.1.1    |
//! | opcode other than QUERY                   | NOTIMP                     | RFC 1035 §4.1.1    |
//! | QDCOUNT ≠ 1, malformed question/records   | FORMERR                    | RFC 1035 §4.1.1    |
//! | two OPT records, malformed OPT            | FORMERR (no OPT in reply)  | RFC 6891 §6.1.1    |
//! | EDNS version > 0                          | BADVERS                    | RFC 6891 §6.1.3    |
//! | QTYPE OPT, TSIG, TKEY                     | FORMERR                    | RFC 6891 §6.1.1    |
//! | AXFR over UDP                             | FORMERR                    | RFC 5936 §4.2      |
//! | AXFR or IXFR over TCP, IXFR over UDP      | REFUSED (no transfers yet) | RFC 5936 §2.2.1    |
//! | MAILA, MAILB                              | NOTIMP                     | RFC 1035 §3.2.3    |

use crate::leaf::{Ctx, Flow, Leaf};
use crate::wire::{Event, Problem, Transport, rcode, rtype};

/// The validation leaf.
pub struct ValidateQuery {
    name: String,
}

impl ValidateQuery {
    pub fn new(name: String) -> Self {
        Self { name }
    }
}

impl Leaf for ValidateQuery {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, ev: &mut Event, ctx: &Ctx<'_>) -> Flow {
        let code = match ev.query.problem {
            Problem::ShortHeader | Problem::IsResponse => return Flow::Drop,
            Problem::BadOpcode => rcode::NOTIMP,
            Problem::QuestionCount | Problem::BadQuestion | Problem::BadRecords => rcode::FORMERR,
            Problem::DuplicateOpt | Problem::BadOpt => {
                ev.query.edns = None;
                rcode::FORMERR
            }
            Problem::None => match (ev.query.edns, ev.query.qtype, ev.transport) {
                (Some(e), _, _) if e.version > 0 => rcode::BADVERS,
                (_, rtype::OPT | rtype::TSIG | 249, _) => rcode::FORMERR,
                (_, rtype::AXFR, Transport::Udp) => rcode::FORMERR,
                (_, rtype::AXFR | rtype::IXFR, _) => rcode::REFUSED,
                (_, rtype::MAILA | rtype::MAILB, _) => rcode::NOTIMP,
                _ => return Flow::Continue,
            },
        };
        ev.begin_response(code, ctx.nsid);
        Flow::Respond
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::ResponseCode;

    use crate::leaf::tests::{ask, selector};
    use crate::wire::tests::{EDNS, query_packet};
    use crate::wire::{Edns, Transport, rtype};
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
        assert!(m.edns.is_none());
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
