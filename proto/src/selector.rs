//! The Selector's configuration: the contract between the master's file and the satellite's
//! chains.
//!
//! A Selector is named leaf instances (`[leaves.NAME]`, each tagged by `kind`) and ordered
//! chains of them (`[[chains]]`; the first is where every event starts). The master reads it
//! from its `[selectors.NAME]` tables and sends it as TOML text in the link contract
//! (`selector_toml`, `rds_selector_toml`); the satellite parses that text and builds its
//! leaves. Both ends parse with [`SelectorConfig::from_table`] / [`SelectorConfig::from_toml`]
//! and check with the one [`SelectorConfig::validate`], so a configuration the satellite would
//! refuse on receipt is refused by the master at load (and by `check-config`), with the same
//! message naming the chain, leaf and field.
//!
//! There are two services, each with its own leaf kinds: DNS ([`LeafConfig`]) and the
//! registration data services, Whois and RDAP ([`RdsLeafConfig`]). The leaves' runtime code
//! lives in the satellite; here is only their configuration and what can be checked without
//! building them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::prefix::Prefix;

/// Most chains or leaves in one Selector: the satellite numbers both with `u16`.
pub const MAX_ENTRIES: usize = u16::MAX as usize;
/// Most buckets an `rrl` leaf's `table_size` may ask for (24 octets each, 6 GiB); slot numbers
/// are `u32` in the satellite's table.
pub const MAX_RRL_TABLE_SIZE: usize = 1 << 28;
/// Most buckets a `rate_limit` leaf's `max_tracked` may ask for (about 14 GB); slot numbers are
/// `u32` in the satellite's limiter.
pub const MAX_RATE_LIMIT_TRACKED: usize = 1 << 28;
/// Longest an `rrl` leaf's `window` may be, in seconds.
pub const MAX_RRL_WINDOW: u32 = 60;
/// Largest `slip` of an `rrl` leaf.
pub const MAX_RRL_SLIP: u32 = 100;
/// Longest a token bucket may take to refill from empty, in nanoseconds (about 146 years):
/// keeps the satellite's nanosecond arithmetic far from `u64::MAX`.
pub const MAX_REFILL_NANOS: f64 = (1u64 << 62) as f64;

/// The configuration of one leaf kind of a service, as far as it can be checked without
/// building the leaf.
pub trait LeafSettings: DeserializeOwned {
    /// The `kind` values this service knows, for the message naming a typo.
    const KINDS: &'static [&'static str];

    /// Checks the leaf's own settings; the error starts with the field, e.g.
    /// `slip: must be 0 to 100`.
    fn validate(&self) -> Result<(), String>;

    /// The chain this leaf jumps to, if it is a jumping leaf.
    fn jump_target(&self) -> Option<&str> {
        None
    }
}

/// Configuration of one DNS leaf instance, tagged by `kind`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LeafConfig {
    ValidateQuery(NoSettings),
    Acl(AclConfig),
    Chaos(ChaosConfig),
    RouteClass(RouteClassConfig),
    Lookup(NoSettings),
    Statistics(NoSettings),
    Rrl(RrlConfig),
}

impl LeafSettings for LeafConfig {
    const KINDS: &'static [&'static str] = &[
        "validate_query",
        "acl",
        "chaos",
        "route_class",
        "lookup",
        "statistics",
        "rrl",
    ];

    fn validate(&self) -> Result<(), String> {
        match self {
            Self::Acl(c) => c.validate(),
            Self::RouteClass(c) => c.class_number().map(|_| ()),
            Self::Rrl(c) => c.validate(),
            Self::ValidateQuery(_) | Self::Chaos(_) | Self::Lookup(_) | Self::Statistics(_) => {
                Ok(())
            }
        }
    }

    fn jump_target(&self) -> Option<&str> {
        match self {
            Self::RouteClass(c) => Some(&c.chain),
            _ => None,
        }
    }
}

