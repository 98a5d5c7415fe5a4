//! Fault injection on a cluster of real processes (issue 10): what an operator's bad day does
//! to the change path — rows written by others that break the model, `kill -9` of a master or
//! a satellite, a store that is not there — and what real DNS, Whois and RDAP queries return
//! afterwards. Each case runs on SQLite and, with `DATABASE_URL`, on PostgreSQL.

use std::time::{Duration, Instant};

use orrery_proto::Timestamp;
use orrery_store::write::{NewDomain, NsSpec};

use crate::harness::{postgres_url, private_postgres};
use crate::link::n;
use crate::processes::{Backend, ProcessCluster, Seen, ZONE};

/// A change made while the master was away must be answered this soon after it is back.
const RESUME: Duration = Duration::from_secs(2);
/// A change must reach a connected satellite this soon.
const PROPAGATION: Duration = Duration::from_secs(2);

fn fqdn(label: &str) -> String {
    format!("{label}.{ZONE}")
}

fn new_domain(label: &str) -> NewDomain {
    let name = fqdn(label);
    NewDomain {
        name: n(&name),
        registrar: "FLT".into(),
        registrant: None,
        admin: None,
        tech: None,
        billing: None,
        expires: Timestamp(2_000_000_000),
        statuses: vec![],
        nameservers: vec![NsSpec {
            name: n(&format!("ns1.{name}")),
            addresses: vec!["192.0.2.53".parse().unwrap()],
        }],
        ds: vec![],
    }
}

async fn add_domain(c: &ProcessCluster, label: &str) {
    c.store.add_domain(&new_domain(label)).await.unwrap();
}

/// Runs a blocking closure (queries, waits on processes) off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// RFC 1982: `a` is `b` or comes after it.
fn not_older(a: u32, b: u32) -> bool {
    a == b || (a.wrapping_sub(b) as i32) > 0
}

fn snapshots_taken(log: &str) -> usize {
    log.matches("snapshot applied and saved").count()
}

macro_rules! on_both_backends {
    ($case:ident) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(super::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(
                missing_database_url,
                ignore = "DATABASE_URL is not set to a PostgreSQL URL"
            )]
            async fn postgres() {
                let Some(url) = super::postgres_url() else {
                    return;
                };
                super::$case(super::Backend::Postgres(url)).await;
            }
        }
    };
}

// ───────────────────── master kill -9 mid-stream, then restart ─────────────────────

on_both_backends!(master_kill9_resumes_from_the_journal);

/// A master killed while changes flow, and restarted: the satellite resumes from its serial
/// (no snapshot), and a change committed during the outage is answered within [`RESUME`] of
/// the master being back.
async fn master_kill9_resumes_from_the_journal(backend: Backend) {
    let mut c = ProcessCluster::create(backend).await;
    c.start_master();
    c.start_satellite("sat1");
    add_domain(&c, "before-kill").await;
    let c = blocking(move || {
        c.wait_dns("sat1", &fqdn("before-kill"), &Seen::Delegated, PROPAGATION);
        c
    })
    .await;
    // Changes in flight when the master dies.
    for i in 0..20 {
        add_domain(&c, &format!("inflight-{i}")).await;
    }
    let mut c = c;
    c.kill_master();
    add_domain(&c, "during-outage").await;
    let c = blocking(move || {
        std::thread::sleep(Duration::from_secs(3));
        c
    })
    .await;
    let mut c = c;
    c.start_master();
    let back = Instant::now();
    let c = blocking(move || {
        c.wait_dns("sat1", &fqdn("during-outage"), &Seen::Delegated, RESUME);
        let took = back.elapsed();
        assert!(
            took <= RESUME,
            "answered {took:?} after the master was back"
        );
        for i in 0..20 {
            let name = fqdn(&format!("inflight-{i}"));
            c.wait_dns("sat1", &name, &Seen::Delegated, PROPAGATION);
        }
        c
    })
    .await;
    let log = c.satellite_log("sat1");
    assert_eq!(
        snapshots_taken(&log),
        1,
        "the satellite took a snapshot again after the master's restart:\n{log}"
    );
}

