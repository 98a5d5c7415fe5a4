//! Marks the tests that start their own PostgreSQL server as ignored when its binaries are
//! missing (see `tests/probe_peers.rs`).

#[path = "../tests/probe_peers.rs"]
mod probe_peers;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=../tests/probe_peers.rs");
    probe_peers::declare(&["missing_postgres_server"]);
    probe_peers::postgres_server("missing_postgres_server");
}
