//! Validated writes, as a registration system makes them: the administrative CLI's back end.
//!
//! Every operation checks all of its input first (names, zone, addresses, DS digests, the
//! objects it refers to) and reports the first problem as [`StoreError::Invalid`] or
//! [`StoreError::NotFound`] naming the field; only then does it write, in one transaction, so an
//! error writes nothing. The journal rows come from the database's triggers, as they would for
//! any other writer.

use std::net::IpAddr;

use orrery_proto::{Contact, Ds, EppStatus, Name, Registrar, Timestamp};
use sqlx::{AssertSqlSafe, Postgres, Sqlite, Transaction};

use crate::{Pool, Result, Store, StoreError};

/// A nameserver given for a domain or a zone, with the addresses to use as glue when the host
/// lies inside a zone of the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsSpec {
    pub name: Name,
    pub addresses: Vec<IpAddr>,
}

/// A zone to create.
#[derive(Clone, Debug)]
pub struct NewZone {
    pub name: Name,
    pub mname: Name,
    pub rname: Name,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
    pub soa_ttl: u32,
    pub ns_ttl: u32,
    pub ds_ttl: u32,
    pub nameservers: Vec<NsSpec>,
}

/// A domain to create.
#[derive(Clone, Debug)]
pub struct NewDomain {
    pub name: Name,
    pub registrar: String,
    pub registrant: Option<String>,
    pub admin: Option<String>,
    pub tech: Option<String>,
    pub billing: Option<String>,
    pub expires: Timestamp,
    pub statuses: Vec<EppStatus>,
    pub nameservers: Vec<NsSpec>,
    pub ds: Vec<Ds>,
}

/// Changes to a domain's own fields; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct DomainUpdate {
    pub registrar: Option<String>,
    pub registrant: Option<String>,
    pub admin: Option<String>,
    pub tech: Option<String>,
    pub billing: Option<String>,
    pub expires: Option<Timestamp>,
    pub add_statuses: Vec<EppStatus>,
    pub remove_statuses: Vec<EppStatus>,
}

/// EPP servers commonly cap a domain's nameservers at 13 (what fits a referral in 512 octets).
pub const MAX_NAMESERVERS: usize = 13;

/// A bound value.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    I64(i64),
    OptI64(Option<i64>),
    Text(String),
    Bool(bool),
}

/// A transaction on either backend, so each write is written once.
pub(crate) enum Tx {
    Pg(Transaction<'static, Postgres>),
    Lite(Transaction<'static, Sqlite>),
}

macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a.clone() {
                Arg::I64(v) => q.bind(v),
                Arg::OptI64(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
            };
        }
        q
    }};
}

