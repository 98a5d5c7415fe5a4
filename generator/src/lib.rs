//! The generator: RFC 1035 master files and a `named.conf` fragment for the fallback cluster of
//! plain BIND servers (the Registry Advantage "Generator").
//!
//! For each zone it writes the SOA (serial = the zone's own serial, [`Zone::serial`]: the journal
//! serial of the last committed change to the zone, the same serial a satellite built from that
//! state serves; it only grows, and a change elsewhere leaves it alone — docs/ARCHITECTURE.md,
//! "SOA serials"), the apex NS and the addresses of in-zone apex nameservers, then every
//! delegated domain's NS and DS, then the glue of in-bailiwick hosts that a published delegation
//! needs (the store's [`HostSelection::Published`]). Held domains and domains without
//! nameservers are left out.
//!
//! It streams from one consistent snapshot of the store straight into the file, so memory stays
//! flat as the zone grows; it writes a temporary file, fsyncs it and renames it over the old one
//! (then fsyncs the directory), so a BIND server never reads a half-written zone; and it skips a
//! zone whose data has not changed since the file on disk was written (the zone's serial is
//! recorded in the file's first line): a zone no change touched is not rewritten, not reloaded.
//!
//! # Layout
//! - this module: BIND master files ([`generate_zone`]), the `named.conf` fragment
//!   ([`write_named_conf`]) and the post-write hook ([`run_hook`]).
//! - `signed`: signed master files for zones whose DNSSEC policy signs them: the records
//!   go through [`orrery_signer`] and are written in canonical order, the same bytes for the
//!   same store state ([`generate_zone_with_keys`] with the signing hosts' key store).
//! - [`snapshot`]: the satellite's snapshot file of the whole registry
//!   ([`write_satellite_snapshot`]).

mod signed;
pub mod snapshot;

pub use signed::SignZoneError;

pub use snapshot::{write_satellite_snapshot, write_satellite_snapshot_with_keys};

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use orrery_proto::atomic_file::AtomicFile;
use orrery_proto::{Domain, Host, Name, Serial, Zone};
use orrery_store::{HostSelection, Store, StoreError, ZoneItem};

/// Errors of the generator, with the zone or file they concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("zone {0} does not exist in the store")]
    NoSuchZone(Name),
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A signed zone could not be signed (no key store, a key file, the keys in the store).
    #[error(transparent)]
    Sign(#[from] SignZoneError),
    #[error("hook for zone {zone} failed: {reason}")]
    Hook { zone: Name, reason: String },
    /// The zone changed between the registry snapshot and the zone's signing: the snapshot
    /// would hold signatures of another state (run the generator again).
    #[error(
        "zone {zone} moved from serial {snapshot} to {signed} while the snapshot was written; run again"
    )]
    ZoneMoved {
        zone: Name,
        snapshot: Serial,
        signed: Serial,
    },
}

/// What [`generate_zone`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file was (re)written; `serial` is the zone's serial, behind its SOA serial.
    Written {
        path: PathBuf,
        serial: Serial,
        delegations: u64,
        records: u64,
    },
    /// The zone's data has not changed since the file on disk was written; `zone_serial` is the
    /// zone's serial.
    Unchanged { path: PathBuf, zone_serial: Serial },
}

/// The file name of a zone's master file in the output directory.
pub fn zone_file_name(apex: &Name) -> String {
    if apex.is_root() {
        "root.zone".to_owned()
    } else {
        format!("{apex}.zone")
    }
}

/// The SOA serial for a zone's serial: its low 32 bits (as [`Zone::soa_serial`]). Serial
/// arithmetic (RFC 1982) keeps this increasing while a zone's serial moves by less than 2^31
/// between two versions a secondary sees (docs/ARCHITECTURE.md, "SOA serials").
pub fn soa_serial(serial: Serial) -> u32 {
    serial as u32
}

/// The header line that records the zone's serial in the file.
fn serial_line(zone_serial: Serial) -> String {
    format!("; orrery-serial {zone_serial}")
}

/// Reads the journal serial recorded in an existing zone file, if any.
fn recorded_serial(path: &Path) -> Option<Serial> {
    let file = File::open(path).ok()?;
    let mut lines = BufReader::new(file).lines();
    for _ in 0..3 {
        let line = lines.next()?.ok()?;
        if let Some(v) = line.strip_prefix("; orrery-serial ") {
            return v.trim().parse().ok();
        }
    }
    None
}

