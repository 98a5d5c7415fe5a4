//! Leaf `statistics`: counts queries by type and answers by rcode.
//!
//! Relaxed atomics shared by all workers: one uncontended-enough `fetch_add` per counter per
//! query, no locks, no allocation. (Per-worker counters summed on read would avoid cache-line
//! sharing; worth it only once measurements on many cores say so.) The master collects these
//! through [`Leaf::counters`] in a later issue.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::dns::leaf::{Ctx, Dns};
use crate::dns::wire::{Event, Transport, rtype};
use crate::selector::{Flow, Leaf};

const QTYPES: [(u16, &str); 9] = [
    (rtype::A, "A"),
    (rtype::NS, "NS"),
    (rtype::SOA, "SOA"),
    (rtype::TXT, "TXT"),
    (rtype::AAAA, "AAAA"),
    (rtype::DS, "DS"),
    (rtype::ANY, "ANY"),
    (rtype::AXFR, "AXFR"),
    (rtype::IXFR, "IXFR"),
];
const RCODES: [&str; 17] = [
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
    "DSOTYPENI",
    "RCODE12",
    "RCODE13",
    "RCODE14",
    "RCODE15",
    "BADVERS",
];

/// The statistics leaf.
pub struct Statistics {
    name: String,
    queries: AtomicU64,
    udp: AtomicU64,
    tcp: AtomicU64,
    /// One per entry of `QTYPES`, then "other".
    qtypes: [AtomicU64; QTYPES.len() + 1],
    /// One per entry of `RCODES`, then "other".
    rcodes: [AtomicU64; RCODES.len() + 1],
    dropped: AtomicU64,
    truncated: AtomicU64,
}

impl Statistics {
    pub fn new(name: String) -> Self {
        Self {
            name,
            queries: AtomicU64::new(0),
            udp: AtomicU64::new(0),
            tcp: AtomicU64::new(0),
            qtypes: std::array::from_fn(|_| AtomicU64::new(0)),
            rcodes: std::array::from_fn(|_| AtomicU64::new(0)),
            dropped: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
        }
    }
}

impl Leaf<Dns> for Statistics {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, ev: &mut Event, _ctx: &Ctx<'_>) -> Flow {
        self.queries.fetch_add(1, Ordering::Relaxed);
        match ev.transport {
            Transport::Udp => self.udp.fetch_add(1, Ordering::Relaxed),
            Transport::Tcp => self.tcp.fetch_add(1, Ordering::Relaxed),
        };
        if ev.query.has_question {
            let i = QTYPES
                .iter()
                .position(|&(t, _)| t == ev.query.qtype)
                .unwrap_or(QTYPES.len());
            self.qtypes[i].fetch_add(1, Ordering::Relaxed);
        }
        Flow::Continue
    }

    fn finish(&self, ev: &Event, responded: bool) {
        if !responded {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let i = (ev.response.rcode as usize).min(RCODES.len());
        self.rcodes[i].fetch_add(1, Ordering::Relaxed);
        if ev.response.truncated {
            self.truncated.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counters(&self, report: &mut dyn FnMut(&str, u64)) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        report("queries", get(&self.queries));
        report("udp", get(&self.udp));
        report("tcp", get(&self.tcp));
        report("dropped", get(&self.dropped));
        report("truncated", get(&self.truncated));
        for (i, (_, name)) in QTYPES.iter().enumerate() {
            report(&format!("qtype.{name}"), get(&self.qtypes[i]));
        }
        report("qtype.other", get(&self.qtypes[QTYPES.len()]));
        for (i, name) in RCODES.iter().enumerate() {
            report(&format!("rcode.{name}"), get(&self.rcodes[i]));
        }
        report("rcode.other", get(&self.rcodes[RCODES.len()]));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::dns::leaf::tests::{ask, selector};
    use crate::dns::wire::tests::query_packet;
    use crate::dns::wire::{Transport, rtype};
    use crate::zone::tests::sample;

    #[test]
    fn counts_queries_and_rcodes() {
        let sel = selector();
        let zones = sample();
        ask(
            &sel,
            &zones,
            &query_packet("foo.tld", rtype::A, 1, None),
            Transport::Udp,
        );
        ask(
            &sel,
            &zones,
            &query_packet("nope.tld", rtype::AAAA, 1, None),
            Transport::Tcp,
        );
        ask(&sel, &zones, &[0; 5], Transport::Udp);
        let mut seen = BTreeMap::new();
        sel.counters(&mut |leaf, counter, value| {
            if leaf == "stats" {
                seen.insert(counter.to_owned(), value);
            }
        });
        assert_eq!(seen["queries"], 3);
        assert_eq!(seen["udp"], 2);
        assert_eq!(seen["tcp"], 1);
        assert_eq!(seen["qtype.A"], 1);
        assert_eq!(seen["qtype.AAAA"], 1);
        assert_eq!(seen["rcode.NOERROR"], 1);
        assert_eq!(seen["rcode.NXDOMAIN"], 1);
        assert_eq!(seen["dropped"], 1);
    }
}
