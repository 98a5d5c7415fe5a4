//! Leaves and the Selector that threads events through them.
//!
//! ```text
//!                    ┌──────────────────────── Selector ─────────────────────────┐
//!   Event ─────────► │ chain "main":  statistics → validate_query → acl → route │
//!   (parsed query)   │                                                    │ Jump  │
//!                    │ chain "chaos": chaos ◄─────────────────────────────┘       │
//!                    │ chain "main" continues: lookup                             │
//!                    └─────────────┬──────────────────────────────────────────────┘
//!                                  │ Respond / Drop / (end of chain → REFUSED)
//!                                  ▼
//!                      every leaf visited gets `finish` (statistics count rcodes)
//! ```
//!
//! # The contract
//! A [`Leaf`] is built once at start-up from its config and lives for ever. For each event it
//! returns a [`Flow`]:
//! - [`Flow::Continue`]: pass to the next leaf of the chain;
//! - [`Flow::Jump`]: go to the first leaf of another chain (at most [`MAX_JUMPS`] per event, so
//!   a misconfigured loop drops the query instead of spinning);
//! - [`Flow::Respond`]: the leaf began the response ([`Event::begin_response`]) and wrote its
//!   sections; the Selector completes it (OPT, flags, counts);
//! - [`Flow::Drop`]: send nothing.
//!
//! Falling off the end of a chain answers REFUSED: no leaf claimed the query.
//!
//! Which leaves exist and how the chains link is plain data ([`SelectorConfig`]), because the
//! master will send it to satellites at boot. The leaves and chains are resolved from names to
//! indices once, in [`Selector::build`].

pub mod acl;
pub mod chaos;
pub mod lookup;
pub mod route_class;
pub mod statistics;
pub mod validate_query;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::wire::{Event, rcode};
use crate::zone::ZoneSet;

/// Most jumps one event may take.
pub const MAX_JUMPS: usize = 16;
/// Most leaves one event may visit (the `finish` calls are recorded in a fixed array).
const MAX_VISITS: usize = 64;

/// Index of a chain in the Selector.
pub type ChainId = u16;

/// What a leaf says happens next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Jump(ChainId),
    Respond,
    Drop,
}

/// Shared read-only context of one event: the zone version and server-wide settings.
pub struct Ctx<'a> {
    pub zones: &'a ZoneSet,
    /// NSID to send when asked (RFC 5001).
    pub nsid: Option<&'static [u8]>,
}

/// A stage of the pipeline.
pub trait Leaf: Send + Sync {
    /// The instance name from the configuration.
    fn name(&self) -> &str;
    /// Handles an event.
    fn handle(&self, ev: &mut Event, ctx: &Ctx<'_>) -> Flow;
    /// Called after the event is answered (`responded`) or dropped, on every leaf it visited.
    fn finish(&self, _ev: &Event, _responded: bool) {}
    /// Reports the leaf's counters (cold path).
    fn counters(&self, _report: &mut dyn FnMut(&str, u64)) {}
}

/// Configuration of one leaf instance, tagged by `kind`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LeafConfig {
    ValidateQuery(NoSettings),
    Acl(acl::AclConfig),
    Chaos(chaos::ChaosConfig),
    RouteClass(route_class::RouteClassConfig),
    Lookup(NoSettings),
    Statistics(NoSettings),
}

/// Settings of a leaf kind that has none (a struct so that unknown fields are refused).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// One named chain: leaf instance names in order.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    pub name: String,
    pub leaves: Vec<String>,
}

/// Leaves and chains; the first chain is where every event starts.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SelectorConfig {
    pub leaves: BTreeMap<String, LeafConfig>,
    pub chains: Vec<ChainConfig>,
}

/// A Selector configuration that does not hold together.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    #[error("no chains configured")]
    NoChains,
    #[error("chain {0:?} is defined twice")]
    DuplicateChain(String),
    #[error("chain {chain:?} names leaf {leaf:?}, which is not defined under [leaves]")]
    UnknownLeaf { chain: String, leaf: String },
    #[error("leaf {leaf:?} jumps to chain {chain:?}, which is not defined")]
    UnknownChain { leaf: String, chain: String },
    #[error("leaf {leaf:?}: {message}")]
    BadLeaf { leaf: String, message: String },
}

