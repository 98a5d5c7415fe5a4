#!/usr/bin/env bash
# Benchmark: failover time of a satellite cluster when the active master is killed (issue 12).
#   bench/failover.sh [RUNS]      (default 20)
# Runs the cluster test masters::killing_the_active_master_moves_every_satellite_to_the_next
# RUNS times (two masters on one PostgreSQL database, two satellites dialling
# `--master m1 --master m2`, real processes on 127.0.0.1 in a network namespace of their own).
# Each run times kill -9 of the active master → every satellite following the other master
# and answering a change committed right after the kill, and prints the median, the p99 and
# the worst over the runs (goal: ≤ 10 s). DATABASE_URL names the PostgreSQL server the test
# makes its database on (default: the machine's, over its Unix socket). PROFILE=release uses
# release binaries (built once here); the default is the debug ones.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-20}"
export DATABASE_URL="${DATABASE_URL:-postgres:///postgres?host=/var/run/postgresql&user=postgres}"
profile=()
[ "${PROFILE:-debug}" = release ] && profile=(--release)
cargo build "${profile[@]}" --locked --workspace --bins >/dev/null
# --workspace, not -p: the features then resolve as in the workspace build, whose
# dependencies are reused rather than built again.
cargo test "${profile[@]}" --locked --workspace --test cluster --no-run >/dev/null 2>&1
times="$(mktemp)"
trap 'rm -f "$times"' EXIT
for run in $(seq 1 "$RUNS"); do
    out="$(unshare --net -- bash -c "ip link set lo up && cargo test ${profile[*]} --locked -q --workspace --test cluster \
        masters::killing_the_active_master_moves_every_satellite_to_the_next -- --exact --nocapture 2>&1")" \
        || { echo "run $run failed:"; echo "$out" | tail -40; exit 1; }
    ms="$(echo "$out" | sed -n 's/^failover: .* in \([0-9]*\) ms$/\1/p')"
    [ -n "$ms" ] || { echo "run $run: no figure"; echo "$out" | tail -20; exit 1; }
    echo "run $run: $ms ms"
    echo "$ms" >> "$times"
done
sort -n "$times" | awk '{ v[NR] = $1 } END {
    p99 = int(0.99 * NR + 0.999); if (p99 < 1) p99 = 1
    printf "%d runs: median %d ms, p99 %d ms, worst %d ms, best %d ms\n", NR, v[int((NR + 1) / 2)], v[p99], v[NR], v[1]
}'
