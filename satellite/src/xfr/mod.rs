//! Zone transfer out (issue 14): AXFR (RFC 5936) and IXFR (RFC 1995) over the DNS TCP
//! listeners, authenticated with TSIG (RFC 8945), with their own limits.
//!
//! ```text
//!  DNS TCP connection (dns::server) ── a framed AXFR/IXFR query ──▶ XfrService::serve
//!    │ (any other query: the Selector, as before)                      │
//!    │                 FORMERR: no parse, a misplaced TSIG ◀───────────┤ request + TSIG
//!    │         NOTAUTH + TSIG error: BADKEY/BADSIG/BADTIME ◀───────────┤ (tsig)
//!    │                  NOTAUTH: not a served apex (§2.2.1) ◀──────────┤ one version, taken once
//!    │   REFUSED: no ACL rule, wrong/missing key, over a limit ◀───────┤ (acl, rate, slots)
//!    ▼                                                                  ▼
//!  the connection goes on with the next query         messages (≤ 16 KiB, each signed) built
//!  after the transfer                                 on a blocking thread, one at a time,
//!                                                     through a channel of one: a slow
//!                                                     reader holds one version and ~3 buffers
//! ```
//!
//! # Why the DNS listener hands transfers over
//! Secondaries send their SOA queries, NOTIFY answers and transfers to one address: the
//! satellite's DNS address. So transfers arrive on the DNS TCP listeners, whose connection
//! loop recognises AXFR/IXFR by the question's type (a few octets read in place, no
//! allocation) and hands the request to [`XfrService::serve`], which runs the transfer on the
//! same connection and its task, then returns it to the loop. Everything past that point may
//! allocate and has its own limits (concurrent transfers overall and per address, transfers
//! started per minute per address, idle and total timeouts); none of it runs on the UDP
//! workers or in the Selector, so a transfer costs queries only the CPU it uses (measured in
//! docs/BENCHMARKS.md). Without an `xfr` service AXFR/IXFR go through the Selector as
//! before (`validate_query`: REFUSED for a served apex).
//!
//! # One version per transfer
//! The served version is loaded once (`ServedStore::load_full`) and the whole transfer, SOA
//! to SOA, is written from it: a batch applied meanwhile is in the next transfer, never half
//! in this one. The records come from the one walk of the zone tables
//! ([`crate::zone::records`]).

pub mod catalog;
pub mod notify;
pub mod stream;
pub mod tsig;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orrery_proto::link::XfrAclRule;
use orrery_proto::link::XfrSettings;
use orrery_proto::link::convert::{
    DEFAULT_IXFR_WINDOW, DEFAULT_MAX_TRANSFERS, DEFAULT_MAX_TRANSFERS_PER_ADDRESS,
    DEFAULT_TRANSFERS_PER_MINUTE, DEFAULT_XFR_IDLE_TIMEOUT, DEFAULT_XFR_TOTAL_TIMEOUT,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::dns::wire::{Event, Problem, Query, Response, Section, Transport, class, rcode, rtype};
use crate::rds::rate_limit::{Decision, RateLimitConfig, RateLimiter};
use crate::served::{Served, ServedStore};
use crate::tcp::connection_limit::PerAddress;
use catalog::Catalog;
use orrery_proto::Name;
use stream::Plan;
use tsig::{Key, Signer};

/// The socket send buffer of a connection while it transfers.
const SEND_BUFFER: usize = 64 * 1024;

/// The transfer service of a satellite, built from its `xfr` settings.
pub struct XfrService {
    keys: Vec<Arc<Key>>,
    acl: Vec<XfrAclRule>,
    idle_timeout: Duration,
    total_timeout: Duration,
    slots: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    rate: RateLimiter,
    served: Arc<ServedStore>,
    /// Secondaries to NOTIFY, with the key to sign with.
    notify: Vec<(orrery_proto::link::NotifyTarget, Option<Arc<Key>>)>,
    pub stats: XfrStats,
}

/// What became of transfer requests, since the service started.
#[derive(Debug, Default)]
pub struct XfrStats {
    /// Transfers sent to the end (AXFR, or IXFR in any of its forms).
    pub completed: AtomicU64,
    /// Transfers begun and cut (client gone, a timeout, shutdown).
    pub cut: AtomicU64,
    /// Requests refused: ACL, key, limits.
    pub refused: AtomicU64,
    /// Requests whose TSIG failed (BADKEY, BADSIG, BADTIME, BADTRUNC) or was malformed.
    pub tsig_failed: AtomicU64,
    /// Requests for a name that is not a served apex.
    pub not_auth: AtomicU64,
    /// IXFR answered with differences (not AXFR-style, not SOA only).
    pub incremental: AtomicU64,
    /// Whole zones sent: AXFR, or IXFR answered AXFR-style (the client's serial outside the
    /// window). A secondary that follows by IXFR has one, its first.
    pub full: AtomicU64,
}

/// The end of a transfer for the connection it ran on.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (a whole transfer or an error answer): the connection reads the next query.
    Answered,
    /// The connection must close (write failed, a timeout, shutdown).
    Close,
}

