//! Prometheus metrics, shared by the master and the satellite: the text exposition format
//! ([`Exposition`]) and the tiny HTTP/1.1 server that answers `GET /metrics` ([`serve`]).
//!
//! Hand-written rather than `prometheus-client`: every Orrery counter already lives in its
//! owner's own atomics (the satellite's per-worker query blocks, the link's serials, the
//! master's cluster view), summed only when scraped, so a registry of metric objects would
//! be a second copy to keep in step. What is left is a text format of a few rules (`# HELP`,
//! `# TYPE`, label escaping, histogram `_bucket`/`_sum`/`_count` with a `+Inf` bucket),
//! checked here by unit tests and on the real output by `promtool check metrics` in the
//! cluster tests.
//!
//! The server is deliberately small: one route, no keep-alive (`Connection: close`), the
//! request read within a deadline and bounded in size, at most [`MAX_CONNECTIONS`] scrapes at
//! once (more are closed on accept). It runs on the tokio runtime of the link or the master,
//! never on a DNS worker thread: a scrape only reads atomics and renders text.

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Content type of the text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Most scrapes served at once; Prometheus scrapes one target with one connection.
pub const MAX_CONNECTIONS: usize = 8;
/// How long a client may take to send its request and to read the answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read; a longer one is answered 431.
const MAX_REQUEST: usize = 8 * 1024;

/// The kind of a metric family (`# TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// A text exposition being written: families one after the other, each opened by
/// [`Exposition::family`] and followed by its samples.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a family: its `# HELP` and `# TYPE` lines. A counter's `name` ends in `_total`.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        debug_assert!(kind != Kind::Counter || name.ends_with("_total"));
        // In the text format (0.0.4) a counter's family carries its `_total` (OpenMetrics
        // would strip it; promtool checks the former).
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample of the family just opened.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", number(value));
        self
    }

    /// An integer sample (counters and most gauges), written without a fraction.
    pub fn sample_u64(&mut self, name: &str, labels: &[(&str, &str)], value: u64) -> &mut Self {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {value}");
        self
    }

    /// A whole histogram's samples: `bounds` are the upper bounds (seconds, ascending) of the
    /// finite buckets, `counts` the observations per bucket (not cumulative) with one more for
    /// the overflow, `sum` the sum of the observations.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) -> &mut Self {
        debug_assert_eq!(bounds.len() + 1, counts.len());
        let mut cumulative = 0;
        for (i, &n) in counts.iter().enumerate() {
            cumulative += n;
            let le = bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |&b| number(b));
            let _ = write!(self.text, "{name}_bucket");
            write_labels(&mut self.text, labels, Some(&le));
            let _ = writeln!(self.text, " {cumulative}");
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample_u64(&format!("{name}_count"), labels, cumulative)
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.text
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{k}=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as the format writes it (`+Inf`, `-Inf`, `NaN`, else Rust's shortest form).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Resident memory from `/proc/self/statm` (Linux; `None` elsewhere): one small read, for
/// `process_resident_memory_bytes` and the satellite's check-in.
pub fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Renders the metrics of a scrape; called on the runtime, once per request.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `GET /metrics` on `listener` until `cancel`, each answer rendered by `render`.
pub async fn serve(listener: TcpListener, render: Render, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "metrics accept failed");
                    // EMFILE and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, "metrics connection refused: too many open");
            continue;
        };
        let render = Arc::clone(&render);
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = cancel.cancelled() => {}
                r = tokio::time::timeout(TIMEOUT, answer(stream, &render)) => {
                    if let Ok(Err(e)) = r {
                        tracing::debug!(%peer, error = %e, "metrics scrape failed");
                    }
                }
            }
        });
    }
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream, render: &Render) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    let head_end = loop {
        if let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if len == buf.len() {
            return respond(&mut stream, "431 Request Header Fields Too Large", "", "").await;
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut parts = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let body = render();
            let body = if method == "HEAD" { "" } else { &body };
            respond(&mut stream, "200 OK", CONTENT_TYPE, body).await
        }
        ("GET" | "HEAD", _) => respond(&mut stream, "404 Not Found", "text/plain", "").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", "").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, ctype: &str, body: &str) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !ctype.is_empty() {
        let _ = write!(head, "Content-Type: {ctype}\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_labels_and_histograms() {
        let mut e = Exposition::new();
        e.family("orrery_x_total", Kind::Counter, "Things.\nCounted.")
            .sample_u64("orrery_x_total", &[("a", "q\"u\\o\nte")], 3);
        e.family("orrery_g", Kind::Gauge, "A gauge.")
            .sample("orrery_g", &[], -1.5)
            .sample("orrery_g", &[("k", "inf")], f64::INFINITY);
        e.family("orrery_h_seconds", Kind::Histogram, "A histogram.")
            .histogram(
                "orrery_h_seconds",
                &[("s", "dns")],
                &[0.001, 0.01],
                &[1, 2, 3],
                0.5,
            );
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP orrery_x_total Things.\\nCounted.\n# TYPE orrery_x_total counter\n\
             orrery_x_total{a=\"q\\\"u\\\\o\\nte\"} 3\n\
             # HELP orrery_g A gauge.\n# TYPE orrery_g gauge\norrery_g -1.5\n\
             orrery_g{k=\"inf\"} +Inf\n\
             # HELP orrery_h_seconds A histogram.\n# TYPE orrery_h_seconds histogram\n\
             orrery_h_seconds_bucket{s=\"dns\",le=\"0.001\"} 1\n\
             orrery_h_seconds_bucket{s=\"dns\",le=\"0.01\"} 3\n\
             orrery_h_seconds_bucket{s=\"dns\",le=\"+Inf\"} 6\n\
             orrery_h_seconds_sum{s=\"dns\"} 0.5\norrery_h_seconds_count{s=\"dns\"} 6\n"
        );
    }

    async fn get(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_and_refuses_the_rest() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let render: Render = Arc::new(|| "orrery_up 1\n".to_owned());
        let server = tokio::spawn(serve(listener, render, cancel.clone()));

        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(CONTENT_TYPE));
        assert!(ok.ends_with("\r\n\r\norrery_up 1\n"));
        let missing = get(addr, b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = get(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        // Exactly the limit, all read by the server: no unread bytes turn its close into a reset.
        let huge = get(addr, &[b'a'; MAX_REQUEST]).await;
        assert!(huge.starts_with("HTTP/1.1 431"), "{huge}");

        cancel.cancel();
        server.await.unwrap();
    }
}
