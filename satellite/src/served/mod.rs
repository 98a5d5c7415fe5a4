//! The served state: everything the satellite answers from, in versions that share.
//!
//! - [`Served`]: one version — the DNS tables ([`ZoneSet`]) and the Whois/RDAP
//!   [`Directory`], side by side, at one journal serial. [`Served::apply`] applies a batch to
//!   both.
//! - [`ServedStore`]: the version queries see, swapped whole (ArcSwap) after each batch.
//! - [`shards`]: the copy-on-write sharded table primitive the tables are built on.
//!
//! # Versions that share
//! A batch is applied to a clone of the current version and the clone is swapped in: a query
//! sees a whole batch or none of it, and never waits. The clone is cheap because the tables
//! are sharded copy-on-write ([`shards`]): cloning copies shard pointers, and the batch copies
//! only the shards it touches, so the two versions share everything else. There is no spare
//! copy: the memory a batch costs is in proportion to the batch, and a reader that keeps an
//! old version only keeps the shards that changed since.

pub mod history;
pub mod shards;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};
use orrery_proto::state_file::Objects;
use orrery_proto::{Change, ChangeBatch, Domain, Host, Name, Serial, Timestamp, Zone};

use crate::background;
use crate::rds::Directory;
use crate::served::shards::build_threads;
use crate::snapshot::SnapshotData;
use crate::xfr::catalog::Catalog;
use crate::zone::{ZoneError, ZoneSet};
use history::History;

/// What to build besides the DNS tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// Build (and keep applying batches to) the Whois/RDAP directory. Off for a satellite
    /// that serves DNS only: the directory is then empty and costs nothing.
    pub directory: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self { directory: true }
    }
}

/// One version of everything the satellite serves (see the module docs).
#[derive(Clone, Debug)]
pub struct Served {
    /// Journal serial this version reflects.
    pub serial: Serial,
    /// The DNS tables.
    pub zones: ZoneSet,
    /// Whois and RDAP data ([`crate::rds::directory`]); empty when not built.
    pub directory: Directory,
    /// Whether batches update the directory ([`BuildOptions::directory`]).
    with_directory: bool,
    /// Recent changes per zone for IXFR (empty unless transfers are served).
    pub history: History,
    /// The catalog zone listing this version's zones, when the transfer service names one
    /// ([`crate::xfr::catalog`]); shared between versions with the same zones.
    pub catalog: Option<Arc<Catalog>>,
}

impl Default for Served {
    /// Empty, with the directory (as [`BuildOptions::default`]).
    fn default() -> Self {
        Self {
            serial: 0,
            zones: ZoneSet::default(),
            directory: Directory::default(),
            with_directory: true,
            history: History::default(),
            catalog: None,
        }
    }
}

impl Served {
    /// Both tables from registry data at `serial` (tests and tools; the satellite builds from
    /// objects).
    pub fn build(serial: Serial, zones: &[Zone], domains: &[Domain], hosts: &[Host]) -> Self {
        // Sized for as many contacts as domains, the common case (`touch` re-splits if not).
        let mut directory = Directory::with_capacity(domains.len(), hosts.len(), domains.len());
        for h in hosts {
            directory.put_host(h);
        }
        for d in domains {
            directory.put_domain(d);
        }
        directory.touch(Timestamp::now());
        Self {
            serial,
            zones: ZoneSet::build(serial, zones, domains, hosts),
            directory,
            with_directory: true,
            history: History::default(),
            catalog: None,
        }
    }

    /// DNS tables only, around an existing [`ZoneSet`].
    pub fn dns_only(zones: ZoneSet) -> Self {
        Self {
            serial: zones.serial,
            zones,
            directory: Directory::default(),
            with_directory: false,
            history: History::default(),
            catalog: None,
        }
    }

