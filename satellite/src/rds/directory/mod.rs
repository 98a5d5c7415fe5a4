//! The registration data directory: what Whois and RDAP answer from.
//!
//! It lives inside each [`Served`](crate::Served) version, so a change batch updates DNS and
//! the directory in the same atomic step, and a query sees both at one serial.
//!
//! # Layout and compactness
//! Domains, hosts and contacts are byte records in [`table::Table`]s: shards of arenas that
//! versions share, a batch copying only the shards it changes (see [`table`] for the layout
//! and its costs). Records hold numbers, not copies: a domain refers to its registrar, its
//! four contacts and its nameservers by 32-bit ids into the tables of those objects, its
//! statuses are a bit set, its dates varints; text is rendered per query, never stored twice.
//! - Domain record: registrar, contacts, statuses, the three dates, the ROID, the nameserver
//!   ids, the DS records (key tag, algorithm, digest type, digest), keyed by canonical wire
//!   name.
//! - Host record: registrar, dates, addresses, keyed by canonical wire name. A nameserver
//!   that has no host object (e.g. out of the registry's zones) is a slot with a key only.
//! - Contact record: see [`contact`]; keyed by handle.
//! - Registrars, a few hundred: [`registrars`], as the model's objects.
//!
//! Reference counts keep a slot while something refers to it and free it when neither an
//! object nor a reference holds, so churn does not leak. A removed contact that a domain
//! still names (the store's foreign keys forbid it, but a batch may order the removal first)
//! stays as a bare slot: the domain shows the handle only.

mod bytes;
mod contact;
mod registrars;
mod table;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use orrery_proto::{Change, Contact, Domain, EppStatus, Host, Registrar, Timestamp};

use self::bytes::{Reader, put_bytes, put_signed, put_varint};
pub use self::contact::ContactView;
use self::registrars::{RegistrarId, Registrars};
use self::table::{Id, NONE, Table};

/// EPP statuses as a bit set over [`EppStatus::ALL`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusSet(u32);

const _: () = assert!(EppStatus::ALL.len() <= 32);

impl StatusSet {
    /// The set of `statuses`.
    pub fn of(statuses: &[EppStatus]) -> Self {
        Self(statuses.iter().fold(0, |bits, s| bits | 1 << *s as u32))
    }

    /// The statuses, in [`EppStatus::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = EppStatus> {
        EppStatus::ALL
            .iter()
            .copied()
            .filter(move |s| self.0 & (1 << *s as u32) != 0)
    }

    /// True when no status is set (EPP then says `ok`, RFC 5731 §2.3).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The roles of a domain's contacts, in the order of `DomainEntry::contacts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Registrant,
    Admin,
    Tech,
    Billing,
}

impl Role {
    pub const ALL: [Self; 4] = [Self::Registrant, Self::Admin, Self::Tech, Self::Billing];
}

/// Everything Whois and RDAP answer from, at one serial. Cloning it (a new version) copies
/// shard pointers, not records.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    /// Domains by canonical wire name.
    domains: Table,
    /// Host objects and the nameserver names domains refer to, by canonical wire name.
    hosts: Table,
    /// Contacts by handle.
    contacts: Table,
    registrars: Arc<Registrars>,
    /// When this data was last brought up to date.
    updated: Timestamp,
    /// Where a record is encoded before it is stored: one allocation for a whole build, not
    /// one per record.
    scratch: Vec<u8>,
}

/// What a domain record refers to, read back to release or reuse the references.
#[derive(Default)]
struct DomainRefs {
    registrar: RegistrarId,
    contacts: [Id; 4],
    nameservers: Vec<Id>,
}

/// An id as stored: one more, so that `NONE` (`u32::MAX`) is 0, one byte.
fn put_id(out: &mut Vec<u8>, id: u32) {
    put_varint(out, u64::from(id.wrapping_add(1)));
}

fn read_id(r: &mut Reader<'_>) -> u32 {
    r.u32().wrapping_sub(1)
}

impl Directory {
    /// Heap bytes of the Whois/RDAP tables of this version (0 when not built, beyond empty
    /// tables).
    pub fn heap_bytes(&self) -> usize {
        self.domains.heap_bytes()
            + self.hosts.heap_bytes()
            + self.contacts.heap_bytes()
            + self.registrars.heap_bytes()
            + self.scratch.capacity()
    }

    /// An empty directory sized for about this many domains, hosts and contacts (see
    /// [`Directory::touch`] for one that grows past its size).
    pub fn with_capacity(domains: usize, hosts: usize, contacts: usize) -> Self {
        Self {
            domains: Table::with_capacity(domains),
            hosts: Table::with_capacity(hosts),
            contacts: Table::with_capacity(contacts),
            ..Self::default()
        }
    }

