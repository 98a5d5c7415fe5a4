//! Signing in the change path (issue 13): after every batch, the DNSSEC RRsets the master
//! publishes equal those of signing the whole zone from scratch from the store's state
//! (`orrery_signer::dnssec_rrsets(sign_zone(...))`, what the generator signs), on SQLite and,
//! with `DATABASE_URL`, PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;

use orrery_master::cache::Cache;
use orrery_master::config::{FollowSettings, LinkSettings};
use orrery_master::follow_journal::JournalFollower;
use orrery_master::signing::{SharedKeyStore, ZoneSigner};
use orrery_proto::dnssec::{
    Algorithm, Denial, DnssecPolicy, DnssecRrset, KeyRole, KeyState, ZoneKey,
};
use orrery_proto::link::pb;
use orrery_proto::{Change, Ds, Name, Registrar, Timestamp};
use orrery_signer::key::dnskey_rdata;
use orrery_signer::objects::{apex_records, domain_records, host_records};
use orrery_signer::{FileKeyStore, KeyStore, dnssec_rrsets, key_tag, sign_with_keys};
use orrery_store::write::{NewDomain, NewZone, NsSpec};
use orrery_store::{HostSelection, Store, StoreError, ZoneItem};

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// A small deterministic generator (no dependency for a test).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn seed(store: &Store) {
    store
        .add_zone(&NewZone {
            name: n("test"),
            mname: n("a.nic.test"),
            rname: n("hostmaster.nic.test"),
            refresh: 1800,
            retry: 900,
            expire: 2_419_200,
            minimum: 3600,
            soa_ttl: 3600,
            ns_ttl: 172_800,
            ds_ttl: 86_400,
            nameservers: vec![NsSpec {
                name: n("a.nic.test"),
                addresses: vec!["192.0.2.53".parse().unwrap()],
            }],
        })
        .await
        .unwrap();
    store
        .add_registrar(&Registrar::new("R1", "Registrar One"))
        .await
        .unwrap();
    // Not delegated: the hosts under it are authoritative data of the zone.
    store
        .add_domain(&domain("nic.test", vec![], vec![]))
        .await
        .unwrap();
}

/// Generates a key of `role` in `keys` and adds it to the zone in `state`.
async fn add_key(
    store: &Store,
    keys: &FileKeyStore,
    alg: Algorithm,
    role: KeyRole,
    state: KeyState,
) -> ZoneKey {
    let flags = if role.is_sep() { 257 } else { 256 };
    let (locator, private) = keys.generate(&n("test"), alg, flags).unwrap();
    let public_key = private.public_key();
    let key = ZoneKey {
        role,
        algorithm: alg,
        key_tag: key_tag(&dnskey_rdata(flags, alg, &public_key)),
        public_key,
        state,
        locator,
        created: Timestamp(1_800_000_000),
        published: Some(Timestamp(1_800_000_000)),
        activated: (state == KeyState::Active).then_some(Timestamp(1_800_000_000)),
        retired: None,
        revoked: None,
        ds_seen: None,
    };
    store.add_zone_key(&n("test"), &key).await.unwrap();
    key
}

