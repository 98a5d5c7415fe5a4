//! The satellite's side of the master link: dial in, boot, take a snapshot when needed, follow
//! change batches, check in, and keep serving through every failure.
//!
//! ```text
//!            ┌──── state files (persist): STATE ◀── compaction: STATE + STATE.log merged ─┐
//!  start ────┤ STATE + STATE.log replayed + STATE.settings → serve them at once          │
//!            └───────────────────────────────────────────────────────────────────────┐   │
//!                                                                                    │   │
//!  ┌─▶ dial (masters in turn, backoff + jitter) ─▶ Boot(applied) ─▶ settings (adopt)  │   │
//!  │        │                                        │ (swap Selector / NSID,         │   │
//!  │        │                                        │  or note restart_required)     │   │
//!  │        │  applied ∉ [window_start, head]? ─▶ Snapshot (resumable) ─▶ STATE as it │   │
//!  │        │                                   arrives ─▶ Served built ─▶ replace ◀─┘   │
//!  │        │   Follow(applied) ─▶ Batch ─▶ STATE.log (fsync) ─▶ ServedStore::apply ──────┘
//!  │        │                │  Heartbeat          SnapshotRequired ─▶ Snapshot, Follow again
//!  │        │    └─ own task + connection, every checkin_interval: CheckIn(statistics, …)
//!  └── any error: keep serving the last complete state; pause (backoff) and dial again
//! ```
//!
//! # Guarantees
//! - **Atomic batches.** Each batch goes to [`ServedStore::apply`] whole; a batch that overlaps
//!   the state (it may start before the applied serial, see `link.proto`) is re-based on it,
//!   which is harmless because changes are whole objects. A gap is a protocol error and ends
//!   the session.
//! - **Atomic snapshots.** A master snapshot is received whole (resuming across broken
//!   streams, [`snapshot_transfer`]) and written into the state file as it arrives before
//!   anything changes; then a new served version is built from its objects and replaces the
//!   current one in one step ([`ServedStore::replace`]): an object the snapshot no longer
//!   holds is absent from it, with no diff and no model copy of the registry. A stream cut in
//!   the middle leaves the last complete state serving (and the old state file in place).
//!   Later versions share every shard a batch does not touch ([`crate::served`]).
//! - **Restart from disk, never back in time.** Each batch is appended to the batch log and
//!   synced before queries see it ([`batch_log`]); a snapshot is in the state file before
//!   queries see it. The log carries the state file's generation, so a restart replays
//!   exactly the batches after the file. The state file is compacted (old file and log
//!   merged, streaming) at most every [`persist::PERSIST_INTERVAL`] after batches, dropping
//!   them from the log. With the last settings beside it, a restarted satellite serves at
//!   once, without the master, at least the last state it served, and catches up from there.
//!
//! # Configuration from the master
//! The Selector (`selector_toml`), the NSID and the CHAOS host name are applied without a
//! restart: a new [`Pipeline`] is built and swapped in on the same sockets
//! ([`serving::Serving`]). Listen addresses and worker threads are bound once (binding port 53
//! needs privileges a running satellite should not keep): a change to them is logged and
//! reported in every check-in's `restart_required` until the process restarts with them.
//! A Selector the satellite cannot build is refused with an error log: the satellite keeps its
//! running configuration and reports that version, so the master sees it was not applied.
//!
//! # Layout
//! - [`session`]: the dial-in loop and one session with a master (boot, snapshot, follow,
//!   check in).
//! - [`check_in`]: the check-ins, on a task (and a connection) of their own.
//! - [`adopt`]: adopting the master's configuration (Selectors, services, restart fields).
//! - [`snapshot_transfer`]: a master snapshot into the state file as it arrives.
//! - [`persist`]: the state files, their compaction and the task that runs it.
//! - [`batch_log`]: each batch synced to disk before it becomes visible.
//! - [`serving`]: DNS sockets bound once, servers swapped on them.
//! - [`collect_statistics`]: the check-in's statistics from the leaves' counters.
//! - [`log_buffer`]: the warnings and errors each check-in carries up to the master.
//!
//! Every answer from a master (boot, batch, heartbeat, check-in) stamps the last contact
//! ([`crate::expiry`], kept in `STATE.heard`); a zone silent for its SOA EXPIRE answers
//! SERVFAIL when the master configured `serve_expired = false`.

