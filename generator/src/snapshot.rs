//! The satellite snapshot command: the whole registry (the DNS data, and the registrars and
//! contacts Whois and RDAP show), read from one consistent store snapshot, written as the
//! versioned, checksummed state file `orrery-satellite --snapshot` starts from (format:
//! [`orrery_proto::state_file`], a stream of the link's `Change` messages, so the generator
//! needs nothing of the satellite). Objects go to the file as the store yields them, chunk by
//! chunk: the registry is never held whole.
//!
//! It is built on [`Store::visit_registry`], so every object reflects the same journal serial,
//! and that serial is the snapshot's (a master can bring the satellite up to date with the
//! changes after it); each zone carries its own serial, so a satellite started from the file
//! serves the same SOA serials as a BIND server loading zone files generated from that state.
//!
//! Every host object goes into the file, not only the published ones: what is published is
//! the satellite's own rule (its `zone` module), the same as the generator's
//! [`HostSelection::Published`](orrery_store::HostSelection::Published), applied as the satellite
//! builds its tables, so later changes to a domain can publish a host without a new snapshot.
//! Likewise every registrar and contact goes in, disclosed or not: what Whois and RDAP redact is
//! decided when they answer.

use std::path::Path;

use orrery_proto::state_file::{Header, StateFileWriter};
use orrery_proto::{Change, Serial};
use orrery_store::{RegistryItem, Store};

use crate::GenerateError;

/// Reads the registry from one store snapshot and writes it to `path` as a satellite state
/// file (atomically: a temporary file, fsync, rename). Returns the journal serial it reflects.
/// The file is generation 0: no batch log continues it. A zone whose policy signs it needs
/// [`write_satellite_snapshot_with_keys`].
pub async fn write_satellite_snapshot(store: &Store, path: &Path) -> Result<Serial, GenerateError> {
    write_satellite_snapshot_with_keys(store, path, None).await
}

/// [`write_satellite_snapshot`], with the DNSSEC sets of every signed zone after the objects
/// (`Change::Dnssec`, as a master sends them), signed with the private keys in `keys` exactly
/// as the zone's signed zone file is: a satellite started from the file serves the records of
/// the generator's zone file, signatures included. Each zone is signed from its own store
/// snapshot, checked to be at the zone serial of the registry snapshot ([`GenerateError::
/// ZoneMoved`] otherwise: never signatures of another state). A signed zone without `keys` is
/// refused, as for zone files.
pub async fn write_satellite_snapshot_with_keys(
    store: &Store,
    path: &Path,
    keys: Option<&dyn orrery_signer::KeyStore>,
) -> Result<Serial, GenerateError> {
    let io = |source| GenerateError::Io {
        path: path.to_owned(),
        source,
    };
    let mut out = StateFileWriter::create(path).map_err(io)?;
    let mut zones: Vec<(orrery_proto::Name, Serial)> = Vec::new();
    let serial = store
        .visit_registry(|item| {
            let change = match item {
                RegistryItem::Zone(z) => {
                    zones.push((z.name.clone(), z.serial));
                    Change::Zone(z)
                }
                RegistryItem::Host(h) => Change::Host(h),
                RegistryItem::Domain(d) => Change::Domain(d),
                RegistryItem::Registrar(r) => Change::Registrar(r),
                RegistryItem::Contact(c) => Change::Contact(c),
                RegistryItem::Serial(_) => return Ok(()),
                // Not in the state file yet: the master sends a signed zone's sets (issue 13).
                RegistryItem::Dnssec(..) => return Ok(()),
                // A seed snapshot lacking an object would serve it as absent: refuse instead.
                RegistryItem::BadRow(b) => return Err(orrery_store::StoreError::from(b).into()),
            };
            out.push(&change).map_err(io)
        })
        .await?;
    for (apex, snapshot) in zones {
        let Some((signed, sets)) = crate::zone_dnssec_rrsets(store, &apex, serial, keys).await?
        else {
            continue;
        };
        if signed != snapshot {
            return Err(GenerateError::ZoneMoved {
                zone: apex,
                snapshot,
                signed,
            });
        }
        for set in sets {
            out.push(&Change::Dnssec(set)).map_err(io)?;
        }
    }
    out.finish(Header {
        serial,
        generation: 0,
    })
    .map_err(io)?;
    Ok(serial)
}

#[cfg(test)]
mod tests {
    use orrery_proto::state_file::read_state_file;
    use orrery_proto::{Contact, Domain, Host, Name, Registrar, Zone};
    use orrery_store::synthetic::SyntheticTld;

    use super::*;

    /// A state file's objects by kind.
    #[derive(Default)]
    struct Objects {
        zones: Vec<Zone>,
        domains: Vec<Domain>,
        hosts: Vec<Host>,
        registrars: Vec<Registrar>,
        contacts: Vec<Contact>,
    }

    impl Objects {
        fn of(changes: Vec<Change>) -> Self {
            let mut o = Self::default();
            for c in changes {
                match c {
                    Change::Zone(z) => o.zones.push(z),
                    Change::Domain(d) => o.domains.push(d),
                    Change::Host(h) => o.hosts.push(h),
                    Change::Registrar(r) => o.registrars.push(r),
                    Change::Contact(c) => o.contacts.push(c),
                    Change::Dnssec(_) => {}
                    other => panic!("a removal in a state file: {other:?}"),
                }
            }
            o
        }
    }

