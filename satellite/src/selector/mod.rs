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
//!                      response completed (OPT, flags, counts)
//!                                  │
//!                                  ▼
//!                      visited leaves that inspect responses, last first: `outgoing`
//!                      may truncate or drop it (rrl)
//!                                  │
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
//! A leaf that says so at build time ([`Leaf::inspects_responses`]) also sees the completed
//! response on its way out ([`Leaf::outgoing`]), if the event visited it: visited leaves are
//! walked last first, each once, and may rewrite the response or drop it. This is how a leaf
//! early in a chain (response rate limiting) acts on every answer of the leaves after it.
//!
//! Which leaves exist and how the chains link is plain data ([`SelectorConfig`], in
//! [`orrery_proto::selector`]), because the master sends it to satellites at boot and checks it
//! at load with the same validator ([`SelectorConfig::validate`]). [`Selector::build`] calls
//! that validator first, then builds each leaf once and resolves chains from names to indices.

pub mod acl;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::IpAddr;

pub use orrery_proto::selector::{
    ChainConfig, LeafSettings, NoSettings, SelectorConfig, SelectorError,
};

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

/// What every service's event tells the leaves that work for any service ([`acl`]).
pub trait Request {
    /// The client's address.
    fn peer(&self) -> IpAddr;
}

/// A protocol served through a Selector: its event, the read-only context an event is handled
/// in, its leaf kinds, and what the Selector does at the ends of a chain.
///
/// DNS ([`crate::dns::leaf::Dns`]) and the registration data services, Whois and RDAP
/// ([`crate::rds::Rds`]), each implement it; the chain machinery is shared.
pub trait Service: Sized + 'static {
    /// What travels through the chains (preallocated, reused).
    type Event: Request;
    /// Shared read-only context of one event.
    type Ctx<'a>;
    /// One leaf's configuration, tagged by `kind` (in [`orrery_proto::selector`]).
    type LeafConfig: LeafSettings + Clone + Debug + PartialEq;

    /// Builds one leaf of a validated configuration; `chain` resolves a chain name to its id
    /// (for jumping leaves). The errors are only a defence: validation catches them first.
    fn build_leaf(
        name: &str,
        config: &Self::LeafConfig,
        chain: &dyn Fn(&str) -> Option<ChainId>,
    ) -> Result<Box<dyn Leaf<Self>>, SelectorError>;

    /// No leaf claimed the event: answer it as refused.
    fn refuse(ev: &mut Self::Event, ctx: &Self::Ctx<'_>);

    /// A leaf said [`Flow::Respond`]: make sure a response exists (a leaf that forgot is a
    /// server failure) and complete it.
    fn complete(ev: &mut Self::Event, ctx: &Self::Ctx<'_>);
}

/// What a leaf that inspects responses says about one on its way out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outgoing {
    Send,
    /// Send nothing after all (the leaves visited are told the event was not answered).
    Drop,
}

