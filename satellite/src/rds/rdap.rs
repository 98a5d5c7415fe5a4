//! RDAP responses (RFC 9083): the JSON rendering of a request's [`Outcome`], for the HTTP edge
//! ([`super::rdap_server`]).
//!
//! The leaves have decided; this module reads the object the query names from the same
//! directory version the lookup saw, and writes it:
//! - `Found`: a domain (§5.3), a nameserver (§5.2), an entity (§5.1: a contact or a
//!   registrar) or the help response (§7), status 200;
//! - every other outcome: an error response (§6) with its HTTP status (404, 400, 429 with
//!   `Retry-After`, 403, 500), returned in [`Status`] for the edge.
//!
//! Profiles followed: ICANN's gTLD RDAP Response Profile and Technical Implementation Guide
//! (the Terms of Use, Status Codes and Inaccuracy Complaint Form notices, the `last update of
//! RDAP database` event, the registrar's IANA ID and abuse contact), RFC 8056 for the status
//! values, RFC 7095 jCard for contacts, and RFC 9537 for redaction: a contact that did not
//! agree to publication ([`ContactRecord::disclose`] false) keeps its entity and role, its name
//! becomes an empty `fn`, its other personal members are removed (the registry ID included),
//! and the response's `redacted` array names each redaction with its JSONPath and method.

use std::net::IpAddr;

use orrery_proto::{EppStatus, Name, Registrar, Timestamp};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use super::directory::{ContactRecord, DomainView, HostView, Role, StatusSet};
use super::{Directory, Outcome, Query, RdsCtx, RdsEvent};

/// The RDAP media type (RFC 7480 §4.2).
pub const MEDIA_TYPE: &str = "application/rdap+json";

/// `rdapConformance` of every response: the specifications and extensions this server
/// implements (RFC 9083 §4.1, RFC 9537 §3 for `redacted`).
pub const CONFORMANCE: [&str; 4] = [
    "rdap_level_0",
    "icann_rdap_response_profile_1",
    "icann_rdap_technical_implementation_guide_1",
    "redacted",
];

const SERVER_ERROR: &str = "The server could not answer this request.";

/// What the edge sends besides the body: the HTTP status code and, for 429, the `Retry-After`
/// seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: u16,
    pub retry_after: Option<u64>,
}

impl Status {
    const fn code(code: u16) -> Self {
        Self {
            code,
            retry_after: None,
        }
    }
}

/// Renders the outcome of `ev` as an RDAP response into `out` (appended), with links under
/// `base_url` (which ends with `/`, e.g. `https://rdap.nic.example/`).
pub fn render(ev: &RdsEvent, ctx: &RdsCtx<'_>, base_url: &str, out: &mut Vec<u8>) -> Status {
    let (status, body) = match ev.outcome {
        Outcome::Found => {
            let mut renderer = Render {
                dir: ctx.directory(),
                base: base_url,
                redacted: Vec::new(),
            };
            match renderer.found(&ev.query) {
                Ok(body) => (Status::code(200), body),
                Err(404) => error(Status::code(404), base_url, not_found(&ev.query)),
                Err(code) => error(Status::code(code), base_url, SERVER_ERROR.to_owned()),
            }
        }
        Outcome::NotFound => error(Status::code(404), base_url, not_found(&ev.query)),
        Outcome::BadRequest(reason) => error(Status::code(400), base_url, reason.to_owned()),
        Outcome::RateLimited { retry_after } => {
            // Whole seconds for Retry-After (RFC 9110 §10.2.3), rounded up, at least one.
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            let secs = secs.max(1);
            let status = Status {
                code: 429,
                retry_after: Some(secs),
            };
            let text = format!("Too many requests; try again in {secs} s.");
            error(status, base_url, text)
        }
        Outcome::Refused => error(
            Status::code(403),
            base_url,
            "This server does not answer this client.".to_owned(),
        ),
        Outcome::ServerError | Outcome::Pending => {
            error(Status::code(500), base_url, SERVER_ERROR.to_owned())
        }
    };
    write(&body, out);
    status
}

/// Renders an error response (RFC 9083 §6) that did not go through the chain, such as the
/// edge's 405 for a method other than GET and HEAD.
pub fn render_error(code: u16, description: &str, base_url: &str, out: &mut Vec<u8>) -> Status {
    let (status, body) = error(Status::code(code), base_url, description.to_owned());
    write(&body, out);
    status
}

fn write(body: &Value, out: &mut Vec<u8>) {
    // Writing a Value (string keys only) to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, body);
}

/// The RDAP status value of an EPP status (RFC 8056 §2).
pub fn rdap_status(status: EppStatus) -> &'static str {
    use EppStatus::*;
    match status {
        Ok => "active",
        Inactive => "inactive",
        ClientHold => "client hold",
        ServerHold => "server hold",
        ClientDeleteProhibited => "client delete prohibited",
        ServerDeleteProhibited => "server delete prohibited",
        ClientRenewProhibited => "client renew prohibited",
        ServerRenewProhibited => "server renew prohibited",
        ClientTransferProhibited => "client transfer prohibited",
        ServerTransferProhibited => "server transfer prohibited",
        ClientUpdateProhibited => "client update prohibited",
        ServerUpdateProhibited => "server update prohibited",
        PendingCreate => "pending create",
        PendingDelete => "pending delete",
        PendingRenew => "pending renew",
        PendingTransfer => "pending transfer",
        PendingUpdate => "pending update",
        AddPeriod => "add period",
        AutoRenewPeriod => "auto renew period",
        RenewPeriod => "renew period",
        TransferPeriod => "transfer period",
        RedemptionPeriod => "redemption period",
        PendingRestore => "pending restore",
    }
}

