//! The hot-path DNS message codec: parse one query into a reusable [`Query`], write one answer
//! into a reusable [`Response`].
//!
//! Hand-written rather than hickory-proto's `Message` because that type allocates per query
//! (vectors of records, boxed names), and the satellite promises zero heap allocation in steady
//! state. Everything here works on fixed arrays inside long-lived objects: the query name in a
//! `[u8; 255]`, the response in a 64 KiB buffer allocated once per event.
//!
//! Only what an authoritative server reads is parsed: the header, exactly one question
//! (RFC 1035 §4.1.2) and the OPT pseudo-record in the additional section (RFC 6891 §6.1). Names
//! are decoded by the one checked decoder, [`orrery_proto::name::read_wire_name`] (pointers only
//! backwards, length limits).
//!
//! Names written into a response are compressed (RFC 1035 §4.1.4) against the names already
//! written, using a small fixed table of label offsets. Each RRset is written atomically: if it
//! does not fit under the size limit it is rolled back, and the caller decides whether that sets
//! TC (RFC 2181 §9, RFC 9471).

use std::net::IpAddr;

use orrery_proto::name::{MAX_NAME_LEN, read_wire_name};

/// Record types the satellite knows by number (RFC 1035 §3.2.2 and later).
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    /// RFC 6891 §6.1.1.
    pub const OPT: u16 = 41;
    /// RFC 4034 §5.
    pub const DS: u16 = 43;
    pub const TSIG: u16 = 250;
    /// RFC 1995.
    pub const IXFR: u16 = 251;
    /// RFC 5936.
    pub const AXFR: u16 = 252;
    pub const MAILB: u16 = 253;
    pub const MAILA: u16 = 254;
    /// QTYPE `*` (RFC 1035 §3.2.3), answered per RFC 8482.
    pub const ANY: u16 = 255;
}

/// Classes (RFC 1035 §3.2.4).
pub mod class {
    pub const IN: u16 = 1;
    pub const CH: u16 = 3;
    pub const ANY: u16 = 255;
}

/// Response codes, the extended ones included (RFC 6895 §2.3).
pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    /// RFC 2136 §2.2; for zone transfers, RFC 5936 §2.2.1.
    pub const NOTAUTH: u16 = 9;
    /// RFC 6891 §6.1.3: needs an OPT record to carry the upper bits.
    pub const BADVERS: u16 = 16;
}

/// Largest DNS message (TCP length prefix, RFC 1035 §4.2.2).
pub const MAX_MESSAGE: usize = 65535;
/// The UDP payload size the satellite advertises and never exceeds (DNS Flag Day 2020).
pub const OUR_UDP_SIZE: u16 = 1232;
/// UDP limit without EDNS (RFC 1035 §4.2.1), and the floor for an EDNS size (RFC 6891 §6.2.3).
pub const CLASSIC_UDP_SIZE: u16 = 512;
/// EDNS option code of NSID (RFC 5001 §2.3).
pub const OPT_NSID: u16 = 3;
/// EDNS option code of edns-tcp-keepalive (RFC 7828 §3.1).
pub const OPT_TCP_KEEPALIVE: u16 = 11;
/// An OPT record without options: root owner, type, class, TTL, RDLENGTH (RFC 6891 §6.1.2).
const OPT_FIXED_LEN: usize = 11;
/// An EDNS option's code and length (RFC 6891 §6.1.2).
const OPTION_HEADER_LEN: usize = 4;
/// Most labels a 255-octet name can have.
const MAX_LABELS: usize = 128;
/// Size of the compression table (label start offsets remembered per response).
const COMPRESSION_SLOTS: usize = 64;

/// Transport a query arrived on: it sets the response size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What was wrong with a query, found while parsing. The validation leaf turns it into an
/// action (drop, FORMERR, NOTIMP); parsing itself never decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Nothing wrong.
    None,
    /// Shorter than the 12-octet header: cannot even be answered.
    ShortHeader,
    /// QR set: a response, never answered (avoids loops).
    IsResponse,
    /// Opcode other than QUERY (RFC 1035 §4.1.1).
    BadOpcode,
    /// QDCOUNT ≠ 1.
    QuestionCount,
    /// The question does not parse.
    BadQuestion,
    /// A record after the question does not parse.
    BadRecords,
    /// More than one OPT record (RFC 6891 §6.1.1).
    DuplicateOpt,
    /// An OPT record that is malformed (owner not root, bad options).
    BadOpt,
    /// An OPT record in the answer or authority section: it belongs in the additional section
    /// only (RFC 6891 §6.1.1).
    MisplacedOpt,
}

/// The EDNS(0) parameters of a query (RFC 6891 §6.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size (not yet floored at 512).
    pub udp_size: u16,
    pub version: u8,
    /// DO bit (RFC 3225).
    pub dnssec_ok: bool,
    /// NSID option present (RFC 5001).
    pub nsid: bool,
    /// edns-tcp-keepalive option present (RFC 7828): the client would like to hear the TCP
    /// idle timeout. A TIMEOUT a client should not have sent (§3.2.1) is ignored, as BIND
    /// and Knot do.
    pub keepalive: bool,
}

impl Edns {
    /// What a query whose OPT record is broken (misplaced, repeated, malformed) is answered
    /// with: its own parameters cannot be trusted, but the response must still carry an OPT
    /// (RFC 6891 §7), so the requestor can tell a format error in its EDNS from a server that
    /// does not speak EDNS.
    pub const FOR_BROKEN_OPT: Self = Self {
        udp_size: CLASSIC_UDP_SIZE,
        version: 0,
        dnssec_ok: false,
        nsid: false,
        keepalive: false,
    };
}

