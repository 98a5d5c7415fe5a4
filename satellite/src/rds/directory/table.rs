//! The directory's tables: byte records keyed by bytes (a wire name or a handle), in shards
//! that versions share.
//!
//! # Layout
//! A [`Table`] is a [`Shards`] version (the served state's copy-on-write primitive): shards
//! behind `Arc`s, a key's shard picked by [`key_hash`], about 16 records a shard. Cloning a
//! table (a new version) copies the shard pointers only; the first change to a shard in the
//! new version copies that shard, so a batch costs the shards it touches and the versions
//! share every other one. [`Table::seal`], at the end of a batch, shrinks the shards it
//! touched. A shard ([`Records`]) holds:
//! - `arena`: keys and values, each a length-prefixed byte string, back to back. A changed
//!   value is appended and the old bytes become dead; copying a shard (a new version's first
//!   change to it) writes only the live entries, and a shard whose dead bytes outgrow its live
//!   ones is compacted in place, so dead bytes never exceed about half of an arena.
//! - `slots`: 12 bytes per key, the offsets of its key and value and its reference count. A
//!   slot's number never changes while the slot is held, so other records refer to it by
//!   [`Id`] (shard and slot in a `u32`).
//! - `tags`: one byte of each slot's key hash. A lookup scans the shard's tags (16 or so
//!   bytes, one cache line) and compares the key only where the tag matches: one byte an
//!   entry, where a hash index would take about eleven (buckets a power of two, at most 7/8
//!   full, 4 bytes and a control byte each) and a second allocation per shard.
//!
//! A slot exists while it holds a value *or* something refers to it (a domain may name a
//! nameserver that has no host object): reference counts free a slot when neither holds, so
//! churn does not leak. The counts live in the referred record's shard, so changing what a
//! record refers to touches that shard too; an unchanged reference touches nothing (callers
//! reuse the old id, see `Directory::refer`).

use super::bytes::{Reader, put_bytes};
use crate::served::shards::{self, Shards, key_hash, shard_count_for};

/// A slot of a [`Table`]: shard number in the low [`SHARD_BITS`] bits, slot number above.
pub(super) type Id = u32;
/// No slot ("no registrar", "no such contact").
pub(super) const NONE: Id = u32::MAX;

/// Most slots a shard holds, so that an [`Id`] fits 32 bits for any shard count.
fn max_slots(shard_bits: u32) -> usize {
    ((1u64 << (32 - shard_bits)) - 1) as usize
}
/// The offset of a free slot's key; its `value` then links the free list.
const FREE: u32 = u32::MAX;
/// Arenas below this size are never compacted in place (copying a shard compacts it anyway).
const COMPACT_MIN: usize = 1024;
/// Spare bytes a shard's copy gets (about two domain or one contact record).
const HEADROOM: usize = 256;

/// Records keyed by bytes, in shards shared between versions.
#[derive(Clone, Default)]
pub(super) struct Table {
    shards: Shards<Records>,
    /// log2 of the shard count: the low bits of an [`Id`].
    bits: u32,
    /// Slots holding a value.
    live: usize,
    /// Bit set of the shards changed since the last [`Table::seal`].
    touched: Vec<u64>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("live", &self.live)
            .field("shards", &self.shards.count())
            .finish()
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

/// One shard of a [`Table`] (see the module docs).
#[derive(Debug)]
pub(super) struct Records {
    arena: Vec<u8>,
    slots: Vec<Slot>,
    /// [`tag`] of each slot's key, parallel to `slots`.
    tags: Vec<u8>,
    /// First free slot (`NONE`: none).
    free: u32,
    /// Bytes of the arena no slot points to.
    dead: usize,
}

impl Default for Records {
    fn default() -> Self {
        Self {
            arena: Vec::new(),
            slots: Vec::new(),
            tags: Vec::new(),
            free: NONE,
            dead: 0,
        }
    }
}

/// The byte of a key's hash kept per slot: the top eight bits (the shard is picked by middle
/// bits, so keys in one shard still differ here).
fn tag(hash: u64) -> u8 {
    (hash >> 56) as u8
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

impl Clone for Records {
    /// A copy holding only the live entries: the new version's first change to a shard leaves
    /// the dead bytes behind with the old version. Slot numbers and tags are kept. The arena
    /// gets `HEADROOM` spare bytes, so the batch's change to the shard (usually one) does not
    /// double it before the seal shrinks it back.
    fn clone(&self) -> Self {
        let live = self.arena.len().saturating_sub(self.dead);
        let mut arena = Vec::with_capacity(live + HEADROOM);
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
            tags: self.tags.clone(),
            free: self.free,
            dead: 0,
        }
    }
}

impl Records {
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
        let tag = tag(hash);
        self.tags
            .iter()
            .zip(&self.slots)
            .enumerate()
            .find(|&(_, (&t, s))| t == tag && s.key != FREE && entry(&self.arena, s.key) == key)
            .map(|(i, _)| i as u32)
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
    fn intern(&mut self, hash: u64, key: &[u8], max_slots: usize) -> Option<u32> {
        if let Some(slot) = self.find(hash, key) {
            return Some(slot);
        }
        if self.free == NONE && self.slots.len() >= max_slots {
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
                self.tags.push(tag(hash));
                (self.slots.len() - 1) as u32
            }
            free => {
                self.free = self.slots[free as usize].value;
                self.slots[free as usize] = fresh;
                self.tags[free as usize] = tag(hash);
                free
            }
        };
        Some(slot)
    }

