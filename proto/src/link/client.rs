//! The satellite's side of dialling in: try each master address in turn, back off with jitter
//! between rounds, and fetch a snapshot that survives a broken stream.
//!
//! Typical use on a satellite:
//!
//! ```no_run
//! # async fn demo(material: orrery_proto::link::tls::TlsMaterial) -> Result<(), orrery_proto::link::client::LinkError> {
//! use orrery_proto::link::client::{Dialer, DialConfig, SnapshotProgress, fetch_snapshot};
//! use orrery_proto::link::pb;
//! let mut dialer = Dialer::new(DialConfig::new(
//!     vec!["192.0.2.1:7443".into(), "192.0.2.2:7443".into()],
//!     orrery_proto::link::tls::client_config(&material),
//! ));
//! let mut client = dialer.connect().await; // loops until a master answers
//! let boot = client.boot(pb::BootRequest::default()).await?.into_inner();
//! let mut progress = None;
//! let (serial, objects) = fetch_snapshot(&mut client, &mut progress).await?;
//! let mut stream = client.follow(pb::FollowRequest { from_serial: serial }).await?.into_inner();
//! while let Some(event) = stream.message().await? { /* apply batches */ }
//! # Ok(()) }
//! ```

use std::time::{Duration, Instant};

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::convert::{Chunk, ConvertError};
use super::{MAX_MESSAGE_SIZE, pb};
use crate::backoff::Backoff;
use crate::model::{Change, Serial};

/// The generated client over a TLS channel.
pub type LinkClient = pb::link_client::LinkClient<Channel>;

/// A failure talking to a master.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    #[error("bad master address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("cannot connect to {address}: {failure}")]
    Connect {
        address: String,
        /// What failed, read from `source`'s chain.
        failure: Failure,
        source: tonic::transport::Error,
    },
    /// A status the master sent (or tonic made without a transport cause).
    #[error("master answered {0}")]
    Status(tonic::Status),
    /// A call that failed below gRPC: the connection broke or a handshake failed.
    #[error("connection to the master failed: {failure}")]
    Transport {
        failure: Failure,
        status: tonic::Status,
    },
    #[error("master sent a malformed message: {0}")]
    Convert(#[from] ConvertError),
    #[error("master broke the protocol: {0}")]
    Protocol(String),
}

impl From<tonic::Status> for LinkError {
    /// A status with a source is tonic's report of a transport failure (a status the master
    /// sends has none): say what failed rather than "transport error".
    fn from(status: tonic::Status) -> Self {
        match std::error::Error::source(&status) {
            Some(cause) => Self::Transport {
                failure: Failure::of(cause, None),
                status,
            },
            None => Self::Status(status),
        }
    }
}

/// What went wrong below gRPC on the way to a master, for the operator: read from an error's
/// `source` chain (tonic → hyper → io → rustls), because tonic's own text for every one of
/// these is "transport error".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    #[error("connection refused (no master listening there)")]
    Refused,
    #[error("timed out")]
    Timeout,
    #[error("cannot resolve or reach the address: {0}")]
    Unreachable(String),
    /// This satellite's check of the master's certificate failed.
    #[error("TLS: the master's certificate {0}")]
    MasterCertificate(String),
    /// The master's TLS stack refused this satellite's certificate (an alert it sent).
    #[error("TLS: the master refused this satellite's certificate: {0}")]
    CertificateRefused(String),
    #[error("TLS: {0}")]
    Tls(String),
    /// The connection closed under a call (the master stopped, or the network dropped it).
    #[error("connection closed: {0}")]
    Closed(String),
    /// Nothing more specific found: the whole chain of messages.
    #[error("{0}")]
    Other(String),
}

/// How rustls words an alert it received (`rustls::Error::AlertReceived`'s Display).
const ALERT: &str = "received fatal alert: ";