mod adopt;
pub mod batch_log;
mod check_in;
pub mod collect_statistics;
pub mod log_buffer;
pub mod persist;
pub mod rds_serving;
pub mod serving;
mod session;
pub mod snapshot_transfer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orrery_proto::backoff::Backoff;
use orrery_proto::link::client;
use orrery_proto::link::tls::TlsMaterial;
use orrery_proto::link::{ConvertError, SatelliteSettings};
use orrery_proto::{Change, Serial};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::persist::{PERSIST_INTERVAL, PersistError, SavedState, StateFiles};
use self::rds_serving::{RdsServing, RdsServingError};
use self::serving::Serving;
use self::snapshot_transfer::Transfer;
use crate::expiry::Expiry;
use crate::served::{BuildOptions, Served, ServedStore, dispose_in_background};
use crate::stats::SatelliteMetrics;
use crate::stats::listener::MetricsListener;
use crate::zone::ZoneError;

/// How a satellite reaches its masters and where it keeps its state.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// `HOST:PORT` of each master, tried in this order.
    pub masters: Vec<String>,
    /// The cluster CA and this satellite's certificate and key.
    pub tls: TlsMaterial,
    /// The state file ([`orrery_proto::state_file`]); `STATE.settings` and `STATE.log` sit
    /// beside it.
    pub state: PathBuf,
    /// Sent at boot, for the master's log.
    pub software_version: String,
    /// The operating system's host name, sent at boot (informative only).
    pub hostname: String,
    /// Shortest time between two writes of the state file while batches arrive.
    pub persist_interval: Duration,
    /// Sync the batch log before each batch becomes visible (the default). Off only to
    /// measure what durability costs: a crash may then take the satellite back in time.
    pub sync_batches: bool,
    /// When to dial again after a failure (see [`Backoff`]: at most ~1 s while a master was
    /// recently healthy, growing to 30 s otherwise).
    pub backoff: Backoff,
    /// The hold-down before moving back to an earlier master of `masters`
    /// ([`DialConfig::return_after`]).
    pub return_after: Duration,
}

impl LinkConfig {
    /// Defaults: state written at most every [`PERSIST_INTERVAL`], [`Backoff::default`].
    pub fn new(masters: Vec<String>, tls: TlsMaterial, state: PathBuf) -> Self {
        Self {
            masters,
            tls,
            state,
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            hostname: std::env::var("HOSTNAME").unwrap_or_default(),
            persist_interval: PERSIST_INTERVAL,
            backoff: Backoff::default(),
            sync_batches: true,
            return_after: client::DEFAULT_RETURN_AFTER,
        }
    }
}

/// Why the link could not start, or why one session with a master ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    #[error("{0}")]
    Master(#[from] client::LinkError),
    #[error("master sent a malformed message: {0}")]
    Convert(#[from] ConvertError),
    #[error("master broke the protocol: {0}")]
    Protocol(String),
    #[error(
        "the master closed the connection at boot ({0}); if its log shows a TLS handshake \
         error, it refused this satellite's certificate (issued by another CA, expired, or \
         naming no satellite)"
    )]
    ClosedAtBoot(String),
    #[error("no answer from the master within {0:?}")]
    Timeout(Duration),
    #[error("state file: {0}")]
    Persist(#[from] PersistError),
    #[error("DNS sockets: {0}")]
    Bind(#[source] std::io::Error),
    #[error("Whois/RDAP: {0}")]
    RdsBind(#[from] RdsServingError),
    #[error("applying a batch: {0}")]
    Zone(#[from] ZoneError),
    #[error("a worker task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Background(#[from] crate::background::BackgroundError),
}

impl From<tonic::Status> for LinkError {
    fn from(s: tonic::Status) -> Self {
        Self::Master(s.into())
    }
}

/// What a running satellite reports about itself (for logs, `main` and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// Bound DNS addresses; empty until the satellite serves.
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    /// Bound Whois addresses; empty until the satellite serves Whois.
    pub whois: Vec<SocketAddr>,
    /// Bound RDAP addresses (plain HTTP, then HTTPS); empty until the satellite serves RDAP.
    pub rdap: Vec<SocketAddr>,
    /// Serial of the state served.
    pub applied_serial: Serial,
    /// True while a session with a master is up (booted).
    pub connected: bool,
    /// The identity the master gave at the last boot.
    pub identity: Option<String>,
    /// Configuration fields waiting for a restart.
    pub restart_required: Vec<String>,
    /// Completed check-ins since start.
    pub checkins: u64,
}

/// A satellite run by the link: its DNS service and its dial-in loop.
pub struct Satellite {
    status: watch::Receiver<LinkStatus>,
    task: JoinHandle<()>,
}

impl Satellite {
    /// Reads the state files and, when a previous run left them, serves them at once; then
    /// dials the masters in the background until `shutdown`. Must be called inside a
    /// multi-threaded tokio runtime.
    pub fn start(config: LinkConfig, shutdown: CancellationToken) -> Result<Self, LinkError> {
        let (mut link, status) = Link::new(config);
        link.restore()?;
        link.publish(|_| {});
        let task = tokio::spawn(link.run(shutdown));
        Ok(Self { status, task })
    }

    /// The latest status; `changed()` on the receiver waits for the next.
    pub fn status(&self) -> watch::Receiver<LinkStatus> {
        self.status.clone()
    }

    /// Waits for the satellite to stop (after its shutdown token is cancelled): DNS servers
    /// stopped, state file written.
    pub async fn join(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "satellite task failed");
        }
    }
}

