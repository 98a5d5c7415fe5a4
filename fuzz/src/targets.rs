//! The body of each fuzz target: feed the input to the satellite's public entry point, then
//! check what comes out. A failed check panics with the input and the output in hex, which
//! libFuzzer reports as a crash and saves under `fuzz/artifacts/TARGET/`.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use hickory_proto::op::{Message, MessageType, Query as Question};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use orrery_proto::link::pb::{self, follow_event};
use orrery_proto::link::{SatelliteSettings, convert::Chunk};
use orrery_proto::{Change, ChangeBatch, Name};
use orrery_satellite::dns::wire::{self, Event, Transport, class, rtype};
use orrery_satellite::rds::{Outcome, Protocol, rdap, whois};
use orrery_satellite::{Pipeline, SnapshotData, ZoneSet};
use prost::Message as _;

use crate::fixture;

/// The DNS client every query comes from (the example configuration's ACL allows everyone).
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Most names of a decoded file or message asked for in DNS, so that one input stays fast.
const MOST_NAMES: usize = 16;

thread_local! {
    /// One event reused for every query, as a worker reuses its own for ever: what one query
    /// leaves in it must not change the next one's answer.
    static EVENT: RefCell<Event> = RefCell::new(Event::new());
}

/// Lower-case hex of `bytes`, for failure messages (the form `fuzz/README.md` asks crashes to
/// be reported in).
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

// ─────────────────────────────────────── DNS ───────────────────────────────────────

/// Target `dns_query`: one packet through the whole pipeline (parse, Selector, lookup,
/// encoding), over UDP, over TCP, and over UDP again.
pub fn dns_query(packet: &[u8]) {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    let p = PIPELINE.get_or_init(|| fixture::dns_pipeline(fixture::zones().clone()));
    EVENT.with_borrow_mut(|ev| {
        let first = ask(p, ev, packet, Transport::Udp);
        ask(p, ev, packet, Transport::Tcp);
        let again = ask(p, ev, packet, Transport::Udp);
        assert!(
            first == again,
            "one query, two UDP answers\nquery  {}\nfirst  {}\nsecond {}",
            hex(packet),
            hex(first.as_deref().unwrap_or_default()),
            hex(again.as_deref().unwrap_or_default()),
        );
    });
}

/// Runs one packet through `p` and checks the answer ([`check_dns_answer`]).
pub fn ask(p: &Pipeline, ev: &mut Event, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let answer = p.handle(packet, CLIENT, transport, ev).map(<[u8]>::to_vec);
    check_dns_answer(packet, &ev.query, transport, answer.as_deref());
    answer
}

