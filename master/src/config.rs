//! The master's configuration: one TOML file (`deny_unknown_fields` everywhere), validated once
//! into [`MasterConfig`], with errors that name the bad field.
//!
//! It holds the master's own settings and the configuration of every satellite: the master has
//! complete control over what a booting satellite does (services, sockets, threads, memory,
//! Selector leaves and chains, check-in interval, NSID and host name). The master's own relative
//! certificate paths are resolved against the configuration file's directory; the RDAP
//! certificate paths of a satellite are paths on that satellite's machine, passed on as written.
//! See `deploy/master.example.toml` for every field.
//!
//! A satellite refuses a configuration it cannot use; the master must not send one. So every
//! `[selectors.NAME]` table is parsed into the typed Selector configuration of the service that
//! uses it (DNS for `selector`, Whois/RDAP for `rds_selector`) and checked with the validator
//! the satellite runs on receipt ([`orrery_proto::selector`]), and every satellite's settings
//! go through the satellite's own receipt check (`SatelliteSettings::try_from` of the message
//! the master would send). `run` and `check-config` both load through here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orrery_proto::link::convert::MIN_CHECKIN_INTERVAL;
use orrery_proto::link::settings_file::{
    self, DnsSection, FieldError, RdapSection, WhoisSection, XfrSection,
};
use orrery_proto::link::tls::{SatelliteId, TlsFiles};
use orrery_proto::link::{SatelliteSettings, pb};
use orrery_proto::selector::{LeafConfig, LeafSettings, RdsLeafConfig, SelectorConfig};
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
    #[serde(default)]
    watchdog: WatchdogSection,
    #[serde(default)]
    dnssec: DnssecSection,
}

/// `[dnssec]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnssecSection {
    /// The key directory of this signing host (PKCS#8 files, mode 0600).
    key_dir: Option<PathBuf>,
    /// How often the signature window is checked and moved (under the `dnssec` lease).
    refresh_check_ms: Option<u64>,
}

/// DNSSEC signing on this master (`[dnssec]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnssecSettings {
    /// The key directory (`dnssec.key_dir`). `None`: this master is not a signing host; a
    /// signed zone's changes are then withheld (never published unsigned) and warned about.
    pub key_dir: Option<PathBuf>,
    /// How often the signing duty checks the signature windows (`dnssec.refresh_check_ms`,
    /// default 10 minutes); each window moves once per its policy's refresh period.
    pub refresh_check: Duration,
}

