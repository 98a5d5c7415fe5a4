//! The satellite's state on disk, so that a restart serves at once while the master is away.
//!
//! Three files; the first two replaced atomically (temporary file, fsync, rename, fsync of the
//! directory), the third appended to:
//!
//! | file | what |
//! |---|---|
//! | `STATE` | the registry objects and their serial, in the snapshot format ([`crate::snapshot`]) |
//! | `STATE.settings` | the last configuration the master sent (`SatelliteConfig`, protobuf) |
//! | `STATE.log` | every batch since `STATE` was written ([`super::batch_log`]) |
//!
//! A batch is in `STATE.log`, synced, before queries see it; a snapshot is in `STATE` before
//! queries see it (except a bare satellite's first, which has nothing older to fall back to).
//! So whatever a crash interrupts, the state read back at start is at least as new as the
//! last one served. The state file is rewritten at most once per [`PERSIST_INTERVAL`] while
//! batches arrive, and each rewrite drops the batches it holds from the log. The objects are
//! encoded under the registry lock (the encoding reflects exactly one serial) and written after
//! it is released, so the file system never delays the link; writes of the state file are
//! serialised, so an older encoding never replaces a newer file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orrery_proto::link::{SatelliteSettings, pb};
use orrery_proto::{ChangeBatch, Serial};
use prost::Message;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::batch_log::{BatchLog, Recovered};
use super::registry::Registry;
use crate::snapshot::{SnapshotData, SnapshotError, encode, read_snapshot};

/// Shortest time between two writes of the state file while batches arrive.
pub const PERSIST_INTERVAL: Duration = Duration::from_secs(2);

/// The state files of one satellite (clones share the log and the write order).
#[derive(Clone, Debug)]
pub struct StateFiles {
    /// The snapshot-format state file.
    pub state: PathBuf,
    log: Arc<Mutex<BatchLog>>,
    /// Held from encoding a state to dropping its batches from the log.
    writing: Arc<Mutex<()>>,
}

/// A state file that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{path}: not a satellite configuration: {reason}")]
    Settings { path: PathBuf, reason: String },
}

impl StateFiles {
    /// The files beside `state`; `sync_batches` false skips the log's fsync (only to measure
    /// what durability costs: a crash may then lose batches).
    pub fn new(state: PathBuf, sync_batches: bool) -> Self {
        let log = BatchLog::new(beside(&state, ".log"), sync_batches);
        Self {
            state,
            log: Arc::new(Mutex::new(log)),
            writing: Arc::default(),
        }
    }

    /// `STATE.settings`.
    pub fn settings_path(&self) -> PathBuf {
        beside(&self.state, ".settings")
    }

    fn log(&self) -> std::sync::MutexGuard<'_, BatchLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the batch log and reads the batches a previous run left (see
    /// [`BatchLog::recover`]).
    pub fn recover_batches(&self) -> Result<Recovered, PersistError> {
        self.log().recover()
    }

    /// Appends a batch to the log and syncs it: call before the batch becomes visible.
    pub fn log_batch(&self, batch: &ChangeBatch) -> Result<(), PersistError> {
        self.log().append(batch)
    }

    /// Empties the batch log (its batches do not continue the state, or there is none).
    pub fn clear_batches(&self) -> Result<(), PersistError> {
        self.log().clear()
    }

    /// What a previous run left: the objects and the configuration, if both are there and
    /// sound. A missing file is `Ok(None)`; a corrupt one is an error (the caller logs it and
    /// starts bare rather than serve half a registry).
    pub fn read(&self) -> Result<Option<(SnapshotData, SatelliteSettings)>, PersistError> {
        let settings_path = self.settings_path();
        if !self.state.exists() || !settings_path.exists() {
            return Ok(None);
        }
        let data = read_snapshot(&self.state)?;
        let bytes = fs::read(&settings_path).map_err(|source| PersistError::Io {
            path: settings_path.clone(),
            source,
        })?;
        let bad = |reason: String| PersistError::Settings {
            path: settings_path.clone(),
            reason,
        };
        let msg = pb::SatelliteConfig::decode(bytes.as_slice()).map_err(|e| bad(e.to_string()))?;
        let settings = SatelliteSettings::try_from(msg).map_err(|e| bad(e.to_string()))?;
        Ok(Some((data, settings)))
    }

    /// Writes the configuration the satellite runs.
    pub fn write_settings(&self, settings: &SatelliteSettings) -> Result<(), PersistError> {
        write_atomic(
            &self.settings_path(),
            &pb::SatelliteConfig::from(settings).encode_to_vec(),
        )
    }

    /// Encodes the registry (under its lock) and writes it, then drops the batches it holds
    /// from the log; returns the serial written.
    pub fn write_state(&self, registry: &Mutex<Registry>) -> Result<Serial, PersistError> {
        self.write(registry, false)
    }

