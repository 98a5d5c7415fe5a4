//! Signing a whole zone: from its unsigned records, policy and keys to the signed records in
//! canonical order.
//!
//! Which names are what (RFC 4035 §2.2, RFC 5155 §7.1):
//! - the apex and authoritative names: every RRset signed, in the NSEC/NSEC3 chain;
//! - a delegation point (NS below the apex): only its DS RRset is signed; it is in the NSEC
//!   chain, and in the NSEC3 chain only when it has DS (opt-out leaves insecure delegations
//!   out, so adding or removing one changes no signature, RFC 5155 §6);
//! - names below a delegation point (glue): neither signed nor in a chain;
//! - empty non-terminals above chain names get NSEC3 records with an empty bit map (§7.1).

use std::collections::{BTreeMap, HashMap};

use orrery_proto::Name;
use orrery_proto::dnssec::{Denial, ZoneDnssec};

use crate::key::{SigningKey, dnskey_rdata, key_tag};
use crate::nsec3;
use crate::rdata::{self, RrsigPrefix};
use crate::record::{Record, append_rrset_for_signing, canonical_cmp, rtype};

/// Errors of signing a zone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    #[error("zone {zone}: no active key signs the {what}")]
    NoActiveKey { zone: Name, what: &'static str },
    #[error("zone {zone}: key {locator} has tag {computed}, the store says {stored}")]
    KeyTag {
        zone: Name,
        locator: String,
        stored: u16,
        computed: u16,
    },
    #[error("zone {zone}: no private key for {locator} was given")]
    MissingPrivateKey { zone: Name, locator: String },
    #[error("zone {zone}: the private key {locator} does not match its public key in the store")]
    KeyMismatch { zone: Name, locator: String },
    #[error("zone {zone}: NSEC3 hash collision between {a} and {b}")]
    HashCollision { zone: Name, a: Name, b: Name },
    #[error("zone {zone} has no SOA record among the records to sign")]
    NoSoa { zone: Name },
    #[error("zone {zone} is unsigned by policy")]
    Unsigned { zone: Name },
}

/// A signed zone: every record, the signatures and chain included, in canonical order
/// (owner by RFC 4034 §6.1, then type, RRSIGs after the RRset they cover, RDATA ascending).
#[derive(Debug)]
pub struct SignedZone {
    pub records: Vec<Record>,
    /// The number of RRSIG records in the zone.
    pub signatures: u64,
    /// How many of them were signed by this call (the rest came from a [`SignatureCache`]).
    pub fresh_signatures: u64,
}

/// What a name is in the zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Apex,
    Authoritative,
    Delegation { secure: bool },
    Occluded,
}

impl Role {
    /// In the NSEC3 chain (RFC 5155 §7.1): the apex, authoritative names and secure
    /// delegations; opt-out leaves insecure delegations out (§6), glue is never in it.
    pub(crate) fn in_nsec3_chain(self) -> bool {
        match self {
            Self::Apex | Self::Authoritative | Self::Delegation { secure: true } => true,
            Self::Delegation { secure: false } | Self::Occluded => false,
        }
    }
}

pub(crate) struct Node {
    pub(crate) name: Name,
    pub(crate) role: Role,
    /// Records of the node, grouped by type in ascending type order.
    pub(crate) records: Vec<Record>,
}

/// The keys of a zone, each with its private half.
pub(crate) struct Signers<'a> {
    dnskey: Vec<(u16, &'a dyn SigningKey)>,
    zone: Vec<(u16, &'a dyn SigningKey)>,
}

/// Signs the zone at `apex`: `records` are its unsigned records (SOA, NS, DS, addresses; any
/// order, duplicates allowed), `dnssec` its policy and keys, `private` the private key for each
/// key's locator. The result depends only on these (deterministic signatures, times from the
/// policy), so every signer of one store state writes the same bytes.
pub fn sign_zone<'k>(
    apex: &Name,
    records: Vec<Record>,
    dnssec: &ZoneDnssec,
    private: &dyn Fn(&str) -> Option<&'k dyn SigningKey>,
) -> Result<SignedZone, SignError> {
    sign_zone_cached(apex, records, dnssec, private, None)
}

