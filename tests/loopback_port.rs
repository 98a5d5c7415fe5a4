//! Spare loopback ports for the servers a test starts (a master, a satellite's DNS, Whois and
//! RDAP listeners, `named`, `nsd`, `knotd`, `unbound`).
//!
//! A port the kernel hands out for `bind(0)` comes from the ephemeral range
//! (`net.ipv4.ip_local_port_range`), the same range every outgoing connection takes its local
//! port from. Between the moment a test releases such a port and the moment its server binds
//! it, a connection elsewhere in the suite (a store pool, a replica's WAL stream, a satellite
//! dialling its master) may take it, and keep it for the rest of the test: CI saw a
//! satellite's DNS bind fail with `EADDRINUSE` for 60 s that way. Ports here come from below
//! the ephemeral range, which `connect` never picks, and one process never hands out the same
//! port twice, so two tests running side by side cannot collide either.

use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out: above the well-known and most registered service ports.
const LOWEST: u16 = 10_000;

/// The next candidate, as an offset from [`LOWEST`]. Starts at an offset taken from the
/// process id, so two test processes on one machine start in different places.
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A port free for both UDP and TCP on 127.0.0.1 now, outside the ephemeral range, and not
/// handed out before by this process.
///
/// # Panics
///
/// When no port in the range is free for both (the range holds over 20,000).
pub fn free_port() -> u16 {
    let span = u32::from(ephemeral_low().saturating_sub(LOWEST).max(1_000));
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(2_654_435_761) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = LOWEST + offset as u16;
        let udp = UdpSocket::bind(("127.0.0.1", port));
        if udp.is_ok() && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port between {LOWEST} and the ephemeral range is free");
}

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_handed_out_twice() {
        let low = ephemeral_low();
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        assert!(
            ports
                .iter()
                .all(|&p| (LOWEST..low.max(LOWEST + 1_000)).contains(&p))
        );
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
    }

    #[test]
    fn a_port_in_use_is_skipped() {
        let port = free_port();
        let _held = TcpListener::bind(("127.0.0.1", port + 1)).ok();
        let next = free_port();
        assert_ne!(next, port + 1);
    }
}
