//! Adopting the configuration the master sends: check it, build its Selectors, swap the query
//! pipelines on the sockets already bound, start the services it asks for, and note what only
//! a restart can change (listen addresses, worker threads, socket options).
//!
//! The Whois/RDAP directory is held only while a configuration serves Whois or RDAP: a
//! DNS-only satellite neither builds nor keeps it (about 230 B a domain at 1M). When a
//! configuration enables them, [`Link::match_directory`] builds it from the state file and
//! the batch log, at low priority beside the queries, and attaches it to the served version;
//! when one disables both, the services stop and the directory is freed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orrery_proto::link::{SatelliteSettings, pb};

use super::rds_serving::RdsServing;
use super::serving::Serving;
use super::{Link, LinkError};
use crate::background;
use crate::dns::leaf::{Dns, LeafConfig, SelectorConfig, SelectorError};
use crate::dns::pipeline::Pipeline;
use crate::dns::server::ServerSettings;
use crate::expiry::Expiry;
use crate::rds::Rds;
use crate::rds::leaf::{DEFAULT_SELECTOR as DEFAULT_RDS_SELECTOR, RdsLeafConfig};
use crate::selector::Selector;
use crate::served::{build_directory, dispose_in_background};
use crate::stats::listener::MetricsListener;
use crate::xfr::XfrService;

impl Link {
    /// Takes a configuration message from the master: checks it, then adopts it. One that
    /// fails its checks is refused (logged, reported at the next check-in); the running
    /// configuration stays.
    pub(super) fn receive(&mut self, config: pb::SatelliteConfig) -> Result<(), LinkError> {
        let version = config.version.clone();
        match SatelliteSettings::try_from(config) {
            Ok(settings) => {
                if self.settings.as_ref() != Some(&settings) {
                    tracing::info!(version = %settings.version(), "new configuration from the master");
                }
                self.checkin_interval = settings.checkin_interval;
                self.adopt(settings)
            }
            Err(e) => {
                self.refuse(&version, e.to_string());
                Ok(())
            }
        }
    }

    /// The expiry the query pipeline carries: with `serve_expired = false` only (the lookup
    /// leaf then answers SERVFAIL for expired zones).
    fn expiry_for(&self, settings: &SatelliteSettings) -> Option<Arc<Expiry>> {
        (!settings.serve_expired).then(|| Arc::clone(&self.expiry))
    }

    /// Notes that configuration `version` is refused, and why.
    fn refuse(&mut self, version: &str, reason: String) {
        tracing::error!(
            version,
            reason = %reason,
            "refusing the master's configuration; keeping the running one"
        );
        self.refused = Some(format!("configuration {version}: {reason}"));
    }