/// What every answer to `packet` must be, whatever the packet: nothing for what cannot be
/// answered (shorter than a header, or itself a response); otherwise a message that
/// hickory-proto parses, with the query's ID and opcode, QR set, within the transport's size
/// (over UDP the query's EDNS size floored at 512 and capped at the satellite's 1232, 512
/// without EDNS), and the question echoed exactly when the satellite parsed one.
pub fn check_dns_answer(
    packet: &[u8],
    query: &wire::Query,
    transport: Transport,
    answer: Option<&[u8]>,
) {
    let fail = |what: &str| -> ! {
        panic!(
            "{what}\ntransport {transport:?}\nquery  {}\nanswer {}",
            hex(packet),
            hex(answer.unwrap_or_default())
        )
    };
    let Some(answer) = answer else {
        // Dropping is a correct answer to anything (an ACL may drop, a malformed query may be
        // dropped): nothing more to check.
        return;
    };
    if packet.len() < 12 {
        fail("an answer to a packet shorter than a DNS header");
    }
    if packet[2] & 0x80 != 0 {
        fail("an answer to a response (QR set): a reflection loop");
    }
    if answer.len() < 12 {
        fail("an answer shorter than a DNS header");
    }
    if answer[..2] != packet[..2] {
        fail("the answer's ID is not the query's");
    }
    if answer[2] & 0x80 == 0 {
        fail("QR is not set in the answer");
    }
    // RFC 1035 §4.1.1: the opcode is copied from the query into the response.
    if answer[2] & 0x78 != packet[2] & 0x78 {
        fail("the answer's opcode is not the query's");
    }
    let limit = match transport {
        Transport::Udp => query.edns.map_or(wire::CLASSIC_UDP_SIZE, |e| {
            e.udp_size.clamp(wire::CLASSIC_UDP_SIZE, wire::OUR_UDP_SIZE)
        }),
        Transport::Tcp => u16::MAX,
    };
    if answer.len() > usize::from(limit) {
        fail(&format!("{} octets over a limit of {limit}", answer.len()));
    }
    let message = match Message::from_vec(answer) {
        Ok(m) => m,
        Err(e) => fail(&format!(
            "the answer does not parse with hickory-proto: {e}"
        )),
    };
    if message.message_type != MessageType::Response {
        fail("hickory-proto reads the answer as a query");
    }
    if !query.has_question {
        if !message.queries.is_empty() {
            fail("a question echoed for a query whose question did not parse");
        }
        return;
    }
    if message.queries.len() != 1 {
        fail("the parsed question is not echoed once");
    }
    // The question as an independent parser reads it from the query.
    let mut decoder = BinDecoder::new(packet);
    let asked = decoder
        .read_slice(12)
        .ok()
        .and_then(|_| Question::read(&mut decoder).ok());
    if let Some(asked) = asked {
        let echoed = &message.queries[0];
        // Compared as text: hickory's `Name` equality ignores case, the echo must not.
        if echoed.name().to_ascii() != asked.name().to_ascii()
            || echoed.query_type() != asked.query_type()
            || echoed.query_class() != asked.query_class()
        {
            fail(&format!("question {asked} echoed as {echoed}"));
        }
    }
}

/// Asks a pipeline over `zones` about the first names of `names` (and a name below each),
/// for the types each answer path branches on, and checks every answer: what a satellite does
/// first with data it loaded from a file or a message is serve it.
fn serve(zones: ZoneSet, names: impl IntoIterator<Item = Name>) {
    let p = fixture::dns_pipeline(zones);
    EVENT.with_borrow_mut(|ev| {
        let mut ask_about = |wire: &[u8], qtype: u16, edns: Option<(u16, bool, bool)>| {
            let packet = fixture::query_packet(0x5eed, wire, qtype, class::IN, edns);
            ask(&p, ev, &packet, Transport::Udp);
        };
        for name in names.into_iter().take(MOST_NAMES) {
            for qtype in [rtype::SOA, rtype::NS, rtype::DS, rtype::A, rtype::ANY] {
                ask_about(name.as_wire(), qtype, Some((1232, true, true)));
            }
            let mut below = b"\x03www".to_vec();
            below.extend_from_slice(name.as_wire());
            for qtype in [rtype::A, rtype::AAAA] {
                ask_about(&below, qtype, None);
            }
        }
    });
}

/// The names a change puts into DNS or takes out of it.
fn change_name(change: &Change) -> Option<Name> {
    match change {
        Change::Zone(z) => Some(z.name.clone()),
        Change::Domain(d) => Some(d.name.clone()),
        Change::Host(h) => Some(h.name.clone()),
        Change::ZoneRemoved(n) | Change::DomainRemoved(n) | Change::HostRemoved(n) => {
            Some(n.clone())
        }
        _ => None,
    }
}

// ────────────────────────────────── Whois and RDAP ──────────────────────────────────

/// The client address (first octet, [`fixture::peer`]) and the request (the rest).
fn split_request(input: &[u8]) -> (IpAddr, &[u8]) {
    match input.split_first() {
        Some((&first, rest)) => (fixture::peer(first), rest),
        None => (fixture::peer(0), input),
    }
}

