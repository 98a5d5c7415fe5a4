//! What the binaries write for an operator (issue 12, "What a newcomer tripped over"): log
//! lines without colour codes in a pipe or a file, each error once, and a satellite master
//! address without a port refused at once instead of dialled for ever.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use orrery_store::Store;
use orrery_store::synthetic::SyntheticTld;

use crate::link::n;
use crate::processes::binary;

/// The escape byte every ANSI colour sequence starts with.
const ESC: u8 = 0x1b;

/// Runs `command` with output captured (pipes), colour not turned off by the environment,
/// killed if it has not exited within 30 s.
fn run(mut command: Command) -> Output {
    let mut child = command
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A small SQLite store with one synthetic zone.
async fn store(dir: &Path) -> String {
    let url = format!("sqlite:{}", dir.join("orrery.db").display());
    let store = Store::open(&url).await.unwrap();
    store
        .load_synthetic(&SyntheticTld {
            zone: n("cli"),
            domains: 20,
            seed: 3,
        })
        .await
        .unwrap();
    store.close().await;
    url
}

/// The generator's log into a pipe, and a satellite's `--snapshot` mode log into a file, carry
/// no colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_pipes_and_files_have_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let url = store(dir.path()).await;
    let snapshot = dir.path().join("cli.snap");
    let mut generator = Command::new(binary("orrery-generator"));
    generator
        .args(["--db", &url, "--out"])
        .arg(dir.path().join("zones"))
        .arg("--satellite-snapshot")
        .arg(&snapshot);
    let out = tokio::task::spawn_blocking(move || run(generator))
        .await
        .unwrap();
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("zone written"), "no log lines: {log}");
    assert!(
        !out.stderr.contains(&ESC),
        "colour codes in a pipe: {log:?}"
    );

    // The satellite serving the snapshot, its output in a file, stopped once it serves.
    let config = dir.path().join("satellite.toml");
    std::fs::write(
        &config,
        "[server]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\nworkers = 1\n\
         [leaves.lookup]\nkind = \"lookup\"\n[[chains]]\nname = \"main\"\nleaves = [\"lookup\"]\n",
    )
    .unwrap();
    let log_path = dir.path().join("satellite.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut satellite = Command::new(binary("orrery-satellite"))
        .arg("--snapshot")
        .arg(&snapshot)
        .arg("--config")
        .arg(&config)
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = loop {
        let log = std::fs::read(&log_path).unwrap();
        if text(&log).contains("serving") {
            break log;
        }
        if let Some(status) = satellite.try_wait().unwrap() {
            panic!("the satellite exited ({status}):\n{}", text(&log));
        }
        assert!(
            Instant::now() < deadline,
            "the satellite did not serve:\n{}",
            text(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = satellite.kill();
    let _ = satellite.wait();
    assert!(
        !log.contains(&ESC),
        "colour codes in a log file: {:?}",
        text(&log)
    );
}

/// A failing binary prints its error once: the cause its message already holds is not
/// repeated under "Caused by", and no backtrace follows, whatever RUST_BACKTRACE says.
#[test]
fn each_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "garbage = \n").unwrap();

    let mut master = Command::new(binary("orrery-master"));
    master.args(["check-config", "--config"]).arg(&bad);
    let out = run(master);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("orrery-master: "), "{err}");
    assert_eq!(err.matches("TOML parse error").count(), 1, "{err}");
    let mut errors = vec![err];

    let mut satellite = Command::new(binary("orrery-satellite"));
    satellite
        .arg("--snapshot")
        .arg(dir.path().join("missing.snap"))
        .arg("--config")
        .arg(&bad);
    let out = run(satellite);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("orrery-satellite: "), "{err}");
    assert_eq!(err.matches("TOML parse error").count(), 1, "{err}");
    errors.push(err);

    let missing = dir.path().join("no-such-dir").join("orrery.db");
    let mut generator = Command::new(binary("orrery-generator"));
    generator
        .arg("--db")
        .arg(format!("sqlite:{}", missing.display()));
    let out = run(generator);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("orrery-generator: "), "{err}");
    assert_eq!(err.matches("no store at").count(), 1, "{err}");
    assert!(!missing.exists() && !missing.parent().unwrap().exists());
    // Without --db (or ORRERY_DB) it is refused, and no orrery.db appears.
    let mut generator = Command::new(binary("orrery-generator"));
    generator.env_remove("ORRERY_DB").current_dir(dir.path());
    let out = run(generator);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--db"), "{err}");
    assert!(!dir.path().join("orrery.db").exists());
    errors.push(err);

    for err in &errors {
        assert!(!err.contains("Caused by"), "{err}");
        assert!(!err.contains("Stack backtrace"), "{err}");
    }
}

/// `--master 127.0.0.1` (no port) is refused when the arguments are read, saying what is
/// missing, instead of being dialled (on 443) and retried for ever.
#[test]
fn a_master_address_without_a_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for address in ["127.0.0.1", "https://127.0.0.1", "::1"] {
        let mut satellite = Command::new(binary("orrery-satellite"));
        satellite
            .args(["--master", address, "--tls-dir"])
            .arg(dir.path())
            .arg("--state")
            .arg(dir.path().join("sat.state"));
        let out = run(satellite);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{address}: {err}");
        assert!(err.contains("--master"), "{address}: {err}");
        assert!(
            err.contains("HOST:PORT") || err.contains("brackets"),
            "{address}: {err}"
        );
        assert!(!dir.path().join("sat.state").exists());
    }
}
