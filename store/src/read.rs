//! Typed, consistent reads of the store as `orrery_proto` model objects.
//!
//! A whole zone is read inside one snapshot transaction and *streamed* to a visitor in name
//! order, so a caller that writes as it goes (the generator) keeps flat memory however large the
//! zone. The same row-to-model conversions serve single-object reads, the journal follower and
//! `orrery-admin bad-rows`, and they check every row: a malformed name, address, status, DS,
//! number or date in the database becomes a [`BadRow`] naming the object, table and key, never
//! a model object with a silently wrong value. Single-object reads and zone reads fail with
//! [`StoreError::BadRow`]; the whole-registry read and the journal reads *quarantine* the row
//! (report it and go on), so one bad row never stops the rest of the registry.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use orrery_proto::{
    Contact, Domain, Ds, EppStatus, Host, Name, Registrar, Serial, Soa, Timestamp, Zone,
};

use sqlx::AssertSqlSafe;

use crate::dialect::Dialect;
use crate::{Result, Store, StoreError, on_pool};

/// Which hosts of a zone [`Store::visit_zone`] yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostSelection {
    /// Only hosts whose addresses belong in the zone's DNS data: in the zone, with addresses,
    /// and used by a delegated domain or as an apex nameserver. This is what the generator
    /// publishes and what a satellite serves. A host stays published while a delegated domain
    /// uses it even if its own superordinate domain is on hold: a hold on one domain must not
    /// break the delegations of others (the glue is then authoritative data in the zone).
    Published,
    /// Every host object in the zone.
    All,
}

/// One item of a zone read by [`Store::visit_zone`]: first the zone (and its DNSSEC state), then every domain in name
/// order, then the selected hosts in name order.
#[derive(Debug)]
pub enum ZoneItem<'a> {
    /// `serial` is the journal head of the snapshot; `zone_serial` the zone's serial
    /// ([`Zone::serial`]: the last committed change to the zone, the source of its SOA serial,
    /// the same on every server built from this state; it changes only when the zone does).
    Zone {
        zone: &'a Zone,
        serial: Serial,
        zone_serial: Serial,
    },
    /// The zone's DNSSEC policy and keys, right after the zone, when it has a policy (read in
    /// the same snapshot: the keys of this serial).
    Dnssec(orrery_proto::dnssec::ZoneDnssec),
    Domain(Domain),
    Host(Host),
}

/// A row (or a row's dependent rows) that cannot become a model object.
///
/// Readers that quarantine report it instead of the object, and never as the object's absence:
/// a consumer keeps the last good version it has (a published delegation is not removed because
/// its new row is unreadable).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BadRow {
    /// The kind of object the row belongs to, as the journal names it (`zone`, `domain`,
    /// `host`, `contact`, `registrar`).
    pub object: &'static str,
    /// The object's key as stored (name or handle): the journal key of its changes.
    pub key: String,
    /// The table holding the bad value (`host_address` for a host's address, …).
    pub table: &'static str,
    pub reason: String,
}

impl BadRow {
    /// For a zone, domain or host: the name of the object the row stands for, its key folded
    /// to canonical form (a row stored as `X.test.` stands for `x.test`). `None` for contacts,
    /// registrars, and keys that are no name at all (no reader ever accepted such an object).
    pub fn object_name(&self) -> Option<Name> {
        if !matches!(self.object, "zone" | "domain" | "host") {
            return None;
        }
        Name::from_ascii(&self.key).ok()
    }
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bad row in table {} ({} {:?}): {}",
            self.table, self.object, self.key, self.reason
        )
    }
}

impl From<BadRow> for StoreError {
    fn from(b: BadRow) -> Self {
        Self::BadRow {
            table: b.table,
            key: b.key,
            reason: b.reason,
        }
    }
}

pub(crate) fn bad_row(
    object: &'static str,
    table: &'static str,
    key: &str,
    reason: impl ToString,
) -> BadRow {
    BadRow {
        object,
        key: key.to_owned(),
        table,
        reason: reason.to_string(),
    }
}

