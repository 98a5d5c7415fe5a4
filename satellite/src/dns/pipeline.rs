//! The pipeline: one call from a received packet to a finished response.
//!
//! It holds what every worker shares — the [`Selector`], the [`ServedStore`] and the NSID — and
//! does the per-query steps in order: parse into the worker's [`Event`], load the current zone
//! version (lock-free), run the Selector, count the query ([`QueryStats`]: transport, type,
//! RCODE, what became of it, how long it took), hand back the response bytes.
//!
//! Counting is here rather than in a leaf so that every query is counted whatever the chains
//! do (a jump, an early drop): the check-in, the watchdog's SERVFAIL rate and the metrics
//! need all of them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::dns::leaf::Ctx;
use crate::dns::leaf::Dns;
use crate::dns::wire::{Event, Limited, Transport};
use crate::expiry::Expiry;
use crate::selector::Selector;
use crate::served::ServedStore;
use crate::stats::{Outcome, Qtype, QueryStats};
use crate::xfr::XfrService;

/// Shared, immutable-after-start state of the query path.
pub struct Pipeline {
    pub selector: Selector<Dns>,
    pub served: Arc<ServedStore>,
    /// NSID (RFC 5001); leaked once at start-up so responses can borrow it for `'static`.
    pub nsid: Option<&'static [u8]>,
    /// The counters every query is recorded in; shared with the pipelines that replace this
    /// one, so totals are the process's.
    pub stats: Arc<QueryStats>,
    /// Zone transfers, when the satellite serves them: the TCP edge hands AXFR and IXFR
    /// queries to it instead of the Selector.
    pub xfr: Option<Arc<XfrService>>,
    /// Zone expiry, when expired zones answer SERVFAIL (`serve_expired = false`).
    pub expiry: Option<Arc<Expiry>>,
}

impl Pipeline {
    pub fn new(selector: Selector<Dns>, served: Arc<ServedStore>, nsid: Option<Vec<u8>>) -> Self {
        Self {
            selector,
            served,
            nsid: nsid.map(|n| &*Box::leak(n.into_boxed_slice())),
            stats: Arc::default(),
            xfr: None,
            expiry: None,
        }
    }

    /// This pipeline, answering SERVFAIL for the zones `expiry` finds past their SOA EXPIRE
    /// (`Some`: `serve_expired = false`), or serving them whatever their age (`None`).
    pub fn with_expiry(mut self, expiry: Option<Arc<Expiry>>) -> Self {
        self.expiry = expiry;
        self
    }

    /// This pipeline, handing transfers to `xfr`.
    pub fn with_xfr(mut self, xfr: Option<Arc<XfrService>>) -> Self {
        self.xfr = xfr;
        self
    }

    /// This pipeline, counting into `stats` (those of the satellite) instead of its own.
    pub fn with_stats(mut self, stats: Arc<QueryStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Handles one packet. Returns the response to send, or `None` to send nothing.
    pub fn handle<'e>(
        &self,
        packet: &[u8],
        peer: IpAddr,
        transport: Transport,
        ev: &'e mut Event,
    ) -> Option<&'e [u8]> {
        let started = Instant::now();
        ev.load(packet, peer, transport);
        let served = self.served.load();
        let responded = match &self.xfr {
            // IXFR over UDP and the catalog's SOA queries: the transfer service's own ACL and
            // TSIG decide, as for a transfer over TCP (only secondaries send these; the
            // check is a few compares on the parsed question, nothing allocated otherwise).
            Some(xfr) if xfr.takes(&ev.query, transport, &served) => {
                xfr.answer_query(packet, ev, &served, self.nsid);
                true
            }
            _ => {
                let ctx = Ctx {
                    zones: &served.zones,
                    nsid: self.nsid,
                    expiry: self.expiry.as_deref(),
                };
                let responded = self.selector.run(ev, &ctx);
                // A query signed with TSIG (a secondary's SOA query) gets a signed answer,
                // or the RFC 8945 error. Only queries with additional records are looked at,
                // so the unsigned path stays as it was (allocation-free); signed ones
                // allocate a little.
                if responded
                    && let Some(xfr) = &self.xfr
                    && packet.get(10..12).is_some_and(|ar| ar != [0, 0])
                {
                    xfr.sign_answer(packet, ev);
                }
                responded
            }
        };
        let outcome = match (responded, ev.limited) {
            (true, Limited::Slipped) => Outcome::Slipped,
            (true, _) if ev.response.truncated => Outcome::Truncated,
            (true, _) => Outcome::Answered,
            (false, Limited::Dropped) => Outcome::RateLimited,
            (false, _) => Outcome::Dropped,
        };
        let qtype = if ev.query.has_question {
            Qtype::of(ev.query.qtype)
        } else {
            Qtype::None
        };
        self.stats.record(
            transport,
            qtype,
            outcome,
            ev.response.rcode,
            started.elapsed(),
        );
        responded.then(|| ev.response.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::leaf::tests::selector;
    use crate::dns::wire::rtype;
    use crate::dns::wire::tests::query_packet;
    use crate::served::Served;
    use crate::stats::queries::RCODES;
    use crate::zone::tests::sample;

    #[test]
    fn counts_every_query_by_transport_type_rcode_and_outcome() {
        let p = Pipeline::new(
            selector(),
            Arc::new(ServedStore::new(Served::dns_only(sample()))),
            None,
        );
        let peer = "127.0.0.1".parse().unwrap();
        let mut ev = Event::new();
        let a = query_packet("foo.tld", rtype::A, 1, None);
        let aaaa = query_packet("nope.tld", rtype::AAAA, 1, None);
        assert!(p.handle(&a, peer, Transport::Udp, &mut ev).is_some());
        assert!(p.handle(&aaaa, peer, Transport::Tcp, &mut ev).is_some());
        // Too short for a header: dropped, no RCODE, no question.
        assert!(p.handle(&[0; 5], peer, Transport::Udp, &mut ev).is_none());
        let t = p.stats.totals();
        assert_eq!(t.received(Transport::Udp), 2);
        assert_eq!(t.received(Transport::Tcp), 1);
        assert_eq!(t.queries[0][0][Qtype::A as usize], 1); // udp, NOERROR (a referral), A
        assert_eq!(t.queries[1][3][Qtype::Aaaa as usize], 1); // tcp, NXDOMAIN, AAAA
        assert_eq!(t.by_rcode().iter().sum::<u64>(), 2);
        assert_eq!(t.by_rcode()[RCODES - 1], 0);
        assert_eq!(t.outcome(Outcome::Answered), 2);
        assert_eq!(t.outcome(Outcome::Dropped), 1);
        assert_eq!(t.latency.iter().sum::<u64>(), 3);

        // A replacing pipeline given the same counters adds to them.
        let stats = Arc::clone(&p.stats);
        let q = Pipeline::new(
            selector(),
            Arc::new(ServedStore::new(Served::dns_only(sample()))),
            None,
        )
        .with_stats(Arc::clone(&stats));
        assert!(q.handle(&a, peer, Transport::Udp, &mut ev).is_some());
        assert_eq!(stats.totals().outcome(Outcome::Answered), 3);
    }
}
