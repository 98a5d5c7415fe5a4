//! TSIG (RFC 8945): finding and checking the signature of a request, signing the responses.
//!
//! ```text
//!  request ─▶ find the TSIG record (last in ADDITIONAL, only one; else FORMERR, §5.1)
//!               │ key name + algorithm not configured ──▶ NOTAUTH, BADKEY, unsigned (§5.2.1)
//!               │ MAC wrong ────────────────────────────▶ NOTAUTH, BADSIG, unsigned (§5.2.2)
//!               │ MAC shorter than allowed ─────────────▶ NOTAUTH, BADTRUNC, unsigned (§5.2.2.1)
//!               │ time signed ± fudge misses our clock ─▶ NOTAUTH, BADTIME, signed,
//!               ▼                                         our time in Other Data (§5.2.3)
//!            Signer: every response message signed; the first covers the request's MAC, each
//!            later one the MAC before it and only the timers (§5.3.1)
//! ```
//!
//! Every message of a transfer is signed (the RFC allows up to 99 unsigned in between; signing
//! each is simpler and costs one HMAC over a 16 KiB message). HMAC-SHA256 and HMAC-SHA512
//! come from `ring`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use orrery_proto::Name;
use orrery_proto::link::{TsigAlgorithm, TsigKey};
use orrery_proto::name::read_wire_name;
use ring::hmac;

use crate::dns::wire::{class, rtype};

/// TSIG error codes (RFC 8945 §3, the RCODE registry).
pub mod error {
    pub const BADSIG: u16 = 16;
    pub const BADKEY: u16 = 17;
    pub const BADTIME: u16 = 18;
    pub const BADTRUNC: u16 = 22;
}

/// The default fudge of signatures we make: 300 s, as RFC 8945 §10 recommends.
pub const FUDGE: u16 = 300;

/// Room a TSIG record of ours can take: key name (255), fixed fields (10), algorithm name
/// (13), time/fudge/size (10), MAC (64), original id/error/other length (6), Other Data (6).
pub const TSIG_ROOM: usize = 255 + 10 + 13 + 10 + 64 + 6 + 6;

/// A configured key, ready to sign.
pub struct Key {
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    hmac: hmac::Key,
}

impl Key {
    pub fn new(key: &TsigKey) -> Self {
        let algorithm = match key.algorithm {
            TsigAlgorithm::HmacSha256 => hmac::HMAC_SHA256,
            TsigAlgorithm::HmacSha512 => hmac::HMAC_SHA512,
        };
        Self {
            name: key.name.clone(),
            algorithm: key.algorithm,
            hmac: hmac::Key::new(algorithm, &key.secret),
        }
    }

    fn mac_len(&self) -> usize {
        self.hmac.algorithm().digest_algorithm().output_len()
    }
}

/// The algorithm's name in wire form (RFC 8945 §6).
fn algorithm_wire(a: TsigAlgorithm) -> &'static [u8] {
    match a {
        TsigAlgorithm::HmacSha256 => b"\x0bhmac-sha256\x00",
        TsigAlgorithm::HmacSha512 => b"\x0bhmac-sha512\x00",
    }
}

/// A TSIG record as found in a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsigRecord {
    /// Where the record starts: the message before it is what was signed.
    pub start: usize,
    pub key_name: Name,
    pub algorithm: Name,
    pub time_signed: u64,
    pub fudge: u16,
    pub mac: Vec<u8>,
    pub original_id: u16,
    pub error: u16,
    pub other: Vec<u8>,
}

/// A message whose records do not parse, or whose TSIG is not where it must be (FORMERR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// The TSIG record of `msg`, if it has one. It must be the last record of the additional
/// section, and the only one (RFC 8945 §5.1).
pub fn find(msg: &[u8]) -> Result<Option<TsigRecord>, Malformed> {
    let count = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]) as usize;
    if msg.len() < 12 {
        return Err(Malformed);
    }
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    let mut pos = 12;
    for _ in 0..qd {
        pos = read_wire_name(msg, pos, |_| {}).map_err(|_| Malformed)? + 4;
        if pos > msg.len() {
            return Err(Malformed);
        }
    }
    let records = an + ns + ar;
    let mut found = None;
    for i in 0..records {
        let start = pos;
        let end = read_wire_name(msg, pos, |_| {}).map_err(|_| Malformed)?;
        let fixed = msg.get(end..end + 10).ok_or(Malformed)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let rdata = end + 10;
        pos = rdata + rdlen;
        if pos > msg.len() {
            return Err(Malformed);
        }
        if rtype == rtype::TSIG {
            // Only as the last record, in the additional section.
            if i + 1 != records || ar == 0 {
                return Err(Malformed);
            }
            found = Some(parse(msg, start, rdata, pos)?);
        }
    }
    if pos != msg.len() {
        return Err(Malformed);
    }
    Ok(found)
}

