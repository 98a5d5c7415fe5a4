//! A compact, copy-on-write map from canonical wire names to a small fixed record and a byte
//! payload, on the sharded primitive of [`crate::served::shards`].
//!
//! # Layout of a shard
//! - `arena`: one `Vec<u8>` holding, per entry, its wire name followed by its payload (no
//!   allocation per name).
//! - `entries`: fixed-size records (`u32` arena offset, payload length, name length, the
//!   caller's `V`).
//! - `tags`: 32 bits of each entry's key hash, parallel to `entries`. A shard holds about
//!   [`ENTRIES_PER_SHARD`](crate::served::shards::ENTRIES_PER_SHARD) entries, so the in-shard
//!   index is a scan of one or two cache lines of tags, then one name comparison: it costs
//!   4 bytes an entry where a hash table of offsets costs 5–10 (control bytes, slack), and a
//!   lookup is still one probe: hash → shard → tags → entry → name.
//!
//! Removal swaps the last entry into the hole; the bytes of removed or rewritten entries stay
//! in the arena as garbage until [`Shard::seal`] (run once per touched shard after each batch)
//! compacts the arena and trims every vector to its length.
//!
//! The map re-splits itself into more shards when it has grown to four times what its count was
//! sized for ([`Shards::needs_resplit`]): a full rebuild, once per fourfold growth.

use crate::served::shards::{
    Partition, Shard, Shards, key_hash, reserve_in_shard, shard_count_for, vec_bytes,
};

/// The bits of the key hash kept as the in-shard tag: rotated so that none of them are the
/// bits that chose the shard (those are equal for every key in the shard).
#[inline]
fn tag(hash: u64) -> u32 {
    hash.rotate_right(44) as u32
}

#[derive(Clone, Copy, Debug)]
struct Entry<V> {
    off: u32,
    payload_len: u32,
    name_len: u8,
    value: V,
}

/// One shard of a [`NameMap`] (see the module docs).
#[derive(Clone, Debug)]
pub struct NameShard<V> {
    tags: Vec<u32>,
    entries: Vec<Entry<V>>,
    arena: Vec<u8>,
    /// Arena bytes no entry refers to any more.
    garbage: u32,
}

impl<V> Default for NameShard<V> {
    fn default() -> Self {
        Self {
            tags: Vec::new(),
            entries: Vec::new(),
            arena: Vec::new(),
            garbage: 0,
        }
    }
}

impl<V: Copy + Send + Sync> Shard for NameShard<V> {
    fn seal(&mut self) {
        if self.garbage > 0 {
            let live: usize = self
                .entries
                .iter()
                .map(|e| e.name_len as usize + e.payload_len as usize)
                .sum();
            let mut arena = Vec::with_capacity(live);
            for e in &mut self.entries {
                let start = e.off as usize;
                let end = start + e.name_len as usize + e.payload_len as usize;
                e.off = arena.len() as u32;
                arena.extend_from_slice(&self.arena[start..end]);
            }
            self.arena = arena;
            self.garbage = 0;
        }
        self.arena.shrink_to_fit();
        self.entries.shrink_to_fit();
        self.tags.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        vec_bytes(&self.tags) + vec_bytes(&self.entries) + vec_bytes(&self.arena)
    }
}

impl<V: Copy> NameShard<V> {
    #[inline]
    fn find(&self, tag: u32, name: &[u8]) -> Option<usize> {
        self.tags
            .iter()
            .enumerate()
            .filter(|&(_, &t)| t == tag)
            .map(|(i, _)| i)
            .find(|&i| self.name(i) == name)
    }

    #[inline]
    fn name(&self, i: usize) -> &[u8] {
        let e = &self.entries[i];
        &self.arena[e.off as usize..e.off as usize + e.name_len as usize]
    }

    #[inline]
    fn payload(&self, i: usize) -> &[u8] {
        let e = &self.entries[i];
        let start = e.off as usize + e.name_len as usize;
        &self.arena[start..start + e.payload_len as usize]
    }

    fn push(&mut self, tag: u32, name: &[u8], payload: &[u8], value: V) {
        reserve_in_shard(&mut self.arena, name.len() + payload.len());
        reserve_in_shard(&mut self.tags, 1);
        reserve_in_shard(&mut self.entries, 1);
        let off = self.arena.len() as u32;
        self.arena.extend_from_slice(name);
        self.arena.extend_from_slice(payload);
        self.tags.push(tag);
        self.entries.push(Entry {
            off,
            payload_len: payload.len() as u32,
            name_len: name.len() as u8,
            value,
        });
    }

