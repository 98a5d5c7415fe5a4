//! The zone store: every zone the satellite serves, in hash tables built for the lookup.
//!
//! # Layout
//! - [`ZoneSet`]: one version of all zones plus the interned nameserver hosts. Built from the
//!   registry model ([`ZoneSet::build`]) and changed by [`ZoneSet::apply`] with a
//!   [`ChangeBatch`]; the same code path does both, so a snapshot and a replayed journal agree.
//! - [`ZoneData`]: one zone. Delegations live in a hashbrown map keyed by the canonical wire
//!   form of the name *directly below the apex* (`Name::child_of`), so the delegation that covers
//!   `www.foo.tld` is found with one lookup of `foo.tld`, whatever the query's depth.
//!   Authoritative names deeper in the zone (addresses of the registry's own hosts, empty
//!   non-terminals above them, wildcards) live in a second, small map.
//! - [`store::ZoneStore`]: the versions that queries see, swapped atomically.
//!
//! # Compactness
//! Nameserver hosts are interned once for all zones ([`HostTable`]); a delegation is a boxed
//! slice of `u32` host indices plus a boxed slice of DS records (empty: no allocation). Keys are
//! boxed wire names (no capacity word).
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

pub mod store;

use std::net::IpAddr;

use hashbrown::HashMap;
use orrery_proto::{Change, ChangeBatch, Domain, Host, Name, Serial, Soa, Timestamp, Zone};

use crate::rds::Directory;
use crate::snapshot::SnapshotData;

/// Index of a host in the [`HostTable`].
pub type HostId = u32;

/// Errors of the zone store (cold path).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneError {
    #[error("change batch starts after serial {after}, but the zones are at serial {current}")]
    SerialGap { after: Serial, current: Serial },
}

/// A nameserver host, shared by every delegation that names it.
#[derive(Clone, Debug)]
pub struct HostRecord {
    /// Canonical wire form.
    pub name: Box<[u8]>,
    pub v4: Box<[[u8; 4]]>,
    pub v6: Box<[[u8; 16]]>,
    /// References from apex NS and delegations, in all zones (for garbage collection).
    users: u32,
    /// A host object exists in the registry (else the entry lives only for its users).
    exists: bool,
}

/// Interned nameserver hosts: a vector indexed by [`HostId`] and a name → index map.
#[derive(Clone, Debug, Default)]
pub struct HostTable {
    hosts: Vec<HostRecord>,
    index: HashMap<Box<[u8]>, HostId>,
    free: Vec<HostId>,
}

impl HostTable {
    /// The host with index `id`.
    pub fn get(&self, id: HostId) -> &HostRecord {
        &self.hosts[id as usize]
    }

    /// The index of a host by canonical wire name.
    pub fn find(&self, name: &[u8]) -> Option<HostId> {
        self.index.get(name).copied()
    }

    /// Number of live host entries.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no host is interned.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn intern(&mut self, name: &[u8]) -> HostId {
        if let Some(id) = self.find(name) {
            return id;
        }
        let record = HostRecord {
            name: name.into(),
            v4: Box::new([]),
            v6: Box::new([]),
            users: 0,
            exists: false,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.hosts[id as usize] = record;
                id
            }
            None => {
                self.hosts.push(record);
                (self.hosts.len() - 1) as HostId
            }
        };
        self.index.insert(name.into(), id);
        id
    }

    fn collect(&mut self, id: HostId) {
        let h = &mut self.hosts[id as usize];
        if h.users == 0 && !h.exists {
            let name = std::mem::take(&mut h.name);
            self.index.remove(&name);
            self.free.push(id);
        }
    }
}

/// A DS record (RFC 4034 §5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsRecord {
    pub key_tag: u16,
    pub algorithm: u8,
    pub digest_type: u8,
    pub digest: Box<[u8]>,
}

/// One delegation: nameserver indices and DS records (empty: none).
#[derive(Clone, Debug)]
pub struct Delegation {
    pub ns: Box<[HostId]>,
    pub ds: Box<[DsRecord]>,
}

