//! A zone's DNSSEC state as the store holds it: its signing policy and its public keys.
//!
//! Both travel with the zone (the store journals a change to either as a change to the zone, so
//! the zone's serial moves and every consumer re-reads it), which makes "the keys in the zone at
//! serial S" one answer for every master, satellite and the generator. Private keys never appear
//! here: they live on the signing hosts behind `orrery_signer::KeyStore`, found by
//! [`ZoneKey::locator`].

use std::fmt;

use crate::Name;
use crate::model::Timestamp;

/// How a zone proves the absence of names (its denial of existence), or that it is unsigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Denial {
    /// Not signed: no DNSKEY, RRSIG or NSEC(3) records.
    Unsigned,
    /// NSEC3 (RFC 5155) with opt-out: insecure delegations are left out of the chain, so adding
    /// or removing one needs no new signature (§6). RFC 9276: no extra iterations, no salt.
    /// The default for a TLD.
    Nsec3OptOut,
    /// NSEC (RFC 4034 §4): every name in the chain; for small zones.
    Nsec,
}

impl Denial {
    /// The store's and the command line's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::Nsec3OptOut => "nsec3-optout",
            Self::Nsec => "nsec",
        }
    }

    /// Parses [`Denial::as_str`]'s spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "unsigned" => Some(Self::Unsigned),
            "nsec3-optout" => Some(Self::Nsec3OptOut),
            "nsec" => Some(Self::Nsec),
            _ => None,
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The DNSSEC algorithms Orrery signs with (IANA "DNS Security Algorithm Numbers"). Both have
/// deterministic signatures (RFC 6979 nonces for ECDSA; Ed25519 by construction, RFC 8032).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// 13, ECDSA P-256 with SHA-256 (RFC 6605): the default.
    EcdsaP256Sha256,
    /// 15, Ed25519 (RFC 8080).
    Ed25519,
}

impl Algorithm {
    /// The algorithm number in DNSKEY, RRSIG and DS records.
    pub fn number(self) -> u8 {
        match self {
            Self::EcdsaP256Sha256 => 13,
            Self::Ed25519 => 15,
        }
    }

    /// The algorithm for a number, if Orrery signs with it.
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            13 => Some(Self::EcdsaP256Sha256),
            15 => Some(Self::Ed25519),
            _ => None,
        }
    }
}

/// A zone's signing policy. Times are seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnssecPolicy {
    pub denial: Denial,
    pub algorithm: Algorithm,
    /// How long a signature is valid from its inception (default 14 days).
    pub validity: u32,
    /// How often signatures are renewed: a new signature window starts every `refresh`
    /// (default 7 days), so a signature has at least `validity - refresh` left when replaced.
    pub refresh: u32,
    /// TTL of the DNSKEY RRset (default 3600).
    pub dnskey_ttl: u32,
    /// The start of the current signature window, as the store holds it: every RRSIG's inception
    /// is this, and its expiration this plus `validity`. Kept in the store (and moved by a
    /// journalled write once per `refresh`) rather than taken from the clock, so the same store
    /// state signs to the same bytes on every master and in the generator.
    pub inception: Timestamp,
    /// When the signing duty rolls the zone's keys. Not a signing input: no signature depends
    /// on it, only when key states change.
    pub timings: KeyTimings,
}

/// The timings of a zone's automatic key rollovers, in seconds, with the names of RFC 7583 §3.
/// The waits themselves are derived from them and from the zone's TTLs
/// (`orrery_master::rollover`): a new key is published `TTLkey + Dprp` before it signs
/// (pre-publication, RFC 6781 §4.1.1.1), an old ZSK stays published `TTLsig + Dprp` after it
/// stops signing, an old KSK signs until `TTLds + Dprp` after the parent publishes its
/// successor's DS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyTimings {
    /// How long a ZSK signs before its successor takes over (RFC 7583 `Lzsk`); `None`: only
    /// by hand (`orrery-admin dnssec rollover --zsk`). Default 90 days.
    pub zsk_lifetime: Option<u32>,
    /// How long a KSK signs before the duty publishes a successor (`Lksk`); `None` (the
    /// default): registries roll KSKs by hand, together with their parent.
    pub ksk_lifetime: Option<u32>,
    /// `Dprp`: from a commit in the store to every satellite (and secondary) serving it,
    /// a reconnecting satellite included. Default one hour.
    pub propagation: u32,
    /// `TTLds`: the TTL of the zone's DS at its parent (86,400 at the root, the default).
    pub parent_ds_ttl: u32,
}

