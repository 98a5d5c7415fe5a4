//! Signing in the change path (`master/src/signing.rs`): the cost of one batch to the master's
//! signer, on every core. `cargo bench -p orrery-master --bench sign_batch [-- DOMAINS DS
//! [both|incremental|whole]]` (default 100,000 delegations, 8 % with DS, then a batch giving
//! 10,000 more domains a DS; algorithm 13, KSK + ZSK, NSEC3 opt-out). Prints the initial
//! signing, the big batch, and batches of one insecure and one secure delegation (the fixed
//! cost of a batch: median and maximum of 20 each). `both` (the default) feeds the same
//! batches in turns to a signer signing incrementally and to one signing the whole zone every
//! batch (the reference path) and checks they publish the same changes. The store read is not
//! in the figure: the batches are built in memory. VmRSS is the process's resident memory.

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
    let mode = std::env::args()
        .skip(1)
        .find(|a| a.parse::<usize>().is_err() && !a.starts_with('-'));
    let modes: Vec<bool> = match mode.as_deref() {
        Some("incremental") => vec![true],
        Some("whole") => vec![false],
        _ => vec![true, false],
    };
    let keys: Arc<FileKeyStore> = Arc::new(keys);
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let label = |incremental: bool| if incremental { "incremental" } else { "whole" };
    let mut signers: Vec<(bool, ZoneSigner)> = modes
        .iter()
        .map(|&inc| {
            let mut s = ZoneSigner::new(Some(keys.clone()));
            s.set_incremental(inc);
            (inc, s)
        })
        .collect();

    // 8 % with DS, as `orrery-admin load-synthetic`.
    let mut changes = vec![Change::Zone(zone(1))];
    changes.extend((0..domains).map(|i| Change::Domain(domain(i, i % 100 < 8, 0))));
    let full = ChangeBatch {
        after: 0,
        upto: 1,
        changes,
    };
    for (inc, signer) in &mut signers {
        let rss = vm_rss_kib();
        let t = Instant::now();
        let out = signer.on_batch(&full, &states);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{}: initial: {domains} delegations, {} sets, {} signatures in {secs:.2} s ({:.0}/s on {threads} threads, {:.0}/s per thread); VmRSS +{} MiB",
            label(*inc),
            out.changes.len(),
            out.fresh_signatures,
            out.fresh_signatures as f64 / secs,
            out.fresh_signatures as f64 / secs / threads as f64,
            (vm_rss_kib() - rss) / 1024,
        );
    }

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
    let mut outs = Vec::new();
    for (inc, signer) in &mut signers {
        let t = Instant::now();
        let out = signer.on_batch(&batch, &states);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{}: batch of {new_ds} new DS: {} DNSSEC changes, {} signatures in {secs:.2} s ({:.0}/s on {threads} threads)",
            label(*inc),
            out.changes.len(),
            out.fresh_signatures,
            out.fresh_signatures as f64 / secs
        );
        outs.push(out.changes);
    }
    assert!(
        outs.windows(2).all(|w| w[0] == w[1]),
        "both paths publish the same changes"
    );

    // The fixed cost: one insecure delegation, then one secure one, in turns; each batch to
    // every signer in turn.
    let rounds = 20usize;
    let mut times: Vec<[Vec<f64>; 2]> = signers.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    let mut counts: Vec<[(usize, u64); 2]> = signers.iter().map(|_| [(0, 0); 2]).collect();
    for r in 0..rounds {
        for (k, ds) in [(0usize, false), (1, true)] {
            let serial = 3 + (2 * r + k) as i64;
            let batch = ChangeBatch {
                after: serial - 1,
                upto: serial,
                changes: vec![
                    Change::Zone(zone(serial)),
                    Change::Domain(domain(domains + 2 * r + k, ds, 2)),
                ],
            };
            let mut outs = Vec::new();
            for (j, (_, signer)) in signers.iter_mut().enumerate() {
                let t = Instant::now();
                let out = signer.on_batch(&batch, &states);
                times[j][k].push(t.elapsed().as_secs_f64() * 1e3);
                counts[j][k] = (out.changes.len(), out.fresh_signatures);
                outs.push(out.changes);
            }
            assert!(
                outs.windows(2).all(|w| w[0] == w[1]),
                "both paths publish the same changes"
            );
        }
    }
    for (j, (inc, _)) in signers.iter().enumerate() {
        for (k, what) in [(0usize, "insecure"), (1, "secure")] {
            let mut t = times[j][k].clone();
            t.sort_by(f64::total_cmp);
            println!(
                "{}: batch of one {what} delegation: {} DNSSEC changes, {} signatures; median {:.2} ms, max {:.2} ms ({rounds} batches)",
                label(*inc),
                counts[j][k].0,
                counts[j][k].1,
                t[t.len() / 2],
                t[t.len() - 1],
            );
        }
    }
}

/// The process's resident memory in KiB (Linux; 0 elsewhere).
fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
