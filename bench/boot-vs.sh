#!/usr/bin/env bash
# Benchmark: start -> first answer of two satellite binaries from one state file, in turns
# (A B A B ...), so that both see the same machine; median and spread of each, and the PSS
# per delegation 2 s after the first answer.
#   STATE=FILE NAME=DOMAIN bench/boot-vs.sh NEW_BINARY OLD_BINARY [RUNS]     (default 3 runs)
# FILE is a state file (`orrery-generator --satellite-snapshot`, as bench/satellite-restart.sh
# makes one), DOMAIN a delegated domain in it, N its delegation count for the PSS figure
# (default 1000000). Each start is `orrery-satellite --snapshot FILE --config C` (DNS only, 2
# UDP workers), the read and build path of a restart from the satellite's own state file;
# timed with `bench/peers.py wait-answer` (a referral for DOMAIN, polled every 5 ms). The
# satellites' logs keep the read and build times (shown). Run it in a loopback-only network
# namespace:  unshare --net -- bash -c 'ip link set lo up && STATE=... NAME=... bench/boot-vs.sh A B'
set -euo pipefail
cd "$(dirname "$0")/.."
new="$(realpath "$1")"; old="$(realpath "$2")"; runs="${3:-3}"
state="${STATE:?STATE=a state file}"; name="${NAME:?NAME=a delegated domain of the state file}"
N="${N:-1000000}"
work="$(mktemp -d)"
pid=""
cleanup() {
    [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT
port=5353
sed -e "s/127.0.0.1:5353/127.0.0.1:$port/g" -e "s/^workers = .*/workers = 2/" \
    deploy/satellite.example.toml >"$work/sat.toml"
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %T') UTC; state file $(du -m "$state" | cut -f1) MiB"
cat "$state" >/dev/null # in the page cache for every run alike
for run in $(seq 1 "$runs"); do
    for which in new old; do
        bin=$new; [ "$which" = new ] || bin=$old
        t0=$(date +%s%N)
        NO_COLOR=1 "$bin" --snapshot "$state" --config "$work/sat.toml" >"$work/log" 2>&1 &
        pid=$!
        t1=$(python3 bench/peers.py wait-answer "$port" "$name" 120) || { tail "$work/log"; exit 1; }
        sleep 2
        pss=$(python3 bench/peers.py pss "$pid")
        kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
        ms=$(( (t1 - t0) / 1000000 ))
        read_ms=$(grep -oE 'state file read.*' "$work/log" | grep -oE 'ms=[0-9]+' | head -1 | cut -d= -f2)
        build_ms=$(grep -oE 'served state built.*' "$work/log" | grep -oE ' ms=[0-9]+' | head -1 | cut -d= -f2)
        echo "$which run $run: start -> first answer $ms ms (read ${read_ms:-?} ms, build ${build_ms:-?} ms); PSS $(( pss / N )) B/delegation; load $(cut -d' ' -f1 /proc/loadavg)"
        echo "$which $ms" >>"$work/times"
    done
done
for which in new old; do
    awk -v w="$which" '$1 == w { print $2 }' "$work/times" | sort -n | awk -v w="$which" '{ a[NR] = $1 } END {
        printf "%s: start -> first answer over %d runs: median %.2f s, spread %.2f-%.2f s\n", w, NR, a[int((NR + 1) / 2)] / 1000, a[1] / 1000, a[NR] / 1000 }'
done
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
