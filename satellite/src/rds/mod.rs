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

/// What a request asks for, once validated; the object it names is in the event's [`Key`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Query {
    /// Not parsed yet (or not parseable).
    #[default]
    None,
    /// A domain, by canonical A-label name ([`Key::name`]).
    Domain,
    /// A nameserver host object ([`Key::name`]).
    Nameserver,
    /// A registrar, by name or handle (Whois `registrar NAME`; [`Key::text`]).
    Registrar,
    /// A contact or registrar, by handle (RDAP `/entity/HANDLE`; [`Key::text`]).
    Entity,
    /// The service's help text (Whois `help`, RDAP `/help`).
    Help,
}

/// The object a query names, in buffers the event keeps from request to request: parsing a
/// query allocates nothing once they have grown (a U-label name is the exception: its IDNA
/// mapping allocates).
#[derive(Clone, Debug, Default)]
pub struct Key {
    /// Canonical wire form of the name, for [`Query::Domain`] and [`Query::Nameserver`].
    name: Vec<u8>,
    /// The handle or registrar name, for [`Query::Entity`] and [`Query::Registrar`].
    text: String,
    /// The percent-decoded RDAP path, while it is parsed.
    pub(crate) decoded: Vec<u8>,
}

impl Key {
    fn with_capacity() -> Self {
        Self {
            name: Vec::with_capacity(orrery_proto::name::MAX_NAME_LEN),
            text: String::with_capacity(256),
            decoded: Vec::with_capacity(256),
        }
    }

    /// The name asked for, in canonical wire form (empty unless the query names one).
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The handle or registrar name asked for (empty unless the query names one).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Sets the name from presentation form (U-labels become A-labels).
    pub(crate) fn set_name(&mut self, text: &str) -> Result<(), orrery_proto::NameError> {
        orrery_proto::name::user_to_wire(text, &mut self.name)
    }

    pub(crate) fn set_text(&mut self, text: &str) {
        self.text.clear();
        self.text.push_str(text);
    }

    fn clear(&mut self) {
        self.name.clear();
        self.text.clear();
    }
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
    /// What `query` names.
    pub key: Key,
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
            key: Key::with_capacity(),
            outcome: Outcome::Pending,
        }
    }

    /// Sets what the request asks for, as the `validate_query` leaf would have: `key` is a
    /// name in presentation form for a domain or nameserver, a handle or registrar name for
    /// an entity or registrar, and ignored otherwise. For callers that know the query already
    /// (tests, benchmarks).
    pub fn ask(&mut self, query: Query, key: &str) -> Result<(), orrery_proto::NameError> {
        self.key.clear();
        self.query = query;
        match query {
            Query::Domain | Query::Nameserver => self.key.set_name(key),
            Query::Registrar | Query::Entity => {
                self.key.set_text(key);
                Ok(())
            }
            Query::None | Query::Help => Ok(()),
        }
    }

    /// Readies the event for a new request; `request` is then filled by the edge.
    pub fn reset(&mut self, peer: IpAddr, protocol: Protocol) {
        self.peer = peer;
        self.protocol = protocol;
        self.request.clear();
        self.query = Query::None;
        self.key.clear();
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
