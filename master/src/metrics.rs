//! The master's Prometheus metrics (`master.metrics` in its configuration): its own state
//! (journal head, quarantined rows, zones it cannot sign, satellites connected to it,
//! certificate expiry) read
//! live from memory, and the cluster as the store shows it (per-satellite applied serial and
//! lag, the watchdog's active warnings, whether the store answers) read by a background task
//! every cluster heartbeat ([`MasterMetrics::refresh`]), so a scrape never waits for the store.
//!
//! Every master exports the same cluster picture (the store is shared), so Prometheus may
//! scrape any of them; `orrery_watchdog_warnings` is the watchdog's "exported as a metric".

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orrery_proto::link::SatelliteSettings;
use orrery_proto::link::tls::SatelliteId;
use orrery_proto::metrics::{self, Exposition, Kind, Render, resident_memory};
use orrery_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::cert_expiry::unix_ms;
use crate::cluster_view::ClusterView;
use crate::satellites::Satellites;
use crate::signing::SigningHealth;

/// What the last read of the store gave.
#[derive(Clone, Debug, Default)]
struct StoreFacts {
    /// Whether the last read succeeded.
    reachable: bool,
    /// When it was attempted.
    at: Option<Instant>,
    /// The store's journal head (what this master's cache follows).
    journal_head: i64,
    /// Identity, applied serial, serials behind the head (satellites that ever checked in).
    satellites: Vec<(String, i64, i64)>,
    /// Active warnings: rule, subject.
    warnings: Vec<(String, String)>,
}

/// The master's metrics; one per process.
pub struct MasterMetrics {
    id: String,
    started: Instant,
    cache: Arc<Cache>,
    satellites: Arc<Satellites>,
    /// The zones this master cannot sign, and the failures counted.
    signing: Arc<SigningHealth>,
    /// notAfter of this master's link certificate, milliseconds since the epoch.
    cert_not_after_ms: Option<i64>,
    facts: Mutex<StoreFacts>,
}

impl MasterMetrics {
    pub fn new(
        id: String,
        cache: Arc<Cache>,
        satellites: Arc<Satellites>,
        signing: Arc<SigningHealth>,
        cert_not_after_ms: Option<i64>,
    ) -> Self {
        Self {
            id,
            started: Instant::now(),
            cache,
            satellites,
            signing,
            cert_not_after_ms,
            facts: Mutex::default(),
        }
    }