/// The reference: the zone read from one store snapshot, signed whole.
async fn reference(store: &Store, keys: &dyn KeyStore) -> Vec<DnssecRrset> {
    let mut records = Vec::new();
    let mut zone = None;
    let mut dnssec = None;
    store
        .visit_zone(&n("test"), HostSelection::Published, |item| {
            match item {
                ZoneItem::Zone { zone: z, .. } => zone = Some(z.clone()),
                ZoneItem::Dnssec(d) => {
                    let z = zone.as_ref().unwrap();
                    apex_records(z, z.serial, &mut records);
                    dnssec = Some(d);
                }
                ZoneItem::Domain(d) => {
                    domain_records(zone.as_ref().unwrap(), &d, &mut records);
                }
                ZoneItem::Host(h) => {
                    host_records(zone.as_ref().unwrap(), &h, &mut records);
                }
            }
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    let Some(d) = dnssec.filter(|d| d.is_signed()) else {
        return Vec::new();
    };
    let signed = sign_with_keys(&n("test"), &d, records, keys).unwrap();
    let mut sets = dnssec_rrsets(&n("test"), &signed);
    sets.sort_by(|a, b| a.id.cmp(&b.id));
    sets
}

/// The sets the cache publishes for the zone (what a snapshot holds).
fn published(cache: &Cache) -> Vec<DnssecRrset> {
    let mut v: Vec<DnssecRrset> = cache.with_registry(|r| r.dnssec.values().cloned().collect());
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

fn follower(store: &Store, keys: Option<SharedKeyStore>) -> (JournalFollower, Arc<Cache>) {
    let cache = Arc::new(Cache::new(LinkSettings::default()));
    let f = JournalFollower::new(store.clone(), cache.clone(), FollowSettings::default())
        .with_signer(ZoneSigner::new(keys), Arc::default());
    (f, cache)
}

/// The DNSSEC changes of the batches after `from`, by kind and covered type.
fn dnssec_changes_since(cache: &Cache, from: i64) -> Vec<(u16, u16, bool)> {
    let orrery_master::cache::Catchup::Batches(batches) = cache.since(from) else {
        panic!("not in the window")
    };
    let mut out = Vec::new();
    for b in batches {
        for c in &b.changes {
            match Change::try_from(c.clone()).unwrap() {
                Change::Dnssec(s) => out.push((s.id.rtype, s.id.covered, true)),
                Change::DnssecRemoved(id) => out.push((id.rtype, id.covered, false)),
                _ => {}
            }
        }
    }
    out
}

fn ds(seed: u8) -> Ds {
    Ds {
        key_tag: u16::from(seed),
        algorithm: 13,
        digest_type: 2,
        digest: vec![seed; 32],
    }
}

fn domain(name: &str, ns: Vec<NsSpec>, ds: Vec<Ds>) -> NewDomain {
    NewDomain {
        name: n(name),
        registrar: "R1".into(),
        registrant: None,
        admin: None,
        tech: None,
        billing: None,
        expires: Timestamp(2_000_000_000),
        statuses: vec![],
        nameservers: ns,
        ds,
    }
}

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("r.db").display());
    (Store::open(&url).await.unwrap(), dir)
}

/// SQLite, and PostgreSQL when `DATABASE_URL` is set (a database of the test's own).
async fn stores() -> Vec<(Store, tempfile::TempDir, Option<String>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("r.db").display());
    let mut v = vec![(Store::open(&url).await.unwrap(), dir, None)];
    match std::env::var("DATABASE_URL") {
        Ok(admin) => {
            use sqlx::Connection;
            // One database per call: the tests of this binary run in parallel.
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let call = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("orrery_sign_{}_{call}", std::process::id());
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let url = format!("postgres:///{name}?host=/var/run/postgresql&user=postgres");
            v.push((
                Store::open(&url).await.unwrap(),
                tempfile::tempdir().unwrap(),
                Some(name),
            ));
        }
        Err(_) => eprintln!("DATABASE_URL is not set: PostgreSQL not tested"),
    }
    v
}

