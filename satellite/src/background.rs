//! Work that must never delay a query, on threads the UDP workers always preempt.
//!
//! Applying a batch, compacting the state file, building the version a master snapshot
//! replaces, and freeing the objects and old versions those leave behind are all CPU work of a
//! few hundred milliseconds at a million delegations. On a small box (2 cores, with the master
//! and its database beside the satellite) such work at the normal priority shares a core with
//! a UDP worker for whole scheduler slices, which is what a query's p99 sees. Here it runs on
//! a thread of its own under `SCHED_IDLE` (nice 19 where that is refused): the kernel runs it
//! only on a core nothing else wants, preempts it the moment a worker wakes, and places a
//! waking worker on a core that runs only such threads. It still progresses under saturation
//! (an idle-class thread keeps a small share of the CPU), only more slowly.
//!
//! A thread per job rather than tokio's blocking pool: lowering a thread's priority cannot be
//! undone without privileges, so pool threads that later run other work must stay normal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a background job gave no result.
#[derive(Debug, thiserror::Error)]
pub enum BackgroundError {
    #[error("cannot start the {name} thread: {source}")]
    Spawn {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the {name} thread panicked")]
    Panicked { name: &'static str },
}

/// Whether jobs run at low priority; on by default. Benchmarks turn it off to compare.
static LOW_PRIORITY: AtomicBool = AtomicBool::new(true);

/// Turns low priority on or off for jobs started from now on (benchmarks: before/after in
/// one process).
pub fn set_low_priority(on: bool) {
    LOW_PRIORITY.store(on, Ordering::Relaxed);
}

/// Runs `work` on a new low-priority thread named `name` and waits for its result without
/// blocking the runtime. Dropping the future leaves the work running to its end (as
/// `spawn_blocking` does).
pub async fn run<T: Send + 'static>(
    name: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BackgroundError> {
    let (done, result) = tokio::sync::oneshot::channel();
    spawn(name, move || {
        // The receiver may be gone (the task was cancelled): the work is done all the same.
        let _ = done.send(work());
    })?;
    // A panic drops the sender unsent (the panic hook has logged it).
    result.await.map_err(|_| BackgroundError::Panicked { name })
}

/// Starts `work` on a new low-priority thread named `name`, not waiting for it.
pub fn spawn(
    name: &'static str,
    work: impl FnOnce() + Send + 'static,
) -> Result<(), BackgroundError> {
    let low = LOW_PRIORITY.load(Ordering::Relaxed);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if low {
                lower_this_thread();
            }
            work()
        })
        .map(drop)
        .map_err(|source| BackgroundError::Spawn { name, source })
}

/// How long [`drop_when_unused`] waits for the readers of an old version to let it go. Queries
/// hold a version for microseconds; a TCP or Whois connection in the middle of a long answer
/// may hold it longer, and then frees it itself.
const READERS_GRACE: Duration = Duration::from_millis(200);

/// Drops `old` here once no reader holds it any more, so that the memory a batch or a snapshot
/// replaced is freed on this (background) thread rather than by the query that happened to
/// release it last — freeing thousands of shards inside a query is a p99 spike. Gives up after
/// [`READERS_GRACE`] and leaves the last reader to free it. Returns whether it freed it here.
pub fn drop_when_unused<T>(old: Arc<T>) -> bool {
    let started = Instant::now();
    let mut old = old;
    loop {
        match Arc::try_unwrap(old) {
            Ok(value) => {
                drop(value);
                return true;
            }
            Err(shared) if started.elapsed() < READERS_GRACE => {
                old = shared;
                std::thread::sleep(Duration::from_micros(100));
            }
            Err(_) => return false,
        }
    }
}

/// Puts the calling thread in the idle scheduling class, or at nice 19 if that is refused.
/// Neither can be undone without privileges (hence a thread per job). Never fails: at worst
/// the work runs at the normal priority, as before.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: both calls take plain values (a zeroed `sched_param` is what SCHED_IDLE wants)
    // and, with pid/tid 0 or this thread's id, change only the calling thread.
    unsafe {
        let param: libc::sched_param = std::mem::zeroed();
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 {
            return;
        }
        let tid = libc::gettid() as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, 19) != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "cannot lower a background thread's priority"
            );
        }
    }
}

/// The calling thread's scheduling policy (Linux), for tests.
#[cfg(all(test, target_os = "linux"))]
fn this_thread_policy() -> libc::c_int {
    // SAFETY: no arguments besides "this thread".
    unsafe { libc::sched_getscheduler(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_the_idle_class_and_return_their_result() {
        let policy = run("bg-test", this_thread_policy).await.unwrap();
        assert_eq!(policy, libc::SCHED_IDLE);
        // The caller's thread is untouched.
        assert_eq!(this_thread_policy(), libc::SCHED_OTHER);
        let err = run("bg-panic", || -> u32 { panic!("on purpose") })
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            BackgroundError::Panicked { name: "bg-panic" }
        ));
    }

    #[test]
    fn an_old_version_is_freed_here_once_its_readers_let_go() {
        let old = Arc::new(vec![1u8; 16]);
        let reader = Arc::clone(&old);
        let releasing = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(reader);
        });
        assert!(drop_when_unused(old), "freed here after the reader let go");
        releasing.join().unwrap();
        // A reader that never lets go within the grace frees it itself.
        let old = Arc::new(0u8);
        let kept = Arc::clone(&old);
        assert!(!drop_when_unused(old));
        assert_eq!(Arc::strong_count(&kept), 1);
    }
}
