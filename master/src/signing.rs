//! Signing in the change path (issue 13): the master signs what a batch changes before the
//! batch goes into the window, and appends the resulting DNSSEC RRsets to the same batch, so a
//! satellite applies a DS and its RRSIG, or a new delegation and its NSEC3 chain update, as one
//! unit.
//!
//! ```text
//!  journal batch (objects + each zone's policy and keys, one snapshot)
//!     │ ZoneSigner::on_batch
//!     ▼  per signed zone touched: update its unsigned records (delegations, in-zone hosts)
//!        and note the owners whose records may have changed
//!        IncrementalZone::update: those owners, the names below a cut that came or went, the
//!                          chain records around them; signed (cache for the unchanged)
//!        ── or, on a first signing, a policy/key/window change, a zone field other than the
//!           serial: IncrementalZone::sign_whole (the whole-zone reference signer)
//!     ▼  the sets changed → Change::Dnssec / DnssecRemoved
//!  the batch + those changes ──▶ Cache::apply (window, snapshot)
//! ```
//!
//! **Equal to the reference.** The whole path signs with the one whole-zone signer
//! (`orrery_signer::sign_zone`) over the same records the generator collects
//! (`orrery_signer::objects`) and keeps its structure (`orrery_signer::incremental`: owners in
//! canonical order, the NSEC chain or the NSEC3 hash table, the published sets). A batch then
//! costs what it changes: each affected owner is signed by the same code, its role and chain
//! record are what the whole zone gives, so the sets are the whole zone's (the test
//! `incremental_signing_equals_signing_the_whole_zone` checks every batch against the store's
//! state signed whole). Signatures are deterministic and their times come from the store's
//! window, so only RRsets whose input changed are signed again — the new serial's SOA, the
//! changed DS, the NSEC/NSEC3 records whose next name or bit map changed; with opt-out an
//! insecure delegation changes none but the SOA's (RFC 5155 §6).
//!
//! **Never half-signed.** When a zone cannot be signed (no key directory on this master, a
//! private key missing or not matching the store's public key, ...) its state stays the last
//! signed one: the batch's changes to that zone's objects are withheld (the follower drops them,
//! the cache keeps the old versions, as for a quarantined row), the failure is logged as an
//! error and counted, and every other zone flows. Each later poll retries; once the zone signs
//! again the follower reloads the registry, which publishes everything withheld meanwhile.
//!
//! What is signed is exactly what the generator signs: the apex SOA and NS, each delegated
//! domain's NS and DS (only one NS per delegation is kept: NS at a cut is never signed, and one
//! is enough for the signer to see the cut), and the addresses of hosts inside the zone that
//! the store's publication rule publishes (addresses, and named by the zone's NS or by a
//! delegated domain; `HostSelection::Published`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use orrery_proto::dnssec::{DnssecRrset, DnssecRrsetId, ZoneDnssec};
use orrery_proto::{Change, ChangeBatch, Domain, Host, Name, Zone};
use orrery_signer::objects::{apex_records, domain_records, host_records};
use orrery_signer::record::rtype;
use orrery_signer::{
    IncrementalError, IncrementalZone, KeyStore, Published, Record, SignatureCache,
};

use crate::cache::Registry;

/// A key store shared with the signing threads.
pub type SharedKeyStore = Arc<dyn KeyStore + Send + Sync>;

/// The zones this master cannot sign, as the signer last found them: read by the heartbeat
/// (into the cluster state, for the watchdog's `unsignable_zone` rule and `status`) and by the
/// metrics, without waiting for the signer's lock (signing a large zone holds it for seconds).
#[derive(Debug, Default)]
pub struct SigningHealth {
    /// Zone (presentation form) → why its last signing failed.
    failing: Mutex<BTreeMap<String, String>>,
    /// Failed signing attempts since start (each zone each time).
    failures: AtomicU64,
}

