#!/usr/bin/env bash
# Benchmark (issue 11): what a master-fed satellite allocates while it takes a 10,000-change
# batch, by call stack — the process's peak above its steady PSS, taken apart.
#   BENCH_DB=sqlite:PATH|NAME bench/batch-heap.sh [ROUNDS]          (default 1 round)
# BENCH_DB is a loaded store (`orrery-admin load-synthetic`; a PostgreSQL database name or
# sqlite:PATH), left as it was: a batch sets serverHold on 10,000 delegated domains whose only
# status is 'ok' (one transaction, as bench/compare-peers.sh does), the next takes it off.
# A master on the store and a bare satellite (DNS only) run in a loopback-only namespace.
# Round 0: two batches on the satellite as it is, for the peaks without a profiler. Each round
# after it restarts the satellite from its state file under heaptrack, waits until it serves
# and has caught up, commits one batch, and lets it run 8 s past the answer (a compaction of
# the state file, should the batch log have grown to a quarter of it, falls in that window).
# Printed per batch: commit -> answered, the PSS and
# RSS just before, the peak RSS and PSS (sampled every 10 / 100 ms); per heaptrack round, from
# bench/heap_window.py: the live heap before the commit, its peak in the window, and the call
# stacks that made the difference.
# Environment: BENCH_BIN (see lib.sh), BENCH_HEAP_OUT=DIR keeps heaptrack's files there,
# BENCH_BATCH_PAIRS=N runs N hold/unhold pairs in round 0 (default 1): the PSS before each shows
# where a long-running satellite's steady state settles, ROUNDS=0 skips heaptrack.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
: "${BENCH_DB:?BENCH_DB=a loaded store (sqlite:PATH or a PostgreSQL database)}"
ROUNDS="${1:-1}"
for tool in heaptrack zstdcat; do
    command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq heaptrack zstd; break; }
done
build orrery-store orrery-satellite orrery-master
in_loopback_namespace "$0" "$@"
bench_start
peers="python3 $PWD/bench/peers.py"
if [[ "$BENCH_DB" == sqlite:* ]]; then url="$BENCH_DB"; db=""; else fresh_db unused || true; fi
machine
echo "busiest processes now: $(busy)"
held=""
undo_batch() {
    [ -z "$held" ] || sql "UPDATE domain_status SET status = 'ok' WHERE status = 'serverHold' AND domain_id IN ($held)" || true
}
on_exit=undo_batch

link_port=7447 dns_port=5307
test_certs "$work/certs" m1 sat1
master_config "$work/master.toml" "$link_port" sat1 "$dns_port"
batch_ids=$(ok_delegations 10000)
probe=$(sql "SELECT name FROM domain WHERE id = ${batch_ids%%,*}")
echo "batch: $(tr ',' '\n' <<<"$batch_ids" | grep -c .) domains; probe $probe"

NO_COLOR=1 "$bin/orrery-master" run --config "$work/master.toml" >"$work/master.log" 2>&1 &
mpid=$!; pids+=("$mpid")
wait_log "$work/master.log" "snapshot for booting satellites built" 900 "$mpid"
NO_COLOR=1 "$bin/orrery-satellite" --master "127.0.0.1:$link_port" --tls-dir "$work/certs" \
    --state "$work/sat1.state" >"$work/sat.log" 2>&1 &
spid=$!; pids+=("$spid")
wait_log "$work/sat.log" "snapshot applied and saved" 600 "$spid"
sleep 5 # the spare copy of the zone set is made in the background after serving

# batch LABEL STATUS_FROM STATUS_TO WAIT: commits one batch, waits for its answer and 8 s more;
# prints the PSS before and the peaks.
batch() {
    local steady rss_before peak_rss peak_pss t0 seen
    steady=$($peers pss "$spid")
    rss_before=$(awk '$1 == "VmRSS:" { print $2 * 1024 }' "/proc/$spid/status")
    rm -f "$work/stop"
    $peers sample-mem "$spid" "$work/mem" "$work/stop" &
    local sampler=$!
    sleep 0.5
    t0=$(date +%s%N)
    sql "BEGIN; UPDATE domain_status SET status = '$3' WHERE status = '$2' AND domain_id IN ($batch_ids); COMMIT;" >/dev/null
    [ "$3" = serverHold ] && held="$batch_ids" || held=""
    seen=$($peers "$4" "$dns_port" "$probe" 120) || { echo "the batch was not answered within 120 s"; tail "$work/sat.log"; exit 1; }
    sleep 8
    touch "$work/stop"; wait "$sampler"
    read -r peak_rss peak_pss _ <"$work/mem"
    echo "$1: commit -> answered $(( (seen - t0) / 1000000 )) ms; PSS / RSS before $((steady >> 20)) / $((rss_before >> 20)) MiB;" \
        "peak PSS $((peak_pss >> 20)) MiB ($(awk -v a="$peak_pss" -v b="$steady" 'BEGIN { printf "%.3f", a / b }')×)," \
        "peak RSS $((peak_rss >> 20)) MiB ($(awk -v a="$peak_rss" -v b="$rss_before" 'BEGIN { printf "%.3f", a / b }')×)"
}
for pair in $(seq 1 "${BENCH_BATCH_PAIRS:-1}"); do
    batch "round 0, no heaptrack, hold $pair" ok serverHold wait-gone
    batch "round 0, no heaptrack, unhold $pair" serverHold ok wait-answer
done
for round in $(seq 1 "$ROUNDS"); do
    # The satellite again, under heaptrack from its start (attaching to a running process
    # with `heaptrack -p` failed here: gdb could not call into it), from its state file.
    kill "$spid"; wait "$spid" 2>/dev/null || true
    t_start=$(date +%s%N)
    NO_COLOR=1 heaptrack -o "$work/heap$round" "$bin/orrery-satellite" --master "127.0.0.1:$link_port" \
        --tls-dir "$work/certs" --state "$work/sat1.state" >"$work/sat.log" 2>&1 &
    hpid=$!; pids+=("$hpid")
    $peers wait-answer "$dns_port" "$probe" 600 >/dev/null || { echo "no answer under heaptrack"; tail "$work/sat.log"; exit 1; }
    spid=$(pgrep -f -n "^$bin/orrery-satellite --master") || { echo "no satellite process"; exit 1; }
    sleep 15 # caught up with the master; the start's objects freed in the background
    t_from=$(( ($(date +%s%N) - t_start) / 1000000 ))
    batch "round $round, under heaptrack, hold" ok serverHold wait-gone
    t_to=$(( ($(date +%s%N) - t_start) / 1000000 ))
    kill "$spid"; wait "$hpid" 2>/dev/null || true
    file=$(ls "$work/heap$round".*zst | head -1)
    python3 bench/heap_window.py "$file" "$t_from" "$t_to" 20
    [ -z "${BENCH_HEAP_OUT:-}" ] || { mkdir -p "$BENCH_HEAP_OUT"; cp "$file" "$BENCH_HEAP_OUT/"; }
    sql "UPDATE domain_status SET status = 'ok' WHERE status = 'serverHold' AND domain_id IN ($batch_ids)" >/dev/null
    held=""
    [ "$round" -lt "$ROUNDS" ] || break
    # A satellite as it is for the next round to restart under heaptrack.
    NO_COLOR=1 "$bin/orrery-satellite" --master "127.0.0.1:$link_port" --tls-dir "$work/certs" \
        --state "$work/sat1.state" >"$work/sat.log" 2>&1 &
    spid=$!; pids+=("$spid")
    $peers wait-answer "$dns_port" "$probe" 600 >/dev/null
    sleep 10
done
machine
