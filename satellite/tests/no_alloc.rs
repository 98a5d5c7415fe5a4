//! Preallocation proof: after warm-up, handling queries of every kind (parse → Selector →
//! encode) performs zero heap allocations, so does a UDP worker answering batches from its
//! socket (counting each query in the typed per-worker counters, `stats`), and so does a Whois
//! or RDAP request through the whole path (parse, chain, render into a reused buffer). A
//! counting global allocator lives in this test binary only, so it does not
//! affect the other tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use orrery_proto::{
    Change, Contact, Domain, EppStatus, Host, Name, Registrar, Soa, Timestamp, Zone,
};
use orrery_satellite::dns::leaf::Dns;
use orrery_satellite::dns::udp::{UdpSettings, UdpSockets};
use orrery_satellite::dns::wire::{Event, Transport, class, rtype};
use orrery_satellite::rds::{Outcome, Protocol, Query, RdsCtx, RdsEvent, rdap, whois};
use orrery_satellite::stats::{Outcome as StatsOutcome, Qtype, QueryStats, RdsOutcome};
use orrery_satellite::{Config, Pipeline, Selector, Served, ServedStore, ZoneSet};
use tokio_util::sync::CancellationToken;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
    /// This thread runs a UDP worker: its allocations count while [`ARMED`] (switched by
    /// the client thread once the worker is warm).
    static WORKER: Cell<bool> = const { Cell::new(false) };
}

static ARMED: AtomicBool = AtomicBool::new(false);
static WORKER_COUNT: AtomicU64 = AtomicU64::new(0);

