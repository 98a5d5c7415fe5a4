//! The master's in-memory cache: the current state of the whole registry, a window of recent
//! change batches, and the snapshot satellites download.
//!
//! ```text
//!  journal follower ──apply(batch)──▶ Registry (hash maps of model objects) at `serial`
//!                                     window: [batch after=a0 … batch upto=serial]
//!                                     snapshot: chunks at serial s ≥ window_start
//!  satellites ◀── since(from) ──────── batches with upto > from, or "take a snapshot"
//! ```
//!
//! Only the follower writes; every satellite request is served from here, so the store's load
//! does not depend on the number of satellites. A satellite whose serial lies inside the window
//! gets the batches after it (re-sending part of a batch is harmless: changes are whole
//! objects); one below the window is resumed from the store's journal when it still holds the
//! gap (`resume.rs`), else it takes a snapshot, as one ahead of the master does. The snapshot
//! is rebuilt only when the previous one has left the window, so satellites booting together
//! share one.
//!
//! Rows the store cannot read are *quarantined* here: the cache keeps the last good version of
//! each such object (a batch carries no change for it; a reload carries the old version over)
//! and lists the rows until a later journal row settles them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use orrery_proto::dnssec::{DnssecRrset, DnssecRrsetId};
use orrery_proto::link::pb;
use orrery_proto::{Change, ChangeBatch, Contact, Domain, Host, Name, Registrar, Serial, Zone};
use orrery_store::BadRow;
use prost::Message;
use tokio::sync::watch;

use crate::config::LinkSettings;

/// Every registry object, by key.
#[derive(Debug, Default)]
pub struct Registry {
    pub zones: HashMap<Name, Zone>,
    pub domains: HashMap<Name, Domain>,
    pub hosts: HashMap<Name, Host>,
    pub contacts: HashMap<String, Contact>,
    pub registrars: HashMap<String, Registrar>,
    /// The DNSSEC RRsets of the signed zones, made by the master's signer (`signing.rs`).
    pub dnssec: HashMap<DnssecRrsetId, DnssecRrset>,
}

impl Registry {
    /// Applies whole-object changes: upserts replace, removals remove (absent is fine).
    pub fn apply(&mut self, changes: Vec<Change>) {
        for c in changes {
            match c {
                Change::Zone(z) => {
                    self.zones.insert(z.name.clone(), z);
                }
                Change::ZoneRemoved(n) => {
                    self.zones.remove(&n);
                }
                Change::Domain(d) => {
                    self.domains.insert(d.name.clone(), d);
                }
                Change::DomainRemoved(n) => {
                    self.domains.remove(&n);
                }
                Change::Host(h) => {
                    self.hosts.insert(h.name.clone(), h);
                }
                Change::HostRemoved(n) => {
                    self.hosts.remove(&n);
                }
                Change::Contact(c) => {
                    self.contacts.insert(c.handle.clone(), c);
                }
                Change::ContactRemoved(h) => {
                    self.contacts.remove(&h);
                }
                Change::Registrar(r) => {
                    self.registrars.insert(r.handle.clone(), r);
                }
                Change::RegistrarRemoved(h) => {
                    self.registrars.remove(&h);
                }
                // Made by the signer from the zones, never read from the store.
                Change::Dnssec(set) => {
                    self.dnssec.insert(set.id.clone(), set);
                }
                Change::DnssecRemoved(id) => {
                    self.dnssec.remove(&id);
                }
            }
        }
    }

