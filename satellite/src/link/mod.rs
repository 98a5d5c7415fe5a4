//! The satellite's side of the master link: dial in, boot, take a snapshot when needed, follow
//! change batches, check in, and keep serving through every failure.
//!
//! ```text
//!            ┌──── state files (persist): STATE ◀── at most every PERSIST_INTERVAL ───┐
//!  start ────┤ STATE + STATE.log replayed + STATE.settings → serve them at once       │
//!            └──────────────────────────────────────────────────────────────────────┐ │
//!                                                                                   ▼ │
//!  ┌─▶ dial (masters in turn, backoff + jitter) ─▶ Boot(applied) ─▶ settings       Registry
//!  │        │                                        │ (swap Selector / NSID,      (model copy)
//!  │        │                                        │  or note restart_required)     ▲
//!  │        │                applied ∉ [window_start, head]? ─▶ Snapshot (resumable) ─┤
//!  │        │                                        ▼                                │
//!  │        │   Follow(applied) ─▶ Batch ─▶ STATE.log (fsync) ─▶ ServedStore::apply ────┘
//!  │        │                │  Heartbeat          SnapshotRequired ─▶ Snapshot, Follow again
//!  │        │                └─ every checkin_interval: CheckIn(statistics, restart_required)
//!  └── any error: keep serving the last complete state; pause (backoff) and dial again
//! ```
//!
//! # Guarantees
//! - **Atomic batches.** Each batch goes to [`ServedStore::apply`] whole; a batch that overlaps
//!   the state (it may start before the applied serial, see `link.proto`) is re-based on it,
//!   which is harmless because changes are whole objects. A gap is a protocol error and ends
//!   the session.
//! - **Atomic snapshots.** A master snapshot is collected whole (resuming across broken
//!   streams with [`SnapshotProgress`]) before anything changes; then it becomes visible as
//!   one batch: every object, plus a removal for each object it no longer holds
//!   ([`registry::Registry::replace`]). A stream cut in the middle leaves the last complete
//!   state serving. A bare satellite builds its zone set (and registry) from the first
//!   snapshot's objects directly, without a diff, and starts serving only then; later
//!   versions share every shard a batch does not touch ([`crate::served`]).
//! - **Restart from disk, never back in time.** Each batch is appended to the batch log and
//!   synced before queries see it ([`batch_log`]); a snapshot is in the state file before
//!   queries see it (a bare satellite's first snapshot: right after serving starts, before
//!   the status shows the new serial). The state file is rewritten at most every
//!   [`persist::PERSIST_INTERVAL`] after batches, dropping them from the log. With the last
//!   settings beside it, a restarted satellite replays the log over the state file, serves at
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
//! - [`registry`]: the model copy of the objects held (for the state file and snapshot diffs).
//! - [`persist`]: the state files and the task that writes them.
//! - [`batch_log`]: each batch synced to disk before it becomes visible.
//! - [`serving`]: DNS sockets bound once, servers swapped on them.
//! - [`collect_statistics`]: the check-in's statistics from the leaves' counters.
//! - [`log_buffer`]: the warnings and errors each check-in carries up to the master.

pub mod batch_log;
pub mod collect_statistics;
pub mod log_buffer;
pub mod persist;
pub mod rds_serving;
pub mod registry;
pub mod serving;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orrery_proto::backoff::Backoff;
use orrery_proto::link::client::{self, DialConfig, Dialer, Failure, LinkClient, SnapshotProgress};
use orrery_proto::link::convert::MIN_CHECKIN_INTERVAL;
use orrery_proto::link::pb::{self, follow_event::Event};
use orrery_proto::link::tls::{TlsMaterial, client_config};
use orrery_proto::link::{ConvertError, SatelliteSettings};
use orrery_proto::{ChangeBatch, Serial};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::collect_statistics::collect_statistics;
use self::persist::{PERSIST_INTERVAL, PersistError, StateFiles, persist_state};
use self::rds_serving::{RdsServing, RdsServingError};
use self::registry::Registry;
use self::serving::Serving;
use crate::dns::leaf::Dns;
use crate::dns::leaf::{LeafConfig, SelectorConfig, SelectorError};
use crate::dns::pipeline::Pipeline;
use crate::dns::server::ServerSettings;
use crate::rds::Rds;
use crate::rds::leaf::{DEFAULT_SELECTOR as DEFAULT_RDS_SELECTOR, RdsLeafConfig};
use crate::selector::Selector;
use crate::served::{BuildOptions, Served, ServedStore};
use crate::stats::SatelliteMetrics;
use crate::stats::listener::MetricsListener;
use crate::zone::ZoneError;