    /// Everything a snapshot holds: the zones and, if asked, the directory with its contacts
    /// and registrars. Logs how long each part took.
    pub fn from_snapshot(data: &SnapshotData, options: BuildOptions) -> Self {
        let started = std::time::Instant::now();
        let zones = ZoneSet::build(data.serial, &data.zones, &data.domains, &data.hosts);
        let dns = started.elapsed();
        let mut directory = Directory::default();
        if options.directory {
            directory =
                Directory::with_capacity(data.domains.len(), data.hosts.len(), data.contacts.len());
            for h in &data.hosts {
                directory.put_host(h);
            }
            for d in &data.domains {
                directory.put_domain(d);
            }
            for r in &data.registrars {
                directory.put_registrar(r);
            }
            for c in &data.contacts {
                directory.put_contact(c);
            }
            directory.touch(Timestamp::now());
        }
        tracing::info!(
            serial = data.serial,
            dns_ms = dns.as_millis() as u64,
            directory_ms = (started.elapsed() - dns).as_millis() as u64,
            "served state built"
        );
        Self {
            serial: data.serial,
            zones,
            directory,
            with_directory: options.directory,
            history: History::default(),
            catalog: None,
        }
    }

    /// Builds a version from a master snapshot's or a state file's objects, then hands them
    /// to `dispose` once they are in: [`dispose_in_background`] for a satellite, which must
    /// not wait for a million objects to be freed before it answers. The objects may come in
    /// any order (zones are placed before the domains they hold); removals are skipped, a
    /// snapshot holds objects, not changes. The DNS tables and the directory share nothing,
    /// so they are built side by side.
    pub fn from_objects(
        serial: Serial,
        objects: Objects,
        dispose: impl FnOnce(Objects),
        options: BuildOptions,
    ) -> Self {
        // The objects are taken as they came (a state file's chunks, a snapshot's vector: no
        // copy). The DNS build skips removals itself; a pass over the objects to drop them
        // (reading and writing every one, about half a gigabyte at 1M delegations) is made
        // only for the directory, which would apply them.
        let mut objects = objects;
        let started = std::time::Instant::now();
        if options.directory {
            objects.retain(|c| !c.is_removal());
        }
        let (zones, directory) = std::thread::scope(|scope| {
            let directory = options
                .directory
                .then(|| scope.spawn(|| build_directory(objects.iter(), &[])));
            // The directory's build is one thread and the longer one: the DNS tables take
            // the other cores, not that one.
            let threads = if options.directory {
                build_threads().saturating_sub(1).max(1)
            } else {
                build_threads()
            };
            let zones = ZoneSet::from_chunks_on(serial, objects.chunks(), threads);
            let directory = directory.map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
            (zones, directory.unwrap_or_default())
        });
        tracing::info!(
            serial,
            objects = objects.len(),
            ms = started.elapsed().as_millis() as u64,
            directory = options.directory,
            "served state built"
        );
        dispose(objects);
        Self {
            serial,
            zones,
            directory,
            with_directory: options.directory,
            history: History::default(),
            catalog: None,
        }
    }

    /// Whether this version holds (and batches update) the Whois/RDAP directory.
    pub fn has_directory(&self) -> bool {
        self.with_directory
    }

    /// Objects held, for statistics: zones plus the directory's domains, hosts, contacts and
    /// registrars when it is built; zones plus delegations otherwise (DNS keeps no more).
    pub fn object_count(&self) -> usize {
        let zones = self.zones.zones().len();
        if self.with_directory {
            let (d, h, c, r) = self.directory.counts();
            zones + d + h + c + r
        } else {
            zones
                + self
                    .zones
                    .zones()
                    .iter()
                    .map(|z| z.delegation_count())
                    .sum::<usize>()
        }
    }

    /// Applies a batch in place, to the DNS tables and the directory. The batch must follow
    /// this version (`batch.after == serial`); that is checked before anything changes, and
    /// nothing after the check can fail, so the batch is applied whole. [`ServedStore::apply`]
    /// applies it to a clone, which shares everything the batch does not touch.
    pub fn apply(&mut self, batch: &ChangeBatch) -> Result<(), ZoneError> {
        if batch.after != self.serial {
            return Err(ZoneError::SerialGap {
                after: batch.after,
                current: self.serial,
            });
        }
        self.zones.apply(batch)?;
        if self.with_directory {
            for change in &batch.changes {
                self.directory.apply(change);
            }
            self.directory.touch(Timestamp::now());
        }
        self.serial = batch.upto;
        Ok(())
    }
}

