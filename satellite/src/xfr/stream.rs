//! The messages of one transfer, built from one served version on a blocking thread and handed
//! to the connection's task through a channel of one message.
//!
//! The channel is the backpressure: the builder waits while the connection has a message it
//! could not write yet, so a slow reader holds its version, the message being written, the one
//! waiting in the channel and the one being built, nothing more. The connection dropping the
//! receiver (client gone, a timeout, shutdown) stops the builder at its next message.
//!
//! Forms of an answer (RFC 5936 §2.2, RFC 1995 §2 and §4):
//!
//! | request                             | answer                                         |
//! |-------------------------------------|------------------------------------------------|
//! | AXFR                                | SOA, every record, SOA                         |
//! | IXFR, client's serial current/newer | the SOA only                                   |
//! | IXFR, client's serial in the window | SOA(new), per serial: SOA(old) deletions       |
//! |                                     | SOA(next) additions, …, SOA(new)               |
//! | IXFR, serial outside the window     | AXFR-style: SOA, every record, SOA             |

use std::sync::Arc;

use tokio::sync::mpsc::Sender;

use super::catalog::Catalog;
use super::tsig::{self, Signer};
use super::{framed, set_frame_len};
use crate::dns::wire::{Full, Owner, Query, Response, Section, Transport, class};
use crate::served::Served;
use crate::served::history::Diff;
use crate::zone::records::{Record, RecordData};

/// Size of the messages of a transfer: small enough that a slow reader holds little, large
/// enough that headers, TSIGs and system calls are a small share (RFC 5936 §2.2 leaves the
/// size to the server; BIND and Knot use 16–64 KiB).
pub const MESSAGE_SIZE: usize = 16 * 1024;

/// What one transfer sends, decided before the first message.
pub struct Plan {
    source: Source,
    kind: Kind,
}

/// Where the records come from.
enum Source {
    /// A served zone, at `apex`, of one served version.
    Zone {
        version: Arc<Served>,
        apex: Box<[u8]>,
    },
    /// The catalog zone of one served version.
    Catalog(Arc<Catalog>),
}

enum Kind {
    /// The whole zone (AXFR, or an IXFR answered AXFR-style).
    Full,
    /// The SOA alone: the client is current.
    SoaOnly,
    /// The differences, oldest first.
    Incremental(Vec<Arc<Diff>>),
}

impl Plan {
    /// An AXFR of the zone at `apex` (a served apex of `version`).
    pub fn axfr(version: Arc<Served>, apex: Box<[u8]>) -> Self {
        Self {
            source: Source::Zone { version, apex },
            kind: Kind::Full,
        }
    }

    /// A transfer of the catalog zone: AXFR (`client` None), or IXFR from the client's serial
    /// `client`, from the catalog's own differences.
    pub fn catalog(catalog: Arc<Catalog>, client: Option<u32>) -> Self {
        let kind = match client {
            Some(s) if !serial_lt(s, catalog.serial) => Kind::SoaOnly,
            Some(s) => catalog.since(s).map_or(Kind::Full, Kind::Incremental),
            None => Kind::Full,
        };
        Self {
            source: Source::Catalog(catalog),
            kind,
        }
    }

    /// An IXFR from the client's serial `client` (the SOA of its request; none: AXFR-style).
    pub fn ixfr(version: Arc<Served>, apex: Box<[u8]>, client: Option<u32>) -> Self {
        let current = version.zones.find_zone(&apex).map_or(0, |z| z.serial);
        let kind = match client {
            // Current, or newer than ours (RFC 1982 arithmetic): nothing to send but our SOA.
            Some(s) if !serial_lt(s, current) => Kind::SoaOnly,
            Some(s) => match version.history.since(&apex, s, current) {
                Some(diffs) => Kind::Incremental(diffs),
                None => Kind::Full,
            },
            None => Kind::Full,
        };
        Self {
            source: Source::Zone { version, apex },
            kind,
        }
    }

    /// True when the answer is a sequence of differences.
    pub fn is_incremental(&self) -> bool {
        matches!(self.kind, Kind::Incremental(_))
    }

    /// True when the answer is the whole zone (AXFR, or IXFR answered AXFR-style).
    pub fn is_full(&self) -> bool {
        matches!(self.kind, Kind::Full)
    }
}

/// `a < b` in serial number arithmetic (RFC 1982 §3.2).
pub fn serial_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}