    /// Builds a directory from `changes` (applied in order, as by [`Directory::apply`]),
    /// sized for them, with no spare capacity left in it. [`Directory::updated`] is left for
    /// the caller to stamp.
    pub fn build<'a>(changes: impl IntoIterator<Item = &'a Change, IntoIter: Clone>) -> Self {
        let changes = changes.into_iter();
        let mut counts = [0usize; 3];
        for c in changes.clone() {
            match c {
                Change::Domain(_) => counts[0] += 1,
                Change::Host(_) => counts[1] += 1,
                Change::Contact(_) => counts[2] += 1,
                _ => {}
            }
        }
        let mut dir = Self::with_capacity(counts[0], counts[1], counts[2]);
        // In the given order. Applying them table by table and shard by shard (the result
        // would be the same for objects) was tried and cost more: 5.4-6.5 s of CPU against
        // 3.8-4.8 s at 1,000,000 domains, the objects then being read in random order.
        for c in changes {
            dir.apply(c);
        }
        dir.domains.seal_all();
        dir.hosts.seal_all();
        dir.contacts.seal_all();
        dir
    }

    /// Applies one change; zone changes are not the directory's.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Domain(d) => self.put_domain(d),
            Change::DomainRemoved(name) => self.remove_domain(name.as_wire()),
            Change::Host(h) => self.put_host(h),
            Change::HostRemoved(name) => self.remove_host(name.as_wire()),
            Change::Contact(c) => self.put_contact(c),
            Change::ContactRemoved(handle) => {
                self.contacts.set(handle.as_bytes(), None);
            }
            Change::Registrar(r) => Arc::make_mut(&mut self.registrars).put(r),
            Change::RegistrarRemoved(handle) => Arc::make_mut(&mut self.registrars).remove(handle),
            Change::Zone(_)
            | Change::ZoneRemoved(_)
            | Change::Dnssec(_)
            | Change::DnssecRemoved(_) => {}
        }
    }

    /// Ends a batch (or a build made by single changes): records when the data was brought
    /// up to date, seals the shards the batch changed (compacted, no spare capacity), and
    /// re-splits the tables if they have outgrown their shard counts (a full copy, rare: at
    /// four times the size they were built for).
    pub fn touch(&mut self, at: Timestamp) {
        self.updated = at;
        self.domains.seal();
        self.hosts.seal();
        self.contacts.seal();
        self.resplit_if_needed();
    }

    /// Re-splits now if a table outgrew its shard count (a directory built by single changes
    /// from empty, e.g. from a snapshot's objects: shards stay small as it grows).
    fn resplit_if_grown(&mut self) {
        if self.domains.needs_resplit()
            || self.hosts.needs_resplit()
            || self.contacts.needs_resplit()
        {
            self.resplit_if_needed();
        }
    }

    fn resplit_if_needed(&mut self) {
        let copy = |v: &[u8], out: &mut Vec<u8>| out.extend_from_slice(v);
        let hosts = self.hosts.needs_resplit().then(|| self.hosts.resplit(copy));
        let contacts = self
            .contacts
            .needs_resplit()
            .then(|| self.contacts.resplit(copy));
        if hosts.is_none() && contacts.is_none() && !self.domains.needs_resplit() {
            return;
        }
        let (hosts_map, contacts_map) = (
            hosts.map(|(t, m)| {
                self.hosts = t;
                m
            }),
            contacts.map(|(t, m)| {
                self.contacts = t;
                m
            }),
        );
        // Domain records name hosts and contacts by id: rewritten with the new ids.
        let (domains, _) = self.domains.resplit(|v, out| {
            let r = DomainRecord::decode(v);
            let host = |id| hosts_map.as_ref().map_or(id, |m| m.id(id));
            let contact = |id| contacts_map.as_ref().map_or(id, |m| m.id(id));
            let ns: Vec<Id> = r.nameservers().map(host).filter(|&id| id != NONE).collect();
            encode_domain(out, &r, r.contacts.map(contact), &ns);
            put_varint(out, r.ds.count as u64);
            out.extend_from_slice(r.ds.bytes);
        });
        self.domains = domains;
    }

    /// When the data was last brought up to date (`Last update of WHOIS database`).
    pub fn updated(&self) -> Timestamp {
        self.updated
    }

    /// Adds or replaces a contact.
    pub fn put_contact(&mut self, c: &Contact) {
        let mut record = self.scratch();
        contact::encode(c, &mut record);
        self.contacts.set(c.handle.as_bytes(), Some(&record));
        self.scratch = record;
        self.resplit_if_grown();
    }

    /// The scratch buffer, empty (put back after use).
    fn scratch(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.scratch);
        v.clear();
        v
    }

    /// Adds or replaces a registrar.
    pub fn put_registrar(&mut self, r: &Registrar) {
        Arc::make_mut(&mut self.registrars).put(r);
    }

    /// The references of the domain record `record`.
    fn domain_refs(record: &[u8]) -> DomainRefs {
        let view = DomainRecord::decode(record);
        DomainRefs {
            registrar: view.registrar,
            contacts: view.contacts,
            nameservers: view.nameservers().collect(),
        }
    }

    /// The registrar `handle`: `old` when it is that one (then taken), so an unchanged
    /// reference leaves the registrar table untouched; else one more reference.
    fn refer_registrar(&mut self, handle: &str, old: &mut RegistrarId) -> RegistrarId {
        if *old != NONE && self.registrars.handle(*old) == handle {
            return std::mem::replace(old, NONE);
        }
        Arc::make_mut(&mut self.registrars).acquire(handle)
    }

    fn release_registrar(&mut self, id: RegistrarId) {
        if id != NONE {
            Arc::make_mut(&mut self.registrars).release(id);
        }
    }

    /// Adds or replaces a domain.
    pub fn put_domain(&mut self, d: &Domain) {
        let name = d.name.as_wire();
        let mut old = match self.domains.lookup(name) {
            Some((_, record)) => Self::domain_refs(record),
            None => DomainRefs {
                registrar: NONE,
                contacts: [NONE; 4],
                nameservers: Vec::new(),
            },
        };
        let registrar = self.refer_registrar(&d.registrar, &mut old.registrar);
        let contacts = [&d.registrant, &d.admin, &d.tech, &d.billing].map(|handle| {
            handle.as_deref().map_or(NONE, |h| {
                refer(&mut self.contacts, h.as_bytes(), &mut old.contacts)
            })
        });
        let ns: Vec<Id> = d
            .nameservers
            .iter()
            .map(|n| refer(&mut self.hosts, n.as_wire(), &mut old.nameservers))
            .filter(|&id| id != NONE)
            .collect();
        let fields = DomainRecord {
            registrar,
            statuses: StatusSet::of(&d.statuses),
            created: d.created.0,
            updated: d.updated.0,
            expires: d.expires.0,
            roid: &d.roid,
            ..DomainRecord::decode(&[])
        };
        let mut record = self.scratch();
        encode_domain(&mut record, &fields, contacts, &ns);
        put_varint(&mut record, d.ds.len() as u64);
        for ds in &d.ds {
            put_varint(&mut record, u64::from(ds.key_tag));
            record.push(ds.algorithm);
            record.push(ds.digest_type);
            put_bytes(&mut record, &ds.digest);
        }
        // References were taken before the old ones are released: an unchanged one never
        // drops to zero in between.
        self.domains.set(name, Some(&record));
        self.scratch = record;
        self.release_domain_refs(old);
        self.resplit_if_grown();
    }

    fn release_domain_refs(&mut self, old: DomainRefs) {
        self.release_registrar(old.registrar);
        for c in old.contacts {
            self.contacts.release(c);
        }
        for n in old.nameservers {
            self.hosts.release(n);
        }
    }

    fn remove_domain(&mut self, name: &[u8]) {
        let Some((_, record)) = self.domains.lookup(name) else {
            return;
        };
        let old = Self::domain_refs(record);
        self.domains.set(name, None);
        self.release_domain_refs(old);
    }

    /// Adds or replaces a host object.
    pub fn put_host(&mut self, h: &Host) {
        let name = h.name.as_wire();
        let mut old = self
            .hosts
            .lookup(name)
            .map_or(NONE, |(_, record)| HostRecord::decode(record).registrar);
        let registrar = match h.registrar.as_deref() {
            Some(r) => self.refer_registrar(r, &mut old),
            None => NONE,
        };
        let mut record = self.scratch();
        put_id(&mut record, registrar);
        put_signed(&mut record, h.created.0);
        put_signed(&mut record, h.updated.0);
        put_varint(&mut record, h.addresses.len() as u64);
        for a in &h.addresses {
            match a {
                IpAddr::V4(a) => {
                    record.push(4);
                    record.extend_from_slice(&a.octets());
                }
                IpAddr::V6(a) => {
                    record.push(6);
                    record.extend_from_slice(&a.octets());
                }
            }
        }
        self.hosts.set(name, Some(&record));
        self.scratch = record;
        self.release_registrar(old);
        self.resplit_if_grown();
    }

    fn remove_host(&mut self, name: &[u8]) {
        let Some((_, record)) = self.hosts.lookup(name) else {
            return;
        };
        let old = HostRecord::decode(record).registrar;
        self.hosts.set(name, None);
        self.release_registrar(old);
    }

    /// The domain with canonical wire name `name`.
    pub fn domain<'a>(&'a self, name: &[u8]) -> Option<DomainView<'a>> {
        let (name, record) = self.domains.lookup(name)?;
        Some(DomainView {
            dir: self,
            name,
            record: DomainRecord::decode(record),
        })
    }

    /// The host object with canonical wire name `name`.
    pub fn host<'a>(&'a self, name: &[u8]) -> Option<HostView<'a>> {
        let (name, record) = self.hosts.lookup(name)?;
        Some(HostView {
            dir: self,
            name,
            record: HostRecord::decode(record),
        })
    }

    /// The contact with `handle` (EPP handles are case-sensitive, RFC 5730 clIDType).
    pub fn contact(&self, handle: &str) -> Option<ContactView<'_>> {
        let (key, record) = self.contacts.lookup(handle.as_bytes())?;
        Some(ContactView::decode(
            std::str::from_utf8(key).unwrap_or_default(),
            record,
        ))
    }

    /// The registrar with `handle`.
    pub fn registrar(&self, handle: &str) -> Option<&Registrar> {
        self.registrars.lookup(handle)
    }

    /// The registrar whose name is `name` (any case), else whose handle is `name`.
    pub fn registrar_by_name(&self, name: &str) -> Option<&Registrar> {
        self.registrars
            .by_name(name)
            .or_else(|| self.registrar(name))
    }

    /// Numbers of domains, host objects, contacts and registrars held.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.domains.len(),
            self.hosts.len(),
            self.contacts.len(),
            self.registrars.len(),
        )
    }

    /// Shards of domains, hosts and contacts this version shares with `other` (the same
    /// allocations), out of how many.
    pub fn shared_shards(&self, other: &Self) -> (usize, usize) {
        let shared = self.domains.shared_shards(&other.domains)
            + self.hosts.shared_shards(&other.hosts)
            + self.contacts.shared_shards(&other.contacts);
        let total =
            self.domains.shard_count() + self.hosts.shard_count() + self.contacts.shard_count();
        (shared, total)
    }
}

