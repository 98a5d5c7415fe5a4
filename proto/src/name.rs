//! The one DNS name type of the workspace.
//!
//! A [`Name`] is an absolute domain name held in *canonical wire form*: a sequence of
//! length-prefixed labels, ASCII letters folded to lower case (RFC 4034 §6.2), ending with the
//! root label. Every way of making one checks its input (RFC 1035 §2.3.4: labels of 1 to 63
//! octets, at most 255 octets in all), so a `Name` that exists is valid. Equality and hashing are
//! on the canonical bytes, which makes a `Name` a cheap hash-table key.
//!
//! Registry data (domains, hosts, zones) is stored with [`Name::to_string`]: lower-case A-labels
//! without the trailing dot. IDNs given in U-labels are converted with UTS #46 by
//! [`Name::from_user`]. Names a registry *registers* are checked further by
//! [`Name::check_registry`] (IDNA2008: every A-label valid, RFC 5891 §4.2.3.1 hyphen rule);
//! names read from DNS messages are not, so a query for `ab--cd.tld` is simply NXDOMAIN, and
//! the wire decoder stays free of that work.

use std::fmt;

/// Maximum length of a name in wire form, root label included (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Maximum length of one label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a text or wire name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("empty label")]
    EmptyLabel,
    #[error("label longer than 63 octets ({0} octets)")]
    LabelTooLong(usize),
    #[error("name longer than 255 octets in wire form ({0} octets)")]
    NameTooLong(usize),
    #[error("character {0:?} not allowed in a host name")]
    BadCharacter(char),
    #[error("label {0:?} starts or ends with a hyphen")]
    HyphenAtEdge(String),
    #[error("not a valid internationalised domain name: {0}")]
    Idna(String),
    #[error(
        "label {0:?} has hyphens in its third and fourth positions, which only A-labels \
         (xn--) may have (RFC 5891 §4.2.3.1)"
    )]
    ReservedHyphens(String),
    #[error("malformed wire-format name")]
    BadWire,
    #[error("compression pointer does not point backwards")]
    BadPointer,
}

/// An absolute domain name in canonical (lower-case) wire form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name {
    wire: Box<[u8]>,
}

impl Name {
    /// The root name `.`.
    pub fn root() -> Self {
        Self {
            wire: Box::new([0]),
        }
    }

    /// Parses a name in presentation form (`foo.example` or `foo.example.`), folding case.
    ///
    /// Labels may hold letters, digits, `-`, `_` and a lone `*` (wildcard owner names); use
    /// [`Name::check_hostname`] for the stricter host name rules (RFC 952/1123). Escapes
    /// (`\.`, `\065`) are not accepted: registry data never needs them.
    pub fn from_ascii(text: &str) -> Result<Self, NameError> {
        if let Some(wire) = WireBuffer::from_ascii(text.as_bytes()) {
            return Ok(Self {
                wire: wire.as_slice().into(),
            });
        }
        // Not a valid name (or the root): the checked parser says which.
        let mut wire = Vec::with_capacity(text.len() + 2);
        ascii_to_wire_checked(text, &mut wire)?;
        Ok(Self {
            wire: wire.into_boxed_slice(),
        })
    }

    /// A valid name in presentation form, read in one pass over its octets; `None` for
    /// anything else, the root included. For readers of bulk data that judge a refusal
    /// elsewhere (the state file's decoder falls back to the link's conversion, which says what
    /// is wrong): no UTF-8 check first, as an octet outside ASCII is refused anyway.
    pub fn from_ascii_octets(text: &[u8]) -> Option<Self> {
        WireBuffer::from_ascii(text).map(|wire| Self {
            wire: wire.as_slice().into(),
        })
    }

    /// Parses a name typed by a person: U-labels are converted to A-labels (UTS #46,
    /// non-transitional, as IDNA2008 registries expect), then the result is checked as
    /// [`Name::from_ascii`] does.
    pub fn from_user(text: &str) -> Result<Self, NameError> {
        let mut wire = Vec::with_capacity(text.len() + 2);
        user_to_wire(text, &mut wire)?;
        Ok(Self {
            wire: wire.into_boxed_slice(),
        })
    }

