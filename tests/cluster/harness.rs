//! Test harness: outside programs and databases, started for one test and stopped on drop.
//!
//! Tests that need PostgreSQL or a Debian program say clearly when they skip, and never skip
//! under `CI=true`: there a missing peer is a failure.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name as HName, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips the test (returns `None`) when a requirement is missing, or fails it under CI.
fn missing(what: &str) -> Option<std::convert::Infallible> {
    if in_ci() {
        panic!("CI=true and {what}: this test must run in CI");
    }
    eprintln!("SKIPPED: {what}");
    None
}

/// The PostgreSQL server URL from `DATABASE_URL`, if any.
pub(crate) fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Some(url),
        _ => {
            missing("DATABASE_URL is not set to a PostgreSQL URL");
            None
        }
    }
}

/// A program from Debian's packages, looked up in PATH and the sbin directories.
pub(crate) fn program(name: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path.split(':').chain(["/usr/sbin", "/usr/bin", "/sbin"]) {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    missing(&format!(
        "{name} is not installed (apt-get install {package})"
    ));
    None
}

/// A fresh PostgreSQL database for one test, dropped with it.
pub(crate) struct PgDatabase {
    admin_url: String,
    name: String,
    pub(crate) url: String,
}

impl PgDatabase {
    pub(crate) async fn create(server_url: &str) -> Self {
        use sqlx::Connection;
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "orrery_t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(server_url)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        conn.close().await.ok();
        Self {
            admin_url: server_url.to_owned(),
            url: database_url(server_url, &name),
            name,
        }
    }
}

/// `url` with its database replaced by `db` (URL path or `dbname=` query parameter).
fn database_url(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => format!("{}/{db}", &base[..scheme_end + slash]),
        None => format!("{base}/{db}"),
    };
    match query {
        Some(q) => {
            let q: Vec<&str> = q.split('&').filter(|p| !p.starts_with("dbname=")).collect();
            format!("{base}?{}", q.join("&"))
        }
        None => base,
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside async context: use a private runtime on a thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&url).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()
            })
        })
        .join();
    }
}

pub(crate) use orrery_tests::loopback_port::free_port;

/// A real BIND `named` serving the generator's output on a loopback port.
pub(crate) struct Named {
    child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) dir: tempfile::TempDir,
}

impl Named {
    /// Starts `named` in the foreground with `zones_conf` included, and waits until it answers
    /// the SOA of `probe_zone`.
    pub(crate) fn start(named: &Path, zones_conf: &Path, probe_zone: &str) -> Self {
        Self::start_with_options(named, zones_conf, probe_zone, "minimal-responses no;")
    }

