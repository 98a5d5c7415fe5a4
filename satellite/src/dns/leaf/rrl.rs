//! Leaf `rrl`: response rate limiting, the defence against using the satellite as an
//! amplifier for spoofed-source floods, as Knot (`mod-rrl`) and NSD (`rrl-*`) do it.
//!
//! The leaf looks at answers, not queries: it is placed early in the chain (after
//! `statistics`), so that every answer of the leaves after it — errors of `validate_query`,
//! refusals of `acl`, CHAOS answers, lookups — passes it on the way out
//! ([`Leaf::outgoing`]). For each UDP answer:
//! - the source is reduced to its prefix (IPv4 /24, IPv6 /56 by default; IPv4-mapped IPv6 as
//!   IPv4) and the answer classified ([`ResponseClass`]: positive, NODATA, NXDOMAIN,
//!   referral, error, as Knot and NSD classify);
//! - one token is taken from the bucket of (prefix, class): `rate` tokens a second, at most
//!   `rate × window` (so the rate is measured over `window` seconds, and a quiet source may
//!   send that many at once);
//! - over the limit, every `slip`-th limited answer of the bucket goes out truncated (header
//!   and question, TC set: a real client retries over TCP), the others are dropped; `slip = 0`
//!   drops all, `slip = 1` truncates all.
//!
//! TCP answers are never limited (a TCP client proved its address by the handshake), nor
//! answers to `exempt` prefixes. The bucket key is the prefix and the class, without the query
//! name: a registry's answers are nearly all referrals to a million different names, and a key
//! with the name would let a flood spread over them. A legitimate resolver sharing a prefix
//! with a flood's victim still gets the slips, and TCP.
//!
//! Off by default: a chain without the leaf does none of this. The buckets are a fixed
//! lock-free table ([`table`]) allocated when the leaf is built; an answer costs a clock read,
//! a hash, one or two cache lines and a compare-and-swap. No allocation, no lock.

mod table;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hashbrown::DefaultHashBuilder;
use orrery_proto::Prefix;

use crate::dns::leaf::{Ctx, Dns};
use crate::dns::wire::{Event, Limited, Response, Section, Transport, rcode};
use crate::rds::rate_limit::{Limit, source_bits, unmapped};
use crate::selector::{Flow, Leaf, Outgoing};
use table::{Table, Verdict};

pub use orrery_proto::selector::RrlConfig;

/// What kind of answer a response is, as Knot and NSD classify them: a flood of one kind does
/// not use up the budget of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseClass {
    /// NOERROR with an answer.
    Positive,
    /// Authoritative NOERROR without an answer.
    NoData,
    Nxdomain,
    /// NOERROR without an answer and without AA, with NS in authority.
    Referral,
    /// Any other rcode (FORMERR, REFUSED, NOTIMP, …).
    Error,
}

impl ResponseClass {
    /// Classifies a finished response.
    pub fn of(r: &Response) -> Self {
        match r.rcode {
            rcode::NOERROR if r.count(Section::Answer) > 0 => Self::Positive,
            rcode::NOERROR if !r.authoritative && r.count(Section::Authority) > 0 => Self::Referral,
            rcode::NOERROR => Self::NoData,
            rcode::NXDOMAIN => Self::Nxdomain,
            _ => Self::Error,
        }
    }
}

/// The response rate limiting leaf.
pub struct Rrl {
    name: String,
    limit: Limit,
    slip: u32,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    exempt: Vec<Prefix>,
    table: Table,
    /// Time zero of the buckets.
    epoch: Instant,
    /// Hashes bucket keys; randomly seeded, so that a flood cannot aim at one neighbourhood.
    hasher: DefaultHashBuilder,
    limited: AtomicU64,
    slipped: AtomicU64,
    dropped: AtomicU64,
    untracked: AtomicU64,
}

impl Rrl {
    /// Validates the configuration and allocates the table.
    pub fn new(name: String, config: &RrlConfig) -> Result<Self, String> {
        let limit = Limit::new(f64::from(config.rate), "rate", config.burst()?, "window")?;
        Ok(Self {
            name,
            limit,
            slip: config.slip,
            ipv4_prefix: config.ipv4_prefix,
            ipv6_prefix: config.ipv6_prefix,
            exempt: config.exempt_prefixes()?,
            table: Table::new(config.table_size),
            epoch: Instant::now(),
            hasher: DefaultHashBuilder::default(),
            limited: AtomicU64::new(0),
            slipped: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
        })
    }