    /// Reads a possibly compressed name from a DNS message starting at `pos`.
    ///
    /// Returns the name and the offset just after it in the message. Compression pointers must
    /// point strictly backwards (before the start of the label sequence that holds them), which
    /// rules out loops.
    pub fn from_wire(msg: &[u8], pos: usize) -> Result<(Self, usize), NameError> {
        let mut wire = Vec::with_capacity(32);
        let end = read_wire_name(msg, pos, |label| {
            wire.push(label.len() as u8);
            wire.extend(label.iter().map(u8::to_ascii_lowercase));
        })?;
        wire.push(0);
        Ok((
            Self {
                wire: wire.into_boxed_slice(),
            },
            end,
        ))
    }

    /// Builds a name from canonical wire bytes, checking them.
    pub fn from_canonical_wire(bytes: &[u8]) -> Result<Self, NameError> {
        let (name, end) = Self::from_wire(bytes, 0)?;
        if end != bytes.len() {
            return Err(NameError::BadWire);
        }
        Ok(name)
    }

    /// The canonical wire form, root label included.
    pub fn as_wire(&self) -> &[u8] {
        &self.wire
    }

    /// True for the root name.
    pub fn is_root(&self) -> bool {
        self.wire.len() == 1
    }

    /// Iterates over the labels from the leftmost, the root label excluded.
    pub fn labels(&self) -> Labels<'_> {
        Labels { rest: &self.wire }
    }

    /// Number of labels, the root label excluded.
    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// The leftmost label (empty for the root).
    pub fn first_label(&self) -> &[u8] {
        self.labels().next().unwrap_or(&[])
    }

    /// The name with its leftmost label removed; `None` for the root.
    pub fn parent(&self) -> Option<Self> {
        if self.is_root() {
            return None;
        }
        let skip = 1 + self.wire[0] as usize;
        Some(Self {
            wire: self.wire[skip..].into(),
        })
    }

    /// True if `self` is `other` or below it.
    pub fn is_subdomain_of(&self, other: &Self) -> bool {
        wire_is_subdomain(&self.wire, &other.wire)
    }

    /// For a name strictly below `apex`, the name one label below `apex` on the way to it
    /// (`www.foo.tld` under `tld` gives `foo.tld`): the registered domain that a delegation
    /// in a TLD is keyed by.
    pub fn child_of(&self, apex: &Self) -> Option<Self> {
        if !self.is_subdomain_of(apex) || self.wire.len() == apex.wire.len() {
            return None;
        }
        let keep = apex.wire.len();
        let mut pos = 0;
        loop {
            let next = pos + 1 + self.wire[pos] as usize;
            if self.wire.len() - next == keep {
                return Some(Self {
                    wire: self.wire[pos..].into(),
                });
            }
            pos = next;
        }
    }

    /// Prepends a label (used to build `ns1.<domain>` and the like).
    pub fn prepend(&self, label: &str) -> Result<Self, NameError> {
        if self.is_root() {
            Self::from_ascii(label)
        } else {
            Self::from_ascii(&format!("{label}.{self}"))
        }
    }

    /// Checks the host name rules that registries apply to domain and host names
    /// (RFC 952 as relaxed by RFC 1123 §2.1: letters, digits and hyphens, no hyphen at either
    /// end of a label; A-labels `xn--` are LDH too).
    pub fn check_hostname(&self) -> Result<(), NameError> {
        if is_hostname_wire(&self.wire) {
            return Ok(());
        }
        // Not a host name: find the first offence, to say what it is.
        for label in self.labels() {
            for &b in label {
                if !(b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(NameError::BadCharacter(b as char));
                }
            }
            if label.first() == Some(&b'-') || label.last() == Some(&b'-') {
                return Err(NameError::HyphenAtEdge(
                    String::from_utf8_lossy(label).into_owned(),
                ));
            }
        }
        Ok(())
    }

    /// Parses a name to register: [`Name::from_user`] (U-labels become A-labels), then
    /// [`Name::check_registry`].
    pub fn from_registry(text: &str) -> Result<Self, NameError> {
        let name = Self::from_user(text)?;
        name.check_registry()?;
        Ok(name)
    }

    /// Checks the rules for names a registry registers (domains, hosts, zones): the host name
    /// rules of [`Name::check_hostname`], and IDNA2008 (RFC 5890/5891, with UTS #46 as the
    /// mapping): a label with hyphens in its third and fourth positions must be an A-label
    /// (`xn--`), and an A-label must be valid Punycode that decodes to a valid U-label which
    /// encodes back to exactly that A-label (which refuses non-NFC, disallowed code points,
    /// mere ASCII, and other spellings of one U-label).
    pub fn check_registry(&self) -> Result<(), NameError> {
        self.check_hostname()?;
        self.labels().try_for_each(check_idna_label)
    }

    /// Presentation form with the trailing dot, as master files want it.
    pub fn to_fqdn(&self) -> String {
        if self.is_root() {
            ".".to_owned()
        } else {
            format!("{self}.")
        }
    }
}

