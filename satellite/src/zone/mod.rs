//! The DNS tables: every zone the satellite serves, compact and copy-on-write.
//!
//! # Layout
//! - [`ZoneSet`]: one version of all zones plus the interned nameserver hosts. Built from
//!   registry objects ([`ZoneSet::build`], [`ZoneSet::from_objects`]) and changed by
//!   [`ZoneSet::apply`] with a [`ChangeBatch`]; the same code path does both, so a snapshot
//!   and a replayed journal agree. Cloning a version is cheap (shard pointers); a batch
//!   applied to the clone copies only the shards it touches ([`crate::served`] swaps it in).
//! - [`ZoneData`]: one zone. Delegations live in a [`table::NameMap`] keyed by the canonical
//!   wire form of the name *directly below the apex* (`Name::child_of`), so the delegation
//!   that covers `www.foo.tld` is found with one probe for `foo.tld`, whatever the query's
//!   depth. Authoritative names deeper in the zone (addresses of the registry's own hosts,
//!   empty non-terminals above them, wildcards) live in a second map of the same kind.
//! - [`hosts::HostTable`]: nameserver hosts, interned once for all zones.
//!
//! # Compactness
//! No allocation per entry: names live in per-shard arenas, a delegation is a fixed record
//! plus its payload in the same arena (its nameservers as `u32` host ids, then its DS records
//! as `key tag, algorithm, digest type, digest length, digest`). The authoritative-node map
//! also counts this zone's references to each in-zone host (the publication rule needs them),
//! so a host name below the apex is stored once per zone, not in two maps.
//!
//! # What is published
//! A zone contains what a registry's generator writes: apex SOA and NS, one NS RRset per
//! delegated domain ([`Domain::is_delegated`]: has nameservers, no hold status) with its DS, and
//! the addresses of hosts that are (a) below the apex and (b) named as a nameserver by the apex
//! or by a delegation of the same zone. Those addresses are glue when the host sits below a
//! delegation and authoritative data otherwise. Host objects nobody refers to are not in DNS.
//! Domains that are not delegated (held, or without nameservers) do not exist: NXDOMAIN.
//!
//! # SOA serial
//! Each zone serves its own serial ([`Zone::serial`], docs/ARCHITECTURE.md "SOA serials"): the
//! journal serial of the last committed change to the zone, which the store keeps and the
//! master sends with every zone a batch touches, so a change elsewhere leaves it alone and the
//! generator's zone file for the same state has the same one. The SOA serial is its low 32 bits:
//! serial arithmetic (RFC 1982 §3) compares serials modulo 2^32, so the truncation is correct
//! while a zone's serial moves by less than 2^31 between two versions a secondary sees. A zone
//! whose serial is unknown (0: from a master older than per-zone serials, or a version 2 state
//! file) serves the journal serial of the whole set instead, the rule of those releases.
//!
//! # Fast build
//! A satellite starts from a snapshot or its state file: a *set* of objects. [`ZoneSet::build`]
//! and [`ZoneSet::from_objects`] build from it in bulk rather than change by change:
//! 1. the zones, then the host objects (names and addresses written once), so that
//! 2. every nameserver an apex or a delegation names resolves to its `u32` id with one lookup
//!    (a name with no host object is interned then), its references counted on the side
//!    (users per id; each reference to a host below its zone's apex);
//! 3. each zone's delegations are partitioned by shard (one counting sort of their indexes)
//!    and each shard written once at its final size, the shards spread over the cores
//!    ([`crate::served::shards::Shards::from_fn_parallel`]);
//! 4. the nodes (referred in-zone hosts, their reference counts, and the non-terminals above
//!    the published ones) the same way, items of one name folded together in their shard.
//!
//! The result is what applying the objects one at a time makes (a unit test compares them).
//! What the bulk build trusts: names are [`Name`]s, so their syntax was checked where the
//! bytes came in (the link's message conversion from the master, the state file and snapshot
//! readers behind their checksum) and is not checked again here. What it does not trust: that
//! the objects are a set. Two zones or two delegations with one name are found (a tag scan in
//! the shard being written) and the build falls back to applying the objects one by one, the
//! last one winning, as a batch would.

pub mod dnssec;
pub mod hosts;
pub mod records;
pub mod table;

use std::net::IpAddr;

use hashbrown::HashMap;
use orrery_proto::name::wire_is_subdomain;
use orrery_proto::{Change, ChangeBatch, Domain, Host, Name, Serial, Soa, Zone};

pub use hosts::{HostId, HostRecord, HostTable};
use table::{NameMap, Record, u32_at};

use crate::served::shards::{build_threads, parallel_runs};

/// Errors of the zone store (cold path).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneError {
    #[error("change batch starts after serial {after}, but the zones are at serial {current}")]
    SerialGap { after: Serial, current: Serial },
}

/// A DS record (RFC 4034 §5.1), as the registration data directory keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsRecord {
    pub key_tag: u16,
    pub algorithm: u8,
    pub digest_type: u8,
    pub digest: Box<[u8]>,
}

/// A DS record in a delegation's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ds<'a> {
    pub key_tag: u16,
    pub algorithm: u8,
    pub digest_type: u8,
    pub digest: &'a [u8],
}

/// The fixed record of a delegation: how many nameserver ids open its payload.
#[derive(Clone, Copy, Debug, Default)]
struct DelegationRecord {
    ns: u16,
}

impl Record for DelegationRecord {
    const SIZE: usize = 2;
    fn pack(&self, out: &mut [u8]) {
        out.copy_from_slice(&self.ns.to_le_bytes());
    }
    fn unpack(bytes: &[u8]) -> Self {
        Self {
            ns: u16::from_le_bytes([bytes[0], bytes[1]]),
        }
    }
}

/// One delegation as the lookup sees it: nameserver ids and DS records (possibly none).
#[derive(Clone, Copy, Debug)]
pub struct Delegation<'a> {
    ns: &'a [[u8; 4]],
    ds: &'a [u8],
}

impl<'a> Delegation<'a> {
    fn new(payload: &'a [u8], record: DelegationRecord) -> Self {
        let (ns, ds) = payload.split_at(4 * record.ns as usize);
        Self {
            ns: ns.as_chunks().0,
            ds,
        }
    }

    /// The nameservers, in registry order.
    #[inline]
    pub fn ns(&self) -> NsIds<'a> {
        NsIds(self.ns.iter())
    }

    /// True when the delegation has DS records.
    #[inline]
    pub fn has_ds(&self) -> bool {
        !self.ds.is_empty()
    }

    /// The DS records, in registry order.
    #[inline]
    pub fn ds(&self) -> DsIter<'a> {
        DsIter(self.ds)
    }
}

/// The nameserver ids of a [`Delegation`].
#[derive(Clone, Debug)]
pub struct NsIds<'a>(std::slice::Iter<'a, [u8; 4]>);

impl Iterator for NsIds<'_> {
    type Item = HostId;
    #[inline]
    fn next(&mut self) -> Option<HostId> {
        self.0.next().map(|b| u32::from_le_bytes(*b))
    }
}

/// The DS records of a [`Delegation`].
#[derive(Clone, Debug)]
pub struct DsIter<'a>(&'a [u8]);

impl<'a> Iterator for DsIter<'a> {
    type Item = Ds<'a>;
    #[inline]
    fn next(&mut self) -> Option<Ds<'a>> {
        let [k0, k1, algorithm, digest_type, len, rest @ ..] = self.0 else {
            return None;
        };
        let (digest, rest) = rest.split_at((*len as usize).min(rest.len()));
        self.0 = rest;
        Some(Ds {
            key_tag: u16::from_be_bytes([*k0, *k1]),
            algorithm: *algorithm,
            digest_type: *digest_type,
            digest,
        })
    }
}

/// The record of a name below the apex: a published host's addresses live here, or published
/// hosts below it make it an empty non-terminal (RFC 8020: it exists, so NODATA rather than
/// NXDOMAIN), and this zone's references to the host of this name.
#[derive(Clone, Copy, Debug)]
struct NodeRecord {
    /// The published host at this name, [`NO_HOST`] if none.
    host: HostId,
    /// Published hosts strictly below this name.
    below: u32,
    /// References to the host of this name from this zone's apex and delegations.
    refs: u32,
}

const NO_HOST: HostId = HostId::MAX;

impl NodeRecord {
    fn exists(&self) -> bool {
        self.host != NO_HOST || self.below > 0
    }
    fn keep(&self) -> bool {
        self.exists() || self.refs > 0
    }
}

impl Default for NodeRecord {
    fn default() -> Self {
        Self {
            host: NO_HOST,
            below: 0,
            refs: 0,
        }
    }
}

impl Record for NodeRecord {
    const SIZE: usize = 12;
    fn pack(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.host.to_le_bytes());
        out[4..8].copy_from_slice(&self.below.to_le_bytes());
        out[8..12].copy_from_slice(&self.refs.to_le_bytes());
    }
    fn unpack(bytes: &[u8]) -> Self {
        Self {
            host: u32_at(bytes, 0),
            below: u32_at(bytes, 4),
            refs: u32_at(bytes, 8),
        }
    }
}

