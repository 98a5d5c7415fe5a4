//! A satellite serving a signed zone, validated end to end (issue 13, serving): the generator
//! signs a synthetic TLD in the store and writes it as a satellite state file with its DNSSEC
//! sets (`write_satellite_snapshot_with_keys`, what a master sends); an in-process satellite
//! serves it on loopback; Unbound, started in the test's loopback-only namespace with the zone's
//! KSK as trust anchor and a stub zone pointing at the satellite, validates the answers.
//!
//! For algorithm 13 with NSEC3 opt-out (KSK + ZSK) and algorithm 15 with NSEC (one CSK): the
//! apex SOA, NS and DNSKEY, a signed delegation's DS and a NODATA at the apex come back secure
//! (AD). An insecure delegation's DS NODATA and an NXDOMAIN are secure with NSEC and insecure
//! (no AD, never SERVFAIL) under opt-out, whose covering NSEC3 cannot prove more (RFC 5155
//! §6). Then one signature is tampered with: the same question is SERVFAIL, which shows the
//! resolver really validates what the satellite sends.
//!
//! Then the whole change path: a master signing the zone as the store changes, a satellite
//! process following it, and Unbound validating the answers before and after a DS is added to
//! a new delegation and removed again (`unbound_validates_what_the_master_signs_as_the_zone_changes`).
//!
//! And a differential test with DO: the satellite against Knot and against NSD, each serving the
//! generator's signed zone file unchanged, over TCP, the answer, authority and additional
//! sections compared as sets of records, RRSIG octets included (deterministic signatures).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use orrery_generator::{Outcome, generate_zone_with_keys, write_satellite_snapshot_with_keys};
use orrery_proto::dnssec::{Algorithm, Denial, DnssecPolicy, KeyRole, KeyState, ZoneKey};
use orrery_proto::{Change, Name, Timestamp};
use orrery_satellite::ZoneSet;
use orrery_signer::key::dnskey_rdata;
use orrery_signer::{FileKeyStore, KeyStore, key_tag};
use orrery_store::Store;
use orrery_store::synthetic::SyntheticTld;

use crate::harness::{Satellite, free_port, program};
use crate::processes::{Backend, ProcessCluster, ZONE};
use crate::unbound::{Unbound, ask};

const DOMAINS: usize = 2_000;

/// Domains of the memory check (`dnssec_memory_per_delegation`); the figure of docs/DNSSEC.md
/// is taken with `ORRERY_DNSSEC_MEMORY_DOMAINS=100000`.
const MEMORY_DOMAINS: usize = 10_000;

const SATELLITE_CONFIG: &str = r#"
[server]
udp = ["127.0.0.1:0"]
tcp = ["127.0.0.1:0"]
workers = 2

[leaves.validate]
kind = "validate_query"

[leaves.lookup]
kind = "lookup"

[[chains]]
name = "main"
leaves = ["validate", "lookup"]
"#;

/// The signed zone: its state file's changes, and its KSK's DNSKEY line (the trust anchor).
struct Signed {
    changes: Vec<Change>,
    serial: orrery_proto::Serial,
    anchor: String,
    secure: String,
    insecure: String,
}

/// Generates a key for `role` in `keys` and adds it to the zone at `apex`, active from now;
/// returns its locator (the private key's file name in the key directory). Also used by the
/// transfer and watchdog tests.
pub(crate) async fn add_key(
    store: &Store,
    keys: &FileKeyStore,
    apex: &Name,
    role: KeyRole,
    alg: Algorithm,
) -> String {
    add_key_at(store, keys, apex, role, alg, Timestamp::now()).await
}

/// [`add_key`] with the key created, published and active from `now`.
pub(crate) async fn add_key_at(
    store: &Store,
    keys: &FileKeyStore,
    apex: &Name,
    role: KeyRole,
    alg: Algorithm,
    now: Timestamp,
) -> String {
    let flags = if role.is_sep() { 257 } else { 256 };
    let (locator, private) = keys.generate(apex, alg, flags).unwrap();
    let public_key = private.public_key();
    let key = ZoneKey {
        role,
        algorithm: alg,
        key_tag: key_tag(&dnskey_rdata(flags, alg, &public_key)),
        public_key,
        state: KeyState::Active,
        locator,
        created: now,
        published: Some(now),
        activated: Some(now),
        retired: None,
        revoked: None,
        ds_seen: None,
    };
    store.add_zone_key(apex, &key).await.unwrap();
    key.locator
}

