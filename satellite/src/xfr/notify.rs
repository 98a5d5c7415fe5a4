//! NOTIFY (RFC 1996) to the configured secondaries when a zone's serial changes.
//!
//! One task per transfer service (started with the DNS server that serves its pipeline, and
//! stopped with it) watches the served version every [`WATCH`]:
//!
//! ```text
//!  a zone's SOA serial differs from the one last announced
//!    └─▶ per target: the pending NOTIFY of that zone is replaced by one for the new serial
//!        (coalesced: a secondary that cannot keep up hears the latest serial, not each one)
//!          └─▶ sent over UDP, TSIG-signed with the target's key; no answer (same id, QR,
//!              opcode NOTIFY) ─▶ again after a backoff (orrery_proto::backoff, 1 s doubling
//!              to 30 s, jittered), at most MAX_ATTEMPTS times, then a warning
//! ```
//!
//! The catalog zone ([`super::catalog`]) is announced like a zone when its serial moves (a zone
//! added or removed). Every zone is announced once when the task starts, so a secondary hears of a satellite
//! that restarted. Answers are matched by id and source; their TSIG is not checked (an answer
//! only stops the retries, it changes nothing else).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashMap;
use orrery_proto::backoff::Backoff;
use orrery_proto::link::NotifyTarget;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::tsig::{self, Key, Signer};
use crate::dns::wire::{class, rtype};
use crate::served::ServedStore;

/// How often the served version is compared with what was announced.
pub const WATCH: Duration = Duration::from_millis(200);
/// Sends of one NOTIFY before giving up (RFC 1996 §3.6 suggests a few).
pub const MAX_ATTEMPTS: u32 = 5;

/// A NOTIFY waiting for its answer.
struct Pending {
    id: u16,
    serial: u32,
    attempts: u32,
    next: Instant,
}

/// Announces serial changes of `served` to `targets` until `cancel`.
pub async fn run(
    served: Arc<ServedStore>,
    targets: Vec<(NotifyTarget, Option<Arc<Key>>)>,
    cancel: CancellationToken,
) {
    if targets.is_empty() {
        return;
    }
    let bind = |v6: bool| {
        let addr: SocketAddr = if v6 { "[::]:0" } else { "0.0.0.0:0" }.parse().unwrap();
        UdpSocket::bind(addr)
    };
    let (v4, v6) = (bind(false).await, bind(true).await);
    let backoff = Backoff::capped(Duration::from_secs(1), Duration::from_secs(30));
    let mut announced: HashMap<Box<[u8]>, u32> = HashMap::new();
    // (target index, apex) → the NOTIFY in flight.
    let mut pending: HashMap<(usize, Box<[u8]>), Pending> = HashMap::new();
    let mut buf = vec![0u8; 4096];
    let mut tick = tokio::time::interval(WATCH);
    loop {
        let socket_of = |t: &NotifyTarget| if t.address.is_ipv6() { &v6 } else { &v4 };
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
            got = recv_any(&v4, &v6, &mut buf) => {
                if let Some((len, from)) = got
                    && let Some(id) = notify_answer_id(&buf[..len])
                {
                    pending.retain(|(i, _), p| !(p.id == id && targets[*i].0.address == from));
                }
                continue;
            }
        }
        let version = served.load();
        // The served zones and the catalog zone, when there is one.
        let catalog = version.catalog.as_ref().map(|c| (&c.apex, c.serial));
        let zones = version.zones.zones().iter().map(|z| (&z.apex, z.serial));
        for (apex, serial) in zones.chain(catalog) {
            if announced.get(apex) == Some(&serial) {
                continue;
            }
            announced.insert(apex.clone(), serial);
            for i in 0..targets.len() {
                pending.insert(
                    (i, apex.clone()),
                    Pending {
                        id: rand::random(),
                        serial,
                        attempts: 0,
                        next: Instant::now(),
                    },
                );
            }
        }
        announced.retain(|apex, _| {
            version.catalog.as_ref().is_some_and(|c| c.apex == *apex)
                || version
                    .zones
                    .find_zone(apex)
                    .is_some_and(|z| *z.apex == **apex)
        });
        drop(version);
        let now = Instant::now();
        let mut given_up = Vec::new();
        for ((i, apex), p) in pending.iter_mut() {
            if p.next > now {
                continue;
            }
            let (target, key) = &targets[*i];
            if p.attempts == MAX_ATTEMPTS {
                given_up.push((*i, apex.clone()));
                tracing::warn!(
                    secondary = %target.address,
                    serial = p.serial,
                    "NOTIFY not answered after {MAX_ATTEMPTS} attempts; the secondary will find the serial at its refresh"
                );
                continue;
            }
            let msg = message(p.id, apex, p.serial, key.as_ref());
            if let Ok(sock) = socket_of(target)
                && let Err(e) = sock.send_to(&msg, target.address).await
            {
                tracing::debug!(secondary = %target.address, error = %e, "NOTIFY not sent");
            }
            p.attempts += 1;
            p.next = now + Backoff::jitter(backoff.step(p.attempts, None), &mut rand::rng());
        }
        for k in given_up {
            pending.remove(&k);
        }
    }
}

