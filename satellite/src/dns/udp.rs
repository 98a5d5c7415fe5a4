//! The UDP edge: the sockets of one listen address and the worker threads that answer on them.
//!
//! # Sockets: one per worker
//! On Linux each worker has a socket of its own, all bound to the same address with
//! `SO_REUSEPORT`: the kernel spreads datagrams over the sockets by a hash of the client's
//! address and port, so one datagram wakes one worker, and workers never contend for one
//! receive queue (with a shared socket every datagram is a wake-up race between the threads
//! blocked on it). `udp_reuseport = false` keeps the older layout: one socket per address,
//! every worker blocked on it. Before the group is bound the address is bound once without
//! `SO_REUSEPORT`: that fails if anything holds it — a second satellite of the same user would
//! otherwise join the group silently and take a share of the queries — and it resolves port 0
//! to the one port every socket of the group then takes.
//!
//! # Batches (Linux): `recvmmsg`/`sendmmsg`, never waiting to fill one
//! A worker blocks in `recvmmsg` with `MSG_WAITFORONE`: the call returns as soon as one
//! datagram is there, together with whatever else is already queued, up to the batch size.
//! Every query of the batch is answered into a preallocated slot, and the answers leave in
//! one `sendmmsg`. At light load that is one datagram and two system calls, as before, with no
//! added latency; under load the two calls are shared by up to `udp_batch` answers.
//! `udp_batch = 1` answers one datagram per call pair.
//!
//! # The answer's source address
//! A socket bound to a specific address answers from it. A wildcard socket (`0.0.0.0`, `::`)
//! asks for each datagram's destination (`IP_PKTINFO`, `IPV6_RECVPKTINFO`; the latter also for
//! IPv4 clients of a dual-stack socket) and sends the answer from that address, so a client
//! that queried one address of a multi-homed host gets its answer from that address and not
//! from whichever the routing table prefers.
//!
//! # Allocation
//! Every buffer a worker uses — the batch's receive and answer slots, addresses, control
//! messages, the [`Event`] — is allocated when the thread starts and reused for its whole
//! life; the query path allocates nothing.
//!
//! # Elsewhere
//! Off Linux a worker answers one datagram at a time with `recv_from`/`send_to` on one shared
//! socket per address; wildcard binds then answer from the address the routing table picks.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use orrery_proto::link::convert::{DEFAULT_UDP_BATCH, DnsListen, MAX_UDP_BATCH};
use tokio_util::sync::CancellationToken;

use crate::dns::pipeline::Pipeline;
#[cfg(not(target_os = "linux"))]
use crate::dns::wire::{Event, MAX_MESSAGE, Transport};

/// How often an idle UDP worker checks for shutdown.
pub const UDP_POLL: Duration = Duration::from_millis(100);
/// Most datagrams one system call receives or sends (the link's limit, checked on receipt).
pub const MAX_BATCH: usize = MAX_UDP_BATCH as usize;
/// Datagrams per system call by default (see [`DEFAULT_UDP_BATCH`]).
pub const DEFAULT_BATCH: usize = DEFAULT_UDP_BATCH as usize;

/// How a listen address is served over UDP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpSettings {
    /// Most datagrams received or sent by one system call (1..=[`MAX_BATCH`]).
    pub batch: usize,
    /// One `SO_REUSEPORT` socket per worker (Linux) instead of one shared socket.
    pub reuseport: bool,
    /// CPUs the workers are pinned to: worker `i` of each address runs on
    /// `cpu_affinity[i % len]`. Empty: not pinned.
    pub cpu_affinity: Vec<usize>,
}

impl Default for UdpSettings {
    fn default() -> Self {
        Self {
            batch: DEFAULT_BATCH,
            reuseport: true,
            cpu_affinity: Vec::new(),
        }
    }
}

impl From<&DnsListen> for UdpSettings {
    /// The settings' UDP fields, each left out taking the default.
    fn from(d: &DnsListen) -> Self {
        let defaults = Self::default();
        Self {
            batch: d.udp_batch.map_or(defaults.batch, |b| b as usize),
            reuseport: d.udp_reuseport.unwrap_or(defaults.reuseport),
            cpu_affinity: d.cpu_affinity.iter().map(|&c| c as usize).collect(),
        }
    }
}

