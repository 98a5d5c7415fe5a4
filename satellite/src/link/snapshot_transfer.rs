//! Receiving a master snapshot: each chunk is checked, written into the state file as it
//! arrives ([`SnapshotFile`]) and kept for the build of the served tables; a transfer cut in
//! the middle resumes from the next missing chunk, on the same or another master.
//!
//! This is [`orrery_proto::link::client::fetch_snapshot`]'s protocol, with the state file
//! written on the way instead of from a whole copy afterwards: when the last chunk is in, the
//! file is finished (synced, renamed, the batch log restarted at its generation) before
//! anything is served from the snapshot.

use std::time::Instant;

use orrery_proto::link::client::LinkClient;
use orrery_proto::link::convert::Chunk;
use orrery_proto::link::pb;
use orrery_proto::{Change, Serial};

use super::LinkError;
use super::persist::{SnapshotFile, StateFiles};

/// A transfer in progress, kept across broken streams.
#[derive(Debug)]
pub struct Transfer {
    serial: Serial,
    count: u32,
    total_objects: u64,
    /// Chunks received so far: `objects` (and the file) hold chunks `0..next_chunk`.
    next_chunk: u32,
    objects: Vec<Change>,
    file: SnapshotFile,
}

/// Fetches the master's snapshot into the state file and returns its serial and objects (for
/// [`crate::Served::from_objects`]). On a broken stream the error is returned and `progress`
/// keeps what arrived; calling again resumes, or starts afresh if the master no longer holds
/// that snapshot.
pub async fn fetch(
    client: &mut LinkClient,
    progress: &mut Option<Transfer>,
    files: &StateFiles,
) -> Result<(Serial, Vec<Change>), LinkError> {
    let asked = Instant::now();
    let request = match progress {
        Some(p) => pb::SnapshotRequest {
            serial: p.serial,
            start_chunk: p.next_chunk,
        },
        None => pb::SnapshotRequest::default(),
    };
    let mut stream = match client.snapshot(request).await {
        Ok(s) => s.into_inner(),
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            tracing::info!(reason = %status.message(), "snapshot moved on; starting again");
            *progress = None;
            client
                .snapshot(pb::SnapshotRequest::default())
                .await?
                .into_inner()
        }
        Err(status) => return Err(status.into()),
    };
    let mut first_chunk = None;
    while let Some(msg) = stream.message().await? {
        first_chunk.get_or_insert_with(Instant::now);
        let chunk = Chunk::try_from(msg)?;
        let p = match progress {
            Some(p) => p,
            None => progress.insert(Transfer {
                serial: chunk.serial,
                count: chunk.count,
                total_objects: chunk.total_objects,
                next_chunk: 0,
                // Sized as announced (bounded: the announcement is checked only at the end).
                objects: Vec::with_capacity(chunk.total_objects.min(1 << 22) as usize),
                file: files.snapshot_file()?,
            }),
        };
        if chunk.serial != p.serial || chunk.count != p.count || chunk.index != p.next_chunk {
            let got = format!(
                "chunk {}/{} of serial {}, expected {}/{} of {}",
                chunk.index, chunk.count, chunk.serial, p.next_chunk, p.count, p.serial
            );
            *progress = None;
            return Err(LinkError::Protocol(got));
        }
        if p.objects.len() as u64 + chunk.objects.len() as u64 > p.total_objects {
            let got = format!(
                "snapshot {} holds more than the {} objects it announced",
                p.serial, p.total_objects
            );
            *progress = None;
            return Err(LinkError::Protocol(got));
        }
        // Buffered writes into the page cache; the one sync is at the end.
        for object in chunk.objects {
            p.file.push(&object)?;
            p.objects.push(object);
        }
        p.next_chunk += 1;
        if p.next_chunk == p.count {
            break;
        }
    }
    match progress.take() {
        Some(p) if p.next_chunk == p.count => {
            if p.objects.len() as u64 != p.total_objects {
                return Err(LinkError::Protocol(format!(
                    "snapshot {} announced {} objects, held {}",
                    p.serial,
                    p.total_objects,
                    p.objects.len()
                )));
            }
            let first = first_chunk.unwrap_or(asked);
            let (serial, file) = (p.serial, p.file);
            let written = Instant::now();
            let generation = tokio::task::spawn_blocking(move || file.finish(serial)).await??;
            tracing::info!(
                serial,
                generation,
                objects = p.objects.len(),
                chunks = p.count,
                first_chunk_ms = (first - asked).as_millis() as u64,
                transfer_ms = (written - first).as_millis() as u64,
                sync_ms = written.elapsed().as_millis() as u64,
                "snapshot received and saved"
            );
            Ok((serial, p.objects))
        }
        unfinished => {
            *progress = unfinished;
            Err(LinkError::Protocol("snapshot stream ended early".into()))
        }
    }
}