/// Parses the TSIG record at `start` whose RDATA is `rdata..end`.
fn parse(msg: &[u8], start: usize, rdata: usize, end: usize) -> Result<TsigRecord, Malformed> {
    let (key_name, _) = Name::from_wire(msg, start).map_err(|_| Malformed)?;
    let rd = &msg[..end];
    let (algorithm, mut p) = Name::from_wire(rd, rdata).map_err(|_| Malformed)?;
    let mut take = |n: usize| -> Result<&[u8], Malformed> {
        let s = rd.get(p..p + n).ok_or(Malformed)?;
        p += n;
        Ok(s)
    };
    let t = take(6)?;
    let time_signed = t.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    let fudge = u16::from_be_bytes(take(2)?.try_into().map_err(|_| Malformed)?);
    let mac_len = u16::from_be_bytes(take(2)?.try_into().map_err(|_| Malformed)?) as usize;
    let mac = take(mac_len)?.to_vec();
    let original_id = u16::from_be_bytes(take(2)?.try_into().map_err(|_| Malformed)?);
    let error = u16::from_be_bytes(take(2)?.try_into().map_err(|_| Malformed)?);
    let other_len = u16::from_be_bytes(take(2)?.try_into().map_err(|_| Malformed)?) as usize;
    let other = take(other_len)?.to_vec();
    if p != end {
        return Err(Malformed);
    }
    Ok(TsigRecord {
        start,
        key_name,
        algorithm,
        time_signed,
        fudge,
        mac,
        original_id,
        error,
        other,
    })
}

/// Seconds since the epoch, as TSIG counts time (48 bits).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a signed request is not accepted: the TSIG error to answer with (NOTAUTH), and for
/// BADTIME the signer the answer is signed with.
pub struct Refusal {
    pub error: u16,
    /// The key and algorithm named by the request, echoed in the unsigned TSIG of BADKEY and
    /// BADSIG answers (§5.2.1).
    pub key_name: Name,
    pub algorithm: Name,
    pub signer: Option<Signer>,
    pub original_id: u16,
    /// The request's Time Signed, which a BADTIME answer repeats (as BIND does).
    pub time_signed: u64,
}

/// Checks the TSIG of a request `msg` against `keys` at time `now`; `Ok` with the signer for
/// the responses.
pub fn verify(
    keys: &[Arc<Key>],
    msg: &[u8],
    tsig: &TsigRecord,
    now: u64,
) -> Result<Signer, Refusal> {
    let refusal = |error, signer| Refusal {
        error,
        key_name: tsig.key_name.clone(),
        algorithm: tsig.algorithm.clone(),
        signer,
        original_id: tsig.original_id,
        time_signed: tsig.time_signed,
    };
    let algorithm = TsigAlgorithm::from_name(&tsig.algorithm.to_string());
    let Some(key) = keys
        .iter()
        .find(|k| k.name == tsig.key_name && Some(k.algorithm) == algorithm)
    else {
        return Err(refusal(error::BADKEY, None));
    };
    let full = key.mac_len();
    // §5.2.2.1: a MAC may be truncated to half the hash (at least 10 octets), no further.
    if tsig.mac.len() > full || tsig.mac.len() < (full / 2).max(10) {
        return Err(refusal(error::BADTRUNC, None));
    }
    let mut ctx = hmac::Context::with_key(&key.hmac);
    // The message as signed: without the TSIG record, ARCOUNT one less, the original ID.
    let mut header = [0u8; 12];
    header.copy_from_slice(&msg[..12]);
    header[..2].copy_from_slice(&tsig.original_id.to_be_bytes());
    let ar = u16::from_be_bytes([header[10], header[11]]).wrapping_sub(1);
    header[10..12].copy_from_slice(&ar.to_be_bytes());
    ctx.update(&header);
    ctx.update(&msg[12..tsig.start]);
    variables(
        &mut ctx,
        key,
        tsig.time_signed,
        tsig.fudge,
        tsig.error,
        &tsig.other,
    );
    let tag = ctx.sign();
    if !constant_time_eq(&tag.as_ref()[..tsig.mac.len()], &tsig.mac) {
        return Err(refusal(error::BADSIG, None));
    }
    let signer = Signer {
        key: Arc::clone(key),
        prior_mac: tsig.mac.clone(),
        first: true,
        original_id: tsig.original_id,
    };
    // §5.2.3: the time is checked after the MAC, and a BADTIME answer is signed.
    if now.abs_diff(tsig.time_signed) > u64::from(tsig.fudge) {
        return Err(refusal(error::BADTIME, Some(signer)));
    }
    Ok(signer)
}

