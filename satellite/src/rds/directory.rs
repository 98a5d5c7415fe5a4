//! The registration data directory: what Whois and RDAP answer from.
//!
//! It lives inside each [`ZoneSet`](crate::ZoneSet) version, so a change batch updates DNS and
//! the directory in the same atomic step, and a query sees both at one serial.
//!
//! # Layout and compactness
//! - Domains: a hashbrown map keyed by the canonical wire name; each entry holds numbers, not
//!   copies: the registrar, the four contacts and the nameservers are ids into shared tables,
//!   the statuses a bit set, the dates seconds. Text is rendered per query, never stored per
//!   domain.
//! - Hosts, contacts, registrars: one [`Interned`] table each, keyed by wire name or handle.
//!   A slot exists while the object exists *or* something refers to it (a domain may name a
//!   nameserver that has no host object, e.g. out of the registry's zones); reference counts
//!   free a slot when neither holds, so churn does not leak.
//!
//! A removed contact that a domain still names (the store's foreign keys forbid it, but a
//! batch may order the removal first) stays as a bare slot: the domain shows the handle only.

use std::net::IpAddr;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use orrery_proto::{Change, Contact, Domain, EppStatus, Host, Registrar, Timestamp};

use crate::zone::DsRecord;

/// Id of a slot in an [`Interned`] table.
pub type SlotId = u32;
/// No slot ("no registrar", "no such contact").
const NONE: SlotId = u32::MAX;

/// Objects keyed by bytes (a wire name or a handle), shared by reference count.
#[derive(Clone, Debug)]
pub struct Interned<T> {
    slots: Vec<Slot<T>>,
    /// Slot ids, hashed by their key (the key is stored once, in the slot).
    index: HashTable<SlotId>,
    hasher: DefaultHashBuilder,
    free: Vec<SlotId>,
    live: usize,
}

#[derive(Clone, Debug)]
struct Slot<T> {
    key: Box<[u8]>,
    value: Option<T>,
    refs: u32,
}

impl<T> Default for Interned<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<T> Interned<T> {
    fn hash(&self, key: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }

    /// The slot holding `key`, if any.
    pub fn find(&self, key: &[u8]) -> Option<SlotId> {
        let slots = &self.slots;
        self.index
            .find(self.hash(key), |&id| &*slots[id as usize].key == key)
            .copied()
    }

    /// The object in slot `id` (`None` for a bare reference).
    pub fn get(&self, id: SlotId) -> Option<&T> {
        self.slots.get(id as usize)?.value.as_ref()
    }

    /// The key of slot `id`.
    pub fn key(&self, id: SlotId) -> &[u8] {
        self.slots.get(id as usize).map_or(&[], |s| &s.key)
    }

    /// The object with `key`.
    pub fn lookup(&self, key: &[u8]) -> Option<&T> {
        self.get(self.find(key)?)
    }

    /// Objects held (bare references not counted).
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no object is held.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Every object with its key.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &T)> {
        self.slots
            .iter()
            .filter_map(|s| Some((&*s.key, s.value.as_ref()?)))
    }

    fn intern(&mut self, key: &[u8]) -> SlotId {
        if let Some(id) = self.find(key) {
            return id;
        }
        let slot = Slot {
            key: key.into(),
            value: None,
            refs: 0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as SlotId
            }
        };
        let hash = self.hash(key);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, id, |&i| {
            use std::hash::BuildHasher;
            hasher.hash_one(&*slots[i as usize].key)
        });
        id
    }

    /// One more reference to `key` (made if absent).
    fn acquire(&mut self, key: &[u8]) -> SlotId {
        let id = self.intern(key);
        self.slots[id as usize].refs += 1;
        id
    }

    /// One reference fewer; frees the slot when nothing holds it.
    fn release(&mut self, id: SlotId) {
        if id == NONE {
            return;
        }
        let slot = &mut self.slots[id as usize];
        slot.refs = slot.refs.saturating_sub(1);
        self.collect(id);
    }

    /// Sets (or, with `None`, removes) the object with `key`; returns its slot.
    fn set(&mut self, key: &[u8], value: Option<T>) -> Option<SlotId> {
        let id = match value {
            Some(_) => self.intern(key),
            None => self.find(key)?,
        };
        let slot = &mut self.slots[id as usize];
        match (slot.value.is_some(), value.is_some()) {
            (false, true) => self.live += 1,
            (true, false) => self.live -= 1,
            _ => {}
        }
        slot.value = value;
        self.collect(id);
        Some(id)
    }

    fn collect(&mut self, id: SlotId) {
        let slot = &mut self.slots[id as usize];
        if slot.refs > 0 || slot.value.is_some() {
            return;
        }
        let key = std::mem::take(&mut slot.key);
        let hash = self.hash(&key);
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == id) {
            entry.remove();
        }
        self.free.push(id);
    }
}

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