/// `name` relative to `apex` for a master file with `$ORIGIN apex`; absolute outside it.
fn owner(name: &Name, apex: &Name) -> String {
    if name == apex {
        return "@".to_owned();
    }
    if !apex.is_root() && name.is_subdomain_of(apex) {
        let full = name.to_string();
        let suffix_len = apex.to_string().len() + 1;
        return full[..full.len() - suffix_len].to_owned();
    }
    name.to_fqdn()
}

/// Writes the zone's opening: header comments, `$ORIGIN`, SOA and apex NS. `serial` is the
/// journal serial of the snapshot, the SOA serial's source only for a zone without its own.
fn write_apex(
    out: &mut impl Write,
    zone: &Zone,
    serial: Serial,
    zone_serial: Serial,
) -> io::Result<u64> {
    let apex = &zone.name;
    writeln!(out, "{}", serial_line(zone_serial))?;
    writeln!(
        out,
        "; zone {} generated by orrery-generator from the registry store; do not edit",
        apex.to_fqdn()
    )?;
    writeln!(out, "$ORIGIN {}", apex.to_fqdn())?;
    writeln!(
        out,
        "@\t{}\tIN\tSOA\t{} {} {} {} {} {} {}",
        zone.soa_ttl,
        zone.soa.mname.to_fqdn(),
        zone.soa.rname.to_fqdn(),
        zone.soa_serial(serial),
        zone.soa.refresh,
        zone.soa.retry,
        zone.soa.expire,
        zone.soa.minimum
    )?;
    for ns in &zone.nameservers {
        writeln!(out, "@\t{}\tIN\tNS\t{}", zone.ns_ttl, ns.to_fqdn())?;
    }
    Ok(1 + zone.nameservers.len() as u64)
}

/// Writes one domain's delegation (NS, then DS); nothing for a domain out of DNS.
fn write_domain(out: &mut impl Write, zone: &Zone, d: &Domain) -> io::Result<u64> {
    if !d.is_delegated() || d.zone != zone.name {
        return Ok(0);
    }
    let o = owner(&d.name, &zone.name);
    for ns in &d.nameservers {
        writeln!(out, "{o}\t{}\tIN\tNS\t{}", zone.ns_ttl, ns.to_fqdn())?;
    }
    for ds in &d.ds {
        writeln!(
            out,
            "{o}\t{}\tIN\tDS\t{} {} {} {}",
            zone.ds_ttl,
            ds.key_tag,
            ds.algorithm,
            ds.digest_type,
            ds.digest_hex()
        )?;
    }
    Ok((d.nameservers.len() + d.ds.len()) as u64)
}

/// Writes a host's addresses (glue, or the apex nameservers' own addresses).
fn write_host(out: &mut impl Write, zone: &Zone, h: &Host) -> io::Result<u64> {
    let o = owner(&h.name, &zone.name);
    for a in &h.addresses {
        let t = if a.is_ipv4() { "A" } else { "AAAA" };
        writeln!(out, "{o}\t{}\tIN\t{t}\t{a}", zone.ns_ttl)?;
    }
    Ok(h.addresses.len() as u64)
}

/// Error carrier for the streaming visitor: a store error or a write error.
enum VisitError {
    Store(StoreError),
    Io(io::Error),
}

impl From<StoreError> for VisitError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Writes the master file of `apex` into `dir`, unless the file there already holds the
/// zone's current serial (and `force` is false). The file is replaced atomically. A zone whose
/// DNSSEC policy signs it needs [`generate_zone_with_keys`].
pub async fn generate_zone(
    store: &Store,
    apex: &Name,
    dir: &Path,
    force: bool,
) -> Result<Outcome, GenerateError> {
    generate_zone_with_keys(store, apex, dir, force, None).await
}

