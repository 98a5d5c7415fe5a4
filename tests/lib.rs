//! Cluster-level test helpers.
