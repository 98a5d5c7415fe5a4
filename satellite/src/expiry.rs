//! Zone expiry (RFC 1035 §3.3.13): a zone whose SOA EXPIRE has passed since a master was last
//! heard from "is no longer authoritative". What BIND, NSD and Knot secondaries do then —
//! SERVFAIL for the zone — is the satellite's `serve_expired = false`; the default (`true`)
//! keeps answering from the last state, as a registry wants when its masters are unreachable
//! for longer than EXPIRE (the serial shows how stale the data is, and the watchdog's
//! `missed_checkins` fires meanwhile).
//!
//! ```text
//!  link: boot, batch, heartbeat, check-in answer ──▶ Expiry::heard (heard = now, silent = 0)
//!  tick (once a second, its own task) ──▶ silent = now − heard ──▶ log each zone that expires
//!        │                                                        or recovers, once
//!        └─ STATE.heard written when it is PERSIST_EVERY behind (and at shutdown)
//!  lookup leaf (serve_expired = false only): one relaxed load of `silent`, compared with the
//!  zone's EXPIRE it already holds → SERVFAIL
//! ```
//!
//! The per-query cost is one relaxed atomic load and a compare, with no clock read: the tick
//! publishes the seconds of silence and every zone's "expired" is `silent >= EXPIRE`, so no
//! per-zone flag has to follow the zone tables from version to version.
//!
//! **Restarts do not reset the clock**: the last contact is kept in `STATE.heard` (Unix
//! seconds, as text) beside the state file. It is written when it is [`PERSIST_EVERY`] behind
//! the one in memory and when the satellite stops, so after a crash the satellite believes it
//! was silent for at most that much longer than it was: it errs towards expiring early, never
//! towards serving past EXPIRE. A state file with no `STATE.heard` (written by an older
//! satellite) starts the clock at the start of the process.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orrery_proto::Name;
use tokio_util::sync::CancellationToken;

use crate::served::ServedStore;

/// How far `STATE.heard` may fall behind the last contact before it is written again.
pub const PERSIST_EVERY: Duration = Duration::from_secs(30);

/// How often the silence is measured (and expiries are logged).
pub const TICK: Duration = Duration::from_secs(1);

/// The time since a master was last heard from, shared by the link (which stamps it), the
/// tick (which measures it) and the lookup leaf (which compares it with a zone's EXPIRE).
#[derive(Debug)]
pub struct Expiry {
    /// Unix milliseconds of the last contact with a master (milliseconds, so that whole
    /// seconds of silence are counted from the contact, not from the second it fell in).
    heard: AtomicU64,
    /// Whole seconds of silence as of the last tick; 0 right after a contact.
    silent: AtomicU32,
    /// `serve_expired = false`: expired zones answer SERVFAIL (for the log's wording; the
    /// pipeline carries the [`Expiry`] to the lookup leaf only in that case).
    servfail: AtomicBool,
    /// `STATE.heard`; `None` when nothing is persisted (tests).
    path: Option<PathBuf>,
}

fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Expiry {
    /// The clock as `STATE.heard` (`path`) left it; absent or unreadable, it starts now.
    pub fn load(path: PathBuf) -> Self {
        let heard = match std::fs::read_to_string(&path) {
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(secs) => Some(secs),
                Err(_) => {
                    tracing::warn!(path = %path.display(), "last contact with a master unreadable: counting from now");
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "last contact with a master unreadable: counting from now");
                None
            }
        };
        let now = unix_now();
        // A stamp from the future (the clock was set back) counts as now.
        let me = Self::heard_at(heard.unwrap_or(now).min(now));
        Self {
            path: Some(path),
            ..me
        }
    }

    /// A standalone satellite's clock (it hears from no master): the last contact the
    /// master-fed satellite that wrote `snapshot` recorded beside it (`SNAPSHOT.heard`), else
    /// the file's modification time, when its data was last current. Never written.
    pub fn for_standalone(snapshot: &Path) -> Self {
        let beside = Self::path_beside(snapshot);
        if beside.exists() {
            return Self {
                path: None,
                ..Self::load(beside)
            };
        }
        let modified = std::fs::metadata(snapshot)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or_else(unix_now, |d| d.as_secs());
        Self::heard_at(modified.min(unix_now()))
    }

    /// A clock whose last contact was at `unix_secs`, persisted nowhere.
    pub fn heard_at(unix_secs: u64) -> Self {
        let me = Self {
            heard: AtomicU64::new(unix_secs.saturating_mul(1000)),
            silent: AtomicU32::new(0),
            servfail: AtomicBool::new(false),
            path: None,
        };
        me.measure(unix_now_ms());
        me
    }

    /// A master answered (a boot, a batch, a heartbeat, a check-in's answer): every zone is
    /// current again at once, without waiting for the tick.
    pub fn heard(&self) {
        self.heard.store(unix_now_ms(), Ordering::Relaxed);
        self.silent.store(0, Ordering::Relaxed);
    }

    /// Whole seconds since a master was last heard from, as of the last tick.
    #[inline]
    pub fn silent_for(&self) -> u32 {
        self.silent.load(Ordering::Relaxed)
    }

    /// True when a zone with SOA EXPIRE `expire` (seconds) is past it: the query path's check,
    /// one relaxed load. An EXPIRE of 0 expires at the first whole second of silence.
    #[inline]
    pub fn is_expired(&self, expire: u32) -> bool {
        let silent = self.silent_for();
        silent > 0 && silent >= expire
    }

    /// Notes the policy: `serve_expired = false` makes expired zones answer SERVFAIL.
    pub fn set_servfail(&self, servfail: bool) {
        self.servfail.store(servfail, Ordering::Relaxed);
    }

    /// Measures the silence at `now_ms` (Unix milliseconds) and publishes it.
    fn measure(&self, now_ms: u64) -> u32 {
        let silent = now_ms.saturating_sub(self.heard.load(Ordering::Relaxed)) / 1000;
        let silent = u32::try_from(silent).unwrap_or(u32::MAX);
        self.silent.store(silent, Ordering::Relaxed);
        silent
    }

    /// Writes `STATE.heard` when `written` is [`PERSIST_EVERY`] behind (or `force`); returns
    /// what the file now holds.
    fn persist(&self, written: u64, force: bool) -> u64 {
        // Whole seconds, rounded down: a restart errs towards an older contact.
        let heard = self.heard.load(Ordering::Relaxed) / 1000;
        let Some(path) = &self.path else {
            return heard;
        };
        if heard == written || (!force && heard < written + PERSIST_EVERY.as_secs()) {
            return written;
        }
        match orrery_proto::atomic_file::write_atomic(path, heard.to_string().as_bytes()) {
            Ok(()) => heard,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot save the last contact with a master (retried)");
                written
            }
        }
    }

    /// `STATE.heard` beside the state file `state`.
    pub fn path_beside(state: &Path) -> PathBuf {
        let mut p = state.as_os_str().to_owned();
        p.push(".heard");
        PathBuf::from(p)
    }
}