fn bump() {
    // `try_with`: thread-local storage may be gone while a thread exits.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
    let _ = WORKER.try_with(|on| {
        if on.get() && ARMED.load(Ordering::Relaxed) {
            WORKER_COUNT.fetch_add(1, Ordering::Relaxed);
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
    let (zone, domains, hosts) = objects();
    ZoneSet::build(1, &[zone], &domains, &hosts)
}

/// The registry objects of [`zones`]: the zone `tld`, its domains and hosts.
fn objects() -> (Zone, Vec<Domain>, Vec<Host>) {
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
    (
        Zone {
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
            serial: 0,
        },
        vec![
            domain("foo.tld", &["ns1.foo.tld", "ns.example.net"], false),
            domain("held.tld", &["ns1.foo.tld"], true),
            domain("big.tld", &big_ref, false),
        ],
        hosts,
    )
}

/// [`zones`] signed (algorithm 13, NSEC3 opt-out, or 15 with NSEC) as a master sends it, with
/// one more delegation, `sec.tld`, that has a DS.
fn signed_zones(denial: orrery_proto::dnssec::Denial) -> ZoneSet {
    use orrery_proto::dnssec::{Denial, DnssecPolicy, KeyRole, KeyState, ZoneDnssec, ZoneKey};
    use orrery_signer::key::{SigningKey, dnskey_rdata};
    use orrery_signer::{PrivateKey, key_tag, objects};
    let (zone, mut domains, hosts) = objects();
    let mut sec = domains[0].clone();
    sec.name = n("sec.tld");
    sec.nameservers = vec![n("ns.example.net")];
    sec.ds = vec![orrery_proto::Ds {
        key_tag: 1,
        algorithm: 13,
        digest_type: 2,
        digest: vec![0xAB; 32],
    }];
    domains.push(sec);
    let key = match denial {
        Denial::Nsec => PrivateKey::ed25519_from_seed(&[7; 32]).unwrap(),
        _ => PrivateKey::p256_from_scalar(&[5; 32]).unwrap(),
    };
    let mut policy = DnssecPolicy::tld_default(Timestamp(1_800_000_000));
    policy.denial = denial;
    policy.algorithm = key.algorithm();
    let public_key = key.public_key();
    let dnssec = ZoneDnssec {
        policy,
        keys: vec![ZoneKey {
            role: KeyRole::Csk,
            algorithm: key.algorithm(),
            key_tag: key_tag(&dnskey_rdata(257, key.algorithm(), &public_key)),
            public_key,
            state: KeyState::Active,
            locator: "k".into(),
            created: Timestamp(0),
            published: None,
            activated: None,
            retired: None,
            revoked: None,
            ds_seen: None,
        }],
    };
    let mut records = Vec::new();
    objects::apex_records(&zone, 1, &mut records);
    for d in &domains {
        objects::domain_records(&zone, d, &mut records);
    }
    for h in &hosts {
        objects::host_records(&zone, h, &mut records);
    }
    let signed = orrery_signer::sign_zone(&zone.name, records, &dnssec, &|_| {
        Some(&key as &dyn SigningKey)
    })
    .unwrap();
    let mut changes = vec![Change::Zone(zone.clone())];
    changes.extend(hosts.into_iter().map(Change::Host));
    changes.extend(domains.into_iter().map(Change::Domain));
    changes.extend(
        orrery_signer::dnssec_rrsets(&zone.name, &signed)
            .into_iter()
            .map(Change::Dnssec),
    );
    ZoneSet::from_objects(1, &changes)
}

/// Runs `f` with allocations counted on this thread; returns how many there were.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    COUNT.with(Cell::get)
}

/// Whois and RDAP answers for every kind of object, disclosed and redacted contacts, and the
/// errors, rendered into reused buffers: no allocation once the buffers have grown. (Parsing a
/// query still makes its name: one allocation per query, outside the renderers.)
/// The DNS sample zone with registration data: a domain with four contacts (one withheld,
/// one missing), a registrar, DS.
fn registration_data() -> Served {
    let mut zones = Served::dns_only(zones());
    let contact = |handle: &str, disclose: bool| Contact {
        handle: handle.into(),
        name: format!("Name of {handle}"),
        organisation: Some("Example Org".into()),
        street: vec!["1 Main Street".into(), "Floor 2".into()],
        city: "Paris".into(),
        province: Some("IDF".into()),
        postcode: Some("75001".into()),
        country: "FR".into(),
        email: format!("{handle}@example.net"),
        voice: Some("+33.112345678".into()),
        fax: Some("+33.112345679".into()),
        disclose,
        created: Timestamp(1_600_000_000),
        updated: Timestamp(1_700_000_000),
    };
    let mut registrar = Registrar::new("R1", "Example Registrar, Inc.");
    registrar.iana_id = Some(9999);
    registrar.url = Some("https://registrar.example/".into());
    registrar.abuse_email = Some("abuse@registrar.example".into());
    registrar.abuse_phone = Some("+1.5555555555".into());
    let mut d = Domain {
        name: n("data.tld"),
        zone: n("tld"),
        roid: "D9-TLD".into(),
        registrar: "R1".into(),
        created: Timestamp(1_600_000_000),
        updated: Timestamp(1_700_000_000),
        expires: Timestamp(1_800_000_000),
        statuses: vec![EppStatus::ClientTransferProhibited, EppStatus::ServerHold],
        registrant: Some("C1".into()),
        admin: Some("C2".into()),
        tech: Some("C2".into()),
        billing: Some("GONE".into()),
        nameservers: vec![n("a.nic.tld"), n("ns.other.example")],
        ds: vec![],
    };
    d.ds.push(orrery_proto::Ds {
        key_tag: 7,
        algorithm: 13,
        digest_type: 2,
        digest: vec![0xAB; 32],
    });
    for change in [
        Change::Registrar(registrar),
        Change::Contact(contact("C1", true)),
        Change::Contact(contact("C2", false)),
        Change::Host(Host {
            name: n("a.nic.tld"),
            addresses: vec![
                "192.0.2.53".parse().unwrap(),
                "2001:db8::53".parse().unwrap(),
            ],
            registrar: Some("R1".into()),
            created: Timestamp(1_600_000_000),
            updated: Timestamp(1_700_000_000),
        }),
        Change::Domain(d),
    ] {
        zones.directory.apply(&change);
    }
    zones
}

#[test]
fn whois_and_rdap_rendering_does_not_allocate() {
    let zones = registration_data();
    let ctx = RdsCtx { served: &zones };
    let queries = [
        ((Query::Domain, "data.tld"), Outcome::Found),
        ((Query::Nameserver, "a.nic.tld"), Outcome::Found),
        ((Query::Entity, "C1"), Outcome::Found),
        ((Query::Entity, "C2"), Outcome::Found),
        ((Query::Entity, "R1"), Outcome::Found),
        (
            (Query::Registrar, "example registrar, inc."),
            Outcome::Found,
        ),
        ((Query::Help, ""), Outcome::Found),
        ((Query::Domain, "nope.tld"), Outcome::NotFound),
        (
            (Query::None, ""),
            Outcome::BadRequest("not a valid domain name"),
        ),
        (
            (Query::None, ""),
            Outcome::RateLimited {
                retry_after: Duration::from_millis(1500),
            },
        ),
        ((Query::None, ""), Outcome::Refused),
    ];
    let mut events: Vec<RdsEvent> = queries
        .into_iter()
        .map(|(query, outcome)| {
            let mut ev = RdsEvent::new();
            ev.reset("192.0.2.1".parse().unwrap(), Protocol::Rdap);
            ev.ask(query.0, query.1).unwrap();
            ev.outcome = outcome;
            ev
        })
        .collect();
    let mut out = Vec::new();
    let mut render_all = |events: &mut [RdsEvent]| {
        let mut octets = 0;
        for ev in events.iter_mut() {
            for protocol in [Protocol::Whois, Protocol::Rdap] {
                ev.protocol = protocol;
                out.clear();
                match protocol {
                    Protocol::Whois => whois::render(ev, &ctx, &mut out),
                    Protocol::Rdap => {
                        rdap::render(ev, &ctx, "https://rdap.nic.tld/", &mut out);
                    }
                }
                octets += out.len();
            }
        }
        octets
    };
    // Warm-up: the buffer grows to the largest answer.
    let expected = render_all(&mut events);
    let mut octets = 0;
    let n = allocations(|| octets = render_all(&mut events));
    assert_eq!(octets, expected);
    // Every answer was rendered, contacts included.
    assert!(octets > 20_000, "{octets} octets");
    assert_eq!(n, 0, "{n} allocations rendering Whois and RDAP answers");
}

/// Whois lines and RDAP paths of every kind, through the whole Whois/RDAP path: the event
/// from the pipeline's free list, the `validate_query` parser, the rate limit, the lookup and
/// the renderer. Only all-ASCII requests: a U-label name's IDNA mapping allocates (documented
/// at `rds::Key`).
#[test]
fn whois_and_rdap_requests_through_the_chain_do_not_allocate() {
    use orrery_satellite::SelectorConfig;
    use orrery_satellite::rds::leaf::RdsLeafConfig;
    use orrery_satellite::rds::{Rds, RdsPipeline};

    let selector: SelectorConfig<RdsLeafConfig> = toml::from_str(
        r#"
[leaves.stats]
kind = "statistics"
[leaves.limit]
kind = "rate_limit"
address_rate = 1000000.0
address_burst = 1000000
prefix_rate = 1000000.0
prefix_burst = 1000000
[leaves.validate]
kind = "validate_query"
[leaves.lookup]
kind = "lookup"
[[chains]]
name = "main"
leaves = ["stats", "limit", "validate", "lookup"]
"#,
    )
    .unwrap();
    let pipeline = RdsPipeline::new(
        Selector::<Rds>::build(&selector).unwrap(),
        Arc::new(ServedStore::new(registration_data())),
    );
    let requests: &[(Protocol, &[u8], Outcome)] = &[
        (Protocol::Whois, b"data.tld", Outcome::Found),
        (Protocol::Whois, b"domain DATA.TLD.", Outcome::Found),
        (Protocol::Whois, b"nameserver a.nic.tld", Outcome::Found),
        (
            Protocol::Whois,
            b"registrar Example Registrar, Inc.",
            Outcome::Found,
        ),
        (Protocol::Whois, b"help", Outcome::Found),
        (Protocol::Whois, b"nope.tld", Outcome::NotFound),
        (
            Protocol::Whois,
            b"foo..tld",
            Outcome::BadRequest("not a valid domain name"),
        ),
        (
            Protocol::Whois,
            b"-a.tld",
            Outcome::BadRequest("not a valid domain name"),
        ),
        (
            Protocol::Whois,
            b"foo\xff.tld",
            Outcome::BadRequest("the query is not UTF-8"),
        ),
        (Protocol::Rdap, b"/domain/data.tld", Outcome::Found),
        (Protocol::Rdap, b"/rdap/domain/d%61ta.tld", Outcome::Found),
        (Protocol::Rdap, b"/nameserver/a.nic.tld/", Outcome::Found),
        (Protocol::Rdap, b"/entity/C1", Outcome::Found),
        (Protocol::Rdap, b"/entity/R1", Outcome::Found),
        (Protocol::Rdap, b"/help", Outcome::Found),
        (Protocol::Rdap, b"/entity/nobody", Outcome::NotFound),
        (
            Protocol::Rdap,
            b"/ip/192.0.2.1",
            Outcome::BadRequest(
                "unsupported query; this server answers domain, nameserver, entity and help",
            ),
        ),
    ];
    let peers: [std::net::IpAddr; 3] = [
        "192.0.2.1".parse().unwrap(),
        "198.51.100.7".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
    ];
    let mut out = Vec::new();
    let mut serve_all = |check: bool| {
        let mut octets = 0;
        for peer in peers {
            for (protocol, request, want) in requests {
                let mut ev = pipeline.take();
                ev.reset(peer, *protocol);
                ev.request.extend_from_slice(request);
                out.clear();
                let answered = pipeline.handle(&mut ev, |ev, answered, ctx| {
                    if answered {
                        match ev.protocol {
                            Protocol::Whois => whois::render(ev, ctx, &mut out),
                            Protocol::Rdap => {
                                rdap::render(ev, ctx, "https://rdap.nic.tld/", &mut out);
                            }
                        }
                    }
                    answered
                });
                if check {
                    assert!(answered);
                    assert_eq!(ev.outcome, *want, "{:?}", String::from_utf8_lossy(request));
                }
                octets += out.len();
                pipeline.put(ev);
            }
        }
        octets
    };
    // Warm-up: the free list holds an event, its buffers and `out` have grown, the rate
    // limit has an entry per peer.
    let expected = serve_all(true);
    let mut octets = 0;
    let n = allocations(|| octets = serve_all(false));
    assert_eq!(octets, expected);
    assert!(octets > 20_000, "{octets} octets");
    assert_eq!(n, 0, "{n} allocations serving Whois and RDAP requests");
    // The pipeline counted every request of both passes, by protocol and outcome (the
    // counting was inside the measured pass: it allocates nothing either).
    let runs = 2 * peers.len() as u64;
    let want = |protocol, pick: fn(&Outcome) -> bool| {
        runs * requests
            .iter()
            .filter(|(p, _, o)| *p == protocol && pick(o))
            .count() as u64
    };
    let t = pipeline.stats.totals();
    for protocol in [Protocol::Whois, Protocol::Rdap] {
        assert_eq!(t.received(protocol), want(protocol, |_| true));
        assert_eq!(
            t.get(protocol, RdsOutcome::Found),
            want(protocol, |o| *o == Outcome::Found)
        );
        assert_eq!(
            t.get(protocol, RdsOutcome::NotFound),
            want(protocol, |o| *o == Outcome::NotFound)
        );
        assert_eq!(
            t.get(protocol, RdsOutcome::BadRequest),
            want(protocol, |o| matches!(o, Outcome::BadRequest(_)))
        );
    }
    assert_eq!(t.received(Protocol::Whois), 54);
    assert_eq!(t.received(Protocol::Rdap), 48);
    assert_eq!(t.outcome(RdsOutcome::Dropped), 0);
}

/// Queries of every kind, malformed ones included.
fn dns_packets() -> Vec<Vec<u8>> {
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
        ("foo.tld", rtype::AXFR),
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
    packets.push(packet("version.bind", rtype::A, class::CH, None));
    packets.push(packet("authors.bind", rtype::TXT, class::CH, None));
    packets.push(vec![1, 2, 3]);
    let mut bad = packet("tld", rtype::A, class::IN, None);
    bad[5] = 2;
    packets.push(bad);
    let mut notify = packet("tld", rtype::SOA, class::IN, Some((1232, 0, false)));
    notify[2] = 4 << 3;
    packets.push(notify);
    packets
}

/// Handles every packet 50 times from each peer over UDP and TCP, after a warm-up round;
/// returns the answers sent and the allocations counted in the second round.
fn run_counted(pipeline: &Pipeline, packets: &[Vec<u8>], peers: &[&str]) -> (usize, u64) {
    let peers: Vec<std::net::IpAddr> = peers.iter().map(|p| p.parse().unwrap()).collect();
    let mut ev = Event::new();
    let mut run = |count: bool| {
        COUNT.with(|c| c.set(0));
        COUNTING.with(|c| c.set(count));
        let mut answered = 0;
        for _ in 0..50 {
            for p in packets {
                for &peer in &peers {
                    for t in [Transport::Udp, Transport::Tcp] {
                        answered += usize::from(pipeline.handle(p, peer, t, &mut ev).is_some());
                    }
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
    run(true)
}

#[test]
fn steady_state_queries_do_not_allocate() {
    let config = Config::parse(include_str!("../../deploy/satellite.example.toml")).unwrap();
    let pipeline = Pipeline::new(
        Selector::<Dns>::build(&config.selector).unwrap(),
        Arc::new(ServedStore::new(Served::dns_only(zones()))),
        config.nsid(),
    );
    let packets = dns_packets();
    let (answered, allocations) = run_counted(&pipeline, &packets, &["127.0.0.1"]);
    assert!(answered > 50 * packets.len());
    assert_eq!(allocations, 0, "{allocations} allocations in steady state");
    // Every query of both rounds was counted (by the same allocation-free path): the
    // counters, the outcomes and the answer-time histogram.
    let t = pipeline.stats.totals();
    let handled = (2 * 50 * 2 * packets.len()) as u64;
    assert_eq!(
        t.received(Transport::Udp) + t.received(Transport::Tcp),
        handled
    );
    assert_eq!(t.latency.iter().sum::<u64>(), handled);
    assert_eq!(
        t.by_rcode().iter().sum::<u64>(),
        t.outcome(StatsOutcome::Answered)
            + t.outcome(StatsOutcome::Truncated)
            + t.outcome(StatsOutcome::Slipped)
    );
    // `answered` is the second round's: half of what was sent in full or truncated.
    assert_eq!(
        (t.outcome(StatsOutcome::Answered) + t.outcome(StatsOutcome::Truncated)) as usize,
        2 * answered
    );
    assert!(t.outcome(StatsOutcome::Truncated) > 0 && t.outcome(StatsOutcome::Dropped) > 0);
}

/// DO queries to a signed zone (NSEC3 opt-out and NSEC): signed apex RRsets, DNSKEY, a
/// referral to a signed and to an unsigned delegation, NXDOMAIN at two depths (the SHA-1 of
/// the next closer name), NODATA, wildcard answer and NODATA, DS present and absent, and
/// answers that truncate: nothing allocates.
#[test]
fn signed_do_queries_do_not_allocate() {
    use orrery_proto::dnssec::Denial;
    let config = Config::parse(include_str!("../../deploy/satellite.example.toml")).unwrap();
    for denial in [Denial::Nsec3OptOut, Denial::Nsec] {
        let zones = signed_zones(denial);
        assert!(zones.zones()[0].signed.is_signed());
        let pipeline = Pipeline::new(
            Selector::<Dns>::build(&config.selector).unwrap(),
            Arc::new(ServedStore::new(Served::dns_only(zones))),
            config.nsid(),
        );
        let mut packets = Vec::new();
        for (name, t) in [
            ("tld", rtype::SOA),
            ("tld", rtype::NS),
            ("tld", 48),
            ("tld", 51),
            ("tld", rtype::TXT),
            ("tld", rtype::ANY),
            ("www.foo.tld", rtype::A),
            ("sec.tld", rtype::A),
            ("sec.tld", rtype::DS),
            ("foo.tld", rtype::DS),
            ("nope.tld", rtype::A),
            ("a.b.nope.tld", rtype::A),
            ("a.nic.tld", rtype::A),
            ("a.nic.tld", rtype::TXT),
            ("nic.tld", rtype::A),
            ("x.y.w.tld", rtype::A),
            ("x.y.w.tld", rtype::TXT),
            ("big.tld", rtype::A),
        ] {
            // `packet` sets DO with EDNS; 512 octets makes the larger answers truncate.
            for edns in [Some((512, 0, false)), Some((1232, 0, true))] {
                packets.push(packet(name, t, class::IN, edns));
            }
        }
        let (answered, allocations) = run_counted(&pipeline, &packets, &["127.0.0.1"]);
        assert!(answered >= 50 * packets.len(), "{answered}");
        assert_eq!(
            allocations, 0,
            "{allocations} allocations answering DO queries ({denial:?})"
        );
    }
}

/// The same queries on a satellite that serves zone transfers and a catalog zone: the TCP
/// edge's test for a transfer, the pipeline's test for the queries the transfer service
/// answers (IXFR over UDP, the catalog's SOA) and its look for a TSIG (queries with an OPT
/// have an additional record) allocate nothing for unsigned queries.
#[test]
fn steady_state_queries_with_transfers_served_do_not_allocate() {
    let config = Config::parse(include_str!("../../deploy/satellite.example.toml")).unwrap();
    let served = Arc::new(ServedStore::new(Served::dns_only(zones())));
    let xfr = orrery_proto::link::XfrSettings {
        keys: vec![orrery_proto::link::TsigKey {
            name: Name::from_ascii("k1").unwrap(),
            algorithm: orrery_proto::link::TsigAlgorithm::HmacSha256,
            secret: vec![1; 32],
        }],
        // The pipeline compares SOA queries with the catalog's name.
        catalog_zone: Some(Name::from_ascii("catalog.invalid").unwrap()),
        ..Default::default()
    };
    let service = Arc::new(orrery_satellite::xfr::XfrService::new(
        &xfr,
        Arc::clone(&served),
    ));
    let pipeline = Pipeline::new(
        Selector::<Dns>::build(&config.selector).unwrap(),
        served,
        config.nsid(),
    )
    .with_xfr(Some(service));
    let packets = dns_packets();
    for p in &packets {
        // What the TCP loop asks of every query before the Selector.
        let _ = std::hint::black_box(orrery_satellite::xfr::transfer_qtype(p));
    }
    let (answered, allocations) = run_counted(&pipeline, &packets, &["127.0.0.1"]);
    assert!(answered > 50 * packets.len());
    assert_eq!(allocations, 0, "{allocations} allocations in steady state");
}

/// With `serve_expired = false` (the expiry clock handed to the lookup leaf): a fresh zone's
/// answers and an expired zone's SERVFAILs allocate nothing either.
#[test]
fn queries_with_serve_expired_off_do_not_allocate() {
    use orrery_satellite::expiry::Expiry;
    let config = Config::parse(include_str!("../../deploy/satellite.example.toml")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let packets = dns_packets();
    for (heard, servfail) in [(now, false), (0, true)] {
        let pipeline = Pipeline::new(
            Selector::<Dns>::build(&config.selector).unwrap(),
            Arc::new(ServedStore::new(Served::dns_only(zones()))),
            config.nsid(),
        )
        .with_expiry(Some(Arc::new(Expiry::heard_at(heard))));
        let (answered, allocations) = run_counted(&pipeline, &packets, &["127.0.0.1"]);
        assert!(answered > 50 * packets.len());
        assert_eq!(
            allocations, 0,
            "{allocations} allocations (expired: {servfail})"
        );
        let servfails = pipeline.stats.totals().by_rcode()[2];
        assert_eq!(servfails > 0, servfail, "SERVFAIL answers: {servfails}");
    }
}

/// Counting a query by itself — on a thread that never counted before (its slot is taken
/// then), then in steady state — allocates nothing.
#[test]
fn counting_a_query_does_not_allocate() {
    let stats = QueryStats::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            COUNT.with(|c| c.set(0));
            COUNTING.with(|c| c.set(true));
            for i in 0..10_000u32 {
                stats.record(
                    if i % 2 == 0 {
                        Transport::Udp
                    } else {
                        Transport::Tcp
                    },
                    Qtype::of((i % 300) as u16),
                    StatsOutcome::ALL[(i % 5) as usize],
                    (i % 24) as u16,
                    Duration::from_nanos(u64::from(i) * 997),
                );
            }
            COUNTING.with(|c| c.set(false));
            assert_eq!(COUNT.with(Cell::get), 0, "allocations while counting");
        });
    });
    assert_eq!(stats.totals().latency.iter().sum::<u64>(), 10_000);
}

/// The same with response rate limiting in the chain, limiting, slipping and dropping answers
/// from IPv4, IPv6 and IPv4-mapped sources, and exempting one.
#[test]
fn steady_state_queries_with_rrl_do_not_allocate() {
    let text = include_str!("../../deploy/satellite.example.toml")
        .replacen(
            "[[chains]]",
            "[leaves.rrl]\nkind = \"rrl\"\nrate = 1\nslip = 2\ntable_size = 64\n\
             exempt = [\"10.9.0.0/16\"]\n\n[[chains]]",
            1,
        )
        .replacen(
            "leaves = [\"validate\", ",
            "leaves = [\"rrl\", \"validate\", ",
            1,
        );
    let config = Config::parse(&text).unwrap();
    assert!(config.selector.chains[0].leaves.contains(&"rrl".to_owned()));
    let pipeline = Pipeline::new(
        Selector::<Dns>::build(&config.selector).unwrap(),
        Arc::new(ServedStore::new(Served::dns_only(zones()))),
        config.nsid(),
    );
    let packets = dns_packets();
    let peers = [
        "198.51.100.1",
        "198.51.100.2",
        "2001:db8::1",
        "::ffff:203.0.113.5",
        "10.9.1.1",
    ];
    let (answered, allocations) = run_counted(&pipeline, &packets, &peers);
    assert_eq!(allocations, 0, "{allocations} allocations with RRL on");
    let mut counters = std::collections::BTreeMap::new();
    pipeline.selector.counters(&mut |leaf, counter, value| {
        if leaf == "rrl" {
            counters.insert(counter.to_owned(), value);
        }
    });
    assert!(counters["slipped"] > 1000, "{counters:?}");
    assert!(counters["dropped"] > 1000, "{counters:?}");
    // The typed counters saw the same: the leaf's drops and slips over both rounds.
    let t = pipeline.stats.totals();
    assert_eq!(t.outcome(StatsOutcome::Slipped), counters["slipped"]);
    assert_eq!(t.outcome(StatsOutcome::RateLimited), counters["dropped"]);
    // TCP and the exempt source are answered in full.
    assert!(
        answered > 50 * packets.len() * (peers.len() + 1),
        "{answered}"
    );
}

/// A UDP worker answering bursts (so batches of many datagrams) on a wildcard socket (so with
/// a packet-info control message per datagram) allocates nothing once it runs.
#[test]
fn batched_udp_worker_does_not_allocate() {
    let config = Config::parse(include_str!("../../deploy/satellite.example.toml")).unwrap();
    let pipeline = Pipeline::new(
        Selector::<Dns>::build(&config.selector).unwrap(),
        Arc::new(ServedStore::new(Served::dns_only(zones()))),
        config.nsid(),
    );
    let group = UdpSockets::bind("0.0.0.0:0".parse().unwrap(), 1, &UdpSettings::default()).unwrap();
    let port = group.local_addr().unwrap().port();
    let mut packets = Vec::new();
    for (name, t) in [
        ("www.foo.tld", rtype::A),
        ("tld", rtype::SOA),
        ("a.nic.tld", rtype::AAAA),
        ("nic.tld", rtype::A),
        ("big.tld", rtype::A),
        ("example.com", rtype::A),
    ] {
        for edns in [None, Some((4096, 0, true)), Some((1232, 1, false))] {
            packets.push(packet(name, t, class::IN, edns));
        }
    }
    let cancel = CancellationToken::new();
    let client = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.connect(("127.0.0.1", port)).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut buf = [0u8; 4096];
            let mut round = |packets: &[Vec<u8>]| {
                // No query in flight when the round starts: a whole round is one burst.
                for p in packets {
                    sock.send(p).unwrap();
                }
                // A datagram the worker drops (not a query) among them.
                sock.send(&[1, 2, 3]).unwrap();
                for _ in packets {
                    let n = sock.recv(&mut buf).expect("an answer to every query");
                    assert_eq!(&buf[..2], &packets[0][..2], "id");
                    assert!(n > 12);
                }
            };
            for _ in 0..3 {
                round(&packets);
            }
            ARMED.store(true, Ordering::SeqCst);
            for _ in 0..30 {
                round(&packets);
            }
            ARMED.store(false, Ordering::SeqCst);
            cancel.cancel();
        })
    };
    WORKER.with(|w| w.set(true));
    // The gate itself works: an allocation while armed is seen (before the client arms it).
    ARMED.store(true, Ordering::SeqCst);
    drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
    ARMED.store(false, Ordering::SeqCst);
    assert_eq!(WORKER_COUNT.swap(0, Ordering::SeqCst), 1);
    group.serve_here(&pipeline, &cancel).unwrap();
    WORKER.with(|w| w.set(false));
    client.join().unwrap();
    let n = WORKER_COUNT.load(Ordering::SeqCst);
    assert_eq!(n, 0, "{n} allocations in a UDP worker answering 30 bursts");
}