    fn rewrite(&mut self, i: usize, payload: &[u8], value: V) {
        let e = self.entries[i];
        if payload.len() <= e.payload_len as usize {
            // Shrinks in place: the tail becomes garbage.
            let start = e.off as usize + e.name_len as usize;
            self.arena[start..start + payload.len()].copy_from_slice(payload);
            self.garbage += e.payload_len - payload.len() as u32;
            self.entries[i].payload_len = payload.len() as u32;
            self.entries[i].value = value;
            return;
        }
        reserve_in_shard(&mut self.arena, e.name_len as usize + payload.len());
        let off = self.arena.len() as u32;
        let name = e.off as usize..e.off as usize + e.name_len as usize;
        self.arena.extend_from_within(name);
        self.arena.extend_from_slice(payload);
        self.garbage += u32::from(e.name_len) + e.payload_len;
        self.entries[i] = Entry {
            off,
            payload_len: payload.len() as u32,
            name_len: e.name_len,
            value,
        };
    }

    fn remove(&mut self, i: usize) {
        let e = self.entries.swap_remove(i);
        self.tags.swap_remove(i);
        self.garbage += u32::from(e.name_len) + e.payload_len;
    }
}

/// An entry found in a [`NameMap`].
#[derive(Clone, Copy, Debug)]
pub struct Found<'a, V> {
    shard: &'a NameShard<V>,
    i: usize,
}

impl<'a, V: Copy> Found<'a, V> {
    /// The entry's wire name.
    #[inline]
    pub fn name(&self) -> &'a [u8] {
        self.shard.name(self.i)
    }

    /// The entry's payload bytes.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.shard.payload(self.i)
    }

    /// The entry's fixed record.
    #[inline]
    pub fn value(&self) -> V {
        self.shard.entries[self.i].value
    }
}

/// A sharded, copy-on-write map from wire names (at most 255 bytes) to a `V` and a payload.
/// Cloning it makes a version that shares every shard; edits copy the shards they touch.
#[derive(Clone, Debug)]
pub struct NameMap<V> {
    shards: Shards<NameShard<V>>,
    len: usize,
    /// Shards edited since the last [`NameMap::seal`] (empty in a sealed version).
    touched: Vec<u32>,
}

impl<V: Copy + Send + Sync> Default for NameMap<V> {
    fn default() -> Self {
        Self::with_expected(0)
    }
}

impl<V: Copy + Send + Sync> NameMap<V> {
    /// Heap bytes of this version (see [`Shards::heap_bytes`]).
    pub fn heap_bytes(&self) -> usize {
        self.shards.heap_bytes() + vec_bytes(&self.touched)
    }