/// The zones expired at the last tick, for logging each change once.
#[derive(Debug, Default)]
struct Expired {
    zones: HashSet<Name>,
}

impl Expired {
    /// Compares every zone of `served` with the silence; logs those that expire or recover.
    fn update(&mut self, expiry: &Expiry, served: &ServedStore) {
        let version = served.load();
        let silent = expiry.silent_for();
        let servfail = expiry.servfail.load(Ordering::Relaxed);
        let mut now = HashSet::new();
        for zone in version.zones.zones() {
            if !expiry.is_expired(zone.soa.expire) {
                continue;
            }
            now.insert(zone.apex_name.clone());
            if !self.zones.contains(&zone.apex_name) {
                if servfail {
                    tracing::error!(
                        zone = %zone.apex_name,
                        expire_s = zone.soa.expire,
                        silent_s = silent,
                        "zone past its SOA EXPIRE with no master heard from: answering SERVFAIL \
                         for it until a master answers (serve_expired = false)"
                    );
                } else {
                    tracing::warn!(
                        zone = %zone.apex_name,
                        expire_s = zone.soa.expire,
                        silent_s = silent,
                        "zone past its SOA EXPIRE with no master heard from: still answering \
                         from the last state (serve_expired = true)"
                    );
                }
            }
        }
        for gone in self.zones.difference(&now) {
            tracing::info!(zone = %gone, "zone no longer expired: a master answered (or the zone changed)");
        }
        self.zones = now;
    }
}

/// Measures the silence every [`TICK`] until `shutdown`, logs zones that expire or recover,
/// and keeps `STATE.heard` current; `zones` gives the served store once there is one.
pub async fn run_tick(
    expiry: Arc<Expiry>,
    zones: impl Fn() -> Option<Arc<ServedStore>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut written = expiry.heard.load(Ordering::Relaxed) / 1000;
    let mut expired = Expired::default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        expiry.measure(unix_now_ms());
        if let Some(served) = zones() {
            expired.update(&expiry, &served);
        }
        written = expiry.persist(written, false);
    }
    expiry.persist(written, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_measured_compared_with_expire_and_cleared_by_a_contact() {
        let now = unix_now();
        let e = Expiry::heard_at(now - 5);
        // Measured again at `now` itself: `heard_at` measured at its own clock read, which may
        // be in the next second.
        assert_eq!(e.measure(now * 1000), 5);
        assert!(e.is_expired(3) && e.is_expired(5));
        assert!(!e.is_expired(6) && !e.is_expired(604_800));
        e.heard();
        assert_eq!(e.silent_for(), 0);
        assert!(!e.is_expired(0) && !e.is_expired(3));
        // A clock set back: no silence, no panic.
        let e = Expiry::heard_at(now + 100);
        assert_eq!(e.measure(now * 1000), 0);
        assert!(!e.is_expired(0));
    }

    #[test]
    fn the_last_contact_survives_a_restart_and_is_written_when_far_enough_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = Expiry::path_beside(&dir.path().join("state"));
        assert!(path.ends_with("state.heard"));
        // No file: the clock starts now (whole seconds: at most one old across a boundary).
        let e = Expiry::load(path.clone());
        assert!(e.silent_for() <= 1, "{}", e.silent_for());
        let now = unix_now();
        std::fs::write(&path, format!("{}\n", now - 40)).unwrap();
        let e = Expiry::load(path.clone());
        assert!(e.silent_for() >= 40, "{}", e.silent_for());
        assert!(e.is_expired(40));
        // Not far enough behind: not written; forced, or PERSIST_EVERY behind: written.
        e.heard();
        let heard = e.heard.load(Ordering::Relaxed) / 1000;
        assert_eq!(e.persist(heard - 1, false), heard - 1);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            (now - 40).to_string()
        );
        assert_eq!(e.persist(heard - PERSIST_EVERY.as_secs(), false), heard);
        // The file holds whole seconds, rounded down: read back across a second's boundary,
        // the contact is a second old (CI saw 1), not the 40 s of the file before.
        let silent = Expiry::load(path.clone()).silent_for();
        assert!(silent <= 1, "{silent}");
        std::fs::write(&path, "garbage").unwrap();
        let e = Expiry::load(path.clone());
        assert!(e.silent_for() <= 1, "{}", e.silent_for());
        assert_eq!(e.persist(0, true), e.heard.load(Ordering::Relaxed) / 1000);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .parse::<u64>()
                .is_ok()
        );
    }
}