    /// Reads the cluster from the store every `every` until `shutdown`.
    pub async fn refresh(
        self: Arc<Self>,
        store: Store,
        every: Duration,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let configured: BTreeMap<SatelliteId, SatelliteSettings> =
                self.satellites.all_settings();
            let read = ClusterView::read(&store, &configured).await;
            let mut facts = self.facts.lock().unwrap_or_else(|e| e.into_inner());
            facts.at = Some(Instant::now());
            match read {
                Ok(view) => {
                    facts.reachable = true;
                    facts.journal_head = view.journal_head;
                    facts.satellites = view
                        .satellites
                        .iter()
                        .filter_map(|s| {
                            let row = s.row.as_ref()?;
                            Some((
                                s.identity.clone(),
                                row.applied_serial,
                                s.lag_serials.unwrap_or(0),
                            ))
                        })
                        .collect();
                    facts.warnings = view
                        .warnings
                        .iter()
                        .map(|w| (w.rule.clone(), w.subject.clone()))
                        .collect();
                }
                Err(e) => {
                    // Keep the last picture, marked unreachable.
                    if std::mem::replace(&mut facts.reachable, false) {
                        tracing::warn!(error = %e, "metrics: cannot read the cluster state");
                    }
                }
            }
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let facts = self.facts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let master = [("master", self.id.as_str())];
        let mut e = Exposition::new();
        e.family(
            "orrery_master_journal_head",
            Kind::Gauge,
            "The last journal serial this master's cache has applied.",
        )
        .sample(
            "orrery_master_journal_head",
            &master,
            self.cache.head() as f64,
        );
        e.family(
            "orrery_store_journal_head",
            Kind::Gauge,
            "The store's journal head as last read.",
        )
        .sample("orrery_store_journal_head", &[], facts.journal_head as f64);
        e.family(
            "orrery_store_reachable",
            Kind::Gauge,
            "1 when the last read of the cluster state from the store succeeded.",
        )
        .sample(
            "orrery_store_reachable",
            &master,
            f64::from(u8::from(facts.reachable)),
        );
        if let Some(at) = facts.at {
            e.family(
                "orrery_store_read_age_seconds",
                Kind::Gauge,
                "Seconds since the cluster state was last read from the store.",
            )
            .sample(
                "orrery_store_read_age_seconds",
                &[],
                at.elapsed().as_secs_f64(),
            );
        }
        e.family(
            "orrery_quarantined_rows",
            Kind::Gauge,
            "Store rows this master cannot read (kept at their last good version).",
        )
        .sample_u64(
            "orrery_quarantined_rows",
            &master,
            self.cache.quarantined().len() as u64,
        );
        e.family(
            "orrery_quarantined_rows_total",
            Kind::Counter,
            "Rows that entered quarantine since this master started.",
        )
        .sample_u64(
            "orrery_quarantined_rows_total",
            &master,
            self.cache.quarantined_total(),
        );
        e.family(
            "orrery_zone_unsignable",
            Kind::Gauge,
            "Zones this master cannot sign (1 each): their changes are withheld, satellites keep their last signed state.",
        );
        for (zone, _) in self.signing.failing() {
            e.sample(
                "orrery_zone_unsignable",
                &[("master", self.id.as_str()), ("zone", zone.as_str())],
                1.0,
            );
        }
        e.family(
            "orrery_signing_failures_total",
            Kind::Counter,
            "Failed attempts to sign a zone since this master started.",
        )
        .sample_u64(
            "orrery_signing_failures_total",
            &master,
            self.signing.failures(),
        );
        let configured = self.satellites.all_settings();
        let connected = configured
            .keys()
            .filter(|id| self.satellites.current_session(id).is_some())
            .count();
        e.family(
            "orrery_satellites_configured",
            Kind::Gauge,
            "Satellites this master's configuration lists.",
        )
        .sample_u64(
            "orrery_satellites_configured",
            &master,
            configured.len() as u64,
        );
        e.family(
            "orrery_satellites_connected",
            Kind::Gauge,
            "Satellites with a session on this master.",
        )
        .sample_u64("orrery_satellites_connected", &master, connected as u64);
        e.family(
            "orrery_satellite_applied_serial",
            Kind::Gauge,
            "Each satellite's applied serial, as the cluster state holds it.",
        );
        for (id, applied, _) in &facts.satellites {
            e.sample(
                "orrery_satellite_applied_serial",
                &[("satellite", id)],
                *applied as f64,
            );
        }
        e.family(
            "orrery_satellite_serial_lag",
            Kind::Gauge,
            "Serials each satellite is behind the store's journal head.",
        );
        for (id, _, lag) in &facts.satellites {
            e.sample(
                "orrery_satellite_serial_lag",
                &[("satellite", id)],
                *lag as f64,
            );
        }
        e.family(
            "orrery_watchdog_warnings",
            Kind::Gauge,
            "The watchdog's active warnings: 1 per raised warning, by rule and subject.",
        );
        for (rule, subject) in &facts.warnings {
            e.sample(
                "orrery_watchdog_warnings",
                &[("rule", rule), ("subject", subject)],
                1.0,
            );
        }
        e.family(
            "orrery_watchdog_warnings_active",
            Kind::Gauge,
            "How many watchdog warnings are raised.",
        )
        .sample_u64(
            "orrery_watchdog_warnings_active",
            &[],
            facts.warnings.len() as u64,
        );
        if let Some(ms) = self.cert_not_after_ms {
            e.family(
                "orrery_certificate_expiry_seconds",
                Kind::Gauge,
                "Seconds until this master's link certificate expires (negative once expired).",
            )
            .sample(
                "orrery_certificate_expiry_seconds",
                &[("certificate", "link"), ("master", &self.id)],
                (ms - unix_ms(std::time::SystemTime::now())) as f64 / 1000.0,
            );
        }
        if let Some(bytes) = resident_memory() {
            e.family(
                "process_resident_memory_bytes",
                Kind::Gauge,
                "Resident memory size in bytes.",
            )
            .sample_u64("process_resident_memory_bytes", &[], bytes);
        }
        e.family(
            "orrery_uptime_seconds",
            Kind::Gauge,
            "Seconds since this master started.",
        )
        .sample(
            "orrery_uptime_seconds",
            &master,
            self.started.elapsed().as_secs_f64(),
        );
        e.finish()
    }

    /// Serves the metrics on `addr` until `shutdown`; returns the bound address.
    pub async fn serve(
        self: &Arc<Self>,
        addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> std::io::Result<(SocketAddr, impl Future<Output = ()> + use<>)> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("binding metrics {addr}: {e}")))?;
        let bound = listener.local_addr()?;
        let me = Arc::clone(self);
        let render: Render = Arc::new(move || me.render());
        Ok((bound, metrics::serve(listener, render, shutdown)))
    }
}
