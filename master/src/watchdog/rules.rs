//! The watchdog's rules: pure functions of a [`ClusterView`] and the thresholds, no I/O. Each
//! rule gives the findings that hold *now*; [`changes`] compares them with the warnings raised
//! so far, so a warning is raised once while its condition lasts and cleared once it no longer
//! holds.
//!
//! Subjects name what a warning is about: `satellite:NAME`, `master:ID`, `zone:NAME`, `store`
//! or `cluster`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::cluster_view::ClusterView;
use crate::config::WatchdogSettings;

/// The rules, by the name warnings carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    MissedCheckins,
    SerialLag,
    ServfailRate,
    ErrorRate,
    MemoryOverBudget,
    RefusedConfig,
    CertExpiring,
    QuarantinedRows,
    UnsignableZone,
    NoStandby,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Self::MissedCheckins => "missed_checkins",
            Self::SerialLag => "serial_lag",
            Self::ServfailRate => "servfail_rate",
            Self::ErrorRate => "error_rate",
            Self::MemoryOverBudget => "memory_over_budget",
            Self::RefusedConfig => "refused_config",
            Self::CertExpiring => "cert_expiring",
            Self::QuarantinedRows => "quarantined_rows",
            Self::UnsignableZone => "unsignable_zone",
            Self::NoStandby => "no_standby",
        }
    }
}

/// A condition that holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub subject: String,
    /// For the operator: what was seen against which threshold.
    pub detail: String,
}

/// What the watchdog needs besides the view and the thresholds.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    /// A master whose heartbeat is older than this is taken for gone.
    pub master_stale_after: Duration,
    /// When this watchdog started watching (database clock): a satellite that never checked
    /// in is reported only once it has had the time to.
    pub watching_since_ms: i64,
}

const DAY_MS: i64 = 86_400_000;