impl Default for DnssecSettings {
    fn default() -> Self {
        Self {
            key_dir: None,
            refresh_check: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MasterSection {
    store: String,
    /// A PostgreSQL hot-standby replica of `store` to follow the journal from.
    read_store: Option<String>,
    listen: Vec<String>,
    poll_interval_ms: Option<u64>,
    heartbeat_interval_ms: Option<u64>,
    max_batch_entries: Option<usize>,
    window_batches: Option<usize>,
    window_changes: Option<usize>,
    snapshot_chunk_objects: Option<usize>,
    /// This master's name in the cluster state (default `HOST:PORT` of its first listener).
    id: Option<String>,
    /// How often this master writes its heartbeat into the cluster state.
    cluster_heartbeat_ms: Option<u64>,
    /// Statistics samples kept per satellite.
    stats_history: Option<usize>,
    /// How often the store's housekeeping runs (on one master, under a lease).
    maintenance_interval_ms: Option<u64>,
    /// Committed journal serials kept behind the head; older rows are pruned. Unset: the
    /// journal is never pruned.
    journal_keep: Option<u64>,
    /// Where this master serves Prometheus metrics (`GET /metrics`); absent: none.
    metrics: Option<String>,
}

/// `[watchdog]` as written; 0 turns a numeric rule off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchdogSection {
    enabled: Option<bool>,
    interval_ms: Option<u64>,
    missed_checkins: Option<u32>,
    serial_lag: Option<u64>,
    serial_lag_seconds: Option<u64>,
    servfail_ratio: Option<f64>,
    error_ratio: Option<f64>,
    min_responses: Option<u64>,
    memory_over_budget: Option<bool>,
    refused_config: Option<bool>,
    cert_expiry_days: Option<u32>,
    quarantined_rows: Option<u64>,
    unsignable_zone: Option<bool>,
    require_standby: Option<bool>,
    hook: Option<PathBuf>,
    hook_timeout_ms: Option<u64>,
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
    rdap: Option<RdapSection>,
    workers: Option<u32>,
    memory_budget_mb: Option<u64>,
    nsid: Option<String>,
    hostname: Option<String>,
    /// The name of a `[selectors.NAME]` table.
    selector: Option<String>,
    /// The name of a `[selectors.NAME]` table for the registration data services (Whois, RDAP).
    rds_selector: Option<String>,
    /// Where the satellite serves Prometheus metrics, `IP:PORT` on its own machine.
    metrics: Option<String>,
    /// Zone transfer out (keys, ACL, NOTIFY targets, limits).
    xfr: Option<XfrSection>,
    /// Keep answering for a zone past its SOA EXPIRE while no master answers (default
    /// `true`), or answer SERVFAIL for it (`false`).
    serve_expired: Option<bool>,
}

impl SatelliteSection {
    /// This section with the defaults filling the fields it leaves out.
    fn or(self, d: &Self) -> Self {
        Self {
            checkin_interval_ms: self.checkin_interval_ms.or(d.checkin_interval_ms),
            dns: self.dns.or_else(|| d.dns.clone()),
            whois: self.whois.or_else(|| d.whois.clone()),
            rdap: self.rdap.or_else(|| d.rdap.clone()),
            workers: self.workers.or(d.workers),
            memory_budget_mb: self.memory_budget_mb.or(d.memory_budget_mb),
            nsid: self.nsid.or_else(|| d.nsid.clone()),
            hostname: self.hostname.or_else(|| d.hostname.clone()),
            selector: self.selector.or_else(|| d.selector.clone()),
            rds_selector: self.rds_selector.or_else(|| d.rds_selector.clone()),
            metrics: self.metrics.or_else(|| d.metrics.clone()),
            xfr: self.xfr.or_else(|| d.xfr.clone()),
            serve_expired: self.serve_expired.or(d.serve_expired),
        }
    }
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct MasterConfig {
    /// Store URL (`postgres://…` or `sqlite:PATH`): every write (cluster state, leases,
    /// warnings) goes there, and every read unless `read_store` is set.
    pub store: String,
    /// A PostgreSQL hot-standby replica of `store` (`master.read_store`): the journal follower
    /// and the resume of satellites older than the window read it, by polling every
    /// `poll_interval` (NOTIFY does not reach a standby). `None`: read `store`.
    pub read_store: Option<String>,
    /// Addresses the link listens on.
    pub listen: Vec<SocketAddr>,
    /// The master's CA, certificate and key.
    pub tls: TlsFiles,
    pub follow: FollowSettings,
    pub link: LinkSettings,
    /// This master in the cluster state.
    pub cluster: ClusterSettings,
    pub maintenance: MaintenanceSettings,
    pub watchdog: WatchdogSettings,
    /// Signing signed zones in the change path (issue 13).
    pub dnssec: DnssecSettings,
    /// Where this master serves Prometheus metrics; `None`: no metrics listener.
    pub metrics: Option<SocketAddr>,
    /// Every satellite the master knows, by identity.
    pub satellites: BTreeMap<SatelliteId, SatelliteSettings>,
    /// What is accepted but most likely a mistake (a leaf no chain uses, a Selector no
    /// satellite uses): `run` logs each, `check-config` prints each.
    pub warnings: Vec<String>,
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

/// This master's part in the cluster state (`orrery_store::cluster`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Its name in `cluster_master`, in leases and in `status`.
    pub id: String,
    /// How often it writes its heartbeat; other masters and `status` take it for gone after
    /// [`ClusterSettings::stale_after`].
    pub heartbeat: Duration,
    /// Statistics samples kept per satellite (rates need two).
    pub stats_history: usize,
}

impl ClusterSettings {
    /// Five missed heartbeats.
    pub fn stale_after(&self) -> Duration {
        self.heartbeat * 5
    }
}

/// The store's housekeeping (`crate::maintenance`), on the master holding its lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenanceSettings {
    /// How often it runs (`master.maintenance_interval_ms`, default an hour).
    pub interval: Duration,
    /// Journal serials kept behind the head (`master.journal_keep`); `None`: no pruning.
    pub journal_keep: Option<u64>,
}

/// The default heartbeat of the cluster state: a dead master is noticed within 10 s.
pub const DEFAULT_CLUSTER_HEARTBEAT: Duration = Duration::from_secs(2);

/// The watchdog's rules and thresholds (`[watchdog]`). `None` or 0 turns a rule off.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchdogSettings {
    /// Whether this master takes part in the watchdog election at all.
    pub enabled: bool,
    /// How often the rules are evaluated and the lease renewed; the lease lasts three.
    pub interval: Duration,
    /// A satellite that has not checked in for this many of its intervals.
    pub missed_checkins: u32,
    /// A satellite this many serials behind the store's journal …
    pub serial_lag: u64,
    /// … or holding a change committed this long ago that it has not applied.
    pub serial_lag_seconds: u64,
    /// SERVFAIL answers over all answers between two check-ins, above this.
    pub servfail_ratio: f64,
    /// Errors (dropped, malformed, refused …) over all queries between two check-ins.
    pub error_ratio: f64,
    /// Ratios are judged only over at least this many answers (queries).
    pub min_responses: u64,
    /// Resident memory above the satellite's budget.
    pub memory_over_budget: bool,
    /// A satellite refusing (part of) its configuration.
    pub refused_config: bool,
    /// A satellite's or master's link certificate expiring within this many days.
    pub cert_expiry_days: u32,
    /// At least this many rows quarantined by a master.
    pub quarantined_rows: u64,
    /// A zone some master cannot sign (its changes withheld).
    pub unsignable_zone: bool,
    /// Fewer than two masters with a fresh heartbeat.
    pub require_standby: bool,
    /// Run on every warning raised and cleared (environment and JSON on stdin).
    pub hook: Option<PathBuf>,
    /// A hook still running after this is killed.
    pub hook_timeout: Duration,
}

impl WatchdogSettings {
    /// The defaults for a store: a standby is expected on PostgreSQL (several masters share
    /// it), not on SQLite (one embedded master).
    pub fn defaults(postgres: bool) -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(10),
            missed_checkins: 3,
            serial_lag: 1000,
            serial_lag_seconds: 60,
            servfail_ratio: 0.01,
            error_ratio: 0.05,
            min_responses: 100,
            memory_over_budget: true,
            refused_config: true,
            cert_expiry_days: 21,
            quarantined_rows: 1,
            unsignable_zone: true,
            require_standby: postgres,
            hook: None,
            hook_timeout: Duration::from_secs(10),
        }
    }
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
    /// A parse or field error of the file at `path` (what [`MasterConfig::load`] returns).
    #[error("{}: {error}", path.display())]
    InFile {
        path: PathBuf,
        /// Not a `source`: its text is already in this one's.
        error: Box<Self>,
    },
}

