//! Two ways to run a satellite:
//!
//! - `orrery-satellite --snapshot FILE --config FILE`: serve the registry of a snapshot file
//!   (or of a state file a satellite wrote) with a local configuration, no master: DNS, and
//!   Whois and RDAP when the configuration enables them.
//! - `orrery-satellite --master ADDR [--master ADDR2 …] --tls-dir DIR --state FILE`: dial the
//!   masters, learn everything else from them (listen addresses, Selector, …), follow their
//!   changes, and keep the state in FILE so that a restart serves at once without them.
//!   DIR holds `ca.pem` and this satellite's `NAME.satellite.pem`/`.key` as written by
//!   `orrery-master certs issue --satellite NAME` (`--name NAME` picks one when DIR holds
//!   several).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use orrery_proto::link::client::check_master_address;
use orrery_proto::link::tls::{TlsFiles, TlsMaterial};
use orrery_satellite::dns::leaf::Dns;
use orrery_satellite::expiry::{Expiry, run_tick};
use orrery_satellite::link::rds_serving::RdsServing;
use orrery_satellite::link::serving::Serving;
use orrery_satellite::link::{LinkConfig, Satellite};
use orrery_satellite::rds::Rds;
use orrery_satellite::served::{build_directory, dispose_in_background};
use orrery_satellite::stats::SatelliteMetrics;
use orrery_satellite::stats::listener::MetricsListener;
use orrery_satellite::xfr::XfrService;
use orrery_satellite::{BuildOptions, Config, Pipeline, Selector, Served, ServedStore};
use tokio_util::sync::CancellationToken;

/// Authoritative DNS for a registry's zones.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Snapshot or state file of the registry to serve (with --config; no master).
    #[arg(long, requires = "config", conflicts_with_all = ["master", "tls_dir", "state"])]
    snapshot: Option<PathBuf>,
    /// Configuration file (TOML), with --snapshot.
    #[arg(long, requires = "snapshot")]
    config: Option<PathBuf>,
    /// A master's HOST:PORT (or https://HOST:PORT; no default port); repeat for several, in
    /// order of preference: the first that answers is used, the next when it is lost.
    #[arg(long, requires_all = ["tls_dir", "state"], value_parser = master_address)]
    master: Vec<String>,
    /// Directory with ca.pem and NAME.satellite.pem/.key.
    #[arg(long, requires = "master")]
    tls_dir: Option<PathBuf>,
    /// The satellite's name, when the TLS directory holds several satellite certificates.
    #[arg(long, requires = "master")]
    name: Option<String>,
    /// State file (orrery_proto::state_file, format 4), written from what the master sends;
    /// STATE.log and STATE.settings beside it.
    #[arg(long, requires = "master")]
    state: Option<PathBuf>,
    /// Seconds an earlier master of the --master list must stay up before the satellite
    /// moves back to it from a later one (the hold-down that keeps it from flapping).
    #[arg(long, requires = "master", default_value_t = orrery_proto::link::client::DEFAULT_RETURN_AFTER.as_secs_f64(), value_parser = seconds)]
    return_after: f64,
}

/// A positive number of seconds.
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(s),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

fn main() -> ExitCode {
    limit_allocator_arenas();
    // Warnings and errors also go into the buffer the check-ins carry to the master, with a
    // filter of their own: debug and trace call sites stay disabled unless RUST_LOG asks.
    use tracing_subscriber::Layer;
    let buffer = orrery_satellite::link::log_buffer::global()
        .layer()
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN);
    orrery_proto::logging::init_with("info", Some(Box::new(buffer)));
    match command(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            orrery_proto::logging::print_error("orrery-satellite", e.as_ref());
            ExitCode::FAILURE
        }
    }
}