/// Configuration of one registration data (Whois, RDAP) leaf instance, tagged by `kind`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RdsLeafConfig {
    ValidateQuery(NoSettings),
    Acl(AclConfig),
    RateLimit(RateLimitConfig),
    Lookup(NoSettings),
    Statistics(NoSettings),
}

impl LeafSettings for RdsLeafConfig {
    const KINDS: &'static [&'static str] = &[
        "validate_query",
        "acl",
        "rate_limit",
        "lookup",
        "statistics",
    ];

    fn validate(&self) -> Result<(), String> {
        match self {
            Self::Acl(c) => c.validate(),
            Self::RateLimit(c) => c.validate(),
            Self::ValidateQuery(_) | Self::Lookup(_) | Self::Statistics(_) => Ok(()),
        }
    }
}

/// Settings of a leaf kind that has none (a struct so that unknown fields are refused).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// One named chain: leaf instance names in order.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    pub name: String,
    pub leaves: Vec<String>,
}

/// Leaves and chains; the first chain is where every event starts. `C` is the service's leaf
/// configuration ([`LeafConfig`] for DNS, [`RdsLeafConfig`] for Whois and RDAP).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, bound(deserialize = "C: Deserialize<'de>"))]
pub struct SelectorConfig<C = LeafConfig> {
    pub leaves: BTreeMap<String, C>,
    pub chains: Vec<ChainConfig>,
}

/// A Selector configuration that does not hold together. Every message starts with the path of
/// what is wrong inside the Selector's table (`leaves.NAME…`, `chains…`), so that the master
/// can put `selectors.NAME.` in front ([`SelectorError::path`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// The text or table does not have the Selector's shape (not TOML, unknown top-level key,
    /// a chain that is not `{ name, leaves }` …).
    #[error("{path}: {message}")]
    Shape { path: String, message: String },
    #[error("leaves.{leaf}: unknown kind {kind:?} (kinds: {known})")]
    UnknownKind {
        leaf: String,
        kind: String,
        known: String,
    },
    #[error("chains: none configured")]
    NoChains,
    #[error("{what}: {count}, at most {MAX_ENTRIES}")]
    TooMany { what: &'static str, count: usize },
    #[error("chains.{0}: defined twice")]
    DuplicateChain(String),
    #[error("chains[{0}].name: empty")]
    EmptyChainName(usize),
    #[error("chains.{chain}: leaf {leaf:?} is not defined under [leaves]")]
    UnknownLeaf { chain: String, leaf: String },
    #[error("leaves.{leaf}.chain: jumps to chain {chain:?}, which is not defined")]
    UnknownChain { leaf: String, chain: String },
    /// A leaf's own settings; `message` starts with the field.
    #[error("leaves.{leaf}.{message}")]
    BadLeaf { leaf: String, message: String },
}

impl SelectorError {
    /// Where the problem is inside the Selector's table (`leaves.rrl.slip`, `chains.main`).
    pub fn path(&self) -> String {
        self.split().0
    }

    /// What is wrong there: the message without its path.
    pub fn reason(&self) -> String {
        self.split().1
    }

    fn split(&self) -> (String, String) {
        let text = self.to_string();
        match text.split_once(": ") {
            Some((path, reason)) => (path.to_owned(), reason.to_owned()),
            None => (String::new(), text),
        }
    }
}

