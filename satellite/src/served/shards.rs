//! Copy-on-write sharded tables: versions of a large table that share every part a batch of
//! changes did not touch.
//!
//! # Contract
//! - A [`Shards<S>`] is one *version* of a table split into a fixed, power-of-two number of
//!   shards, each an immutable `Arc<S>`. The shard pointers are held in *pages* of
//!   [`PAGE_SHARDS`], each page itself an immutable `Arc`, under a small top array of page
//!   pointers. Cloning a version copies only the top array (one pointer a page: 256 at 65,536
//!   shards), never a page or a shard.
//! - Which shard holds a key is decided by [`key_hash`] of the key's bytes: the same hash the
//!   shard's own index should use, computed once per lookup. The hasher is foldhash with a
//!   seed drawn once per process, so the layout is deterministic within a process (every
//!   version and every thread agrees) while names chosen by outsiders cannot be aimed at one
//!   shard across satellites (hash flooding).
//! - A new version is made with [`Shards::edit`]: the [`Editor`] holds a clone of the version
//!   and hands out `&mut S` through [`Editor::shard_mut`], which copies the shard's page of
//!   pointers and then the shard the first time the batch touches them (`Arc::make_mut`: only
//!   while another version still holds them). When the batch is done, [`Editor::finish`]
//!   calls [`Shard::seal`] once on every touched shard (to compact and shrink what the edits
//!   left behind) and returns the new version. Untouched shards and pages are shared with the
//!   old version: a batch costs memory and time in proportion to the shards and pages it
//!   touches plus the top array, not to the table. (A flat vector of shard pointers, as
//!   before, made every batch copy 65,536 pointers and bump as many reference counts per
//!   table at 1,000,000 delegations, and the old version's drop take them back: 6.8 ms of a
//!   satellite's CPU a batch, issue 13/11.)
//! - The shard count is chosen from the expected number of entries ([`Shards::count_for`]):
//!   about [`Shard::ENTRIES`] entries a shard (16 unless the shard type says otherwise), so a
//!   10,000-change batch on 1,000,000 entries copies at most about 10,000 × 16 entries. A
//!   table that grows far beyond its count is re-split by its owner (see
//!   [`Shards::needs_resplit`]); that copy is a full rebuild, done rarely.
//! - A shard index is a `u32`; the shard count is at most 2^24.
//!
//! Readers take `&Shards<S>` (inside whatever `Arc` the owner swaps): a lookup is one hash,
//! one shift and mask, and two dependent pointer loads (the page in the top array, the shard
//! in the page), with no allocation or lock. The second load is the one a flat vector made;
//! the first reads a top array of a few kilobytes at most (4 KiB at 65,536 shards: 256 fat
//! page pointers), which the queries keep in cache.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, OnceLock};

/// Entries a shard is sized for: small enough that a batch copies little, large enough that
/// the per-shard overhead (the `Arc`, the shard's own vectors) stays a few bytes an entry.
pub const ENTRIES_PER_SHARD: usize = 16;

/// Most shards a table may have (shard indexes fit `u32` with room to spare).
pub const MAX_SHARDS: usize = 1 << 24;

/// Shard pointers a page holds (see the module docs): a batch that edits one shard copies
/// its page, this many pointers, and a new version copies one pointer a page. 256 is about
/// the square root of the largest tables' counts (65,536 shards at 1,000,000 entries: 256
/// pages), which makes the two costs equal there: about 512 pointers a batch, not 65,536.
pub const PAGE_SHARDS: usize = 1 << PAGE_BITS;
const PAGE_BITS: u32 = 8;

/// The bits of [`key_hash`] that pick the shard start here: above the low bits an in-shard
/// hash table uses for its bucket position, below the top 7 bits hashbrown uses as tags, so
/// keys in one shard still spread over its buckets and tags.
const SHARD_SHIFT: u32 = 20;

/// What a shard type does beyond holding data.
pub trait Shard: Clone + Default + Send + Sync {
    /// Entries a shard of this type is sized for (see [`shard_count`]).
    const ENTRIES: usize = ENTRIES_PER_SHARD;

