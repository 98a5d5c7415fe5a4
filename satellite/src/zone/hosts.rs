//! The interned nameserver hosts: one entry per host name for all zones, referred to by
//! [`HostId`] from apex NS RRsets and delegations.
//!
//! # Layout
//! - By id: chunks of [`CHUNK`] slots, each chunk an `Arc` holding its slots (fixed-size
//!   records) and one arena with each host's wire name followed by its IPv4 then IPv6
//!   addresses. `get(id)` is one index into the chunk list, one slot, one arena slice.
//! - By name: a sharded index of (32-bit tag, id) pairs ([`crate::served::shards`]); the name
//!   itself is compared in the chunk, so it is stored once.
//! - The users of each host (references from apex NS and delegations, for garbage collection)
//!   in blocks of their own, [`CHUNK`] counts a block, beside the chunks. A delegation that
//!   comes or goes changes the counts of its nameservers and nothing else of theirs: kept in
//!   the slots, the counts made a 10,000-domain batch at 1,000,000 delegations copy most of
//!   the chunks (its 20,000 nameserver references name 10,682 hosts, spread over the 9,450
//!   chunks): 18.9 MiB of the 42.8 MiB its peak held above the heap before it
//!   (bench/batch-heap.sh). A block is 256 bytes; a chunk holds 64 slots and 64 names with
//!   their addresses.
//!
//! All are copy-on-write: a version made by `clone` shares every chunk, block and index shard,
//! and an edit copies only the ones it touches. Ids of removed hosts are reused.

use std::sync::Arc;

use crate::served::shards::{
    Paged, Partition, Shard, Shards, key_hash, reserve_in_shard, shard_count_for, vec_bytes,
};

/// Index of a host in the [`HostTable`].
pub type HostId = u32;

/// Slots of a chunk: a batch that touches one host copies this many slots.
const CHUNK: usize = 64;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    off: u32,
    /// 0: a free slot (a wire name is at least one byte).
    name_len: u8,
    v4: u8,
    v6: u8,
    /// A host object exists in the registry (else the entry lives only for its users).
    exists: bool,
}

/// The users of a chunk's hosts: references from apex NS and delegations, in all zones (for
/// garbage collection), by slot.
type Users = [u32; CHUNK];

#[derive(Clone, Debug, Default)]
struct Chunk {
    slots: Vec<Slot>,
    arena: Vec<u8>,
    garbage: u32,
}

impl Chunk {
    fn bytes(&self, s: &Slot) -> usize {
        s.name_len as usize + 4 * s.v4 as usize + 16 * s.v6 as usize
    }

    fn seal(&mut self) {
        if self.garbage > 0 {
            let live: usize = self.slots.iter().map(|s| self.bytes(s)).sum();
            let mut arena = Vec::with_capacity(live);
            for i in 0..self.slots.len() {
                let s = self.slots[i];
                if s.name_len == 0 {
                    continue;
                }
                let start = s.off as usize;
                self.slots[i].off = arena.len() as u32;
                arena.extend_from_slice(&self.arena[start..start + self.bytes(&s)]);
            }
            self.arena = arena;
            self.garbage = 0;
        }
        self.arena.shrink_to_fit();
        self.slots.shrink_to_fit();
    }

    fn write(&mut self, slot: usize, name: &[u8], v4: &[[u8; 4]], v6: &[[u8; 16]]) {
        let old = self.slots[slot];
        if old.name_len != 0 {
            self.garbage += self.bytes(&old) as u32;
        }
        let off = self.arena.len() as u32;
        self.arena.extend_from_slice(name);
        self.arena.extend(v4.iter().flatten());
        self.arena.extend(v6.iter().flatten());
        self.slots[slot] = Slot {
            off,
            name_len: name.len() as u8,
            v4: v4.len() as u8,
            v6: v6.len() as u8,
            ..old
        };
    }
}

/// One shard of the name index: tags and ids, parallel.
#[derive(Clone, Debug, Default)]
struct IdShard {
    tags: Vec<u32>,
    ids: Vec<HostId>,
}

impl Shard for IdShard {
    fn seal(&mut self) {
        self.tags.shrink_to_fit();
        self.ids.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        vec_bytes(&self.tags) + vec_bytes(&self.ids)
    }
}

#[inline]
fn tag(hash: u64) -> u32 {
    hash.rotate_right(44) as u32
}

/// A host as the lookup sees it.
#[derive(Clone, Copy, Debug)]
pub struct HostRecord<'a> {
    /// Canonical wire form.
    pub name: &'a [u8],
    pub v4: &'a [[u8; 4]],
    pub v6: &'a [[u8; 16]],
    /// A host object exists in the registry (else the entry lives only for its users).
    pub exists: bool,
}

