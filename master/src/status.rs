//! `orrery-master status`: the cluster as the store shows it — every satellite and every
//! master, with the watchdog's current warnings — for an operator (one block per satellite) or
//! for scripts (`--json`). It reads only the store, so it works from any host that reaches it,
//! whichever masters are up.

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cluster_view::{ClusterView, SatelliteView};
use crate::watchdog::rules::unsignable_zones;

/// RFC 3339 (UTC, whole seconds) of a time in milliseconds since the epoch.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{ms}ms"))
}

/// A duration for people: `850 ms`, `12.3 s`, `4 min 5 s`, `3 h 20 min`, `12 d 4 h`.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {} s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// How `status` judges a master alive: its heartbeat within this.
#[derive(Clone, Copy, Debug)]
pub struct StatusOptions {
    pub master_stale_after: Duration,
}

/// A satellite's connection, as `status` tells it.
fn connection(view: &ClusterView, s: &SatelliteView, o: StatusOptions) -> (bool, String) {
    let Some(row) = &s.row else {
        return (false, "never checked in".into());
    };
    let up = view.master_up(&row.master_id, o.master_stale_after);
    if row.connected && up {
        (
            true,
            format!("connected to {} from {}", row.master_id, row.address),
        )
    } else if row.connected {
        (
            false,
            format!(
                "not connected: its master {} has no fresh heartbeat",
                row.master_id
            ),
        )
    } else {
        (
            false,
            format!("not connected (last session on {})", row.master_id),
        )
    }
}

/// The JSON document of `status --json`.
pub fn to_json(view: &ClusterView, o: StatusOptions) -> Value {
    let masters: Vec<Value> = view
        .masters
        .iter()
        .map(|m| {
            let up = view.master_up(&m.id, o.master_stale_after);
            json!({
                "id": m.id,
                "host": m.host,
                "up": up,
                "store_reachable": up,
                "started": rfc3339(m.started_ms),
                "heartbeat": rfc3339(m.heartbeat_ms),
                "heartbeat_age_ms": view.now_ms - m.heartbeat_ms,
                "duties": m.duties.split(',').filter(|d| !d.is_empty()).collect::<Vec<_>>(),
                "journal_head": m.journal_head,
                "behind_store": (view.journal_head - m.journal_head).max(0),
                "quarantined_rows": m.quarantined,
                "unsignable_zones": unsignable_zones(&m.unsignable)
                    .into_iter()
                    .map(|(zone, error)| json!({"zone": zone, "error": error}))
                    .collect::<Vec<_>>(),
                "cert_expires": m.cert_expires_ms.map(rfc3339),
            })
        })
        .collect();
    let satellites: Vec<Value> = view
        .satellites
        .iter()
        .map(|s| satellite_json(view, s, o))
        .collect();
    let warnings: Vec<Value> = view.warnings.iter().map(warning_json).collect();
    json!({
        "now": rfc3339(view.now_ms),
        "journal_head": view.journal_head,
        "watchdog": view.lease_holder(crate::watchdog::LEASE),
        "masters": masters,
        "satellites": satellites,
        "warnings": warnings,
    })
}

fn warning_json(w: &orrery_store::WarningRow) -> Value {
    json!({
        "rule": w.rule, "subject": w.subject, "raised": rfc3339(w.raised_ms), "detail": w.detail,
    })
}

fn satellite_json(view: &ClusterView, s: &SatelliteView, o: StatusOptions) -> Value {
    let (connected, _) = connection(view, s, o);
    let subject = format!("satellite:{}", s.identity);
    let warnings: Vec<Value> = view
        .warnings
        .iter()
        .filter(|w| w.subject == subject)
        .map(warning_json)
        .collect();
    let rates = s.rates().map(|r| {
        json!({
            "seconds": r.seconds,
            "queries_per_second": {"dns": r.dns_qps, "whois": r.whois_qps, "rdap": r.rdap_qps},
            "responses": r.responses, "servfail": r.servfail, "errors": r.errors,
            "rate_limited": r.rate_limited,
        })
    });
    let latest = s.samples.first().map(|x| {
        let detail: Value = serde_json::from_str(&x.sample.detail).unwrap_or(Value::Null);
        json!({
            "at": rfc3339(x.at_ms),
            "dns_queries": x.sample.dns_queries, "whois_queries": x.sample.whois_queries,
            "rdap_queries": x.sample.rdap_queries, "responses": x.sample.responses,
            "rate_limited": x.sample.rate_limited, "errors": x.sample.errors,
            "rcodes": detail.get("rcodes").cloned().unwrap_or(Value::Null),
            "errors_by_kind": detail.get("errors").cloned().unwrap_or(Value::Null),
        })
    });
    let Some(r) = &s.row else {
        return json!({
            "identity": s.identity, "configured": s.expected.is_some(), "connected": false,
            "checked_in": false, "warnings": warnings,
        });
    };
    let services: Value = serde_json::from_str(&r.services).unwrap_or(Value::Null);
    let logs: Value = serde_json::from_str(&r.logs).unwrap_or(Value::Null);
    let expected = s
        .expected
        .as_ref()
        .map_or(r.config_expected.as_str(), |e| e.config_version.as_str());
    json!({
        "identity": s.identity,
        "configured": s.expected.is_some(),
        "connected": connected,
        "checked_in": true,
        "master": r.master_id,
        "address": r.address,
        "hostname": r.hostname,
        "software_version": r.software_version,
        "up_since": r.up_since_ms.map(rfc3339),
        "last_checkin": r.last_checkin_ms.map(rfc3339),
        "last_checkin_age_ms": s.checkin_age_ms(view.now_ms),
        "checkin_interval_ms": s.checkin_interval_ms(),
        "applied_serial": r.applied_serial,
        // "first_snapshot" while a bare satellite receives its first snapshot; "" otherwise.
        "state": r.state,
        "lag_serials": s.lag_serials,
        "lag_seconds": s.lag_seconds,
        "services": services,
        "rates": rates,
        "counters": latest,
        "memory_bytes": r.memory_bytes,
        "memory_budget_bytes": s.memory_budget(),
        "config": {
            "version": r.config_version,
            "expected": expected,
            "adopted": r.config_refused.is_none() && r.config_version == expected,
            "refused": r.config_refused,
            "restart_required": r.restart_required,
        },
        "cert_expires": r.cert_expires_ms.map(rfc3339),
        "logs": logs,
        "logs_dropped": r.logs_dropped,
        "warnings": warnings,
    })
}

