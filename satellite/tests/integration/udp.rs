//! The UDP edge (`orrery_satellite::dns::udp`): bursts from many clients all answered under every
//! socket/batch layout, a lone query answered at once, wildcard binds answering from the
//! queried address, pinning.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::fixtures::registry;
use crate::harness::{EXAMPLE_CONFIG, TestServer, query};

/// The example configuration with `extra` added to `[server]`.
fn config(extra: &str) -> String {
    EXAMPLE_CONFIG.replace("workers = 2", &format!("workers = 2\n{extra}"))
}

/// Sends `per_client` queries from each of `clients` sockets, keeping `window` in flight per
/// client (so the burst stays within the sockets' receive buffers: a lost datagram here is
/// a bug, not congestion), and checks every answer against its query.
fn burst(server: SocketAddr, clients: usize, per_client: usize, window: usize) {
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.connect(server).unwrap();
                sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                // id → (query name, expected rcode)
                let mut pending: HashMap<u16, (String, ResponseCode)> = HashMap::new();
                let mut sent = 0;
                let mut answered = 0;
                let mut buf = [0u8; 2048];
                while answered < per_client {
                    while sent < per_client && pending.len() < window {
                        let i = c * per_client + sent;
                        // Every third name is not delegated: NXDOMAIN, the rest referrals.
                        let (name, rcode) = if i.is_multiple_of(3) {
                            (format!("www.missing{i}.tld."), ResponseCode::NXDomain)
                        } else {
                            (format!("www.d{}.tld.", i % 200), ResponseCode::NoError)
                        };
                        let mut q = query(&name, RecordType::A, Some(1232), false);
                        q.metadata.id = (i % 65536) as u16;
                        assert!(pending.insert(q.id, (name, rcode)).is_none());
                        sock.send(&q.to_vec().unwrap()).unwrap();
                        sent += 1;
                    }
                    let n = sock.recv(&mut buf).unwrap_or_else(|e| {
                        panic!(
                            "client {c}: {} of {per_client} answered, then {e}",
                            answered
                        )
                    });
                    let m = Message::from_vec(&buf[..n]).unwrap();
                    let (name, rcode) = pending
                        .remove(&m.id)
                        .unwrap_or_else(|| panic!("client {c}: unexpected id {}", m.id));
                    assert_eq!(m.queries[0].name().to_string(), name);
                    assert_eq!(m.response_code, rcode, "{name}");
                    assert!(m.edns.is_some(), "{name}: OPT echoed");
                    answered += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn bursts_from_many_clients_are_all_answered_in_every_layout() {
    for extra in [
        "",
        "udp_batch = 64",
        "udp_batch = 1\nudp_reuseport = false",
        "udp_reuseport = false",
    ] {
        let s = TestServer::start(&config(extra), &registry());
        burst(s.udp, 8, 400, 24);
    }
}

#[test]
fn a_lone_query_is_answered_at_once() {
    // A batch that waited to fill would hold a lone query until the read timeout (100 ms).
    let s = TestServer::start(EXAMPLE_CONFIG, &registry());
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut times = Vec::new();
    let mut buf = [0u8; 2048];
    for i in 0..21 {
        let q = query(&format!("d{i}.tld."), RecordType::NS, None, false);
        let start = Instant::now();
        sock.send_to(&q.to_vec().unwrap(), s.udp).unwrap();
        let n = sock.recv(&mut buf).expect("answer");
        times.push(start.elapsed());
        assert_eq!(Message::from_vec(&buf[..n]).unwrap().id, q.id);
        std::thread::sleep(Duration::from_millis(5));
    }
    times.sort();
    assert!(
        times[10] < Duration::from_millis(20),
        "median {:?}",
        times[10]
    );
}

/// Queries `dest` from a client connected to it: the kernel drops an answer from any other
/// source address.
fn answered_from(dest: SocketAddr, client: &str) -> bool {
    let sock = UdpSocket::bind(client).unwrap();
    sock.connect(dest).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let q = query("foo.tld.", RecordType::NS, None, false);
    sock.send(&q.to_vec().unwrap()).unwrap();
    let mut buf = [0u8; 2048];
    match sock.recv(&mut buf) {
        Ok(n) => Message::from_vec(&buf[..n]).unwrap().id == q.id,
        Err(_) => false,
    }
}

#[test]
fn a_wildcard_bind_answers_from_the_queried_address() {
    for extra in ["", "udp_batch = 1\nudp_reuseport = false"] {
        let s = TestServer::start_on(&config(extra), &registry(), "0.0.0.0:0".parse().unwrap());
        let port = s.udp.port();
        // Routing would answer 127.0.0.1 from 127.0.0.1; the answer must come from the
        // address asked.
        for dest in ["127.0.0.1", "127.0.0.2", "127.0.0.53"] {
            let dest = SocketAddr::new(dest.parse().unwrap(), port);
            assert!(answered_from(dest, "127.0.0.1:0"), "{extra:?}: {dest}");
        }
    }
    // A dual-stack socket: IPv4 clients arrive as mapped addresses.
    if UdpSocket::bind("[::1]:0").is_ok() {
        let s = TestServer::start_on(EXAMPLE_CONFIG, &registry(), "[::]:0".parse().unwrap());
        let port = s.udp.port();
        let v6 = SocketAddr::new("::1".parse().unwrap(), port);
        assert!(answered_from(v6, "[::1]:0"), "{v6}");
        let v4 = SocketAddr::new("127.0.0.2".parse().unwrap(), port);
        assert!(answered_from(v4, "127.0.0.1:0"), "{v4}");
    }
}

#[test]
fn pinned_workers_answer() {
    let s = TestServer::start(&config("cpu_affinity = [0]"), &registry());
    burst(s.udp, 2, 100, 8);
}
