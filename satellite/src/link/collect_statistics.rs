//! The check-in's statistics, from the counters of the `statistics` leaves
//! ([`crate::dns::leaf::statistics`]) and the process.
//!
//! The leaf names its counters `qtype.A`, `rcode.NXDOMAIN` …; the link message keys them by
//! number (RFC 1035 §3.2.2 QTYPE, §4.1.1 RCODE). Query types the leaf does not single out
//! (`qtype.other`) are reported under QTYPE 0, which no query can carry (RFC 6895 §3.1
//! reserves it); `dropped` and `truncated` go to `errors`. Several statistics leaves add up.
//!
//! The Whois/RDAP leaves' counters come named `rds.LEAF` ([`super::rds_serving`]): their
//! `whois_queries` and `rdap_queries` have fields of their own, their refusals go to `errors`
//! as `rds_bad_request`, `rds_rate_limited`, `rds_refused`, `rds_server_error`, `rds_dropped`.

use std::time::Duration;

use orrery_proto::link::pb;

use super::serving::Counters;

/// QTYPE values of the leaf's counter names.
const QTYPES: [(&str, u32); 10] = [
    ("A", 1),
    ("NS", 2),
    ("SOA", 6),
    ("TXT", 16),
    ("AAAA", 28),
    ("DS", 43),
    ("ANY", 255),
    ("AXFR", 252),
    ("IXFR", 251),
    ("other", 0),
];
/// RCODE values of the leaf's counter names (RFC 6895 §2.3).
const RCODES: [(&str, u32); 17] = [
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
    ("DSOTYPENI", 11),
    ("RCODE12", 12),
    ("RCODE13", 13),
    ("RCODE14", 14),
    ("RCODE15", 15),
    ("BADVERS", 16),
];

/// Builds the check-in statistics.
pub fn collect_statistics(counters: &Counters, uptime: Duration, objects: u64) -> pb::Statistics {
    let mut s = pb::Statistics {
        uptime_seconds: uptime.as_secs(),
        memory_bytes: resident_memory().unwrap_or(0),
        objects,
        ..Default::default()
    };
    for ((leaf, counter), &value) in counters {
        if leaf.starts_with(super::rds_serving::COUNTER_PREFIX) {
            match counter.as_str() {
                "whois_queries" => s.whois_queries += value,
                "rdap_queries" => s.rdap_queries += value,
                "bad_request" | "rate_limited" | "refused" | "server_error" | "dropped" => {
                    *s.errors.entry(format!("rds_{counter}")).or_default() += value;
                }
                _ => {}
            }
        } else if let Some(t) = counter.strip_prefix("qtype.") {
            if let Some(&(_, code)) = QTYPES.iter().find(|(n, _)| *n == t) {
                *s.queries_by_qtype.entry(code).or_default() += value;
            }
        } else if let Some(r) = counter.strip_prefix("rcode.") {
            if let Some(&(_, code)) = RCODES.iter().find(|(n, _)| *n == r) {
                *s.responses_by_rcode.entry(code).or_default() += value;
            } else {
                *s.errors.entry("rcode_other".into()).or_default() += value;
            }
        } else if matches!(counter.as_str(), "dropped" | "truncated") {
            *s.errors.entry(counter.clone()).or_default() += value;
        }
    }
    s
}

/// Resident memory from `/proc/self/statm` (Linux; `None` elsewhere). One small read.
fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_counter_names_to_codes() {
        let mut c = Counters::new();
        for (k, v) in [
            ("qtype.A", 3),
            ("qtype.other", 2),
            ("rcode.NXDOMAIN", 4),
            ("dropped", 1),
            ("queries", 5),
        ] {
            c.insert(("stats".into(), k.into()), v);
        }
        c.insert(("stats2".into(), "qtype.A".into()), 1);
        c.insert(("rds.stats".into(), "whois_queries".into()), 7);
        c.insert(("rds.stats".into(), "rdap_queries".into()), 8);
        c.insert(("rds.stats".into(), "dropped".into()), 2);
        c.insert(("rds.limit".into(), "rate_limited".into()), 3);
        let s = collect_statistics(&c, Duration::from_secs(9), 12);
        assert_eq!(s.queries_by_qtype[&1], 4);
        assert_eq!(s.queries_by_qtype[&0], 2);
        assert_eq!(s.responses_by_rcode[&3], 4);
        assert_eq!(s.errors["dropped"], 1);
        assert_eq!((s.whois_queries, s.rdap_queries), (7, 8));
        assert_eq!(
            (s.errors["rds_dropped"], s.errors["rds_rate_limited"]),
            (2, 3)
        );
        assert_eq!((s.uptime_seconds, s.objects), (9, 12));
        if cfg!(target_os = "linux") {
            assert!(s.memory_bytes > 0);
        }
    }
}
