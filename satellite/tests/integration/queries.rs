//! Queries over real UDP and TCP sockets, checked with hickory-proto.

use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{RData, RecordType};
use orrery_proto::{Change, ChangeBatch};

use crate::fixtures::{domain, host, n, registry};
use crate::harness::{
    EXAMPLE_CONFIG, TestServer, query, tcp_connect, tcp_recv, tcp_send, try_tcp_send, udp,
    udp_exchange,
};

fn types(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {}", r.name.to_string().to_lowercase(), r.record_type()))
        .collect()
}

#[test]
fn udp_answers() {
    let s = TestServer::start(EXAMPLE_CONFIG, &registry());
    let m = udp(s.udp, &query("www.FOO.tld.", RecordType::A, None, false));
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert!(!m.authoritative);
    assert_eq!(m.queries[0].name().to_string(), "www.FOO.tld.");
    assert_eq!(types(&m.authorities), ["foo.tld. NS", "foo.tld. NS"]);
    assert_eq!(
        types(&m.additionals),
        ["ns1.foo.tld. A", "ns1.foo.tld. AAAA", "ns2.foo.tld. A"]
    );
    assert!(m.edns.is_none());

    let m = udp(s.udp, &query("tld.", RecordType::SOA, Some(4096), true));
    assert!(m.authoritative);
    let RData::SOA(soa) = &m.answers[0].data else {
        panic!("no SOA")
    };
    assert_eq!(soa.serial, 2026);
    let edns = m.edns.as_ref().unwrap();
    assert_eq!(edns.max_payload(), 1232);
    assert!(edns.flags().dnssec_ok);

    let m = udp(s.udp, &query("held.tld.", RecordType::A, None, false));
    assert_eq!(m.response_code, ResponseCode::NXDomain);
    assert!(m.authoritative);
    assert_eq!(m.authorities[0].ttl, 600);

    let m = udp(s.udp, &query("signed.tld.", RecordType::DS, None, false));
    assert!(m.authoritative);
    assert_eq!(types(&m.answers), ["signed.tld. DS"]);

    let m = udp(s.udp, &query("example.com.", RecordType::A, None, false));
    assert_eq!(m.response_code, ResponseCode::Refused);

    // A response is never answered; a short packet neither.
    let mut resp = query("tld.", RecordType::SOA, None, false);
    resp.metadata.message_type = hickory_proto::op::MessageType::Response;
    assert!(udp_exchange(s.udp, &resp.to_vec().unwrap()).is_none());
    assert!(udp_exchange(s.udp, &[1, 2, 3]).is_none());
}

#[test]
fn nsid_when_asked() {
    let s = TestServer::start(EXAMPLE_CONFIG, &registry());
    let mut q = query("tld.", RecordType::SOA, Some(1232), false);
    q.edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Unknown(3, vec![]));
    let m = udp(s.udp, &q);
    let opt = m.edns.as_ref().unwrap().option(EdnsCode::NSID);
    // hickory decodes NSID into its own payload type; compare the octets it shows.
    let shown = format!("{opt:?}");
    assert!(matches!(opt, Some(EdnsOption::NSID(_))), "{shown}");
    assert!(
        shown.contains(&format!("{:?}", b"sat1.example".to_vec())),
        "{shown}"
    );
    let m = udp(s.udp, &query("tld.", RecordType::SOA, Some(1232), false));
    assert!(m.edns.as_ref().unwrap().option(EdnsCode::NSID).is_none());
}

#[test]
fn truncated_over_udp_complete_over_tcp() {
    let mut data = registry();
    let ns: Vec<String> = (0..13).map(|i| format!("ns{i}.big.tld")).collect();
    let ns_ref: Vec<&str> = ns.iter().map(String::as_str).collect();
    data.domains.push(domain("big.tld", &ns_ref));
    for name in &ns {
        data.hosts
            .push(host(name, &["192.0.2.1", "2001:db8::1", "2001:db8::2"]));
    }
    let s = TestServer::start(EXAMPLE_CONFIG, &data);
    let m = udp(s.udp, &query("big.tld.", RecordType::A, None, false));
    assert!(m.truncation);
    let mut stream = tcp_connect(s.tcp);
    tcp_send(&mut stream, &query("big.tld.", RecordType::A, None, false));
    let m = tcp_recv(&mut stream).unwrap();
    assert!(!m.truncation);
    assert_eq!(m.authorities.len(), 13);
    assert_eq!(m.additionals.len(), 39);
}