/// The limits of the service, defaults filled in.
fn limits(x: &XfrSettings) -> (usize, u32, u32, Duration, Duration) {
    (
        x.max_transfers.unwrap_or(DEFAULT_MAX_TRANSFERS) as usize,
        x.max_transfers_per_address
            .unwrap_or(DEFAULT_MAX_TRANSFERS_PER_ADDRESS),
        x.transfers_per_minute
            .unwrap_or(DEFAULT_TRANSFERS_PER_MINUTE),
        x.idle_timeout.unwrap_or(DEFAULT_XFR_IDLE_TIMEOUT),
        x.total_timeout.unwrap_or(DEFAULT_XFR_TOTAL_TIMEOUT),
    )
}

impl XfrService {
    /// The service a satellite's settings ask for, if any; it sets the store's IXFR window
    /// (0 without a service, so that no differences are computed for nobody).
    pub fn for_settings(
        settings: &orrery_proto::link::SatelliteSettings,
        served: &Arc<ServedStore>,
    ) -> Option<Arc<Self>> {
        let Some(x) = &settings.xfr else {
            served.set_ixfr_window(0);
            served.set_catalog(None);
            return None;
        };
        Some(Arc::new(Self::new(x, Arc::clone(served))))
    }

    /// The service for `settings` (checked by the link's receipt check), over `served`.
    pub fn new(settings: &XfrSettings, served: Arc<ServedStore>) -> Self {
        served.set_ixfr_window(settings.ixfr_window.unwrap_or(DEFAULT_IXFR_WINDOW) as usize);
        // After the window: the catalog keeps as many differences.
        served.set_catalog(settings.catalog_zone.clone());
        let (max, per_address, per_minute, idle_timeout, total_timeout) = limits(settings);
        let rate = f64::from(per_minute) / 60.0;
        let rate = RateLimiter::new(&RateLimitConfig {
            address_rate: rate,
            address_burst: per_minute,
            // The per-prefix bucket of the shared limiter is not what this limit is about:
            // large enough never to bind before the address's own.
            prefix_rate: rate * 1024.0,
            prefix_burst: per_minute.saturating_mul(1024),
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            ipv6_address_prefix: 64,
            max_tracked: 4096,
            exempt: Vec::new(),
        })
        .expect("rates above 0 from checked settings");
        let keys: Vec<Arc<Key>> = settings
            .keys
            .iter()
            .map(|k| Arc::new(Key::new(k)))
            .collect();
        let notify = settings
            .notify
            .iter()
            .map(|t| {
                let key = t
                    .key
                    .as_ref()
                    .and_then(|name| keys.iter().find(|k| &k.name == name).cloned());
                (t.clone(), key)
            })
            .collect();
        Self {
            keys,
            notify,
            acl: settings.acl.clone(),
            idle_timeout,
            total_timeout,
            slots: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            per_address: PerAddress::new(per_address, max),
            rate,
            served,
            stats: XfrStats::default(),
        }
    }

