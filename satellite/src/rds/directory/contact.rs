//! Contacts as the directory stores them: one byte record each, read through a
//! [`ContactView`].
//!
//! The model's [`Contact`] is a dozen separate `String`s (about 290 bytes inline and some 300
//! more in allocator chunks for a typical contact), and a registry may have as many contacts
//! as domains. The record is: flags, the street count, the two dates (zigzag varints: five
//! bytes each for today's dates), the length of each field (a varint, one byte below 128),
//! then the fields' text back to back. The handle is the record's key, not repeated here.
//!
//! Each field is cut (at a character boundary) to `FIELD_MAX` = 4096 bytes, so the view's
//! `u16` ends cannot overflow. EPP's longest fields (RFC 5733: 255 characters for names,
//! street lines and cities) are at most 1020 bytes in UTF-8, so registry data is never cut.

use orrery_proto::{Contact, Timestamp};

use super::bytes::{Reader, put_signed, put_varint};

/// Field indexes in a record; the street lines come last, from `F_STREET`.
const F_NAME: usize = 0;
const F_ORGANISATION: usize = 1;
const F_CITY: usize = 2;
const F_PROVINCE: usize = 3;
const F_POSTCODE: usize = 4;
const F_COUNTRY: usize = 5;
const F_EMAIL: usize = 6;
const F_VOICE: usize = 7;
const F_FAX: usize = 8;
const F_STREET: usize = 9;
/// The most street lines EPP allows (RFC 5733 §2.4.1); the link refuses contacts with more.
const MAX_STREETS: usize = 3;
const FIELDS: usize = F_STREET + MAX_STREETS;
/// The longest field held, in bytes: every field at its longest still fits `u16` ends.
pub(super) const FIELD_MAX: usize = 4096;
const _: () = assert!(FIELDS * FIELD_MAX <= u16::MAX as usize);

const DISCLOSE: u8 = 1;
/// The presence bit of optional field `F_*` (`None` and `Some("")` differ, so the field alone
/// cannot tell).
const fn present(field: usize) -> u8 {
    match field {
        F_ORGANISATION => 1 << 1,
        F_PROVINCE => 1 << 2,
        F_POSTCODE => 1 << 3,
        F_VOICE => 1 << 4,
        F_FAX => 1 << 5,
        _ => 0,
    }
}

/// Appends the record of `c` to `out`.
pub(super) fn encode(c: &Contact, out: &mut Vec<u8>) {
    // Street lines past EPP's three (only a hand-made snapshot could hold them) are kept,
    // joined to the third, rather than dropped.
    let rest;
    let mut street = [""; MAX_STREETS];
    for (slot, line) in street.iter_mut().zip(&c.street) {
        *slot = line;
    }
    if c.street.len() > MAX_STREETS {
        rest = c.street[MAX_STREETS - 1..].join(", ");
        street[MAX_STREETS - 1] = &rest;
    }
    let streets = c.street.len().min(MAX_STREETS);
    let mut fields: [Option<&str>; FIELDS] = [None; FIELDS];
    fields[F_NAME] = Some(&c.name);
    fields[F_ORGANISATION] = c.organisation.as_deref();
    fields[F_CITY] = Some(&c.city);
    fields[F_PROVINCE] = c.province.as_deref();
    fields[F_POSTCODE] = c.postcode.as_deref();
    fields[F_COUNTRY] = Some(&c.country);
    fields[F_EMAIL] = Some(&c.email);
    fields[F_VOICE] = c.voice.as_deref();
    fields[F_FAX] = c.fax.as_deref();
    for (i, line) in street[..streets].iter().enumerate() {
        fields[F_STREET + i] = Some(line);
    }
    let fields = &fields[..F_STREET + streets];
    let clip = |s: &str| -> usize { s.floor_char_boundary(FIELD_MAX) };
    let mut flags = if c.disclose { DISCLOSE } else { 0 };
    for (i, field) in fields.iter().enumerate() {
        if field.is_some() {
            flags |= present(i);
        }
    }
    out.push(flags);
    out.push(streets as u8);
    put_signed(out, c.created.0);
    put_signed(out, c.updated.0);
    for f in fields {
        put_varint(out, f.map_or(0, clip) as u64);
    }
    for f in fields.iter().flatten() {
        out.extend_from_slice(&f.as_bytes()[..clip(f)]);
    }
}

