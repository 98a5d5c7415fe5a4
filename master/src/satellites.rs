//! The satellites the master knows: their configuration (replaceable at run time, e.g. on
//! SIGHUP), the last report each one sent, and the one session each identity may have.
//!
//! # One identity, one session
//! A session is the connection on which a satellite last booted. When an identity boots on a
//! new connection while an older one is still open, the newer one wins: the old session is
//! *fenced* (its change and snapshot streams end with ABORTED, its later calls are refused
//! with ABORTED naming the new connection), and both are logged. This is what a restarted
//! satellite needs, since its old connection may look alive for a while (until HTTP/2
//! keepalive notices it is dead), and it makes two satellites wrongly sharing one certificate
//! loud: they keep replacing each other, with a warning each time, instead of silently both
//! being served.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use orrery_proto::Serial;
use orrery_proto::link::tls::SatelliteId;
use orrery_proto::link::{SatelliteSettings, pb};

/// What the master last heard from one satellite.
#[derive(Clone, Debug)]
pub struct SatelliteStatus {
    /// The address of its connection.
    pub peer: SocketAddr,
    pub software_version: String,
    pub hostname: String,
    pub booted: SystemTime,
    pub last_checkin: Option<SystemTime>,
    pub checkins: u64,
    /// The serial it said it applied (at boot or at its last check-in).
    pub applied_serial: Serial,
    /// The configuration version it runs.
    pub config_version: String,
    /// Its last statistics.
    pub statistics: Option<pb::Statistics>,
    /// Configuration fields it can apply only after a restart.
    pub restart_required: Vec<String>,
    /// Why it does not run (all of) the configuration it was given; `None` when it does.
    pub config_refused: Option<String>,
    /// It has no state yet and receives its first snapshot: booted with serial 0, until a
    /// check-in says otherwise (`CheckInRequest.first_snapshot`).
    pub first_snapshot: bool,
}

/// The connection an identity's calls are served on.
#[derive(Clone, Debug)]
pub struct Session {
    /// The connection's number (unique for the master's lifetime, see `serve.rs`).
    pub connection: u64,
    pub peer: SocketAddr,
    pub since: SystemTime,
    /// Cancelled when a newer session of the same identity replaces this one.
    fence: CancellationToken,
}

impl Session {
    /// Ends when a newer session of the same identity replaces this one.
    pub fn fence(&self) -> &CancellationToken {
        &self.fence
    }

    /// For messages: `from ADDR (connected N s ago)`.
    pub fn describe(&self) -> String {
        let ago = self.since.elapsed().map_or(0, |d| d.as_secs());
        format!("from {} (connected {ago} s ago)", self.peer)
    }
}

/// Configuration and status of every satellite.
#[derive(Debug, Default)]
pub struct Satellites {
    config: RwLock<Arc<BTreeMap<SatelliteId, SatelliteSettings>>>,
    status: Mutex<HashMap<SatelliteId, SatelliteStatus>>,
    sessions: Mutex<HashMap<SatelliteId, Session>>,
}

impl Satellites {
    pub fn new(config: BTreeMap<SatelliteId, SatelliteSettings>) -> Self {
        Self {
            config: RwLock::new(Arc::new(config)),
            status: Mutex::default(),
            sessions: Mutex::default(),
        }
    }

    /// Makes `connection` the session of `id` (at boot), fencing an older session of the
    /// same identity on another connection.
    pub fn begin_session(&self, id: &SatelliteId, connection: u64, peer: SocketAddr) -> Session {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = sessions.get(id) {
            if current.connection == connection {
                return current.clone();
            }
            tracing::warn!(
                satellite = %id,
                old_peer = %current.peer,
                new_peer = %peer,
                "satellite connected again on a new connection: its older session is ended \
                 (a restarted satellite; two satellites sharing one certificate would keep \
                 replacing each other)"
            );
            current.fence.cancel();
        }
        let session = Session {
            connection,
            peer,
            since: SystemTime::now(),
            fence: CancellationToken::new(),
        };
        sessions.insert(id.clone(), session.clone());
        session
    }