/// The bound sockets of one UDP listen address, and how they are served.
#[derive(Debug)]
pub struct UdpSockets {
    /// One per worker with `SO_REUSEPORT`, else one shared by every worker.
    sockets: Vec<UdpSocket>,
    settings: UdpSettings,
}

impl From<UdpSocket> for UdpSockets {
    /// One socket shared by every worker, served with the default settings.
    fn from(socket: UdpSocket) -> Self {
        Self {
            sockets: vec![socket],
            settings: UdpSettings::default(),
        }
    }
}

impl UdpSockets {
    /// Binds `addr` for `workers` workers (port 0 picks a free port, the same for all).
    pub fn bind(addr: SocketAddr, workers: usize, settings: &UdpSettings) -> io::Result<Self> {
        // A plain bind first: it fails if anything holds the address (see the module
        // documentation), and resolves port 0.
        let probe = UdpSocket::bind(addr)?;
        let sockets = if settings.reuseport && workers > 1 && cfg!(target_os = "linux") {
            let addr = probe.local_addr()?;
            drop(probe);
            (0..workers)
                .map(|_| reuseport_socket(addr))
                .collect::<io::Result<Vec<_>>>()?
        } else {
            vec![probe]
        };
        Ok(Self {
            sockets,
            settings: settings.clone(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sockets[0].local_addr()
    }

    /// Number of sockets (one per worker, or one shared).
    pub fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    /// Handles on the same sockets (for a server that takes over from another: see
    /// [`crate::link::serving`]).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            sockets: self
                .sockets
                .iter()
                .map(UdpSocket::try_clone)
                .collect::<io::Result<_>>()?,
            settings: self.settings.clone(),
        })
    }

    /// Starts `workers` threads answering on these sockets until `cancel` (at least one per
    /// socket: a socket of the group nobody reads would lose the clients hashed to it).
    pub(crate) fn spawn_workers(
        self,
        pipeline: &Arc<Pipeline>,
        workers: usize,
        cancel: &CancellationToken,
        threads: &mut Vec<JoinHandle<()>>,
    ) -> io::Result<()> {
        let local = self.prepare()?;
        for i in 0..workers.max(self.sockets.len()) {
            let socket = self.sockets[i % self.sockets.len()].try_clone()?;
            let pipeline = Arc::clone(pipeline);
            let cancel = cancel.clone();
            let cpus = &self.settings.cpu_affinity;
            let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
            let batch = self.batch();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("udp-{local}-{i}"))
                    .spawn(move || {
                        if let Some(cpu) = cpu {
                            pin_to(cpu);
                        }
                        worker(&socket, &pipeline, &cancel, batch);
                    })?,
            );
        }
        Ok(())
    }

    /// Answers on the first socket on the calling thread until `cancel`: what each worker
    /// thread runs (unpinned), for callers that own their threads (the allocation test).
    pub fn serve_here(&self, pipeline: &Pipeline, cancel: &CancellationToken) -> io::Result<()> {
        self.prepare()?;
        worker(&self.sockets[0], pipeline, cancel, self.batch());
        Ok(())
    }

    /// Checks the settings against the system and sets the socket options every worker
    /// needs; returns the bound address.
    fn prepare(&self) -> io::Result<SocketAddr> {
        check_affinity(&self.settings.cpu_affinity)?;
        let local = self.local_addr()?;
        for socket in &self.sockets {
            socket.set_read_timeout(Some(UDP_POLL))?;
            if local.ip().is_unspecified() {
                enable_pktinfo(socket, local)?;
            }
        }
        Ok(local)
    }

    fn batch(&self) -> usize {
        self.settings.batch.clamp(1, MAX_BATCH)
    }
}

/// True for the errors a blocking receive with a timeout returns in normal operation.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A receive error that is not a timeout: logged, and never spun on.
fn receive_failed(e: &io::Error) {
    tracing::debug!(error = %e, "udp receive");
    std::thread::sleep(Duration::from_millis(1));
}

