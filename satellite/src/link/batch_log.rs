//! The batch log: every change batch on disk, synced, before it becomes visible to queries,
//! so that a satellite restarted after a crash never serves an older state than it served.
//!
//! The state file ([`super::persist`]) is rewritten at most every
//! [`super::persist::PERSIST_INTERVAL`]; the batches since then are in `STATE.log` beside it,
//! appended with one `fdatasync` per batch (group commit: a batch of a thousand changes costs
//! one sync). At start the log is replayed over the state file. Each time the state file is
//! rewritten at serial `S` (a compaction: the old file and the log merged), the records it now
//! holds (`upto <= S`) are dropped from the log.
//!
//! The header names the generation of the state file the log continues
//! ([`orrery_proto::state_file`]): a master snapshot writes a file of a new generation and then
//! restarts the log at it. A log of another generation (a crash between the two steps) holds
//! batches of the replaced line of descent, possibly with higher serials if the master went
//! back, and is discarded rather than replayed.
//!
//! ```text
//!   "ORRBLOG2"                         8 bytes: format and version
//!   generation  u64 LE                 of the state file this log continues
//!   ┌ length  u32 LE ┐
//!   │ CRC-32  u32 LE │ of the payload   one record per batch, in serial order, each
//!   └ payload        ┘ pb::ChangeBatch  continuing the previous one (after = previous upto)
//! ```
//!
//! A payload is the link's own `ChangeBatch` message, exactly as the master sends it, so the
//! log and the link share one encoding (and the state file can become a stream of the same
//! messages). A crash in the middle of an append leaves a torn tail: a short record or a CRC
//! mismatch. Reading stops at the first such record and the file is cut back there, so the
//! next append follows the last whole record.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use orrery_proto::link::{MAX_MESSAGE_SIZE, pb};
use orrery_proto::{ChangeBatch, Serial};
use prost::Message;

use orrery_proto::atomic_file::write_atomic;

use super::persist::PersistError;

/// The first bytes of a batch log: format name and version.
const MAGIC: &[u8; 8] = b"ORRBLOG2";
/// Magic and generation.
const HEADER_LEN: usize = 16;
/// Length and CRC before each payload.
const RECORD_HEADER: usize = 8;

/// The open log, positioned for appending.
#[derive(Debug)]
pub struct BatchLog {
    path: PathBuf,
    /// `None` until [`BatchLog::recover`] or the first append opens it.
    file: Option<File>,
    /// `(upto, end offset)` of each record, in order.
    records: Vec<(Serial, u64)>,
    /// Generation of the state file the records continue.
    generation: u64,
    /// `fdatasync` after each append (off only to measure what durability costs).
    sync: bool,
}

/// What [`BatchLog::recover`] found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every whole record, in order.
    pub batches: Vec<ChangeBatch>,
    /// Bytes cut off the end: a torn record (a crash in the middle of an append).
    pub torn_bytes: u64,
    /// Why reading stopped before the end of the file, if it did.
    pub stopped: Option<String>,
}

impl BatchLog {
    /// A log at `path`, not opened yet.
    pub fn new(path: PathBuf, sync: bool) -> Self {
        Self {
            path,
            file: None,
            records: Vec::new(),
            generation: 0,
            sync,
        }
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
        |source| PersistError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Opens the log (creating it), reads every whole record and cuts off a torn tail. A file
    /// that is not a batch log, or that continues another generation of the state file than
    /// `generation`, is replaced by an empty one (its records are reported as `stopped`).
    pub fn recover(&mut self, generation: u64) -> Result<Recovered, PersistError> {
        self.generation = generation;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(self.io())?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(self.io())?;
        let mut found = Recovered::default();
        self.records.clear();
        let mut good = HEADER_LEN;
        let logged = bytes
            .get(MAGIC.len()..HEADER_LEN)
            .map(|g| u64::from_le_bytes(g.try_into().expect("8 bytes")));
        if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
            if !bytes.is_empty() {
                found.stopped = Some("not a batch log (bad header)".into());
            }
            bytes.clear();
            good = 0;
        } else if logged != Some(generation) {
            found.stopped = Some(format!(
                "the log continues state file generation {}, not {generation} (a snapshot replaced it)",
                logged.unwrap_or_default()
            ));
            bytes.clear();
            good = 0;
        } else {
            let mut at = HEADER_LEN;
            while at < bytes.len() {
                match read_record(&bytes[at..]) {
                    Ok((batch, used)) => {
                        at += used;
                        good = at;
                        self.records.push((batch.upto, at as u64));
                        found.batches.push(batch);
                    }
                    Err(Torn::Short | Torn::Crc) => break,
                    Err(Torn::Undecodable(reason)) => {
                        found.stopped = Some(reason);
                        break;
                    }
                }
            }
        }
        found.torn_bytes = (bytes.len() - good) as u64;
        if good == 0 {
            file.set_len(0).map_err(self.io())?;
            file.write_all(&self.header()).map_err(self.io())?;
            file.sync_all().map_err(self.io())?;
        } else if found.torn_bytes > 0 {
            file.set_len(good as u64).map_err(self.io())?;
            file.sync_all().map_err(self.io())?;
        }
        self.file = Some(file);
        Ok(found)
    }

