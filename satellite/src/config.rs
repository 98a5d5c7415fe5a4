//! The satellite's configuration: a TOML file (`deny_unknown_fields` everywhere), validated
//! once into typed values ([`Config`]) with errors that name the bad field.
//!
//! The `[leaves.*]` and `[[chains]]` tables are the Selector's plain-data description
//! ([`SelectorConfig`], parsed and validated by the same functions as the master's
//! `[selectors.NAME]` tables and the Selector the master sends at boot). See
//! `config.example.toml` for every field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orrery_proto::link::convert::{MAX_NSID_LEN, MAX_WORKERS};
use serde::Deserialize;

use crate::dns::leaf::Dns;
use crate::dns::leaf::{SelectorConfig, SelectorError};
use crate::dns::udp::{MAX_BATCH, UdpSettings};
use crate::selector::Selector;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: ServerSection,
    #[serde(default)]
    edns: EdnsSection,
    /// The Selector's tables, parsed by [`SelectorConfig::from_table`] so that errors name
    /// the leaf as the master's do.
    leaves: toml::Table,
    chains: toml::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    #[serde(default)]
    udp: Vec<String>,
    #[serde(default)]
    tcp: Vec<String>,
    workers: Option<usize>,
    tcp_idle_timeout_ms: Option<u64>,
    tcp_max_connections: Option<usize>,
    udp_batch: Option<usize>,
    udp_reuseport: Option<bool>,
    #[serde(default)]
    cpu_affinity: Vec<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EdnsSection {
    /// NSID as text.
    nsid: Option<String>,
    /// NSID as hex, for binary identifiers.
    nsid_hex: Option<String>,
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    /// UDP worker threads per UDP address.
    pub workers: usize,
    /// Batching, socket per worker and pinning of the UDP workers.
    pub udp_settings: UdpSettings,
    /// RFC 7766 §6.2.3: close idle TCP connections after this long.
    pub tcp_idle_timeout: Duration,
    /// Most TCP connections served at once; more are closed on accept.
    pub tcp_max_connections: usize,
    /// NSID (RFC 5001), sent when a query asks for it.
    pub nsid: Option<Vec<u8>>,
    pub selector: SelectorConfig,
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

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and validates configuration text; the Selector is built once to check it.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text)?;
        let field = |field: &str, message: String| ConfigError::Field {
            field: field.to_owned(),
            message,
        };
        let addrs = |name: &str, list: &[String]| {
            list.iter()
                .map(|a| {
                    a.parse::<SocketAddr>()
                        .map_err(|_| field(name, format!("{a:?} is not an address:port")))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let udp = addrs("server.udp", &file.server.udp)?;
        let tcp = addrs("server.tcp", &file.server.tcp)?;
        if udp.is_empty() && tcp.is_empty() {
            return Err(field("server", "no udp or tcp listen address".into()));
        }
        let workers = file.server.workers.unwrap_or(2);
        if !(1..=MAX_WORKERS as usize).contains(&workers) {
            return Err(field(
                "server.workers",
                format!("{workers} is not in 1..={MAX_WORKERS}"),
            ));
        }
        let defaults = UdpSettings::default();
        let batch = file.server.udp_batch.unwrap_or(defaults.batch);
        if !(1..=MAX_BATCH).contains(&batch) {
            return Err(field(
                "server.udp_batch",
                format!("{batch} is not in 1..={MAX_BATCH}"),
            ));
        }
        // CPU_SETSIZE: the most CPUs an affinity mask names.
        if let Some(cpu) = file.server.cpu_affinity.iter().find(|&&c| c >= 1024) {
            return Err(field(
                "server.cpu_affinity",
                format!("CPU {cpu} is not in 0..1024"),
            ));
        }
        let udp_settings = UdpSettings {
            batch,
            reuseport: file.server.udp_reuseport.unwrap_or(defaults.reuseport),
            cpu_affinity: file.server.cpu_affinity,
        };
        let tcp_max_connections = file.server.tcp_max_connections.unwrap_or(1024);
        if tcp_max_connections == 0 {
            return Err(field(
                "server.tcp_max_connections",
                "must be at least 1".into(),
            ));
        }
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
        if let Some(n) = &nsid
            && (n.is_empty() || n.len() > MAX_NSID_LEN)
        {
            return Err(field(
                "edns.nsid",
                format!("{} octets, must be 1 to {MAX_NSID_LEN}", n.len()),
            ));
        }
        let selector = SelectorConfig::from_table(&toml::Table::from_iter([
            ("leaves".to_owned(), toml::Value::Table(file.leaves)),
            ("chains".to_owned(), file.chains),
        ]))?;
        Selector::<Dns>::build(&selector)?;
        Ok(Self {
            udp,
            tcp,
            workers,
            udp_settings,
            tcp_idle_timeout: Duration::from_millis(
                file.server.tcp_idle_timeout_ms.unwrap_or(10_000),
            ),
            tcp_max_connections,
            nsid,
            selector,
        })
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

    pub(crate) const EXAMPLE: &str = include_str!("../config.example.toml");
    /// The operators' copy, which the README and `quickstart.sh` start a satellite with.
    const DEPLOY_EXAMPLE: &str = include_str!("../../deploy/satellite.example.toml");

    #[test]
    fn parses_the_examples() {
        for text in [EXAMPLE, DEPLOY_EXAMPLE] {
            let c = Config::parse(text).unwrap();
            assert_eq!(c.udp, ["127.0.0.1:5353".parse().unwrap()]);
            assert_eq!(c.tcp, c.udp);
            assert_eq!(c.workers, 2);
            assert_eq!(c.udp_settings, UdpSettings::default());
            assert_eq!(c.nsid.as_deref(), Some(&b"sat1.example"[..]));
            assert_eq!(c.selector.chains[0].name, "main");
        }
    }

    #[test]
    fn reads_the_udp_settings() {
        let text = EXAMPLE.replace(
            "workers = 2",
            "workers = 2\nudp_batch = 1\nudp_reuseport = false\ncpu_affinity = [1, 0]",
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(
            c.udp_settings,
            UdpSettings {
                batch: 1,
                reuseport: false,
                cpu_affinity: vec![1, 0],
            }
        );
    }

    #[test]
    fn names_bad_fields() {
        let err = Config::parse(&EXAMPLE.replace("workers = 2", "workers = 0")).unwrap_err();
        assert!(err.to_string().contains("server.workers"), "{err}");
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
        assert!(
            err.to_string().contains("227 octets, must be 1 to 226"),
            "{err}"
        );
        let err = Config::parse(&EXAMPLE.replace("\"sat1.example\"", "\"\"")).unwrap_err();
        assert!(err.to_string().contains("edns.nsid"), "{err}");
        let longest = "x".repeat(MAX_NSID_LEN);
        let c = Config::parse(&EXAMPLE.replace("sat1.example", &longest)).unwrap();
        assert_eq!(c.nsid.map(|n| n.len()), Some(MAX_NSID_LEN));
        let err = Config::parse(&EXAMPLE.replace("workers = 2", "workers = 2\nudp_batch = 65"))
            .unwrap_err();
        assert!(err.to_string().contains("server.udp_batch"), "{err}");
        let err = Config::parse(&EXAMPLE.replace("workers = 2", "workers = 2\nudp_batch = 0"))
            .unwrap_err();
        assert!(err.to_string().contains("server.udp_batch"), "{err}");
        let err =
            Config::parse(&EXAMPLE.replace("workers = 2", "workers = 2\ncpu_affinity = [0, 1024]"))
                .unwrap_err();
        assert!(err.to_string().contains("server.cpu_affinity"), "{err}");
        assert_eq!(parse_hex("0aFF"), Some(vec![10, 255]));
        assert_eq!(parse_hex("0"), None);
    }
}