impl KeyTimings {
    /// 90 days, a common ZSK lifetime (RFC 6781 §3.2 leaves it to policy; Knot and BIND's
    /// `dnssec-policy default` use 30 days to unlimited).
    pub const DEFAULT_ZSK_LIFETIME: u32 = 90 * 86_400;
    /// One hour.
    pub const DEFAULT_PROPAGATION: u32 = 3_600;
    /// The root zone's DS TTL.
    pub const DEFAULT_PARENT_DS_TTL: u32 = 86_400;

    /// The pre-publication interval `Ipub = Dprp + TTLkey` (RFC 7583 §3.3.1): a new DNSKEY is
    /// in every cache's view of the DNSKEY RRset this long after it is published.
    pub fn publish_interval(&self, dnskey_ttl: u32) -> u32 {
        self.propagation.saturating_add(dnskey_ttl)
    }
}

impl Default for KeyTimings {
    fn default() -> Self {
        Self {
            zsk_lifetime: Some(Self::DEFAULT_ZSK_LIFETIME),
            ksk_lifetime: None,
            propagation: Self::DEFAULT_PROPAGATION,
            parent_ds_ttl: Self::DEFAULT_PARENT_DS_TTL,
        }
    }
}

impl DnssecPolicy {
    /// 14 days, an operator's usual validity.
    pub const DEFAULT_VALIDITY: u32 = 14 * 86_400;
    /// 7 days: renewed halfway.
    pub const DEFAULT_REFRESH: u32 = 7 * 86_400;
    /// One hour.
    pub const DEFAULT_DNSKEY_TTL: u32 = 3_600;
    /// Signatures start this long before their window, for validators with slow clocks.
    pub const CLOCK_SKEW: i64 = 3_600;

    /// The TLD default: NSEC3 opt-out, algorithm 13, 14/7 days, window starting at `inception`.
    pub fn tld_default(inception: Timestamp) -> Self {
        Self {
            denial: Denial::Nsec3OptOut,
            algorithm: Algorithm::EcdsaP256Sha256,
            validity: Self::DEFAULT_VALIDITY,
            refresh: Self::DEFAULT_REFRESH,
            dnskey_ttl: Self::DEFAULT_DNSKEY_TTL,
            inception,
            timings: KeyTimings::default(),
        }
    }

    /// The window start for time `now`: `now` rounded down to the refresh period, less the
    /// clock skew. Every signer that moves the window at about the same time picks the same one.
    pub fn window_for(refresh: u32, now: Timestamp) -> Timestamp {
        let period = i64::from(refresh.max(1));
        Timestamp(now.0.div_euclid(period) * period - Self::CLOCK_SKEW)
    }