/// Runs one request through the Whois/RDAP chain and renders it in `protocol`. Returns the
/// chain's outcome (`None` when a leaf dropped the request) and the rendered answer.
fn rds_request(
    protocol: Protocol,
    peer: IpAddr,
    request: &[u8],
) -> (Option<Outcome>, Option<rdap::Status>, Vec<u8>) {
    let p = fixture::rds_pipeline();
    let mut ev = p.take();
    ev.reset(peer, protocol);
    ev.request.extend_from_slice(request);
    let mut out = Vec::new();
    let (outcome, status) = p.handle(&mut ev, |ev, answered, ctx| {
        if !answered {
            return (None, None);
        }
        let status = match protocol {
            Protocol::Whois => {
                whois::render(ev, ctx, &mut out);
                None
            }
            Protocol::Rdap => Some(rdap::render(ev, ctx, fixture::RDAP_BASE, &mut out)),
        };
        (Some(ev.outcome), status)
    });
    p.put(ev);
    (outcome, status, out)
}

/// What the fixture's chain must decide for a client, whatever it asks: dropped from the
/// dropped prefix, refused from the refused one, and otherwise an outcome that is not a
/// server error (no leaf may leave a request undecided).
fn check_outcome(protocol: Protocol, peer: IpAddr, request: &[u8], outcome: Option<Outcome>) {
    let fail = |what: &str| -> ! {
        panic!(
            "{what}\n{protocol:?} from {peer}\nrequest {}\noutcome {outcome:?}",
            hex(request)
        )
    };
    let dropped = matches!(peer, IpAddr::V6(a) if a.segments()[..3] == [0x2001, 0xdb8, 0xbad]);
    let refused = matches!(peer, IpAddr::V4(a) if a.octets()[..3] == [198, 51, 100]);
    match outcome {
        None if dropped => {}
        None => fail("dropped by a chain whose only drop is an ACL"),
        Some(_) if dropped => fail("answered a client the ACL drops"),
        Some(Outcome::Refused) if refused => {}
        Some(_) if refused => fail("answered a client the ACL refuses"),
        Some(Outcome::Refused) => fail("refused a client no ACL refuses"),
        Some(Outcome::Pending | Outcome::ServerError) => fail("left undecided by the chain"),
        Some(_) => {}
    }
}

/// Target `whois_line`: a query line (any octets; the edge strips its line end) through the
/// Whois chain and renderer. The answer must be CRLF-terminated UTF-8 lines without other
/// control characters, so that no query can forge lines of an answer.
pub fn whois_line(input: &[u8]) {
    let (peer, line) = split_request(input);
    let (outcome, _, out) = rds_request(Protocol::Whois, peer, line);
    check_outcome(Protocol::Whois, peer, line, outcome);
    if outcome.is_none() {
        return;
    }
    let fail = |what: &str| -> ! {
        panic!(
            "{what}\nline   {}\nanswer {}",
            hex(line),
            String::from_utf8_lossy(&out)
        )
    };
    let Ok(text) = std::str::from_utf8(&out) else {
        fail("the answer is not UTF-8");
    };
    if !text.ends_with("\r\n") {
        fail("the answer does not end with CRLF");
    }
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let ok = match b {
            b'\r' => bytes.get(i + 1) == Some(&b'\n'),
            b'\n' => i > 0 && bytes[i - 1] == b'\r',
            b'\t' => true,
            _ => !b.is_ascii_control(),
        };
        if !ok {
            fail(&format!("control octet {b:#04x} at {i}"));
        }
    }
    for c in text.chars() {
        // C1 controls and the Unicode line and paragraph separators end lines too.
        if ('\u{80}'..='\u{9f}').contains(&c) || c == '\u{2028}' || c == '\u{2029}' {
            fail(&format!("control character {c:?}"));
        }
    }
}

