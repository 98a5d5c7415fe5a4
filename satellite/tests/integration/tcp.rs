//! The DNS TCP edge's limits (RFC 7766 §6.2): the idle/write deadline against clients that
//! never read or trickle, shutdown with such a client, the cap per client address, pipelined
//! queries and the cap on queries per connection; the idle timeout announced as RFC 7828
//! asks.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::fixtures::registry;
use crate::harness::{EXAMPLE_CONFIG, TestServer, query, tcp_connect, tcp_recv, tcp_send};

/// The example configuration with the given TCP settings in `[server]`.
fn config(idle_ms: u64, max_connections: usize, extra: &str) -> String {
    EXAMPLE_CONFIG
        .replace(
            "tcp_idle_timeout_ms = 10000",
            &format!("tcp_idle_timeout_ms = {idle_ms}"),
        )
        .replace(
            "tcp_max_connections = 1024",
            &format!("tcp_max_connections = {max_connections}\n{extra}"),
        )
}

/// Framed queries for `www.foo.tld A` (a referral with glue, about 100 octets), ids from
/// `first`.
fn framed_queries(first: u16, count: u16) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..count {
        let mut m = query("www.foo.tld.", RecordType::A, None, false);
        m.metadata.id = first.wrapping_add(i);
        let bytes = m.to_vec().unwrap();
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// A client that sends queries as fast as it can and never reads, with a tiny receive buffer
/// so that the server's writes stall soon. It runs until one of its writes fails (the server
/// closed or reset the connection: `Ok`) or none has progressed for `stuck` (`Err`: the
/// server holds the connection). `progress` holds the milliseconds from its start to its
/// last write that went through.
fn never_reading_client(
    server: SocketAddr,
    stuck: Duration,
    progress: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Result<Duration, String>> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_write_timeout(Some(stuck)).unwrap();
    std::thread::spawn(move || {
        let started = Instant::now();
        let chunk = framed_queries(0, 64);
        loop {
            match stream.write_all(&chunk) {
                Ok(()) => progress.store(started.elapsed().as_millis() as u64, Ordering::SeqCst),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(format!(
                        "no write progressed for {stuck:?}: the server holds the connection"
                    ));
                }
                Err(_) => return Ok(started.elapsed()),
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err("the server kept reading for a minute".into());
            }
        }
    })
}

/// Answers a query on a fresh connection, or `None` when the server refuses it.
fn try_answer(server: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(server) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    if s.write_all(&framed_queries(7, 1)).is_err() {
        return false;
    }
    tcp_recv(&mut s).is_some_and(|m| m.id == 7)
}

#[test]
fn a_client_that_never_reads_is_cut_at_the_deadline_and_its_slot_freed() {
    let s = TestServer::start(&config(300, 1, ""), &registry());
    let progress = Arc::new(AtomicU64::new(0));
    let client = never_reading_client(s.tcp, Duration::from_secs(15), progress);
    let ended = client.join().unwrap();
    let took = ended.unwrap_or_else(|e| panic!("{e}"));
    assert!(took < Duration::from_secs(15), "{took:?}");
    // The only slot is free again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !try_answer(s.tcp) {
        assert!(Instant::now() < deadline, "the slot was not freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn shutdown_completes_while_a_write_is_stalled() {
    // A deadline far away: only cancellation can end the stalled write.
    let mut s = TestServer::start(&config(60_000, 4, ""), &registry());
    let progress = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let client = never_reading_client(s.tcp, Duration::from_secs(30), Arc::clone(&progress));
    // Stalled: no write of the client has gone through for 500 ms.
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = started.elapsed().as_millis() as u64;
        if now.saturating_sub(progress.load(Ordering::SeqCst)) > 500 {
            break;
        }
        assert!(now < 20_000, "the client's writes never stalled");
    }
    let took = s.stop();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    // The connection was closed: the client's next writes fail rather than wait.
    assert!(client.join().unwrap().is_ok());
}

