//! Differential test: the satellite against a real BIND, on the same registry data.
//!
//! One synthetic store (20,000 domains plus hand-made cases: DS, a held domain with an
//! in-bailiwick nameserver that another domain uses, a domain without nameservers, referrals
//! too big for 512 octets with in-domain and with sibling glue) is written twice: as a zone file
//! by the generator, which a real `named` serves on loopback, and as a satellite snapshot
//! (`write_satellite_snapshot`), which an in-process satellite serves. BIND is configured as a
//! TLD server usually is and as the satellite behaves: `minimal-responses no-auth` (no NS RRset
//! in AUTHORITY of positive answers, glue and additional addresses kept) and `minimal-any yes`
//! (RFC 8482).
//!
//! The corpus (more than 10,000 queries) covers every delegation and every glue host; a sample
//! of the domains also gets many query types and names below delegations, and there are
//! non-delegated and nonexistent names, the apex with
//! types it has and has not (DNSKEY, MX, …), DS queries, ANY, names outside the zone, mixed
//! case, EDNS on and off, DO on and off, tiny buffers (no EDNS, EDNS 512) and TCP. Each query
//! goes to both servers; rcode, AA and TC, the question (case included), the EDNS OPT (present,
//! DO echoed, version) and each section's records as sets (owner lowercased, type, class, TTL,
//! RDATA) must be equal, except for the differences in [`ALLOWED`], each with the RFC that
//! allows it.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use orrery_generator::{Outcome, generate_zone, write_named_conf, write_satellite_snapshot};
use orrery_proto::{EppStatus, Name, Registrar, Timestamp};
use orrery_satellite::{SnapshotData, read_snapshot};
use orrery_store::Store;
use orrery_store::synthetic::SyntheticTld;
use orrery_store::write::{NewDomain, NsSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::harness::{Named, Satellite, program};

/// BIND options that make it answer as a TLD server (and the satellite) does.
const BIND_OPTIONS: &str = "minimal-responses no-auth;\n\tminimal-any yes;";

/// The satellite under test: validation and lookup, nothing that could answer differently on
/// purpose (no ACL, no CHAOS, no NSID).
const SATELLITE_CONFIG: &str = r#"
[server]
udp = ["127.0.0.1:0"]
tcp = ["127.0.0.1:0"]
workers = 2

[leaves.validate]
kind = "validate_query"

[leaves.lookup]
kind = "lookup"

[[chains]]
name = "main"
leaves = ["validate", "lookup"]
"#;

/// Synthetic domains in the store.
const DOMAINS: usize = 20_000;
/// The corpus must hold at least this many queries.
const MIN_QUERIES: usize = 10_000;
/// Queries in flight at once (one per client thread), to both servers.
const IN_FLIGHT: usize = 8;

/// The differences the test accepts, each with the rule that allows it. Every accepted
/// difference is counted and reported; a difference not covered here fails the test.
const ALLOWED: &[(&str, &str)] = &[
    (
        "truncated",
        "Both servers set TC: RFC 2181 §9 and RFC 1035 §7.3: a client discards a truncated \
         response and retries over TCP, so what each server packed before giving up may differ; \
         rcode, AA, TC and the question must still agree.",
    ),
    (
        "in-domain glue sets TC",
        "The satellite sets TC on a referral whose in-domain glue does not all fit, as RFC 9471 \
         §3.1 requires (MUST); BIND 9.18 predates it and sends the referral with part of that \
         glue and no TC. Accepted only when BIND's referral does lack in-domain glue.",
    ),
    (
        "optional additional data",
        "Additional A/AAAA records other than a referral's in-domain glue are optional: RFC 1034 \
         §4.3.2 step 3b ('whatever addresses are available'), RFC 9471 §3.2 (sibling glue only \
         if it fits, no TC), RFC 2181 §9. BIND 9.18 adds only glue found below a zone cut (not \
         in-zone authoritative addresses, such as a held domain's host used by another domain), \
         leaves the apex nameservers' addresses out at EDNS 512, and fills limited space \
         A-records first; the satellite adds each available address RRset in NS order while it \
         fits. Accepted only for correct addresses of a nameserver named in the response, and \
         the satellite may lack one that BIND sent only in a 512-octet UDP response.",
    ),
    (
        "zero TTL on the SOA of a negative SOA answer",
        "For a negative answer to a query of type SOA, BIND's zero-no-soa-ttl (default yes) \
         sends the SOA in AUTHORITY with TTL 0; RFC 2308 §3 gives min(SOA TTL, MINIMUM), which \
         the satellite sends, as NSD and Knot do. Accepted only for qtype SOA with an empty \
         answer section, when the SOA records differ in TTL alone.",
    ),
];

/// What the comparison needs to know about the zone: published addresses and delegations.
struct ZoneFacts {
    ns_ttl: u32,
    /// Delegated names, lowercase, no final dot.
    delegated: std::collections::HashSet<String>,
    /// Host addresses by name (lowercase, no final dot).
    hosts: HashMap<String, Vec<IpAddr>>,
}

impl ZoneFacts {
    fn new(data: &SnapshotData) -> Self {
        Self {
            ns_ttl: data.zones[0].ns_ttl,
            delegated: data
                .domains
                .iter()
                .filter(|d| d.is_delegated())
                .map(|d| d.name.to_string())
                .collect(),
            hosts: data
                .hosts
                .iter()
                .map(|h| (h.name.to_string(), h.addresses.clone()))
                .collect(),
        }
    }

    /// The records of `host`'s addresses, keyed as [`record_key`] does.
    fn address_keys(&self, host: &str) -> BTreeSet<String> {
        self.hosts.get(host).map_or_else(BTreeSet::new, |addrs| {
            addrs
                .iter()
                .map(|a| {
                    let t = if a.is_ipv4() { "A" } else { "AAAA" };
                    format!("{host}. {} IN {t} {a}", self.ns_ttl)
                })
                .collect()
        })
    }
}

fn lower(name: &hickory_proto::rr::Name) -> String {
    name.to_ascii().trim_end_matches('.').to_lowercase()
}

/// NS targets named in the answer and authority sections.
fn ns_targets(m: &Message) -> BTreeSet<String> {
    m.answers
        .iter()
        .chain(&m.authorities)
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::NS(ns) => Some(lower(&ns.0)),
            _ => None,
        })
        .collect()
}

