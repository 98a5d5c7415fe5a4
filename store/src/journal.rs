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

use crate::read::{ContactRow, DomainRow, HostRow, RegistrarRow, ZONE_SERIAL_SQL, ZoneRow};
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

    /// The serial of the zone at `apex` ([`orrery_proto::Zone::serial`]: the journal serial of
    /// the last committed change to it), `None` if there is no such zone. Its low 32 bits are
    /// the zone's SOA serial; it only grows, journal pruning included.
    pub async fn zone_serial(&self, apex: &Name) -> Result<Option<Serial>> {
        let sql = format!("SELECT {ZONE_SERIAL_SQL} FROM zone z WHERE z.name = $1");
        Ok(
            on_pool!(self, p => sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.as_str()))
            .bind(apex.to_string())
            .fetch_optional(p)
            .await?),
        )
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
        // Every zone a journal row names *or belongs to*: a change to a domain or host moves its
        // zone's serial, and the zone object carries the new one.
        let zone_sql = ZoneRow::select(
            self.sql,
            &format!(
                "WHERE z.name IN (SELECT j.key {pending}'zone') \
                 OR z.id IN (SELECT j.zone_id FROM journal j WHERE j.serial > $1)"
            ),
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

#[cfg(test)]
mod tests {
    use orrery_proto::{EppStatus, Name, Registrar, Timestamp};

    use super::*;
    use crate::testing::memory_store;
    use crate::write::{DomainUpdate, NewDomain, NewZone, NsSpec};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    async fn seeded() -> Store {
        let store = memory_store().await;
        store
            .add_zone(&NewZone {
                name: n("test"),
                mname: n("a.nic.test"),
                rname: n("hostmaster.nic.test"),
                refresh: 1800,
                retry: 900,
                expire: 2_419_200,
                minimum: 3600,
                soa_ttl: 3600,
                ns_ttl: 172_800,
                ds_ttl: 86_400,
                nameservers: vec![NsSpec {
                    name: n("a.nic.test"),
                    addresses: vec!["127.0.0.1".parse().unwrap()],
                }],
            })
            .await
            .unwrap();
        store
            .add_registrar(&Registrar {
                iana_id: Some(9999),
                ..Registrar::new("R1", "Registrar One")
            })
            .await
            .unwrap();
        store
    }

    fn new_domain(name: &str, ns: Vec<NsSpec>) -> NewDomain {
        NewDomain {
            name: n(name),
            registrar: "R1".into(),
            registrant: None,
            admin: None,
            tech: None,
            billing: None,
            expires: Timestamp(2_000_000_000),
            statuses: vec![],
            nameservers: ns,
            ds: vec![],
        }
    }

    fn batch(c: ChangesSince) -> ChangeBatch {
        match c {
            ChangesSince::Batch(b) => b,
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn follows_every_change_as_whole_objects() {
        let store = seeded().await;
        let s0 = store.head().await.unwrap();
        assert!(s0 > 0);
        store
            .add_domain(&new_domain(
                "foo.test",
                vec![
                    NsSpec {
                        name: n("ns1.foo.test"),
                        addresses: vec!["192.0.2.1".parse().unwrap()],
                    },
                    NsSpec {
                        name: n("ns.elsewhere.example"),
                        addresses: vec![],
                    },
                ],
            ))
            .await
            .unwrap();
        let b = batch(store.changes_since(s0, 1000).await.unwrap());
        assert_eq!(b.after, s0);
        assert_eq!(b.upto, store.head().await.unwrap());
        let domain = b
            .changes
            .iter()
            .find_map(|c| match c {
                Change::Domain(d) => Some(d.clone()),
                _ => None,
            })
            .expect("the domain is in the batch");
        assert_eq!(domain.name, n("foo.test"));
        assert_eq!(domain.statuses, vec![EppStatus::Ok]);
        assert_eq!(
            domain.nameservers,
            vec![n("ns.elsewhere.example"), n("ns1.foo.test")]
        );
        assert!(b.changes.iter().any(|c| matches!(c, Change::Host(h) if h.name == n("ns1.foo.test") && h.addresses.len() == 1)));

        // A hold shows up as the domain's new state, once.
        let s1 = b.upto;
        store
            .update_domain(
                &n("foo.test"),
                &DomainUpdate {
                    add_statuses: vec![EppStatus::ClientHold],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let b = batch(store.changes_since(s1, 1000).await.unwrap());
        // The domain, and its zone with the serial the change gave it.
        assert_eq!(b.changes.len(), 2, "{:?}", b.changes);
        assert!(matches!(&b.changes[0], Change::Zone(z) if z.serial == b.upto));
        match &b.changes[1] {
            Change::Domain(d) => {
                assert_eq!(d.statuses, vec![EppStatus::ClientHold]);
                assert!(!d.is_delegated());
            }
            other => panic!("unexpected {other:?}"),
        }

        // Deleting removes the domain and its unused subordinate host.
        let s2 = b.upto;
        store.delete_domain(&n("foo.test")).await.unwrap();
        let b = batch(store.changes_since(s2, 1000).await.unwrap());
        assert!(b.changes.contains(&Change::DomainRemoved(n("foo.test"))));
        assert!(b.changes.contains(&Change::HostRemoved(n("ns1.foo.test"))));
        assert_eq!(
            b.changes
                .iter()
                .filter(|c| matches!(c, Change::DomainRemoved(_)))
                .count(),
            1
        );

        // Nothing new: an empty batch that does not move backwards.
        let b = batch(store.changes_since(b.upto, 1000).await.unwrap());
        assert!(b.changes.is_empty());
        assert_eq!(b.after, b.upto);

        // Serials are strictly increasing.
        let all = store.journal_since(0, 10_000).await.unwrap();
        assert!(all.windows(2).all(|w| w[0].serial < w[1].serial));
        assert!(matches!(
            store.changes_since(0, 3).await.unwrap(),
            ChangesSince::TooFarBehind { .. }
        ));
    }

    #[tokio::test]
    async fn refused_writes_write_nothing() {
        let store = seeded().await;
        let head = store.head().await.unwrap();
        let mut d = new_domain("foo.test", vec![]);
        d.registrar = "NOPE".into();
        let err = store.add_domain(&d).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Invalid {
                    field: "registrar",
                    ..
                }
            ),
            "{err}"
        );
        let d = new_domain("foo.other", vec![]);
        assert!(matches!(
            store.add_domain(&d).await.unwrap_err(),
            StoreError::Invalid { field: "name", .. }
        ));
        // In-bailiwick host without glue, out-of-zone host with glue.
        let d = new_domain(
            "foo.test",
            vec![NsSpec {
                name: n("ns1.foo.test"),
                addresses: vec![],
            }],
        );
        assert!(matches!(
            store.add_domain(&d).await.unwrap_err(),
            StoreError::Invalid { field: "ns", .. }
        ));
        let d = new_domain(
            "foo.test",
            vec![NsSpec {
                name: n("ns.x.example"),
                addresses: vec!["192.0.2.1".parse().unwrap()],
            }],
        );
        assert!(matches!(
            store.add_domain(&d).await.unwrap_err(),
            StoreError::Invalid { field: "ns", .. }
        ));
        let mut d = new_domain("foo.test", vec![]);
        d.ds = vec![orrery_proto::Ds {
            key_tag: 1,
            algorithm: 13,
            digest_type: 2,
            digest: vec![1; 20],
        }];
        assert!(matches!(
            store.add_domain(&d).await.unwrap_err(),
            StoreError::Invalid { field: "ds", .. }
        ));
        assert_eq!(
            store.head().await.unwrap(),
            head,
            "a refused write journalled something"
        );
        assert!(store.domain(&n("foo.test")).await.unwrap().is_none());
    }
}
