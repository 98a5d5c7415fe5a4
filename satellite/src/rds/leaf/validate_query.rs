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

use crate::rds::{Key, Outcome, Protocol, Query, Rds, RdsCtx, RdsEvent};
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
            Protocol::Whois => parse_whois(&ev.request, &mut ev.key),
            Protocol::Rdap => parse_rdap(&ev.request, &mut ev.key),
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

/// Parses a Whois query line (without its line end); the object it names goes to `key`.
pub fn parse_whois(line: &[u8], key: &mut Key) -> Result<Query, &'static str> {
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
        ("domain", name) if !name.is_empty() => domain_name(name, key).map(|()| Query::Domain),
        ("nameserver" | "ns" | "host", name) if !name.is_empty() => {
            domain_name(name, key).map(|()| Query::Nameserver)
        }
        ("registrar", name) if !name.is_empty() => {
            key.set_text(name);
            Ok(Query::Registrar)
        }
        ("domain" | "nameserver" | "ns" | "host" | "registrar", _) => {
            Err("the query names no object")
        }
        (_, "") => domain_name(text, key).map(|()| Query::Domain),
        _ => Err("query not understood; try \"help\""),
    }
}

/// Parses an RDAP request path (percent-encoded, without the query string); the object it
/// names goes to `key`.
pub fn parse_rdap(path: &[u8], key: &mut Key) -> Result<Query, &'static str> {
    // Decoded into the key's own buffer: no allocation, escapes or not.
    let mut decoded = std::mem::take(&mut key.decoded);
    decoded.clear();
    decoded.extend(percent_encoding::percent_decode(path));
    let parsed = parse_decoded_rdap(&decoded, key);
    key.decoded = decoded;
    parsed
}

fn parse_decoded_rdap(path: &[u8], key: &mut Key) -> Result<Query, &'static str> {
    let path = std::str::from_utf8(path).map_err(|_| "the path is not UTF-8")?;
    if path.chars().any(char::is_control) {
        return Err("control characters are not allowed");
    }
    let path = path.trim_end_matches('/');
    let mut segments = path.rsplit('/');
    let last = segments.next().unwrap_or("");
    let kind = segments.next().unwrap_or("");
    match (kind, last) {
        ("domain", name) if !name.is_empty() => domain_name(name, key).map(|()| Query::Domain),
        ("nameserver", name) if !name.is_empty() => {
            domain_name(name, key).map(|()| Query::Nameserver)
        }
        ("entity", handle) if !handle.is_empty() && handle.len() <= 255 => {
            key.set_text(handle);
            Ok(Query::Entity)
        }
        // `…/help`, not `/entity/help` (an entity may be called "help").
        (_, "help") => Ok(Query::Help),
        _ => Err("unsupported query; this server answers domain, nameserver, entity and help"),
    }
}

/// Reads a domain or host name into `key`: a host name (RFC 952/1123 LDH labels, A-labels
/// for IDNs), which is what registries register, and not the root.
fn domain_name(text: &str, key: &mut Key) -> Result<(), &'static str> {
    const INVALID: &str = "not a valid domain name";
    let text = text.strip_suffix('.').unwrap_or(text);
    key.set_name(text).map_err(|_| INVALID)?;
    let wire = key.name();
    if wire == [0] || !orrery_proto::name::is_hostname_wire(wire) {
        return Err(INVALID);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a parser made of its input: the query and its key in presentation form.
    fn parsed(
        parse: fn(&[u8], &mut Key) -> Result<Query, &'static str>,
        input: &[u8],
    ) -> Result<(Query, String), &'static str> {
        let mut key = Key::default();
        let query = parse(input, &mut key)?;
        let shown = match query {
            Query::Domain | Query::Nameserver => {
                orrery_proto::Name::from_canonical_wire(key.name())
                    .unwrap()
                    .to_string()
            }
            _ => key.text().to_owned(),
        };
        Ok((query, shown))
    }

    fn whois(line: &[u8]) -> Result<(Query, String), &'static str> {
        parsed(parse_whois, line)
    }

    fn rdap(path: &[u8]) -> Result<(Query, String), &'static str> {
        parsed(parse_rdap, path)
    }

    #[test]
    fn whois_queries() {
        assert_eq!(whois(b"Foo.TLD"), Ok((Query::Domain, "foo.tld".into())));
        assert_eq!(
            whois(b"  foo.tld.\t"),
            Ok((Query::Domain, "foo.tld".into()))
        );
        assert_eq!(
            whois(b"domain foo.tld"),
            Ok((Query::Domain, "foo.tld".into()))
        );
        assert_eq!(
            whois("café.tld".as_bytes()),
            Ok((Query::Domain, "xn--caf-dma.tld".into()))
        );
        assert_eq!(
            whois(b"NAMESERVER ns1.foo.tld"),
            Ok((Query::Nameserver, "ns1.foo.tld".into()))
        );
        assert_eq!(
            whois(b"registrar Example Registrar, Inc."),
            Ok((Query::Registrar, "Example Registrar, Inc.".into()))
        );
        assert_eq!(whois(b"help"), Ok((Query::Help, String::new())));
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
            let err = whois(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn rdap_paths() {
        assert_eq!(
            rdap(b"/domain/FOO.tld"),
            Ok((Query::Domain, "foo.tld".into()))
        );
        assert_eq!(
            rdap(b"/rdap/domain/caf%C3%A9.tld"),
            Ok((Query::Domain, "xn--caf-dma.tld".into()))
        );
        assert_eq!(
            rdap(b"/nameserver/ns1.foo.tld/"),
            Ok((Query::Nameserver, "ns1.foo.tld".into()))
        );
        assert_eq!(rdap(b"/entity/C-1"), Ok((Query::Entity, "C-1".into())));
        assert_eq!(rdap(b"/help"), Ok((Query::Help, String::new())));
        assert_eq!(rdap(b"/rdap/help"), Ok((Query::Help, String::new())));
        assert_eq!(rdap(b"/entity/help"), Ok((Query::Entity, "help".into())));
        assert_eq!(rdap(b"/domain/help"), Ok((Query::Domain, "help".into())));
        assert!(rdap(b"/domains?name=x").is_err());
        assert!(rdap(b"/ip/192.0.2.1").is_err());
        assert!(rdap(b"/domain/").is_err());
        assert!(rdap(b"/domain/%FF.tld").unwrap_err().contains("UTF-8"));
        assert!(rdap(b"/domain/a%0Ab.tld").unwrap_err().contains("control"));
    }
}
