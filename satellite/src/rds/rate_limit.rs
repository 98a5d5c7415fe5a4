//! Token-bucket rate limiting per client address and per prefix.
//!
//! The limiter decides, for one request from one source, whether it may be served now. It knows
//! nothing of the protocol: the Whois (TCP port 43) and RDAP (HTTP) leaves use it. DNS
//! response rate limiting (the `rrl` leaf) shares its bucket arithmetic ([`Limit`]) and its
//! prefix masking ([`source_bits`]) but keeps its buckets in a lock-free table of its own: it
//! runs on every UDP answer.
//!
//! # Rules
//! Every source has two token buckets, as registries such as AFNIC run them: one for its
//! address (an IPv4 /32; an IPv6 /64 by default, because one IPv6 client usually holds a whole
//! /64) and one for its prefix (IPv4 /24 and IPv6 /56 by default), so that a client cannot
//! escape its limit by rotating through the addresses of its network.
//! - A bucket holds at most `burst` tokens and earns `rate` tokens a second. A source not seen
//!   before has full buckets.
//! - A request is allowed only when both buckets hold a token, and then takes one from each. A
//!   denied request takes none, so that a flooding address does not use up its prefix's tokens
//!   for its neighbours, and a prefix over its limit does not empty its addresses' buckets.
//! - The address bucket is checked first; [`Decision::Limited`] says which bucket denied and
//!   how long until it holds a token again.
//! - IPv4-mapped IPv6 sources (`::ffff:a.b.c.d`) count as IPv4. Exempt sources are allowed
//!   without touching the tables.
//! - The caller passes the time, so that tests are deterministic. A time earlier than the
//!   latest one a shard has seen counts as that latest time: worker threads read the clock
//!   before they take the lock, so small steps back are normal, and they must neither panic
//!   nor refill nor empty a bucket.
//!
//! A bucket is stored as one number, the time at which it will be full again (`full_at`, in
//! nanoseconds since the limiter was made). At `now` it holds `burst - (full_at - now) × rate`
//! tokens, so a token is left when `full_at - now <= (burst - 1) / rate`, and taking one moves
//! `full_at` on by `1 / rate` from `max(full_at, now)`. This is exactly a token bucket (the
//! "generic cell rate algorithm" of ATM networks), in whole nanoseconds, with no refill step
//! to round.
//!
//! # Sharding
//! One limiter is shared by every worker thread, so its buckets are spread over up to
//! `MAX_SHARDS` (64) shards, each a `std::sync::Mutex` held for a lookup and at most two writes.
//! A source's two buckets may sit in two shards: both are locked, the lower index first, so
//! that "both buckets or neither" is atomic and two requests cannot deadlock. The shard comes
//! from a hash of the bucket's key, so that a busy prefix (or a configured /0 prefix, one
//! bucket for everybody) does not crowd its addresses into one shard.
//!
//! # Memory bound
//! An attacker spraying source addresses must not exhaust memory, and the request path must not
//! allocate. So each shard allocates its share of `max_tracked` buckets at construction and
//! never grows: when it is full, a new bucket takes over the slot of an old one. The victim is
//! picked among the next `SAMPLE` (8) slots after a clock hand: the first bucket already full,
//! which carries no information (a source without a bucket counts as full, so dropping it is
//! exact), or else the bucket that will be full soonest, whose loss forgives the fewest
//! requests. A client that was just limited has a bucket far from full, so a spray of one-off
//! sources, each leaving buckets one token short, evicts those instead. Denied requests store
//! nothing, so a spray from inside one prefix stops adding buckets once that prefix is empty.

use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hashbrown::{DefaultHashBuilder, HashTable};

use orrery_proto::Prefix;

/// Most shards: enough that worker threads rarely meet on one lock.
const MAX_SHARDS: usize = 64;
/// Fewest buckets a shard is made with (unless `max_tracked` is smaller): smaller shards make
/// eviction choose among too few buckets.
const MIN_PER_SHARD: usize = 64;
/// Buckets examined to choose one to evict.
const SAMPLE: usize = 8;

pub use orrery_proto::selector::RateLimitConfig;

/// What [`RateLimiter::check`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Over the limit; `retry_after` is how long until the bucket that denied holds a token
    /// again (callers writing an HTTP `Retry-After` round it up to whole seconds themselves).
    Limited {
        retry_after: Duration,
        scope: Scope,
    },
}

/// Which bucket denied a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Address,
    Prefix,
}