/// The roles of a domain's contacts, in the order of [`DomainEntry::contacts`].
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

/// One domain, as numbers and ids.
#[derive(Clone, Debug)]
pub struct DomainEntry {
    roid: Box<str>,
    registrar: SlotId,
    created: i64,
    updated: i64,
    expires: i64,
    statuses: StatusSet,
    contacts: [SlotId; 4],
    nameservers: Box<[SlotId]>,
    ds: Box<[DsRecord]>,
}

/// One host object.
#[derive(Clone, Debug)]
pub struct HostEntry {
    pub addresses: Box<[IpAddr]>,
    registrar: SlotId,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// Everything Whois and RDAP answer from, at one serial.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    domains: HashMap<Box<[u8]>, DomainEntry>,
    /// Host objects and the nameserver names domains refer to.
    hosts: Interned<HostEntry>,
    contacts: Interned<Contact>,
    registrars: Interned<Registrar>,
    /// Registrar slots by lower-case name, for `whois "registrar NAME"`.
    registrar_names: HashMap<Box<str>, SlotId>,
    /// When this data was last brought up to date.
    updated: Timestamp,
}

impl Directory {
    /// Applies one change; zone changes are not the directory's.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Domain(d) => self.put_domain(d),
            Change::DomainRemoved(name) => {
                if let Some(old) = self.domains.remove(name.as_wire()) {
                    self.release(&old);
                }
            }
            Change::Host(h) => self.put_host(h),
            Change::HostRemoved(name) => self.remove_host(name.as_wire()),
            Change::Contact(c) => {
                self.contacts.set(c.handle.as_bytes(), Some(c.clone()));
            }
            Change::ContactRemoved(handle) => {
                self.contacts.set(handle.as_bytes(), None);
            }
            Change::Registrar(r) => self.put_registrar(r),
            Change::RegistrarRemoved(handle) => {
                if let Some(old) = self.registrars.lookup(handle.as_bytes()) {
                    let key = old.name.to_lowercase();
                    self.registrar_names.remove(key.as_str());
                }
                self.registrars.set(handle.as_bytes(), None);
            }
            Change::Zone(_) | Change::ZoneRemoved(_) => {}
        }
    }

    /// Records when the data was last brought up to date.
    pub fn touch(&mut self, at: Timestamp) {
        self.updated = at;
    }

    /// When the data was last brought up to date (`Last update of WHOIS database`).
    pub fn updated(&self) -> Timestamp {
        self.updated
    }

    fn put_domain(&mut self, d: &Domain) {
        let contact = |me: &mut Self, handle: &Option<String>| {
            handle
                .as_deref()
                .map_or(NONE, |h| me.contacts.acquire(h.as_bytes()))
        };
        let entry = DomainEntry {
            roid: d.roid.as_str().into(),
            registrar: self.registrars.acquire(d.registrar.as_bytes()),
            created: d.created.0,
            updated: d.updated.0,
            expires: d.expires.0,
            statuses: StatusSet::of(&d.statuses),
            contacts: [
                contact(self, &d.registrant),
                contact(self, &d.admin),
                contact(self, &d.tech),
                contact(self, &d.billing),
            ],
            nameservers: d
                .nameservers
                .iter()
                .map(|n| self.hosts.acquire(n.as_wire()))
                .collect(),
            ds: d
                .ds
                .iter()
                .map(|ds| DsRecord {
                    key_tag: ds.key_tag,
                    algorithm: ds.algorithm,
                    digest_type: ds.digest_type,
                    digest: ds.digest.as_slice().into(),
                })
                .collect(),
        };
        // Acquire before release: an unchanged reference never drops to zero in between.
        if let Some(old) = self.domains.insert(d.name.as_wire().into(), entry) {
            self.release(&old);
        }
    }

    fn release(&mut self, old: &DomainEntry) {
        self.registrars.release(old.registrar);
        for &c in &old.contacts {
            self.contacts.release(c);
        }
        for &n in &old.nameservers {
            self.hosts.release(n);
        }
    }

    fn put_host(&mut self, h: &Host) {
        let registrar = h
            .registrar
            .as_deref()
            .map_or(NONE, |r| self.registrars.acquire(r.as_bytes()));
        let entry = HostEntry {
            addresses: h.addresses.as_slice().into(),
            registrar,
            created: h.created,
            updated: h.updated,
        };
        let old = self
            .hosts
            .find(h.name.as_wire())
            .and_then(|id| self.hosts.get(id))
            .map(|e| e.registrar);
        self.hosts.set(h.name.as_wire(), Some(entry));
        if let Some(r) = old {
            self.registrars.release(r);
        }
    }

    fn remove_host(&mut self, name: &[u8]) {
        let old = self
            .hosts
            .find(name)
            .and_then(|id| self.hosts.get(id))
            .map(|e| e.registrar);
        self.hosts.set(name, None);
        if let Some(r) = old {
            self.registrars.release(r);
        }
    }

    fn put_registrar(&mut self, r: &Registrar) {
        if let Some(old) = self.registrars.lookup(r.handle.as_bytes()) {
            let key = old.name.to_lowercase();
            self.registrar_names.remove(key.as_str());
        }
        if let Some(id) = self.registrars.set(r.handle.as_bytes(), Some(r.clone())) {
            self.registrar_names
                .insert(r.name.to_lowercase().into_boxed_str(), id);
        }
    }

    /// The domain with canonical wire name `name`.
    pub fn domain<'a>(&'a self, name: &[u8]) -> Option<DomainView<'a>> {
        let (name, entry) = self.domains.get_key_value(name)?;
        Some(DomainView {
            dir: self,
            name,
            entry,
        })
    }

    /// The host object with canonical wire name `name`.
    pub fn host<'a>(&'a self, name: &[u8]) -> Option<HostView<'a>> {
        let id = self.hosts.find(name)?;
        Some(HostView {
            dir: self,
            name: self.hosts.key(id),
            entry: self.hosts.get(id)?,
        })
    }

    /// The contact with `handle` (EPP handles are case-sensitive, RFC 5730 clIDType).
    pub fn contact(&self, handle: &str) -> Option<&Contact> {
        self.contacts.lookup(handle.as_bytes())
    }

    /// The registrar with `handle`.
    pub fn registrar(&self, handle: &str) -> Option<&Registrar> {
        self.registrars.lookup(handle.as_bytes())
    }

    /// The registrar whose name is `name` (any case), else whose handle is `name`.
    pub fn registrar_by_name(&self, name: &str) -> Option<&Registrar> {
        let by_name = self
            .registrar_names
            .get(name.to_lowercase().as_str())
            .and_then(|&id| self.registrars.get(id));
        by_name.or_else(|| self.registrar(name))
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
}