    /// Checks the numbers: a refresh shorter than the validity, non-zero.
    pub fn check(&self) -> Result<(), String> {
        if self.refresh == 0 || self.validity == 0 {
            return Err("validity and refresh must be positive".into());
        }
        if self.refresh >= self.validity {
            return Err(format!(
                "refresh ({} s) must be shorter than the validity ({} s), or signatures expire before they are renewed",
                self.refresh, self.validity
            ));
        }
        let ipub = self.timings.publish_interval(self.dnskey_ttl);
        for (what, lifetime) in [
            ("ZSK", self.timings.zsk_lifetime),
            ("KSK", self.timings.ksk_lifetime),
        ] {
            match lifetime {
                Some(0) => return Err(format!("a {what} lifetime of 0 s: give none for by hand")),
                // A key must outlive its own pre-publication, or every key would start a roll.
                Some(l) if l <= ipub => {
                    return Err(format!(
                        "the {what} lifetime ({l} s) must be longer than the DNSKEY TTL plus the propagation delay ({ipub} s)"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// RRSIG inception and expiration (RFC 4034 §3.1.5: seconds since the epoch modulo 2^32).
    pub fn signature_times(&self) -> (u32, u32) {
        let inception = self.inception.0;
        let expiration = inception + i64::from(self.validity);
        (inception as u32, expiration as u32)
    }
}

/// What a key signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyRole {
    /// Key-signing key: signs the DNSKEY RRset; its DS is at the parent.
    Ksk,
    /// Zone-signing key: signs every other RRset.
    Zsk,
    /// Combined signing key: both.
    Csk,
}

impl KeyRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ksk => "ksk",
            Self::Zsk => "zsk",
            Self::Csk => "csk",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ksk" => Some(Self::Ksk),
            "zsk" => Some(Self::Zsk),
            "csk" => Some(Self::Csk),
            _ => None,
        }
    }

    /// True for keys with the Secure Entry Point flag (RFC 4034 §2.1.1): those a DS points to.
    pub fn is_sep(self) -> bool {
        matches!(self, Self::Ksk | Self::Csk)
    }
}

/// Where a key is in its life. Every state but the removal of the row keeps the key in the
/// DNSKEY RRset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// In the DNSKEY RRset, signing nothing yet (pre-publication, RFC 6781 §4.1.1.1).
    Published,
    /// In the DNSKEY RRset and signing what its role signs.
    Active,
    /// In the DNSKEY RRset, no longer signing (waiting for caches to drop old signatures).
    Retired,
    /// Published with the REVOKE flag (RFC 5011 §2.1), self-signing the DNSKEY RRset.
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "published" => Some(Self::Published),
            "active" => Some(Self::Active),
            "retired" => Some(Self::Retired),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// A zone's public key and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneKey {
    pub role: KeyRole,
    pub algorithm: Algorithm,
    /// RFC 4034 Appendix B, of the DNSKEY as published (REVOKE flag included).
    pub key_tag: u16,
    /// The DNSKEY public key field (RFC 6605 §4: x‖y for P-256; RFC 8080 §3: 32 octets).
    pub public_key: Vec<u8>,
    pub state: KeyState,
    /// Where the signing hosts' key store finds the private key (a file name in the key
    /// directory; a PKCS#11 URI later).
    pub locator: String,
    pub created: Timestamp,
    pub published: Option<Timestamp>,
    pub activated: Option<Timestamp>,
    pub retired: Option<Timestamp>,
    pub revoked: Option<Timestamp>,
    /// For a KSK or CSK: when the operator recorded that the parent publishes its DS
    /// (`orrery-admin dnssec ds-seen`), the operator step of a double-DS rollover.
    pub ds_seen: Option<Timestamp>,
}

impl ZoneKey {
    /// The DNSKEY flags field (RFC 4034 §2.1.1): Zone Key, SEP for KSK/CSK, REVOKE (RFC 5011).
    pub fn flags(&self) -> u16 {
        let mut flags = 0x0100;
        if self.role.is_sep() {
            flags |= 0x0001;
        }
        if self.state == KeyState::Revoked {
            flags |= 0x0080;
        }
        flags
    }

    /// True when the key signs the DNSKEY RRset.
    pub fn signs_dnskey(&self) -> bool {
        self.role.is_sep() && matches!(self.state, KeyState::Active | KeyState::Revoked)
    }

    /// True when the key signs the zone's other RRsets.
    pub fn signs_zone(&self) -> bool {
        matches!(self.role, KeyRole::Zsk | KeyRole::Csk) && self.state == KeyState::Active
    }
}

/// A zone's DNSSEC state at one serial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneDnssec {
    pub policy: DnssecPolicy,
    /// In (role, algorithm, key tag, public key) order, so every reader sees one order.
    pub keys: Vec<ZoneKey>,
}

impl ZoneDnssec {
    /// True when the zone is to be signed.
    pub fn is_signed(&self) -> bool {
        self.policy.denial != Denial::Unsigned
    }
}

/// The record types of a [`DnssecRrset`] (IANA "Resource Record (RR) TYPEs").
pub mod rrset_type {
    pub const RRSIG: u16 = 46;
    pub const NSEC: u16 = 47;
    pub const DNSKEY: u16 = 48;
    pub const NSEC3: u16 = 50;
    pub const NSEC3PARAM: u16 = 51;
}

/// Names one DNSSEC RRset of a signed zone: what a later [`DnssecRrset`] with the same id
/// replaces, and what a removal takes away.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnssecRrsetId {
    /// Apex of the signed zone.
    pub zone: Name,
    /// The apex or a name under it.
    pub owner: Name,
    /// One of [`rrset_type`].
    pub rtype: u16,
    /// For RRSIG: the type the signatures cover (RFC 4034 §3.1.1), never 0; 0 otherwise.
    pub covered: u16,
}

/// A DNSSEC RRset that a satellite cannot derive from the registry's objects: the zone's
/// DNSKEY and NSEC3PARAM, its NSEC or NSEC3 chain, and the RRSIGs over every authoritative
/// RRset. The master makes them with `orrery-signer` and sends them in the batch of the change
/// they follow from, so a satellite applies a DS and its RRSIG, or a name and its chain, as one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnssecRrset {
    pub id: DnssecRrsetId,
    pub ttl: u32,
    /// RDATA in canonical wire form (RFC 4034 §6.2), ascending; never empty.
    pub rdata: Vec<Vec<u8>>,
}

