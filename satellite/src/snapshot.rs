//! The satellite's snapshot file: everything it serves, so it can start (or restart while the
//! master is unreachable) without anyone's help.
//!
//! # Format (version 3)
//! ```text
//! offset  size  field
//!      0     8  magic "ORRSNAP\0"
//!      8     4  format version, u32 little-endian (3; 1 and 2 are still read)
//!     12     4  CRC-32 (IEEE) of every byte from offset 16 to the end
//!     16     8  journal serial, i64 LE
//!     24     8  body length, u64 LE
//!     32     …  body
//! ```
//! The body is a compact hand-rolled binary of the model types, one list after another, each
//! list a u32 count and then its records, each record its fields in this order:
//! ```text
//! since  list        record
//!     1  zones       name, SOA mname, SOA rname, refresh, retry, expire, minimum (u32 each),
//!                    SOA TTL, NS TTL, DS TTL (u32 each), nameservers (u32 count, names)
//!     1  hosts       name, addresses (u32 count; each a family octet 4 or 6 and 4 or 16
//!                    octets), registrar (option), created, updated
//!     1  domains     name, zone, roid, registrar, created, updated, expires, statuses (u32
//!                    count, EPP spellings), registrant, admin, tech, billing (options),
//!                    nameservers (u32 count, names), DS (u32 count; each key tag u16, algorithm
//!                    octet, digest type octet, digest as bytes)
//!     2  registrars  handle, name, IANA ID (presence octet 0/1, then u32 if 1), url,
//!                    whois_server, email, phone, abuse_email, abuse_phone (options)
//!     2  contacts    handle, name, organisation (option), street (u32 count, strings), city,
//!                    province, postcode (options), country, email, voice, fax (options),
//!                    disclose (octet 0 or 1), created, updated
//!     3  zone serials  one i64 per zone, in the order of the zones list (the count repeats
//!                    the zones list's): each zone's own serial, 0 when unknown
//! ```
//! Names are a length octet and canonical wire bytes, checked again on read; strings and bytes
//! a u32 length and the octets (strings UTF-8); options a presence octet (0 absent, 1 present)
//! and the value; timestamps (seconds since the epoch) i64; integers little-endian. Values the
//! model types leave open (a country code, an e-mail address) are not checked on read: the
//! master's store validated them. Only what the layout itself defines is (an octet that must be
//! 0 or 1, UTF-8, a name's wire form, an EPP status spelling).
//!
//! Version 1 is version 2's body without the registrars and contacts lists; it is still read
//! (with no contacts and no registrars), so a satellite upgraded in place starts from the state
//! file its previous release wrote. Version 2 is version 3's body without the zone serials; it
//! is read with every zone's serial unknown (the zones then serve the file's journal serial,
//! the rule of that release, until the master sends them). Only version 3 is written.
//!
//! Hand-rolled rather than a serde format because the model types have no serde derives for this
//! and the layout must stay stable across releases: a layout once released never changes, a new
//! layout gets a new version number, readers keep reading the versions released before theirs
//! and refuse versions they do not know.
//!
//! A file is read whole and checked (magic, version, length, checksum) before anything is
//! decoded, and decoding builds new values only: a truncated or corrupt file is refused with an
//! error naming it, never half-loaded. Writing is atomic: a temporary file in the same
//! directory, fsync, rename, fsync of the directory.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use orrery_proto::{
    Contact, Domain, Ds, EppStatus, Host, Name, Registrar, Serial, Soa, Timestamp, Zone,
};

const MAGIC: &[u8; 8] = b"ORRSNAP\0";
/// Current format version, the one written.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format version still read.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 32;

/// What a snapshot holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotData {
    /// Journal serial the data reflects.
    pub serial: Serial,
    pub zones: Vec<Zone>,
    pub domains: Vec<Domain>,
    pub hosts: Vec<Host>,
    /// Contacts and registrars, for Whois and RDAP (format version 2).
    pub contacts: Vec<Contact>,
    pub registrars: Vec<Registrar>,
}

/// Why a snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("snapshot {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot {path}: not a snapshot file (bad magic)")]
    BadMagic { path: PathBuf },
    #[error(
        "snapshot {path}: format version {version} is not supported (this build reads {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})"
    )]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error("snapshot {path}: truncated: {found} octets where {expected} were announced")]
    Truncated {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("snapshot {path}: checksum mismatch, the file is corrupt")]
    Checksum { path: PathBuf },
    #[error("snapshot {path}: corrupt body: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