/// The URL schemes the store opens (`orrery_store::Store::open`).
const STORE_SCHEMES: [&str; 3] = ["postgres:", "postgresql:", "sqlite:"];

/// A URL for messages: anything between `://` and `@` (credentials) is hidden.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            format!("{}://…@{}", &url[..start], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl From<FieldError> for ConfigError {
    fn from(e: FieldError) -> Self {
        Self::Field {
            field: e.field,
            message: e.message,
        }
    }
}

fn field(field: impl Into<String>, message: impl ToString) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        message: message.to_string(),
    }
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
        Self::parse(&text, base).map_err(|e| ConfigError::InFile {
            path: path.to_owned(),
            error: Box::new(e),
        })
    }

    /// Validates configuration text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text)?;
        let m = file.master;
        if m.store.trim().is_empty() {
            return Err(field("master.store", "empty"));
        }
        if !STORE_SCHEMES
            .iter()
            .any(|scheme| m.store.starts_with(scheme))
        {
            return Err(field(
                "master.store",
                format!(
                    "unsupported store URL {:?}: use postgres://… or sqlite:PATH",
                    redact_url(&m.store)
                ),
            ));
        }
        if let Some(read) = &m.read_store {
            let postgres = |u: &str| u.starts_with("postgres:") || u.starts_with("postgresql:");
            if !postgres(read) {
                return Err(field(
                    "master.read_store",
                    format!(
                        "unsupported URL {:?}: a hot-standby replica is postgres://…",
                        redact_url(read)
                    ),
                ));
            }
            if !postgres(&m.store) {
                return Err(field(
                    "master.read_store",
                    "needs a PostgreSQL master.store (the primary it replicates)",
                ));
            }
        }
        let listen = settings_file::addrs("master.listen", &m.listen)?;
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
        let cluster = ClusterSettings {
            id: match m.id {
                Some(id) if id.trim().is_empty() || id.contains(',') => {
                    return Err(field("master.id", "empty or contains a comma"));
                }
                Some(id) => id,
                None => format!("{}:{}", hostname(), listen[0].port()),
            },
            heartbeat: Duration::from_millis(positive(
                "master.cluster_heartbeat_ms",
                m.cluster_heartbeat_ms,
                DEFAULT_CLUSTER_HEARTBEAT.as_millis() as u64,
            )?),
            stats_history: match m.stats_history {
                Some(n) if n < 2 => {
                    return Err(field("master.stats_history", "at least 2 (rates need two)"));
                }
                Some(n) => n,
                None => 120,
            },
        };
        let maintenance = MaintenanceSettings {
            interval: Duration::from_millis(positive(
                "master.maintenance_interval_ms",
                m.maintenance_interval_ms,
                3_600_000,
            )?),
            journal_keep: match m.journal_keep {
                Some(0) => return Err(field("master.journal_keep", "must be above 0")),
                keep => keep,
            },
        };
        let metrics = m
            .metrics
            .as_deref()
            .map(|a| {
                a.parse::<SocketAddr>()
                    .map_err(|e| field("master.metrics", format!("{a:?}: {e}")))
            })
            .transpose()?;
        let watchdog = watchdog(file.watchdog, m.store.starts_with("postgres"), &path)?;
        let tls = TlsFiles {
            ca: path(file.tls.ca),
            cert: path(file.tls.cert),
            key: path(file.tls.key),
        };

        let dnssec = DnssecSettings {
            key_dir: file.dnssec.key_dir.map(path),
            refresh_check: Duration::from_millis(positive(
                "dnssec.refresh_check_ms",
                file.dnssec.refresh_check_ms,
                600_000,
            )?),
        };

        let mut selectors = Selectors {
            tables: &file.selectors,
            checked: BTreeMap::new(),
            warnings: Vec::new(),
        };
        let mut satellites = BTreeMap::new();
        for (name, section) in file.satellites {
            let id = SatelliteId::new(&name).map_err(|e| field(format!("satellites.{name}"), e))?;
            let settings = satellite(
                id.as_str(),
                section.or(&file.satellite_defaults),
                &mut selectors,
            )?;
            if satellites.insert(id, settings).is_some() {
                return Err(field(
                    format!("satellites.{name}"),
                    "defined twice (names are case-insensitive)",
                ));
            }
        }
        let mut warnings = selectors.warnings;
        for name in file.selectors.keys() {
            if !selectors.checked.keys().any(|(n, _)| n == name) {
                warnings.push(format!(
                    "selectors.{name}: no satellite uses it (not checked)"
                ));
            }
        }
        Ok(Self {
            store: m.store,
            read_store: m.read_store,
            listen,
            tls,
            follow,
            link,
            cluster,
            maintenance,
            watchdog,
            dnssec,
            metrics,
            satellites,
            warnings,
        })
    }
}

