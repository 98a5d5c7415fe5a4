//! The byte encoding of directory records: LEB128 varints, zigzag for signed numbers,
//! length-prefixed byte strings.
//!
//! Records are written by the directory and read back by it only, but reading never trusts
//! them: a short or damaged record reads as zeros and empty strings, never a panic.

/// Appends `v` as a LEB128 varint (1 byte below 128, at most 10).
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded: small magnitudes, of either sign, stay short.
pub(super) fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends `bytes` after their length.
pub(super) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads what the `put_*` functions wrote, in the same order.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The bytes not read yet.
    pub(super) fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    /// The next varint; 0 past the end (a varint longer than 64 bits keeps its low bits).
    pub(super) fn varint(&mut self) -> u64 {
        let mut v = 0u64;
        for (i, &b) in self.bytes.iter().enumerate() {
            if i < 10 {
                v |= u64::from(b & 0x7f) << (7 * i);
            }
            if b & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return v;
            }
        }
        self.bytes = &[];
        v
    }

    /// The next varint as `u32` (cut to its low 32 bits: only `u32`s are written as such).
    pub(super) fn u32(&mut self) -> u32 {
        self.varint() as u32
    }

    pub(super) fn signed(&mut self) -> i64 {
        let v = self.varint();
        (v >> 1) as i64 ^ -((v & 1) as i64)
    }

    pub(super) fn byte(&mut self) -> u8 {
        let (&b, rest) = self.bytes.split_first().unwrap_or((&0, &[]));
        self.bytes = rest;
        b
    }

    /// The next `n` bytes (fewer if the record ends first).
    pub(super) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        head
    }

    /// The next length-prefixed byte string.
    pub(super) fn bytes(&mut self) -> &'a [u8] {
        let n = self.varint();
        self.take(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The next length-prefixed string; empty if it is not UTF-8 (it always is, as written).
    pub(super) fn str(&mut self) -> &'a str {
        std::str::from_utf8(self.bytes()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        let numbers = [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX];
        for v in numbers {
            put_varint(&mut out, v);
        }
        let signed = [0, -1, 1, i64::MIN, i64::MAX, 1_700_000_000];
        for v in signed {
            put_signed(&mut out, v);
        }
        put_bytes(&mut out, b"hello");
        out.push(7);
        let mut r = Reader::new(&out);
        for v in numbers {
            assert_eq!(r.varint(), v);
        }
        for v in signed {
            assert_eq!(r.signed(), v);
        }
        assert_eq!(r.str(), "hello");
        assert_eq!(r.byte(), 7);
        assert!(r.rest().is_empty());
        // Dates of today take five bytes, not eight.
        let mut date = Vec::new();
        put_signed(&mut date, 1_700_000_000);
        assert_eq!(date.len(), 5);
    }

    #[test]
    fn damaged_records_read_as_empty() {
        // A varint that never ends, a length past the end, bytes that are not UTF-8.
        let mut r = Reader::new(&[0xff, 0xff]);
        r.varint();
        assert_eq!((r.varint(), r.byte(), r.bytes()), (0, 0, &[][..]));
        let mut r = Reader::new(&[200, 1, b'a']);
        assert_eq!(r.bytes(), b"a");
        let mut r = Reader::new(&[2, 0xc3, 0x28]);
        assert_eq!(r.str(), "");
        let mut r = Reader::new(&[0xff; 12]);
        r.varint();
        assert!(r.rest().is_empty());
    }
}