/// The id of `key` in `table`: one of `old` when it names `key` (then taken), so an unchanged
/// reference leaves the table, and its shard, untouched; else one more reference.
fn refer(table: &mut Table, key: &[u8], old: &mut [Id]) -> Id {
    if let Some(o) = old
        .iter_mut()
        .find(|o| **o != NONE && table.key(**o) == key)
    {
        return std::mem::replace(o, NONE);
    }
    table.acquire(key)
}

/// Writes a domain record but its DS records: `r`'s numbers and ROID, with `contacts` and
/// nameservers `ns`.
fn encode_domain(out: &mut Vec<u8>, r: &DomainRecord<'_>, contacts: [Id; 4], ns: &[Id]) {
    put_id(out, r.registrar);
    for id in contacts {
        put_id(out, id);
    }
    put_varint(out, u64::from(r.statuses.0));
    put_signed(out, r.created);
    put_signed(out, r.updated);
    put_signed(out, r.expires);
    put_bytes(out, r.roid.as_bytes());
    put_varint(out, ns.len() as u64);
    for &id in ns {
        put_varint(out, u64::from(id));
    }
}

/// A domain record, decoded.
#[derive(Clone, Copy)]
struct DomainRecord<'a> {
    registrar: RegistrarId,
    contacts: [Id; 4],
    statuses: StatusSet,
    created: i64,
    updated: i64,
    expires: i64,
    roid: &'a str,
    /// The nameserver ids, `ns_count` varints.
    ns: &'a [u8],
    ns_count: usize,
    ds: DsList<'a>,
}

