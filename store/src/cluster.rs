//! Cluster state: what every master, the watchdog and `orrery-master status` see alike — each
//! master's heartbeat, each satellite's last status and a bounded history of its counters, and
//! the watchdog's warnings (the tables of migration `cluster_state`).
//!
//! These writes never share a transaction with the registry or the journal: they are their own
//! short statements, so a failing or slow one delays only the cluster picture, never a change.
//! Times are milliseconds since the epoch on the database's clock ([`Store::now_ms`]); JSON
//! columns are written and read as text, their shape belongs to the master.

use sqlx::AssertSqlSafe;

use crate::write::{Arg, Tx};
use crate::{Result, Store, on_pool};

/// A master's heartbeat, as it writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterHeartbeat {
    pub id: String,
    pub host: String,
    /// When the process started (its own clock).
    pub started_ms: i64,
    pub journal_head: i64,
    /// The leases it holds.
    pub duties: Vec<String>,
    pub quarantined: i64,
    pub cert_expires_ms: Option<i64>,
    /// The zones it cannot sign, as JSON (`[{"zone", "error"}]`, the master's shape).
    pub unsignable: String,
}

/// A master's row as read.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct MasterRow {
    pub id: String,
    pub host: String,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
    pub journal_head: i64,
    /// Comma-separated lease names.
    pub duties: String,
    pub quarantined: i64,
    pub cert_expires_ms: Option<i64>,
    /// The zones it cannot sign, as JSON (see [`MasterHeartbeat::unsignable`]).
    pub unsignable: String,
}

/// What the master holding a satellite's session writes about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SatelliteReport {
    pub identity: String,
    pub master_id: String,
    pub connected: bool,
    /// A check-in (sets the last check-in time to now and may carry a sample); `false` for a
    /// change of state only (a boot, a closed connection), which the row takes only from the
    /// master that wrote it last, so a master that lost the satellite to another does not
    /// overwrite the newer picture.
    pub checked_in: bool,
    pub address: String,
    pub hostname: String,
    pub software_version: String,
    /// Seconds the satellite process has run, for `up_since`.
    pub uptime_s: Option<i64>,
    pub session_since_ms: Option<i64>,
    pub checkin_interval_ms: i64,
    pub applied_serial: i64,
    /// What the satellite is doing beyond following changes: `first_snapshot` (a bare
    /// satellite receiving its first snapshot) or empty.
    pub state: String,
    /// JSON.
    pub services: String,
    pub config_version: String,
    pub config_expected: String,
    pub config_refused: Option<String>,
    pub restart_required: String,
    pub memory_bytes: Option<i64>,
    pub memory_budget: Option<i64>,
    pub cert_expires_ms: Option<i64>,
    /// JSON; `None` keeps the stored logs.
    pub logs: Option<String>,
    pub logs_dropped: i64,
    pub sample: Option<StatsSample>,
}

/// One check-in's counters (cumulative since the satellite started).
#[derive(Clone, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct StatsSample {
    pub uptime_s: i64,
    pub dns_queries: i64,
    pub whois_queries: i64,
    pub rdap_queries: i64,
    pub responses: i64,
    pub servfail: i64,
    pub rate_limited: i64,
    pub errors: i64,
    /// JSON.
    pub detail: String,
}

/// A satellite's row as read.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SatelliteRow {
    pub identity: String,
    pub master_id: String,
    pub connected: bool,
    pub address: String,
    pub hostname: String,
    pub software_version: String,
    pub up_since_ms: Option<i64>,
    pub session_since_ms: Option<i64>,
    pub last_checkin_ms: Option<i64>,
    pub checkin_interval_ms: i64,
    pub applied_serial: i64,
    /// See [`SatelliteReport::state`].
    pub state: String,
    pub services: String,
    pub config_version: String,
    pub config_expected: String,
    pub config_refused: Option<String>,
    pub restart_required: String,
    pub memory_bytes: Option<i64>,
    pub memory_budget: Option<i64>,
    pub cert_expires_ms: Option<i64>,
    pub logs: String,
    pub logs_dropped: i64,
    pub updated_ms: i64,
}

/// A stored sample with its satellite and time.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StatsRow {
    pub identity: String,
    pub at_ms: i64,
    #[sqlx(flatten)]
    pub sample: StatsSample,
}

/// A watchdog warning.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct WarningRow {
    pub id: i64,
    pub rule: String,
    pub subject: String,
    pub raised_ms: i64,
    pub cleared_ms: Option<i64>,
    pub detail: String,
}

fn opt(v: Option<i64>) -> Arg {
    Arg::OptI64(v)
}

