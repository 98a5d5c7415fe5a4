#!/usr/bin/env bash
# Benchmark (issue 11): NSD, Knot and the Orrery satellite on one generated zone, in one run.
#   bench/compare-peers.sh
# Environment (all optional):
#   BENCH_DOMAINS=1000000  synthetic domains (seed 1) loaded with `orrery-admin load-synthetic`
#   BENCH_DB=NAME          reuse an already loaded PostgreSQL database (kept), or sqlite:PATH;
#                          without it a fresh PostgreSQL database is loaded and dropped at the end
#   BENCH_RUNS=2           repetitions of the whole comparison (medians and ranges are printed)
#   BENCH_SECONDS=15       length of each dnsperf run
#   BENCH_RATE=20000       the fixed rate of the latency runs (q/s)
#   BENCH_MASTER=1         0 skips the master-fed satellite (batch memory, p99 with a master)
#   BENCH_PEERS=1          0 skips NSD, Knot and the snapshot-fed satellite (only the
#                          master-fed runs: batch memory and latency with a master)
#   BENCH_RENICED_MASTER=0 1 repeats the two batch runs with the master's threads at nice 19
#                          (metrics reniced_batch_…): the master's share of the batch p99
#   BENCH_STREAM_RATE=10   changes a second of the change-stream latency run (PostgreSQL only)
#   BENCH_CHECKIN_MS=60000 the master-fed satellite's check-in interval
#   BENCH_MASTER_WORKERS=2 the master-fed satellite's UDP workers
#   BENCH_BIN=DIR          take the binaries from DIR (default: a release build, in
#                          $CARGO_TARGET_DIR/release or target/release)
#   BENCH_SIGNED=0         1: the zone signed (issue 13) — KSK + ZSK, algorithm 13, NSEC3
#                          opt-out, keys in the temporary directory; the peers serve the
#                          generator's signed zone file, the satellite its signed state file, and
#                          every dnsperf query has DO set (-D). Also the satellite from the
#                          unsigned state file of the same store, for memory (satellite-unsigned).
#                          No master-fed runs (BENCH_MASTER is taken as 0); not with BENCH_DB
#                          (the keys would stay in the reused store).
# The store is written by `orrery-generator` both as a zone file (for NSD and Knot) and as a
# satellite snapshot, from one store snapshot. Each server then runs alone, in turn, in a
# network namespace of its own (loopback only): NSD 4 (`server-count: 2`, `reuseport: yes`, no
# database file, no remote control, no notify, no RRL), Knot 3 (2 UDP workers, no journal,
# control socket in the temporary directory only, no RRL) and the satellite from its snapshot
# (DNS only, 2 UDP workers, deploy/satellite.example.toml). For each:
#   - start → first answer: wall time from exec to the first referral for a delegated name
#     (a UDP query every 5 ms from bench/peers.py),
#   - PSS per delegation: the server's PSS (smaps_rollup, summed over its processes; nothing
#     subtracted) 2 s after its first answer, divided by BENCH_DOMAINS,
#   - saturated dnsperf (-c 4 -T 1 -q 100 -t 2 -l BENCH_SECONDS) with three query files:
#     referrals (delegated names not on hold), NXDOMAIN, and a mix (three referrals to one
#     NXDOMAIN): q/s and the server's CPU (utime+stime from /proc) per answered query,
#   - p50/p99 of the mix at BENCH_RATE q/s (dnsperf -Q, per-query latencies from dnsperf -v),
#   - TCP q/s of the mix (dnsperf -m tcp, same settings).
# Then (BENCH_MASTER=1) a master on the same store and a satellite booting from it (bare, with
# a state file), DNS only with 2 UDP workers and the same Selector: its PSS, p50/p99 at
# BENCH_RATE with the master and the store idle, with the master stopped (SIGSTOP), and under
# a change stream (BENCH_STREAM_RATE single-domain updates a second); the snapshot-fed
# satellite's p50/p99 beside the idle master; the CPU of the satellites' threads other than
# the UDP workers in each of those runs; and during two batches of one SQL transaction each touching
# 10,000 domains (their status 'ok' → 'serverHold', then back): p50/p99 of the run the batch
# falls in, the commit's duration, the end of the commit → the last domain's referral gone
# (or back), and the peak RSS/PSS from the
# commit to 5 s after (covering the state-file write) against the PSS just before; finally
# the satellite is restarted from its state file and timed to its first answer.
# Every wait is bounded; servers are stopped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N="${BENCH_DOMAINS:-1000000}"
RUNS="${BENCH_RUNS:-2}"
SECS="${BENCH_SECONDS:-15}"
RATE="${BENCH_RATE:-20000}"
if [ -z "${ORRERY_BENCH_NETNS:-}" ]; then
    for tool in nsd knotd dnsperf; do
        command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq nsd knot dnsperf; break; }
    done
