//! The network edges: UDP worker threads and TCP connections, around the [`Pipeline`].
//!
//! # UDP: a fixed pool of plain threads
//! `workers` threads per UDP address, created at start-up, each answering on its own
//! `SO_REUSEPORT` socket (or on one shared socket) in batches, with buffers allocated once for
//! its whole life: see [`crate::dns::udp`]. No async runtime on this path: blocking system calls do
//! no allocation and no task switching, which is what an authoritative server spends its time
//! on. Threads poll the cancellation token every [`UDP_POLL`] through a socket read timeout.
//!
//! # TCP (RFC 7766): tokio tasks
//! TCP needs many idle connections and timeouts, which is what tokio is for. Each connection
//! takes an [`Event`] and buffer from a free list (allocated only when the list is empty, so at
//! most `tcp_max_connections` exist) and returns it on close. Two-octet length framing
//! (RFC 1035 §4.2.2), several queries per connection answered in order, an idle timeout
//! (§6.2.3), and a connection cap: beyond it new connections are closed at once (§6.2.2).
//!
//! # Shutdown
//! Servers take already-bound sockets and a [`CancellationToken`]. On cancellation UDP threads
//! finish their current batch and exit; the accept loops stop; each TCP connection finishes
//! the query it is answering and closes. [`Server::join`] waits for all of it.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dns::pipeline::Pipeline;
pub use crate::dns::udp::UDP_POLL;
use crate::dns::udp::UdpSockets;
use crate::dns::wire::{Event, MAX_MESSAGE, Transport};

/// Server settings (from [`crate::Config`]).
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// UDP worker threads per UDP address.
    pub workers: usize,
    pub tcp_idle_timeout: Duration,
    pub tcp_max_connections: usize,
}

/// Running servers.
pub struct Server {
    udp_threads: Vec<JoinHandle<()>>,
    tasks: JoinSet<()>,
}

/// A TCP connection's reusable state.
struct Scratch {
    ev: Event,
    buf: Box<[u8]>,
}

type FreeList = Arc<Mutex<Vec<Box<Scratch>>>>;

impl Server {
    /// Starts serving on already-bound sockets: for UDP, [`UdpSockets`] or a plain
    /// `UdpSocket` (shared by the workers, default [`crate::dns::udp::UdpSettings`]). Must be
    /// called inside a tokio runtime (for TCP); UDP runs on its own threads.
    pub fn start(
        pipeline: Arc<Pipeline>,
        udp: impl IntoIterator<Item = impl Into<UdpSockets>>,
        tcp: Vec<TcpListener>,
        settings: &ServerSettings,
        cancel: CancellationToken,
    ) -> io::Result<Self> {
        let mut udp_threads = Vec::new();
        // A child token, so that a failed start can stop the threads it started without
        // cancelling the caller's token.
        let udp_cancel = cancel.child_token();
        for sockets in udp {
            let started = sockets.into().spawn_workers(
                &pipeline,
                settings.workers,
                &udp_cancel,
                &mut udp_threads,
            );
            if let Err(e) = started {
                udp_cancel.cancel();
                for t in udp_threads {
                    let _ = t.join();
                }
                return Err(e);
            }
        }
        let mut tasks = JoinSet::new();
        let free: FreeList = Arc::new(Mutex::new(Vec::new()));
        for listener in tcp {
            tasks.spawn(accept_loop(
                listener,
                Arc::clone(&pipeline),
                settings.clone(),
                Arc::clone(&free),
                cancel.clone(),
            ));
        }
        Ok(Self { udp_threads, tasks })
    }

    /// Waits until every server has stopped (after the token is cancelled).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
        let threads = std::mem::take(&mut self.udp_threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
    settings: ServerSettings,
    free: FreeList,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(settings.tcp_max_connections));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "tcp accept");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::debug!(%peer, "tcp connection cap reached, closing");
                    drop(stream);
                    continue;
                };
                let pipeline = Arc::clone(&pipeline);
                let free = Arc::clone(&free);
                let cancel = cancel.clone();
                let idle = settings.tcp_idle_timeout;
                connections.spawn(async move {
                    serve_connection(stream, peer, &pipeline, &free, idle, &cancel).await;
                    drop(permit);
                });
            }
        }
    }
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    pipeline: &Pipeline,
    free: &FreeList,
    idle: Duration,
    cancel: &CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let scratch = free.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut scratch = scratch.unwrap_or_else(|| {
        Box::new(Scratch {
            ev: Event::new(),
            buf: vec![0u8; MAX_MESSAGE].into_boxed_slice(),
        })
    });
    loop {
        let mut len = [0u8; 2];
        tokio::select! {
            _ = cancel.cancelled() => break,
            read = tokio::time::timeout(idle, stream.read_exact(&mut len)) => {
                if !matches!(read, Ok(Ok(_))) {
                    break;
                }
            }
        }
        let n = u16::from_be_bytes(len) as usize;
        let Scratch { ev, buf } = &mut *scratch;
        match tokio::time::timeout(idle, stream.read_exact(&mut buf[..n])).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        if let Some(response) = pipeline.handle(&buf[..n], peer.ip(), Transport::Tcp, ev) {
            let prefix = (response.len() as u16).to_be_bytes();
            if stream.write_all(&prefix).await.is_err() || stream.write_all(response).await.is_err()
            {
                break;
            }
        }
    }
    free.lock().unwrap_or_else(|e| e.into_inner()).push(scratch);
}