    /// The configured keys.
    pub fn keys(&self) -> &[Arc<Key>] {
        &self.keys
    }

    /// The NOTIFY task of this service ([`notify::run`]), to run until `cancel`.
    pub fn notifier(&self, cancel: CancellationToken) -> impl Future<Output = ()> + use<> {
        notify::run(Arc::clone(&self.served), self.notify.clone(), cancel)
    }

    /// Answers the transfer request `request` (a whole DNS message, without its TCP length)
    /// from `peer` on `stream`.
    pub async fn serve(
        &self,
        stream: &mut TcpStream,
        peer: SocketAddr,
        request: &[u8],
        cancel: &CancellationToken,
    ) -> Outcome {
        let mut query = Box::<Query>::default();
        query.parse(request);
        let decision = self.decide(&query, request, peer.ip());
        let (plan, signer, _permits) = match decision {
            Decided::Answer(bytes) => {
                return self.write_one(stream, &bytes, cancel).await;
            }
            Decided::Transfer {
                plan,
                signer,
                permits,
            } => (plan, signer, permits),
        };
        // The kernel's share of what a slow reader holds is bounded too: the send buffer stops
        // autotuning at this size (Linux doubles it).
        let _ = socket2::SockRef::from(&*stream).set_send_buffer_size(SEND_BUFFER);
        let started = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
        let (incremental, full) = (plan.is_incremental(), plan.is_full());
        let generator =
            tokio::task::spawn_blocking(move || stream::generate(plan, query, signer, tx));
        let deadline = tokio::time::Instant::from_std(started + self.total_timeout);
        let mut outcome = Outcome::Answered;
        loop {
            let next = tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                () = tokio::time::sleep_until(deadline) => None,
                m = rx.recv() => m.map(Some).unwrap_or(Some(Vec::new())),
            };
            let Some(msg) = next else {
                outcome = Outcome::Close;
                break;
            };
            if msg.is_empty() {
                break; // the generator finished
            }
            let write = tokio::time::timeout(self.idle_timeout, stream.write_all(&msg));
            let written = tokio::select! {
                biased;
                () = cancel.cancelled() => false,
                w = tokio::time::timeout_at(deadline, write) => matches!(w, Ok(Ok(Ok(())))),
            };
            if !written {
                outcome = Outcome::Close;
                break;
            }
        }
        // Dropping the receiver stops a generator still running at its next message.
        drop(rx);
        let _ = generator.await;
        if outcome == Outcome::Answered {
            self.stats.completed.fetch_add(1, Ordering::Relaxed);
            if incremental {
                self.stats.incremental.fetch_add(1, Ordering::Relaxed);
            }
            if full {
                self.stats.full.fetch_add(1, Ordering::Relaxed);
            }
            tracing::debug!(%peer, elapsed = ?started.elapsed(), "transfer sent");
        } else {
            self.stats.cut.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, elapsed = ?started.elapsed(), "transfer cut");
        }
        outcome
    }

    /// Signs the finished answer in `ev` to the TSIG-signed query `packet` (RFC 8945 §5.3),
    /// or replaces it with the NOTAUTH answer of §5.2 when the signature fails. A query
    /// without TSIG is left alone. For the queries secondaries send beside transfers (SOA
    /// before an IXFR): BIND refuses an unsigned answer to a signed query.
    pub fn sign_answer(&self, packet: &[u8], ev: &mut Event) {
        let Ok(Some(t)) = tsig::find(packet) else {
            return;
        };
        let now = tsig::now();
        let out = match tsig::verify(&self.keys, packet, &t, now) {
            Ok(mut signer) => {
                let mut out = framed(ev.response.bytes());
                signer.sign_at(&mut out, 2, now, 0, &[]);
                out
            }
            Err(refusal) => {
                self.stats.tsig_failed.fetch_add(1, Ordering::Relaxed);
                tsig_error_answer(&ev.query, refusal, now)
            }
        };
        ev.response.set_finished(&out[2..]);
    }

    async fn write_one(
        &self,
        stream: &mut TcpStream,
        framed: &[u8],
        cancel: &CancellationToken,
    ) -> Outcome {
        tokio::select! {
            biased;
            () = cancel.cancelled() => Outcome::Close,
            w = tokio::time::timeout(self.idle_timeout, stream.write_all(framed)) => match w {
                Ok(Ok(())) => Outcome::Answered,
                _ => Outcome::Close,
            },
        }
    }

    /// True for the queries of the query path that this service answers instead of the
    /// Selector: IXFR over UDP (RFC 1995 §2, under the same ACL and TSIG as over TCP) and
    /// SOA queries for the catalog zone (transfer-only, [`catalog`]). A few compares on the
    /// parsed question: nothing allocated for any other query.
    pub fn takes(&self, query: &Query, transport: Transport, served: &Served) -> bool {
        if query.problem != Problem::None
            || !query.has_question
            || query.edns.is_some_and(|e| e.version > 0)
        {
            return false;
        }
        match query.qtype {
            rtype::IXFR => transport == Transport::Udp,
            rtype::SOA => served
                .catalog
                .as_ref()
                .is_some_and(|c| *c.apex == *query.qname()),
            _ => false,
        }
    }

    /// Answers in `ev` a query [`XfrService::takes`]: the SOA alone to a client the ACL
    /// allows (signed when the query was), else the answer a transfer request would get
    /// (REFUSED, NOTAUTH, the TSIG errors).
    pub fn answer_query(
        &self,
        packet: &[u8],
        ev: &mut Event,
        served: &Served,
        nsid: Option<&'static [u8]>,
    ) {
        let (code, signer, target) = match self.authorize(&ev.query, packet, ev.peer, served) {
            Ok(a) => (rcode::NOERROR, a.signer, Some(a.target)),
            Err(Denied::Tsig(refusal)) => {
                let out = tsig_error_answer(&ev.query, refusal, tsig::now());
                ev.response.set_finished(&out[2..]);
                return;
            }
            Err(Denied::Code(code, signer)) => (code, signer, None),
        };
        ev.begin_response(code, nsid);
        match &target {
            Some(Target::Zone { apex, .. }) => {
                if let Some(zone) = served.zones.find_zone(apex) {
                    ev.response.authoritative = true;
                    crate::dns::leaf::lookup::soa(
                        zone,
                        None,
                        Section::Answer,
                        zone.soa_ttl,
                        &mut ev.response,
                    );
                }
            }
            Some(Target::Catalog(c)) => {
                ev.response.authoritative = true;
                let soa = c.soa();
                ev.response.rrset(Section::Answer, true, |r| {
                    r.record(
                        crate::dns::wire::Owner::Question,
                        soa.rtype,
                        class::IN,
                        soa.ttl,
                        |r| r.put_bytes(&soa.rdata),
                    )
                });
            }
            None => {}
        }
        ev.response.finish();
        if let Some(mut signer) = signer {
            let mut out = framed(ev.response.bytes());
            signer.sign_at(&mut out, 2, tsig::now(), 0, &[]);
            ev.response.set_finished(&out[2..]);
        }
    }

    /// The decision every transfer-related request gets, over TCP or UDP: parse, TSIG, the
    /// zone (or the catalog), the ACL. Counted in [`XfrStats`].
    fn authorize<'v>(
        &self,
        query: &Query,
        request: &[u8],
        ip: IpAddr,
        version: &'v Served,
    ) -> Result<Authorized<'v>, Denied> {
        if query.problem != Problem::None {
            return Err(Denied::Code(rcode::FORMERR, None));
        }
        let tsig = match tsig::find(request) {
            Ok(t) => t,
            Err(tsig::Malformed) => {
                self.stats.tsig_failed.fetch_add(1, Ordering::Relaxed);
                return Err(Denied::Code(rcode::FORMERR, None));
            }
        };
        let now = tsig::now();
        let signer = match &tsig {
            None => None,
            Some(t) => match tsig::verify(&self.keys, request, t, now) {
                Ok(s) => Some(s),
                Err(refusal) => {
                    self.stats.tsig_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%ip, key = %refusal.key_name, error = refusal.error, "transfer request with a bad TSIG");
                    return Err(Denied::Tsig(refusal));
                }
            },
        };
        let in_class = query.qclass == class::IN;
        // The catalog first: its name is no served zone's (the runbook says to pick one
        // outside them, e.g. under `invalid.`).
        let catalog = version
            .catalog
            .as_ref()
            .filter(|c| in_class && *c.apex == *query.qname());
        let target = match catalog {
            Some(c) => Target::Catalog(c),
            None => {
                let zone = in_class
                    .then(|| version.zones.find_zone(query.qname()))
                    .flatten()
                    .filter(|z| z.apex_labels == query.label_count());
                let Some(zone) = zone else {
                    self.stats.not_auth.fetch_add(1, Ordering::Relaxed);
                    return Err(Denied::Code(rcode::NOTAUTH, signer));
                };
                Target::Zone {
                    apex: &zone.apex,
                    name: &zone.apex_name,
                }
            }
        };
        let allowed = self
            .acl
            .iter()
            .find(|r| r.prefixes.iter().any(|p| p.contains(ip)))
            .is_some_and(|rule| match &rule.key {
                None => true,
                Some(k) => signer.as_ref().is_some_and(|s| &s.key().name == k),
            });
        if !allowed {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%ip, zone = %target.name(), "transfer refused by the ACL");
            return Err(Denied::Code(rcode::REFUSED, signer));
        }
        Ok(Authorized { target, signer })
    }

    /// Everything before the first record: [`XfrService::authorize`], then the limits.
    fn decide(&self, query: &Query, request: &[u8], ip: IpAddr) -> Decided {
        // One version for the decision and the whole transfer.
        let version = self.served.load_full();
        let Authorized { target, mut signer } = match self.authorize(query, request, ip, &version) {
            Ok(a) => a,
            Err(Denied::Tsig(refusal)) => {
                return Decided::Answer(tsig_error_answer(query, refusal, tsig::now()));
            }
            Err(Denied::Code(code, mut signer)) => {
                return Decided::Answer(error_answer(query, code, signer.as_mut()));
            }
        };
        let refused = |why: &str, signer: Option<&mut Signer>| {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%ip, zone = %target.name(), why, "transfer refused");
            Decided::Answer(error_answer(query, rcode::REFUSED, signer))
        };
        if let Decision::Limited { .. } = self.rate.check(ip, Instant::now()) {
            return refused("transfers per minute", signer.as_mut());
        }
        let Some(address) = self.per_address.try_acquire(ip) else {
            return refused("transfers from this address", signer.as_mut());
        };
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            return refused("transfers at once", signer.as_mut());
        };
        let ixfr = query.qtype == rtype::IXFR;
        let plan = match target {
            Target::Catalog(c) => Plan::catalog(
                Arc::clone(c),
                ixfr.then(|| client_serial(request)).flatten(),
            ),
            Target::Zone { apex, .. } if ixfr => {
                Plan::ixfr(Arc::clone(&version), apex.into(), client_serial(request))
            }
            Target::Zone { apex, .. } => Plan::axfr(Arc::clone(&version), apex.into()),
        };
        Decided::Transfer {
            plan,
            signer,
            permits: (slot, address),
        }
    }
}