impl Tx {
    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), waiting up to the pool's busy timeout for another writer: a deferred
    /// transaction would read first and then fail with `database is locked` on its first write,
    /// because SQLite refuses to upgrade a reader that another writer is ahead of (waiting
    /// could deadlock), however long the busy timeout.
    pub(crate) async fn begin(store: &Store) -> Result<Self> {
        Ok(match &store.pool {
            Pool::Postgres(p) => Self::Pg(p.begin().await?),
            Pool::Sqlite(p) => Self::Lite(p.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    pub(crate) async fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        let sql = AssertSqlSafe(sql.to_owned());
        Ok(match self {
            Self::Pg(tx) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Self::Lite(tx) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn opt_i64(&mut self, sql: &str, args: &[Arg]) -> Result<Option<i64>> {
        let sql = AssertSqlSafe(sql.to_owned());
        Ok(match self {
            Self::Pg(tx) => {
                bind_all!(sqlx::query_scalar(sql), args)
                    .fetch_optional(&mut **tx)
                    .await?
            }
            Self::Lite(tx) => {
                bind_all!(sqlx::query_scalar(sql), args)
                    .fetch_optional(&mut **tx)
                    .await?
            }
        })
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Self::Pg(tx) => tx.commit().await?,
            Self::Lite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    async fn id_of(
        &mut self,
        table: &'static str,
        key_col: &str,
        key: &str,
    ) -> Result<Option<i64>> {
        self.opt_i64(
            &format!("SELECT id FROM {table} WHERE {key_col} = $1"),
            &[Arg::Text(key.to_owned())],
        )
        .await
    }

    /// The id of an object that must exist, or NotFound naming the field that referred to it.
    async fn require(
        &mut self,
        table: &'static str,
        key_col: &str,
        key: &str,
        field: &'static str,
    ) -> Result<i64> {
        self.id_of(table, key_col, key)
            .await?
            .ok_or_else(|| StoreError::Invalid {
                field,
                reason: format!("{table} {key} does not exist"),
            })
    }
}

fn text(s: impl ToString) -> Arg {
    Arg::Text(s.to_string())
}

/// Checks an address usable as glue or an apex nameserver address.
pub fn check_address(field: &'static str, addr: &IpAddr) -> Result<()> {
    let bad = match addr {
        IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
    };
    if bad {
        return Err(StoreError::invalid(
            field,
            format!("{addr} is not a unicast host address"),
        ));
    }
    Ok(())
}

/// Checks a domain or host name against the registry's syntax rules: host name syntax and
/// IDNA2008 ([`Name::check_registry`]).
pub fn check_hostname(field: &'static str, name: &Name) -> Result<()> {
    if name.is_root() {
        return Err(StoreError::invalid(field, "the root is not a host name"));
    }
    name.check_registry()
        .map_err(|e| StoreError::invalid(field, format!("{name}: {e}")))
}

fn check_nameservers(field: &'static str, ns: &[NsSpec]) -> Result<()> {
    if ns.len() > MAX_NAMESERVERS {
        return Err(StoreError::invalid(
            field,
            format!("{} nameservers, at most {MAX_NAMESERVERS}", ns.len()),
        ));
    }
    for (i, a) in ns.iter().enumerate() {
        check_hostname(field, &a.name)?;
        if ns[..i].iter().any(|b| b.name == a.name) {
            return Err(StoreError::invalid(
                field,
                format!("{} is listed twice", a.name),
            ));
        }
        for addr in &a.addresses {
            check_address(field, addr)?;
        }
    }
    Ok(())
}

/// Checks a contact against the registry's rules (also applied to contacts read back, so a
/// row written around this check is a bad row, not a contact).
pub(crate) fn check_contact(c: &Contact) -> Result<()> {
    if c.handle.trim().is_empty() || c.handle.len() > 64 {
        return Err(StoreError::invalid("handle", "must be 1 to 64 characters"));
    }
    if c.name.trim().is_empty() {
        return Err(StoreError::invalid("name", "must not be empty"));
    }
    if !c.email.contains('@') {
        return Err(StoreError::invalid(
            "email",
            format!("{:?} is not an e-mail address", c.email),
        ));
    }
    if c.country.len() != 2 || !c.country.chars().all(|ch| ch.is_ascii_alphabetic()) {
        return Err(StoreError::invalid(
            "country",
            format!("{:?} is not an ISO 3166 alpha-2 code", c.country),
        ));
    }
    if c.street.len() > 3 {
        return Err(StoreError::invalid("street", "at most three street lines"));
    }
    Ok(())
}

fn check_ds(ds: &[Ds]) -> Result<()> {
    for d in ds {
        d.check()
            .map_err(|e| StoreError::invalid("ds", format!("key tag {}: {e}", d.key_tag)))?;
    }
    Ok(())
}

impl Store {
    /// The zone whose apex is the parent of `name`, as `(zone id, apex)`.
    async fn parent_zone(
        &self,
        tx: &mut Tx,
        field: &'static str,
        name: &Name,
    ) -> Result<(i64, Name)> {
        let parent = name.parent().unwrap_or_else(Name::root);
        match tx.id_of("zone", "name", &parent.to_string()).await? {
            Some(id) => Ok((id, parent)),
            None => Err(StoreError::invalid(
                field,
                format!("{name}: no zone of this registry is its parent ({parent})"),
            )),
        }
    }

    /// The zone of the registry that holds `name` (longest apex match), if any.
    async fn enclosing_zone(&self, tx: &mut Tx, name: &Name) -> Result<Option<(i64, Name)>> {
        let mut cur = name.parent();
        while let Some(n) = cur {
            if let Some(id) = tx.id_of("zone", "name", &n.to_string()).await? {
                return Ok(Some((id, n)));
            }
            cur = n.parent();
        }
        Ok(None)
    }

    /// Finds or creates the host objects of `ns` and sets the glue given, returning their ids.
    /// `own` is the domain being written (a host may be subordinate to it).
    async fn ensure_hosts(
        &self,
        tx: &mut Tx,
        field: &'static str,
        ns: &[NsSpec],
        own: Option<(&Name, i64)>,
        registrar_id: Option<i64>,
    ) -> Result<Vec<i64>> {
        let mut ids = Vec::with_capacity(ns.len());
        for spec in ns {
            let zone = self.enclosing_zone(tx, &spec.name).await?;
            let (zone_id, superordinate) = match &zone {
                None => {
                    if !spec.addresses.is_empty() {
                        return Err(StoreError::invalid(
                            field,
                            format!(
                                "{} is outside every zone of this registry: it takes no glue addresses",
                                spec.name
                            ),
                        ));
                    }
                    (None, None)
                }
                Some((zid, apex)) => {
                    let sup = spec.name.child_of(apex).filter(|s| *s != spec.name);
                    let sup_id = match &sup {
                        None => None,
                        Some(s) if own.is_some_and(|(n, _)| n == s) => own.map(|(_, id)| id),
                        Some(s) => tx.id_of("domain", "name", &s.to_string()).await?,
                    };
                    if sup.is_some() && sup_id.is_none() && own.is_some() {
                        return Err(StoreError::invalid(
                            field,
                            format!(
                                "{}: its superordinate domain {} does not exist",
                                spec.name,
                                sup.as_ref().map(ToString::to_string).unwrap_or_default()
                            ),
                        ));
                    }
                    (Some(*zid), sup_id)
                }
            };
            let existing = tx.id_of("host", "name", &spec.name.to_string()).await?;
            let id = match existing {
                Some(id) => id,
                None => {
                    if zone.is_some() && spec.addresses.is_empty() {
                        return Err(StoreError::invalid(
                            field,
                            format!(
                                "{} is inside a zone of this registry: give its glue (NAME=ADDRESS)",
                                spec.name
                            ),
                        ));
                    }
                    tx.opt_i64(
                        "INSERT INTO host(name, zone_id, domain_id, registrar_id) VALUES ($1, $2, $3, $4) RETURNING id",
                        &[text(&spec.name), Arg::OptI64(zone_id), Arg::OptI64(superordinate), Arg::OptI64(registrar_id)],
                    )
                    .await?
                    .ok_or_else(|| StoreError::invalid(field, "host insert returned nothing"))?
                }
            };
            if !spec.addresses.is_empty() {
                self.replace_addresses(tx, id, &spec.addresses).await?;
            }
            ids.push(id);
        }
        Ok(ids)
    }

    async fn replace_addresses(&self, tx: &mut Tx, host_id: i64, addrs: &[IpAddr]) -> Result<()> {
        tx.exec(
            "DELETE FROM host_address WHERE host_id = $1",
            &[Arg::I64(host_id)],
        )
        .await?;
        let insert = format!(
            "INSERT INTO host_address(host_id, address) VALUES ($1, {})",
            self.sql.inet_param(2)
        );
        for a in addrs {
            tx.exec(&insert, &[Arg::I64(host_id), text(a)]).await?;
        }
        tx.exec(
            &format!(
                "UPDATE host SET updated = {} WHERE id = $1",
                self.sql.ts_param(2)
            ),
            &[Arg::I64(host_id), text(Timestamp::now())],
        )
        .await?;
        Ok(())
    }

    /// Adds a registrar.
    pub async fn add_registrar(&self, r: &Registrar) -> Result<()> {
        if r.handle.trim().is_empty() || r.handle.len() > 64 {
            return Err(StoreError::invalid("handle", "must be 1 to 64 characters"));
        }
        if r.name.trim().is_empty() {
            return Err(StoreError::invalid("name", "must not be empty"));
        }
        let mut tx = Tx::begin(self).await?;
        if tx.id_of("registrar", "handle", &r.handle).await?.is_some() {
            return Err(StoreError::Exists {
                kind: "registrar",
                key: r.handle.clone(),
            });
        }
        let opt = |v: &Option<String>| Arg::Text(v.clone().unwrap_or_default());
        tx.exec(
            "INSERT INTO registrar(handle, name, iana_id, url, whois_server, email, phone, abuse_email, abuse_phone) \
             VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, ''), NULLIF($6, ''), NULLIF($7, ''), NULLIF($8, ''), NULLIF($9, ''))",
            &[
                text(&r.handle),
                text(&r.name),
                Arg::OptI64(r.iana_id.map(i64::from)),
                opt(&r.url),
                opt(&r.whois_server),
                opt(&r.email),
                opt(&r.phone),
                opt(&r.abuse_email),
                opt(&r.abuse_phone),
            ],
        )
        .await?;
        tx.commit().await
    }

    /// Adds a contact, optionally sponsored by a registrar.
    pub async fn add_contact(&self, c: &Contact, registrar: Option<&str>) -> Result<()> {
        check_contact(c)?;
        let mut tx = Tx::begin(self).await?;
        if tx.id_of("contact", "handle", &c.handle).await?.is_some() {
            return Err(StoreError::Exists {
                kind: "contact",
                key: c.handle.clone(),
            });
        }
        let registrar_id = match registrar {
            Some(h) => Some(tx.require("registrar", "handle", h, "registrar").await?),
            None => None,
        };
        let opt = |v: &Option<String>| Arg::Text(v.clone().unwrap_or_default());
        tx.exec(
            "INSERT INTO contact(handle, name, organisation, street, city, province, postcode, country, \
             email, voice, fax, disclose, registrar_id) \
             VALUES ($1, $2, NULLIF($3, ''), $4, $5, NULLIF($6, ''), NULLIF($7, ''), $8, $9, NULLIF($10, ''), \
             NULLIF($11, ''), $12, $13)",
            &[
                text(&c.handle),
                text(&c.name),
                opt(&c.organisation),
                text(c.street.join("\n")),
                text(&c.city),
                opt(&c.province),
                opt(&c.postcode),
                text(c.country.to_ascii_uppercase()),
                text(&c.email),
                opt(&c.voice),
                opt(&c.fax),
                Arg::Bool(c.disclose),
                Arg::OptI64(registrar_id),
            ],
        )
        .await?;
        tx.commit().await
    }

    /// Adds a zone with its apex nameservers (hosts inside the zone need addresses).
    pub async fn add_zone(&self, z: &NewZone) -> Result<()> {
        if !z.name.is_root() {
            check_hostname("zone", &z.name)?;
        }
        check_hostname("mname", &z.mname)?;
        if z.nameservers.is_empty() {
            return Err(StoreError::invalid(
                "ns",
                "a zone needs at least one nameserver",
            ));
        }
        check_nameservers("ns", &z.nameservers)?;
        let mut tx = Tx::begin(self).await?;
        if tx
            .id_of("zone", "name", &z.name.to_string())
            .await?
            .is_some()
        {
            return Err(StoreError::Exists {
                kind: "zone",
                key: z.name.to_string(),
            });
        }
        let zone_id = tx
            .opt_i64(
                "INSERT INTO zone(name, soa_mname, soa_rname, soa_refresh, soa_retry, soa_expire, soa_minimum, \
                 soa_ttl, ns_ttl, ds_ttl) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                &[
                    text(&z.name),
                    text(&z.mname),
                    text(&z.rname),
                    Arg::I64(z.refresh.into()),
                    Arg::I64(z.retry.into()),
                    Arg::I64(z.expire.into()),
                    Arg::I64(z.minimum.into()),
                    Arg::I64(z.soa_ttl.into()),
                    Arg::I64(z.ns_ttl.into()),
                    Arg::I64(z.ds_ttl.into()),
                ],
            )
            .await?
            .ok_or_else(|| StoreError::invalid("zone", "insert returned nothing"))?;
        let hosts = self
            .ensure_hosts(&mut tx, "ns", &z.nameservers, None, None)
            .await?;
        for h in hosts {
            tx.exec(
                "INSERT INTO zone_ns(zone_id, host_id) VALUES ($1, $2)",
                &[Arg::I64(zone_id), Arg::I64(h)],
            )
            .await?;
        }
        tx.commit().await
    }

    /// Creates a domain with its contacts, statuses, nameservers (and their glue) and DS.
    pub async fn add_domain(&self, d: &NewDomain) -> Result<()> {
        check_hostname("name", &d.name)?;
        check_nameservers("ns", &d.nameservers)?;
        check_ds(&d.ds)?;
        let mut tx = Tx::begin(self).await?;
        let (zone_id, apex) = self.parent_zone(&mut tx, "name", &d.name).await?;
        if tx
            .id_of("domain", "name", &d.name.to_string())
            .await?
            .is_some()
        {
            return Err(StoreError::Exists {
                kind: "domain",
                key: d.name.to_string(),
            });
        }
        let registrar_id = tx
            .require("registrar", "handle", &d.registrar, "registrar")
            .await?;
        let mut contacts = [None; 4];
        for (slot, (field, handle)) in contacts.iter_mut().zip([
            ("registrant", &d.registrant),
            ("admin", &d.admin),
            ("tech", &d.tech),
            ("billing", &d.billing),
        ]) {
            if let Some(h) = handle {
                *slot = Some(tx.require("contact", "handle", h, field).await?);
            }
        }
        let now = Timestamp::now();
        let domain_id = tx
            .opt_i64(
                &format!(
                    "INSERT INTO domain(name, zone_id, roid, registrar_id, registrant_id, admin_id, tech_id, \
                     billing_id, created, updated, expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {}, {}, {}) \
                     RETURNING id",
                    self.sql.ts_param(9),
                    self.sql.ts_param(10),
                    self.sql.ts_param(11)
                ),
                &[
                    text(&d.name),
                    Arg::I64(zone_id),
                    // A provisional ROID, replaced below once the id is known.
                    text(format!("PENDING-{}", d.name)),
                    Arg::I64(registrar_id),
                    Arg::OptI64(contacts[0]),
                    Arg::OptI64(contacts[1]),
                    Arg::OptI64(contacts[2]),
                    Arg::OptI64(contacts[3]),
                    text(now),
                    text(now),
                    text(d.expires),
                ],
            )
            .await?
            .ok_or_else(|| StoreError::invalid("name", "insert returned nothing"))?;
        tx.exec(
            "UPDATE domain SET roid = $2 WHERE id = $1",
            &[Arg::I64(domain_id), text(roid(domain_id, &apex))],
        )
        .await?;
        let statuses = if d.statuses.is_empty() {
            vec![EppStatus::Ok]
        } else {
            d.statuses.clone()
        };
        for s in statuses {
            tx.exec(
                "INSERT INTO domain_status(domain_id, status) VALUES ($1, $2)",
                &[Arg::I64(domain_id), text(s)],
            )
            .await?;
        }
        let hosts = self
            .ensure_hosts(
                &mut tx,
                "ns",
                &d.nameservers,
                Some((&d.name, domain_id)),
                Some(registrar_id),
            )
            .await?;
        for h in hosts {
            tx.exec(
                "INSERT INTO domain_ns(domain_id, host_id) VALUES ($1, $2)",
                &[Arg::I64(domain_id), Arg::I64(h)],
            )
            .await?;
        }
        self.insert_ds(&mut tx, domain_id, &d.ds).await?;
        tx.commit().await
    }

    async fn insert_ds(&self, tx: &mut Tx, domain_id: i64, ds: &[Ds]) -> Result<()> {
        for d in ds {
            tx.exec(
                "INSERT INTO ds(domain_id, key_tag, algorithm, digest_type, digest) VALUES ($1, $2, $3, $4, $5)",
                &[
                    Arg::I64(domain_id),
                    Arg::I64(d.key_tag.into()),
                    Arg::I64(d.algorithm.into()),
                    Arg::I64(d.digest_type.into()),
                    text(d.digest_hex()),
                ],
            )
            .await?;
        }
        Ok(())
    }

    async fn domain_id(&self, tx: &mut Tx, name: &Name) -> Result<i64> {
        tx.id_of("domain", "name", &name.to_string())
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "domain",
                key: name.to_string(),
            })
    }

    async fn touch_domain(&self, tx: &mut Tx, id: i64) -> Result<()> {
        tx.exec(
            &format!(
                "UPDATE domain SET updated = {} WHERE id = $1",
                self.sql.ts_param(2)
            ),
            &[Arg::I64(id), text(Timestamp::now())],
        )
        .await?;
        Ok(())
    }

    /// Updates a domain's registrar, contacts, expiry and statuses.
    pub async fn update_domain(&self, name: &Name, u: &DomainUpdate) -> Result<()> {
        let mut tx = Tx::begin(self).await?;
        let id = self.domain_id(&mut tx, name).await?;
        if let Some(h) = &u.registrar {
            let rid = tx.require("registrar", "handle", h, "registrar").await?;
            tx.exec(
                "UPDATE domain SET registrar_id = $2 WHERE id = $1",
                &[Arg::I64(id), Arg::I64(rid)],
            )
            .await?;
        }
        for (field, col, handle) in [
            ("registrant", "registrant_id", &u.registrant),
            ("admin", "admin_id", &u.admin),
            ("tech", "tech_id", &u.tech),
            ("billing", "billing_id", &u.billing),
        ] {
            if let Some(h) = handle {
                let cid = tx.require("contact", "handle", h, field).await?;
                tx.exec(
                    &format!("UPDATE domain SET {col} = $2 WHERE id = $1"),
                    &[Arg::I64(id), Arg::I64(cid)],
                )
                .await?;
            }
        }
        if let Some(e) = u.expires {
            tx.exec(
                &format!(
                    "UPDATE domain SET expires = {} WHERE id = $1",
                    self.sql.ts_param(2)
                ),
                &[Arg::I64(id), text(e)],
            )
            .await?;
        }
        for s in &u.remove_statuses {
            tx.exec(
                "DELETE FROM domain_status WHERE domain_id = $1 AND status = $2",
                &[Arg::I64(id), text(s)],
            )
            .await?;
        }
        for s in &u.add_statuses {
            tx.exec(
                "INSERT INTO domain_status(domain_id, status) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[Arg::I64(id), text(s)],
            )
            .await?;
        }
        // `ok` only stands alone (RFC 5731 §2.3).
        if !u.add_statuses.is_empty() || !u.remove_statuses.is_empty() {
            tx.exec(
                "DELETE FROM domain_status WHERE domain_id = $1 AND status = 'ok' \
                 AND EXISTS (SELECT 1 FROM domain_status o WHERE o.domain_id = $1 AND o.status <> 'ok')",
                &[Arg::I64(id)],
            )
            .await?;
            tx.exec(
                "INSERT INTO domain_status(domain_id, status) SELECT $1, 'ok' \
                 WHERE NOT EXISTS (SELECT 1 FROM domain_status o WHERE o.domain_id = $1)",
                &[Arg::I64(id)],
            )
            .await?;
        }
        self.touch_domain(&mut tx, id).await?;
        tx.commit().await
    }

    /// Replaces a domain's nameservers (creating hosts and setting glue as given).
    pub async fn set_nameservers(&self, name: &Name, ns: &[NsSpec]) -> Result<()> {
        check_nameservers("ns", ns)?;
        let mut tx = Tx::begin(self).await?;
        let id = self.domain_id(&mut tx, name).await?;
        let registrar_id = tx
            .opt_i64(
                "SELECT registrar_id FROM domain WHERE id = $1",
                &[Arg::I64(id)],
            )
            .await?;
        let hosts = self
            .ensure_hosts(&mut tx, "ns", ns, Some((name, id)), registrar_id)
            .await?;
        tx.exec(
            "DELETE FROM domain_ns WHERE domain_id = $1",
            &[Arg::I64(id)],
        )
        .await?;
        for h in hosts {
            tx.exec(
                "INSERT INTO domain_ns(domain_id, host_id) VALUES ($1, $2)",
                &[Arg::I64(id), Arg::I64(h)],
            )
            .await?;
        }
        self.delete_unused_subordinate_hosts(&mut tx, id).await?;
        self.touch_domain(&mut tx, id).await?;
        tx.commit().await
    }

    /// Replaces a domain's DS records (an empty list removes them).
    pub async fn set_ds(&self, name: &Name, ds: &[Ds]) -> Result<()> {
        check_ds(ds)?;
        let mut tx = Tx::begin(self).await?;
        let id = self.domain_id(&mut tx, name).await?;
        tx.exec("DELETE FROM ds WHERE domain_id = $1", &[Arg::I64(id)])
            .await?;
        self.insert_ds(&mut tx, id, ds).await?;
        self.touch_domain(&mut tx, id).await?;
        tx.commit().await
    }

    /// Replaces the addresses of a host inside a zone of the registry.
    pub async fn set_host_addresses(&self, host: &Name, addrs: &[IpAddr]) -> Result<()> {
        for a in addrs {
            check_address("address", a)?;
        }
        let mut tx = Tx::begin(self).await?;
        let id = tx
            .id_of("host", "name", &host.to_string())
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "host",
                key: host.to_string(),
            })?;
        if self.enclosing_zone(&mut tx, host).await?.is_none() {
            return Err(StoreError::invalid(
                "host",
                format!("{host} is outside every zone of this registry: it takes no glue"),
            ));
        }
        self.replace_addresses(&mut tx, id, addrs).await?;
        tx.commit().await
    }

    /// Deletes a domain, with its subordinate hosts when no other domain uses them (EPP refuses
    /// the delete otherwise, RFC 5731 §3.2.2).
    pub async fn delete_domain(&self, name: &Name) -> Result<()> {
        let mut tx = Tx::begin(self).await?;
        let id = self.domain_id(&mut tx, name).await?;
        let in_use = tx
            .opt_i64(
                "SELECT COUNT(*) FROM host h JOIN domain_ns dn ON dn.host_id = h.id \
                 WHERE h.domain_id = $1 AND dn.domain_id <> $1",
                &[Arg::I64(id)],
            )
            .await?
            .unwrap_or(0);
        if in_use > 0 {
            return Err(StoreError::invalid(
                "name",
                format!("{name} has subordinate hosts used by other domains; change those first"),
            ));
        }
        tx.exec(
            "DELETE FROM domain_ns WHERE domain_id = $1",
            &[Arg::I64(id)],
        )
        .await?;
        tx.exec(
            "DELETE FROM host WHERE domain_id = $1 AND NOT EXISTS (SELECT 1 FROM zone_ns zn WHERE zn.host_id = host.id)",
            &[Arg::I64(id)],
        )
        .await?;
        tx.exec(
            "UPDATE host SET domain_id = NULL WHERE domain_id = $1",
            &[Arg::I64(id)],
        )
        .await?;
        tx.exec("DELETE FROM domain WHERE id = $1", &[Arg::I64(id)])
            .await?;
        tx.commit().await
    }

    /// Removes subordinate hosts of a domain that nothing uses any more.
    async fn delete_unused_subordinate_hosts(&self, tx: &mut Tx, domain_id: i64) -> Result<()> {
        tx.exec(
            "DELETE FROM host WHERE domain_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM domain_ns dn WHERE dn.host_id = host.id) \
             AND NOT EXISTS (SELECT 1 FROM zone_ns zn WHERE zn.host_id = host.id)",
            &[Arg::I64(domain_id)],
        )
        .await?;
        Ok(())
    }
}

/// The Repository Object Identifier of a domain (RFC 5730 §2.8): `D<id>-<ZONE>`.
pub fn roid(id: i64, apex: &Name) -> String {
    let suffix: String = apex
        .to_string()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_uppercase();
    format!("D{id}-{}", if suffix.is_empty() { "ROOT" } else { &suffix })
}
