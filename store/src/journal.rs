//! Following the change journal.
//!
//! The database numbers journal rows in commit order (see the migrations: on PostgreSQL the
//! serial is assigned at commit under a lock, on SQLite the single writer makes write order
//! commit order). Every snapshot therefore sees a gap-free prefix of the committed serials, and
//! "all changes after serial S" is simply `serial > S`.
//!
//! [`Store::changes_since`] turns journal rows into a [`ChangeBatch`] of whole objects. It reads
//! the journal rows and the current state of every object they name in one snapshot
//! transaction, with a fixed number of queries (one per object kind) whatever the batch size, so
//! the batch is exactly the state at its `upto` serial.

use std::collections::HashSet;

use orrery_proto::{Change, ChangeBatch, Name, Serial};

use sqlx::AssertSqlSafe;

use crate::read::{ContactRow, DomainRow, HostRow, RegistrarRow, ZoneRow};
use crate::{Result, Store, StoreError, on_pool};

/// One journal row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct JournalEntry {
    pub serial: Serial,
    pub zone_id: Option<i64>,
    /// `zone`, `domain`, `host`, `contact` or `registrar`.
    pub object: String,
    /// The object's name or handle.
    pub key: String,
    /// `I`nsert, `U`pdate or `D`elete (informational: consumers read the object's state).
    pub op: String,
}

/// The answer to [`Store::changes_since`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangesSince {
    /// Every change after the given serial, as whole objects.
    Batch(ChangeBatch),
    /// More journal rows are pending than the caller accepts: take a full snapshot instead.
    TooFarBehind { pending: usize },
}

impl Store {
    /// The last committed journal serial (0 for an empty journal).
    pub async fn head(&self) -> Result<Serial> {
        let sql = "SELECT COALESCE(MAX(serial), 0) FROM journal";
        Ok(on_pool!(self, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await?))
    }

    /// The last journal serial that touched the zone at `apex`, `None` if there is no such zone.
    /// Usable as the zone's SOA serial: it only grows.
    pub async fn zone_serial(&self, apex: &Name) -> Result<Option<Serial>> {
        let sql = "SELECT (SELECT COALESCE(MAX(j.serial), 0) FROM journal j WHERE j.zone_id = z.id) \
                   FROM zone z WHERE z.name = $1";
        Ok(on_pool!(self, p => sqlx::query_scalar::<_, i64>(sql)
            .bind(apex.to_string())
            .fetch_optional(p)
            .await?))
    }

    /// Up to `limit` journal rows with a serial above `after`, in serial order.
    pub async fn journal_since(&self, after: Serial, limit: i64) -> Result<Vec<JournalEntry>> {
        let sql = "SELECT serial, zone_id, object, key, op FROM journal \
                   WHERE serial > $1 ORDER BY serial LIMIT $2";
        Ok(on_pool!(self, p => sqlx::query_as::<_, JournalEntry>(sql)
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await?))
    }

