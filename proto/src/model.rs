//! The registry data model shared by the store, the master, the satellites and the generator.
//!
//! It carries what DNS needs (zones, delegations, glue, DS) and what Whois/RDAP need
//! (registrars, contacts, dates, EPP statuses). Objects are identified by their canonical name
//! (domains, hosts, zones) or their handle (contacts, registrars); changes travel as whole
//! objects ([`Change`]), so applying them is idempotent.

use std::fmt;
use std::net::IpAddr;

use crate::name::Name;

/// A journal serial: strictly increasing in commit order, never reused.
pub type Serial = i64;

/// A point in time, in whole seconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(time::OffsetDateTime::now_utc().unix_timestamp())
    }

    /// Parses RFC 3339 (`2026-11-23T09:32:29Z`, any offset) or a bare date (`2026-11-23`).
    pub fn parse(text: &str) -> Result<Self, String> {
        use time::format_description::well_known::Rfc3339;
        if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
            return Ok(Self(t.unix_timestamp()));
        }
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(text, &fmt)
            .map(|d| Self(d.midnight().assume_utc().unix_timestamp()))
            .map_err(|_| format!("{text:?} is not an RFC 3339 time or a YYYY-MM-DD date"))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with a `Z`, as Whois (ICANN RDDS) and RDAP (RFC 9083 §4.5) show times.
    ///
    /// Written field by field rather than through `time`'s formatter, which builds a `String`:
    /// Whois and RDAP render several timestamps per answer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match time::OffsetDateTime::from_unix_timestamp(self.0) {
            Ok(t) if (0..=9999).contains(&t.year()) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            _ => write!(f, "@{}", self.0),
        }
    }
}

macro_rules! epp_statuses {
    ($($variant:ident = $text:literal,)*) => {
        /// EPP domain status values (RFC 5731 §2.3, RFC 3915 for the RGP ones).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EppStatus { $($variant,)* }

        impl EppStatus {
            /// Every status, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The EPP spelling (`clientHold`).
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)* }
            }

            /// Parses the EPP spelling, case-sensitively as EPP does.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

epp_statuses! {
    Ok = "ok",
    Inactive = "inactive",
    ClientHold = "clientHold",
    ServerHold = "serverHold",
    ClientDeleteProhibited = "clientDeleteProhibited",
    ServerDeleteProhibited = "serverDeleteProhibited",
    ClientRenewProhibited = "clientRenewProhibited",
    ServerRenewProhibited = "serverRenewProhibited",
    ClientTransferProhibited = "clientTransferProhibited",
    ServerTransferProhibited = "serverTransferProhibited",
    ClientUpdateProhibited = "clientUpdateProhibited",
    ServerUpdateProhibited = "serverUpdateProhibited",
    PendingCreate = "pendingCreate",
    PendingDelete = "pendingDelete",
    PendingRenew = "pendingRenew",
    PendingTransfer = "pendingTransfer",
    PendingUpdate = "pendingUpdate",
    AddPeriod = "addPeriod",
    AutoRenewPeriod = "autoRenewPeriod",
    RenewPeriod = "renewPeriod",
    TransferPeriod = "transferPeriod",
    RedemptionPeriod = "redemptionPeriod",
    PendingRestore = "pendingRestore",
}

impl EppStatus {
    /// True for the statuses that take a delegation out of DNS (RFC 5731 §2.3).
    pub fn is_hold(self) -> bool {
        matches!(self, Self::ClientHold | Self::ServerHold)
    }
}

impl fmt::Display for EppStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SOA fields a zone's operator chooses (RFC 1035 §3.3.13); the serial is the zone's own
/// ([`Zone::serial`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    pub mname: Name,
    pub rname: Name,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308 §4).
    pub minimum: u32,
}

/// A zone the registry serves (a TLD or a registry-operated second level).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub name: Name,
    pub soa: Soa,
    /// TTL of the SOA record itself.
    pub soa_ttl: u32,
    /// TTL of NS records (apex and delegations) and of glue addresses.
    pub ns_ttl: u32,
    /// TTL of DS records.
    pub ds_ttl: u32,
    /// The zone's own nameservers (apex NS); their addresses live on their [`Host`] objects.
    pub nameservers: Vec<Name>,
    /// The journal serial of the last committed change to the zone's content: its SOA serial
    /// is the low 32 bits ([`Zone::soa_serial`]), the same on every server built from one
    /// store state, and unmoved by changes elsewhere (docs/ARCHITECTURE.md, "SOA serials").
    /// 0 when unknown (from a master older than per-zone serials): consumers then use the
    /// journal serial of the state they hold, the rule of those releases.
    pub serial: Serial,
}

impl Zone {
    /// The SOA serial for this zone in a state at journal serial `state`: the low 32 bits of
    /// [`Zone::serial`], or of `state` when the zone's serial is unknown. Serial arithmetic
    /// (RFC 1982 §3) compares SOA serials modulo 2^32, so the truncation is correct while a
    /// zone's serial moves by less than 2^31 between two versions a secondary sees (see
    /// docs/ARCHITECTURE.md).
    pub fn soa_serial(&self, state: Serial) -> u32 {
        let serial = if self.serial > 0 { self.serial } else { state };
        serial as u32
    }
}

/// A nameserver host object (RFC 5732). Addresses are kept for hosts inside a zone of the
/// registry, where they become glue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub name: Name,
    pub addresses: Vec<IpAddr>,
    /// The sponsoring registrar's handle.
    pub registrar: Option<String>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// DS digest types (RFC 4034 §5.1.4, RFC 4509, RFC 6605) and the digest length each implies.