    /// Appends `batch` and, unless syncing is off, waits until it is on disk. On an error the
    /// file is cut back to the last whole record (best effort), so that later appends are
    /// still readable.
    pub fn append(&mut self, batch: &ChangeBatch) -> Result<(), PersistError> {
        if self.file.is_none() {
            self.recover(self.generation)?;
        }
        let payload = pb::ChangeBatch::from(batch).encode_to_vec();
        let mut record = Vec::with_capacity(RECORD_HEADER + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        let end = self.end() + record.len() as u64;
        let file = self.file.as_mut().expect("opened above");
        let written = file
            .write_all(&record)
            .and_then(|()| if self.sync { file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            let _ = file.set_len(end - record.len() as u64);
            return Err(self.io()(e));
        }
        self.records.push((batch.upto, end));
        Ok(())
    }

    /// The end of the last whole record.
    fn end(&self) -> u64 {
        self.records
            .last()
            .map_or(HEADER_LEN as u64, |&(_, end)| end)
    }

    /// Magic and generation.
    fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0; HEADER_LEN];
        h[..MAGIC.len()].copy_from_slice(MAGIC);
        h[MAGIC.len()..].copy_from_slice(&self.generation.to_le_bytes());
        h
    }

    /// The generation of the state file the log continues.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every record held, read back from the file (for a compaction).
    pub fn batches(&mut self) -> Result<Vec<ChangeBatch>, PersistError> {
        let (start, end) = (HEADER_LEN as u64, self.end());
        let Some(file) = self.file.as_mut() else {
            return Ok(Vec::new());
        };
        let mut bytes = vec![0; (end - start) as usize];
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(self.io())?;
        let mut batches = Vec::with_capacity(self.records.len());
        let mut at = 0;
        while at < bytes.len() {
            match read_record(&bytes[at..]) {
                Ok((batch, used)) => {
                    at += used;
                    batches.push(batch);
                }
                // Written and synced by this process: a failure is a disk fault.
                Err(_) => {
                    return Err(self.io()(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("record at offset {} unreadable", start + at as u64),
                    )));
                }
            }
        }
        Ok(batches)
    }

    /// Bytes of the records held (the header not counted).
    pub fn len_bytes(&self) -> u64 {
        self.end() - HEADER_LEN as u64
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Drops the records a state file at `serial` holds (`upto <= serial`); keeps the rest,
    /// rewritten atomically into a new file when there are any.
    pub fn drop_through(&mut self, serial: Serial) -> Result<(), PersistError> {
        let keep_from = self.records.partition_point(|&(upto, _)| upto <= serial);
        if keep_from == 0 {
            return Ok(());
        }
        if keep_from == self.records.len() {
            return self.clear(self.generation);
        }
        let start = self.records[keep_from - 1].1;
        let end = self.end();
        let file = self.file.as_mut().expect("records come from an open file");
        let mut tail = vec![0; (end - start) as usize];
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut tail))
            .map_err(self.io())?;
        let mut bytes = self.header().to_vec();
        bytes.extend_from_slice(&tail);
        write_atomic(&self.path, &bytes).map_err(self.io())?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(self.io())?;
        self.file = Some(file);
        let shift = start - HEADER_LEN as u64;
        self.records.drain(..keep_from);
        for (_, end) in &mut self.records {
            *end -= shift;
        }
        Ok(())
    }

    /// Drops every record and continues state file `generation` from now on (the state file
    /// holds every record, or a snapshot replaced them).
    pub fn clear(&mut self, generation: u64) -> Result<(), PersistError> {
        self.records.clear();
        self.generation = generation;
        let header = self.header();
        match &mut self.file {
            Some(file) => {
                let done = file
                    .set_len(0)
                    .and_then(|()| file.write_all(&header))
                    .and_then(|()| file.sync_data());
                done.map_err(|source| PersistError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
            None => match fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.io()(e)),
                _ => Ok(()),
            },
        }
    }
}

/// Why a record could not be read.
enum Torn {
    /// The file ends inside the record.
    Short,
    /// The payload does not match its CRC.
    Crc,
    /// A whole record, with a good CRC, that is not a batch this version reads.
    Undecodable(String),
}