/// Changes in a batch from which [`ServedStore::apply`] hands the memory the batch and the
/// version it replaced freed back to the system. glibc keeps freed memory in its arenas: after
/// a 10,000-change batch at 1,000,000 delegations (the copies of about 14% of every table's
/// shards, the decoded changes) a master-fed satellite stayed 22% above its PSS before the
/// batch. `malloc_trim` walks every arena, so single changes, which free a few shards each and
/// come many a second, do not call it.
const RETURN_MEMORY_AFTER: usize = 1_000;

/// The served state shared by every worker: the current version, swapped whole.
pub struct ServedStore {
    current: ArcSwap<Served>,
    /// Serials of changes kept per zone for IXFR ([`History`]); 0: none are kept.
    ixfr_window: AtomicUsize,
    /// The catalog zone to build with each version ([`Served::catalog`]); None: none. Held
    /// under the writer lock: only writers read it.
    catalog_name: Mutex<Option<Name>>,
    /// Serialises writers; readers never take it.
    writer: Mutex<()>,
}

impl ServedStore {
    /// Starts from `served`.
    pub fn new(served: Served) -> Self {
        Self {
            current: ArcSwap::from_pointee(served),
            ixfr_window: AtomicUsize::new(0),
            catalog_name: Mutex::new(None),
            writer: Mutex::new(()),
        }
    }

    /// The current version, for one query. Lock-free and allocation-free. A guard kept
    /// long keeps the shards that change meanwhile alive (memory, never a stall).
    pub fn load(&self) -> Guard<Arc<Served>> {
        self.current.load()
    }

    /// The current version, owned.
    pub fn load_full(&self) -> Arc<Served> {
        self.current.load_full()
    }

    /// The serial of the current version.
    pub fn serial(&self) -> Serial {
        self.current.load().serial
    }

    /// Replaces the current version with `served` in one step (a master snapshot built beside
    /// the current version): a query sees the old state or the new one whole, never a mix. The
    /// old version is freed when the last query holding it ends.
    ///
    /// The old version (a whole registry) is freed on a background thread once no query holds
    /// it, then its memory handed back ([`return_freed_memory`]), not by whichever thread
    /// releases it last — a tokio worker or a query.
    pub fn replace(&self, mut served: Served) {
        let old = {
            let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let current = self.current.load();
            served.catalog =
                self.catalog_for(current.catalog.as_ref(), &served.zones, served.serial);
            drop(current);
            self.current.swap(Arc::new(served))
        };
        let freeing = background::spawn("served-retire", move || {
            background::drop_when_unused(old);
            return_freed_memory();
        });
        if let Err(e) = freeing {
            // The closure, old version and all, was dropped: freed here or by its last reader.
            tracing::warn!(error = %e, "cannot start a thread to free the replaced version");
        }
    }

    /// Applies `batch` atomically: queries see the new version all at once when this returns,
    /// and a query that began before sees the old one whole. Run it on a background thread
    /// ([`background::run`]): it also frees what the batch replaced, once no query holds the
    /// old version, so that no query pays for that ([`background::drop_when_unused`]).
    pub fn apply(&self, batch: ChangeBatch) -> Result<(), ZoneError> {
        let old = {
            let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let current = self.current.load();
            let mut next = Served::clone(&current);
            next.apply(&batch)?;
            // The differences are computed here, on the applying thread, before the swap: off
            // the query path, and a version never appears without the history that leads to it.
            match self.ixfr_window.load(Ordering::Relaxed) {
                0 => next.history = History::default(),
                window => next
                    .history
                    .record(&current.zones, &next.zones, &batch, window),
            }
            next.catalog = self.catalog_for(current.catalog.as_ref(), &next.zones, batch.upto);
            drop(current);
            self.current.swap(Arc::new(next))
        };
        let large = batch.changes.len() >= RETURN_MEMORY_AFTER;
        drop(batch);
        if background::drop_when_unused(old) && large {
            return_freed_memory();
        }
        Ok(())
    }