// ───────────────────── satellite kill -9 right after a batch ─────────────────────

on_both_backends!(satellite_kill9_never_goes_back_in_time);

/// A satellite killed right after it answered a change, and restarted while no master is
/// there, serves a state at least as new as the one it served before.
async fn satellite_kill9_never_goes_back_in_time(backend: Backend) {
    let mut c = ProcessCluster::create(backend).await;
    c.start_master();
    c.start_satellite("sat1");
    for round in 0..3 {
        let label = format!("last-{round}");
        add_domain(&c, &label).await;
        let (cl, serial) = blocking(move || {
            c.wait_dns("sat1", &fqdn(&label), &Seen::Delegated, PROPAGATION);
            let serial = c.soa_serial("sat1").expect("a SOA answer");
            (c, serial)
        })
        .await;
        c = cl;
        // At once: within the old persist interval.
        c.kill_satellite("sat1");
        c.kill_master();
        c.start_satellite("sat1");
        let label = format!("last-{round}");
        c = blocking(move || {
            let after = c
                .soa_serial("sat1")
                .expect("a SOA answer after the restart");
            assert!(
                not_older(after, serial),
                "round {round}: the restarted satellite serves SOA {after}, older than {serial}"
            );
            assert_eq!(
                c.dns("sat1", &fqdn(&label)),
                Seen::Delegated,
                "round {round}: the restarted satellite lost {label}"
            );
            c
        })
        .await;
        c.kill_satellite("sat1");
        c.start_master();
        c.start_satellite("sat1");
    }
}

// ───────────────────── names written by plain SQL ─────────────────────

on_both_backends!(non_canonical_names_are_refused_by_the_store);

/// A name written with upper case or a trailing dot by plain SQL is refused by the schema, and
/// the domain stays published everywhere.
async fn non_canonical_names_are_refused_by_the_store(backend: Backend) {
    let mut c = ProcessCluster::create(backend).await;
    c.start_master();
    c.start_satellite("sat1");
    let name = c.some_domain(7).await;
    let upper = name.to_uppercase();
    for bad in [upper.as_str(), &format!("{name}."), &format!("{name}..")] {
        let refused = c
            .sql(&format!(
                "UPDATE domain SET name = '{bad}' WHERE name = '{name}'"
            ))
            .await;
        assert!(refused.is_err(), "the store took the name {bad:?}");
    }
    let host_refused = c
        .sql("INSERT INTO host(name, zone_id) SELECT 'bad name!.flt', id FROM zone WHERE name = 'flt'")
        .await;
    assert!(
        host_refused.is_err(),
        "the store took a host named 'bad name!.flt'"
    );
    // A later change flows, and the domain is still there.
    add_domain(&c, "after-refusals").await;
    let c = blocking(move || {
        c.wait_dns(
            "sat1",
            &fqdn("after-refusals"),
            &Seen::Delegated,
            PROPAGATION,
        );
        assert_eq!(c.dns("sat1", &name), Seen::Delegated, "{name} vanished");
        let whois = c.whois("sat1", &name);
        assert!(
            whois
                .to_lowercase()
                .contains(&format!("domain name: {name}")),
            "Whois lost {name}:\n{whois}"
        );
        let (status, _) = c.rdap("sat1", &format!("/domain/{name}"));
        assert_eq!(status, 200, "RDAP lost {name}");
        c
    })
    .await;
    drop(c);
}

// ───────────────────── SQLite writers wait for each other ─────────────────────