/// A name below the apex that is not a delegation: a published host's addresses, or an empty
/// non-terminal above one (RFC 8020: it exists, so NODATA rather than NXDOMAIN).
#[derive(Clone, Debug)]
pub struct AuthNode {
    /// The host whose addresses live here, if any.
    pub host: Option<HostId>,
    /// Published hosts strictly below this node.
    below: u32,
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
    delegations: HashMap<Box<[u8]>, Delegation>,
    auth: HashMap<Box<[u8]>, AuthNode>,
    /// References to in-zone hosts from this zone's apex and delegations.
    refs: HashMap<HostId, u32>,
    /// Published wildcard owners (`*.…`); zero skips the wildcard search.
    wildcards: u32,
}

impl ZoneData {
    fn new(zone: &Zone, serial: Serial) -> Self {
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
            delegations: HashMap::new(),
            auth: HashMap::new(),
            refs: HashMap::new(),
            wildcards: 0,
        }
    }

    /// The delegation keyed by `child` (a name directly below the apex).
    pub fn delegation(&self, child: &[u8]) -> Option<&Delegation> {
        self.delegations.get(child)
    }

    /// The authoritative node at `name`, if it exists.
    pub fn node(&self, name: &[u8]) -> Option<&AuthNode> {
        self.auth.get(name)
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

    /// Adds one reference to `id` from this zone; publishes the host when it is in the zone.
    fn add_ref(&mut self, hosts: &HostTable, id: HostId) {
        let h = hosts.get(id);
        if !wire_is_subdomain(&h.name, &self.apex) || h.name.len() == self.apex.len() {
            return;
        }
        *self.refs.entry(id).or_insert(0) += 1;
        self.republish(hosts, id);
    }

    fn drop_ref(&mut self, hosts: &HostTable, id: HostId) {
        if let Some(n) = self.refs.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.refs.remove(&id);
            }
            self.republish(hosts, id);
        }
    }

    /// Makes the authoritative node of host `id` match the publication rule.
    fn republish(&mut self, hosts: &HostTable, id: HostId) {
        let h = hosts.get(id);
        let want = self.refs.contains_key(&id) && (!h.v4.is_empty() || !h.v6.is_empty());
        let have = self
            .auth
            .get(&h.name[..])
            .is_some_and(|n| n.host == Some(id));
        if want == have {
            return;
        }
        let name = h.name.clone();
        let wildcard = name.starts_with(b"\x01*");
        if want {
            self.auth
                .entry(name.clone())
                .or_insert(AuthNode {
                    host: None,
                    below: 0,
                })
                .host = Some(id);
            self.wildcards += u32::from(wildcard);
        } else {
            if let Some(node) = self.auth.get_mut(&name) {
                node.host = None;
                if node.below == 0 {
                    self.auth.remove(&name);
                }
            }
            self.wildcards -= u32::from(wildcard);
        }
        // Ancestors strictly between the host and the apex are (or stop being) non-terminals.
        let mut pos = 1 + name[0] as usize;
        while name.len() - pos > self.apex.len() {
            let ancestor = &name[pos..];
            if want {
                self.auth
                    .entry(ancestor.into())
                    .or_insert(AuthNode {
                        host: None,
                        below: 0,
                    })
                    .below += 1;
            } else if let Some(node) = self.auth.get_mut(ancestor) {
                node.below -= 1;
                if node.below == 0 && node.host.is_none() {
                    self.auth.remove(ancestor);
                }
            }
            pos += 1 + name[pos] as usize;
        }
    }
}

/// One version of everything the satellite serves: the DNS zones and the registration data
/// directory of Whois and RDAP, changed together by each batch.
#[derive(Clone, Debug, Default)]
pub struct ZoneSet {
    /// Journal serial this version reflects.
    pub serial: Serial,
    zones: Vec<ZoneData>,
    by_apex: HashMap<Box<[u8]>, usize>,
    pub hosts: HostTable,
    /// Whois and RDAP data ([`crate::rds::directory`]).
    pub directory: Directory,
}