fn sign(dir: &Path, denial: Denial, alg: Algorithm) -> Signed {
    sign_sized(dir, denial, alg, DOMAINS)
}

fn sign_sized(dir: &Path, denial: Denial, alg: Algorithm, domains: usize) -> Signed {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let apex = Name::from_ascii("test").unwrap();
        store
            .load_synthetic(&SyntheticTld {
                zone: apex.clone(),
                domains,
                seed: 13,
            })
            .await
            .unwrap();
        // Signatures valid now: the window of the current refresh period.
        let mut policy = DnssecPolicy::tld_default(DnssecPolicy::window_for(
            DnssecPolicy::DEFAULT_REFRESH,
            Timestamp::now(),
        ));
        policy.denial = denial;
        policy.algorithm = alg;
        store.set_dnssec_policy(&apex, &policy).await.unwrap();
        let keys = FileKeyStore::open(&dir.join("keys")).unwrap();
        if denial == Denial::Nsec {
            add_key(&store, &keys, &apex, KeyRole::Csk, alg).await;
        } else {
            add_key(&store, &keys, &apex, KeyRole::Ksk, alg).await;
            add_key(&store, &keys, &apex, KeyRole::Zsk, alg).await;
        }
        let out = dir.join("zones");
        std::fs::create_dir_all(&out).unwrap();
        let Outcome::Written { path, .. } =
            generate_zone_with_keys(&store, &apex, &out, true, Some(&keys))
                .await
                .unwrap()
        else {
            panic!("zone not written")
        };
        let snap = dir.join("test.snap");
        let serial = write_satellite_snapshot_with_keys(&store, &snap, Some(&keys))
            .await
            .unwrap();
        store.close().await;
        let text = std::fs::read_to_string(path).unwrap();
        let anchor = text
            .lines()
            .find(|l| l.contains("\tDNSKEY\t257 "))
            .expect("a KSK")
            .to_owned();
        let (_, changes) = orrery_proto::state_file::read_state_file(&snap).unwrap();
        let delegated = |with_ds: bool| {
            changes
                .iter()
                .find_map(|c| match c {
                    Change::Domain(d) if d.is_delegated() && d.ds.is_empty() != with_ds => {
                        Some(d.name.to_string())
                    }
                    _ => None,
                })
                .expect("a delegation of each kind")
        };
        let (secure, insecure) = (delegated(true), delegated(false));
        Signed {
            changes,
            serial,
            anchor,
            secure,
            insecure,
        }
    })
}

