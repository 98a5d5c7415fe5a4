//! Conversions between the link's messages ([`pb`]) and the registry model.
//!
//! Model → message is infallible (`From`). Message → model (`TryFrom`) checks everything a
//! peer could get wrong, and answers a [`ConvertError`] naming the object, its key and the
//! field: names go through [`Name::from_ascii`] (RFC 1035 §2.3.4), addresses must be 4 or 16
//! octets, DS fields must fit their widths and the digest its type (RFC 4034 §5.1), statuses
//! must be EPP spellings (RFC 5731 §2.3), batches must not run backwards; a satellite's
//! configuration needs parseable listen addresses, at least one per service it names, DNS
//! limits and UDP batches in range, RDAP TLS files (absolute paths) exactly when it has HTTPS
//! addresses, and a checked base URL ([`RdapListen::check_base_url`]). Nothing here panics on
//! any input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;

use super::pb;
use super::pb::change::Change as PbChange;
use crate::dnssec::{DnssecRrset, DnssecRrsetId};
use crate::model::{
    Change, ChangeBatch, Contact, Domain, Ds, EppStatus, Host, Registrar, Serial, Soa, Timestamp,
    Zone,
};
use crate::name::Name;
use crate::prefix::Prefix;

/// A message from the link that does not make a valid model object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object} {key:?}: field {field}: {reason}")]
pub struct ConvertError {
    /// The kind of object (`domain`, `host`, `batch`, `config` …).
    pub object: &'static str,
    /// Its name or handle as received (may be empty when the key itself is bad).
    pub key: String,
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Builds [`ConvertError`]s for one object.
struct Ctx<'a> {
    object: &'static str,
    key: &'a str,
}

impl Ctx<'_> {
    fn err(&self, field: &'static str, reason: impl ToString) -> ConvertError {
        ConvertError {
            object: self.object,
            key: self.key.to_owned(),
            field,
            reason: reason.to_string(),
        }
    }

    fn name(&self, field: &'static str, text: &str) -> Result<Name, ConvertError> {
        Name::from_ascii(text).map_err(|e| self.err(field, format!("{text:?}: {e}")))
    }

    fn names(&self, field: &'static str, list: &[String]) -> Result<Vec<Name>, ConvertError> {
        list.iter().map(|t| self.name(field, t)).collect()
    }

    fn u8(&self, field: &'static str, v: u32) -> Result<u8, ConvertError> {
        u8::try_from(v).map_err(|_| self.err(field, format!("{v} does not fit in 8 bits")))
    }

    fn required<T>(&self, field: &'static str, v: Option<T>) -> Result<T, ConvertError> {
        v.ok_or_else(|| self.err(field, "missing"))
    }
}

fn name_text(n: &Name) -> String {
    n.to_string()
}

fn names_text(list: &[Name]) -> Vec<String> {
    list.iter().map(name_text).collect()
}

// ─────────────────────────────── zones ───────────────────────────────

impl From<&Zone> for pb::Zone {
    fn from(z: &Zone) -> Self {
        Self {
            name: name_text(&z.name),
            soa: Some(pb::Soa {
                mname: name_text(&z.soa.mname),
                rname: name_text(&z.soa.rname),
                refresh: z.soa.refresh,
                retry: z.soa.retry,
                expire: z.soa.expire,
                minimum: z.soa.minimum,
            }),
            soa_ttl: z.soa_ttl,
            ns_ttl: z.ns_ttl,
            ds_ttl: z.ds_ttl,
            nameservers: names_text(&z.nameservers),
            serial: z.serial,
        }
    }
}

impl TryFrom<pb::Zone> for Zone {
    type Error = ConvertError;

    fn try_from(z: pb::Zone) -> Result<Self, ConvertError> {
        let cx = Ctx {
            object: "zone",
            key: &z.name,
        };
        let soa = cx.required("soa", z.soa.as_ref())?;
        Ok(Self {
            name: cx.name("name", &z.name)?,
            soa: Soa {
                mname: cx.name("soa.mname", &soa.mname)?,
                rname: cx.name("soa.rname", &soa.rname)?,
                refresh: soa.refresh,
                retry: soa.retry,
                expire: soa.expire,
                minimum: soa.minimum,
            },
            soa_ttl: z.soa_ttl,
            ns_ttl: z.ns_ttl,
            ds_ttl: z.ds_ttl,
            nameservers: cx.names("nameservers", &z.nameservers)?,
            serial: match z.serial {
                s if s >= 0 => s,
                s => return Err(cx.err("serial", format!("{s} is negative"))),
            },
        })
    }
}

// ─────────────────────────────── domains ───────────────────────────────

impl From<&Ds> for pb::Ds {
    fn from(d: &Ds) -> Self {
        Self {
            key_tag: u32::from(d.key_tag),
            algorithm: u32::from(d.algorithm),
            digest_type: u32::from(d.digest_type),
            digest: d.digest.clone(),
        }
    }
}

impl From<&Domain> for pb::Domain {
    fn from(d: &Domain) -> Self {
        Self {
            name: name_text(&d.name),
            zone: name_text(&d.zone),
            roid: d.roid.clone(),
            registrar: d.registrar.clone(),
            created: d.created.0,
            updated: d.updated.0,
            expires: d.expires.0,
            statuses: d.statuses.iter().map(|s| s.as_str().to_owned()).collect(),
            registrant: d.registrant.clone(),
            admin: d.admin.clone(),
            tech: d.tech.clone(),
            billing: d.billing.clone(),
            nameservers: names_text(&d.nameservers),
            ds: d.ds.iter().map(pb::Ds::from).collect(),
        }
    }
}

impl TryFrom<pb::Domain> for Domain {
    type Error = ConvertError;