    /// As [`Named::start`], with `options` (statements such as `minimal-responses no-auth;`)
    /// added to the `options` block.
    pub(crate) fn start_with_options(
        named: &Path,
        zones_conf: &Path,
        probe_zone: &str,
        options: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("named.conf");
        // Loopback only; no recursion, no NOTIFY, no outgoing queries of any kind.
        std::fs::write(
            &conf,
            format!(
                "options {{\n\tdirectory \"{d}\";\n\tpid-file \"{d}/named.pid\";\n\tlisten-on port {port} {{ 127.0.0.1; }};\n\
                 \tlisten-on-v6 {{ none; }};\n\trecursion no;\n\tnotify no;\n\tallow-transfer {{ none; }};\n\
                 \tdnssec-validation no;\n\t{options}\n}};\ncontrols {{ }};\ninclude \"{z}\";\n",
                d = dir.path().display(),
                z = zones_conf.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("named.log")).unwrap();
        let child = Command::new(named)
            .args(["-g", "-4", "-c"])
            .arg(&conf)
            .args(["-u", "root"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start named");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let me = Self { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(m) = try_query(addr, probe_zone, RecordType::SOA, None)
                && !m.answers.is_empty()
            {
                return me;
            }
            assert!(
                Instant::now() < deadline,
                "named did not come up: {}",
                me.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds a query message.
pub(crate) fn build_query(name: &str, qtype: RecordType, edns_size: Option<u16>) -> Vec<u8> {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(HName::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns_size {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_bytes().unwrap()
}

fn rand_id() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    NEXT.fetch_add(7919, std::sync::atomic::Ordering::Relaxed) as u16
}

/// One UDP query with a short timeout, retried twice; `None` if no answer came.
pub(crate) fn try_query(
    addr: SocketAddr,
    name: &str,
    qtype: RecordType,
    edns_size: Option<u16>,
) -> Option<Message> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(700)))
        .ok()?;
    let q = build_query(name, qtype, edns_size);
    let mut buf = [0u8; 65535];
    for _ in 0..3 {
        sock.send_to(&q, addr).ok()?;
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return Message::from_bytes(&buf[..n]).ok();
        }
    }
    None
}

/// One UDP query that must be answered.
pub(crate) fn query(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    try_query(addr, name, qtype, Some(4096))
        .unwrap_or_else(|| panic!("no answer from {addr} for {name} {qtype}"))
}

/// A satellite serving `data` in-process on 127.0.0.1:0 (UDP and TCP), stopped on drop.
pub(crate) struct Satellite {
    pub(crate) udp: SocketAddr,
    pub(crate) tcp: SocketAddr,
    cancel: tokio_util::sync::CancellationToken,
    server: Option<orrery_satellite::dns::server::Server>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Satellite {
    /// Starts a satellite from configuration text (its listen addresses are ignored: the
    /// sockets are bound here) and snapshot data.
    pub(crate) fn start(config: &str, data: &orrery_satellite::SnapshotData) -> Self {
        let zones =
            orrery_satellite::ZoneSet::build(data.serial, &data.zones, &data.domains, &data.hosts);
        Self::start_zones(config, zones)
    }

    /// [`Satellite::start`] with tables already built (a signed zone's, from a state file's
    /// changes with their DNSSEC sets).
    pub(crate) fn start_zones(config: &str, zones: orrery_satellite::ZoneSet) -> Self {
        use orrery_satellite::dns::leaf::Dns;
        use orrery_satellite::dns::server::Server;
        use orrery_satellite::{Config, Pipeline, Selector, Served, ServedStore};
        use std::sync::Arc;

        let config = Config::parse(config).expect("satellite config");
        let pipeline = Arc::new(Pipeline::new(
            Selector::<Dns>::build(&config.selector).expect("selector"),
            Arc::new(ServedStore::new(Served::dns_only(zones))),
            config.nsid(),
        ));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        let udp_addr = udp.local_addr().unwrap();
        let (server, tcp_addr) = runtime.block_on(async {
            let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind loopback");
            let tcp_addr = tcp.local_addr().unwrap();
            let server = Server::start(
                pipeline,
                vec![udp],
                vec![tcp],
                &config.server,
                cancel.clone(),
            )
            .expect("start the satellite");
            (server, tcp_addr)
        });
        Self {
            udp: udp_addr,
            tcp: tcp_addr,
            cancel,
            server: Some(server),
            runtime: Some(runtime),
        }
    }
}

impl Drop for Satellite {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let (Some(server), Some(rt)) = (self.server.take(), self.runtime.as_ref()) {
            rt.block_on(server.join());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

pub(crate) use orrery_tests::private_postgres::PrivatePostgres;

/// A private PostgreSQL server, initialised and not started; `None` when PostgreSQL's server
/// binaries are missing (a skip, or a failure under CI).
pub(crate) fn private_postgres() -> Option<PrivatePostgres> {
    let Some(bin) = PrivatePostgres::find_binaries() else {
        missing("PostgreSQL's server binaries are not installed (apt-get install postgresql)");
        return None;
    };
    Some(PrivatePostgres::init(&bin))
}
