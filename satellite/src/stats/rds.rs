//! Whois and RDAP request counters: per worker thread, by protocol and outcome, summed when
//! read; the DNS counters' scheme ([`super::queries`]) on a smaller block.
//!
//! Recorded by [`crate::rds::RdsPipeline::handle`] for every request whatever the chains do,
//! so that the check-in and the metrics see all of them. Recording is a thread-local read and
//! one relaxed `fetch_add`: no lock, no allocation.

use std::sync::atomic::{AtomicU64, Ordering};

use super::queries::{SLOTS, slot};
use crate::rds::{self, Protocol};

/// What became of a Whois or RDAP request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RdsOutcome {
    Found,
    NotFound,
    BadRequest,
    RateLimited,
    Refused,
    /// A leaf answered without deciding (a bug), answered as a server error.
    ServerError,
    /// No answer: a leaf dropped the request and the connection was closed.
    Dropped,
}

impl RdsOutcome {
    pub const ALL: [Self; 7] = [
        Self::Found,
        Self::NotFound,
        Self::BadRequest,
        Self::RateLimited,
        Self::Refused,
        Self::ServerError,
        Self::Dropped,
    ];

    /// What became of a request the chain decided `outcome` for, `responded` or not.
    pub fn of(responded: bool, outcome: rds::Outcome) -> Self {
        match (responded, outcome) {
            (false, _) => Self::Dropped,
            (true, rds::Outcome::Found) => Self::Found,
            (true, rds::Outcome::NotFound) => Self::NotFound,
            (true, rds::Outcome::BadRequest(_)) => Self::BadRequest,
            (true, rds::Outcome::RateLimited { .. }) => Self::RateLimited,
            (true, rds::Outcome::Refused) => Self::Refused,
            (true, rds::Outcome::ServerError | rds::Outcome::Pending) => Self::ServerError,
        }
    }

    /// The label value (and the check-in's `rds_` error names).
    pub fn label(self) -> &'static str {
        match self {
            Self::Found => "found",
            Self::NotFound => "not_found",
            Self::BadRequest => "bad_request",
            Self::RateLimited => "rate_limited",
            Self::Refused => "refused",
            Self::ServerError => "server_error",
            Self::Dropped => "dropped",
        }
    }
}

/// Protocols, in index order.
pub const PROTOCOLS: [Protocol; 2] = [Protocol::Whois, Protocol::Rdap];

/// The `service` label value of a protocol.
pub fn protocol_label(p: Protocol) -> &'static str {
    match p {
        Protocol::Whois => "whois",
        Protocol::Rdap => "rdap",
    }
}

fn protocol_index(p: Protocol) -> usize {
    match p {
        Protocol::Whois => 0,
        Protocol::Rdap => 1,
    }
}

/// One worker's counters, on cache lines of its own (see [`super::queries`]).
#[repr(align(128))]
#[derive(Default)]
struct Block {
    requests: [[AtomicU64; RdsOutcome::ALL.len()]; PROTOCOLS.len()],
}

/// The Whois and RDAP counters of a satellite, shared by the pipelines that replace each
/// other (the totals are the process's).
pub struct RdsStats {
    blocks: Box<[Block]>,
}

impl Default for RdsStats {
    fn default() -> Self {
        Self::new()
    }
}

impl RdsStats {
    /// Allocates the blocks; done once at start-up.
    pub fn new() -> Self {
        Self {
            blocks: (0..SLOTS).map(|_| Block::default()).collect(),
        }
    }

    /// Counts one request.
    pub fn record(&self, protocol: Protocol, outcome: RdsOutcome) {
        self.blocks[slot()].requests[protocol_index(protocol)][outcome as usize]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The sums over every block; for check-ins and scrapes.
    pub fn totals(&self) -> RdsTotals {
        let mut t = RdsTotals::default();
        for b in &self.blocks {
            for (p, by_outcome) in b.requests.iter().enumerate() {
                for (o, n) in by_outcome.iter().enumerate() {
                    t.requests[p][o] += n.load(Ordering::Relaxed);
                }
            }
        }
        t
    }
}

/// Summed counters, read by [`RdsStats::totals`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RdsTotals {
    /// Requests by protocol ([`PROTOCOLS`] order) and [`RdsOutcome`].
    pub requests: [[u64; RdsOutcome::ALL.len()]; PROTOCOLS.len()],
}

impl RdsTotals {
    /// Requests received by `protocol`, whatever became of them.
    pub fn received(&self, protocol: Protocol) -> u64 {
        self.requests[protocol_index(protocol)].iter().sum()
    }

    /// Requests of `outcome` by `protocol`.
    pub fn get(&self, protocol: Protocol, outcome: RdsOutcome) -> u64 {
        self.requests[protocol_index(protocol)][outcome as usize]
    }

    /// Requests of `outcome`, both protocols.
    pub fn outcome(&self, outcome: RdsOutcome) -> u64 {
        self.requests.iter().map(|p| p[outcome as usize]).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_over_threads() {
        let stats = std::sync::Arc::new(RdsStats::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = std::sync::Arc::clone(&stats);
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        s.record(Protocol::Whois, RdsOutcome::Found);
                    }
                    s.record(Protocol::Rdap, RdsOutcome::RateLimited);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let t = stats.totals();
        assert_eq!(t.received(Protocol::Whois), 400);
        assert_eq!(t.received(Protocol::Rdap), 4);
        assert_eq!(t.get(Protocol::Whois, RdsOutcome::Found), 400);
        assert_eq!(t.outcome(RdsOutcome::RateLimited), 4);
        assert_eq!(t.outcome(RdsOutcome::Dropped), 0);
    }

    #[test]
    fn outcomes_map_from_the_chain() {
        assert_eq!(
            RdsOutcome::of(false, rds::Outcome::Found),
            RdsOutcome::Dropped
        );
        assert_eq!(
            RdsOutcome::of(true, rds::Outcome::BadRequest("x")),
            RdsOutcome::BadRequest
        );
        assert_eq!(
            RdsOutcome::of(true, rds::Outcome::Pending),
            RdsOutcome::ServerError
        );
    }
}
