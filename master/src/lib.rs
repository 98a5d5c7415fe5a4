//! The Orrery master: it follows the store's change journal, caches the whole registry and a
//! window of recent changes in memory, and hands each satellite its configuration and updates
//! over mutually authenticated gRPC (the contract is `orrery_proto::link`).
//!
//! ```text
//!  store ──changes_since──▶ JournalFollower ──apply──▶ Cache (registry + window + snapshot)
//!    ▲ NOTIFY orrery_journal ─wake─┘                          │ read only
//!    │                                                        ▼
//!    └─changes_since (older than the window, once per serial)─ Resume
//!                                                             │
//!  satellites ──TLS (client cert)──▶ serve (identity) ──▶ LinkService: Boot, CheckIn,
//!                                                          Follow (push), Snapshot (chunks)
//! ```
//!
//! Satellites only dial out; the master never connects to them. Database load is independent
//! of the number of satellites: the follower reads the journal once for all of them, and a
//! satellite older than the window (after a master restart) is resumed by a read shared with
//! every satellite at the same serial. A store that is down at start is waited for
//! ([`wait_for_store`]); one that goes down later only delays changes.
//!
//! # Layout
//! - [`config`]: the TOML configuration (master and every satellite), validated once.
//! - [`certs`]: the private CA and certificate issuance behind `orrery-master certs`.
//! - [`follow_journal`]: the journal follower and the PostgreSQL NOTIFY listener.
//! - [`wait_for_store`]: opening and loading retried with backoff while the store is down.
//! - [`cache`]: registry state, change window, shared snapshot.
//! - [`resume`]: serials older than the window served from the store's journal.
//! - [`satellites`]: per-satellite configuration and last reported status.
//! - [`service`]: the `Link` gRPC service.
//! - [`cluster_state`]: this master's heartbeat and its satellites' status in the store.
//! - [`cluster_view`]: the cluster as the store shows it (for `status` and the watchdog).
//! - [`watchdog`]: the warnings, under the store's `watchdog` lease (one in the cluster).
//! - [`maintenance`]: pruning the cluster state and the journal, under the `maintenance`
//!   lease (one in the cluster).
//! - [`status`]: `orrery-master status`, from the store only.
//! - [`cert_expiry`]: link certificates' expiry dates.
//! - [`metrics`]: the Prometheus listener (`master.metrics`): this master and the cluster.
//! - [`serve`]: accepting connections: TLS handshake, identity from the certificate.
//! - [`signing`]: signing the signed zones in the change path (DNSSEC RRsets in each batch).
//! - [`signing_duty`]: moving the signature windows and rolling keys, under the `dnssec`
//!   lease; every master reports there which keys it can load.
//! - [`rollover`]: the key rollover schedule, a pure function the duty applies.

