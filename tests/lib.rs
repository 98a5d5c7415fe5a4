//! Cluster-level test helpers, shared with the other crates' tests through their
//! dev-dependency on this library.

pub mod loopback_port;
pub mod private_postgres;
pub mod secondaries;