fn run(unbound: &Path, denial: Denial, alg: Algorithm) {
    let work = tempfile::tempdir().unwrap();
    let signed = sign(work.path(), denial, alg);
    let zones = ZoneSet::from_objects(signed.serial, &signed.changes);
    assert!(zones.zones()[0].signed.is_signed());
    let sat = Satellite::start_zones(SATELLITE_CONFIG, zones);
    let resolver = Unbound::start(unbound, &signed.anchor, sat.udp);
    let nsec = denial == Denial::Nsec;
    // (name, qtype, expected rcode, AD expected)
    let cases: Vec<(String, u16, ResponseCode, bool)> = vec![
        ("test".into(), 6, ResponseCode::NoError, true),
        ("test".into(), 2, ResponseCode::NoError, true),
        ("test".into(), 48, ResponseCode::NoError, true),
        ("test".into(), 16, ResponseCode::NoError, true),
        (signed.secure.clone(), 43, ResponseCode::NoError, true),
        (signed.insecure.clone(), 43, ResponseCode::NoError, nsec),
        (
            "no-such-name-xyz.test".into(),
            1,
            ResponseCode::NXDomain,
            nsec,
        ),
        (
            "a.b.no-such-name-xyz.test".into(),
            1,
            ResponseCode::NXDomain,
            nsec,
        ),
    ];
    let mut failures = Vec::new();
    for (name, qtype, rcode, ad) in &cases {
        let Some(m) = ask(resolver.addr, name, *qtype) else {
            failures.push(format!("{name} {qtype}: no answer"));
            continue;
        };
        if m.response_code != *rcode || m.authentic_data != *ad {
            failures.push(format!(
                "{name} {qtype}: {:?} AD {} (want {rcode:?} AD {ad})",
                m.response_code, m.authentic_data
            ));
        }
        if *qtype == 43 && *ad && *name == signed.secure {
            assert!(
                m.answers.iter().any(|r| u16::from(r.record_type()) == 43),
                "{name}: {m:?}"
            );
        }
    }
    assert!(failures.is_empty(), "{denial:?}/{alg:?}: {failures:#?}");
    drop(resolver);
    drop(sat);

    // Tamper with the SOA's signatures: the resolver must now refuse the SOA.
    let mut changes = signed.changes.clone();
    for c in &mut changes {
        if let Change::Dnssec(set) = c
            && set.id.rtype == 46
            && set.id.covered == 6
        {
            for rd in &mut set.rdata {
                let last = rd.len() - 1;
                rd[last] ^= 0x55;
            }
        }
    }
    let sat = Satellite::start_zones(
        SATELLITE_CONFIG,
        ZoneSet::from_objects(signed.serial, &changes),
    );
    // `start` waits for any answer: SERVFAIL is one.
    let resolver = Unbound::start(unbound, &signed.anchor, sat.udp);
    let m = ask(resolver.addr, "test", 6).expect("an answer");
    assert_eq!(
        m.response_code,
        ResponseCode::ServFail,
        "a tampered RRSIG(SOA) must not validate ({denial:?})"
    );
}

#[test]
#[cfg_attr(
    missing_unbound,
    ignore = "Unbound is not installed (apt-get install unbound)"
)]
fn unbound_validates_nsec3_opt_out_algorithm_13() {
    let Some(unbound) = program("unbound", "unbound") else {
        return;
    };
    run(&unbound, Denial::Nsec3OptOut, Algorithm::EcdsaP256Sha256);
}

#[test]
#[cfg_attr(
    missing_unbound,
    ignore = "Unbound is not installed (apt-get install unbound)"
)]
fn unbound_validates_nsec_algorithm_15() {
    let Some(unbound) = program("unbound", "unbound") else {
        return;
    };
    run(&unbound, Denial::Nsec, Algorithm::Ed25519);
}

/// The reference servers of the DO differential test, each serving the generator's signed zone
/// file unchanged: Knot with its signing off, and NSD (which never signs).
#[derive(Clone, Copy, Debug)]
enum Peer {
    Knot,
    Nsd,
}

/// A peer serving `test.` from the signed zone file on a loopback port.
struct PeerServer {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl PeerServer {
    fn start(peer: Peer, program: &Path, zone_file: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let zone = zone_file.display();
        let (conf, text) = match peer {
            Peer::Knot => (
                "knot.conf",
                format!(
                    r#"server:
    listen: 127.0.0.1@{port}
    rundir: "{d}"
database:
    storage: "{d}"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "{d}"
    dnssec-signing: off
    semantic-checks: off
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: test.
    file: "{zone}"
"#
                ),
            ),
            Peer::Nsd => (
                "nsd.conf",
                format!(
                    r#"server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    pidfile: "{d}/nsd.pid"
    xfrdfile: "{d}/xfrd.state"
    zonelistfile: "{d}/zone.list"
    logfile: "{d}/nsd.log"
    server-count: 1
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: "test"
    zonefile: "{zone}"
"#
                ),
            ),
        };
        let conf = dir.path().join(conf);
        std::fs::write(&conf, text).unwrap();
        let mut cmd = Command::new(program);
        if let Peer::Nsd = peer {
            cmd.arg("-d");
        }
        let child = cmd
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {peer:?}: {e}"));
        let me = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tcp_ask(me.addr, "test", 6).is_none_or(|m| m.answers.is_empty()) {
            assert!(Instant::now() < deadline, "{peer:?} did not load the zone");
            std::thread::sleep(Duration::from_millis(100));
        }
        me
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A non-recursive query with DO over TCP (nothing truncated: the sections compare whole).
fn tcp_ask(addr: SocketAddr, name: &str, qtype: u16) -> Option<Message> {
    use std::io::{Read, Write};
    let mut p = vec![0x4F, 0x52, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 0]);
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut framed = (p.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&p);
    s.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Message::from_vec(&buf).ok()
}

/// A section as a set of records: owner lowercased, TTL, type, RDATA (RRSIG, NSEC3 and the
/// other types hickory does not decode here, as their octets).
fn record_set(records: &[hickory_proto::rr::Record]) -> std::collections::BTreeSet<String> {
    records
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {:?}",
                r.name.to_ascii().to_lowercase(),
                r.ttl,
                r.record_type(),
                r.data
            )
            .to_lowercase()
        })
        .collect()
}