impl Failure {
    /// Reads the chain of `error`. `ca` names the trust anchor in messages (e.g. its file).
    pub fn of(error: &(dyn std::error::Error + 'static), ca: Option<&str>) -> Self {
        let mut texts = Vec::new();
        let mut io_kind = None;
        let mut next = Some(error);
        while let Some(e) = next {
            texts.push(e.to_string());
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                return Self::of_rustls(tls, ca);
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                // `io::Error::source` skips the error it wraps: look at it directly.
                if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    return Self::of_rustls(tls, ca);
                }
                io_kind.get_or_insert(io.kind());
            }
            next = e.source();
        }
        texts.dedup();
        let chain = texts.join(": ");
        use std::io::ErrorKind as K;
        match io_kind {
            Some(K::ConnectionRefused) => Self::Refused,
            Some(K::TimedOut) => Self::Timeout,
            Some(
                K::AddrNotAvailable
                | K::HostUnreachable
                | K::NetworkUnreachable
                | K::NetworkDown
                | K::NotFound,
            ) => Self::Unreachable(chain),
            Some(K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof) => {
                Self::Closed(chain)
            }
            // h2 keeps an I/O error as its kind and text only (rustls' error type is lost on
            // the way): read the alert from rustls' words.
            _ if chain.contains(ALERT) => {
                let at = chain.find(ALERT).map_or(0, |i| i + ALERT.len());
                let name: String = chain[at..]
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                Self::of_alert(&name)
            }
            // hyper-util's, hyper's and tonic's own words for these, where no io::Error says it.
            _ if chain.contains("connection closed") => Self::Closed(chain),
            _ if chain.contains("dns error") => Self::Unreachable(chain),
            _ if chain.contains("timed out") || chain.contains("timeout") => Self::Timeout,
            _ => Self::Other(chain),
        }
    }

    /// A TLS alert the master sent, by its rustls name: the master's verdict on this
    /// satellite's certificate, or another TLS failure.
    fn of_alert(name: &str) -> Self {
        let why = match name {
            "UnknownCA" => "it is not issued by the master's CA (a certificate from another CA)",
            // The master found an issuer of that name whose key did not sign it.
            "DecryptError" => {
                "its signature does not verify against the master's CA (a certificate from another CA of the same name?)"
            }
            "CertificateExpired" => "it has expired",
            "BadCertificate" | "CertificateUnknown" | "UnsupportedCertificate" => {
                "the master's verifier refused it (wrong CA, usage or name)"
            }
            "CertificateRequired" => "none was sent",
            "CertificateRevoked" => "it has been revoked",
            "AccessDenied" => "access denied",
            other => return Self::Tls(format!("the master sent the alert {other}")),
        };
        Self::CertificateRefused(why.to_owned())
    }

    fn of_rustls(e: &rustls::Error, ca: Option<&str>) -> Self {
        use rustls::CertificateError as C;
        let ca = ca.map_or_else(|| "the cluster CA".to_owned(), |c| format!("the CA in {c}"));
        match e {
            rustls::Error::InvalidCertificate(c) => Self::MasterCertificate(match c {
                C::UnknownIssuer => {
                    format!("is not issued by {ca} (a certificate from another CA)")
                }
                C::Expired | C::ExpiredContext { .. } => format!("has expired ({e})"),
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    format!("is not valid yet ({e}); check both clocks")
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                    "is not valid for the name {} (not a master certificate of this cluster)",
                    super::tls::MASTER_NAME
                ),
                // webpki found an issuer of that name but its key did not sign this: most
                // often another cluster's CA (every Orrery CA has the same name).
                C::BadSignature => format!(
                    "is not issued by {ca}: its signature does not verify (a certificate from another CA of the same name?)"
                ),
                _ => format!("is refused: {e}"),
            }),
            rustls::Error::AlertReceived(alert) => Self::of_alert(&format!("{alert:?}")),
            other => Self::Tls(other.to_string()),
        }
    }
}

/// How to reach the masters.
#[derive(Clone, Debug)]
pub struct DialConfig {
    /// `HOST:PORT` or `https://HOST:PORT`, tried in this order.
    pub masters: Vec<String>,
    /// From [`super::tls::client_config`].
    pub tls: ClientTlsConfig,
    /// The trust anchor's name for messages (its file), from [`super::tls::TlsMaterial::ca_source`].
    pub ca: Option<String>,
    /// Limit for one TCP + TLS + HTTP/2 connection attempt.
    pub connect_timeout: Duration,
    /// When to dial again after a failure.
    pub backoff: Backoff,
    /// HTTP/2 PING interval, so a dead connection is noticed even on a quiet stream.
    pub keepalive: Duration,
    /// The hold-down before going back to an earlier master of the list: while connected to
    /// a later one, the earlier ones are probed every [`DialConfig::probe_interval`], and
    /// one that has answered every probe for this long is moved back to (see
    /// [`Dialer::earlier_master_back`]). A master that comes and goes is never returned to
    /// before it has stayed up this long, so satellites do not flap between masters.
    pub return_after: Duration,
}

