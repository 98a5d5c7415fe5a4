//! Leaf `acl`: source-address allow and deny lists.
//!
//! A source matching `deny` is refused or dropped; when `allow` is not empty, a source matching
//! none of its prefixes is too. Dropping is the better choice against reflection attacks,
//! REFUSED (RFC 1035 §4.1.1) the friendlier one for misconfigured clients.

use std::net::IpAddr;

use serde::Deserialize;

use crate::leaf::{Ctx, Flow, Leaf};
use crate::wire::{Event, rcode};

/// What to do with a query the ACL refuses.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AclAction {
    #[default]
    Refuse,
    Drop,
}

/// Configuration: prefixes such as `192.0.2.0/24`, `2001:db8::/32` or a bare address.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub action: AclAction,
}

/// An address prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// Parses `address/length` or a bare address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an address prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("{text:?}: prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Self { addr, len })
    }

    /// True when `ip` is inside the prefix (IPv4-mapped IPv6 sources count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(p) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(p) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The ACL leaf.
pub struct Acl {
    name: String,
    allow: Vec<Prefix>,
    deny: Vec<Prefix>,
    action: AclAction,
}

impl Acl {
    pub fn new(name: String, config: &AclConfig) -> Result<Self, String> {
        let parse = |v: &[String]| {
            v.iter()
                .map(|s| Prefix::parse(s))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            name,
            allow: parse(&config.allow)?,
            deny: parse(&config.deny)?,
            action: config.action,
        })
    }

    /// True when `ip` may be answered.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !self.deny.iter().any(|p| p.contains(ip))
            && (self.allow.is_empty() || self.allow.iter().any(|p| p.contains(ip)))
    }
}

impl Leaf for Acl {
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
    use crate::leaf::tests::selector;
    use crate::wire::Transport;
    use crate::wire::tests::query_packet;
    use crate::zone::tests::sample;

    #[test]
    fn prefixes() {
        let p = Prefix::parse("192.0.2.0/24").unwrap();
        assert!(p.contains("192.0.2.77".parse().unwrap()));
        assert!(p.contains("::ffff:192.0.2.77".parse().unwrap()));
        assert!(!p.contains("192.0.3.1".parse().unwrap()));
        assert!(
            Prefix::parse("0.0.0.0/0")
                .unwrap()
                .contains("10.1.1.1".parse().unwrap())
        );
        let p = Prefix::parse("2001:db8::/32").unwrap();
        assert!(p.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!p.contains("2001:db9::1".parse().unwrap()));
        assert!(Prefix::parse("10.0.0.0/33").is_err());
        assert!(Prefix::parse("nope").is_err());
        assert!(
            Prefix::parse("::1")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
    }

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
