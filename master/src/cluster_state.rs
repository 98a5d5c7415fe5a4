//! This master's part of the cluster state in the store (`orrery_store::cluster`): the status
//! and statistics of the satellites whose sessions it holds, its own heartbeat, and the
//! satellites' warnings and errors (logged here with their identity).
//!
//! The link never waits for the store: a check-in only replaces the satellite's pending report
//! in memory (one short lock, on the check-in path, never on a DNS query) and wakes the writer,
//! which writes every pending report in one transaction at most every [`FLUSH_INTERVAL`]. So a
//! satellite's row is written at most once per check-in, 200 satellites checking in every
//! second cost one transaction a second, and a store that is slow or down delays only this
//! picture: the reports stay pending (the newest per satellite, so memory is bounded by the
//! number of satellites) and the error is logged once per outage, never fatal.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use orrery_proto::link::tls::SatelliteId;
use orrery_proto::link::{SatelliteSettings, pb};
use orrery_store::{MasterHeartbeat, SatelliteReport, StatsSample, Store};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::cert_expiry::unix_ms;
use crate::config::{ClusterSettings, hostname};
use crate::satellites::SatelliteStatus;
use crate::serve::PeerInfo;
use crate::signing::SigningHealth;

/// Pending reports are written at most this often.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Latest log entries kept (and stored) per satellite.
pub const LOGS_KEPT: usize = 16;

/// RCODE 2 (RFC 1035 §4.1.1).
const SERVFAIL: u32 = 2;

/// The writer of this master's cluster state.
#[derive(Debug)]
pub struct ClusterState {
    settings: ClusterSettings,
    started_ms: i64,
    pending: Mutex<HashMap<SatelliteId, SatelliteReport>>,
    /// The last report of each satellite whose session this master holds (or held).
    last: Mutex<HashMap<SatelliteId, Last>>,
    duties: Mutex<BTreeSet<&'static str>>,
    wake: Notify,
}

#[derive(Debug)]
struct Last {
    report: SatelliteReport,
    logs: VecDeque<serde_json::Value>,
    dropped: u64,
}

impl ClusterState {
    pub fn new(settings: ClusterSettings) -> Self {
        Self {
            settings,
            started_ms: unix_ms(SystemTime::now()),
            pending: Mutex::default(),
            last: Mutex::default(),
            duties: Mutex::default(),
            wake: Notify::new(),
        }
    }

    /// This master's name in the cluster state.
    pub fn id(&self) -> &str {
        &self.settings.id
    }

    /// How long after its last heartbeat another master counts as gone.
    pub fn stale_after(&self) -> Duration {
        self.settings.stale_after()
    }

    /// Notes that this master holds (or no longer holds) a singleton duty; shown by `status`.
    pub fn set_duty(&self, duty: &'static str, held: bool) {
        let mut duties = self.duties.lock().unwrap_or_else(|e| e.into_inner());
        if held {
            duties.insert(duty);
        } else {
            duties.remove(duty);
        }
    }

    fn duties(&self) -> Vec<String> {
        let duties = self.duties.lock().unwrap_or_else(|e| e.into_inner());
        duties.iter().map(|d| (*d).to_owned()).collect()
    }

