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

use std::time::Duration;

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
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: tonic::transport::Error,
    },
    #[error("master answered {0}")]
    Status(#[from] tonic::Status),
    #[error("master sent a malformed message: {0}")]
    Convert(#[from] ConvertError),
    #[error("master broke the protocol: {0}")]
    Protocol(String),
}

/// How to reach the masters.
#[derive(Clone, Debug)]
pub struct DialConfig {
    /// `HOST:PORT` or `https://HOST:PORT`, tried in this order.
    pub masters: Vec<String>,
    /// From [`super::tls::client_config`].
    pub tls: ClientTlsConfig,
    /// Limit for one TCP + TLS + HTTP/2 connection attempt.
    pub connect_timeout: Duration,
    /// First pause after a round in which no master answered; doubles each round.
    pub backoff_min: Duration,
    /// Longest pause between rounds.
    pub backoff_max: Duration,
    /// HTTP/2 PING interval, so a dead connection is noticed even on a quiet stream.
    pub keepalive: Duration,
}

impl DialConfig {
    /// Defaults: 5 s connect timeout, backoff from 250 ms to 30 s, keepalive every 20 s.
    pub fn new(masters: Vec<String>, tls: ClientTlsConfig) -> Self {
        Self {
            masters,
            tls,
            connect_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            keepalive: Duration::from_secs(20),
        }
    }
}

/// Dials the masters in turn; remembers the backoff between calls.
#[derive(Debug)]
pub struct Dialer {
    config: DialConfig,
    /// Pauses between rounds in which no master answered.
    backoff: Backoff,
    /// The master to try first (the last one that answered).
    preferred: usize,
}

impl Dialer {
    pub fn new(config: DialConfig) -> Self {
        let backoff = Backoff::new(config.backoff_min, config.backoff_max);
        Self {
            config,
            backoff,
            preferred: 0,
        }
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
                source,
            })?;
        Ok(LinkClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE))
    }

    /// Tries every master, starting with the last one that answered, until one does; sleeps
    /// with exponential backoff and jitter between rounds. Never gives up: wrap it in a
    /// `select!` with a shutdown signal.
    pub async fn connect(&mut self) -> LinkClient {
        loop {
            let n = self.config.masters.len();
            for i in 0..n {
                let at = (self.preferred + i) % n;
                let address = self.config.masters[at].clone();
                match self.connect_to(&address).await {
                    Ok(client) => {
                        tracing::info!(master = %address, "connected to master");
                        self.preferred = at;
                        self.backoff.reset();
                        return client;
                    }
                    Err(e) => tracing::warn!(master = %address, error = %e, "master unreachable"),
                }
            }
            let pause = self.next_pause();
            tracing::warn!(
                pause_ms = pause.as_millis() as u64,
                "no master answered; retrying"
            );
            tokio::time::sleep(pause).await;
        }
    }

    /// The pause after one more failed round: half of the exponential step fixed, half random
    /// ("equal jitter"), so that satellites cut off together do not return together.
    pub fn next_pause(&mut self) -> Duration {
        self.backoff.next_pause()
    }
}

/// A snapshot transfer in progress, kept across broken streams so that it resumes from the
/// next missing chunk.
#[derive(Clone, Debug, Default)]
pub struct SnapshotProgress {
    pub serial: Serial,
    pub count: u32,
    pub total_objects: u64,
    /// Chunks received so far: `objects` holds chunks `0..next_chunk`.
    pub next_chunk: u32,
    pub objects: Vec<Change>,
}

/// Fetches the master's snapshot: the serial it reflects and every object, in an order that can
/// be applied one by one. On a broken stream the error is returned and `progress` keeps what
/// arrived; calling again (on the same or another master's client) resumes from there, or
/// starts afresh if the master no longer holds that snapshot.
pub async fn fetch_snapshot(
    client: &mut LinkClient,
    progress: &mut Option<SnapshotProgress>,
) -> Result<(Serial, Vec<Change>), LinkError> {
    let asked = std::time::Instant::now();
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
                .await?
                .into_inner()
        }
        Err(status) => return Err(status.into()),
    };
    // Timings for the log: the wait for the first chunk (the master building or finding its
    // snapshot), then the transfer, of which converting messages to the model is a part.
    let mut first_chunk = None;
    let mut convert = Duration::ZERO;
    while let Some(msg) = stream.message().await? {
        let received = std::time::Instant::now();
        first_chunk.get_or_insert(received);
        let chunk = Chunk::try_from(msg)?;
        convert += received.elapsed();
        let p = progress.get_or_insert_with(|| SnapshotProgress {
            serial: chunk.serial,
            count: chunk.count,
            total_objects: chunk.total_objects,
            ..Default::default()
        });
        if chunk.serial != p.serial || chunk.count != p.count || chunk.index != p.next_chunk {
            let got = format!(
                "chunk {}/{} of serial {}, expected {}/{} of {}",
                chunk.index, chunk.count, chunk.serial, p.next_chunk, p.count, p.serial
            );
            *progress = None;
            return Err(LinkError::Protocol(got));
        }
        p.objects.extend(chunk.objects);
        p.next_chunk += 1;
        if p.next_chunk == p.count {
            break;
        }
    }
    match progress.take() {
        Some(p) if p.next_chunk == p.count => {
            if p.objects.len() as u64 != p.total_objects {
                return Err(LinkError::Protocol(format!(
                    "snapshot {} announced {} objects, held {}",
                    p.serial,
                    p.total_objects,
                    p.objects.len()
                )));
            }
            let first = first_chunk.unwrap_or(asked);
            tracing::info!(
                serial = p.serial,
                objects = p.objects.len(),
                chunks = p.count,
                first_chunk_ms = (first - asked).as_millis() as u64,
                transfer_ms = first.elapsed().as_millis() as u64,
                convert_ms = convert.as_millis() as u64,
                "snapshot received"
            );
            Ok((p.serial, p.objects))
        }
        unfinished => {
            *progress = unfinished;
            Err(LinkError::Protocol("snapshot stream ended early".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut d = Dialer::new(DialConfig::new(vec![], ClientTlsConfig::new()));
        let mut last_step = Duration::ZERO;
        for round in 0..20 {
            let p = d.next_pause();
            let step =
                (Duration::from_millis(250) * (1u32 << round.min(16))).min(Duration::from_secs(30));
            assert!(
                p >= step / 2 && p <= step + Duration::from_millis(1),
                "{p:?}"
            );
            assert!(step >= last_step);
            last_step = step;
        }
        assert!(d.next_pause() <= Duration::from_secs(30) + Duration::from_millis(1));
    }
}
