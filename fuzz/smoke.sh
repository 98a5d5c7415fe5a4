#!/usr/bin/env bash
# Bounded fuzzing smoke run: builds every fuzz target, writes the seed corpora, then runs each
# target for ORRERY_FUZZ_SECONDS (default 25) from its seeds. Exits non-zero on the first crash,
# with the input saved under fuzz/artifacts/TARGET/ (reproduce it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-…`).
#
#   ORRERY_FUZZ_SECONDS   seconds per target (default 25)
#   ORRERY_FUZZ_SANITIZER address (default) or none: `none` skips AddressSanitizer, whose build
#                         is the slower one; Rust's own checks (bounds, overflow, debug
#                         assertions) stay on either way
#   ORRERY_FUZZ_TARGETS   space-separated targets to run (default: all; all are built)
#   CARGO_TARGET_DIR      where the fuzz build goes (default fuzz/target)
#
# cargo-fuzz passes nightly-only flags (-Z, sanitizer coverage) to rustc; RUSTC_BOOTSTRAP=1
# lets the stable compiler accept them.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${ORRERY_FUZZ_SECONDS:-25}"
sanitizer="${ORRERY_FUZZ_SANITIZER:-address}"
targets="${ORRERY_FUZZ_TARGETS:-dns_query whois_line rdap_path state_file link_message}"
target_dir="${CARGO_TARGET_DIR:-target}"
# Every target and the seed corpora (build.sh).
source ./build.sh

for target in $targets; do
    mkdir -p "corpus/$target" "artifacts/$target"
    echo "fuzz: $target for $seconds s"
    # -rss_limit_mb: a leak or a runaway allocation is a crash too. Output goes to a log,
    # whose last lines (the execution and coverage figures) are shown.
    if ! cargo fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$target" \
        "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        >"artifacts/$target.log" 2>&1; then
        tail -n 60 "artifacts/$target.log"
        echo "fuzz: $target FAILED (input saved under fuzz/artifacts/$target/)"
        exit 1
    fi
    grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb' "artifacts/$target.log" || true
done
echo "fuzz: every target ran ${seconds} s without a crash"
