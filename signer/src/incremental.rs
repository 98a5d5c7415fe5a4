//! Signing a zone batch by batch: the signed structure kept between batches, so that a batch
//! costs what it changes, not what the zone holds.
//!
//! ```text
//!  IncrementalZone::sign_whole (first signing, policy/key/window change: the reference,
//!     │                         zone::sign_zone_cached, then its structure is kept)
//!     ▼
//!  nodes:  owner → unsigned records, in canonical order (RFC 4034 §6.1)
//!  chain:  NSEC: the owners in the chain, in canonical order
//!          NSEC3: hash → (name, types), and per name the chain names below it (chain.rs)
//!  sets:   owner → its DNSKEY/NSEC3PARAM/NSEC/NSEC3/RRSIG RRsets as published
//!     │
//!     ▼  IncrementalZone::update(owners whose records changed)
//!  affected owners: the changed ones; below a cut that came or went, every descendant (its
//!  role changed); NSEC: a name that joined or left the chain and its predecessor; NSEC3: the
//!  entries whose presence or types changed (empty non-terminals included) and, for those that
//!  came or went, their predecessor in hash order
//!     ▼  sign those owners' RRsets (zone::SigningBatch, the whole-zone signer's own code; the
//!        signature cache reuses what did not change), diff with their published sets
//! ```
//!
//! **Equal to the reference.** Each owner's records are signed by the same code the whole-zone
//! signer runs ([`crate::zone::SigningBatch`]), and its role, chain record and next pointer
//! are what the whole zone gives: a name's role depends only on its records and its
//! ancestors', an NSEC record only on its types and its successor, an NSEC3 record only on its
//! entry and the next hash. The test `incremental_signing_equals_signing_the_whole_zone`
//! (master) compares every batch with signing the store's state whole.
//!
//! What takes the whole path: the first signing, a change of policy, keys or signature window
//! (every signature changes), a zone object change other than its serial (TTLs, SOA fields),
//! an NSEC3 hash collision (the whole path reports it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound::{Excluded, Unbounded};

use orrery_proto::Name;
use orrery_proto::dnssec::{Denial, DnssecRrset, DnssecRrsetId, ZoneDnssec};

use crate::chain::{self, EntryChange, Nsec3Chain};
use crate::key::{KeyStore, SigningKey};
use crate::objects::{SignWithKeysError, load_private, sign_with_keys_cached};
use crate::record::{Record, canonical_cmp, rtype};
use crate::rrsets::dnssec_rrsets;
use crate::zone::{
    self, CacheUse, Node, Role, SignError, SignatureCache, SigningBatch, apex_extra, negative_ttl,
    nsec_record, nsec3_record, nsec3_types,
};

/// A name ordered canonically (RFC 4034 §6.1), for the ordered maps of the kept structure.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Canonical(Name);

impl Ord for Canonical {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        canonical_cmp(&self.0, &other.0)
    }
}