async fn drop_pg(name: Option<String>) {
    if let (Some(name), Ok(admin)) = (name, std::env::var("DATABASE_URL")) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

/// Random batches of secure and insecure delegations, DS added, changed and removed, in-zone
/// nameservers at several depths (empty non-terminals above them) coming and going, their
/// addresses changing, ZSK rollover steps, and a switch from NSEC3 opt-out to NSEC and back:
/// after each, the master's sets (signed incrementally) equal the reference (the store's state
/// signed whole), the cache publishes exactly them, a second master following the same store
/// has the same bytes, and a snapshot holds them. With opt-out, adding or removing an insecure
/// delegation changes only the SOA's RRSIG (RFC 5155 §6).
#[tokio::test]
async fn incremental_signing_equals_signing_the_whole_zone() {
    for (store, dir, pg) in stores().await {
        seed(&store).await;
        let keys = FileKeyStore::open(&dir.path().join("keys")).unwrap();
        let shared: SharedKeyStore = Arc::new(keys.clone());
        let (f1, c1) = follower(&store, Some(shared.clone()));
        f1.load().await.unwrap();
        assert!(published(&c1).is_empty(), "unsigned: nothing");

        let mut policy = DnssecPolicy::tld_default(Timestamp(1_799_996_400));
        policy.algorithm = Algorithm::Ed25519;
        store.set_dnssec_policy(&n("test"), &policy).await.unwrap();
        add_key(
            &store,
            &keys,
            Algorithm::Ed25519,
            KeyRole::Ksk,
            KeyState::Active,
        )
        .await;
        let mut zsk = add_key(
            &store,
            &keys,
            Algorithm::Ed25519,
            KeyRole::Zsk,
            KeyState::Active,
        )
        .await;
        let mut retired: Option<ZoneKey> = None;
        let mut rolled = 0;
        f1.poll_once().await.unwrap();
        let want = reference(&store, &keys).await;
        assert!(!want.is_empty());
        assert_eq!(published(&c1), want, "the zone starts signing in a batch");

        let mut rng = Rng(0x5eed_1234_abcd);
        let mut names: Vec<String> = Vec::new();
        let mut next_zsk: Option<ZoneKey> = None;
        let (mut saw_host, mut saw_ds, mut saw_ent, mut saw_nsec) = (false, false, false, false);
        let mut hosts: Vec<Name> = Vec::new();
        let steps = 240;
        for step in 0..steps {
            let head = c1.head();
            let op = rng.below(13);
            let mut insecure_only = false;
            // NSEC3 opt-out for the first third, NSEC for the second, NSEC3 again after.
            let denial = if (steps / 3..2 * steps / 3).contains(&step) {
                Denial::Nsec
            } else {
                Denial::Nsec3OptOut
            };
            if policy.denial != denial {
                policy.denial = denial;
                store.set_dnssec_policy(&n("test"), &policy).await.unwrap();
            }
            match op {
                0..=2 => {
                    let name = format!("d{step}.test");
                    let secure = rng.below(2) == 0;
                    let ns = if rng.below(3) == 0 {
                        // An in-zone nameserver outside any delegation: its address is
                        // authoritative and signed while a delegation names it; one or two
                        // labels below nic.test (empty non-terminals above it).
                        let host = if rng.below(2) == 0 {
                            n(&format!("ns{}.nic.test", rng.below(3)))
                        } else {
                            n(&format!("ns{}.h{}.nic.test", rng.below(2), rng.below(2)))
                        };
                        hosts.push(host.clone());
                        NsSpec {
                            name: host,
                            addresses: vec!["192.0.2.7".parse().unwrap()],
                        }
                    } else if rng.below(2) == 0 {
                        NsSpec {
                            name: n(&format!("ns.{name}")),
                            addresses: vec!["192.0.2.9".parse().unwrap()],
                        }
                    } else {
                        insecure_only = !secure;
                        NsSpec {
                            name: n("ns.elsewhere.example"),
                            addresses: vec![],
                        }
                    };
                    let ds = if secure { vec![ds(step as u8)] } else { vec![] };
                    store
                        .add_domain(&domain(&name, vec![ns], ds))
                        .await
                        .unwrap();
                    names.push(name);
                }
                3..=4 if !names.is_empty() => {
                    let name = names[rng.below(names.len() as u64) as usize].clone();
                    let ds = match rng.below(3) {
                        0 => vec![],
                        1 => vec![ds(step as u8)],
                        _ => vec![ds(step as u8), ds((step as u8).wrapping_add(100))],
                    };
                    store.set_ds(&n(&name), &ds).await.unwrap();
                }
                5 if !names.is_empty() => {
                    let i = rng.below(names.len() as u64) as usize;
                    let name = names.swap_remove(i);
                    // Refused while its glue host is in use elsewhere: then it stays.
                    if store.delete_domain(&n(&name)).await.is_err() {
                        names.push(name);
                    }
                }
                6 => {
                    // A ZSK rollover by steps: publish a new one, swap the active one, remove
                    // the retired one.
                    if let Some(old) = retired.take() {
                        store
                            .remove_zone_key(&n("test"), &old.locator)
                            .await
                            .unwrap();
                    } else {
                        match next_zsk.take() {
                            None => {
                                next_zsk = Some(
                                    add_key(
                                        &store,
                                        &keys,
                                        Algorithm::Ed25519,
                                        KeyRole::Zsk,
                                        KeyState::Published,
                                    )
                                    .await,
                                );
                            }
                            Some(k) => {
                                let at = Timestamp(1_800_001_000);
                                store
                                    .set_key_state(
                                        &n("test"),
                                        &k.locator,
                                        KeyState::Active,
                                        k.key_tag,
                                        at,
                                    )
                                    .await
                                    .unwrap();
                                store
                                    .set_key_state(
                                        &n("test"),
                                        &zsk.locator,
                                        KeyState::Retired,
                                        zsk.key_tag,
                                        at,
                                    )
                                    .await
                                    .unwrap();
                                retired = Some(std::mem::replace(&mut zsk, k));
                                rolled += 1;
                            }
                        }
                    }
                }
                7 => {
                    // Several changes in one batch.
                    for j in 0..3 {
                        let name = format!("m{step}-{j}.test");
                        store
                            .add_domain(&domain(
                                &name,
                                vec![NsSpec {
                                    name: n("ns.elsewhere.example"),
                                    addresses: vec![],
                                }],
                                vec![ds(j)],
                            ))
                            .await
                            .unwrap();
                        names.push(name);
                    }
                }
                10 if !names.is_empty() && !hosts.is_empty() => {
                    // A domain moves to another in-zone nameserver (or out of the zone): the
                    // old host may stop being published, the new one starts.
                    let name = names[rng.below(names.len() as u64) as usize].clone();
                    let ns = if rng.below(3) == 0 {
                        NsSpec {
                            name: n("ns.elsewhere.example"),
                            addresses: vec![],
                        }
                    } else {
                        NsSpec {
                            name: hosts[rng.below(hosts.len() as u64) as usize].clone(),
                            addresses: vec![],
                        }
                    };
                    store.set_nameservers(&n(&name), &[ns]).await.unwrap();
                }
                11 if !hosts.is_empty() => {
                    // An in-zone host's addresses change (none: it has no records).
                    let host = hosts[rng.below(hosts.len() as u64) as usize].clone();
                    let addrs: Vec<std::net::IpAddr> = match rng.below(3) {
                        0 => vec![],
                        1 => vec![format!("192.0.2.{}", step % 250).parse().unwrap()],
                        _ => vec!["192.0.2.8".parse().unwrap(), "2001:db8::8".parse().unwrap()],
                    };
                    // Gone with its domain meanwhile: nothing to change.
                    let _ = store.set_host_addresses(&host, &addrs).await;
                }
                _ => {
                    let name = format!("i{step}.test");
                    store
                        .add_domain(&domain(
                            &name,
                            vec![NsSpec {
                                name: n("ns.elsewhere.example"),
                                addresses: vec![],
                            }],
                            vec![],
                        ))
                        .await
                        .unwrap();
                    names.push(name);
                    insecure_only = true;
                }
            }
            f1.poll_once().await.unwrap();
            let want = reference(&store, &keys).await;
            assert_eq!(published(&c1), want, "step {step}, op {op}");
            assert_eq!(f1.signer().lock().unwrap().sets(&n("test")), want);
            saw_host |= want.iter().any(|s| {
                s.id.covered == 1
                    && s.id.owner.is_subdomain_of(&n("nic.test"))
                    && s.id.owner != n("a.nic.test")
            });
            saw_ds |= want.iter().filter(|s| s.id.covered == 43).count() >= 3;
            saw_nsec |= want.iter().any(|s| s.id.rtype == 47);
            // An NSEC3 record with an empty type bit map (RFC 5155 §7.1): 26 octets.
            saw_ent |= want
                .iter()
                .any(|s| s.id.rtype == 50 && s.rdata.iter().any(|r| r.len() == 26));
            if insecure_only && denial == Denial::Nsec3OptOut {
                // RFC 5155 §6: only the new serial's SOA is signed again.
                assert_eq!(
                    dnssec_changes_since(&c1, head),
                    vec![(46, 6, true)],
                    "step {step}: an insecure delegation changes no other signature"
                );
            }
        }

        assert!(rolled > 0, "a ZSK rollover ran (publish, swap, remove)");
        assert!(
            saw_host,
            "an in-zone nameserver's address was signed at some step"
        );
        assert!(saw_ds, "several signed DS at some step");
        assert!(
            saw_ent,
            "an empty non-terminal was in the NSEC3 chain at some step"
        );
        assert!(saw_nsec, "the zone was signed with NSEC for a while");
        // The comparison is of the incremental path: most batches took it.
        let (whole, incremental) = f1.signer().lock().unwrap().signings();
        assert!(
            incremental > 3 * whole && incremental > steps / 2,
            "whole {whole}, incremental {incremental}"
        );
        // A second master on the same store, loaded now, publishes the same bytes.
        let (f2, c2) = follower(&store, Some(shared.clone()));
        f2.load().await.unwrap();
        assert_eq!(published(&c2), published(&c1));
        // And its snapshot holds every set.
        let snap = c2.snapshot();
        let in_snapshot = snap
            .chunks
            .iter()
            .flat_map(|c| &c.objects)
            .filter(|o| {
                use prost::Message as _;
                matches!(
                    Change::try_from(pb::Change::decode(o.as_ref()).unwrap()).unwrap(),
                    Change::Dnssec(_)
                )
            })
            .count();
        assert_eq!(in_snapshot, published(&c1).len());

        // Going unsigned removes every set.
        let before = c1.head();
        let mut unsigned = policy.clone();
        unsigned.denial = Denial::Unsigned;
        store
            .set_dnssec_policy(&n("test"), &unsigned)
            .await
            .unwrap();
        f1.poll_once().await.unwrap();
        assert!(published(&c1).is_empty());
        let removed = dnssec_changes_since(&c1, before);
        assert!(!removed.is_empty() && removed.iter().all(|(_, _, up)| !up));
        drop(store);
        drop_pg(pg).await;
    }
}

/// A master without the private key (or without a key directory) never publishes the zone
/// unsigned or half-signed: the zone's changes are withheld, other zones flow, and once the
/// key is there everything withheld is published, signed.
#[tokio::test]
async fn a_zone_that_cannot_be_signed_keeps_its_last_signed_state() {
    let (store, dir) = sqlite().await;
    seed(&store).await;
    store
        .add_zone(&NewZone {
            name: n("other"),
            mname: n("a.nic.test"),
            rname: n("hostmaster.nic.test"),
            refresh: 1800,
            retry: 900,
            expire: 2_419_200,
            minimum: 3600,
            soa_ttl: 3600,
            ns_ttl: 172_800,
            ds_ttl: 86_400,
            nameservers: vec![NsSpec {
                name: n("ns.elsewhere.example"),
                addresses: vec![],
            }],
        })
        .await
        .unwrap();
    let keys = FileKeyStore::open(&dir.path().join("keys")).unwrap();
    let mut policy = DnssecPolicy::tld_default(Timestamp(1_799_996_400));
    policy.algorithm = Algorithm::Ed25519;
    store.set_dnssec_policy(&n("test"), &policy).await.unwrap();
    let csk = add_key(
        &store,
        &keys,
        Algorithm::Ed25519,
        KeyRole::Csk,
        KeyState::Active,
    )
    .await;
    let (f, cache) = follower(&store, Some(Arc::new(keys.clone())));
    f.load().await.unwrap();
    let signed = published(&cache);
    assert_eq!(signed, reference(&store, &keys).await);

    // The private key goes missing; a DS is added in the signed zone, a domain in the other.
    let key_file = dir.path().join("keys").join(&csk.locator);
    let saved = dir.path().join("saved.pk8");
    std::fs::rename(&key_file, &saved).unwrap();
    store
        .add_domain(&domain(
            "secure.test",
            vec![NsSpec {
                name: n("ns.elsewhere.example"),
                addresses: vec![],
            }],
            vec![ds(1)],
        ))
        .await
        .unwrap();
    store
        .add_domain(&domain(
            "flows.other",
            vec![NsSpec {
                name: n("ns.elsewhere.example"),
                addresses: vec![],
            }],
            vec![],
        ))
        .await
        .unwrap();
    f.poll_once().await.unwrap();
    assert_eq!(published(&cache), signed, "the last signed state stays");
    cache.with_registry(|r| {
        assert!(
            !r.domains.contains_key(&n("secure.test")),
            "withheld: no DS without RRSIG"
        );
        assert!(
            r.domains.contains_key(&n("flows.other")),
            "other zones flow"
        );
    });
    let failing = f.signer().lock().unwrap().failing();
    assert_eq!(failing.len(), 1);
    assert!(failing[0].1.contains(&csk.locator), "{failing:?}");
    // What the heartbeat carries to the watchdog, read without the signer's lock.
    let health = f.signer().lock().unwrap().health();
    let seen = health.failing();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].0.trim_end_matches('.') == "test" && seen[0].1.contains(&csk.locator));
    assert!(health.failures() >= 1);
    let json: serde_json::Value = serde_json::from_str(&health.to_json()).unwrap();
    assert_eq!(json[0]["error"], seen[0].1.as_str(), "{json}");
    // A reload (a restart with the key still missing) keeps it withheld too.
    f.load().await.unwrap();
    assert_eq!(published(&cache), signed);
    cache.with_registry(|r| assert!(!r.domains.contains_key(&n("secure.test"))));

    // The key is back: the next poll (even without a new journal row) publishes it all.
    std::fs::rename(&saved, &key_file).unwrap();
    f.poll_once().await.unwrap();
    assert!(f.signer().lock().unwrap().failing().is_empty());
    assert!(health.failing().is_empty(), "cleared once the zone signs");
    assert_eq!(health.to_json(), "[]");
    cache.with_registry(|r| assert!(r.domains.contains_key(&n("secure.test"))));
    assert_eq!(published(&cache), reference(&store, &keys).await);

    // A master that is not a signing host withholds the signed zone from the start.
    let (f2, c2) = follower(&store, None);
    f2.load().await.unwrap();
    c2.with_registry(|r| {
        assert!(!r.zones.contains_key(&n("test")));
        assert!(r.dnssec.is_empty());
        assert!(r.zones.contains_key(&n("other")));
    });
}

