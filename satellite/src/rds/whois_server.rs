//! The Whois edge (RFC 3912, TCP port 43): one query line per connection, answered, closed.
//!
//! ```text
//!  accept ──► cap per client address (IPv6: /64), then connection cap (a Semaphore, tried,
//!    │          never waited on)
//!    │          └─ over one: "% Error: too many connections from your address…" or
//!    │             "% Error: server busy, try again later", close
//!    ▼ one tokio task per connection
//!  read up to LF: at most `max_line` octets, within ONE deadline for the whole line
//!    │   (straight into the event's request buffer)
//!    │          ├─ longer: "% Error: query too long", FIN, drain what follows, close
//!    │          └─ deadline passed: "% Error: timeout", FIN, drain, close
//!    ▼
//!  RdsPipeline::handle ──► Selector<Rds> ──► whois::render (same directory version)
//!    ▼
//!  write the answer (its own deadline), MSG_MORE ──► close: the FIN rides with its end
//! ```
//!
//! # The line
//! RFC 3912 §2: the client sends one line ending in CRLF, the server answers and closes. A bare
//! LF is accepted too (hand-typed `nc` sessions). A client that half-closes after sending a
//! query *without* a line end (`printf foo.tld | nc …`) is answered as if the line had ended:
//! what arrived is unambiguous, and refusing it helps no one; a connection closed before any
//! octet arrived (port probes, TCP health checks) gets no answer at all. Octets after the line
//! end are ignored.
//!
//! # Slow and hostile clients
//! The read deadline covers the whole line, not each read: a client trickling one octet at a
//! time is cut when the deadline passes, so a connection slot is held at most `timeout` for
//! reading plus `timeout` for writing. Connections over the cap are answered at once with a
//! single non-blocking write from the accept loop, never queued. Accept errors (EMFILE,
//! ENFILE…) are logged at most once a second and followed by a short pause, so they never spin.
//!
//! # Costs
//! Per connection: one task, the event taken from (and returned to) the pipeline's free list,
//! one answer buffer, two timers. The pipeline is loaded from its [`ArcSwap`] once per
//! connection, so a new Selector from the link applies from the next connection on.
//!
//! Fresh connections on a busy server cost mostly kernel time, so the edge saves system calls
//! and segments: the answer is queued with `MSG_MORE` and leaves in one segment with the FIN
//! that closing the socket sends; no `shutdown` call, no `TCP_NODELAY` (Nagle never holds back
//! a single send followed by a FIN), and no draining read when the line arrived alone.
//!
//! # Shutdown
//! On cancellation the accept loops stop, connections still reading their line are closed
//! without an answer, and answers being written finish (bounded by the write deadline).
//! [`WhoisServer::join`] waits for all of it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;

use super::{Protocol, RdsPipeline, whois};
use crate::tcp::accept;
use crate::tcp::connection_limit::{DEFAULT_PER_ADDRESS, PerAddress};

/// Answer to a connection over the cap.
const BUSY: &[u8] = b"% Error: server busy, try again later\r\n";
/// Answer to a connection over the cap of its client address.
const TOO_MANY: &[u8] = b"% Error: too many connections from your address, try again later\r\n";
/// How long, and how much, a client cut off by an error may go on sending before the close.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 * 1024 * 1024;
/// Answer to a line longer than `max_line`.
const TOO_LONG: &[u8] = b"% Error: query too long\r\n";
/// Answer to a client that did not finish its line in time.
const TIMEOUT: &[u8] = b"% Error: timeout\r\n";

/// Capacity a fresh answer buffer starts with: a domain answer with four contacts fits.
const ANSWER_CAPACITY: usize = 4096;

/// Settings of the Whois edge.
#[derive(Clone, Debug)]
pub struct WhoisSettings {
    /// Connections served at once (over every listener); more are told "busy" and closed.
    pub max_connections: usize,
    /// Connections served at once from one client address (IPv6: one /64); more are told so
    /// and closed.
    pub max_connections_per_address: u32,
    /// Time to receive the whole query line, and separately to write the answer.
    pub timeout: Duration,
    /// Longest query line, in octets, line end excluded.
    pub max_line: usize,
}

impl Default for WhoisSettings {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_address: DEFAULT_PER_ADDRESS,
            timeout: Duration::from_secs(10),
            max_line: 512,
        }
    }
}

/// A running Whois edge.
pub struct WhoisServer {
    accept_loops: JoinSet<()>,
}

/// What every connection task shares.
struct Shared {
    pipeline: Arc<ArcSwap<RdsPipeline>>,
    settings: WhoisSettings,
    slots: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    cancel: CancellationToken,
}

