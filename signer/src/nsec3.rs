//! The NSEC3 owner hash (RFC 5155 §5) and base32hex (RFC 4648 §7) as NSEC3 owners spell it.
//!
//! Orrery signs with RFC 9276's parameters, no extra iterations and an empty salt
//! ([`ITERATIONS`], [`SALT`]); [`hash`] takes both so the RFC's own vectors can test it.

use orrery_proto::Name;
use ring::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY};

/// RFC 9276 §3.1: "MUST use an iteration value of 0".
pub const ITERATIONS: u16 = 0;
/// RFC 9276 §3.1: "SHOULD NOT use a salt".
pub const SALT: &[u8] = &[];
/// The hash algorithm number, SHA-1 (RFC 5155 §11): the only one defined.
pub const HASH_SHA1: u8 = 1;
/// The Opt-Out flag of NSEC3 (RFC 5155 §3.1.2.1).
pub const FLAG_OPT_OUT: u8 = 0x01;

/// IH(salt, owner, iterations) of RFC 5155 §5: SHA-1 over the canonical owner and the salt,
/// re-hashed `iterations` times with the salt.
pub fn hash(owner: &Name, salt: &[u8], iterations: u16) -> [u8; 20] {
    let once = |data: &[u8]| {
        let mut ctx = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(data);
        ctx.update(salt);
        let mut out = [0u8; 20];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    };
    let mut h = once(owner.as_wire());
    for _ in 0..iterations {
        h = once(&h);
    }
    h
}

const BASE32HEX: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// base32hex without padding, lower-case (RFC 5155 §3.3 presentation; the owner label).
pub fn base32hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let v = buf.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            out.push(BASE32HEX[(v >> (35 - 5 * i) & 31) as usize] as char);
        }
    }
    out
}

/// The NSEC3 owner name for `hash` in the zone at `apex`: `<base32hex>.apex`.
pub fn owner(hash: &[u8], apex: &Name) -> Name {
    apex.prepend(&base32hex(hash))
        .expect("a 32-character base32hex label fits under any apex")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5155_appendix_a_hashes() {
        // Salt aabbccdd, 12 iterations (RFC 5155 Appendix A).
        let salt = [0xaa, 0xbb, 0xcc, 0xdd];
        for (name, want) in [
            ("example", "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"),
            ("a.example", "35mthgpgcu1qg68fab165klnsnk3dpvl"),
            ("ai.example", "gjeqe526plbf1g8mklp59enfd789njgi"),
            ("ns1.example", "2t7b4g4vsa5smi47k61mv5bv1a22bojr"),
            ("w.example", "k8udemvp1j2f7eg6jebps17vp3n8i58h"),
            ("*.w.example", "r53bq7cc2uvmubfu5ocmm6pers9tk9en"),
            ("x.w.example", "b4um86eghhds6nea196smvmlo4ors995"),
        ] {
            let n = Name::from_ascii(name).unwrap();
            assert_eq!(base32hex(&hash(&n, &salt, 12)), want, "{name}");
        }
    }

    #[test]
    fn base32hex_matches_rfc4648_vectors() {
        // RFC 4648 §10, lower-case, padding removed.
        for (input, want) in [
            ("", ""),
            ("f", "co"),
            ("fo", "cpng"),
            ("foo", "cpnmu"),
            ("foob", "cpnmuog"),
            ("fooba", "cpnmuoj1"),
            ("foobar", "cpnmuoj1e8"),
        ] {
            assert_eq!(base32hex(input.as_bytes()), want);
        }
    }
}