/// The negative TTL of NSEC, NSEC3 and NSEC3PARAM: the smaller of the SOA TTL and its
/// MINIMUM (RFC 9077 §3.2).
pub(crate) fn negative_ttl(soa: &Record) -> u32 {
    let minimum = u32::from_be_bytes(soa.rdata[soa.rdata.len() - 4..].try_into().unwrap());
    soa.ttl.min(minimum)
}

/// The apex records the signer adds: the DNSKEY RRset and, with NSEC3, the NSEC3PARAM.
pub(crate) fn apex_extra(apex: &Name, dnssec: &ZoneDnssec, negative_ttl: u32) -> Vec<Record> {
    let mut out: Vec<Record> = dnssec
        .keys
        .iter()
        .map(|k| {
            Record::new(
                apex.clone(),
                rtype::DNSKEY,
                dnssec.policy.dnskey_ttl,
                dnskey_rdata(k.flags(), k.algorithm, &k.public_key),
            )
        })
        .collect();
    if dnssec.policy.denial == Denial::Nsec3OptOut {
        out.push(Record::new(
            apex.clone(),
            rtype::NSEC3PARAM,
            negative_ttl,
            rdata::nsec3param(0, nsec3::ITERATIONS, nsec3::SALT),
        ));
    }
    out
}

/// The signers of the zone's keys: each key's tag checked against the store's, its private
/// half found and matched with the public key in the store.
pub(crate) fn signers<'k>(
    apex: &Name,
    dnssec: &ZoneDnssec,
    private: &dyn Fn(&str) -> Option<&'k dyn SigningKey>,
) -> Result<Signers<'k>, SignError> {
    let mut signers: Signers<'k> = Signers {
        dnskey: Vec::new(),
        zone: Vec::new(),
    };
    for k in &dnssec.keys {
        let rd = dnskey_rdata(k.flags(), k.algorithm, &k.public_key);
        let tag = key_tag(&rd);
        if tag != k.key_tag {
            return Err(SignError::KeyTag {
                zone: apex.clone(),
                locator: k.locator.clone(),
                stored: k.key_tag,
                computed: tag,
            });
        }
        if k.signs_dnskey() || k.signs_zone() {
            let key = private(&k.locator).ok_or_else(|| SignError::MissingPrivateKey {
                zone: apex.clone(),
                locator: k.locator.clone(),
            })?;
            if key.public_key() != k.public_key || key.algorithm() != k.algorithm {
                return Err(SignError::KeyMismatch {
                    zone: apex.clone(),
                    locator: k.locator.clone(),
                });
            }
            if k.signs_dnskey() {
                signers.dnskey.push((tag, key));
            }
            if k.signs_zone() {
                signers.zone.push((tag, key));
            }
        }
    }
    for (list, what) in [(&signers.dnskey, "DNSKEY RRset"), (&signers.zone, "zone")] {
        if list.is_empty() {
            return Err(SignError::NoActiveKey {
                zone: apex.clone(),
                what,
            });
        }
    }
    Ok(signers)
}

/// The NSEC3 record of the chain entry `hash` whose successor is `next` (RFC 5155 §3.3): the
/// opt-out flag set, RFC 9276's parameters.
pub(crate) fn nsec3_record(
    apex: &Name,
    hash: &[u8; 20],
    next: &[u8; 20],
    types: &[u16],
    negative_ttl: u32,
) -> Record {
    let rd = rdata::nsec3(
        nsec3::FLAG_OPT_OUT,
        nsec3::ITERATIONS,
        nsec3::SALT,
        next,
        types,
    );
    Record::new(nsec3::owner(hash, apex), rtype::NSEC3, negative_ttl, rd)
}

/// The types the NSEC3 record of a node lists: its chain types, and RRSIG when there are any
/// (an empty non-terminal lists none, RFC 5155 §7.1).
pub(crate) fn nsec3_types(node: &Node) -> Vec<u16> {
    let mut types = chain_types(node);
    if !types.is_empty() {
        types.push(rtype::RRSIG);
    }
    types
}