fi
build orrery-store orrery-generator orrery-satellite orrery-master
in_loopback_namespace "$0" "$@"
bench_start
peers="python3 $PWD/bench/peers.py"
held=""
if [ -n "${BENCH_DB:-}" ] && [[ "$BENCH_DB" == sqlite:* ]]; then
    url="$BENCH_DB"; db=""
else
    fresh_db "orrery_peers_$$" || true
fi
# A batch interrupted half-way is undone, so that a reused store stays as it was loaded.
undo_batch() {
    [ -z "$held" ] || sql "UPDATE domain_status SET status = 'ok' WHERE status = 'serverHold' AND domain_id IN ($held)" || true
}
on_exit=undo_batch
hz=$(getconf CLK_TCK)
now_ns() { date +%s%N; }
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }
record() { echo "$1 $2 $3 $4" >>"$work/results"; }   # SERVER RUN METRIC VALUE

echo "$(nproc) cores, $(uptime | sed 's/^ *//'); $(date -u '+%F %T') UTC"
echo "busiest processes now: $(busy)"
echo "binaries: $bin; $N domains; $RUNS runs; signed: ${BENCH_SIGNED:-0}; dnsperf -c 4 -T 1 -q 100 -t 2 -l $SECS; fixed rate $RATE q/s"
{ nsd -v 2>&1 | head -1; knotd -V; dnsperf -h 2>&1 | grep -m1 Version; } || true

t=$(now_ns)
if [ -z "${BENCH_DB:-}" ]; then
    quiet "$bin/orrery-admin" --db "$url" load-synthetic --zone test --domains "$N" --seed 1
    echo "store: loaded $N domains in $(ms_since "$t") ms"
fi
keys=()
dnssec_ok=()
if [ "${BENCH_SIGNED:-0}" = 1 ]; then
    [ -z "${BENCH_DB:-}" ] || { echo "BENCH_SIGNED=1 needs a fresh store (no BENCH_DB)"; exit 1; }
    BENCH_MASTER=0
    t=$(now_ns)
    quiet "$bin/orrery-generator" --db "$url" --out "$work/unsigned-zones" --satellite-snapshot "$work/unsigned.snap"
    echo "generator: unsigned snapshot $(du -m "$work/unsigned.snap" | cut -f1) MiB in $(ms_since "$t") ms"
    # The runbook's order: the policy first (it holds the keys' zone), then the keys.
    quiet "$bin/orrery-admin" --db "$url" dnssec policy test --denial nsec3-optout --algorithm 13
    for role in ksk zsk; do
        quiet "$bin/orrery-admin" --db "$url" dnssec add-key test --role "$role" --key-dir "$work/keys" --state active
    done
    keys=(--key-dir "$work/keys")
    dnssec_ok=(-D)
fi
t=$(now_ns)
quiet "$bin/orrery-generator" --db "$url" --out "$work/zones" --satellite-snapshot "$work/sat.snap" "${keys[@]}"
echo "generator: zone file $(du -m "$work/zones/test.zone" | cut -f1) MiB and snapshot $(du -m "$work/sat.snap" | cut -f1) MiB in $(ms_since "$t") ms"

