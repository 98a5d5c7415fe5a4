//! Receiving a master snapshot into the state file: each checked chunk is written into the
//! file as it arrives ([`SnapshotFile`]) and kept for the build of the served tables; a
//! transfer cut in the middle resumes from the next missing chunk, on the same or another
//! master.
//!
//! The protocol and its checks are [`orrery_proto::link::client::fetch_snapshot_into`]'s; the
//! state file is its sink. When the last chunk is in, the file is finished (synced, renamed,
//! the batch log restarted at its generation) before anything is served from the snapshot.

use std::time::Instant;

use orrery_proto::link::client::{LinkClient, SnapshotProgress, fetch_snapshot_into};
use orrery_proto::{Change, Serial};

use super::LinkError;
use super::persist::{SnapshotFile, StateFiles};

/// A transfer in progress, kept across broken streams.
pub type Transfer = SnapshotProgress<SnapshotFile>;

/// Fetches the master's snapshot into the state file and returns its serial and objects (for
/// [`crate::Served::from_objects`]). On a broken stream the error is returned and `progress`
/// keeps what arrived; calling again resumes, or starts afresh if the master no longer holds
/// that snapshot.
pub async fn fetch(
    client: &mut LinkClient,
    progress: &mut Option<Transfer>,
    files: &StateFiles,
) -> Result<(Serial, Vec<Change>), LinkError> {
    let fetched = fetch_snapshot_into(
        client,
        progress,
        || Ok::<_, LinkError>(files.snapshot_file()?),
        |file, objects| {
            // Buffered writes into the page cache; the one sync is at the end.
            for object in objects {
                file.push(object)?;
            }
            Ok(())
        },
    )
    .await?;
    let (serial, file) = (fetched.serial, fetched.sink);
    let written = Instant::now();
    let generation = tokio::task::spawn_blocking(move || file.finish(serial)).await??;
    tracing::info!(
        serial,
        generation,
        objects = fetched.objects.len(),
        chunks = fetched.chunks,
        first_chunk_ms = fetched.first_chunk.as_millis() as u64,
        transfer_ms = fetched.transfer.as_millis() as u64,
        sync_ms = written.elapsed().as_millis() as u64,
        "snapshot received and saved"
    );
    Ok((serial, fetched.objects))
}
