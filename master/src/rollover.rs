//! The key rollover schedule: a pure function from a zone's policy, keys and the time to the
//! next key-state change, which the signing duty (`signing_duty.rs`) applies under its lease.
//!
//! Terms are RFC 7583's (§3): `Dprp` the propagation delay ([`KeyTimings::propagation`]),
//! `TTLkey` the DNSKEY TTL, `TTLsig` the largest TTL of a signed RRset, `TTLds` the parent's
//! DS TTL, `Ipub = Dprp + TTLkey`.
//!
//! ```text
//!  ZSK, pre-publication (RFC 6781 §4.1.1.1, RFC 7583 §3.2)
//!   Publish: successor generated, in the DNSKEY RRset, signing nothing
//!      | Ipub                       (every cached DNSKEY RRset has it)
//!   Activate successor + retire predecessor, one write (one serial)
//!      | TTLsig + Dprp              (old signatures have left every cache)
//!   Remove predecessor
//!
//!  KSK, double-DS with the operator step (RFC 6781 §4.1.2; the DNSKEY RRset double-signed)
//!   Publish: successor generated, in the DNSKEY RRset
//!      | Ipub                       (every cache can see it; its file reached every master)
//!   Activate successor: both KSKs sign the DNSKEY RRset; `dnssec ds` shows both DS
//!      | operator: parent publishes the new DS, `dnssec ds-seen --key NEW`
//!      | TTLds + Dprp               (every cached DS RRset has the new DS)
//!   Retire predecessor
//!      | TTLkey + Dprp              (its RRSIG(DNSKEY) has left every cache)
//!   Remove predecessor; the operator asks the parent to drop its DS
//! ```
//!
//! Each call returns at most one step, the most urgent first (removals, then retirements,
//! activations, publications), so a step that must wait — an activation held back because a
//! master cannot load the key — never holds back the end of an earlier rollover. A step's
//! condition only becomes true later than the step before it (each step records its time),
//! so applying steps until `None` terminates.

use orrery_proto::Timestamp;
use orrery_proto::dnssec::{DnssecPolicy, KeyRole, KeyState, ZoneKey};
use orrery_proto::model::Zone;

/// A key-state change the duty makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Generate a successor of `role` (the policy's algorithm) and publish it.
    Publish { role: KeyRole },
    /// Activate the key `key` (a locator) and retire `retire` in the same write.
    Activate { key: String, retire: Vec<String> },
    /// Retire KSKs whose successor's DS the parent has published for long enough.
    Retire { keys: Vec<String> },
    /// Remove a retired key from the zone (its file stays for the operator to archive).
    Remove { key: String },
}

/// What the schedule needs besides the policy and the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneTtls {
    /// `TTLsig`: the largest TTL of an RRset the zone signs.
    pub largest_signed: u32,
}

impl ZoneTtls {
    /// The zone's signed TTLs (`orrery_signer::objects`): SOA, apex NS and in-zone addresses
    /// (`ns_ttl`), DS, DNSKEY; NSEC(3) use min(SOA TTL, minimum), never more than the SOA's.
    pub fn of(zone: &Zone, policy: &DnssecPolicy) -> Self {
        Self {
            largest_signed: zone
                .soa_ttl
                .max(zone.ns_ttl)
                .max(zone.ds_ttl)
                .max(policy.dnskey_ttl),
        }
    }
}

/// `at + secs` has passed at `now`.
fn passed(now: Timestamp, at: Timestamp, secs: u32) -> bool {
    now.0 >= at.0.saturating_add(i64::from(secs))
}

/// When a key entered the zone.
fn published_at(k: &ZoneKey) -> Timestamp {
    k.published.unwrap_or(k.created)
}

