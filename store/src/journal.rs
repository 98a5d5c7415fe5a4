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
//!
//! A row that cannot become its object is *quarantined*: the batch carries no change for that
//! object (in particular not a removal: an unreadable row is not an absent one) and reports it
//! in [`JournalBatch::bad_rows`]; every other change flows. A later journal row naming the
//! object, once it reads fine or is gone, settles it.

use std::collections::HashSet;

use orrery_proto::dnssec::ZoneDnssec;
use orrery_proto::{Change, ChangeBatch, Name, Serial};

use sqlx::AssertSqlSafe;

use crate::dnssec::{KEYS_SQL, KeyRow, POLICY_SQL, PolicyRow};
use crate::read::{BadRow, ContactRow, DomainRow, HostRow, RegistrarRow, ZONE_SERIAL_SQL, ZoneRow};
use crate::{Result, Store, on_pool};

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
    Batch(JournalBatch),
    /// More journal rows are pending than the caller accepts: take a full snapshot instead.
    TooFarBehind { pending: usize },
}

/// The changes of a journal range, and what could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalBatch {
    /// Every readable change: objects at their state at `upto`, removals of objects that are gone.
    pub batch: ChangeBatch,
    /// Objects named in the range whose rows cannot be read, one each. No change is given for
    /// them, not even a removal: a consumer keeps the last good version it has.
    pub bad_rows: Vec<BadRow>,
    /// Every object named in the range that is not in `bad_rows`, as `(object kind, key)`: it
    /// read fine or is gone, so any quarantine of it ends.
    pub settled: Vec<(&'static str, String)>,
    /// The DNSSEC policy and keys of every zone `batch` carries (`None`: the zone has no
    /// policy), read in the same snapshot: the keys of serial `upto`, which a master signs the
    /// batch with. A zone whose policy or keys cannot be read is in `bad_rows` instead.
    pub dnssec: Vec<(Name, Option<ZoneDnssec>)>,
}

