//! The registry objects a satellite holds, in model form, beside the query-optimised
//! [`ZoneSet`](crate::ZoneSet).
//!
//! The zone set keeps only what DNS answers need, so it cannot be written back to a snapshot
//! file nor tell which objects a fresh master snapshot no longer holds. This copy can: it is a
//! [`SnapshotData`] (so [`crate::snapshot::encode`] reads it as is, without a clone) plus an
//! index from key to position per list, kept up to date by every batch: zones, domains and
//! hosts by name, contacts and registrars by handle. Contacts and registrars are kept (snapshot
//! format version 2) so that Whois and RDAP answer from the state file after a restart, as DNS
//! does.

use std::collections::HashMap;
use std::hash::Hash;

use orrery_proto::{Change, ChangeBatch, Name, Serial};

use crate::snapshot::SnapshotData;

/// The objects held, at one serial.
#[derive(Debug, Default)]
pub struct Registry {
    data: SnapshotData,
    zone_at: HashMap<Name, usize>,
    domain_at: HashMap<Name, usize>,
    host_at: HashMap<Name, usize>,
    contact_at: HashMap<String, usize>,
    registrar_at: HashMap<String, usize>,
}

/// Upserts `item` into `list` by its key (name or handle), keeping `index` right.
fn put<K: Hash + Eq + Clone, T>(
    list: &mut Vec<T>,
    index: &mut HashMap<K, usize>,
    key: &K,
    item: T,
) {
    match index.get(key) {
        Some(&i) => list[i] = item,
        None => {
            index.insert(key.clone(), list.len());
            list.push(item);
        }
    }
}

/// Removes the item with key `k` from `list` (swap-remove, so the moved item's index is fixed
/// up).
fn remove<K: Hash + Eq + Clone, T>(
    list: &mut Vec<T>,
    index: &mut HashMap<K, usize>,
    k: &K,
    key: fn(&T) -> &K,
) {
    let Some(i) = index.remove(k) else {
        return;
    };
    list.swap_remove(i);
    if let Some(moved) = list.get(i) {
        index.insert(key(moved).clone(), i);
    }
}

impl Registry {
    /// Takes over a snapshot's data (from the state file). Later duplicates of a name or handle
    /// win.
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
            .chain(data.domains.into_iter().map(Change::Domain))
            .chain(data.registrars.into_iter().map(Change::Registrar))
            .chain(data.contacts.into_iter().map(Change::Contact));
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

