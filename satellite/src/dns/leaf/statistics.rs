//! Leaf `statistics`: kept so that the Selectors written for it still load; it does nothing.
//!
//! The DNS counters used to live here, keyed by strings (`qtype.A`, `rcode.NXDOMAIN`) and
//! counted only by chains that ran this leaf. The pipeline now counts every query in typed
//! per-worker counters ([`crate::stats::queries`]), whatever the chains do; a chain with this
//! leaf counts exactly as one without it.

use crate::dns::leaf::{Ctx, Dns};
use crate::dns::wire::Event;
use crate::selector::{Flow, Leaf};

/// The statistics leaf: passes every query on.
pub struct Statistics {
    name: String,
}

impl Statistics {
    pub fn new(name: String) -> Self {
        Self { name }
    }
}

impl Leaf<Dns> for Statistics {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, _ev: &mut Event, _ctx: &Ctx<'_>) -> Flow {
        Flow::Continue
    }
}
