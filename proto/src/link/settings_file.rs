//! A satellite's services as written in TOML, read into the settings the link carries
//! ([`DnsListen`], [`WhoisListen`], [`RdapListen`]).
//!
//! The master's `[satellites.NAME]` tables (`dns`, `whois`, `rdap`) and a standalone
//! satellite's file (`[server]`, `[whois]`, `[rdap]`) are the same tables, read by this one
//! code. Errors name the field under the table path the caller gives. What these checks leave
//! to the wire format — ranges, RDAP TLS files against HTTPS addresses, the base URL — is
//! checked by the satellite's receipt check, `SatelliteSettings::try_from` of the message,
//! which both the master (at load) and the standalone satellite run on what they read; its
//! field names (`dns.udp_batch`, `whois.tcp`…) are these tables' keys.
//!
//! Here: addresses parse, a service has at least one, and a number whose 0 would travel as
//! "the default" is not 0 (leaving the field out says that).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use base64::Engine as _;

use super::convert::{
    DnsListen, NotifyTarget, RdapListen, RdapTls, TsigAlgorithm, TsigKey, WhoisListen, XfrAclRule,
    XfrSettings,
};
use crate::name::Name;
use crate::prefix::Prefix;

/// A field of a settings table that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's path (`satellites.sat1.dns.udp`, `server.udp`…).
    pub field: String,
    pub message: String,
}

fn field(field: String, message: impl ToString) -> FieldError {
    FieldError {
        field,
        message: message.to_string(),
    }
}

/// The DNS service table: listen addresses, TCP limits (RFC 7766), UDP socket layout.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSection {
    #[serde(default)]
    pub udp: Vec<String>,
    #[serde(default)]
    pub tcp: Vec<String>,
    pub tcp_idle_timeout_ms: Option<u64>,
    pub tcp_max_connections: Option<u32>,
    pub tcp_max_connections_per_address: Option<u32>,
    pub tcp_max_queries: Option<u32>,
    pub udp_batch: Option<u32>,
    pub udp_reuseport: Option<bool>,
    #[serde(default)]
    pub cpu_affinity: Vec<u32>,
}

/// The Whois service table (RFC 3912).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhoisSection {
    pub tcp: Vec<String>,
    pub max_connections: Option<u32>,
    pub max_connections_per_address: Option<u32>,
    pub timeout_ms: Option<u64>,
}

/// The RDAP service table (RFC 7480).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdapSection {
    #[serde(default)]
    pub http: Vec<String>,
    #[serde(default)]
    pub https: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub base_url: Option<String>,
    pub max_connections: Option<u32>,
    pub max_connections_per_address: Option<u32>,
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// The zone transfer table (issue 14): keys, ACL, NOTIFY targets, limits.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XfrSection {
    #[serde(default)]
    pub keys: Vec<TsigKeySection>,
    #[serde(default)]
    pub acl: Vec<XfrAclSection>,
    #[serde(default)]
    pub notify: Vec<NotifySection>,
    pub max_transfers: Option<u32>,
    pub max_transfers_per_address: Option<u32>,
    pub transfers_per_minute: Option<u32>,
    pub idle_timeout_ms: Option<u64>,
    pub total_timeout_ms: Option<u64>,
    pub ixfr_window: Option<u32>,
    pub catalog_zone: Option<String>,
}

/// A TSIG key as BIND's `key` statement and `tsig-keygen` write it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsigKeySection {
    pub name: String,
    pub algorithm: String,
    /// Base64 (RFC 4648 §4).
    pub secret: String,
}

/// One ACL rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XfrAclSection {
    pub prefixes: Vec<String>,
    pub key: Option<String>,
}

/// One NOTIFY target.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    pub address: String,
    pub key: Option<String>,
}

