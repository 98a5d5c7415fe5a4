//! Several masters with real processes: satellites that prefer the first master of their list
//! move to the next when it is killed (`kill -9`), resuming from their serial, with no change
//! lost, and come back to it once it has been up for their hold-down; and a master that
//! follows a PostgreSQL hot-standby replica (its own primary and replica, started here)
//! propagates changes committed on the primary.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{free_port, postgres_url, private_postgres};
use crate::processes::{Backend, Process, ProcessCluster, Seen};
use crate::watchdog::status;

/// The master each satellite's row says it is connected to (`None`: not connected).
fn connected_to(s: &Value, sat: &str) -> Option<String> {
    let row = s["satellites"]
        .as_array()?
        .iter()
        .find(|x| x["identity"] == sat)?;
    (row["connected"] == true).then(|| row["master"].as_str().unwrap_or_default().to_owned())
}

/// Waits until `check` holds, polling every 20 ms; panics with `context` after `within`.
fn wait_until(
    what: &str,
    within: Duration,
    context: impl Fn() -> String,
    check: impl Fn() -> bool,
) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < within,
            "{what}: not within {within:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How many times `text` occurs in the log of `sat`.
fn count(c: &ProcessCluster, sat: &str, text: &str) -> usize {
    c.satellite_log(sat).matches(text).count()
}

const SATS: [&str; 2] = ["sat1", "sat2"];

/// Two masters on one PostgreSQL store, two satellites dialling `--master m1 --master m2`.
/// Killing m1 (-9) moves both to m2 within 10 s, resumed from their serial (no snapshot, no
/// gap), and a change committed while they move is answered; the watchdog lease moves to m2;
/// `status` against the survivor shows both satellites on it. m1 restarted, both go back to it
/// after their hold-down (2 s), once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_active_master_moves_every_satellite_to_the_next() {
    let Some(url) = postgres_url() else { return };
    let mut c = ProcessCluster::create(Backend::Postgres(url)).await;
    c.write_master_config("[watchdog]\ninterval_ms = 300\n");
    c.add_master_setting("maintenance_interval_ms = 300\njournal_keep = 3");
    let config = c.master_config();
    c.start_master();
    let m2_port = free_port();
    let mut m2: Process = c.spawn_other_master(m2_port);
    let m2_config = c.dir.path().join(format!("master-{m2_port}.toml"));
    let (m1_port, m2_suffix) = (c.master_port(), format!(":{m2_port}"));
    let m1_suffix = format!(":{m1_port}");
    wait_until(
        "m2 listening",
        Duration::from_secs(60),
        || m2.log(),
        || m2.log().contains("link listening"),
    );
    c.set_satellite_masters(&[m1_port, m2_port], "2");
    for sat in SATS {
        c.start_satellite(sat);
    }
    let on = |suffix: &str, config: &Path| {
        let s = status(config);
        SATS.iter()
            .all(|sat| connected_to(&s, sat).is_some_and(|m| m.ends_with(suffix)))
    };
    wait_until(
        "both satellites on m1",
        Duration::from_secs(30),
        || format!("{:#}", status(&config)),
        || on(&m1_suffix, &config),
    );
    let before = c.glueless_domain(0).await;
    c.sql(&format!("DELETE FROM domain WHERE name = '{before}'"))
        .await
        .unwrap();
    for sat in SATS {
        c.wait_dns(sat, &before, &Seen::Absent, Duration::from_secs(10));
    }
    let snapshots: Vec<usize> = SATS
        .iter()
        .map(|sat| count(&c, sat, "snapshot received"))
        .collect();

    // kill -9 of m1, and a change committed at once, while the satellites move.
    let killed = Instant::now();
    c.kill_master();
    let during = c.glueless_domain(1).await;
    c.sql(&format!("DELETE FROM domain WHERE name = '{during}'"))
        .await
        .unwrap();
    for sat in SATS {
        wait_until(
            &format!("{sat} on m2"),
            Duration::from_secs(10),
            || c.satellite_log(sat),
            || count(&c, sat, "connected to another master") >= 1,
        );
    }
    for sat in SATS {
        c.wait_dns(sat, &during, &Seen::Absent, Duration::from_secs(10));
    }
    let moved = killed.elapsed();
    // bench/failover.sh reads this line.
    eprintln!(
        "failover: kill -9 of the active master -> every satellite following the next and the change answered in {} ms",
        moved.as_millis()
    );
    assert!(moved < Duration::from_secs(10), "{moved:?}");
    // Resumed from their serial: no snapshot, no gap, and on the store's zone serial.
    let zone_serial = c
        .store
        .zone_serial(&crate::link::n(crate::processes::ZONE))
        .await
        .unwrap()
        .unwrap();
    for (sat, before) in SATS.iter().zip(snapshots) {
        let log = c.satellite_log(sat);
        assert_eq!(count(&c, sat, "snapshot received"), before, "{log}");
        assert!(!log.contains("leaves a gap"), "{log}");
        assert_eq!(c.soa_serial(sat), Some(zone_serial as u32), "{log}");
    }
    // The survivor's status shows both satellites on it, and it holds the watchdog.
    wait_until(
        "status on m2: both satellites, the watchdog",
        Duration::from_secs(10),
        || format!("{:#}", status(&m2_config)),
        || {
            let s = status(&m2_config);
            on(&m2_suffix, &m2_config)
                && s["watchdog"]
                    .as_str()
                    .is_some_and(|w| w.ends_with(&m2_suffix))
        },
    );
    // The store's housekeeping moved too, and keeps the journal at 3 rows.
    wait_until(
        "m2 holds the maintenance duty and the journal is pruned",
        Duration::from_secs(10),
        || format!("{:#}", status(&m2_config)),
        || {
            let s = status(&m2_config);
            let m2_duties = s["masters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["id"].as_str().is_some_and(|id| id.ends_with(&m2_suffix)))
                .map(|m| m["duties"].to_string())
                .unwrap_or_default();
            m2_duties.contains("maintenance") && m2_duties.contains("watchdog")
        },
    );
    // Pruned every 300 ms; a row or two may have come since.
    let rows = c.store.journal_since(0, 1000).await.unwrap().len();
    assert!(rows <= 3 + 2, "{rows} journal rows");
    // A change after the move.
    let after = c.glueless_domain(2).await;
    c.sql(&format!("DELETE FROM domain WHERE name = '{after}'"))
        .await
        .unwrap();
    for sat in SATS {
        c.wait_dns(sat, &after, &Seen::Absent, Duration::from_secs(10));
    }

    // m1 comes back: after the hold-down both satellites return to it, each once.
    let back = Instant::now();
    c.start_master();
    wait_until(
        "both satellites back on m1",
        Duration::from_secs(30),
        || format!("{:#}\n{}", status(&config), c.satellite_log("sat1")),
        || on(&m1_suffix, &config),
    );
    let returned = back.elapsed();
    eprintln!("satellites back on the first master after {returned:?} (hold-down 2 s)");
    assert!(returned >= Duration::from_secs(2), "{returned:?}");
    for sat in SATS {
        assert_eq!(
            count(&c, sat, "an earlier master of the list is back"),
            1,
            "{}",
            c.satellite_log(sat)
        );
        assert!(!c.satellite_log(sat).contains("leaves a gap"));
    }
    assert!(m2.exited().is_none(), "{}", m2.log());
    m2.kill9();
}

