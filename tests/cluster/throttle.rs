//! A TCP forwarder on 127.0.0.1 whose downstream direction (from the target back to whoever
//! connected) can be throttled to a number of bytes a second while connections are open: a
//! slow link between a satellite and its master, for the tests that need one.
//!
//! The upstream direction is never throttled (a satellite's check-ins and calls go through at
//! once). Bytes are counted in both directions so that a test can size its throttle from what
//! a change really costs on the wire.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes per write while throttled: small, so that the rate is smooth at a few KB/s.
const THROTTLED_CHUNK: usize = 512;

#[derive(Default)]
struct Shared {
    /// Bytes a second downstream; 0 = as fast as it goes.
    rate: AtomicU64,
    down: AtomicU64,
    up: AtomicU64,
}

/// The forwarder; its task ends with the test's runtime.
pub(crate) struct Throttle {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Throttle {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub(crate) async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    // The target not listening (a master down): the client sees a close.
                    if let Ok(server) = TcpStream::connect(target).await {
                        forward(client, server, s).await;
                    }
                });
            }
        });
        Self { addr, shared }
    }

    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Limits the downstream direction to `bytes_per_second` (0: no limit), from the next
    /// write on.
    pub(crate) fn set_rate(&self, bytes_per_second: u64) {
        self.shared.rate.store(bytes_per_second, Ordering::Relaxed);
    }

    /// Bytes forwarded downstream (target → client) so far, every connection.
    pub(crate) fn bytes_down(&self) -> u64 {
        self.shared.down.load(Ordering::Relaxed)
    }
}

async fn forward(client: TcpStream, server: TcpStream, s: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = {
        let s = Arc::clone(&s);
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if server_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                s.up.fetch_add(n as u64, Ordering::Relaxed);
            }
            let _ = server_write.shutdown().await;
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // The rate is read again for every piece: a read that was waiting when the
            // throttle was set is throttled all the same.
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let rate = s.rate.load(Ordering::Relaxed);
                let take = if rate == 0 {
                    rest.len()
                } else {
                    rest.len().min(THROTTLED_CHUNK)
                };
                if client_write.write_all(&rest[..take]).await.is_err() {
                    return;
                }
                s.down.fetch_add(take as u64, Ordering::Relaxed);
                rest = &rest[take..];
                if rate != 0 {
                    tokio::time::sleep(Duration::from_secs_f64(take as f64 / rate as f64)).await;
                }
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}