/// The NSEC record of a node whose successor in the chain is `next` (RFC 4034 §4).
pub(crate) fn nsec_record(node: &Node, next: &Name, negative_ttl: u32) -> Record {
    let mut types = chain_types(node);
    types.extend([rtype::NSEC, rtype::RRSIG]);
    Record::new(
        node.name.clone(),
        rtype::NSEC,
        negative_ttl,
        rdata::nsec(next, &types),
    )
}

/// [`sign_zone`], reusing the signatures in `cache` whose signing input is unchanged and
/// leaving in it the signatures of this zone (a master keeps one per zone across batches).
/// The result is the same bytes as [`sign_zone`]'s.
pub fn sign_zone_cached<'k>(
    apex: &Name,
    records: Vec<Record>,
    dnssec: &ZoneDnssec,
    private: &dyn Fn(&str) -> Option<&'k dyn SigningKey>,
    cache: Option<&mut SignatureCache>,
) -> Result<SignedZone, SignError> {
    let policy = &dnssec.policy;
    if policy.denial == Denial::Unsigned {
        return Err(SignError::Unsigned { zone: apex.clone() });
    }
    let mut nodes = group(apex, records);
    let apex_node = nodes.first().filter(|n| n.role == Role::Apex);
    let soa = apex_node
        .and_then(|n| n.records.iter().find(|r| r.rtype == rtype::SOA))
        .ok_or_else(|| SignError::NoSoa { zone: apex.clone() })?;
    let negative_ttl = negative_ttl(soa);

    let signers = signers(apex, dnssec, private)?;
    {
        let apex_records = &mut nodes[0].records;
        apex_records.extend(apex_extra(apex, dnssec, negative_ttl));
        apex_records.sort_by(|a, b| a.rtype.cmp(&b.rtype).then_with(|| a.rdata.cmp(&b.rdata)));
    }

    // The chain, as extra nodes (NSEC3) or records on the nodes (NSEC).
    let mut chain_nodes = Vec::new();
    match policy.denial {
        Denial::Nsec => {
            let in_chain: Vec<usize> = (0..nodes.len())
                .filter(|&i| nodes[i].role != Role::Occluded)
                .collect();
            for (pos, &i) in in_chain.iter().enumerate() {
                let next = nodes[in_chain[(pos + 1) % in_chain.len()]].name.clone();
                let r = nsec_record(&nodes[i], &next, negative_ttl);
                nodes[i].records.push(r);
            }
        }
        Denial::Nsec3OptOut => {
            // Hashed owner → (name, types) for the apex, authoritative names, secure
            // delegations and the empty non-terminals above them.
            let mut hashed: BTreeMap<[u8; 20], (Name, Vec<u16>)> = BTreeMap::new();
            let mut add = |name: &Name, types: Vec<u16>| -> Result<(), SignError> {
                let h = nsec3::hash(name, nsec3::SALT, nsec3::ITERATIONS);
                match hashed.get(&h) {
                    Some((other, _)) if other != name => Err(SignError::HashCollision {
                        zone: apex.clone(),
                        a: other.clone(),
                        b: name.clone(),
                    }),
                    Some(_) => Ok(()),
                    None => {
                        hashed.insert(h, (name.clone(), types));
                        Ok(())
                    }
                }
            };
            let existing: std::collections::HashSet<&Name> =
                nodes.iter().map(|n| &n.name).collect();
            for n in &nodes {
                if !n.role.in_nsec3_chain() {
                    continue;
                }
                add(&n.name, nsec3_types(n))?;
                // Empty non-terminals between the name and the apex.
                let mut up = n.name.parent();
                while let Some(p) = up {
                    if &p == apex || !p.is_subdomain_of(apex) {
                        break;
                    }
                    if !existing.contains(&p) {
                        add(&p, Vec::new())?;
                    }
                    up = p.parent();
                }
            }
            let entries: Vec<_> = hashed.into_iter().collect();
            for (i, (h, (_, types))) in entries.iter().enumerate() {
                let next = &entries[(i + 1) % entries.len()].0;
                let r = nsec3_record(apex, h, next, types, negative_ttl);
                chain_nodes.push(Node {
                    name: r.owner.clone(),
                    role: Role::Authoritative,
                    records: vec![r],
                });
            }
        }
        Denial::Unsigned => unreachable!("refused above"),
    }
    nodes.extend(chain_nodes);
    nodes.sort_by(|a, b| canonical_cmp(&a.name, &b.name));

    // Sign, node by node: first the signing input of every signature, then the signatures
    // (cached ones reused, the rest in parallel), then the records in canonical order.
    let mut batch = SigningBatch::new(apex, dnssec, signers);
    for node in nodes {
        batch.add_node(node);
    }
    let signed = batch.sign(cache.map(|c| (c, CacheUse::Replace)));
    Ok(signed)
}

