//! The Orrery satellite: authoritative DNS for a registry's zones, and Whois and RDAP for its
//! registrations, answered from preallocated hash tables through Selector chains of leaves.
//!
//! ```text
//!  UDP socket ─┐   worker thread (N, fixed at start-up), each     TCP connection (RFC 7766)
//!  per worker  ▼   with its socket (SO_REUSEPORT), Event, batch   takes an Event from a
//!  recvmmsg ───► Event::load (wire: parse header, question, OPT)  free list, returns it
//!                     │
//!                     ▼
//!               Selector ── chain "main" ─► validate_query ─► acl ─► route_class ─► lookup
//!                     │                                                 │ Jump
//!                     │                    chain "chaos" ─► chaos ◄─────┘
//!                     ▼
//!               Response (64 KiB buffer, compression, TC) ──► sendmmsg (the batch) / framed write
//!                     ▲
//!  ServedStore ───────┘ one lock-free ArcSwap load per query; batches swap whole versions
//! ```
//!
//! # Layout
//! - [`selector`]: the Selector framework shared by every service: [`selector::Flow`],
//!   [`selector::Leaf`], [`selector::Service`], the chain runner, and the leaves that work for any
//!   service ([`selector::acl`]).
//! - [`dns`]: authoritative DNS: the allocation-free codec and the [`dns::wire::Event`] each
//!   query travels in ([`dns::wire`]), the DNS leaves ([`dns::leaf`]), the
//!   [`dns::pipeline::Pipeline`] that ties the Selector to the zones, and the edges: UDP
//!   workers with a socket each and batched system calls ([`dns::udp`]) and the TCP listener
//!   ([`dns::server`]).
//! - [`rds`]: the registration data services, Whois (port 43) and RDAP, through a Selector of
//!   their own over the registration data directory, with their rate limits and connection caps.
//! - [`served`]: what the satellite answers from ([`served::Served`]: the DNS tables and the
//!   Whois/RDAP directory side by side) in versions that share unchanged shards, swapped
//!   whole after each batch ([`served::ServedStore`]); the sharded copy-on-write primitive.
//! - [`zone`]: the DNS tables ([`zone::ZoneSet`]), compact: names in per-shard arenas,
//!   hosts interned once and referred to by `u32`.
//! - [`stats`]: the statistics as typed per-worker counters, read by the check-in and by the
//!   Prometheus listener.
//! - [`snapshot`]: a registry held by value ([`SnapshotData`]) and read from or written to a
//!   state file (the format is `orrery_proto::state_file`), for tests, tools and `--snapshot`.
//! - [`config`]: the TOML configuration, validated once into typed values.
//! - [`xfr`]: zone transfer out: AXFR and IXFR with TSIG, handed over by the DNS TCP
//!   listener, with limits of their own; NOTIFY to secondaries.
//! - [`expiry`]: zone expiry (RFC 1035 §3.3.13): the time since a master was last heard
//!   from, against each zone's SOA EXPIRE; with `serve_expired = false` an expired zone
//!   answers SERVFAIL.
//! - [`link`]: the dial-in link to the masters (boot, snapshot, change stream, check-ins) and
//!   the state files that let a restarted satellite serve without them.
//!
//! # Design in one paragraph
//! Everything a query needs is allocated at start-up: an [`dns::wire::Event`] per worker (or per TCP
//! connection, from a free list) holds the parsed query in fixed arrays and a 64 KiB response
//! buffer; leaves are long-lived objects built from configuration; the zone version is
//! borrowed, not cloned. A test with a counting global allocator proves that steady-state query
//! handling allocates nothing (`tests/no_alloc.rs`).

pub mod background;
pub mod config;
pub mod dns;
pub mod expiry;
pub mod link;
pub mod rds;
pub mod selector;
pub mod served;
pub mod snapshot;
pub mod stats;
pub mod tcp;
pub mod xfr;
pub mod zone;

pub use config::{Config, ConfigError};
pub use dns::leaf::SelectorConfig;
pub use dns::pipeline::Pipeline;
pub use selector::Selector;
pub use served::{BuildOptions, Served, ServedStore};
pub use snapshot::{SnapshotData, SnapshotError, read_snapshot, write_snapshot};
pub use zone::ZoneSet;
