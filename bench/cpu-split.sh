#!/usr/bin/env bash
# Benchmark: where a saturated server's CPU goes, user space against the kernel, the satellite
# beside Knot on the same zone (issue 11, goal: CPU per query ≤ 0.7× the best peer's).
#   bench/cpu-split.sh [DOMAINS] [ROUNDS]        (default 100000, 3)
# One SQLite store of DOMAINS synthetic domains (seed 1), one orrery-generator pass writing the
# zone file (Knot) and the state file (the satellite, `--snapshot`, DNS only, 2 UDP workers,
# deploy/satellite.example.toml's chains); Knot as in bench/compare-peers.sh (2 UDP workers, no
# journal). Each round starts each server in turn and runs saturated dnsperf (-c 4 -T 1 -q 100
# -t 2 -l BENCH_SECONDS) with referrals, then NXDOMAINs; prints the server's user and system
# CPU per answer (utime/stime from /proc, all its threads) and the answers per second.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N="${1:-100000}"
ROUNDS="${2:-3}"
SECS="${BENCH_SECONDS:-5}"
build orrery-store orrery-generator orrery-satellite
in_loopback_namespace "$0" "$@"
bench_start
peers="python3 $PWD/bench/peers.py"
machine
quiet "$bin/orrery-admin" --db "sqlite:$work/store.db" load-synthetic --zone test --domains "$N" --seed 1
quiet "$bin/orrery-generator" --db "sqlite:$work/store.db" --out "$work/zones" --satellite-snapshot "$work/sat.snap"
sqlite3 "$work/store.db" "SELECT name FROM domain d WHERE EXISTS (SELECT 1 FROM domain_ns n WHERE n.domain_id = d.id)
    AND NOT EXISTS (SELECT 1 FROM domain_status s WHERE s.domain_id = d.id AND s.status IN ('clientHold', 'serverHold'))
    ORDER BY random() LIMIT 100000" | awk '{ print $1 ". A" }' >"$work/q.ref"
awk -v s=$$ '{ print "nx" NR "-" s ".test. A" }' "$work/q.ref" >"$work/q.nx"
probe=$(head -1 "$work/q.ref" | cut -d' ' -f1)
knot_port=5302 sat_port=5303
mkdir -p "$work/knot"
peer_configs
hz=$(getconf CLK_TCK)
for round in $(seq 1 "$ROUNDS"); do
    for server in knot satellite; do
        if [ "$server" = knot ]; then
            port=$knot_port; knotd -c "$work/knot/knot.conf" >"$work/$server.log" 2>&1 &
        else
            port=$sat_port; "$bin/orrery-satellite" --snapshot "$work/sat.snap" --config "$work/sat.toml" >"$work/$server.log" 2>&1 &
        fi
        pid=$!; pids+=("$pid")
        $peers wait-answer "$port" "$probe" 300 >/dev/null || { tail "$work/$server.log"; exit 1; }
        sleep 3
        for mix in ref nx; do
            read -r u0 s0 < <($peers cpu-split "$pid")
            dnsperf -s 127.0.0.1 -p "$port" -d "$work/q.$mix" -c 4 -T 1 -q 100 -t 2 -l "$SECS" >"$work/perf" 2>&1
            read -r u1 s1 < <($peers cpu-split "$pid")
            read -r qps done lost < <($peers dnsperf "$work/perf")
            awk -v s="$server" -v r="$round" -v m="$mix" -v u=$((u1 - u0)) -v k=$((s1 - s0)) -v n="$done" -v q="$qps" -v hz="$hz" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
                'BEGIN { printf "round %s %-9s %s: %6.0f q/s  user %.2f  system %.2f  total %.2f µs/answer (load %s)\n", r, s, m, q, u * 1e6 / hz / n, k * 1e6 / hz / n, (u + k) * 1e6 / hz / n, l }'
        done
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done
machine