impl<'a> DomainRecord<'a> {
    fn decode(record: &'a [u8]) -> Self {
        let mut r = Reader::new(record);
        let registrar = read_id(&mut r);
        let contacts = [(); 4].map(|_| read_id(&mut r));
        let statuses = StatusSet(r.u32());
        let (created, updated, expires) = (r.signed(), r.signed(), r.signed());
        let roid = r.str();
        let ns_count = usize::try_from(r.varint()).unwrap_or(0);
        let start = r.rest();
        for _ in 0..ns_count.min(start.len()) {
            r.varint();
        }
        let ns = &start[..start.len() - r.rest().len()];
        let count = usize::try_from(r.varint()).unwrap_or(0);
        Self {
            registrar,
            contacts,
            statuses,
            created,
            updated,
            expires,
            roid,
            ns,
            ns_count: ns_count.min(ns.len()),
            ds: DsList {
                bytes: r.rest(),
                count,
            },
        }
    }

    fn nameservers(&self) -> impl Iterator<Item = Id> + use<'a> {
        let mut r = Reader::new(self.ns);
        (0..self.ns_count).map(move |_| r.u32())
    }
}

/// A host record, decoded.
#[derive(Clone, Copy)]
struct HostRecord<'a> {
    registrar: RegistrarId,
    created: i64,
    updated: i64,
    addresses: Addresses<'a>,
}

impl<'a> HostRecord<'a> {
    fn decode(record: &'a [u8]) -> Self {
        let mut r = Reader::new(record);
        let registrar = read_id(&mut r);
        let (created, updated) = (r.signed(), r.signed());
        let count = usize::try_from(r.varint()).unwrap_or(0);
        Self {
            registrar,
            created,
            updated,
            addresses: Addresses {
                bytes: r.rest(),
                count,
            },
        }
    }
}

/// A host's addresses, read from its record.
#[derive(Clone, Copy, Debug)]
pub struct Addresses<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl Addresses<'_> {
    pub fn is_empty(&self) -> bool {
        { *self }.next().is_none()
    }
}

impl Iterator for Addresses<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        self.count = self.count.checked_sub(1)?;
        let mut r = Reader::new(self.bytes);
        let a = match r.byte() {
            4 => <[u8; 4]>::try_from(r.take(4))
                .ok()
                .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            6 => <[u8; 16]>::try_from(r.take(16))
                .ok()
                .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            _ => None,
        };
        self.bytes = r.rest();
        if a.is_none() {
            self.count = 0;
        }
        a
    }
}

/// One DS record (RFC 4034 §5), read from a domain record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ds<'a> {
    pub key_tag: u16,
    pub algorithm: u8,
    pub digest_type: u8,
    pub digest: &'a [u8],
}

/// A domain's DS records, read from its record.
#[derive(Clone, Copy, Debug)]
pub struct DsList<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl DsList<'_> {
    pub fn is_empty(&self) -> bool {
        self.count == 0 || self.bytes.is_empty()
    }
}

impl<'a> Iterator for DsList<'a> {
    type Item = Ds<'a>;

    fn next(&mut self) -> Option<Ds<'a>> {
        if self.is_empty() {
            return None;
        }
        self.count -= 1;
        let mut r = Reader::new(self.bytes);
        let ds = Ds {
            key_tag: r.varint() as u16,
            algorithm: r.byte(),
            digest_type: r.byte(),
            digest: r.bytes(),
        };
        self.bytes = r.rest();
        Some(ds)
    }
}

/// A domain as Whois and RDAP read it.
#[derive(Clone, Copy)]
pub struct DomainView<'a> {
    dir: &'a Directory,
    name: &'a [u8],
    record: DomainRecord<'a>,
}

/// A reference from a domain or host to a contact or registrar: the handle always, the object
/// when it exists.
#[derive(Clone, Copy, Debug)]
pub struct Ref<'a, T> {
    pub handle: &'a str,
    pub object: Option<T>,
}

fn registrar_ref(dir: &Directory, id: RegistrarId) -> Option<Ref<'_, &Registrar>> {
    (id != NONE).then(|| Ref {
        handle: dir.registrars.handle(id),
        object: dir.registrars.get(id),
    })
}