/// An `orrery-admin` write while another writer holds a transaction waits for it instead of
/// failing with `database is locked`, and its change is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writers_wait_for_each_other() {
    use sqlx::Connection;
    let mut c = ProcessCluster::create(Backend::Sqlite).await;
    c.start_master();
    c.start_satellite("sat1");
    let mut other = sqlx::SqliteConnection::connect(&c.url).await.unwrap();
    sqlx::raw_sql(
        "BEGIN IMMEDIATE; INSERT INTO registrar(handle, name) VALUES ('HOLD', 'holds the lock');",
    )
    .execute(&mut other)
    .await
    .unwrap();
    let admin = crate::processes::binary("orrery-admin");
    let url = c.url.clone();
    let writer = std::thread::spawn(move || {
        std::process::Command::new(admin)
            .args([
                "--db",
                &url,
                "domain",
                "add",
                "waited.flt",
                "--registrar",
                "FLT",
            ])
            .args(["--ns", "ns1.waited.flt=192.0.2.54"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();
    other.close().await.ok();
    let out = blocking(move || writer.join().unwrap()).await;
    assert!(
        out.status.success(),
        "orrery-admin failed while another writer held the store: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    blocking(move || {
        c.wait_dns("sat1", "waited.flt", &Seen::Delegated, PROPAGATION);
    })
    .await;
}

// ───────────────────── a master started before its store ─────────────────────

/// A master started while its PostgreSQL server is down waits, says so, and serves once the
/// server is up; it never exits for the outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_postgres_server,
    ignore = "PostgreSQL's server binaries are not installed (apt-get install postgresql)"
)]
async fn master_started_with_the_store_down_waits_for_it() {
    let Some(mut pg) = private_postgres() else {
        return;
    };
    pg.start();
    let mut c = ProcessCluster::create(Backend::Postgres(pg.url("postgres"))).await;
    c.store.close().await;
    pg.stop();
    c.spawn_master();
    let c = blocking(move || {
        std::thread::sleep(Duration::from_secs(4));
        c
    })
    .await;
    let mut c = c;
    assert!(
        c.master_running(),
        "the master exited while the store was down:\n{}",
        c.master_log()
    );
    let log = c.master_log().to_lowercase();
    assert!(
        log.contains("store") && (log.contains("retry") || log.contains("waiting")),
        "the master does not say that it waits for the store:\n{log}"
    );
    pg.start();
    c.wait_master_log("link listening");
    c.start_satellite("sat1");
    let name = c.some_domain(3).await;
    blocking(move || {
        c.wait_dns("sat1", &name, &Seen::Delegated, PROPAGATION);
    })
    .await;
}

// ───────────────────── a bad row in each table ─────────────────────

on_both_backends!(bad_rows_are_quarantined_and_the_rest_flows);