# Query files. Referrals: delegated names (nameservers, no hold status) in random order.
hold="SELECT 1 FROM domain_status s WHERE s.domain_id = d.id AND s.status IN ('clientHold', 'serverHold')"
sql "SELECT name FROM domain d WHERE EXISTS (SELECT 1 FROM domain_ns n WHERE n.domain_id = d.id)
     AND NOT EXISTS ($hold) ORDER BY random() LIMIT 100000" | awk '{ print $1 ". A" }' >"$work/q.ref"
[ -s "$work/q.ref" ] || { echo "no delegated domain in the store"; exit 1; }
awk -v s=$$ '{ print "nx" NR "-" s ".test. A" }' "$work/q.ref" >"$work/q.nx"
awk '{ print } NR % 3 == 0 { print "nx" NR ".test. A" }' "$work/q.ref" >"$work/q.mix"
probe=$(head -1 "$work/q.ref" | cut -d' ' -f1)

# Configurations, each listening on its own loopback port.
nsd_port=5301 knot_port=5302 sat_port=5303 msat_port=5304 link_port=7443
nsd_config
peer_configs

# measure SERVER RUN PID T0: everything but the start time, on the server on $port.
measure() {
    local server=$1 run=$2 pid=$3 c0 c1 qps done lost
    sleep 2
    record "$server" "$run" pss_per_delegation "$(( $($peers pss "$pid") / N ))"
    for mix in ref nx mix; do
        c0=$($peers cpu "$pid")
        dnsperf "${dnssec_ok[@]}" -s 127.0.0.1 -p "$port" -d "$work/q.$mix" -c 4 -T 1 -q 100 -t 2 -l "$SECS" >"$work/perf" 2>&1
        c1=$($peers cpu "$pid")
        read -r qps done lost < <($peers dnsperf "$work/perf")
        record "$server" "$run" "qps_$mix" "$qps"
        record "$server" "$run" "cpu_us_$mix" "$(awk -v t=$((c1 - c0)) -v hz="$hz" -v d="$done" 'BEGIN { printf "%.2f", d ? t * 1e6 / hz / d : 0 }')"
        [ "$lost" = 0 ] || record "$server" "$run" "lost_$mix" "$lost"
    done
    if [ "$server" = satellite ]; then latency_run "$server" "$run" "" "$pid"; else latency_run "$server" "$run" ""; fi
    dnsperf "${dnssec_ok[@]}" -m tcp -s 127.0.0.1 -p "$port" -d "$work/q.mix" -c 4 -T 1 -q 100 -t 2 -l "$SECS" >"$work/perf" 2>&1
    read -r qps done lost < <($peers dnsperf "$work/perf")
    record "$server" "$run" tcp_qps "$qps"
}
# latency_run SERVER RUN PREFIX [PID]: the mix at $RATE q/s; records PREFIXp50_us and
# PREFIXp99_us, and with a satellite's PID the CPU of its threads other than the UDP workers
# (the runtime, the link) in ms per second of the run.
latency_run() {
    local p50 p99 max count u0 o0 u1 o1 t0
    [ -z "${4:-}" ] || read -r u0 o0 < <($peers threads "$4")
    local m0="" m1
    if [ -n "${mpid:-}" ] && kill -0 "$mpid" 2>/dev/null; then m0=$($peers cpu "$mpid"); fi
    t0=$(now_ns)
    dnsperf "${dnssec_ok[@]}" -s 127.0.0.1 -p "$port" -d "$work/q.mix" -c 4 -T 1 -q 100 -t 2 -l "$SECS" -Q "$RATE" -v >"$work/lat$3" 2>&1
    if [ -n "${4:-}" ]; then
        read -r u1 o1 < <($peers threads "$4")
        record "$1" "$2" "${3}other_threads_ms_per_s" "$(awk -v o=$((o1 - o0)) -v hz="$hz" -v ns=$(( $(now_ns) - t0 )) 'BEGIN { printf "%.2f", o * 1e3 / hz / (ns / 1e9) }')"
    fi
    if [ -n "$m0" ]; then
        m1=$($peers cpu "$mpid")
        record "$1" "$2" "${3}master_cpu_ms_per_s" "$(awk -v o=$((m1 - m0)) -v hz="$hz" -v ns=$(( $(now_ns) - t0 )) 'BEGIN { printf "%.2f", o * 1e3 / hz / (ns / 1e9) }')"
    fi
    read -r p50 p99 max count < <($peers latency "$work/lat$3")
    record "$1" "$2" "${3}p50_us" "$p50"
    record "$1" "$2" "${3}p99_us" "$p99"
    [ -z "$3" ] || record "$1" "$2" "${3}max_us" "$max"
    read -r _ _ lost < <($peers dnsperf "$work/lat$3")
    [ "$lost" = 0 ] || record "$1" "$2" "${3}lost" "$lost"
}
# run_server SERVER RUN PORT CMD...: starts CMD, times it to its first answer, measures, stops.
run_server() {
    local server=$1 run=$2 t0 answered pid
    port=$3; shift 3
    t0=$(now_ns)
    "$@" >"$work/$server.log" 2>&1 &
    pid=$!; pids+=("$pid")
    answered=$($peers wait-answer "$port" "$probe" 600) || { echo "$server did not answer within 600 s"; tail "$work/$server.log"; exit 1; }
    record "$server" "$run" start_ms $(( (answered - t0) / 1000000 ))
    measure "$server" "$run" "$pid"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "run $run: $server done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
}

