#!/usr/bin/env bash
# Benchmark: user-space instructions per answer (valgrind callgrind: counts, not times, so the
# load of a shared machine does not move them), the satellite beside Knot (issue 11).
#   bench/callgrind-query.sh [DOMAINS] [QUERIES]      (default 100000, 10000)
# The same store, files and configurations as bench/cpu-split.sh; each server runs under
# `valgrind --tool=callgrind --instr-atstart=no`, instrumentation is switched on once it answers,
# then dnsperf sends QUERIES referrals (-n 1 over a file of QUERIES names, -Q 500: valgrind
# runs the server's threads one at a time), then QUERIES NXDOMAINs; prints the instructions
# (Ir) of the server per answer, and keeps the callgrind files in $CALLGRIND_OUT (default
# /tmp/callgrind-query) for callgrind_annotate.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N="${1:-100000}"
Q="${2:-10000}"
out="${CALLGRIND_OUT:-/tmp/callgrind-query}"
build orrery-store orrery-generator orrery-satellite
in_loopback_namespace "$0" "$@"
bench_start
machine
mkdir -p "$out"
quiet "$bin/orrery-admin" --db "sqlite:$work/store.db" load-synthetic --zone test --domains "$N" --seed 1
quiet "$bin/orrery-generator" --db "sqlite:$work/store.db" --out "$work/zones" --satellite-snapshot "$work/sat.snap"
sqlite3 "$work/store.db" "SELECT name FROM domain d WHERE EXISTS (SELECT 1 FROM domain_ns n WHERE n.domain_id = d.id)
    AND NOT EXISTS (SELECT 1 FROM domain_status s WHERE s.domain_id = d.id AND s.status IN ('clientHold', 'serverHold'))
    ORDER BY random() LIMIT $Q" | awk '{ print $1 ". A" }' >"$work/q.ref"
awk '{ print "nx" NR ".test. A" }' "$work/q.ref" >"$work/q.nx"
probe=$(head -1 "$work/q.ref" | cut -d' ' -f1)
knot_port=5302 sat_port=5303
mkdir -p "$work/knot"
peer_configs
for server in satellite knot; do
    if [ "$server" = knot ]; then
        port=$knot_port; cmd=(knotd -c "$work/knot/knot.conf")
    else
        port=$sat_port; cmd=("$bin/orrery-satellite" --snapshot "$work/sat.snap" --config "$work/sat.toml")
    fi
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/$server.%p" "${cmd[@]}" >"$work/$server.log" 2>&1 &
    pid=$!; pids+=("$pid")
    python3 bench/peers.py wait-answer "$port" "$probe" 900 >/dev/null || { tail "$work/$server.log"; exit 1; }
    sleep 5
    for mix in ref nx; do
        callgrind_control -z "$pid" >/dev/null
        callgrind_control -i on "$pid" >/dev/null
        dnsperf -s 127.0.0.1 -p "$port" -d "$work/q.$mix" -n 1 -c 1 -T 1 -q 10 -t 5 -Q 500 >"$work/perf" 2>&1
        callgrind_control -i off "$pid" >/dev/null
        callgrind_control -d "$mix" "$pid" >/dev/null
        read -r _ done lost < <(python3 bench/peers.py dnsperf "$work/perf")
        sleep 1
        f=$(ls -t "$out/$server.$pid"* | head -1)
        # "summary:" is 0 when instrumentation was switched on after the start; "totals:" counts.
        ir=$(awk '/^totals:/ { print $2; exit }' "$f")
        awk -v s="$server" -v m="$mix" -v ir="$ir" -v n="$done" -v l="$lost" -v f="$f" \
            'BEGIN { printf "%s %s: %d answered (%d lost), %.0f instructions per answer (%s)\n", s, m, n, l, ir / n, f }'
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
machine
