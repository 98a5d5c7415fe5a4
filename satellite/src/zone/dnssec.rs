//! A signed zone's DNSSEC records as the satellite holds them (issue 13, serving).
//!
//! The master sends, beside the objects, one [`DnssecRrset`] per (owner, type, covered type):
//! the zone's DNSKEY and NSEC3PARAM, each NSEC or NSEC3 record, and the RRSIGs over every
//! authoritative RRset. The satellite keeps deriving SOA, NS, DS and glue from the objects and
//! holds these sets, in canonical RDATA, ready to copy into answers:
//! - [`Signed::sets`]: every set by owner, in a [`NameMap`] (compact, copy-on-write, one probe):
//!   the payload of an owner is its sets one after the other (`type, covered, TTL, count`,
//!   then each RDATA with its length). The apex's DNSKEY and its RRSIGs, a delegation's
//!   RRSIG(DS), an authoritative name's RRSIG(A), and an NSEC3 record (at its hashed owner)
//!   with its RRSIG are all found there.
//! - [`Nsec3Chain`]: the NSEC3 owners' 20-byte hashes, sorted, in 256 copy-on-write shards by
//!   the first byte, so that matching and covering a hash is a binary search, and a batch
//!   copies only the shards whose records it changes. The apex's and the apex wildcard's
//!   hashes are computed once when the NSEC3PARAM arrives; a query hashes at most the names
//!   its proof needs that are not these (the next closer name of an NXDOMAIN, deeper names).
//! - [`NsecChain`]: for NSEC zones (small by policy), the owners in canonical order (RFC 4034
//!   §6.1), one copy-on-write vector, binary-searched for the NSEC that covers a name.

use std::cmp::Ordering;
use std::sync::Arc;

use orrery_proto::dnssec::{DnssecRrset, DnssecRrsetId, rrset_type};
use ring::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY};

use super::table::NameMap;

/// An NSEC3 hash (SHA-1, RFC 5155 §5).
pub type Hash = [u8; 20];

/// Most labels a 255-octet name can have.
const MAX_LABELS: usize = 128;

/// Length of the fixed head of a set in an owner's payload: type, covered, TTL, count.
const SET_HEAD: usize = 10;

/// One DNSSEC RRset as held: its TTL and RDATA (canonical wire form).
#[derive(Clone, Copy, Debug)]
pub struct Set<'a> {
    pub ttl: u32,
    count: u16,
    rdata: &'a [u8],
}

impl<'a> Set<'a> {
    /// Each record's RDATA, in canonical order.
    pub fn rdatas(&self) -> RdataIter<'a> {
        RdataIter {
            left: self.count,
            rest: self.rdata,
        }
    }
}

/// The RDATA of a [`Set`].
#[derive(Clone, Debug)]
pub struct RdataIter<'a> {
    left: u16,
    rest: &'a [u8],
}

impl<'a> Iterator for RdataIter<'a> {
    type Item = &'a [u8];
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 || self.rest.len() < 2 {
            return None;
        }
        let len = u16::from_be_bytes([self.rest[0], self.rest[1]]) as usize;
        let (rd, rest) = self.rest[2..].split_at(len.min(self.rest.len() - 2));
        self.left -= 1;
        self.rest = rest;
        Some(rd)
    }
}

/// The set (`rtype`, `covered`) of an owner's payload.
fn find_set(payload: &[u8], rtype: u16, covered: u16) -> Option<Set<'_>> {
    sets_of(payload)
        .find(|&(t, c, _)| t == rtype && c == covered)
        .map(|(_, _, set)| set)
}

/// Every set of an owner's payload: its type, covered type and records.
fn sets_of(payload: &[u8]) -> impl Iterator<Item = (u16, u16, Set<'_>)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos + SET_HEAD > payload.len() {
            return None;
        }
        let head = &payload[pos..pos + SET_HEAD];
        let t = u16::from_be_bytes([head[0], head[1]]);
        let c = u16::from_be_bytes([head[2], head[3]]);
        let ttl = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let count = u16::from_be_bytes([head[8], head[9]]);
        let len = set_len(&payload[pos..], count);
        let set = Set {
            ttl,
            count,
            rdata: &payload[pos + SET_HEAD..pos + len],
        };
        pos += len;
        Some((t, c, set))
    })
}

