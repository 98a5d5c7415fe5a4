//! The catalog zone (RFC 9432 version 2, issue 14): what the satellite serves under the `xfr`
//! ACL (SOA over UDP and TCP, AXFR, IXFR from its own differences, REFUSED to the public), and
//! real secondaries configured by it: Knot (`catalog-role: interpret` with a member template)
//! and BIND 9.18 (`catalog-zones`) add a zone the satellite starts serving, transfer it, and
//! drop it when the satellite stops serving it.
//!
//! NSD is not among them: NSD 4.6.1 (Debian 12's, `nsd -v`) has no catalog zone support (it
//! came with NSD 4.9); its zones are configured by hand (satellite/tests/integration/xfr.rs,
//! deploy/runbooks/xfr.md).

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use orrery_proto::{Change, ChangeBatch, Soa, Zone};

use crate::fixtures::{domain, n, registry};
use crate::harness::{TestServer, tcp_connect};
use crate::xfr::{
    KEY, config, good_key, parse, records, request, send, serial_of, signed, transfer,
};
use orrery_satellite::xfr::tsig;
use orrery_tests::loopback_port::free_port;
use orrery_tests::secondaries::{Kind, Secondary, Setup};

const CATALOG: &str = "catalog.invalid";

/// A zone `name` (its own apex NS out of zone), serial unknown: it serves the state's.
fn zone(name: &str) -> Zone {
    Zone {
        name: n(name),
        soa: Soa {
            mname: n("a.nic.tld"),
            rname: n("hostmaster.nic.tld"),
            refresh: 1800,
            retry: 900,
            expire: 604800,
            minimum: 600,
        },
        soa_ttl: 3600,
        ns_ttl: 172800,
        ds_ttl: 86400,
        nameservers: vec![n("a.nic.tld"), n("b.nic.tld")],
        serial: 0,
    }
}

fn apply(s: &TestServer, after: i64, change: Change) {
    s.zones
        .apply(ChangeBatch {
            after,
            upto: after + 1,
            changes: vec![change],
        })
        .unwrap();
}

fn catalog_config(extra: &str) -> String {
    config(&format!("catalog_zone = \"{CATALOG}\"\n{extra}"))
}