/// A domain as Whois and RDAP read it.
#[derive(Clone, Copy)]
pub struct DomainView<'a> {
    dir: &'a Directory,
    name: &'a [u8],
    entry: &'a DomainEntry,
}

/// A reference from a domain or host to a contact or registrar: the handle always, the object
/// when it exists.
#[derive(Clone, Copy, Debug)]
pub struct Ref<'a, T> {
    pub handle: &'a str,
    pub object: Option<&'a T>,
}

fn reference<'a, T>(table: &'a Interned<T>, id: SlotId) -> Option<Ref<'a, T>> {
    if id == NONE {
        return None;
    }
    Some(Ref {
        handle: std::str::from_utf8(table.key(id)).unwrap_or(""),
        object: table.get(id),
    })
}

impl<'a> DomainView<'a> {
    /// Canonical wire name.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// Repository object identifier (`Registry Domain ID`).
    pub fn roid(&self) -> &'a str {
        &self.entry.roid
    }

    /// The sponsoring registrar.
    pub fn registrar(&self) -> Option<Ref<'a, Registrar>> {
        reference(&self.dir.registrars, self.entry.registrar)
    }

    pub fn created(&self) -> Timestamp {
        Timestamp(self.entry.created)
    }

    pub fn updated(&self) -> Timestamp {
        Timestamp(self.entry.updated)
    }

    pub fn expires(&self) -> Timestamp {
        Timestamp(self.entry.expires)
    }

    pub fn statuses(&self) -> StatusSet {
        self.entry.statuses
    }

    /// The contact in `role`, if the domain has one.
    pub fn contact(&self, role: Role) -> Option<Ref<'a, Contact>> {
        reference(&self.dir.contacts, self.entry.contacts[role as usize])
    }

    /// Nameserver names (canonical wire), in the registry's order.
    pub fn nameservers(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let hosts = &self.dir.hosts;
        self.entry.nameservers.iter().map(move |&id| hosts.key(id))
    }

    /// DS records (RFC 4034 §5); empty for an unsigned delegation.
    pub fn ds(&self) -> &'a [DsRecord] {
        &self.entry.ds
    }
}

