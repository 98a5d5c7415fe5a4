//! The signing duty, a singleton under the store's `dnssec` lease: it moves each signed zone's
//! signature window once per refresh period (`Store::advance_signature_window`), so signatures
//! are renewed before they expire without anyone running `orrery-admin dnssec refresh`, and it
//! rolls the zones' keys on their schedule (`crate::rollover`).
//!
//! The window is a journalled store write, so the move reaches every master as a change to the
//! zone, and each signs the zone with the new inception at that serial (same bytes everywhere).
//! "Now" is the database's clock, which every master shares. The move is idempotent within a
//! period (`window_for` gives one value per period), so two masters around a lease takeover
//! cost one no-op statement. Lease handling is the maintenance duty's (`maintenance.rs`).
//!
//! # Keys on several masters
//! A key the duty generates is written to the key directory of the master holding the lease,
//! and only there: every other master must get the file (copied, or a shared directory; the
//! runbook deploy/runbooks/dnssec.md) before the key signs, or it would withhold the zone from
//! then on. So every master — lease holder or not — reports at each period which of the
//! zones' keys it can load and that match the store's public key
//! (`Store::report_loadable_keys`), and the duty activates a key only when every live master
//! (a fresh heartbeat in the cluster state, and this one) has reported it. Until then the
//! activation waits, logged as a warning naming the masters that lack the key, and shown by
//! `orrery-admin dnssec keys` (`loadable_on`). Keys are generated at publication, at least
//! the DNSKEY TTL plus the propagation delay before they are due to sign, which is the time
//! the operator (or the file synchronisation) has to bring the file to every master.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use orrery_proto::dnssec::{KeyState, ZoneDnssec};
use orrery_proto::{Name, Timestamp};
use orrery_signer::{KeyStore, can_sign_with, new_zone_key};
use orrery_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::cluster_state::ClusterState;
use crate::config::DnssecSettings;
use crate::rollover::{Step, ZoneTtls, next_step};
use crate::signing::SharedKeyStore;

/// The lease's name in `cluster_lease`, and the duty's name in `status`.
pub const LEASE: &str = "dnssec";

/// Most rollover steps taken for one zone in one period (a step's condition only becomes
/// true after the previous step's time, so a zone settles in two or three; this bounds a bug).
const STEPS_PER_PERIOD: usize = 8;

/// The signing duty of one master.
pub struct SigningDuty {
    store: Store,
    settings: DnssecSettings,
    state: Arc<ClusterState>,
    keys: Option<SharedKeyStore>,
}

/// What [`roll_keys`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rolled {
    /// The steps taken, per zone, in order.
    pub steps: Vec<(Name, Step)>,
    /// Activations due but held back: (zone, key locator, the live masters that cannot load it).
    pub blocked: Vec<(Name, String, Vec<String>)>,
}

/// Why a rollover step could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RolloverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("zone {zone}: cannot generate a {role} key: {reason}")]
    Generate {
        zone: Name,
        role: &'static str,
        reason: String,
    },
}

impl SigningDuty {
    /// `keys`: this master's key store (`dnssec.key_dir`), `None` on a master that does not sign.
    pub fn new(
        store: Store,
        settings: DnssecSettings,
        state: Arc<ClusterState>,
        keys: Option<SharedKeyStore>,
    ) -> Self {
        Self {
            store,
            settings,
            state,
            keys,
        }
    }

