//! Whois answers (RFC 3912): the chain's [`Outcome`] rendered as text, every line ending in
//! CRLF.
//!
//! # Layout
//! ICANN's RDDS output format (Registry Agreement Specification 4 §1.4, clarified by the 2017
//! RDDS Advisory): one `Key: value` line per field, in a fixed order; a field without a value
//! keeps its key with an empty value; names in upper-case A-labels; dates in RFC 3339 UTC with
//! a `Z`; one `Domain Status:` line per EPP status with its `https://icann.org/epp#` link;
//! then the Whois Inaccuracy Complaint Form URL, the `>>> Last update of WHOIS database <<<`
//! line and the terms of use.
//!
//! # Redaction
//! A contact that did not agree to publication ([`ContactView::disclose`] false) is shown
//! as ICANN's Registration Data Policy shows redacted data, and as the RDAP edge does:
//! State/Province and Country stay, every other field (the registry's contact ID included)
//! says `REDACTED FOR PRIVACY`, and the email field points to the registrar of record. A
//! contact the domain names but the directory no longer holds is shown redacted too: nobody
//! agreed to publish it.
//!
//! # Safety of the text
//! Directory text comes from registrars. All of it is written through `Text`'s `fmt::Write`,
//! which turns control characters (and the Unicode line and paragraph separators) into spaces,
//! so a contact name holding CR LF cannot forge lines; only `Text::end` writes a line end.
//! Nothing here panics on any directory content.

use std::fmt::{self, Write as _};
use std::time::Duration;

use orrery_proto::Registrar;
use orrery_proto::name::write_wire_name;

use super::directory::{ContactView, DomainView, HostView, Ref, Role};
use super::{Outcome, Query, RdsCtx, RdsEvent};

/// What a redacted field shows (Registration Data Policy; Temporary Specification Appendix A).
const REDACTED: &str = "REDACTED FOR PRIVACY";

/// What a redacted email field shows.
const REDACTED_EMAIL: &str = "Please query the RDDS service of the Registrar of Record \
    identified in this output for information on how to contact the Registrant, Admin, or Tech \
    contacts of the queried domain name.";

/// ICANN's Whois Inaccuracy Complaint Form (Specification 4 §1.4.2).
const WICF: &str = "https://www.icann.org/wicf/";

/// The terms of use closing every object answer.
const TERMS: &[&str] = &[
    "The data in this record is provided for information purposes only, to assist in",
    "obtaining information about or related to a domain name registration record. The",
    "registry does not guarantee its accuracy. By submitting a query, you agree to use",
    "this data only for lawful purposes and not to: (1) allow, enable or otherwise",
    "support the transmission of unsolicited commercial advertising or solicitations;",
    "(2) enable high volume, automated, electronic processes that send queries or data",
    "to the systems of the registry or of any registrar, except as reasonably necessary",
    "to register domain names or modify existing registrations. The registry may limit",
    "or end access to this service at any time.",
];

/// The answer to `help`.
const HELP: &[&str] = &[
    "This is the registry's Whois service (RFC 3912): one query line per connection.",
    "",
    "Queries:",
    "  NAME                a domain name, e.g. example.tld (U-labels are accepted)",
    "  domain NAME         the same",
    "  nameserver NAME     a name server host object (also: ns NAME, host NAME)",
    "  registrar NAME      a registrar, by name or handle",
    "  help                this text",
    "",
    "Dates are UTC (RFC 3339). Registration data is also available over RDAP.",
];

/// Appends the Whois answer for `ev`'s outcome to `out`, read from `ctx`'s directory (the
/// version the chain saw).
pub fn render(ev: &RdsEvent, ctx: &RdsCtx<'_>, out: &mut Vec<u8>) {
    let w = &mut Text(out);
    match ev.outcome {
        Outcome::Found => match object(w, ev, ctx) {
            Shown::Object => {
                last_update(w, ctx);
                if ev.query == Query::Domain {
                    w.end();
                    w.line(
                        "For more information on Whois status codes, please visit \
                         https://icann.org/epp",
                    );
                }
                terms(w);
            }
            Shown::Help => terms(w),
            // The lookup saw the object in this very version, so rendering cannot miss it;
            // if it ever did, "no match" is the truthful answer.
            Shown::Missing => {
                not_found(w, ev);
                last_update(w, ctx);
            }
            Shown::NoQuery => w.error(format_args!("internal server error")),
        },
        Outcome::NotFound => {
            not_found(w, ev);
            last_update(w, ctx);
        }
        Outcome::BadRequest(reason) => w.error(format_args!("{reason}")),
        Outcome::RateLimited { retry_after } => w.error(format_args!(
            "rate limit exceeded; try again in {} seconds",
            whole_seconds(retry_after)
        )),
        Outcome::Refused => w.error(format_args!("access refused")),
        Outcome::Pending | Outcome::ServerError => w.error(format_args!("internal server error")),
    }
}

