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
//! TCP needs many idle connections and timeouts, which is what tokio is for. The accept loop
//! is the one every TCP edge runs ([`crate::tcp::accept`]):
//!
//! ```text
//!  accept ──► cap per client address (IPv6: /64; tcp::connection_limit, shared with Whois
//!    │          and RDAP), then the connection cap (one Semaphore over every listener, tried,
//!    │          never waited on) ── over either: closed at once (RFC 7766 §6.2.2)
//!    ▼ one tokio task per connection, its buffers from a free list
//!  read what the client sent (several queries at once when it pipelines them)
//!    │   within the idle deadline (§6.2.3): a query, or the rest of one, must arrive by then;
//!    │   the deadline moves on only when a whole query arrived (a trickling client is cut)
//!    ▼
//!  answer every complete query in order (two-octet framing, RFC 1035 §4.2.2), the answers
//!    │   gathered in one buffer ──► one write, within the same deadline, raced with shutdown
//!    ▼
//!  after `max_queries` answers (§6.2.1): FIN, drain, close — else read again
//! ```
//!
//! A client that sends the edns-tcp-keepalive option (RFC 7828) hears the idle timeout in its
//! answers' OPT record, so that it can keep the connection for further queries instead of
//! having it closed under it.
//!
//! # Slow and hostile clients
//! A client that sends queries and never reads fills its receive window, then the server's
//! send buffer: the write stalls. Writes have the idle deadline too, so such a connection is
//! closed and its slot freed after at most `idle_timeout` without progress, and a write never
//! delays shutdown: cancellation ends it at once. A client that opens connections and sends
//! nothing holds each for `idle_timeout`, and at most `max_connections_per_address` of them.
//!
//! # Costs
//! Per connection: one task, the [`Event`] and two buffers (a whole largest query in, 16 KiB
//! of answers out) taken from a free list (allocated only when the list is empty, so at most
//! `max_connections` sets exist) and returned on close. Per round of pipelined queries: one
//! read and one write system call, whatever their number.
//!
//! # Shutdown
//! Servers take already-bound sockets and a [`CancellationToken`]. On cancellation UDP threads
//! finish their current batch and exit; the accept loops stop; each TCP connection stops
//! where it is (a read or a write in progress is abandoned) and closes. [`Server::join`] waits
//! for all of it.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use orrery_proto::link::SatelliteSettings;
use orrery_proto::link::convert::{
    DEFAULT_TCP_IDLE_TIMEOUT, DEFAULT_TCP_MAX_CONNECTIONS, DEFAULT_TCP_MAX_CONNECTIONS_PER_ADDRESS,
    DnsListen,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dns::pipeline::Pipeline;
pub use crate::dns::udp::UDP_POLL;
use crate::dns::udp::{UdpSettings, UdpSockets};
use crate::dns::wire::{Event, MAX_MESSAGE, Transport};
use crate::tcp::accept;
use crate::tcp::connection_limit::PerAddress;

/// How the DNS edges serve: the typed form of the settings' DNS service and worker count,
/// each left out there taking the default here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    /// UDP worker threads per UDP address.
    pub workers: usize,
    /// Batching, socket per worker and pinning of the UDP workers (applied when the sockets
    /// are bound).
    pub udp: UdpSettings,
    pub tcp: TcpSettings,
}

/// The TCP edge's limits (RFC 7766 §6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSettings {
    /// How long a connection may wait for its client: for the rest of a query, for the next
    /// one, or to take an answer.
    pub idle_timeout: Duration,
    /// Connections served at once, over every listener; more are closed on accept.
    pub max_connections: usize,
    /// Connections served at once from one client address (IPv6: one /64).
    pub max_connections_per_address: u32,
    /// Queries answered on one connection before it is closed; `None`: no limit.
    pub max_queries: Option<u32>,
}

impl Default for TcpSettings {
    fn default() -> Self {
        Self {
            idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            max_connections: DEFAULT_TCP_MAX_CONNECTIONS as usize,
            max_connections_per_address: DEFAULT_TCP_MAX_CONNECTIONS_PER_ADDRESS,
            max_queries: None,
        }
    }
}

impl From<&DnsListen> for TcpSettings {
    fn from(d: &DnsListen) -> Self {
        let defaults = Self::default();
        Self {
            idle_timeout: d.tcp_idle_timeout.unwrap_or(defaults.idle_timeout),
            max_connections: d
                .tcp_max_connections
                .map_or(defaults.max_connections, |n| n as usize),
            max_connections_per_address: d
                .tcp_max_connections_per_address
                .unwrap_or(defaults.max_connections_per_address),
            max_queries: d.tcp_max_queries,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            workers: default_workers(),
            udp: UdpSettings::default(),
            tcp: TcpSettings::default(),
        }
    }
}

/// UDP workers per address when the settings say nothing: one per CPU, at most 8 (beyond
/// that the kernel's share of the work dominates).
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(8))
}