/// For a referral (no AA, NS RRset in AUTHORITY): the in-domain glue it must carry.
fn required_glue(m: &Message, facts: &ZoneFacts) -> BTreeSet<String> {
    let Some(cut) = m
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::NS)
        .map(|r| lower(&r.name))
    else {
        return BTreeSet::new();
    };
    if m.metadata.authoritative || !facts.delegated.contains(&cut) {
        return BTreeSet::new();
    }
    ns_targets(m)
        .into_iter()
        .filter(|t| t.ends_with(&format!(".{cut}")))
        .flat_map(|t| facts.address_keys(&t))
        .collect()
}

/// One query of the corpus.
#[derive(Clone, Debug)]
struct Probe {
    /// As sent, case included, without the final dot ("" for the root).
    qname: String,
    qtype: u16,
    /// `Some((udp_size, dnssec_ok))` for an OPT record.
    edns: Option<(u16, bool)>,
    tcp: bool,
}

impl Probe {
    fn packet(&self, id: u16) -> Vec<u8> {
        // Header: RD clear (an authoritative server's usual traffic), one question.
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(self.edns.is_some())]);
        for label in self.qname.split('.').filter(|l| !l.is_empty()) {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&self.qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        if let Some((size, dnssec_ok)) = self.edns {
            p.push(0);
            p.extend_from_slice(&41u16.to_be_bytes());
            p.extend_from_slice(&size.to_be_bytes());
            p.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
        }
        p
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let edns = match self.edns {
            None => "no EDNS".to_owned(),
            Some((size, dnssec_ok)) => {
                format!("EDNS {size}{}", if dnssec_ok { " +DO" } else { "" })
            }
        };
        write!(
            f,
            "{}. {} ({edns}, {})",
            self.qname,
            RecordType::from(self.qtype),
            if self.tcp { "TCP" } else { "UDP" }
        )
    }
}