    /// Builds a catalog zone named `name` with every version from now on (None: no catalog),
    /// starting with the current one. The transfer service sets it when it starts.
    pub fn set_catalog(&self, name: Option<Name>) {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut held = self.catalog_name.lock().unwrap_or_else(|e| e.into_inner());
        if *held == name {
            return;
        }
        *held = name;
        drop(held);
        let current = self.current.load_full();
        let mut next = Served::clone(&current);
        next.catalog = self.catalog_for(current.catalog.as_ref(), &next.zones, current.serial);
        drop(current);
        let old = self.current.swap(Arc::new(next));
        background::drop_when_unused(old);
    }

    /// The catalog of a version serving `zones` at journal serial `serial`, after `previous`
    /// (the catalog of the version it follows): `previous` itself when it already lists the
    /// same zones under the configured name, a new one otherwise (the caller holds the
    /// writer lock).
    fn catalog_for(
        &self,
        previous: Option<&Arc<Catalog>>,
        zones: &ZoneSet,
        serial: Serial,
    ) -> Option<Arc<Catalog>> {
        let name = self.catalog_name.lock().unwrap_or_else(|e| e.into_inner());
        let name = name.as_ref()?;
        if let Some(p) = previous
            && p.name == *name
            && p.lists(zones)
        {
            return Some(Arc::clone(p));
        }
        let window = self.ixfr_window.load(Ordering::Relaxed);
        Some(Arc::new(Catalog::build(
            name,
            zones,
            serial,
            previous.map(|p| &**p),
            window,
        )))
    }

    /// Serves `directory`, brought up to `serial`, beside the DNS tables from the next version
    /// on: a configuration enabled Whois/RDAP on a satellite that did not build it. The
    /// current version is cloned (the DNS tables shared, not copied) and swapped, as for a
    /// batch. Refused, changing nothing, when the tables are no longer at `serial` (a batch
    /// applied while the directory was built that it does not hold).
    pub fn attach_directory(&self, directory: Directory, serial: Serial) -> Result<(), ZoneError> {
        let old = {
            let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let current = self.current.load();
            if current.serial != serial {
                return Err(ZoneError::SerialGap {
                    after: serial,
                    current: current.serial,
                });
            }
            let mut next = Served::clone(&current);
            next.directory = directory;
            next.with_directory = true;
            drop(current);
            self.current.swap(Arc::new(next))
        };
        background::drop_when_unused(old);
        Ok(())
    }

    /// Stops keeping the Whois/RDAP directory (no service reads it any more): the next
    /// version holds the DNS tables only, and the old one, directory and all, is freed off
    /// the query path once no reader holds it, its memory handed back. Nothing when there is
    /// no directory.
    pub fn detach_directory(&self) {
        let old = {
            let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let current = self.current.load();
            if !current.with_directory {
                return;
            }
            let mut next = Served::clone(&current);
            next.directory = Directory::default();
            next.with_directory = false;
            drop(current);
            self.current.swap(Arc::new(next))
        };
        let freeing = background::spawn("served-retire", move || {
            background::drop_when_unused(old);
            return_freed_memory();
        });
        if let Err(e) = freeing {
            tracing::warn!(error = %e, "cannot start a thread to free the directory");
        }
    }

    /// Keeps the differences of the last `window` serials of each zone from the next batch on
    /// (0: none). The transfer service sets it when it starts.
    pub fn set_ixfr_window(&self, window: usize) {
        self.ixfr_window.store(window, Ordering::Relaxed);
    }
}

/// The Whois/RDAP directory of a registry's `objects` (a snapshot's or a state file's;
/// removals among them are applied as removals), then the `batches` that follow them, in
/// order. Stamped now, as a version built at start is.
pub fn build_directory<'a>(
    objects: impl IntoIterator<Item = &'a Change, IntoIter: Clone>,
    batches: &[ChangeBatch],
) -> Directory {
    let mut directory = Directory::build(objects);
    for change in batches.iter().flat_map(|b| &b.changes) {
        directory.apply(change);
    }
    directory.touch(Timestamp::now());
    directory
}