/// Limit for one unary call (boot, check-in) and for opening a stream.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How a satellite reaches its masters and where it keeps its state.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// `HOST:PORT` of each master, tried in this order.
    pub masters: Vec<String>,
    /// The cluster CA and this satellite's certificate and key.
    pub tls: TlsMaterial,
    /// The state file (snapshot format); `STATE.settings` sits beside it.
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
        let files = StateFiles::new(config.state.clone(), config.sync_batches);
        let (status_tx, status) = watch::channel(LinkStatus::default());
        let mut link = Link {
            following: false,
            files,
            registry: Arc::default(),
            dirty: Arc::new(Notify::new()),
            zones: None,
            serving: None,
            rds: None,
            settings: None,
            restart_required: Vec::new(),
            refused: None,
            not_serving: None,
            progress: None,
            snapshot_required: false,
            checkin_interval: Duration::from_secs(60),
            started: Instant::now(),
            status: status_tx,
            metrics: Arc::new(SatelliteMetrics::new()),
            metrics_listener: None,
            metrics_error: None,
            config,
        };
        if let Some(secs) = link.config.tls.cert_not_after() {
            link.metrics.set_cert_not_after(secs);
        }
        match link.files.read() {
            Ok(Some((data, settings))) => {
                let started = Instant::now();
                // Domains always name a registrar: a state with domains and no registrars was
                // written before state files carried Whois data (format 1). Serve it, but take a
                // full snapshot at the first session rather than follow changes from its serial,
                // which would leave contacts and registrars missing until each one changes.
                if !data.domains.is_empty() && data.registrars.is_empty() {
                    tracing::warn!(
                        "the saved state has no Whois data: a full snapshot will replace it"
                    );
                    link.snapshot_required = true;
                }
                *link.registry.lock().unwrap_or_else(|e| e.into_inner()) =
                    Registry::from_snapshot(data);
                replay_batches(&link.files, &link.registry);
                // Settings may enable Whois or RDAP at any time: build the directory too.
                let set = Served::from_snapshot(
                    link.registry
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .data(),
                    BuildOptions::default(),
                );
                let zones = Arc::new(ServedStore::new(set));
                link.zones = Some(zones);
                link.adopt(settings)?;
                tracing::info!(
                    serial = link.applied(),
                    ms = started.elapsed().as_millis() as u64,
                    "serving the state from {} until a master answers",
                    link.files.state.display()
                );
            }
            Ok(None) => {
                tracing::info!(
                    state = %link.files.state.display(),
                    "no saved state: waiting for a master"
                );
                link.files.clear_batches()?;
            }
            Err(e) => {
                tracing::error!(error = %e, "saved state unusable: waiting for a master");
                link.files.clear_batches()?;
            }
        }
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
    /// The model copy of what is served, for the state file and snapshot diffs.
    registry: Arc<Mutex<Registry>>,
    /// Tells the persister that `registry` changed.
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
    progress: Option<SnapshotProgress>,
    /// Take a full snapshot at the next session even if the master could stream the changes.
    snapshot_required: bool,
    checkin_interval: Duration,
    started: Instant,
    status: watch::Sender<LinkStatus>,
    /// The typed counters and gauges the check-in and the metrics listener read.
    metrics: Arc<SatelliteMetrics>,
    /// The Prometheus listener, when the configuration sets one.
    metrics_listener: Option<MetricsListener>,
    /// Why the configured metrics listener does not run; reported at every check-in.
    metrics_error: Option<String>,
}

/// How a session ended without an error.
enum SessionEnd {
    Shutdown,
    /// The master ended the change stream cleanly (it is stopping or restarting).
    MasterClosed,
}

impl Link {
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

