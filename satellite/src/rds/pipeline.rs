//! The shared state of the Whois and RDAP edges: the Selector, the zone store, the request
//! counters and a free list of events.
//!
//! Counting is here rather than in a leaf (as for DNS, [`crate::dns::pipeline`]) so that every
//! request is counted whatever the chains do: the check-in and the metrics need all of them.

use std::sync::{Arc, Mutex};

use super::{Rds, RdsCtx, RdsEvent};
use crate::selector::Selector;
use crate::served::ServedStore;
use crate::stats::{RdsOutcome, RdsStats};

/// Events kept for reuse; more are dropped when returned (a burst of connections must not
/// leave memory behind for ever).
const FREE_EVENTS: usize = 1024;

/// What every Whois and RDAP connection shares.
pub struct RdsPipeline {
    pub selector: Selector<Rds>,
    pub served: Arc<ServedStore>,
    /// The counters every request is recorded in; shared with the pipelines that replace
    /// this one, so totals are the process's.
    pub stats: Arc<RdsStats>,
    free: Mutex<Vec<RdsEvent>>,
}

impl RdsPipeline {
    pub fn new(selector: Selector<Rds>, served: Arc<ServedStore>) -> Self {
        Self {
            selector,
            served,
            stats: Arc::default(),
            free: Mutex::new(Vec::new()),
        }
    }

    /// This pipeline, counting into `stats` (those of the satellite) instead of its own.
    pub fn with_stats(mut self, stats: Arc<RdsStats>) -> Self {
        self.stats = stats;
        self
    }

    /// An event from the free list (or a new one); give it back with [`RdsPipeline::put`].
    pub fn take(&self) -> RdsEvent {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Returns an event to the free list.
    pub fn put(&self, ev: RdsEvent) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < FREE_EVENTS {
            free.push(ev);
        }
    }

    /// Runs a filled event through the chain, counts it ([`RdsStats`]: protocol, outcome),
    /// then `render`s the outcome from the same zone version the leaves saw. `answered` is false when a leaf dropped the request: close the
    /// connection without an answer.
    pub fn handle<R>(
        &self,
        ev: &mut RdsEvent,
        render: impl FnOnce(&RdsEvent, bool, &RdsCtx<'_>) -> R,
    ) -> R {
        let served = self.served.load();
        let ctx = RdsCtx { served: &served };
        let answered = self.selector.run(ev, &ctx);
        self.stats
            .record(ev.protocol, RdsOutcome::of(answered, ev.outcome));
        render(ev, answered, &ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::Protocol::{self, Rdap, Whois};
    use crate::rds::leaf::tests::{selector, zones};

    fn ask(p: &RdsPipeline, protocol: Protocol, request: &str) -> bool {
        let mut ev = p.take();
        ev.reset("192.0.2.1".parse().unwrap(), protocol);
        ev.request.extend_from_slice(request.as_bytes());
        let answered = p.handle(&mut ev, |_, answered, _| answered);
        p.put(ev);
        answered
    }

    #[test]
    fn counts_every_request_by_protocol_and_outcome() {
        // No statistics leaf in the chain: the pipeline counts all the same.
        let p = RdsPipeline::new(
            selector(
                "[leaves.v]\nkind = \"validate_query\"\n[leaves.l]\nkind = \"lookup\"\n\
                 [[chains]]\nname = \"main\"\nleaves = [\"v\", \"l\"]",
            ),
            Arc::new(ServedStore::new(zones())),
        );
        assert!(ask(&p, Whois, "foo.tld"));
        assert!(ask(&p, Whois, ""));
        assert!(ask(&p, Rdap, "/domain/nope.tld"));
        let t = p.stats.totals();
        assert_eq!(t.received(Whois), 2);
        assert_eq!(t.received(Rdap), 1);
        assert_eq!(t.get(Whois, RdsOutcome::Found), 1);
        assert_eq!(t.get(Whois, RdsOutcome::BadRequest), 1);
        assert_eq!(t.get(Rdap, RdsOutcome::NotFound), 1);

        // A replacing pipeline given the same counters adds to them; a statistics leaf (kept
        // for old Selectors) does not count twice.
        let stats = Arc::clone(&p.stats);
        let q = RdsPipeline::new(
            selector(
                "[leaves.s]\nkind = \"statistics\"\n[leaves.v]\nkind = \"validate_query\"\n\
                 [leaves.l]\nkind = \"lookup\"\n[[chains]]\nname = \"main\"\n\
                 leaves = [\"s\", \"v\", \"l\"]",
            ),
            Arc::new(ServedStore::new(zones())),
        )
        .with_stats(Arc::clone(&stats));
        assert!(ask(&q, Whois, "foo.tld"));
        assert_eq!(stats.totals().get(Whois, RdsOutcome::Found), 2);
        assert_eq!(stats.totals().received(Whois), 3);
    }
}
