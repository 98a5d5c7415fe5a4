//! Signing a synthetic TLD from scratch, on every core (`sign_zone` signs in parallel): `cargo bench -p orrery-signer --bench
//! sign_zone [-- DOMAINS]` (default 1,000,000 delegations, 2 NS each, 8 % with one DS, the share
//! `orrery-admin load-synthetic` uses). Prints the time and signatures per second for
//! algorithm 13 with NSEC3 opt-out and algorithm 15 with NSEC, and the bare cost of one
//! signature of each algorithm. The records are built in memory: the store read and the file
//! write of the generator are not in the figure.

use std::time::Instant;

use orrery_proto::dnssec::{Denial, DnssecPolicy, KeyRole, KeyState, ZoneDnssec, ZoneKey};
use orrery_proto::{Ds, Name, Timestamp};
use orrery_signer::key::{PrivateKey, SigningKey, dnskey_rdata};
use orrery_signer::rdata;
use orrery_signer::record::rtype;
use orrery_signer::{Record, key_tag, sign_zone};

fn records(apex: &Name, domains: usize) -> Vec<Record> {
    let soa = rdata::soa(&rdata::Soa {
        mname: &Name::from_ascii("a.nic.test").unwrap(),
        rname: &Name::from_ascii("hostmaster.nic.test").unwrap(),
        serial: 1,
        refresh: 1800,
        retry: 900,
        expire: 2_419_200,
        minimum: 3600,
    });
    let mut out = vec![Record::new(apex.clone(), rtype::SOA, 3600, soa)];
    let ns: Vec<Name> = (0..200)
        .map(|i| Name::from_ascii(&format!("ns{i}.hoster{}.example", i / 2)).unwrap())
        .collect();
    out.push(Record::new(
        apex.clone(),
        rtype::NS,
        172_800,
        rdata::ns(&ns[0]),
    ));
    // A fixed LCG: the same zone every run.
    let mut x: u64 = 13;
    for i in 0..domains {
        let d = Name::from_ascii(&format!("d{i:07}x.test")).unwrap();
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let p = (x >> 33) as usize % 100;
        out.push(Record::new(
            d.clone(),
            rtype::NS,
            172_800,
            rdata::ns(&ns[2 * p]),
        ));
        out.push(Record::new(
            d.clone(),
            rtype::NS,
            172_800,
            rdata::ns(&ns[2 * p + 1]),
        ));
        if (x >> 20) % 100 < 8 {
            let ds = Ds {
                key_tag: (x >> 40) as u16,
                algorithm: 13,
                digest_type: 2,
                digest: (0..32).map(|j| (x >> (j % 56)) as u8).collect(),
            };
            out.push(Record::new(d, rtype::DS, 86_400, rdata::ds(&ds)));
        }
    }
    out
}

fn run(apex: &Name, domains: usize, denial: Denial, key: &PrivateKey) {
    let alg = key.algorithm();
    let public_key = key.public_key();
    let mut policy = DnssecPolicy::tld_default(Timestamp(1_800_000_000));
    policy.denial = denial;
    policy.algorithm = alg;
    let dnssec = ZoneDnssec {
        policy,
        keys: vec![ZoneKey {
            role: KeyRole::Csk,
            algorithm: alg,
            key_tag: key_tag(&dnskey_rdata(257, alg, &public_key)),
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
    let recs = records(apex, domains);
    let n = recs.len();
    let start = Instant::now();
    let signed = sign_zone(apex, recs, &dnssec, &|_| Some(key as &dyn SigningKey)).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    println!(
        "algorithm {} {:?}: {domains} delegations, {n} records in, {} out, {} signatures in {secs:.2} s: {:.0} signatures/s on {threads} threads",
        alg.number(),
        denial,
        signed.records.len(),
        signed.signatures,
        signed.signatures as f64 / secs
    );
}

fn bare(key: &PrivateKey) {
    let data = vec![7u8; 120];
    let n = 20_000;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(key.sign(std::hint::black_box(&data)));
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "algorithm {}: one signature of 120 octets: {:.1} µs ({:.0}/s)",
        key.algorithm().number(),
        secs / f64::from(n) * 1e6,
        f64::from(n) / secs
    );
}

fn main() {
    let domains = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let apex = Name::from_ascii("test").unwrap();
    let p256 = PrivateKey::p256_from_scalar(&[5; 32]).unwrap();
    let ed = PrivateKey::ed25519_from_seed(&[9; 32]).unwrap();
    bare(&p256);
    bare(&ed);
    run(&apex, domains, Denial::Nsec3OptOut, &p256);
    run(&apex, domains, Denial::Nsec, &ed);
}
