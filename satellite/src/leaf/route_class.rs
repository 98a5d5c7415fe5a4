//! Leaf `route_class`: jumps to another chain when the query's class matches (for instance
//! CHAOS queries to the `chaos` chain). The Selector's branching in its simplest form.

use serde::Deserialize;

use crate::leaf::{ChainId, Ctx, Flow, Leaf};
use crate::wire::{Event, class};

/// Configuration: `class = "CH"` (or `IN`, `HS`, `ANY`, or a number) and the target chain.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteClassConfig {
    pub class: String,
    pub chain: String,
}

/// The routing leaf.
pub struct RouteClass {
    name: String,
    class: u16,
    chain: ChainId,
}

impl RouteClass {
    pub fn new(name: String, config: &RouteClassConfig, chain: ChainId) -> Result<Self, String> {
        let class = match config.class.to_ascii_uppercase().as_str() {
            "IN" => class::IN,
            "CH" | "CHAOS" => class::CH,
            "HS" => 4,
            "ANY" => class::ANY,
            other => other
                .parse()
                .map_err(|_| format!("unknown class {:?}", config.class))?,
        };
        Ok(Self { name, class, chain })
    }
}

impl Leaf for RouteClass {
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
