//! The master's configuration: one TOML file (`deny_unknown_fields` everywhere), validated once
//! into [`MasterConfig`], with errors that name the bad field.
//!
//! It holds the master's own settings and the configuration of every satellite: the master has
//! complete control over what a booting satellite does (services, sockets, threads, memory,
//! Selector leaves and chains, check-in interval, NSID and host name). Relative certificate
//! paths are resolved against the configuration file's directory. See
//! `deploy/master.example.toml` for every field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orrery_proto::link::SatelliteSettings;
use orrery_proto::link::convert::{DnsListen, MIN_CHECKIN_INTERVAL};
use orrery_proto::link::tls::{SatelliteId, TlsFiles};
use serde::Deserialize;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    master: MasterSection,
    tls: TlsSection,
    #[serde(default)]
    satellite_defaults: SatelliteSection,
    #[serde(default)]
    selectors: BTreeMap<String, toml::Table>,
    #[serde(default)]
    satellites: BTreeMap<String, SatelliteSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MasterSection {
    store: String,
    listen: Vec<String>,
    poll_interval_ms: Option<u64>,
    heartbeat_interval_ms: Option<u64>,
    max_batch_entries: Option<usize>,
    window_batches: Option<usize>,
    window_changes: Option<usize>,
    snapshot_chunk_objects: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SatelliteSection {
    checkin_interval_ms: Option<u64>,
    dns: Option<DnsSection>,
    whois: Option<WhoisSection>,
    workers: Option<u32>,
    memory_budget_mb: Option<u64>,
    nsid: Option<String>,
    hostname: Option<String>,
    /// The name of a `[selectors.NAME]` table.
    selector: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsSection {
    #[serde(default)]
    udp: Vec<String>,
    #[serde(default)]
    tcp: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WhoisSection {
    tcp: Vec<String>,
}

impl SatelliteSection {
    /// This section with the defaults filling the fields it leaves out.
    fn or(self, d: &Self) -> Self {
        Self {
            checkin_interval_ms: self.checkin_interval_ms.or(d.checkin_interval_ms),
            dns: self.dns.or_else(|| d.dns.clone()),
            whois: self.whois.or_else(|| d.whois.clone()),
            workers: self.workers.or(d.workers),
            memory_budget_mb: self.memory_budget_mb.or(d.memory_budget_mb),
            nsid: self.nsid.or_else(|| d.nsid.clone()),
            hostname: self.hostname.or_else(|| d.hostname.clone()),
            selector: self.selector.or_else(|| d.selector.clone()),
        }
    }
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterConfig {
    /// Store URL (`postgres://…` or `sqlite:PATH`).
    pub store: String,
    /// Addresses the link listens on.
    pub listen: Vec<SocketAddr>,
    /// The master's CA, certificate and key.
    pub tls: TlsFiles,
    pub follow: FollowSettings,
    pub link: LinkSettings,
    /// Every satellite the master knows, by identity.
    pub satellites: BTreeMap<SatelliteId, SatelliteSettings>,
}

/// How the master follows the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowSettings {
    /// Poll the journal this often even without a notification.
    pub poll_interval: Duration,
    /// Most journal rows read in one batch; more pending means a full reload.
    pub max_batch_entries: usize,
}

/// How the master serves the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSettings {
    /// A quiet change stream carries a heartbeat this often.
    pub heartbeat_interval: Duration,
    /// The window holds at most this many recent batches …
    pub window_batches: usize,
    /// … and at most this many changes in all.
    pub window_changes: usize,
    /// Objects per snapshot chunk.
    pub snapshot_chunk_objects: usize,
}

/// Polling every 200 ms keeps propagation well under a second on SQLite, which has no NOTIFY
/// (docs/BENCHMARKS.md), for one cheap query per interval.
impl Default for FollowSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(200),
            max_batch_entries: 100_000,
        }
    }
}

impl Default for LinkSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(15),
            window_batches: 10_000,
            window_changes: 1_000_000,
            snapshot_chunk_objects: 2_000,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("config field {field}: {message}")]
    Field { field: String, message: String },
}

fn field(field: impl Into<String>, message: impl ToString) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        message: message.to_string(),
    }
}

fn addrs(name: &str, list: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    list.iter()
        .map(|a| {
            a.parse()
                .map_err(|e| field(name, format!("{a:?} is not IP:PORT ({e})")))
        })
        .collect()
}

