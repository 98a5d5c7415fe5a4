//! The satellite's statistics as typed counters: what the check-in reports to the master
//! ([`crate::link::collect_statistics`]) and what the Prometheus listener exposes
//! ([`SatelliteMetrics::render`]) are read from the same atomics.
//!
//! - [`queries`]: DNS query counters and the answer-time histogram, per worker thread,
//!   recorded by [`crate::dns::pipeline::Pipeline`] for every query.
//! - [`rds`]: Whois and RDAP request counters by protocol and outcome, per worker thread,
//!   recorded by [`crate::rds::RdsPipeline`] for every request.
//! - [`listener`]: the `GET /metrics` listener the master's configuration asks for.
//! - [`SatelliteMetrics`]: those, and the link's gauges (applied serial, the master's head,
//!   connection, batch apply time, certificate expiry), set by the link as things happen.
//!
//! Metric names follow the Prometheus conventions (`orrery_` prefix, base units, `_total`
//! counters); `deploy/runbooks/metrics.md` lists them.

pub mod listener;
pub mod queries;
pub mod rds;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use orrery_proto::metrics::resident_memory;
use orrery_proto::metrics::{Exposition, Kind};

pub use queries::{Outcome, Qtype, QueryStats, QueryTotals};
pub use rds::{RdsOutcome, RdsStats, RdsTotals};

/// Finite buckets of the batch-apply histogram: 1 ms × 2^k, k = 0 … 15 (1 ms to 32 s).
const BATCH_BUCKETS: usize = 16;

/// Everything the satellite exposes. One per process, shared by the link, the pipelines and
/// the metrics listener.
pub struct SatelliteMetrics {
    pub queries: std::sync::Arc<QueryStats>,
    /// Whois and RDAP requests.
    pub rds: std::sync::Arc<RdsStats>,
    started: Instant,
    applied_serial: AtomicI64,
    /// The master's head serial as last heard (boot, heartbeat, check-in); 0 = never.
    head_serial: AtomicI64,
    connected: AtomicBool,
    /// Batches applied per bucket of [`BATCH_BUCKETS`] (and one for longer), and their sum.
    batch_apply: [AtomicU64; BATCH_BUCKETS + 1],
    batch_apply_us: AtomicU64,
    /// notAfter of the link certificate, seconds since the epoch; 0 = unknown.
    cert_not_after: AtomicI64,
    /// Objects held (zones, domains, hosts, contacts, registrars), as at the last change.
    objects: AtomicU64,
    /// What queries see, once there is a state: its tables' heap bytes are measured at each
    /// scrape (`orrery_served_bytes`), a walk over the shards that the query path never does.
    served: std::sync::OnceLock<std::sync::Arc<crate::served::ServedStore>>,
}

impl Default for SatelliteMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SatelliteMetrics {
    pub fn new() -> Self {
        Self {
            queries: std::sync::Arc::new(QueryStats::new()),
            rds: std::sync::Arc::new(RdsStats::new()),
            started: Instant::now(),
            applied_serial: AtomicI64::new(0),
            head_serial: AtomicI64::new(0),
            connected: AtomicBool::new(false),
            batch_apply: Default::default(),
            batch_apply_us: AtomicU64::new(0),
            cert_not_after: AtomicI64::new(0),
            objects: AtomicU64::new(0),
            served: std::sync::OnceLock::new(),
        }
    }

    /// The served state whose size `orrery_served_bytes` reports (set once: the store lives
    /// as long as the process and holds every later version).
    pub fn set_served(&self, served: &std::sync::Arc<crate::served::ServedStore>) {
        let _ = self.served.set(std::sync::Arc::clone(served));
    }

    pub fn set_applied(&self, serial: i64) {
        self.applied_serial.store(serial, Ordering::Relaxed);
    }

    /// The master's head as a boot, heartbeat or check-in gives it.
    pub fn set_head(&self, serial: i64) {
        self.head_serial.store(serial, Ordering::Relaxed);
    }

