//! Benchmark: propagation time from a commit in the SQL store to the DNS answer of every
//! satellite, while changes stream at a fixed rate (issue 4).
//!
//! ```sh
//! cargo bench -p orrery-tests --bench propagation
//! ```
//!
//! Everything runs in this process, as in `tests/cluster/link.rs`: a store holding a synthetic
//! TLD, a master with mutual TLS on `127.0.0.1`, and real satellites (their link loop and DNS
//! servers on `127.0.0.1:0`). A writer adds one new domain per change with the store's write
//! API (one transaction each) at a fixed rate; the time of a change is taken when the write
//! returns (the transaction is committed). One prober per satellite asks its DNS server over
//! UDP, every couple of milliseconds, about each change not yet seen, and records when the
//! satellite first answers with the domain's referral.
//!
//! Settings (environment):
//! - `BENCH_BACKENDS`: `sqlite,postgres` (default); PostgreSQL needs `BENCH_PG` or the default
//!   `postgres:///postgres?host=/var/run/postgresql&user=postgres` (a fresh database is created
//!   and dropped).
//! - `BENCH_CHANGES` (default 1000), `BENCH_RATE` changes/s (default 100), `BENCH_SATELLITES`
//!   (default 3), `BENCH_DOMAINS` in the synthetic TLD (default 10000), `BENCH_POLL_MS` the
//!   master's journal poll interval (default 1000, as in deploy/master.example.toml; on
//!   PostgreSQL a NOTIFY wakes the master at once, on SQLite the poll is the only wake-up).
//! - `BENCH_WRITERS` (default 1): concurrent writers sharing the schedule, each committing
//!   one change per transaction (one writer alone tops out near 230 changes/s on PostgreSQL
//!   here).
//! - `BENCH_DURABILITY`: `sync` (default: each satellite syncs its batch log before a batch
//!   becomes visible, as in production), `nosync` (the log written without `fdatasync`: what
//!   the durability step costs), or `both` (each backend run twice, sync first, same process).
//!
//! The cost of durability at 100 and 1,000 changes/s:
//!
//! ```sh
//! BENCH_BACKENDS=sqlite BENCH_DURABILITY=both BENCH_POLL_MS=50 BENCH_RATE=100 \
//!   cargo bench -p orrery-tests --bench propagation
//! BENCH_BACKENDS=sqlite BENCH_DURABILITY=both BENCH_POLL_MS=50 BENCH_RATE=1000 BENCH_CHANGES=3000 \
//!   cargo bench -p orrery-tests --bench propagation
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name as HName, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use orrery_master::Master;
use orrery_master::certs::{Role, create_ca, issue};
use orrery_master::config::MasterConfig;
use orrery_proto::link::tls::{SatelliteId, TlsMaterial};
use orrery_proto::{Name, Registrar, Timestamp};
use orrery_satellite::link::{LinkConfig, Satellite};
use orrery_store::Store;
use orrery_store::synthetic::SyntheticTld;
use orrery_store::write::{NewDomain, NsSpec};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const TLD: &str = "prop";
/// Every wait has this deadline: a change not seen by then counts as lost and fails the run.
const PATIENCE: Duration = Duration::from_secs(60);

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

struct Settings {
    /// Satellites sync their batch log (see `BENCH_DURABILITY`).
    sync: bool,
    changes: usize,
    rate: f64,
    /// Concurrent writers (`BENCH_WRITERS`, default 1).
    writers: usize,
    satellites: usize,
    domains: usize,
    poll_ms: u64,
}

