//! Prometheus metrics of a real master and satellite (processes): scraped over loopback,
//! checked by `promtool check metrics`, and the query counters (DNS, Whois, RDAP) moving with
//! real queries.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{free_port, program, query};
use crate::processes::{Backend, ProcessCluster, ZONE};

/// One `GET /metrics`: the body, or `None` when nothing listens (yet) or the status is not 200.
pub(crate) fn scrape(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200 ").then(|| body.to_owned())
}

/// The value of the series `series` (name and labels exactly as exposed); 0 when absent
/// (a counter not yet incremented is not exposed).
pub(crate) fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Scrapes `addr` until `ready` holds of the text; panics after 30 s with `log()`.
fn scrape_until(
    addr: SocketAddr,
    what: &str,
    log: impl Fn() -> String,
    ready: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(text) = scrape(addr)
            && ready(&text)
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 30 s; last scrape:\n{}\n{}",
            scrape(addr).unwrap_or_default(),
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `promtool check metrics` on `text`: its complaints, if any.
fn promtool_check(promtool: &std::path::Path, text: &str) -> Result<(), String> {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_promtool,
    ignore = "promtool is not installed (apt-get install prometheus)"
)]
async fn master_and_satellite_metrics_pass_promtool_and_count_real_queries() {
    let Some(promtool) = program("promtool", "prometheus") else {
        return;
    };
    let mut c = ProcessCluster::create(Backend::Sqlite).await;
    let (master_metrics, sat_metrics): (SocketAddr, SocketAddr) = (
        ([127, 0, 0, 1], free_port()).into(),
        ([127, 0, 0, 1], free_port()).into(),
    );
    // The master's own listener in [master]; the satellites' from the master's configuration
    // (sat1 only is started: the default would give sat2 the same address).
    // Whois and RDAP through a rate limit (burst 20, one token a second per address), so that
    // a flood is limited.
    c.write_master_config(
        "[selectors.limited]\n\
         chains = [{ name = \"main\", leaves = [\"limit\", \"validate\", \"lookup\"] }]\n\
         [selectors.limited.leaves.limit]\n\
         kind = \"rate_limit\"\n\
         address_rate = 1.0\n\
         address_burst = 20\n\
         prefix_rate = 1.0\n\
         prefix_burst = 20\n\
         [selectors.limited.leaves.validate]\n\
         kind = \"validate_query\"\n\
         [selectors.limited.leaves.lookup]\n\
         kind = \"lookup\"\n",
    );
    let path = c.master_config();
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replacen(
            "rds_selector = \"std\"\n",
            "rds_selector = \"limited\"\n",
            1,
        )
        .replacen(
            "heartbeat_interval_ms = 500\n",
            &format!("heartbeat_interval_ms = 500\nmetrics = \"{master_metrics}\"\n"),
            1,
        )
        .replacen(
            "[satellite_defaults]\n",
            &format!("[satellite_defaults]\nmetrics = \"{sat_metrics}\"\n"),
            1,
        );
    std::fs::write(&path, text).unwrap();
    c.start_master();
    c.start_satellite("sat1");
    let head = c.store.head().await.unwrap();
    let logs = || {
        format!(
            "sat1 log:\n{}\nmaster log:\n{}",
            c.satellite_log("sat1"),
            c.master_log()
        )
    };

    // The satellite: connected, current, and its serial gauges agree with the store.
    let before = scrape_until(sat_metrics, "sat1 connected and current", logs, |t| {
        value(t, "orrery_link_connected") == 1.0
            && value(t, "orrery_applied_serial") == head as f64
            && value(t, "orrery_master_head_serial") == head as f64
    });
    assert_eq!(value(&before, "orrery_serial_lag"), 0.0);
    assert!(value(&before, "process_resident_memory_bytes") > 0.0);
    // The served state's tables: the test registry's thousands of delegations weigh more than
    // 100 KB in each part, and together less than the whole process.
    let (dns, directory) = (
        value(&before, "orrery_served_bytes{part=\"dns\"}"),
        value(&before, "orrery_served_bytes{part=\"directory\"}"),
    );
    assert!(dns > 100_000.0 && directory > 100_000.0, "{before}");
    assert!(
        dns + directory < value(&before, "process_resident_memory_bytes"),
        "{before}"
    );
    let expiry = value(
        &before,
        "orrery_certificate_expiry_seconds{certificate=\"link\"}",
    );
    assert!(
        (29.0 * 86400.0..=30.0 * 86400.0 + 60.0).contains(&expiry),
        "a 30-day certificate: {expiry}"
    );
    promtool_check(&promtool, &before)
        .unwrap_or_else(|e| panic!("satellite metrics: {e}\n{before}"));

    // N real queries for names that do not exist: the NXDOMAIN counter of A over UDP grows
    // by exactly N, and so does the answer-time histogram's count (at least: the harness's
    // own SOA probes may go on).
    const N: usize = 37;
    let dns: SocketAddr = ([127, 0, 0, 1], c.ports("sat1").dns).into();
    let nx =
        "orrery_queries_total{service=\"dns\",transport=\"udp\",rcode=\"NXDOMAIN\",qtype=\"A\"}";
    let count = "orrery_answer_duration_seconds_count{service=\"dns\"}";
    for i in 0..N {
        let m = query(dns, &format!("no-such-{i}.{ZONE}"), RecordType::A);
        assert_eq!(m.response_code, ResponseCode::NXDomain);
    }
    let after = scrape(sat_metrics).expect("a second scrape");
    assert_eq!(value(&after, nx) - value(&before, nx), N as f64, "{after}");
    assert!(value(&after, count) - value(&before, count) >= N as f64);
    assert_eq!(
        value(
            &after,
            "orrery_query_outcomes_total{service=\"dns\",transport=\"udp\",outcome=\"dropped\"}"
        ),
        0.0
    );
    promtool_check(&promtool, &after).unwrap_or_else(|e| panic!("satellite metrics: {e}\n{after}"));

    // N Whois and M RDAP queries for domains that do not exist: their not_found series grow
    // by exactly N and M (nothing else speaks Whois or RDAP to the satellite). N + M stays
    // under the limit's burst of 20 per address, so none is rate limited.
    const W: usize = 7;
    const R: usize = 6;
    let series = |service: &str, outcome: &str| {
        format!(
            "orrery_queries_total{{service=\"{service}\",transport=\"tcp\",outcome=\"{outcome}\"}}"
        )
    };
    let received = |text: &str, service: &str| -> f64 {
        [
            "found",
            "not_found",
            "bad_request",
            "rate_limited",
            "refused",
            "server_error",
            "dropped",
        ]
        .iter()
        .map(|o| value(text, &series(service, o)))
        .sum()
    };
    for i in 0..W {
        let answer = c.whois("sat1", &format!("no-such-{i}.{ZONE}"));
        assert!(!answer.is_empty(), "a Whois answer");
    }
    for i in 0..R {
        let (status, body) = c.rdap("sat1", &format!("/domain/no-such-{i}.{ZONE}"));
        assert_eq!(status, 404, "{body}");
    }
    let rds = scrape(sat_metrics).expect("a third scrape");
    for (service, n) in [("whois", W), ("rdap", R)] {
        let nf = series(service, "not_found");
        assert_eq!(value(&rds, &nf) - value(&after, &nf), n as f64, "{rds}");
        assert_eq!(
            received(&rds, service) - received(&after, service),
            n as f64,
            "{rds}"
        );
    }
    // Then RDAP requests faster than the limit refills: the 429s answered are exactly what
    // the rate-limited series count.
    const FLOOD: usize = 30;
    let mut limited = 0;
    for i in 0..FLOOD {
        let (status, _) = c.rdap("sat1", &format!("/domain/flood-{i}.{ZONE}"));
        limited += usize::from(status == 429);
    }
    assert!(limited > 0, "no RDAP request of {FLOOD} was rate limited");
    let flooded = scrape(sat_metrics).expect("a fourth scrape");
    let rl = series("rdap", "rate_limited");
    assert_eq!(
        value(&flooded, &rl) - value(&rds, &rl),
        limited as f64,
        "{flooded}"
    );
    let rl_total = "orrery_rate_limited_total{service=\"rdap\",action=\"refused\"}";
    assert_eq!(
        value(&flooded, rl_total) - value(&rds, rl_total),
        limited as f64,
        "{flooded}"
    );
    assert_eq!(
        received(&flooded, "rdap") - received(&rds, "rdap"),
        FLOOD as f64,
        "{flooded}"
    );
    promtool_check(&promtool, &flooded)
        .unwrap_or_else(|e| panic!("satellite metrics: {e}\n{flooded}"));

    // The check-in reads the same counters: the master's picture (`status`) gets the same
    // totals in the link message's fields.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = crate::watchdog::status(&path);
        let sat1 = s["satellites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["identity"] == "sat1")
            .cloned()
            .unwrap_or_default();
        let counters = &sat1["counters"];
        if counters["whois_queries"] == W
            && counters["rdap_queries"] == R + FLOOD
            && counters["errors_by_kind"]["rds_rate_limited"] == limited
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the check-ins do not carry the Whois/RDAP totals: {sat1:#}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The master: this satellite connected to it, and the cluster picture from the store
    // (refreshed every cluster heartbeat) with sat1's serial; sat2 never checked in.
    let m = scrape_until(master_metrics, "the master sees sat1", logs, |t| {
        t.lines()
            .any(|l| l.starts_with("orrery_satellites_connected{") && l.ends_with(" 1"))
            && value(t, "orrery_satellite_applied_serial{satellite=\"sat1\"}") == head as f64
    });
    assert_eq!(
        value(&m, "orrery_satellite_serial_lag{satellite=\"sat1\"}"),
        0.0
    );
    assert_eq!(value(&m, "orrery_store_journal_head"), head as f64);
    assert!(m.contains("orrery_satellites_configured{master="), "{m}");
    assert!(m.contains("# TYPE orrery_watchdog_warnings gauge"), "{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with("orrery_store_reachable{") && l.ends_with(" 1")),
        "{m}"
    );
    assert!(
        m.contains("orrery_certificate_expiry_seconds{certificate=\"link\",master="),
        "{m}"
    );
    promtool_check(&promtool, &m).unwrap_or_else(|e| panic!("master metrics: {e}\n{m}"));
}