impl WhoisServer {
    /// Serves on already-bound listeners until `cancel`. Must be called inside a tokio runtime.
    /// The pipeline is read from the `ArcSwap` per connection, so the link can replace it (a
    /// new Selector) without a restart.
    pub fn start(
        pipeline: Arc<ArcSwap<RdsPipeline>>,
        listeners: Vec<std::net::TcpListener>,
        settings: WhoisSettings,
        cancel: CancellationToken,
    ) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            pipeline,
            slots: Arc::new(Semaphore::new(
                settings.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            per_address: PerAddress::new(
                settings.max_connections_per_address,
                settings.max_connections,
            ),
            settings,
            cancel,
        });
        let mut accept_loops = JoinSet::new();
        for listener in listeners {
            listener.set_nonblocking(true)?;
            let listener = TcpListener::from_std(listener)?;
            accept_loops.spawn(accept_loop(listener, Arc::clone(&shared)));
        }
        Ok(Self { accept_loops })
    }

    /// Waits until every listener and connection has stopped (after the token is cancelled).
    pub async fn join(mut self) {
        while self.accept_loops.join_next().await.is_some() {}
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let cancel = shared.cancel.clone();
    accept::accept_loop(listener, "whois accept", cancel, |stream, peer| {
        let Some(address_slot) = shared.per_address.try_acquire(peer.ip()) else {
            refuse(&stream, TOO_MANY);
            return None;
        };
        let Ok(permit) = Arc::clone(&shared.slots).try_acquire_owned() else {
            refuse(&stream, BUSY);
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

/// Over a cap: one non-blocking write (a fresh socket's send buffer is empty), then close.
fn refuse(stream: &TcpStream, why: &[u8]) {
    let _ = stream.try_write(why);
    discard_unread(stream);
}

/// How a query line ended.
enum Line {
    /// A line end arrived, or the client closed its side after sending some octets; the buffer
    /// holds the line without its line end. `more`: octets after the line end arrived with it.
    Complete { more: bool },
    /// The client closed its side before sending anything.
    Closed,
    /// More than `max_line` octets before a line end.
    TooLong,
}

async fn serve_connection(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let settings = &shared.settings;
    let pipeline = shared.pipeline.load_full();
    let mut ev = pipeline.take();
    ev.reset(peer.ip(), Protocol::Whois);
    let deadline = Instant::now() + settings.timeout;
    let read = tokio::select! {
        read = timeout_at(deadline, read_line(&mut stream, &mut ev.request, settings.max_line)) => read,
        () = shared.cancel.cancelled() => {
            pipeline.put(ev);
            return;
        }
    };
    let mut answer = Vec::new();
    // Whether the client may have sent octets not read yet (beyond its line, or the rest of an
    // over-long or late one).
    let mut unread = true;
    // Cut off mid-line (too long, too slow): the client may still be sending.
    let mut cut_off = false;
    let reply: &[u8] = match read {
        // An empty line is a query too: the chain says what is wrong with it.
        Ok(Ok(Line::Complete { more })) => {
            unread = more;
            let answered = pipeline.handle(&mut ev, |ev, answered, ctx| {
                if answered {
                    answer.reserve(ANSWER_CAPACITY);
                    whois::render(ev, ctx, &mut answer);
                }
                answered
            });
            pipeline.put(ev);
            if !answered {
                // A leaf dropped the request: close without a word.
                return;
            }
            &answer
        }
        Ok(Ok(Line::TooLong)) => {
            pipeline.put(ev);
            cut_off = true;
            TOO_LONG
        }
        Err(_elapsed) => {
            pipeline.put(ev);
            cut_off = true;
            TIMEOUT
        }
        // Closed before any octet (a probe), or a read error: nothing to answer.
        Ok(Ok(Line::Closed) | Err(_)) => {
            pipeline.put(ev);
            return;
        }
    };
    let written = timeout(settings.timeout, async {
        let sent = send_more(&stream, reply);
        stream.write_all(&reply[sent..]).await
    })
    .await;
    if cut_off {
        // A large paste, a slow writer: the error line must reach it whole, before the close.
        if matches!(written, Ok(Ok(()))) {
            linger(stream).await;
        }
        return;
    }
    // Closing the socket (dropping it) sends the FIN, in the segment that ends the answer: no
    // separate `shutdown` call. A socket closed with unread octets is reset instead, which may
    // discard the end of the answer, so what may be there is drained first — one system call
    // that a well-behaved client, whose line arrived alone, does not need.
    if unread && matches!(written, Ok(Ok(()))) {
        discard_unread(&stream);
    }
}

/// Queues as much of `reply` as the socket takes now without pushing it (`MSG_MORE`), so that
/// the FIN that closing the socket sends leaves in the same segment as the answer's end: one
/// segment fewer per connection than a write followed by a FIN (`cargo bench --bench rds`
/// counts them: 10 → 9). Returns how much was queued; the caller writes the rest (none for an
/// answer that fits a fresh socket's send buffer) the usual way.
pub fn send_more(stream: &TcpStream, reply: &[u8]) -> usize {
    // Elsewhere than Linux the flag does not exist: a plain send, FIN in a segment of its own.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const MSG_MORE: libc::c_int = libc::MSG_MORE;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const MSG_MORE: libc::c_int = 0;
    stream
        .try_io(tokio::io::Interest::WRITABLE, || {
            socket2::SockRef::from(stream).send_with_flags(reply, MSG_MORE)
        })
        .unwrap_or(0)
}

/// Reads one line into `buf` (emptied first), without its CRLF or LF.
///
/// Reads go straight into `buf`'s spare capacity; at most `max_line + 2` octets are wanted
/// (the line and its CRLF), so a client cannot make the buffer grow beyond that by much.
async fn read_line(stream: &mut TcpStream, buf: &mut Vec<u8>, max_line: usize) -> io::Result<Line> {
    let want = max_line.saturating_add(2);
    buf.clear();
    loop {
        let start = buf.len();
        buf.reserve(want - start);
        if stream.read_buf(buf).await? == 0 {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(if buf.is_empty() {
                Line::Closed
            } else if buf.len() > max_line {
                Line::TooLong
            } else {
                Line::Complete { more: false }
            });
        }
        if let Some(i) = buf[start..].iter().position(|&b| b == b'\n') {
            // A read that filled the room it had may have left more behind.
            let more = buf.len() > start + i + 1 || buf.len() == buf.capacity();
            buf.truncate(start + i);
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(if buf.len() > max_line {
                Line::TooLong
            } else {
                Line::Complete { more }
            });
        }
        if buf.len() >= want {
            return Ok(Line::TooLong);
        }
    }
}

/// Reads and drops what the client sent beyond its line, without waiting: closing a socket
/// with unread data makes the kernel reset the connection instead of closing it, which may
/// discard the end of an answer not yet sent.
/// Closes a connection whose client may still be sending, without a reset: FIN first (the
/// error line is complete), then what the client sends is read and discarded until it closes
/// its side, for at most [`LINGER`] and [`LINGER_BYTES`]. Closing with unread octets makes the
/// kernel answer with a reset, which can destroy the error line in the client's buffers
/// before it reads it.
async fn linger(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut left = LINGER_BYTES;
    let _ = timeout(LINGER, async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

fn discard_unread(stream: &TcpStream) {
    let mut sink = [0u8; 512];
    for _ in 0..8 {
        match stream.try_read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::time::Instant;

    use super::*;
    use crate::dns::leaf::SelectorConfig;
    use crate::rds::Rds;
    use crate::rds::leaf::{DEFAULT_SELECTOR, RdsLeafConfig};
    use crate::selector::Selector;
    use crate::served::Served;
    use crate::served::ServedStore;

    fn pipeline(selector: &str) -> RdsPipeline {
        let config: SelectorConfig<RdsLeafConfig> = toml::from_str(selector).unwrap();
        let mut zones = Served::default();
        zones.directory = crate::rds::directory::tests::sample();
        RdsPipeline::new(
            Selector::<Rds>::build(&config).unwrap(),
            Arc::new(ServedStore::new(zones)),
        )
    }

    struct TestWhois {
        addr: SocketAddr,
        pipeline: Arc<ArcSwap<RdsPipeline>>,
        cancel: CancellationToken,
        server: WhoisServer,
    }

    fn start(settings: WhoisSettings) -> TestWhois {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let pipeline = Arc::new(ArcSwap::from_pointee(pipeline(DEFAULT_SELECTOR)));
        let cancel = CancellationToken::new();
        let server = WhoisServer::start(
            Arc::clone(&pipeline),
            vec![listener],
            settings,
            cancel.clone(),
        )
        .unwrap();
        TestWhois {
            addr,
            pipeline,
            cancel,
            server,
        }
    }

    impl TestWhois {
        async fn stop(self) {
            self.cancel.cancel();
            timeout(Duration::from_secs(5), self.server.join())
                .await
                .expect("the server stops");
        }
    }

    /// Reads until the server closes (or resets: what arrived before counts); returns the text
    /// and how long it took.
    async fn read_all(stream: &mut TcpStream) -> (String, Duration) {
        let start = Instant::now();
        let mut buf = Vec::new();
        let read = timeout(Duration::from_secs(5), stream.read_to_end(&mut buf));
        assert!(read.await.is_ok(), "the server did not close");
        (String::from_utf8_lossy(&buf).into_owned(), start.elapsed())
    }

    /// Sends `query` (as is: the caller adds the line end) and reads the whole answer.
    async fn ask(addr: SocketAddr, query: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(query).await.unwrap();
        read_all(&mut stream).await.0
    }

    fn short(timeout: Duration) -> WhoisSettings {
        WhoisSettings {
            timeout,
            ..WhoisSettings::default()
        }
    }

    #[tokio::test]
    async fn answers_a_query_line_ended_by_crlf_or_lf() {
        let s = start(WhoisSettings::default());
        let crlf = ask(s.addr, b"foo.tld\r\n").await;
        for want in [
            "Domain Name: FOO.TLD\r\n",
            "Registrar IANA ID: 9999\r\n",
            "Registrant Name: Name of C1\r\n",
            "Tech Name: REDACTED FOR PRIVACY\r\n",
            "Name Server: NS1.FOO.TLD\r\nName Server: NS.OTHER.EXAMPLE\r\n",
            "DNSSEC: signedDelegation\r\n",
        ] {
            assert!(crlf.contains(want), "missing {want:?} in\n{crlf}");
        }
        assert!(crlf.ends_with("\r\n"));
        let lf = ask(s.addr, b"domain FOO.tld\n").await;
        assert_eq!(lf, crlf);
        let ns = ask(s.addr, b"nameserver ns1.foo.tld\r\n").await;
        assert!(
            ns.starts_with("Server Name: NS1.FOO.TLD\r\nIP Address: 192.0.2.1\r\n"),
            "{ns}"
        );
        let none = ask(s.addr, b"nope.tld\r\n").await;
        assert!(none.starts_with("No match for \"nope.tld\".\r\n"), "{none}");

        // No line end, then a half-close: what arrived is the query.
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        stream.write_all(b"foo.tld").await.unwrap();
        stream.shutdown().await.unwrap();
        assert_eq!(read_all(&mut stream).await.0, crlf);
        // Closed before any octet: no answer.
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        stream.shutdown().await.unwrap();
        assert_eq!(read_all(&mut stream).await.0, "");

        // Octets after the line are ignored, and drained: the answer ends with a clean close
        // (FIN), not a reset that could cut it. So does the answer to a well-behaved client.
        for query in [&b"foo.tld\r\n"[..], b"foo.tld\r\nand more octets\r\n"] {
            let mut stream = TcpStream::connect(s.addr).await.unwrap();
            stream.write_all(query).await.unwrap();
            let mut buf = Vec::new();
            let read = timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
            assert!(matches!(read, Ok(Ok(_))), "{read:?}");
            assert_eq!(String::from_utf8_lossy(&buf), crlf);
        }
        s.stop().await;
    }

    #[tokio::test]
    async fn refuses_long_lines_and_bad_octets() {
        let s = start(WhoisSettings::default());
        // 512 octets is the limit: such a line reaches the chain (and is no domain name).
        let mut line = vec![b'a'; 512];
        line.extend_from_slice(b"\r\n");
        let answer = ask(s.addr, &line).await;
        assert_eq!(answer, "% Error: not a valid domain name\r\n");
        line.insert(0, b'a');
        assert_eq!(ask(s.addr, &line).await, "% Error: query too long\r\n");
        // Without a line end, the refusal comes as soon as the limit is passed, not at the
        // deadline, and the connection is closed while the client still holds its side open.
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        stream.write_all(&[b'a'; 600]).await.unwrap();
        let (answer, took) = read_all(&mut stream).await;
        assert_eq!(answer, "% Error: query too long\r\n");
        assert!(took < Duration::from_secs(2), "{took:?}");

        assert_eq!(
            ask(s.addr, b"foo\xff.tld\r\n").await,
            "% Error: the query is not UTF-8\r\n"
        );
        assert_eq!(
            ask(s.addr, b"foo\x01.tld\r\n").await,
            "% Error: control characters are not allowed\r\n"
        );
        assert_eq!(
            ask(s.addr, b"\x00\r\n").await,
            "% Error: control characters are not allowed\r\n"
        );
        assert_eq!(
            ask(s.addr, b"\r\n").await,
            "% Error: empty query; try \"help\"\r\n"
        );
        s.stop().await;
    }

    #[tokio::test]
    async fn an_idle_client_is_closed_at_the_deadline() {
        let limit = Duration::from_millis(200);
        let s = start(short(limit));
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        let (answer, took) = read_all(&mut stream).await;
        assert_eq!(answer, "% Error: timeout\r\n");
        assert!(took >= limit && took < limit * 5, "{took:?}");
        s.stop().await;
    }

    #[tokio::test]
    async fn a_trickling_client_is_cut_at_the_deadline_for_the_whole_line() {
        let limit = Duration::from_millis(300);
        let s = start(short(limit));
        let stream = TcpStream::connect(s.addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let trickle = tokio::spawn(async move {
            // One octet every 50 ms, never a line end: each read is quick, the line never is.
            for _ in 0..100 {
                if writer.write_all(b"a").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let start = Instant::now();
        let mut buf = Vec::new();
        let _ = timeout(Duration::from_secs(5), reader.read_to_end(&mut buf)).await;
        let took = start.elapsed();
        assert_eq!(String::from_utf8_lossy(&buf), "% Error: timeout\r\n");
        assert!(took >= limit && took < limit * 5, "{took:?}");
        trickle.abort();
        s.stop().await;
    }

    #[tokio::test]
    async fn over_a_cap_is_refused_at_once_and_slots_come_back() {
        let caps = [
            (
                WhoisSettings {
                    max_connections: 2,
                    ..WhoisSettings::default()
                },
                "% Error: server busy, try again later\r\n",
            ),
            // All test connections come from 127.0.0.1: one address.
            (
                WhoisSettings {
                    max_connections_per_address: 2,
                    ..WhoisSettings::default()
                },
                "% Error: too many connections from your address, try again later\r\n",
            ),
        ];
        for (settings, refusal) in caps {
            let s = start(settings);
            let first = TcpStream::connect(s.addr).await.unwrap();
            let _second = TcpStream::connect(s.addr).await.unwrap();
            let mut third = TcpStream::connect(s.addr).await.unwrap();
            let (answer, took) = read_all(&mut third).await;
            assert_eq!(answer, refusal);
            assert!(took < Duration::from_secs(1), "{took:?}");
            // Closing one frees its slot for the next connection.
            drop(first);
            let mut answer = String::new();
            for _ in 0..50 {
                answer = ask(s.addr, b"foo.tld\r\n").await;
                if answer.starts_with("Domain Name:") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(answer.starts_with("Domain Name: FOO.TLD\r\n"), "{answer}");
            s.stop().await;
        }
    }

    #[tokio::test]
    async fn a_new_pipeline_applies_to_the_next_connection() {
        let s = start(WhoisSettings::default());
        assert!(
            ask(s.addr, b"foo.tld\r\n")
                .await
                .starts_with("Domain Name:")
        );
        // A chain that claims nothing: every request is refused.
        s.pipeline.store(Arc::new(pipeline(
            "[leaves.s]\nkind = \"statistics\"\n[[chains]]\nname = \"main\"\nleaves = [\"s\"]",
        )));
        assert_eq!(
            ask(s.addr, b"foo.tld\r\n").await,
            "% Error: access refused\r\n"
        );
        s.stop().await;
    }

    #[tokio::test]
    async fn shutdown_closes_waiting_connections_without_waiting_for_their_deadline() {
        let s = start(WhoisSettings::default());
        let mut idle = TcpStream::connect(s.addr).await.unwrap();
        // Let the server accept it before cancelling.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        let addr = s.addr;
        s.stop().await;
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(read_all(&mut idle).await.0, "");
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    }

    /// A client pasting a 1 MiB line, writing all of it before it reads: it reads the error
    /// line and then the end of the stream (FIN), not a reset.
    #[tokio::test]
    async fn a_long_line_still_being_sent_gets_the_error_line_not_a_reset() {
        let s = start(WhoisSettings::default());
        let (mut rd, mut wr) = TcpStream::connect(s.addr).await.unwrap().into_split();
        let writer = tokio::spawn(async move {
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..16 {
                wr.write_all(&chunk).await?;
            }
            wr.write_all(b"\r\n").await?;
            wr.shutdown().await
        });
        let mut buf = Vec::new();
        let read = timeout(Duration::from_secs(5), rd.read_to_end(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(_))), "{read:?}");
        assert_eq!(String::from_utf8_lossy(&buf), "% Error: query too long\r\n");
        let written = timeout(Duration::from_secs(5), writer).await;
        assert!(matches!(written, Ok(Ok(Ok(())))), "{written:?}");
        s.stop().await;
    }
}