    /// A batch up to `serial` arrived: the head is at least there.
    pub fn raise_head(&self, serial: i64) {
        self.head_serial.fetch_max(serial, Ordering::Relaxed);
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    pub fn set_objects(&self, n: u64) {
        self.objects.store(n, Ordering::Relaxed);
    }

    pub fn set_cert_not_after(&self, unix_seconds: i64) {
        self.cert_not_after.store(unix_seconds, Ordering::Relaxed);
    }

    /// Counts one applied change batch and how long it took (log, tables, model copy).
    pub fn batch_applied(&self, took: Duration) {
        let ms = took.as_millis() as u64;
        // The first k with ms ≤ 2^k.
        let k = if ms <= 1 {
            0
        } else {
            (64 - (ms - 1).leading_zeros()) as usize
        };
        self.batch_apply[k.min(BATCH_BUCKETS)].fetch_add(1, Ordering::Relaxed);
        self.batch_apply_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The text exposition of every metric. `resident` is the process's resident memory.
    pub fn render(&self, resident: Option<u64>) -> String {
        let get = |a: &AtomicI64| a.load(Ordering::Relaxed);
        let t = self.queries.totals();
        let rt = self.rds.totals();
        let mut e = Exposition::new();
        e.family(
            "orrery_queries_total",
            Kind::Counter,
            "Queries by service: DNS by transport, RCODE (none: no response) and query type; \
             Whois and RDAP by outcome.",
        );
        for (ti, &transport) in queries::TRANSPORTS.iter().enumerate() {
            for (r, by_qtype) in t.queries[ti].iter().enumerate() {
                for (q, &n) in by_qtype.iter().enumerate() {
                    if n == 0 {
                        continue;
                    }
                    e.sample_u64(
                        "orrery_queries_total",
                        &[
                            ("service", "dns"),
                            ("transport", queries::transport_label(transport)),
                            ("rcode", queries::rcode_label(r)),
                            ("qtype", Qtype::ALL[q].label()),
                        ],
                        n,
                    );
                }
            }
        }
        // Every outcome of both, zeros included, so that a rate over them starts at the
        // first scrape (there are few).
        for &protocol in &rds::PROTOCOLS {
            for outcome in RdsOutcome::ALL {
                e.sample_u64(
                    "orrery_queries_total",
                    &[
                        ("service", rds::protocol_label(protocol)),
                        ("transport", "tcp"),
                        ("outcome", outcome.label()),
                    ],
                    rt.get(protocol, outcome),
                );
            }
        }
        e.family(
            "orrery_query_outcomes_total",
            Kind::Counter,
            "DNS queries received, by what became of them (answered, truncated, dropped, \
             rate_limited, slipped).",
        );
        for (ti, &transport) in queries::TRANSPORTS.iter().enumerate() {
            for (o, &n) in t.outcomes[ti].iter().enumerate() {
                e.sample_u64(
                    "orrery_query_outcomes_total",
                    &[
                        ("service", "dns"),
                        ("transport", queries::transport_label(transport)),
                        ("outcome", Outcome::ALL[o].label()),
                    ],
                    n,
                );
            }
        }
        e.family(
            "orrery_rate_limited_total",
            Kind::Counter,
            "Queries held back by rate limiting: DNS dropped, or slipped (sent truncated); \
             Whois and RDAP answered with a rate-limit refusal (RDAP 429).",
        );
        for (action, o) in [
            ("dropped", Outcome::RateLimited),
            ("slipped", Outcome::Slipped),
        ] {
            e.sample_u64(
                "orrery_rate_limited_total",
                &[("service", "dns"), ("action", action)],
                t.outcome(o),
            );
        }
        for &protocol in &rds::PROTOCOLS {
            e.sample_u64(
                "orrery_rate_limited_total",
                &[
                    ("service", rds::protocol_label(protocol)),
                    ("action", "refused"),
                ],
                rt.get(protocol, RdsOutcome::RateLimited),
            );
        }
        e.family(
            "orrery_answer_duration_seconds",
            Kind::Histogram,
            "Time from a parsed DNS query to its finished answer inside the satellite (socket \
             time excluded).",
        )
        .histogram(
            "orrery_answer_duration_seconds",
            &[("service", "dns")],
            &queries::latency_bounds(),
            &t.latency,
            t.latency_ns as f64 / 1e9,
        );
        let applied = get(&self.applied_serial);
        let head = get(&self.head_serial);
        e.family(
            "orrery_applied_serial",
            Kind::Gauge,
            "Journal serial of the state served.",
        )
        .sample("orrery_applied_serial", &[], applied as f64);
        e.family(
            "orrery_master_head_serial",
            Kind::Gauge,
            "The master's head serial as last heard (0 before the first session).",
        )
        .sample("orrery_master_head_serial", &[], head as f64);
        e.family(
            "orrery_serial_lag",
            Kind::Gauge,
            "Serials the served state is behind the master's head as last heard.",
        )
        .sample("orrery_serial_lag", &[], (head - applied).max(0) as f64);
        let counts: Vec<u64> = self
            .batch_apply
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let bounds: Vec<f64> = (0..BATCH_BUCKETS)
            .map(|k| 1e-3 * f64::from(1u32 << k))
            .collect();
        e.family(
            "orrery_batch_apply_seconds",
            Kind::Histogram,
            "Time to apply one change batch from the master (log write, tables, model copy).",
        )
        .histogram(
            "orrery_batch_apply_seconds",
            &[],
            &bounds,
            &counts,
            self.batch_apply_us.load(Ordering::Relaxed) as f64 / 1e6,
        );
        e.family(
            "orrery_link_connected",
            Kind::Gauge,
            "1 while a session with a master is up.",
        )
        .sample(
            "orrery_link_connected",
            &[],
            f64::from(u8::from(self.connected.load(Ordering::Relaxed))),
        );
        e.family(
            "orrery_objects",
            Kind::Gauge,
            "Registry objects held (zones, domains, hosts, contacts, registrars).",
        )
        .sample_u64("orrery_objects", &[], self.objects.load(Ordering::Relaxed));
        let not_after = get(&self.cert_not_after);
        if not_after != 0 {
            e.family(
                "orrery_certificate_expiry_seconds",
                Kind::Gauge,
                "Seconds until the link certificate expires (negative once expired).",
            )
            .sample(
                "orrery_certificate_expiry_seconds",
                &[("certificate", "link")],
                (not_after - unix_now()) as f64,
            );
        }
        if let Some(store) = self.served.get() {
            let served = store.load();
            e.family(
                "orrery_served_bytes",
                Kind::Gauge,
                "Heap bytes held by the served state's tables: the DNS tables (zones, hosts) and \
                 the Whois/RDAP directory.",
            )
            .sample_u64(
                "orrery_served_bytes",
                &[("part", "dns")],
                served.zones.heap_bytes() as u64,
            )
            .sample_u64(
                "orrery_served_bytes",
                &[("part", "directory")],
                served.directory.heap_bytes() as u64,
            );
        }
        if let Some(bytes) = resident {
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
            "Seconds since the satellite started.",
        )
        .sample(
            "orrery_uptime_seconds",
            &[],
            self.started.elapsed().as_secs_f64(),
        );
        e.finish()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::Transport;

    #[test]
    fn renders_queries_link_and_batches() {
        let m = SatelliteMetrics::new();
        m.queries.record(
            Transport::Udp,
            Qtype::of(1),
            Outcome::Answered,
            3,
            Duration::from_micros(5),
        );
        m.queries.record(
            Transport::Udp,
            Qtype::of(1),
            Outcome::RateLimited,
            0,
            Duration::from_micros(5),
        );
        m.rds.record(crate::rds::Protocol::Whois, RdsOutcome::Found);
        m.rds
            .record(crate::rds::Protocol::Rdap, RdsOutcome::RateLimited);
        m.set_applied(40);
        m.set_head(45);
        m.set_connected(true);
        m.batch_applied(Duration::from_millis(3));
        m.set_cert_not_after(unix_now() + 100);
        let text = m.render(Some(4096));
        for line in [
            "orrery_queries_total{service=\"dns\",transport=\"udp\",rcode=\"NXDOMAIN\",qtype=\"A\"} 1\n",
            "orrery_query_outcomes_total{service=\"dns\",transport=\"udp\",outcome=\"rate_limited\"} 1\n",
            "orrery_rate_limited_total{service=\"dns\",action=\"dropped\"} 1\n",
            "orrery_queries_total{service=\"whois\",transport=\"tcp\",outcome=\"found\"} 1\n",
            "orrery_queries_total{service=\"rdap\",transport=\"tcp\",outcome=\"found\"} 0\n",
            "orrery_queries_total{service=\"rdap\",transport=\"tcp\",outcome=\"rate_limited\"} 1\n",
            "orrery_rate_limited_total{service=\"rdap\",action=\"refused\"} 1\n",
            "orrery_answer_duration_seconds_bucket{service=\"dns\",le=\"0.000008\"} 2\n",
            "orrery_answer_duration_seconds_count{service=\"dns\"} 2\n",
            "orrery_serial_lag 5\n",
            "orrery_batch_apply_seconds_bucket{le=\"0.004\"} 1\n",
            "orrery_link_connected 1\n",
            "process_resident_memory_bytes 4096\n",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        let expiry: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("orrery_certificate_expiry_seconds{certificate=\"link\"} ")
            })
            .unwrap()
            .parse()
            .unwrap();
        assert!((98.0..=100.0).contains(&expiry), "{expiry}");
        assert!(
            !text.contains("orrery_served_bytes"),
            "no state yet: {text}"
        );
    }

    /// `orrery_served_bytes` follows the tables: a thousand more delegations (each in its own
    /// name map entry, with its nameserver host) weigh at least their wire names in both the
    /// DNS tables and the directory.
    #[test]
    fn served_bytes_follow_the_tables() {
        use crate::served::{BuildOptions, Served, ServedStore, dispose_in_background};
        use crate::snapshot::tests::sample_data;
        use crate::zone::tests::domain;
        use orrery_proto::Change;
        let bytes = |extra: usize| {
            let mut objects: Vec<Change> = sample_data().changes().collect();
            for i in 0..extra {
                let name = format!("domain-number-{i:05}.tld");
                let ns = format!("ns1.{name}");
                objects.push(Change::Domain(domain(&name, "tld", &[ns.as_str()])));
            }
            let served = Served::from_objects(
                1,
                objects.into(),
                dispose_in_background,
                BuildOptions::default(),
            );
            let m = SatelliteMetrics::new();
            m.set_served(&std::sync::Arc::new(ServedStore::new(served)));
            let text = m.render(None);
            let get = |part: &str| -> f64 {
                let series = format!("orrery_served_bytes{{part=\"{part}\"}} ");
                text.lines()
                    .find_map(|l| l.strip_prefix(series.as_str()))
                    .unwrap_or_else(|| panic!("{series} not in\n{text}"))
                    .parse()
                    .unwrap()
            };
            (get("dns"), get("directory"))
        };
        let (dns, directory) = bytes(0);
        let (more_dns, more_directory) = bytes(1000);
        assert!(dns > 0.0 && directory > 0.0, "{dns} {directory}");
        // 24 bytes a wire name, twice in DNS (delegation and host), once in the directory.
        assert!(more_dns - dns > 1000.0 * 48.0, "{dns} → {more_dns}");
        assert!(
            more_directory - directory > 1000.0 * 24.0,
            "{directory} → {more_directory}"
        );
        // And not absurdly more: under 1 KB a delegation.
        assert!(more_dns - dns < 1000.0 * 1024.0, "{dns} → {more_dns}");
    }
}