    /// Records a boot or a check-in of a satellite whose session this master holds, with the
    /// warnings and errors it sent up (logged here, the latest kept for `status`).
    pub fn checked_in(
        &self,
        peer: &PeerInfo,
        settings: &SatelliteSettings,
        status: &SatelliteStatus,
        session_since: Option<SystemTime>,
        logs: Vec<pb::LogEntry>,
        logs_dropped: u64,
    ) {
        let id = &peer.identity;
        for entry in &logs {
            log_satellite_entry(id, entry);
        }
        let stats = status.statistics.as_ref();
        let mut report = SatelliteReport {
            identity: id.to_string(),
            master_id: self.settings.id.clone(),
            connected: true,
            checked_in: true,
            address: peer.addr.to_string(),
            hostname: status.hostname.clone(),
            software_version: status.software_version.clone(),
            uptime_s: stats.map(|s| s.uptime_seconds as i64),
            session_since_ms: session_since.map(unix_ms),
            checkin_interval_ms: settings.checkin_interval.as_millis() as i64,
            applied_serial: status.applied_serial,
            state: if status.first_snapshot {
                "first_snapshot".into()
            } else {
                String::new()
            },
            services: services(settings),
            config_version: status.config_version.clone(),
            config_expected: settings.version(),
            config_refused: status.config_refused.clone(),
            restart_required: status.restart_required.join(", "),
            memory_bytes: stats.map(|s| s.memory_bytes as i64),
            memory_budget: settings.memory_budget.map(|b| b as i64),
            cert_expires_ms: peer.cert_expires_ms,
            logs: None,
            logs_dropped: logs_dropped as i64,
            sample: stats.map(sample),
        };
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let entry = last.entry(id.clone()).or_insert_with(|| Last {
                report: report.clone(),
                logs: VecDeque::new(),
                dropped: 0,
            });
            if logs_dropped > entry.dropped {
                tracing::warn!(
                    satellite = %id,
                    dropped = logs_dropped - entry.dropped,
                    "satellite dropped log entries (its buffer was full while no master took them)"
                );
            }
            entry.dropped = logs_dropped;
            if !logs.is_empty() {
                for e in logs {
                    if entry.logs.len() == LOGS_KEPT {
                        entry.logs.pop_front();
                    }
                    entry.logs.push_back(json!({
                        "time": e.time, "level": e.level, "target": e.target, "message": e.message,
                    }));
                }
                report.logs =
                    Some(serde_json::Value::from(Vec::from(entry.logs.clone())).to_string());
            }
            entry.report = report.clone();
        }
        self.queue(id, report);
    }

    /// Records that the session of `id` on this master ended.
    pub fn disconnected(&self, id: &SatelliteId) {
        let report = {
            let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let Some(last) = last.get(id) else { return };
            SatelliteReport {
                connected: false,
                checked_in: false,
                logs: None,
                sample: None,
                ..last.report.clone()
            }
        };
        self.queue(id, report);
    }

    fn queue(&self, id: &SatelliteId, mut report: SatelliteReport) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(older) = pending.remove(id) {
            // Keep what the newer one would lose: the logs, and a check-in's ownership.
            if report.logs.is_none() {
                report.logs = older.logs;
            }
            if report.sample.is_none() && report.connected == older.connected {
                report.sample = older.sample;
            }
            report.checked_in |= older.checked_in && report.connected;
        }
        pending.insert(id.clone(), report);
        drop(pending);
        self.wake.notify_one();
    }

    /// Writes pending reports; on failure they stay pending (unless a newer one came).
    async fn flush(&self, store: &Store, failing: &mut bool) {
        let reports: Vec<SatelliteReport> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().map(|(_, r)| r).collect()
        };
        if reports.is_empty() {
            return;
        }
        match store
            .record_satellites(&reports, self.settings.stats_history)
            .await
        {
            Ok(()) => {
                if std::mem::take(failing) {
                    tracing::info!("cluster state written to the store again");
                }
            }
            Err(e) => {
                if !std::mem::replace(failing, true) {
                    tracing::warn!(error = %e, "cannot write the satellites' status to the store (kept, retried)");
                }
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for r in reports {
                    if let Ok(id) = SatelliteId::new(&r.identity) {
                        pending.entry(id).or_insert(r);
                    }
                }
            }
        }
    }

    /// Writes this master's heartbeat and the pending satellite reports until `shutdown`;
    /// then removes this master's row, so it is not shown as a dead master.
    pub async fn run(
        self: Arc<Self>,
        store: Store,
        cache: Arc<Cache>,
        signing: Arc<SigningHealth>,
        cert_expires_ms: Option<i64>,
        shutdown: CancellationToken,
    ) {
        let mut heartbeat = tokio::time::interval(self.settings.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut flush_failing, mut heartbeat_failing) = (false, false);
        let host = hostname();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = flush.tick() => self.flush(&store, &mut flush_failing).await,
                _ = heartbeat.tick() => {
                    let hb = MasterHeartbeat {
                        id: self.settings.id.clone(),
                        host: host.clone(),
                        started_ms: self.started_ms,
                        journal_head: cache.head(),
                        duties: self.duties(),
                        // Rows quarantined now, not since start: the warning clears once they are fixed.
                        quarantined: cache.quarantined_now() as i64,
                        cert_expires_ms,
                        // Zones failing now: the warning clears once they sign again.
                        unsignable: signing.to_json(),
                    };
                    match store.master_heartbeat(&hb).await {
                        Ok(()) => if std::mem::take(&mut heartbeat_failing) {
                            tracing::info!("master heartbeat written to the store again");
                        },
                        Err(e) => if !std::mem::replace(&mut heartbeat_failing, true) {
                            tracing::warn!(error = %e, "cannot write this master's heartbeat to the store (retried)");
                        },
                    }
                }
            }
        }
        self.flush(&store, &mut flush_failing).await;
        if let Err(e) = store.master_stopped(&self.settings.id).await {
            tracing::warn!(error = %e, "cannot remove this master from the cluster state");
        }
    }
}