/// A name below the apex that is not a delegation, as the lookup sees it.
#[derive(Clone, Copy, Debug)]
pub struct AuthNode {
    /// The host whose addresses live here, if any.
    pub host: Option<HostId>,
}

/// One zone.
#[derive(Clone, Debug)]
pub struct ZoneData {
    /// Canonical wire form of the apex.
    pub apex: Box<[u8]>,
    pub apex_name: Name,
    pub apex_labels: usize,
    pub soa: Soa,
    pub soa_ttl: u32,
    pub ns_ttl: u32,
    pub ds_ttl: u32,
    /// SOA serial (the zone's serial truncated, see the module docs).
    pub serial: u32,
    /// The zone's own serial, 0 when unknown: the SOA serial then follows the set's.
    own_serial: Serial,
    pub apex_ns: Box<[HostId]>,
    delegations: NameMap<DelegationRecord>,
    nodes: NameMap<NodeRecord>,
    /// Published wildcard owners (`*.…`); zero skips the wildcard search.
    wildcards: u32,
    /// The zone's DNSSEC records from the master (empty when unsigned), [`dnssec`].
    pub signed: dnssec::Signed,
}

impl ZoneData {
    fn new(zone: &Zone, serial: Serial, expected: usize) -> Self {
        Self {
            apex: zone.name.as_wire().into(),
            apex_name: zone.name.clone(),
            apex_labels: zone.name.label_count(),
            soa: zone.soa.clone(),
            soa_ttl: zone.soa_ttl,
            ns_ttl: zone.ns_ttl,
            ds_ttl: zone.ds_ttl,
            serial: zone.soa_serial(serial),
            own_serial: zone.serial,
            apex_ns: Box::new([]),
            delegations: NameMap::with_expected(expected),
            // In-zone hosts and the non-terminals above them: about one per delegation in a
            // registry where a third of the domains have in-bailiwick nameservers.
            nodes: NameMap::with_expected(expected),
            wildcards: 0,
            signed: dnssec::Signed::default(),
        }
    }

    /// The delegation keyed by `child` (a name directly below the apex).
    #[inline]
    pub fn delegation(&self, child: &[u8]) -> Option<Delegation<'_>> {
        self.delegations
            .get(child)
            .map(|f| Delegation::new(f.payload(), f.value()))
    }

    /// The authoritative node at `name`, if it exists.
    #[inline]
    pub fn node(&self, name: &[u8]) -> Option<AuthNode> {
        let rec = self.nodes.value(name)?;
        rec.exists().then_some(AuthNode {
            host: (rec.host != NO_HOST).then_some(rec.host),
        })
    }

    /// True when any wildcard owner is published in the zone.
    pub fn has_wildcards(&self) -> bool {
        self.wildcards > 0
    }

    /// Number of delegations.
    pub fn delegation_count(&self) -> usize {
        self.delegations.len()
    }

    /// TTL of the SOA in negative answers: min(SOA TTL, MINIMUM) (RFC 2308 §3).
    pub fn negative_ttl(&self) -> u32 {
        self.soa_ttl.min(self.soa.minimum)
    }

    /// True when `name` (canonical wire) is at or below the apex.
    pub fn contains(&self, name: &[u8]) -> bool {
        wire_is_subdomain(name, &self.apex)
    }

    /// True when `name` is strictly below the apex (a host this zone publishes if referred to).
    fn in_zone(&self, name: &[u8]) -> bool {
        name.len() != self.apex.len() && wire_is_subdomain(name, &self.apex)
    }

    /// Adds one reference to `id` from this zone; publishes the host when it is in the zone.
    fn add_ref(&mut self, hosts: &HostTable, id: HostId) {
        let name = hosts.get(id).name;
        if !self.in_zone(name) {
            return;
        }
        self.nodes.update(name, true, |n| n.refs += 1, |_| true);
        self.republish(hosts, id);
    }

    fn drop_ref(&mut self, hosts: &HostTable, id: HostId) {
        let name = hosts.get(id).name;
        if self.nodes.value(name).is_some_and(|n| n.refs > 0) {
            self.nodes
                .update(name, false, |n| n.refs -= 1, NodeRecord::keep);
            self.republish(hosts, id);
        }
    }

    /// Makes the authoritative node of host `id` match the publication rule.
    fn republish(&mut self, hosts: &HostTable, id: HostId) {
        let h = hosts.get(id);
        let name = h.name;
        let rec = self.nodes.value(name).unwrap_or_default();
        let want = rec.refs > 0 && (!h.v4.is_empty() || !h.v6.is_empty());
        let have = rec.host == id;
        if want == have {
            return;
        }
        let wildcard = name.starts_with(b"\x01*");
        if want {
            self.nodes.update(name, true, |n| n.host = id, |_| true);
            self.wildcards += u32::from(wildcard);
        } else {
            self.nodes
                .update(name, false, |n| n.host = NO_HOST, NodeRecord::keep);
            self.wildcards -= u32::from(wildcard);
        }
        // Ancestors strictly between the host and the apex are (or stop being) non-terminals.
        let mut pos = 1 + name[0] as usize;
        while name.len() - pos > self.apex.len() {
            let ancestor = &name[pos..];
            if want {
                self.nodes
                    .update(ancestor, true, |n| n.below += 1, |_| true);
            } else {
                self.nodes
                    .update(ancestor, false, |n| n.below -= 1, NodeRecord::keep);
            }
            pos += 1 + name[pos] as usize;
        }
    }

    fn seal(&mut self) {
        self.delegations.seal();
        self.nodes.seal();
        self.signed.seal();
    }

    /// Shards of the delegation table.
    pub fn delegation_shard_count(&self) -> usize {
        self.delegations.shard_count()
    }

    /// Delegation shards this version shares with `other` (an older or newer version of the
    /// same zone): what a batch did not copy.
    pub fn delegation_shards_shared_with(&self, other: &Self) -> usize {
        (0..self.delegations.shard_count())
            .filter(|&i| {
                other.delegations.shard_count() == self.delegations.shard_count()
                    && self.delegations.shares_shard(&other.delegations, i)
            })
            .count()
    }
}

/// One version of the DNS tables: every zone, and the hosts their NS RRsets name.
#[derive(Clone, Debug, Default)]
pub struct ZoneSet {
    /// Journal serial this version reflects.
    pub serial: Serial,
    zones: Vec<ZoneData>,
    by_apex: HashMap<Box<[u8]>, usize>,
    pub hosts: HostTable,
}

impl ZoneSet {
    /// Heap bytes of the DNS tables of this version: every zone's delegations and nodes, the
    /// apex index and the hosts (a close estimate: vector capacities, hash-table slots).
    pub fn heap_bytes(&self) -> usize {
        let zones: usize = self
            .zones
            .iter()
            .map(|z| z.delegations.heap_bytes() + z.nodes.heap_bytes() + z.apex_ns.len() * 4)
            .sum();
        let apexes: usize = self
            .by_apex
            .keys()
            .map(|k| k.len() + size_of::<(Box<[u8]>, usize)>() + 1)
            .sum();
        self.zones.capacity() * size_of::<ZoneData>() + zones + apexes + self.hosts.heap_bytes()
    }

    /// Builds the zones from registry data at journal serial `serial`. Domains of zones not in
    /// `zones` are ignored (a satellite may serve a subset of the registry's zones).
    pub fn build(serial: Serial, zones: &[Zone], domains: &[Domain], hosts: &[Host]) -> Self {
        let zones: Vec<&Zone> = zones.iter().collect();
        let hosts: Vec<&Host> = hosts.iter().collect();
        let domains: Vec<&Domain> = domains.iter().collect();
        Self::from_parts(serial, &zones, &hosts, &domains, build_threads())
    }

    fn sized(serial: Serial, domains: usize, hosts: usize) -> Self {
        Self {
            serial,
            hosts: HostTable::with_expected(hosts + domains / 64),
            ..Self::default()
        }
    }

