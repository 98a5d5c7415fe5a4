//! Resuming a satellite from the store's journal when its serial is older than the cache's
//! window: typically after a master restart, whose window starts empty at the serial it
//! loaded, so that a satellite a few changes behind would otherwise download everything.
//!
//! ```text
//!  Boot / Follow(from) ─▶ Cache::since(from) ──in the window──▶ batches from the cache
//!                                │ before the window
//!                                ▼
//!                       Resume::gap(from) ── one read per serial, shared ──▶ Store::changes_since(from)
//!                                │  batch (from, H]: every object it names at its state at H
//!                                │  journal pruned past `from`, too far behind, store down
//!                                ▼
//!                          SnapshotRequired
//! ```
//!
//! The batch's objects are at their state at `H`, like every journal batch; the change stream
//! then goes on from `H` with the cache's window (which may overlap it: re-sending a whole
//! object is harmless). Satellites at the same serial share one read (a boot and the change
//! stream that follows it, or many satellites restarted together), so the store's load grows
//! with the number of distinct serials asked for, not with the number of satellites. A result
//! is kept [`KEEP`] for the calls that follow it, then dropped; a failed read (the store down
//! or slower than [`READ_TIMEOUT`]) only briefly, so that the next satellite tries again.
//!
//! Serials are numbered without gaps (the store's guarantee), so the journal still holds the
//! gap after `from` exactly when its first row after `from` is `from + 1`. Pruning deletes the
//! oldest rows, so checking that after the read proves the read saw every row.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orrery_proto::Serial;
use orrery_proto::link::pb;
use orrery_store::{ChangesSince, Store, StoreError};
use tokio::sync::OnceCell;

/// How long a finished read is kept for the satellites that ask for the same serial.
pub const KEEP: Duration = Duration::from_secs(30);
/// How long a failed read (store down, too slow) is kept: the next satellite tries again.
const KEEP_FAILED: Duration = Duration::from_secs(1);
/// Longest wait for the store: a boot waits for this read, and must answer well within the
/// satellite's call timeout even while the store is down (the satellite then takes a
/// snapshot from the cache, which does not need the store).
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// What the journal holds after a serial.
#[derive(Clone, Debug)]
pub enum Gap {
    /// Every change after the serial, as one batch.
    Batch(Arc<pb::ChangeBatch>),
    /// The journal cannot serve it: the satellite must take a snapshot. The reason is for
    /// the satellite's log.
    Unavailable(String),
}

#[derive(Debug)]
struct Read {
    started: Instant,
    /// The answer and how long to keep it.
    result: Arc<OnceCell<(Gap, Duration)>>,
}

/// Serves serials older than the window from the store's journal.
#[derive(Debug)]
pub struct Resume {
    store: Store,
    max_entries: usize,
    reads: Mutex<HashMap<Serial, Read>>,
    calls: AtomicU64,
    /// Set while the master signs a zone: the journal holds no DNSSEC records, so a batch read
    /// from it would give a satellite DS changes without their RRSIGs (`signing.rs`).
    signing: Arc<AtomicBool>,
}

impl Resume {
    /// Reads at most `max_entries` journal rows per gap (the follower's batch limit).
    pub fn new(store: Store, max_entries: usize) -> Self {
        Self {
            store,
            max_entries,
            reads: Mutex::default(),
            calls: AtomicU64::new(0),
            signing: Arc::default(),
        }
    }

    /// The flag the journal follower sets while some zone is signed: satellites older than
    /// the window then take a snapshot instead of a journal batch without signatures.
    pub fn signing_flag(&self) -> Arc<AtomicBool> {
        self.signing.clone()
    }

    /// Store reads made so far (each one `changes_since` and a one-row journal check).
    pub fn store_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The changes after `from`, read once for every caller asking for `from` meanwhile.
    pub async fn gap(&self, from: Serial) -> Gap {
        if from <= 0 {
            return Gap::Unavailable("a satellite without a state takes a snapshot".into());
        }
        if self.signing.load(Ordering::Relaxed) {
            return Gap::Unavailable(
                "signed zones: the journal holds no signatures, a snapshot does".into(),
            );
        }
        let cell = {
            let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
            reads.retain(|_, r| {
                r.result
                    .get()
                    .is_none_or(|(_, keep)| r.started.elapsed() < *keep)
            });
            Arc::clone(
                &reads
                    .entry(from)
                    .or_insert_with(|| Read {
                        started: Instant::now(),
                        result: Arc::default(),
                    })
                    .result,
            )
        };
        cell.get_or_init(|| self.read(from)).await.0.clone()
    }