/// A parsed query, reused from one packet to the next.
pub struct Query {
    pub id: u16,
    /// Header octets 2 and 3 as received.
    pub flags: u16,
    pub opcode: u8,
    pub qdcount: u16,
    pub problem: Problem,
    /// True when the question section parsed (it is then echoed in the response).
    pub has_question: bool,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
    qname: [u8; MAX_NAME_LEN],
    qname_original: [u8; MAX_NAME_LEN],
    qname_len: usize,
    label_starts: [u8; MAX_LABELS],
    label_count: usize,
}

impl Default for Query {
    fn default() -> Self {
        Self {
            id: 0,
            flags: 0,
            opcode: 0,
            qdcount: 0,
            problem: Problem::None,
            has_question: false,
            qtype: 0,
            qclass: 0,
            edns: None,
            qname: [0; MAX_NAME_LEN],
            qname_original: [0; MAX_NAME_LEN],
            qname_len: 0,
            label_starts: [0; MAX_LABELS],
            label_count: 0,
        }
    }
}

impl Query {
    /// Parses `packet` into `self`, overwriting everything. Never fails: what is wrong is
    /// recorded in [`Query::problem`].
    pub fn parse(&mut self, packet: &[u8]) {
        self.problem = Problem::None;
        self.has_question = false;
        self.edns = None;
        self.qname_len = 0;
        self.label_count = 0;
        self.qtype = 0;
        self.qclass = 0;
        if packet.len() < 12 {
            self.problem = Problem::ShortHeader;
            return;
        }
        self.id = u16::from_be_bytes([packet[0], packet[1]]);
        self.flags = u16::from_be_bytes([packet[2], packet[3]]);
        self.opcode = (packet[2] >> 3) & 0x0F;
        self.qdcount = u16::from_be_bytes([packet[4], packet[5]]);
        if self.flags & 0x8000 != 0 {
            self.problem = Problem::IsResponse;
            return;
        }
        let ancount = u16::from_be_bytes([packet[6], packet[7]]);
        let nscount = u16::from_be_bytes([packet[8], packet[9]]);
        let arcount = u16::from_be_bytes([packet[10], packet[11]]);
        // The first question is kept (it is echoed); further ones are skipped, so that the
        // records behind them can still be searched for an OPT: every response to a query
        // that had one carries one, FORMERR and NOTIMP included (RFC 6891 §6.1.1, §7).
        let mut pos = 12;
        for i in 0..self.qdcount {
            let end = if i == 0 {
                self.parse_question(packet, pos)
            } else {
                skip_question(packet, pos)
            };
            let Some(end) = end else {
                self.has_question = false;
                self.problem = if self.qdcount == 1 {
                    Problem::BadQuestion
                } else {
                    Problem::QuestionCount
                };
                return;
            };
            pos = end;
        }
        let records = self.find_opt(packet, pos, ancount, nscount, arcount);
        self.problem = if self.opcode != 0 {
            Problem::BadOpcode
        } else if self.qdcount != 1 {
            self.has_question = false;
            Problem::QuestionCount
        } else {
            records
        };
    }

    /// Skips the answer and authority sections (RFC 1035 gives them no meaning in a QUERY)
    /// and searches the additional section for the OPT record, into `self.edns`. Returns what
    /// was wrong with the records. A record that does not parse ends the search: an OPT before
    /// it is still answered with.
    fn find_opt(
        &mut self,
        packet: &[u8],
        mut pos: usize,
        ancount: u16,
        nscount: u16,
        arcount: u16,
    ) -> Problem {
        let mut problem = Problem::None;
        // An OPT seen in the wrong place, twice or malformed: the answer gets a neutral one.
        let mut broken = false;
        'scan: {
            for _ in 0..u32::from(ancount) + u32::from(nscount) {
                let Some((end, rtype, _)) = skip_record(packet, pos) else {
                    problem = Problem::BadRecords;
                    break 'scan;
                };
                if rtype == rtype::OPT {
                    (problem, broken) = (Problem::MisplacedOpt, true);
                }
                pos = end;
            }
            for _ in 0..arcount {
                let Some((end, rtype, owner_root)) = skip_record(packet, pos) else {
                    problem = Problem::BadRecords;
                    break 'scan;
                };
                if rtype == rtype::OPT {
                    if broken || self.edns.is_some() {
                        (problem, broken) = (Problem::DuplicateOpt, true);
                    } else {
                        match parse_opt(packet, pos, end, owner_root) {
                            Some(edns) => self.edns = Some(edns),
                            None => (problem, broken) = (Problem::BadOpt, true),
                        }
                    }
                }
                pos = end;
            }
        }
        if broken {
            self.edns = Some(Edns::FOR_BROKEN_OPT);
        }
        problem
    }

    fn parse_question(&mut self, packet: &[u8], pos: usize) -> Option<usize> {
        let mut len = 0usize;
        let mut count = 0usize;
        let (lower, original, starts) = (
            &mut self.qname,
            &mut self.qname_original,
            &mut self.label_starts,
        );
        let end = read_wire_name(packet, pos, |label| {
            // read_wire_name guarantees the total stays within 255 octets.
            starts[count] = len as u8;
            count += 1;
            lower[len] = label.len() as u8;
            original[len] = label.len() as u8;
            for (i, &b) in label.iter().enumerate() {
                lower[len + 1 + i] = b.to_ascii_lowercase();
                original[len + 1 + i] = b;
            }
            len += 1 + label.len();
        })
        .ok()?;
        self.qname[len] = 0;
        self.qname_original[len] = 0;
        self.qname_len = len + 1;
        self.label_count = count;
        let fixed = packet.get(end..end + 4)?;
        self.qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        self.qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
        self.has_question = true;
        Some(end + 4)
    }

    /// The query name in canonical (lower-case) wire form, root label included.
    pub fn qname(&self) -> &[u8] {
        &self.qname[..self.qname_len]
    }

    /// The query name as the client spelled it, for the echo in the question section.
    pub fn qname_original(&self) -> &[u8] {
        &self.qname_original[..self.qname_len]
    }

    /// Number of labels in the query name, the root excluded.
    pub fn label_count(&self) -> usize {
        self.label_count
    }

    /// The canonical query name with its first `skip` labels removed (`skip ≤ label_count`).
    pub fn qname_suffix(&self, skip: usize) -> &[u8] {
        if skip >= self.label_count {
            return &self.qname[self.qname_len - 1..self.qname_len];
        }
        &self.qname[self.label_starts[skip] as usize..self.qname_len]
    }

    /// The RD bit of the query (copied into the response).
    pub fn recursion_desired(&self) -> bool {
        self.flags & 0x0100 != 0
    }

    /// The CD bit of the query (copied into the response).
    pub fn checking_disabled(&self) -> bool {
        self.flags & 0x0010 != 0
    }
}

