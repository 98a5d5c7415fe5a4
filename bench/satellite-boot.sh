#!/usr/bin/env bash
# Benchmark: the master holding a whole synthetic TLD (its load time and memory), then a bare
# satellite (empty state) booting from it until it answers a DNS query for a known domain.
#   bench/satellite-boot.sh [DOMAINS]          (default 1000000)
# Loads DOMAINS synthetic domains (seed 1) into a fresh PostgreSQL database through the Unix
# socket (PGHOST, default /var/run/postgresql), dropped at the end. BENCH_DB=NAME reuses an
# already loaded database instead (not dropped). Only 127.0.0.1 is used; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
PGHOST="${PGHOST:-/var/run/postgresql}"
cargo build --release --locked -p orrery-store -p orrery-master -p orrery-satellite >/dev/null
bin="$PWD/target/release"
work="$(mktemp -d)"
pids=()
db="${BENCH_DB:-orrery_boot_$$}"
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [ -n "${BENCH_DB:-}" ] || psql -q -h "$PGHOST" -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
url="postgres:///$db?host=$PGHOST&user=postgres"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
rss() { awk -v f="$2" '$1 == f":" { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
# Asks NAME NS of 127.0.0.1:PORT over UDP without recursion (no dig needed); succeeds on a
# NOERROR answer that carries NS records in the answer or authority section (a referral).
referral() {
    python3 - "$1" "$2" <<'PY'
import socket, struct, sys
name, port = sys.argv[1], int(sys.argv[2])
q = struct.pack(">HHHHHH", 0x4f52, 0, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.strip(".").split(".")) + b"\0"
q += struct.pack(">HH", 2, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
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

echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %T') UTC"
if [ -z "${BENCH_DB:-}" ]; then
    psql -q -h "$PGHOST" -U postgres -d postgres -c "CREATE DATABASE $db"
    t=$(now)
    "$bin/orrery-admin" --db "$url" load-synthetic --zone test --domains "$N" --seed 1 >/dev/null
    echo "store: loaded $N domains into PostgreSQL in $(since "$t") s"
fi
# A delegated domain (not on hold) to ask for.
name=$(psql -At -h "$PGHOST" -U postgres -d "$db" -c \
    "SELECT name FROM domain d WHERE NOT EXISTS (SELECT 1 FROM domain_status s WHERE s.domain_id = d.id AND s.status IN ('clientHold', 'serverHold')) ORDER BY id DESC LIMIT 1")
[ -n "$name" ] || { echo "no delegated domain in $db"; exit 1; }

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
sleep 3 # the state file and the spare copy of the zone set, both after serving starts
sed 's/\x1b\[[0-9;]*m//g' "$work/sat.log" | grep -oE '(snapshot received|zone set built|spare copy|snapshot applied).*' | sed 's/^/satellite log: /' || true
echo "satellite after the spare copy and the state file: VmRSS $(rss "$spid" VmRSS) MiB (peak $(rss "$spid" VmHWM) MiB)"
echo "master after serving the snapshot: VmRSS $(rss "$mpid" VmRSS) MiB (peak VmHWM $(rss "$mpid" VmHWM) MiB)"
[ -s "$work/sat1.state" ] && echo "satellite state file: $(du -m "$work/sat1.state" | cut -f1) MiB"
