//! Leaf `validate_query`: turns the raw request into a [`Query`], or refuses it with a short
//! reason.
//!
//! Whois (RFC 3912 has no syntax beyond "a line"; this is the common registry one):
//! - `NAME` or `domain NAME`: a domain; U-labels are normalised to A-labels (UTS #46 through
//!   [`Name::from_user`]), any case, with or without the final dot;
//! - `nameserver NAME` (also `ns`, `host`): a nameserver host object;
//! - `registrar NAME`: a registrar by name (any case) or handle;
//! - `help` or `?`: the help text.
//!
//! The query must be UTF-8 without control characters (a tab counts as a space). Over-long
//! lines and clients that never finish their line are the edge's to refuse: it reads the line.
//!
//! RDAP (RFC 9082 §3.1): the path ends in `domain/NAME`, `nameserver/NAME`, `entity/HANDLE`
//! or `help`; anything before those segments is the service's base path (a proxy may mount
//! RDAP under `/rdap/`). The path is percent-decoded here, so U-labels arrive as UTF-8.

use std::borrow::Cow;

use orrery_proto::Name;

use crate::rds::{Outcome, Protocol, Query, Rds, RdsCtx, RdsEvent};
use crate::selector::{Flow, Leaf};

/// The validation leaf.
pub struct ValidateQuery {
    name: String,
}

impl ValidateQuery {
    pub fn new(name: String) -> Self {
        Self { name }
    }
}

impl Leaf<Rds> for ValidateQuery {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, ev: &mut RdsEvent, _: &RdsCtx<'_>) -> Flow {
        let parsed = match ev.protocol {
            Protocol::Whois => parse_whois(&ev.request),
            Protocol::Rdap => parse_rdap(&ev.request),
        };
        match parsed {
            Ok(query) => {
                ev.query = query;
                Flow::Continue
            }
            Err(reason) => {
                ev.outcome = Outcome::BadRequest(reason);
                Flow::Respond
            }
        }
    }
}

/// Parses a Whois query line (without its line end).
pub fn parse_whois(line: &[u8]) -> Result<Query, &'static str> {
    let text = std::str::from_utf8(line).map_err(|_| "the query is not UTF-8")?;
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err("control characters are not allowed");
    }
    let text = text.trim();
    if text.is_empty() {
        return Err("empty query; try \"help\"");
    }
    let (keyword, rest) = match text.split_once([' ', '\t']) {
        Some((k, r)) => (k, r.trim()),
        None => (text, ""),
    };
    // Keywords are short: lower-case them on the stack (anything longer is no keyword).
    let mut lower = [0u8; 10];
    let keyword = match lower.get_mut(..keyword.len()) {
        Some(buf) => {
            buf.copy_from_slice(keyword.as_bytes());
            buf.make_ascii_lowercase();
            std::str::from_utf8(buf).unwrap_or("")
        }
        None => "",
    };
    match (keyword, rest) {
        ("help" | "?", "") => Ok(Query::Help),
        ("domain", name) if !name.is_empty() => domain_name(name).map(Query::Domain),
        ("nameserver" | "ns" | "host", name) if !name.is_empty() => {
            domain_name(name).map(Query::Nameserver)
        }
        ("registrar", name) if !name.is_empty() => Ok(Query::Registrar(name.to_owned())),
        ("domain" | "nameserver" | "ns" | "host" | "registrar", _) => {
            Err("the query names no object")
        }
        (_, "") => domain_name(text).map(Query::Domain),
        _ => Err("query not understood; try \"help\""),
    }
}

