//! Registration data services: Whois (RFC 3912, port 43) and RDAP (RFC 7480, 9082, 9083).
//!
//! ```text
//!  Whois TCP connection ─┐                                    ┌─► whois::render (text)
//!   (one query line)     ├─► RdsEvent ─► Selector<Rds> ──────┤
//!  RDAP HTTP request ────┘   (request   chain "main":        └─► rdap::render (JSON)
//!   (GET path)                bytes,     statistics → validate_query → acl → rate_limit → lookup
//!                             peer)                │ Outcome: Found / NotFound / BadRequest /
//!                                                  │          RateLimited / Refused
//!  Served.directory ◄─────────────────────────────┘ one lock-free load per request
//! ```
//!
//! Both protocols go through one [`Selector`](crate::selector::Selector) of their own service,
//! [`Rds`]: the same chain machinery as DNS with its own event and leaf kinds. Leaves decide
//! (parse, refuse, limit, find); they never render. The edges render the [`Outcome`] in their
//! protocol after the chain, from the same directory version the lookup saw, then write it.
//!
//! # Layout
//! - [`directory`]: the data (domains, hosts, contacts, registrars), inside each zone version.
//! - [`leaf`]: the leaf kinds of this service and their configuration.
//! - [`pipeline`]: the Selector, the zone store and free lists of events, shared by the edges.
//! - [`rdap`]: an outcome rendered as RDAP JSON (RFC 9083, ICANN's profile, RFC 9537 redaction).
//! - [`rdap_server`]: the HTTP(S) edge (hyper, HTTP/1.1): keep-alive, timeouts, a cap.
//! - [`whois`]: an outcome rendered as Whois text (RFC 3912, ICANN's RDDS layout).
//! - [`whois_server`]: the port-43 edge: one query line per TCP connection, timeouts, a cap.

pub mod directory;
mod json;
pub mod leaf;
pub mod pipeline;
pub mod rate_limit;
pub mod rdap;
pub mod rdap_server;
pub mod whois;
pub mod whois_server;

use std::net::IpAddr;
use std::time::Duration;

use orrery_proto::Name;

pub use self::directory::Directory;
pub use self::pipeline::RdsPipeline;
use crate::dns::leaf::SelectorError;
use crate::selector::{ChainId, Service};
use crate::served::Served;

/// The protocol a request arrived by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Whois,
    Rdap,
}

/// What a request asks for, once validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Query {
    /// Not parsed yet (or not parseable).
    #[default]
    None,
    /// A domain, by canonical A-label name.
    Domain(Name),
    /// A nameserver host object.
    Nameserver(Name),
    /// A registrar, by name or handle (Whois `registrar NAME`).
    Registrar(String),
    /// A contact or registrar, by handle (RDAP `/entity/HANDLE`).
    Entity(String),
    /// The service's help text (Whois `help`, RDAP `/help`).
    Help,
}

/// What the chain decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing decided yet.
    #[default]
    Pending,
    /// The object exists (or help was asked for): render it.
    Found,
    /// No such object.
    NotFound,
    /// The request is malformed; the text says why, briefly.
    BadRequest(&'static str),
    /// Over the rate limit; the client may try again after this long.
    RateLimited { retry_after: Duration },
    /// Refused by policy (source ACL), or no leaf claimed the request.
    Refused,
    /// A leaf answered without deciding: a bug, answered as a server error.
    ServerError,
}

/// One request on its way through the chain. Allocated once and reused (free lists in
/// [`RdsPipeline`]): the buffers keep their capacity.
#[derive(Debug)]
pub struct RdsEvent {
    pub peer: IpAddr,
    pub protocol: Protocol,
    /// The request as received: a Whois query line without its line end, or an RDAP
    /// request path (still percent-encoded).
    pub request: Vec<u8>,
    pub query: Query,
    pub outcome: Outcome,
}

impl crate::selector::Request for RdsEvent {
    fn peer(&self) -> IpAddr {
        self.peer
    }
}

impl RdsEvent {
    pub fn new() -> Self {
        Self {
            peer: IpAddr::from([0, 0, 0, 0]),
            protocol: Protocol::Whois,
            request: Vec::with_capacity(256),
            query: Query::None,
            outcome: Outcome::Pending,
        }
    }

    /// Readies the event for a new request; `request` is then filled by the edge.
    pub fn reset(&mut self, peer: IpAddr, protocol: Protocol) {
        self.peer = peer;
        self.protocol = protocol;
        self.request.clear();
        self.query = Query::None;
        self.outcome = Outcome::Pending;
    }
}

impl Default for RdsEvent {
    fn default() -> Self {
        Self::new()
    }
}

/// Shared read-only context of one request.
pub struct RdsCtx<'a> {
    pub served: &'a Served,
}

impl RdsCtx<'_> {
    /// The registration data.
    pub fn directory(&self) -> &Directory {
        &self.served.directory
    }
}

/// The registration data services, as a [`Service`] for the Selector.
pub struct Rds;

impl Service for Rds {
    type Event = RdsEvent;
    type Ctx<'a> = RdsCtx<'a>;
    type LeafConfig = leaf::RdsLeafConfig;

    fn build_leaf(
        name: &str,
        config: &leaf::RdsLeafConfig,
        _chain: &dyn Fn(&str) -> Option<ChainId>,
    ) -> Result<Box<dyn crate::selector::Leaf<Self>>, SelectorError> {
        leaf::build(name, config)
    }

    fn refuse(ev: &mut RdsEvent, _: &RdsCtx<'_>) {
        ev.outcome = Outcome::Refused;
    }

    fn complete(ev: &mut RdsEvent, _: &RdsCtx<'_>) {
        if ev.outcome == Outcome::Pending {
            ev.outcome = Outcome::ServerError;
        }
    }
}