fn text(s: &str) -> Arg {
    Arg::Text(s.to_owned())
}

impl Store {
    /// Writes (or refreshes) a master's row; its heartbeat time is now.
    pub async fn master_heartbeat(&self, hb: &MasterHeartbeat) -> Result<()> {
        let now = self.sql.now_ms();
        let sql = format!(
            "INSERT INTO cluster_master(id, host, started_ms, heartbeat_ms, journal_head, duties, \
             quarantined, cert_expires_ms, unsignable) \
             VALUES ($1, $2, $3, {now}, $4, $5, $6, $7, COALESCE(NULLIF($8, ''), '[]')) \
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, started_ms = excluded.started_ms, \
             heartbeat_ms = excluded.heartbeat_ms, journal_head = excluded.journal_head, \
             duties = excluded.duties, quarantined = excluded.quarantined, \
             cert_expires_ms = excluded.cert_expires_ms, unsignable = excluded.unsignable"
        );
        let mut tx = Tx::begin(self).await?;
        tx.exec(
            &sql,
            &[
                text(&hb.id),
                text(&hb.host),
                Arg::I64(hb.started_ms),
                Arg::I64(hb.journal_head),
                text(&hb.duties.join(",")),
                Arg::I64(hb.quarantined),
                opt(hb.cert_expires_ms),
                text(&hb.unsignable),
            ],
        )
        .await?;
        tx.commit().await
    }

    /// Removes a master's row (a clean stop), so it is not shown as a dead master.
    pub async fn master_stopped(&self, id: &str) -> Result<()> {
        let mut tx = Tx::begin(self).await?;
        tx.exec("DELETE FROM cluster_master WHERE id = $1", &[text(id)])
            .await?;
        tx.commit().await
    }

    /// Every master's row.
    pub async fn cluster_masters(&self) -> Result<Vec<MasterRow>> {
        let sql = "SELECT id, host, started_ms, heartbeat_ms, journal_head, duties, quarantined, \
                   cert_expires_ms, unsignable FROM cluster_master ORDER BY id";
        Ok(on_pool!(self, p => sqlx::query_as::<_, MasterRow>(sql).fetch_all(p).await?))
    }

