#!/usr/bin/env bash
# Benchmark: a master restart, seen from a satellite that was following it (issue 10).
#   bench/master-restart.sh [DOMAINS] [ROUNDS]      (defaults 1000000 and 3)
# Loads DOMAINS synthetic domains (seed 1) into a fresh PostgreSQL database through the Unix
# socket (PGHOST, default /var/run/postgresql), dropped at the end; BENCH_DB=NAME reuses an
# already loaded database instead (kept). A master and one satellite start and the satellite
# boots from the master. Then ROUNDS times: the master is killed with SIGKILL, a domain is added
# while it is down, the master is started again, and the script times
#   - master start → its link listening,
#   - master start → the satellite answering the new domain (the goal: ≤ 2 s),
# and checks that the satellite took no snapshot after its first boot (the gap is served from
# the journal). Only 127.0.0.1 is used; every wait is bounded.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N="${1:-1000000}"
ROUNDS="${2:-3}"
# The masters are killed outright, as in the rounds.
BENCH_KILL=-9
build orrery-store orrery-master orrery-satellite
bench_start
machine
if fresh_db "orrery_restart_$$"; then
    t=$(now)
    "$bin/orrery-admin" --db "$url" load-synthetic --zone test --domains "$N" --seed 1 >/dev/null
    echo "store: loaded $N domains into PostgreSQL in $(since "$t") s"
fi
"$bin/orrery-admin" --db "$url" registrar add BENCHRST --name "Restart benchmark" >/dev/null 2>&1 || true

test_certs "$work/certs" m1 sat1
link=$(free_port); dns=$(free_port)
master_config "$work/master.toml" "$link" sat1 "$dns"

start_master() {
    NO_COLOR=1 "$bin/orrery-master" run --config "$work/master.toml" >"$work/master.$1.log" 2>&1 &
    mpid=$!; pids+=("$mpid")
}
start_master 0
wait_log "$work/master.0.log" "link listening" 600 "$mpid"
wait_log "$work/master.0.log" "snapshot for booting satellites built" 600 "$mpid"
NO_COLOR=1 "$bin/orrery-satellite" --master "127.0.0.1:$link" --tls-dir "$work/certs" --state "$work/sat1.state" >"$work/sat.log" 2>&1 &
spid=$!; pids+=("$spid")
wait_log "$work/sat.log" "snapshot applied and saved" 600 "$spid"
echo "satellite booted from the master ($(grep -c 'snapshot applied and saved' "$work/sat.log") snapshot)"
sleep 2

for round in $(seq 1 "$ROUNDS"); do
    kill -9 "$mpid"; wait "$mpid" 2>/dev/null || true
    name="restart-$round-$$.test"
    "$bin/orrery-admin" --db "$url" domain add "$name" --registrar BENCHRST --ns "ns1.$name=192.0.2.7" >/dev/null
    sleep 1
    t=$(now)
    start_master "$round"
    listening=""
    answered=""
    for _ in $(seq 1 12000); do
        if [ -z "$listening" ] && grep -q "link listening" "$work/master.$round.log"; then
            listening=$(since "$t")
        fi
        if referral "$name" "$dns" 0.2; then
            answered=$(since "$t"); break
        fi
        kill -0 "$mpid" 2>/dev/null || { tail -20 "$work/master.$round.log"; exit 1; }
        sleep 0.02
    done
    [ -n "$answered" ] || { echo "round $round: $name not answered within 240 s"; tail "$work/sat.log"; exit 1; }
    [ -n "$listening" ] || listening=$(grep -q "link listening" "$work/master.$round.log" && echo "≤ $answered" || echo "?")
    echo "round $round: master start → link listening $listening s; → satellite answers the change made during the outage: $answered s; snapshots taken by the satellite so far: $(grep -c 'snapshot applied and saved' "$work/sat.log")"
done