/// Bytes of the set starting `payload` (its head included), given its record count.
fn set_len(payload: &[u8], count: u16) -> usize {
    let mut len = SET_HEAD;
    for _ in 0..count {
        let Some(l) = payload.get(len..len + 2) else {
            return payload.len();
        };
        len += 2 + u16::from_be_bytes([l[0], l[1]]) as usize;
    }
    len.min(payload.len())
}

/// `payload` with the set (`rtype`, `covered`) replaced by `set` (or removed when `None`).
fn rewrite_payload(payload: &[u8], rtype: u16, covered: u16, set: Option<&DnssecRrset>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 64);
    let mut pos = 0;
    while pos + SET_HEAD <= payload.len() {
        let head = &payload[pos..pos + SET_HEAD];
        let t = u16::from_be_bytes([head[0], head[1]]);
        let c = u16::from_be_bytes([head[2], head[3]]);
        let count = u16::from_be_bytes([head[8], head[9]]);
        let len = set_len(&payload[pos..], count);
        if (t, c) != (rtype, covered) {
            out.extend_from_slice(&payload[pos..pos + len]);
        }
        pos += len;
    }
    if let Some(set) = set {
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&covered.to_be_bytes());
        out.extend_from_slice(&set.ttl.to_be_bytes());
        // proto checked each RDATA (≤ 65,535 octets); a set of more records than a message
        // could hold is cut.
        let count = set.rdata.len().min(u16::MAX as usize);
        out.extend_from_slice(&(count as u16).to_be_bytes());
        for rd in &set.rdata[..count] {
            out.extend_from_slice(&(rd.len() as u16).to_be_bytes());
            out.extend_from_slice(rd);
        }
    }
    out
}

/// The NSEC3 hash parameters of a zone, from its NSEC3PARAM (RFC 5155 §4).
#[derive(Clone, Debug, Default)]
struct Nsec3Params {
    iterations: u16,
    salt: Box<[u8]>,
    /// H(apex) and H(*.apex): the closest encloser and the wildcard of most proofs in a TLD.
    apex_hash: Hash,
    wildcard_hash: Hash,
}

/// IH(salt, name, iterations) of RFC 5155 §5 over a canonical wire name: no allocation
/// (ring's SHA-1 context lives on the stack). The same function as `orrery_signer::nsec3::hash`,
/// on wire bytes rather than a `Name`, so the satellite does not link the signer.
pub fn nsec3_hash(name: &[u8], salt: &[u8], iterations: u16) -> Hash {
    let once = |data: &[u8]| {
        let mut ctx = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(data);
        ctx.update(salt);
        let mut out = [0u8; 20];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    };
    let mut h = once(name);
    for _ in 0..iterations {
        h = once(&h);
    }
    h
}

const BASE32HEX: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// Writes `\x20<base32hex(hash)>` followed by `apex` into `out`: the NSEC3 owner of `hash`.
/// Returns its length, or `None` if it would exceed 255 octets.
pub fn nsec3_owner(hash: &Hash, apex: &[u8], out: &mut [u8; 255]) -> Option<usize> {
    let len = 33 + apex.len();
    if len > 255 {
        return None;
    }
    out[0] = 32;
    for (c, chunk) in hash.chunks(5).enumerate() {
        let v = chunk.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        for i in 0..8 {
            out[1 + 8 * c + i] = BASE32HEX[(v >> (35 - 5 * i) & 31) as usize];
        }
    }
    out[33..len].copy_from_slice(apex);
    Some(len)
}

/// The hash a hashed owner's first label spells (`None` unless 32 base32hex characters).
fn hash_of_owner(owner: &[u8]) -> Option<Hash> {
    if owner.first() != Some(&32) || owner.len() < 33 {
        return None;
    }
    let mut out = [0u8; 20];
    for (c, chunk) in owner[1..33].chunks(8).enumerate() {
        let mut v = 0u64;
        for &ch in chunk {
            let d = match ch {
                b'0'..=b'9' => ch - b'0',
                b'a'..=b'v' => ch - b'a' + 10,
                _ => return None,
            };
            v = v << 5 | u64::from(d);
        }
        out[5 * c..5 * c + 5].copy_from_slice(&v.to_be_bytes()[3..8]);
    }
    Some(out)
}

/// The NSEC3 chain: owner hashes, sorted, in 256 shards by first octet (see the module docs).
#[derive(Clone, Debug)]
pub struct Nsec3Chain {
    shards: Box<[Arc<Vec<Hash>>]>,
    len: usize,
}

