//! The DNS leaf kinds and the [`Dns`] service they run in (the chain machinery is
//! [`crate::selector`]).

pub mod chaos;
pub mod lookup;
pub mod route_class;
pub mod rrl;
pub mod statistics;
pub mod validate_query;

use crate::dns::wire::{Event, rcode};
use crate::expiry::Expiry;
use crate::selector::acl::Acl;
use crate::selector::{ChainId, Leaf, Request, Service};
use crate::zone::ZoneSet;

pub use orrery_proto::selector::{LeafConfig, SelectorConfig, SelectorError};

impl Request for Event {
    fn peer(&self) -> std::net::IpAddr {
        self.peer
    }
}

/// DNS: events are parsed queries with their response buffer ([`Event`]).
pub struct Dns;

/// Shared read-only context of one DNS event: the zone version and server-wide settings.
pub struct Ctx<'a> {
    pub zones: &'a ZoneSet,
    /// NSID to send when asked (RFC 5001).
    pub nsid: Option<&'static [u8]>,
    /// Zone expiry, when expired zones answer SERVFAIL (`serve_expired = false`); `None`
    /// when they are served whatever their age (the default).
    pub expiry: Option<&'a Expiry>,
}

impl Service for Dns {
    type Event = Event;
    type Ctx<'a> = Ctx<'a>;
    type LeafConfig = LeafConfig;

    fn build_leaf(
        name: &str,
        config: &LeafConfig,
        chain: &dyn Fn(&str) -> Option<ChainId>,
    ) -> Result<Box<dyn Leaf<Self>>, SelectorError> {
        let bad = |message: String| SelectorError::BadLeaf {
            leaf: name.to_owned(),
            message,
        };
        let name = name.to_owned();
        Ok(match config {
            LeafConfig::ValidateQuery(_) => Box::new(validate_query::ValidateQuery::new(name)),
            LeafConfig::Acl(c) => Box::new(Acl::new(name, c).map_err(bad)?),
            LeafConfig::Chaos(c) => Box::new(chaos::Chaos::new(name, c)),
            LeafConfig::RouteClass(c) => {
                let target = chain(&c.chain).ok_or_else(|| SelectorError::UnknownChain {
                    leaf: name.clone(),
                    chain: c.chain.clone(),
                })?;
                Box::new(route_class::RouteClass::new(name, c, target).map_err(bad)?)
            }
            LeafConfig::Lookup(_) => Box::new(lookup::Lookup::new(name)),
            LeafConfig::Statistics(_) => Box::new(statistics::Statistics::new(name)),
            LeafConfig::Rrl(c) => Box::new(rrl::Rrl::new(name, c).map_err(bad)?),
        })
    }

    fn refuse(ev: &mut Event, ctx: &Ctx<'_>) {
        ev.begin_response(rcode::REFUSED, ctx.nsid);
    }

    fn complete(ev: &mut Event, ctx: &Ctx<'_>) {
        if !ev.has_response() {
            ev.begin_response(rcode::SERVFAIL, ctx.nsid);
        }
        ev.response.finish();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dns::wire::Transport;
    use crate::selector::Selector;

    /// The example configuration's pipeline, with the no-op `statistics` leaf of older
    /// configurations still in it (they must keep parsing).
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

    pub(crate) fn selector() -> Selector<Dns> {
        let config: SelectorConfig = toml::from_str(CHAINS).unwrap();
        Selector::<Dns>::build(&config).unwrap()
    }

    /// Runs one packet through the default pipeline and parses the answer with hickory.
    pub(crate) fn ask(
        sel: &Selector<Dns>,
        zones: &ZoneSet,
        packet: &[u8],
        transport: Transport,
    ) -> Option<hickory_proto::op::Message> {
        let mut ev = Event::new();
        ev.load(packet, "127.0.0.1".parse().unwrap(), transport);
        let ctx = Ctx {
            zones,
            nsid: Some(b"sat1"),
            expiry: None,
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
            Selector::<Dns>::build(&bad),
            Err(SelectorError::UnknownLeaf { .. })
        ));
        let mut bad: SelectorConfig = toml::from_str(CHAINS).unwrap();
        bad.chains.pop();
        assert!(matches!(
            Selector::<Dns>::build(&bad),
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
}
