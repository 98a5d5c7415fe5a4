//! Leaf `acl`: source-address allow and deny lists, as for DNS ([`crate::dns::leaf::acl`]).
//!
//! `action = "refuse"` answers with the protocol's refusal (a Whois error line, RDAP 403);
//! `action = "drop"` closes the connection without a word.

use crate::dns::leaf::acl::{Acl, AclAction, AclConfig};
use crate::rds::{Outcome, Rds, RdsCtx, RdsEvent};
use crate::selector::{Flow, Leaf};

/// The ACL leaf of the registration data services.
pub struct RdsAcl {
    acl: Acl,
    action: AclAction,
}

impl RdsAcl {
    pub fn new(name: String, config: &AclConfig) -> Result<Self, String> {
        Ok(Self {
            acl: Acl::new(name, config)?,
            action: config.action,
        })
    }
}

impl Leaf<Rds> for RdsAcl {
    fn name(&self) -> &str {
        Leaf::name(&self.acl)
    }

    fn handle(&self, ev: &mut RdsEvent, _: &RdsCtx<'_>) -> Flow {
        if self.acl.permits(ev.peer) {
            return Flow::Continue;
        }
        match self.action {
            AclAction::Drop => Flow::Drop,
            AclAction::Refuse => {
                ev.outcome = Outcome::Refused;
                Flow::Respond
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rds::Outcome;
    use crate::rds::Protocol::Whois;
    use crate::rds::leaf::tests::{run, selector, zones};

    #[test]
    fn refuses_or_drops_denied_sources() {
        let text = |action: &str| {
            format!(
                "[leaves.acl]\nkind = \"acl\"\ndeny = [\"192.0.2.0/24\"]\naction = \"{action}\"\n\
                 [leaves.lookup]\nkind = \"lookup\"\n\
                 [[chains]]\nname = \"main\"\nleaves = [\"acl\", \"lookup\"]"
            )
        };
        let zones = zones();
        let refuse = selector(&text("refuse"));
        let (answered, ev) = run(&refuse, &zones, "192.0.2.9", Whois, "help");
        assert!(answered);
        assert_eq!(ev.outcome, Outcome::Refused);
        let (_, ev) = run(&refuse, &zones, "198.51.100.9", Whois, "help");
        assert_ne!(ev.outcome, Outcome::Refused);
        let drop = selector(&text("drop"));
        assert!(!run(&drop, &zones, "192.0.2.9", Whois, "help").0);
    }
}
