//! The leaf kinds of the registration data services ([`Rds`](super::Rds)).
//!
//! Same contract as the DNS leaves ([`crate::leaf`]): built once from configuration, long-lived,
//! one `handle` per request returning a [`Flow`](crate::selector::Flow). A leaf that ends the chain
//! sets the event's [`Outcome`](super::Outcome) and returns `Respond` (or `Drop` to close the
//! connection without an answer).

pub mod lookup;
pub mod rate_limit;
pub mod statistics;
pub mod validate_query;

pub use orrery_proto::selector::RdsLeafConfig;

use super::Rds;
use crate::selector::Leaf;
use crate::selector::SelectorError;
use crate::selector::acl::Acl;

/// Builds one leaf.
pub(super) fn build(
    name: &str,
    config: &RdsLeafConfig,
) -> Result<Box<dyn Leaf<Rds>>, SelectorError> {
    let bad = |message: String| SelectorError::BadLeaf {
        leaf: name.to_owned(),
        message,
    };
    let name = name.to_owned();
    Ok(match config {
        RdsLeafConfig::ValidateQuery(_) => Box::new(validate_query::ValidateQuery::new(name)),
        RdsLeafConfig::Acl(c) => Box::new(Acl::new(name, c).map_err(bad)?),
        RdsLeafConfig::RateLimit(c) => Box::new(rate_limit::RateLimit::new(name, c).map_err(bad)?),
        RdsLeafConfig::Lookup(_) => Box::new(lookup::Lookup::new(name)),
        RdsLeafConfig::Statistics(_) => Box::new(statistics::Statistics::new(name)),
    })
}

/// The chain a satellite runs when the master sends none: rate limit (5 queries/s per address
/// with bursts of 20, 50/s per prefix), validate, look up. The limit comes first so that
/// malformed requests spend tokens too. (No `statistics` leaf: the pipeline counts every
/// request; the kind is still accepted, as a no-op, for Selectors written with it.)
pub const DEFAULT_SELECTOR: &str = r#"
[leaves.validate]
kind = "validate_query"
[leaves.limit]
kind = "rate_limit"
address_rate = 5.0
address_burst = 20
prefix_rate = 50.0
prefix_burst = 200
[leaves.lookup]
kind = "lookup"