    /// Called once on each shard a batch touched, after the batch's last edit: compact
    /// garbage and shrink capacity so the version keeps only what it needs.
    fn seal(&mut self) {}

    /// Bytes this shard holds on the heap (its vectors' capacities), for the served-state
    /// gauge (`orrery_served_bytes`); read at scrape time, never on the query path.
    fn heap_bytes(&self) -> usize {
        0
    }
}

/// Heap bytes of a vector's buffer (its capacity, not its length).
pub fn vec_bytes<T>(v: &Vec<T>) -> usize {
    v.capacity() * size_of::<T>()
}

/// Makes room in one of a shard's vectors for `additional` more elements, growing it by a
/// quarter of its length at least instead of doubling it.
///
/// A batch edits private copies of the shards it touches while the old version still holds
/// the originals, and a copy starts at its exact length (`Vec::clone`), so the first push onto
/// it would double its capacity: on a 10,000-change batch at 1,000,000 delegations, about 14%
/// of every table's shards, each doubled until [`Shard::seal`] trims it at the end of the
/// batch. That was what the batch's peak heap held above both versions (`apply_cost` at 1M:
/// peak 1.133–1.192× steady before, 1.110–1.129× after, both versions alone 1.10–1.11×). A
/// quarter still amortises the many pushes of a shard that keeps growing (a small zone's one
/// shard before it is re-split) to a constant per element.
#[inline]
pub fn reserve_in_shard<T>(v: &mut Vec<T>, additional: usize) {
    if v.capacity() - v.len() < additional {
        v.reserve_exact(additional.max(v.len() / 4));
    }
}

/// The process's key hasher. `quality`, not `fast`: the shard index is taken from the
/// hash's high bits, and with some seeds `fast` spread short keys unevenly over them (CI saw
/// 64 shards holding 16 to 184 of 6,400 four-octet keys); `quality` adds a final mix.
fn hasher() -> &'static foldhash::quality::FixedState {
    static STATE: OnceLock<foldhash::quality::FixedState> = OnceLock::new();
    STATE.get_or_init(|| foldhash::quality::FixedState::with_seed(rand::random()))
}

/// The hash of a key's bytes that selects its shard; use it for the shard's own index too.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h = hasher().build_hasher();
    h.write(key);
    h.finish()
}

/// The power-of-two shard count for about `entries` entries, [`ENTRIES_PER_SHARD`] a shard.
pub fn shard_count_for(entries: usize) -> usize {
    shard_count(entries, ENTRIES_PER_SHARD)
}

/// The power-of-two shard count for about `entries` entries, `per_shard` a shard.
pub fn shard_count(entries: usize, per_shard: usize) -> usize {
    (entries / per_shard.max(1))
        .max(1)
        .next_power_of_two()
        .min(MAX_SHARDS)
}

/// The shard index of a key hash in a table of `mask + 1` shards: what [`Shards::index_of`]
/// answers, for a builder that partitions keys before the table exists.
#[inline]
pub fn shard_of(hash: u64, mask: u64) -> usize {
    ((hash >> SHARD_SHIFT) & mask) as usize
}

