//! A PostgreSQL server of a test's own: started from the installed server binaries
//! (`/usr/lib/postgresql/VERSION/bin`) in a temporary directory, on a spare port, with its Unix
//! socket in that directory and no TCP listener; stopped (immediate mode) on drop. For tests
//! that stop and start a store, or need a primary with a streaming hot-standby replica; the
//! machine's own server is never touched.
//!
//! The one copy of this helper: the cluster tests (`tests/cluster`) and the master's tests
//! (`master/tests`, through its dev-dependency on this crate) both use it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One private server (a primary, or a replica of one).
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
}

impl PrivatePostgres {
    /// The newest installed server binaries (a directory holding `initdb` and `pg_ctl`), if
    /// any.
    pub fn find_binaries() -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
            .collect();
        // By version number, not text ("9" after "15").
        found.sort_by_key(|bin| {
            bin.parent()
                .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
                .unwrap_or(0)
        });
        found.pop()
    }

    /// A new cluster made by `initdb` with the binaries in `bin` (trust authentication, the
    /// `postgres` superuser); not started.
    pub fn init(bin: &Path) -> Self {
        let me = Self::empty(bin);
        let out = me
            .as_server_user("initdb")
            .args(["-U", "postgres", "--auth=trust", "-N", "-D"])
            .arg(me.data())
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {out:?}");
        me
    }

    /// A streaming hot-standby replica of this server (which must be running), made by
    /// `pg_basebackup -R` over its Unix socket; not started. Started, it replays the
    /// primary's WAL and answers read-only queries.
    pub fn replica(&self) -> Self {
        assert!(self.running, "the primary must run for pg_basebackup");
        let me = Self::empty(&self.bin);
        let out = me
            .as_server_user("pg_basebackup")
            .arg("-h")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", "postgres"])
            .args(["-R", "-X", "stream", "-c", "fast", "-D"])
            .arg(me.data())
            .output()
            .expect("run pg_basebackup");
        assert!(
            out.status.success(),
            "pg_basebackup failed: {out:?}\n{}",
            self.log()
        );
        me
    }

    fn empty(bin: &Path) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // The server refuses to run as root: it runs as the `postgres` user when we are root.
        if is_root() {
            let ok = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown postgres {}", dir.path().display());
        }
        Self {
            dir,
            bin: bin.to_owned(),
            port: free_tcp_port(),
            running: false,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_server_user(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    /// A URL for database `db` over this server's Unix socket.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres:///{db}?host={}&port={}&user=postgres",
            self.dir.path().display(),
            self.port
        )
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses='' -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .as_server_user("pg_ctl")
            .args(["-w", "-t", "60", "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("-D")
            .arg(self.data())
            .args(["-o", &options, "start"])
            .output()
            .expect("run pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {out:?}\n{}",
            self.log()
        );
        self.running = true;
    }

    /// Stops the server at once (connections are cut, as in an outage).
    pub fn stop(&mut self) {
        let _ = self
            .as_server_user("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
        self.running = false;
    }

    /// Runs `sql` with `psql` on database `db` (for tests without a client of their own at
    /// hand); its standard output, trimmed. Panics with the error when it fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .as_server_user("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(db),
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql {sql:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Waits until this replica has replayed everything its primary had written when
    /// `primary_lsn` (`pg_current_wal_lsn()` there) was read.
    pub fn wait_replayed(&self, primary_lsn: &str, within: Duration) {
        let started = Instant::now();
        let sql = format!("SELECT pg_last_wal_replay_lsn() >= '{primary_lsn}'::pg_lsn");
        while self.psql("postgres", &sql) != "t" {
            assert!(
                started.elapsed() < within,
                "the replica did not replay {primary_lsn} within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            self.stop();
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A TCP port free on loopback now (bound and released: good enough for one test run). The
/// server listens on a Unix socket only; the port names the socket file.
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind loopback")
}