/// Caps glibc's malloc arenas at two a core (its default is eight a core), before any thread
/// starts. Nothing on the query path allocates, so the arenas buy no speed there; what they
/// did was keep memory. A satellite fed its 1,000,000-delegation snapshot by a master decodes
/// it on the runtime's threads, each taking an arena, and the freed objects stayed spread
/// over them: 207 B of PSS a delegation once serving, 180 B with this cap (175 B with one a
/// core, whose start from the state file was 5 % slower); the peak RSS of a 10,000-change
/// batch went from 226–243 MiB to 199–209 MiB. A start from the state file kept its 170–172 B
/// and its time (bench/compare-peers.sh and bench/boot-vs.sh, docs/BENCHMARKS.md).
fn limit_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arenas = libc::c_int::try_from(2 * cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt takes no pointer; called before any other thread exists, it only
        // bounds how many arenas later threads may create.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

fn command(args: Args) -> anyhow::Result<()> {
    match (&args.snapshot, &args.config, &args.tls_dir, &args.state) {
        (Some(snapshot), Some(config), None, None) => serve_snapshot(snapshot, config),
        (None, None, Some(dir), Some(state)) => serve_from_master(
            &args.master,
            dir,
            args.name.as_deref(),
            state,
            Duration::from_secs_f64(args.return_after),
        ),
        _ => anyhow::bail!(
            "give either --snapshot FILE --config FILE, or --master ADDR --tls-dir DIR --state FILE"
        ),
    }
}

/// A `--master` value, refused at once when it cannot be dialled (no port, say) instead of
/// being retried for ever.
fn master_address(text: &str) -> Result<String, String> {
    check_master_address(text).map(|()| text.to_owned())
}

/// The TLS files of this satellite in `dir`: `ca.pem` and `NAME.satellite.pem`/`.key`, NAME
/// given or the only one there.
fn tls_files(dir: &Path, name: Option<&str>) -> anyhow::Result<TlsFiles> {
    let stem = match name {
        Some(n) => format!("{n}.satellite"),
        None => {
            let mut found = Vec::new();
            for entry in
                std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?
            {
                let file = entry?.file_name().to_string_lossy().into_owned();
                if let Some(stem) = file.strip_suffix(".satellite.pem") {
                    found.push(format!("{stem}.satellite"));
                }
            }
            match found.len() {
                1 => found.remove(0),
                0 => anyhow::bail!("{}: no NAME.satellite.pem certificate", dir.display()),
                _ => anyhow::bail!(
                    "{}: several satellite certificates ({}); choose one with --name",
                    dir.display(),
                    found.join(", ")
                ),
            }
        }
    };
    Ok(TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
    })
}

fn serve_from_master(
    masters: &[String],
    tls_dir: &Path,
    name: Option<&str>,
    state: &Path,
    return_after: Duration,
) -> anyhow::Result<()> {
    let files = tls_files(tls_dir, name)?;
    let tls = TlsMaterial::load(&files)?;
    tracing::info!(cert = %files.cert.display(), masters = ?masters, "dialling the masters");
    let mut config = LinkConfig::new(masters.to_vec(), tls, state.to_owned());
    config.return_after = return_after;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let satellite = Satellite::start(config, shutdown.clone())?;
        shutdown_signal().await?;
        tracing::info!("shutting down");
        shutdown.cancel();
        satellite.join().await;
        Ok(())
    })
}

/// How long a stopping standalone satellite waits for Whois and RDAP answers in progress.
const RDS_STOP_GRACE: Duration = Duration::from_secs(5);

