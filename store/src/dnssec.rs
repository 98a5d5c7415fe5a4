//! A zone's DNSSEC policy and public keys: typed reads and validated writes.
//!
//! Every write here is journalled as a change to the zone (`migrations/*/…_dnssec.sql`), so the
//! zone's serial moves with its keys and readers of the journal need no new object kind: an
//! older master or satellite re-reads the zone and ignores what it does not know. A reader that
//! signs reads the policy and keys of a serial in the same snapshot as the zone
//! ([`crate::ZoneItem::Dnssec`] in [`Store::visit_zone`], or [`Store::dnssec`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use orrery_proto::dnssec::{
    Algorithm, Denial, DnssecPolicy, KeyRole, KeyState, KeyTimings, ZoneDnssec, ZoneKey,
};
use orrery_proto::{Name, Timestamp};
use sqlx::AssertSqlSafe;

use crate::read::{RowResult, bad_row};
use crate::write::{Arg, Tx};
use crate::{Result, Store, StoreError, on_pool};

/// The policy of one zone, by zone id (`$1`).
pub(crate) const POLICY_SQL: &str = "SELECT denial, CAST(algorithm AS bigint) AS algorithm, \
    CAST(validity_s AS bigint) AS validity_s, CAST(refresh_s AS bigint) AS refresh_s, \
    CAST(dnskey_ttl AS bigint) AS dnskey_ttl, CAST(inception_s AS bigint) AS inception_s, \
    CAST(zsk_lifetime_s AS bigint) AS zsk_lifetime_s, CAST(ksk_lifetime_s AS bigint) AS ksk_lifetime_s, \
    CAST(propagation_s AS bigint) AS propagation_s, CAST(parent_ds_ttl_s AS bigint) AS parent_ds_ttl_s \
    FROM dnssec_policy WHERE zone_id = $1";

/// The keys of one zone, by zone id (`$1`), in the one order every reader sees.
pub(crate) const KEYS_SQL: &str = "SELECT role, CAST(algorithm AS bigint) AS algorithm, \
    CAST(key_tag AS bigint) AS key_tag, public_key, state, locator, \
    CAST(created_s AS bigint) AS created_s, CAST(published_s AS bigint) AS published_s, \
    CAST(activated_s AS bigint) AS activated_s, CAST(retired_s AS bigint) AS retired_s, \
    CAST(revoked_s AS bigint) AS revoked_s, CAST(ds_seen_s AS bigint) AS ds_seen_s \
    FROM dnssec_key WHERE zone_id = $1 ORDER BY role, algorithm, key_tag, public_key";

#[derive(sqlx::FromRow)]
pub(crate) struct PolicyRow {
    denial: String,
    algorithm: Option<i64>,
    validity_s: Option<i64>,
    refresh_s: Option<i64>,
    dnskey_ttl: Option<i64>,
    inception_s: Option<i64>,
    zsk_lifetime_s: Option<i64>,
    ksk_lifetime_s: Option<i64>,
    propagation_s: Option<i64>,
    parent_ds_ttl_s: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    role: String,
    algorithm: Option<i64>,
    key_tag: Option<i64>,
    public_key: String,
    state: String,
    locator: String,
    created_s: Option<i64>,
    published_s: Option<i64>,
    activated_s: Option<i64>,
    retired_s: Option<i64>,
    revoked_s: Option<i64>,
    ds_seen_s: Option<i64>,
}

fn u32_of(table: &'static str, zone: &str, field: &str, v: Option<i64>) -> RowResult<u32> {
    v.and_then(|v| u32::try_from(v).ok()).ok_or_else(|| {
        bad_row(
            "zone",
            table,
            zone,
            format!("{field} {v:?} is not a 32-bit count"),
        )
    })
}