impl<C: LeafSettings> SelectorConfig<C> {
    /// Parses a Selector from TOML text (the link's `selector_toml`); see
    /// [`SelectorConfig::from_table`].
    pub fn from_toml(text: &str) -> Result<Self, SelectorError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| SelectorError::Shape {
            path: "selector".into(),
            message: e.message().to_owned(),
        })?;
        Self::from_table(&table)
    }

    /// Parses a Selector from a TOML table, one leaf at a time so that an error names the
    /// leaf; an unknown `kind` is named as such, with the kinds this service knows. Does not
    /// check how the parts fit together: [`SelectorConfig::validate`] does.
    pub fn from_table(table: &toml::Table) -> Result<Self, SelectorError> {
        let shape = |path: &str, message: String| SelectorError::Shape {
            path: path.to_owned(),
            message,
        };
        if let Some(key) = table
            .keys()
            .find(|k| !matches!(k.as_str(), "leaves" | "chains"))
        {
            return Err(shape(
                key,
                "unknown key (a Selector has [leaves.NAME] and [[chains]])".into(),
            ));
        }
        let mut leaves = BTreeMap::new();
        match table.get("leaves") {
            None => {}
            Some(toml::Value::Table(t)) => {
                for (name, value) in t {
                    leaves.insert(name.clone(), parse_leaf::<C>(name, value)?);
                }
            }
            Some(_) => return Err(shape("leaves", "not a table".into())),
        }
        let chains = match table.get("chains") {
            None => Vec::new(),
            Some(value) => value
                .clone()
                .try_into::<Vec<ChainConfig>>()
                .map_err(|e| shape("chains", e.message().to_owned()))?,
        };
        Ok(Self { leaves, chains })
    }

    /// Checks everything that can be checked without building the leaves: at least one chain,
    /// chain names non-empty and unique, every leaf a chain names defined, every jump target
    /// defined, each leaf's own settings ([`LeafSettings::validate`]). The master calls it at
    /// load and in `check-config`; the satellite's `Selector::build` calls it before building.
    pub fn validate(&self) -> Result<(), SelectorError> {
        if self.chains.is_empty() {
            return Err(SelectorError::NoChains);
        }
        for (what, count) in [("chains", self.chains.len()), ("leaves", self.leaves.len())] {
            if count > MAX_ENTRIES {
                return Err(SelectorError::TooMany { what, count });
            }
        }
        let mut names = BTreeSet::new();
        for (i, c) in self.chains.iter().enumerate() {
            if c.name.is_empty() {
                return Err(SelectorError::EmptyChainName(i));
            }
            if !names.insert(c.name.as_str()) {
                return Err(SelectorError::DuplicateChain(c.name.clone()));
            }
        }
        for c in &self.chains {
            if let Some(leaf) = c.leaves.iter().find(|l| !self.leaves.contains_key(*l)) {
                return Err(SelectorError::UnknownLeaf {
                    chain: c.name.clone(),
                    leaf: leaf.clone(),
                });
            }
        }
        for (name, leaf) in &self.leaves {
            leaf.validate().map_err(|message| SelectorError::BadLeaf {
                leaf: name.clone(),
                message,
            })?;
            if let Some(chain) = leaf.jump_target()
                && !names.contains(chain)
            {
                return Err(SelectorError::UnknownChain {
                    leaf: name.clone(),
                    chain: chain.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Leaves that no chain names: harmless, but most likely a mistake (the master warns).
    pub fn unused_leaves(&self) -> Vec<&str> {
        let used: BTreeSet<&str> = self
            .chains
            .iter()
            .flat_map(|c| c.leaves.iter().map(String::as_str))
            .collect();
        self.leaves
            .keys()
            .map(String::as_str)
            .filter(|l| !used.contains(l))
            .collect()
    }
}

/// Parses one `[leaves.NAME]` table: its `kind` first, so that a typo is named as one.
fn parse_leaf<C: LeafSettings>(name: &str, value: &toml::Value) -> Result<C, SelectorError> {
    let bad = |message: String| SelectorError::BadLeaf {
        leaf: name.to_owned(),
        message,
    };
    let Some(table) = value.as_table() else {
        return Err(SelectorError::Shape {
            path: format!("leaves.{name}"),
            message: "not a table".into(),
        });
    };
    match table.get("kind") {
        None => return Err(bad("kind: missing".into())),
        Some(toml::Value::String(kind)) if !C::KINDS.contains(&kind.as_str()) => {
            return Err(SelectorError::UnknownKind {
                leaf: name.to_owned(),
                kind: kind.clone(),
                known: C::KINDS.join(", "),
            });
        }
        Some(toml::Value::String(_)) => {}
        Some(_) => return Err(bad("kind: not a string".into())),
    }
    value
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| SelectorError::Shape {
            path: format!("leaves.{name}"),
            message: e.message().to_owned(),
        })
}

/// Checks a token bucket's parameters: `rate` tokens a second, at most `burst`; errors name
/// the fields. The satellite's limiters build their buckets only from parameters that pass.
pub fn check_rate(
    rate: f64,
    rate_field: &str,
    burst: u32,
    burst_field: &str,
) -> Result<(), String> {
    if rate.is_infinite() {
        return Err(format!("{rate_field}: must be finite"));
    }
    if rate.is_nan() || rate <= 0.0 {
        return Err(format!("{rate_field}: must be above 0"));
    }
    if burst < 1 {
        return Err(format!("{burst_field}: must be at least 1"));
    }
    if f64::from(burst) * 1e9 / rate > MAX_REFILL_NANOS {
        return Err(format!(
            "{rate_field}: too small: refilling {burst_field} would take over a century"
        ));
    }
    Ok(())
}

/// Parses a list of prefixes; the error names the field.
fn prefixes(field: &str, list: &[String]) -> Result<Vec<Prefix>, String> {
    list.iter()
        .map(|text| Prefix::parse(text).map_err(|e| format!("{field}: {e}")))
        .collect()
}

// ───────────────────────────── acl ─────────────────────────────

/// What to do with a query the ACL refuses.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AclAction {
    #[default]
    Refuse,
    Drop,
}

/// Leaf `acl` (DNS and registration data): prefixes such as `192.0.2.0/24`, `2001:db8::/32` or
/// a bare address.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub action: AclAction,
}

impl AclConfig {
    /// Checks every prefix.
    pub fn validate(&self) -> Result<(), String> {
        self.prefixes().map(|_| ())
    }

    /// The `allow` and `deny` prefixes, parsed.
    pub fn prefixes(&self) -> Result<(Vec<Prefix>, Vec<Prefix>), String> {
        Ok((
            prefixes("allow", &self.allow)?,
            prefixes("deny", &self.deny)?,
        ))
    }
}

// ───────────────────────────── chaos ─────────────────────────────

/// Leaf `chaos`: each string is optional; absent means disabled.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChaosConfig {
    /// Answer to `version.bind` (and `version.server`).
    pub version: Option<String>,
    /// Answer to `hostname.bind`.
    pub hostname: Option<String>,
    /// Answer to `id.server`.
    pub id_server: Option<String>,
}