    /// Every change committed after serial `after`, each object at its current state, read from
    /// one snapshot; or [`ChangesSince::TooFarBehind`] when more than `max_entries` journal rows
    /// are pending.
    pub async fn changes_since(&self, after: Serial, max_entries: usize) -> Result<ChangesSince> {
        let pending = "FROM journal j WHERE j.serial > $1 AND j.object = ";
        let domain_sql = DomainRow::select(
            self.sql,
            &format!("WHERE d.name IN (SELECT j.key {pending}'domain')"),
        );
        let host_sql = HostRow::select(
            self.sql,
            &format!("WHERE h.name IN (SELECT j.key {pending}'host')"),
        );
        let zone_sql = ZoneRow::select(
            self.sql,
            &format!("WHERE z.name IN (SELECT j.key {pending}'zone')"),
        );
        let contact_sql = ContactRow::select(
            self.sql,
            &format!("WHERE c.handle IN (SELECT j.key {pending}'contact')"),
        );
        let registrar_sql = RegistrarRow::select(&format!(
            "WHERE g.handle IN (SELECT j.key {pending}'registrar')"
        ));
        let journal_sql = "SELECT serial, zone_id, object, key, op FROM journal \
                           WHERE serial > $1 ORDER BY serial LIMIT $2";
        let limit = i64::try_from(max_entries).unwrap_or(i64::MAX - 1) + 1;
        let snapshot = self.sql.snapshot_statement();

        let (entries, zones, domains, hosts, contacts, registrars) = on_pool!(self, p => {
            let mut tx = p.begin().await?;
            if let Some(stmt) = snapshot {
                sqlx::query(stmt).execute(&mut *tx).await?;
            }
            let entries: Vec<JournalEntry> = sqlx::query_as(journal_sql)
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            if entries.len() > max_entries {
                return Ok(ChangesSince::TooFarBehind { pending: entries.len() });
            }
            if entries.is_empty() {
                return Ok(ChangesSince::Batch(ChangeBatch { after, upto: after, changes: vec![] }));
            }
            let zones: Vec<ZoneRow> = sqlx::query_as(AssertSqlSafe(zone_sql.as_str())).bind(after).fetch_all(&mut *tx).await?;
            let domains: Vec<DomainRow> = sqlx::query_as(AssertSqlSafe(domain_sql.as_str())).bind(after).fetch_all(&mut *tx).await?;
            let hosts: Vec<HostRow> = sqlx::query_as(AssertSqlSafe(host_sql.as_str())).bind(after).fetch_all(&mut *tx).await?;
            let contacts: Vec<ContactRow> = sqlx::query_as(AssertSqlSafe(contact_sql.as_str())).bind(after).fetch_all(&mut *tx).await?;
            let registrars: Vec<RegistrarRow> = sqlx::query_as(AssertSqlSafe(registrar_sql.as_str())).bind(after).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            (entries, zones, domains, hosts, contacts, registrars)
        });

        let upto = entries.last().map_or(after, |e| e.serial);
        let mut changes = Vec::new();
        // Objects that still exist, in an order that lets a consumer apply them one by one:
        // registrars and contacts before the domains that name them, zones before domains,
        // hosts before the domains that use them.
        let mut present: HashSet<(&'static str, String)> = HashSet::new();
        for row in registrars {
            let r = row.into_model()?;
            present.insert(("registrar", r.handle.clone()));
            changes.push(Change::Registrar(r));
        }
        for row in contacts {
            let c = row.into_model();
            present.insert(("contact", c.handle.clone()));
            changes.push(Change::Contact(c));
        }
        for row in zones {
            let z = row.into_model()?;
            present.insert(("zone", z.name.to_string()));
            changes.push(Change::Zone(z));
        }
        for row in hosts {
            let h = row.into_model()?;
            present.insert(("host", h.name.to_string()));
            changes.push(Change::Host(h));
        }
        for row in domains {
            let d = row.into_model()?;
            present.insert(("domain", d.name.to_string()));
            changes.push(Change::Domain(d));
        }
        // Objects named in the journal that no longer exist were removed; report each once.
        let mut removed: HashSet<(&str, &str)> = HashSet::new();
        for e in &entries {
            let kind = match e.object.as_str() {
                "zone" => "zone",
                "domain" => "domain",
                "host" => "host",
                "contact" => "contact",
                "registrar" => "registrar",
                other => {
                    return Err(StoreError::BadRow {
                        table: "journal",
                        key: e.serial.to_string(),
                        reason: format!("unknown object kind {other:?}"),
                    });
                }
            };
            if present.contains(&(kind, e.key.clone())) || !removed.insert((kind, &e.key)) {
                continue;
            }
            let name = || {
                Name::from_ascii(&e.key).map_err(|err| StoreError::BadRow {
                    table: "journal",
                    key: e.serial.to_string(),
                    reason: format!("name {:?}: {err}", e.key),
                })
            };
            changes.push(match kind {
                "zone" => Change::ZoneRemoved(name()?),
                "domain" => Change::DomainRemoved(name()?),
                "host" => Change::HostRemoved(name()?),
                "contact" => Change::ContactRemoved(e.key.clone()),
                _ => Change::RegistrarRemoved(e.key.clone()),
            });
        }
        Ok(ChangesSince::Batch(ChangeBatch {
            after,
            upto,
            changes,
        }))
    }
}