pub(crate) type RowResult<T> = std::result::Result<T, BadRow>;

/// Streams the rows of `$sql` (with optional binds) as `$row` through `$tx`, giving each, turned
/// into a model object by `$conv`, to `$visit`. Errors map through `$db`.
macro_rules! stream_rows {
    ($tx:expr, $row:ty, $sql:expr, [$($bind:expr),*], $db:expr, |$r:ident| $item:expr, $visit:expr) => {{
        let q = sqlx::query_as::<_, $row>(AssertSqlSafe($sql.as_str()));
        $(let q = q.bind($bind);)*
        let mut rows = q.fetch(&mut *$tx);
        while let Some($r) = rows.try_next().await.map_err($db)? {
            $visit($item)?;
        }
    }};
}

/// A stored name: it must be in the canonical form the store writes (lower case, no trailing
/// dot). A name stored otherwise is a bad row, not folded: its journal key would not be the key
/// of the object it folds to, and a reader would see an upsert and a removal of one object.
fn parse_name(object: &'static str, table: &'static str, key: &str, text: &str) -> RowResult<Name> {
    let name = Name::from_ascii(text)
        .map_err(|e| bad_row(object, table, key, format!("name {text:?}: {e}")))?;
    if name.to_string() != text {
        return Err(bad_row(
            object,
            table,
            key,
            format!("name {text:?} is not canonical (lower case, no trailing dot)"),
        ));
    }
    Ok(name)
}

fn parse_names(
    object: &'static str,
    table: &'static str,
    key: &str,
    list: Option<&str>,
) -> RowResult<Vec<Name>> {
    let mut names = list
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| parse_name(object, table, key, s))
        .collect::<RowResult<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

/// A non-negative integer column. `None` is what [`Dialect::int`] reads for a value that is not
/// an integer at all (SQLite stores any type in any column).
fn u32_field(
    object: &'static str,
    table: &'static str,
    key: &str,
    field: &str,
    v: Option<i32>,
) -> RowResult<u32> {
    let v = v.ok_or_else(|| bad_row(object, table, key, format!("{field} is not an integer")))?;
    u32::try_from(v).map_err(|_| bad_row(object, table, key, format!("{field} {v} is negative")))
}

/// A timestamp column read by [`Dialect::epoch`]: `None` when it holds no valid date.
fn time_field(
    object: &'static str,
    table: &'static str,
    key: &str,
    field: &str,
    v: Option<i64>,
) -> RowResult<Timestamp> {
    v.map(Timestamp).ok_or_else(|| {
        bad_row(
            object,
            table,
            key,
            format!("{field} is not a date and time"),
        )
    })
}

/// The serial of zone `z` (docs/ARCHITECTURE.md, "SOA serials"): the last journal serial of
/// the zone (an index probe on `journal_zone`), or the last one pruned from the journal
/// (`zone_serial`), whichever is larger. A zone with neither (impossible while the triggers are
/// on) takes the journal head, the serial every zone had before per-zone serials, so the
/// generator and the satellites still agree.
pub(crate) const ZONE_SERIAL_SQL: &str = "COALESCE((SELECT MAX(t.s) FROM (\
       SELECT MAX(j.serial) AS s FROM journal j WHERE j.zone_id = z.id \
       UNION ALL SELECT f.serial FROM zone_serial f WHERE f.zone_id = z.id) t), \
     (SELECT MAX(j.serial) FROM journal j), 0)";

#[derive(sqlx::FromRow)]
pub(crate) struct ZoneRow {
    pub(crate) id: i64,
    name: String,
    soa_mname: String,
    soa_rname: String,
    soa_refresh: Option<i32>,
    soa_retry: Option<i32>,
    soa_expire: Option<i32>,
    soa_minimum: Option<i32>,
    soa_ttl: Option<i32>,
    ns_ttl: Option<i32>,
    ds_ttl: Option<i32>,
    ns: Option<String>,
    serial: i64,
}

