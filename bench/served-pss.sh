#!/usr/bin/env bash
# Benchmark (issue 11): a satellite's whole memory from one state file, DNS only against DNS with
# Whois and RDAP, in turns (dns full dns full ...), so that both see the same machine.
#   STATE=FILE NAME=DOMAIN bench/served-pss.sh BINARY [RUNS]      (default 3 runs)
# FILE is a state file (`orrery-generator --satellite-snapshot`), DOMAIN a delegated domain in
# it, N its domain count for the per-domain figure (default 1000000). Each start is
# `orrery-satellite --snapshot FILE --config C`, C being deploy/satellite.example.toml with 2 UDP
# workers ("dns"), or the same with its commented-out [whois], [rdap] and [rds] tables enabled
# ("full", the tables the satellite's own config test enables). Per start: start -> first DNS
# referral for DOMAIN (bench/peers.py wait-answer, polled every 5 ms), then, for "full", a Whois
# answer and an RDAP 200 for DOMAIN (the directory is built beside the DNS tables); PSS
# (smaps_rollup) 5 s after the first answer, / N. Run it in a loopback-only network namespace:
#   unshare --net -- bash -c 'ip link set lo up && STATE=... NAME=... bench/served-pss.sh BIN'
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "$1")"; runs="${2:-3}"
state="${STATE:?STATE=a state file}"; name="${NAME:?NAME=a delegated domain of the state file}"
N="${N:-1000000}"
work="$(mktemp -d)"
pid=""
cleanup() {
    [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT
sed -e "s/^workers = .*/workers = 2/" deploy/satellite.example.toml >"$work/dns.toml"
# Uncomment the [whois], [rdap] and [rds…] tables (and the lines of each), as
# satellite/src/config.rs `with_whois_and_rdap` does for its test.
awk '/^# \[(whois|rdap)\]/ { on = 1 } !/^#/ { on = 0 }
     { if (on && $0 ~ /^# [^ ]/) print substr($0, 3); else print }' "$work/dns.toml" >"$work/full.toml"
grep -q '^\[whois\]' "$work/full.toml" && grep -q '^\[rdap\]' "$work/full.toml" \
    || { echo "the example's [whois]/[rdap] tables were not found"; exit 1; }
whois_port=$(sed -n 's/^tcp = \["127.0.0.1:\([0-9]*\)"\]/\1/p' "$work/full.toml" | tail -1)
rdap_port=$(sed -n 's/^http = \["127.0.0.1:\([0-9]*\)"\]/\1/p' "$work/full.toml" | head -1)
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %T') UTC; state file $(du -m "$state" | cut -f1) MiB; $bin"
cat "$state" >/dev/null # in the page cache for every run alike
for run in $(seq 1 "$runs"); do
    for which in dns full; do
        t0=$(date +%s%N)
        NO_COLOR=1 "$bin" --snapshot "$state" --config "$work/$which.toml" >"$work/log" 2>&1 &
        pid=$!
        t1=$(python3 bench/peers.py wait-answer 5353 "$name" 120) || { tail "$work/log"; exit 1; }
        extra=""
        if [ "$which" = full ]; then
            lines=0
            for _ in $(seq 1 200); do
                lines=$(timeout 5 whois -h 127.0.0.1 -p "$whois_port" "$name" 2>/dev/null | grep -ci "domain name" || true)
                [ "$lines" -gt 0 ] && break
                sleep 0.1
            done
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$rdap_port/domain/$name" || true)
            [ "$lines" -gt 0 ] && [ "$code" = 200 ] || { echo "no Whois ($lines) or RDAP ($code) answer"; tail "$work/log"; exit 1; }
            extra="; Whois answered, RDAP $code"
        fi
        sleep 5
        pss=$(python3 bench/peers.py pss "$pid")
        kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
        ms=$(( (t1 - t0) / 1000000 ))
        echo "$which run $run: start -> first DNS answer $ms ms$extra; PSS $(( pss / 1048576 )) MiB = $(( pss / N )) B/domain; load $(cut -d' ' -f1 /proc/loadavg)"
        echo "$which $(( pss / N ))" >>"$work/pss"
    done
done
for which in dns full; do
    awk -v w="$which" '$1 == w { print $2 }' "$work/pss" | sort -n | awk -v w="$which" '{ a[NR] = $1 } END {
        printf "%s: PSS per domain over %d runs: median %d B, spread %d-%d B\n", w, NR, a[int((NR + 1) / 2)], a[1], a[NR] }'
done
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
