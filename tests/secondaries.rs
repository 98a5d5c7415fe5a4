//! Third-party secondaries — Knot, NSD and BIND from Debian's packages — following a primary by
//! zone transfer with TSIG (issue 14): the one copy of their configuration, each started in a
//! directory of the caller's and killed on drop, and what `kdig` reads from a server (a zone's
//! SOA serial, its whole content by AXFR).
//!
//! Used by the satellite's integration tests (`satellite/tests/integration/xfr.rs`) and by the
//! cluster test (`tests/cluster/xfr.rs`), through their dependency on this crate's library.
//! Every secondary listens on 127.0.0.1 (the tests run in a loopback-only namespace), accepts
//! NOTIFY from the primary signed with the key, and allows unsigned AXFR from 127.0.0.1 so that
//! a test can read back what it holds. Its log goes to `secondary.log` in its directory.
//!
//! Knot and BIND can also follow a catalog zone (RFC 9432, `Setup::catalog`): they then serve
//! every member zone the catalog lists, from the same primary with the same key. NSD 4.6.1
//! (Debian 12's) has no catalog support.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TSIG key (HMAC-SHA256), as BIND's `tsig-keygen` prints it.
#[derive(Clone, Copy, Debug)]
pub struct TsigKey<'a> {
    pub name: &'a str,
    /// Base64 (RFC 4648 §4).
    pub secret: &'a str,
}

impl TsigKey<'_> {
    /// The `-y` argument of dig and kdig.
    pub fn dig_arg(&self) -> String {
        format!("hmac-sha256:{}:{}", self.name, self.secret)
    }
}

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Knot,
    Nsd,
    Bind,
}

impl Kind {
    pub const ALL: [Self; 3] = [Self::Knot, Self::Nsd, Self::Bind];