    /// The verdict on one UDP answer of `class` to `peer` at `now`.
    fn check(&self, peer: std::net::IpAddr, class: ResponseClass, now: Instant) -> Verdict {
        let (v6, bits) = source_bits(unmapped(peer), self.ipv4_prefix, self.ipv6_prefix);
        let hash = self.hasher.hash_one((bits, v6, class));
        let nanos =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        self.table.check(hash, &self.limit, nanos)
    }
}

impl Leaf<Dns> for Rrl {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, _ev: &mut Event, _ctx: &Ctx<'_>) -> Flow {
        Flow::Continue
    }

    fn inspects_responses(&self) -> bool {
        true
    }

    fn outgoing(&self, ev: &mut Event, _ctx: &Ctx<'_>) -> Outgoing {
        if ev.transport == Transport::Tcp || self.exempt.iter().any(|p| p.contains(ev.peer)) {
            return Outgoing::Send;
        }
        let class = ResponseClass::of(&ev.response);
        match self.check(ev.peer, class, Instant::now()) {
            Verdict::Allow => Outgoing::Send,
            Verdict::Untracked => {
                self.untracked.fetch_add(1, Ordering::Relaxed);
                Outgoing::Send
            }
            Verdict::Limited { nth } => {
                self.limited.fetch_add(1, Ordering::Relaxed);
                if self.slip != 0 && nth.is_multiple_of(self.slip) {
                    self.slipped.fetch_add(1, Ordering::Relaxed);
                    ev.limited = Limited::Slipped;
                    ev.response.truncate_to_question();
                    Outgoing::Send
                } else {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    ev.limited = Limited::Dropped;
                    Outgoing::Drop
                }
            }
        }
    }

    fn counters(&self, report: &mut dyn FnMut(&str, u64)) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        report("limited", get(&self.limited));
        report("slipped", get(&self.slipped));
        report("dropped", get(&self.dropped));
        report("untracked", get(&self.untracked));
        report("buckets", self.table.used() as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use hickory_proto::op::{Message, ResponseCode};

    use super::*;
    use crate::dns::leaf::SelectorConfig;
    use crate::dns::pipeline::Pipeline;
    use crate::dns::wire::tests::{EDNS, query_packet};
    use crate::dns::wire::{class, rtype};
    use crate::selector::Selector;
    use crate::selector::Service;
    use crate::stats::Outcome;
    use crate::zone::tests::sample;
    use crate::{Served, ServedStore};

    /// The test pipeline (whose ACL refuses 192.0.2.0/24) with an `rrl` leaf after `stats`: a burst of 5, then one answer a
    /// second (a test takes far less than a second, so it sees no refill).
    fn chains(extra: &str) -> String {
        crate::dns::leaf::tests::CHAINS
            .replace(
                "[leaves.validate]",
                &format!(
                    "[leaves.rrl]\nkind = \"rrl\"\nrate = 1\nwindow = 5\n{extra}\n[leaves.validate]"
                ),
            )
            .replace(
                "[\"stats\", \"validate\"",
                "[\"stats\", \"rrl\", \"validate\"",
            )
    }

    /// The pipeline over the sample zones, with the chains of [`chains`].
    fn selector(extra: &str) -> Pipeline {
        let config: SelectorConfig = toml::from_str(&chains(extra)).unwrap();
        Pipeline::new(
            Selector::<Dns>::build(&config).unwrap(),
            Arc::new(ServedStore::new(Served::dns_only(sample()))),
            None,
        )
    }

    /// Sends `packet` from `peer`: the answer, or `None` when dropped.
    fn ask(sel: &Pipeline, peer: &str, packet: &[u8], transport: Transport) -> Option<Message> {
        let mut ev = Event::new();
        sel.handle(packet, peer.parse().unwrap(), transport, &mut ev)
            .map(|answer| Message::from_vec(answer).unwrap())
    }

    fn counters(sel: &Pipeline) -> BTreeMap<String, u64> {
        let mut seen = BTreeMap::new();
        sel.selector.counters(&mut |leaf, counter, value| {
            seen.insert(format!("{leaf}.{counter}"), value);
        });
        seen
    }

    /// Answers, truncated answers and drops among `n` queries.
    fn tally(sel: &Pipeline, peer: &str, packet: &[u8], n: usize) -> (usize, usize, usize) {
        let (mut full, mut tc, mut dropped) = (0, 0, 0);
        for _ in 0..n {
            match ask(sel, peer, packet, Transport::Udp) {
                Some(m) if m.truncation => {
                    assert!(m.answers.is_empty() && m.authorities.is_empty());
                    assert_eq!(m.additionals.len(), 0);
                    tc += 1;
                }
                Some(_) => full += 1,
                None => dropped += 1,
            }
        }
        (full, tc, dropped)
    }

    #[test]
    fn a_flood_is_limited_and_slipped_others_are_answered() {
        let sel = selector("slip = 3");
        let referral = query_packet("www.foo.tld", rtype::A, class::IN, None);
        // The burst (5), then one in three of the limited answers truncated.
        assert_eq!(tally(&sel, "198.51.100.7", &referral, 35), (5, 10, 20));
        // Another address of the same /24 shares the bucket; another /24 does not.
        assert_eq!(tally(&sel, "198.51.100.200", &referral, 3), (0, 1, 2));
        assert_eq!(tally(&sel, "198.51.101.1", &referral, 5), (5, 0, 0));
        // Another class from the flooded prefix has its own budget.
        let nxdomain = query_packet("nope.tld", rtype::A, class::IN, None);
        let m = ask(&sel, "198.51.100.7", &nxdomain, Transport::Udp).unwrap();
        assert_eq!(m.response_code, ResponseCode::NXDomain);
        // TCP is never limited.
        for _ in 0..20 {
            let m = ask(&sel, "198.51.100.7", &referral, Transport::Tcp).unwrap();
            assert!(!m.truncation && !m.authorities.is_empty());
        }
        let c = counters(&sel);
        assert_eq!(c["rrl.limited"], 33);
        assert_eq!(c["rrl.slipped"], 11);
        assert_eq!(c["rrl.dropped"], 22);
        assert_eq!(c["rrl.untracked"], 0);
        // The statistics count the dropped answers and the slipped ones, apart from the
        // queries that were answered or dropped for other reasons.
        let t = sel.stats.totals();
        assert_eq!(t.outcome(Outcome::RateLimited), 22);
        assert_eq!(t.outcome(Outcome::Slipped), 11);
        assert_eq!(t.outcome(Outcome::Dropped), 0);
        assert_eq!(t.outcome(Outcome::Answered), 35 + 3 + 5 + 1 + 20 - 33);
    }

    #[test]
    fn slip_zero_drops_all_one_truncates_all() {
        let packet = query_packet("tld", rtype::SOA, class::IN, Some(EDNS));
        let sel = selector("slip = 0");
        assert_eq!(tally(&sel, "198.51.100.1", &packet, 15), (5, 0, 10));
        let sel = selector("slip = 1");
        assert_eq!(tally(&sel, "198.51.100.1", &packet, 15), (5, 10, 0));
        // The truncated answer keeps the rcode, the question and the OPT.
        let m = ask(&sel, "198.51.100.1", &packet, Transport::Udp).unwrap();
        assert!(m.truncation);
        assert_eq!(m.response_code, ResponseCode::NoError);
        assert_eq!(m.queries.len(), 1);
        assert!(m.edns.is_some());
    }

    #[test]
    fn errors_are_limited_too_and_exempt_prefixes_never() {
        let sel = selector("slip = 0\nexempt = [\"203.0.113.0/24\", \"2001:db8::/48\"]");
        // FORMERR from validate_query passes the leaf on the way out.
        let mut bad = query_packet("tld", rtype::A, class::IN, None);
        bad[5] = 0;
        let bad = &bad[..12];
        assert_eq!(tally(&sel, "10.0.0.1", bad, 8), (5, 0, 3));
        assert_eq!(tally(&sel, "203.0.113.9", bad, 50), (50, 0, 0));
        let packet = query_packet("tld", rtype::NS, class::IN, None);
        assert_eq!(tally(&sel, "2001:db8:0:1::1", &packet, 50), (50, 0, 0));
        // IPv6 shares buckets by /56; an IPv4-mapped source is an IPv4 one.
        assert_eq!(tally(&sel, "2001:db9:0:1::1", &packet, 8), (5, 0, 3));
        assert_eq!(tally(&sel, "2001:db9:0:ff::2", &packet, 1), (0, 0, 1));
        assert_eq!(tally(&sel, "2001:db9:0:100::1", &packet, 1), (1, 0, 0));
        assert_eq!(tally(&sel, "10.0.0.50", &packet, 5), (5, 0, 0));
        assert_eq!(tally(&sel, "::ffff:10.0.0.51", &packet, 1), (0, 0, 1));
        assert_eq!(tally(&sel, "::ffff:203.0.113.1", &packet, 10), (10, 0, 0));
    }

    #[test]
    fn classes_follow_the_answer() {
        let sel = selector("");
        let zones = sample();
        let class_of = |name: &str, qtype: u16, qclass: u16| {
            let mut ev = Event::new();
            ev.load(
                &query_packet(name, qtype, qclass, None),
                "127.0.0.1".parse().unwrap(),
                Transport::Tcp,
            );
            let ctx = Ctx {
                zones: &zones,
                nsid: None,
                expiry: None,
            };
            assert!(sel.selector.run(&mut ev, &ctx));
            ResponseClass::of(&ev.response)
        };
        assert_eq!(
            class_of("tld", rtype::SOA, class::IN),
            ResponseClass::Positive
        );
        assert_eq!(
            class_of("tld", rtype::AAAA, class::IN),
            ResponseClass::NoData
        );
        assert_eq!(
            class_of("nope.tld", rtype::A, class::IN),
            ResponseClass::Nxdomain
        );
        assert_eq!(
            class_of("www.foo.tld", rtype::A, class::IN),
            ResponseClass::Referral
        );
        assert_eq!(
            class_of("example.com", rtype::A, class::IN),
            ResponseClass::Error
        );
        assert_eq!(
            class_of("version.bind", rtype::TXT, class::CH),
            ResponseClass::Positive
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let good: RrlConfig = toml::from_str("rate = 10").unwrap();
        assert_eq!(
            good,
            RrlConfig {
                rate: 10,
                window: 1,
                slip: 2,
                ipv4_prefix: 24,
                ipv6_prefix: 56,
                table_size: 262_144,
                exempt: Vec::new(),
            }
        );
        good.validate().unwrap();
        type Change = fn(&mut RrlConfig);
        let cases: [(Change, &str); 9] = [
            (|c| c.rate = 0, "rate: must be at least 1"),
            (|c| c.window = 0, "window: must be 1 to 60"),
            (|c| c.window = 61, "window: must be 1 to 60"),
            (|c| c.slip = 101, "slip: must be 0 to 100"),
            (|c| c.ipv4_prefix = 33, "ipv4_prefix: must be 0 to 32"),
            (|c| c.ipv6_prefix = 129, "ipv6_prefix: must be 0 to 128"),
            (|c| c.table_size = 0, "table_size: must be 1 to"),
            (|c| c.rate = u32::MAX, "rate: rate × window is too large"),
            (
                |c| c.exempt = vec!["nope".into()],
                "exempt: \"nope\" is not an address prefix",
            ),
        ];
        for (change, want) in cases {
            let mut c = good.clone();
            change(&mut c);
            if c.rate == u32::MAX {
                c.window = 2;
            }
            let Err(e) = c.validate() else {
                panic!("{c:?} accepted, want {want:?}");
            };
            assert!(e.starts_with(want), "{e:?} does not start with {want:?}");
            let leaf = crate::dns::leaf::LeafConfig::Rrl(c);
            let e = Dns::build_leaf("rrl", &leaf, &|_| None).err().unwrap();
            assert!(e.to_string().contains(want), "{e}");
        }
        assert!(toml::from_str::<RrlConfig>("rate = 1\nburst = 5").is_err());
    }

    /// The commented-out example in the operators' configuration parses once uncommented,
    /// and builds.
    #[test]
    fn deploy_example_parses() {
        let text = include_str!("../../../../deploy/satellite.example.toml");
        let start = text.find("# [leaves.rrl]").expect("the example block");
        let block: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.trim_start_matches('#').trim_start())
            .filter(|l| !l.is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        let mut config: SelectorConfig = toml::from_str(&chains("")).unwrap();
        let table: toml::Table = toml::from_str(&block).unwrap();
        let leaf: crate::dns::leaf::LeafConfig = table["leaves"]["rrl"].clone().try_into().unwrap();
        let crate::dns::leaf::LeafConfig::Rrl(c) = &leaf else {
            panic!("not an rrl leaf: {leaf:?}")
        };
        assert_eq!((c.rate, c.window, c.slip), (20, 2, 2));
        assert_eq!(c.exempt, ["192.0.2.0/24"]);
        config.leaves.insert("rrl".into(), leaf);
        Selector::<Dns>::build(&config).unwrap();
    }
}
