//! Leases: a duty that must run once in the cluster (the watchdog) runs on the master holding
//! its lease, a row of `cluster_lease` with an expiry on the database's clock.
//!
//! Taking and renewing are one statement, `INSERT … ON CONFLICT DO UPDATE … WHERE the holder is
//! me OR the lease has expired`: PostgreSQL re-checks the condition on the latest row version
//! after waiting for a concurrent writer, SQLite has one writer at a time, so on both at most
//! one caller gets a row back however many ask at once. A row with an expiry (rather than a
//! PostgreSQL advisory lock) works on both backends and survives a holder whose connection
//! stays open while its process is frozen: the lease simply runs out.
//!
//! The holder must stop the duty when it can no longer renew before the expiry: the caller
//! counts its lease from the moment it *asked* (see `orrery_master::watchdog`).

use std::time::Duration;

use sqlx::AssertSqlSafe;

use crate::{Result, Store, on_pool};

/// One lease as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    /// When the current holder took it (milliseconds since the epoch, database clock).
    pub acquired_ms: i64,
    /// When it runs out unless renewed.
    pub expires_ms: i64,
}

impl Store {
    /// Takes lease `name` for `holder`, or renews it if `holder` already has it, for `ttl`
    /// from now. `true` when `holder` holds it on return; `false` when another holder's lease
    /// has not expired.
    pub async fn acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = self.sql.now_ms();
        let sql = format!(
            "INSERT INTO cluster_lease(name, holder, acquired_ms, expires_ms) \
             VALUES ($1, $2, {now}, {now} + $3) \
             ON CONFLICT (name) DO UPDATE SET \
               acquired_ms = CASE WHEN cluster_lease.holder = excluded.holder \
                             THEN cluster_lease.acquired_ms ELSE excluded.acquired_ms END, \
               holder = excluded.holder, expires_ms = excluded.expires_ms \
             WHERE cluster_lease.holder = excluded.holder \
                OR cluster_lease.expires_ms < excluded.acquired_ms"
        );
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4);
        let rows = on_pool!(self, p => sqlx::query(AssertSqlSafe(sql))
            .bind(name)
            .bind(holder)
            .bind(ttl)
            .execute(p)
            .await?
            .rows_affected());
        Ok(rows == 1)
    }

    /// Gives lease `name` up if `holder` has it, so a standby need not wait for the expiry.
    /// `true` when it was held.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<bool> {
        let sql = "UPDATE cluster_lease SET expires_ms = 0 WHERE name = $1 AND holder = $2";
        let rows = on_pool!(self, p => sqlx::query(sql)
            .bind(name)
            .bind(holder)
            .execute(p)
            .await?
            .rows_affected());
        Ok(rows == 1)
    }

    /// Every lease, expired or not, by name.
    pub async fn leases(&self) -> Result<Vec<Lease>> {
        let sql = "SELECT name, holder, acquired_ms, expires_ms FROM cluster_lease ORDER BY name";
        Ok(on_pool!(self, p => sqlx::query_as::<_, Lease>(sql).fetch_all(p).await?))
    }

    /// The database's clock, milliseconds since the epoch: what the cluster tables' times are
    /// on.
    pub async fn now_ms(&self) -> Result<i64> {
        let sql = format!("SELECT {}", self.sql.now_ms());
        Ok(
            on_pool!(self, p => sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql)).fetch_one(p).await?),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::backends;

    #[tokio::test]
    async fn one_holder_until_it_expires_or_is_released() {
        for db in backends().await {
            let s = &db.store;
            let long = Duration::from_secs(60);
            assert!(s.acquire_lease("watchdog", "m1", long).await.unwrap());
            assert!(!s.acquire_lease("watchdog", "m2", long).await.unwrap());
            // Renewing keeps the time it was taken.
            let before = s.leases().await.unwrap();
            assert!(s.acquire_lease("watchdog", "m1", long).await.unwrap());
            let after = s.leases().await.unwrap();
            assert_eq!(before[0].acquired_ms, after[0].acquired_ms);
            assert!(after[0].expires_ms >= before[0].expires_ms);
            // Another lease is independent.
            assert!(s.acquire_lease("other", "m2", long).await.unwrap());

            // A released lease goes to the next asker at once.
            assert!(!s.release_lease("watchdog", "m2").await.unwrap());
            assert!(s.release_lease("watchdog", "m1").await.unwrap());
            assert!(s.acquire_lease("watchdog", "m2", long).await.unwrap());
            assert!(!s.acquire_lease("watchdog", "m1", long).await.unwrap());

            // An expired one too. (A second: long enough that the next statement comes
            // before it ends on a loaded machine; then m2 asks until it has expired.)
            assert!(
                s.acquire_lease("short", "m1", Duration::from_secs(1))
                    .await
                    .unwrap()
            );
            assert!(!s.acquire_lease("short", "m2", long).await.unwrap());
            let asked = std::time::Instant::now();
            while !s.acquire_lease("short", "m2", long).await.unwrap() {
                assert!(asked.elapsed() < Duration::from_secs(10), "never expired");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(!s.acquire_lease("short", "m1", long).await.unwrap());
            let short = s
                .leases()
                .await
                .unwrap()
                .into_iter()
                .find(|l| l.name == "short")
                .unwrap();
            assert_eq!(short.holder, "m2");
            let now = s.now_ms().await.unwrap();
            assert!(
                short.expires_ms > now && short.acquired_ms <= now,
                "{short:?} {now}"
            );
            db.finish().await;
        }
    }

    /// Many masters asking at once: exactly one gets it.
    #[tokio::test]
    async fn concurrent_askers_get_one_holder() {
        for db in backends().await {
            let mut tasks = Vec::new();
            for i in 0..8 {
                let s = db.store.clone();
                tasks.push(tokio::spawn(async move {
                    s.acquire_lease("watchdog", &format!("m{i}"), Duration::from_secs(60))
                        .await
                        .unwrap()
                }));
            }
            let mut held = 0;
            for t in tasks {
                held += usize::from(t.await.unwrap());
            }
            assert_eq!(held, 1);
            db.finish().await;
        }
    }
}