/// Two masters with the same key directory sign one store state to the same bytes with
/// ECDSA P-256 (RFC 6979), batch boundaries apart.
#[tokio::test]
async fn two_masters_sign_to_the_same_bytes() {
    let (store, dir) = sqlite().await;
    seed(&store).await;
    let keys = FileKeyStore::open(&dir.path().join("keys")).unwrap();
    store
        .set_dnssec_policy(
            &n("test"),
            &DnssecPolicy::tld_default(Timestamp(1_799_996_400)),
        )
        .await
        .unwrap();
    add_key(
        &store,
        &keys,
        Algorithm::EcdsaP256Sha256,
        KeyRole::Csk,
        KeyState::Active,
    )
    .await;
    let (a, ca) = follower(&store, Some(Arc::new(keys.clone())));
    a.load().await.unwrap();
    let (b, cb) = follower(&store, Some(Arc::new(keys.clone())));
    b.load().await.unwrap();
    let mut by_serial: HashMap<i64, Vec<DnssecRrset>> = HashMap::new();
    for i in 0..6u8 {
        store
            .add_domain(&domain(
                &format!("s{i}.test"),
                vec![NsSpec {
                    name: n("ns.elsewhere.example"),
                    addresses: vec![],
                }],
                vec![ds(i)],
            ))
            .await
            .unwrap();
        // One master follows every change, the other every second one.
        a.poll_once().await.unwrap();
        by_serial.insert(ca.head(), published(&ca));
        if i % 2 == 1 {
            b.poll_once().await.unwrap();
            assert_eq!(Some(&published(&cb)), by_serial.get(&cb.head()));
        }
    }
    assert_eq!(published(&ca), published(&cb));
    assert_eq!(published(&ca), reference(&store, &keys).await);
}