/// Removes from a positive answer what NSD adds and the RFCs leave optional (RFC 2181 §6.1,
/// RFC 1034 §4.3.2's "may"): the apex NS RRset and its RRSIG in AUTHORITY and, in ADDITIONAL,
/// the records of those NS targets. The satellite, like Knot, leaves them out. Nothing is
/// removed from referrals or negative answers, whose sections the RFCs fix.
fn optional_apex_ns_removed(m: &mut Message) {
    use hickory_proto::rr::RecordType;
    if m.answers.is_empty() || m.response_code != ResponseCode::NoError {
        return;
    }
    let apex = hickory_proto::rr::Name::from_ascii("test.").unwrap();
    let mut targets = Vec::new();
    for r in &m.authorities {
        if r.name == apex && r.record_type() == RecordType::NS {
            targets.push(r.data.to_string().to_lowercase());
        }
    }
    if targets.is_empty() {
        return;
    }
    // An RRSIG's RDATA starts with its covered type; hickory keeps this type undecoded here,
    // so `record_set` shows its octets: NS is `[0, 2, …`.
    m.authorities.retain(|r| {
        r.name != apex
            || !(r.record_type() == RecordType::NS
                || (u16::from(r.record_type()) == 46
                    && format!("{:?}", r.data).contains("anything: [0, 2,")))
    });
    m.additionals
        .retain(|r| !targets.contains(&r.name.to_ascii().to_lowercase()));
}