/// The zone's DNSSEC state from its rows; a row that cannot be read makes the zone's DNSSEC
/// state a bad row (signing with a guessed key set would publish a broken zone).
pub(crate) fn into_model(
    zone: &str,
    policy: PolicyRow,
    keys: Vec<KeyRow>,
) -> RowResult<ZoneDnssec> {
    let t = "dnssec_policy";
    let denial = Denial::parse(&policy.denial)
        .ok_or_else(|| bad_row("zone", t, zone, format!("denial {:?}", policy.denial)))?;
    let algorithm = policy
        .algorithm
        .and_then(|a| u8::try_from(a).ok())
        .and_then(Algorithm::from_number)
        .ok_or_else(|| bad_row("zone", t, zone, format!("algorithm {:?}", policy.algorithm)))?;
    let policy = DnssecPolicy {
        denial,
        algorithm,
        validity: u32_of(t, zone, "validity_s", policy.validity_s)?,
        refresh: u32_of(t, zone, "refresh_s", policy.refresh_s)?,
        dnskey_ttl: u32_of(t, zone, "dnskey_ttl", policy.dnskey_ttl)?,
        inception: Timestamp(
            policy
                .inception_s
                .ok_or_else(|| bad_row("zone", t, zone, "inception_s is not a number"))?,
        ),
        timings: KeyTimings {
            zsk_lifetime: policy
                .zsk_lifetime_s
                .map(|v| u32_of(t, zone, "zsk_lifetime_s", Some(v)))
                .transpose()?,
            ksk_lifetime: policy
                .ksk_lifetime_s
                .map(|v| u32_of(t, zone, "ksk_lifetime_s", Some(v)))
                .transpose()?,
            propagation: u32_of(t, zone, "propagation_s", policy.propagation_s)?,
            parent_ds_ttl: u32_of(t, zone, "parent_ds_ttl_s", policy.parent_ds_ttl_s)?,
        },
    };
    policy.check().map_err(|e| bad_row("zone", t, zone, e))?;
    let t = "dnssec_key";
    let keys = keys
        .into_iter()
        .map(|k| {
            let bad = |what: String| bad_row("zone", t, zone, format!("key {}: {what}", k.locator));
            Ok(ZoneKey {
                role: KeyRole::parse(&k.role).ok_or_else(|| bad(format!("role {:?}", k.role)))?,
                algorithm: k
                    .algorithm
                    .and_then(|a| u8::try_from(a).ok())
                    .and_then(Algorithm::from_number)
                    .ok_or_else(|| bad(format!("algorithm {:?}", k.algorithm)))?,
                key_tag: k
                    .key_tag
                    .and_then(|v| u16::try_from(v).ok())
                    .ok_or_else(|| bad(format!("key tag {:?}", k.key_tag)))?,
                public_key: BASE64
                    .decode(&k.public_key)
                    .map_err(|e| bad(format!("public key: {e}")))?,
                state: KeyState::parse(&k.state)
                    .ok_or_else(|| bad(format!("state {:?}", k.state)))?,
                created: Timestamp(k.created_s.ok_or_else(|| bad("created_s".into()))?),
                published: k.published_s.map(Timestamp),
                activated: k.activated_s.map(Timestamp),
                retired: k.retired_s.map(Timestamp),
                revoked: k.revoked_s.map(Timestamp),
                ds_seen: k.ds_seen_s.map(Timestamp),
                locator: k.locator.clone(),
            })
        })
        .collect::<RowResult<Vec<_>>>()?;
    Ok(ZoneDnssec { policy, keys })
}

impl Store {
    /// The zone's DNSSEC policy and keys, `None` when it has no policy (an unsigned zone, as
    /// every zone was before issue 13). Errors when the zone does not exist.
    pub async fn dnssec(&self, apex: &Name) -> Result<Option<ZoneDnssec>> {
        let zone = apex.to_string();
        let db = StoreError::Sql;
        on_pool!(self, p => {
            let mut tx = p.begin().await.map_err(db)?;
            let id: Option<i64> = sqlx::query_scalar("SELECT id FROM zone WHERE name = $1")
                .bind(&zone)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let Some(id) = id else {
                return Err(StoreError::NotFound { kind: "zone", key: zone });
            };
            let policy: Option<PolicyRow> = sqlx::query_as(AssertSqlSafe(POLICY_SQL))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let Some(policy) = policy else { return Ok(None) };
            let keys: Vec<KeyRow> = sqlx::query_as(AssertSqlSafe(KEYS_SQL))
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(Some(into_model(&zone, policy, keys)?))
        })
    }