/// The `status` member of a domain: no EPP status means `ok` (RFC 5731 §2.3), i.e. `active`.
fn statuses(set: StatusSet) -> Value {
    if set.is_empty() {
        return json!(["active"]);
    }
    set.iter().map(|s| Value::from(rdap_status(s))).collect()
}

fn not_found(query: &Query) -> String {
    let what = match query {
        Query::Domain(_) => "domain",
        Query::Nameserver(_) => "nameserver",
        Query::Entity(_) | Query::Registrar(_) => "entity",
        Query::None | Query::Help => "object",
    };
    format!("No such {what} in this registry.")
}

/// An error response (RFC 9083 §6) with the Terms of Use notice.
fn error(status: Status, base: &str, description: String) -> (Status, Value) {
    let title = match status.code {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        _ => "Internal Server Error",
    };
    let mut body = Map::new();
    body.insert("errorCode".into(), status.code.into());
    body.insert("title".into(), title.into());
    body.insert("description".into(), json!([description]));
    let help = format!("{base}help");
    (
        status,
        top_level(body, vec![terms_notice(&help)], Vec::new()),
    )
}

/// Adds the members every response has (RFC 9083 §4.1, §4.3) to a top-level object.
fn top_level(mut obj: Map<String, Value>, notices: Vec<Value>, redacted: Vec<Value>) -> Value {
    obj.insert("rdapConformance".into(), json!(CONFORMANCE));
    obj.insert("notices".into(), Value::Array(notices));
    if !redacted.is_empty() {
        obj.insert("redacted".into(), Value::Array(redacted));
    }
    Value::Object(obj)
}

/// The Terms of Use notice (ICANN Response Profile): it links to the help response.
fn terms_notice(context: &str) -> Value {
    json!({
        "title": "Terms of Use",
        "description": [
            "Registration data is provided for lawful purposes only; by querying this service \
             you agree to the registry's Terms of Use."
        ],
        "links": [link(context, "terms-of-service", context, MEDIA_TYPE)],
    })
}

/// The domain notices of the ICANN Response Profile: status codes and the inaccuracy form.
fn domain_notices(context: &str) -> [Value; 2] {
    [
        json!({
            "title": "Status Codes",
            "description": [
                "For more information on domain status codes, please visit https://icann.org/epp"
            ],
            "links": [link(context, "glossary", "https://icann.org/epp", "text/html")],
        }),
        json!({
            "title": "RDDS Inaccuracy Complaint Form",
            "description": ["URL of the ICANN RDDS Inaccuracy Complaint Form: https://icann.org/wicf"],
            "links": [link(context, "help", "https://icann.org/wicf", "text/html")],
        }),
    ]
}

/// A link object (RFC 9083 §4.2; RFC 8288 for `value`, the context URI).
fn link(value: &str, rel: &str, href: &str, media_type: &str) -> Value {
    json!({"value": value, "rel": rel, "href": href, "type": media_type})
}

fn self_link(href: &str) -> Value {
    json!([link(href, "self", href, MEDIA_TYPE)])
}

/// An event (RFC 9083 §4.5), dated in RFC 3339 UTC.
fn event(action: &str, at: Timestamp) -> Value {
    json!({"eventAction": action, "eventDate": at.to_string()})
}

/// Characters escaped in a handle put into a URL path segment (RFC 3986 §3.3: unreserved
/// characters stay).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A canonical wire name as text: lower-case A-labels, no final dot.
fn text_name(wire: &[u8]) -> String {
    Name::from_canonical_wire(wire)
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// The U-label form of a name with an A-label (`xn--…`), for `unicodeName`.
fn unicode_name(ldh: &str) -> Option<String> {
    if !ldh.split('.').any(|label| label.starts_with("xn--")) {
        return None;
    }
    match idna::domain_to_unicode(ldh) {
        (unicode, Ok(())) if unicode != ldh => Some(unicode),
        _ => None,
    }
}

/// `ipAddresses` of a nameserver (RFC 9083 §5.2), `None` without addresses.
fn ip_addresses(addresses: &[IpAddr]) -> Option<Value> {
    if addresses.is_empty() {
        return None;
    }
    let of = |v6: bool| -> Vec<Value> {
        addresses
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .map(|a| a.to_string().into())
            .collect()
    };
    let mut ips = Map::new();
    for (key, list) in [("v4", of(false)), ("v6", of(true))] {
        if !list.is_empty() {
            ips.insert(key.into(), Value::Array(list));
        }
    }
    Some(Value::Object(ips))
}

/// A jCard property (RFC 7095 §3.3): `[name, parameters, type, value]`.
fn property(name: &str, parameters: Value, kind: &str, value: Value) -> Value {
    json!([name, parameters, kind, value])
}

fn text(name: &str, value: &str) -> Value {
    property(name, json!({}), "text", value.into())
}

fn tel(kind: &str, number: &str) -> Value {
    property(
        "tel",
        json!({"type": kind}),
        "uri",
        format!("tel:{number}").into(),
    )
}

fn vcard(properties: Vec<Value>) -> Value {
    let mut all = vec![text("version", "4.0")];
    all.extend(properties);
    json!(["vcard", all])
}

/// Where a contact appears: as one of a domain's entities (by role) or as the object of an
/// `/entity/` query.
#[derive(Clone, Copy)]
enum Placement {
    Role(Role),
    TopLevel,
}

impl Placement {
    /// The JSONPath of the entity object (RFC 9537 §4.2, `pathLang` `jsonpath`).
    fn path(self) -> String {
        match self {
            Self::Role(role) => format!("$.entities[?(@.roles[0]=='{}')]", role_name(role)),
            Self::TopLevel => "$".to_owned(),
        }
    }

    /// The redacted member's `name`: the registered ICANN names (`Registrant Name`,
    /// `Registry Tech ID`…) for a domain's contacts, a description for a lone contact.
    fn name(self, field: &str) -> Value {
        let prefix = match self {
            Self::Role(Role::Registrant) => "Registrant",
            Self::Role(Role::Admin) => "Admin",
            Self::Role(Role::Tech) => "Tech",
            Self::Role(Role::Billing) => "Billing",
            Self::TopLevel => return json!({"description": format!("Contact {field}")}),
        };
        if field == "ID" {
            json!({"type": format!("Registry {prefix} ID")})
        } else {
            json!({"type": format!("{prefix} {field}")})
        }
    }
}

/// The RDAP role of a domain contact (RFC 9083 §10.2.4).
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Registrant => "registrant",
        Role::Admin => "administrative",
        Role::Tech => "technical",
        Role::Billing => "billing",
    }
}

