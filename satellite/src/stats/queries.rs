//! DNS query counters: one cache-line-aligned block of relaxed atomics per worker thread,
//! indexed by typed enums, summed when read.
//!
//! ```text
//!   worker thread ──(thread-local slot)──▶ Block[slot]   queries[transport][rcode][qtype]
//!                                                         outcomes[transport][outcome]
//!                                                         latency[bucket], latency_ns
//!   check-in / scrape ──▶ QueryStats::totals() = Σ blocks
//! ```
//!
//! Why per worker: every answered query bumps three counters; on one shared block the workers
//! would take the same cache lines from each other at every query. A thread takes its slot
//! the first time it counts (slots are handed out round robin, so more threads than slots only
//! share a block, which stays correct: the increments are atomic). Recording is a thread-local
//! read, index arithmetic and relaxed `fetch_add`s: no lock, no allocation.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::dns::wire::{Transport, rtype};

/// Blocks per [`QueryStats`]: at least the worker threads of a usual satellite (UDP workers
/// plus the tokio threads that answer TCP).
pub const SLOTS: usize = 16;

/// Query types counted apart; the others are [`Qtype::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qtype {
    A,
    Ns,
    Soa,
    Txt,
    Aaaa,
    Ds,
    Ixfr,
    Axfr,
    Any,
    Other,
    /// The query had no question (it could not be parsed that far).
    None,
}

impl Qtype {
    pub const ALL: [Self; 11] = [
        Self::A,
        Self::Ns,
        Self::Soa,
        Self::Txt,
        Self::Aaaa,
        Self::Ds,
        Self::Ixfr,
        Self::Axfr,
        Self::Any,
        Self::Other,
        Self::None,
    ];

    /// The bucket of a QTYPE value (RFC 1035 §3.2.2, RFC 6895 §3.1).
    pub fn of(qtype: u16) -> Self {
        match qtype {
            rtype::A => Self::A,
            rtype::NS => Self::Ns,
            rtype::SOA => Self::Soa,
            rtype::TXT => Self::Txt,
            rtype::AAAA => Self::Aaaa,
            rtype::DS => Self::Ds,
            rtype::IXFR => Self::Ixfr,
            rtype::AXFR => Self::Axfr,
            rtype::ANY => Self::Any,
            _ => Self::Other,
        }
    }

    /// The QTYPE value (0, reserved by RFC 6895 §3.1, for `Other` and `None`).
    pub fn code(self) -> u16 {
        match self {
            Self::A => rtype::A,
            Self::Ns => rtype::NS,
            Self::Soa => rtype::SOA,
            Self::Txt => rtype::TXT,
            Self::Aaaa => rtype::AAAA,
            Self::Ds => rtype::DS,
            Self::Ixfr => rtype::IXFR,
            Self::Axfr => rtype::AXFR,
            Self::Any => rtype::ANY,
            Self::Other | Self::None => 0,
        }
    }

    /// The label value, the type's mnemonic.
    pub fn label(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Ns => "NS",
            Self::Soa => "SOA",
            Self::Txt => "TXT",
            Self::Aaaa => "AAAA",
            Self::Ds => "DS",
            Self::Ixfr => "IXFR",
            Self::Axfr => "AXFR",
            Self::Any => "ANY",
            Self::Other => "other",
            Self::None => "none",
        }
    }
}

/// RCODEs 0 to 16 (RFC 6895 §2.3, BADVERS = 16 needs EDNS), then every other value.
pub const RCODES: usize = 18;
/// The RCODE slots of the counters: [`RCODES`], then one for queries without a response
/// (label `none`), so that the counters hold every query received.
pub const RCODE_SLOTS: usize = RCODES + 1;

/// The index of an RCODE value.
fn rcode_index(rcode: u16) -> usize {
    usize::from(rcode).min(RCODES - 1)
}

/// The label value of an RCODE slot.
pub fn rcode_label(i: usize) -> &'static str {
    const NAMES: [&str; RCODE_SLOTS] = [
        "NOERROR",
        "FORMERR",
        "SERVFAIL",
        "NXDOMAIN",
        "NOTIMP",
        "REFUSED",
        "YXDOMAIN",
        "YXRRSET",
        "NXRRSET",
        "NOTAUTH",
        "NOTZONE",
        "DSOTYPENI",
        "RCODE12",
        "RCODE13",
        "RCODE14",
        "RCODE15",
        "BADVERS",
        "other",
        "none",
    ];
    NAMES[i]
}

