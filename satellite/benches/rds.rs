//! Whois and RDAP benchmark (issue 5): directory memory per domain, the chain and renderers
//! alone, Whois queries per second over fresh TCP connections, RDAP requests per second over
//! kept-alive connections.
//!
//! `cargo bench -p orrery-satellite --bench rds` — settings from the environment:
//! `ORRERY_BENCH_DOMAINS` (default 100000), `ORRERY_BENCH_SECONDS` per run (default 10),
//! `ORRERY_BENCH_CLIENTS` concurrent client connections (default 64),
//! `ORRERY_BENCH_CLIENT_THREADS` threads of the load generator (default 2),
//! `ORRERY_BENCH_MEMORY_DOMAINS` for the memory figure (default 1000000; 0 skips it),
//! `ORRERY_BENCH_MEMORY_ONLY` (set: stop after the memory figure).
//!
//! Server and load generator share the machine (as the goal says): the servers run on a tokio
//! runtime of 2 workers; the Whois load comes from plain threads driving sockets through mio
//! (no async runtime: the generator's CPU is CPU the server does not get), the RDAP load from a
//! tokio runtime. Everything talks to 127.0.0.1 only. The chain is the production one
//! (statistics, validation, ACL, rate limit, lookup), with limits high enough that one client
//! address is never limited, so their cost is measured.
//!
//! Each run prints the CPU time per answer of the server's threads and of the load
//! generator's, and the TCP segments sent per answer. The Whois figure is compared with a
//! baseline measured in the same run: a do-nothing server on the same runtime that reads the
//! line and writes a fixed answer of the same size. Fresh connections on loopback cost mostly
//! kernel time on both ends, so the baseline is the machine's ceiling for this load generator;
//! the ratio is what the Whois server itself costs.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use orrery_proto::{Change, Contact, Domain, EppStatus, Host, Name, Registrar, Timestamp};
use orrery_satellite::dns::leaf::SelectorConfig;
use orrery_satellite::rds::leaf::RdsLeafConfig;
use orrery_satellite::rds::rdap_server::{RdapServer, RdapSettings};
use orrery_satellite::rds::whois_server::{WhoisServer, WhoisSettings, send_more};
use orrery_satellite::rds::{Directory, Protocol, Rds, RdsPipeline, rdap, whois};
use orrery_satellite::selector::Selector;
use orrery_satellite::{Served, ServedStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const CHAIN: &str = r#"
[leaves.stats]
kind = "statistics"
[leaves.validate]
kind = "validate_query"
[leaves.acl]
kind = "acl"
deny = ["192.0.2.0/24"]
[leaves.limit]
kind = "rate_limit"
address_rate = 1e9
address_burst = 1000000000
prefix_rate = 1e9
prefix_burst = 1000000000
[leaves.lookup]
kind = "lookup"
[[chains]]
name = "main"
leaves = ["stats", "validate", "acl", "limit", "lookup"]
"#;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// The registry objects of a synthetic TLD `bench`, produced one at a time: 100 registrars,
/// 5,000 nameserver hosts shared by the domains, and per domain its own registrant contact
/// (the realistic worst case: contacts as many as domains).
fn registry(domains: usize) -> impl Iterator<Item = Change> {
    let registrars = (0..100).map(|r| {
        let mut reg = Registrar::new(format!("REG{r}"), format!("Registrar number {r}, Inc."));
        reg.iana_id = Some(1000 + r);
        reg.abuse_email = Some(format!("abuse@registrar{r}.example"));
        Change::Registrar(reg)
    });
    let hosts = (0..5000).map(|h| {
        Change::Host(Host {
            name: n(&format!("ns{h}.dns-host{}.example", h % 50)),
            addresses: vec![],
            registrar: Some(format!("REG{}", h % 100)),
            created: Timestamp(1_600_000_000),
            updated: Timestamp(1_600_000_000),
        })
    });
    let per_domain = (0..domains).flat_map(registry_entry);
    registrars.chain(hosts).chain(per_domain)
}

/// Domain `i` of `registry` and its own registrant contact.
fn registry_entry(i: usize) -> [Change; 2] {
    let handle = format!("C{i}");
    let contact = Contact {
        handle: handle.clone(),
        name: format!("Registrant {i}"),
        organisation: None,
        street: vec![format!("{i} Main Street")],
        city: "Springfield".into(),
        province: None,
        postcode: Some(format!("{:05}", i % 100_000)),
        country: "FR".into(),
        email: format!("registrant{i}@example.net"),
        voice: Some("+33.100000000".into()),
        fax: None,
        disclose: i.is_multiple_of(10),
        created: Timestamp(1_600_000_000),
        updated: Timestamp(1_600_000_000),
    };
    let domain = Domain {
        name: n(&format!("d{i}.bench")),
        zone: n("bench"),
        roid: format!("D{i}-BENCH"),
        registrar: format!("REG{}", i % 100),
        created: Timestamp(1_600_000_000),
        updated: Timestamp(1_700_000_000),
        expires: Timestamp(1_900_000_000),
        statuses: vec![EppStatus::ClientTransferProhibited],
        registrant: Some(handle),
        admin: Some(format!("C{}", i - i % 1000)),
        tech: Some(format!("C{}", i - i % 1000)),
        billing: None,
        nameservers: vec![
            n(&format!("ns{}.dns-host{}.example", i % 5000, i % 50)),
            n(&format!(
                "ns{}.dns-host{}.example",
                (i + 1) % 5000,
                (i + 1) % 50
            )),
        ],
        ds: vec![],
    };
    [Change::Contact(contact), Change::Domain(domain)]
}

/// The global allocator, counting the bytes live on the heap and their high-water mark: the
/// memory figure is what the directory asks of the allocator (its data, not the allocator's
/// rounding, nor pages other threads touched).
struct Counting;

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; only counters are added.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let p = unsafe { std::alloc::System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        let p = unsafe { std::alloc::System.realloc(ptr, layout, size) };
        if !p.is_null() {
            count(size as isize - layout.size() as isize);
        }
        p
    }
}

