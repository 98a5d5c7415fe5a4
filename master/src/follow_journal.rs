//! Following the store's change journal into the [`Cache`].
//!
//! The follower is the master's only reader of the store. It loads the whole registry once
//! (`visit_registry`: every object at its current state, from one snapshot, with that snapshot's
//! serial; it does not depend on the journal's history, which may be pruned), then asks for the changes after its serial whenever it is woken, and at least
//! every `poll_interval`. On PostgreSQL a listener on the `orrery_journal` channel (notified by
//! the store's commit trigger) wakes it at once; notifications only shorten the wait, so a lost
//! one costs at most one poll interval, and serials are never skipped because every read is
//! `serial > head` (the store's guarantee).
//!
//! The number of store calls depends on time and on the rate of commits, never on the number
//! of satellites: [`JournalFollower::store_calls`] counts them.
//!
//! A row the store cannot read never stops the follower: it is quarantined in the cache (the
//! object keeps its last good version, everything else flows) and logged as a warning naming
//! table, object and key — once, when it enters quarantine, not on every poll: the store
//! reports a bad row only when a journal row names it or a reload reads it. When a later
//! journal row names the object and it reads fine (or is gone), it leaves quarantine and the
//! fix propagates like any change.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use orrery_proto::{Change, ChangeBatch};
use orrery_store::{BadRow, ChangesSince, RegistryItem, Store, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::config::FollowSettings;
use crate::signing::{Signed, ZoneSigner};

/// The PostgreSQL channel the store notifies after each commit that journalled something.
pub const NOTIFY_CHANNEL: &str = "orrery_journal";

/// Reads the journal into the cache.
#[derive(Debug, Clone)]
pub struct JournalFollower {
    store: Store,
    cache: Arc<Cache>,
    settings: FollowSettings,
    calls: Arc<AtomicU64>,
    wake: Arc<Notify>,
    /// Signs the signed zones of every batch before it reaches the cache (`signing.rs`).
    signer: Arc<Mutex<ZoneSigner>>,
    /// Set while some zone is signed (shared with [`crate::resume::Resume`]).
    signing: Arc<AtomicBool>,
}

impl JournalFollower {
    pub fn new(store: Store, cache: Arc<Cache>, settings: FollowSettings) -> Self {
        Self {
            store,
            cache,
            settings,
            calls: Arc::default(),
            wake: Arc::default(),
            signer: Arc::new(Mutex::new(ZoneSigner::new(None))),
            signing: Arc::default(),
        }
    }

    /// Signs with `signer`, and sets `signing` while some zone is signed.
    pub fn with_signer(mut self, signer: ZoneSigner, signing: Arc<AtomicBool>) -> Self {
        self.signer = Arc::new(Mutex::new(signer));
        self.signing = signing;
        self
    }

    /// The signer (for statistics and tests).
    pub fn signer(&self) -> Arc<Mutex<ZoneSigner>> {
        self.signer.clone()
    }

    /// Signs `batch` on a blocking thread (signing takes seconds for a large batch): appends
    /// the DNSSEC changes and drops the changes of zones that cannot be signed. With `full`,
    /// the batch is the whole registry and the signer starts afresh.
    async fn sign(
        &self,
        mut batch: ChangeBatch,
        dnssec: Vec<(orrery_proto::Name, Option<orrery_proto::dnssec::ZoneDnssec>)>,
        full: bool,
    ) -> (ChangeBatch, Signed) {
        let init = {
            let mut s = lock(&self.signer);
            if full {
                s.reset();
                Vec::new()
            } else {
                s.zones_to_init(&dnssec)
            }
        };
        if !init.is_empty() {
            // The zones starting to sign are read as the cache holds them before this batch.
            self.cache.with_registry(|r| {
                lock(&self.signer).init_zones(r, &batch, &dnssec, &init);
            });
        }
        let signer = self.signer.clone();
        let signing = self.signing.clone();
        let started = std::time::Instant::now();
        let work = move || {
            let mut s = lock(&signer);
            let mut out = s.on_batch(&batch, &dnssec);
            if !out.withheld.is_empty() {
                let withheld = &out.withheld;
                batch
                    .changes
                    .retain(|c| s.signed_zone_of(c).is_none_or(|z| !withheld.contains(&z)));
            }
            batch.changes.append(&mut out.changes);
            signing.store(s.signs_any(), Ordering::Relaxed);
            (batch, out)
        };
        let (batch, out) = match tokio::task::spawn_blocking(work).await {
            Ok(r) => r,
            Err(e) => panic!("the signing thread failed: {e}"),
        };
        if out.fresh_signatures > 0 {
            tracing::debug!(
                upto = batch.upto,
                signatures = out.fresh_signatures,
                ms = started.elapsed().as_millis() as u64,
                "signed the batch"
            );
        }
        (batch, out)
    }

    /// The count of store calls made so far (each one a fixed handful of SQL statements in one
    /// snapshot transaction).
    pub fn store_calls(&self) -> Arc<AtomicU64> {
        self.calls.clone()
    }

    /// Wakes the follower at once (what a NOTIFY does).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    async fn changes_since(
        &self,
        after: orrery_proto::Serial,
        max: usize,
    ) -> Result<ChangesSince, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.store.changes_since(after, max).await
    }

    /// The rows quarantined now (see [`Cache::quarantined`]).
    pub fn quarantined(&self) -> Vec<BadRow> {
        self.cache.quarantined()
    }

    /// Loads the whole registry, replacing the cache (quarantined objects keep the version the
    /// cache held). Returns the serial loaded.
    pub async fn load(&self) -> Result<orrery_proto::Serial, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut changes = Vec::new();
        let mut bad = Vec::new();
        let mut dnssec = Vec::new();
        let serial = self
            .store
            .visit_registry(|item| {
                match item {
                    RegistryItem::Serial(_) => {}
                    RegistryItem::Registrar(r) => changes.push(Change::Registrar(r)),
                    RegistryItem::Contact(c) => changes.push(Change::Contact(c)),
                    RegistryItem::Zone(z) => changes.push(Change::Zone(z)),
                    RegistryItem::Host(h) => changes.push(Change::Host(h)),
                    RegistryItem::Domain(d) => changes.push(Change::Domain(d)),
                    RegistryItem::Dnssec(apex, d) => dnssec.push((apex, Some(d))),
                    RegistryItem::BadRow(b) => bad.push(b),
                }
                Ok::<_, StoreError>(())
            })
            .await?;
        let full = ChangeBatch {
            after: 0,
            upto: serial,
            changes,
        };
        let (full, signed) = self.sign(full, dnssec, true).await;
        let quarantined = bad.len();
        for b in self.cache.load_withholding(full, bad, &signed.withheld) {
            report_quarantined(&b);
        }
        tracing::info!(
            serial,
            objects = self.cache.objects(),
            quarantined,
            "loaded the registry into the cache"
        );
        // The snapshot a bare satellite will ask for, built now in the background rather than
        // when the first one dials in: at 1,000,000 domains building it takes seconds, which
        // the booting satellite would otherwise wait (docs/BENCHMARKS.md). It is shared by every
        // satellite while its serial stays in the window.
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let snapshot = cache.snapshot();
            tracing::info!(
                serial = snapshot.serial,
                chunks = snapshot.chunks.len(),
                ms = started.elapsed().as_millis() as u64,
                "snapshot for booting satellites built"
            );
        });
        Ok(serial)
    }

    /// Reads and applies the changes after the cache's serial. Returns how many changes were
    /// applied (a full reload counts as the objects loaded).
    pub async fn poll_once(&self) -> Result<usize, StoreError> {
        let head = self.cache.head();
        match self
            .changes_since(head, self.settings.max_batch_entries)
            .await?
        {
            ChangesSince::Batch(journal) => {
                let batch = journal.batch;
                let (after, upto, n) = (batch.after, batch.upto, batch.changes.len());
                if n == 0 && upto == after {
                    return self.retry_signing().await;
                }
                let (batch, signed) = self.sign(batch, journal.dnssec, false).await;
                if signed.recovered {
                    self.load().await?;
                    return Ok(self.cache.objects());
                }
                if let Err(gap) = self.cache.apply(batch) {
                    tracing::error!(error = %gap, "journal batch does not follow the cache; reloading");
                    self.load().await?;
                    return Ok(self.cache.objects());
                }
                let (fresh, left) = self.cache.quarantine(journal.bad_rows, &journal.settled);
                for b in &fresh {
                    report_quarantined(b);
                }
                for b in &left {
                    tracing::info!(
                        table = b.table,
                        object = b.object,
                        key = %b.key,
                        upto,
                        "quarantined row is readable again (or gone); its change propagates"
                    );
                }
                tracing::debug!(after, upto, changes = n, "applied journal batch");
                Ok(n)
            }
            ChangesSince::TooFarBehind { pending } => {
                tracing::warn!(
                    pending,
                    limit = self.settings.max_batch_entries,
                    "journal moved too far at once; reloading the whole registry"
                );
                self.load().await?;
                Ok(self.cache.objects())
            }
        }
    }

    /// Retries the zones that could not be signed; when one signs again, reloads the registry
    /// (which publishes what was withheld). Cheap when no zone is failing.
    async fn retry_signing(&self) -> Result<usize, StoreError> {
        let signer = self.signer.clone();
        let failing = !lock(&signer).failing().is_empty();
        if !failing {
            return Ok(0);
        }
        let out = tokio::task::spawn_blocking(move || lock(&signer).retry())
            .await
            .unwrap_or_default();
        if out.recovered {
            self.load().await?;
            return Ok(self.cache.objects());
        }
        Ok(0)
    }

    /// Polls until `shutdown`: at once when woken, else every poll interval. Store errors are
    /// logged and retried; the cache keeps serving meanwhile.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.poll_once().await {
                tracing::warn!(error = %e, "reading the journal failed; retrying");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }
}

