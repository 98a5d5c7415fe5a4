//! The versions of the zone set that queries see, and atomic batch application.
//!
//! # Why a double buffer
//! A query must see a whole batch or none of it, and applying a batch must not stall queries.
//! Copying a million-delegation table per batch would take far too long, and a persistent map
//! would cost memory and lookup speed on every query. So the store keeps *two* copies of the
//! [`ZoneSet`] (left-right / RCU style):
//!
//! ```text
//!             readers: ArcSwap::load (lock-free, no allocation)
//!                          │
//!   current ──────────► ZoneSet v(n)          spare ──► ZoneSet v(n-1)
//!                                                  │ 1. wait until no reader holds it
//!                                                  │ 2. replay batch n (the log)
//!                                                  │ 3. apply batch n+1
//!                                                  ▼
//!   current ◄── swap ── ZoneSet v(n+1)        spare ──► ZoneSet v(n)  (log = [batch n+1])
//! ```
//!
//! Queries hold a version only for the microseconds of one answer, so step 1 is short.
//! Applying costs twice the size of the batch, never the size of the zone; the price is twice
//! the memory of the zone data. Readers never take a lock: the only lock serialises writers.
//!
//! # The spare is made lazily
//! Cloning a million-delegation set takes seconds, and a satellite booting from a snapshot
//! need not wait for it to answer queries. So [`ZoneStore::new`] keeps only the current
//! version; [`ZoneStore::prepare_spare`] clones it (call it in the background once serving),
//! and [`ZoneStore::apply`] clones it itself if a batch comes first. Either way the clone is
//! made under the writer lock from the current version, which cannot change meanwhile, and
//! is private until the swap: a batch stays atomic. The price: a batch that arrives before
//! the spare is ready waits for the clone, and the memory of the second copy is taken a few
//! seconds after serving starts rather than before.

use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};
use orrery_proto::ChangeBatch;

use super::{ZoneError, ZoneSet};

/// The zone set shared by every worker.
pub struct ZoneStore {
    current: ArcSwap<ZoneSet>,
    writer: Mutex<Writer>,
}

struct Writer {
    /// `None` until [`ZoneStore::prepare_spare`] or the first [`ZoneStore::apply`] clones the
    /// current version; `log` is empty then.
    spare: Option<Arc<ZoneSet>>,
    /// Batches applied to `current` but not yet to `spare`.
    log: Vec<ChangeBatch>,
}

impl ZoneStore {
    /// Starts from `set`, without the spare copy (see the module docs).
    pub fn new(set: ZoneSet) -> Self {
        Self {
            current: ArcSwap::from_pointee(set),
            writer: Mutex::new(Writer {
                spare: None,
                log: Vec::new(),
            }),
        }
    }

    /// Clones the current version into the spare copy unless it exists; returns true if it
    /// made one. Takes as long as the clone, and holds the writer lock meanwhile (batches wait,
    /// queries do not).
    pub fn prepare_spare(&self) -> bool {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if writer.spare.is_some() {
            return false;
        }
        writer.spare = Some(self.clone_current());
        writer.log.clear();
        true
    }

    /// True once the spare copy exists.
    pub fn has_spare(&self) -> bool {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spare
            .is_some()
    }

    /// A private copy of the current version. The caller holds the writer lock, so the
    /// current version does not change during the copy.
    fn clone_current(&self) -> Arc<ZoneSet> {
        let current = self.current.load_full();
        Arc::new(ZoneSet::clone(&current))
    }

    /// The current version, for one query. Lock-free and allocation-free. Drop the guard
    /// when the query is answered: [`ZoneStore::apply`] waits for the readers of the version
    /// it is about to reuse, so a guard kept across two batches stalls the writer.
    pub fn load(&self) -> Guard<Arc<ZoneSet>> {
        self.current.load()
    }

    /// The serial of the current version.
    pub fn serial(&self) -> i64 {
        self.current.load().serial
    }

