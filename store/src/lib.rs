//! The registry's SQL store: schema, change journal, typed reads and validated writes.
//!
//! PostgreSQL is the production backend; SQLite, embedded through sqlx, is the zero-setup
//! default. Both hold the same logical model (see `migrations/`), and every write to the
//! registry tables is journalled *by the database itself* (triggers), so any registration system
//! that writes the tables feeds the cluster, not only this crate.
//!
//! # Layout
//! - [`journal`]: following the change journal (`changes after serial S`) without ever skipping
//!   a change, and zone serials derived from it.
//! - [`read`]: consistent reads of whole zones and of single objects as `orrery_proto` types.
//! - [`dnssec`]: each zone's DNSSEC policy and public keys, journalled as zone changes.
//! - [`write`]: the validated writes behind the administrative CLI.
//! - [`cluster`]: the cluster's shared picture (masters, satellites, statistics history,
//!   warnings), written by the masters and read by `orrery-master status`.
//! - [`lease`]: leases under which a duty runs on one master of the cluster at a time.
//! - [`synthetic`]: the deterministic synthetic-TLD generator and bulk loader.
//! - `dialect`: the few SQL spellings that differ between the two backends.
//!
//! One code path serves both backends: queries are written once with `$n` placeholders (which
//! SQLite accepts too) and dispatched on the pool type by the `on_pool!` macro, so each query is
//! compiled against both drivers.

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub mod cluster;
mod dialect;
pub mod dnssec;
pub mod journal;
pub mod lease;
pub mod read;
pub mod synthetic;
pub mod write;

