//! Whois and RDAP over the whole path: a write in the SQL store → the master → the change
//! stream → the satellite's directory → a Whois answer on port 43's loopback stand-in and an
//! RDAP answer over HTTP, within a second (issue 5), on SQLite and PostgreSQL.
//!
//! Reuses the cluster of [`crate::link`] (its satellites serve Whois and RDAP on
//! `127.0.0.1:0` with a generous rate limit). The clients here are minimal on purpose: one
//! query line, or one `Connection: close` GET; the real `whois` client and the protocol
//! details are tested in the satellite's own tests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use orrery_proto::{Contact, EppStatus, Timestamp};
use orrery_store::Store;
use orrery_store::write::{DomainUpdate, NewDomain};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::postgres_url;
use crate::link::{Cluster, PROPAGATION, TestSatellite, domain, n, new_domain};

/// One Whois query (RFC 3912): the line, then everything up to the server's close.
async fn whois(addr: SocketAddr, query: &str) -> String {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(format!("{query}\r\n").as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .expect("whois server did not answer within 2 s")
        .expect("whois exchange")
}

/// One RDAP GET: the status code and the body.
async fn rdap(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/rdap+json\r\nConnection: close\r\n\r\n"
        );
        s.write_all(request.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&out).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .expect("RDAP server did not answer within 2 s")
        .expect("RDAP exchange");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, body.to_owned())
}