impl Default for Nsec3Chain {
    fn default() -> Self {
        let empty = Arc::new(Vec::new());
        Self {
            shards: (0..256).map(|_| empty.clone()).collect(),
            len: 0,
        }
    }
}

impl Nsec3Chain {
    fn insert(&mut self, h: Hash) {
        let shard = Arc::make_mut(&mut self.shards[h[0] as usize]);
        if let Err(i) = shard.binary_search(&h) {
            shard.insert(i, h);
            self.len += 1;
        }
    }

    fn remove(&mut self, h: &Hash) {
        if self.shards[h[0] as usize].binary_search(h).is_err() {
            return;
        }
        let shard = Arc::make_mut(&mut self.shards[h[0] as usize]);
        if let Ok(i) = shard.binary_search(h) {
            shard.remove(i);
            self.len -= 1;
        }
    }

    /// Number of hashed owners.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the chain is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when `h` is an owner hash.
    #[inline]
    pub fn matches(&self, h: &Hash) -> bool {
        self.shards[h[0] as usize].binary_search(h).is_ok()
    }

    /// The owner hash whose NSEC3 covers `h` (RFC 5155 §3.1.7: the greatest one below `h`,
    /// or the last one when `h` is below every owner, the chain wrapping around).
    #[inline]
    pub fn covering(&self, h: &Hash) -> Option<&Hash> {
        let first = h[0] as usize;
        let shard = &self.shards[first];
        let i = match shard.binary_search(h) {
            Ok(i) | Err(i) => i,
        };
        if i > 0 {
            return shard.get(i - 1);
        }
        // The greatest owner in an earlier shard, else in the last non-empty one (wrap).
        (0..first)
            .rev()
            .chain((first..256).rev())
            .find_map(|s| self.shards[s].last())
    }

    /// Bytes held (for the memory figures).
    pub fn heap_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.capacity() * 20).sum()
    }
}

/// Compares two canonical wire names in DNSSEC canonical order (RFC 4034 §6.1): label by label
/// from the rightmost, each as an octet string. No allocation (label offsets on the stack).
pub fn canonical_cmp(a: &[u8], b: &[u8]) -> Ordering {
    fn starts(name: &[u8], out: &mut [u8; MAX_LABELS]) -> usize {
        let (mut pos, mut n) = (0, 0);
        while pos < name.len() && name[pos] != 0 && n < MAX_LABELS {
            out[n] = pos as u8;
            n += 1;
            pos += 1 + name[pos] as usize;
        }
        n
    }
    fn label(name: &[u8], s: u8) -> &[u8] {
        let s = s as usize;
        let l = name[s] as usize;
        &name[(s + 1).min(name.len())..(s + 1 + l).min(name.len())]
    }
    let (mut sa, mut sb) = ([0u8; MAX_LABELS], [0u8; MAX_LABELS]);
    let (na, nb) = (starts(a, &mut sa), starts(b, &mut sb));
    for k in 1..=na.min(nb) {
        let ord = label(a, sa[na - k]).cmp(label(b, sb[nb - k]));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    na.cmp(&nb)
}

/// The NSEC owners of a zone in canonical order.
#[derive(Clone, Debug, Default)]
pub struct NsecChain {
    owners: Arc<Vec<Box<[u8]>>>,
}

impl NsecChain {
    fn search(&self, name: &[u8]) -> Result<usize, usize> {
        self.owners.binary_search_by(|o| canonical_cmp(o, name))
    }

    fn insert(&mut self, name: &[u8]) {
        if let Err(i) = self.search(name) {
            Arc::make_mut(&mut self.owners).insert(i, name.into());
        }
    }

    fn remove(&mut self, name: &[u8]) {
        if let Ok(i) = self.search(name) {
            Arc::make_mut(&mut self.owners).remove(i);
        }
    }

    /// The owner of the NSEC that matches or covers `name`: the greatest owner at or before it
    /// in canonical order (the apex is first, so every name in the zone has one).
    #[inline]
    pub fn covering(&self, name: &[u8]) -> Option<&[u8]> {
        match self.search(name) {
            Ok(i) => Some(&self.owners[i]),
            Err(0) => self.owners.last().map(|o| &o[..]),
            Err(i) => Some(&self.owners[i - 1]),
        }
    }

    /// Number of NSEC owners.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// True when the chain is empty.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }
}

/// How a signed zone denies existence, as its records say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    Nsec3,
    Nsec,
}