fn count(delta: isize) {
    let live = if delta >= 0 {
        LIVE.fetch_add(delta as usize, Ordering::Relaxed) + delta as usize
    } else {
        LIVE.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed) - delta.unsigned_abs()
    };
    PEAK.fetch_max(live, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes live on the heap now.
fn heap() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Resets the high-water mark to the bytes live now; returns them.
fn reset_peak() -> usize {
    let live = heap();
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// A batch of `changes` updates to the registry of `registry(domains)`, spread over it as a
/// day's changes would be: half domain updates (new dates and statuses, nameservers moved to
/// other hosts), half contact updates (a new address), on domains evenly spread over the names.
fn batch(domains: usize, changes: usize) -> Vec<Change> {
    let step = (domains / (changes / 2).max(1)).max(1);
    let mut out = Vec::with_capacity(changes);
    for (k, i) in (0..domains).step_by(step).take(changes / 2).enumerate() {
        let mut objects = registry_entry(i);
        if let Change::Domain(d) = &mut objects[1] {
            d.updated = Timestamp(1_800_000_000 + k as i64);
            d.statuses.push(EppStatus::ClientUpdateProhibited);
            d.nameservers[1] = n(&format!(
                "ns{}.dns-host{}.example",
                (i + 7) % 5000,
                (i + 7) % 50
            ));
        }
        if let Change::Contact(c) = &mut objects[0] {
            c.street = vec![format!("{i} New Street"), "Building B".into()];
            c.updated = Timestamp(1_800_000_000 + k as i64);
        }
        out.extend(objects);
    }
    out
}

fn memory(domains: usize) {
    // The objects first, as a satellite holds a snapshot's before it builds from them; the
    // figures are the directory's alone.
    let base = heap();
    let cpu = own_cpu();
    let objects: Vec<Change> = registry(domains).collect();
    let making = Duration::from_nanos(own_cpu() - cpu);
    let held = reset_peak();
    let cpu = own_cpu();
    let started = Instant::now();
    let mut dir = Directory::build(&objects);
    dir.touch(Timestamp::now());
    let built = started.elapsed();
    let build_cpu = Duration::from_nanos(own_cpu() - cpu);
    let build_peak = PEAK.load(Ordering::Relaxed).saturating_sub(held);
    drop(objects);
    let before = base;
    let bytes = heap().saturating_sub(base);
    let (d, h, c, r) = dir.counts();
    println!(
        "directory memory: {d} domains, {h} hosts, {c} contacts, {r} registrars: {:.1} MiB on \
         the heap ({:.0} bytes per domain incl. its own contact; {:.1} MiB at the peak of the \
         build over the objects), built in {:.2} s ({:.2} s of CPU) from the objects (made \
         in {:.2} s of CPU)",
        bytes as f64 / 1048576.0,
        bytes as f64 / d as f64,
        build_peak as f64 / 1048576.0,
        built.as_secs_f64(),
        build_cpu.as_secs_f64(),
        making.as_secs_f64(),
    );
    // A batch as the satellite applies one: a new version from the current one, the changes
    // applied to it, the old version dropped once no query holds it. The peak is measured
    // with both versions alive (the old one still serving) and the batch itself decoded.
    let changes = batch(domains, 10_000);
    let steady = reset_peak();
    let started = Instant::now();
    let mut next = dir.clone();
    for change in &changes {
        next.apply(change);
    }
    next.touch(Timestamp::now());
    let applied = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed);
    let (shared, shards) = next.shared_shards(&dir);
    drop(dir);
    let after = heap();
    let base = steady.saturating_sub(before);
    println!(
        "batch of {} changes: version made and applied in {:.0} ms, {shared} of {shards} \
         shards shared with the old version; heap peak {:.1} MiB over the {:.1} MiB held \
         before ({:.3}x the steady state), {:.1} MiB held after",
        changes.len(),
        applied.as_secs_f64() * 1000.0,
        (peak - steady) as f64 / 1048576.0,
        base as f64 / 1048576.0,
        (peak.saturating_sub(before)) as f64 / base.max(1) as f64,
        after.saturating_sub(before) as f64 / 1048576.0,
    );
    drop(next);
}

/// What one load run measured.
struct Run {
    /// Latency of every answer, µs.
    lat: Vec<u32>,
    errors: u64,
    elapsed: Duration,
    /// CPU time (ns) the server's threads used during the run.
    server_cpu: u64,
    /// CPU time (ns) the load generator's threads used.
    load_cpu: u64,
    /// TCP segments sent on the machine during the run (both ends: everything is loopback;
    /// other traffic on the machine counts too, so measure on a quiet one).
    segments: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.lat.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// Prints the rate, the latency percentiles and the CPU time per answer on each side.
    fn report(mut self, what: &str) -> f64 {
        let rate = self.rate();
        let lat = &mut self.lat;
        lat.sort_unstable();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0) as f64
                / 1000.0
        };
        let answers = lat.len().max(1) as f64;
        println!(
            "{what}: {} answers in {:.1} s = {rate:.0}/s; latency p50 {:.2} ms, p99 {:.2} ms, \
             p99.9 {:.2} ms, max {:.2} ms; {} errors; CPU per answer: server {:.1} µs, load \
             generator {:.1} µs; {:.1} TCP segments per answer",
            lat.len(),
            self.elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            pct(0.999),
            lat.last().copied().unwrap_or(0) as f64 / 1000.0,
            self.errors,
            self.server_cpu as f64 / 1000.0 / answers,
            self.load_cpu as f64 / 1000.0 / answers,
            self.segments as f64 / answers,
        );
        rate
    }
}