# The master-fed satellite: certificates and the master's configuration, made once.
if [ "${BENCH_MASTER:-1}" = 1 ]; then
    quiet "$bin/orrery-master" certs ca --dir "$work/certs"
    quiet "$bin/orrery-master" certs issue --dir "$work/certs" --master m1
    quiet "$bin/orrery-master" certs issue --dir "$work/certs" --satellite sat1
    cat >"$work/master.toml" <<EOF
[master]
store = "$url"
listen = ["127.0.0.1:$link_port"]
[tls]
ca = "certs/ca.pem"
cert = "certs/m1.master.pem"
key = "certs/m1.master.key"
[satellite_defaults]
workers = ${BENCH_MASTER_WORKERS:-2}
checkin_interval_ms = ${BENCH_CHECKIN_MS:-60000}
selector = "std"
# The chains of deploy/satellite.example.toml, as the snapshot-fed satellite runs them.
[selectors.std]
chains = [
    { name = "main", leaves = ["stats", "validate", "acl", "to_chaos", "lookup"] },
    { name = "chaos", leaves = ["chaos"] },
]
[selectors.std.leaves.stats]
kind = "statistics"
[selectors.std.leaves.validate]
kind = "validate_query"
[selectors.std.leaves.acl]
kind = "acl"
deny = []
action = "refuse"
[selectors.std.leaves.to_chaos]
kind = "route_class"
class = "CH"
chain = "chaos"
[selectors.std.leaves.chaos]
kind = "chaos"
version = "orrery-satellite"
[selectors.std.leaves.lookup]
kind = "lookup"
[satellites.sat1]
dns = { udp = ["127.0.0.1:$msat_port"], tcp = ["127.0.0.1:$msat_port"] }
nsid = "sat1.example"
EOF
    # The batch: 10,000 delegated domains whose only status is 'ok'.
    batch_ids=$(ok_delegations 10000)
    batch_count=$(tr ',' '\n' <<<"$batch_ids" | grep -c .)
    batch_probe=$(sql "SELECT name FROM domain WHERE id = ${batch_ids%%,*}")
