//! The standalone satellite's configuration (no master): a TOML file read into the same
//! [`SatelliteSettings`] a master sends, and checked by the same receipt check
//! (`SatelliteSettings::try_from` of the message), so that a file is accepted exactly when a
//! master could have sent it. Every table refuses unknown fields; errors name the bad field.
//!
//! ```text
//!  [server]   DNS: udp, tcp, workers, the TCP limits and UDP settings  ─┐ the master's `dns`
//!  [edns]     nsid (text) or nsid_hex                                  │ table and fields,
//!  [whois]    tcp, max_connections, …  (optional)                      │ read by the same
//!  [rdap]     http, https, tls_cert, …  (optional)                     │ code (orrery_proto::
//!  [leaves.*] + [[chains]]            the DNS Selector                 │ link::settings_file)
//!  [xfr]      keys, acl, notify, limits (optional)                     │
//!  [rds]      leaves + chains         the Whois/RDAP Selector          ─┘
//!             (optional: the built-in default chain)
//! ```
//!
//! The Selector tables are the plain-data description ([`SelectorConfig`]) parsed and
//! validated by the functions that check the master's `[selectors.NAME]` tables and the
//! Selector a master sends; each is built once here as well. See `deploy/satellite.example.toml` for
//! every field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(test)]
use orrery_proto::link::convert::MAX_NSID_LEN;
use orrery_proto::link::settings_file::{
    DnsSection, FieldError, RdapSection, WhoisSection, XfrSection,
};
use orrery_proto::link::{SatelliteSettings, pb};
use serde::Deserialize;

use crate::dns::leaf::Dns;
use crate::dns::leaf::{SelectorConfig, SelectorError};
use crate::dns::server::ServerSettings;
use crate::rds::Rds;
use crate::rds::leaf::{DEFAULT_SELECTOR as DEFAULT_RDS_SELECTOR, RdsLeafConfig};
use crate::selector::Selector;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Where to serve Prometheus metrics, `IP:PORT` (the master's `satellites.NAME.metrics`);
    /// absent: no metrics listener.
    metrics: Option<String>,
    /// The DNS service (a standalone satellite always serves DNS).
    server: ServerSection,
    #[serde(default)]
    edns: EdnsSection,
    whois: Option<WhoisSection>,
    rdap: Option<RdapSection>,
    /// Zone transfer out, the master's `xfr` table.
    xfr: Option<XfrSection>,
    /// The master's `serve_expired`: `false` answers SERVFAIL for a zone past its SOA
    /// EXPIRE, counted from the last contact with a master the state file's `.heard` records
    /// (else from the file's modification time); default `true`.
    serve_expired: Option<bool>,
    /// The Whois/RDAP Selector's `leaves` and `chains`.
    rds: Option<toml::Table>,
    /// The DNS Selector's tables, parsed by [`SelectorConfig::from_table`] so that errors name
    /// the leaf as the master's do.
    leaves: toml::Table,
    chains: toml::Value,
}