    async fn read(&self, from: Serial) -> (Gap, Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let failed = |reason: String| {
            tracing::warn!(from, reason = %reason, "cannot read the journal to resume a satellite; it takes a snapshot");
            (Gap::Unavailable(reason), KEEP_FAILED)
        };
        let (gap, keep) = match tokio::time::timeout(READ_TIMEOUT, self.try_read(from)).await {
            // An empty gap (the satellite is at the head) is not kept: the next commit makes
            // it stale at once, and a stream re-reading it would see no progress.
            Ok(Ok(Gap::Batch(b))) if b.upto <= from => (Gap::Batch(b), Duration::ZERO),
            Ok(Ok(gap)) => (gap, KEEP),
            Ok(Err(e)) => failed(format!("the store could not be read: {e}")),
            Err(_) => failed(format!("the store did not answer within {READ_TIMEOUT:?}")),
        };
        match &gap {
            Gap::Batch(b) => tracing::info!(
                from,
                upto = b.upto,
                changes = b.changes.len(),
                ms = started.elapsed().as_millis() as u64,
                "resuming from the store's journal"
            ),
            Gap::Unavailable(reason) if keep != KEEP_FAILED => {
                tracing::info!(from, reason = %reason, "cannot resume from the journal");
            }
            Gap::Unavailable(_) => {}
        }
        (gap, keep)
    }

    async fn try_read(&self, from: Serial) -> Result<Gap, StoreError> {
        // A commit landing between the reads below makes them disagree (nothing after `from`,
        // yet a head past it): read again rather than call the satellite ahead of the store.
        for _ in 0..3 {
            if let Some(gap) = self.try_read_once(from).await? {
                return Ok(gap);
            }
        }
        Ok(Gap::Unavailable(format!(
            "the journal after serial {from} kept moving while it was read"
        )))
    }

    /// One attempt; `None` when a commit raced the reads.
    async fn try_read_once(&self, from: Serial) -> Result<Option<Gap>, StoreError> {
        let batch = match self.store.changes_since(from, self.max_entries).await? {
            ChangesSince::Batch(b) => b,
            ChangesSince::TooFarBehind { pending } => {
                return Ok(Some(Gap::Unavailable(format!(
                    "more than {} journal rows after serial {from} ({pending} read)",
                    self.max_entries
                ))));
            }
        };
        // The journal holds no signatures: a gap touching a zone with a DNSSEC policy (signed,
        // or going unsigned) would give the satellite DS changes without their RRSIGs or keep
        // sets that must go. Only a snapshot (made by the signer) serves it. This also holds
        // while the master is still loading, before its signer knows which zones are signed.
        if let Some((apex, _)) = batch.dnssec.iter().find(|(_, d)| d.is_some()) {
            return Ok(Some(Gap::Unavailable(format!(
                "the changes after serial {from} touch the DNSSEC zone {apex}: the journal holds no signatures"
            ))));
        }
        let first = self.store.journal_since(from, 1).await?;
        match first.first() {
            Some(row) if row.serial == from + 1 => {}
            Some(row) => {
                return Ok(Some(Gap::Unavailable(format!(
                    "the journal no longer holds serial {} (it starts at {})",
                    from + 1,
                    row.serial
                ))));
            }
            // Nothing after `from`: the satellite is up to date if `from` is the head (the
            // usual case at a master restart), ahead of the store otherwise (a store restored
            // from an older backup: only a snapshot brings it back in line).
            None => {
                let head = self.store.head().await?;
                if from > head {
                    return Ok(Some(Gap::Unavailable(format!(
                        "serial {from} is ahead of the store's journal head {head}"
                    ))));
                }
                if from < head {
                    return Ok(None);
                }
            }
        }
        // Unreadable rows carry no change (see `JournalBatch`): the satellite keeps the version
        // it has, as the master's cache does.
        Ok(Some(Gap::Batch(Arc::new(pb::ChangeBatch::from(
            &batch.batch,
        )))))
    }
}