/// A host object as Whois and RDAP read it.
#[derive(Clone, Copy)]
pub struct HostView<'a> {
    dir: &'a Directory,
    name: &'a [u8],
    entry: &'a HostEntry,
}

impl<'a> HostView<'a> {
    /// Canonical wire name.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    pub fn addresses(&self) -> &'a [IpAddr] {
        &self.entry.addresses
    }

    /// The sponsoring registrar.
    pub fn registrar(&self) -> Option<Ref<'a, Registrar>> {
        reference(&self.dir.registrars, self.entry.registrar)
    }

    pub fn created(&self) -> Timestamp {
        self.entry.created
    }

    pub fn updated(&self) -> Timestamp {
        self.entry.updated
    }
}

#[cfg(test)]
pub(crate) mod tests {
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
        let mut dir = Directory::default();
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
        for c in [
            Change::Registrar(r),
            Change::Contact(contact("C1", true)),
            Change::Contact(contact("C2", false)),
            Change::Host(host("ns1.foo.tld", &["192.0.2.1", "2001:db8::1"])),
            Change::Domain(d),
        ] {
            dir.apply(&c);
        }
        dir
    }

    #[test]
    fn views_resolve_shared_objects() {
        let dir = sample();
        let d = dir.domain(n("foo.tld").as_wire()).unwrap();
        assert_eq!(d.registrar().unwrap().handle, "R1");
        assert_eq!(d.registrar().unwrap().object.unwrap().iana_id, Some(9999));
        assert_eq!(
            d.contact(Role::Registrant).unwrap().object.unwrap().handle,
            "C1"
        );
        assert!(d.contact(Role::Admin).is_none());
        assert!(!d.contact(Role::Tech).unwrap().object.unwrap().disclose);
        let ns: Vec<_> = d.nameservers().collect();
        assert_eq!(
            ns,
            [n("ns1.foo.tld").as_wire(), n("ns.other.example").as_wire()]
        );
        assert_eq!(
            d.statuses().iter().collect::<Vec<_>>(),
            [EppStatus::ServerHold, EppStatus::ClientTransferProhibited]
        );
        assert_eq!(d.ds()[0].key_tag, 7);
        // A nameserver without a host object is a name only.
        assert!(dir.host(n("ns.other.example").as_wire()).is_none());
        let h = dir.host(n("ns1.foo.tld").as_wire()).unwrap();
        assert_eq!(h.addresses().len(), 2);
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
        let before = dir.hosts.slots.len();
        dir.apply(&Change::Domain(domain("bar.tld", "tld", &["ns9.bar.tld"])));
        assert_eq!(dir.hosts.slots.len(), before);
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