    async fn run(mut self, shutdown: CancellationToken) {
        let persist_stop = CancellationToken::new();
        let persister = tokio::spawn(persist_state(
            self.files.clone(),
            Arc::clone(&self.registry),
            Arc::clone(&self.dirty),
            self.config.persist_interval,
            persist_stop.clone(),
        ));
        let mut dial =
            DialConfig::new(self.config.masters.clone(), client_config(&self.config.tls));
        dial.backoff = self.config.backoff;
        dial.ca = Some(self.config.tls.ca_source().to_owned());
        dial.return_after = self.config.return_after;
        let mut dialer = Dialer::new(dial);
        loop {
            let client = tokio::select! {
                () = shutdown.cancelled() => break,
                c = dialer.connect() => c,
            };
            let began = Instant::now();
            self.following = false;
            // On a later master of the list, an earlier one that is back ends the session at
            // its next safe point (as a shutdown would, between two messages), and the dial
            // below reaches that master first.
            let switch = shutdown.child_token();
            let mut moving = false;
            let result = {
                let session = self.session(client, &switch);
                tokio::pin!(session);
                tokio::select! {
                    r = &mut session => r,
                    _ = dialer.earlier_master_back() => {
                        moving = true;
                        switch.cancel();
                        session.await
                    }
                }
            };
            self.publish(|s| s.connected = false);
            match result {
                Ok(SessionEnd::Shutdown) if moving && !shutdown.is_cancelled() => tracing::info!(
                    serial = self.applied(),
                    "leaving this master for an earlier one of the list"
                ),
                Ok(SessionEnd::Shutdown) => break,
                Ok(SessionEnd::MasterClosed) => tracing::info!(
                    serial = self.applied(),
                    "master closed the session; serving the last complete state and dialling again"
                ),
                Err(LinkError::Master(client::LinkError::Status(s)))
                    if s.code() == tonic::Code::PermissionDenied =>
                {
                    tracing::error!(
                        reason = %s.message(),
                        "the master refused this satellite; serving the last complete state"
                    );
                }
                // Not a link problem: the addresses the master configured cannot be bound
                // (in use, or not ours). Retry: the port may free up, or the master's
                // configuration for this satellite may change at the next boot.
                Err(LinkError::Bind(e)) => tracing::error!(
                    error = %e,
                    "cannot listen on the addresses the master configured; retrying"
                ),
                Err(LinkError::RdsBind(e)) => tracing::error!(
                    error = %e,
                    "cannot serve Whois/RDAP as the master configured; retrying"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    serial = self.applied(),
                    "link to the master lost; serving the last complete state"
                ),
            }
            if moving && !shutdown.is_cancelled() {
                // Not a failure: dial the earlier master at once.
                continue;
            }
            dialer.session_ended(began.elapsed(), self.following);
            let pause = dialer.pause();
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        if let Some(mut s) = self.serving.take() {
            s.stop().await;
        }
        if let Some(mut r) = self.rds.take() {
            r.stop(Duration::from_secs(5)).await;
        }
        self.metrics_listener = None;
        persist_stop.cancel();
        let _ = persister.await;
        tracing::info!(serial = self.applied(), "satellite stopped");
    }

    /// One connection: boot, snapshot if needed, then follow and check in until an error or
    /// shutdown.
    async fn session(
        &mut self,
        mut client: LinkClient,
        shutdown: &CancellationToken,
    ) -> Result<SessionEnd, LinkError> {
        let boot = timed(client.boot(pb::BootRequest {
            software_version: self.config.software_version.clone(),
            hostname: self.config.hostname.clone(),
            applied_serial: self.applied(),
        }))
        .await?
        .map_err(|status| match client::LinkError::from(status) {
            // With TLS 1.3 the master checks this satellite's certificate after the
            // handshake; refusing it, it sends an alert and closes, and the first call
            // often fails on the closed connection before the alert is read.
            client::LinkError::Transport {
                failure: Failure::Closed(reason),
                ..
            } => LinkError::ClosedAtBoot(reason),
            other => other.into(),
        })?
        .into_inner();
        let config = boot
            .config
            .ok_or_else(|| LinkError::Protocol("boot without a configuration".into()))?;
        self.receive(config)?;
        let applied = self.applied();
        tracing::info!(
            identity = %boot.identity,
            applied,
            head = boot.head_serial,
            window_start = boot.window_start,
            "booted"
        );
        self.metrics.set_head(boot.head_serial);
        self.publish(|s| {
            s.connected = true;
            s.identity = Some(boot.identity.clone());
        });
        // Serves what the configuration asks for, if a previous attempt failed (e.g. a port
        // that was in use).
        self.ensure_serving()?;
        self.publish(|_| {});
        if self.zones.is_none()
            || self.snapshot_required
            || applied < boot.window_start
            || applied > boot.head_serial
        {
            self.take_snapshot(&mut client).await?;
        }
        let mut next_checkin = tokio::time::Instant::now() + self.checkin_interval;
        loop {
            let mut stream = timed(client.follow(pb::FollowRequest {
                from_serial: self.applied(),
            }))
            .await??
            .into_inner();
            self.following = true;
            loop {
                let message = tokio::select! {
                    () = shutdown.cancelled() => return Ok(SessionEnd::Shutdown),
                    () = tokio::time::sleep_until(next_checkin) => {
                        self.check_in(&mut client).await?;
                        next_checkin = tokio::time::Instant::now() + self.checkin_interval;
                        continue;
                    }
                    m = stream.message() => m?,
                };
                // The stream ends with an OK status only when the master stops serving it (a
                // graceful shutdown); a failure is an error above.
                let Some(message) = message else {
                    return Ok(SessionEnd::MasterClosed);
                };
                let event = message
                    .event
                    .ok_or_else(|| LinkError::Protocol("empty change stream event".into()))?;
                match event {
                    Event::Batch(b) => self.apply_batch(ChangeBatch::try_from(b)?).await?,
                    Event::Heartbeat(h) => self.metrics.set_head(h.head_serial),
                    Event::SnapshotRequired(r) => {
                        tracing::info!(
                            applied = self.applied(),
                            window_start = r.window_start,
                            head = r.head_serial,
                            reason = %r.reason,
                            "the master asks for a snapshot"
                        );
                        self.take_snapshot(&mut client).await?;
                        break;
                    }
                }
            }
        }
    }

    /// Applies one batch atomically, re-based on the applied serial when it overlaps it.
    async fn apply_batch(&mut self, mut batch: ChangeBatch) -> Result<(), LinkError> {
        let zones = Arc::clone(
            self.zones
                .as_ref()
                .expect("a change stream is opened only with a state"),
        );
        let current = zones.serial();
        if batch.upto <= current {
            return Ok(());
        }
        if batch.after > current {
            return Err(LinkError::Protocol(format!(
                "batch {}..{} leaves a gap after the applied serial {current}",
                batch.after, batch.upto
            )));
        }
        batch.after = current;
        self.metrics.raise_head(batch.upto);
        let began = Instant::now();
        let registry = Arc::clone(&self.registry);
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || {
            // On disk before visible, so that a crash never takes queries back in time. A
            // log that cannot be written (disk full) does not hold the change back: serving
            // it matters more; the state file is tried at once instead.
            if let Err(e) = files.log_batch(&batch) {
                tracing::error!(
                    error = %e,
                    upto = batch.upto,
                    "cannot log the batch; applying it anyway (a crash now would lose it)"
                );
            }
            // Queries first: the registry lock may be held by the state writer's encoding.
            zones.apply(batch.clone())?;
            registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .apply(&batch);
            Ok::<_, ZoneError>(())
        })
        .await??;
        self.metrics.batch_applied(began.elapsed());
        self.dirty.notify_one();
        self.publish(|_| {});
        Ok(())
    }

