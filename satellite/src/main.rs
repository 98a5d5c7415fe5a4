//! Two ways to run a satellite:
//!
//! - `orrery-satellite --snapshot FILE --config FILE`: serve the zones of a snapshot file with a
//!   local configuration (no master).
//! - `orrery-satellite --master ADDR [--master ADDR2 …] --tls-dir DIR --state FILE`: dial the
//!   masters, learn everything else from them (listen addresses, Selector, …), follow their
//!   changes, and keep the state in FILE so that a restart serves at once without them.
//!   DIR holds `ca.pem` and this satellite's `NAME.satellite.pem`/`.key` as written by
//!   `orrery-master certs issue --satellite NAME` (`--name NAME` picks one when DIR holds
//!   several).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use orrery_proto::link::tls::{TlsFiles, TlsMaterial};
use orrery_satellite::dns::leaf::Dns;
use orrery_satellite::dns::server::{Server, ServerSettings};
use orrery_satellite::dns::udp::UdpSockets;
use orrery_satellite::link::{LinkConfig, Satellite};
use orrery_satellite::{
    BuildOptions, Config, Pipeline, Selector, Served, ServedStore, read_snapshot,
};
use tokio_util::sync::CancellationToken;

/// Authoritative DNS for a registry's zones.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Snapshot file of the zones to serve (with --config; no master).
    #[arg(long, requires = "config", conflicts_with_all = ["master", "tls_dir", "state"])]
    snapshot: Option<PathBuf>,
    /// Configuration file (TOML), with --snapshot.
    #[arg(long, requires = "snapshot")]
    config: Option<PathBuf>,
    /// A master's HOST:PORT; repeat for several, tried in turn.
    #[arg(long, requires_all = ["tls_dir", "state"])]
    master: Vec<String>,
    /// Directory with ca.pem and NAME.satellite.pem/.key.
    #[arg(long, requires = "master")]
    tls_dir: Option<PathBuf>,
    /// The satellite's name, when the TLS directory holds several satellite certificates.
    #[arg(long, requires = "master")]
    name: Option<String>,
    /// State file (snapshot format), written as changes arrive.
    #[arg(long, requires = "master")]
    state: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    match (&args.snapshot, &args.config, &args.tls_dir, &args.state) {
        (Some(snapshot), Some(config), None, None) => serve_snapshot(snapshot, config),
        (None, None, Some(dir), Some(state)) => {
            serve_from_master(&args.master, dir, args.name.as_deref(), state)
        }
        _ => anyhow::bail!(
            "give either --snapshot FILE --config FILE, or --master ADDR --tls-dir DIR --state FILE"
        ),
    }
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
) -> anyhow::Result<()> {
    let files = tls_files(tls_dir, name)?;
    let tls = TlsMaterial::load(&files)?;
    tracing::info!(cert = %files.cert.display(), masters = ?masters, "dialling the masters");
    let config = LinkConfig::new(masters.to_vec(), tls, state.to_owned());
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

fn serve_snapshot(snapshot: &Path, config: &Path) -> anyhow::Result<()> {
    let config = Config::load(config)?;
    let data = read_snapshot(snapshot)?;
    // The standalone satellite serves DNS only: no Whois/RDAP directory to build.
    let served = Served::from_snapshot(&data, BuildOptions { directory: false });
    tracing::info!(
        serial = data.serial,
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
    let selector = Selector::<Dns>::build(&config.selector)?;
    let pipeline = Arc::new(Pipeline::new(
        selector,
        Arc::new(ServedStore::new(served)),
        config.nsid.clone(),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let mut udp = Vec::new();
        for addr in &config.udp {
            udp.push(
                UdpSockets::bind(*addr, config.workers, &config.udp_settings)
                    .with_context(|| format!("binding udp {addr}"))?,
            );
        }
        let mut tcp = Vec::new();
        for addr in &config.tcp {
            tcp.push(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding tcp {addr}"))?,
            );
        }
        let cancel = CancellationToken::new();
        let settings = ServerSettings {
            workers: config.workers,
            tcp_idle_timeout: config.tcp_idle_timeout,
            tcp_max_connections: config.tcp_max_connections,
        };
        let server = Server::start(pipeline, udp, tcp, &settings, cancel.clone())?;
        tracing::info!(udp = ?config.udp, tcp = ?config.tcp, "serving");
        shutdown_signal().await?;
        tracing::info!("shutting down");
        cancel.cancel();
        server.join().await;
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
