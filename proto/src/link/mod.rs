//! The master–satellite link: the gRPC contract, its checked conversions to the model, mutual
//! TLS, and the satellite's dial-in client.
//!
//! ```text
//!  satellite                                             master
//!  ┌────────────────────┐   HTTP/2 over mutual TLS   ┌──────────────────────┐
//!  │ client::dial       │──────────────────────────▶│ tls::server_config   │
//!  │  (addresses in     │  Boot, CheckIn (unary)     │  + identity from the │
//!  │   turn, backoff,   │  Follow, Snapshot (server  │    client certificate│
//!  │   jitter)          │◀──────────────── streams)  │ pb::link_server::Link│
//!  └────────────────────┘                            └──────────────────────┘
//! ```
//!
//! # Layout
//! - [`pb`]: the messages and the tonic client/server generated from
//!   `proto/orrery/v1/link.proto` (every message and field is documented there).
//! - [`convert`]: model → message (infallible) and message → model (checked: names, addresses,
//!   DS digests, statuses, serial order), with [`ConvertError`] naming the object and field.
//!   Nothing received from the wire can panic.
//! - [`settings_file`]: a satellite's service tables as written in TOML (the master's
//!   `[satellites.NAME]` and a standalone satellite's file share them).
//! - [`tls`]: PEM loading, the master's rustls server configuration (client certificates
//!   required, verified against the private CA), the satellite's client configuration, and the
//!   satellite identity (`NAME.satellite.orrery`) read from a verified certificate.
//! - [`client`]: dialling the masters in turn with backoff and jitter.

pub mod client;
pub mod convert;
pub mod settings_file;
pub mod tls;

/// Code generated from `proto/orrery/v1/link.proto` by tonic-prost-build.
#[allow(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    clippy::all,
    clippy::pedantic,
    clippy::use_self,
    clippy::manual_let_else
)]
pub mod pb {
    tonic::include_proto!("orrery.v1");
}

pub use convert::{
    ConvertError, DnsListen, NotifyTarget, RdapListen, RdapTls, SatelliteSettings, TsigAlgorithm,
    TsigKey, WhoisListen, XfrAclRule, XfrSettings,
};

/// The largest message either end accepts (a change batch or a snapshot chunk). Batches are
/// bounded by the master's per-poll journal limit; this leaves ample room.
pub const MAX_MESSAGE_SIZE: usize = 256 * 1024 * 1024;