pub use cluster::{
    MasterHeartbeat, MasterRow, SatelliteReport, SatelliteRow, StatsRow, StatsSample, WarningRow,
};
pub use journal::{ChangesSince, JournalBatch, JournalEntry};
pub use lease::Lease;
pub use read::{BadRow, HostSelection, RegistryItem, ZoneItem};

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Errors of the store, with the object or field they concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("unsupported store URL {0:?}: use postgres://… or sqlite:PATH")]
    BadUrl(String),
    #[error("cannot migrate the schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A store opened for reading only (a hot-standby replica) whose schema is not the one
    /// this build migrates to: the primary has not been migrated yet, or the replica has not
    /// replayed it yet.
    #[error(
        "the schema at {url} is at migration {found:?}, this build needs {expected} (migrate the primary; a replica follows it)"
    )]
    Schema {
        url: String,
        expected: i64,
        found: Option<i64>,
    },
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{kind} {key} does not exist")]
    NotFound { kind: &'static str, key: String },
    #[error("{kind} {key} already exists")]
    Exists { kind: &'static str, key: String },
    #[error("bad row in table {table} ({key}): {reason}")]
    BadRow {
        table: &'static str,
        key: String,
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn invalid(field: &'static str, reason: impl ToString) -> Self {
        Self::Invalid {
            field,
            reason: reason.to_string(),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$pool` bound to the concrete pool, once per backend.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::Pool::Postgres($pool) => $body,
            $crate::Pool::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A connection pool to the registry store.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: Pool,
    pub(crate) sql: dialect::Dialect,
}

impl Store {
    /// Opens the store at `url` (`postgres://…`, `sqlite:PATH`, `sqlite::memory:`) and brings its
    /// schema up to date. A SQLite file is created if missing.
    pub async fn open(url: &str) -> Result<Self> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens a PostgreSQL store for reading only, such as a hot-standby replica (where no
    /// statement may write, so the schema cannot be migrated): checks that its schema is the
    /// one this build migrates to. Every read of the store works on it; writes fail.
    pub async fn open_read_only(url: &str) -> Result<Self> {
        if !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
            return Err(StoreError::BadUrl(url.to_owned()));
        }
        let store = Self::connect(url).await?;
        let expected = sqlx::migrate!("./migrations/postgres")
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let sql = "SELECT MAX(version) FROM _sqlx_migrations WHERE success";
        let found: Option<i64> = match on_pool!(store, p => sqlx::query_scalar(sql).fetch_one(p).await)
        {
            Ok(v) => v,
            // No migrations table: a database that was never migrated.
            Err(sqlx::Error::Database(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if found != Some(expected) {
            store.close().await;
            return Err(StoreError::Schema {
                url: redact(url),
                expected,
                found,
            });
        }
        Ok(store)
    }

    /// Connects without touching the schema.
    async fn connect(url: &str) -> Result<Self> {
        let connect_err = |source| StoreError::Connect {
            url: redact(url),
            source,
        };
        let store = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url)
                .map_err(connect_err)?
                .log_slow_statements(log::LevelFilter::Off, Duration::MAX);
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await
                .map_err(connect_err)?;
            Self {
                pool: Pool::Postgres(pool),
                sql: dialect::Dialect::Postgres,
            }
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(connect_err)?
                .create_if_missing(true)
                .foreign_keys(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                // 64 MiB of page cache per connection (SQLite's default is 2 MiB): whole-zone
                // reads and the journal's indexes stay in memory.
                .pragma("cache_size", "-65536")
                // Whole-zone reads are long by design: they are not "slow statements".
                .log_slow_statements(log::LevelFilter::Off, Duration::MAX);
            // An in-memory database exists per connection: keep exactly one.
            let max = if url.contains(":memory:") { 1 } else { 4 };
            let pool = SqlitePoolOptions::new()
                .max_connections(max)
                .connect_with(opts)
                .await
                .map_err(connect_err)?;
            Self {
                pool: Pool::Sqlite(pool),
                sql: dialect::Dialect::Sqlite,
            }
        } else {
            return Err(StoreError::BadUrl(url.to_owned()));
        };
        Ok(store)
    }

    /// Applies the schema migrations of this backend.
    pub async fn migrate(&self) -> Result<()> {
        match &self.pool {
            Pool::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await?,
            Pool::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(p).await?,
        }
        Ok(())
    }

    /// The backend behind this store.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        on_pool!(self, p => p.close().await)
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A fresh in-memory SQLite store with the schema applied.
    pub(crate) async fn memory_store() -> Store {
        Store::open("sqlite::memory:")
            .await
            .expect("in-memory store")
    }

    /// Adds the zone `test.` (SOA a.nic.test / hostmaster.nic.test, one in-zone nameserver
    /// with glue) that the unit tests build on.
    pub(crate) async fn add_test_zone(store: &Store) {
        use crate::write::{NewZone, NsSpec};
        let n = |s: &str| orrery_proto::Name::from_ascii(s).unwrap();
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
    }

    /// Runs one SQL statement as a registration system writing the tables directly would.
    pub(crate) async fn raw(store: &Store, sql: &str) -> Result<u64, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        on_pool!(store, p => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()))
    }

    /// A fresh database for a test, dropped by [`TestDb::finish`].
    pub(crate) struct TestDb {
        pub(crate) store: Store,
        pg: Option<(String, String)>,
        /// The PostgreSQL database's URL (`None` for SQLite).
        pub(crate) pg_url: Option<String>,
    }

    impl TestDb {
        pub(crate) async fn finish(self) {
            self.store.close().await;
            if let Some((admin, name)) = self.pg {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                        .execute(&mut conn)
                        .await;
                }
            }
        }
    }

    /// The backends a test runs on: SQLite always, PostgreSQL (a fresh database on the server
    /// of `DATABASE_URL`) when that is set.
    pub(crate) async fn backends() -> Vec<TestDb> {
        let mut dbs = vec![TestDb {
            store: memory_store().await,
            pg: None,
            pg_url: None,
        }];
        let Ok(url) = std::env::var("DATABASE_URL") else {
            eprintln!("DATABASE_URL is not set: PostgreSQL not tested");
            return dbs;
        };
        use sqlx::Connection;
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "orrery_u_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .expect("connect to DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        conn.close().await.ok();
        // The URL with its database replaced (path or `dbname=` parameter).
        let (base, query) = url
            .split_once('?')
            .map_or((url.as_str(), None), |(b, q)| (b, Some(q)));
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let base = match base[scheme_end..].find('/') {
            Some(slash) => format!("{}/{name}", &base[..scheme_end + slash]),
            None => format!("{base}/{name}"),
        };
        let db_url = match query {
            Some(q) => {
                let q: Vec<&str> = q.split('&').filter(|p| !p.starts_with("dbname=")).collect();
                format!("{base}?{}", q.join("&"))
            }
            None => base,
        };
        dbs.push(TestDb {
            store: Store::open(&db_url)
                .await
                .expect("open the PostgreSQL test store"),
            pg: Some((url, name)),
            pg_url: Some(db_url),
        });
        dbs
    }

    /// A read-only open checks the schema instead of migrating it.
    #[tokio::test]
    async fn read_only_opens_check_the_schema() {
        assert!(matches!(
            Store::open_read_only("sqlite::memory:").await,
            Err(StoreError::BadUrl(_))
        ));
        for db in backends().await {
            let Some(url) = db.pg_url.clone() else {
                continue;
            };
            let reader = Store::open_read_only(&url).await.unwrap();
            assert!(reader.head().await.is_ok());
            reader.close().await;
            // The primary not migrated to this build's last migration yet.
            raw(
                &db.store,
                "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
            )
            .await
            .unwrap();
            match Store::open_read_only(&url).await {
                Err(StoreError::Schema {
                    expected, found, ..
                }) => assert_eq!(found, Some(expected - 1)),
                other => panic!("{:?}", other.map(|_| ())),
            }
            db.finish().await;
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite:x.db"), "sqlite:x.db");
    }
}
