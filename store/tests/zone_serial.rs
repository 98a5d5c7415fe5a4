//! Per-zone SOA serials (docs/ARCHITECTURE.md, "SOA serials"), on both backends: SQLite always,
//! PostgreSQL when `DATABASE_URL` names a server (a fresh database per run, dropped after).

use std::path::Path;

use orrery_proto::{Change, Contact, Name, Registrar, Serial, Timestamp};
use orrery_store::write::{NewDomain, NewZone, NsSpec};
use orrery_store::{ChangesSince, RegistryItem, Store};

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn new_zone(name: &str, ns: &str) -> NewZone {
    NewZone {
        name: n(name),
        mname: n(ns),
        rname: n("hostmaster.nic.test"),
        refresh: 1800,
        retry: 900,
        expire: 2_419_200,
        minimum: 3600,
        soa_ttl: 3600,
        ns_ttl: 172_800,
        ds_ttl: 86_400,
        nameservers: vec![NsSpec {
            name: n(ns),
            addresses: if ns.ends_with(".test") {
                vec!["192.0.2.53".parse().unwrap()]
            } else {
                vec![]
            },
        }],
    }
}

fn new_domain(name: &str) -> NewDomain {
    NewDomain {
        name: n(name),
        registrar: "R1".into(),
        registrant: None,
        admin: None,
        tech: None,
        billing: None,
        expires: Timestamp(2_000_000_000),
        statuses: vec![],
        nameservers: vec![NsSpec {
            name: n("ns.elsewhere.example"),
            addresses: vec![],
        }],
        ds: vec![],
    }
}

fn contact(handle: &str) -> Contact {
    Contact {
        handle: handle.into(),
        name: "Ann Example".into(),
        organisation: None,
        street: vec!["1 Main Street".into()],
        city: "Paris".into(),
        province: None,
        postcode: None,
        country: "FR".into(),
        email: "ann@example.org".into(),
        voice: None,
        fax: None,
        disclose: false,
        created: Timestamp(0),
        updated: Timestamp(0),
    }
}

async fn serial(store: &Store, zone: &str) -> Serial {
    store.zone_serial(&n(zone)).await.unwrap().unwrap()
}

/// Raw SQL, as an operator or another registration system would write it.
async fn exec(url: &str, sql: &str) {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

/// The zones of a whole-registry snapshot, with their serials.
async fn snapshot_serials(store: &Store) -> Vec<(Name, Serial)> {
    let mut zones = Vec::new();
    store
        .visit_registry(|item| {
            if let RegistryItem::Zone(z) = item {
                zones.push((z.name, z.serial));
            }
            Ok::<_, orrery_store::StoreError>(())
        })
        .await
        .unwrap();
    zones
}

async fn zone_serials_follow_their_zones(url: &str) {
    let store = Store::open(url).await.unwrap();
    store
        .add_zone(&new_zone("test", "a.nic.test"))
        .await
        .unwrap();
    store
        .add_zone(&new_zone("other", "a.nic.test"))
        .await
        .unwrap();
    store
        .add_registrar(&Registrar::new("R1", "Registrar One"))
        .await
        .unwrap();
    let (test0, other0) = (serial(&store, "test").await, serial(&store, "other").await);
    assert!(test0 > 0 && other0 > 0, "{test0} {other0}");
    assert_eq!(
        snapshot_serials(&store).await,
        vec![(n("other"), other0), (n("test"), test0)]
    );

    // A contact (journal row without a zone) moves no zone, and its batch carries no zone.
    let before = store.head().await.unwrap();
    store.add_contact(&contact("C1"), Some("R1")).await.unwrap();
    assert!(store.head().await.unwrap() > before);
    assert_eq!(serial(&store, "test").await, test0);
    assert_eq!(serial(&store, "other").await, other0);
    let ChangesSince::Batch(journal) = store.changes_since(before, 1000).await.unwrap() else {
        panic!("a batch")
    };
    assert!(journal.bad_rows.is_empty(), "{:?}", journal.bad_rows);
    let b = journal.batch;
    assert!(
        !b.changes.iter().any(|c| matches!(c, Change::Zone(_))),
        "{:?}",
        b.changes
    );

    // A domain in `test` moves `test` (to the commit's serial), not `other`; the batch carries
    // the zone with its new serial, so a follower needs nothing else.
    let before = store.head().await.unwrap();
    store.add_domain(&new_domain("foo.test")).await.unwrap();
    let test1 = serial(&store, "test").await;
    assert!(test1 > before && test1 <= store.head().await.unwrap());
    assert_eq!(serial(&store, "other").await, other0);
    let ChangesSince::Batch(journal) = store.changes_since(before, 1000).await.unwrap() else {
        panic!("a batch")
    };
    assert!(journal.bad_rows.is_empty(), "{:?}", journal.bad_rows);
    let b = journal.batch;
    let zones: Vec<(Name, Serial)> = b
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Zone(z) => Some((z.name.clone(), z.serial)),
            _ => None,
        })
        .collect();
    assert_eq!(zones, vec![(n("test"), test1)]);
    assert_eq!(
        snapshot_serials(&store).await,
        vec![(n("other"), other0), (n("test"), test1)]
    );

    // Pruning the journal lowers no serial; the next change still moves only its zone, upwards.
    exec(url, "DELETE FROM journal").await;
    assert_eq!(serial(&store, "test").await, test1);
    assert_eq!(serial(&store, "other").await, other0);
    store.add_domain(&new_domain("bar.other")).await.unwrap();
    let other1 = serial(&store, "other").await;
    assert!(other1 > test1);
    assert_eq!(serial(&store, "test").await, test1);

    // A host renamed by plain SQL changes the apex NS of both zones that use it: both move,
    // although the host belongs to one of them.
    exec(
        url,
        "UPDATE host SET name = 'b.nic.test' WHERE name = 'a.nic.test'",
    )
    .await;
    let head = store.head().await.unwrap();
    let (test2, other2) = (serial(&store, "test").await, serial(&store, "other").await);
    assert!(test2 > other1 && test2 <= head, "{test2} {other1} {head}");
    assert!(
        other2 > other1 && other2 <= head,
        "{other2} {other1} {head}"
    );
    let zone = store.zone(&n("other")).await.unwrap().unwrap();
    assert_eq!(zone.nameservers, vec![n("b.nic.test")]);
    assert_eq!(zone.serial, other2);

    // Emptied at once (TRUNCATE on PostgreSQL, which fires no row triggers): still no serial moves.
    let prune = if url.starts_with("sqlite:") {
        "DELETE FROM journal"
    } else {
        "TRUNCATE journal"
    };
    exec(url, prune).await;
    assert_eq!(store.head().await.unwrap(), 0);
    assert_eq!(serial(&store, "test").await, test2);
    assert_eq!(serial(&store, "other").await, other2);

    store.close().await;
}