/// The machine's host name (`HOSTNAME`, then /etc/hostname), `localhost` when unknown.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn watchdog(
    w: WatchdogSection,
    postgres: bool,
    path: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<WatchdogSettings, ConfigError> {
    let d = WatchdogSettings::defaults(postgres);
    let ratio = |name: &str, v: Option<f64>, default: f64| match v {
        Some(r) if !(0.0..=1.0).contains(&r) => {
            Err(field(format!("watchdog.{name}"), "must be between 0 and 1"))
        }
        Some(r) => Ok(r),
        None => Ok(default),
    };
    Ok(WatchdogSettings {
        enabled: w.enabled.unwrap_or(d.enabled),
        interval: Duration::from_millis(positive(
            "watchdog.interval_ms",
            w.interval_ms,
            d.interval.as_millis() as u64,
        )?),
        missed_checkins: w.missed_checkins.unwrap_or(d.missed_checkins),
        serial_lag: w.serial_lag.unwrap_or(d.serial_lag),
        serial_lag_seconds: w.serial_lag_seconds.unwrap_or(d.serial_lag_seconds),
        servfail_ratio: ratio("servfail_ratio", w.servfail_ratio, d.servfail_ratio)?,
        error_ratio: ratio("error_ratio", w.error_ratio, d.error_ratio)?,
        min_responses: w.min_responses.unwrap_or(d.min_responses),
        memory_over_budget: w.memory_over_budget.unwrap_or(d.memory_over_budget),
        refused_config: w.refused_config.unwrap_or(d.refused_config),
        cert_expiry_days: w.cert_expiry_days.unwrap_or(d.cert_expiry_days),
        quarantined_rows: w.quarantined_rows.unwrap_or(d.quarantined_rows),
        unsignable_zone: w.unsignable_zone.unwrap_or(d.unsignable_zone),
        require_standby: w.require_standby.unwrap_or(d.require_standby),
        hook: w.hook.map(path),
        hook_timeout: Duration::from_millis(positive(
            "watchdog.hook_timeout_ms",
            w.hook_timeout_ms,
            d.hook_timeout.as_millis() as u64,
        )?),
    })
}

/// Default check-in interval: once a minute, as in the Registry Advantage design.
pub const DEFAULT_CHECKIN_INTERVAL: Duration = Duration::from_secs(60);

/// The `[selectors.NAME]` tables, each checked once per service that uses it.
struct Selectors<'a> {
    tables: &'a BTreeMap<String, toml::Table>,
    /// The link's TOML text of each table checked, by name and service.
    checked: BTreeMap<(String, &'static str), String>,
    warnings: Vec<String>,
}

impl Selectors<'_> {
    /// The TOML text for the link of `[selectors.NAME]`, checked as the Selector of service
    /// `C` (`service` names it in the cache) with the satellite's parser and validator.
    /// `used_by` names the satellite field for a missing table.
    fn text<C: LeafSettings>(
        &mut self,
        name: &str,
        service: &'static str,
        used_by: String,
    ) -> Result<String, ConfigError> {
        if let Some(text) = self.checked.get(&(name.to_owned(), service)) {
            return Ok(text.clone());
        }
        let table = self
            .tables
            .get(name)
            .ok_or_else(|| field(used_by, format!("no [selectors.{name}] table")))?;
        let config = SelectorConfig::<C>::from_table(table)
            .and_then(|c| c.validate().map(|()| c))
            .map_err(|e| field(format!("selectors.{name}.{}", e.path()), e.reason()))?;
        for leaf in config.unused_leaves() {
            let warning = format!("selectors.{name}.leaves.{leaf}: no chain uses it");
            // A table used by both services is checked twice; say it once.
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
        }
        // The text the satellite parses is the table as written: it was just checked.
        let text = toml::to_string(table).map_err(|e| field(format!("selectors.{name}"), e))?;
        self.checked
            .insert((name.to_owned(), service), text.clone());
        Ok(text)
    }
}