/// The next datagram on either socket (one that failed to bind is never ready).
async fn recv_any(
    v4: &std::io::Result<UdpSocket>,
    v6: &std::io::Result<UdpSocket>,
    buf: &mut [u8],
) -> Option<(usize, SocketAddr)> {
    let (a, b) = buf.split_at_mut(buf.len() / 2);
    let got = tokio::select! {
        r = recv_one(v4, a) => r.map(|(n, f)| (n, f, false)),
        r = recv_one(v6, b) => r.map(|(n, f)| (n, f, true)),
    }?;
    let (n, from, second) = got;
    if second {
        buf.copy_within(buf.len() / 2..buf.len() / 2 + n, 0);
    }
    Some((n, from))
}

async fn recv_one(s: &std::io::Result<UdpSocket>, b: &mut [u8]) -> Option<(usize, SocketAddr)> {
    match s {
        Ok(s) => s.recv_from(b).await.ok(),
        Err(_) => std::future::pending().await,
    }
}

/// A NOTIFY for the zone at `apex` (canonical wire) with its new SOA serial in the answer
/// section (RFC 1996 §3.7: a hint the secondary may use), signed with `key`.
pub fn message(id: u16, apex: &[u8], serial: u32, key: Option<&Arc<Key>>) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + apex.len() + tsig::TSIG_ROOM);
    m.extend_from_slice(&id.to_be_bytes());
    // Opcode NOTIFY (4), AA (RFC 1996 §3.7).
    m.extend_from_slice(&[4 << 3 | 0x04, 0, 0, 1, 0, 1, 0, 0, 0, 0]);
    m.extend_from_slice(apex);
    m.extend_from_slice(&rtype::SOA.to_be_bytes());
    m.extend_from_slice(&class::IN.to_be_bytes());
    // The answer: the SOA at the apex (a pointer to the question), its serial only: mname
    // and rname as the root, the timers zero (the secondary reads the serial alone).
    m.extend_from_slice(&[0xC0, 12]);
    m.extend_from_slice(&rtype::SOA.to_be_bytes());
    m.extend_from_slice(&class::IN.to_be_bytes());
    m.extend_from_slice(&0u32.to_be_bytes());
    m.extend_from_slice(&22u16.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&serial.to_be_bytes());
    m.extend_from_slice(&[0; 16]);
    if let Some(k) = key {
        Signer::for_request(Arc::clone(k), id).sign(&mut m, tsig::now(), 0, &[]);
    }
    m
}

/// The id of an answer to a NOTIFY (QR set, opcode NOTIFY), whatever its RCODE: a secondary
/// that refuses will refuse again.
fn notify_answer_id(msg: &[u8]) -> Option<u16> {
    let h = msg.get(..4)?;
    (h[2] & 0x80 != 0 && (h[2] >> 3) & 0x0F == 4).then(|| u16::from_be_bytes([h[0], h[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NOTIFY parses as one (hickory), carries the serial, and its TSIG verifies.
    #[test]
    fn notify_messages_are_well_formed_and_signed() {
        let key = Arc::new(Key::new(&orrery_proto::link::TsigKey {
            name: orrery_proto::Name::from_ascii("k1").unwrap(),
            algorithm: orrery_proto::link::TsigAlgorithm::HmacSha256,
            secret: vec![1; 32],
        }));
        let apex = orrery_proto::Name::from_ascii("tld").unwrap();
        let m = message(7, apex.as_wire(), 2026, Some(&key));
        let t = tsig::find(&m).unwrap().unwrap();
        assert!(tsig::verify(&[Arc::clone(&key)], &m, &t, tsig::now()).is_ok());
        let plain = message(7, apex.as_wire(), 2026, None);
        let parsed = hickory_proto::op::Message::from_vec(&plain).unwrap();
        assert_eq!(u8::from(parsed.op_code), 4);
        let hickory_proto::rr::RData::SOA(soa) = &parsed.answers[0].data else {
            panic!("no SOA");
        };
        assert_eq!(soa.serial, 2026);
        let mut answer = plain.clone();
        answer[2] |= 0x80;
        assert_eq!(notify_answer_id(&answer), Some(7));
        assert_eq!(notify_answer_id(&plain), None);
    }
}