impl<'a> DomainView<'a> {
    /// Canonical wire name.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// Repository object identifier (`Registry Domain ID`).
    pub fn roid(&self) -> &'a str {
        self.record.roid
    }

    /// The sponsoring registrar.
    pub fn registrar(&self) -> Option<Ref<'a, &'a Registrar>> {
        registrar_ref(self.dir, self.record.registrar)
    }

    pub fn created(&self) -> Timestamp {
        Timestamp(self.record.created)
    }

    pub fn updated(&self) -> Timestamp {
        Timestamp(self.record.updated)
    }

    pub fn expires(&self) -> Timestamp {
        Timestamp(self.record.expires)
    }

    pub fn statuses(&self) -> StatusSet {
        self.record.statuses
    }

    /// The contact in `role`, if the domain has one.
    pub fn contact(&self, role: Role) -> Option<Ref<'a, ContactView<'a>>> {
        let id = self.record.contacts[role as usize];
        if id == NONE {
            return None;
        }
        let contacts = &self.dir.contacts;
        let handle = std::str::from_utf8(contacts.key(id)).unwrap_or_default();
        Some(Ref {
            handle,
            object: contacts.get(id).map(|r| ContactView::decode(handle, r)),
        })
    }

    /// Nameserver names (canonical wire), in the registry's order.
    pub fn nameservers(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let hosts = &self.dir.hosts;
        self.record.nameservers().map(move |id| hosts.key(id))
    }

    /// DS records (RFC 4034 §5); empty for an unsigned delegation.
    pub fn ds(&self) -> DsList<'a> {
        self.record.ds
    }
}

/// A host object as Whois and RDAP read it.
#[derive(Clone, Copy)]
pub struct HostView<'a> {
    dir: &'a Directory,
    name: &'a [u8],
    record: HostRecord<'a>,
}