/// Runs `load` (which returns its latencies, errors and its own CPU time) and measures the
/// server threads' CPU time around it.
fn measure(load: impl FnOnce() -> (Vec<u32>, u64, u64)) -> Run {
    let server_before = thread_cpu(SERVER_THREADS);
    let segments_before = tcp_out_segments();
    let started = Instant::now();
    let (lat, errors, load_cpu) = load();
    let elapsed = started.elapsed();
    Run {
        lat,
        errors,
        elapsed,
        server_cpu: thread_cpu(SERVER_THREADS).saturating_sub(server_before),
        load_cpu,
        segments: tcp_out_segments().saturating_sub(segments_before),
    }
}

/// TCP segments sent so far by this machine (`OutSegs` in `/proc/net/snmp`).
fn tcp_out_segments() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "OutSegs")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Worker threads of the load generator's runtime (`ORRERY_BENCH_CLIENT_THREADS`, default 2).
fn client_threads() -> usize {
    env("ORRERY_BENCH_CLIENT_THREADS", 2).max(1)
}

/// Latencies (µs) and errors of one client loop.
type ClientResult = (Vec<u32>, u64);

/// Runs `clients` client loops (`client(index, stop)`, each looping until `stop`) for
/// `seconds` on a tokio runtime; returns every latency, the errors and the runtime's CPU time.
fn run_clients<F, Fut>(clients: usize, seconds: u64, client: F) -> (Vec<u32>, u64, u64)
where
    F: Fn(usize, Arc<AtomicBool>) -> Fut,
    Fut: Future<Output = ClientResult> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads())
        .thread_name(LOAD_THREADS)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        let cpu_before = thread_cpu(LOAD_THREADS);
        let tasks: Vec<_> = (0..clients)
            .map(|c| tokio::spawn(client(c, Arc::clone(&stop))))
            .collect();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, e) = t.await.unwrap();
            all.extend(lat);
            errors += e;
        }
        (
            all,
            errors,
            thread_cpu(LOAD_THREADS).saturating_sub(cpu_before),
        )
    })
}