/// Every finding that holds in `view`.
pub fn evaluate(view: &ClusterView, t: &WatchdogSettings, cx: Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |rule, subject: String, detail: String| {
        out.push(Finding {
            rule,
            subject,
            detail,
        })
    };
    let now = view.now_ms;
    for s in &view.satellites {
        let subject = format!("satellite:{}", s.identity);
        let interval = s.checkin_interval_ms().unwrap_or(60_000).max(1);
        // Missed check-ins: silent for `missed_checkins` intervals (or never heard from).
        let missed = t.missed_checkins > 0
            && {
                let allowed = interval * i64::from(t.missed_checkins);
                match s.checkin_age_ms(now) {
                    Some(age) if age > allowed => {
                        let master = s.row.as_ref().map_or("", |r| r.master_id.as_str());
                        add(
                            Rule::MissedCheckins,
                            subject.clone(),
                            format!(
                                "no check-in for {:.1} s (every {:.1} s, warning after {} missed; last via {master})",
                                age as f64 / 1000.0,
                                interval as f64 / 1000.0,
                                t.missed_checkins
                            ),
                        );
                        true
                    }
                    Some(_) => false,
                    None if s.expected.is_some() && now - cx.watching_since_ms > allowed => {
                        add(
                            Rule::MissedCheckins,
                            subject.clone(),
                            "configured, but has never checked in".into(),
                        );
                        true
                    }
                    None => false,
                }
            };
        let Some(row) = &s.row else { continue };
        // Serial lag, judged only for satellites that are checking in (a silent one's serial
        // is as old as its last check-in: that is the missed check-in), and not while a bare
        // satellite receives its first snapshot: it is behind by the whole registry until
        // then, by design (a snapshot that never ends shows as missed check-ins or in
        // `status`, not as lag).
        if !missed && row.state != "first_snapshot" {
            let serials = s.lag_serials.unwrap_or(0);
            let seconds = s.lag_seconds.unwrap_or(0);
            let by_serials = t.serial_lag > 0 && serials > t.serial_lag as i64;
            let by_seconds = t.serial_lag_seconds > 0 && seconds > t.serial_lag_seconds as i64;
            if by_serials || by_seconds {
                add(
                    Rule::SerialLag,
                    subject.clone(),
                    format!(
                        "applied serial {} is {serials} serials and {seconds} s behind the journal head {} (thresholds {} serials, {} s)",
                        row.applied_serial, view.journal_head, t.serial_lag, t.serial_lag_seconds
                    ),
                );
            }
        }
        if let Some(r) = s.rates() {
            let min = t.min_responses.max(1) as i64;
            if t.servfail_ratio > 0.0 && r.responses >= min {
                let ratio = r.servfail as f64 / r.responses as f64;
                if ratio > t.servfail_ratio {
                    add(
                        Rule::ServfailRate,
                        subject.clone(),
                        format!(
                            "{} of {} answers SERVFAIL ({:.1} %) over {:.1} s (threshold {:.1} %)",
                            r.servfail,
                            r.responses,
                            ratio * 100.0,
                            r.seconds,
                            t.servfail_ratio * 100.0
                        ),
                    );
                }
            }
            if t.error_ratio > 0.0 && r.queries >= min {
                let ratio = r.errors as f64 / r.queries as f64;
                if ratio > t.error_ratio {
                    add(
                        Rule::ErrorRate,
                        subject.clone(),
                        format!(
                            "{} errors for {} queries ({:.1} %) over {:.1} s (threshold {:.1} %)",
                            r.errors,
                            r.queries,
                            ratio * 100.0,
                            r.seconds,
                            t.error_ratio * 100.0
                        ),
                    );
                }
            }
        }
        if t.memory_over_budget
            && let (Some(used), Some(budget)) = (row.memory_bytes, s.memory_budget())
            && budget > 0
            && used > budget
        {
            add(
                Rule::MemoryOverBudget,
                subject.clone(),
                format!(
                    "resident memory {} MiB above its budget of {} MiB",
                    used >> 20,
                    budget >> 20
                ),
            );
        }
        if t.refused_config
            && let Some(reason) = &row.config_refused
        {
            add(
                Rule::RefusedConfig,
                subject.clone(),
                format!("runs configuration {:?}: {reason}", row.config_version),
            );
        }
        if t.cert_expiry_days > 0
            && let Some(expires) = row.cert_expires_ms
            && expires - now < i64::from(t.cert_expiry_days) * DAY_MS
        {
            add(Rule::CertExpiring, subject.clone(), expiry(expires, now));
        }
    }
    let up: Vec<_> = view
        .masters
        .iter()
        .filter(|m| view.master_up(&m.id, cx.master_stale_after))
        .collect();
    for m in &up {
        if t.cert_expiry_days > 0
            && let Some(expires) = m.cert_expires_ms
            && expires - now < i64::from(t.cert_expiry_days) * DAY_MS
        {
            add(
                Rule::CertExpiring,
                format!("master:{}", m.id),
                expiry(expires, now),
            );
        }
    }
    if t.quarantined_rows > 0
        && let Some(m) = up.iter().max_by_key(|m| m.quarantined)
        && m.quarantined >= t.quarantined_rows as i64
    {
        add(
            Rule::QuarantinedRows,
            "store".into(),
            format!(
                "{} rows quarantined (master {}; `orrery-admin bad-rows` lists them)",
                m.quarantined, m.id
            ),
        );
    }
    // Zones a master cannot sign (issue 13): one warning per zone, naming every master that
    // reports it. Only masters with a fresh heartbeat count: a dead master's list is stale.
    if t.unsignable_zone {
        let mut zones: BTreeMap<String, Vec<(&str, String)>> = BTreeMap::new();
        for m in &up {
            for (zone, error) in unsignable_zones(&m.unsignable) {
                zones.entry(zone).or_default().push((m.id.as_str(), error));
            }
        }
        for (zone, by) in zones {
            let masters: Vec<String> = by.iter().map(|(m, e)| format!("{m}: {e}")).collect();
            add(
                Rule::UnsignableZone,
                format!("zone:{zone}"),
                format!(
                    "cannot be signed ({}); its changes are withheld and satellites serve its \
                     last signed state",
                    masters.join("; ")
                ),
            );
        }
    }
    if t.require_standby && up.len() < 2 {
        let ids: Vec<_> = up.iter().map(|m| m.id.as_str()).collect();
        add(
            Rule::NoStandby,
            "cluster".into(),
            format!(
                "{} master(s) with a fresh heartbeat ({}): no standby to take over",
                up.len(),
                ids.join(", ")
            ),
        );
    }
    out
}