/// The IDNA2008 rules of [`Name::check_registry`] for one LDH label (lower case).
fn check_idna_label(label: &[u8]) -> Result<(), NameError> {
    if label.get(2..4) != Some(b"--") {
        return Ok(());
    }
    // LDH, as `check_hostname` verified.
    let text = String::from_utf8_lossy(label);
    let Some(punycode) = text.strip_prefix("xn--") else {
        return Err(NameError::ReservedHyphens(text.into_owned()));
    };
    let bad = |why: String| NameError::Idna(format!("{text:?} is not a valid A-label: {why}"));
    let ulabel = idna::punycode::decode_to_string(punycode)
        .ok_or_else(|| bad("its Punycode does not decode".into()))?;
    if ulabel.is_ascii() {
        return Err(bad(format!("it decodes to the ASCII {ulabel:?}")));
    }
    let back = idna::domain_to_ascii_strict(&ulabel)
        .map_err(|_| bad(format!("{ulabel:?} is not a valid U-label")))?;
    if back != text {
        return Err(bad(format!(
            "its U-label {ulabel:?} encodes as {back:?}, not as itself"
        )));
    }
    Ok(())
}

/// Walks the labels of a possibly compressed wire name in `msg` starting at `pos`, giving each
/// label to `f`. Returns the offset just after the name at `pos`. This is the single checked
/// decoder for names in messages: total length ≤ 255, labels ≤ 63 (the 0b01/0b10 label types of
/// RFC 6891 §5 are refused), pointers strictly backwards.
pub fn read_wire_name(
    msg: &[u8],
    mut pos: usize,
    mut f: impl FnMut(&[u8]),
) -> Result<usize, NameError> {
    let mut total = 1usize; // root label
    let mut end: Option<usize> = None;
    // Start of the label run we are reading: a pointer must point before it.
    let mut run_start = pos;
    loop {
        let len = *msg.get(pos).ok_or(NameError::BadWire)? as usize;
        match len & 0xC0 {
            0x00 => {
                if len == 0 {
                    return Ok(end.unwrap_or(pos + 1));
                }
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(NameError::BadWire)?;
                total += 1 + len;
                if total > MAX_NAME_LEN {
                    return Err(NameError::NameTooLong(total));
                }
                f(label);
                pos += 1 + len;
            }
            0xC0 => {
                let low = *msg.get(pos + 1).ok_or(NameError::BadWire)? as usize;
                let target = ((len & 0x3F) << 8) | low;
                if target >= run_start {
                    return Err(NameError::BadPointer);
                }
                if end.is_none() {
                    end = Some(pos + 2);
                }
                pos = target;
                run_start = target;
            }
            _ => return Err(NameError::BadWire),
        }
    }
}

/// Writes the canonical wire form of `text`, a name in presentation form as
/// [`Name::from_ascii`] reads it, into `out` (cleared first). For callers that parse names per
/// request into a buffer they keep (the Whois and RDAP query parsers), so that a query needs no
/// allocation once the buffer has grown to a name's length; [`Name::from_ascii`] is this into a
/// fresh buffer. On error `out` holds an unspecified prefix.
pub fn ascii_to_wire(text: &str, out: &mut Vec<u8>) -> Result<(), NameError> {
    if let Some(wire) = WireBuffer::from_ascii(text.as_bytes()) {
        out.clear();
        out.extend_from_slice(wire.as_slice());
        return Ok(());
    }
    ascii_to_wire_checked(text, out)
}

