//! Zone transfer out through the whole cluster (issue 14's proof): a master process on the
//! store, a satellite process configured by it with an `xfr` table (a TSIG key, an ACL, NOTIFY
//! to three secondaries), and real Knot, NSD and BIND secondaries from Debian's packages
//! following the satellite, each in the test's temporary directory on a spare loopback port.
//!
//! Two zones: the cluster's unsigned synthetic TLD, and a second one the master signs (a
//! DNSSEC policy, algorithm 13 with NSEC3 opt-out, KSK and ZSK in its key directory). Changes
//! flow into the store at a steady rate, through the store's write API (domains added, their
//! NS changed, DS added, domains deleted), in phases; at each checkpoint between phases (and
//! after the first transfer, and at the end) every secondary reaches the satellite's serial and
//! its whole zone, read back by AXFR, equals the satellite's record by record — signatures,
//! NSEC3 and DNSKEY included. Their logs show one full transfer per zone, then only IXFR.
//!
//! A fourth secondary, Knot with the right key name and a wrong secret, never gets a zone:
//! the satellite refuses it (BADSIG), as its log and a `kdig` with the wrong key show.
//!
//! Secondaries run both zones: at this zone size (300 and 200 delegations) it costs seconds,
//! so nothing is left out for CI's sake.
//!
//! The satellite also serves a catalog zone (RFC 9432): a Knot and a BIND configured by the
//! catalog alone (NSD 4.6 has no catalog support) serve both zones from it, and a zone added
//! to the store at the end appears on them, transferred, at the store's serial.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use orrery_proto::dnssec::{Algorithm, DnssecPolicy, KeyRole};
use orrery_proto::{Ds, Name, Timestamp};
use orrery_signer::FileKeyStore;
use orrery_store::synthetic::SyntheticTld;
use orrery_store::write::{NewDomain, NewZone, NsSpec};
use orrery_tests::secondaries::{self, Kind, Secondary, Setup, TsigKey};

use crate::dnssec_serve::add_key;
use crate::harness::{free_port, program};
use crate::processes::{Backend, ProcessCluster, ZONE};

/// The zone the master signs.
const SIGNED: &str = "sgn";
/// Its synthetic delegations (the cluster's own zone has 300).
const SIGNED_DOMAINS: usize = 200;
const ZONES: [&str; 2] = [ZONE, SIGNED];
/// The satellite's catalog zone, and the zone the store gains at the end.
const CATALOG: &str = "catalog.invalid";
const LATE_ZONE: &str = "late";
/// The secondaries configured by the catalog.
const CONSUMERS: [Kind; 2] = [Kind::Knot, Kind::Bind];

/// The key every secondary shares with the satellite (base64 of `xfr-cluster-test-secret!`).
const KEY: TsigKey<'static> = TsigKey {
    name: "k1",
    secret: "eGZyLWNsdXN0ZXItdGVzdC1zZWNyZXQh",
};
/// The same key name with another secret (base64 of `not-the-satellites-secret`).
const WRONG_KEY: TsigKey<'static> = TsigKey {
    name: "k1",
    secret: "bm90LXRoZS1zYXRlbGxpdGVzLXNlY3JldA==",
};

/// Phases of changes, each followed by a checkpoint; changes per second; phase length.
const PHASES: u32 = 3;
const RATE: u32 = 30;
const PHASE: Duration = Duration::from_secs(6);
/// How long the satellite may take to publish the store's serial, and a secondary to reach
/// the satellite's.
const CATCH_UP: Duration = Duration::from_secs(30);

/// The store's serial of `zone`, as a SOA serial (its low 32 bits).
async fn store_serial(c: &ProcessCluster, zone: &str) -> u32 {
    let serial = c
        .store
        .zone_serial(&Name::from_ascii(zone).unwrap())
        .await
        .unwrap()
        .expect("the zone exists");
    serial as u32
}

