//! The RDAP edge: HTTP/1.1 (RFC 7480, RFC 9110) over TCP or TLS, with hyper, around the
//! [`RdsPipeline`].
//!
//! ```text
//!  listener ─► accept ─► over max_connections_per_address (trusted proxies aside) or
//!                │         max_connections? ─► closed at once (never queued)
//!                │
//!                ▼  TLS handshake within `timeout` (when configured)
//!  hyper HTTP/1.1 connection: keep-alive, `timeout` to read each request head (which is
//!  also the idle time allowed between requests), writes that stall `timeout` fail
//!                │  one request
//!                ▼
//!  GET | HEAD path ─► RdsEvent ─► pipeline.handle: Selector chain ─► rdap::render ─► response
//!  other methods ──► 405 with `Allow: GET, HEAD`
//!  a body over MAX_BODY (or chunked) ──► 413, connection closed
//!                │  connection over
//!                ▼
//!  FIN sent, then what the client still sends is drained (LINGER) so the close is no reset
//!  a leaf's Drop ──► the connection is closed without an answer
//! ```
//!
//! The request path goes to the chain without its query string; `validate_query` decodes it.
//! Responses carry `Content-Type: application/rdap+json`, `Access-Control-Allow-Origin: *`
//! (RFC 7480 §5.6) and, on 429, `Retry-After` (RFC 7480 §5.5). A HEAD request is answered
//! with the headers of the GET, `Content-Length` included, and no body.
//!
//! The chain sees the connection's address as the client's, unless the connection comes from
//! a configured trusted proxy: then the address that proxy forwards in `X-Forwarded-For`
//! ([`client_address`]), so that clients behind a proxy keep rate limits of their own.
//!
//! Links in responses start with the configured base URL; without one, with
//! `http(s)://HOST/` from the request's `Host`, used only when it is a plain `host[:port]`
//! (else the listener's address): a header is never reflected unchecked.
//!
//! The pipeline is loaded from its [`ArcSwap`] for each request, so the link can replace the
//! Selector without a restart. On cancellation the accept loops stop and each connection
//! finishes the request it is answering, then closes.

use std::borrow::Cow;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use http_body_util::Full;
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use orrery_proto::Prefix;

use crate::tcp::accept;
use crate::tcp::connection_limit::{DEFAULT_PER_ADDRESS, PerAddress};

use super::rdap::{self, MEDIA_TYPE};
use super::{Protocol, RdsPipeline};

/// The de facto header in which proxies (nginx, HAProxy, Envoy, cloud load balancers) pass on
/// the client's address, each appending the address it received the request from.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// Per-connection read buffer limit: a request head larger than this is refused (431).
const MAX_BUF: usize = 16 * 1024;
/// The largest request body let through (and ignored: GET and HEAD carry none); a larger or
/// unannounced (chunked) one is answered 413 (RFC 9110 §15.5.14) and the connection closed.
const MAX_BODY: u64 = 8 * 1024;
/// After the last response, how long and how much of what the client still sends is read and
/// discarded before the socket is closed ("lingering close", RFC 9112 §9.6): closing with
/// unread octets makes the kernel reset the connection, which can destroy the response in the
/// client's buffers before it reads it.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// Settings of one RDAP server (all its listeners).
#[derive(Clone, Debug)]
pub struct RdapSettings {
    /// Connections served at once, over all listeners; more are closed as they arrive.
    pub max_connections: usize,
    /// Connections served at once from one client address (IPv6: one /64); more are closed as
    /// they arrive. Trusted proxies are not held to it.
    pub max_connections_per_address: u32,
    /// Time allowed to send a request head (and so to stay idle between requests), to finish
    /// a TLS handshake, and for a stalled write to resume.
    pub timeout: Duration,
    /// The URL links start with (`https://rdap.nic.example/`); `None`: from the request's
    /// `Host`.
    pub base_url: Option<String>,
    /// Serve HTTPS with this configuration (see [`tls_config`]); `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Proxies: not held to `max_connections_per_address` (they carry many clients) and, with
    /// `forwarded_for`, believed when their `X-Forwarded-For` names the client (see
    /// [`client_address`]).
    pub trusted_proxies: Vec<Prefix>,
    /// Read the client's address from the trusted proxies' `X-Forwarded-For`; the link sets it
    /// for plain HTTP listeners only.
    pub forwarded_for: bool,
}

impl Default for RdapSettings {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_address: DEFAULT_PER_ADDRESS,
            timeout: Duration::from_secs(10),
            base_url: None,
            tls: None,
            trusted_proxies: Vec::new(),
            forwarded_for: true,
        }
    }
}