/// One response being rendered.
struct Render<'a> {
    dir: &'a Directory,
    base: &'a str,
    /// RFC 9537 `redacted` entries gathered while rendering.
    redacted: Vec<Value>,
}

impl Render<'_> {
    /// The response to a query the lookup found; `Err(status)` when it cannot be rendered.
    fn found(&mut self, query: &Query) -> Result<Value, u16> {
        let help = format!("{}help", self.base);
        let updated = event("last update of RDAP database", self.dir.updated());
        let (mut obj, notices) = match query {
            Query::Domain(name) => {
                let d = self.dir.domain(name.as_wire()).ok_or(404u16)?;
                let obj = self.domain(d);
                let href = self_href(&obj);
                let mut notices = vec![terms_notice(&help)];
                notices.extend(domain_notices(&href));
                (obj, notices)
            }
            Query::Nameserver(name) => {
                let h = self.dir.host(name.as_wire()).ok_or(404u16)?;
                (self.nameserver(h), vec![terms_notice(&help)])
            }
            Query::Entity(handle) => {
                let obj = if let Some(c) = self.dir.contact(handle) {
                    self.contact(Placement::TopLevel, c.handle(), Some(c))
                } else {
                    let r = self.dir.registrar(handle).ok_or(404u16)?;
                    self.registrar(&r.handle, Some(r))
                };
                (obj, vec![terms_notice(&help)])
            }
            Query::Registrar(name) => {
                let r = self.dir.registrar_by_name(name).ok_or(404u16)?;
                (
                    self.registrar(&r.handle, Some(r)),
                    vec![terms_notice(&help)],
                )
            }
            Query::Help => {
                let notices = vec![
                    terms_notice(&help),
                    json!({
                        "title": "Help",
                        "description": [
                            "This server answers RDAP lookups (RFC 9082):",
                            "domain/NAME: a domain registered in this registry (A-labels or U-labels);",
                            "nameserver/NAME: a nameserver host object;",
                            "entity/HANDLE: a contact or a registrar;",
                            "help: this text.",
                        ],
                        "links": [link(&help, "self", &help, MEDIA_TYPE)],
                    }),
                ];
                return Ok(top_level(Map::new(), notices, Vec::new()));
            }
            Query::None => return Err(500),
        };
        // The object's own events come first; the database update closes them (ICANN TIG).
        match obj.get_mut("events") {
            Some(Value::Array(events)) => events.push(updated),
            _ => {
                obj.insert("events".into(), json!([updated]));
            }
        }
        let redacted = std::mem::take(&mut self.redacted);
        Ok(top_level(obj, notices, redacted))
    }

    /// A domain object (RFC 9083 §5.3).
    fn domain(&mut self, d: DomainView<'_>) -> Map<String, Value> {
        let ldh = text_name(d.name());
        let href = format!("{}domain/{ldh}", self.base);
        let mut obj = Map::new();
        obj.insert("objectClassName".into(), "domain".into());
        obj.insert("handle".into(), d.roid().into());
        if let Some(unicode) = unicode_name(&ldh) {
            obj.insert("unicodeName".into(), unicode.into());
        }
        obj.insert("ldhName".into(), ldh.into());
        obj.insert("links".into(), self_link(&href));
        obj.insert("status".into(), statuses(d.statuses()));
        obj.insert(
            "events".into(),
            json!([
                event("registration", d.created()),
                event("expiration", d.expires()),
                event("last changed", d.updated()),
            ]),
        );
        let nameservers: Vec<Value> = d.nameservers().map(|ns| self.nameserver_ref(ns)).collect();
        obj.insert("nameservers".into(), Value::Array(nameservers));
        let ds: Vec<Value> = d
            .ds()
            .iter()
            .map(|ds| {
                let digest: String = ds.digest.iter().map(|b| format!("{b:02X}")).collect();
                json!({
                    "keyTag": ds.key_tag,
                    "algorithm": ds.algorithm,
                    "digestType": ds.digest_type,
                    "digest": digest,
                })
            })
            .collect();
        let mut secure = Map::new();
        secure.insert("delegationSigned".into(), (!ds.is_empty()).into());
        if !ds.is_empty() {
            secure.insert("dsData".into(), Value::Array(ds));
        }
        obj.insert("secureDNS".into(), Value::Object(secure));
        let mut entities = Vec::new();
        if let Some(r) = d.registrar() {
            entities.push(Value::Object(self.registrar(r.handle, r.object)));
        }
        for role in Role::ALL {
            if let Some(c) = d.contact(role) {
                let entity = self.contact(Placement::Role(role), c.handle, c.object);
                entities.push(Value::Object(entity));
            }
        }
        obj.insert("entities".into(), Value::Array(entities));
        obj
    }

    /// A domain's nameserver: its name, and its addresses when the host object exists.
    fn nameserver_ref(&self, wire: &[u8]) -> Value {
        let ldh = text_name(wire);
        let mut ns = Map::new();
        ns.insert("objectClassName".into(), "nameserver".into());
        if let Some(unicode) = unicode_name(&ldh) {
            ns.insert("unicodeName".into(), unicode.into());
        }
        if let Some(host) = self.dir.host(wire) {
            if let Some(ips) = ip_addresses(host.addresses()) {
                ns.insert("ipAddresses".into(), ips);
            }
            // Only a host object can be looked up: no link to a name the server does not know.
            let href = format!("{}nameserver/{ldh}", self.base);
            ns.insert("links".into(), self_link(&href));
        }
        ns.insert("ldhName".into(), ldh.into());
        Value::Object(ns)
    }

    /// A nameserver object (RFC 9083 §5.2).
    fn nameserver(&mut self, h: HostView<'_>) -> Map<String, Value> {
        let ldh = text_name(h.name());
        let href = format!("{}nameserver/{ldh}", self.base);
        let mut obj = Map::new();
        obj.insert("objectClassName".into(), "nameserver".into());
        if let Some(unicode) = unicode_name(&ldh) {
            obj.insert("unicodeName".into(), unicode.into());
        }
        obj.insert("ldhName".into(), ldh.into());
        if let Some(ips) = ip_addresses(h.addresses()) {
            obj.insert("ipAddresses".into(), ips);
        }
        obj.insert("status".into(), json!(["active"]));
        obj.insert("links".into(), self_link(&href));
        obj.insert(
            "events".into(),
            json!([
                event("registration", h.created()),
                event("last changed", h.updated()),
            ]),
        );
        if let Some(r) = h.registrar() {
            let entity = self.registrar(r.handle, r.object);
            obj.insert("entities".into(), json!([entity]));
        }
        obj
    }

    /// A registrar entity: handle, name, IANA ID, its abuse contact (ICANN Response Profile).
    fn registrar(&self, handle: &str, r: Option<&Registrar>) -> Map<String, Value> {
        let mut obj = Map::new();
        obj.insert("objectClassName".into(), "entity".into());
        obj.insert("handle".into(), handle.into());
        obj.insert("roles".into(), json!(["registrar"]));
        let Some(r) = r else {
            return obj;
        };
        let mut card = vec![text("fn", &r.name)];
        if let Some(phone) = &r.phone {
            card.push(tel("voice", phone));
        }
        if let Some(email) = &r.email {
            card.push(text("email", email));
        }
        if let Some(url) = &r.url {
            card.push(property("url", json!({}), "uri", url.as_str().into()));
        }
        obj.insert("vcardArray".into(), vcard(card));
        if let Some(id) = r.iana_id {
            obj.insert(
                "publicIds".into(),
                json!([{"type": "IANA Registrar ID", "identifier": id.to_string()}]),
            );
        }
        let href = format!(
            "{}entity/{}",
            self.base,
            utf8_percent_encode(handle, SEGMENT)
        );
        let mut links = vec![link(&href, "self", &href, MEDIA_TYPE)];
        if let Some(url) = &r.url {
            links.push(link(&href, "about", url, "text/html"));
        }
        obj.insert("links".into(), Value::Array(links));
        if r.abuse_email.is_some() || r.abuse_phone.is_some() {
            let mut card = vec![text("fn", "Abuse contact")];
            if let Some(phone) = &r.abuse_phone {
                card.push(tel("voice", phone));
            }
            if let Some(email) = &r.abuse_email {
                card.push(text("email", email));
            }
            obj.insert(
                "entities".into(),
                json!([{
                    "objectClassName": "entity",
                    "roles": ["abuse"],
                    "vcardArray": vcard(card),
                }]),
            );
        }
        obj
    }

    /// A contact entity, redacted (RFC 9537) unless the contact agreed to publication.
    fn contact(
        &mut self,
        at: Placement,
        handle: &str,
        c: Option<&ContactRecord>,
    ) -> Map<String, Value> {
        let mut obj = Map::new();
        obj.insert("objectClassName".into(), "entity".into());
        if let Placement::Role(role) = at {
            obj.insert("roles".into(), json!([role_name(role)]));
        }
        // A contact a domain still names but that is gone: whether it may be shown is
        // unknown, so nothing of it is (not even its handle).
        let Some(c) = c else {
            return obj;
        };
        // The handle is the registry's ID of the contact: redacted in a domain unless
        // disclosed, but kept when the client asked for the contact by it.
        let by_handle = matches!(at, Placement::TopLevel);
        if c.disclose() || by_handle {
            obj.insert("handle".into(), handle.into());
            let href = format!(
                "{}entity/{}",
                self.base,
                utf8_percent_encode(handle, SEGMENT)
            );
            obj.insert("links".into(), self_link(&href));
        }
        if c.disclose() {
            obj.insert("vcardArray".into(), vcard(contact_card(c)));
        } else {
            self.redact_contact(at, c, &mut obj);
        }
        if by_handle {
            obj.insert(
                "events".into(),
                json!([
                    event("registration", c.created()),
                    event("last changed", c.updated()),
                ]),
            );
        }
        obj
    }

    /// The redacted form of a contact: the role, an empty name, the province and country;
    /// each redaction recorded as RFC 9537 §4.2 describes (`emptyValue` with the path in this
    /// response, `removal` with the path the member would have had).
    fn redact_contact(&mut self, at: Placement, c: &ContactRecord, obj: &mut Map<String, Value>) {
        let entity = at.path();
        let card_path = |filter: &str| format!("{entity}.vcardArray[1][?({filter})]");
        let mut redact = |field: &str, method: &str, path: String| {
            let key = if method == "removal" {
                "prePath"
            } else {
                "postPath"
            };
            self.redacted.push(json!({
                "name": at.name(field),
                key: path,
                "pathLang": "jsonpath",
                "method": method,
                "reason": {"description": "Server policy"},
            }));
        };
        if let Placement::Role(_) = at {
            redact("ID", "removal", format!("{entity}.handle"));
        }
        redact(
            "Name",
            "emptyValue",
            format!("{}[3]", card_path("@[0]=='fn'")),
        );
        if c.organisation().is_some() {
            redact("Organization", "removal", card_path("@[0]=='org'"));
        }
        let adr = card_path("@[0]=='adr'");
        if c.street().len() != 0 {
            redact("Street", "emptyValue", format!("{adr}[3][:3]"));
        }
        if !c.city().is_empty() {
            redact("City", "emptyValue", format!("{adr}[3][3]"));
        }
        if c.postcode().is_some() {
            redact("Postal Code", "emptyValue", format!("{adr}[3][5]"));
        }
        if c.voice().is_some() {
            redact("Phone", "removal", card_path("@[1].type=='voice'"));
        }
        if c.fax().is_some() {
            redact("Fax", "removal", card_path("@[1].type=='fax'"));
        }
        redact("Email", "removal", card_path("@[0]=='email'"));
        let card = vec![
            text("fn", ""),
            address(&[], "", c.province().unwrap_or(""), "", c.country()),
        ];
        obj.insert("vcardArray".into(), vcard(card));
    }
}

