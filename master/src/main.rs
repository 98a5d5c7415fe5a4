//! `orrery-master`: runs the master, checks its configuration, and manages the link's
//! certificates.
//!
//! ```text
//! orrery-master run --config /etc/orrery/master.toml
//! orrery-master check-config --config /etc/orrery/master.toml
//! orrery-master status --config /etc/orrery/master.toml [--json]
//! orrery-master status --db postgres://…  [--json]
//! orrery-master certs ca --dir /etc/orrery/certs
//! orrery-master certs issue --dir /etc/orrery/certs --master m1
//! orrery-master certs issue --dir /etc/orrery/certs --satellite sat1
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use orrery_master::certs::{Role, write_ca, write_issued};
use orrery_master::cluster_view::ClusterView;
use orrery_master::config::{DEFAULT_CLUSTER_HEARTBEAT, MasterConfig};
use orrery_master::status::{StatusOptions, to_json, to_text};
use orrery_master::wait_for_store::{self, WaitError};
use orrery_master::{Master, MasterError, load_tls};
use orrery_proto::link::tls::SatelliteId;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    version,
    about = "Orrery master: journal follower, cache and satellite link"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the master (SIGHUP reloads the satellites' configuration; SIGTERM/Ctrl-C stop).
    Run {
        #[arg(long, env = "ORRERY_MASTER_CONFIG")]
        config: PathBuf,
    },
    /// Validate a configuration file and print what it configures.
    CheckConfig {
        #[arg(long, env = "ORRERY_MASTER_CONFIG")]
        config: PathBuf,
    },
    /// Show every satellite and master, and the watchdog's warnings, from the store only
    /// (works from any host that reaches it).
    Status {
        /// The master configuration: its store, and the satellites to list even if they never
        /// checked in.
        #[arg(long, env = "ORRERY_MASTER_CONFIG", required_unless_present = "db")]
        config: Option<PathBuf>,
        /// The store's URL instead of a configuration (lists what the store knows).
        #[arg(long, conflicts_with = "config")]
        db: Option<String>,
        /// One JSON document, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Create the private CA or issue certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create ca.pem and ca.key in DIR.
    Ca {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 3650)]
        days: i64,
    },
    /// Issue a master or satellite certificate signed by DIR/ca.key.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// A master's name: writes NAME.master.{pem,key} (DNS names NAME.master.orrery, master.orrery).
        #[arg(
            long,
            conflicts_with = "satellite",
            required_unless_present = "satellite"
        )]
        master: Option<String>,
        /// A satellite's identity: writes NAME.satellite.{pem,key} (DNS name NAME.satellite.orrery).
        #[arg(long)]
        satellite: Option<String>,
        #[arg(long, default_value_t = 825)]
        days: i64,
    },
}

fn main() -> ExitCode {
    orrery_proto::logging::init("info");
    let _ = rustls::crypto::ring::default_provider().install_default();
    match command(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            orrery_proto::logging::print_error("orrery-master", e.as_ref());
            ExitCode::FAILURE
        }
    }
}

fn command(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => tokio::runtime::Runtime::new()?.block_on(run(config)),
        Command::CheckConfig { config } => {
            // Everything `run` checks before it waits for the store: the file, the store URL,
            // every satellite's settings, the TLS files.
            let c = MasterConfig::load(&config)?;
            load_tls(&c).with_context(|| format!("{}: [tls]", config.display()))?;
            for warning in &c.warnings {
                println!("{}: warning: {warning}", config.display());
            }
            println!(
                "{}: store {}, listen {:?}, {} satellites",
                config.display(),
                c.store,
                c.listen,
                c.satellites.len()
            );
            for (id, s) in &c.satellites {
                println!("  {id}: config version {}", s.version());
            }
            Ok(())
        }
        Command::Certs { command } => certs(command),
        Command::Status { config, db, json } => {
            tokio::runtime::Runtime::new()?.block_on(status(config, db, json))
        }
    }
}

