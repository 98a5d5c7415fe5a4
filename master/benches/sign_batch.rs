//! Signing in the change path (`master/src/signing.rs`): the cost of one batch to the master's
//! signer, on every core. `cargo bench -p orrery-master --bench sign_batch [-- DOMAINS DS]`
//! (default 100,000 delegations, 8 % with DS, then a batch giving 10,000 more domains a DS;
//! algorithm 13, KSK + ZSK, NSEC3 opt-out). Prints the initial signing, the big batch, and a
//! batch of one insecure and one secure delegation (the fixed cost of a batch). The store read
//! is not in the figure: the batches are built in memory.

use std::sync::Arc;
use std::time::Instant;

use orrery_master::signing::ZoneSigner;
use orrery_proto::dnssec::{Algorithm, DnssecPolicy, KeyRole, KeyState, ZoneDnssec, ZoneKey};
use orrery_proto::{Change, ChangeBatch, Domain, Ds, Name, Soa, Timestamp, Zone};
use orrery_signer::key::dnskey_rdata;
use orrery_signer::{FileKeyStore, KeyStore, key_tag};

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn domain(i: usize, ds: bool, serial_seed: u64) -> Domain {
    Domain {
        name: n(&format!("d{i:07}x.test")),
        zone: n("test"),
        roid: format!("D{i}"),
        registrar: "R1".into(),
        created: Timestamp(0),
        updated: Timestamp(0),
        expires: Timestamp(2_000_000_000),
        statuses: vec![],
        registrant: None,
        admin: None,
        tech: None,
        billing: None,
        nameservers: vec![
            n(&format!("ns{}.hoster{}.example", i % 100, i % 50)),
            n(&format!("ns{}.hoster{}.example", (i + 1) % 100, i % 50)),
        ],
        ds: if ds {
            vec![Ds {
                key_tag: (i % 65_536) as u16,
                algorithm: 13,
                digest_type: 2,
                digest: (0..32)
                    .map(|j| (i as u64 ^ serial_seed).wrapping_shr(j) as u8)
                    .collect(),
            }]
        } else {
            vec![]
        },
    }
}

fn zone(serial: i64) -> Zone {
    Zone {
        name: n("test"),
        soa: Soa {
            mname: n("a.nic.test"),
            rname: n("hostmaster.nic.test"),
            refresh: 1800,
            retry: 900,
            expire: 2_419_200,
            minimum: 3600,
        },
        soa_ttl: 3600,
        ns_ttl: 172_800,
        ds_ttl: 86_400,
        nameservers: vec![n("a.nic.example")],
        serial,
    }
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<usize>().ok());
    let domains = args.next().unwrap_or(100_000);
    let new_ds = args.next().unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let keys = FileKeyStore::open(&dir.path().join("keys")).unwrap();
    let mut zone_keys = Vec::new();
    for (role, flags) in [(KeyRole::Ksk, 257), (KeyRole::Zsk, 256)] {
        let alg = Algorithm::EcdsaP256Sha256;
        let (locator, k) = keys.generate(&n("test"), alg, flags).unwrap();
        let public_key = k.public_key();
        zone_keys.push(ZoneKey {
            role,
            algorithm: alg,
            key_tag: key_tag(&dnskey_rdata(flags, alg, &public_key)),
            public_key,
            state: KeyState::Active,
            locator,
            created: Timestamp(0),
            published: None,
            activated: None,
            retired: None,
            revoked: None,
            ds_seen: None,
        });
    }
    let dnssec = ZoneDnssec {
        policy: DnssecPolicy::tld_default(Timestamp(1_800_000_000)),
        keys: zone_keys,
    };
    let states = vec![(n("test"), Some(dnssec))];
    let mut signer = ZoneSigner::new(Some(Arc::new(keys)));
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());

    // 8 % with DS, as `orrery-admin load-synthetic`.
    let mut changes = vec![Change::Zone(zone(1))];
    changes.extend((0..domains).map(|i| Change::Domain(domain(i, i % 100 < 8, 0))));
    let full = ChangeBatch {
        after: 0,
        upto: 1,
        changes,
    };
    let t = Instant::now();
    let out = signer.on_batch(&full, &states);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "initial: {domains} delegations, {} sets, {} signatures in {secs:.2} s ({:.0}/s on {threads} threads)",
        out.changes.len(),
        out.fresh_signatures,
        out.fresh_signatures as f64 / secs
    );

    // A batch giving `new_ds` insecure delegations a DS.
    let mut changes = vec![Change::Zone(zone(2))];
    changes.extend(
        (0..domains)
            .filter(|i| i % 100 >= 8)
            .take(new_ds)
            .map(|i| Change::Domain(domain(i, true, 1))),
    );
    let batch = ChangeBatch {
        after: 1,
        upto: 2,
        changes,
    };
    let t = Instant::now();
    let out = signer.on_batch(&batch, &states);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "batch of {new_ds} new DS: {} DNSSEC changes, {} signatures in {secs:.2} s ({:.0}/s on {threads} threads)",
        out.changes.len(),
        out.fresh_signatures,
        out.fresh_signatures as f64 / secs
    );

    // The fixed cost: one insecure delegation, then one secure one.
    for (k, ds) in [(0usize, false), (1, true)] {
        let batch = ChangeBatch {
            after: 2 + k as i64,
            upto: 3 + k as i64,
            changes: vec![
                Change::Zone(zone(3 + k as i64)),
                Change::Domain(domain(domains + k, ds, 2)),
            ],
        };
        let t = Instant::now();
        let out = signer.on_batch(&batch, &states);
        println!(
            "batch of one {} delegation: {} DNSSEC changes, {} signatures in {:.0} ms",
            if ds { "secure" } else { "insecure" },
            out.changes.len(),
            out.fresh_signatures,
            t.elapsed().as_secs_f64() * 1e3
        );
    }
}