/// Writes `data` to `path` atomically (temporary file, fsync, rename, fsync of the directory).
pub fn write_snapshot(path: &Path, data: &SnapshotData) -> Result<(), SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    };
    let bytes = encode(data);
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = fs::File::create(&tmp).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

/// Reads and checks a snapshot file.
pub fn read_snapshot(path: &Path) -> Result<SnapshotData, SnapshotError> {
    let bytes = fs::read(path).map_err(|source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    })?;
    decode(&bytes).map_err(|e| e.at(path))
}

/// Encodes a snapshot into bytes (header included).
pub fn encode(data: &SnapshotData) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(HEADER_LEN + 64 * data.domains.len()));
    w.0.extend_from_slice(MAGIC);
    w.u32(FORMAT_VERSION);
    w.u32(0); // checksum, patched below
    w.i64(data.serial);
    w.u64(0); // body length, patched below
    w.u32(data.zones.len() as u32);
    for z in &data.zones {
        w.name(&z.name);
        w.name(&z.soa.mname);
        w.name(&z.soa.rname);
        for v in [z.soa.refresh, z.soa.retry, z.soa.expire, z.soa.minimum] {
            w.u32(v);
        }
        for v in [z.soa_ttl, z.ns_ttl, z.ds_ttl] {
            w.u32(v);
        }
        w.names(&z.nameservers);
    }
    w.u32(data.hosts.len() as u32);
    for h in &data.hosts {
        w.name(&h.name);
        w.u32(h.addresses.len() as u32);
        for a in &h.addresses {
            match a {
                IpAddr::V4(v4) => {
                    w.0.push(4);
                    w.0.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    w.0.push(6);
                    w.0.extend_from_slice(&v6.octets());
                }
            }
        }
        w.opt_str(h.registrar.as_deref());
        w.i64(h.created.0);
        w.i64(h.updated.0);
    }
    w.u32(data.domains.len() as u32);
    for d in &data.domains {
        w.name(&d.name);
        w.name(&d.zone);
        w.str(&d.roid);
        w.str(&d.registrar);
        for t in [d.created, d.updated, d.expires] {
            w.i64(t.0);
        }
        w.u32(d.statuses.len() as u32);
        for s in &d.statuses {
            w.str(s.as_str());
        }
        for c in [&d.registrant, &d.admin, &d.tech, &d.billing] {
            w.opt_str(c.as_deref());
        }
        w.names(&d.nameservers);
        w.u32(d.ds.len() as u32);
        for ds in &d.ds {
            w.0.extend_from_slice(&ds.key_tag.to_le_bytes());
            w.0.push(ds.algorithm);
            w.0.push(ds.digest_type);
            w.bytes(&ds.digest);
        }
    }
    w.u32(data.registrars.len() as u32);
    for r in &data.registrars {
        w.str(&r.handle);
        w.str(&r.name);
        match r.iana_id {
            Some(id) => {
                w.0.push(1);
                w.u32(id);
            }
            None => w.0.push(0),
        }
        for s in [
            &r.url,
            &r.whois_server,
            &r.email,
            &r.phone,
            &r.abuse_email,
            &r.abuse_phone,
        ] {
            w.opt_str(s.as_deref());
        }
    }
    w.u32(data.contacts.len() as u32);
    for c in &data.contacts {
        w.str(&c.handle);
        w.str(&c.name);
        w.opt_str(c.organisation.as_deref());
        w.u32(c.street.len() as u32);
        for line in &c.street {
            w.str(line);
        }
        w.str(&c.city);
        w.opt_str(c.province.as_deref());
        w.opt_str(c.postcode.as_deref());
        w.str(&c.country);
        w.str(&c.email);
        w.opt_str(c.voice.as_deref());
        w.opt_str(c.fax.as_deref());
        w.0.push(u8::from(c.disclose));
        w.i64(c.created.0);
        w.i64(c.updated.0);
    }
    w.u32(data.zones.len() as u32);
    for z in &data.zones {
        w.i64(z.serial);
    }
    let mut bytes = w.0;
    let body_len = (bytes.len() - HEADER_LEN) as u64;
    bytes[24..32].copy_from_slice(&body_len.to_le_bytes());
    let crc = crc32fast::hash(&bytes[16..]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// A decoding error not yet tied to a path.
#[derive(Debug)]
pub enum DecodeError {
    BadMagic,
    UnsupportedVersion(u32),
    Truncated { expected: u64, found: u64 },
    Checksum,
    Corrupt(String),
}

impl DecodeError {
    fn at(self, path: &Path) -> SnapshotError {
        let path = path.to_owned();
        match self {
            Self::BadMagic => SnapshotError::BadMagic { path },
            Self::UnsupportedVersion(version) => {
                SnapshotError::UnsupportedVersion { path, version }
            }
            Self::Truncated { expected, found } => SnapshotError::Truncated {
                path,
                expected,
                found,
            },
            Self::Checksum => SnapshotError::Checksum { path },
            Self::Corrupt(detail) => SnapshotError::Corrupt { path, detail },
        }
    }
}

/// Decodes snapshot bytes, checking everything.
pub fn decode(bytes: &[u8]) -> Result<SnapshotData, DecodeError> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated {
            expected: HEADER_LEN as u64,
            found: bytes.len() as u64,
        });
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 octets"));
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let crc = u32::from_le_bytes(bytes[12..16].try_into().expect("4 octets"));
    let serial = i64::from_le_bytes(bytes[16..24].try_into().expect("8 octets"));
    let body_len = u64::from_le_bytes(bytes[24..32].try_into().expect("8 octets"));
    let found = (bytes.len() - HEADER_LEN) as u64;
    if found != body_len {
        return Err(DecodeError::Truncated {
            // Saturating: the length field is read from the file and may be anything.
            expected: body_len.saturating_add(HEADER_LEN as u64),
            found: bytes.len() as u64,
        });
    }
    if crc32fast::hash(&bytes[16..]) != crc {
        return Err(DecodeError::Checksum);
    }
    let mut r = Reader {
        buf: &bytes[HEADER_LEN..],
    };
    let corrupt = DecodeError::Corrupt;
    let mut data = SnapshotData {
        serial,
        ..SnapshotData::default()
    };
    for _ in 0..r.count()? {
        let name = r.name()?;
        let soa = Soa {
            mname: r.name()?,
            rname: r.name()?,
            refresh: r.u32()?,
            retry: r.u32()?,
            expire: r.u32()?,
            minimum: r.u32()?,
        };
        data.zones.push(Zone {
            name,
            soa,
            soa_ttl: r.u32()?,
            ns_ttl: r.u32()?,
            ds_ttl: r.u32()?,
            nameservers: r.names()?,
            serial: 0,
        });
    }
    for _ in 0..r.count()? {
        let name = r.name()?;
        let mut addresses = Vec::new();
        for _ in 0..r.count()? {
            match r.take(1)?[0] {
                4 => {
                    let o: [u8; 4] = r.take(4)?.try_into().expect("4 octets");
                    addresses.push(IpAddr::V4(Ipv4Addr::from(o)));
                }
                6 => {
                    let o: [u8; 16] = r.take(16)?.try_into().expect("16 octets");
                    addresses.push(IpAddr::V6(Ipv6Addr::from(o)));
                }
                f => return Err(corrupt(format!("address family {f}"))),
            }
        }
        data.hosts.push(Host {
            name,
            addresses,
            registrar: r.opt_str()?,
            created: Timestamp(r.i64()?),
            updated: Timestamp(r.i64()?),
        });
    }
    for _ in 0..r.count()? {
        let name = r.name()?;
        let zone = r.name()?;
        let roid = r.str()?;
        let registrar = r.str()?;
        let (created, updated, expires) = (
            Timestamp(r.i64()?),
            Timestamp(r.i64()?),
            Timestamp(r.i64()?),
        );
        let mut statuses = Vec::new();
        for _ in 0..r.count()? {
            let s = r.str()?;
            statuses.push(
                EppStatus::parse(&s).ok_or_else(|| corrupt(format!("unknown status {s:?}")))?,
            );
        }
        let registrant = r.opt_str()?;
        let admin = r.opt_str()?;
        let tech = r.opt_str()?;
        let billing = r.opt_str()?;
        let nameservers = r.names()?;
        let mut ds = Vec::new();
        for _ in 0..r.count()? {
            let head = r.take(4)?;
            ds.push(Ds {
                key_tag: u16::from_le_bytes([head[0], head[1]]),
                algorithm: head[2],
                digest_type: head[3],
                digest: r.bytes()?.to_vec(),
            });
        }
        data.domains.push(Domain {
            name,
            zone,
            roid,
            registrar,
            created,
            updated,
            expires,
            statuses,
            registrant,
            admin,
            tech,
            billing,
            nameservers,
            ds,
        });
    }
    if version >= 2 {
        for _ in 0..r.count()? {
            let handle = r.str()?;
            let name = r.str()?;
            let iana_id = match r.take(1)?[0] {
                0 => None,
                1 => Some(r.u32()?),
                t => {
                    return Err(corrupt(format!(
                        "registrar {handle:?}: IANA ID presence octet {t}"
                    )));
                }
            };
            data.registrars.push(Registrar {
                handle,
                name,
                iana_id,
                url: r.opt_str()?,
                whois_server: r.opt_str()?,
                email: r.opt_str()?,
                phone: r.opt_str()?,
                abuse_email: r.opt_str()?,
                abuse_phone: r.opt_str()?,
            });
        }
        for _ in 0..r.count()? {
            let handle = r.str()?;
            let name = r.str()?;
            let organisation = r.opt_str()?;
            let street = (0..r.count()?).map(|_| r.str()).collect::<Result<_, _>>()?;
            data.contacts.push(Contact {
                name,
                organisation,
                street,
                city: r.str()?,
                province: r.opt_str()?,
                postcode: r.opt_str()?,
                country: r.str()?,
                email: r.str()?,
                voice: r.opt_str()?,
                fax: r.opt_str()?,
                disclose: match r.take(1)?[0] {
                    0 => false,
                    1 => true,
                    t => {
                        return Err(corrupt(format!("contact {handle:?}: disclose octet {t}")));
                    }
                },
                created: Timestamp(r.i64()?),
                updated: Timestamp(r.i64()?),
                handle,
            });
        }
    }
    if version >= 3 {
        let count = r.count()?;
        if count != data.zones.len() {
            return Err(corrupt(format!(
                "{count} zone serials for {} zones",
                data.zones.len()
            )));
        }
        for z in &mut data.zones {
            z.serial = match r.i64()? {
                s if s >= 0 => s,
                s => return Err(corrupt(format!("zone {}: serial {s}", z.name))),
            };
        }
    }
    if !r.buf.is_empty() {
        return Err(corrupt(format!(
            "{} octets after the last record",
            r.buf.len()
        )));
    }
    Ok(data)
}

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
            None => self.0.push(0),
        }
    }
    fn name(&mut self, n: &Name) {
        let wire = n.as_wire();
        self.0.push(wire.len() as u8);
        self.0.extend_from_slice(wire);
    }
    fn names(&mut self, names: &[Name]) {
        self.u32(names.len() as u32);
        for n in names {
            self.name(n);
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Corrupt(format!(
                "record runs past the end ({n} octets wanted, {} left)",
                self.buf.len()
            )));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 octets"),
        ))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("8 octets"),
        ))
    }
    /// A count, bounded by what the remaining bytes could hold (no huge preallocation).
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > self.buf.len() {
            return Err(DecodeError::Corrupt(format!("count {n} exceeds the file")));
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec())
            .map_err(|_| DecodeError::Corrupt("string is not UTF-8".into()))
    }
    fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => self.str().map(Some),
            t => Err(DecodeError::Corrupt(format!("option tag {t}"))),
        }
    }
    fn name(&mut self) -> Result<Name, DecodeError> {
        let n = self.take(1)?[0] as usize;
        let wire = self.take(n)?;
        Name::from_canonical_wire(wire).map_err(|e| DecodeError::Corrupt(format!("name: {e}")))
    }
    fn names(&mut self) -> Result<Vec<Name>, DecodeError> {
        (0..self.count()?).map(|_| self.name()).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::zone::tests::{domain, host, n, zone};

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

    /// Fixes the body length and checksum of hand-edited bytes, so that decoding reaches the
    /// body.
    fn reseal(bytes: &mut [u8]) {
        let body_len = (bytes.len() - HEADER_LEN) as u64;
        bytes[24..32].copy_from_slice(&body_len.to_le_bytes());
        let crc = crc32fast::hash(&bytes[16..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    }

    /// The zone serials list at the end of a version 3 body: a count and an i64 per zone.
    fn zone_serials_len(data: &SnapshotData) -> usize {
        4 + 8 * data.zones.len()
    }

    /// Encodes `data` in format version 2, as the previous release wrote it: version 3 without
    /// the zone serials.
    fn encode_v2(data: &SnapshotData) -> Vec<u8> {
        let mut bytes = encode(data);
        bytes.truncate(bytes.len() - zone_serials_len(data));
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        reseal(&mut bytes);
        bytes
    }

    /// Encodes `data` in format version 1: version 2 without the registrars and contacts lists
    /// (which `data` must not have).
    fn encode_v1(data: &SnapshotData) -> Vec<u8> {
        assert!(data.contacts.is_empty() && data.registrars.is_empty());
        let mut bytes = encode_v2(data);
        // The two empty lists: a zero u32 count each.
        assert_eq!(bytes[bytes.len() - 8..], [0; 8]);
        bytes.truncate(bytes.len() - 8);
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        reseal(&mut bytes);
        bytes
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zones.snap");
        let data = sample_data();
        write_snapshot(&path, &data).unwrap();
        assert_eq!(read_snapshot(&path).unwrap(), data);
        assert!(!dir.path().join("zones.snap.tmp").exists());
        assert_eq!(data.zones[0].name, n("tld"));
    }

    #[test]
    fn round_trips_zone_serials_in_version_3_and_reads_version_2_without() {
        let mut data = sample_data();
        data.zones.push(zone("other", &["a.nic.tld"]));
        data.zones[0].serial = 40;
        data.zones[1].serial = 0x1_0000_0007;
        let bytes = encode(&data);
        assert_eq!(
            bytes[8..12],
            3u32.to_le_bytes(),
            "the writer writes version 3"
        );
        assert_eq!(decode(&bytes).unwrap(), data);
        // Version 2: every zone's serial unknown, everything else as written.
        let back = decode(&encode_v2(&data)).unwrap();
        assert!(back.zones.iter().all(|z| z.serial == 0));
        assert_eq!(back.contacts, data.contacts);
        // A serial list that does not match the zones list, or a negative serial, is corrupt.
        let mut b = bytes.clone();
        let at = b.len() - zone_serials_len(&data);
        b[at] = 1;
        reseal(&mut b);
        assert!(matches!(
            decode(&b),
            Err(DecodeError::Corrupt(detail)) if detail.contains("1 zone serials for 2 zones")
        ));
        let mut b = bytes;
        let last = b.len() - 8;
        b[last..].copy_from_slice(&(-5i64).to_le_bytes());
        reseal(&mut b);
        assert!(matches!(
            decode(&b),
            Err(DecodeError::Corrupt(detail)) if detail.contains("zone other: serial -5")
        ));
    }

    #[test]
    fn round_trips_contacts_and_registrars() {
        let data = sample_data();
        let bytes = encode(&data);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.registrars, data.registrars);
        assert_eq!(back.contacts, data.contacts);
        let full = &back.contacts[0];
        assert!(full.disclose);
        assert_eq!(full.street.len(), 3);
        assert_eq!(full.street[2], "Übergasse 3");
        assert_eq!(full.fax.as_deref(), Some("+41.441234568"));
        let bare = &back.contacts[1];
        assert!(!bare.disclose);
        assert!(bare.street.is_empty());
        assert_eq!(
            (bare.organisation.as_ref(), bare.voice.as_ref()),
            (None, None)
        );
        assert_eq!(back.registrars[0].iana_id, Some(9999));
        assert_eq!(back.registrars[1].iana_id, None);
        assert_eq!(back.registrars[1].abuse_phone, None);
        // Values the store validates are not checked again: a bad country code is kept.
        let mut odd = SnapshotData::default();
        let mut c = contact("C3", false);
        c.country = "not a country".into();
        odd.contacts.push(c);
        assert_eq!(decode(&encode(&odd)).unwrap(), odd);
    }

    #[test]
    fn reads_version_1_with_no_contacts_or_registrars() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.snap");
        let data = SnapshotData {
            contacts: vec![],
            registrars: vec![],
            ..sample_data()
        };
        let v1 = encode_v1(&data);
        fs::write(&path, &v1).unwrap();
        let back = read_snapshot(&path).unwrap();
        assert_eq!(back, data);
        assert!(back.contacts.is_empty() && back.registrars.is_empty());
        assert_eq!(back.domains.len(), 2);
        // A version 1 file with the version 2 lists after its body has octets left over.
        let mut v1_with_lists = encode(&sample_data());
        v1_with_lists[8..12].copy_from_slice(&1u32.to_le_bytes());
        reseal(&mut v1_with_lists);
        assert!(matches!(
            decode(&v1_with_lists),
            Err(DecodeError::Corrupt(detail)) if detail.contains("after the last record")
        ));
    }

    #[test]
    fn refuses_a_corrupt_disclose_octet_or_string() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disclose.snap");
        let data = SnapshotData {
            contacts: vec![contact("C1", true)],
            ..SnapshotData::default()
        };
        let bytes = encode(&data);
        // The last contact ends with its disclose octet and two timestamps; the (empty) zone
        // serials list follows.
        let at = bytes.len() - 17 - zone_serials_len(&data);
        assert_eq!(bytes[at], 1);
        let mut b = bytes.clone();
        b[at] = 7;
        reseal(&mut b);
        fs::write(&path, &b).unwrap();
        let err = read_snapshot(&path).unwrap_err();
        let SnapshotError::Corrupt { detail, .. } = &err else {
            panic!("{err}")
        };
        assert!(detail.contains("disclose octet 7"), "{err}");
        assert!(err.to_string().contains("disclose.snap"), "{err}");

        // A street line that is not UTF-8.
        let line = "Übergasse 3".as_bytes();
        let at = bytes.windows(line.len()).position(|w| w == line).unwrap();
        let mut b = bytes.clone();
        b[at] = 0xFF;
        reseal(&mut b);
        assert!(matches!(
            decode(&b),
            Err(DecodeError::Corrupt(detail)) if detail.contains("UTF-8")
        ));

        // A registrar's IANA ID presence octet other than 0 or 1.
        let data = SnapshotData {
            registrars: vec![registrar("r1", false)],
            ..SnapshotData::default()
        };
        let mut b = encode(&data);
        // handle, name, then the presence octet; six absent options, the contacts count and the
        // (empty) zone serials list follow.
        let at = b.len() - zone_serials_len(&data) - 4 - 6 - 1;
        assert_eq!(b[at], 0);
        b[at] = 2;
        reseal(&mut b);
        assert!(matches!(
            decode(&b),
            Err(DecodeError::Corrupt(detail)) if detail.contains("IANA ID presence octet 2")
        ));
    }

    #[test]
    fn refuses_a_file_truncated_in_the_contacts_list() {
        let data = sample_data();
        let bytes = encode(&data);
        let contacts_start = {
            let mut without = data.clone();
            without.contacts.clear();
            encode(&without).len() - 4 - zone_serials_len(&data)
        };
        for cut in contacts_start + 1..bytes.len() {
            // Cut and left as is: the header announces more.
            assert!(
                matches!(decode(&bytes[..cut]), Err(DecodeError::Truncated { .. })),
                "cut at {cut}"
            );
            // Cut and resealed, as if the writer had lost the end: the body runs short.
            let mut b = bytes[..cut].to_vec();
            reseal(&mut b);
            assert!(
                matches!(decode(&b), Err(DecodeError::Corrupt(_))),
                "resealed cut at {cut}"
            );
        }
    }

    #[test]
    fn refuses_truncated_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.snap");
        let bytes = encode(&sample_data());
        for cut in [0, 5, 20, bytes.len() / 2, bytes.len() - 1] {
            fs::write(&path, &bytes[..cut]).unwrap();
            let err = read_snapshot(&path).unwrap_err();
            assert!(err.to_string().contains("bad.snap"), "{err}");
            assert!(
                matches!(
                    err,
                    SnapshotError::Truncated { .. } | SnapshotError::BadMagic { .. }
                ),
                "{err}"
            );
        }
        for i in [9, 13, 17, 40, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            fs::write(&path, &b).unwrap();
            assert!(read_snapshot(&path).is_err(), "flip at {i}");
        }
        let mut b = bytes.clone();
        for version in [0, 4] {
            b[8] = version;
            fs::write(&path, &b).unwrap();
            match read_snapshot(&path) {
                Err(SnapshotError::UnsupportedVersion { version: v, .. }) => {
                    assert_eq!(v, u32::from(version));
                }
                other => panic!("version {version}: {other:?}"),
            }
        }
        let err = read_snapshot(&dir.path().join("missing.snap")).unwrap_err();
        assert!(err.to_string().contains("missing.snap"));
    }
}