/// Skips one question at `pos` (name, type, class): returns its end.
fn skip_question(packet: &[u8], pos: usize) -> Option<usize> {
    let end = read_wire_name(packet, pos, |_| {}).ok()?;
    (end + 4 <= packet.len()).then_some(end + 4)
}

/// Skips one resource record at `pos`: returns the end offset, its type and whether the owner
/// is the root name.
fn skip_record(packet: &[u8], pos: usize) -> Option<(usize, u16, bool)> {
    let mut labels = 0;
    let end = read_wire_name(packet, pos, |_| labels += 1).ok()?;
    let fixed = packet.get(end..end + 10)?;
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
    let rr_end = end + 10 + rdlen;
    if rr_end > packet.len() {
        return None;
    }
    Some((rr_end, rtype, labels == 0))
}

/// Parses an OPT record spanning `pos..end` (RFC 6891 §6.1.2).
fn parse_opt(packet: &[u8], pos: usize, end: usize, owner_root: bool) -> Option<Edns> {
    if !owner_root {
        return None;
    }
    // The owner of a well-formed OPT is the single root octet.
    let fixed = packet.get(pos + 1..pos + 11)?;
    let udp_size = u16::from_be_bytes([fixed[2], fixed[3]]);
    let version = fixed[5];
    let dnssec_ok = fixed[6] & 0x80 != 0;
    let mut opt = pos + 11;
    let mut nsid = false;
    let mut keepalive = false;
    while opt < end {
        let head = packet.get(opt..opt + 4)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = u16::from_be_bytes([head[2], head[3]]) as usize;
        if opt + 4 + len > end {
            return None;
        }
        match code {
            OPT_NSID => nsid = true,
            OPT_TCP_KEEPALIVE => keepalive = true,
            _ => {}
        }
        opt += 4 + len;
    }
    Some(Edns {
        udp_size,
        version,
        dnssec_ok,
        nsid,
        keepalive,
    })
}

/// The response does not fit under its size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// Sections of a response, in the order they must be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Answer = 0,
    Authority = 1,
    Additional = 2,
}

/// A response under construction in a preallocated buffer.
pub struct Response {
    buf: Box<[u8]>,
    len: usize,
    /// End of the question echo: where the answer section starts.
    question_end: usize,
    /// Size limit for the records (OPT space already taken off).
    limit: usize,
    /// Records per section: answer, authority, additional.
    counts: [u16; 3],
    section: Section,
    names: [u16; COMPRESSION_SLOTS],
    names_len: usize,
    pub rcode: u16,
    pub authoritative: bool,
    pub truncated: bool,
    /// Copied from the query when the response begins.
    id: u16,
    opcode: u8,
    rd: bool,
    cd: bool,
    /// Whether to append OPT, and with which NSID.
    edns: Option<Edns>,
    nsid: Option<&'static [u8]>,
    /// edns-tcp-keepalive TIMEOUT to send, in units of 100 ms (RFC 7828 §3.1).
    keepalive: Option<u16>,
    finished: bool,
}

impl Default for Response {
    fn default() -> Self {
        Self::new()
    }
}

impl Response {
    /// Allocates the 64 KiB buffer: done once per event at start-up.
    pub fn new() -> Self {
        Self {
            buf: vec![0u8; MAX_MESSAGE].into_boxed_slice(),
            len: 0,
            question_end: 0,
            limit: 0,
            counts: [0; 3],
            section: Section::Answer,
            names: [0; COMPRESSION_SLOTS],
            names_len: 0,
            rcode: 0,
            authoritative: false,
            truncated: false,
            id: 0,
            opcode: 0,
            rd: false,
            cd: false,
            edns: None,
            nsid: None,
            keepalive: None,
            finished: false,
        }
    }

