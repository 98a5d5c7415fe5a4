//! The contract shared by every part of Orrery: the master, the satellites and the generator
//! all speak in these types.
//!
//! # Layout
//! - [`name`]: the one DNS name type ([`Name`]), with the checked wire-name decoder.
//! - [`model`]: the registry data model (zones, domains, hosts, DS, contacts, registrars) and
//!   the journal's change batches.
//!
//! The gRPC messages of the master–satellite link will live here too, generated from `.proto`
//! files, with conversions to and from the model.

pub mod model;
pub mod name;

pub use model::*;
pub use name::{Name, NameError};