/// Interned nameserver hosts (see the module docs).
#[derive(Clone, Debug)]
pub struct HostTable {
    /// Paged ([`Paged`]): a batch copies the pages of chunk pointers it touches, not all of
    /// them (10,000 chunks at 1,000,000 delegations).
    chunks: Paged<Chunk>,
    /// Block `c` holds the users of chunk `c`'s slots (see the module docs).
    users: Paged<Users>,
    index: Shards<IdShard>,
    free: Vec<HostId>,
    len: usize,
    touched_chunks: Vec<u32>,
    touched_index: Vec<u32>,
}

impl HostTable {
    /// Heap bytes of this version: the chunks (shared with other versions are counted too),
    /// the name index and the free list.
    pub fn heap_bytes(&self) -> usize {
        let chunk = size_of::<Chunk>() + 2 * size_of::<usize>();
        self.chunks.heap_bytes()
            + self
                .chunks
                .iter()
                .map(|c| chunk + vec_bytes(&c.slots) + vec_bytes(&c.arena))
                .sum::<usize>()
            + self.users.heap_bytes()
            + self.users.len() * (size_of::<Users>() + 2 * size_of::<usize>())
            + self.index.heap_bytes()
            + vec_bytes(&self.free)
            + vec_bytes(&self.touched_chunks)
            + vec_bytes(&self.touched_index)
    }
}

impl Default for HostTable {
    fn default() -> Self {
        Self::with_expected(0)
    }
}

impl HostTable {
    /// An empty table sized for about `hosts` hosts.
    pub fn with_expected(hosts: usize) -> Self {
        Self {
            chunks: Paged::default(),
            users: Paged::default(),
            index: Shards::new(shard_count_for(hosts)),
            free: Vec::new(),
            len: 0,
            touched_chunks: Vec::new(),
            touched_index: Vec::new(),
        }
    }

    #[inline]
    fn slot(&self, id: HostId) -> (&Chunk, &Slot) {
        let chunk = self.chunks.get(id as usize / CHUNK);
        (chunk, &chunk.slots[id as usize % CHUNK])
    }