/// Where a server listens.
#[derive(Clone, Copy)]
struct Target {
    udp: SocketAddr,
    tcp: SocketAddr,
}

/// One client thread's sockets, reused for all its queries.
struct Client {
    udp: UdpSocket,
    tcp: HashMap<SocketAddr, TcpStream>,
    next_id: u16,
}

impl Client {
    fn new(seed: u16) -> Self {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        udp.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        Self {
            udp,
            tcp: HashMap::new(),
            next_id: seed.wrapping_mul(7919),
        }
    }

    /// Sends `probe` to `target` and returns the raw response.
    fn ask(&mut self, target: Target, probe: &Probe) -> Result<Vec<u8>, String> {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let packet = probe.packet(id);
        if probe.tcp {
            for _ in 0..2 {
                match self.ask_tcp(target.tcp, &packet) {
                    Ok(r) => return Ok(r),
                    Err(_) => {
                        self.tcp.remove(&target.tcp);
                    }
                }
            }
            return Err(format!("no TCP answer from {}", target.tcp));
        }
        let mut buf = vec![0u8; 65535];
        for _ in 0..3 {
            self.udp
                .send_to(&packet, target.udp)
                .map_err(|e| e.to_string())?;
            let deadline = Instant::now() + Duration::from_millis(1500);
            while Instant::now() < deadline {
                match self.udp.recv_from(&mut buf) {
                    // Late answers to an earlier try carry another id: skip them.
                    Ok((n, from))
                        if from == target.udp && n >= 2 && buf[..2] == id.to_be_bytes() =>
                    {
                        return Ok(buf[..n].to_vec());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        Err(format!("no UDP answer from {}", target.udp))
    }

    fn ask_tcp(&mut self, addr: SocketAddr, packet: &[u8]) -> std::io::Result<Vec<u8>> {
        let stream = match self.tcp.entry(addr) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let s = TcpStream::connect(addr)?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.set_nodelay(true)?;
                e.insert(s)
            }
        };
        let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(packet);
        stream.write_all(&framed)?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len)?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut buf)?;
        Ok(buf)
    }
}

/// A record as compared: owner lowercased, class, TTL, type, RDATA (names lowercased).
fn record_key(r: &Record) -> String {
    format!(
        "{} {} {} {} {}",
        r.name.to_ascii().to_lowercase(),
        r.ttl,
        r.dns_class,
        r.record_type(),
        r.data.to_string().to_lowercase()
    )
}

fn section(records: &[Record]) -> BTreeSet<String> {
    records.iter().map(record_key).collect()
}

/// The question section's raw bytes (name as sent, type, class), if the message has one.
fn question_bytes(msg: &[u8]) -> Option<&[u8]> {
    if msg.len() < 12 || msg[4..6] != [0, 1] {
        return None;
    }
    let mut pos = 12;
    loop {
        let len = *msg.get(pos)? as usize;
        if len == 0 || len >= 0x40 {
            break;
        }
        pos += 1 + len;
    }
    msg.get(12..pos + 1 + 4)
}

