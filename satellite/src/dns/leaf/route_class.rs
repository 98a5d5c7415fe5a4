//! Leaf `route_class`: jumps to another chain when the query's class matches (for instance
//! CHAOS queries to the `chaos` chain). The Selector's branching in its simplest form.

pub use orrery_proto::selector::RouteClassConfig;

use crate::dns::leaf::{Ctx, Dns};
use crate::dns::wire::Event;
use crate::selector::{ChainId, Flow, Leaf};

/// The routing leaf.
pub struct RouteClass {
    name: String,
    class: u16,
    chain: ChainId,
}

impl RouteClass {
    pub fn new(name: String, config: &RouteClassConfig, chain: ChainId) -> Result<Self, String> {
        Ok(Self {
            name,
            class: config.class_number()?,
            chain,
        })
    }
}

impl Leaf<Dns> for RouteClass {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, ev: &mut Event, _ctx: &Ctx<'_>) -> Flow {
        if ev.query.has_question && ev.query.qclass == self.class {
            Flow::Jump(self.chain)
        } else {
            Flow::Continue
        }
    }
}