/// The jCard of a disclosed contact.
fn contact_card(c: &ContactRecord) -> Vec<Value> {
    let mut card = vec![text("fn", c.name())];
    if let Some(org) = c.organisation() {
        card.push(text("org", org));
    }
    let street: Vec<&str> = c.street().collect();
    card.push(address(
        &street,
        c.city(),
        c.province().unwrap_or(""),
        c.postcode().unwrap_or(""),
        c.country(),
    ));
    if let Some(voice) = c.voice() {
        card.push(tel("voice", voice));
    }
    if let Some(fax) = c.fax() {
        card.push(tel("fax", fax));
    }
    card.push(text("email", c.email()));
    card
}

/// The `adr` property (RFC 7095 §3.3.1.3): post office box, extended address, street (an
/// array when several lines), locality, region, postal code, country; the ISO 3166 code in
/// the `cc` parameter (RFC 8605) and as the country.
fn address(street: &[&str], city: &str, province: &str, postcode: &str, country: &str) -> Value {
    let street = match street {
        [] => Value::from(""),
        [one] => Value::from(*one),
        lines => json!(lines),
    };
    property(
        "adr",
        json!({"cc": country}),
        "text",
        json!(["", "", street, city, province, postcode, country]),
    )
}

/// The `self` link's href of a rendered object.
fn self_href(obj: &Map<String, Value>) -> String {
    obj.get("links")
        .and_then(|l| l.get(0))
        .and_then(|l| l.get("href"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use orrery_proto::Change;

    use super::*;
    use crate::rds::directory::tests::sample;
    use crate::rds::{Protocol, RdsCtx};
    use crate::zone::ZoneSet;
    use crate::zone::tests::{domain, n};

    const BASE: &str = "https://rdap.example/";

    /// Checks the RFC 9083 structure of a response: `rdapConformance`, notices, and in every
    /// nested object the members' JSON types (links, events, entities, vCards, status).
    /// `class` is the top-level `objectClassName`, `None` for help and errors.
    pub(crate) fn check_rdap_structure(v: &Value, class: Option<&str>) {
        let conformance = v["rdapConformance"]
            .as_array()
            .expect("rdapConformance array");
        assert!(conformance.iter().all(Value::is_string), "{conformance:?}");
        assert!(conformance.contains(&json!("rdap_level_0")));
        for notice in v["notices"].as_array().expect("notices array") {
            assert!(notice["title"].is_string(), "{notice}");
            let description = notice["description"].as_array().expect("description array");
            assert!(description.iter().all(Value::is_string), "{notice}");
        }
        match class {
            Some(class) => {
                assert_eq!(v["objectClassName"], class, "{v}");
                let links = v["links"].as_array().expect("links array");
                assert!(links.iter().any(|l| l["rel"] == "self"), "{v}");
                let events = v["events"].as_array().expect("events array");
                assert!(
                    events
                        .iter()
                        .any(|e| e["eventAction"] == "last update of RDAP database"),
                    "{v}"
                );
            }
            None => assert!(v.get("objectClassName").is_none(), "{v}"),
        }
        if let Some(code) = v.get("errorCode") {
            assert!(code.is_u64(), "{v}");
            assert!(v["title"].is_string(), "{v}");
            assert!(
                v["description"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(Value::is_string)
            );
        }
        if let Some(redacted) = v.get("redacted") {
            for r in redacted.as_array().expect("redacted array") {
                assert!(r["name"]["type"].is_string() || r["name"]["description"].is_string());
                assert_eq!(r["pathLang"], "jsonpath");
                let method = r["method"].as_str().unwrap();
                let path = if method == "removal" {
                    "prePath"
                } else {
                    "postPath"
                };
                assert!(r[path].as_str().unwrap().starts_with('$'), "{r}");
            }
        }
        check_members(v, true);
    }

    /// The member types of one object and of the objects inside it.
    fn check_members(v: &Value, top: bool) {
        let Some(obj) = v.as_object() else {
            return;
        };
        if let Some(links) = obj.get("links") {
            for l in links.as_array().expect("links array") {
                assert!(
                    l["href"].as_str().is_some_and(|h| h.starts_with("http")),
                    "{l}"
                );
                assert!(l["rel"].is_string() && l["value"].is_string(), "{l}");
            }
        }
        if let Some(events) = obj.get("events") {
            for e in events.as_array().expect("events array") {
                assert!(e["eventAction"].is_string(), "{e}");
                let date = e["eventDate"].as_str().expect("eventDate string");
                Timestamp::parse(date).expect("eventDate in RFC 3339");
                assert!(date.ends_with('Z'), "{date}");
            }
        }
        if let Some(status) = obj.get("status") {
            assert!(
                status
                    .as_array()
                    .expect("status array")
                    .iter()
                    .all(Value::is_string)
            );
        }
        if let Some(entities) = obj.get("entities") {
            for e in entities.as_array().expect("entities array") {
                assert_eq!(e["objectClassName"], "entity", "{e}");
                let roles = e["roles"].as_array().expect("nested entity roles");
                assert!(
                    !roles.is_empty() && roles.iter().all(Value::is_string),
                    "{e}"
                );
            }
        }
        if let Some(card) = obj.get("vcardArray") {
            check_vcard(card);
        }
        if let Some(ns) = obj.get("nameservers") {
            for ns in ns.as_array().expect("nameservers array") {
                assert_eq!(ns["objectClassName"], "nameserver");
                assert!(ns["ldhName"].is_string());
            }
        }
        if !top {
            assert!(obj.get("rdapConformance").is_none(), "{v}");
        }
        for (key, member) in obj {
            let nested: Vec<&Value> = match member {
                Value::Array(items) => items.iter().collect(),
                Value::Object(_) => vec![member],
                _ => continue,
            };
            if key == "vcardArray" {
                continue;
            }
            for item in nested {
                check_members(item, false);
            }
        }
    }

    /// `["vcard", [[name, {params}, type, value], …]]` with `version` 4.0 first.
    fn check_vcard(card: &Value) {
        let card = card.as_array().expect("vcardArray array");
        assert_eq!(card.len(), 2);
        assert_eq!(card[0], "vcard");
        let props = card[1].as_array().expect("vcard properties");
        assert_eq!(props[0], json!(["version", {}, "text", "4.0"]));
        for p in props {
            let p = p.as_array().expect("property array");
            assert_eq!(p.len(), 4, "{p:?}");
            assert!(
                p[0].is_string() && p[1].is_object() && p[2].is_string(),
                "{p:?}"
            );
        }
        assert!(props.iter().any(|p| p[0] == "fn"), "fn is required");
    }

    pub(crate) fn zones() -> ZoneSet {
        // The zones are private to their module: start from an empty set.
        let mut zones = ZoneSet::default();
        zones.directory = sample();
        zones
    }

    fn render_with(zones: &ZoneSet, query: Query, outcome: Outcome) -> (Status, Value, String) {
        let mut ev = RdsEvent::new();
        ev.reset("192.0.2.1".parse().unwrap(), Protocol::Rdap);
        ev.query = query;
        ev.outcome = outcome;
        let mut out = Vec::new();
        let status = render(&ev, &RdsCtx { zones }, BASE, &mut out);
        let text = String::from_utf8(out).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        (status, v, text)
    }

    fn found(query: Query) -> (Status, Value, String) {
        render_with(&zones(), query, Outcome::Found)
    }

    fn entity<'v>(v: &'v Value, role: &str) -> &'v Value {
        v["entities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["roles"][0] == role)
            .unwrap_or_else(|| panic!("no {role} entity in {v}"))
    }

    fn card_property<'v>(entity: &'v Value, name: &str) -> Option<&'v Value> {
        entity["vcardArray"][1]
            .as_array()?
            .iter()
            .find(|p| p[0] == name)
            .map(|p| &p[3])
    }

    #[test]
    fn domain_has_the_rfc9083_and_icann_members() {
        let (status, v, _) = found(Query::Domain(n("foo.tld")));
        assert_eq!(status, Status::code(200));
        check_rdap_structure(&v, Some("domain"));
        assert_eq!(v["ldhName"], "foo.tld");
        assert_eq!(v["handle"], "D1-TEST");
        assert!(v.get("unicodeName").is_none());
        assert_eq!(v["links"][0]["href"], "https://rdap.example/domain/foo.tld");
        assert_eq!(v["links"][0]["type"], MEDIA_TYPE);
        assert_eq!(
            v["status"],
            json!(["server hold", "client transfer prohibited"])
        );
        let actions: Vec<&str> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["eventAction"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "registration",
                "expiration",
                "last changed",
                "last update of RDAP database"
            ]
        );
        // Nameservers: the host object's addresses; a name only for the one without.
        let ns = v["nameservers"].as_array().unwrap();
        assert_eq!(ns.len(), 2);
        assert_eq!(ns[0]["ldhName"], "ns1.foo.tld");
        assert_eq!(
            ns[0]["ipAddresses"],
            json!({"v4": ["192.0.2.1"], "v6": ["2001:db8::1"]})
        );
        assert_eq!(ns[1]["ldhName"], "ns.other.example");
        assert!(ns[1].get("ipAddresses").is_none() && ns[1].get("links").is_none());
        // DNSSEC.
        assert_eq!(v["secureDNS"]["delegationSigned"], true);
        assert_eq!(
            v["secureDNS"]["dsData"],
            json!([{"keyTag": 7, "algorithm": 13, "digestType": 2, "digest": "AB".repeat(32)}])
        );
        // The registrar, with its IANA ID.
        let registrar = entity(&v, "registrar");
        assert_eq!(registrar["handle"], "R1");
        assert_eq!(
            registrar["publicIds"],
            json!([{"type": "IANA Registrar ID", "identifier": "9999"}])
        );
        assert_eq!(
            card_property(registrar, "fn"),
            Some(&json!("Example Registrar, Inc."))
        );
        // The disclosed registrant in full.
        let registrant = entity(&v, "registrant");
        assert_eq!(registrant["handle"], "C1");
        assert_eq!(card_property(registrant, "fn"), Some(&json!("Name of C1")));
        assert_eq!(
            card_property(registrant, "email"),
            Some(&json!("c1@example.net"))
        );
        assert_eq!(
            card_property(registrant, "org"),
            Some(&json!("Example Org"))
        );
        assert_eq!(
            card_property(registrant, "adr"),
            Some(&json!([
                "",
                "",
                ["1 Main Street", "Floor 2"],
                "Paris",
                "",
                "75001",
                "FR"
            ]))
        );
        assert_eq!(
            card_property(registrant, "tel"),
            Some(&json!("tel:+33.112345678"))
        );
        // The ICANN notices.
        let titles: Vec<&str> = v["notices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["title"].as_str().unwrap())
            .collect();
        assert_eq!(
            titles,
            [
                "Terms of Use",
                "Status Codes",
                "RDDS Inaccuracy Complaint Form"
            ]
        );
        assert_eq!(v["notices"][1]["links"][0]["href"], "https://icann.org/epp");
        assert_eq!(
            v["notices"][2]["links"][0]["href"],
            "https://icann.org/wicf"
        );
        assert_eq!(
            v["rdapConformance"],
            json!([
                "rdap_level_0",
                "icann_rdap_response_profile_1",
                "icann_rdap_technical_implementation_guide_1",
                "redacted"
            ])
        );
    }

    #[test]
    fn undisclosed_contact_is_redacted_per_rfc9537() {
        let (_, v, text) = found(Query::Domain(n("foo.tld")));
        check_rdap_structure(&v, Some("domain"));
        // C2's personal data appears nowhere; its role does.
        for secret in ["Name of C2", "c2@example.net", "\"C2\"", "entity/C2"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        let tech = entity(&v, "technical");
        assert!(tech.get("handle").is_none() && tech.get("links").is_none());
        assert_eq!(card_property(tech, "fn"), Some(&json!("")));
        assert!(card_property(tech, "email").is_none());
        assert!(card_property(tech, "tel").is_none());
        assert!(card_property(tech, "org").is_none());
        assert_eq!(
            card_property(tech, "adr"),
            Some(&json!(["", "", "", "", "", "", "FR"]))
        );
        let redacted = v["redacted"].as_array().unwrap();
        let by_name = |name: &str| {
            redacted
                .iter()
                .find(|r| r["name"]["type"] == name)
                .unwrap_or_else(|| panic!("no {name} in {redacted:?}"))
        };
        assert_eq!(
            by_name("Tech Name"),
            &json!({
                "name": {"type": "Tech Name"},
                "postPath": "$.entities[?(@.roles[0]=='technical')].vcardArray[1][?(@[0]=='fn')][3]",
                "pathLang": "jsonpath",
                "method": "emptyValue",
                "reason": {"description": "Server policy"},
            })
        );
        assert_eq!(
            by_name("Registry Tech ID")["prePath"],
            "$.entities[?(@.roles[0]=='technical')].handle"
        );
        for (name, method) in [
            ("Registry Tech ID", "removal"),
            ("Tech Organization", "removal"),
            ("Tech Street", "emptyValue"),
            ("Tech City", "emptyValue"),
            ("Tech Postal Code", "emptyValue"),
            ("Tech Phone", "removal"),
            ("Tech Email", "removal"),
        ] {
            assert_eq!(by_name(name)["method"], method, "{name}");
        }
        assert_eq!(
            by_name("Tech Phone")["prePath"],
            "$.entities[?(@.roles[0]=='technical')].vcardArray[1][?(@[1].type=='voice')]"
        );
        // No fax to redact, and nothing of the disclosed registrant.
        assert!(redacted.iter().all(|r| {
            let name = r["name"]["type"].as_str().unwrap();
            name.starts_with("Tech") || name == "Registry Tech ID"
        }));
        assert_eq!(redacted.len(), 8);
    }

    #[test]
    fn statuses_follow_rfc8056() {
        let all: Vec<&str> = EppStatus::ALL.iter().map(|s| rdap_status(*s)).collect();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "{all:?}");
        for (epp, rdap) in [
            (EppStatus::Ok, "active"),
            (EppStatus::ClientHold, "client hold"),
            (
                EppStatus::ServerTransferProhibited,
                "server transfer prohibited",
            ),
            (EppStatus::PendingDelete, "pending delete"),
            (EppStatus::Inactive, "inactive"),
            (EppStatus::AddPeriod, "add period"),
            (EppStatus::AutoRenewPeriod, "auto renew period"),
            (EppStatus::RedemptionPeriod, "redemption period"),
            (EppStatus::PendingRestore, "pending restore"),
        ] {
            assert_eq!(rdap_status(epp), rdap);
        }
        assert_eq!(statuses(StatusSet::of(&[])), json!(["active"]));
    }

    #[test]
    fn idn_domain_has_a_unicode_name_and_unsigned_delegation() {
        let mut zones = zones();
        let mut d = domain("xn--caf-dma.tld", "tld", &["ns1.foo.tld"]);
        d.registrar = "R1".into();
        zones.directory.apply(&Change::Domain(d));
        let (status, v, _) =
            render_with(&zones, Query::Domain(n("xn--caf-dma.tld")), Outcome::Found);
        assert_eq!(status.code, 200);
        check_rdap_structure(&v, Some("domain"));
        assert_eq!(v["ldhName"], "xn--caf-dma.tld");
        assert_eq!(v["unicodeName"], "café.tld");
        assert_eq!(v["status"], json!(["active"]));
        assert_eq!(v["secureDNS"], json!({"delegationSigned": false}));
        assert!(v.get("redacted").is_none());
    }

    #[test]
    fn nameserver_and_entities() {
        let (status, v, _) = found(Query::Nameserver(n("ns1.foo.tld")));
        assert_eq!(status.code, 200);
        check_rdap_structure(&v, Some("nameserver"));
        assert_eq!(v["ldhName"], "ns1.foo.tld");
        assert_eq!(v["ipAddresses"]["v4"], json!(["192.0.2.1"]));
        assert_eq!(v["status"], json!(["active"]));
        assert_eq!(
            v["links"][0]["href"],
            "https://rdap.example/nameserver/ns1.foo.tld"
        );

        let (_, v, _) = found(Query::Entity("R1".into()));
        check_rdap_structure(&v, Some("entity"));
        assert_eq!(v["roles"], json!(["registrar"]));
        assert_eq!(v["publicIds"][0]["identifier"], "9999");

        let (_, v, _) = found(Query::Entity("C1".into()));
        check_rdap_structure(&v, Some("entity"));
        assert_eq!(v["handle"], "C1");
        assert!(v.get("redacted").is_none());
        assert_eq!(v["links"][0]["href"], "https://rdap.example/entity/C1");

        let (_, v, text) = found(Query::Entity("C2".into()));
        check_rdap_structure(&v, Some("entity"));
        assert!(
            !text.contains("Name of C2") && !text.contains("c2@example.net"),
            "{text}"
        );
        assert_eq!(v["handle"], "C2");
        let redacted = v["redacted"].as_array().unwrap();
        assert!(redacted.iter().any(|r| {
            r["name"]["description"] == "Contact Name"
                && r["postPath"] == "$.vcardArray[1][?(@[0]=='fn')][3]"
        }));
        assert!(
            redacted
                .iter()
                .all(|r| r["name"]["description"] != "Contact ID")
        );
    }

    #[test]
    fn help_and_errors() {
        let (status, v, _) = found(Query::Help);
        assert_eq!(status.code, 200);
        check_rdap_structure(&v, None);
        assert_eq!(v["notices"][1]["title"], "Help");

        let zones = zones();
        let query = Query::Domain(n("nope.tld"));
        let (status, v, _) = render_with(&zones, query.clone(), Outcome::NotFound);
        assert_eq!(status, Status::code(404));
        check_rdap_structure(&v, None);
        assert_eq!(v["errorCode"], 404);
        assert_eq!(v["title"], "Not Found");
        // Found by a stale lookup but gone when rendering: still a 404.
        let (status, _, _) = render_with(&zones, query, Outcome::Found);
        assert_eq!(status.code, 404);

        let (status, v, _) = render_with(
            &zones,
            Query::None,
            Outcome::BadRequest("not a valid domain name"),
        );
        assert_eq!(status, Status::code(400));
        check_rdap_structure(&v, None);
        assert_eq!(v["description"], json!(["not a valid domain name"]));

        for (wait, secs) in [(1200, 2), (0, 1), (3000, 3)] {
            let outcome = Outcome::RateLimited {
                retry_after: Duration::from_millis(wait),
            };
            let (status, v, _) = render_with(&zones, Query::None, outcome);
            assert_eq!(
                status,
                Status {
                    code: 429,
                    retry_after: Some(secs)
                }
            );
            check_rdap_structure(&v, None);
            assert_eq!(v["errorCode"], 429);
        }
        for (outcome, code) in [
            (Outcome::Refused, 403),
            (Outcome::ServerError, 500),
            (Outcome::Pending, 500),
        ] {
            let (status, v, _) = render_with(&zones, Query::None, outcome);
            assert_eq!(status, Status::code(code));
            check_rdap_structure(&v, None);
            assert_eq!(v["errorCode"], code);
        }
        let mut out = Vec::new();
        assert_eq!(
            render_error(405, "GET and HEAD only", BASE, &mut out).code,
            405
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        check_rdap_structure(&v, None);
        assert_eq!(v["title"], "Method Not Allowed");
    }
}