impl ZoneSet {
    /// Builds the zones from registry data at journal serial `serial`. Domains of zones not in
    /// `zones` are ignored (a satellite may serve a subset of the registry's zones).
    pub fn build(serial: Serial, zones: &[Zone], domains: &[Domain], hosts: &[Host]) -> Self {
        let mut set = Self::build_dns(serial, zones, domains, hosts);
        set.build_directory(domains, hosts);
        set
    }

    /// The DNS part of [`ZoneSet::build`]: zones, hosts, delegations; the directory empty.
    fn build_dns(serial: Serial, zones: &[Zone], domains: &[Domain], hosts: &[Host]) -> Self {
        let mut set = Self {
            serial,
            ..Self::default()
        };
        for z in zones {
            set.put_zone(z);
        }
        for h in hosts {
            set.put_host(h);
        }
        for d in domains {
            set.put_domain(d);
        }
        set
    }

    /// The directory part of [`ZoneSet::build`]: hosts and domains for Whois and RDAP.
    fn build_directory(&mut self, domains: &[Domain], hosts: &[Host]) {
        // Sized for as many contacts as domains, the common case (`touch` re-splits if not).
        self.directory = Directory::with_capacity(domains.len(), hosts.len(), domains.len());
        for h in hosts {
            self.directory.put_host(h);
        }
        for d in domains {
            self.directory.put_domain(d);
        }
        self.directory.touch(Timestamp::now());
    }

    /// Builds everything a snapshot holds: the zones (as [`ZoneSet::build`]) and the
    /// directory's contacts and registrars too. Logs how long each part took.
    pub fn from_snapshot(data: &SnapshotData) -> Self {
        let started = std::time::Instant::now();
        let mut set = Self::build_dns(data.serial, &data.zones, &data.domains, &data.hosts);
        let dns = started.elapsed();
        set.build_directory(&data.domains, &data.hosts);
        for r in &data.registrars {
            set.directory.put_registrar(r);
        }
        for c in &data.contacts {
            set.directory.put_contact(c);
        }
        set.directory.touch(Timestamp::now());
        tracing::info!(
            serial = data.serial,
            dns_ms = dns.as_millis() as u64,
            directory_ms = (started.elapsed() - dns).as_millis() as u64,
            "zone set built"
        );
        set
    }

    /// Applies a batch in place. The batch must follow this version (`batch.after == serial`);
    /// it is checked before anything changes, and nothing after that check can fail, so the
    /// batch is applied whole.
    pub fn apply(&mut self, batch: &ChangeBatch) -> Result<(), ZoneError> {
        if batch.after != self.serial {
            return Err(ZoneError::SerialGap {
                after: batch.after,
                current: self.serial,
            });
        }
        self.apply_unchecked(batch);
        Ok(())
    }