#[test]
fn tcp_several_queries_per_connection() {
    let s = TestServer::start(EXAMPLE_CONFIG, &registry());
    let mut stream = tcp_connect(s.tcp);
    // Pipelined: three queries sent before reading (RFC 7766 §6.2.1.1).
    let qs: Vec<Message> = ["foo.tld.", "nope.tld.", "tld."]
        .iter()
        .map(|name| query(name, RecordType::A, Some(1232), false))
        .collect();
    for q in &qs {
        tcp_send(&mut stream, q);
    }
    let rcodes: Vec<ResponseCode> = qs
        .iter()
        .map(|q| {
            let m = tcp_recv(&mut stream).unwrap();
            assert_eq!(m.id, q.id);
            m.response_code
        })
        .collect();
    assert_eq!(
        rcodes,
        [
            ResponseCode::NoError,
            ResponseCode::NXDomain,
            ResponseCode::NoError
        ]
    );
}

#[test]
fn tcp_idle_timeout_and_cap() {
    let config = EXAMPLE_CONFIG
        .replace("tcp_idle_timeout_ms = 10000", "tcp_idle_timeout_ms = 200")
        .replace("tcp_max_connections = 1024", "tcp_max_connections = 1");
    let s = TestServer::start(&config, &registry());
    let mut first = tcp_connect(s.tcp);
    tcp_send(&mut first, &query("tld.", RecordType::SOA, None, false));
    assert!(tcp_recv(&mut first).is_some());
    // The cap is one: a second connection is closed without an answer.
    let mut second = tcp_connect(s.tcp);
    std::thread::sleep(Duration::from_millis(50));
    // The write may already fail because the server closed the connection.
    let _ = try_tcp_send(&mut second, &query("tld.", RecordType::SOA, None, false));
    assert!(tcp_recv(&mut second).is_none());
    // The first connection is closed after the idle timeout...
    std::thread::sleep(Duration::from_millis(400));
    assert!(tcp_recv(&mut first).is_none());
    // ...which frees its slot.
    let mut third = tcp_connect(s.tcp);
    tcp_send(&mut third, &query("tld.", RecordType::SOA, None, false));
    assert!(tcp_recv(&mut third).is_some());
}

#[test]
fn batches_show_up_in_answers() {
    let s = TestServer::start(EXAMPLE_CONFIG, &registry());
    let m = udp(s.udp, &query("new.tld.", RecordType::A, None, false));
    assert_eq!(m.response_code, ResponseCode::NXDomain);
    s.zones
        .apply(ChangeBatch {
            after: 2026,
            upto: 2027,
            changes: vec![
                Change::Host(host("ns.new.tld", &["192.0.2.77"])),
                Change::Domain(domain("new.tld", &["ns.new.tld"])),
                Change::DomainRemoved(n("foo.tld")),
            ],
        })
        .unwrap();
    let m = udp(s.udp, &query("new.tld.", RecordType::A, None, false));
    assert_eq!(types(&m.authorities), ["new.tld. NS"]);
    assert_eq!(types(&m.additionals), ["ns.new.tld. A"]);
    // foo.tld is no longer delegated, but ns1.foo.tld is still the nameserver of other
    // domains, so its address stays in the zone and foo.tld is an empty non-terminal.
    let m = udp(s.udp, &query("foo.tld.", RecordType::A, None, false));
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert!(m.authoritative && m.answers.is_empty());
    let m = udp(s.udp, &query("ns1.foo.tld.", RecordType::A, None, false));
    assert!(m.authoritative);
    assert_eq!(types(&m.answers), ["ns1.foo.tld. A"]);
    let m = udp(s.udp, &query("www.foo.tld.", RecordType::A, None, false));
    assert_eq!(m.response_code, ResponseCode::NXDomain);
    let m = udp(s.udp, &query("tld.", RecordType::SOA, None, false));
    let RData::SOA(soa) = &m.answers[0].data else {
        panic!("no SOA")
    };
    assert_eq!(soa.serial, 2027);
}

#[test]
fn chaos_over_udp() {
    let s = TestServer::start(EXAMPLE_CONFIG, &registry());
    let mut q = query("id.server.", RecordType::TXT, None, false);
    q.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    let m = udp(s.udp, &q);
    assert_eq!(m.response_code, ResponseCode::NoError);
    let RData::TXT(txt) = &m.answers[0].data else {
        panic!("no TXT")
    };
    assert_eq!(txt.to_string(), "sat1");
    let disabled = EXAMPLE_CONFIG.replace("id_server = \"sat1\"\n", "");
    let s = TestServer::start(&disabled, &registry());
    assert_eq!(udp(s.udp, &q).response_code, ResponseCode::Refused);
}
