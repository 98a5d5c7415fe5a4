#!/usr/bin/env bash
# Benchmark (issue 14): zone transfer out of a satellite, against NSD and Knot, in one run.
#   bench/xfr.sh [axfr] [follow]        (default: both parts)
# Part `axfr` (BENCH_DOMAINS synthetic domains, seed 1, in a fresh PostgreSQL database; the
# generator writes the zone file NSD and Knot load and the snapshot the satellite loads, from one
# store snapshot):
#   - AXFR out: NSD 4, Knot 3 and the satellite (the configurations of bench/compare-peers.sh,
#     lib.sh nsd_config/peer_configs with `xfr`: unsigned transfers to 127.0.0.1) each started
#     in turn, BENCH_ROUNDS rounds alternated; per transfer the wall time of one AXFR over TCP
#     (bench/peers.py axfr: reads the messages and counts the records from their headers, so
#     the client costs little), the records received (the same on every server, checked), the
#     sending server's CPU over the transfer (utime+stime of its process tree from /proc) and
#     its RSS/PSS before and at the peak during the transfer (sampled every 10/100 ms).
#   - query latency during transfers: the satellite from the same snapshot, dnsperf at
#     BENCH_RATE q/s (the mix of bench/compare-peers.sh, BENCH_SECONDS each) without and with
#     AXFRs of the whole zone one after another from one client, alternated BENCH_ROUNDS times;
#     p50/p99/max and the transfers completed during the run.
# Part `follow` (BENCH_FOLLOW_DOMAINS domains in another fresh PostgreSQL database): a master,
# the store, and a satellite fed by the master with an `xfr` service (TSIG hmac-sha256, NOTIFY
# to the three secondaries, ixfr_window 10000, no per-client transfer rate limit: the three
# secondaries share 127.0.0.1); Knot, NSD and BIND as secondaries (IXFR, TSIG). After their
# first transfer, BENCH_FOLLOW_RATE commits a second for BENCH_FOLLOW_SECONDS, each putting one
# more delegated domain on serverHold (one autocommit UPDATE each, from BENCH_FOLLOW_SESSIONS
# psql sessions (2), paced on the server's clock; the commit's time and the journal's head read
# right after it); every
# server's SOA serial is polled every 5 ms over UDP (peers.py soa-watch); per server, p50/p99/max
# of commit → first SOA at that serial or later.
# Environment (all optional): BENCH_DOMAINS=1000000 BENCH_ROUNDS=3 BENCH_RATE=20000
#   BENCH_SECONDS=15 BENCH_FOLLOW_DOMAINS=100000 BENCH_FOLLOW_RATE=100 BENCH_FOLLOW_SECONDS=30
#   BENCH_BIN=DIR (default: the release build)
#   BENCH_DB=NAME  part axfr reads this already loaded PostgreSQL database (kept) instead of
#                  loading a fresh one (part follow always loads its own)
# Every wait is bounded; servers are stopped and the databases dropped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N="${BENCH_DOMAINS:-1000000}"
ROUNDS="${BENCH_ROUNDS:-3}"
RATE="${BENCH_RATE:-20000}"
SECS="${BENCH_SECONDS:-15}"
FN="${BENCH_FOLLOW_DOMAINS:-100000}"
FRATE="${BENCH_FOLLOW_RATE:-100}"
FSECS="${BENCH_FOLLOW_SECONDS:-30}"
parts="${*:-axfr follow}"
build orrery-store orrery-generator orrery-satellite orrery-master
in_loopback_namespace "$0" "$@"
bench_start
peers="python3 $PWD/bench/peers.py"
hz=$(getconf CLK_TCK)
now_ns() { date +%s%N; }
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }
record() { echo "$1 $2 $3 $4" >>"$work/results"; }   # SERVER RUN METRIC VALUE
# summary FILTER: "server metric median (min–max) [n]" for each server and metric of the results
summary() {
    python3 - "$work/results" "$1" <<'PY'
import statistics, sys
data = {}
for line in open(sys.argv[1]):
    s, _, m, v = line.split()
    if s.startswith(sys.argv[2]):
        data.setdefault((s, m), []).append(float(v))
for (s, m), v in data.items():
    print(f"  {s:<10} {m:<24} median {statistics.median(v):>12,.1f}  ({min(v):,.1f}–{max(v):,.1f}, {len(v)} runs)")
PY
}

