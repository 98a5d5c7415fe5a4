//! Orrery's DNSSEC signer, used by the generator now and by the master's change path next.
//!
//! Its one promise is determinism: **the same records, keys and policy sign to the same bytes**
//! on every host and every run. Signatures are deterministic (Ed25519, RFC 8032; ECDSA P-256
//! with RFC 6979 nonces), their inception and expiration come from the policy the store holds
//! ([`DnssecPolicy::signature_times`]), never from the clock, and every output is in canonical
//! order (RFC 4034 §6.1).
//!
//! # Layout
//! - [`record`]: records in canonical wire form, canonical name order, and RRsets as RRSIG
//!   signs them (RFC 4034 §3.1.8.1, §6).
//! - [`rdata`]: the RDATA of every type the signer writes, in wire form and in master-file
//!   presentation (RFC 4034 §2.2, §3.2, §4.2, §5.3; RFC 5155 §3.3, §4.3).
//! - [`key`]: DNSKEY, key tag (RFC 4034 Appendix B), DS (SHA-256, RFC 4509), and the private
//!   keys behind the [`KeyStore`] trait (PKCS#8 files now; a PKCS#11 HSM can implement it).
//! - [`objects`]: the registry's zones, domains and hosts as the records to sign (shared by the
//!   generator and the master), and signing with keys from a [`KeyStore`].
//! - [`nsec3`]: the NSEC3 hash (RFC 5155 §5; RFC 9276: no extra iterations, no salt) and
//!   base32hex.
//! - [`zone`]: signing a whole zone: the DNSKEY RRset, RRSIGs over authoritative RRsets, the
//!   NSEC or NSEC3 (opt-out) chain. Delegation NS and glue are not signed (RFC 4035 §2.2).
//! - [`incremental`]: the signed structure kept between batches (owners in canonical order,
//!   the chain, the published sets), so a batch signs only what it changes; its output is the
//!   whole-zone signer's. [`chain`]: the NSEC3 chain as a table of hashes.
//! - [`rrsets`]: the signed zone cut into the DNSSEC RRsets the master sends satellites (what
//!   they cannot derive from the registry's objects).

pub mod chain;
pub mod incremental;
pub mod key;
pub mod nsec3;
pub mod objects;
pub mod rdata;
pub mod record;
pub mod rrsets;
pub mod zone;

pub use incremental::{IncrementalError, IncrementalZone, Published};
pub use key::{
    FileKeyStore, KeyError, KeyStore, PrivateKey, can_sign_with, ds_for, key_tag, new_zone_key,
};
pub use objects::{SignWithKeysError, sign_with_keys, sign_with_keys_cached};
pub use record::{Record, canonical_cmp};
pub use rrsets::dnssec_rrsets;
pub use zone::{SignError, SignatureCache, SignedZone, sign_zone, sign_zone_cached};

pub use orrery_proto::dnssec::{
    Algorithm, Denial, DnssecPolicy, KeyRole, KeyState, ZoneDnssec, ZoneKey,
};
