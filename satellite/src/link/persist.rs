//! The satellite's state on disk, so that a restart serves at once while the master is away.
//!
//! Two files, both replaced atomically (temporary file, fsync, rename, fsync of the directory):
//!
//! | file | what |
//! |---|---|
//! | `STATE` | the registry objects and their serial, in the snapshot format ([`crate::snapshot`]) |
//! | `STATE.settings` | the last configuration the master sent (`SatelliteConfig`, protobuf) |
//!
//! The state file is written after every master snapshot and then, while batches arrive, at
//! most once per [`PERSIST_INTERVAL`]: a crash loses at most that much, and the satellite
//! catches up from the master from the serial the file holds. The objects are encoded under
//! the registry lock (the encoding reflects exactly one serial) and written after it is
//! released, so the file system never delays the link.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orrery_proto::Serial;
use orrery_proto::link::{SatelliteSettings, pb};
use prost::Message;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::registry::Registry;
use crate::snapshot::{SnapshotData, SnapshotError, encode, read_snapshot};

/// Shortest time between two writes of the state file while batches arrive.
pub const PERSIST_INTERVAL: Duration = Duration::from_secs(2);

/// The state files of one satellite.
#[derive(Clone, Debug)]
pub struct StateFiles {
    /// The snapshot-format state file.
    pub state: PathBuf,
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
    pub fn new(state: PathBuf) -> Self {
        Self { state }
    }

    /// `STATE.settings`.
    pub fn settings_path(&self) -> PathBuf {
        let mut name = self.state.file_name().unwrap_or_default().to_os_string();
        name.push(".settings");
        self.state.with_file_name(name)
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

    /// Encodes the registry (under its lock) and writes it; returns the serial written.
    pub fn write_state(&self, registry: &Mutex<Registry>) -> Result<Serial, PersistError> {
        let (serial, bytes) = {
            let r = registry.lock().unwrap_or_else(|e| e.into_inner());
            (r.serial(), encode(r.data()))
        };
        write_atomic(&self.state, &bytes)?;
        Ok(serial)
    }
}

/// Replaces `path` with `bytes` atomically: temporary file, fsync, rename, fsync of the
/// directory (the same steps as [`crate::snapshot::write_snapshot`], for bytes encoded
/// elsewhere).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
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
    use orrery_proto::{Change, ChangeBatch};

    #[tokio::test]
    async fn writes_after_changes_and_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(dir.path().join("state"));
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
}