fn micros(since: Instant) -> u32 {
    since.elapsed().as_micros().min(u32::MAX as u128) as u32
}

/// Whois-style load, each query on a fresh connection to `addr` for domain `d{i}.bench`, from
/// `client_threads()` threads without an async runtime: each thread drives its share of the
/// `clients` connections from one epoll set (mio). A load generator on the same two cores takes
/// its CPU from the server, so this one does per query only what any client must — socket,
/// connect, write, read to the server's close, close — plus one epoll registration (closing
/// the socket removes it from the set).
fn whois_load(
    addr: SocketAddr,
    clients: usize,
    seconds: u64,
    domains: u64,
) -> (Vec<u32>, u64, u64) {
    let threads = client_threads().min(clients.max(1));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            // Thread t drives clients t, t + threads, …: together they query every domain.
            let mine: Vec<u64> = (t..clients).step_by(threads).map(|c| c as u64).collect();
            std::thread::Builder::new()
                .name(LOAD_THREADS.into())
                .spawn(move || whois_client_thread(addr, &mine, clients as u64, domains, deadline))
                .unwrap()
        })
        .collect();
    let (mut all, mut errors, mut cpu) = (Vec::new(), 0, 0);
    for w in workers {
        let (lat, e, c) = w.join().unwrap();
        all.extend(lat);
        errors += e;
        cpu += c;
    }
    (all, errors, cpu)
}

/// One Whois client connection of the load generator.
struct WhoisClient {
    stream: Option<mio::net::TcpStream>,
    /// The next domain number to ask for (steps by the number of clients).
    next: u64,
    started: Instant,
    sent: bool,
    received: usize,
}

/// One thread of the Whois load generator: its clients, their epoll set, what they measured.
struct WhoisLoad {
    addr: SocketAddr,
    poll: mio::Poll,
    clients: Vec<WhoisClient>,
    /// The total number of clients (over every thread): each client's step through the domains.
    stride: u64,
    domains: u64,
    /// Latency of every complete answer, µs.
    lat: Vec<u32>,
    /// Failed connects, writes and reads, and answers too short to be one.
    errors: u64,
    buf: Box<[u8]>,
}

