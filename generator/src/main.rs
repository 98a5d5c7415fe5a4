//! `orrery-generator`: writes the registry's zones as BIND master files, plus a `named.conf`
//! fragment, for the fallback cluster; with `--satellite-snapshot FILE`, also the snapshot file
//! a satellite starts from (`--no-zones` for the snapshot alone). Zones whose DNSSEC policy
//! signs them are signed with the keys in `--key-dir`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use orrery_generator::{
    Outcome, generate_zone_with_keys, run_hook, soa_serial, write_named_conf,
    write_satellite_snapshot_with_keys,
};
use orrery_proto::Name;
use orrery_store::Store;

#[derive(Parser)]
#[command(
    name = "orrery-generator",
    version,
    about = "Write BIND zone files from the registry store"
)]
struct Cli {
    /// Store URL: `sqlite:PATH` or `postgres://…` (required: there is no default store, and
    /// a SQLite file that does not exist is refused, never created empty).
    #[arg(long, env = "ORRERY_DB")]
    db: String,
    /// Directory for the zone files.
    #[arg(long, default_value = "zones")]
    out: PathBuf,
    /// Zone to generate (repeat); default: every zone in the store.
    #[arg(long)]
    zone: Vec<String>,
    /// Where to write the named.conf fragment; default: OUT/named.conf.zones.
    #[arg(long)]
    named_conf: Option<PathBuf>,
    /// Command run after each zone written (`sh -c`), with ORRERY_ZONE, ORRERY_ZONE_FILE and
    /// ORRERY_SERIAL set; e.g. 'rndc reload "$ORRERY_ZONE"'.
    #[arg(long)]
    hook: Option<String>,
    /// Rewrite zones even when their serial has not changed.
    #[arg(long)]
    force: bool,
    /// Also write a satellite snapshot of the whole registry to FILE (for
    /// `orrery-satellite --snapshot FILE`), read from one consistent store snapshot.
    #[arg(long, value_name = "FILE")]
    satellite_snapshot: Option<PathBuf>,
    /// Key directory of the signing host (PKCS#8 files, mode 0600): needed for zones whose
    /// DNSSEC policy signs them.
    #[arg(long, env = "ORRERY_KEY_DIR", value_name = "DIR")]
    key_dir: Option<PathBuf>,
    /// Write no zone files or named.conf (with --satellite-snapshot: the snapshot alone).
    #[arg(long, requires = "satellite_snapshot")]
    no_zones: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    orrery_proto::logging::init("info");
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            orrery_proto::logging::print_error("orrery-generator", e.as_ref());
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // The generator only reads: a mistyped path must not become a new, empty store whose
    // zones (none) are then written out.
    if let Some(path) = cli.db.strip_prefix("sqlite:")
        && !path.starts_with(":memory:")
    {
        let file = std::path::Path::new(path.split('?').next().unwrap_or(path));
        anyhow::ensure!(
            file.exists(),
            "no store at {} (from --db or ORRERY_DB): check the path, or create it with `orrery-admin --db {} init`",
            file.display(),
            cli.db
        );
    }
    let store = Store::open(&cli.db).await?;
    let keys = cli
        .key_dir
        .as_deref()
        .map(orrery_signer::FileKeyStore::open)
        .transpose()?;
    let keys = keys.as_ref().map(|k| k as &dyn orrery_signer::KeyStore);
    if let Some(path) = &cli.satellite_snapshot {
        let serial = write_satellite_snapshot_with_keys(&store, path, keys).await?;
        tracing::info!(
            serial,
            soa_serial = soa_serial(serial),
            path = %path.display(),
            "satellite snapshot written"
        );
    }
    if cli.no_zones {
        store.close().await;
        return Ok(());
    }
    std::fs::create_dir_all(&cli.out)?;
    let out = std::fs::canonicalize(&cli.out)?;
    let zones: Vec<Name> = if cli.zone.is_empty() {
        store.zones().await?.into_iter().map(|z| z.name).collect()
    } else {
        cli.zone
            .iter()
            .map(|z| Name::from_user(z).map_err(|e| anyhow::anyhow!("invalid zone {z:?}: {e}")))
            .collect::<Result<_, _>>()?
    };
    let mut failed = 0;
    for zone in &zones {
        match generate_zone_with_keys(&store, zone, &out, cli.force, keys).await {
            Ok(Outcome::Written {
                path,
                serial,
                delegations,
                records,
            }) => {
                tracing::info!(zone = %zone, serial, delegations, records, path = %path.display(), "zone written");
                if let Some(hook) = &cli.hook
                    && let Err(e) = run_hook(hook, zone, &path, serial)
                {
                    tracing::error!("{e}");
                    failed += 1;
                }
            }
            Ok(Outcome::Unchanged { zone_serial, .. }) => {
                tracing::info!(zone = %zone, zone_serial, "zone unchanged, skipped");
            }
            Err(e) => {
                tracing::error!(zone = %zone, "{e}");
                failed += 1;
            }
        }
    }
    let conf = cli
        .named_conf
        .unwrap_or_else(|| out.join("named.conf.zones"));
    write_named_conf(&zones, &out, &conf)?;
    store.close().await;
    anyhow::ensure!(failed == 0, "{failed} zone(s) failed");
    Ok(())
}
