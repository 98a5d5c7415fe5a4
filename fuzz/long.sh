#!/usr/bin/env bash
# Long fuzzing run: builds every fuzz target, writes the seed corpora, then runs the chosen
# targets one after another, each for ORRERY_FUZZ_RUNS inputs in ONE libFuzzer process (one
# core: the machine's other core stays free for builds), and prints a table of the figures
# docs/BENCHMARKS.md reports. The corpus of each target grows in fuzz/corpus/TARGET and is
# reused by the next run; a crash stops that target, saves the input under
# fuzz/artifacts/TARGET/ and makes the script exit non-zero after the table.
#
#   ORRERY_FUZZ_RUNS       inputs per target (default 10000000)
#   ORRERY_FUZZ_MAX_TIME   seconds per target at most (default 0: no bound); a target stopped
#                          by it shows fewer inputs than asked in the table
#   ORRERY_FUZZ_SANITIZER  none (default) or address. Rust's own checks (bounds, overflow,
#                          debug assertions) stay on either way; the Orrery code the targets
#                          reach has no `unsafe` (the satellite's is in udp.rs, which no target
#                          calls), and without AddressSanitizer a target runs many times faster
#   ORRERY_FUZZ_TARGETS    space-separated targets (default: all five)
#   CARGO_TARGET_DIR       where the fuzz build goes (default fuzz/target)
#
# Each target's whole libFuzzer output is kept in fuzz/artifacts/TARGET.long.log.
set -euo pipefail
cd "$(dirname "$0")"
runs="${ORRERY_FUZZ_RUNS:-10000000}"
max_time="${ORRERY_FUZZ_MAX_TIME:-0}"
sanitizer="${ORRERY_FUZZ_SANITIZER:-none}"
targets="${ORRERY_FUZZ_TARGETS:-dns_query whois_line rdap_path state_file link_message}"
target_dir="${CARGO_TARGET_DIR:-target}"
# Every target and the seed corpora (build.sh).
source ./build.sh

# The last value of one `stat::NAME:` line, or of one field (`cov:`, `ft:`, `corp:`) of the
# last status line that has it.
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }
field() { grep -E "^#[0-9]+" "$2" | grep -oE "$1 [^ ]+" | tail -n 1 | cut -d' ' -f2; }

rows=()
failed=0
TIMEFORMAT='%U %S'
for target in $targets; do
    mkdir -p "corpus/$target" "artifacts/$target"
    log="artifacts/$target.long.log"
    echo "fuzz: $target for $runs inputs (log $log)"
    started=$SECONDS
    status=ok
    # One process (libFuzzer's default without -jobs/-fork): -jobs would add a supervising
    # process and send the output to fuzz-N.log. -rss_limit_mb: a leak or a runaway
    # allocation is a crash too.
    # The CPU time (user + system) shows how much of a core the target had on a shared machine.
    if ! { time "$bin/$target" "corpus/$target" "seeds/$target" \
        -runs="$runs" -max_total_time="$max_time" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" >"$log" 2>&1; } 2>"artifacts/$target.cpu"; then
        status=CRASH
        failed=1
        tail -n 40 "$log"
    fi
    seconds=$((SECONDS - started))
    cpu=$(awk '{ printf "%.0f", $1 + $2 }' "artifacts/$target.cpu")
    rows+=("$(printf '| %s | %s | %s s | %s s | %s | %s | %s | %s | %s MB | %s |' "$target" \
        "$(stat number_of_executed_units "$log")" "$seconds" "$cpu" \
        "$(stat average_exec_per_sec "$log")" "$(field cov: "$log")" "$(field ft: "$log")" \
        "$(field corp: "$log")" "$(stat peak_rss_mb "$log")" "$status")")
done

echo
echo "| target | inputs | time | CPU | exec/s | coverage (edges) | features | corpus (units/size) | peak RSS | result |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
exit "$failed"