    /// Every check period until `shutdown`: report the keys this master can load, take or
    /// renew the lease, and while holding it move the windows due and roll the keys due. The
    /// first period starts at once.
    pub async fn run(self, shutdown: CancellationToken) {
        let me = self.state.id().to_owned();
        let period = self.settings.refresh_check;
        let stale_after = self.state.stale_after();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut held = false;
        let mut blocked: BTreeSet<(Name, String, Vec<String>)> = BTreeSet::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let keys = self.keys.as_deref();
            if let Err(e) = report_loadable(&self.store, keys, &me).await {
                tracing::warn!(error = %e, "DNSSEC signing duty: cannot report the keys this master can load (next period)");
            }
            match self.store.acquire_lease(LEASE, &me, period * 2).await {
                Ok(now) => {
                    if now != held {
                        tracing::info!(master = %me, held = now, "DNSSEC signing duty lease");
                        self.state.set_duty(LEASE, now);
                        held = now;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "DNSSEC signing duty: cannot reach the store for the lease (next period)");
                    continue;
                }
            }
            if !held {
                continue;
            }
            if let Err(e) = refresh_windows(&self.store).await {
                tracing::warn!(error = %e, "DNSSEC signing duty: cannot move the signature windows (next period)");
            }
            match roll_keys(&self.store, keys, &me, stale_after).await {
                Ok(rolled) => {
                    let now: BTreeSet<_> = rolled.blocked.into_iter().collect();
                    for (zone, key, missing) in now.difference(&blocked) {
                        tracing::warn!(zone = %zone, key = %key, masters = ?missing,
                            "DNSSEC key rollover waits: these live masters cannot load the key \
                             (copy it to their key directories, deploy/runbooks/dnssec.md)");
                    }
                    for (zone, key, _) in blocked.difference(&now) {
                        tracing::info!(zone = %zone, key = %key, "DNSSEC key rollover no longer waits for a key file");
                    }
                    blocked = now;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "DNSSEC signing duty: cannot roll keys (next period)");
                }
            }
        }
        if held {
            self.state.set_duty(LEASE, false);
            if let Err(e) = self.store.release_lease(LEASE, &me).await {
                tracing::warn!(error = %e, "DNSSEC signing duty: cannot release the lease (it runs out)");
            }
        }
    }
}

/// Moves the signature window of every signed zone whose next refresh period has begun (by
/// the database's clock). Returns how many moved.
pub async fn refresh_windows(store: &Store) -> Result<usize, StoreError> {
    let now = db_now(store).await?;
    let mut moved = 0;
    for zone in store.zones().await? {
        let Some(d) = store.dnssec(&zone.name).await? else {
            continue;
        };
        if !d.is_signed() {
            continue;
        }
        if let Some(inception) = store.advance_signature_window(&zone.name, now).await? {
            tracing::info!(zone = %zone.name, inception = inception.0, "moved the signature window");
            moved += 1;
        }
    }
    Ok(moved)
}

async fn db_now(store: &Store) -> Result<Timestamp, StoreError> {
    Ok(Timestamp(store.now_ms().await?.div_euclid(1000)))
}

/// Reports in the store which keys of the zones with a DNSSEC policy this master can sign
/// with (`keys` `None`: none). Returns their locators.
pub async fn report_loadable(
    store: &Store,
    keys: Option<&(dyn KeyStore + Send + Sync)>,
    me: &str,
) -> Result<Vec<String>, StoreError> {
    let mut loadable = Vec::new();
    if let Some(keys) = keys {
        for zone in store.zones().await? {
            let Some(d) = store.dnssec(&zone.name).await? else {
                continue;
            };
            for k in &d.keys {
                match can_sign_with(keys, k) {
                    Ok(()) => loadable.push(k.locator.clone()),
                    Err(e) => {
                        tracing::debug!(zone = %zone.name, key = %k.locator, error = %e, "key not loadable here");
                    }
                }
            }
        }
    }
    store.report_loadable_keys(me, &loadable).await?;
    Ok(loadable)
}

/// Takes the rollover steps due now (the database's clock) in every signed zone; see
/// [`roll_keys_at`].
pub async fn roll_keys(
    store: &Store,
    keys: Option<&(dyn KeyStore + Send + Sync)>,
    me: &str,
    stale_after: Duration,
) -> Result<Rolled, RolloverError> {
    let now = db_now(store).await?;
    roll_keys_at(store, keys, me, stale_after, now).await
}

