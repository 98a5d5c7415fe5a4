//! What one batch costs a satellite's apply, against the size of the zone (issue 13/11: "a
//! satellite's batch apply must not grow with the zone"), with no master and no database.
//!
//! ```text
//! apply_cost STATE_FILE [BATCHES] [--directory] [--ixfr WINDOW]
//! ```
//!
//! Builds the served state of STATE_FILE (DNS only, as a satellite without Whois/RDAP; the
//! directory too with `--directory`; IXFR differences kept with `--ixfr`), then applies
//! BATCHES (2,000 by default) one-change batches through [`ServedStore::apply`], the call the
//! link makes for each batch from the master, on this thread. Each batch gives a delegation
//! without a DS one, as `bench/ds-validated.sh`'s changes mostly do; in a signed zone it also
//! carries what the master's signer sends with it: the RRSIG over the new DS, the delegation's
//! new NSEC3 (opt-out: a delegation with a DS enters the chain) and its RRSIG, and the
//! previous NSEC3 rewritten (its next hash) with its RRSIG. The signatures and hashes are
//! made up (the satellite checks neither); their sizes are the file's own.
//!
//! Prints the time of each batch's apply (median, 10th and 90th percentile, max, in µs; the
//! apply runs on one thread and frees the version it replaced there, so this is its CPU) and
//! then three batches of 10,000 domains, each while a reader holds the version before it: a DS
//! added to each (as above), serverHold set on 10,000 others, and taken off again (the batch of
//! `bench/compare-peers.sh`'s master-fed runs). For each, its time, the heap both versions hold
//! and the peak heap above the steady state (a counting allocator; the batch's own changes are
//! outside both).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use orrery_proto::dnssec::{DnssecRrset, DnssecRrsetId, rrset_type};
use orrery_proto::{Change, ChangeBatch, Domain, Ds, EppStatus, Name};
use orrery_satellite::served::{BuildOptions, Served, ServedStore};
use orrery_satellite::zone::dnssec::{Hash, nsec3_owner};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        if new >= layout.size() {
            let live = LIVE.fetch_add(new - layout.size(), Ordering::Relaxed) + new - layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// What a signed file lends the made-up DNSSEC changes: its apex and a set of each kind.
struct Templates {
    apex: Name,
    rrsig: DnssecRrset,
    nsec3: DnssecRrset,
    /// Owners of NSEC3 sets in the file (the "previous" NSEC3 a batch rewrites).
    nsec3_owners: Vec<Name>,
}

fn templates(objects: &orrery_proto::state_file::Objects) -> Option<Templates> {
    let (mut rrsig, mut nsec3, mut owners) = (None, None, Vec::new());
    for c in objects.iter() {
        let Change::Dnssec(set) = c else { continue };
        match (set.id.rtype, set.id.covered) {
            (rrset_type::RRSIG, rrset_type::NSEC3) if rrsig.is_none() => rrsig = Some(set.clone()),
            (rrset_type::NSEC3, _) => {
                if nsec3.is_none() {
                    nsec3 = Some(set.clone());
                }
                if owners.len() < 100_000 {
                    owners.push(set.id.owner.clone());
                }
            }
            _ => {}
        }
    }
    let (rrsig, nsec3) = (rrsig?, nsec3?);
    Some(Templates {
        apex: nsec3.id.zone.clone(),
        rrsig,
        nsec3,
        nsec3_owners: owners,
    })
}

/// splitmix64: made-up hashes and digests, deterministic.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn set(
    t: &Templates,
    owner: &Name,
    rtype: u16,
    covered: u16,
    like: &DnssecRrset,
    k: u64,
) -> Change {
    let mut rdata = like.rdata.clone();
    // A different signature (or next hash) each time, as a re-signing gives.
    if let Some(last) = rdata.last_mut().and_then(|r| r.last_mut()) {
        *last ^= k as u8 | 1;
    }
    Change::Dnssec(DnssecRrset {
        id: DnssecRrsetId {
            zone: t.apex.clone(),
            owner: owner.clone(),
            rtype,
            covered,
        },
        ttl: like.ttl,
        rdata,
    })
}

