//! Address prefixes (`192.0.2.0/24`, `2001:db8::/32`, or a bare address): source lists of the
//! satellite's ACL and rate-limit leaves, and the RDAP edge's trusted proxies in the link
//! contract.

use std::fmt;
use std::net::IpAddr;

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
        // An IPv4-mapped prefix (`::ffff:192.0.2.0/120`) is the IPv4 one: addresses are
        // compared as IPv4 when they are mapped.
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
            && len >= 96
        {
            return Ok(Self {
                addr: IpAddr::V4(v4),
                len: len - 96,
            });
        }
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

impl fmt::Display for Prefix {
    /// `address/length`, which [`Prefix::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn ipv4_mapped_prefixes_are_ipv4_ones() {
        let p = Prefix::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(p, Prefix::parse("10.0.0.0/8").unwrap());
        assert!(p.contains("10.1.2.3".parse().unwrap()));
        assert!(p.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!p.contains("11.0.0.1".parse().unwrap()));
        let one = Prefix::parse("::ffff:192.0.2.1").unwrap();
        assert!(one.contains("192.0.2.1".parse().unwrap()));
        assert_eq!(one.to_string(), "192.0.2.1/32");
    }

    #[test]
    fn display_reads_back() {
        for text in ["192.0.2.0/24", "2001:db8::/32", "::1/128", "10.0.0.1/32"] {
            let p = Prefix::parse(text).unwrap();
            assert_eq!(p.to_string(), text);
            assert_eq!(Prefix::parse(&p.to_string()).unwrap(), p);
        }
        assert_eq!(
            Prefix::parse("10.0.0.1").unwrap().to_string(),
            "10.0.0.1/32"
        );
    }
}