/// A contact as Whois and RDAP read it, decoded from its record without allocating.
#[derive(Clone, Copy, Debug)]
pub struct ContactView<'a> {
    handle: &'a str,
    /// The fields back to back.
    text: &'a str,
    /// End offset in `text` of each field held.
    ends: [u16; FIELDS],
    flags: u8,
    /// Street lines held, at most `MAX_STREETS`.
    streets: u8,
    created: i64,
    updated: i64,
}

impl<'a> ContactView<'a> {
    /// The contact `handle` from its record (a damaged record reads as empty fields).
    pub(super) fn decode(handle: &'a str, record: &'a [u8]) -> Self {
        let mut r = Reader::new(record);
        let flags = r.byte();
        let streets = r.byte().min(MAX_STREETS as u8);
        let created = r.signed();
        let updated = r.signed();
        let mut ends = [0u16; FIELDS];
        let mut end = 0usize;
        for e in &mut ends[..F_STREET + usize::from(streets)] {
            end = end.saturating_add(usize::try_from(r.varint()).unwrap_or(usize::MAX));
            *e = end.min(FIELDS * FIELD_MAX) as u16;
        }
        let text = std::str::from_utf8(r.rest()).unwrap_or_default();
        Self {
            handle,
            text,
            ends,
            flags,
            streets,
            created,
            updated,
        }
    }

    /// Field `i` (`F_*`).
    fn field(&self, i: usize) -> &'a str {
        let start = i.checked_sub(1).map_or(0, |p| usize::from(self.ends[p]));
        let end = self.ends.get(i).map_or(0, |&e| usize::from(e));
        // Ends fall on character boundaries by construction; `get` keeps this panic-free.
        self.text.get(start..end).unwrap_or_default()
    }

    /// Optional field `i`: `None` unless its presence bit is set.
    fn optional(&self, i: usize) -> Option<&'a str> {
        (self.flags & present(i) != 0).then(|| self.field(i))
    }

    /// The registry's ID of the contact (EPP `contact:id`).
    pub fn handle(&self) -> &'a str {
        self.handle
    }

    pub fn name(&self) -> &'a str {
        self.field(F_NAME)
    }

    pub fn organisation(&self) -> Option<&'a str> {
        self.optional(F_ORGANISATION)
    }

    /// Street lines, at most three (RFC 5733 §2.4.1).
    pub fn street(&self) -> impl ExactSizeIterator<Item = &'a str> + Clone + use<'a> {
        let me = *self;
        (F_STREET..F_STREET + usize::from(self.streets)).map(move |i| me.field(i))
    }

    pub fn city(&self) -> &'a str {
        self.field(F_CITY)
    }

    pub fn province(&self) -> Option<&'a str> {
        self.optional(F_PROVINCE)
    }

    pub fn postcode(&self) -> Option<&'a str> {
        self.optional(F_POSTCODE)
    }

    /// ISO 3166-1 alpha-2.
    pub fn country(&self) -> &'a str {
        self.field(F_COUNTRY)
    }

    pub fn email(&self) -> &'a str {
        self.field(F_EMAIL)
    }

    pub fn voice(&self) -> Option<&'a str> {
        self.optional(F_VOICE)
    }

    pub fn fax(&self) -> Option<&'a str> {
        self.optional(F_FAX)
    }

    /// True when the contact agreed to publication; false means Whois/RDAP redact.
    pub fn disclose(&self) -> bool {
        self.flags & DISCLOSE != 0
    }

    pub fn created(&self) -> Timestamp {
        Timestamp(self.created)
    }

    pub fn updated(&self) -> Timestamp {
        Timestamp(self.updated)
    }
}
