//! Accepting satellite connections: TCP, the TLS handshake with a required client certificate,
//! and the satellite identity read from it, before any gRPC is spoken.
//!
//! ```text
//!  TcpListener ─accept─▶ TLS handshake ──fail──▶ log "refused connection" (peer, reason)
//!                             │ ok
//!                             ▼
//!                  identity from certificate ──none──▶ log "refused connection", close
//!                             │ NAME
//!                             ▼
//!                  PeerStream { addr, NAME, connection number } ──▶ tonic server ──▶ LinkService
//!                             │ closed (dropped)
//!                             ▼
//!                  Satellites::connection_closed: the identity's session ends with it
//! ```
//!
//! Handshakes run in their own tasks with a deadline, so a slow or hostile peer holds up no
//! one. Whether NAME is a configured satellite is checked on every call (the configuration can
//! change while a connection is open); see `service.rs`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use orrery_proto::link::MAX_MESSAGE_SIZE;
use orrery_proto::link::pb::link_server::LinkServer;
use orrery_proto::link::tls::{SatelliteId, satellite_identity};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use crate::cluster_state::ClusterState;
use crate::satellites::Satellites;
use crate::service::LinkService;

/// The time a peer has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is on the other end of a connection; tonic puts it in every request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// From the verified client certificate.
    pub identity: SatelliteId,
    /// This connection's number, unique for the master's lifetime (an address may be reused).
    pub connection: u64,
    /// When the client certificate expires (milliseconds since the epoch), for the watchdog.
    pub cert_expires_ms: Option<i64>,
}

/// A TLS connection from a peer whose certificate named a satellite.
pub struct PeerStream {
    inner: TlsStream<TcpStream>,
    info: PeerInfo,
    /// Told when the connection closes (tonic drops the stream then).
    satellites: Arc<Satellites>,
    /// Told when that ended the identity's session.
    cluster: Arc<ClusterState>,
}

impl Drop for PeerStream {
    fn drop(&mut self) {
        if self
            .satellites
            .connection_closed(&self.info.identity, self.info.connection)
        {
            self.cluster.disconnected(&self.info.identity);
        }
    }
}

impl Connected for PeerStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Why a connection was refused before any call.
#[derive(Debug, thiserror::Error)]
enum AcceptError {
    #[error("TLS handshake failed: {why}: {0}", why = explain(.0))]
    Handshake(io::Error),
    #[error("TLS handshake not completed within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
    #[error("no client certificate")]
    NoCertificate,
    #[error("{0}")]
    Identity(#[from] orrery_proto::link::tls::IdentityError),
}

/// What an operator should read into a handshake failure.
fn explain(e: &io::Error) -> &'static str {
    use rustls::{CertificateError as C, Error as E};
    match e.get_ref().and_then(|inner| inner.downcast_ref::<E>()) {
        Some(E::NoCertificatesPresented) => "the client sent no certificate",
        Some(E::InvalidCertificate(C::UnknownIssuer | C::BadSignature)) => {
            "client certificate not issued by this cluster's CA"
        }
        Some(E::InvalidCertificate(C::Expired | C::ExpiredContext { .. })) => {
            "client certificate expired"
        }
        Some(E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. })) => {
            "client certificate not valid yet (check the clocks)"
        }
        Some(E::InvalidCertificate(C::Revoked)) => "client certificate revoked",
        Some(E::InvalidCertificate(_)) => "client certificate refused",
        Some(_) => "TLS protocol error",
        None => "connection error",
    }
}

async fn accept(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    addr: SocketAddr,
    connection: u64,
    satellites: Arc<Satellites>,
    cluster: Arc<ClusterState>,
) -> Result<PeerStream, AcceptError> {
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| AcceptError::Timeout)?
        .map_err(AcceptError::Handshake)?;
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or(AcceptError::NoCertificate)?;
    let identity = satellite_identity(cert)?;
    let cert_expires_ms = crate::cert_expiry::not_after_ms(cert);
    Ok(PeerStream {
        inner: tls,
        info: PeerInfo {
            addr,
            identity,
            connection,
            cert_expires_ms,
        },
        satellites,
        cluster,
    })
}

/// Numbers connections across every listener.
static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

/// Serves the link on an already-bound listener until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: LinkService,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let local = listener.local_addr().ok();
    let acceptor = TlsAcceptor::from(tls);
    let satellites = Arc::clone(service.satellites());
    let cluster = Arc::clone(service.cluster());
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<PeerStream>>(64);
    let accept_shutdown = shutdown.clone();
    let accepting = tokio::spawn(async move {
        loop {
            let (tcp, addr) = tokio::select! {
                () = accept_shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // E.g. out of file descriptors: pause rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let satellites = Arc::clone(&satellites);
            let cluster = Arc::clone(&cluster);
            let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                match accept(acceptor, tcp, addr, connection, satellites, cluster).await {
                    Ok(stream) => {
                        tracing::debug!(peer = %addr, satellite = %stream.info.identity, "satellite connected");
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Err(e) => {
                        tracing::warn!(peer = %addr, reason = %e, "refused connection");
                    }
                }
            });
        }
    });
    tracing::info!(listen = ?local, "link listening");
    let result = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(
            LinkServer::new(service)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown.cancelled())
        .await;
    accepting.abort();
    result
}