/// What a request may transfer, in the version it was decided on (borrowed: a refusal, or
/// an unsigned IXFR over UDP, allocates nothing).
enum Target<'v> {
    Zone { apex: &'v [u8], name: &'v Name },
    Catalog(&'v Arc<Catalog>),
}

impl Target<'_> {
    fn name(&self) -> &Name {
        match self {
            Self::Zone { name, .. } => name,
            Self::Catalog(c) => &c.name,
        }
    }
}

/// A request that passed [`XfrService::authorize`].
struct Authorized<'v> {
    target: Target<'v>,
    signer: Option<Signer>,
}

/// A request that did not.
enum Denied {
    /// A TSIG that failed: NOTAUTH with the TSIG error (RFC 8945 §5.2).
    Tsig(tsig::Refusal),
    /// An RCODE, signed when the request's TSIG was good.
    Code(u16, Option<Signer>),
}

enum Decided {
    /// One message, framed, to write as it is.
    Answer(Vec<u8>),
    Transfer {
        plan: Plan,
        signer: Option<Signer>,
        permits: (
            tokio::sync::OwnedSemaphorePermit,
            crate::tcp::connection_limit::AddressSlot,
        ),
    },
}

/// A framed error answer with `code`, signed when the request was.
fn error_answer(query: &Query, code: u16, signer: Option<&mut Signer>) -> Vec<u8> {
    let mut r = Response::new();
    r.begin(query, Transport::Tcp, None);
    r.rcode = code;
    let mut out = framed(r.finish());
    if let Some(s) = signer {
        s.sign_at(&mut out, 2, tsig::now(), 0, &[]);
        set_frame_len(&mut out);
    }
    out
}