/// Threads a build splits its work over: the cores this process may use (2 on the project's
/// machine), one if that cannot be told.
pub fn build_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f(0..len)` collected in order, the range split into `threads` contiguous runs computed on
/// their own threads (one thread for small inputs, where spawning costs more than it saves).
pub fn parallel_map<T: Send>(len: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = if len < 4096 { 1 } else { threads };
    let runs = parallel_runs(len, threads, |run| run.map(&f).collect::<Vec<T>>());
    let mut out = Vec::with_capacity(len);
    for run in runs {
        out.extend(run);
    }
    out
}

/// `f` of each of at most `threads` contiguous runs that split `0..len`, each run on its own
/// thread (the first on the caller's), the results in order. For work whose items are coarse
/// (a state file's chunks); [`parallel_map`] is this for fine ones.
pub fn parallel_runs<T: Send>(
    len: usize,
    threads: usize,
    f: impl Fn(std::ops::Range<usize>) -> T + Sync,
) -> Vec<T> {
    let threads = threads.clamp(1, len.max(1));
    if threads == 1 {
        return vec![f(0..len)];
    }
    let per = len.div_ceil(threads);
    let run = |t: usize| (t * per).min(len)..((t + 1) * per).min(len);
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = (1..threads)
            .map(|t| scope.spawn(move || f(run(t))))
            .collect();
        let mut out = Vec::with_capacity(threads);
        out.push(f(run(0)));
        for h in handles {
            out.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        out
    })
}

/// Items grouped by the shard their key falls in, for a build that writes each shard once: a
/// counting sort of the item indexes, each kept with a tag of its key's hash (the shard
/// type's own), so a shard's builder reads its items without hashing again.
pub struct Partition {
    /// `(item index, tag)`, shard by shard.
    order: Vec<(u32, u32)>,
    /// Where shard `s` starts in `order`; one more entry than shards.
    starts: Vec<u32>,
}

impl Partition {
    /// The partition of `len` items into `count` shards (a power of two) by the shard of
    /// [`key_hash`]`(key(i))`, each kept with `tag(hash)`; returns `count` too. Hashing is
    /// split over `threads` threads.
    pub fn new<'a>(
        count: usize,
        len: usize,
        threads: usize,
        key: impl Fn(usize) -> &'a [u8] + Sync,
        tag: impl Fn(u64) -> u32 + Sync,
    ) -> (usize, Self) {
        assert!(
            len < u32::MAX as usize,
            "a partition holds fewer than 2^32 items"
        );
        debug_assert!(count.is_power_of_two());
        let mask = (count - 1) as u64;
        let hashes: Vec<u64> = parallel_map(len, threads, |i| key_hash(key(i)));
        let mut starts = vec![0u32; count + 1];
        for &h in &hashes {
            starts[shard_of(h, mask) + 1] += 1;
        }
        for s in 0..count {
            starts[s + 1] += starts[s];
        }
        let mut next: Vec<u32> = starts[..count].to_vec();
        let mut order = vec![(0u32, 0u32); len];
        for (i, &h) in hashes.iter().enumerate() {
            let s = shard_of(h, mask);
            order[next[s] as usize] = (i as u32, tag(h));
            next[s] += 1;
        }
        (count, Self { order, starts })
    }

    /// The `(item index, tag)` pairs of shard `s`, in item order.
    pub fn shard(&self, s: usize) -> &[(u32, u32)] {
        &self.order[self.starts[s] as usize..self.starts[s + 1] as usize]
    }
}

/// A vector of `Arc<T>` held in pages of [`PAGE_SHARDS`] pointers, each page an immutable
/// `Arc` shared between the versions that have not edited it (see the module docs). Indexing
/// is two dependent loads (page, then pointer); a clone copies one pointer a page.
#[derive(Debug)]
pub struct Paged<T> {
    /// Full pages, the last one possibly partial.
    pages: Vec<Arc<[Arc<T>]>>,
    len: usize,
}

impl<T> Clone for Paged<T> {
    fn clone(&self) -> Self {
        Self {
            pages: self.pages.clone(),
            len: self.len,
        }
    }
}

impl<T> Default for Paged<T> {
    fn default() -> Self {
        Self {
            pages: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Paged<T> {
    /// `items` cut into pages.
    pub fn from_vec(items: Vec<Arc<T>>) -> Self {
        let len = items.len();
        let mut rest = items.into_iter();
        let mut pages = Vec::with_capacity(len.div_ceil(PAGE_SHARDS));
        while rest.len() > 0 {
            pages.push(rest.by_ref().take(PAGE_SHARDS).collect::<Arc<[Arc<T>]>>());
        }
        Self { pages, len }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there is no item.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Item `i`: page `i >> PAGE_BITS`, pointer `i % PAGE_SHARDS` in it.
    #[inline]
    pub fn get(&self, i: usize) -> &Arc<T> {
        &self.pages[i >> PAGE_BITS][i & (PAGE_SHARDS - 1)]
    }

    /// The last item.
    pub fn last(&self) -> Option<&Arc<T>> {
        self.pages.last()?.last()
    }

    /// Every item, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<T>> {
        self.pages.iter().flat_map(|p| p.iter())
    }

    /// Item `i`, writable, if no other version holds it or its page.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        let page = Arc::get_mut(&mut self.pages[i >> PAGE_BITS])?;
        Arc::get_mut(&mut page[i & (PAGE_SHARDS - 1)])
    }

    /// Appends `item`. A partial last page is copied with it (at most [`PAGE_SHARDS`]
    /// pointers; a page cannot grow in place, and appends are rare: a new host chunk).
    pub fn push(&mut self, item: Arc<T>) {
        match self.pages.last_mut() {
            Some(last) if last.len() < PAGE_SHARDS => {
                *last = last.iter().cloned().chain([item]).collect();
            }
            _ => self.pages.push(Arc::from([item])),
        }
        self.len += 1;
    }

    /// Number of pages.
    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// Pages `self` and `other` share (same allocation, same place): what the edits between
    /// the two versions did not copy.
    pub fn pages_shared_with(&self, other: &Self) -> usize {
        self.pages
            .iter()
            .zip(&other.pages)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count()
    }

    /// Heap bytes of the pages themselves (the pointers, not what they point to).
    pub fn heap_bytes(&self) -> usize {
        vec_bytes(&self.pages)
            + self.pages.len() * 2 * size_of::<usize>()
            + self.len * size_of::<Arc<T>>()
    }
}

impl<T> Paged<T> {
    /// Sets item `i` to `item`: a private copy of its page of pointers first if another
    /// version still shares the page, then `item` in place of the old item if no other
    /// version holds that, else in a new `Arc` (the old item is never copied).
    pub fn set(&mut self, i: usize, item: T) {
        let page = Arc::make_mut(&mut self.pages[i >> PAGE_BITS]);
        let slot = &mut page[i & (PAGE_SHARDS - 1)];
        match Arc::get_mut(slot) {
            Some(old) => *old = item,
            None => *slot = Arc::new(item),
        }
    }
}

impl<T: Clone> Paged<T> {
    /// Item `i`, writable: a private copy of its page of pointers first if another version
    /// still shares the page ([`PAGE_SHARDS`] pointers copied), then of the item if another
    /// version still shares it.
    pub fn make_mut(&mut self, i: usize) -> &mut T {
        let page = Arc::make_mut(&mut self.pages[i >> PAGE_BITS]);
        Arc::make_mut(&mut page[i & (PAGE_SHARDS - 1)])
    }
}

/// One version of a sharded table (see the module docs): the shard pointers [`Paged`].
#[derive(Debug)]
pub struct Shards<S> {
    shards: Paged<S>,
    /// `count - 1`.
    mask: u64,
}

impl<S> Clone for Shards<S> {
    fn clone(&self) -> Self {
        Self {
            shards: self.shards.clone(),
            mask: self.mask,
        }
    }
}

impl<S: Shard> Default for Shards<S> {
    fn default() -> Self {
        Self::new(1)
    }
}

impl<S: Shard> Shards<S> {
    /// `count` empty shards; `count` is rounded up to a power of two (at most [`MAX_SHARDS`]).
    pub fn new(count: usize) -> Self {
        Self::from_fn(count, |_| S::default())
    }

    /// `count` shards (rounded as in [`Shards::new`]), shard `i` made by `make(i)`.
    pub fn from_fn(count: usize, make: impl FnMut(usize) -> S) -> Self {
        let count = count.clamp(1, MAX_SHARDS).next_power_of_two();
        Self {
            mask: (count - 1) as u64,
            shards: Paged::from_vec((0..count).map(make).map(Arc::new).collect()),
        }
    }

    /// As [`Shards::from_fn`], the shards made on `threads` threads (each a contiguous run of
    /// shard indexes). `make` must be pure: shard `i` depends on `i` only.
    pub fn from_fn_parallel(
        count: usize,
        threads: usize,
        make: impl Fn(usize) -> S + Sync,
    ) -> Self {
        let count = count.clamp(1, MAX_SHARDS).next_power_of_two();
        let threads = threads.clamp(1, count);
        if threads == 1 {
            return Self::from_fn(count, make);
        }
        let per = count.div_ceil(threads);
        let parts: Vec<Vec<Arc<S>>> = std::thread::scope(|scope| {
            let make = &make;
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        (t * per..((t + 1) * per).min(count))
                            .map(|i| Arc::new(make(i)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        Self {
            mask: (count - 1) as u64,
            shards: Paged::from_vec(parts.into_iter().flatten().collect()),
        }
    }

    /// Number of shards (a power of two).
    pub fn count(&self) -> usize {
        self.mask as usize + 1
    }

    /// The shard index for a key hash ([`key_hash`]).
    #[inline]
    pub fn index_of(&self, hash: u64) -> usize {
        shard_of(hash, self.mask)
    }

    /// The shard that holds keys with this hash.
    #[inline]
    pub fn get(&self, hash: u64) -> &S {
        self.shard(self.index_of(hash))
    }

    /// Shard `i`: its page in the top array, then its pointer in the page.
    #[inline]
    pub fn shard(&self, i: usize) -> &S {
        self.shards.get(i)
    }

    /// Heap bytes of this version: the shard pointers, and each shard (its `Arc` block and
    /// its own heap). Shards shared with other versions are counted here as well.
    pub fn heap_bytes(&self) -> usize
    where
        S: Shard,
    {
        let block = size_of::<S>() + 2 * size_of::<usize>();
        self.shards.heap_bytes() + self.iter().map(|s| block + s.heap_bytes()).sum::<usize>()
    }

    /// Every shard, in index order.
    pub fn iter(&self) -> impl Iterator<Item = &S> {
        self.shards.iter().map(|s| &**s)
    }

    /// True when `entries` is far above what this count was sized for (four times
    /// [`Shard::ENTRIES`] a shard on average): the owner should rebuild with
    /// [`Shards::count_for`]`(entries)` shards.
    pub fn needs_resplit(&self, entries: usize) -> bool {
        self.count() < MAX_SHARDS && entries > self.count() * S::ENTRIES * 4
    }

    /// The shard count for about `entries` entries of this shard type.
    pub fn count_for(entries: usize) -> usize {
        shard_count(entries, S::ENTRIES)
    }

    /// True when shard `i` of `self` and of `other` are the same allocation (shared between
    /// the two versions).
    pub fn shares_shard(&self, other: &Self, i: usize) -> bool {
        Arc::ptr_eq(self.shards.get(i), other.shards.get(i))
    }

    /// Number of pages of shard pointers ([`PAGE_SHARDS`] shards a page).
    pub fn page_count(&self) -> usize {
        self.shards.page_count()
    }

    /// Pages of shard pointers `self` and `other` share (same allocation): what a batch
    /// between the two versions did not copy. 0 when their counts differ.
    pub fn pages_shared_with(&self, other: &Self) -> usize {
        if self.count() != other.count() {
            return 0;
        }
        self.shards.pages_shared_with(&other.shards)
    }

    /// Shard `i`, writable: a private copy of its page of pointers first if another version
    /// still shares the page ([`PAGE_SHARDS`] pointers copied), then of the shard if another
    /// version still shares it. The caller must [`Shard::seal`] it once its edits are done
    /// (an [`Editor`] does).
    pub fn make_mut_at(&mut self, i: usize) -> &mut S {
        self.shards.make_mut(i)
    }

    /// Shard `i` replaced by `shard`, which an owner wrote from the old one: as
    /// [`Shards::make_mut_at`] but without copying the old shard first.
    pub fn set_at(&mut self, i: usize, shard: S) {
        self.shards.set(i, shard);
    }

    /// Shard `i`, writable, if no other version holds it or its page (to seal a build's
    /// shards).
    pub fn get_mut(&mut self, i: usize) -> Option<&mut S> {
        self.shards.get_mut(i)
    }

    /// Starts a new version from this one (see the module docs).
    pub fn edit(&self) -> Editor<S> {
        Editor {
            next: self.clone(),
            touched: Vec::new(),
        }
    }
}

/// A version being built from an older one: touched shards are private copies, the rest
/// shared (see the module docs).
#[derive(Debug)]
pub struct Editor<S> {
    next: Shards<S>,
    touched: Vec<u32>,
}

impl<S: Shard> Editor<S> {
    /// The version as edited so far (reads see the edits).
    pub fn current(&self) -> &Shards<S> {
        &self.next
    }

    /// The shard for `hash`, writable: a private copy if the old version shares it.
    pub fn shard_mut(&mut self, hash: u64) -> &mut S {
        let i = self.next.index_of(hash);
        self.shard_mut_at(i)
    }

    /// Shard `i`, writable (as [`Editor::shard_mut`]).
    pub fn shard_mut_at(&mut self, i: usize) -> &mut S {
        self.touched.push(i as u32);
        self.next.make_mut_at(i)
    }

    /// Seals every touched shard once and returns the new version.
    pub fn finish(mut self) -> Shards<S> {
        self.touched.sort_unstable();
        self.touched.dedup();
        for &i in &self.touched {
            // Already private (made so by `shard_mut_at`), so this does not clone.
            self.next.make_mut_at(i as usize).seal();
        }
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy shard: keys and a count of seals.
    #[derive(Clone, Default, Debug)]
    struct Keys {
        keys: Vec<Vec<u8>>,
        seals: u32,
    }

    impl Shard for Keys {
        fn seal(&mut self) {
            self.keys.sort();
            self.seals += 1;
        }
    }

    fn insert(e: &mut Editor<Keys>, key: &[u8]) {
        e.shard_mut(key_hash(key)).keys.push(key.to_vec());
    }

    fn contains(s: &Shards<Keys>, key: &[u8]) -> bool {
        s.get(key_hash(key)).keys.iter().any(|k| k == key)
    }

    #[test]
    fn counts_are_powers_of_two_sized_for_the_entries() {
        assert_eq!(shard_count_for(0), 1);
        assert_eq!(shard_count_for(1_000_000), 65_536);
        assert_eq!(shard_count_for(usize::MAX), MAX_SHARDS);
        assert_eq!(Shards::<Keys>::new(5).count(), 8);
        assert_eq!(Shards::<Keys>::new(0).count(), 1);
        let s = Shards::<Keys>::new(4);
        assert!(!s.needs_resplit(64));
        assert!(s.needs_resplit(257));
    }

    #[test]
    fn the_hash_is_stable_within_the_process_and_spreads() {
        assert_eq!(
            key_hash(b"\x03foo\x03tld\x00"),
            key_hash(b"\x03foo\x03tld\x00")
        );
        let s = Shards::<Keys>::new(64);
        let mut used = [0u32; 64];
        for i in 0..6400u32 {
            used[s.index_of(key_hash(&i.to_be_bytes()))] += 1;
        }
        // 100 expected a shard; a sound hash keeps every shard within a wide margin.
        assert!(used.iter().all(|&n| (50..200).contains(&n)), "{used:?}");
    }

    #[test]
    fn a_new_version_shares_every_untouched_shard() {
        let mut e = Shards::<Keys>::new(64).edit();
        for i in 0..1000u32 {
            insert(&mut e, &i.to_be_bytes());
        }
        let v1 = e.finish();
        assert!(v1.iter().all(|s| s.seals == 1 && !s.keys.is_empty()));

        let mut e = v1.edit();
        insert(&mut e, b"new");
        insert(&mut e, b"new2");
        let v2 = e.finish();
        // The old version is unchanged; the new one has the keys.
        assert!(!contains(&v1, b"new") && !contains(&v1, b"new2"));
        assert!(contains(&v2, b"new") && contains(&v2, b"new2"));
        assert!((0..1000u32).all(|i| contains(&v2, &i.to_be_bytes())));
        let touched = [
            v2.index_of(key_hash(b"new")),
            v2.index_of(key_hash(b"new2")),
        ];
        for i in 0..v2.count() {
            assert_eq!(v1.shares_shard(&v2, i), !touched.contains(&i), "shard {i}");
        }
        // Each touched shard was sealed once more, however many edits it took.
        for i in touched {
            assert_eq!(v2.shard(i).seals, 2);
        }
    }

    /// What a batch copies is counted in pages and shards, not in the table's size: a
    /// version shares every page of shard pointers but the touched shards' own.
    #[test]
    fn a_batch_copies_only_the_pages_and_shards_it_touches() {
        let v1 = Shards::<Keys>::new(1 << 16);
        assert_eq!(v1.page_count(), (1 << 16) / PAGE_SHARDS);
        let v2 = v1.clone();
        assert_eq!(
            v2.pages_shared_with(&v1),
            v1.page_count(),
            "a clone copies no page"
        );

        let keys: [&[u8]; 3] = [b"a", b"b", b"c"];
        let mut e = v1.edit();
        for k in keys {
            insert(&mut e, k);
        }
        let v2 = e.finish();
        let shards: Vec<usize> = keys.iter().map(|k| v2.index_of(key_hash(k))).collect();
        let mut pages: Vec<usize> = shards.iter().map(|&i| i / PAGE_SHARDS).collect();
        pages.sort_unstable();
        pages.dedup();
        assert_eq!(
            v2.pages_shared_with(&v1),
            v1.page_count() - pages.len(),
            "only the touched shards' pages are copied"
        );
        let copied = (0..v2.count())
            .filter(|&i| !v2.shares_shard(&v1, i))
            .count();
        let mut touched = shards.clone();
        touched.sort_unstable();
        touched.dedup();
        assert_eq!(copied, touched.len(), "only the touched shards are copied");
        assert!(keys.iter().all(|k| contains(&v2, k) && !contains(&v1, k)));

        // A table smaller than a page has one page, shared the same way.
        let small = Shards::<Keys>::new(8);
        assert_eq!(small.page_count(), 1);
        let mut e = small.edit();
        insert(&mut e, b"x");
        let next = e.finish();
        assert_eq!(next.pages_shared_with(&small), 0);
        assert_eq!((0..8).filter(|&i| next.shares_shard(&small, i)).count(), 7);
    }

    #[test]
    fn a_shard_no_other_version_holds_is_edited_in_place() {
        let v1 = Shards::<Keys>::new(8);
        let mut e = v1.edit();
        drop(v1);
        let before = e.current().shard(0) as *const Keys;
        e.shard_mut_at(0).keys.push(b"x".to_vec());
        let v2 = e.finish();
        assert_eq!(v2.shard(0) as *const Keys, before, "no copy when unshared");
    }

    #[test]
    fn a_partition_groups_items_by_their_shard_in_item_order() {
        let keys: Vec<[u8; 4]> = (0..10_000u32).map(|i| i.to_be_bytes()).collect();
        let table = Shards::<Keys>::new(256);
        let tag = |h: u64| (h >> 56) as u32;
        for threads in [1, 2, 3] {
            let (count, parts) = Partition::new(256, keys.len(), threads, |i| &keys[i], tag);
            assert_eq!(count, 256);
            let mut seen = vec![false; keys.len()];
            for s in 0..count {
                let part = parts.shard(s);
                assert!(part.windows(2).all(|w| w[0].0 < w[1].0), "in item order");
                for &(i, t) in part {
                    let h = key_hash(&keys[i as usize]);
                    assert_eq!((table.index_of(h), t), (s, tag(h)));
                    seen[i as usize] = true;
                }
            }
            assert!(seen.iter().all(|&s| s), "every item once");
        }
        assert_eq!(parallel_map(10_000, 2, |i| i * 2)[9_999], 19_998);
    }

    #[test]
    fn parallel_build_matches_serial_build() {
        let make = |i: usize| Keys {
            keys: vec![i.to_be_bytes().to_vec()],
            seals: 0,
        };
        let a = Shards::from_fn(100, make);
        let b = Shards::from_fn_parallel(100, 2, make);
        assert_eq!(a.count(), 128);
        assert_eq!(b.count(), 128);
        for i in 0..128 {
            assert_eq!(a.shard(i).keys, b.shard(i).keys);
        }
    }
}