impl DialConfig {
    /// How often earlier masters are probed while on a later one: six probes per hold-down,
    /// at most every 5 s and at least every 100 ms.
    pub fn probe_interval(&self) -> Duration {
        (self.return_after / 6).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// Defaults: 5 s connect timeout, [`Backoff::default`], keepalive every 20 s, back to an
    /// earlier master after [`DEFAULT_RETURN_AFTER`].
    pub fn new(masters: Vec<String>, tls: ClientTlsConfig) -> Self {
        Self {
            masters,
            tls,
            ca: None,
            connect_timeout: Duration::from_secs(5),
            backoff: Backoff::default(),
            keepalive: Duration::from_secs(20),
            return_after: DEFAULT_RETURN_AFTER,
        }
    }
}

/// The default hold-down before a satellite goes back to an earlier master of its list.
pub const DEFAULT_RETURN_AFTER: Duration = Duration::from_secs(30);

/// Checks a master address as [`DialConfig::masters`] takes it: `HOST:PORT` or
/// `https://HOST:PORT`, an IPv6 address in brackets (`[2001:db8::1]:7443`). There is no
/// default port: an address without one would otherwise be dialled on 443 and retried for
/// ever. The error says what is wrong, for the command line.
pub fn check_master_address(address: &str) -> Result<(), String> {
    let example = "give HOST:PORT, e.g. 127.0.0.1:7443";
    let authority = match address.split_once("://") {
        Some(("https", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "{address:?}: the link is https only, not {scheme}://; {example}"
            ));
        }
        None => address,
    };
    if authority.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "{address:?}: only a host and a port are expected; {example}"
        ));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((ip, rest)) = bracketed.split_once(']') else {
            return Err(format!("{address:?}: unclosed '['; {example}"));
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{address:?}: {ip:?} is not an IPv6 address"));
        }
        match rest.strip_prefix(':') {
            Some(port) => (ip, port),
            None => return Err(format!("{address:?} has no port; {example}")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(format!(
                    "{address:?}: write an IPv6 address in brackets, [ADDRESS]:PORT"
                ));
            }
            Some(split) => split,
            None => return Err(format!("{address:?} has no port; {example}")),
        }
    };
    if host.is_empty() {
        return Err(format!("{address:?} has no host; {example}"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!(
            "{address:?}: {port:?} is not a port (1 to 65535); {example}"
        )),
    }
}

/// Dials the masters in the order of the list; keeps the history the pauses are computed
/// from.
///
/// The list is an order of preference: a satellite runs on the first master that answers,
/// moves to the next one when it loses it, and goes back to an earlier one once that has
/// been up for the hold-down ([`DialConfig::return_after`]). Where it resumes does not depend
/// on the master: every master serves the same journal from the shared store, so the
/// satellite asks the next one for the changes after its applied serial and takes no
/// snapshot unless the journal no longer holds them.
#[derive(Debug)]
pub struct Dialer {
    config: DialConfig,
    /// Failures in a row: rounds in which no master answered and sessions shorter than
    /// [`Backoff::stable_session`].
    failures: u32,
    /// When the last healthy session ended.
    healthy_at: Option<Instant>,
    /// The index of the master of the current (or last) session.
    current: usize,
    /// When each master last failed to answer: one that failed within the hold-down is tried
    /// after those that did not, so losing the second master does not cost a connect timeout
    /// on a first one that is known to be down.
    failed_at: Vec<Option<Instant>>,
}

impl Dialer {
    pub fn new(config: DialConfig) -> Self {
        let n = config.masters.len();
        Self {
            config,
            failures: 0,
            healthy_at: None,
            current: 0,
            failed_at: vec![None; n],
        }
    }

    /// The address of the master of the current (or last) session.
    pub fn current(&self) -> Option<&str> {
        self.config.masters.get(self.current).map(String::as_str)
    }

