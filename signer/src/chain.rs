//! The NSEC3 chain of a zone kept between batches (RFC 5155 §7.1): a table of hashed owner
//! names in hash order, each with its name and type bit map, and for every name the number of
//! chain names below it (what makes an empty non-terminal).
//!
//! The incremental signer (`crate::incremental`) changes entries one name at a time and reads
//! back which NSEC3 records changed: an entry whose presence changed changes its own record
//! and its predecessor's (the next-hash field); one whose types changed, its own only.

use std::collections::{BTreeMap, HashMap};

use orrery_proto::Name;

use crate::nsec3;

/// One NSEC3 chain entry: the name whose hash it is and the types its record lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: Name,
    pub types: Vec<u16>,
    /// True for a name with data (apex, authoritative name, secure delegation); false for an
    /// empty non-terminal.
    pub listed: bool,
}

/// Two chain names with one hash: a zone cannot be signed with NSEC3 then (RFC 5155 §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub a: Name,
    pub b: Name,
}

/// What [`Nsec3Chain::set`] changed at a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryChange {
    /// Nothing.
    Same,
    /// The entry's types (its own NSEC3 record).
    Types([u8; 20]),
    /// The entry came or went (its record, and its predecessor's next hash).
    Presence([u8; 20]),
}

/// The NSEC3 chain as a sorted table of hashes.
#[derive(Debug, Default)]
pub struct Nsec3Chain {
    entries: BTreeMap<[u8; 20], Entry>,
    /// Name → how many listed names are strictly below it (above the apex, not counted).
    below: HashMap<Name, u32>,
}

/// The owner hash of `name` with RFC 9276's parameters.
pub fn hash(name: &Name) -> [u8; 20] {
    nsec3::hash(name, nsec3::SALT, nsec3::ITERATIONS)
}

impl Nsec3Chain {
    /// The number of entries (NSEC3 records).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the chain has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at `h`.
    pub fn get(&self, h: &[u8; 20]) -> Option<&Entry> {
        self.entries.get(h)
    }