/// [`generate_zone`], signing a zone whose policy says so with the private keys in `keys`.
pub async fn generate_zone_with_keys(
    store: &Store,
    apex: &Name,
    dir: &Path,
    force: bool,
    keys: Option<&dyn orrery_signer::KeyStore>,
) -> Result<Outcome, GenerateError> {
    let path = dir.join(zone_file_name(apex));
    let current = store
        .zone_serial(apex)
        .await?
        .ok_or_else(|| GenerateError::NoSuchZone(apex.clone()))?;
    if !force && recorded_serial(&path) == Some(current) {
        return Ok(Outcome::Unchanged {
            path,
            zone_serial: current,
        });
    }

    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| GenerateError::Io { path, source }
    };
    // Beside the old file until it is whole, then renamed over it (the one helper for that).
    let mut out = AtomicFile::create(&path).map_err(io_err(&path))?;
    let mut zone: Option<Zone> = None;
    let mut written_serial = 0;
    let mut serials = (0, 0);
    let (mut delegations, mut records) = (0u64, 0u64);
    // A signed zone is collected, signed whole and written in canonical order; an unsigned one
    // streams straight into the file. Which one is known once the items after the zone come.
    let mut signed_records = signed::SignedRecords::default();
    let mut apex_written = false;

    let visited = store
        .visit_zone(apex, HostSelection::Published, |item| {
            if let ZoneItem::Zone {
                zone: z,
                serial,
                zone_serial,
            } = &item
            {
                zone = Some(Zone::clone(z));
                serials = (*serial, *zone_serial);
                written_serial = if *zone_serial > 0 {
                    *zone_serial
                } else {
                    *serial
                };
                return Ok(());
            }
            let z = zone.as_ref().expect("the zone comes first");
            if let Some((n, delegation)) = signed_records.take(z, serials.0, &item) {
                delegations += u64::from(delegation);
                records += n;
                return Ok(());
            }
            if !apex_written {
                apex_written = true;
                records += write_apex(&mut out, z, serials.0, serials.1).map_err(VisitError::Io)?;
            }
            let res = match item {
                ZoneItem::Domain(d) => {
                    write_domain(&mut out, z, &d).inspect(|&n| delegations += u64::from(n > 0))
                }
                ZoneItem::Host(h) => write_host(&mut out, z, &h),
                ZoneItem::Zone { .. } | ZoneItem::Dnssec(_) => Ok(0),
            };
            res.map(|n| records += n).map_err(VisitError::Io)
        })
        .await;
    // Any error below drops `out`, which removes its temporary file.
    match visited {
        Ok(Some(_)) => {}
        Ok(None) => return Err(GenerateError::NoSuchZone(apex.clone())),
        Err(VisitError::Store(e)) => return Err(e.into()),
        Err(VisitError::Io(source)) => {
            return Err(GenerateError::Io {
                path: path.clone(),
                source,
            });
        }
    };
    let z = zone.as_ref().expect("a visited zone");
    let written = match &signed_records.dnssec {
        Some(d) => {
            let signed_zone =
                match signed::sign(z, d, std::mem::take(&mut signed_records.records), keys) {
                    Ok(s) => s,
                    Err(e) => return Err(e.into()),
                };
            records = signed_zone.records.len() as u64;
            signed::write(&mut out, &serial_line(serials.1), z, &signed_zone)
        }
        None if !apex_written => {
            write_apex(&mut out, z, serials.0, serials.1).map(|n| records += n)
        }
        None => Ok(()),
    };
    if let Err(source) = written {
        return Err(GenerateError::Io {
            path: path.clone(),
            source,
        });
    }
    if let Err(source) = out.commit() {
        return Err(GenerateError::Io { path, source });
    }
    Ok(Outcome::Written {
        path,
        serial: written_serial,
        delegations,
        records,
    })
}