    /// Builds a version from a master snapshot's objects, taking each by value and handing it
    /// on to `keep` once it is in (so a caller can move it into its own model, without a
    /// clone). Objects go in in the order given, by the same code as a batch's changes (so the
    /// result is what [`ZoneSet::build`] makes from the same objects); removals are skipped, a
    /// snapshot holds objects, not changes.
    pub fn from_objects(
        serial: Serial,
        objects: impl IntoIterator<Item = Change>,
        mut keep: impl FnMut(Change),
    ) -> Self {
        let objects: Vec<Change> = objects.into_iter().filter(|c| !c.is_removal()).collect();
        let mut set = Self {
            serial,
            ..Self::default()
        };
        // The DNS tables and the directory share nothing: build them side by side (a bare
        // satellite serves only once both are done; at 1,000,000 domains each takes seconds).
        let directory = std::thread::scope(|scope| {
            let directory = scope.spawn(|| Directory::build(&objects));
            // Zones, then hosts, then domains, as `build` does: a domain is published only in a
            // zone that exists, whatever order the master sent the objects in.
            for kind in 0..3 {
                for c in &objects {
                    let rank = match c {
                        Change::Zone(_) => 0,
                        Change::Host(_) => 1,
                        Change::Domain(_) => 2,
                        _ => continue,
                    };
                    if rank == kind {
                        set.apply_dns(c);
                    }
                }
            }
            directory
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        set.directory = directory;
        set.directory.touch(Timestamp::now());
        for c in objects {
            keep(c);
        }
        set
    }

    fn apply_change(&mut self, change: &Change) {
        self.apply_dns(change);
        self.directory.apply(change);
    }

    /// The DNS part of [`ZoneSet::apply_change`].
    fn apply_dns(&mut self, change: &Change) {
        match change {
            Change::Zone(z) => self.put_zone(z),
            Change::ZoneRemoved(name) => self.remove_zone(name),
            Change::Domain(d) => self.put_domain(d),
            Change::DomainRemoved(name) => self.remove_domain(name),
            Change::Host(h) => self.put_host(h),
            Change::HostRemoved(name) => self.remove_host(name),
            Change::Contact(_)
            | Change::ContactRemoved(_)
            | Change::Registrar(_)
            | Change::RegistrarRemoved(_) => {}
        }
    }

    fn apply_unchecked(&mut self, batch: &ChangeBatch) {
        for change in &batch.changes {
            self.apply_change(change);
        }
        self.directory.touch(Timestamp::now());
        self.serial = batch.upto;
        // Zones the batch touched came with their new serial; only zones without one follow
        // the set's.
        for z in self.zones.iter_mut().filter(|z| z.own_serial == 0) {
            z.serial = batch.upto as u32;
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

    fn put_zone(&mut self, z: &Zone) {
        let i = match self.zone_index(&z.name) {
            Some(i) => i,
            None => {
                self.zones.push(ZoneData::new(z, self.serial));
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
            self.hosts.hosts[id as usize].users += 1;
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
        for d in zone.delegations.values() {
            released.extend_from_slice(&d.ns);
        }
        for id in released {
            self.hosts.hosts[id as usize].users -= 1;
            self.hosts.collect(id);
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
            self.hosts.hosts[id as usize].users -= 1;
            self.hosts.collect(id);
        }
    }

    /// The zone that holds `domain`'s delegation: the zone named by the domain, if the domain
    /// is directly below its apex.
    fn domain_zone(&self, domain: &Name, zone: &Name) -> Option<usize> {
        let i = self.zone_index(zone)?;
        (domain.parent().as_ref() == Some(zone)).then_some(i)
    }

    fn put_domain(&mut self, d: &Domain) {
        let Some(i) = self.domain_zone(&d.name, &d.zone) else {
            return;
        };
        let new = if d.is_delegated() {
            let ns: Vec<HostId> = d
                .nameservers
                .iter()
                .map(|n| self.hosts.intern(n.as_wire()))
                .collect();
            for &id in &ns {
                self.hosts.hosts[id as usize].users += 1;
                self.zones[i].add_ref(&self.hosts, id);
            }
            let ds =
                d.ds.iter()
                    .map(|ds| DsRecord {
                        key_tag: ds.key_tag,
                        algorithm: ds.algorithm,
                        digest_type: ds.digest_type,
                        digest: ds.digest.as_slice().into(),
                    })
                    .collect();
            Some(Delegation {
                ns: ns.into_boxed_slice(),
                ds,
            })
        } else {
            None
        };
        let key = d.name.as_wire();
        let old = match new {
            Some(del) => self.zones[i].delegations.insert(key.into(), del),
            None => self.zones[i].delegations.remove(key),
        };
        if let Some(old) = old {
            self.release(i, &old.ns);
        }
    }

    fn remove_domain(&mut self, name: &Name) {
        let Some(parent) = name.parent() else {
            return;
        };
        let Some(i) = self.zone_index(&parent) else {
            return;
        };
        if let Some(old) = self.zones[i].delegations.remove(name.as_wire()) {
            self.release(i, &old.ns);
        }
    }

    fn put_host(&mut self, h: &Host) {
        let id = self.hosts.intern(h.name.as_wire());
        let rec = &mut self.hosts.hosts[id as usize];
        rec.exists = true;
        rec.v4 = h
            .addresses
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(v4) => Some(v4.octets()),
                IpAddr::V6(_) => None,
            })
            .collect();
        rec.v6 = h
            .addresses
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(v6) => Some(v6.octets()),
                IpAddr::V4(_) => None,
            })
            .collect();
        self.republish_everywhere(id);
    }

    fn remove_host(&mut self, name: &Name) {
        let Some(id) = self.hosts.find(name.as_wire()) else {
            return;
        };
        let rec = &mut self.hosts.hosts[id as usize];
        rec.exists = false;
        rec.v4 = Box::new([]);
        rec.v6 = Box::new([]);
        self.republish_everywhere(id);
        self.hosts.collect(id);
    }

    fn republish_everywhere(&mut self, id: HostId) {
        for z in &mut self.zones {
            if z.refs.contains_key(&id) || z.auth.contains_key(&self.hosts.get(id).name[..]) {
                z.republish(&self.hosts, id);
            }
        }
    }
}

/// True if canonical wire name `name` is `apex` or below it (label boundary checked).
pub fn wire_is_subdomain(name: &[u8], apex: &[u8]) -> bool {
    if apex.len() > name.len() || !name.ends_with(apex) {
        return false;
    }
    let offset = name.len() - apex.len();
    let mut pos = 0;
    while pos < offset {
        pos += 1 + name[pos] as usize;
    }
    pos == offset
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use orrery_proto::{Ds, EppStatus, Timestamp};

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

    /// The test zone used across the crate's unit tests.
    pub(crate) fn sample() -> ZoneSet {
        let mut signed = domain("signed.tld", "tld", &["ns1.signed.tld", "ns.other.example"]);
        signed.ds = vec![Ds {
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
                .hosts
                .iter()
                .filter(|h| &*h.name == n("ns1.foo.tld").as_wire())
                .count(),
            1
        );
    }

    #[test]
    fn from_objects_builds_what_from_snapshot_builds() {
        use crate::snapshot::tests::{contact, registrar};
        let data = SnapshotData {
            serial: 7,
            zones: vec![zone("tld", &["a.nic.tld", "ns.outside.example"])],
            domains: vec![
                domain("foo.tld", "tld", &["ns1.foo.tld", "a.nic.tld"]),
                domain("bar.tld", "tld", &["ns1.foo.tld", "ns.bar.example"]),
                domain("nons.tld", "tld", &[]),
            ],
            hosts: vec![
                host("a.nic.tld", &["192.0.2.1"]),
                host("ns1.foo.tld", &["192.0.2.10"]),
                host("unused.tld", &["192.0.2.99"]),
            ],
            contacts: vec![contact("C1", true)],
            registrars: vec![registrar("r1", true)],
        };
        let whole = ZoneSet::from_snapshot(&data);
        // In the reverse of the master's order (domains before their zone), with a removal
        // that a snapshot should not hold.
        let objects: Vec<Change> = (data.domains.iter().cloned().map(Change::Domain))
            .chain(data.hosts.iter().cloned().map(Change::Host))
            .chain([Change::DomainRemoved(n("foo.tld"))])
            .chain(data.zones.iter().cloned().map(Change::Zone))
            .chain(data.contacts.iter().cloned().map(Change::Contact))
            .chain(data.registrars.iter().cloned().map(Change::Registrar))
            .collect();
        let mut kept = Vec::new();
        let built = ZoneSet::from_objects(7, objects, |c| kept.push(c));
        assert_eq!(kept.len(), 9, "every object handed on, the removal skipped");
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
                a.delegation(w.as_wire()).is_some(),
                b.delegation(w.as_wire()).is_some()
            );
            assert_eq!(a.node(w.as_wire()).is_some(), b.node(w.as_wire()).is_some());
            assert_eq!(
                whole.directory.domain(w.as_wire()).is_some(),
                built.directory.domain(w.as_wire()).is_some(),
                "{name}"
            );
        }
        assert!(built.directory.domain(n("foo.tld").as_wire()).is_some());
        assert!(built.directory.contact("C1").is_some());
        assert_eq!(
            whole.directory.contact("C1").is_some(),
            built.directory.contact("C1").is_some()
        );
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