async fn status(config: Option<PathBuf>, db: Option<String>, json: bool) -> anyhow::Result<()> {
    let (url, satellites, stale) = match (&config, db) {
        (Some(path), _) => {
            let c = MasterConfig::load(path)?;
            (
                c.store.clone(),
                c.satellites.clone(),
                c.cluster.stale_after(),
            )
        }
        (None, Some(url)) => (url, Default::default(), DEFAULT_CLUSTER_HEARTBEAT * 5),
        (None, None) => anyhow::bail!("give --config FILE or --db URL"),
    };
    // Never create an empty store by mistake: a SQLite file must exist.
    if let Some(path) = url.strip_prefix("sqlite:")
        && !path.starts_with(":memory:")
        && !std::path::Path::new(path.split('?').next().unwrap_or(path)).exists()
    {
        anyhow::bail!("no store at {url} (the file does not exist)");
    }
    let store = orrery_store::Store::open(&url)
        .await
        .context("opening the store")?;
    let view = ClusterView::read(&store, &satellites)
        .await
        .context("reading the cluster state")?;
    store.close().await;
    let options = StatusOptions {
        master_stale_after: stale,
    };
    if json {
        println!("{}", to_json(&view, options));
    } else {
        print!("{}", to_text(&view, options));
    }
    Ok(())
}

fn certs(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Ca { dir, days } => {
            let (cert, key) = write_ca(&dir, days)?;
            println!(
                "CA certificate {}\nCA key         {} (keep it offline)",
                cert.display(),
                key.display()
            );
        }
        CertsCommand::Issue {
            dir,
            master,
            satellite,
            days,
        } => {
            let role = match (master, satellite) {
                (Some(m), None) => Role::Master(SatelliteId::new(&m)?),
                (None, Some(s)) => Role::Satellite(SatelliteId::new(&s)?),
                _ => anyhow::bail!("give exactly one of --master NAME or --satellite NAME"),
            };
            let (cert, key) = write_issued(&dir, &role, days)?;
            println!(
                "certificate {}\nkey         {}",
                cert.display(),
                key.display()
            );
        }
    }
    Ok(())
}

async fn run(path: PathBuf) -> anyhow::Result<()> {
    let config = MasterConfig::load(&path)?;
    let tls = load_tls(&config).with_context(|| format!("{}: [tls]", path.display()))?;
    for warning in &config.warnings {
        tracing::warn!(config = %path.display(), "{warning}");
    }
    let shutdown = CancellationToken::new();
    // A stop signal must also end the wait for an unreachable store.
    let stop = shutdown.clone();
    tokio::spawn(async move {
        if wait_for_stop().await.is_ok() {
            stop.cancel();
        }
    });
    let store = match wait_for_store::open(&config.store, &shutdown).await {
        Ok(store) => store,
        Err(WaitError::Stopped) => return Ok(()),
        Err(e) => return Err(e).with_context(|| "opening the store"),
    };
    let read = match &config.read_store {
        Some(url) => match wait_for_store::open_read_only(url, &shutdown).await {
            Ok(read) => {
                tracing::info!(
                    "following the journal from the read replica (polling); writing to the primary"
                );
                read
            }
            Err(WaitError::Stopped) => return Ok(()),
            Err(e) => return Err(e).with_context(|| "opening the read replica"),
        },
        None => store.clone(),
    };
    let mut listeners = Vec::new();
    for addr in &config.listen {
        listeners.push(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?,
        );
    }
    let master =
        match Master::start_with_reader(&config, store, read, &tls, listeners, shutdown.clone())
            .await
        {
            Ok(master) => master,
            Err(MasterError::Wait(WaitError::Stopped)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
    let satellites = master.satellites().clone();

    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => match MasterConfig::load(&path) {
                Ok(new) => {
                    if new.store != config.store || new.read_store != config.read_store || new.listen != config.listen || new.tls != config.tls {
                        tracing::warn!("store, listen and tls changes need a restart; applying the satellites' configuration only");
                    }
                    for warning in &new.warnings {
                        tracing::warn!(config = %path.display(), "{warning}");
                    }
                    tracing::info!(satellites = new.satellites.len(), "configuration reloaded");
                    satellites.set_config(new.satellites);
                }
                Err(e) => tracing::error!(error = %e, "configuration not reloaded"),
            },
            () = shutdown.cancelled() => break,
        }
    }
    tracing::info!("shutting down");
    master.join().await;
    Ok(())
}

/// Waits for SIGTERM or Ctrl-C.
async fn wait_for_stop() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => Ok(()),
        r = tokio::signal::ctrl_c() => r,
    }
}