    /// Frees `slot` if it holds no value and nothing refers to it.
    fn collect(&mut self, slot: u32) {
        let Some(s) = self.slots.get(slot as usize).copied() else {
            return;
        };
        if s.key == FREE || s.refs > 0 || s.value != NONE {
            return;
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
}

impl shards::Shard for Records {
    /// Compacts (if dead bytes outgrow live ones) and gives back spare capacity (a copy's
    /// headroom, what appends grew).
    fn seal(&mut self) {
        self.maybe_compact();
        self.arena.shrink_to_fit();
        self.slots.shrink_to_fit();
        self.tags.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        shards::vec_bytes(&self.arena)
            + shards::vec_bytes(&self.slots)
            + shards::vec_bytes(&self.tags)
    }
}

impl Table {
    /// Heap bytes of this version (see [`Shards::heap_bytes`]).
    pub(super) fn heap_bytes(&self) -> usize {
        self.shards.heap_bytes() + shards::vec_bytes(&self.touched)
    }

    /// An empty table sized for about `entries` records. It works at any size; a table that
    /// grows far past its size copies more per batch until [`Table::resplit`].
    pub(super) fn with_capacity(entries: usize) -> Self {
        let count = shard_count_for(entries);
        Self {
            shards: Shards::new(count),
            bits: count.trailing_zeros(),
            live: 0,
            touched: Vec::new(),
        }
    }

    fn split(&self, id: Id) -> (usize, u32) {
        (
            (id & ((1 << self.bits) - 1)) as usize,
            id.checked_shr(self.bits).unwrap_or(0),
        )
    }

    fn join(&self, shard: usize, slot: u32) -> Id {
        slot.checked_shl(self.bits).unwrap_or(0) | shard as u32
    }

    /// The hash of `key` and its shard.
    fn locate(&self, key: &[u8]) -> (u64, usize) {
        let hash = key_hash(key);
        (hash, self.shards.index_of(hash))
    }

    /// The slot holding `key`, if any.
    #[cfg(test)]
    pub(super) fn find(&self, key: &[u8]) -> Option<Id> {
        let (hash, shard) = self.locate(key);
        Some(self.join(shard, self.shards.shard(shard).find(hash, key)?))
    }

    /// The key and value stored under `key` (`None` also for a bare reference).
    pub(super) fn lookup(&self, key: &[u8]) -> Option<(&[u8], &[u8])> {
        let (hash, shard) = self.locate(key);
        let shard = self.shards.shard(shard);
        let slot = shard.find(hash, key)?;
        Some((shard.key(slot), shard.value(slot)?))
    }

    /// The value in slot `id` (`None` for a bare reference).
    pub(super) fn get(&self, id: Id) -> Option<&[u8]> {
        let (shard, slot) = self.split(id);
        self.shards.shard(shard).value(slot)
    }

    /// The key of slot `id` (empty for [`NONE`]).
    pub(super) fn key(&self, id: Id) -> &[u8] {
        let (shard, slot) = self.split(id);
        self.shards.shard(shard).key(slot)
    }

    /// Values held (bare references not counted).
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Shard `i`, made this version's own.
    fn shard_mut(&mut self, i: usize) -> &mut Records {
        if self.touched.is_empty() {
            self.touched = vec![0; self.shards.count().div_ceil(64)];
        }
        self.touched[i / 64] |= 1 << (i % 64);
        self.shards.make_mut_at(i)
    }

    /// One more reference to `key` (its slot made if absent); [`NONE`] if its shard is full
    /// (2^32 slots in all), which leaves the reference out.
    pub(super) fn acquire(&mut self, key: &[u8]) -> Id {
        let (hash, index) = self.locate(key);
        let max = max_slots(self.bits);
        let shard = self.shard_mut(index);
        let Some(slot) = shard.intern(hash, key, max) else {
            return NONE;
        };
        let s = &mut shard.slots[slot as usize];
        s.refs = s.refs.saturating_add(1);
        self.join(index, slot)
    }

    /// One reference fewer to `id`; frees its slot when nothing holds it.
    pub(super) fn release(&mut self, id: Id) {
        if id == NONE {
            return;
        }
        let (index, slot) = self.split(id);
        let shard = self.shard_mut(index);
        if let Some(s) = shard.slots.get_mut(slot as usize).filter(|s| s.key != FREE) {
            s.refs = s.refs.saturating_sub(1);
            shard.collect(slot);
        }
    }

    /// Stores `value` under `key` (`None`: removes it, the slot staying while referred to);
    /// returns the slot, [`NONE`] if none holds `key` now (removed, or its shard full).
    pub(super) fn set(&mut self, key: &[u8], value: Option<&[u8]>) -> Id {
        let (hash, index) = self.locate(key);
        if value.is_none() && self.shards.shard(index).find(hash, key).is_none() {
            return NONE;
        }
        let max = max_slots(self.bits);
        let shard = self.shard_mut(index);
        let Some(slot) = shard.intern(hash, key, max) else {
            return NONE;
        };
        let old = shard.slots[slot as usize].value;
        let new = match value.map(|v| shard.append(v)) {
            None => NONE,
            Some(Some(offset)) => offset,
            // The arena is at 4 GiB: the old value stays.
            Some(None) => return self.join(index, slot),
        };
        if old != NONE {
            shard.dead += entry_size(&shard.arena, old);
        }
        shard.slots[slot as usize].value = new;
        shard.collect(slot);
        shard.maybe_compact();
        let freed = shard.slots[slot as usize].key == FREE;
        match (old == NONE, new == NONE) {
            (true, false) => self.live += 1,
            (false, true) => self.live -= 1,
            _ => {}
        }
        if freed { NONE } else { self.join(index, slot) }
    }

    /// Seals the shards changed since the last seal (see [`Records`]' `seal`): the end of a
    /// batch or a build.
    pub(super) fn seal(&mut self) {
        use shards::Shard as _;
        let touched = std::mem::take(&mut self.touched);
        for (word, &bits) in touched.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let i = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                // Made this version's own when touched.
                if let Some(shard) = self.shards.get_mut(i) {
                    shard.seal();
                }
            }
        }
    }