impl<'a> HostView<'a> {
    /// Canonical wire name.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    pub fn addresses(&self) -> Addresses<'a> {
        self.record.addresses
    }

    /// The sponsoring registrar.
    pub fn registrar(&self) -> Option<Ref<'a, &'a Registrar>> {
        registrar_ref(self.dir, self.record.registrar)
    }

    pub fn created(&self) -> Timestamp {
        Timestamp(self.record.created)
    }

    pub fn updated(&self) -> Timestamp {
        Timestamp(self.record.updated)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::contact::FIELD_MAX;
    use super::*;
    use crate::zone::tests::{domain, host, n};

    pub(crate) fn contact(handle: &str, disclose: bool) -> Contact {
        Contact {
            handle: handle.into(),
            name: format!("Name of {handle}"),
            organisation: Some("Example Org".into()),
            street: vec!["1 Main Street".into(), "Floor 2".into()],
            city: "Paris".into(),
            province: None,
            postcode: Some("75001".into()),
            country: "FR".into(),
            email: format!("{}@example.net", handle.to_lowercase()),
            voice: Some("+33.112345678".into()),
            fax: None,
            disclose,
            created: Timestamp(1_600_000_000),
            updated: Timestamp(1_700_000_000),
        }
    }

    /// A directory with registrar R1, contacts C1 (disclosed) and C2 (not), host ns1.foo.tld
    /// and domain foo.tld (registrant C1, tech C2, ns1.foo.tld and ns.other.example, one DS).
    pub(crate) fn sample() -> Directory {
        let mut d = domain("foo.tld", "tld", &["ns1.foo.tld", "ns.other.example"]);
        d.registrar = "R1".into();
        d.registrant = Some("C1".into());
        d.tech = Some("C2".into());
        d.ds = vec![orrery_proto::Ds {
            key_tag: 7,
            algorithm: 13,
            digest_type: 2,
            digest: vec![0xAB; 32],
        }];
        d.statuses = vec![EppStatus::ClientTransferProhibited, EppStatus::ServerHold];
        let mut r = Registrar::new("R1", "Example Registrar, Inc.");
        r.iana_id = Some(9999);
        Directory::build(&[
            Change::Registrar(r),
            Change::Contact(contact("C1", true)),
            Change::Contact(contact("C2", false)),
            Change::Host(host("ns1.foo.tld", &["192.0.2.1", "2001:db8::1"])),
            Change::Domain(d),
        ])
    }

    #[test]
    fn views_resolve_shared_objects() {
        let dir = sample();
        let d = dir.domain(n("foo.tld").as_wire()).unwrap();
        assert_eq!(d.registrar().unwrap().handle, "R1");
        assert_eq!(d.registrar().unwrap().object.unwrap().iana_id, Some(9999));
        assert_eq!(
            d.contact(Role::Registrant)
                .unwrap()
                .object
                .unwrap()
                .handle(),
            "C1"
        );
        assert!(d.contact(Role::Admin).is_none());
        assert!(!d.contact(Role::Tech).unwrap().object.unwrap().disclose());
        let ns: Vec<_> = d.nameservers().collect();
        assert_eq!(
            ns,
            [n("ns1.foo.tld").as_wire(), n("ns.other.example").as_wire()]
        );
        assert_eq!(
            d.statuses().iter().collect::<Vec<_>>(),
            [EppStatus::ServerHold, EppStatus::ClientTransferProhibited]
        );
        let ds: Vec<_> = d.ds().collect();
        assert_eq!(
            ds,
            [Ds {
                key_tag: 7,
                algorithm: 13,
                digest_type: 2,
                digest: &[0xAB; 32]
            }]
        );
        assert_eq!(d.roid(), "D1-TEST");
        // A nameserver without a host object is a name only.
        assert!(dir.host(n("ns.other.example").as_wire()).is_none());
        let h = dir.host(n("ns1.foo.tld").as_wire()).unwrap();
        assert_eq!(
            h.addresses().collect::<Vec<_>>(),
            [
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        assert_eq!(h.registrar().map(|r| r.handle), None);
        assert_eq!(
            dir.registrar_by_name("EXAMPLE registrar, inc.")
                .unwrap()
                .handle,
            "R1"
        );
        assert_eq!(dir.registrar_by_name("R1").unwrap().handle, "R1");
        assert!(dir.registrar_by_name("r1").is_none());
        assert_eq!(dir.counts(), (1, 1, 2, 1));
    }

    #[test]
    fn registrars_sharing_a_name_keep_their_index_entries() {
        let mut dir = Directory::default();
        dir.apply(&Change::Registrar(Registrar::new("A", "Same Name")));
        dir.apply(&Change::Registrar(Registrar::new("B", "same name")));
        assert_eq!(dir.registrar_by_name("SAME NAME").unwrap().handle, "A");
        // Updating or removing one of them leaves the other findable by the name.
        dir.apply(&Change::Registrar(Registrar::new("A", "Same Name")));
        dir.apply(&Change::RegistrarRemoved("A".into()));
        assert_eq!(dir.registrar_by_name("same name").unwrap().handle, "B");
        dir.apply(&Change::RegistrarRemoved("B".into()));
        assert!(dir.registrar_by_name("same name").is_none());
    }

    #[test]
    fn removals_and_updates_free_what_nothing_holds() {
        let mut dir = sample();
        // Renaming the registrar moves the name index.
        dir.apply(&Change::Registrar(Registrar::new("R1", "Renamed Ltd")));
        assert!(dir.registrar_by_name("example registrar, inc.").is_none());
        assert_eq!(dir.registrar_by_name("renamed ltd").unwrap().handle, "R1");
        // A contact removed while referenced leaves the handle.
        dir.apply(&Change::ContactRemoved("C2".into()));
        let d = dir.domain(n("foo.tld").as_wire()).unwrap();
        let tech = d.contact(Role::Tech).unwrap();
        assert_eq!((tech.handle, tech.object.is_none()), ("C2", true));
        // Changing the nameservers releases the old names; removing the domain frees its slots.
        dir.apply(&Change::Domain(domain("foo.tld", "tld", &["ns1.foo.tld"])));
        assert!(dir.hosts.find(n("ns.other.example").as_wire()).is_none());
        assert!(dir.contacts.find(b"C2").is_none());
        dir.apply(&Change::DomainRemoved(n("foo.tld")));
        dir.apply(&Change::HostRemoved(n("ns1.foo.tld")));
        assert!(dir.domain(n("foo.tld").as_wire()).is_none());
        assert!(dir.hosts.find(n("ns1.foo.tld").as_wire()).is_none());
        assert_eq!(dir.counts(), (0, 0, 1, 1));
        // Slots are reused after being freed.
        let key = n("ns.other.example");
        let before = dir.hosts.slots_near(key.as_wire());
        dir.apply(&Change::Domain(domain(
            "bar.tld",
            "tld",
            &["ns.other.example"],
        )));
        assert_eq!(dir.hosts.slots_near(key.as_wire()), before);
    }

    /// The record's view of `c`, field by field, for comparing with the model.
    fn model(r: ContactView<'_>) -> Contact {
        Contact {
            handle: r.handle().into(),
            name: r.name().into(),
            organisation: r.organisation().map(Into::into),
            street: r.street().map(Into::into).collect(),
            city: r.city().into(),
            province: r.province().map(Into::into),
            postcode: r.postcode().map(Into::into),
            country: r.country().into(),
            email: r.email().into(),
            voice: r.voice().map(Into::into),
            fax: r.fax().map(Into::into),
            disclose: r.disclose(),
            created: r.created(),
            updated: r.updated(),
        }
    }

    #[test]
    fn contacts_round_trip_through_the_compact_record() {
        let full = Contact {
            handle: "ÉLÈVE-1".into(),
            name: "Zoë Ñúñez 李小龍".into(),
            organisation: Some("Société Générale".into()),
            street: vec!["1 Rue de l'Été".into(), String::new(), "Bâtiment C".into()],
            city: "Zürich".into(),
            province: Some(String::new()),
            postcode: Some("8001".into()),
            country: "CH".into(),
            email: "zoë@exämple.ch".into(),
            voice: Some("+41.441234567".into()),
            fax: Some("+41.441234568".into()),
            disclose: true,
            created: Timestamp(-1),
            updated: Timestamp(i64::MAX),
        };
        let bare = Contact {
            handle: "C0".into(),
            name: String::new(),
            organisation: None,
            street: vec![],
            city: String::new(),
            province: None,
            postcode: None,
            country: String::new(),
            email: String::new(),
            voice: None,
            fax: None,
            disclose: false,
            created: Timestamp(0),
            updated: Timestamp(1),
        };
        let mut dir = Directory::default();
        for c in [full, bare, contact("C1", true), contact("C2", false)] {
            dir.put_contact(&c);
            let r = dir.contact(&c.handle).unwrap();
            assert_eq!(model(r), c);
            assert_eq!(r.street().len(), c.street.len());
        }
        // Some("") is not None.
        dir.put_contact(&contact("C3", true));
        let r = dir.contact("C3").unwrap();
        assert_eq!((r.province(), r.fax()), (None, None));
        let mut c = contact("C3", true);
        (c.province, c.fax) = (Some(String::new()), Some(String::new()));
        dir.put_contact(&c);
        let r = dir.contact("C3").unwrap();
        assert_eq!((r.province(), r.fax()), (Some(""), Some("")));
    }

    #[test]
    fn oversized_contacts_are_cut_not_refused() {
        let mut c = contact("C1", true);
        // Every field far past the limit, with a two-byte character across the cut.
        let long = format!("a{}", "é".repeat(FIELD_MAX));
        c.name = long.clone();
        c.email = long.clone();
        c.fax = Some(long.clone());
        c.street = vec![long.clone(), long.clone(), long.clone()];
        let mut dir = Directory::default();
        dir.put_contact(&c);
        let r = dir.contact("C1").unwrap();
        let cut = &long[..FIELD_MAX - 1];
        assert_eq!((r.name(), r.email(), r.fax()), (cut, cut, Some(cut)));
        assert!(r.street().all(|l| l == cut));
        assert_eq!((r.handle(), r.city(), r.country()), ("C1", "Paris", "FR"));
        // More street lines than EPP allows: the rest joined to the third, nothing lost.
        let mut c = contact("C1", true);
        c.street = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        dir.put_contact(&c);
        let r = dir.contact("C1").unwrap();
        assert_eq!(r.street().collect::<Vec<_>>(), ["a", "b", "c, d, e"]);
    }

    #[test]
    fn records_are_small() {
        // A typical registrant: its text, then 23 bytes of flags and street count (2), dates
        // (5 each) and lengths (1 each of 11 fields held); its handle is the key.
        let c = contact("C1", true);
        let mut record = Vec::new();
        contact::encode(&c, &mut record);
        let text = c.name.len() + "Example Org".len() + "Paris75001FR".len() + c.email.len();
        let text = text + "+33.112345678".len() + "1 Main StreetFloor 2".len();
        assert_eq!(record.len(), text + 23);
        // A domain of today with two nameservers and no DS: ids and numbers, 30 bytes, and
        // its ROID.
        let mut dir = Directory::default();
        dir.put_domain(&domain("foo.tld", "tld", &["ns1.foo.tld", "ns2.foo.tld"]));
        let mut d = domain("bar.tld", "tld", &["ns1.foo.tld", "ns2.foo.tld"]);
        (d.created, d.updated, d.expires) = (
            Timestamp(1_700_000_000),
            Timestamp(1_700_000_000),
            Timestamp(1_800_000_000),
        );
        dir.put_domain(&d);
        let (_, record) = dir.domains.lookup(n("bar.tld").as_wire()).unwrap();
        assert!(record.len() <= 30 + d.roid.len(), "{}", record.len());
    }

    #[test]
    fn domains_round_trip_through_their_records() {
        let mut dir = sample();
        let mut d = domain("x.tld", "tld", &["ns1.foo.tld", "a.b", "ns1.foo.tld"]);
        (d.created, d.updated, d.expires) =
            (Timestamp(i64::MIN), Timestamp(-1), Timestamp(i64::MAX));
        d.statuses = EppStatus::ALL.to_vec();
        d.registrant = Some("C1".into());
        d.admin = Some("C1".into());
        d.billing = Some("missing".into());
        d.roid = "ÉLÈVE-ROID".into();
        d.ds = (0..3)
            .map(|i| orrery_proto::Ds {
                key_tag: u16::MAX - i,
                algorithm: 8 + i as u8,
                digest_type: 1,
                digest: vec![i as u8; 20 + usize::from(i)],
            })
            .collect();
        dir.put_domain(&d);
        let v = dir.domain(n("x.tld").as_wire()).unwrap();
        assert_eq!(v.roid(), "ÉLÈVE-ROID");
        assert_eq!(
            (v.created(), v.updated(), v.expires()),
            (d.created, d.updated, d.expires)
        );
        assert_eq!(v.statuses().iter().collect::<Vec<_>>(), EppStatus::ALL);
        assert_eq!(v.registrar().unwrap().handle, "r1");
        assert!(v.registrar().unwrap().object.is_none());
        let handles = Role::ALL.map(|r| v.contact(r).map(|c| (c.handle, c.object.is_some())));
        assert_eq!(
            handles,
            [
                Some(("C1", true)),
                Some(("C1", true)),
                None,
                Some(("missing", false))
            ]
        );
        let ns: Vec<_> = v.nameservers().collect();
        assert_eq!(
            ns,
            [
                n("ns1.foo.tld").as_wire(),
                n("a.b").as_wire(),
                n("ns1.foo.tld").as_wire()
            ]
        );
        let ds: Vec<_> = v
            .ds()
            .map(|ds| (ds.key_tag, ds.algorithm, ds.digest.len()))
            .collect();
        assert_eq!(ds, [(65535, 8, 20), (65534, 9, 21), (65533, 10, 22)]);
        // Removing it releases every reference it took, twice-named ones included.
        dir.apply(&Change::DomainRemoved(n("x.tld")));
        assert!(dir.hosts.find(n("a.b").as_wire()).is_none());
        assert!(dir.contacts.find(b"missing").is_none());
        assert!(dir.hosts.find(n("ns1.foo.tld").as_wire()).is_some());
        assert_eq!(dir.counts(), (1, 1, 2, 1));
    }

    #[test]
    fn damaged_records_read_as_empty() {
        for record in [&[][..], &[0xff; 3], &[1, 2, 3, 200, 7]] {
            let d = DomainRecord::decode(record);
            assert_eq!((d.roid, d.nameservers().count()), ("", 0));
            assert!(d.ds.count() <= 1);
            let h = HostRecord::decode(record);
            assert!(h.addresses.count() <= 1);
            let c = ContactView::decode("C", record);
            assert_eq!((c.name(), c.street().count() <= 3), ("", true));
        }
    }

    #[test]
    fn versions_share_what_a_batch_leaves_alone() {
        let mut old = Directory::with_capacity(2000, 1, 2000);
        for i in 0..2000 {
            let mut d = domain(&format!("d{i}.tld"), "tld", &["ns1.foo.tld"]);
            d.registrant = Some(format!("C{i}"));
            d.admin = Some("ADMIN".into());
            old.put_contact(&contact(&format!("C{i}"), true));
            old.put_domain(&d);
        }
        old.put_contact(&contact("ADMIN", true));
        let mut new = old.clone();
        let (shared, total) = new.shared_shards(&old);
        assert_eq!(shared, total);
        // An update that keeps every reference touches the domain's shard only.
        let mut d = domain("d7.tld", "tld", &["ns1.foo.tld"]);
        d.registrant = Some("C7".into());
        d.admin = Some("ADMIN".into());
        d.statuses = vec![EppStatus::ServerHold];
        new.put_domain(&d);
        assert_eq!(new.shared_shards(&old).0, total - 1);
        // Moving the registrant to another contact touches both contacts' shards too (their
        // reference counts), wherever they are.
        d.registrant = Some("C8".into());
        new.put_domain(&d);
        let touched = total - new.shared_shards(&old).0;
        assert!((2..=3).contains(&touched), "{touched}");
        // The old version still reads as before, the new one as changed.
        let was = old.domain(n("d7.tld").as_wire()).unwrap();
        assert_eq!(was.contact(Role::Registrant).unwrap().handle, "C7");
        assert_eq!(was.statuses().iter().collect::<Vec<_>>(), [EppStatus::Ok]);
        let now = new.domain(n("d7.tld").as_wire()).unwrap();
        assert_eq!(now.contact(Role::Registrant).unwrap().handle, "C8");
        // Counts stayed right across shards: removing every domain in the new version frees
        // every bare reference and keeps the contacts.
        for i in 0..2000 {
            new.apply(&Change::DomainRemoved(n(&format!("d{i}.tld"))));
        }
        assert_eq!(new.counts(), (0, 0, 2001, 0));
        assert!(new.hosts.find(n("ns1.foo.tld").as_wire()).is_none());
        assert!(new.registrars.find("r1").is_none());
        for i in 0..2000 {
            new.apply(&Change::ContactRemoved(format!("C{i}")));
        }
        new.apply(&Change::ContactRemoved("ADMIN".into()));
        assert_eq!(new.counts(), (0, 0, 0, 0));
        assert_eq!(old.counts(), (2000, 0, 2001, 0));
        assert!(old.hosts.find(n("ns1.foo.tld").as_wire()).is_some());
    }

    #[test]
    fn a_directory_that_outgrows_its_shards_is_resplit_with_its_references() {
        let mut dir = Directory::default();
        for i in 0..500 {
            let mut d = domain(
                &format!("d{i}.tld"),
                "tld",
                &[&format!("ns{i}.h.example"), "ns.shared.example"],
            );
            d.registrant = Some(format!("C{i}"));
            d.tech = Some("GONE".into());
            dir.put_contact(&contact(&format!("C{i}"), true));
            dir.put_host(&host(&format!("ns{i}.h.example"), &["192.0.2.1"]));
            dir.put_domain(&d);
        }
        // From one shard a table, re-split as it grew (at 65 and 257 records): 16 each.
        assert_eq!(dir.shared_shards(&dir).1, 3 * 16);
        dir.touch(Timestamp(5));
        assert_eq!(
            (dir.counts(), dir.updated()),
            ((500, 500, 500, 0), Timestamp(5))
        );
        for i in 0..500 {
            let d = dir.domain(n(&format!("d{i}.tld")).as_wire()).unwrap();
            let c = d.contact(Role::Registrant).unwrap();
            assert_eq!(
                (c.handle, c.object.unwrap().name()),
                (&*format!("C{i}"), &*format!("Name of C{i}"))
            );
            assert_eq!(d.contact(Role::Tech).unwrap().handle, "GONE");
            let ns: Vec<_> = d.nameservers().collect();
            assert_eq!(
                ns,
                [
                    n(&format!("ns{i}.h.example")).as_wire(),
                    n("ns.shared.example").as_wire()
                ]
            );
        }
        // Reference counts moved with the slots.
        for i in 0..500 {
            dir.apply(&Change::DomainRemoved(n(&format!("d{i}.tld"))));
            assert_eq!(dir.contacts.find(b"GONE").is_some(), i < 499);
        }
        assert!(dir.hosts.find(n("ns.shared.example").as_wire()).is_none());
        assert_eq!(dir.counts(), (0, 500, 500, 0));
    }

    #[test]
    fn status_sets() {
        let s = StatusSet::of(&[EppStatus::PendingRestore, EppStatus::Ok]);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [EppStatus::Ok, EppStatus::PendingRestore]
        );
        assert!(StatusSet::of(&[]).is_empty());
    }
}