/// A zone's DNSSEC records (see the module docs). Empty for an unsigned zone.
#[derive(Clone, Debug, Default)]
pub struct Signed {
    sets: NameMap<()>,
    nsec3: Nsec3Chain,
    nsec: NsecChain,
    params: Option<Nsec3Params>,
    /// Owners with a DNSKEY set: the apex, when the zone is signed.
    dnskey: u32,
}

impl Signed {
    /// True when the zone is signed (its DNSKEY RRset is held) and DO answers carry DNSSEC.
    #[inline]
    pub fn is_signed(&self) -> bool {
        self.dnskey > 0
    }

    /// The zone's denial of existence: NSEC3 when an NSEC3PARAM is held, else NSEC.
    #[inline]
    pub fn denial(&self) -> Denial {
        if self.params.is_some() {
            Denial::Nsec3
        } else {
            Denial::Nsec
        }
    }

    /// The set (`rtype`, `covered`) at `owner` (canonical wire).
    #[inline]
    pub fn set(&self, owner: &[u8], rtype: u16, covered: u16) -> Option<Set<'_>> {
        find_set(self.sets.get(owner)?.payload(), rtype, covered)
    }

    /// The RRSIGs over `covered` at `owner`.
    #[inline]
    pub fn rrsig(&self, owner: &[u8], covered: u16) -> Option<Set<'_>> {
        self.set(owner, rrset_type::RRSIG, covered)
    }

    /// The NSEC3 hash of `name`: precomputed for the apex and its wildcard, else SHA-1 now.
    #[inline]
    pub fn hash(&self, apex: &[u8], name: &[u8]) -> Hash {
        let Some(p) = &self.params else {
            return [0; 20];
        };
        if name == apex {
            return p.apex_hash;
        }
        if name.len() == apex.len() + 2 && name.starts_with(b"\x01*") && &name[2..] == apex {
            return p.wildcard_hash;
        }
        nsec3_hash(name, &p.salt, p.iterations)
    }

    /// The NSEC3 chain.
    pub fn nsec3(&self) -> &Nsec3Chain {
        &self.nsec3
    }

    /// The NSEC chain.
    pub fn nsec(&self) -> &NsecChain {
        &self.nsec
    }

    /// Visits every set at `owner` (canonical wire): type, covered type (RRSIG) and records.
    pub fn sets_at(&self, owner: &[u8], mut visit: impl FnMut(u16, u16, Set<'_>)) {
        if let Some(entry) = self.sets.get(owner) {
            for (t, c, set) in sets_of(entry.payload()) {
                visit(t, c, set);
            }
        }
    }

    /// Visits every set of the zone with its owner (the order of the set map, not canonical).
    pub fn each_set(&self, mut visit: impl FnMut(&[u8], u16, u16, Set<'_>)) {
        for entry in self.sets.iter() {
            for (t, c, set) in sets_of(entry.payload()) {
                visit(entry.name(), t, c, set);
            }
        }
    }

    /// Number of owners with sets.
    pub fn owner_count(&self) -> usize {
        self.sets.len()
    }

    /// Sets or replaces one RRset; `apex` is the zone's (canonical wire).
    pub(super) fn put(&mut self, apex: &[u8], set: &DnssecRrset) {
        self.change(apex, &set.id, Some(set));
    }

    /// Sets or replaces many RRsets at once (a snapshot's or a state file's): the set map is
    /// sized for them first, and NSEC owners are sorted into the chain once at the end rather
    /// than inserted one by one (each insert into the sorted vector moves its tail).
    pub(super) fn put_all<'a>(
        &mut self,
        apex: &[u8],
        sets: impl ExactSizeIterator<Item = &'a DnssecRrset>,
    ) {
        self.reserve(sets.len());
        let mut nsec = Vec::new();
        for set in sets {
            self.change_deferring(apex, &set.id, Some(set), Some(&mut nsec));
        }
        if !nsec.is_empty() {
            let owners = Arc::make_mut(&mut self.nsec.owners);
            owners.extend(nsec);
            owners.sort_by(|a, b| canonical_cmp(a, b));
            owners.dedup();
        }
    }

    /// Makes room in the set map for about `additional` more owners ([`NameMap::reserve`]).
    pub(super) fn reserve(&mut self, additional: usize) {
        self.sets.reserve(additional);
    }

    /// Removes one RRset.
    pub(super) fn remove(&mut self, apex: &[u8], id: &DnssecRrsetId) {
        self.change(apex, id, None);
    }

    fn change(&mut self, apex: &[u8], id: &DnssecRrsetId, set: Option<&DnssecRrset>) {
        self.change_deferring(apex, id, set, None);
    }

    /// [`Signed::change`]; an NSEC owner added goes to `nsec_added`, when given, for the caller
    /// to sort into the chain, instead of into the chain.
    fn change_deferring(
        &mut self,
        apex: &[u8],
        id: &DnssecRrsetId,
        set: Option<&DnssecRrset>,
        nsec_added: Option<&mut Vec<Box<[u8]>>>,
    ) {
        let owner = id.owner.as_wire();
        let old = self.sets.get(owner).map(|f| f.payload());
        let had = old.is_some_and(|p| find_set(p, id.rtype, id.covered).is_some());
        let payload = rewrite_payload(old.unwrap_or(&[]), id.rtype, id.covered, set);
        if payload.is_empty() {
            self.sets.remove(owner);
        } else {
            self.sets.insert(owner, &payload, ());
        }
        let added = set.is_some() && !had;
        let removed = set.is_none() && had;
        match id.rtype {
            rrset_type::DNSKEY if added => self.dnskey += 1,
            rrset_type::DNSKEY if removed => self.dnskey -= 1,
            rrset_type::NSEC3 => match hash_of_owner(owner) {
                Some(h) if set.is_some() => self.nsec3.insert(h),
                Some(h) => self.nsec3.remove(&h),
                None => tracing::warn!(
                    "NSEC3 at {} whose owner is not a hash: held but not in the chain",
                    id.owner
                ),
            },
            rrset_type::NSEC if set.is_some() => match nsec_added {
                Some(added) => added.push(owner.into()),
                None => self.nsec.insert(owner),
            },
            rrset_type::NSEC => self.nsec.remove(owner),
            rrset_type::NSEC3PARAM if owner == apex => {
                self.params = set.and_then(|s| parse_nsec3param(apex, s.rdata.first()?));
            }
            _ => {}
        }
    }

    /// Seals the set map after a batch.
    pub(super) fn seal(&mut self) {
        self.sets.seal();
    }

    /// Bytes held beside the objects (approximate: arenas and chains), for the memory figures.
    pub fn heap_bytes(&self) -> usize {
        self.sets
            .iter()
            .map(|f| f.name().len() + f.payload().len() + 16)
            .sum::<usize>()
            + self.nsec3.heap_bytes()
            + self.nsec.owners.iter().map(|o| o.len() + 16).sum::<usize>()
    }
}