    /// True when the table holds far more records than its shard count was sized for.
    pub(super) fn needs_resplit(&self) -> bool {
        self.shards.needs_resplit(self.live)
    }

    /// This table with a shard count sized for what it holds now: every slot (bare
    /// references included, with their counts) moved, each value passed through `rewrite`
    /// first; and the map from the old ids to the new ones. A full copy: done rarely, when
    /// the table has grown four times past its size.
    pub(super) fn resplit(&self, mut rewrite: impl FnMut(&[u8], &mut Vec<u8>)) -> (Self, Remap) {
        let mut next = Self::with_capacity(self.live);
        let mut value = Vec::new();
        let mut map = Vec::with_capacity(self.shards.count());
        for shard in self.shards.iter() {
            let ids: Box<[Id]> = shard
                .slots
                .iter()
                .enumerate()
                .map(|(slot, s)| {
                    if s.key == FREE {
                        return NONE;
                    }
                    let key = shard.key(slot as u32);
                    let id = match shard.value(slot as u32) {
                        Some(v) => {
                            value.clear();
                            rewrite(v, &mut value);
                            next.set(key, Some(&value))
                        }
                        None => next.acquire(key),
                    };
                    if id != NONE {
                        let (i, new_slot) = next.split(id);
                        let refs = &mut next.shards.make_mut_at(i).slots[new_slot as usize].refs;
                        *refs = s.refs;
                    }
                    id
                })
                .collect();
            map.push(ids);
        }
        next.seal_all();
        (
            next,
            Remap {
                bits: self.bits,
                map,
            },
        )
    }