/// The link loop's state.
struct Link {
    config: LinkConfig,
    /// Whether this session reached the change stream: the master took us in full, so the
    /// session was healthy however short it was (see [`Dialer::session_ended`]).
    following: bool,
    files: StateFiles,
    /// Tells the persister that the batch log grew.
    dirty: Arc<Notify>,
    /// What queries see; `None` until there is a state.
    zones: Option<Arc<ServedStore>>,
    serving: Option<Serving>,
    /// Whois and RDAP; `None` until there is a state and a configuration asking for them.
    rds: Option<RdsServing>,
    /// The configuration adopted (its version is reported at check-in).
    settings: Option<SatelliteSettings>,
    restart_required: Vec<String>,
    /// Why the last configuration received was refused (failed its checks on receipt, or
    /// its Selector does not build); reported at every check-in until one is adopted.
    refused: Option<String>,
    /// Why a configured service is not running (a listener that cannot be started);
    /// reported at every check-in until it runs.
    not_serving: Option<String>,
    /// A snapshot transfer to resume.
    progress: Option<Transfer>,
    /// A snapshot is being received (reported while there is no state yet: the first one).
    in_snapshot: bool,
    /// Take a full snapshot at the next session even if the master could stream the changes.
    snapshot_required: bool,
    checkin_interval: Duration,
    started: Instant,
    status: watch::Sender<LinkStatus>,
    /// What the check-in task reports, updated with every status.
    report: watch::Sender<check_in::Report>,
    /// The typed counters and gauges the check-in and the metrics listener read.
    metrics: Arc<SatelliteMetrics>,
    /// The Prometheus listener, when the configuration sets one.
    metrics_listener: Option<MetricsListener>,
    /// Why the configured metrics listener does not run; reported at every check-in.
    metrics_error: Option<String>,
    /// The last contact with a master, stamped by the session and the check-ins, measured
    /// against each zone's SOA EXPIRE ([`crate::expiry`]).
    expiry: Arc<Expiry>,
}

/// How a session ended without an error.
enum SessionEnd {
    Shutdown,
    /// The master ended the change stream cleanly (it is stopping or restarting).
    MasterClosed,
}

impl Link {
    /// A link with no state yet, and the receiver of its status.
    fn new(config: LinkConfig) -> (Self, watch::Receiver<LinkStatus>) {
        let files = StateFiles::new(config.state.clone(), config.sync_batches);
        let (status_tx, status) = watch::channel(LinkStatus::default());
        let expiry = Arc::new(Expiry::load(Expiry::path_beside(&config.state)));
        let link = Self {
            expiry,
            following: false,
            files,
            dirty: Arc::new(Notify::new()),
            zones: None,
            serving: None,
            rds: None,
            settings: None,
            restart_required: Vec::new(),
            refused: None,
            not_serving: None,
            progress: None,
            in_snapshot: false,
            snapshot_required: false,
            checkin_interval: Duration::from_secs(60),
            started: Instant::now(),
            status: status_tx,
            report: watch::channel(check_in::Report::default()).0,
            metrics: Arc::new(SatelliteMetrics::new()),
            metrics_listener: None,
            metrics_error: None,
            config,
        };
        if let Some(secs) = link.config.tls.cert_not_after() {
            link.metrics.set_cert_not_after(secs);
        }
        (link, status)
    }