/// Builds and sends every message of `plan`; returns when done or when the receiver is gone.
pub fn generate(plan: Plan, query: Box<Query>, signer: Option<Signer>, tx: Sender<Vec<u8>>) {
    let mut m = Messages {
        query,
        response: Box::new(Response::new()),
        signer,
        tx,
        stopped: false,
    };
    m.begin();
    match &plan.source {
        Source::Zone { version, apex } => {
            let zones = &version.zones;
            let Some(zone) = zones.find_zone(apex) else {
                return;
            };
            let soa = zones.soa_record(zone);
            match &plan.kind {
                Kind::Full => {
                    // The walk starts with the SOA.
                    zones.records(apex, |r| m.push(&r));
                    m.push(&soa);
                }
                Kind::SoaOnly => m.push(&soa),
                Kind::Incremental(diffs) => {
                    m.push(&soa);
                    m.push_diffs(diffs);
                    m.push(&soa);
                }
            }
        }
        Source::Catalog(c) => {
            let soa = c.soa();
            match &plan.kind {
                Kind::Full => {
                    m.push_raw(soa);
                    for r in c.records() {
                        m.push_raw(r);
                    }
                    m.push_raw(soa);
                }
                Kind::SoaOnly => m.push_raw(soa),
                Kind::Incremental(diffs) => {
                    m.push_raw(soa);
                    m.push_diffs(diffs);
                    m.push_raw(soa);
                }
            }
        }
    }
    m.flush();
}

/// A record held by value in the IXFR window: owner and RDATA in canonical wire form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnedRecord {
    pub owner: Box<[u8]>,
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Box<[u8]>,
}

impl OwnedRecord {
    pub fn of(r: &Record<'_>) -> Self {
        let mut rdata = Vec::new();
        r.data.write_canonical(&mut rdata);
        Self {
            owner: r.owner.into(),
            rtype: r.data.rtype(),
            ttl: r.ttl,
            rdata: rdata.into_boxed_slice(),
        }
    }
}

struct Messages {
    query: Box<Query>,
    response: Box<Response>,
    signer: Option<Signer>,
    tx: Sender<Vec<u8>>,
    stopped: bool,
}

impl Messages {
    fn begin(&mut self) {
        self.response.begin(&self.query, Transport::Tcp, None);
        self.response.limit_to(MESSAGE_SIZE - tsig::TSIG_ROOM);
        self.response.authoritative = true;
    }

    fn push(&mut self, rec: &Record<'_>) {
        self.write(|r| write_record(r, rec));
    }

    /// The differences of an IXFR, oldest first (RFC 1995 §4): per serial, the old SOA and
    /// what was deleted, then the new SOA and what was added.
    fn push_diffs(&mut self, diffs: &[Arc<Diff>]) {
        for d in diffs {
            self.push_raw(&d.old_soa);
            for r in &d.deleted {
                self.push_raw(r);
            }
            self.push_raw(&d.new_soa);
            for r in &d.added {
                self.push_raw(r);
            }
        }
    }

    fn push_raw(&mut self, rec: &OwnedRecord) {
        self.write(|r| {
            r.record(
                Owner::Name(&rec.owner),
                rec.rtype,
                class::IN,
                rec.ttl,
                |r| r.put_bytes(&rec.rdata),
            )
        });
    }

    /// Writes one record into the message being built, starting the next message when it is
    /// full.
    fn write(&mut self, f: impl Fn(&mut Response) -> Result<(), Full>) {
        if self.stopped {
            return;
        }
        if self.response.rrset(Section::Answer, false, &f) {
            return;
        }
        self.flush();
        self.begin();
        if !self.response.rrset(Section::Answer, false, &f) {
            // A record larger than a message: cannot happen with these record types.
            tracing::error!("a record does not fit in an empty transfer message");
            self.stopped = true;
        }
    }

    /// Finishes, signs and sends the message being built (if it holds records).
    fn flush(&mut self) {
        if self.stopped || self.response.count(Section::Answer) == 0 {
            return;
        }
        let mut out = framed(self.response.finish());
        if let Some(s) = &mut self.signer {
            s.sign_at(&mut out, 2, tsig::now(), 0, &[]);
            set_frame_len(&mut out);
        }
        if self.tx.blocking_send(out).is_err() {
            self.stopped = true;
        }
    }
}

fn write_record(r: &mut Response, rec: &Record<'_>) -> Result<(), Full> {
    r.record(
        Owner::Name(rec.owner),
        rec.data.rtype(),
        class::IN,
        rec.ttl,
        |r| match rec.data {
            RecordData::Soa { soa, serial } => {
                r.put_name(soa.mname.as_wire())?;
                r.put_name(soa.rname.as_wire())?;
                r.put_u32(serial)?;
                r.put_u32(soa.refresh)?;
                r.put_u32(soa.retry)?;
                r.put_u32(soa.expire)?;
                r.put_u32(soa.minimum)
            }
            RecordData::Ns(name) => r.put_name(name),
            RecordData::A(a) => r.put_bytes(a),
            RecordData::Aaaa(a) => r.put_bytes(a),
            RecordData::Ds(ds) => {
                r.put_u16(ds.key_tag)?;
                r.put_u8(ds.algorithm)?;
                r.put_u8(ds.digest_type)?;
                r.put_bytes(ds.digest)
            }
            RecordData::Dnssec { rdata, .. } => r.put_bytes(rdata),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic() {
        assert!(serial_lt(1, 2));
        assert!(!serial_lt(2, 2));
        assert!(!serial_lt(3, 2));
        assert!(serial_lt(u32::MAX, 1), "wraps");
        assert!(!serial_lt(1, u32::MAX));
    }
}