impl PartialOrd for Canonical {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The denial-of-existence chain as kept.
#[derive(Debug)]
enum Chain {
    /// The owners in the NSEC chain: every owner but glue.
    Nsec(BTreeSet<Canonical>),
    Nsec3(Nsec3Chain),
}

/// Why a batch cannot be signed incrementally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IncrementalError {
    /// The keys could not be loaded or do not sign: the zone cannot be signed at all.
    #[error(transparent)]
    Keys(#[from] SignWithKeysError),
    /// The batch needs the whole path (the kept structure is not this state's any more).
    #[error("zone {zone}: {why}; the whole zone must be signed")]
    Whole { zone: Name, why: &'static str },
}

/// The DNSSEC RRsets a signing changed, in id order, and the work it took.
#[derive(Debug, Default)]
pub struct Published {
    pub changed: Vec<DnssecRrset>,
    pub removed: Vec<DnssecRrsetId>,
    /// Signatures made (not from the cache).
    pub fresh_signatures: u64,
    /// Owners whose sets were derived again.
    pub owners: usize,
}

/// A signed zone kept between batches (see the module documentation).
#[derive(Debug)]
pub struct IncrementalZone {
    apex: Name,
    dnssec: ZoneDnssec,
    negative_ttl: u32,
    /// The DNSKEY and NSEC3PARAM records (they change with keys and policy only).
    apex_extra: Vec<Record>,
    /// Every owner's unsigned records, sorted by type then RDATA, duplicates removed.
    nodes: BTreeMap<Canonical, Vec<Record>>,
    chain: Chain,
    /// The DNSSEC RRsets published, by owner and part ([`part`]).
    sets: HashMap<(Name, bool), Vec<DnssecRrset>>,
    /// True while an update is under way: a failed update leaves the structure unusable (the
    /// published sets stay right; the next signing must be whole).
    dirty: bool,
}

/// Which part of its owner a set is: the NSEC3 chain's (`true`: the NSEC3 record and its
/// RRSIG) or the owner's data. Kept apart, a registered name that is also an NSEC3 owner name
/// (a 32-character base32hex label under the apex) cannot make one part replace the other.
fn part(s: &DnssecRrset) -> (Name, bool) {
    let chain = s.id.rtype == rtype::NSEC3 || s.id.covered == rtype::NSEC3;
    (s.id.owner.clone(), chain)
}

fn has(records: &[Record], t: u16) -> bool {
    records.iter().any(|r| r.rtype == t)
}

/// An owner's records as the whole-zone signer groups them: under the apex only, sorted by
/// type then RDATA, duplicates removed (the first kept).
fn normalize(apex: &Name, owner: &Name, mut records: Vec<Record>) -> Vec<Record> {
    records.retain(|r| &r.owner == owner && r.owner.is_subdomain_of(apex));
    records.sort_by(|a, b| a.rtype.cmp(&b.rtype).then_with(|| a.rdata.cmp(&b.rdata)));
    records.dedup_by(|b, a| a.rtype == b.rtype && a.rdata == b.rdata);
    records
}

impl IncrementalZone {
    /// Signs the zone whole with the reference signer ([`sign_with_keys_cached`]) and keeps
    /// its structure for the next batches. Returns the zone and the signatures made.
    pub fn sign_whole(
        apex: &Name,
        dnssec: &ZoneDnssec,
        records: Vec<Record>,
        keys: &dyn KeyStore,
        cache: &mut SignatureCache,
    ) -> Result<(Self, u64), SignWithKeysError> {
        let signed = sign_with_keys_cached(apex, dnssec, records.clone(), keys, Some(cache))?;
        let groups = zone::group(apex, records);
        let soa = groups[0]
            .records
            .iter()
            .find(|r| r.rtype == rtype::SOA)
            .expect("signing checked the SOA");
        let negative_ttl = negative_ttl(soa);
        let chain = match dnssec.policy.denial {
            Denial::Nsec => Chain::Nsec(
                groups
                    .iter()
                    .filter(|g| g.role != Role::Occluded)
                    .map(|g| Canonical(g.name.clone()))
                    .collect(),
            ),
            _ => Chain::Nsec3(Nsec3Chain::default()),
        };
        let listed: Vec<Name> = groups
            .iter()
            .filter(|g| g.role.in_nsec3_chain())
            .map(|g| g.name.clone())
            .collect();
        let mut sets: HashMap<(Name, bool), Vec<DnssecRrset>> = HashMap::new();
        for s in dnssec_rrsets(apex, &signed) {
            sets.entry(part(&s)).or_default().push(s);
        }
        let mut z = Self {
            apex: apex.clone(),
            dnssec: dnssec.clone(),
            negative_ttl,
            apex_extra: apex_extra(apex, dnssec, negative_ttl),
            nodes: groups
                .into_iter()
                .map(|g| (Canonical(g.name), g.records))
                .collect(),
            chain,
            sets,
            dirty: false,
        };
        let mut touched = Vec::new();
        if let Chain::Nsec3(c) = &mut z.chain {
            for name in &listed {
                c.count_below(apex, name, true, &mut touched);
            }
            touched.extend(listed);
        }
        z.settle_nsec3(touched)
            .map_err(|e| SignError::HashCollision {
                zone: apex.clone(),
                a: e.a,
                b: e.b,
            })?;
        Ok((z, signed.fresh_signatures))
    }

    /// The policy and keys it was signed with.
    pub fn dnssec(&self) -> &ZoneDnssec {
        &self.dnssec
    }

    /// True when an update failed half-way: only [`IncrementalZone::sets`] is to be trusted
    /// and the next signing must be whole.
    pub fn is_stale(&self) -> bool {
        self.dirty
    }

    /// The published sets, in id order.
    pub fn sets(&self) -> Vec<DnssecRrset> {
        let mut v: Vec<DnssecRrset> = self.sets.values().flatten().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The ids of the published sets, in order (what stopping to sign the zone removes).
    pub fn ids(&self) -> Vec<DnssecRrsetId> {
        let mut v: Vec<DnssecRrsetId> =
            self.sets.values().flatten().map(|s| s.id.clone()).collect();
        v.sort();
        v
    }

    /// The number of owners and of NSEC/NSEC3 chain entries kept.
    pub fn size(&self) -> (usize, usize) {
        let chain = match &self.chain {
            Chain::Nsec(c) => c.len(),
            Chain::Nsec3(c) => c.len(),
        };
        (self.nodes.len(), chain)
    }

    /// What replacing `old`'s published sets (none: nothing published) with `new`'s changes:
    /// the whole path's difference, linear in the zone.
    pub fn diff(old: Option<&Self>, new: &Self) -> Published {
        let empty = HashMap::new();
        let old_sets = old.map_or(&empty, |o| &o.sets);
        let mut out = Published::default();
        for (owner, sets) in &new.sets {
            let before = old_sets.get(owner).map_or(&[][..], Vec::as_slice);
            diff_owner(before, sets, &mut out);
        }
        for (owner, sets) in old_sets {
            if !new.sets.contains_key(owner) {
                diff_owner(sets, &[], &mut out);
            }
        }
        out.changed.sort_by(|a, b| a.id.cmp(&b.id));
        out.removed.sort();
        out
    }

    /// Applies a batch: `owners` are the names whose records may have changed, each with all
    /// its records now (none: the name left the zone). Signs what that changes and returns the
    /// sets changed. On error the published sets are unchanged; after
    /// [`IncrementalError::Whole`] (or any error once under way, see
    /// [`IncrementalZone::is_stale`]) the zone must be signed whole.
    pub fn update(
        &mut self,
        owners: Vec<(Name, Vec<Record>)>,
        keys: &dyn KeyStore,
        cache: &mut SignatureCache,
    ) -> Result<Published, IncrementalError> {
        if self.dirty {
            return Err(self.whole("an earlier update failed"));
        }
        // What can fail for want of keys fails first, before anything changes.
        let private = load_private(&self.dnssec, keys).map_err(SignWithKeysError::from)?;
        let find = |loc: &str| private.get(loc).map(|k| k.as_ref() as &dyn SigningKey);
        let signers =
            zone::signers(&self.apex, &self.dnssec, &find).map_err(SignWithKeysError::from)?;

        self.dirty = true;
        // The owners whose records changed, and those whose role follows from them.
        let mut data: BTreeSet<Canonical> = BTreeSet::new();
        for (owner, records) in owners {
            if !owner.is_subdomain_of(&self.apex) {
                continue;
            }
            let records = normalize(&self.apex, &owner, records);
            let key = Canonical(owner);
            let old = self.nodes.get(&key);
            if old.map_or(records.is_empty(), |o| *o == records) {
                continue;
            }
            if key.0 == self.apex {
                let Some(soa) = records.iter().find(|r| r.rtype == rtype::SOA) else {
                    return Err(self.whole("the apex has no SOA"));
                };
                if negative_ttl(soa) != self.negative_ttl {
                    return Err(self.whole("the negative TTL changed"));
                }
            }
            let cut_changed = key.0 != self.apex
                && old.is_some_and(|o| has(o, rtype::NS)) != has(&records, rtype::NS);
            if records.is_empty() {
                self.nodes.remove(&key);
            } else {
                self.nodes.insert(key.clone(), records);
            }
            if cut_changed {
                // The names below the cut follow it in canonical order (RFC 4034 §6.1).
                let below: Vec<Canonical> = self
                    .nodes
                    .range((Excluded(&key), Unbounded))
                    .take_while(|(k, _)| k.0.is_subdomain_of(&key.0))
                    .map(|(k, _)| k.clone())
                    .collect();
                data.extend(below);
            }
            data.insert(key);
        }

        // The chain.
        let mut hashes: BTreeSet<[u8; 20]> = BTreeSet::new();
        if matches!(self.chain, Chain::Nsec(_)) {
            let roles: Vec<(Canonical, bool)> = data
                .iter()
                .map(|k| {
                    let now = self.role_of(&k.0).is_some_and(|r| r != Role::Occluded);
                    (k.clone(), now)
                })
                .collect();
            let Chain::Nsec(set) = &mut self.chain else {
                unreachable!()
            };
            let mut moved = Vec::new();
            for (k, now) in roles {
                if set.contains(&k) != now {
                    if now {
                        set.insert(k.clone());
                    } else {
                        set.remove(&k);
                    }
                    moved.push(k);
                }
            }
            // The predecessor's next name changed.
            for k in moved {
                if let Some(p) = set
                    .range(..&k)
                    .next_back()
                    .or_else(|| set.iter().next_back())
                {
                    data.insert(p.clone());
                }
            }
        } else {
            let mut touched = Vec::new();
            for k in &data {
                let now = self.role_of(&k.0).is_some_and(Role::in_nsec3_chain);
                let Chain::Nsec3(c) = &mut self.chain else {
                    unreachable!()
                };
                if c.is_listed(&k.0) != now {
                    c.count_below(&self.apex, &k.0, now, &mut touched);
                }
                touched.push(k.0.clone());
            }
            hashes = self
                .settle_nsec3(touched)
                .map_err(|_| self.whole("NSEC3 hash collision"))?;
        }

        // Sign the affected owners, as the whole-zone signer signs them.
        let mut batch = SigningBatch::new(&self.apex, &self.dnssec, signers);
        let mut owners: Vec<(Name, bool)> = Vec::with_capacity(data.len() + hashes.len());
        for k in data {
            if let Some(mut node) = self.node(&k.0) {
                if let Chain::Nsec(set) = &self.chain
                    && node.role != Role::Occluded
                {
                    let next = set
                        .range((Excluded(&k), Unbounded))
                        .next()
                        .or_else(|| set.iter().next())
                        .expect("the owner is in the chain");
                    let r = nsec_record(&node, &next.0, self.negative_ttl);
                    node.records.push(r);
                }
                batch.add_node(node);
            }
            owners.push((k.0, false));
        }
        if let Chain::Nsec3(c) = &self.chain {
            for h in &hashes {
                if let Some(e) = c.get(h) {
                    let next = c.next(h).expect("the entry is in the chain");
                    let r = nsec3_record(&self.apex, h, next, &e.types, self.negative_ttl);
                    owners.push((r.owner.clone(), true));
                    batch.add_node(Node {
                        name: r.owner.clone(),
                        role: Role::Authoritative,
                        records: vec![r],
                    });
                } else {
                    owners.push((crate::nsec3::owner(h, &self.apex), true));
                }
            }
        }
        let signed = batch.sign(Some((cache, CacheUse::Update)));
        let mut by_owner: HashMap<(Name, bool), Vec<DnssecRrset>> = HashMap::new();
        for s in dnssec_rrsets(&self.apex, &signed) {
            by_owner.entry(part(&s)).or_default().push(s);
        }
        let mut out = Published {
            fresh_signatures: signed.fresh_signatures,
            owners: owners.len(),
            ..Published::default()
        };
        for owner in owners {
            let old = self.sets.remove(&owner).unwrap_or_default();
            let new = by_owner.remove(&owner).unwrap_or_default();
            diff_owner(&old, &new, &mut out);
            // A signed RRset that left the zone leaves the cache (one entry per RRset).
            for o in &old {
                if o.id.rtype == rtype::RRSIG && !new.iter().any(|s| s.id == o.id) {
                    cache.forget(&owner.0, o.id.covered);
                }
            }
            if !new.is_empty() {
                self.sets.insert(owner, new);
            }
        }
        out.changed.sort_by(|a, b| a.id.cmp(&b.id));
        out.removed.sort();
        self.dirty = false;
        Ok(out)
    }

    fn whole(&self, why: &'static str) -> IncrementalError {
        IncrementalError::Whole {
            zone: self.apex.clone(),
            why,
        }
    }

    /// Brings the NSEC3 entries of `touched` names in line with their records and the names
    /// below them; returns the hashes whose NSEC3 record changed (predecessors included).
    fn settle_nsec3(&mut self, touched: Vec<Name>) -> Result<BTreeSet<[u8; 20]>, chain::Collision> {
        let mut seen = std::collections::HashSet::new();
        let mut wants = Vec::new();
        for p in touched {
            if !seen.insert(p.clone()) {
                continue;
            }
            let want = match self.node(&p) {
                Some(node) if node.role.in_nsec3_chain() => Some(chain::Entry {
                    name: p.clone(),
                    types: nsec3_types(&node),
                    listed: true,
                }),
                Some(_) => None,
                None => None,
            };
            wants.push((p, want));
        }
        let Chain::Nsec3(c) = &mut self.chain else {
            return Ok(BTreeSet::new());
        };
        let mut hashes = BTreeSet::new();
        let mut moved = Vec::new();
        for (p, want) in wants {
            // An empty non-terminal (RFC 5155 §7.1): no records, chain names below it.
            let want = want.or_else(|| {
                (c.below(&p) > 0 && !self.nodes.contains_key(&Canonical(p.clone()))).then(|| {
                    chain::Entry {
                        name: p.clone(),
                        types: Vec::new(),
                        listed: false,
                    }
                })
            });
            match c.set(&p, want)? {
                EntryChange::Same => {}
                EntryChange::Types(h) => {
                    hashes.insert(h);
                }
                EntryChange::Presence(h) => {
                    hashes.insert(h);
                    moved.push(h);
                }
            }
        }
        for h in moved {
            if let Some(p) = c.prev(&h) {
                hashes.insert(*p);
            }
        }
        Ok(hashes)
    }

    /// The role of an owner of the zone (`None`: no records), as `zone::group` tells it.
    fn role_of(&self, name: &Name) -> Option<Role> {
        let records = self.nodes.get(&Canonical(name.clone()))?;
        if name == &self.apex {
            return Some(Role::Apex);
        }
        let mut up = name.parent();
        while let Some(p) = up {
            if p == self.apex || !p.is_subdomain_of(&self.apex) {
                break;
            }
            if self
                .nodes
                .get(&Canonical(p.clone()))
                .is_some_and(|r| has(r, rtype::NS))
            {
                return Some(Role::Occluded);
            }
            up = p.parent();
        }
        Some(if has(records, rtype::NS) {
            Role::Delegation {
                secure: has(records, rtype::DS),
            }
        } else {
            Role::Authoritative
        })
    }

    /// An owner as the whole-zone signer signs it, before its NSEC record: its role and its
    /// records, the apex's DNSKEY and NSEC3PARAM included.
    fn node(&self, name: &Name) -> Option<Node> {
        let role = self.role_of(name)?;
        let mut records = self.nodes.get(&Canonical(name.clone()))?.clone();
        if role == Role::Apex {
            records.extend(self.apex_extra.iter().cloned());
            records.sort_by(|a, b| a.rtype.cmp(&b.rtype).then_with(|| a.rdata.cmp(&b.rdata)));
        }
        Some(Node {
            name: name.clone(),
            role,
            records,
        })
    }
}

/// Appends to `out` what replacing an owner's sets `old` with `new` changes.
fn diff_owner(old: &[DnssecRrset], new: &[DnssecRrset], out: &mut Published) {
    for s in new {
        if old.iter().find(|o| o.id == s.id) != Some(s) {
            out.changed.push(s.clone());
        }
    }
    for o in old {
        if !new.iter().any(|s| s.id == o.id) {
            out.removed.push(o.id.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use orrery_proto::Timestamp;
    use orrery_proto::dnssec::{Algorithm, DnssecPolicy, KeyRole, KeyState, ZoneKey};

    use super::*;
    use crate::key::{FileKeyStore, dnskey_rdata, key_tag};
    use crate::objects::sign_with_keys;
    use crate::rdata;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn soa(serial: u32) -> Record {
        Record::new(
            n("test"),
            rtype::SOA,
            3600,
            rdata::soa(&rdata::Soa {
                mname: &n("a.nic.test"),
                rname: &n("hostmaster.nic.test"),
                serial,
                refresh: 1800,
                retry: 900,
                expire: 2_419_200,
                minimum: 3600,
            }),
        )
    }

    fn dnssec(denial: Denial, keys: &FileKeyStore) -> ZoneDnssec {
        let mut zone_keys = Vec::new();
        for (role, flags) in [(KeyRole::Ksk, 257), (KeyRole::Zsk, 256)] {
            let alg = Algorithm::Ed25519;
            let (locator, k) = keys.generate(&n("test"), alg, flags).unwrap();
            let public_key = k.public_key();
            zone_keys.push(ZoneKey {
                role,
                algorithm: alg,
                key_tag: key_tag(&dnskey_rdata(flags, alg, &public_key)),
                public_key,
                state: KeyState::Active,
                locator,
                created: Timestamp(0),
                published: None,
                activated: None,
                retired: None,
                revoked: None,
                ds_seen: None,
            });
        }
        let mut policy = DnssecPolicy::tld_default(Timestamp(1_800_000_000));
        policy.denial = denial;
        policy.algorithm = Algorithm::Ed25519;
        ZoneDnssec {
            policy,
            keys: zone_keys,
        }
    }

    /// The records a random operation gives one owner: delegations (secure or not, some deep
    /// under empty non-terminals), glue below them, in-zone hosts at several depths (empty
    /// non-terminals above them), and names with hosts below them becoming delegations.
    fn random_owner(rng: &mut Rng, step: u64) -> (Name, Vec<Record>) {
        let names = [
            "d1.test",
            "d2.test",
            "d3.test",
            "ns.d1.test",
            "ns.d2.test",
            "x.sub.test",
            "y.sub.test",
            "z.deep.sub.test",
            "nic.test",
            "a.nic.test",
            "ns1.h1.nic.test",
            "ns2.h1.nic.test",
            "h1.nic.test",
            "ns.h2.nic.test",
            "h2.nic.test",
            "e.f.g.test",
            "f.g.test",
        ];
        let owner = n(names[rng.below(names.len() as u64) as usize]);
        let mut records = Vec::new();
        match rng.below(5) {
            0 => {}
            1 => records.push(Record::new(
                owner.clone(),
                rtype::A,
                172_800,
                vec![192, 0, 2, (step % 250) as u8],
            )),
            _ => {
                records.push(Record::new(
                    owner.clone(),
                    rtype::NS,
                    172_800,
                    rdata::ns(&n("ns.elsewhere.example")),
                ));
                for k in 0..rng.below(3) {
                    let ds = orrery_proto::Ds {
                        key_tag: (step + k) as u16,
                        algorithm: 13,
                        digest_type: 2,
                        digest: vec![(step % 7 + k) as u8; 32],
                    };
                    records.push(Record::new(
                        owner.clone(),
                        rtype::DS,
                        86_400,
                        rdata::ds(&ds),
                    ));
                }
                if rng.below(4) == 0 {
                    records.push(Record::new(
                        owner.clone(),
                        rtype::AAAA,
                        172_800,
                        vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    ));
                }
            }
        }
        (owner, records)
    }

    /// Random batches against signing the whole zone: after each, the kept sets are the whole
    /// zone's, the changes reported are exactly the difference, and the cache holds exactly
    /// the zone's signatures.
    #[test]
    fn updates_equal_signing_the_whole_zone() {
        for denial in [Denial::Nsec3OptOut, Denial::Nsec] {
            let dir = tempfile::tempdir().unwrap();
            let keys = FileKeyStore::open(&dir.path().join("keys")).unwrap();
            let d = dnssec(denial, &keys);
            let apex = n("test");
            let mut zone: BTreeMap<Name, Vec<Record>> = BTreeMap::new();
            zone.insert(
                apex.clone(),
                vec![
                    soa(1),
                    Record::new(
                        apex.clone(),
                        rtype::NS,
                        172_800,
                        rdata::ns(&n("a.nic.test")),
                    ),
                ],
            );
            let all = |z: &BTreeMap<Name, Vec<Record>>| -> Vec<Record> {
                z.values().flatten().cloned().collect()
            };
            let reference = |z: &BTreeMap<Name, Vec<Record>>| {
                let signed = sign_with_keys(&apex, &d, all(z), &keys).unwrap();
                let mut sets = dnssec_rrsets(&apex, &signed);
                sets.sort_by(|a, b| a.id.cmp(&b.id));
                (sets, signed.signatures)
            };
            let mut cache = SignatureCache::default();
            let (mut kept, _) =
                IncrementalZone::sign_whole(&apex, &d, all(&zone), &keys, &mut cache).unwrap();
            let mut rng = Rng(0x1234_5678_9abc ^ denial as u64);
            let (mut want, _) = reference(&zone);
            let mut saw_ent = false;
            for step in 0..300u64 {
                let mut owners = Vec::new();
                let apex_records = vec![
                    soa(step as u32 + 2),
                    Record::new(
                        apex.clone(),
                        rtype::NS,
                        172_800,
                        rdata::ns(&n("a.nic.test")),
                    ),
                ];
                zone.insert(apex.clone(), apex_records.clone());
                owners.push((apex.clone(), apex_records));
                for _ in 0..1 + rng.below(3) {
                    let (owner, records) = random_owner(&mut rng, step);
                    if records.is_empty() {
                        zone.remove(&owner);
                    } else {
                        zone.insert(owner.clone(), records.clone());
                    }
                    owners.push((owner, records));
                }
                let before = want;
                let (now, signatures) = reference(&zone);
                want = now;
                let p = kept.update(owners, &keys, &mut cache).unwrap();
                assert_eq!(kept.sets(), want, "{denial:?} step {step}");
                // The changes are exactly the difference.
                let mut changed: Vec<DnssecRrset> = want
                    .iter()
                    .filter(|s| !before.contains(s))
                    .cloned()
                    .collect();
                changed.sort_by(|a, b| a.id.cmp(&b.id));
                let removed: Vec<DnssecRrsetId> = before
                    .iter()
                    .filter(|s| !want.iter().any(|w| w.id == s.id))
                    .map(|s| s.id.clone())
                    .collect();
                assert_eq!(p.changed, changed, "{denial:?} step {step}");
                assert_eq!(p.removed, removed, "{denial:?} step {step}");
                assert_eq!(cache.len() as u64, signatures, "{denial:?} step {step}");
                saw_ent |= denial == Denial::Nsec3OptOut
                    && want.iter().any(|s| {
                        s.id.rtype == rtype::NSEC3 && {
                            let r = &s.rdata[0];
                            // No types: the bit map is empty (RFC 5155 §7.1).
                            r.len() == 6 + 20
                        }
                    });
            }
            if denial == Denial::Nsec3OptOut {
                assert!(
                    saw_ent,
                    "an empty non-terminal was in the chain at some step"
                );
            }
        }
    }

    /// With opt-out, an insecure delegation coming or going changes only the SOA's RRSIG
    /// (RFC 5155 §6); a secure one changes its DS RRSIG, its NSEC3 and its predecessor's.
    #[test]
    fn an_insecure_delegation_needs_no_signature_but_the_soa() {
        let dir = tempfile::tempdir().unwrap();
        let keys = FileKeyStore::open(&dir.path().join("keys")).unwrap();
        let d = dnssec(Denial::Nsec3OptOut, &keys);
        let apex = n("test");
        let apex_records = |serial| {
            vec![
                soa(serial),
                Record::new(apex.clone(), rtype::NS, 172_800, rdata::ns(&n("ns.other"))),
            ]
        };
        let mut records = apex_records(1);
        for i in 0..20 {
            records.push(Record::new(
                n(&format!("s{i}.test")),
                rtype::NS,
                172_800,
                rdata::ns(&n("ns.other")),
            ));
            records.push(Record::new(
                n(&format!("s{i}.test")),
                rtype::DS,
                86_400,
                rdata::ds(&orrery_proto::Ds {
                    key_tag: i,
                    algorithm: 13,
                    digest_type: 2,
                    digest: vec![1; 32],
                }),
            ));
        }
        let mut cache = SignatureCache::default();
        let (mut z, _) =
            IncrementalZone::sign_whole(&apex, &d, records, &keys, &mut cache).unwrap();
        let insecure = n("plain.test");
        let p = z
            .update(
                vec![
                    (apex.clone(), apex_records(2)),
                    (
                        insecure.clone(),
                        vec![Record::new(
                            insecure.clone(),
                            rtype::NS,
                            172_800,
                            rdata::ns(&n("ns.other")),
                        )],
                    ),
                ],
                &keys,
                &mut cache,
            )
            .unwrap();
        assert_eq!(p.fresh_signatures, 1, "the SOA only");
        assert_eq!(p.changed.len(), 1);
        assert_eq!(
            (p.changed[0].id.rtype, p.changed[0].id.covered),
            (rtype::RRSIG, rtype::SOA)
        );
        let p = z
            .update(
                vec![(apex.clone(), apex_records(3)), (insecure, Vec::new())],
                &keys,
                &mut cache,
            )
            .unwrap();
        assert_eq!((p.fresh_signatures, p.removed.len()), (1, 0));
        let secure = n("new.test");
        let p = z
            .update(
                vec![
                    (apex.clone(), apex_records(4)),
                    (
                        secure.clone(),
                        vec![
                            Record::new(
                                secure.clone(),
                                rtype::NS,
                                172_800,
                                rdata::ns(&n("ns.other")),
                            ),
                            Record::new(
                                secure,
                                rtype::DS,
                                86_400,
                                rdata::ds(&orrery_proto::Ds {
                                    key_tag: 9,
                                    algorithm: 13,
                                    digest_type: 2,
                                    digest: vec![2; 32],
                                }),
                            ),
                        ],
                    ),
                ],
                &keys,
                &mut cache,
            )
            .unwrap();
        // SOA, DS, the new NSEC3 and its predecessor.
        assert_eq!(p.fresh_signatures, 4);
        assert_eq!(p.owners, 4, "apex, the delegation, two NSEC3 owners");
    }
    /// A delegation registered under the name of the apex's NSEC3 record: its sets and the
    /// chain's at that owner are kept apart, and each update equals signing the whole zone.
    #[test]
    fn a_name_equal_to_an_nsec3_owner_keeps_both_parts() {
        let dir = tempfile::tempdir().unwrap();
        let keys = FileKeyStore::open(&dir.path().join("keys")).unwrap();
        let d = dnssec(Denial::Nsec3OptOut, &keys);
        let apex = n("test");
        let twin = crate::nsec3::owner(&chain::hash(&apex), &apex);
        let apex_records = |serial| {
            vec![
                soa(serial),
                Record::new(apex.clone(), rtype::NS, 172_800, rdata::ns(&n("ns.other"))),
            ]
        };
        let twin_records = |tag| {
            vec![
                Record::new(twin.clone(), rtype::NS, 172_800, rdata::ns(&n("ns.other"))),
                Record::new(
                    twin.clone(),
                    rtype::DS,
                    86_400,
                    rdata::ds(&orrery_proto::Ds {
                        key_tag: tag,
                        algorithm: 13,
                        digest_type: 2,
                        digest: vec![3; 32],
                    }),
                ),
            ]
        };
        let mut cache = SignatureCache::default();
        let (mut z, _) =
            IncrementalZone::sign_whole(&apex, &d, apex_records(1), &keys, &mut cache).unwrap();
        for (serial, twin_now) in [(2, twin_records(1)), (3, twin_records(2)), (4, vec![])] {
            z.update(
                vec![
                    (apex.clone(), apex_records(serial)),
                    (twin.clone(), twin_now.clone()),
                ],
                &keys,
                &mut cache,
            )
            .unwrap();
            let mut all = apex_records(serial);
            all.extend(twin_now);
            let signed = sign_with_keys(&apex, &d, all, &keys).unwrap();
            let mut want = dnssec_rrsets(&apex, &signed);
            want.sort_by(|a, b| a.id.cmp(&b.id));
            assert_eq!(z.sets(), want, "serial {serial}");
        }
    }
}