    /// One connection attempt to one address.
    pub async fn connect_to(&self, address: &str) -> Result<LinkClient, LinkError> {
        let uri = if address.contains("://") {
            address.to_owned()
        } else {
            format!("https://{address}")
        };
        let bad = |reason: String| LinkError::Address {
            address: address.to_owned(),
            reason,
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| bad(e.to_string()))?
            .tls_config(self.config.tls.clone())
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(self.config.connect_timeout)
            .http2_keep_alive_interval(self.config.keepalive)
            .keep_alive_timeout(self.config.keepalive)
            .keep_alive_while_idle(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| LinkError::Connect {
                address: address.to_owned(),
                failure: Failure::of(&source, self.config.ca.as_deref()),
                source,
            })?;
        Ok(LinkClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE))
    }

    /// The order of the next round: the list's order, masters that failed within the
    /// hold-down last (still in the list's order among themselves).
    fn round_order(&self, now: Instant) -> Vec<usize> {
        let recently_failed = |i: usize| {
            self.failed_at[i].is_some_and(|t| now.duration_since(t) < self.config.return_after)
        };
        let mut order: Vec<usize> = (0..self.config.masters.len()).collect();
        order.sort_by_key(|&i| recently_failed(i));
        order
    }

    /// Tries every master in the order of the list (those that failed lately last) until one
    /// answers; pauses as [`Backoff`] says between rounds. Never gives up: wrap it in a
    /// `select!` with a shutdown signal.
    pub async fn connect(&mut self) -> LinkClient {
        loop {
            for at in self.round_order(Instant::now()) {
                let address = self.config.masters[at].clone();
                match self.connect_to(&address).await {
                    Ok(client) => {
                        if at != self.current {
                            tracing::info!(master = %address, previous = %self.config.masters[self.current], "connected to another master");
                        } else {
                            tracing::info!(master = %address, "connected to master");
                        }
                        self.current = at;
                        self.failed_at[at] = None;
                        return client;
                    }
                    Err(e) => {
                        self.failed_at[at] = Some(Instant::now());
                        tracing::warn!(master = %address, error = %e, "master unreachable");
                    }
                }
            }
            self.failures = self.failures.saturating_add(1);
            let pause = self.pause();
            tracing::warn!(
                pause_ms = pause.as_millis() as u64,
                "no master answered; retrying"
            );
            tokio::time::sleep(pause).await;
        }
    }

    /// Resolves when a master earlier in the list than the current one has answered every
    /// probe (a TCP + TLS + HTTP/2 connection, closed at once) for the hold-down; never while
    /// on the first. The satellite then ends its session at a safe point and dials again,
    /// which reaches that master first. Cancel-safe: it only probes.
    pub async fn earlier_master_back(&self) -> usize {
        let earlier = self.current;
        if earlier == 0 {
            return std::future::pending().await;
        }
        let interval = self.config.probe_interval();
        let mut up_since: Vec<Option<Instant>> = vec![None; earlier];
        loop {
            tokio::time::sleep(interval).await;
            for (i, since) in up_since.iter_mut().enumerate() {
                let address = &self.config.masters[i];
                let probe = tokio::time::timeout(
                    interval.max(Duration::from_secs(1)),
                    self.connect_to(address),
                );
                match probe.await {
                    Ok(Ok(_client)) => {
                        let first = *since.get_or_insert_with(Instant::now);
                        if first.elapsed() >= self.config.return_after {
                            tracing::info!(
                                master = %address,
                                up_for_ms = first.elapsed().as_millis() as u64,
                                current = %self.config.masters[self.current],
                                "an earlier master of the list is back: moving to it"
                            );
                            return i;
                        }
                    }
                    // Down again: the hold-down starts over.
                    _ => *since = None,
                }
            }
        }
    }

    /// Notes how a session ended. One that lasted [`Backoff::stable_session`] was healthy: the
    /// failures are forgotten and the next dial is at once. One that reached the change stream
    /// (`followed`: the master booted us and streams changes) but ended sooner also makes the
    /// low cap hold from now, so a satellite is back within about a second of a master that
    /// restarts however soon after its own boot; it still counts as a failure, so a master
    /// that accepts the stream and then fails it is dialled at most about once a second, never
    /// in a tight loop. Anything else is a plain failure.
    pub fn session_ended(&mut self, lasted: Duration, followed: bool) {
        if lasted >= self.config.backoff.stable_session {
            self.failures = 0;
            self.healthy_at = Some(Instant::now());
        } else {
            if followed {
                self.healthy_at = Some(Instant::now());
            }
            self.failures = self.failures.saturating_add(1);
        }
    }

    /// The pause before dialling again, with jitter (zero right after a healthy session).
    pub fn pause(&self) -> Duration {
        let since = self.healthy_at.map(|t| t.elapsed());
        Backoff::jitter(
            self.config.backoff.step(self.failures, since),
            &mut rand::rng(),
        )
    }
}