pub fn ds_digest_len(digest_type: u8) -> Option<usize> {
    match digest_type {
        1 => Some(20), // SHA-1
        2 => Some(32), // SHA-256
        4 => Some(48), // SHA-384
        _ => None,
    }
}

/// A delegation signer record (RFC 4034 §5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ds {
    pub key_tag: u16,
    pub algorithm: u8,
    pub digest_type: u8,
    pub digest: Vec<u8>,
}

impl Ds {
    /// Checks that the digest length matches the digest type.
    pub fn check(&self) -> Result<(), String> {
        match ds_digest_len(self.digest_type) {
            Some(n) if n == self.digest.len() => Ok(()),
            Some(n) => Err(format!(
                "digest is {} octets, digest type {} needs {n}",
                self.digest.len(),
                self.digest_type
            )),
            None => Err(format!("unknown digest type {}", self.digest_type)),
        }
    }

    /// The digest in upper-case hex, as master files show it.
    pub fn digest_hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02X}")).collect()
    }
}

/// A registered domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    /// Canonical A-label name (`foo.tld`).
    pub name: Name,
    /// Apex of the zone that holds the delegation.
    pub zone: Name,
    /// Repository object identifier (`Registry Domain ID`).
    pub roid: String,
    /// Sponsoring registrar's handle.
    pub registrar: String,
    pub created: Timestamp,
    pub updated: Timestamp,
    pub expires: Timestamp,
    pub statuses: Vec<EppStatus>,
    pub registrant: Option<String>,
    pub admin: Option<String>,
    pub tech: Option<String>,
    pub billing: Option<String>,
    pub nameservers: Vec<Name>,
    pub ds: Vec<Ds>,
}

impl Domain {
    /// True when the domain is delegated in DNS: it has nameservers and no hold status.
    pub fn is_delegated(&self) -> bool {
        !self.nameservers.is_empty() && !self.statuses.iter().any(|s| s.is_hold())
    }
}

/// A contact object (RFC 5733), with the registrant's disclosure choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub handle: String,
    pub name: String,
    pub organisation: Option<String>,
    /// Street lines, at most three in EPP.
    pub street: Vec<String>,
    pub city: String,
    pub province: Option<String>,
    pub postcode: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub email: String,
    pub voice: Option<String>,
    pub fax: Option<String>,
    /// True when the contact agreed to publication; false means Whois/RDAP redact.
    pub disclose: bool,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// A registrar accredited with the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registrar {
    pub handle: String,
    pub name: String,
    /// IANA registrar ID, for gTLDs.
    pub iana_id: Option<u32>,
    pub url: Option<String>,
    pub whois_server: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub abuse_email: Option<String>,
    pub abuse_phone: Option<String>,
}

impl Registrar {
    /// A registrar with only its handle and name set.
    pub fn new(handle: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            handle: handle.into(),
            name: name.into(),
            iana_id: None,
            url: None,
            whois_server: None,
            email: None,
            phone: None,
            abuse_email: None,
            abuse_phone: None,
        }
    }
}

/// One object's new state, or its removal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Zone(Zone),
    ZoneRemoved(Name),
    Domain(Domain),
    DomainRemoved(Name),
    Host(Host),
    HostRemoved(Name),
    Contact(Contact),
    ContactRemoved(String),
    Registrar(Registrar),
    RegistrarRemoved(String),
    /// Made by the master's signer, never read from the store (issue 13).
    Dnssec(crate::dnssec::DnssecRrset),
    DnssecRemoved(crate::dnssec::DnssecRrsetId),
}

impl Change {
    /// True for the removals (`…Removed`), false for objects (upserts). A snapshot holds
    /// objects only.
    pub fn is_removal(&self) -> bool {
        matches!(
            self,
            Self::ZoneRemoved(_)
                | Self::DomainRemoved(_)
                | Self::HostRemoved(_)
                | Self::ContactRemoved(_)
                | Self::RegistrarRemoved(_)
                | Self::DnssecRemoved(_)
        )
    }
}

/// The changes committed after serial `after` up to and including serial `upto`, each object at
/// its state as of `upto`. Applying a batch to the state at `after` gives the state at `upto`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ChangeBatch {
    pub after: Serial,
    pub upto: Serial,
    pub changes: Vec<Change>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t = Timestamp::parse("2026-11-23T09:32:29Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-23T09:32:29Z");
        assert_eq!(
            Timestamp::parse("2026-11-23").unwrap().to_string(),
            "2026-11-23T00:00:00Z"
        );
        assert_eq!(Timestamp::parse("2026-11-23T10:32:29+01:00").unwrap(), t);
        assert!(Timestamp::parse("yesterday").is_err());
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(i64::MAX).to_string(), format!("@{}", i64::MAX));
    }

    #[test]
    fn statuses() {
        for s in EppStatus::ALL {
            assert_eq!(EppStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(EppStatus::parse("clienthold"), None);
        assert!(EppStatus::ServerHold.is_hold());
        assert!(!EppStatus::Ok.is_hold());
    }

    #[test]
    fn ds_digest_lengths() {
        let mut ds = Ds {
            key_tag: 1,
            algorithm: 13,
            digest_type: 2,
            digest: vec![0xAB; 32],
        };
        assert!(ds.check().is_ok());
        assert_eq!(ds.digest_hex().len(), 64);
        ds.digest.pop();
        assert!(ds.check().unwrap_err().contains("needs 32"));
        ds.digest_type = 3;
        assert!(ds.check().is_err());
    }
}
