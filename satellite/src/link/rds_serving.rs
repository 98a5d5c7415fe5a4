//! Whois and RDAP sockets bound once, with the registration data pipeline swapped in place.
//!
//! Unlike DNS ([`super::serving`]), the Whois and RDAP servers read their [`RdsPipeline`]
//! from an `ArcSwap` per connection or request, so a new Selector from the master replaces
//! it without stopping anything: connections in progress finish with the pipeline they
//! started with. Listen addresses are bound once, as for DNS; changing them needs a restart.
//!
//! Statistics are cumulative over the process: every pipeline counts into the satellite's
//! [`RdsStats`], which replacements share, so no request is lost to a swap.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use orrery_proto::link::convert::{RdapListen, WhoisListen};
use tokio_util::sync::CancellationToken;

use crate::rds::rdap_server::{self, RdapServer, RdapSettings};
use crate::rds::whois_server::{WhoisServer, WhoisSettings};
use crate::rds::{Rds, RdsPipeline};
use crate::selector::Selector;
use crate::served::ServedStore;
use crate::stats::RdsStats;

/// Why the registration data services cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RdsServingError {
    #[error("binding {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("RDAP TLS: {0}")]
    Tls(#[from] rdap_server::RdapTlsError),
    #[error("starting a server: {0}")]
    Start(#[source] io::Error),
}

/// The Whois and RDAP services of a satellite.
pub struct RdsServing {
    pipeline: Arc<ArcSwap<RdsPipeline>>,
    whois: Vec<SocketAddr>,
    http: Vec<SocketAddr>,
    https: Vec<SocketAddr>,
    /// The settings the servers started with (limits, timeouts, TLS files, base URL).
    started_with: (Option<WhoisListen>, Option<RdapListen>),
    cancel: CancellationToken,
    whois_server: Option<WhoisServer>,
    rdap_servers: Vec<RdapServer>,
}

fn bind(what: &'static str, addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, RdsServingError> {
    addrs
        .iter()
        .map(|&addr| {
            TcpListener::bind(addr).map_err(|source| RdsServingError::Bind { what, addr, source })
        })
        .collect()
}

fn local(listeners: &[TcpListener]) -> Vec<SocketAddr> {
    listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect()
}

impl RdsServing {
    /// Binds every address and starts serving with `selector` over `zones`, counting requests
    /// into `stats`. Must be called inside a tokio runtime.
    pub fn start(
        whois: Option<&WhoisListen>,
        rdap: Option<&RdapListen>,
        selector: Selector<Rds>,
        zones: Arc<ServedStore>,
        stats: Arc<RdsStats>,
    ) -> Result<Self, RdsServingError> {
        let whois_listeners = bind("whois tcp", whois.map_or(&[][..], |w| &w.tcp))?;
        let http_listeners = bind("rdap http", rdap.map_or(&[][..], |r| &r.http))?;
        let https_listeners = bind("rdap https", rdap.map_or(&[][..], |r| &r.https))?;
        let tls = match rdap.and_then(|r| r.tls.as_ref()) {
            Some(files) => Some(rdap_server::tls_config(&files.cert, &files.key)?),
            None => None,
        };
        let pipeline = Arc::new(ArcSwap::from_pointee(
            RdsPipeline::new(selector, zones).with_stats(stats),
        ));
        let cancel = CancellationToken::new();
        let mut me = Self {
            pipeline,
            whois: local(&whois_listeners),
            http: local(&http_listeners),
            https: local(&https_listeners),
            started_with: (whois.cloned(), rdap.cloned()),
            cancel,
            whois_server: None,
            rdap_servers: Vec::new(),
        };
        if let Some(w) = whois
            && !whois_listeners.is_empty()
        {
            let defaults = WhoisSettings::default();
            let settings = WhoisSettings {
                max_connections: w
                    .max_connections
                    .map_or(defaults.max_connections, |n| n as usize),
                timeout: w.timeout.unwrap_or(defaults.timeout),
                max_connections_per_address: w
                    .max_connections_per_address
                    .unwrap_or(defaults.max_connections_per_address),
                ..defaults
            };
            me.whois_server = Some(
                WhoisServer::start(
                    Arc::clone(&me.pipeline),
                    whois_listeners,
                    settings,
                    me.cancel.clone(),
                )
                .map_err(RdsServingError::Start)?,
            );
        }
        if let Some(r) = rdap {
            let settings = |tls: Option<Arc<rustls::ServerConfig>>| {
                let defaults = RdapSettings::default();
                RdapSettings {
                    max_connections: r
                        .max_connections
                        .map_or(defaults.max_connections, |n| n as usize),
                    timeout: r.timeout.unwrap_or(defaults.timeout),
                    max_connections_per_address: r
                        .max_connections_per_address
                        .unwrap_or(defaults.max_connections_per_address),
                    base_url: r.base_url.clone(),
                    trusted_proxies: r.trusted_proxies.clone(),
                    // Only behind plain HTTP: a proxy in front of an HTTPS listener passes TLS
                    // through and cannot add the header, so every one there is the client's.
                    forwarded_for: tls.is_none(),
                    tls,
                }
            };
            for (listeners, tls) in [(http_listeners, None), (https_listeners, tls)] {
                if listeners.is_empty() {
                    continue;
                }
                me.rdap_servers.push(
                    RdapServer::start(
                        Arc::clone(&me.pipeline),
                        listeners,
                        settings(tls),
                        me.cancel.clone(),
                    )
                    .map_err(RdsServingError::Start)?,
                );
            }
        }
        Ok(me)
    }

    /// Bound Whois addresses.
    pub fn whois_addrs(&self) -> &[SocketAddr] {
        &self.whois
    }

    /// Bound RDAP addresses (plain HTTP, then HTTPS).
    pub fn rdap_addrs(&self) -> (&[SocketAddr], &[SocketAddr]) {
        (&self.http, &self.https)
    }

    /// Serves with `selector` from now on (same zones, same counters).
    pub fn replace_selector(&self, selector: Selector<Rds>) {
        let current = self.pipeline.load();
        let next = RdsPipeline::new(selector, Arc::clone(&current.served))
            .with_stats(Arc::clone(&current.stats));
        self.pipeline.store(Arc::new(next));
    }

    /// Fields of the new settings the running servers do not match: listen addresses (port 0
    /// matches any port), and limits, timeouts, TLS files and base URL, which the servers read
    /// once at start (a renewed certificate takes a restart).
    pub fn restart_required(
        &self,
        whois: Option<&WhoisListen>,
        rdap: Option<&RdapListen>,
    ) -> Vec<String> {
        let same = super::adopt::same_addrs;
        let mut fields = Vec::new();
        if !same(&self.whois, whois.map_or(&[][..], |w| &w.tcp)) {
            fields.push("whois.tcp".to_owned());
        }
        if !same(&self.http, rdap.map_or(&[][..], |r| &r.http)) {
            fields.push("rdap.http".to_owned());
        }
        if !same(&self.https, rdap.map_or(&[][..], |r| &r.https)) {
            fields.push("rdap.https".to_owned());
        }
        // Every other field (addresses compared above, port 0 matching any port): a field added
        // to the settings is covered without being named here.
        let (old_whois, old_rdap) = &self.started_with;
        let whois_rest = |w: Option<&WhoisListen>| {
            w.map(|w| WhoisListen {
                tcp: Vec::new(),
                ..w.clone()
            })
        };
        if whois_rest(old_whois.as_ref()) != whois_rest(whois) {
            fields.push("whois.limits".to_owned());
        }
        let rdap_rest = |r: Option<&RdapListen>| {
            r.map(|r| RdapListen {
                http: Vec::new(),
                https: Vec::new(),
                ..r.clone()
            })
        };
        if rdap_rest(old_rdap.as_ref()) != rdap_rest(rdap) {
            fields.push("rdap.settings".to_owned());
        }
        fields
    }

    /// Stops serving and waits (at most `grace`) for the servers to finish.
    pub async fn stop(&mut self, grace: Duration) {
        self.cancel.cancel();
        let servers = async {
            if let Some(w) = self.whois_server.take() {
                w.join().await;
            }
            for r in self.rdap_servers.drain(..) {
                r.join().await;
            }
        };
        let _ = tokio::time::timeout(grace, servers).await;
    }
}

#[cfg(test)]
mod tests {
    use orrery_proto::Prefix;

    use super::*;
    use crate::rds::leaf::DEFAULT_SELECTOR;
    use crate::rds::leaf::tests::selector;
    use crate::served::Served;

    #[tokio::test]
    async fn changed_limits_and_proxies_take_a_restart() {
        let whois = WhoisListen {
            tcp: vec!["127.0.0.1:0".parse().unwrap()],
            ..WhoisListen::default()
        };
        let rdap = RdapListen {
            http: vec!["127.0.0.1:0".parse().unwrap()],
            ..RdapListen::default()
        };
        let zones = Arc::new(ServedStore::new(Served::default()));
        let mut serving = RdsServing::start(
            Some(&whois),
            Some(&rdap),
            selector(DEFAULT_SELECTOR),
            zones,
            Arc::default(),
        )
        .unwrap();
        assert!(
            serving
                .restart_required(Some(&whois), Some(&rdap))
                .is_empty()
        );

        let mut whois2 = whois.clone();
        whois2.max_connections_per_address = Some(4);
        assert_eq!(
            serving.restart_required(Some(&whois2), Some(&rdap)),
            ["whois.limits"]
        );
        for change in [
            |r: &mut RdapListen| r.max_connections_per_address = Some(4),
            |r: &mut RdapListen| r.trusted_proxies = vec![Prefix::parse("10.0.0.1").unwrap()],
            |r: &mut RdapListen| r.base_url = Some("https://rdap.example/".into()),
        ] {
            let mut rdap2 = rdap.clone();
            change(&mut rdap2);
            assert_eq!(
                serving.restart_required(Some(&whois), Some(&rdap2)),
                ["rdap.settings"]
            );
        }
        serving.stop(Duration::from_secs(5)).await;
    }
}
