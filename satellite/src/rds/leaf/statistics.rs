//! Leaf `statistics`: kept so that the Selectors written for it still load; it does nothing.
//!
//! The Whois/RDAP counters used to live here, keyed by strings (`whois_queries`, `found`) and
//! counted only by chains that ran this leaf. The pipeline now counts every request in typed
//! per-worker counters ([`crate::stats::rds`]), whatever the chains do; a chain with this leaf
//! counts exactly as one without it (as the DNS leaf of the same name).

use crate::rds::{Rds, RdsCtx, RdsEvent};
use crate::selector::{Flow, Leaf};

/// The statistics leaf: passes every request on.
pub struct Statistics {
    name: String,
}

impl Statistics {
    pub fn new(name: String) -> Self {
        Self { name }
    }
}

impl Leaf<Rds> for Statistics {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, _ev: &mut RdsEvent, _: &RdsCtx<'_>) -> Flow {
        Flow::Continue
    }
}
