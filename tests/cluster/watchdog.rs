//! The cluster state, `orrery-master status` and the watchdog with real processes: each rule
//! tested here is raised by a real condition and cleared when it ends — a satellite frozen
//! with SIGSTOP (missed check-ins, then SIGCONT), a satellite whose Whois port is taken
//! (refused configuration, with its error carried up in the check-ins), certificates that
//! expire within the warning's window (until a satellite gets a new one), a satellite whose
//! memory is over the budget the master gave it (until a reload raises it), rows the store
//! holds that the master cannot read (until they are fixed), clients sending queries the
//! satellite cannot parse (error rate, until they stop), a throttled link (serial lag, until
//! it is unthrottled) — and the watchdog's lease moves to a
//! second master when the first is killed.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{free_port, postgres_url};
use crate::processes::{Backend, ProcessCluster, binary};

/// `orrery-master status --json` against `config`.
pub(crate) fn status(config: &Path) -> Value {
    let out = Command::new(binary("orrery-master"))
        .args(["status", "--json", "--config"])
        .arg(config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "status: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("status JSON: {e}: {out:?}"))
}

/// The text form.
fn status_text(config: &Path) -> String {
    let out = Command::new(binary("orrery-master"))
        .args(["status", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "status: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Waits up to `within` for `check` to give something; panics with the last status and the
/// context otherwise.
fn wait_for<T>(
    what: &str,
    within: Duration,
    config: &Path,
    context: impl Fn() -> String,
    mut check: impl FnMut(&Value) -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        let s = status(config);
        if let Some(v) = check(&s) {
            return v;
        }
        assert!(
            started.elapsed() < within,
            "{what}: not within {within:?}\nstatus: {s:#}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn satellite<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["satellites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["identity"] == name)
        .unwrap_or_else(|| panic!("{name} not in {s:#}"))
}

fn has_warning(s: &Value, rule: &str, subject: &str) -> bool {
    s["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["rule"] == rule && w["subject"] == subject)
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// The hook: appends each delivery's environment line to a file.
fn write_hook(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let out = dir.join("hook.out");
    let hook = dir.join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$ORRERY_WARNING_STATE $ORRERY_WARNING_RULE $ORRERY_WARNING_SUBJECT\" >> {}\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    (hook, out)
}

fn hook_lines(out: &Path) -> String {
    std::fs::read_to_string(out).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_checkins_and_refused_configuration_are_raised_and_cleared() {
    let mut c = ProcessCluster::create(Backend::Sqlite).await;
    let (hook, hook_out) = write_hook(c.dir.path());
    c.write_master_config(&format!(
        "[watchdog]\ninterval_ms = 300\nmissed_checkins = 4\nhook = \"{}\"\n",
        hook.display()
    ));
    let config = c.master_config();
    // sat2's Whois port is taken: it serves DNS and RDAP, and refuses (part of) its
    // configuration until the port is free.
    let blocker = TcpListener::bind(("127.0.0.1", c.ports("sat2").whois)).unwrap();
    c.start_master();
    c.start_satellite("sat1");
    c.start_satellite("sat2");
    let head = c.store.head().await.unwrap();
    let logs = |c: &ProcessCluster| {
        format!(
            "master log:\n{}\nsat1 log:\n{}",
            c.master_log(),
            c.satellite_log("sat1")
        )
    };

    // Both satellites are in the store's picture: connected, current, with rates.
    let s = wait_for(
        "both satellites connected with two samples",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| {
            let ok = ["sat1", "sat2"].iter().all(|n| {
                let x = satellite(s, n);
                x["connected"] == true && x["rates"].is_object() && x["lag_serials"] == 0
            });
            ok.then(|| s.clone())
        },
    );
    let sat1 = satellite(&s, "sat1");
    assert_eq!(sat1["applied_serial"], head);
    assert_eq!(sat1["config"]["adopted"], true, "{sat1:#}");
    assert_eq!(sat1["checkin_interval_ms"], 500);
    let services = sat1["services"].as_array().unwrap();
    assert_eq!(services.len(), 4, "dns udp+tcp, whois, rdap: {sat1:#}");
    assert!(sat1["memory_bytes"].as_i64().unwrap() > 0);
    assert!(sat1["cert_expires"].is_string());
    let masters = s["masters"].as_array().unwrap();
    assert_eq!(masters.len(), 1);
    let master_id = masters[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(masters[0]["up"], true);
    assert_eq!(masters[0]["journal_head"], head);
    assert_eq!(s["watchdog"], master_id.as_str());
    // A lone master holds every singleton duty.
    assert_eq!(
        masters[0]["duties"],
        serde_json::json!(["dnssec", "maintenance", "watchdog"]),
        "{s:#}"
    );
    assert_eq!(sat1["master"], master_id.as_str());

    // The refused configuration is raised, with the satellite's reason and its error log.
    let s = wait_for(
        "refused_config raised for sat2",
        Duration::from_secs(20),
        &config,
        || logs(&c),
        |s| has_warning(s, "refused_config", "satellite:sat2").then(|| s.clone()),
    );
    let sat2 = satellite(&s, "sat2");
    let refused = sat2["config"]["refused"].as_str().unwrap();
    assert!(!refused.is_empty(), "{sat2:#}");
    assert_eq!(sat2["config"]["adopted"], false);
    let sat2_logs = sat2["logs"].as_array().unwrap();
    assert!(
        sat2_logs
            .iter()
            .any(|l| l["level"] == "ERROR" || l["level"] == "WARN"),
        "the satellite's warnings came up with its check-ins: {sat2:#}"
    );
    assert!(
        c.master_log().contains("satellite=sat2") && c.master_log().contains("satellite: "),
        "the master logs them with the identity:\n{}",
        c.master_log()
    );
    let text = status_text(&config);
    assert!(text.contains("satellite sat2: connected to"), "{text}");
    assert!(text.contains("REFUSED"), "{text}");
    assert!(text.contains("WARNING refused_config"), "{text}");

    // The port is freed: the satellite starts Whois at its next check-in; the warning clears.
    drop(blocker);
    wait_for(
        "refused_config cleared for sat2",
        Duration::from_secs(20),
        &config,
        || logs(&c),
        |s| (!has_warning(s, "refused_config", "satellite:sat2")).then_some(()),
    );
    assert!(!c.whois("sat2", crate::processes::ZONE).is_empty());

    // sat1 frozen: its check-ins stop; after 4 intervals (2 s) the warning is raised. The rule
    // counts from the last check-in (which may have come up to an interval before the
    // freeze), and its detail says how old that check-in was when it was raised.
    signal(c.satellite_pid("sat1"), "-STOP");
    let detail = wait_for(
        "missed_checkins raised for sat1",
        Duration::from_secs(20),
        &config,
        || logs(&c),
        |s| {
            s["warnings"].as_array().unwrap().iter().find_map(|w| {
                (w["rule"] == "missed_checkins" && w["subject"] == "satellite:sat1")
                    .then(|| w["detail"].as_str().unwrap_or("").to_owned())
            })
        },
    );
    let age: f64 = detail
        .strip_prefix("no check-in for ")
        .and_then(|d| d.split(' ').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("detail: {detail}"));
    // Printed to a tenth of a second: 2.0 is the smallest age over 2 s.
    assert!(age >= 2.0, "raised too early: {detail}");
    let s = status(&config);
    assert!(!has_warning(&s, "missed_checkins", "satellite:sat2"));
    signal(c.satellite_pid("sat1"), "-CONT");
    wait_for(
        "missed_checkins cleared for sat1",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| (!has_warning(s, "missed_checkins", "satellite:sat1")).then_some(()),
    );

    // Logged once each way, and the hook saw each once.
    let log = c.master_log();
    for rule in ["missed_checkins", "refused_config"] {
        let raised = log
            .lines()
            .filter(|l| l.contains("warning raised") && l.contains(rule))
            .count();
        let cleared = log
            .lines()
            .filter(|l| l.contains("warning cleared") && l.contains(rule))
            .count();
        assert_eq!((raised, cleared), (1, 1), "{rule}:\n{log}");
    }
    let started = Instant::now();
    loop {
        let lines = hook_lines(&hook_out);
        if lines.contains("cleared missed_checkins satellite:sat1") {
            assert!(
                lines.contains("raised missed_checkins satellite:sat1"),
                "{lines}"
            );
            assert!(
                lines.contains("raised refused_config satellite:sat2"),
                "{lines}"
            );
            assert!(
                lines.contains("cleared refused_config satellite:sat2"),
                "{lines}"
            );
            assert_eq!(
                lines
                    .matches("raised missed_checkins satellite:sat1")
                    .count(),
                1
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "hook: {lines}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Certificates within `cert_expiry_days`, a memory budget the satellite is over, and a row
/// the master quarantines: each raised by the real condition, each cleared when it ends (a
/// longer certificate and a restart; a higher budget and SIGHUP; the row fixed in the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_certificates_memory_over_budget_and_quarantined_rows_are_raised_and_cleared() {
    let mut c = ProcessCluster::create(Backend::Sqlite).await;
    // Every certificate of the cluster is valid for 30 days: within a 60-day window.
    // sat2's budget (the last satellite table is sat2's) is far below what any process holds.
    let watchdog = "[watchdog]\ninterval_ms = 300\ncert_expiry_days = 60\nquarantined_rows = 1\n";
    c.write_master_config(&format!("memory_budget_mb = 1\n{watchdog}"));
    let config = c.master_config();
    c.start_master();
    c.start_satellite("sat1");
    c.start_satellite("sat2");
    let logs = |c: &ProcessCluster| {
        format!(
            "master log:\n{}\nsat2 log:\n{}",
            c.master_log(),
            c.satellite_log("sat2")
        )
    };
    let s = wait_for(
        "cert_expiring for both satellites and the master, memory_over_budget for sat2",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| {
            let master = s["masters"][0]["id"].as_str()?;
            let all = has_warning(s, "cert_expiring", "satellite:sat1")
                && has_warning(s, "cert_expiring", "satellite:sat2")
                && has_warning(s, "cert_expiring", &format!("master:{master}"))
                && has_warning(s, "memory_over_budget", "satellite:sat2");
            all.then(|| s.clone())
        },
    );
    assert!(
        !has_warning(&s, "memory_over_budget", "satellite:sat1"),
        "{s:#}"
    );
    assert!(!has_warning(&s, "quarantined_rows", "store"), "{s:#}");

    // A row the master cannot read: a contact's country that is no ISO 3166 code.
    c.sql("UPDATE contact SET country = 'XYZ' WHERE id = (SELECT MIN(id) FROM contact)")
        .await
        .unwrap();
    wait_for(
        "quarantined_rows raised",
        Duration::from_secs(20),
        &config,
        || logs(&c),
        |s| has_warning(s, "quarantined_rows", "store").then_some(()),
    );
    c.sql("UPDATE contact SET country = 'GB' WHERE id = (SELECT MIN(id) FROM contact)")
        .await
        .unwrap();
    wait_for(
        "quarantined_rows cleared once the row is fixed",
        Duration::from_secs(20),
        &config,
        || logs(&c),
        |s| (!has_warning(s, "quarantined_rows", "store")).then_some(()),
    );

    // sat2 gets a certificate for 400 days and restarts with it: its warning clears, sat1's
    // stays. `certs issue` does not overwrite: the old pair goes first, as an operator does.
    for old in ["sat2.satellite.key", "sat2.satellite.pem"] {
        std::fs::remove_file(c.dir.path().join("certs").join(old)).unwrap();
    }
    let out = Command::new(binary("orrery-master"))
        .args([
            "certs",
            "issue",
            "--satellite",
            "sat2",
            "--days",
            "400",
            "--dir",
        ])
        .arg(c.dir.path().join("certs"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    c.stop_satellite("sat2");
    c.start_satellite("sat2");
    wait_for(
        "cert_expiring cleared for sat2 only",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| {
            (!has_warning(s, "cert_expiring", "satellite:sat2")
                && has_warning(s, "cert_expiring", "satellite:sat1"))
            .then_some(())
        },
    );

    // The budget raised to 4 GiB and the configuration reloaded: the warning clears.
    c.write_master_config(&format!("memory_budget_mb = 4096\n{watchdog}"));
    signal(c.master_pid(), "-HUP");
    wait_for(
        "memory_over_budget cleared after the reload",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| (!has_warning(s, "memory_over_budget", "satellite:sat2")).then_some(()),
    );
    let log = c.master_log();
    for (rule, raised, cleared) in [
        ("memory_over_budget", 1, 1),
        ("quarantined_rows", 1, 1),
        ("cert_expiring", 3, 1),
    ] {
        let count = |what: &str| {
            log.lines()
                .filter(|l| l.contains(what) && l.contains(rule))
                .count()
        };
        assert_eq!(
            (count("warning raised"), count("warning cleared")),
            (raised, cleared),
            "{rule}:\n{log}"
        );
    }
}

/// One Whois query; its answer, or the error (a refused connection included).
fn whois_query(at: std::net::SocketAddr, query: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(at)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(format!("{query}\r\n").as_bytes())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Clients sending a satellite Whois queries it cannot parse, in a steady trickle: the error
/// rate rule is raised from its check-ins' counters, and cleared once the clients ask proper
/// questions. (The satellite answers SERVFAIL only when a leaf breaks the Selector contract,
/// which no configuration can bring about: `servfail_rate` is tested on the rules alone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_is_raised_and_cleared() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let mut c = ProcessCluster::create(Backend::Sqlite).await;
    c.write_master_config("[watchdog]\ninterval_ms = 300\nerror_ratio = 0.5\nmin_responses = 3\n");
    let config = c.master_config();
    c.start_master();
    c.start_satellite("sat1");
    c.start_satellite("sat2");
    let domain = c.some_domain(3).await;
    let whois = std::net::SocketAddr::from(([127, 0, 0, 1], c.ports("sat2").whois));
    let stop = Arc::new(AtomicBool::new(false));
    // Until told otherwise, the clients send a name with an empty label: a bad request.
    let bad = Arc::new(AtomicBool::new(true));
    let trickle = {
        let (stop, bad, domain) = (Arc::clone(&stop), Arc::clone(&bad), domain.clone());
        std::thread::spawn(move || {
            let mut answers = 0;
            while !stop.load(Ordering::Relaxed) {
                let q = if bad.load(Ordering::Relaxed) {
                    format!("x..{domain}")
                } else {
                    domain.clone()
                };
                if whois_query(whois, &q).is_ok_and(|a| !a.is_empty()) {
                    answers += 1;
                }
                std::thread::sleep(Duration::from_millis(40));
            }
            answers
        })
    };
    let logs = |c: &ProcessCluster| {
        format!(
            "master log:\n{}\nsat2 log:\n{}",
            c.master_log(),
            c.satellite_log("sat2")
        )
    };
    let s = wait_for(
        "error_rate raised for sat2",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| has_warning(s, "error_rate", "satellite:sat2").then(|| s.clone()),
    );
    assert!(!has_warning(&s, "error_rate", "satellite:sat1"), "{s:#}");
    let counters = &satellite(&s, "sat2")["counters"];
    assert!(
        counters["errors_by_kind"]["rds_bad_request"]
            .as_i64()
            .unwrap()
            > 0,
        "{counters:#}"
    );

    bad.store(false, Ordering::Relaxed);
    wait_for(
        "error_rate cleared for sat2",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| (!has_warning(s, "error_rate", "satellite:sat2")).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    let answers = trickle.join().unwrap();
    assert!(answers > 10, "the trickle got {answers} answers");
    let log = c.master_log();
    let count = |what: &str| {
        log.lines()
            .filter(|l| l.contains(what) && l.contains("error_rate"))
            .count()
    };
    assert_eq!(
        (count("warning raised"), count("warning cleared")),
        (1, 1),
        "{log}"
    );
}

/// Two masters on one PostgreSQL store: the first runs the watchdog; killed, the second takes
/// the lease over within the lease's time, and, alone, warns that there is no standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_lease_moves_to_a_standby_when_the_holder_is_killed() {
    let Some(url) = postgres_url() else { return };
    let mut c = ProcessCluster::create(Backend::Postgres(url)).await;
    c.write_master_config("[watchdog]\ninterval_ms = 300\n");
    let config = c.master_config();
    c.start_master();
    let first = wait_for(
        "the first master holds the watchdog",
        Duration::from_secs(30),
        &config,
        || c.master_log(),
        |s| s["watchdog"].as_str().map(str::to_owned),
    );
    assert!(first.ends_with(&format!(":{}", c.master_port())), "{first}");
    let port = free_port();
    let mut second = c.spawn_other_master(port);
    let second_id = wait_for(
        "two masters up, the second a standby, no no_standby warning",
        Duration::from_secs(30),
        &config,
        || second.log(),
        |s| {
            let masters = s["masters"].as_array()?;
            let standby = masters.iter().find(|m| {
                m["id"]
                    .as_str()
                    .is_some_and(|id| id.ends_with(&format!(":{port}")))
            })?;
            let ok = masters.iter().filter(|m| m["up"] == true).count() == 2
                && standby["duties"].as_array()?.is_empty()
                && !has_warning(s, "no_standby", "cluster");
            ok.then(|| standby["id"].as_str().unwrap().to_owned())
        },
    );
    assert_eq!(status(&config)["watchdog"], first.as_str());

    let killed = Instant::now();
    c.kill_master();
    wait_for(
        "the standby takes the watchdog lease",
        Duration::from_secs(10),
        &config,
        || second.log(),
        |s| (s["watchdog"] == second_id.as_str()).then_some(()),
    );
    let takeover = killed.elapsed();
    eprintln!("watchdog lease takeover after kill -9 of its holder: {takeover:?}");
    // Lease 3 × 300 ms, renewed every 300 ms: well under the 10 s goal.
    assert!(takeover < Duration::from_secs(5), "{takeover:?}");
    assert!(
        second.log().contains("watchdog lease taken"),
        "{}",
        second.log()
    );
    // The first master's heartbeat goes stale (5 × 2 s): the survivor has no standby.
    let s = wait_for(
        "no_standby raised by the survivor",
        Duration::from_secs(30),
        &config,
        || second.log(),
        |s| has_warning(s, "no_standby", "cluster").then(|| s.clone()),
    );
    let down: Vec<_> = s["masters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["up"] == false)
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(down, [first], "{s:#}");
    assert!(second.exited().is_none());
    second.kill9();
}

/// Serial lag raised by a real condition: sat1 dials its master through a forwarder whose
/// master → satellite direction is throttled, and a change of every domain takes seconds to
/// cross it. The check-ins go up unthrottled, so the master keeps hearing from the satellite
/// while its applied serial stays behind; unthrottled, the batch lands and the warning clears.
///
/// The check-ins run on a task and a connection of their own (satellite `link/check_in.rs`):
/// on the change stream's connection their answers would queue behind the batch's bytes, so
/// `missed_checkins` would follow `serial_lag` and a crossing longer than the call timeout
/// would end the session. With the default `missed_checkins` (3 intervals, 1.5 s here) they
/// must still come through while the batch crosses for about `CROSSING` seconds. The throttle
/// is sized from what the same change cost on the wire just before (sent unthrottled); it
/// throttles each connection on its own, as a slow link shares itself between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_lag_is_raised_by_a_throttled_link_and_cleared() {
    const CROSSING: f64 = 6.0;
    let mut c = ProcessCluster::create(Backend::Sqlite).await;
    // Serial lag judged in seconds: the change is one serial per domain, a count that
    // depends on the zone's size, while its age does not.
    c.write_master_config("[watchdog]\ninterval_ms = 300\nserial_lag_seconds = 2\n");
    let config = c.master_config();
    c.start_master();
    let throttle = crate::throttle::Throttle::start(([127, 0, 0, 1], c.master_port()).into()).await;
    c.set_satellite_masters(&[throttle.port()], "3600");
    // Not `start_satellite`: that waits for the zone's SOA, which a bare satellite answers only
    // once its first snapshot is in.
    c.spawn_satellite("sat1");
    let logs = |c: &ProcessCluster| {
        format!(
            "master log:\n{}\nsat1 log:\n{}",
            c.master_log(),
            c.satellite_log("sat1")
        )
    };
    let applied = |s: &Value| satellite(s, "sat1")["applied_serial"].as_i64();
    let head = c.store.head().await.unwrap();
    wait_for(
        "sat1 connected through the forwarder and current",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| (satellite(s, "sat1")["connected"] == true && applied(s) == Some(head)).then_some(()),
    );

    // What one change of every domain costs on the wire, unthrottled.
    let touch = |day: u32| format!("UPDATE domain SET updated = '2030-01-{day:02}T00:00:00Z'");
    let before = throttle.bytes_down();
    c.sql(&touch(1)).await.unwrap();
    let head = c.store.head().await.unwrap();
    wait_for(
        "sat1 applies the first change",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| (applied(s) == Some(head)).then_some(()),
    );
    let wire = throttle.bytes_down() - before;
    assert!(
        wire > 20_000,
        "a change of every domain is only {wire} bytes on the wire: too small to throttle"
    );

    // The same again, throttled to cross in about CROSSING seconds.
    // Only what happens from here on counts (a booting satellite is behind too, and may
    // have dialled before the master had loaded the registry).
    let (master_from, sat_from) = (
        c.master_log().lines().count(),
        c.satellite_log("sat1").lines().count(),
    );
    let rate = (wire as f64 / CROSSING) as u64;
    throttle.set_rate(rate);
    let throttled = Instant::now();
    c.sql(&touch(2)).await.unwrap();
    let head = c.store.head().await.unwrap();
    let s = wait_for(
        "serial_lag raised for sat1",
        Duration::from_secs(20),
        &config,
        || format!("throttled to {rate} B/s ({wire} B)\n{}", logs(&c)),
        |s| has_warning(s, "serial_lag", "satellite:sat1").then(|| s.clone()),
    );
    let sat1 = satellite(&s, "sat1");
    assert!(applied(&s) < Some(head), "{sat1:#}");
    assert_eq!(sat1["connected"], true, "{sat1:#}");
    assert!(
        !has_warning(&s, "missed_checkins", "satellite:sat1"),
        "the check-ins still come through: {s:#}"
    );
    assert!(
        throttled.elapsed() < Duration::from_secs_f64(CROSSING),
        "raised only after the batch could have crossed ({:?}, {rate} B/s, {wire} B)",
        throttled.elapsed()
    );

    // Unthrottled: the rest of the batch crosses at once and the warning clears.
    throttle.set_rate(0);
    wait_for(
        "serial_lag cleared for sat1",
        Duration::from_secs(20),
        &config,
        || logs(&c),
        |s| {
            (applied(s) == Some(head) && !has_warning(s, "serial_lag", "satellite:sat1"))
                .then_some(())
        },
    );
    let log: Vec<String> = c
        .master_log()
        .lines()
        .skip(master_from)
        .map(String::from)
        .collect();
    let raised = |rule: &str| {
        log.iter()
            .filter(|l| l.contains("warning raised") && l.contains(rule) && l.contains("sat1"))
            .count()
    };
    assert_eq!(raised("serial_lag"), 1, "{log:#?}");
    assert_eq!(raised("missed_checkins"), 0, "{log:#?}");
    let sat_log: Vec<String> = c
        .satellite_log("sat1")
        .lines()
        .skip(sat_from)
        .map(String::from)
        .collect();
    assert!(
        !sat_log
            .iter()
            .any(|l| l.contains("link to the master lost")),
        "the satellite kept its session: {sat_log:#?}"
    );
}

/// A bare satellite's first boot: it is behind by the whole registry until its first snapshot
/// has arrived, which is not a lag to warn about. sat1 dials through a forwarder throttled so
/// that the snapshot takes seconds; meanwhile its check-ins (on their own connection) say so,
/// `status` shows `state = first_snapshot`, and the watchdog (every 300 ms, default
/// thresholds: 1000 serials) raises nothing; unthrottled, the snapshot lands and the state
/// clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_satellites_first_snapshot_raises_no_serial_lag() {
    let mut c = ProcessCluster::create(Backend::Sqlite).await;
    c.write_master_config("[watchdog]\ninterval_ms = 300\n");
    let config = c.master_config();
    c.start_master();
    let throttle = crate::throttle::Throttle::start(([127, 0, 0, 1], c.master_port()).into()).await;
    // About 6800 serials of registry: far above the 1000-serial threshold, and a snapshot of
    // a few hundred KB, so several seconds at this rate.
    throttle.set_rate(16_000);
    c.set_satellite_masters(&[throttle.port()], "3600");
    // Not `start_satellite`: that waits for the zone's SOA, which a bare satellite answers only
    // once its first snapshot is in.
    c.spawn_satellite("sat1");
    let logs = |c: &ProcessCluster| {
        format!(
            "master log:\n{}\nsat1 log:\n{}",
            c.master_log(),
            c.satellite_log("sat1")
        )
    };
    let head = c.store.head().await.unwrap();
    assert!(
        head > 1000,
        "the registry is too small for this test: {head}"
    );
    let s = wait_for(
        "sat1 reported in its first snapshot",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| {
            let sat1 = satellite(s, "sat1");
            (sat1["connected"] == true && sat1["state"] == "first_snapshot").then(|| s.clone())
        },
    );
    assert_eq!(satellite(&s, "sat1")["applied_serial"], 0, "{s:#}");
    assert!(
        status_text(&config).contains("receiving its first snapshot"),
        "{}",
        status_text(&config)
    );
    // Ten watchdog rounds (or until the snapshot is in): nothing raised for sat1.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        let s = status(&config);
        for rule in ["serial_lag", "missed_checkins"] {
            assert!(
                !has_warning(&s, rule, "satellite:sat1"),
                "{rule} during the first snapshot (throttled {:.1} s): {s:#}\n{}",
                watched.elapsed().as_secs_f64(),
                logs(&c)
            );
        }
        if satellite(&s, "sat1")["state"] != "first_snapshot" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    throttle.set_rate(0);
    wait_for(
        "sat1 current, out of its first snapshot",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| {
            let sat1 = satellite(s, "sat1");
            (sat1["applied_serial"].as_i64() == Some(head) && sat1["state"] == "").then_some(())
        },
    );
    let raised = c
        .master_log()
        .lines()
        .filter(|l| l.contains("warning raised") && l.contains("satellite:sat1"))
        .map(String::from)
        .collect::<Vec<_>>();
    assert!(raised.is_empty(), "{raised:#?}");
}

/// The SOA the satellite `addr` answers for the zone: its RCODE (`None`: no answer).
fn soa_rcode(addr: std::net::SocketAddr) -> Option<hickory_proto::op::ResponseCode> {
    use hickory_proto::rr::RecordType;
    crate::harness::try_query(addr, crate::processes::ZONE, RecordType::SOA, Some(1232))
        .map(|m| m.response_code)
}

/// `servfail_rate` raised by its real cause: a zone past its SOA EXPIRE (3 s here) while no
/// master answers, on a satellite with `serve_expired = false` (sat2). The master is frozen
/// with SIGSTOP: sat2 answers SERVFAIL for the zone (`dig` sees it) while sat1, with the
/// default `serve_expired = true`, answers through the same outage. The master thawed, the
/// satellite hears from it and answers again; its first check-ins carry the SERVFAIL count,
/// `servfail_rate` is raised for sat2 alone, and cleared once check-ins carry none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servfail_rate_is_raised_by_an_expired_zone_and_cleared() {
    use hickory_proto::op::ResponseCode;
    let mut c = ProcessCluster::create(Backend::Sqlite).await;
    c.sql("UPDATE zone SET soa_expire = 3").await.unwrap();
    // The first line lands in sat2's table (the last satellite table).
    c.write_master_config(
        "serve_expired = false\n[watchdog]\ninterval_ms = 300\nservfail_ratio = 0.5\nmin_responses = 3\n",
    );
    let config = c.master_config();
    c.start_master();
    c.start_satellite("sat1");
    c.start_satellite("sat2");
    let sat1 = std::net::SocketAddr::from(([127, 0, 0, 1], c.ports("sat1").dns));
    let sat2 = std::net::SocketAddr::from(([127, 0, 0, 1], c.ports("sat2").dns));
    let logs = |c: &ProcessCluster| {
        format!(
            "master log:\n{}\nsat2 log:\n{}",
            c.master_log(),
            c.satellite_log("sat2")
        )
    };
    wait_for(
        "both satellites connected with two samples",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| {
            ["sat1", "sat2"]
                .iter()
                .all(|n| {
                    satellite(s, n)["connected"] == true && satellite(s, n)["rates"].is_object()
                })
                .then_some(())
        },
    );
    // Connected and answering: the EXPIRE of 3 s does not expire a zone that hears from its
    // master every half second.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(soa_rcode(sat2), Some(ResponseCode::NoError), "{}", logs(&c));

    // The master frozen: no batch, heartbeat or check-in answer from here on.
    let frozen = Instant::now();
    signal(c.master_pid(), "-STOP");
    let expired_after = loop {
        let rcode = soa_rcode(sat2);
        if rcode == Some(ResponseCode::ServFail) {
            break frozen.elapsed();
        }
        assert_eq!(rcode, Some(ResponseCode::NoError), "{}", logs(&c));
        assert!(
            frozen.elapsed() < Duration::from_secs(15),
            "no SERVFAIL from sat2 after its zone's EXPIRE:\n{}",
            logs(&c)
        );
        // Slowly: every answer before the expiry dilutes the SERVFAIL ratio of the check-in.
        std::thread::sleep(Duration::from_millis(250));
    };
    // Heard at most a heartbeat (0.5 s) before the freeze, expired at 3 whole seconds after.
    assert!(
        expired_after >= Duration::from_millis(2400),
        "expired {expired_after:?} after the freeze, before its EXPIRE of 3 s"
    );
    if let Some(dig) = crate::harness::program("dig", "bind9-dnsutils") {
        let out = Command::new(dig)
            .args(["@127.0.0.1", "-p", &sat2.port().to_string()])
            .args([
                crate::processes::ZONE,
                "SOA",
                "+norec",
                "+tries=1",
                "+time=2",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("status: SERVFAIL"), "{text}");
    }
    // Every name of the zone, not only its apex; the default policy answers meanwhile.
    let domain = c.some_domain(1).await;
    for _ in 0..40 {
        assert_eq!(
            crate::harness::try_query(sat2, &domain, hickory_proto::rr::RecordType::A, None)
                .map(|m| m.response_code),
            Some(ResponseCode::ServFail)
        );
    }
    assert_eq!(
        soa_rcode(sat1),
        Some(ResponseCode::NoError),
        "serve_expired = true"
    );
    // sat1 may have heard its last heartbeat up to half a second after sat2 did, so its zone
    // expires (and it logs that it still answers) a little later: wait for that before the thaw.
    let started = Instant::now();
    while !c.satellite_log("sat1").contains("still answering") {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "sat1 never logged its expired zone:\n{}",
            c.satellite_log("sat1")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        soa_rcode(sat1),
        Some(ResponseCode::NoError),
        "serve_expired = true, past the EXPIRE"
    );
    let outage = frozen.elapsed();

    // The master back: sat2 hears from it and answers again; its check-ins carry the count.
    signal(c.master_pid(), "-CONT");
    let s = wait_for(
        "servfail_rate raised for sat2",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| has_warning(s, "servfail_rate", "satellite:sat2").then(|| s.clone()),
    );
    assert!(!has_warning(&s, "servfail_rate", "satellite:sat1"), "{s:#}");
    let started = Instant::now();
    while soa_rcode(sat2) != Some(ResponseCode::NoError) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "sat2 still not answering after the master came back:\n{}",
            logs(&c)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for(
        "servfail_rate cleared for sat2",
        Duration::from_secs(30),
        &config,
        || logs(&c),
        |s| (!has_warning(s, "servfail_rate", "satellite:sat2")).then_some(()),
    );
    eprintln!("zone expired {expired_after:?} after the freeze; outage {outage:?}");
    let log = c.master_log();
    let count = |what: &str| {
        log.lines()
            .filter(|l| l.contains(what) && l.contains("servfail_rate"))
            .count()
    };
    assert_eq!(
        (count("warning raised"), count("warning cleared")),
        (1, 1),
        "{log}"
    );
    // The satellites logged the expiry once and the recovery once; sat1 kept answering.
    let sat2_log = c.satellite_log("sat2");
    assert_eq!(
        sat2_log.matches("answering SERVFAIL").count(),
        1,
        "{sat2_log}"
    );
    assert_eq!(
        sat2_log.matches("no longer expired").count(),
        1,
        "{sat2_log}"
    );
    let sat1_log = c.satellite_log("sat1");
    assert_eq!(sat1_log.matches("still answering").count(), 1, "{sat1_log}");
}

/// `unsignable_zone` raised by its real cause: the signed zone's ZSK private key file is
/// removed from the master's key directory and a change reaches the zone, so the master
/// cannot sign it (its changes withheld); `status` shows the zone under the master and the
/// warning, the master's metrics carry the zone as a label. The file restored, the zone signs
/// at the next poll and the warning clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsignable_zone_is_raised_by_a_missing_key_and_cleared() {
    use orrery_proto::dnssec::{Algorithm, DnssecPolicy, KeyRole};
    use orrery_proto::{Name, Timestamp};
    use orrery_signer::FileKeyStore;

    let mut c = ProcessCluster::create(Backend::Sqlite).await;
    let apex = Name::from_ascii(crate::processes::ZONE).unwrap();
    let policy = DnssecPolicy::tld_default(DnssecPolicy::window_for(
        DnssecPolicy::DEFAULT_REFRESH,
        Timestamp::now(),
    ));
    c.store.set_dnssec_policy(&apex, &policy).await.unwrap();
    let key_dir = c.dir.path().join("keys");
    let keys = FileKeyStore::open(&key_dir).unwrap();
    let alg = Algorithm::EcdsaP256Sha256;
    crate::dnssec_serve::add_key(&c.store, &keys, &apex, KeyRole::Ksk, alg).await;
    let zsk = crate::dnssec_serve::add_key(&c.store, &keys, &apex, KeyRole::Zsk, alg).await;
    c.write_master_config(&format!(
        "[watchdog]\ninterval_ms = 300\n[dnssec]\nkey_dir = {key_dir:?}\n"
    ));
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    c.add_master_setting(&format!("metrics = \"{metrics}\""));
    let config = c.master_config();
    c.start_master();
    c.start_satellite("sat1");
    let subject = format!("zone:{}", crate::processes::ZONE);
    let s = wait_for(
        "the master up and signing, nothing unsignable",
        Duration::from_secs(30),
        &config,
        || c.master_log(),
        |s| (satellite(s, "sat1")["connected"] == true).then(|| s.clone()),
    );
    assert!(!has_warning(&s, "unsignable_zone", &subject), "{s:#}");
    assert_eq!(s["masters"][0]["unsignable_zones"], serde_json::json!([]));

    // The ZSK's private key goes missing, and a change needs a new signature (the SOA's).
    let key_file = key_dir.join(&zsk);
    let saved = c.dir.path().join("saved.pk8");
    std::fs::rename(&key_file, &saved).unwrap();
    c.sql("UPDATE domain SET updated = '2030-01-01T00:00:00Z' WHERE id = (SELECT MIN(id) FROM domain)")
        .await
        .unwrap();
    let s = wait_for(
        "unsignable_zone raised",
        Duration::from_secs(30),
        &config,
        || c.master_log(),
        |s| has_warning(s, "unsignable_zone", &subject).then(|| s.clone()),
    );
    let listed = &s["masters"][0]["unsignable_zones"][0];
    assert_eq!(listed["zone"], crate::processes::ZONE, "{s:#}");
    assert!(listed["error"].as_str().unwrap().contains(&zsk), "{s:#}");
    let warning = s["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["rule"] == "unsignable_zone")
        .unwrap();
    assert!(
        warning["detail"].as_str().unwrap().contains("withheld"),
        "{warning:#}"
    );
    let text = status_text(&config);
    assert!(text.contains("UNSIGNABLE zone:"), "{text}");
    assert!(text.contains("WARNING unsignable_zone"), "{text}");
    let master = s["masters"][0]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = crate::metrics::scrape(metrics).unwrap_or_default();
        let gauge = format!(
            "orrery_zone_unsignable{{master=\"{master}\",zone=\"{}\"}}",
            crate::processes::ZONE
        );
        let warned =
            format!("orrery_watchdog_warnings{{rule=\"unsignable_zone\",subject=\"{subject}\"}}");
        if crate::metrics::value(&text, &gauge) == 1.0
            && crate::metrics::value(&text, &warned) == 1.0
        {
            assert!(
                crate::metrics::value(
                    &text,
                    &format!("orrery_signing_failures_total{{master=\"{master}\"}}")
                ) >= 1.0,
                "{text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "metrics:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The file back: the next poll signs the zone, and the warning clears.
    std::fs::rename(&saved, &key_file).unwrap();
    let s = wait_for(
        "unsignable_zone cleared",
        Duration::from_secs(30),
        &config,
        || c.master_log(),
        |s| (!has_warning(s, "unsignable_zone", &subject)).then(|| s.clone()),
    );
    assert_eq!(
        s["masters"][0]["unsignable_zones"],
        serde_json::json!([]),
        "{s:#}"
    );
    let log = c.master_log();
    let count = |what: &str| {
        log.lines()
            .filter(|l| l.contains(what) && l.contains("unsignable_zone"))
            .count()
    };
    assert_eq!(
        (count("warning raised"), count("warning cleared")),
        (1, 1),
        "{log}"
    );
}