/// A master reading a hot-standby replica (`master.read_store`) of the test's own primary:
/// a change committed on the primary reaches the satellites through the replica (replay paused
/// on the replica, the change does not arrive; resumed, it does), while the master's writes
/// (cluster state) go to the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_postgres_server,
    ignore = "PostgreSQL's server binaries are not installed (apt-get install postgresql)"
)]
async fn a_master_following_a_hot_standby_replica_propagates_changes() {
    let Some(mut primary) = private_postgres() else {
        return;
    };
    tokio::task::block_in_place(|| primary.start());
    let mut c = ProcessCluster::create(Backend::Postgres(primary.url("postgres"))).await;
    let mut replica = tokio::task::block_in_place(|| primary.replica());
    tokio::task::block_in_place(|| replica.start());
    // The cluster's database, on the replica.
    let db = c
        .url
        .split_once(":///")
        .and_then(|(_, rest)| rest.split('?').next())
        .unwrap()
        .to_owned();
    assert_eq!(replica.psql(&db, "SELECT pg_is_in_recovery()"), "t");
    c.add_master_setting(&format!("read_store = \"{}\"", replica.url(&db)));
    c.start_master();
    let log = c.master_log();
    assert!(
        log.contains("following the journal from the read replica"),
        "{log}"
    );
    for sat in SATS {
        c.start_satellite(sat);
    }
    let config = c.master_config();
    // Its writes went to the primary: the status (from the primary) shows the satellites.
    wait_until(
        "satellites in the cluster state",
        Duration::from_secs(20),
        || format!("{:#}", status(&config)),
        || {
            let s = status(&config);
            SATS.iter().all(|sat| connected_to(&s, sat).is_some())
        },
    );

    // Replay paused on the replica: a change on the primary does not reach the satellites.
    replica.psql("postgres", "SELECT pg_wal_replay_pause()");
    let domain = c.glueless_domain(3).await;
    c.sql(&format!("DELETE FROM domain WHERE name = '{domain}'"))
        .await
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    for sat in SATS {
        assert_eq!(c.dns(sat, &domain), Seen::Delegated, "{}", c.master_log());
    }
    // Resumed: it does, by polling (no NOTIFY on a standby).
    let lsn = primary.psql("postgres", "SELECT pg_current_wal_lsn()");
    replica.psql("postgres", "SELECT pg_wal_replay_resume()");
    replica.wait_replayed(&lsn, Duration::from_secs(20));
    for sat in SATS {
        c.wait_dns(sat, &domain, &Seen::Absent, Duration::from_secs(10));
    }
    let log = c.master_log();
    assert!(!log.contains("cannot write"), "{log}");
    c.stop_master();
    drop(c);
    replica.stop();
    primary.stop();
}