/// Token buckets per address and per prefix, shared by all worker threads (`Send + Sync`).
pub struct RateLimiter {
    address: Limit,
    prefix: Limit,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    ipv6_address_prefix: u8,
    exempt: Vec<Prefix>,
    /// Time zero of the buckets' `full_at`.
    epoch: Instant,
    /// Hashes keys for the shards' indexes.
    index_hasher: DefaultHashBuilder,
    /// Picks a key's shard. Seeded apart from `index_hasher`: were the shard taken from the
    /// same hash, the keys in one shard would share the bits the index probes by.
    shard_hasher: DefaultHashBuilder,
    /// A power of two in number.
    shards: Box<[Mutex<Shard>]>,
}

impl RateLimiter {
    /// Validates the configuration; the error names the field, e.g. `address_rate: must be
    /// above 0`.
    pub fn new(config: &RateLimitConfig) -> Result<Self, String> {
        config.validate()?;
        let address = Limit::new(
            config.address_rate,
            "address_rate",
            config.address_burst,
            "address_burst",
        )?;
        let prefix = Limit::new(
            config.prefix_rate,
            "prefix_rate",
            config.prefix_burst,
            "prefix_burst",
        )?;
        let exempt = config.exempt_prefixes()?;
        let shards = (config.max_tracked / MIN_PER_SHARD).clamp(1, MAX_SHARDS);
        let shards = 1 << shards.ilog2();
        // Rounding down keeps the total within `max_tracked`.
        let per_shard = config.max_tracked / shards;
        Ok(Self {
            address,
            prefix,
            ipv4_prefix: config.ipv4_prefix,
            ipv6_prefix: config.ipv6_prefix,
            ipv6_address_prefix: config.ipv6_address_prefix,
            exempt,
            epoch: Instant::now(),
            index_hasher: DefaultHashBuilder::default(),
            shard_hasher: DefaultHashBuilder::default(),
            shards: (0..shards)
                .map(|_| Mutex::new(Shard::new(per_shard)))
                .collect(),
        })
    }

    /// Takes one token from the client's address bucket and one from its prefix bucket, or
    /// none when either is empty. Allocates nothing and holds each lock for a few lookups.
    pub fn check(&self, peer: IpAddr, now: Instant) -> Decision {
        let peer = unmapped(peer);
        if self.exempt.iter().any(|p| p.contains(peer)) {
            return Decision::Allow;
        }
        let (address, prefix) = self.keys(peer);
        let now = self.nanos(now);
        let (ia, ip) = (self.shard_of(&address), self.shard_of(&prefix));
        if ia == ip {
            let mut shard = self.lock(ia);
            self.take(Pair::One(&mut shard), address, prefix, now)
        } else {
            // Always the lower index first, so that two requests cannot deadlock.
            let mut low = self.lock(ia.min(ip));
            let mut high = self.lock(ia.max(ip));
            let pair = if ia < ip {
                Pair::Two(&mut low, &mut high)
            } else {
                Pair::Two(&mut high, &mut low)
            };
            self.take(pair, address, prefix, now)
        }
    }

