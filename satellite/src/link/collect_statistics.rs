//! The check-in's statistics, from the satellite's typed DNS counters
//! ([`crate::stats::QueryTotals`]), its Whois/RDAP counters ([`crate::stats::RdsTotals`]) and
//! the process.
//!
//! DNS queries and responses are keyed by number in the link message (RFC 1035 §3.2.2 QTYPE, §4.1.1
//! RCODE): query types the satellite does not count apart (and queries without a question)
//! are reported under QTYPE 0, which no query can carry (RFC 6895 §3.1 reserves it); RCODEs
//! above 16 under `errors["rcode_other"]`. Queries without an answer go to `errors` by why:
//! `dropped`, `rate_limited`; answers sent truncated as `truncated` and `slipped`.
//!
//! Whois and RDAP requests received go to `whois_queries` and `rdap_queries`, whatever became
//! of them; refusals and drops also go to `errors` (both protocols summed) as `rds_bad_request`, `rds_rate_limited`, `rds_refused`, `rds_server_error`,
//! `rds_dropped` (the names the statistics leaf used to report).

use std::time::Duration;

use orrery_proto::link::pb;

use crate::rds::Protocol;
use crate::stats::queries::RCODES;
use crate::stats::{Outcome, Qtype, QueryTotals, RdsOutcome, RdsTotals};

/// Builds the check-in statistics.
pub fn collect_statistics(
    dns: &QueryTotals,
    rds: &RdsTotals,
    uptime: Duration,
    objects: u64,
) -> pb::Statistics {
    let mut s = pb::Statistics {
        uptime_seconds: uptime.as_secs(),
        memory_bytes: resident_memory().unwrap_or(0),
        objects,
        ..Default::default()
    };
    for (q, n) in dns.by_qtype().into_iter().enumerate() {
        if n != 0 {
            *s.queries_by_qtype
                .entry(u32::from(Qtype::ALL[q].code()))
                .or_default() += n;
        }
    }
    for (r, n) in dns.by_rcode().into_iter().enumerate() {
        if n == 0 {
            continue;
        }
        if r == RCODES - 1 {
            *s.errors.entry("rcode_other".into()).or_default() += n;
        } else {
            s.responses_by_rcode.insert(r as u32, n);
        }
    }
    for o in [
        Outcome::Dropped,
        Outcome::Truncated,
        Outcome::RateLimited,
        Outcome::Slipped,
    ] {
        let n = dns.outcome(o);
        if n != 0 {
            s.errors.insert(o.label().into(), n);
        }
    }
    s.whois_queries = rds.received(Protocol::Whois);
    s.rdap_queries = rds.received(Protocol::Rdap);
    for (o, name) in [
        (RdsOutcome::BadRequest, "rds_bad_request"),
        (RdsOutcome::RateLimited, "rds_rate_limited"),
        (RdsOutcome::Refused, "rds_refused"),
        (RdsOutcome::ServerError, "rds_server_error"),
        (RdsOutcome::Dropped, "rds_dropped"),
    ] {
        let n = rds.outcome(o);
        if n != 0 {
            s.errors.insert(name.into(), n);
        }
    }
    s
}

use crate::stats::resident_memory;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_typed_counters_to_codes() {
        use crate::dns::wire::Transport;
        use crate::stats::QueryStats;
        let q = QueryStats::new();
        let us = Duration::from_micros(1);
        for _ in 0..3 {
            q.record(Transport::Udp, Qtype::of(1), Outcome::Answered, 3, us);
        }
        q.record(Transport::Tcp, Qtype::of(1), Outcome::Truncated, 0, us);
        q.record(Transport::Udp, Qtype::of(99), Outcome::Answered, 0, us);
        q.record(Transport::Udp, Qtype::None, Outcome::Answered, 1, us);
        q.record(Transport::Udp, Qtype::of(1), Outcome::Answered, 23, us);
        q.record(Transport::Udp, Qtype::of(1), Outcome::Dropped, 0, us);
        q.record(Transport::Udp, Qtype::of(1), Outcome::RateLimited, 0, us);
        q.record(Transport::Udp, Qtype::of(1), Outcome::Slipped, 0, us);
        let r = crate::stats::RdsStats::new();
        for _ in 0..5 {
            r.record(Protocol::Whois, RdsOutcome::Found);
        }
        r.record(Protocol::Whois, RdsOutcome::Dropped);
        r.record(Protocol::Whois, RdsOutcome::RateLimited);
        r.record(Protocol::Rdap, RdsOutcome::Dropped);
        for _ in 0..5 {
            r.record(Protocol::Rdap, RdsOutcome::NotFound);
        }
        r.record(Protocol::Rdap, RdsOutcome::RateLimited);
        r.record(Protocol::Rdap, RdsOutcome::RateLimited);
        let s = collect_statistics(&q.totals(), &r.totals(), Duration::from_secs(9), 12);
        // Queries received by type, answered or not; 0 for the rest.
        assert_eq!(s.queries_by_qtype[&1], 8);
        assert_eq!(s.queries_by_qtype[&0], 2);
        assert_eq!(s.responses_by_rcode[&3], 3);
        assert_eq!(s.responses_by_rcode[&0], 3);
        assert_eq!(s.responses_by_rcode[&1], 1);
        assert_eq!(s.errors["rcode_other"], 1);
        assert_eq!(s.errors["dropped"], 1);
        assert_eq!(s.errors["truncated"], 1);
        assert_eq!(s.errors["rate_limited"], 1);
        assert_eq!(s.errors["slipped"], 1);
        assert_eq!((s.whois_queries, s.rdap_queries), (7, 8));
        assert!(!s.errors.contains_key("rds_not_found"));
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