    /// Sets the zone's policy (creating it), journalled as a change to the zone.
    pub async fn set_dnssec_policy(&self, apex: &Name, policy: &DnssecPolicy) -> Result<()> {
        policy
            .check()
            .map_err(|e| StoreError::invalid("dnssec policy", e))?;
        let mut tx = Tx::begin(self).await?;
        let zone_id = zone_id(&mut tx, apex).await?;
        tx.exec(
            "INSERT INTO dnssec_policy(zone_id, denial, algorithm, validity_s, refresh_s, dnskey_ttl, inception_s, \
             zsk_lifetime_s, ksk_lifetime_s, propagation_s, parent_ds_ttl_s) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (zone_id) DO UPDATE SET denial = EXCLUDED.denial, \
             algorithm = EXCLUDED.algorithm, validity_s = EXCLUDED.validity_s, refresh_s = EXCLUDED.refresh_s, \
             dnskey_ttl = EXCLUDED.dnskey_ttl, inception_s = EXCLUDED.inception_s, \
             zsk_lifetime_s = EXCLUDED.zsk_lifetime_s, ksk_lifetime_s = EXCLUDED.ksk_lifetime_s, \
             propagation_s = EXCLUDED.propagation_s, parent_ds_ttl_s = EXCLUDED.parent_ds_ttl_s",
            &[
                Arg::I64(zone_id),
                Arg::Text(policy.denial.as_str().to_owned()),
                Arg::I64(policy.algorithm.number().into()),
                Arg::I64(policy.validity.into()),
                Arg::I64(policy.refresh.into()),
                Arg::I64(policy.dnskey_ttl.into()),
                Arg::I64(policy.inception.0),
                Arg::OptI64(policy.timings.zsk_lifetime.map(i64::from)),
                Arg::OptI64(policy.timings.ksk_lifetime.map(i64::from)),
                Arg::I64(policy.timings.propagation.into()),
                Arg::I64(policy.timings.parent_ds_ttl.into()),
            ],
        )
        .await?;
        tx.commit().await
    }

    /// Moves the zone's signature window to the one for `now` if that is later than the
    /// current one (one journalled write per refresh period; the same window for every master
    /// that does it in the same period). Returns the new inception when it moved.
    pub async fn advance_signature_window(
        &self,
        apex: &Name,
        now: Timestamp,
    ) -> Result<Option<Timestamp>> {
        let Some(d) = self.dnssec(apex).await? else {
            return Err(StoreError::NotFound {
                kind: "dnssec policy of zone",
                key: apex.to_string(),
            });
        };
        let next = DnssecPolicy::window_for(d.policy.refresh, now);
        if next <= d.policy.inception {
            return Ok(None);
        }
        let mut tx = Tx::begin(self).await?;
        let zone_id = zone_id(&mut tx, apex).await?;
        let n = tx
            .exec(
                "UPDATE dnssec_policy SET inception_s = $2 WHERE zone_id = $1 AND inception_s < $2",
                &[Arg::I64(zone_id), Arg::I64(next.0)],
            )
            .await?;
        tx.commit().await?;
        Ok((n > 0).then_some(next))
    }