echo "$(nproc) cores, $(uptime | sed 's/^ *//'); $(date -u '+%F %T') UTC"
echo "busiest processes now: $(busy)"
echo "binaries: $bin; parts: $parts"
{ nsd -v 2>&1 | head -1; knotd -V; named -v; dnsperf -h 2>&1 | grep -m1 Version; } || true

# ---- Part axfr: AXFR out of NSD, Knot and the satellite; queries during transfers ----------
axfr_part() {
    local t server pid port c0 c1 before_rss before_pss out records secs
    if fresh_db "orrery_xfr_bench_$$"; then
        t=$(now_ns)
        quiet "$bin/orrery-admin" --db "$url" load-synthetic --zone test --domains "$N" --seed 1
        echo "store: loaded $N domains in $(ms_since "$t") ms"
    else
        echo "store: database $db as loaded (BENCH_DB)"
    fi
    t=$(now_ns)
    quiet env NO_COLOR=1 "$bin/orrery-generator" --db "$url" --out "$work/zones" --satellite-snapshot "$work/sat.snap"
    echo "generator: zone file $(du -m "$work/zones/test.zone" | cut -f1) MiB and snapshot $(du -m "$work/sat.snap" | cut -f1) MiB in $(ms_since "$t") ms"
    # The query mix of bench/compare-peers.sh: three referrals to one NXDOMAIN.
    sql "SELECT name FROM domain d WHERE EXISTS (SELECT 1 FROM domain_ns n WHERE n.domain_id = d.id)
         AND NOT EXISTS (SELECT 1 FROM domain_status s WHERE s.domain_id = d.id AND s.status IN ('clientHold', 'serverHold'))
         ORDER BY random() LIMIT 100000" | awk '{ print $1 ". A"; if (NR % 3 == 0) print "nx" NR ".test. A" }' >"$work/q.mix"
    probe=$(head -1 "$work/q.mix" | cut -d' ' -f1)
    # The store is not needed any more: its database server's memory goes back.
    if [ -n "$drop_db" ]; then
        psql -q -h "$PGHOST" -U postgres -d postgres -c "DROP DATABASE $drop_db WITH (FORCE)"; drop_db=""
    fi
    nsd_port=5311 knot_port=5312 sat_port=5313
    nsd_config xfr
    peer_configs xfr
    for run in $(seq "$ROUNDS"); do
        for server in nsd knot satellite; do
            case $server in
                nsd) port=$nsd_port; nsd -d -c "$work/nsd/nsd.conf" >"$work/nsd.log" 2>&1 & ;;
                knot) port=$knot_port; knotd -c "$work/knot/knot.conf" >"$work/knot.log" 2>&1 & ;;
                satellite) port=$sat_port
                    NO_COLOR=1 "$bin/orrery-satellite" --snapshot "$work/sat.snap" --config "$work/sat.toml" >"$work/sat.log" 2>&1 & ;;
            esac
            pid=$!; pids+=("$pid")
            $peers wait-answer "$port" "$probe" 600 >/dev/null || { echo "$server did not answer"; tail "$work/$server.log"; exit 1; }
            sleep 3 # settled after loading
            before_pss=$($peers pss "$pid")
            before_rss=$(awk '$1 == "VmRSS:" { print $2 * 1024 }' "/proc/$pid/status")
            rm -f "$work/stop"
            $peers sample-mem "$pid" "$work/mem" "$work/stop" &
            local sampler=$!
            c0=$($peers cpu "$pid")
            out=$($peers axfr "$port" test 600) || { echo "run $run: $server: AXFR failed: $out"; exit 1; }
            c1=$($peers cpu "$pid")
            touch "$work/stop"; wait "$sampler"
            read -r records _ _ secs <<<"$out"
            local peak_rss peak_pss
            read -r peak_rss peak_pss _ <"$work/mem"
            record "$server" "$run" axfr_ms "$(awk -v s="$secs" 'BEGIN { printf "%.0f", s * 1000 }')"
            record "$server" "$run" records "$records"
            record "$server" "$run" cpu_ms "$(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%.0f", t * 1000 / hz }')"
            # Memory of one process (sample-mem follows PID alone): not NSD's, which serves
            # from forked children.
            if [ "$server" != nsd ]; then
                record "$server" "$run" rss_before_mib $((before_rss >> 20))
                record "$server" "$run" rss_peak_mib $((peak_rss >> 20))
                record "$server" "$run" pss_before_mib $((before_pss >> 20))
                record "$server" "$run" pss_peak_mib $((peak_pss >> 20))
            fi
            kill "$pid"; wait "$pid" 2>/dev/null || true
            echo "run $run: $server AXFR $out (records bytes messages s); load average $(cut -d' ' -f1-3 /proc/loadavg)"
        done
    done
    # Query latency on the satellite without and with transfers, alternated.
    port=$sat_port
    NO_COLOR=1 "$bin/orrery-satellite" --snapshot "$work/sat.snap" --config "$work/sat.toml" >"$work/sat.log" 2>&1 &
    pid=$!; pids+=("$pid")
    $peers wait-answer "$port" "$probe" 600 >/dev/null || { echo "satellite did not answer"; exit 1; }
    sleep 3
    local p50 p99 max lost loop transfers failed
    for run in $(seq "$ROUNDS"); do
        for mode in quiet during_axfr; do
            rm -f "$work/stop"
            if [ "$mode" = during_axfr ]; then
                $peers axfr-loop "$port" test "$work/stop" "$work/loop" &
                loop=$!
                sleep 1
            fi
            dnsperf -s 127.0.0.1 -p "$port" -d "$work/q.mix" -c 4 -T 1 -q 100 -t 2 -l "$SECS" -Q "$RATE" -v >"$work/lat" 2>&1
            read -r p50 p99 max _ < <($peers latency "$work/lat")
            read -r _ _ lost < <($peers dnsperf "$work/lat")
            record "q_$mode" "$run" p50_us "$p50"
            record "q_$mode" "$run" p99_us "$p99"
            record "q_$mode" "$run" max_us "$max"
            record "q_$mode" "$run" lost "$lost"
            if [ "$mode" = during_axfr ]; then
                touch "$work/stop"; wait "$loop"
                read -r transfers failed <"$work/loop"
                record "q_$mode" "$run" transfers "$transfers"
                [ "$failed" = 0 ] || record "q_$mode" "$run" failed_transfers "$failed"
            fi
            echo "run $run: $mode p50 $p50 µs p99 $p99 µs max $max µs lost $lost; load average $(cut -d' ' -f1-3 /proc/loadavg)"
        done
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo
    echo "## AXFR of $N domains, $ROUNDS rounds (median (min–max)); $(date -u '+%F %T') UTC"
    summary nsd; summary knot; summary satellite
    python3 - "$work/results" <<'PY'
