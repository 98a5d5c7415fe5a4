//! The directory's tables: byte records keyed by bytes (a wire name or a handle), in shards
//! that versions share.
//!
//! # Layout
//! A [`Table`] is [`SHARDS`] shards, each behind an `Arc`; a key's shard comes from its hash.
//! Cloning a table (a new version) copies the shard pointers only; the first change to a
//! shard in the new version copies that shard (`Arc::make_mut`), so a batch costs the shards
//! it touches and the versions share every other one. A shard holds:
//! - `arena`: keys and values, each a length-prefixed byte string, back to back. A changed
//!   value is appended and the old bytes become dead; copying a shard (a new version's first
//!   change to it) writes only the live entries, and a shard whose dead bytes outgrow its live
//!   ones is compacted in place, so dead bytes never exceed about half of an arena.
//! - `slots`: 12 bytes per key, the offsets of its key and value and its reference count. A
//!   slot's number never changes while the slot is held, so other records refer to it by
//!   [`Id`] (shard and slot in a `u32`).
//! - `index`: the slot numbers hashed by key (4 bytes a bucket plus hashbrown's control byte).
//!
//! A slot exists while it holds a value *or* something refers to it (a domain may name a
//! nameserver that has no host object): reference counts free a slot when neither holds, so
//! churn does not leak. The counts live in the referred record's shard, so changing what a
//! record refers to touches that shard too; an unchanged reference touches nothing (callers
//! reuse the old id, see `Directory::refer`).

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::bytes::{Reader, put_bytes};

/// A slot of a [`Table`]: shard number in the low [`SHARD_BITS`] bits, slot number above.
pub(super) type Id = u32;
/// No slot ("no registrar", "no such contact").
pub(super) const NONE: Id = u32::MAX;

/// Shards per table, a power of two. With 1,000,000 records, 32,768 shards hold about 30
/// each: a 10,000-change batch copies at most 10,000 shards of each table it changes (about
/// a quarter of them), and an empty shard costs 8 bytes (every empty shard is one shared
/// allocation).
const SHARD_BITS: u32 = 15;
const SHARDS: usize = 1 << SHARD_BITS;
/// Slots per shard: an [`Id`] must fit in 32 bits and not be [`NONE`].
const MAX_SLOTS: usize = (1 << (32 - SHARD_BITS)) - 1;
/// The offset of a free slot's key; its `value` then links the free list.
const FREE: u32 = u32::MAX;
/// Arenas below this size are never compacted in place (copying a shard compacts it anyway).
const COMPACT_MIN: usize = 1024;

/// Records keyed by bytes, in shards shared between versions.
#[derive(Clone)]
pub(super) struct Table {
    shards: Box<[Arc<Shard>]>,
    /// One seed for every shard of every version made from this table.
    hasher: DefaultHashBuilder,
    /// Slots holding a value.
    live: usize,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").field("live", &self.live).finish()
    }
}

impl Default for Table {
    fn default() -> Self {
        let empty = Arc::new(Shard::default());
        Self {
            shards: (0..SHARDS).map(|_| Arc::clone(&empty)).collect(),
            hasher: DefaultHashBuilder::default(),
            live: 0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Offset of the key in the arena (`FREE`: slot unused).
    key: u32,
    /// Offset of the value (`NONE`: none), or the next free slot.
    value: u32,
    refs: u32,
}

#[derive(Debug)]
struct Shard {
    arena: Vec<u8>,
    slots: Vec<Slot>,
    index: HashTable<u32>,
    /// First free slot (`NONE`: none).
    free: u32,
    /// Bytes of the arena no slot points to.
    dead: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            arena: Vec::new(),
            slots: Vec::new(),
            index: HashTable::new(),
            free: NONE,
            dead: 0,
        }
    }
}

/// The length-prefixed entry at `offset` (empty if the offset is out of the arena).
fn entry(arena: &[u8], offset: u32) -> &[u8] {
    arena
        .get(offset as usize..)
        .map_or(&[], |rest| Reader::new(rest).bytes())
}

/// Bytes the entry at `offset` takes, its length prefix included.
fn entry_size(arena: &[u8], offset: u32) -> usize {
    let rest = arena.get(offset as usize..).unwrap_or_default();
    let mut r = Reader::new(rest);
    r.bytes();
    rest.len() - r.rest().len()
}

