//! How `orrery-admin` shows what it reads.
//!
//! For a person: one `field: value` line per field, a field with several values on one line
//! per value (`nameserver: …`), absent fields left out, times in RFC 3339 (UTC), DS digests in
//! hex, records separated by a blank line. A value holding a control character (a newline in a
//! row some other writer made) is shown quoted and escaped, so it cannot forge a line.
//!
//! For scripts (`--json`): the same records as JSON objects whose field names are stable
//! (they are part of the interface): absent fields are `null`, several values an array (named
//! in the plural), times RFC 3339 strings, DS records objects with a hex `digest`.

use std::fmt::Display;

use orrery_proto::{Change, Contact, Domain, Ds, Host, Registrar, Timestamp, Zone};
use orrery_store::{BadRow, JournalEntry};
use serde_json::{Map, Value, json};

/// One field: its name in text and in JSON, its JSON value and its text lines.
struct Field {
    text_name: &'static str,
    json_name: &'static str,
    json: Value,
    text: Vec<String>,
}

/// One object as shown, its fields in a fixed order.
#[derive(Default)]
pub(crate) struct Record {
    fields: Vec<Field>,
}

impl Record {
    fn push(
        mut self,
        text_name: &'static str,
        json_name: &'static str,
        json: Value,
        text: Vec<String>,
    ) -> Self {
        self.fields.push(Field {
            text_name,
            json_name,
            json,
            text,
        });
        self
    }

    /// A string field.
    fn text(self, name: &'static str, value: impl Display) -> Self {
        let value = value.to_string();
        self.push(name, name, json!(value), vec![value])
    }

    /// A number field.
    fn number(self, name: &'static str, value: impl Into<serde_json::Number> + Display) -> Self {
        let text = value.to_string();
        self.push(name, name, Value::Number(value.into()), vec![text])
    }

    fn flag(self, name: &'static str, value: bool) -> Self {
        self.push(name, name, json!(value), vec![value.to_string()])
    }

    fn time(self, name: &'static str, value: Timestamp) -> Self {
        self.text(name, value)
    }

    /// A field that may be absent: `null` in JSON, left out of the text.
    fn optional(self, name: &'static str, value: Option<impl Display>) -> Self {
        match value {
            Some(v) => self.text(name, v),
            None => self.push(name, name, Value::Null, Vec::new()),
        }
    }

    /// A number that may be absent.
    fn optional_number(
        self,
        name: &'static str,
        value: Option<impl Into<serde_json::Number> + Display>,
    ) -> Self {
        match value {
            Some(v) => self.number(name, v),
            None => self.push(name, name, Value::Null, Vec::new()),
        }
    }

    /// Several values: one text line each under `text_name`, an array under `json_name`.
    fn list<T: Display>(
        self,
        text_name: &'static str,
        json_name: &'static str,
        values: impl IntoIterator<Item = T>,
    ) -> Self {
        let text: Vec<String> = values.into_iter().map(|v| v.to_string()).collect();
        let json = Value::Array(text.iter().map(|t| json!(t)).collect());
        self.push(text_name, json_name, json, text)
    }

    /// DS records: `KEYTAG ALGORITHM DIGESTTYPE HEX` in text, as in a master file and as
    /// `--ds` takes them (RFC 4034 §5.3).
    fn ds(self, list: &[Ds]) -> Self {
        let text = list
            .iter()
            .map(|d| {
                format!(
                    "{} {} {} {}",
                    d.key_tag,
                    d.algorithm,
                    d.digest_type,
                    d.digest_hex()
                )
            })
            .collect();
        let json = list
            .iter()
            .map(|d| {
                json!({
                    "key_tag": d.key_tag,
                    "algorithm": d.algorithm,
                    "digest_type": d.digest_type,
                    "digest": d.digest_hex(),
                })
            })
            .collect();
        self.push("ds", "ds", Value::Array(json), text)
    }

    /// This record's fields followed by `other`'s.
    fn then(mut self, other: Self) -> Self {
        self.fields.extend(other.fields);
        self
    }

    /// The record as a JSON object.
    pub(crate) fn to_json(&self) -> Value {
        let mut map = Map::new();
        for f in &self.fields {
            map.insert(f.json_name.to_owned(), f.json.clone());
        }
        Value::Object(map)
    }

    /// The record as `field: value` lines, each ending in a newline.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        for f in &self.fields {
            for line in &f.text {
                out.push_str(f.text_name);
                out.push_str(": ");
                out.push_str(&one_line(line));
                out.push('\n');
            }
        }
        out
    }
}

/// `text` as is, or quoted and escaped when it holds a control character (a newline would
/// start a forged line).
pub(crate) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        format!("{text:?}").into()
    } else {
        text.into()
    }
}

