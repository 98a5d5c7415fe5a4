#!/usr/bin/env bash
# Benchmark: the master holding a whole synthetic TLD (its load time and memory), then a bare
# satellite (empty state) booting from it until it answers a DNS query for a known domain.
#   bench/satellite-boot.sh [DOMAINS]          (default 1000000)
# Loads DOMAINS synthetic domains (seed 1) into a fresh PostgreSQL database through the Unix
# socket (PGHOST, default /var/run/postgresql), dropped at the end. BENCH_DB=NAME reuses an
# already loaded database instead (not dropped). Only 127.0.0.1 is used; every wait is bounded.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N="${1:-1000000}"
build orrery-store orrery-master orrery-satellite
bench_start
machine
if fresh_db "orrery_boot_$$"; then
    t=$(now)
    "$bin/orrery-admin" --db "$url" load-synthetic --zone test --domains "$N" --seed 1 >/dev/null
    echo "store: loaded $N domains into PostgreSQL in $(since "$t") s"
fi
# A delegated domain (not on hold) to ask for.
name=$(psql -At -h "$PGHOST" -U postgres -d "$db" -c \
    "SELECT name FROM domain d WHERE NOT EXISTS (SELECT 1 FROM domain_status s WHERE s.domain_id = d.id AND s.status IN ('clientHold', 'serverHold')) ORDER BY id DESC LIMIT 1")
[ -n "$name" ] || { echo "no delegated domain in $db"; exit 1; }

test_certs "$work/certs" m1 sat1
link=$(free_port); dns=$(free_port)
master_config "$work/master.toml" "$link" sat1 "$dns"

t=$(now)
"$bin/orrery-master" run --config "$work/master.toml" >"$work/master.log" 2>&1 &
mpid=$!; pids+=("$mpid")
for _ in $(seq 1 1200); do
    grep -q "link listening" "$work/master.log" && break
    kill -0 "$mpid" 2>/dev/null || { cat "$work/master.log"; exit 1; }
    sleep 0.25
done
grep -q "link listening" "$work/master.log" || { echo "master did not load in 300 s"; exit 1; }
echo "master: loaded the registry and listening after $(since "$t") s; VmRSS $(rss "$mpid" VmRSS) MiB (peak VmHWM $(rss "$mpid" VmHWM) MiB)"
# A master in service has built the snapshot for booting satellites in the background after its
# load; wait for it, so that what follows is a satellite booting from a master in steady state.
for _ in $(seq 3000); do
    grep -q "snapshot for booting satellites built" "$work/master.log" && break
    sleep 0.1
done
sed 's/\x1b\[[0-9;]*m//g' "$work/master.log" | grep -oE 'snapshot for booting satellites built.*' | sed 's/^/master log: /' || true
echo "master: with the snapshot built, after $(since "$t") s; VmRSS $(rss "$mpid" VmRSS) MiB (peak VmHWM $(rss "$mpid" VmHWM) MiB)"

rm -f "$work/sat1.state"
t=$(now)
"$bin/orrery-satellite" --master "127.0.0.1:$link" --tls-dir "$work/certs" --state "$work/sat1.state" >"$work/sat.log" 2>&1 &
spid=$!; pids+=("$spid")
answered=""
for _ in $(seq 1 1200); do
    if referral "$name" "$dns"; then
        answered=yes; break
    fi
    kill -0 "$spid" 2>/dev/null || { cat "$work/sat.log"; exit 1; }
    sleep 0.05
done
[ -n "$answered" ] || { echo "satellite did not answer $name in 60 s"; tail "$work/sat.log"; exit 1; }
echo "satellite: bare boot to the first answer for $name: $(since "$t") s; satellite VmRSS $(rss "$spid" VmRSS) MiB (peak $(rss "$spid" VmHWM) MiB)"
sleep 3 # the state file, written after serving starts
sed 's/\x1b\[[0-9;]*m//g' "$work/sat.log" | grep -oE '(snapshot received|zone set built|snapshot applied).*' | sed 's/^/satellite log: /' || true
echo "satellite after the state file: VmRSS $(rss "$spid" VmRSS) MiB (peak $(rss "$spid" VmHWM) MiB)"
echo "master after serving the snapshot: VmRSS $(rss "$mpid" VmRSS) MiB (peak VmHWM $(rss "$mpid" VmHWM) MiB)"
[ -s "$work/sat1.state" ] && echo "satellite state file: $(du -m "$work/sat1.state" | cut -f1) MiB"