/// Signatures to make over nodes, in order: shared by the whole-zone signer and the
/// incremental one (`crate::incremental`), so both write the same RRSIGs for the same node.
pub(crate) struct SigningBatch<'a, 'k> {
    apex: &'a Name,
    signers: Signers<'k>,
    inception: u32,
    expiration: u32,
    pieces: Vec<Piece>,
    jobs: Vec<Job<'k>>,
}

/// What [`SigningBatch::sign`] does with the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheUse {
    /// Keep exactly this batch's signatures (the batch is the whole zone).
    Replace,
    /// Add or replace this batch's signatures, keep the others (the batch is part of a zone).
    Update,
}

impl<'a, 'k> SigningBatch<'a, 'k> {
    pub(crate) fn new(apex: &'a Name, dnssec: &ZoneDnssec, signers: Signers<'k>) -> Self {
        let (inception, expiration) = dnssec.policy.signature_times();
        Self {
            apex,
            signers,
            inception,
            expiration,
            pieces: Vec::new(),
            jobs: Vec::new(),
        }
    }

    /// Adds a node's records and the signing input of each of its signed RRsets (by role:
    /// RFC 4035 §2.2 — at a delegation only DS and NSEC; glue never).
    pub(crate) fn add_node(&mut self, node: Node) {
        let labels = rrsig_labels(&node.name);
        let mut i = 0;
        let recs = node.records;
        while i < recs.len() {
            let t = recs[i].rtype;
            let mut j = i;
            while j < recs.len() && recs[j].rtype == t {
                j += 1;
            }
            let set: Vec<&Record> = recs[i..j].iter().collect();
            let signed = match node.role {
                Role::Apex | Role::Authoritative => true,
                Role::Delegation { .. } => t == rtype::DS || t == rtype::NSEC,
                Role::Occluded => false,
            };
            self.pieces
                .extend(set.iter().map(|r| Piece::Record((*r).clone())));
            if signed {
                let ttl = set.iter().map(|r| r.ttl).min().unwrap_or(0);
                let keys = if t == rtype::DNSKEY {
                    &self.signers.dnskey
                } else {
                    &self.signers.zone
                };
                let first = self.jobs.len();
                for &(tag, key) in keys {
                    let prefix = RrsigPrefix {
                        type_covered: t,
                        algorithm: key.algorithm().number(),
                        labels,
                        original_ttl: ttl,
                        expiration: self.expiration,
                        inception: self.inception,
                        key_tag: tag,
                        signer: self.apex,
                    };
                    let mut data = Vec::with_capacity(256);
                    prefix.append(&mut data);
                    let prefix_len = data.len();
                    append_rrset_for_signing(&mut data, &set, ttl);
                    self.jobs.push(Job {
                        key,
                        owner: node.name.clone(),
                        covered: t,
                        data,
                        prefix_len,
                    });
                }
                self.pieces.push(Piece::Signatures {
                    owner: node.name.clone(),
                    ttl,
                    jobs: first..self.jobs.len(),
                });
            }
            i = j;
        }
    }

    /// Makes the signatures (those in the cache reused, the rest in parallel when many) and
    /// returns the records in the order the nodes were added, RRSIGs after the RRset they
    /// cover in RDATA order.
    pub(crate) fn sign(self, cache: Option<(&mut SignatureCache, CacheUse)>) -> SignedZone {
        let jobs = self.jobs;
        let (sigs, fresh) = sign_jobs(&jobs, cache);
        let mut out = Vec::with_capacity(self.pieces.len() + jobs.len());
        for piece in self.pieces {
            match piece {
                Piece::Record(r) => out.push(r),
                Piece::Signatures {
                    owner,
                    ttl,
                    jobs: range,
                } => {
                    let mut set: Vec<Record> = range
                        .map(|k| {
                            let mut rd = jobs[k].data[..jobs[k].prefix_len].to_vec();
                            rd.extend_from_slice(&sigs[k]);
                            Record::new(owner.clone(), rtype::RRSIG, ttl, rd)
                        })
                        .collect();
                    set.sort_by(|a, b| a.rdata.cmp(&b.rdata));
                    out.extend(set);
                }
            }
        }
        SignedZone {
            records: out,
            signatures: jobs.len() as u64,
            fresh_signatures: fresh,
        }
    }
}

