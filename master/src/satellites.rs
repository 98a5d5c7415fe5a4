//! The satellites the master knows: their configuration (replaceable at run time, e.g. on
//! SIGHUP) and the last report each one sent.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

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
}

/// Configuration and status of every satellite.
#[derive(Debug, Default)]
pub struct Satellites {
    config: RwLock<Arc<BTreeMap<SatelliteId, SatelliteSettings>>>,
    status: Mutex<HashMap<SatelliteId, SatelliteStatus>>,
}

impl Satellites {
    pub fn new(config: BTreeMap<SatelliteId, SatelliteSettings>) -> Self {
        Self {
            config: RwLock::new(Arc::new(config)),
            status: Mutex::default(),
        }
    }

    /// Replaces the configuration; each satellite receives its new settings at its next
    /// check-in.
    pub fn set_config(&self, config: BTreeMap<SatelliteId, SatelliteSettings>) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
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
        });
        s.peer = peer;
        s.last_checkin = Some(SystemTime::now());
        s.checkins += 1;
        s.applied_serial = req.applied_serial;
        s.config_version = req.config_version;
        s.statistics = req.statistics;
        s.restart_required = req.restart_required;
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