/// `[server]`: the master's `dns` table, and the worker count (a satellite-wide field on the
/// master). The rest is read as a [`DnsSection`] on its own, which refuses unknown fields
/// (serde's `flatten` would let them through).
#[derive(Debug, Deserialize)]
struct ServerSection {
    workers: Option<u32>,
    #[serde(flatten)]
    dns: toml::Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EdnsSection {
    /// NSID as text.
    nsid: Option<String>,
    /// NSID as hex, for binary identifiers.
    nsid_hex: Option<String>,
}

/// The check-in interval the settings need: a standalone satellite never checks in.
const STANDALONE_CHECKIN_INTERVAL: Duration = Duration::from_secs(60);

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// What the file says, as a master would send it.
    pub settings: SatelliteSettings,
    /// How DNS is served (from `settings`, defaults filled in).
    pub server: ServerSettings,
    /// The DNS Selector (`settings.selector_toml`, parsed).
    pub selector: SelectorConfig,
    /// The Whois/RDAP Selector (`settings.rds_selector_toml`, or the default chain).
    pub rds_selector: SelectorConfig<RdsLeafConfig>,
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
    #[error("config field {0}")]
    Selector(#[from] SelectorError),
}

impl From<FieldError> for ConfigError {
    fn from(e: FieldError) -> Self {
        Self::Field {
            field: e.field,
            message: e.message,
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and validates configuration text; the Selectors are built once to check them.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text)?;
        let field = |field: &str, message: String| ConfigError::Field {
            field: field.to_owned(),
            message,
        };
        let dns = toml::Value::Table(file.server.dns)
            .try_into::<DnsSection>()
            .map_err(|e| field("server", e.message().to_owned()))?
            .read("server")?;
        let workers = file.server.workers;
        if workers == Some(0) {
            return Err(field(
                "server.workers",
                "must be above 0 (leave it out to let the satellite choose)".into(),
            ));
        }
        let whois = file.whois.map(|w| w.read("whois")).transpose()?;
        let rdap = file.rdap.map(|r| r.read("rdap")).transpose()?;
        let xfr = file.xfr.map(|x| x.read("xfr")).transpose()?;
        let nsid = match (file.edns.nsid, file.edns.nsid_hex) {
            (Some(_), Some(_)) => {
                return Err(field("edns.nsid", "give nsid or nsid_hex, not both".into()));
            }
            (Some(text), None) => Some(text.into_bytes()),
            (None, Some(hex)) => Some(parse_hex(&hex).ok_or_else(|| {
                field(
                    "edns.nsid_hex",
                    format!("{hex:?} is not an even number of hex digits"),
                )
            })?),
            (None, None) => None,
        };
        // On the link an empty NSID means none; here it is a mistake.
        if nsid.as_ref().is_some_and(Vec::is_empty) {
            return Err(field(
                "edns.nsid",
                "empty (leave it out for no NSID)".into(),
            ));
        }

        let dns_table = toml::Table::from_iter([
            ("leaves".to_owned(), toml::Value::Table(file.leaves)),
            ("chains".to_owned(), file.chains),
        ]);
        let selector = SelectorConfig::from_table(&dns_table)?;
        Selector::<Dns>::build(&selector)?;
        let rds_selector = match &file.rds {
            Some(table) => SelectorConfig::<RdsLeafConfig>::from_table(table),
            None => SelectorConfig::<RdsLeafConfig>::from_toml(DEFAULT_RDS_SELECTOR),
        }
        .map_err(|e| field(&format!("rds.{}", e.path()), e.reason()))?;
        Selector::<Rds>::build(&rds_selector)
            .map_err(|e| field(&format!("rds.{}", e.path()), e.reason()))?;
        let text = |table: &toml::Table, at: &str| {
            toml::to_string(table).map_err(|e| field(at, e.to_string()))
        };
        let settings = SatelliteSettings {
            checkin_interval: STANDALONE_CHECKIN_INTERVAL,
            dns: Some(dns),
            whois,
            rdap,
            workers,
            memory_budget: None,
            nsid,
            hostname: None,
            selector_toml: text(&dns_table, "leaves")?,
            rds_selector_toml: match &file.rds {
                Some(table) => text(table, "rds")?,
                None => String::new(),
            },
            metrics: file
                .metrics
                .as_deref()
                .map(|a| {
                    a.parse::<SocketAddr>()
                        .map_err(|e| field("metrics", format!("{a:?}: {e} (give IP:PORT)")))
                })
                .transpose()?,
            xfr,
            serve_expired: file.serve_expired.unwrap_or(true),
        };
        // The satellite's receipt check, as on settings from a master; its field names are the
        // master's, mapped back to this file's tables.
        let settings =
            SatelliteSettings::try_from(pb::SatelliteConfig::from(&settings)).map_err(|e| {
                let at = match e.field {
                    "dns" => "server".to_owned(),
                    "nsid" => "edns.nsid".to_owned(),
                    "workers" => "server.workers".to_owned(),
                    f => f
                        .strip_prefix("dns.")
                        .map_or_else(|| f.to_owned(), |rest| format!("server.{rest}")),
                };
                field(&at, e.reason)
            })?;
        Ok(Self {
            server: ServerSettings::from_settings(&settings),
            settings,
            selector,
            rds_selector,
        })
    }

    /// The DNS UDP listen addresses.
    pub fn udp(&self) -> &[SocketAddr] {
        self.settings.dns.as_ref().map_or(&[], |d| &d.udp)
    }