/// The next step of the zone's rollovers at `now`, if one is due. CSKs and revoked keys are
/// left alone (rolled by hand).
pub fn next_step(
    policy: &DnssecPolicy,
    keys: &[ZoneKey],
    ttls: ZoneTtls,
    now: Timestamp,
) -> Option<Step> {
    let t = &policy.timings;
    let ipub = t.publish_interval(policy.dnskey_ttl);
    let of = |role: KeyRole, state: KeyState| {
        keys.iter()
            .filter(move |k| k.role == role && k.state == state)
    };

    // 1. Removals: a retired ZSK once its signatures have left caches; a retired KSK once
    //    the DNSKEY RRsets it signed have. A retirement without a time (by hand, before
    //    times were kept) is never removed automatically.
    for k in of(KeyRole::Zsk, KeyState::Retired) {
        if k.retired
            .is_some_and(|r| passed(now, r, ttls.largest_signed.saturating_add(t.propagation)))
        {
            return Some(Step::Remove {
                key: k.locator.clone(),
            });
        }
    }
    for k in of(KeyRole::Ksk, KeyState::Retired) {
        if k.retired.is_some_and(|r| passed(now, r, ipub)) {
            return Some(Step::Remove {
                key: k.locator.clone(),
            });
        }
    }

    // 2. Double-DS: the parent has the newest active KSK's DS since `ds_seen`; once every
    //    cached DS RRset has it, the older active KSKs stop signing.
    let newest_seen = of(KeyRole::Ksk, KeyState::Active)
        .filter(|k| k.ds_seen.is_some())
        .max_by_key(|k| (k.activated, k.ds_seen));
    if let Some(new) = newest_seen
        && let Some(seen) = new.ds_seen
        && passed(now, seen, t.parent_ds_ttl.saturating_add(t.propagation))
    {
        let older: Vec<String> = of(KeyRole::Ksk, KeyState::Active)
            .filter(|k| k.locator != new.locator && k.activated <= new.activated)
            .map(|k| k.locator.clone())
            .collect();
        if !older.is_empty() {
            return Some(Step::Retire { keys: older });
        }
    }

    // 3. Activations: a published key once every cache can see it in the DNSKEY RRset. A
    //    ZSK takes over from every active ZSK at once; a KSK joins the active ones.
    for role in [KeyRole::Zsk, KeyRole::Ksk] {
        if let Some(k) = of(role, KeyState::Published)
            .filter(|k| passed(now, published_at(k), ipub))
            .min_by_key(|k| published_at(k))
        {
            let retire = if role == KeyRole::Zsk {
                of(KeyRole::Zsk, KeyState::Active)
                    .map(|k| k.locator.clone())
                    .collect()
            } else {
                Vec::new()
            };
            return Some(Step::Activate {
                key: k.locator.clone(),
                retire,
            });
        }
    }

    // 4. Publications, by lifetime: a ZSK's successor `Ipub` before the ZSK's lifetime ends,
    //    so it takes over on time; a KSK's when its lifetime ends (the operator's DS step
    //    follows). None while a rollover of the role is under way.
    let rolling = |role: KeyRole| {
        of(role, KeyState::Published).next().is_some() || of(role, KeyState::Active).count() > 1
    };
    if let Some(lifetime) = t.zsk_lifetime
        && !rolling(KeyRole::Zsk)
        && let Some(active) = of(KeyRole::Zsk, KeyState::Active).next()
        && passed(
            now,
            active.activated.unwrap_or_else(|| published_at(active)),
            lifetime.saturating_sub(ipub),
        )
    {
        return Some(Step::Publish { role: KeyRole::Zsk });
    }
    if let Some(lifetime) = t.ksk_lifetime
        && !rolling(KeyRole::Ksk)
        && let Some(active) = of(KeyRole::Ksk, KeyState::Active).next()
        && passed(
            now,
            active.activated.unwrap_or_else(|| published_at(active)),
            lifetime,
        )
    {
        return Some(Step::Publish { role: KeyRole::Ksk });
    }
    None
}

#[cfg(test)]
mod tests {
    use orrery_proto::dnssec::{Algorithm, KeyTimings};

    use super::*;

    const T0: i64 = 1_800_000_000;
    const DAY: u32 = 86_400;

    fn policy() -> DnssecPolicy {
        let mut p = DnssecPolicy::tld_default(Timestamp(T0));
        p.dnskey_ttl = 3_600;
        p.timings = KeyTimings {
            zsk_lifetime: Some(30 * DAY),
            ksk_lifetime: None,
            propagation: 600,
            parent_ds_ttl: DAY,
        };
        p
    }

    const TTLS: ZoneTtls = ZoneTtls {
        largest_signed: 2 * DAY,
    };

    fn key(role: KeyRole, name: &str, state: KeyState, at: i64) -> ZoneKey {
        ZoneKey {
            role,
            algorithm: Algorithm::EcdsaP256Sha256,
            key_tag: 1,
            public_key: name.as_bytes().to_vec(),
            state,
            locator: name.to_owned(),
            created: Timestamp(at),
            published: Some(Timestamp(at)),
            activated: (state == KeyState::Active).then_some(Timestamp(at)),
            retired: None,
            revoked: None,
            ds_seen: None,
        }
    }