/// What a presentation-form name may hold, octet by octet: 0 for an octet not allowed (a dot
/// is handled on its own), otherwise the octet folded to lower case.
const FOLDED: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'*' {
            table[b] = c.to_ascii_lowercase();
        }
        b += 1;
    }
    table
};

/// A name's wire form built on the stack: the one pass of [`ascii_to_wire`] over a valid name.
struct WireBuffer {
    bytes: [u8; MAX_NAME_LEN],
    len: usize,
}

impl WireBuffer {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The wire form of `text` if it is a valid name, in one pass over its octets; `None` for
    /// anything else (including "." and every error), which [`ascii_to_wire_checked`] then
    /// reads again to say what is wrong. A state file at 1,000,000 delegations holds about
    /// 4 million names: the start reads each of them.
    fn from_ascii(text: &[u8]) -> Option<Self> {
        let text = text.strip_suffix(b".").unwrap_or(text);
        // Labels and their length octets plus the root label: text.len() + 2 octets.
        if text.is_empty() || text.len() + 2 > MAX_NAME_LEN {
            return None;
        }
        let mut wire = Self {
            bytes: [0; MAX_NAME_LEN],
            len: text.len() + 2,
        };
        let mut label_at = 0; // where the current label's length octet goes
        let mut star = false;
        for (i, &c) in text.iter().enumerate() {
            if c == b'.' {
                let len = i - label_at;
                if !(1..=MAX_LABEL_LEN).contains(&len) || (star && len != 1) {
                    return None;
                }
                wire.bytes[label_at] = len as u8;
                label_at = i + 1;
                star = false;
                continue;
            }
            let folded = FOLDED[usize::from(c)];
            if folded == 0 {
                return None;
            }
            star |= c == b'*';
            wire.bytes[i + 1] = folded;
        }
        let len = text.len() - label_at;
        if !(1..=MAX_LABEL_LEN).contains(&len) || (star && len != 1) {
            return None;
        }
        wire.bytes[label_at] = len as u8;
        // The root label is the last octet, already zero.
        Some(wire)
    }
}

/// [`ascii_to_wire`] label by label, with the error that says what is wrong.
fn ascii_to_wire_checked(text: &str, out: &mut Vec<u8>) -> Result<(), NameError> {
    out.clear();
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    if text == "." {
        out.push(0);
        return Ok(());
    }
    let text = text.strip_suffix('.').unwrap_or(text);
    for label in text.split('.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong(label.len()));
        }
        for c in label.chars() {
            if !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*') {
                return Err(NameError::BadCharacter(c));
            }
        }
        if label.contains('*') && label != "*" {
            return Err(NameError::BadCharacter('*'));
        }
        out.push(label.len() as u8);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    if out.len() > MAX_NAME_LEN {
        return Err(NameError::NameTooLong(out.len()));
    }
    Ok(())
}

/// [`ascii_to_wire`] for a name typed by a person, as [`Name::from_user`] reads it: U-labels
/// become A-labels first (that conversion allocates; an all-ASCII name does not).
pub fn user_to_wire(text: &str, out: &mut Vec<u8>) -> Result<(), NameError> {
    if text.is_ascii() {
        return ascii_to_wire(text, out);
    }
    let ascii = idna::domain_to_ascii_strict(text.trim_end_matches('.'))
        .map_err(|e| NameError::Idna(e.to_string()))?;
    ascii_to_wire(&ascii, out)
}

/// True if canonical wire name `name` is `apex` or below it: [`Name::is_subdomain_of`] for
/// callers that hold only wire bytes (the satellite's tables key by them).
pub fn wire_is_subdomain(name: &[u8], apex: &[u8]) -> bool {
    if apex.len() > name.len() || !name.ends_with(apex) {
        return false;
    }
    // The suffix must start on a label boundary.
    let offset = name.len() - apex.len();
    let mut pos = 0;
    while pos < offset {
        pos += 1 + name[pos] as usize;
    }
    pos == offset
}

