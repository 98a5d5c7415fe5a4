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
        // Not IDNA2008: invalid A-labels, hyphens in positions 3-4 outside an A-label.
        (
            vec!["domain", "add", "xn--zz.test", "--registrar", "R1"],
            "name",
        ),
        (
            vec!["domain", "add", "xn--a.test", "--registrar", "R1"],
            "name",
        ),
        (
            vec!["domain", "add", "xn--ab--c.test", "--registrar", "R1"],
            "name",
        ),
        (
            vec!["domain", "add", "ab--cd.test", "--registrar", "R1"],
            "name",
        ),
        (
            vec![
                "domain",
                "add",
                "ok.test",
                "--registrar",
                "R1",
                "--ns",
                "ns.xn--zz.example",
            ],
            "ns",
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

/// A store with a zone, a registrar and `foo.test`, made by the CLI.
fn cli_registry(db: &str) {
    ok(
        db,
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
    ok(db, &["registrar", "add", "R1", "--name", "Registrar One"]);
    ok(db, &["domain", "add", "foo.test", "--registrar", "R1"]);
}

/// `bad-rows` lists what the cluster quarantines, as text or JSON, and exits 1 while there is
/// any.
#[tokio::test]
async fn bad_rows_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    cli_registry(&db);
    let out = admin(&db, &["bad-rows"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());

    let raw = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query(
        "INSERT INTO domain_status(domain_id, status) SELECT id, 'bogus' FROM domain WHERE name = 'foo.test'",
    )
    .execute(&raw)
    .await
    .unwrap();
    sqlx::query("UPDATE registrar SET iana_id = 'many'")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;

    let out = admin(&db, &["bad-rows"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("domain_status\tdomain\t\"foo.test\"\tunknown EPP status \"bogus\""),
        "{text}"
    );
    assert!(
        text.contains("registrar\tregistrar\t\"R1\"\tiana_id is not an integer"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 bad rows"));

    let out = admin(&db, &["bad-rows", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().any(|r| r["object"] == "domain"
        && r["key"] == "foo.test"
        && r["table"] == "domain_status"));
    // The rest of the store still reads.
    assert!(ok(&db, &["zone", "list"]).contains("test"));
}

/// A CLI write waits while another writer holds the SQLite write lock, then succeeds, instead
/// of failing with `database is locked`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_writer_waits_for_another_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    cli_registry(&db);
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    let mut holder = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO registrar(handle, name) VALUES ('R2', 'Two')")
        .execute(&mut *holder)
        .await
        .unwrap();
    let db2 = db.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let out = admin(&db2, &["domain", "add", "wait.test", "--registrar", "R1"]);
        (out, started.elapsed())
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !writer.is_finished(),
        "the writer did not wait for the lock"
    );
    holder.commit().await.unwrap();
    let (out, took) = writer.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took >= std::time::Duration::from_millis(1400), "{took:?}");
    assert!(ok(&db, &["domain", "show", "wait.test"]).contains("wait.test"));
}
