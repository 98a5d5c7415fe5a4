//! One SOA serial rule (docs/ARCHITECTURE.md, "SOA serials"): for one store state, the zone file
//! the generator writes and the SOA a satellite answers carry the same serial for every zone;
//! a change outside a zone (a contact) moves neither, a change in one zone moves only that one.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::rr::{RData, RecordType};
use orrery_generator::{Outcome, generate_zone, soa_serial};
use orrery_proto::{Contact, Timestamp};
use orrery_store::Store;
use orrery_store::write::{NewZone, NsSpec};

use crate::harness::{PgDatabase, postgres_url, query};
use crate::link::{Cluster, PATIENCE, TLD, TestSatellite, add_domain, n};

/// The second zone: the first is the cluster's synthetic TLD.
const OTHER: &str = "zs2";

/// The SOA serial a satellite answers for `apex`.
async fn satellite_soa(addr: SocketAddr, apex: &str) -> u32 {
    let qname = format!("{apex}.");
    let m = tokio::task::spawn_blocking(move || query(addr, &qname, RecordType::SOA))
        .await
        .unwrap();
    m.answers
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no SOA for {apex} in {m:?}"))
}

/// The SOA serial in the zone file the generator leaves in `dir` for `apex` (writing it, or
/// finding it unchanged), and whether it was rewritten.
async fn generated_soa(store: &Store, apex: &str, dir: &Path) -> (u32, bool) {
    let outcome = generate_zone(store, &n(apex), dir, false).await.unwrap();
    let (path, written, serial) = match outcome {
        Outcome::Written { path, serial, .. } => (path, true, serial),
        Outcome::Unchanged { path, zone_serial } => (path, false, zone_serial),
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let soa: u32 = text
        .lines()
        .find(|l| l.contains("\tIN\tSOA\t"))
        .and_then(|l| l.split_whitespace().nth(6))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no SOA serial in {}", path.display()));
    assert_eq!(
        soa,
        soa_serial(serial),
        "the file's SOA is the outcome's serial"
    );
    (soa, written)
}

/// Waits until the satellite's SOA for `apex` is `want` (a batch is applied a little after the
/// commit); fails with what it last saw.
async fn satellite_reaches(addr: SocketAddr, apex: &str, want: u32) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = satellite_soa(addr, apex).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{apex}: satellite SOA {got}, generator {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn contact(handle: &str) -> Contact {
    Contact {
        handle: handle.into(),
        name: "Serial Watcher".into(),
        organisation: None,
        street: vec![],
        city: "Bergen".into(),
        province: None,
        postcode: None,
        country: "NO".into(),
        email: "watch@example.org".into(),
        voice: None,
        fax: None,
        disclose: false,
        created: Timestamp(0),
        updated: Timestamp(0),
    }
}

async fn generator_and_satellite_agree(url: Option<String>) {
    let cluster = Cluster::start(url).await;
    let store = &cluster.store;
    store
        .add_zone(&NewZone {
            name: n(OTHER),
            mname: n(&format!("a.nic.{OTHER}")),
            rname: n(&format!("hostmaster.nic.{OTHER}")),
            refresh: 1800,
            retry: 900,
            expire: 2_419_200,
            minimum: 3600,
            soa_ttl: 3600,
            ns_ttl: 172_800,
            ds_ttl: 86_400,
            nameservers: vec![NsSpec {
                name: n(&format!("a.nic.{OTHER}")),
                addresses: vec!["192.0.2.54".parse().unwrap()],
            }],
        })
        .await
        .unwrap();
    let sat = TestSatellite::start(
        cluster.link_config(cluster.satellite_tls("sat0"), cluster.state_path("sat0")),
    );
    let addr = sat.serving().await;
    sat.applied(store.head().await.unwrap()).await;
    let dir = tempfile::tempdir().unwrap();

    // One state: the same serial from both, for every zone; the two zones' serials differ
    // (each is its own last change), neither is simply the journal head.
    let mut serials = Vec::new();
    for apex in [TLD, OTHER] {
        let (file, written) = generated_soa(store, apex, dir.path()).await;
        assert!(written);
        assert_eq!(satellite_soa(addr, apex).await, file, "{apex}");
        serials.push(file);
    }
    assert_ne!(serials[0], serials[1]);

    // A contact: the journal moves, the satellite applies it, and no zone's serial moves; the
    // generator leaves both files alone.
    store.add_contact(&contact("SOA1"), None).await.unwrap();
    let head = store.head().await.unwrap();
    sat.applied(head).await;
    for (apex, &before) in [TLD, OTHER].iter().zip(&serials) {
        assert_eq!(
            satellite_soa(addr, apex).await,
            before,
            "{apex} after a contact"
        );
        assert_eq!(
            generated_soa(store, apex, dir.path()).await,
            (before, false),
            "{apex} after a contact"
        );
    }
    assert_ne!(u64::from(serials[0]), head as u64 & 0xffff_ffff);

    // A domain in the TLD: its serial moves, on both sides alike; the other zone's does not.
    add_domain(store, "soa-serial").await;
    sat.applied(store.head().await.unwrap()).await;
    let (moved, written) = generated_soa(store, TLD, dir.path()).await;
    assert!(written && moved > serials[0], "{moved} {}", serials[0]);
    satellite_reaches(addr, TLD, moved).await;
    assert_eq!(
        generated_soa(store, OTHER, dir.path()).await,
        (serials[1], false)
    );
    assert_eq!(satellite_soa(addr, OTHER).await, serials[1]);

    // A restarted satellite (from its state file, master still up) serves the same serials.
    sat.stop().await;
    let sat = TestSatellite::start(
        cluster.link_config(cluster.satellite_tls("sat0"), cluster.state_path("sat0")),
    );
    let addr = sat.serving().await;
    satellite_reaches(addr, TLD, moved).await;
    assert_eq!(satellite_soa(addr, OTHER).await, serials[1]);
    sat.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_generator_and_satellite_serve_one_soa_serial() {
    generator_and_satellite_agree(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    missing_database_url,
    ignore = "DATABASE_URL is not set to a PostgreSQL URL"
)]
async fn postgres_generator_and_satellite_serve_one_soa_serial() {
    let Some(server) = postgres_url() else { return };
    let db = PgDatabase::create(&server).await;
    generator_and_satellite_agree(Some(db.url.clone())).await;
}
