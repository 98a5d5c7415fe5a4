//! DNSKEY records, key tags and DS digests, and the private keys that sign.
//!
//! Private keys are reached only through [`KeyStore`]: the store holds public keys and a
//! locator for each, the signing hosts hold the private half. [`FileKeyStore`] keeps PKCS#8
//! files (mode 0600) in a key directory; an HSM reached over PKCS#11 can implement the same
//! trait (its [`SigningKey`] calls `C_Sign`; ECDSA there is randomized, so such a store must
//! say so — determinism is then lost for algorithm 13, and Ed25519 keeps it).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use orrery_proto::dnssec::{Algorithm, KeyRole, KeyState, ZoneKey};
use orrery_proto::{Ds, Name, Timestamp};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::DecodePrivateKey as _;
use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};

use crate::rdata;

/// Errors of key storage and use, naming the key or file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("cannot access key file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("key file {path} is readable by others (mode {mode:o}); it must be 0600")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("key file {path} is not a PKCS#8 {algorithm:?} key: {reason}")]
    Malformed {
        path: PathBuf,
        algorithm: Algorithm,
        reason: String,
    },
    #[error("key locator {0:?} is not a file name in the key directory")]
    BadLocator(String),
    #[error("cannot generate a key: {0}")]
    Generate(String),
    #[error("private key {locator} does not match the public key the store holds for it")]
    Mismatch { locator: String },
}

/// A private key that signs: its algorithm, its DNSKEY public key field, and signatures in
/// RRSIG form (RFC 6605 §4: r‖s for P-256; RFC 8080 §4: the 64-octet Ed25519 signature).
pub trait SigningKey: Send + Sync {
    fn algorithm(&self) -> Algorithm;
    fn public_key(&self) -> Vec<u8>;
    fn sign(&self, data: &[u8]) -> Vec<u8>;
}

/// Where private keys live. `generate` makes a new key for a DNSKEY with `flags` and returns
/// its locator (which the store records beside the public key); `load` finds it again.
pub trait KeyStore {
    fn generate(
        &self,
        zone: &Name,
        algorithm: Algorithm,
        flags: u16,
    ) -> Result<(String, Box<dyn SigningKey>), KeyError>;
    fn load(&self, locator: &str, algorithm: Algorithm) -> Result<Box<dyn SigningKey>, KeyError>;
}

/// An in-memory private key of one of the two algorithms.
pub enum PrivateKey {
    Ed25519(Ed25519KeyPair),
    P256(p256::ecdsa::SigningKey),
}

impl PrivateKey {
    /// Reads a PKCS#8 document (RFC 5208/5958) of `algorithm`.
    pub fn from_pkcs8(algorithm: Algorithm, der: &[u8]) -> Result<Self, String> {
        match algorithm {
            Algorithm::Ed25519 => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map(Self::Ed25519)
                .map_err(|e| e.to_string()),
            Algorithm::EcdsaP256Sha256 => p256::ecdsa::SigningKey::from_pkcs8_der(der)
                .map(Self::P256)
                .map_err(|e| e.to_string()),
        }
    }

    /// A new key's PKCS#8 document, from the system's random source.
    pub fn generate_pkcs8(algorithm: Algorithm) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        let doc = match algorithm {
            Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
            Algorithm::EcdsaP256Sha256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
        }
        .map_err(|e| e.to_string())?;
        Ok(doc.as_ref().to_vec())
    }

    /// An Ed25519 key from its 32-octet seed (the form of RFC 8080's examples).
    pub fn ed25519_from_seed(seed: &[u8]) -> Result<Self, String> {
        Ed25519KeyPair::from_seed_unchecked(seed)
            .map(Self::Ed25519)
            .map_err(|e| e.to_string())
    }

    /// A P-256 key from its 32-octet scalar (the form of RFC 6605's and RFC 6979's examples).
    pub fn p256_from_scalar(scalar: &[u8]) -> Result<Self, String> {
        p256::ecdsa::SigningKey::from_slice(scalar)
            .map(Self::P256)
            .map_err(|e| e.to_string())
    }
}

impl SigningKey for PrivateKey {
    fn algorithm(&self) -> Algorithm {
        match self {
            Self::Ed25519(_) => Algorithm::Ed25519,
            Self::P256(_) => Algorithm::EcdsaP256Sha256,
        }
    }

    fn public_key(&self) -> Vec<u8> {
        match self {
            Self::Ed25519(k) => k.public_key().as_ref().to_vec(),
            // RFC 6605 §4: the uncompressed point without its 0x04 prefix.
            Self::P256(k) => k.verifying_key().to_encoded_point(false).as_bytes()[1..].to_vec(),
        }
    }