    /// Starts a response to `query`: header, question echo (original case, RFC 1035 §7.3 does
    /// not require it but every major server does it) and the size limit (RFC 6891 §6.2.5:
    /// the requestor's size floored at 512 and capped at ours; 512 without EDNS; 65535 on TCP).
    ///
    /// `nsid` is the configured NSID; it is sent when the query asked for it (RFC 5001 §2.1).
    /// It is `'static` because the pipeline leaks its configuration once at start-up.
    pub fn begin(&mut self, query: &Query, transport: Transport, nsid: Option<&'static [u8]>) {
        self.len = 12;
        self.counts = [0; 3];
        self.section = Section::Answer;
        self.names_len = 0;
        self.rcode = rcode::NOERROR;
        self.authoritative = false;
        self.truncated = false;
        self.id = query.id;
        self.opcode = query.opcode;
        self.rd = query.recursion_desired();
        self.cd = query.checking_disabled();
        self.edns = query.edns;
        self.keepalive = None;
        self.finished = false;
        let limit = match (transport, query.edns) {
            (Transport::Tcp, _) => MAX_MESSAGE,
            (Transport::Udp, None) => CLASSIC_UDP_SIZE as usize,
            (Transport::Udp, Some(e)) => e.udp_size.clamp(CLASSIC_UDP_SIZE, OUR_UDP_SIZE) as usize,
        };
        // Room for the OPT record is kept from the start. The NSID is sent only when the
        // query asked for it and it fits beside the question; configuration caps it at
        // `orrery_proto::link::convert::MAX_NSID_LEN`, which always fits, but the arithmetic
        // here does not rely on that.
        let question = if query.has_question {
            12 + query.qname_len + 4
        } else {
            12
        };
        self.nsid = match query.edns {
            Some(e) if e.nsid => nsid.filter(|n| {
                limit
                    .checked_sub(OPT_FIXED_LEN + OPTION_HEADER_LEN + n.len())
                    .is_some_and(|room| room >= question)
            }),
            _ => None,
        };
        self.limit = match query.edns {
            // 512 - 11 is far above the largest question (12 + 255 + 4).
            Some(_) => limit - OPT_FIXED_LEN - self.nsid.map_or(0, |n| OPTION_HEADER_LEN + n.len()),
            None => limit,
        };
        self.buf[4..6].copy_from_slice(&u16::from(query.has_question).to_be_bytes());
        if query.has_question {
            let qname = query.qname_original();
            let start = self.len;
            // The question always fits: at most 259 octets.
            self.buf[start..start + qname.len()].copy_from_slice(qname);
            self.len += qname.len();
            self.buf[self.len..self.len + 2].copy_from_slice(&query.qtype.to_be_bytes());
            self.buf[self.len + 2..self.len + 4].copy_from_slice(&query.qclass.to_be_bytes());
            self.len += 4;
            for i in 0..query.label_count {
                self.remember(start + query.label_starts[i] as usize);
            }
        }
        self.question_end = self.len;
    }

    /// Cuts a finished response back to its header and question, with TC set and its rcode
    /// and OPT kept: what response rate limiting sends instead of a limited answer (a "slip"),
    /// no larger than the query, so useless to an amplifier, while a real client retries over
    /// TCP (RFC 7766 §3). Does nothing before [`Response::finish`].
    pub fn truncate_to_question(&mut self) {
        if !self.finished {
            return;
        }
        self.len = self.question_end;
        self.counts = [0; 3];
        self.section = Section::Answer;
        self.truncated = true;
        self.finished = false;
        self.finish();
    }

    /// Lowers the size limit to `size` octets for the whole message (OPT included): the
    /// messages of a zone transfer are kept well below 64 KiB (RFC 5936 §2.2 lets a server
    /// choose), so that a transfer holds small buffers and its TSIG fits after them. Call
    /// after [`Response::begin`].
    pub fn limit_to(&mut self, size: usize) {
        self.limit = self.limit.saturating_sub(MAX_MESSAGE.saturating_sub(size));
    }

    /// Size of the question echo: where the answer section starts.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before anything was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records written so far in `section`.
    pub fn count(&self, section: Section) -> u16 {
        self.counts[section as usize]
    }

    /// Writes one RRset (or any group of records) atomically into `section`: `f` writes the
    /// records with [`Response::record`]; if they do not fit, everything `f` wrote is rolled
    /// back. When `required` and it did not fit, TC is set (RFC 2181 §9) and later RRsets are
    /// refused. Returns whether the RRset is in.
    pub fn rrset(
        &mut self,
        section: Section,
        required: bool,
        f: impl FnOnce(&mut Self) -> Result<(), Full>,
    ) -> bool {
        if self.truncated || section < self.section {
            return false;
        }
        self.section = section;
        let (len, count, names) = (self.len, self.counts[section as usize], self.names_len);
        if f(self).is_ok() {
            return true;
        }
        self.len = len;
        self.counts[section as usize] = count;
        self.names_len = names;
        if required {
            self.truncated = true;
        }
        false
    }