/// What a difference is, once found: `Err` for a failure, `Ok(Some(rule))` for an allowed one.
fn compare(
    probe: &Probe,
    query: &[u8],
    bind_raw: &[u8],
    sat_raw: &[u8],
    facts: &ZoneFacts,
) -> Result<Option<&'static str>, String> {
    let bind = Message::from_vec(bind_raw).map_err(|e| format!("BIND's answer: {e}"))?;
    let sat = Message::from_vec(sat_raw).map_err(|e| format!("satellite's answer: {e}"))?;
    let mut diffs = Vec::new();
    // RFC 1035 §7.3 does not require the question to be echoed byte for byte, but BIND, NSD
    // and Knot all do (and resolvers using 0x20 rely on it): the satellite must too.
    let want_q = question_bytes(query);
    if question_bytes(sat_raw) != want_q {
        diffs.push("the satellite does not echo the question as sent".to_owned());
    }
    if question_bytes(bind_raw) != want_q {
        diffs.push("BIND does not echo the question as sent".to_owned());
    }
    let (b, s) = (&bind.metadata, &sat.metadata);
    if b.response_code != s.response_code {
        diffs.push(format!(
            "rcode: BIND {} satellite {}",
            b.response_code, s.response_code
        ));
    }
    if b.authoritative != s.authoritative {
        diffs.push(format!(
            "AA: BIND {} satellite {}",
            b.authoritative, s.authoritative
        ));
    }
    let mut rule = None;
    if b.truncation != s.truncation {
        let glue = required_glue(&bind, facts);
        if s.truncation && !glue.is_subset(&section(&bind.additionals)) {
            rule = Some("in-domain glue sets TC");
        } else {
            diffs.push(format!(
                "TC: BIND {} satellite {}",
                b.truncation, s.truncation
            ));
        }
    }
    let opt = |m: &Message| m.edns.as_ref().map(|e| (e.version(), e.flags().dnssec_ok));
    if opt(&bind) != opt(&sat) {
        diffs.push(format!(
            "OPT (version, DO): BIND {:?} satellite {:?}",
            opt(&bind),
            opt(&sat)
        ));
    }
    if probe.edns.is_some() != sat.edns.is_some() {
        diffs.push("the satellite's OPT does not follow the query's (RFC 6891 §7)".to_owned());
    }
    if !diffs.is_empty() {
        return Err(diffs.join("; "));
    }
    if rule.is_some() {
        return Ok(rule);
    }
    if b.truncation && s.truncation {
        // Equal or not, the sections of a truncated response are not compared.
        let same = section(&bind.answers) == section(&sat.answers)
            && section(&bind.authorities) == section(&sat.authorities)
            && section(&bind.additionals) == section(&sat.additionals);
        return Ok((!same).then_some("truncated"));
    }
    let only =
        |a: &BTreeSet<String>, b: &BTreeSet<String>| a.difference(b).cloned().collect::<Vec<_>>();
    let mut section_diffs = Vec::new();
    let (ba, sa) = (section(&bind.answers), section(&sat.answers));
    if ba != sa {
        section_diffs.push(format!(
            "answer: only BIND {:?}; only satellite {:?}",
            only(&ba, &sa),
            only(&sa, &ba)
        ));
    }
    let (bn, sn) = (section(&bind.authorities), section(&sat.authorities));
    if bn != sn {
        let without_soa_ttl = |m: &Message| {
            m.authorities
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    if r.record_type() == RecordType::SOA {
                        r.ttl = 0;
                    }
                    record_key(&r)
                })
                .collect::<BTreeSet<_>>()
        };
        if probe.qtype == u16::from(RecordType::SOA)
            && bind.answers.is_empty()
            && sat.answers.is_empty()
            && without_soa_ttl(&bind) == without_soa_ttl(&sat)
            && bind.authorities.iter().all(|r| r.ttl == 0)
        {
            rule = Some("zero TTL on the SOA of a negative SOA answer");
        } else {
            section_diffs.push(format!(
                "authority: only BIND {:?}; only satellite {:?}",
                only(&bn, &sn),
                only(&sn, &bn)
            ));
        }
    }
    let (bd, sd) = (section(&bind.additionals), section(&sat.additionals));
    if bd != sd {
        // Optional data only: correct addresses of nameservers the response names, and never
        // a referral's in-domain glue.
        let required = required_glue(&sat, facts);
        let named: BTreeSet<String> = ns_targets(&bind)
            .union(&ns_targets(&sat))
            .flat_map(|t| facts.address_keys(t))
            .collect();
        let differing: BTreeSet<String> = bd.symmetric_difference(&sd).cloned().collect();
        // The satellite may leave out what BIND sent only when space was short (512 octets).
        let small = !probe.tcp && probe.edns.is_none_or(|(size, _)| size <= 512);
        if differing.is_subset(&named)
            && differing.is_disjoint(&required)
            && (small || bd.is_subset(&sd))
        {
            rule = rule.or(Some("optional additional data"));
        } else {
            section_diffs.push(format!(
                "additional: only BIND {:?}; only satellite {:?}",
                only(&bd, &sd),
                only(&sd, &bd)
            ));
        }
    }
    if section_diffs.is_empty() {
        Ok(rule)
    } else {
        Err(section_diffs.join("; "))
    }
}