    /// Applies `batch` atomically: queries see the new version all at once when this returns.
    pub fn apply(&self, batch: ChangeBatch) -> Result<(), ZoneError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current_serial = self.current.load().serial;
        if batch.after != current_serial {
            return Err(ZoneError::SerialGap {
                after: batch.after,
                current: current_serial,
            });
        }
        let mut spare = match writer.spare.take() {
            Some(spare) => spare,
            None => {
                // Everything applied so far is in the current version, hence in its copy.
                writer.log.clear();
                self.clone_current()
            }
        };
        // Readers of the previous version finish their one query; then the copy is ours.
        let set = loop {
            if let Some(set) = Arc::get_mut(&mut spare) {
                break set;
            }
            std::thread::yield_now();
        };
        for old in writer.log.drain(..) {
            set.apply_unchecked(&old);
        }
        set.apply_unchecked(&batch);
        let previous = self.current.swap(spare);
        writer.spare = Some(previous);
        writer.log.push(batch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::tests::{domain, host, n, sample};
    use orrery_proto::Change;

    #[test]
    fn batches_become_visible_whole() {
        let store = ZoneStore::new(sample());
        // A reader holding the old version across one batch still sees it whole. (Readers
        // hold a version for one query only: a writer waits for them before reusing it.)
        let held = store.load();
        for (i, serial) in (8..12).enumerate() {
            let name = format!("d{i}.tld");
            store
                .apply(ChangeBatch {
                    after: serial - 1,
                    upto: serial,
                    changes: vec![
                        Change::Host(host(&format!("ns.{name}"), &["192.0.2.77"])),
                        Change::Domain(domain(&name, "tld", &[&format!("ns.{name}")])),
                    ],
                })
                .unwrap();
            if serial == 8 {
                assert_eq!(held.serial, 7);
                assert!(
                    held.zone(&n("tld"))
                        .unwrap()
                        .delegation(n("d0.tld").as_wire())
                        .is_none()
                );
                assert_eq!(store.serial(), 8);
                drop(held);
                break;
            }
        }
        for (i, serial) in (9..12).enumerate() {
            let name = format!("d{}.tld", i + 1);
            store
                .apply(ChangeBatch {
                    after: serial - 1,
                    upto: serial,
                    changes: vec![
                        Change::Host(host(&format!("ns.{name}"), &["192.0.2.77"])),
                        Change::Domain(domain(&name, "tld", &[&format!("ns.{name}")])),
                    ],
                })
                .unwrap();
        }
        let now = store.load();
        assert_eq!(now.serial, 11);
        let z = now.zone(&n("tld")).unwrap();
        for i in 0..4 {
            let name = n(&format!("d{i}.tld"));
            assert!(z.delegation(name.as_wire()).is_some());
            assert!(z.node(n(&format!("ns.d{i}.tld")).as_wire()).is_some());
        }
        drop(now);
        assert!(store.apply(ChangeBatch::default()).is_err());
        // The spare copy caught up: one more batch and both copies agree.
        store
            .apply(ChangeBatch {
                after: 11,
                upto: 12,
                changes: vec![Change::DomainRemoved(n("d0.tld"))],
            })
            .unwrap();
        let now = store.load();
        let z = now.zone(&n("tld")).unwrap();
        assert!(z.delegation(n("d0.tld").as_wire()).is_none());
        assert!(z.delegation(n("d3.tld").as_wire()).is_some());
    }

    fn add(after: i64, name: &str) -> ChangeBatch {
        ChangeBatch {
            after,
            upto: after + 1,
            changes: vec![
                Change::Host(host(&format!("ns.{name}"), &["192.0.2.77"])),
                Change::Domain(domain(name, "tld", &[&format!("ns.{name}")])),
            ],
        }
    }

    fn delegated(set: &ZoneSet, name: &str) -> bool {
        let z = set.zone(&n("tld")).unwrap();
        let d = z.delegation(n(name).as_wire()).is_some();
        assert_eq!(d, z.node(n(&format!("ns.{name}")).as_wire()).is_some());
        d
    }

    #[test]
    fn first_batch_without_a_spare_is_atomic() {
        let store = ZoneStore::new(sample());
        assert!(!store.has_spare());
        // A reader holding the only version across the first batch sees it unchanged: the
        // batch went to a private copy, made by `apply` itself.
        let held = store.load();
        store.apply(add(7, "a.tld")).unwrap();
        assert!(store.has_spare());
        assert_eq!(held.serial, 7);
        assert!(!delegated(&held, "a.tld"));
        drop(held);
        let now = store.load();
        assert_eq!(now.serial, 8);
        assert!(delegated(&now, "a.tld"));
        drop(now);
        // The spare (the version before) catches up on the next batch.
        store.apply(add(8, "b.tld")).unwrap();
        store.apply(add(9, "c.tld")).unwrap();
        let now = store.load();
        assert_eq!(now.serial, 10);
        assert!(
            ["a.tld", "b.tld", "c.tld"]
                .iter()
                .all(|d| delegated(&now, d))
        );
        assert!(!store.prepare_spare(), "the spare exists already");
    }

    #[test]
    fn prepared_spare_serves_the_first_batch() {
        let store = ZoneStore::new(sample());
        assert!(store.prepare_spare());
        assert!(store.has_spare());
        store.apply(add(7, "a.tld")).unwrap();
        store.apply(add(8, "b.tld")).unwrap();
        let now = store.load();
        assert_eq!(now.serial, 9);
        assert!(delegated(&now, "a.tld") && delegated(&now, "b.tld"));
        // A gap is refused with or without a spare.
        assert!(ZoneStore::new(sample()).apply(add(3, "x.tld")).is_err());
    }

    #[test]
    fn readers_run_during_updates() {
        let store = Arc::new(ZoneStore::new(sample()));
        let reader = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..20000 {
                    let v = store.load();
                    assert!(v.serial >= last);
                    // The batch adds the host and the domain together: never one without the other.
                    let z = v.zone(&n("tld")).unwrap();
                    let d = z.delegation(n("x.tld").as_wire()).is_some();
                    let h = z.node(n("ns.x.tld").as_wire()).is_some();
                    assert_eq!(d, h);
                    last = v.serial;
                }
            })
        };
        for serial in 8..200 {
            let changes = if serial % 2 == 0 {
                vec![
                    Change::Host(host("ns.x.tld", &["192.0.2.1"])),
                    Change::Domain(domain("x.tld", "tld", &["ns.x.tld"])),
                ]
            } else {
                vec![Change::DomainRemoved(n("x.tld"))]
            };
            store
                .apply(ChangeBatch {
                    after: serial - 1,
                    upto: serial,
                    changes,
                })
                .unwrap();
        }
        reader.join().unwrap();
    }
}