/// One record from the start of `bytes`: the batch and the bytes it took.
fn read_record(bytes: &[u8]) -> Result<(ChangeBatch, usize), Torn> {
    let header: &[u8; RECORD_HEADER] = bytes
        .get(..RECORD_HEADER)
        .and_then(|h| h.try_into().ok())
        .ok_or(Torn::Short)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len > MAX_MESSAGE_SIZE {
        // Garbage where a length should be: a torn header.
        return Err(Torn::Crc);
    }
    let payload = bytes
        .get(RECORD_HEADER..RECORD_HEADER + len)
        .ok_or(Torn::Short)?;
    if crc32fast::hash(payload) != crc {
        return Err(Torn::Crc);
    }
    let batch = pb::ChangeBatch::decode(payload)
        .map_err(|e| Torn::Undecodable(format!("record not a ChangeBatch: {e}")))
        .and_then(|b| {
            ChangeBatch::try_from(b).map_err(|e| Torn::Undecodable(format!("bad batch: {e}")))
        })?;
    Ok((batch, RECORD_HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::tests::domain;
    use orrery_proto::Change;

    fn batch(after: Serial, upto: Serial, name: &str) -> ChangeBatch {
        ChangeBatch {
            after,
            upto,
            changes: vec![
                Change::Domain(domain(name, "tld", &[])),
                Change::DomainRemoved(orrery_proto::Name::from_ascii("gone.tld").unwrap()),
            ],
        }
    }

    fn uptos(r: &Recovered) -> Vec<Serial> {
        r.batches.iter().map(|b| b.upto).collect()
    }

    #[test]
    fn records_survive_reopening_and_drop_through_a_serial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.log");
        let mut log = BatchLog::new(path.clone(), true);
        assert!(log.recover(3).unwrap().batches.is_empty());
        for i in 0..4 {
            log.append(&batch(i, i + 1, &format!("d{i}.tld"))).unwrap();
        }
        let mut again = BatchLog::new(path.clone(), true);
        let found = again.recover(3).unwrap();
        assert_eq!(uptos(&found), [1, 2, 3, 4]);
        assert_eq!(found.batches[2], batch(2, 3, "d2.tld"));
        assert_eq!((found.torn_bytes, found.stopped), (0, None));

        // The state file now holds serial 2: records 3 and 4 stay, and appends follow them.
        again.drop_through(2).unwrap();
        again.append(&batch(4, 5, "d4.tld")).unwrap();
        let found = BatchLog::new(path.clone(), true).recover(3).unwrap();
        assert_eq!(uptos(&found), [3, 4, 5]);
        again.drop_through(5).unwrap();
        assert!(again.is_empty());
        again.append(&batch(5, 6, "d5.tld")).unwrap();
        let found = BatchLog::new(path, true).recover(3).unwrap();
        assert_eq!(uptos(&found), [6]);
    }

    #[test]
    fn a_torn_tail_is_ignored_and_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.log");
        let mut log = BatchLog::new(path.clone(), false);
        log.recover(3).unwrap();
        log.append(&batch(0, 1, "a.tld")).unwrap();
        log.append(&batch(1, 2, "b.tld")).unwrap();
        let whole = fs::read(&path).unwrap();
        let first_end = log.records[0].1 as usize;
        // Every cut inside the second record (a crash mid-append) leaves the first.
        for cut in [first_end + 1, first_end + 7, first_end + 9, whole.len() - 1] {
            fs::write(&path, &whole[..cut]).unwrap();
            let mut torn = BatchLog::new(path.clone(), false);
            let found = torn.recover(3).unwrap();
            assert_eq!(uptos(&found), [1], "cut at {cut}");
            assert_eq!(found.torn_bytes as usize, cut - first_end);
            assert_eq!(fs::metadata(&path).unwrap().len() as usize, first_end);
            // The next append is readable after the cut.
            torn.append(&batch(1, 2, "c.tld")).unwrap();
            let found = BatchLog::new(path.clone(), false).recover(3).unwrap();
            assert_eq!(uptos(&found), [1, 2]);
        }
        // A flipped bit in the payload: the CRC catches it.
        let mut flipped = whole.clone();
        *flipped.last_mut().unwrap() ^= 1;
        fs::write(&path, &flipped).unwrap();
        assert_eq!(
            uptos(&BatchLog::new(path.clone(), false).recover(3).unwrap()),
            [1]
        );
        // Not a log at all: started afresh.
        fs::write(&path, b"something else entirely").unwrap();
        let found = BatchLog::new(path.clone(), false).recover(3).unwrap();
        assert!(found.batches.is_empty() && found.stopped.is_some());
        assert_eq!(fs::read(&path).unwrap(), log.header());
        // Another generation's log: not replayed, started afresh at the generation asked.
        log.append(&batch(0, 1, "a.tld")).unwrap();
        let found = BatchLog::new(path.clone(), false).recover(4).unwrap();
        assert!(found.batches.is_empty(), "{found:?}");
        assert!(found.stopped.unwrap().contains("generation 3, not 4"));
        let found = BatchLog::new(path.clone(), false).recover(4).unwrap();
        assert_eq!((found.batches.len(), found.stopped), (0, None));
    }
}