    /// Writes one record: owner, type, class, TTL, then `rdata` writes the RDATA.
    pub fn record(
        &mut self,
        owner: Owner<'_>,
        rtype: u16,
        class: u16,
        ttl: u32,
        rdata: impl FnOnce(&mut Self) -> Result<(), Full>,
    ) -> Result<(), Full> {
        match owner {
            Owner::Question => self.put_bytes(&[0xC0, 12])?,
            Owner::Name(name) => self.put_name(name)?,
        }
        self.put_u16(rtype)?;
        self.put_u16(class)?;
        self.put_u32(ttl)?;
        let rdlen_at = self.len;
        self.put_u16(0)?;
        rdata(self)?;
        let rdlen = (self.len - rdlen_at - 2) as u16;
        self.buf[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        self.counts[self.section as usize] += 1;
        Ok(())
    }

    pub fn put_u8(&mut self, v: u8) -> Result<(), Full> {
        self.put_bytes(&[v])
    }

    pub fn put_u16(&mut self, v: u16) -> Result<(), Full> {
        self.put_bytes(&v.to_be_bytes())
    }

    pub fn put_u32(&mut self, v: u32) -> Result<(), Full> {
        self.put_bytes(&v.to_be_bytes())
    }

    pub fn put_bytes(&mut self, bytes: &[u8]) -> Result<(), Full> {
        let end = self.len + bytes.len();
        if end > self.limit {
            return Err(Full);
        }
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// Writes a canonical wire name, compressed against names already in the message.
    pub fn put_name(&mut self, name: &[u8]) -> Result<(), Full> {
        let mut pos = 0;
        while pos < name.len() && name[pos] != 0 {
            if let Some(target) = self.find_suffix(&name[pos..]) {
                self.put_labels(&name[..pos])?;
                return self.put_u16(0xC000 | target);
            }
            pos += 1 + name[pos] as usize;
        }
        self.put_labels(&name[..pos])?;
        self.put_u8(0)
    }

    /// Writes uncompressed labels (no root) and remembers where each starts.
    fn put_labels(&mut self, labels: &[u8]) -> Result<(), Full> {
        let start = self.len;
        self.put_bytes(labels)?;
        let mut pos = 0;
        while pos < labels.len() {
            self.remember(start + pos);
            pos += 1 + labels[pos] as usize;
        }
        Ok(())
    }

    fn remember(&mut self, offset: usize) {
        if self.names_len < COMPRESSION_SLOTS && offset < 0x4000 {
            self.names[self.names_len] = offset as u16;
            self.names_len += 1;
        }
    }

    fn find_suffix(&self, suffix: &[u8]) -> Option<u16> {
        let msg = &self.buf[..self.len];
        self.names[..self.names_len]
            .iter()
            .copied()
            .find(|&off| name_at_equals(msg, off as usize, suffix))
    }

    /// Adds edns-tcp-keepalive with `timeout` (units of 100 ms) to the OPT record, when the
    /// response has one. Only over TCP: RFC 7828 §3.2.2 forbids it in UDP responses, which
    /// [`Event::begin_response`] sees to. Call after [`Response::begin`], before any record.
    pub fn keepalive(&mut self, timeout: u16) {
        // TCP's limit is 64 KiB, far above a question, so the room is always there.
        if self.edns.is_some()
            && self.keepalive.is_none()
            && self.len == self.question_end
            && let Some(limit) = self.limit.checked_sub(OPTION_HEADER_LEN + 2)
        {
            self.limit = limit;
            self.keepalive = Some(timeout);
        }
    }

    /// Completes the message: OPT record (RFC 6891 §6.1.2, our size 1232, upper rcode bits,
    /// DO echoed per RFC 3225 §3, NSID, edns-tcp-keepalive), flags and counts. Returns the
    /// message bytes.
    pub fn finish(&mut self) -> &[u8] {
        if !self.finished {
            self.finished = true;
            let mut additional = self.counts[Section::Additional as usize];
            if let Some(edns) = self.edns {
                // Space was reserved in `begin`, so this cannot fail.
                self.limit = MAX_MESSAGE;
                let nsid = self.nsid;
                let ttl = (u32::from((self.rcode >> 4) as u8) << 24)
                    | if edns.dnssec_ok { 0x8000 } else { 0 };
                let _ = self.put_u8(0);
                let _ = self.put_u16(rtype::OPT);
                let _ = self.put_u16(OUR_UDP_SIZE);
                let _ = self.put_u32(ttl);
                let keepalive = self.keepalive;
                let rdlen = nsid.map_or(0, |n| OPTION_HEADER_LEN + n.len())
                    + keepalive.map_or(0, |_| OPTION_HEADER_LEN + 2);
                let _ = self.put_u16(rdlen as u16);
                if let Some(n) = nsid {
                    let _ = self.put_u16(OPT_NSID);
                    let _ = self.put_u16(n.len() as u16);
                    let _ = self.put_bytes(n);
                }
                if let Some(timeout) = keepalive {
                    let _ = self.put_u16(OPT_TCP_KEEPALIVE);
                    let _ = self.put_u16(2);
                    let _ = self.put_u16(timeout);
                }
                additional += 1;
            }
            let mut b2 = 0x80 | (self.opcode << 3);
            if self.authoritative {
                b2 |= 0x04;
            }
            if self.truncated {
                b2 |= 0x02;
            }
            if self.rd {
                b2 |= 0x01;
            }
            let mut b3 = (self.rcode & 0x0F) as u8;
            if self.cd {
                b3 |= 0x10;
            }
            let header = &mut self.buf[..12];
            header[0..2].copy_from_slice(&self.id.to_be_bytes());
            header[2] = b2;
            header[3] = b3;
            header[6..8].copy_from_slice(&self.counts[0].to_be_bytes());
            header[8..10].copy_from_slice(&self.counts[1].to_be_bytes());
            header[10..12].copy_from_slice(&additional.to_be_bytes());
        }
        &self.buf[..self.len]
    }

    /// Replaces the finished message with `bytes` (at most 64 KiB): a TSIG-signed copy of it
    /// ([`crate::xfr::XfrService::sign_answer`]).
    pub fn set_finished(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len());
        self.buf[..n].copy_from_slice(&bytes[..n]);
        self.len = n;
        self.finished = true;
    }

    /// The finished message (empty before [`Response::finish`]).
    pub fn bytes(&self) -> &[u8] {
        if self.finished {
            &self.buf[..self.len]
        } else {
            &[]
        }
    }
}

/// Owner name of a record being written.
#[derive(Clone, Copy, Debug)]
pub enum Owner<'a> {
    /// The query name: a pointer to the question (so the client's case is kept).
    Question,
    /// A canonical wire name, compressed if possible.
    Name(&'a [u8]),
}

/// Compares the (possibly compressed) name at `off` in our own message with a canonical
/// suffix, case-insensitively. Pointers in our own output only go backwards; the hop count is
/// bounded anyway.
fn name_at_equals(msg: &[u8], mut off: usize, mut suffix: &[u8]) -> bool {
    let mut hops = 0;
    loop {
        let Some(&len) = msg.get(off) else {
            return false;
        };
        if len & 0xC0 == 0xC0 {
            let Some(&low) = msg.get(off + 1) else {
                return false;
            };
            hops += 1;
            if hops > 128 {
                return false;
            }
            off = (usize::from(len & 0x3F) << 8) | usize::from(low);
            continue;
        }
        let len = len as usize;
        if suffix.first() != Some(&(len as u8)) {
            return false;
        }
        if len == 0 {
            return true;
        }
        let (Some(a), Some(b)) = (msg.get(off + 1..off + 1 + len), suffix.get(1..1 + len)) else {
            return false;
        };
        if !a.eq_ignore_ascii_case(b) {
            return false;
        }
        off += 1 + len;
        suffix = &suffix[1 + len..];
    }
}

/// One query's working state, taken from a free list and reused for ever.
pub struct Event {
    /// Source address of the query (for ACLs).
    pub peer: IpAddr,
    pub transport: Transport,
    pub query: Query,
    pub response: Response,
    /// The TCP idle timeout the edge advertises to clients that ask (RFC 7828), in units of
    /// 100 ms; set once by the TCP edge for its events, `None` elsewhere.
    pub tcp_keepalive: Option<u16>,
    /// What response rate limiting did to the answer (the `rrl` leaf sets it), for the
    /// statistics.
    pub limited: Limited,
}

/// What response rate limiting did to an answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Limited {
    /// Not limited.
    #[default]
    No,
    /// Dropped.
    Dropped,
    /// Sent truncated instead (a slip).
    Slipped,
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

impl Event {
    /// Allocates an event's buffers; done at start-up only.
    pub fn new() -> Self {
        Self {
            peer: IpAddr::from([0, 0, 0, 0]),
            transport: Transport::Udp,
            query: Query::default(),
            response: Response::new(),
            tcp_keepalive: None,
            limited: Limited::No,
        }
    }

