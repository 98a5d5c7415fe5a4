//! Registrars: a few hundred in a registry, kept as the model's [`Registrar`] in one small
//! table that a version copies whole when a batch changes one (or a count of references to
//! one). Sharding and byte records would save nothing at this size.

use hashbrown::HashMap;
use orrery_proto::Registrar;

/// Id of a registrar slot; `u32::MAX` (the tables' `NONE`): no registrar.
pub(super) type RegistrarId = u32;

#[derive(Clone, Debug, Default)]
pub(super) struct Registrars {
    slots: Vec<Slot>,
    /// Slot ids by handle.
    by_handle: HashMap<Box<str>, RegistrarId>,
    free: Vec<RegistrarId>,
    /// Registrar slots by lower-case name, for `whois "registrar NAME"`. Names are not
    /// unique: each name lists every registrar that has it, first written first.
    by_name: HashMap<Box<str>, Vec<RegistrarId>>,
    live: usize,
}

/// A slot exists while the registrar exists *or* a domain or host refers to it; the count
/// frees it when neither holds.
#[derive(Clone, Debug)]
struct Slot {
    handle: Box<str>,
    value: Option<Registrar>,
    refs: u32,
}

impl Registrars {
    /// Heap bytes, approximately: the slots and both indexes with their keys (a registrar's
    /// own fields are counted at their inline size; there are few registrars).
    pub(super) fn heap_bytes(&self) -> usize {
        let slots: usize = self.slots.iter().map(|s| s.handle.len()).sum();
        let by_name: usize = self
            .by_name
            .iter()
            .map(|(k, v)| k.len() + v.capacity() * size_of::<RegistrarId>())
            .sum();
        self.slots.capacity() * size_of::<Slot>()
            + slots * 2
            + self.by_handle.capacity() * (size_of::<(Box<str>, RegistrarId)>() + 1)
            + self.by_name.capacity() * (size_of::<(Box<str>, Vec<RegistrarId>)>() + 1)
            + by_name
            + self.free.capacity() * size_of::<RegistrarId>()
    }

    pub(super) fn find(&self, handle: &str) -> Option<RegistrarId> {
        self.by_handle.get(handle).copied()
    }

    pub(super) fn get(&self, id: RegistrarId) -> Option<&Registrar> {
        self.slots.get(id as usize)?.value.as_ref()
    }

    /// The handle of slot `id` (empty for [`NONE`]).
    pub(super) fn handle(&self, id: RegistrarId) -> &str {
        self.slots.get(id as usize).map_or("", |s| &s.handle)
    }

    pub(super) fn lookup(&self, handle: &str) -> Option<&Registrar> {
        self.get(self.find(handle)?)
    }

    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// The registrar whose name is `name` (any case).
    pub(super) fn by_name(&self, name: &str) -> Option<&Registrar> {
        // Names are keyed lower-cased. An ASCII name (the usual case) is lower-cased on the
        // stack: no allocation per query.
        let mut buf = [0u8; 256];
        let ids = match buf.get_mut(..name.len()) {
            Some(lower) if name.is_ascii() => {
                lower.copy_from_slice(name.as_bytes());
                lower.make_ascii_lowercase();
                std::str::from_utf8(lower)
                    .ok()
                    .and_then(|key| self.by_name.get(key))
            }
            _ => self.by_name.get(name.to_lowercase().as_str()),
        };
        ids.and_then(|ids| ids.first()).and_then(|&id| self.get(id))
    }

    fn intern(&mut self, handle: &str) -> RegistrarId {
        if let Some(id) = self.find(handle) {
            return id;
        }
        let slot = Slot {
            handle: handle.into(),
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
                (self.slots.len() - 1) as RegistrarId
            }
        };
        self.by_handle.insert(handle.into(), id);
        id
    }

    /// One more reference to `handle` (made if absent).
    pub(super) fn acquire(&mut self, handle: &str) -> RegistrarId {
        let id = self.intern(handle);
        let slot = &mut self.slots[id as usize];
        slot.refs = slot.refs.saturating_add(1);
        id
    }

    /// One reference fewer; frees the slot when nothing holds it.
    pub(super) fn release(&mut self, id: RegistrarId) {
        if let Some(slot) = self.slots.get_mut(id as usize) {
            slot.refs = slot.refs.saturating_sub(1);
            self.collect(id);
        }
    }

    /// Adds or replaces a registrar.
    pub(super) fn put(&mut self, r: &Registrar) {
        self.unindex_name(&r.handle);
        let id = self.intern(&r.handle);
        let slot = &mut self.slots[id as usize];
        if slot.value.replace(r.clone()).is_none() {
            self.live += 1;
        }
        self.by_name
            .entry(r.name.to_lowercase().into_boxed_str())
            .or_default()
            .push(id);
    }

    /// Removes registrar `handle` (its slot stays while referred to).
    pub(super) fn remove(&mut self, handle: &str) {
        self.unindex_name(handle);
        let Some(id) = self.find(handle) else {
            return;
        };
        if self.slots[id as usize].value.take().is_some() {
            self.live -= 1;
        }
        self.collect(id);
    }

    fn collect(&mut self, id: RegistrarId) {
        let slot = &mut self.slots[id as usize];
        // A freed slot is no longer indexed under its handle.
        if slot.refs > 0 || slot.value.is_some() || self.by_handle.get(&slot.handle) != Some(&id) {
            return;
        }
        let handle = std::mem::take(&mut slot.handle);
        self.by_handle.remove(&handle);
        self.free.push(id);
    }

    /// Removes registrar `handle` from the name index.
    fn unindex_name(&mut self, handle: &str) {
        let Some(id) = self.find(handle) else {
            return;
        };
        let Some(old) = self.get(id) else {
            return;
        };
        let key = old.name.to_lowercase();
        if let Some(ids) = self.by_name.get_mut(key.as_str()) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.by_name.remove(key.as_str());
            }
        }
    }
}