    /// Applies `step` at `now` as the duty does.
    fn apply(keys: &mut Vec<ZoneKey>, step: &Step, now: i64) {
        let now = Timestamp(now);
        match step {
            Step::Publish { role } => {
                let name = format!("{}{}", role.as_str(), keys.len());
                keys.push(key(*role, &name, KeyState::Published, now.0));
            }
            Step::Activate { key: new, retire } => {
                for k in keys.iter_mut() {
                    if &k.locator == new {
                        k.state = KeyState::Active;
                        k.activated = Some(now);
                    } else if retire.contains(&k.locator) {
                        k.state = KeyState::Retired;
                        k.retired = Some(now);
                    }
                }
            }
            Step::Retire { keys: old } => {
                for k in keys.iter_mut().filter(|k| old.contains(&k.locator)) {
                    k.state = KeyState::Retired;
                    k.retired = Some(now);
                }
            }
            Step::Remove { key } => keys.retain(|k| &k.locator != key),
        }
    }

    /// Runs the schedule every `tick` seconds from `from` to `to`, returning each step with
    /// the time it was taken.
    fn run(
        p: &DnssecPolicy,
        keys: &mut Vec<ZoneKey>,
        from: i64,
        to: i64,
        tick: i64,
    ) -> Vec<(i64, Step)> {
        let mut taken = Vec::new();
        let mut now = from;
        while now <= to {
            while let Some(step) = next_step(p, keys, TTLS, Timestamp(now)) {
                apply(keys, &step, now);
                taken.push((now, step));
                assert!(taken.len() < 100, "the schedule does not settle: {taken:?}");
            }
            now += tick;
        }
        taken
    }

    fn states(keys: &[ZoneKey]) -> Vec<(String, KeyState)> {
        keys.iter().map(|k| (k.locator.clone(), k.state)).collect()
    }

    #[test]
    fn a_zsk_rolls_on_its_timetable() {
        let p = policy();
        let ipub = 3_600 + 600;
        let mut keys = vec![
            key(KeyRole::Ksk, "ksk", KeyState::Active, T0),
            key(KeyRole::Zsk, "zsk", KeyState::Active, T0),
        ];
        // Nothing happens during the ZSK's life until Ipub before its end.
        let end = T0 + i64::from(30 * DAY);
        assert_eq!(run(&p, &mut keys, T0, end - ipub - 1, 60), vec![]);
        let taken = run(&p, &mut keys, end - ipub, end + i64::from(3 * DAY), 60);
        let publish = end - ipub;
        let activate = publish + ipub;
        // Removed once the largest signed TTL and the propagation have passed.
        let remove = activate + i64::from(2 * DAY) + 600;
        assert_eq!(
            taken,
            vec![
                (publish, Step::Publish { role: KeyRole::Zsk }),
                (
                    activate,
                    Step::Activate {
                        key: "zsk2".into(),
                        retire: vec!["zsk".into()]
                    }
                ),
                (remove, Step::Remove { key: "zsk".into() }),
            ]
        );
        assert_eq!(
            states(&keys),
            vec![
                ("ksk".into(), KeyState::Active),
                ("zsk2".into(), KeyState::Active)
            ]
        );
        // The successor's own lifetime starts at its activation: the next roll 30 days on.
        let next = run(
            &p,
            &mut keys,
            remove + 60,
            activate + i64::from(31 * DAY),
            60,
        );
        assert_eq!(next[0].0, activate + i64::from(30 * DAY) - ipub);
    }

    #[test]
    fn a_zsk_without_lifetime_rolls_only_when_started() {
        let mut p = policy();
        p.timings.zsk_lifetime = None;
        let mut keys = vec![key(KeyRole::Zsk, "zsk", KeyState::Active, T0)];
        assert_eq!(
            run(&p, &mut keys, T0, T0 + i64::from(400 * DAY), 3_600),
            vec![]
        );
        // `dnssec rollover --zsk`: a published successor; the rest follows by itself.
        let start = T0 + i64::from(400 * DAY);
        keys.push(key(KeyRole::Zsk, "new", KeyState::Published, start));
        let taken = run(&p, &mut keys, start, start + i64::from(5 * DAY), 60);
        let steps: Vec<_> = taken.iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(
            steps,
            vec![
                Step::Activate {
                    key: "new".into(),
                    retire: vec!["zsk".into()]
                },
                Step::Remove { key: "zsk".into() }
            ]
        );
        assert_eq!(taken[0].0, start + 4_200);
    }