    fn sign(&self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Ed25519(k) => k.sign(data).as_ref().to_vec(),
            // RFC 6979 deterministic nonce, SHA-256 (the `Signer` impl of p256's ecdsa).
            Self::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(data);
                sig.to_bytes().to_vec()
            }
        }
    }
}

/// The key tag of a DNSKEY RDATA (RFC 4034 Appendix B; algorithm 1 is not used here).
pub fn key_tag(dnskey_rdata: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for (i, &b) in dnskey_rdata.iter().enumerate() {
        acc += if i & 1 == 1 {
            u32::from(b)
        } else {
            u32::from(b) << 8
        };
    }
    acc += (acc >> 16) & 0xffff;
    (acc & 0xffff) as u16
}

/// The DS for a DNSKEY at `owner`, digest type 2 (SHA-256, RFC 4509 §2.1): the digest of the
/// owner's canonical wire form followed by the DNSKEY RDATA.
pub fn ds_for(owner: &Name, dnskey_rdata: &[u8]) -> Ds {
    let mut data = owner.as_wire().to_vec();
    data.extend_from_slice(dnskey_rdata);
    Ds {
        key_tag: key_tag(dnskey_rdata),
        algorithm: dnskey_rdata[3],
        digest_type: 2,
        digest: digest(&SHA256, &data).as_ref().to_vec(),
    }
}

/// The DNSKEY RDATA of a public key.
pub fn dnskey_rdata(flags: u16, algorithm: Algorithm, public_key: &[u8]) -> Vec<u8> {
    rdata::dnskey(flags, algorithm.number(), public_key)
}

/// Generates a new key of `role` for `zone` in `keys` and returns the row the store records
/// for it, in `state` (published or active) since `now`. The one way keys are made: by
/// `orrery-admin dnssec add-key` / `rollover` and by the master's signing duty.
pub fn new_zone_key(
    keys: &dyn KeyStore,
    zone: &Name,
    role: KeyRole,
    algorithm: Algorithm,
    state: KeyState,
    now: Timestamp,
) -> Result<ZoneKey, KeyError> {
    let mut key = ZoneKey {
        role,
        algorithm,
        key_tag: 0,
        public_key: Vec::new(),
        state,
        locator: String::new(),
        created: now,
        published: Some(now),
        activated: (state == KeyState::Active).then_some(now),
        retired: None,
        revoked: None,
        ds_seen: None,
    };
    let (locator, private) = keys.generate(zone, algorithm, key.flags())?;
    key.locator = locator;
    key.public_key = private.public_key();
    key.key_tag = key_tag(&dnskey_rdata(key.flags(), algorithm, &key.public_key));
    Ok(key)
}

/// Whether `keys` can sign with `key`: its private key loads and matches the public key the
/// store holds (what a master needs before the key may sign, `orrery_master::signing_duty`).
pub fn can_sign_with(keys: &dyn KeyStore, key: &ZoneKey) -> Result<(), KeyError> {
    let private = keys.load(&key.locator, key.algorithm)?;
    if private.public_key() != key.public_key {
        return Err(KeyError::Mismatch {
            locator: key.locator.clone(),
        });
    }
    Ok(())
}

/// PKCS#8 files in one directory, mode 0600, named `K<zone>+<alg>+<n>.pk8`.
#[derive(Clone, Debug)]
pub struct FileKeyStore {
    dir: PathBuf,
}

impl FileKeyStore {
    /// The store over `dir`, created (mode 0700) if missing.
    pub fn open(dir: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: dir.to_owned(),
            source,
        };
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(io)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, locator: &str) -> Result<PathBuf, KeyError> {
        if locator.is_empty() || locator.contains('/') || locator.starts_with('.') {
            return Err(KeyError::BadLocator(locator.to_owned()));
        }
        Ok(self.dir.join(locator))
    }
}

