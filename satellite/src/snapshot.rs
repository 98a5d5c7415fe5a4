//! Registry objects held by value, grouped by kind, and read from or written to a state file
//! ([`orrery_proto::state_file`], format version 4): what tests, tools and `--snapshot` mode
//! hand to [`crate::Served`].
//!
//! A satellite fed by a master does not hold one of these: it writes the state file from what
//! the master sends ([`crate::link::persist`]) and builds the served tables from it. This type is
//! only a convenient bundle where a whole registry is held anyway (a test's fixture, a tool).
//!
//! The file's format is owned by `orrery-proto`, so the generator writes it without this crate.
//! Files of the older hand-written format (version 3 and before, `ORRSNAP`) are refused with
//! [`orrery_proto::state_file::StateFileError::OlderFormat`], which says to resync from the master.

use std::path::{Path, PathBuf};

use orrery_proto::state_file::{self, Header, StateFileError};
use orrery_proto::{Change, Contact, Domain, Host, Registrar, Serial, Zone};

/// A registry held by value, at one serial.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotData {
    /// Journal serial the data reflects.
    pub serial: Serial,
    pub zones: Vec<Zone>,
    pub domains: Vec<Domain>,
    pub hosts: Vec<Host>,
    /// Contacts and registrars, for Whois and RDAP.
    pub contacts: Vec<Contact>,
    pub registrars: Vec<Registrar>,
}

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("state file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path}: {source}")]
    Read {
        path: PathBuf,
        source: StateFileError,
    },
}

impl SnapshotData {
    /// Every object as a change, registrars and contacts first (what domains refer to), then
    /// zones, hosts and domains.
    pub fn changes(&self) -> impl Iterator<Item = Change> + '_ {
        let d = self;
        d.registrars
            .iter()
            .cloned()
            .map(Change::Registrar)
            .chain(d.contacts.iter().cloned().map(Change::Contact))
            .chain(d.zones.iter().cloned().map(Change::Zone))
            .chain(d.hosts.iter().cloned().map(Change::Host))
            .chain(d.domains.iter().cloned().map(Change::Domain))
    }

    /// Groups objects by kind (removals are skipped: a snapshot holds objects).
    pub fn from_changes(serial: Serial, changes: impl IntoIterator<Item = Change>) -> Self {
        let mut d = Self {
            serial,
            ..Self::default()
        };
        for c in changes {
            match c {
                Change::Zone(z) => d.zones.push(z),
                Change::Domain(x) => d.domains.push(x),
                Change::Host(h) => d.hosts.push(h),
                Change::Contact(c) => d.contacts.push(c),
                Change::Registrar(r) => d.registrars.push(r),
                _ => {}
            }
        }
        d
    }
}

/// Writes `data` as a state file at `path` (atomically; generation 0, as a file that no
/// batch log continues).
pub fn write_snapshot(path: &Path, data: &SnapshotData) -> Result<(), SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    };
    let mut w = state_file::StateFileWriter::create(path).map_err(io)?;
    for c in data.changes() {
        w.push(&c).map_err(io)?;
    }
    w.finish(Header {
        serial: data.serial,
        generation: 0,
    })
    .map_err(io)?;
    Ok(())
}

/// Reads and checks a whole state file.
pub fn read_snapshot(path: &Path) -> Result<SnapshotData, SnapshotError> {
    let (header, changes) =
        state_file::read_state_file(path).map_err(|source| SnapshotError::Read {
            path: path.to_owned(),
            source,
        })?;
    Ok(SnapshotData::from_changes(header.serial, changes))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::zone::tests::{domain, host, zone};
    use orrery_proto::{Ds, EppStatus, Timestamp};

    /// A contact with every optional field set (`disclose` true, three street lines), or with
    /// none set (`disclose` false, no street line).
    pub(crate) fn contact(handle: &str, full: bool) -> Contact {
        let some = |s: &str| full.then(|| s.to_owned());
        Contact {
            handle: handle.into(),
            name: format!("Holder of {handle}"),
            organisation: some("Example Ltd"),
            street: if full {
                vec![
                    "1 High Street".into(),
                    "Flat 2".into(),
                    "Übergasse 3".into(),
                ]
            } else {
                vec![]
            },
            city: "Zürich".into(),
            province: some("ZH"),
            postcode: some("8001"),
            country: "CH".into(),
            email: format!("{}@example.ch", handle.to_lowercase()),
            voice: some("+41.441234567"),
            fax: some("+41.441234568"),
            disclose: full,
            created: Timestamp(1_700_000_000),
            updated: Timestamp(1_700_086_400),
        }
    }

    /// A registrar with every optional field set (IANA ID included), or with none set.
    pub(crate) fn registrar(handle: &str, full: bool) -> Registrar {
        let mut r = Registrar::new(handle, format!("Registrar {handle}"));
        if full {
            r.iana_id = Some(9999);
            r.url = Some("https://registrar.example".into());
            r.whois_server = Some("whois.registrar.example".into());
            r.email = Some("info@registrar.example".into());
            r.phone = Some("+1.5555550100".into());
            r.abuse_email = Some("abuse@registrar.example".into());
            r.abuse_phone = Some("+1.5555550199".into());
        }
        r
    }

    pub(crate) fn sample_data() -> SnapshotData {
        let mut d = domain("foo.tld", "tld", &["ns1.foo.tld", "ns.other.example"]);
        d.ds = vec![Ds {
            key_tag: 7,
            algorithm: 13,
            digest_type: 2,
            digest: vec![1; 32],
        }];
        d.registrant = Some("C1".into());
        d.statuses = vec![EppStatus::ClientHold, EppStatus::ServerTransferProhibited];
        let mut h = host("ns1.foo.tld", &["192.0.2.1", "2001:db8::1"]);
        h.registrar = Some("r1".into());
        SnapshotData {
            serial: 42,
            zones: vec![zone("tld", &["a.nic.tld"])],
            domains: vec![d, domain("bar.tld", "tld", &[])],
            hosts: vec![h, host("a.nic.tld", &[])],
            registrars: vec![registrar("r1", true), registrar("r2", false)],
            contacts: vec![contact("C1", true), contact("C2", false)],
        }
    }

    #[test]
    fn round_trips_through_a_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let data = sample_data();
        write_snapshot(&path, &data).unwrap();
        assert_eq!(read_snapshot(&path).unwrap(), data);
        std::fs::write(
            &path,
            b"ORRSNAP\0\x03\0\0\0 and the rest of a version 3 file",
        )
        .unwrap();
        let e = read_snapshot(&path).unwrap_err();
        assert!(e.to_string().contains("older release"), "{e}");
    }
}