/// One signature to make: the key, the RRset it covers and the RRSIG signing input (RFC 4034
/// §3.1.8.1), whose first `prefix_len` octets are the RRSIG RDATA before the signature field.
struct Job<'k> {
    key: &'k dyn SigningKey,
    owner: Name,
    covered: u16,
    data: Vec<u8>,
    prefix_len: usize,
}

/// The signed zone in order, before the signatures exist.
enum Piece {
    Record(Record),
    /// The RRSIGs of the RRset before it: the signatures of `jobs`.
    Signatures {
        owner: Name,
        ttl: u32,
        jobs: std::ops::Range<usize>,
    },
}

/// Below this many signatures to make, one thread signs (spawning costs more than it saves).
const PARALLEL_FROM: usize = 64;

/// The signatures of `jobs`, in order, and how many were made (not taken from `cache`). A
/// signature depends only on its key and its input (deterministic algorithms), so a cached one
/// is the one signing would make.
fn sign_jobs(
    jobs: &[Job<'_>],
    cache: Option<(&mut SignatureCache, CacheUse)>,
) -> (Vec<Vec<u8>>, u64) {
    let mut sigs: Vec<Option<Vec<u8>>> = vec![None; jobs.len()];
    let keys: Vec<Vec<u8>> = jobs.iter().map(|j| j.key.public_key()).collect();
    if let Some((c, _)) = &cache {
        for (k, j) in jobs.iter().enumerate() {
            sigs[k] = c
                .get(&keys[k], &j.owner, j.covered, &j.data)
                .map(<[u8]>::to_vec);
        }
    }
    let missing: Vec<usize> = (0..jobs.len()).filter(|&k| sigs[k].is_none()).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(missing.len().div_ceil(PARALLEL_FROM))
        .max(1);
    let made: Vec<Vec<u8>> = if threads == 1 {
        missing
            .iter()
            .map(|&k| jobs[k].key.sign(&jobs[k].data))
            .collect()
    } else {
        let per = missing.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = missing
                .chunks(per)
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|&k| jobs[k].key.sign(&jobs[k].data))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("signing does not panic"))
                .collect()
        })
    };
    let fresh = made.len() as u64;
    for (&k, sig) in missing.iter().zip(made) {
        sigs[k] = Some(sig);
    }
    let sigs: Vec<Vec<u8>> = sigs.into_iter().map(|s| s.unwrap_or_default()).collect();
    if let Some((c, how)) = cache {
        if how == CacheUse::Replace {
            c.by_key.clear();
        }
        for ((j, key), sig) in jobs.iter().zip(keys).zip(&sigs) {
            c.by_key.entry(key).or_default().insert(
                (j.owner.clone(), j.covered),
                Cached {
                    data: j.data.clone(),
                    sig: sig.clone(),
                },
            );
        }
    }
    (sigs, fresh)
}

/// The signatures of a zone, by public key and signed RRset (owner, type covered), each with
/// the signing input it was made for: signing the zone again re-signs only the RRsets whose
/// input changed (the new serial's SOA, changed DS and NSEC3 records...), and gives the same
/// bytes as signing from scratch. One entry per RRset and key, so an RRset signed again
/// replaces its old signature and the cache never holds more than the zone's signatures.
#[derive(Debug, Default)]
pub struct SignatureCache {
    by_key: HashMap<Vec<u8>, HashMap<(Name, u16), Cached>>,
}

#[derive(Debug)]
struct Cached {
    data: Vec<u8>,
    sig: Vec<u8>,
}