    /// Fetches the master's snapshot (resuming a broken transfer) and makes it the served
    /// state in one step; starts serving if this is the first state; then writes the state
    /// file and publishes the new status.
    ///
    /// A bare satellite builds its zone set and registry straight from the objects (no diff
    /// to compute) and serves as soon as they are built. The state file is written
    /// after DNS starts answering, but before the status reports the new serial: a status
    /// showing a serial reached by a snapshot means the state file holds it. A crash before
    /// the write leaves the previous state file (or none), from which a restart catches up.
    async fn take_snapshot(&mut self, client: &mut LinkClient) -> Result<(), LinkError> {
        let started = Instant::now();
        let (serial, objects) = client::fetch_snapshot(client, &mut self.progress).await?;
        let fetched = started.elapsed();
        let count = objects.len();
        let registry = Arc::clone(&self.registry);
        let zones = self.zones.clone();
        let files = self.files.clone();
        let (built, written) = tokio::task::spawn_blocking(move || {
            match zones {
                Some(z) => {
                    let diff = registry
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .replace(serial, objects);
                    // On disk before visible (see `persist`): a crash after the switch must
                    // not bring back the state it replaced. A state file that cannot be
                    // written does not hold the snapshot back.
                    let written = files.write_snapshot_state(&registry);
                    z.apply(diff).map(|()| (None, Some(written)))
                }
                None => {
                    let mut fresh = Registry::at(serial);
                    let set = Served::from_objects(
                        serial,
                        objects,
                        |c| fresh.put_change(c),
                        BuildOptions::default(),
                    );
                    *registry.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
                    Ok((Some(Arc::new(ServedStore::new(set))), None))
                }
            }
        })
        .await??;
        let loaded = started.elapsed();
        self.snapshot_required = false;
        if let Some(z) = built {
            self.zones = Some(z);
        }
        self.ensure_serving()?;
        let serving = started.elapsed();
        // A bare satellite serves first (it has nothing older to fall back to) and writes
        // the state file after.
        let written = match written {
            Some(w) => w,
            None => {
                let (files, registry) = (self.files.clone(), Arc::clone(&self.registry));
                tokio::task::spawn_blocking(move || files.write_snapshot_state(&registry)).await?
            }
        };
        if written.is_err() {
            // The persister tries again after its interval.
            self.dirty.notify_one();
        }
        self.publish(|_| {});
        written?;
        tracing::info!(
            serial,
            objects = count,
            fetch_ms = fetched.as_millis() as u64,
            build_ms = (loaded - fetched).as_millis() as u64,
            serving_ms = serving.as_millis() as u64,
            state_ms = (started.elapsed() - serving).as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "snapshot applied and saved"
        );
        Ok(())
    }