pub mod cache;
pub mod cert_expiry;
pub mod certs;
pub mod cluster_state;
pub mod cluster_view;
pub mod config;
pub mod follow_journal;
pub mod maintenance;
pub mod metrics;
pub mod resume;
pub mod rollover;
pub mod satellites;
pub mod serve;
pub mod service;
pub mod signing;
pub mod signing_duty;
pub mod status;
pub mod wait_for_store;
pub mod watchdog;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use orrery_proto::link::tls::{TlsError, TlsMaterial, server_config};
use orrery_store::{Backend, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::cluster_state::ClusterState;
use crate::config::MasterConfig;
use crate::follow_journal::JournalFollower;
use crate::resume::Resume;
use crate::satellites::Satellites;
use crate::service::{LinkCounters, LinkService};
use crate::wait_for_store::WaitError;

/// A master that could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MasterError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("{0}")]
    Wait(#[from] WaitError),
    /// The metrics listener (`master.metrics`) cannot be bound.
    #[error("metrics listener: {0}")]
    Metrics(std::io::Error),
    /// The DNSSEC key directory (`dnssec.key_dir`) cannot be opened.
    #[error("DNSSEC key directory: {0}")]
    Keys(orrery_signer::KeyError),
}

/// Reads and checks the master's TLS files as `run` uses them: readable, the key matching the
/// certificate, the certificate chaining to the CA and naming the master (what satellites
/// check). `orrery-master check-config` and `run` both call it.
pub fn load_tls(config: &MasterConfig) -> Result<TlsMaterial, TlsError> {
    let material = TlsMaterial::load(&config.tls)?;
    server_config(&material)?;
    Ok(material)
}

/// A running master: its tasks, and handles on its state for statistics and tests.
#[derive(Debug)]
pub struct Master {
    cache: Arc<Cache>,
    satellites: Arc<Satellites>,
    resume: Arc<Resume>,
    counters: Arc<LinkCounters>,
    store_calls: Arc<AtomicU64>,
    wake: Arc<Notify>,
    /// Where the metrics are served, when `master.metrics` is set.
    metrics_addr: Option<std::net::SocketAddr>,
    tasks: JoinSet<()>,
}

impl Master {
    /// Serves the link on every listener until `shutdown` is cancelled, and loads the registry
    /// from `store` (waiting for the store as long as it is unreachable); returns once it is
    /// loaded. While it loads, satellites with a state resume from the store's journal and
    /// bare ones are asked to retry. The listeners are already bound (tests bind
    /// `127.0.0.1:0`).
    pub async fn start(
        config: &MasterConfig,
        store: Store,
        tls: &TlsMaterial,
        listeners: Vec<TcpListener>,
        shutdown: CancellationToken,
    ) -> Result<Self, MasterError> {
        let read = store.clone();
        Self::start_with_reader(config, store, read, tls, listeners, shutdown).await
    }

    /// As [`Master::start`], reading the registry and the journal from `read` (a hot-standby
    /// replica of `store`, opened with [`Store::open_read_only`]) and writing the cluster
    /// state, leases and warnings to `store`. A replica gets no NOTIFY: the follower polls it
    /// every `poll_interval`. When `read` is behind the primary, satellites are only as far
    /// as the replica is.
    pub async fn start_with_reader(
        config: &MasterConfig,
        store: Store,
        read: Store,
        tls: &TlsMaterial,
        listeners: Vec<TcpListener>,
        shutdown: CancellationToken,
    ) -> Result<Self, MasterError> {
        let on_replica = config.read_store.is_some();
        let own_cert_expires = cert_expiry::not_after_ms(tls.own_certificate());
        let tls = server_config(tls)?;
        let cache = Arc::new(Cache::new(config.link.clone()));
        let satellites = Arc::new(Satellites::new(config.satellites.clone()));
        let cluster = Arc::new(ClusterState::new(config.cluster.clone()));
        let resume = Arc::new(Resume::new(read.clone(), config.follow.max_batch_entries));
        let keys: Option<signing::SharedKeyStore> = match &config.dnssec.key_dir {
            Some(dir) => Some(Arc::new(
                orrery_signer::FileKeyStore::open(dir).map_err(MasterError::Keys)?,
            )),
            None => None,
        };
        let signer = signing::ZoneSigner::new(keys.clone());
        let signing_health = signer.health();
        let follower = JournalFollower::new(read.clone(), cache.clone(), config.follow.clone())
            .with_signer(signer, resume.signing_flag());
        let mut tasks = JoinSet::new();
        let service = LinkService::new(
            cache.clone(),
            resume.clone(),
            satellites.clone(),
            cluster.clone(),
            config.link.heartbeat_interval,
            shutdown.clone(),
        );
        for listener in listeners {
            let (tls, service, shutdown) = (tls.clone(), service.clone(), shutdown.clone());
            tasks.spawn(async move {
                if let Err(e) = serve::serve(listener, tls, service, shutdown).await {
                    tracing::error!(error = %e, "link server failed");
                }
            });
        }
        // Loading the registry takes seconds at a million domains. The link serves meanwhile:
        // a satellite that has a state resumes from the store's journal (the gap needs no
        // cache), so a master restart costs it seconds, not the load (docs/BENCHMARKS.md).
        // Bare satellites are asked to come back once the cache is loaded.
        wait_for_store::retry("loading the registry", &shutdown, || follower.load()).await?;
        let store_calls = follower.store_calls();
        let wake = follower.waker();
        // LISTEN is refused on a hot standby, and the primary's NOTIFY could announce a commit
        // the replica has not replayed yet: on a replica the follower polls only.
        if read.backend() == Backend::Postgres && !on_replica {
            tasks.spawn(follow_journal::listen_for_commits(
                config.store.clone(),
                wake.clone(),
                shutdown.clone(),
            ));
        }
        tasks.spawn(follower.run(shutdown.clone()));
        // The cluster state and the watchdog start once the registry is loaded: a heartbeat
        // says what this master serves.
        tasks.spawn(cluster.clone().run(
            store.clone(),
            cache.clone(),
            signing_health.clone(),
            own_cert_expires,
            shutdown.clone(),
        ));
        tasks.spawn(
            maintenance::Maintenance::new(
                store.clone(),
                config.maintenance.clone(),
                cluster.clone(),
            )
            .run(shutdown.clone()),
        );
        tasks.spawn(
            signing_duty::SigningDuty::new(
                store.clone(),
                config.dnssec.clone(),
                cluster.clone(),
                keys,
            )
            .run(shutdown.clone()),
        );
        if config.watchdog.enabled {
            let watchdog = watchdog::Watchdog::new(
                store.clone(),
                config.watchdog.clone(),
                config.cluster.clone(),
                cluster.clone(),
                satellites.clone(),
            );
            tasks.spawn(watchdog.run(shutdown.clone()));
        }
        // Metrics last: what they show exists now. A listener that cannot be bound stops the
        // start, as a link listener would: the operator asked for it.
        let metrics_addr = match config.metrics {
            Some(addr) => {
                let metrics = Arc::new(metrics::MasterMetrics::new(
                    config.cluster.id.clone(),
                    cache.clone(),
                    satellites.clone(),
                    signing_health.clone(),
                    own_cert_expires,
                ));
                let (bound, serving) = metrics
                    .serve(addr, shutdown.clone())
                    .await
                    .map_err(MasterError::Metrics)?;
                tracing::info!(addr = %bound, "serving metrics");
                tasks.spawn(serving);
                tasks.spawn(metrics.refresh(
                    store.clone(),
                    config.cluster.heartbeat,
                    shutdown.clone(),
                ));
                Some(bound)
            }
            None => None,
        };
        let counters = service.counters();
        Ok(Self {
            metrics_addr,
            cache,
            satellites,
            resume,
            counters,
            store_calls,
            wake,
            tasks,
        })
    }

    /// Where the metrics are served (`master.metrics`), when set.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_addr
    }

    /// The cache (read-only use).
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// Satellite configuration and status.
    pub fn satellites(&self) -> &Arc<Satellites> {
        &self.satellites
    }

    /// Store calls made by the follower so far.
    pub fn store_calls(&self) -> u64 {
        self.store_calls.load(Ordering::Relaxed)
    }

    /// Journal reads made to resume satellites older than the window.
    pub fn resume_store_calls(&self) -> u64 {
        self.resume.store_calls()
    }

    /// Snapshot transfers started so far.
    pub fn snapshots_sent(&self) -> u64 {
        self.counters.snapshots.load(Ordering::Relaxed)
    }

    /// Change streams resumed from the store's journal so far.
    pub fn streams_resumed(&self) -> u64 {
        self.counters.resumed.load(Ordering::Relaxed)
    }

    /// Wakes the journal follower at once, as a NOTIFY would.
    pub fn wake_follower(&self) {
        self.wake.notify_one();
    }

    /// Waits until every task has ended (after the shutdown token is cancelled).
    pub async fn join(mut self) {
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "master task failed");
            }
        }
    }
}