/// NOTAUTH with the TSIG error (RFC 8945 §5.2): unsigned for BADKEY, BADSIG and BADTRUNC,
/// signed with our time for BADTIME.
fn tsig_error_answer(query: &Query, refusal: tsig::Refusal, now: u64) -> Vec<u8> {
    let mut r = Response::new();
    r.begin(query, Transport::Tcp, None);
    r.rcode = rcode::NOTAUTH;
    let mut out = framed(r.finish());
    match refusal.signer {
        Some(mut s) => {
            // §5.2.3: our time in Other Data; Time Signed repeats the request's.
            let time = now.to_be_bytes();
            s.sign_at(&mut out, 2, refusal.time_signed, refusal.error, &time[2..]);
        }
        None => tsig::append_unsigned(&mut out, 2, &refusal, now),
    }
    set_frame_len(&mut out);
    out
}

/// `msg` behind a two-octet length (RFC 1035 §4.2.2), with room for a TSIG after it.
pub fn framed(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + msg.len() + tsig::TSIG_ROOM);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// Rewrites the two-octet length of a framed message after a TSIG was appended.
pub fn set_frame_len(out: &mut [u8]) {
    let len = (out.len() - 2) as u16;
    out[..2].copy_from_slice(&len.to_be_bytes());
}