    /// Buckets currently tracked (for tests and statistics). Buckets that have refilled are
    /// dropped only when their slot is needed, so this counts them too.
    pub fn tracked(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.lock(i).slots.len())
            .sum()
    }

    /// The decision, with both buckets' shards locked.
    fn take(&self, mut pair: Pair<'_>, address: Key, prefix: Key, now: u64) -> Decision {
        let hasher = &self.index_hasher;
        let now = pair.advance(now);
        let a = pair.address().find(hasher, &address);
        let a_full_at = a.map_or(0, |i| pair.address().slots[i].full_at);
        if let Some(wait) = self.address.wait(a_full_at, now) {
            return limited(wait, Scope::Address);
        }
        let p = pair.prefix().find(hasher, &prefix);
        let p_full_at = p.map_or(0, |i| pair.prefix().slots[i].full_at);
        if let Some(wait) = self.prefix.wait(p_full_at, now) {
            return limited(wait, Scope::Prefix);
        }
        // In a shared shard, making room for one bucket must not evict the other.
        let shared = matches!(pair, Pair::One(_));
        let a_full_at = self.address.take(a_full_at, now);
        let a = pair
            .address()
            .store(hasher, a, address, a_full_at, now, p.filter(|_| shared));
        let p_full_at = self.prefix.take(p_full_at, now);
        pair.prefix().store(
            hasher,
            p,
            prefix,
            p_full_at,
            now,
            Some(a).filter(|_| shared),
        );
        Decision::Allow
    }

    /// The source's address and prefix keys (`peer` is already unmapped from IPv6).
    fn keys(&self, peer: IpAddr) -> (Key, Key) {
        let (v6, address) = source_bits(peer, 32, self.ipv6_address_prefix);
        let (_, prefix) = source_bits(peer, self.ipv4_prefix, self.ipv6_prefix);
        if v6 {
            (
                Key::new(Kind::Ipv6Address, address),
                Key::new(Kind::Ipv6Prefix, prefix),
            )
        } else {
            (
                Key::new(Kind::Ipv4Address, address),
                Key::new(Kind::Ipv4Prefix, prefix),
            )
        }
    }

    /// Nanoseconds since the limiter was made; 0 for earlier times.
    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard_of(&self, key: &Key) -> usize {
        // The number of shards is a power of two.
        self.shard_hasher.hash_one(key) as usize & (self.shards.len() - 1)
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        // Nothing panics while a shard is locked, and a shard's state is valid between any two
        // statements anyway: a poisoned lock is safe to go on with.
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The source as IPv4 when it is an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`): such a client
/// is an IPv4 one, and shares its IPv4 neighbours' buckets.
pub(crate) fn unmapped(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    }
}

/// The source's prefix as bits: whether it is IPv6, and its address masked to `ipv4_prefix`
/// or `ipv6_prefix` bits (lengths up to 32 and 128; `peer` already [`unmapped`]).
pub(crate) fn source_bits(peer: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> (bool, u128) {
    match peer {
        IpAddr::V4(v4) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(ipv4_prefix))
                .unwrap_or(0);
            (false, u128::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(ipv6_prefix))
                .unwrap_or(0);
            (true, u128::from(v6) & mask)
        }
    }
}

fn limited(wait_nanos: u64, scope: Scope) -> Decision {
    Decision::Limited {
        retry_after: Duration::from_nanos(wait_nanos),
        scope,
    }
}

/// One bucket's parameters, in nanoseconds: the token-bucket arithmetic on `full_at` described
/// in the module documentation, shared by every limiter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limit {
    /// Time to earn one token: 1 / rate.
    interval: u64,
    /// How far ahead `full_at` may be while a token is left: (burst - 1) / rate.
    tolerance: u64,
}

impl Limit {
    /// `rate` tokens a second, at most `burst`; errors name the fields.
    pub(crate) fn new(
        rate: f64,
        rate_field: &str,
        burst: u32,
        burst_field: &str,
    ) -> Result<Self, String> {
        orrery_proto::selector::check_rate(rate, rate_field, burst, burst_field)?;
        // Rates above a billion a second round to one token a nanosecond.
        let interval = ((1e9 / rate).round() as u64).max(1);
        Ok(Self {
            interval,
            tolerance: interval * u64::from(burst - 1),
        })
    }

    /// `None` when a bucket full at `full_at` holds a token at `now`, else the nanoseconds until
    /// it does.
    pub(crate) fn wait(&self, full_at: u64, now: u64) -> Option<u64> {
        let deadline = now.saturating_add(self.tolerance);
        full_at.checked_sub(deadline).filter(|&wait| wait > 0)
    }

    /// `full_at` after taking a token at `now`. A bucket already full holds `burst` tokens, not
    /// more: hence the `max`.
    pub(crate) fn take(&self, full_at: u64, now: u64) -> u64 {
        full_at.max(now).saturating_add(self.interval)
    }
}

/// Which kind of bucket a key names: an IPv4 /24 and an IPv6 /56 with the same bits differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Ipv4Address,
    Ipv4Prefix,
    Ipv6Address,
    Ipv6Prefix,
}

/// A bucket's key: the masked address and its kind. Two `u64` halves rather than a `u128`, which
/// would align the slots to 16 bytes and make them half as large again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    high: u64,
    low: u64,
    kind: Kind,
}

impl Key {
    fn new(kind: Kind, bits: u128) -> Self {
        Self {
            high: (bits >> 64) as u64,
            low: bits as u64,
            kind,
        }
    }
}

/// One bucket: whose, and when it will be full again.
#[derive(Clone, Copy, Debug)]
struct Slot {
    key: Key,
    full_at: u64,
}

/// A share of the buckets.
struct Shard {
    /// The buckets, at most `limit`, allocated at construction. Slots are reused in place and
    /// never removed, so they stay dense.
    slots: Vec<Slot>,
    /// Slot numbers, found by their slot's key. A `HashTable` of `u32` rather than a `HashMap`
    /// from key to bucket: the key is stored once (in the slot), an index entry is 4 bytes
    /// (and hashbrown's control byte), and eviction can pick a slot by number.
    ///
    /// Made for twice `limit`: each eviction leaves a tombstone, and hashbrown clears
    /// tombstones by rehashing in place, without allocating, only while at most half full.
    index: HashTable<u32>,
    limit: usize,
    /// The slot the next eviction looks at first.
    hand: usize,
    /// The latest time a request brought, in nanoseconds since the epoch: earlier ones count
    /// as this.
    latest: u64,
}

impl Shard {
    fn new(limit: usize) -> Self {
        Self {
            slots: Vec::with_capacity(limit),
            index: HashTable::with_capacity(2 * limit),
            limit,
            hand: 0,
            latest: 0,
        }
    }

    fn find(&self, hasher: &DefaultHashBuilder, key: &Key) -> Option<usize> {
        self.index
            .find(hasher.hash_one(key), |&i| {
                self.slots[i as usize].key == *key
            })
            .map(|&i| i as usize)
    }

    /// Writes a bucket into `slot`, or into a new slot when it has none, and returns the slot.
    /// When the shard is full the new bucket takes over another's slot, never `keep`'s.
    fn store(
        &mut self,
        hasher: &DefaultHashBuilder,
        slot: Option<usize>,
        key: Key,
        full_at: u64,
        now: u64,
        keep: Option<usize>,
    ) -> usize {
        if let Some(i) = slot {
            self.slots[i].full_at = full_at;
            return i;
        }
        let i = if self.slots.len() < self.limit {
            self.slots.push(Slot { key, full_at });
            self.slots.len() - 1
        } else {
            let victim = self.victim(now, keep);
            let old = hasher.hash_one(self.slots[victim].key);
            if let Ok(entry) = self.index.find_entry(old, |&j| j as usize == victim) {
                entry.remove();
            }
            self.slots[victim] = Slot { key, full_at };
            victim
        };
        let slots = &self.slots;
        // Slots are fewer than `MAX_RATE_LIMIT_TRACKED` (checked by the configuration), so
        // their numbers fit a `u32`.
        self.index
            .insert_unique(hasher.hash_one(key), i as u32, |&j| {
                hasher.hash_one(slots[j as usize].key)
            });
        i
    }

    /// The slot to reuse in a full shard: among the next [`SAMPLE`] slots after the hand, the
    /// first already full at `now`, or else the one full soonest. `keep` is skipped.
    fn victim(&mut self, now: u64, keep: Option<usize>) -> usize {
        let len = self.slots.len();
        let mut best: Option<usize> = None;
        for _ in 0..SAMPLE.min(len) {
            let i = self.hand;
            self.hand = (self.hand + 1) % len;
            if Some(i) == keep {
                continue;
            }
            let full_at = self.slots[i].full_at;
            if full_at <= now {
                return i;
            }
            if best.is_none_or(|b| full_at < self.slots[b].full_at) {
                best = Some(i);
            }
        }
        // A shard has at least two slots, so the sample held one besides `keep`.
        best.unwrap_or(self.hand)
    }
}

/// The locked shards of one request's two buckets: one shard holding both, or two.
enum Pair<'a> {
    One(&'a mut Shard),
    /// The address's shard, then the prefix's.
    Two(&'a mut Shard, &'a mut Shard),
}

impl Pair<'_> {
    /// Moves the shards' time on to `now` and returns their time: `now`, or later when an
    /// earlier request brought a later time.
    fn advance(&mut self, now: u64) -> u64 {
        match self {
            Self::One(shard) => {
                shard.latest = shard.latest.max(now);
                shard.latest
            }
            Self::Two(a, p) => {
                let latest = now.max(a.latest).max(p.latest);
                (a.latest, p.latest) = (latest, latest);
                latest
            }
        }
    }

    fn address(&mut self) -> &mut Shard {
        match self {
            Self::One(shard) | Self::Two(shard, _) => shard,
        }
    }

    fn prefix(&mut self) -> &mut Shard {
        match self {
            Self::One(shard) | Self::Two(_, shard) => shard,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(
        address_rate: f64,
        address_burst: u32,
        prefix_rate: f64,
        prefix_burst: u32,
    ) -> RateLimitConfig {
        RateLimitConfig {
            address_rate,
            address_burst,
            prefix_rate,
            prefix_burst,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            ipv6_address_prefix: 64,
            max_tracked: 4096,
            exempt: Vec::new(),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The scope that denied, or `None` when allowed.
    fn scope(d: Decision) -> Option<Scope> {
        match d {
            Decision::Allow => None,
            Decision::Limited { scope, .. } => Some(scope),
        }
    }

    fn allowed(limiter: &RateLimiter, peer: &str, now: Instant, n: usize) -> usize {
        (0..n)
            .filter(|_| limiter.check(ip(peer), now) == Decision::Allow)
            .count()
    }

    #[test]
    fn burst_then_limited_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(&config(10.0, 5, 1000.0, 1000)).unwrap();
        let t0 = Instant::now();
        assert_eq!(allowed(&limiter, "192.0.2.1", t0, 5), 5);
        // Empty: the next token comes one interval (1 / rate) later.
        assert_eq!(
            limiter.check(ip("192.0.2.1"), t0),
            Decision::Limited {
                retry_after: ms(100),
                scope: Scope::Address
            }
        );
        assert_eq!(
            limiter.check(ip("192.0.2.1"), t0 + ms(99)),
            Decision::Limited {
                retry_after: ms(1),
                scope: Scope::Address
            }
        );
        let nanosecond = Duration::from_nanos(1);
        assert_eq!(
            limiter.check(ip("192.0.2.1"), t0 + ms(100) - nanosecond),
            Decision::Limited {
                retry_after: nanosecond,
                scope: Scope::Address
            }
        );
        // retry_after was right: exactly then, one token and no more.
        assert_eq!(
            limiter.check(ip("192.0.2.1"), t0 + ms(100)),
            Decision::Allow
        );
        assert_eq!(
            scope(limiter.check(ip("192.0.2.1"), t0 + ms(100))),
            Some(Scope::Address)
        );
        // Three intervals give three tokens.
        assert_eq!(allowed(&limiter, "192.0.2.1", t0 + ms(400), 10), 3);
        // A long rest refills no more than the burst.
        assert_eq!(
            allowed(&limiter, "192.0.2.1", t0 + Duration::from_secs(3600), 10),
            5
        );
    }

    #[test]
    fn flood_is_limited_per_address_and_per_prefix() {
        let limiter = RateLimiter::new(&config(1.0, 3, 1.0, 5)).unwrap();
        let t0 = Instant::now();
        assert_eq!(allowed(&limiter, "192.0.2.1", t0, 1000), 3);
        assert_eq!(
            scope(limiter.check(ip("192.0.2.1"), t0)),
            Some(Scope::Address)
        );
        // Another prefix is not touched by the flood.
        assert_eq!(allowed(&limiter, "198.51.100.1", t0, 3), 3);
        // The same /24 has the two prefix tokens the flood left, then its prefix is empty even
        // for an address never seen.
        assert_eq!(allowed(&limiter, "192.0.2.2", t0, 2), 2);
        assert_eq!(
            limiter.check(ip("192.0.2.3"), t0),
            Decision::Limited {
                retry_after: Duration::from_secs(1),
                scope: Scope::Prefix
            }
        );
        // The address is checked first.
        assert_eq!(
            scope(limiter.check(ip("192.0.2.1"), t0)),
            Some(Scope::Address)
        );
        assert_eq!(allowed(&limiter, "192.0.3.1", t0, 1), 1);
    }

    #[test]
    fn ipv6_shares_buckets_by_64_and_56() {
        let limiter = RateLimiter::new(&config(1.0, 2, 1.0, 3)).unwrap();
        let t0 = Instant::now();
        // One /64 is one client.
        assert_eq!(allowed(&limiter, "2001:db8:0:1::1", t0, 1), 1);
        assert_eq!(allowed(&limiter, "2001:db8:0:1:ffff::2", t0, 1), 1);
        assert_eq!(
            scope(limiter.check(ip("2001:db8:0:1::3"), t0)),
            Some(Scope::Address)
        );
        // Another /64 in the /56 has its own address bucket but shares the prefix's.
        assert_eq!(allowed(&limiter, "2001:db8:0:2::1", t0, 1), 1);
        assert_eq!(
            scope(limiter.check(ip("2001:db8:0:ff::1"), t0)),
            Some(Scope::Prefix)
        );
        // Another /56 is independent.
        assert_eq!(allowed(&limiter, "2001:db8:0:100::1", t0, 2), 2);
        assert_eq!(limiter.tracked(), 5);
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_ipv4() {
        let limiter = RateLimiter::new(&config(1.0, 2, 1.0, 10)).unwrap();
        let t0 = Instant::now();
        assert_eq!(allowed(&limiter, "192.0.2.1", t0, 1), 1);
        assert_eq!(allowed(&limiter, "::ffff:192.0.2.1", t0, 1), 1);
        assert_eq!(
            scope(limiter.check(ip("192.0.2.1"), t0)),
            Some(Scope::Address)
        );
        assert_eq!(
            scope(limiter.check(ip("::ffff:192.0.2.1"), t0)),
            Some(Scope::Address)
        );
        // One address bucket and one /24 bucket, nothing under IPv6.
        assert_eq!(limiter.tracked(), 2);
        // The /24 is shared with plain IPv4 neighbours.
        let limiter = RateLimiter::new(&config(1.0, 5, 1.0, 2)).unwrap();
        assert_eq!(allowed(&limiter, "::ffff:192.0.2.1", t0, 2), 2);
        assert_eq!(
            scope(limiter.check(ip("192.0.2.9"), t0)),
            Some(Scope::Prefix)
        );
    }

    #[test]
    fn exempt_sources_are_never_limited() {
        let mut c = config(1.0, 1, 1.0, 1);
        c.exempt = vec!["192.0.2.0/24".into(), "2001:db8::1".into()];
        let limiter = RateLimiter::new(&c).unwrap();
        let t0 = Instant::now();
        assert_eq!(allowed(&limiter, "192.0.2.7", t0, 100), 100);
        assert_eq!(allowed(&limiter, "::ffff:192.0.2.8", t0, 100), 100);
        assert_eq!(allowed(&limiter, "2001:db8::1", t0, 100), 100);
        assert_eq!(limiter.tracked(), 0);
        // Its neighbours are limited as usual.
        assert_eq!(allowed(&limiter, "2001:db8::2", t0, 100), 1);
        assert_eq!(allowed(&limiter, "192.0.3.1", t0, 100), 1);
    }

    #[test]
    fn denied_requests_take_no_tokens() {
        // Address tokens come back only after 1000 s, prefix tokens every second.
        let limiter = RateLimiter::new(&config(0.001, 1, 1.0, 2)).unwrap();
        let t0 = Instant::now();
        assert_eq!(allowed(&limiter, "192.0.2.1", t0, 1), 1);
        // Denied by its address, the flood leaves the prefix's last token to a neighbour.
        assert_eq!(allowed(&limiter, "192.0.2.1", t0, 100), 0);
        assert_eq!(allowed(&limiter, "192.0.2.2", t0, 1), 1);
        // Denied by the prefix, a third address keeps its own token for when the prefix has one.
        for _ in 0..100 {
            assert_eq!(
                scope(limiter.check(ip("192.0.2.3"), t0)),
                Some(Scope::Prefix)
            );
        }
        assert_eq!(
            allowed(&limiter, "192.0.2.3", t0 + Duration::from_secs(1), 1),
            1
        );
        assert_eq!(
            scope(limiter.check(ip("192.0.2.3"), t0 + Duration::from_secs(2))),
            Some(Scope::Address)
        );
    }

    #[test]
    fn time_going_backwards_counts_as_the_latest_time() {
        let limiter = RateLimiter::new(&config(1.0, 2, 1.0, 3)).unwrap();
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        assert_eq!(allowed(&limiter, "192.0.2.1", later, 2), 2);
        // Earlier times (even before the limiter was made) neither panic nor give tokens back,
        assert_eq!(allowed(&limiter, "192.0.2.1", t0, 5), 0);
        let before = t0.checked_sub(Duration::from_secs(60)).unwrap_or(t0);
        assert_eq!(
            limiter.check(ip("192.0.2.1"), before),
            Decision::Limited {
                retry_after: Duration::from_secs(1),
                scope: Scope::Address
            }
        );
        // nor take tokens away: the prefix still has the token it had left at `later`,
        assert_eq!(allowed(&limiter, "192.0.2.2", before, 5), 1);
        // nor push the refill later.
        assert_eq!(
            allowed(&limiter, "192.0.2.1", later + Duration::from_secs(1), 5),
            1
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let good = config(1.0, 1, 1.0, 1);
        RateLimiter::new(&good).unwrap();
        type Change = fn(&mut RateLimitConfig);
        let cases: [(Change, &str); 14] = [
            (|c| c.address_rate = 0.0, "address_rate: must be above 0"),
            (|c| c.address_rate = -1.0, "address_rate: must be above 0"),
            (
                |c| c.address_rate = f64::NAN,
                "address_rate: must be above 0",
            ),
            (
                |c| c.address_rate = f64::INFINITY,
                "address_rate: must be finite",
            ),
            (|c| c.address_rate = 1e-15, "address_rate: too small"),
            (|c| c.address_burst = 0, "address_burst: must be at least 1"),
            (|c| c.prefix_rate = 0.0, "prefix_rate: must be above 0"),
            (|c| c.prefix_burst = 0, "prefix_burst: must be at least 1"),
            (|c| c.ipv4_prefix = 33, "ipv4_prefix: must be 0 to 32"),
            (|c| c.ipv6_prefix = 129, "ipv6_prefix: must be 0 to 128"),
            (
                |c| c.ipv6_address_prefix = 129,
                "ipv6_address_prefix: must be 0 to 128",
            ),
            (
                |c| c.ipv6_address_prefix = 48,
                "ipv6_address_prefix: must be at least ipv6_prefix (56)",
            ),
            (|c| c.max_tracked = 1, "max_tracked: must be 2 to"),
            (
                |c| c.exempt = vec!["10.0.0.0/8".into(), "nope".into()],
                "exempt: \"nope\" is not an address prefix",
            ),
        ];
        for (change, want) in cases {
            let mut c = good.clone();
            change(&mut c);
            let Err(e) = RateLimiter::new(&c) else {
                panic!("{c:?} accepted, want {want:?}");
            };
            assert!(e.starts_with(want), "{e:?} does not start with {want:?}");
        }
        // The bounds themselves are fine: a /0 prefix is one bucket for everybody.
        let mut c = good;
        c.ipv4_prefix = 0;
        c.ipv6_prefix = 0;
        c.ipv6_address_prefix = 128;
        c.max_tracked = 2;
        let limiter = RateLimiter::new(&c).unwrap();
        let t0 = Instant::now();
        assert_eq!(allowed(&limiter, "192.0.2.1", t0, 1), 1);
        assert_eq!(
            scope(limiter.check(ip("198.51.100.1"), t0)),
            Some(Scope::Prefix)
        );
    }

    #[test]
    fn toml_example_parses_and_unknown_keys_are_refused() {
        let c: RateLimitConfig = toml::from_str(
            r#"
            address_rate = 2.0
            address_burst = 20
            prefix_rate = 10.5
            prefix_burst = 100
            exempt = ["192.0.2.0/24", "2001:db8::/32"]
            "#,
        )
        .unwrap();
        assert_eq!(
            c,
            RateLimitConfig {
                address_rate: 2.0,
                address_burst: 20,
                prefix_rate: 10.5,
                prefix_burst: 100,
                ipv4_prefix: 24,
                ipv6_prefix: 56,
                ipv6_address_prefix: 64,
                max_tracked: 262_144,
                exempt: vec!["192.0.2.0/24".into(), "2001:db8::/32".into()],
            }
        );
        RateLimiter::new(&c).unwrap();
        let c: RateLimitConfig = toml::from_str(
            "address_rate = 1.0\naddress_burst = 1\nprefix_rate = 1.0\nprefix_burst = 1\n\
             ipv4_prefix = 16\nipv6_prefix = 48\nipv6_address_prefix = 56\nmax_tracked = 1000\n",
        )
        .unwrap();
        assert_eq!(
            (
                c.ipv4_prefix,
                c.ipv6_prefix,
                c.ipv6_address_prefix,
                c.max_tracked
            ),
            (16, 48, 56, 1000)
        );
        let e = toml::from_str::<RateLimitConfig>(
            "address_rate = 1.0\naddress_burst = 1\nprefix_rate = 1.0\nprefix_burst = 1\n\
             rate = 5\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `rate`"), "{e}");
        // An integer rate is a TOML integer; serde takes it as f64.
        assert!(
            toml::from_str::<RateLimitConfig>(
                "address_rate = 1\naddress_burst = 1\nprefix_rate = 1\nprefix_burst = 1\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn making_room_never_evicts_the_requests_other_bucket() {
        let t0 = Instant::now();
        // Two buckets in all, so every new bucket evicts one. Here prefix buckets refill
        // faster, so a shared prefix bucket is the one nearest to full.
        let mut c = config(1.0, 1, 10.0, 2);
        c.max_tracked = 2;
        let limiter = RateLimiter::new(&c).unwrap();
        assert_eq!(allowed(&limiter, "192.0.2.1", t0, 1), 1);
        // The neighbour's new address bucket replaces 192.0.2.1's, not the prefix bucket the
        // request takes a token from too ...
        assert_eq!(allowed(&limiter, "192.0.2.2", t0, 1), 1);
        assert_eq!(
            scope(limiter.check(ip("192.0.2.3"), t0)),
            Some(Scope::Prefix)
        );
        // ... and here address buckets refill faster, so a source's new address bucket is the
        // one nearest to full when its new prefix bucket needs room.
        let mut c = config(10.0, 1, 1.0, 10);
        c.max_tracked = 2;
        let limiter = RateLimiter::new(&c).unwrap();
        assert_eq!(allowed(&limiter, "192.0.2.1", t0, 1), 1);
        assert_eq!(allowed(&limiter, "198.51.100.1", t0, 1), 1);
        assert_eq!(
            scope(limiter.check(ip("198.51.100.1"), t0)),
            Some(Scope::Address)
        );
        assert_eq!(limiter.tracked(), 2);
    }

    /// The `n`th of many sources, each in a prefix of its own, IPv4 and IPv6 alternately.
    fn sprayed(n: u32) -> IpAddr {
        if n.is_multiple_of(2) {
            IpAddr::from((0x0a00_0000 + (n << 8)).to_be_bytes())
        } else {
            IpAddr::from(((0x2001_0db8_u128 << 96) | (u128::from(n) << 72) | 1).to_be_bytes())
        }
    }

    #[test]
    fn spraying_sources_stays_within_max_tracked() {
        // One shard of 64 buckets: everything here is deterministic.
        let mut c = config(1.0, 10, 5.0, 50);
        c.max_tracked = 64;
        let limiter = RateLimiter::new(&c).unwrap();
        assert_eq!(limiter.shards.len(), 1);
        let t0 = Instant::now();
        let client = ip("203.0.113.7");
        assert_eq!(allowed(&limiter, "203.0.113.7", t0, 10), 10);
        assert_eq!(scope(limiter.check(client, t0)), Some(Scope::Address));
        // 10,000 new sources over 100 ms: every one is allowed (its buckets are new), the table
        // never grows, and the limited client's buckets, far from full, are never the victims.
        for n in 0..10_000 {
            let now = t0 + Duration::from_micros(10 * u64::from(n));
            assert_eq!(limiter.check(sprayed(n), now), Decision::Allow);
            assert!(limiter.tracked() <= 64);
        }
        assert_eq!(limiter.tracked(), 64);
        assert_eq!(
            limiter.check(client, t0 + ms(100)),
            Decision::Limited {
                retry_after: ms(900),
                scope: Scope::Address
            }
        );
        // Buckets that have refilled go first: after a rest, a new source evicts one of
        // those, not the client's.
        let rested = t0 + Duration::from_secs(1);
        assert_eq!(limiter.check(ip("198.51.100.1"), rested), Decision::Allow);
        assert_eq!(allowed(&limiter, "203.0.113.7", rested, 10), 1);
    }

    #[test]
    fn spraying_many_shards_never_reallocates() {
        let mut c = config(1.0, 10, 5.0, 50);
        c.max_tracked = 1000;
        let limiter = RateLimiter::new(&c).unwrap();
        assert_eq!(limiter.shards.len(), 8);
        let sizes = |l: &RateLimiter| {
            l.shards
                .iter()
                .map(|s| {
                    let s = s.lock().unwrap();
                    (s.slots.capacity(), s.index.allocation_size())
                })
                .collect::<Vec<_>>()
        };
        let before = sizes(&limiter);
        // What the default's "about 14 MB" counts on.
        assert_eq!(size_of::<Slot>(), 32);
        let t0 = Instant::now();
        // Five rounds over the same sources at the same time: tombstones pile up in the index
        // and must be cleared in place.
        for round in 0..5 {
            for n in 0..10_000 {
                limiter.check(sprayed(n + round * 10_000), t0);
            }
            assert!(limiter.tracked() <= 1000);
        }
        assert_eq!(sizes(&limiter), before);
        // Every slot is indexed under its own key.
        for shard in limiter.shards.iter() {
            let shard = shard.lock().unwrap();
            assert_eq!(shard.index.len(), shard.slots.len());
            for (i, slot) in shard.slots.iter().enumerate() {
                assert_eq!(shard.find(&limiter.index_hasher, &slot.key), Some(i));
            }
        }
    }

    #[test]
    fn shared_by_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<RateLimiter>();
        let limiter = RateLimiter::new(&config(1.0, 100, 1.0, 1000)).unwrap();
        let t0 = Instant::now();
        let total: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| allowed(&limiter, "192.0.2.1", t0, 1000)))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        // Exactly the burst, however the threads interleave.
        assert_eq!(total, 100);
    }
}