impl Clone for Shard {
    /// A copy holding only the live entries: the new version's first change to a shard leaves
    /// the dead bytes behind with the old version. Slot numbers and the index are kept.
    fn clone(&self) -> Self {
        let mut arena = Vec::with_capacity(self.arena.len().saturating_sub(self.dead));
        let mut copy = |offset: u32| {
            let at = arena.len() as u32;
            put_bytes(&mut arena, entry(&self.arena, offset));
            at
        };
        let slots = self
            .slots
            .iter()
            .map(|s| {
                if s.key == FREE {
                    return *s;
                }
                let key = copy(s.key);
                let value = if s.value == NONE { NONE } else { copy(s.value) };
                Slot {
                    key,
                    value,
                    refs: s.refs,
                }
            })
            .collect();
        Self {
            arena,
            slots,
            index: self.index.clone(),
            free: self.free,
            dead: 0,
        }
    }
}

impl Shard {
    fn key(&self, slot: u32) -> &[u8] {
        match self.slots.get(slot as usize) {
            Some(s) if s.key != FREE => entry(&self.arena, s.key),
            _ => &[],
        }
    }

    fn value(&self, slot: u32) -> Option<&[u8]> {
        let s = self.slots.get(slot as usize)?;
        (s.key != FREE && s.value != NONE).then(|| entry(&self.arena, s.value))
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        self.index.find(hash, |&s| self.key(s) == key).copied()
    }

    /// Appends `bytes` as an entry; `None` if the arena would pass `u32` offsets.
    fn append(&mut self, bytes: &[u8]) -> Option<u32> {
        let at = u32::try_from(self.arena.len()).ok()?;
        u32::try_from(self.arena.len() + bytes.len() + 10).ok()?;
        put_bytes(&mut self.arena, bytes);
        Some(at)
    }

    /// The slot of `key`, made (with no value and no reference) if absent; `None` when the
    /// shard is full.
    fn intern(&mut self, hasher: &DefaultHashBuilder, hash: u64, key: &[u8]) -> Option<u32> {
        if let Some(slot) = self.find(hash, key) {
            return Some(slot);
        }
        if self.free == NONE && self.slots.len() >= MAX_SLOTS {
            return None;
        }
        let offset = self.append(key)?;
        let fresh = Slot {
            key: offset,
            value: NONE,
            refs: 0,
        };
        let slot = match self.free {
            NONE => {
                self.slots.push(fresh);
                (self.slots.len() - 1) as u32
            }
            free => {
                self.free = self.slots[free as usize].value;
                self.slots[free as usize] = fresh;
                free
            }
        };
        let (arena, slots) = (&self.arena, &self.slots);
        self.index.insert_unique(hash, slot, |&s| {
            hasher.hash_one(entry(arena, slots[s as usize].key))
        });
        Some(slot)
    }

    /// Frees `slot` if it holds no value and nothing refers to it.
    fn collect(&mut self, hasher: &DefaultHashBuilder, slot: u32) {
        let Some(s) = self.slots.get(slot as usize).copied() else {
            return;
        };
        if s.key == FREE || s.refs > 0 || s.value != NONE {
            return;
        }
        let hash = hasher.hash_one(entry(&self.arena, s.key));
        if let Ok(found) = self.index.find_entry(hash, |&i| i == slot) {
            found.remove();
        }
        self.dead += entry_size(&self.arena, s.key);
        self.slots[slot as usize] = Slot {
            key: FREE,
            value: self.free,
            refs: 0,
        };
        self.free = slot;
    }

    /// Compacts the arena in place once its dead bytes outgrow the live ones.
    fn maybe_compact(&mut self) {
        if self.arena.len() >= COMPACT_MIN && self.dead * 2 > self.arena.len() {
            *self = self.clone();
        }
    }

    fn shrink_to_fit(&mut self, hasher: &DefaultHashBuilder) {
        self.arena.shrink_to_fit();
        self.slots.shrink_to_fit();
        let (arena, slots) = (&self.arena, &self.slots);
        self.index
            .shrink_to_fit(|&s| hasher.hash_one(entry(arena, slots[s as usize].key)));
    }
}

fn split(id: Id) -> (usize, u32) {
    (id as usize & (SHARDS - 1), id >> SHARD_BITS)
}