#[test]
fn a_trickling_client_is_cut_at_the_deadline_for_the_whole_query() {
    let s = TestServer::start(&config(300, 4, ""), &registry());
    let mut stream = tcp_connect(s.tcp);
    let query = framed_queries(1, 1);
    let started = Instant::now();
    // One octet every 50 ms: each read is quick, the query never completes in time.
    let mut closed = false;
    for &octet in query.iter().cycle().take(200) {
        if stream.write_all(&[octet]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 1];
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => panic!("a trickled query was answered: no deadline for the whole query"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let took = started.elapsed();
    assert!(closed, "still open after {took:?}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn too_many_connections_from_one_address_are_refused() {
    let s = TestServer::start(
        &config(10_000, 16, "tcp_max_connections_per_address = 2"),
        &registry(),
    );
    let mut open: Vec<_> = (0..2).map(|_| tcp_connect(s.tcp)).collect();
    for c in &mut open {
        tcp_send(c, &query("tld.", RecordType::SOA, None, false));
        assert!(tcp_recv(c).is_some());
    }
    // A third from 127.0.0.1 is closed without an answer.
    assert!(!try_answer(s.tcp));
    // Another address has its own count.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&s.tcp.into()).unwrap();
    let mut other: TcpStream = socket.into();
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    tcp_send(&mut other, &query("tld.", RecordType::SOA, None, false));
    assert!(tcp_recv(&mut other).is_some());
    // Closing one gives its slot back to the address.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !try_answer(s.tcp) {
        assert!(
            Instant::now() < deadline,
            "the address's slot was not freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pipelined_queries_are_answered_in_order_up_to_the_cap() {
    let s = TestServer::start(&config(10_000, 16, "tcp_max_queries = 120"), &registry());
    let mut stream = tcp_connect(s.tcp);
    // 100 queries in one write: answered in order, on one connection.
    stream.write_all(&framed_queries(1000, 100)).unwrap();
    for i in 0..100u16 {
        let m = tcp_recv(&mut stream).unwrap_or_else(|| panic!("answer {i} missing"));
        assert_eq!(m.id, 1000 + i);
        assert!(!m.authorities.is_empty(), "answer {i} is not the referral");
    }
    // 40 more: the cap is 120, so 20 answers, then the server closes cleanly (a FIN, not a
    // reset that could destroy answers in flight).
    stream.write_all(&framed_queries(2000, 40)).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("a clean close");
    let mut ids = Vec::new();
    let mut at = 0;
    while at + 2 <= rest.len() {
        let len = u16::from_be_bytes([rest[at], rest[at + 1]]) as usize;
        let m = hickory_proto::op::Message::from_vec(&rest[at + 2..at + 2 + len]).unwrap();
        ids.push(m.id);
        at += 2 + len;
    }
    assert_eq!(ids, (2000..2020).collect::<Vec<_>>());
    assert_eq!(at, rest.len());
}

/// RFC 7828: a TCP client that sends edns-tcp-keepalive hears the idle timeout (in units of
/// 100 ms) in the OPT record; a UDP client that sends it does not (§3.2.2).
#[test]
fn the_idle_timeout_is_announced_to_tcp_clients_that_ask() {
    let s = TestServer::start(&config(12_300, 16, ""), &registry());
    // A query with EDNS and an empty edns-tcp-keepalive option (code 11): hickory writes an
    // OPT without options last, so its RDLENGTH is the last two octets.
    let mut bytes = query("www.foo.tld.", RecordType::A, Some(1232), false)
        .to_vec()
        .unwrap();
    let rdlen = bytes.len() - 2;
    assert_eq!(bytes[rdlen..], [0, 0]);
    bytes[rdlen + 1] = 4;
    bytes.extend_from_slice(&[0, 11, 0, 0]);
    let keepalive_123 = [0u8, 11, 0, 2, 0, 123];

    let mut stream = tcp_connect(s.tcp);
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut answer).unwrap();
    let parsed = hickory_proto::op::Message::from_vec(&answer).unwrap();
    assert!(!parsed.authorities.is_empty(), "the referral");
    assert!(answer.ends_with(&keepalive_123), "{answer:02x?}");

    let over_udp = crate::harness::udp_exchange(s.udp, &bytes).expect("a UDP answer");
    hickory_proto::op::Message::from_vec(&over_udp).unwrap();
    // The OPT record ends the answer with an RDLENGTH of 0: no option.
    assert!(over_udp.ends_with(&[0, 0]), "{over_udp:02x?}");
}