impl SigningHealth {
    /// The zones that cannot be signed now, with the reason, in name order.
    pub fn failing(&self) -> Vec<(String, String)> {
        let m = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(z, e)| (z.clone(), e.clone())).collect()
    }

    /// Failed signing attempts since this master started.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The failing zones as the heartbeat's JSON: `[{"zone": …, "error": …}]`.
    pub fn to_json(&self) -> String {
        let zones: Vec<serde_json::Value> = self
            .failing()
            .into_iter()
            .map(|(zone, error)| serde_json::json!({"zone": zone, "error": error}))
            .collect();
        serde_json::Value::Array(zones).to_string()
    }
}

/// What signing a batch gives the follower.
#[derive(Debug, Default)]
pub struct Signed {
    /// The DNSSEC changes to append to the batch.
    pub changes: Vec<Change>,
    /// Zones that could not be signed: the batch's changes to their objects must be withheld.
    pub withheld: HashSet<Name>,
    /// A zone that could not be signed before signs again: reload to publish what was withheld.
    pub recovered: bool,
    /// Signatures made (not taken from a cache).
    pub fresh_signatures: u64,
}

/// One signed zone's state.
#[derive(Debug)]
struct ZoneState {
    zone: Zone,
    dnssec: ZoneDnssec,
    /// The records each delegated domain of the zone adds (one NS, its DS).
    delegations: HashMap<Name, Vec<Record>>,
    /// Every host inside the zone, published or not.
    hosts: HashMap<Name, Host>,
    /// References to in-zone host names: from delegated domains and from the zone's NS.
    refs: HashMap<Name, u32>,
    /// The zone as last signed: its structure and the sets published now (`None` until it
    /// first signs).
    signed: Option<IncrementalZone>,
    /// Owners whose records may have changed since the last signing.
    dirty: HashSet<Name>,
    /// The next signing must be whole: the zone starts, its policy, keys or signature window
    /// changed, or a zone field other than the serial did (every signature may change).
    whole: bool,
    cache: SignatureCache,
    /// Why the last signing failed; `None` when the published sets are this state's.
    failing: Option<String>,
}

/// The signer of every signed zone of the registry, fed by the journal follower.
pub struct ZoneSigner {
    keys: Option<SharedKeyStore>,
    zones: HashMap<Name, ZoneState>,
    /// Every zone of the registry, signed or not: a host belongs to the most specific.
    apexes: HashSet<Name>,
    /// For each domain naming hosts inside signed zones (while delegated): those hosts.
    domain_refs: HashMap<Name, Vec<Name>>,
    /// The signature caches of the zones before a reset, taken back as each zone restarts.
    reset_caches: HashMap<Name, SignatureCache>,
    /// Signing failures since start (each failed attempt of a zone).
    pub failures: u64,
    /// What the heartbeat and the metrics read of the failures.
    health: Arc<SigningHealth>,
    /// Sign batches incrementally (`false`: every batch signs the whole zone, the reference
    /// path; benches and tests compare the two).
    incremental: bool,
    /// Zone signings since start: (whole, incremental).
    signings: (u64, u64),
}

