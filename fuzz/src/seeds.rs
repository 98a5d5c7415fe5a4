//! Seed inputs for each target, built from real inputs: DNS queries encoded by hickory-proto,
//! the Whois lines and RDAP paths clients send, a state file written by the state file
//! writer, and link messages encoded by prost from the model. A seed gives the fuzzer the
//! structure it would take long to find alone (a valid checksum, a protobuf oneof, a name the
//! registry holds); a few dozen per target are enough.

use hickory_proto::op::{Edns, Message, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name as DnsName, RecordType};
use orrery_proto::link::pb;
use orrery_proto::{Change, Domain, EppStatus, Name, Timestamp};
use orrery_satellite::SnapshotData;
use prost::Message as _;

use crate::fixture;

/// The targets, by name (their `fuzz_targets/NAME.rs`).
pub const TARGETS: &[&str] = &[
    "dns_query",
    "whois_line",
    "rdap_path",
    "state_file",
    "link_message",
];

/// The seeds of `target`, or `None` for a name that is not a target.
pub fn seeds(target: &str) -> Option<Vec<Vec<u8>>> {
    Some(match target {
        "dns_query" => dns(),
        "whois_line" => whois(),
        "rdap_path" => rdap(),
        "state_file" => state_file(),
        "link_message" => link(),
        _ => return None,
    })
}

fn dns_query(
    name: &str,
    qtype: RecordType,
    qclass: DNSClass,
    edns: Option<(u16, bool)>,
) -> Message {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    let mut q = Query::query(
        DnsName::from_ascii(name).expect("seed names are valid"),
        qtype,
    );
    q.set_query_class(qclass);
    m.add_query(q);
    if let Some((size, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m
}

fn dns() -> Vec<Vec<u8>> {
    let encode = |m: &Message| m.to_vec().expect("seed queries encode");
    let mut seeds = Vec::new();
    for (name, qtype) in [
        ("tld.", RecordType::SOA),
        ("tld.", RecordType::NS),
        ("TLD.", RecordType::ANY),
        ("tld.", RecordType::AXFR),
        ("tld.", RecordType::IXFR),
        ("www.foo.tld.", RecordType::A),
        ("foo.tld.", RecordType::NS),
        ("signed.tld.", RecordType::DS),
        ("held.tld.", RecordType::A),
        ("big.tld.", RecordType::A),
        ("x.y.w.tld.", RecordType::AAAA),
        ("a.nic.tld.", RecordType::A),
        ("nic.tld.", RecordType::TXT),
        ("shop.co.tld.", RecordType::NS),
        ("co.tld.", RecordType::SOA),
        ("xn--bcher-kva.tld.", RecordType::NS),
        ("nope.tld.", RecordType::MX),
        ("example.com.", RecordType::A),
        (".", RecordType::NS),
    ] {
        for edns in [None, Some((512, false)), Some((4096, true))] {
            seeds.push(encode(&dns_query(name, qtype, DNSClass::IN, edns)));
        }
    }
    for name in [
        "version.bind.",
        "hostname.bind.",
        "id.server.",
        "authors.bind.",
    ] {
        seeds.push(encode(&dns_query(
            name,
            RecordType::TXT,
            DNSClass::CH,
            None,
        )));
    }
    seeds.push(encode(&dns_query(
        "version.bind.",
        RecordType::A,
        DNSClass::CH,
        Some((1232, false)),
    )));
    // An NSID request (RFC 5001): an empty option 3 in the OPT record.
    seeds.push(fixture::query_packet(
        7,
        b"\x03foo\x03tld\x00",
        1,
        1,
        Some((1232, false, true)),
    ));
    let mut notify = dns_query("tld.", RecordType::SOA, DNSClass::IN, None);
    notify.metadata.op_code = OpCode::Notify;
    seeds.push(encode(&notify));
    let mut two = dns_query("tld.", RecordType::SOA, DNSClass::IN, None);
    two.add_query(Query::query(
        DnsName::from_ascii("foo.tld.").expect("valid"),
        RecordType::NS,
    ));
    seeds.push(encode(&two));
    // A compression pointer in the question, and a truncated one.
    seeds.push(vec![
        0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'f', b'o', b'o', 0xC0, 12, 0, 1, 0, 1,
    ]);
    seeds.push(vec![0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'f', b'o']);
    seeds
}

/// A request seed: the client's octet ([`fixture::peer`]) and the request.
fn request(peer: u8, text: &str) -> Vec<u8> {
    let mut seed = vec![peer];
    seed.extend_from_slice(text.as_bytes());
    seed
}

fn whois() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for line in [
        "foo.tld",
        "FOO.TLD.",
        "domain signed.tld",
        "domain held.tld",
        "bar.tld",
        "bücher.tld",
        "xn--bcher-kva.tld",
        "nameserver ns1.foo.tld",
        "ns a.nic.tld",
        "host *.w.tld",
        "registrar R1",
        "registrar example registrar, inc.",
        "registrar R2",
        "help",
        "nope.tld",
        "",
        " foo.tld ",
        "foo..tld",
        "domain",
    ] {
        seeds.push(request(0x01, line));
    }
    seeds.push(request(0x41, "foo.tld"));
    seeds.push(request(0x81, "foo.tld"));
    seeds.push(request(0xC1, "foo.tld"));
    seeds
}

fn rdap() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for path in [
        "/domain/foo.tld",
        "/domain/SIGNED.TLD",
        "/domain/held.tld",
        "/domain/bar.tld",
        "/domain/xn--bcher-kva.tld",
        "/domain/b%C3%BCcher.tld",
        "/domain/nope.tld",
        "/nameserver/ns1.foo.tld",
        "/nameserver/a.nic.tld",
        "/entity/C1",
        "/entity/C2",
        "/entity/R1",
        "/entity/R2",
        "/help",
        "/",
        "/domain/",
        "/domain/foo.tld/extra",
        "/autnum/64496",
        "/ip/192.0.2.1",
        "/domain/%zz",
    ] {
        seeds.push(request(0x02, path));
    }
    seeds.push(request(0x42, "/domain/foo.tld"));
    seeds.push(request(0x82, "/help"));
    seeds.push(request(0xC2, "/domain/foo.tld"));
    seeds
}