    /// An empty map sized for about `entries` entries.
    pub fn with_expected(entries: usize) -> Self {
        Self {
            shards: Shards::new(shard_count_for(entries)),
            len: 0,
            touched: Vec::new(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the map holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry at `name`. One hash, one shard, one scan of its tags.
    #[inline]
    pub fn get(&self, name: &[u8]) -> Option<Found<'_, V>> {
        let hash = key_hash(name);
        let shard = self.shards.get(hash);
        shard.find(tag(hash), name).map(|i| Found { shard, i })
    }

    /// The record at `name`.
    #[inline]
    pub fn value(&self, name: &[u8]) -> Option<V> {
        self.get(name).map(|f| f.value())
    }

    fn shard_mut(&mut self, hash: u64) -> &mut NameShard<V> {
        let i = self.shards.index_of(hash);
        if self.touched.last() != Some(&(i as u32)) {
            self.touched.push(i as u32);
        }
        self.shards.make_mut_at(i)
    }

    /// Sets the entry at `name` (inserted or replaced).
    pub fn insert(&mut self, name: &[u8], payload: &[u8], value: V) {
        debug_assert!(name.len() <= 255);
        let hash = key_hash(name);
        let t = tag(hash);
        let shard = self.shard_mut(hash);
        match shard.find(t, name) {
            Some(i) => shard.rewrite(i, payload, value),
            None => {
                shard.push(t, name, payload, value);
                self.len += 1;
            }
        }
    }

    /// Changes the record at `name` by `f`, inserting `V::default()` with an empty payload
    /// first when absent if `insert` is set. Returns the record after `f`, or `None` if absent
    /// and not inserted. If `keep` says no about the result, the entry is removed.
    pub fn update(
        &mut self,
        name: &[u8],
        insert: bool,
        f: impl FnOnce(&mut V),
        keep: impl FnOnce(&V) -> bool,
    ) -> Option<V>
    where
        V: Default,
    {
        let hash = key_hash(name);
        let t = tag(hash);
        // Look first in the shared shard: an absent name copies nothing.
        if !insert && self.shards.get(hash).find(t, name).is_none() {
            return None;
        }
        let shard = self.shard_mut(hash);
        let (i, added) = match shard.find(t, name) {
            Some(i) => (i, false),
            None => {
                shard.push(t, name, &[], V::default());
                (shard.entries.len() - 1, true)
            }
        };
        f(&mut shard.entries[i].value);
        let v = shard.entries[i].value;
        let kept = keep(&v);
        if !kept {
            shard.remove(i);
        }
        match (added, kept) {
            (true, true) => self.len += 1,
            (false, false) => self.len -= 1,
            _ => {}
        }
        Some(v)
    }

    /// Removes the entry at `name`; true if there was one.
    pub fn remove(&mut self, name: &[u8]) -> bool {
        let hash = key_hash(name);
        let t = tag(hash);
        if self.shards.get(hash).find(t, name).is_none() {
            return false;
        }
        let shard = self.shard_mut(hash);
        if let Some(i) = shard.find(t, name) {
            shard.remove(i);
            self.len -= 1;
        }
        true
    }

    /// Builds a map in one pass a shard from `items`, each naming a distinct entry: the items
    /// are partitioned by shard first (their indexes, one counting sort), then each shard is
    /// written on one of `threads` threads with its vectors sized exactly (no regrowth, nothing
    /// for [`Shard::seal`] to trim). `name` gives an item's wire name, `size` its payload
    /// length and `write` appends that payload and returns the record. Returns `None` if two
    /// items have the same name (the caller then builds by single inserts, which let the last
    /// one win): the input is not trusted to be unique, that check is a tag scan of the shard
    /// being written.
    pub fn build_unique<T: Sync>(
        expected: usize,
        items: &[T],
        threads: usize,
        name: impl Fn(&T) -> &[u8] + Sync,
        size: impl Fn(&T) -> usize + Sync,
        write: impl Fn(&T, &mut Vec<u8>) -> V + Sync,
    ) -> Option<Self> {
        let (shards, parts) = Partition::new(
            shard_count_for(expected),
            items.len(),
            threads,
            |i| name(&items[i]),
            tag,
        );
        let duplicate = std::sync::atomic::AtomicBool::new(false);
        let shards = Shards::from_fn_parallel(shards, threads, |s| {
            let part = parts.shard(s);
            let bytes = part
                .iter()
                .map(|&(i, _)| name(&items[i as usize]).len() + size(&items[i as usize]))
                .sum();
            let mut shard = NameShard {
                tags: Vec::with_capacity(part.len()),
                entries: Vec::with_capacity(part.len()),
                arena: Vec::with_capacity(bytes),
                garbage: 0,
            };
            for &(i, t) in part {
                let item = &items[i as usize];
                let key = name(item);
                if shard.find(t, key).is_some() {
                    duplicate.store(true, std::sync::atomic::Ordering::Relaxed);
                    return shard;
                }
                let off = shard.arena.len() as u32;
                shard.arena.extend_from_slice(key);
                let value = write(item, &mut shard.arena);
                shard.tags.push(t);
                shard.entries.push(Entry {
                    off,
                    payload_len: shard.arena.len() as u32 - off - key.len() as u32,
                    name_len: key.len() as u8,
                    value,
                });
            }
            shard
        });
        if duplicate.into_inner() {
            return None;
        }
        Some(Self {
            shards,
            len: items.len(),
            touched: Vec::new(),
        })
    }

    /// Builds a map with empty payloads from `(name, record)` items in one pass a shard, as
    /// [`NameMap::build_unique`] does, except that items with the same name make one entry
    /// whose record is folded from theirs by `merge(existing, next)`. `expected` is the
    /// number of entries it is sized for (the shard count), not of items.
    pub fn build_merged(
        expected: usize,
        items: &[(&[u8], V)],
        threads: usize,
        merge: impl Fn(&mut V, V) + Sync,
    ) -> Self
    where
        V: Sync,
    {
        let (shards, parts) = Partition::new(
            shard_count_for(expected),
            items.len(),
            threads,
            |i| items[i].0,
            tag,
        );
        let shards = Shards::from_fn_parallel(shards, threads, |s| {
            let part = parts.shard(s);
            let bytes = part.iter().map(|&(i, _)| items[i as usize].0.len()).sum();
            let mut shard = NameShard {
                tags: Vec::with_capacity(part.len()),
                entries: Vec::with_capacity(part.len()),
                arena: Vec::with_capacity(bytes),
                garbage: 0,
            };
            for &(i, t) in part {
                let (key, value) = items[i as usize];
                match shard.find(t, key) {
                    Some(at) => merge(&mut shard.entries[at].value, value),
                    None => shard.push(t, key, &[], value),
                }
            }
            // Merged items leave capacity unused: give it back (cheap, small vectors).
            if shard.entries.len() < part.len() {
                shard.seal();
            }
            shard
        });
        let len = shards.iter().map(|s| s.entries.len()).sum();
        Self {
            shards,
            len,
            touched: Vec::new(),
        }
    }

    /// Every entry, shard by shard.
    pub fn iter(&self) -> impl Iterator<Item = Found<'_, V>> {
        self.shards
            .iter()
            .flat_map(|shard| (0..shard.entries.len()).map(move |i| Found { shard, i }))
    }

    /// Ends a batch: compacts and trims the shards it touched, and re-splits a map that
    /// outgrew its shard count. Untouched shards stay shared with older versions.
    pub fn seal(&mut self) {
        if self.shards.needs_resplit(self.len) {
            self.resplit();
            return;
        }
        self.touched.sort_unstable();
        self.touched.dedup();
        for &i in &self.touched {
            self.shards.make_mut_at(i as usize).seal();
        }
        self.touched = Vec::new();
    }

    /// Makes room for about `additional` more entries before they are inserted: a map whose
    /// shard count is too small for them is re-split now, not at the next [`NameMap::seal`].
    /// Inserting many entries into a map sized for few scans ever longer shards (every entry
    /// of a one-shard map, for each insert): a bulk load calls this first.
    pub fn reserve(&mut self, additional: usize) {
        let want = shard_count_for(self.len + additional);
        if want > self.shards.count() {
            self.resplit_into(want);
        }
    }

    fn resplit(&mut self) {
        self.resplit_into(shard_count_for(self.len));
    }

    fn resplit_into(&mut self, shards: usize) {
        let mut next = Self {
            shards: Shards::new(shards),
            len: 0,
            touched: Vec::new(),
        };
        for f in self.iter() {
            next.insert(f.name(), f.payload(), f.value());
        }
        next.seal_all();
        *self = next;
    }

    /// Seals every shard (after a build, when every shard is new).
    pub fn seal_all(&mut self) {
        for i in 0..self.shards.count() {
            self.shards.make_mut_at(i).seal();
        }
        self.touched = Vec::new();
    }

    /// True when no shard holds garbage or spare capacity (tests).
    #[cfg(test)]
    pub fn is_sealed(&self) -> bool {
        self.touched.is_empty()
            && self.shards.iter().all(|s| {
                s.garbage == 0
                    && s.arena.len() == s.arena.capacity()
                    && s.entries.len() == s.entries.capacity()
                    && s.tags.len() == s.tags.capacity()
            })
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.count()
    }

    /// True when shard `i` is shared with `other` (tests).
    pub fn shares_shard(&self, other: &Self, i: usize) -> bool {
        self.shards.shares_shard(&other.shards, i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u8> {
        orrery_proto::Name::from_ascii(s)
            .unwrap()
            .as_wire()
            .to_vec()
    }

    #[test]
    fn inserts_rewrites_removes_and_compacts() {
        let mut m = NameMap::<u32>::with_expected(100);
        for i in 0..100u32 {
            m.insert(&w(&format!("d{i}.tld")), &i.to_le_bytes(), i);
        }
        m.seal();
        assert_eq!(m.len(), 100);
        let old = m.clone();
        m.insert(&w("d5.tld"), b"a longer payload", 55);
        m.insert(&w("d6.tld"), b"", 66);
        assert!(m.remove(&w("d7.tld")));
        assert!(!m.remove(&w("d7.tld")));
        m.seal();
        assert_eq!(m.len(), 99);
        let f = m.get(&w("d5.tld")).unwrap();
        assert_eq!(
            (f.name(), f.payload(), f.value()),
            (&w("d5.tld")[..], &b"a longer payload"[..], 55)
        );
        assert_eq!(m.get(&w("d6.tld")).unwrap().payload(), b"");
        assert!(m.get(&w("d7.tld")).is_none());
        for i in (0..100u32).filter(|i| ![5, 6, 7].contains(i)) {
            let f = m.get(&w(&format!("d{i}.tld"))).unwrap();
            assert_eq!((f.payload(), f.value()), (&i.to_le_bytes()[..], i));
        }
        // The old version is intact and shares the untouched shards.
        assert_eq!(old.len(), 100);
        assert_eq!(old.get(&w("d7.tld")).unwrap().value(), 7);
        assert_eq!(old.get(&w("d5.tld")).unwrap().payload(), 5u32.to_le_bytes());
        let shared = (0..m.shard_count())
            .filter(|&i| m.shares_shard(&old, i))
            .count();
        assert!(
            shared >= m.shard_count() - 3,
            "{shared} of {}",
            m.shard_count()
        );
        // Sealed shards hold no garbage.
        assert!(
            m.shards
                .iter()
                .all(|s| s.garbage == 0 && s.arena.len() == s.arena.capacity())
        );
    }

    /// A batch's copy of a sealed shard grows by about a quarter for one more entry, not to
    /// twice its size (a batch of 10,000 changes holds such a copy of 14% of the shards at
    /// 1,000,000 entries until the batch is sealed, beside the old version's originals).
    #[test]
    fn a_copied_shard_grows_by_a_quarter_for_one_more_entry() {
        let mut m = NameMap::<u32>::with_expected(16);
        assert_eq!(m.shard_count(), 1);
        for i in 0..16u32 {
            m.insert(&w(&format!("delegation{i:02}.tld")), &[7; 12], i);
        }
        m.seal();
        let sealed = m.heap_bytes();
        let old = m.clone();
        m.insert(&w("delegation16.tld"), &[7; 12], 16);
        m.insert(&w("delegation03.tld"), &[7; 20], 3);
        let editing = m.heap_bytes() - vec_bytes(&m.touched);
        assert!(
            editing * 4 <= sealed * 5 + 4 * (18 + 20 + 12),
            "a copy of {sealed} bytes grew to {editing}"
        );
        assert!(!m.shares_shard(&old, 0));
        m.seal();
        assert!(m.heap_bytes() < editing);
    }

    #[test]
    fn update_inserts_and_drops_by_the_keep_rule() {
        let mut m = NameMap::<u32>::default();
        assert_eq!(m.update(&w("a.tld"), false, |v| *v += 1, |_| true), None);
        assert_eq!(
            m.update(&w("a.tld"), true, |v| *v += 1, |v| *v > 0),
            Some(1)
        );
        assert_eq!(m.value(&w("a.tld")), Some(1));
        assert_eq!(
            m.update(&w("a.tld"), false, |v| *v -= 1, |v| *v > 0),
            Some(0)
        );
        assert!(m.get(&w("a.tld")).is_none() && m.is_empty());
    }

    /// A map reserved for many entries is split for them before they arrive (a bulk load
    /// into a one-shard map would scan that shard at every insert), and keeps what it held.
    #[test]
    fn reserve_splits_before_the_entries_arrive() {
        let mut m = NameMap::<u32>::default();
        m.insert(&w("kept.tld"), b"payload", 7);
        m.reserve(10_000);
        assert_eq!(m.shard_count(), shard_count_for(10_001));
        assert_eq!(m.value(&w("kept.tld")), Some(7));
        assert_eq!(m.get(&w("kept.tld")).unwrap().payload(), b"payload");
        assert_eq!(m.len(), 1);
        // Already big enough: nothing moves.
        let before = m.shard_count();
        m.reserve(10);
        assert_eq!(m.shard_count(), before);
    }

    #[test]
    fn grows_by_resplitting() {
        let mut m = NameMap::<u32>::default();
        assert_eq!(m.shard_count(), 1);
        for i in 0..5000u32 {
            m.insert(&w(&format!("d{i}.tld")), &[], i);
            if i % 100 == 0 {
                m.seal();
            }
        }
        m.seal();
        assert!(m.shard_count() >= 5000 / 64, "{}", m.shard_count());
        assert!((0..5000u32).all(|i| m.value(&w(&format!("d{i}.tld"))) == Some(i)));
        assert_eq!(m.iter().count(), 5000);
    }
}
