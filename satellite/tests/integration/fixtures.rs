//! A small registry built from the model types.

use orrery_proto::{Domain, Ds, EppStatus, Host, Name, Soa, Timestamp, Zone};
use orrery_satellite::SnapshotData;

pub(crate) fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

pub(crate) fn domain(name: &str, ns: &[&str]) -> Domain {
    Domain {
        name: n(name),
        zone: n("tld"),
        roid: format!("{name}-ROID"),
        registrar: "r1".into(),
        created: Timestamp(0),
        updated: Timestamp(0),
        expires: Timestamp(0),
        statuses: vec![EppStatus::Ok],
        registrant: None,
        admin: None,
        tech: None,
        billing: None,
        nameservers: ns.iter().map(|s| n(s)).collect(),
        ds: vec![],
    }
}

pub(crate) fn host(name: &str, addrs: &[&str]) -> Host {
    Host {
        name: n(name),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        registrar: Some("r1".into()),
        created: Timestamp(0),
        updated: Timestamp(0),
    }
}

/// Zone `tld` with a few delegations, a signed one, a held one and the registry's hosts.
pub(crate) fn registry() -> SnapshotData {
    let mut signed = domain("signed.tld", &["ns1.signed.tld"]);
    signed.ds = vec![Ds {
        key_tag: 4242,
        algorithm: 13,
        digest_type: 2,
        digest: vec![0x5A; 32],
    }];
    let mut held = domain("held.tld", &["ns1.foo.tld"]);
    held.statuses = vec![EppStatus::ClientHold];
    let mut domains = vec![
        domain("foo.tld", &["ns1.foo.tld", "ns2.foo.tld"]),
        domain("bar.tld", &["ns1.foo.tld", "ns.example.net"]),
        signed,
        held,
    ];
    for i in 0..200 {
        domains.push(domain(
            &format!("d{i}.tld"),
            &["ns1.foo.tld", "ns2.foo.tld"],
        ));
    }
    SnapshotData {
        serial: 2026,
        zones: vec![Zone {
            name: n("tld"),
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
        }],
        domains,
        hosts: vec![
            host("a.nic.tld", &["192.0.2.1", "2001:db8::1"]),
            host("b.nic.tld", &["192.0.2.2", "2001:db8::2"]),
            host("ns1.foo.tld", &["192.0.2.10", "2001:db8::10"]),
            host("ns2.foo.tld", &["192.0.2.11"]),
            host("ns1.signed.tld", &["192.0.2.20"]),
        ],
        ..SnapshotData::default()
    }
}