/// The TSIG variables of RFC 8945 §4.3.3, in canonical form.
fn variables(
    ctx: &mut hmac::Context,
    key: &Key,
    time_signed: u64,
    fudge: u16,
    error: u16,
    other: &[u8],
) {
    ctx.update(key.name.as_wire());
    ctx.update(&class::ANY.to_be_bytes());
    ctx.update(&0u32.to_be_bytes());
    ctx.update(algorithm_wire(key.algorithm));
    timers(ctx, time_signed, fudge);
    ctx.update(&error.to_be_bytes());
    ctx.update(&(other.len() as u16).to_be_bytes());
    ctx.update(other);
}

fn timers(ctx: &mut hmac::Context, time_signed: u64, fudge: u16) {
    ctx.update(&time_signed.to_be_bytes()[2..]);
    ctx.update(&fudge.to_be_bytes());
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Signs the messages of one answer (one or many, §5.3.1), or one request (NOTIFY).
pub struct Signer {
    key: Arc<Key>,
    /// The MAC the next signature covers: the request's, then each message's own.
    prior_mac: Vec<u8>,
    /// The next message is the first answer (full variables) rather than a later one.
    first: bool,
    original_id: u16,
}

impl Signer {
    /// A signer for a request of ours (a NOTIFY): no prior MAC, full variables.
    pub fn for_request(key: Arc<Key>, id: u16) -> Self {
        Self {
            key,
            prior_mac: Vec::new(),
            first: true,
            original_id: id,
        }
    }

    /// The key signing.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Appends a TSIG record to the finished message `msg` (header included, ARCOUNT is
    /// incremented), signed at `time_signed`, with TSIG `error` and `other` data (a BADTIME
    /// answer's server time).
    pub fn sign(&mut self, msg: &mut Vec<u8>, time_signed: u64, error: u16, other: &[u8]) {
        self.sign_at(msg, 0, time_signed, error, other);
    }

    /// [`Signer::sign`] for a message that starts at `at` in `msg` (after its TCP length).
    pub fn sign_at(
        &mut self,
        msg: &mut Vec<u8>,
        at: usize,
        time_signed: u64,
        error: u16,
        other: &[u8],
    ) {
        let mut ctx = hmac::Context::with_key(&self.key.hmac);
        if !self.prior_mac.is_empty() {
            ctx.update(&(self.prior_mac.len() as u16).to_be_bytes());
            ctx.update(&self.prior_mac);
        }
        ctx.update(&msg[at..]);
        if self.first {
            variables(&mut ctx, &self.key, time_signed, FUDGE, error, other);
        } else {
            timers(&mut ctx, time_signed, FUDGE);
        }
        let tag = ctx.sign();
        self.first = false;
        self.prior_mac.clear();
        self.prior_mac.extend_from_slice(tag.as_ref());
        let mac = tag.as_ref().to_vec();
        write_record(
            msg,
            at,
            &self.key.name,
            algorithm_wire(self.key.algorithm),
            time_signed,
            &mac,
            self.original_id,
            error,
            other,
        );
    }
}

/// Appends an unsigned TSIG record (empty MAC): the answer to a request whose key or MAC is
/// wrong (§5.2.1, §5.2.2), naming the key and algorithm the request named.
pub fn append_unsigned(msg: &mut Vec<u8>, at: usize, refusal: &Refusal, time_signed: u64) {
    write_record(
        msg,
        at,
        &refusal.key_name,
        refusal.algorithm.as_wire(),
        time_signed,
        &[],
        refusal.original_id,
        refusal.error,
        &[],
    );
}

#[allow(clippy::too_many_arguments)]
fn write_record(
    msg: &mut Vec<u8>,
    at: usize,
    key_name: &Name,
    algorithm: &[u8],
    time_signed: u64,
    mac: &[u8],
    original_id: u16,
    error: u16,
    other: &[u8],
) {
    msg.extend_from_slice(key_name.as_wire());
    msg.extend_from_slice(&rtype::TSIG.to_be_bytes());
    msg.extend_from_slice(&class::ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    let rdlen = algorithm.len() + 6 + 2 + 2 + mac.len() + 2 + 2 + 2 + other.len();
    msg.extend_from_slice(&(rdlen as u16).to_be_bytes());
    msg.extend_from_slice(algorithm);
    msg.extend_from_slice(&time_signed.to_be_bytes()[2..]);
    msg.extend_from_slice(&FUDGE.to_be_bytes());
    msg.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    msg.extend_from_slice(mac);
    msg.extend_from_slice(&original_id.to_be_bytes());
    msg.extend_from_slice(&error.to_be_bytes());
    msg.extend_from_slice(&(other.len() as u16).to_be_bytes());
    msg.extend_from_slice(other);
    let ar = u16::from_be_bytes([msg[at + 10], msg[at + 11]]) + 1;
    msg[at + 10..at + 12].copy_from_slice(&ar.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &[u8]) -> Arc<Key> {
        Arc::new(Key::new(&TsigKey {
            name: Name::from_ascii("xfr-key").unwrap(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: secret.to_vec(),
        }))
    }

    /// A request signed by our own signer verifies, and every way of spoiling it is found:
    /// another key name, a flipped MAC bit, a flipped message bit, a stale time.
    #[test]
    fn signed_requests_verify_and_spoiled_ones_do_not() {
        let k = key(b"0123456789abcdef0123456789abcdef");
        let keys = [k];
        let mut msg = crate::dns::wire::tests::query_packet("tld", rtype::AXFR, 1, None);
        Signer::for_request(Arc::clone(&keys[0]), 0x1234).sign(&mut msg, 1_000_000, 0, &[]);
        let tsig = find(&msg).unwrap().unwrap();
        assert_eq!(tsig.mac.len(), 32);
        assert!(verify(&keys, &msg, &tsig, 1_000_100).is_ok());
        let e = verify(&keys, &msg, &tsig, 1_000_301).err().unwrap();
        assert_eq!(e.error, error::BADTIME);
        assert!(e.signer.is_some(), "BADTIME answers are signed");
        let mut bad = msg.clone();
        bad[tsig.start + 1 + 2] ^= 1; // the key's name
        let t = find(&bad).unwrap().unwrap();
        assert_eq!(
            verify(&keys, &bad, &t, 1_000_000).err().unwrap().error,
            error::BADKEY
        );
        let mut bad = msg.clone();
        let last = bad.len() - 7; // inside the MAC
        bad[last] ^= 1;
        let t = find(&bad).unwrap().unwrap();
        assert_eq!(
            verify(&keys, &bad, &t, 1_000_000).err().unwrap().error,
            error::BADSIG
        );
        let mut bad = msg.clone();
        bad[13] ^= 0x20; // the question's case
        let t = find(&bad).unwrap().unwrap();
        assert_eq!(
            verify(&keys, &bad, &t, 1_000_000).err().unwrap().error,
            error::BADSIG
        );
        let other = [key(b"another secret, 16+ octets long!")];
        assert_eq!(
            verify(&other, &msg, &tsig, 1_000_000).err().unwrap().error,
            error::BADSIG
        );
    }

    /// A request `dig -y hmac-sha256:xfr-key:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ== -t AXFR tld`
    /// sent (BIND 9.18, captured from the socket): our verification of another
    /// implementation's MAC.
    #[test]
    fn verifies_a_request_signed_by_dig() {
        let msg = hex(DIG_AXFR);
        let k = key(b"secret-secret-secret-secret!");
        let keys = [k];
        let tsig = find(&msg).unwrap().unwrap();
        assert_eq!(tsig.key_name, Name::from_ascii("xfr-key").unwrap());
        let signer = verify(&keys, &msg, &tsig, tsig.time_signed);
        assert!(signer.is_ok(), "dig's MAC verifies");
        let wrong = [key(b"secret-secret-secret-secret?")];
        assert_eq!(
            verify(&wrong, &msg, &tsig, tsig.time_signed)
                .err()
                .unwrap()
                .error,
            error::BADSIG
        );
    }

    #[test]
    fn misplaced_or_broken_tsig_records_are_malformed() {
        let k = key(b"0123456789abcdef0123456789abcdef");
        let mut msg = crate::dns::wire::tests::query_packet("tld", rtype::AXFR, 1, None);
        Signer::for_request(k, 1).sign(&mut msg, 5, 0, &[]);
        for cut in [msg.len() - 1, msg.len() - 20, 40] {
            assert_eq!(find(&msg[..cut]), Err(Malformed), "cut at {cut}");
        }
        // Moved to the answer section: ANCOUNT 1, ARCOUNT 0.
        let mut moved = msg.clone();
        moved[7] = 1;
        moved[11] = 0;
        assert_eq!(find(&moved), Err(Malformed));
        let plain = crate::dns::wire::tests::query_packet("tld", rtype::AXFR, 1, None);
        assert_eq!(find(&plain), Ok(None));
    }

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text
            .bytes()
            .filter(u8::is_ascii_hexdigit)
            .map(|b| (b as char).to_digit(16).unwrap() as u8)
            .collect();
        digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
    }

    const DIG_AXFR: &str = "1e870020000100000000000203746c640000fc000100002904d000000000000c000a00080d8be68720e41726077866722d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b0f01e4012c00202721c315e98aa05a1fd8319bb570f05118c4b7585d72713e16dd67f737cde1c31e8700000000";
}
