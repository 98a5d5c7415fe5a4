//! The `Link` gRPC service: boot, check-in, change streams and snapshots, served from the
//! [`Cache`] and the [`Satellites`] registry. The store is read only by the journal follower
//! and, for a satellite older than the cache's window, by [`Resume`], once per serial asked for
//! however many satellites ask.
//!
//! Every call first requires a configured identity (`require_satellite`): the name comes from
//! the verified certificate (see `serve.rs`); a name the configuration does not list is refused
//! with PERMISSION_DENIED and a log line naming it and its address.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use orrery_proto::link::pb::{self, follow_event::Event};
use orrery_proto::link::{SatelliteSettings, pb::link_server::Link};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::cache::{Cache, Catchup};
use crate::cluster_state::ClusterState;
use crate::resume::{Gap, Resume};
use crate::satellites::{Satellites, Session};
use crate::serve::PeerInfo;

/// The status ending a session that a newer one of the same identity replaced.
fn replaced(id: &orrery_proto::link::tls::SatelliteId, newer: &Session) -> Status {
    Status::aborted(format!(
        "session replaced: satellite {:?} is connected again {}",
        id.as_str(),
        newer.describe()
    ))
}

/// Events buffered per change stream before the sender waits for the satellite.
const STREAM_BUFFER: usize = 16;

/// Counts of what the link served, for statistics and tests.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Snapshot transfers started (each one a `Snapshot` call).
    pub snapshots: AtomicU64,
    /// Satellites older than the window resumed from the store's journal.
    pub resumed: AtomicU64,
}

/// The master's implementation of the link.
#[derive(Clone, Debug)]
pub struct LinkService {
    cache: Arc<Cache>,
    resume: Arc<Resume>,
    satellites: Arc<Satellites>,
    cluster: Arc<ClusterState>,
    counters: Arc<LinkCounters>,
    heartbeat: Duration,
    shutdown: CancellationToken,
}

impl LinkService {
    /// `shutdown` also ends the long-lived change streams, so that a graceful shutdown does
    /// not wait for satellites to hang up.
    pub fn new(
        cache: Arc<Cache>,
        resume: Arc<Resume>,
        satellites: Arc<Satellites>,
        cluster: Arc<ClusterState>,
        heartbeat: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            cache,
            resume,
            satellites,
            cluster,
            counters: Arc::default(),
            heartbeat,
            shutdown,
        }
    }

    /// The satellites' configuration, status and sessions.
    pub fn satellites(&self) -> &Arc<Satellites> {
        &self.satellites
    }

    /// The writer of the cluster state.
    pub fn cluster(&self) -> &Arc<ClusterState> {
        &self.cluster
    }

    /// Hands the satellite's latest status to the cluster state writer.
    fn report(
        &self,
        peer: &PeerInfo,
        settings: &SatelliteSettings,
        logs: Vec<pb::LogEntry>,
        dropped: u64,
    ) {
        if let Some(status) = self.satellites.status(&peer.identity) {
            let since = self
                .satellites
                .current_session(&peer.identity)
                .map(|s| s.since);
            self.cluster
                .checked_in(peer, settings, &status, since, logs, dropped);
        }
    }

    /// The session of the caller, or ABORTED when a newer session of its identity replaced it.
    fn require_session(&self, peer: &PeerInfo, call: &str) -> Result<Session, Status> {
        self.satellites
            .session(&peer.identity, peer.connection, peer.addr)
            .map_err(|newer| {
                tracing::info!(
                    satellite = %peer.identity,
                    peer = %peer.addr,
                    call,
                    "refused call: this session was replaced by a newer one of the same satellite"
                );
                replaced(&peer.identity, &newer)
            })
    }

    /// What the service has done so far.
    pub fn counters(&self) -> Arc<LinkCounters> {
        Arc::clone(&self.counters)
    }

    /// The caller's identity and settings, or the refusal.
    fn require_satellite<T>(
        &self,
        req: &Request<T>,
        call: &str,
    ) -> Result<(PeerInfo, SatelliteSettings), Status> {
        let Some(peer) = req.extensions().get::<PeerInfo>().cloned() else {
            tracing::warn!(call, "refused call: connection has no satellite identity");
            return Err(Status::unauthenticated("no satellite identity"));
        };
        match self.satellites.settings(&peer.identity) {
            Some(settings) => Ok((peer, settings)),
            None => {
                tracing::warn!(
                    satellite = %peer.identity,
                    peer = %peer.addr,
                    call,
                    "refused call: unknown satellite identity (not in the master's configuration)"
                );
                Err(Status::permission_denied(format!(
                    "satellite {:?} is not configured on this master",
                    peer.identity.as_str()
                )))
            }
        }
    }
}

