//! The registry the targets answer from, and the pipelines over it.
//!
//! Small, so that building it per input stays cheap, but with one object of every kind the
//! answer paths branch on: two zones (one a registry-operated second level inside the other),
//! plain, signed, held and IDN delegations, in-zone glue and out-of-zone nameservers, a
//! wildcard host, a delegation with more glue than fits 512 octets, disclosed and redacted
//! contacts, and registrars with and without their optional fields.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use orrery_proto::{Contact, Domain, Ds, EppStatus, Host, Name, Registrar, Soa, Timestamp, Zone};
use orrery_satellite::dns::leaf::Dns;
use orrery_satellite::dns::wire::rtype;
use orrery_satellite::rds::leaf::RdsLeafConfig;
use orrery_satellite::rds::{Rds, RdsPipeline};
use orrery_satellite::{
    BuildOptions, Config, Pipeline, Selector, SelectorConfig, Served, ServedStore, SnapshotData,
    ZoneSet,
};

/// The satellite's example configuration: its DNS Selector and NSID are what the DNS targets
/// run (so a leaf added to the example is fuzzed too).
pub const EXAMPLE_CONFIG: &str = include_str!("../../deploy/satellite.example.toml");

/// The Whois/RDAP chain the targets run: every leaf kind, with ACLs that refuse one prefix and
/// drop another, and a rate limit high enough never to turn a fuzzer's stream of requests
/// from one address into nothing but "rate limited".
pub const RDS_SELECTOR: &str = r#"
[leaves.stats]
kind = "statistics"
[leaves.validate]
kind = "validate_query"
[leaves.refuse]
kind = "acl"
deny = ["198.51.100.0/24"]
action = "refuse"
[leaves.drop]
kind = "acl"
deny = ["2001:db8:bad::/48"]
action = "drop"
[leaves.limit]
kind = "rate_limit"
address_rate = 1e12
address_burst = 1000000000
prefix_rate = 1e12
prefix_burst = 1000000000
[leaves.lookup]
kind = "lookup"

[[chains]]
name = "main"
leaves = ["stats", "refuse", "drop", "limit", "validate", "lookup"]
"#;

/// The base URL RDAP links are made under.
pub const RDAP_BASE: &str = "https://rdap.nic.tld/";

fn n(s: &str) -> Name {
    Name::from_ascii(s).expect("fixture names are valid")
}

fn zone(apex: &str, nameservers: &[&str]) -> Zone {
    Zone {
        name: n(apex),
        soa: Soa {
            mname: n(nameservers[0]),
            rname: n(&format!("hostmaster.{apex}")),
            refresh: 3600,
            retry: 600,
            expire: 1_209_600,
            minimum: 300,
        },
        soa_ttl: 3600,
        ns_ttl: 86_400,
        ds_ttl: 3600,
        nameservers: nameservers.iter().map(|s| n(s)).collect(),
        // A zone with its own serial (0 would take the pre-per-zone-serial fallback).
        serial: 1,
    }
}

fn domain(name: &str, apex: &str, nameservers: &[&str]) -> Domain {
    Domain {
        name: n(name),
        zone: n(apex),
        roid: format!("{}-ROID", name.replace('.', "_")),
        registrar: "R1".into(),
        created: Timestamp(1_600_000_000),
        updated: Timestamp(1_700_000_000),
        expires: Timestamp(1_800_000_000),
        statuses: vec![EppStatus::Ok],
        registrant: Some("C1".into()),
        admin: Some("C2".into()),
        tech: Some("C2".into()),
        billing: None,
        nameservers: nameservers.iter().map(|s| n(s)).collect(),
        ds: vec![],
    }
}

fn host(name: &str, addresses: &[&str]) -> Host {
    Host {
        name: n(name),
        addresses: addresses
            .iter()
            .map(|a| a.parse().expect("fixture addresses are valid"))
            .collect(),
        registrar: Some("R1".into()),
        created: Timestamp(1_600_000_000),
        updated: Timestamp(1_700_000_000),
    }
}

fn contact(handle: &str, disclose: bool) -> Contact {
    Contact {
        handle: handle.into(),
        name: format!("Name of {handle}"),
        organisation: Some("Example Org".into()),
        street: vec!["1 Main Street".into(), "Floor 2".into()],
        city: "Paris".into(),
        province: Some("IDF".into()),
        postcode: Some("75001".into()),
        country: "FR".into(),
        email: format!("{}@example.net", handle.to_ascii_lowercase()),
        voice: Some("+33.112345678".into()),
        fax: None,
        disclose,
        created: Timestamp(1_600_000_000),
        updated: Timestamp(1_700_000_000),
    }
}