/// Several chains of leaves.
pub struct Selector {
    leaves: Vec<Box<dyn Leaf>>,
    chains: Vec<Vec<u16>>,
    chain_names: Vec<String>,
}

impl Selector {
    /// Builds every configured leaf once and resolves the chains.
    pub fn build(config: &SelectorConfig) -> Result<Self, SelectorError> {
        if config.chains.is_empty() {
            return Err(SelectorError::NoChains);
        }
        let mut chain_ids = BTreeMap::new();
        for (i, c) in config.chains.iter().enumerate() {
            if chain_ids.insert(c.name.clone(), i as ChainId).is_some() {
                return Err(SelectorError::DuplicateChain(c.name.clone()));
            }
        }
        let mut leaves: Vec<Box<dyn Leaf>> = Vec::new();
        let mut leaf_ids = BTreeMap::new();
        for (name, lc) in &config.leaves {
            let leaf: Box<dyn Leaf> = match lc {
                LeafConfig::ValidateQuery(_) => {
                    Box::new(validate_query::ValidateQuery::new(name.clone()))
                }
                LeafConfig::Acl(c) => Box::new(acl::Acl::new(name.clone(), c).map_err(|m| {
                    SelectorError::BadLeaf {
                        leaf: name.clone(),
                        message: m,
                    }
                })?),
                LeafConfig::Chaos(c) => Box::new(chaos::Chaos::new(name.clone(), c)),
                LeafConfig::RouteClass(c) => {
                    let chain =
                        *chain_ids
                            .get(&c.chain)
                            .ok_or_else(|| SelectorError::UnknownChain {
                                leaf: name.clone(),
                                chain: c.chain.clone(),
                            })?;
                    Box::new(
                        route_class::RouteClass::new(name.clone(), c, chain).map_err(|m| {
                            SelectorError::BadLeaf {
                                leaf: name.clone(),
                                message: m,
                            }
                        })?,
                    )
                }
                LeafConfig::Lookup(_) => Box::new(lookup::Lookup::new(name.clone())),
                LeafConfig::Statistics(_) => Box::new(statistics::Statistics::new(name.clone())),
            };
            leaf_ids.insert(name.clone(), leaves.len() as u16);
            leaves.push(leaf);
        }
        let mut chains = Vec::new();
        for c in &config.chains {
            let mut ids = Vec::new();
            for l in &c.leaves {
                ids.push(*leaf_ids.get(l).ok_or_else(|| SelectorError::UnknownLeaf {
                    chain: c.name.clone(),
                    leaf: l.clone(),
                })?);
            }
            chains.push(ids);
        }
        Ok(Self {
            leaves,
            chains,
            chain_names: config.chains.iter().map(|c| c.name.clone()).collect(),
        })
    }

    /// Runs a loaded event through the chains. Returns true when `ev.response` holds a finished
    /// message to send.
    pub fn run(&self, ev: &mut Event, ctx: &Ctx<'_>) -> bool {
        let mut visited = [0u16; MAX_VISITS];
        let mut nvisited = 0;
        let mut chain = 0usize;
        let mut index = 0usize;
        let mut jumps = 0;
        let responded = loop {
            let Some(&leaf) = self.chains[chain].get(index) else {
                ev.begin_response(rcode::REFUSED, ctx.nsid);
                break true;
            };
            if nvisited == MAX_VISITS {
                break false;
            }
            visited[nvisited] = leaf;
            nvisited += 1;
            match self.leaves[leaf as usize].handle(ev, ctx) {
                Flow::Continue => index += 1,
                Flow::Jump(target) => {
                    jumps += 1;
                    if jumps > MAX_JUMPS || target as usize >= self.chains.len() {
                        break false;
                    }
                    chain = target as usize;
                    index = 0;
                }
                Flow::Respond => {
                    if !ev.has_response() {
                        ev.begin_response(rcode::SERVFAIL, ctx.nsid);
                    }
                    break true;
                }
                Flow::Drop => break false,
            }
        };
        if responded {
            ev.response.finish();
        }
        for &leaf in &visited[..nvisited] {
            self.leaves[leaf as usize].finish(ev, responded);
        }
        responded
    }