    /// Builds a version from registry objects (a snapshot or a state file), in any order: zones
    /// go in first, then hosts, then domains, so a domain is published in a zone that exists
    /// whatever order the objects came in. Removals are skipped (a snapshot holds objects,
    /// not changes). The result is what [`ZoneSet::build`] makes from the same objects.
    pub fn from_objects<'a>(serial: Serial, objects: impl IntoIterator<Item = &'a Change>) -> Self {
        Self::from_objects_on(serial, objects, build_threads())
    }

    /// As [`ZoneSet::from_objects`], on at most `threads` threads (the served state leaves a
    /// core to the directory it builds beside).
    pub(crate) fn from_objects_on<'a>(
        serial: Serial,
        objects: impl IntoIterator<Item = &'a Change>,
        threads: usize,
    ) -> Self {
        let (zones, hosts, domains, dnssec) = Self::sort_all(objects);
        let mut set = Self::from_parts(serial, &zones, &hosts, &domains, threads);
        set.put_dnssec(&dnssec);
        set
    }

    /// As [`ZoneSet::from_objects_on`], from a state file's chunks in order: the objects are
    /// sorted by kind a run of chunks per thread (reading each object's kind is a cache miss
    /// per object, 1.85 million at 1M delegations), the runs joined in order, so the result is
    /// what [`ZoneSet::from_objects`] makes of the chunks' objects one after the other.
    pub(crate) fn from_chunks_on(serial: Serial, chunks: &[Vec<Change>], threads: usize) -> Self {
        let started = std::time::Instant::now();
        let runs = parallel_runs(chunks.len(), threads, |run| {
            Self::sort_all(chunks[run].iter().flatten())
        });
        let (mut zones, mut hosts, mut domains, mut dnssec) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (z, h, d, s) in runs {
            zones.extend(z);
            hosts.extend(h);
            domains.extend(d);
            dnssec.extend(s);
        }
        tracing::debug!(
            chunks = chunks.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "objects sorted by kind"
        );
        let mut set = Self::from_parts(serial, &zones, &hosts, &domains, threads);
        set.put_dnssec(&dnssec);
        set
    }

    /// As [`ZoneSet::from_objects`], by applying the objects one at a time as a batch would
    /// (zones, then hosts, then domains). The bulk build falls back to it when the objects
    /// name a zone or a delegation twice; tests and the `zone_build` bench compare the two.
    pub fn from_objects_one_by_one<'a>(
        serial: Serial,
        objects: impl IntoIterator<Item = &'a Change>,
    ) -> Self {
        let (zones, hosts, domains, dnssec) = Self::sort_all(objects);
        let mut set = Self::one_by_one(serial, &zones, &hosts, &domains);
        set.put_dnssec(&dnssec);
        set
    }

    #[cfg(test)]
    fn sort_objects<'a>(
        objects: impl IntoIterator<Item = &'a Change>,
    ) -> (Vec<&'a Zone>, Vec<&'a Host>, Vec<&'a Domain>) {
        let (zones, hosts, domains, _) = Self::sort_all(objects);
        (zones, hosts, domains)
    }

    /// The objects by kind, and the DNSSEC sets (applied after the zones they belong to).
    #[allow(clippy::type_complexity)]
    fn sort_all<'a>(
        objects: impl IntoIterator<Item = &'a Change>,
    ) -> (
        Vec<&'a Zone>,
        Vec<&'a Host>,
        Vec<&'a Domain>,
        Vec<&'a orrery_proto::dnssec::DnssecRrset>,
    ) {
        let mut zones = Vec::new();
        let mut hosts = Vec::new();
        let mut domains = Vec::new();
        let mut dnssec = Vec::new();
        for c in objects {
            match c {
                Change::Zone(z) => zones.push(z),
                Change::Host(h) => hosts.push(h),
                Change::Domain(d) => domains.push(d),
                Change::Dnssec(set) => dnssec.push(set),
                _ => {}
            }
        }
        (zones, hosts, domains, dnssec)
    }

    /// Adds the DNSSEC sets of a snapshot or state file to the zones they name (those of
    /// unknown zones are skipped, as a batch skips them), then seals what they touched.
    fn put_dnssec(&mut self, sets: &[&orrery_proto::dnssec::DnssecRrset]) {
        if sets.is_empty() {
            return;
        }
        // Zone by zone, so that each zone's set map is sized for its sets before they go in.
        let mut by_zone: Vec<Vec<&orrery_proto::dnssec::DnssecRrset>> =
            vec![Vec::new(); self.zones.len()];
        for set in sets {
            if let Some(i) = self.zone_index(&set.id.zone) {
                by_zone[i].push(set);
            }
        }
        for (z, sets) in self.zones.iter_mut().zip(by_zone) {
            z.signed.put_all(&z.apex, sets.into_iter());
            z.signed.seal();
        }
    }

    /// The bulk build, or the one-by-one build if the objects are not a set (see
    /// [`ZoneSet::from_objects_one_by_one`]).
    fn from_parts(
        serial: Serial,
        zones: &[&Zone],
        hosts: &[&Host],
        domains: &[&Domain],
        threads: usize,
    ) -> Self {
        match Self::bulk(serial, zones, hosts, domains, threads.max(1)) {
            Some(set) => set,
            None => {
                tracing::warn!(
                    "the objects name a zone or a domain twice: building them one by one, the last one winning"
                );
                Self::one_by_one(serial, zones, hosts, domains)
            }
        }
    }

    fn one_by_one(serial: Serial, zones: &[&Zone], hosts: &[&Host], domains: &[&Domain]) -> Self {
        let mut set = Self::sized(serial, domains.len(), hosts.len());
        // Size each zone's tables for the domains it will hold.
        let mut per_zone: HashMap<&[u8], usize> = HashMap::new();
        for d in domains {
            *per_zone.entry(d.zone.as_wire()).or_default() += 1;
        }
        for z in zones {
            set.put_zone(z, per_zone.get(z.name.as_wire()).copied().unwrap_or(0));
        }
        for h in hosts {
            set.put_host(h);
        }
        for d in domains {
            set.put_domain(d);
        }
        set.seal();
        set
    }

    /// The bulk build (see "Fast build" in the module docs): the hosts first, every name a
    /// delegation or an apex refers to resolved to its id with one lookup and the references
    /// counted on the side; then each zone's delegation and node maps built shard by shard
    /// on `threads` threads, every shard written once at its final size. `None` when two zones
    /// or two delegations of a zone have the same name.
    fn bulk(
        serial: Serial,
        zones: &[&Zone],
        hosts: &[&Host],
        domains: &[&Domain],
        threads: usize,
    ) -> Option<Self> {
        let started = std::time::Instant::now();
        let mut set = Self::sized(serial, domains.len(), hosts.len());
        for z in zones {
            if set.by_apex.contains_key(z.name.as_wire()) {
                return None;
            }
            set.by_apex.insert(z.name.as_wire().into(), set.zones.len());
            set.zones.push(ZoneData::new(z, serial, 0));
        }
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut refs = References {
            ids: HashMap::with_capacity(hosts.len() + domains.len() / 64),
            ..References::default()
        };
        for h in hosts {
            split_addresses(h, &mut v4, &mut v6);
            let name = h.name.as_wire();
            match refs.ids.get(name) {
                Some(&id) => set.hosts.set_object(id, true, &v4, &v6),
                None => {
                    let id = set.hosts.push_unindexed(name, true, &v4, &v6);
                    refs.ids.insert(name, id);
                }
            }
        }
        let hosts_done = started.elapsed();
        for (i, z) in zones.iter().enumerate() {
            let ids: Box<[HostId]> = z
                .nameservers
                .iter()
                .map(|n| refs.add(&mut set, i, n.as_wire()))
                .collect();
            set.zones[i].apex_ns = ids;
        }
        let (per_zone, ns_ids) = refs.add_delegations(&mut set, domains, threads);
        let references_done = started.elapsed();
        set.hosts.add_users(&refs.users);
        set.hosts.index_all(threads);
        let index_done = started.elapsed();
        let ns_of = |x: &Delegated<'_>| &ns_ids[x.ns_start as usize..][..x.ns as usize];
        for (zone, delegated) in set.zones.iter_mut().zip(&per_zone) {
            zone.delegations = NameMap::build_unique(
                delegated.len(),
                delegated,
                threads,
                |x| x.domain.name.as_wire(),
                |x| delegation_payload_len(ns_of(x), &x.domain.ds),
                |x, out| write_delegation(ns_of(x), &x.domain.ds, out),
            )?;
        }
        let delegations: Vec<usize> = per_zone.iter().map(Vec::len).collect();
        drop(per_zone);
        let delegations_done = started.elapsed();
        // The nodes: each in-zone host a zone refers to, with its reference count, published
        // (its id in the record, its ancestors made non-terminals) when it has addresses.
        refs.in_zone.sort_unstable();
        let hosts = &set.hosts;
        let mut items: Vec<Vec<(&[u8], NodeRecord)>> =
            (0..zones.len()).map(|_| Vec::new()).collect();
        for run in refs.in_zone.chunk_by(|a, b| a == b) {
            let (zone, id) = ((run[0] >> 32) as usize, run[0] as HostId);
            let h = hosts.get(id);
            let published = !h.v4.is_empty() || !h.v6.is_empty();
            let apex = set.zones[zone].apex.len();
            let items = &mut items[zone];
            items.push((
                h.name,
                NodeRecord {
                    host: if published { id } else { NO_HOST },
                    below: 0,
                    refs: run.len() as u32,
                },
            ));
            if !published {
                continue;
            }
            set.zones[zone].wildcards += u32::from(h.name.starts_with(b"\x01*"));
            let mut pos = 1 + h.name[0] as usize;
            while h.name.len() - pos > apex {
                items.push((
                    &h.name[pos..],
                    NodeRecord {
                        host: NO_HOST,
                        below: 1,
                        refs: 0,
                    },
                ));
                pos += 1 + h.name[pos] as usize;
            }
        }
        for ((zone, items), delegated) in set.zones.iter_mut().zip(&items).zip(&delegations) {
            // Sized as the one-by-one build sizes it: for about one node a delegation.
            zone.nodes = NameMap::build_merged(*delegated, items, threads, |a, b| {
                if b.host != NO_HOST {
                    a.host = b.host;
                }
                a.below += b.below;
                a.refs += b.refs;
            });
        }
        drop(items);
        set.hosts.seal();
        // Where a start's build goes (RUST_LOG=orrery_satellite=debug), phase by phase.
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(
            threads,
            hosts_ms = ms(hosts_done),
            references_ms = ms(references_done - hosts_done),
            host_index_ms = ms(index_done - references_done),
            delegations_ms = ms(delegations_done - index_done),
            nodes_ms = ms(started.elapsed() - delegations_done),
            "bulk build phases"
        );
        Some(set)
    }

    /// Applies a batch in place. The batch must follow this version (`batch.after == serial`);
    /// it is checked before anything changes, and nothing after that check can fail, so the
    /// batch is applied whole. Apply it to a clone to keep the version before it: the clone
    /// shares every shard the batch does not touch.
    pub fn apply(&mut self, batch: &ChangeBatch) -> Result<(), ZoneError> {
        if batch.after != self.serial {
            return Err(ZoneError::SerialGap {
                after: batch.after,
                current: self.serial,
            });
        }
        self.reserve_dnssec(&batch.changes);
        for change in &batch.changes {
            self.apply_change(change);
        }
        self.serial = batch.upto;
        // Zones the batch touched came with their new serial; only zones without one follow
        // the set's.
        for z in self.zones.iter_mut().filter(|z| z.own_serial == 0) {
            z.serial = batch.upto as u32;
        }
        self.seal();
        Ok(())
    }

    /// Sizes each zone's DNSSEC set map for the sets a batch brings, before they go in: the
    /// first batch of a zone that becomes signed carries all of its sets, and a map sized for
    /// none would be re-split only at the seal, after every insert had scanned one long shard.
    fn reserve_dnssec(&mut self, changes: &[Change]) {
        // Few sets (the usual batch) fit any map's slack: not worth a pass.
        const FEW: usize = 64;
        let sets = changes.iter().filter(|c| matches!(c, Change::Dnssec(_)));
        if sets.clone().nth(FEW).is_none() {
            return;
        }
        let mut by_zone = vec![0usize; self.zones.len()];
        for c in sets {
            if let Change::Dnssec(set) = c
                && let Some(i) = self.zone_index(&set.id.zone)
            {
                by_zone[i] += 1;
            }
        }
        for (z, n) in self.zones.iter_mut().zip(by_zone) {
            z.signed.reserve(n);
        }
    }

    /// Compacts what the edits since the last seal touched.
    fn seal(&mut self) {
        for z in &mut self.zones {
            z.seal();
        }
        self.hosts.seal();
    }

    /// One change (the DNS part of it: contacts and registrars are not in DNS).
    fn apply_change(&mut self, change: &Change) {
        match change {
            Change::Zone(z) => self.put_zone(z, 0),
            Change::ZoneRemoved(name) => self.remove_zone(name),
            Change::Domain(d) => self.put_domain(d),
            Change::DomainRemoved(name) => self.remove_domain(name),
            Change::Host(h) => self.put_host(h),
            Change::HostRemoved(name) => self.remove_host(name),
            Change::Contact(_)
            | Change::ContactRemoved(_)
            | Change::Registrar(_)
            | Change::RegistrarRemoved(_) => {}
            Change::Dnssec(set) => {
                if let Some(i) = self.zone_index(&set.id.zone) {
                    let z = &mut self.zones[i];
                    z.signed.put(&z.apex, set);
                }
            }
            Change::DnssecRemoved(id) => {
                if let Some(i) = self.zone_index(&id.zone) {
                    let z = &mut self.zones[i];
                    z.signed.remove(&z.apex, id);
                }
            }
        }
    }

    /// The zones, in no particular order.
    pub fn zones(&self) -> &[ZoneData] {
        &self.zones
    }

    /// The zone with the longest apex that contains `qname` (canonical wire), with the number
    /// of labels of `qname` above that apex. Few zones: one map probe per suffix of the name.
    pub fn find_zone(&self, qname: &[u8]) -> Option<&ZoneData> {
        let mut pos = 0;
        loop {
            if let Some(&i) = self.by_apex.get(&qname[pos..]) {
                return Some(&self.zones[i]);
            }
            let len = *qname.get(pos)? as usize;
            if len == 0 {
                return None;
            }
            pos += 1 + len;
        }
    }

    /// The zone with apex `apex`.
    pub fn zone(&self, apex: &Name) -> Option<&ZoneData> {
        self.by_apex.get(apex.as_wire()).map(|&i| &self.zones[i])
    }

    fn zone_index(&self, apex: &Name) -> Option<usize> {
        self.by_apex.get(apex.as_wire()).copied()
    }

    fn put_zone(&mut self, z: &Zone, expected: usize) {
        let i = match self.zone_index(&z.name) {
            Some(i) => i,
            None => {
                self.zones.push(ZoneData::new(z, self.serial, expected));
                let i = self.zones.len() - 1;
                self.by_apex.insert(z.name.as_wire().into(), i);
                i
            }
        };
        let ids: Vec<HostId> = z
            .nameservers
            .iter()
            .map(|n| self.hosts.intern(n.as_wire()))
            .collect();
        for &id in &ids {
            self.hosts.add_user(id);
            self.zones[i].add_ref(&self.hosts, id);
        }
        let zone = &mut self.zones[i];
        zone.soa = z.soa.clone();
        zone.soa_ttl = z.soa_ttl;
        zone.ns_ttl = z.ns_ttl;
        zone.ds_ttl = z.ds_ttl;
        zone.serial = z.soa_serial(self.serial);
        zone.own_serial = z.serial;
        let old = std::mem::replace(&mut zone.apex_ns, ids.into_boxed_slice());
        self.release(i, &old);
    }

    fn remove_zone(&mut self, name: &Name) {
        let Some(i) = self.zone_index(name) else {
            return;
        };
        let zone = self.zones.swap_remove(i);
        let mut released: Vec<HostId> = zone.apex_ns.to_vec();
        for d in zone.delegations.iter() {
            released.extend(Delegation::new(d.payload(), d.value()).ns());
        }
        for id in released {
            self.hosts.drop_user(id);
        }
        self.by_apex.clear();
        for (j, z) in self.zones.iter().enumerate() {
            self.by_apex.insert(z.apex.clone(), j);
        }
    }

    /// Drops references held by zone `i` to `ids`.
    fn release(&mut self, i: usize, ids: &[HostId]) {
        for &id in ids {
            self.zones[i].drop_ref(&self.hosts, id);
            self.hosts.drop_user(id);
        }
    }

    /// The zone that holds `domain`'s delegation: the zone named by the domain, if the domain
    /// is directly below its apex.
    fn domain_zone(&self, domain: &Name, zone: &Name) -> Option<usize> {
        let i = self.zone_index(zone)?;
        let name = domain.as_wire();
        // The parent's wire form is the name without its first label (no `Name` made).
        let first = 1 + *name.first()? as usize;
        (name.len() > 1 && &name[first..] == zone.as_wire()).then_some(i)
    }

    /// The zone a domain's delegation goes in ([`ZoneSet::domain_zone`]).
    fn delegating_zone(&self, d: &Domain) -> Option<usize> {
        self.domain_zone(&d.name, &d.zone)
    }

    fn put_domain(&mut self, d: &Domain) {
        let Some(i) = self.domain_zone(&d.name, &d.zone) else {
            return;
        };
        let key = d.name.as_wire();
        let old: Vec<HostId> = self.zones[i]
            .delegation(key)
            .map(|del| del.ns().collect())
            .unwrap_or_default();
        // More nameservers or DS bytes than a record can say are cut (no registry sends them:
        // EPP servers cap nameservers at 13 or so, and a DNS message could not carry them).
        let ns: Vec<HostId> = if d.is_delegated() {
            d.nameservers
                .iter()
                .take(u16::MAX as usize)
                .map(|n| self.hosts.intern(n.as_wire()))
                .collect()
        } else {
            Vec::new()
        };
        for &id in &ns {
            self.hosts.add_user(id);
            self.zones[i].add_ref(&self.hosts, id);
        }
        if d.is_delegated() {
            let mut payload = Vec::with_capacity(delegation_payload_len(&ns, &d.ds));
            let record = write_delegation(&ns, &d.ds, &mut payload);
            self.zones[i].delegations.insert(key, &payload, record);
        } else {
            self.zones[i].delegations.remove(key);
        }
        self.release(i, &old);
    }

    fn remove_domain(&mut self, name: &Name) {
        let Some(parent) = name.parent() else {
            return;
        };
        let Some(i) = self.zone_index(&parent) else {
            return;
        };
        let Some(old) = self.zones[i]
            .delegation(name.as_wire())
            .map(|del| del.ns().collect::<Vec<_>>())
        else {
            return;
        };
        self.zones[i].delegations.remove(name.as_wire());
        self.release(i, &old);
    }

    fn put_host(&mut self, h: &Host) {
        let id = self.hosts.intern(h.name.as_wire());
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        split_addresses(h, &mut v4, &mut v6);
        self.hosts.set_object(id, true, &v4, &v6);
        self.republish_everywhere(id);
    }

    fn remove_host(&mut self, name: &Name) {
        let Some(id) = self.hosts.find(name.as_wire()) else {
            return;
        };
        self.hosts.set_object(id, false, &[], &[]);
        self.republish_everywhere(id);
        self.hosts.collect(id);
    }

    fn republish_everywhere(&mut self, id: HostId) {
        for z in &mut self.zones {
            if z.nodes.get(self.hosts.get(id).name).is_some() {
                z.republish(&self.hosts, id);
            }
        }
    }
}