/// A satellite's log entry in this master's log, with its identity and level.
fn log_satellite_entry(id: &SatelliteId, e: &pb::LogEntry) {
    if e.level == "ERROR" {
        tracing::error!(satellite = %id, target = %e.target, time = e.time, "satellite: {}", e.message);
    } else {
        tracing::warn!(satellite = %id, target = %e.target, time = e.time, "satellite: {}", e.message);
    }
}

/// The listeners a satellite was given, as JSON for `status`.
pub fn services(s: &SatelliteSettings) -> String {
    let mut out = Vec::new();
    let mut add = |service: &str, transport: &str, addrs: &[std::net::SocketAddr]| {
        for a in addrs {
            out.push(json!({"service": service, "transport": transport, "address": a.to_string()}));
        }
    };
    if let Some(d) = &s.dns {
        add("dns", "udp", &d.udp);
        add("dns", "tcp", &d.tcp);
    }
    if let Some(w) = &s.whois {
        add("whois", "tcp", &w.tcp);
    }
    if let Some(r) = &s.rdap {
        add("rdap", "http", &r.http);
        add("rdap", "https", &r.https);
    }
    serde_json::Value::from(out).to_string()
}

/// One check-in's counters as a stored sample.
pub fn sample(s: &pb::Statistics) -> StatsSample {
    let sum = |m: &HashMap<u32, u64>| m.values().sum::<u64>() as i64;
    // Rate limiting is not an error: limited answers (dropped, `rate_limited`, `rds_…`) and
    // slipped ones (sent truncated, `slipped`) are counted apart.
    let limiting = |k: &str| k.contains("rate_limited") || k == "slipped";
    let rate_limited: u64 = s
        .errors
        .iter()
        .filter(|(k, _)| limiting(k))
        .map(|(_, v)| v)
        .sum();
    let mut rcodes: Vec<_> = s.responses_by_rcode.iter().collect();
    rcodes.sort();
    let mut errors: Vec<_> = s.errors.iter().collect();
    errors.sort();
    StatsSample {
        uptime_s: s.uptime_seconds as i64,
        dns_queries: sum(&s.queries_by_qtype),
        whois_queries: s.whois_queries as i64,
        rdap_queries: s.rdap_queries as i64,
        responses: sum(&s.responses_by_rcode),
        servfail: s.responses_by_rcode.get(&SERVFAIL).copied().unwrap_or(0) as i64,
        rate_limited: rate_limited as i64,
        errors: s
            .errors
            .iter()
            .filter(|(k, _)| !limiting(k))
            .map(|(_, v)| *v as i64)
            .sum(),
        detail: json!({
            "rcodes": rcodes.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "errors": errors.into_iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        })
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_sums_services_and_splits_rate_limits_from_errors() {
        let s = pb::Statistics {
            uptime_seconds: 5,
            queries_by_qtype: [(1, 10), (28, 5)].into_iter().collect(),
            responses_by_rcode: [(0, 12), (2, 3)].into_iter().collect(),
            errors: [
                ("dropped".to_owned(), 2),
                ("rds_rate_limited".to_owned(), 4),
                ("rate_limited".to_owned(), 5),
                ("slipped".to_owned(), 6),
            ]
            .into_iter()
            .collect(),
            whois_queries: 7,
            rdap_queries: 8,
            ..Default::default()
        };
        let x = sample(&s);
        assert_eq!((x.dns_queries, x.whois_queries, x.rdap_queries), (15, 7, 8));
        assert_eq!((x.responses, x.servfail), (15, 3));
        assert_eq!((x.rate_limited, x.errors), (4 + 5 + 6, 2));
        let detail: serde_json::Value = serde_json::from_str(&x.detail).unwrap();
        assert_eq!(detail["rcodes"]["2"], 3);
        assert_eq!(detail["errors"]["dropped"], 2);
    }
}