    /// Seals every shard this version holds alone (after a build).
    pub(super) fn seal_all(&mut self) {
        use shards::Shard as _;
        self.touched.clear();
        for i in 0..self.shards.count() {
            if let Some(shard) = self.shards.get_mut(i) {
                shard.seal();
            }
        }
    }

    /// Shards per table.
    pub(super) fn shard_count(&self) -> usize {
        self.shards.count()
    }

    /// Shards this table shares with `other` (the same allocation).
    pub(super) fn shared_shards(&self, other: &Self) -> usize {
        if self.shards.count() != other.shards.count() {
            return 0;
        }
        (0..self.shards.count())
            .filter(|&i| self.shards.shares_shard(&other.shards, i))
            .count()
    }

    /// Slots in use in the shard of `key` (tests: freed slots are reused).
    #[cfg(test)]
    pub(super) fn slots_near(&self, key: &[u8]) -> usize {
        self.shards.shard(self.locate(key).1).slots.len()
    }
}

/// Old ids to new ones, after a [`Table::resplit`].
pub(super) struct Remap {
    bits: u32,
    map: Vec<Box<[Id]>>,
}

impl Remap {
    pub(super) fn id(&self, id: Id) -> Id {
        if id == NONE {
            return NONE;
        }
        let shard = (id & ((1 << self.bits) - 1)) as usize;
        let slot = id.checked_shr(self.bits).unwrap_or(0) as usize;
        self.map
            .get(shard)
            .and_then(|m| m.get(slot))
            .copied()
            .unwrap_or(NONE)
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
        let mut old = Table::with_capacity(1000);
        for i in 0..1000u32 {
            old.set(&i.to_be_bytes(), Some(format!("v{i}").as_bytes()));
        }
        let mut new = old.clone();
        let all = old.shard_count();
        assert_eq!((all, new.shared_shards(&old)), (64, all));
        new.set(&7u32.to_be_bytes(), Some(b"changed"));
        new.set(&8u32.to_be_bytes(), None);
        let (_, a) = new.locate(&7u32.to_be_bytes());
        let (_, b) = new.locate(&8u32.to_be_bytes());
        assert_eq!(new.shared_shards(&old), all - 1 - usize::from(a != b));
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
        assert!(t.shards.shard(shard).arena.len() < 4 * big.len());
        assert_eq!(t.lookup(b"k").unwrap().1, &big[..]);
        // A copy keeps only the live entries.
        let copy = Records::clone(t.shards.shard(shard));
        assert_eq!(copy.arena.len(), 2 + 2 + big.len());
        assert_eq!(copy.value(0), Some(&big[..]));
    }

    #[test]
    fn a_resplit_keeps_every_slot_and_count() {
        let mut t = Table::default();
        for i in 0..1000u32 {
            t.set(&i.to_be_bytes(), Some(&i.to_le_bytes()));
        }
        let bare = t.acquire(b"bare");
        t.acquire(b"bare");
        let held = t.set(&7u32.to_be_bytes(), Some(b"seven"));
        t.acquire(&7u32.to_be_bytes());
        assert!(t.needs_resplit());
        let (mut next, remap) = t.resplit(|v, out| out.extend_from_slice(v));
        assert!(!next.needs_resplit() && next.shard_count() > 1);
        assert_eq!(next.len(), 1000);
        for i in (0..1000u32).filter(|&i| i != 7) {
            let (key, value) = next.lookup(&i.to_be_bytes()).unwrap();
            assert_eq!((key, value), (&i.to_be_bytes()[..], &i.to_le_bytes()[..]));
        }
        assert_eq!(next.key(remap.id(bare)), b"bare");
        assert_eq!(next.get(remap.id(held)), Some(&b"seven"[..]));
        // Counts moved: a removed value stays while referred to, the last release frees.
        next.set(&7u32.to_be_bytes(), None);
        next.release(remap.id(held));
        assert!(next.find(&7u32.to_be_bytes()).is_none());
        next.release(remap.id(bare));
        assert!(next.find(b"bare").is_some());
        next.release(remap.id(bare));
        assert!(next.find(b"bare").is_none());
        assert_eq!(remap.id(NONE), NONE);
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