impl ServerSettings {
    /// How the DNS service of `settings` is served (from the master or a standalone file;
    /// checked by the link's receipt check before they reach here).
    pub fn from_settings(settings: &SatelliteSettings) -> Self {
        let dns = settings.dns.clone().unwrap_or_default();
        Self {
            workers: settings
                .workers
                .map_or_else(default_workers, |w| w as usize),
            udp: UdpSettings::from(&dns),
            tcp: TcpSettings::from(&dns),
        }
    }
}

/// Running servers.
pub struct Server {
    udp_threads: Vec<JoinHandle<()>>,
    tcp: TaskTracker,
    /// Cancelled by [`Server::retire`] (and with the server's token).
    retire: CancellationToken,
}

/// Room for the answers of one round of pipelined queries; a larger answer is written on its
/// own after the ones before it.
const OUT_CAPACITY: usize = 16 * 1024;

/// A TCP connection's reusable state.
struct Scratch {
    ev: Event,
    /// What the client sent and was not answered yet: room for the largest framed query.
    input: Box<[u8]>,
    /// Framed answers not written yet.
    output: Box<[u8]>,
}

type FreeList = Mutex<Vec<Box<Scratch>>>;

/// What every TCP connection of a server shares.
struct Shared {
    pipeline: Arc<Pipeline>,
    settings: TcpSettings,
    slots: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    free: FreeList,
    /// Stops accepting, reading and answering: [`Server::retire`] or the server's token.
    cancel: CancellationToken,
    /// Cuts transfers in progress: the server's token only. A retired server's transfers
    /// finish from the version they started with (their own total timeout bounds them).
    stop_transfers: CancellationToken,
}

