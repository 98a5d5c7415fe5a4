//! Build-time probe for the outside programs some tests need, shared by the build scripts of
//! `orrery-tests`, `orrery-satellite` and `orrery-master` (`#[path]`-included: one copy).
//!
//! Each missing peer becomes a `missing_…` cfg, and the tests that need it carry
//! `#[cfg_attr(missing_…, ignore = "why")]`: `cargo test` then counts them in its summary
//! ("N ignored") instead of passing them silently. CI (`.ci/run`) installs every peer and runs
//! `cargo test -- --include-ignored`, where a peer still missing fails its test (the tests'
//! own checks panic under `CI=true`).
//!
//! The probe runs again when the program directories change (a package installed or
//! removed), not on every build.

// Each build script uses the part it needs.
#![allow(dead_code)]

use std::path::Path;

/// Directories searched besides `PATH` (the sbin ones are often not in a user's `PATH`).
const DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"];

/// Where Debian installs PostgreSQL's server binaries (`VERSION/bin/initdb`).
const POSTGRES_LIB: &str = "/usr/lib/postgresql";

/// Declares every cfg this probe may set, and when to probe again.
pub(crate) fn declare(cfgs: &[&str]) {
    for cfg in cfgs {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    for dir in DIRS.iter().copied().chain([POSTGRES_LIB]) {
        if Path::new(dir).is_dir() {
            println!("cargo::rerun-if-changed={dir}");
        }
    }
}

/// Sets `cfg` unless every program is installed.
pub(crate) fn programs(cfg: &str, names: &[&str]) {
    if !names.iter().all(|n| installed(n)) {
        println!("cargo::rustc-cfg={cfg}");
    }
}

/// Sets `cfg` unless PostgreSQL's server binaries (initdb, pg_ctl) are installed.
pub(crate) fn postgres_server(cfg: &str) {
    let found = std::fs::read_dir(POSTGRES_LIB)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .any(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file());
    if !found {
        println!("cargo::rustc-cfg={cfg}");
    }
}

fn installed(name: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(DIRS.iter().copied())
        .any(|dir| Path::new(dir).join(name).is_file())
}
