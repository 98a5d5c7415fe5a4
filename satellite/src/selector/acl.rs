//! Leaf `acl`: source-address allow and deny lists, one kind for every service.
//!
//! A source matching `deny` is refused or dropped; when `allow` is not empty, a source matching
//! none of its prefixes is too. `action = "refuse"` answers with the service's refusal
//! ([`Service::refuse`]: DNS REFUSED, RFC 1035 §4.1.1; a Whois error line; RDAP 403);
//! `action = "drop"` sends nothing (a DNS query is dropped, a Whois/RDAP connection closed).
//! Dropping is the better choice against reflection attacks, refusing the friendlier one for
//! misconfigured clients.

use std::net::IpAddr;

pub use orrery_proto::Prefix;
pub use orrery_proto::selector::{AclAction, AclConfig};

use super::{Flow, Leaf, Request, Service};

/// The ACL leaf.
pub struct Acl {
    name: String,
    allow: Vec<Prefix>,
    deny: Vec<Prefix>,
    action: AclAction,
}

impl Acl {
    pub fn new(name: String, config: &AclConfig) -> Result<Self, String> {
        let (allow, deny) = config.prefixes()?;
        Ok(Self {
            name,
            allow,
            deny,
            action: config.action,
        })
    }

    /// True when `ip` may be answered.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !self.deny.iter().any(|p| p.contains(ip))
            && (self.allow.is_empty() || self.allow.iter().any(|p| p.contains(ip)))
    }
}

impl<S: Service> Leaf<S> for Acl {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, ev: &mut S::Event, ctx: &S::Ctx<'_>) -> Flow {
        if self.permits(ev.peer()) {
            return Flow::Continue;
        }
        match self.action {
            AclAction::Drop => Flow::Drop,
            AclAction::Refuse => {
                S::refuse(ev, ctx);
                Flow::Respond
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::leaf::Ctx;
    use crate::dns::leaf::tests::selector;
    use crate::dns::wire::Event;
    use crate::dns::wire::Transport;
    use crate::dns::wire::tests::query_packet;
    use crate::rds::Outcome;
    use crate::rds::Protocol::Whois;
    use crate::rds::leaf::tests::{run, selector as rds_selector, zones};
    use crate::zone::tests::sample;

    #[test]
    fn refuses_or_drops_dns() {
        let acl = Acl::new(
            "a".into(),
            &AclConfig {
                allow: vec!["10.0.0.0/8".into()],
                deny: vec!["10.9.0.0/16".into()],
                action: AclAction::Drop,
            },
        )
        .unwrap();
        assert!(acl.permits("10.1.2.3".parse().unwrap()));
        assert!(!acl.permits("10.9.2.3".parse().unwrap()));
        assert!(!acl.permits("11.0.0.1".parse().unwrap()));
        // The shared test pipeline refuses 192.0.2.0/24.
        let sel = selector();
        let zones = sample();
        let mut ev = Event::new();
        ev.load(
            &query_packet("foo.tld", 1, 1, None),
            "192.0.2.1".parse().unwrap(),
            Transport::Udp,
        );
        let ctx = Ctx {
            zones: &zones,
            nsid: None,
            expiry: None,
        };
        assert!(sel.run(&mut ev, &ctx));
        let m = hickory_proto::op::Message::from_vec(ev.response.bytes()).unwrap();
        assert_eq!(m.response_code, hickory_proto::op::ResponseCode::Refused);
    }

    #[test]
    fn refuses_or_drops_whois() {
        let text = |action: &str| {
            format!(
                "[leaves.acl]\nkind = \"acl\"\ndeny = [\"192.0.2.0/24\"]\naction = \"{action}\"\n\
                 [leaves.lookup]\nkind = \"lookup\"\n\
                 [[chains]]\nname = \"main\"\nleaves = [\"acl\", \"lookup\"]"
            )
        };
        let zones = zones();
        let refuse = rds_selector(&text("refuse"));
        let (answered, ev) = run(&refuse, &zones, "192.0.2.9", Whois, "help");
        assert!(answered);
        assert_eq!(ev.outcome, Outcome::Refused);
        let (_, ev) = run(&refuse, &zones, "198.51.100.9", Whois, "help");
        assert_ne!(ev.outcome, Outcome::Refused);
        let drop = rds_selector(&text("drop"));
        assert!(!run(&drop, &zones, "192.0.2.9", Whois, "help").0);
    }
}
