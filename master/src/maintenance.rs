//! The store's housekeeping, a singleton duty: pruning the cluster state (samples of
//! satellites gone, cleared warnings, masters gone) and, when configured, the change journal.
//! Every master runs this loop; only the holder of the store's `maintenance` lease works, so
//! with several masters the deletes run once per period, not once per master.
//!
//! The lease lasts two periods and the holder renews it every period: while it lives nobody
//! else prunes, and when it dies (or is frozen) another master takes over within about three
//! periods. Both deletes are idempotent, so a period done twice around a takeover costs
//! nothing but the statement.

use std::time::Duration;

use orrery_store::Store;
use tokio_util::sync::CancellationToken;

use crate::cluster_state::ClusterState;
use crate::config::MaintenanceSettings;
use std::sync::Arc;

/// The lease's name in `cluster_lease`, and the duty's name in `status`.
pub const LEASE: &str = "maintenance";
/// Cluster state older than this is pruned.
pub const CLUSTER_STATE_AGE: Duration = Duration::from_secs(7 * 86_400);

/// The housekeeping loop of one master.
pub struct Maintenance {
    store: Store,
    settings: MaintenanceSettings,
    state: Arc<ClusterState>,
}

impl Maintenance {
    pub fn new(store: Store, settings: MaintenanceSettings, state: Arc<ClusterState>) -> Self {
        Self {
            store,
            settings,
            state,
        }
    }

    /// Every period until `shutdown`: take or renew the lease, and prune while holding it.
    /// The first period starts at once, so a lone master prunes when it starts.
    pub async fn run(self, shutdown: CancellationToken) {
        let me = self.state.id().to_owned();
        let period = self.settings.interval;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut held = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            match self.store.acquire_lease(LEASE, &me, period * 2).await {
                Ok(now) => {
                    if now != held {
                        tracing::info!(master = %me, held = now, "store maintenance lease");
                        self.state.set_duty(LEASE, now);
                        held = now;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "store maintenance: cannot reach the store for the lease (next period)");
                    continue;
                }
            }
            if held {
                self.round().await;
            }
        }
        if held {
            self.state.set_duty(LEASE, false);
            if let Err(e) = self.store.release_lease(LEASE, &me).await {
                tracing::warn!(error = %e, "store maintenance: cannot release the lease (it runs out)");
            }
        }
    }

    async fn round(&self) {
        match self
            .store
            .prune_cluster_state(CLUSTER_STATE_AGE.as_millis() as i64)
            .await
        {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "pruned the cluster state"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the cluster state"),
        }
        if let Some(keep) = self.settings.journal_keep {
            match self.store.prune_journal(keep).await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, keep, "pruned the change journal"),
                Err(e) => tracing::warn!(error = %e, "cannot prune the change journal"),
            }
        }
    }
}
