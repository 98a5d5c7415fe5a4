//! The generator's signed zones pass the validators of three independent implementations:
//! BIND's `dnssec-verify` (and `named-checkzone`, as the BIND fallback loads the file), ldns's
//! `ldns-verify-zone` and Knot's `kzonecheck` (issue 13's proof for the signer), for a
//! 20,000-domain synthetic TLD (8 % of its delegations with DS) signed with algorithm 13 and
//! NSEC3 opt-out, and with algorithm 15 and NSEC. The same store state also signs to the same
//! bytes twice.

use std::path::Path;
use std::process::Command;

use orrery_generator::{Outcome, generate_zone_with_keys};
use orrery_proto::Name;
use orrery_proto::Timestamp;
use orrery_proto::dnssec::{Algorithm, Denial, DnssecPolicy, KeyRole};
use orrery_signer::FileKeyStore;
use orrery_store::Store;
use orrery_store::synthetic::SyntheticTld;

use crate::dnssec_serve::add_key_at;
use crate::harness::program;

const DOMAINS: usize = 20_000;

/// A key active from a fixed time, so that every run signs with the same timings.
async fn add_key(store: &Store, keys: &FileKeyStore, apex: &Name, role: KeyRole, alg: Algorithm) {
    add_key_at(store, keys, apex, role, alg, Timestamp(1_800_000_000)).await;
}

/// `csk`: the zone has one combined key, which `dnssec-verify` must be told (`-z`: its SEP flag
/// does not make it a KSK only); with a KSK and a ZSK it checks that each signs its part.
fn validate(zone_file: &Path, apex: &str, csk: bool) {
    let mut verify = vec!["-o", apex];
    if csk {
        verify.push("-z");
    }
    let checks: [(&str, &str, Vec<&str>); 4] = [
        // The BIND fallback loads the same file.
        ("named-checkzone", "bind9-utils", vec!["-i", "local", apex]),
        ("dnssec-verify", "bind9-utils", verify),
        ("ldns-verify-zone", "ldnsutils", vec![]),
        (
            "kzonecheck",
            "knot-dnssecutils",
            vec!["-o", apex, "-d", "on"],
        ),
    ];
    for (tool, package, args) in checks {
        let Some(path) = program(tool, package) else {
            return;
        };
        let out = Command::new(&path)
            .args(&args)
            .arg(zone_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} rejects {}:\n{}\n{}",
            zone_file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

async fn sign_and_validate(denial: Denial, alg: Algorithm, roles: &[KeyRole]) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("s.db").display());
    let store = Store::open(&url).await.unwrap();
    let apex = Name::from_ascii("test").unwrap();
    let report = store
        .load_synthetic(&SyntheticTld {
            zone: apex.clone(),
            domains: DOMAINS,
            seed: 13,
        })
        .await
        .unwrap();
    assert!(
        report.ds > DOMAINS / 20,
        "the synthetic TLD has DS on a share of its domains"
    );
    let mut policy = DnssecPolicy::tld_default(DnssecPolicy::window_for(
        DnssecPolicy::DEFAULT_REFRESH,
        Timestamp::now(),
    ));
    policy.denial = denial;
    policy.algorithm = alg;
    store.set_dnssec_policy(&apex, &policy).await.unwrap();
    let keys = FileKeyStore::open(&dir.path().join("keys")).unwrap();
    for &role in roles {
        add_key(&store, &keys, &apex, role, alg).await;
    }

    let mut files = Vec::new();
    for run in 0..2 {
        let out = dir.path().join(format!("run{run}"));
        std::fs::create_dir_all(&out).unwrap();
        let outcome = generate_zone_with_keys(&store, &apex, &out, true, Some(&keys))
            .await
            .unwrap();
        let Outcome::Written { path, .. } = outcome else {
            panic!("{outcome:?}")
        };
        files.push(path);
    }
    let (a, b) = (
        std::fs::read(&files[0]).unwrap(),
        std::fs::read(&files[1]).unwrap(),
    );
    assert!(
        a == b,
        "two runs over one store state wrote different files"
    );
    let text = String::from_utf8(a).unwrap();
    let chain = if denial == Denial::Nsec {
        "\tNSEC\t"
    } else {
        "\tNSEC3\t"
    };
    assert!(text.contains(chain) && text.contains("\tRRSIG\tDS "));

    // A signed zone without its key directory is refused, not written unsigned.
    let err = orrery_generator::generate_zone(&store, &apex, dir.path(), true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--key-dir"), "{err}");

    validate(&files[0], "test", roles == [KeyRole::Csk]);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_dnssec_validators,
    ignore = "DNSSEC validators missing (apt-get install bind9-utils ldnsutils knot-dnssecutils)"
)]
async fn validators_accept_ecdsa_p256_nsec3_optout_signed_tld() {
    sign_and_validate(
        Denial::Nsec3OptOut,
        Algorithm::EcdsaP256Sha256,
        &[KeyRole::Ksk, KeyRole::Zsk],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_dnssec_validators,
    ignore = "DNSSEC validators missing (apt-get install bind9-utils ldnsutils knot-dnssecutils)"
)]
async fn validators_accept_ed25519_nsec_signed_tld() {
    sign_and_validate(Denial::Nsec, Algorithm::Ed25519, &[KeyRole::Csk]).await;
}
