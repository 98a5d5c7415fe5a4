//! A compact, copy-on-write map from canonical wire names to a small fixed record and a byte
//! payload, on the sharded primitive of [`crate::served::shards`].
//!
//! # Layout of a shard
//! A shard is one allocation (`bytes`), written whole and exactly sized, holding in order:
//! - the entry count `n`, a `u32`;
//! - `n` tags, 16 bits of each entry's key hash: the in-shard index. A shard holds about
//!   [`NameShard::ENTRIES`](crate::served::shards::Shard::ENTRIES) entries, so a lookup scans
//!   one cache line of tags, then compares one name: hash → shard → tags → entry → name, one
//!   probe, at 2 bytes an entry where a hash table of offsets costs 5–10 (control bytes,
//!   slack);
//! - `n` heads: the entry's offset in the arena (`u32`), its name's length (`u8`), and the
//!   caller's fixed record in its packed form ([`Record`]);
//! - the arena: each entry's wire name, then its payload, in entry order, so that an entry
//!   ends where the next one begins (the last at the end of the allocation).
//!
//! An edit writes the shard anew, in one allocation the size of the result, except a change
//! of a record alone, which is written in place. So a shard never holds garbage or spare
//! capacity, and a batch's private copy of a shard costs what the shard costs. This is what
//! the batch's peak is made of at 1,000,000 delegations (the old version keeps the originals
//! of the 7–14 % of shards a 10,000-change batch touches until queries let go of it), and why
//! shards are small and have one allocation: three vectors and the `Arc` cost about 150
//! bytes a shard, one allocation and the `Arc` about 64. Writing a shard anew costs one
//! allocation and a copy of a few hundred bytes an edit, which is nothing beside the rest of
//! a change; the bulk builds write each shard once.
//!
//! The map re-splits itself into more shards when it has grown to four times what its count was
//! sized for ([`Shards::needs_resplit`]): a full rebuild, once per fourfold growth.

use std::marker::PhantomData;

use crate::served::shards::{Partition, Shard, Shards, key_hash};

/// A fixed record kept beside each entry, packed into its shard's bytes.
pub trait Record: Copy + Send + Sync {
    /// Bytes the packed form takes.
    const SIZE: usize;
    /// Writes the packed form into `out` (`SIZE` bytes).
    fn pack(&self, out: &mut [u8]);
    /// Reads the packed form from `bytes` (`SIZE` bytes).
    fn unpack(bytes: &[u8]) -> Self;
}

impl Record for () {
    const SIZE: usize = 0;
    fn pack(&self, _: &mut [u8]) {}
    fn unpack(_: &[u8]) -> Self {}
}

/// The little-endian `u32` at `at`.
#[inline]
pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The bits of the key hash kept as the in-shard tag: rotated so that none of them are the
/// bits that chose the shard (those are equal for every key in the shard).
#[inline]
fn tag(hash: u64) -> u16 {
    hash.rotate_right(44) as u16
}

/// Bytes of the entry count that opens a shard.
const COUNT: usize = 4;
/// Bytes of a tag.
const TAG: usize = 2;

/// One entry going into a shard being written.
#[derive(Clone, Copy)]
struct Part<'a, V> {
    tag: u16,
    name: &'a [u8],
    payload: &'a [u8],
    value: V,
}

/// One shard of a [`NameMap`] (see the module docs). Empty, it holds no allocation.
#[derive(Clone, Debug)]
pub struct NameShard<V> {
    bytes: Box<[u8]>,
    record: PhantomData<V>,
}

impl<V> Default for NameShard<V> {
    fn default() -> Self {
        Self {
            bytes: Box::default(),
            record: PhantomData,
        }
    }
}

impl<V: Record> Shard for NameShard<V> {
    /// Half the default: a batch copies whole shards, and with one allocation a shard, a
    /// smaller shard costs little more per entry (at 1,000,000 delegations, 8 B of fixed
    /// cost an entry against 4 at 16 a shard, and half the batch's copies).
    const ENTRIES: usize = 8;

    fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }
}

impl<V: Record> NameShard<V> {
    /// Bytes of a head: the arena offset, the name length and the record.
    const HEAD: usize = 4 + 1 + V::SIZE;

    /// The entry count.
    #[inline]
    fn len(&self) -> usize {
        if self.bytes.is_empty() {
            0
        } else {
            u32_at(&self.bytes, 0) as usize
        }
    }

