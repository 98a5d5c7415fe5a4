//! Measures one compaction of a satellite's state file (bench/satellite-restart.sh): what a
//! state-file write costs in memory now that the satellite keeps no model copy.
//!
//!   state_compact STATE CHANGES
//!
//! Logs one batch that updates the first CHANGES domains of STATE (a state file, e.g. written
//! by `orrery-generator --satellite-snapshot`; it is rewritten in place), then compacts: the old
//! file and the log streamed into a new file. Prints the process's resident memory before the
//! compaction and its peak during it (the peak is reset first, `/proc/self/clear_refs`).

use std::path::PathBuf;
use std::time::Instant;

use orrery_proto::state_file;
use orrery_proto::{Change, ChangeBatch, Timestamp};
use orrery_satellite::link::persist::StateFiles;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(state), Some(changes)) = (args.next(), args.next()) else {
        return Err("usage: state_compact STATE CHANGES".into());
    };
    let state = PathBuf::from(state);
    let changes: usize = changes.parse()?;
    let header = state_file::open(&state)?.header();
    let files = StateFiles::new(state.clone(), true);
    files.recover_batches(header.generation)?;
    let mut batch = ChangeBatch {
        after: header.serial,
        upto: header.serial + 1,
        changes: Vec::with_capacity(changes),
    };
    for object in state_file::open(&state)? {
        if batch.changes.len() == changes {
            break;
        }
        if let Change::Domain(mut d) = object? {
            d.updated = Timestamp(d.updated.0 + 1);
            batch.changes.push(Change::Domain(d));
        }
    }
    let logged = batch.changes.len();
    files.log_batch(&batch)?;
    drop(batch);
    let before = status_kib("VmRSS");
    // Resets VmHWM to the current RSS (Linux 4.0+), so the peak below is the compaction's.
    std::fs::write("/proc/self/clear_refs", "5")?;
    let started = Instant::now();
    let serial = files.compact()?;
    let ms = started.elapsed().as_millis();
    let peak = status_kib("VmHWM");
    println!(
        "compaction: {logged} changes merged into {} ({} MiB) up to serial {serial:?} in {ms} ms; \
         RSS before {} MiB, peak during {} MiB (+{} MiB)",
        state.display(),
        std::fs::metadata(&state)?.len() >> 20,
        before >> 10,
        peak >> 10,
        peak.saturating_sub(before) >> 10
    );
    Ok(())
}