/// Three masters on one PostgreSQL store, three satellites dialling `m1 m2 m3`. `kill -9` of
/// m1, then of m2: each time every satellite is following a live master within 10 s, resumed
/// from its serial (no snapshot, no gap, on the store's zone serial), and a change committed
/// during the failover is answered everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_masters_lose_two_in_turn_and_every_satellite_follows_the_last() {
    const SATS3: [&str; 3] = ["sat1", "sat2", "sat3"];
    let Some(url) = postgres_url() else { return };
    let mut c = ProcessCluster::create(Backend::Postgres(url)).await;
    c.add_satellite("sat3");
    c.write_master_config("[watchdog]\ninterval_ms = 300\n");
    let config = c.master_config();
    c.start_master();
    let (m2_port, m3_port) = (free_port(), free_port());
    let m2: Process = c.spawn_other_master(m2_port);
    let mut m3: Process = c.spawn_other_master(m3_port);
    let m3_config = c.dir.path().join(format!("master-{m3_port}.toml"));
    for (name, m) in [("m2", &m2), ("m3", &m3)] {
        wait_until(
            &format!("{name} listening"),
            Duration::from_secs(60),
            || m.log(),
            || m.log().contains("link listening"),
        );
    }
    // A long hold-down: nobody moves back during the test.
    c.set_satellite_masters(&[c.master_port(), m2_port, m3_port], "3600");
    for sat in SATS3 {
        c.start_satellite(sat);
    }
    let on = |port: u16, config: &Path| {
        let s = status(config);
        let suffix = format!(":{port}");
        SATS3
            .iter()
            .all(|sat| connected_to(&s, sat).is_some_and(|m| m.ends_with(&suffix)))
    };
    wait_until(
        "every satellite on m1",
        Duration::from_secs(30),
        || format!("{:#}", status(&config)),
        || on(c.master_port(), &config),
    );
    let snapshots: Vec<usize> = SATS3
        .iter()
        .map(|sat| count(&c, sat, "snapshot received"))
        .collect();
    let mut m2 = Some(m2);
    for (round, survivor) in [(1usize, m2_port), (2, m3_port)] {
        let killed = Instant::now();
        if round == 1 {
            c.kill_master();
        } else if let Some(m2) = m2.take() {
            m2.kill9();
        }
        // A change committed at once, while the satellites move.
        let during = c.glueless_domain(round).await;
        c.sql(&format!("DELETE FROM domain WHERE name = '{during}'"))
            .await
            .unwrap();
        for sat in SATS3 {
            wait_until(
                &format!("{sat} on another master (round {round})"),
                Duration::from_secs(10),
                || c.satellite_log(sat),
                || count(&c, sat, "connected to another master") >= round,
            );
        }
        for sat in SATS3 {
            c.wait_dns(sat, &during, &Seen::Absent, Duration::from_secs(10));
        }
        let moved = killed.elapsed();
        eprintln!(
            "failover round {round}: every satellite on a live master and the change answered in {} ms",
            moved.as_millis()
        );
        assert!(moved < Duration::from_secs(10), "round {round}: {moved:?}");
        let survivor_config = c.dir.path().join(format!("master-{survivor}.toml"));
        wait_until(
            &format!("status: every satellite on :{survivor} (round {round})"),
            Duration::from_secs(10),
            || format!("{:#}", status(&survivor_config)),
            || on(survivor, &survivor_config),
        );
        let zone_serial = c
            .store
            .zone_serial(&crate::link::n(crate::processes::ZONE))
            .await
            .unwrap()
            .unwrap();
        for (sat, before) in SATS3.iter().zip(&snapshots) {
            let log = c.satellite_log(sat);
            assert_eq!(count(&c, sat, "snapshot received"), *before, "{log}");
            assert!(!log.contains("leaves a gap"), "{log}");
            assert_eq!(c.soa_serial(sat), Some(zone_serial as u32), "{log}");
        }
    }
    // The last master holds the watchdog.
    wait_until(
        "m3 holds the watchdog",
        Duration::from_secs(10),
        || format!("{:#}", status(&m3_config)),
        || {
            status(&m3_config)["watchdog"]
                .as_str()
                .is_some_and(|w| w.ends_with(&format!(":{m3_port}")))
        },
    );
    assert!(m3.exited().is_none(), "{}", m3.log());
    m3.kill9();
}
