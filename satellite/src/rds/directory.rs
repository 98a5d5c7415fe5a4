//! The registration data directory: what Whois and RDAP answer from.
//!
//! It lives inside each [`Served`](crate::Served) version, so a change batch updates DNS and
//! the directory in the same atomic step, and a query sees both at one serial.
//!
//! # Layout and compactness
//! - Domains: an [`Interned`] table keyed by the canonical wire name; each entry holds
//!   numbers, not copies: the registrar, the four contacts and the nameservers are ids into
//!   shared tables, the statuses a bit set, the dates seconds. Text is rendered per query,
//!   never stored per domain.
//! - Contacts: a [`ContactRecord`] each, every text field in one allocation (a registry may
//!   have as many contacts as domains).
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
        self.replace(key, value).0
    }

    /// Sets (or, with `None`, removes) the object with `key`; returns its slot and the object
    /// it replaced.
    fn replace(&mut self, key: &[u8], value: Option<T>) -> (Option<SlotId>, Option<T>) {
        let id = match value {
            Some(_) => self.intern(key),
            None => match self.find(key) {
                Some(id) => id,
                None => return (None, None),
            },
        };
        let slot = &mut self.slots[id as usize];
        match (slot.value.is_some(), value.is_some()) {
            (false, true) => self.live += 1,
            (true, false) => self.live -= 1,
            _ => {}
        }
        let old = std::mem::replace(&mut slot.value, value);
        self.collect(id);
        (Some(id), old)
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

/// A contact as the directory holds it: every text field in one allocation.
///
/// The model's [`Contact`] is a dozen separate `String`s (about 290 bytes inline and some 300
/// more in allocator chunks for a typical contact), and a registry may have as many contacts
/// as domains, held once per zone version and two versions at a time: for 1M contacts the
/// difference is about 0.8 GB (measured: `benches/rds.rs`). Here the text fields sit back to
/// back in `text`, in the order of the `F_*` indexes, and `ends` holds where each ends (the
/// last field ends at `text.len()`). 16 (text) + 16 (dates) + 24 (twelve `u16` ends) + 2
/// (flags, street count) = 58 bytes, 64 with alignment (asserted in the tests), plus one
/// allocation of the text's length.
///
/// `u16` ends take half the room of `u32` ones; they bound the text at 64 KiB, so each field
/// is cut (at a character boundary) to `FIELD_MAX` = 4096 bytes. EPP's longest fields (RFC
/// 5733: 255 characters for names, street lines and cities) are at most 1020 bytes in UTF-8,
/// so registry data is never cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactRecord {
    text: Box<str>,
    created: i64,
    updated: i64,
    /// End offset in `text` of fields `0..FIELDS - 1`.
    ends: [u16; FIELDS - 1],
    /// The presence bits of the optional fields (`None` and `Some("")` differ, so the field
    /// alone cannot tell) and `DISCLOSE`.
    flags: u8,
    /// Street lines held, at most `MAX_STREETS`.
    streets: u8,
}

/// Field indexes in `ContactRecord::text`; the street lines come last, from `F_STREET`.
const F_HANDLE: usize = 0;
const F_NAME: usize = 1;
const F_ORGANISATION: usize = 2;
const F_CITY: usize = 3;
const F_PROVINCE: usize = 4;
const F_POSTCODE: usize = 5;
const F_COUNTRY: usize = 6;
const F_EMAIL: usize = 7;
const F_VOICE: usize = 8;
const F_FAX: usize = 9;
const F_STREET: usize = 10;
/// The most street lines EPP allows (RFC 5733 §2.4.1); the link refuses contacts with more.
const MAX_STREETS: usize = 3;
const FIELDS: usize = F_STREET + MAX_STREETS;
/// The longest field held, in bytes: every field at its longest still fits `u16` ends.
const FIELD_MAX: usize = 4096;
const _: () = assert!(FIELDS * FIELD_MAX <= u16::MAX as usize);

const DISCLOSE: u8 = 1;
/// The presence bit of optional field `F_*`.
const fn present(field: usize) -> u8 {
    match field {
        F_ORGANISATION => 1 << 1,
        F_PROVINCE => 1 << 2,
        F_POSTCODE => 1 << 3,
        F_VOICE => 1 << 4,
        F_FAX => 1 << 5,
        _ => 0,
    }
}