/// Mixed case, deterministically (RFC 4343: names compare case-insensitively).
fn mix_case(name: &str, rng: &mut ChaCha8Rng) -> String {
    name.chars()
        .map(|c| {
            if rng.random_bool(0.5) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// The corpus, built from the registry data the satellite serves.
fn corpus(data: &SnapshotData, apex: &Name) -> Vec<Probe> {
    use RecordType as T;
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    // EDNS variants: none (512 octets), tiny EDNS, the usual sizes, with and without DO.
    let edns_variants = [
        None,
        Some((512, false)),
        Some((1232, false)),
        Some((4096, true)),
        Some((1232, true)),
        Some((512, true)),
        Some((4096, false)),
    ];
    let mut names: Vec<(String, RecordType)> = Vec::new();
    let zone = |n: &Name| n.is_subdomain_of(apex) && n != apex;
    let hosts: HashMap<&Name, &[IpAddr]> = data
        .hosts
        .iter()
        .map(|h| (&h.name, h.addresses.as_slice()))
        .collect();

    // The apex: what it has and what it has not.
    let apex_text = apex.to_string();
    for t in [
        T::SOA,
        T::NS,
        T::DNSKEY,
        T::DS,
        T::A,
        T::AAAA,
        T::MX,
        T::TXT,
        T::CAA,
        T::NSEC3PARAM,
        T::ANY,
    ] {
        for _ in 0..edns_variants.len() * 2 {
            names.push((apex_text.clone(), t));
        }
    }
    // The zone's own nameservers and the empty non-terminal above them.
    for ns in &data.zones[0].nameservers {
        for t in [T::A, T::AAAA, T::TXT, T::ANY] {
            names.push((ns.to_string(), t));
        }
        if let Some(p) = ns.parent().filter(|p| p != apex) {
            names.push((p.to_string(), T::A));
        }
    }
    // Names outside every zone: REFUSED.
    for name in [
        "example",
        "tes",
        "xtest",
        "org",
        "nic.example",
        "test.example",
    ] {
        names.push((name.to_owned(), T::A));
        names.push((name.to_owned(), T::SOA));
    }
    // Nonexistent names, at one and several levels.
    for i in 0..400 {
        names.push((format!("nx{i}-{:x}.{apex_text}", rng.random::<u32>()), T::A));
        names.push((format!("a.b.nx{i}.{apex_text}"), T::AAAA));
        names.push((format!("nx{i}.{apex_text}"), T::DS));
    }
    // Domains: every delegation and every glue host at least once; hand-made domains and a
    // sample of the synthetic ones with many query types and names below them.
    // Synthetic labels end with their index; hand-made ones have no digits.
    let special = |d: &orrery_proto::Domain| !d.name.first_label().iter().any(u8::is_ascii_digit);
    let delegated = data.domains.iter().filter(|d| d.is_delegated()).count();
    let step = (delegated / 2_000).max(1);
    let mut k = 0;
    for d in &data.domains {
        let sampled = special(d) || !d.is_delegated() || {
            k += 1;
            k % step == 0
        };
        if !sampled {
            // Every other delegation still gets a referral, and each of its glue hosts a query.
            let name = d.name.to_string();
            names.push(if k % 2 == 0 {
                (name, T::NS)
            } else {
                (format!("www.{name}"), T::A)
            });
            for ns in d.nameservers.iter().filter(|n| zone(n)) {
                names.push((ns.to_string(), if k % 2 == 0 { T::A } else { T::AAAA }));
            }
            continue;
        }
        let name = d.name.to_string();
        let types: &[RecordType] = if special(d) {
            &[
                T::NS,
                T::A,
                T::AAAA,
                T::DS,
                T::ANY,
                T::SOA,
                T::DNSKEY,
                T::MX,
                T::TXT,
            ]
        } else {
            &[T::NS, T::DS]
        };
        for &t in types {
            names.push((name.clone(), t));
        }
        let other = [T::A, T::AAAA, T::MX, T::TXT, T::ANY, T::SOA, T::DNSKEY][k % 7];
        names.push((name.clone(), other));
        names.push((format!("www.{name}"), T::A));
        names.push((format!("a.deep.name.below.{name}"), T::AAAA));
        names.push((format!("www.{name}"), T::DS));
        for ns in d.nameservers.iter().filter(|n| zone(n)) {
            names.push((ns.to_string(), T::A));
            names.push((ns.to_string(), T::AAAA));
            if hosts.get(ns).is_some_and(|a| a.is_empty()) || special(d) {
                names.push((ns.to_string(), T::TXT));
            }
        }
    }
    // The probes: the EDNS variant cycles, every third name in mixed case, every eleventh
    // over TCP. Hand-made big referrals get every variant over both transports.
    let mut probes = Vec::with_capacity(names.len() + 200);
    for (i, (name, t)) in names.into_iter().enumerate() {
        let qname = if i % 3 == 0 {
            mix_case(&name, &mut rng)
        } else {
            name
        };
        probes.push(Probe {
            qname,
            qtype: t.into(),
            edns: edns_variants[i % edns_variants.len()],
            tcp: i % 11 == 0,
        });
    }
    for name in ["big", "sibling", "mixed", "signed", "user", "long"] {
        for t in [T::A, T::NS, T::DS, T::ANY] {
            for edns in edns_variants {
                for tcp in [false, true] {
                    probes.push(Probe {
                        qname: mix_case(&format!("www.{name}.{apex_text}"), &mut rng),
                        qtype: t.into(),
                        edns,
                        tcp,
                    });
                }
            }
        }
    }
    probes
}

/// Writes the hand-made cases into the store.
async fn add_special_cases(store: &Store) {
    let n = |s: &str| Name::from_ascii(s).unwrap();
    store
        .add_registrar(&Registrar::new("R1", "Registrar One"))
        .await
        .unwrap();
    let ns = |name: &str, addrs: &[&str]| NsSpec {
        name: n(name),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
    };
    let add = |name: &str, nameservers: Vec<NsSpec>, statuses: Vec<EppStatus>, ds: &str| {
        let d = NewDomain {
            name: n(name),
            registrar: "R1".into(),
            registrant: None,
            admin: None,
            tech: None,
            billing: None,
            expires: Timestamp(2_000_000_000),
            statuses,
            nameservers,
            ds: if ds.is_empty() {
                vec![]
            } else {
                vec![orrery_store::read::parse_ds(ds).unwrap()]
            },
        };
        async move { store.add_domain(&d).await.unwrap() }
    };
    let digest = "2BB183AF5F22588179A53B0A98631FAD1A292118".repeat(2)[..64].to_owned();
    // 13 long out-of-zone nameserver names: the NS RRset itself does not fit in 512 octets,
    // so both servers must set TC.
    let long: Vec<NsSpec> = (1..=13)
        .map(|i| ns(&format!("ns{i}.{}{i:02}.example", "l".repeat(40)), &[]))
        .collect();
    add("long.test", long, vec![], "").await;
    add(
        "signed.test",
        vec![
            ns("ns1.signed.test", &["198.18.200.1", "2001:db8::200:1"]),
            ns("ns.hoster.example", &[]),
        ],
        vec![],
        &format!("60485 13 2 {digest}"),
    )
    .await;
    // A held domain whose in-bailiwick nameserver another domain uses: its address stays in
    // the zone as authoritative data, and the held name becomes an empty non-terminal.
    add(
        "held.test",
        vec![
            ns("ns1.held.test", &["198.18.200.2"]),
            ns("ns2.held.test", &["198.18.200.3"]),
        ],
        vec![EppStatus::ClientHold],
        "",
    )
    .await;
    add(
        "user.test",
        vec![ns("ns1.held.test", &[]), ns("ns.hoster.example", &[])],
        vec![],
        "",
    )
    .await;
    add("bare.test", vec![], vec![], "").await;
    // 13 in-domain nameservers with A and AAAA: the referral does not fit in 512 octets, and
    // in-domain glue is required (RFC 9471 §3.1), so TC.
    let big: Vec<NsSpec> = (1..=13)
        .map(|i| {
            let v4 = format!("198.18.201.{i}");
            let v6 = format!("2001:db8::201:{i}");
            ns(&format!("ns{i}.big.test"), &[v4.as_str(), v6.as_str()])
        })
        .collect();
    add("big.test", big, vec![], "").await;
    // The same hosts as sibling glue (optional, RFC 9471 §3.2).
    let sibling: Vec<NsSpec> = (1..=13)
        .map(|i| ns(&format!("ns{i}.big.test"), &[]))
        .collect();
    add("sibling.test", sibling, vec![], "").await;
    add(
        "mixed.test",
        vec![
            ns(
                "ns1.mixed.test",
                &["198.18.202.1", "2001:db8::202:1", "2001:db8::202:2"],
            ),
            ns("ns1.signed.test", &[]),
            ns("ns.hoster.example", &[]),
            ns("ns1.held.test", &[]),
        ],
        vec![],
        &format!("60486 8 2 {digest}"),
    )
    .await;
}

#[test]
#[cfg_attr(
    missing_bind,
    ignore = "BIND is not installed (apt-get install bind9 bind9-utils)"
)]
fn satellite_answers_as_bind_does() {
    let Some(named) = program("named", "bind9") else {
        return;
    };
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("zones");
    std::fs::create_dir_all(&out).unwrap();
    let apex = Name::from_ascii("test").unwrap();
    let snapshot = work.path().join("test.snap");

    // One store, written once as a zone file and once as a satellite snapshot.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (zone_serial, snap_serial) = rt.block_on(async {
        let store = Store::open(&format!(
            "sqlite:{}",
            work.path().join("store.db").display()
        ))
        .await
        .unwrap();
        store
            .load_synthetic(&SyntheticTld {
                zone: apex.clone(),
                domains: DOMAINS,
                seed: 11,
            })
            .await
            .unwrap();
        add_special_cases(&store).await;
        let Outcome::Written { serial, .. } =
            generate_zone(&store, &apex, &out, true).await.unwrap()
        else {
            panic!("zone not written")
        };
        write_named_conf(
            std::slice::from_ref(&apex),
            &out,
            &out.join("named.conf.zones"),
        )
        .unwrap();
        let snap = write_satellite_snapshot(&store, &snapshot).await.unwrap();
        store.close().await;
        (serial, snap)
    });
    drop(rt);
    assert_eq!(zone_serial, snap_serial, "both read the same state");
    let data = read_snapshot(&snapshot).unwrap();
    let loaded = started.elapsed();

    let bind =
        Named::start_with_options(&named, &out.join("named.conf.zones"), "test.", BIND_OPTIONS);
    let satellite = Satellite::start(SATELLITE_CONFIG, &data);
    let bind_target = Target {
        udp: bind.addr,
        tcp: bind.addr,
    };
    let sat_target = Target {
        udp: satellite.udp,
        tcp: satellite.tcp,
    };

    let probes = corpus(&data, &apex);
    let facts = ZoneFacts::new(&data);
    assert!(
        probes.len() >= MIN_QUERIES,
        "corpus of {} queries",
        probes.len()
    );

    // Send each query to both, IN_FLIGHT at a time.
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::<String>::new());
    let allowed = Mutex::new(HashMap::<&'static str, usize>::new());
    let seen = Mutex::new(HashMap::<&'static str, usize>::new());
    let asked = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..IN_FLIGHT {
            let (next, failures, allowed, seen, probes, facts) =
                (&next, &failures, &allowed, &seen, &probes, &facts);
            scope.spawn(move || {
                let mut client = Client::new(t as u16 + 1);
                let mut local_seen = HashMap::<&'static str, usize>::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(probe) = probes.get(i) else { break };
                    let result = client
                        .ask(bind_target, probe)
                        .and_then(|b| client.ask(sat_target, probe).map(|s| (b, s)));
                    let (b, s) = match result {
                        Ok(r) => r,
                        Err(e) => {
                            failures.lock().unwrap().push(format!("{probe}: {e}"));
                            continue;
                        }
                    };
                    let sat_tc = Message::from_vec(&s).is_ok_and(|m| m.metadata.truncation);
                    if let Ok(m) = Message::from_vec(&b) {
                        for (what, hit) in [
                            ("truncated by both", m.metadata.truncation && sat_tc),
                            ("truncated by the satellite", sat_tc),
                            (
                                "referral",
                                !m.metadata.authoritative
                                    && m.metadata.response_code == ResponseCode::NoError,
                            ),
                            (
                                "nxdomain",
                                m.metadata.response_code == ResponseCode::NXDomain,
                            ),
                            ("refused", m.metadata.response_code == ResponseCode::Refused),
                            (
                                "ds answer",
                                m.answers.iter().any(|r| r.record_type() == RecordType::DS),
                            ),
                            (
                                "nodata",
                                m.metadata.authoritative
                                    && m.metadata.response_code == ResponseCode::NoError
                                    && m.answers.is_empty(),
                            ),
                            ("tcp", probe.tcp),
                        ] {
                            if hit {
                                *local_seen.entry(what).or_default() += 1;
                            }
                        }
                    }
                    match compare(probe, &probe.packet(0), &b, &s, facts) {
                        Ok(None) => {}
                        Ok(Some(rule)) => *allowed.lock().unwrap().entry(rule).or_default() += 1,
                        Err(e) => failures.lock().unwrap().push(format!("{probe}: {e}")),
                    }
                }
                let mut seen = seen.lock().unwrap();
                for (k, v) in local_seen {
                    *seen.entry(k).or_default() += v;
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let allowed = allowed.into_inner().unwrap();
    let seen = seen.into_inner().unwrap();
    eprintln!(
        "differential: {} queries to BIND and the satellite in {:.1?} (setup {:.1?}); \
         responses seen: {seen:?}; allowed differences: {allowed:?}",
        probes.len(),
        asked.elapsed(),
        loaded
    );
    for (rule, count) in &allowed {
        let why = ALLOWED
            .iter()
            .find(|(r, _)| r == rule)
            .map_or("?", |(_, w)| w);
        eprintln!("  allowed {count}×: {why}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries differ:\n{}",
        failures.len(),
        probes.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The corpus reached every kind of answer it is meant to.
    for what in [
        "truncated by both",
        "truncated by the satellite",
        "referral",
        "nxdomain",
        "refused",
        "ds answer",
        "nodata",
        "tcp",
    ] {
        assert!(
            seen.get(what).copied().unwrap_or(0) > 0,
            "no {what} response in the corpus: {seen:?}"
        );
    }
    drop(satellite);
    drop(bind);
}
