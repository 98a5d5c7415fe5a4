//! The satellite's state on disk, so that a restart serves at once while the master is away.
//!
//! Three files; the first two replaced atomically ([`orrery_proto::atomic_file`]), the third
//! appended to:
//!
//! | file | what |
//! |---|---|
//! | `STATE` | the registry objects, their serial and generation ([`orrery_proto::state_file`]) |
//! | `STATE.settings` | the last configuration the master sent (`SatelliteConfig`, protobuf) |
//! | `STATE.log` | every batch since `STATE` was written ([`super::batch_log`]), same generation |
//!
//! Nothing here holds a copy of the registry. `STATE` is written from what the master sends:
//! a master snapshot is streamed into it chunk by chunk as it arrives ([`SnapshotFile`]), and
//! the batches after it go to `STATE.log`. At most once per [`PERSIST_INTERVAL`] while batches
//! arrive, a *compaction* streams the old `STATE` through [`state_file::merge`] with the log's
//! batches into a new `STATE` (same generation, the last batch's serial) and drops those
//! batches from the log — but only once the log has grown to a quarter of the state file
//! ([`COMPACT_WHEN_LOG_IS`]): a compaction streams the whole registry, so its cost must follow
//! the change volume, not the clock (a trickle of changes at 1M delegations would otherwise
//! rewrite hundreds of megabytes every few seconds). Its memory is the log's changes (a map by object identity), never the
//! registry; it runs on a blocking thread, beside the link, and never touches what queries see.
//!
//! A batch is in `STATE.log`, synced, before queries see it; a snapshot is in `STATE` (and the
//! log restarted at its generation) before queries see it. So whatever a crash interrupts, the
//! state read back at start is at least as new as the last one served, and the log replayed
//! over it is exactly the batches after it: same generation, serials above the file's.
//! Writes of `STATE` are serialised, so an older state never replaces a newer file.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orrery_proto::atomic_file::write_atomic;
use orrery_proto::link::{SatelliteSettings, pb};
use orrery_proto::state_file::{self, Header, Objects, StateFileError, StateFileWriter};
use orrery_proto::{Change, ChangeBatch, Serial};
use prost::Message;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::batch_log::{BatchLog, Recovered};

/// Shortest time between two compactions of the state file while batches arrive.
pub const PERSIST_INTERVAL: Duration = Duration::from_secs(2);
/// The batch log is merged into the state file once it reaches this fraction of the file's
/// size (and at shutdown). A restart replays at most that much.
pub const COMPACT_WHEN_LOG_IS: (u64, u64) = (1, 4);

/// The state files of one satellite (clones share the log and the write order).
#[derive(Clone, Debug)]
pub struct StateFiles {
    /// The state file.
    pub state: PathBuf,
    log: Arc<Mutex<BatchLog>>,
    /// Held while `STATE` is rewritten (a compaction or a snapshot).
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
    #[error("{path}: {source}")]
    StateFile {
        path: PathBuf,
        source: StateFileError,
    },
    #[error("{path}: not a satellite configuration: {reason}")]
    Settings { path: PathBuf, reason: String },
}

/// What a previous run left, read whole and checked.
#[derive(Debug)]
pub struct SavedState {
    pub header: Header,
    /// Every object of the state file, as its chunks hold them.
    pub objects: Objects,
    pub settings: SatelliteSettings,
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