/// The satellite against a peer serving the generator's signed zone file: the same questions
/// with DO over TCP, rcode, AA and the answer, authority and additional sections compared as
/// sets of records (deterministic signatures: the RRSIG octets must be equal).
fn peer_differential(peer: Peer, program: &Path, denial: Denial, alg: Algorithm) {
    let work = tempfile::tempdir().unwrap();
    let signed = sign(work.path(), denial, alg);
    let zones = ZoneSet::from_objects(signed.serial, &signed.changes);
    let sat = Satellite::start_zones(SATELLITE_CONFIG, zones);
    let knot = PeerServer::start(peer, program, &work.path().join("zones").join("test.zone"));
    let mut corpus: Vec<(String, u16)> = Vec::new();
    for t in [6, 2, 48, 51, 1, 16, 43, 47] {
        corpus.push(("test".into(), t));
    }
    let mut secure = 0;
    let mut insecure = 0;
    for c in &signed.changes {
        match c {
            Change::Domain(d) if d.is_delegated() => {
                let name = d.name.to_string();
                let counter = if d.ds.is_empty() {
                    &mut insecure
                } else {
                    &mut secure
                };
                if *counter < 15 {
                    *counter += 1;
                    for (n, t) in [
                        (name.clone(), 1),
                        (format!("www.{name}"), 28),
                        (name.clone(), 43),
                        (name.clone(), 2),
                    ] {
                        corpus.push((n, t));
                    }
                }
            }
            Change::Host(h) if h.name.to_string().ends_with(".test") => {
                for t in [1, 28, 16] {
                    corpus.push((h.name.to_string(), t));
                }
            }
            _ => {}
        }
    }
    // Wildcards: the store holds none (host names are LDH, RFC 952/1123), so a registry zone's
    // wildcard cases are the proofs that no wildcard matches: every NXDOMAIN below carries one.
    // Here with a closest encloser below the apex (the empty non-terminal `nic.test`, above the
    // apex's servers), the wildcard asked for itself, and that non-terminal's NODATA.
    for (n, t) in [
        ("absent.nic.test", 1),
        ("absent.nic.test", 28),
        ("two.labels.nic.test", 1),
        ("*.nic.test", 1),
        ("*.test", 1),
        ("nic.test", 1),
        ("nic.test", 43),
    ] {
        corpus.push((n.into(), t));
    }
    for (i, depth) in ["zz", "a.zz", "b.a.zz", "c.b.a.zz"].iter().enumerate() {
        for k in 0..10 {
            corpus.push((format!("{depth}{k}{i}.test"), 1));
        }
    }
    let mut diffs = Vec::new();
    // RRSIGs compared, and negative answers proved by NSEC(3) records: the sets compared are
    // the signed ones.
    let (mut rrsigs, mut proofs) = (0, 0);
    for (name, t) in &corpus {
        let (Some(mut k), Some(s)) = (tcp_ask(knot.addr, name, *t), tcp_ask(sat.tcp, name, *t))
        else {
            diffs.push(format!("{name} {t}: no answer"));
            continue;
        };
        if let Peer::Nsd = peer {
            optional_apex_ns_removed(&mut k);
        }
        for r in s.answers.iter().chain(&s.authorities) {
            match u16::from(r.record_type()) {
                46 => rrsigs += 1,
                47 | 50 => proofs += 1,
                _ => {}
            }
        }
        let mut d = Vec::new();
        if k.response_code != s.response_code {
            d.push(format!(
                "rcode {peer:?} {:?} sat {:?}",
                k.response_code, s.response_code
            ));
        }
        if k.authoritative != s.authoritative {
            d.push(format!(
                "AA {peer:?} {} sat {}",
                k.authoritative, s.authoritative
            ));
        }
        for (what, a, b) in [
            ("answer", &k.answers, &s.answers),
            ("authority", &k.authorities, &s.authorities),
            ("additional", &k.additionals, &s.additionals),
        ] {
            let (a, b) = (record_set(a), record_set(b));
            if a != b {
                d.push(format!(
                    "{what}: only {peer:?} {:?}; only sat {:?}",
                    a.difference(&b).collect::<Vec<_>>(),
                    b.difference(&a).collect::<Vec<_>>()
                ));
            }
        }
        if !d.is_empty() {
            diffs.push(format!("{name} {t}: {}", d.join("; ")));
        }
    }
    assert!(
        secure > 0 && insecure > 0,
        "{secure} secure, {insecure} insecure"
    );
    eprintln!(
        "DO differential vs {peer:?} ({denial:?}/{alg:?}): {} queries, {rrsigs} RRSIGs and \
         {proofs} NSEC/NSEC3 records compared, {} differ",
        corpus.len(),
        diffs.len()
    );
    assert!(
        rrsigs > corpus.len() && proofs > 40,
        "{rrsigs} RRSIGs, {proofs} proofs"
    );
    assert!(diffs.is_empty(), "{:#?}", &diffs[..diffs.len().min(10)]);
}

#[test]
#[cfg_attr(missing_knot, ignore = "Knot is not installed (apt-get install knot)")]
fn satellite_answers_as_knot_does_with_do() {
    let Some(knotd) = program("knotd", "knot") else {
        return;
    };
    peer_differential(
        Peer::Knot,
        &knotd,
        Denial::Nsec3OptOut,
        Algorithm::EcdsaP256Sha256,
    );
    peer_differential(Peer::Knot, &knotd, Denial::Nsec, Algorithm::Ed25519);
}

#[test]
#[cfg_attr(missing_nsd, ignore = "NSD is not installed (apt-get install nsd)")]
fn satellite_answers_as_nsd_does_with_do() {
    let Some(nsd) = program("nsd", "nsd") else {
        return;
    };
    peer_differential(
        Peer::Nsd,
        &nsd,
        Denial::Nsec3OptOut,
        Algorithm::EcdsaP256Sha256,
    );
    peer_differential(Peer::Nsd, &nsd, Denial::Nsec, Algorithm::Ed25519);
}

