#!/usr/bin/env bash
# Benchmark: the CPU cost of the satellite's query statistics (typed per-worker counters and
# the answer-time histogram, satellite/src/stats/) per DNS query, before and after, in one run.
#   BEFORE=PATH AFTER=PATH bench/metrics-cost.sh [DOMAINS] [ROUNDS]   (defaults 100000, 3)
# BEFORE and AFTER are two release builds of orrery-satellite (before: the commit without the
# typed counters; after: this one). TOOLS=DIR holds orrery-admin and orrery-generator (any
# profile: they only make the data; default target/release).
# A synthetic TLD of DOMAINS domains (SQLite store, seed 1) is written as a satellite snapshot;
# each binary serves it DNS-only with 2 UDP workers (deploy/satellite.example.toml), the two
# alternated ROUNDS times. Per run: dnsperf saturated (-c 4 -T 1 -q 100 -l SECS) q/s and the
# satellite's CPU µs per answer (utime+stime from /proc), then the same at a fixed RATE q/s.
# Runs in a network namespace of its own (loopback only); every wait is bounded.
#   SECS=10 (dnsperf run length), RATE=20000 (the moderate-load run)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ORRERY_BENCH_NETNS:-}" ]; then
    exec unshare --net -- env ORRERY_BENCH_NETNS=1 bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
N="${1:-100000}"
ROUNDS="${2:-3}"
SECS="${SECS:-10}"
RATE="${RATE:-20000}"
tools="${TOOLS:-$PWD/target/release}"
: "${BEFORE:?BEFORE=path of the orrery-satellite built without the typed counters}"
: "${AFTER:?AFTER=path of the orrery-satellite built with them}"
work="$(mktemp -d)"
pid=""
cleanup() {
    [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT
hz=$(getconf CLK_TCK)
port=5398

echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %T') UTC"
quiet() { "$@" >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }; }
quiet "$tools/orrery-admin" --db "sqlite:$work/store.db" load-synthetic --zone test --domains "$N" --seed 1
quiet "$tools/orrery-generator" --db "sqlite:$work/store.db" --satellite-snapshot "$work/sat.snap" --no-zones
# Query mix: three referrals to one NXDOMAIN, shuffled.
sqlite3 "$work/store.db" "SELECT name FROM domain ORDER BY random() LIMIT 30000" |
    awk '{ print $1 ". A"; if (NR % 3 == 0) print "nx" NR "." "test. A" }' >"$work/queries"
sed -e "s/127.0.0.1:5353/127.0.0.1:$port/g" -e "s/^workers = .*/workers = 2/" \
    deploy/satellite.example.toml >"$work/sat.toml"

answers() { dig +time=1 +tries=1 @127.0.0.1 -p "$port" test SOA 2>/dev/null | grep -q 'status: NOERROR'; }
start() { # BINARY NAME
    "$1" --snapshot "$work/sat.snap" --config "$work/sat.toml" >"$work/$2.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do answers && return 0; sleep 0.1; done
    echo "satellite ($2) did not answer within 10 s"; cat "$work/$2.log"; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
run() { # dnsperf ARGS: prints "QPS CPU_US_PER_ANSWER LOST"
    local before after
    before=$(cpu_ticks)
    dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries" -c 4 -T 1 -q 100 -l "$SECS" "$@" >"$work/perf" 2>&1
    after=$(cpu_ticks)
    awk -v t=$((after - before)) -v hz="$hz" '
        /Queries completed:/ { done = $3 } /Queries lost:/ { lost = $3 }
        /Queries per second:/ { qps = $4 }
        END { d = done ? done : 1; printf "%.0f %.2f %d\n", qps, t * 1e6 / hz / d, lost }' "$work/perf"
}

printf '%-7s %5s %8s %7s %6s %8s %8s\n' build round "q/s" "µs/ans" lost "µs@rate" "lost@rt"
for round in $(seq "$ROUNDS"); do
    for build in before after; do
        bin=$BEFORE; [ "$build" = after ] && bin=$AFTER
        start "$bin" "$build"
        read -r qps us lost < <(run)
        read -r _ us_rate lost_rate < <(run -Q "$RATE")
        stop
        printf '%-7s %5d %8s %7s %6s %8s %8s\n' "$build" "$round" "$qps" "$us" "$lost" \
            "$us_rate" "$lost_rate" | tee -a "$work/results"
    done
done
echo "medians (and range) over $ROUNDS rounds:"
for build in before after; do
    for col in 3 4 6; do
        awk -v b="$build" -v c="$col" '$1 == b { print $c }' "$work/results" | sort -g |
            awk -v b="$build" -v c="$col" '{ v[NR] = $1 } END {
                name = (c == 3 ? "q/s" : c == 4 ? "µs/answer" : "µs/answer@rate")
                printf "  %-7s %-15s median %s (%s–%s)\n", b, name, v[int((NR + 1) / 2)], v[1], v[NR] }'
    done
done
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
