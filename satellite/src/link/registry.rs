//! The registry objects a satellite holds, in model form, beside the query-optimised
//! [`ZoneSet`](crate::ZoneSet).
//!
//! The zone set keeps only what DNS answers need, so it cannot be written back to a snapshot
//! file nor tell which objects a fresh master snapshot no longer holds. This copy can: it is a
//! [`SnapshotData`] (so [`crate::snapshot::encode`] reads it as is, without a clone) plus an
//! index from name to position, kept up to date by every batch.
//!
//! Contacts and registrars are dropped: snapshot format version 1 has no room for them
//! (issue 5).

use std::collections::HashMap;

use orrery_proto::{Change, ChangeBatch, Name, Serial};

use crate::snapshot::SnapshotData;

/// The objects held, at one serial.
#[derive(Debug, Default)]
pub struct Registry {
    data: SnapshotData,
    zone_at: HashMap<Name, usize>,
    domain_at: HashMap<Name, usize>,
    host_at: HashMap<Name, usize>,
}

/// Upserts `item` into `list` by name, keeping `index` right.
fn put<T>(list: &mut Vec<T>, index: &mut HashMap<Name, usize>, name: &Name, item: T) {
    match index.get(name) {
        Some(&i) => list[i] = item,
        None => {
            index.insert(name.clone(), list.len());
            list.push(item);
        }
    }
}

/// Removes `name` from `list` (swap-remove, so the moved item's index is fixed up).
fn remove<T>(
    list: &mut Vec<T>,
    index: &mut HashMap<Name, usize>,
    name: &Name,
    key: fn(&T) -> &Name,
) {
    let Some(i) = index.remove(name) else {
        return;
    };
    list.swap_remove(i);
    if let Some(moved) = list.get(i) {
        index.insert(key(moved).clone(), i);
    }
}

impl Registry {
    /// Takes over a snapshot's data (from the state file). Later duplicates of a name win.
    pub fn from_snapshot(data: SnapshotData) -> Self {
        let mut me = Self {
            data: SnapshotData {
                serial: data.serial,
                ..SnapshotData::default()
            },
            ..Self::default()
        };
        let changes = data
            .zones
            .into_iter()
            .map(Change::Zone)
            .chain(data.hosts.into_iter().map(Change::Host))
            .chain(data.domains.into_iter().map(Change::Domain));
        for c in changes {
            me.put_change(c);
        }
        me
    }

    /// The data, ready to encode.
    pub fn data(&self) -> &SnapshotData {
        &self.data
    }

    /// The serial the objects reflect.
    pub fn serial(&self) -> Serial {
        self.data.serial
    }