impl KeyStore for FileKeyStore {
    fn generate(
        &self,
        zone: &Name,
        algorithm: Algorithm,
        flags: u16,
    ) -> Result<(String, Box<dyn SigningKey>), KeyError> {
        let der = PrivateKey::generate_pkcs8(algorithm).map_err(KeyError::Generate)?;
        let key = PrivateKey::from_pkcs8(algorithm, &der).map_err(KeyError::Generate)?;
        let tag = key_tag(&dnskey_rdata(flags, algorithm, &key.public_key()));
        let zone = if zone.is_root() {
            ".".to_owned()
        } else {
            zone.to_string()
        };
        // A key tag is not unique: number the files so two keys never share one.
        for n in 0..1000u32 {
            let locator = format!("K{zone}+{:03}+{tag:05}-{n}.pk8", algorithm.number());
            let path = self.path(&locator)?;
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            match file {
                Ok(mut f) => {
                    let io = |source| KeyError::Io {
                        path: path.clone(),
                        source,
                    };
                    f.write_all(&der).map_err(io)?;
                    f.sync_all().map_err(io)?;
                    return Ok((locator, Box::new(key)));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(KeyError::Io { path, source }),
            }
        }
        Err(KeyError::Generate(format!(
            "too many key files for tag {tag}"
        )))
    }

    fn load(&self, locator: &str, algorithm: Algorithm) -> Result<Box<dyn SigningKey>, KeyError> {
        let path = self.path(locator)?;
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        let mode = fs::metadata(&path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed { path, mode });
        }
        let der = fs::read(&path).map_err(io)?;
        let key =
            PrivateKey::from_pkcs8(algorithm, &der).map_err(|reason| KeyError::Malformed {
                path: path.clone(),
                algorithm,
                reason,
            })?;
        Ok(Box::new(key))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;

    use super::*;

    fn hexd(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc8080_ed25519_dnskey_ds_and_signature() {
        // RFC 8080 §6.1, first example.
        let seed = B64
            .decode("ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=")
            .unwrap();
        let key = PrivateKey::ed25519_from_seed(&seed).unwrap();
        let want_pub = B64
            .decode("l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=")
            .unwrap();
        assert_eq!(key.public_key(), want_pub);
        let owner = Name::from_ascii("example.com").unwrap();
        let rd = dnskey_rdata(257, Algorithm::Ed25519, &key.public_key());
        assert_eq!(key_tag(&rd), 3613);
        let ds = ds_for(&owner, &rd);
        assert_eq!(
            ds.digest,
            hexd("3aa5ab37efce57f737fc1627013fee07bdf241bd10f3b1964ab55c78e79a304b")
        );
        // The MX RRset's RRSIG of the same example.
        let mut data = Vec::new();
        rdata::RrsigPrefix {
            type_covered: 15,
            algorithm: 15,
            labels: 2,
            original_ttl: 3600,
            expiration: 1_440_021_600,
            inception: 1_438_207_200,
            key_tag: 3613,
            signer: &owner,
        }
        .append(&mut data);
        let mut mx = vec![0, 10];
        mx.extend_from_slice(Name::from_ascii("mail.example.com").unwrap().as_wire());
        let rr = crate::Record::new(owner.clone(), 15, 3600, mx);
        crate::record::append_rrset_for_signing(&mut data, &[&rr], 3600);
        let want = B64
            .decode("oL9krJun7xfBOIWcGHi7mag5/hdZrKWw15jPGrHpjQeRAvTdszaPD+QLs3fx8A4M3e23mRZ9VrbpMngwcrqNAg==")
            .unwrap();
        assert_eq!(key.sign(&data), want);
    }

    #[test]
    fn rfc6605_p256_dnskey_and_ds() {
        // RFC 6605 §6.1.
        let scalar = B64
            .decode("GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=")
            .unwrap();
        let key = PrivateKey::p256_from_scalar(&scalar).unwrap();
        let want_pub = B64
            .decode("GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==")
            .unwrap();
        assert_eq!(key.public_key(), want_pub);
        let rd = dnskey_rdata(257, Algorithm::EcdsaP256Sha256, &key.public_key());
        assert_eq!(key_tag(&rd), 55648);
        let ds = ds_for(&Name::from_ascii("example.net").unwrap(), &rd);
        assert_eq!(
            ds.digest,
            hexd("b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17")
        );
    }

    #[test]
    fn rfc6979_p256_sha256_sample_is_deterministic() {
        // RFC 6979 §A.2.5, P-256, SHA-256, message "sample".
        let x = hexd("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721");
        let key = PrivateKey::p256_from_scalar(&x).unwrap();
        let sig = key.sign(b"sample");
        assert_eq!(
            sig,
            [
                hexd("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"),
                hexd("F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8")
            ]
            .concat()
        );
        assert_eq!(key.sign(b"sample"), sig);
    }

    #[test]
    fn file_store_writes_0600_and_refuses_exposed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::open(&dir.path().join("keys")).unwrap();
        let zone = Name::from_ascii("test").unwrap();
        for alg in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
            let (loc, key) = store.generate(&zone, alg, 257).unwrap();
            let path = dir.path().join("keys").join(&loc);
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            let again = store.load(&loc, alg).unwrap();
            assert_eq!(again.public_key(), key.public_key());
            assert_eq!(again.sign(b"x"), key.sign(b"x"));
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                store.load(&loc, alg),
                Err(KeyError::Exposed { .. })
            ));
        }
        assert!(matches!(
            store.load("../etc/passwd", Algorithm::Ed25519),
            Err(KeyError::BadLocator(_))
        ));
    }
}