    /// Serves what a previous run left (the state file, the batches logged after it, the
    /// configuration), if it left a sound state; otherwise waits for a master with none.
    fn restore(&mut self) -> Result<(), LinkError> {
        match self.files.read() {
            Ok(Some(SavedState {
                header,
                objects,
                settings,
            })) => {
                let started = Instant::now();
                // Domains always name a registrar: a state with domains and no registrars
                // lacks the Whois data. Serve it, but take a full snapshot at the first session
                // rather than follow changes from its serial, which would leave contacts and
                // registrars missing until each one changes.
                let has = |f: fn(&Change) -> bool| objects.iter().any(f);
                if has(|c| matches!(c, Change::Domain(_)))
                    && !has(|c| matches!(c, Change::Registrar(_)))
                {
                    tracing::warn!(
                        "the saved state has no Whois data: a full snapshot will replace it"
                    );
                    self.snapshot_required = true;
                }
                // The directory only if the saved configuration serves Whois or RDAP; one
                // that enables them later has it built then ([`Link::match_directory`]).
                let options = BuildOptions {
                    directory: adopt::serves_rds(Some(&settings)),
                };
                let mut served =
                    Served::from_objects(header.serial, objects, dispose_in_background, options);
                replay_batches(&self.files, header.generation, &mut served);
                let zones = Arc::new(ServedStore::new(served));
                self.metrics.set_served(&zones);
                self.zones = Some(zones);
                self.adopt(settings)?;
                tracing::info!(
                    serial = self.applied(),
                    ms = started.elapsed().as_millis() as u64,
                    "serving the state from {} until a master answers",
                    self.files.state.display()
                );
            }
            Ok(None) => {
                tracing::info!(
                    state = %self.files.state.display(),
                    "no saved state: waiting for a master"
                );
                self.files.clear_batches(0)?;
            }
            Err(e) => {
                tracing::error!(error = %e, "saved state unusable: waiting for a master");
                self.files.clear_batches(0)?;
            }
        }
        Ok(())
    }

    fn applied(&self) -> Serial {
        self.zones.as_ref().map_or(0, |z| z.serial())
    }

    fn publish(&self, f: impl FnOnce(&mut LinkStatus)) {
        let applied = self.applied();
        let (udp, tcp) = self
            .serving
            .as_ref()
            .map(|s| (s.udp_addrs(), s.tcp_addrs()))
            .unwrap_or_default();
        let (whois, rdap) = self
            .rds
            .as_ref()
            .map(|r| {
                let (http, https) = r.rdap_addrs();
                (r.whois_addrs().to_vec(), [http, https].concat())
            })
            .unwrap_or_default();
        let restart = self.restart_required.clone();
        self.report.send_replace(check_in::Report {
            zones: self.zones.clone(),
            config_version: self
                .settings
                .as_ref()
                .map(SatelliteSettings::version)
                .unwrap_or_default(),
            restart_required: restart.clone(),
            config_refused: self.config_refused(),
            memory_budget: self.settings.as_ref().and_then(|s| s.memory_budget),
            first_snapshot: self.in_snapshot && self.zones.is_none(),
        });
        let metrics = &self.metrics;
        self.status.send_modify(|s| {
            s.applied_serial = applied;
            s.udp = udp;
            s.tcp = tcp;
            s.whois = whois;
            s.rdap = rdap;
            s.restart_required = restart;
            f(s);
            metrics.set_applied(applied);
            metrics.set_connected(s.connected);
        });
    }
}