import statistics, sys
data = {}
for line in open(sys.argv[1]):
    s, _, m, v = line.split()
    data.setdefault((s, m), []).append(float(v))
med = lambda s, m: statistics.median(data[(s, m)])
counts = {s: set(data[(s, "records")]) for s in ("nsd", "knot", "satellite")}
print(f"  records per server: {counts}")
for m in ("axfr_ms", "cpu_ms"):
    best = min(med(p, m) for p in ("nsd", "knot"))
    ratio = f"{med('satellite', m) / best:.2f}" if best else "- (a peer measured 0)"
    print(f"  satellite ÷ best peer, {m}: {ratio}")
print(f"  satellite PSS peak ÷ before: {med('satellite', 'pss_peak_mib') / med('satellite', 'pss_before_mib'):.3f}; "
      f"RSS peak ÷ before: {med('satellite', 'rss_peak_mib') / med('satellite', 'rss_before_mib'):.3f}")
PY
    echo "## satellite query latency at $RATE q/s without and with AXFRs in a loop"
    summary q_
}

# ---- Part follow: commit → serial on Knot, NSD and BIND secondaries ------------------------
follow_part() {
    local t secret="c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==" link_port sport kport nport bport
    local BENCH_DB="" # always a fresh one: the bench writes to it
    db=""; fresh_db "orrery_xfr_follow_$$" || true
    t=$(now_ns)
    quiet "$bin/orrery-admin" --db "$url" load-synthetic --zone test --domains "$FN" --seed 1
    echo "store: loaded $FN domains in $(ms_since "$t") ms"
    link_port=7453 sport=5321 kport=5322 nport=5323 bport=5324
    test_certs "$work/fcerts" m1 sat1
    cat >"$work/fmaster.toml" <<TOML
[master]
store = "$url"
listen = ["127.0.0.1:$link_port"]
[tls]
ca = "fcerts/ca.pem"
cert = "fcerts/m1.master.pem"
key = "fcerts/m1.master.key"
[satellite_defaults]
workers = 2
selector = "std"
[selectors.std]
chains = [{ name = "main", leaves = ["lookup"] }]
[selectors.std.leaves.lookup]
kind = "lookup"
[satellites.sat1]
dns = { udp = ["127.0.0.1:$sport"], tcp = ["127.0.0.1:$sport"] }
[satellites.sat1.xfr]
acl = [{ prefixes = ["127.0.0.1/32"], key = "k1" }]
notify = [
    { address = "127.0.0.1:$kport", key = "k1" },
    { address = "127.0.0.1:$nport", key = "k1" },
    { address = "127.0.0.1:$bport", key = "k1" },
]
ixfr_window = 10000
transfers_per_minute = 1000000
max_transfers_per_address = 16
[[satellites.sat1.xfr.keys]]
name = "k1"
algorithm = "hmac-sha256"
secret = "$secret"
TOML
    NO_COLOR=1 "$bin/orrery-master" run --config "$work/fmaster.toml" >"$work/fmaster.log" 2>&1 &
    local mpid=$!; pids+=("$mpid")
    wait_log "$work/fmaster.log" "link listening" 300 "$mpid"
    wait_log "$work/fmaster.log" "snapshot for booting satellites built" 300 "$mpid"
    NO_COLOR=1 "$bin/orrery-satellite" --master "127.0.0.1:$link_port" --tls-dir "$work/fcerts" \
        --state "$work/sat1.state" >"$work/fsat.log" 2>&1 &
    local spid=$!; pids+=("$spid")
    wait_log "$work/fsat.log" "snapshot applied and saved" 300 "$spid"
    # The secondaries (the configurations of satellite/tests/integration/xfr.rs, zone `test`).
    mkdir -p "$work/sk" "$work/sn" "$work/sb"
    cat >"$work/sk/knot.conf" <<KNOT
server:
    listen: 127.0.0.1@$kport
    rundir: $work/sk
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: $work/sk/secondary.log
    any: info
database:
    storage: $work/sk
key:
  - id: k1
    algorithm: hmac-sha256
    secret: $secret
remote:
  - id: sat
    address: 127.0.0.1@$sport
    key: k1
acl:
  - id: from_sat
    address: 127.0.0.1
    key: k1
    action: notify
template:
  - id: default
    storage: $work/sk
    zonefile-sync: -1
    zonefile-load: none
    journal-content: all
zone:
  - domain: test
    master: sat
    acl: [from_sat]
KNOT
    cat >"$work/sn/nsd.conf" <<NSD
server:
    ip-address: 127.0.0.1@$nport
    username: ""
    chroot: ""
    zonesdir: "$work/sn"
    database: ""
    pidfile: "$work/sn/nsd.pid"
    xfrdfile: "$work/sn/xfrd.state"
    xfrdir: "$work/sn"
    zonelistfile: "$work/sn/zone.list"
    logfile: "$work/sn/secondary.log"
    verbosity: 2
    server-count: 1
    rrl-ratelimit: 0
remote-control:
    control-enable: no
key:
    name: "k1"
    algorithm: hmac-sha256
    secret: "$secret"
zone:
    name: "test"
    zonefile: "test.zone"
    allow-notify: 127.0.0.1 k1
    request-xfr: 127.0.0.1@$sport k1
NSD
    cat >"$work/sb/named.conf" <<BIND
options {
    directory "$work/sb";
    listen-on port $bport { 127.0.0.1; };
    listen-on-v6 { none; };
    pid-file "$work/sb/named.pid";
    session-keyfile "$work/sb/session.key";
    managed-keys-directory "$work/sb";
    recursion no;
    notify no;
    dnssec-validation no;
};
controls { };
key "k1" { algorithm hmac-sha256; secret "$secret"; };
logging {
    channel file { file "$work/sb/secondary.log"; severity info; print-time yes; };
    category default { file; };
    category xfer-in { file; };
    category notify { file; };
};
zone "test" {
    type secondary;
    primaries { 127.0.0.1 port $sport key k1; };
    file "$work/sb/test.db";
};
BIND
    knotd -c "$work/sk/knot.conf" >"$work/sk/stderr" 2>&1 &
    pids+=("$!")
    nsd -d -c "$work/sn/nsd.conf" >"$work/sn/stderr" 2>&1 &
    pids+=("$!")
    named -f -n 1 -c "$work/sb/named.conf" >"$work/sb/stderr" 2>&1 &
    pids+=("$!")
    local head serial name p
    soa() { dig +short +time=1 +tries=1 @127.0.0.1 -p "$1" test SOA | awk '{ print $3 }'; }
    head=$(soa "$sport")
    [ -n "$head" ] || { echo "the satellite answers no SOA"; tail "$work/fsat.log"; exit 1; }
    # Every secondary at the satellite's serial (its first transfer: AXFR).
    for p in "knot:$kport" "nsd:$nport" "bind:$bport"; do
        name=${p%%:*}
        local end=$((SECONDS + 300))
        until serial=$(soa "${p##*:}") && [ "$serial" = "$head" ]; do
            [ "$SECONDS" -lt "$end" ] || { echo "$name did not reach serial $head (has '$serial')"; tail "$work"/s?/secondary.log; exit 1; }
            sleep 0.2
        done
        echo "$name at serial $head"
    done
    # The domains to hold: delegated, only 'ok', one per commit.
    local n=$((FRATE * FSECS))
    sql "SELECT d.id FROM domain d WHERE EXISTS (SELECT 1 FROM domain_ns x WHERE x.domain_id = d.id)
         AND (SELECT array_agg(status) FROM domain_status s WHERE s.domain_id = d.id) = ARRAY['ok']
         ORDER BY d.id LIMIT $n" >"$work/ids"
    [ "$(wc -l <"$work/ids")" = "$n" ] || { echo "fewer than $n domains to hold"; exit 1; }
    rm -f "$work/stop" "$work/watch"
    $peers soa-watch "$work/watch" "$work/stop" test "satellite:$sport" "knot:$kport" "nsd:$nport" "bind:$bport" &
    local watcher=$!
    sleep 1
    echo "changes: $n commits at $FRATE/s from $(date -u '+%T') UTC; $(uptime | sed 's/^ *//')"
    local c0 m0 s0
    c0=$(date +%s.%N); m0=$($peers cpu "$mpid"); s0=$($peers cpu "$spid")
    # BENCH_FOLLOW_SESSIONS psql sessions (default 2: one session's commit round trip on a
    # loaded PostgreSQL capped it at 43–72/s), autocommit: each UPDATE commits alone; then the
    # time and the journal's head (with two sessions the head may already hold the other's
    # next commit, which can only overstate the latency, by one slot at most); then a sleep to
    # the next commit's slot. Slot k of the whole run is t0 + k / rate, dealt round-robin.
    local sessions="${BENCH_FOLLOW_SESSIONS:-2}" t0 k writers=()
    t0=$(date +%s.%N)
    for k in $(seq 0 $((sessions - 1))); do
        awk -v r="$FRATE" -v t0="$t0" -v s="$sessions" -v k="$k" '
        BEGIN { printf "SELECT pg_sleep(%.6f);\n", k / r }
        (NR - 1) % s == k {
            print "UPDATE domain_status SET status = '\''serverHold'\'' WHERE domain_id = " $1 " AND status = '\''ok'\'';"
            print "SELECT extract(epoch FROM clock_timestamp()), (SELECT max(serial) FROM journal);"
            printf "SELECT pg_sleep(greatest(0, %.6f - extract(epoch FROM clock_timestamp())));\n", t0 + (NR + s - 1) / r
        }' "$work/ids" | psql -qAt -F ' ' -h "$PGHOST" -U postgres -d "$db" | grep -v '^$' >"$work/commits.$k" &
        writers+=($!)
    done
    for k in "${writers[@]}"; do wait "$k" || echo "a psql session failed"; done
    sort -n "$work"/commits.* >"$work/commits"
    local elapsed
    elapsed=$(awk -v a="$c0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    echo "changes: done in $elapsed s; master CPU $(( ($($peers cpu "$mpid") - m0) * 1000 / hz )) ms, satellite CPU $(( ($($peers cpu "$spid") - s0) * 1000 / hz )) ms"
    head=$(tail -1 "$work/commits" | awk '{ print $2 }')
    head=$((head & 0xFFFFFFFF))
    local end=$((SECONDS + 120))
    for p in satellite knot nsd bind; do
        until awk -v p="$p" -v h="$head" '$1 == p && $3 >= h { f = 1 } END { exit !f }' "$work/watch"; do
            [ "$SECONDS" -lt "$end" ] || { echo "$p did not reach the last serial $head within 120 s"; break; }
            sleep 0.2
        done
    done
    sleep 1
    touch "$work/stop"; wait "$watcher"
    echo
    echo "## commit → SOA serial, $FN domains, $(wc -l <"$work/commits") commits at $FRATE/s ($elapsed s), PostgreSQL store; $(date -u '+%F %T') UTC"
    echo "  server     p50_ms p99_ms max_ms followed commits   (serial changes seen)"
    $peers follow "$work/commits" "$work/watch" | while read -r name p50 p99 max followed commits; do
        printf '  %-10s %6s %6s %6s %8s %7s   (%s)\n' "$name" "$p50" "$p99" "$max" "$followed" "$commits" \
            "$(awk -v n="$name" '$1 == n' "$work/watch" | wc -l)"
    done
    echo "  transfers logged: knot IXFR $(grep -c 'IXFR, incoming' "$work/sk/secondary.log" || true), AXFR $(grep -c 'AXFR, incoming' "$work/sk/secondary.log" || true);" \
        "bind $(grep -c 'Transfer completed' "$work/sb/secondary.log" || true) completed" \
        "($(awk '/Transfer completed/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^records/ && $i + 0 < 1000) n++ } END { print n + 0 }' "$work/sb/secondary.log") of under 1,000 records);" \
        "nsd $(grep -c 'received update to serial' "$work/sn/secondary.log" || true) updates"
}

for part in $parts; do
    case $part in
        axfr) axfr_part ;;
        follow) follow_part ;;
        *) echo "unknown part $part (axfr, follow)"; exit 2 ;;
    esac
done
echo
echo "$(uptime | sed 's/^ *//'); busiest processes at the end: $(busy)"
