//! Leaf `chaos`: the CHAOS-class TXT names that operators use to identify a server
//! (`version.bind`, `hostname.bind`, `id.server` — RFC 4892 §2.1). Each answer can be disabled
//! by leaving it out of the configuration; a disabled or unknown name is REFUSED, as BIND does
//! with `version none;`. Queries of other classes pass through.
//!
//! Only TXT (and ANY, answered with the TXT) is answered; any other type at these names is
//! REFUSED too, as NSD 4.6 and Knot 3.2 both answer it (checked against both). NODATA would
//! need an SOA to be a proper negative answer (RFC 2308 §3), and there is no CHAOS zone to
//! take it from.

pub use orrery_proto::selector::ChaosConfig;

use crate::dns::leaf::{Ctx, Dns};
use crate::dns::wire::{Event, Owner, Section, class, rcode, rtype};
use crate::selector::{Flow, Leaf};

/// The CHAOS leaf.
pub struct Chaos {
    name: String,
    version: Option<Box<[u8]>>,
    hostname: Option<Box<[u8]>>,
    id_server: Option<Box<[u8]>>,
}

impl Chaos {
    pub fn new(name: String, config: &ChaosConfig) -> Self {
        let b = |s: &Option<String>| s.as_ref().map(|s| s.as_bytes().into());
        Self {
            name,
            version: b(&config.version),
            hostname: b(&config.hostname),
            id_server: b(&config.id_server),
        }
    }
}

impl Leaf<Dns> for Chaos {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, ev: &mut Event, ctx: &Ctx<'_>) -> Flow {
        if ev.query.qclass != class::CH {
            return Flow::Continue;
        }
        let text = match ev.query.qname() {
            b"\x07version\x04bind\x00" | b"\x07version\x06server\x00" => &self.version,
            b"\x08hostname\x04bind\x00" => &self.hostname,
            b"\x02id\x06server\x00" => &self.id_server,
            _ => &None,
        };
        let text = text
            .as_ref()
            .filter(|_| matches!(ev.query.qtype, rtype::TXT | rtype::ANY));
        let Some(text) = text else {
            ev.begin_response(rcode::REFUSED, ctx.nsid);
            return Flow::Respond;
        };
        ev.begin_response(rcode::NOERROR, ctx.nsid);
        let r = &mut ev.response;
        r.authoritative = true;
        r.rrset(Section::Answer, true, |r| {
            r.record(Owner::Question, rtype::TXT, class::CH, 0, |r| {
                // TXT character-strings hold at most 255 octets each (RFC 1035 §3.3.14).
                for chunk in text.chunks(255) {
                    r.put_u8(chunk.len() as u8)?;
                    r.put_bytes(chunk)?;
                }
                Ok(())
            })
        });
        Flow::Respond
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RData;

    use crate::dns::leaf::tests::{ask, selector};
    use crate::dns::wire::tests::query_packet;
    use crate::dns::wire::{Transport, class, rtype};
    use crate::zone::tests::sample;

    fn ch(name: &str) -> hickory_proto::op::Message {
        ask(
            &selector(),
            &sample(),
            &query_packet(name, rtype::TXT, class::CH, None),
            Transport::Udp,
        )
        .unwrap()
    }

    #[test]
    fn answers_enabled_names_only() {
        let m = ch("VERSION.bind");
        assert_eq!(m.response_code, ResponseCode::NoError);
        assert!(m.authoritative);
        let RData::TXT(txt) = &m.answers[0].data else {
            panic!("not TXT")
        };
        assert_eq!(txt.to_string(), "orrery");
        let m = ch("hostname.bind");
        assert_eq!(m.answers.len(), 1);
        // id.server is disabled in the test config; unknown names are refused too.
        assert_eq!(ch("id.server").response_code, ResponseCode::Refused);
        assert_eq!(ch("authors.bind").response_code, ResponseCode::Refused);
    }

    #[test]
    fn other_types_are_refused_any_gets_the_txt() {
        let q = |name, t| {
            ask(
                &selector(),
                &sample(),
                &query_packet(name, t, class::CH, None),
                Transport::Udp,
            )
            .unwrap()
        };
        for t in [rtype::A, rtype::SOA, rtype::NS, rtype::AAAA, 99] {
            let m = q("version.bind", t);
            assert_eq!(m.response_code, ResponseCode::Refused, "type {t}");
            assert!(m.answers.is_empty());
        }
        let m = q("hostname.bind", rtype::ANY);
        assert_eq!(m.response_code, ResponseCode::NoError);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(
            m.answers[0].record_type(),
            hickory_proto::rr::RecordType::TXT
        );
    }
}
