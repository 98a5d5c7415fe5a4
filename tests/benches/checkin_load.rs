//! Benchmark: a master's CPU and memory with many satellites checking in every second
//! (issue 12). One process plays every satellite: each session is a real link session with
//! its own certificate (mutual TLS), boot, snapshot, an open change stream and a check-in with
//! statistics every second, as `orrery-satellite` does, without serving DNS. The master is the
//! real `orrery-master` binary of the same build, on a SQLite store holding a small synthetic
//! zone; its CPU time and memory are read from /proc while the load runs.
//!
//! ```sh
//! cargo build --release -p orrery-master && cargo bench -p orrery-tests --bench checkin_load
//! ```
//!
//! Settings (environment): `BENCH_SATELLITES` (default 200), `BENCH_SECONDS` measured
//! (default 30, after 10 s of warm-up), `BENCH_CHECKIN_MS` (default 1000).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orrery_master::certs::{Role, write_ca, write_issued};
use orrery_proto::link::SatelliteSettings;
use orrery_proto::link::client::{DialConfig, Dialer, fetch_snapshot};
use orrery_proto::link::pb;
use orrery_proto::link::tls::{SatelliteId, TlsFiles, TlsMaterial, client_config};
use orrery_store::Store;
use orrery_store::synthetic::SyntheticTld;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The directory of this build's binaries (the bench runs from target/<profile>/deps).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's path");
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// CPU seconds (user + system) of process `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// `VmRSS` and `VmHWM` of process `pid`, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

fn main() {
    let satellites = env("BENCH_SATELLITES", 200) as usize;
    let seconds = env("BENCH_SECONDS", 30);
    let checkin_ms = env("BENCH_CHECKIN_MS", 1000);
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    write_ca(&certs, 30).unwrap();
    write_issued(&certs, &Role::Master(SatelliteId::new("m1").unwrap()), 30).unwrap();
    let mut tables = String::new();
    for i in 0..satellites {
        write_issued(
            &certs,
            &Role::Satellite(SatelliteId::new(&format!("sat{i}")).unwrap()),
            30,
        )
        .unwrap();
        tables.push_str(&format!("[satellites.sat{i}]\n"));
    }
    let url = format!("sqlite:{}", dir.path().join("orrery.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(&url).await.unwrap();
        store
            .load_synthetic(&SyntheticTld {
                zone: orrery_proto::Name::from_ascii("load").unwrap(),
                domains: 1000,
                seed: 1,
            })
            .await
            .unwrap();
        store.close().await;
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("master.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[master]
store = "{url}"
listen = ["127.0.0.1:{port}"]
[tls]
ca = "certs/ca.pem"
cert = "certs/m1.master.pem"
key = "certs/m1.master.key"
[satellite_defaults]
checkin_interval_ms = {checkin_ms}
dns = {{ udp = ["127.0.0.1:5300"] }}
selector = "std"
[selectors.std]
chains = [{{ name = "main", leaves = ["lookup"] }}]
[selectors.std.leaves.lookup]
kind = "lookup"
{tables}
"#
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("master.log")).unwrap();
    let mut master = Command::new(bin_dir().join("orrery-master"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start orrery-master (build it first)");
    let pid = master.id();
    let checkins = Arc::new(AtomicU64::new(0));
    let booted = Arc::new(AtomicU64::new(0));
    runtime.block_on(async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..satellites {
            let files = TlsFiles {
                ca: certs.join("ca.pem"),
                cert: certs.join(format!("sat{i}.satellite.pem")),
                key: certs.join(format!("sat{i}.satellite.key")),
            };
            let (checkins, booted) = (checkins.clone(), booted.clone());
            let address = format!("127.0.0.1:{port}");
            tasks.push(tokio::spawn(async move {
                session(files, address, checkin_ms, checkins, booted).await
            }));
        }
        while (booted.load(Ordering::Relaxed) as usize) < satellites {
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "only {} of {satellites} sessions booted",
                booted.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let boot_all = started.elapsed();
        println!(
            "{satellites} sessions booted, snapshot taken, following in {:.1} s",
            boot_all.as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (cpu0, n0, t0) = (cpu_seconds(pid), checkins.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (cpu1, n1, wall) = (cpu_seconds(pid), checkins.load(Ordering::Relaxed), t0.elapsed());
        let (rss, hwm) = memory_mib(pid);
        let wall = wall.as_secs_f64();
        println!(
            "over {wall:.1} s: {:.0} check-ins/s; master CPU {:.1} % of one core ({:.1} ms CPU per second), RSS {rss:.1} MiB (peak {hwm:.1} MiB)",
            (n1 - n0) as f64 / wall,
            100.0 * (cpu1 - cpu0) / wall,
            1000.0 * (cpu1 - cpu0) / wall,
        );
        for t in tasks {
            t.abort();
        }
    });
    let _ = master.kill();
    let _ = master.wait();
}

/// One satellite's session: boot, snapshot, follow (drained), check in every `checkin_ms`.
async fn session(
    files: TlsFiles,
    address: String,
    checkin_ms: u64,
    checkins: Arc<AtomicU64>,
    booted: Arc<AtomicU64>,
) {
    let material = TlsMaterial::load(&files).expect("satellite certificate");
    let mut dialer = Dialer::new(DialConfig::new(vec![address], client_config(&material)));
    let mut client = dialer.connect().await;
    let boot = loop {
        match client.boot(pb::BootRequest::default()).await {
            Ok(b) => break b.into_inner(),
            // The master may still be loading: it asks to come back.
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let version = boot
        .config
        .and_then(|c| SatelliteSettings::try_from(c).ok())
        .map(|s| s.version())
        .unwrap_or_default();
    let serial = loop {
        match fetch_snapshot(&mut client, &mut None).await {
            Ok((serial, _objects)) => break serial,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let mut stream = client
        .follow(pb::FollowRequest {
            from_serial: serial,
        })
        .await
        .expect("follow")
        .into_inner();
    tokio::spawn(async move { while let Ok(Some(_)) = stream.message().await {} });
    booted.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(checkin_ms));
    loop {
        tick.tick().await;
        let statistics = pb::Statistics {
            uptime_seconds: started.elapsed().as_secs(),
            queries_by_qtype: [(1, 100), (28, 50)].into_iter().collect(),
            responses_by_rcode: [(0, 140), (3, 10)].into_iter().collect(),
            memory_bytes: 64 << 20,
            objects: 1000,
            ..Default::default()
        };
        let request = pb::CheckInRequest {
            applied_serial: serial,
            config_version: version.clone(),
            statistics: Some(statistics),
            ..Default::default()
        };
        if client.check_in(request).await.is_ok() {
            checkins.fetch_add(1, Ordering::Relaxed);
        }
    }
}
