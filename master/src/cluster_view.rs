//! The cluster as the store shows it: read once by `orrery-master status` and by each round
//! of the watchdog, so both see the same picture, and a master that takes over sees what the
//! previous one wrote. Everything here is read from the store; nothing asks a master.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use orrery_proto::link::SatelliteSettings;
use orrery_proto::link::tls::SatelliteId;
use orrery_store::{Lease, MasterRow, Result, SatelliteRow, StatsRow, Store, WarningRow};

use crate::cluster_state::services;

/// What the configuration expects of a satellite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub checkin_interval_ms: i64,
    pub memory_budget: Option<i64>,
    pub config_version: String,
    /// JSON, as in the stored row.
    pub services: String,
}

impl From<&SatelliteSettings> for Expected {
    fn from(s: &SatelliteSettings) -> Self {
        Self {
            checkin_interval_ms: s.checkin_interval.as_millis() as i64,
            memory_budget: s.memory_budget.map(|b| b as i64),
            config_version: s.version(),
            services: services(s),
        }
    }
}

/// One satellite: what the configuration expects and what the store holds.
#[derive(Clone, Debug, PartialEq)]
pub struct SatelliteView {
    pub identity: String,
    /// `None` when the configuration given does not list it (or none was given).
    pub expected: Option<Expected>,
    /// `None` when it never checked in.
    pub row: Option<SatelliteRow>,
    /// Its newest samples, newest first (at most two).
    pub samples: Vec<StatsRow>,
    /// Serials between its applied serial and the store's journal head.
    pub lag_serials: Option<i64>,
    /// Seconds since the oldest change it has not applied was committed (0 when current).
    pub lag_seconds: Option<i64>,
}

/// Rates between a satellite's two newest samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    pub seconds: f64,
    pub dns_qps: f64,
    pub whois_qps: f64,
    pub rdap_qps: f64,
    pub responses: i64,
    pub servfail: i64,
    pub queries: i64,
    pub errors: i64,
    pub rate_limited: i64,
}

impl SatelliteView {
    /// The check-in interval the configuration sets, else the one it last ran with.
    pub fn checkin_interval_ms(&self) -> Option<i64> {
        self.expected
            .as_ref()
            .map(|e| e.checkin_interval_ms)
            .or(self.row.as_ref().map(|r| r.checkin_interval_ms))
    }

    /// Milliseconds since its last check-in.
    pub fn checkin_age_ms(&self, now_ms: i64) -> Option<i64> {
        let row = self.row.as_ref()?;
        Some(now_ms - row.last_checkin_ms.unwrap_or(row.updated_ms))
    }

    /// The memory budget the configuration sets, else the one it last ran with.
    pub fn memory_budget(&self) -> Option<i64> {
        match &self.expected {
            Some(e) => e.memory_budget,
            None => self.row.as_ref().and_then(|r| r.memory_budget),
        }
    }

    /// Rates between its two newest samples; `None` with fewer than two, or when the satellite
    /// restarted between them (its counters went back to 0).
    pub fn rates(&self) -> Option<Rates> {
        let [new, old, ..] = self.samples.as_slice() else {
            return None;
        };
        let (n, o) = (&new.sample, &old.sample);
        let seconds = (new.at_ms - old.at_ms) as f64 / 1000.0;
        if seconds <= 0.0 || n.uptime_s < o.uptime_s || n.dns_queries < o.dns_queries {
            return None;
        }
        let d = |a: i64, b: i64| (a - b).max(0);
        let queries = d(n.dns_queries, o.dns_queries)
            + d(n.whois_queries, o.whois_queries)
            + d(n.rdap_queries, o.rdap_queries);
        Some(Rates {
            seconds,
            dns_qps: d(n.dns_queries, o.dns_queries) as f64 / seconds,
            whois_qps: d(n.whois_queries, o.whois_queries) as f64 / seconds,
            rdap_qps: d(n.rdap_queries, o.rdap_queries) as f64 / seconds,
            responses: d(n.responses, o.responses),
            servfail: d(n.servfail, o.servfail),
            queries,
            errors: d(n.errors, o.errors),
            rate_limited: d(n.rate_limited, o.rate_limited),
        })
    }
}

/// The whole picture at one moment (the database's clock).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterView {
    pub now_ms: i64,
    pub journal_head: i64,
    pub masters: Vec<MasterRow>,
    pub satellites: Vec<SatelliteView>,
    pub warnings: Vec<WarningRow>,
    pub leases: Vec<Lease>,
}

impl ClusterView {
    /// Reads the store. `configured` lists the satellites the configuration knows (every one
    /// is shown, checked in or not); satellites only the store knows are shown too.
    pub async fn read(
        store: &Store,
        configured: &BTreeMap<SatelliteId, SatelliteSettings>,
    ) -> Result<Self> {
        let now_ms = store.now_ms().await?;
        let journal_head = store.head().await?;
        let masters = store.cluster_masters().await?;
        let rows = store.cluster_satellites().await?;
        let mut samples: BTreeMap<String, Vec<StatsRow>> = BTreeMap::new();
        for s in store.recent_stats(2).await? {
            samples.entry(s.identity.clone()).or_default().push(s);
        }
        let warnings = store.current_warnings().await?;
        let leases = store.leases().await?;
        let mut rows: BTreeMap<String, SatelliteRow> =
            rows.into_iter().map(|r| (r.identity.clone(), r)).collect();
        let names: BTreeSet<String> = configured
            .keys()
            .map(|id| id.to_string())
            .chain(rows.keys().cloned())
            .collect();
        let mut satellites = Vec::with_capacity(names.len());
        for name in names {
            let row = rows.remove(&name);
            let (lag_serials, lag_seconds) = match &row {
                Some(r) if r.applied_serial < journal_head => {
                    let since = store.first_change_after(r.applied_serial).await?;
                    (
                        Some(journal_head - r.applied_serial),
                        since.map(|at| (now_ms / 1000 - at).max(0)),
                    )
                }
                Some(_) => (Some(0), Some(0)),
                None => (None, None),
            };
            let expected = SatelliteId::new(&name)
                .ok()
                .and_then(|id| configured.get(&id))
                .map(Expected::from);
            satellites.push(SatelliteView {
                samples: samples.remove(&name).unwrap_or_default(),
                identity: name,
                expected,
                row,
                lag_serials,
                lag_seconds,
            });
        }
        Ok(Self {
            now_ms,
            journal_head,
            masters,
            satellites,
            warnings,
            leases,
        })
    }

    /// Whether master `id` wrote its heartbeat within `stale_after`.
    pub fn master_up(&self, id: &str, stale_after: Duration) -> bool {
        self.masters
            .iter()
            .any(|m| m.id == id && self.now_ms - m.heartbeat_ms <= stale_after.as_millis() as i64)
    }

    /// The current holder of lease `name`, if it has not expired.
    pub fn lease_holder(&self, name: &str) -> Option<&str> {
        self.leases
            .iter()
            .find(|l| l.name == name && l.expires_ms > self.now_ms)
            .map(|l| l.holder.as_str())
    }
}