impl WhoisLoad {
    /// Starts client `k`'s next query on a fresh connection, writing the query at once when
    /// the socket takes it. False when that could not be done now (the connect failed, or the
    /// connection failed at once): the caller retries after its next poll, so a server that
    /// refuses connections cannot make the loop spin.
    fn start(&mut self, k: usize) -> bool {
        let c = &mut self.clients[k];
        c.started = Instant::now();
        c.sent = false;
        c.received = 0;
        let connected = mio::net::TcpStream::connect(self.addr).and_then(|mut s| {
            let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
            self.poll
                .registry()
                .register(&mut s, mio::Token(k), interest)?;
            Ok(s)
        });
        match connected {
            Ok(s) => c.stream = Some(s),
            Err(_) => {
                self.errors += 1;
                return false;
            }
        }
        !self.step(k)
    }

    /// Advances client `k` as far as its socket allows; true when its connection is over
    /// (answered or failed) and the client needs a new one.
    fn step(&mut self, k: usize) -> bool {
        let c = &mut self.clients[k];
        let Some(s) = c.stream.as_mut() else {
            return true;
        };
        if !c.sent {
            let mut query = [0u8; 32];
            let len = {
                let mut w = &mut query[..];
                let _ = write!(w, "d{}.bench\r\n", c.next % self.domains);
                32 - w.len()
            };
            match s.write(&query[..len]) {
                Ok(n) if n == len => c.sent = true,
                // Not connected yet: the writable event comes when it is.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected
                    ) =>
                {
                    return false;
                }
                Ok(_) | Err(_) => {
                    self.errors += 1;
                    c.stream = None;
                    return true;
                }
            }
        }
        loop {
            match s.read(&mut self.buf) {
                Ok(0) => {
                    if c.received < 200 {
                        self.errors += 1;
                    } else {
                        self.lat.push(micros(c.started));
                    }
                    c.next += self.stride;
                    c.stream = None;
                    return true;
                }
                Ok(n) => c.received += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.errors += 1;
                    c.stream = None;
                    return true;
                }
            }
        }
    }

    /// Runs every client until `deadline`; returns the latencies and the errors.
    fn run(mut self, deadline: Instant) -> (Vec<u32>, u64) {
        let mut events = mio::Events::with_capacity(1024);
        let mut retry: Vec<usize> = (0..self.clients.len())
            .filter(|&k| !self.start(k))
            .collect();
        while Instant::now() < deadline {
            let wait = Duration::from_millis(if retry.is_empty() { 100 } else { 1 });
            if self.poll.poll(&mut events, Some(wait)).is_err() {
                continue;
            }
            for ev in events.iter() {
                let k = ev.token().0;
                // Answered (or failed): the next query, on a fresh connection.
                if self.step(k) && !self.start(k) {
                    retry.push(k);
                }
            }
            for k in std::mem::take(&mut retry) {
                if !self.start(k) {
                    retry.push(k);
                }
            }
        }
        (self.lat, self.errors)
    }
}

fn whois_client_thread(
    addr: SocketAddr,
    mine: &[u64],
    stride: u64,
    domains: u64,
    deadline: Instant,
) -> (Vec<u32>, u64, u64) {
    let cpu_before = own_cpu();
    let load = WhoisLoad {
        addr,
        poll: mio::Poll::new().unwrap(),
        clients: mine
            .iter()
            .map(|&c| WhoisClient {
                stream: None,
                next: c,
                started: Instant::now(),
                sent: false,
                received: 0,
            })
            .collect(),
        stride,
        domains,
        lat: Vec::with_capacity(1 << 18),
        errors: 0,
        buf: vec![0; 16 * 1024].into(),
    };
    let (lat, errors) = load.run(deadline);
    (lat, errors, own_cpu().saturating_sub(cpu_before))
}