/// A host's addresses by family into `v4` and `v6` (cleared first): at most 255 of each (a
/// host record's count; registries allow a handful).
fn split_addresses(h: &Host, v4: &mut Vec<[u8; 4]>, v6: &mut Vec<[u8; 16]>) {
    v4.clear();
    v6.clear();
    for a in &h.addresses {
        match a {
            IpAddr::V4(a) if v4.len() < u8::MAX as usize => v4.push(a.octets()),
            IpAddr::V6(a) if v6.len() < u8::MAX as usize => v6.push(a.octets()),
            _ => {}
        }
    }
}

/// Bytes [`write_delegation`] appends.
fn delegation_payload_len(ns: &[HostId], ds: &[orrery_proto::Ds]) -> usize {
    4 * ns.len()
        + ds.iter()
            .map(|d| 5 + d.digest.len().min(u8::MAX as usize))
            .sum::<usize>()
}

/// Appends a delegation's payload (its nameserver ids, then its DS records) and returns its
/// record. More DS digest bytes than a length byte can say are cut (no DS digest type has
/// them).
fn write_delegation(ns: &[HostId], ds: &[orrery_proto::Ds], out: &mut Vec<u8>) -> DelegationRecord {
    for id in ns {
        out.extend_from_slice(&id.to_le_bytes());
    }
    for ds in ds {
        let digest = &ds.digest[..ds.digest.len().min(u8::MAX as usize)];
        out.extend_from_slice(&ds.key_tag.to_be_bytes());
        out.extend_from_slice(&[ds.algorithm, ds.digest_type, digest.len() as u8]);
        out.extend_from_slice(digest);
    }
    DelegationRecord {
        ns: ns.len() as u16,
    }
}

