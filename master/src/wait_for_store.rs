//! Waiting for the store: a master started while its database is down (or restarting with
//! it) retries with capped exponential backoff and jitter, logging each attempt with its error
//! and the next delay, until the store answers or the master is stopped. It never exits for a
//! store outage; once running, the follower keeps retrying in the same way (follow_journal.rs)
//! while the cache goes on serving.
//!
//! Only errors no retry can fix end the wait: an unsupported store URL.

use std::future::Future;
use std::time::Duration;

use orrery_proto::backoff::{Backoff, Retry};
use orrery_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

/// First pause after a failed attempt.
pub const FIRST_PAUSE: Duration = Duration::from_millis(250);
/// Longest pause: once the store is back, the master is ready within this.
pub const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Why the wait ended without a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    #[error("store: {0}")]
    Fatal(StoreError),
    #[error("stopped while waiting for the store")]
    Stopped,
}

/// True for errors that a later attempt may not repeat (the database is down, restarting,
/// refusing connections, out of connections, or a migration lost its connection).
fn worth_retrying(e: &StoreError) -> bool {
    !matches!(e, StoreError::BadUrl(_))
}

/// Runs `attempt` until it succeeds, pausing with backoff between failures; `what` names it in
/// the log ("opening the store").
pub async fn retry<T, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Retry::new(Backoff::capped(FIRST_PAUSE, MAX_PAUSE));
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return Err(WaitError::Stopped),
            r = attempt() => r,
        };
        match result {
            Ok(v) => {
                if backoff.failures() > 0 {
                    tracing::info!(
                        attempts = backoff.failures() + 1,
                        "{what}: the store answers"
                    );
                }
                return Ok(v);
            }
            Err(e) if !worth_retrying(&e) => return Err(WaitError::Fatal(e)),
            Err(e) => {
                let pause = backoff.next_pause();
                tracing::warn!(
                    attempt = backoff.failures(),
                    error = %e,
                    retry_in_ms = pause.as_millis() as u64,
                    "{what}: store unavailable; waiting for it"
                );
                tokio::select! {
                    () = shutdown.cancelled() => return Err(WaitError::Stopped),
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Opens the store at `url` (connecting and migrating its schema), waiting for it as long as
/// it takes.
pub async fn open(url: &str, shutdown: &CancellationToken) -> Result<Store, WaitError> {
    retry("opening the store", shutdown, || Store::open(url)).await
}

/// Opens a hot-standby replica for reading (no migration: its schema must already be the one
/// this build needs), waiting for it as long as it takes; a replica that has not replayed the
/// primary's migration yet is waited for too.
pub async fn open_read_only(url: &str, shutdown: &CancellationToken) -> Result<Store, WaitError> {
    retry("opening the read replica", shutdown, || {
        Store::open_read_only(url)
    })
    .await
}