/// The zones of a master row's `unsignable` JSON (`[{"zone", "error"}]`), with the reason;
/// nothing from a column that does not parse (an older master's shape): a warning is not
/// invented from it.
pub fn unsignable_zones(json: &str) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str(json) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|i| {
            let zone = i["zone"].as_str()?;
            let error = i["error"].as_str().unwrap_or("");
            Some((zone.to_owned(), error.to_owned()))
        })
        .collect()
}

fn expiry(expires_ms: i64, now_ms: i64) -> String {
    let days = (expires_ms - now_ms) as f64 / DAY_MS as f64;
    if days < 0.0 {
        format!("link certificate expired {:.1} days ago", -days)
    } else {
        format!("link certificate expires in {days:.1} days")
    }
}

/// What to raise (findings not raised yet) and what to clear (raised warnings, as `(rule
/// name, subject)`, whose condition no longer holds).
pub fn changes<'a>(
    raised: &[(String, String)],
    findings: &'a [Finding],
) -> (Vec<&'a Finding>, Vec<(String, String)>) {
    let now: BTreeSet<(&str, &str)> = findings
        .iter()
        .map(|f| (f.rule.name(), f.subject.as_str()))
        .collect();
    let before: BTreeSet<(&str, &str)> = raised
        .iter()
        .map(|(r, s)| (r.as_str(), s.as_str()))
        .collect();
    let raise = findings
        .iter()
        .filter(|f| !before.contains(&(f.rule.name(), f.subject.as_str())))
        .collect();
    let clear = raised
        .iter()
        .filter(|(r, s)| !now.contains(&(r.as_str(), s.as_str())))
        .cloned()
        .collect();
    (raise, clear)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_view::{Expected, SatelliteView};
    use orrery_store::{MasterRow, SatelliteRow, StatsRow, StatsSample};

    const NOW: i64 = 1_000_000_000;

    fn thresholds() -> WatchdogSettings {
        WatchdogSettings {
            require_standby: true,
            ..WatchdogSettings::defaults(true)
        }
    }

    fn cx() -> Context {
        Context {
            master_stale_after: Duration::from_secs(10),
            watching_since_ms: NOW - 3_600_000,
        }
    }

    fn master(id: &str, age_ms: i64) -> MasterRow {
        MasterRow {
            id: id.into(),
            host: "h".into(),
            started_ms: 0,
            heartbeat_ms: NOW - age_ms,
            journal_head: 100,
            duties: String::new(),
            quarantined: 0,
            cert_expires_ms: Some(NOW + 365 * DAY_MS),
            unsignable: "[]".into(),
        }
    }

    fn row(id: &str) -> SatelliteRow {
        SatelliteRow {
            identity: id.into(),
            master_id: "m1".into(),
            connected: true,
            address: "127.0.0.1:1".into(),
            hostname: String::new(),
            software_version: String::new(),
            up_since_ms: Some(0),
            session_since_ms: Some(0),
            last_checkin_ms: Some(NOW - 500),
            checkin_interval_ms: 1000,
            applied_serial: 100,
            state: String::new(),
            services: "[]".into(),
            config_version: "v1".into(),
            config_expected: "v1".into(),
            config_refused: None,
            restart_required: String::new(),
            memory_bytes: Some(100 << 20),
            memory_budget: Some(200 << 20),
            cert_expires_ms: Some(NOW + 365 * DAY_MS),
            logs: "[]".into(),
            logs_dropped: 0,
            updated_ms: NOW - 500,
        }
    }

    fn stats(at_ms: i64, responses: i64, servfail: i64, errors: i64) -> StatsRow {
        StatsRow {
            identity: "sat1".into(),
            at_ms,
            sample: StatsSample {
                uptime_s: at_ms / 1000,
                dns_queries: responses,
                responses,
                servfail,
                errors,
                ..StatsSample::default()
            },
        }
    }

    fn satellite(row: Option<SatelliteRow>) -> SatelliteView {
        SatelliteView {
            identity: "sat1".into(),
            expected: Some(Expected {
                checkin_interval_ms: 1000,
                memory_budget: Some(200 << 20),
                config_version: "v1".into(),
                services: "[]".into(),
            }),
            row,
            samples: vec![stats(NOW - 500, 2000, 0, 0), stats(NOW - 1500, 1000, 0, 0)],
            lag_serials: Some(0),
            lag_seconds: Some(0),
        }
    }

    /// A healthy cluster: two fresh masters, one satellite checking in.
    fn healthy() -> ClusterView {
        ClusterView {
            now_ms: NOW,
            journal_head: 100,
            masters: vec![master("m1", 500), master("m2", 1500)],
            satellites: vec![satellite(Some(row("sat1")))],
            warnings: vec![],
            leases: vec![],
        }
    }

    fn rules(view: &ClusterView) -> Vec<(Rule, String)> {
        evaluate(view, &thresholds(), cx())
            .into_iter()
            .map(|f| (f.rule, f.subject))
            .collect()
    }

    fn sat1(rule: Rule) -> Vec<(Rule, String)> {
        vec![(rule, "satellite:sat1".to_owned())]
    }

    /// Each case breaks one thing in a healthy view: the rule is raised; the healthy view
    /// (the condition gone) clears it.
    #[test]
    fn each_rule_raises_on_its_condition_and_clears_without_it() {
        assert_eq!(rules(&healthy()), vec![]);
        let mut cases: Vec<(ClusterView, Vec<(Rule, String)>)> = Vec::new();

        let mut v = healthy();
        v.satellites[0].row.as_mut().unwrap().last_checkin_ms = Some(NOW - 3_500);
        cases.push((v, sat1(Rule::MissedCheckins)));
        let mut v = healthy();
        v.satellites[0].row = None;
        v.satellites[0].samples.clear();
        cases.push((v, sat1(Rule::MissedCheckins)));

        let mut v = healthy();
        v.satellites[0].lag_serials = Some(5000);
        cases.push((v, sat1(Rule::SerialLag)));
        let mut v = healthy();
        v.satellites[0].lag_seconds = Some(61);
        cases.push((v, sat1(Rule::SerialLag)));
        // Behind by the whole registry while its first snapshot arrives: no serial lag.
        let mut v = healthy();
        v.satellites[0].lag_serials = Some(5000);
        v.satellites[0].lag_seconds = Some(61);
        v.satellites[0].row.as_mut().unwrap().state = "first_snapshot".into();
        assert_eq!(rules(&v), vec![], "first snapshot");

        let mut v = healthy();
        v.satellites[0].samples[0] = stats(NOW - 500, 2000, 50, 0);
        cases.push((v, sat1(Rule::ServfailRate)));
        let mut v = healthy();
        v.satellites[0].samples[0] = stats(NOW - 500, 2000, 0, 200);
        cases.push((v, sat1(Rule::ErrorRate)));

        let mut v = healthy();
        v.satellites[0].row.as_mut().unwrap().memory_bytes = Some(300 << 20);
        cases.push((v, sat1(Rule::MemoryOverBudget)));

        let mut v = healthy();
        v.satellites[0].row.as_mut().unwrap().config_refused = Some("address in use".into());
        cases.push((v, sat1(Rule::RefusedConfig)));

        let mut v = healthy();
        v.satellites[0].row.as_mut().unwrap().cert_expires_ms = Some(NOW + 2 * DAY_MS);
        cases.push((v, sat1(Rule::CertExpiring)));
        let mut v = healthy();
        v.masters[1].cert_expires_ms = Some(NOW - DAY_MS);
        cases.push((v, vec![(Rule::CertExpiring, "master:m2".into())]));

        let mut v = healthy();
        v.masters[1].quarantined = 2;
        cases.push((v, vec![(Rule::QuarantinedRows, "store".into())]));

        let mut v = healthy();
        v.masters[1].heartbeat_ms = NOW - 60_000;
        cases.push((v, vec![(Rule::NoStandby, "cluster".into())]));

        // Both masters cannot sign zone `tld`: one warning for the zone, naming both.
        let mut v = healthy();
        for m in &mut v.masters {
            m.unsignable = r#"[{"zone":"tld","error":"key K1 missing"}]"#.into();
        }
        cases.push((v, vec![(Rule::UnsignableZone, "zone:tld".into())]));

        for (view, want) in cases {
            let findings = evaluate(&view, &thresholds(), cx());
            let got: Vec<_> = findings
                .iter()
                .map(|f| (f.rule, f.subject.clone()))
                .collect();
            assert_eq!(got, want, "{findings:?}");
            // Raised once …
            let (raise, clear) = changes(&[], &findings);
            assert_eq!((raise.len(), clear.len()), (1, 0));
            let raised: Vec<_> = findings
                .iter()
                .map(|f| (f.rule.name().to_owned(), f.subject.clone()))
                .collect();
            let (raise, clear) = changes(&raised, &findings);
            assert_eq!((raise.len(), clear.len()), (0, 0), "not raised twice");
            // … and cleared once the view is healthy again.
            let healthy = evaluate(&healthy(), &thresholds(), cx());
            let (raise, clear) = changes(&raised, &healthy);
            assert_eq!((raise.len(), clear), (0, raised.clone()));
        }
    }

    #[test]
    fn unsignable_zones_come_from_fresh_masters_only_and_name_each() {
        let mut v = healthy();
        v.masters[0].unsignable = r#"[{"zone":"a","error":"e1"},{"zone":"b","error":"e2"}]"#.into();
        v.masters[1].unsignable = r#"[{"zone":"b","error":"e3"}]"#.into();
        let found = evaluate(&v, &thresholds(), cx());
        let got: Vec<_> = found.iter().map(|f| (f.rule, f.subject.as_str())).collect();
        assert_eq!(
            got,
            [
                (Rule::UnsignableZone, "zone:a"),
                (Rule::UnsignableZone, "zone:b")
            ]
        );
        assert!(found[1].detail.contains("m1: e2") && found[1].detail.contains("m2: e3"));
        // A master gone stale: its list no longer counts (but it leaves no standby).
        v.masters[0].heartbeat_ms = NOW - 60_000;
        let subjects: Vec<_> = evaluate(&v, &thresholds(), cx())
            .into_iter()
            .filter(|f| f.rule == Rule::UnsignableZone)
            .map(|f| f.subject)
            .collect();
        assert_eq!(subjects, ["zone:b"]);
        // Unparsable or empty: nothing.
        assert!(unsignable_zones("").is_empty());
        assert!(unsignable_zones("{\"zone\":1}").is_empty());
        assert_eq!(
            unsignable_zones("[{\"zone\":\"x\"}]"),
            [("x".into(), String::new())]
        );
    }

    #[test]
    fn thresholds_hold_back_and_turn_rules_off() {
        // Too few answers to judge a ratio.
        let mut v = healthy();
        v.satellites[0].samples = vec![
            stats(NOW - 500, 1050, 40, 40),
            stats(NOW - 1500, 1000, 0, 0),
        ];
        assert_eq!(rules(&v), vec![]);
        // A restart between samples gives no rate (counters went back).
        let mut v = healthy();
        v.satellites[0].samples = vec![stats(NOW - 500, 10, 10, 10), stats(NOW - 1500, 1000, 0, 0)];
        assert_eq!(rules(&v), vec![]);
        // A silent satellite is a missed check-in, not also a lagging one.
        let mut v = healthy();
        v.satellites[0].row.as_mut().unwrap().last_checkin_ms = Some(NOW - 10_000);
        v.satellites[0].lag_serials = Some(5000);
        assert_eq!(rules(&v), sat1(Rule::MissedCheckins));
        // Never checked in, but the watchdog only just started: not yet.
        let mut v = healthy();
        v.satellites[0].row = None;
        let just_started = Context {
            watching_since_ms: NOW - 1000,
            ..cx()
        };
        assert!(evaluate(&v, &thresholds(), just_started).is_empty());
        // 0 / false turn rules off.
        let mut v = healthy();
        {
            let r = v.satellites[0].row.as_mut().unwrap();
            r.last_checkin_ms = Some(NOW - 3_500);
            r.config_refused = Some("x".into());
            r.memory_bytes = Some(300 << 20);
        }
        v.masters.truncate(1);
        v.masters[0].unsignable = r#"[{"zone":"tld","error":"no key directory"}]"#.into();
        let off = WatchdogSettings {
            missed_checkins: 0,
            refused_config: false,
            memory_over_budget: false,
            unsignable_zone: false,
            require_standby: false,
            ..thresholds()
        };
        assert_eq!(evaluate(&v, &off, cx()), vec![]);
    }
}