/// What a bulk build keeps while it resolves names to host ids: the id of each name (one
/// hash lookup, the host table's own index being written once at the end), users of each id
/// (all zones), and each reference from a zone to a host below its apex as `zone << 32 | id`.
#[derive(Default)]
struct References<'a> {
    ids: HashMap<&'a [u8], HostId>,
    users: Vec<u32>,
    in_zone: Vec<u64>,
}

/// A delegation of the bulk build: its domain and where its nameserver ids start in the
/// build's list of them.
struct Delegated<'a> {
    domain: &'a Domain,
    ns_start: u32,
    ns: u16,
}

/// A run of domains whose references one thread resolved against the hosts known before them
/// ([`References::add_delegations`]).
#[derive(Default)]
struct ResolvedRun<'a> {
    /// The run's delegations by zone, `ns_start` counted from the run's first id.
    per_zone: Vec<Vec<Delegated<'a>>>,
    ns_ids: Vec<HostId>,
    /// Names not known yet, each once, in the order the run first refers to them.
    missing: Vec<&'a [u8]>,
    /// `(position in ns_ids, index in missing)` of the ids left to fill.
    holes: Vec<(u32, u32)>,
    /// `zone << 32 | position in ns_ids` of the references to a host below the zone's apex.
    in_zone: Vec<u64>,
}

