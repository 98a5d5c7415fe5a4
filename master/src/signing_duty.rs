//! The signing duty, a singleton under the store's `dnssec` lease: it moves each signed zone's
//! signature window once per refresh period (`Store::advance_signature_window`), so signatures
//! are renewed before they expire without anyone running `orrery-admin dnssec refresh`.
//!
//! The window is a journalled store write, so the move reaches every master as a change to the
//! zone, and each signs the zone with the new inception at that serial (same bytes everywhere).
//! "Now" is the database's clock, which every master shares. The move is idempotent within a
//! period (`window_for` gives one value per period), so two masters around a lease takeover
//! cost one no-op statement. Lease handling is the maintenance duty's (`maintenance.rs`).

use std::sync::Arc;

use orrery_proto::Timestamp;
use orrery_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::cluster_state::ClusterState;
use crate::config::DnssecSettings;

/// The lease's name in `cluster_lease`, and the duty's name in `status`.
pub const LEASE: &str = "dnssec";

/// The signing duty of one master.
pub struct SigningDuty {
    store: Store,
    settings: DnssecSettings,
    state: Arc<ClusterState>,
}

impl SigningDuty {
    pub fn new(store: Store, settings: DnssecSettings, state: Arc<ClusterState>) -> Self {
        Self {
            store,
            settings,
            state,
        }
    }

    /// Every check period until `shutdown`: take or renew the lease, and move the windows due
    /// while holding it. The first period starts at once.
    pub async fn run(self, shutdown: CancellationToken) {
        let me = self.state.id().to_owned();
        let period = self.settings.refresh_check;
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
                        tracing::info!(master = %me, held = now, "DNSSEC signing duty lease");
                        self.state.set_duty(LEASE, now);
                        held = now;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "DNSSEC signing duty: cannot reach the store for the lease (next period)");
                    continue;
                }
            }
            if held && let Err(e) = refresh_windows(&self.store).await {
                tracing::warn!(error = %e, "DNSSEC signing duty: cannot move the signature windows (next period)");
            }
        }
        if held {
            self.state.set_duty(LEASE, false);
            if let Err(e) = self.store.release_lease(LEASE, &me).await {
                tracing::warn!(error = %e, "DNSSEC signing duty: cannot release the lease (it runs out)");
            }
        }
    }
}

/// Moves the signature window of every signed zone whose next refresh period has begun (by
/// the database's clock). Returns how many moved.
pub async fn refresh_windows(store: &Store) -> Result<usize, StoreError> {
    let now = Timestamp(store.now_ms().await?.div_euclid(1000));
    let mut moved = 0;
    for zone in store.zones().await? {
        let Some(d) = store.dnssec(&zone.name).await? else {
            continue;
        };
        if !d.is_signed() {
            continue;
        }
        if let Some(inception) = store.advance_signature_window(&zone.name, now).await? {
            tracing::info!(zone = %zone.name, inception = inception.0, "moved the signature window");
            moved += 1;
        }
    }
    Ok(moved)
}