/// What a consumer sees of the catalog, and what the public does not; its serial moves with
/// the set of zones and only then; IXFR from the previous serial is the PTR added.
#[test]
fn the_catalog_lists_the_served_zones_to_the_acl_only() {
    let s = TestServer::start(&catalog_config(""), &registry());
    let now = tsig::now;
    let soa_over_udp = |msg: &[u8]| parse(&crate::harness::udp_exchange(s.udp, msg).unwrap());
    let soa = request(CATALOG, RecordType::SOA, None);
    // The public: what a name the satellite does not serve gets.
    let (m, _) = soa_over_udp(&soa);
    assert_eq!(m.response_code, ResponseCode::Refused);
    let (m, _) = soa_over_udp(&request(CATALOG, RecordType::NS, None));
    assert_eq!(m.response_code, ResponseCode::Refused);
    let (m, _) = soa_over_udp(&request(
        &format!("version.{CATALOG}"),
        RecordType::TXT,
        None,
    ));
    assert_eq!(m.response_code, ResponseCode::Refused);
    let mut c = tcp_connect(s.tcp);
    send(&mut c, &request(CATALOG, RecordType::AXFR, None));
    assert_eq!(transfer(&mut c)[0].0.response_code, ResponseCode::Refused);
    // A consumer: the SOA, signed, over UDP and TCP.
    let (m, t) = soa_over_udp(&signed(soa.clone(), &good_key(), now()));
    assert_eq!(
        (m.response_code, m.authoritative),
        (ResponseCode::NoError, true)
    );
    assert_eq!(t.expect("signed").error, 0);
    let RData::SOA(first) = &m.answers[0].data else {
        panic!("{m:?}");
    };
    assert_eq!(first.serial, 2026, "the state's serial at start");
    assert_eq!(first.mname.to_string(), "invalid.");
    let mut c = tcp_connect(s.tcp);
    send(&mut c, &signed(soa.clone(), &good_key(), now()));
    let (m, _) = parse(&crate::xfr::recv_raw(&mut c).unwrap());
    assert_eq!(m.answers.len(), 1);
    // AXFR: SOA, NS invalid., version "2", one PTR (tld), SOA.
    let axfr = || {
        let mut c = tcp_connect(s.tcp);
        send(
            &mut c,
            &signed(request(CATALOG, RecordType::AXFR, None), &good_key(), now()),
        );
        records(&transfer(&mut c))
    };
    let all = axfr();
    assert_eq!(all.len(), 5, "{all:#?}");
    assert!(all[0].starts_with("catalog.invalid. SOA invalid. invalid. 2026 "));
    assert_eq!(all[1], "catalog.invalid. NS invalid.");
    assert_eq!(all[2], "version.catalog.invalid. TXT 2");
    assert!(
        all[3].ends_with(".zones.catalog.invalid. PTR tld."),
        "{all:#?}"
    );
    let tld_entry = all[3].clone();
    // A batch that leaves the zones alone leaves the catalog alone.
    apply(
        &s,
        2026,
        Change::Domain(domain("new.tld", &["ns1.foo.tld"])),
    );
    assert_eq!(axfr(), all);
    // A zone added: a new serial, the new PTR, tld's entry unchanged.
    apply(&s, 2027, Change::Zone(zone("example")));
    let two = axfr();
    assert!(two[0].contains(" 2028 "), "{two:#?}");
    assert_eq!(two.len(), 6);
    assert!(two.contains(&tld_entry));
    assert!(
        two.iter()
            .any(|r| r.ends_with(".zones.catalog.invalid. PTR example."))
    );
    // IXFR from 2026: SOA 2028, SOA 2026, SOA 2028 + the PTR, SOA 2028.
    let mut c = tcp_connect(s.tcp);
    send(
        &mut c,
        &signed(
            request(CATALOG, RecordType::IXFR, Some(2026)),
            &good_key(),
            now(),
        ),
    );
    let msgs = transfer(&mut c);
    assert_eq!(serial_of(&msgs), 2028);
    let inc = records(&msgs);
    assert_eq!(inc.len(), 5, "{inc:#?}");
    assert!(inc[3].ends_with("PTR example."), "{inc:#?}");
    // Counted once the transfer is done, which may be just after the client read it.
    let stats = &s.pipeline.xfr.as_ref().unwrap().stats;
    let started = Instant::now();
    while stats.incremental.load(std::sync::atomic::Ordering::Relaxed) != 1 {
        assert!(started.elapsed() < Duration::from_secs(5), "{stats:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The zone is served, and removing it moves the catalog on again.
    let (m, _) = soa_over_udp(&request("example", RecordType::SOA, None));
    assert_eq!(m.response_code, ResponseCode::NoError);
    apply(&s, 2028, Change::ZoneRemoved(n("example")));
    let three = axfr();
    assert!(three[0].contains(" 2029 "), "{three:#?}");
    assert_eq!(three[1..4], all[1..4]);
}

/// Knot follows the catalog: it takes `tld` from it, then `example` when the satellite
/// starts serving it, and drops `example` when the satellite stops.
#[test]
#[cfg_attr(
    missing_knot,
    ignore = "knotd or kdig is not installed (apt-get install knot knot-dnsutils)"
)]
fn knot_configures_its_zones_from_the_catalog() {
    follows_catalog(Kind::Knot);
}

/// The same with BIND 9.18 (`catalog-zones`).
#[test]
#[cfg_attr(
    missing_bind,
    ignore = "named or kdig is not installed (apt-get install bind9 knot-dnsutils)"
)]
fn bind_configures_its_zones_from_the_catalog() {
    follows_catalog(Kind::Bind);
}

fn follows_catalog(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = TestServer::start(
        &catalog_config(&format!(
            "notify = [{{ address = \"127.0.0.1:{port}\", key = \"k1\" }}]"
        )),
        &registry(),
    );
    let consumer = Secondary::start(
        kind,
        dir.path(),
        &Setup {
            port,
            primary: s.udp,
            key: KEY,
            zones: &[],
            catalog: Some(CATALOG),
        },
    );
    let wait_for = |zone: &str, want: Option<u32>| {
        consumer.wait_for_serial(
            zone,
            want,
            Duration::from_secs(40),
            Duration::from_millis(200),
        )
    };
    // The one zone of the catalog, configured and transferred.
    wait_for("tld", Some(2026));
    assert_eq!(consumer.serial("example"), None);
    // A zone added on the satellite appears and is transferred.
    apply(&s, 2026, Change::Zone(zone("example")));
    wait_for("example", Some(2027));
    // The member's zone then follows like any other.
    apply(
        &s,
        2027,
        Change::Domain(domain("new.tld", &["ns1.foo.tld"])),
    );
    wait_for("tld", Some(2028));
    // Removed from the satellite: removed from the consumer; tld stays.
    apply(&s, 2028, Change::ZoneRemoved(n("example")));
    wait_for("example", None);
    // tld serves the set's serial (its own is unknown in the fixture): it moved too.
    wait_for("tld", Some(2029));
    let stats = &s.pipeline.xfr.as_ref().unwrap().stats;
    assert!(
        stats.completed.load(std::sync::atomic::Ordering::Relaxed) >= 4,
        "{kind:?}: catalog and member transfers: {stats:?}"
    );
}