#[tonic::async_trait]
impl Link for LinkService {
    async fn boot(
        &self,
        req: Request<pb::BootRequest>,
    ) -> Result<Response<pb::BootResponse>, Status> {
        let (peer, settings) = self.require_satellite(&req, "Boot")?;
        let req = req.into_inner();
        let loaded = self.cache.is_loaded();
        let (mut head, mut window_start) = self.cache.positions();
        // A satellite older than the window (e.g. after a master restart) is told it can
        // follow from its serial when the journal still holds the gap: its change stream then
        // starts with the batch read here (shared, see resume.rs), not with a snapshot. This
        // is also how a master still loading its registry serves a satellite that has a
        // state: the gap comes from the store, and the cache is not needed for it.
        let applied = req.applied_serial;
        if applied > 0
            && (!loaded || applied < window_start)
            && let Gap::Batch(batch) = self.resume.gap(applied).await
        {
            window_start = applied;
            head = head.max(batch.upto);
        }
        if !loaded && window_start != applied {
            // A bare satellite, or one the journal cannot resume: it needs a snapshot, and
            // there is none before the registry is loaded. It retries after its backoff.
            tracing::info!(
                satellite = %peer.identity,
                peer = %peer.addr,
                applied_serial = applied,
                "satellite needs a snapshot; still loading the registry"
            );
            return Err(Status::unavailable(
                "the master is still loading the registry; try again shortly",
            ));
        }
        // Only a boot that is answered fences an older session of the same identity.
        self.satellites
            .begin_session(&peer.identity, peer.connection, peer.addr);
        tracing::info!(
            satellite = %peer.identity,
            peer = %peer.addr,
            version = %req.software_version,
            applied_serial = req.applied_serial,
            head,
            "satellite booted"
        );
        self.satellites.booted(&peer.identity, peer.addr, &req);
        self.report(&peer, &settings, vec![], 0);
        Ok(Response::new(pb::BootResponse {
            identity: peer.identity.to_string(),
            config: Some((&settings).into()),
            head_serial: head,
            window_start,
            session: peer.connection,
        }))
    }

    async fn check_in(
        &self,
        req: Request<pb::CheckInRequest>,
    ) -> Result<Response<pb::CheckInResponse>, Status> {
        let (mut peer, settings) = self.require_satellite(&req, "CheckIn")?;
        let token = req.get_ref().session;
        if token == 0 {
            self.require_session(&peer, "CheckIn")?;
        } else {
            // A check-in on a connection of its own (so that it never queues behind the
            // change stream): it belongs to the session its token names, which must be the
            // current one; it never starts one.
            let current = self.satellites.current_session(&peer.identity);
            match current {
                Some(s) if s.connection == token => peer.addr = s.peer,
                other => {
                    tracing::info!(
                        satellite = %peer.identity,
                        peer = %peer.addr,
                        session = token,
                        "refused check-in: its session ended or was replaced"
                    );
                    return Err(other.map_or_else(
                        || Status::aborted("the session of this check-in has ended"),
                        |newer| replaced(&peer.identity, &newer),
                    ));
                }
            }
        }
        let mut req = req.into_inner();
        let (logs, dropped) = (std::mem::take(&mut req.logs), req.logs_dropped);
        let config = pb::SatelliteConfig::from(&settings);
        let changed = config.version != req.config_version;
        if !req.restart_required.is_empty() {
            tracing::info!(satellite = %peer.identity, fields = ?req.restart_required, "satellite needs a restart to apply its configuration");
        }
        self.satellites.checked_in(&peer.identity, peer.addr, req);
        self.report(&peer, &settings, logs, dropped);
        let (head, window_start) = self.cache.positions();
        Ok(Response::new(pb::CheckInResponse {
            checkin_interval_ms: config.checkin_interval_ms,
            config: changed.then_some(config),
            head_serial: head,
            window_start,
        }))
    }

    type FollowStream = ReceiverStream<Result<pb::FollowEvent, Status>>;