    /// [`StateFiles::write_state`] after a master snapshot replaced the registry: every
    /// batch in the log predates it (even one with a higher serial, if the master went back),
    /// so the log is emptied.
    pub fn write_snapshot_state(&self, registry: &Mutex<Registry>) -> Result<Serial, PersistError> {
        self.write(registry, true)
    }

    fn write(&self, registry: &Mutex<Registry>, snapshot: bool) -> Result<Serial, PersistError> {
        let _order = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let (serial, bytes) = {
            let r = registry.lock().unwrap_or_else(|e| e.into_inner());
            (r.serial(), encode(r.data()))
        };
        write_atomic(&self.state, &bytes)?;
        let mut log = self.log();
        if snapshot {
            log.clear()?;
        } else {
            log.drop_through(serial)?;
        }
        Ok(serial)
    }
}

/// `path` with `suffix` added to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Replaces `path` with `bytes` atomically: temporary file, fsync, rename, fsync of the
/// directory (the same steps as [`crate::snapshot::write_snapshot`], for bytes encoded
/// elsewhere).
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let io = |source| PersistError::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

/// Writes the state file whenever `dirty` is notified, at most once per `interval`, and once
/// more on shutdown if anything changed since the last write.
pub async fn persist_state(
    files: StateFiles,
    registry: Arc<Mutex<Registry>>,
    dirty: Arc<Notify>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let write = || {
        let (files, registry) = (files.clone(), Arc::clone(&registry));
        async move {
            let started = std::time::Instant::now();
            let result = tokio::task::spawn_blocking(move || files.write_state(&registry)).await;
            match result {
                Ok(Ok(serial)) => tracing::debug!(
                    serial,
                    ms = started.elapsed().as_millis() as u64,
                    "state written"
                ),
                Ok(Err(e)) => tracing::error!(error = %e, "cannot write the state file"),
                Err(e) => tracing::error!(error = %e, "state writer failed"),
            }
        }
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = dirty.notified() => {}
        }
        write().await;
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
    // A notification stored while sleeping means unwritten changes.
    if tokio::time::timeout(Duration::ZERO, dirty.notified())
        .await
        .is_ok()
    {
        write().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::tests::domain;
    use orrery_proto::Change;

    #[tokio::test]
    async fn writes_after_changes_and_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(dir.path().join("state"), true);
        let registry = Arc::new(Mutex::new(Registry::default()));
        let dirty = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(persist_state(
            files.clone(),
            Arc::clone(&registry),
            Arc::clone(&dirty),
            Duration::from_secs(3600),
            shutdown.clone(),
        ));
        let batch = |after, upto, name: &str| ChangeBatch {
            after,
            upto,
            changes: vec![Change::Domain(domain(name, "tld", &[]))],
        };
        registry.lock().unwrap().apply(&batch(0, 1, "a.tld"));
        dirty.notify_one();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while read_snapshot(&files.state).map(|d| d.serial).ok() != Some(1) {
            assert!(std::time::Instant::now() < deadline, "state not written");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Within the interval: held back until shutdown.
        registry.lock().unwrap().apply(&batch(1, 2, "b.tld"));
        dirty.notify_one();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(read_snapshot(&files.state).unwrap().serial, 1);
        shutdown.cancel();
        task.await.unwrap();
        let data = read_snapshot(&files.state).unwrap();
        assert_eq!((data.serial, data.domains.len()), (2, 2));
    }

    #[test]
    fn a_state_write_drops_the_batches_it_holds_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(dir.path().join("state"), true);
        files.recover_batches().unwrap();
        let registry = Mutex::new(Registry::default());
        let batch = |after, name: &str| ChangeBatch {
            after,
            upto: after + 1,
            changes: vec![Change::Domain(domain(name, "tld", &[]))],
        };
        for (after, name) in [(0, "a.tld"), (1, "b.tld"), (2, "c.tld")] {
            files.log_batch(&batch(after, name)).unwrap();
        }
        // The registry has applied two of the three logged batches when the state is encoded.
        registry.lock().unwrap().apply(&batch(0, "a.tld"));
        registry.lock().unwrap().apply(&batch(1, "b.tld"));
        assert_eq!(files.write_state(&registry).unwrap(), 2);
        let left = StateFiles::new(files.state.clone(), true)
            .recover_batches()
            .unwrap();
        assert_eq!(left.batches, [batch(2, "c.tld")]);
        // After a snapshot every logged batch predates the state: the log is emptied.
        assert_eq!(files.write_snapshot_state(&registry).unwrap(), 2);
        let left = StateFiles::new(files.state.clone(), true)
            .recover_batches()
            .unwrap();
        assert!(left.batches.is_empty());
        assert_eq!(read_snapshot(&files.state).unwrap().domains.len(), 2);
    }
}
