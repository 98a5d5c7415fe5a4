//! The standalone satellite (no master): the `orrery-satellite` binary started from a
//! configuration file and a state file answers DNS (`dig`), Whois (the Debian `whois` client)
//! and RDAP (plain HTTP), then stops cleanly on SIGTERM. Everything on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use orrery_satellite::write_snapshot;
use orrery_tests::loopback_port::free_port;

use crate::dig::{run, tool};
use crate::harness::{EXAMPLE_CONFIG, query, udp_exchange};
use crate::whois::{client_installed, data, whois};

/// The example configuration on `dns`, with its Whois and RDAP tables enabled on the other
/// two ports.
fn config(dns: u16, whois: u16, rdap: u16) -> String {
    let mut text = String::new();
    let mut on = false;
    for line in EXAMPLE_CONFIG.lines() {
        // The same uncommenting as the configuration's own test: `# [whois]` and `# [rdap]`
        // start blocks of commented-out settings.
        if line.starts_with("# [whois]") || line.starts_with("# [rdap]") {
            on = true;
        } else if !line.starts_with('#') {
            on = false;
        }
        text.push_str(match line.strip_prefix("# ") {
            Some(rest) if on && !rest.starts_with(' ') => rest,
            _ => line,
        });
        text.push('\n');
    }
    text.replace("127.0.0.1:5353", &format!("127.0.0.1:{dns}"))
        .replace("127.0.0.1:4343", &format!("127.0.0.1:{whois}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{rdap}"))
}

/// The satellite process, killed on drop if it is still running.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/rdap+json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn a_standalone_satellite_serves_dns_whois_and_rdap_from_a_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    write_snapshot(&state, &data()).unwrap();
    let (dns, whois_port, rdap, metrics) = (free_port(), free_port(), free_port(), free_port());
    let config_path = dir.path().join("satellite.toml");
    let text = config(dns, whois_port, rdap).replace(
        "# metrics = \"127.0.0.1:9153\"",
        &format!("metrics = \"127.0.0.1:{metrics}\""),
    );
    assert!(text.contains("\nmetrics = "), "{text}");
    std::fs::write(&config_path, text).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_orrery-satellite"))
        .arg("--snapshot")
        .arg(&state)
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut satellite = Process(child);
    let dns_addr: SocketAddr = ([127, 0, 0, 1], dns).into();
    let rdap_addr: SocketAddr = ([127, 0, 0, 1], rdap).into();

    // Serving once DNS answers (the services start together, Whois and RDAP just after).
    let probe = query("tld.", RecordType::SOA, None, false)
        .to_vec()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while udp_exchange(dns_addr, &probe).is_none() {
        assert!(
            satellite.0.try_wait().unwrap().is_none(),
            "the satellite exited"
        );
        assert!(Instant::now() < deadline, "no DNS answer within 30 s");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(rdap_addr).is_err() {
        assert!(Instant::now() < deadline, "RDAP is not listening");
        std::thread::sleep(Duration::from_millis(50));
    }

    if tool("dig") {
        let out = run(
            "dig",
            &[
                "@127.0.0.1".into(),
                "-p".into(),
                dns.to_string(),
                "www.foo.tld".into(),
                "A".into(),
                "+norec".into(),
            ],
        );
        assert!(
            out.contains("NOERROR") && out.contains("ns1.foo.tld."),
            "{out}"
        );
    }
    if client_installed() {
        let out = whois(whois_port, "foo.tld", "C.UTF-8");
        assert!(out.contains("Domain Name: FOO.TLD\n"), "{out}");
        assert!(
            out.contains("Registrar: Example Registrar, Inc.\n"),
            "{out}"
        );
    }
    let out = http_get(rdap_addr, "/domain/foo.tld");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"ldhName\":\"foo.tld\""), "{out}");
    // The base URL of the file is the one in the links.
    assert!(
        out.contains(&format!("http://127.0.0.1:{rdap}/domain/foo.tld")),
        "{out}"
    );
    let out = http_get(rdap_addr, "/domain/nope.tld");
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");

    // The metrics listener the file sets counts what was just asked, DNS and RDAP.
    let out = http_get(([127, 0, 0, 1], metrics).into(), "/metrics");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let total = |prefix: &str| -> f64 {
        out.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(
        total("orrery_queries_total{service=\"dns\"") >= 1.0,
        "no DNS query counted:\n{out}"
    );
    assert!(
        total("orrery_queries_total{service=\"rdap\"") >= 2.0,
        "the RDAP requests are not counted:\n{out}"
    );
    assert!(out.contains("orrery_applied_serial "), "{out}");

    // SIGTERM: a clean stop.
    let pid = satellite.0.id() as libc::pid_t;
    // SAFETY: `pid` is our child's, still running (it was not waited for).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = satellite.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

/// A catalog zone named inside a served zone stops a standalone satellite at start, naming
/// the field and the zone (the settings alone cannot tell: the check waits for the zones).
#[test]
fn a_catalog_inside_a_served_zone_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    write_snapshot(&state, &data()).unwrap();
    let config_path = dir.path().join("satellite.toml");
    let text = format!(
        "{}\n[xfr]\ncatalog_zone = \"catalog.tld\"\nacl = [{{ prefixes = [\"127.0.0.1\"] }}]\n",
        config(free_port(), free_port(), free_port())
    );
    std::fs::write(&config_path, text).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_orrery-satellite"))
        .arg("--snapshot")
        .arg(&state)
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut satellite = Process(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = satellite.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the satellite started serving");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    satellite
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("xfr.catalog_zone catalog.tld: lies inside the served zone tld"),
        "{stderr}"
    );
}