/// A snapshot transfer in progress, kept across broken streams: where it is, the objects so
/// far, and the caller's sink (what each checked chunk was also written into).
#[derive(Debug)]
pub struct SnapshotProgress<S = ()> {
    pub serial: Serial,
    pub count: u32,
    pub total_objects: u64,
    /// Chunks received so far: `objects` (and the sink) hold chunks `0..next_chunk`.
    pub next_chunk: u32,
    pub objects: Vec<Change>,
    pub sink: S,
}

impl Default for SnapshotProgress {
    fn default() -> Self {
        Self {
            serial: 0,
            count: 0,
            total_objects: 0,
            next_chunk: 0,
            objects: Vec::new(),
            sink: (),
        }
    }
}

/// A finished transfer and how long its parts took, for the caller's log.
#[derive(Debug)]
pub struct Fetched<S> {
    pub serial: Serial,
    pub objects: Vec<Change>,
    pub sink: S,
    pub chunks: u32,
    /// The wait for the first chunk (the master building or finding its snapshot).
    pub first_chunk: Duration,
    /// From the first chunk to the last.
    pub transfer: Duration,
    /// Of the transfer, converting messages to the model.
    pub convert: Duration,
}

/// Fetches the master's snapshot: the serial it reflects and every object, in an order that can
/// be applied one by one. On a broken stream the error is returned and `progress` keeps what
/// arrived; calling again (on the same or another master's client) resumes from there, or
/// starts afresh if the master no longer holds that snapshot.
pub async fn fetch_snapshot(
    client: &mut LinkClient,
    progress: &mut Option<SnapshotProgress>,
) -> Result<(Serial, Vec<Change>), LinkError> {
    let f = fetch_snapshot_into(client, progress, || Ok::<_, LinkError>(()), |_, _| Ok(())).await?;
    tracing::info!(
        serial = f.serial,
        objects = f.objects.len(),
        chunks = f.chunks,
        first_chunk_ms = f.first_chunk.as_millis() as u64,
        transfer_ms = f.transfer.as_millis() as u64,
        convert_ms = f.convert.as_millis() as u64,
        "snapshot received"
    );
    Ok((f.serial, f.objects))
}

