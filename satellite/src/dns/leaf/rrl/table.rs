//! The buckets of response rate limiting: a fixed, preallocated table of token buckets shared
//! by every worker thread without locks.
//!
//! A slot is three atomics: a tag (the bucket key's 64-bit hash, 0 for an empty slot), the
//! bucket's `full_at` (the token-bucket state of [`crate::rds::rate_limit`], updated with one
//! compare-and-swap per answer) and the count of limited answers (for the slip). A key lives
//! in one of [`PROBE`] neighbouring slots after its hash's home slot, so a lookup reads at most
//! two cache lines. When none holds the key, the key takes over the one of those that is
//! nearest to full (an empty slot or a refilled bucket first: losing them loses nothing), so a
//! spray of one-off sources evicts other one-off sources, not the bucket of a flood, which is
//! far from full.
//!
//! What this gives up for having no lock, each case rare and worth at most one answer's worth
//! of accuracy: two keys racing for one slot (the loser tries once more, then is answered
//! untracked), and a slot changing owner between one thread's tag check and its update (the
//! update lands on the new owner's bucket). Two keys with the same 64-bit hash share a bucket.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::rds::rate_limit::Limit;

/// Slots a key may live in, from its home slot on.
const PROBE: usize = 4;
/// Most slots a table may have (6 GiB), the configuration's bound.
const MAX_SLOTS: usize = orrery_proto::selector::MAX_RRL_TABLE_SIZE;

/// One bucket.
#[derive(Default)]
struct Slot {
    /// The key's hash with its lowest bit set; 0 when the slot was never used.
    tag: AtomicU64,
    /// When the bucket is full again, in nanoseconds of the leaf's clock.
    full_at: AtomicU64,
    /// Answers limited since the slot was taken over.
    limited: AtomicU32,
}

/// What the table says about one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    /// Over the limit; `nth` counts the bucket's limited answers, this one included (from 1),
    /// which the slip is taken from.
    Limited {
        nth: u32,
    },
    /// No slot could be had (another key won the race for each): answered, not counted.
    Untracked,
}

/// The bucket table.
pub(crate) struct Table {
    /// A power of two in number.
    slots: Box<[Slot]>,
}

impl Table {
    /// A table of `size` slots rounded up to a power of two (`1 ≤ size ≤ MAX_SLOTS`, checked
    /// by the configuration); all of its memory is allocated here.
    pub(crate) fn new(size: usize) -> Self {
        let size = size.clamp(PROBE, MAX_SLOTS).next_power_of_two();
        Self {
            slots: (0..size).map(|_| Slot::default()).collect(),
        }
    }

    /// Slots in the table.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// Takes one token from the bucket of the key hashed to `hash`, at `now`.
    pub(crate) fn check(&self, hash: u64, limit: &Limit, now: u64) -> Verdict {
        let Some(slot) = self.slot(hash | 1, hash as usize, now) else {
            return Verdict::Untracked;
        };
        let mut full_at = slot.full_at.load(Ordering::Relaxed);
        loop {
            if limit.wait(full_at, now).is_some() {
                let nth = slot.limited.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
                return Verdict::Limited { nth };
            }
            let next = limit.take(full_at, now);
            match slot.full_at.compare_exchange_weak(
                full_at,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Verdict::Allow,
                Err(current) => full_at = current,
            }
        }
    }

    /// The slot holding `tag`, or one taken over for it.
    fn slot(&self, tag: u64, home: usize, now: u64) -> Option<&Slot> {
        let mask = self.slots.len() - 1;
        for _ in 0..2 {
            // The candidate to take over: the slot full soonest (an empty slot counts as full
            // since time zero).
            let mut victim: Option<(&Slot, u64, u64)> = None;
            for i in 0..PROBE {
                let slot = &self.slots[(home + i) & mask];
                let seen = slot.tag.load(Ordering::Relaxed);
                if seen == tag {
                    return Some(slot);
                }
                let full_at = if seen == 0 {
                    0
                } else {
                    slot.full_at.load(Ordering::Relaxed)
                };
                if victim.is_none_or(|(_, _, best)| full_at < best) {
                    victim = Some((slot, seen, full_at));
                }
            }
            let (slot, seen, full_at) = victim?;
            if slot
                .tag
                .compare_exchange(seen, tag, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                // A bucket taken over before it refilled starts full: its debt was another
                // source's. (A refilled one is full already.)
                if full_at > now {
                    slot.full_at.store(0, Ordering::Relaxed);
                }
                slot.limited.store(0, Ordering::Relaxed);
                return Some(slot);
            }
        }
        None
    }

    /// Slots in use (cold path: tests and statistics).
    pub(crate) fn used(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.tag.load(Ordering::Relaxed) != 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn limit(rate: f64, burst: u32) -> Limit {
        Limit::new(rate, "rate", burst, "burst").unwrap()
    }

    fn allowed(table: &Table, hash: u64, limit: &Limit, now: u64, n: usize) -> usize {
        (0..n)
            .filter(|_| table.check(hash, limit, now) == Verdict::Allow)
            .count()
    }

    #[test]
    fn burst_then_limited_counting_then_refilled() {
        let table = Table::new(64);
        let l = limit(10.0, 20);
        assert_eq!(allowed(&table, 7, &l, SECOND, 100), 20);
        // The limited answers are counted from 1 for the slip.
        assert_eq!(table.check(7, &l, SECOND), Verdict::Limited { nth: 81 });
        // Another key is untouched; a tenth of a second gives one token.
        assert_eq!(allowed(&table, 8, &l, SECOND, 5), 5);
        assert_eq!(allowed(&table, 7, &l, SECOND + SECOND / 10, 5), 1);
        assert_eq!(allowed(&table, 7, &l, 10 * SECOND, 100), 20);
        assert_eq!(table.used(), 2);
    }

    #[test]
    fn a_full_neighbourhood_evicts_the_bucket_nearest_to_full() {
        // Four slots: every key shares one neighbourhood.
        let table = Table::new(4);
        assert_eq!(table.len(), 4);
        let l = limit(1.0, 10);
        // A flood (far from full) and three one-off keys fill it.
        assert_eq!(allowed(&table, 0x100, &l, SECOND, 50), 10);
        for key in [0x200, 0x300, 0x400] {
            assert_eq!(table.check(key, &l, SECOND), Verdict::Allow);
        }
        assert_eq!(table.used(), 4);
        // A spray of new keys takes the one-off keys' slots, never the flood's.
        for key in 0x500..0x600 {
            assert_eq!(table.check(key << 8, &l, SECOND), Verdict::Allow);
        }
        assert_eq!(table.used(), 4);
        assert!(matches!(
            table.check(0x100, &l, SECOND),
            Verdict::Limited { .. }
        ));
        // A key taken over starts full, with its slip count from 1.
        assert_eq!(allowed(&table, 0x900, &l, SECOND, 10), 10);
        assert_eq!(table.check(0x900, &l, SECOND), Verdict::Limited { nth: 1 });
    }

    #[test]
    fn threads_share_buckets_exactly() {
        let table = Table::new(1024);
        let l = limit(1.0, 1000);
        let total: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| allowed(&table, 42, &l, SECOND, 1000)))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(total, 1000);
    }

    #[test]
    fn sizes_round_up_to_a_power_of_two() {
        assert_eq!(Table::new(1).len(), 4);
        assert_eq!(Table::new(1000).len(), 1024);
        assert_eq!(size_of::<Slot>(), 24);
    }
}