/// The DNSSEC sets of zone `apex` as a master sends them to satellites
/// ([`orrery_signer::dnssec_rrsets`]), from the same records and the same signing as its
/// signed zone file ([`generate_zone_with_keys`]), with the SOA serial of journal serial
/// `serial` when the zone has no serial of its own. Returns the zone's serial with them, or
/// `None` when the zone's policy does not sign it (or the zone is gone).
pub async fn zone_dnssec_rrsets(
    store: &Store,
    apex: &Name,
    serial: Serial,
    keys: Option<&dyn orrery_signer::KeyStore>,
) -> Result<Option<(Serial, Vec<orrery_proto::dnssec::DnssecRrset>)>, GenerateError> {
    let mut zone: Option<(Zone, Serial)> = None;
    let mut signed_records = signed::SignedRecords::default();
    store
        .visit_zone(apex, HostSelection::Published, |item| {
            match &item {
                ZoneItem::Zone {
                    zone: z,
                    zone_serial,
                    ..
                } => zone = Some((Zone::clone(z), *zone_serial)),
                _ => {
                    let (z, _) = zone.as_ref().expect("the zone comes first");
                    signed_records.take(z, serial, &item);
                }
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    let (Some((z, zone_serial)), Some(d)) = (zone, signed_records.dnssec) else {
        return Ok(None);
    };
    let collected = signed_records.records;
    let signed_zone = signed::sign(&z, &d, collected, keys)?;
    Ok(Some((
        zone_serial,
        orrery_signer::dnssec_rrsets(&z.name, &signed_zone),
    )))
}

/// Writes a `named.conf` fragment declaring `zones` with their files in `dir`, atomically.
/// The fallback servers load the files themselves, so they send no NOTIFY.
pub fn write_named_conf(zones: &[Name], dir: &Path, path: &Path) -> Result<(), GenerateError> {
    let mut text = String::from(
        "// Generated by orrery-generator: the registry's zones for the BIND fallback cluster.\n",
    );
    for z in zones {
        let file = dir.join(zone_file_name(z));
        let zname = if z.is_root() {
            ".".to_owned()
        } else {
            z.to_string()
        };
        text.push_str(&format!(
            "zone \"{zname}\" {{\n\ttype primary;\n\tfile \"{}\";\n\tnotify no;\n}};\n",
            file.display()
        ));
    }
    orrery_proto::atomic_file::write_atomic(path, text.as_bytes()).map_err(|source| {
        GenerateError::Io {
            path: path.to_owned(),
            source,
        }
    })
}

/// Runs the post-write hook for a zone: `sh -c HOOK` with `ORRERY_ZONE`, `ORRERY_ZONE_FILE`
/// and `ORRERY_SERIAL` set (e.g. `rndc reload "$ORRERY_ZONE"`).
pub fn run_hook(hook: &str, zone: &Name, path: &Path, serial: Serial) -> Result<(), GenerateError> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(hook)
        .env("ORRERY_ZONE", zone.to_string())
        .env("ORRERY_ZONE_FILE", path)
        .env("ORRERY_SERIAL", soa_serial(serial).to_string())
        .status()
        .map_err(|e| GenerateError::Hook {
            zone: zone.clone(),
            reason: e.to_string(),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(GenerateError::Hook {
            zone: zone.clone(),
            reason: format!("exited with {status}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use orrery_proto::{Ds, EppStatus, Soa, Timestamp};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn zone() -> Zone {
        Zone {
            name: n("test"),
            soa: Soa {
                mname: n("a.nic.test"),
                rname: n("hostmaster.nic.test"),
                refresh: 1800,
                retry: 900,
                expire: 2_419_200,
                minimum: 3600,
            },
            soa_ttl: 3600,
            ns_ttl: 172_800,
            ds_ttl: 86_400,
            nameservers: vec![n("a.nic.test"), n("ns.other.example")],
            serial: 40,
        }
    }

    fn domain(name: &str, statuses: Vec<EppStatus>, ns: &[&str]) -> Domain {
        Domain {
            name: n(name),
            zone: n("test"),
            roid: "D1-TEST".into(),
            registrar: "R".into(),
            created: Timestamp(0),
            updated: Timestamp(0),
            expires: Timestamp(0),
            statuses,
            registrant: None,
            admin: None,
            tech: None,
            billing: None,
            nameservers: ns.iter().map(|s| n(s)).collect(),
            ds: vec![Ds {
                key_tag: 7,
                algorithm: 13,
                digest_type: 2,
                digest: vec![0xAB; 32],
            }],
        }
    }

    #[test]
    fn owners_are_relative_inside_the_zone() {
        let apex = n("test");
        assert_eq!(owner(&apex, &apex), "@");
        assert_eq!(owner(&n("foo.test"), &apex), "foo");
        assert_eq!(owner(&n("ns1.foo.test"), &apex), "ns1.foo");
        assert_eq!(owner(&n("ns.other.example"), &apex), "ns.other.example.");
        assert_eq!(owner(&n("foo"), &Name::root()), "foo.");
    }

    #[test]
    fn writes_apex_delegations_and_glue() {
        let z = zone();
        let mut out = Vec::new();
        write_apex(&mut out, &z, 42, 40).unwrap();
        write_domain(
            &mut out,
            &z,
            &domain("foo.test", vec![EppStatus::Ok], &["ns1.foo.test"]),
        )
        .unwrap();
        let held = write_domain(
            &mut out,
            &z,
            &domain("held.test", vec![EppStatus::ClientHold], &["ns1.x.example"]),
        )
        .unwrap();
        let bare =
            write_domain(&mut out, &z, &domain("bare.test", vec![EppStatus::Ok], &[])).unwrap();
        write_host(
            &mut out,
            &z,
            &Host {
                name: n("ns1.foo.test"),
                addresses: vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
                registrar: None,
                created: Timestamp(0),
                updated: Timestamp(0),
            },
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!((held, bare), (0, 0));
        assert!(text.starts_with("; orrery-serial 40\n"));
        assert!(text.contains("$ORIGIN test.\n"));
        assert!(text.contains(
            "@\t3600\tIN\tSOA\ta.nic.test. hostmaster.nic.test. 40 1800 900 2419200 3600\n"
        ));
        assert!(text.contains("@\t172800\tIN\tNS\tns.other.example.\n"));
        assert!(text.contains("foo\t172800\tIN\tNS\tns1.foo.test.\n"));
        assert!(text.contains(&format!("foo\t86400\tIN\tDS\t7 13 2 {}\n", "AB".repeat(32))));
        assert!(text.contains("ns1.foo\t172800\tIN\tA\t192.0.2.1\n"));
        assert!(text.contains("ns1.foo\t172800\tIN\tAAAA\t2001:db8::1\n"));
        assert!(!text.contains("held"));
        assert!(!text.contains("bare"));
    }

    #[test]
    fn soa_serial_wraps_as_serial_arithmetic() {
        assert_eq!(soa_serial(5), 5);
        assert_eq!(soa_serial((1 << 32) + 7), 7);
    }

    #[tokio::test]
    async fn a_signed_zone_is_the_same_bytes_every_run_and_needs_its_keys() {
        use orrery_proto::dnssec::{DnssecPolicy, KeyRole, KeyState, ZoneKey};
        use orrery_signer::{FileKeyStore, KeyStore, key::dnskey_rdata, key_tag};
        use orrery_store::synthetic::SyntheticTld;
        let store = Store::open("sqlite::memory:").await.unwrap();
        let apex = n("test");
        store
            .load_synthetic(&SyntheticTld {
                zone: apex.clone(),
                domains: 300,
                seed: 3,
            })
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let keys = FileKeyStore::open(&dir.path().join("keys")).unwrap();
        let policy = DnssecPolicy::tld_default(Timestamp(1_800_000_000));
        store.set_dnssec_policy(&apex, &policy).await.unwrap();
        let (locator, private) = keys.generate(&apex, policy.algorithm, 257).unwrap();
        let public_key = private.public_key();
        store
            .add_zone_key(
                &apex,
                &ZoneKey {
                    role: KeyRole::Csk,
                    algorithm: policy.algorithm,
                    key_tag: key_tag(&dnskey_rdata(257, policy.algorithm, &public_key)),
                    public_key,
                    state: KeyState::Active,
                    locator,
                    created: Timestamp(1_800_000_000),
                    published: None,
                    activated: None,
                    retired: None,
                    revoked: None,
                    ds_seen: None,
                },
            )
            .await
            .unwrap();

        // Without the key store: refused, and nothing is left behind.
        let out = dir.path().join("zones");
        fs::create_dir_all(&out).unwrap();
        let err = generate_zone(&store, &apex, &out, false).await.unwrap_err();
        assert!(
            matches!(err, GenerateError::Sign(SignZoneError::NoKeyStore(_))),
            "{err}"
        );
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0);

        let mut files = Vec::new();
        for _ in 0..2 {
            let o = generate_zone_with_keys(&store, &apex, &out, true, Some(&keys))
                .await
                .unwrap();
            let Outcome::Written { path, .. } = o else {
                panic!("{o:?}")
            };
            files.push(fs::read(&path).unwrap());
            let again = generate_zone_with_keys(&store, &apex, &out, false, Some(&keys))
                .await
                .unwrap();
            assert!(matches!(again, Outcome::Unchanged { .. }), "{again:?}");
        }
        assert!(files[0] == files[1], "one store state, two different files");
        let text = String::from_utf8(files.swap_remove(0)).unwrap();
        assert!(text.starts_with("; orrery-serial "));
        assert!(text.contains("\tNSEC3PARAM\t1 0 0 -"));
        assert!(text.contains("\tRRSIG\tDNSKEY 13 1 3600 "));
    }

    #[tokio::test]
    async fn writes_atomically_skips_unchanged_and_runs_the_hook() {
        use orrery_store::synthetic::SyntheticTld;
        let store = Store::open("sqlite::memory:").await.unwrap();
        let apex = n("test");
        store
            .load_synthetic(&SyntheticTld {
                zone: apex.clone(),
                domains: 300,
                seed: 3,
            })
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();

        let first = generate_zone(&store, &apex, dir.path(), false)
            .await
            .unwrap();
        let Outcome::Written {
            path,
            serial,
            delegations,
            ..
        } = first.clone()
        else {
            panic!("{first:?}")
        };
        assert!((280..=300).contains(&delegations), "{delegations}");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("test.zone")],
            "no temporary file is left behind"
        );
        let zone_serial = store.zone_serial(&apex).await.unwrap().unwrap();
        assert_eq!(recorded_serial(&path), Some(zone_serial));
        assert!(zone_serial <= serial);
        assert_eq!(
            generate_zone(&store, &apex, dir.path(), false)
                .await
                .unwrap(),
            Outcome::Unchanged {
                path: path.clone(),
                zone_serial
            }
        );
        let soa = format!(
            "\tIN\tSOA\ta.nic.test. hostmaster.nic.test. {} ",
            soa_serial(zone_serial)
        );
        assert!(fs::read_to_string(&path).unwrap().contains(&soa));
        // A change outside the zone (a new contact) leaves its serial, and its file, alone.
        let head = store.head().await.unwrap();
        store
            .add_contact(
                &orrery_proto::Contact {
                    handle: "ZS1".into(),
                    name: "Zed Serial".into(),
                    organisation: None,
                    street: vec![],
                    city: "Oslo".into(),
                    province: None,
                    postcode: None,
                    country: "NO".into(),
                    email: "zed@example.org".into(),
                    voice: None,
                    fax: None,
                    disclose: false,
                    created: Timestamp(0),
                    updated: Timestamp(0),
                },
                None,
            )
            .await
            .unwrap();
        assert!(store.head().await.unwrap() > head);
        assert_eq!(
            generate_zone(&store, &apex, dir.path(), false)
                .await
                .unwrap(),
            Outcome::Unchanged {
                path: path.clone(),
                zone_serial
            }
        );
        assert!(matches!(
            generate_zone(&store, &apex, dir.path(), true)
                .await
                .unwrap(),
            Outcome::Written { .. }
        ));

        // A change moves the serial forward and rewrites the file.
        let victim = fs::read_to_string(&path)
            .unwrap()
            .lines()
            .find(|l| l.contains("\tNS\t") && !l.starts_with('@'))
            .unwrap()
            .split('\t')
            .next()
            .unwrap()
            .to_owned();
        let victim = n(&format!("{victim}.test"));
        store
            .update_domain(
                &victim,
                &orrery_store::write::DomainUpdate {
                    add_statuses: vec![EppStatus::ServerHold],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let Outcome::Written { serial: s2, .. } = generate_zone(&store, &apex, dir.path(), false)
            .await
            .unwrap()
        else {
            panic!()
        };
        assert!(s2 > serial);
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with(&format!("{}\t", victim.first_label().escape_ascii())))
        );

        // The hook sees the zone, its file and its SOA serial.
        let mark = dir.path().join("hook.out");
        run_hook(
            &format!(
                "echo \"$ORRERY_ZONE $ORRERY_SERIAL $ORRERY_ZONE_FILE\" > {}",
                mark.display()
            ),
            &apex,
            &path,
            s2,
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(&mark).unwrap().trim(),
            format!("test {} {}", soa_serial(s2), path.display())
        );
        assert!(matches!(
            run_hook("exit 3", &apex, &path, s2),
            Err(GenerateError::Hook { .. })
        ));
        assert!(matches!(
            generate_zone(&store, &n("nozone"), dir.path(), false).await,
            Err(GenerateError::NoSuchZone(_))
        ));
    }

    #[test]
    fn named_conf_declares_each_zone() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("zones.conf");
        write_named_conf(&[n("test"), n("example")], Path::new("/srv/zones"), &conf).unwrap();
        let text = fs::read_to_string(&conf).unwrap();
        assert!(text.contains(
            "zone \"test\" {\n\ttype primary;\n\tfile \"/srv/zones/test.zone\";\n\tnotify no;\n};"
        ));
        assert!(text.contains("zone \"example\""));
    }
}
