//! Real clients: `dig` (BIND) and `kdig` (Knot) against the satellite. Skipped, saying so,
//! when the tools are not installed; never skipped when `CI=true`.

use std::process::Command;

use crate::fixtures::registry;
use crate::harness::{EXAMPLE_CONFIG, TestServer};

pub(crate) fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("-v").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is not installed but CI=true: install dnsutils and knot-dnsutils"
        );
        eprintln!("SKIPPED: {name} is not installed (apt-get install dnsutils knot-dnsutils)");
    }
    found
}

pub(crate) fn run(name: &str, args: &[String]) -> String {
    let out = Command::new(name).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[cfg_attr(
    missing_dns_clients,
    ignore = "dig or kdig is not installed (apt-get install dnsutils knot-dnsutils)"
)]
fn dig_and_kdig() {
    let s = TestServer::start(EXAMPLE_CONFIG, &registry());
    for client in ["dig", "kdig"] {
        if !tool(client) {
            continue;
        }
        let at = format!("@{}", s.udp.ip());
        let port = vec!["-p".to_owned(), s.udp.port().to_string()];
        let tcp_port = vec!["-p".to_owned(), s.tcp.port().to_string()];
        let q = |extra: &[&str], port: &[String]| {
            let mut args = vec![at.clone()];
            args.extend(port.iter().cloned());
            args.extend(extra.iter().map(|s| s.to_string()));
            args.push("+norec".into());
            run(client, &args)
        };
        let out = q(&["www.foo.tld", "A"], &port);
        assert!(out.contains("NOERROR"), "{client}: {out}");
        assert!(out.contains("ns1.foo.tld."), "{client}: {out}");
        assert!(out.contains("192.0.2.10"), "{client}: {out}");
        let out = q(&["nope.tld", "A"], &port);
        assert!(out.contains("NXDOMAIN"), "{client}: {out}");
        assert!(out.contains("hostmaster.nic.tld."), "{client}: {out}");
        let out = q(&["tld", "SOA", "+tcp"], &tcp_port);
        assert!(out.contains("2026"), "{client}: {out}");
        let out = q(&["version.bind", "TXT", "CH"], &port);
        assert!(out.contains("orrery-satellite"), "{client}: {out}");
        let out = q(&["tld", "SOA", "+nsid"], &port);
        assert!(out.contains("sat1.example"), "{client}: {out}");
    }
}
