//! The accept loop every TCP edge runs on each of its listeners.
//!
//! An accept error is either about one connection, which went away before we took it (no
//! pause: the next one may be fine), or about the process or the system (out of descriptors,
//! of buffers): then the loop pauses briefly, so that it does not spin at full speed while the
//! condition lasts, and logs at most once a second with a count of what it did not log.
//! On cancellation the loop stops accepting and waits until every connection it spawned has
//! ended (each connection watches the same token, so that wait is short).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after an accept error that is not the client's (EMFILE, ENFILE, ENOBUFS…).
const ACCEPT_PAUSE: Duration = Duration::from_millis(10);
/// At most one accept error logged per this long.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(1);

/// Accepts on `listener` until `cancel`, handing each connection to `admit`, which either
/// refuses it (returns `None`, having written whatever refusal its protocol has) or returns
/// the task that serves it, holding whatever permits it took. `what` names the edge in logs.
pub async fn accept_loop<F>(
    listener: TcpListener,
    what: &'static str,
    cancel: CancellationToken,
    mut admit: impl FnMut(TcpStream, SocketAddr) -> Option<F>,
) where
    F: Future<Output = ()> + Send + 'static,
{
    let connections = TaskTracker::new();
    let mut errors = AcceptErrors::new(what);
    loop {
        let accepted = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                if let Some(serve) = admit(stream, peer) {
                    connections.spawn(serve);
                }
            }
            Err(e) if is_client_error(&e) => {}
            Err(e) => {
                errors.note(&e);
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
    connections.close();
    connections.wait().await;
}

/// Accept errors about one connection only (it went away before we took it): no pause.
fn is_client_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Logs accept errors at most once per [`ACCEPT_LOG_EVERY`], counting the ones not logged.
struct AcceptErrors {
    /// The log message: which edge.
    what: &'static str,
    last: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether this error was logged (not suppressed).
    fn note(&mut self, e: &io::Error) -> bool {
        let now = Instant::now();
        if self.last.is_some_and(|t| now < t + ACCEPT_LOG_EVERY) {
            self.suppressed += 1;
            return false;
        }
        tracing::warn!(error = %e, suppressed = self.suppressed, "{}", self.what);
        self.last = Some(now);
        self.suppressed = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn client_errors_are_told_apart() {
        assert!(is_client_error(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        assert!(!is_client_error(&io::Error::other("EMFILE")));
    }

    #[test]
    fn a_burst_of_errors_is_logged_once_a_second() {
        let mut errors = AcceptErrors::new("test accept");
        let e = io::Error::other("too many open files");
        assert!(errors.note(&e));
        assert!(!errors.note(&e));
        assert!(!errors.note(&e));
        assert_eq!(errors.suppressed, 2);
        errors.last = Some(Instant::now() - ACCEPT_LOG_EVERY);
        assert!(errors.note(&e));
        assert_eq!(errors.suppressed, 0);
    }

    #[tokio::test]
    async fn admits_serves_refuses_and_waits_for_connections_at_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let served = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicUsize::new(0));
        let (served2, seen2, cancel2) = (Arc::clone(&served), Arc::clone(&seen), cancel.clone());
        let accepting = tokio::spawn(accept_loop(
            listener,
            "test",
            cancel.clone(),
            move |stream, _| {
                // Every other connection is refused.
                if seen2.fetch_add(1, Ordering::SeqCst) % 2 == 1 {
                    return None;
                }
                let (served, cancel) = (Arc::clone(&served2), cancel2.clone());
                Some(async move {
                    // Holds the connection until shutdown: the loop must wait for it.
                    cancel.cancelled().await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    drop(stream);
                    served.fetch_add(1, Ordering::SeqCst);
                })
            },
        ));
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(TcpStream::connect(address).await.unwrap());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.load(Ordering::SeqCst) < 4 {
            assert!(Instant::now() < deadline, "connections were not accepted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), accepting)
            .await
            .expect("the loop stops after cancellation")
            .unwrap();
        // Two admitted, both finished before the loop returned.
        assert_eq!(served.load(Ordering::SeqCst), 2);
    }
}