fn positive(name: &str, v: Option<u64>, default: u64) -> Result<u64, ConfigError> {
    match v {
        Some(0) => Err(field(name, "must be above 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

impl MasterConfig {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
    }

    /// Validates configuration text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text)?;
        let m = file.master;
        if m.store.trim().is_empty() {
            return Err(field("master.store", "empty"));
        }
        let listen = addrs("master.listen", &m.listen)?;
        if listen.is_empty() {
            return Err(field("master.listen", "no address"));
        }
        let d = FollowSettings::default();
        let follow = FollowSettings {
            poll_interval: Duration::from_millis(positive(
                "master.poll_interval_ms",
                m.poll_interval_ms,
                d.poll_interval.as_millis() as u64,
            )?),
            max_batch_entries: positive(
                "master.max_batch_entries",
                m.max_batch_entries.map(|v| v as u64),
                d.max_batch_entries as u64,
            )? as usize,
        };
        let d = LinkSettings::default();
        let link = LinkSettings {
            heartbeat_interval: Duration::from_millis(positive(
                "master.heartbeat_interval_ms",
                m.heartbeat_interval_ms,
                d.heartbeat_interval.as_millis() as u64,
            )?),
            window_batches: positive(
                "master.window_batches",
                m.window_batches.map(|v| v as u64),
                d.window_batches as u64,
            )? as usize,
            window_changes: positive(
                "master.window_changes",
                m.window_changes.map(|v| v as u64),
                d.window_changes as u64,
            )? as usize,
            snapshot_chunk_objects: positive(
                "master.snapshot_chunk_objects",
                m.snapshot_chunk_objects.map(|v| v as u64),
                d.snapshot_chunk_objects as u64,
            )? as usize,
        };
        let path = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let tls = TlsFiles {
            ca: path(file.tls.ca),
            cert: path(file.tls.cert),
            key: path(file.tls.key),
        };

        let mut selectors = BTreeMap::new();
        for (name, table) in &file.selectors {
            let text = toml::to_string(table)
                .map_err(|e| field(format!("selectors.{name}"), e.to_string()))?;
            selectors.insert(name.clone(), text);
        }
        let mut satellites = BTreeMap::new();
        for (name, section) in file.satellites {
            let id = SatelliteId::new(&name).map_err(|e| field(format!("satellites.{name}"), e))?;
            let settings = satellite(
                id.as_str(),
                section.or(&file.satellite_defaults),
                &selectors,
            )?;
            if satellites.insert(id, settings).is_some() {
                return Err(field(
                    format!("satellites.{name}"),
                    "defined twice (names are case-insensitive)",
                ));
            }
        }
        Ok(Self {
            store: m.store,
            listen,
            tls,
            follow,
            link,
            satellites,
        })
    }
}

/// Default check-in interval: once a minute, as in the Registry Advantage design.
pub const DEFAULT_CHECKIN_INTERVAL: Duration = Duration::from_secs(60);

fn satellite(
    name: &str,
    s: SatelliteSection,
    selectors: &BTreeMap<String, String>,
) -> Result<SatelliteSettings, ConfigError> {
    let f = |what: &str| format!("satellites.{name}.{what}");
    let checkin_interval = match s.checkin_interval_ms {
        Some(ms) => Duration::from_millis(ms),
        None => DEFAULT_CHECKIN_INTERVAL,
    };
    if checkin_interval < MIN_CHECKIN_INTERVAL || checkin_interval.as_millis() > u32::MAX as u128 {
        return Err(field(
            f("checkin_interval_ms"),
            format!(
                "must be between {} and {}",
                MIN_CHECKIN_INTERVAL.as_millis(),
                u32::MAX
            ),
        ));
    }
    let dns = s
        .dns
        .map(|d| {
            let dns = DnsListen {
                udp: addrs(&f("dns.udp"), &d.udp)?,
                tcp: addrs(&f("dns.tcp"), &d.tcp)?,
            };
            if dns.udp.is_empty() && dns.tcp.is_empty() {
                return Err(field(f("dns"), "no udp or tcp address"));
            }
            Ok(dns)
        })
        .transpose()?;
    let whois = s
        .whois
        .map(|w| {
            let tcp = addrs(&f("whois.tcp"), &w.tcp)?;
            if tcp.is_empty() {
                return Err(field(f("whois.tcp"), "no address"));
            }
            Ok(tcp)
        })
        .transpose()?;
    if dns.is_none() && whois.is_none() {
        return Err(field(
            format!("satellites.{name}"),
            "serves nothing: give it [dns] and/or [whois]",
        ));
    }
    if s.workers == Some(0) {
        return Err(field(
            f("workers"),
            "must be above 0 (leave it out to let the satellite choose)",
        ));
    }
    let memory_budget = match s.memory_budget_mb {
        Some(0) => return Err(field(f("memory_budget_mb"), "must be above 0")),
        Some(mb) => Some(
            mb.checked_mul(1024 * 1024)
                .ok_or_else(|| field(f("memory_budget_mb"), "too large"))?,
        ),
        None => None,
    };
    if let Some(nsid) = &s.nsid
        && (nsid.is_empty() || nsid.len() > usize::from(u16::MAX))
    {
        return Err(field(f("nsid"), "must be 1 to 65535 octets"));
    }
    if s.hostname.as_deref() == Some("") {
        return Err(field(f("hostname"), "empty"));
    }
    let selector_toml = match &s.selector {
        Some(sel) => selectors
            .get(sel)
            .cloned()
            .ok_or_else(|| field(f("selector"), format!("no [selectors.{sel}] table")))?,
        None => String::new(),
    };
    Ok(SatelliteSettings {
        checkin_interval,
        dns,
        whois,
        workers: s.workers,
        memory_budget,
        nsid: s.nsid.map(String::into_bytes),
        hostname: s.hostname,
        selector_toml,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [master]
        store = "sqlite:orrery.db"
        listen = ["127.0.0.1:7443"]
        [tls]
        ca = "certs/ca.pem"
        cert = "/etc/orrery/master.pem"
        key = "certs/master.key"
        [satellite_defaults]
        checkin_interval_ms = 30000
        selector = "std"
        [selectors.std]
        chains = [{ name = "main", leaves = ["lookup"] }]
        [selectors.std.leaves.lookup]
        kind = "lookup"
        [satellites.Sat1]
        dns = { udp = ["127.0.0.1:5353"] }
        nsid = "sat1"
        [satellites.sat2]
        whois = { tcp = ["[::1]:4343"] }
        checkin_interval_ms = 1000
    "#;

    fn err(text: &str) -> String {
        MasterConfig::parse(text, Path::new("/base"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_config_with_defaults() {
        let c = MasterConfig::parse(MINIMAL, Path::new("/base")).unwrap();
        assert_eq!(c.tls.ca, Path::new("/base/certs/ca.pem"));
        assert_eq!(c.tls.cert, Path::new("/etc/orrery/master.pem"));
        assert_eq!(c.follow, FollowSettings::default());
        let s1 = &c.satellites[&SatelliteId::new("sat1").unwrap()];
        assert_eq!(s1.checkin_interval, Duration::from_secs(30));
        assert_eq!(s1.nsid.as_deref(), Some(&b"sat1"[..]));
        assert!(s1.selector_toml.contains("lookup"), "{}", s1.selector_toml);
        let table: toml::Table = toml::from_str(&s1.selector_toml).unwrap();
        assert!(table.contains_key("chains") && table.contains_key("leaves"));
        let s2 = &c.satellites[&SatelliteId::new("sat2").unwrap()];
        assert_eq!(s2.checkin_interval, Duration::from_secs(1));
        assert!(s2.dns.is_none());
        assert_eq!(s2.whois.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/master.example.toml");
        let c = MasterConfig::load(&path).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.satellites.len(), 2);
        let s2 = &c.satellites[&SatelliteId::new("sat2").unwrap()];
        assert_eq!(s2.workers, Some(4));
        assert_eq!(s2.memory_budget, Some(2048 * 1024 * 1024));
        assert_eq!(s2.dns.as_ref().unwrap().udp.len(), 2);
        let selector: toml::Table = toml::from_str(&s2.selector_toml).unwrap();
        assert_eq!(selector["chains"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn bad_fields_are_named() {
        assert!(
            err(&MINIMAL.replace("nsid = \"sat1\"", "nsid = \"sat1\"\ncolour = 1"))
                .contains("colour")
        );
        assert!(
            err(&MINIMAL.replace("127.0.0.1:5353", "127.0.0.1"))
                .contains("satellites.sat1.dns.udp")
        );
        assert!(err(&MINIMAL.replace("\"127.0.0.1:7443\"", "")).contains("master.listen"));
        assert!(
            err(&MINIMAL.replace("selector = \"std\"", "selector = \"nope\""))
                .contains("selectors.nope")
        );
        assert!(
            err(&MINIMAL.replace("checkin_interval_ms = 1000", "checkin_interval_ms = 5"))
                .contains("satellites.sat2.checkin_interval_ms")
        );
        assert!(
            err(&MINIMAL.replace("[satellites.Sat1]", "[satellites.\"sat 1\"]"))
                .contains("satellites.sat 1")
        );
        assert!(
            err(&MINIMAL.replace("whois = { tcp = [\"[::1]:4343\"] }", ""))
                .contains("serves nothing")
        );
        assert!(err(&MINIMAL.replace("[satellites.sat2]", "[satellites.SAT1]")).contains("twice"));
    }
}