impl XfrSection {
    /// The settings of this table, found at `at` (its path, for errors). What the wire format
    /// checks as well (keys defined once and named by the rules, secret lengths, the window's
    /// range) is left to the receipt check, which every reader of this table runs next.
    pub fn read(&self, at: &str) -> Result<XfrSettings, FieldError> {
        let f = |what: &str| format!("{at}.{what}");
        let name = |what: &str, text: &str| {
            Name::from_ascii(text).map_err(|e| field(f(what), format!("{text:?}: {e}")))
        };
        let keys = self
            .keys
            .iter()
            .map(|k| {
                Ok(TsigKey {
                    name: name("keys.name", &k.name)?,
                    algorithm: TsigAlgorithm::from_name(&k.algorithm).ok_or_else(|| {
                        field(
                            f("keys.algorithm"),
                            format!("{:?}: not hmac-sha256 or hmac-sha512", k.algorithm),
                        )
                    })?,
                    secret: base64::engine::general_purpose::STANDARD
                        .decode(k.secret.trim())
                        .map_err(|e| {
                            field(
                                f("keys.secret"),
                                format!("key {:?}: not base64 ({e})", k.name),
                            )
                        })?,
                })
            })
            .collect::<Result<_, FieldError>>()?;
        let key =
            |what: &str, k: &Option<String>| k.as_deref().map(|text| name(what, text)).transpose();
        let acl = self
            .acl
            .iter()
            .map(|r| {
                Ok(XfrAclRule {
                    prefixes: r
                        .prefixes
                        .iter()
                        .map(|p| Prefix::parse(p).map_err(|e| field(f("acl.prefixes"), e)))
                        .collect::<Result<_, _>>()?,
                    key: key("acl.key", &r.key)?,
                })
            })
            .collect::<Result<_, FieldError>>()?;
        let notify = self
            .notify
            .iter()
            .map(|n| {
                Ok(NotifyTarget {
                    address: addrs(&f("notify.address"), std::slice::from_ref(&n.address))?[0],
                    key: key("notify.key", &n.key)?,
                })
            })
            .collect::<Result<_, FieldError>>()?;
        Ok(XfrSettings {
            keys,
            acl,
            notify,
            max_transfers: above_zero(f("max_transfers"), self.max_transfers)?,
            max_transfers_per_address: above_zero(
                f("max_transfers_per_address"),
                self.max_transfers_per_address,
            )?,
            transfers_per_minute: above_zero(f("transfers_per_minute"), self.transfers_per_minute)?,
            idle_timeout: timeout(f("idle_timeout_ms"), self.idle_timeout_ms)?,
            total_timeout: timeout(f("total_timeout_ms"), self.total_timeout_ms)?,
            ixfr_window: above_zero(f("ixfr_window"), self.ixfr_window)?,
            catalog_zone: self
                .catalog_zone
                .as_deref()
                .map(|t| name("catalog_zone", t))
                .transpose()?,
        })
    }
}

/// `IP:PORT` addresses.
pub fn addrs(name: &str, list: &[String]) -> Result<Vec<SocketAddr>, FieldError> {
    list.iter()
        .map(|a| {
            a.parse()
                .map_err(|e| field(name.to_owned(), format!("{a:?} is not IP:PORT ({e})")))
        })
        .collect()
}

/// A count whose 0 would mean "the default" on the wire: above 0 when given.
fn above_zero(name: String, v: Option<u32>) -> Result<Option<u32>, FieldError> {
    if v == Some(0) {
        return Err(field(
            name,
            "must be above 0 (leave it out to let the satellite choose)",
        ));
    }
    Ok(v)
}

/// A timeout in milliseconds: 1 to `u32::MAX` when given (the link carries a `u32`).
fn timeout(name: String, ms: Option<u64>) -> Result<Option<Duration>, FieldError> {
    match ms {
        Some(ms) if ms == 0 || ms > u64::from(u32::MAX) => Err(field(
            name,
            format!(
                "must be between 1 and {} (leave it out to let the satellite choose)",
                u32::MAX
            ),
        )),
        ms => Ok(ms.map(Duration::from_millis)),
    }
}