    /// Writes satellites' reports in one transaction: each one's row, its sample (if any), and
    /// its history pruned to the last `keep` samples. Callers batch the reports of many
    /// check-ins into one call.
    pub async fn record_satellites(&self, reports: &[SatelliteReport], keep: usize) -> Result<()> {
        if reports.is_empty() {
            return Ok(());
        }
        let now = self.sql.now_ms();
        let upsert = format!(
            "INSERT INTO cluster_satellite(identity, master_id, connected, address, hostname, \
               software_version, up_since_ms, session_since_ms, last_checkin_ms, \
               checkin_interval_ms, applied_serial, services, config_version, config_expected, \
               config_refused, restart_required, memory_bytes, memory_budget, cert_expires_ms, \
               logs, logs_dropped, updated_ms, state) \
             VALUES ($1, $2, $3, $4, $5, $6, {now} - $7 * 1000, $8, \
               CASE WHEN $9 = 1 THEN {now} END, $10, $11, $12, $13, $14, NULLIF($15, ''), $16, \
               $17, $18, $19, COALESCE(NULLIF($20, ''), '[]'), $21, {now}, $22) \
             ON CONFLICT (identity) DO UPDATE SET master_id = excluded.master_id, \
               connected = excluded.connected, address = excluded.address, \
               hostname = CASE WHEN excluded.hostname = '' THEN cluster_satellite.hostname \
                          ELSE excluded.hostname END, \
               software_version = CASE WHEN excluded.software_version = '' \
                          THEN cluster_satellite.software_version ELSE excluded.software_version END, \
               up_since_ms = COALESCE(excluded.up_since_ms, cluster_satellite.up_since_ms), \
               session_since_ms = excluded.session_since_ms, \
               last_checkin_ms = COALESCE(excluded.last_checkin_ms, cluster_satellite.last_checkin_ms), \
               checkin_interval_ms = excluded.checkin_interval_ms, \
               applied_serial = excluded.applied_serial, services = excluded.services, \
               config_version = excluded.config_version, config_expected = excluded.config_expected, \
               config_refused = excluded.config_refused, restart_required = excluded.restart_required, \
               memory_bytes = COALESCE(excluded.memory_bytes, cluster_satellite.memory_bytes), \
               memory_budget = excluded.memory_budget, \
               cert_expires_ms = COALESCE(excluded.cert_expires_ms, cluster_satellite.cert_expires_ms), \
               logs = CASE WHEN $20 = '' THEN cluster_satellite.logs ELSE excluded.logs END, \
               logs_dropped = excluded.logs_dropped, updated_ms = excluded.updated_ms, \
               state = excluded.state \
             WHERE $9 = 1 OR cluster_satellite.master_id = excluded.master_id"
        );
        let sample = format!(
            "INSERT INTO cluster_satellite_stats(identity, at_ms, uptime_s, dns_queries, \
               whois_queries, rdap_queries, responses, servfail, rate_limited, errors, detail) \
             VALUES ($1, {now}, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (identity, at_ms) DO NOTHING"
        );
        // Everything older than the `keep`-th newest sample of the satellite.
        let prune = "DELETE FROM cluster_satellite_stats WHERE identity = $1 AND at_ms < \
                     (SELECT at_ms FROM cluster_satellite_stats WHERE identity = $1 \
                      ORDER BY at_ms DESC LIMIT 1 OFFSET $2)";
        let keep = i64::try_from(keep.max(2) - 1).unwrap_or(i64::MAX);
        let mut tx = Tx::begin(self).await?;
        for r in reports {
            tx.exec(
                &upsert,
                &[
                    text(&r.identity),
                    text(&r.master_id),
                    Arg::Bool(r.connected),
                    text(&r.address),
                    text(&r.hostname),
                    text(&r.software_version),
                    opt(r.uptime_s),
                    opt(r.session_since_ms),
                    Arg::I64(i64::from(r.checked_in)),
                    Arg::I64(r.checkin_interval_ms),
                    Arg::I64(r.applied_serial),
                    text(&r.services),
                    text(&r.config_version),
                    text(&r.config_expected),
                    text(r.config_refused.as_deref().unwrap_or("")),
                    text(&r.restart_required),
                    opt(r.memory_bytes),
                    opt(r.memory_budget),
                    opt(r.cert_expires_ms),
                    text(r.logs.as_deref().unwrap_or("")),
                    Arg::I64(r.logs_dropped),
                    text(&r.state),
                ],
            )
            .await?;
            if let Some(s) = r.sample.as_ref().filter(|_| r.checked_in) {
                tx.exec(
                    &sample,
                    &[
                        text(&r.identity),
                        Arg::I64(s.uptime_s),
                        Arg::I64(s.dns_queries),
                        Arg::I64(s.whois_queries),
                        Arg::I64(s.rdap_queries),
                        Arg::I64(s.responses),
                        Arg::I64(s.servfail),
                        Arg::I64(s.rate_limited),
                        Arg::I64(s.errors),
                        text(&s.detail),
                    ],
                )
                .await?;
                tx.exec(prune, &[text(&r.identity), Arg::I64(keep)]).await?;
            }
        }
        tx.commit().await
    }

    /// Every satellite's row.
    pub async fn cluster_satellites(&self) -> Result<Vec<SatelliteRow>> {
        let sql = "SELECT identity, master_id, connected, address, hostname, software_version, \
                   up_since_ms, session_since_ms, last_checkin_ms, checkin_interval_ms, \
                   applied_serial, services, config_version, config_expected, config_refused, \
                   restart_required, memory_bytes, memory_budget, cert_expires_ms, logs, \
                   logs_dropped, updated_ms, state FROM cluster_satellite ORDER BY identity";
        Ok(on_pool!(self, p => sqlx::query_as::<_, SatelliteRow>(sql).fetch_all(p).await?))
    }

    /// The newest `per_satellite` samples of every satellite, newest first within each.
    pub async fn recent_stats(&self, per_satellite: usize) -> Result<Vec<StatsRow>> {
        let sql = "SELECT identity, at_ms, uptime_s, dns_queries, whois_queries, rdap_queries, \
                   responses, servfail, rate_limited, errors, detail FROM \
                   (SELECT *, ROW_NUMBER() OVER (PARTITION BY identity ORDER BY at_ms DESC) AS rn \
                    FROM cluster_satellite_stats) s \
                   WHERE rn <= $1 ORDER BY identity, at_ms DESC";
        let n = i64::try_from(per_satellite).unwrap_or(i64::MAX);
        Ok(on_pool!(self, p => sqlx::query_as::<_, StatsRow>(sql).bind(n).fetch_all(p).await?))
    }