fi
# batch_run RUN LABEL SQL WAIT [PREFIX]: the latency run with one batch committed a third of the
# way in; its metrics named PREFIX… (default batch_).
batch_run() {
    local run=$1 label=$2 p=${5:-batch_} steady lat_pid t0 peak_rss peak_pss first
    steady=$($peers pss "$spid")
    rm -f "$work/stop"
    latency_run satellite-master "$run" "$p" "$spid" &
    lat_pid=$!
    sleep "$((SECS / 3))"
    $peers sample-mem "$spid" "$work/mem" "$work/stop" &
    local sampler=$!
    t0=$(now_ns)
    sql "BEGIN; $3; COMMIT;" >/dev/null
    [ "$label" = hold ] && held="$batch_ids" || held=""
    record satellite-master "$run" ${p}commit_ms "$(ms_since "$t0")"
    t0=$(now_ns) # the answer is timed from the end of the commit
    if $peers "$4" "$msat_port" "$batch_probe" 120 >"$work/seen"; then
        record satellite-master "$run" ${p}answer_ms $(( ($(cat "$work/seen") - t0) / 1000000 ))
    else
        echo "run $run: the $label batch was not answered within 120 s"
    fi
    sleep 5 # the state-file write follows the batch within PERSIST_INTERVAL
    wait "$lat_pid"
    touch "$work/stop"; wait "$sampler"
    read -r peak_rss peak_pss first <"$work/mem"
    record satellite-master "$run" ${p}peak_pss_over_steady "$(awk -v a="$peak_pss" -v b="$steady" 'BEGIN { printf "%.3f", a / b }')"
    record satellite-master "$run" ${p}peak_rss_mib $((peak_rss >> 20))
    [ "$p" != batch_ ] || record satellite-master "$run" steady_pss_mib $((steady >> 20))
}
run_master_fed() {
    local run=$1 t0 answered stream=""
    rm -f "$work/sat1.state" "$work/sat1.state."*
    NO_COLOR=1 "$bin/orrery-master" run --config "$work/master.toml" >"$work/master.log" 2>&1 &
    mpid=$!; pids+=("$mpid")
    wait_log "$work/master.log" "link listening" 900 "$mpid"
    wait_log "$work/master.log" "snapshot for booting satellites built" 900 "$mpid"
    # The snapshot-fed satellite again, beside the idle master and store: their share of p99.
    port=$sat_port
    "$bin/orrery-satellite" --snapshot "$work/sat.snap" --config "$work/sat.toml" >"$work/beside.log" 2>&1 &
    spid=$!; pids+=("$spid")
    $peers wait-answer "$port" "$probe" 600 >/dev/null || { echo "satellite did not answer"; exit 1; }
    sleep 2
    latency_run satellite-master "$run" "snapshot_fed_beside_master_" "$spid"
    kill "$spid"; wait "$spid" 2>/dev/null || true
    t0=$(now_ns)
    NO_COLOR=1 "$bin/orrery-satellite" --master "127.0.0.1:$link_port" --tls-dir "$work/certs" \
        --state "$work/sat1.state" >"$work/msat.log" 2>&1 &
    spid=$!; pids+=("$spid")
    port=$msat_port
    answered=$($peers wait-answer "$port" "$probe" 600) || { echo "master-fed satellite did not answer"; tail "$work/msat.log"; exit 1; }
    record satellite-master "$run" start_ms $(( (answered - t0) / 1000000 ))
    wait_log "$work/msat.log" "snapshot applied and saved" 600 "$spid"
    sleep 5 # the spare copy of the zone set is made in the background after serving
    record satellite-master "$run" pss_per_delegation "$(( $($peers pss "$spid") / N ))"
    latency_run satellite-master "$run" "" "$spid"
    # The same with the master stopped (SIGSTOP; the store idle): the master's share.
    kill -STOP "$mpid"
    latency_run satellite-master "$run" "master_stopped_" "$spid"
    kill -CONT "$mpid"
    sleep 2
    if [ -n "$db" ] && [ "${BENCH_STREAM_RATE:-10}" != 0 ]; then
        # One psql session: a single-domain update every 1/RATE s (autocommit), server-side sleeps.
        awk -v n=$((SECS * ${BENCH_STREAM_RATE:-10} + 20)) -v r="${BENCH_STREAM_RATE:-10}" -v ids="$batch_ids" \
            'BEGIN { k = split(ids, id, ","); for (i = 1; i <= n; i++) {
                print "UPDATE domain SET updated = now() WHERE id = " id[(i % k) + 1] ";"
                print "SELECT pg_sleep(" 1 / r ");" } }' |
            psql -q -h "$PGHOST" -U postgres -d "$db" >/dev/null 2>&1 &
        stream=$!
        sleep 1
        latency_run satellite-master "$run" "stream_" "$spid"
        kill "$stream" 2>/dev/null || true; wait "$stream" 2>/dev/null || true
    fi
    batch_run "$run" hold "UPDATE domain_status SET status = 'serverHold' WHERE status = 'ok' AND domain_id IN ($batch_ids)" wait-gone
    batch_run "$run" unhold "UPDATE domain_status SET status = 'ok' WHERE status = 'serverHold' AND domain_id IN ($batch_ids)" wait-answer
    if [ "${BENCH_RENICED_MASTER:-0}" = 1 ]; then
        # The same pair with every thread of the master at nice 19: what is left is the
        # satellite's own share and PostgreSQL's (the machine's server, left as it is).
        for t in /proc/"$mpid"/task/*; do renice -n 19 -p "${t##*/}" >/dev/null; done
        batch_run "$run" hold "UPDATE domain_status SET status = 'serverHold' WHERE status = 'ok' AND domain_id IN ($batch_ids)" wait-gone reniced_batch_
        batch_run "$run" unhold "UPDATE domain_status SET status = 'ok' WHERE status = 'serverHold' AND domain_id IN ($batch_ids)" wait-answer reniced_batch_
    fi
    # Restart from the state file (the master still running).
    kill "$spid"; wait "$spid" 2>/dev/null || true
    t0=$(now_ns)
    NO_COLOR=1 "$bin/orrery-satellite" --master "127.0.0.1:$link_port" --tls-dir "$work/certs" \
        --state "$work/sat1.state" >"$work/msat2.log" 2>&1 &
    spid=$!; pids+=("$spid")
    answered=$($peers wait-answer "$port" "$probe" 600) || { echo "restarted satellite did not answer"; tail "$work/msat2.log"; exit 1; }
    record satellite-master "$run" restart_from_state_ms $(( (answered - t0) / 1000000 ))
    kill "$spid"; wait "$spid" 2>/dev/null || true
    kill "$mpid"; wait "$mpid" 2>/dev/null || true
    mpid=""
    echo "run $run: master-fed satellite done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
}