fn join(shard: usize, slot: u32) -> Id {
    slot << SHARD_BITS | shard as u32
}

impl Table {
    /// The hash of `key` and its shard. The shard takes middle bits of the hash: hashbrown
    /// places by the low bits and filters by the top seven, which must stay spread inside a
    /// shard.
    fn locate(&self, key: &[u8]) -> (u64, usize) {
        let hash = self.hasher.hash_one(key);
        (hash, (hash >> 32) as usize & (SHARDS - 1))
    }

    /// The slot holding `key`, if any.
    #[cfg(test)]
    pub(super) fn find(&self, key: &[u8]) -> Option<Id> {
        let (hash, shard) = self.locate(key);
        Some(join(shard, self.shards[shard].find(hash, key)?))
    }

    /// The key and value stored under `key` (`None` also for a bare reference).
    pub(super) fn lookup(&self, key: &[u8]) -> Option<(&[u8], &[u8])> {
        let (hash, shard) = self.locate(key);
        let shard = &self.shards[shard];
        let slot = shard.find(hash, key)?;
        Some((shard.key(slot), shard.value(slot)?))
    }

    /// The value in slot `id` (`None` for a bare reference).
    pub(super) fn get(&self, id: Id) -> Option<&[u8]> {
        let (shard, slot) = split(id);
        self.shards[shard].value(slot)
    }

    /// The key of slot `id` (empty for [`NONE`]).
    pub(super) fn key(&self, id: Id) -> &[u8] {
        let (shard, slot) = split(id);
        self.shards[shard].key(slot)
    }

    /// Values held (bare references not counted).
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// The shard of `key`, made this version's own.
    fn shard_mut(&mut self, shard: usize) -> &mut Shard {
        Arc::make_mut(&mut self.shards[shard])
    }

    /// One more reference to `key` (its slot made if absent); [`NONE`] if its shard is full
    /// (2^17 slots: four billion records in all), which leaves the reference out.
    pub(super) fn acquire(&mut self, key: &[u8]) -> Id {
        let (hash, index) = self.locate(key);
        let hasher = self.hasher.clone();
        let shard = self.shard_mut(index);
        let Some(slot) = shard.intern(&hasher, hash, key) else {
            return NONE;
        };
        let s = &mut shard.slots[slot as usize];
        s.refs = s.refs.saturating_add(1);
        join(index, slot)
    }

    /// One reference fewer to `id`; frees its slot when nothing holds it.
    pub(super) fn release(&mut self, id: Id) {
        if id == NONE {
            return;
        }
        let (index, slot) = split(id);
        let hasher = self.hasher.clone();
        let shard = self.shard_mut(index);
        if let Some(s) = shard.slots.get_mut(slot as usize).filter(|s| s.key != FREE) {
            s.refs = s.refs.saturating_sub(1);
            shard.collect(&hasher, slot);
        }
    }

    /// Stores `value` under `key` (`None`: removes it, the slot staying while referred to);
    /// returns the slot, [`NONE`] if none holds `key` now (removed, or its shard full).
    pub(super) fn set(&mut self, key: &[u8], value: Option<&[u8]>) -> Id {
        let (hash, index) = self.locate(key);
        if value.is_none() && self.shards[index].find(hash, key).is_none() {
            return NONE;
        }
        let hasher = self.hasher.clone();
        let shard = self.shard_mut(index);
        let Some(slot) = shard.intern(&hasher, hash, key) else {
            return NONE;
        };
        let old = shard.slots[slot as usize].value;
        let new = match value.map(|v| shard.append(v)) {
            None => NONE,
            Some(Some(offset)) => offset,
            // The arena is at 4 GiB: the old value stays.
            Some(None) => return join(index, slot),
        };
        if old != NONE {
            shard.dead += entry_size(&shard.arena, old);
        }
        shard.slots[slot as usize].value = new;
        match (old == NONE, new == NONE) {
            (true, false) => self.live += 1,
            (false, true) => self.live -= 1,
            _ => {}
        }
        let shard = self.shard_mut(index);
        shard.collect(&hasher, slot);
        shard.maybe_compact();
        if new == NONE && shard.slots[slot as usize].key == FREE {
            return NONE;
        }
        join(index, slot)
    }