/// Records as text, separated by blank lines.
pub(crate) fn text_of(records: &[Record]) -> String {
    records
        .iter()
        .map(Record::to_text)
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn domain(d: &Domain) -> Record {
    Record::default()
        .text("name", &d.name)
        .text("zone", &d.zone)
        .text("roid", &d.roid)
        .text("registrar", &d.registrar)
        .time("created", d.created)
        .time("updated", d.updated)
        .time("expires", d.expires)
        .list("status", "statuses", &d.statuses)
        .optional("registrant", d.registrant.as_ref())
        .optional("admin", d.admin.as_ref())
        .optional("tech", d.tech.as_ref())
        .optional("billing", d.billing.as_ref())
        .list("nameserver", "nameservers", &d.nameservers)
        .ds(&d.ds)
}

/// A zone with the journal serial of its last change (`serial`).
pub(crate) fn zone(z: &Zone, serial: i64) -> Record {
    Record::default()
        .text("name", &z.name)
        .number("serial", serial)
        .text("mname", &z.soa.mname)
        .text("rname", &z.soa.rname)
        .number("refresh", z.soa.refresh)
        .number("retry", z.soa.retry)
        .number("expire", z.soa.expire)
        .number("minimum", z.soa.minimum)
        .number("soa_ttl", z.soa_ttl)
        .number("ns_ttl", z.ns_ttl)
        .number("ds_ttl", z.ds_ttl)
        .list("nameserver", "nameservers", &z.nameservers)
}

/// A zone's DNSSEC key, for `dnssec keys`.
/// A key for `dnssec keys`, with the masters that reported they can load it.
pub(crate) fn zone_key(
    zone: &orrery_proto::Name,
    k: &orrery_proto::dnssec::ZoneKey,
    loadable_on: &[String],
) -> Record {
    let opt = |t: Option<Timestamp>| t.map(|t| t.to_string());
    Record::default()
        .text("zone", zone)
        .text("role", k.role.as_str())
        .number("algorithm", k.algorithm.number())
        .number("key_tag", k.key_tag)
        .number("flags", k.flags())
        .text("state", k.state.as_str())
        .text("locator", &k.locator)
        .time("created", k.created)
        .optional("published", opt(k.published))
        .optional("activated", opt(k.activated))
        .optional("retired", opt(k.retired))
        .optional("revoked", opt(k.revoked))
        .optional("ds_seen", opt(k.ds_seen))
        .list("loadable_on", "loadable_on", loadable_on)
}

/// A DS record for the parent, for `dnssec ds`.
pub(crate) fn parent_ds(
    zone: &orrery_proto::Name,
    ds: &Ds,
    key: &orrery_proto::dnssec::ZoneKey,
) -> Record {
    Record::default()
        .text("zone", zone)
        .text("key_state", key.state.as_str())
        .optional("ds_seen", key.ds_seen.map(|t| t.to_string()))
        .number("key_tag", ds.key_tag)
        .number("algorithm", ds.algorithm)
        .number("digest_type", ds.digest_type)
        .text("digest", ds.digest_hex())
        .text(
            "record",
            format!(
                "{} IN DS {} {} {} {}",
                zone.to_fqdn(),
                ds.key_tag,
                ds.algorithm,
                ds.digest_type,
                ds.digest_hex()
            ),
        )
}

fn host(h: &Host) -> Record {
    Record::default()
        .text("name", &h.name)
        .list("address", "addresses", &h.addresses)
        .optional("registrar", h.registrar.as_ref())
        .time("created", h.created)
        .time("updated", h.updated)
}

fn contact(c: &Contact) -> Record {
    Record::default()
        .text("handle", &c.handle)
        .text("name", &c.name)
        .optional("organisation", c.organisation.as_ref())
        .list("street", "street", &c.street)
        .text("city", &c.city)
        .optional("province", c.province.as_ref())
        .optional("postcode", c.postcode.as_ref())
        .text("country", &c.country)
        .text("email", &c.email)
        .optional("voice", c.voice.as_ref())
        .optional("fax", c.fax.as_ref())
        .flag("disclose", c.disclose)
        .time("created", c.created)
        .time("updated", c.updated)
}

fn registrar(r: &Registrar) -> Record {
    Record::default()
        .text("handle", &r.handle)
        .text("name", &r.name)
        .optional_number("iana_id", r.iana_id)
        .optional("url", r.url.as_ref())
        .optional("whois_server", r.whois_server.as_ref())
        .optional("email", r.email.as_ref())
        .optional("phone", r.phone.as_ref())
        .optional("abuse_email", r.abuse_email.as_ref())
        .optional("abuse_phone", r.abuse_phone.as_ref())
}

/// A change: `change: KIND` (`domain`, …, or `domain_removed`, …), then the object's fields,
/// or for a removal its name or handle.
pub(crate) fn change(c: &Change) -> Record {
    let head = |kind: &'static str| Record::default().text("change", kind);
    match c {
        Change::Zone(z) => head("zone").then(zone(z, z.serial)),
        Change::ZoneRemoved(n) => head("zone_removed").text("name", n),
        Change::Domain(d) => head("domain").then(domain(d)),
        Change::DomainRemoved(n) => head("domain_removed").text("name", n),
        Change::Host(h) => head("host").then(host(h)),
        Change::HostRemoved(n) => head("host_removed").text("name", n),
        Change::Contact(c) => head("contact").then(contact(c)),
        Change::ContactRemoved(h) => head("contact_removed").text("handle", h),
        Change::Registrar(r) => head("registrar").then(registrar(r)),
        Change::RegistrarRemoved(h) => head("registrar_removed").text("handle", h),
        Change::Dnssec(r) => head("dnssec")
            .then(dnssec_id(&r.id))
            .text("ttl", r.ttl)
            .text("records", r.rdata.len()),
        Change::DnssecRemoved(id) => head("dnssec_removed").then(dnssec_id(id)),
    }
}

fn dnssec_id(id: &orrery_proto::dnssec::DnssecRrsetId) -> Record {
    Record::default()
        .text("zone", &id.zone)
        .text("owner", &id.owner)
        .text("type", id.rtype)
        .text("covered", id.covered)
}

/// A row the cluster quarantines (the same fields as `bad-rows --json`).
pub(crate) fn bad_row(b: &BadRow) -> Record {
    Record::default()
        .text("object", b.object)
        .text("key", &b.key)
        .text("table", b.table)
        .text("reason", &b.reason)
}

pub(crate) fn journal_entry(e: &JournalEntry) -> Record {
    Record::default()
        .number("serial", e.serial)
        .text("op", &e.op)
        .text("object", &e.object)
        .text("key", &e.key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_proto::{EppStatus, Name};

    fn n(s: &str) -> Name {
        Name::from_user(s).unwrap()
    }

    fn sample() -> Domain {
        Domain {
            name: n("foo.test"),
            zone: n("test"),
            roid: "D1-TEST".into(),
            registrar: "R1".into(),
            created: Timestamp::parse("2026-01-02T03:04:05Z").unwrap(),
            updated: Timestamp::parse("2026-01-02T03:04:05Z").unwrap(),
            expires: Timestamp::parse("2027-01-02").unwrap(),
            statuses: vec![EppStatus::ClientHold, EppStatus::ServerHold],
            registrant: Some("C1".into()),
            admin: None,
            tech: None,
            billing: None,
            nameservers: vec![n("ns1.foo.test"), n("ns.hoster.example")],
            ds: vec![Ds {
                key_tag: 60485,
                algorithm: 13,
                digest_type: 2,
                digest: vec![0xAB; 32],
            }],
        }
    }

    #[test]
    fn a_domain_reads_one_field_per_line() {
        let text = domain(&sample()).to_text();
        let expected = format!(
            "name: foo.test\nzone: test\nroid: D1-TEST\nregistrar: R1\n\
             created: 2026-01-02T03:04:05Z\nupdated: 2026-01-02T03:04:05Z\n\
             expires: 2027-01-02T00:00:00Z\nstatus: clientHold\nstatus: serverHold\n\
             registrant: C1\nnameserver: ns1.foo.test\nnameserver: ns.hoster.example\n\
             ds: 60485 13 2 {}\n",
            "AB".repeat(32)
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn a_domain_as_json_has_every_field() {
        let j = domain(&sample()).to_json();
        assert_eq!(j["name"], "foo.test");
        assert_eq!(j["expires"], "2027-01-02T00:00:00Z");
        assert_eq!(j["statuses"], json!(["clientHold", "serverHold"]));
        assert_eq!(j["admin"], Value::Null);
        assert_eq!(j["ds"][0]["key_tag"], 60485);
        assert_eq!(j["ds"][0]["digest"], "AB".repeat(32));
        assert_eq!(j.as_object().unwrap().len(), 14);
    }

    #[test]
    fn control_characters_cannot_forge_a_line() {
        let mut r = Registrar::new("R1", "Evil\nhandle: R2");
        r.url = Some("https://r1.example".into());
        let text = registrar(&r).to_text();
        assert_eq!(
            text,
            "handle: R1\nname: \"Evil\\nhandle: R2\"\nurl: https://r1.example\n"
        );
    }

    #[test]
    fn removals_name_the_object() {
        let r = change(&Change::DomainRemoved(n("gone.test")));
        assert_eq!(r.to_text(), "change: domain_removed\nname: gone.test\n");
        assert_eq!(
            r.to_json(),
            json!({"change": "domain_removed", "name": "gone.test"})
        );
    }
}