/// What a `Found` outcome rendered.
enum Shown {
    Object,
    Help,
    /// Not in the directory.
    Missing,
    /// No query (no `validate_query` leaf ran, yet something said `Found`).
    NoQuery,
}

/// Renders the object `ev` asks for.
fn object(w: &mut Text<'_>, ev: &RdsEvent, ctx: &RdsCtx<'_>) -> Shown {
    let dir = ctx.directory();
    let key = &ev.key;
    match ev.query {
        Query::Domain => match dir.domain(key.name()) {
            Some(d) => domain(w, d),
            None => return Shown::Missing,
        },
        Query::Nameserver => match dir.host(key.name()) {
            Some(h) => host(w, h),
            None => return Shown::Missing,
        },
        Query::Registrar => match dir.registrar_by_name(key.text()) {
            Some(r) => registrar(w, r),
            None => return Shown::Missing,
        },
        Query::Entity => match (dir.registrar(key.text()), dir.contact(key.text())) {
            (Some(r), _) => registrar(w, r),
            (None, Some(c)) => {
                let c = Ref {
                    handle: key.text(),
                    object: Some(c),
                };
                contact(w, "Contact", c, true);
            }
            (None, None) => return Shown::Missing,
        },
        Query::Help => {
            for line in HELP {
                w.line(line);
            }
            return Shown::Help;
        }
        Query::None => return Shown::NoQuery,
    }
    Shown::Object
}

fn terms(w: &mut Text<'_>) {
    w.end();
    for line in TERMS {
        w.line(line);
    }
}

/// `retry_after` rounded up to whole seconds, at least one.
fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn domain(w: &mut Text<'_>, d: DomainView<'_>) {
    w.name("Domain Name", d.name());
    w.field("Registry Domain ID", d.roid());
    let sponsor = d.registrar();
    let r = sponsor.as_ref().and_then(|r| r.object);
    w.field(
        "Registrar WHOIS Server",
        opt(r.and_then(|r| r.whois_server.as_deref())),
    );
    w.field("Registrar URL", opt(r.and_then(|r| r.url.as_deref())));
    w.field_fmt("Updated Date", d.updated());
    w.field_fmt("Creation Date", d.created());
    w.field_fmt("Registry Expiry Date", d.expires());
    w.field("Registrar", registrar_name(sponsor));
    w.field_fmt("Registrar IANA ID", Maybe(r.and_then(|r| r.iana_id)));
    w.field(
        "Registrar Abuse Contact Email",
        opt(r.and_then(|r| r.abuse_email.as_deref())),
    );
    w.field(
        "Registrar Abuse Contact Phone",
        opt(r.and_then(|r| r.abuse_phone.as_deref())),
    );
    // RFC 5731 §2.3: no status at all reads as `ok`.
    if d.statuses().is_empty() {
        w.status("ok");
    }
    for s in d.statuses().iter() {
        w.status(s.as_str());
    }
    for role in Role::ALL {
        if let Some(c) = d.contact(role) {
            contact(w, role_label(role), c, false);
        }
    }
    let mut any = false;
    for ns in d.nameservers() {
        w.name("Name Server", ns);
        any = true;
    }
    if !any {
        w.field("Name Server", "");
    }
    let dnssec = if d.ds().is_empty() {
        "unsigned"
    } else {
        "signedDelegation"
    };
    w.field("DNSSEC", dnssec);
    w.field("URL of the ICANN Whois Inaccuracy Complaint Form", WICF);
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::Registrant => "Registrant",
        Role::Admin => "Admin",
        Role::Tech => "Tech",
        Role::Billing => "Billing",
    }
}