    /// Forgets what is older than `max_age_ms`: samples (of satellites no longer checking in),
    /// cleared warnings, and the rows of masters gone that long.
    pub async fn prune_cluster_state(&self, max_age_ms: i64) -> Result<u64> {
        let now = self.sql.now_ms();
        let mut tx = Tx::begin(self).await?;
        let mut n = 0;
        for sql in [
            format!("DELETE FROM cluster_satellite_stats WHERE at_ms < {now} - $1"),
            format!("DELETE FROM cluster_warning WHERE cleared_ms < {now} - $1"),
            format!("DELETE FROM cluster_master WHERE heartbeat_ms < {now} - $1"),
        ] {
            n += tx.exec(&sql, &[Arg::I64(max_age_ms)]).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The commit time (seconds since the epoch) of the first journal row after `serial`:
    /// how long a satellite at `serial` has been behind. `None` when nothing follows it.
    pub async fn first_change_after(&self, serial: i64) -> Result<Option<i64>> {
        let sql = format!(
            "SELECT {} FROM journal WHERE serial > $1 ORDER BY serial LIMIT 1",
            self.sql.epoch("at")
        );
        let at: Option<Option<i64>> = on_pool!(self, p => sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(serial)
            .fetch_optional(p)
            .await?);
        Ok(at.flatten())
    }

    /// The warnings not cleared yet.
    pub async fn current_warnings(&self) -> Result<Vec<WarningRow>> {
        let sql = "SELECT id, rule, subject, raised_ms, cleared_ms, detail FROM cluster_warning \
                   WHERE cleared_ms IS NULL ORDER BY raised_ms, id";
        Ok(on_pool!(self, p => sqlx::query_as::<_, WarningRow>(sql).fetch_all(p).await?))
    }

    /// Raises warning `rule` about `subject`; `false` when it is already raised.
    pub async fn raise_warning(&self, rule: &str, subject: &str, detail: &str) -> Result<bool> {
        let now = self.sql.now_ms();
        let sql = format!(
            "INSERT INTO cluster_warning(rule, subject, raised_ms, detail) \
             VALUES ($1, $2, {now}, $3) \
             ON CONFLICT (rule, subject) WHERE cleared_ms IS NULL DO NOTHING"
        );
        let mut tx = Tx::begin(self).await?;
        let n = tx
            .exec(&sql, &[text(rule), text(subject), text(detail)])
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Clears warning `rule` about `subject`; `false` when it was not raised.
    pub async fn clear_warning(&self, rule: &str, subject: &str) -> Result<bool> {
        let now = self.sql.now_ms();
        let sql = format!(
            "UPDATE cluster_warning SET cleared_ms = {now} \
             WHERE rule = $1 AND subject = $2 AND cleared_ms IS NULL"
        );
        let mut tx = Tx::begin(self).await?;
        let n = tx.exec(&sql, &[text(rule), text(subject)]).await?;
        tx.commit().await?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{backends, raw};

    fn report(id: &str, master: &str, serial: i64) -> SatelliteReport {
        SatelliteReport {
            identity: id.into(),
            master_id: master.into(),
            connected: true,
            checked_in: true,
            address: "127.0.0.1:4000".into(),
            hostname: "host1".into(),
            software_version: "0.1.0".into(),
            uptime_s: Some(10),
            session_since_ms: Some(1),
            checkin_interval_ms: 1000,
            applied_serial: serial,
            state: "first_snapshot".into(),
            services: r#"[{"service":"dns"}]"#.into(),
            config_version: "v1".into(),
            config_expected: "v1".into(),
            config_refused: None,
            restart_required: String::new(),
            memory_bytes: Some(100),
            memory_budget: None,
            cert_expires_ms: Some(5),
            logs: None,
            logs_dropped: 0,
            sample: Some(StatsSample {
                uptime_s: 10,
                dns_queries: serial,
                detail: "{}".into(),
                ..StatsSample::default()
            }),
        }
    }

    #[tokio::test]
    async fn satellite_rows_history_and_ownership() {
        for db in backends().await {
            let s = &db.store;
            // Five check-ins a few milliseconds apart; the history keeps three.
            for serial in 1..=5 {
                let mut r = report("sat1", "m1", serial);
                if serial == 2 {
                    r.logs = Some(r#"[{"message":"boom"}]"#.into());
                }
                s.record_satellites(&[r, report("sat2", "m1", 100 + serial)], 3)
                    .await
                    .unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            }
            let rows = s.cluster_satellites().await.unwrap();
            assert_eq!(rows.len(), 2);
            let sat1 = &rows[0];
            assert_eq!((sat1.identity.as_str(), sat1.applied_serial), ("sat1", 5));
            // Logs stay until new ones come.
            assert_eq!(sat1.logs, r#"[{"message":"boom"}]"#);
            assert!(sat1.last_checkin_ms.is_some() && sat1.up_since_ms.is_some());
            assert_eq!(sat1.config_refused, None);
            assert_eq!(sat1.state, "first_snapshot");
            let stats = s.recent_stats(2).await.unwrap();
            let sat1_stats: Vec<_> = stats.iter().filter(|r| r.identity == "sat1").collect();
            assert_eq!(sat1_stats.len(), 2);
            assert_eq!(sat1_stats[0].sample.dns_queries, 5);
            assert_eq!(sat1_stats[1].sample.dns_queries, 4);
            assert!(sat1_stats[0].at_ms > sat1_stats[1].at_ms);
            let q = "SELECT COUNT(*) FROM cluster_satellite_stats WHERE identity = 'sat1'";
            let n = on_pool!(s, p => sqlx::query_scalar::<_, i64>(q).fetch_one(p).await.unwrap());
            assert_eq!(n, 3);

            // The satellite moved to m2; a late state change from m1 does not take it back.
            let mut moved = report("sat1", "m2", 6);
            moved.config_refused = Some("address in use".into());
            moved.state = String::new();
            s.record_satellites(&[moved], 3).await.unwrap();
            assert_eq!(s.cluster_satellites().await.unwrap()[0].state, "");
            let mut stale = report("sat1", "m1", 5);
            stale.checked_in = false;
            stale.connected = false;
            s.record_satellites(&[stale], 3).await.unwrap();
            let sat1 = &s.cluster_satellites().await.unwrap()[0];
            assert_eq!((sat1.master_id.as_str(), sat1.connected), ("m2", true));
            assert_eq!(sat1.config_refused.as_deref(), Some("address in use"));
            // m2 itself marks it disconnected.
            let mut gone = report("sat1", "m2", 6);
            gone.checked_in = false;
            gone.connected = false;
            s.record_satellites(&[gone], 3).await.unwrap();
            let sat1 = &s.cluster_satellites().await.unwrap()[0];
            assert!(!sat1.connected);
            db.finish().await;
        }
    }

    #[tokio::test]
    async fn masters_warnings_and_lag() {
        for db in backends().await {
            let s = &db.store;
            let hb = MasterHeartbeat {
                id: "m1".into(),
                host: "h".into(),
                started_ms: 7,
                journal_head: 3,
                duties: vec!["watchdog".into()],
                quarantined: 1,
                cert_expires_ms: None,
                unsignable: String::new(),
            };
            s.master_heartbeat(&hb).await.unwrap();
            assert_eq!(s.cluster_masters().await.unwrap()[0].unsignable, "[]");
            s.master_heartbeat(&MasterHeartbeat {
                journal_head: 4,
                unsignable: r#"[{"zone":"tld","error":"no key"}]"#.into(),
                ..hb.clone()
            })
            .await
            .unwrap();
            let masters = s.cluster_masters().await.unwrap();
            assert_eq!(masters.len(), 1);
            assert_eq!(
                (masters[0].journal_head, masters[0].duties.as_str()),
                (4, "watchdog")
            );
            assert!(masters[0].unsignable.contains("no key"));
            s.master_stopped("m1").await.unwrap();
            assert!(s.cluster_masters().await.unwrap().is_empty());

            assert!(
                s.raise_warning("missed_checkins", "sat1", "d")
                    .await
                    .unwrap()
            );
            assert!(
                !s.raise_warning("missed_checkins", "sat1", "d")
                    .await
                    .unwrap()
            );
            assert!(
                s.raise_warning("missed_checkins", "sat2", "d")
                    .await
                    .unwrap()
            );
            assert_eq!(s.current_warnings().await.unwrap().len(), 2);
            assert!(s.clear_warning("missed_checkins", "sat1").await.unwrap());
            assert!(!s.clear_warning("missed_checkins", "sat1").await.unwrap());
            let current = s.current_warnings().await.unwrap();
            assert_eq!(current.len(), 1);
            assert_eq!(current[0].subject, "sat2");
            // Raised again after a clear: a new warning.
            assert!(
                s.raise_warning("missed_checkins", "sat1", "d")
                    .await
                    .unwrap()
            );
            assert_eq!(s.prune_cluster_state(-1).await.unwrap(), 1);

            assert_eq!(s.first_change_after(0).await.unwrap(), None);
            raw(
                s,
                "INSERT INTO registrar(handle, name) VALUES ('R1', 'Registrar one')",
            )
            .await
            .unwrap();
            let at = s.first_change_after(0).await.unwrap().expect("a change");
            let now = s.now_ms().await.unwrap() / 1000;
            assert!((now - at).abs() < 60, "{at} {now}");
            let head = s.head().await.unwrap();
            assert_eq!(s.first_change_after(head).await.unwrap(), None);
            db.finish().await;
        }
    }
}