impl DnsSection {
    /// The settings of this table, found at `at` (its path, for errors).
    pub fn read(&self, at: &str) -> Result<DnsListen, FieldError> {
        let f = |what: &str| format!("{at}.{what}");
        let dns = DnsListen {
            udp: addrs(&f("udp"), &self.udp)?,
            tcp: addrs(&f("tcp"), &self.tcp)?,
            tcp_idle_timeout: timeout(f("tcp_idle_timeout_ms"), self.tcp_idle_timeout_ms)?,
            tcp_max_connections: above_zero(f("tcp_max_connections"), self.tcp_max_connections)?,
            tcp_max_connections_per_address: above_zero(
                f("tcp_max_connections_per_address"),
                self.tcp_max_connections_per_address,
            )?,
            tcp_max_queries: above_zero(f("tcp_max_queries"), self.tcp_max_queries)?,
            udp_batch: above_zero(f("udp_batch"), self.udp_batch)?,
            udp_reuseport: self.udp_reuseport,
            cpu_affinity: self.cpu_affinity.clone(),
        };
        if dns.udp.is_empty() && dns.tcp.is_empty() {
            return Err(field(at.to_owned(), "no udp or tcp address"));
        }
        Ok(dns)
    }
}

impl WhoisSection {
    /// The settings of this table, found at `at` (its path, for errors).
    pub fn read(&self, at: &str) -> Result<WhoisListen, FieldError> {
        let f = |what: &str| format!("{at}.{what}");
        let tcp = addrs(&f("tcp"), &self.tcp)?;
        if tcp.is_empty() {
            return Err(field(f("tcp"), "no address"));
        }
        Ok(WhoisListen {
            tcp,
            max_connections: above_zero(f("max_connections"), self.max_connections)?,
            timeout: timeout(f("timeout_ms"), self.timeout_ms)?,
            max_connections_per_address: above_zero(
                f("max_connections_per_address"),
                self.max_connections_per_address,
            )?,
        })
    }
}