    /// Reports statistics; takes the interval and any new configuration.
    async fn check_in(&mut self, client: &mut LinkClient) -> Result<(), LinkError> {
        let rds = self
            .rds
            .as_ref()
            .map(RdsServing::counters)
            .unwrap_or_default();
        let objects = self
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len() as u64;
        self.metrics.set_objects(objects);
        let statistics = collect_statistics(
            &self.metrics.queries.totals(),
            &rds,
            self.started.elapsed(),
            objects,
        );
        if let Some(budget) = self.settings.as_ref().and_then(|s| s.memory_budget)
            && statistics.memory_bytes > budget
        {
            tracing::warn!(
                memory = statistics.memory_bytes,
                budget,
                "resident memory above the budget the master set"
            );
        }
        // Warnings and errors go up with the check-in; back into the buffer if it fails.
        let logs = log_buffer::global().take();
        let response = timed(
            client.check_in(pb::CheckInRequest {
                applied_serial: self.applied(),
                config_version: self
                    .settings
                    .as_ref()
                    .map(SatelliteSettings::version)
                    .unwrap_or_default(),
                statistics: Some(statistics),
                restart_required: self.restart_required.clone(),
                config_refused: self.config_refused(),
                logs: logs.entries.clone(),
                logs_dropped: logs.dropped,
            }),
        )
        .await
        .and_then(|r| r.map_err(LinkError::from));
        let response = match response {
            Ok(r) => r.into_inner(),
            Err(e) => {
                log_buffer::global().restore(logs.entries);
                return Err(e);
            }
        };
        self.metrics.set_head(response.head_serial);
        self.checkin_interval = Duration::from_millis(u64::from(response.checkin_interval_ms))
            .max(MIN_CHECKIN_INTERVAL);
        if let Some(config) = response.config {
            self.receive(config)?;
        }
        // A service that could not start (a Whois port in use, an unreadable certificate) is
        // tried again at every check-in.
        self.ensure_serving()?;
        self.publish(|s| s.checkins += 1);
        Ok(())
    }

    /// Takes a configuration message from the master: checks it, then adopts it. One that
    /// fails its checks is refused (logged, reported at the next check-in); the running
    /// configuration stays.
    fn receive(&mut self, config: pb::SatelliteConfig) -> Result<(), LinkError> {
        let version = config.version.clone();
        match SatelliteSettings::try_from(config) {
            Ok(settings) => {
                if self.settings.as_ref() != Some(&settings) {
                    tracing::info!(version = %settings.version(), "new configuration from the master");
                }
                self.checkin_interval = settings.checkin_interval;
                self.adopt(settings)
            }
            Err(e) => {
                self.refuse(&version, e.to_string());
                Ok(())
            }
        }
    }

    /// Notes that configuration `version` is refused, and why.
    fn refuse(&mut self, version: &str, reason: String) {
        tracing::error!(
            version,
            reason = %reason,
            "refusing the master's configuration; keeping the running one"
        );
        self.refused = Some(format!("configuration {version}: {reason}"));
    }

