//! Never a panic on any input: random and mutated packets thrown at the whole pipeline.

use std::sync::Arc;

use hickory_proto::rr::RecordType;
use orrery_satellite::dns::leaf::Dns;
use orrery_satellite::dns::wire::{Event, Transport};
use orrery_satellite::{Config, Pipeline, Selector, Served, ServedStore, ZoneSet};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::fixtures::registry;
use crate::harness::{EXAMPLE_CONFIG, query};

fn pipeline() -> Pipeline {
    let config = Config::parse(EXAMPLE_CONFIG).unwrap();
    let data = registry();
    Pipeline::new(
        Selector::<Dns>::build(&config.selector).unwrap(),
        Arc::new(ServedStore::new(Served::dns_only(ZoneSet::build(
            data.serial,
            &data.zones,
            &data.domains,
            &data.hosts,
        )))),
        config.nsid(),
    )
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (name, t) in [
        ("www.foo.tld.", RecordType::A),
        ("tld.", RecordType::NS),
        ("signed.tld.", RecordType::DS),
        ("a.nic.tld.", RecordType::ANY),
        ("nope.tld.", RecordType::AAAA),
    ] {
        for edns in [None, Some(512), Some(4096)] {
            seeds.push(query(name, t, edns, true).to_vec().unwrap());
        }
    }
    seeds
}

fn check(p: &Pipeline, ev: &mut Event, packet: &[u8], transport: Transport) {
    if let Some(resp) = p.handle(packet, "127.0.0.1".parse().unwrap(), transport, ev) {
        assert!(resp.len() >= 12);
        if transport == Transport::Udp {
            assert!(resp.len() <= 1232, "{} octets over UDP", resp.len());
        }
        assert_eq!(&resp[..2], &packet[..2], "id echoed");
        // Our own output must parse.
        hickory_proto::op::Message::from_vec(resp).expect("response parses");
    }
}

#[test]
fn random_and_mutated_packets_never_panic() {
    let p = pipeline();
    let mut ev = Event::new();
    let mut rng = StdRng::seed_from_u64(0x0e7e_5a7e);
    let seeds = seeds();
    for i in 0..60_000 {
        let packet: Vec<u8> = if i % 4 == 0 {
            let len = rng.random_range(0..300);
            (0..len).map(|_| rng.random()).collect()
        } else {
            let mut p = seeds[rng.random_range(0..seeds.len())].clone();
            for _ in 0..rng.random_range(1..6) {
                match rng.random_range(0..4) {
                    0 if !p.is_empty() => {
                        let at = rng.random_range(0..p.len());
                        p[at] = rng.random();
                    }
                    1 if !p.is_empty() => {
                        let at = rng.random_range(0..p.len());
                        p.truncate(at);
                    }
                    2 => {
                        let at = rng.random_range(0..=p.len());
                        p.insert(at, rng.random());
                    }
                    _ => {
                        // Header counts and compression-pointer-looking octets.
                        if p.len() > 12 {
                            let at = rng.random_range(4..12);
                            p[at] = rng.random_range(0..4);
                        }
                        p.push(0xC0);
                        p.push(rng.random());
                    }
                }
            }
            p
        };
        let transport = if i % 3 == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        check(&p, &mut ev, &packet, transport);
    }
}