#[tokio::test]
async fn sqlite_zone_serials_follow_their_zones() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    zone_serials_follow_their_zones(&url).await;
}

#[tokio::test]
async fn postgres_zone_serials_follow_their_zones() {
    let Ok(server) = std::env::var("DATABASE_URL") else {
        // Not a build-time `#[ignore]` as in the other crates: DATABASE_URL read by this
        // crate's build script would rebuild the store, and everything above it, whenever it
        // changes. Written past the test harness's capture so that the skip shows.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and DATABASE_URL is not set: this test must run in CI"
        );
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: postgres_zone_serials_follow_their_zones: DATABASE_URL is not set"
        );
        return;
    };
    use sqlx::Connection;
    let name = format!("orrery_zs_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = with_database(&server, &name);
    zone_serials_follow_their_zones(&url).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

/// `url` with its database replaced by `db` (URL path or `dbname=` query parameter).
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => format!("{}/{db}", &base[..scheme_end + slash]),
        None => format!("{base}/{db}"),
    };
    match query {
        Some(q) => {
            let q: Vec<&str> = q.split('&').filter(|p| !p.starts_with("dbname=")).collect();
            format!("{base}?{}", q.join("&"))
        }
        None => base,
    }
}

/// A store written under the previous rule (every zone's SOA serial the journal head) and then
/// upgraded starts every zone at the head: no secondary sees a serial go down.
#[tokio::test]
async fn sqlite_upgrade_starts_every_zone_at_the_journal_head() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("old.db").display());
    // The schema before per-zone serials: the first migration alone, as the release before
    // this one applied it.
    let old = dir.path().join("old-migrations");
    std::fs::create_dir(&old).unwrap();
    let first = "0001_registry.sql";
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations/sqlite")
            .join(first),
        old.join(first),
    )
    .unwrap();
    {
        let mut c = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(&mut c)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO zone(name, soa_mname, soa_rname) VALUES \
             ('test', 'a.nic.test', 'hostmaster.nic.test'), \
             ('other', 'a.nic.other', 'hostmaster.nic.other')",
        )
        .execute(&mut c)
        .await
        .unwrap();
        sqlx::query("INSERT INTO registrar(handle, name) VALUES ('R1', 'Registrar One')")
            .execute(&mut c)
            .await
            .unwrap();
    }
    let store = Store::open(&url).await.unwrap();
    let head = store.head().await.unwrap();
    assert!(head >= 3);
    // `test` was last touched before the head: under the old rule it served the head.
    assert_eq!(serial(&store, "test").await, head);
    assert_eq!(serial(&store, "other").await, head);
    // From there on, the per-zone rule.
    store.add_domain(&new_domain("foo.test")).await.unwrap();
    assert!(serial(&store, "test").await > head);
    assert_eq!(serial(&store, "other").await, head);
    store.close().await;
}