/// The serial of the SOA in the authority section of an IXFR request (RFC 1995 §3), if any.
fn client_serial(msg: &[u8]) -> Option<u32> {
    use orrery_proto::name::read_wire_name;
    let count = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]) as usize;
    let (qd, an, ns) = (count(4), count(6), count(8));
    if ns == 0 {
        return None;
    }
    let mut pos = 12;
    for _ in 0..qd {
        pos = read_wire_name(msg, pos, |_| {}).ok()? + 4;
    }
    for _ in 0..an {
        pos = read_wire_name(msg, pos, |_| {}).ok()?;
        let rdlen = u16::from_be_bytes([*msg.get(pos + 8)?, *msg.get(pos + 9)?]) as usize;
        pos += 10 + rdlen;
    }
    pos = read_wire_name(msg, pos, |_| {}).ok()?;
    let rt = u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]);
    if rt != rtype::SOA {
        return None;
    }
    let rdata = pos + 10;
    let after_mname = read_wire_name(msg, rdata, |_| {}).ok()?;
    let after_rname = read_wire_name(msg, after_mname, |_| {}).ok()?;
    let s = msg.get(after_rname..after_rname + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The question type of a DNS message, read in place without allocating: what the DNS TCP
/// loop calls on every query to find the transfers it hands over. `None` when the message is
/// a response, not a QUERY, or has no single plain question.
pub fn transfer_qtype(msg: &[u8]) -> Option<u16> {
    let header = msg.get(..12)?;
    // QR clear, opcode QUERY, one question.
    if header[2] & 0xF8 != 0 || header[4..6] != [0, 1] {
        return None;
    }
    let mut pos = 12;
    loop {
        let len = *msg.get(pos)? as usize;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        pos += 1 + len;
    }
    let t = u16::from_be_bytes([*msg.get(pos + 1)?, *msg.get(pos + 2)?]);
    matches!(t, rtype::AXFR | rtype::IXFR).then_some(t)
}