/// What became of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered in full.
    Answered,
    /// Answered with TC set because the answer did not fit (RFC 1035 §4.2.1).
    Truncated,
    /// No answer: the Selector dropped it (unparseable, an ACL, …).
    Dropped,
    /// No answer: response rate limiting dropped it.
    RateLimited,
    /// Rate limited, and sent truncated instead (every `slip`-th).
    Slipped,
}

impl Outcome {
    pub const ALL: [Self; 5] = [
        Self::Answered,
        Self::Truncated,
        Self::Dropped,
        Self::RateLimited,
        Self::Slipped,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Truncated => "truncated",
            Self::Dropped => "dropped",
            Self::RateLimited => "rate_limited",
            Self::Slipped => "slipped",
        }
    }

    /// Whether a response went out.
    pub fn responded(self) -> bool {
        matches!(self, Self::Answered | Self::Truncated | Self::Slipped)
    }
}

/// Transports, in index order.
pub const TRANSPORTS: [Transport; 2] = [Transport::Udp, Transport::Tcp];

pub fn transport_label(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}

fn transport_index(t: Transport) -> usize {
    match t {
        Transport::Udp => 0,
        Transport::Tcp => 1,
    }
}

/// Finite buckets of the answer-time histogram: upper bounds 1 µs × 2^k, k = 0 … 19
/// (1 µs to about 0.5 s), then one for the rest.
pub const LATENCY_BUCKETS: usize = 21;

/// The upper bounds of the finite latency buckets, in seconds.
pub fn latency_bounds() -> [f64; LATENCY_BUCKETS - 1] {
    std::array::from_fn(|k| 1e-6 * f64::from(1u32 << k))
}

/// The bucket of a duration in nanoseconds: the first whose bound is at least it.
fn latency_index(ns: u64) -> usize {
    if ns <= 1000 {
        return 0;
    }
    // ceil(ns / 1 µs) rounded up to a power of two: k with 2^(k-1) < µs ≤ 2^k.
    let us = (ns - 1) / 1000 + 1;
    let k = (64 - (us - 1).leading_zeros()) as usize;
    k.min(LATENCY_BUCKETS - 1)
}

/// One worker's counters, aligned to two cache lines (the adjacent-line prefetcher pairs
/// them) so that no two workers' blocks share one.
#[repr(align(128))]
struct Block {
    queries: [[[AtomicU64; Qtype::ALL.len()]; RCODE_SLOTS]; 2],
    outcomes: [[AtomicU64; Outcome::ALL.len()]; 2],
    latency: [AtomicU64; LATENCY_BUCKETS],
    latency_ns: AtomicU64,
}

impl Block {
    fn new() -> Self {
        Self {
            queries: Default::default(),
            outcomes: Default::default(),
            latency: Default::default(),
            latency_ns: AtomicU64::new(0),
        }
    }
}

/// The DNS query counters of a satellite, shared by every worker and by the pipelines that
/// replace each other (the totals are the process's).
pub struct QueryStats {
    blocks: Box<[Block]>,
}

impl Default for QueryStats {
    fn default() -> Self {
        Self::new()
    }
}

/// The next slot to hand to a thread that counts for the first time.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's block index; `usize::MAX` until it first counts.
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's block index (shared with [`super::rds`]: one slot per thread for every
/// counter set).
pub(super) fn slot() -> usize {
    SLOT.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS;
            s.set(i);
        }
        i
    })
}

impl QueryStats {
    /// Allocates the blocks; done once at start-up.
    pub fn new() -> Self {
        Self {
            blocks: (0..SLOTS).map(|_| Block::new()).collect(),
        }
    }

    /// Counts one query: its transport, QTYPE bucket, what became of it, the RCODE of the
    /// response when one went out, and how long the satellite took over it.
    pub fn record(
        &self,
        transport: Transport,
        qtype: Qtype,
        outcome: Outcome,
        rcode: u16,
        took: Duration,
    ) {
        let b = &self.blocks[slot()];
        let t = transport_index(transport);
        let r = if outcome.responded() {
            rcode_index(rcode)
        } else {
            RCODES
        };
        b.queries[t][r][qtype as usize].fetch_add(1, Ordering::Relaxed);
        b.outcomes[t][outcome as usize].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        b.latency[latency_index(ns)].fetch_add(1, Ordering::Relaxed);
        b.latency_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The sums over every block. Allocates; for check-ins and scrapes only.
    pub fn totals(&self) -> QueryTotals {
        let mut t = QueryTotals::default();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for b in &self.blocks {
            for (tr, by_rcode) in b.queries.iter().enumerate() {
                for (r, by_qtype) in by_rcode.iter().enumerate() {
                    for (q, n) in by_qtype.iter().enumerate() {
                        t.queries[tr][r][q] += get(n);
                    }
                }
            }
            for (tr, by_outcome) in b.outcomes.iter().enumerate() {
                for (o, n) in by_outcome.iter().enumerate() {
                    t.outcomes[tr][o] += get(n);
                }
            }
            for (i, n) in b.latency.iter().enumerate() {
                t.latency[i] += get(n);
            }
            t.latency_ns += get(&b.latency_ns);
        }
        t
    }
}

/// Summed counters, read by [`QueryStats::totals`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryTotals {
    /// Queries by transport, RCODE slot (the last: no response) and [`Qtype`].
    pub queries: [[[u64; Qtype::ALL.len()]; RCODE_SLOTS]; 2],
    /// Queries by transport and [`Outcome`].
    pub outcomes: [[u64; Outcome::ALL.len()]; 2],
    /// Queries per latency bucket (not cumulative).
    pub latency: [u64; LATENCY_BUCKETS],
    /// Sum of the latencies, in nanoseconds.
    pub latency_ns: u64,
}