impl SignatureCache {
    fn get(&self, public_key: &[u8], owner: &Name, covered: u16, data: &[u8]) -> Option<&[u8]> {
        let c = self
            .by_key
            .get(public_key)?
            .get(&(owner.clone(), covered))?;
        (c.data == data).then_some(c.sig.as_slice())
    }

    /// Drops the signatures of the RRset (`owner`, `covered`) by every key: it left the zone.
    pub(crate) fn forget(&mut self, owner: &Name, covered: u16) {
        let slot = (owner.clone(), covered);
        for m in self.by_key.values_mut() {
            m.remove(&slot);
        }
    }

    /// How many signatures it holds.
    pub fn len(&self) -> usize {
        self.by_key.values().map(|m| m.len()).sum()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The RRSIG labels field (RFC 4034 §3.1.3): the owner's labels, a leading `*` not counted.
fn rrsig_labels(owner: &Name) -> u8 {
    let n = owner.label_count();
    if owner.first_label() == b"*" {
        (n - 1) as u8
    } else {
        n as u8
    }
}

/// The types a chain record lists for a node, before NSEC/NSEC3 and RRSIG themselves: at a
/// delegation only NS and DS (glue at the cut is not the zone's data, RFC 4035 §2.3).
pub(crate) fn chain_types(node: &Node) -> Vec<u16> {
    let mut types: Vec<u16> = node
        .records
        .iter()
        .map(|r| r.rtype)
        .filter(|&t| match node.role {
            Role::Delegation { .. } => t == rtype::NS || t == rtype::DS,
            _ => true,
        })
        .collect();
    types.dedup();
    types
}

/// Sorts the records into nodes in canonical order and tells each node's role.
pub(crate) fn group(apex: &Name, mut records: Vec<Record>) -> Vec<Node> {
    records.retain(|r| r.owner.is_subdomain_of(apex));
    records.sort_by(|a, b| {
        canonical_cmp(&a.owner, &b.owner)
            .then_with(|| a.rtype.cmp(&b.rtype))
            .then_with(|| a.rdata.cmp(&b.rdata))
    });
    records.dedup_by(|b, a| a.owner == b.owner && a.rtype == b.rtype && a.rdata == b.rdata);
    let mut nodes: Vec<Node> = Vec::new();
    for r in records {
        match nodes.last_mut() {
            Some(n) if n.name == r.owner => n.records.push(r),
            _ => nodes.push(Node {
                name: r.owner.clone(),
                role: Role::Authoritative,
                records: vec![r],
            }),
        }
    }
    if nodes.first().is_none_or(|n| &n.name != apex) {
        nodes.insert(
            0,
            Node {
                name: apex.clone(),
                role: Role::Apex,
                records: Vec::new(),
            },
        );
    }
    // Descendants follow their ancestor in canonical order: one open cut at a time suffices.
    let mut cut: Option<Name> = None;
    for n in &mut nodes {
        if &n.name == apex {
            n.role = Role::Apex;
            continue;
        }
        if let Some(c) = &cut {
            if n.name.is_subdomain_of(c) {
                n.role = Role::Occluded;
                continue;
            }
            cut = None;
        }
        if n.records.iter().any(|r| r.rtype == rtype::NS) {
            let secure = n.records.iter().any(|r| r.rtype == rtype::DS);
            n.role = Role::Delegation { secure };
            cut = Some(n.name.clone());
        }
    }
    nodes
}

#[cfg(test)]
pub(crate) mod tests {
    use orrery_proto::Timestamp;
    use orrery_proto::dnssec::{DnssecPolicy, KeyRole, KeyState, ZoneKey};

    use super::*;
    use crate::key::PrivateKey;

    pub(crate) fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    pub(crate) fn zone_records() -> Vec<Record> {
        let apex = n("test");
        let soa = rdata::soa(&rdata::Soa {
            mname: &n("ns1.test"),
            rname: &n("hostmaster.test"),
            serial: 1,
            refresh: 7200,
            retry: 900,
            expire: 1_209_600,
            minimum: 3600,
        });
        let ds = orrery_proto::Ds {
            key_tag: 1,
            algorithm: 13,
            digest_type: 2,
            digest: vec![7; 32],
        };
        vec![
            Record::new(apex.clone(), rtype::SOA, 3600, soa),
            Record::new(apex.clone(), rtype::NS, 172_800, rdata::ns(&n("ns1.test"))),
            Record::new(n("ns1.test"), rtype::A, 172_800, vec![192, 0, 2, 1]),
            Record::new(
                n("signed.test"),
                rtype::NS,
                172_800,
                rdata::ns(&n("ns.signed.test")),
            ),
            Record::new(n("signed.test"), rtype::DS, 86_400, rdata::ds(&ds)),
            Record::new(n("ns.signed.test"), rtype::A, 172_800, vec![192, 0, 2, 2]),
            Record::new(
                n("plain.test"),
                rtype::NS,
                172_800,
                rdata::ns(&n("ns.other")),
            ),
            Record::new(
                n("deep.sub.test"),
                rtype::NS,
                172_800,
                rdata::ns(&n("ns.other")),
            ),
            Record::new(n("deep.sub.test"), rtype::DS, 86_400, rdata::ds(&ds)),
        ]
    }

    pub(crate) fn keyed(denial: Denial, key: &PrivateKey) -> ZoneDnssec {
        let public_key = key.public_key();
        let alg = key.algorithm();
        let tag = key_tag(&dnskey_rdata(257, alg, &public_key));
        let mut policy = DnssecPolicy::tld_default(Timestamp(1_800_000_000));
        policy.denial = denial;
        policy.algorithm = alg;
        ZoneDnssec {
            policy,
            keys: vec![ZoneKey {
                role: KeyRole::Csk,
                algorithm: alg,
                key_tag: tag,
                public_key,
                state: KeyState::Active,
                locator: "k".into(),
                created: Timestamp(0),
                published: None,
                activated: None,
                retired: None,
                revoked: None,
                ds_seen: None,
            }],
        }
    }

    fn types_at(z: &SignedZone, owner: &str) -> Vec<u16> {
        let o = n(owner);
        z.records
            .iter()
            .filter(|r| r.owner == o)
            .map(|r| r.rtype)
            .collect()
    }

    #[test]
    fn nsec3_optout_signs_authoritative_data_and_secure_delegations_only() {
        let key = PrivateKey::p256_from_scalar(&[5; 32]).unwrap();
        let d = keyed(Denial::Nsec3OptOut, &key);
        let z = sign_zone(&n("test"), zone_records(), &d, &|_| Some(&key)).unwrap();
        assert_eq!(
            types_at(&z, "test"),
            [
                rtype::NS,
                rtype::RRSIG,
                rtype::SOA,
                rtype::RRSIG,
                rtype::DNSKEY,
                rtype::RRSIG,
                rtype::NSEC3PARAM,
                rtype::RRSIG
            ]
        );
        assert_eq!(
            types_at(&z, "signed.test"),
            [rtype::NS, rtype::DS, rtype::RRSIG]
        );
        assert_eq!(types_at(&z, "plain.test"), [rtype::NS]);
        assert_eq!(types_at(&z, "ns.signed.test"), [rtype::A]);
        assert_eq!(types_at(&z, "ns1.test"), [rtype::A, rtype::RRSIG]);
        // Chain: apex, ns1, signed, deep.sub and the empty non-terminal sub.test; plain.test
        // is opted out.
        let nsec3: Vec<&Record> = z
            .records
            .iter()
            .filter(|r| r.rtype == rtype::NSEC3)
            .collect();
        assert_eq!(nsec3.len(), 5);
        let ent = nsec3::owner(&nsec3::hash(&n("sub.test"), &[], 0), &n("test"));
        let ent_rec = nsec3.iter().find(|r| r.owner == ent).unwrap();
        assert_eq!(
            rdata::present(rtype::NSEC3, &ent_rec.rdata)
                .unwrap()
                .split(' ')
                .count(),
            5
        );
        // Deterministic: the same input signs to the same bytes.
        let again = sign_zone(&n("test"), zone_records(), &d, &|_| Some(&key)).unwrap();
        assert_eq!(z.records, again.records);
    }

    #[test]
    fn nsec_chain_links_every_name_and_wraps() {
        let key = PrivateKey::ed25519_from_seed(&[9; 32]).unwrap();
        let d = keyed(Denial::Nsec, &key);
        let z = sign_zone(&n("test"), zone_records(), &d, &|_| Some(&key)).unwrap();
        let chain: Vec<(Name, String)> = z
            .records
            .iter()
            .filter(|r| r.rtype == rtype::NSEC)
            .map(|r| {
                (
                    r.owner.clone(),
                    rdata::present(rtype::NSEC, &r.rdata).unwrap(),
                )
            })
            .collect();
        let owners: Vec<String> = chain.iter().map(|(o, _)| o.to_string()).collect();
        assert_eq!(
            owners,
            [
                "test",
                "ns1.test",
                "plain.test",
                "signed.test",
                "deep.sub.test"
            ]
        );
        assert_eq!(chain[2].1, "signed.test. NS RRSIG NSEC");
        assert_eq!(chain[4].1, "test. NS DS RRSIG NSEC");
        assert!(
            types_at(&z, "plain.test").contains(&rtype::RRSIG),
            "its NSEC is signed"
        );
    }

    #[test]
    fn refuses_without_active_keys_or_with_a_wrong_private_key() {
        let key = PrivateKey::ed25519_from_seed(&[9; 32]).unwrap();
        let other = PrivateKey::ed25519_from_seed(&[8; 32]).unwrap();
        let mut d = keyed(Denial::Nsec, &key);
        let err = sign_zone(&n("test"), zone_records(), &d, &|_| Some(&other)).unwrap_err();
        assert!(matches!(err, SignError::KeyMismatch { .. }), "{err}");
        d.keys[0].state = KeyState::Published;
        let err = sign_zone(&n("test"), zone_records(), &d, &|_| Some(&key)).unwrap_err();
        assert!(matches!(err, SignError::NoActiveKey { .. }), "{err}");
    }

    /// Re-signing with the cache gives the bytes of signing from scratch and signs only the
    /// RRsets whose input changed; many signatures are made on several threads alike.
    #[test]
    fn cached_and_parallel_signing_equal_signing_from_scratch() {
        let key = PrivateKey::p256_from_scalar(&[3; 32]).unwrap();
        let d = keyed(Denial::Nsec3OptOut, &key);
        let ds = orrery_proto::Ds {
            key_tag: 2,
            algorithm: 13,
            digest_type: 2,
            digest: vec![9; 32],
        };
        let mut records = zone_records();
        // Enough secure delegations for the parallel path.
        for i in 0..200 {
            let owner = n(&format!("s{i}.test"));
            records.push(Record::new(
                owner.clone(),
                rtype::NS,
                172_800,
                rdata::ns(&n("ns.other")),
            ));
            records.push(Record::new(owner, rtype::DS, 86_400, rdata::ds(&ds)));
        }
        let mut cache = SignatureCache::default();
        let first = sign_zone_cached(
            &n("test"),
            records.clone(),
            &d,
            &|_| Some(&key),
            Some(&mut cache),
        )
        .unwrap();
        assert_eq!(first.fresh_signatures, first.signatures);
        assert_eq!(cache.len() as u64, first.signatures);
        let scratch = sign_zone(&n("test"), records.clone(), &d, &|_| Some(&key)).unwrap();
        assert_eq!(first.records, scratch.records);
        // One more secure delegation: its DS, the NSEC3 records around it change; nothing else.
        let owner = n("zz-new.test");
        records.push(Record::new(
            owner.clone(),
            rtype::NS,
            172_800,
            rdata::ns(&n("ns.other")),
        ));
        records.push(Record::new(owner, rtype::DS, 86_400, rdata::ds(&ds)));
        let again = sign_zone_cached(
            &n("test"),
            records.clone(),
            &d,
            &|_| Some(&key),
            Some(&mut cache),
        )
        .unwrap();
        let scratch = sign_zone(&n("test"), records, &d, &|_| Some(&key)).unwrap();
        assert_eq!(again.records, scratch.records);
        // Its DS, its NSEC3 and the previous NSEC3 (next hash changed).
        assert_eq!(again.fresh_signatures, 3, "{}", again.fresh_signatures);
        assert_eq!(
            cache.len() as u64,
            again.signatures,
            "the cache keeps this zone's only"
        );
    }
}