    /// The DNS TCP listen addresses.
    pub fn tcp(&self) -> &[SocketAddr] {
        self.settings.dns.as_ref().map_or(&[], |d| &d.tcp)
    }

    /// NSID (RFC 5001), sent when a query asks for it.
    pub fn nsid(&self) -> Option<Vec<u8>> {
        self.settings.nsid.clone()
    }
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::udp::UdpSettings;

    /// The one example, which the README and `quickstart.sh` start a satellite with.
    pub(crate) const EXAMPLE: &str = include_str!("../../deploy/satellite.example.toml");

    /// `serve_expired`: `true` unless the file says otherwise, as from a master.
    #[test]
    fn reads_serve_expired() {
        assert!(Config::parse(EXAMPLE).unwrap().settings.serve_expired);
        let off = Config::parse(&format!("serve_expired = false\n{EXAMPLE}")).unwrap();
        assert!(!off.settings.serve_expired);
        assert!(Config::parse(&format!("serve_expired = 0\n{EXAMPLE}")).is_err());
    }

    #[test]
    fn parses_the_example() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.udp(), ["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(c.tcp(), c.udp());
        assert_eq!(c.server.workers, 2);
        assert_eq!(c.server.udp, UdpSettings::default());
        assert_eq!(c.server.tcp.idle_timeout, Duration::from_secs(10));
        assert_eq!(c.server.tcp.max_connections, 1024);
        assert_eq!(c.nsid().as_deref(), Some(&b"sat1.example"[..]));
        assert_eq!(c.selector.chains[0].name, "main");
        assert_eq!((&c.settings.whois, &c.settings.rdap), (&None, &None));
        assert_eq!(c.rds_selector.chains[0].name, "main");
    }

    /// The example with its commented-out `[whois]`, `[rdap]` and `[rds]` tables enabled.
    pub(crate) fn with_whois_and_rdap(example: &str) -> String {
        let mut out = String::new();
        let mut on = false;
        for line in example.lines() {
            if line.starts_with("# [whois]") || line.starts_with("# [rdap]") {
                on = true;
            } else if !line.starts_with('#') {
                on = false;
            }
            out.push_str(match line.strip_prefix("# ") {
                Some(rest) if on && !rest.starts_with(' ') => rest,
                _ => line,
            });
            out.push('\n');
        }
        out
    }