/// Reads an NSEC3PARAM RDATA (hash algorithm, flags, iterations, salt) and precomputes the
/// apex's and the apex wildcard's hashes. `None` for a hash algorithm other than SHA-1.
fn parse_nsec3param(apex: &[u8], rd: &[u8]) -> Option<Nsec3Params> {
    // proto checked the length against the salt length.
    if rd.len() < 5 || rd[0] != 1 {
        return None;
    }
    let iterations = u16::from_be_bytes([rd[2], rd[3]]);
    let salt: Box<[u8]> = rd[5..5 + rd[4] as usize].into();
    let mut wildcard = Vec::with_capacity(apex.len() + 2);
    wildcard.extend_from_slice(b"\x01*");
    wildcard.extend_from_slice(apex);
    Some(Nsec3Params {
        iterations,
        apex_hash: nsec3_hash(apex, &salt, iterations),
        wildcard_hash: nsec3_hash(&wildcard, &salt, iterations),
        salt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u8> {
        orrery_proto::Name::from_ascii(s)
            .unwrap()
            .as_wire()
            .to_vec()
    }

    #[test]
    fn hash_and_owner_match_rfc5155_appendix_a() {
        // RFC 5155 Appendix A: H(example) with salt aabbccdd, 12 iterations.
        let h = nsec3_hash(&w("example"), &[0xaa, 0xbb, 0xcc, 0xdd], 12);
        let mut out = [0u8; 255];
        let len = nsec3_owner(&h, &w("example"), &mut out).unwrap();
        assert_eq!(
            &out[..len],
            &w("0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example")[..]
        );
        assert_eq!(hash_of_owner(&out[..len]), Some(h));
        assert_eq!(
            hash_of_owner(&w("0p9mhaveqvm6t7vbl5lop2u3t2rp3toz.example")),
            None
        );
    }

    #[test]
    fn canonical_order_is_rfc4034_6_1() {
        // RFC 4034 §6.1's example, in order.
        let names = [
            "example",
            "a.example",
            "yljkjljk.a.example",
            "z.a.example",
            "zabc.a.example",
            "z.example",
            "*.z.example",
        ];
        for pair in names.windows(2) {
            assert_eq!(
                canonical_cmp(&w(pair[0]), &w(pair[1])),
                Ordering::Less,
                "{pair:?}"
            );
            assert_eq!(canonical_cmp(&w(pair[1]), &w(pair[0])), Ordering::Greater);
        }
        assert_eq!(
            canonical_cmp(&w("a.example"), &w("a.example")),
            Ordering::Equal
        );
        // \001.z.example sorts after *.z.example (0x01 < 0x2a is false: \200 case aside).
        let mut chain = NsecChain::default();
        for n in names.iter().rev() {
            chain.insert(&w(n));
        }
        assert_eq!(
            chain.covering(&w("b.example")).unwrap(),
            &w("zabc.a.example")[..]
        );
        assert_eq!(
            chain.covering(&w("a.example")).unwrap(),
            &w("a.example")[..]
        );
        assert_eq!(
            chain.covering(&w("zz.example")).unwrap(),
            &w("*.z.example")[..]
        );
        chain.remove(&w("zabc.a.example"));
        assert_eq!(
            chain.covering(&w("b.example")).unwrap(),
            &w("z.a.example")[..]
        );
    }

    #[test]
    fn nsec3_chain_matches_and_covers_across_shards_and_wraps() {
        let mut c = Nsec3Chain::default();
        let h = |a: u8, b: u8| {
            let mut x = [0u8; 20];
            x[0] = a;
            x[1] = b;
            x
        };
        for x in [h(0x10, 5), h(0x10, 9), h(0x80, 0), h(0xf0, 1)] {
            c.insert(x);
        }
        assert_eq!(c.len(), 4);
        assert!(c.matches(&h(0x10, 9)));
        assert!(!c.matches(&h(0x10, 8)));
        assert_eq!(c.covering(&h(0x10, 8)), Some(&h(0x10, 5)));
        assert_eq!(c.covering(&h(0x10, 10)), Some(&h(0x10, 9)));
        assert_eq!(c.covering(&h(0x70, 0)), Some(&h(0x10, 9)));
        assert_eq!(c.covering(&h(0xff, 0)), Some(&h(0xf0, 1)));
        // Below the first owner: the last one covers (the chain wraps).
        assert_eq!(c.covering(&h(0x01, 0)), Some(&h(0xf0, 1)));
        assert_eq!(c.covering(&h(0x10, 4)), Some(&h(0xf0, 1)));
        let before = c.clone();
        c.remove(&h(0xf0, 1));
        assert_eq!(c.covering(&h(0x01, 0)), Some(&h(0x80, 0)));
        // Copy-on-write: the earlier version still has it, and shares untouched shards.
        assert_eq!(before.covering(&h(0x01, 0)), Some(&h(0xf0, 1)));
        assert!(Arc::ptr_eq(&before.shards[0x10], &c.shards[0x10]));
        assert!(Nsec3Chain::default().covering(&h(1, 1)).is_none());
    }

    #[test]
    fn sets_are_replaced_and_removed_per_type_and_covered() {
        use orrery_proto::Name;
        let apex = Name::from_ascii("tld").unwrap();
        let id = |owner: &str, rtype, covered| DnssecRrsetId {
            zone: apex.clone(),
            owner: Name::from_ascii(owner).unwrap(),
            rtype,
            covered,
        };
        let mut s = Signed::default();
        let rrset = |id, ttl, rd: &[&[u8]]| DnssecRrset {
            id,
            ttl,
            rdata: rd.iter().map(|r| r.to_vec()).collect(),
        };
        s.put(
            apex.as_wire(),
            &rrset(id("tld", 48, 0), 3600, &[b"k1k1", b"k2k2"]),
        );
        s.put(
            apex.as_wire(),
            &rrset(id("tld", 46, 48), 3600, &[b"sig-dnskey"]),
        );
        s.put(apex.as_wire(), &rrset(id("tld", 46, 6), 600, &[b"sig-soa"]));
        assert!(s.is_signed());
        let k: Vec<_> = s.set(&w("tld"), 48, 0).unwrap().rdatas().collect();
        assert_eq!(k, [&b"k1k1"[..], b"k2k2"]);
        assert_eq!(s.rrsig(&w("tld"), 6).unwrap().ttl, 600);
        s.put(
            apex.as_wire(),
            &rrset(id("tld", 46, 6), 300, &[b"sig-soa-2"]),
        );
        let soa = s.rrsig(&w("tld"), 6).unwrap();
        assert_eq!(
            (soa.ttl, soa.rdatas().next().unwrap()),
            (300, &b"sig-soa-2"[..])
        );
        assert_eq!(s.rrsig(&w("tld"), 48).unwrap().rdatas().count(), 1);
        s.remove(apex.as_wire(), &id("tld", 48, 0));
        assert!(!s.is_signed());
        s.remove(apex.as_wire(), &id("tld", 46, 48));
        s.remove(apex.as_wire(), &id("tld", 46, 6));
        assert_eq!(s.owner_count(), 0);
        // NSEC3PARAM: the precomputed hashes are RFC 5155 §5's.
        s.put(
            apex.as_wire(),
            &rrset(id("tld", 51, 0), 0, &[&[1, 0, 0, 0, 0]]),
        );
        assert_eq!(s.denial(), Denial::Nsec3);
        assert_eq!(s.hash(&w("tld"), &w("tld")), nsec3_hash(&w("tld"), &[], 0));
        assert_eq!(
            s.hash(&w("tld"), &w("*.tld")),
            nsec3_hash(&w("*.tld"), &[], 0)
        );
        assert_eq!(
            s.hash(&w("tld"), &w("x.tld")),
            nsec3_hash(&w("x.tld"), &[], 0)
        );
    }

    /// The bulk path (a state file's or a snapshot's sets) holds what one set at a time
    /// holds: the same sets by owner, the same NSEC chain in canonical order, NSEC3 hashes.
    #[test]
    fn put_all_holds_what_put_one_by_one_holds() {
        use orrery_proto::Name;
        let apex = Name::from_ascii("tld").unwrap();
        let set = |owner: &str, rtype, covered, rd: &[u8]| DnssecRrset {
            id: DnssecRrsetId {
                zone: apex.clone(),
                owner: Name::from_ascii(owner).unwrap(),
                rtype,
                covered,
            },
            ttl: 3600,
            rdata: vec![rd.to_vec()],
        };
        let mut sets = vec![set("tld", 48, 0, b"key"), set("tld", 46, 48, b"sig")];
        // Owners out of canonical order, one NSEC given twice.
        for name in ["z.tld", "b.tld", "a.b.tld", "m.tld", "b.tld", "tld"] {
            sets.push(set(name, 47, 0, name.as_bytes()));
            sets.push(set(name, 46, 47, b"sig-nsec"));
        }
        let hashed = "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.tld";
        sets.push(set(hashed, 50, 0, b"nsec3"));
        for i in 0..300 {
            sets.push(set(&format!("d{i}.tld"), 46, 43, b"sig-ds"));
        }
        let mut one = Signed::default();
        for s in &sets {
            one.put(apex.as_wire(), s);
        }
        one.seal();
        let mut bulk = Signed::default();
        bulk.put_all(apex.as_wire(), sets.iter());
        bulk.seal();
        let dump = |s: &Signed| {
            let mut out = Vec::new();
            s.each_set(|owner, t, c, set| {
                out.push((
                    owner.to_vec(),
                    t,
                    c,
                    set.rdatas().map(<[u8]>::to_vec).collect::<Vec<_>>(),
                ));
            });
            out.sort();
            out
        };
        assert_eq!(dump(&bulk), dump(&one));
        assert_eq!(bulk.owner_count(), one.owner_count());
        assert_eq!(bulk.nsec.owners, one.nsec.owners);
        assert_eq!(bulk.nsec.len(), 5);
        assert_eq!(bulk.nsec3.len(), 1);
        assert_eq!(bulk.is_signed(), one.is_signed());
        assert!(bulk.sets.shard_count() >= crate::served::shards::shard_count_for(300));
    }
}