/// The changes of one "a DS added" (see the module docs), the `k`-th of the run.
fn ds_added(d: &Domain, t: Option<&Templates>, k: u64) -> Vec<Change> {
    let mut d = d.clone();
    let mut digest = Vec::with_capacity(32);
    for w in 0..4 {
        digest.extend_from_slice(&mix(k * 4 + w).to_be_bytes());
    }
    d.ds = vec![Ds {
        key_tag: k as u16,
        algorithm: 13,
        digest_type: 2,
        digest,
    }];
    let mut out = Vec::with_capacity(6);
    if let Some(t) = t {
        out.push(set(t, &d.name, rrset_type::RRSIG, 43, &t.rrsig, k));
        let mut hash: Hash = [0; 20];
        for (i, b) in hash.iter_mut().enumerate() {
            *b = mix(k ^ (i as u64) << 40) as u8;
        }
        let mut wire = [0u8; 255];
        let len = nsec3_owner(&hash, t.apex.as_wire(), &mut wire).expect("short apex");
        let (owner, _) = Name::from_wire(&wire[..len], 0).expect("an owner name");
        out.push(set(t, &owner, rrset_type::NSEC3, 0, &t.nsec3, k));
        out.push(set(
            t,
            &owner,
            rrset_type::RRSIG,
            rrset_type::NSEC3,
            &t.rrsig,
            k,
        ));
        let prev = &t.nsec3_owners[k as usize % t.nsec3_owners.len()];
        out.push(set(t, prev, rrset_type::NSEC3, 0, &t.nsec3, k));
        out.push(set(
            t,
            prev,
            rrset_type::RRSIG,
            rrset_type::NSEC3,
            &t.rrsig,
            k,
        ));
    }
    out.push(Change::Domain(d));
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let value = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let positional: Vec<&String> = {
        let mut skip = false;
        args.iter()
            .filter(|a| {
                let keep = !skip && !a.starts_with("--");
                skip = *a == "--ixfr";
                keep
            })
            .collect()
    };
    let Some(state) = positional.first() else {
        anyhow::bail!("usage: apply_cost STATE_FILE [BATCHES] [--directory] [--ixfr WINDOW]");
    };
    let batches: usize = positional.get(1).map_or(Ok(2_000), |s| s.parse())?;
    let window: usize = value("--ixfr").map_or(Ok(0), |s| s.parse())?;
    let directory = flag("--directory");

    let base = live();
    let (header, objects) = orrery_proto::state_file::read_objects(
        state.as_ref(),
        orrery_proto::state_file::Detail::Full,
    )?;
    let with_objects = live();
    let templates = templates(&objects);
    let big = 10_000;
    let domains: Vec<Domain> = objects
        .iter()
        .filter_map(|c| match c {
            Change::Domain(d)
                if d.is_delegated() && d.ds.is_empty() && d.statuses == [EppStatus::Ok] =>
            {
                Some(d.clone())
            }
            _ => None,
        })
        .take(batches + 2 * big)
        .collect();
    anyhow::ensure!(
        domains.len() == batches + 2 * big,
        "the file has fewer than {} delegations without a DS",
        batches + 2 * big
    );
    // What is held beside the served state (the domains and sets the batches are made from).
    let before = base + (live() - with_objects);
    let served = Served::from_objects(header.serial, objects, drop, BuildOptions { directory });
    let delegations: usize = served
        .zones
        .zones()
        .iter()
        .map(|z| z.delegation_count())
        .sum();
    // The allocator's free lists as a satellite leaves them after its build (which hands the
    // objects' memory back, served::dispose_in_background): without this the first large
    // allocation of some batch pays for consolidating the million objects just freed.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
    let store = ServedStore::new(served);
    store.set_ixfr_window(window);
    let steady = live().saturating_sub(before);
    println!(
        "apply_cost: {delegations} delegations, {}, directory {directory}, IXFR window {window}; steady state {:.1} MB",
        if templates.is_some() {
            "signed (NSEC3)"
        } else {
            "unsigned"
        },
        steady as f64 / 1e6
    );

    let mut times = Vec::with_capacity(batches);
    for (k, d) in domains[..batches].iter().enumerate() {
        let serial = store.serial();
        let batch = ChangeBatch {
            after: serial,
            upto: serial + 1,
            changes: ds_added(d, templates.as_ref(), k as u64),
        };
        let started = Instant::now();
        store.apply(batch)?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let changes = ds_added(&domains[0], templates.as_ref(), 0).len();
    let worst = (0..times.len()).max_by(|&a, &b| times[a].total_cmp(&times[b]));
    println!(
        "first batch {:.0} µs; slowest: batch {} of {batches}",
        times[0],
        worst.unwrap_or(0)
    );
    times.sort_by(f64::total_cmp);
    println!(
        "{batches} batches of 1 DS added ({changes} changes each): apply µs median {:.0}, p10 {:.0}, p90 {:.0}, max {:.0}",
        percentile(&times, 0.5),
        percentile(&times, 0.1),
        percentile(&times, 0.9),
        times[times.len() - 1]
    );

    // Batches of 10,000 changes, each applied while a reader holds the version before it:
    // DS added, then (as bench/compare-peers.sh's master-fed batch) serverHold set on 10,000
    // other delegations and taken off again.
    let steady = live().saturating_sub(before);
    let ds = || -> Vec<Change> {
        domains[batches..batches + big]
            .iter()
            .enumerate()
            .flat_map(|(k, d)| ds_added(d, templates.as_ref(), (batches + k) as u64))
            .collect()
    };
    let with_status = |status: EppStatus| -> Vec<Change> {
        domains[batches + big..]
            .iter()
            .map(|d| {
                let mut d = d.clone();
                d.statuses = vec![status];
                Change::Domain(d)
            })
            .collect()
    };
    for what in ["DS added", "serverHold set", "serverHold taken off"] {
        let without = live();
        let changes = match what {
            "DS added" => ds(),
            "serverHold set" => with_status(EppStatus::ServerHold),
            _ => with_status(EppStatus::Ok),
        };
        // `apply` frees the batch when it is done: its bytes are added back below.
        let batch_bytes = live().saturating_sub(without);
        let serial = store.serial();
        let batch = ChangeBatch {
            after: serial,
            upto: serial + 1,
            changes,
        };
        let held = store.load_full();
        let at = live();
        PEAK.store(at, Ordering::Relaxed);
        let started = Instant::now();
        store.apply(batch)?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(at);
        let both = (live() + batch_bytes).saturating_sub(at);
        drop(held);
        println!(
            "10,000 domains, {what}, in one batch, the old version held: applied in {ms:.0} ms, both versions +{:.1} MB, peak +{:.1} MB ({:.3}x steady)",
            both as f64 / 1e6,
            peak as f64 / 1e6,
            (steady + peak) as f64 / steady as f64
        );
    }
    Ok(())
}