    /// What the next check-in reports in `config_refused`.
    fn config_refused(&self) -> String {
        [
            self.refused.as_deref(),
            self.not_serving.as_deref(),
            self.metrics_error.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ")
    }

    /// Takes a configuration: swaps the query pipeline when its parts changed, notes what
    /// needs a restart, saves it. A Selector that cannot be built is refused (logged and
    /// reported; the running configuration stays).
    fn adopt(&mut self, new: SatelliteSettings) -> Result<(), LinkError> {
        if self.settings.as_ref() == Some(&new) {
            return Ok(());
        }
        let selector = match build_selector(&new) {
            Ok(s) => s,
            Err(e) => {
                self.refuse(&new.version(), format!("its selector does not build: {e}"));
                return Ok(());
            }
        };
        let rds_selector = match build_rds_selector(&new) {
            Ok(s) => s,
            Err(e) => {
                self.refuse(
                    &new.version(),
                    format!("its registration data selector does not build: {e}"),
                );
                return Ok(());
            }
        };
        self.refused = None;
        self.ensure_metrics(new.metrics);
        let old = self.settings.replace(new.clone());
        self.files.write_settings(&new)?;
        if let (Some(serving), Some(zones)) = (&mut self.serving, &self.zones) {
            let pipeline_changed = old.as_ref().is_none_or(|o| {
                o.selector_toml != new.selector_toml
                    || o.nsid != new.nsid
                    || o.hostname != new.hostname
            });
            if pipeline_changed {
                let pipeline = Pipeline::new(selector, Arc::clone(zones), new.nsid.clone())
                    .with_stats(Arc::clone(&self.metrics.queries));
                serving.serve(Arc::new(pipeline)).map_err(LinkError::Bind)?;
                tracing::info!("query pipeline replaced with the master's new selector");
            }
        }
        if let Some(rds) = &self.rds
            && old
                .as_ref()
                .is_none_or(|o| o.rds_selector_toml != new.rds_selector_toml)
        {
            rds.replace_selector(rds_selector);
            tracing::info!("Whois/RDAP pipeline replaced with the master's new selector");
        }
        let was_serving = self.serving.is_some() || self.rds.is_some();
        self.ensure_serving()?;
        if was_serving && !self.restart_required.is_empty() {
            tracing::warn!(
                fields = ?self.restart_required,
                "configuration changes that take effect only after a restart"
            );
        }
        self.publish(|_| {});
        Ok(())
    }

    /// Runs the metrics listener where the configuration says (none when it sets none). One
    /// that cannot be bound is logged and reported, and tried again with the next
    /// configuration.
    fn ensure_metrics(&mut self, want: Option<SocketAddr>) {
        self.metrics_error =
            match MetricsListener::ensure(&mut self.metrics_listener, want, &self.metrics) {
                Ok(()) => None,
                Err(e) => {
                    tracing::error!(error = %e, "cannot serve metrics as the master configured");
                    Some(e.to_string())
                }
            };
    }

    /// Starts the services once there are both a state and a configuration, and notes which
    /// configured fields the running services do not match.
    ///
    /// DNS comes first and does not depend on Whois/RDAP: a Whois port that cannot be bound or
    /// an RDAP certificate that cannot be read is logged and tried again at the next check-in
    /// or session, while DNS is served.
    fn ensure_serving(&mut self) -> Result<(), LinkError> {
        let mut not_serving = Vec::new();
        // A DNS listener that cannot be started does not end the session either: the
        // satellite goes on following changes (and serving Whois/RDAP), tries again at each
        // check-in, and reports why in each one.
        match self.ensure_dns_serving() {
            Ok(()) => {}
            Err(e @ LinkError::Bind(_)) => {
                tracing::error!(
                    error = %e,
                    "cannot listen on the DNS addresses the master configured; retrying at the next check-in"
                );
                not_serving.push(e.to_string());
            }
            Err(e) => return Err(e),
        }
        if let Err(e) = self.ensure_rds_serving() {
            tracing::error!(
                error = %e,
                "cannot serve Whois/RDAP as the master configured; retrying at the next check-in"
            );
            not_serving.push(e.to_string());
        }
        self.not_serving = (!not_serving.is_empty()).then(|| not_serving.join("; "));
        let mut fields = Vec::new();
        if let Some(settings) = &self.settings {
            if let Some(serving) = &self.serving {
                fields = restart_required(serving, settings);
            }
            if let Some(rds) = &self.rds {
                fields
                    .extend(rds.restart_required(settings.whois.as_ref(), settings.rdap.as_ref()));
            }
        }
        self.restart_required = fields;
        Ok(())
    }

    /// Starts Whois and RDAP, when configured, once there are a state and a configuration.
    fn ensure_rds_serving(&mut self) -> Result<(), LinkError> {
        let (Some(settings), Some(zones)) = (&self.settings, &self.zones) else {
            return Ok(());
        };
        if self.rds.is_some() || (settings.whois.is_none() && settings.rdap.is_none()) {
            return Ok(());
        }
        let selector = build_rds_selector(settings).map_err(|e| {
            LinkError::Protocol(format!(
                "the configuration's rds selector does not build: {e}"
            ))
        })?;
        let rds = RdsServing::start(
            settings.whois.as_ref(),
            settings.rdap.as_ref(),
            selector,
            Arc::clone(zones),
        )?;
        let (http, https) = rds.rdap_addrs();
        tracing::info!(
            whois = ?rds.whois_addrs(),
            rdap_http = ?http,
            rdap_https = ?https,
            "serving Whois and RDAP"
        );
        self.rds = Some(rds);
        Ok(())
    }

    /// Starts the DNS service once there are both a state and a configuration.
    fn ensure_dns_serving(&mut self) -> Result<(), LinkError> {
        let (Some(settings), Some(zones)) = (&self.settings, &self.zones) else {
            return Ok(());
        };
        if self.serving.is_some() {
            return Ok(());
        }
        let Some(dns) = &settings.dns else {
            tracing::debug!("the master configures no DNS service for this satellite");
            return Ok(());
        };
        let server = server_settings(settings);
        let mut serving = Serving::bind(&dns.udp, &dns.tcp, server).map_err(LinkError::Bind)?;
        let selector = build_selector(settings).map_err(|e| {
            LinkError::Protocol(format!("the configuration's selector does not build: {e}"))
        })?;
        let pipeline = Pipeline::new(selector, Arc::clone(zones), settings.nsid.clone())
            .with_stats(Arc::clone(&self.metrics.queries));
        serving.serve(Arc::new(pipeline)).map_err(LinkError::Bind)?;
        tracing::info!(
            udp = ?serving.udp_addrs(),
            tcp = ?serving.tcp_addrs(),
            serial = zones.serial(),
            "serving DNS"
        );
        self.serving = Some(serving);
        Ok(())
    }
}

/// Builds the registration data Selector of a configuration (the built-in default chain when
/// the master sends none).
fn build_rds_selector(settings: &SatelliteSettings) -> Result<Selector<Rds>, SelectorTextError> {
    let text = match settings.rds_selector_toml.trim() {
        "" => DEFAULT_RDS_SELECTOR,
        text => text,
    };
    let config = SelectorConfig::<RdsLeafConfig>::from_toml(text)?;
    Ok(Selector::build(&config)?)
}

/// Why a configuration's Selector cannot be used: the master's check at load
/// ([`SelectorConfig::validate`]) would have said the same.
#[derive(Debug, thiserror::Error)]
#[error("selector_toml: {0}")]
struct SelectorTextError(#[from] SelectorError);

/// Builds the Selector of a configuration; the configuration's host name fills the CHAOS
/// leaves' `hostname.bind`/`id.server` answers (RFC 4892) where the leaf leaves them unset.
fn build_selector(settings: &SatelliteSettings) -> Result<Selector<Dns>, SelectorTextError> {
    let mut config = SelectorConfig::<LeafConfig>::from_toml(&settings.selector_toml)?;
    if let Some(host) = &settings.hostname {
        for leaf in config.leaves.values_mut() {
            if let LeafConfig::Chaos(c) = leaf {
                c.hostname.get_or_insert_with(|| host.clone());
                c.id_server.get_or_insert_with(|| host.clone());
            }
        }
    }
    Ok(Selector::<Dns>::build(&config)?)
}

fn server_settings(settings: &SatelliteSettings) -> ServerSettings {
    ServerSettings::from_settings(settings)
}

/// True when the bound addresses are the configured ones; a configured port 0 matches the
/// port the system chose.
fn same_addrs(bound: &[SocketAddr], wanted: &[SocketAddr]) -> bool {
    bound.len() == wanted.len()
        && bound
            .iter()
            .zip(wanted)
            .all(|(b, w)| b.ip() == w.ip() && (w.port() == 0 || b.port() == w.port()))
}

/// The fields of `new` the running DNS service does not match. Port 0 matches any port.
fn restart_required(serving: &Serving, new: &SatelliteSettings) -> Vec<String> {
    let same = |bound: Vec<SocketAddr>, wanted: &[SocketAddr]| same_addrs(&bound, wanted);
    let mut fields = Vec::new();
    match &new.dns {
        Some(dns) => {
            if !same(serving.udp_addrs(), &dns.udp) {
                fields.push("dns.udp".to_owned());
            }
            if !same(serving.tcp_addrs(), &dns.tcp) {
                fields.push("dns.tcp".to_owned());
            }
        }
        None => fields.push("dns".to_owned()),
    }
    let (wanted, running) = (server_settings(new), serving.settings());
    if wanted.workers != running.workers {
        fields.push("workers".to_owned());
    }
    // The sockets are bound, and the servers started, with these.
    let (u, t) = ((&wanted.udp, &running.udp), (&wanted.tcp, &running.tcp));
    for (field, differs) in [
        ("dns.udp_batch", u.0.batch != u.1.batch),
        ("dns.udp_reuseport", u.0.reuseport != u.1.reuseport),
        ("dns.cpu_affinity", u.0.cpu_affinity != u.1.cpu_affinity),
        (
            "dns.tcp_idle_timeout_ms",
            t.0.idle_timeout != t.1.idle_timeout,
        ),
        (
            "dns.tcp_max_connections",
            t.0.max_connections != t.1.max_connections,
        ),
        (
            "dns.tcp_max_connections_per_address",
            t.0.max_connections_per_address != t.1.max_connections_per_address,
        ),
        ("dns.tcp_max_queries", t.0.max_queries != t.1.max_queries),
    ] {
        if differs {
            fields.push(field.to_owned());
        }
    }
    fields
}

/// Applies to `registry` (read from the state file) the batches the log holds beyond it: the
/// changes served before a crash that the state file did not hold yet. A log that does not
/// continue the state (a gap) is applied up to the gap; then the state file is rewritten and
/// the log emptied, so that later batches are not appended after the gap.
fn replay_batches(files: &StateFiles, registry: &Mutex<Registry>) {
    let found = match files.recover_batches() {
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
    let mut broken = found.stopped;
    let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
    let (from, mut replayed) = (r.serial(), 0usize);
    for mut batch in found.batches {
        let current = r.serial();
        if batch.upto <= current {
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
        r.apply(&batch);
        replayed += 1;
    }
    let upto = r.serial();
    drop(r);
    if replayed > 0 {
        tracing::info!(
            from,
            upto,
            batches = replayed,
            "replayed the batch log over the state file"
        );
    }
    if let Some(reason) = broken {
        tracing::warn!(%reason, serial = upto, "batch log: ignoring the rest; rewriting the state file");
        if let Err(e) = files
            .write_state(registry)
            .and_then(|_| files.clear_batches())
        {
            tracing::error!(error = %e, "cannot rewrite the state files");
        }
    }
}

/// A call with [`CALL_TIMEOUT`].
async fn timed<T>(call: impl Future<Output = T>) -> Result<T, LinkError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| LinkError::Timeout(CALL_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_proto::link::convert::DnsListen;

    fn settings(selector_toml: &str) -> SatelliteSettings {
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
        }
    }

    const CHAINS: &str = r#"
        [leaves.chaos]
        kind = "chaos"
        [leaves.lookup]
        kind = "lookup"
        [[chains]]
        name = "main"
        leaves = ["lookup"]
    "#;

    #[test]
    fn selector_from_settings_and_restart_fields() {
        assert!(build_selector(&settings(CHAINS)).is_ok());
        let Err(err) = build_selector(&settings("[[chains]]\nname = 1")) else {
            panic!("a bad selector was accepted");
        };
        assert!(err.to_string().contains("selector_toml"), "{err}");
        let s = settings(CHAINS);
        let serving =
            Serving::bind(&s.dns.as_ref().unwrap().udp, &[], server_settings(&s)).unwrap();
        assert!(restart_required(&serving, &s).is_empty());
        let mut moved = s.clone();
        moved.dns.as_mut().unwrap().udp = vec!["127.0.0.2:53".parse().unwrap()];
        moved.workers = Some(3);
        assert_eq!(restart_required(&serving, &moved), ["dns.udp", "workers"]);
        // The UDP and TCP settings the master sends are bound with the sockets too.
        let mut tuned = s.clone();
        let dns = tuned.dns.as_mut().unwrap();
        (dns.udp_batch, dns.tcp_max_queries) = (Some(4), Some(10));
        assert_eq!(
            restart_required(&serving, &tuned),
            ["dns.udp_batch", "dns.tcp_max_queries"]
        );
        let udp = tuned.dns.as_ref().unwrap().udp.clone();
        let serving = Serving::bind(&udp, &[], server_settings(&tuned)).unwrap();
        assert_eq!(serving.settings().udp.batch, 4);
        assert_eq!(serving.settings().tcp.max_queries, Some(10));
        assert!(restart_required(&serving, &tuned).is_empty());
    }

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

    /// A satellite killed after two batches became visible, before the state file was
    /// rewritten (and in the middle of appending a third): restarted with no master, it
    /// serves both batches, from the batch log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_after_a_crash_serves_the_logged_batches() {
        use crate::snapshot::{read_snapshot, tests::sample_data, write_snapshot};
        use crate::zone::tests::domain;
        use hickory_proto::op::ResponseCode;
        use orrery_proto::{Change, Name};
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let files = StateFiles::new(state.clone(), true);
        write_snapshot(&state, &sample_data()).unwrap();
        files.write_settings(&settings(CHAINS)).unwrap();
        files.recover_batches().unwrap();
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
            .recover()
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
        // The torn record was cut off; the state file and the log still make serial 44.
        shutdown.cancel();
        sat.join().await;
        assert_eq!(read_snapshot(&state).unwrap().serial, 42);
        let found = batch_log::BatchLog::new(log, true).recover().unwrap();
        assert_eq!((found.batches.len(), found.torn_bytes), (2, 0));
    }
}