impl std::fmt::Debug for ZoneSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneSigner")
            .field("signing_host", &self.keys.is_some())
            .field("zones", &self.zones.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ZoneSigner {
    /// A signer with the private keys in `keys`; `None` on a master that is not a signing host
    /// (every signed zone then fails to sign, loudly, and keeps its last state).
    pub fn new(keys: Option<SharedKeyStore>) -> Self {
        Self {
            keys,
            zones: HashMap::new(),
            apexes: HashSet::new(),
            domain_refs: HashMap::new(),
            reset_caches: HashMap::new(),
            failures: 0,
            health: Arc::default(),
            incremental: true,
            signings: (0, 0),
        }
    }

    /// Chooses between signing each batch incrementally (the default) and signing the whole
    /// zone every batch (the reference path).
    pub fn set_incremental(&mut self, on: bool) {
        self.incremental = on;
    }

    /// Zone signings since start: how many signed the whole zone, how many only a batch's
    /// changes.
    pub fn signings(&self) -> (u64, u64) {
        self.signings
    }

    /// The failures as the rest of the master reads them.
    pub fn health(&self) -> Arc<SigningHealth> {
        Arc::clone(&self.health)
    }

    /// Publishes the failing zones (after each batch and retry).
    fn publish_health(&self) {
        let failing: BTreeMap<String, String> = self
            .failing()
            .into_iter()
            .map(|(n, why)| (n.to_string(), why))
            .collect();
        *self
            .health
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = failing;
        self.health.failures.store(self.failures, Ordering::Relaxed);
    }

    /// True when some zone is signed (and satellites must then get its sets with every batch).
    pub fn signs_any(&self) -> bool {
        !self.zones.is_empty()
    }

    /// Zones whose last signing failed, with the reason.
    pub fn failing(&self) -> Vec<(Name, String)> {
        self.zones
            .iter()
            .filter_map(|(n, z)| z.failing.clone().map(|why| (n.clone(), why)))
            .collect()
    }

    /// The sets published for `apex`, in id order (tests and checks).
    pub fn sets(&self, apex: &Name) -> Vec<DnssecRrset> {
        self.zones
            .get(apex)
            .and_then(|z| z.signed.as_ref())
            .map(IncrementalZone::sets)
            .unwrap_or_default()
    }

    /// The signed zones that `dnssec` starts signing: their state must first be read from the
    /// registry as it is before the batch ([`ZoneSigner::init_zones`]).
    pub fn zones_to_init(&self, dnssec: &[(Name, Option<ZoneDnssec>)]) -> Vec<Name> {
        dnssec
            .iter()
            .filter(|(apex, d)| {
                d.as_ref().is_some_and(ZoneDnssec::is_signed) && !self.zones.contains_key(apex)
            })
            .map(|(apex, _)| apex.clone())
            .collect()
    }

    /// Starts signing `apexes` from `registry` (the state before the batch that signs them):
    /// their domains, hosts and the references to their hosts. The zone object and the keys
    /// come with the batch.
    pub fn init_zones(
        &mut self,
        registry: &Registry,
        batch: &ChangeBatch,
        dnssec: &[(Name, Option<ZoneDnssec>)],
        apexes: &[Name],
    ) {
        for z in registry.zones.keys() {
            self.apexes.insert(z.clone());
        }
        for apex in apexes {
            let Some(zone) = batch.changes.iter().find_map(|c| match c {
                Change::Zone(z) if &z.name == apex => Some(z.clone()),
                _ => None,
            }) else {
                continue;
            };
            let Some(Some(d)) = dnssec.iter().find(|(a, _)| a == apex).map(|(_, d)| d) else {
                continue;
            };
            self.apexes.insert(apex.clone());
            self.start_zone(zone, d.clone());
        }
        for h in registry.hosts.values() {
            self.put_host(h, &mut HashSet::new());
        }
        for d in registry.domains.values() {
            self.put_domain(d, &mut HashSet::new());
        }
    }

    fn start_zone(&mut self, zone: Zone, dnssec: ZoneDnssec) {
        let apex = zone.name.clone();
        let mut state = ZoneState {
            zone,
            dnssec,
            delegations: HashMap::new(),
            hosts: HashMap::new(),
            refs: HashMap::new(),
            signed: None,
            dirty: HashSet::new(),
            whole: true,
            cache: self.reset_caches.remove(&apex).unwrap_or_default(),
            failing: None,
        };
        for ns in state.zone.nameservers.clone() {
            if ns.is_subdomain_of(&apex) {
                *state.refs.entry(ns).or_default() += 1;
            }
        }
        self.zones.insert(apex, state);
    }

    /// Forgets every zone's state but the signature caches, for a full reload: the sets then
    /// all come out as changes (a full state), signed again only where the state changed.
    pub fn reset(&mut self) {
        let caches: HashMap<Name, SignatureCache> = self
            .zones
            .drain()
            .map(|(apex, z)| (apex, z.cache))
            .collect();
        self.apexes.clear();
        self.domain_refs.clear();
        self.reset_caches = caches;
    }

    /// The zone a name belongs to: the most specific zone of the registry it is under.
    fn zone_of(&self, name: &Name) -> Option<Name> {
        let mut up = Some(name.clone());
        while let Some(n) = up {
            if self.apexes.contains(&n) {
                return Some(n);
            }
            up = n.parent();
        }
        None
    }

    /// The signed zone of an object change, for withholding it (`None`: no signed zone).
    pub fn signed_zone_of(&self, change: &Change) -> Option<Name> {
        let zone = match change {
            Change::Zone(z) => Some(z.name.clone()),
            Change::ZoneRemoved(n) => Some(n.clone()),
            Change::Domain(d) => Some(d.zone.clone()),
            Change::DomainRemoved(n)
            | Change::Host(Host { name: n, .. })
            | Change::HostRemoved(n) => self.zone_of(n),
            _ => None,
        }?;
        self.zones.contains_key(&zone).then_some(zone)
    }

    /// Signs what `batch` changed and returns the DNSSEC changes to append to it. `dnssec` is
    /// the policy and keys of every zone the batch carries (read with it). Zones it starts
    /// signing must have been read first ([`ZoneSigner::zones_to_init`]).
    pub fn on_batch(
        &mut self,
        batch: &ChangeBatch,
        dnssec: &[(Name, Option<ZoneDnssec>)],
    ) -> Signed {
        let mut out = Signed::default();
        let mut touched: HashSet<Name> = HashSet::new();
        // Policies and keys first: a zone going unsigned takes all its sets away.
        for (apex, d) in dnssec {
            match (d, self.zones.get_mut(apex)) {
                (Some(d), Some(state)) if d.is_signed() => {
                    if &state.dnssec != d {
                        state.dnssec = d.clone();
                        state.whole = true;
                        touched.insert(apex.clone());
                    }
                }
                (Some(d), None) if d.is_signed() => {
                    // A zone that starts signing in this batch and was not initialised from
                    // the registry (a full load: the batch holds everything).
                    if let Some(zone) = batch.changes.iter().find_map(|c| match c {
                        Change::Zone(z) if &z.name == apex => Some(z.clone()),
                        _ => None,
                    }) {
                        self.apexes.insert(apex.clone());
                        self.start_zone(zone, d.clone());
                        touched.insert(apex.clone());
                    }
                }
                (_, Some(_)) => self.stop_zone(apex, &mut out),
                (_, None) => {}
            }
        }
        for z in dnssec.iter().map(|(a, _)| a) {
            if self.zones.contains_key(z) {
                touched.insert(z.clone());
            }
        }
        for c in &batch.changes {
            match c {
                Change::Zone(z) => {
                    self.apexes.insert(z.name.clone());
                    if let Some(state) = self.zones.get_mut(&z.name) {
                        let apex = z.name.clone();
                        for ns in &state.zone.nameservers {
                            if ns.is_subdomain_of(&apex) {
                                dec(&mut state.refs, ns);
                            }
                        }
                        for ns in &z.nameservers {
                            if ns.is_subdomain_of(&apex) {
                                *state.refs.entry(ns.clone()).or_default() += 1;
                            }
                        }
                        // Only the serial changed: the SOA alone. Anything else (TTLs, SOA
                        // fields, apex NS) may change many records: the whole zone.
                        let mut same = state.zone.clone();
                        same.serial = z.serial;
                        if same == *z {
                            state.dirty.insert(apex.clone());
                        } else {
                            state.whole = true;
                        }
                        state.zone = z.clone();
                        touched.insert(apex);
                    }
                }
                Change::ZoneRemoved(n) => {
                    if self.zones.contains_key(n) {
                        self.stop_zone(n, &mut out);
                    }
                    self.apexes.remove(n);
                }
                Change::Domain(d) => self.put_domain(d, &mut touched),
                Change::DomainRemoved(n) => self.remove_domain(n, &mut touched),
                Change::Host(h) => self.put_host(h, &mut touched),
                Change::HostRemoved(n) => {
                    if let Some(z) = self.zone_of(n)
                        && let Some(state) = self.zones.get_mut(&z)
                        && state.hosts.remove(n).is_some()
                    {
                        state.dirty.insert(n.clone());
                        touched.insert(z);
                    }
                }
                _ => {}
            }
        }
        // Zones that failed before are retried with every batch.
        touched.extend(self.failing().into_iter().map(|(n, _)| n));
        let mut touched: Vec<Name> = touched.into_iter().collect();
        touched.sort();
        for apex in touched {
            self.sign(&apex, &mut out);
        }
        self.publish_health();
        out
    }

    /// Retries the zones that failed (the follower calls it when the journal is quiet).
    pub fn retry(&mut self) -> Signed {
        let mut out = Signed::default();
        let mut failing: Vec<Name> = self.failing().into_iter().map(|(n, _)| n).collect();
        failing.sort();
        for apex in failing {
            self.sign(&apex, &mut out);
        }
        self.publish_health();
        out
    }

    fn stop_zone(&mut self, apex: &Name, out: &mut Signed) {
        if let Some(state) = self.zones.remove(apex) {
            let ids: Vec<DnssecRrsetId> = state
                .signed
                .as_ref()
                .map(IncrementalZone::ids)
                .unwrap_or_default();
            out.changes
                .extend(ids.into_iter().map(Change::DnssecRemoved));
            self.domain_refs.retain(|_, hosts| {
                hosts.retain(|h| !h.is_subdomain_of(apex));
                !hosts.is_empty()
            });
            tracing::info!(zone = %apex, "zone no longer signed: its DNSSEC records are removed");
        }
    }

    fn put_host(&mut self, h: &Host, touched: &mut HashSet<Name>) {
        if let Some(z) = self.zone_of(&h.name)
            && let Some(state) = self.zones.get_mut(&z)
        {
            state.hosts.insert(h.name.clone(), h.clone());
            state.dirty.insert(h.name.clone());
            touched.insert(z);
        }
    }

    fn remove_domain(&mut self, name: &Name, touched: &mut HashSet<Name>) {
        for host in self.domain_refs.remove(name).unwrap_or_default() {
            if let Some(z) = self.zone_of(&host)
                && let Some(state) = self.zones.get_mut(&z)
            {
                dec(&mut state.refs, &host);
                state.dirty.insert(host);
                touched.insert(z);
            }
        }
        for (apex, state) in &mut self.zones {
            if state.delegations.remove(name).is_some() {
                state.dirty.insert(name.clone());
                touched.insert(apex.clone());
            }
        }
    }

    fn put_domain(&mut self, d: &Domain, touched: &mut HashSet<Name>) {
        self.remove_domain(&d.name, touched);
        if d.is_delegated() {
            let mut named = Vec::new();
            for ns in &d.nameservers {
                if let Some(z) = self.zone_of(ns)
                    && let Some(state) = self.zones.get_mut(&z)
                {
                    *state.refs.entry(ns.clone()).or_default() += 1;
                    state.dirty.insert(ns.clone());
                    named.push(ns.clone());
                    touched.insert(z);
                }
            }
            if !named.is_empty() {
                self.domain_refs.insert(d.name.clone(), named);
            }
        }
        if let Some(state) = self.zones.get_mut(&d.zone) {
            let mut records = Vec::new();
            domain_records(&state.zone, d, &mut records);
            // One NS is enough to mark the cut (NS at a cut is neither signed nor sent).
            let mut ns_seen = false;
            records.retain(|r| r.rtype != rtype::NS || !std::mem::replace(&mut ns_seen, true));
            if !records.is_empty() {
                state.delegations.insert(d.name.clone(), records);
            }
            state.dirty.insert(d.name.clone());
            touched.insert(d.zone.clone());
        }
    }

    /// Signs one zone from its state and records the differences with what is published:
    /// incrementally (the owners the batch changed) when it can, else the whole zone.
    fn sign(&mut self, apex: &Name, out: &mut Signed) {
        let Some(state) = self.zones.get_mut(apex) else {
            return;
        };
        let Some(keys) = &self.keys else {
            let why = "this master has no key directory ([dnssec] key_dir)".to_owned();
            self.failures += 1;
            fail(apex, state, why, out);
            return;
        };
        let incremental = self.incremental
            && !state.whole
            && state.failing.is_none()
            && state.signed.as_ref().is_some_and(|z| !z.is_stale());
        if incremental {
            let owners: Vec<(Name, Vec<Record>)> = std::mem::take(&mut state.dirty)
                .into_iter()
                .map(|o| {
                    let r = owner_records(state, &o);
                    (o, r)
                })
                .collect();
            let zone = state.signed.as_mut().expect("checked above");
            match zone.update(owners, keys.as_ref(), &mut state.cache) {
                Ok(p) => {
                    self.signings.1 += 1;
                    publish(p, out);
                    return;
                }
                Err(IncrementalError::Whole { why, .. }) => {
                    tracing::info!(zone = %apex, why, "signing the whole zone");
                }
                Err(e) => {
                    self.failures += 1;
                    fail(apex, state, e.to_string(), out);
                    return;
                }
            }
        }
        let mut records = Vec::with_capacity(state.delegations.len() * 2 + 8);
        apex_records(&state.zone, state.zone.serial, &mut records);
        for r in state.delegations.values() {
            records.extend(r.iter().cloned());
        }
        for h in state.hosts.values() {
            if state.refs.get(&h.name).is_some_and(|&n| n > 0) {
                host_records(&state.zone, h, &mut records);
            }
        }
        match IncrementalZone::sign_whole(
            apex,
            &state.dnssec,
            records,
            keys.as_ref(),
            &mut state.cache,
        ) {
            Ok((zone, fresh)) => {
                self.signings.0 += 1;
                if state.failing.take().is_some() {
                    tracing::info!(zone = %apex, "zone signs again; publishing what was withheld");
                    out.recovered = true;
                }
                let mut p = IncrementalZone::diff(state.signed.as_ref(), &zone);
                p.fresh_signatures = fresh;
                publish(p, out);
                state.signed = Some(zone);
                state.whole = false;
                state.dirty.clear();
            }
            Err(e) => {
                self.failures += 1;
                fail(apex, state, e.to_string(), out);
            }
        }
    }
}

/// Every record of one owner of the zone, as the whole-zone signing collects them: the apex
/// records, a delegation's NS and DS, a published in-zone host's addresses.
fn owner_records(state: &ZoneState, owner: &Name) -> Vec<Record> {
    let mut records = Vec::new();
    if owner == &state.zone.name {
        apex_records(&state.zone, state.zone.serial, &mut records);
    }
    if let Some(r) = state.delegations.get(owner) {
        records.extend(r.iter().cloned());
    }
    if let Some(h) = state.hosts.get(owner)
        && state.refs.get(owner).is_some_and(|&n| n > 0)
    {
        host_records(&state.zone, h, &mut records);
    }
    records
}

/// Adds a signing's changes to the batch's.
fn publish(p: Published, out: &mut Signed) {
    out.fresh_signatures += p.fresh_signatures;
    out.changes
        .extend(p.changed.into_iter().map(Change::Dnssec));
    out.changes
        .extend(p.removed.into_iter().map(Change::DnssecRemoved));
}

/// A zone that cannot be signed: it keeps its last signed state, its changes are withheld.
fn fail(apex: &Name, state: &mut ZoneState, why: String, out: &mut Signed) {
    if state.failing.as_deref() != Some(why.as_str()) {
        tracing::error!(
            zone = %apex,
            error = %why,
            "cannot sign the zone: its changes are withheld and satellites keep its \
             last signed state until it signs again"
        );
    }
    state.failing = Some(why);
    out.withheld.insert(apex.clone());
}

fn dec(refs: &mut HashMap<Name, u32>, name: &Name) {
    if let Some(n) = refs.get_mut(name) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            refs.remove(name);
        }
    }
}
