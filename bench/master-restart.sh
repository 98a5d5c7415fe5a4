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
cd "$(dirname "$0")/.."
N="${1:-1000000}"
ROUNDS="${2:-3}"
PGHOST="${PGHOST:-/var/run/postgresql}"
cargo build --release --locked -p orrery-store -p orrery-master -p orrery-satellite >/dev/null
bin="$PWD/target/release"
work="$(mktemp -d)"
pids=()
db="${BENCH_DB:-orrery_restart_$$}"
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [ -n "${BENCH_DB:-}" ] || psql -q -h "$PGHOST" -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
url="postgres:///$db?host=$PGHOST&user=postgres"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# Succeeds when 127.0.0.1:PORT answers NAME NS with a referral (NS records, NOERROR).
referral() {
    python3 - "$1" "$2" <<'PY'
import socket, struct, sys
name, port = sys.argv[1], int(sys.argv[2])
q = struct.pack(">HHHHHH", 0x4f52, 0, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.strip(".").split(".")) + b"\0"
q += struct.pack(">HH", 2, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
try:
    s.sendto(q, ("127.0.0.1", port))
    r = s.recv(65535)
except OSError:
    sys.exit(1)
_, flags, _, an, ns, _ = struct.unpack(">HHHHHH", r[:12])
sys.exit(0 if flags & 0xF == 0 and an + ns > 0 else 1)
PY
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_log FILE TEXT SECONDS PID
wait_log() {
    local end=$((SECONDS + $3))
    until grep -q "$2" "$1"; do
        kill -0 "$4" 2>/dev/null || { echo "process $4 exited:"; tail -20 "$1"; exit 1; }
        [ "$SECONDS" -lt "$end" ] || { echo "no '$2' in $1 within $3 s"; tail -20 "$1"; exit 1; }
        sleep 0.05
    done
}

echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %T') UTC"
if [ -z "${BENCH_DB:-}" ]; then
    psql -q -h "$PGHOST" -U postgres -d postgres -c "CREATE DATABASE $db"
    t=$(now)
    "$bin/orrery-admin" --db "$url" load-synthetic --zone test --domains "$N" --seed 1 >/dev/null
    echo "store: loaded $N domains into PostgreSQL in $(since "$t") s"
fi
"$bin/orrery-admin" --db "$url" registrar add BENCHRST --name "Restart benchmark" >/dev/null 2>&1 || true

"$bin/orrery-master" certs ca --dir "$work/certs" >/dev/null
"$bin/orrery-master" certs issue --dir "$work/certs" --master m1 >/dev/null
"$bin/orrery-master" certs issue --dir "$work/certs" --satellite sat1 >/dev/null
link=$(free_port); dns=$(free_port)
cat >"$work/master.toml" <<EOF
[master]
store = "$url"
listen = ["127.0.0.1:$link"]
[tls]
ca = "certs/ca.pem"
cert = "certs/m1.master.pem"
key = "certs/m1.master.key"
[satellite_defaults]
workers = 1
selector = "std"
[selectors.std]
chains = [{ name = "main", leaves = ["lookup"] }]
[selectors.std.leaves.lookup]
kind = "lookup"
[satellites.sat1]
dns = { udp = ["127.0.0.1:$dns"], tcp = ["127.0.0.1:$dns"] }
EOF

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
        if referral "$name" "$dns"; then
            answered=$(since "$t"); break
        fi
        kill -0 "$mpid" 2>/dev/null || { tail -20 "$work/master.$round.log"; exit 1; }
        sleep 0.02
    done
    [ -n "$answered" ] || { echo "round $round: $name not answered within 240 s"; tail "$work/sat.log"; exit 1; }
    [ -n "$listening" ] || listening=$(grep -q "link listening" "$work/master.$round.log" && echo "≤ $answered" || echo "?")
    echo "round $round: master start → link listening $listening s; → satellite answers the change made during the outage: $answered s; snapshots taken by the satellite so far: $(grep -c 'snapshot applied and saved' "$work/sat.log")"
done