/// A stage of the pipeline of service `S`.
pub trait Leaf<S: Service>: Send + Sync {
    /// The instance name from the configuration.
    fn name(&self) -> &str;
    /// Handles an event.
    fn handle(&self, ev: &mut S::Event, ctx: &S::Ctx<'_>) -> Flow;
    /// True for a leaf that looks at finished responses ([`Leaf::outgoing`]); asked once,
    /// when the Selector is built, so other leaves cost nothing on the way out.
    fn inspects_responses(&self) -> bool {
        false
    }
    /// Called on the completed response before it is sent, for leaves that inspect responses
    /// and were visited, the last visited first (each once). May rewrite the response (for
    /// instance truncate it) or drop it; a drop ends the walk.
    fn outgoing(&self, _ev: &mut S::Event, _ctx: &S::Ctx<'_>) -> Outgoing {
        Outgoing::Send
    }
    /// Called after the event is answered (`responded`) or dropped, on every leaf it visited.
    fn finish(&self, _ev: &S::Event, _responded: bool) {}
    /// Reports the leaf's counters (cold path).
    fn counters(&self, _report: &mut dyn FnMut(&str, u64)) {}
}

/// Several chains of leaves of service `S`.
pub struct Selector<S: Service> {
    leaves: Vec<Box<dyn Leaf<S>>>,
    /// Per leaf: whether it inspects responses.
    inspects: Vec<bool>,
    /// Whether any leaf does (when none does, responses go out without a walk).
    any_inspects: bool,
    chains: Vec<Vec<u16>>,
    chain_names: Vec<String>,
}

impl<S: Service> Selector<S> {
    /// Validates the configuration ([`SelectorConfig::validate`], the master's check too),
    /// then builds every configured leaf once and resolves the chains.
    pub fn build(config: &SelectorConfig<S::LeafConfig>) -> Result<Self, SelectorError> {
        config.validate()?;
        let chain_ids: BTreeMap<&str, ChainId> = config
            .chains
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), i as ChainId))
            .collect();
        let find_chain = |name: &str| chain_ids.get(name).copied();
        let mut leaves = Vec::new();
        let mut leaf_ids = BTreeMap::new();
        for (name, lc) in &config.leaves {
            leaves.push(S::build_leaf(name, lc, &find_chain)?);
            leaf_ids.insert(name.clone(), (leaves.len() - 1) as u16);
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
        let inspects: Vec<bool> = leaves.iter().map(|l| l.inspects_responses()).collect();
        Ok(Self {
            any_inspects: inspects.contains(&true),
            inspects,
            leaves,
            chains,
            chain_names: config.chains.iter().map(|c| c.name.clone()).collect(),
        })
    }

    /// Runs a loaded event through the chains. Returns true when the event holds a finished
    /// response to send.
    pub fn run(&self, ev: &mut S::Event, ctx: &S::Ctx<'_>) -> bool {
        let mut visited = [0u16; MAX_VISITS];
        let mut nvisited = 0;
        let mut chain = 0usize;
        let mut index = 0usize;
        let mut jumps = 0;
        let mut responded = loop {
            let Some(&leaf) = self.chains[chain].get(index) else {
                S::refuse(ev, ctx);
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
                Flow::Respond => break true,
                Flow::Drop => break false,
            }
        };
        if responded {
            S::complete(ev, ctx);
            if self.any_inspects {
                responded = self.send_or_drop(ev, ctx, &visited[..nvisited]);
            }
        }
        for &leaf in &visited[..nvisited] {
            self.leaves[leaf as usize].finish(ev, responded);
        }
        responded
    }

    /// Walks the visited leaves that inspect responses, last first and each once; false when
    /// one dropped the response.
    fn send_or_drop(&self, ev: &mut S::Event, ctx: &S::Ctx<'_>, visited: &[u16]) -> bool {
        for (i, &leaf) in visited.iter().enumerate().rev() {
            if self.inspects[leaf as usize]
                && !visited[..i].contains(&leaf)
                && self.leaves[leaf as usize].outgoing(ev, ctx) == Outgoing::Drop
            {
                return false;
            }
        }
        true
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
mod tests {
    use super::*;
    use crate::dns::leaf::tests::ask;
    use crate::dns::leaf::{Ctx, Dns};
    use crate::dns::wire::{Event, Transport};
    use crate::zone::ZoneSet;

    /// A leaf that always jumps back to the first chain.
    struct Loop;
    impl Leaf<Dns> for Loop {
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
            inspects: vec![false],
            any_inspects: false,
            chains: vec![vec![0]],
            chain_names: vec!["main".into()],
        };
        let packet = crate::dns::wire::tests::query_packet("tld", 1, 1, None);
        assert!(ask(&sel, &zones, &packet, Transport::Udp).is_none());
        let sel = Selector {
            leaves: vec![],
            inspects: vec![],
            any_inspects: false,
            chains: vec![vec![]],
            chain_names: vec!["main".into()],
        };
        let m = ask(&sel, &zones, &packet, Transport::Udp).unwrap();
        assert_eq!(m.response_code, hickory_proto::op::ResponseCode::Refused);
    }

    /// Inspects responses: records the order of its calls, drops when told to.
    struct Inspector {
        id: u8,
        drop: bool,
        order: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }
    impl Leaf<Dns> for Inspector {
        fn name(&self) -> &str {
            "inspector"
        }
        fn handle(&self, _: &mut Event, _: &Ctx<'_>) -> Flow {
            Flow::Continue
        }
        fn inspects_responses(&self) -> bool {
            true
        }
        fn outgoing(&self, ev: &mut Event, _: &Ctx<'_>) -> Outgoing {
            assert!(!ev.response.bytes().is_empty(), "the response is complete");
            self.order.lock().unwrap().push(self.id);
            if self.drop {
                Outgoing::Drop
            } else {
                Outgoing::Send
            }
        }
    }

    #[test]
    fn outgoing_walks_inspecting_leaves_last_first_once_each() {
        let zones = ZoneSet::default();
        let packet = crate::dns::wire::tests::query_packet("tld", 1, 1, None);
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        for (b_drops, want) in [(false, vec![1, 0]), (true, vec![1])] {
            order.lock().unwrap().clear();
            let inspector = |id, drop| -> Box<dyn Leaf<Dns>> {
                Box::new(Inspector {
                    id,
                    drop,
                    order: std::sync::Arc::clone(&order),
                })
            };
            // A, B, A again, then the end of the chain (REFUSED).
            let sel = Selector {
                leaves: vec![inspector(0, false), inspector(1, b_drops)],
                inspects: vec![true, true],
                any_inspects: true,
                chains: vec![vec![0, 1, 0]],
                chain_names: vec!["main".into()],
            };
            let answer = ask(&sel, &zones, &packet, Transport::Udp);
            assert_eq!(answer.is_some(), !b_drops);
            assert_eq!(*order.lock().unwrap(), want);
        }
    }
}