// ───────────────────────────── route_class ─────────────────────────────

/// Leaf `route_class`: `class = "CH"` (or `IN`, `HS`, `ANY`, or a number) and the target chain.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteClassConfig {
    pub class: String,
    pub chain: String,
}

impl RouteClassConfig {
    /// The class as its number (RFC 1035 §3.2.4, RFC 2136 for ANY's 255).
    pub fn class_number(&self) -> Result<u16, String> {
        Ok(match self.class.to_ascii_uppercase().as_str() {
            "IN" => 1,
            "CH" | "CHAOS" => 3,
            "HS" => 4,
            "ANY" => 255,
            other => other
                .parse()
                .map_err(|_| format!("class: unknown class {:?}", self.class))?,
        })
    }
}

// ───────────────────────────── rrl ─────────────────────────────

/// Leaf `rrl` (DNS response rate limiting), as a `[leaves.NAME]` table with `kind = "rrl"`.
///
/// ```toml
/// [leaves.rrl]
/// kind = "rrl"
/// rate = 20            # answers per second per (prefix, class)
/// window = 2           # seconds the rate is measured over (burst = rate × window)
/// slip = 2             # every 2nd limited answer truncated, the others dropped
/// ipv4_prefix = 24
/// ipv6_prefix = 56
/// table_size = 262144  # buckets (24 octets each), rounded up to a power of two
/// exempt = ["192.0.2.0/24"]
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RrlConfig {
    /// Answers per second per bucket (Knot `rate-limit`, NSD `rrl-ratelimit`).
    pub rate: u32,
    /// Seconds the rate is measured over: a bucket holds `rate × window` tokens (default 1,
    /// as Knot 3.2; `rate × window` is Knot 3.4's `instant-limit`). BIND's `window` differs:
    /// there it bounds how long a limited source's debt is remembered.
    #[serde(default = "default_rrl_window")]
    pub window: u32,
    /// Every `slip`-th limited answer is sent truncated, the others are dropped; 0 drops all,
    /// 1 truncates all (default 2, as NSD and BIND).
    #[serde(default = "default_rrl_slip")]
    pub slip: u32,
    /// Length of the IPv4 prefixes sharing a bucket (default 24).
    #[serde(default = "default_ipv4_prefix")]
    pub ipv4_prefix: u8,
    /// Length of the IPv6 prefixes sharing a bucket (default 56).
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// Buckets in the table, the memory bound (default 262,144, 6 MiB). Buckets are needed
    /// for the (prefix, class) pairs seen within one window; beyond that a new pair takes
    /// over the slot of one nearest to full.
    #[serde(default = "default_rrl_table_size")]
    pub table_size: usize,
    /// Sources never limited (Knot `whitelist`), as prefixes or bare addresses.
    #[serde(default)]
    pub exempt: Vec<String>,
}