/// Serves a snapshot (or a state file a satellite wrote) with a local configuration: DNS,
/// and Whois and RDAP when the configuration enables them, on the same sockets-bound-once
/// services a master-fed satellite runs ([`Serving`], [`RdsServing`]).
fn serve_snapshot(snapshot: &Path, config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    // The runtime and the sockets first: a port in use is reported before a read of seconds,
    // and serving begins the moment the tables are built.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mut dns = Serving::bind(config.udp(), config.tcp(), config.server.clone())?;
    let started = std::time::Instant::now();
    // The objects are kept for the Whois/RDAP directory when the configuration serves them;
    // otherwise the file is read in `Detail::Dns`, all the DNS tables are built from.
    let rds_enabled = config.settings.whois.is_some() || config.settings.rdap.is_some();
    let detail = orrery_proto::state_file::Detail::for_serving(rds_enabled);
    let (header, objects) = orrery_proto::state_file::read_objects(snapshot, detail)
        .with_context(|| format!("state file {}", snapshot.display()))?;
    tracing::info!(
        objects = objects.len(),
        ms = started.elapsed().as_millis() as u64,
        "state file read"
    );
    // The Whois/RDAP directory is built only when the configuration serves them, and after
    // the DNS tables, once DNS is served: at a million domains its build (one thread) takes
    // twice as long as the DNS tables' (every core), and DNS need not wait for it. The
    // objects are kept for it meanwhile.
    let mut kept = None;
    let served = Served::from_objects(
        header.serial,
        objects,
        |objects| {
            if rds_enabled {
                kept = Some(objects);
            } else {
                dispose_in_background(objects);
            }
        },
        BuildOptions { directory: false },
    );
    tracing::info!(
        serial = header.serial,
        zones = served.zones.zones().len(),
        delegations = served
            .zones
            .zones()
            .iter()
            .map(|z| z.delegation_count())
            .sum::<usize>(),
        "zones loaded from {}",
        snapshot.display()
    );
    // The one check of the `xfr` table that needs the zones: now they are known.
    if let Some(xfr) = &config.settings.xfr {
        let zones = served.zones.zones().iter().map(|z| &z.apex_name);
        xfr.check_catalog(zones)
            .with_context(|| format!("{}: [xfr]", config_path.display()))?;
    }
    let metrics = Arc::new(SatelliteMetrics::new());
    metrics.set_applied(header.serial);
    metrics.set_objects(served.object_count() as u64);
    let zones = Arc::new(ServedStore::new(served));
    metrics.set_served(&zones);
    let selector = Selector::<Dns>::build(&config.selector)?;
    // With `serve_expired = false` a zone expires EXPIRE seconds after its data was current:
    // no master will ever refresh it here.
    let expiry = Arc::new(Expiry::for_standalone(snapshot));
    expiry.set_servfail(!config.settings.serve_expired);
    let pipeline = Arc::new(
        Pipeline::new(selector, Arc::clone(&zones), config.nsid())
            .with_stats(Arc::clone(&metrics.queries))
            .with_xfr(XfrService::for_settings(&config.settings, &zones))
            .with_expiry((!config.settings.serve_expired).then(|| Arc::clone(&expiry))),
    );
    let expiry_stop = CancellationToken::new();
    let expiry_tick = {
        let zones = Arc::clone(&zones);
        runtime.spawn(run_tick(
            expiry,
            move || Some(Arc::clone(&zones)),
            expiry_stop.clone(),
        ))
    };
    runtime.block_on(async move {
        // Dropped (stopped) when serving ends.
        let _metrics_listener = config
            .settings
            .metrics
            .map(|addr| MetricsListener::start(addr, &metrics))
            .transpose()
            .context("metrics listener")?;
        dns.serve(pipeline)?;
        tracing::info!(udp = ?dns.udp_addrs(), tcp = ?dns.tcp_addrs(), "serving DNS");
        let settings = &config.settings;
        let mut rds = if let Some(objects) = kept {
            let started = std::time::Instant::now();
            let build = tokio::task::spawn_blocking(move || {
                let directory = build_directory(objects.iter(), &[]);
                dispose_in_background(objects);
                directory
            });
            let directory = tokio::select! {
                built = build => built.context("building the Whois/RDAP directory")?,
                stop = shutdown_signal() => {
                    stop?;
                    tracing::info!("shutting down before Whois and RDAP were served");
                    dns.stop().await;
                    expiry_stop.cancel();
                    let _ = expiry_tick.await;
                    return Ok(());
                }
            };
            // Nothing else changes a standalone satellite's state: the serial is the file's.
            zones
                .attach_directory(directory, header.serial)
                .context("attaching the Whois/RDAP directory")?;
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "Whois/RDAP directory built"
            );
            let rds = RdsServing::start(
                settings.whois.as_ref(),
                settings.rdap.as_ref(),
                Selector::<Rds>::build(&config.rds_selector)?,
                zones,
                Arc::clone(&metrics.rds),
            )?;
            let (http, https) = rds.rdap_addrs();
            tracing::info!(
                whois = ?rds.whois_addrs(),
                rdap_http = ?http,
                rdap_https = ?https,
                "serving Whois and RDAP"
            );
            Some(rds)
        } else {
            None
        };
        shutdown_signal().await?;
        tracing::info!("shutting down");
        if let Some(rds) = &mut rds {
            rds.stop(RDS_STOP_GRACE).await;
        }
        dns.stop().await;
        expiry_stop.cancel();
        let _ = expiry_tick.await;
        Ok(())
    })
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM (what `kill` and systemd send), so both stop the
/// satellite cleanly: servers drained, state written.
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