/// The satellite's memory for a signed zone (8 % with DS), NSEC3 opt-out: the bytes the zone's
/// DNSSEC part holds (its arenas, chain and entry records), per delegation and per signed
/// delegation, bounded. The figure of docs/DNSSEC.md, at 100,000 domains:
/// `ORRERY_DNSSEC_MEMORY_DOMAINS=100000 cargo test -p orrery-tests --test cluster dnssec_memory -- --nocapture`.
#[test]
fn dnssec_memory_per_delegation() {
    let domains = std::env::var("ORRERY_DNSSEC_MEMORY_DOMAINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MEMORY_DOMAINS);
    let work = tempfile::tempdir().unwrap();
    let signed = sign_sized(
        work.path(),
        Denial::Nsec3OptOut,
        Algorithm::EcdsaP256Sha256,
        domains,
    );
    let sets = signed
        .changes
        .iter()
        .filter(|c| matches!(c, Change::Dnssec(_)))
        .count();
    let full = ZoneSet::from_objects(signed.serial, &signed.changes);
    let z = &full.zones()[0];
    let delegations = z.delegation_count();
    let secure = signed
        .changes
        .iter()
        .filter(|c| matches!(c, Change::Domain(d) if d.is_delegated() && !d.ds.is_empty()))
        .count();
    let held = z.signed.heap_bytes();
    eprintln!(
        "{domains} domains, {delegations} delegations ({secure} with DS), {sets} DNSSEC \
         sets, {} NSEC3: DNSSEC part {held} B, {:.1} B per delegation, {:.0} B per signed one",
        z.signed.nsec3().len(),
        held as f64 / delegations as f64,
        held as f64 / secure as f64,
    );
    // 360 B per signed delegation at 100k (docs/DNSSEC.md): the DS's RRSIG, its NSEC3 and that
    // NSEC3's RRSIG, and the chain entry. Unsigned delegations add nothing under opt-out, so
    // the whole part stays within that per signed delegation (the apex's sets included).
    assert!(secure > 0 && delegations > secure);
    assert!(
        held < 600 * secure,
        "{held} B of DNSSEC for {secure} signed delegations"
    );
}

/// The change path signed end to end: the store's zone `flt.` gets a policy (NSEC3 opt-out,
/// algorithm 13) and a KSK and ZSK in the master's key directory; a master process signs it
/// and a satellite process follows the master; Unbound, anchored at the KSK, validates what
/// the satellite answers. Then registry writes, each one checked through the resolver once the
/// satellite has it: a new delegation with a DS (its DS comes back secure: the batch carried
/// the DS's RRSIG and the new NSEC3), the same DS removed (NODATA, insecure under opt-out, never
/// SERVFAIL), and the apex still secure at the new serial (the batch re-signed the SOA).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    missing_unbound,
    ignore = "Unbound is not installed (apt-get install unbound)"
)]
async fn unbound_validates_what_the_master_signs_as_the_zone_changes() {
    let Some(unbound) = program("unbound", "unbound") else {
        return;
    };
    let mut cluster = ProcessCluster::create(Backend::Sqlite).await;
    let apex = Name::from_ascii(ZONE).unwrap();
    let alg = Algorithm::EcdsaP256Sha256;
    let policy = DnssecPolicy::tld_default(DnssecPolicy::window_for(
        DnssecPolicy::DEFAULT_REFRESH,
        Timestamp::now(),
    ));
    cluster
        .store
        .set_dnssec_policy(&apex, &policy)
        .await
        .unwrap();
    let key_dir = cluster.dir.path().join("keys");
    let keys = FileKeyStore::open(&key_dir).unwrap();
    add_key(&cluster.store, &keys, &apex, KeyRole::Ksk, alg).await;
    add_key(&cluster.store, &keys, &apex, KeyRole::Zsk, alg).await;
    // The trust anchor: the KSK's DNSKEY line of the generator's signed file.
    let out = cluster.dir.path().join("zones");
    std::fs::create_dir_all(&out).unwrap();
    let Outcome::Written { path, .. } =
        generate_zone_with_keys(&cluster.store, &apex, &out, true, Some(&keys))
            .await
            .unwrap()
    else {
        panic!("zone not written")
    };
    let anchor = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .find(|l| l.contains("\tDNSKEY\t257 "))
        .expect("a KSK")
        .to_owned();
    cluster.write_master_config(&format!("[dnssec]\nkey_dir = {:?}\n", key_dir));
    cluster.start_master();
    cluster.start_satellite("sat1");
    let sat = SocketAddr::from(([127, 0, 0, 1], cluster.ports("sat1").dns));
    let resolver = Unbound::start_for(&unbound, ZONE, &anchor, sat);

    // What the resolver says about (name, type): rcode, AD, whether a DS came in the answer.
    let look = |name: &str, qtype: u16| {
        let m = ask(resolver.addr, name, qtype).expect("an answer from unbound");
        let has_ds = m.answers.iter().any(|r| u16::from(r.record_type()) == 43);
        (m.response_code, m.authentic_data, has_ds)
    };
    // Polls until the resolver's view of (name, type) satisfies `done` (the satellite has the
    // change), failing on any SERVFAIL on the way: a validator never sees a half-signed state.
    let wait = |name: &str, qtype: u16, done: &dyn Fn((ResponseCode, bool, bool)) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = look(name, qtype);
            assert_ne!(seen.0, ResponseCode::ServFail, "{name} {qtype}: SERVFAIL");
            if done(seen) {
                return seen;
            }
            assert!(Instant::now() < deadline, "{name} {qtype}: still {seen:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(
        look(ZONE, 6),
        (ResponseCode::NoError, true, false),
        "apex SOA"
    );
    assert_eq!(
        look(ZONE, 48),
        (ResponseCode::NoError, true, false),
        "DNSKEY"
    );

    // A new delegation with a DS: secure once the satellite has it.
    let name = format!("signed-later.{ZONE}");
    cluster
        .store
        .add_domain(&orrery_store::write::NewDomain {
            name: Name::from_ascii(&name).unwrap(),
            registrar: "FLT".into(),
            registrant: None,
            admin: None,
            tech: None,
            billing: None,
            expires: Timestamp(2_000_000_000),
            statuses: vec![],
            nameservers: vec![orrery_store::write::NsSpec {
                name: Name::from_ascii("ns.elsewhere.example").unwrap(),
                addresses: vec![],
            }],
            ds: vec![orrery_proto::Ds {
                key_tag: 4242,
                algorithm: 13,
                digest_type: 2,
                digest: vec![0x5A; 32],
            }],
        })
        .await
        .unwrap();
    let seen = wait(&name, 43, &|(_, _, ds)| ds);
    assert_eq!(seen, (ResponseCode::NoError, true, true), "new DS");

    // The DS removed: NODATA, insecure (opt-out), the delegation still there.
    cluster
        .store
        .set_ds(&Name::from_ascii(&name).unwrap(), &[])
        .await
        .unwrap();
    let seen = wait(&name, 43, &|(_, _, ds)| !ds);
    assert_eq!(seen, (ResponseCode::NoError, false, false), "DS removed");

    // The apex at the serial of those writes: still secure.
    assert_eq!(
        look(ZONE, 6),
        (ResponseCode::NoError, true, false),
        "apex SOA after"
    );
}