impl QueryTotals {
    /// Queries of `outcome`, both transports.
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.outcomes.iter().map(|o| o[outcome as usize]).sum()
    }

    /// Queries received on `transport`.
    pub fn received(&self, transport: Transport) -> u64 {
        self.outcomes[transport_index(transport)].iter().sum()
    }

    /// Responses sent by RCODE index, both transports.
    pub fn by_rcode(&self) -> [u64; RCODES] {
        std::array::from_fn(|r| self.queries.iter().map(|t| t[r].iter().sum::<u64>()).sum())
    }

    /// Queries received by [`Qtype`], both transports, answered or not.
    pub fn by_qtype(&self) -> [u64; Qtype::ALL.len()] {
        std::array::from_fn(|q| {
            self.queries
                .iter()
                .flat_map(|t| t.iter().map(move |r| r[q]))
                .sum()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_log_scale() {
        assert_eq!(latency_index(0), 0);
        assert_eq!(latency_index(1000), 0);
        assert_eq!(latency_index(1001), 1);
        assert_eq!(latency_index(2000), 1);
        assert_eq!(latency_index(2001), 2);
        assert_eq!(latency_index(1_000_000), 10); // 1 ms ≤ 1.024 ms
        assert_eq!(latency_index(u64::MAX), LATENCY_BUCKETS - 1);
        let b = latency_bounds();
        assert!((b[10] - 1.024e-3).abs() < 1e-12);
        // Every bound holds what its index says it holds.
        for (k, bound) in b.iter().enumerate() {
            let ns = (bound * 1e9).round() as u64;
            assert_eq!(latency_index(ns), k);
            assert_eq!(latency_index(ns + 1), k + 1);
        }
    }

    #[test]
    fn counts_sum_over_threads() {
        let stats = std::sync::Arc::new(QueryStats::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = std::sync::Arc::clone(&stats);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        s.record(
                            Transport::Udp,
                            Qtype::of(rtype::A),
                            Outcome::Answered,
                            3,
                            Duration::from_micros(3),
                        );
                    }
                    s.record(
                        Transport::Tcp,
                        Qtype::None,
                        Outcome::Dropped,
                        0,
                        Duration::ZERO,
                    );
                    s.record(
                        Transport::Udp,
                        Qtype::of(999),
                        Outcome::Slipped,
                        99,
                        Duration::from_secs(9),
                    );
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let t = stats.totals();
        assert_eq!(t.queries[0][3][Qtype::A as usize], 4000);
        assert_eq!(t.by_rcode()[3], 4000);
        assert_eq!(t.by_rcode()[RCODES - 1], 4);
        assert_eq!(t.by_qtype()[Qtype::Other as usize], 4);
        // A dropped query has no response, so no RCODE; it is a query received all the same.
        assert_eq!(t.by_qtype()[Qtype::None as usize], 4);
        assert_eq!(t.queries[1][RCODES][Qtype::None as usize], 4);
        assert_eq!(t.outcome(Outcome::Dropped), 4);
        assert_eq!(t.outcome(Outcome::Slipped), 4);
        assert_eq!(t.received(Transport::Udp), 4004);
        assert_eq!(t.received(Transport::Tcp), 4);
        assert_eq!(t.latency[2], 4000);
        assert_eq!(t.latency[LATENCY_BUCKETS - 1], 4);
        assert_eq!(t.latency.iter().sum::<u64>(), 4008);
        assert_eq!(t.latency_ns, 4 * (1000 * 3000 + 9_000_000_000));
    }
}
