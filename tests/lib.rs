//! Cluster-level test helpers.

pub mod private_postgres;