/// The signing duty moves the signature window once per refresh period (here 2 s) on the
/// master holding the `dnssec` lease; every master then re-signs at the new window, and a
/// second duty does not take the lease while the first holds it.
#[tokio::test]
async fn the_signing_duty_moves_the_window_under_its_lease() {
    use orrery_master::cluster_state::ClusterState;
    use orrery_master::config::{ClusterSettings, DnssecSettings};
    use orrery_master::signing_duty::{LEASE, SigningDuty, refresh_windows};
    use std::time::Duration;

    let (store, dir) = sqlite().await;
    seed(&store).await;
    let keys = FileKeyStore::open(&dir.path().join("keys")).unwrap();
    let mut policy = DnssecPolicy::tld_default(Timestamp(1_000_000_000));
    policy.algorithm = Algorithm::Ed25519;
    policy.refresh = 2;
    policy.validity = 10;
    store.set_dnssec_policy(&n("test"), &policy).await.unwrap();
    add_key(
        &store,
        &keys,
        Algorithm::Ed25519,
        KeyRole::Csk,
        KeyState::Active,
    )
    .await;
    let (f, cache) = follower(&store, Some(Arc::new(keys.clone())));
    f.load().await.unwrap();
    let inception = |sets: &[DnssecRrset]| -> Vec<u32> {
        let mut v: Vec<u32> = sets
            .iter()
            .filter(|s| s.id.rtype == 46)
            .flat_map(|s| {
                s.rdata
                    .iter()
                    .map(|r| u32::from_be_bytes(r[12..16].try_into().unwrap()))
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(inception(&published(&cache)), vec![1_000_000_000]);

    // Once per period: the second call inside it is a no-op. The two calls read the store's
    // clock each, and may straddle the end of a 2 s period: then the second moves the window
    // to the next one, and a third, inside that, is the no-op.
    assert_eq!(refresh_windows(&store).await.unwrap(), 1);
    let mut again = refresh_windows(&store).await.unwrap();
    if again == 1 {
        again = refresh_windows(&store).await.unwrap();
    }
    assert_eq!(again, 0);
    f.poll_once().await.unwrap();
    let first = store
        .dnssec(&n("test"))
        .await
        .unwrap()
        .unwrap()
        .policy
        .inception;
    assert!(first.0 > 1_000_000_000);
    assert_eq!(inception(&published(&cache)), vec![first.0 as u32]);
    assert_eq!(published(&cache), reference(&store, &keys).await);

    // The duty itself, on two masters: one holds the lease and moves the window.
    let settings = DnssecSettings {
        key_dir: None,
        refresh_check: Duration::from_millis(200),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    for id in ["m1", "m2"] {
        let state = Arc::new(ClusterState::new(ClusterSettings {
            id: id.into(),
            heartbeat: Duration::from_secs(1),
            stats_history: 2,
        }));
        tasks.push(tokio::spawn(
            SigningDuty::new(store.clone(), settings.clone(), state, None).run(shutdown.clone()),
        ));
    }
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    let leases = store.leases().await.unwrap();
    assert_eq!(
        leases.iter().filter(|l| l.name == LEASE).count(),
        1,
        "{leases:?}"
    );
    let moved = store
        .dnssec(&n("test"))
        .await
        .unwrap()
        .unwrap()
        .policy
        .inception;
    assert!(
        moved.0 > first.0,
        "the duty moved the window: {moved:?} after {first:?}"
    );
    f.poll_once().await.unwrap();
    assert_eq!(published(&cache), reference(&store, &keys).await);
    shutdown.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}

/// A satellite older than the window is not resumed from the journal across a change to a
/// DNSSEC zone (the journal has no signatures): it takes a snapshot. Unsigned gaps still resume.
#[tokio::test]
async fn no_resume_from_the_journal_across_a_signed_zone() {
    use orrery_master::resume::{Gap, Resume};
    let (store, dir) = sqlite().await;
    seed(&store).await;
    let resume = Resume::new(store.clone(), 1000);
    let before = store.head().await.unwrap();
    store
        .add_domain(&domain("plain.test", vec![], vec![]))
        .await
        .unwrap();
    assert!(
        matches!(resume.gap(before).await, Gap::Batch(_)),
        "unsigned: resumed"
    );
    let keys = FileKeyStore::open(&dir.path().join("keys")).unwrap();
    let mut policy = DnssecPolicy::tld_default(Timestamp(1_799_996_400));
    policy.algorithm = Algorithm::Ed25519;
    store.set_dnssec_policy(&n("test"), &policy).await.unwrap();
    add_key(
        &store,
        &keys,
        Algorithm::Ed25519,
        KeyRole::Csk,
        KeyState::Active,
    )
    .await;
    let signed_from = store.head().await.unwrap();
    store
        .add_domain(&domain(
            "secure.test",
            vec![NsSpec {
                name: n("ns.elsewhere.example"),
                addresses: vec![],
            }],
            vec![ds(4)],
        ))
        .await
        .unwrap();
    match resume.gap(signed_from).await {
        Gap::Unavailable(why) => assert!(why.contains("DNSSEC zone test"), "{why}"),
        Gap::Batch(b) => panic!("resumed across a signed zone: {b:?}"),
    }
}

/// Copies a key file from one master's key directory to another's, as the runbook does.
fn copy_key(from: &std::path::Path, to: &std::path::Path, locator: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from.join(locator), to.join(locator)).unwrap();
    std::fs::set_permissions(to.join(locator), std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A ZSK rollover by the signing duty with two masters, each with its own key directory: the
/// successor is generated on the lease holder at publication (both masters keep signing: a
/// published key signs nothing), its activation waits while the other master cannot load it,
/// goes ahead once the file is there, and both masters then sign to the same bytes; the old
/// ZSK leaves after the largest signed TTL plus the propagation delay.
#[tokio::test]
async fn a_zsk_rollover_waits_until_every_live_master_can_load_the_new_key() {
    use orrery_master::rollover::Step;
    use orrery_master::signing_duty::{report_loadable, roll_keys_at};
    use orrery_store::MasterHeartbeat;
    use std::time::Duration;

    for (store, dir, pg) in stores().await {
        seed(&store).await;
        let (dir_a, dir_b) = (dir.path().join("keys-a"), dir.path().join("keys-b"));
        let ka = FileKeyStore::open(&dir_a).unwrap();
        let kb = FileKeyStore::open(&dir_b).unwrap();
        let mut policy = DnssecPolicy::tld_default(Timestamp(1_799_996_400));
        policy.algorithm = Algorithm::Ed25519;
        policy.dnskey_ttl = 50;
        policy.timings.zsk_lifetime = Some(1_000);
        policy.timings.propagation = 10;
        store.set_dnssec_policy(&n("test"), &policy).await.unwrap();
        let ksk = add_key(
            &store,
            &ka,
            Algorithm::Ed25519,
            KeyRole::Ksk,
            KeyState::Active,
        )
        .await;
        let old = add_key(
            &store,
            &ka,
            Algorithm::Ed25519,
            KeyRole::Zsk,
            KeyState::Active,
        )
        .await;
        for k in [&ksk, &old] {
            copy_key(&dir_a, &dir_b, &k.locator);
        }
        for id in ["a", "b"] {
            store
                .master_heartbeat(&MasterHeartbeat {
                    id: id.into(),
                    host: "localhost".into(),
                    started_ms: 0,
                    journal_head: 0,
                    duties: vec![],
                    quarantined: 0,
                    cert_expires_ms: None,
                    unsignable: String::new(),
                })
                .await
                .unwrap();
        }
        let (fa, cache_a) = follower(&store, Some(Arc::new(ka.clone())));
        let (fb, cache_b) = follower(&store, Some(Arc::new(kb.clone())));
        fa.load().await.unwrap();
        fb.load().await.unwrap();
        let stale = Duration::from_secs(600);
        let roll = |now: i64| roll_keys_at(&store, Some(&ka), "a", stale, Timestamp(now));

        // Ipub (60 s) before the ZSK's lifetime ends: a successor, in master a's directory.
        let publish = 1_800_000_000 + 1_000 - 60;
        assert!(roll(publish - 1).await.unwrap().steps.is_empty());
        let rolled = roll(publish).await.unwrap();
        assert_eq!(
            rolled.steps,
            vec![(n("test"), Step::Publish { role: KeyRole::Zsk })]
        );
        let keys = store.dnssec(&n("test")).await.unwrap().unwrap().keys;
        let new = keys
            .iter()
            .find(|k| k.role == KeyRole::Zsk && k.state == KeyState::Published)
            .unwrap()
            .clone();
        assert_eq!(new.published, Some(Timestamp(publish)));
        assert!(dir_a.join(&new.locator).exists() && !dir_b.join(&new.locator).exists());
        // Published, it signs nothing: master b, without its file, still signs the zone.
        fa.poll_once().await.unwrap();
        fb.poll_once().await.unwrap();
        assert_eq!(published(&cache_a), reference(&store, &ka).await);
        assert_eq!(published(&cache_b), published(&cache_a));
        let dnskeys = |c: &Cache| {
            published(c)
                .iter()
                .find(|s| s.id.rtype == 48)
                .map_or(0, |s| s.rdata.len())
        };
        assert_eq!(dnskeys(&cache_b), 3, "the successor is in the DNSKEY RRset");

        // Due, but master b cannot load it: the activation waits, naming b.
        report_loadable(&store, Some(&ka), "a").await.unwrap();
        report_loadable(&store, Some(&kb), "b").await.unwrap();
        let rolled = roll(publish + 60).await.unwrap();
        assert!(rolled.steps.is_empty(), "{rolled:?}");
        assert_eq!(
            rolled.blocked,
            vec![(n("test"), new.locator.clone(), vec!["b".to_owned()])]
        );
        let state = |locator: String| {
            let store = store.clone();
            async move {
                store
                    .dnssec(&n("test"))
                    .await
                    .unwrap()
                    .unwrap()
                    .keys
                    .into_iter()
                    .find(|k| k.locator == locator)
                    .map(|k| k.state)
            }
        };
        assert_eq!(state(new.locator.clone()).await, Some(KeyState::Published));

        // The file reaches b: the successor signs and the old ZSK retires, in one write.
        copy_key(&dir_a, &dir_b, &new.locator);
        report_loadable(&store, Some(&kb), "b").await.unwrap();
        let rolled = roll(publish + 61).await.unwrap();
        assert_eq!(
            rolled.steps,
            vec![(
                n("test"),
                Step::Activate {
                    key: new.locator.clone(),
                    retire: vec![old.locator.clone()]
                }
            )]
        );
        assert!(rolled.blocked.is_empty());
        fa.poll_once().await.unwrap();
        fb.poll_once().await.unwrap();
        assert_eq!(published(&cache_a), reference(&store, &ka).await);
        assert_eq!(
            published(&cache_b),
            published(&cache_a),
            "b signs with the new key too"
        );

        // The old ZSK leaves once the largest signed TTL (the NS TTL, 172,800 s) and the
        // propagation delay have passed; not before. (The new ZSK's own 1,000 s lifetime would
        // start the next roll meanwhile: by hand from here.)
        policy.timings.zsk_lifetime = None;
        store.set_dnssec_policy(&n("test"), &policy).await.unwrap();
        let remove = publish + 61 + 172_800 + 10;
        assert!(roll(remove - 1).await.unwrap().steps.is_empty());
        assert_eq!(
            roll(remove).await.unwrap().steps,
            vec![(
                n("test"),
                Step::Remove {
                    key: old.locator.clone()
                }
            )]
        );
        assert_eq!(state(old.locator.clone()).await, None);
        fa.poll_once().await.unwrap();
        fb.poll_once().await.unwrap();
        assert_eq!(dnskeys(&cache_a), 2);
        assert_eq!(published(&cache_b), published(&cache_a));
        drop_pg(pg).await;
    }
}