/// Issue 13's failover proof: a satellite moved from one master to another serves the same
/// signed zone, RRSIG octets included, at the same serial. Two masters on one PostgreSQL store
/// with one key directory; sat1 boots from m1 and its DO answers are kept (apex SOA, DNSKEY,
/// NSEC3PARAM, an NXDOMAIN, and DS queries for forty delegations, secure and insecure). Then
/// m1 is killed, sat1 is stopped and its saved state removed, so that what it serves next comes
/// whole from m2's snapshot, signed by m2 alone; it boots again, dialling m1 then m2, and at the
/// same serial every answer is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_satellite_moved_to_another_master_serves_the_same_signatures() {
    let Some(url) = crate::harness::postgres_url() else {
        return;
    };
    let mut c = ProcessCluster::create(Backend::Postgres(url)).await;
    let apex = Name::from_ascii(ZONE).unwrap();
    let alg = Algorithm::EcdsaP256Sha256;
    let policy = DnssecPolicy::tld_default(DnssecPolicy::window_for(
        DnssecPolicy::DEFAULT_REFRESH,
        Timestamp::now(),
    ));
    c.store.set_dnssec_policy(&apex, &policy).await.unwrap();
    let key_dir = c.dir.path().join("keys");
    let keys = FileKeyStore::open(&key_dir).unwrap();
    add_key(&c.store, &keys, &apex, KeyRole::Ksk, alg).await;
    add_key(&c.store, &keys, &apex, KeyRole::Zsk, alg).await;
    c.write_master_config(&format!("[dnssec]\nkey_dir = {:?}\n", key_dir));
    c.start_master();
    let m2_port = free_port();
    let m2 = c.spawn_other_master(m2_port);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !m2.log().contains("link listening") {
        assert!(Instant::now() < deadline, "m2 not listening:\n{}", m2.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    c.set_satellite_masters(&[c.master_port(), m2_port], "3600");

    let mut names = Vec::new();
    for i in 0..40 {
        names.push((c.some_domain(i * 7).await, 43u16));
    }
    names.extend([
        (ZONE.to_owned(), 6u16),
        (ZONE.to_owned(), 48),
        (ZONE.to_owned(), 51),
        (format!("no-such-name-orrery.{ZONE}"), 1),
    ]);
    // Every answer at the satellite's serial, once it is stable and the zone signed.
    let answers = |c: &ProcessCluster| {
        let sat = SocketAddr::from(([127, 0, 0, 1], c.ports("sat1").dns));
        names
            .iter()
            .map(|(name, qtype)| {
                let m = tcp_ask(sat, name, *qtype).unwrap_or_else(|| panic!("{name} {qtype}"));
                (
                    m.response_code,
                    record_set(&m.answers),
                    record_set(&m.authorities),
                )
            })
            .collect::<Vec<_>>()
    };
    let signed_at = |c: &mut ProcessCluster| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let serial = c.soa_serial("sat1");
            let sat = SocketAddr::from(([127, 0, 0, 1], c.ports("sat1").dns));
            let dnskey = tcp_ask(sat, ZONE, 48).is_some_and(|m| !m.answers.is_empty());
            if let Some(serial) = serial.filter(|_| dnskey) {
                return serial;
            }
            assert!(Instant::now() < deadline, "{}", c.satellite_log("sat1"));
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    c.start_satellite("sat1");
    let serial = signed_at(&mut c);
    let from_m1 = answers(&c);
    assert!(
        c.satellite_log("sat1")
            .contains(&format!(":{}", c.master_port()))
    );
    let signatures: usize = from_m1
        .iter()
        .map(|(_, a, n)| a.iter().chain(n).filter(|r| r.contains(" rrsig ")).count())
        .sum();
    let secure = from_m1
        .iter()
        .filter(|(_, a, _)| a.iter().any(|r| r.contains(" ds ")))
        .count();
    assert!(secure > 0, "no secure delegation among the names");
    assert!(
        signatures >= names.len(),
        "{signatures} RRSIGs: {from_m1:#?}"
    );

    c.kill_master();
    c.stop_satellite("sat1");
    let state = c.state_file("sat1");
    let prefix = state.file_name().unwrap().to_string_lossy().into_owned();
    for entry in std::fs::read_dir(c.dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    c.start_satellite("sat1");
    assert_eq!(signed_at(&mut c), serial, "the store did not change");
    let log = c.satellite_log("sat1");
    assert!(
        log.contains("snapshot received") && log.contains(&format!(":{m2_port}")),
        "sat1 did not boot from m2's snapshot:\n{log}"
    );
    let from_m2 = answers(&c);
    for (((name, qtype), a), b) in names.iter().zip(&from_m1).zip(&from_m2) {
        assert_eq!(a, b, "{name} {qtype}: m1's answer, then m2's");
    }
    eprintln!(
        "serial {serial}: {} answers, {signatures} RRSIGs, {secure} secure delegations the same from m1 and m2",
        names.len()
    );
    drop(m2);
}
