//! The central watchdog: warnings for operators from the cluster state every master writes
//! (`cluster_state`), so an operator learns that a satellite is silent, behind, failing or
//! refusing its configuration without reading that satellite's log.
//!
//! Exactly one watchdog is active in the cluster: every master runs this loop, and only the
//! holder of the store's `watchdog` lease evaluates. The lease lasts [`LEASE_PERIODS`] periods
//! and the holder renews it every period, so a standby takes over within about four periods of
//! the holder dying (or freezing). The holder counts its lease from the moment it *asked*, and
//! evaluates only while that has not run out, so two masters never both act on one period.
//!
//! Each period the holder reads the [`ClusterView`], evaluates the [`rules`] (pure), and
//! compares the findings with the warnings stored in `cluster_warning`: a new finding is raised
//! (logged at WARN, stored, sent to the hook), a stored warning whose condition is gone is
//! cleared (logged, stored, sent to the hook). Because the warnings live in the store, a master
//! taking over neither raises again what its predecessor raised nor forgets to clear it.

pub mod hook;
pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orrery_proto::link::SatelliteSettings;
use orrery_proto::link::tls::SatelliteId;
use orrery_store::Store;
use tokio_util::sync::CancellationToken;

use crate::cluster_state::ClusterState;
use crate::cluster_view::ClusterView;
use crate::config::{ClusterSettings, WatchdogSettings};
use crate::satellites::Satellites;

use self::hook::{Delivery, Hook};
use self::rules::{Context, changes, evaluate};

/// The lease's name in `cluster_lease`.
pub const LEASE: &str = "watchdog";
/// The lease lasts this many watchdog periods.
pub const LEASE_PERIODS: u32 = 3;

/// The watchdog loop of one master.
pub struct Watchdog {
    store: Store,
    settings: WatchdogSettings,
    cluster: ClusterSettings,
    state: Arc<ClusterState>,
    satellites: Arc<Satellites>,
    hook: Option<Hook>,
}

impl Watchdog {
    pub fn new(
        store: Store,
        settings: WatchdogSettings,
        cluster: ClusterSettings,
        state: Arc<ClusterState>,
        satellites: Arc<Satellites>,
    ) -> Self {
        let hook = settings
            .hook
            .clone()
            .map(|path| Hook::start(path, settings.hook_timeout));
        Self {
            store,
            settings,
            cluster,
            state,
            satellites,
            hook,
        }
    }

    /// Competes for the lease and, while holding it, evaluates every period, until
    /// `shutdown`; then gives the lease up so a standby takes over at once.
    pub async fn run(self, shutdown: CancellationToken) {
        let period = self.settings.interval;
        let ttl = period * LEASE_PERIODS;
        let me = self.cluster.id.clone();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // While holding: until when (this process's clock), and since when (the store's).
        let mut held: Option<(Instant, i64)> = None;
        let mut failing = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let asked = Instant::now();
            match self.store.acquire_lease(LEASE, &me, ttl).await {
                Ok(true) => {
                    failing = false;
                    if held.is_none() {
                        let since = self.store.now_ms().await.unwrap_or(0);
                        tracing::info!(master = %me, "watchdog lease taken: this master runs the cluster's watchdog");
                        held = Some((asked + ttl, since));
                        self.state.set_duty(LEASE, true);
                    }
                    if let Some((until, _)) = held.as_mut() {
                        *until = asked + ttl;
                    }
                }
                Ok(false) => {
                    failing = false;
                    if held.take().is_some() {
                        tracing::warn!(master = %me, "watchdog lease lost to another master");
                        self.state.set_duty(LEASE, false);
                    }
                }
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %e, "watchdog: cannot reach the store for the lease (retried)");
                    }
                }
            }
            if let Some((until, _)) = held
                && Instant::now() >= until
            {
                tracing::warn!(master = %me, "watchdog lease ran out (store unreachable): stepping down");
                held = None;
                self.state.set_duty(LEASE, false);
            }
            if let Some((_, since)) = held
                && let Err(e) = self.round(since).await
            {
                tracing::warn!(error = %e, "watchdog: cannot read or write the cluster state (next period)");
            }
        }
        if held.is_some() {
            self.state.set_duty(LEASE, false);
            if let Err(e) = self.store.release_lease(LEASE, &me).await {
                tracing::warn!(error = %e, "watchdog: cannot release the lease (it runs out)");
            }
        }
    }

    /// One evaluation: read, evaluate, raise and clear.
    async fn round(&self, watching_since_ms: i64) -> orrery_store::Result<()> {
        let configured: BTreeMap<SatelliteId, SatelliteSettings> = self.satellites.all_settings();
        let view = ClusterView::read(&self.store, &configured).await?;
        let cx = Context {
            master_stale_after: self.cluster.stale_after(),
            watching_since_ms,
        };
        let findings = evaluate(&view, &self.settings, cx);
        let raised: Vec<(String, String)> = view
            .warnings
            .iter()
            .map(|w| (w.rule.clone(), w.subject.clone()))
            .collect();
        let (raise, clear) = changes(&raised, &findings);
        for f in raise {
            if self
                .store
                .raise_warning(f.rule.name(), &f.subject, &f.detail)
                .await?
            {
                tracing::warn!(rule = f.rule.name(), subject = %f.subject, detail = %f.detail, "watchdog: warning raised");
                self.deliver("raised", f.rule.name(), &f.subject, &f.detail);
            }
        }
        for (rule, subject) in clear {
            if self.store.clear_warning(&rule, &subject).await? {
                tracing::info!(rule = %rule, subject = %subject, "watchdog: warning cleared");
                let detail = view
                    .warnings
                    .iter()
                    .find(|w| w.rule == rule && w.subject == subject)
                    .map_or(String::new(), |w| w.detail.clone());
                self.deliver("cleared", &rule, &subject, &detail);
            }
        }
        Ok(())
    }

    fn deliver(&self, state: &'static str, rule: &str, subject: &str, detail: &str) {
        if let Some(hook) = &self.hook {
            hook.deliver(Delivery {
                state,
                rule: rule.to_owned(),
                subject: subject.to_owned(),
                detail: detail.to_owned(),
                master: self.cluster.id.clone(),
            });
        }
    }
}

/// The period a standby waits at most before it takes over (for documentation and tests).
pub fn takeover_bound(settings: &WatchdogSettings) -> Duration {
    settings.interval * (LEASE_PERIODS + 1)
}