/// One contact block (`Registry Tech ID:` … `Tech Email:`), disclosed or redacted. The handle
/// of a redacted contact shows only when the client asked for it by that handle.
fn contact(w: &mut Text<'_>, role: &str, c: Ref<'_, ContactView<'_>>, by_handle: bool) {
    let Some(c) = c.object.filter(|o| o.disclose()) else {
        redacted_contact(w, role, c, by_handle);
        return;
    };
    w.raw("Registry ");
    w.role_field(role, "ID", c.handle());
    w.role_field(role, "Name", c.name());
    w.role_field(role, "Organization", opt(c.organisation()));
    for street in c.street() {
        w.role_field(role, "Street", street);
    }
    if c.street().len() == 0 {
        w.role_field(role, "Street", "");
    }
    w.role_field(role, "City", c.city());
    w.role_field(role, "State/Province", opt(c.province()));
    w.role_field(role, "Postal Code", opt(c.postcode()));
    w.role_field(role, "Country", c.country());
    w.role_field(role, "Phone", opt(c.voice()));
    w.role_field(role, "Phone Ext", "");
    w.role_field(role, "Fax", opt(c.fax()));
    w.role_field(role, "Fax Ext", "");
    w.role_field(role, "Email", c.email());
}

/// A contact that did not agree to publication, as the Registration Data Policy shows it (and
/// as the RDAP edge does): State/Province and Country stay, every other field is
/// `REDACTED FOR PRIVACY`, the email field points to the registrar. A contact the directory no
/// longer holds has nothing to show: all of it reads as redacted.
fn redacted_contact(w: &mut Text<'_>, role: &str, c: Ref<'_, ContactView<'_>>, by_handle: bool) {
    let id = if by_handle { c.handle } else { REDACTED };
    w.raw("Registry ");
    w.role_field(role, "ID", id);
    for key in ["Name", "Organization", "Street", "City"] {
        w.role_field(role, key, REDACTED);
    }
    let (province, country) = c
        .object
        .map_or((REDACTED, REDACTED), |o| (opt(o.province()), o.country()));
    w.role_field(role, "State/Province", province);
    w.role_field(role, "Postal Code", REDACTED);
    w.role_field(role, "Country", country);
    for key in ["Phone", "Phone Ext", "Fax", "Fax Ext"] {
        w.role_field(role, key, REDACTED);
    }
    w.role_field(role, "Email", REDACTED_EMAIL);
}

fn host(w: &mut Text<'_>, h: HostView<'_>) {
    w.name("Server Name", h.name());
    for a in h.addresses() {
        w.field_fmt("IP Address", a);
    }
    let sponsor = h.registrar();
    let r = sponsor.as_ref().and_then(|r| r.object);
    w.field("Registrar", registrar_name(sponsor));
    w.field(
        "Registrar WHOIS Server",
        opt(r.and_then(|r| r.whois_server.as_deref())),
    );
    w.field("Registrar URL", opt(r.and_then(|r| r.url.as_deref())));
}

fn registrar(w: &mut Text<'_>, r: &Registrar) {
    w.field("Registrar", &r.name);
    w.field_fmt("Registrar IANA ID", Maybe(r.iana_id));
    w.field("Registrar WHOIS Server", opt(r.whois_server.as_deref()));
    w.field("Registrar URL", opt(r.url.as_deref()));
    w.field("Email", opt(r.email.as_deref()));
    w.field("Phone Number", opt(r.phone.as_deref()));
    w.field(
        "Registrar Abuse Contact Email",
        opt(r.abuse_email.as_deref()),
    );
    w.field(
        "Registrar Abuse Contact Phone",
        opt(r.abuse_phone.as_deref()),
    );
}

/// The sponsor's name; its handle when the directory holds only the reference.
fn registrar_name<'a>(sponsor: Option<Ref<'a, &'a Registrar>>) -> &'a str {
    sponsor.map_or("", |r| r.object.map_or(r.handle, |o| &o.name))
}

/// `No match for "QUERY".`, with the query as typed when it is printable.
fn not_found(w: &mut Text<'_>, ev: &RdsEvent) {
    let typed = std::str::from_utf8(&ev.request)
        .map(str::trim)
        .ok()
        .filter(|q| !q.is_empty() && !q.chars().any(char::is_control));
    match typed {
        Some(q) => w.line_fmt(format_args!("No match for \"{q}\".")),
        None => w.line("No match."),
    }
}