    /// The daemon's program name.
    pub fn binary(self) -> &'static str {
        match self {
            Self::Knot => "knotd",
            Self::Nsd => "nsd",
            Self::Bind => "named",
        }
    }

    /// The Debian package that installs it.
    pub fn package(self) -> &'static str {
        match self {
            Self::Knot => "knot",
            Self::Nsd => "nsd",
            Self::Bind => "bind9",
        }
    }

    /// Writes the configuration for `setup` in `dir`; returns the daemon's arguments (it stays
    /// in the foreground).
    pub fn configure(self, dir: &Path, setup: &Setup<'_>) -> Vec<String> {
        let d = dir.display();
        let Setup {
            port,
            primary,
            key,
            zones,
            catalog,
        } = *setup;
        let (sat_ip, sat_port) = (primary.ip(), primary.port());
        let (key_name, secret) = (key.name, key.secret);
        let (file, text) = match self {
            Self::Knot => {
                let mut zones: String = zones
                    .iter()
                    .map(|z| {
                        format!(
                            "  - domain: {z}\n    master: primary\n    acl: [from_primary, local]\n"
                        )
                    })
                    .collect();
                // The members of a catalog take the `member` template: the same primary.
                let mut member = String::new();
                if let Some(c) = catalog {
                    zones.push_str(&format!(
                        "  - domain: {c}\n    master: primary\n    acl: [from_primary, local]\n    \
                         catalog-role: interpret\n    catalog-template: member\n"
                    ));
                    member = format!(
                        "  - id: member\n    storage: {d}\n    master: primary\n    \
                         acl: [from_primary, local]\n    zonefile-sync: -1\n    \
                         zonefile-load: none\n    journal-content: all\n"
                    );
                }
                (
                    "knot.conf",
                    format!(
                        r#"server:
    listen: 127.0.0.1@{port}
    rundir: {d}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: {d}/secondary.log
    any: info
database:
    storage: {d}
key:
  - id: {key_name}
    algorithm: hmac-sha256
    secret: {secret}
remote:
  - id: primary
    address: {sat_ip}@{sat_port}
    key: {key_name}
acl:
  - id: from_primary
    address: {sat_ip}
    key: {key_name}
    action: notify
  - id: local
    address: 127.0.0.1
    action: transfer
template:
  - id: default
    storage: {d}
    zonefile-sync: -1
    zonefile-load: none
    journal-content: all
{member}zone:
{zones}"#
                    ),
                )
            }
            Self::Nsd => {
                assert!(catalog.is_none(), "NSD 4.6 cannot follow a catalog zone");
                let zones: String = zones
                    .iter()
                    .map(|z| {
                        format!(
                            "zone:\n    name: \"{z}\"\n    zonefile: \"{z}.zone\"\n    \
                             allow-notify: {sat_ip} {key_name}\n    \
                             request-xfr: {sat_ip}@{sat_port} {key_name}\n    \
                             provide-xfr: 127.0.0.1 NOKEY\n"
                        )
                    })
                    .collect();
                // `xfrd-reload-timeout: 0`: NSD 4.6 reloads as soon as a transfer is
                // committed instead of at most once a second. With the default (1 s), a zone
                // notified more than once a second (a satellite announces each serial, every
                // 200 ms at most) has several transfers applied by one reload; NSD 4.6's xfrd
                // then forgets only the newest of them, takes the one before for an update the
                // reload failed to apply (`soa serial N update failed, restarting transfer`)
                // and, when both were acquired in the same second, starts again with AXFR. An
                // NSD bug, fixed in 4.12.0 (NLnetLabs/nsd bf8200fa); the measurements, Knot as
                // the primary included, are in deploy/runbooks/xfr.md.
                (
                    "nsd.conf",
                    format!(
                        r#"server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    pidfile: "{d}/nsd.pid"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    zonelistfile: "{d}/zone.list"
    logfile: "{d}/secondary.log"
    verbosity: 2
    server-count: 1
    xfrd-reload-timeout: 0
remote-control:
    control-enable: no
key:
    name: "{key_name}"
    algorithm: hmac-sha256
    secret: "{secret}"
{zones}"#
                    ),
                )
            }
            Self::Bind => {
                let zones: String = zones
                    .iter()
                    .chain(&catalog)
                    .map(|z| {
                        format!(
                            "zone \"{z}\" {{\n    type secondary;\n    \
                             primaries {{ {sat_ip} port {sat_port} key {key_name}; }};\n    \
                             file \"{d}/{z}.db\";\n}};\n"
                        )
                    })
                    .collect();
                // Members from the catalog: kept in memory, from the same primary.
                let catalog_zones = catalog
                    .map(|c| {
                        format!(
                            "    catalog-zones {{\n        zone \"{c}\" default-primaries {{ \
                             {sat_ip} port {sat_port} key {key_name}; }}\n            \
                             in-memory yes min-update-interval 1;\n    }};\n"
                        )
                    })
                    .unwrap_or_default();
                (
                    "named.conf",
                    format!(
                        r#"options {{
    directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    recursion no;
    notify no;
    dnssec-validation no;
    allow-transfer {{ 127.0.0.1; }};
{catalog_zones}}};
controls {{ }};
key "{key_name}" {{ algorithm hmac-sha256; secret "{secret}"; }};
logging {{
    channel file {{ file "{d}/secondary.log"; severity info; print-time yes; }};
    category default {{ file; }};
    # "got incremental response" / "got nonincremental response" are debug level 3 (and
    # need the server's debug mode, -d 1): they tell IXFR from AXFR.
    channel xfer {{ file "{d}/secondary.log"; severity debug 3; print-time yes; }};
    category xfer-in {{ xfer; }};
    category notify {{ file; }};
}};
{zones}"#
                    ),
                )
            }
        };
        let conf = dir.join(file).display().to_string();
        std::fs::write(&conf, text).expect("write the secondary's configuration");
        match self {
            Self::Knot => vec!["-c".into(), conf],
            Self::Nsd => vec!["-d".into(), "-c".into(), conf],
            Self::Bind => vec![
                "-f".into(),
                "-d".into(),
                "1".into(),
                "-n".into(),
                "1".into(),
                "-c".into(),
                conf,
            ],
        }
    }
}