    /// Where head `i` starts in a shard of `n` entries.
    #[inline]
    fn head_at(n: usize, i: usize) -> usize {
        COUNT + n * TAG + i * Self::HEAD
    }

    /// Where the arena starts in a shard of `n` entries.
    #[inline]
    fn arena_at(n: usize) -> usize {
        COUNT + n * (TAG + Self::HEAD)
    }

    /// Entry `i`'s tag in `bytes`, a shard's.
    #[inline]
    fn tag_at(bytes: &[u8], i: usize) -> u16 {
        u16::from_le_bytes([bytes[COUNT + i * TAG], bytes[COUNT + i * TAG + 1]])
    }

    /// Writes entry `i`'s tag and head into `bytes`, a shard of `n` entries being written:
    /// its name starts `off` bytes into the arena.
    fn put_head(bytes: &mut [u8], n: usize, i: usize, tag: u16, off: u32, name: &[u8], value: V) {
        debug_assert!(name.len() <= usize::from(u8::MAX));
        bytes[COUNT + i * TAG..][..TAG].copy_from_slice(&tag.to_le_bytes());
        let head = Self::head_at(n, i);
        bytes[head..head + 4].copy_from_slice(&off.to_le_bytes());
        bytes[head + 4] = name.len() as u8;
        value.pack(&mut bytes[head + 5..head + Self::HEAD]);
    }

    /// Entry `i`'s bytes in the arena: where its name starts, where its payload starts, where
    /// it ends.
    #[inline]
    fn span(&self, i: usize) -> (usize, usize, usize) {
        let n = self.len();
        let arena = Self::arena_at(n);
        let head = Self::head_at(n, i);
        let start = arena + u32_at(&self.bytes, head) as usize;
        let payload = start + self.bytes[head + 4] as usize;
        let end = if i + 1 < n {
            arena + u32_at(&self.bytes, head + Self::HEAD) as usize
        } else {
            self.bytes.len()
        };
        (start, payload, end)
    }

    #[inline]
    fn find(&self, tag: u16, name: &[u8]) -> Option<usize> {
        let n = self.len();
        let tags = self.bytes.get(COUNT..COUNT + n * TAG)?;
        tags.chunks_exact(TAG)
            .enumerate()
            .filter(|(_, t)| u16::from_le_bytes([t[0], t[1]]) == tag)
            .map(|(i, _)| i)
            .find(|&i| self.name(i) == name)
    }

    #[inline]
    fn name(&self, i: usize) -> &[u8] {
        let (start, payload, _) = self.span(i);
        &self.bytes[start..payload]
    }

    #[inline]
    fn payload(&self, i: usize) -> &[u8] {
        let (_, payload, end) = self.span(i);
        &self.bytes[payload..end]
    }

    #[inline]
    fn value(&self, i: usize) -> V {
        let at = Self::head_at(self.len(), i) + 5;
        V::unpack(&self.bytes[at..at + V::SIZE])
    }

    /// Entry `i`'s record changed in place (the one edit that does not rewrite the shard).
    fn set_value(&mut self, i: usize, value: V) {
        let at = Self::head_at(self.len(), i) + 5;
        value.pack(&mut self.bytes[at..at + V::SIZE]);
    }

    /// The entries, in order.
    fn parts(&self) -> impl Iterator<Item = Part<'_, V>> + Clone {
        (0..self.len()).map(|i| {
            let (start, payload, end) = self.span(i);
            Part {
                tag: Self::tag_at(&self.bytes, i),
                name: &self.bytes[start..payload],
                payload: &self.bytes[payload..end],
                value: self.value(i),
            }
        })
    }

    /// A shard of `parts`, in their order, in one allocation of its exact size.
    fn write<'a>(parts: impl Iterator<Item = Part<'a, V>> + Clone) -> Self
    where
        V: 'a,
    {
        let (n, arena) = parts.clone().fold((0, 0), |(n, a), p| {
            (n + 1, a + p.name.len() + p.payload.len())
        });
        if n == 0 {
            return Self::default();
        }
        let start = Self::arena_at(n);
        let mut bytes = vec![0u8; start + arena].into_boxed_slice();
        bytes[..COUNT].copy_from_slice(&(n as u32).to_le_bytes());
        let mut at = start;
        for (i, p) in parts.enumerate() {
            Self::put_head(
                &mut bytes,
                n,
                i,
                p.tag,
                (at - start) as u32,
                p.name,
                p.value,
            );
            bytes[at..at + p.name.len()].copy_from_slice(p.name);
            at += p.name.len();
            bytes[at..at + p.payload.len()].copy_from_slice(p.payload);
            at += p.payload.len();
        }
        Self {
            bytes,
            record: PhantomData,
        }
    }

    /// This shard with `part` added at the end.
    fn with(&self, part: Part<'_, V>) -> Self {
        Self::write(self.parts().chain(std::iter::once(part)))
    }

    /// This shard with entry `i` given a new payload and record.
    fn rewritten(&self, i: usize, payload: &[u8], value: V) -> Self {
        Self::write(self.parts().enumerate().map(|(j, p)| {
            if j == i {
                Part {
                    payload,
                    value,
                    ..p
                }
            } else {
                p
            }
        }))
    }

    /// This shard without entry `i` (the others keep their order).
    fn without(&self, i: usize) -> Self {
        Self::write(
            self.parts()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, p)| p),
        )
    }
}