/// Whether a canonical wire name follows the host name rules of [`Name::check_hostname`],
/// without saying why not (and so without allocating).
pub fn is_hostname_wire(wire: &[u8]) -> bool {
    Labels { rest: wire }.all(|label| {
        label
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
            && label.first() != Some(&b'-')
            && label.last() != Some(&b'-')
    })
}

/// Iterator over the labels of a [`Name`].
#[derive(Clone)]
pub struct Labels<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = *self.rest.first()? as usize;
        if len == 0 {
            return None;
        }
        let label = &self.rest[1..1 + len];
        self.rest = &self.rest[1 + len..];
        Some(label)
    }
}

/// Writes a name given in (uncompressed) wire form as presentation text, without the trailing
/// dot (`.` for the root): what [`Name`]'s `Display` shows, for callers that hold only the wire
/// bytes (the satellite's tables key by them) and write into a buffer of their own.
///
/// Labels only ever hold the characters [`Name::from_ascii`] accepts or, from the wire,
/// arbitrary octets: those are escaped as master files do (`\DDD`, RFC 1035 §5.1). Malformed
/// input never panics: a label running past the end is cut there, and the root label (or the
/// end of the bytes) ends the name.
pub fn write_wire_name<W: fmt::Write + ?Sized>(wire: &[u8], out: &mut W) -> fmt::Result {
    let mut rest = wire;
    let mut first = true;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 0 {
            break;
        }
        let (label, after) = tail.split_at((len as usize).min(tail.len()));
        if !first {
            out.write_char('.')?;
        }
        first = false;
        let mut plain = 0;
        for (i, &b) in label.iter().enumerate() {
            if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*') {
                // Runs of plain characters go out in one write.
                out.write_str(ascii(&label[plain..i]))?;
                write!(out, "\\{b:03}")?;
                plain = i + 1;
            }
        }
        out.write_str(ascii(&label[plain..]))?;
        rest = after;
    }
    if first {
        out.write_char('.')?;
    }
    Ok(())
}

/// Octets already checked to be ASCII letters, digits, `-`, `_` or `*`.
fn ascii(octets: &[u8]) -> &str {
    std::str::from_utf8(octets).unwrap_or_default()
}