/// CPU time (ns) used so far by the calling thread.
fn own_cpu() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Name of the load generator's threads, by which their CPU time is told apart.
const LOAD_THREADS: &str = "rds-load";
/// Name of the servers' runtime threads.
const SERVER_THREADS: &str = "rds-server";

/// CPU time (ns) used so far by this process's threads called `name`
/// (`/proc/self/task/*/schedstat`, first field: time on a CPU). Threads that have ended are not
/// counted, so it is read while they run.
fn thread_cpu(name: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

fn main() {
    let domains = env("ORRERY_BENCH_DOMAINS", 100_000);
    let seconds = env("ORRERY_BENCH_SECONDS", 10) as u64;
    let clients = env("ORRERY_BENCH_CLIENTS", 64);
    let memory_domains = env("ORRERY_BENCH_MEMORY_DOMAINS", 1_000_000);
    println!(
        "rds bench: {domains} domains, {clients} clients on {} load-generator threads, {seconds} s \
         per run, {} cores",
        client_threads(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if memory_domains > 0 {
        memory(memory_domains);
    }
    if std::env::var_os("ORRERY_BENCH_MEMORY_ONLY").is_some() {
        return;
    }

    let mut set = Served::default();
    for change in registry(domains) {
        set.directory.apply(&change);
    }
    let config: SelectorConfig<RdsLeafConfig> = toml::from_str(CHAIN).unwrap();
    let pipeline = Arc::new(ArcSwap::from_pointee(RdsPipeline::new(
        Selector::<Rds>::build(&config).unwrap(),
        Arc::new(ServedStore::new(set)),
    )));

    chain_and_render(&pipeline.load(), domains as u64);

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let (whois_addr, rdap_addr) = server_rt.block_on(async {
        let whois = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let rdap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addrs = (whois.local_addr().unwrap(), rdap.local_addr().unwrap());
        let settings = WhoisSettings {
            max_connections: 4096,
            max_connections_per_address: 4096,
            ..WhoisSettings::default()
        };
        let w = WhoisServer::start(Arc::clone(&pipeline), vec![whois], settings, cancel.clone())
            .unwrap();
        let r = RdapServer::start(
            Arc::clone(&pipeline),
            vec![rdap],
            RdapSettings {
                max_connections_per_address: 4096,
                ..RdapSettings::default()
            },
            cancel.clone(),
        )
        .unwrap();
        tokio::spawn(async move {
            w.join().await;
            r.join().await;
        });
        addrs
    });

    // The baseline: same runtime, same connection pattern, no work, an answer of the same size.
    let answer_len = server_rt.block_on(async {
        let mut s = TcpStream::connect(whois_addr).await.unwrap();
        s.write_all(b"d1.bench\r\n").await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        out.len()
    });
    let null_addr = server_rt.block_on(null_server(answer_len, cancel.clone()));
    let baseline = measure(|| whois_load(null_addr, clients, seconds, domains as u64)).report(
        &format!("baseline: do-nothing server, fresh TCP connection, {answer_len}-octet answer"),
    );

    // Whois: one fresh TCP connection per query, the client reading to the server's close.
    let rate = measure(|| whois_load(whois_addr, clients, seconds, domains as u64))
        .report("whois, fresh TCP connection per query");
    println!(
        "whois / baseline: {:.2} (1.00: the server costs nothing beyond accepting and closing)",
        rate / baseline
    );

    // RDAP: each client keeps one connection alive.
    measure(|| rdap_load(rdap_addr, clients, seconds, domains as u64)).report("rdap, keep-alive");
    cancel.cancel();
}

/// The chain and the renderers alone, without sockets: CPU time per query on one thread, for a
/// domain with three contacts (what the socket figures include besides the kernel's work).
fn chain_and_render(pipeline: &RdsPipeline, domains: u64) {
    const QUERIES: u64 = 200_000;
    let peer = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut answer = Vec::with_capacity(8192);
    for protocol in [Protocol::Whois, Protocol::Rdap] {
        let started = Instant::now();
        let mut octets = 0;
        for i in 0..QUERIES {
            let mut ev = pipeline.take();
            ev.reset(peer, protocol);
            answer.clear();
            match protocol {
                Protocol::Whois => {
                    let _ = write!(ev.request, "d{}.bench", i % domains);
                    pipeline.handle(&mut ev, |ev, _, ctx| whois::render(ev, ctx, &mut answer));
                }
                Protocol::Rdap => {
                    let _ = write!(ev.request, "/domain/d{}.bench", i % domains);
                    pipeline.handle(&mut ev, |ev, _, ctx| {
                        rdap::render(ev, ctx, "https://rdap.example/", &mut answer)
                    });
                }
            }
            octets += answer.len();
            pipeline.put(ev);
        }
        let per = started.elapsed().as_nanos() as f64 / QUERIES as f64 / 1000.0;
        println!(
            "{protocol:?} chain and rendering alone (no sockets, one thread): {per:.2} µs per \
             query, {} octets per answer",
            octets / QUERIES as usize
        );
    }
}

/// A server that does nothing but what every Whois server must: accept, read the line, write
/// `answer_len` octets, close — sending and closing as the Whois server does (answer and FIN
/// in one segment, no `shutdown`), so that the two compare like for like.
async fn null_server(answer_len: usize, cancel: CancellationToken) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer: Arc<[u8]> = vec![b'x'; answer_len].into();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = tokio::select! {
                () = cancel.cancelled() => break,
                a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            };
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                let mut have = 0;
                while let Ok(n) = s.read(&mut buf[have..]).await {
                    if n == 0 {
                        return;
                    }
                    have += n;
                    if buf[..have].contains(&b'\n') || have == buf.len() {
                        break;
                    }
                }
                // The Whois server's way of sending: the answer and the FIN in one segment.
                let sent = send_more(&s, &answer);
                let _ = s.write_all(&answer[sent..]).await;
                // Dropping the socket closes it: the FIN leaves with the answer's end.
            });
        }
    });
    addr
}