#[cfg(not(target_os = "linux"))]
fn worker(socket: &UdpSocket, pipeline: &Pipeline, cancel: &CancellationToken, _batch: usize) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut ev = Event::new();
    while !cancel.is_cancelled() {
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                if let Some(response) =
                    pipeline.handle(&buf[..n], peer.ip(), Transport::Udp, &mut ev)
                {
                    let _ = socket.send_to(response, peer);
                }
            }
            Err(e) if is_transient(&e) => {}
            Err(e) => receive_failed(&e),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn reuseport_socket(_addr: SocketAddr) -> io::Result<UdpSocket> {
    unreachable!("SO_REUSEPORT groups are bound on Linux only")
}

#[cfg(not(target_os = "linux"))]
fn enable_pktinfo(_socket: &UdpSocket, _local: SocketAddr) -> io::Result<()> {
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn check_affinity(cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "cpu_affinity is supported on Linux only",
        ))
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_cpu: usize) {}

#[cfg(target_os = "linux")]
use linux::{check_affinity, enable_pktinfo, pin_to, reuseport_socket, worker};

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
    use std::os::fd::{AsRawFd, RawFd};
    use std::ptr;

    use socket2::{Domain, Protocol, Socket, Type};
    use tokio_util::sync::CancellationToken;

    use super::{is_transient, receive_failed};
    use crate::dns::pipeline::Pipeline;
    use crate::dns::wire::{Event, MAX_MESSAGE, OUR_UDP_SIZE, Transport};

    /// Room for one answer in a batch. Answers over UDP stay within [`OUR_UDP_SIZE`] plus the
    /// OPT record; one that does not fit is sent on its own, never cut.
    const ANSWER_SLOT: usize = 4096;
    const _: () = assert!(ANSWER_SLOT >= OUR_UDP_SIZE as usize);

    /// Room for the control messages of one datagram: one `in6_pktinfo` (the largest).
    const CONTROL_LEN: usize = 64;

    /// Control message buffer, aligned as `cmsghdr` needs.
    #[repr(C, align(8))]
    #[derive(Clone, Copy)]
    struct Control([u8; CONTROL_LEN]);

    /// Sets an integer socket option.
    fn set_option(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
        let one: libc::c_int = 1;
        // SAFETY: `one` outlives the call and its size is passed.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                ptr::from_ref(&one).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// A socket of an `SO_REUSEPORT` group on `addr`. Like `UdpSocket::bind`, it leaves
    /// `IPV6_V6ONLY` at the system default.
    pub(super) fn reuseport_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        set_option(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT)?;
        socket.bind(&addr.into())?;
        Ok(socket.into())
    }

    /// Asks for each datagram's destination address on a wildcard socket.
    pub(super) fn enable_pktinfo(socket: &UdpSocket, local: SocketAddr) -> io::Result<()> {
        match local {
            SocketAddr::V4(_) => set_option(socket.as_raw_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO),
            // Also reports IPv4 destinations (as mapped addresses) on a dual-stack socket.
            SocketAddr::V6(_) => set_option(
                socket.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_RECVPKTINFO,
            ),
        }
    }

    /// The CPUs this process may run on.
    fn allowed_cpus() -> io::Result<libc::cpu_set_t> {
        // SAFETY: a zeroed cpu_set_t is an empty set; the size passed is its own.
        unsafe {
            let mut set: libc::cpu_set_t = zeroed();
            if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(set)
        }
    }

    /// Fails, naming the CPU, if a configured CPU is not one this process may run on.
    pub(super) fn check_affinity(cpus: &[usize]) -> io::Result<()> {
        if cpus.is_empty() {
            return Ok(());
        }
        let allowed = allowed_cpus()?;
        let set_size = 8 * size_of::<libc::cpu_set_t>();
        for &cpu in cpus {
            // SAFETY: CPU_ISSET reads the set in bounds (checked first).
            if cpu >= set_size || !unsafe { libc::CPU_ISSET(cpu, &allowed) } {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cpu_affinity: CPU {cpu} is not one this process may run on"),
                ));
            }
        }
        Ok(())
    }

    /// Pins the calling thread to `cpu` (checked by [`check_affinity`] before the thread
    /// started; a failure now only costs the pinning).
    pub(super) fn pin_to(cpu: usize) {
        // SAFETY: as in `allowed_cpus`; `cpu` is within the set (checked at start).
        let r = unsafe {
            let mut set: libc::cpu_set_t = zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
        };
        if r != 0 {
            tracing::warn!(cpu, error = %io::Error::last_os_error(), "pinning a UDP worker");
        }
    }

    /// The address a datagram was sent to, from its `IP_PKTINFO`/`IPV6_PKTINFO` message.
    #[derive(Clone, Copy)]
    enum Local {
        V4(libc::in_addr),
        V6(libc::in6_addr, u32),
    }

    /// One worker's preallocated batch: receive slots, answer slots, and the headers that
    /// point into them (set up once; the boxed slices never move).
    struct Batch {
        size: usize,
        recv: Box<[u8]>,
        answers: Box<[u8]>,
        names: Box<[libc::sockaddr_storage]>,
        recv_control: Box<[Control]>,
        send_control: Box<[Control]>,
        recv_iov: Box<[libc::iovec]>,
        send_iov: Box<[libc::iovec]>,
        recv_hdr: Box<[libc::mmsghdr]>,
        send_hdr: Box<[libc::mmsghdr]>,
    }

    impl Batch {
        fn new(size: usize) -> Self {
            // SAFETY (zeroed): all-zero is a valid value of these plain C structs.
            let zero_hdr = || unsafe { zeroed::<libc::mmsghdr>() };
            let mut b = Self {
                size,
                recv: vec![0u8; size * MAX_MESSAGE].into_boxed_slice(),
                answers: vec![0u8; size * ANSWER_SLOT].into_boxed_slice(),
                names: (0..size).map(|_| unsafe { zeroed() }).collect(),
                recv_control: vec![Control([0; CONTROL_LEN]); size].into_boxed_slice(),
                send_control: vec![Control([0; CONTROL_LEN]); size].into_boxed_slice(),
                recv_iov: (0..size).map(|_| unsafe { zeroed() }).collect(),
                send_iov: (0..size).map(|_| unsafe { zeroed() }).collect(),
                recv_hdr: (0..size).map(|_| zero_hdr()).collect(),
                send_hdr: (0..size).map(|_| zero_hdr()).collect(),
            };
            for i in 0..size {
                b.recv_iov[i] = libc::iovec {
                    iov_base: b.recv[i * MAX_MESSAGE..].as_mut_ptr().cast(),
                    iov_len: MAX_MESSAGE,
                };
                let h = &mut b.recv_hdr[i].msg_hdr;
                h.msg_name = ptr::from_mut(&mut b.names[i]).cast();
                h.msg_iov = &mut b.recv_iov[i];
                h.msg_iovlen = 1;
                h.msg_control = b.recv_control[i].0.as_mut_ptr().cast();
                let h = &mut b.send_hdr[i].msg_hdr;
                h.msg_iov = &mut b.send_iov[i];
                h.msg_iovlen = 1;
            }
            b
        }

        /// Blocks until at least one datagram is there (or the read timeout passes), then
        /// takes what is queued, up to the batch size. Returns how many were received.
        fn receive(&mut self, fd: RawFd, pktinfo: bool) -> io::Result<usize> {
            for m in self.recv_hdr.iter_mut() {
                m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                m.msg_hdr.msg_controllen = if pktinfo { CONTROL_LEN as _ } else { 0 };
                m.msg_hdr.msg_flags = 0;
            }
            // SAFETY: every header points into buffers of this batch, with their sizes.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    self.recv_hdr.as_mut_ptr(),
                    self.size as _,
                    libc::MSG_WAITFORONE as _,
                    ptr::null_mut(),
                )
            };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(r as usize)
            }
        }

        /// The received datagram `i`.
        fn packet(&self, i: usize) -> &[u8] {
            let len = (self.recv_hdr[i].msg_len as usize).min(MAX_MESSAGE);
            &self.recv[i * MAX_MESSAGE..][..len]
        }

        /// The client address of datagram `i`.
        fn peer(&self, i: usize) -> Option<IpAddr> {
            peer_ip(&self.names[i], self.recv_hdr[i].msg_hdr.msg_namelen)
        }

        /// Queues `answer` to datagram `i`'s client as answer `j` (true); an answer too large
        /// for a slot is sent at once on its own (false).
        fn queue(&mut self, fd: RawFd, i: usize, j: usize, answer: &[u8]) -> bool {
            let local = local_of(&self.recv_hdr[i].msg_hdr);
            let namelen = self.recv_hdr[i].msg_hdr.msg_namelen;
            let name = ptr::from_mut(&mut self.names[i]).cast();
            if answer.len() > ANSWER_SLOT {
                let mut control = Control([0; CONTROL_LEN]);
                let mut iov = libc::iovec {
                    iov_base: answer.as_ptr().cast_mut().cast(),
                    iov_len: answer.len(),
                };
                // SAFETY: all-zero is a valid msghdr.
                let mut h: libc::msghdr = unsafe { zeroed() };
                h.msg_iov = &mut iov;
                h.msg_iovlen = 1;
                address(&mut h, name, namelen, &mut control, local);
                // SAFETY: the header points at live locals and the answer.
                if unsafe { libc::sendmsg(fd, &h, 0) } < 0 {
                    send_failed();
                }
                return false;
            }
            let slot = &mut self.answers[j * ANSWER_SLOT..][..answer.len()];
            slot.copy_from_slice(answer);
            self.send_iov[j].iov_base = slot.as_mut_ptr().cast();
            self.send_iov[j].iov_len = answer.len();
            let control = &mut self.send_control[j];
            address(&mut self.send_hdr[j].msg_hdr, name, namelen, control, local);
            true
        }

        /// Sends the first `count` queued answers; a failed one is skipped (as a lost
        /// datagram), the rest still go.
        fn send(&mut self, fd: RawFd, count: usize) {
            let mut sent = 0;
            while sent < count {
                // SAFETY: headers `sent..count` were filled by `queue` in this round.
                let r = unsafe {
                    libc::sendmmsg(
                        fd,
                        self.send_hdr[sent..].as_mut_ptr(),
                        (count - sent) as _,
                        0,
                    )
                };
                if r > 0 {
                    sent += r as usize;
                } else {
                    if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    // `sendmmsg` reports the error of the first message it could not send.
                    send_failed();
                    sent += 1;
                }
            }
        }
    }

    fn send_failed() {
        tracing::debug!(error = %io::Error::last_os_error(), "udp send");
    }

    /// Points a send header at the client's address and, for a wildcard socket, at a control
    /// message that sends from the address the query arrived on.
    fn address(
        h: &mut libc::msghdr,
        name: *mut libc::c_void,
        namelen: libc::socklen_t,
        control: &mut Control,
        local: Option<Local>,
    ) {
        h.msg_name = name;
        h.msg_namelen = namelen;
        let Some(local) = local else {
            h.msg_control = ptr::null_mut();
            h.msg_controllen = 0;
            return;
        };
        h.msg_control = control.0.as_mut_ptr().cast();
        let (level, kind, len) = match local {
            Local::V4(_) => (
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                size_of::<libc::in_pktinfo>(),
            ),
            Local::V6(..) => (
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                size_of::<libc::in6_pktinfo>(),
            ),
        };
        // SAFETY: CONTROL_LEN holds CMSG_SPACE of either struct (asserted below), the buffer
        // is aligned for cmsghdr, and the data is written unaligned.
        unsafe {
            h.msg_controllen = libc::CMSG_SPACE(len as u32) as _;
            let c = libc::CMSG_FIRSTHDR(h);
            (*c).cmsg_level = level;
            (*c).cmsg_type = kind;
            (*c).cmsg_len = libc::CMSG_LEN(len as u32) as _;
            let data = libc::CMSG_DATA(c);
            match local {
                // The source address goes in ipi_spec_dst; interface 0 lets routing choose
                // the way out, as for any other answer.
                Local::V4(addr) => ptr::write_unaligned(
                    data.cast::<libc::in_pktinfo>(),
                    libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: addr,
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    },
                ),
                Local::V6(addr, ifindex) => ptr::write_unaligned(
                    data.cast::<libc::in6_pktinfo>(),
                    libc::in6_pktinfo {
                        ipi6_addr: addr,
                        // A link-local address means nothing without its interface.
                        ipi6_ifindex: if is_link_local(&addr) { ifindex } else { 0 },
                    },
                ),
            }
        }
    }

    const _: () = assert!(CONTROL_LEN >= 16 + size_of::<libc::in6_pktinfo>());

    fn is_link_local(addr: &libc::in6_addr) -> bool {
        Ipv6Addr::from(addr.s6_addr).is_unicast_link_local()
    }

    /// The destination of a received datagram, if its header carries a packet-info message.
    fn local_of(h: &libc::msghdr) -> Option<Local> {
        if h.msg_controllen == 0 {
            return None;
        }
        // SAFETY: the kernel wrote `msg_controllen` octets of well-formed control messages;
        // the CMSG macros stay within them and the data is read unaligned.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                let data = libc::CMSG_DATA(c);
                match ((*c).cmsg_level, (*c).cmsg_type) {
                    (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                        let info = ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                        return Some(Local::V4(info.ipi_addr));
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                        let info = ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                        return Some(Local::V6(info.ipi6_addr, info.ipi6_ifindex));
                    }
                    _ => {}
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        None
    }

    /// The IP address in a socket address the kernel filled in, as `recv_from` reports it
    /// (IPv4 clients of a dual-stack socket as mapped IPv6 addresses).
    fn peer_ip(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<IpAddr> {
        let len = len as usize;
        match libc::c_int::from(storage.ss_family) {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says this storage holds a sockaddr_in.
                let a = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))))
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: the family says this storage holds a sockaddr_in6.
                let a = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
                Some(IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }

    pub(super) fn worker(
        socket: &UdpSocket,
        pipeline: &Pipeline,
        cancel: &CancellationToken,
        batch: usize,
    ) {
        let fd = socket.as_raw_fd();
        let pktinfo = socket.local_addr().is_ok_and(|a| a.ip().is_unspecified());
        let mut b = Batch::new(batch);
        let mut ev = Event::new();
        while !cancel.is_cancelled() {
            let received = match b.receive(fd, pktinfo) {
                Ok(n) => n,
                Err(e) if is_transient(&e) => continue,
                Err(e) => {
                    receive_failed(&e);
                    continue;
                }
            };
            let mut answers = 0;
            for i in 0..received {
                let Some(peer) = b.peer(i) else { continue };
                if let Some(answer) = pipeline.handle(b.packet(i), peer, Transport::Udp, &mut ev)
                    && b.queue(fd, i, answers, answer)
                {
                    answers += 1;
                }
            }
            b.send(fd, answers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn binds_one_socket_per_worker_on_one_port() {
        let group = UdpSockets::bind(loopback(), 4, &UdpSettings::default()).unwrap();
        let addr = group.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let expected = if cfg!(target_os = "linux") { 4 } else { 1 };
        assert_eq!(group.socket_count(), expected);
        for s in &group.sockets {
            assert_eq!(s.local_addr().unwrap(), addr);
        }
        let clone = group.try_clone().unwrap();
        assert_eq!(clone.socket_count(), expected);
        assert_eq!(clone.local_addr().unwrap(), addr);

        let shared = UdpSettings {
            reuseport: false,
            ..UdpSettings::default()
        };
        assert_eq!(
            UdpSockets::bind(loopback(), 4, &shared)
                .unwrap()
                .socket_count(),
            1
        );
        let one = UdpSockets::bind(loopback(), 1, &UdpSettings::default()).unwrap();
        assert_eq!(one.socket_count(), 1);
    }

    #[test]
    fn an_address_in_use_is_refused_not_shared() {
        // Without the plain bind first, a second group would join the first one silently.
        let first = UdpSockets::bind(loopback(), 2, &UdpSettings::default()).unwrap();
        let addr = first.local_addr().unwrap();
        let err = UdpSockets::bind(addr, 2, &UdpSettings::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(first);
        UdpSockets::bind(addr, 2, &UdpSettings::default()).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_cpu_the_process_may_not_use_is_refused() {
        check_affinity(&[]).unwrap();
        let err = check_affinity(&[1023]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("CPU 1023"), "{err}");
    }
}