/// Takes the rollover steps due at `now` in every signed zone: publications generate the key
/// in `keys`; an activation waits until every live master (a heartbeat within `stale_after`,
/// and `me`) reports the key loadable.
pub async fn roll_keys_at(
    store: &Store,
    keys: Option<&(dyn KeyStore + Send + Sync)>,
    me: &str,
    stale_after: Duration,
    now: Timestamp,
) -> Result<Rolled, RolloverError> {
    let db_ms = store.now_ms().await?;
    let stale_ms = i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX);
    let mut live: BTreeSet<String> = store
        .cluster_masters()
        .await?
        .into_iter()
        .filter(|m| db_ms - m.heartbeat_ms <= stale_ms)
        .map(|m| m.id)
        .collect();
    live.insert(me.to_owned());
    let mut holders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (master, locator) in store.loadable_keys().await? {
        holders.entry(locator).or_default().insert(master);
    }
    let mut rolled = Rolled::default();
    for zone in store.zones().await? {
        let apex = zone.name.clone();
        let Some(mut d) = store.dnssec(&apex).await? else {
            continue;
        };
        if !d.is_signed() {
            continue;
        }
        for _ in 0..STEPS_PER_PERIOD {
            let ttls = ZoneTtls::of(&zone, &d.policy);
            let Some(step) = next_step(&d.policy, &d.keys, ttls, now) else {
                break;
            };
            if let Step::Activate { key, .. } = &step {
                let missing: Vec<String> = live
                    .iter()
                    .filter(|m| !holders.get(key).is_some_and(|h| h.contains(*m)))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    rolled.blocked.push((apex.clone(), key.clone(), missing));
                    break;
                }
            }
            take(store, keys, &apex, &d, &step, now).await?;
            tracing::info!(zone = %apex, step = ?step, "DNSSEC key rollover step");
            rolled.steps.push((apex.clone(), step));
            d = match store.dnssec(&apex).await? {
                Some(d) => d,
                None => break,
            };
        }
    }
    Ok(rolled)
}

/// Writes one step to the store (each a journalled zone change: the zone re-signs at that
/// serial on every master).
async fn take(
    store: &Store,
    keys: Option<&(dyn KeyStore + Send + Sync)>,
    apex: &Name,
    d: &ZoneDnssec,
    step: &Step,
    now: Timestamp,
) -> Result<(), RolloverError> {
    let tag = |locator: &str| {
        d.keys
            .iter()
            .find(|k| k.locator == locator)
            .map_or(0, |k| k.key_tag)
    };
    match step {
        Step::Publish { role } => {
            let generate = |reason: String| RolloverError::Generate {
                zone: apex.clone(),
                role: role.as_str(),
                reason,
            };
            let keys =
                keys.ok_or_else(|| generate("this master has no key directory".to_owned()))?;
            let key = new_zone_key(
                keys,
                apex,
                *role,
                d.policy.algorithm,
                KeyState::Published,
                now,
            )
            .map_err(|e| generate(e.to_string()))?;
            store.add_zone_key(apex, &key).await?;
            tracing::info!(zone = %apex, role = role.as_str(), key_tag = key.key_tag, locator = %key.locator,
                "DNSSEC: generated and published a successor key; copy its file to every other signing master before it is due to sign");
        }
        Step::Activate { key, retire } => {
            let mut moves = vec![(key.as_str(), KeyState::Active, tag(key))];
            moves.extend(
                retire
                    .iter()
                    .map(|r| (r.as_str(), KeyState::Retired, tag(r))),
            );
            store.set_key_states(apex, &moves, now).await?;
        }
        Step::Retire { keys: old } => {
            let moves: Vec<_> = old
                .iter()
                .map(|r| (r.as_str(), KeyState::Retired, tag(r)))
                .collect();
            store.set_key_states(apex, &moves, now).await?;
        }
        Step::Remove { key } => store.remove_zone_key(apex, key).await?,
    }
    Ok(())
}