/// Applies to `served` (built from the state file of `generation`) the batches the log holds
/// beyond it: the changes served before a crash that the state file did not hold yet. A log
/// that does not continue the state (a gap, or a batch that does not apply) is applied up to
/// there; then the state file is compacted with what was applied and the log emptied, so that
/// later batches are not appended after the gap.
fn replay_batches(files: &StateFiles, generation: u64, served: &mut Served) {
    let found = match files.recover_batches(generation) {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "batch log unreadable: serving the state file alone");
            return;
        }
    };
    if found.torn_bytes > 0 {
        tracing::warn!(
            bytes = found.torn_bytes,
            "batch log: cut off a record torn by a crash while it was written"
        );
    }
    let mut broken = found.stopped.filter(|_| !found.batches.is_empty());
    if let Some(reason) = &broken {
        tracing::warn!(%reason, "batch log: not replayed");
    }
    let (from, mut replayed, mut used) = (served.serial, 0usize, 0usize);
    for mut batch in found.batches {
        let current = served.serial;
        if batch.upto <= current {
            used += 1;
            continue;
        }
        if batch.after > current {
            broken = Some(format!(
                "batch {}..{} does not follow serial {current}",
                batch.after, batch.upto
            ));
            break;
        }
        batch.after = current;
        if let Err(e) = served.apply(&batch) {
            broken = Some(format!("batch {}..{}: {e}", batch.after, batch.upto));
            break;
        }
        replayed += 1;
        used += 1;
    }
    let upto = served.serial;
    if replayed > 0 {
        tracing::info!(
            from,
            upto,
            batches = replayed,
            "replayed the batch log over the state file"
        );
    }
    if let Some(reason) = broken {
        tracing::warn!(%reason, serial = upto, "batch log: ignoring the rest; compacting the state file");
        if let Err(e) = files.compact_upto(used) {
            tracing::error!(error = %e, "cannot rewrite the state files");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_proto::link::convert::DnsListen;

    pub(super) fn settings(selector_toml: &str) -> SatelliteSettings {
        SatelliteSettings {
            checkin_interval: Duration::from_secs(1),
            dns: Some(DnsListen {
                udp: vec!["127.0.0.1:0".parse().unwrap()],
                ..DnsListen::default()
            }),
            whois: None,
            rdap: None,
            workers: Some(1),
            memory_budget: None,
            nsid: None,
            hostname: Some("sat9".into()),
            selector_toml: selector_toml.into(),
            rds_selector_toml: String::new(),
            metrics: None,
            xfr: None,
            serve_expired: true,
        }
    }

    /// State files at `state` as a master snapshot of the sample registry wrote them (journal
    /// serial 42, generation 1, the batch log restarted at it) with the `CHAINS` settings.
    pub(super) fn sample_state_files(state: &std::path::Path) -> StateFiles {
        let files = StateFiles::new(state.to_path_buf(), true);
        files.recover_batches(0).unwrap();
        let mut f = files.snapshot_file().unwrap();
        for c in crate::snapshot::tests::sample_data().changes() {
            f.push(&c).unwrap();
        }
        assert_eq!(f.finish(42).unwrap(), 1);
        files.write_settings(&settings(CHAINS)).unwrap();
        files
    }

    pub(super) const CHAINS: &str = r#"
        [leaves.chaos]
        kind = "chaos"
        [leaves.lookup]
        kind = "lookup"
        [[chains]]
        name = "main"
        leaves = ["lookup"]
    "#;

    /// One UDP query; the response code and whether it delegates `name`.
    fn ask(addr: SocketAddr, name: &str) -> (hickory_proto::op::ResponseCode, bool) {
        use hickory_proto::op::{Message, MessageType, OpCode, Query};
        use hickory_proto::rr::{Name, RecordType};
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sock.send_to(&m.to_vec().unwrap(), addr).unwrap();
        let mut buf = [0; 4096];
        let len = sock.recv(&mut buf).unwrap();
        let r = Message::from_vec(&buf[..len]).unwrap();
        let delegated = r
            .authorities
            .iter()
            .any(|a| a.record_type() == RecordType::NS && a.name.to_ascii() == name);
        (r.response_code, delegated)
    }

    /// A restart whose saved configuration serves Whois, with no master: DNS and Whois are
    /// served from the state file and the batch log, the logged batch included, before any
    /// master answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_serves_dns_and_whois_without_a_master() {
        use crate::zone::tests::domain;
        use orrery_proto::ChangeBatch;
        use orrery_proto::link::convert::WhoisListen;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let files = sample_state_files(&state);
        let mut with_whois = settings(CHAINS);
        with_whois.whois = Some(WhoisListen {
            tcp: vec!["127.0.0.1:0".parse().unwrap()],
            ..WhoisListen::default()
        });
        files.write_settings(&with_whois).unwrap();
        files
            .log_batch(&ChangeBatch {
                after: 42,
                upto: 43,
                changes: vec![Change::Domain(domain("new.tld", "tld", &["ns1.foo.tld"]))],
            })
            .unwrap();
        drop(files);

        let certified = rcgen::generate_simple_self_signed(vec!["sat9".to_owned()]).unwrap();
        let pem = certified.cert.pem();
        let tls =
            TlsMaterial::from_pem(pem.clone(), pem, certified.signing_key.serialize_pem()).unwrap();
        // Port 1 on loopback: no master there.
        let config = LinkConfig::new(vec!["127.0.0.1:1".into()], tls, state);
        let shutdown = CancellationToken::new();
        let sat = Satellite::start(config, shutdown.clone()).unwrap();
        let status = sat.status().borrow().clone();
        assert_eq!(status.applied_serial, 43);
        let addr = status.udp[0];
        let new = tokio::task::spawn_blocking(move || ask(addr, "new.tld."))
            .await
            .unwrap();
        assert_eq!(new, (hickory_proto::op::ResponseCode::NoError, true));

        let mut rx = sat.status();
        let status = tokio::time::timeout(
            Duration::from_secs(20),
            rx.wait_for(|s| !s.whois.is_empty()),
        )
        .await
        .expect("Whois served without a master")
        .unwrap()
        .clone();
        assert_eq!(status.applied_serial, 43);
        let mut conn = tokio::net::TcpStream::connect(status.whois[0])
            .await
            .unwrap();
        conn.write_all(b"new.tld\r\n").await.unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.to_ascii_lowercase().contains("domain name: new.tld"),
            "{answer}"
        );
        shutdown.cancel();
        sat.join().await;
    }

    /// A satellite killed after two batches became visible, before the state file was
    /// rewritten (and in the middle of appending a third): restarted with no master, it
    /// serves both batches, from the batch log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_after_a_crash_serves_the_logged_batches() {
        use crate::snapshot::read_snapshot;
        use crate::zone::tests::domain;
        use hickory_proto::op::ResponseCode;
        use orrery_proto::{ChangeBatch, Name};
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let files = sample_state_files(&state);
        let added = domain("new.tld", "tld", &["ns1.foo.tld"]);
        let removed = Name::from_ascii("bar.tld").unwrap();
        for (after, change) in [
            (42, Change::Domain(added)),
            (43, Change::DomainRemoved(removed)),
        ] {
            files
                .log_batch(&ChangeBatch {
                    after,
                    upto: after + 1,
                    changes: vec![change],
                })
                .unwrap();
        }
        drop(files);
        let log = dir.path().join("state.log");
        let mut torn = std::fs::read(&log).unwrap();
        let found = batch_log::BatchLog::new(log.clone(), true)
            .recover(1)
            .unwrap();
        assert_eq!(found.batches.len(), 2, "{found:?}");
        torn.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
        std::fs::write(&log, &torn).unwrap();

        let certified = rcgen::generate_simple_self_signed(vec!["sat9".to_owned()]).unwrap();
        let pem = certified.cert.pem();
        let tls =
            TlsMaterial::from_pem(pem.clone(), pem, certified.signing_key.serialize_pem()).unwrap();
        // Port 1 on loopback: no master there.
        let config = LinkConfig::new(vec!["127.0.0.1:1".into()], tls, state.clone());
        let shutdown = CancellationToken::new();
        let sat = Satellite::start(config, shutdown.clone()).unwrap();
        let status = sat.status().borrow().clone();
        assert_eq!(status.applied_serial, 44);
        let addr = status.udp[0];
        let (new, bar) =
            tokio::task::spawn_blocking(move || (ask(addr, "new.tld."), ask(addr, "bar.tld.")))
                .await
                .unwrap();
        assert_eq!(new, (ResponseCode::NoError, true));
        assert_eq!(bar.0, ResponseCode::NXDomain);
        // The torn record was cut off, and the shutdown merged the log into the state file.
        shutdown.cancel();
        sat.join().await;
        let saved = read_snapshot(&state).unwrap();
        assert_eq!(saved.serial, 44);
        assert!(
            saved
                .domains
                .iter()
                .any(|d| d.name.to_string() == "new.tld")
        );
        assert!(
            !saved
                .domains
                .iter()
                .any(|d| d.name.to_string() == "bar.tld")
        );
        let found = batch_log::BatchLog::new(log, true).recover(1).unwrap();
        assert_eq!((found.batches.len(), found.torn_bytes), (0, 0));
    }
}
