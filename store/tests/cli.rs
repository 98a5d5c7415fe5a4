//! `orrery-admin` as an operator uses it: refused input names the field, exits 2, and writes
//! nothing; accepted input shows up in the journal; reads print `field: value` lines or JSON;
//! a store that is not there is refused, not silently created.

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
    ok(&db, &["init"]);
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
    ok(db, &["init"]);
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

/// A 32-octet SHA-256 DS digest in hex, as `--ds` takes it.
const DIGEST: &str = "2BB183AF5F22588179A53B0A98631FAD1A292118D4BA7C1D6C2E0F3A6E1CB2F4";

/// The store a newcomer builds from the README: a zone, a registrar, a contact and a domain
/// with glue, an outside nameserver and a DS record.
fn readme_registry(db: &str) {
    cli_registry(db);
    ok(
        db,
        &[
            "contact",
            "add",
            "C1",
            "--name",
            "Ada Lovelace",
            "--city",
            "London",
            "--country",
            "GB",
            "--email",
            "ada@mail.example",
        ],
    );
    ok(
        db,
        &[
            "domain",
            "add",
            "bar.test",
            "--registrar",
            "R1",
            "--registrant",
            "C1",
            "--expires",
            "2030-05-06T07:08:09Z",
            "--status",
            "clientTransferProhibited",
            "--ns",
            "ns1.bar.test=198.18.0.1,2001:db8::1",
            "--ns",
            "ns.hoster.example",
            "--ds",
            &format!("60485 13 2 {}", DIGEST.to_lowercase()),
        ],
    );
}

/// `domain show` prints one `field: value` line per field: RFC 3339 times, the DS digest in
/// hex, one line per nameserver and status; absent contacts are left out.
#[test]
fn domain_show_reads_one_field_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    readme_registry(&db);
    let shown = ok(&db, &["domain", "show", "bar.test"]);
    let lines: Vec<&str> = shown.lines().collect();
    for line in &lines {
        assert!(
            line.contains(": "),
            "not a field line: {line:?} in\n{shown}"
        );
    }
    for expected in [
        "name: bar.test",
        "zone: test",
        "registrar: R1",
        "registrant: C1",
        "expires: 2030-05-06T07:08:09Z",
        "status: clientTransferProhibited",
        "nameserver: ns1.bar.test",
        "nameserver: ns.hoster.example",
    ] {
        assert!(lines.contains(&expected), "no {expected:?} in\n{shown}");
    }
    assert!(
        lines.contains(&format!("ds: 60485 13 2 {DIGEST}").as_str()),
        "{shown}"
    );
    let created = lines
        .iter()
        .find_map(|l| l.strip_prefix("created: "))
        .expect("a created line");
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "created is not RFC 3339 UTC: {created:?}"
    );
    assert!(
        !shown.contains("admin:"),
        "an absent contact is shown:\n{shown}"
    );
    assert!(!shown.contains("Domain {"), "Debug output:\n{shown}");
}

/// `domain show --json` is one JSON object with stable field names; absent fields are null.
#[test]
fn domain_show_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    readme_registry(&db);
    let j: serde_json::Value =
        serde_json::from_str(&ok(&db, &["domain", "show", "bar.test", "--json"])).unwrap();
    assert_eq!(j["name"], "bar.test");
    assert_eq!(j["zone"], "test");
    assert_eq!(j["registrar"], "R1");
    assert_eq!(j["registrant"], "C1");
    assert_eq!(j["admin"], serde_json::Value::Null);
    assert_eq!(j["expires"], "2030-05-06T07:08:09Z");
    assert_eq!(
        j["statuses"],
        serde_json::json!(["clientTransferProhibited"])
    );
    let mut ns: Vec<_> = j["nameservers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    ns.sort();
    assert_eq!(ns, ["ns.hoster.example", "ns1.bar.test"]);
    assert_eq!(
        j["ds"],
        serde_json::json!([{"key_tag": 60485, "algorithm": 13, "digest_type": 2, "digest": DIGEST}])
    );
}