/// The signer's lock; a panic while signing leaves a state that the next full reload resets.
fn lock(m: &Mutex<ZoneSigner>) -> std::sync::MutexGuard<'_, ZoneSigner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The loud report of a row entering quarantine.
fn report_quarantined(b: &BadRow) {
    tracing::warn!(
        table = b.table,
        object = b.object,
        key = %b.key,
        reason = %b.reason,
        "bad row quarantined: the object keeps its last good version until the row is fixed \
         (orrery-admin bad-rows lists them)"
    );
}

/// Listens on [`NOTIFY_CHANNEL`] and wakes the follower for each notification, reconnecting
/// after errors (and waking once after each reconnect, for notifications missed meanwhile).
/// For PostgreSQL stores only.
pub async fn listen_for_commits(url: String, wake: Arc<Notify>, shutdown: CancellationToken) {
    use sqlx::postgres::PgListener;
    let mut pause = std::time::Duration::from_millis(500);
    loop {
        let attempt = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(NOTIFY_CHANNEL).await?;
            tracing::info!(
                channel = NOTIFY_CHANNEL,
                "listening for journal notifications"
            );
            wake.notify_one();
            loop {
                listener.recv().await?;
                wake.notify_one();
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            r = attempt => if let Err(e) = r {
                tracing::warn!(error = %e, "journal notifications lost; polling meanwhile");
            },
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(std::time::Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use orrery_proto::{Contact, EppStatus, Name, Registrar, Timestamp};
    use orrery_store::write::{NewDomain, NewZone, NsSpec};

    use super::*;
    use crate::config::LinkSettings;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    /// A SQLite store in `dir` with a zone, a registrar, a contact and two domains, and a
    /// second pool on the same file for plain SQL (a registration system writing the tables).
    async fn registry(dir: &std::path::Path) -> (Store, sqlx::SqlitePool) {
        let url = format!("sqlite:{}", dir.join("r.db").display());
        let store = Store::open(&url).await.unwrap();
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
            .add_registrar(&Registrar::new("R1", "Registrar One"))
            .await
            .unwrap();
        store
            .add_contact(
                &Contact {
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
        for (name, ns) in [("foo.test", "ns1.foo.test"), ("bar.test", "ns1.bar.test")] {
            store
                .add_domain(&NewDomain {
                    name: n(name),
                    registrar: "R1".into(),
                    registrant: Some("C1".into()),
                    admin: None,
                    tech: None,
                    billing: None,
                    expires: Timestamp(2_000_000_000),
                    statuses: vec![],
                    nameservers: vec![NsSpec {
                        name: n(ns),
                        addresses: vec!["192.0.2.1".parse().unwrap()],
                    }],
                    ds: vec![],
                })
                .await
                .unwrap();
        }
        let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
        (store, raw)
    }

    async fn sql(raw: &sqlx::SqlitePool, statements: &[&str]) {
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(*s))
                .execute(raw)
                .await
                .unwrap();
        }
    }

    fn follower(store: &Store) -> (JournalFollower, Arc<Cache>) {
        let cache = Arc::new(Cache::new(LinkSettings::default()));
        let f = JournalFollower::new(store.clone(), cache.clone(), FollowSettings::default());
        (f, cache)
    }

    fn quarantined_keys(f: &JournalFollower) -> Vec<String> {
        let mut keys: Vec<_> = f.quarantined().into_iter().map(|b| b.key).collect();
        keys.sort();
        keys
    }

    const BREAK: [&str; 5] = [
        "INSERT INTO domain_status(domain_id, status) SELECT id, 'bogus' FROM domain WHERE name = 'foo.test'",
        "UPDATE host_address SET address = 'not-an-ip' WHERE host_id = (SELECT id FROM host WHERE name = 'ns1.foo.test')",
        "UPDATE zone SET soa_ttl = 'an hour'",
        "UPDATE contact SET country = 'XYZ'",
        "UPDATE registrar SET iana_id = -1",
    ];
    const FIX: [&str; 5] = [
        "DELETE FROM domain_status WHERE status = 'bogus'",
        "UPDATE host_address SET address = '192.0.2.9' WHERE address = 'not-an-ip'",
        "UPDATE zone SET soa_ttl = 600",
        "UPDATE contact SET country = 'DE'",
        "UPDATE registrar SET iana_id = 42",
    ];

    /// A bad row in each table never stops the follower: everything else flows, each object
    /// keeps its last good version (also across a full reload), and the fix propagates.
    #[tokio::test]
    async fn bad_rows_keep_the_last_good_version_and_the_rest_flows() {
        let dir = tempfile::tempdir().unwrap();
        let (store, raw) = registry(dir.path()).await;
        let (f, cache) = follower(&store);
        f.load().await.unwrap();
        assert!(f.quarantined().is_empty());
        let before = cache.with_registry(|r| r.len());

        sql(&raw, &BREAK).await;
        sql(
            &raw,
            &["INSERT INTO domain_status(domain_id, status) SELECT id, 'clientHold' FROM domain WHERE name = 'bar.test'"],
        )
        .await;
        f.poll_once().await.unwrap();
        assert_eq!(
            quarantined_keys(&f),
            vec!["C1", "R1", "foo.test", "ns1.foo.test", "test"]
        );
        assert_eq!(cache.quarantined_total(), 5);
        let check_old = |cache: &Cache| {
            cache.with_registry(|r| {
                assert_eq!(r.len(), before, "nothing removed");
                assert_eq!(r.domains[&n("foo.test")].statuses, vec![EppStatus::Ok]);
                assert_eq!(
                    r.hosts[&n("ns1.foo.test")].addresses,
                    vec!["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
                );
                assert_eq!(r.zones[&n("test")].soa_ttl, 3600);
                assert_eq!(r.contacts["C1"].country, "FR");
                assert_eq!(r.registrars["R1"].iana_id, None);
                // The good change flowed.
                assert!(
                    r.domains[&n("bar.test")]
                        .statuses
                        .contains(&EppStatus::ClientHold)
                );
            })
        };
        check_old(&cache);
        // Polling again reports nothing new (the log line is not repeated every poll).
        f.poll_once().await.unwrap();
        assert_eq!(cache.quarantined_total(), 5);

        // A full reload (what a gap or a restart does) keeps the last good versions.
        f.load().await.unwrap();
        check_old(&cache);
        assert_eq!(quarantined_keys(&f).len(), 5);
        assert_eq!(cache.quarantined_total(), 5, "same rows, same reasons");
        assert_eq!(cache.quarantined_now(), 5);

        sql(&raw, &FIX).await;
        f.poll_once().await.unwrap();
        assert!(f.quarantined().is_empty(), "{:?}", f.quarantined());
        // What the heartbeat reports falls back to 0; the counter since start does not.
        assert_eq!(cache.quarantined_now(), 0);
        assert_eq!(cache.quarantined_total(), 5);
        cache.with_registry(|r| {
            assert_eq!(r.domains[&n("foo.test")].statuses, vec![EppStatus::Ok]);
            assert_eq!(
                r.hosts[&n("ns1.foo.test")].addresses,
                vec!["192.0.2.9".parse::<std::net::IpAddr>().unwrap()]
            );
            assert_eq!(r.zones[&n("test")].soa_ttl, 600);
            assert_eq!(r.contacts["C1"].country, "DE");
            assert_eq!(r.registrars["R1"].iana_id, Some(42));
        });
        assert_eq!(cache.head(), store.head().await.unwrap());
    }

    /// The master starts with bad rows present: they are quarantined (nothing to publish for
    /// them yet), the rest is loaded, and a fix brings them in.
    #[tokio::test]
    async fn starts_with_bad_rows_present() {
        let dir = tempfile::tempdir().unwrap();
        let (store, raw) = registry(dir.path()).await;
        sql(&raw, &BREAK).await;
        let (f, cache) = follower(&store);
        f.load().await.unwrap();
        assert_eq!(
            quarantined_keys(&f),
            vec!["C1", "R1", "foo.test", "ns1.foo.test", "test"]
        );
        cache.with_registry(|r| {
            assert!(r.domains.contains_key(&n("bar.test")));
            assert!(r.hosts.contains_key(&n("ns1.bar.test")));
            assert!(!r.domains.contains_key(&n("foo.test")));
        });
        sql(&raw, &FIX).await;
        f.poll_once().await.unwrap();
        assert!(f.quarantined().is_empty());
        cache.with_registry(|r| {
            assert!(r.domains.contains_key(&n("foo.test")));
            assert!(r.zones.contains_key(&n("test")));
            assert!(r.registrars.contains_key("R1"));
        });
    }
}
