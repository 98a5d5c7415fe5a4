//! Writes the seed inputs of every target (or of the targets named) to `DIR/TARGET/`, one file
//! per seed named by its index: `seeds DIR [TARGET…]`.
//!
//! A binary of the fuzz crate beside the targets, so that `cargo fuzz build` builds it with
//! them (one build, whose flags it shares) and `smoke.sh` runs it from there; it does not use
//! libFuzzer. `cargo run --bin seeds -- DIR` works too (a plain build).

use std::path::PathBuf;
use std::process::ExitCode;

use orrery_fuzz::seeds::{TARGETS, seeds};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: seeds DIR [TARGET…]");
        return ExitCode::from(2);
    };
    let named: Vec<String> = args.collect();
    let targets: Vec<&str> = if named.is_empty() {
        TARGETS.to_vec()
    } else {
        named.iter().map(String::as_str).collect()
    };
    for target in targets {
        let Some(inputs) = seeds(target) else {
            eprintln!(
                "seeds: no target {target:?} (targets: {})",
                TARGETS.join(", ")
            );
            return ExitCode::FAILURE;
        };
        let out = dir.join(target);
        let written = std::fs::create_dir_all(&out).and_then(|()| {
            inputs
                .iter()
                .enumerate()
                .try_for_each(|(i, input)| std::fs::write(out.join(format!("seed-{i:03}")), input))
        });
        if let Err(e) = written {
            eprintln!("seeds: {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
        println!("{target}: {} seeds in {}", inputs.len(), out.display());
    }
    ExitCode::SUCCESS
}
