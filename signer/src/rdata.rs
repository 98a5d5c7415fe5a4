//! RDATA in wire form and in master-file presentation, for the types a signed zone holds.
//!
//! Names in RDATA are uncompressed canonical wire (RFC 4034 §6.2). Presentation follows the
//! RFCs' own formats (RFC 4034 §2.2, §3.2, §4.2, §5.3; RFC 5155 §3.3, §4.3) so BIND, Knot,
//! NSD and ldns read the files unchanged.

use std::fmt::Write as _;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use orrery_proto::{Ds, Name};

use crate::nsec3::base32hex;
use crate::record::rtype;

/// The SOA RDATA (RFC 1035 §3.3.13).
pub struct Soa<'a> {
    pub mname: &'a Name,
    pub rname: &'a Name,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

pub fn soa(s: &Soa<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(s.mname.as_wire());
    out.extend_from_slice(s.rname.as_wire());
    for v in [s.serial, s.refresh, s.retry, s.expire, s.minimum] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

pub fn ns(target: &Name) -> Vec<u8> {
    target.as_wire().to_vec()
}

/// A or AAAA RDATA, and the type it is.
pub fn address(addr: &IpAddr) -> (u16, Vec<u8>) {
    match addr {
        IpAddr::V4(a) => (rtype::A, a.octets().to_vec()),
        IpAddr::V6(a) => (rtype::AAAA, a.octets().to_vec()),
    }
}

pub fn ds(d: &Ds) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + d.digest.len());
    out.extend_from_slice(&d.key_tag.to_be_bytes());
    out.push(d.algorithm);
    out.push(d.digest_type);
    out.extend_from_slice(&d.digest);
    out
}

/// DNSKEY RDATA (RFC 4034 §2.1): flags, protocol 3, algorithm, public key.
pub fn dnskey(flags: u16, algorithm: u8, public_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + public_key.len());
    out.extend_from_slice(&flags.to_be_bytes());
    out.push(3);
    out.push(algorithm);
    out.extend_from_slice(public_key);
    out
}

/// The type bit maps field (RFC 4034 §4.1.2), from types in any order.
pub fn type_bitmaps(types: &[u16]) -> Vec<u8> {
    let mut types = types.to_vec();
    types.sort_unstable();
    types.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < types.len() {
        let window = (types[i] >> 8) as u8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while i < types.len() && (types[i] >> 8) as u8 == window {
            let low = (types[i] & 0xff) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            i += 1;
        }
        out.push(window);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
    out
}

/// NSEC RDATA (RFC 4034 §4.1).
pub fn nsec(next: &Name, types: &[u16]) -> Vec<u8> {
    let mut out = next.as_wire().to_vec();
    out.extend_from_slice(&type_bitmaps(types));
    out
}

/// NSEC3 RDATA (RFC 5155 §3.2) with SHA-1, `iterations` and `salt`.
pub fn nsec3(flags: u8, iterations: u16, salt: &[u8], next_hash: &[u8], types: &[u16]) -> Vec<u8> {
    let mut out = nsec3param(flags, iterations, salt);
    out.push(next_hash.len() as u8);
    out.extend_from_slice(next_hash);
    out.extend_from_slice(&type_bitmaps(types));
    out
}

/// NSEC3PARAM RDATA (RFC 5155 §4.2); also the first fields of NSEC3.
pub fn nsec3param(flags: u8, iterations: u16, salt: &[u8]) -> Vec<u8> {
    let mut out = vec![1, flags];
    out.extend_from_slice(&iterations.to_be_bytes());
    out.push(salt.len() as u8);
    out.extend_from_slice(salt);
    out
}

/// The RRSIG RDATA up to and excluding the signature (RFC 4034 §3.1): the part that is signed.
pub struct RrsigPrefix<'a> {
    pub type_covered: u16,
    pub algorithm: u8,
    pub labels: u8,
    pub original_ttl: u32,
    pub expiration: u32,
    pub inception: u32,
    pub key_tag: u16,
    pub signer: &'a Name,
}

impl RrsigPrefix<'_> {
    pub fn append(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.type_covered.to_be_bytes());
        out.push(self.algorithm);
        out.push(self.labels);
        out.extend_from_slice(&self.original_ttl.to_be_bytes());
        out.extend_from_slice(&self.expiration.to_be_bytes());
        out.extend_from_slice(&self.inception.to_be_bytes());
        out.extend_from_slice(&self.key_tag.to_be_bytes());
        out.extend_from_slice(self.signer.as_wire());
    }
}

/// The mnemonic of a type (RFC 3597 §5 `TYPEn` for others).
pub fn type_name(t: u16) -> String {
    match t {
        rtype::A => "A".into(),
        rtype::NS => "NS".into(),
        rtype::SOA => "SOA".into(),
        rtype::AAAA => "AAAA".into(),
        rtype::DS => "DS".into(),
        rtype::RRSIG => "RRSIG".into(),
        rtype::NSEC => "NSEC".into(),
        rtype::DNSKEY => "DNSKEY".into(),
        rtype::NSEC3 => "NSEC3".into(),
        rtype::NSEC3PARAM => "NSEC3PARAM".into(),
        t => format!("TYPE{t}"),
    }
}

fn hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02X}");
    }
}

/// A name in RDATA at `pos`: (name, end), for RDATA this module wrote.
fn name_at(rdata: &[u8], pos: usize) -> Option<(Name, usize)> {
    let mut end = pos;
    while *rdata.get(end)? != 0 {
        end += 1 + rdata[end] as usize;
    }
    let name = Name::from_canonical_wire(rdata.get(pos..=end)?).ok()?;
    Some((name, end + 1))
}

