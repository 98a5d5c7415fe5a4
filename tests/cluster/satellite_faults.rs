//! Faults on the satellite's side of the link (issue 10): a master restart costs about a
//! second, a crash never takes a satellite back in time, and a TLS failure says what failed.
//!
//! Reuses the cluster of [`crate::link`]: a master over a SQLite store and satellites in this
//! process, every wait with a deadline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use orrery_master::certs::{Role, create_ca, issue};
use orrery_proto::backoff::Backoff;
use orrery_proto::link::client::{DialConfig, Dialer, Failure, LinkError};
use orrery_proto::link::pb;
use orrery_proto::link::tls::{SatelliteId, TlsMaterial, client_config};
use orrery_satellite::snapshot::read_snapshot;

use crate::link::{Cluster, PATIENCE, Seen, TestSatellite, add_domain, ask, domain, wait_for};

/// How soon after a master is back a satellite must be connected and answering its changes.
const BACK_WITHIN: Duration = Duration::from_secs(2);

/// A master stopped for 8 s, with a change made meanwhile, then started again: the satellite
/// (with the default reconnection policy, cap 30 s) is connected again and answers the change
/// within 2 s of the master being back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn satellite_is_back_within_two_seconds_of_its_master() {
    let mut cluster = Cluster::start(None).await;
    let store = cluster.store.clone();
    let mut config = cluster.link_config(cluster.satellite_tls("sat0"), cluster.state_path("sat0"));
    config.backoff = Backoff::default();
    let sat = TestSatellite::start(config);
    let addr = sat.serving().await;
    sat.applied(store.head().await.unwrap()).await;
    // A healthy session: long enough to count as one.
    tokio::time::sleep(Backoff::default().stable_session + Duration::from_millis(500)).await;
    assert!(sat.status().connected);

    cluster.stop_master().await;
    let mut rx = sat.satellite.as_ref().unwrap().status();
    tokio::time::timeout(PATIENCE, rx.wait_for(|s| !s.connected))
        .await
        .expect("the satellite did not notice the master stopped")
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    add_domain(&store, "during-outage").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(ask(addr, &domain("during-outage")).await, Seen::Absent);

    cluster.start_master().await;
    let back = Instant::now();
    tokio::time::timeout(BACK_WITHIN, rx.wait_for(|s| s.connected))
        .await
        .unwrap_or_else(|_| panic!("not connected within {BACK_WITHIN:?} of the master's return"))
        .unwrap();
    let connected = back.elapsed();
    assert!(
        wait_for(
            addr,
            &domain("during-outage"),
            Seen::Delegated,
            back + BACK_WITHIN
        )
        .await,
        "the change made during the outage was not answered within {BACK_WITHIN:?}"
    );
    eprintln!(
        "master back → connected {connected:?}, change answered {:?}",
        back.elapsed()
    );
    sat.stop().await;
}

/// `path` with `suffix` added to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A satellite "killed" right after a batch became visible: its files are copied as they are
/// on disk at that moment (the state file is not due for a rewrite), and a satellite started
/// from the copy with the master down serves that batch — not the older state file alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn satellite_crash_right_after_a_batch_never_goes_back_in_time() {
    let mut cluster = Cluster::start(None).await;
    let store = cluster.store.clone();
    let state = cluster.state_path("sat0");
    let mut config = cluster.link_config(cluster.satellite_tls("sat0"), state.clone());
    // The state file is written after the first snapshot and then not again during the test.
    config.persist_interval = Duration::from_secs(3600);
    let sat = TestSatellite::start(config);
    let addr = sat.serving().await;
    sat.applied(store.head().await.unwrap()).await;
    // Let the first state write happen, then make changes that only the batch log holds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for label in ["crash1", "crash2"] {
        add_domain(&store, label).await;
        assert!(
            wait_for(
                addr,
                &domain(label),
                Seen::Delegated,
                Instant::now() + PATIENCE
            )
            .await
        );
    }
    // The crash image: the files as they are now.
    let served = sat.status().applied_serial;
    let image = cluster.state_path("sat0-crashed");
    for suffix in ["", ".settings", ".log"] {
        std::fs::copy(beside(&state, suffix), beside(&image, suffix)).unwrap();
    }
    assert!(
        read_snapshot(&image).unwrap().serial < served,
        "the state file alone already held the batches: the test proves nothing"
    );
    sat.stop().await;
    cluster.stop_master().await;

    let restarted =
        TestSatellite::start(cluster.link_config(cluster.satellite_tls("sat0"), image.clone()));
    let addr = restarted.serving().await;
    assert!(
        restarted.status().applied_serial >= served,
        "restarted at {} after serving {served}",
        restarted.status().applied_serial
    );
    assert_eq!(ask(addr, &domain("crash1")).await, Seen::Delegated);
    assert_eq!(ask(addr, &domain("crash2")).await, Seen::Delegated);
    restarted.stop().await;
}

/// A satellite that trusts another CA than the master's: the error names the master's
/// certificate problem, not "transport error".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_certificate_from_another_ca_is_named() {
    let cluster = Cluster::start(None).await;
    let other_ca = create_ca(30).unwrap();
    let sat = issue(
        &cluster.ca.key_pem,
        &Role::Satellite(SatelliteId::new("sat0").unwrap()),
        30,
    )
    .unwrap();
    let trusting_other =
        TlsMaterial::from_pem(other_ca.cert_pem, sat.cert_pem, sat.key_pem).unwrap();
    let mut dial = DialConfig::new(
        vec![cluster.addr.to_string()],
        client_config(&trusting_other),
    );
    dial.ca = Some("/etc/orrery/ca.pem".into());
    let Err(err) = Dialer::new(dial)
        .connect_to(&cluster.addr.to_string())
        .await
    else {
        panic!("a master certificate from another CA was accepted");
    };
    assert!(
        matches!(
            &err,
            LinkError::Connect {
                failure: Failure::MasterCertificate(_),
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("the master's certificate is not issued by the CA in /etc/orrery/ca.pem"),
        "{text}"
    );
}

/// A satellite whose own certificate comes from another CA: the master's refusal is named
/// when its TLS alert is read, else the connection is said to be closed (the master closes
/// right after the alert, and a write may fail first) — never a bare "transport error".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_satellite_certificate_from_another_ca_is_named() {
    let cluster = Cluster::start(None).await;
    let other_ca = create_ca(30).unwrap();
    let rogue = issue(
        &other_ca.key_pem,
        &Role::Satellite(SatelliteId::new("sat0").unwrap()),
        30,
    )
    .unwrap();
    let tls =
        TlsMaterial::from_pem(cluster.ca.cert_pem.clone(), rogue.cert_pem, rogue.key_pem).unwrap();
    let dial = DialConfig::new(vec![cluster.addr.to_string()], client_config(&tls));
    let err = match Dialer::new(dial)
        .connect_to(&cluster.addr.to_string())
        .await
    {
        Err(e) => e,
        Ok(mut client) => match client.boot(pb::BootRequest::default()).await {
            Err(status) => LinkError::from(status),
            Ok(_) => panic!("a satellite certificate from another CA was accepted"),
        },
    };
    let failure = match &err {
        LinkError::Connect { failure, .. } | LinkError::Transport { failure, .. } => failure,
        other => panic!("not a transport failure: {other:?}"),
    };
    assert!(
        matches!(failure, Failure::CertificateRefused(_) | Failure::Closed(_)),
        "{err}"
    );
}