    /// The entries in hash order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8; 20], &Entry)> {
        self.entries.iter()
    }

    /// True when `name` is in the chain as a name with data.
    pub fn is_listed(&self, name: &Name) -> bool {
        self.entries
            .get(&hash(name))
            .is_some_and(|e| e.listed && &e.name == name)
    }

    /// How many listed names are below `name`.
    pub fn below(&self, name: &Name) -> u32 {
        self.below.get(name).copied().unwrap_or(0)
    }

    /// Counts `name` in (`listed`) or out of the names below each of its ancestors strictly
    /// between it and `apex`, and appends those ancestors to `touched` (their empty
    /// non-terminal entry may come or go).
    pub fn count_below(&mut self, apex: &Name, name: &Name, listed: bool, touched: &mut Vec<Name>) {
        let mut up = name.parent();
        while let Some(p) = up {
            if &p == apex || !p.is_subdomain_of(apex) {
                break;
            }
            if listed {
                *self.below.entry(p.clone()).or_default() += 1;
            } else if let Some(n) = self.below.get_mut(&p) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.below.remove(&p);
                }
            }
            up = p.parent();
            touched.push(p);
        }
    }

    /// Makes `name`'s entry `want` (`None`: not in the chain).
    pub fn set(&mut self, name: &Name, want: Option<Entry>) -> Result<EntryChange, Collision> {
        self.set_at(hash(name), name, want)
    }

    /// [`Nsec3Chain::set`] at a given hash (tests give colliding hashes).
    pub(crate) fn set_at(
        &mut self,
        h: [u8; 20],
        name: &Name,
        want: Option<Entry>,
    ) -> Result<EntryChange, Collision> {
        match (self.entries.get_mut(&h), want) {
            (Some(e), want) if &e.name != name => match want {
                Some(_) => Err(Collision {
                    a: e.name.clone(),
                    b: name.clone(),
                }),
                None => Ok(EntryChange::Same),
            },
            (None, None) => Ok(EntryChange::Same),
            (None, Some(w)) => {
                self.entries.insert(h, w);
                Ok(EntryChange::Presence(h))
            }
            (Some(_), None) => {
                self.entries.remove(&h);
                Ok(EntryChange::Presence(h))
            }
            (Some(e), Some(w)) if *e == w => Ok(EntryChange::Same),
            (Some(e), Some(w)) => {
                *e = w;
                Ok(EntryChange::Types(h))
            }
        }
    }

    /// The hash after `h` in the chain, wrapping to the first (RFC 5155 §3.1.7: the last
    /// record's next hash is the first owner's).
    pub fn next(&self, h: &[u8; 20]) -> Option<&[u8; 20]> {
        use std::ops::Bound::{Excluded, Unbounded};
        self.entries
            .range::<[u8; 20], _>((Excluded(h), Unbounded))
            .next()
            .or_else(|| self.entries.iter().next())
            .map(|(k, _)| k)
    }

    /// The entry before `h` (present or not) in the chain, wrapping to the last: the record
    /// whose next hash changes when `h` comes or goes.
    pub fn prev(&self, h: &[u8; 20]) -> Option<&[u8; 20]> {
        self.entries
            .range::<[u8; 20], _>(..h)
            .next_back()
            .or_else(|| self.entries.iter().next_back())
            .map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn listed(name: &str) -> Entry {
        Entry {
            name: n(name),
            types: vec![2, 43, 46],
            listed: true,
        }
    }

    #[test]
    fn next_and_prev_wrap_around_the_table() {
        let mut c = Nsec3Chain::default();
        assert_eq!(c.next(&[0; 20]), None);
        for (h, name) in [(10u8, "a.test"), (20, "b.test"), (30, "c.test")] {
            let r = c.set_at([h; 20], &n(name), Some(listed(name))).unwrap();
            assert_eq!(r, EntryChange::Presence([h; 20]));
        }
        assert_eq!(c.next(&[10; 20]), Some(&[20; 20]));
        assert_eq!(
            c.next(&[30; 20]),
            Some(&[10; 20]),
            "the last points at the first"
        );
        assert_eq!(
            c.prev(&[10; 20]),
            Some(&[30; 20]),
            "the first's predecessor is the last"
        );
        // An absent hash's predecessor: the record whose next hash it would change.
        assert_eq!(c.prev(&[25; 20]), Some(&[20; 20]));
        assert_eq!(c.prev(&[5; 20]), Some(&[30; 20]));
        // One entry points at itself.
        let mut one = Nsec3Chain::default();
        one.set_at([7; 20], &n("test"), Some(listed("test")))
            .unwrap();
        assert_eq!(one.next(&[7; 20]), Some(&[7; 20]));
        assert_eq!(one.prev(&[7; 20]), Some(&[7; 20]));
    }

    #[test]
    fn set_tells_what_changed_and_refuses_a_collision() {
        let mut c = Nsec3Chain::default();
        let h = [1; 20];
        assert_eq!(
            c.set_at(h, &n("a.test"), Some(listed("a.test"))).unwrap(),
            EntryChange::Presence(h)
        );
        assert_eq!(
            c.set_at(h, &n("a.test"), Some(listed("a.test"))).unwrap(),
            EntryChange::Same
        );
        let mut fewer = listed("a.test");
        fewer.types = vec![2, 46];
        assert_eq!(
            c.set_at(h, &n("a.test"), Some(fewer)).unwrap(),
            EntryChange::Types(h)
        );
        let err = c
            .set_at(h, &n("b.test"), Some(listed("b.test")))
            .unwrap_err();
        assert_eq!(
            err,
            Collision {
                a: n("a.test"),
                b: n("b.test")
            }
        );
        // Leaving out a name whose hash is another's touches nothing.
        assert_eq!(c.set_at(h, &n("b.test"), None).unwrap(), EntryChange::Same);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.set_at(h, &n("a.test"), None).unwrap(),
            EntryChange::Presence(h)
        );
        assert!(c.is_empty());
    }

    #[test]
    fn names_below_count_up_to_the_apex_only() {
        let mut c = Nsec3Chain::default();
        let apex = n("test");
        let mut touched = Vec::new();
        c.count_below(&apex, &n("x.b.a.test"), true, &mut touched);
        assert_eq!(touched, [n("b.a.test"), n("a.test")]);
        c.count_below(&apex, &n("y.a.test"), true, &mut Vec::new());
        assert_eq!(c.below(&n("a.test")), 2);
        assert_eq!(c.below(&n("b.a.test")), 1);
        assert_eq!(c.below(&apex), 0, "the apex is not counted");
        c.count_below(&apex, &n("x.b.a.test"), false, &mut Vec::new());
        assert_eq!(c.below(&n("b.a.test")), 0);
        assert_eq!(c.below(&n("a.test")), 1);
        assert!(!c.is_listed(&n("a.test")));
        // The real hash: a listed entry is found by name.
        c.set(&n("a.test"), Some(listed("a.test"))).unwrap();
        assert!(c.is_listed(&n("a.test")));
    }
}
