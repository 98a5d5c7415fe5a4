//! Graceful shutdown: cancelling stops UDP workers, the accept loop and open connections.

use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::fixtures::registry;
use crate::harness::{
    EXAMPLE_CONFIG, TestServer, query, tcp_connect, tcp_recv, tcp_send, udp, udp_exchange,
};

#[test]
fn stops_promptly_with_open_connections() {
    let mut s = TestServer::start(EXAMPLE_CONFIG, &registry());
    let _ = udp(s.udp, &query("tld.", RecordType::SOA, None, false));
    let mut idle = tcp_connect(s.tcp);
    tcp_send(&mut idle, &query("tld.", RecordType::SOA, None, false));
    assert!(tcp_recv(&mut idle).is_some());
    let took = s.stop();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    // The idle connection was closed and nothing answers any more.
    assert!(tcp_recv(&mut idle).is_none());
    let bytes = query("tld.", RecordType::SOA, None, false)
        .to_vec()
        .unwrap();
    assert!(udp_exchange(s.udp, &bytes).is_none());
    assert!(std::net::TcpStream::connect_timeout(&s.tcp, Duration::from_millis(200)).is_err());
}