for run in $(seq "$RUNS"); do
    if [ "${BENCH_PEERS:-1}" = 1 ]; then
        run_server nsd "$run" "$nsd_port" nsd -d -c "$work/nsd/nsd.conf"
        run_server knot "$run" "$knot_port" knotd -c "$work/knot/knot.conf"
        run_server satellite "$run" "$sat_port" "$bin/orrery-satellite" --snapshot "$work/sat.snap" --config "$work/sat.toml"
    fi
    [ "${BENCH_MASTER:-1}" != 1 ] || run_master_fed "$run"
    if [ "${BENCH_SIGNED:-0}" = 1 ]; then
        # The same store unsigned: start and memory only (the signed zone's cost in memory).
        port=$sat_port
        t0=$(now_ns)
        "$bin/orrery-satellite" --snapshot "$work/unsigned.snap" --config "$work/sat.toml" >"$work/unsigned.log" 2>&1 &
        upid=$!; pids+=("$upid")
        answered=$($peers wait-answer "$port" "$probe" 600) || { echo "unsigned satellite did not answer"; exit 1; }
        record satellite-unsigned "$run" start_ms $(( (answered - t0) / 1000000 ))
        sleep 2
        record satellite-unsigned "$run" pss_per_delegation "$(( $($peers pss "$upid") / N ))"
        kill "$upid"; wait "$upid" 2>/dev/null || true
    fi
done

echo
echo "## $N delegations, $RUNS runs, $(date -u '+%F %T') UTC"
$peers table "$work/results"
[ "${BENCH_MASTER:-1}" != 1 ] || echo "(batches: one transaction changing the status of $batch_count domains, 'ok' → 'serverHold' and back; satellite-master p50/p99: master and store idle)"
echo
echo "raw results (server run metric value):"
sort -k1,1 -k3,3 -s "$work/results" | awk '{ printf "%s ", $0 } NR % 4 == 0 { print "" } END { print "" }'
echo "$(uptime | sed 's/^ *//'); busiest processes at the end: $(busy)"
