//! The journal on PostgreSQL never skips a change, however concurrent transactions commit.
//!
//! Many writer transactions insert objects and hold their transaction open for a random while
//! before committing (some roll back), so they commit in an order unrelated to the order in
//! which they wrote. A reader follows the journal with `serial > S` the whole time. At the end
//! every committed change must have been seen exactly once, no rolled-back one ever, and the
//! reader must have seen serials in strictly increasing order. The test also checks that commit
//! order really differed from write order, i.e. that the hazard was exercised.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use orrery_store::synthetic::SyntheticTld;
use orrery_store::{ChangesSince, Store};
use rand::{Rng, SeedableRng};
use sqlx::postgres::PgPoolOptions;

use crate::harness::{PgDatabase, postgres_url};

const WRITERS: usize = 16;
const TXNS_PER_WRITER: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    missing_database_url,
    ignore = "DATABASE_URL is not set to a PostgreSQL URL"
)]
async fn journal_never_skips_under_concurrent_writers() {
    let Some(server) = postgres_url() else { return };
    let db = PgDatabase::create(&server).await;
    let store = Store::open(&db.url).await.expect("open store");
    let writers = PgPoolOptions::new()
        .max_connections(WRITERS as u32)
        .connect(&db.url)
        .await
        .unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let pool = writers.clone();
        tasks.spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(w as u64);
            let mut committed = Vec::new();
            for i in 0..TXNS_PER_WRITER {
                let mut tx = pool.begin().await.unwrap();
                // Two objects per transaction, as a registration system's update would.
                for k in 0..2 {
                    let handle = format!("W{w}-{i}-{k}");
                    sqlx::query("INSERT INTO registrar(handle, name) VALUES ($1, 'writer')")
                        .bind(&handle)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..15))).await;
                if rng.random_bool(0.1) {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                    committed.push(format!("W{w}-{i}-0"));
                    committed.push(format!("W{w}-{i}-1"));
                }
            }
            committed
        });
    }

    // The reader: follows the journal as a master would, while the writers run.
    let reader = {
        let store = store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut cursor = 0;
            let mut batches = 0;
            loop {
                let finished = done.load(Ordering::Acquire);
                let rows = store.journal_since(cursor, 500).await.unwrap();
                for r in &rows {
                    assert!(
                        r.serial > cursor,
                        "serial {} after cursor {cursor}",
                        r.serial
                    );
                    cursor = r.serial;
                    if r.object == "registrar" {
                        *seen.entry(r.key.clone()).or_default() += 1;
                    }
                }
                batches += usize::from(!rows.is_empty());
                if finished && rows.is_empty() {
                    return (seen, cursor, batches);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let mut committed = Vec::new();
    while let Some(r) = tasks.join_next().await {
        committed.extend(r.unwrap());
    }
    done.store(true, Ordering::Release);
    let (seen, cursor, batches) = reader.await.unwrap();

    assert!(
        batches > 5,
        "the reader should have followed the writers in many steps ({batches})"
    );
    for h in &committed {
        assert_eq!(
            seen.get(h),
            Some(&1),
            "committed change {h} seen {:?} times",
            seen.get(h)
        );
    }
    assert_eq!(
        seen.len(),
        committed.len(),
        "rolled-back changes were journalled"
    );
    assert_eq!(cursor, store.head().await.unwrap());

    // Commit order (serial) differed from write order (seq): the test exercised the hazard a
    // write-time sequence would have hit.
    let inversions: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM journal a JOIN journal b ON a.seq < b.seq AND a.serial > b.serial \
         WHERE a.object = 'registrar' AND b.object = 'registrar'",
    )
    .fetch_one(&writers)
    .await
    .unwrap();
    assert!(
        inversions > 0,
        "no commit reordering happened; the test proved nothing"
    );
    writers.close().await;
    store.close().await;
}

/// The same synthetic TLD loaded into PostgreSQL (COPY) and SQLite (INSERT) reads back the
/// same, and a changes batch from PostgreSQL is consistent with the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_database_url,
    ignore = "DATABASE_URL is not set to a PostgreSQL URL"
)]
async fn postgres_and_sqlite_hold_the_same_tld() {
    let Some(server) = postgres_url() else { return };
    let db = PgDatabase::create(&server).await;
    let pg = Store::open(&db.url).await.unwrap();
    let lite = Store::open("sqlite::memory:").await.unwrap();
    let spec = SyntheticTld {
        zone: orrery_proto::Name::from_ascii("test").unwrap(),
        domains: 3000,
        seed: 11,
    };
    pg.load_synthetic(&spec).await.unwrap();
    lite.load_synthetic(&spec).await.unwrap();

    let apex = spec.zone.clone();
    let dump = |store: Store| {
        let apex = apex.clone();
        async move {
            let mut items = Vec::new();
            store
                .visit_zone(&apex, orrery_store::HostSelection::All, |item| {
                    items.push(match item {
                        // The backends journal a load in different numbers of rows: the
                        // serial is theirs, the rest must match.
                        orrery_store::ZoneItem::Zone { zone, .. } => format!(
                            "{:?}",
                            orrery_proto::Zone {
                                serial: 0,
                                ..zone.clone()
                            }
                        ),
                        orrery_store::ZoneItem::Dnssec(d) => format!("{d:?}"),
                        orrery_store::ZoneItem::Domain(d) => format!("{d:?}"),
                        orrery_store::ZoneItem::Host(h) => {
                            format!("{:?} {:?}", h.name, h.addresses)
                        }
                    });
                    Ok::<_, orrery_store::StoreError>(())
                })
                .await
                .unwrap();
            items
        }
    };
    let (a, b) = (dump(pg.clone()).await, dump(lite).await);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }

    // A journalled change on PostgreSQL reads back as the new state.
    let head = pg.head().await.unwrap();
    let name = orrery_proto::Name::from_ascii(
        a[1].split("Name(")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap(),
    )
    .unwrap();
    pg.update_domain(
        &name,
        &orrery_store::write::DomainUpdate {
            add_statuses: vec![orrery_proto::EppStatus::ServerHold],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    match pg.changes_since(head, 100).await.unwrap() {
        ChangesSince::Batch(journal) => {
            assert!(journal.bad_rows.is_empty(), "{:?}", journal.bad_rows);
            let b = journal.batch;
            // The domain, and its zone at the serial the change gave it.
            assert_eq!(b.changes.len(), 2);
            assert!(
                matches!(&b.changes[0], orrery_proto::Change::Zone(z) if z.name == apex && z.serial == b.upto)
            );
            assert!(
                matches!(&b.changes[1], orrery_proto::Change::Domain(d) if d.name == name && !d.is_delegated())
            );
            assert!(b.upto > head);
        }
        other => panic!("{other:?}"),
    }
    pg.close().await;
}

/// A committed change wakes listeners on `orrery_journal` with the new head serial; a rolled-back
/// one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_database_url,
    ignore = "DATABASE_URL is not set to a PostgreSQL URL"
)]
async fn journal_commits_notify_listeners() {
    let Some(server) = postgres_url() else { return };
    let db = PgDatabase::create(&server).await;
    let store = Store::open(&db.url).await.unwrap();
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen("orrery_journal").await.unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO registrar(handle, name) VALUES ('GONE', 'rolled back')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    sqlx::query("INSERT INTO registrar(handle, name) VALUES ('KEPT', 'committed')")
        .execute(&pool)
        .await
        .unwrap();

    let note = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(note.payload(), store.head().await.unwrap().to_string());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), listener.recv())
            .await
            .is_err(),
        "one commit, one notification"
    );
    pool.close().await;
    store.close().await;
}
