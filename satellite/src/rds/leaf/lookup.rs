//! Leaf `lookup`: finds the object a validated request names in the directory.
//!
//! It only decides `Found` or `NotFound`; the edge renders the object from the same directory
//! version afterwards, in its protocol.

use crate::rds::{Outcome, Query, Rds, RdsCtx, RdsEvent};
use crate::selector::{Flow, Leaf};

/// The lookup leaf.
pub struct Lookup {
    name: String,
}

impl Lookup {
    pub fn new(name: String) -> Self {
        Self { name }
    }
}

impl Leaf<Rds> for Lookup {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, ev: &mut RdsEvent, ctx: &RdsCtx<'_>) -> Flow {
        let dir = ctx.directory();
        let key = &ev.key;
        let found = match ev.query {
            // No validate_query leaf before this one: nothing to look up.
            Query::None => {
                ev.outcome = Outcome::BadRequest("query not understood");
                return Flow::Respond;
            }
            Query::Domain => dir.domain(key.name()).is_some(),
            Query::Nameserver => dir.host(key.name()).is_some(),
            Query::Registrar => dir.registrar_by_name(key.text()).is_some(),
            Query::Entity => {
                dir.contact(key.text()).is_some() || dir.registrar(key.text()).is_some()
            }
            Query::Help => true,
        };
        ev.outcome = if found {
            Outcome::Found
        } else {
            Outcome::NotFound
        };
        Flow::Respond
    }
}

#[cfg(test)]
mod tests {
    use crate::rds::Outcome::{Found, NotFound};
    use crate::rds::Protocol::{Rdap, Whois};
    use crate::rds::leaf::tests::{run, selector, zones};

    #[test]
    fn finds_each_kind_of_object() {
        let sel = selector(
            "[leaves.v]\nkind = \"validate_query\"\n[leaves.l]\nkind = \"lookup\"\n\
             [[chains]]\nname = \"main\"\nleaves = [\"v\", \"l\"]",
        );
        let zones = zones();
        for (protocol, request, outcome) in [
            (Whois, "foo.tld", Found),
            (Whois, "www.foo.tld", NotFound),
            (Whois, "nameserver NS1.foo.tld", Found),
            (Whois, "nameserver ns.other.example", NotFound),
            (Whois, "registrar example registrar, inc.", Found),
            (Whois, "registrar R1", Found),
            (Whois, "registrar Nobody", NotFound),
            (Rdap, "/entity/C2", Found),
            (Rdap, "/entity/R1", Found),
            (Rdap, "/entity/c2", NotFound),
            (Rdap, "/nameserver/ns1.foo.tld", Found),
            (Rdap, "/help", Found),
        ] {
            let (_, ev) = run(&sel, &zones, "192.0.2.1", protocol, request);
            assert_eq!(ev.outcome, outcome, "{request}");
        }
    }
}