/// RDAP with one kept-alive connection per client: sequential GETs, responses framed by
/// Content-Length.
fn rdap_load(addr: SocketAddr, clients: usize, seconds: u64, domains: u64) -> (Vec<u32>, u64, u64) {
    run_clients(clients, seconds, move |c, stop| async move {
        let (mut lat, mut errors) = (Vec::with_capacity(1 << 16), 0u64);
        let mut i = c as u64;
        let mut conn: Option<TcpStream> = None;
        let mut buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            if conn.is_none() {
                conn = TcpStream::connect(addr).await.ok();
            }
            let Some(s) = conn.as_mut() else {
                errors += 1;
                continue;
            };
            let request = format!(
                "GET /domain/d{}.bench HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                i % domains
            );
            match rdap_exchange(s, request.as_bytes(), &mut buf).await {
                Ok(()) => lat.push(micros(t)),
                Err(_) => {
                    errors += 1;
                    conn = None;
                }
            }
            i += clients as u64;
        }
        (lat, errors)
    })
}

async fn rdap_exchange(s: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> io::Result<()> {
    s.write_all(request).await?;
    let mut have = 0;
    let (head_end, body_len) = loop {
        let n = s.read(&mut buf[have..]).await?;
        if n == 0 {
            return Err(io::Error::other("closed"));
        }
        have += n;
        if let Some(pos) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..pos]).map_err(io::Error::other)?;
            if !head.starts_with("HTTP/1.1 200") {
                return Err(io::Error::other("not 200"));
            }
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .ok_or_else(|| io::Error::other("no content-length"))?;
            break (pos + 4, len);
        }
        if have == buf.len() {
            return Err(io::Error::other("head too large"));
        }
    };
    while have < head_end + body_len {
        let n = s.read(&mut buf[have..]).await?;
        if n == 0 {
            return Err(io::Error::other("closed"));
        }
        have += n;
    }
    Ok(())
}