[[chains]]
name = "main"
leaves = ["limit", "validate", "lookup"]
"#;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dns::leaf::SelectorConfig;
    use crate::rds::{Outcome, Protocol, Query, RdsCtx, RdsEvent};
    use crate::selector::Selector;
    use crate::served::Served;

    pub(crate) fn selector(text: &str) -> Selector<Rds> {
        let config: SelectorConfig<RdsLeafConfig> = toml::from_str(text).unwrap();
        Selector::build(&config).unwrap()
    }

    /// A zone set whose directory is the directory module's sample.
    pub(crate) fn zones() -> Served {
        let mut set = Served::default();
        set.directory = crate::rds::directory::tests::sample();
        set
    }

    /// Runs one request; returns whether it was answered, and the event.
    pub(crate) fn run(
        sel: &Selector<Rds>,
        zones: &Served,
        peer: &str,
        protocol: Protocol,
        request: &str,
    ) -> (bool, RdsEvent) {
        let mut ev = RdsEvent::new();
        ev.reset(peer.parse().unwrap(), protocol);
        ev.request.extend_from_slice(request.as_bytes());
        let answered = sel.run(&mut ev, &RdsCtx { served: zones });
        (answered, ev)
    }

    #[test]
    fn default_chain_answers_and_limits() {
        let sel = selector(DEFAULT_SELECTOR);
        let zones = zones();
        let (answered, ev) = run(&sel, &zones, "192.0.2.1", Protocol::Whois, "FOO.tld");
        assert!(answered);
        assert_eq!(ev.outcome, Outcome::Found);
        assert_eq!(ev.query, Query::Domain);
        let (_, ev) = run(
            &sel,
            &zones,
            "192.0.2.1",
            Protocol::Rdap,
            "/domain/nope.tld",
        );
        assert_eq!(ev.outcome, Outcome::NotFound);
        // The burst of 20 per address is spent (2 used above): the 19th more is limited.
        let mut last = Outcome::Pending;
        for _ in 0..19 {
            last = run(&sel, &zones, "192.0.2.1", Protocol::Whois, "foo.tld")
                .1
                .outcome;
        }
        assert!(matches!(last, Outcome::RateLimited { .. }), "{last:?}");
        // Another prefix is still served.
        let (_, ev) = run(&sel, &zones, "198.51.100.1", Protocol::Whois, "foo.tld");
        assert_eq!(ev.outcome, Outcome::Found);
    }

    /// Random and mutated requests, both protocols, through the default chain and both
    /// renderers: every one gets an outcome and a rendering, none panics.
    #[test]
    fn random_requests_never_panic() {
        use rand::{Rng, SeedableRng};
        let sel = selector(DEFAULT_SELECTOR);
        let zones = zones();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let seeds: [&[u8]; 6] = [
            b"foo.tld",
            b"nameserver ns1.foo.tld",
            b"registrar Example Registrar, Inc.",
            b"/domain/foo.tld",
            b"/entity/C2",
            "/domain/caf%C3%A9.tld".as_bytes(),
        ];
        let mut out = Vec::new();
        for i in 0..20_000u32 {
            let mut request = seeds[i as usize % seeds.len()].to_vec();
            for _ in 0..rng.random_range(0..6) {
                let at = rng.random_range(0..=request.len());
                match rng.random_range(0..3) {
                    0 => request.insert(at, rng.random()),
                    1 if at < request.len() => request[at] = rng.random(),
                    _ => request.truncate(at),
                }
            }
            let protocol = if i % 2 == 0 {
                Protocol::Whois
            } else {
                Protocol::Rdap
            };
            // A fresh address per request keeps the rate limit out of the way.
            let peer = std::net::IpAddr::from(i.to_be_bytes());
            let mut ev = RdsEvent::new();
            ev.reset(peer, protocol);
            ev.request.extend_from_slice(&request);
            let ctx = RdsCtx { served: &zones };
            assert!(sel.run(&mut ev, &ctx));
            assert_ne!(ev.outcome, Outcome::Pending);
            out.clear();
            crate::rds::whois::render(&ev, &ctx, &mut out);
            assert!(!out.is_empty());
            out.clear();
            let status = crate::rds::rdap::render(&ev, &ctx, "https://rdap.test/", &mut out);
            assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
            assert!((200..600).contains(&status.code));
        }
    }

    #[test]
    fn end_of_chain_refuses_and_bad_config_is_named() {
        let sel = selector(
            "[leaves.s]\nkind = \"statistics\"\n[[chains]]\nname = \"main\"\nleaves = [\"s\"]",
        );
        let (answered, ev) = run(&sel, &zones(), "192.0.2.1", Protocol::Whois, "foo.tld");
        assert!(answered);
        assert_eq!(ev.outcome, Outcome::Refused);
        let bad: SelectorConfig<RdsLeafConfig> = toml::from_str(
            "[leaves.l]\nkind = \"rate_limit\"\naddress_rate = 0.0\naddress_burst = 1\nprefix_rate = 1.0\nprefix_burst = 1\n[[chains]]\nname = \"main\"\nleaves = [\"l\"]",
        )
        .unwrap();
        let Err(err) = Selector::<Rds>::build(&bad) else {
            panic!("a zero rate was accepted");
        };
        assert!(err.to_string().contains("address_rate"), "{err}");
        // DNS leaf kinds are not registration data leaves.
        assert!(
            toml::from_str::<SelectorConfig<RdsLeafConfig>>(
                "[leaves.c]\nkind = \"chaos\"\n[[chains]]\nname = \"main\"\nleaves = [\"c\"]"
            )
            .is_err()
        );
    }
}