    fn try_from(d: pb::Domain) -> Result<Self, ConvertError> {
        let cx = Ctx {
            object: "domain",
            key: &d.name,
        };
        let name = cx.name("name", &d.name)?;
        let zone = cx.name("zone", &d.zone)?;
        if !name.is_subdomain_of(&zone) || name == zone {
            return Err(cx.err("zone", format!("{zone} is not a parent of the domain")));
        }
        let statuses = d
            .statuses
            .iter()
            .map(|s| {
                EppStatus::parse(s).ok_or_else(|| cx.err("statuses", format!("{s:?} unknown")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ds =
            d.ds.iter()
                .map(|ds| {
                    let key_tag = u16::try_from(ds.key_tag).map_err(|_| {
                        cx.err(
                            "ds.key_tag",
                            format!("{} does not fit in 16 bits", ds.key_tag),
                        )
                    })?;
                    let ds = Ds {
                        key_tag,
                        algorithm: cx.u8("ds.algorithm", ds.algorithm)?,
                        digest_type: cx.u8("ds.digest_type", ds.digest_type)?,
                        digest: ds.digest.clone(),
                    };
                    ds.check().map_err(|e| cx.err("ds.digest", e))?;
                    Ok(ds)
                })
                .collect::<Result<Vec<_>, ConvertError>>()?;
        let nameservers = cx.names("nameservers", &d.nameservers)?;
        Ok(Self {
            name,
            zone,
            roid: d.roid,
            registrar: d.registrar,
            created: Timestamp(d.created),
            updated: Timestamp(d.updated),
            expires: Timestamp(d.expires),
            statuses,
            registrant: d.registrant,
            admin: d.admin,
            tech: d.tech,
            billing: d.billing,
            nameservers,
            ds,
        })
    }
}

// ─────────────────────────────── hosts ───────────────────────────────

fn address_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// The address [`address_bytes`] wrote: 4 octets (IPv4) or 16 (IPv6), anything else `None`.
pub(crate) fn address_from_bytes(octets: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(octets) {
        Some(IpAddr::V4(Ipv4Addr::from(v4)))
    } else {
        <[u8; 16]>::try_from(octets)
            .ok()
            .map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
    }
}

impl From<&Host> for pb::Host {
    fn from(h: &Host) -> Self {
        Self {
            name: name_text(&h.name),
            addresses: h.addresses.iter().map(address_bytes).collect(),
            registrar: h.registrar.clone(),
            created: h.created.0,
            updated: h.updated.0,
        }
    }
}

impl TryFrom<pb::Host> for Host {
    type Error = ConvertError;

    fn try_from(h: pb::Host) -> Result<Self, ConvertError> {
        let cx = Ctx {
            object: "host",
            key: &h.name,
        };
        let addresses = h
            .addresses
            .iter()
            .map(|a| {
                address_from_bytes(a).ok_or_else(|| {
                    cx.err(
                        "addresses",
                        format!("{} octets, not 4 (IPv4) or 16 (IPv6)", a.len()),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name: cx.name("name", &h.name)?,
            addresses,
            registrar: h.registrar,
            created: Timestamp(h.created),
            updated: Timestamp(h.updated),
        })
    }
}

// ─────────────────────────── contacts and registrars ───────────────────────────

impl From<&Contact> for pb::Contact {
    fn from(c: &Contact) -> Self {
        Self {
            handle: c.handle.clone(),
            name: c.name.clone(),
            organisation: c.organisation.clone(),
            street: c.street.clone(),
            city: c.city.clone(),
            province: c.province.clone(),
            postcode: c.postcode.clone(),
            country: c.country.clone(),
            email: c.email.clone(),
            voice: c.voice.clone(),
            fax: c.fax.clone(),
            disclose: c.disclose,
            created: c.created.0,
            updated: c.updated.0,
        }
    }
}

/// The most street lines EPP allows (RFC 5733 §2.4.1).
const MAX_STREET_LINES: usize = 3;

impl TryFrom<pb::Contact> for Contact {
    type Error = ConvertError;

    fn try_from(c: pb::Contact) -> Result<Self, ConvertError> {
        let cx = Ctx {
            object: "contact",
            key: &c.handle,
        };
        if c.handle.is_empty() {
            return Err(cx.err("handle", "empty"));
        }
        if c.street.len() > MAX_STREET_LINES {
            return Err(cx.err(
                "street",
                format!("{} lines, at most {MAX_STREET_LINES}", c.street.len()),
            ));
        }
        Ok(Self {
            handle: c.handle,
            name: c.name,
            organisation: c.organisation,
            street: c.street,
            city: c.city,
            province: c.province,
            postcode: c.postcode,
            country: c.country,
            email: c.email,
            voice: c.voice,
            fax: c.fax,
            disclose: c.disclose,
            created: Timestamp(c.created),
            updated: Timestamp(c.updated),
        })
    }
}

impl From<&Registrar> for pb::Registrar {
    fn from(r: &Registrar) -> Self {
        Self {
            handle: r.handle.clone(),
            name: r.name.clone(),
            iana_id: r.iana_id,
            url: r.url.clone(),
            whois_server: r.whois_server.clone(),
            email: r.email.clone(),
            phone: r.phone.clone(),
            abuse_email: r.abuse_email.clone(),
            abuse_phone: r.abuse_phone.clone(),
        }
    }
}

impl TryFrom<pb::Registrar> for Registrar {
    type Error = ConvertError;

    fn try_from(r: pb::Registrar) -> Result<Self, ConvertError> {
        if r.handle.is_empty() {
            return Err(Ctx {
                object: "registrar",
                key: "",
            }
            .err("handle", "empty"));
        }
        Ok(Self {
            handle: r.handle,
            name: r.name,
            iana_id: r.iana_id,
            url: r.url,
            whois_server: r.whois_server,
            email: r.email,
            phone: r.phone,
            abuse_email: r.abuse_email,
            abuse_phone: r.abuse_phone,
        })
    }
}

// ─────────────────────────────── DNSSEC RRsets ───────────────────────────────

impl From<&DnssecRrsetId> for pb::DnssecRrsetId {
    fn from(id: &DnssecRrsetId) -> Self {
        Self {
            zone: name_text(&id.zone),
            owner: name_text(&id.owner),
            rtype: id.rtype.into(),
            covered: id.covered.into(),
        }
    }
}

impl TryFrom<pb::DnssecRrsetId> for DnssecRrsetId {
    type Error = ConvertError;

    fn try_from(id: pb::DnssecRrsetId) -> Result<Self, ConvertError> {
        let key = format!("{} {} {}/{}", id.zone, id.owner, id.rtype, id.covered);
        let cx = Ctx {
            object: "dnssec",
            key: &key,
        };
        let rtype = u16::try_from(id.rtype).map_err(|_| cx.err("rtype", "above 65535"))?;
        let covered = u16::try_from(id.covered).map_err(|_| cx.err("covered", "above 65535"))?;
        let out = Self {
            zone: cx.name("zone", &id.zone)?,
            owner: cx.name("owner", &id.owner)?,
            rtype,
            covered,
        };
        out.check().map_err(|e| cx.err("id", e))?;
        Ok(out)
    }
}

impl From<&DnssecRrset> for pb::DnssecRrset {
    fn from(r: &DnssecRrset) -> Self {
        Self {
            id: Some((&r.id).into()),
            ttl: r.ttl,
            rdata: r.rdata.clone(),
        }
    }
}

impl TryFrom<pb::DnssecRrset> for DnssecRrset {
    type Error = ConvertError;

    fn try_from(r: pb::DnssecRrset) -> Result<Self, ConvertError> {
        let cx = Ctx {
            object: "dnssec",
            key: "",
        };
        let id: DnssecRrsetId = cx.required("id", r.id)?.try_into()?;
        let out = Self {
            id,
            ttl: r.ttl,
            rdata: r.rdata,
        };
        if let Err(e) = out.check() {
            let key = format!(
                "{} {} {}/{}",
                out.id.zone, out.id.owner, out.id.rtype, out.id.covered
            );
            return Err(Ctx {
                object: "dnssec",
                key: &key,
            }
            .err("rdata", e));
        }
        Ok(out)
    }
}

// ─────────────────────────────── changes ───────────────────────────────

impl From<&Change> for pb::Change {
    fn from(c: &Change) -> Self {
        let change = match c {
            Change::Zone(z) => PbChange::Zone(z.into()),
            Change::ZoneRemoved(n) => PbChange::ZoneRemoved(name_text(n)),
            Change::Domain(d) => PbChange::Domain(d.into()),
            Change::DomainRemoved(n) => PbChange::DomainRemoved(name_text(n)),
            Change::Host(h) => PbChange::Host(h.into()),
            Change::HostRemoved(n) => PbChange::HostRemoved(name_text(n)),
            Change::Contact(c) => PbChange::Contact(c.into()),
            Change::ContactRemoved(h) => PbChange::ContactRemoved(h.clone()),
            Change::Registrar(r) => PbChange::Registrar(r.into()),
            Change::RegistrarRemoved(h) => PbChange::RegistrarRemoved(h.clone()),
            Change::Dnssec(r) => PbChange::Dnssec(r.into()),
            Change::DnssecRemoved(id) => PbChange::DnssecRemoved(id.into()),
        };
        Self {
            change: Some(change),
        }
    }
}

fn removed_name(object: &'static str, text: &str) -> Result<Name, ConvertError> {
    Ctx { object, key: text }.name("name", text)
}

fn removed_handle(object: &'static str, handle: String) -> Result<String, ConvertError> {
    if handle.is_empty() {
        return Err(Ctx { object, key: "" }.err("handle", "empty"));
    }
    Ok(handle)
}

impl TryFrom<pb::Change> for Change {
    type Error = ConvertError;

    fn try_from(c: pb::Change) -> Result<Self, ConvertError> {
        let Some(change) = c.change else {
            return Err(Ctx {
                object: "change",
                key: "",
            }
            .err("change", "no object set"));
        };
        Ok(match change {
            PbChange::Zone(z) => Self::Zone(z.try_into()?),
            PbChange::ZoneRemoved(n) => Self::ZoneRemoved(removed_name("zone", &n)?),
            PbChange::Domain(d) => Self::Domain(d.try_into()?),
            PbChange::DomainRemoved(n) => Self::DomainRemoved(removed_name("domain", &n)?),
            PbChange::Host(h) => Self::Host(h.try_into()?),
            PbChange::HostRemoved(n) => Self::HostRemoved(removed_name("host", &n)?),
            PbChange::Contact(c) => Self::Contact(c.try_into()?),
            PbChange::ContactRemoved(h) => Self::ContactRemoved(removed_handle("contact", h)?),
            PbChange::Registrar(r) => Self::Registrar(r.try_into()?),
            PbChange::RegistrarRemoved(h) => {
                Self::RegistrarRemoved(removed_handle("registrar", h)?)
            }
            PbChange::Dnssec(r) => Self::Dnssec(r.try_into()?),
            PbChange::DnssecRemoved(id) => Self::DnssecRemoved(id.try_into()?),
        })
    }
}

impl From<&ChangeBatch> for pb::ChangeBatch {
    fn from(b: &ChangeBatch) -> Self {
        Self {
            after: b.after,
            upto: b.upto,
            changes: b.changes.iter().map(pb::Change::from).collect(),
        }
    }
}

impl TryFrom<pb::ChangeBatch> for ChangeBatch {
    type Error = ConvertError;

    fn try_from(b: pb::ChangeBatch) -> Result<Self, ConvertError> {
        let key = format!("{}..{}", b.after, b.upto);
        let cx = Ctx {
            object: "batch",
            key: &key,
        };
        check_serial(&cx, "after", b.after)?;
        if b.upto < b.after {
            return Err(cx.err("upto", "before `after`"));
        }
        // Sized once: collecting through `Result` sees no length and doubles, which gave a
        // 10,000-change batch room for 16,384 (1.7 MiB of a satellite's peak while it applied
        // it, a `Change` being 288 bytes).
        let mut changes = Vec::with_capacity(b.changes.len());
        for c in b.changes {
            changes.push(Change::try_from(c)?);
        }
        Ok(Self {
            after: b.after,
            upto: b.upto,
            changes,
        })
    }
}

fn check_serial(cx: &Ctx<'_>, field: &'static str, s: Serial) -> Result<(), ConvertError> {
    if s < 0 {
        return Err(cx.err(field, format!("negative serial {s}")));
    }
    Ok(())
}

/// A checked snapshot chunk: its place in the snapshot and its objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub serial: Serial,
    pub index: u32,
    pub count: u32,
    pub total_objects: u64,
    /// Upserts only.
    pub objects: Vec<Change>,
}

impl TryFrom<pb::SnapshotChunk> for Chunk {
    type Error = ConvertError;

    fn try_from(c: pb::SnapshotChunk) -> Result<Self, ConvertError> {
        let key = format!("{}#{}", c.serial, c.index);
        let cx = Ctx {
            object: "snapshot chunk",
            key: &key,
        };
        check_serial(&cx, "serial", c.serial)?;
        if c.index >= c.count {
            return Err(cx.err("index", format!("not below count {}", c.count)));
        }
        let objects = c
            .objects
            .iter()
            .map(|bytes| {
                let message = pb::Change::decode(bytes.as_ref())
                    .map_err(|e| cx.err("objects", format!("undecodable object: {e}")))?;
                Change::try_from(message)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(removal) = objects.iter().find(|o| o.is_removal()) {
            return Err(cx.err(
                "objects",
                format!("a snapshot holds no removals: {removal:?}"),
            ));
        }
        Ok(Self {
            serial: c.serial,
            index: c.index,
            count: c.count,
            total_objects: c.total_objects,
            objects,
        })
    }
}

// ───────────────────────────── satellite configuration ─────────────────────────────

/// A satellite's configuration as the master holds it and the satellite applies it: the typed
/// form of [`pb::SatelliteConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SatelliteSettings {
    /// How often the satellite checks in.
    pub checkin_interval: Duration,
    /// DNS listen addresses; `None` when the satellite serves no DNS.
    pub dns: Option<DnsListen>,
    /// The Whois service; `None` when the satellite serves no Whois.
    pub whois: Option<WhoisListen>,
    /// The RDAP service; `None` when the satellite serves no RDAP.
    pub rdap: Option<RdapListen>,
    /// Worker threads per socket; `None` lets the satellite choose.
    pub workers: Option<u32>,
    /// Memory budget for zone data, in bytes; `None` for no limit.
    pub memory_budget: Option<u64>,
    /// NSID option value (RFC 5001).
    pub nsid: Option<Vec<u8>>,
    /// `hostname.bind`/`id.server` answer (RFC 4892).
    pub hostname: Option<String>,
    /// The Selector's `[leaves.*]` and `[[chains]]` as TOML text, in the satellite's format.
    pub selector_toml: String,
    /// The Selector of the registration data services (Whois and RDAP), as TOML text in the
    /// satellite's format; empty for the satellite's built-in default chain.
    pub rds_selector_toml: String,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None`: no metrics listener.
    pub metrics: Option<SocketAddr>,
    /// Zone transfer out; `None`: AXFR and IXFR of a served apex are refused.
    pub xfr: Option<XfrSettings>,
    /// Keep answering for a zone past its SOA EXPIRE with no master heard from (`true`, the
    /// default), or answer SERVFAIL for it until a master answers (`false`, RFC 1035
    /// §3.3.13). On the wire as `servfail_expired`, its negation, so that a message without
    /// the field means the default.
    pub serve_expired: bool,
}

/// Zone transfer out (issue 14): TSIG keys, who may transfer, whom to NOTIFY, the transfers'
/// own limits. Every `None` is the satellite's default, given beside each field. A received
/// one names only defined keys, each key once.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct XfrSettings {
    pub keys: Vec<TsigKey>,
    /// The first rule whose prefixes contain the client decides; none matching: REFUSED.
    pub acl: Vec<XfrAclRule>,
    pub notify: Vec<NotifyTarget>,
    /// Transfers at once over every client; default [`DEFAULT_MAX_TRANSFERS`].
    pub max_transfers: Option<u32>,
    /// Transfers at once from one client address (IPv6: one /64); default
    /// [`DEFAULT_MAX_TRANSFERS_PER_ADDRESS`].
    pub max_transfers_per_address: Option<u32>,
    /// Transfers one client address may start per minute; default
    /// [`DEFAULT_TRANSFERS_PER_MINUTE`].
    pub transfers_per_minute: Option<u32>,
    /// How long a transfer waits for its client to take the next message; default
    /// [`DEFAULT_XFR_IDLE_TIMEOUT`].
    pub idle_timeout: Option<Duration>,
    /// How long a whole transfer may take; default [`DEFAULT_XFR_TOTAL_TIMEOUT`].
    pub total_timeout: Option<Duration>,
    /// Serials of recent changes kept per zone for IXFR; default [`DEFAULT_IXFR_WINDOW`].
    pub ixfr_window: Option<u32>,
    /// The catalog zone (RFC 9432) listing the served zones; `None`: none.
    pub catalog_zone: Option<Name>,
}

impl XfrSettings {
    /// The check of `catalog_zone` that needs the served zones, which the settings alone do
    /// not know (the receipt check cannot make it): the catalog must be a zone of its own,
    /// neither one of `zones` nor inside one. Inside, the zone's own answers (a delegation,
    /// NXDOMAIN) and the catalog's would both claim its names, and a secondary that follows
    /// both would serve the catalog's records inside the registry's zone (RFC 9432 §7 asks
    /// that a catalog not be served as public data).
    pub fn check_catalog<'a>(
        &self,
        zones: impl IntoIterator<Item = &'a Name>,
    ) -> Result<(), CatalogInZoneError> {
        let Some(catalog) = &self.catalog_zone else {
            return Ok(());
        };
        match zones.into_iter().find(|z| catalog.is_subdomain_of(z)) {
            Some(zone) => Err(CatalogInZoneError {
                catalog: catalog.clone(),
                zone: zone.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// `xfr.catalog_zone` names a served zone, or a name inside one ([`XfrSettings::check_catalog`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "xfr.catalog_zone {catalog}: {}; pick a name outside every served zone (e.g. under `invalid.`)",
    if .catalog == .zone { "is a served zone".to_owned() } else { format!("lies inside the served zone {}", .zone) }
)]
pub struct CatalogInZoneError {
    pub catalog: Name,
    pub zone: Name,
}

/// A TSIG key (RFC 8945 §4).
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    /// The shared secret, at least [`MIN_TSIG_SECRET`] octets.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    /// Never prints the secret (settings are logged).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &format_args!("<{} octets>", self.secret.len()))
            .finish()
    }
}

/// The TSIG algorithms a satellite speaks (RFC 8945 §6: HMAC-SHA256 is mandatory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha512,
}

impl TsigAlgorithm {
    /// The algorithm's name as configured and as written in a TSIG record (without the dot).
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    /// The algorithm of a configured or received name (case-insensitive, trailing dot
    /// allowed).
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.strip_suffix('.').unwrap_or(name);
        [Self::HmacSha256, Self::HmacSha512]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

/// One rule of the transfer ACL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XfrAclRule {
    /// At least one.
    pub prefixes: Vec<Prefix>,
    /// The key requests must be signed with; `None`: unsigned requests are allowed too.
    pub key: Option<Name>,
}

/// A secondary to NOTIFY (RFC 1996).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyTarget {
    pub address: SocketAddr,
    /// The key NOTIFY messages are signed with; `None`: unsigned.
    pub key: Option<Name>,
}

/// Transfers at once when the configuration says nothing: a handful of secondaries each
/// following a few zones.
pub const DEFAULT_MAX_TRANSFERS: u32 = 16;
/// Transfers at once from one client address when the configuration says nothing (an AXFR and
/// an IXFR of another zone).
pub const DEFAULT_MAX_TRANSFERS_PER_ADDRESS: u32 = 2;
/// Transfers one client address may start per minute when the configuration says nothing.
///
/// A secondary asks for about one transfer per NOTIFY per zone, and a satellite NOTIFYs a
/// zone that changes all the time every 200 ms (the satellite's `xfr::notify::WATCH`): 300 a
/// minute for one busy zone. 3000 lets one address (a secondary, or a provider's several
/// behind one address) follow ten such zones without a refusal; Knot, NSD and BIND have no
/// such limit at all. What it still stops is a broken client of the ACL looping on
/// transfers; the cost of big ones is bounded by the transfers at once
/// ([`DEFAULT_MAX_TRANSFERS_PER_ADDRESS`]), not by this. (It was 60, which refused a
/// secondary following one busy zone within the first minute.)
pub const DEFAULT_TRANSFERS_PER_MINUTE: u32 = 3000;
/// How long a transfer waits for its client to take a message by default.
pub const DEFAULT_XFR_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole transfer may take by default: a million-domain AXFR takes seconds.
pub const DEFAULT_XFR_TOTAL_TIMEOUT: Duration = Duration::from_secs(600);
/// Serials of recent changes kept per zone for IXFR by default.
pub const DEFAULT_IXFR_WINDOW: u32 = 100;
/// Most serials kept per zone for IXFR: each holds the records that changed.
pub const MAX_IXFR_WINDOW: u32 = 100_000;
/// The shortest TSIG secret accepted: RFC 8945 §6 asks for keys as long as the hash output;
/// 16 octets refuses the obviously weak while accepting what `tsig-keygen` writes (32).
pub const MIN_TSIG_SECRET: usize = 16;

/// Where and how a satellite serves DNS. A received one has at least one address. Every
/// `None` (and an empty `cpu_affinity`) is the satellite's default, given beside each field.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DnsListen {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    /// RFC 7766 §6.2.3: how long a TCP connection may wait for its client (the rest of a
    /// query, the next query, or taking an answer); default [`DEFAULT_TCP_IDLE_TIMEOUT`].
    /// Travels in whole milliseconds (at least 1).
    pub tcp_idle_timeout: Option<Duration>,
    /// Most TCP connections open at once, 1 to [`MAX_TCP_CONNECTIONS`]; default
    /// [`DEFAULT_TCP_MAX_CONNECTIONS`].
    pub tcp_max_connections: Option<u32>,
    /// Most TCP connections open at once from one client address (IPv6: one /64); default
    /// [`DEFAULT_TCP_MAX_CONNECTIONS_PER_ADDRESS`].
    pub tcp_max_connections_per_address: Option<u32>,
    /// Most queries answered on one TCP connection before it is closed; `None`: no limit.
    pub tcp_max_queries: Option<u32>,
    /// Most datagrams per `recvmmsg`/`sendmmsg`, 1 to [`MAX_UDP_BATCH`]; default
    /// [`DEFAULT_UDP_BATCH`].
    pub udp_batch: Option<u32>,
    /// One `SO_REUSEPORT` socket per UDP worker (`true`, the default) or one shared socket.
    pub udp_reuseport: Option<bool>,
    /// CPUs the UDP workers are pinned to (worker `i` on `cpu_affinity[i % len]`), each below
    /// [`MAX_CPUS`]; empty: not pinned.
    pub cpu_affinity: Vec<u32>,
}

/// Where and how a satellite serves Whois (RFC 3912). A received one has at least one address.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WhoisListen {
    /// TCP listen addresses.
    pub tcp: Vec<SocketAddr>,
    /// Most client connections open at once; `None` for the satellite's default. `Some(0)`
    /// travels as 0, which means the default.
    pub max_connections: Option<u32>,
    /// How long a client may take to send its query line, and to read the answer; `None` for
    /// the satellite's default. Travels in whole milliseconds (at least 1).
    pub timeout: Option<Duration>,
    /// Most connections open at once from one client address (IPv6: one /64); `None` for the
    /// satellite's default.
    pub max_connections_per_address: Option<u32>,
}

/// Where and how a satellite serves RDAP (RFC 7480). A received one has at least one address,
/// and TLS files exactly when it has HTTPS addresses.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RdapListen {
    /// Plain HTTP listen addresses (behind a TLS-terminating proxy).
    pub http: Vec<SocketAddr>,
    /// HTTPS listen addresses, served with [`RdapListen::tls`].
    pub https: Vec<SocketAddr>,
    /// The certificate and key for `https`; `Some` exactly when `https` is not empty.
    pub tls: Option<RdapTls>,
    /// The public base URL used in RDAP `links` (RFC 9083 §4.2), checked by
    /// [`RdapListen::check_base_url`]; `None` to derive it from each request's Host header.
    pub base_url: Option<String>,
    /// Most client connections open at once; `None` for the satellite's default.
    pub max_connections: Option<u32>,
    /// How long a client may take to send its request, and to read the answer; `None` for the
    /// satellite's default. Travels in whole milliseconds (at least 1).
    pub timeout: Option<Duration>,
    /// Proxies whose `X-Forwarded-For` names the client (for the rate limit and the ACL) on the
    /// `http` listeners; empty: the header is ignored. Never believed on `https`.
    pub trusted_proxies: Vec<Prefix>,
    /// Most connections open at once from one client address (IPv6: one /64), trusted proxies
    /// aside; `None` for the satellite's default.
    pub max_connections_per_address: Option<u32>,
}

/// The PEM files of an RDAP HTTPS listener: absolute paths on the satellite's machine (the
/// master never reads them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdapTls {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

impl RdapListen {
    /// Checks a public base URL: `http://` or `https://`, then a host, ending with `/` (so that
    /// `domain/NAME` can be appended as it is), with no spaces or control characters. The
    /// master adds a missing trailing `/` before sending; a satellite refuses one without.
    pub fn check_base_url(url: &str) -> Result<(), &'static str> {
        let Some(rest) = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
        else {
            return Err("must start with http:// or https://");
        };
        if rest.starts_with('/') || rest.is_empty() {
            return Err("has no host");
        }
        if !rest.ends_with('/') {
            return Err("must end with /");
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("contains spaces or control characters");
        }
        Ok(())
    }
}

/// Longest NSID (RFC 5001) a satellite is configured with; RFC 5001 sets no limit. With it,
/// the OPT record of a response to the longest possible question still fits the 512 octets
/// every EDNS requestor accepts (RFC 6891 §6.2.3): 512 - 12 (header) - 259 (question) - 11
/// (OPT) - 4 (option header) = 226. Identifiers in use are host names, far shorter.
pub const MAX_NSID_LEN: usize = 226;

/// Most worker threads per socket a satellite accepts: more would only exhaust its machine.
pub const MAX_WORKERS: u32 = 1024;

/// How long a DNS TCP connection may wait for its client when the configuration says nothing
/// (RFC 7766 §6.2.3 suggests seconds, not minutes).
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// DNS TCP connections served at once when the configuration says nothing.
pub const DEFAULT_TCP_MAX_CONNECTIONS: u32 = 1024;
/// Most DNS TCP connections a satellite accepts to serve at once: each holds a file
/// descriptor and about 80 KiB of buffers while it is open.
pub const MAX_TCP_CONNECTIONS: u32 = 65_536;
/// DNS TCP connections from one client address when the configuration says nothing: more
/// than a resolver opens, few enough that one address holds a small share of the default
/// slots (the Whois and RDAP edges use the same figure).
pub const DEFAULT_TCP_MAX_CONNECTIONS_PER_ADDRESS: u32 = 32;
/// Most datagrams one UDP system call may receive or send: the batch's buffers (64 KiB
/// answers) must stay a few megabytes per worker.
pub const MAX_UDP_BATCH: u32 = 64;
/// Datagrams per UDP system call by default: enough to share the cost of a call under load,
/// few enough that the batch's buffers stay in the cache.
pub const DEFAULT_UDP_BATCH: u32 = 32;
/// CPU numbers a UDP worker may be pinned to are below this (`CPU_SETSIZE`, the most CPUs an
/// affinity mask names).
pub const MAX_CPUS: u32 = 1024;

/// The shortest check-in interval a satellite accepts.
pub const MIN_CHECKIN_INTERVAL: Duration = Duration::from_millis(100);

impl SatelliteSettings {
    /// A digest of every field: equal settings give equal versions on both ends, so the master
    /// sends the configuration only when the satellite runs another one.
    pub fn version(&self) -> String {
        pb::SatelliteConfig::from(self).version
    }
}

/// FNV-1a, 64 bits, in hex: stable across platforms and releases, unlike `DefaultHasher`.
fn fnv1a_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn addrs_text(list: &[SocketAddr]) -> Vec<String> {
    list.iter().map(SocketAddr::to_string).collect()
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A timeout in whole milliseconds for the wire, where 0 means "the default": at least 1 ms,
/// at most `u32::MAX`.
fn timeout_ms(timeout: Option<Duration>) -> u32 {
    timeout.map_or(0, |t| {
        u32::try_from(t.as_millis()).unwrap_or(u32::MAX).max(1)
    })
}

impl From<&DnsListen> for pb::DnsService {
    fn from(d: &DnsListen) -> Self {
        Self {
            udp: addrs_text(&d.udp),
            tcp: addrs_text(&d.tcp),
            tcp_idle_timeout_ms: timeout_ms(d.tcp_idle_timeout),
            tcp_max_connections: d.tcp_max_connections.unwrap_or(0),
            tcp_max_connections_per_address: d.tcp_max_connections_per_address.unwrap_or(0),
            tcp_max_queries: d.tcp_max_queries.unwrap_or(0),
            udp_batch: d.udp_batch.unwrap_or(0),
            udp_reuseport: d.udp_reuseport,
            cpu_affinity: d.cpu_affinity.clone(),
        }
    }
}

impl From<&WhoisListen> for pb::WhoisService {
    fn from(w: &WhoisListen) -> Self {
        Self {
            tcp: addrs_text(&w.tcp),
            max_connections: w.max_connections.unwrap_or(0),
            timeout_ms: timeout_ms(w.timeout),
            max_connections_per_address: w.max_connections_per_address.unwrap_or(0),
        }
    }
}

impl From<&RdapListen> for pb::RdapService {
    fn from(r: &RdapListen) -> Self {
        Self {
            http: addrs_text(&r.http),
            https: addrs_text(&r.https),
            tls_cert_file: r
                .tls
                .as_ref()
                .map(|t| path_text(&t.cert))
                .unwrap_or_default(),
            tls_key_file: r
                .tls
                .as_ref()
                .map(|t| path_text(&t.key))
                .unwrap_or_default(),
            base_url: r.base_url.clone().unwrap_or_default(),
            max_connections: r.max_connections.unwrap_or(0),
            timeout_ms: timeout_ms(r.timeout),
            trusted_proxies: r.trusted_proxies.iter().map(Prefix::to_string).collect(),
            max_connections_per_address: r.max_connections_per_address.unwrap_or(0),
        }
    }
}

impl From<&XfrSettings> for pb::XfrService {
    fn from(x: &XfrSettings) -> Self {
        let key_text = |k: &Option<Name>| k.as_ref().map(name_text).unwrap_or_default();
        Self {
            keys: x
                .keys
                .iter()
                .map(|k| pb::TsigKey {
                    name: name_text(&k.name),
                    algorithm: k.algorithm.name().to_owned(),
                    secret: k.secret.clone(),
                })
                .collect(),
            acl: x
                .acl
                .iter()
                .map(|r| pb::XfrAclRule {
                    prefixes: r.prefixes.iter().map(Prefix::to_string).collect(),
                    key: key_text(&r.key),
                })
                .collect(),
            notify: x
                .notify
                .iter()
                .map(|n| pb::NotifyTarget {
                    address: n.address.to_string(),
                    key: key_text(&n.key),
                })
                .collect(),
            max_transfers: x.max_transfers.unwrap_or(0),
            max_transfers_per_address: x.max_transfers_per_address.unwrap_or(0),
            transfers_per_minute: x.transfers_per_minute.unwrap_or(0),
            idle_timeout_ms: timeout_ms(x.idle_timeout),
            total_timeout_ms: timeout_ms(x.total_timeout),
            ixfr_window: x.ixfr_window.unwrap_or(0),
            catalog_zone: x.catalog_zone.as_ref().map(name_text).unwrap_or_default(),
        }
    }
}

impl From<&SatelliteSettings> for pb::SatelliteConfig {
    fn from(s: &SatelliteSettings) -> Self {
        let mut msg = Self {
            version: String::new(),
            checkin_interval_ms: u32::try_from(s.checkin_interval.as_millis()).unwrap_or(u32::MAX),
            dns: s.dns.as_ref().map(pb::DnsService::from),
            whois: s.whois.as_ref().map(pb::WhoisService::from),
            workers: s.workers.unwrap_or(0),
            memory_budget_bytes: s.memory_budget.unwrap_or(0),
            nsid: s.nsid.clone().unwrap_or_default(),
            hostname: s.hostname.clone().unwrap_or_default(),
            selector_toml: s.selector_toml.clone(),
            rdap: s.rdap.as_ref().map(pb::RdapService::from),
            rds_selector_toml: s.rds_selector_toml.clone(),
            metrics: s.metrics.map(|a| a.to_string()).unwrap_or_default(),
            xfr: s.xfr.as_ref().map(pb::XfrService::from),
            servfail_expired: !s.serve_expired,
        };
        // The version is the digest of the message without it; prost encodes fields in number
        // order and this message has no maps, so equal settings give equal bytes.
        msg.version = fnv1a_hex(&msg.encode_to_vec());
        msg
    }
}

impl Ctx<'_> {
    fn addrs(&self, field: &'static str, list: &[String]) -> Result<Vec<SocketAddr>, ConvertError> {
        list.iter()
            .map(|a| {
                a.parse::<SocketAddr>()
                    .map_err(|e| self.err(field, format!("{a:?}: {e}")))
            })
            .collect()
    }

    /// An absolute path on the satellite's machine; `None` when empty.
    fn satellite_path(
        &self,
        field: &'static str,
        text: &str,
    ) -> Result<Option<PathBuf>, ConvertError> {
        if text.is_empty() {
            return Ok(None);
        }
        let path = PathBuf::from(text);
        if !path.is_absolute() {
            return Err(self.err(field, format!("{text:?} is not an absolute path")));
        }
        Ok(Some(path))
    }

    fn dns(&self, d: &pb::DnsService) -> Result<DnsListen, ConvertError> {
        let udp = self.addrs("dns.udp", &d.udp)?;
        let tcp = self.addrs("dns.tcp", &d.tcp)?;
        if udp.is_empty() && tcp.is_empty() {
            return Err(self.err("dns", "no udp or tcp address"));
        }
        let nonzero = |v: u32| (v != 0).then_some(v);
        if d.tcp_max_connections > MAX_TCP_CONNECTIONS {
            return Err(self.err(
                "dns.tcp_max_connections",
                format!("{}, at most {MAX_TCP_CONNECTIONS}", d.tcp_max_connections),
            ));
        }
        if d.udp_batch > MAX_UDP_BATCH {
            return Err(self.err(
                "dns.udp_batch",
                format!("{}, at most {MAX_UDP_BATCH}", d.udp_batch),
            ));
        }
        if let Some(cpu) = d.cpu_affinity.iter().find(|&&c| c >= MAX_CPUS) {
            return Err(self.err(
                "dns.cpu_affinity",
                format!("CPU {cpu} is not in 0..{MAX_CPUS}"),
            ));
        }
        Ok(DnsListen {
            udp,
            tcp,
            tcp_idle_timeout: nonzero(d.tcp_idle_timeout_ms)
                .map(|ms| Duration::from_millis(u64::from(ms))),
            tcp_max_connections: nonzero(d.tcp_max_connections),
            tcp_max_connections_per_address: nonzero(d.tcp_max_connections_per_address),
            tcp_max_queries: nonzero(d.tcp_max_queries),
            udp_batch: nonzero(d.udp_batch),
            udp_reuseport: d.udp_reuseport,
            cpu_affinity: d.cpu_affinity.clone(),
        })
    }

    fn xfr(&self, x: &pb::XfrService) -> Result<XfrSettings, ConvertError> {
        let mut keys: Vec<TsigKey> = Vec::with_capacity(x.keys.len());
        for k in &x.keys {
            let name = self.name("xfr.keys.name", &k.name)?;
            if keys.iter().any(|other| other.name == name) {
                return Err(self.err("xfr.keys.name", format!("{:?} defined twice", k.name)));
            }
            let algorithm = TsigAlgorithm::from_name(&k.algorithm).ok_or_else(|| {
                self.err(
                    "xfr.keys.algorithm",
                    format!(
                        "{:?} (key {:?}): not hmac-sha256 or hmac-sha512",
                        k.algorithm, k.name
                    ),
                )
            })?;
            if k.secret.len() < MIN_TSIG_SECRET {
                return Err(self.err(
                    "xfr.keys.secret",
                    format!(
                        "key {:?}: {} octets, at least {MIN_TSIG_SECRET}",
                        k.name,
                        k.secret.len()
                    ),
                ));
            }
            keys.push(TsigKey {
                name,
                algorithm,
                secret: k.secret.clone(),
            });
        }
        let key_ref = |field: &'static str, text: &str| -> Result<Option<Name>, ConvertError> {
            if text.is_empty() {
                return Ok(None);
            }
            let name = self.name(field, text)?;
            if !keys.iter().any(|k| k.name == name) {
                return Err(self.err(field, format!("{text:?} is not a defined key")));
            }
            Ok(Some(name))
        };
        let mut acl = Vec::with_capacity(x.acl.len());
        for r in &x.acl {
            if r.prefixes.is_empty() {
                return Err(self.err("xfr.acl.prefixes", "a rule without prefixes"));
            }
            acl.push(XfrAclRule {
                prefixes: r
                    .prefixes
                    .iter()
                    .map(|p| Prefix::parse(p).map_err(|e| self.err("xfr.acl.prefixes", e)))
                    .collect::<Result<_, _>>()?,
                key: key_ref("xfr.acl.key", &r.key)?,
            });
        }
        let mut notify = Vec::with_capacity(x.notify.len());
        for n in &x.notify {
            notify.push(NotifyTarget {
                address: self.addrs("xfr.notify.address", std::slice::from_ref(&n.address))?[0],
                key: key_ref("xfr.notify.key", &n.key)?,
            });
        }
        if x.ixfr_window > MAX_IXFR_WINDOW {
            return Err(self.err(
                "xfr.ixfr_window",
                format!("{}, at most {MAX_IXFR_WINDOW}", x.ixfr_window),
            ));
        }
        let nonzero = |v: u32| (v != 0).then_some(v);
        let ms = |v: u32| nonzero(v).map(|ms| Duration::from_millis(u64::from(ms)));
        Ok(XfrSettings {
            keys,
            acl,
            notify,
            max_transfers: nonzero(x.max_transfers),
            max_transfers_per_address: nonzero(x.max_transfers_per_address),
            transfers_per_minute: nonzero(x.transfers_per_minute),
            idle_timeout: ms(x.idle_timeout_ms),
            total_timeout: ms(x.total_timeout_ms),
            ixfr_window: nonzero(x.ixfr_window),
            catalog_zone: match x.catalog_zone.as_str() {
                "" => None,
                text => Some(self.name("xfr.catalog_zone", text)?),
            },
        })
    }

    fn whois(&self, w: &pb::WhoisService) -> Result<WhoisListen, ConvertError> {
        let tcp = self.addrs("whois.tcp", &w.tcp)?;
        if tcp.is_empty() {
            return Err(self.err("whois.tcp", "no address"));
        }
        Ok(WhoisListen {
            tcp,
            max_connections: (w.max_connections != 0).then_some(w.max_connections),
            timeout: (w.timeout_ms != 0).then(|| Duration::from_millis(u64::from(w.timeout_ms))),
            max_connections_per_address: (w.max_connections_per_address != 0)
                .then_some(w.max_connections_per_address),
        })
    }

    fn rdap(&self, r: &pb::RdapService) -> Result<RdapListen, ConvertError> {
        let http = self.addrs("rdap.http", &r.http)?;
        let https = self.addrs("rdap.https", &r.https)?;
        if http.is_empty() && https.is_empty() {
            return Err(self.err("rdap", "no http or https address"));
        }
        let cert = self.satellite_path("rdap.tls_cert_file", &r.tls_cert_file)?;
        let key = self.satellite_path("rdap.tls_key_file", &r.tls_key_file)?;
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(RdapTls { cert, key }),
            (None, None) => None,
            (None, Some(_)) => return Err(self.err("rdap.tls_cert_file", "missing")),
            (Some(_), None) => return Err(self.err("rdap.tls_key_file", "missing")),
        };
        match (&tls, https.is_empty()) {
            (None, false) => {
                return Err(self.err("rdap.tls_cert_file", "missing: https needs it"));
            }
            (Some(_), true) => {
                return Err(self.err("rdap.tls_cert_file", "set, but no https address"));
            }
            _ => {}
        }
        let base_url = if r.base_url.is_empty() {
            None
        } else {
            RdapListen::check_base_url(&r.base_url)
                .map_err(|e| self.err("rdap.base_url", format!("{:?} {e}", r.base_url)))?;
            Some(r.base_url.clone())
        };
        Ok(RdapListen {
            http,
            https,
            tls,
            base_url,
            max_connections: (r.max_connections != 0).then_some(r.max_connections),
            timeout: (r.timeout_ms != 0).then(|| Duration::from_millis(u64::from(r.timeout_ms))),
            trusted_proxies: r
                .trusted_proxies
                .iter()
                .map(|p| Prefix::parse(p).map_err(|e| self.err("rdap.trusted_proxies", e)))
                .collect::<Result<_, _>>()?,
            max_connections_per_address: (r.max_connections_per_address != 0)
                .then_some(r.max_connections_per_address),
        })
    }
}

impl TryFrom<pb::SatelliteConfig> for SatelliteSettings {
    type Error = ConvertError;

    fn try_from(c: pb::SatelliteConfig) -> Result<Self, ConvertError> {
        let cx = Ctx {
            object: "config",
            key: &c.version,
        };
        let interval = Duration::from_millis(u64::from(c.checkin_interval_ms));
        if interval < MIN_CHECKIN_INTERVAL {
            return Err(cx.err(
                "checkin_interval_ms",
                format!(
                    "{} ms, at least {MIN_CHECKIN_INTERVAL:?}",
                    c.checkin_interval_ms
                ),
            ));
        }
        let dns = c.dns.as_ref().map(|d| cx.dns(d)).transpose()?;
        let whois = c.whois.as_ref().map(|w| cx.whois(w)).transpose()?;
        let rdap = c.rdap.as_ref().map(|r| cx.rdap(r)).transpose()?;
        let xfr = c.xfr.as_ref().map(|x| cx.xfr(x)).transpose()?;
        if xfr.is_some() && dns.as_ref().is_none_or(|d| d.tcp.is_empty()) {
            // Transfers are served on the DNS TCP listeners.
            return Err(cx.err("xfr", "needs a dns.tcp address to serve transfers on"));
        }
        if c.nsid.len() > MAX_NSID_LEN {
            return Err(cx.err(
                "nsid",
                format!("{} octets, at most {MAX_NSID_LEN}", c.nsid.len()),
            ));
        }
        if c.workers > MAX_WORKERS {
            return Err(cx.err("workers", format!("{}, at most {MAX_WORKERS}", c.workers)));
        }
        let metrics = match c.metrics.as_str() {
            "" => None,
            text => Some(cx.addrs("metrics", &[text.to_owned()])?[0]),
        };
        Ok(Self {
            checkin_interval: interval,
            dns,
            whois,
            rdap,
            workers: (c.workers != 0).then_some(c.workers),
            memory_budget: (c.memory_budget_bytes != 0).then_some(c.memory_budget_bytes),
            nsid: (!c.nsid.is_empty()).then_some(c.nsid),
            hostname: (!c.hostname.is_empty()).then_some(c.hostname),
            selector_toml: c.selector_toml,
            rds_selector_toml: c.rds_selector_toml,
            metrics,
            xfr,
            serve_expired: !c.servfail_expired,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn domain() -> Domain {
        Domain {
            name: n("foo.test"),
            zone: n("test"),
            roid: "D1-TEST".into(),
            registrar: "R1".into(),
            created: Timestamp(1),
            updated: Timestamp(2),
            expires: Timestamp(3),
            statuses: vec![EppStatus::ClientHold, EppStatus::ServerTransferProhibited],
            registrant: Some("C1".into()),
            admin: None,
            tech: Some("C2".into()),
            billing: None,
            nameservers: vec![n("ns1.foo.test"), n("ns.other.example")],
            ds: vec![Ds {
                key_tag: 65535,
                algorithm: 13,
                digest_type: 2,
                digest: vec![7; 32],
            }],
        }
    }

    fn every_change() -> Vec<Change> {
        vec![
            Change::Registrar(Registrar {
                handle: "R1".into(),
                name: "One".into(),
                iana_id: Some(9999),
                url: Some("https://r1.example".into()),
                whois_server: None,
                email: None,
                phone: None,
                abuse_email: Some("abuse@r1.example".into()),
                abuse_phone: None,
            }),
            Change::Contact(Contact {
                handle: "C1".into(),
                name: "Ann".into(),
                organisation: None,
                street: vec!["1 Road".into(), "Flat 2".into()],
                city: "Town".into(),
                province: None,
                postcode: Some("12345".into()),
                country: "FR".into(),
                email: "ann@example.org".into(),
                voice: None,
                fax: None,
                disclose: true,
                created: Timestamp(5),
                updated: Timestamp(6),
            }),
            Change::Zone(Zone {
                name: n("test"),
                soa: Soa {
                    mname: n("a.nic.test"),
                    rname: n("hostmaster.nic.test"),
                    refresh: 1800,
                    retry: 900,
                    expire: 2_419_200,
                    minimum: 3600,
                },
                soa_ttl: 3600,
                ns_ttl: 172_800,
                ds_ttl: 86_400,
                nameservers: vec![n("a.nic.test")],
                serial: 41,
            }),
            Change::Host(Host {
                name: n("ns1.foo.test"),
                addresses: vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
                registrar: Some("R1".into()),
                created: Timestamp(-5),
                updated: Timestamp(0),
            }),
            Change::Domain(domain()),
            Change::ZoneRemoved(n("old")),
            Change::DomainRemoved(n("gone.test")),
            Change::HostRemoved(n("ns.gone.test")),
            Change::ContactRemoved("C9".into()),
            Change::RegistrarRemoved("R9".into()),
            Change::Dnssec(rrsig_over_ds()),
            Change::DnssecRemoved(DnssecRrsetId {
                zone: n("test"),
                owner: n("gone.test"),
                rtype: 46,
                covered: 43,
            }),
        ]
    }

    /// An RRSIG over the DS of foo.test: type covered 43, algorithm 13, 2 labels.
    fn rrsig_over_ds() -> DnssecRrset {
        let mut rd = vec![0, 43, 13, 2, 0, 1, 81, 128];
        rd.extend_from_slice(&[0x6a, 0, 0, 0, 0x69, 0, 0, 0, 0x12, 0x34]);
        rd.extend_from_slice(b"\x04test\x00");
        rd.extend_from_slice(&[0xAB; 64]);
        DnssecRrset {
            id: DnssecRrsetId {
                zone: n("test"),
                owner: n("foo.test"),
                rtype: 46,
                covered: 43,
            },
            ttl: 86_400,
            rdata: vec![rd],
        }
    }

    #[test]
    fn dnssec_rrsets_that_a_satellite_could_not_serve_are_refused() {
        let good = pb::DnssecRrset::from(&rrsig_over_ds());
        assert!(DnssecRrset::try_from(good.clone()).is_ok());
        let bad = |edit: &dyn Fn(&mut pb::DnssecRrset)| {
            let mut m = good.clone();
            edit(&mut m);
            DnssecRrset::try_from(m).unwrap_err()
        };
        // Outside its zone.
        let e = bad(&|m| m.id.as_mut().unwrap().owner = "foo.example".into());
        assert!(e.reason.contains("not in zone"), "{e}");
        // An RRSIG whose id does not say what it covers, or says something else than its RDATA.
        let e = bad(&|m| m.id.as_mut().unwrap().covered = 0);
        assert!(e.reason.contains("RRSIG without"), "{e}");
        let e = bad(&|m| m.id.as_mut().unwrap().covered = 1);
        assert!(e.reason.contains("malformed"), "{e}");
        // Not a type the master sends; a covered type on a non-RRSIG set.
        let e = bad(&|m| m.id.as_mut().unwrap().rtype = 1);
        assert!(e.reason.contains("not a DNSSEC type"), "{e}");
        let e = bad(&|m| {
            let id = m.id.as_mut().unwrap();
            id.rtype = 48;
        });
        assert!(e.reason.contains("covered"), "{e}");
        // Types beyond 16 bits, a TTL beyond 2^31 - 1, no RDATA, a truncated NSEC3.
        let e = bad(&|m| m.id.as_mut().unwrap().covered = 70_000);
        assert_eq!(e.field, "covered");
        let e = bad(&|m| m.ttl = u32::MAX);
        assert!(e.reason.contains("TTL"), "{e}");
        let e = bad(&|m| m.rdata.clear());
        assert!(e.reason.contains("no RDATA"), "{e}");
        let e = bad(&|m| {
            let id = m.id.as_mut().unwrap();
            id.rtype = 50;
            id.covered = 0;
            // Hash algorithm 1, flags 1, 0 iterations, no salt, a hash length of 20 and 3 octets.
            m.rdata = vec![vec![1, 1, 0, 0, 0, 20, 1, 2, 3]];
        });
        assert!(e.reason.contains("malformed 50"), "{e}");
        let e = bad(&|m| m.id = None);
        assert_eq!(e.field, "id");
    }

    #[test]
    fn every_change_round_trips_through_bytes() {
        let batch = ChangeBatch {
            after: 10,
            upto: 42,
            changes: every_change(),
        };
        let bytes = pb::ChangeBatch::from(&batch).encode_to_vec();
        let decoded = pb::ChangeBatch::decode(bytes.as_slice()).unwrap();
        assert_eq!(ChangeBatch::try_from(decoded).unwrap(), batch);
    }

    fn pb_domain() -> pb::Domain {
        pb::Domain::from(&domain())
    }

    fn domain_err(d: pb::Domain) -> ConvertError {
        Domain::try_from(d).unwrap_err()
    }

    #[test]
    fn malformed_domains_are_refused_with_their_field() {
        let mut d = pb_domain();
        d.name = "foo..test".into();
        let e = domain_err(d);
        assert_eq!((e.object, e.field), ("domain", "name"));

        let mut d = pb_domain();
        d.name = "x".repeat(64) + ".test";
        assert_eq!(domain_err(d).field, "name");

        let mut d = pb_domain();
        d.zone = "other".into();
        assert_eq!(domain_err(d).field, "zone");

        let mut d = pb_domain();
        d.nameservers.push("bad name.test".into());
        assert_eq!(domain_err(d).field, "nameservers");

        let mut d = pb_domain();
        d.statuses.push("clienthold".into());
        assert_eq!(domain_err(d).field, "statuses");

        let mut d = pb_domain();
        d.ds[0].digest.pop();
        let e = domain_err(d);
        assert_eq!(e.field, "ds.digest");
        assert!(e.to_string().contains("needs 32"), "{e}");

        let mut d = pb_domain();
        d.ds[0].key_tag = 65536;
        assert_eq!(domain_err(d).field, "ds.key_tag");

        let mut d = pb_domain();
        d.ds[0].algorithm = 256;
        assert_eq!(domain_err(d).field, "ds.algorithm");

        let mut d = pb_domain();
        d.ds[0].digest_type = 3;
        assert_eq!(domain_err(d).field, "ds.digest");
    }

    #[test]
    fn malformed_objects_are_refused() {
        let mut h = pb::Host::from(&Host {
            name: n("ns1.foo.test"),
            addresses: vec![],
            registrar: None,
            created: Timestamp(0),
            updated: Timestamp(0),
        });
        h.addresses.push(vec![1, 2, 3]);
        assert_eq!(Host::try_from(h).unwrap_err().field, "addresses");

        let z = pb::Zone {
            name: "test".into(),
            soa: None,
            ..Default::default()
        };
        assert_eq!(Zone::try_from(z).unwrap_err().field, "soa");
        let z = pb::Zone {
            name: "test".into(),
            soa: Some(pb::Soa {
                mname: "a.nic.test".into(),
                rname: "hostmaster.nic.test".into(),
                ..Default::default()
            }),
            serial: -1,
            ..Default::default()
        };
        assert_eq!(Zone::try_from(z).unwrap_err().field, "serial");

        assert_eq!(
            Change::try_from(pb::Change { change: None })
                .unwrap_err()
                .field,
            "change"
        );
        assert!(
            Change::try_from(pb::Change {
                change: Some(PbChange::DomainRemoved(String::new()))
            })
            .is_err()
        );
        assert!(
            Change::try_from(pb::Change {
                change: Some(PbChange::ContactRemoved(String::new()))
            })
            .is_err()
        );
        let backwards = pb::ChangeBatch {
            after: 5,
            upto: 4,
            changes: vec![],
        };
        assert_eq!(ChangeBatch::try_from(backwards).unwrap_err().field, "upto");
        let negative = pb::ChangeBatch {
            after: -1,
            upto: 4,
            changes: vec![],
        };
        assert_eq!(ChangeBatch::try_from(negative).unwrap_err().field, "after");

        let chunk = pb::SnapshotChunk {
            serial: 3,
            index: 2,
            count: 2,
            total_objects: 0,
            objects: vec![],
        };
        assert_eq!(Chunk::try_from(chunk).unwrap_err().field, "index");
        let chunk = pb::SnapshotChunk {
            serial: 3,
            index: 0,
            count: 1,
            total_objects: 1,
            objects: vec![
                pb::Change::from(&Change::DomainRemoved(n("x.test")))
                    .encode_to_vec()
                    .into(),
            ],
        };
        assert_eq!(Chunk::try_from(chunk).unwrap_err().field, "objects");
        let chunk = pb::SnapshotChunk {
            serial: 3,
            index: 0,
            count: 1,
            total_objects: 1,
            objects: vec![vec![0xff, 0xff].into()],
        };
        assert_eq!(Chunk::try_from(chunk).unwrap_err().field, "objects");
    }

    /// Arbitrary bytes never panic the decoder or the conversions.
    #[test]
    fn garbage_never_panics() {
        let good = pb::ChangeBatch::from(&ChangeBatch {
            after: 1,
            upto: 2,
            changes: every_change(),
        })
        .encode_to_vec();
        // Deterministic corruption: flip, truncate and splice at many positions.
        for i in 0..good.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[i] ^= mask;
                if let Ok(msg) = pb::ChangeBatch::decode(bytes.as_slice()) {
                    let _ = ChangeBatch::try_from(msg);
                }
            }
            if let Ok(msg) = pb::ChangeBatch::decode(&good[..i]) {
                let _ = ChangeBatch::try_from(msg);
            }
        }
    }

    fn settings() -> SatelliteSettings {
        SatelliteSettings {
            checkin_interval: Duration::from_secs(60),
            dns: Some(DnsListen {
                udp: vec!["127.0.0.1:5353".parse().unwrap()],
                tcp: vec!["[::1]:5353".parse().unwrap()],
                tcp_idle_timeout: Some(Duration::from_millis(2500)),
                tcp_max_connections: Some(100),
                tcp_max_connections_per_address: Some(4),
                tcp_max_queries: Some(1000),
                udp_batch: Some(16),
                udp_reuseport: Some(false),
                cpu_affinity: vec![1, 0],
            }),
            whois: Some(WhoisListen {
                tcp: vec!["127.0.0.1:4343".parse().unwrap()],
                max_connections: Some(100),
                timeout: Some(Duration::from_secs(10)),
                max_connections_per_address: Some(8),
            }),
            rdap: Some(RdapListen {
                http: vec!["127.0.0.1:8080".parse().unwrap()],
                https: vec!["[::1]:8443".parse().unwrap()],
                tls: Some(RdapTls {
                    cert: "/etc/orrery/rdap.pem".into(),
                    key: "/etc/orrery/rdap.key".into(),
                }),
                base_url: Some("https://rdap.nic.test/".into()),
                max_connections: Some(500),
                timeout: Some(Duration::from_millis(2500)),
                trusted_proxies: vec![
                    Prefix::parse("10.0.0.0/8").unwrap(),
                    Prefix::parse("2001:db8::1").unwrap(),
                ],
                max_connections_per_address: Some(16),
            }),
            workers: Some(2),
            memory_budget: Some(1 << 30),
            nsid: Some(b"sat1".to_vec()),
            hostname: Some("sat1.example".into()),
            selector_toml: "[[chains]]\nname = \"main\"\nleaves = []\n".into(),
            rds_selector_toml: "[[chains]]\nname = \"rds\"\nleaves = []\n".into(),
            metrics: Some("127.0.0.1:9153".parse().unwrap()),
            xfr: Some(xfr()),
            // Not the default, so that the round trip shows the field is carried.
            serve_expired: false,
        }
    }

    fn xfr() -> XfrSettings {
        XfrSettings {
            keys: vec![TsigKey {
                name: n("sec1.key"),
                algorithm: TsigAlgorithm::HmacSha256,
                secret: vec![7; 32],
            }],
            acl: vec![
                XfrAclRule {
                    prefixes: vec![Prefix::parse("127.0.0.0/8").unwrap()],
                    key: Some(n("sec1.key")),
                },
                XfrAclRule {
                    prefixes: vec![Prefix::parse("::1").unwrap()],
                    key: None,
                },
            ],
            notify: vec![NotifyTarget {
                address: "127.0.0.1:5301".parse().unwrap(),
                key: Some(n("sec1.key")),
            }],
            max_transfers: Some(4),
            max_transfers_per_address: Some(1),
            transfers_per_minute: Some(10),
            idle_timeout: Some(Duration::from_secs(3)),
            total_timeout: Some(Duration::from_secs(30)),
            ixfr_window: Some(50),
            catalog_zone: Some(n("catalog.invalid")),
        }
    }

    /// The transfer settings travel whole and every field a peer could get wrong is refused
    /// with its name; the secret never appears in a debug print.
    #[test]
    fn a_catalog_inside_a_served_zone_is_refused() {
        let zones = [n("tld"), n("other")];
        let with = |catalog: &str| XfrSettings {
            catalog_zone: Some(n(catalog)),
            ..XfrSettings::default()
        };
        assert_eq!(with("catalog.invalid").check_catalog(&zones), Ok(()));
        assert_eq!(XfrSettings::default().check_catalog(&zones), Ok(()));
        // A parent of a served zone is a zone of its own: its names under `zones.` are not
        // the served zone's.
        assert_eq!(with("cat").check_catalog(&[n("x.cat")]), Ok(()));
        let e = with("tld").check_catalog(&zones).unwrap_err();
        assert_eq!(e.zone, n("tld"));
        assert!(e.to_string().contains("is a served zone"), "{e}");
        let e = with("catalog.other").check_catalog(&zones).unwrap_err();
        assert_eq!(e.zone, n("other"));
        assert!(
            e.to_string()
                .starts_with("xfr.catalog_zone catalog.other: lies inside the served zone other"),
            "{e}"
        );
    }

    #[test]
    fn xfr_settings_travel_and_are_checked() {
        let s = settings();
        let back = SatelliteSettings::try_from(pb::SatelliteConfig::from(&s)).unwrap();
        assert_eq!(back.xfr, s.xfr);
        let mut other = s.clone();
        other.xfr.as_mut().unwrap().keys[0].secret[0] = 8;
        assert_ne!(
            other.version(),
            s.version(),
            "a new secret is a new version"
        );
        assert!(!format!("{:?}", s.xfr).contains("7, 7"));
        fn x(msg: &mut pb::SatelliteConfig) -> &mut pb::XfrService {
            msg.xfr.as_mut().unwrap()
        }
        type Edit = fn(&mut pb::SatelliteConfig);
        let cases: [(Edit, &str); 10] = [
            (
                |m| x(m).keys[0].algorithm = "hmac-md5".into(),
                "xfr.keys.algorithm",
            ),
            (|m| x(m).keys[0].secret.truncate(8), "xfr.keys.secret"),
            (|m| x(m).keys[0].name = "bad..name".into(), "xfr.keys.name"),
            (
                |m| {
                    let k = x(m).keys[0].clone();
                    x(m).keys.push(k);
                },
                "xfr.keys.name",
            ),
            (|m| x(m).acl[0].key = "other.key".into(), "xfr.acl.key"),
            (|m| x(m).acl[0].prefixes.clear(), "xfr.acl.prefixes"),
            (
                |m| x(m).acl[1].prefixes[0] = "10.0.0.0/33".into(),
                "xfr.acl.prefixes",
            ),
            (
                |m| x(m).notify[0].address = "localhost:53".into(),
                "xfr.notify.address",
            ),
            (
                |m| x(m).ixfr_window = MAX_IXFR_WINDOW + 1,
                "xfr.ixfr_window",
            ),
            (|m| m.dns.as_mut().unwrap().tcp.clear(), "xfr"),
        ];
        for (edit, field) in cases {
            assert_eq!(settings_err(msg_with(edit)).field, field);
        }
        // Names compare case-insensitively, as TSIG key names do (RFC 8945 §4.2).
        let msg = msg_with(|m| x(m).acl[0].key = "SEC1.Key.".into());
        assert!(SatelliteSettings::try_from(msg).is_ok());
        assert_eq!(
            TsigAlgorithm::from_name("HMAC-SHA256."),
            Some(TsigAlgorithm::HmacSha256)
        );
    }

    fn settings_err(msg: pb::SatelliteConfig) -> ConvertError {
        SatelliteSettings::try_from(msg).unwrap_err()
    }

    /// The message of [`settings`] with `edit` applied.
    fn msg_with(edit: impl FnOnce(&mut pb::SatelliteConfig)) -> pb::SatelliteConfig {
        let mut msg = pb::SatelliteConfig::from(&settings());
        edit(&mut msg);
        msg
    }

    fn rdap_of(msg: &mut pb::SatelliteConfig) -> &mut pb::RdapService {
        msg.rdap.as_mut().unwrap()
    }

    #[test]
    fn settings_round_trip_and_version() {
        let s = settings();
        let msg = pb::SatelliteConfig::from(&s);
        assert_eq!(msg.version, s.version());
        let back = SatelliteSettings::try_from(msg).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.version(), s.version());
        let mut other = s.clone();
        other.checkin_interval = Duration::from_secs(30);
        assert_ne!(other.version(), s.version());
        let mut other = s.clone();
        other.rds_selector_toml.clear();
        assert_ne!(other.version(), s.version());
        let mut other = s.clone();
        other.rdap.as_mut().unwrap().base_url = None;
        assert_ne!(other.version(), s.version());
        let mut other = s.clone();
        other.whois.as_mut().unwrap().timeout = None;
        assert_ne!(other.version(), s.version());
        let mut other = s.clone();
        other.rdap.as_mut().unwrap().trusted_proxies.pop();
        assert_ne!(other.version(), s.version());
        let mut other = s.clone();
        other.whois.as_mut().unwrap().max_connections_per_address = None;
        assert_ne!(other.version(), s.version());
        let mut other = s.clone();
        other.metrics = None;
        assert_ne!(other.version(), s.version());
        let mut other = s.clone();
        other.serve_expired = !s.serve_expired;
        assert_ne!(other.version(), s.version());

        // Nothing optional set also survives the trip: no services besides DNS, empty texts.
        let bare = SatelliteSettings {
            whois: None,
            rdap: None,
            workers: None,
            memory_budget: None,
            nsid: None,
            hostname: None,
            selector_toml: String::new(),
            rds_selector_toml: String::new(),
            metrics: None,
            xfr: None,
            serve_expired: true,
            ..s.clone()
        };
        let back = SatelliteSettings::try_from(pb::SatelliteConfig::from(&bare)).unwrap();
        assert_eq!(back, bare);

        let mut msg = pb::SatelliteConfig::from(&s);
        msg.metrics = "localhost:9153".into();
        assert_eq!(
            SatelliteSettings::try_from(msg).unwrap_err().field,
            "metrics"
        );

        let mut msg = pb::SatelliteConfig::from(&s);
        msg.dns.as_mut().unwrap().udp.push("127.0.0.1".into());
        assert_eq!(
            SatelliteSettings::try_from(msg).unwrap_err().field,
            "dns.udp"
        );
        let mut msg = pb::SatelliteConfig::from(&s);
        msg.checkin_interval_ms = 0;
        assert_eq!(
            SatelliteSettings::try_from(msg).unwrap_err().field,
            "checkin_interval_ms"
        );
    }

    #[test]
    fn service_defaults_travel_as_zero() {
        let msg = msg_with(|m| {
            let w = m.whois.as_mut().unwrap();
            (w.max_connections, w.timeout_ms) = (0, 0);
            let r = rdap_of(m);
            (r.max_connections, r.timeout_ms, r.base_url) = (0, 0, String::new());
        });
        let s = SatelliteSettings::try_from(msg).unwrap();
        let whois = s.whois.unwrap();
        assert_eq!((whois.max_connections, whois.timeout), (None, None));
        let rdap = s.rdap.unwrap();
        assert_eq!((rdap.max_connections, rdap.timeout), (None, None));
        assert_eq!(rdap.base_url, None);

        // A timeout below a millisecond is sent as 1 ms, not as 0 ("the default").
        let mut s = settings();
        s.whois.as_mut().unwrap().timeout = Some(Duration::from_micros(10));
        assert_eq!(pb::SatelliteConfig::from(&s).whois.unwrap().timeout_ms, 1);
    }

    #[test]
    fn malformed_whois_and_rdap_are_refused_with_their_field() {
        let e = settings_err(msg_with(|m| m.whois.as_mut().unwrap().tcp.clear()));
        assert_eq!((e.object, e.field), ("config", "whois.tcp"));
        assert!(e.reason.contains("no address"), "{e}");
        let e = settings_err(msg_with(|m| {
            m.whois.as_mut().unwrap().tcp = vec!["localhost:43".into()];
        }));
        assert_eq!(e.field, "whois.tcp");

        let e = settings_err(msg_with(|m| {
            let r = rdap_of(m);
            r.http.clear();
            r.https.clear();
        }));
        assert_eq!(e.field, "rdap");
        let e = settings_err(msg_with(|m| rdap_of(m).http.push("127.0.0.1".into())));
        assert_eq!(e.field, "rdap.http");
        let e = settings_err(msg_with(|m| rdap_of(m).https.push(":443".into())));
        assert_eq!(e.field, "rdap.https");

        // HTTPS needs both files; files need HTTPS.
        let e = settings_err(msg_with(|m| {
            let r = rdap_of(m);
            r.tls_cert_file.clear();
            r.tls_key_file.clear();
        }));
        assert_eq!(e.field, "rdap.tls_cert_file");
        assert!(e.reason.contains("https"), "{e}");
        let e = settings_err(msg_with(|m| rdap_of(m).tls_key_file.clear()));
        assert_eq!(e.field, "rdap.tls_key_file");
        let e = settings_err(msg_with(|m| rdap_of(m).tls_cert_file.clear()));
        assert_eq!(e.field, "rdap.tls_cert_file");
        let e = settings_err(msg_with(|m| rdap_of(m).https.clear()));
        assert_eq!(e.field, "rdap.tls_cert_file");
        assert!(e.reason.contains("no https address"), "{e}");
        let e = settings_err(msg_with(|m| rdap_of(m).tls_key_file = "rdap.key".into()));
        assert_eq!(e.field, "rdap.tls_key_file");
        assert!(e.reason.contains("absolute"), "{e}");

        for bad in [
            "https://rdap.nic.test",
            "ftp://rdap.nic.test/",
            "rdap.nic.test/",
            "https:///",
            "https://rdap nic.test/",
        ] {
            let e = settings_err(msg_with(|m| rdap_of(m).base_url = bad.into()));
            assert_eq!(e.field, "rdap.base_url", "{bad}");
        }
        for bad in ["10.0.0.0/33", "proxy.example", ""] {
            let e = settings_err(msg_with(|m| rdap_of(m).trusted_proxies.push(bad.into())));
            assert_eq!(e.field, "rdap.trusted_proxies", "{bad}");
        }
    }

    #[test]
    fn dns_settings_travel_and_are_checked() {
        // Every DNS field changes the version: the master resends a changed one.
        let s = settings();
        let edits: [fn(&mut DnsListen); 7] = [
            |d| d.tcp_idle_timeout = None,
            |d| d.tcp_max_connections = None,
            |d| d.tcp_max_connections_per_address = None,
            |d| d.tcp_max_queries = None,
            |d| d.udp_batch = None,
            |d| d.udp_reuseport = Some(true),
            |d| d.cpu_affinity.clear(),
        ];
        for edit in edits {
            let mut other = s.clone();
            edit(other.dns.as_mut().unwrap());
            assert_ne!(other.version(), s.version());
            let back = SatelliteSettings::try_from(pb::SatelliteConfig::from(&other)).unwrap();
            assert_eq!(back, other);
        }
        // Defaults travel as zero (absent for the socket layout) and come back as `None`.
        let bare = DnsListen {
            udp: vec!["127.0.0.1:53".parse().unwrap()],
            ..DnsListen::default()
        };
        let msg = pb::DnsService::from(&bare);
        assert_eq!(
            (msg.tcp_idle_timeout_ms, msg.udp_batch, msg.udp_reuseport),
            (0, 0, None)
        );
        let dns = |edit: fn(&mut pb::DnsService)| {
            settings_err(msg_with(|m| edit(m.dns.as_mut().unwrap())))
        };
        let e = dns(|d| d.udp_batch = MAX_UDP_BATCH + 1);
        assert_eq!(
            (e.field, e.reason.as_str()),
            ("dns.udp_batch", "65, at most 64")
        );
        let e = dns(|d| d.cpu_affinity = vec![0, MAX_CPUS]);
        assert_eq!(e.field, "dns.cpu_affinity");
        let e = dns(|d| d.tcp_max_connections = MAX_TCP_CONNECTIONS + 1);
        assert_eq!(e.field, "dns.tcp_max_connections");
        let e = dns(|d| {
            d.udp.clear();
            d.tcp.clear();
        });
        assert_eq!(
            (e.field, e.reason.as_str()),
            ("dns", "no udp or tcp address")
        );
        let ok = msg_with(|m| {
            let d = m.dns.as_mut().unwrap();
            (d.udp_batch, d.tcp_max_connections) = (MAX_UDP_BATCH, MAX_TCP_CONNECTIONS);
        });
        let d = SatelliteSettings::try_from(ok).unwrap().dns.unwrap();
        assert_eq!(d.udp_batch, Some(MAX_UDP_BATCH));
    }

    #[test]
    fn workers_over_the_cap_are_refused() {
        let e = settings_err(msg_with(|m| m.workers = MAX_WORKERS + 1));
        assert_eq!(e.field, "workers");
        assert_eq!(e.reason, "1025, at most 1024");
        let ok = SatelliteSettings::try_from(msg_with(|m| m.workers = MAX_WORKERS)).unwrap();
        assert_eq!(ok.workers, Some(MAX_WORKERS));
    }

    #[test]
    fn base_urls() {
        for good in [
            "https://rdap.nic.test/",
            "http://192.0.2.1:8080/",
            "https://nic.test/rdap/",
        ] {
            assert_eq!(RdapListen::check_base_url(good), Ok(()), "{good}");
        }
        assert_eq!(
            RdapListen::check_base_url("https://rdap.nic.test"),
            Err("must end with /")
        );
        assert_eq!(
            RdapListen::check_base_url("HTTPS://rdap.nic.test/"),
            Err("must start with http:// or https://")
        );
        assert_eq!(RdapListen::check_base_url("http://"), Err("has no host"));
        assert_eq!(
            RdapListen::check_base_url("https://rdap.nic.test/\n"),
            Err("must end with /")
        );
        assert_eq!(
            RdapListen::check_base_url("https://rdap.nic.test/a\tb/"),
            Err("contains spaces or control characters")
        );
    }
}
