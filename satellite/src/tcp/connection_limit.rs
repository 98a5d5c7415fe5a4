//! Concurrent connections per client address, for the TCP edges (Whois, RDAP, DNS): one address
//! cannot take every connection slot by opening connections and sending nothing (each is then
//! held until its timeout). The rate limit counts requests; this counts open connections.
//!
//! Addresses are counted as the rate limit keys them: an IPv4 address (IPv4-mapped IPv6
//! included) on its own, IPv6 by its /64 (one subscriber's network). An address holds a count
//! only while it has connections open, so the table never holds more entries than the edge has
//! connection slots; it is sized for them up front and sharded to keep the accept loops of
//! several listeners from waiting on one lock.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use hashbrown::HashMap;

const SHARDS: usize = 16;

/// Connections per address when the configuration says nothing: more than an interactive
/// user or a browser opens, few enough that one address holds a small share of the default
/// 1,024 slots.
pub const DEFAULT_PER_ADDRESS: u32 = 32;

/// Open connections per client address, at most `max` each.
pub struct PerAddress {
    max: u32,
    shards: Box<[Mutex<HashMap<u128, u32>>]>,
}

/// One open connection of an address; dropping it gives the slot back.
pub struct AddressSlot {
    owner: Arc<PerAddress>,
    key: u128,
}

impl PerAddress {
    /// At most `max` connections per address; `capacity`: the edge's connection slots (the
    /// table never holds more entries).
    pub fn new(max: u32, capacity: usize) -> Arc<Self> {
        let per_shard = capacity.div_ceil(SHARDS).min(1 << 16);
        Arc::new(Self {
            max,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_capacity(per_shard)))
                .collect(),
        })
    }

    /// A slot for one more connection from `ip`, or `None` when it already has `max` open.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let key = key(ip);
        let mut counts = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            if *count == 0 {
                // `max` is 0: nothing is ever allowed; leave no entry behind.
                counts.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            owner: Arc::clone(self),
            key,
        })
    }

    fn shard(&self, key: u128) -> &Mutex<HashMap<u128, u32>> {
        // Multiplicative hashing of both halves: IPv4 keys vary in their low bits, IPv6 /64s
        // anywhere in their high half (often not in its lowest bits: a /48 or /56 customer).
        let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(17);
        let mixed = folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60;
        &self.shards[mixed as usize % SHARDS]
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self
            .owner
            .shard(self.key)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The counting key: IPv4 as its IPv4-mapped address, IPv6 by its /64 (low half zero, so it
/// never equals a mapped address, whose low half holds `ffff`).
fn key(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6) & !u128::from(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Connections `ip` has open.
    fn open(limit: &PerAddress, ip: IpAddr) -> u32 {
        let key = key(ip);
        let counts = limit.shard(key).lock().unwrap();
        counts.get(&key).copied().unwrap_or(0)
    }

    #[test]
    fn at_most_max_per_address_and_slots_come_back() {
        let limit = PerAddress::new(2, 64);
        let a = limit.try_acquire(ip("192.0.2.1")).unwrap();
        let _b = limit.try_acquire(ip("192.0.2.1")).unwrap();
        assert!(limit.try_acquire(ip("192.0.2.1")).is_none());
        // Another address has its own count.
        let _c = limit.try_acquire(ip("192.0.2.2")).unwrap();
        assert_eq!(open(&limit, ip("192.0.2.1")), 2);
        drop(a);
        assert_eq!(open(&limit, ip("192.0.2.1")), 1);
        assert!(limit.try_acquire(ip("192.0.2.1")).is_some());
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let limit = PerAddress::new(1, 64);
        let _a = limit.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        assert!(limit.try_acquire(ip("2001:db8:1:2::ffff")).is_none());
        assert!(limit.try_acquire(ip("2001:db8:1:3::1")).is_some());
        let _v4 = limit.try_acquire(ip("::ffff:192.0.2.9")).unwrap();
        assert!(limit.try_acquire(ip("192.0.2.9")).is_none());
        // IPv4 addresses and the /64 they would fall in as IPv6 are counted apart.
        assert!(limit.try_acquire(ip("::1")).is_some());
        assert!(limit.try_acquire(ip("0.0.0.1")).is_some());
    }

    #[test]
    fn entries_go_when_their_connections_do() {
        let limit = PerAddress::new(3, 64);
        let slots: Vec<_> = (0..200u32)
            .filter_map(|i| limit.try_acquire(IpAddr::from(i.to_be_bytes())))
            .collect();
        assert_eq!(slots.len(), 200);
        let entries =
            |l: &PerAddress| -> usize { l.shards.iter().map(|s| s.lock().unwrap().len()).sum() };
        assert_eq!(entries(&limit), 200);
        drop(slots);
        assert_eq!(entries(&limit), 0);
        let none = PerAddress::new(0, 64);
        assert!(none.try_acquire(ip("192.0.2.1")).is_none());
        assert_eq!(entries(&none), 0);
    }
}