fn last_update(w: &mut Text<'_>, ctx: &RdsCtx<'_>) {
    w.line_fmt(format_args!(
        ">>> Last update of WHOIS database: {} <<<",
        ctx.directory().updated()
    ));
}

fn opt(value: Option<&str>) -> &str {
    value.unwrap_or("")
}

/// An optional value shown as nothing when absent.
struct Maybe<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Maybe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => Ok(()),
        }
    }
}

/// The answer buffer. Directory text goes through its [`fmt::Write`], which neutralises control
/// characters (see the module docs); this module's constants (keys, fixed lines) are appended
/// as they are by [`Text::raw`]; line ends are written by [`Text::end`] only. Writing to a `Vec`
/// cannot fail, so the methods ignore `fmt::Result`.
struct Text<'a>(&'a mut Vec<u8>);

impl fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Fast path: no octet that can start a control character (C0, DEL, C1 as U+0080–U+009F
        // = C2 80–9F) or a line/paragraph separator (U+2028/9 = E2 80 A8/A9).
        if !s
            .bytes()
            .any(|b| b < 0x20 || b == 0x7f || b == 0xc2 || b == 0xe2)
        {
            self.0.extend_from_slice(s.as_bytes());
            return Ok(());
        }
        for c in s.chars() {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                self.0.push(b' ');
            } else {
                self.0
                    .extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
        }
        Ok(())
    }
}

impl Text<'_> {
    /// Appends trusted text (this module's constants) as is.
    fn raw(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    /// Appends untrusted text, control characters neutralised.
    fn value(&mut self, s: &str) {
        let _ = self.write_str(s);
    }

    /// Ends a line (RFC 3912: CRLF).
    fn end(&mut self) {
        self.raw("\r\n");
    }

    /// A constant line.
    fn line(&mut self, text: &str) {
        self.raw(text);
        self.end();
    }

    /// A formatted line, its arguments untrusted.
    fn line_fmt(&mut self, args: fmt::Arguments<'_>) {
        let _ = self.write_fmt(args);
        self.end();
    }

    /// `Key: value`.
    fn field(&mut self, key: &str, value: &str) {
        self.raw(key);
        self.raw(": ");
        self.value(value);
        self.end();
    }

    /// `Key: value`, for values that format themselves (dates, addresses, numbers).
    fn field_fmt(&mut self, key: &str, value: impl fmt::Display) {
        self.raw(key);
        self.raw(": ");
        let _ = write!(self, "{value}");
        self.end();
    }

    /// `Role Key: value` (`Tech Email: …`).
    fn role_field(&mut self, role: &str, key: &str, value: &str) {
        self.raw(role);
        self.raw(" ");
        self.field(key, value);
    }

    /// `Key: NAME.TLD`, the name in upper case as ICANN's format shows it.
    fn name(&mut self, key: &str, wire: &[u8]) {
        self.raw(key);
        self.raw(": ");
        let start = self.0.len();
        let _ = write_wire_name(wire, self);
        self.0[start..].make_ascii_uppercase();
        self.end();
    }

    fn status(&mut self, status: &str) {
        self.raw("Domain Status: ");
        self.raw(status);
        self.raw(" https://icann.org/epp#");
        self.raw(status);
        self.end();
    }

    fn error(&mut self, reason: fmt::Arguments<'_>) {
        self.raw("% Error: ");
        self.line_fmt(reason);
    }
}

#[cfg(test)]
mod tests {
    use orrery_proto::Change;

    use super::*;
    use crate::rds::directory::tests::{contact as sample_contact, sample};
    use crate::rds::{Directory, Protocol};
    use crate::served::Served;

    fn answer(dir: Directory, request: &str, query: (Query, &str), outcome: Outcome) -> String {
        let mut zones = Served::default();
        zones.directory = dir;
        let mut ev = RdsEvent::new();
        ev.reset("192.0.2.1".parse().unwrap(), Protocol::Whois);
        ev.request.extend_from_slice(request.as_bytes());
        ev.ask(query.0, query.1).unwrap();
        ev.outcome = outcome;
        let mut out = b"previous".to_vec();
        render(&ev, &RdsCtx { served: &zones }, &mut out);
        assert_eq!(&out[..8], b"previous", "render appends");
        let text = String::from_utf8(out.split_off(8)).unwrap();
        assert!(text.ends_with("\r\n"), "{text}");
        assert!(
            !text.replace("\r\n", "").contains(['\r', '\n']),
            "a bare CR or LF: {text:?}"
        );
        text
    }