/// Target `rdap_path`: a request path (any octets; hyper gives the edge the path without the
/// query string) through the RDAP chain and renderer. The answer must be a JSON object with
/// `rdapConformance`, with a status among those RDAP answers with (RFC 7480 §5), and an error
/// object's `errorCode` equal to the HTTP status (RFC 9083 §6).
pub fn rdap_path(input: &[u8]) {
    let (peer, path) = split_request(input);
    let (outcome, status, out) = rds_request(Protocol::Rdap, peer, path);
    check_outcome(Protocol::Rdap, peer, path, outcome);
    let Some(status) = status else {
        return;
    };
    let fail = |what: &str| -> ! {
        panic!(
            "{what}\npath   {}\nstatus {status:?}\nbody   {}",
            hex(path),
            String::from_utf8_lossy(&out)
        )
    };
    if ![200, 400, 403, 404, 429].contains(&status.code) {
        fail("an HTTP status RDAP does not answer with here");
    }
    if (status.code == 429) != status.retry_after.is_some() {
        fail("Retry-After without 429, or 429 without it");
    }
    let json: serde_json::Value = match serde_json::from_slice(&out) {
        Ok(v) => v,
        Err(e) => fail(&format!("the body is not JSON: {e}")),
    };
    let Some(object) = json.as_object() else {
        fail("the body is not a JSON object");
    };
    if !object
        .get("rdapConformance")
        .is_some_and(serde_json::Value::is_array)
    {
        fail("no rdapConformance array");
    }
    if status.code != 200
        && object.get("errorCode").and_then(serde_json::Value::as_u64) != Some(status.code.into())
    {
        fail("the errorCode is not the HTTP status");
    }
}

// ──────────────────────────────── state file ────────────────────────────────

/// Target `state_file`: the state file reader ([`orrery_proto::state_file`], format 4). The
/// first octet chooses what the target fixes before reading, so that mutations reach the
/// chunks instead of failing a checksum: bit 0 the header's CRC, bit 1 each chunk's CRC (for
/// every chunk whose length fits) and the trailer's checksum over the chunks. Reading must end
/// in a typed error or a whole registry; what reads must go back through the link's message
/// conversion unchanged, build the served tables and be served.
pub fn state_file(input: &[u8]) {
    use orrery_proto::state_file::{CHUNK_HEADER_LEN, HEADER_LEN, MAX_CHUNK, StateFileReader};
    let Some((&fix, file)) = input.split_first() else {
        return;
    };
    let mut bytes = file.to_vec();
    if fix & 1 != 0 && bytes.len() >= HEADER_LEN {
        let crc = crc32fast::hash(&bytes[..32]);
        bytes[32..36].copy_from_slice(&crc.to_le_bytes());
    }
    if fix & 2 != 0 {
        let mut at = HEADER_LEN;
        let mut all = crc32fast::Hasher::new();
        while at + CHUNK_HEADER_LEN <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let body = at + CHUNK_HEADER_LEN;
            if len == 0 {
                if body + 8 <= bytes.len() {
                    // The trailer: count (8 octets), then the checksum.
                    let end = (body + 12).min(bytes.len());
                    let sum = all.clone().finalize().to_le_bytes();
                    let n = end - (body + 8);
                    bytes[body + 8..end].copy_from_slice(&sum[..n]);
                }
                break;
            }
            if len > MAX_CHUNK || body + len > bytes.len() {
                break;
            }
            let crc = crc32fast::hash(&bytes[body..body + len]);
            bytes[at + 4..body].copy_from_slice(&crc.to_le_bytes());
            all.update(&bytes[at..body + len]);
            at = body + len;
        }
    }
    let Ok(reader) = StateFileReader::new(bytes.as_slice()) else {
        return;
    };
    let serial = reader.header().serial;
    let Ok(objects) = reader.collect::<Result<Vec<Change>, _>>() else {
        return;
    };
    for object in &objects {
        assert!(
            !object.is_removal(),
            "a removal read as an object\nfile {}",
            hex(&bytes)
        );
        let again = Change::try_from(pb::Change::from(object));
        if again.as_ref() != Ok(object) {
            panic!(
                "the link conversion does not round-trip {object:?}: {again:?}\nfile {}",
                hex(&bytes)
            );
        }
    }
    let data = SnapshotData::from_changes(serial, objects.iter().cloned());
    let names = names_of(&data);
    serve(ZoneSet::from_objects(serial, &objects), names);
}