    fn io(&self) -> impl Fn(std::io::Error) -> PersistError + '_ {
        |source| PersistError::Io {
            path: self.state.clone(),
            source,
        }
    }

    fn bad_state(&self) -> impl Fn(StateFileError) -> PersistError + '_ {
        |source| PersistError::StateFile {
            path: self.state.clone(),
            source,
        }
    }

    /// Opens the batch log and reads the batches a previous run left for the state file of
    /// `generation` (see [`BatchLog::recover`]).
    pub fn recover_batches(&self, generation: u64) -> Result<Recovered, PersistError> {
        self.log().recover(generation)
    }

    /// Appends a batch to the log and syncs it: call before the batch becomes visible.
    pub fn log_batch(&self, batch: &ChangeBatch) -> Result<(), PersistError> {
        self.log().append(batch)
    }

    /// Empties the batch log and ties it to state file `generation`.
    pub fn clear_batches(&self, generation: u64) -> Result<(), PersistError> {
        self.log().clear(generation)
    }

    /// What a previous run left: the objects and the configuration, if both are there and
    /// sound. A missing file is `Ok(None)`; a corrupt, torn or old-format one is an error (the
    /// caller logs it and starts bare rather than serve half a registry). The objects are read
    /// whole only if the configuration serves Whois or RDAP; otherwise in
    /// [`Detail::Dns`](state_file::Detail::Dns), all the DNS tables are built from.
    pub fn read(&self) -> Result<Option<SavedState>, PersistError> {
        let settings_path = self.settings_path();
        if !self.state.exists() || !settings_path.exists() {
            return Ok(None);
        }
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
        let detail = state_file::Detail::for_serving(super::adopt::serves_rds(Some(&settings)));
        let (header, objects) =
            state_file::read_objects(&self.state, detail).map_err(self.bad_state())?;
        Ok(Some(SavedState {
            header,
            objects,
            settings,
        }))
    }

    /// The state the files hold now: the state file's objects and the logged batches that
    /// follow it, which together are what queries see (every batch is logged before it is
    /// visible). For a build beside the served version (the directory a new configuration
    /// asks for); a compaction waits meanwhile, so the file and the log match.
    pub fn read_current(&self) -> Result<(Header, Objects, Vec<ChangeBatch>), PersistError> {
        let _order = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let (header, objects) = state_file::read_objects(&self.state, state_file::Detail::Full)
            .map_err(self.bad_state())?;
        let mut log = self.log();
        if log.generation() != header.generation {
            // Cannot happen while the writing lock orders snapshots and compactions.
            return Err(self.bad_state()(StateFileError::Undecodable {
                offset: 0,
                reason: format!(
                    "generation {} where the batch log continues {}",
                    header.generation,
                    log.generation()
                ),
            }));
        }
        let mut batches = log.batches()?;
        batches.retain(|b| b.upto > header.serial);
        Ok((header, objects, batches))
    }

    /// Writes the configuration the satellite runs.
    pub fn write_settings(&self, settings: &SatelliteSettings) -> Result<(), PersistError> {
        let path = self.settings_path();
        write_atomic(&path, &pb::SatelliteConfig::from(settings).encode_to_vec())
            .map_err(|source| PersistError::Io { path, source })
    }

    /// Starts writing a master snapshot into the state file, as it arrives; `STATE` changes
    /// only at [`SnapshotFile::finish`].
    pub fn snapshot_file(&self) -> Result<SnapshotFile, PersistError> {
        Ok(SnapshotFile {
            writer: StateFileWriter::create(&self.state).map_err(self.io())?,
            files: self.clone(),
        })
    }

    /// True when the log has grown enough to be worth merging ([`COMPACT_WHEN_LOG_IS`]).
    pub fn wants_compaction(&self) -> bool {
        let log = self.log().len_bytes();
        let state = fs::metadata(&self.state).map_or(0, |m| m.len());
        let (num, den) = COMPACT_WHEN_LOG_IS;
        log > 0 && log * den >= state * num
    }

    /// Merges the batch log into the state file (see the module docs) and drops the merged
    /// batches from the log; returns the serial written, or `None` when the log was empty.
    pub fn compact(&self) -> Result<Option<Serial>, PersistError> {
        self.compact_upto(usize::MAX)
    }

    /// [`StateFiles::compact`] with the log's first `keep` batches only, the rest dropped
    /// (a log broken after them).
    pub(super) fn compact_upto(&self, keep: usize) -> Result<Option<Serial>, PersistError> {
        let _order = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let (mut batches, generation) = {
            let mut log = self.log();
            (log.batches()?, log.generation())
        };
        let dropped = batches.len() > keep;
        batches.truncate(keep);
        if batches.is_empty() {
            if dropped {
                self.log().clear(generation)?;
            }
            return Ok(None);
        }
        let old = state_file::open(&self.state).map_err(self.bad_state())?;
        let header = old.header();
        if header.generation != generation {
            // Cannot happen while the writing lock orders snapshots and compactions.
            return Err(self.bad_state()(StateFileError::Undecodable {
                offset: 0,
                reason: format!(
                    "generation {} where the batch log continues {generation}",
                    header.generation
                ),
            }));
        }
        // Only what follows the file (the log may still hold batches the file has).
        let later: Vec<ChangeBatch> = batches
            .into_iter()
            .filter(|b| b.upto > header.serial)
            .collect();
        let Some(serial) = later.last().map(|b| b.upto) else {
            if dropped {
                self.log().clear(generation)?;
            }
            return Ok(None);
        };
        let mut out = StateFileWriter::create(&self.state).map_err(self.io())?;
        state_file::merge(old, later.into_iter().flat_map(|b| b.changes), &mut out).map_err(
            |e| match e {
                state_file::MergeError::Read(e) => self.bad_state()(e),
                state_file::MergeError::Write(e) => self.io()(e),
            },
        )?;
        out.finish(Header { serial, generation })
            .map_err(self.io())?;
        let mut log = self.log();
        if dropped {
            log.clear(generation)?;
        } else {
            log.drop_through(serial)?;
        }
        Ok(Some(serial))
    }
}

