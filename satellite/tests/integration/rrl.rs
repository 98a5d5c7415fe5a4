//! Response rate limiting over real UDP and TCP sockets, with spoofed-source floods: clients
//! bind to several loopback addresses (all of 127.0.0.0/8 is on the loopback interface), as a
//! reflection attack spoofs several addresses of its victim's network. The flooded /24 is
//! limited (every third limited answer truncated, the others dropped), other /24s are answered,
//! and TCP from a flooding address is answered in full.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::fixtures::registry;
use crate::harness::{EXAMPLE_CONFIG, TestServer, query, tcp_recv, tcp_send};

/// A burst of 10 answers per (prefix, class), then one a second; every 3rd limited answer
/// slips.
fn config() -> String {
    EXAMPLE_CONFIG
        .replacen(
            "[[chains]]",
            "[leaves.rrl]\nkind = \"rrl\"\nrate = 1\nwindow = 10\nslip = 3\n\n[[chains]]",
            1,
        )
        .replacen(
            "leaves = [\"validate\", ",
            "leaves = [\"rrl\", \"validate\", ",
            1,
        )
}

/// Answers received, split into full and truncated ones.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    full: usize,
    truncated: usize,
}

/// Receives on every socket until none has had anything for `quiet`.
fn drain(sockets: &[UdpSocket], quiet: Duration, tally: &mut Tally) {
    let mut buf = [0u8; 65535];
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        for s in sockets {
            while let Ok(n) = s.recv(&mut buf) {
                let m = Message::from_vec(&buf[..n]).unwrap();
                if m.truncation {
                    assert!(m.answers.is_empty() && m.authorities.is_empty());
                    tally.truncated += 1;
                } else {
                    assert!(!m.authorities.is_empty(), "a referral");
                    tally.full += 1;
                }
                last = Instant::now();
            }
        }
    }
}

/// Sends `count` referral queries from `sources` in turn (in small batches, draining the
/// answers between them so that no socket buffer overflows) and counts the answers.
fn flood(server: SocketAddr, sources: &[Ipv4Addr], count: usize) -> Tally {
    let sockets: Vec<UdpSocket> = sources
        .iter()
        .map(|&a| {
            let s = UdpSocket::bind((a, 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
            s
        })
        .collect();
    let packet = query("www.foo.tld.", RecordType::A, None, false)
        .to_vec()
        .unwrap();
    let mut tally = Tally::default();
    for i in 0..count {
        sockets[i % sockets.len()].send_to(&packet, server).unwrap();
        if i % 10 == 9 {
            drain(&sockets, Duration::from_millis(5), &mut tally);
        }
    }
    drain(&sockets, Duration::from_millis(300), &mut tally);
    tally
}

/// A TCP connection from source address `from`.
fn tcp_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let stream = TcpStream::from(socket);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

fn rrl_counters(s: &TestServer) -> BTreeMap<String, u64> {
    let mut seen = BTreeMap::new();
    s.pipeline.selector.counters(&mut |leaf, counter, value| {
        if leaf == "rrl" {
            seen.insert(counter.to_owned(), value);
        }
    });
    seen
}

#[test]
fn spoofed_floods_are_limited_and_slipped_other_prefixes_answered() {
    let s = TestServer::start(&config(), &registry());
    let start = Instant::now();
    let victim: Vec<Ipv4Addr> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let sent = 300;
    let flooded = flood(s.udp, &victim, sent);
    // The burst, and at most one token a second since.
    let refills = start.elapsed().as_secs() as usize + 1;
    assert!(
        (10..=10 + refills).contains(&flooded.full),
        "{flooded:?} after {:?}",
        start.elapsed()
    );
    let c = rrl_counters(&s);
    let limited = sent - flooded.full;
    assert_eq!(c["limited"], limited as u64, "{c:?}");
    // Every third limited answer of the bucket slipped, the rest were dropped.
    assert_eq!(flooded.truncated, limited / 3, "{flooded:?}");
    assert_eq!(c["slipped"], (limited / 3) as u64);
    assert_eq!(c["dropped"], (limited - limited / 3) as u64);

    // Other /24s are answered in full, from one address or several.
    for other in [&["127.0.1.1"][..], &["127.0.2.1", "127.0.2.2"]] {
        let sources: Vec<Ipv4Addr> = other.iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(
            flood(s.udp, &sources, 8),
            Tally {
                full: 8,
                truncated: 0
            },
            "{other:?}"
        );
    }
    // TCP from a flooding address is never limited.
    let mut stream = tcp_from(victim[0], s.tcp);
    for _ in 0..20 {
        tcp_send(
            &mut stream,
            &query("www.foo.tld.", RecordType::A, None, false),
        );
        let m = tcp_recv(&mut stream).expect("a TCP answer");
        assert!(!m.truncation && !m.authorities.is_empty());
    }
    // The flooded prefix is still limited over UDP: the tokens earned since, then slips.
    let again = flood(s.udp, &victim[1..2], 30);
    let refills = start.elapsed().as_secs() as usize + 1;
    assert!(again.full + flooded.full <= 10 + refills, "{again:?}");
    assert!(again.truncated >= (30 - refills) / 3, "{again:?}");
}