fn main() {
    // `cargo bench` passes `--bench`; nothing is taken from the command line.
    let durability = std::env::var("BENCH_DURABILITY").unwrap_or_else(|_| "sync".into());
    let syncs: &[bool] = match durability.as_str() {
        "sync" => &[true],
        "nosync" => &[false],
        "both" => &[true, false],
        other => panic!("BENCH_DURABILITY={other}: sync, nosync or both"),
    };
    let mut settings = Settings {
        sync: true,
        changes: env_or("BENCH_CHANGES", 1000),
        rate: env_or("BENCH_RATE", 100.0),
        writers: env_or::<usize>("BENCH_WRITERS", 1).max(1),
        satellites: env_or("BENCH_SATELLITES", 3),
        domains: env_or("BENCH_DOMAINS", 10_000),
        poll_ms: env_or("BENCH_POLL_MS", 1000),
    };
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let pg = std::env::var("BENCH_PG")
        .unwrap_or_else(|_| "postgres:///postgres?host=/var/run/postgresql&user=postgres".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "propagation: {} changes at {}/s, {} satellites, synthetic TLD of {} domains, \
         master poll interval {} ms, {} cores, load average {}",
        settings.changes,
        settings.rate,
        settings.satellites,
        settings.domains,
        settings.poll_ms,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let mut rows = Vec::new();
    for (backend, &sync) in backends
        .split(',')
        .map(str::trim)
        .flat_map(|b| syncs.iter().map(move |s| (b, s)))
    {
        settings.sync = sync;
        let log = if sync { "batch log synced" } else { "no fsync" };
        let row = match backend {
            "sqlite" => runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite:{}", dir.path().join("bench.db").display());
                run(&format!("SQLite, {log}"), &url, &settings).await
            }),
            "postgres" => runtime.block_on(async {
                let db = format!("orrery_bench_prop_{}", std::process::id());
                admin(&pg, &format!("CREATE DATABASE {db}")).await;
                let url = with_database(&pg, &db);
                let row = run(&format!("PostgreSQL, {log}"), &url, &settings).await;
                admin(&pg, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
                row
            }),
            other => panic!("unknown backend {other} (sqlite or postgres)"),
        };
        rows.push(row);
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    println!();
    println!(
        "| store | changes × satellites | rate achieved | p50 | p90 | p99 | max | master store calls |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn admin(server: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.ok();
}

/// `url` (`postgres:///DB?…`) with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    out
}

async fn run(label: &str, url: &str, s: &Settings) -> String {
    eprintln!("[{label}] loading {} domains …", s.domains);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(url).await.unwrap();
    store
        .load_synthetic(&SyntheticTld {
            zone: n(TLD),
            domains: s.domains,
            seed: 7,
        })
        .await
        .unwrap();
    store
        .add_registrar(&Registrar::new("BENCH", "Benchmark registrar"))
        .await
        .unwrap();

    // The master, its CA and certificates, on 127.0.0.1:0.
    let ca = create_ca(30).unwrap();
    let m = issue(
        &ca.key_pem,
        &Role::Master(SatelliteId::new("m1").unwrap()),
        30,
    )
    .unwrap();
    let master_tls = TlsMaterial::from_pem(ca.cert_pem.clone(), m.cert_pem, m.key_pem).unwrap();
    let mut text = format!(
        r#"
        [master]
        store = "{url}"
        listen = ["127.0.0.1:0"]
        poll_interval_ms = {poll}
        heartbeat_interval_ms = 15000
        [tls]
        ca = "ca.pem"
        cert = "m1.master.pem"
        key = "m1.master.key"
        [satellite_defaults]
        dns = {{ udp = ["127.0.0.1:0"], tcp = ["127.0.0.1:0"] }}
        workers = 1
        checkin_interval_ms = 60000
        selector = "std"
        [selectors.std]
        chains = [{{ name = "main", leaves = ["stats", "lookup"] }}]
        [selectors.std.leaves.stats]
        kind = "statistics"
        [selectors.std.leaves.lookup]
        kind = "lookup"
        "#,
        poll = s.poll_ms
    );
    for i in 0..s.satellites {
        text.push_str(&format!("[satellites.sat{i}]\n"));
    }
    let config = MasterConfig::parse(&text, dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let master = Master::start(
        &config,
        store.clone(),
        &master_tls,
        vec![listener],
        shutdown.clone(),
    )
    .await
    .unwrap();

    // The satellites, each with its own certificate and an empty state.
    let mut satellites = Vec::new();
    let mut dns = Vec::new();
    let head = store.head().await.unwrap();
    for i in 0..s.satellites {
        let name = format!("sat{i}");
        let c = issue(
            &ca.key_pem,
            &Role::Satellite(SatelliteId::new(&name).unwrap()),
            30,
        )
        .unwrap();
        let tls = TlsMaterial::from_pem(ca.cert_pem.clone(), c.cert_pem, c.key_pem).unwrap();
        let mut lc = LinkConfig::new(
            vec![addr.to_string()],
            tls,
            dir.path().join(format!("{name}.state")),
        );
        lc.backoff.max = Duration::from_millis(500);
        lc.sync_batches = s.sync;
        let sat = Satellite::start(lc, shutdown.clone()).unwrap();
        let mut rx = sat.status();
        let status = tokio::time::timeout(
            PATIENCE,
            rx.wait_for(|st| !st.udp.is_empty() && st.applied_serial >= head),
        )
        .await
        .expect("satellite did not boot")
        .unwrap()
        .clone();
        dns.push(status.udp[0]);
        satellites.push(sat);
    }
    eprintln!("[{label}] {} satellites serving at {dns:?}", dns.len());
    let calls_before = master.store_calls();

    // One prober per satellite; the writer tells each about every committed change.
    let seen: Arc<Mutex<HashMap<(usize, usize), Duration>>> = Arc::default();
    let mut senders = Vec::new();
    let mut probers = Vec::new();
    for (i, &addr) in dns.iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        probers.push(tokio::spawn(probe(i, addr, rx, seen.clone())));
    }
    let period = Duration::from_secs_f64(1.0 / s.rate);
    let started = Instant::now();
    // `writers` concurrent writers (one transaction per change each, as registrars' sessions
    // are): writer w takes changes w, w + writers, …, so one slow commit does not hold the
    // schedule of the others.
    let mut writers = Vec::new();
    for w in 0..s.writers {
        let (store, senders, changes, step) =
            (store.clone(), senders.clone(), s.changes, s.writers);
        writers.push(tokio::spawn(async move {
            for change in (w..changes).step_by(step) {
                // A fixed schedule: change k is due at k × period (late writes do not shift
                // the rest).
                let due = started + period * change as u32;
                tokio::time::sleep_until(due.into()).await;
                let name = format!("p{change}.{TLD}");
                add_domain(&store, &name).await;
                let committed = Instant::now();
                for tx in &senders {
                    tx.send((change, name.clone(), committed)).unwrap();
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let writing = started.elapsed();
    drop(senders);
    for p in probers {
        p.await.unwrap();
    }
    let calls = master.store_calls() - calls_before;
    shutdown.cancel();
    for sat in satellites {
        let _ = tokio::time::timeout(Duration::from_secs(10), sat.join()).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), master.join()).await;
    store.close().await;

    // Per change: the time until the last satellite answered it (and every single observation).
    let seen = seen.lock().unwrap();
    let mut per_change: Vec<Duration> = (0..s.changes)
        .map(|c| {
            (0..s.satellites)
                .map(|i| seen[&(i, c)])
                .max()
                .unwrap_or_default()
        })
        .collect();
    per_change.sort();
    let pct = |p: f64| {
        let i = ((per_change.len() as f64 * p).ceil() as usize).clamp(1, per_change.len()) - 1;
        per_change[i]
    };
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let within = per_change.iter().filter(|d| d.as_secs_f64() <= 1.0).count();
    eprintln!(
        "[{label}] writes took {writing:.2?}; {within}/{} changes answered by every satellite within 1 s",
        per_change.len()
    );
    format!(
        "| {label} | {} × {} | {:.0}/s | {} | {} | {} | {} | {calls} |",
        s.changes,
        s.satellites,
        s.changes as f64 / writing.as_secs_f64(),
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(per_change[per_change.len() - 1]),
    )
}

async fn add_domain(store: &Store, name: &str) {
    store
        .add_domain(&NewDomain {
            name: n(name),
            registrar: "BENCH".into(),
            registrant: None,
            admin: None,
            tech: None,
            billing: None,
            expires: Timestamp(2_000_000_000),
            statuses: vec![],
            nameservers: vec![NsSpec {
                name: n(&format!("ns1.{name}")),
                addresses: vec!["192.0.2.53".parse().unwrap()],
            }],
            ds: vec![],
        })
        .await
        .unwrap();
}

/// Asks `addr` about every announced change until it answers with the referral; records the
/// time from the commit.
async fn probe(
    sat: usize,
    addr: SocketAddr,
    mut changes: mpsc::UnboundedReceiver<(usize, String, Instant)>,
    seen: Arc<Mutex<HashMap<(usize, usize), Duration>>>,
) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut pending: Vec<(usize, String, Instant)> = Vec::new();
    let mut open = true;
    let mut id: u16 = 0;
    let mut buf = vec![0u8; 4096];
    while open || !pending.is_empty() {
        loop {
            match changes.try_recv() {
                Ok(c) => pending.push(c),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let mut still = Vec::with_capacity(pending.len());
        for (change, name, committed) in pending.drain(..) {
            id = id.wrapping_add(1);
            if delegated(&sock, addr, &name, id, &mut buf).await {
                let took = committed.elapsed();
                seen.lock().unwrap().insert((sat, change), took);
            } else {
                assert!(
                    committed.elapsed() < PATIENCE,
                    "satellite {sat} never answered {name}"
                );
                still.push((change, name, committed));
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One UDP query for `name` A; true if the answer is a referral to `name`'s nameservers.
async fn delegated(
    sock: &tokio::net::UdpSocket,
    addr: SocketAddr,
    name: &str,
    id: u16,
    buf: &mut [u8],
) -> bool {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        HName::from_ascii(name).unwrap(),
        RecordType::A,
    ));
    sock.send_to(&m.to_bytes().unwrap(), addr).await.unwrap();
    let deadline = Instant::now() + Duration::from_millis(200);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok((len, _))) = tokio::time::timeout(left, sock.recv_from(buf)).await else {
            return false;
        };
        let Ok(reply) = Message::from_bytes(&buf[..len]) else {
            continue;
        };
        if reply.id != id {
            continue; // a late answer to an earlier query
        }
        let owner = format!("{name}.");
        return reply.response_code == ResponseCode::NoError
            && reply.authorities.iter().any(|r| {
                r.record_type() == RecordType::NS && r.name.to_ascii().eq_ignore_ascii_case(&owner)
            });
    }
}