/// [`fetch_snapshot`] that also hands every checked chunk's objects, in order, to a sink: a
/// transfer begins with `start()` (a fresh transfer, not a resumed one) and each chunk goes to
/// `accept(&mut sink, objects)` before it is kept. The satellite's sink is its state file,
/// written as the snapshot arrives. Every check of the protocol is here: the resume request,
/// the restart when the master no longer holds the snapshot, chunks in order of one serial and
/// count, no more objects than announced, and exactly as many at the end.
pub async fn fetch_snapshot_into<S, E: From<LinkError>>(
    client: &mut LinkClient,
    progress: &mut Option<SnapshotProgress<S>>,
    mut start: impl FnMut() -> Result<S, E>,
    mut accept: impl FnMut(&mut S, &[Change]) -> Result<(), E>,
) -> Result<Fetched<S>, E> {
    let asked = Instant::now();
    let request = match progress {
        Some(p) => pb::SnapshotRequest {
            serial: p.serial,
            start_chunk: p.next_chunk,
        },
        None => pb::SnapshotRequest::default(),
    };
    let mut stream = match client.snapshot(request).await {
        Ok(s) => s.into_inner(),
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            tracing::info!(reason = %status.message(), "snapshot moved on; starting again");
            *progress = None;
            client
                .snapshot(pb::SnapshotRequest::default())
                .await
                .map_err(LinkError::from)?
                .into_inner()
        }
        Err(status) => return Err(LinkError::from(status).into()),
    };
    let protocol = |what: String| E::from(LinkError::Protocol(what));
    let mut first_chunk = None;
    let mut convert = Duration::ZERO;
    while let Some(msg) = stream.message().await.map_err(LinkError::from)? {
        let received = Instant::now();
        first_chunk.get_or_insert(received);
        let chunk = Chunk::try_from(msg).map_err(LinkError::from)?;
        convert += received.elapsed();
        let p = match progress {
            Some(p) => p,
            None => progress.insert(SnapshotProgress {
                serial: chunk.serial,
                count: chunk.count,
                total_objects: chunk.total_objects,
                next_chunk: 0,
                // Sized as announced (bounded: the announcement is checked only at the end).
                objects: Vec::with_capacity(chunk.total_objects.min(1 << 22) as usize),
                sink: start()?,
            }),
        };
        if chunk.serial != p.serial || chunk.count != p.count || chunk.index != p.next_chunk {
            let got = format!(
                "chunk {}/{} of serial {}, expected {}/{} of {}",
                chunk.index, chunk.count, chunk.serial, p.next_chunk, p.count, p.serial
            );
            *progress = None;
            return Err(protocol(got));
        }
        if p.objects.len() as u64 + chunk.objects.len() as u64 > p.total_objects {
            let got = format!(
                "snapshot {} holds more than the {} objects it announced",
                p.serial, p.total_objects
            );
            *progress = None;
            return Err(protocol(got));
        }
        accept(&mut p.sink, &chunk.objects)?;
        p.objects.extend(chunk.objects);
        p.next_chunk += 1;
        if p.next_chunk == p.count {
            break;
        }
    }
    match progress.take() {
        Some(p) if p.next_chunk == p.count => {
            if p.objects.len() as u64 != p.total_objects {
                return Err(protocol(format!(
                    "snapshot {} announced {} objects, held {}",
                    p.serial,
                    p.total_objects,
                    p.objects.len()
                )));
            }
            let first = first_chunk.unwrap_or(asked);
            Ok(Fetched {
                serial: p.serial,
                objects: p.objects,
                sink: p.sink,
                chunks: p.count,
                first_chunk: first - asked,
                transfer: first.elapsed(),
                convert,
            })
        }
        unfinished => {
            *progress = unfinished;
            Err(protocol("snapshot stream ended early".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_addresses_need_a_port() {
        for good in [
            "127.0.0.1:7443",
            "https://127.0.0.1:7443",
            "master.example:7443",
            "[::1]:7443",
            "https://[2001:db8::1]:7443",
        ] {
            assert_eq!(check_master_address(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("127.0.0.1", "has no port"),
            ("https://master.example", "has no port"),
            ("[::1]", "has no port"),
            ("::1", "in brackets"),
            ("127.0.0.1:0", "is not a port"),
            ("127.0.0.1:70000", "is not a port"),
            ("127.0.0.1:", "is not a port"),
            (":7443", "has no host"),
            ("http://127.0.0.1:7443", "https only"),
            ("127.0.0.1:7443/x", "only a host and a port"),
            ("[zz]:7443", "not an IPv6 address"),
        ] {
            let e = check_master_address(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn dialer_history_sets_the_pause() {
        let mut d = Dialer::new(DialConfig::new(vec![], ClientTlsConfig::new()));
        assert_eq!(d.pause(), Duration::ZERO);
        // Short sessions count as failures; the pause grows with no healthy session.
        for _ in 0..10 {
            d.session_ended(MS(10), false);
        }
        assert!(d.pause() >= S(15), "{:?}", d.pause());
        // A healthy session resets the count; then the pause is at most 1 s for a while.
        d.session_ended(S(6), false);
        assert_eq!(d.pause(), Duration::ZERO);
        for _ in 0..10 {
            d.session_ended(MS(10), false);
        }
        assert!(d.pause() <= S(1), "{:?}", d.pause());
    }

    #[test]
    fn a_short_session_that_reached_the_change_stream_was_healthy() {
        let mut d = Dialer::new(DialConfig::new(vec![], ClientTlsConfig::new()));
        for _ in 0..10 {
            d.session_ended(MS(10), false);
        }
        assert!(d.pause() >= S(15), "{:?}", d.pause());
        // Booted and followed, then the master was killed a moment later: back within ~1 s.
        d.session_ended(MS(300), true);
        assert!(d.pause() <= S(1), "{:?}", d.pause());
        for _ in 0..10 {
            d.session_ended(MS(10), false);
        }
        assert!(d.pause() <= S(1), "{:?}", d.pause());
        // A master that accepts the stream and fails it at once is never dialled without a
        // pause.
        let mut d = Dialer::new(DialConfig::new(vec![], ClientTlsConfig::new()));
        for _ in 0..20 {
            d.session_ended(MS(5), true);
            let p = d.pause();
            assert!(p >= MS(100) && p <= S(1), "{p:?}");
        }
    }

    #[test]
    fn masters_are_tried_in_list_order_those_down_lately_last() {
        let masters = vec!["a:1".into(), "b:1".into(), "c:1".into()];
        let mut d = Dialer::new(DialConfig::new(masters, ClientTlsConfig::new()));
        let now = Instant::now();
        assert_eq!(d.round_order(now), [0, 1, 2]);
        // The first failed a moment ago: the second and third come first, the first is still
        // tried.
        d.failed_at[0] = Some(now);
        assert_eq!(d.round_order(now), [1, 2, 0]);
        d.failed_at[2] = Some(now);
        assert_eq!(d.round_order(now), [1, 0, 2]);
        // After the hold-down the list's order holds again.
        let later = now + DEFAULT_RETURN_AFTER + MS(1);
        assert_eq!(d.round_order(later), [0, 1, 2]);
    }

    #[test]
    fn probes_are_several_per_hold_down_within_bounds() {
        let mut c = DialConfig::new(vec![], ClientTlsConfig::new());
        assert_eq!(c.probe_interval(), S(5));
        c.return_after = S(3);
        assert_eq!(c.probe_interval(), MS(500));
        c.return_after = MS(10);
        assert_eq!(c.probe_interval(), MS(100));
    }

    /// On the first master there is nothing earlier to go back to.
    #[tokio::test]
    async fn on_the_first_master_there_is_no_earlier_one() {
        let d = Dialer::new(DialConfig::new(vec!["a:1".into()], ClientTlsConfig::new()));
        let r = tokio::time::timeout(MS(300), d.earlier_master_back()).await;
        assert!(r.is_err());
    }

    /// An error as tonic reports one: a wrapper whose source is the connector's error, whose
    /// cause is an `io::Error` around rustls' error.
    #[derive(Debug, thiserror::Error)]
    #[error("transport error")]
    struct Wrapped(#[source] Box<dyn std::error::Error + Send + Sync>);

    fn wrapped(inner: std::io::Error) -> Wrapped {
        Wrapped(Box::new(inner))
    }

    #[test]
    fn failures_name_the_certificate_problem() {
        use rustls::CertificateError as C;
        let tls = |e: rustls::Error| {
            let err = wrapped(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            Failure::of(&err, Some("/etc/orrery/ca.pem")).to_string()
        };
        let text = tls(rustls::Error::InvalidCertificate(C::UnknownIssuer));
        assert!(
            text.contains("master's certificate")
                && text.contains("not issued by the CA in /etc/orrery/ca.pem"),
            "{text}"
        );
        let text = tls(rustls::Error::InvalidCertificate(C::BadSignature));
        assert!(
            text.contains("is not issued by the CA in /etc/orrery/ca.pem"),
            "{text}"
        );
        assert!(tls(rustls::Error::InvalidCertificate(C::Expired)).contains("has expired"));
        assert!(tls(rustls::Error::InvalidCertificate(C::NotValidYet)).contains("not valid yet"));
        let text = tls(rustls::Error::InvalidCertificate(C::NotValidForName));
        assert!(
            text.contains("not valid for the name master.orrery"),
            "{text}"
        );
        let text = tls(rustls::Error::AlertReceived(
            rustls::AlertDescription::UnknownCA,
        ));
        assert!(
            text.contains("refused this satellite's certificate") && text.contains("another CA"),
            "{text}"
        );
        let text = tls(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateExpired,
        ));
        assert!(
            text.contains("this satellite's certificate: it has expired"),
            "{text}"
        );
    }

    #[test]
    fn failures_name_the_network_problem() {
        use std::io::{Error, ErrorKind};
        let of = |e: Error| Failure::of(&wrapped(e), None);
        assert_eq!(
            of(Error::from(ErrorKind::ConnectionRefused)),
            Failure::Refused
        );
        assert_eq!(of(Error::from(ErrorKind::TimedOut)), Failure::Timeout);
        assert!(matches!(
            of(Error::new(ErrorKind::ConnectionReset, "reset by peer")),
            Failure::Closed(t) if t.contains("reset by peer")
        ));
        // hyper's words for a call cut off by the connection's end.
        assert!(matches!(
            of(Error::other("operation was canceled: connection closed")),
            Failure::Closed(_)
        ));
        // An alert known only by its text (h2 keeps I/O errors as kind and message).
        let text = of(Error::other(
            "connection error: received fatal alert: DecryptError",
        ));
        assert!(
            matches!(&text, Failure::CertificateRefused(t) if t.contains("another CA")),
            "{text:?}"
        );
        // Unknown causes keep every message of the chain, not just the first.
        let text = of(Error::other("something odd")).to_string();
        assert_eq!(text, "transport error: something odd");
    }
}