/// The journal's object kinds, as `'static` names.
const KINDS: [&str; 5] = ["zone", "domain", "host", "contact", "registrar"];

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

    /// Removes the committed journal rows more than `keep` serials behind the head; the head
    /// row always stays (`keep` is at least 1), so the head never goes back. Zone serials do
    /// not move: rows leave their serial in `zone_serial` first (a trigger). A satellite or
    /// master behind the pruned range takes a snapshot instead of resuming. Returns the rows
    /// removed.
    pub async fn prune_journal(&self, keep: u64) -> Result<u64> {
        let keep = i64::try_from(keep.max(1)).unwrap_or(i64::MAX);
        let sql = "DELETE FROM journal WHERE serial IS NOT NULL \
                   AND serial <= (SELECT MAX(serial) FROM journal) - $1";
        Ok(on_pool!(self, p => sqlx::query(sql)
            .bind(keep)
            .execute(p)
            .await?
            .rows_affected()))
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
        let registrar_sql = RegistrarRow::select(
            self.sql,
            &format!("WHERE g.handle IN (SELECT j.key {pending}'registrar')"),
        );
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
                return Ok(ChangesSince::Batch(JournalBatch {
                    batch: ChangeBatch { after, upto: after, changes: vec![] },
                    bad_rows: vec![],
                    settled: vec![],
                    dnssec: vec![],
                }));
            }
            let zones: Vec<ZoneRow> = sqlx::query_as(AssertSqlSafe(zone_sql.as_str())).bind(after).fetch_all(&mut *tx).await?;
            // Each zone's policy and keys in the same snapshot (a batch names few zones).
            let mut zones_dnssec = Vec::with_capacity(zones.len());
            for z in zones {
                let policy: Option<PolicyRow> = sqlx::query_as(AssertSqlSafe(POLICY_SQL)).bind(z.id).fetch_optional(&mut *tx).await?;
                let keys: Vec<KeyRow> = match policy {
                    Some(_) => sqlx::query_as(AssertSqlSafe(KEYS_SQL)).bind(z.id).fetch_all(&mut *tx).await?,
                    None => Vec::new(),
                };
                zones_dnssec.push((z, policy, keys));
            }
            let zones = zones_dnssec;
            let domains: Vec<DomainRow> = sqlx::query_as(AssertSqlSafe(domain_sql.as_str())).bind(after).fetch_all(&mut *tx).await?;
            let hosts: Vec<HostRow> = sqlx::query_as(AssertSqlSafe(host_sql.as_str())).bind(after).fetch_all(&mut *tx).await?;
            let contacts: Vec<ContactRow> = sqlx::query_as(AssertSqlSafe(contact_sql.as_str())).bind(after).fetch_all(&mut *tx).await?;
            let registrars: Vec<RegistrarRow> = sqlx::query_as(AssertSqlSafe(registrar_sql.as_str())).bind(after).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            (entries, zones, domains, hosts, contacts, registrars)
        });

        let upto = entries.last().map_or(after, |e| e.serial);
        let mut changes = Vec::new();
        let mut bad_rows = Vec::new();
        // Objects that still exist, read or quarantined, in an order that lets a consumer apply
        // them one by one: registrars and contacts before the domains that name them, zones
        // before domains, hosts before the domains that use them.
        let mut present: HashSet<(&'static str, String)> = HashSet::new();
        let mut take = |kind: &'static str, key: &str, converted: Result<Change, BadRow>| {
            present.insert((kind, key.to_owned()));
            match converted {
                Ok(c) => changes.push(c),
                Err(b) => bad_rows.push(b),
            }
        };
        for row in registrars {
            let key = row.key().to_owned();
            take("registrar", &key, row.into_model().map(Change::Registrar));
        }
        for row in contacts {
            let key = row.key().to_owned();
            take("contact", &key, row.into_model().map(Change::Contact));
        }
        let mut dnssec = Vec::new();
        for (row, policy, keys) in zones {
            let key = row.key().to_owned();
            let zone = row.into_model().and_then(|z| {
                let d = policy
                    .map(|p| crate::dnssec::into_model(&key, p, keys))
                    .transpose()?;
                dnssec.push((z.name.clone(), d));
                Ok(z)
            });
            take("zone", &key, zone.map(Change::Zone));
        }
        for row in hosts {
            let key = row.key().to_owned();
            take("host", &key, row.into_model().map(Change::Host));
        }
        for row in domains {
            let key = row.key().to_owned();
            take("domain", &key, row.into_model().map(Change::Domain));
        }
        // Objects named in the journal that no longer exist were removed; report each once.
        let mut named: HashSet<(&str, &str)> = HashSet::new();
        let mut settled = Vec::new();
        for e in &entries {
            let Some(kind) = KINDS.iter().copied().find(|k| *k == e.object) else {
                // The schema's CHECK rules this out; a journal row written around it names
                // nothing a consumer holds (so nothing to quarantine): reported and skipped.
                tracing::warn!(
                    serial = e.serial,
                    object = %e.object,
                    key = %e.key,
                    "journal row names an unknown object kind; skipped"
                );
                continue;
            };
            if !named.insert((kind, &e.key)) {
                continue;
            }
            // Quarantined: its row is unreadable. A name stored in another case or with a
            // trailing dot (written before the schema refused it) is the object under its
            // canonical key too: a rename `x.test` → `X.test` must not remove `x.test`.
            if bad_rows.iter().any(|b| {
                b.object == kind
                    && (b.key == e.key || b.object_name().is_some_and(|n| n.to_string() == e.key))
            }) {
                continue;
            }
            settled.push((kind, e.key.clone()));
            if present.contains(&(kind, e.key.clone())) {
                continue;
            }
            // A removal is keyed by the canonical name, as every object is. A key that is not
            // one named a row no reader ever accepted (it was a bad row): nothing to remove.
            let name = || {
                Name::from_ascii(&e.key)
                    .ok()
                    .filter(|n| n.to_string() == e.key)
            };
            let removal = match kind {
                "zone" => name().map(Change::ZoneRemoved),
                "domain" => name().map(Change::DomainRemoved),
                "host" => name().map(Change::HostRemoved),
                "contact" => Some(Change::ContactRemoved(e.key.clone())),
                _ => Some(Change::RegistrarRemoved(e.key.clone())),
            };
            changes.extend(removal);
        }
        Ok(ChangesSince::Batch(JournalBatch {
            batch: ChangeBatch {
                after,
                upto,
                changes,
            },
            bad_rows,
            settled,
            dnssec,
        }))
    }
}