/// The text of `status`: a summary, one block per master, one per satellite.
pub fn to_text(view: &ClusterView, o: StatusOptions) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let up = view
        .masters
        .iter()
        .filter(|m| view.master_up(&m.id, o.master_stale_after))
        .count();
    let connected = view
        .satellites
        .iter()
        .filter(|s| connection(view, s, o).0)
        .count();
    let _ = writeln!(
        out,
        "cluster at {}: journal head {}, {up} of {} masters up, {connected} of {} satellites connected, {} warnings",
        rfc3339(view.now_ms),
        view.journal_head,
        view.masters.len(),
        view.satellites.len(),
        view.warnings.len()
    );
    let _ = writeln!(
        out,
        "watchdog: {}",
        view.lease_holder(crate::watchdog::LEASE)
            .map_or("no master holds the lease".to_owned(), |h| format!(
                "run by {h}"
            ))
    );
    for w in view
        .warnings
        .iter()
        .filter(|w| !w.subject.starts_with("satellite:"))
    {
        let _ = writeln!(
            out,
            "WARNING {} {} (since {}): {}",
            w.rule,
            w.subject,
            rfc3339(w.raised_ms),
            w.detail
        );
    }
    for m in &view.masters {
        let is_up = view.master_up(&m.id, o.master_stale_after);
        let age = view.now_ms - m.heartbeat_ms;
        let _ = writeln!(out, "\nmaster {} on {}", m.id, m.host);
        let _ = writeln!(
            out,
            "  state:            {}",
            if is_up {
                format!(
                    "up, store reachable (heartbeat {} ago)",
                    human_duration(age)
                )
            } else {
                format!("DOWN: no heartbeat for {}", human_duration(age))
            }
        );
        let _ = writeln!(out, "  started:          {}", rfc3339(m.started_ms));
        let duties = if m.duties.is_empty() {
            "none (standby)"
        } else {
            &m.duties
        };
        let _ = writeln!(out, "  duties:           {duties}");
        let _ = writeln!(
            out,
            "  journal head:     {} ({} behind the store)",
            m.journal_head,
            (view.journal_head - m.journal_head).max(0)
        );
        let _ = writeln!(out, "  quarantined rows: {}", m.quarantined);
        for (zone, error) in unsignable_zones(&m.unsignable) {
            let _ = writeln!(out, "  UNSIGNABLE zone:  {zone}: {error}");
        }
        if let Some(e) = m.cert_expires_ms {
            let _ = writeln!(out, "  certificate:      expires {}", rfc3339(e));
        }
    }
    for s in &view.satellites {
        satellite_text(&mut out, view, s, o);
    }
    out
}

