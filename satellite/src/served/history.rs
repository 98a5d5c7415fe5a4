//! The IXFR window: per zone, the record-level differences between consecutive served
//! serials, for the last `window` serials (RFC 1995 §4 "condensed" per serial: a record added
//! and removed within one batch is in neither list).
//!
//! A difference is computed when a batch is applied ([`super::ServedStore::apply`]), on the
//! applying thread, from the version before and the version after it, for the owner names the
//! batch can have changed in each zone:
//!
//! - a domain (changed or removed): its delegation, and the in-zone hosts its old and new
//!   nameservers name (the publication rule publishes a host while something refers to it);
//! - a host: its addresses at its name;
//! - a zone: its apex NS RRset, and the hosts its old and new nameservers name;
//! - every zone whose serial moved gets its SOA pair, even when no record changed (a
//!   Whois-only change to a domain moves its zone's serial: RFC 1995 allows an empty
//!   difference).
//!
//! It travels with the version ([`super::Served::history`]), so a transfer that took a version
//! reads the differences that lead exactly to it. Versions share the lists: a batch copies the
//! list of each zone whose serial it moved (at most `window` pointers) and nothing else. A
//! snapshot replacing the state starts an empty window (clients then get AXFR-style answers).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use hashbrown::HashMap;
use orrery_proto::{Change, ChangeBatch};

use crate::xfr::stream::OwnedRecord;
use crate::zone::{ZoneData, ZoneSet};

/// The differences of one serial of one zone.
#[derive(Debug, PartialEq, Eq)]
pub struct Diff {
    pub from: u32,
    pub to: u32,
    pub old_soa: OwnedRecord,
    pub new_soa: OwnedRecord,
    pub deleted: Vec<OwnedRecord>,
    pub added: Vec<OwnedRecord>,
}

/// One zone's window, oldest first.
type Window = Arc<VecDeque<Arc<Diff>>>;

/// The window of every zone (by canonical apex), shared between versions.
#[derive(Clone, Debug, Default)]
pub struct History {
    zones: Arc<HashMap<Box<[u8]>, Window>>,
}

impl History {
    /// The differences from serial `from` to `current` of the zone at `apex`, oldest first;
    /// `None` when the window does not reach back to `from` (the caller answers AXFR-style).
    pub fn since(&self, apex: &[u8], from: u32, current: u32) -> Option<Vec<Arc<Diff>>> {
        chain_since(self.zones.get(apex)?, from, current)
    }

    /// Serials kept for the zone at `apex`.
    pub fn len(&self, apex: &[u8]) -> usize {
        self.zones.get(apex).map_or(0, |l| l.len())
    }

    /// Adds the differences `batch` made between `old` and `new`, keeping at most `window`
    /// per zone.
    pub fn record(&mut self, old: &ZoneSet, new: &ZoneSet, batch: &ChangeBatch, window: usize) {
        let names = touched_names(old, batch);
        let mut zones = HashMap::with_capacity(new.zones().len());
        for zone in new.zones() {
            let kept = self.zones.get(&zone.apex).cloned();
            let Some(before) = old.zone(&zone.apex_name) else {
                continue; // a new zone: its window starts at its next serial
            };
            if before.serial == zone.serial {
                if let Some(kept) = kept {
                    zones.insert(zone.apex.clone(), kept);
                }
                continue;
            }
            let diff = zone_diff(old, before, new, zone, &names);
            let mut list: VecDeque<Arc<Diff>> = kept.map(|l| (*l).clone()).unwrap_or_default();
            list.push_back(Arc::new(diff));
            while list.len() > window {
                list.pop_front();
            }
            zones.insert(zone.apex.clone(), Arc::new(list));
        }
        self.zones = Arc::new(zones);
    }
}

/// The differences of `list` (oldest first) from serial `from` to `current`, when they
/// chain serial to serial; `None` when `list` does not reach back to `from`. Shared by the
/// zones' windows and the catalog's ([`crate::xfr::catalog`]).
pub fn chain_since(list: &VecDeque<Arc<Diff>>, from: u32, current: u32) -> Option<Vec<Arc<Diff>>> {
    let start = list.iter().position(|d| d.from == from)?;
    let diffs: Vec<Arc<Diff>> = list.iter().skip(start).cloned().collect();
    let chained = diffs.windows(2).all(|w| w[0].to == w[1].from);
    (chained && diffs.last().is_some_and(|d| d.to == current)).then_some(diffs)
}

/// Owner names (canonical wire) whose records `batch` may have changed, and whether apex
/// records may have (a zone object in the batch).
struct Touched {
    names: BTreeSet<Box<[u8]>>,
}

fn touched_names(old: &ZoneSet, batch: &ChangeBatch) -> Touched {
    let mut names = BTreeSet::new();
    let mut add = |n: &[u8]| {
        names.insert(Box::<[u8]>::from(n));
    };
    // The nameservers the old version's delegation (or apex) at `name` names.
    let old_ns = |name: &[u8], add: &mut dyn FnMut(&[u8])| {
        if let Some(zone) = old.find_zone(name) {
            if *zone.apex == *name {
                for &id in &zone.apex_ns {
                    add(old.hosts.get(id).name);
                }
            } else if let Some(d) = zone.delegation(name) {
                for id in d.ns() {
                    add(old.hosts.get(id).name);
                }
            }
        }
    };
    for change in &batch.changes {
        match change {
            Change::Domain(d) => {
                add(d.name.as_wire());
                old_ns(d.name.as_wire(), &mut add);
                for ns in &d.nameservers {
                    add(ns.as_wire());
                }
            }
            Change::DomainRemoved(name) => {
                add(name.as_wire());
                old_ns(name.as_wire(), &mut add);
            }
            Change::Host(h) => add(h.name.as_wire()),
            Change::HostRemoved(name) => add(name.as_wire()),
            Change::Zone(z) => {
                old_ns(z.name.as_wire(), &mut add);
                for ns in &z.nameservers {
                    add(ns.as_wire());
                }
            }
            // The owner of a DNSSEC set (an RRSIG's, or a hashed NSEC3 owner).
            Change::Dnssec(r) => add(r.id.owner.as_wire()),
            Change::DnssecRemoved(id) => add(id.owner.as_wire()),
            Change::ZoneRemoved(_)
            | Change::Contact(_)
            | Change::ContactRemoved(_)
            | Change::Registrar(_)
            | Change::RegistrarRemoved(_) => {}
        }
    }
    Touched { names }
}

