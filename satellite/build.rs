//! Marks the tests whose DNS and Whois clients are missing as ignored (see
//! `tests/probe_peers.rs`).

#[path = "../tests/probe_peers.rs"]
mod probe_peers;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=../tests/probe_peers.rs");
    probe_peers::declare(&[
        "missing_dns_clients",
        "missing_whois_client",
        "missing_knot",
        "missing_bind",
        "missing_xfr_secondaries",
    ]);
    probe_peers::programs("missing_dns_clients", &["dig", "kdig"]);
    probe_peers::programs("missing_whois_client", &["whois"]);
    // The catalog zone's consumers (tests/integration/catalog.rs).
    probe_peers::programs("missing_knot", &["knotd", "kdig"]);
    probe_peers::programs("missing_bind", &["named", "kdig"]);
    probe_peers::programs(
        "missing_xfr_secondaries",
        &["knotd", "nsd", "named", "kdig"],
    );
}