/// A master snapshot being written into the state file as it arrives (see
/// [`StateFiles::snapshot_file`]); dropped unfinished, the old state file stays.
#[derive(Debug)]
pub struct SnapshotFile {
    writer: StateFileWriter,
    files: StateFiles,
}

impl SnapshotFile {
    /// Adds an object of the snapshot.
    pub fn push(&mut self, object: &Change) -> Result<(), PersistError> {
        self.writer.push(object).map_err(self.files.io())
    }

    /// Puts the file in place as the state at `serial`, of a new generation, and restarts
    /// the batch log at it: every batch logged before predates the snapshot (even one with a
    /// higher serial, if the master went back). Returns the new generation.
    pub fn finish(self, serial: Serial) -> Result<u64, PersistError> {
        let files = self.files;
        let _order = files.writing.lock().unwrap_or_else(|e| e.into_inner());
        let generation = files.log().generation().wrapping_add(1);
        self.writer
            .finish(Header { serial, generation })
            .map_err(files.io())?;
        files.log().clear(generation)?;
        Ok(generation)
    }
}

/// `path` with `suffix` added to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Compacts the state file when `dirty` is notified and the log is large enough
/// ([`StateFiles::wants_compaction`]), at most once per `interval`, and once more on shutdown
/// if the log holds anything.
pub async fn persist_state(
    files: StateFiles,
    dirty: Arc<Notify>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let write = |always: bool| {
        let files = files.clone();
        async move {
            if !always && !files.wants_compaction() {
                return;
            }
            let started = std::time::Instant::now();
            // At low priority: a read and a write of the whole file, beside the queries.
            let result = crate::background::run("state-compact", move || files.compact()).await;
            match result {
                Ok(Ok(serial)) => tracing::debug!(
                    ?serial,
                    ms = started.elapsed().as_millis() as u64,
                    "state file compacted"
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
        write(false).await;
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
    // Whatever the log holds is merged, so that a restart reads one file (a no-op when the
    // log is empty).
    write(true).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{SnapshotData, read_snapshot, tests::sample_data};
    use crate::zone::tests::domain;

    fn batch(after: Serial, name: &str) -> ChangeBatch {
        ChangeBatch {
            after,
            upto: after + 1,
            changes: vec![Change::Domain(domain(name, "tld", &[]))],
        }
    }

    /// A state file of `data` written as a master snapshot arrives, with its generation.
    fn from_master(files: &StateFiles, data: &SnapshotData) -> u64 {
        let mut f = files.snapshot_file().unwrap();
        for c in data.changes() {
            f.push(&c).unwrap();
        }
        f.finish(data.serial).unwrap()
    }

    #[tokio::test]
    async fn compacts_after_changes_and_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(dir.path().join("state"), true);
        files.recover_batches(0).unwrap();
        from_master(&files, &SnapshotData::default());
        let dirty = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(persist_state(
            files.clone(),
            Arc::clone(&dirty),
            Duration::from_secs(3600),
            shutdown.clone(),
        ));
        files.log_batch(&batch(0, "a.tld")).unwrap();
        dirty.notify_one();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while read_snapshot(&files.state).map(|d| d.serial).ok() != Some(1) {
            assert!(std::time::Instant::now() < deadline, "state not written");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Within the interval: held back until shutdown.
        files.log_batch(&batch(1, "b.tld")).unwrap();
        dirty.notify_one();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(read_snapshot(&files.state).unwrap().serial, 1);
        shutdown.cancel();
        task.await.unwrap();
        let data = read_snapshot(&files.state).unwrap();
        assert_eq!((data.serial, data.domains.len()), (2, 2));
    }

    /// A corrupt chunk anywhere in the state file (the first, one in the middle, the last)
    /// makes the saved state unusable as a whole: `read` says which chunk, and returns none
    /// of the objects (the chunks before it decode, and are dropped), so a restart never
    /// serves part of a registry.
    #[test]
    fn a_corrupt_chunk_anywhere_refuses_the_saved_state() {
        use orrery_proto::state_file::{CHUNK_HEADER_LEN, HEADER_LEN};
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let files = crate::link::tests::sample_state_files(&state);
        let mut f = files.snapshot_file().unwrap();
        for i in 0..60_000 {
            let name = format!("domain-{i}.tld");
            f.push(&Change::Domain(domain(&name, "tld", &["ns1.foo.tld"])))
                .unwrap();
        }
        f.finish(50).unwrap();
        let good = files.read().unwrap().expect("a saved state");
        assert_eq!(good.objects.len(), 60_000);
        let bytes = fs::read(&state).unwrap();
        let mut chunks = Vec::new();
        let mut at = HEADER_LEN;
        loop {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            if len == 0 {
                break;
            }
            chunks.push((at, len));
            at += CHUNK_HEADER_LEN + len;
        }
        assert!(chunks.len() >= 3, "{} chunks", chunks.len());
        for &(at, len) in [
            chunks[0],
            chunks[chunks.len() / 2],
            chunks[chunks.len() - 1],
        ]
        .iter()
        {
            let mut bad = bytes.clone();
            bad[at + CHUNK_HEADER_LEN + len / 2] ^= 0x10;
            fs::write(&state, &bad).unwrap();
            match files.read() {
                Err(PersistError::StateFile {
                    source: StateFileError::ChunkChecksum { offset },
                    ..
                }) => assert_eq!(offset as usize, at),
                other => panic!("chunk at {at}: {other:?}"),
            }
        }
        fs::write(&state, &bytes).unwrap();
        assert_eq!(files.read().unwrap().unwrap().objects, good.objects);
    }

    /// A compaction gives the file a fresh snapshot at the same serial would give, and keeps
    /// only later batches in the log; a new snapshot starts a new generation whose log ignores
    /// the old one's.
    #[test]
    fn compaction_equals_a_fresh_snapshot_and_snapshots_restart_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(dir.path().join("state"), true);
        files.recover_batches(0).unwrap();
        let mut data = sample_data();
        let generation = from_master(&files, &data);
        assert_eq!(generation, 1);
        // Batches after the file: an upsert, a replacement, a removal; and one the file holds.
        let changes = [
            vec![Change::Domain(domain("new.tld", "tld", &["ns1.foo.tld"]))],
            vec![
                Change::Domain(domain("foo.tld", "tld", &[])),
                Change::ContactRemoved("C2".into()),
            ],
            vec![Change::DomainRemoved(
                orrery_proto::Name::from_ascii("bar.tld").unwrap(),
            )],
        ];
        for (i, c) in changes.iter().enumerate() {
            files
                .log_batch(&ChangeBatch {
                    after: 42 + i as Serial,
                    upto: 43 + i as Serial,
                    changes: c.clone(),
                })
                .unwrap();
        }
        assert_eq!(files.compact().unwrap(), Some(45));
        assert_eq!(files.compact().unwrap(), None, "nothing left to merge");
        // What a master would send at 45.
        data.serial = 45;
        data.domains[0] = domain("foo.tld", "tld", &[]);
        data.domains.retain(|d| d.name.to_string() != "bar.tld");
        data.domains
            .push(domain("new.tld", "tld", &["ns1.foo.tld"]));
        data.contacts.retain(|c| c.handle != "C2");
        let fresh_path = dir.path().join("fresh");
        crate::snapshot::write_snapshot(&fresh_path, &data).unwrap();
        let sorted = |mut d: SnapshotData| {
            d.domains.sort_by_key(|x| x.name.to_string());
            d
        };
        assert_eq!(
            sorted(read_snapshot(&files.state).unwrap()),
            sorted(read_snapshot(&fresh_path).unwrap())
        );
        let (header, _) = state_file::read_state_file(&files.state).unwrap();
        assert_eq!((header.serial, header.generation), (45, 1));

        // A later batch stays in the log across a compaction that does not hold it.
        files.log_batch(&batch(45, "later.tld")).unwrap();
        let left = StateFiles::new(files.state.clone(), true)
            .recover_batches(1)
            .unwrap();
        assert_eq!(left.batches, [batch(45, "later.tld")]);
        // A snapshot: a new generation, and the old log is not replayed over it.
        assert_eq!(from_master(&files, &sample_data()), 2);
        let left = StateFiles::new(files.state.clone(), true)
            .recover_batches(2)
            .unwrap();
        assert!(left.batches.is_empty() && left.stopped.is_none());
        assert_eq!(read_snapshot(&files.state).unwrap(), sample_data());
    }

    #[test]
    fn compaction_waits_for_the_log_to_reach_a_quarter_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(dir.path().join("state"), true);
        files.recover_batches(0).unwrap();
        let big = SnapshotData {
            domains: (0..2000)
                .map(|i| domain(&format!("d{i}.tld"), "tld", &["ns.example"]))
                .collect(),
            ..sample_data()
        };
        from_master(&files, &big);
        assert!(!files.wants_compaction(), "an empty log");
        let mut after = 42;
        while !files.wants_compaction() {
            files
                .log_batch(&batch(after, &format!("n{after}.tld")))
                .unwrap();
            after += 1;
        }
        let state = fs::metadata(&files.state).unwrap().len();
        let log = files.log().len_bytes();
        assert!(
            after - 42 > 50 && log * 4 >= state && log * 4 < state + 1000,
            "{log} {state}"
        );
        assert_eq!(files.compact().unwrap(), Some(after));
        assert!(!files.wants_compaction());
    }

    #[test]
    fn an_unfinished_snapshot_leaves_the_old_state() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(dir.path().join("state"), true);
        files.recover_batches(0).unwrap();
        from_master(&files, &sample_data());
        let mut f = files.snapshot_file().unwrap();
        f.push(&Change::Domain(domain("half.tld", "tld", &[])))
            .unwrap();
        drop(f);
        assert_eq!(read_snapshot(&files.state).unwrap(), sample_data());
    }
}