#[cfg(test)]
mod tests {
    use orrery_proto::{EppStatus, Name, Registrar, Timestamp};

    use super::*;
    use crate::StoreError;
    use crate::testing::{add_test_zone, memory_store};
    use crate::write::{DomainUpdate, NewDomain, NsSpec};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    async fn seeded() -> Store {
        let store = memory_store().await;
        seed(&store).await;
        store
    }

    async fn seed(store: &Store) {
        add_test_zone(store).await;
        store
            .add_registrar(&Registrar {
                iana_id: Some(9999),
                ..Registrar::new("R1", "Registrar One")
            })
            .await
            .unwrap();
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
            ChangesSince::Batch(b) => {
                assert!(b.bad_rows.is_empty(), "{:?}", b.bad_rows);
                b.batch
            }
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    /// Pruning keeps the head and the zone's serial, and changes after it still flow.
    #[tokio::test]
    async fn pruning_keeps_the_head_and_zone_serials() {
        for db in crate::testing::backends().await {
            let store = &db.store;
            seed(store).await;
            for i in 0..5 {
                store
                    .add_domain(&new_domain(&format!("d{i}.test"), vec![]))
                    .await
                    .unwrap();
            }
            let head = store.head().await.unwrap();
            let zone = store.zone_serial(&n("test")).await.unwrap().unwrap();
            let rows = store.journal_since(0, 1000).await.unwrap().len() as u64;
            assert!(rows > 3, "{rows}");
            assert_eq!(store.prune_journal(2).await.unwrap(), rows - 2);
            assert_eq!(store.head().await.unwrap(), head);
            assert_eq!(store.zone_serial(&n("test")).await.unwrap(), Some(zone));
            let left: Vec<Serial> = store
                .journal_since(0, 1000)
                .await
                .unwrap()
                .iter()
                .map(|e| e.serial)
                .collect();
            assert_eq!(left, [head - 1, head]);
            // `keep` 0 still leaves the head row.
            assert_eq!(store.prune_journal(0).await.unwrap(), 1);
            assert_eq!(store.head().await.unwrap(), head);
            store
                .add_domain(&new_domain("after.test", vec![]))
                .await
                .unwrap();
            let b = batch(store.changes_since(head, 100).await.unwrap());
            assert_eq!(b.after, head);
            assert!(b.upto > head);
            db.finish().await;
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

    fn names_of(b: &ChangeBatch) -> Vec<String> {
        b.changes.iter().map(|c| format!("{c:?}")).collect()
    }

    /// Plain SQL cannot store a non-canonical name on either backend, so a journal key is
    /// always the object's canonical key.
    #[tokio::test]
    async fn schema_refuses_non_canonical_names() {
        for db in crate::testing::backends().await {
            let store = &db.store;
            seed(store).await;
            store
                .add_domain(&new_domain("foo.test", vec![]))
                .await
                .unwrap();
            let head = store.head().await.unwrap();
            for sql in [
                "UPDATE domain SET name = 'FOO.test' WHERE name = 'foo.test'",
                "UPDATE domain SET name = 'foo.test.' WHERE name = 'foo.test'",
                "UPDATE domain SET name = 'foo..test' WHERE name = 'foo.test'",
                "UPDATE domain SET name = '-foo.test' WHERE name = 'foo.test'",
                "UPDATE domain SET name = 'fo_o.test' WHERE name = 'foo.test'",
                "UPDATE domain SET name = '' WHERE name = 'foo.test'",
                "INSERT INTO host(name, zone_id) SELECT 'bad name!.test', id FROM zone",
                "INSERT INTO host(name) VALUES ('Ns.Example')",
                "UPDATE zone SET soa_mname = 'A.nic.test'",
                "UPDATE zone SET soa_rname = 'hostmaster.nic.test.'",
                "UPDATE zone SET name = 'TEST'",
            ] {
                let err = crate::testing::raw(store, sql).await.unwrap_err();
                assert!(err.to_string().contains("canonical"), "{sql}: {err}");
            }
            let long = format!("{}.test", "a".repeat(64));
            let err =
                crate::testing::raw(store, &format!("INSERT INTO host(name) VALUES ('{long}')"))
                    .await
                    .unwrap_err();
            assert!(err.to_string().contains("canonical"), "{err}");
            // Canonical names still go in.
            crate::testing::raw(
                store,
                "INSERT INTO host(name) VALUES ('ns-1.xn--bcher-kva.example')",
            )
            .await
            .unwrap();
            let journal = store.journal_since(head, 100).await.unwrap();
            assert_eq!(journal.len(), 1, "{journal:?}");
            assert_eq!(journal[0].key, "ns-1.xn--bcher-kva.example");
            db.finish().await;
        }
    }

    /// One bad row per table: the batch carries every other change, no removal for the
    /// unreadable objects, and the bad rows; the whole-registry read goes on past them; once
    /// fixed, the objects come back as changes and are settled.
    #[tokio::test]
    async fn bad_rows_are_quarantined_and_the_rest_flows() {
        use crate::testing::raw;
        for db in crate::testing::backends().await {
            let store = &db.store;
            let pg = store.backend() == crate::Backend::Postgres;
            seed(store).await;
            store
                .add_contact(
                    &orrery_proto::Contact {
                        handle: "C1".into(),
                        name: "Jo".into(),
                        organisation: None,
                        street: vec![],
                        city: "Town".into(),
                        province: None,
                        postcode: None,
                        country: "FR".into(),
                        email: "jo@example.org".into(),
                        voice: None,
                        fax: None,
                        disclose: false,
                        created: Timestamp(0),
                        updated: Timestamp(0),
                    },
                    None,
                )
                .await
                .unwrap();
            store
                .add_domain(&new_domain(
                    "foo.test",
                    vec![NsSpec {
                        name: n("ns1.foo.test"),
                        addresses: vec!["192.0.2.1".parse().unwrap()],
                    }],
                ))
                .await
                .unwrap();
            let s0 = store.head().await.unwrap();
            // Rules the schema enforces are lifted, as a database written before them would be.
            let lift = if pg {
                [
                    "ALTER TABLE host DROP CONSTRAINT host_name_canonical",
                    "ALTER TABLE zone DROP CONSTRAINT zone_soa_rname_canonical",
                ]
            } else {
                [
                    "DROP TRIGGER host_name_canonical_u",
                    "DROP TRIGGER zone_soa_rname_canonical_u",
                ]
            };
            for sql in lift {
                raw(store, sql).await.unwrap();
            }
            for sql in [
                "INSERT INTO domain_status(domain_id, status) SELECT id, 'bogusStatus' FROM domain WHERE name = 'foo.test'",
                "UPDATE host SET name = 'NS1.foo.test' WHERE name = 'ns1.foo.test'",
                "UPDATE zone SET soa_rname = 'Hostmaster.nic.test'",
                "UPDATE contact SET country = 'XYZ' WHERE handle = 'C1'",
                "UPDATE registrar SET iana_id = -5 WHERE handle = 'R1'",
            ] {
                raw(store, sql).await.unwrap();
            }
            store
                .add_domain(&new_domain("good.test", vec![]))
                .await
                .unwrap();

            let ChangesSince::Batch(j) = store.changes_since(s0, 1000).await.unwrap() else {
                panic!("too far behind")
            };
            let mut bad: Vec<_> = j
                .bad_rows
                .iter()
                .map(|b| (b.object, b.table, b.key.as_str()))
                .collect();
            bad.sort();
            assert_eq!(
                bad,
                vec![
                    ("contact", "contact", "C1"),
                    ("domain", "domain_status", "foo.test"),
                    ("host", "host", "NS1.foo.test"),
                    ("registrar", "registrar", "R1"),
                    ("zone", "zone", "test"),
                ],
                "{:?}",
                j.bad_rows
            );
            assert!(j.bad_rows.iter().any(|b| b.reason.contains("bogusStatus")));
            let changes = names_of(&j.batch);
            assert!(
                j.batch
                    .changes
                    .iter()
                    .any(|c| matches!(c, Change::Domain(d) if d.name == n("good.test"))),
                "{changes:?}"
            );
            // Unreadable is not absent: no removal of any quarantined object, nor of the host
            // under its canonical name (renamed to a non-canonical spelling of itself).
            assert!(
                !j.batch.changes.iter().any(|c| matches!(
                    c,
                    Change::DomainRemoved(_)
                        | Change::HostRemoved(_)
                        | Change::ZoneRemoved(_)
                        | Change::ContactRemoved(_)
                        | Change::RegistrarRemoved(_)
                )),
                "{changes:?}"
            );
            assert!(
                !j.settled
                    .iter()
                    .any(|(_, k)| k == "foo.test" || k == "ns1.foo.test")
            );
            assert!(j.settled.contains(&("domain", "good.test".to_owned())));

            // The whole-registry read (a master starting) passes them and reads the rest.
            let (mut items, mut quarantined) = (0, Vec::new());
            store
                .visit_registry(|item| {
                    match item {
                        crate::RegistryItem::BadRow(b) => quarantined.push(b.key),
                        _ => items += 1,
                    }
                    Ok::<_, StoreError>(())
                })
                .await
                .unwrap();
            quarantined.sort();
            assert_eq!(
                quarantined,
                vec!["C1", "NS1.foo.test", "R1", "foo.test", "test"]
            );
            assert!(items >= 3, "{items}");
            // A single-object read names the row.
            let err = store.domain(&n("foo.test")).await.unwrap_err();
            assert!(err.to_string().contains("domain_status"), "{err}");

            // Fixed rows propagate and are settled.
            let s1 = j.batch.upto;
            for sql in [
                "DELETE FROM domain_status WHERE status = 'bogusStatus'",
                "UPDATE host SET name = 'ns1.foo.test' WHERE name = 'NS1.foo.test'",
                "UPDATE zone SET soa_rname = 'hostmaster.nic.test'",
                "UPDATE contact SET country = 'FR' WHERE handle = 'C1'",
                "UPDATE registrar SET iana_id = 5 WHERE handle = 'R1'",
            ] {
                raw(store, sql).await.unwrap();
            }
            let ChangesSince::Batch(j) = store.changes_since(s1, 1000).await.unwrap() else {
                panic!("too far behind")
            };
            assert!(j.bad_rows.is_empty(), "{:?}", j.bad_rows);
            let b = &j.batch;
            assert!(
                b.changes
                    .iter()
                    .any(|c| matches!(c, Change::Domain(d) if d.name == n("foo.test")))
            );
            assert!(
                b.changes
                    .iter()
                    .any(|c| matches!(c, Change::Host(h) if h.name == n("ns1.foo.test")))
            );
            assert!(
                b.changes.iter().any(
                    |c| matches!(c, Change::Zone(z) if z.soa.rname == n("hostmaster.nic.test"))
                )
            );
            assert!(
                b.changes
                    .iter()
                    .any(|c| matches!(c, Change::Contact(c) if c.country == "FR"))
            );
            assert!(
                b.changes
                    .iter()
                    .any(|c| matches!(c, Change::Registrar(r) if r.iana_id == Some(5)))
            );
            assert!(
                !b.changes
                    .iter()
                    .any(|c| matches!(c, Change::HostRemoved(_))),
                "{:?}",
                names_of(b)
            );
            for key in [
                "foo.test",
                "ns1.foo.test",
                "NS1.foo.test",
                "test",
                "C1",
                "R1",
            ] {
                assert!(
                    j.settled.iter().any(|(_, k)| k == key),
                    "{key} not settled: {:?}",
                    j.settled
                );
            }
            db.finish().await;
        }
    }

    /// SQLite stores any value in any column: text in an integer or date column is a bad row,
    /// never a wrong number or 1970, and never a failure of the whole read.
    #[tokio::test]
    async fn sqlite_values_of_the_wrong_type_are_bad_rows() {
        use crate::testing::raw;
        let store = seeded().await;
        store
            .add_domain(&new_domain(
                "foo.test",
                vec![NsSpec {
                    name: n("ns1.foo.test"),
                    addresses: vec!["192.0.2.1".parse().unwrap()],
                }],
            ))
            .await
            .unwrap();
        store
            .add_domain(&new_domain("bar.test", vec![]))
            .await
            .unwrap();
        let s0 = store.head().await.unwrap();
        for sql in [
            "UPDATE domain SET expires = 'next year' WHERE name = 'foo.test'",
            "UPDATE domain SET expires = '2461000' WHERE name = 'bar.test'",
            "UPDATE host_address SET address = 'not-an-ip' WHERE address = '192.0.2.1'",
            "UPDATE zone SET soa_ttl = 'an hour'",
            "UPDATE registrar SET iana_id = 'many'",
            "INSERT INTO domain_ns(domain_id, host_id) SELECT d.id, h.id FROM domain d, host h WHERE d.name = 'bar.test' AND h.name = 'ns1.foo.test'",
        ] {
            raw(&store, sql).await.unwrap();
        }
        let ChangesSince::Batch(j) = store.changes_since(s0, 1000).await.unwrap() else {
            panic!("too far behind")
        };
        let mut bad: Vec<_> = j
            .bad_rows
            .iter()
            .map(|b| format!("{} {} {}", b.table, b.key, b.reason))
            .collect();
        bad.sort();
        assert_eq!(bad.len(), 5, "{bad:?}");
        assert!(
            bad[0].starts_with("domain bar.test expires is not a date"),
            "{bad:?}"
        );
        assert!(
            bad[1].starts_with("domain foo.test expires is not a date"),
            "{bad:?}"
        );
        assert!(
            bad[2].contains("ns1.foo.test \"not-an-ip\" is not an IP address"),
            "{bad:?}"
        );
        assert!(bad[3].contains("R1 iana_id is not an integer"), "{bad:?}");
        assert!(bad[4].contains("test soa_ttl is not an integer"), "{bad:?}");
        db_no_removals(&j.batch);
    }

    fn db_no_removals(b: &ChangeBatch) {
        assert!(
            !b.changes.iter().any(|c| matches!(
                c,
                Change::DomainRemoved(_)
                    | Change::HostRemoved(_)
                    | Change::ZoneRemoved(_)
                    | Change::RegistrarRemoved(_)
            )),
            "{:?}",
            names_of(b)
        );
    }

    /// A row deleted while it was bad (a name the model never accepted) settles without a
    /// removal of anything.
    #[tokio::test]
    async fn deleting_a_bad_row_settles_it() {
        use crate::testing::raw;
        let store = seeded().await;
        raw(&store, "DROP TRIGGER host_name_canonical_i")
            .await
            .unwrap();
        let s0 = store.head().await.unwrap();
        raw(&store, "INSERT INTO host(name) VALUES ('bad name!.test')")
            .await
            .unwrap();
        let ChangesSince::Batch(j) = store.changes_since(s0, 1000).await.unwrap() else {
            panic!()
        };
        assert_eq!(j.bad_rows.len(), 1, "{:?}", j.bad_rows);
        raw(&store, "DELETE FROM host WHERE name = 'bad name!.test'")
            .await
            .unwrap();
        let ChangesSince::Batch(j) = store.changes_since(j.batch.upto, 1000).await.unwrap() else {
            panic!()
        };
        assert!(j.bad_rows.is_empty());
        assert!(j.batch.changes.is_empty(), "{:?}", j.batch.changes);
        assert_eq!(j.settled, vec![("host", "bad name!.test".to_owned())]);
    }

    /// Registry names are IDNA2008: the write API refuses invalid A-labels and the reserved
    /// hyphens, and stores U-labels as their A-labels.
    #[tokio::test]
    async fn writes_refuse_invalid_idna() {
        let store = seeded().await;
        for bad in ["xn--zz.test", "xn--a.test", "xn--ab--c.test", "ab--cd.test"] {
            let err = store
                .add_domain(&new_domain(bad, vec![]))
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::Invalid { field: "name", .. }),
                "{bad}: {err}"
            );
        }
        let err = store
            .add_domain(&new_domain(
                "ok.test",
                vec![NsSpec {
                    name: n("ns.xn--zz.example"),
                    addresses: vec![],
                }],
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid { field: "ns", .. }),
            "{err}"
        );
        store
            .add_domain(&new_domain("xn--bcher-kva.test", vec![]))
            .await
            .unwrap();
        assert!(
            store
                .domain(&Name::from_user("bücher.test").unwrap())
                .await
                .unwrap()
                .is_some()
        );
    }

    /// A SQLite writer waits for another one (BEGIN IMMEDIATE + busy timeout) instead of
    /// failing with `database is locked`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writers_wait_for_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("w.db").display());
        let a = Store::open(&url).await.unwrap();
        seed(&a).await;
        let b = Store::open(&url).await.unwrap();
        let crate::Pool::Sqlite(pool) = &a.pool else {
            unreachable!()
        };
        let mut holder = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO registrar(handle, name) VALUES ('R2', 'Two')")
            .execute(&mut *holder)
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let release = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(800)).await;
            holder.commit().await.unwrap();
        });
        // A write that reads first (the registrar exists?) and then writes.
        b.add_domain(&new_domain("wait.test", vec![]))
            .await
            .unwrap();
        assert!(started.elapsed() >= std::time::Duration::from_millis(700));
        release.await.unwrap();
        assert!(b.domain(&n("wait.test")).await.unwrap().is_some());
        assert!(b.registrar("R2").await.unwrap().is_some());
    }

    /// PostgreSQL's `infinity` is a timestamp without a date: a bad row, not a failed read.
    #[tokio::test]
    async fn postgres_infinite_dates_are_bad_rows() {
        for db in crate::testing::backends().await {
            let store = &db.store;
            if store.backend() == crate::Backend::Postgres {
                seed(store).await;
                store
                    .add_domain(&new_domain("foo.test", vec![]))
                    .await
                    .unwrap();
                store
                    .add_domain(&new_domain("bar.test", vec![]))
                    .await
                    .unwrap();
                let s0 = store.head().await.unwrap();
                crate::testing::raw(
                    store,
                    "UPDATE domain SET expires = 'infinity' WHERE name = 'foo.test'",
                )
                .await
                .unwrap();
                crate::testing::raw(
                    store,
                    "UPDATE domain SET expires = now() WHERE name = 'bar.test'",
                )
                .await
                .unwrap();
                let ChangesSince::Batch(j) = store.changes_since(s0, 100).await.unwrap() else {
                    panic!()
                };
                assert_eq!(j.bad_rows.len(), 1, "{:?}", j.bad_rows);
                assert!(j.bad_rows[0].reason.contains("expires is not a date"));
                assert!(
                    j.batch
                        .changes
                        .iter()
                        .any(|c| matches!(c, Change::Domain(d) if d.name == n("bar.test")))
                );
            }
            db.finish().await;
        }
    }
}