/// The zones' apexes, then some domains, then hosts.
fn names_of(data: &SnapshotData) -> Vec<Name> {
    let zones = data
        .zones
        .iter()
        .map(|z| z.name.clone())
        .take(MOST_NAMES / 4);
    let domains = data
        .domains
        .iter()
        .map(|d| d.name.clone())
        .take(MOST_NAMES / 2);
    let hosts = data.hosts.iter().map(|h| h.name.clone());
    zones.chain(domains).chain(hosts).collect()
}

// ──────────────────────────────── link messages ────────────────────────────────

/// Target `link_message`: what the satellite decodes from the master, chosen by the first
/// octet: 0 a change-stream event, 1 a snapshot chunk, 2 a boot answer, 3 a satellite
/// configuration (also the `STATE.settings` file). What converts to the model must convert
/// back to a message that converts to the same model; a batch is applied to the registry and
/// a chunk's objects built into a zone set, then served.
pub fn link_message(input: &[u8]) {
    let Some((&kind, bytes)) = input.split_first() else {
        return;
    };
    match kind % 4 {
        0 => follow_event(bytes),
        1 => snapshot_chunk(bytes),
        2 => {
            if let Ok(boot) = pb::BootResponse::decode(bytes)
                && let Some(config) = boot.config
            {
                satellite_config(config, bytes);
            }
        }
        _ => {
            if let Ok(config) = pb::SatelliteConfig::decode(bytes) {
                satellite_config(config, bytes);
            }
        }
    }
}

fn follow_event(bytes: &[u8]) {
    let Ok(pb::FollowEvent {
        event: Some(follow_event::Event::Batch(message)),
    }) = pb::FollowEvent::decode(bytes)
    else {
        return;
    };
    let Ok(mut batch) = ChangeBatch::try_from(message) else {
        return;
    };
    match ChangeBatch::try_from(pb::ChangeBatch::from(&batch)) {
        Ok(again) if again == batch => {}
        other => panic!(
            "a batch converted back does not convert to itself: {other:?}\nmessage {}",
            hex(bytes)
        ),
    }
    // Follows the fixture's serial, so that mutations of the serials do not hide the changes.
    let mut zones = fixture::zones().clone();
    batch.after = zones.serial;
    if zones.apply(&batch).is_ok() {
        let apex = Name::from_ascii("tld").expect("valid");
        serve(
            zones,
            batch.changes.iter().filter_map(change_name).chain([apex]),
        );
    }
}

fn snapshot_chunk(bytes: &[u8]) {
    let Ok(message) = pb::SnapshotChunk::decode(bytes) else {
        return;
    };
    let Ok(chunk) = Chunk::try_from(message) else {
        return;
    };
    for object in &chunk.objects {
        match Change::try_from(pb::Change::from(object)) {
            Ok(again) if &again == object => {}
            other => panic!(
                "an object converted back does not convert to itself: {other:?}\nmessage {}",
                hex(bytes)
            ),
        }
    }
    let names: Vec<Name> = chunk.objects.iter().filter_map(change_name).collect();
    serve(ZoneSet::from_objects(chunk.serial, &chunk.objects), names);
}

fn satellite_config(message: pb::SatelliteConfig, bytes: &[u8]) {
    let Ok(settings) = SatelliteSettings::try_from(message) else {
        return;
    };
    match SatelliteSettings::try_from(pb::SatelliteConfig::from(&settings)) {
        Ok(again) if again == settings => {}
        other => panic!(
            "settings converted back do not convert to themselves: {other:?}\nmessage {}",
            hex(bytes)
        ),
    }
}
