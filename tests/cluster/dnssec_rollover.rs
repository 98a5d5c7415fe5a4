//! Automatic key rollovers through a validating resolver (issue 13): a master process signs
//! the zone and runs the signing duty, a satellite process serves it, and Unbound — caching as
//! a deployed resolver does, anchored at the zone's DS as its parent would publish it — is
//! asked for the apex SOA and DNSKEY every 50 ms throughout. On a compressed timetable (every
//! TTL 2 s, propagation delay 1 s, the duty's period 300 ms):
//! - a ZSK rollover on its own schedule (lifetime 12 s): successor published, active with the
//!   old one retired, the old one removed — by the duty, nobody acting;
//! - a KSK double-DS rollover: `orrery-admin dnssec rollover --ksk`, the duty activates the new
//!   KSK; the test plays the parent and adds its DS to Unbound's trust anchors; `orrery-admin
//!   dnssec ds-seen`; the duty retires and removes the old KSK; the parent drops the old DS.
//!
//! Every answer must be validated (AD) and none SERVFAIL.
//!
//! The parent step: the DS set Unbound trusts is a trust-anchor file the test rewrites, re-read
//! with `unbound-control reload_keep_cache`, which keeps what Unbound has cached of the zone (a
//! restart would empty the caches and hide exactly the stale DNSKEY and RRSIG sets a rollover
//! must survive). What it does not model is a resolver still holding the parent's previous DS
//! RRset for up to its TTL: Unbound switches DS sets at once. The schedule's wait for that
//! (`parent_ds_ttl` after `ds-seen`) is checked by the unit tests of `orrery_master::rollover`.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RData;
use orrery_proto::dnssec::{
    Algorithm, DnssecPolicy, KeyRole, KeyState, KeyTimings, ZoneDnssec, ZoneKey,
};
use orrery_proto::{Name, Timestamp};
use orrery_signer::FileKeyStore;
use orrery_signer::key::dnskey_rdata;

use crate::dnssec_serve::add_key;
use crate::harness::program;
use crate::processes::{Backend, ProcessCluster, ZONE, binary};
use crate::unbound::{Unbound, UnboundSetup, ask};

/// The DS of a key, in master-file form, as the parent publishes it.
fn ds_line(k: &ZoneKey) -> String {
    let apex = Name::from_ascii(ZONE).unwrap();
    let ds = orrery_signer::ds_for(&apex, &dnskey_rdata(k.flags(), k.algorithm, &k.public_key));
    format!(
        "{ZONE}. 2 IN DS {} {} {} {}",
        ds.key_tag,
        ds.algorithm,
        ds.digest_type,
        ds.digest_hex()
    )
}

/// What the poller saw.
#[derive(Debug, Default)]
struct Polled {
    answers: usize,
    /// (seconds since the start, question, rcode, AD) of every answer that was not NOERROR
    /// with AD, or no answer at all.
    bad: Vec<(f64, &'static str, Option<ResponseCode>, bool)>,
}

/// Asks `resolver` for the apex SOA and DNSKEY every 50 ms until `stop`.
fn poll(resolver: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Polled> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut polled = Polled::default();
        while !stop.load(Ordering::Relaxed) {
            for (what, qtype) in [("SOA", 6), ("DNSKEY", 48)] {
                match ask(resolver, ZONE, qtype) {
                    Some(m) => {
                        polled.answers += 1;
                        if m.response_code != ResponseCode::NoError || !m.authentic_data {
                            polled.bad.push((
                                start.elapsed().as_secs_f64(),
                                what,
                                Some(m.response_code),
                                m.authentic_data,
                            ));
                        }
                    }
                    None => polled
                        .bad
                        .push((start.elapsed().as_secs_f64(), what, None, false)),
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        polled
    })
}

/// The key tags and flags of the DNSKEY RRset as the resolver answers it (validated).
fn resolver_dnskeys(resolver: SocketAddr) -> Vec<(u16, u16)> {
    let m = ask(resolver, ZONE, 48).expect("an answer from unbound");
    assert!(m.authentic_data, "DNSKEY not validated: {m:?}");
    let mut keys: Vec<(u16, u16)> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            // hickory-proto without its DNSSEC feature: the RDATA's octets.
            RData::Unknown { rdata, .. } if u16::from(r.record_type()) == 48 => {
                let rd = &rdata.anything;
                Some((
                    orrery_signer::key_tag(rd),
                    u16::from_be_bytes([rd[0], rd[1]]),
                ))
            }
            _ => None,
        })
        .collect();
    keys.sort();
    keys
}