/// Waits until `what` answers `want` for `zone`; the failure names the server and both serials.
fn wait_serial(
    who: &str,
    zone: &str,
    want: u32,
    serial: impl Fn() -> Option<u32>,
    log: impl Fn() -> String,
) {
    let started = Instant::now();
    loop {
        let got = serial();
        if got == Some(want) {
            return;
        }
        assert!(
            started.elapsed() < CATCH_UP,
            "{who} answers serial {got:?} for {zone} after {CATCH_UP:?}, not the {want} it should \
             follow\n{who}'s log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines of `a` missing from `b` (both sorted), the first few, for a failure message.
fn missing_from(a: &[String], b: &[String]) -> Vec<String> {
    a.iter()
        .filter(|l| b.binary_search(l).is_err())
        .take(8)
        .cloned()
        .collect()
}

/// A checkpoint: the satellite publishes the store's serial of each zone, every secondary
/// reaches it, and each secondary's whole zone equals the satellite's. Returns the serials.
async fn checkpoint(
    c: &ProcessCluster,
    sat: SocketAddr,
    followers: &[Secondary],
    label: &str,
) -> Vec<u32> {
    let mut serials = Vec::new();
    for zone in ZONES {
        let want = store_serial(c, zone).await;
        wait_serial(
            "the satellite",
            zone,
            want,
            || c.zone_soa_serial("sat1", zone),
            || c.satellite_log("sat1"),
        );
        for s in followers {
            wait_serial(
                &format!("{:?}", s.kind),
                zone,
                want,
                || s.serial(zone),
                || s.log(),
            );
        }
        let ours = secondaries::axfr(sat, zone, Some(KEY));
        // owner TTL class type data
        let count = |rtype: &str| {
            ours.iter()
                .filter(|l| l.split(' ').nth(3) == Some(rtype))
                .count()
        };
        // kdig prints the SOA that opens the transfer and the one that closes it.
        assert_eq!(
            count("SOA"),
            2,
            "{label}: the satellite's AXFR of {zone}: {ours:#?}"
        );
        for s in followers {
            let theirs = secondaries::axfr(s.addr, zone, None);
            assert!(
                theirs == ours,
                "{label}: {:?}'s {zone} at serial {want} is not the satellite's: {} records \
                 against {}; only the secondary's: {:#?}; only the satellite's: {:#?}",
                s.kind,
                theirs.len(),
                ours.len(),
                missing_from(&theirs, &ours),
                missing_from(&ours, &theirs),
            );
        }
        if zone == SIGNED {
            for rtype in ["RRSIG", "NSEC3", "DNSKEY", "NSEC3PARAM", "DS"] {
                assert!(count(rtype) > 0, "{label}: no {rtype} in {zone}");
            }
        } else {
            assert_eq!(count("RRSIG"), 0, "{zone} is unsigned");
        }
        eprintln!(
            "{label}: {zone} serial {want}, {} records on the satellite and {} secondaries",
            ours.len(),
            followers.len()
        );
        serials.push(want);
    }
    serials
}

/// The registry writes of the test, in a fixed cycle over both zones.
struct Writer {
    next: usize,
    /// Domains this writer added and has not deleted, per zone, oldest first.
    live: [VecDeque<String>; 2],
}

impl Writer {
    /// One write through the store API.
    async fn write(&mut self, c: &ProcessCluster) {
        let i = self.next;
        self.next += 1;
        let z = i % 2;
        let zone = ZONES[z];
        let live = &mut self.live[z];
        let name = |s: &str| Name::from_ascii(s).unwrap();
        let out_of_zone = |k: usize| NsSpec {
            name: name(&format!("ns{}.dns-host{}.net", k % 3, k % 7)),
            addresses: vec![],
        };
        match (i / 2) % 4 {
            // A new domain; every third one with an in-bailiwick nameserver and its glue.
            0 => {
                let domain = format!("xfr{i}.{zone}");
                let ns = if i.is_multiple_of(3) {
                    NsSpec {
                        name: name(&format!("ns1.{domain}")),
                        addresses: vec![format!("192.0.2.{}", i % 250 + 1).parse().unwrap()],
                    }
                } else {
                    out_of_zone(i)
                };
                c.store
                    .add_domain(&NewDomain {
                        name: name(&domain),
                        registrar: "FLT".into(),
                        registrant: None,
                        admin: None,
                        tech: None,
                        billing: None,
                        expires: Timestamp(2_000_000_000),
                        statuses: vec![],
                        nameservers: vec![ns],
                        ds: vec![],
                    })
                    .await
                    .unwrap();
                live.push_back(domain);
            }
            // The newest domain's NS changed.
            1 => {
                let domain = live.back().expect("added just before");
                c.store
                    .set_nameservers(&name(domain), &[out_of_zone(i), out_of_zone(i + 1)])
                    .await
                    .unwrap();
            }
            // A DS added to the newest domain.
            2 => {
                let domain = live.back().expect("added just before");
                c.store
                    .set_ds(
                        &name(domain),
                        &[Ds {
                            key_tag: (i % 65_536) as u16,
                            algorithm: 13,
                            digest_type: 2,
                            digest: vec![(i % 256) as u8; 32],
                        }],
                    )
                    .await
                    .unwrap();
            }
            // The oldest domain deleted, once a few are there.
            _ => {
                if live.len() > 3 {
                    let domain = live.pop_front().unwrap();
                    c.store.delete_domain(&name(&domain)).await.unwrap();
                } else {
                    let domain = live.front().unwrap();
                    c.store.set_ds(&name(domain), &[]).await.unwrap();
                }
            }
        }
    }
}

/// How many lines of `log` contain every one of `parts`.
fn lines_with(log: &str, parts: &[&str]) -> usize {
    log.lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .count()
}

/// A secondary's log says: for `zone`, one full transfer (the first), then only incremental
/// ones (at least one). Returns the count of incremental ones.
///
/// NSD too, with no allowance: `tests/secondaries.rs` runs it with `xfrd-reload-timeout: 0`,
/// which avoids NSD 4.6's "soa serial N update failed, restarting transfer" (several transfers
/// of a zone in one reload, fixed in NSD 4.12.0) and the full transfers it starts after it; a
/// restart line fails the test.
fn assert_ixfr_after_the_first(s: &Secondary, zone: &str) -> usize {
    let log = s.log();
    let (full, incremental) = match s.kind {
        // `[flt.] AXFR, incoming, remote 127.0.0.1@5300, finished, ...`; an IXFR answered
        // AXFR-style would say "receiving AXFR-style IXFR".
        Kind::Knot => {
            let apex = format!("[{zone}.]");
            assert_eq!(lines_with(&log, &[&apex, "AXFR-style"]), 0, "{log}");
            (
                lines_with(&log, &[&apex, "AXFR, incoming", "finished"]),
                lines_with(&log, &[&apex, "IXFR, incoming", "finished"]),
            )
        }
        // NSD 4.6 does not name the transfer's type: the size does. `zone flt. received update
        // to serial 6842 ... of 32967 bytes`: the first carries the whole zone, and so would
        // an IXFR answered AXFR-style; the differences of a few writes are a small part.
        Kind::Nsd => {
            let restart = format!("zone {zone}: soa serial");
            let restarts = lines_with(&log, &[&restart, "restarting transfer"]);
            assert_eq!(restarts, 0, "NSD, {zone}: restarted transfers:\n{log}");
            let update = format!("zone {zone}. received update to serial");
            let sizes: Vec<u64> = log
                .lines()
                .filter(|l| l.contains(&update))
                .filter_map(|l| l.rsplit_once(" of ")?.1.split(' ').next()?.parse().ok())
                .collect();
            let first = sizes.first().copied().unwrap_or_default();
            let incremental = sizes.iter().filter(|&&b| b * 4 < first).count();
            (sizes.len() - incremental, incremental)
        }
        // `transfer of 'flt/IN' from 127.0.0.1#5300: got nonincremental response` (debug 3).
        Kind::Bind => {
            let from = format!("transfer of '{zone}/IN' from");
            (
                lines_with(&log, &[&from, "got nonincremental response"]),
                lines_with(&log, &[&from, "got incremental response"]),
            )
        }
    };
    assert!(
        full == 1 && incremental > 0,
        "{:?}, {zone}: {full} full transfers and {incremental} incremental ones (want 1, then \
         only IXFR):\n{log}",
        s.kind
    );
    incremental
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    missing_xfr_secondaries,
    ignore = "knotd, nsd, named or kdig is not installed (apt-get install knot nsd bind9 knot-dnsutils)"
)]
async fn nsd_knot_and_bind_follow_a_satellite_by_ixfr_as_the_store_changes() {
    for kind in Kind::ALL {
        if program(kind.binary(), kind.package()).is_none() {
            return;
        }
    }
    if program("kdig", "knot-dnsutils").is_none() {
        return;
    }
    let started = Instant::now();
    // PostgreSQL when DATABASE_URL names one (always under CI), SQLite otherwise.
    let backend = match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Backend::Postgres(url),
        _ => Backend::Sqlite,
    };
    let mut c = ProcessCluster::create(backend).await;
    eprintln!("store: {}", c.url.split('?').next().unwrap_or_default());

    // The signed zone: a synthetic TLD with a policy and a KSK and ZSK in the key directory.
    let apex = Name::from_ascii(SIGNED).unwrap();
    c.store
        .load_synthetic(&SyntheticTld {
            zone: apex.clone(),
            domains: SIGNED_DOMAINS,
            seed: 14,
        })
        .await
        .unwrap();
    let policy = DnssecPolicy::tld_default(DnssecPolicy::window_for(
        DnssecPolicy::DEFAULT_REFRESH,
        Timestamp::now(),
    ));
    c.store.set_dnssec_policy(&apex, &policy).await.unwrap();
    let key_dir = c.dir.path().join("keys");
    let keys = FileKeyStore::open(&key_dir).unwrap();
    let alg = Algorithm::EcdsaP256Sha256;
    add_key(&c.store, &keys, &apex, KeyRole::Ksk, alg).await;
    add_key(&c.store, &keys, &apex, KeyRole::Zsk, alg).await;

    // sat1's transfer service. The limits are raised from their defaults because every
    // secondary here shares one address (127.0.0.1) and follows two zones changing several
    // times a second: 60 transfers a minute per address would refuse them. The window holds
    // every serial of the test, so an IXFR never falls back to AXFR-style because a loaded
    // machine let a secondary lag.
    let ports: Vec<u16> = Kind::ALL.iter().map(|_| free_port()).collect();
    let consumer_ports: Vec<u16> = CONSUMERS.iter().map(|_| free_port()).collect();
    let notify: Vec<String> = ports
        .iter()
        .chain(&consumer_ports)
        .map(|p| format!("{{ address = \"127.0.0.1:{p}\", key = \"{}\" }}", KEY.name))
        .collect();
    c.write_master_config(&format!(
        r#"[dnssec]
key_dir = {key_dir:?}

[satellites.sat1.xfr]
catalog_zone = "{CATALOG}"
acl = [{{ prefixes = ["127.0.0.1"], key = "{name}" }}]
notify = [{notify}]
ixfr_window = 5000
transfers_per_minute = 100000
max_transfers_per_address = 16
[[satellites.sat1.xfr.keys]]
name = "{name}"
algorithm = "hmac-sha256"
secret = "{secret}"
"#,
        notify = notify.join(", "),
        name = KEY.name,
        secret = KEY.secret,
    ));
    c.start_master();
    c.start_satellite("sat1");
    let sat = SocketAddr::from(([127, 0, 0, 1], c.ports("sat1").dns));
    for zone in ZONES {
        let want = store_serial(&c, zone).await;
        wait_serial(
            "the satellite",
            zone,
            want,
            || c.zone_soa_serial("sat1", zone),
            || c.satellite_log("sat1"),
        );
    }

    let dirs: Vec<tempfile::TempDir> = (0..=Kind::ALL.len() + CONSUMERS.len())
        .map(|_| tempfile::tempdir_in(c.dir.path()).unwrap())
        .collect();
    let followers: Vec<Secondary> = Kind::ALL
        .iter()
        .zip(&ports)
        .zip(&dirs)
        .map(|((&kind, &port), dir)| {
            Secondary::start(
                kind,
                dir.path(),
                &Setup {
                    port,
                    primary: sat,
                    key: KEY,
                    zones: &ZONES,
                    catalog: None,
                },
            )
        })
        .collect();
    // Not among the NOTIFY targets: it tries on its own, as a secondary does at start.
    let impostor = Secondary::start(
        Kind::Knot,
        dirs[Kind::ALL.len()].path(),
        &Setup {
            port: free_port(),
            primary: sat,
            key: WRONG_KEY,
            zones: &[ZONE],
            catalog: None,
        },
    );

    let consumers: Vec<Secondary> = CONSUMERS
        .iter()
        .zip(&consumer_ports)
        .zip(&dirs[Kind::ALL.len() + 1..])
        .map(|((&kind, &port), dir)| {
            Secondary::start(
                kind,
                dir.path(),
                &Setup {
                    port,
                    primary: sat,
                    key: KEY,
                    zones: &[],
                    catalog: Some(CATALOG),
                },
            )
        })
        .collect();

    let first = checkpoint(&c, sat, &followers, "after the first transfer").await;
    let mut writer = Writer {
        next: 0,
        live: [VecDeque::new(), VecDeque::new()],
    };
    let mut last = first.clone();
    for phase in 1..=PHASES {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (begun, before) = (Instant::now(), writer.next);
        while begun.elapsed() < PHASE {
            tick.tick().await;
            writer.write(&c).await;
        }
        let rate = (writer.next - before) as f64 / begun.elapsed().as_secs_f64();
        eprintln!(
            "phase {phase}: {} changes at {rate:.1}/s",
            writer.next - before
        );
        // A loaded machine slows the store's writes (19/s seen on PostgreSQL at a load of 18):
        // the bound only catches a writer that stalled.
        assert!(
            rate > f64::from(RATE) / 3.0,
            "the writes ran at {rate:.1}/s"
        );
        let serials = checkpoint(&c, sat, &followers, &format!("after phase {phase}")).await;
        for (zone, (now, then)) in ZONES.iter().zip(serials.iter().zip(&last)) {
            assert!(now > then, "{zone}: serial {now} after {then}");
        }
        last = serials;
    }

    // The catalog's consumers: both zones from the catalog, at the satellite's serials; then a
    // zone new in the store appears on them.
    for consumer in &consumers {
        for (zone, want) in ZONES.iter().zip(&last) {
            wait_serial(
                &format!("{:?} (catalog)", consumer.kind),
                zone,
                *want,
                || consumer.serial(zone),
                || consumer.log(),
            );
        }
    }
    let late = Name::from_ascii(LATE_ZONE).unwrap();
    c.store
        .add_zone(&NewZone {
            name: late.clone(),
            mname: Name::from_ascii("ns.elsewhere.example").unwrap(),
            rname: Name::from_ascii("hostmaster.elsewhere.example").unwrap(),
            refresh: 1800,
            retry: 900,
            expire: 604_800,
            minimum: 300,
            soa_ttl: 300,
            ns_ttl: 3600,
            ds_ttl: 3600,
            nameservers: vec![NsSpec {
                name: Name::from_ascii("ns.elsewhere.example").unwrap(),
                addresses: vec![],
            }],
        })
        .await
        .unwrap();
    let want = store_serial(&c, LATE_ZONE).await;
    wait_serial(
        "the satellite",
        LATE_ZONE,
        want,
        || c.zone_soa_serial("sat1", LATE_ZONE),
        || c.satellite_log("sat1"),
    );
    for consumer in &consumers {
        wait_serial(
            &format!("{:?} (catalog)", consumer.kind),
            LATE_ZONE,
            want,
            || consumer.serial(LATE_ZONE),
            || consumer.log(),
        );
        let (theirs, ours) = (
            secondaries::axfr(consumer.addr, LATE_ZONE, None),
            secondaries::axfr(sat, LATE_ZONE, Some(KEY)),
        );
        assert!(!ours.is_empty(), "the satellite's AXFR of {LATE_ZONE}");
        assert_eq!(
            theirs, ours,
            "{:?} (catalog): {LATE_ZONE} as the satellite sends it",
            consumer.kind
        );
    }
    // The followers configured by hand do not know the new zone: the catalog is what told
    // the consumers.
    assert_eq!(followers[0].serial(LATE_ZONE), None);
    eprintln!("catalog: {CONSUMERS:?} serve {ZONES:?} and then {LATE_ZONE} from it");

    for s in &followers {
        for zone in ZONES {
            let n = assert_ixfr_after_the_first(s, zone);
            eprintln!("{:?} {zone}: 1 AXFR, then {n} IXFR", s.kind);
        }
    }

    // The impostor: refused, never holding the zone; the satellite says why.
    assert_eq!(impostor.serial(ZONE), None, "{}", impostor.log());
    let log = c.satellite_log("sat1");
    assert!(
        log.contains("transfer request with a bad TSIG"),
        "the satellite logs the refusal:\n{log}"
    );
    let out = std::process::Command::new("kdig")
        .args([
            format!("@{}", sat.ip()),
            "-p".into(),
            sat.port().to_string(),
            "-y".into(),
            WRONG_KEY.dig_arg(),
            ZONE.into(),
            "AXFR".into(),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        // kdig names the TSIG error (the rcode is NOTAUTH, RFC 8945 §5.2.2).
        text.contains("BADSIG"),
        "kdig with the wrong secret: {text}"
    );
    assert!(
        !text.contains("\tNS\t"),
        "no records for the wrong key: {text}"
    );
    // `[flt.] refresh, remote primary, address 127.0.0.1@…, failed (failed to verify TSIG)`
    let log = impostor.log();
    let refresh = format!("[{ZONE}.] refresh");
    assert!(
        lines_with(&log, &[&refresh, "failed to verify TSIG"]) > 0
            && lines_with(&log, &["incoming", "finished"]) == 0,
        "the impostor tried and was refused every time:\n{log}"
    );
    eprintln!("whole test: {:?}", started.elapsed());
}