/// What a secondary follows, and where it listens.
#[derive(Clone, Copy, Debug)]
pub struct Setup<'a> {
    /// Its UDP and TCP port on 127.0.0.1.
    pub port: u16,
    /// The primary's DNS address (SOA queries and transfers).
    pub primary: SocketAddr,
    /// The key of its requests, and of the NOTIFYs it accepts.
    pub key: TsigKey<'a>,
    /// The zones it follows (apex names without the final dot).
    pub zones: &'a [&'a str],
    /// A catalog zone it follows too, serving the members it lists (Knot and BIND only).
    pub catalog: Option<&'a str>,
}

/// A running secondary, killed on drop.
pub struct Secondary {
    pub kind: Kind,
    pub addr: SocketAddr,
    dir: PathBuf,
    child: Child,
}

impl Secondary {
    /// Configures and starts `kind` in `dir` (which the caller keeps); does not wait.
    pub fn start(kind: Kind, dir: &Path, setup: &Setup<'_>) -> Self {
        let args = kind.configure(dir, setup);
        let child = Command::new(kind.binary())
            .args(&args)
            // BIND in debug mode writes `named.run` in its working directory.
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", kind.binary()));
        Self {
            kind,
            addr: ([127, 0, 0, 1], setup.port).into(),
            dir: dir.to_path_buf(),
            child,
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("secondary.log")).unwrap_or_default()
    }

    /// The SOA serial it answers for `zone`, `None` while it has none.
    pub fn serial(&self, zone: &str) -> Option<u32> {
        soa_serial(self.addr, zone)
    }

    /// Waits until it answers `want` as the SOA serial of `zone` (`None`: until it no longer
    /// serves the zone), polling every `poll`; panics with its log after `within`.
    pub fn wait_for_serial(&self, zone: &str, want: Option<u32>, within: Duration, poll: Duration) {
        let started = Instant::now();
        while self.serial(zone) != want {
            assert!(
                started.elapsed() < within,
                "{:?}: {zone} never at serial {want:?}: {}",
                self.kind,
                self.log()
            );
            std::thread::sleep(poll);
        }
    }
}

impl Drop for Secondary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kdig` with `args`: its standard output.
fn kdig(args: &[String]) -> String {
    let out = Command::new("kdig")
        .args(args)
        .output()
        .expect("run kdig (apt-get install knot-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The SOA serial `server` answers for `zone` (UDP), `None` without a SOA answer.
pub fn soa_serial(server: SocketAddr, zone: &str) -> Option<u32> {
    let out = kdig(&[
        format!("@{}", server.ip()),
        "-p".into(),
        server.port().to_string(),
        "+time=2".into(),
        "+retry=1".into(),
        zone.into(),
        "SOA".into(),
        "+short".into(),
    ]);
    out.split_whitespace().nth(2)?.parse().ok()
}

/// The whole of `zone` as `server` sends it by AXFR (signed with `key` if given): every record
/// one line, fields separated by one space, owner in lower case, sorted; the TSIG records left
/// out. Empty (or a partial zone) if the transfer failed.
pub fn axfr(server: SocketAddr, zone: &str, key: Option<TsigKey<'_>>) -> Vec<String> {
    let mut args = vec![
        format!("@{}", server.ip()),
        "-p".into(),
        server.port().to_string(),
        "+time=10".into(),
        zone.into(),
        "AXFR".into(),
        "+nocomments".into(),
    ];
    if let Some(key) = key {
        args.push("-y".into());
        args.push(key.dig_arg());
    }
    let mut lines: Vec<String> = kdig(&args)
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let owner = fields.next()?.to_lowercase();
            let rest: Vec<&str> = fields.collect();
            // owner TTL CLASS TYPE: a TSIG record's class is ANY.
            (rest.get(2) != Some(&"TSIG")).then(|| format!("{owner} {}", rest.join(" ")))
        })
        .collect();
    lines.sort();
    lines
}