fn satellite(
    name: &str,
    s: SatelliteSection,
    selectors: &mut Selectors<'_>,
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
    // The service tables are read by the code that reads a standalone satellite's file.
    let dns = s.dns.map(|d| d.read(&f("dns"))).transpose()?;
    let whois = s.whois.map(|w| w.read(&f("whois"))).transpose()?;
    let rdap = s.rdap.map(|r| r.read(&f("rdap"))).transpose()?;
    let xfr = s.xfr.map(|x| x.read(&f("xfr"))).transpose()?;
    if dns.is_none() && whois.is_none() && rdap.is_none() {
        return Err(field(
            format!("satellites.{name}"),
            "serves nothing: give it dns, whois and/or rdap",
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
    // Over the link an empty NSID means none; the length is the satellite's check, below.
    if s.nsid.as_deref() == Some("") {
        return Err(field(f("nsid"), "empty (leave it out for no NSID)"));
    }
    if s.hostname.as_deref() == Some("") {
        return Err(field(f("hostname"), "empty"));
    }
    let selector_toml = match s.selector.as_deref() {
        Some(sel) => selectors.text::<LeafConfig>(sel, "dns", f("selector"))?,
        None => String::new(),
    };
    let rds_selector_toml = match s.rds_selector.as_deref() {
        Some(sel) => selectors.text::<RdsLeafConfig>(sel, "rds", f("rds_selector"))?,
        None => String::new(),
    };
    let settings = SatelliteSettings {
        checkin_interval,
        dns,
        whois,
        rdap,
        workers: s.workers,
        memory_budget,
        nsid: s.nsid.map(String::into_bytes),
        hostname: s.hostname,
        selector_toml,
        rds_selector_toml,
        metrics: s
            .metrics
            .as_deref()
            .map(|a| {
                a.parse::<SocketAddr>()
                    .map_err(|e| field(f("metrics"), format!("{a:?}: {e}")))
            })
            .transpose()?,
        xfr,
        serve_expired: s.serve_expired.unwrap_or(true),
    };
    // What the satellite checks on receipt, checked here by the same code on the message the
    // master will send: anything it would refuse is refused at load.
    SatelliteSettings::try_from(pb::SatelliteConfig::from(&settings))
        .map_err(|e| field(f(e.field), e.reason))?;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_proto::Prefix;
    use orrery_proto::link::{RdapListen, RdapTls, WhoisListen};

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

    /// `serve_expired`: `true` unless set, inherited from `[satellite_defaults]`, overridden by
    /// a satellite's table, and sent on the link.
    #[test]
    fn serve_expired_defaults_inherits_and_is_sent() {
        let get = |text: &str, sat: &str| {
            MasterConfig::parse(text, Path::new("/base"))
                .unwrap()
                .satellites[&SatelliteId::new(sat).unwrap()]
                .serve_expired
        };
        assert!(get(MINIMAL, "sat1") && get(MINIMAL, "sat2"));
        let off = MINIMAL.replace(
            "checkin_interval_ms = 30000",
            "checkin_interval_ms = 30000\nserve_expired = false",
        );
        assert!(!get(&off, "sat1") && !get(&off, "sat2"));
        let one_on = off.replace("nsid = \"sat1\"", "nsid = \"sat1\"\nserve_expired = true");
        assert!(get(&one_on, "sat1") && !get(&one_on, "sat2"));
        let c = MasterConfig::parse(&off, Path::new("/base")).unwrap();
        let s1 = &c.satellites[&SatelliteId::new("sat1").unwrap()];
        assert!(pb::SatelliteConfig::from(s1).servfail_expired);
        assert!(
            err(&MINIMAL.replace("nsid = \"sat1\"", "serve_expired = \"no\""))
                .contains("serve_expired")
        );
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
        assert_eq!(s2.whois.as_ref().unwrap().tcp.len(), 1);
        assert!(s2.rdap.is_none());
        assert_eq!(s2.rds_selector_toml, "");
    }

    #[test]
    fn a_read_replica_is_postgresql_beside_a_postgresql_primary() {
        let pg = MINIMAL.replace(
            "store = \"sqlite:orrery.db\"",
            "store = \"postgres://primary/orrery\"\nread_store = \"postgres://replica/orrery\"",
        );
        assert_ne!(pg, MINIMAL);
        let c = MasterConfig::parse(&pg, Path::new("/base")).unwrap();
        assert_eq!(c.read_store.as_deref(), Some("postgres://replica/orrery"));
        assert_eq!(c.store, "postgres://primary/orrery");
        let e = err(&pg.replace("postgres://replica/orrery", "sqlite:replica.db"));
        assert!(
            e.contains("master.read_store") && e.contains("postgres://"),
            "{e}"
        );
        let e = err(&MINIMAL.replace(
            "store = \"sqlite:orrery.db\"",
            "store = \"sqlite:orrery.db\"\nread_store = \"postgres://replica/orrery\"",
        ));
        assert!(e.contains("needs a PostgreSQL master.store"), "{e}");
        assert_eq!(
            MasterConfig::parse(MINIMAL, Path::new("/base"))
                .unwrap()
                .read_store,
            None
        );
    }

    #[test]
    fn errors_of_a_loaded_file_name_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.toml");
        std::fs::write(&path, "[master]\nstore = 3\n").unwrap();
        let e = MasterConfig::load(&path).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: ", path.display())), "{e}");
        std::fs::write(&path, MINIMAL.replace("127.0.0.1:7443", "nowhere")).unwrap();
        let e = MasterConfig::load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: ", path.display())) && e.contains("master.listen"),
            "{e}"
        );
    }

    /// A configuration with Whois and RDAP; `WHOIS2` and `RDAP2` stand for sat2's services.
    const SERVICES: &str = r#"
        [master]
        store = "sqlite:orrery.db"
        listen = ["127.0.0.1:7443"]
        [tls]
        ca = "ca.pem"
        cert = "master.pem"
        key = "master.key"
        [satellite_defaults]
        rds_selector = "rds"
        rdap = { http = ["127.0.0.1:8080"] }
        [selectors.rds]
        chains = [{ name = "main", leaves = ["limit", "lookup"] }]
        [selectors.rds.leaves.limit]
        kind = "rate_limit"
        address_rate = 5.0
        address_burst = 20
        prefix_rate = 50.0
        prefix_burst = 200
        [selectors.rds.leaves.lookup]
        kind = "lookup"
        [satellites.sat1]
        [satellites.sat2]
        WHOIS2
        RDAP2
    "#;

    const WHOIS2: &str = r#"whois = { tcp = ["[::1]:4343"], max_connections = 64, max_connections_per_address = 4, timeout_ms = 5000 }"#;
    const RDAP2: &str = r#"rdap = { https = ["[::1]:8443"], tls_cert = "/etc/orrery/rdap.pem", tls_key = "/etc/orrery/rdap.key", base_url = "https://rdap.nic.test", max_connections = 1000, max_connections_per_address = 20, timeout_ms = 10000, trusted_proxies = ["10.0.0.0/8", "2001:db8::53"] }"#;

    fn services(whois: &str, rdap: &str) -> String {
        SERVICES.replace("WHOIS2", whois).replace("RDAP2", rdap)
    }

    #[test]
    fn whois_rdap_and_their_selector() {
        let c = MasterConfig::parse(&services(WHOIS2, RDAP2), Path::new("/base")).unwrap();
        // sat1 sets nothing: RDAP alone, from the defaults, is something to serve.
        let s1 = &c.satellites[&SatelliteId::new("sat1").unwrap()];
        assert!(s1.dns.is_none() && s1.whois.is_none());
        assert_eq!(
            s1.rdap,
            Some(RdapListen {
                http: vec!["127.0.0.1:8080".parse().unwrap()],
                ..RdapListen::default()
            })
        );
        let table: toml::Table = toml::from_str(&s1.rds_selector_toml).unwrap();
        assert!(table["leaves"].get("limit").is_some(), "{table}");
        assert_eq!(s1.selector_toml, "");

        let s2 = &c.satellites[&SatelliteId::new("sat2").unwrap()];
        assert_eq!(
            s2.whois,
            Some(WhoisListen {
                tcp: vec!["[::1]:4343".parse().unwrap()],
                max_connections: Some(64),
                timeout: Some(Duration::from_secs(5)),
                max_connections_per_address: Some(4),
            })
        );
        // The TLS paths stay as written (not under /base), the base URL gains its `/`.
        assert_eq!(
            s2.rdap,
            Some(RdapListen {
                http: vec![],
                https: vec!["[::1]:8443".parse().unwrap()],
                tls: Some(RdapTls {
                    cert: "/etc/orrery/rdap.pem".into(),
                    key: "/etc/orrery/rdap.key".into(),
                }),
                base_url: Some("https://rdap.nic.test/".into()),
                max_connections: Some(1000),
                timeout: Some(Duration::from_secs(10)),
                trusted_proxies: vec![
                    Prefix::parse("10.0.0.0/8").unwrap(),
                    Prefix::parse("2001:db8::53/128").unwrap(),
                ],
                max_connections_per_address: Some(20),
            })
        );
        assert_eq!(s2.rds_selector_toml, s1.rds_selector_toml);
        // What the master sends, the satellite accepts.
        let msg = pb::SatelliteConfig::from(s2);
        assert_eq!(&SatelliteSettings::try_from(msg).unwrap(), s2);
    }

    #[test]
    fn bad_whois_and_rdap_fields_are_named() {
        let rdap_err = |rdap: &str| err(&services(WHOIS2, rdap));
        let whois_err = |whois: &str| err(&services(whois, RDAP2));

        let e = rdap_err(r#"rdap = { https = ["[::1]:8443"] }"#);
        assert!(
            e.contains("satellites.sat2.rdap.https") && e.contains("tls_cert"),
            "{e}"
        );
        let e = rdap_err(r#"rdap = { https = ["[::1]:8443"], tls_cert = "/c.pem" }"#);
        assert!(e.contains("satellites.sat2.rdap.tls_key"), "{e}");
        let e = rdap_err(r#"rdap = { https = ["[::1]:8443"], tls_key = "/k.pem" }"#);
        assert!(e.contains("satellites.sat2.rdap.tls_cert"), "{e}");
        let e = rdap_err(r#"rdap = { http = [":80"], tls_cert = "/c.pem", tls_key = "/k.pem" }"#);
        assert!(e.contains("satellites.sat2.rdap.http"), "{e}");
        let e = rdap_err(r#"rdap = { http = ["[::1]:80"], tls_cert = "/c", tls_key = "/k" }"#);
        assert!(
            e.contains("satellites.sat2.rdap.tls_cert") && e.contains("no https"),
            "{e}"
        );
        let e = rdap_err(&RDAP2.replace("\"/etc/orrery/rdap.key\"", "\"rdap.key\""));
        assert!(
            e.contains("satellites.sat2.rdap.tls_key") && e.contains("absolute"),
            "{e}"
        );
        let e = rdap_err("rdap = {}");
        assert!(
            e.contains("satellites.sat2.rdap:") && e.contains("no http or https"),
            "{e}"
        );
        let e = rdap_err(&RDAP2.replace("https://rdap.nic.test", "ftp://rdap.nic.test"));
        assert!(e.contains("satellites.sat2.rdap.base_url"), "{e}");
        let e = rdap_err(&RDAP2.replace("https://rdap.nic.test", "https://"));
        assert!(e.contains("satellites.sat2.rdap.base_url"), "{e}");
        let e = rdap_err(&RDAP2.replace("10.0.0.0/8", "10.0.0.0/40"));
        assert!(e.contains("satellites.sat2.rdap.trusted_proxies"), "{e}");
        let e = rdap_err(&RDAP2.replace("per_address = 20", "per_address = 0"));
        assert!(
            e.contains("satellites.sat2.rdap.max_connections_per_address"),
            "{e}"
        );
        let e = rdap_err(&RDAP2.replace("max_connections = 1000", "max_connections = 0"));
        assert!(e.contains("satellites.sat2.rdap.max_connections"), "{e}");
        let e = rdap_err(&RDAP2.replace("timeout_ms = 10000", "timeout_ms = 5000000000"));
        assert!(e.contains("satellites.sat2.rdap.timeout_ms"), "{e}");
        let e = rdap_err(&RDAP2.replace("max_connections", "max_conns"));
        assert!(e.contains("max_conns"), "{e}");

        let e = whois_err(r#"whois = { tcp = [] }"#);
        assert!(e.contains("satellites.sat2.whois.tcp"), "{e}");
        let e = whois_err(&WHOIS2.replace("timeout_ms = 5000", "timeout_ms = 0"));
        assert!(e.contains("satellites.sat2.whois.timeout_ms"), "{e}");
        let e = whois_err(&WHOIS2.replace("max_connections = 64", "max_connections = 0"));
        assert!(e.contains("satellites.sat2.whois.max_connections"), "{e}");
        let e = whois_err(&WHOIS2.replace("per_address = 4", "per_address = 0"));
        assert!(
            e.contains("satellites.sat2.whois.max_connections_per_address"),
            "{e}"
        );

        let e =
            err(&services(WHOIS2, RDAP2).replace("rds_selector = \"rds\"", "rds_selector = \"x\""));
        assert!(
            e.contains("satellites.sat1.rds_selector") && e.contains("selectors.x"),
            "{e}"
        );
        // Without the defaults' RDAP, sat1 serves nothing.
        let e = err(&services(WHOIS2, RDAP2).replace("rdap = { http = [\"127.0.0.1:8080\"] }", ""));
        assert!(
            e.contains("satellites.sat1") && e.contains("serves nothing"),
            "{e}"
        );
    }

    /// The DNS service's TCP limits and UDP layout are the master's to send: read here,
    /// checked by the satellite's receipt check, named by their field when refused.
    #[test]
    fn dns_tcp_and_udp_settings_are_sent() {
        let dns = |table: &str| {
            MINIMAL.replace(
                "dns = { udp = [\"127.0.0.1:5353\"] }",
                &format!("dns = {{ udp = [\"127.0.0.1:5353\"], {table} }}"),
            )
        };
        let text = dns("tcp_idle_timeout_ms = 3000, tcp_max_connections = 50, \
             tcp_max_connections_per_address = 5, tcp_max_queries = 200, udp_batch = 8, \
             udp_reuseport = false, cpu_affinity = [1, 0]");
        let c = MasterConfig::parse(&text, Path::new("/base")).unwrap();
        let d = c.satellites[&SatelliteId::new("sat1").unwrap()]
            .dns
            .clone()
            .unwrap();
        assert_eq!(d.tcp_idle_timeout, Some(Duration::from_secs(3)));
        assert_eq!(
            (
                d.tcp_max_connections,
                d.tcp_max_connections_per_address,
                d.tcp_max_queries
            ),
            (Some(50), Some(5), Some(200))
        );
        assert_eq!((d.udp_batch, d.udp_reuseport), (Some(8), Some(false)));
        assert_eq!(d.cpu_affinity, [1, 0]);
        // What the satellite would refuse is refused at load, by its field.
        for (table, bad) in [
            (
                "udp_batch = 65",
                "satellites.sat1.dns.udp_batch: 65, at most 64",
            ),
            (
                "udp_batch = 0",
                "satellites.sat1.dns.udp_batch: must be above 0",
            ),
            ("cpu_affinity = [1024]", "satellites.sat1.dns.cpu_affinity"),
            (
                "tcp_max_connections = 70000",
                "satellites.sat1.dns.tcp_max_connections",
            ),
            (
                "tcp_idle_timeout_ms = 0",
                "satellites.sat1.dns.tcp_idle_timeout_ms",
            ),
            ("tcp_max_queries = 0", "satellites.sat1.dns.tcp_max_queries"),
        ] {
            let e = err(&dns(table));
            assert!(e.contains(bad), "{table}: {e}");
        }
    }

    #[test]
    fn cluster_and_watchdog_defaults_and_fields() {
        let c = MasterConfig::parse(MINIMAL, Path::new("/base")).unwrap();
        assert!(c.cluster.id.ends_with(":7443"), "{}", c.cluster.id);
        assert_eq!(c.cluster.heartbeat, DEFAULT_CLUSTER_HEARTBEAT);
        // SQLite: one master, no standby expected.
        assert_eq!(c.watchdog, WatchdogSettings::defaults(false));
        assert!(!c.watchdog.require_standby);
        let pg = MINIMAL.replace("sqlite:orrery.db", "postgres://db/orrery");
        let c = MasterConfig::parse(&pg, Path::new("/base")).unwrap();
        assert!(c.watchdog.require_standby);

        let text = MINIMAL.replace(
            "[satellite_defaults]",
            "[watchdog]\ninterval_ms = 500\nmissed_checkins = 0\nservfail_ratio = 0.5\n\
             hook = \"hooks/page\"\n[satellite_defaults]",
        );
        let text = text.replace(
            "listen = [\"127.0.0.1:7443\"]",
            "listen = [\"127.0.0.1:7443\"]\nid = \"m1\"\nstats_history = 10",
        );
        let c = MasterConfig::parse(&text, Path::new("/base")).unwrap();
        assert_eq!(c.cluster.id, "m1");
        assert_eq!(c.cluster.stats_history, 10);
        assert_eq!(c.watchdog.interval, Duration::from_millis(500));
        assert_eq!(c.watchdog.missed_checkins, 0);
        assert_eq!(c.watchdog.servfail_ratio, 0.5);
        assert_eq!(
            c.watchdog.hook.as_deref(),
            Some(Path::new("/base/hooks/page"))
        );

        assert!(err(&text.replace("0.5", "1.5")).contains("watchdog.servfail_ratio"));
        assert!(
            err(&text.replace("interval_ms = 500", "interval_ms = 0"))
                .contains("watchdog.interval_ms")
        );
        assert!(err(&text.replace("missed_checkins", "missed_chekins")).contains("missed_chekins"));
        assert!(err(&text.replace("id = \"m1\"", "id = \"a,b\"")).contains("master.id"));
        assert!(
            err(&text.replace("stats_history = 10", "stats_history = 1"))
                .contains("master.stats_history")
        );
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
        assert_eq!(s2.metrics, Some("0.0.0.0:9153".parse().unwrap()));
        assert_eq!(c.metrics, Some("127.0.0.1:9154".parse().unwrap()));
        let selector: toml::Table = toml::from_str(&s2.selector_toml).unwrap();
        assert_eq!(selector["chains"].as_array().unwrap().len(), 2);
        let s1 = &c.satellites[&SatelliteId::new("sat1").unwrap()];
        assert_eq!(s1.whois.as_ref().unwrap().tcp.len(), 1);
        assert_eq!(s1.rdap.as_ref().unwrap().http.len(), 1);
        let xfr = s1.xfr.as_ref().unwrap();
        assert_eq!((xfr.keys.len(), xfr.acl.len(), xfr.notify.len()), (1, 1, 1));
        assert_eq!(xfr.keys[0].secret, b"secret-secret-secret-secret!");
        assert_eq!(xfr.ixfr_window, Some(500));
        assert!(s2.xfr.is_none());
        // Both satellites get the registration data Selector from the defaults.
        assert_eq!(s1.rds_selector_toml, s2.rds_selector_toml);
        let rds: toml::Table = toml::from_str(&s2.rds_selector_toml).unwrap();
        assert_eq!(rds["chains"][0]["leaves"].as_array().unwrap().len(), 4);
        assert!(s1.serve_expired && s2.serve_expired);
        assert_eq!(rds["leaves"]["limit"]["kind"].as_str(), Some("rate_limit"));
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
        let e = err(&MINIMAL.replace("[master]", "[master]\nmetrics = \"localhost:1\""));
        assert!(e.contains("master.metrics"), "{e}");
        let e = err(&MINIMAL.replace("nsid = \"sat1\"", "metrics = \"nowhere\""));
        assert!(e.contains("satellites.sat1.metrics"), "{e}");
        let e = err(&MINIMAL.replace("sqlite:orrery.db", "mysql://u:secret@db/orrery"));
        assert!(
            e.contains("master.store") && e.contains("unsupported") && !e.contains("secret"),
            "{e}"
        );
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

    #[test]
    fn selectors_are_checked_for_the_service_that_uses_them() {
        let e = err(&MINIMAL.replace("kind = \"lookup\"", "kind = \"lookpu\""));
        assert!(
            e.starts_with("config field selectors.std.leaves.lookup: unknown kind \"lookpu\""),
            "{e}"
        );
        // The same table as a Whois/RDAP Selector is checked again, with that service's kinds.
        let both = MINIMAL.replace(
            "checkin_interval_ms = 1000",
            "checkin_interval_ms = 1000\nrds_selector = \"std\"",
        );
        let c = MasterConfig::parse(&both, Path::new("/base")).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let e = err(&both.replace("kind = \"lookup\"", "kind = \"chaos\""));
        assert!(
            e.contains("selectors.std.leaves.lookup: unknown kind \"chaos\""),
            "{e}"
        );
        // A table no satellite uses cannot be checked (its service is unknown): a warning.
        let spare = format!("{MINIMAL}\n[selectors.spare]\nbogus = 1\n");
        let c = MasterConfig::parse(&spare, Path::new("/base")).unwrap();
        assert_eq!(
            c.warnings,
            ["selectors.spare: no satellite uses it (not checked)"]
        );
    }
}
