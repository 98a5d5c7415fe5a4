//! The Orrery satellite: authoritative DNS for a registry's zones, and Whois and RDAP for its
//! registrations, answered from preallocated hash tables through Selector chains of leaves.
//!
//! ```text
//!  UDP socket ─┐   worker thread (N, fixed at start-up), each     TCP connection (RFC 7766)
//!  per worker  ▼   with its socket (SO_REUSEPORT), Event, batch   takes an Event from a
//!  recvmmsg ───► Event::load (wire: parse header, question, OPT)  free list, returns it
//!                     │
//!                     ▼
//!               Selector ── chain "main" ─► statistics ─► validate_query ─► acl ─► route_class ─► lookup
//!                     │                                                          │ Jump
//!                     │                    chain "chaos" ─► chaos ◄──────────────┘
//!                     ▼
//!               Response (64 KiB buffer, compression, TC) ──► sendmmsg (the batch) / framed write
//!                     ▲
//!  ZoneStore ─────────┘ one lock-free ArcSwap load per query; batches swap whole versions
//! ```
//!
//! # Layout
//! - [`wire`]: the allocation-free DNS codec and the [`wire::Event`] each query travels in.
//! - [`zone`]: the zone data ([`zone::ZoneSet`]) and its atomically swapped versions
//!   ([`zone::store::ZoneStore`]).
//! - [`leaf`]: the [`leaf::Leaf`] trait, the [`leaf::Selector`] and one file per leaf.
//! - [`pipeline`]: ties the Selector, the zone store and the server-wide settings together.
//! - [`server`]: UDP worker threads and the TCP listener, with graceful shutdown.
//! - [`udp`]: the UDP edge: a socket per worker, batched receive and send, answers from the
//!   address the query arrived on.
//! - [`snapshot`]: the versioned, checksummed snapshot file the satellite starts from.
//! - [`config`]: the TOML configuration, validated once into typed values.
//! - [`link`]: the dial-in link to the masters (boot, snapshot, change stream, check-ins) and
//!   the state files that let a restarted satellite serve without them.
//! - [`rds`]: the registration data services, Whois (port 43) and RDAP, through a Selector of
//!   their own over the directory each zone version holds.
//! - [`rate_limit`]: token buckets per client address and per prefix (used by the Whois/RDAP
//!   `rate_limit` leaf; the DNS `rrl` leaf, response rate limiting, shares its token
//!   arithmetic with a lock-free table of its own).
//!
//! # Design in one paragraph
//! Everything a query needs is allocated at start-up: an [`wire::Event`] per worker (or per TCP
//! connection, from a free list) holds the parsed query in fixed arrays and a 64 KiB response
//! buffer; leaves are long-lived objects built from configuration; the zone version is
//! borrowed, not cloned. A test with a counting global allocator proves that steady-state query
//! handling allocates nothing (`tests/no_alloc.rs`).

pub mod config;
pub mod connection_limit;
pub mod leaf;
pub mod link;
pub mod pipeline;
pub mod rate_limit;
pub mod rds;
pub mod server;
pub mod snapshot;
pub mod udp;
pub mod wire;
pub mod zone;

pub use config::{Config, ConfigError};
pub use leaf::{Selector, SelectorConfig};
pub use pipeline::Pipeline;
pub use snapshot::{SnapshotData, SnapshotError, read_snapshot, write_snapshot};
pub use zone::ZoneSet;
pub use zone::store::ZoneStore;