/// Polls Whois and RDAP until both satisfy their check, until `deadline`.
async fn wait_until(
    whois_addr: SocketAddr,
    rdap_addr: SocketAddr,
    query: &str,
    path: &str,
    deadline: Instant,
    whois_ok: impl Fn(&str) -> bool,
    rdap_ok: impl Fn(u16, &serde_json::Value) -> bool,
) -> (String, serde_json::Value) {
    loop {
        let text = whois(whois_addr, query).await;
        let (code, body) = rdap(rdap_addr, path).await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if whois_ok(&text) && rdap_ok(code, &json) {
            return (text, json);
        }
        assert!(
            Instant::now() < deadline,
            "not seen in time; last Whois answer:\n{text}\nlast RDAP answer ({code}):\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn contact(handle: &str, name: &str, disclose: bool) -> Contact {
    Contact {
        handle: handle.into(),
        name: name.into(),
        organisation: None,
        street: vec!["1 Rue de la Paix".into()],
        city: "Paris".into(),
        province: None,
        postcode: Some("75002".into()),
        country: "FR".into(),
        email: format!("{}@example.net", handle.to_lowercase()),
        voice: Some("+33.140000000".into()),
        fax: None,
        disclose,
        created: Timestamp(1_700_000_000),
        updated: Timestamp(1_700_000_000),
    }
}

async fn add_domain(store: &Store, label: &str) {
    let domain = NewDomain {
        registrant: Some("PRIV1".into()),
        admin: Some("PUB1".into()),
        ..new_domain(label)
    };
    store.add_domain(&domain).await.unwrap();
}

/// Statuses of an RDAP object.
fn statuses(json: &serde_json::Value) -> Vec<String> {
    json["status"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn registration_data_follows_the_store(url: Option<String>) {
    let cluster = Cluster::start(url).await;
    let store = &cluster.store;
    store
        .add_contact(&contact("PRIV1", "Private Person", false), Some("LINK"))
        .await
        .unwrap();
    store
        .add_contact(&contact("PUB1", "Public Person", true), Some("LINK"))
        .await
        .unwrap();
    let sat = TestSatellite::start(
        cluster.link_config(cluster.satellite_tls("sat0"), cluster.state_path("sat0")),
    );
    let (whois_addr, rdap_addr) = sat.serving_rds().await;
    sat.applied(store.head().await.unwrap()).await;

    let name = domain("whoisfresh");
    let path = format!("/domain/{name}");
    assert!(whois(whois_addr, &name).await.contains("No match"));
    assert_eq!(rdap(rdap_addr, &path).await.0, 404);

    // Registered: Whois and RDAP show it within a second, the registrant redacted.
    add_domain(store, "whoisfresh").await;
    let committed = Instant::now();
    let (text, json) = wait_until(
        whois_addr,
        rdap_addr,
        &name,
        &path,
        committed + PROPAGATION,
        |t| t.contains("Domain Name: WHOISFRESH.LNK"),
        |code, _| code == 200,
    )
    .await;
    eprintln!("commit → Whois and RDAP answer: {:?}", committed.elapsed());
    assert!(text.contains("Registrar: Link test registrar"), "{text}");
    assert!(text.contains("REDACTED FOR PRIVACY"), "{text}");
    assert!(text.contains("Public Person"), "{text}");
    assert!(!text.contains("Private Person"), "{text}");
    assert!(!text.contains("priv1@example.net"), "{text}");
    assert!(text.contains("Name Server: NS1.WHOISFRESH.LNK"), "{text}");
    assert_eq!(json["objectClassName"], "domain");
    assert_eq!(json["ldhName"], name.as_str());
    assert!(json["redacted"].as_array().is_some_and(|r| !r.is_empty()));
    assert!(!json.to_string().contains("Private Person"));

    // On hold: both show the status within a second.
    store
        .update_domain(
            &n(&name),
            &DomainUpdate {
                add_statuses: vec![EppStatus::ClientHold],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let committed = Instant::now();
    wait_until(
        whois_addr,
        rdap_addr,
        &name,
        &path,
        committed + PROPAGATION,
        |t| t.contains("Domain Status: clientHold"),
        |_, j| statuses(j).iter().any(|s| s == "client hold"),
    )
    .await;

    // Deleted: gone from both within a second.
    store.delete_domain(&n(&name)).await.unwrap();
    let committed = Instant::now();
    wait_until(
        whois_addr,
        rdap_addr,
        &name,
        &path,
        committed + PROPAGATION,
        |t| t.contains("No match"),
        |code, j| code == 404 && j["errorCode"] == 404,
    )
    .await;

    // The check-ins carry the Whois and RDAP query counts.
    let sat0 = orrery_proto::link::tls::SatelliteId::new("sat0").unwrap();
    tokio::time::timeout(crate::link::PATIENCE, async {
        loop {
            let counted = cluster
                .master_satellites()
                .status(&sat0)
                .and_then(|s| s.statistics)
                .is_some_and(|st| st.whois_queries > 0 && st.rdap_queries > 0);
            if counted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("sat0 did not report its Whois/RDAP query counts");
    sat.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_registration_data_follows_the_store_within_a_second() {
    registration_data_follows_the_store(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    missing_database_url,
    ignore = "DATABASE_URL is not set to a PostgreSQL URL"
)]
async fn postgres_registration_data_follows_the_store_within_a_second() {
    let Some(server) = postgres_url() else { return };
    let db = crate::harness::PgDatabase::create(&server).await;
    registration_data_follows_the_store(Some(db.url.clone())).await;
}

/// A Whois port that cannot be bound does not keep the satellite from serving DNS; the
/// satellite tries again at each check-in and serves Whois once the port is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_whois_port_does_not_stop_dns() {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let cluster = Cluster::start_with(
        None,
        format!(
            "whois = {{ tcp = [\"127.0.0.1:{port}\"] }}\nrdap = {{ http = [\"127.0.0.1:0\"] }}"
        ),
    )
    .await;
    let sat = TestSatellite::start(
        cluster.link_config(cluster.satellite_tls("sat2"), cluster.state_path("sat2")),
    );
    let dns = sat.serving().await;
    sat.applied(cluster.store.head().await.unwrap()).await;
    assert_eq!(
        crate::link::ask(dns, &domain("never-registered")).await,
        crate::link::Seen::Absent
    );
    // A few check-ins later (300 ms each), Whois is still refused its port, DNS still serves.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(sat.status().whois.is_empty());
    assert_eq!(
        crate::link::ask(dns, &domain("never-registered")).await,
        crate::link::Seen::Absent
    );
    // Freed: Whois comes up at a following check-in, on the configured port.
    drop(blocker);
    let (whois_addr, _) = sat.serving_rds().await;
    assert_eq!(whois_addr.port(), port);
    assert!(whois(whois_addr, "help").await.contains("nameserver"));
    sat.stop().await;
}