fn satellite_text(out: &mut String, view: &ClusterView, s: &SatelliteView, o: StatusOptions) {
    use std::fmt::Write;
    let (_, conn) = connection(view, s, o);
    let configured = if s.expected.is_some() {
        ""
    } else {
        " (not in this configuration)"
    };
    let _ = writeln!(out, "\nsatellite {}{configured}: {conn}", s.identity);
    if let Some(r) = &s.row {
        if !r.hostname.is_empty() || !r.software_version.is_empty() {
            let _ = writeln!(
                out,
                "  host:             {} (version {})",
                r.hostname, r.software_version
            );
        }
        if let Some(up) = r.up_since_ms {
            let _ = writeln!(
                out,
                "  up since:         {} ({})",
                rfc3339(up),
                human_duration(view.now_ms - up)
            );
        }
        if let Some(at) = r.last_checkin_ms {
            let _ = writeln!(
                out,
                "  last check-in:    {} ({} ago, every {})",
                rfc3339(at),
                human_duration(view.now_ms - at),
                human_duration(s.checkin_interval_ms().unwrap_or(r.checkin_interval_ms))
            );
        }
        let lag = match (s.lag_serials, s.lag_seconds) {
            (Some(0), _) => "current".to_owned(),
            (Some(n), Some(secs)) => format!("{n} serials, {secs} s behind"),
            (Some(n), None) => format!("{n} serials behind"),
            _ => "unknown".to_owned(),
        };
        let lag = if r.state == "first_snapshot" {
            format!("{lag}; receiving its first snapshot")
        } else {
            lag
        };
        let _ = writeln!(
            out,
            "  applied serial:   {} (journal head {}: {lag})",
            r.applied_serial, view.journal_head
        );
        let services: Vec<Value> = serde_json::from_str(&r.services).unwrap_or_default();
        let services: Vec<String> = services
            .iter()
            .map(|v| {
                format!(
                    "{} {} {}",
                    v["service"].as_str().unwrap_or("?"),
                    v["transport"].as_str().unwrap_or("?"),
                    v["address"].as_str().unwrap_or("?")
                )
            })
            .collect();
        let _ = writeln!(out, "  services:         {}", services.join(", "));
        match s.rates() {
            Some(rt) => {
                let _ = writeln!(
                    out,
                    "  queries/s:        dns {:.1}, whois {:.1}, rdap {:.1} (over {:.1} s)",
                    rt.dns_qps, rt.whois_qps, rt.rdap_qps, rt.seconds
                );
            }
            None => {
                let _ = writeln!(out, "  queries/s:        unknown (needs two check-ins)");
            }
        }
        if let Some(x) = s.samples.first() {
            let detail: Value = serde_json::from_str(&x.sample.detail).unwrap_or(Value::Null);
            let rcodes: Vec<String> = detail["rcodes"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{} {v}", rcode_name(k)))
                        .collect()
                })
                .unwrap_or_default();
            let errors: Vec<String> = detail["errors"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  answers:          {}",
                if rcodes.is_empty() {
                    "none".to_owned()
                } else {
                    rcodes.join(", ")
                }
            );
            let _ = writeln!(
                out,
                "  rate limited:     {}; errors: {}{}",
                x.sample.rate_limited,
                x.sample.errors,
                if errors.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", errors.join(", "))
                }
            );
        }
        if let Some(used) = r.memory_bytes {
            let budget = s
                .memory_budget()
                .map_or("no budget".to_owned(), |b| format!("budget {}", mib(b)));
            let _ = writeln!(out, "  memory:           {} ({budget})", mib(used));
        }
        let expected = s
            .expected
            .as_ref()
            .map_or(r.config_expected.as_str(), |e| e.config_version.as_str());
        let config = match &r.config_refused {
            Some(reason) => format!("{} REFUSED: {reason}", r.config_version),
            None if r.config_version == expected => format!("{} adopted", r.config_version),
            None => format!(
                "runs {:?}, the master holds {expected} (not yet adopted)",
                r.config_version
            ),
        };
        let _ = writeln!(out, "  configuration:    {config}");
        if !r.restart_required.is_empty() {
            let _ = writeln!(out, "  restart required: {}", r.restart_required);
        }
        if let Some(e) = r.cert_expires_ms {
            let _ = writeln!(out, "  certificate:      expires {}", rfc3339(e));
        }
        let logs: Vec<Value> = serde_json::from_str(&r.logs).unwrap_or_default();
        if !logs.is_empty() || r.logs_dropped > 0 {
            let _ = writeln!(
                out,
                "  latest logs:      {} ({} dropped by the satellite)",
                logs.len(),
                r.logs_dropped
            );
            for l in logs.iter().rev().take(5).rev() {
                let _ = writeln!(
                    out,
                    "    {} {} {}: {}",
                    rfc3339(l["time"].as_i64().unwrap_or(0) * 1000),
                    l["level"].as_str().unwrap_or("?"),
                    l["target"].as_str().unwrap_or("?"),
                    l["message"].as_str().unwrap_or("")
                );
            }
        }
    }
    let subject = format!("satellite:{}", s.identity);
    for w in view.warnings.iter().filter(|w| w.subject == subject) {
        let _ = writeln!(
            out,
            "  WARNING {} (since {}): {}",
            w.rule,
            rfc3339(w.raised_ms),
            w.detail
        );
    }
}

/// RCODE names (RFC 6895 §2.3) for the common ones, the number otherwise.
fn rcode_name(code: &str) -> String {
    match code {
        "0" => "NOERROR".into(),
        "1" => "FORMERR".into(),
        "2" => "SERVFAIL".into(),
        "3" => "NXDOMAIN".into(),
        "4" => "NOTIMP".into(),
        "5" => "REFUSED".into(),
        other => format!("RCODE{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
        assert_eq!(human_duration(850), "850 ms");
        assert_eq!(human_duration(12_340), "12.3 s");
        assert_eq!(human_duration(245_000), "4 min 5 s");
        assert_eq!(human_duration(12_000_000), "3 h 20 min");
        assert_eq!(human_duration(-5), "0 ms");
    }
}