fn default_rrl_window() -> u32 {
    1
}

fn default_rrl_slip() -> u32 {
    2
}

fn default_ipv4_prefix() -> u8 {
    24
}

fn default_ipv6_prefix() -> u8 {
    56
}

fn default_rrl_table_size() -> usize {
    262_144
}

impl RrlConfig {
    /// Checks every field; the error names the field, e.g. `rate: must be at least 1`.
    pub fn validate(&self) -> Result<(), String> {
        self.burst()?;
        self.exempt_prefixes().map(|_| ())
    }

    /// The bucket size, `rate × window`, after checking every numeric field.
    pub fn burst(&self) -> Result<u32, String> {
        if self.rate == 0 {
            return Err("rate: must be at least 1".into());
        }
        if !(1..=MAX_RRL_WINDOW).contains(&self.window) {
            return Err(format!("window: must be 1 to {MAX_RRL_WINDOW} seconds"));
        }
        if self.slip > MAX_RRL_SLIP {
            return Err(format!("slip: must be 0 to {MAX_RRL_SLIP}"));
        }
        if self.ipv4_prefix > 32 {
            return Err("ipv4_prefix: must be 0 to 32".into());
        }
        if self.ipv6_prefix > 128 {
            return Err("ipv6_prefix: must be 0 to 128".into());
        }
        if !(1..=MAX_RRL_TABLE_SIZE).contains(&self.table_size) {
            return Err(format!("table_size: must be 1 to {MAX_RRL_TABLE_SIZE}"));
        }
        let burst = self
            .rate
            .checked_mul(self.window)
            .ok_or_else(|| "rate: rate × window is too large".to_owned())?;
        check_rate(f64::from(self.rate), "rate", burst, "window")?;
        Ok(burst)
    }

    /// The `exempt` prefixes, parsed.
    pub fn exempt_prefixes(&self) -> Result<Vec<Prefix>, String> {
        prefixes("exempt", &self.exempt)
    }
}

// ───────────────────────────── rate_limit ─────────────────────────────