    /// The session a call on `connection` belongs to; a connection of an identity without a
    /// session becomes its session. `Err` holds the newer session that replaced this one.
    pub fn session(
        &self,
        id: &SatelliteId,
        connection: u64,
        peer: SocketAddr,
    ) -> Result<Session, Session> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get(id) {
            Some(current) if current.connection == connection => Ok(current.clone()),
            Some(current) => Err(current.clone()),
            None => {
                let session = Session {
                    connection,
                    peer,
                    since: SystemTime::now(),
                    fence: CancellationToken::new(),
                };
                sessions.insert(id.clone(), session.clone());
                Ok(session)
            }
        }
    }

    /// Forgets the session of `id` if it is on `connection`, which has closed; `true` when
    /// that ended its session.
    pub fn connection_closed(&self, id: &SatelliteId, connection: u64) -> bool {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.get(id).is_some_and(|s| s.connection == connection) {
            sessions.remove(id);
            return true;
        }
        false
    }

    /// The current session of `id`, if it is connected.
    pub fn current_session(&self, id: &SatelliteId) -> Option<Session> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Replaces the configuration; each satellite receives its new settings at its next
    /// check-in.
    pub fn set_config(&self, config: BTreeMap<SatelliteId, SatelliteSettings>) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    /// The settings of every configured satellite.
    pub fn all_settings(&self) -> BTreeMap<SatelliteId, SatelliteSettings> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .clone()
    }

    /// The settings of one satellite, `None` when it is not configured.
    pub fn settings(&self, id: &SatelliteId) -> Option<SatelliteSettings> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Records a boot.
    pub fn booted(&self, id: &SatelliteId, peer: SocketAddr, req: &pb::BootRequest) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.insert(
            id.clone(),
            SatelliteStatus {
                peer,
                software_version: req.software_version.clone(),
                hostname: req.hostname.clone(),
                booted: SystemTime::now(),
                last_checkin: None,
                checkins: 0,
                applied_serial: req.applied_serial,
                config_version: String::new(),
                statistics: None,
                restart_required: vec![],
                config_refused: None,
                // A bare satellite: its first check-in comes only an interval later, and until
                // then the watchdog would see it behind by the whole registry.
                first_snapshot: req.applied_serial == 0,
            },
        );
    }

    /// Records a check-in (also from a satellite the master has not seen boot, e.g. after a
    /// master restart).
    pub fn checked_in(&self, id: &SatelliteId, peer: SocketAddr, req: pb::CheckInRequest) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let s = status.entry(id.clone()).or_insert_with(|| SatelliteStatus {
            peer,
            software_version: String::new(),
            hostname: String::new(),
            booted: SystemTime::now(),
            last_checkin: None,
            checkins: 0,
            applied_serial: 0,
            config_version: String::new(),
            statistics: None,
            restart_required: vec![],
            config_refused: None,
            first_snapshot: false,
        });
        s.peer = peer;
        s.first_snapshot = req.first_snapshot;
        s.last_checkin = Some(SystemTime::now());
        s.checkins += 1;
        s.applied_serial = req.applied_serial;
        s.config_version = req.config_version;
        s.statistics = req.statistics;
        s.restart_required = req.restart_required;
        let refused = (!req.config_refused.is_empty()).then_some(req.config_refused);
        if refused != s.config_refused {
            match &refused {
                Some(reason) => tracing::warn!(
                    satellite = %id,
                    peer = %peer,
                    running_version = %s.config_version,
                    reason = %reason,
                    "satellite refuses the configuration it was given"
                ),
                None => tracing::info!(
                    satellite = %id,
                    version = %s.config_version,
                    "satellite now runs the configuration it was given"
                ),
            }
        }
        s.config_refused = refused;
    }

    /// The last status of one satellite.
    pub fn status(&self, id: &SatelliteId) -> Option<SatelliteStatus> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// The last status of every satellite that reported.
    pub fn all_status(&self) -> Vec<(SatelliteId, SatelliteStatus)> {
        let status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = status.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
