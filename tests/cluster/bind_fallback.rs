//! The generator's output, served by a real BIND: checked with `named-checkzone`, loaded by
//! `named` on a loopback port, and queried for referrals, glue, DS and NXDOMAIN as the store
//! says. Then a change in the store, regenerated and reloaded through the hook, shows up.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use orrery_generator::{Outcome, generate_zone, run_hook, soa_serial, write_named_conf};
use orrery_proto::{Domain, EppStatus, Name, Registrar, Timestamp};
use orrery_store::synthetic::SyntheticTld;
use orrery_store::write::{DomainUpdate, NewDomain, NsSpec};
use orrery_store::{HostSelection, Store, StoreError, ZoneItem};

use crate::harness::{Named, program, query};

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn soa_serial_of(m: &hickory_proto::op::Message) -> Option<u32> {
    m.authorities
        .iter()
        .chain(&m.answers)
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
}

/// Checks one domain against BIND's answers.
fn check_domain(
    addr: std::net::SocketAddr,
    d: &Domain,
    glue: &HashMap<Name, Vec<IpAddr>>,
    zone: &Name,
    serial: u32,
) {
    let qname = format!("www.{}.", d.name);
    let m = query(addr, &qname, RecordType::A);
    if !d.is_delegated() {
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "{qname}: {m:?}"
        );
        assert!(m.metadata.authoritative);
        assert_eq!(soa_serial_of(&m), Some(serial), "{qname}: SOA in authority");
        return;
    }
    // A referral: no AA, the delegation's NS in authority, glue in additional.
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{qname}");
    assert!(
        !m.metadata.authoritative,
        "{qname}: a referral is not authoritative"
    );
    assert!(m.answers.is_empty());
    let ns: BTreeSet<String> = m
        .authorities
        .iter()
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(ns.0.to_string().trim_end_matches('.').to_owned()),
            _ => None,
        })
        .collect();
    let want: BTreeSet<String> = d.nameservers.iter().map(ToString::to_string).collect();
    assert_eq!(ns, want, "{qname}: NS set");
    for host in &d.nameservers {
        if !host.is_subdomain_of(zone) {
            continue;
        }
        let got: BTreeSet<IpAddr> = m
            .additionals
            .iter()
            .filter(|r| r.name.to_string().trim_end_matches('.') == host.to_string())
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect();
        let want: BTreeSet<IpAddr> = glue
            .get(host)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        assert_eq!(got, want, "{qname}: glue for {host}");
        assert!(
            !want.is_empty(),
            "{host}: in-bailiwick nameserver of a delegated domain without glue"
        );
    }
    // DS is answered by the parent, authoritatively.
    let m = query(addr, &format!("{}.", d.name), RecordType::DS);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        m.metadata.authoritative,
        "{}: DS answers are authoritative",
        d.name
    );
    let got: BTreeSet<Vec<u8>> = m
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::DS)
        .map(|r| r.data.to_bytes().unwrap())
        .collect();
    let want: BTreeSet<Vec<u8>> =
        d.ds.iter()
            .map(|ds| {
                let mut v = ds.key_tag.to_be_bytes().to_vec();
                v.extend([ds.algorithm, ds.digest_type]);
                v.extend(&ds.digest);
                v
            })
            .collect();
    assert_eq!(got, want, "{}: DS", d.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_bind,
    ignore = "BIND is not installed (apt-get install bind9 bind9-utils)"
)]
async fn bind_serves_the_generated_zone() {
    let Some(named) = program("named", "bind9") else {
        return;
    };
    let Some(checkzone) = program("named-checkzone", "bind9-utils") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("zones");
    std::fs::create_dir_all(&out).unwrap();
    let store = Store::open(&format!(
        "sqlite:{}",
        work.path().join("store.db").display()
    ))
    .await
    .unwrap();
    let zone = n("test");
    store
        .load_synthetic(&SyntheticTld {
            zone: zone.clone(),
            domains: 3000,
            seed: 5,
        })
        .await
        .unwrap();

    // Hand-made objects for the cases that matter.
    store
        .add_registrar(&Registrar::new("R1", "Registrar One"))
        .await
        .unwrap();
    let domain = |name: &str, ns: Vec<NsSpec>, statuses: Vec<EppStatus>, ds: &str| NewDomain {
        name: n(name),
        registrar: "R1".into(),
        registrant: None,
        admin: None,
        tech: None,
        billing: None,
        expires: Timestamp(2_000_000_000),
        statuses,
        nameservers: ns,
        ds: if ds.is_empty() {
            vec![]
        } else {
            vec![orrery_store::read::parse_ds(ds).unwrap()]
        },
    };
    let ns = |name: &str, addrs: &[&str]| NsSpec {
        name: n(name),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
    };
    let digest = "2BB183AF5F22588179A53B0A98631FAD1A292118".repeat(2)[..64].to_owned();
    store
        .add_domain(&domain(
            "signed.test",
            vec![
                ns("ns1.signed.test", &["198.18.200.1", "2001:db8::200:1"]),
                ns("ns.hoster.example", &[]),
            ],
            vec![],
            &format!("60485 13 2 {digest}"),
        ))
        .await
        .unwrap();
    store
        .add_domain(&domain(
            "held.test",
            vec![ns("ns1.held.test", &["198.18.200.2"])],
            vec![EppStatus::ClientHold],
            "",
        ))
        .await
        .unwrap();
    store
        .add_domain(&domain("bare.test", vec![], vec![], ""))
        .await
        .unwrap();

    // Generate, check with named-checkzone (no lookups outside the zone: -i local).
    let written = generate_zone(&store, &zone, &out, false).await.unwrap();
    let Outcome::Written { path, serial, .. } = written else {
        panic!("{written:?}")
    };
    write_named_conf(
        std::slice::from_ref(&zone),
        &out,
        &out.join("named.conf.zones"),
    )
    .unwrap();
    let check = Command::new(&checkzone)
        .args(["-i", "local", "-q", "test"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(
        check.success(),
        "named-checkzone refused the generated zone"
    );
    assert!(matches!(
        generate_zone(&store, &zone, &out, false).await.unwrap(),
        Outcome::Unchanged { .. }
    ));

    // What the store says.
    let mut domains = Vec::new();
    let mut glue: HashMap<Name, Vec<IpAddr>> = HashMap::new();
    store
        .visit_zone(&zone, HostSelection::Published, |item| {
            match item {
                ZoneItem::Domain(d) => domains.push(d),
                ZoneItem::Host(h) => {
                    glue.insert(h.name, h.addresses);
                }
                ZoneItem::Zone { .. } | ZoneItem::Dnssec(_) => {}
            }
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    assert!(
        !glue.contains_key(&n("ns1.held.test")),
        "glue of a held domain is not published"
    );

    let bind = Named::start(&named, &out.join("named.conf.zones"), "test.");
    let soa = soa_serial(serial);
    let mut checked = 0;
    for (i, d) in domains.iter().enumerate() {
        let special =
            ["signed.test", "held.test", "bare.test"].contains(&d.name.to_string().as_str());
        if i % 15 == 0 || special || !d.is_delegated() {
            check_domain(bind.addr, d, &glue, &zone, soa);
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked}");
    for name in ["nope-nope.test.", "ns1.held.test."] {
        let m = query(bind.addr, name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert_eq!(soa_serial_of(&m), Some(soa));
    }
    // The apex's own nameservers answer authoritatively with their loopback addresses.
    let m = query(bind.addr, "a.nic.test.", RecordType::A);
    assert!(m.metadata.authoritative);
    assert!(
        m.answers
            .iter()
            .any(|r| matches!(&r.data, RData::A(a) if a.0 == std::net::Ipv4Addr::LOCALHOST))
    );

    // A change in the store: regenerate, reload through the hook, see it served.
    store
        .update_domain(
            &n("signed.test"),
            &DomainUpdate {
                add_statuses: vec![EppStatus::ServerHold],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let Outcome::Written {
        path,
        serial: new_serial,
        ..
    } = generate_zone(&store, &zone, &out, false).await.unwrap()
    else {
        panic!("a changed zone must be rewritten")
    };
    assert!(new_serial > serial);
    run_hook(
        &format!("kill -HUP {}", bind.pid()),
        &zone,
        &path,
        new_serial,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while soa_serial_of(&query(bind.addr, "test.", RecordType::SOA)) != Some(soa_serial(new_serial))
    {
        assert!(
            Instant::now() < deadline,
            "named did not reload: {}",
            bind.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = query(bind.addr, "www.signed.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    store.close().await;
}
