//! Preallocation proof: after warm-up, handling queries of every kind (parse → Selector →
//! encode) performs zero heap allocations. A counting global allocator lives in this test
//! binary only, so it does not affect the other tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use orrery_proto::{Domain, EppStatus, Host, Name, Soa, Timestamp, Zone};
use orrery_satellite::wire::{Event, Transport, class, rtype};
use orrery_satellite::{Config, Pipeline, Selector, ZoneSet, ZoneStore};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: thread-local storage may be gone while a thread exits.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn packet(name: &str, qtype: u16, qclass: u16, edns: Option<(u16, u8, bool)>) -> Vec<u8> {
    let mut p = vec![0xAB, 0xCD, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&qclass.to_be_bytes());
    if let Some((size, version, nsid)) = edns {
        p[11] = 1;
        p.push(0);
        p.extend_from_slice(&rtype::OPT.to_be_bytes());
        p.extend_from_slice(&size.to_be_bytes());
        p.extend_from_slice(&[0, version, 0x80, 0]);
        if nsid {
            p.extend_from_slice(&[0, 4, 0, 3, 0, 0]);
        } else {
            p.extend_from_slice(&[0, 0]);
        }
    }
    p
}

fn zones() -> ZoneSet {
    let domain = |name: &str, ns: &[&str], hold: bool| Domain {
        name: n(name),
        zone: n("tld"),
        roid: "x".into(),
        registrar: "r".into(),
        created: Timestamp(0),
        updated: Timestamp(0),
        expires: Timestamp(0),
        statuses: vec![if hold {
            EppStatus::ServerHold
        } else {
            EppStatus::Ok
        }],
        registrant: None,
        admin: None,
        tech: None,
        billing: None,
        nameservers: ns.iter().map(|s| n(s)).collect(),
        ds: vec![],
    };
    let host = |name: &str, a: &[&str]| Host {
        name: n(name),
        addresses: a.iter().map(|a| a.parse().unwrap()).collect(),
        registrar: None,
        created: Timestamp(0),
        updated: Timestamp(0),
    };
    let big: Vec<String> = (0..13).map(|i| format!("ns{i}.big.tld")).collect();
    let big_ref: Vec<&str> = big.iter().map(String::as_str).collect();
    let mut hosts = vec![
        host("a.nic.tld", &["192.0.2.1", "2001:db8::1"]),
        host("ns1.foo.tld", &["192.0.2.10"]),
        host("*.w.tld", &["192.0.2.5"]),
    ];
    hosts.extend(
        big.iter()
            .map(|h| host(h, &["192.0.2.3", "2001:db8::3", "2001:db8::4"])),
    );
    ZoneSet::build(
        1,
        &[Zone {
            name: n("tld"),
            soa: Soa {
                mname: n("a.nic.tld"),
                rname: n("h.nic.tld"),
                refresh: 1,
                retry: 1,
                expire: 1,
                minimum: 60,
            },
            soa_ttl: 3600,
            ns_ttl: 3600,
            ds_ttl: 3600,
            nameservers: vec![n("a.nic.tld"), n("*.w.tld")],
        }],
        &[
            domain("foo.tld", &["ns1.foo.tld", "ns.example.net"], false),
            domain("held.tld", &["ns1.foo.tld"], true),
            domain("big.tld", &big_ref, false),
        ],
        &hosts,
    )
}

#[test]
fn steady_state_queries_do_not_allocate() {
    let config = Config::parse(include_str!("../config.example.toml")).unwrap();
    let pipeline = Pipeline::new(
        <Selector>::build(&config.selector).unwrap(),
        Arc::new(ZoneStore::new(zones())),
        config.nsid,
    );
    let mut packets = Vec::new();
    for (name, t) in [
        ("www.foo.tld", rtype::A),
        ("foo.tld", rtype::DS),
        ("tld", rtype::SOA),
        ("tld", rtype::NS),
        ("tld", rtype::ANY),
        ("a.nic.tld", rtype::AAAA),
        ("nic.tld", rtype::A),
        ("held.tld", rtype::A),
        ("x.y.w.tld", rtype::A),
        ("big.tld", rtype::A),
        ("example.com", rtype::A),
        ("tld", rtype::AXFR),
        ("tld", rtype::IXFR),
    ] {
        for edns in [
            None,
            Some((512, 0, false)),
            Some((4096, 0, true)),
            Some((1232, 1, false)),
        ] {
            packets.push(packet(name, t, class::IN, edns));
        }
    }
    packets.push(packet("version.bind", rtype::TXT, class::CH, None));
    packets.push(packet("authors.bind", rtype::TXT, class::CH, None));
    packets.push(vec![1, 2, 3]);
    let mut bad = packet("tld", rtype::A, class::IN, None);
    bad[5] = 2;
    packets.push(bad);
    let mut notify = packet("tld", rtype::SOA, class::IN, None);
    notify[2] = 4 << 3;
    packets.push(notify);

    let mut ev = Event::new();
    let peer = "127.0.0.1".parse().unwrap();
    let mut run = |count: bool| {
        COUNT.with(|c| c.set(0));
        COUNTING.with(|c| c.set(count));
        let mut answered = 0;
        for _ in 0..50 {
            for p in &packets {
                for t in [Transport::Udp, Transport::Tcp] {
                    answered += usize::from(pipeline.handle(p, peer, t, &mut ev).is_some());
                }
            }
        }
        COUNTING.with(|c| c.set(false));
        (answered, COUNT.with(Cell::get))
    };
    // The counter itself works: one allocation is seen.
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
    COUNTING.with(|c| c.set(false));
    assert_eq!(COUNT.with(Cell::get), 1);
    // Warm-up (thread-local initialisation of arc-swap and the like).
    run(false);
    let (answered, allocations) = run(true);
    assert!(answered > 50 * packets.len());
    assert_eq!(allocations, 0, "{allocations} allocations in steady state");
}