impl<'a> References<'a> {
    /// The references of every delegation among `domains`: their ids in one list, and the
    /// delegations by zone with where their ids start in it. As [`References::add`] for each
    /// nameserver of each domain in order (the same ids, users and in-zone references), but
    /// most of the work on `threads` threads: each resolves a run of the domains against the
    /// map as it stands (read only), keeping the names it does not find; then, run by run in
    /// order, those few names (the hosts without an object, the shared hosting nameservers)
    /// are interned as the loop in order would have interned them.
    fn add_delegations(
        &mut self,
        set: &mut ZoneSet,
        domains: &[&'a Domain],
        threads: usize,
    ) -> (Vec<Vec<Delegated<'a>>>, Vec<HostId>) {
        let zones = set.zones.len();
        // Runs of at least this many domains: fewer are not worth a thread (tests split
        // their few thousand domains too, so that both paths are compared).
        const MIN_RUN: usize = if cfg!(test) { 64 } else { 16_384 };
        let threads = threads.min(domains.len().div_ceil(MIN_RUN)).max(1);
        let runs = {
            let (set, ids) = (&*set, &self.ids);
            parallel_runs(domains.len(), threads, |run| {
                let mut out = ResolvedRun {
                    per_zone: (0..zones).map(|_| Vec::new()).collect(),
                    ns_ids: Vec::with_capacity(2 * run.len()),
                    ..ResolvedRun::default()
                };
                let mut missing: HashMap<&[u8], u32> = HashMap::new();
                for d in &domains[run] {
                    if !d.is_delegated() {
                        continue;
                    }
                    let Some(i) = set.delegating_zone(d) else {
                        continue;
                    };
                    let ns_start = out.ns_ids.len() as u32;
                    for n in d.nameservers.iter().take(u16::MAX as usize) {
                        let name = n.as_wire();
                        let at = out.ns_ids.len() as u32;
                        match ids.get(name) {
                            Some(&id) => out.ns_ids.push(id),
                            None => {
                                let miss = *missing.entry(name).or_insert_with(|| {
                                    out.missing.push(name);
                                    out.missing.len() as u32 - 1
                                });
                                out.holes.push((at, miss));
                                out.ns_ids.push(0);
                            }
                        }
                        if set.zones[i].in_zone(name) {
                            out.in_zone.push((i as u64) << 32 | u64::from(at));
                        }
                    }
                    out.per_zone[i].push(Delegated {
                        domain: d,
                        ns_start,
                        ns: (out.ns_ids.len() as u32 - ns_start) as u16,
                    });
                }
                out
            })
        };
        let mut ns_ids: Vec<HostId> = Vec::new();
        let mut per_zone: Vec<Vec<Delegated<'a>>> = (0..zones).map(|_| Vec::new()).collect();
        for mut run in runs {
            let found: Vec<HostId> = run
                .missing
                .iter()
                .map(|&name| {
                    *self
                        .ids
                        .entry(name)
                        .or_insert_with(|| set.hosts.push_unindexed(name, false, &[], &[]))
                })
                .collect();
            for (at, miss) in run.holes {
                run.ns_ids[at as usize] = found[miss as usize];
            }
            for r in run.in_zone {
                let id = run.ns_ids[r as u32 as usize];
                self.in_zone.push(r >> 32 << 32 | u64::from(id));
            }
            let base = ns_ids.len() as u32;
            for (all, mut part) in per_zone.iter_mut().zip(run.per_zone) {
                for x in &mut part {
                    x.ns_start += base;
                }
                if all.is_empty() {
                    *all = part;
                } else {
                    all.append(&mut part);
                }
            }
            if ns_ids.is_empty() {
                ns_ids = run.ns_ids;
            } else {
                ns_ids.append(&mut run.ns_ids);
            }
        }
        let ids = ns_ids.iter().map(|&id| id as usize + 1).max().unwrap_or(0);
        if self.users.len() < ids {
            self.users.resize(ids, 0);
        }
        for &id in &ns_ids {
            self.users[id as usize] += 1;
        }
        (per_zone, ns_ids)
    }

    /// The id of `name` (interned if new), referred to once more by zone `zone`.
    fn add(&mut self, set: &mut ZoneSet, zone: usize, name: &'a [u8]) -> HostId {
        let id = *self
            .ids
            .entry(name)
            .or_insert_with(|| set.hosts.push_unindexed(name, false, &[], &[]));
        if self.users.len() <= id as usize {
            self.users.resize(id as usize + 1, 0);
        }
        self.users[id as usize] += 1;
        if set.zones[zone].in_zone(name) {
            self.in_zone.push((zone as u64) << 32 | u64::from(id));
        }
        id
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use orrery_proto::{EppStatus, Timestamp};

    pub(crate) fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    pub(crate) fn zone(apex: &str, ns: &[&str]) -> Zone {
        Zone {
            name: n(apex),
            soa: Soa {
                mname: n(&format!("a.nic.{apex}")),
                rname: n(&format!("hostmaster.nic.{apex}")),
                refresh: 1800,
                retry: 900,
                expire: 604800,
                minimum: 300,
            },
            soa_ttl: 3600,
            ns_ttl: 86400,
            ds_ttl: 3600,
            nameservers: ns.iter().map(|s| n(s)).collect(),
            serial: 0,
        }
    }

    pub(crate) fn domain(name: &str, apex: &str, ns: &[&str]) -> Domain {
        Domain {
            name: n(name),
            zone: n(apex),
            roid: "D1-TEST".into(),
            registrar: "r1".into(),
            created: Timestamp(0),
            updated: Timestamp(0),
            expires: Timestamp(0),
            statuses: vec![EppStatus::Ok],
            registrant: None,
            admin: None,
            tech: None,
            billing: None,
            nameservers: ns.iter().map(|s| n(s)).collect(),
            ds: vec![],
        }
    }

    pub(crate) fn host(name: &str, addrs: &[&str]) -> Host {
        Host {
            name: n(name),
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            registrar: None,
            created: Timestamp(0),
            updated: Timestamp(0),
        }
    }

    /// A signed test zone `tld` (one CSK, algorithm 13 with NSEC3 opt-out or 15 with NSEC) as a
    /// master would send it: the objects and the signer's DNSSEC sets. Also returns the signed
    /// zone, the reference the answers are checked against. `foo.tld` and `bar.tld` are
    /// insecure delegations, `signed.tld` has a DS, `a.nic.tld`/`b.nic.tld` are authoritative
    /// (`nic.tld` an empty non-terminal), `*.w.tld` a wildcard.
    pub(crate) fn signed_sample(
        denial: orrery_proto::dnssec::Denial,
    ) -> (ZoneSet, Vec<Change>, orrery_signer::SignedZone) {
        use orrery_proto::dnssec::{
            Algorithm, Denial, DnssecPolicy, KeyRole, KeyState, ZoneDnssec, ZoneKey,
        };
        use orrery_signer::key::{SigningKey, dnskey_rdata};
        use orrery_signer::{PrivateKey, key_tag, objects};
        let key = match denial {
            Denial::Nsec => PrivateKey::ed25519_from_seed(&[7; 32]).unwrap(),
            _ => PrivateKey::p256_from_scalar(&[5; 32]).unwrap(),
        };
        let alg = key.algorithm();
        let public_key = key.public_key();
        let mut policy = DnssecPolicy::tld_default(Timestamp(1_800_000_000));
        policy.denial = denial;
        policy.algorithm = alg;
        assert!(matches!(
            alg,
            Algorithm::EcdsaP256Sha256 | Algorithm::Ed25519
        ));
        let dnssec = ZoneDnssec {
            policy,
            keys: vec![ZoneKey {
                role: KeyRole::Csk,
                algorithm: alg,
                key_tag: key_tag(&dnskey_rdata(257, alg, &public_key)),
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
        };
        let z = zone(
            "tld",
            &["a.nic.tld", "b.nic.tld", "*.w.tld", "ns.outside.example"],
        );
        let mut signed = domain("signed.tld", "tld", &["ns1.signed.tld", "ns.other.example"]);
        signed.ds = vec![orrery_proto::Ds {
            key_tag: 12345,
            algorithm: 13,
            digest_type: 2,
            digest: vec![0xAA; 32],
        }];
        let domains = [
            domain("foo.tld", "tld", &["ns1.foo.tld", "ns2.foo.tld"]),
            domain("bar.tld", "tld", &["ns1.foo.tld", "ns.bar.example"]),
            signed,
        ];
        let hosts = [
            host("a.nic.tld", &["192.0.2.1", "2001:db8::1"]),
            host("b.nic.tld", &["192.0.2.2"]),
            host("*.w.tld", &["192.0.2.5"]),
            host("ns1.foo.tld", &["192.0.2.10", "2001:db8::10"]),
            host("ns2.foo.tld", &["192.0.2.11"]),
            host("ns1.signed.tld", &["192.0.2.20"]),
        ];
        let mut records = Vec::new();
        objects::apex_records(&z, 7, &mut records);
        for d in &domains {
            objects::domain_records(&z, d, &mut records);
        }
        for h in &hosts {
            objects::host_records(&z, h, &mut records);
        }
        let signed_zone = orrery_signer::sign_zone(&z.name, records, &dnssec, &|_| {
            Some(&key as &dyn SigningKey)
        })
        .unwrap();
        let mut changes = vec![Change::Zone(z.clone())];
        changes.extend(hosts.iter().cloned().map(Change::Host));
        changes.extend(domains.iter().cloned().map(Change::Domain));
        changes.extend(
            orrery_signer::dnssec_rrsets(&z.name, &signed_zone)
                .into_iter()
                .map(Change::Dnssec),
        );
        (ZoneSet::from_objects(7, &changes), changes, signed_zone)
    }

    /// The test zone used across the crate's unit tests.
    pub(crate) fn sample() -> ZoneSet {
        let mut signed = domain("signed.tld", "tld", &["ns1.signed.tld", "ns.other.example"]);
        signed.ds = vec![orrery_proto::Ds {
            key_tag: 12345,
            algorithm: 13,
            digest_type: 2,
            digest: vec![0xAA; 32],
        }];
        let mut held = domain("held.tld", "tld", &["ns1.foo.tld"]);
        held.statuses = vec![EppStatus::ServerHold];
        ZoneSet::build(
            7,
            &[zone(
                "tld",
                &["a.nic.tld", "b.nic.tld", "ns.outside.example"],
            )],
            &[
                domain("foo.tld", "tld", &["ns1.foo.tld", "ns2.foo.tld"]),
                domain("bar.tld", "tld", &["ns1.foo.tld", "ns.bar.example"]),
                signed,
                held,
                domain("nons.tld", "tld", &[]),
                domain("wild.tld", "other", &["x.tld"]),
            ],
            &[
                host("a.nic.tld", &["192.0.2.1", "2001:db8::1"]),
                host("b.nic.tld", &["192.0.2.2"]),
                host("ns1.foo.tld", &["192.0.2.10", "2001:db8::10"]),
                host("ns2.foo.tld", &["192.0.2.11"]),
                host("ns1.signed.tld", &["192.0.2.20"]),
                host("unused.tld", &["192.0.2.99"]),
                host("*.wild.example", &["192.0.2.98"]),
            ],
        )
    }

    #[test]
    fn builds_delegations_and_nodes() {
        let set = sample();
        let z = set.find_zone(n("www.foo.tld").as_wire()).unwrap();
        assert_eq!(&*z.apex, n("tld").as_wire());
        assert_eq!(z.serial, 7);
        assert_eq!(z.delegation_count(), 3);
        assert!(z.delegation(n("foo.tld").as_wire()).is_some());
        assert!(z.delegation(n("held.tld").as_wire()).is_none());
        assert!(z.delegation(n("nons.tld").as_wire()).is_none());
        // Published: a.nic.tld, b.nic.tld with nic.tld as an empty non-terminal.
        assert!(z.node(n("a.nic.tld").as_wire()).unwrap().host.is_some());
        assert!(z.node(n("nic.tld").as_wire()).unwrap().host.is_none());
        // Glue hosts are nodes too (occluded by the delegation at lookup time).
        assert!(z.node(n("ns1.foo.tld").as_wire()).is_some());
        // Nobody refers to unused.tld.
        assert!(z.node(n("unused.tld").as_wire()).is_none());
        assert!(set.find_zone(n("example").as_wire()).is_none());
        // ns1.foo.tld is interned once though three delegations use it.
        assert_eq!(
            set.hosts
                .ids()
                .filter(|&id| set.hosts.get(id).name == n("ns1.foo.tld").as_wire())
                .count(),
            1
        );
        // Delegation contents: nameservers in order, DS records decoded.
        let hosts = &set.hosts;
        let names = |d: Delegation<'_>| -> Vec<Vec<u8>> {
            d.ns().map(|id| hosts.get(id).name.to_vec()).collect()
        };
        let foo = z.delegation(n("foo.tld").as_wire()).unwrap();
        assert_eq!(
            names(foo),
            [
                n("ns1.foo.tld").as_wire().to_vec(),
                n("ns2.foo.tld").as_wire().to_vec()
            ]
        );
        assert!(!foo.has_ds() && foo.ds().next().is_none());
        let signed = z.delegation(n("signed.tld").as_wire()).unwrap();
        let ds: Vec<Ds<'_>> = signed.ds().collect();
        assert_eq!(
            ds,
            [Ds {
                key_tag: 12345,
                algorithm: 13,
                digest_type: 2,
                digest: &[0xAA; 32]
            }]
        );
        let glue = hosts.get(hosts.find(n("ns1.foo.tld").as_wire()).unwrap());
        assert_eq!(glue.v4, &[[192, 0, 2, 10]]);
        assert_eq!(glue.v6.len(), 1);
    }

    #[test]
    fn from_objects_builds_what_build_builds() {
        let zones = vec![zone("tld", &["a.nic.tld", "ns.outside.example"])];
        let domains = vec![
            domain("foo.tld", "tld", &["ns1.foo.tld", "a.nic.tld"]),
            domain("bar.tld", "tld", &["ns1.foo.tld", "ns.bar.example"]),
            domain("nons.tld", "tld", &[]),
        ];
        let hosts = vec![
            host("a.nic.tld", &["192.0.2.1"]),
            host("ns1.foo.tld", &["192.0.2.10"]),
            host("unused.tld", &["192.0.2.99"]),
        ];
        let whole = ZoneSet::build(7, &zones, &domains, &hosts);
        // In the reverse of the master's order (domains before their zone).
        let objects: Vec<Change> = (domains.iter().cloned().map(Change::Domain))
            .chain(hosts.iter().cloned().map(Change::Host))
            .chain(zones.iter().cloned().map(Change::Zone))
            .collect();
        let built = ZoneSet::from_objects(7, &objects);
        assert_eq!(built.serial, 7);
        let (a, b) = (
            whole.zone(&n("tld")).unwrap(),
            built.zone(&n("tld")).unwrap(),
        );
        assert_eq!(
            (a.serial, a.delegation_count()),
            (b.serial, b.delegation_count())
        );
        for name in [
            "foo.tld",
            "bar.tld",
            "nons.tld",
            "a.nic.tld",
            "ns1.foo.tld",
            "unused.tld",
        ] {
            let w = n(name);
            assert_eq!(
                a.delegation(w.as_wire()).map(|d| d.ns().count()),
                b.delegation(w.as_wire()).map(|d| d.ns().count()),
                "{name}"
            );
            assert_eq!(
                a.node(w.as_wire()).map(|n| n.host.is_some()),
                b.node(w.as_wire()).map(|n| n.host.is_some()),
                "{name}"
            );
        }
        assert_eq!(whole.hosts.len(), built.hosts.len());
    }

    /// Everything a version serves, by name (ids replaced by host names, so two builds that
    /// number hosts differently compare equal): per zone its apex fields, delegations (names
    /// of nameservers, DS bytes), nodes (host name, non-terminal count, references) and
    /// wildcard count; the hosts with their addresses, `exists` and users.
    type Dump = (
        Vec<(Vec<u8>, u32, Vec<Vec<u8>>, u32)>,
        std::collections::BTreeMap<Vec<u8>, (Vec<Vec<u8>>, Vec<u8>)>,
        std::collections::BTreeMap<(Vec<u8>, Vec<u8>), (Option<Vec<u8>>, u32, u32)>,
        std::collections::BTreeMap<Vec<u8>, (Vec<[u8; 4]>, Vec<[u8; 16]>, bool, u32)>,
    );

    fn dump(set: &ZoneSet) -> Dump {
        let name = |id: HostId| set.hosts.get(id).name.to_vec();
        let mut zones = Vec::new();
        let mut delegations = std::collections::BTreeMap::new();
        let mut nodes = std::collections::BTreeMap::new();
        for z in set.zones() {
            zones.push((
                z.apex.to_vec(),
                z.serial,
                z.apex_ns.iter().map(|&id| name(id)).collect(),
                z.wildcards,
            ));
            assert_eq!(z.delegations.iter().count(), z.delegations.len());
            for f in z.delegations.iter() {
                let d = Delegation::new(f.payload(), f.value());
                let ds = &f.payload()[4 * d.ns().count()..];
                delegations.insert(f.name().to_vec(), (d.ns().map(name).collect(), ds.to_vec()));
            }
            assert_eq!(z.nodes.iter().count(), z.nodes.len());
            for f in z.nodes.iter() {
                let r = f.value();
                let host = (r.host != NO_HOST).then(|| name(r.host));
                nodes.insert(
                    (z.apex.to_vec(), f.name().to_vec()),
                    (host, r.below, r.refs),
                );
            }
        }
        zones.sort();
        let hosts = set
            .hosts
            .ids()
            .map(|id| {
                let h = set.hosts.get(id);
                assert_eq!(set.hosts.find(h.name), Some(id));
                (
                    h.name.to_vec(),
                    (h.v4.to_vec(), h.v6.to_vec(), h.exists, set.hosts.users(id)),
                )
            })
            .collect();
        (zones, delegations, nodes, hosts)
    }

    /// Objects with every case the publication rule has: in-zone glue and authoritative hosts,
    /// hosts out of every zone, a host no one names, a wildcard host, nested names with
    /// non-terminals, held and nameserver-less domains, domains of an unserved zone or not
    /// directly below their apex, DS records, two zones sharing hosts, a nameserver named by
    /// the apex and by delegations, and enough delegations for many shards.
    fn varied_objects() -> Vec<Change> {
        let mut out = vec![
            Change::Zone(zone(
                "tld",
                &["a.nic.tld", "b.nic.tld", "ns.outside.example"],
            )),
            Change::Zone(zone("other", &["a.nic.tld", "ns1.d3.other"])),
            Change::Host(host("a.nic.tld", &["192.0.2.1", "2001:db8::1"])),
            Change::Host(host("b.nic.tld", &[])),
            Change::Host(host("unused.tld", &["192.0.2.99"])),
            Change::Host(host("*.wild.tld", &["192.0.2.98"])),
            Change::Host(host("deep.er.d7.tld", &["192.0.2.97"])),
            Change::Domain(domain("w.tld", "tld", &["*.wild.tld", "deep.er.d7.tld"])),
            Change::Domain(domain("x.nowhere", "nowhere", &["ns.x.nowhere"])),
            Change::Domain(domain("a.b.tld", "tld", &["ns.x.nowhere"])),
            Change::Domain(domain("nons.tld", "tld", &[])),
        ];
        for i in 0..3000 {
            let apex = if i % 10 == 3 { "other" } else { "tld" };
            let name = format!("d{i}.{apex}");
            let ns: Vec<String> = match i % 4 {
                0 => vec![format!("ns1.{name}"), format!("ns2.{name}")],
                1 => vec![format!("ns{}.provider.example", i % 7), "a.nic.tld".into()],
                2 => vec![format!("ns1.d{}.{apex}", i - 2)],
                _ => vec![
                    format!("ns1.{name}"),
                    format!("ns.glue.{name}"),
                    "ns1.d3.other".into(),
                ],
            };
            for (k, h) in ns.iter().enumerate() {
                if h.ends_with(&name) && (k == 0 || i % 8 == 0) {
                    let v6 = format!("2001:db8::{:x}", i + 1);
                    let addrs: &[&str] = if i % 3 == 0 {
                        &["192.0.2.5", &v6]
                    } else {
                        &["192.0.2.6"]
                    };
                    out.push(Change::Host(host(h, addrs)));
                }
            }
            let ns: Vec<&str> = ns.iter().map(String::as_str).collect();
            let mut d = domain(&name, apex, &ns);
            if i % 13 == 0 {
                d.statuses = vec![EppStatus::ServerHold];
            }
            if i % 11 == 0 {
                d.ds = vec![orrery_proto::Ds {
                    key_tag: i as u16,
                    algorithm: 13,
                    digest_type: 2,
                    digest: vec![i as u8; 32],
                }];
            }
            out.push(Change::Domain(d));
        }
        out
    }

    #[test]
    fn the_bulk_build_makes_what_one_by_one_makes() {
        let objects = varied_objects();
        let bulk = ZoneSet::from_objects(9, &objects);
        let single = ZoneSet::from_objects_one_by_one(9, &objects);
        let (a, b) = (dump(&bulk), dump(&single));
        assert_eq!(a, b);
        // The data has what the cases above promise.
        assert_eq!(a.0.len(), 2);
        assert!(a.0.iter().any(|z| z.3 == 1), "one published wildcard");
        assert!(a.1.len() > 2500 && a.2.len() > 1000 && a.3.len() > 1000);
        assert!(
            a.2.values().any(|n| n.0.is_none() && n.1 > 0),
            "a non-terminal"
        );
        assert!(
            a.2.values().any(|n| n.0.is_none() && n.1 == 0),
            "an unpublished host"
        );
        // Also with one thread, and the serving shape is sealed: no spare capacity.
        let (zones, hosts, domains) = ZoneSet::sort_objects(&objects);
        let one = ZoneSet::bulk(9, &zones, &hosts, &domains, 1).unwrap();
        assert_eq!(dump(&one), b);
        for z in bulk.zones() {
            assert!(z.delegations.shard_count() >= 16);
            assert!(z.delegations.is_compact() && z.nodes.is_compact());
        }
        // A batch on the bulk-built version does what it does on the other.
        let batch = ChangeBatch {
            after: 9,
            upto: 10,
            changes: vec![
                Change::DomainRemoved(n("d0.tld")),
                Change::HostRemoved(n("a.nic.tld")),
                Change::Domain(domain("d1.tld", "tld", &["ns1.d4.tld"])),
                Change::Host(host("ns2.d0.tld", &["192.0.2.200"])),
            ],
        };
        let (mut bulk, mut single) = (bulk, single);
        bulk.apply(&batch).unwrap();
        single.apply(&batch).unwrap();
        assert_eq!(dump(&bulk), dump(&single));
    }

    /// A state file's chunks, built a run of chunks per thread, make what the objects make
    /// in one vector: in chunks of every size (one object, a few, more chunks than threads,
    /// one chunk), on one to three threads, and with a DNSSEC set in a late chunk.
    #[test]
    fn the_chunked_build_makes_what_the_whole_build_makes() {
        let objects = varied_objects();
        let whole = dump(&ZoneSet::from_objects(9, &objects));
        assert_eq!(whole, dump(&ZoneSet::from_objects_one_by_one(9, &objects)));
        for size in [1, 7, 500, objects.len() / 3 + 1, objects.len()] {
            let chunks: Vec<Vec<Change>> = objects.chunks(size).map(<[Change]>::to_vec).collect();
            for threads in 1..=3 {
                let built = ZoneSet::from_chunks_on(9, &chunks, threads);
                assert_eq!(dump(&built), whole, "chunks of {size}, {threads} threads");
                assert!(built.zones().iter().all(|z| z.delegations.is_compact()));
            }
        }
        assert_eq!(
            dump(&ZoneSet::from_chunks_on(9, &[], 2)),
            dump(&ZoneSet::default())
        );
        // The DNSSEC sets, sorted out of their chunks as the rest: the signed zone's build.
        let (signed, changes, _) = signed_sample(orrery_proto::dnssec::Denial::Nsec);
        let chunks: Vec<Vec<Change>> = changes.chunks(3).map(<[Change]>::to_vec).collect();
        let built = ZoneSet::from_chunks_on(7, &chunks, 2);
        assert_eq!(dump(&built), dump(&signed));
        assert!(built.zones()[0].signed.is_signed());
        let debug = |set: &ZoneSet| format!("{:?}", set.zones()[0].signed);
        assert_eq!(debug(&built), debug(&signed));
    }

    #[test]
    fn objects_named_twice_are_built_one_by_one() {
        let mut objects = varied_objects();
        // The same domain again, later, with other nameservers: the last one wins.
        objects.push(Change::Domain(domain(
            "d5.tld",
            "tld",
            &["ns9.elsewhere.example"],
        )));
        let (zones, hosts, domains) = ZoneSet::sort_objects(&objects);
        assert!(ZoneSet::bulk(9, &zones, &hosts, &domains, 2).is_none());
        let built = ZoneSet::from_objects(9, &objects);
        assert_eq!(
            dump(&built),
            dump(&ZoneSet::from_objects_one_by_one(9, &objects))
        );
        let z = built.zone(&n("tld")).unwrap();
        let d5: Vec<HostId> = z.delegation(n("d5.tld").as_wire()).unwrap().ns().collect();
        assert_eq!(
            built.hosts.get(d5[0]).name,
            n("ns9.elsewhere.example").as_wire()
        );
        // A zone given twice: one by one too.
        let mut objects = varied_objects();
        objects.push(Change::Zone(zone("tld", &["a.nic.tld"])));
        let (zones, hosts, domains) = ZoneSet::sort_objects(&objects);
        assert!(ZoneSet::bulk(9, &zones, &hosts, &domains, 2).is_none());
        assert_eq!(
            ZoneSet::from_objects(9, &objects)
                .zone(&n("tld"))
                .unwrap()
                .apex_ns
                .len(),
            1
        );
    }

    #[test]
    fn old_versions_are_untouched_by_batches_on_a_clone() {
        let old = sample();
        let mut new = old.clone();
        new.apply(&ChangeBatch {
            after: 7,
            upto: 8,
            changes: vec![
                Change::DomainRemoved(n("foo.tld")),
                Change::HostRemoved(n("a.nic.tld")),
                Change::Domain(domain("bar.tld", "tld", &["ns.elsewhere.example"])),
            ],
        })
        .unwrap();
        let (o, z) = (old.zone(&n("tld")).unwrap(), new.zone(&n("tld")).unwrap());
        assert!(o.delegation(n("foo.tld").as_wire()).is_some());
        assert!(z.delegation(n("foo.tld").as_wire()).is_none());
        assert!(o.node(n("a.nic.tld").as_wire()).unwrap().host.is_some());
        assert!(z.node(n("a.nic.tld").as_wire()).is_none());
        assert!(o.node(n("ns2.foo.tld").as_wire()).is_some());
        assert!(z.node(n("ns2.foo.tld").as_wire()).is_none());
        let ns = |set: &ZoneSet, z: &ZoneData| -> Vec<Vec<u8>> {
            z.delegation(n("bar.tld").as_wire())
                .unwrap()
                .ns()
                .map(|id| set.hosts.get(id).name.to_vec())
                .collect()
        };
        assert_eq!(ns(&old, o).len(), 2);
        assert_eq!(ns(&new, z), [n("ns.elsewhere.example").as_wire().to_vec()]);
        // ns.bar.example lost its only user in the new version, not in the old.
        assert!(new.hosts.find(n("ns.bar.example").as_wire()).is_none());
        assert!(old.hosts.find(n("ns.bar.example").as_wire()).is_some());
    }

    #[test]
    fn the_tables_hold_no_garbage_after_a_batch() {
        let mut set = sample();
        for serial in 7..50 {
            let name = format!("d{}.tld", (serial / 2) % 5);
            let changes = if serial % 2 == 0 {
                vec![
                    Change::Host(host(&format!("ns.{name}"), &["192.0.2.1", "2001:db8::1"])),
                    Change::Domain(domain(&name, "tld", &[&format!("ns.{name}"), "x.example"])),
                ]
            } else {
                vec![
                    Change::DomainRemoved(n(&name)),
                    Change::HostRemoved(n(&format!("ns.{name}"))),
                ]
            };
            set.apply(&ChangeBatch {
                after: serial,
                upto: serial + 1,
                changes,
            })
            .unwrap();
        }
        // Back where it began: the same hosts and nodes as a fresh build.
        let fresh = sample();
        assert_eq!(set.hosts.len(), fresh.hosts.len());
        let (a, b) = (set.zone(&n("tld")).unwrap(), fresh.zone(&n("tld")).unwrap());
        assert_eq!(a.delegation_count(), b.delegation_count());
        assert_eq!(a.nodes.len(), b.nodes.len());
    }

    #[test]
    fn each_zone_serves_its_own_serial() {
        let mut a = zone("tld", &["a.nic.tld"]);
        a.serial = 5;
        let mut b = zone("other", &["a.nic.tld"]);
        b.serial = 0x1_0000_0006;
        let mut set = ZoneSet::build(7, &[a.clone(), b], &[], &[]);
        assert_eq!(set.zone(&n("tld")).unwrap().serial, 5);
        // The low 32 bits (RFC 1982 arithmetic works modulo 2^32).
        assert_eq!(set.zone(&n("other")).unwrap().serial, 6);
        // A change in `tld` comes with `tld` at its new serial; `other` does not move, and a
        // batch that touches no zone (a contact) moves none.
        a.serial = 8;
        set.apply(&ChangeBatch {
            after: 7,
            upto: 9,
            changes: vec![
                Change::Zone(a),
                Change::Domain(domain("new.tld", "tld", &["ns.new.example"])),
            ],
        })
        .unwrap();
        assert_eq!(set.zone(&n("tld")).unwrap().serial, 8);
        assert_eq!(set.zone(&n("other")).unwrap().serial, 6);
        set.apply(&ChangeBatch {
            after: 9,
            upto: 10,
            changes: vec![Change::ContactRemoved("C1".into())],
        })
        .unwrap();
        assert_eq!(set.zone(&n("tld")).unwrap().serial, 8);
        assert_eq!(set.zone(&n("other")).unwrap().serial, 6);
        // A zone without a serial (an older master) follows the set's serial, as before.
        set.apply(&ChangeBatch {
            after: 10,
            upto: 12,
            changes: vec![Change::Zone(zone("old", &["a.nic.tld"]))],
        })
        .unwrap();
        assert_eq!(set.zone(&n("old")).unwrap().serial, 12);
        set.apply(&ChangeBatch {
            after: 12,
            upto: 13,
            changes: vec![],
        })
        .unwrap();
        assert_eq!(set.zone(&n("old")).unwrap().serial, 13);
        assert_eq!(set.zone(&n("tld")).unwrap().serial, 8);
    }

    #[test]
    fn applies_batches() {
        let mut set = sample();
        let batch = ChangeBatch {
            after: 7,
            upto: 9,
            changes: vec![
                Change::DomainRemoved(n("foo.tld")),
                Change::Domain(domain("new.tld", "tld", &["ns.new.tld"])),
                Change::Host(host("ns.new.tld", &["192.0.2.50"])),
                Change::HostRemoved(n("b.nic.tld")),
            ],
        };
        set.apply(&batch).unwrap();
        let z = set.zone(&n("tld")).unwrap();
        assert_eq!(z.serial, 9);
        assert!(z.delegation(n("foo.tld").as_wire()).is_none());
        assert!(z.delegation(n("new.tld").as_wire()).is_some());
        assert!(z.node(n("ns.new.tld").as_wire()).unwrap().host.is_some());
        assert!(z.node(n("b.nic.tld").as_wire()).is_none());
        // ns2.foo.tld lost its only user and is gone from the host table.
        assert!(
            set.hosts
                .find(n("ns2.foo.tld").as_wire())
                .is_some_and(|id| set.hosts.get(id).exists)
        );
        assert!(z.node(n("ns2.foo.tld").as_wire()).is_none());
        // ns1.foo.tld is still used by bar.tld.
        assert!(z.node(n("ns1.foo.tld").as_wire()).is_some());
        assert!(matches!(
            set.apply(&ChangeBatch {
                after: 3,
                upto: 4,
                changes: vec![]
            }),
            Err(ZoneError::SerialGap { .. })
        ));
        // Removing the last nameserver reference and the host drops everything.
        set.apply(&ChangeBatch {
            after: 9,
            upto: 10,
            changes: vec![
                Change::DomainRemoved(n("new.tld")),
                Change::HostRemoved(n("ns.new.tld")),
            ],
        })
        .unwrap();
        assert!(set.hosts.find(n("ns.new.tld").as_wire()).is_none());
        let z = set.zone(&n("tld")).unwrap();
        assert!(z.node(n("new.tld").as_wire()).is_none());
        set.apply(&ChangeBatch {
            after: 10,
            upto: 11,
            changes: vec![Change::ZoneRemoved(n("tld"))],
        })
        .unwrap();
        assert!(set.zones().is_empty());
    }
}