    /// What the next check-in reports in `config_refused`.
    pub(super) fn config_refused(&self) -> String {
        [
            self.refused.as_deref(),
            self.not_serving.as_deref(),
            self.metrics_error.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ")
    }

    /// Takes a configuration: swaps the query pipeline when its parts changed, notes what
    /// needs a restart, saves it. A Selector that cannot be built is refused (logged and
    /// reported; the running configuration stays).
    pub(super) fn adopt(&mut self, new: SatelliteSettings) -> Result<(), LinkError> {
        if self.settings.as_ref() == Some(&new) {
            return Ok(());
        }
        let selector = match build_selector(&new) {
            Ok(s) => s,
            Err(e) => {
                self.refuse(&new.version(), format!("its selector does not build: {e}"));
                return Ok(());
            }
        };
        let rds_selector = match build_rds_selector(&new) {
            Ok(s) => s,
            Err(e) => {
                self.refuse(
                    &new.version(),
                    format!("its registration data selector does not build: {e}"),
                );
                return Ok(());
            }
        };
        // The one check of the `xfr` table that needs the zones (a zone the store gains later
        // is not checked against a catalog already adopted).
        if let (Some(xfr), Some(zones)) = (&new.xfr, &self.zones) {
            let served = zones.load();
            if let Err(e) = xfr.check_catalog(served.zones.zones().iter().map(|z| &z.apex_name)) {
                drop(served);
                self.refuse(&new.version(), e.to_string());
                return Ok(());
            }
        }
        self.refused = None;
        self.ensure_metrics(new.metrics);
        let old = self.settings.replace(new.clone());
        self.files.write_settings(&new)?;
        self.expiry.set_servfail(!new.serve_expired);
        let expiry = self.expiry_for(&new);
        if let (Some(serving), Some(zones)) = (&mut self.serving, &self.zones) {
            let pipeline_changed = old.as_ref().is_none_or(|o| {
                o.selector_toml != new.selector_toml
                    || o.nsid != new.nsid
                    || o.hostname != new.hostname
                    || o.xfr != new.xfr
                    || o.serve_expired != new.serve_expired
            });
            if pipeline_changed {
                let pipeline = Pipeline::new(selector, Arc::clone(zones), new.nsid.clone())
                    .with_stats(Arc::clone(&self.metrics.queries))
                    .with_xfr(XfrService::for_settings(&new, zones))
                    .with_expiry(expiry);
                serving.serve(Arc::new(pipeline)).map_err(LinkError::Bind)?;
                tracing::info!("query pipeline replaced with the master's new selector");
            }
        }
        if let Some(rds) = &self.rds
            && old
                .as_ref()
                .is_none_or(|o| o.rds_selector_toml != new.rds_selector_toml)
        {
            rds.replace_selector(rds_selector);
            tracing::info!("Whois/RDAP pipeline replaced with the master's new selector");
        }
        let was_serving = self.serving.is_some() || self.rds.is_some();
        self.ensure_serving()?;
        if was_serving && !self.restart_required.is_empty() {
            tracing::warn!(
                fields = ?self.restart_required,
                "configuration changes that take effect only after a restart"
            );
        }
        self.publish(|_| {});
        Ok(())
    }

    /// Runs the metrics listener where the configuration says (none when it sets none). One
    /// that cannot be bound is logged and reported, and tried again with the next
    /// configuration.
    fn ensure_metrics(&mut self, want: Option<SocketAddr>) {
        self.metrics_error =
            match MetricsListener::ensure(&mut self.metrics_listener, want, &self.metrics) {
                Ok(()) => None,
                Err(e) => {
                    tracing::error!(error = %e, "cannot serve metrics as the master configured");
                    Some(e.to_string())
                }
            };
    }

    /// Starts the services once there are both a state and a configuration, and notes which
    /// configured fields the running services do not match.
    ///
    /// DNS comes first and does not depend on Whois/RDAP: a Whois port that cannot be bound or
    /// an RDAP certificate that cannot be read is logged and tried again at the next check-in
    /// or session, while DNS is served.
    pub(super) fn ensure_serving(&mut self) -> Result<(), LinkError> {
        let mut not_serving = Vec::new();
        // A DNS listener that cannot be started does not end the session either: the
        // satellite goes on following changes (and serving Whois/RDAP), tries again at each
        // check-in, and reports why in each one.
        match self.ensure_dns_serving() {
            Ok(()) => {}
            Err(e @ LinkError::Bind(_)) => {
                tracing::error!(
                    error = %e,
                    "cannot listen on the DNS addresses the master configured; retrying at the next check-in"
                );
                not_serving.push(e.to_string());
            }
            Err(e) => return Err(e),
        }
        if let Err(e) = self.ensure_rds_serving() {
            tracing::error!(
                error = %e,
                "cannot serve Whois/RDAP as the master configured; retrying at the next check-in"
            );
            not_serving.push(e.to_string());
        }
        self.not_serving = (!not_serving.is_empty()).then(|| not_serving.join("; "));
        let mut fields = Vec::new();
        if let Some(settings) = &self.settings {
            if let Some(serving) = &self.serving {
                fields = restart_required(serving, settings);
            }
            if let Some(rds) = &self.rds {
                fields
                    .extend(rds.restart_required(settings.whois.as_ref(), settings.rdap.as_ref()));
            }
        }
        self.restart_required = fields;
        Ok(())
    }

    /// Builds or frees the Whois/RDAP directory to match the configuration adopted (see the
    /// module docs). Called from the link loop after a configuration arrives, so no batch is
    /// applied while the directory is built (batches wait, queries do not); it is built from
    /// the files, which hold what queries see, and attached only at the serial they reached.
    /// A build that fails is logged and tried again at the next check-in; Whois and RDAP
    /// start only once it is attached ([`Link::ensure_serving`]).
    pub(super) async fn match_directory(&mut self) {
        let Some(zones) = self.zones.clone() else {
            return;
        };
        let wanted = serves_rds(self.settings.as_ref());
        if wanted == zones.load().has_directory() {
            return;
        }
        if !wanted {
            // The services first: they must not answer from an emptied directory.
            if let Some(mut rds) = self.rds.take() {
                rds.stop(RDS_STOP_GRACE).await;
                tracing::info!("Whois and RDAP stopped: the configuration serves neither");
            }
            zones.detach_directory();
            tracing::info!("Whois/RDAP directory freed");
            return;
        }
        let started = Instant::now();
        let files = self.files.clone();
        let built = background::run("directory-build", move || {
            let (header, objects, batches) = files.read_current()?;
            let serial = batches.last().map_or(header.serial, |b| b.upto);
            let directory = build_directory(objects.iter(), &batches);
            dispose_in_background(objects);
            Ok::<_, LinkError>((directory, serial))
        })
        .await
        .map_err(LinkError::from)
        .and_then(|built| built)
        .and_then(|(directory, serial)| {
            zones.attach_directory(directory, serial)?;
            Ok(serial)
        });
        match built {
            Ok(serial) => tracing::info!(
                serial,
                ms = started.elapsed().as_millis() as u64,
                "Whois/RDAP directory built for the new configuration"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "cannot build the Whois/RDAP directory the configuration needs; retrying at the next check-in"
            ),
        }
    }

    /// Starts Whois and RDAP, when configured, once there are a state, a configuration and the
    /// directory they answer from.
    fn ensure_rds_serving(&mut self) -> Result<(), LinkError> {
        let (Some(settings), Some(zones)) = (&self.settings, &self.zones) else {
            return Ok(());
        };
        if self.rds.is_some() || !serves_rds(Some(settings)) || !zones.load().has_directory() {
            return Ok(());
        }
        let selector = build_rds_selector(settings).map_err(|e| {
            LinkError::Protocol(format!(
                "the configuration's rds selector does not build: {e}"
            ))
        })?;
        let rds = RdsServing::start(
            settings.whois.as_ref(),
            settings.rdap.as_ref(),
            selector,
            Arc::clone(zones),
            Arc::clone(&self.metrics.rds),
        )?;
        let (http, https) = rds.rdap_addrs();
        tracing::info!(
            whois = ?rds.whois_addrs(),
            rdap_http = ?http,
            rdap_https = ?https,
            "serving Whois and RDAP"
        );
        self.rds = Some(rds);
        Ok(())
    }

    /// Starts the DNS service once there are both a state and a configuration.
    fn ensure_dns_serving(&mut self) -> Result<(), LinkError> {
        let (Some(settings), Some(zones)) = (&self.settings, &self.zones) else {
            return Ok(());
        };
        if self.serving.is_some() {
            return Ok(());
        }
        let Some(dns) = &settings.dns else {
            tracing::debug!("the master configures no DNS service for this satellite");
            return Ok(());
        };
        let server = server_settings(settings);
        let mut serving = Serving::bind(&dns.udp, &dns.tcp, server).map_err(LinkError::Bind)?;
        let selector = build_selector(settings).map_err(|e| {
            LinkError::Protocol(format!("the configuration's selector does not build: {e}"))
        })?;
        let pipeline = Pipeline::new(selector, Arc::clone(zones), settings.nsid.clone())
            .with_stats(Arc::clone(&self.metrics.queries))
            .with_xfr(XfrService::for_settings(settings, zones))
            .with_expiry(self.expiry_for(settings));
        serving.serve(Arc::new(pipeline)).map_err(LinkError::Bind)?;
        tracing::info!(
            udp = ?serving.udp_addrs(),
            tcp = ?serving.tcp_addrs(),
            serial = zones.serial(),
            "serving DNS"
        );
        self.serving = Some(serving);
        Ok(())
    }
}

/// How long stopping Whois and RDAP waits for the answers in progress.
const RDS_STOP_GRACE: Duration = Duration::from_secs(5);

/// Whether a configuration serves Whois or RDAP, and so needs the directory.
pub(super) fn serves_rds(settings: Option<&SatelliteSettings>) -> bool {
    settings.is_some_and(|s| s.whois.is_some() || s.rdap.is_some())
}

/// Builds the registration data Selector of a configuration (the built-in default chain when
/// the master sends none).
fn build_rds_selector(settings: &SatelliteSettings) -> Result<Selector<Rds>, SelectorTextError> {
    let text = match settings.rds_selector_toml.trim() {
        "" => DEFAULT_RDS_SELECTOR,
        text => text,
    };
    let config = SelectorConfig::<RdsLeafConfig>::from_toml(text)?;
    Ok(Selector::build(&config)?)
}

/// Why a configuration's Selector cannot be used: the master's check at load
/// ([`SelectorConfig::validate`]) would have said the same.
#[derive(Debug, thiserror::Error)]
#[error("selector_toml: {0}")]
struct SelectorTextError(#[from] SelectorError);

/// Builds the Selector of a configuration; the configuration's host name fills the CHAOS
/// leaves' `hostname.bind`/`id.server` answers (RFC 4892) where the leaf leaves them unset.
fn build_selector(settings: &SatelliteSettings) -> Result<Selector<Dns>, SelectorTextError> {
    let mut config = SelectorConfig::<LeafConfig>::from_toml(&settings.selector_toml)?;
    if let Some(host) = &settings.hostname {
        for leaf in config.leaves.values_mut() {
            if let LeafConfig::Chaos(c) = leaf {
                c.hostname.get_or_insert_with(|| host.clone());
                c.id_server.get_or_insert_with(|| host.clone());
            }
        }
    }
    Ok(Selector::<Dns>::build(&config)?)
}

fn server_settings(settings: &SatelliteSettings) -> ServerSettings {
    ServerSettings::from_settings(settings)
}

/// True when the bound addresses are the configured ones; a configured port 0 matches the
/// port the system chose.
pub(super) fn same_addrs(bound: &[SocketAddr], wanted: &[SocketAddr]) -> bool {
    bound.len() == wanted.len()
        && bound
            .iter()
            .zip(wanted)
            .all(|(b, w)| b.ip() == w.ip() && (w.port() == 0 || b.port() == w.port()))
}

/// The fields of `new` the running DNS service does not match. Port 0 matches any port.
fn restart_required(serving: &Serving, new: &SatelliteSettings) -> Vec<String> {
    let same = |bound: Vec<SocketAddr>, wanted: &[SocketAddr]| same_addrs(&bound, wanted);
    let mut fields = Vec::new();
    match &new.dns {
        Some(dns) => {
            if !same(serving.udp_addrs(), &dns.udp) {
                fields.push("dns.udp".to_owned());
            }
            if !same(serving.tcp_addrs(), &dns.tcp) {
                fields.push("dns.tcp".to_owned());
            }
        }
        None => fields.push("dns".to_owned()),
    }
    let (wanted, running) = (server_settings(new), serving.settings());
    if wanted.workers != running.workers {
        fields.push("workers".to_owned());
    }
    // The sockets are bound, and the servers started, with these.
    let (u, t) = ((&wanted.udp, &running.udp), (&wanted.tcp, &running.tcp));
    for (field, differs) in [
        ("dns.udp_batch", u.0.batch != u.1.batch),
        ("dns.udp_reuseport", u.0.reuseport != u.1.reuseport),
        ("dns.cpu_affinity", u.0.cpu_affinity != u.1.cpu_affinity),
        (
            "dns.tcp_idle_timeout_ms",
            t.0.idle_timeout != t.1.idle_timeout,
        ),
        (
            "dns.tcp_max_connections",
            t.0.max_connections != t.1.max_connections,
        ),
        (
            "dns.tcp_max_connections_per_address",
            t.0.max_connections_per_address != t.1.max_connections_per_address,
        ),
        ("dns.tcp_max_queries", t.0.max_queries != t.1.max_queries),
    ] {
        if differs {
            fields.push(field.to_owned());
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::super::tests::{CHAINS, settings};
    use super::*;

    /// A DNS-only configuration keeps no directory; one that enables Whois has it built from
    /// the state file and the batch log (with a batch that came after the file) and then
    /// serves Whois from it; one that disables Whois again stops it and frees the directory,
    /// while DNS goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_directory_is_held_only_while_whois_or_rdap_is_served() {
        use super::super::{Link, LinkConfig};
        use crate::zone::tests::{domain, n};
        use orrery_proto::link::convert::WhoisListen;
        use orrery_proto::link::tls::TlsMaterial;
        use orrery_proto::{Change, ChangeBatch};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        drop(super::super::tests::sample_state_files(&state));
        let certified = rcgen::generate_simple_self_signed(vec!["sat9".to_owned()]).unwrap();
        let pem = certified.cert.pem();
        let tls =
            TlsMaterial::from_pem(pem.clone(), pem, certified.signing_key.serialize_pem()).unwrap();
        let (mut link, _status) = Link::new(LinkConfig::new(vec![], tls, state));
        link.restore().unwrap();
        let zones = Arc::clone(link.zones.as_ref().unwrap());
        assert!(link.serving.is_some());
        assert!(
            !zones.load().has_directory(),
            "DNS only: no directory built"
        );
        assert!(
            zones
                .load()
                .directory
                .domain(n("foo.tld").as_wire())
                .is_none()
        );

        // A batch after the state file, logged and applied as from the master.
        link.apply_batch(ChangeBatch {
            after: 42,
            upto: 43,
            changes: vec![Change::Domain(domain("new.tld", "tld", &["ns1.foo.tld"]))],
        })
        .await
        .unwrap();

        let mut with_whois = settings(CHAINS);
        with_whois.whois = Some(WhoisListen {
            tcp: vec!["127.0.0.1:0".parse().unwrap()],
            ..WhoisListen::default()
        });
        link.adopt(with_whois).unwrap();
        assert!(link.rds.is_none(), "no Whois before its directory is there");
        link.match_directory().await;
        link.ensure_serving().unwrap();
        let served = zones.load_full();
        assert!(served.has_directory() && served.serial == 43);
        for name in ["foo.tld", "bar.tld", "new.tld"] {
            assert!(
                served.directory.domain(n(name).as_wire()).is_some(),
                "{name}"
            );
        }
        let whois = link.rds.as_ref().expect("Whois started").whois_addrs()[0];
        let mut conn = tokio::net::TcpStream::connect(whois).await.unwrap();
        conn.write_all(b"new.tld\r\n").await.unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.to_lowercase().contains("domain name: new.tld"),
            "{answer}"
        );

        link.adopt(settings(CHAINS)).unwrap();
        link.match_directory().await;
        assert!(link.rds.is_none(), "Whois stopped");
        let now = zones.load_full();
        assert!(!now.has_directory() && now.serial == 43);
        assert!(now.directory.domain(n("foo.tld").as_wire()).is_none());
        let tld = now.zones.zone(&n("tld")).unwrap();
        assert!(tld.delegation(n("new.tld").as_wire()).is_some());
        drop((served, now));
        link.serving.take().unwrap().stop().await;
    }

    /// A catalog zone inside a zone the satellite serves is refused on receipt (reported in
    /// the check-in), the running configuration kept; one outside is adopted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_catalog_inside_a_served_zone_is_refused() {
        use super::super::{Link, LinkConfig};
        use crate::zone::tests::n;
        use orrery_proto::link::convert::XfrSettings;
        use orrery_proto::link::tls::TlsMaterial;

        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        drop(super::super::tests::sample_state_files(&state));
        let certified = rcgen::generate_simple_self_signed(vec!["sat9".to_owned()]).unwrap();
        let pem = certified.cert.pem();
        let tls =
            TlsMaterial::from_pem(pem.clone(), pem, certified.signing_key.serialize_pem()).unwrap();
        let (mut link, _status) = Link::new(LinkConfig::new(vec![], tls, state));
        link.restore().unwrap();
        let running = link.settings.clone();
        let with_catalog = |name: &str| {
            let mut s = settings(CHAINS);
            s.dns.as_mut().unwrap().tcp = vec!["127.0.0.1:0".parse().unwrap()];
            s.xfr = Some(XfrSettings {
                catalog_zone: Some(n(name)),
                ..XfrSettings::default()
            });
            s
        };
        link.adopt(with_catalog("catalog.tld")).unwrap();
        assert_eq!(link.settings, running, "kept");
        let reported = link.config_refused();
        assert!(
            reported.contains("xfr.catalog_zone catalog.tld: lies inside the served zone tld"),
            "{reported}"
        );
        link.adopt(with_catalog("catalog.invalid")).unwrap();
        assert!(
            link.config_refused().is_empty(),
            "{}",
            link.config_refused()
        );
        assert_eq!(link.settings, Some(with_catalog("catalog.invalid")));
        if let Some(mut serving) = link.serving.take() {
            serving.stop().await;
        }
    }

    #[test]
    fn selector_from_settings_and_restart_fields() {
        assert!(build_selector(&settings(CHAINS)).is_ok());
        let Err(err) = build_selector(&settings("[[chains]]\nname = 1")) else {
            panic!("a bad selector was accepted");
        };
        assert!(err.to_string().contains("selector_toml"), "{err}");
        let s = settings(CHAINS);
        let serving =
            Serving::bind(&s.dns.as_ref().unwrap().udp, &[], server_settings(&s)).unwrap();
        assert!(restart_required(&serving, &s).is_empty());
        let mut moved = s.clone();
        moved.dns.as_mut().unwrap().udp = vec!["127.0.0.2:53".parse().unwrap()];
        moved.workers = Some(3);
        assert_eq!(restart_required(&serving, &moved), ["dns.udp", "workers"]);
        // The UDP and TCP settings the master sends are bound with the sockets too.
        let mut tuned = s.clone();
        let dns = tuned.dns.as_mut().unwrap();
        (dns.udp_batch, dns.tcp_max_queries) = (Some(4), Some(10));
        assert_eq!(
            restart_required(&serving, &tuned),
            ["dns.udp_batch", "dns.tcp_max_queries"]
        );
        let udp = tuned.dns.as_ref().unwrap().udp.clone();
        let serving = Serving::bind(&udp, &[], server_settings(&tuned)).unwrap();
        assert_eq!(serving.settings().udp.batch, 4);
        assert_eq!(serving.settings().tcp.max_queries, Some(10));
        assert!(restart_required(&serving, &tuned).is_empty());
    }
}