impl ZoneRow {
    pub(crate) fn select(sql: Dialect, filter: &str) -> String {
        format!(
            "SELECT z.id, z.name, z.soa_mname, z.soa_rname, {} AS soa_refresh, {} AS soa_retry, \
             {} AS soa_expire, {} AS soa_minimum, {} AS soa_ttl, {} AS ns_ttl, {} AS ds_ttl, \
             (SELECT {} FROM zone_ns zn JOIN host h ON h.id = zn.host_id \
               WHERE zn.zone_id = z.id) AS ns, \
             {} AS serial \
             FROM zone z {filter} ORDER BY z.name",
            sql.int("z.soa_refresh"),
            sql.int("z.soa_retry"),
            sql.int("z.soa_expire"),
            sql.int("z.soa_minimum"),
            sql.int("z.soa_ttl"),
            sql.int("z.ns_ttl"),
            sql.int("z.ds_ttl"),
            sql.agg("h.name", " "),
            ZONE_SERIAL_SQL
        )
    }

    /// The zone's key, for reports of a bad row.
    pub(crate) fn key(&self) -> &str {
        &self.name
    }

    pub(crate) fn into_model(self) -> RowResult<Zone> {
        let k = self.name.as_str();
        let num = |field, v| u32_field("zone", "zone", k, field, v);
        Ok(Zone {
            name: parse_name("zone", "zone", k, k)?,
            soa: Soa {
                mname: parse_name("zone", "zone", k, &self.soa_mname)?,
                rname: parse_name("zone", "zone", k, &self.soa_rname)?,
                refresh: num("soa_refresh", self.soa_refresh)?,
                retry: num("soa_retry", self.soa_retry)?,
                expire: num("soa_expire", self.soa_expire)?,
                minimum: num("soa_minimum", self.soa_minimum)?,
            },
            soa_ttl: num("soa_ttl", self.soa_ttl)?,
            ns_ttl: num("ns_ttl", self.ns_ttl)?,
            ds_ttl: num("ds_ttl", self.ds_ttl)?,
            nameservers: parse_names("zone", "zone_ns", k, self.ns.as_deref())?,
            serial: self.serial,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DomainRow {
    name: String,
    zone: String,
    roid: String,
    registrar: String,
    created: Option<i64>,
    updated: Option<i64>,
    expires: Option<i64>,
    registrant: Option<String>,
    admin: Option<String>,
    tech: Option<String>,
    billing: Option<String>,
    statuses: Option<String>,
    ns: Option<String>,
    ds: Option<String>,
}

impl DomainRow {
    pub(crate) fn select(sql: Dialect, filter: &str) -> String {
        format!(
            "SELECT d.name, z.name AS zone, d.roid, r.handle AS registrar, \
             {} AS created, {} AS updated, {} AS expires, \
             c1.handle AS registrant, c2.handle AS admin, c3.handle AS tech, c4.handle AS billing, \
             (SELECT {} FROM domain_status s WHERE s.domain_id = d.id) AS statuses, \
             (SELECT {} FROM domain_ns dn JOIN host h ON h.id = dn.host_id \
               WHERE dn.domain_id = d.id) AS ns, \
             (SELECT {} FROM ds WHERE ds.domain_id = d.id) AS ds \
             FROM domain d JOIN zone z ON z.id = d.zone_id \
             JOIN registrar r ON r.id = d.registrar_id \
             LEFT JOIN contact c1 ON c1.id = d.registrant_id \
             LEFT JOIN contact c2 ON c2.id = d.admin_id \
             LEFT JOIN contact c3 ON c3.id = d.tech_id \
             LEFT JOIN contact c4 ON c4.id = d.billing_id \
             {filter} ORDER BY d.name",
            sql.epoch("d.created"),
            sql.epoch("d.updated"),
            sql.epoch("d.expires"),
            sql.agg("s.status", " "),
            sql.agg("h.name", " "),
            sql.agg(
                &format!(
                    "{} || ' ' || {} || ' ' || {} || ' ' || ds.digest",
                    sql.text("ds.key_tag"),
                    sql.text("ds.algorithm"),
                    sql.text("ds.digest_type")
                ),
                ","
            ),
        )
    }

    /// The domain's key, for reports of a bad row.
    pub(crate) fn key(&self) -> &str {
        &self.name
    }

    pub(crate) fn into_model(self) -> RowResult<Domain> {
        let k = self.name.as_str();
        let name = parse_name("domain", "domain", k, k)?;
        let zone = parse_name("domain", "zone", k, &self.zone)?;
        // The store's model: a domain is registered directly below the apex of its zone.
        if name.parent().as_ref() != Some(&zone) {
            return Err(bad_row(
                "domain",
                "domain",
                k,
                format!("the domain is not directly below the apex of its zone {zone}"),
            ));
        }
        let mut statuses = self
            .statuses
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| {
                EppStatus::parse(s).ok_or_else(|| {
                    bad_row(
                        "domain",
                        "domain_status",
                        k,
                        format!("unknown EPP status {s:?}"),
                    )
                })
            })
            .collect::<RowResult<Vec<_>>>()?;
        statuses.sort();
        let mut ds = self
            .ds
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| parse_ds(s).map_err(|e| bad_row("domain", "ds", k, e)))
            .collect::<RowResult<Vec<_>>>()?;
        ds.sort_by(|a, b| {
            (a.key_tag, a.algorithm, a.digest_type, &a.digest).cmp(&(
                b.key_tag,
                b.algorithm,
                b.digest_type,
                &b.digest,
            ))
        });
        let time = |field, v| time_field("domain", "domain", k, field, v);
        let (created, updated, expires) = (
            time("created", self.created)?,
            time("updated", self.updated)?,
            time("expires", self.expires)?,
        );
        let nameservers = parse_names("domain", "domain_ns", k, self.ns.as_deref())?;
        Ok(Domain {
            name,
            zone,
            roid: self.roid,
            registrar: self.registrar,
            created,
            updated,
            expires,
            statuses,
            registrant: self.registrant,
            admin: self.admin,
            tech: self.tech,
            billing: self.billing,
            nameservers,
            ds,
        })
    }
}

/// Parses `KEYTAG ALGORITHM DIGESTTYPE HEX` (the DS presentation format, RFC 4034 §5.3) and
/// checks the digest length.
pub fn parse_ds(text: &str) -> Result<Ds, String> {
    let mut parts = text.split_whitespace();
    let mut num = |what: &str, max: u32| -> Result<u32, String> {
        let p = parts.next().ok_or_else(|| format!("missing {what}"))?;
        p.parse::<u32>()
            .ok()
            .filter(|v| *v <= max)
            .ok_or_else(|| format!("{what} {p:?} is not a number from 0 to {max}"))
    };
    let key_tag = num("key tag", 65535)? as u16;
    let algorithm = num("algorithm", 255)? as u8;
    let digest_type = num("digest type", 255)? as u8;
    let hex: String = parts.collect();
    if hex.is_empty() {
        return Err("missing digest".into());
    }
    let digest = decode_hex(&hex).ok_or_else(|| format!("digest {hex:?} is not hexadecimal"))?;
    let ds = Ds {
        key_tag,
        algorithm,
        digest_type,
        digest,
    };
    ds.check()?;
    Ok(ds)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct HostRow {
    name: String,
    registrar: Option<String>,
    created: Option<i64>,
    updated: Option<i64>,
    addresses: Option<String>,
}

impl HostRow {
    pub(crate) fn select(sql: Dialect, filter: &str) -> String {
        format!(
            "SELECT h.name, r.handle AS registrar, {} AS created, {} AS updated, \
             (SELECT {} FROM host_address a WHERE a.host_id = h.id) AS addresses \
             FROM host h LEFT JOIN registrar r ON r.id = h.registrar_id {filter} ORDER BY h.name",
            sql.epoch("h.created"),
            sql.epoch("h.updated"),
            sql.agg(&sql.addr("a.address"), " "),
        )
    }

    /// The condition for [`HostSelection::Published`] on host `h`.
    fn published_filter() -> &'static str {
        "AND EXISTS (SELECT 1 FROM host_address a WHERE a.host_id = h.id) \
         AND (EXISTS (SELECT 1 FROM zone_ns zn WHERE zn.host_id = h.id AND zn.zone_id = h.zone_id) \
              OR EXISTS (SELECT 1 FROM domain_ns dn JOIN domain d ON d.id = dn.domain_id \
                         WHERE dn.host_id = h.id AND NOT EXISTS (SELECT 1 FROM domain_status s \
                         WHERE s.domain_id = d.id AND s.status IN ('clientHold', 'serverHold'))))"
    }

    /// The host's key, for reports of a bad row.
    pub(crate) fn key(&self) -> &str {
        &self.name
    }

    pub(crate) fn into_model(self) -> RowResult<Host> {
        let k = self.name.as_str();
        let name = parse_name("host", "host", k, k)?;
        let mut addresses = self
            .addresses
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpAddr>().map_err(|_| {
                    bad_row(
                        "host",
                        "host_address",
                        k,
                        format!("{s:?} is not an IP address"),
                    )
                })
            })
            .collect::<RowResult<Vec<_>>>()?;
        addresses.sort();
        Ok(Host {
            name,
            addresses,
            registrar: self.registrar,
            created: time_field("host", "host", k, "created", self.created)?,
            updated: time_field("host", "host", k, "updated", self.updated)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ContactRow {
    handle: String,
    name: String,
    organisation: Option<String>,
    street: String,
    city: String,
    province: Option<String>,
    postcode: Option<String>,
    country: String,
    email: String,
    voice: Option<String>,
    fax: Option<String>,
    disclose: bool,
    created: Option<i64>,
    updated: Option<i64>,
}

impl ContactRow {
    pub(crate) fn select(sql: Dialect, filter: &str) -> String {
        format!(
            "SELECT c.handle, c.name, c.organisation, c.street, c.city, c.province, c.postcode, \
             c.country, c.email, c.voice, c.fax, c.disclose, {} AS created, {} AS updated \
             FROM contact c {filter} ORDER BY c.handle",
            sql.epoch("c.created"),
            sql.epoch("c.updated"),
        )
    }

    /// The contact's key, for reports of a bad row.
    pub(crate) fn key(&self) -> &str {
        &self.handle
    }

    /// The contact, checked with the rules its writes are checked with.
    pub(crate) fn into_model(self) -> RowResult<Contact> {
        let k = self.handle.as_str();
        let created = time_field("contact", "contact", k, "created", self.created)?;
        let updated = time_field("contact", "contact", k, "updated", self.updated)?;
        let contact = Contact {
            handle: self.handle.clone(),
            name: self.name,
            organisation: self.organisation,
            street: self
                .street
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            city: self.city,
            province: self.province,
            postcode: self.postcode,
            country: self.country,
            email: self.email,
            voice: self.voice,
            fax: self.fax,
            disclose: self.disclose,
            created,
            updated,
        };
        crate::write::check_contact(&contact)
            .map_err(|e| bad_row("contact", "contact", &self.handle, e))?;
        Ok(contact)
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RegistrarRow {
    handle: String,
    name: String,
    iana_id: Option<i64>,
    has_iana_id: bool,
    url: Option<String>,
    whois_server: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    abuse_email: Option<String>,
    abuse_phone: Option<String>,
}

impl RegistrarRow {
    pub(crate) fn select(sql: Dialect, filter: &str) -> String {
        format!(
            "SELECT g.handle, g.name, {} AS iana_id, (g.iana_id IS NOT NULL) AS has_iana_id, g.url, g.whois_server, g.email, g.phone, \
             g.abuse_email, g.abuse_phone FROM registrar g {filter} ORDER BY g.handle",
            sql.int("g.iana_id")
        )
    }

    /// The registrar's key, for reports of a bad row.
    pub(crate) fn key(&self) -> &str {
        &self.handle
    }

    pub(crate) fn into_model(self) -> RowResult<Registrar> {
        let iana_id = match self.iana_id {
            None if self.has_iana_id => {
                return Err(bad_row(
                    "registrar",
                    "registrar",
                    &self.handle,
                    "iana_id is not an integer",
                ));
            }
            None => None,
            Some(v) => Some(u32::try_from(v).map_err(|_| {
                bad_row(
                    "registrar",
                    "registrar",
                    &self.handle,
                    format!("iana_id {v} out of range"),
                )
            })?),
        };
        Ok(Registrar {
            handle: self.handle,
            name: self.name,
            iana_id,
            url: self.url,
            whois_server: self.whois_server,
            email: self.email,
            phone: self.phone,
            abuse_email: self.abuse_email,
            abuse_phone: self.abuse_phone,
        })
    }
}

impl Store {
    /// Every zone of the registry.
    pub async fn zones(&self) -> Result<Vec<Zone>> {
        let sql = ZoneRow::select(self.sql, "");
        let rows: Vec<ZoneRow> =
            on_pool!(self, p => sqlx::query_as(AssertSqlSafe(sql.as_str())).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(ZoneRow::into_model)
            .collect::<RowResult<_>>()?)
    }

    /// One zone by apex name.
    pub async fn zone(&self, apex: &Name) -> Result<Option<Zone>> {
        let sql = ZoneRow::select(self.sql, "WHERE z.name = $1");
        let row: Option<ZoneRow> = on_pool!(self, p => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(apex.to_string()).fetch_optional(p).await?);
        Ok(row.map(ZoneRow::into_model).transpose()?)
    }

    /// One domain by name.
    pub async fn domain(&self, name: &Name) -> Result<Option<Domain>> {
        let sql = DomainRow::select(self.sql, "WHERE d.name = $1");
        let row: Option<DomainRow> = on_pool!(self, p => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(name.to_string()).fetch_optional(p).await?);
        Ok(row.map(DomainRow::into_model).transpose()?)
    }

    /// One host by name.
    pub async fn host(&self, name: &Name) -> Result<Option<Host>> {
        let sql = HostRow::select(self.sql, "WHERE h.name = $1");
        let row: Option<HostRow> = on_pool!(self, p => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(name.to_string()).fetch_optional(p).await?);
        Ok(row.map(HostRow::into_model).transpose()?)
    }

    /// One contact by handle.
    pub async fn contact(&self, handle: &str) -> Result<Option<Contact>> {
        let sql = ContactRow::select(self.sql, "WHERE c.handle = $1");
        let row: Option<ContactRow> = on_pool!(self, p => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(handle).fetch_optional(p).await?);
        Ok(row.map(ContactRow::into_model).transpose()?)
    }

    /// One registrar by handle.
    pub async fn registrar(&self, handle: &str) -> Result<Option<Registrar>> {
        let sql = RegistrarRow::select(self.sql, "WHERE g.handle = $1");
        let row: Option<RegistrarRow> = on_pool!(self, p => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(handle).fetch_optional(p).await?);
        Ok(row.map(RegistrarRow::into_model).transpose()?)
    }

    /// Reads the zone at `apex` from one consistent snapshot and streams it to `visit`: the zone
    /// with its serials, then every domain in name order, then the selected hosts. Memory does
    /// not grow with the zone. Returns the snapshot's journal head, or `Ok(None)` when there is
    /// no such zone.
    pub async fn visit_zone<E>(
        &self,
        apex: &Name,
        hosts: HostSelection,
        mut visit: impl FnMut(ZoneItem<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<Option<Serial>, E>
    where
        E: From<StoreError>,
    {
        let zone_sql = ZoneRow::select(self.sql, "WHERE z.name = $1");
        let domain_sql = DomainRow::select(self.sql, "WHERE d.zone_id = $1");
        let host_filter = match hosts {
            HostSelection::All => "WHERE h.zone_id = $1".to_owned(),
            HostSelection::Published => {
                format!("WHERE h.zone_id = $1 {}", HostRow::published_filter())
            }
        };
        let host_sql = HostRow::select(self.sql, &host_filter);
        let snapshot = self.sql.snapshot_statement();
        let db = |e: sqlx::Error| E::from(StoreError::Sql(e));
        on_pool!(self, p => {
            let mut tx = p.begin().await.map_err(db)?;
            if let Some(stmt) = snapshot {
                sqlx::query(stmt).execute(&mut *tx).await.map_err(db)?;
            }
            let row: Option<ZoneRow> = sqlx::query_as(AssertSqlSafe(zone_sql.as_str()))
                .bind(apex.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let Some(row) = row else { return Ok(None) };
            let zone_id = row.id;
            let zone = row.into_model().map_err(StoreError::from)?;
            let zone_serial = zone.serial;
            let serial: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(serial), 0) FROM journal")
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            visit(ZoneItem::Zone { zone: &zone, serial, zone_serial })?;
            let policy: Option<crate::dnssec::PolicyRow> = sqlx::query_as(AssertSqlSafe(crate::dnssec::POLICY_SQL))
                .bind(zone_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if let Some(policy) = policy {
                let keys: Vec<crate::dnssec::KeyRow> = sqlx::query_as(AssertSqlSafe(crate::dnssec::KEYS_SQL))
                    .bind(zone_id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
                let d = crate::dnssec::into_model(&zone.name.to_string(), policy, keys).map_err(StoreError::from)?;
                visit(ZoneItem::Dnssec(d))?;
            }
            stream_rows!(tx, DomainRow, domain_sql, [zone_id], db, |row| ZoneItem::Domain(row.into_model().map_err(StoreError::from)?), visit);
            stream_rows!(tx, HostRow, host_sql, [zone_id], db, |row| ZoneItem::Host(row.into_model().map_err(StoreError::from)?), visit);
            tx.commit().await.map_err(db)?;
            Ok(Some(serial))
        })
    }
}

/// One item of the whole registry read by [`Store::visit_registry`], in this order: the
/// serial of the snapshot, then registrars, contacts, zones, hosts and domains. A row that
/// cannot become its object comes as [`RegistryItem::BadRow`] in its object's place.
#[derive(Debug)]
pub enum RegistryItem {
    Serial(Serial),
    Registrar(Registrar),
    Contact(Contact),
    Zone(Zone),
    Host(Host),
    Domain(Domain),
    /// The DNSSEC policy and keys of a zone that has a policy, after every zone and before the
    /// hosts (a zone whose policy or keys cannot be read comes as a [`RegistryItem::BadRow`]).
    Dnssec(Name, orrery_proto::dnssec::ZoneDnssec),
    /// A quarantined row: the object exists but cannot be read (it is not absent).
    BadRow(BadRow),
}

/// The item for one row: the object, or the bad row in its place.
fn item<T>(converted: RowResult<T>, wrap: impl FnOnce(T) -> RegistryItem) -> RegistryItem {
    converted.map_or_else(RegistryItem::BadRow, wrap)
}

impl Store {
    /// Reads the whole registry from one consistent snapshot and streams it to `visit`, starting
    /// with the journal serial the snapshot reflects (a follower continues from there with
    /// [`Store::changes_since`]). Every host is included, inside a zone or not. A bad row does
    /// not stop the read: it is given as [`RegistryItem::BadRow`] and the read goes on.
    pub async fn visit_registry<E>(
        &self,
        mut visit: impl FnMut(RegistryItem) -> std::result::Result<(), E>,
    ) -> std::result::Result<Serial, E>
    where
        E: From<StoreError>,
    {
        let registrar_sql = RegistrarRow::select(self.sql, "");
        let contact_sql = ContactRow::select(self.sql, "");
        let zone_sql = ZoneRow::select(self.sql, "");
        let host_sql = HostRow::select(self.sql, "");
        let domain_sql = DomainRow::select(self.sql, "");
        let snapshot = self.sql.snapshot_statement();
        let db = |e: sqlx::Error| E::from(StoreError::Sql(e));
        on_pool!(self, p => {
            let mut tx = p.begin().await.map_err(db)?;
            if let Some(stmt) = snapshot {
                sqlx::query(stmt).execute(&mut *tx).await.map_err(db)?;
            }
            let serial: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(serial), 0) FROM journal")
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            visit(RegistryItem::Serial(serial))?;
            stream_rows!(tx, RegistrarRow, registrar_sql, [], db, |row| item(row.into_model(), RegistryItem::Registrar), visit);
            stream_rows!(tx, ContactRow, contact_sql, [], db, |row| item(row.into_model(), RegistryItem::Contact), visit);
            stream_rows!(tx, ZoneRow, zone_sql, [], db, |row| item(row.into_model(), RegistryItem::Zone), visit);
            // The signed zones' policies and keys, in the same snapshot (zones are few).
            let signed: Vec<(i64, String)> = sqlx::query_as("SELECT z.id, z.name FROM zone z JOIN dnssec_policy p ON p.zone_id = z.id ORDER BY z.name")
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            for (zone_id, zone_name) in signed {
                // A zone name that does not parse is the zone's bad row, reported above.
                let Ok(apex) = Name::from_ascii(&zone_name) else { continue };
                let policy: Option<crate::dnssec::PolicyRow> = sqlx::query_as(AssertSqlSafe(crate::dnssec::POLICY_SQL))
                    .bind(zone_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                let Some(policy) = policy else { continue };
                let keys: Vec<crate::dnssec::KeyRow> = sqlx::query_as(AssertSqlSafe(crate::dnssec::KEYS_SQL))
                    .bind(zone_id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
                visit(item(crate::dnssec::into_model(&zone_name, policy, keys), |d| RegistryItem::Dnssec(apex, d)))?;
            }
            stream_rows!(tx, HostRow, host_sql, [], db, |row| item(row.into_model(), RegistryItem::Host), visit);
            stream_rows!(tx, DomainRow, domain_sql, [], db, |row| item(row.into_model(), RegistryItem::Domain), visit);
            tx.commit().await.map_err(db)?;
            Ok(serial)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registry_snapshot_holds_everything_at_one_serial() {
        let store = crate::testing::memory_store().await;
        store
            .load_synthetic(&crate::synthetic::SyntheticTld {
                zone: Name::from_ascii("test").unwrap(),
                domains: 200,
                seed: 9,
            })
            .await
            .unwrap();
        let mut counts = [0usize; 6];
        let mut order = Vec::new();
        let serial = store
            .visit_registry(|item| {
                let k = match item {
                    RegistryItem::Serial(_) => 0,
                    RegistryItem::Registrar(_) => 1,
                    RegistryItem::Contact(_) => 2,
                    RegistryItem::Zone(_) => 3,
                    RegistryItem::Host(_) => 4,
                    RegistryItem::Domain(_) => 5,
                    RegistryItem::Dnssec(..) => panic!("the synthetic zone is unsigned"),
                    RegistryItem::BadRow(b) => panic!("{b}"),
                };
                counts[k] += 1;
                if order.last() != Some(&k) {
                    order.push(k);
                }
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        assert_eq!(serial, store.head().await.unwrap());
        assert_eq!(
            order,
            vec![0, 1, 2, 3, 4, 5],
            "items come grouped, in order"
        );
        assert_eq!(counts[5], 200);
        assert_eq!(counts[3], 1);
        // The hosting pool outside the zone is included.
        assert!(counts[4] >= 5000, "{}", counts[4]);
    }

    #[test]
    fn ds_presentation_format() {
        let ds = parse_ds(&format!("12345 13 2 {}", "ab".repeat(32))).unwrap();
        assert_eq!((ds.key_tag, ds.algorithm, ds.digest_type), (12345, 13, 2));
        assert_eq!(ds.digest, vec![0xAB; 32]);
        assert!(parse_ds("1 13 2 abcd").unwrap_err().contains("needs 32"));
        assert!(parse_ds("70000 13 2 ab").unwrap_err().contains("key tag"));
        assert!(parse_ds("1 13 2 zz").unwrap_err().contains("hexadecimal"));
        assert!(parse_ds("1 13").unwrap_err().contains("digest type"));
    }
}
