//! Rate limiting at the Whois and RDAP edges, over real loopback connections from several
//! source addresses (all of 127.0.0.0/8 is on the loopback interface): a flood from one
//! address is limited, a neighbour in the same /24 is limited once the prefix's bucket is
//! spent, and an address in another /24 is still served.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use orrery_satellite::dns::leaf::SelectorConfig;
use orrery_satellite::rds::leaf::RdsLeafConfig;
use orrery_satellite::rds::rdap_server::{RdapServer, RdapSettings};
use orrery_satellite::rds::whois_server::{WhoisServer, WhoisSettings};
use orrery_satellite::rds::{Rds, RdsPipeline};
use orrery_satellite::selector::Selector;
use orrery_satellite::{BuildOptions, Served, ServedStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;

use crate::fixtures::registry;

/// 5 queries per address, 8 per /24, refilled so slowly (one token per 100 s) that the test
/// never sees a refill.
const CHAIN: &str = r#"
[leaves.validate]
kind = "validate_query"
[leaves.limit]
kind = "rate_limit"
address_rate = 0.01
address_burst = 5
prefix_rate = 0.01
prefix_burst = 8
[leaves.lookup]
kind = "lookup"
[[chains]]
name = "main"
leaves = ["limit", "validate", "lookup"]
"#;

fn pipeline() -> Arc<ArcSwap<RdsPipeline>> {
    let config: SelectorConfig<RdsLeafConfig> = toml::from_str(CHAIN).unwrap();
    Arc::new(ArcSwap::from_pointee(RdsPipeline::new(
        Selector::<Rds>::build(&config).unwrap(),
        Arc::new(ServedStore::new(Served::from_snapshot(
            &registry(),
            BuildOptions::default(),
        ))),
    )))
}

/// Sends `request` from source address `from` and reads until the server closes.
async fn exchange(from: &str, to: SocketAddr, request: &[u8]) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut out),
    )
    .await
    .expect("no answer within 5 s")
    .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `count` requests from `from`; returns how many were answered and how many limited.
async fn flood(
    from: &str,
    to: SocketAddr,
    request: &[u8],
    count: usize,
    limited: impl Fn(&str) -> bool,
) -> (usize, usize) {
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..count {
        if limited(&exchange(from, to, request).await) {
            refused += 1;
        } else {
            ok += 1;
        }
    }
    (ok, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whois_flood_is_limited_per_address_and_prefix_while_others_are_served() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let server = WhoisServer::start(
        pipeline(),
        vec![listener],
        WhoisSettings::default(),
        cancel.clone(),
    )
    .unwrap();
    let limited = |answer: &str| answer.contains("rate limit exceeded");
    let query = b"foo.tld\r\n";
    // The flooder: its 5 tokens, then refusals.
    assert_eq!(flood("127.0.0.1", addr, query, 12, limited).await, (5, 7));
    let answer = exchange("127.0.0.1", addr, query).await;
    assert!(
        answer.starts_with("% Error: rate limit exceeded"),
        "{answer}"
    );
    // A neighbour in the same /24: the prefix's 3 remaining tokens, then refusals.
    assert_eq!(flood("127.0.0.2", addr, query, 6, limited).await, (3, 3));
    // Another /24 is served in full.
    let answer = exchange("127.0.1.1", addr, query).await;
    assert!(answer.starts_with("Domain Name: FOO.TLD"), "{answer}");
    cancel.cancel();
    server.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdap_flood_gets_429_with_retry_after_while_others_are_served() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let server = RdapServer::start(
        pipeline(),
        vec![listener],
        RdapSettings::default(),
        cancel.clone(),
    )
    .unwrap();
    let request = b"GET /domain/foo.tld HTTP/1.1\r\nHost: rdap.test\r\nConnection: close\r\n\r\n";
    let limited = |answer: &str| answer.starts_with("HTTP/1.1 429");
    assert_eq!(flood("127.0.0.1", addr, request, 9, limited).await, (5, 4));
    let answer = exchange("127.0.0.1", addr, request).await;
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 429"), "{answer}");
    let retry: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .expect("a Retry-After header")
        .trim()
        .parse()
        .unwrap();
    // One token per 100 s: the next one comes in at most 100 s, at least 1 s (rounded up).
    assert!((1..=100).contains(&retry), "{retry}");
    assert!(answer.contains("\"errorCode\":429"), "{answer}");
    assert_eq!(flood("127.0.0.2", addr, request, 4, limited).await, (3, 1));
    let answer = exchange("127.0.1.1", addr, request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    cancel.cancel();
    server.join().await;
}