/// An entry found in a [`NameMap`].
#[derive(Clone, Copy, Debug)]
pub struct Found<'a, V> {
    shard: &'a NameShard<V>,
    i: usize,
}

impl<'a, V: Record> Found<'a, V> {
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
        self.shard.value(self.i)
    }
}

/// A sharded, copy-on-write map from wire names (at most 255 bytes) to a `V` and a payload.
/// Cloning it makes a version that shares every shard; edits copy the shards they touch.
#[derive(Clone, Debug)]
pub struct NameMap<V> {
    shards: Shards<NameShard<V>>,
    len: usize,
}

impl<V: Record> Default for NameMap<V> {
    fn default() -> Self {
        Self::with_expected(0)
    }
}

impl<V: Record> NameMap<V> {
    /// Heap bytes of this version (see [`Shards::heap_bytes`]).
    pub fn heap_bytes(&self) -> usize {
        self.shards.heap_bytes()
    }

    /// An empty map sized for about `entries` entries.
    pub fn with_expected(entries: usize) -> Self {
        Self {
            shards: Shards::new(Shards::<NameShard<V>>::count_for(entries)),
            len: 0,
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

    /// The shard for `hash`, writable (a private copy if an older version shares it).
    fn shard_mut(&mut self, hash: u64) -> &mut NameShard<V> {
        let i = self.shards.index_of(hash);
        self.shards.make_mut_at(i)
    }

    /// The shard for `hash` replaced by `next`, written from it: the old one is not copied.
    fn replace(&mut self, hash: u64, next: NameShard<V>) {
        let i = self.shards.index_of(hash);
        self.shards.set_at(i, next);
    }

    /// Sets the entry at `name` (inserted or replaced).
    pub fn insert(&mut self, name: &[u8], payload: &[u8], value: V) {
        debug_assert!(name.len() <= 255);
        let hash = key_hash(name);
        let tag = tag(hash);
        let shard = self.shards.get(hash);
        let next = match shard.find(tag, name) {
            Some(i) => shard.rewritten(i, payload, value),
            None => {
                self.len += 1;
                shard.with(Part {
                    tag,
                    name,
                    payload,
                    value,
                })
            }
        };
        self.replace(hash, next);
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
        let tag = tag(hash);
        let shard = self.shards.get(hash);
        let found = shard.find(tag, name);
        let mut v = match found {
            Some(i) => shard.value(i),
            None if insert => V::default(),
            None => return None,
        };
        f(&mut v);
        let kept = keep(&v);
        let next = match (found, kept) {
            (Some(i), true) => {
                self.shard_mut(hash).set_value(i, v);
                return Some(v);
            }
            (Some(i), false) => {
                self.len -= 1;
                shard.without(i)
            }
            (None, true) => {
                self.len += 1;
                shard.with(Part {
                    tag,
                    name,
                    payload: &[],
                    value: v,
                })
            }
            (None, false) => return Some(v),
        };
        self.replace(hash, next);
        Some(v)
    }

    /// Removes the entry at `name`; true if there was one.
    pub fn remove(&mut self, name: &[u8]) -> bool {
        let hash = key_hash(name);
        let shard = self.shards.get(hash);
        let Some(i) = shard.find(tag(hash), name) else {
            return false;
        };
        let next = shard.without(i);
        self.replace(hash, next);
        self.len -= 1;
        true
    }

    /// Builds a map in one pass a shard from `items`, each naming a distinct entry: the items
    /// are partitioned by shard first (their indexes, one counting sort), then each shard is
    /// written in one allocation of its exact size on one of `threads` threads. `name` gives
    /// an item's wire name, `size` its payload length and `write` appends that payload and
    /// returns the record. Returns `None` if two items have the same name (the caller then
    /// builds by single inserts, which let the last one win): the input is not trusted to be
    /// unique, that check is a tag scan of the shard being written.
    pub fn build_unique<T: Sync>(
        expected: usize,
        items: &[T],
        threads: usize,
        name: impl Fn(&T) -> &[u8] + Sync,
        size: impl Fn(&T) -> usize + Sync,
        write: impl Fn(&T, &mut Vec<u8>) -> V + Sync,
    ) -> Option<Self> {
        let shards = Shards::<NameShard<V>>::count_for(expected);
        Self::build_unique_in(shards, items, threads, name, size, write)
    }

    /// [`NameMap::build_unique`] into `shards` shards.
    fn build_unique_in<T: Sync>(
        shards: usize,
        items: &[T],
        threads: usize,
        name: impl Fn(&T) -> &[u8] + Sync,
        size: impl Fn(&T) -> usize + Sync,
        write: impl Fn(&T, &mut Vec<u8>) -> V + Sync,
    ) -> Option<Self> {
        let (shards, parts) = Partition::new(
            shards,
            items.len(),
            threads,
            |i| name(&items[i]),
            |h| u32::from(tag(h)),
        );
        let duplicate = std::sync::atomic::AtomicBool::new(false);
        let shards = Shards::from_fn_parallel(shards, threads, |s| {
            let part = parts.shard(s);
            let n = part.len();
            if n == 0 {
                return NameShard::default();
            }
            let start = NameShard::<V>::arena_at(n);
            let arena: usize = part
                .iter()
                .map(|&(i, _)| name(&items[i as usize]).len() + size(&items[i as usize]))
                .sum();
            // Written straight into the shard's allocation: `write` appends to it.
            let mut bytes = Vec::with_capacity(start + arena);
            bytes.resize(start, 0);
            bytes[..COUNT].copy_from_slice(&(n as u32).to_le_bytes());
            for (k, &(i, t)) in part.iter().enumerate() {
                let item = &items[i as usize];
                let key = name(item);
                let t = t as u16;
                let seen = (0..k).any(|j| {
                    let head = NameShard::<V>::head_at(n, j);
                    let off = start + u32_at(&bytes, head) as usize;
                    NameShard::<V>::tag_at(&bytes, j) == t
                        && bytes.get(off..off + usize::from(bytes[head + 4])) == Some(key)
                });
                if seen {
                    duplicate.store(true, std::sync::atomic::Ordering::Relaxed);
                    return NameShard::default();
                }
                let off = (bytes.len() - start) as u32;
                bytes.extend_from_slice(key);
                let value = write(item, &mut bytes);
                NameShard::put_head(&mut bytes, n, k, t, off, key, value);
            }
            NameShard {
                bytes: bytes.into_boxed_slice(),
                record: PhantomData,
            }
        });
        if duplicate.into_inner() {
            return None;
        }
        Some(Self {
            shards,
            len: items.len(),
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
            Shards::<NameShard<V>>::count_for(expected),
            items.len(),
            threads,
            |i| items[i].0,
            |h| u32::from(tag(h)),
        );
        let shards = Shards::from_fn_parallel(shards, threads, |s| {
            let part = parts.shard(s);
            let mut merged: Vec<Part<'_, V>> = Vec::with_capacity(part.len());
            for &(i, t) in part {
                let (name, value) = items[i as usize];
                let tag = t as u16;
                match merged.iter_mut().find(|p| p.tag == tag && p.name == name) {
                    Some(p) => merge(&mut p.value, value),
                    None => merged.push(Part {
                        tag,
                        name,
                        payload: &[],
                        value,
                    }),
                }
            }
            NameShard::write(merged.iter().copied())
        });
        let len = shards.iter().map(NameShard::len).sum();
        Self { shards, len }
    }

    /// Every entry, shard by shard.
    pub fn iter(&self) -> impl Iterator<Item = Found<'_, V>> {
        self.shards
            .iter()
            .flat_map(|shard| (0..shard.len()).map(move |i| Found { shard, i }))
    }

    /// Ends a batch: re-splits a map that outgrew its shard count. (Edited shards need no
    /// compaction: each edit wrote its shard exactly.)
    pub fn seal(&mut self) {
        if self.shards.needs_resplit(self.len) {
            self.resplit_into(Shards::<NameShard<V>>::count_for(self.len));
        }
    }

    /// Makes room for about `additional` more entries before they are inserted: a map whose
    /// shard count is too small for them is re-split now, not at the next [`NameMap::seal`].
    /// Inserting many entries into a map sized for few rewrites ever longer shards (every
    /// entry of a one-shard map, for each insert): a bulk load calls this first.
    pub fn reserve(&mut self, additional: usize) {
        let want = Shards::<NameShard<V>>::count_for(self.len + additional);
        if want > self.shards.count() {
            self.resplit_into(want);
        }
    }

    /// The map rebuilt into `shards` shards, each written once.
    fn resplit_into(&mut self, shards: usize) {
        let entries: Vec<Found<'_, V>> = self.iter().collect();
        let next = Self::build_unique_in(
            shards,
            &entries,
            1,
            |f| f.name(),
            |f| f.payload().len(),
            |f, out| {
                out.extend_from_slice(f.payload());
                f.value()
            },
        );
        drop(entries);
        // The names in a map are distinct, so the build cannot refuse them.
        if let Some(next) = next {
            *self = next;
        }
    }

    /// True when every shard is laid out as the module docs say: its entries' bytes one after
    /// the other in entry order, the last ending at the end of the allocation, nothing more
    /// (tests).
    #[cfg(test)]
    pub fn is_compact(&self) -> bool {
        self.shards.iter().all(|s| {
            let n = s.len();
            let mut at = NameShard::<V>::arena_at(n);
            (0..n).all(|i| {
                let (start, payload, end) = s.span(i);
                let ok = start == at && payload <= end;
                at = end;
                ok
            }) && (if n == 0 {
                s.bytes.is_empty()
            } else {
                at == s.bytes.len()
            })
        }) && self.shards.iter().map(NameShard::len).sum::<usize>() == self.len
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

    impl Record for u32 {
        const SIZE: usize = 4;
        fn pack(&self, out: &mut [u8]) {
            out.copy_from_slice(&self.to_le_bytes());
        }
        fn unpack(bytes: &[u8]) -> Self {
            u32_at(bytes, 0)
        }
    }

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
        // Every shard is exactly its entries, the edited ones too.
        assert!(m.is_compact() && old.is_compact());
    }

    /// A batch's copy of a shard is the size of the shard it makes, not more: a batch of
    /// 10,000 changes holds such a copy of 7–14% of the shards at 1,000,000 entries, beside
    /// the old version's originals, until queries let go of the old version. And the old
    /// shard is not copied before it is written anew.
    #[test]
    fn an_edited_shard_costs_its_entries_alone() {
        let mut m = NameMap::<u32>::with_expected(8);
        assert_eq!(m.shard_count(), 1);
        for i in 0..8u32 {
            m.insert(&w(&format!("delegation{i:02}.tld")), &[7; 12], i);
        }
        let before = m.heap_bytes();
        let old = m.clone();
        m.insert(&w("delegation08.tld"), &[7; 12], 8);
        // One more entry: its tag, head (offset, name length, a 4-byte record), name, payload.
        let entry = 2 + 4 + 1 + 4 + w("delegation08.tld").len() + 12;
        assert_eq!(m.heap_bytes(), before + entry);
        m.insert(&w("delegation03.tld"), &[7; 20], 3);
        assert_eq!(m.heap_bytes(), before + entry + 8);
        assert!(m.remove(&w("delegation08.tld")));
        assert_eq!(m.heap_bytes(), before + 8);
        assert!(!m.shares_shard(&old, 0));
        assert_eq!(old.heap_bytes(), before);
        assert_eq!(old.get(&w("delegation03.tld")).unwrap().payload(), [7; 12]);
        assert_eq!(m.get(&w("delegation03.tld")).unwrap().payload(), [7; 20]);
        assert!(m.is_compact() && old.is_compact());
        // A record changed alone is written in place, in the private copy.
        let copy = m.clone();
        m.update(&w("delegation05.tld"), false, |v| *v = 50, |_| true);
        assert_eq!(m.value(&w("delegation05.tld")), Some(50));
        assert_eq!(copy.value(&w("delegation05.tld")), Some(5));
        assert_eq!(m.heap_bytes(), copy.heap_bytes());
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
        assert_eq!(m.shard_count(), Shards::<NameShard<u32>>::count_for(10_001));
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