/// Parses an RDAP request path (percent-encoded, without the query string).
pub fn parse_rdap(path: &[u8]) -> Result<Query, &'static str> {
    let decoded: Cow<'_, [u8]> = percent_encoding::percent_decode(path).into();
    let path = std::str::from_utf8(&decoded).map_err(|_| "the path is not UTF-8")?;
    if path.chars().any(char::is_control) {
        return Err("control characters are not allowed");
    }
    let path = path.trim_end_matches('/');
    let mut segments = path.rsplit('/');
    let last = segments.next().unwrap_or("");
    let kind = segments.next().unwrap_or("");
    match (kind, last) {
        ("domain", name) if !name.is_empty() => domain_name(name).map(Query::Domain),
        ("nameserver", name) if !name.is_empty() => domain_name(name).map(Query::Nameserver),
        ("entity", handle) if !handle.is_empty() && handle.len() <= 255 => {
            Ok(Query::Entity(handle.to_owned()))
        }
        // `…/help`, not `/entity/help` (an entity may be called "help").
        (_, "help") => Ok(Query::Help),
        _ => Err("unsupported query; this server answers domain, nameserver, entity and help"),
    }
}

fn domain_name(text: &str) -> Result<Name, &'static str> {
    let text = text.strip_suffix('.').unwrap_or(text);
    let name = Name::from_user(text).map_err(|_| "not a valid domain name")?;
    // Registries register host names (RFC 952/1123 LDH labels, A-labels for IDNs).
    name.check_hostname()
        .map_err(|_| "not a valid domain name")?;
    if name.is_root() {
        return Err("not a valid domain name");
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn whois_queries() {
        assert_eq!(parse_whois(b"Foo.TLD"), Ok(Query::Domain(n("foo.tld"))));
        assert_eq!(
            parse_whois(b"  foo.tld.\t"),
            Ok(Query::Domain(n("foo.tld")))
        );
        assert_eq!(
            parse_whois(b"domain foo.tld"),
            Ok(Query::Domain(n("foo.tld")))
        );
        assert_eq!(
            parse_whois("café.tld".as_bytes()),
            Ok(Query::Domain(n("xn--caf-dma.tld")))
        );
        assert_eq!(
            parse_whois(b"NAMESERVER ns1.foo.tld"),
            Ok(Query::Nameserver(n("ns1.foo.tld")))
        );
        assert_eq!(
            parse_whois(b"registrar Example Registrar, Inc."),
            Ok(Query::Registrar("Example Registrar, Inc.".into()))
        );
        assert_eq!(parse_whois(b"help"), Ok(Query::Help));
        for (bad, why) in [
            (&b""[..], "empty"),
            (b"   ", "empty"),
            (b"foo\x01.tld", "control"),
            (b"foo\xff.tld", "UTF-8"),
            (b"registrar", "names no object"),
            (b"two words", "not understood"),
            (b"foo..tld", "valid domain"),
            (b"-_-!.tld", "valid domain"),
        ] {
            let err = parse_whois(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn rdap_paths() {
        assert_eq!(
            parse_rdap(b"/domain/FOO.tld"),
            Ok(Query::Domain(n("foo.tld")))
        );
        assert_eq!(
            parse_rdap(b"/rdap/domain/caf%C3%A9.tld"),
            Ok(Query::Domain(n("xn--caf-dma.tld")))
        );
        assert_eq!(
            parse_rdap(b"/nameserver/ns1.foo.tld/"),
            Ok(Query::Nameserver(n("ns1.foo.tld")))
        );
        assert_eq!(parse_rdap(b"/entity/C-1"), Ok(Query::Entity("C-1".into())));
        assert_eq!(parse_rdap(b"/help"), Ok(Query::Help));
        assert_eq!(parse_rdap(b"/rdap/help"), Ok(Query::Help));
        assert_eq!(
            parse_rdap(b"/entity/help"),
            Ok(Query::Entity("help".into()))
        );
        assert_eq!(
            parse_rdap(b"/domain/help"),
            Ok(Query::Domain(Name::from_ascii("help").unwrap()))
        );
        assert!(parse_rdap(b"/domains?name=x").is_err());
        assert!(parse_rdap(b"/ip/192.0.2.1").is_err());
        assert!(parse_rdap(b"/domain/").is_err());
        assert!(
            parse_rdap(b"/domain/%FF.tld")
                .unwrap_err()
                .contains("UTF-8")
        );
        assert!(
            parse_rdap(b"/domain/a%0Ab.tld")
                .unwrap_err()
                .contains("control")
        );
    }
}