    /// Adds a public key to the zone (its private half is already in the key store under
    /// `key.locator`), journalled as a change to the zone.
    pub async fn add_zone_key(&self, apex: &Name, key: &ZoneKey) -> Result<()> {
        let mut tx = Tx::begin(self).await?;
        let zone_id = zone_id(&mut tx, apex).await?;
        let opt = |t: Option<Timestamp>| Arg::OptI64(t.map(|t| t.0));
        tx.exec(
            "INSERT INTO dnssec_key(zone_id, role, algorithm, key_tag, public_key, state, locator, created_s, \
             published_s, activated_s, retired_s, revoked_s, ds_seen_s) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &[
                Arg::I64(zone_id),
                Arg::Text(key.role.as_str().to_owned()),
                Arg::I64(key.algorithm.number().into()),
                Arg::I64(key.key_tag.into()),
                Arg::Text(BASE64.encode(&key.public_key)),
                Arg::Text(key.state.as_str().to_owned()),
                Arg::Text(key.locator.clone()),
                Arg::I64(key.created.0),
                opt(key.published),
                opt(key.activated),
                opt(key.retired),
                opt(key.revoked),
                opt(key.ds_seen),
            ],
        )
        .await?;
        tx.commit().await
    }

    /// Moves a key (by its locator) to `state` at `at`, recording the time of the state, and
    /// its key tag (the REVOKE flag changes it, RFC 5011 §2.1). Journalled as a zone change.
    pub async fn set_key_state(
        &self,
        apex: &Name,
        locator: &str,
        state: KeyState,
        key_tag: u16,
        at: Timestamp,
    ) -> Result<()> {
        self.set_key_states(apex, &[(locator, state, key_tag)], at)
            .await
    }

    /// Moves several keys (locator, state, key tag) in one transaction, so one serial has
    /// all of them: a ZSK swap activates the successor and retires its predecessor at once,
    /// and no serial has both or neither signing.
    pub async fn set_key_states(
        &self,
        apex: &Name,
        moves: &[(&str, KeyState, u16)],
        at: Timestamp,
    ) -> Result<()> {
        let mut tx = Tx::begin(self).await?;
        let zone_id = zone_id(&mut tx, apex).await?;
        for &(locator, state, key_tag) in moves {
            let col = match state {
                KeyState::Published => "published_s",
                KeyState::Active => "activated_s",
                KeyState::Retired => "retired_s",
                KeyState::Revoked => "revoked_s",
            };
            let n = tx
                .exec(
                    &format!(
                        "UPDATE dnssec_key SET state = $3, key_tag = $4, {col} = $5 WHERE zone_id = $1 AND locator = $2"
                    ),
                    &[
                        Arg::I64(zone_id),
                        Arg::Text(locator.to_owned()),
                        Arg::Text(state.as_str().to_owned()),
                        Arg::I64(key_tag.into()),
                        Arg::I64(at.0),
                    ],
                )
                .await?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    kind: "key",
                    key: format!("{locator} of zone {apex}"),
                });
            }
        }
        tx.commit().await
    }

    /// Records that the parent publishes the DS of a KSK or CSK (by its locator) since `at`:
    /// the operator step of a double-DS rollover, after which the signing duty retires the
    /// older KSKs once the parent's DS TTL has passed. Journalled as a zone change.
    pub async fn set_ds_seen(&self, apex: &Name, locator: &str, at: Timestamp) -> Result<()> {
        let mut tx = Tx::begin(self).await?;
        let zone_id = zone_id(&mut tx, apex).await?;
        let n = tx
            .exec(
                "UPDATE dnssec_key SET ds_seen_s = $3 WHERE zone_id = $1 AND locator = $2 AND role IN ('ksk', 'csk')",
                &[
                    Arg::I64(zone_id),
                    Arg::Text(locator.to_owned()),
                    Arg::I64(at.0),
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound {
                kind: "KSK or CSK",
                key: format!("{locator} of zone {apex}"),
            });
        }
        tx.commit().await
    }

    /// Replaces the set of key locators master `master_id` can load (its report at each
    /// signing-duty period). Cluster state, not the registry: not journalled.
    pub async fn report_loadable_keys(&self, master_id: &str, locators: &[String]) -> Result<()> {
        let now = self.sql.now_ms();
        let insert = format!(
            "INSERT INTO dnssec_key_loadable(master_id, locator, checked_ms) VALUES ($1, $2, {now}) \
             ON CONFLICT (master_id, locator) DO NOTHING"
        );
        let mut tx = Tx::begin(self).await?;
        tx.exec(
            "DELETE FROM dnssec_key_loadable WHERE master_id = $1",
            &[Arg::Text(master_id.to_owned())],
        )
        .await?;
        for locator in locators {
            tx.exec(
                &insert,
                &[Arg::Text(master_id.to_owned()), Arg::Text(locator.clone())],
            )
            .await?;
        }
        tx.commit().await
    }

    /// Every (master, locator) pair reported loadable, by master then locator.
    pub async fn loadable_keys(&self) -> Result<Vec<(String, String)>> {
        let sql = "SELECT master_id, locator FROM dnssec_key_loadable ORDER BY master_id, locator";
        Ok(on_pool!(self, p => sqlx::query_as::<_, (String, String)>(sql).fetch_all(p).await?))
    }

    /// Removes a key (by its locator) from the zone: the end of a rollover, once the key's
    /// signatures have left every cache (the private key file stays; the operator archives
    /// it). Journalled as a zone change.
    pub async fn remove_zone_key(&self, apex: &Name, locator: &str) -> Result<()> {
        let mut tx = Tx::begin(self).await?;
        let zone_id = zone_id(&mut tx, apex).await?;
        let n = tx
            .exec(
                "DELETE FROM dnssec_key WHERE zone_id = $1 AND locator = $2",
                &[Arg::I64(zone_id), Arg::Text(locator.to_owned())],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound {
                kind: "key",
                key: format!("{locator} of zone {apex}"),
            });
        }
        tx.commit().await
    }
}