impl From<&Contact> for ContactRecord {
    fn from(c: &Contact) -> Self {
        // Street lines past EPP's three (only a hand-made snapshot could hold them) are kept,
        // joined to the third, rather than dropped.
        let rest;
        let mut street = [""; MAX_STREETS];
        for (slot, line) in street.iter_mut().zip(&c.street) {
            *slot = line;
        }
        if c.street.len() > MAX_STREETS {
            rest = c.street[MAX_STREETS - 1..].join(", ");
            street[MAX_STREETS - 1] = &rest;
        }
        let streets = c.street.len().min(MAX_STREETS);
        let mut fields: [Option<&str>; FIELDS] = [None; FIELDS];
        fields[F_HANDLE] = Some(&c.handle);
        fields[F_NAME] = Some(&c.name);
        fields[F_ORGANISATION] = c.organisation.as_deref();
        fields[F_CITY] = Some(&c.city);
        fields[F_PROVINCE] = c.province.as_deref();
        fields[F_POSTCODE] = c.postcode.as_deref();
        fields[F_COUNTRY] = Some(&c.country);
        fields[F_EMAIL] = Some(&c.email);
        fields[F_VOICE] = c.voice.as_deref();
        fields[F_FAX] = c.fax.as_deref();
        for (i, line) in street[..streets].iter().enumerate() {
            fields[F_STREET + i] = Some(line);
        }
        let clip = |s: &str| -> usize { s.floor_char_boundary(FIELD_MAX) };
        let len = fields.iter().flatten().map(|f| clip(f)).sum();
        let mut text = String::with_capacity(len);
        let mut ends = [0; FIELDS - 1];
        let mut flags = if c.disclose { DISCLOSE } else { 0 };
        for (i, field) in fields.iter().enumerate() {
            if let Some(f) = field {
                text.push_str(&f[..clip(f)]);
                flags |= present(i);
            }
            if let Some(end) = ends.get_mut(i) {
                // At most FIELDS * FIELD_MAX bytes (asserted above): the cast cannot cut.
                *end = text.len() as u16;
            }
        }
        Self {
            text: text.into_boxed_str(),
            created: c.created.0,
            updated: c.updated.0,
            ends,
            flags,
            streets: streets as u8,
        }
    }
}

impl ContactRecord {
    /// Field `i` (`F_*`).
    fn field(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |p| usize::from(self.ends[p]));
        let end = self
            .ends
            .get(i)
            .map_or(self.text.len(), |&e| usize::from(e));
        // Ends fall on character boundaries by construction; `get` keeps this panic-free.
        self.text.get(start..end).unwrap_or_default()
    }

    /// Optional field `i`: `None` unless its presence bit is set.
    fn optional(&self, i: usize) -> Option<&str> {
        (self.flags & present(i) != 0).then(|| self.field(i))
    }

    /// The registry's ID of the contact (EPP `contact:id`).
    pub fn handle(&self) -> &str {
        self.field(F_HANDLE)
    }

    pub fn name(&self) -> &str {
        self.field(F_NAME)
    }

    pub fn organisation(&self) -> Option<&str> {
        self.optional(F_ORGANISATION)
    }

    /// Street lines, at most three (RFC 5733 §2.4.1).
    pub fn street(&self) -> impl ExactSizeIterator<Item = &str> + Clone {
        (F_STREET..F_STREET + usize::from(self.streets)).map(|i| self.field(i))
    }

    pub fn city(&self) -> &str {
        self.field(F_CITY)
    }

    pub fn province(&self) -> Option<&str> {
        self.optional(F_PROVINCE)
    }

    pub fn postcode(&self) -> Option<&str> {
        self.optional(F_POSTCODE)
    }

    /// ISO 3166-1 alpha-2.
    pub fn country(&self) -> &str {
        self.field(F_COUNTRY)
    }

    pub fn email(&self) -> &str {
        self.field(F_EMAIL)
    }

    pub fn voice(&self) -> Option<&str> {
        self.optional(F_VOICE)
    }

    pub fn fax(&self) -> Option<&str> {
        self.optional(F_FAX)
    }

    /// True when the contact agreed to publication; false means Whois/RDAP redact.
    pub fn disclose(&self) -> bool {
        self.flags & DISCLOSE != 0
    }

    pub fn created(&self) -> Timestamp {
        Timestamp(self.created)
    }

    pub fn updated(&self) -> Timestamp {
        Timestamp(self.updated)
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
    /// Domains by canonical wire name. An [`Interned`] table rather than a map of entries:
    /// a hash map's buckets are a power of two at most 7/8 full, so 1M entries of 112 bytes
    /// take 2M buckets (about 235 MB); here the buckets are 4-byte slot ids and the entries
    /// sit in a vector (about 135 MB in all).
    domains: Interned<DomainEntry>,
    /// Host objects and the nameserver names domains refer to.
    hosts: Interned<HostEntry>,
    contacts: Interned<ContactRecord>,
    registrars: Interned<Registrar>,
    /// Registrar slots by lower-case name, for `whois "registrar NAME"`.
    /// (Names are not unique: each name lists every registrar that has it, first written
    /// first.)
    registrar_names: HashMap<Box<str>, Vec<SlotId>>,
    /// When this data was last brought up to date.
    updated: Timestamp,
}