    #[tokio::test]
    async fn writes_what_the_store_holds_at_one_serial() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let apex = Name::from_ascii("test").unwrap();
        let report = store
            .load_synthetic(&SyntheticTld {
                zone: apex.clone(),
                domains: 300,
                seed: 3,
            })
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.snap");

        let serial = write_satellite_snapshot(&store, &path).await.unwrap();
        assert_eq!(serial, store.head().await.unwrap());
        let (header, objects) = read_state_file(&path).unwrap();
        let data = Objects::of(objects);
        assert_eq!((header.serial, header.generation), (serial, 0));
        assert_eq!(data.zones.len(), 1);
        assert_eq!(data.zones[0].name, apex);
        assert_eq!(data.domains.len(), report.domains);
        // Every host object, the out-of-zone hosting nameservers and the apex's own included;
        // every registrar and contact, as the store holds them.
        let (mut visited_hosts, mut registrars, mut contacts) = (0, Vec::new(), Vec::new());
        store
            .visit_registry(|item| {
                match item {
                    RegistryItem::Host(_) => visited_hosts += 1,
                    RegistryItem::Registrar(r) => registrars.push(r),
                    RegistryItem::Contact(c) => contacts.push(c),
                    _ => {}
                }
                Ok::<_, GenerateError>(())
            })
            .await
            .unwrap();
        assert_eq!(data.hosts.len(), visited_hosts);
        assert!(data.hosts.len() >= report.hosts, "{report:?}");
        assert_eq!(data.registrars, registrars);
        assert_eq!(data.contacts, contacts);
        assert_eq!(data.registrars.len(), report.registrars, "{report:?}");
        assert_eq!(data.contacts.len(), report.contacts, "{report:?}");
        for d in &data.domains {
            assert!(
                data.registrars.iter().any(|r| r.handle == d.registrar),
                "{d:?}"
            );
            if let Some(h) = &d.registrant {
                assert!(data.contacts.iter().any(|c| &c.handle == h), "{d:?}");
            }
        }
        assert!(data.domains.iter().any(|d| !d.ds.is_empty()));
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, ["test.snap"], "no temporary file is left behind");

        // The SOA serial a satellite serves is the generator's for the same state.
        let zone_serial = store.zone_serial(&apex).await.unwrap().unwrap();
        assert!(zone_serial > 0 && zone_serial <= serial);
        assert_eq!(data.zones[0].serial, zone_serial);
        assert_eq!(
            data.zones[0].soa_serial(serial),
            crate::soa_serial(zone_serial)
        );
    }

    /// A signed zone's snapshot carries the DNSSEC sets of the same signing as its zone file:
    /// every DNSKEY, NSEC3PARAM, NSEC3 and RRSIG line of the file is one RDATA of one set, and
    /// no set holds anything else. Without the key store the snapshot is refused.
    #[tokio::test]
    async fn a_signed_zone_snapshot_has_the_zone_files_signatures() {
        use orrery_proto::Timestamp;
        use orrery_proto::dnssec::{DnssecPolicy, KeyRole, KeyState, ZoneKey};
        use orrery_signer::rdata::{present, type_name};
        use orrery_signer::{FileKeyStore, KeyStore, key::dnskey_rdata, key_tag};
        let store = Store::open("sqlite::memory:").await.unwrap();
        let apex = Name::from_ascii("test").unwrap();
        store
            .load_synthetic(&SyntheticTld {
                zone: apex.clone(),
                domains: 200,
                seed: 5,
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
        let path = dir.path().join("test.snap");
        let err = write_satellite_snapshot(&store, &path).await.unwrap_err();
        assert!(matches!(err, GenerateError::Sign(_)), "{err}");
        assert!(!path.exists());

        write_satellite_snapshot_with_keys(&store, &path, Some(&keys))
            .await
            .unwrap();
        let out = dir.path().join("zones");
        std::fs::create_dir_all(&out).unwrap();
        crate::generate_zone_with_keys(&store, &apex, &out, true, Some(&keys))
            .await
            .unwrap();
        let text = std::fs::read_to_string(out.join(crate::zone_file_name(&apex))).unwrap();
        let mut file_lines: Vec<String> = text
            .lines()
            .filter(|l| {
                let t = l.split('\t').nth(3).unwrap_or("");
                ["DNSKEY", "NSEC3PARAM", "NSEC3", "NSEC", "RRSIG"].contains(&t)
            })
            .map(str::to_owned)
            .collect();
        let (_, objects) = read_state_file(&path).unwrap();
        let mut set_lines = Vec::new();
        for c in &objects {
            if let Change::Dnssec(set) = c {
                set.check().unwrap();
                for rd in &set.rdata {
                    set_lines.push(format!(
                        "{}\t{}\tIN\t{}\t{}",
                        set.id.owner.to_fqdn(),
                        set.ttl,
                        type_name(set.id.rtype),
                        present(set.id.rtype, rd).unwrap()
                    ));
                }
            }
        }
        assert!(set_lines.len() > 30, "{}", set_lines.len());
        file_lines.sort();
        set_lines.sort();
        assert_eq!(file_lines, set_lines);
        // The same state gives the same file.
        let first = std::fs::read(&path).unwrap();
        write_satellite_snapshot_with_keys(&store, &path, Some(&keys))
            .await
            .unwrap();
        assert!(first == std::fs::read(&path).unwrap());
    }

    #[tokio::test]
    async fn names_the_file_it_cannot_write() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("x.snap");
        let err = write_satellite_snapshot(&store, &path).await.unwrap_err();
        assert!(matches!(err, GenerateError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("x.snap"), "{err}");
    }
}