impl DnssecRrsetId {
    /// Checks what a peer could get wrong: a known type, `covered` set exactly for RRSIG, the
    /// owner at or under the zone.
    pub fn check(&self) -> Result<(), String> {
        use rrset_type::*;
        match (self.rtype, self.covered) {
            (RRSIG, 0) => return Err("RRSIG without the type it covers".into()),
            (RRSIG, RRSIG) => return Err("an RRSIG cannot cover RRSIG (RFC 4035 §2.2)".into()),
            (RRSIG, _) => {}
            (NSEC | DNSKEY | NSEC3 | NSEC3PARAM, 0) => {}
            (NSEC | DNSKEY | NSEC3 | NSEC3PARAM, c) => {
                return Err(format!("type {} with covered type {c}", self.rtype));
            }
            (t, _) => return Err(format!("type {t} is not a DNSSEC type the master sends")),
        }
        if !crate::name::wire_is_subdomain(self.owner.as_wire(), self.zone.as_wire()) {
            return Err(format!("owner {} is not in zone {}", self.owner, self.zone));
        }
        Ok(())
    }
}

impl DnssecRrset {
    /// Checks the id, the TTL (RFC 2181 §8) and the RDATA: present, each within 65,535
    /// octets, and long enough for its type's fixed fields, an RRSIG's covering the type its
    /// id says (so a satellite can copy these octets into answers without reading them again).
    pub fn check(&self) -> Result<(), String> {
        use rrset_type::*;
        self.id.check()?;
        if self.ttl > i32::MAX as u32 {
            return Err(format!("TTL {} above 2^31 - 1", self.ttl));
        }
        if self.rdata.is_empty() {
            return Err("no RDATA".into());
        }
        for rd in &self.rdata {
            if rd.len() > u16::MAX as usize {
                return Err(format!("RDATA of {} octets", rd.len()));
            }
            let ok = match self.id.rtype {
                // type covered, algorithm, labels, original TTL, expiration, inception, key
                // tag (18 octets), the signer's name (root at least), a signature.
                RRSIG => rd.len() >= 20 && u16::from_be_bytes([rd[0], rd[1]]) == self.id.covered,
                // flags, protocol, algorithm, a key.
                DNSKEY => rd.len() > 4,
                // next owner name (root at least), a type bit map.
                NSEC => rd.len() >= 2,
                // algorithm, flags, iterations, salt length, salt, hash length, hash, bit maps.
                NSEC3 => {
                    rd.len() >= 5 && {
                        let salt = rd[4] as usize;
                        rd.len() > 5 + salt && rd.len() >= 6 + salt + rd[5 + salt] as usize
                    }
                }
                NSEC3PARAM => rd.len() >= 5 && rd.len() == 5 + rd[4] as usize,
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "malformed {} RDATA of {} octets",
                    self.id.rtype,
                    rd.len()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for d in [Denial::Unsigned, Denial::Nsec3OptOut, Denial::Nsec] {
            assert_eq!(Denial::parse(d.as_str()), Some(d));
        }
        for r in [KeyRole::Ksk, KeyRole::Zsk, KeyRole::Csk] {
            assert_eq!(KeyRole::parse(r.as_str()), Some(r));
        }
        for s in [
            KeyState::Published,
            KeyState::Active,
            KeyState::Retired,
            KeyState::Revoked,
        ] {
            assert_eq!(KeyState::parse(s.as_str()), Some(s));
        }
        assert_eq!(Algorithm::from_number(13), Some(Algorithm::EcdsaP256Sha256));
        assert_eq!(Algorithm::from_number(8), None);
    }

    #[test]
    fn window_is_bucketed_and_checked() {
        let w = DnssecPolicy::window_for(604_800, Timestamp(1_800_000_000));
        assert_eq!(
            w,
            DnssecPolicy::window_for(604_800, Timestamp(1_800_000_100))
        );
        assert_eq!((w.0 + 3600) % 604_800, 0);
        let mut p = DnssecPolicy::tld_default(w);
        assert!(p.check().is_ok());
        let (i, e) = p.signature_times();
        assert_eq!(e - i, 14 * 86_400);
        p.refresh = p.validity;
        assert!(p.check().is_err());
    }

    #[test]
    fn key_timings_are_checked_against_the_publish_interval() {
        let mut p = DnssecPolicy::tld_default(Timestamp(0));
        assert_eq!(p.timings.publish_interval(p.dnskey_ttl), 7_200);
        p.timings.zsk_lifetime = Some(7_200);
        assert!(p.check().unwrap_err().contains("ZSK lifetime"));
        p.timings.zsk_lifetime = Some(7_201);
        p.timings.ksk_lifetime = Some(0);
        assert!(p.check().unwrap_err().contains("KSK lifetime of 0"));
        p.timings.ksk_lifetime = None;
        assert!(p.check().is_ok());
    }
}