impl fmt::Display for Name {
    /// Presentation form without the trailing dot (`.` for the root): the stored form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_wire_name(&self.wire, f)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

impl std::str::FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::from_ascii(s)
    }
}

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_user(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass parser gives what the label-by-label one gives, for valid names and for
    /// every kind of error (which it leaves to the other): names at the length limits, labels
    /// of 63 and 64 octets, wildcards, dots in every place, upper case, non-ASCII, and
    /// 300,000 strings drawn from the characters that matter.
    #[test]
    fn the_one_pass_parser_agrees_with_the_checked_one() {
        let check = |text: &str| {
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            let fast_result = ascii_to_wire(text, &mut fast);
            let slow_result = ascii_to_wire_checked(text, &mut slow);
            assert_eq!(fast_result, slow_result, "{text:?}");
            if slow_result.is_ok() {
                assert_eq!(fast, slow, "{text:?}");
                assert_eq!(
                    Name::from_ascii(text).unwrap().as_wire(),
                    &slow[..],
                    "{text:?}"
                );
            }
        };
        let label = |n: usize| "a".repeat(n);
        let mut fixed = vec![
            String::new(),
            ".".into(),
            "..".into(),
            "a..b".into(),
            ".a".into(),
            "a.".into(),
            "a..".into(),
            "*".into(),
            "*.a".into(),
            "a*.b".into(),
            "**.b".into(),
            "a.*".into(),
            "A-B_c.EXAMPLE".into(),
            "é.test".into(),
            "a b.test".into(),
            format!("{}.test", label(63)),
            format!("{}.test", label(64)),
            format!("{}.{}", label(63), label(64)),
        ];
        // Names of 253 to 256 octets of text, with and without a trailing dot: the wire limit
        // of 255 octets falls between them.
        for total in 250..=257 {
            let mut name = String::new();
            while name.len() < total {
                if !name.is_empty() {
                    name.push('.');
                }
                let room = (total - name.len()).min(60);
                name.push_str(&label(room));
            }
            fixed.push(name.clone());
            fixed.push(format!("{name}."));
        }
        for text in &fixed {
            check(text);
        }
        let alphabet = ['a', 'Z', '0', '-', '_', '*', '.', '.', 'é', ' '];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300_000 {
            let len = (next() % 12) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            check(&text);
        }
    }

    #[test]
    fn registry_names_follow_idna2008() {
        for bad in ["xn--zz.test", "xn--a.test", "xn--ab--c.test"] {
            let err = Name::from_registry(bad).unwrap_err();
            assert!(
                matches!(&err, NameError::Idna(m) if m.contains("not a valid A-label")),
                "{bad}: {err}"
            );
        }
        // RFC 5891 §4.2.3.1: `--` in positions 3-4 only for A-labels.
        assert_eq!(
            Name::from_registry("ab--cd.test"),
            Err(NameError::ReservedHyphens("ab--cd".into()))
        );
        // Not even LDH, and a Punycode that does not encode the U-label it decodes to.
        assert!(Name::from_registry("xn--.test").is_err());
        // An upper-case U-label (`bÜcher`) and a non-NFC one (`bu` + U+0308 `cher`): UTS #46
        // maps both to `bücher`, whose A-label is another.
        for bad in ["xn--bcher-2pa.test", "xn--bucher-xyd.test"] {
            let err = Name::from_registry(bad).unwrap_err();
            assert!(err.to_string().contains("not as itself"), "{bad}: {err}");
        }
        // Valid IDNs, as A-labels or U-labels (mapped by UTS #46, NFC).
        for (input, a) in [
            ("xn--bcher-kva.test", "xn--bcher-kva.test"),
            ("bücher.test", "xn--bcher-kva.test"),
            ("BÜCHER.test", "xn--bcher-kva.test"),
            ("xn--mnchen-3ya.de", "xn--mnchen-3ya.de"),
            ("пример.test", "xn--e1afmkfd.test"),
            ("a-b--c.test", "a-b--c.test"),
            ("ab-cd.test", "ab-cd.test"),
        ] {
            assert_eq!(
                Name::from_registry(input).unwrap().to_string(),
                a,
                "{input}"
            );
        }
        // A non-NFC U-label is normalised, never stored as is.
        assert_eq!(
            Name::from_registry("bu\u{0308}cher.test")
                .unwrap()
                .to_string(),
            "xn--bcher-kva.test"
        );
        // The DNS side is untouched: such names still parse (a query for them is NXDOMAIN).
        assert!(Name::from_ascii("ab--cd.test").is_ok());
        assert!(
            Name::from_ascii("xn--zz.test")
                .unwrap()
                .check_hostname()
                .is_ok()
        );
    }

    #[test]
    fn parses_and_folds_case() {
        let n = Name::from_ascii("WWW.Example.TLD.").unwrap();
        assert_eq!(n.to_string(), "www.example.tld");
        assert_eq!(n.to_fqdn(), "www.example.tld.");
        assert_eq!(n.label_count(), 3);
        assert_eq!(n, Name::from_ascii("www.example.tld").unwrap());
        assert_eq!(n.as_wire(), b"\x03www\x07example\x03tld\x00");
    }

    #[test]
    fn refuses_bad_text() {
        assert_eq!(Name::from_ascii(""), Err(NameError::Empty));
        assert_eq!(Name::from_ascii("a..b"), Err(NameError::EmptyLabel));
        assert_eq!(
            Name::from_ascii(&"a".repeat(64)),
            Err(NameError::LabelTooLong(64))
        );
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(Name::from_ascii(&long), Err(NameError::NameTooLong(257)));
        let ok = [
            "a".repeat(63),
            "a".repeat(63),
            "a".repeat(63),
            "a".repeat(61),
        ]
        .join(".");
        assert_eq!(Name::from_ascii(&ok).unwrap().as_wire().len(), 255);
        assert_eq!(Name::from_ascii("a b"), Err(NameError::BadCharacter(' ')));
        assert_eq!(Name::from_ascii("a*.b"), Err(NameError::BadCharacter('*')));
        assert!(Name::from_ascii("*.b").is_ok());
    }

    #[test]
    fn hostname_rules() {
        assert!(
            Name::from_ascii("xn--bcher-kva.tld")
                .unwrap()
                .check_hostname()
                .is_ok()
        );
        assert!(matches!(
            Name::from_ascii("-a.tld").unwrap().check_hostname(),
            Err(NameError::HyphenAtEdge(_))
        ));
        assert!(
            Name::from_ascii("_dmarc.tld")
                .unwrap()
                .check_hostname()
                .is_err()
        );
    }

    #[test]
    fn idn_to_a_label() {
        let n = Name::from_user("Bücher.tld").unwrap();
        assert_eq!(n.to_string(), "xn--bcher-kva.tld");
        assert!(matches!(
            Name::from_user("a b\u{e9}.tld"),
            Err(NameError::Idna(_))
        ));
    }

    #[test]
    fn hierarchy() {
        let tld = Name::from_ascii("tld").unwrap();
        let www = Name::from_ascii("www.foo.tld").unwrap();
        assert!(www.is_subdomain_of(&tld));
        assert!(!Name::from_ascii("xtld").unwrap().is_subdomain_of(&tld));
        assert!(!Name::from_ascii("a.xtld").unwrap().is_subdomain_of(&tld));
        assert!(www.is_subdomain_of(&Name::root()));
        assert_eq!(www.child_of(&tld).unwrap().to_string(), "foo.tld");
        assert_eq!(tld.child_of(&tld), None);
        assert_eq!(www.parent().unwrap().to_string(), "foo.tld");
        assert_eq!(Name::root().parent(), None);
        assert_eq!(tld.prepend("ns1").unwrap().to_string(), "ns1.tld");
    }

    #[test]
    fn writes_wire_names_as_text() {
        let text = |wire: &[u8]| {
            let mut s = String::from(">");
            write_wire_name(wire, &mut s).unwrap();
            s
        };
        let n = Name::from_ascii("NS1.Foo.tld").unwrap();
        assert_eq!(text(n.as_wire()), ">ns1.foo.tld");
        assert_eq!(text(n.as_wire()), format!(">{n}"));
        assert_eq!(text(b"\x00"), ">.");
        assert_eq!(text(b""), ">.");
        assert_eq!(text(b"\x01*\x03a_b\x00"), ">*.a_b");
        // Other octets are escaped; malformed input is cut, never a panic.
        assert_eq!(text(b"\x03a.\xff\x01\x0a\x00"), ">a\\046\\255.\\010");
        assert_eq!(text(b"\x05ab"), ">ab");
        assert_eq!(text(b"\x02ab\x03cd"), ">ab.cd");
    }

    #[test]
    fn wire_decoding_checks_pointers() {
        // "foo.tld" at 0, then a pointer to it at 9: fine.
        let mut msg = b"\x03foo\x03tld\x00".to_vec();
        msg.extend_from_slice(b"\x03www\xC0\x00");
        let (n, end) = Name::from_wire(&msg, 9).unwrap();
        assert_eq!(n.to_string(), "www.foo.tld");
        assert_eq!(end, msg.len());
        // A pointer to itself, or forwards, is refused.
        assert_eq!(Name::from_wire(b"\xC0\x00", 0), Err(NameError::BadPointer));
        assert_eq!(
            Name::from_wire(b"\x01a\xC0\x04\x00", 0),
            Err(NameError::BadPointer)
        );
        // Two pointers that point at each other.
        assert_eq!(
            Name::from_wire(b"\xC0\x02\xC0\x00", 2).map(|_| ()),
            Err(NameError::BadPointer)
        );
        // Truncated and reserved label types.
        assert_eq!(Name::from_wire(b"\x05ab", 0), Err(NameError::BadWire));
        assert_eq!(Name::from_wire(b"\x41a\x00", 0), Err(NameError::BadWire));
        assert_eq!(
            Name::from_canonical_wire(b"\x03foo\x00")
                .unwrap()
                .to_string(),
            "foo"
        );
    }
}
