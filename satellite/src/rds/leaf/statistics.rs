//! Leaf `statistics`: counts requests by protocol and by outcome (relaxed atomics, as the DNS
//! statistics leaf; reported to the master at check-in).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::rds::{Outcome, Protocol, Rds, RdsCtx, RdsEvent};
use crate::selector::{Flow, Leaf};

const OUTCOMES: [&str; 7] = [
    "found",
    "not_found",
    "bad_request",
    "rate_limited",
    "refused",
    "server_error",
    "dropped",
];

/// The statistics leaf.
pub struct Statistics {
    name: String,
    whois: AtomicU64,
    rdap: AtomicU64,
    outcomes: [AtomicU64; OUTCOMES.len()],
}

impl Statistics {
    pub fn new(name: String) -> Self {
        Self {
            name,
            whois: AtomicU64::new(0),
            rdap: AtomicU64::new(0),
            outcomes: Default::default(),
        }
    }
}

impl Leaf<Rds> for Statistics {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, ev: &mut RdsEvent, _: &RdsCtx<'_>) -> Flow {
        match ev.protocol {
            Protocol::Whois => &self.whois,
            Protocol::Rdap => &self.rdap,
        }
        .fetch_add(1, Ordering::Relaxed);
        Flow::Continue
    }

    fn finish(&self, ev: &RdsEvent, responded: bool) {
        let i = match (responded, ev.outcome) {
            (false, _) => 6,
            (true, Outcome::Found) => 0,
            (true, Outcome::NotFound) => 1,
            (true, Outcome::BadRequest(_)) => 2,
            (true, Outcome::RateLimited { .. }) => 3,
            (true, Outcome::Refused) => 4,
            (true, Outcome::ServerError | Outcome::Pending) => 5,
        };
        self.outcomes[i].fetch_add(1, Ordering::Relaxed);
    }

    fn counters(&self, report: &mut dyn FnMut(&str, u64)) {
        report("whois_queries", self.whois.load(Ordering::Relaxed));
        report("rdap_queries", self.rdap.load(Ordering::Relaxed));
        for (name, n) in OUTCOMES.iter().zip(&self.outcomes) {
            report(name, n.load(Ordering::Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rds::Protocol::{Rdap, Whois};
    use crate::rds::leaf::tests::{run, selector, zones};

    #[test]
    fn counts_protocols_and_outcomes() {
        let sel = selector(
            "[leaves.s]\nkind = \"statistics\"\n[leaves.v]\nkind = \"validate_query\"\n\
             [leaves.l]\nkind = \"lookup\"\n[[chains]]\nname = \"main\"\nleaves = [\"s\", \"v\", \"l\"]",
        );
        let zones = zones();
        run(&sel, &zones, "192.0.2.1", Whois, "foo.tld");
        run(&sel, &zones, "192.0.2.1", Whois, "");
        run(&sel, &zones, "192.0.2.1", Rdap, "/domain/nope.tld");
        let mut seen = std::collections::BTreeMap::new();
        sel.counters(&mut |_, counter, value| {
            seen.insert(counter.to_owned(), value);
        });
        assert_eq!(seen["whois_queries"], 2);
        assert_eq!(seen["rdap_queries"], 1);
        assert_eq!(seen["found"], 1);
        assert_eq!(seen["bad_request"], 1);
        assert_eq!(seen["not_found"], 1);
    }
}