/// A seed for `state_file`: the fix octet (see [`crate::targets::state_file`]) and the file,
/// as the satellite's writer makes it (through a temporary file: the writer streams to disk).
fn state(fix: u8, data: &SnapshotData) -> Vec<u8> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "orrery-fuzz-seed-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    orrery_satellite::write_snapshot(&path, data).expect("a seed state file");
    let file = std::fs::read(&path).expect("the seed just written");
    let _ = std::fs::remove_file(&path);
    let mut seed = vec![fix];
    seed.extend_from_slice(&file);
    seed
}

fn state_file() -> Vec<Vec<u8>> {
    let full = fixture::registry();
    let dns_only = SnapshotData {
        contacts: vec![],
        registrars: vec![],
        ..full.clone()
    };
    let one = SnapshotData {
        serial: 7,
        zones: full.zones[..1].to_vec(),
        domains: full.domains[..1].to_vec(),
        hosts: full.hosts[..3].to_vec(),
        contacts: full.contacts[..1].to_vec(),
        registrars: full.registrars[..1].to_vec(),
    };
    vec![
        state(3, &full),
        state(3, &dns_only),
        state(3, &one),
        state(3, &SnapshotData::default()),
        // Length and checksum left as written: mutations then reach the header checks too.
        state(0, &one),
    ]
}

/// Every object of the registry as link changes, in the order a snapshot sends them.
fn objects(data: &SnapshotData) -> Vec<Change> {
    let registrars = data.registrars.iter().cloned().map(Change::Registrar);
    let contacts = data.contacts.iter().cloned().map(Change::Contact);
    let zones = data.zones.iter().cloned().map(Change::Zone);
    let hosts = data.hosts.iter().cloned().map(Change::Host);
    let domains = data.domains.iter().cloned().map(Change::Domain);
    registrars
        .chain(contacts)
        .chain(zones)
        .chain(hosts)
        .chain(domains)
        .collect()
}

fn link_seed(kind: u8, message: &impl prost::Message) -> Vec<u8> {
    let mut seed = vec![kind];
    message.encode(&mut seed).expect("a Vec grows");
    seed
}

