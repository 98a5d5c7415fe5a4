//! A cluster of real processes: `orrery-master` and `orrery-satellite` started from the
//! workspace's own binaries, over a store made here, so that a test can do to them what an
//! operator's bad day does — `kill -9`, a restart, a store that is not there yet — and then ask
//! what real DNS, Whois and RDAP queries return.
//!
//! The binaries are the ones `cargo build --workspace` (and `cargo test --workspace`, which
//! builds every package's binaries for its integration tests) left beside this test binary.
//! Every process is killed on drop; every wait has a deadline; everything listens on loopback.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use orrery_proto::Registrar;
use orrery_store::Store;
use orrery_store::synthetic::SyntheticTld;

use crate::harness::{PgDatabase, free_port, try_query};
use crate::link::n;

/// Runs `$body` with `$c` bound to a fresh connection to the store at `$url` (SQLite or
/// PostgreSQL), closes it, and gives the body's result with errors as text.
macro_rules! on_connection {
    ($url:expr, |$c:ident| $body:expr) => {{
        use sqlx::Connection;
        async fn run<C: Connection>(url: &str) -> Result<C, String> {
            C::connect(url).await.map_err(|e| e.to_string())
        }
        async {
            if $url.starts_with("sqlite:") {
                let mut $c: sqlx::SqliteConnection = run($url).await?;
                let r = $body;
                $c.close().await.ok();
                r.map_err(|e| e.to_string())
            } else {
                let mut $c: sqlx::PgConnection = run($url).await?;
                let r = $body;
                $c.close().await.ok();
                r.map_err(|e| e.to_string())
            }
        }
        .await
    }};
}

/// The zone every process cluster serves.
pub(crate) const ZONE: &str = "flt";
/// Domains in the synthetic zone.
const DOMAINS: usize = 300;
/// How long a process has to come up.
const START: Duration = Duration::from_secs(60);

/// The directory holding this workspace's binaries (`target/debug` or `target/release`).
fn bin_dir() -> PathBuf {
    // This test binary is target/<profile>/deps/cluster-<hash>.
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// One of the workspace's binaries, which must have been built.
pub(crate) fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// Where a process cluster keeps its store.
pub(crate) enum Backend {
    Sqlite,
    Postgres(String),
}

/// What a satellite says about a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// A referral to the domain's nameservers.
    Delegated,
    /// NXDOMAIN, or NOERROR without a referral.
    Absent,
    /// No answer, or another rcode.
    Other(String),
}

