//! The Orrery master: it follows the store's change journal, caches zone state and recent
//! changes, and hands each satellite its configuration and updates over mutually authenticated
//! gRPC. Not built yet: this crate marks the place in the architecture.