    /// Gives the spare capacity of this version's own shards back (after a build: vectors
    /// grown by doubling are a quarter empty on average).
    pub(super) fn shrink_to_fit(&mut self) {
        let hasher = self.hasher.clone();
        for shard in self.shards.iter_mut() {
            if let Some(shard) = Arc::get_mut(shard) {
                shard.shrink_to_fit(&hasher);
            }
        }
    }

    /// Slots in use in the shard of `key` (tests: freed slots are reused).
    #[cfg(test)]
    pub(super) fn slots_near(&self, key: &[u8]) -> usize {
        let shard = &self.shards[self.locate(key).1];
        shard.slots.len()
    }

    /// Shards per table.
    pub(super) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Shards this table shares with `other` (the same allocation).
    pub(super) fn shared_shards(&self, other: &Self) -> usize {
        self.shards
            .iter()
            .zip(other.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_references_and_slots() {
        let mut t = Table::default();
        let a = t.set(b"a", Some(b"one"));
        assert_eq!(t.lookup(b"a"), Some((&b"a"[..], &b"one"[..])));
        assert_eq!((t.find(b"a"), t.len()), (Some(a), 1));
        // A replaced value; a bare reference holds a slot without a value.
        assert_eq!(t.set(b"a", Some(b"two")), a);
        assert_eq!(t.get(a), Some(&b"two"[..]));
        let b = t.acquire(b"b");
        assert_eq!((t.key(b), t.get(b), t.len()), (&b"b"[..], None, 1));
        assert!(t.lookup(b"b").is_none());
        // Removing a referenced value keeps the slot; the last release frees it.
        t.acquire(b"a");
        assert_eq!(t.set(b"a", None), a);
        assert_eq!((t.find(b"a"), t.get(a), t.len()), (Some(a), None, 0));
        t.release(a);
        t.release(b);
        assert_eq!((t.find(b"a"), t.find(b"b")), (None, None));
        assert_eq!(t.set(b"nothing", None), NONE);
        // Releasing NONE or a freed slot is harmless.
        t.release(NONE);
        t.release(a);
        assert_eq!(t.key(NONE), b"");
    }

    #[test]
    fn versions_share_untouched_shards_and_keep_their_own_data() {
        let mut old = Table::default();
        for i in 0..1000u32 {
            old.set(&i.to_be_bytes(), Some(format!("v{i}").as_bytes()));
        }
        let mut new = old.clone();
        assert_eq!(new.shared_shards(&old), SHARDS);
        new.set(&7u32.to_be_bytes(), Some(b"changed"));
        new.set(&8u32.to_be_bytes(), None);
        assert_eq!(new.shared_shards(&old), SHARDS - 2);
        assert_eq!(old.lookup(&7u32.to_be_bytes()).unwrap().1, b"v7");
        assert_eq!(old.lookup(&8u32.to_be_bytes()).unwrap().1, b"v8");
        assert_eq!(new.lookup(&7u32.to_be_bytes()).unwrap().1, b"changed");
        assert!(new.lookup(&8u32.to_be_bytes()).is_none());
        assert_eq!((old.len(), new.len()), (1000, 999));
        for i in 9..1000u32 {
            assert_eq!(
                new.lookup(&i.to_be_bytes()).unwrap().1,
                format!("v{i}").as_bytes()
            );
        }
    }

    #[test]
    fn rewriting_a_value_does_not_grow_the_arena_without_bound() {
        let mut t = Table::default();
        let big = vec![b'x'; 500];
        for _ in 0..1000 {
            t.set(b"k", Some(&big));
        }
        let (_, shard) = t.locate(b"k");
        assert!(t.shards[shard].arena.len() < 4 * big.len());
        assert_eq!(t.lookup(b"k").unwrap().1, &big[..]);
        // A copy keeps only the live entries.
        let copy = Shard::clone(&t.shards[shard]);
        assert_eq!(copy.arena.len(), 2 + 2 + big.len());
        assert_eq!(copy.value(0), Some(&big[..]));
    }

    #[test]
    fn freed_slots_are_reused() {
        let mut t = Table::default();
        let id = t.set(b"k", Some(b"v"));
        t.set(b"k", None);
        let again = t.set(b"k", Some(b"w"));
        assert_eq!((id, t.slots_near(b"k")), (again, 1));
    }
}
