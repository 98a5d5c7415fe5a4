//! The contract shared by every part of Orrery: the master, the satellites and the generator
//! all speak in these types.
//!
//! # Layout
//! - [`atomic_file`]: the one way a file is replaced on disk (temporary file, fsync, rename).
//! - [`dnssec`]: a zone's DNSSEC policy and public keys with their states.
//! - [`backoff`]: capped exponential backoff with jitter, for every retry loop.
//! - [`logging`]: what every binary writes to stderr: log lines (colour only on a terminal)
//!   and its final error, each cause once.
//! - [`metrics`]: Prometheus text exposition and the small `GET /metrics` server the master
//!   and the satellite both run.
//! - [`name`]: the one DNS name type ([`Name`]), with the checked wire-name decoder.
//! - [`model`]: the registry data model (zones, domains, hosts, DS, contacts, registrars) and
//!   the journal's change batches.
//! - [`prefix`]: address prefixes ([`Prefix`]), for source lists.
//! - [`selector`]: the Selector's configuration (leaf kinds and their settings, chains) and
//!   its one validator, shared by the master's file and the satellite's chains.
//! - [`link`]: the master–satellite gRPC link: messages generated from
//!   `proto/orrery/v1/link.proto`, checked conversions to and from the model, mutual TLS and
//!   the satellite's dial-in client.
//! - [`state_file`]: a satellite's registry on disk as a checksummed stream of the link's
//!   `Change` messages (written by the satellite and the generator, read at boot).

pub mod atomic_file;
pub mod backoff;
pub mod dnssec;
pub mod link;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod name;
pub mod prefix;
pub mod selector;
pub mod state_file;

pub use model::*;
pub use name::{Name, NameError};
pub use prefix::Prefix;