/// Leaf `rate_limit` (Whois and RDAP), as a `[leaves.NAME]` table with `kind = "rate_limit"`.
///
/// ```toml
/// [leaves.whois_limit]
/// kind = "rate_limit"
/// address_rate = 2.0
/// address_burst = 20
/// prefix_rate = 10.0
/// prefix_burst = 100
/// exempt = ["192.0.2.0/24", "2001:db8::/32"]
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Tokens per second for one client address (IPv4 /32, IPv6 /64 by default: one IPv6
    /// client usually has a /64).
    pub address_rate: f64,
    /// Bucket size (burst) per address.
    pub address_burst: u32,
    /// Tokens per second for one prefix (IPv4 /24, IPv6 /56 by default).
    pub prefix_rate: f64,
    /// Bucket size (burst) per prefix.
    pub prefix_burst: u32,
    /// Length of the IPv4 prefixes sharing a prefix bucket (default 24).
    #[serde(default = "default_ipv4_prefix")]
    pub ipv4_prefix: u8,
    /// Length of the IPv6 prefixes sharing a prefix bucket (default 56).
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// Length of the IPv6 prefix that counts as one client address (default 64).
    #[serde(default = "default_ipv6_address_prefix")]
    pub ipv6_address_prefix: u8,
    /// Most buckets tracked at once, the memory bound (default 262,144, about 14 MB). A bucket
    /// only matters until it has refilled, so this is the number of sources (plus prefixes)
    /// that can be told apart within one refill time; a quarter of a million is far more than
    /// the clients a Whois or RDAP service sees, and an attacker spraying sources beyond it
    /// costs only evictions of the buckets nearest to full.
    #[serde(default = "default_max_tracked")]
    pub max_tracked: usize,
    /// Sources never limited, as prefixes (`"192.0.2.0/24"`, `"2001:db8::/32"`, bare addresses).
    #[serde(default)]
    pub exempt: Vec<String>,
}

fn default_ipv6_address_prefix() -> u8 {
    64
}

fn default_max_tracked() -> usize {
    262_144
}

impl RateLimitConfig {
    /// Checks every field; the error names the field, e.g. `address_rate: must be above 0`.
    pub fn validate(&self) -> Result<(), String> {
        check_rate(
            self.address_rate,
            "address_rate",
            self.address_burst,
            "address_burst",
        )?;
        check_rate(
            self.prefix_rate,
            "prefix_rate",
            self.prefix_burst,
            "prefix_burst",
        )?;
        if self.ipv4_prefix > 32 {
            return Err("ipv4_prefix: must be 0 to 32".into());
        }
        if self.ipv6_prefix > 128 {
            return Err("ipv6_prefix: must be 0 to 128".into());
        }
        if self.ipv6_address_prefix > 128 {
            return Err("ipv6_address_prefix: must be 0 to 128".into());
        }
        if self.ipv6_address_prefix < self.ipv6_prefix {
            return Err(format!(
                "ipv6_address_prefix: must be at least ipv6_prefix ({})",
                self.ipv6_prefix
            ));
        }
        // One request may need two new buckets in one shard.
        if !(2..=MAX_RATE_LIMIT_TRACKED).contains(&self.max_tracked) {
            return Err(format!(
                "max_tracked: must be 2 to {MAX_RATE_LIMIT_TRACKED}"
            ));
        }
        self.exempt_prefixes().map(|_| ())
    }