/// The registry, as a snapshot at serial 100.
pub fn registry() -> SnapshotData {
    let mut signed = domain("signed.tld", "tld", &["ns1.signed.tld"]);
    signed.ds = vec![
        Ds {
            key_tag: 4242,
            algorithm: 13,
            digest_type: 2,
            digest: vec![0x5A; 32],
        },
        Ds {
            key_tag: 4243,
            algorithm: 8,
            digest_type: 1,
            digest: vec![0xA5; 20],
        },
    ];
    let mut held = domain("held.tld", "tld", &["ns1.foo.tld"]);
    held.statuses = vec![EppStatus::ClientHold, EppStatus::ClientTransferProhibited];
    let big: Vec<String> = (0..13).map(|i| format!("ns{i}.big.tld")).collect();
    let big_ref: Vec<&str> = big.iter().map(String::as_str).collect();
    let mut domains = vec![
        domain("foo.tld", "tld", &["ns1.foo.tld", "ns2.foo.tld"]),
        domain("bar.tld", "tld", &["ns1.foo.tld", "ns.example.net"]),
        domain("xn--bcher-kva.tld", "tld", &["ns.example.net"]),
        domain("big.tld", "tld", &big_ref),
        domain("w.tld", "tld", &["*.w.tld"]),
        domain("shop.co.tld", "co.tld", &["ns1.shop.co.tld", "ns1.foo.tld"]),
        domain("undelegated.tld", "tld", &[]),
        signed,
        held,
    ];
    domains[1].registrant = Some("GONE".into());
    let mut hosts = vec![
        host("a.nic.tld", &["192.0.2.1", "2001:db8::1"]),
        host("b.nic.tld", &["192.0.2.2"]),
        host("ns1.foo.tld", &["192.0.2.10", "2001:db8::10"]),
        host("ns2.foo.tld", &["192.0.2.11"]),
        host("ns1.signed.tld", &["192.0.2.20"]),
        host("ns1.shop.co.tld", &["192.0.2.30"]),
        host("*.w.tld", &["192.0.2.5"]),
        host("ns.example.net", &[]),
    ];
    hosts.extend(
        big.iter()
            .map(|h| host(h, &["192.0.2.3", "2001:db8::3", "2001:db8::4"])),
    );
    let mut r1 = Registrar::new("R1", "Example Registrar, Inc.");
    r1.iana_id = Some(9999);
    r1.url = Some("https://registrar.example/".into());
    r1.whois_server = Some("whois.registrar.example".into());
    r1.email = Some("info@registrar.example".into());
    r1.abuse_email = Some("abuse@registrar.example".into());
    r1.abuse_phone = Some("+1.5555555555".into());
    SnapshotData {
        serial: 100,
        zones: vec![
            zone("tld", &["a.nic.tld", "b.nic.tld"]),
            zone("co.tld", &["a.nic.tld"]),
        ],
        domains,
        hosts,
        contacts: vec![contact("C1", true), contact("C2", false)],
        registrars: vec![r1, Registrar::new("R2", "Bare Registrar")],
    }
}

/// The example configuration, parsed once.
pub fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config::parse(EXAMPLE_CONFIG).expect("the example configuration parses"))
}

/// The registry's zone set, built once; clone it to change it.
pub fn zones() -> &'static ZoneSet {
    static ZONES: OnceLock<ZoneSet> = OnceLock::new();
    ZONES.get_or_init(|| {
        let r = registry();
        ZoneSet::build(r.serial, &r.zones, &r.domains, &r.hosts)
    })
}

/// A DNS pipeline (the example configuration's Selector and NSID) over `zones`.
///
/// Built field by field rather than by `Pipeline::new`, which leaks its NSID on purpose (it
/// runs once per process): the state-file and link targets build a pipeline per input.
pub fn dns_pipeline(zones: ZoneSet) -> Pipeline {
    static NSID: OnceLock<Option<&'static [u8]>> = OnceLock::new();
    let config = config();
    Pipeline {
        selector: Selector::<Dns>::build(&config.selector).expect("the example Selector builds"),
        served: Arc::new(ServedStore::new(Served::dns_only(zones))),
        nsid: *NSID.get_or_init(|| config.nsid().map(|n| &*Box::leak(n.into_boxed_slice()))),
        stats: Arc::default(),
        xfr: None,
        expiry: None,
    }
}

/// The Whois/RDAP pipeline ([`RDS_SELECTOR`]) over the registry, built once.
pub fn rds_pipeline() -> &'static RdsPipeline {
    static PIPELINE: OnceLock<RdsPipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let config: SelectorConfig<RdsLeafConfig> =
            toml::from_str(RDS_SELECTOR).expect("the Whois/RDAP Selector parses");
        RdsPipeline::new(
            Selector::<Rds>::build(&config).expect("the Whois/RDAP Selector builds"),
            Arc::new(ServedStore::new(Served::from_snapshot(
                &registry(),
                BuildOptions::default(),
            ))),
        )
    })
}

/// The client address an input's first octet stands for: documentation addresses, one prefix
/// of which the Whois/RDAP ACLs refuse (198.51.100.0/24) and one they drop (2001:db8:bad::/48).
pub fn peer(octet: u8) -> IpAddr {
    let low = octet & 0x3F;
    match octet >> 6 {
        0 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, low)),
        1 => IpAddr::V4(Ipv4Addr::new(198, 51, 100, low)),
        2 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(low))),
        _ => IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xbad,
            0,
            0,
            0,
            0,
            u16::from(low),
        )),
    }
}

/// A query packet for `qname` (wire form), with an OPT record when `edns` gives its UDP size,
/// DO bit and NSID request.
pub fn query_packet(
    id: u16,
    qname: &[u8],
    qtype: u16,
    qclass: u16,
    edns: Option<(u16, bool, bool)>,
) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + qname.len() + 4 + 15);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    p.extend_from_slice(qname);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&qclass.to_be_bytes());
    if let Some((size, dnssec_ok, nsid)) = edns {
        p.push(0);
        p.extend_from_slice(&rtype::OPT.to_be_bytes());
        p.extend_from_slice(&size.to_be_bytes());
        p.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
        if nsid {
            p.extend_from_slice(&[0, 4, 0, 3, 0, 0]);
        } else {
            p.extend_from_slice(&[0, 0]);
        }
    }
    p
}