/// Frees a build's objects on a thread of its own (at a million domains that takes about as
/// long as the build), then gives the memory back to the system ([`return_freed_memory`]).
pub fn dispose_in_background(objects: Objects) {
    // At the caller's priority, which a new thread inherits: the start-up build's at the
    // normal one, a replacing snapshot's build at the idle class ([`background`]). Not idle at
    // start-up: on a busy machine an idle-class thread keeps the objects for as long as the
    // cores stay busy (tried at load 14, 100k delegations: 1,554 B a delegation 2 s after the
    // first answer, the objects probably not yet freed).
    let freeing = std::thread::Builder::new()
        .name("served-free".into())
        .spawn(move || {
            drop(objects);
            return_freed_memory();
        });
    if let Err(e) = freeing {
        // The closure, objects and all, was dropped here: freed on this thread after all.
        tracing::warn!(error = %e, "cannot start a thread to free the build's objects");
        return_freed_memory();
    }
}

/// Hands the memory the build freed back to the system. The objects a whole registry is built
/// from take several times the tables' size, and glibc's allocator keeps what they freed in
/// its arenas (one per build thread) instead of unmapping it: without this, a satellite that
/// built its state at start-up or from a master's snapshot keeps that peak resident for good.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only releases free memory of the allocator's
    // own arenas; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::tests::{domain, host, n, sample};
    use orrery_proto::Change;

    fn store() -> ServedStore {
        ServedStore::new(Served::dns_only(sample()))
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

    fn delegated(set: &Served, name: &str) -> bool {
        let z = set.zones.zone(&n("tld")).unwrap();
        let d = z.delegation(n(name).as_wire()).is_some();
        assert_eq!(d, z.node(n(&format!("ns.{name}")).as_wire()).is_some());
        d
    }

    #[test]
    fn batches_become_visible_whole() {
        let store = store();
        // A reader holding a version across batches still sees it whole.
        let held = store.load_full();
        for (i, serial) in (8..12).enumerate() {
            store.apply(add(serial - 1, &format!("d{i}.tld"))).unwrap();
        }
        assert_eq!(held.serial, 7);
        assert!((0..4).all(|i| !delegated(&held, &format!("d{i}.tld"))));
        let now = store.load_full();
        assert_eq!((now.serial, store.serial()), (11, 11));
        assert!((0..4).all(|i| delegated(&now, &format!("d{i}.tld"))));
        // A gap is refused and changes nothing.
        assert!(store.apply(ChangeBatch::default()).is_err());
        assert!(store.apply(add(3, "x.tld")).is_err());
        assert_eq!(store.serial(), 11);
        store
            .apply(ChangeBatch {
                after: 11,
                upto: 12,
                changes: vec![Change::DomainRemoved(n("d0.tld"))],
            })
            .unwrap();
        let now = store.load();
        assert!(!delegated(&now, "d0.tld") && delegated(&now, "d3.tld"));
    }

    #[test]
    fn a_batch_copies_only_what_it_touches() {
        // Enough delegations for many shards.
        let domains: Vec<_> = (0..5000)
            .map(|i| domain(&format!("d{i}.tld"), "tld", &["ns.example"]))
            .collect();
        let zones = ZoneSet::build(
            1,
            &[crate::zone::tests::zone("tld", &["a.nic.tld"])],
            &domains,
            &[],
        );
        let store = ServedStore::new(Served::dns_only(zones));
        let before = store.load_full();
        store.apply(add(1, "new.tld")).unwrap();
        let after = store.load_full();
        let (a, b) = (
            before.zones.zone(&n("tld")).unwrap(),
            after.zones.zone(&n("tld")).unwrap(),
        );
        assert_eq!((a.delegation_count(), b.delegation_count()), (5000, 5001));
        let total = b.delegation_shard_count();
        let shared = b.delegation_shards_shared_with(a);
        assert!(total >= 256, "{total}");
        assert_eq!(shared, total - 1, "one shard copied of {total}");
    }

    /// A master snapshot that no longer holds an object: the version built from it replaces
    /// the served one whole, and the object is gone from DNS and Whois/RDAP; a reader that
    /// held the old version still sees it whole.
    #[test]
    fn a_replacing_snapshot_drops_what_it_no_longer_holds() {
        let objects = |names: &[&str]| {
            let mut v = vec![Change::Zone(crate::zone::tests::zone(
                "tld",
                &["a.nic.tld"],
            ))];
            for name in names {
                v.push(Change::Host(host(&format!("ns.{name}"), &["192.0.2.77"])));
                v.push(Change::Domain(domain(
                    name,
                    "tld",
                    &[&format!("ns.{name}")],
                )));
            }
            v
        };
        let build = |serial, names: &[&str]| {
            Served::from_objects(
                serial,
                objects(names).into(),
                |_| {},
                BuildOptions::default(),
            )
        };
        let store = ServedStore::new(build(5, &["a.tld", "b.tld"]));
        let held = store.load_full();
        store.replace(build(9, &["b.tld"]));
        let now = store.load();
        assert_eq!(now.serial, 9);
        assert!(!delegated(&now, "a.tld") && delegated(&now, "b.tld"));
        assert!(now.directory.domain(n("a.tld").as_wire()).is_none());
        assert!(now.directory.domain(n("b.tld").as_wire()).is_some());
        assert!(delegated(&held, "a.tld") && delegated(&held, "b.tld"));
        // Batches follow the new version.
        store.apply(add(9, "c.tld")).unwrap();
        assert!(delegated(&store.load(), "c.tld"));
    }

    #[test]
    fn directory_follows_batches_only_when_built() {
        let mut with = Served::build(7, &[], &[], &[]);
        let mut without = Served::dns_only(sample());
        let batch = ChangeBatch {
            after: 7,
            upto: 8,
            changes: vec![Change::Domain(domain("x.tld", "tld", &["ns.example"]))],
        };
        with.apply(&batch).unwrap();
        without.apply(&batch).unwrap();
        assert!(with.directory.domain(n("x.tld").as_wire()).is_some());
        assert!(without.directory.domain(n("x.tld").as_wire()).is_none());
        assert_eq!((with.serial, without.serial), (8, 8));
    }

    /// A directory built later (a configuration enabling Whois/RDAP) joins the tables only at
    /// the serial it was brought to, shares the DNS tables, follows batches from then on, and
    /// is dropped again whole.
    #[test]
    fn a_directory_is_attached_at_its_serial_and_detached() {
        let store = store();
        assert!(!store.load().has_directory());
        let objects = [
            Change::Host(host("ns.a.tld", &["192.0.2.1"])),
            Change::Domain(domain("a.tld", "tld", &["ns.a.tld"])),
        ];
        let stale = build_directory(&objects, &[]);
        store.apply(add(7, "b.tld")).unwrap();
        // Built at serial 7, the tables at 8: refused, nothing changed.
        assert!(store.attach_directory(stale, 7).is_err());
        assert!(!store.load().has_directory());
        let before = store.load_full();
        store
            .attach_directory(build_directory(&objects, &[add(7, "b.tld")]), 8)
            .unwrap();
        let with = store.load_full();
        let dir = &with.directory;
        assert!(with.has_directory() && with.serial == 8);
        assert!(dir.domain(n("a.tld").as_wire()).is_some());
        assert!(dir.domain(n("b.tld").as_wire()).is_some());
        let (a, b) = (
            before.zones.zone(&n("tld")).unwrap(),
            with.zones.zone(&n("tld")).unwrap(),
        );
        assert_eq!(
            b.delegation_shards_shared_with(a),
            b.delegation_shard_count(),
            "the DNS tables are shared, not copied"
        );
        store.apply(add(8, "c.tld")).unwrap();
        assert!(
            store
                .load()
                .directory
                .domain(n("c.tld").as_wire())
                .is_some()
        );
        store.detach_directory();
        let without = store.load();
        assert!(!without.has_directory() && without.serial == 9);
        assert!(without.directory.domain(n("a.tld").as_wire()).is_none());
        assert!(delegated(&without, "c.tld"));
        // Batches no longer reach a directory; the version held before still has its own.
        store.apply(add(9, "d.tld")).unwrap();
        assert!(
            store
                .load()
                .directory
                .domain(n("d.tld").as_wire())
                .is_none()
        );
        assert!(with.directory.domain(n("a.tld").as_wire()).is_some());
    }

    #[test]
    fn readers_run_during_updates() {
        let store = Arc::new(store());
        let reader = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..20000 {
                    let v = store.load();
                    assert!(v.serial >= last);
                    // The batch adds the host and the domain together: never one without the other.
                    let z = v.zones.zone(&n("tld")).unwrap();
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
