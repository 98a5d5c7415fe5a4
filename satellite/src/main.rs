//! `orrery-satellite --snapshot FILE --config FILE`: serve the zones of a snapshot.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use orrery_satellite::server::{Server, ServerSettings};
use orrery_satellite::{Config, Pipeline, Selector, ZoneSet, ZoneStore, read_snapshot};
use tokio_util::sync::CancellationToken;

/// Authoritative DNS for a registry's zones.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Snapshot file of the zones to serve.
    #[arg(long)]
    snapshot: PathBuf,
    /// Configuration file (TOML).
    #[arg(long)]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = Config::load(&args.config)?;
    let data = read_snapshot(&args.snapshot)?;
    let zones = ZoneSet::build(data.serial, &data.zones, &data.domains, &data.hosts);
    tracing::info!(
        serial = data.serial,
        zones = zones.zones().len(),
        delegations = zones
            .zones()
            .iter()
            .map(|z| z.delegation_count())
            .sum::<usize>(),
        "zones loaded from {}",
        args.snapshot.display()
    );
    let selector = Selector::build(&config.selector)?;
    let pipeline = Arc::new(Pipeline::new(
        selector,
        Arc::new(ZoneStore::new(zones)),
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
                std::net::UdpSocket::bind(addr).with_context(|| format!("binding udp {addr}"))?,
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
        tokio::signal::ctrl_c()
            .await
            .context("waiting for ctrl-c")?;
        tracing::info!("shutting down");
        cancel.cancel();
        server.join().await;
        Ok(())
    })
}