    /// Loads a packet into the event (parse only; nothing is answered yet).
    pub fn load(&mut self, packet: &[u8], peer: IpAddr, transport: Transport) {
        self.peer = peer;
        self.transport = transport;
        self.query.parse(packet);
        self.limited = Limited::No;
        self.response.len = 0;
        self.response.finished = false;
    }

    /// Starts the response (header and question echo) with `rcode`.
    pub fn begin_response(&mut self, rcode: u16, nsid: Option<&'static [u8]>) {
        self.response.begin(&self.query, self.transport, nsid);
        self.response.rcode = rcode;
        if let (Transport::Tcp, Some(timeout), Some(edns)) =
            (self.transport, self.tcp_keepalive, self.query.edns)
            && edns.keepalive
        {
            self.response.keepalive(timeout);
        }
    }

    /// True once a leaf began a response.
    pub fn has_response(&self) -> bool {
        !self.response.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a query packet: `name` in presentation form, EDNS optional.
    pub(crate) fn query_packet(name: &str, qtype: u16, qclass: u16, edns: Option<Edns>) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        if name != "." {
            for label in name.trim_end_matches('.').split('.') {
                p.push(label.len() as u8);
                p.extend_from_slice(label.as_bytes());
            }
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&qclass.to_be_bytes());
        if let Some(e) = edns {
            p[11] = 1;
            p.push(0);
            p.extend_from_slice(&rtype::OPT.to_be_bytes());
            p.extend_from_slice(&e.udp_size.to_be_bytes());
            p.extend_from_slice(&[0, e.version, if e.dnssec_ok { 0x80 } else { 0 }, 0]);
            let mut options = Vec::new();
            if e.nsid {
                options.extend_from_slice(&[0, 3, 0, 0]);
            }
            if e.keepalive {
                options.extend_from_slice(&[0, 11, 0, 0]);
            }
            p.extend_from_slice(&(options.len() as u16).to_be_bytes());
            p.extend_from_slice(&options);
        }
        p
    }

    pub(crate) const EDNS: Edns = Edns {
        udp_size: 1232,
        version: 0,
        dnssec_ok: false,
        nsid: false,
        keepalive: false,
    };

    #[test]
    fn parses_question_and_keeps_case() {
        let mut q = Query::default();
        q.parse(&query_packet("WwW.Foo.TLD", rtype::A, class::IN, None));
        assert_eq!(q.problem, Problem::None);
        assert_eq!(q.qname(), b"\x03www\x03foo\x03tld\x00");
        assert_eq!(q.qname_original(), b"\x03WwW\x03Foo\x03TLD\x00");
        assert_eq!(q.label_count(), 3);
        assert_eq!(q.qname_suffix(1), b"\x03foo\x03tld\x00");
        assert_eq!(q.qname_suffix(3), b"\x00");
        assert_eq!((q.qtype, q.qclass, q.id), (1, 1, 0x1234));
        assert!(q.edns.is_none());
    }