impl Server {
    /// Starts serving on already-bound sockets: for UDP, [`UdpSockets`] or a plain
    /// `UdpSocket` (shared by the workers, default [`UdpSettings`]). Must be called inside a
    /// tokio runtime (for TCP); UDP runs on its own threads.
    pub fn start(
        pipeline: Arc<Pipeline>,
        udp: impl IntoIterator<Item = impl Into<UdpSockets>>,
        tcp: Vec<TcpListener>,
        settings: &ServerSettings,
        cancel: CancellationToken,
    ) -> io::Result<Self> {
        let mut udp_threads = Vec::new();
        let retire = cancel.child_token();
        // A child token, so that a failed start can stop the threads it started without
        // cancelling the caller's token.
        let udp_cancel = retire.child_token();
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
        let tcp_settings = settings.tcp.clone();
        let shared = Arc::new(Shared {
            pipeline,
            slots: Arc::new(Semaphore::new(
                tcp_settings.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            per_address: PerAddress::new(
                tcp_settings.max_connections_per_address,
                tcp_settings.max_connections,
            ),
            settings: tcp_settings,
            free: Mutex::new(Vec::new()),
            cancel: retire.clone(),
            stop_transfers: cancel,
        });
        let tracker = TaskTracker::new();
        // NOTIFY to secondaries runs as long as the server whose pipeline has the service.
        if let Some(xfr) = &shared.pipeline.xfr {
            tracker.spawn(xfr.notifier(shared.cancel.clone()));
        }
        for listener in tcp {
            tracker.spawn(accept_loop(listener, Arc::clone(&shared)));
        }
        tracker.close();
        Ok(Self {
            udp_threads,
            tcp: tracker,
            retire,
        })
    }

    /// Stops this server as a replaced one stops: no more accepts, UDP reads or answers, and
    /// every connection closes after what it is doing, except that a zone transfer in
    /// progress runs to its end (a new `xfr` table, or any new pipeline, must not cut the
    /// secondaries' transfers). [`Server::join`] then waits for those too; cancelling the
    /// server's token cuts them.
    pub fn retire(&self) {
        self.retire.cancel();
    }

    /// Waits until every server has stopped (after the token is cancelled).
    pub async fn join(mut self) {
        self.tcp.wait().await;
        let threads = std::mem::take(&mut self.udp_threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let cancel = shared.cancel.clone();
    accept::accept_loop(listener, "dns tcp accept", cancel, |stream, peer| {
        // Over a cap the connection is closed at once, without reading: RFC 7766 §6.2.2
        // lets a server close connections it cannot serve, and clients retry elsewhere.
        let Some(address_slot) = shared.per_address.try_acquire(peer.ip()) else {
            tracing::debug!(%peer, "dns tcp: too many connections from this address, closing");
            return None;
        };
        let Ok(permit) = Arc::clone(&shared.slots).try_acquire_owned() else {
            tracing::debug!(%peer, "dns tcp: connection cap reached, closing");
            return None;
        };
        let shared = Arc::clone(&shared);
        Some(async move {
            serve_connection(stream, peer, &shared).await;
            drop((permit, address_slot));
        })
    })
    .await;
}

/// The idle timeout as edns-tcp-keepalive's TIMEOUT: units of 100 ms (RFC 7828 §3.1), rounded
/// down so that a client never waits longer than we do, and capped at the field's range.
fn keepalive_timeout(idle: Duration) -> u16 {
    u16::try_from(idle.as_millis() / 100).unwrap_or(u16::MAX)
}

/// Why a connection ends.
enum End {
    /// The client closed, an I/O error, a deadline, or shutdown: close now.
    Now,
    /// `max_queries` answered: close gracefully so the last answers are not reset.
    Done,
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let scratch = shared.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut scratch = scratch.unwrap_or_else(|| {
        Box::new(Scratch {
            ev: Event::new(),
            input: vec![0u8; 2 + MAX_MESSAGE].into_boxed_slice(),
            output: vec![0u8; OUT_CAPACITY].into_boxed_slice(),
        })
    });
    scratch.ev.tcp_keepalive = Some(keepalive_timeout(shared.settings.idle_timeout));
    let mut stream = stream;
    let end = answer_queries(&mut stream, peer, shared, &mut scratch).await;
    shared
        .free
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(scratch);
    if matches!(end, End::Done) {
        close_gracefully(stream, shared).await;
    }
}

/// Reads, answers and writes until the connection ends.
async fn answer_queries(
    stream: &mut TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    scratch: &mut Scratch,
) -> End {
    let settings = &shared.settings;
    let idle = settings.idle_timeout;
    let Scratch { ev, input, output } = scratch;
    // `input[..filled]` holds what arrived and was not answered yet.
    let mut filled = 0usize;
    let mut answered = 0u32;
    let mut deadline = Instant::now() + idle;
    loop {
        let read = tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return End::Now,
            read = timeout_at(deadline, stream.read(&mut input[filled..])) => read,
        };
        match read {
            Ok(Ok(n)) if n > 0 => filled += n,
            // Closed by the client, a read error, or the deadline passed.
            _ => return End::Now,
        }
        // Every complete query, in order; their answers gathered in `output`.
        let mut start = 0;
        let mut out = 0;
        let mut limit_reached = false;
        while let Some(len) = framed_len(&input[start..filled]) {
            let query = &input[start + 2..start + 2 + len];
            start += 2 + len;
            if let Some(xfr) = &shared.pipeline.xfr
                && crate::xfr::transfer_qtype(query).is_some()
            {
                // A zone transfer: the answers gathered so far go first, then the transfer
                // runs on this connection (its own limits and timeouts, crate::xfr).
                if out > 0 && write(stream, &output[..out], shared).await.is_err() {
                    return End::Now;
                }
                out = 0;
                if xfr.serve(stream, peer, query, &shared.stop_transfers).await
                    == crate::xfr::Outcome::Close
                {
                    return End::Now;
                }
                answered = answered.saturating_add(1);
                continue;
            }
            if let Some(response) = shared.pipeline.handle(query, peer.ip(), Transport::Tcp, ev) {
                if out + 2 + response.len() > output.len() {
                    // Flush what is gathered; an answer larger than the buffer goes alone.
                    if write(stream, &output[..out], shared).await.is_err() {
                        return End::Now;
                    }
                    out = 0;
                }
                let prefix = (response.len() as u16).to_be_bytes();
                if 2 + response.len() <= output.len() {
                    output[out..out + 2].copy_from_slice(&prefix);
                    output[out + 2..out + 2 + response.len()].copy_from_slice(response);
                    out += 2 + response.len();
                } else if write(stream, &prefix, shared).await.is_err()
                    || write(stream, response, shared).await.is_err()
                {
                    return End::Now;
                }
            }
            answered = answered.saturating_add(1);
            if settings.max_queries.is_some_and(|max| answered >= max) {
                limit_reached = true;
                break;
            }
        }
        if out > 0 && write(stream, &output[..out], shared).await.is_err() {
            return End::Now;
        }
        if limit_reached {
            return End::Done;
        }
        if start > 0 {
            // Progress: the deadline starts again, for the rest of a query or the next one.
            input.copy_within(start..filled, 0);
            filled -= start;
            deadline = Instant::now() + idle;
        }
    }
}

/// The length of the first framed message in `buf` when all of it is there.
fn framed_len(buf: &[u8]) -> Option<usize> {
    let len = u16::from_be_bytes([*buf.first()?, *buf.get(1)?]) as usize;
    (buf.len() >= 2 + len).then_some(len)
}

/// Writes all of `bytes` within the idle timeout; shutdown abandons the write.
async fn write(stream: &mut TcpStream, bytes: &[u8], shared: &Shared) -> Result<(), ()> {
    tokio::select! {
        biased;
        () = shared.cancel.cancelled() => Err(()),
        written = timeout(shared.settings.idle_timeout, stream.write_all(bytes)) => match written {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        },
    }
}

/// How long a connection closed after its last allowed query waits for the client to close
/// its side, reading and discarding what it still sends.
const LINGER: Duration = Duration::from_secs(2);

/// Closes a connection whose client may still be sending (pipelined queries beyond the cap)
/// without a reset: FIN first, then what arrives is discarded until the client closes, for at
/// most [`LINGER`]. Closing with unread octets makes the kernel send a reset, which can destroy
/// answers still in the client's path.
async fn close_gracefully(mut stream: TcpStream, shared: &Shared) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 512];
    let drain = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        () = shared.cancel.cancelled() => {}
        _ = timeout(LINGER.min(shared.settings.idle_timeout), drain) => {}
    }
}