fn u16_at(b: &[u8], p: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(p..p + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], p: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(p..p + 4)?.try_into().ok()?))
}

fn bitmap_text(out: &mut String, mut bits: &[u8]) -> Option<()> {
    while !bits.is_empty() {
        let window = u16::from(*bits.first()?);
        let len = *bits.get(1)? as usize;
        let map = bits.get(2..2 + len)?;
        for (i, byte) in map.iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    let t = window << 8 | (i * 8 + bit) as u16;
                    out.push(' ');
                    out.push_str(&type_name(t));
                }
            }
        }
        bits = &bits[2 + len..];
    }
    Some(())
}

/// `YYYYMMDDHHmmSS` for an RRSIG time (RFC 4034 §3.2), reading the 32-bit value as the time
/// in the current 2^32-second era closest to 1970–2106.
fn rrsig_time(t: u32) -> String {
    let days = i64::from(t) / 86_400;
    let secs = i64::from(t) % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The master-file presentation of RDATA this module (or the generator's records) wrote;
/// `None` for RDATA it cannot read, which a caller treats as a bug.
pub fn present(t: u16, rd: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(rd.len() * 2);
    match t {
        rtype::A => {
            let o: [u8; 4] = rd.try_into().ok()?;
            out.push_str(&std::net::Ipv4Addr::from(o).to_string());
        }
        rtype::AAAA => {
            let o: [u8; 16] = rd.try_into().ok()?;
            out.push_str(&std::net::Ipv6Addr::from(o).to_string());
        }
        rtype::NS => out.push_str(&name_at(rd, 0)?.0.to_fqdn()),
        rtype::SOA => {
            let (m, p) = name_at(rd, 0)?;
            let (r, p) = name_at(rd, p)?;
            let _ = write!(out, "{} {}", m.to_fqdn(), r.to_fqdn());
            for i in 0..5 {
                let _ = write!(out, " {}", u32_at(rd, p + 4 * i)?);
            }
        }
        rtype::DS => {
            let _ = write!(out, "{} {} {} ", u16_at(rd, 0)?, rd.get(2)?, rd.get(3)?);
            hex(&mut out, rd.get(4..)?);
        }
        rtype::DNSKEY => {
            let _ = write!(out, "{} {} {} ", u16_at(rd, 0)?, rd.get(2)?, rd.get(3)?);
            out.push_str(&BASE64.encode(rd.get(4..)?));
        }
        rtype::RRSIG => {
            let (signer, p) = name_at(rd, 18)?;
            let _ = write!(
                out,
                "{} {} {} {} {} {} {} {} ",
                type_name(u16_at(rd, 0)?),
                rd.get(2)?,
                rd.get(3)?,
                u32_at(rd, 4)?,
                rrsig_time(u32_at(rd, 8)?),
                rrsig_time(u32_at(rd, 12)?),
                u16_at(rd, 16)?,
                signer.to_fqdn()
            );
            out.push_str(&BASE64.encode(rd.get(p..)?));
        }
        rtype::NSEC => {
            let (next, p) = name_at(rd, 0)?;
            out.push_str(&next.to_fqdn());
            bitmap_text(&mut out, rd.get(p..)?)?;
        }
        rtype::NSEC3 | rtype::NSEC3PARAM => {
            let salt_len = *rd.get(4)? as usize;
            let salt = rd.get(5..5 + salt_len)?;
            let _ = write!(out, "{} {} {} ", rd.first()?, rd.get(1)?, u16_at(rd, 2)?);
            if salt.is_empty() {
                out.push('-');
            } else {
                hex(&mut out, salt);
            }
            if t == rtype::NSEC3 {
                let p = 5 + salt_len;
                let hlen = *rd.get(p)? as usize;
                out.push(' ');
                out.push_str(&base32hex(rd.get(p + 1..p + 1 + hlen)?));
                bitmap_text(&mut out, rd.get(p + 1 + hlen..)?)?;
            } else if rd.len() != 5 + salt_len {
                return None;
            }
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_match_rfc4034_section_4_3() {
        // RFC 4034 §4.3: A MX RRSIG NSEC TYPE1234.
        let bits = type_bitmaps(&[1, 15, 46, 47, 1234]);
        assert_eq!(
            bits,
            [
                0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20
            ]
        );
        let mut text = String::new();
        bitmap_text(&mut text, &bits).unwrap();
        assert_eq!(text, " A TYPE15 RRSIG NSEC TYPE1234");
        assert!(type_bitmaps(&[]).is_empty());
    }

    #[test]
    fn rrsig_times_are_utc_calendar() {
        // RFC 4034 §3.3 example: 20040509183619 is 1084127779.
        assert_eq!(rrsig_time(1_084_127_779), "20040509183619");
        assert_eq!(rrsig_time(0), "19700101000000");
    }

    #[test]
    fn presentation_of_nsec3param_and_soa() {
        assert_eq!(
            present(rtype::NSEC3PARAM, &nsec3param(0, 0, &[])).unwrap(),
            "1 0 0 -"
        );
        let m = Name::from_ascii("ns.example").unwrap();
        let r = Name::from_ascii("hostmaster.example").unwrap();
        let rd = soa(&Soa {
            mname: &m,
            rname: &r,
            serial: 7,
            refresh: 1,
            retry: 2,
            expire: 3,
            minimum: 4,
        });
        assert_eq!(
            present(rtype::SOA, &rd).unwrap(),
            "ns.example. hostmaster.example. 7 1 2 3 4"
        );
    }
}