    /// Moves the object a bad row stands for from `old` into `self` (the last good version
    /// stays published across a reload). A key that is not a valid name never had an object.
    fn carry_over(&mut self, old: &mut Self, bad: &BadRow) {
        let name = || bad.object_name();
        match bad.object {
            "zone" => {
                if let Some(z) = name().and_then(|n| old.zones.remove(&n)) {
                    self.zones.insert(z.name.clone(), z);
                }
            }
            "domain" => {
                if let Some(d) = name().and_then(|n| old.domains.remove(&n)) {
                    self.domains.insert(d.name.clone(), d);
                }
            }
            "host" => {
                if let Some(h) = name().and_then(|n| old.hosts.remove(&n)) {
                    self.hosts.insert(h.name.clone(), h);
                }
            }
            "contact" => {
                if let Some(c) = old.contacts.remove(&bad.key) {
                    self.contacts.insert(c.handle.clone(), c);
                }
            }
            "registrar" => {
                if let Some(r) = old.registrars.remove(&bad.key) {
                    self.registrars.insert(r.handle.clone(), r);
                }
            }
            _ => {}
        }
    }

    /// How many objects in all.
    pub fn len(&self) -> usize {
        self.zones.len()
            + self.domains.len()
            + self.hosts.len()
            + self.contacts.len()
            + self.registrars.len()
            + self.dnssec.len()
    }

    /// True when the registry holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every object as a message, in an order a satellite can apply one by one: registrars,
    /// contacts, zones, hosts, domains.
    fn messages(&self) -> impl Iterator<Item = pb::Change> + '_ {
        use pb::change::Change as C;
        let wrap = |c| pb::Change { change: Some(c) };
        self.registrars
            .values()
            .map(move |r| wrap(C::Registrar(r.into())))
            .chain(
                self.contacts
                    .values()
                    .map(move |c| wrap(C::Contact(c.into()))),
            )
            .chain(self.zones.values().map(move |z| wrap(C::Zone(z.into()))))
            .chain(self.hosts.values().map(move |h| wrap(C::Host(h.into()))))
            .chain(
                self.domains
                    .values()
                    .map(move |d| wrap(C::Domain(d.into()))),
            )
            // After the domains whose DS they sign (docs/DNSSEC.md).
            .chain(self.dnssec.values().map(move |s| wrap(C::Dnssec(s.into()))))
    }

    /// Moves everything of the zone at `apex` from `old` into `self`, replacing what `self`
    /// has of it: the zone, its domains, the hosts under it and its DNSSEC sets (a zone that
    /// cannot be signed keeps its last signed state across a reload).
    fn carry_over_zone(&mut self, old: &mut Self, apex: &Name) {
        self.domains.retain(|_, d| &d.zone != apex);
        self.hosts.retain(|n, _| !n.is_subdomain_of(apex));
        self.dnssec.retain(|id, _| &id.zone != apex);
        self.zones.remove(apex);
        if let Some(z) = old.zones.remove(apex) {
            self.zones.insert(z.name.clone(), z);
        }
        let domains: Vec<Name> = old
            .domains
            .values()
            .filter(|d| &d.zone == apex)
            .map(|d| d.name.clone())
            .collect();
        for n in domains {
            if let Some(d) = old.domains.remove(&n) {
                self.domains.insert(n, d);
            }
        }
        let hosts: Vec<Name> = old
            .hosts
            .keys()
            .filter(|n| n.is_subdomain_of(apex))
            .cloned()
            .collect();
        for n in hosts {
            if let Some(h) = old.hosts.remove(&n) {
                self.hosts.insert(n, h);
            }
        }
        let sets: Vec<DnssecRrsetId> = old
            .dnssec
            .keys()
            .filter(|id| &id.zone == apex)
            .cloned()
            .collect();
        for id in sets {
            if let Some(s) = old.dnssec.remove(&id) {
                self.dnssec.insert(id, s);
            }
        }
    }
}

/// The full state at one serial, cut into chunks ready to send.
#[derive(Debug)]
pub struct Snapshot {
    pub serial: Serial,
    pub chunks: Vec<pb::SnapshotChunk>,
    pub total_objects: u64,
}