fn zone_diff(
    old: &ZoneSet,
    before: &ZoneData,
    new: &ZoneSet,
    after: &ZoneData,
    touched: &Touched,
) -> Diff {
    let collect = |set: &ZoneSet, zone: &ZoneData| {
        let mut out = BTreeSet::new();
        set.apex_ns_records(zone, &mut |r| {
            out.insert(OwnedRecord::of(&r));
        });
        // The apex's DNSSEC sets: the RRSIG over the SOA changes with every serial.
        set.dnssec_records_at(zone, &zone.apex, &mut |r| {
            out.insert(OwnedRecord::of(&r));
        });
        for name in &touched.names {
            if name.len() != zone.apex.len() && zone.contains(name) {
                set.records_at(zone, name, |r| {
                    out.insert(OwnedRecord::of(&r));
                });
            }
        }
        out
    };
    let was = collect(old, before);
    let is = collect(new, after);
    Diff {
        from: before.serial,
        to: after.serial,
        old_soa: OwnedRecord::of(&old.soa_record(before)),
        new_soa: OwnedRecord::of(&new.soa_record(after)),
        deleted: was.difference(&is).cloned().collect(),
        added: is.difference(&was).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use orrery_proto::Serial;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::zone::tests::{domain, host, n, sample, zone};

    /// Every record of the zone at `apex`, SOA left out.
    fn all(set: &ZoneSet, apex: &str) -> BTreeSet<OwnedRecord> {
        let mut out = BTreeSet::new();
        set.records(n(apex).as_wire(), |r| {
            if r.data.rtype() != crate::dns::wire::rtype::SOA {
                out.insert(OwnedRecord::of(&r));
            }
        });
        out
    }

    fn batch(after: Serial, changes: Vec<Change>) -> ChangeBatch {
        ChangeBatch {
            after,
            upto: after + 1,
            changes,
        }
    }

    /// Random batches of domain, host and zone changes: each recorded difference is exactly
    /// the difference of the whole zone before and after (the ground truth the touched-names
    /// shortcut must match), and the window chains serial to serial.
    #[test]
    fn differences_equal_whole_zone_differences() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let mut set = sample();
        let mut history = History::default();
        let names = ["foo.tld", "bar.tld", "new.tld", "signed.tld", "x.tld"];
        let hosts = [
            "ns1.foo.tld",
            "ns2.foo.tld",
            "ns.new.tld",
            "a.nic.tld",
            "ns.ext.example",
        ];
        for step in 0..300u32 {
            let mut changes = Vec::new();
            for _ in 0..rng.random_range(1..4) {
                let name = names[rng.random_range(0..names.len())];
                let ns: Vec<&str> = (0..rng.random_range(0..3))
                    .map(|_| hosts[rng.random_range(0..hosts.len())])
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                changes.push(match rng.random_range(0..6) {
                    0 => Change::DomainRemoved(n(name)),
                    1 | 2 => Change::Domain(domain(name, "tld", &ns)),
                    3 => {
                        let h = hosts[rng.random_range(0..hosts.len())];
                        let last = step % 250;
                        Change::Host(host(h, &[&format!("192.0.2.{last}")]))
                    }
                    4 => Change::HostRemoved(n(hosts[rng.random_range(0..hosts.len())])),
                    _ => {
                        let mut apex_ns = vec!["a.nic.tld"];
                        if rng.random_bool(0.5) {
                            apex_ns.push("ns1.foo.tld");
                        }
                        Change::Zone(zone("tld", &apex_ns))
                    }
                });
            }
            let before = set.clone();
            let b = batch(set.serial, changes);
            set.apply(&b).unwrap();
            history.record(&before, &set, &b, 20);
            let (was, is) = (all(&before, "tld"), all(&set, "tld"));
            let tld = n("tld");
            let (from, to) = (
                before.zone(&tld).unwrap().serial,
                set.zone(&tld).unwrap().serial,
            );
            let diffs = history
                .since(tld.as_wire(), from, to)
                .expect("the last serial");
            let d = diffs.last().unwrap();
            assert_eq!((d.from, d.to), (from, to));
            let deleted: BTreeSet<_> = was.difference(&is).cloned().collect();
            let added: BTreeSet<_> = is.difference(&was).cloned().collect();
            assert_eq!(
                d.deleted.iter().cloned().collect::<BTreeSet<_>>(),
                deleted,
                "step {step}"
            );
            assert_eq!(
                d.added.iter().cloned().collect::<BTreeSet<_>>(),
                added,
                "step {step}"
            );
        }
        assert_eq!(history.len(n("tld").as_wire()), 20, "the window is bounded");
        let to = set.zone(&n("tld")).unwrap().serial;
        assert_eq!(
            history
                .since(n("tld").as_wire(), to - 20, to)
                .unwrap()
                .len(),
            20
        );
        assert!(
            history.since(n("tld").as_wire(), to - 21, to).is_none(),
            "outside"
        );
    }
}