    #[test]
    fn parses_opt() {
        let mut q = Query::default();
        let e = Edns {
            udp_size: 4096,
            version: 0,
            dnssec_ok: true,
            nsid: true,
            keepalive: true,
        };
        q.parse(&query_packet("tld", rtype::SOA, class::IN, Some(e)));
        assert_eq!(q.problem, Problem::None);
        assert_eq!(q.edns, Some(e));
    }

    /// RFC 7828: the idle timeout goes to a TCP client that sent edns-tcp-keepalive, beside
    /// the NSID when both were asked for; never over UDP, never unasked, never without EDNS.
    #[test]
    fn tcp_keepalive_is_answered_over_tcp_to_clients_that_ask() {
        use hickory_proto::op::Message;
        use hickory_proto::rr::rdata::opt::EdnsCode;
        let asks = Edns {
            keepalive: true,
            nsid: true,
            ..EDNS
        };
        let cases = [
            (Transport::Tcp, Some(asks), true),
            (Transport::Udp, Some(asks), false),
            (Transport::Tcp, Some(EDNS), false),
            (Transport::Tcp, None, false),
        ];
        for (transport, edns, sent) in cases {
            let mut ev = Event::new();
            ev.tcp_keepalive = Some(300);
            let packet = query_packet("tld", rtype::SOA, class::IN, edns);
            ev.load(&packet, IpAddr::from([127, 0, 0, 1]), transport);
            ev.begin_response(rcode::NOERROR, Some(b"sat-1"));
            let bytes = ev.response.finish().to_vec();
            let msg = Message::from_vec(&bytes).unwrap();
            let case = format!("{transport:?} {edns:?}");
            assert_eq!(msg.edns.is_some(), edns.is_some(), "{case}");
            let keepalive = msg
                .edns
                .as_ref()
                .and_then(|e| e.option(EdnsCode::Keepalive));
            assert_eq!(keepalive.is_some(), sent, "{case}");
            if sent {
                // The OPT record ends the message: NSID, then the keepalive with 300 (30 s).
                assert!(
                    bytes.ends_with(b"\x00\x03\x00\x05sat-1\x00\x0b\x00\x02\x01\x2c"),
                    "{case}"
                );
            }
        }
    }

    #[test]
    fn finds_problems() {
        let mut q = Query::default();
        q.parse(&[0; 11]);
        assert_eq!(q.problem, Problem::ShortHeader);
        let mut p = query_packet("tld", 1, 1, None);
        p[2] |= 0x80;
        q.parse(&p);
        assert_eq!(q.problem, Problem::IsResponse);
        let mut p = query_packet("tld", 1, 1, None);
        p[2] |= 2 << 3; // STATUS
        q.parse(&p);
        assert_eq!(q.problem, Problem::BadOpcode);
        let mut p = query_packet("tld", 1, 1, None);
        p[5] = 2;
        q.parse(&p);
        assert_eq!(q.problem, Problem::QuestionCount);
        let mut p = query_packet("tld", 1, 1, None);
        p[5] = 0;
        q.parse(&p[..12]);
        assert_eq!(q.problem, Problem::QuestionCount);
        let p = query_packet("tld", 1, 1, None);
        q.parse(&p[..p.len() - 1]);
        assert_eq!(q.problem, Problem::BadQuestion);
        // A forward pointer in the question.
        let mut p = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 14, 0, 1, 0, 1];
        q.parse(&p);
        assert_eq!(q.problem, Problem::BadQuestion);
        // Two OPTs.
        p = query_packet("tld", 1, 1, Some(EDNS));
        let opt = p[p.len() - 11..].to_vec();
        p.extend_from_slice(&opt);
        p[11] = 2;
        q.parse(&p);
        assert_eq!(q.problem, Problem::DuplicateOpt);
        // Additional count larger than the records present.
        let mut p = query_packet("tld", 1, 1, None);
        p[11] = 1;
        q.parse(&p);
        assert_eq!(q.problem, Problem::BadRecords);
        // An OPT in the answer or authority section; its parameters are not trusted.
        let opt = {
            let p = query_packet(
                "tld",
                1,
                1,
                Some(Edns {
                    udp_size: 4096,
                    ..EDNS
                }),
            );
            p[p.len() - 11..].to_vec()
        };
        for count_at in [7, 9] {
            let mut p = query_packet("tld", 1, 1, None);
            p[count_at] = 1;
            p.extend_from_slice(&opt);
            q.parse(&p);
            assert_eq!(q.problem, Problem::MisplacedOpt);
            assert_eq!(q.edns, Some(Edns::FOR_BROKEN_OPT));
            // Followed by a record that does not parse: still answered with an OPT.
            p[11] = 1;
            p.extend_from_slice(&[0, 0, 1]);
            q.parse(&p);
            assert_eq!(q.problem, Problem::BadRecords);
            assert_eq!(q.edns, Some(Edns::FOR_BROKEN_OPT));
        }
        // A misplaced OPT and one in the additional section are two OPTs.
        let mut p = query_packet("tld", 1, 1, Some(EDNS));
        p[7] = 1;
        let at = p.len() - 11;
        p.splice(at..at, opt.iter().copied());
        q.parse(&p);
        assert_eq!(q.problem, Problem::DuplicateOpt);
        // The OPT is found behind a second question and behind a bad opcode.
        let mut p = query_packet("tld", 1, 1, None);
        let question = p[12..].to_vec();
        p[5] = 2;
        p[11] = 1;
        p.extend_from_slice(&question);
        p.extend_from_slice(&opt);
        q.parse(&p);
        assert_eq!(q.problem, Problem::QuestionCount);
        assert!(!q.has_question);
        assert_eq!(q.edns.map(|e| e.udp_size), Some(4096));
        let mut p = query_packet("tld", 1, 1, Some(EDNS));
        p[2] |= 5 << 3; // UPDATE
        q.parse(&p);
        assert_eq!(q.problem, Problem::BadOpcode);
        assert_eq!(q.edns, Some(EDNS));
    }

