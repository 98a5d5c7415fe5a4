//! A satellite that applies 10,000-change batches on command, for measuring what applying a
//! batch costs the queries with no master and no database on the machine (issue 11: "split
//! what the satellite causes from what the master and store cause").
//!
//! ```text
//! batch_p99 STATE_FILE CONFIG [BATCH_SIZE]
//! ```
//!
//! Serves STATE_FILE as `orrery-satellite --snapshot STATE_FILE --config CONFIG` does (DNS
//! only), prints `ready PORT` once it answers, then reads commands from stdin, one a line:
//! `low` or `normal` applies one batch on a background thread at that priority (the same
//! [`background::run`] and [`ServedStore::apply`] a master-fed satellite uses; `normal`
//! is the priority before that change) and prints `applied MODE MS`; the batch sets
//! `serverHold` on the first BATCH_SIZE delegated domains of the file (10,000 by default),
//! the next one takes it off again, as `bench/compare-peers.sh`'s transaction does.
//! `bench/batch-p99.sh` drives it beside dnsperf.

use std::io::BufRead;
use std::sync::Arc;
use std::time::Instant;

use orrery_proto::{Change, ChangeBatch, Domain, EppStatus};
use orrery_satellite::background;
use orrery_satellite::dns::leaf::Dns;
use orrery_satellite::link::serving::Serving;
use orrery_satellite::served::dispose_in_background;
use orrery_satellite::{BuildOptions, Config, Pipeline, Selector, Served, ServedStore};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(state), Some(config)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: batch_p99 STATE_FILE CONFIG [BATCH_SIZE]");
    };
    let size: usize = args.get(3).map_or(Ok(10_000), |s| s.parse())?;
    let config = Config::load(std::path::Path::new(config))?;
    let (header, objects) = orrery_proto::state_file::read_objects(
        state.as_ref(),
        orrery_proto::state_file::Detail::Full,
    )?;
    let mut domains: Vec<Domain> = objects
        .iter()
        .filter_map(|c| match c {
            Change::Domain(d) if d.is_delegated() => Some(d.clone()),
            _ => None,
        })
        .take(size)
        .collect();
    anyhow::ensure!(
        domains.len() == size,
        "the file has fewer than {size} domains"
    );
    let served = Served::from_objects(
        header.serial,
        objects,
        dispose_in_background,
        BuildOptions { directory: false },
    );
    let zones = Arc::new(ServedStore::new(served));
    let selector = Selector::<Dns>::build(&config.selector)?;
    let pipeline = Arc::new(Pipeline::new(selector, Arc::clone(&zones), config.nsid()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut dns = Serving::bind(config.udp(), config.tcp(), config.server.clone())?;
        dns.serve(pipeline)?;
        println!("ready {}", dns.udp_addrs()[0].port());
        let mut lines = std::io::stdin().lock().lines();
        let mut hold = true;
        while let Some(line) = lines.next().transpose()? {
            let low = match line.trim() {
                "low" => true,
                "normal" => false,
                "" => continue,
                other => anyhow::bail!("unknown command {other:?}"),
            };
            for d in &mut domains {
                if hold {
                    d.statuses.push(EppStatus::ServerHold);
                } else {
                    d.statuses.retain(|s| *s != EppStatus::ServerHold);
                }
            }
            hold = !hold;
            let serial = zones.serial();
            let batch = ChangeBatch {
                after: serial,
                upto: serial + 1,
                changes: domains.iter().cloned().map(Change::Domain).collect(),
            };
            background::set_low_priority(low);
            let started = Instant::now();
            let store = Arc::clone(&zones);
            background::run("served-apply", move || store.apply(batch)).await??;
            println!(
                "applied {} {}",
                if low { "low" } else { "normal" },
                started.elapsed().as_millis()
            );
        }
        dns.stop().await;
        Ok(())
    })
}