    /// Reports every leaf's counters as `leaf.counter` names.
    pub fn counters(&self, report: &mut dyn FnMut(&str, &str, u64)) {
        for leaf in &self.leaves {
            let name = leaf.name().to_owned();
            leaf.counters(&mut |counter, value| report(&name, counter, value));
        }
    }

    /// Chain names, in id order.
    pub fn chain_names(&self) -> &[String] {
        &self.chain_names
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::Transport;

    /// The default pipeline of the example configuration.
    pub(crate) const CHAINS: &str = r#"
        [leaves.stats]
        kind = "statistics"
        [leaves.validate]
        kind = "validate_query"
        [leaves.acl]
        kind = "acl"
        deny = ["192.0.2.0/24"]
        action = "refuse"
        [leaves.to_chaos]
        kind = "route_class"
        class = "CH"
        chain = "chaos"
        [leaves.chaos]
        kind = "chaos"
        version = "orrery"
        hostname = "sat1.example"
        [leaves.lookup]
        kind = "lookup"

        [[chains]]
        name = "main"
        leaves = ["stats", "validate", "acl", "to_chaos", "lookup"]
        [[chains]]
        name = "chaos"
        leaves = ["chaos"]
    "#;

    pub(crate) fn selector() -> Selector {
        let config: SelectorConfig = toml::from_str(CHAINS).unwrap();
        Selector::build(&config).unwrap()
    }

    /// Runs one packet through the default pipeline and parses the answer with hickory.
    pub(crate) fn ask(
        sel: &Selector,
        zones: &ZoneSet,
        packet: &[u8],
        transport: Transport,
    ) -> Option<hickory_proto::op::Message> {
        let mut ev = Event::new();
        ev.load(packet, "127.0.0.1".parse().unwrap(), transport);
        let ctx = Ctx {
            zones,
            nsid: Some(b"sat1"),
        };
        sel.run(&mut ev, &ctx)
            .then(|| hickory_proto::op::Message::from_vec(ev.response.bytes()).unwrap())
    }

    #[test]
    fn resolves_names_and_refuses_bad_config() {
        let sel = selector();
        assert_eq!(sel.chain_names(), ["main", "chaos"]);
        let mut bad: SelectorConfig = toml::from_str(CHAINS).unwrap();
        bad.chains[0].leaves.push("nope".into());
        assert!(matches!(
            Selector::build(&bad),
            Err(SelectorError::UnknownLeaf { .. })
        ));
        let mut bad: SelectorConfig = toml::from_str(CHAINS).unwrap();
        bad.chains.pop();
        assert!(matches!(
            Selector::build(&bad),
            Err(SelectorError::UnknownChain { .. })
        ));
        assert!(toml::from_str::<SelectorConfig>(&CHAINS.replace("action", "acton")).is_err());
        assert!(
            toml::from_str::<SelectorConfig>(
                &CHAINS.replace("kind = \"lookup\"", "kind = \"lookup\"\nextra = 1")
            )
            .is_err()
        );
    }

    /// A leaf that always jumps back to the first chain.
    struct Loop;
    impl Leaf for Loop {
        fn name(&self) -> &str {
            "loop"
        }
        fn handle(&self, _: &mut Event, _: &Ctx<'_>) -> Flow {
            Flow::Jump(0)
        }
    }

    #[test]
    fn jump_loops_drop_and_chain_end_refuses() {
        let zones = ZoneSet::default();
        let sel = Selector {
            leaves: vec![Box::new(Loop)],
            chains: vec![vec![0]],
            chain_names: vec!["main".into()],
        };
        let packet = crate::wire::tests::query_packet("tld", 1, 1, None);
        assert!(ask(&sel, &zones, &packet, Transport::Udp).is_none());
        let sel = Selector {
            leaves: vec![],
            chains: vec![vec![]],
            chain_names: vec!["main".into()],
        };
        let m = ask(&sel, &zones, &packet, Transport::Udp).unwrap();
        assert_eq!(m.response_code, hickory_proto::op::ResponseCode::Refused);
    }
}