async fn zone_keys(cluster: &ProcessCluster) -> ZoneDnssec {
    cluster
        .store
        .dnssec(&Name::from_ascii(ZONE).unwrap())
        .await
        .unwrap()
        .unwrap()
}

/// Waits (up to `within`) until the zone's keys satisfy `done`.
async fn wait_keys(
    cluster: &ProcessCluster,
    within: Duration,
    what: &str,
    done: impl Fn(&[ZoneKey]) -> bool,
) -> Vec<ZoneKey> {
    let deadline = Instant::now() + within;
    loop {
        let keys = zone_keys(cluster).await.keys;
        if done(&keys) {
            return keys;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: keys still {:?}\n{}",
            keys.iter()
                .map(|k| (k.role, k.key_tag, k.state))
                .collect::<Vec<_>>(),
            cluster.master_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn admin(cluster: &ProcessCluster, args: &[&str]) -> String {
    let out = Command::new(binary("orrery-admin"))
        .arg("--db")
        .arg(&cluster.url)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "orrery-admin {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    missing_unbound,
    ignore = "Unbound is not installed (apt-get install unbound)"
)]
async fn unbound_validates_throughout_a_zsk_and_a_ksk_rollover() {
    let (Some(unbound), Some(control)) = (
        program("unbound", "unbound"),
        program("unbound-control", "unbound"),
    ) else {
        return;
    };
    let mut cluster = ProcessCluster::create(Backend::Sqlite).await;
    let apex = Name::from_ascii(ZONE).unwrap();
    let alg = Algorithm::EcdsaP256Sha256;
    // The compressed timetable: every TTL of the zone 2 s, so Unbound's caches turn over
    // within the test and the schedule's waits are seconds.
    let n = cluster
        .sql(&format!(
            "UPDATE zone SET soa_ttl = 2, ns_ttl = 2, ds_ttl = 2, soa_minimum = 2 WHERE name = '{ZONE}'"
        ))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let mut policy = DnssecPolicy::tld_default(DnssecPolicy::window_for(
        DnssecPolicy::DEFAULT_REFRESH,
        Timestamp::now(),
    ));
    policy.dnskey_ttl = 2;
    policy.timings = KeyTimings {
        zsk_lifetime: Some(12),
        ksk_lifetime: None,
        propagation: 1,
        parent_ds_ttl: 2,
    };
    cluster
        .store
        .set_dnssec_policy(&apex, &policy)
        .await
        .unwrap();
    let key_dir = cluster.dir.path().join("keys");
    let keys = FileKeyStore::open(&key_dir).unwrap();
    add_key(&cluster.store, &keys, &apex, KeyRole::Ksk, alg).await;
    add_key(&cluster.store, &keys, &apex, KeyRole::Zsk, alg).await;
    let first = zone_keys(&cluster).await.keys;
    let ksk1 = first
        .iter()
        .find(|k| k.role == KeyRole::Ksk)
        .unwrap()
        .clone();
    let zsk1 = first
        .iter()
        .find(|k| k.role == KeyRole::Zsk)
        .unwrap()
        .clone();
    cluster.write_master_config(&format!(
        "[dnssec]\nkey_dir = {key_dir:?}\nrefresh_check_ms = 300\n"
    ));
    cluster.start_master();
    cluster.start_satellite("sat1");
    let sat = SocketAddr::from(([127, 0, 0, 1], cluster.ports("sat1").dns));
    let resolver = Unbound::start_with(
        &unbound,
        UnboundSetup {
            zone: ZONE,
            sat,
            anchors: vec![ds_line(&ksk1)],
            cache: true,
            control: Some(control),
        },
    );
    let mut want = vec![(ksk1.key_tag, 257), (zsk1.key_tag, 256)];
    want.sort();
    assert_eq!(resolver_dnskeys(resolver.addr), want);
    let stop = Arc::new(AtomicBool::new(false));
    let poller = poll(resolver.addr, stop.clone());

    // The ZSK on its schedule: a successor Ipub (3 s) before the 12 s lifetime ends, active
    // at its end with the first retired, which leaves TTLsig + Dprp (3 s) later.
    let keys = wait_keys(&cluster, Duration::from_secs(60), "ZSK rollover", |ks| {
        !ks.iter().any(|k| k.locator == zsk1.locator)
            && ks
                .iter()
                .any(|k| k.role == KeyRole::Zsk && k.state == KeyState::Active)
    })
    .await;
    let zsk2 = keys
        .iter()
        .find(|k| k.role == KeyRole::Zsk && k.state == KeyState::Active)
        .unwrap()
        .clone();
    assert!(
        zsk2.activated.unwrap().0 - zsk2.published.unwrap().0 >= 3,
        "{zsk2:?}"
    );
    let log = cluster.master_log();
    for step in ["Publish { role: Zsk }", "Activate", "Remove"] {
        assert!(log.contains(step), "the duty logged no {step}:\n{log}");
    }
    // Unbound's view follows once its cached DNSKEY RRset expires.
    let deadline = Instant::now() + Duration::from_secs(20);
    while resolver_dnskeys(resolver.addr)
        .iter()
        .any(|(tag, _)| *tag == zsk1.key_tag)
    {
        assert!(
            Instant::now() < deadline,
            "the old ZSK stays in Unbound's view"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The KSK by double-DS: started by the operator, activated by the duty.
    let said = admin(
        &cluster,
        &[
            "dnssec",
            "rollover",
            ZONE,
            "--ksk",
            "--key-dir",
            key_dir.to_str().unwrap(),
        ],
    );
    assert!(said.contains("ksk key"), "{said}");
    let keys = wait_keys(&cluster, Duration::from_secs(30), "new KSK active", |ks| {
        ks.iter()
            .filter(|k| k.role == KeyRole::Ksk && k.state == KeyState::Active)
            .count()
            == 2
    })
    .await;
    let ksk2 = keys
        .iter()
        .find(|k| k.role == KeyRole::Ksk && k.locator != ksk1.locator)
        .unwrap()
        .clone();
    let ds = admin(&cluster, &["dnssec", "ds", ZONE]);
    for k in [&ksk1, &ksk2] {
        assert!(ds.contains(&format!("DS {} ", k.key_tag)), "{ds}");
    }
    // The parent publishes both DS; the operator records it.
    resolver.set_anchors(&[ds_line(&ksk1), ds_line(&ksk2)]);
    admin(
        &cluster,
        &["dnssec", "ds-seen", ZONE, "--key", &ksk2.locator],
    );
    // Retired TTLds + Dprp (3 s) later, removed TTLkey + Dprp (3 s) after that.
    wait_keys(&cluster, Duration::from_secs(30), "old KSK removed", |ks| {
        !ks.iter().any(|k| k.locator == ksk1.locator)
    })
    .await;
    // The parent drops the old DS. The new KSK alone is the chain of trust from now on.
    let deadline = Instant::now() + Duration::from_secs(20);
    while resolver_dnskeys(resolver.addr)
        .iter()
        .any(|(tag, _)| *tag == ksk1.key_tag)
    {
        assert!(
            Instant::now() < deadline,
            "the old KSK stays in Unbound's view"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    resolver.set_anchors(&[ds_line(&ksk2)]);
    // Several TTLs with the new anchor alone (and the ZSK still rolling every 12 s).
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        resolver_dnskeys(resolver.addr).contains(&(ksk2.key_tag, 257)),
        "the new KSK is in the validated DNSKEY RRset"
    );
    stop.store(true, Ordering::Relaxed);
    let polled = poller.join().unwrap();
    assert!(polled.answers > 200, "{polled:?}");
    assert!(
        polled.bad.is_empty(),
        "{} of {} answers not validated (seconds, question, rcode, AD): {:?}\n{}",
        polled.bad.len(),
        polled.answers,
        polled.bad,
        cluster.master_log()
    );
    eprintln!(
        "rollovers: {} answers from Unbound, every one validated",
        polled.answers
    );
}
