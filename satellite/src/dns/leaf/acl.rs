//! Leaf `acl`: source-address allow and deny lists.
//!
//! A source matching `deny` is refused or dropped; when `allow` is not empty, a source matching
//! none of its prefixes is too. Dropping is the better choice against reflection attacks,
//! REFUSED (RFC 1035 §4.1.1) the friendlier one for misconfigured clients.

use std::net::IpAddr;

pub use orrery_proto::Prefix;
pub use orrery_proto::selector::{AclAction, AclConfig};

use crate::dns::leaf::{Ctx, Dns};
use crate::dns::wire::{Event, rcode};
use crate::selector::{Flow, Leaf};

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

impl Leaf<Dns> for Acl {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, ev: &mut Event, ctx: &Ctx<'_>) -> Flow {
        if self.permits(ev.peer) {
            return Flow::Continue;
        }
        match self.action {
            AclAction::Drop => Flow::Drop,
            AclAction::Refuse => {
                ev.begin_response(rcode::REFUSED, ctx.nsid);
                Flow::Respond
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::leaf::tests::selector;
    use crate::dns::wire::Transport;
    use crate::dns::wire::tests::query_packet;
    use crate::zone::tests::sample;

    #[test]
    fn refuses_or_drops() {
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
        };
        assert!(sel.run(&mut ev, &ctx));
        let m = hickory_proto::op::Message::from_vec(ev.response.bytes()).unwrap();
        assert_eq!(m.response_code, hickory_proto::op::ResponseCode::Refused);
    }
}