/// Rows the model cannot represent, written by plain SQL in every table: the master keeps each
/// object's last good version (a published delegation stays published), says so, lists them,
/// starts with them present, and every other change flows; once fixed, the fix propagates.
async fn bad_rows_are_quarantined_and_the_rest_flows(backend: Backend) {
    let sqlite = matches!(backend, Backend::Sqlite);
    let mut c = ProcessCluster::create(backend).await;
    c.start_master();
    c.start_satellite("sat1");
    let victim = c.some_domain(11).await;
    // Two rules a registration system's own SQL could break, lifted as an older schema would
    // not have had them, so that the host and zone rows below can be written at all.
    let lift: &[&str] = if sqlite {
        &[
            "DROP TRIGGER host_name_canonical_u",
            "DROP TRIGGER zone_soa_rname_canonical_u",
        ]
    } else {
        &[
            "ALTER TABLE host DROP CONSTRAINT host_name_canonical",
            "ALTER TABLE zone DROP CONSTRAINT zone_soa_rname_canonical",
        ]
    };
    for sql in lift {
        c.sql(sql).await.unwrap();
    }
    let bad = [
        format!(
            "INSERT INTO domain_status(domain_id, status) SELECT id, 'bogusStatus' FROM domain WHERE name = '{victim}'"
        ),
        "UPDATE host SET name = upper(name) WHERE id = (SELECT MIN(id) FROM host WHERE domain_id = (SELECT MIN(domain_id) FROM host))".to_owned(),
        format!("UPDATE zone SET soa_rname = 'Hostmaster.nic.{ZONE}' WHERE name = '{ZONE}'"),
        "UPDATE contact SET country = 'XYZ' WHERE id = (SELECT MIN(id) FROM contact)".to_owned(),
        "UPDATE registrar SET iana_id = -5 WHERE handle = 'FLT'".to_owned(),
    ];
    for sql in &bad {
        c.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    add_domain(&c, "flows-past-bad-rows").await;
    let c = blocking(move || {
        c.wait_dns(
            "sat1",
            &fqdn("flows-past-bad-rows"),
            &Seen::Delegated,
            PROPAGATION,
        );
        assert_eq!(
            c.dns("sat1", &victim),
            Seen::Delegated,
            "{victim} was unpublished by its bad row"
        );
        let whois = c.whois("sat1", &victim);
        assert!(
            whois
                .to_lowercase()
                .contains(&format!("domain name: {victim}")),
            "Whois lost {victim}:\n{whois}"
        );
        (c, victim)
    })
    .await;
    let (mut c, victim) = c;
    let log = c.master_log();
    for table in ["domain_status", "host", "zone", "contact", "registrar"] {
        assert!(
            log.lines()
                .any(|l| l.contains("bad row quarantined") && l.contains(table)),
            "no quarantine line naming {table}:\n{log}"
        );
    }
    let listed = std::process::Command::new(crate::processes::binary("orrery-admin"))
        .args(["--db", &c.url, "bad-rows"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        !listed.status.success(),
        "bad-rows exits non-zero while there are some"
    );
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains(&victim) && text.contains("registrar"),
        "bad-rows lists them:\n{text}"
    );

    // A master (re)started with the bad rows present starts, serves, and keeps flowing.
    c.kill_master();
    c.start_master();
    add_domain(&c, "after-restart-with-bad-rows").await;
    let c = blocking(move || {
        c.wait_dns(
            "sat1",
            &fqdn("after-restart-with-bad-rows"),
            &Seen::Delegated,
            RESUME,
        );
        assert_eq!(
            c.dns("sat1", &victim),
            Seen::Delegated,
            "{victim} unpublished after a restart"
        );
        (c, victim)
    })
    .await;
    let (c, victim) = c;

    // The fixes propagate: the bogus status becomes a real hold, which takes the delegation out.
    let fixes = [
        format!(
            "UPDATE domain_status SET status = 'serverHold' WHERE status = 'bogusStatus' AND domain_id = (SELECT id FROM domain WHERE name = '{victim}')"
        ),
        "UPDATE host SET name = lower(name) WHERE id = (SELECT MIN(id) FROM host WHERE domain_id = (SELECT MIN(domain_id) FROM host))".to_owned(),
        format!("UPDATE zone SET soa_rname = 'hostmaster.nic.{ZONE}' WHERE name = '{ZONE}'"),
        "UPDATE contact SET country = 'GB' WHERE id = (SELECT MIN(id) FROM contact)".to_owned(),
        "UPDATE registrar SET iana_id = NULL WHERE handle = 'FLT'".to_owned(),
    ];
    for sql in &fixes {
        c.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let c = blocking(move || {
        c.wait_dns("sat1", &victim, &Seen::Absent, PROPAGATION);
        c
    })
    .await;
    let listed = std::process::Command::new(crate::processes::binary("orrery-admin"))
        .args(["--db", &c.url, "bad-rows"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "bad rows left after the fixes:\n{}",
        String::from_utf8_lossy(&listed.stdout)
    );
}

// ───────────────────── one identity, one session ─────────────────────

/// A second process presenting the same identity is not silently accepted beside the first:
/// the master ends the older session and says so, naming both addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_identity_is_fenced_and_logged() {
    let mut c = ProcessCluster::create(Backend::Sqlite).await;
    c.start_master();
    c.start_satellite("sat1");
    // The impostor has the same certificate but its own state file (an operator's copy).
    let c = blocking(move || {
        c.spawn_duplicate("sat1");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.master_log().contains("its older session is ended") {
            assert!(
                Instant::now() < deadline,
                "the master accepted a second session of sat1 silently:\n{}",
                c.master_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    })
    .await;
    // Two processes sharing an identity replace each other, but never in a tight loop.
    let c = blocking(move || {
        std::thread::sleep(Duration::from_secs(3));
        c
    })
    .await;
    let fenced = c.master_log().matches("its older session is ended").count();
    assert!(
        fenced <= 12,
        "{fenced} session replacements in about 3 s: a tight loop"
    );
    let line = c
        .master_log()
        .lines()
        .find(|l| l.contains("its older session is ended"))
        .unwrap()
        .to_owned();
    assert!(line.contains("sat1"), "names the identity: {line}");
}

// ───────────────────── a refused configuration is reported upstream ─────────────────────

/// A satellite that cannot take the configuration it was given (its DNS port is taken) keeps
/// its session and says why; the master logs it with the satellite's identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_configuration_is_reported_to_the_master() {
    let mut c = ProcessCluster::create(Backend::Sqlite).await;
    let taken = std::net::UdpSocket::bind(("127.0.0.1", c.ports("sat2").dns)).unwrap();
    c.start_master();
    c.spawn_satellite("sat2");
    let c = blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = c.master_log();
            if let Some(line) = log
                .lines()
                .find(|l| l.contains("satellite refuses the configuration it was given"))
            {
                assert!(line.contains("sat2"), "names the satellite: {line}");
                assert!(
                    line.to_lowercase().contains("address")
                        || line.contains(&c.ports("sat2").dns.to_string()),
                    "says why: {line}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "no report upstream:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    })
    .await;
    drop(taken);
    // Freed, the port is taken at a later check-in and the master hears that too.
    let mut c = c;
    c.wait_master_log("satellite now runs the configuration it was given");
    c.wait_serving("sat2");
}

// ───────────────────── a clean master stop ─────────────────────

/// A master stopped with SIGTERM exits cleanly, and its satellites log that it closed the
/// session, not a protocol error; they keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_master_stop_is_not_a_protocol_error() {
    let mut c = ProcessCluster::create(Backend::Sqlite).await;
    c.start_master();
    c.start_satellite("sat1");
    // The satellite answers before it opens the change stream: a change served proves the
    // stream is open, so the stop below ends the stream (a clean close) and does not refuse
    // the satellite's next call instead (a lost link, logged as such).
    add_domain(&c, "before-stop").await;
    let c = blocking(move || {
        let mut c = c;
        c.wait_dns(
            "sat1",
            &fqdn("before-stop"),
            &Seen::Delegated,
            Duration::from_secs(10),
        );
        let status = c.stop_master();
        assert!(status.success(), "the master's exit on SIGTERM: {status}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !c
            .satellite_log("sat1")
            .contains("master closed the session")
        {
            assert!(
                Instant::now() < deadline,
                "the satellite did not log a clean close:\n{}",
                c.satellite_log("sat1")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = c.satellite_log("sat1").to_lowercase();
        assert!(
            !log.contains("protocol"),
            "a clean stop logged as a protocol problem:\n{log}"
        );
        // Both logs are files, written without NO_COLOR set: no colour codes.
        let master_log = std::fs::read_to_string(c.dir.path().join("master.1.log")).unwrap();
        assert!(master_log.contains("shutting down"), "{master_log}");
        for log in [c.satellite_log("sat1"), master_log] {
            assert!(
                !log.contains('\x1b'),
                "colour codes in a log file:\n{log:?}"
            );
        }
        assert!(
            c.soa_serial("sat1").is_some(),
            "the satellite stopped answering"
        );
        c
    })
    .await;
    drop(c);
}
