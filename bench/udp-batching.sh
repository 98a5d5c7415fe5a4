#!/usr/bin/env bash
# Benchmark: the satellite's UDP edge with and without batching, in one run on one machine.
#   bench/udp-batching.sh [DOMAINS] [ROUNDS]        (defaults 100000, 3)
# A synthetic TLD of DOMAINS domains (SQLite store, seed 1) is written as a satellite snapshot;
# the satellite serves it DNS-only with 2 UDP workers in two layouts, alternated ROUNDS times:
#   single   udp_batch = 1, udp_reuseport = false: one socket per address shared by the
#            workers, one datagram per system call (the layout before batching)
#   batched  the defaults: one SO_REUSEPORT socket per worker, recvmmsg/sendmmsg up to 32
# Each round measures, per layout: dnsperf saturated (-c 4 -T 1 -q 100 -l SECS) q/s, the
# satellite's CPU µs per answer (utime+stime from /proc) and its system calls per answer (all,
# and receives+sends; counted by perf stat on tracepoints), then the same at a fixed RATE q/s.
# Runs in a network namespace of its own (loopback only); every wait is bounded.
#   SECS=10 (dnsperf run length), RATE=20000 (the moderate-load run)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N="${1:-100000}"
ROUNDS="${2:-3}"
SECS="${SECS:-10}"
RATE="${RATE:-20000}"
build orrery-store orrery-generator orrery-satellite
in_loopback_namespace "$0" "$@"
bench_start
pid=""
stop_satellite() { [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; }
on_exit=stop_satellite
hz=$(getconf CLK_TCK)
port=5399

machine
quiet "$bin/orrery-admin" --db "sqlite:$work/store.db" load-synthetic --zone test --domains "$N" --seed 1
quiet "$bin/orrery-generator" --db "sqlite:$work/store.db" --satellite-snapshot "$work/sat.snap" --no-zones
# Query mix: three referrals (delegated names, some on hold) to one NXDOMAIN, shuffled.
sqlite3 "$work/store.db" "SELECT name FROM domain ORDER BY random() LIMIT 30000" |
    awk '{ print $1 ". A"; if (NR % 3 == 0) print "nx" NR "." "test. A" }' >"$work/queries"

config() { # LAYOUT
    local extra=""
    [ "$1" = single ] && extra='\nudp_batch = 1\nudp_reuseport = false'
    sed -e "s/127.0.0.1:5353/127.0.0.1:$port/g" \
        -e "s/^workers = .*/workers = 2$extra/" deploy/satellite.example.toml >"$work/$1.toml"
}
config single
config batched

answers() { # succeeds once the satellite answers
    dig +time=1 +tries=1 @127.0.0.1 -p "$port" test SOA 2>/dev/null | grep -q 'status: NOERROR'
}
start() { # LAYOUT
    "$bin/orrery-satellite" --snapshot "$work/sat.snap" --config "$work/$1.toml" >"$work/$1.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do answers && return 0; sleep 0.1; done
    echo "satellite ($1) did not answer within 10 s"; cat "$work/$1.log"; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
# perf_run ARGS...: dnsperf against the satellite, its system calls counted by perf (all of
# them, and the receives and sends); prints "QPS CPU_US_PER_ANSWER LOST CALLS NET_CALLS" (the
# calls per answer).
net_events=syscalls:sys_enter_recvmmsg,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_recvmsg,syscalls:sys_enter_sendmsg
perf_run() {
    local before after counter
    perf stat -x, -e "raw_syscalls:sys_enter,$net_events" -p "$pid" -o "$work/calls" &
    counter=$!
    sleep 0.2
    before=$(cpu_ticks)
    dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries" -c 4 -T 1 -q 100 -l "$SECS" "$@" >"$work/perf" 2>&1
    after=$(cpu_ticks)
    kill -INT "$counter"; wait "$counter" 2>/dev/null || true
    awk -F, '$3 == "raw_syscalls:sys_enter" { print "all", $1 } $3 ~ /^syscalls:/ { print "net", $1 }' \
        "$work/calls" >"$work/calls.sum"
    awk -v t=$((after - before)) -v hz="$hz" '
        FILENAME ~ /calls.sum$/ { if ($1 == "all") all += $2; else net += $2; next }
        /Queries completed:/ { done = $3 } /Queries lost:/ { lost = $3 }
        /Queries per second:/ { qps = $4 }
        END { d = done ? done : 1
              printf "%.0f %.2f %d %.3f %.3f\n", qps, t * 1e6 / hz / d, lost, all / d, net / d }' \
        "$work/calls.sum" "$work/perf"
}

printf '%-8s %5s %8s %7s %6s %9s %9s %8s %8s %8s\n' layout round "q/s" "µs/ans" lost \
    "calls/ans" "net/ans" "µs@rate" "lost@rt" "net@rate"
for round in $(seq "$ROUNDS"); do
    for layout in single batched; do
        start "$layout"
        read -r qps us lost calls net < <(perf_run)
        read -r _ us_rate lost_rate _ net_rate < <(perf_run -Q "$RATE")
        stop
        printf '%-8s %5d %8s %7s %6s %9s %9s %8s %8s %8s\n' "$layout" "$round" "$qps" "$us" "$lost" \
            "$calls" "$net" "$us_rate" "$lost_rate" "$net_rate" | tee -a "$work/results"
    done
done
echo "medians (and range) over $ROUNDS rounds:"
for layout in single batched; do
    for col in 3 4 6 7 8 10; do
        awk -v l="$layout" -v c="$col" '$1 == l { print $c }' "$work/results" | sort -g |
            awk -v l="$layout" -v c="$col" '{ v[NR] = $1 } END {
                name = (c == 3 ? "q/s" : c == 4 ? "µs/answer" : c == 6 ? "calls/answer" : c == 7 ? "net calls/ans" : c == 8 ? "µs/answer@rate" : "net calls@rate")
                printf "  %-8s %-15s median %s (%s–%s)\n", l, name, v[int((NR + 1) / 2)], v[1], v[NR] }'
    done
done
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