/// `changes` prints a header and one record per change, blank-line separated, in the same
/// `field: value` form; `--json` gives the batch as one document.
#[test]
fn changes_read_as_records_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    readme_registry(&db);
    ok(&db, &["domain", "delete", "foo.test"]);
    let text = ok(&db, &["changes", "--after", "0"]);
    let mut records = text.split("\n\n");
    let header = records.next().unwrap();
    assert!(header.starts_with("after: 0\nupto: "), "{text}");
    let records: Vec<&str> = records.collect();
    assert!(
        records
            .iter()
            .any(|r| r.starts_with("change: domain\nname: bar.test\n")
                && r.contains(&format!("ds: 60485 13 2 {DIGEST}"))),
        "{text}"
    );
    assert!(
        records.contains(&"change: domain_removed\nname: foo.test\n")
            || records.contains(&"change: domain_removed\nname: foo.test"),
        "{text}"
    );
    for r in &records {
        for line in r.lines() {
            assert!(line.contains(": "), "not a field line {line:?} in\n{text}");
        }
    }

    let j: serde_json::Value =
        serde_json::from_str(&ok(&db, &["changes", "--after", "0", "--json"])).unwrap();
    assert_eq!(j["after"], 0);
    assert_eq!(j["too_far_behind"], false);
    let changes = j["changes"].as_array().unwrap();
    assert_eq!(changes.len(), records.len(), "{j}");
    let bar = changes
        .iter()
        .find(|c| c["change"] == "domain" && c["name"] == "bar.test")
        .expect("bar.test in the JSON");
    assert_eq!(bar["ds"][0]["digest"], DIGEST);
    assert!(
        changes
            .iter()
            .any(|c| c["change"] == "domain_removed" && c["name"] == "foo.test")
    );
    let upto = j["upto"].as_i64().unwrap();
    assert!(header.contains(&format!("upto: {upto}\n")), "{header}");

    let behind: serde_json::Value =
        serde_json::from_str(&ok(&db, &["changes", "--max", "1", "--json"])).unwrap();
    assert_eq!(behind["too_far_behind"], true, "{behind}");
}

/// `zone list` and `journal` have `--json` as JSON Lines.
#[test]
fn lists_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    cli_registry(&db);
    let zones: Vec<serde_json::Value> = ok(&db, &["zone", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(zones.len(), 1);
    assert_eq!(zones[0]["name"], "test");
    assert_eq!(zones[0]["mname"], "a.nic.test");
    assert!(zones[0]["serial"].as_i64().unwrap() > 0);
    let text = ok(&db, &["zone", "list"]);
    assert!(text.starts_with("name: test\nserial: "), "{text}");

    let journal: Vec<serde_json::Value> = ok(&db, &["journal", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        journal
            .iter()
            .any(|e| e["object"] == "domain" && e["key"] == "foo.test" && e["op"] == "I"),
        "{journal:?}"
    );
    let serials: Vec<i64> = journal
        .iter()
        .map(|e| e["serial"].as_i64().unwrap())
        .collect();
    assert!(serials.windows(2).all(|w| w[0] < w[1]), "{serials:?}");
}

/// Without `--db` (and `ORRERY_DB`) nothing runs; a SQLite store that does not exist is
/// refused by every command but `init` and `load-synthetic`, and no file is created.
#[test]
fn a_missing_store_is_refused_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_orrery-admin"))
        .args(["zone", "list"])
        .current_dir(dir.path())
        .env_remove("ORRERY_DB")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--db"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let path = dir.path().join("typo.db");
    let db = format!("sqlite:{}", path.display());
    for args in [
        &["zone", "list"][..],
        &["registrar", "add", "R1", "--name", "One"],
        &["domain", "show", "foo.test"],
        &["changes"],
    ] {
        let out = admin(&db, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("no store at") && err.contains("init"),
            "{args:?}: {err}"
        );
        assert!(!path.exists(), "{args:?} created {}", path.display());
    }
    ok(&db, &["init"]);
    assert!(path.exists());
    assert!(ok(&db, &["zone", "list"]).is_empty());

    // ORRERY_DB names the store as --db does.
    let out = Command::new(env!("CARGO_BIN_EXE_orrery-admin"))
        .args(["zone", "list"])
        .env("ORRERY_DB", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let other = dir.path().join("synthetic.db");
    ok(
        &format!("sqlite:{}", other.display()),
        &["load-synthetic", "--zone", "syn", "--domains", "3"],
    );
    assert!(other.exists());
}

/// An error is printed once, its causes not repeated, with no backtrace even when
/// RUST_BACKTRACE asks for one.
#[test]
fn an_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    cli_registry(&db);
    let out = Command::new(env!("CARGO_BIN_EXE_orrery-admin"))
        .args([
            "--db",
            &db,
            "domain",
            "add",
            "foo.test",
            "--registrar",
            "R1",
        ])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.matches("foo.test").count(), 1, "{err}");
    assert!(
        !err.contains("Caused by") && !err.contains("backtrace"),
        "{err}"
    );
}