    #[test]
    fn a_ksk_rolls_by_double_ds_and_waits_for_the_operator() {
        let mut p = policy();
        p.timings.zsk_lifetime = None;
        let mut keys = vec![
            key(KeyRole::Ksk, "old", KeyState::Active, T0),
            key(KeyRole::Zsk, "zsk", KeyState::Active, T0),
        ];
        // No KSK lifetime: nothing happens to the KSK by itself.
        let start = T0 + i64::from(10 * DAY);
        assert!(
            run(&p, &mut keys, T0, start, 3_600)
                .iter()
                .all(|(_, s)| !matches!(s, Step::Publish { role: KeyRole::Ksk }))
        );
        // `dnssec rollover --ksk`: the successor is published, then active after Ipub.
        keys.push(key(KeyRole::Ksk, "new", KeyState::Published, start));
        let taken = run(&p, &mut keys, start, start + i64::from(20 * DAY), 60);
        assert_eq!(
            taken,
            vec![(
                start + 4_200,
                Step::Activate {
                    key: "new".into(),
                    retire: vec![]
                }
            )],
            "both KSKs stay active until the parent has the new DS"
        );
        // The operator records the new DS at the parent; the old KSK retires after the DS
        // TTL plus the propagation, and leaves after the DNSKEY TTL plus the propagation.
        let seen = start + i64::from(20 * DAY);
        keys.iter_mut()
            .find(|k| k.locator == "new")
            .unwrap()
            .ds_seen = Some(Timestamp(seen));
        let taken = run(&p, &mut keys, seen, seen + i64::from(3 * DAY), 60);
        let retire = seen + i64::from(DAY) + 600;
        assert_eq!(
            taken,
            vec![
                (
                    retire,
                    Step::Retire {
                        keys: vec!["old".into()]
                    }
                ),
                (retire + 4_200, Step::Remove { key: "old".into() }),
            ]
        );
        assert_eq!(
            states(&keys)
                .into_iter()
                .filter(|(_, s)| *s == KeyState::Active)
                .count(),
            2,
            "the new KSK and the ZSK"
        );
    }

    #[test]
    fn a_ksk_lifetime_publishes_a_successor_and_ds_seen_on_the_old_key_retires_nothing() {
        let mut p = policy();
        p.timings.ksk_lifetime = Some(365 * DAY);
        p.timings.zsk_lifetime = None;
        let mut old = key(KeyRole::Ksk, "old", KeyState::Active, T0);
        // The DS of the first KSK was seen long ago: no successor yet, nothing to retire.
        old.ds_seen = Some(Timestamp(T0));
        let mut keys = vec![old];
        let end = T0 + i64::from(365 * DAY);
        assert_eq!(run(&p, &mut keys, T0, end - 1, 3_600), vec![]);
        let taken = run(&p, &mut keys, end, end + i64::from(DAY), 60);
        assert_eq!(
            taken.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(),
            vec![
                Step::Publish { role: KeyRole::Ksk },
                Step::Activate {
                    key: "ksk1".into(),
                    retire: vec![]
                }
            ],
            "the old key's old ds_seen does not retire the new one"
        );
    }

    #[test]
    fn csks_and_revoked_keys_are_left_alone() {
        let mut p = policy();
        p.timings.zsk_lifetime = Some(5_000);
        p.timings.ksk_lifetime = Some(5_000);
        let mut csk = key(KeyRole::Csk, "csk", KeyState::Retired, T0);
        csk.retired = Some(Timestamp(T0));
        let keys = vec![
            key(KeyRole::Csk, "csk2", KeyState::Active, T0),
            key(KeyRole::Ksk, "rev", KeyState::Revoked, T0),
            csk,
        ];
        assert_eq!(
            next_step(&p, &keys, TTLS, Timestamp(T0 + i64::from(900 * DAY))),
            None
        );
    }

    #[test]
    fn largest_signed_ttl_is_read_from_the_zone() {
        let zone = Zone {
            name: orrery_proto::Name::from_ascii("test").unwrap(),
            soa: orrery_proto::model::Soa {
                mname: orrery_proto::Name::from_ascii("a.nic.test").unwrap(),
                rname: orrery_proto::Name::from_ascii("h.nic.test").unwrap(),
                refresh: 1,
                retry: 1,
                expire: 1,
                minimum: 1,
            },
            soa_ttl: 3_600,
            ns_ttl: 172_800,
            ds_ttl: 86_400,
            nameservers: vec![],
            serial: 0,
        };
        let mut p = policy();
        assert_eq!(ZoneTtls::of(&zone, &p).largest_signed, 172_800);
        p.dnskey_ttl = 200_000;
        assert_eq!(ZoneTtls::of(&zone, &p).largest_signed, 200_000);
    }
}