impl Directory {
    /// Applies one change; zone changes are not the directory's.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Domain(d) => self.put_domain(d),
            Change::DomainRemoved(name) => {
                if let (_, Some(old)) = self.domains.replace(name.as_wire(), None) {
                    self.release(&old);
                }
            }
            Change::Host(h) => self.put_host(h),
            Change::HostRemoved(name) => self.remove_host(name.as_wire()),
            Change::Contact(c) => self.put_contact(c),
            Change::ContactRemoved(handle) => {
                self.contacts.set(handle.as_bytes(), None);
            }
            Change::Registrar(r) => self.put_registrar(r),
            Change::RegistrarRemoved(handle) => {
                self.unindex_registrar_name(handle);
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

    /// Adds or replaces a contact.
    pub fn put_contact(&mut self, c: &Contact) {
        self.contacts.set(c.handle.as_bytes(), Some(c.into()));
    }

    /// Adds or replaces a domain.
    pub fn put_domain(&mut self, d: &Domain) {
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
        if let (_, Some(old)) = self.domains.replace(d.name.as_wire(), Some(entry)) {
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

    /// Adds or replaces a host object.
    pub fn put_host(&mut self, h: &Host) {
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

    /// Adds or replaces a registrar.
    pub fn put_registrar(&mut self, r: &Registrar) {
        self.unindex_registrar_name(&r.handle);
        if let Some(id) = self.registrars.set(r.handle.as_bytes(), Some(r.clone())) {
            self.registrar_names
                .entry(r.name.to_lowercase().into_boxed_str())
                .or_default()
                .push(id);
        }
    }

    /// Removes registrar `handle` from the name index.
    fn unindex_registrar_name(&mut self, handle: &str) {
        let Some(id) = self.registrars.find(handle.as_bytes()) else {
            return;
        };
        let Some(old) = self.registrars.get(id) else {
            return;
        };
        let key = old.name.to_lowercase();
        if let Some(ids) = self.registrar_names.get_mut(key.as_str()) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.registrar_names.remove(key.as_str());
            }
        }
    }

    /// The domain with canonical wire name `name`.
    pub fn domain<'a>(&'a self, name: &[u8]) -> Option<DomainView<'a>> {
        let id = self.domains.find(name)?;
        Some(DomainView {
            dir: self,
            name: self.domains.key(id),
            entry: self.domains.get(id)?,
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
    pub fn contact(&self, handle: &str) -> Option<&ContactRecord> {
        self.contacts.lookup(handle.as_bytes())
    }

    /// The registrar with `handle`.
    pub fn registrar(&self, handle: &str) -> Option<&Registrar> {
        self.registrars.lookup(handle.as_bytes())
    }

    /// The registrar whose name is `name` (any case), else whose handle is `name`.
    pub fn registrar_by_name(&self, name: &str) -> Option<&Registrar> {
        // Names are keyed lower-cased. An ASCII name (the usual case) is lower-cased on the
        // stack: no allocation per query.
        let mut buf = [0u8; 256];
        let ids = match buf.get_mut(..name.len()) {
            Some(lower) if name.is_ascii() => {
                lower.copy_from_slice(name.as_bytes());
                lower.make_ascii_lowercase();
                std::str::from_utf8(lower)
                    .ok()
                    .and_then(|key| self.registrar_names.get(key))
            }
            _ => self.registrar_names.get(name.to_lowercase().as_str()),
        };
        let by_name = ids
            .and_then(|ids| ids.first())
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
    pub fn contact(&self, role: Role) -> Option<Ref<'a, ContactRecord>> {
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
        let before = dir.hosts.slots.len();
        dir.apply(&Change::Domain(domain("bar.tld", "tld", &["ns9.bar.tld"])));
        assert_eq!(dir.hosts.slots.len(), before);
    }

    /// The record's view of `c`, field by field, for comparing with the model.
    fn model(r: &ContactRecord) -> Contact {
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
        for c in [full, bare, contact("C1", true), contact("C2", false)] {
            let r = ContactRecord::from(&c);
            assert_eq!(model(&r), c);
            assert_eq!(r.street().len(), c.street.len());
        }
        // Some("") is not None.
        let r = ContactRecord::from(&contact("C3", true));
        assert_eq!((r.province(), r.fax()), (None, None));
        let mut c = contact("C3", true);
        (c.province, c.fax) = (Some(String::new()), Some(String::new()));
        let r = ContactRecord::from(&c);
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
        let r = ContactRecord::from(&c);
        let cut = &long[..FIELD_MAX - 1];
        assert_eq!((r.name(), r.email(), r.fax()), (cut, cut, Some(cut)));
        assert!(r.street().all(|l| l == cut));
        assert_eq!((r.handle(), r.city(), r.country()), ("C1", "Paris", "FR"));
        // More street lines than EPP allows: the rest joined to the third, nothing lost.
        let mut c = contact("C1", true);
        c.street = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let r = ContactRecord::from(&c);
        assert_eq!(r.street().collect::<Vec<_>>(), ["a", "b", "c, d, e"]);
    }

    #[test]
    fn contact_records_stay_small() {
        // A text pointer and length (16), two dates (16), twelve u16 ends (24), two bytes of
        // flags and count: 58, padded to the 8-byte alignment of the pointer.
        assert!(size_of::<ContactRecord>() <= 64);
        // The text pointer is never null: a slot's `Option` costs nothing.
        assert_eq!(
            size_of::<Option<ContactRecord>>(),
            size_of::<ContactRecord>()
        );
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