fn link() -> Vec<Vec<u8>> {
    let data = fixture::registry();
    let n = |s: &str| Name::from_ascii(s).expect("seed names are valid");
    let mut added = data.domains[0].clone();
    added.name = n("new.tld");
    added.ds = data.domains[7].ds.clone();
    let moved = Domain {
        statuses: vec![EppStatus::ServerHold],
        updated: Timestamp(1_750_000_000),
        ..data.domains[1].clone()
    };
    let mut host = data.hosts[2].clone();
    host.addresses.push("192.0.2.99".parse().expect("valid"));
    let batch = |changes: Vec<Change>| pb::FollowEvent {
        event: Some(pb::follow_event::Event::Batch(pb::ChangeBatch::from(
            &orrery_proto::ChangeBatch {
                after: data.serial,
                upto: data.serial + 1,
                changes,
            },
        ))),
    };
    let mut seeds = vec![
        link_seed(0, &batch(vec![Change::Domain(added)])),
        link_seed(0, &batch(vec![Change::Domain(moved), Change::Host(host)])),
        link_seed(
            0,
            &batch(vec![
                Change::DomainRemoved(n("foo.tld")),
                Change::HostRemoved(n("ns2.foo.tld")),
                Change::ContactRemoved("C2".into()),
                Change::RegistrarRemoved("R2".into()),
            ]),
        ),
        link_seed(0, &batch(vec![Change::ZoneRemoved(n("co.tld"))])),
        link_seed(0, &batch(objects(&data)[..4].to_vec())),
        link_seed(
            0,
            &pb::FollowEvent {
                event: Some(pb::follow_event::Event::Heartbeat(pb::Heartbeat {
                    head_serial: 5,
                })),
            },
        ),
    ];
    let encoded: Vec<Vec<u8>> = objects(&data)
        .iter()
        .map(|c| pb::Change::from(c).encode_to_vec())
        .collect();
    for (index, part) in encoded.chunks(12).enumerate() {
        seeds.push(link_seed(
            1,
            &pb::SnapshotChunk {
                serial: data.serial,
                index: index as u32,
                count: encoded.len().div_ceil(12) as u32,
                total_objects: encoded.len() as u64,
                objects: part.iter().map(|o| o.clone().into()).collect(),
            },
        ));
    }
    let config = pb::SatelliteConfig {
        version: "v1".into(),
        checkin_interval_ms: 30_000,
        // A seed with expired zones answering SERVFAIL: the flag's conversion is read too.
        servfail_expired: true,
        dns: Some(pb::DnsService {
            udp: vec!["127.0.0.1:5353".into(), "[::1]:5353".into()],
            tcp: vec!["127.0.0.1:5353".into()],
            tcp_idle_timeout_ms: 10_000,
            tcp_max_connections: 1024,
            tcp_max_connections_per_address: 32,
            udp_batch: 32,
            ..Default::default()
        }),
        whois: Some(pb::WhoisService {
            tcp: vec!["127.0.0.1:4343".into()],
            max_connections: 100,
            timeout_ms: 5000,
            max_connections_per_address: 4,
        }),
        workers: 2,
        memory_budget_bytes: 1 << 30,
        nsid: b"sat1".to_vec(),
        hostname: "sat1.example".into(),
        selector_toml: fixture::EXAMPLE_CONFIG.into(),
        rdap: Some(pb::RdapService {
            http: vec!["127.0.0.1:8080".into()],
            https: vec!["127.0.0.1:8443".into()],
            tls_cert_file: "/etc/orrery/rdap.pem".into(),
            tls_key_file: "/etc/orrery/rdap.key".into(),
            base_url: fixture::RDAP_BASE.into(),
            max_connections: 100,
            timeout_ms: 5000,
            trusted_proxies: vec!["192.0.2.0/24".into(), "2001:db8::/32".into()],
            max_connections_per_address: 4,
        }),
        rds_selector_toml: fixture::RDS_SELECTOR.into(),
        metrics: "127.0.0.1:9153".into(),
        // Zone transfer out: a key named by an ACL rule and a NOTIFY target.
        xfr: Some(pb::XfrService {
            keys: vec![pb::TsigKey {
                name: "k1.".into(),
                algorithm: "hmac-sha256".into(),
                secret: vec![7; 32],
            }],
            acl: vec![pb::XfrAclRule {
                prefixes: vec!["127.0.0.1".into(), "::1/128".into()],
                key: "k1".into(),
            }],
            notify: vec![pb::NotifyTarget {
                address: "127.0.0.1:5301".into(),
                key: "k1".into(),
            }],
            ixfr_window: 10,
            ..Default::default()
        }),
    };
    seeds.push(link_seed(
        2,
        &pb::BootResponse {
            identity: "sat1".into(),
            config: Some(config.clone()),
            head_serial: data.serial,
            window_start: 1,
            session: 7,
        },
    ));
    seeds.push(link_seed(3, &config));
    seeds.push(link_seed(
        3,
        &pb::SatelliteConfig {
            checkin_interval_ms: 1000,
            ..Default::default()
        },
    ));
    seeds
}