async fn zone_id(tx: &mut Tx, apex: &Name) -> Result<i64> {
    tx.opt_i64(
        "SELECT id FROM zone WHERE name = $1",
        &[Arg::Text(apex.to_string())],
    )
    .await?
    .ok_or_else(|| StoreError::NotFound {
        kind: "zone",
        key: apex.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use orrery_proto::Change;

    use super::*;
    use crate::testing::{add_test_zone, backends, raw};
    use crate::{ChangesSince, HostSelection, ZoneItem};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn key(tag: u16, public: u8, state: KeyState) -> ZoneKey {
        ZoneKey {
            role: KeyRole::Csk,
            algorithm: Algorithm::EcdsaP256Sha256,
            key_tag: tag,
            public_key: vec![public; 64],
            state,
            locator: format!("Ktest+013+{tag:05}-0.pk8"),
            created: Timestamp(1_800_000_000),
            published: Some(Timestamp(1_800_000_000)),
            activated: None,
            retired: None,
            revoked: None,
            ds_seen: None,
        }
    }

    #[tokio::test]
    async fn policy_and_keys_round_trip_and_journal_the_zone_on_both_backends() {
        for db in backends().await {
            let store = &db.store;
            add_test_zone(store).await;
            let apex = n("test");
            assert_eq!(store.dnssec(&apex).await.unwrap(), None, "no policy yet");
            let before = store.zone_serial(&apex).await.unwrap().unwrap();

            let policy = DnssecPolicy::tld_default(Timestamp(1_799_996_400));
            store.set_dnssec_policy(&apex, &policy).await.unwrap();
            let after_policy = store.zone_serial(&apex).await.unwrap().unwrap();
            assert!(
                after_policy > before,
                "a policy write moves the zone's serial"
            );

            store
                .add_zone_key(&apex, &key(7, 1, KeyState::Published))
                .await
                .unwrap();
            store
                .add_zone_key(&apex, &key(3, 2, KeyState::Active))
                .await
                .unwrap();
            let after_keys = store.zone_serial(&apex).await.unwrap().unwrap();
            assert!(after_keys > after_policy);

            // The journal names the zone, a kind every reader knows: a follower re-reads it.
            let ChangesSince::Batch(b) = store.changes_since(before, 1000).await.unwrap() else {
                panic!("too far behind")
            };
            assert!(b.bad_rows.is_empty());
            assert!(
                b.batch
                    .changes
                    .iter()
                    .any(|c| matches!(c, Change::Zone(z) if z.name == apex))
            );

            let d = store.dnssec(&apex).await.unwrap().unwrap();
            assert_eq!(d.policy, policy);
            // Ordered by role, algorithm, tag: 3 before 7.
            assert_eq!(
                d.keys,
                vec![key(3, 2, KeyState::Active), key(7, 1, KeyState::Published)]
            );

            // The batch carries the zone's policy and keys of its serial, read with it.
            assert_eq!(b.dnssec, vec![(apex.clone(), Some(d.clone()))]);
            // And so does a read of the whole registry.
            let mut in_registry = Vec::new();
            store
                .visit_registry(|item| {
                    if let crate::RegistryItem::Dnssec(z, x) = item {
                        in_registry.push((z, x));
                    }
                    Ok::<_, StoreError>(())
                })
                .await
                .unwrap();
            assert_eq!(in_registry, vec![(apex.clone(), d.clone())]);

            // The same state, from the zone's snapshot.
            let mut seen = None;
            store
                .visit_zone(&apex, HostSelection::Published, |item| {
                    if let ZoneItem::Dnssec(x) = item {
                        seen = Some(x);
                    }
                    Ok::<_, StoreError>(())
                })
                .await
                .unwrap();
            assert_eq!(seen.as_ref(), Some(&d));

            // State changes record their time; an unknown key is NotFound.
            store
                .set_key_state(
                    &apex,
                    &key(7, 1, KeyState::Published).locator,
                    KeyState::Active,
                    7,
                    Timestamp(1_800_100_000),
                )
                .await
                .unwrap();
            let d = store.dnssec(&apex).await.unwrap().unwrap();
            assert_eq!(d.keys[1].state, KeyState::Active);
            assert_eq!(d.keys[1].activated, Some(Timestamp(1_800_100_000)));
            assert!(matches!(
                store
                    .set_key_state(&apex, "nope", KeyState::Retired, 1, Timestamp(0))
                    .await,
                Err(StoreError::NotFound { .. })
            ));

            // The operator step of a double-DS rollover, on a SEP key only.
            let csk = key(7, 1, KeyState::Published).locator;
            store
                .set_ds_seen(&apex, &csk, Timestamp(1_800_200_000))
                .await
                .unwrap();
            let d = store.dnssec(&apex).await.unwrap().unwrap();
            assert_eq!(d.keys[1].ds_seen, Some(Timestamp(1_800_200_000)));
            assert!(matches!(
                store.set_ds_seen(&apex, "nope", Timestamp(0)).await,
                Err(StoreError::NotFound { .. })
            ));
            // Several states in one write (one serial).
            let serial = store.zone_serial(&apex).await.unwrap();
            store
                .set_key_states(
                    &apex,
                    &[
                        (csk.as_str(), KeyState::Retired, 7),
                        (&key(3, 2, KeyState::Active).locator, KeyState::Active, 3),
                    ],
                    Timestamp(1_800_300_000),
                )
                .await
                .unwrap();
            let d = store.dnssec(&apex).await.unwrap().unwrap();
            assert_eq!(d.keys[1].state, KeyState::Retired);
            assert_eq!(d.keys[1].retired, Some(Timestamp(1_800_300_000)));
            assert!(store.zone_serial(&apex).await.unwrap() > serial);
            // A failing move leaves every key as it was.
            assert!(
                store
                    .set_key_states(
                        &apex,
                        &[
                            (csk.as_str(), KeyState::Active, 7),
                            ("nope", KeyState::Active, 1)
                        ],
                        Timestamp(1_800_400_000),
                    )
                    .await
                    .is_err()
            );
            assert_eq!(
                store.dnssec(&apex).await.unwrap().unwrap().keys[1].state,
                KeyState::Retired
            );
            // Which masters can load which keys: each report replaces that master's.
            store
                .report_loadable_keys("m1", &["a".into(), "b".into()])
                .await
                .unwrap();
            store
                .report_loadable_keys("m2", &["b".into()])
                .await
                .unwrap();
            store
                .report_loadable_keys("m1", &["c".into()])
                .await
                .unwrap();
            assert_eq!(
                store.loadable_keys().await.unwrap(),
                vec![("m1".into(), "c".into()), ("m2".into(), "b".into())]
            );

            // A key leaves the zone; an unknown one is NotFound.
            let serial = store.zone_serial(&apex).await.unwrap();
            store
                .remove_zone_key(&apex, &key(3, 2, KeyState::Active).locator)
                .await
                .unwrap();
            assert!(
                store.zone_serial(&apex).await.unwrap() > serial,
                "journalled"
            );
            assert_eq!(store.dnssec(&apex).await.unwrap().unwrap().keys.len(), 1);
            assert!(matches!(
                store.remove_zone_key(&apex, "nope").await,
                Err(StoreError::NotFound { .. })
            ));

            // The signature window moves once per refresh period, forward only.
            let now = Timestamp(policy.inception.0 + 3600 + 10);
            assert_eq!(
                store.advance_signature_window(&apex, now).await.unwrap(),
                None
            );
            let later = Timestamp(now.0 + i64::from(policy.refresh));
            let moved = store
                .advance_signature_window(&apex, later)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(moved, DnssecPolicy::window_for(policy.refresh, later));
            assert_eq!(
                store.dnssec(&apex).await.unwrap().unwrap().policy.inception,
                moved
            );
            assert_eq!(
                store.advance_signature_window(&apex, later).await.unwrap(),
                None
            );

            // Bad numbers are refused before they reach the database, and by it.
            let mut bad = policy.clone();
            bad.refresh = bad.validity;
            assert!(store.set_dnssec_policy(&apex, &bad).await.is_err());
            assert!(
                raw(store, "UPDATE dnssec_policy SET algorithm = 8")
                    .await
                    .is_err()
            );
            assert!(
                raw(store, "UPDATE dnssec_key SET state = 'lost'")
                    .await
                    .is_err()
            );
            db.finish().await;
        }
    }

    #[tokio::test]
    async fn an_unreadable_key_is_a_bad_row_not_a_smaller_key_set() {
        for db in backends().await {
            let store = &db.store;
            add_test_zone(store).await;
            let apex = n("test");
            store
                .set_dnssec_policy(&apex, &DnssecPolicy::tld_default(Timestamp(0)))
                .await
                .unwrap();
            store
                .add_zone_key(&apex, &key(3, 2, KeyState::Active))
                .await
                .unwrap();
            let before = store.head().await.unwrap();
            raw(store, "UPDATE dnssec_key SET public_key = '%%%'")
                .await
                .unwrap();
            // The journal batch quarantines the zone rather than carry it without its keys.
            let ChangesSince::Batch(b) = store.changes_since(before, 1000).await.unwrap() else {
                panic!("too far behind")
            };
            assert_eq!(b.bad_rows.len(), 1, "{:?}", b.bad_rows);
            assert_eq!(b.bad_rows[0].table, "dnssec_key");
            assert!(b.dnssec.is_empty());
            assert!(!b.batch.changes.iter().any(|c| matches!(c, Change::Zone(_))));
            let mut bad = Vec::new();
            store
                .visit_registry(|item| {
                    if let crate::RegistryItem::BadRow(x) = item {
                        bad.push(x.table);
                    }
                    Ok::<_, StoreError>(())
                })
                .await
                .unwrap();
            assert_eq!(bad, vec!["dnssec_key"]);
            let err = store.dnssec(&apex).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::BadRow {
                        table: "dnssec_key",
                        ..
                    }
                ),
                "{err}"
            );
            db.finish().await;
        }
    }
}
