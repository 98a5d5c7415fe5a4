//! `TestServer`: a satellite started from a config string on 127.0.0.1:0, stopped on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use orrery_satellite::dns::leaf::Dns;
use orrery_satellite::dns::server::Server;
use orrery_satellite::dns::udp::UdpSockets;
use orrery_satellite::xfr::XfrService;
use orrery_satellite::{Config, Pipeline, Selector, Served, ServedStore, SnapshotData, ZoneSet};
use tokio_util::sync::CancellationToken;

/// The example configuration shipped with the crate.
pub(crate) const EXAMPLE_CONFIG: &str = include_str!("../../../deploy/satellite.example.toml");

pub(crate) struct TestServer {
    pub(crate) udp: SocketAddr,
    pub(crate) tcp: SocketAddr,
    pub(crate) zones: Arc<ServedStore>,
    /// The query path, for reading the leaves' counters.
    pub(crate) pipeline: Arc<Pipeline>,
    cancel: CancellationToken,
    server: Option<Server>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    pub(crate) fn start(config: &str, data: &SnapshotData) -> Self {
        Self::start_on(config, data, "127.0.0.1:0".parse().unwrap())
    }

    /// [`TestServer::start`] with UDP on `udp` (port 0 picks one), bound as the
    /// configuration's UDP settings say.
    pub(crate) fn start_on(config: &str, data: &SnapshotData, udp: SocketAddr) -> Self {
        let config = Config::parse(config).expect("config");
        let zones = Arc::new(ServedStore::new(Served::dns_only(ZoneSet::build(
            data.serial,
            &data.zones,
            &data.domains,
            &data.hosts,
        ))));
        let pipeline = Arc::new(
            Pipeline::new(
                Selector::<Dns>::build(&config.selector).unwrap(),
                Arc::clone(&zones),
                config.nsid(),
            )
            .with_xfr(XfrService::for_settings(&config.settings, &zones)),
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cancel = CancellationToken::new();
        let udp = UdpSockets::bind(udp, config.server.workers, &config.server.udp).unwrap();
        let udp_addr = udp.local_addr().unwrap();
        let served = Arc::clone(&pipeline);
        let (server, tcp_addr) = runtime.block_on(async {
            // TCP on the UDP port when it is free, as a secondary expects (SOA over UDP,
            // transfers over TCP, one address).
            let tcp = match tokio::net::TcpListener::bind(udp_addr).await {
                Ok(l) => l,
                Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            };
            let tcp_addr = tcp.local_addr().unwrap();
            let server = Server::start(
                pipeline,
                vec![udp],
                vec![tcp],
                &config.server,
                cancel.clone(),
            )
            .unwrap();
            (server, tcp_addr)
        });
        Self {
            udp: udp_addr,
            tcp: tcp_addr,
            zones,
            pipeline: served,
            cancel,
            server: Some(server),
            runtime: Some(runtime),
        }
    }

    /// Cancels and waits for a clean stop; returns how long it took.
    pub(crate) fn stop(&mut self) -> Duration {
        let start = std::time::Instant::now();
        self.cancel.cancel();
        if let (Some(server), Some(rt)) = (self.server.take(), self.runtime.as_ref()) {
            rt.block_on(server.join());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        start.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A query message; `edns` is the advertised UDP size, `None` for no OPT.
pub(crate) fn query(name: &str, rtype: RecordType, edns: Option<u16>, dnssec_ok: bool) -> Message {
    let mut m = Message::query();
    m.metadata.id = rand::random();
    let mut q = Query::query(Name::from_ascii(name).unwrap(), rtype);
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m
}

pub(crate) fn udp_exchange(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock.send_to(bytes, server).unwrap();
    let mut buf = vec![0u8; 65535];
    let n = sock.recv(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

pub(crate) fn udp(server: SocketAddr, m: &Message) -> Message {
    let reply = udp_exchange(server, &m.to_vec().unwrap()).expect("udp reply");
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.id, m.id);
    reply
}

pub(crate) fn tcp_send(stream: &mut TcpStream, m: &Message) {
    try_tcp_send(stream, m).unwrap();
}

pub(crate) fn try_tcp_send(stream: &mut TcpStream, m: &Message) -> std::io::Result<()> {
    let bytes = m.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed)
}

pub(crate) fn tcp_recv(stream: &mut TcpStream) -> Option<Message> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).ok()?;
    Some(Message::from_vec(&buf).unwrap())
}

pub(crate) fn tcp_connect(server: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}