/// Output to a pipe ends quietly when the reader goes away (`| head`), instead of a panic.
#[test]
fn a_closed_pipe_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    ok(
        &db,
        &["load-synthetic", "--zone", "syn", "--domains", "200"],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_orrery-admin"))
        .args(["--db", &db, "changes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one byte, then close the pipe with the rest unread.
    let mut stdout = child.stdout.take().unwrap();
    let mut one = [0u8; 1];
    std::io::Read::read_exact(&mut stdout, &mut one).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

#[test]
fn dnssec_keys_and_ds_for_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    let key_dir = dir.path().join("keys");
    let key_dir = key_dir.to_str().unwrap();
    ok(&db, &["init"]);
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
            "a.nic.test=192.0.2.1",
        ],
    );
    // No policy, no keys.
    let out = admin(&db, &["dnssec", "add-key", "test", "--key-dir", key_dir]);
    assert_eq!(out.status.code(), Some(2));
    refused(
        &db,
        &["dnssec", "policy", "test", "--algorithm", "8"],
        "algorithm",
    );
    refused(
        &db,
        &["dnssec", "policy", "test", "--denial", "nsec5"],
        "denial",
    );
    assert!(
        admin(&db, &["dnssec", "policy", "test", "--refresh", "1209600"])
            .status
            .code()
            == Some(2)
    );

    ok(&db, &["dnssec", "policy", "test", "--algorithm", "15"]);
    ok(
        &db,
        &[
            "dnssec",
            "add-key",
            "test",
            "--role",
            "ksk",
            "--key-dir",
            key_dir,
        ],
    );
    ok(
        &db,
        &[
            "dnssec",
            "add-key",
            "test",
            "--role",
            "zsk",
            "--key-dir",
            key_dir,
            "--state",
            "published",
        ],
    );
    refused(
        &db,
        &[
            "dnssec",
            "add-key",
            "test",
            "--role",
            "big",
            "--key-dir",
            key_dir,
        ],
        "role",
    );

    let keys: Vec<serde_json::Value> = ok(&db, &["dnssec", "keys", "test", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["role"], "ksk");
    assert_eq!(keys[0]["flags"], 257);
    assert_eq!(keys[0]["algorithm"], 15);
    assert_eq!(keys[1]["state"], "published");
    for k in &keys {
        let file = std::path::Path::new(key_dir).join(k["locator"].as_str().unwrap());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }

    // One DS, for the KSK, with its key tag.
    let ds: Vec<serde_json::Value> = ok(&db, &["dnssec", "ds", "test", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0]["key_tag"], keys[0]["key_tag"]);
    assert_eq!(ds[0]["digest_type"], 2);
    assert_eq!(ds[0]["digest"].as_str().unwrap().len(), 64);
    assert!(ok(&db, &["dnssec", "ds", "test"]).contains("test. IN DS "));
    assert!(ok(&db, &["dnssec", "refresh", "test"]).contains("current"));
}