/// Why the RDAP TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RdapTlsError {
    #[error("RDAP TLS certificate {}: {error}", .path.display())]
    Certificate { path: PathBuf, error: pem::Error },
    #[error("RDAP TLS certificate {}: no certificate in the file", .path.display())]
    NoCertificate { path: PathBuf },
    #[error("RDAP TLS private key {}: {error}", .path.display())]
    Key { path: PathBuf, error: pem::Error },
    #[error("RDAP TLS certificate {} with key {}: {error}", .cert.display(), .key.display())]
    Config {
        cert: PathBuf,
        key: PathBuf,
        error: rustls::Error,
    },
}

/// A TLS server configuration from PEM files: the certificate chain (leaf first) and its
/// private key; ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`.
pub fn tls_config(
    cert_pem: &Path,
    key_pem: &Path,
) -> Result<Arc<rustls::ServerConfig>, RdapTlsError> {
    let cert_error = |error| RdapTlsError::Certificate {
        path: cert_pem.to_owned(),
        error,
    };
    let certs = CertificateDer::pem_file_iter(cert_pem)
        .map_err(cert_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_error)?;
    if certs.is_empty() {
        return Err(RdapTlsError::NoCertificate {
            path: cert_pem.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|error| RdapTlsError::Key {
        path: key_pem.to_owned(),
        error,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|error| RdapTlsError::Config {
            cert: cert_pem.to_owned(),
            key: key_pem.to_owned(),
            error,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A running RDAP server.
pub struct RdapServer {
    tasks: JoinSet<()>,
}

/// What every connection of one server shares.
struct Shared {
    pipeline: Arc<ArcSwap<RdsPipeline>>,
    http: http1::Builder,
    tls: Option<TlsAcceptor>,
    /// The configured base URL, ending with `/`.
    base_url: Option<String>,
    timeout: Duration,
    slots: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    trusted_proxies: Vec<Prefix>,
    /// Proxies whose `X-Forwarded-For` is believed: `trusted_proxies`, or none.
    forwarders: Vec<Prefix>,
}

/// One connection's addresses and scheme.
#[derive(Clone, Copy, Debug)]
struct Conn {
    peer: SocketAddr,
    local: SocketAddr,
    https: bool,
}

impl RdapServer {
    /// Serves on already-bound listeners until `cancel`; `tls` in the settings makes every
    /// listener HTTPS. Must be called inside a tokio runtime.
    pub fn start(
        pipeline: Arc<ArcSwap<RdsPipeline>>,
        listeners: Vec<std::net::TcpListener>,
        settings: RdapSettings,
        cancel: CancellationToken,
    ) -> io::Result<Self> {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(settings.timeout)
            .max_buf_size(MAX_BUF);
        let base_url = settings.base_url.map(|mut url| {
            if !url.ends_with('/') {
                url.push('/');
            }
            url
        });
        let shared = Arc::new(Shared {
            pipeline,
            http,
            tls: settings.tls.map(TlsAcceptor::from),
            base_url,
            timeout: settings.timeout,
            slots: Arc::new(Semaphore::new(
                settings.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            per_address: PerAddress::new(
                settings.max_connections_per_address,
                settings.max_connections,
            ),
            forwarders: if settings.forwarded_for {
                settings.trusted_proxies.clone()
            } else {
                Vec::new()
            },
            trusted_proxies: settings.trusted_proxies,
        });
        let mut tasks = JoinSet::new();
        for listener in listeners {
            listener.set_nonblocking(true)?;
            let listener = TcpListener::from_std(listener)?;
            let local = listener.local_addr()?;
            tasks.spawn(accept_loop(
                listener,
                local,
                Arc::clone(&shared),
                cancel.clone(),
            ));
        }
        Ok(Self { tasks })
    }

    /// Waits until every listener and connection has stopped (after the token is cancelled).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn accept_loop(
    listener: TcpListener,
    local: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    accept::accept_loop(listener, "rdap accept", cancel.clone(), |stream, peer| {
        // A trusted proxy carries many clients: no cap of its own.
        let proxy = shared.trusted_proxies.iter().any(|p| p.contains(peer.ip()));
        let address_slot = if proxy {
            None
        } else {
            let Some(slot) = shared.per_address.try_acquire(peer.ip()) else {
                tracing::debug!(%peer, "rdap connection cap of the address reached, closing");
                return None;
            };
            Some(slot)
        };
        let Ok(permit) = Arc::clone(&shared.slots).try_acquire_owned() else {
            tracing::debug!(%peer, "rdap connection cap reached, closing");
            return None;
        };
        let shared = Arc::clone(&shared);
        let cancel = cancel.clone();
        let conn = Conn {
            peer,
            local,
            https: shared.tls.is_some(),
        };
        Some(async move {
            serve_connection(stream, conn, &shared, &cancel).await;
            drop((permit, address_slot));
        })
    })
    .await;
}

async fn serve_connection(
    stream: TcpStream,
    conn: Conn,
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let stream = WriteTimeout::new(stream, shared.timeout);
    let Some(acceptor) = &shared.tls else {
        return serve_http(stream, conn, shared, cancel).await;
    };
    let handshake = tokio::time::timeout(shared.timeout, acceptor.accept(stream));
    let tls = tokio::select! {
        () = cancel.cancelled() => return,
        done = handshake => match done {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(peer = %conn.peer, error = %e, "rdap tls handshake");
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %conn.peer, "rdap tls handshake timed out");
                return;
            }
        },
    };
    serve_http(tls, conn, shared, cancel).await;
}

async fn serve_http<S>(io: S, conn: Conn, shared: &Arc<Shared>, cancel: &CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let for_requests = Arc::clone(shared);
    // Set when a request came with a body: hyper does not read it, so the client may still
    // be sending when the connection ends.
    let unread_body = Arc::new(AtomicBool::new(false));
    let saw_body = Arc::clone(&unread_body);
    let service = service_fn(move |req: Request<Incoming>| {
        if !req.body().is_end_stream() {
            saw_body.store(true, Ordering::Relaxed);
        }
        std::future::ready(respond(&for_requests, conn, &req))
    });
    let mut connection = shared.http.serve_connection(TokioIo::new(io), service);
    // Without hyper's shutdown of the socket: the end below may linger.
    let done = tokio::select! {
        done = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => done,
        () = cancel.cancelled() => {
            Pin::new(&mut connection).graceful_shutdown();
            // The request in progress is finished; a stalled peer cannot hold shutdown.
            match tokio::time::timeout(
                shared.timeout,
                std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)),
            )
            .await
            {
                Ok(done) => done,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = done {
        tracing::debug!(peer = %conn.peer, error = %e, "rdap connection");
    }
    let parts = connection.into_parts();
    let mut io = parts.io.into_inner();
    if unread_body.load(Ordering::Relaxed) || !parts.read_buf.is_empty() {
        linger(io).await;
    } else {
        // The usual end: the client closed, or stayed idle past the timeout. FIN now.
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
    }
}

/// Closes a connection whose client may still be sending without a reset: FIN (TLS:
/// close_notify, then FIN) after the last response, then reads and discards what the client
/// still sends until it closes its side, for at most [`LINGER`] and [`LINGER_BYTES`].
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if io.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER, async {
        while left > 0 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// A leaf dropped the request: hyper closes the connection without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request dropped by the chain")
    }
}

impl std::error::Error for Dropped {}

/// Answers one request.
fn respond(
    shared: &Shared,
    conn: Conn,
    req: &Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let base = base_url(shared, conn, req);
    let mut body = Vec::with_capacity(2048);
    let head = *req.method() == Method::HEAD;
    let status = if oversized_body(req.headers()) {
        rdap::render_error(
            413,
            "The request body is too large: this server answers GET and HEAD requests, which carry none.",
            &base,
            &mut body,
        )
    } else if head || *req.method() == Method::GET {
        let pipeline = shared.pipeline.load();
        let mut ev = pipeline.take();
        let client = client_address(conn.peer.ip(), req.headers(), &shared.forwarders);
        ev.reset(client, Protocol::Rdap);
        // The path only: `Uri::path` stops before the query string.
        ev.request.extend_from_slice(req.uri().path().as_bytes());
        let status = pipeline.handle(&mut ev, |ev, answered, ctx| {
            answered.then(|| rdap::render(ev, ctx, &base, &mut body))
        });
        pipeline.put(ev);
        status.ok_or(Dropped)?
    } else {
        rdap::render_error(
            405,
            "This server answers GET and HEAD requests only.",
            &base,
            &mut body,
        )
    };
    let length = body.len();
    let mut response = Response::new(Full::new(if head {
        Bytes::new()
    } else {
        Bytes::from(body)
    }));
    *response.status_mut() =
        StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(secs) = status.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if status.code == 405 {
        headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    if status.code == 413 {
        // The body is not read: the connection cannot carry another request.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// True when a request announces a body over [`MAX_BODY`], or one of unknown length (any
/// `Transfer-Encoding`: chunked), which an RDAP request never needs.
fn oversized_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().parse::<u64>().map_or(true, |n| n > MAX_BODY))
}

/// The client's address, for the chain (ACL, rate limit): the connection's, unless it comes
/// from a trusted proxy. Then `X-Forwarded-For` (every such header, in order) is read from the
/// right, the end each proxy appends to: the first address that is not a trusted proxy is the
/// client's — the ones left of it could have been written by anyone. An entry that is not an
/// address (`unknown`, garbage) ends the walk at the last proxy seen, which is then treated as
/// the client: a header the client forged can make it share its proxy's limits, never borrow
/// another address's.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[Prefix]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|p| p.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    // `get_all` yields the headers in the order received; walk them, and their entries, from
    // the last.
    for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let Ok(value) = value.to_str() else {
            return client;
        };
        for entry in value.rsplit(',') {
            let Some(ip) = forwarded_entry(entry.trim()) else {
                return client;
            };
            client = ip;
            if !is_trusted(ip) {
                return ip;
            }
        }
    }
    // Every hop is a trusted proxy: the leftmost is where the request came from.
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:5678`,
/// `[2001:db8::1]:443`, as some load balancers write them).
fn forwarded_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The base URL of links: the configured one, else `http(s)://HOST/` from a well-formed
/// request authority (absolute-form target or `Host`), else from the listener's address.
fn base_url<'s>(shared: &'s Shared, conn: Conn, req: &Request<Incoming>) -> Cow<'s, str> {
    if let Some(base) = &shared.base_url {
        return Cow::Borrowed(base);
    }
    let scheme = if conn.https { "https" } else { "http" };
    let host = match req.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok()),
    };
    Cow::Owned(match host.filter(|h| plain_host(h)) {
        Some(host) => format!("{scheme}://{}/", host.to_ascii_lowercase()),
        None => format!("{scheme}://{}/", conn.local),
    })
}

/// True for `host[:port]` made of letters, digits, `-`, `.`, and `:`, `[`, `]` for IPv6
/// literals: nothing a link could be bent with (no `@`, `/`, quotes, spaces).
fn plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 261
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'))
}

/// A stream whose writes fail after making no progress for `limit`: a client that stops
/// reading its responses cannot hold a connection slot for ever. Reads are left to hyper's
/// header read timeout.
struct WriteTimeout<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write could not proceed; reset by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if sleep.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Instant;

    use orrery_proto::Change;
    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::rds::leaf::DEFAULT_SELECTOR;
    use crate::rds::leaf::tests::selector;
    use crate::rds::rdap::tests::check_rdap_structure;
    use crate::rds::rdap::tests::zones;
    use crate::served::Served;
    use crate::served::ServedStore;
    use crate::zone::tests::domain;

    /// A server on 127.0.0.1:0, stopped (and joined) on drop of the token by `stop`.
    struct TestServer {
        addr: SocketAddr,
        cancel: CancellationToken,
        server: Option<RdapServer>,
    }

    impl TestServer {
        fn start(selector_text: &str, zones: Served, settings: RdapSettings) -> Self {
            let pipeline =
                RdsPipeline::new(selector(selector_text), Arc::new(ServedStore::new(zones)));
            let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let addr = listener.local_addr().unwrap();
            let cancel = CancellationToken::new();
            let server = RdapServer::start(
                Arc::new(ArcSwap::from_pointee(pipeline)),
                vec![listener],
                settings,
                cancel.clone(),
            )
            .unwrap();
            Self {
                addr,
                cancel,
                server: Some(server),
            }
        }

        fn with_defaults() -> Self {
            Self::start(DEFAULT_SELECTOR, zones(), RdapSettings::default())
        }

        async fn connect(&self) -> TcpStream {
            TcpStream::connect(self.addr).await.unwrap()
        }

        /// Cancels and waits for the server, which must stop promptly.
        async fn stop(mut self) {
            self.cancel.cancel();
            let server = self.server.take().unwrap();
            tokio::time::timeout(Duration::from_secs(5), server.join())
                .await
                .expect("the server stops");
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.cancel.cancel();
        }
    }

    /// One parsed HTTP/1.1 response.
    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        fn json(&self) -> Value {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
        }
    }

    /// A minimal HTTP/1.1 client: reads one response (Content-Length framed; none for HEAD)
    /// from `stream`, keeping what follows in `buf`. `None` when the server closed first.
    async fn read_reply<S: AsyncRead + Unpin>(
        stream: &mut S,
        buf: &mut Vec<u8>,
        head: bool,
    ) -> Option<Reply> {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
                .expect("a response in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let text = String::from_utf8(buf[..end].to_vec()).unwrap();
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        buf.drain(..end + 4);
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        let length: usize = if head {
            0
        } else {
            reply.header("content-length").unwrap().parse().unwrap()
        };
        while buf.len() < length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "body cut short");
            buf.extend_from_slice(&chunk[..n]);
        }
        reply.body = buf.drain(..length).collect();
        Some(reply)
    }

    async fn send<S: AsyncWrite + Unpin>(stream: &mut S, method: &str, target: &str, host: &str) {
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nAccept: application/rdap+json\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
    }

    /// One request on a new connection.
    async fn get(server: &TestServer, method: &str, target: &str) -> Reply {
        let mut stream = server.connect().await;
        send(&mut stream, method, target, "rdap.example").await;
        read_reply(&mut stream, &mut Vec::new(), method == "HEAD")
            .await
            .expect("a response")
    }

    /// True when the server closes `stream` without sending anything.
    async fn closed_silently(stream: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn get_and_head_on_one_connection() {
        let server = TestServer::with_defaults();
        let mut stream = server.connect().await;
        let mut buf = Vec::new();
        send(&mut stream, "GET", "/domain/foo.tld", "RDAP.example:8080").await;
        let get = read_reply(&mut stream, &mut buf, false).await.unwrap();
        assert_eq!(get.status, 200);
        assert_eq!(get.header("content-type"), Some(MEDIA_TYPE));
        assert_eq!(get.header("access-control-allow-origin"), Some("*"));
        let length = get.header("content-length").unwrap().to_owned();
        assert_eq!(length, get.body.len().to_string());
        let v = get.json();
        check_rdap_structure(&v, Some("domain"));
        assert_eq!(v["ldhName"], "foo.tld");
        // The Host header, checked and lower-cased, makes the links.
        assert_eq!(
            v["links"][0]["href"],
            "http://rdap.example:8080/domain/foo.tld"
        );
        // HEAD: the same headers, no body; then the connection is still usable.
        send(&mut stream, "HEAD", "/domain/foo.tld", "rdap.example:8080").await;
        let head = read_reply(&mut stream, &mut buf, true).await.unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-type"), Some(MEDIA_TYPE));
        assert_eq!(head.header("access-control-allow-origin"), Some("*"));
        assert_eq!(head.header("content-length"), Some(length.as_str()));
        send(&mut stream, "GET", "/help", "rdap.example:8080").await;
        let help = read_reply(&mut stream, &mut buf, false).await.unwrap();
        assert_eq!(help.status, 200);
        check_rdap_structure(&help.json(), None);
        // Nothing was left over: the HEAD response had no body.
        assert!(buf.is_empty());
        server.stop().await;
    }

    #[tokio::test]
    async fn errors_methods_and_query_strings() {
        let server = TestServer::with_defaults();
        let reply = get(&server, "GET", "/domain/nope.tld").await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.header("content-type"), Some(MEDIA_TYPE));
        let v = reply.json();
        check_rdap_structure(&v, None);
        assert_eq!(v["errorCode"], 404);

        let reply = get(&server, "GET", "/bogus").await;
        assert_eq!(reply.status, 400);
        assert_eq!(reply.json()["errorCode"], 400);

        let reply = get(&server, "POST", "/domain/foo.tld").await;
        assert_eq!(reply.status, 405);
        assert_eq!(reply.header("allow"), Some("GET, HEAD"));
        check_rdap_structure(&reply.json(), None);

        // The query string never reaches the parser.
        let reply = get(&server, "GET", "/domain/foo.tld?jsonp=x").await;
        assert_eq!(reply.status, 200);
        let reply = get(&server, "GET", "/rdap/nameserver/NS1.foo.tld/").await;
        assert_eq!(reply.status, 200);
        check_rdap_structure(&reply.json(), Some("nameserver"));
        server.stop().await;
    }

    #[tokio::test]
    async fn idn_path_is_looked_up_by_its_a_label() {
        let mut zones = zones();
        let mut d = domain("xn--caf-dma.tld", "tld", &["ns1.foo.tld"]);
        d.registrar = "R1".into();
        zones.directory.apply(&Change::Domain(d));
        let server = TestServer::start(DEFAULT_SELECTOR, zones, RdapSettings::default());
        let reply = get(&server, "GET", "/domain/caf%C3%A9.tld").await;
        assert_eq!(reply.status, 200);
        let v = reply.json();
        check_rdap_structure(&v, Some("domain"));
        assert_eq!(v["ldhName"], "xn--caf-dma.tld");
        assert_eq!(v["unicodeName"], "café.tld");
        server.stop().await;
    }

    #[tokio::test]
    async fn base_url_is_configured_or_a_checked_host() {
        let server = TestServer::with_defaults();
        let mut stream = server.connect().await;
        send(
            &mut stream,
            "GET",
            "/domain/foo.tld",
            "evil.example/\"><script>",
        )
        .await;
        let reply = read_reply(&mut stream, &mut Vec::new(), false).await;
        // hyper may refuse the header itself; if it answers, the header is not reflected.
        if let Some(reply) = reply.filter(|r| r.status == 200) {
            let text = String::from_utf8(reply.body.clone()).unwrap();
            assert!(!text.contains("evil"), "{text}");
            let href = format!("http://{}/domain/foo.tld", server.addr);
            assert_eq!(reply.json()["links"][0]["href"], href);
        }
        let mut stream = server.connect().await;
        send(&mut stream, "GET", "/domain/foo.tld", "user@evil.example").await;
        let reply = read_reply(&mut stream, &mut Vec::new(), false)
            .await
            .unwrap();
        let href = format!("http://{}/domain/foo.tld", server.addr);
        assert_eq!(reply.json()["links"][0]["href"], href);
        server.stop().await;

        let settings = RdapSettings {
            base_url: Some("https://rdap.nic.example/rdap".into()),
            ..RdapSettings::default()
        };
        let server = TestServer::start(DEFAULT_SELECTOR, zones(), settings);
        let reply = get(&server, "GET", "/domain/foo.tld").await;
        assert_eq!(
            reply.json()["links"][0]["href"],
            "https://rdap.nic.example/rdap/domain/foo.tld"
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn a_flood_is_answered_429_with_retry_after() {
        let text = "[leaves.validate]\nkind = \"validate_query\"\n\
                    [leaves.limit]\nkind = \"rate_limit\"\naddress_rate = 0.5\naddress_burst = 2\n\
                    prefix_rate = 100.0\nprefix_burst = 100\n\
                    [leaves.lookup]\nkind = \"lookup\"\n\
                    [[chains]]\nname = \"main\"\nleaves = [\"validate\", \"limit\", \"lookup\"]";
        let server = TestServer::start(text, zones(), RdapSettings::default());
        let mut stream = server.connect().await;
        let mut buf = Vec::new();
        let mut statuses = Vec::new();
        for _ in 0..4 {
            send(&mut stream, "GET", "/domain/foo.tld", "rdap.example").await;
            let reply = read_reply(&mut stream, &mut buf, false).await.unwrap();
            statuses.push(reply.status);
            if reply.status == 429 {
                let secs: u64 = reply.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=2).contains(&secs), "{secs}");
                let v = reply.json();
                check_rdap_structure(&v, None);
                assert_eq!(v["errorCode"], 429);
            }
        }
        assert_eq!(statuses, [200, 200, 429, 429]);
        server.stop().await;
    }

    fn client(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        let trusted: Vec<Prefix> = trusted.iter().map(|p| Prefix::parse(p).unwrap()).collect();
        client_address(peer.parse().unwrap(), &headers, &trusted).to_string()
    }

    #[test]
    fn the_client_address_comes_from_trusted_proxies_only() {
        let proxies = ["10.0.0.0/8", "2001:db8:ffff::/48"];
        // No trusted proxy, or a peer that is not one: the header is the client's to forge.
        assert_eq!(client("192.0.2.7", &["198.51.100.1"], &[]), "192.0.2.7");
        assert_eq!(
            client("192.0.2.7", &["198.51.100.1"], &proxies),
            "192.0.2.7"
        );
        // From a trusted proxy: the address it appended.
        assert_eq!(
            client("10.0.0.1", &["198.51.100.1"], &proxies),
            "198.51.100.1"
        );
        // The rightmost address that is not a trusted proxy; what the client wrote on the
        // left is ignored.
        assert_eq!(
            client(
                "10.0.0.1",
                &["203.0.113.9, 198.51.100.1, 10.1.1.1"],
                &proxies
            ),
            "198.51.100.1"
        );
        // Several headers are one list, in order.
        assert_eq!(
            client(
                "10.0.0.1",
                &["203.0.113.9", "198.51.100.1, 10.1.1.1"],
                &proxies
            ),
            "198.51.100.1"
        );
        assert_eq!(
            client("10.0.0.1", &["203.0.113.9, 10.2.2.2", "10.1.1.1"], &proxies),
            "203.0.113.9"
        );
        // Ports, IPv6 with brackets, IPv4-mapped peers and entries.
        assert_eq!(
            client("10.0.0.1", &["[2001:db8::5]:443"], &proxies),
            "2001:db8::5"
        );
        assert_eq!(
            client("10.0.0.1", &["198.51.100.1:5678"], &proxies),
            "198.51.100.1"
        );
        assert_eq!(
            client("::ffff:10.0.0.1", &["::ffff:198.51.100.1"], &proxies),
            "198.51.100.1"
        );
        assert_eq!(
            client("2001:db8:ffff::1", &["2001:db8::5"], &proxies),
            "2001:db8::5"
        );
        // Only proxies: the leftmost hop. No header: the proxy itself.
        assert_eq!(
            client("10.0.0.1", &["10.3.3.3, 10.1.1.1"], &proxies),
            "10.3.3.3"
        );
        assert_eq!(client("10.0.0.1", &[], &proxies), "10.0.0.1");
        // Not an address: the last proxy seen stands for the client (it shares its proxy's
        // limits, it never takes another address's).
        assert_eq!(client("10.0.0.1", &["unknown"], &proxies), "10.0.0.1");
        assert_eq!(
            client("10.0.0.1", &["198.51.100.1, garbage, 10.1.1.1"], &proxies),
            "10.1.1.1"
        );
        assert_eq!(client("10.0.0.1", &[""], &proxies), "10.0.0.1");
    }

    /// Behind a trusted proxy (here 127.0.0.1) clients are limited one by one, by the address
    /// the proxy forwards; from an untrusted peer the header changes nothing.
    #[tokio::test]
    async fn a_trusted_proxy_passes_on_the_client_address_to_the_rate_limit() {
        let text = "[leaves.limit]\nkind = \"rate_limit\"\naddress_rate = 0.1\naddress_burst = 1\n\
                    prefix_rate = 100.0\nprefix_burst = 100\n\
                    [leaves.validate]\nkind = \"validate_query\"\n\
                    [leaves.lookup]\nkind = \"lookup\"\n\
                    [[chains]]\nname = \"main\"\nleaves = [\"limit\", \"validate\", \"lookup\"]";
        let status = |server: &TestServer, forwarded: &'static str| {
            let addr = server.addr;
            async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let request = format!(
                    "GET /domain/foo.tld HTTP/1.1\r\nHost: rdap.example\r\n\
                     X-Forwarded-For: {forwarded}\r\n\r\n"
                );
                stream.write_all(request.as_bytes()).await.unwrap();
                read_reply(&mut stream, &mut Vec::new(), false)
                    .await
                    .unwrap()
                    .status
            }
        };
        let behind_proxy = RdapSettings {
            trusted_proxies: vec![Prefix::parse("127.0.0.1").unwrap()],
            ..RdapSettings::default()
        };
        let server = TestServer::start(text, zones(), behind_proxy);
        let mut statuses = Vec::new();
        for forwarded in [
            "192.0.2.1",
            "192.0.2.1",
            "198.51.100.1",
            "192.0.2.1, 198.51.100.2",
        ] {
            statuses.push(status(&server, forwarded).await);
        }
        // Each client has its burst of one; the second request of the first is limited.
        assert_eq!(statuses, [200, 429, 200, 200]);
        server.stop().await;

        // The same requests straight from an untrusted peer: one bucket, the peer's.
        let server = TestServer::start(text, zones(), RdapSettings::default());
        let mut statuses = Vec::new();
        for forwarded in ["192.0.2.1", "198.51.100.1", "198.51.100.2"] {
            statuses.push(status(&server, forwarded).await);
        }
        assert_eq!(statuses, [200, 429, 429]);
        server.stop().await;
    }

    #[tokio::test]
    async fn a_dropped_request_closes_the_connection() {
        let text = "[leaves.acl]\nkind = \"acl\"\ndeny = [\"127.0.0.0/8\"]\naction = \"drop\"\n\
                    [leaves.lookup]\nkind = \"lookup\"\n\
                    [[chains]]\nname = \"main\"\nleaves = [\"acl\", \"lookup\"]";
        let server = TestServer::start(text, zones(), RdapSettings::default());
        let mut stream = server.connect().await;
        send(&mut stream, "GET", "/domain/foo.tld", "rdap.example").await;
        assert!(closed_silently(&mut stream).await);
        server.stop().await;
    }

    #[tokio::test]
    async fn connections_over_a_cap_are_closed_and_idle_ones_time_out() {
        // The cap of the server, and the cap of one address (all test connections come from
        // 127.0.0.1).
        for per_address in [false, true] {
            let settings = if per_address {
                RdapSettings {
                    max_connections_per_address: 1,
                    timeout: Duration::from_millis(500),
                    ..RdapSettings::default()
                }
            } else {
                RdapSettings {
                    max_connections: 1,
                    timeout: Duration::from_millis(500),
                    ..RdapSettings::default()
                }
            };
            one_slot_is_held_then_freed(settings).await;
        }
    }

    #[tokio::test]
    async fn trusted_proxies_have_no_cap_of_their_own() {
        let settings = RdapSettings {
            max_connections_per_address: 1,
            trusted_proxies: vec![Prefix::parse("127.0.0.1").unwrap()],
            ..RdapSettings::default()
        };
        let server = TestServer::start(DEFAULT_SELECTOR, zones(), settings);
        let mut open = Vec::new();
        for _ in 0..3 {
            let mut stream = server.connect().await;
            send(&mut stream, "GET", "/help", "rdap.example").await;
            let reply = read_reply(&mut stream, &mut Vec::new(), false).await;
            assert_eq!(reply.map(|r| r.status), Some(200));
            // Kept open: each holds a slot of 127.0.0.1 if it were counted.
            open.push(stream);
        }
        server.stop().await;
    }

    /// With one connection slot for 127.0.0.1: a second connection is closed at once, the slot
    /// comes back when the first times out.
    async fn one_slot_is_held_then_freed(settings: RdapSettings) {
        let server = TestServer::start(DEFAULT_SELECTOR, zones(), settings);
        let mut first = server.connect().await;
        send(&mut first, "GET", "/help", "rdap.example").await;
        let mut buf = Vec::new();
        assert_eq!(
            read_reply(&mut first, &mut buf, false)
                .await
                .unwrap()
                .status,
            200
        );
        // The one slot is held: the next connection is closed without an answer.
        let mut second = server.connect().await;
        send(&mut second, "GET", "/help", "rdap.example").await;
        assert!(closed_silently(&mut second).await);
        // The first one, idle past the timeout, is closed, which frees the slot.
        let idle = Instant::now();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), first.read_to_end(&mut rest)).await;
        assert!(
            idle.elapsed() < Duration::from_secs(4),
            "{:?}",
            idle.elapsed()
        );
        let mut third = None;
        for _ in 0..50 {
            let mut stream = server.connect().await;
            send(&mut stream, "GET", "/help", "rdap.example").await;
            if let Some(reply) = read_reply(&mut stream, &mut Vec::new(), false).await {
                third = Some(reply.status);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(third, Some(200));
        server.stop().await;
    }

    #[tokio::test]
    async fn shutdown_closes_idle_keep_alive_connections() {
        let server = TestServer::with_defaults();
        let mut stream = server.connect().await;
        send(&mut stream, "GET", "/help", "rdap.example").await;
        assert!(
            read_reply(&mut stream, &mut Vec::new(), false)
                .await
                .is_some()
        );
        let started = Instant::now();
        server.stop().await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(closed_silently(&mut stream).await);
    }

    #[tokio::test]
    async fn https_with_a_self_signed_certificate() {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, certified.cert.pem()).unwrap();
        std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();

        // Errors name the file.
        let missing = dir.path().join("missing.pem");
        let err = tls_config(&missing, &key_path).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let err = tls_config(&cert_path, &missing).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let err = tls_config(&key_path, &key_path).unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");

        let settings = RdapSettings {
            tls: Some(tls_config(&cert_path, &key_path).unwrap()),
            ..RdapSettings::default()
        };
        let server = TestServer::start(DEFAULT_SELECTOR, zones(), settings);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut client = client;
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector
            .connect(name, server.connect().await)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        send(&mut tls, "GET", "/domain/foo.tld", "localhost").await;
        let reply = read_reply(&mut tls, &mut Vec::new(), false).await.unwrap();
        assert_eq!(reply.status, 200);
        let v = reply.json();
        check_rdap_structure(&v, Some("domain"));
        assert_eq!(v["links"][0]["href"], "https://localhost/domain/foo.tld");
        server.stop().await;
    }

    /// A client that sends a 10 MB body with its request, writing it all before it reads:
    /// it gets `413` with an RDAP error object, then an orderly end of the connection (FIN),
    /// never a reset, even though the server never reads the body as a body.
    #[tokio::test]
    async fn a_huge_body_gets_413_and_a_clean_close() {
        use tokio::io::AsyncWriteExt;
        let server = TestServer::with_defaults();
        let (mut rd, mut wr) = server.connect().await.into_split();
        let size = 10 * 1024 * 1024;
        let writer = tokio::spawn(async move {
            let head = format!(
                "POST /domain/foo.tld HTTP/1.1\r\nHost: rdap.test\r\nContent-Length: {size}\r\n\r\n"
            );
            wr.write_all(head.as_bytes()).await?;
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..size / chunk.len() {
                wr.write_all(&chunk).await?;
            }
            wr.shutdown().await
        });
        let mut buf = Vec::new();
        let reply = read_reply(&mut rd, &mut buf, false)
            .await
            .expect("a response");
        assert_eq!(reply.status, 413);
        assert_eq!(reply.header("connection"), Some("close"));
        let json = reply.json();
        assert_eq!(json["errorCode"], 413);
        assert_eq!(json["title"], "Payload Too Large");
        // Then the end of the stream, not ECONNRESET.
        let mut rest = Vec::new();
        let end = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut rest)).await;
        assert!(matches!(end, Ok(Ok(_))), "{end:?}");
        assert!(rest.is_empty() && buf.is_empty(), "{rest:?}");
        // The server read the whole body (drained it) rather than resetting the writer.
        let written = tokio::time::timeout(Duration::from_secs(10), writer).await;
        assert!(matches!(written, Ok(Ok(Ok(())))), "{written:?}");
        server.stop().await;
    }

    #[test]
    fn bodies_over_the_limit_or_of_unknown_length_are_too_large() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.insert(*n, HeaderValue::from_static(v));
            }
            h
        };
        assert!(!oversized_body(&headers(&[])));
        assert!(!oversized_body(&headers(&[("content-length", "8192")])));
        assert!(oversized_body(&headers(&[("content-length", "8193")])));
        assert!(oversized_body(&headers(&[("content-length", "10485760")])));
        assert!(oversized_body(&headers(&[("content-length", "lots")])));
        assert!(oversized_body(&headers(&[(
            "transfer-encoding",
            "chunked"
        )])));
    }
}