    /// Objects held: zones, domains, hosts, contacts and registrars.
    pub fn len(&self) -> usize {
        let d = &self.data;
        d.zones.len() + d.domains.len() + d.hosts.len() + d.contacts.len() + d.registrars.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty registry at `serial`, to be filled with [`Registry::put_change`]: a bare
    /// satellite's first snapshot, where [`Registry::replace`]'s diff would only be dropped.
    pub fn at(serial: Serial) -> Self {
        Self {
            data: SnapshotData {
                serial,
                ..SnapshotData::default()
            },
            ..Self::default()
        }
    }

    /// Upserts an object, or applies a removal, by its name or handle; the serial stays.
    pub fn put_change(&mut self, change: Change) {
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
            Change::Contact(c) => put(&mut d.contacts, &mut self.contact_at, &c.handle.clone(), c),
            Change::ContactRemoved(h) => {
                remove(&mut d.contacts, &mut self.contact_at, &h, |c| &c.handle);
            }
            Change::Registrar(r) => {
                put(
                    &mut d.registrars,
                    &mut self.registrar_at,
                    &r.handle.clone(),
                    r,
                );
            }
            Change::RegistrarRemoved(h) => {
                remove(&mut d.registrars, &mut self.registrar_at, &h, |r| &r.handle);
            }
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
    /// upsert (registrars and contacts first, so a consumer building tables sees them before
    /// the domains and hosts that refer to them; the snapshot's own order otherwise), then a
    /// removal for every object the snapshot no longer holds (domains, hosts, contacts,
    /// registrars, zones: referring objects before what they refer to). Removals in `objects`
    /// are ignored: a snapshot holds objects, not changes. Applied to the
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
        let (referred, rest): (Vec<_>, Vec<_>) = objects
            .into_iter()
            .filter(|c| !c.is_removal())
            .partition(|c| matches!(c, Change::Registrar(_) | Change::Contact(_)));
        for c in referred.into_iter().chain(rest) {
            changes.push(c.clone());
            new.put_change(c);
        }
        // Removals in the order domains, hosts, contacts, registrars, zones: the reverse of
        // creation, what refers before what is referred to.
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
        for c in &old.data.contacts {
            if !new.contact_at.contains_key(&c.handle) {
                changes.push(Change::ContactRemoved(c.handle.clone()));
            }
        }
        for r in &old.data.registrars {
            if !new.registrar_at.contains_key(&r.handle) {
                changes.push(Change::RegistrarRemoved(r.handle.clone()));
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
    use crate::snapshot::tests::{contact, registrar};
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
            ..SnapshotData::default()
        });
        let batch = r.replace(9, vec![Change::Domain(domain("b.tld", "tld", &[]))]);
        assert_eq!((batch.after, batch.upto), (7, 9));
        assert!(batch.changes.contains(&Change::DomainRemoved(n("a.tld"))));
        assert!(batch.changes.contains(&Change::HostRemoved(n("ns.a.tld"))));
        assert_eq!(names(&r), (vec!["b.tld".to_owned()], vec![]));
        assert_eq!(r.serial(), 9);
    }

    fn handles(r: &Registry) -> (Vec<&str>, Vec<&str>) {
        let mut c: Vec<&str> = r.data.contacts.iter().map(|x| x.handle.as_str()).collect();
        let mut g: Vec<&str> = r
            .data
            .registrars
            .iter()
            .map(|x| x.handle.as_str())
            .collect();
        c.sort_unstable();
        g.sort_unstable();
        (c, g)
    }

    #[test]
    fn batches_upsert_and_remove_contacts_and_registrars_by_handle() {
        let mut r = Registry::default();
        r.apply(&ChangeBatch {
            after: 0,
            upto: 3,
            changes: vec![
                Change::Registrar(registrar("r1", true)),
                Change::Registrar(registrar("r2", false)),
                Change::Contact(contact("C1", true)),
                Change::Contact(contact("C2", false)),
                Change::Contact(contact("C3", false)),
            ],
        });
        assert_eq!(r.len(), 5);
        r.apply(&ChangeBatch {
            after: 3,
            upto: 4,
            changes: vec![
                Change::ContactRemoved("C1".into()),
                Change::Contact(contact("C3", true)),
                Change::RegistrarRemoved("r1".into()),
                Change::Registrar(registrar("r2", true)),
                Change::ContactRemoved("C9".into()),
                Change::RegistrarRemoved("r9".into()),
            ],
        });
        assert_eq!(r.serial(), 4);
        assert_eq!(handles(&r), (vec!["C2", "C3"], vec!["r2"]));
        // The indexes follow the swap-removes and the upserts replaced in place.
        let c3 = &r.data.contacts[r.contact_at["C3"]];
        assert_eq!(*c3, contact("C3", true));
        assert_eq!(r.data.registrars[r.registrar_at["r2"]].iana_id, Some(9999));
        assert_eq!(r.len(), 3);

        // And they survive a trip through the state file's data.
        let again = Registry::from_snapshot(r.data().clone());
        assert_eq!(handles(&again), handles(&r));
        assert_eq!(again.data().contacts, r.data().contacts);
    }

    #[test]
    fn replace_removes_contacts_and_registrars_the_snapshot_lacks() {
        let mut r = Registry::from_snapshot(SnapshotData {
            serial: 7,
            domains: vec![domain("a.tld", "tld", &[])],
            contacts: vec![contact("C1", true), contact("C2", false)],
            registrars: vec![registrar("r1", true), registrar("r2", false)],
            ..SnapshotData::default()
        });
        let batch = r.replace(
            9,
            vec![
                Change::Domain(domain("b.tld", "tld", &[])),
                Change::Contact(contact("C2", true)),
                Change::Registrar(registrar("r2", false)),
                Change::ContactRemoved("C2".into()),
            ],
        );
        assert_eq!(
            batch.changes,
            [
                // Referred-to objects first, then the rest, then removals in reverse of creation.
                Change::Contact(contact("C2", true)),
                Change::Registrar(registrar("r2", false)),
                Change::Domain(domain("b.tld", "tld", &[])),
                Change::DomainRemoved(n("a.tld")),
                Change::ContactRemoved("C1".into()),
                Change::RegistrarRemoved("r1".into()),
            ]
        );
        assert_eq!(handles(&r), (vec!["C2"], vec!["r2"]));
        assert_eq!(r.data.contacts[0], contact("C2", true));
        assert_eq!(r.len(), 3);
    }
}
