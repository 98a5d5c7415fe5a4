#!/usr/bin/env bash
# Benchmark: a satellite restarted from its local state file at N delegations, until it
# answers a DNS query for a known domain; 3 runs, median and spread. Then the memory of a
# state-file write (a compaction of the batch log into the file) against the steady RSS.
#   bench/satellite-restart.sh [DOMAINS]        (default 1000000)
# Loads DOMAINS synthetic domains (seed 1) into a SQLite store in a temporary directory, writes
# the state file with orrery-generator --satellite-snapshot (format 4, the file a master-fed
# satellite writes), then starts `orrery-satellite --snapshot STATE --config C` (the same read
# and build path as a restart of a master-fed satellite, DNS only: no Whois/RDAP directory) in
# a loopback-only network namespace. STATE=PATH reuses a state file instead of loading.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
RUNS="${RUNS:-3}"
cargo build --release --locked -p orrery-store -p orrery-generator -p orrery-satellite \
    --bins --example state_compact >/dev/null
bin="$PWD/target/release"
work="$(mktemp -d)"
pid=""
cleanup() {
    [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
kib() { awk -v f="$2" '$1 == f":" { print $2 }' "/proc/$1/status"; }
# Asks NAME NS of 127.0.0.1:PORT over UDP; succeeds on a NOERROR answer with NS records.
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

echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %T') UTC"
state="${STATE:-$work/state}"
if [ -z "${STATE:-}" ]; then
    t=$(now)
    "$bin/orrery-admin" --db "sqlite:$work/store.db" load-synthetic --zone test --domains "$N" --seed 1 >/dev/null
    echo "store: $N domains loaded into SQLite in $(since "$t") s"
    t=$(now)
    "$bin/orrery-generator" --db "sqlite:$work/store.db" --out "$work/zones" --no-zones \
        --satellite-snapshot "$state" >/dev/null 2>&1
    echo "generator: state file $(du -m "$state" | cut -f1) MiB in $(since "$t") s"
    name=$(sqlite3 "$work/store.db" "SELECT name FROM domain d WHERE NOT EXISTS (SELECT 1 FROM domain_status s WHERE s.domain_id = d.id AND s.status IN ('clientHold', 'serverHold')) ORDER BY id DESC LIMIT 1")
    rm -f "$work/store.db"*
else
    name="${NAME:?NAME=a delegated domain of the state file}"
fi
port=5353
sed -e "s/127.0.0.1:5353/127.0.0.1:$port/g" -e "s/^workers = .*/workers = 2/" \
    deploy/satellite.example.toml >"$work/sat.toml"

times=()
for run in $(seq 1 "$RUNS"); do
    sync
    t=$(now)
    NO_COLOR=1 "$bin/orrery-satellite" --snapshot "$state" --config "$work/sat.toml" \
        >"$work/sat.log" 2>&1 &
    pid=$!
    deadline=$(( $(date +%s) + 120 ))
    until referral "$name" "$port"; do
        kill -0 "$pid" 2>/dev/null || { cat "$work/sat.log"; exit 1; }
        [ "$(date +%s)" -lt "$deadline" ] || { echo "no answer within 120 s"; exit 1; }
        sleep 0.02
    done
    took=$(since "$t")
    times+=("$took")
    sleep 1
    echo "run $run: start -> first answer ${took} s; RSS steady $(( $(kib "$pid" VmRSS) / 1024 )) MiB, peak $(( $(kib "$pid" VmHWM) / 1024 )) MiB"
    steady_kib=$(kib "$pid" VmRSS)
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END {
    printf "start -> first answer over %d runs: median %.2f s, spread %.2f-%.2f s\n", NR, a[int((NR + 1) / 2)], a[1], a[NR] }'

# A state-file write: one compaction of a 10,000-change batch log into the file.
"$bin/examples/state_compact" "$state" 10000
echo "(satellite steady RSS serving this state: $(( steady_kib / 1024 )) MiB)"