    /// Zones, domains and hosts held.
    pub fn len(&self) -> usize {
        self.data.zones.len() + self.data.domains.len() + self.data.hosts.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn put_change(&mut self, change: Change) {
        let d = &mut self.data;
        match change {
            Change::Zone(z) => put(&mut d.zones, &mut self.zone_at, &z.name.clone(), z),
            Change::Domain(x) => put(&mut d.domains, &mut self.domain_at, &x.name.clone(), x),
            Change::Host(h) => put(&mut d.hosts, &mut self.host_at, &h.name.clone(), h),
            Change::ZoneRemoved(n) => remove(&mut d.zones, &mut self.zone_at, &n, |z| &z.name),
            Change::DomainRemoved(n) => {
                remove(&mut d.domains, &mut self.domain_at, &n, |x| &x.name);
            }
            Change::HostRemoved(n) => remove(&mut d.hosts, &mut self.host_at, &n, |h| &h.name),
            // Not in snapshot format version 1 (issue 5).
            Change::Contact(_)
            | Change::ContactRemoved(_)
            | Change::Registrar(_)
            | Change::RegistrarRemoved(_) => {}
        }
    }

    /// Applies a batch that follows this state (the caller checked `batch.after`).
    pub fn apply(&mut self, batch: &ChangeBatch) {
        for c in &batch.changes {
            self.put_change(c.clone());
        }
        self.data.serial = batch.upto;
    }

    /// Replaces the whole state with a master snapshot's objects, and returns the batch that
    /// takes a zone set from the old state to the new one: every object of the snapshot as an
    /// upsert, then a removal for every object the snapshot no longer holds. Applied to the
    /// [`ZoneStore`](crate::ZoneStore) as one batch, the switch is atomic for queries.
    pub fn replace(&mut self, serial: Serial, objects: Vec<Change>) -> ChangeBatch {
        let old = std::mem::take(self);
        let mut new = Self {
            data: SnapshotData {
                serial,
                ..SnapshotData::default()
            },
            ..Self::default()
        };
        let mut changes = Vec::with_capacity(objects.len());
        for c in objects {
            if matches!(c, Change::Zone(_) | Change::Domain(_) | Change::Host(_)) {
                changes.push(c.clone());
                new.put_change(c);
            }
        }
        // Removals in the order domains, hosts, zones: the reverse of creation.
        for d in &old.data.domains {
            if !new.domain_at.contains_key(&d.name) {
                changes.push(Change::DomainRemoved(d.name.clone()));
            }
        }
        for h in &old.data.hosts {
            if !new.host_at.contains_key(&h.name) {
                changes.push(Change::HostRemoved(h.name.clone()));
            }
        }
        for z in &old.data.zones {
            if !new.zone_at.contains_key(&z.name) {
                changes.push(Change::ZoneRemoved(z.name.clone()));
            }
        }
        *self = new;
        ChangeBatch {
            after: old.data.serial,
            upto: serial,
            changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::tests::{domain, host, n};

    fn names(r: &Registry) -> (Vec<String>, Vec<String>) {
        let mut d: Vec<String> = r.data.domains.iter().map(|x| x.name.to_string()).collect();
        let mut h: Vec<String> = r.data.hosts.iter().map(|x| x.name.to_string()).collect();
        d.sort();
        h.sort();
        (d, h)
    }

    #[test]
    fn batches_upsert_and_remove_by_name() {
        let mut r = Registry::default();
        r.apply(&ChangeBatch {
            after: 0,
            upto: 5,
            changes: vec![
                Change::Host(host("ns.a.tld", &["192.0.2.1"])),
                Change::Domain(domain("a.tld", "tld", &["ns.a.tld"])),
                Change::Domain(domain("b.tld", "tld", &["ns.a.tld"])),
                Change::Domain(domain("c.tld", "tld", &["ns.a.tld"])),
            ],
        });
        r.apply(&ChangeBatch {
            after: 5,
            upto: 6,
            changes: vec![
                Change::DomainRemoved(n("a.tld")),
                Change::Domain(domain("c.tld", "tld", &[])),
                Change::DomainRemoved(n("zzz.tld")),
            ],
        });
        assert_eq!(r.serial(), 6);
        assert_eq!(names(&r).0, ["b.tld", "c.tld"]);
        // The index follows the swap-remove.
        let at = r.domain_at[&n("c.tld")];
        assert!(r.data.domains[at].nameservers.is_empty());
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn replace_removes_what_the_snapshot_lacks() {
        let mut r = Registry::from_snapshot(SnapshotData {
            serial: 7,
            zones: vec![],
            domains: vec![domain("a.tld", "tld", &[]), domain("b.tld", "tld", &[])],
            hosts: vec![host("ns.a.tld", &["192.0.2.1"])],
        });
        let batch = r.replace(9, vec![Change::Domain(domain("b.tld", "tld", &[]))]);
        assert_eq!((batch.after, batch.upto), (7, 9));
        assert!(batch.changes.contains(&Change::DomainRemoved(n("a.tld"))));
        assert!(batch.changes.contains(&Change::HostRemoved(n("ns.a.tld"))));
        assert_eq!(names(&r), (vec!["b.tld".to_owned()], vec![]));
        assert_eq!(r.serial(), 9);
    }
}
