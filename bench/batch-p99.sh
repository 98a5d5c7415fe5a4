#!/usr/bin/env bash
# Benchmark: what applying 10,000-change batches costs a satellite's queries when nothing else
# runs — no master, no PostgreSQL (issue 11, goal: p99 during a batch ≤ 2× the quiet p99).
#   bench/batch-p99.sh [DOMAINS] [ROUNDS]        (default 100000, 3)
# Loads DOMAINS synthetic domains (seed 1) into SQLite, writes the state file with
# orrery-generator, then serves it with satellite/examples/batch_p99.rs (DNS only, 2 UDP
# workers, deploy/satellite.example.toml's chains) in a loopback-only namespace. Each round
# runs dnsperf at a fixed rate (the mix of bench/compare-peers.sh: three referrals to one
# NXDOMAIN, -Q BENCH_RATE, -l BENCH_SECONDS, per-query latencies from -v) three times, in
# turn: no batch ("idle"), a batch every 2 s applied at the normal priority ("normal", as
# before background.rs), and the same at low priority ("low", SCHED_IDLE: the default). Each
# batch sets serverHold on 10,000 domains, the next takes it off. Prints p50/p99/max per run,
# then the median of each mode, with the satellite's CPU and the load average.
# Environment: BENCH_RATE (20000), BENCH_SECONDS (10), BENCH_BIN (see lib.sh), STATE=FILE
# (reuse a state file, with Q=FILE its query file of "NAME. A" lines).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N="${1:-100000}"
ROUNDS="${2:-3}"
RATE="${BENCH_RATE:-20000}"
SECS="${BENCH_SECONDS:-10}"
if [ -z "${BENCH_BIN:-}" ]; then
    cargo build --release --locked -p orrery-store -p orrery-generator -p orrery-satellite \
        --bins --example batch_p99 >/dev/null
fi
bin="$(realpath "${BENCH_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release}")"
in_loopback_namespace "$0" "$@"
bench_start
peers="python3 $PWD/bench/peers.py"
machine
state="${STATE:-$work/state}"
if [ -z "${STATE:-}" ]; then
    t=$(now)
    quiet "$bin/orrery-admin" --db "sqlite:$work/store.db" load-synthetic --zone test --domains "$N" --seed 1
    quiet "$bin/orrery-generator" --db "sqlite:$work/store.db" --out "$work/zones" --no-zones \
        --satellite-snapshot "$state"
    sqlite3 "$work/store.db" "SELECT name FROM domain d WHERE EXISTS (SELECT 1 FROM domain_ns n WHERE n.domain_id = d.id)
        AND NOT EXISTS (SELECT 1 FROM domain_status s WHERE s.domain_id = d.id AND s.status IN ('clientHold', 'serverHold'))
        ORDER BY random() LIMIT 100000" | awk '{ print $1 ". A" }' >"$work/q.ref"
    rm -f "$work/store.db"*
    echo "store and state file ($(du -m "$state" | cut -f1) MiB) made in $(since "$t") s"
else
    cp "${Q:?Q=the query file of STATE}" "$work/q.ref"
fi
awk '{ print } NR % 3 == 0 { print "nx" NR ".test. A" }' "$work/q.ref" >"$work/q.mix"
port=5305
sed -e "s/127.0.0.1:5353/127.0.0.1:$port/g" -e "s/^workers = .*/workers = 2/" \
    deploy/satellite.example.toml >"$work/sat.toml"

mkfifo "$work/cmd"
"$bin/examples/batch_p99" "$state" "$work/sat.toml" <"$work/cmd" >"$work/out" 2>"$work/sat.log" &
spid=$!; pids+=("$spid")
exec 3>"$work/cmd"
wait_log "$work/out" "^ready" 300 "$spid"
sleep 3   # the build's objects freed and trimmed (served-free)
hz=$(getconf CLK_TCK)
for round in $(seq 1 "$ROUNDS"); do
    for mode in idle normal low; do
        c0=$($peers cpu "$spid")
        dnsperf -s 127.0.0.1 -p "$port" -d "$work/q.mix" -c 4 -T 1 -q 100 -t 2 -l "$SECS" -Q "$RATE" -v \
            >"$work/lat" 2>&1 &
        dp=$!
        if [ "$mode" != idle ]; then
            sleep 1
            while kill -0 "$dp" 2>/dev/null; do
                echo "$mode" >&3
                sleep 2
            done
        fi
        wait "$dp"
        c1=$($peers cpu "$spid")
        read -r p50 p99 max count < <($peers latency "$work/lat")
        read -r _ _ lost < <($peers dnsperf "$work/lat")
        applied=$(grep -c "^applied $mode" "$work/out" || true)
        echo "round $round $mode: p50 $p50 µs p99 $p99 µs max $max µs ($count answers, $lost lost);" \
            "satellite CPU $(( (c1 - c0) * 1000 / hz )) ms; batches applied so far ($mode) $applied;" \
            "load $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "$mode $p99" >>"$work/p99"
        sleep 1
    done
done
exec 3>&-
echo "apply times (ms), normal: $(awk '$2 == "normal" { printf "%s ", $3 }' "$work/out")"
echo "apply times (ms), low:    $(awk '$2 == "low" { printf "%s ", $3 }' "$work/out")"
for mode in idle normal low; do
    awk -v m="$mode" '$1 == m { print $2 }' "$work/p99" | sort -n | awk -v m="$mode" '{ a[NR] = $1 } END {
        printf "%-6s p99 median %d µs (%d-%d) over %d runs\n", m, a[int((NR + 1) / 2)], a[1], a[NR], NR }'
done
machine
