//! `orrery-admin` as an operator uses it: refused input names the field, exits 2, and writes
//! nothing; accepted input shows up in the journal.

use std::process::{Command, Output};

fn admin(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orrery-admin"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("ORRERY_DB")
        .output()
        .expect("run orrery-admin")
}

fn ok(db: &str, args: &[&str]) -> String {
    let out = admin(db, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(db: &str, args: &[&str], field: &str) {
    let out = admin(db, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} should be refused: {err}"
    );
    assert!(
        err.contains(&format!("invalid {field}")),
        "{args:?}: {err:?} does not name {field}"
    );
}

#[test]
fn refuses_bad_input_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    ok(
        &db,
        &[
            "zone",
            "add",
            "test",
            "--mname",
            "a.nic.test",
            "--rname",
            "hostmaster.nic.test",
            "--ns",
            "a.nic.test=127.0.0.1",
        ],
    );
    ok(&db, &["registrar", "add", "R1", "--name", "Registrar One"]);
    let journal_before = ok(&db, &["journal", "--limit", "1000"]);

    let long_label = format!("{}.test", "a".repeat(64));
    let long_name = format!(
        "{}.test",
        [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(60)
        ]
        .join(".")
    );
    let digest31 = "ab".repeat(31);
    let ds_short = format!("1 13 2 {digest31}");
    for (args, field) in [
        (
            vec!["domain", "add", "bad_name.test", "--registrar", "R1"],
            "name",
        ),
        (
            vec!["domain", "add", long_label.as_str(), "--registrar", "R1"],
            "name",
        ),
        (
            vec!["domain", "add", long_name.as_str(), "--registrar", "R1"],
            "name",
        ),
        (
            vec!["domain", "add", "foo.nozone", "--registrar", "R1"],
            "name",
        ),
        (
            vec!["domain", "add", "foo.test", "--registrar", "NOPE"],
            "registrar",
        ),
        (
            vec![
                "domain",
                "add",
                "foo.test",
                "--registrar",
                "R1",
                "--ns",
                "ns1.foo.test=192.0.2.300",
            ],
            "ns",
        ),
        (
            vec![
                "domain",
                "add",
                "foo.test",
                "--registrar",
                "R1",
                "--ns",
                "ns1.foo.test",
            ],
            "ns",
        ),
        (
            vec![
                "domain",
                "add",
                "foo.test",
                "--registrar",
                "R1",
                "--ds",
                ds_short.as_str(),
            ],
            "ds",
        ),
        (
            vec![
                "domain",
                "add",
                "foo.test",
                "--registrar",
                "R1",
                "--status",
                "onHold",
            ],
            "status",
        ),
        (
            vec![
                "domain",
                "add",
                "foo.test",
                "--registrar",
                "R1",
                "--registrant",
                "GHOST",
            ],
            "registrant",
        ),
        (
            vec![
                "contact",
                "add",
                "C1",
                "--name",
                "X",
                "--city",
                "Y",
                "--country",
                "FRA",
                "--email",
                "x@y.example",
            ],
            "country",
        ),
    ] {
        refused(&db, &args, field);
    }
    assert_eq!(
        ok(&db, &["journal", "--limit", "1000"]),
        journal_before,
        "a refused command wrote"
    );

    // IDN input is stored as its A-label.
    ok(
        &db,
        &[
            "domain",
            "add",
            "bücher.test",
            "--registrar",
            "R1",
            "--ns",
            "ns.hoster.example",
        ],
    );
    let journal = ok(&db, &["journal", "--limit", "1000"]);
    assert!(journal.contains("domain\txn--bcher-kva.test"), "{journal}");
    let shown = ok(&db, &["domain", "show", "XN--BCHER-KVA.test"]);
    assert!(shown.contains("ns.hoster.example"), "{shown}");
}