/// A running process with its log file.
pub(crate) struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(mut command: Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("create a log file");
        // NO_COLOR not set: a log written to a file has no colour codes anyway (checked in
        // faults.rs, "a clean master stop").
        let child = command
            .env_remove("NO_COLOR")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        Self { child, log }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL: no clean-up of any kind.
    pub(crate) fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the wait for a clean exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not stop on SIGTERM:\n{}",
                    self.log.display(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ports one satellite serves on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ports {
    pub(crate) dns: u16,
    pub(crate) whois: u16,
    pub(crate) rdap: u16,
}

/// A store, certificates, a master process and satellite processes.
pub(crate) struct ProcessCluster {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) url: String,
    _pg: Option<PgDatabase>,
    pub(crate) store: Store,
    master_port: u16,
    master: Option<Process>,
    master_starts: usize,
    satellites: HashMap<String, Process>,
    satellite_starts: HashMap<String, usize>,
    ports: HashMap<String, Ports>,
    /// The `--master` ports satellites dial, in order (default: the first master's alone),
    /// and their `--return-after` seconds.
    satellite_masters: Vec<u16>,
    return_after: Option<String>,
    /// The satellites the master's configuration names (sat1, sat2, and any added).
    names: Vec<String>,
}

impl ProcessCluster {
    /// A store with a synthetic zone `flt.` and a registrar `FLT`, certificates for master m1
    /// and satellites sat1 and sat2, and a master configuration; nothing started yet.
    pub(crate) async fn create(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite:{}", dir.path().join("orrery.db").display()),
                None,
            ),
            Backend::Postgres(server) => {
                let db = PgDatabase::create(&server).await;
                (db.url.clone(), Some(db))
            }
        };
        let store = Store::open(&url).await.unwrap();
        store
            .load_synthetic(&SyntheticTld {
                zone: n(ZONE),
                domains: DOMAINS,
                seed: 11,
            })
            .await
            .unwrap();
        store
            .add_registrar(&Registrar::new("FLT", "Fault test registrar"))
            .await
            .unwrap();
        let certs = dir.path().join("certs");
        let master = binary("orrery-master");
        let run = |args: &[&str]| {
            let out = Command::new(&master)
                .args(args)
                .env("NO_COLOR", "1")
                .output()
                .unwrap();
            assert!(out.status.success(), "orrery-master {args:?}: {out:?}");
        };
        let c = certs.to_str().unwrap();
        run(&["certs", "ca", "--dir", c, "--days", "30"]);
        run(&[
            "certs", "issue", "--dir", c, "--master", "m1", "--days", "30",
        ]);
        for sat in ["sat1", "sat2"] {
            run(&[
                "certs",
                "issue",
                "--dir",
                c,
                "--satellite",
                sat,
                "--days",
                "30",
            ]);
        }
        let mut me = Self {
            dir,
            url,
            _pg: pg,
            store,
            master_port: free_port(),
            master: None,
            master_starts: 0,
            satellites: HashMap::new(),
            satellite_starts: HashMap::new(),
            ports: HashMap::new(),
            satellite_masters: Vec::new(),
            return_after: None,
            names: Vec::new(),
        };
        for sat in ["sat1", "sat2"] {
            me.add_ports(sat);
        }
        me.write_master_config("");
        me
    }

    fn add_ports(&mut self, sat: &str) {
        let ports = Ports {
            dns: free_port(),
            whois: free_port(),
            rdap: free_port(),
        };
        self.ports.insert(sat.to_owned(), ports);
        self.names.push(sat.to_owned());
    }

    /// One more satellite `name`: its certificate and ports. Write the master's configuration
    /// again ([`Self::write_master_config`]) to name it there.
    pub(crate) fn add_satellite(&mut self, name: &str) {
        let certs = self.dir.path().join("certs");
        let out = Command::new(binary("orrery-master"))
            .args(["certs", "issue", "--dir"])
            .arg(&certs)
            .args(["--satellite", name, "--days", "30"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "certs issue {name}: {out:?}");
        self.add_ports(name);
    }

    /// The master's configuration, with `extra` appended (more tables, or settings of a
    /// satellite's table: the satellites' tables come last).
    pub(crate) fn write_master_config(&self, extra: &str) {
        let mut satellites = String::new();
        for sat in &self.names {
            let p = self.ports[sat];
            satellites.push_str(&format!(
                "[satellites.{sat}]\n\
                 dns = {{ udp = [\"127.0.0.1:{dns}\"], tcp = [\"127.0.0.1:{dns}\"] }}\n\
                 whois = {{ tcp = [\"127.0.0.1:{whois}\"], timeout_ms = 2000 }}\n\
                 rdap = {{ http = [\"127.0.0.1:{rdap}\"], base_url = \"http://127.0.0.1:{rdap}/\" }}\n",
                dns = p.dns,
                whois = p.whois,
                rdap = p.rdap
            ));
        }
        let text = format!(
            r#"
[master]
store = "{url}"
listen = ["127.0.0.1:{port}"]
poll_interval_ms = 50
heartbeat_interval_ms = 500

[tls]
ca = "certs/ca.pem"
cert = "certs/m1.master.pem"
key = "certs/m1.master.key"

[satellite_defaults]
workers = 1
checkin_interval_ms = 500
# One table for both services: its leaf kinds exist in both.
selector = "std"
rds_selector = "std"

[selectors.std]
chains = [{{ name = "main", leaves = ["stats", "validate", "lookup"] }}]
[selectors.std.leaves.stats]
kind = "statistics"
[selectors.std.leaves.validate]
kind = "validate_query"
[selectors.std.leaves.lookup]
kind = "lookup"

{satellites}
{extra}
"#,
            url = self.url,
            port = self.master_port,
        );
        std::fs::write(self.dir.path().join("master.toml"), text).unwrap();
    }

    pub(crate) fn master_config(&self) -> PathBuf {
        self.dir.path().join("master.toml")
    }

    /// Starts the master process and waits until its link listens.
    pub(crate) fn start_master(&mut self) {
        self.spawn_master();
        self.wait_master_log("link listening");
    }

    /// The port the cluster's master listens on.
    pub(crate) fn master_port(&self) -> u16 {
        self.master_port
    }

    /// Starts another master on the same store and configuration, listening on `port`
    /// (`master-PORT.toml` beside the first one's); does not wait.
    pub(crate) fn spawn_other_master(&self, port: u16) -> Process {
        let text = std::fs::read_to_string(self.master_config()).unwrap();
        let first = format!("listen = [\"127.0.0.1:{}\"]", self.master_port);
        assert!(text.contains(&first), "{text}");
        let config = self.dir.path().join(format!("master-{port}.toml"));
        std::fs::write(
            &config,
            text.replace(&first, &format!("listen = [\"127.0.0.1:{port}\"]")),
        )
        .unwrap();
        let mut command = Command::new(binary("orrery-master"));
        command.arg("run").arg("--config").arg(&config);
        Process::spawn(command, self.dir.path().join(format!("master-{port}.log")))
    }

    /// The process id of satellite `name` (for signals).
    pub(crate) fn satellite_pid(&self, name: &str) -> u32 {
        self.satellites[name].child.id()
    }

    /// The process id of the cluster's master (for signals).
    pub(crate) fn master_pid(&self) -> u32 {
        self.master
            .as_ref()
            .expect("the master is running")
            .child
            .id()
    }

    /// Stops satellite `name` cleanly (SIGTERM), keeping its state file.
    pub(crate) fn stop_satellite(&mut self, name: &str) {
        let sat = self.satellites.remove(name).expect("satellite running");
        let status = sat.terminate();
        assert!(status.success(), "{name} stopped with {status}");
    }

    /// Starts the master process without waiting for it.
    pub(crate) fn spawn_master(&mut self) {
        assert!(self.master.is_none(), "the master is running");
        self.master_starts += 1;
        let log = self
            .dir
            .path()
            .join(format!("master.{}.log", self.master_starts));
        let mut command = Command::new(binary("orrery-master"));
        command.arg("run").arg("--config").arg(self.master_config());
        self.master = Some(Process::spawn(command, log));
    }

    /// Waits until the running master's log holds `text`.
    pub(crate) fn wait_master_log(&mut self, text: &str) {
        let deadline = Instant::now() + START;
        loop {
            let master = self.master.as_mut().expect("master running");
            let log = master.log();
            if log.contains(text) {
                return;
            }
            if let Some(status) = master.exited() {
                panic!("the master exited ({status}) before logging {text:?}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the master did not log {text:?} within {START:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The running master's log so far.
    pub(crate) fn master_log(&self) -> String {
        self.master.as_ref().map(Process::log).unwrap_or_default()
    }

    /// Whether the master process is still running.
    pub(crate) fn master_running(&mut self) -> bool {
        self.master.as_mut().is_some_and(|m| m.exited().is_none())
    }

    /// `kill -9` of the master.
    pub(crate) fn kill_master(&mut self) {
        self.master.take().expect("master running").kill9();
    }

    /// SIGTERM to the master; returns its exit status.
    pub(crate) fn stop_master(&mut self) -> std::process::ExitStatus {
        self.master.take().expect("master running").terminate()
    }

    /// Satellites started from now on dial the masters on `ports`, in this order, and go back
    /// to an earlier one after `return_after` seconds of it being up.
    pub(crate) fn set_satellite_masters(&mut self, ports: &[u16], return_after: &str) {
        self.satellite_masters = ports.to_vec();
        self.return_after = Some(return_after.to_owned());
    }

    /// The `--master` arguments of a satellite, and `--return-after`.
    fn master_args(&self, command: &mut Command) {
        let ports = if self.satellite_masters.is_empty() {
            vec![self.master_port]
        } else {
            self.satellite_masters.clone()
        };
        for port in ports {
            command.arg("--master").arg(format!("127.0.0.1:{port}"));
        }
        if let Some(seconds) = &self.return_after {
            command.arg("--return-after").arg(seconds);
        }
    }

    /// Adds `setting` (a `key = value` line) to the `[master]` table of the configuration.
    pub(crate) fn add_master_setting(&self, setting: &str) {
        let path = self.master_config();
        let text = std::fs::read_to_string(&path).unwrap();
        let store = format!("store = \"{}\"", self.url);
        assert!(text.contains(&store), "{text}");
        let text = text.replacen(&store, &format!("{store}\n{setting}"), 1);
        std::fs::write(path, text).unwrap();
    }

    /// Starts satellite `name` (a bare satellite, or one with a state file from an earlier
    /// run) dialling this cluster's master (or the masters of [`Self::set_satellite_masters`]);
    /// does not wait.
    pub(crate) fn spawn_satellite(&mut self, name: &str) {
        assert!(!self.satellites.contains_key(name), "{name} is running");
        let starts = self.satellite_starts.entry(name.to_owned()).or_default();
        *starts += 1;
        let log = self.dir.path().join(format!("{name}.{starts}.log"));
        let mut command = Command::new(binary("orrery-satellite"));
        self.master_args(&mut command);
        command
            .arg("--tls-dir")
            .arg(self.dir.path().join("certs"))
            .arg("--name")
            .arg(name)
            .arg("--state")
            .arg(self.state_file(name));
        self.satellites
            .insert(name.to_owned(), Process::spawn(command, log));
    }

    /// Starts a second process with satellite `name`'s identity (its certificate) and a state
    /// file of its own, as an operator's copy would; it is killed with the cluster.
    pub(crate) fn spawn_duplicate(&mut self, name: &str) {
        let copy = format!("{name}-copy");
        let log = self.dir.path().join(format!("{copy}.log"));
        let mut command = Command::new(binary("orrery-satellite"));
        command
            .arg("--master")
            .arg(format!("127.0.0.1:{}", self.master_port))
            .arg("--tls-dir")
            .arg(self.dir.path().join("certs"))
            .arg("--name")
            .arg(name)
            .arg("--state")
            .arg(self.state_file(&copy));
        self.satellites.insert(copy, Process::spawn(command, log));
    }

    /// Starts satellite `name` and waits until it answers the zone's SOA.
    pub(crate) fn start_satellite(&mut self, name: &str) {
        self.spawn_satellite(name);
        self.wait_serving(name);
    }

    /// Waits until satellite `name` answers the zone's SOA query.
    pub(crate) fn wait_serving(&mut self, name: &str) {
        let deadline = Instant::now() + START;
        while self.soa_serial(name).is_none() {
            let sat = self.satellites.get_mut(name).expect("satellite running");
            if let Some(status) = sat.exited() {
                panic!("{name} exited ({status}):\n{}", sat.log());
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not answer within {START:?}:\n{}",
                sat.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn state_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.state"))
    }

    /// The current log of satellite `name`.
    pub(crate) fn satellite_log(&self, name: &str) -> String {
        self.satellites
            .get(name)
            .map(Process::log)
            .unwrap_or_default()
    }

    /// `kill -9` of satellite `name`.
    pub(crate) fn kill_satellite(&mut self, name: &str) {
        self.satellites
            .remove(name)
            .expect("satellite running")
            .kill9();
    }

    pub(crate) fn ports(&self, name: &str) -> Ports {
        self.ports[name]
    }

    fn dns_addr(&self, name: &str) -> SocketAddr {
        ([127, 0, 0, 1], self.ports[name].dns).into()
    }

    /// The SOA serial satellite `sat` answers for the zone, `None` without an answer.
    pub(crate) fn soa_serial(&self, sat: &str) -> Option<u32> {
        self.zone_soa_serial(sat, ZONE)
    }

    /// The SOA serial satellite `sat` answers for `zone`.
    pub(crate) fn zone_soa_serial(&self, sat: &str, zone: &str) -> Option<u32> {
        let m = try_query(self.dns_addr(sat), zone, RecordType::SOA, Some(1232))?;
        m.answers.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
    }

    /// What satellite `sat` answers for `domain` (a fully qualified name without the dot).
    pub(crate) fn dns(&self, sat: &str, domain: &str) -> Seen {
        let Some(m) = try_query(self.dns_addr(sat), domain, RecordType::A, Some(1232)) else {
            return Seen::Other("no answer".into());
        };
        seen(&m, domain)
    }

    /// Waits up to `within` until satellite `sat` says `want` about `domain`; returns the time
    /// it took, or panics with what it said instead.
    pub(crate) fn wait_dns(
        &self,
        sat: &str,
        domain: &str,
        want: &Seen,
        within: Duration,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let got = self.dns(sat, domain);
            if &got == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "{sat} says {got:?} for {domain} after {within:?}, not {want:?}\nsatellite log:\n{}\nmaster log:\n{}",
                self.satellite_log(sat),
                self.master_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One Whois query to satellite `sat`; the whole answer.
    pub(crate) fn whois(&self, sat: &str, query: &str) -> String {
        whois_at(([127, 0, 0, 1], self.ports[sat].whois).into(), query)
    }

    /// One RDAP GET to satellite `sat`: status and body.
    pub(crate) fn rdap(&self, sat: &str, path: &str) -> (u16, String) {
        rdap_at(([127, 0, 0, 1], self.ports[sat].rdap).into(), path)
    }

    /// Runs SQL on the store as a registration system would, outside Orrery's write API;
    /// returns the database's error text when it refuses.
    pub(crate) async fn sql(&self, statement: &str) -> Result<u64, String> {
        let q = sqlx::AssertSqlSafe(statement.to_owned());
        on_connection!(&self.url, |c| sqlx::raw_sql(q)
            .execute(&mut c)
            .await
            .map(|r| r.rows_affected()))
    }

    /// A domain name of the synthetic zone without hosts of its own (glue), so that deleting
    /// it alone is allowed, in store order (`i` from 0).
    pub(crate) async fn glueless_domain(&self, i: usize) -> String {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT d.name FROM domain d WHERE NOT EXISTS \
             (SELECT 1 FROM host h WHERE h.domain_id = d.id) ORDER BY d.name LIMIT 1 OFFSET {i}"
        ));
        let name: Result<String, String> =
            on_connection!(&self.url, |c| sqlx::query_scalar(q).fetch_one(&mut c).await);
        name.expect("a domain of the synthetic zone without glue")
    }

    /// A domain name of the synthetic zone, in store order (`i` from 0).
    pub(crate) async fn some_domain(&self, i: usize) -> String {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT name FROM domain ORDER BY name LIMIT 1 OFFSET {i}"
        ));
        let name: Result<String, String> =
            on_connection!(&self.url, |c| sqlx::query_scalar(q).fetch_one(&mut c).await);
        name.expect("a domain of the synthetic zone")
    }
}

/// Classifies an answer for `domain`.
pub(crate) fn seen(m: &Message, domain: &str) -> Seen {
    let owner = format!("{domain}.");
    let referral = m.authorities.iter().any(|r| {
        r.record_type() == RecordType::NS && r.name.to_ascii().eq_ignore_ascii_case(&owner)
    });
    match m.response_code {
        ResponseCode::NoError if referral => Seen::Delegated,
        ResponseCode::NoError | ResponseCode::NXDomain => Seen::Absent,
        other => Seen::Other(format!("{other:?}")),
    }
}

/// One Whois query: the whole answer (the server closes after it).
pub(crate) fn whois_at(addr: SocketAddr, query: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect Whois");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("{query}\r\n").as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// One RDAP GET over HTTP/1.1 with `Connection: close`: status and body.
pub(crate) fn rdap_at(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect RDAP");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/rdap+json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    (status, body)
}
