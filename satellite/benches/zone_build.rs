//! Build time and heap bytes per delegation of the DNS tables at 1,000,000 delegations, and the
//! memory a 10,000-change batch takes while a query still holds the version before it.
//!
//! ```text
//! cargo bench -p orrery-satellite --bench zone_build [-- DOMAINS [RUNS]]
//! ```
//!
//! The data has the shape of `orrery-admin load-synthetic` (store/src/synthetic.rs): every
//! domain two nameservers, about 70% at a pool of 5,000 out-of-zone hosting providers and 30%
//! at in-bailiwick `ns1`/`ns2.<name>` with A glue (AAAA for half), about 8% with one DS,
//! 1.5% on hold. Heap is counted by a global allocator that tracks live and peak bytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use orrery_proto::state_file::Objects;
use orrery_proto::{Change, ChangeBatch, Domain, Ds, EppStatus, Host, Name, Soa, Timestamp, Zone};
use orrery_satellite::served::{BuildOptions, Served, ServedStore};
use orrery_satellite::{SnapshotData, ZoneSet};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

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

fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

/// xorshift64*: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

const SYLLABLES: &[&str] = &[
    "an", "bel", "cor", "dan", "el", "fir", "gal", "hen", "is", "jo", "kal", "lum", "mar", "nor",
    "ol", "pax", "qui", "ras", "sol", "tur", "ul", "ven", "wen", "xy", "yor", "zen",
];

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn host(name: Name, addresses: Vec<IpAddr>) -> Host {
    Host {
        name,
        addresses,
        registrar: None,
        created: Timestamp(0),
        updated: Timestamp(0),
    }
}

/// The zone, its hosts and `count` domains starting at index `from`, as Change objects.
fn objects(from: usize, count: usize, rng: &mut Rng, with_zone: bool) -> Vec<Change> {
    let mut out = Vec::with_capacity(count * 2);
    if with_zone {
        out.push(Change::Zone(Zone {
            name: n("tld"),
            soa: Soa {
                mname: n("a.nic.tld"),
                rname: n("hostmaster.nic.tld"),
                refresh: 1800,
                retry: 900,
                expire: 604800,
                minimum: 300,
            },
            soa_ttl: 3600,
            ns_ttl: 86400,
            ds_ttl: 3600,
            nameservers: vec![n("a.nic.tld"), n("b.nic.tld")],
            serial: 1,
        }));
        out.push(Change::Host(host(
            n("a.nic.tld"),
            vec!["127.0.0.1".parse().unwrap()],
        )));
        out.push(Change::Host(host(
            n("b.nic.tld"),
            vec!["127.0.0.2".parse().unwrap()],
        )));
    }
    for i in from..from + count {
        let mut label = String::new();
        for _ in 0..2 + rng.below(3) {
            label.push_str(SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize]);
        }
        let name = format!("{label}{i}.tld");
        let roll = rng.below(1000);
        let statuses = if roll < 15 {
            vec![EppStatus::ServerHold]
        } else {
            vec![EppStatus::Ok]
        };
        let nameservers = if rng.chance(0.30) {
            let v6 = rng.chance(0.5);
            (1..=2)
                .map(|k| {
                    let ns = n(&format!("ns{k}.{name}"));
                    let c = (2 * i + k) as u32;
                    let mut addrs = vec![IpAddr::V4(Ipv4Addr::from(0xC612_0000 | (c & 0x1_ffff)))];
                    if v6 {
                        addrs.push(IpAddr::V6(Ipv6Addr::from(
                            0x2001_0db8_u128 << 96 | c as u128,
                        )));
                    }
                    out.push(Change::Host(host(ns.clone(), addrs)));
                    ns
                })
                .collect()
        } else {
            let p = rng.below(2500);
            (1..=2)
                .map(|k| n(&format!("ns{k}.provider{p}.dns-hosting.example")))
                .collect()
        };
        let ds = if rng.chance(0.08) {
            vec![Ds {
                key_tag: rng.below(65536) as u16,
                algorithm: 13,
                digest_type: 2,
                digest: (0..32).map(|_| rng.next() as u8).collect(),
            }]
        } else {
            vec![]
        };
        out.push(Change::Domain(Domain {
            name: n(&name),
            zone: n("tld"),
            roid: format!("D{i}-TLD"),
            registrar: "r1".into(),
            created: Timestamp(0),
            updated: Timestamp(0),
            expires: Timestamp(0),
            statuses,
            registrant: None,
            admin: None,
            tech: None,
            billing: None,
            nameservers,
            ds,
        }));
    }
    out
}