    /// The NSID's room is computed with checked arithmetic: one that cannot fit beside the
    /// question is left out instead of underflowing the size limit (RFC 5001 lets a server
    /// leave it out); one of the configured maximum always fits.
    #[test]
    fn an_nsid_that_does_not_fit_is_left_out() {
        use orrery_proto::link::convert::MAX_NSID_LEN;
        // The longest name: three 63-octet labels and one of 61 (255 octets in wire form).
        let longest = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
        let asks = Edns {
            udp_size: 512,
            nsid: true,
            ..EDNS
        };
        let mut q = Query::default();
        q.parse(&query_packet(&longest, rtype::A, class::IN, Some(asks)));
        assert_eq!(q.problem, Problem::None);
        assert_eq!(q.qname().len(), 255);
        let mut r = Response::new();
        for (len, sent) in [
            (MAX_NSID_LEN, true),
            (MAX_NSID_LEN + 1, false),
            (600, false),
        ] {
            let nsid: &'static [u8] = Box::leak(vec![b'n'; len].into_boxed_slice());
            r.begin(&q, Transport::Udp, Some(nsid));
            let msg = r.finish().to_vec();
            assert!(msg.len() <= 512, "NSID of {len}: {} octets", msg.len());
            let m = hickory_proto::op::Message::from_vec(&msg).unwrap();
            let edns = m.edns.as_ref().expect("OPT");
            let has = edns
                .option(hickory_proto::rr::rdata::opt::EdnsCode::NSID)
                .is_some();
            assert_eq!(has, sent, "NSID of {len}");
        }
    }

    #[test]
    fn compresses_and_rolls_back() {
        let mut q = Query::default();
        q.parse(&query_packet("www.Foo.tld", rtype::NS, class::IN, None));
        let mut r = Response::new();
        r.begin(&q, Transport::Udp, None);
        let question_end = r.len();
        assert!(r.rrset(Section::Authority, true, |r| {
            r.record(
                Owner::Name(b"\x03foo\x03tld\x00"),
                rtype::NS,
                class::IN,
                60,
                |r| r.put_name(b"\x03ns1\x03foo\x03tld\x00"),
            )
        }));
        // Owner is a pointer (2), fixed 10, rdata "ns1" + pointer = 6.
        assert_eq!(r.len(), question_end + 2 + 10 + 6);
        assert_eq!(&r.buf[question_end..question_end + 2], &[0xC0, 16]);
        // An RRset that cannot fit is rolled back and sets TC when required.
        let before = r.len();
        assert!(!r.rrset(Section::Additional, false, |r| r.put_bytes(&[0; 600])));
        assert_eq!(r.len(), before);
        assert!(!r.truncated);
        assert!(!r.rrset(Section::Additional, true, |r| r.put_bytes(&[0; 600])));
        assert!(r.truncated);
        let msg = r.finish().to_vec();
        let parsed = hickory_proto::op::Message::from_vec(&msg).unwrap();
        assert!(parsed.truncation);
        assert_eq!(parsed.authorities.len(), 1);
        assert_eq!(parsed.queries[0].name().to_string(), "www.Foo.tld.");
    }

    /// Names written in the response are compression targets too: an equal suffix is found,
    /// an equally long different one is not, and case does not matter.
    #[test]
    fn compresses_against_names_of_the_response() {
        let mut q = Query::default();
        q.parse(&query_packet("x.tld", rtype::NS, class::IN, None));
        let mut r = Response::new();
        r.begin(&q, Transport::Udp, None);
        let first = r.len();
        r.put_name(b"\x03ns1\x03bar\x03tld\x00").unwrap();
        // "ns1" "bar", then a pointer to the question's "tld" (offset 12 + 2).
        assert_eq!(&r.buf[first..r.len()], b"\x03ns1\x03bar\xC0\x0E");
        let second = r.len();
        r.put_name(b"\x03ns2\x03bar\x03tld\x00").unwrap();
        // "ns2", then a pointer to the first name's "bar.tld".
        let bar = (first + 4) as u8;
        assert_eq!(&r.buf[second..r.len()], &[3, b'n', b's', b'2', 0xC0, bar]);
        let third = r.len();
        r.put_name(b"\x03ns1\x03baz\x03tld\x00").unwrap();
        assert_eq!(&r.buf[third..r.len()], b"\x03ns1\x03baz\xC0\x0E");
        let fourth = r.len();
        r.put_name(b"\x03NS1\x03bar\x03tld\x00").unwrap();
        assert_eq!(
            &r.buf[fourth..r.len()],
            &[0xC0, first as u8],
            "whole name, any case"
        );
    }
}