    async fn follow(
        &self,
        req: Request<pb::FollowRequest>,
    ) -> Result<Response<Self::FollowStream>, Status> {
        let (peer, _) = self.require_satellite(&req, "Follow")?;
        let session = self.require_session(&peer, "Follow")?;
        let from = req.into_inner().from_serial;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let service = self.clone();
        tokio::spawn(async move {
            let outcome = tokio::select! {
                outcome = service.stream_changes(from, &tx) => outcome,
                () = session.fence().cancelled() => {
                    let newer = service.satellites.current_session(&peer.identity);
                    let status = newer.map_or_else(
                        || Status::aborted("session replaced by a newer one"),
                        |newer| replaced(&peer.identity, &newer),
                    );
                    let _ = tx.send(Err(status)).await;
                    StreamEnd::Replaced
                }
            };
            tracing::debug!(satellite = %peer.identity, peer = %peer.addr, ?outcome, "change stream ended");
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type SnapshotStream = ReceiverStream<Result<pb::SnapshotChunk, Status>>;

    async fn snapshot(
        &self,
        req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let (peer, _) = self.require_satellite(&req, "Snapshot")?;
        let session = self.require_session(&peer, "Snapshot")?;
        let req = req.into_inner();
        if !self.cache.is_loaded() {
            return Err(Status::unavailable(
                "the master is still loading the registry; try again shortly",
            ));
        }
        let snapshot = if req.serial == 0 {
            // Building may take a while for a large registry: keep it off the I/O threads.
            let cache = self.cache.clone();
            tokio::task::spawn_blocking(move || cache.snapshot())
                .await
                .map_err(|e| Status::internal(format!("snapshot build failed: {e}")))?
        } else {
            self.cache.snapshot_at(req.serial).ok_or_else(|| {
                Status::failed_precondition(format!(
                    "snapshot at serial {} is no longer held; ask for serial 0",
                    req.serial
                ))
            })?
        };
        let count = snapshot.chunks.len();
        let start = req.start_chunk as usize;
        if start >= count {
            return Err(Status::out_of_range(format!(
                "snapshot {} has {count} chunks, asked to start at {start}",
                snapshot.serial
            )));
        }
        tracing::info!(satellite = %peer.identity, serial = snapshot.serial, start, count, "sending snapshot");
        self.counters.snapshots.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(4);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            for chunk in &snapshot.chunks[start..] {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = session.fence().cancelled() => {
                        let _ = tx.send(Err(Status::aborted("session replaced by a newer one"))).await;
                        return;
                    }
                    sent = tx.send(Ok(chunk.clone())) => if sent.is_err() { return },
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// How a change stream ended.
#[derive(Debug)]
enum StreamEnd {
    SatelliteLeft,
    SnapshotRequired,
    Shutdown,
    /// A newer session of the same identity replaced this one.
    Replaced,
}

impl LinkService {
    /// Sends every batch after `from` as it arrives, heartbeats while quiet.
    async fn stream_changes(
        &self,
        mut from: orrery_proto::Serial,
        tx: &mpsc::Sender<Result<pb::FollowEvent, Status>>,
    ) -> StreamEnd {
        let (cache, shutdown) = (&self.cache, &self.shutdown);
        let mut generation = cache.subscribe();
        // The serial reached by a batch read from the journal: the cache may not have caught
        // up with it yet, which is not the satellite being ahead of the master.
        let mut resumed_to = None;
        loop {
            // Mark the current generation seen *before* reading, so a batch applied after the
            // read wakes us.
            generation.borrow_and_update();
            let required = match cache.since(from) {
                Catchup::Batches(batches) => {
                    for batch in batches {
                        from = batch.upto;
                        let event = pb::FollowEvent {
                            event: Some(Event::Batch((*batch).clone())),
                        };
                        tokio::select! {
                            () = shutdown.cancelled() => return StreamEnd::Shutdown,
                            sent = tx.send(Ok(event)) => if sent.is_err() { return StreamEnd::SatelliteLeft },
                        }
                    }
                    None
                }
                Catchup::BeforeWindow { .. }
                    if !cache.is_loaded() && resumed_to.is_some_and(|r| from >= r) =>
                {
                    // Resumed from the journal while the registry is still loading: what
                    // follows comes from the cache once it is loaded (its generation moves).
                    None
                }
                Catchup::BeforeWindow { window_start, head } => match self.resume.gap(from).await {
                    Gap::Batch(batch) if batch.upto <= from => {
                        // Nothing after `from` in the journal yet: wait for the cache (or the
                        // heartbeat) instead of reading again at once.
                        resumed_to = Some(from);
                        None
                    }
                    Gap::Batch(batch) => {
                        self.counters.resumed.fetch_add(1, Ordering::Relaxed);
                        from = batch.upto;
                        resumed_to = Some(batch.upto);
                        let event = pb::FollowEvent {
                            event: Some(Event::Batch((*batch).clone())),
                        };
                        tokio::select! {
                            () = shutdown.cancelled() => return StreamEnd::Shutdown,
                            sent = tx.send(Ok(event)) => if sent.is_err() { return StreamEnd::SatelliteLeft },
                        }
                        // The cache's window may already hold what followed.
                        continue;
                    }
                    Gap::Unavailable(why) => Some((
                        window_start,
                        head,
                        format!(
                            "serial {from} is older than the master's window (from {window_start}) and {why}"
                        ),
                    )),
                },
                Catchup::SnapshotRequired { .. } if resumed_to.is_some_and(|r| from <= r) => {
                    // Ahead of the cache only because the journal read was newer than the
                    // follower: wait for the follower.
                    None
                }
                Catchup::SnapshotRequired {
                    window_start,
                    head,
                    reason,
                } => Some((window_start, head, reason)),
            };
            if let Some((window_start, head, reason)) = required {
                let event = pb::FollowEvent {
                    event: Some(Event::SnapshotRequired(pb::SnapshotRequired {
                        window_start,
                        head_serial: head,
                        reason,
                    })),
                };
                let _ = tx.send(Ok(event)).await;
                return StreamEnd::SnapshotRequired;
            }
            tokio::select! {
                () = shutdown.cancelled() => return StreamEnd::Shutdown,
                () = tx.closed() => return StreamEnd::SatelliteLeft,
                changed = generation.changed() => if changed.is_err() { return StreamEnd::Shutdown },
                () = tokio::time::sleep(self.heartbeat) => {
                    let event = pb::FollowEvent {
                        event: Some(Event::Heartbeat(pb::Heartbeat { head_serial: cache.head() })),
                    };
                    if tx.send(Ok(event)).await.is_err() {
                        return StreamEnd::SatelliteLeft;
                    }
                }
            }
        }
    }
}