/// CPU time (ns) of this whole process, threads that have ended included (`/proc/self/stat`,
/// utime + stime, in clock ticks of 10 ms).
fn process_cpu() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
            Some((ticks(11)? + ticks(12)?) * 10_000_000)
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let domains: usize = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("DOMAINS"));
    let runs: usize = args.next().map_or(3, |a| a.parse().expect("RUNS"));
    println!(
        "zone_build: {domains} domains, {runs} runs ({}), {} build threads",
        if std::env::var_os("ORRERY_BENCH_DIRECTORY").is_some() {
            "DNS tables and the Whois/RDAP directory"
        } else {
            "DNS tables only, no directory"
        },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // ORRERY_BENCH_DIRECTORY=1: the Whois/RDAP directory too, built beside the DNS tables as a
    // satellite serving both does (these objects have no contacts; see the rds bench for a
    // directory with them). The heap figures then count both.
    let directory = std::env::var_os("ORRERY_BENCH_DIRECTORY").is_some();
    let mut times = Vec::new();
    let mut cpus = Vec::new();
    let mut bytes = 0;
    let mut peak_build = 0;
    for _ in 0..runs {
        let base = live();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let objs = objects(0, domains, &mut rng, true);
        // Handed on into a vector, as a satellite moves them into its registry: dropping a
        // million objects is not part of the build (nor is this vector part of its peak).
        let mut kept = Objects::default();
        let with_objects = live();
        reset_peak();
        let cpu = process_cpu();
        let started = Instant::now();
        let served = Served::from_objects(
            1,
            objs.into(),
            |objs| kept = objs,
            BuildOptions { directory },
        );
        times.push(started.elapsed().as_secs_f64() * 1e3);
        cpus.push((process_cpu() - cpu) as f64 / 1e6);
        drop(kept);
        // The objects were handed on and dropped: what is left is the tables.
        bytes = live().saturating_sub(base);
        // Above the objects it started with (they are handed on and dropped one by one).
        peak_build = PEAK.load(Ordering::Relaxed).saturating_sub(with_objects);
        drop(served);
    }
    // The same objects applied one at a time (what the build did before the bulk path), for
    // a before/after in one run; ORRERY_BENCH_SKIP_ONE_BY_ONE=1 skips it.
    let mut single = Vec::new();
    let mut single_bytes = 0;
    let mut single_cpu = Vec::new();
    if std::env::var_os("ORRERY_BENCH_SKIP_ONE_BY_ONE").is_none() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let objs = objects(0, domains, &mut rng, true);
        for _ in 0..runs {
            let at = live();
            let cpu = process_cpu();
            let started = Instant::now();
            let set = ZoneSet::from_objects_one_by_one(1, &objs);
            single.push(started.elapsed().as_secs_f64() * 1e3);
            single_cpu.push((process_cpu() - cpu) as f64 / 1e6);
            single_bytes = live().saturating_sub(at);
            drop(set);
        }
        single.sort_by(f64::total_cmp);
        single_cpu.sort_by(f64::total_cmp);
    }
    // ORRERY_BENCH_SNAPSHOT=1: the start of `orrery-satellite --snapshot` in process: the
    // same objects encoded in today's snapshot format (in memory, not timed), then decoded
    // and built into the served state (DNS only), each timed.
    if std::env::var_os("ORRERY_BENCH_SNAPSHOT").is_some() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut data = SnapshotData {
            serial: 1,
            zones: Vec::new(),
            domains: Vec::new(),
            hosts: Vec::new(),
            contacts: Vec::new(),
            registrars: Vec::new(),
        };
        for c in objects(0, domains, &mut rng, true) {
            match c {
                Change::Zone(z) => data.zones.push(z),
                Change::Host(h) => data.hosts.push(h),
                Change::Domain(d) => data.domains.push(d),
                _ => {}
            }
        }
        // The state file (format 4), written once and read back each run.
        let path =
            std::env::temp_dir().join(format!("orrery-zone-build-{}.state", std::process::id()));
        orrery_satellite::snapshot::write_snapshot(&path, &data).expect("writes the state file");
        drop(data);
        let size = std::fs::metadata(&path).map_or(0, |m| m.len() as usize);
        for _ in 0..runs {
            let (cpu, started) = (process_cpu(), Instant::now());
            let data = orrery_satellite::snapshot::read_snapshot(&path).expect("reads");
            let decoded = (started.elapsed(), process_cpu() - cpu);
            let (cpu, started) = (process_cpu(), Instant::now());
            let served = Served::from_snapshot(&data, BuildOptions { directory: false });
            let built = (started.elapsed(), process_cpu() - cpu);
            println!(
                "state file of {} MB: read in {} ms ({} ms CPU), served state built in {} ms ({} ms CPU)",
                size / 1_000_000,
                decoded.0.as_millis(),
                decoded.1 / 1_000_000,
                built.0.as_millis(),
                built.1 / 1_000_000
            );
            drop((served, data));
        }
        let _ = std::fs::remove_file(&path);
    }
    // Bytes: measured with the objects gone. Build anew to hold it for the batch part.
    let before = live();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let objs = objects(0, domains, &mut rng, true);
    let store = {
        let served = Served::from_objects(1, objs.into(), drop, BuildOptions { directory: false });
        ServedStore::new(served)
    };
    let steady = live().saturating_sub(before);
    // A 10,000-change batch of new domains while a reader holds the version before it.
    let batch = ChangeBatch {
        after: 1,
        upto: 2,
        changes: objects(domains, 10_000 * 10 / 13, &mut rng, false)
            .into_iter()
            .take(10_000)
            .collect(),
    };
    let held = store.load_full();
    reset_peak();
    let at = live();
    let started = Instant::now();
    store.apply(batch).expect("batch follows");
    let apply_ms = started.elapsed().as_secs_f64() * 1e3;
    let peak_apply = PEAK.load(Ordering::Relaxed).saturating_sub(at);
    let both = live().saturating_sub(at);
    drop(held);
    times.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    println!(
        "build ms: median {:.0} (min {:.0}, max {:.0}) over {runs} runs; CPU ms (all threads) median {:.0} (min {:.0}, max {:.0})",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        cpus[cpus.len() / 2],
        cpus[0],
        cpus[cpus.len() - 1]
    );
    if !single.is_empty() {
        println!(
            "one by one (before the bulk build) ms: median {:.0} (min {:.0}, max {:.0}); CPU ms median {:.0}; heap {:.1} B/delegation",
            single[single.len() / 2],
            single[0],
            single[single.len() - 1],
            single_cpu[single_cpu.len() / 2],
            single_bytes as f64 / domains as f64
        );
    }
    println!(
        "heap after build: {bytes} B = {:.1} B/delegation; peak during build +{:.1} B/delegation above the objects",
        bytes as f64 / domains as f64,
        peak_build as f64 / domains as f64
    );
    println!(
        "steady state (store): {steady} B = {:.1} B/delegation",
        steady as f64 / domains as f64
    );
    println!(
        "10,000-change batch with the old version held: applied in {apply_ms:.0} ms, peak +{peak_apply} B ({:.3}x steady), both versions +{both} B",
        (steady + peak_apply) as f64 / steady as f64
    );
}