    /// The host with index `id` (an id from a delegation or apex NS of the same version).
    #[inline]
    pub fn get(&self, id: HostId) -> HostRecord<'_> {
        let (chunk, s) = self.slot(id);
        let start = s.off as usize;
        let name_end = start + s.name_len as usize;
        let v4_end = name_end + 4 * s.v4 as usize;
        let v6_end = v4_end + 16 * s.v6 as usize;
        HostRecord {
            name: &chunk.arena[start..name_end],
            v4: chunk.arena[name_end..v4_end].as_chunks().0,
            v6: chunk.arena[v4_end..v6_end].as_chunks().0,
            exists: s.exists,
        }
    }

    /// The index of a host by canonical wire name.
    pub fn find(&self, name: &[u8]) -> Option<HostId> {
        let hash = key_hash(name);
        let t = tag(hash);
        let shard = self.index.get(hash);
        shard
            .tags
            .iter()
            .zip(&shard.ids)
            .filter(|&(&tg, _)| tg == t)
            .map(|(_, &id)| id)
            .find(|&id| self.get(id).name == name)
    }

    /// Number of live host entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no host is interned.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// References to `id` from apex NS and delegations.
    pub fn users(&self, id: HostId) -> u32 {
        self.users.get(id as usize / CHUNK)[id as usize % CHUNK]
    }

    /// The users count of `id`, writable: its block copied first if another version holds it.
    fn users_mut(&mut self, id: HostId) -> &mut u32 {
        &mut self.users.make_mut(id as usize / CHUNK)[id as usize % CHUNK]
    }

    fn slot_mut(&mut self, id: HostId) -> (&mut Chunk, usize) {
        let c = id as usize / CHUNK;
        if self.touched_chunks.last() != Some(&(c as u32)) {
            self.touched_chunks.push(c as u32);
        }
        (self.chunks.make_mut(c), id as usize % CHUNK)
    }

    /// The id of `name`, interned (without users, not existing) if new.
    pub(super) fn intern(&mut self, name: &[u8]) -> HostId {
        match self.find(name) {
            Some(id) => id,
            None => self.insert_new(name, false, &[], &[]),
        }
    }

    /// Adds `users[id]` users to every host `id` below `users.len()` (a bulk build counts the
    /// references first and writes them once).
    pub(super) fn add_users(&mut self, users: &[u32]) {
        for (c, counts) in users.chunks(CHUNK).enumerate() {
            let block = self.users.make_mut(c);
            for (held, &n) in block.iter_mut().zip(counts) {
                *held += n;
            }
        }
    }

    /// Interns `name`, known to be absent, with its addresses.
    fn insert_new(&mut self, name: &[u8], exists: bool, v4: &[[u8; 4]], v6: &[[u8; 16]]) -> HostId {
        let id = self.push_unindexed(name, exists, v4, v6);
        let hash = key_hash(name);
        let i = self.index.index_of(hash);
        self.touched_index.push(i as u32);
        let shard = self.index.make_mut_at(i);
        reserve_in_shard(&mut shard.tags, 1);
        reserve_in_shard(&mut shard.ids, 1);
        shard.tags.push(tag(hash));
        shard.ids.push(id);
        id
    }

    /// A bulk build's insert: `name` (known to be absent) gets the next id, and is not put in
    /// the name index, which [`HostTable::index_all`] then writes for every host at once. The
    /// caller finds names meanwhile in a map of its own.
    pub(super) fn push_unindexed(
        &mut self,
        name: &[u8],
        exists: bool,
        v4: &[[u8; 4]],
        v6: &[[u8; 16]],
    ) -> HostId {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                if self.chunks.last().is_none_or(|c| c.slots.len() == CHUNK) {
                    self.chunks.push(Arc::new(Chunk::default()));
                    self.users.push(Arc::new([0; CHUNK]));
                }
                let c = self.chunks.len() - 1;
                let id = (c * CHUNK + self.chunks.get(c).slots.len()) as HostId;
                self.slot_mut(id).0.slots.push(Slot::default());
                id
            }
        };
        let (chunk, slot) = self.slot_mut(id);
        chunk.slots[slot] = Slot {
            exists,
            ..Slot::default()
        };
        chunk.write(slot, name, v4, v6);
        self.len += 1;
        id
    }

    /// Writes the name index of a table filled by [`HostTable::push_unindexed`] alone (ids
    /// `0..len`, none freed): the ids partitioned by shard, each shard written once at its
    /// final size, on `threads` threads.
    pub(super) fn index_all(&mut self, threads: usize) {
        debug_assert!(self.free.is_empty() && self.index.iter().all(|s| s.ids.is_empty()));
        let (count, parts) = Partition::new(
            self.index.count(),
            self.len,
            threads,
            |i| self.get(i as HostId).name,
            tag,
        );
        self.index = Shards::from_fn_parallel(count, threads, |s| {
            let part = parts.shard(s);
            IdShard {
                tags: part.iter().map(|&(_, t)| t).collect(),
                ids: part.iter().map(|&(i, _)| i).collect(),
            }
        });
        self.touched_index = Vec::new();
    }

    pub(super) fn add_user(&mut self, id: HostId) {
        *self.users_mut(id) += 1;
    }

    /// Drops one user of `id` and frees the entry if nothing holds it any more.
    pub(super) fn drop_user(&mut self, id: HostId) {
        *self.users_mut(id) -= 1;
        self.collect(id);
    }

    /// Sets the host object's addresses (`exists`) or clears them (`!exists`).
    pub(super) fn set_object(&mut self, id: HostId, exists: bool, v4: &[[u8; 4]], v6: &[[u8; 16]]) {
        let name: Vec<u8> = self.get(id).name.to_vec();
        let (chunk, slot) = self.slot_mut(id);
        chunk.write(slot, &name, v4, v6);
        chunk.slots[slot].exists = exists;
    }

    /// Frees `id` when no delegation or apex names it and no host object exists.
    pub(super) fn collect(&mut self, id: HostId) {
        if self.users(id) != 0 || self.slot(id).1.exists {
            return;
        }
        let hash = key_hash(self.get(id).name);
        let i = self.index.index_of(hash);
        self.touched_index.push(i as u32);
        let shard = self.index.make_mut_at(i);
        if let Some(pos) = shard.ids.iter().position(|&x| x == id) {
            shard.ids.swap_remove(pos);
            shard.tags.swap_remove(pos);
        }
        let (chunk, slot) = self.slot_mut(id);
        let s = chunk.slots[slot];
        chunk.garbage += chunk.bytes(&s) as u32;
        chunk.slots[slot] = Slot::default();
        self.free.push(id);
        self.len -= 1;
    }

    /// Ends a batch: compacts and trims what it touched; re-splits an outgrown index.
    pub(super) fn seal(&mut self) {
        self.touched_chunks.sort_unstable();
        self.touched_chunks.dedup();
        for &c in &self.touched_chunks {
            self.chunks.make_mut(c as usize).seal();
        }
        self.touched_chunks = Vec::new();
        if self.index.needs_resplit(self.len) {
            let mut index = Shards::<IdShard>::new(shard_count_for(self.len));
            for shard in self.index.iter() {
                for &id in &shard.ids {
                    let hash = key_hash(self.get(id).name);
                    let s = index.make_mut_at(index.index_of(hash));
                    s.tags.push(tag(hash));
                    s.ids.push(id);
                }
            }
            for i in 0..index.count() {
                index.make_mut_at(i).seal();
            }
            self.index = index;
        } else {
            self.touched_index.sort_unstable();
            self.touched_index.dedup();
            for &i in &self.touched_index {
                self.index.make_mut_at(i as usize).seal();
            }
        }
        self.touched_index = Vec::new();
        self.free.shrink_to_fit();
    }

    /// Every live host id (tests, garbage checks).
    pub fn ids(&self) -> impl Iterator<Item = HostId> + '_ {
        self.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            chunk
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.name_len != 0)
                .map(move |(i, _)| (c * CHUNK + i) as HostId)
        })
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
    fn interns_sets_collects_and_reuses_ids() {
        let mut t = HostTable::default();
        let ids: Vec<HostId> = (0..200)
            .map(|i| t.intern(&w(&format!("ns{i}.example"))))
            .collect();
        assert_eq!(ids, (0..200).collect::<Vec<_>>());
        assert_eq!(t.intern(&w("ns7.example")), 7);
        t.set_object(7, true, &[[192, 0, 2, 1]], &[[0x20; 16], [0x21; 16]]);
        t.add_user(8);
        t.seal();
        let old = t.clone();
        let h = t.get(7);
        assert_eq!(
            (h.name, h.v4, h.v6.len(), h.exists),
            (&w("ns7.example")[..], &[[192, 0, 2, 1]][..], 2, true)
        );
        // Nobody uses ns9: collected; ns8 has a user: kept.
        t.collect(9);
        t.collect(8);
        assert!(t.find(&w("ns9.example")).is_none());
        assert_eq!(t.find(&w("ns8.example")), Some(8));
        t.drop_user(8);
        assert!(t.find(&w("ns8.example")).is_none());
        assert_eq!(t.len(), 198);
        // Freed ids are reused.
        let a = t.intern(&w("new.example"));
        assert!(a == 8 || a == 9);
        t.set_object(7, false, &[], &[]);
        t.seal();
        assert!(t.get(7).v4.is_empty() && !t.get(7).exists);
        // The old version is unchanged.
        assert_eq!(old.find(&w("ns9.example")), Some(9));
        assert_eq!(old.get(7).v4, &[[192, 0, 2, 1]]);
        assert_eq!(old.len(), 200);
        assert_eq!(t.ids().count(), 199);
    }

    /// A batch that changes one host copies one page of chunk pointers and one chunk, however
    /// many chunks the table has.
    #[test]
    fn a_batch_copies_one_page_of_chunks_for_one_host() {
        let mut t = HostTable::default();
        let hosts = 3 * crate::served::shards::PAGE_SHARDS * CHUNK;
        for i in 0..hosts {
            t.intern(&w(&format!("ns{i}.example")));
        }
        t.seal();
        let old = t.clone();
        assert_eq!(t.chunks.page_count(), 3);
        assert_eq!(t.chunks.pages_shared_with(&old.chunks), 3);
        let id = t.find(&w("ns40000.example")).unwrap();
        t.set_object(id, true, &[[192, 0, 2, 9]], &[]);
        t.seal();
        assert_eq!(
            t.chunks.pages_shared_with(&old.chunks),
            2,
            "one page copied"
        );
        let copied = (0..t.chunks.len())
            .filter(|&c| !Arc::ptr_eq(t.chunks.get(c), old.chunks.get(c)))
            .count();
        assert_eq!(copied, 1, "one chunk copied");
        assert_eq!(old.get(id).v4.len(), 0);
        assert_eq!(t.get(id).v4, &[[192, 0, 2, 9]]);
    }

    /// A delegation that comes or goes changes its nameservers' users: that copies their
    /// blocks of counts, never their chunks (names and addresses).
    #[test]
    fn users_change_without_copying_chunks() {
        let mut t = HostTable::default();
        for i in 0..4 * CHUNK {
            let id = t.intern(&w(&format!("ns{i}.example")));
            t.set_object(id, true, &[[192, 0, 2, 1]], &[]);
            t.add_user(id);
        }
        t.seal();
        let old = t.clone();
        let (a, b) = (3, 2 * CHUNK as HostId + 5);
        t.add_user(a);
        t.drop_user(b);
        t.seal();
        let chunks_copied = (0..t.chunks.len())
            .filter(|&c| !Arc::ptr_eq(t.chunks.get(c), old.chunks.get(c)))
            .count();
        let blocks_copied = (0..t.users.len())
            .filter(|&c| !Arc::ptr_eq(t.users.get(c), old.users.get(c)))
            .count();
        assert_eq!((chunks_copied, blocks_copied), (0, 2));
        assert_eq!((t.users(a), t.users(b)), (2, 0));
        assert_eq!((old.users(a), old.users(b)), (1, 1));
        // No user, but the host object exists: kept.
        assert_eq!(t.find(&w(&format!("ns{b}.example"))), Some(b));
    }
}