    #[test]
    fn reads_whois_rdap_and_their_selector_as_the_master_sends_them() {
        let text = with_whois_and_rdap(EXAMPLE);
        let c = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let whois = c.settings.whois.as_ref().expect("whois");
        assert_eq!(whois.tcp, ["127.0.0.1:4343".parse().unwrap()]);
        assert_eq!(whois.timeout, Some(Duration::from_secs(10)));
        let rdap = c.settings.rdap.as_ref().expect("rdap");
        assert_eq!(rdap.http, ["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(rdap.base_url.as_deref(), Some("http://127.0.0.1:8080/"));
        // The settings survive the link's encoding unchanged: a master could send them.
        let sent = pb::SatelliteConfig::from(&c.settings);
        assert_eq!(SatelliteSettings::try_from(sent).unwrap(), c.settings);
        // Errors name the table of this file.
        let text = with_whois_and_rdap(EXAMPLE);
        let err = Config::parse(&text.replace("127.0.0.1:4343", "4343")).unwrap_err();
        assert!(err.to_string().contains("whois.tcp"), "{err}");
        let err = Config::parse(&text.replace(
            "base_url = \"http://127.0.0.1:8080/\"",
            "https = [\"127.0.0.1:8443\"]",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("rdap.https"), "{err}");
        let [bad_rds, bad_kind] = [
            text.replace("[rds.leaves.lookup]", "[rds.leaves.lookup]\nbogus = 1"),
            text.replace(
                "[rds.leaves.lookup]\nkind = \"lookup\"",
                "[rds.leaves.lookup]\nkind = \"chaos\"",
            ),
        ]
        .map(|t| Config::parse(&t).unwrap_err().to_string());
        assert!(
            bad_rds.contains("config field rds.leaves.lookup"),
            "{bad_rds}"
        );
        assert!(
            bad_kind.contains("rds.leaves.lookup: unknown kind \"chaos\""),
            "{bad_kind}"
        );
    }

    #[test]
    fn reads_the_udp_and_tcp_settings() {
        let text = EXAMPLE.replace(
            "workers = 2",
            "workers = 2\nudp_batch = 1\nudp_reuseport = false\ncpu_affinity = [1, 0]\n\
             tcp_max_connections_per_address = 3\ntcp_max_queries = 100",
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(
            c.server.udp,
            UdpSettings {
                batch: 1,
                reuseport: false,
                cpu_affinity: vec![1, 0],
            }
        );
        assert_eq!(c.server.tcp.max_connections_per_address, 3);
        assert_eq!(c.server.tcp.max_queries, Some(100));
    }

    #[test]
    fn reads_the_metrics_listener() {
        assert_eq!(Config::parse(EXAMPLE).unwrap().settings.metrics, None);
        let on = EXAMPLE.replace("# metrics = ", "metrics = ");
        assert_eq!(
            Config::parse(&on).unwrap().settings.metrics,
            Some("127.0.0.1:9153".parse().unwrap())
        );
        let err = Config::parse(&on.replace("127.0.0.1:9153", "localhost")).unwrap_err();
        assert!(err.to_string().contains("config field metrics"), "{err}");
    }

    #[test]
    fn names_bad_fields() {
        let err = Config::parse(&EXAMPLE.replace("workers = 2", "workers = 0")).unwrap_err();
        assert!(err.to_string().contains("server.workers"), "{err}");
        let err = Config::parse(&EXAMPLE.replace("workers = 2", "workers = 5000")).unwrap_err();
        assert!(
            err.to_string()
                .contains("server.workers: 5000, at most 1024"),
            "{err}"
        );
        let err = Config::parse(&EXAMPLE.replace("127.0.0.1:5353", "localhost")).unwrap_err();
        assert!(err.to_string().contains("server.udp"), "{err}");
        let err = Config::parse(&EXAMPLE.replace("[server]", "[server]\nbogus = 1")).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let err =
            Config::parse(&EXAMPLE.replace("\"lookup\"]", "\"lookup\", \"nope\"]")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let err =
            Config::parse(&EXAMPLE.replace("kind = \"lookup\"", "kind = \"lookpu\"")).unwrap_err();
        assert!(
            err.to_string()
                .contains("config field leaves.lookup: unknown kind \"lookpu\""),
            "{err}"
        );
        // The NSID cap (it must fit a 512-octet response beside any question).
        let long = "x".repeat(MAX_NSID_LEN + 1);
        let err = Config::parse(&EXAMPLE.replace("sat1.example", &long)).unwrap_err();
        assert!(err.to_string().contains("edns.nsid"), "{err}");
        assert!(err.to_string().contains("227 octets, at most 226"), "{err}");
        let err = Config::parse(&EXAMPLE.replace("\"sat1.example\"", "\"\"")).unwrap_err();
        assert!(err.to_string().contains("edns.nsid"), "{err}");
        let longest = "x".repeat(MAX_NSID_LEN);
        let c = Config::parse(&EXAMPLE.replace("sat1.example", &longest)).unwrap();
        assert_eq!(c.nsid().map(|n| n.len()), Some(MAX_NSID_LEN));
        for (extra, bad) in [
            ("udp_batch = 65", "server.udp_batch: 65, at most 64"),
            ("udp_batch = 0", "server.udp_batch: must be above 0"),
            ("cpu_affinity = [0, 1024]", "server.cpu_affinity"),
            ("tcp_idle_timeout_ms = 0", "server.tcp_idle_timeout_ms"),
            ("tcp_max_connections = 0", "server.tcp_max_connections"),
        ] {
            let text = EXAMPLE
                .replace("tcp_max_connections = 1024", "")
                .replace("tcp_idle_timeout_ms = 10000", "")
                .replace("workers = 2", &format!("workers = 2\n{extra}"));
            let err = Config::parse(&text).unwrap_err();
            assert!(err.to_string().contains(bad), "{extra}: {err}");
        }
        assert_eq!(parse_hex("0aFF"), Some(vec![10, 255]));
        assert_eq!(parse_hex("0"), None);
    }
}