impl RdapSection {
    /// The settings of this table, found at `at` (its path, for errors).
    pub fn read(&self, at: &str) -> Result<RdapListen, FieldError> {
        let f = |what: &str| format!("{at}.{what}");
        let http = addrs(&f("http"), &self.http)?;
        let https = addrs(&f("https"), &self.https)?;
        if http.is_empty() && https.is_empty() {
            return Err(field(at.to_owned(), "no http or https address"));
        }
        // The certificate and key are read by the satellite, on its own machine: never
        // resolved against the directory of the file that names them, so they must be absolute.
        let satellite_path = |what: &str, p: &Option<PathBuf>| match p {
            Some(p) if !p.is_absolute() => Err(field(
                f(what),
                format!(
                    "{} is not an absolute path (it is a path on the satellite's machine)",
                    p.display()
                ),
            )),
            p => Ok(p.clone()),
        };
        let cert = satellite_path("tls_cert", &self.tls_cert)?;
        let key = satellite_path("tls_key", &self.tls_key)?;
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(RdapTls { cert, key }),
            (None, None) => None,
            (None, Some(_)) => return Err(field(f("tls_cert"), "missing: tls_key is set")),
            (Some(_), None) => return Err(field(f("tls_key"), "missing: tls_cert is set")),
        };
        match (&tls, https.is_empty()) {
            (None, false) => {
                return Err(field(
                    f("https"),
                    "needs tls_cert and tls_key (PEM paths on the satellite)",
                ));
            }
            (Some(_), true) => {
                return Err(field(f("tls_cert"), "set, but there is no https address"));
            }
            _ => {}
        }
        // Normalised to end with `/`, as the satellite requires.
        let base_url = self
            .base_url
            .clone()
            .map(|mut url| {
                if !url.ends_with('/') {
                    url.push('/');
                }
                RdapListen::check_base_url(&url)
                    .map(|()| url)
                    .map_err(|e| field(f("base_url"), e))
            })
            .transpose()?;
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|p| Prefix::parse(p).map_err(|e| field(f("trusted_proxies"), e)))
            .collect::<Result<_, _>>()?;
        Ok(RdapListen {
            http,
            https,
            tls,
            base_url,
            max_connections: above_zero(f("max_connections"), self.max_connections)?,
            timeout: timeout(f("timeout_ms"), self.timeout_ms)?,
            trusted_proxies,
            max_connections_per_address: above_zero(
                f("max_connections_per_address"),
                self.max_connections_per_address,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(text: &str) -> Result<DnsListen, FieldError> {
        toml::from_str::<DnsSection>(text).unwrap().read("server")
    }

    #[test]
    fn dns_table_reads_every_field_and_names_bad_ones() {
        let d = dns(r#"
            udp = ["127.0.0.1:53"]
            tcp_idle_timeout_ms = 2500
            tcp_max_connections = 10
            tcp_max_connections_per_address = 2
            tcp_max_queries = 100
            udp_batch = 8
            udp_reuseport = false
            cpu_affinity = [1]
        "#)
        .unwrap();
        assert_eq!(d.tcp_idle_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(
            (
                d.tcp_max_connections,
                d.tcp_max_connections_per_address,
                d.tcp_max_queries,
                d.udp_batch,
                d.udp_reuseport
            ),
            (Some(10), Some(2), Some(100), Some(8), Some(false))
        );
        assert_eq!(d.cpu_affinity, [1]);
        let err = |text: &str| dns(text).unwrap_err().field;
        assert_eq!(err("udp = [\"localhost:53\"]"), "server.udp");
        assert_eq!(err("udp = []"), "server");
        for zero in [
            "tcp_idle_timeout_ms",
            "tcp_max_connections",
            "tcp_max_connections_per_address",
            "tcp_max_queries",
            "udp_batch",
        ] {
            assert_eq!(
                err(&format!("tcp = [\"[::1]:53\"]\n{zero} = 0")),
                format!("server.{zero}")
            );
        }
        assert_eq!(
            err("tcp = [\"[::1]:53\"]\ntcp_idle_timeout_ms = 4294967296"),
            "server.tcp_idle_timeout_ms"
        );
        assert!(toml::from_str::<DnsSection>("bogus = 1").is_err());
    }

    #[test]
    fn rdap_table_pairs_tls_with_https() {
        let rdap = |text: &str| toml::from_str::<RdapSection>(text).unwrap().read("rdap");
        let r = rdap("http = [\"127.0.0.1:80\"]\nbase_url = \"https://rdap.test\"").unwrap();
        assert_eq!(r.base_url.as_deref(), Some("https://rdap.test/"));
        let e = rdap("https = [\"127.0.0.1:443\"]").unwrap_err();
        assert_eq!(e.field, "rdap.https");
        let e =
            rdap("http = [\"127.0.0.1:80\"]\ntls_cert = \"a.pem\"\ntls_key = \"/k\"").unwrap_err();
        assert_eq!(e.field, "rdap.tls_cert");
        assert!(e.message.contains("absolute"), "{e}");
        let e = toml::from_str::<WhoisSection>("tcp = []")
            .unwrap()
            .read("whois")
            .unwrap_err();
        assert_eq!(e.field, "whois.tcp");
    }

    #[test]
    fn xfr_table_reads_keys_in_base64_and_names_bad_fields() {
        let xfr = |text: &str| toml::from_str::<XfrSection>(text).unwrap().read("xfr");
        let x = xfr(r#"
            acl = [{ prefixes = ["127.0.0.0/8"], key = "k1" }, { prefixes = ["::1"] }]
            notify = [{ address = "127.0.0.1:5301", key = "k1" }]
            ixfr_window = 10
            catalog_zone = "catalog.invalid"
            [[keys]]
            name = "k1"
            algorithm = "hmac-sha256"
            secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
        "#)
        .unwrap();
        assert_eq!(x.keys[0].secret, (0u8..32).collect::<Vec<_>>());
        assert_eq!(x.acl[1].key, None);
        assert_eq!(x.notify[0].key, x.acl[0].key);
        assert_eq!(x.ixfr_window, Some(10));
        let err = |text: &str| xfr(text).unwrap_err().field;
        assert_eq!(
            err("[[keys]]\nname = \"k\"\nalgorithm = \"hmac-sha256\"\nsecret = \"!!\""),
            "xfr.keys.secret"
        );
        assert_eq!(
            err("[[keys]]\nname = \"k\"\nalgorithm = \"md5\"\nsecret = \"\""),
            "xfr.keys.algorithm"
        );
        assert_eq!(err("max_transfers = 0"), "xfr.max_transfers");
        assert_eq!(err("notify = [{ address = \"x\" }]"), "xfr.notify.address");
        assert!(toml::from_str::<XfrSection>("bogus = 1").is_err());
    }
}