/// What a satellite at some serial needs.
#[derive(Debug)]
pub enum Catchup {
    /// The batches after its serial, oldest first (empty when it is up to date).
    Batches(Vec<Arc<pb::ChangeBatch>>),
    /// Its serial is older than the window: the store's journal may still hold the gap
    /// (`resume.rs`); else it must take a snapshot.
    BeforeWindow { window_start: Serial, head: Serial },
    /// It is ahead of the master.
    SnapshotRequired {
        window_start: Serial,
        head: Serial,
        reason: String,
    },
}

/// Why a batch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("batch after serial {after} does not follow the cache at serial {serial}")]
pub struct GapError {
    pub after: Serial,
    pub serial: Serial,
}

#[derive(Debug, Default)]
struct State {
    serial: Serial,
    registry: Registry,
    window: VecDeque<Arc<pb::ChangeBatch>>,
    window_changes: usize,
    /// The oldest serial the window reaches back to.
    window_start: Serial,
    snapshot: Option<Arc<Snapshot>>,
    /// Whether the registry has been loaded. Before that the cache knows nothing: it serves
    /// no snapshot, and satellites resume from the store's journal or wait (see `since`).
    loaded: bool,
    /// Quarantined rows by `(object kind, key)`.
    quarantine: HashMap<(&'static str, String), BadRow>,
}

/// The cache shared by the follower (writer) and the link service (readers).
#[derive(Debug)]
pub struct Cache {
    state: RwLock<State>,
    /// Bumped after every change of the state; change streams wait on it.
    generation: watch::Sender<u64>,
    /// Held while building a snapshot, so that concurrent requests build it once.
    building: Mutex<()>,
    settings: LinkSettings,
    /// Rows that entered quarantine (or changed reason) since start.
    quarantined_total: AtomicU64,
}

impl Cache {
    pub fn new(settings: LinkSettings) -> Self {
        Self {
            state: RwLock::default(),
            generation: watch::Sender::new(0),
            building: Mutex::new(()),
            settings,
            quarantined_total: AtomicU64::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (each update is one
        // assignment sequence that cannot panic midway), so poisoning is ignored.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces everything with the state in `full` (all changes after serial 0). The window
    /// starts empty at its serial: satellites behind it will take a snapshot.
    pub fn load(&self, full: ChangeBatch) {
        self.load_quarantined(full, Vec::new());
    }

    /// [`Cache::load`] from a read that could not read the `bad` rows: the quarantine becomes
    /// exactly those, and the object each stands for keeps the version the cache held (if any).
    /// Returns the rows newly quarantined (for the caller to report).
    pub fn load_quarantined(&self, full: ChangeBatch, bad: Vec<BadRow>) -> Vec<BadRow> {
        self.load_withholding(full, bad, &std::collections::HashSet::new())
    }

    /// [`Cache::load_quarantined`], the zones in `withheld` (which cannot be signed) keeping
    /// everything the cache held of them.
    pub fn load_withholding(
        &self,
        full: ChangeBatch,
        bad: Vec<BadRow>,
        withheld: &std::collections::HashSet<Name>,
    ) -> Vec<BadRow> {
        let mut registry = Registry::default();
        registry.apply(full.changes);
        let fresh;
        {
            let mut s = self.write();
            let mut old = std::mem::take(&mut s.registry);
            for apex in withheld {
                registry.carry_over_zone(&mut old, apex);
            }
            let mut quarantine = HashMap::with_capacity(bad.len());
            for b in &bad {
                registry.carry_over(&mut old, b);
            }
            fresh = bad
                .into_iter()
                .filter_map(|b| {
                    let key = (b.object, b.key.clone());
                    let new = s.quarantine.get(&key) != Some(&b);
                    quarantine.insert(key, b.clone());
                    new.then_some(b)
                })
                .collect::<Vec<_>>();
            *s = State {
                serial: full.upto,
                registry,
                window: VecDeque::new(),
                window_changes: 0,
                window_start: full.upto,
                snapshot: None,
                loaded: true,
                quarantine,
            };
        }
        self.quarantined_total
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        self.generation.send_modify(|g| *g += 1);
        fresh
    }

    /// Updates the quarantine after a batch: `bad` rows enter it (their objects keep the
    /// version the cache holds: the batch carried no change for them), `settled` objects leave
    /// it. Returns the rows newly quarantined and the entries that left.
    pub fn quarantine(
        &self,
        bad: Vec<BadRow>,
        settled: &[(&'static str, String)],
    ) -> (Vec<BadRow>, Vec<BadRow>) {
        let mut s = self.write();
        if s.quarantine.is_empty() && bad.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let left = settled
            .iter()
            .filter_map(|(kind, key)| s.quarantine.remove(&(*kind, key.clone())))
            .collect();
        let fresh: Vec<BadRow> = bad
            .into_iter()
            .filter(|b| {
                let key = (b.object, b.key.clone());
                let new = s.quarantine.get(&key) != Some(b);
                s.quarantine.insert(key, b.clone());
                new
            })
            .collect();
        self.quarantined_total
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        (fresh, left)
    }

    /// The rows quarantined now, in no particular order.
    pub fn quarantined(&self) -> Vec<BadRow> {
        self.read().quarantine.values().cloned().collect()
    }

    /// How many rows are quarantined now (what the watchdog and `status` report).
    pub fn quarantined_now(&self) -> usize {
        self.read().quarantine.len()
    }

    /// How many rows entered quarantine (or were quarantined again for another reason) since
    /// the master started: a counter for monitoring.
    pub fn quarantined_total(&self) -> u64 {
        self.quarantined_total.load(Ordering::Relaxed)
    }

    /// Applies the next batch and adds it to the window.
    pub fn apply(&self, batch: ChangeBatch) -> Result<(), GapError> {
        if batch.upto == batch.after && batch.changes.is_empty() {
            return Ok(());
        }
        let message = Arc::new(pb::ChangeBatch::from(&batch));
        {
            let mut s = self.write();
            if batch.after != s.serial {
                return Err(GapError {
                    after: batch.after,
                    serial: s.serial,
                });
            }
            s.window_changes += message.changes.len();
            s.window.push_back(message);
            s.serial = batch.upto;
            s.registry.apply(batch.changes);
            while s.window.len() > self.settings.window_batches
                || s.window_changes > self.settings.window_changes
            {
                let Some(old) = s.window.pop_front() else {
                    break;
                };
                s.window_changes -= old.changes.len();
                s.window_start = old.upto;
            }
        }
        self.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// The last serial applied.
    pub fn head(&self) -> Serial {
        self.read().serial
    }

    /// The oldest serial a satellite can follow from.
    pub fn window_start(&self) -> Serial {
        self.read().window_start
    }

    /// `(head, window_start)` read together.
    pub fn positions(&self) -> (Serial, Serial) {
        let s = self.read();
        (s.serial, s.window_start)
    }

    /// Objects held.
    pub fn objects(&self) -> usize {
        self.read().registry.len()
    }

    /// Runs `f` on the registry (for checks and statistics).
    pub fn with_registry<T>(&self, f: impl FnOnce(&Registry) -> T) -> T {
        f(&self.read().registry)
    }

    /// Changes whenever the state does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Whether the registry has been loaded (see [`Cache::load`]).
    pub fn is_loaded(&self) -> bool {
        self.read().loaded
    }

    /// What a satellite whose applied serial is `from` needs next. Before the registry is
    /// loaded every serial is "before the window": only the store's journal can serve it.
    pub fn since(&self, from: Serial) -> Catchup {
        let s = self.read();
        if !s.loaded {
            return Catchup::BeforeWindow {
                window_start: s.window_start,
                head: s.serial,
            };
        }
        if from > s.serial {
            return Catchup::SnapshotRequired {
                window_start: s.window_start,
                head: s.serial,
                reason: format!(
                    "satellite is at serial {from}, ahead of the master's {}",
                    s.serial
                ),
            };
        }
        if from < s.window_start {
            return Catchup::BeforeWindow {
                window_start: s.window_start,
                head: s.serial,
            };
        }
        // Batches are in serial order; skip those the satellite already has.
        let first = s.window.partition_point(|b| b.upto <= from);
        Catchup::Batches(s.window.range(first..).cloned().collect())
    }

    /// The snapshot at `serial` if the cache still holds it and satellites can follow from it.
    pub fn snapshot_at(&self, serial: Serial) -> Option<Arc<Snapshot>> {
        let s = self.read();
        s.snapshot
            .as_ref()
            .filter(|snap| snap.serial == serial && snap.serial >= s.window_start)
            .cloned()
    }

    /// The current snapshot: the last one built while satellites can still follow from its
    /// serial, else a new one at the head.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let usable = |s: &State| {
            s.snapshot
                .as_ref()
                .filter(|snap| snap.serial >= s.window_start)
                .cloned()
        };
        if let Some(snap) = usable(&self.read()) {
            return snap;
        }
        let _building = self.building.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(snap) = usable(&self.read()) {
            return snap;
        }
        let snap = {
            let s = self.read();
            Arc::new(self.build_snapshot(s.serial, &s.registry))
        };
        let mut s = self.write();
        // The follower may have moved on meanwhile; the snapshot is still valid for its serial
        // as long as it is in the window, which `usable` checks on the next call.
        s.snapshot = Some(snap.clone());
        snap
    }

    fn build_snapshot(&self, serial: Serial, registry: &Registry) -> Snapshot {
        let per_chunk = self.settings.snapshot_chunk_objects.max(1);
        let total = registry.len();
        let count = total.div_ceil(per_chunk).max(1);
        let count32 = u32::try_from(count).unwrap_or(u32::MAX);
        let mut chunks = Vec::with_capacity(count);
        let mut objects = registry.messages();
        for index in 0..count32 {
            chunks.push(pb::SnapshotChunk {
                serial,
                index,
                count: count32,
                total_objects: total as u64,
                // Encoded once here, shared by every satellite that asks (service.rs sends
                // reference-counted copies).
                objects: objects
                    .by_ref()
                    .take(per_chunk)
                    .map(|o| o.encode_to_vec().into())
                    .collect(),
            });
        }
        Snapshot {
            serial,
            chunks,
            total_objects: total as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use orrery_proto::Timestamp;

    use super::*;

    fn host(name: &str) -> Change {
        Change::Host(Host {
            name: Name::from_ascii(name).unwrap(),
            addresses: vec![],
            registrar: None,
            created: Timestamp(0),
            updated: Timestamp(0),
        })
    }

    fn batch(after: Serial, upto: Serial, changes: Vec<Change>) -> ChangeBatch {
        ChangeBatch {
            after,
            upto,
            changes,
        }
    }

    fn settings() -> LinkSettings {
        LinkSettings {
            window_batches: 3,
            window_changes: 100,
            snapshot_chunk_objects: 2,
            ..LinkSettings::default()
        }
    }

    fn upto(c: Catchup) -> Vec<Serial> {
        match c {
            Catchup::Batches(b) => b.iter().map(|b| b.upto).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn window_serves_batches_after_a_serial_then_requires_a_snapshot() {
        let cache = Cache::new(settings());
        cache.load(batch(0, 10, vec![host("a.test")]));
        assert_eq!(cache.positions(), (10, 10));
        assert!(upto(cache.since(10)).is_empty());
        cache.apply(batch(10, 12, vec![host("b.test")])).unwrap();
        cache.apply(batch(12, 15, vec![host("c.test")])).unwrap();
        assert_eq!(upto(cache.since(10)), vec![12, 15]);
        assert_eq!(upto(cache.since(11)), vec![12, 15]);
        assert_eq!(upto(cache.since(12)), vec![15]);
        assert!(matches!(cache.since(16), Catchup::SnapshotRequired { .. }));
        // A gap is refused.
        assert!(cache.apply(batch(16, 17, vec![host("x.test")])).is_err());
        // Two more batches push the oldest out of a three-batch window.
        cache.apply(batch(15, 16, vec![host("d.test")])).unwrap();
        cache
            .apply(batch(
                16,
                20,
                vec![Change::HostRemoved(Name::from_ascii("a.test").unwrap())],
            ))
            .unwrap();
        assert_eq!(cache.window_start(), 12);
        assert!(matches!(
            cache.since(11),
            Catchup::BeforeWindow {
                window_start: 12,
                head: 20
            }
        ));
        assert_eq!(upto(cache.since(12)), vec![15, 16, 20]);
        assert_eq!(cache.objects(), 3);
    }

    fn zone(name: &str, serial: Serial) -> Change {
        Change::Zone(Zone {
            name: Name::from_ascii(name).unwrap(),
            soa: orrery_proto::Soa {
                mname: Name::from_ascii("a.nic.test").unwrap(),
                rname: Name::from_ascii("hostmaster.nic.test").unwrap(),
                refresh: 1800,
                retry: 900,
                expire: 604_800,
                minimum: 300,
            },
            soa_ttl: 3600,
            ns_ttl: 3600,
            ds_ttl: 3600,
            nameservers: vec![],
            serial,
        })
    }

    /// The zone serials in the cache's current snapshot, as a satellite decodes them.
    fn snapshot_zone_serials(cache: &Cache) -> Vec<(String, Serial)> {
        let mut zones: Vec<(String, Serial)> = cache
            .snapshot()
            .chunks
            .iter()
            .flat_map(|c| &c.objects)
            .filter_map(|o| {
                match Change::try_from(pb::Change::decode(o.as_ref()).unwrap()).unwrap() {
                    Change::Zone(z) => Some((z.name.to_string(), z.serial)),
                    _ => None,
                }
            })
            .collect();
        zones.sort();
        zones
    }

    #[test]
    fn zones_keep_their_own_serial_into_the_snapshot() {
        let cache = Cache::new(settings());
        cache.load(batch(0, 10, vec![zone("a", 4), zone("b", 9), host("x.a")]));
        assert_eq!(
            snapshot_zone_serials(&cache),
            [("a".into(), 4), ("b".into(), 9)]
        );
        // A batch touching `a` carries `a` at its new serial; `b` keeps its own, though the
        // head moved past it.
        cache
            .apply(batch(10, 14, vec![zone("a", 13), host("y.a")]))
            .unwrap();
        for i in 14..18 {
            cache
                .apply(batch(i, i + 1, vec![host(&format!("h{i}.test"))]))
                .unwrap();
        }
        assert_eq!(cache.snapshot().serial, 18);
        assert_eq!(
            snapshot_zone_serials(&cache),
            [("a".into(), 13), ("b".into(), 9)]
        );
    }

    #[test]
    fn snapshot_is_shared_while_in_the_window() {
        let cache = Cache::new(settings());
        cache.load(batch(
            0,
            5,
            vec![host("a.test"), host("b.test"), host("c.test")],
        ));
        let s1 = cache.snapshot();
        assert_eq!((s1.serial, s1.chunks.len(), s1.total_objects), (5, 2, 3));
        assert_eq!(s1.chunks.iter().map(|c| c.objects.len()).sum::<usize>(), 3);
        cache.apply(batch(5, 6, vec![host("d.test")])).unwrap();
        let s2 = cache.snapshot();
        assert!(Arc::ptr_eq(&s1, &s2), "still followable: reused");
        assert!(cache.snapshot_at(5).is_some());
        for i in 6..10 {
            cache
                .apply(batch(i, i + 1, vec![host(&format!("h{i}.test"))]))
                .unwrap();
        }
        assert!(cache.snapshot_at(5).is_none(), "left the window");
        let s3 = cache.snapshot();
        assert_eq!(s3.serial, 10);
        assert_eq!(s3.total_objects, 8);
    }
}