    /// The `exempt` prefixes, parsed.
    pub fn exempt_prefixes(&self) -> Result<Vec<Prefix>, String> {
        prefixes("exempt", &self.exempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DNS: &str = r#"
        [leaves.stats]
        kind = "statistics"
        [leaves.acl]
        kind = "acl"
        deny = ["192.0.2.0/24"]
        [leaves.to_chaos]
        kind = "route_class"
        class = "CH"
        chain = "chaos"
        [leaves.chaos]
        kind = "chaos"
        version = "orrery"
        [leaves.rrl]
        kind = "rrl"
        rate = 20
        [leaves.lookup]
        kind = "lookup"

        [[chains]]
        name = "main"
        leaves = ["stats", "rrl", "acl", "to_chaos", "lookup"]
        [[chains]]
        name = "chaos"
        leaves = ["chaos"]
    "#;

    fn dns_err(text: &str) -> String {
        match SelectorConfig::<LeafConfig>::from_toml(text).and_then(|c| c.validate()) {
            Ok(()) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_good_selector_parses_and_validates() {
        let c = SelectorConfig::<LeafConfig>::from_toml(DNS).unwrap();
        c.validate().unwrap();
        assert_eq!(c.chains.len(), 2);
        assert!(c.unused_leaves().is_empty());
        // The same text through serde directly gives the same data.
        assert_eq!(toml::from_str::<SelectorConfig>(DNS).unwrap(), c);
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let cases = [
            (
                DNS.replace("kind = \"lookup\"", "kind = \"lookpu\""),
                "leaves.lookup: unknown kind \"lookpu\"",
            ),
            (
                DNS.replace("\"lookup\"]", "\"lookup\", \"nope\"]"),
                "chains.main: leaf \"nope\" is not defined under [leaves]",
            ),
            (
                DNS.replace("chain = \"chaos\"", "chain = \"chaso\""),
                "leaves.to_chaos.chain: jumps to chain \"chaso\", which is not defined",
            ),
            (
                DNS.replace("192.0.2.0/24", "192.0.2.0/33"),
                "leaves.acl.deny: \"192.0.2.0/33\": prefix length must be 0 to 32",
            ),
            (
                DNS.replace("rate = 20", "rate = 20\nslip = 101"),
                "leaves.rrl.slip: must be 0 to 100",
            ),
            (
                DNS.replace("class = \"CH\"", "class = \"CHAOZ\""),
                "leaves.to_chaos.class: unknown class \"CHAOZ\"",
            ),
            (
                DNS.replace("name = \"chaos\"", "name = \"main\""),
                "chains.main: defined twice",
            ),
            (
                DNS.replace("deny = ", "dney = "),
                "leaves.acl: unknown field `dney`",
            ),
            (
                DNS.replace("kind = \"statistics\"", "knid = \"statistics\""),
                "leaves.stats.kind: missing",
            ),
            (DNS.replace("[[chains]]", "[[chain]]"), "chain: unknown key"),
            (
                "[leaves.l]\nkind = \"lookup\"".into(),
                "chains: none configured",
            ),
            (
                DNS.replace("name = \"chaos\"", "name = \"\""),
                "chains[1].name: empty",
            ),
        ];
        for (text, want) in cases {
            let e = dns_err(&text);
            assert!(e.starts_with(want), "{e:?} does not start with {want:?}");
        }
    }

    #[test]
    fn services_have_their_own_kinds() {
        let rds = "[leaves.c]\nkind = \"chaos\"\n[[chains]]\nname = \"main\"\nleaves = [\"c\"]";
        let Err(e) = SelectorConfig::<RdsLeafConfig>::from_toml(rds) else {
            panic!("a DNS kind was accepted for Whois and RDAP");
        };
        assert_eq!(e.path(), "leaves.c");
        assert!(e.to_string().contains("rate_limit"), "{e}");
        let limit = "[leaves.l]\nkind = \"rate_limit\"\naddress_rate = 0.0\naddress_burst = 1\n\
                     prefix_rate = 1.0\nprefix_burst = 1\n[[chains]]\nname = \"main\"\nleaves = [\"l\"]";
        let c = SelectorConfig::<RdsLeafConfig>::from_toml(limit).unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(e.path(), "leaves.l.address_rate");
        assert_eq!(e.to_string(), "leaves.l.address_rate: must be above 0");
    }

    #[test]
    fn unused_leaves_are_listed_not_refused() {
        let text = DNS.replace(
            "[leaves.lookup]",
            "[leaves.spare]\nkind = \"lookup\"\n[leaves.lookup]",
        );
        let c = SelectorConfig::<LeafConfig>::from_toml(&text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.unused_leaves(), ["spare"]);
    }

    #[test]
    fn bucket_parameters_are_checked() {
        assert!(check_rate(1.0, "r", 1, "b").is_ok());
        assert_eq!(
            check_rate(f64::NAN, "r", 1, "b").unwrap_err(),
            "r: must be above 0"
        );
        assert_eq!(
            check_rate(f64::INFINITY, "r", 1, "b").unwrap_err(),
            "r: must be finite"
        );
        assert_eq!(
            check_rate(1.0, "r", 0, "b").unwrap_err(),
            "b: must be at least 1"
        );
        assert!(
            check_rate(1e-12, "r", 1000, "b")
                .unwrap_err()
                .contains("century")
        );
    }
}
