//! Marks the cluster tests whose peers are missing as ignored (see `probe_peers.rs`).

#[path = "probe_peers.rs"]
mod probe_peers;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=probe_peers.rs");
    probe_peers::declare(&[
        "missing_database_url",
        "missing_bind",
        "missing_postgres_server",
        "missing_dnssec_validators",
        "missing_promtool",
        "missing_unbound",
        "missing_knot",
        "missing_nsd",
        "missing_xfr_secondaries",
    ]);
    // DATABASE_URL names the PostgreSQL server the tests make their databases on. Only this
    // leaf crate reads it at build time: a change rebuilds its tests alone.
    println!("cargo::rerun-if-env-changed=DATABASE_URL");
    if !std::env::var("DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        println!("cargo::rustc-cfg=missing_database_url");
    }
    probe_peers::programs("missing_bind", &["named", "named-checkzone"]);
    probe_peers::programs("missing_unbound", &["unbound"]);
    probe_peers::programs("missing_knot", &["knotd"]);
    probe_peers::programs("missing_nsd", &["nsd"]);
    probe_peers::programs(
        "missing_xfr_secondaries",
        &["knotd", "nsd", "named", "kdig"],
    );
    probe_peers::programs(
        "missing_dnssec_validators",
        &[
            "named-checkzone",
            "dnssec-verify",
            "ldns-verify-zone",
            "kzonecheck",
        ],
    );
    probe_peers::postgres_server("missing_postgres_server");
    probe_peers::programs("missing_promtool", &["promtool"]);
}