    fn lines(text: &str) -> Vec<&str> {
        text.split("\r\n").collect()
    }

    #[test]
    fn domain_with_disclosed_and_redacted_contacts() {
        let text = answer(
            sample(),
            "foo.tld",
            (Query::Domain, "foo.tld"),
            Outcome::Found,
        );
        let lines = lines(&text);
        for want in [
            "Domain Name: FOO.TLD",
            "Registry Domain ID: D1-TEST",
            "Registrar WHOIS Server: ",
            "Updated Date: 1970-01-01T00:00:00Z",
            "Registrar: Example Registrar, Inc.",
            "Registrar IANA ID: 9999",
            "Domain Status: clientTransferProhibited https://icann.org/epp#clientTransferProhibited",
            "Domain Status: serverHold https://icann.org/epp#serverHold",
            "Registry Registrant ID: C1",
            "Registrant Name: Name of C1",
            "Registrant Organization: Example Org",
            "Registrant Street: 1 Main Street",
            "Registrant Street: Floor 2",
            "Registrant State/Province: ",
            "Registrant Postal Code: 75001",
            "Registrant Country: FR",
            "Registrant Phone: +33.112345678",
            "Registrant Email: c1@example.net",
            "Registry Tech ID: REDACTED FOR PRIVACY",
            "Tech Name: REDACTED FOR PRIVACY",
            "Tech Street: REDACTED FOR PRIVACY",
            "Tech Postal Code: REDACTED FOR PRIVACY",
            "Tech Phone: REDACTED FOR PRIVACY",
            "Tech State/Province: ",
            "Tech Country: FR",
            &format!("Tech Email: {REDACTED_EMAIL}"),
            "Name Server: NS1.FOO.TLD",
            "Name Server: NS.OTHER.EXAMPLE",
            "DNSSEC: signedDelegation",
            "URL of the ICANN Whois Inaccuracy Complaint Form: https://www.icann.org/wicf/",
            ">>> Last update of WHOIS database: 1970-01-01T00:00:00Z <<<",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in\n{text}");
        }
        // The order of the format: status lines before contacts, name servers after them.
        let at = |l: &str| lines.iter().position(|x| *x == l).unwrap();
        assert!(at("Domain Name: FOO.TLD") < at("Registry Domain ID: D1-TEST"));
        assert!(
            at("Registrant Email: c1@example.net") < at("Registry Tech ID: REDACTED FOR PRIVACY")
        );
        assert!(at("Registry Tech ID: REDACTED FOR PRIVACY") < at("Name Server: NS1.FOO.TLD"));
        // C2 is not disclosed: nothing of it shows, not even its handle. No admin: no block.
        for secret in ["Name of C2", "c2@example.net", "C2", "Admin "] {
            assert!(!text.contains(secret), "{secret:?} shows in\n{text}");
        }
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("Domain Status:"))
                .count(),
            2
        );
        assert!(text.contains("terms") || text.contains("lawful purposes"));
        // Every key line has its colon and a space.
        for l in lines.iter().take_while(|l| !l.is_empty()) {
            assert!(l.contains(": ") || l.starts_with(">>>"), "{l:?}");
        }
    }

    #[test]
    fn domain_without_sponsor_objects_or_statuses() {
        let mut dir = Directory::default();
        let mut d = crate::zone::tests::domain("bare.tld", "tld", &[]);
        d.statuses = vec![];
        d.registrar = "GONE".into();
        d.admin = Some("NOBODY".into());
        let mut evil = sample_contact("EVIL", true);
        evil.name = "Mallory\r\nRegistrant Email: forged@example.net\u{2028}x\u{85}y".into();
        evil.street = vec![];
        d.registrant = Some("EVIL".into());
        dir.apply(&Change::Contact(evil));
        dir.apply(&Change::Domain(d));
        let text = answer(dir, "bare.tld", (Query::Domain, "bare.tld"), Outcome::Found);
        let lines = lines(&text);
        for want in [
            "Domain Status: ok https://icann.org/epp#ok",
            "Registrar: GONE",
            "Registrar IANA ID: ",
            "Registrant Name: Mallory  Registrant Email: forged@example.net x y",
            "Registrant Street: ",
            "Registry Admin ID: REDACTED FOR PRIVACY",
            "Admin Country: REDACTED FOR PRIVACY",
            "Name Server: ",
            "DNSSEC: unsigned",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("NOBODY"));
    }

    #[test]
    fn nameserver_registrar_and_help() {
        let text = answer(
            sample(),
            "nameserver ns1.foo.tld",
            (Query::Nameserver, "ns1.foo.tld"),
            Outcome::Found,
        );
        let l = lines(&text);
        assert_eq!(
            &l[..5],
            [
                "Server Name: NS1.FOO.TLD",
                "IP Address: 192.0.2.1",
                "IP Address: 2001:db8::1",
                "Registrar: ",
                "Registrar WHOIS Server: ",
            ]
        );
        assert!(l.contains(&">>> Last update of WHOIS database: 1970-01-01T00:00:00Z <<<"));

        let mut dir = sample();
        let mut r = Registrar::new("R1", "Example Registrar, Inc.");
        r.iana_id = Some(9999);
        r.url = Some("https://registrar.example".into());
        r.abuse_email = Some("abuse@registrar.example".into());
        dir.apply(&Change::Registrar(r));
        let text = answer(
            dir,
            "registrar example registrar, inc.",
            (Query::Registrar, "example registrar, inc."),
            Outcome::Found,
        );
        let l = lines(&text);
        for want in [
            "Registrar: Example Registrar, Inc.",
            "Registrar IANA ID: 9999",
            "Registrar URL: https://registrar.example",
            "Registrar Abuse Contact Email: abuse@registrar.example",
            "Phone Number: ",
        ] {
            assert!(l.contains(&want), "missing {want:?} in\n{text}");
        }

        let text = answer(sample(), "help", (Query::Help, ""), Outcome::Found);
        assert!(text.contains("nameserver NAME"), "{text}");
        assert!(text.contains("registrar NAME"), "{text}");

        // RDAP's entity query, should a Whois edge ever see one: redaction still applies.
        let text = answer(sample(), "", (Query::Entity, "C2"), Outcome::Found);
        assert!(
            text.contains("Contact Name: REDACTED FOR PRIVACY"),
            "{text}"
        );
        assert!(!text.contains("Name of C2"), "{text}");
    }

    #[test]
    fn not_found_and_errors() {
        let text = answer(
            sample(),
            "  NOPE.tld \t",
            (Query::Domain, "nope.tld"),
            Outcome::NotFound,
        );
        assert_eq!(
            text,
            "No match for \"NOPE.tld\".\r\n\
             >>> Last update of WHOIS database: 1970-01-01T00:00:00Z <<<\r\n"
        );
        let text = answer(
            sample(),
            "a\u{1b}[2Jb",
            (Query::None, ""),
            Outcome::NotFound,
        );
        assert!(text.starts_with("No match.\r\n"), "{text}");
        // Found, but not in this version (cannot happen; still no panic).
        let text = answer(sample(), "x.tld", (Query::Domain, "x.tld"), Outcome::Found);
        assert!(
            text.starts_with("No match for \"x.tld\".\r\n>>> Last update"),
            "{text}"
        );

        let error = |outcome, query| answer(sample(), "q", query, outcome);
        assert_eq!(
            error(
                Outcome::BadRequest("the query is not UTF-8"),
                (Query::None, "")
            ),
            "% Error: the query is not UTF-8\r\n"
        );
        for (after, secs) in [(1200, 2), (0, 1), (3000, 3)] {
            assert_eq!(
                error(
                    Outcome::RateLimited {
                        retry_after: Duration::from_millis(after)
                    },
                    (Query::None, "")
                ),
                format!("% Error: rate limit exceeded; try again in {secs} seconds\r\n")
            );
        }
        assert_eq!(
            error(Outcome::Refused, (Query::None, "")),
            "% Error: access refused\r\n"
        );
        for (outcome, query) in [
            (Outcome::ServerError, (Query::None, "")),
            (Outcome::Pending, (Query::None, "")),
            (Outcome::Found, (Query::None, "")),
        ] {
            assert_eq!(error(outcome, query), "% Error: internal server error\r\n");
        }
    }
}
