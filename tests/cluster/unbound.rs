//! Unbound, the validating resolver of the DNSSEC tests, started by a test in its
//! loopback-only namespace: a stub zone points at a satellite, the trust anchors (the zone's
//! KSK DNSKEY or its DS, what the parent would hold) are in a file the test may rewrite, as a
//! parent changes its DS, and Unbound re-reads with `unbound-control reload_keep_cache`.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;

use crate::harness::free_port;

/// How a test wants its resolver.
pub(crate) struct UnboundSetup<'a> {
    /// The zone stubbed to `sat`.
    pub(crate) zone: &'a str,
    pub(crate) sat: SocketAddr,
    /// DNSKEY or DS lines in master-file form.
    pub(crate) anchors: Vec<String>,
    /// Cache as a deployed resolver does (each TTL honoured); `false`: cache nothing, so each
    /// answer is the satellite's current one.
    pub(crate) cache: bool,
    /// `unbound-control`, to change the trust anchors while Unbound runs.
    pub(crate) control: Option<PathBuf>,
}

/// Unbound on a loopback port, validating with `anchor`, the zone `test.` stubbed to `sat`.
pub(crate) struct Unbound {
    child: Child,
    pub(crate) addr: SocketAddr,
    conf: PathBuf,
    anchors: PathBuf,
    control: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Unbound {
    pub(crate) fn start(unbound: &Path, anchor: &str, sat: SocketAddr) -> Self {
        Self::start_for(unbound, "test", anchor, sat)
    }

    /// Unbound validating `zone` (stubbed to `sat`) with `anchor`, caching nothing.
    pub(crate) fn start_for(unbound: &Path, zone: &str, anchor: &str, sat: SocketAddr) -> Self {
        Self::start_with(
            unbound,
            UnboundSetup {
                zone,
                sat,
                anchors: vec![anchor.to_owned()],
                cache: false,
                control: None,
            },
        )
    }

    pub(crate) fn start_with(unbound: &Path, setup: UnboundSetup<'_>) -> Self {
        let UnboundSetup {
            zone,
            sat,
            anchors,
            cache,
            control,
        } = setup;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("unbound.conf");
        let anchor_file = dir.path().join("anchors");
        std::fs::write(&anchor_file, anchors.join("\n") + "\n").unwrap();
        let caching = if cache {
            ""
        } else {
            "cache-max-ttl: 0\n    cache-max-negative-ttl: 0"
        };
        let remote = if control.is_some() {
            format!(
                "control-enable: yes\n    control-interface: 127.0.0.1\n    control-port: {}\n    control-use-cert: no",
                free_port()
            )
        } else {
            "control-enable: no".to_owned()
        };
        std::fs::write(
            &conf,
            format!(
                r#"server:
    interface: 127.0.0.1
    port: {port}
    do-ip6: no
    do-daemonize: no
    use-syslog: no
    logfile: ""
    verbosity: 1
    val-log-level: 2
    chroot: ""
    username: ""
    directory: "{dir}"
    pidfile: ""
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "validator iterator"
    trust-anchor-signaling: no
    root-key-sentinel: no
    harden-referral-path: no
    qname-minimisation: no
    {caching}
    trust-anchor-file: "{anchor_file}"
    # `test.` is one of Unbound's default local zones (RFC 6761): served by the satellite here.
    local-zone: "{zone}." nodefault
remote-control:
    {remote}
stub-zone:
    name: "{zone}."
    stub-addr: {ip}@{sport}
"#,
                dir = dir.path().display(),
                anchor_file = anchor_file.display(),
                ip = sat.ip(),
                sport = sat.port(),
            ),
        )
        .unwrap();
        let child = Command::new(unbound)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start unbound");
        let me = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            conf,
            anchors: anchor_file,
            control,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while ask(me.addr, zone, 6).is_none() {
            assert!(Instant::now() < deadline, "unbound did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        me
    }

    /// Replaces the trust anchors, as a parent replaces the zone's DS RRset, and has Unbound
    /// re-read them keeping its caches (what it holds of the zone stays cached, as in a
    /// resolver whose cached DS RRset expires).
    pub(crate) fn set_anchors(&self, anchors: &[String]) {
        std::fs::write(&self.anchors, anchors.join("\n") + "\n").unwrap();
        let control = self.control.as_ref().expect("started with unbound-control");
        let out = Command::new(control)
            .arg("-c")
            .arg(&self.conf)
            .arg("reload_keep_cache")
            .output()
            .expect("run unbound-control");
        assert!(
            out.status.success(),
            "unbound-control reload_keep_cache: {out:?}"
        );
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A recursive query with DO set (EDNS 1232); `None` if no answer came in time.
pub(crate) fn ask(addr: SocketAddr, name: &str, qtype: u16) -> Option<Message> {
    let mut p = vec![0x4F, 0x52, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 0]);
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut buf = [0u8; 65535];
    for _ in 0..3 {
        sock.send_to(&p, addr).ok()?;
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return Message::from_vec(&buf[..n]).ok();
        }
    }
    None
}
